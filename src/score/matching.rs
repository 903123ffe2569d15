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
use std::collections::HashMap;

/// A small multiplicative hasher for integer cell keys (SipHash is needlessly slow here and
/// the keys are not attacker-controlled).
#[derive(Default, Clone, Copy)]
pub struct CellHasher(u64);

impl std::hash::Hasher for CellHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_i32(&mut self, i: i32) {
        self.write_u64(i as u32 as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

type CellMap = HashMap<(i32, i32, i32), (u32, u32), std::hash::BuildHasherDefault<CellHasher>>;

/// A spatial index of points on the sphere.
#[derive(Debug, Clone)]
pub struct SkyIndex {
    cell: f64,
    /// Sorted cell keys and the start of each in `order`.
    cells: CellMap,
    order: Vec<u32>,
    lon: Vec<f64>,
    lat: Vec<f64>,
    vec: Vec<[f64; 3]>,
}

/// Squared chord between two unit vectors.
#[inline]
fn chord2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// A squared chord that every point within `angle_deg` (haversine) stays under, with a wide
/// margin for rounding in both computations (NaN for NaN).
#[inline]
fn chord2_bound(angle_deg: f64) -> f64 {
    (chord(angle_deg) * (1.0 + 1e-9) + 1e-12).powi(2)
}

fn unit(lon_deg: f64, lat_deg: f64) -> [f64; 3] {
    let (l, b) = (lon_deg.to_radians(), lat_deg.to_radians());
    [b.cos() * l.cos(), b.cos() * l.sin(), b.sin()]
}

/// Chord length of an angle in deg.
pub fn chord(angle_deg: f64) -> f64 {
    2.0 * (angle_deg.min(180.0).to_radians() / 2.0).sin()
}

impl SkyIndex {
    /// Builds the index; `cell_deg` is the typical query radius (points with NaN coordinates
    /// are kept but never returned).
    pub fn new(lon_lat_deg: &[(f64, f64)], cell_deg: f64) -> Self {
        let cell = chord(cell_deg).max(1e-9);
        let vec: Vec<[f64; 3]> = lon_lat_deg.iter().map(|&(l, b)| unit(l, b)).collect();
        let key = |v: &[f64; 3]| -> (i32, i32, i32) {
            (
                (v[0] / cell).floor() as i32,
                (v[1] / cell).floor() as i32,
                (v[2] / cell).floor() as i32,
            )
        };
        let mut keyed: Vec<((i32, i32, i32), u32)> = vec
            .iter()
            .enumerate()
            .filter(|(_, v)| v.iter().all(|c| c.is_finite()))
            .map(|(i, v)| (key(v), i as u32))
            .collect();
        keyed.sort_unstable();
        let mut cells = CellMap::default();
        let mut start = 0usize;
        while start < keyed.len() {
            let k = keyed[start].0;
            let mut end = start;
            while end < keyed.len() && keyed[end].0 == k {
                end += 1;
            }
            cells.insert(k, (start as u32, end as u32));
            start = end;
        }
        Self {
            cell,
            cells,
            order: keyed.into_iter().map(|(_, i)| i).collect(),
            lon: lon_lat_deg.iter().map(|p| p.0).collect(),
            lat: lon_lat_deg.iter().map(|p| p.1).collect(),
            vec,
        }
    }

    fn cell_of(&self, v: &[f64; 3]) -> (i32, i32, i32) {
        (
            (v[0] / self.cell).floor() as i32,
            (v[1] / self.cell).floor() as i32,
            (v[2] / self.cell).floor() as i32,
        )
    }

    fn visit_cell(&self, k: (i32, i32, i32), f: &mut impl FnMut(u32)) {
        if let Some(&(a, b)) = self.cells.get(&k) {
            for &i in &self.order[a as usize..b as usize] {
                f(i);
            }
        }
    }

    /// Indices of the points within `radius_deg` (great circle, inclusive) of `(lon, lat)`,
    /// with their distances, in increasing index order.
    pub fn within(&self, lon_deg: f64, lat_deg: f64, radius_deg: f64) -> Vec<(u32, f64)> {
        let mut out = Vec::new();
        self.for_each_within(lon_deg, lat_deg, radius_deg, |i, d| out.push((i, d)));
        out.sort_unstable_by_key(|p| p.0);
        out
    }

    /// Calls `f(index, distance_deg)` for every point within `radius_deg` (inclusive; the
    /// haversine distance decides), in no particular order. A cheap chord test on the unit
    /// vectors discards the far candidates first.
    pub fn for_each_within(
        &self,
        lon_deg: f64,
        lat_deg: f64,
        radius_deg: f64,
        mut f: impl FnMut(u32, f64),
    ) {
        if !(lon_deg.is_finite() && lat_deg.is_finite()) {
            return;
        }
        let v = unit(lon_deg, lat_deg);
        let c = chord(radius_deg);
        let c2 = (c * (1.0 + 1e-9) + 1e-15).powi(2);
        // only the cells the ball of radius c (slightly padded) touches: <= 8 when c <= cell
        let pad = c * (1.0 + 1e-9) + 1e-15;
        let span = |x: f64| {
            (
                ((x - pad) / self.cell).floor() as i32,
                ((x + pad) / self.cell).floor() as i32,
            )
        };
        let ((x0, x1), (y0, y1), (z0, z1)) = (span(v[0]), span(v[1]), span(v[2]));
        for cx in x0..=x1 {
            for cy in y0..=y1 {
                for cz in z0..=z1 {
                    self.visit_cell((cx, cy, cz), &mut |i| {
                        let w = &self.vec[i as usize];
                        let d2 =
                            (w[0] - v[0]).powi(2) + (w[1] - v[1]).powi(2) + (w[2] - v[2]).powi(2);
                        if d2 > c2 {
                            return;
                        }
                        let d = angular_distance_deg(
                            lon_deg,
                            lat_deg,
                            self.lon[i as usize],
                            self.lat[i as usize],
                        );
                        if d <= radius_deg {
                            f(i, d);
                        }
                    });
                }
            }
        }
    }

    /// The nearest point (smallest distance, then smallest index) and its distance in deg.
    pub fn nearest(&self, lon_deg: f64, lat_deg: f64) -> Option<(u32, f64)> {
        if !(lon_deg.is_finite() && lat_deg.is_finite()) || self.order.is_empty() {
            return None;
        }
        let v = unit(lon_deg, lat_deg);
        let (cx, cy, cz) = self.cell_of(&v);
        let mut best: Option<(u32, f64)> = None;
        // squared chord above which a point cannot be as near as the best so far (a generous
        // bound, so the haversine distance alone still decides every close call)
        let mut bound = f64::INFINITY;
        let mut consider = |i: u32, best: &mut Option<(u32, f64)>| {
            if chord2(&self.vec[i as usize], &v) > bound {
                return;
            }
            let d =
                angular_distance_deg(lon_deg, lat_deg, self.lon[i as usize], self.lat[i as usize]);
            let better = match best {
                None => true,
                Some((bi, bd)) => d < *bd || (d == *bd && i < *bi),
            };
            if better {
                *best = Some((i, d));
                bound = chord2_bound(d);
            }
        };
        for k in 0i32.. {
            if k > 6 {
                // Sparse sky: a plain scan is cheaper than more shells.
                for &i in &self.order {
                    consider(i, &mut best);
                }
                return best;
            }
            for dx in -k..=k {
                for dy in -k..=k {
                    for dz in -k..=k {
                        if dx.abs().max(dy.abs()).max(dz.abs()) != k {
                            continue;
                        }
                        self.visit_cell((cx + dx, cy + dy, cz + dz), &mut |i| {
                            consider(i, &mut best)
                        });
                    }
                }
            }
            // Anything outside shell k differs by more than k cells along one axis.
            if let Some((_, d)) = best
                && chord(d) <= k as f64 * self.cell
            {
                return best;
            }
        }
        best
    }

    /// Unit vector of point `i`.
    pub fn vector(&self, i: usize) -> [f64; 3] {
        self.vec[i]
    }
}

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
