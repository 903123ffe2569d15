//! Temperature scaling (Guo et al. 2017, "On calibration of modern neural networks").
//!
//! Probabilities are `p_k = exp(z_k / T) / sum_j exp(z_j / T)` for the logits z. The single
//! parameter T > 0 is fitted on the validation split by minimising the negative
//! log-likelihood `NLL(T) = -1/n sum_i log p_{y_i}(T)` (golden-section search on log T in
//! [-4, 4]; NLL is convex in 1/T). For two classes this is Platt scaling without an offset.
//! T > 1 softens over-confident predictions; accuracy is unchanged (the arg-max is kept).

/// Softmax of `z / t`.
pub fn softmax(z: &[f64], t: f64) -> Vec<f64> {
    let m = z.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = z.iter().map(|v| ((v - m) / t).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

/// Mean negative log-likelihood at temperature `t`.
pub fn nll(logits: &[Vec<f64>], y: &[usize], t: f64) -> f64 {
    logits
        .iter()
        .zip(y)
        .map(|(z, k)| -softmax(z, t)[*k].max(1e-300).ln())
        .sum::<f64>()
        / y.len().max(1) as f64
}

/// Fits the temperature on `(logits, y)`; 1 when there is nothing to fit on.
pub fn fit_temperature(logits: &[Vec<f64>], y: &[usize]) -> f64 {
    if y.is_empty() {
        return 1.0;
    }
    let f = |lt: f64| nll(logits, y, lt.exp());
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = (-4.0f64, 4.0f64);
    let mut c = b - g * (b - a);
    let mut d = a + g * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..80 {
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - g * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + g * (b - a);
            fd = f(d);
        }
    }
    (0.5 * (a + b)).exp()
}

/// Applies temperature `t` to every row of logits.
pub fn apply(logits: &[Vec<f64>], t: f64) -> Vec<Vec<f64>> {
    logits.iter().map(|z| softmax(z, t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::metrics::{brier, ece};
    use rand::Rng as _;

    #[test]
    fn temperature_scaling_lowers_ece_of_an_overconfident_model() {
        // true P(y = 1 | s) = sigmoid(s); the model reports logits 4 s (far too sharp)
        let mut r = crate::rng::stream(1, "test/calibration", 0);
        let (mut logits, mut y) = (Vec::new(), Vec::new());
        for _ in 0..4000 {
            let s: f64 = r.random_range(-3.0..3.0);
            let p1 = 1.0 / (1.0 + (-s).exp());
            y.push(usize::from(r.random::<f64>() < p1));
            logits.push(vec![0.0, 4.0 * s]);
        }
        let before = apply(&logits, 1.0);
        let t = fit_temperature(&logits, &y);
        let after = apply(&logits, t);
        assert!((t - 4.0).abs() < 0.5, "T = {t}");
        let (e0, e1) = (ece(&y, &before, 10), ece(&y, &after, 10));
        assert!(e1 < 0.5 * e0, "ECE {e0} -> {e1}");
        assert!(brier(&y, &after, 2) < brier(&y, &before, 2));
        assert!(nll(&logits, &y, t) < nll(&logits, &y, 1.0));
    }
}
