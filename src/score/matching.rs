//! Matching detections to true sources (Panes et al. 2021, sec. 3.3).
//!
//! A detection matches a true source when their great-circle distance is at most the match
//! radius (0.3 deg); when several true sources qualify, the one with the highest photon flux
//! S1 (`flux_1000`) is taken. Candidates come from [`SkyIndex`], a grid of cubic cells over
//! the unit vectors of the sources (cell edge = the chord of the radius), so a query looks at
//! 27 cells and there is no all-pairs loop; it has no seam at l = 0/360 and no pole problem.
//!
//! Two modes:
//! * [`match_legacy`] reproduces the published scorer (`from-unek-output-to-locnet-evaluation.py`
//!   of the Gamma-Ray-Point-Source-Detector repository, function `stats_tp_fp_fn`): the
//!   predictions are visited in file order; each is compared with the not-yet-matched truth
//!   rows *of its own patch*; among those within the radius (distance `<=` radius) the one with
//!   the strictly highest `flux_1000` wins (the first in file order on ties) and is removed;
//!   a prediction with no such row is a false positive and carries the nearest remaining row
//!   of its patch outside the radius (first on ties; none: distance 1000). Remaining truth
//!   rows are false negatives, in file order. A source seen in two overlapping patches is
//!   therefore counted twice. Deliberate deviation: a candidate with flux <= 0 can still be
//!   matched (the published code then removed the wrong row, index 0).
//! * [`match_global`] is one-to-one over the whole sky. Sources are deduplicated by
//!   `source_id`. Detections are visited by decreasing `score` (all have one) or in file order
//!   (otherwise); ties keep file order. Each takes the highest-flux **unclaimed** source within
//!   the radius (ties: smaller distance, then smaller source index). A detection whose
//!   candidates are all claimed is a `duplicate` when one of the claimers lies in another patch
//!   (the same source found again in an overlapping patch: neither rewarded nor punished) and a
//!   false positive otherwise (a double detection inside one patch). Why: confidence order is
//!   the COCO/PASCAL convention, it lets the more confident detection take the brighter source
//!   (the paper's "most likely counterpart"), it is deterministic, and a source is counted once.
//!   False positives carry the nearest true source anywhere (for binning by its flux).

use super::input::{Detection, TruthRow};
use crate::coords::angular_distance_deg;
pub use crate::coords::{CellHasher, SkyIndex, chord};
use crate::coords::{chord2, chord2_bound, unit};
use std::collections::HashMap;

/// Outcome of one match-table row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Status {
    /// True positive (stat_code 0).
    TP,
    /// False positive (stat_code 1).
    FP,
    /// False negative (stat_code 2).
    FN,
    /// Global mode: a second detection of an already-matched source from another patch.
    Duplicate,
}

impl Status {
    /// The published scorer's `stat_code` (3 for duplicates, which it does not have).
    pub fn code(self) -> u8 {
        match self {
            Status::TP => 0,
            Status::FP => 1,
            Status::FN => 2,
            Status::Duplicate => 3,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Status::TP => "TP",
            Status::FP => "FP",
            Status::FN => "FN",
            Status::Duplicate => "duplicate",
        }
    }
}

/// One row of the match table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MatchRow {
    pub status: Status,
    /// Index into the detections.
    pub det: Option<usize>,
    /// Index into the truth rows: the matched row (TP), the row itself (FN), the nearest
    /// row (FP, when there is one) or the claimed row (duplicate).
    pub truth: Option<usize>,
    /// Detection-to-truth distance in deg (NaN without both).
    pub distance_deg: f64,
}

/// A match table with its counts.
#[derive(Debug, Clone, Default)]
pub struct Matching {
    pub rows: Vec<MatchRow>,
    pub n_tp: usize,
    pub n_fp: usize,
    pub n_fn: usize,
    pub n_duplicate: usize,
}

impl Matching {
    fn push(&mut self, r: MatchRow) {
        match r.status {
            Status::TP => self.n_tp += 1,
            Status::FP => self.n_fp += 1,
            Status::FN => self.n_fn += 1,
            Status::Duplicate => self.n_duplicate += 1,
        }
        self.rows.push(r);
    }
}

fn flux_of(t: &TruthRow) -> f64 {
    if t.flux_1000_ph_cm2_s.is_nan() {
        f64::NEG_INFINITY
    } else {
        t.flux_1000_ph_cm2_s
    }
}

/// Candidates within the radius of every detection: one flat table, `start[d]..start[d+1]`
/// for detection `d`, each list in the index's cell order.
struct Candidates {
    start: Vec<u32>,
    items: Vec<(u32, f64)>,
}

impl Candidates {
    fn of(&self, d: usize) -> &[(u32, f64)] {
        &self.items[self.start[d] as usize..self.start[d + 1] as usize]
    }
}

