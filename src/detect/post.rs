//! After every head: non-maximum suppression of crowded detections and the operating
//! threshold, and the scan that chooses that threshold on the validation sky.
//!
//! * [`suppress`]: within one patch, detections are visited by decreasing score (file
//!   order on ties) and one closer than `min_separation_px` to an already kept detection is
//!   dropped (the greedy non-maximum suppression of object detectors). The match radius of
//!   the scorer is 0.3 deg = about 3 px, so two detections of one source closer than that
//!   can never both be true positives; one farther away is a false positive on its own.
//! * [`scan`]: for candidate thresholds `t` (every distinct score, thinned to at most
//!   [`MAX_CANDIDATES`] quantiles), the detections with `score >= t` matched to the truth
//!   by the configured scorer ([`crate::score::run_matching`]): purity, completeness, F1.
//! * [`choose`]: the threshold with the highest completeness among those whose purity is at
//!   least the target (ties: the lower threshold), else the one with the highest F1.

use super::Detection;
use crate::config::ScoreConfig;
use crate::patches::truth::TruthRow;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Most candidate thresholds a [`scan`] tries.
pub const MAX_CANDIDATES: usize = 200;

/// Drops detections closer than `min_separation_px` to a higher-scoring one of the same
/// patch; order of the survivors as given. `min_separation_px <= 0` keeps everything.
pub fn suppress(dets: Vec<Detection>, min_separation_px: f64) -> Vec<Detection> {
    if min_separation_px <= 0.0 {
        return dets;
    }
    let r2 = min_separation_px * min_separation_px;
    let mut by_patch: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (i, d) in dets.iter().enumerate() {
        by_patch.entry(d.patch_id).or_default().push(i);
    }
    let mut keep = vec![false; dets.len()];
    for idx in by_patch.values() {
        let mut order = idx.clone();
        // stable: file order on equal scores; NaN scores last
        order.sort_by(|&a, &b| {
            let (sa, sb) = (dets[a].score, dets[b].score);
            sb.partial_cmp(&sa)
                .unwrap_or_else(|| sa.is_nan().cmp(&sb.is_nan()))
        });
        let mut kept: Vec<usize> = Vec::new();
        for i in order {
            let d = &dets[i];
            let close = kept.iter().any(|&k| {
                let e = &dets[k];
                (d.x_pix - e.x_pix).powi(2) + (d.y_pix - e.y_pix).powi(2) < r2
            });
            if !close {
                kept.push(i);
                keep[i] = true;
            }
        }
    }
    dets.into_iter()
        .zip(keep)
        .filter_map(|(d, k)| k.then_some(d))
        .collect()
}

/// The detections scoring at least `min_score`.
pub fn above(dets: Vec<Detection>, min_score: f64) -> Vec<Detection> {
    dets.into_iter().filter(|d| d.score >= min_score).collect()
}

/// One candidate threshold of a [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScanRow {
    pub min_score: f64,
    pub n_detections: usize,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub purity: f64,
    pub completeness: f64,
    pub f1: f64,
}

/// The scorer's view of a detection (its sky position both computed and "given", so the
/// legacy scorer, which matches on the given one, sees the same).
fn for_scoring(d: &Detection, line: usize) -> crate::score::input::Detection {
    crate::score::input::Detection {
        line,
        patch_id: d.patch_id as i64,
        x_pix: d.x_pix,
        y_pix: d.y_pix,
        glon_deg: d.glon_deg,
        glat_deg: d.glat_deg,
        sky_given_deg: Some((d.glon_deg, d.glat_deg)),
        catalog: None,
        score: Some(d.score),
        class_id: None,
        probs: None,
        flux_1000_ph_cm2_s: None,
    }
}

