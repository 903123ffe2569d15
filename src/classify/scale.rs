//! Imputation and standardisation, fitted on training rows only.
//!
//! Finke et al. 2021: "We shift and re-scale each data input such that the mean over the
//! training set is zero and the standard deviation is one." Each column j gets
//! `z = (x - mu_j) / sigma_j` with `mu_j`, `sigma_j` (population standard deviation) computed
//! on the training rows after imputing missing values (NaN) with the training median of the
//! column. A constant column keeps `sigma_j = 1`.

use super::Matrix;

/// Fitted per-column statistics.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Scaler {
    /// Training median per column (imputation value).
    pub median: Vec<f32>,
    /// Training mean per column after imputation.
    pub mean: Vec<f32>,
    /// Training standard deviation per column after imputation (1 when zero).
    pub std: Vec<f32>,
}

impl Scaler {
    /// Fits on `x` (the training rows only).
    pub fn fit(x: &Matrix) -> Self {
        let mut median = Vec::with_capacity(x.d);
        let mut mean = Vec::with_capacity(x.d);
        let mut std = Vec::with_capacity(x.d);
        for j in 0..x.d {
            let mut v: Vec<f64> = (0..x.n)
                .map(|i| x.at(i, j) as f64)
                .filter(|v| !v.is_nan())
                .collect();
            v.sort_by(f64::total_cmp);
            let med = if v.is_empty() {
                0.0
            } else if v.len() % 2 == 1 {
                v[v.len() / 2]
            } else {
                0.5 * (v[v.len() / 2 - 1] + v[v.len() / 2])
            };
            let col: Vec<f64> = (0..x.n)
                .map(|i| {
                    let a = x.at(i, j) as f64;
                    if a.is_nan() { med } else { a }
                })
                .collect();
            let n = col.len().max(1) as f64;
            let m = col.iter().sum::<f64>() / n;
            let s = (col.iter().map(|a| (a - m).powi(2)).sum::<f64>() / n).sqrt();
            median.push(med as f32);
            mean.push(m as f32);
            std.push(if s > 1e-12 { s as f32 } else { 1.0 });
        }
        Self { median, mean, std }
    }

    /// Imputes and standardises `x` with the fitted statistics.
    pub fn transform(&self, x: &Matrix) -> Matrix {
        let mut out = x.clone();
        for i in 0..x.n {
            for j in 0..x.d {
                let v = &mut out.data[i * x.d + j];
                if v.is_nan() {
                    *v = self.median[j];
                }
                *v = (*v - self.mean[j]) / self.std[j];
            }
        }
        out
    }
}
