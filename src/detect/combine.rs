//! Union and intersection of two detectors' outputs (Panes et al. 2021, sect. 4: merging
//! UNEK and CNET trades purity for completeness).
//!
//! Two detections match when they are in the same patch and within `radius_deg` on the sky
//! (great circle, the scoring radius, 0.3 deg by default). Matching is greedy on increasing
//! distance and one-to-one.
//! * intersection: one detection per matched pair, at the mean of the two pixel positions
//!   (sky coordinates taken from the pair's mean too), score the smaller of the two;
//! * union: every matched pair once (as in the intersection) plus every unmatched detection
//!   of either input.

use super::Detection;
use crate::coords::angular_distance_deg;
use std::collections::BTreeMap;

/// Default matching radius of the scorer, deg.
pub const SCORING_RADIUS_DEG: f64 = 0.3;

/// One-to-one matches `(i in a, j in b)` within `radius_deg` in the same patch.
pub fn match_pairs(a: &[Detection], b: &[Detection], radius_deg: f64) -> Vec<(usize, usize)> {
    let mut by_patch: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
    for (j, d) in b.iter().enumerate() {
        by_patch.entry(d.patch_id).or_default().push(j);
    }
    let mut cands: Vec<(f64, usize, usize)> = Vec::new();
    for (i, da) in a.iter().enumerate() {
        for &j in by_patch
            .get(&da.patch_id)
            .map(|v| v.as_slice())
            .unwrap_or(&[])
        {
            let db = &b[j];
            let d = angular_distance_deg(da.glon_deg, da.glat_deg, db.glon_deg, db.glat_deg);
            if d <= radius_deg {
                cands.push((d, i, j));
            }
        }
    }
    cands.sort_by(|x, y| x.partial_cmp(y).expect("finite distances"));
    let (mut used_a, mut used_b) = (vec![false; a.len()], vec![false; b.len()]);
    let mut out = Vec::new();
    for (_, i, j) in cands {
        if !used_a[i] && !used_b[j] {
            used_a[i] = true;
            used_b[j] = true;
            out.push((i, j));
        }
    }
    out.sort_unstable();
    out
}

fn merged(a: &Detection, b: &Detection, name: &str) -> Detection {
    // Mean on the sky through unit vectors (safe across l = 0/360).
    let v = |l: f64, b: f64| {
        let (l, b) = (l.to_radians(), b.to_radians());
        [b.cos() * l.cos(), b.cos() * l.sin(), b.sin()]
    };
    let (va, vb) = (v(a.glon_deg, a.glat_deg), v(b.glon_deg, b.glat_deg));
    let m = [va[0] + vb[0], va[1] + vb[1], va[2] + vb[2]];
    let n = (m[0] * m[0] + m[1] * m[1] + m[2] * m[2]).sqrt();
    let glat = (m[2] / n).asin().to_degrees();
    let glon = m[1].atan2(m[0]).to_degrees().rem_euclid(360.0);
    Detection {
        patch_id: a.patch_id,
        x_pix: 0.5 * (a.x_pix + b.x_pix),
        y_pix: 0.5 * (a.y_pix + b.y_pix),
        glon_deg: glon,
        glat_deg: glat,
        score: a.score.min(b.score),
        detector: name.to_string(),
    }
}

/// Detections found by both inputs (one per matched pair).
pub fn intersection(a: &[Detection], b: &[Detection], radius_deg: f64) -> Vec<Detection> {
    let name = format!("{}&{}", label(a), label(b));
    match_pairs(a, b, radius_deg)
        .into_iter()
        .map(|(i, j)| merged(&a[i], &b[j], &name))
        .collect()
}

