//! K-fold cross-validation splits and their summaries, shared by the classifiers and the
//! detectors (issue 18: "one split function, one summary of mean ± std").
//!
//! A [`Folds`] assigns every item a fold `0..K`; fold `f`'s held-out part is its items, the
//! rest train. Two ways to build one:
//!
//! * [`Folds::stratified`], for catalog rows (scikit-learn's `StratifiedKFold(shuffle=True)`
//!   in spirit): the items of each class are shuffled with the stream `(seed, stream, class)`
//!   and dealt round-robin, so every fold holds `floor` or `ceil` of `n_c / K` of class `c`.
//! * [`Folds::grouped`], for sky patches (spatial block cross-validation, Roberts et al. 2017,
//!   Ecography 40, 913): items come in groups (a coarse HEALPix pixel of one sky realisation,
//!   [`region_groups`]) that never straddle two folds; the groups, shuffled with
//!   `(seed, stream, 0)`, are dealt heaviest first to the fold with the least weight so far
//!   (the longest-processing-time rule), the weight being each patch's true source count, so
//!   the folds hold similar numbers of sources.
//!
//! Patches are 10 x 10 deg and overlap their neighbours; a held-out patch and a training
//! patch of the same realisation that overlap share sources and Poisson noise, so
//! [`Folds::train_rows`] also drops the training patches of a realisation that lie within
//! `buffer_deg` of one of its held-out patches (`2 sqrt(2) x` the half width: two squares
//! whose centres are farther apart than the sum of their circumscribed radii cannot overlap).
//! Different realisations share only the diffuse template, which every test sky shares too.
//!
//! All draws are keyed by `(seed, stream, ...)`, so the folds do not depend on thread count.

use crate::rng;
use rand::seq::SliceRandom;

/// The fold of every item of a K-fold split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Folds {
    /// Number of folds.
    pub k: usize,
    /// Fold `0..k` of every item.
    pub fold: Vec<usize>,
}

impl Folds {
    /// Stratified K-fold of items with class labels `y` (see the module doc).
    pub fn stratified(y: &[usize], k: usize, seed: u64, stream: &str) -> Self {
        assert!(k >= 2, "K-fold needs K >= 2");
        let n_class = y.iter().copied().max().map_or(0, |m| m + 1);
        let mut fold = vec![0; y.len()];
        let mut offset = 0;
        for c in 0..n_class {
            let mut items: Vec<usize> = (0..y.len()).filter(|&i| y[i] == c).collect();
            items.shuffle(&mut rng::stream(seed, stream, c as u64));
            for (pos, &i) in items.iter().enumerate() {
                // continue the deal where the previous class stopped, so fold sizes stay even
                fold[i] = (pos + offset) % k;
            }
            offset += items.len();
        }
        Self { k, fold }
    }

    /// Grouped K-fold balanced by weight (see the module doc): items of one group share a
    /// fold. Groups are identified by any `u64`; `weight[i]` is item `i`'s weight (>= 0).
    pub fn grouped(groups: &[u64], weight: &[f64], k: usize, seed: u64, stream: &str) -> Self {
        assert!(k >= 2, "K-fold needs K >= 2");
        assert_eq!(groups.len(), weight.len());
        let mut ids: Vec<u64> = groups.to_vec();
        ids.sort_unstable();
        ids.dedup();
        let mut w = vec![0.0f64; ids.len()];
        let mut n = vec![0usize; ids.len()];
        let index = |g: u64| ids.binary_search(&g).expect("group listed");
        for (g, x) in groups.iter().zip(weight) {
            let j = index(*g);
            w[j] += x.max(0.0);
            n[j] += 1;
        }
        // a seeded shuffle breaks ties between equal groups, then heaviest first
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.shuffle(&mut rng::stream(seed, stream, 0));
        order.sort_by(|&a, &b| w[b].total_cmp(&w[a]).then(n[b].cmp(&n[a])));
        let mut load = vec![(0.0f64, 0usize); k];
        let mut fold_of_group = vec![0usize; ids.len()];
        for j in order {
            // the lightest fold (by weight, then items, then index)
            let f = (0..k)
                .min_by(|&a, &b| {
                    load[a]
                        .0
                        .total_cmp(&load[b].0)
                        .then(load[a].1.cmp(&load[b].1))
                        .then(a.cmp(&b))
                })
                .expect("k >= 2");
            fold_of_group[j] = f;
            load[f].0 += w[j];
            load[f].1 += n[j];
        }
        Self {
            k,
            fold: groups.iter().map(|g| fold_of_group[index(*g)]).collect(),
        }
    }

    /// The items of fold `f` (held out), ascending.
    pub fn held_out(&self, f: usize) -> Vec<usize> {
        (0..self.fold.len())
            .filter(|&i| self.fold[i] == f)
            .collect()
    }

    /// The items of every other fold, ascending.
    pub fn rest(&self, f: usize) -> Vec<usize> {
        (0..self.fold.len())
            .filter(|&i| self.fold[i] != f)
            .collect()
    }

