//! How the network variants are trained: Adam (Kingma & Ba 2015) on mini-batches, the
//! categorical cross-entropy, early stopping on the validation loss and learning-rate
//! reduction on plateau.
//!
//! Per epoch the training rows are shuffled with the stream `(seed, "classify/train/shuffle",
//! epoch)`; dropout masks (bnn) come from `(seed, "classify/train/dropout", epoch * 2^20 +
//! batch)`; initial weights from the backend generator seeded with `seed` just before the
//! network is built (folds are trained one after the other, so this is reproducible).
//! After every epoch the mean validation cross-entropy is computed; the weights of the best
//! epoch are kept; training stops after `patience` epochs without improvement (0 = never) and
//! the learning rate is multiplied by `lr_factor` after `lr_patience` epochs without one
//! (0 = never, no floor). An epoch improves on the best when its validation loss is more than
//! `1e-6` below it (the first validated epoch always does); without validation rows every
//! epoch is the best.
//!
//! The loop itself is [`crate::train::fit`]'s; [`super::nets`] plugs each network into it.
//! This file holds the settings, the log and the batch tensors.

use super::Matrix;
use crate::error::{Error, Result};
use burn::tensor::{Device, Tensor, TensorData};
use serde::{Deserialize, Serialize};

/// Optimisation settings (flattened into each network's config table).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Maximum number of epochs.
    #[serde(default = "d_epochs")]
    pub epochs: usize,
    /// Mini-batch size.
    #[serde(default = "d_batch")]
    pub batch_size: usize,
    /// Initial Adam learning rate.
    #[serde(default = "d_lr")]
    pub learning_rate: f64,
    /// Early-stopping patience in epochs (0: train all epochs, keep the best).
    #[serde(default = "d_patience")]
    pub patience: usize,
    /// Epochs without improvement before the learning rate is reduced (0: never).
    #[serde(default = "d_lr_patience")]
    pub lr_patience: usize,
    /// Factor applied to the learning rate on a plateau.
    #[serde(default = "d_lr_factor")]
    pub lr_factor: f64,
}
fn d_epochs() -> usize {
    50
}
fn d_batch() -> usize {
    64
}
fn d_lr() -> f64 {
    0.01
}
fn d_patience() -> usize {
    15
}
fn d_lr_patience() -> usize {
    5
}
fn d_lr_factor() -> f64 {
    0.5
}
impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: d_epochs(),
            batch_size: d_batch(),
            learning_rate: d_lr(),
            patience: d_patience(),
            lr_patience: d_lr_patience(),
            lr_factor: d_lr_factor(),
        }
    }
}

impl TrainConfig {
    /// Range checks.
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        if !(1..=100_000).contains(&self.epochs) {
            return Err(("epochs", "must be in 1..=100000".into()));
        }
        if !(1..=65536).contains(&self.batch_size) {
            return Err(("batch_size", "must be in 1..=65536".into()));
        }
        if !(self.learning_rate.is_finite()
            && self.learning_rate > 0.0
            && self.learning_rate < 10.0)
        {
            return Err(("learning_rate", "must be in (0, 10)".into()));
        }
        if !(self.lr_factor > 0.0 && self.lr_factor <= 1.0) {
            return Err(("lr_factor", "must be in (0, 1]".into()));
        }
        Ok(())
    }
}

/// What happened during a fit.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainLog {
    /// Mean training loss per epoch.
    pub train_loss: Vec<f64>,
    /// Mean validation loss per epoch (empty without validation rows).
    pub valid_loss: Vec<f64>,
    /// Epoch (0-based) whose weights were kept.
    pub best_epoch: usize,
    /// Learning rate at the end.
    pub final_learning_rate: f64,
}

/// The rows `rows` of `x` as a `[rows, d]` tensor.
pub(crate) fn batch_tensor(x: &Matrix, rows: &[usize], device: &Device) -> Tensor<2> {
    let mut v = Vec::with_capacity(rows.len() * x.d);
    for &i in rows {
        v.extend_from_slice(x.row(i));
    }
    Tensor::from_data(TensorData::new(v, [rows.len(), x.d]), device)
}

/// One-hot targets of `rows` scaled by the class weights `w`, `[rows, k]`.
pub(crate) fn target_tensor(y: &[usize], rows: &[usize], w: &[f32], device: &Device) -> Tensor<2> {
    let k = w.len();
    let mut v = vec![0f32; rows.len() * k];
    for (r, &i) in rows.iter().enumerate() {
        v[r * k + y[i]] = w[y[i]];
    }
    Tensor::from_data(TensorData::new(v, [rows.len(), k]), device)
}

/// The value of a one-element tensor.
pub(crate) fn scalar(t: Tensor<1>) -> Result<f64> {
    let v: Vec<f32> = t
        .into_data()
        .try_to_vec()
        .map_err(|e| Error::Internal(format!("{e:?}")))?;
    Ok(v[0] as f64)
}

impl TrainConfig {
    /// The plateau schedule and early stopping of these settings for [`crate::train::fit`]:
    /// improvement by more than `1e-6`, the first validated epoch always the best, no floor
    /// on the learning rate, 0 patience meaning never.
    pub fn schedule(&self) -> crate::train::fit::Schedule {
        crate::train::fit::Schedule {
            learning_rate: self.learning_rate,
            min_delta: 1e-6,
            first_always_best: true,
            lr_patience: (self.lr_patience > 0).then_some(self.lr_patience),
            lr_factor: self.lr_factor,
            lr_floor: None,
            early_stop: (self.patience > 0).then_some(self.patience),
        }
    }
}

/// Class weights `w_k = n / (K n_k)` (0 for an absent class) when `balanced`, else 1.
pub(crate) fn class_weights(y: &[usize], k: usize, balanced: bool) -> Vec<f32> {
    if !balanced {
        return vec![1.0; k];
    }
    let mut n_k = vec![0usize; k];
    for t in y {
        n_k[*t] += 1;
    }
    n_k.iter()
        .map(|n| {
            if *n == 0 {
                0.0
            } else {
                y.len() as f32 / (k * n) as f32
            }
        })
        .collect()
}
