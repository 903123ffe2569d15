//! Random forest (Breiman 2001) with optional SMOTE, as in MUWCLASS (Kargaltsev et al.).
//!
//! Each tree is a CART classifier grown on a bootstrap sample of the training rows: at every
//! node `max_features` columns are drawn without replacement and the split `x_j <= theta`
//! minimising the weighted Gini impurity `G = sum_children n_c/n (1 - sum_k p_k^2)` is taken
//! (thresholds halfway between consecutive distinct values); growth stops at `max_depth`, at
//! pure nodes, or when a child would hold fewer than `min_samples_leaf` rows. The forest's
//! probability is the mean over trees of the leaf class fractions (scikit-learn's
//! `predict_proba`). Tree t draws from the stream `(seed, "classify/rf/tree", t)` and trees
//! are grown in parallel, so the forest does not depend on the thread count.
//!
//! Written here rather than taken from linfa-ensemble so every draw is keyed per tree and the
//! model is a small serde structure (saved as JSON).

use super::{Classifier, Matrix};
use crate::error::{Error, Result};
use rand::Rng as _;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use super::config::ForestConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum Node {
    Leaf(Vec<f32>),
    Split {
        feature: usize,
        threshold: f32,
        left: usize,
        right: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Tree {
    nodes: Vec<Node>,
}

impl Tree {
    fn predict(&self, row: &[f32]) -> &[f32] {
        let mut i = 0;
        loop {
            match &self.nodes[i] {
                Node::Leaf(p) => return p,
                Node::Split {
                    feature,
                    threshold,
                    left,
                    right,
                } => {
                    i = if row[*feature] <= *threshold {
                        *left
                    } else {
                        *right
                    }
                }
            }
        }
    }
}

struct Grower<'a> {
    x: &'a Matrix,
    y: &'a [usize],
    k: usize,
    cfg: &'a ForestConfig,
    mtry: usize,
    nodes: Vec<Node>,
}

fn gini(counts: &[usize], n: usize) -> f64 {
    if n == 0 {
        return 0.0;
    }
    let n = n as f64;
    1.0 - counts.iter().map(|c| (*c as f64 / n).powi(2)).sum::<f64>()
}

impl Grower<'_> {
    fn leaf(&self, idx: &[usize]) -> Node {
        let mut p = vec![0f32; self.k];
        for &i in idx {
            p[self.y[i]] += 1.0;
        }
        let n = idx.len().max(1) as f32;
        p.iter_mut().for_each(|v| *v /= n);
        Node::Leaf(p)
    }

    fn grow(&mut self, idx: &mut [usize], depth: usize, r: &mut crate::rng::Rng) -> usize {
        let id = self.nodes.len();
        self.nodes.push(Node::Leaf(Vec::new()));
        let mut counts = vec![0usize; self.k];
        for &i in idx.iter() {
            counts[self.y[i]] += 1;
        }
        let pure = counts.iter().filter(|c| **c > 0).count() <= 1;
        let min_leaf = self.cfg.min_samples_leaf;
        if pure
            || idx.len() < 2 * min_leaf
            || (self.cfg.max_depth > 0 && depth >= self.cfg.max_depth)
        {
            self.nodes[id] = self.leaf(idx);
            return id;
        }
        // features to try: partial Fisher-Yates
        let mut feats: Vec<usize> = (0..self.x.d).collect();
        for t in 0..self.mtry {
            let j = r.random_range(t..feats.len());
            feats.swap(t, j);
        }
        let parent = gini(&counts, idx.len());
        let mut best: Option<(f64, usize, f32)> = None;
        let mut sorted: Vec<(f32, usize)> = Vec::with_capacity(idx.len());
        for &f in &feats[..self.mtry] {
            sorted.clear();
            sorted.extend(idx.iter().map(|&i| (self.x.at(i, f), self.y[i])));
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            let mut left = vec![0usize; self.k];
            let n = sorted.len();
            for s in 0..n - 1 {
                left[sorted[s].1] += 1;
                let nl = s + 1;
                if sorted[s].0 == sorted[s + 1].0 || nl < min_leaf || n - nl < min_leaf {
                    continue;
                }
                let right: Vec<usize> = counts.iter().zip(&left).map(|(c, l)| c - l).collect();
                let g = (nl as f64 * gini(&left, nl) + (n - nl) as f64 * gini(&right, n - nl))
                    / n as f64;
                if g < parent - 1e-12 && best.is_none_or(|b| g < b.0) {
                    let thr = 0.5 * (sorted[s].0 + sorted[s + 1].0);
                    best = Some((g, f, thr));
                }
            }
        }
        let Some((_, feature, threshold)) = best else {
            self.nodes[id] = self.leaf(idx);
            return id;
        };
        // partition in place
        let mut m = 0;
        for t in 0..idx.len() {
            if self.x.at(idx[t], feature) <= threshold {
                idx.swap(t, m);
                m += 1;
            }
        }
        let (l, rr) = idx.split_at_mut(m);
        let left = self.grow(l, depth + 1, r);
        let right = self.grow(rr, depth + 1, r);
        self.nodes[id] = Node::Split {
            feature,
            threshold,
            left,
            right,
        };
        id
    }
}