    /// The training items of fold `f`: [`Self::rest`] without the items of the same
    /// realisation (`realisation[i]`) whose centre (`centres_deg[i]`, lon/lat) is within
    /// `buffer_deg` of a held-out item's.
    pub fn train_rows(
        &self,
        f: usize,
        realisation: &[u64],
        centres_deg: &[(f64, f64)],
        buffer_deg: f64,
    ) -> Vec<usize> {
        let held = self.held_out(f);
        self.rest(f)
            .into_iter()
            .filter(|&i| {
                !held.iter().any(|&h| {
                    realisation[h] == realisation[i]
                        && crate::coords::angular_distance_deg(
                            centres_deg[i].0,
                            centres_deg[i].1,
                            centres_deg[h].0,
                            centres_deg[h].1,
                        ) < buffer_deg
                })
            })
            .collect()
    }
}

/// The group of every patch for [`Folds::grouped`]: its realisation (`patch_id >> 32`, the
/// offset of [`crate::patches::set::PatchSet::concat`]) and the NESTED HEALPix pixel at
/// `nside` (a power of two) of its centre, as `realisation << 32 | pixel`.
pub fn region_groups(patch_ids: &[u64], centres_deg: &[(f64, f64)], nside: u32) -> Vec<u64> {
    let depth = nside.trailing_zeros() as u8;
    patch_ids
        .iter()
        .zip(centres_deg)
        .map(|(id, (l, b))| {
            let pix = cdshealpix::nested::hash(depth, l.to_radians(), b.to_radians());
            ((id >> 32) << 32) | pix
        })
        .collect()
}

/// Mean and sample standard deviation (`n - 1`; 0 for one value) of the finite values;
/// `(NaN, NaN)` when there are none.
pub fn mean_std(values: &[f64]) -> (f64, f64) {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = if v.len() > 1 {
        v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (m, var.sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn mean_std_is_numpys_ddof_1() {
        // numpy: np.mean([1, 2, 4]) = 2.3333, np.std([1, 2, 4], ddof=1) = 1.5275252
        let (m, s) = mean_std(&[1.0, 2.0, 4.0, f64::NAN]);
        assert!((m - 7.0 / 3.0).abs() < 1e-12);
        assert!((s - 1.527_525_231_651_946_7).abs() < 1e-12);
        assert_eq!(mean_std(&[3.0]), (3.0, 0.0));
        assert!(mean_std(&[]).0.is_nan());
    }

    #[test]
    fn stratified_folds_keep_class_fractions_and_cover_every_item_once() {
        let y: Vec<usize> = (0..1003).map(|i| usize::from(i % 13 == 0)).collect();
        let f = Folds::stratified(&y, 10, 5, "t");
        let pos = y.iter().filter(|&&c| c == 1).count();
        for k in 0..10 {
            let held = f.held_out(k);
            let p = held.iter().filter(|&&i| y[i] == 1).count();
            assert!(p.abs_diff(pos / 10) <= 1);
            assert_eq!(held.len() + f.rest(k).len(), y.len());
        }
        assert_eq!(f, Folds::stratified(&y, 10, 5, "t"));
        assert_ne!(f, Folds::stratified(&y, 10, 6, "t"));
    }

    proptest! {
        #[test]
        fn grouped_folds_never_split_a_group_and_balance_the_weight(
            groups in proptest::collection::vec(0u64..40, 50..300),
            seed in 0u64..1000,
            k in 2usize..8,
        ) {
            let weight: Vec<f64> = groups.iter().map(|g| (g % 5) as f64 + 1.0).collect();
            let f = Folds::grouped(&groups, &weight, k, seed, "t");
            // one fold per group
            let mut of_group = std::collections::HashMap::new();
            for (g, fold) in groups.iter().zip(&f.fold) {
                prop_assert_eq!(*of_group.entry(*g).or_insert(*fold), *fold);
            }
            // greedy LPT: no fold exceeds the lightest by more than the heaviest group
            let mut load = vec![0.0; k];
            let mut gw = std::collections::HashMap::new();
            for (g, w) in groups.iter().zip(&weight) {
                *gw.entry(*g).or_insert(0.0) += w;
            }
            for (g, fold) in &of_group {
                load[*fold] += gw[g];
            }
            let heaviest = gw.values().cloned().fold(0.0, f64::max);
            let (lo, hi) = load.iter().fold((f64::MAX, 0.0f64), |(a, b), &x| (a.min(x), b.max(x)));
            prop_assert!(hi - lo <= heaviest + 1e-9, "loads {:?}", load);
            prop_assert_eq!(&f, &Folds::grouped(&groups, &weight, k, seed, "t"));
        }
    }

    #[test]
    fn training_rows_keep_away_from_the_held_out_patches_of_their_realisation() {
        // a row of patch centres 4 deg apart along the equator, in two realisations
        let n = 40;
        let centres: Vec<(f64, f64)> = (0..n).map(|i| ((i % 20) as f64 * 4.0, 0.0)).collect();
        let ids: Vec<u64> = (0..n as u64).map(|i| ((i / 20) << 32) | i).collect();
        let real: Vec<u64> = ids.iter().map(|id| id >> 32).collect();
        let groups = region_groups(&ids, &centres, 2);
        let f = Folds::grouped(&groups, &vec![1.0; n], 3, 1, "t");
        let buffer = 2.0 * 2f64.sqrt() * 5.0;
        for k in 0..3 {
            let held = f.held_out(k);
            let train = f.train_rows(k, &real, &centres, buffer);
            for &t in &train {
                assert_ne!(f.fold[t], k);
                for &h in &held {
                    if real[h] == real[t] {
                        let d = (centres[h].0 - centres[t].0).abs();
                        assert!(d >= buffer, "train {t} and held {h} are {d} deg apart");
                    }
                }
            }
        }
    }
}
