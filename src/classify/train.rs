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

pub use super::config::TrainConfig;

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