/// A random forest; `smote` oversamples the training rows first (the `rf_smote` variant).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RandomForest {
    /// Hyperparameters.
    pub config: ForestConfig,
    /// Apply SMOTE to the training rows before growing.
    pub smote: bool,
    n_classes: usize,
    trees: Vec<Tree>,
}

impl RandomForest {
    /// An untrained forest.
    pub fn new(config: ForestConfig, smote: bool, n_classes: usize) -> Self {
        Self {
            config,
            smote,
            n_classes,
            trees: Vec::new(),
        }
    }

    /// Mean leaf class fractions.
    pub fn proba(&self, x: &Matrix) -> Vec<Vec<f64>> {
        (0..x.n)
            .map(|i| {
                let mut p = vec![0f64; self.n_classes];
                for t in &self.trees {
                    for (a, b) in p.iter_mut().zip(t.predict(x.row(i))) {
                        *a += *b as f64;
                    }
                }
                let n = self.trees.len().max(1) as f64;
                p.iter().map(|v| v / n).collect()
            })
            .collect()
    }

    /// Loads a forest saved by [`Classifier::save`].
    pub fn load(dir: &Path) -> Result<Self> {
        super::read_json(&dir.join("forest.json"))
    }
}

impl Classifier for RandomForest {
    fn name(&self) -> &'static str {
        if self.smote { "rf_smote" } else { "rf" }
    }

    fn fit(
        &mut self,
        x: &Matrix,
        y: &[usize],
        _valid: Option<(&Matrix, &[usize])>,
        seed: u64,
    ) -> Result<()> {
        if x.n == 0 {
            return Err(Error::Internal("random forest: no training rows".into()));
        }
        let (xs, ys) = if self.smote {
            super::smote::oversample(x, y, self.config.smote_k, seed)
        } else {
            (x.clone(), y.to_vec())
        };
        let mtry = if self.config.max_features == 0 {
            ((xs.d as f64).sqrt().round() as usize).max(1)
        } else {
            self.config.max_features.min(xs.d)
        };
        let k = self.n_classes;
        let cfg = self.config.clone();
        self.trees = (0..cfg.n_trees)
            .into_par_iter()
            .map(|t| {
                let mut r = crate::rng::stream(seed, "classify/rf/tree", t as u64);
                let mut idx: Vec<usize> = (0..xs.n).map(|_| r.random_range(0..xs.n)).collect();
                let mut g = Grower {
                    x: &xs,
                    y: &ys,
                    k,
                    cfg: &cfg,
                    mtry,
                    nodes: Vec::new(),
                };
                g.grow(&mut idx, 0, &mut r);
                Tree { nodes: g.nodes }
            })
            .collect();
        Ok(())
    }

    fn predict_logits(&self, x: &Matrix) -> Result<Vec<Vec<f64>>> {
        // log-probabilities (floored) so that temperature scaling applies uniformly
        Ok(self
            .proba(x)
            .into_iter()
            .map(|p| p.iter().map(|v| v.max(1e-4).ln()).collect())
            .collect())
    }

    fn save(&self, dir: &Path) -> Result<()> {
        super::write_json(
            &dir.join("model.json"),
            &serde_json::json!({"variant": self.name()}),
        )?;
        super::write_json(&dir.join("forest.json"), self)
    }
}