/// Purity, completeness and F1 of `dets` against `truth` with the scorer of `cfg`.
pub fn evaluate(
    truth: &[TruthRow],
    dets: &[Detection],
    min_score: f64,
    cfg: &ScoreConfig,
) -> ScanRow {
    let kept: Vec<crate::score::input::Detection> = dets
        .iter()
        .filter(|d| d.score >= min_score)
        .enumerate()
        .map(|(i, d)| for_scoring(d, i + 2))
        .collect();
    let m = crate::score::run_matching(truth, &kept, cfg);
    let ratio = |k: usize, n: usize| if n > 0 { k as f64 / n as f64 } else { f64::NAN };
    // duplicates (a source found again in an overlapping patch) count neither way
    let purity = ratio(m.n_tp, m.n_tp + m.n_fp);
    let completeness = ratio(m.n_tp, m.n_tp + m.n_fn);
    let f1 = if purity + completeness > 0.0 {
        2.0 * purity * completeness / (purity + completeness)
    } else {
        f64::NAN
    };
    ScanRow {
        min_score,
        n_detections: kept.len(),
        tp: m.n_tp,
        fp: m.n_fp,
        fn_: m.n_fn,
        purity,
        completeness,
        f1,
    }
}

/// Candidate thresholds: `-inf` (everything) and the distinct scores, thinned to at most
/// [`MAX_CANDIDATES`] evenly spaced ranks.
pub fn candidates(dets: &[Detection]) -> Vec<f64> {
    let mut s: Vec<f64> = dets
        .iter()
        .map(|d| d.score)
        .filter(|v| v.is_finite())
        .collect();
    s.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    s.dedup();
    let mut out = vec![f64::NEG_INFINITY];
    if s.len() <= MAX_CANDIDATES {
        out.extend(s);
    } else {
        let step = (s.len() - 1) as f64 / (MAX_CANDIDATES - 1) as f64;
        let mut last = usize::MAX;
        for j in 0..MAX_CANDIDATES {
            let i = (j as f64 * step).round() as usize;
            if i != last {
                out.push(s[i]);
                last = i;
            }
        }
    }
    out
}

/// Every candidate threshold of `dets`, scored.
pub fn scan(truth: &[TruthRow], dets: &[Detection], cfg: &ScoreConfig) -> Vec<ScanRow> {
    use rayon::prelude::*;
    candidates(dets)
        .par_iter()
        .map(|&t| evaluate(truth, dets, t, cfg))
        .collect()
}

/// The operating point chosen from a scan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub row: ScanRow,
    /// `purity_at_least` (the target was reached), `max_f1` or `keep_all` (nothing found).
    pub rule: &'static str,
}

/// The highest-completeness threshold with purity `>= target_purity` (ties: the lower
/// threshold), else the highest-F1 one (ties: the lower), else (nothing detected) the first
/// row, which keeps everything; `None` for an empty scan.
pub fn choose(rows: &[ScanRow], target_purity: f64) -> Option<Choice> {
    let better = |a: &ScanRow, b: &ScanRow, key: fn(&ScanRow) -> f64| {
        let (ka, kb) = (key(a), key(b));
        ka > kb || (ka == kb && a.min_score < b.min_score)
    };
    let mut best: Option<ScanRow> = None;
    for r in rows
        .iter()
        .filter(|r| r.purity >= target_purity && r.completeness.is_finite())
    {
        if best.is_none_or(|b| better(r, &b, |x| x.completeness)) {
            best = Some(*r);
        }
    }
    if let Some(row) = best {
        return Some(Choice {
            row,
            rule: "purity_at_least",
        });
    }
    for r in rows.iter().filter(|r| r.f1.is_finite()) {
        if best.is_none_or(|b| better(r, &b, |x| x.f1)) {
            best = Some(*r);
        }
    }
    if let Some(row) = best {
        return Some(Choice {
            row,
            rule: "max_f1",
        });
    }
    // nothing detected (no purity, no F1): keep everything, the threshold is moot
    rows.first().map(|&row| Choice {
        row,
        rule: "keep_all",
    })
}

