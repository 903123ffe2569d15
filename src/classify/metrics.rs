//! Minimal classification metrics for the fold table (accuracy, balanced accuracy, ROC AUC,
//! expected calibration error, Brier score, log loss).
//!
//! Deliberately small and self-contained: the scikit-learn-exact scorer
//! (`src/score/classification.rs`, another branch) reads the out-of-fold predictions this
//! module's callers write and replaces these helpers at merge time. Definitions follow
//! scikit-learn: `accuracy_score`, `balanced_accuracy_score` (mean per-class recall),
//! `roc_auc_score` (binary, positive class index 1; multiclass one-vs-rest macro average),
//! `brier_score_loss` (binary: mean (p_1 - y)^2; multiclass: mean sum_k (p_k - y_k)^2),
//! `log_loss` (probabilities clipped to [1e-15, 1 - 1e-15]).

/// Index of the largest probability (first on ties).
pub fn argmax(p: &[f64]) -> usize {
    let mut best = 0;
    for (k, &v) in p.iter().enumerate() {
        if v > p[best] {
            best = k;
        }
    }
    best
}

/// Fraction of items whose arg-max class equals the truth.
pub fn accuracy(y: &[usize], p: &[Vec<f64>]) -> f64 {
    if y.is_empty() {
        return f64::NAN;
    }
    let ok = y.iter().zip(p).filter(|(t, q)| argmax(q) == **t).count();
    ok as f64 / y.len() as f64
}

/// Recall (completeness) per class; NaN for a class without items.
pub fn recall_per_class(y: &[usize], p: &[Vec<f64>], n_classes: usize) -> Vec<f64> {
    let mut hit = vec![0usize; n_classes];
    let mut tot = vec![0usize; n_classes];
    for (t, q) in y.iter().zip(p) {
        tot[*t] += 1;
        if argmax(q) == *t {
            hit[*t] += 1;
        }
    }
    hit.iter()
        .zip(&tot)
        .map(|(h, t)| {
            if *t == 0 {
                f64::NAN
            } else {
                *h as f64 / *t as f64
            }
        })
        .collect()
}

/// Mean of the per-class recalls over the classes present in `y`.
pub fn balanced_accuracy(y: &[usize], p: &[Vec<f64>], n_classes: usize) -> f64 {
    let r: Vec<f64> = recall_per_class(y, p, n_classes)
        .into_iter()
        .filter(|v| !v.is_nan())
        .collect();
    r.iter().sum::<f64>() / r.len() as f64
}

