//! Luminosity functions: how many mock sources fall in each log10 Energy_Flux100 bin
//! (Panes et al. 2021, app. A).
//!
//! The bin grid has the width of an `n`-bin histogram over the 4FGL AGN+PSR log10
//! Energy_Flux100 range (30 bins reproduce the paper's power-law fit, see the data README)
//! and is anchored at the threshold: bin 0 is `[log10 F_th, log10 F_th + w)`, and bins go up
//! until they cover the brightest 4FGL source.
//!
//! * **flat**: bins above the 4FGL peak of the class hold `round(N_4FGL,k x U(0.8, 1.3))`
//!   sources (a bin whose 4FGL count is 0 or 1 holds a uniform integer in `[0, 2]`, the
//!   paper's "at most two"). From the peak down to the threshold the counts are kept roughly
//!   flat: the lowest bin holds `N_min ~ U[50, 250]` (AGN) or `U[15, 25]` (PSR) sources and
//!   the bins in between interpolate log-linearly between `N_min` and the peak bin, never
//!   below `round(N_4FGL,k x U(0.8, 1.3))`. (The paper's acceptance-sampling algorithm fills
//!   the lowest bin to `N_min` and the bins above the peak, and calls the result flat; our
//!   interpolation is the explicit, deterministic reading of that.)
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
            let scaled: Vec<u64> = hist_4fgl
                .iter()
                .map(|&c| {
                    let u: f64 = r.random_range(noise[0]..=noise[1]);
                    if c <= 1 {
                        r.random_range(0..=cfg.flat.sparse_bin_max as u64)
                    } else {
                        (c as f64 * u).round() as u64
                    }
                })
                .collect();
            let peak_level = scaled[peak].max(n_min) as f64;
            let counts = (0..grid.n)
                .map(|k| {
                    if k > peak {
                        scaled[k]
                    } else if k == peak {
                        scaled[k].max(n_min)
                    } else {
                        let t = k as f64 / peak as f64;
                        let flat = ((n_min as f64).ln() * (1.0 - t) + peak_level.ln() * t)
                            .exp()
                            .round() as u64;
                        flat.max(scaled[k])
                    }
                })
                .collect();
            Targets {
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
