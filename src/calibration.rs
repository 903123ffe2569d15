//! Detection scores as probabilities (issue 18): `p_real`, the calibrated probability that a
//! detection is a true source, and how well it is calibrated. Pure arithmetic below every
//! stage: the `threshold` stage fits it ([`crate::score::threshold`], which labels the
//! detections with the scorer, [`crate::score::calibration::labels`]), the `detect` stage
//! applies it and the `score` stage measures it.
//!
//! * [`Isotonic::fit`]: isotonic regression of the true-positive indicator on the head's
//!   score (pool adjacent violators; Zadrozny & Elkan 2002, Niculescu-Mizil & Caruana 2005),
//!   fitted by the `threshold` stage on the validation detections (the validation sky, or a
//!   cross-validated network's held-out fold), matched to the truth by the grid's scorer
//!   (duplicates left out: they count neither way). [`Isotonic::predict`] is
//!   scikit-learn's `IsotonicRegression(increasing=True, out_of_bounds="clip")`: each pooled
//!   block keeps its lowest and highest score, the prediction interpolates linearly between
//!   consecutive block ends and is clipped beyond the first and last.
//! * [`reliability`]: the reliability diagram of a test sky's detections (ten equal-width
//!   bins of `p_real`: mean `p_real` and the fraction of true positives per bin) and its
//!   expected calibration error `ECE = sum_b (n_b / N) |frac_b - mean_b|` (Guo et al. 2017).

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The calibration the `threshold` stage fits (part of its key).
pub const METHOD: &str = "isotonic";
/// The `threshold` stage's calibration file.
pub const FILE: &str = "calibration.json";

/// The calibration of a `threshold` stage's output directory (`None`: it fitted none,
/// nothing was detected on the validation patches).
pub fn read(dir: &Path) -> Result<Option<Isotonic>> {
    let p = dir.join(FILE);
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::bad_file(&p, e))?;
    if v["isotonic"].is_null() {
        return Ok(None);
    }
    serde_json::from_value(v["isotonic"].clone())
        .map(Some)
        .map_err(|e| Error::bad_file(&p, e))
}

/// A fitted isotonic (non-decreasing) map from score to probability.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Isotonic {
    /// Block ends: scores, non-decreasing (each block contributes its lowest and highest).
    pub x: Vec<f64>,
    /// Probability at each block end.
    pub y: Vec<f64>,
}

impl Isotonic {
    /// Fits the map to `(score, is_true_positive)` pairs (non-finite scores ignored); `None`
    /// when there is nothing to fit.
    pub fn fit(scores: &[f64], labels: &[bool]) -> Option<Self> {
        let mut pts: Vec<(f64, f64)> = scores
            .iter()
            .zip(labels)
            .filter(|(s, _)| s.is_finite())
            .map(|(s, l)| (*s, f64::from(u8::from(*l))))
            .collect();
        if pts.is_empty() {
            return None;
        }
        pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        // equal scores first pooled into one point (scikit-learn's handling of ties)
        let mut xs: Vec<(f64, f64, f64)> = Vec::new(); // (score, sum of labels, weight)
        for (s, l) in pts {
            match xs.last_mut() {
                Some(last) if last.0 == s => {
                    last.1 += l;
                    last.2 += 1.0;
                }
                _ => xs.push((s, l, 1.0)),
            }
        }
        // pool adjacent violators: blocks (lo score, hi score, sum, weight)
        let mut blocks: Vec<(f64, f64, f64, f64)> = Vec::new();
        for (s, sum, w) in xs {
            blocks.push((s, s, sum, w));
            while blocks.len() >= 2 {
                let n = blocks.len();
                let (a, b) = (blocks[n - 2], blocks[n - 1]);
                if a.2 / a.3 <= b.2 / b.3 {
                    break;
                }
                blocks.truncate(n - 2);
                blocks.push((a.0, b.1, a.2 + b.2, a.3 + b.3));
            }
        }
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (lo, hi, sum, w) in blocks {
            let v = sum / w;
            x.push(lo);
            y.push(v);
            if hi > lo {
                x.push(hi);
                y.push(v);
            }
        }
        Some(Self { x, y })
    }