/// Binary ROC AUC of `score` for `positive` labels (Mann-Whitney U with mid-ranks for ties):
/// `AUC = (sum of positive ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`.
pub fn roc_auc_binary(positive: &[bool], score: &[f64]) -> f64 {
    let n = score.len();
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let mut ranks = vec![0.0; n];
    let mut i = 0;
    while i < n {
        let mut j = i;
        while j + 1 < n && score[idx[j + 1]] == score[idx[i]] {
            j += 1;
        }
        let r = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            ranks[k] = r;
        }
        i = j + 1;
    }
    let n_pos = positive.iter().filter(|b| **b).count() as f64;
    let n_neg = n as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return f64::NAN;
    }
    let sum_pos: f64 = ranks
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    (sum_pos - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

/// ROC AUC: binary on p_1 for two classes, else one-vs-rest macro average.
pub fn roc_auc(y: &[usize], p: &[Vec<f64>], n_classes: usize) -> f64 {
    if n_classes == 2 {
        let pos: Vec<bool> = y.iter().map(|t| *t == 1).collect();
        let s: Vec<f64> = p.iter().map(|q| q[1]).collect();
        return roc_auc_binary(&pos, &s);
    }
    let aucs: Vec<f64> = (0..n_classes)
        .map(|k| {
            let pos: Vec<bool> = y.iter().map(|t| *t == k).collect();
            let s: Vec<f64> = p.iter().map(|q| q[k]).collect();
            roc_auc_binary(&pos, &s)
        })
        .filter(|a| !a.is_nan())
        .collect();
    aucs.iter().sum::<f64>() / aucs.len() as f64
}

/// Brier score (see module doc for the binary / multiclass convention).
pub fn brier(y: &[usize], p: &[Vec<f64>], n_classes: usize) -> f64 {
    let n = y.len() as f64;
    if n_classes == 2 {
        return y
            .iter()
            .zip(p)
            .map(|(t, q)| (q[1] - (*t == 1) as u8 as f64).powi(2))
            .sum::<f64>()
            / n;
    }
    y.iter()
        .zip(p)
        .map(|(t, q)| {
            q.iter()
                .enumerate()
                .map(|(k, v)| (v - (k == *t) as u8 as f64).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / n
}

/// Mean negative log-likelihood of the true class.
pub fn log_loss(y: &[usize], p: &[Vec<f64>]) -> f64 {
    let eps = 1e-15;
    y.iter()
        .zip(p)
        .map(|(t, q)| -q[*t].clamp(eps, 1.0 - eps).ln())
        .sum::<f64>()
        / y.len() as f64
}

/// Top-label expected calibration error with `n_bins` equal-width confidence bins
/// (Guo et al. 2017): `ECE = sum_b |B_b|/n |acc(B_b) - conf(B_b)|`, where the confidence is
/// the largest predicted probability and bin b holds confidences in ((b-1)/M, b/M].
pub fn ece(y: &[usize], p: &[Vec<f64>], n_bins: usize) -> f64 {
    let mut cnt = vec![0usize; n_bins];
    let mut acc = vec![0.0; n_bins];
    let mut conf = vec![0.0; n_bins];
    for (t, q) in y.iter().zip(p) {
        let k = argmax(q);
        let c = q[k];
        let b = ((c * n_bins as f64).ceil() as usize).clamp(1, n_bins) - 1;
        cnt[b] += 1;
        acc[b] += (k == *t) as u8 as f64;
        conf[b] += c;
    }
    let n = y.len() as f64;
    (0..n_bins)
        .filter(|b| cnt[*b] > 0)
        .map(|b| (acc[b] - conf[b]).abs() / n)
        .sum()
}

/// Every metric of one evaluation.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Scores {
    pub accuracy: f64,
    pub balanced_accuracy: f64,
    pub auc: f64,
    pub ece: f64,
    pub brier: f64,
    pub log_loss: f64,
}

/// Computes [`Scores`] (ECE with 10 bins).
pub fn scores(y: &[usize], p: &[Vec<f64>], n_classes: usize) -> Scores {
    Scores {
        accuracy: accuracy(y, p),
        balanced_accuracy: balanced_accuracy(y, p, n_classes),
        auc: roc_auc(y, p, n_classes),
        ece: ece(y, p, 10),
        brier: brier(y, p, n_classes),
        log_loss: log_loss(y, p),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_matches_hand_computation() {
        // sklearn: roc_auc_score([0,0,1,1],[0.1,0.4,0.35,0.8]) = 0.75
        let a = roc_auc_binary(&[false, false, true, true], &[0.1, 0.4, 0.35, 0.8]);
        assert!((a - 0.75).abs() < 1e-12);
        // ties count one half
        let a = roc_auc_binary(&[false, true], &[0.5, 0.5]);
        assert!((a - 0.5).abs() < 1e-12);
    }

    #[test]
    fn accuracy_balanced_brier_ece() {
        let y = [0, 0, 0, 1];
        let p = vec![
            vec![0.95, 0.05],
            vec![0.85, 0.15],
            vec![0.25, 0.75],
            vec![0.35, 0.65],
        ];
        assert!((accuracy(&y, &p) - 0.75).abs() < 1e-12);
        assert!((balanced_accuracy(&y, &p, 2) - (2.0 / 3.0 + 1.0) / 2.0).abs() < 1e-12);
        let b = (0.0025 + 0.0225 + 0.5625 + 0.1225) / 4.0;
        assert!((brier(&y, &p, 2) - b).abs() < 1e-12);
        // confidences 0.95, 0.85, 0.75, 0.65 fall in four bins; accuracies 1, 1, 0, 1
        let e = (0.05 + 0.15 + 0.75 + 0.35) / 4.0;
        assert!((ece(&y, &p, 10) - e).abs() < 1e-12);
    }
}
