//! The classical baseline: a Poisson likelihood test statistic on a grid of trial positions,
//! the method behind the Fermi-LAT catalogs (Mattox et al. 1996; Abdollahi et al. 2020).
//!
//! For each patch with observed counts `n_i` (pixel and energy bin `i`, one Poisson draw of
//! the total Asimov counts) and background model `B_i` (the diffuse Asimov patch of the
//! chosen emission model, B1 by default even for B2/B3 skies: `detect.ts.background_patches`),
//! and for each trial position `x` at every pixel centre, the source model is `s T_i(x)`
//! where `T_i(x) = w_b PSF_b(i - x)` is the PSF of bin `b` integrated over the pixel, times
//! the fraction `w_b` of a power-law source's counts that fall in that bin. Then
//!
//! `TS(x) = 2 max_{s >= 0} sum_i [ n_i ln(1 + s T_i / B_i) - s T_i ]`
//!
//! which is `2 (ln L1 - ln L0)`; the normalisation `s` (source counts) is fitted per position
//! by Newton's method on the concave one-dimensional log-likelihood. Local maxima (3 x 3) of
//! the TS map with `TS >= threshold` (25, about 5 sigma for one degree of freedom with the
//! position free) are detections, refined to sub-pixel by a parabola through the TS map
//! along each axis.
//!
//! PSF templates come from [`psf_templates`], the only place that knows the instrument: a
//! Gaussian per bin with the bin's 68 % containment radius, from the P8R3_SOURCE_V2 acceptance-
//! averaged front+back r68(E) table (`shared/data/instrument/lat_irf_summary.csv`) weighted by
//! `E^-index Aeff(E)` across the bin. The real LAT PSF has broader tails than a Gaussian; the
//! function is meant to be swapped for the sky stage's instrument model.

use super::{Detection, Detector, FitReport, PatchSet, PixelPeak, local_maxima, refine_parabolic};
use crate::config::{ExperimentConfig, TsSection};
use crate::error::{Error, Result};
use crate::projection::PatchGeometry;
use rayon::prelude::*;
use std::path::Path;

/// P8R3_SOURCE_V2 front+back: (energy MeV, acceptance-averaged r68 deg, mean Aeff cm2 over
/// cos theta 0.5-1), from `shared/data/instrument/lat_irf_summary.csv`.
const IRF_SOURCE_V2: [(f64, f64, f64); 22] = [
    (100.0, 5.1764, 2030.1),
    (146.4, 3.8621, 2918.3),
    (214.4, 2.8891, 3681.6),
    (313.9, 2.1450, 4321.7),
    (459.5, 1.5696, 4965.0),
    (672.8, 1.1374, 5550.2),
    (985.1, 0.8283, 6086.3),
    (1442.2, 0.6035, 6551.7),
    (2111.6, 0.4453, 6765.0),
    (3091.7, 0.3335, 6793.6),
    (4526.6, 0.2524, 6693.7),
    (6627.5, 0.1972, 6715.0),
    (9703.5, 0.1584, 6751.6),
    (14207.0, 0.1323, 6770.8),
    (20800.8, 0.1159, 6735.3),
    (30455.0, 0.1076, 6843.1),
    (44589.8, 0.1028, 6914.2),
    (65284.9, 0.1010, 6893.9),
    (95585.0, 0.1009, 6873.7),
    (139948.0, 0.1015, 6845.2),
    (204901.0, 0.1006, 6830.6),
    (300000.0, 0.0979, 6825.4),
];

/// Log-log interpolation in the IRF table; returns (r68 deg, Aeff cm2).
fn irf_at(e_mev: f64) -> (f64, f64) {
    let t = &IRF_SOURCE_V2;
    let le = e_mev.ln();
    let j = t
        .windows(2)
        .position(|w| e_mev < w[1].0)
        .unwrap_or(t.len() - 2);
    let (a, b) = (t[j], t[j + 1]);
    let f = ((le - a.0.ln()) / (b.0.ln() - a.0.ln())).clamp(0.0, 1.0);
    let li = |x: f64, y: f64| (x.ln() + f * (y.ln() - x.ln())).exp();
    (li(a.1, b.1), li(a.2, b.2))
}

/// A PSF template for one energy bin, on a `(2r+1)^2` pixel stamp centred on the source.
#[derive(Debug, Clone)]
pub struct Template {
    /// Stamp half width, px.
    pub half_px: usize,
    /// `w_b * PSF` integrated over each pixel, row-major.
    pub values: Vec<f64>,
    /// 68 % containment radius of the bin, deg.
    pub r68_deg: f64,
    /// Fraction of the source counts in this bin.
    pub weight: f64,
}