    /// The probability at `score` (clipped to the fitted range; NaN for a NaN score).
    pub fn predict(&self, score: f64) -> f64 {
        if score.is_nan() || self.x.is_empty() {
            return f64::NAN;
        }
        let n = self.x.len();
        if score <= self.x[0] {
            return self.y[0];
        }
        if score >= self.x[n - 1] {
            return self.y[n - 1];
        }
        // first block end above the score
        let j = self.x.partition_point(|&v| v <= score);
        let (x0, x1, y0, y1) = (self.x[j - 1], self.x[j], self.y[j - 1], self.y[j]);
        if x1 == x0 {
            return y1;
        }
        y0 + (y1 - y0) * (score - x0) / (x1 - x0)
    }
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ReliabilityBin {
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    /// Mean predicted probability in the bin (NaN when empty).
    pub mean_p: f64,
    /// Fraction of true positives in the bin (NaN when empty).
    pub frac_true: f64,
}

/// Reliability diagram (`n_bins` equal-width bins of [0, 1]; a probability of exactly 1 in
/// the last) and the expected calibration error; `ece` is NaN without detections.
pub fn reliability(p: &[f64], labels: &[bool], n_bins: usize) -> (Vec<ReliabilityBin>, f64) {
    let mut sum_p = vec![0.0; n_bins];
    let mut sum_t = vec![0.0; n_bins];
    let mut n = vec![0usize; n_bins];
    let mut total = 0usize;
    for (q, l) in p.iter().zip(labels) {
        if !q.is_finite() {
            continue;
        }
        let q = q.clamp(0.0, 1.0);
        let b = ((q * n_bins as f64) as usize).min(n_bins - 1);
        sum_p[b] += q;
        sum_t[b] += f64::from(u8::from(*l));
        n[b] += 1;
        total += 1;
    }
    let bins: Vec<ReliabilityBin> = (0..n_bins)
        .map(|b| ReliabilityBin {
            lo: b as f64 / n_bins as f64,
            hi: (b + 1) as f64 / n_bins as f64,
            n: n[b],
            mean_p: if n[b] > 0 {
                sum_p[b] / n[b] as f64
            } else {
                f64::NAN
            },
            frac_true: if n[b] > 0 {
                sum_t[b] / n[b] as f64
            } else {
                f64::NAN
            },
        })
        .collect();
    let ece = if total == 0 {
        f64::NAN
    } else {
        bins.iter()
            .filter(|b| b.n > 0)
            .map(|b| b.n as f64 / total as f64 * (b.frac_true - b.mean_p).abs())
            .sum()
    };
    (bins, ece)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Values from scikit-learn 1.9.1: `IsotonicRegression(out_of_bounds="clip")` fitted to
    /// x = [1, 2, 3, 4, 5, 6, 7, 8], y = [0, 1, 0, 0, 1, 0, 1, 1]:
    /// predict([0, 1, 2.5, 4, 4.5, 5.5, 7, 9]) = [0, 0, 1/3, 1/3, 0.41667, 0.5, 1, 1]
    /// (blocks {1}: 0, {2, 3, 4}: 1/3, {5, 6}: 1/2, {7}, {8}: 1).
    #[test]
    fn isotonic_matches_scikit_learn() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        let y = [false, true, false, false, true, false, true, true];
        let f = Isotonic::fit(&x, &y).unwrap();
        let got: Vec<f64> = [0.0, 1.0, 2.5, 4.0, 4.5, 5.5, 7.0, 9.0]
            .iter()
            .map(|&s| f.predict(s))
            .collect();
        let want = [
            0.0,
            0.0,
            1.0 / 3.0,
            1.0 / 3.0,
            0.416_666_666_666_666_7,
            0.5,
            1.0,
            1.0,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-12, "{got:?} vs {want:?}");
        }
        // ties pooled first: x = [1, 1, 2, 2, 3], y = [1, 0, 0, 0, 1] ->
        // predict([1, 1.5, 2, 2.5, 3]) = [0.25, 0.25, 0.25, 0.625, 1] (scikit-learn 1.9.1)
        let f = Isotonic::fit(
            &[1.0, 1.0, 2.0, 2.0, 3.0],
            &[true, false, false, false, true],
        )
        .unwrap();
        let got: Vec<f64> = [1.0, 1.5, 2.0, 2.5, 3.0]
            .iter()
            .map(|&s| f.predict(s))
            .collect();
        assert_eq!(got, vec![0.25, 0.25, 0.25, 0.625, 1.0]);
    }

    proptest! {
        #[test]
        fn isotonic_is_monotone_in_range_and_no_worse_than_raw(
            scores in proptest::collection::vec(0.0f64..1.0, 20..200),
            seed in 0u64..1000,
        ) {
            use rand::Rng;
            let mut rng = crate::rng::stream(seed, "test/iso", 0);
            // true positives with probability score^2: the raw score is miscalibrated
            let labels: Vec<bool> = scores.iter().map(|s| rng.random::<f64>() < s * s).collect();
            let f = Isotonic::fit(&scores, &labels).unwrap();
            let mut grid: Vec<f64> = (0..=100).map(|i| i as f64 / 100.0).collect();
            grid.extend(scores.iter().copied());
            grid.sort_by(|a, b| a.total_cmp(b));
            let p: Vec<f64> = grid.iter().map(|&s| f.predict(s)).collect();
            for w in p.windows(2) {
                prop_assert!(w[1] >= w[0] - 1e-12);
            }
            prop_assert!(p.iter().all(|v| (0.0..=1.0).contains(v)));
            // in-sample, isotonic regression minimises the squared error over every
            // non-decreasing map, the raw score included
            let fitted: Vec<f64> = scores.iter().map(|&s| f.predict(s)).collect();
            let sq = |q: &[f64]| -> f64 {
                q.iter().zip(&labels).map(|(a, l)| (a - f64::from(u8::from(*l))).powi(2)).sum()
            };
            prop_assert!(sq(&fitted) <= sq(&scores) + 1e-9);
        }
    }

    /// A synthetic case with a known answer: scores uniform in [0, 1], true with probability
    /// score^2. The raw score's ECE is about E|s - s^2| = 1/6; calibrated on one sample and
    /// measured on another, the ECE falls to the binning noise.
    #[test]
    fn calibration_improves_the_ece_on_a_known_miscalibration() {
        use rand::Rng;
        let draw = |stream: u64, n: usize| {
            let mut rng = crate::rng::stream(42, "test/ece", stream);
            let s: Vec<f64> = (0..n).map(|_| rng.random::<f64>()).collect();
            let l: Vec<bool> = s.iter().map(|&x| rng.random::<f64>() < x * x).collect();
            (s, l)
        };
        let (s_fit, l_fit) = draw(0, 20_000);
        let (s_test, l_test) = draw(1, 20_000);
        let f = Isotonic::fit(&s_fit, &l_fit).unwrap();
        let (_, ece_raw) = reliability(&s_test, &l_test, 10);
        let p: Vec<f64> = s_test.iter().map(|&s| f.predict(s)).collect();
        let (bins, ece_cal) = reliability(&p, &l_test, 10);
        assert!((ece_raw - 1.0 / 6.0).abs() < 0.01, "raw ECE {ece_raw}");
        assert!(ece_cal < 0.02, "calibrated ECE {ece_cal}");
        assert_eq!(bins.iter().map(|b| b.n).sum::<usize>(), 20_000);
        // and the map is close to the truth, s^2
        for s in [0.2, 0.5, 0.8] {
            assert!(
                (f.predict(s) - s * s).abs() < 0.05,
                "p({s}) = {}",
                f.predict(s)
            );
        }
    }
}
