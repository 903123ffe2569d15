//! Small statistics shared by the tests and the stages: Kolmogorov-Smirnov tests.
//!
//! The p-value uses the asymptotic Kolmogorov distribution with the Stephens (1970)
//! small-sample correction, `lambda = (sqrt(n_e) + 0.12 + 0.11/sqrt(n_e)) D`,
//! `Q(lambda) = 2 sum_k (-1)^(k-1) exp(-2 k^2 lambda^2)` (Numerical Recipes, sec. 14.3), which
//! is accurate to a few per cent for `n_e >= 20` and the tool of choice for checking that a
//! sample follows a distribution.

/// Result of a KS test.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Ks {
    /// Maximum distance between the CDFs.
    pub d: f64,
    /// p-value of the null hypothesis that the samples share a distribution.
    pub p_value: f64,
}

/// Survival function of the Kolmogorov distribution.
pub fn kolmogorov_q(lambda: f64) -> f64 {
    if lambda < 1e-3 {
        return 1.0;
    }
    let mut sum = 0.0;
    let mut sign = 1.0;
    for k in 1..=200 {
        let term = sign * (-2.0 * (k as f64).powi(2) * lambda * lambda).exp();
        sum += term;
        if term.abs() < 1e-12 * sum.abs().max(1e-300) {
            break;
        }
        sign = -sign;
    }
    (2.0 * sum).clamp(0.0, 1.0)
}

fn p_of(d: f64, n_eff: f64) -> f64 {
    let s = n_eff.sqrt();
    kolmogorov_q((s + 0.12 + 0.11 / s) * d)
}

/// One-sample KS test of `sample` against the continuous CDF `cdf`.
pub fn ks_one_sample(sample: &[f64], cdf: impl Fn(f64) -> f64) -> Ks {
    let mut x: Vec<f64> = sample.iter().copied().filter(|v| v.is_finite()).collect();
    x.sort_by(f64::total_cmp);
    let n = x.len() as f64;
    let mut d: f64 = 0.0;
    for (i, v) in x.iter().enumerate() {
        let f = cdf(*v);
        d = d
            .max((f - i as f64 / n).abs())
            .max(((i + 1) as f64 / n - f).abs());
    }
    Ks {
        d,
        p_value: p_of(d, n),
    }
}

/// Two-sample KS test.
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> Ks {
    let mut x: Vec<f64> = a.iter().copied().filter(|v| v.is_finite()).collect();
    let mut y: Vec<f64> = b.iter().copied().filter(|v| v.is_finite()).collect();
    x.sort_by(f64::total_cmp);
    y.sort_by(f64::total_cmp);
    let (n, m) = (x.len(), y.len());
    let (mut i, mut j, mut d) = (0usize, 0usize, 0.0f64);
    while i < n && j < m {
        let v = x[i].min(y[j]);
        while i < n && x[i] <= v {
            i += 1;
        }
        while j < m && y[j] <= v {
            j += 1;
        }
        d = d.max((i as f64 / n as f64 - j as f64 / m as f64).abs());
    }
    let n_eff = (n * m) as f64 / (n + m) as f64;
    Ks {
        d,
        p_value: p_of(d, n_eff),
    }
}

/// CDF of a normal distribution.
pub fn normal_cdf(x: f64, mean: f64, sd: f64) -> f64 {
    0.5 * statrs::function::erf::erfc(-(x - mean) / (sd * std::f64::consts::SQRT_2))
}

/// Linear-interpolation quantile of sorted data (numpy's default `linear` method).
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let h = (sorted.len() - 1) as f64 * q.clamp(0.0, 1.0);
    let (i, f) = (h.floor() as usize, h - h.floor());
    let j = (i + 1).min(sorted.len() - 1);
    Some(sorted[i] + (sorted[j] - sorted[i]) * f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kolmogorov_reference_values() {
        // Q(1.36) = 0.0494 and Q(1.63) = 0.0098: the classic 5% and 1% critical values.
        assert!((kolmogorov_q(1.358) - 0.05).abs() < 1e-3);
        assert!((kolmogorov_q(1.628) - 0.01).abs() < 1e-3);
    }

    #[test]
    fn ks_detects_shift() {
        let a: Vec<f64> = (0..500).map(|i| (i as f64 + 0.5) / 500.0).collect();
        let r = ks_one_sample(&a, |x| x.clamp(0.0, 1.0));
        assert!(r.d < 0.002 && r.p_value > 0.99);
        let b: Vec<f64> = a.iter().map(|x| x + 0.2).collect();
        assert!(ks_two_sample(&a, &b).p_value < 1e-6);
        assert!((ks_two_sample(&a, &b).d - 0.2).abs() < 0.01);
    }
}
