//! Cross-validation splits.
//!
//! * Stratified K-fold (scikit-learn's `StratifiedKFold(shuffle=True)` in spirit): the items
//!   of each class are shuffled with the stream `(seed, "classify/cv/kfold", class)` and dealt
//!   round-robin into K folds, so every fold holds `floor` or `ceil` of `n_c / K` items of
//!   class c, the folds are disjoint and every item is tested exactly once.
//! * Finke et al. 2021's protocol: N repeats of a stratified 70/30 train/test split (repeat r
//!   shuffles class c with the stream `(seed, "classify/cv/repeat/r", c)`), results as mean and
//!   standard deviation over repeats; items may be tested several times or never.
//! * Inside each training part a stratified validation split (fraction `valid_fraction`) is
//!   held out for early stopping and calibration; the model is fitted on the rest.
//!
//! All draws are keyed per class and per fold, so splits do not depend on thread count.

use crate::rng;
use rand::seq::SliceRandom;

/// One train / validation / test partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// Fold (K-fold) or repeat (70/30) index.
    pub fold: usize,
    /// Rows the model is fitted on.
    pub train: Vec<usize>,
    /// Rows for early stopping and calibration (disjoint from train and test).
    pub valid: Vec<usize>,
    /// Rows scored.
    pub test: Vec<usize>,
}

fn by_class(y: &[usize], idx: &[usize]) -> Vec<Vec<usize>> {
    let k = y.iter().copied().max().map_or(0, |m| m + 1);
    let mut out = vec![Vec::new(); k];
    for &i in idx {
        out[y[i]].push(i);
    }
    out
}

/// Fold index (0..k) of every item, stratified by class ([`crate::folds::Folds::stratified`]).
pub fn stratified_kfold(y: &[usize], k: usize, seed: u64) -> Vec<usize> {
    crate::folds::Folds::stratified(y, k, seed, "classify/cv/kfold").fold
}

/// Takes a stratified `fraction` of `idx` out as validation rows; returns (rest, valid).
pub fn stratified_holdout(
    y: &[usize],
    idx: &[usize],
    fraction: f64,
    seed: u64,
    purpose: &str,
) -> (Vec<usize>, Vec<usize>) {
    let mut rest = Vec::new();
    let mut held = Vec::new();
    for (c, mut items) in by_class(y, idx).into_iter().enumerate() {
        items.sort_unstable();
        items.shuffle(&mut rng::stream(seed, purpose, c as u64));
        let m = (items.len() as f64 * fraction).round() as usize;
        let m = m.min(items.len().saturating_sub(1));
        held.extend_from_slice(&items[..m]);
        rest.extend_from_slice(&items[m..]);
    }
    rest.sort_unstable();
    held.sort_unstable();
    (rest, held)
}

/// The K splits of stratified K-fold, each with a validation part of its training folds.
pub fn kfold_splits(y: &[usize], k: usize, valid_fraction: f64, seed: u64) -> Vec<Split> {
    let fold = stratified_kfold(y, k, seed);
    (0..k)
        .map(|f| {
            let test: Vec<usize> = (0..y.len()).filter(|i| fold[*i] == f).collect();
            let rest: Vec<usize> = (0..y.len()).filter(|i| fold[*i] != f).collect();
            let (train, valid) = stratified_holdout(
                y,
                &rest,
                valid_fraction,
                seed,
                &format!("classify/cv/valid/{f}"),
            );
            Split {
                fold: f,
                train,
                valid,
                test,
            }
        })
        .collect()
}

/// N repeats of a stratified train/test split with `test_fraction` (Finke et al.: 0.3).
pub fn repeated_splits(
    y: &[usize],
    repeats: usize,
    test_fraction: f64,
    valid_fraction: f64,
    seed: u64,
) -> Vec<Split> {
    let all: Vec<usize> = (0..y.len()).collect();
    (0..repeats)
        .map(|r| {
            let (rest, test) = stratified_holdout(
                y,
                &all,
                test_fraction,
                seed,
                &format!("classify/cv/repeat/{r}"),
            );
            let (train, valid) = stratified_holdout(
                y,
                &rest,
                valid_fraction,
                seed,
                &format!("classify/cv/valid/{r}"),
            );
            Split {
                fold: r,
                train,
                valid,
                test,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels() -> Vec<usize> {
        (0..1003).map(|i| usize::from(i % 13 == 0)).collect()
    }

    #[test]
    fn kfold_is_stratified_disjoint_covering_and_deterministic() {
        let y = labels();
        let s = kfold_splits(&y, 10, 0.1, 5);
        let mut seen = vec![0; y.len()];
        for sp in &s {
            for &i in &sp.test {
                seen[i] += 1;
            }
            let n_pos = sp.test.iter().filter(|i| y[**i] == 1).count();
            let tot_pos = y.iter().filter(|t| **t == 1).count();
            assert!(
                n_pos.abs_diff(tot_pos / 10) <= 1,
                "fold {}: {n_pos}",
                sp.fold
            );
            // train, valid, test disjoint and complete
            let mut all: Vec<usize> = sp
                .train
                .iter()
                .chain(&sp.valid)
                .chain(&sp.test)
                .copied()
                .collect();
            all.sort_unstable();
            assert_eq!(all, (0..y.len()).collect::<Vec<_>>());
        }
        assert!(seen.iter().all(|c| *c == 1));
        assert_eq!(s, kfold_splits(&y, 10, 0.1, 5));
        assert_ne!(s, kfold_splits(&y, 10, 0.1, 6));
    }

    #[test]
    fn repeated_split_keeps_class_fractions() {
        let y = labels();
        for sp in repeated_splits(&y, 3, 0.3, 0.1, 1) {
            let pos = sp.test.iter().filter(|i| y[**i] == 1).count();
            assert_eq!(pos, (78.0f64 * 0.3).round() as usize);
            assert_eq!(sp.test.len(), pos + (925.0f64 * 0.3).round() as usize);
        }
    }
}
