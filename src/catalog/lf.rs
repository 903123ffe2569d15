//! Luminosity functions: how many mock sources fall in each log10 Energy_Flux100 bin
//! (Panes et al. 2021, app. A).
//!
//! The bin grid has the width of an `n`-bin histogram over the 4FGL AGN+PSR log10
//! Energy_Flux100 range (30 bins reproduce the paper's power-law fit, see the data README)
//! and is anchored at the threshold: bin 0 is `[log10 F_th, log10 F_th + w)`, and bins go up
//! until they cover the brightest 4FGL source.
//!
//! * **flat** (app. A, steps 1-4): the caps of the paper's acceptance sampler, on the grid of
//!   the class's own 4FGL histogram ("we bin the 4FGL AGN (PSR) sources according to their
//!   listed E100 values and prepare a list of mock sources with the very same bin width",
//!   [`Grid::new`] over the class's values, anchored at the threshold): every bin right of
//!   the peak holds `round(N_4FGL,k x U(0.8, 1.3))` (the `N_noise` list "whose length
//!   corresponds to the number of energy flux bins ... to the right of the peak"; a bin whose
//!   4FGL count is 0 or 1 at most `sparse_bin_max` = 2); the lowest bin holds
//!   `N_min ~ U[50, 250]` (AGN) or `U[15, 25]` (PSR); the peak and the bins between hold the
//!   peak's 4FGL count: the luminosity function "remains roughly constant below the
//!   detection threshold" (sec. 2.1). Issue 14 measured the published F0 mock: flat at the peak level
//!   (~330 AGN per 0.1 dex) from the peak down to the threshold; our earlier log-linear ramp
//!   from `N_min` to the peak gave 4292 AGN instead of 5157. The sources are then drawn by
//!   [`super::generate`]'s acceptance sampler.
//! * **power_law**: every bin holds `round(f_c 10^(m (x_k - x_0)))` sources, `x_k` the bin
//!   centre, `m = -0.96` and `x_0 = -8.64` the paper's fit to 4FGL (N per bin of the grid
//!   above), `f_c` the class's share of the 4FGL AGN+PSR sources.

use crate::config::{CatalogConfig, LuminosityFunction};
use crate::rng;
use rand::Rng;

/// The log10 Energy_Flux100 bin grid.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Grid {
    /// log10 of the lower edge of bin 0 (the threshold).
    pub lo: f64,
    /// Bin width in dex.
    pub width: f64,
    /// Number of bins.
    pub n: usize,
}

impl Grid {
    /// The grid anchored at `threshold` with the width of an `n_bins` histogram over
    /// `log10_eflux_all` (the 4FGL AGN+PSR values).
    pub fn new(threshold_erg: f64, log10_eflux_all: &[f64], n_bins: usize) -> Self {
        let (mn, mx) = log10_eflux_all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        let width = (mx - mn) / n_bins as f64;
        let lo = threshold_erg.log10();
        let n = (((mx - lo) / width).floor() as usize + 1).max(1);
        Self { lo, width, n }
    }
    /// Lower edge of bin `k` (log10).
    pub fn edge(&self, k: usize) -> f64 {
        self.lo + k as f64 * self.width
    }
    /// Centre of bin `k` (log10).
    pub fn centre(&self, k: usize) -> f64 {
        self.lo + (k as f64 + 0.5) * self.width
    }
    /// Bin of a log10 value, if on the grid.
    pub fn bin(&self, x: f64) -> Option<usize> {
        let k = ((x - self.lo) / self.width).floor();
        (k >= 0.0 && (k as usize) < self.n).then_some(k as usize)
    }
    /// Histogram of log10 values on the grid (values off the grid ignored).
    pub fn histogram(&self, xs: &[f64]) -> Vec<u64> {
        let mut h = vec![0u64; self.n];
        for &x in xs {
            if let Some(k) = self.bin(x) {
                h[k] += 1;
            }
        }
        h
    }
}

/// Target counts per bin for one class, with the random numbers that made them.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Targets {
    /// The grid the counts are on (flat: the class's own histogram grid).
    pub grid: Grid,
    /// The class's 4FGL histogram on that grid.
    pub hist_4fgl: Vec<u64>,
    pub counts: Vec<u64>,
    /// Index of the 4FGL peak bin (flat LF only).
    pub peak_bin: Option<usize>,
    /// N_min drawn for the lowest bin (flat LF only).
    pub n_min: Option<u64>,
}

/// Per-bin target counts of one class.
///
/// `hist_4fgl` is the class's 4FGL histogram on `grid`; `class_share` its share of AGN+PSR;
/// `stream` names the random stream (`catalog/AGN/lf`).
pub fn targets(
    cfg: &CatalogConfig,
    grid: &Grid,
    hist_4fgl: &[u64],
    n_min_range: [u32; 2],
    class_share: f64,
    seed: u64,
    stream: &str,
) -> Targets {
    let mut r = rng::stream(seed, stream, 0);
    match cfg.resolved_lf() {
        LuminosityFunction::PowerLaw => {
            let m = cfg.power_law.slope;
            let x0 = cfg.power_law.x_intercept;
            let counts = (0..grid.n)
                .map(|k| (class_share * 10f64.powf(m * (grid.centre(k) - x0))).round() as u64)
                .collect();
            Targets {
                grid: grid.clone(),
                hist_4fgl: hist_4fgl.to_vec(),
                counts,
                peak_bin: None,
                n_min: None,
            }
        }
        LuminosityFunction::Flat => {
            let noise = cfg.flat.noise;
            let peak = hist_4fgl
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))
                .map(|(k, _)| k)
                .unwrap_or(0);
            let n_min = r.random_range(n_min_range[0]..=n_min_range[1]) as u64;
            let u: Vec<f64> = (0..grid.n)
                .map(|_| r.random_range(noise[0]..=noise[1]))
                .collect();
            let counts = (0..grid.n)
                .map(|k| {
                    if k == 0 && peak > 0 {
                        n_min
                    } else if k > peak {
                        if hist_4fgl[k] <= 1 {
                            cfg.flat.sparse_bin_max as u64
                        } else {
                            (hist_4fgl[k] as f64 * u[k]).round() as u64
                        }
                    } else {
                        hist_4fgl[peak]
                    }
                })
                .collect();
            Targets {
                grid: grid.clone(),
                hist_4fgl: hist_4fgl.to_vec(),
                counts,
                peak_bin: Some(peak),
                n_min: Some(n_min),
            }
        }
    }
}

/// Least-squares line through (log10 E100 bin centre, log10 N) for the bins above the peak
/// of a histogram, as the paper fitted its power law: returns (slope, x-intercept).
pub fn fit_power_law(grid: &Grid, hist: &[u64]) -> Option<(f64, f64)> {
    let peak = hist.iter().enumerate().max_by_key(|(_, c)| **c)?.0;
    let pts: Vec<(f64, f64)> = (peak..grid.n)
        .filter(|&k| hist[k] > 0)
        .map(|k| (grid.centre(k), (hist[k] as f64).log10()))
        .collect();
    if pts.len() < 3 {
        return None;
    }
    let n = pts.len() as f64;
    let mx = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let my = pts.iter().map(|p| p.1).sum::<f64>() / n;
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let slope = sxy / sxx;
    let intercept = my - slope * mx;
    Some((slope, -intercept / slope))
}