/// PSF templates per energy bin for a source with photon index `index` (see module docs).
pub fn psf_templates(
    edges_gev: &[f64],
    index: f64,
    geometry: &PatchGeometry,
    support_r68: f64,
) -> Vec<Template> {
    let pix = geometry.pixel_deg();
    let mut bins = Vec::new();
    for w in edges_gev.windows(2) {
        let (lo, hi) = ((w[0] * 1e3).ln(), (w[1] * 1e3).ln());
        let n = 64;
        let (mut wsum, mut rsum) = (0.0, 0.0);
        for k in 0..n {
            let e = (lo + (k as f64 + 0.5) / n as f64 * (hi - lo)).exp();
            let (r68, aeff) = irf_at(e);
            // dN/dlnE = E * E^-index.
            let wt = e.powf(1.0 - index) * aeff;
            wsum += wt;
            rsum += wt * r68;
        }
        bins.push((wsum * (hi - lo) / n as f64, rsum / wsum));
    }
    let total: f64 = bins.iter().map(|b| b.0).sum();
    bins.into_iter()
        .map(|(wt, r68)| {
            // 2-D Gaussian: r68 = sigma sqrt(-2 ln 0.32).
            let sigma_px = r68 / (-2.0 * 0.32f64.ln()).sqrt() / pix;
            let half = ((support_r68 * r68 / pix).ceil() as usize).max(2);
            let n = 2 * half + 1;
            let cdf =
                |u: f64| 0.5 * (1.0 + statrs::function::erf::erf(u / (sigma_px * 2f64.sqrt())));
            let weight = wt / total;
            let mut values = vec![0.0; n * n];
            for y in 0..n {
                let dy = y as f64 - half as f64;
                let py = cdf(dy + 0.5) - cdf(dy - 0.5);
                for x in 0..n {
                    let dx = x as f64 - half as f64;
                    values[y * n + x] = weight * py * (cdf(dx + 0.5) - cdf(dx - 0.5));
                }
            }
            Template {
                half_px: half,
                values,
                r68_deg: r68,
                weight,
            }
        })
        .collect()
}

/// Maximises `f(s) = sum n ln(1 + s t / b) - s t` over `s >= 0` by Newton's method; returns
/// `(s_hat, f(s_hat))`. `terms` holds `(n, t, b)`.
pub fn fit_normalisation(terms: &[(f64, f64, f64)]) -> (f64, f64) {
    fit_normalisation_with(terms, 0.0)
}

/// [`fit_normalisation`] with the pixels of zero counts folded into one number: a term with
/// `n = 0` contributes only `-s t` to `f`, so `t_zero` (the sum of their `t`) stands for all
/// of them and `terms` need only hold the pixels with counts.
pub fn fit_normalisation_with(terms: &[(f64, f64, f64)], t_zero: f64) -> (f64, f64) {
    let grad_hess = |s: f64| {
        let (mut g, mut h) = (-t_zero, 0.0);
        for &(n, t, b) in terms {
            let m = b + s * t;
            g += n * t / m - t;
            h -= n * t * t / (m * m);
        }
        (g, h)
    };
    let f = |s: f64| -> f64 {
        terms
            .iter()
            .map(|&(n, t, b)| n * (s * t / b).ln_1p() - s * t)
            .sum::<f64>()
            - s * t_zero
    };
    let (g0, h0) = grad_hess(0.0);
    if g0 <= 0.0 || h0 >= 0.0 {
        return (0.0, 0.0);
    }
    let mut s = -g0 / h0;
    for _ in 0..100 {
        let (g, h) = grad_hess(s);
        if h >= 0.0 {
            break;
        }
        let mut next = s - g / h;
        if next <= 0.0 {
            next = 0.5 * s;
        }
        let done = (next - s).abs() <= 1e-9 * s.max(1e-12);
        s = next;
        if done {
            break;
        }
    }
    (s, f(s).max(0.0))
}

/// TS map of one patch: counts and background `[y][x][bin]` row-major.
pub fn ts_map(counts: &[f32], background: &[f32], size: usize, templates: &[Template]) -> Vec<f64> {
    let nb = templates.len();
    let mut out = vec![0.0; size * size];
    let mut terms = Vec::new();
    for cy in 0..size {
        for cx in 0..size {
            terms.clear();
            let mut t_zero = 0.0;
            for (b, t) in templates.iter().enumerate() {
                let h = t.half_px as isize;
                let n = 2 * t.half_px + 1;
                let ty0 = (h - cy as isize).max(0) as usize;
                let ty1 = (size as isize - cy as isize + h).min(n as isize) as usize;
                let tx0 = (h - cx as isize).max(0) as usize;
                let tx1 = (size as isize - cx as isize + h).min(n as isize) as usize;
                for ty in ty0..ty1 {
                    let y = (cy as isize + ty as isize - h) as usize;
                    let row = &t.values[ty * n..(ty + 1) * n];
                    for (tx, &tv) in row.iter().enumerate().take(tx1).skip(tx0) {
                        if tv <= 0.0 {
                            continue;
                        }
                        let x = (cx as isize + tx as isize - h) as usize;
                        let i = (y * size + x) * nb + b;
                        let k = counts[i];
                        if k > 0.0 {
                            terms.push((k as f64, tv, (background[i] as f64).max(1e-6)));
                        } else {
                            t_zero += tv;
                        }
                    }
                }
            }
            out[cy * size + cx] = 2.0 * fit_normalisation_with(&terms, t_zero).1;
        }
    }
    out
}