/// Detections found by either input (matched pairs counted once).
pub fn union(a: &[Detection], b: &[Detection], radius_deg: f64) -> Vec<Detection> {
    let name = format!("{}|{}", label(a), label(b));
    let pairs = match_pairs(a, b, radius_deg);
    let (mut in_a, mut in_b) = (vec![false; a.len()], vec![false; b.len()]);
    let mut out = Vec::new();
    for &(i, j) in &pairs {
        in_a[i] = true;
        in_b[j] = true;
        out.push(merged(&a[i], &b[j], &name));
    }
    for (d, used) in a.iter().zip(&in_a).chain(b.iter().zip(&in_b)) {
        if !used {
            out.push(Detection {
                detector: name.clone(),
                ..d.clone()
            });
        }
    }
    out.sort_by(|x, y| {
        (x.patch_id, x.y_pix, x.x_pix)
            .partial_cmp(&(y.patch_id, y.y_pix, y.x_pix))
            .expect("finite positions")
    });
    out
}

/// Provisional purity and completeness against the truth of a patch set (the scoring stage
/// does the full job): detections and true sources of the same patch are matched one-to-one
/// within `radius_deg`, nearest first. Returns `(purity, completeness, n_detections,
/// n_true)`.
pub fn provisional_scores(
    dets: &[Detection],
    patches: &super::PatchSet,
    radius_deg: f64,
) -> (f64, f64, usize, usize) {
    let geom = crate::projection::PatchGeometry {
        size: patches.size(),
        ..Default::default()
    };
    let truth: Vec<Detection> = patches
        .truth
        .iter()
        .enumerate()
        .flat_map(|(i, srcs)| {
            let (l0, b0) = patches.centres_deg[i];
            srcs.iter().map(move |s| {
                let (l, b) = geom.pix_to_sky(l0, b0, s.x_pix, s.y_pix);
                Detection {
                    patch_id: s.patch_id,
                    x_pix: s.x_pix,
                    y_pix: s.y_pix,
                    glon_deg: l,
                    glat_deg: b,
                    score: s.flux_1000_ph_cm2_s,
                    detector: "truth".into(),
                }
            })
        })
        .collect();
    let tp = match_pairs(dets, &truth, radius_deg).len();
    let purity = if dets.is_empty() {
        f64::NAN
    } else {
        tp as f64 / dets.len() as f64
    };
    let completeness = if truth.is_empty() {
        f64::NAN
    } else {
        tp as f64 / truth.len() as f64
    };
    (purity, completeness, dets.len(), truth.len())
}

fn label(d: &[Detection]) -> String {
    d.first().map(|x| x.detector.clone()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(patch: u64, l: f64, b: f64, name: &str) -> Detection {
        Detection {
            patch_id: patch,
            x_pix: l,
            y_pix: b,
            glon_deg: l,
            glat_deg: b,
            score: 1.0,
            detector: name.into(),
        }
    }

    #[test]
    fn union_and_intersection_on_hand_made_lists() {
        // a: three sources; b: one matches a[0] (0.1 deg away), one is 0.5 deg from a[1]
        // (no match), one matches a[2] only by position but in another patch (no match).
        let a = vec![
            det(0, 10.0, 0.0, "a"),
            det(0, 12.0, 1.0, "a"),
            det(1, 20.0, 0.0, "a"),
        ];
        let b = vec![
            det(0, 10.1, 0.0, "b"),
            det(0, 12.5, 1.0, "b"),
            det(2, 20.0, 0.0, "b"),
        ];
        let i = intersection(&a, &b, 0.3);
        assert_eq!(i.len(), 1);
        assert!((i[0].glon_deg - 10.05).abs() < 1e-6 && i[0].glat_deg.abs() < 1e-9);
        assert_eq!(i[0].detector, "a&b");
        let u = union(&a, &b, 0.3);
        assert_eq!(u.len(), 5);
        // A tight radius matches nothing: the union is everything.
        assert_eq!(union(&a, &b, 0.05).len(), 6);
        assert!(intersection(&a, &b, 0.05).is_empty());
    }

    #[test]
    fn matching_is_one_to_one_and_nearest_first() {
        let a = vec![det(0, 10.0, 0.0, "a"), det(0, 10.2, 0.0, "a")];
        let b = vec![det(0, 10.15, 0.0, "b")];
        let p = match_pairs(&a, &b, 0.3);
        assert_eq!(p, vec![(1, 0)]);
        assert_eq!(union(&a, &b, 0.3).len(), 2);
    }
}