/// [`Candidates`] computed in parallel over fixed chunks of the detections and joined in file
/// order (the greedy passes that follow are sequential; nothing depends on the thread count).
fn candidate_lists(index: &SkyIndex, dets: &[Detection], radius_deg: f64) -> Candidates {
    use rayon::prelude::*;
    const CHUNK: usize = 2048;
    type Part = (Vec<u32>, Vec<(u32, f64)>);
    let parts: Vec<Part> = dets
        .par_chunks(CHUNK)
        .map(|chunk| {
            let mut len = Vec::with_capacity(chunk.len());
            let mut items = Vec::with_capacity(chunk.len() * 2);
            for d in chunk {
                let before = items.len();
                index.for_each_within(d.glon_deg, d.glat_deg, radius_deg, |i, x| {
                    items.push((i, x))
                });
                len.push((items.len() - before) as u32);
            }
            (len, items)
        })
        .collect();
    let total: usize = parts.iter().map(|p| p.1.len()).sum();
    let mut start = Vec::with_capacity(dets.len() + 1);
    let mut items = Vec::with_capacity(total);
    start.push(0u32);
    for (len, it) in parts {
        let mut at = *start.last().unwrap_or(&0);
        for l in len {
            at += l;
            start.push(at);
        }
        items.extend(it);
    }
    Candidates { start, items }
}

/// The published per-patch greedy scorer (see the module docs). Detections with a negative
/// `class_id` are skipped, as the published script filtered them before scoring.
pub fn match_legacy(truth: &[TruthRow], dets: &[Detection], radius_deg: f64) -> Matching {
    let pts: Vec<(f64, f64)> = truth.iter().map(|t| (t.glon_deg, t.glat_deg)).collect();
    let index = SkyIndex::new(&pts, radius_deg);
    let mut by_patch: HashMap<i64, Vec<usize>> = HashMap::new();
    for (i, t) in truth.iter().enumerate() {
        by_patch.entry(t.patch_id).or_default().push(i);
    }
    let mut alive = vec![true; truth.len()];
    let mut m = Matching::default();
    let lists = candidate_lists(&index, dets, radius_deg);
    for (di, d) in dets.iter().enumerate() {
        if d.class_id.is_some_and(|k| k < 0) {
            continue;
        }
        let mut best: Option<(usize, f64)> = None;
        for &(i, dist) in lists.of(di) {
            let i = i as usize;
            if !alive[i] || truth[i].patch_id != d.patch_id {
                continue;
            }
            // the highest flux; the first in file order wins ties (as the published
            // strictly-greater scan in file order)
            let better = best.is_none_or(|(b, _)| {
                let (f, fb) = (flux_of(&truth[i]), flux_of(&truth[b]));
                f > fb || (f == fb && i < b)
            });
            if better {
                best = Some((i, dist));
            }
        }
        if let Some((i, dist)) = best {
            alive[i] = false;
            m.push(MatchRow {
                status: Status::TP,
                det: Some(di),
                truth: Some(i),
                distance_deg: dist,
            });
            continue;
        }
        // FP: nearest remaining row of the patch (all are outside the radius here); the
        // first in file order on ties. Rows whose chord shows they are farther than the best
        // so far are skipped before the haversine (the bound is generous, so the haversine
        // still decides every close call).
        let mut near: Option<(usize, f64)> = None;
        let mut bound = f64::INFINITY;
        let v = unit(d.glon_deg, d.glat_deg);
        if let Some(rows) = by_patch.get(&d.patch_id) {
            for &i in rows {
                if !alive[i] || chord2(&index.vec[i], &v) > bound {
                    continue;
                }
                let dist = angular_distance_deg(
                    d.glon_deg,
                    d.glat_deg,
                    truth[i].glon_deg,
                    truth[i].glat_deg,
                );
                if near.is_none_or(|(_, nd)| dist < nd) {
                    near = Some((i, dist));
                    bound = chord2_bound(dist);
                }
            }
        }
        m.push(MatchRow {
            status: Status::FP,
            det: Some(di),
            truth: near.map(|n| n.0),
            distance_deg: near.map(|n| n.1).unwrap_or(f64::NAN),
        });
    }
    for (i, a) in alive.iter().enumerate() {
        if *a {
            m.push(MatchRow {
                status: Status::FN,
                det: None,
                truth: Some(i),
                distance_deg: f64::NAN,
            });
        }
    }
    m
}