/// Detections of one TS map: 3 x 3 local maxima with TS >= threshold, sub-pixel refined.
pub fn ts_peaks(ts: &[f64], size: usize, threshold: f64) -> Vec<PixelPeak> {
    local_maxima(ts, size, 1, threshold)
        .into_iter()
        .map(|(y, x)| {
            let (fx, fy) = refine_parabolic(ts, size, y, x);
            PixelPeak {
                x_pix: fx,
                y_pix: fy,
                score: ts[y * size + x],
            }
        })
        .collect()
}

/// The TS detector.
pub struct TsDetector {
    config: ExperimentConfig,
}

impl TsDetector {
    /// Builds the detector (no training needed).
    pub fn new(config: &ExperimentConfig) -> Result<Self> {
        Ok(Self {
            config: config.clone(),
        })
    }

    fn section(&self) -> &TsSection {
        &self.config.detect.ts
    }
}

impl Detector for TsDetector {
    fn name(&self) -> &str {
        "ts"
    }

    fn fit(
        &mut self,
        _train: &PatchSet,
        out: &Path,
        _pb: &indicatif::ProgressBar,
    ) -> Result<FitReport> {
        self.save(out)?;
        Ok(FitReport::default())
    }

    fn detect(&self, patches: &PatchSet) -> Result<Vec<Detection>> {
        let p = self.section();
        let size = patches.size();
        let geom = PatchGeometry {
            size,
            ..PatchGeometry::default()
        };
        let edges = &self.config.energy.bin_edges_gev;
        if edges.len() != patches.n_bins() + 1 {
            return Err(Error::Usage(format!(
                "the patches have {} energy bins but energy.bin_edges_gev defines {}",
                patches.n_bins(),
                edges.len() - 1
            )));
        }
        let templates = psf_templates(edges, p.spectral_index, &geom, p.support_r68);
        let bg_set;
        let background = if p.background_patches.is_empty() {
            &patches.diffuse
        } else {
            let dir = Path::new(&p.background_patches);
            bg_set = PatchSet::load(dir, 0)?;
            if bg_set.patch_ids.len() < patches.len()
                || bg_set.patch_ids[..patches.len()] != patches.patch_ids[..]
            {
                return Err(Error::bad_file(
                    dir,
                    "background patches do not cover the same patch ids in the same order",
                ));
            }
            &bg_set.diffuse
        };
        let seed = self.config.seed;
        let per_patch: Vec<Vec<Detection>> = (0..patches.len())
            .into_par_iter()
            .map(|i| {
                let counts = super::poisson_counts(patches, i, seed, "detect/poisson");
                let ts = ts_map(&counts, background.patch(i), size, &templates);
                super::to_detections(patches, i, &ts_peaks(&ts, size, p.threshold), "ts")
            })
            .collect();
        Ok(per_patch.into_iter().flatten().collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        super::save_config(dir, &self.config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_normalised_and_narrow_with_energy() {
        let t = psf_templates(
            &[0.5, 1.0, 2.0, 7.0, 20.0, 200.0],
            2.2,
            &PatchGeometry::default(),
            3.0,
        );
        let wsum: f64 = t.iter().map(|x| x.weight).sum();
        assert!((wsum - 1.0).abs() < 1e-12);
        assert!(t.windows(2).all(|w| w[1].r68_deg < w[0].r68_deg));
        for x in &t {
            let s: f64 = x.values.iter().sum();
            assert!(
                s <= x.weight * 1.0001 && s > 0.9 * x.weight,
                "{s} {}",
                x.weight
            );
        }
    }

    #[test]
    fn newton_matches_closed_form_single_pixel() {
        // One pixel: s_hat = (n - b) / t, f = n ln(n / b) - (n - b).
        let (s, f) = fit_normalisation(&[(30.0, 1.0, 10.0)]);
        assert!((s - 20.0).abs() < 1e-6, "{s}");
        assert!((f - (30.0 * 3f64.ln() - 20.0)).abs() < 1e-6);
        assert_eq!(fit_normalisation(&[(5.0, 1.0, 10.0)]).0, 0.0);
    }
}