/// Writes a scan as CSV (`min_score,n_detections,tp,fp,fn,purity,completeness,f1`).
pub fn write_scan(path: &std::path::Path, rows: &[ScanRow]) -> crate::error::Result<()> {
    use crate::formats::fmt_f64;
    let mut s = String::from("min_score,n_detections,tp,fp,fn,purity,completeness,f1\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            fmt_f64(r.min_score),
            r.n_detections,
            r.tp,
            r.fp,
            r.fn_,
            fmt_f64(r.purity),
            fmt_f64(r.completeness),
            fmt_f64(r.f1)
        ));
    }
    crate::formats::atomic_write(path, s.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(patch: u64, x: f64, y: f64, score: f64) -> Detection {
        Detection {
            patch_id: patch,
            x_pix: x,
            y_pix: y,
            glon_deg: 0.0,
            glat_deg: 0.0,
            score,
            detector: "t".into(),
        }
    }

    #[test]
    fn suppression_keeps_the_strongest_of_a_crowd_per_patch() {
        let d = vec![
            det(1, 10.0, 10.0, 0.5),
            det(1, 11.0, 10.0, 0.9), // strongest of the crowd
            det(1, 12.5, 10.0, 0.7), // 1.5 px from the strongest: dropped
            det(1, 20.0, 10.0, 0.3), // far: kept
            det(2, 10.5, 10.0, 0.1), // other patch: kept
        ];
        let out = suppress(d, 2.0);
        let xs: Vec<(u64, f64)> = out.iter().map(|d| (d.patch_id, d.x_pix)).collect();
        assert_eq!(xs, vec![(1, 11.0), (1, 20.0), (2, 10.5)]);
        // exactly at the separation is kept (strictly closer is dropped)
        let out = suppress(vec![det(1, 0.0, 0.0, 1.0), det(1, 2.0, 0.0, 0.5)], 2.0);
        assert_eq!(out.len(), 2);
        assert_eq!(
            suppress(vec![det(1, 0.0, 0.0, 1.0), det(1, 0.0, 0.0, 1.0)], 0.0).len(),
            2
        );
    }

    fn row(t: f64, p: f64, c: f64) -> ScanRow {
        ScanRow {
            min_score: t,
            n_detections: 0,
            tp: 0,
            fp: 0,
            fn_: 0,
            purity: p,
            completeness: c,
            f1: 2.0 * p * c / (p + c),
        }
    }

    #[test]
    fn choice_takes_the_most_complete_threshold_at_the_target_purity_else_max_f1() {
        let rows = [
            row(0.1, 0.6, 0.9),
            row(0.3, 0.91, 0.6),
            row(0.5, 0.95, 0.5),
            row(0.2, 0.89, 0.7),
        ];
        let c = choose(&rows, 0.9).unwrap();
        assert_eq!((c.row.min_score, c.rule), (0.3, "purity_at_least"));
        let c = choose(&rows, 0.99).unwrap();
        // F1: 0.72, 0.723, 0.655, 0.785 -> 0.2
        assert_eq!((c.row.min_score, c.rule), (0.2, "max_f1"));
        assert!(choose(&[], 0.9).is_none());
        let nothing = row(f64::NEG_INFINITY, f64::NAN, 0.0);
        assert_eq!(choose(&[nothing], 0.9).unwrap().rule, "keep_all");
    }

    #[test]
    fn candidates_are_thinned_and_start_with_everything() {
        let d: Vec<Detection> = (0..1000).map(|i| det(1, 0.0, 0.0, i as f64)).collect();
        let c = candidates(&d);
        assert_eq!(c[0], f64::NEG_INFINITY);
        assert_eq!(c.len(), MAX_CANDIDATES + 1);
        assert_eq!((c[1], *c.last().unwrap()), (0.0, 999.0));
        assert!(c.windows(2).all(|w| w[0] < w[1]));
    }
}
