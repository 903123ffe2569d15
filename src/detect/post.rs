//! After every trained head: non-maximum suppression of crowded detections and the operating
//! threshold (chosen on the validation sky by `score::threshold`).
//!
//! * [`suppress`]: within one patch, detections are visited by decreasing score (file
//!   order on ties) and one closer than `min_separation_px` to an already kept detection is
//!   dropped (the greedy non-maximum suppression of object detectors). The match radius of
//!   the scorer is 0.3 deg = about 3 px, so two detections of one source closer than that
//!   can never both be true positives; one farther away is a false positive on its own.

use super::Detection;
use std::collections::BTreeMap;

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

#[cfg(test)]
mod tests {
    use super::*;

    fn det(patch: u64, x: f64, y: f64, score: f64) -> Detection {
        Detection::at(patch, x, y, score)
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
}