/// One-to-one matching across the sky (see the module docs). FN rows point at the first
/// truth row of each unmatched source.
pub fn match_global(truth: &[TruthRow], dets: &[Detection], radius_deg: f64) -> Matching {
    use rayon::prelude::*;
    // unique sources: first row of each source_id
    let mut seen: std::collections::HashSet<i64, std::hash::BuildHasherDefault<CellHasher>> =
        Default::default();
    seen.reserve(truth.len());
    let sources: Vec<usize> = (0..truth.len())
        .filter(|&i| seen.insert(truth[i].source_id))
        .collect();
    drop(seen);
    let pts: Vec<(f64, f64)> = sources
        .iter()
        .map(|&i| (truth[i].glon_deg, truth[i].glat_deg))
        .collect();
    let flux: Vec<f64> = sources.iter().map(|&i| flux_of(&truth[i])).collect();
    let (index, coarse) = rayon::join(
        || SkyIndex::new(&pts, radius_deg),
        || SkyIndex::new(&pts, radius_deg.max(1.0)),
    );
    let mut order: Vec<u32> = (0..dets.len() as u32)
        .filter(|&i| dets[i as usize].class_id.is_none_or(|k| k >= 0))
        .collect();
    if order.iter().all(|&i| dets[i as usize].score.is_some()) {
        // by decreasing score, file order on ties (a stable sort of distinct keys)
        order.par_sort_unstable_by(|&a, &b| {
            let (sa, sb) = (
                dets[a as usize].score.unwrap_or(0.0),
                dets[b as usize].score.unwrap_or(0.0),
            );
            sb.total_cmp(&sa).then(a.cmp(&b))
        });
    }
    let lists = candidate_lists(&index, dets, radius_deg);
    // claimed[s] = detection that took source s
    let mut claimed: Vec<u32> = vec![u32::MAX; sources.len()];
    // the table lists detections in file order: one slot per detection
    let mut slots: Vec<Option<MatchRow>> = vec![None; dets.len()];
    for &di in &order {
        let di = di as usize;
        let d = &dets[di];
        let cands = lists.of(di);
        let mut best: Option<(usize, f64)> = None;
        for &(s, dist) in cands {
            let s = s as usize;
            if claimed[s] != u32::MAX {
                continue;
            }
            let better = match best {
                None => true,
                Some((b, bd)) => {
                    let (f, fb) = (flux[s], flux[b]);
                    f > fb || (f == fb && (dist < bd || (dist == bd && s < b)))
                }
            };
            if better {
                best = Some((s, dist));
            }
        }
        slots[di] = Some(if let Some((s, dist)) = best {
            claimed[s] = di as u32;
            MatchRow {
                status: Status::TP,
                det: Some(di),
                truth: Some(sources[s]),
                distance_deg: dist,
            }
        } else if let Some(&(s, dist)) = cands
            .iter()
            .filter(|(s, _)| {
                let o = claimed[*s as usize];
                o != u32::MAX && dets[o as usize].patch_id != d.patch_id
            })
            .min_by_key(|(s, _)| *s)
        {
            MatchRow {
                status: Status::Duplicate,
                det: Some(di),
                truth: Some(sources[s as usize]),
                distance_deg: dist,
            }
        } else {
            // the nearest source is filled in below, in parallel
            MatchRow {
                status: Status::FP,
                det: Some(di),
                truth: None,
                distance_deg: f64::NAN,
            }
        });
    }
    drop(lists);
    slots.par_iter_mut().with_min_len(256).for_each(|r| {
        if let Some(r) = r
            && r.status == Status::FP
        {
            let d = &dets[r.det.unwrap_or_default()];
            if let Some((s, dist)) = coarse.nearest(d.glon_deg, d.glat_deg) {
                r.truth = Some(sources[s as usize]);
                r.distance_deg = dist;
            }
        }
    });
    let mut m = Matching::default();
    m.rows.reserve(order.len() + sources.len());
    for r in slots.into_iter().flatten() {
        m.push(r);
    }
    for (s, &c) in claimed.iter().enumerate() {
        if c == u32::MAX {
            m.push(MatchRow {
                status: Status::FN,
                det: None,
                truth: Some(sources[s]),
                distance_deg: f64::NAN,
            });
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_within_and_nearest_match_brute_force() {
        use rand::{Rng, SeedableRng};
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let pts: Vec<(f64, f64)> = (0..3000)
            .map(|_| {
                (
                    r.random_range(0.0..360.0),
                    r.random_range(-1.0f64..1.0).asin().to_degrees(),
                )
            })
            .collect();
        let idx = SkyIndex::new(&pts, 2.0);
        for q in 0..200 {
            let (l, b) = if q < 3 {
                [(0.0, 90.0), (359.99, 0.0), (10.0, -90.0)][q]
            } else {
                (
                    r.random_range(0.0..360.0),
                    r.random_range(-1.0f64..1.0).asin().to_degrees(),
                )
            };
            let mut brute: Vec<u32> = (0..pts.len())
                .filter(|&i| angular_distance_deg(l, b, pts[i].0, pts[i].1) <= 2.0)
                .map(|i| i as u32)
                .collect();
            brute.sort();
            let got: Vec<u32> = idx.within(l, b, 2.0).into_iter().map(|p| p.0).collect();
            assert_eq!(got, brute);
            let (bi, bd) = (0..pts.len())
                .map(|i| (i, angular_distance_deg(l, b, pts[i].0, pts[i].1)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap();
            let (ni, nd) = idx.nearest(l, b).unwrap();
            assert_eq!((ni as usize, nd), (bi, bd));
        }
    }
}
