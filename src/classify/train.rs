//! Training loop for the network variants: Adam (Kingma & Ba 2015) on mini-batches, the
//! categorical cross-entropy, early stopping on the validation loss and learning-rate
//! reduction on plateau.
//!
//! Per epoch the training rows are shuffled with the stream `(seed, "classify/train/shuffle",
//! epoch)`; dropout masks (bnn) come from `(seed, "classify/train/dropout", epoch * 2^20 +
//! batch)`; initial weights from the backend generator seeded with `seed` just before the
//! network is built (folds are trained one after the other, so this is reproducible).
//! After every epoch the mean validation cross-entropy is computed; the weights of the best
//! epoch are kept; training stops after `patience` epochs without improvement (0 = never) and
//! the learning rate is multiplied by `lr_factor` after `lr_patience` epochs without one.

use super::Matrix;
use super::nets::{self, NetClassifier};
use crate::error::{Error, Result};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::activation::log_softmax;
use burn::tensor::{Device, Tensor, TensorData};
use rand::seq::SliceRandom;
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

fn batch_tensor(x: &Matrix, rows: &[usize], device: &Device) -> Tensor<2> {
    let mut v = Vec::with_capacity(rows.len() * x.d);
    for &i in rows {
        v.extend_from_slice(x.row(i));
    }
    Tensor::from_data(TensorData::new(v, [rows.len(), x.d]), device)
}

fn target_tensor(y: &[usize], rows: &[usize], w: &[f32], device: &Device) -> Tensor<2> {
    let k = w.len();
    let mut v = vec![0f32; rows.len() * k];
    for (r, &i) in rows.iter().enumerate() {
        v[r * k + y[i]] = w[y[i]];
    }
    Tensor::from_data(TensorData::new(v, [rows.len(), k]), device)
}

fn scalar(t: Tensor<1>) -> Result<f64> {
    let v: Vec<f32> = t
        .into_data()
        .try_to_vec()
        .map_err(|e| Error::Internal(format!("{e:?}")))?;
    Ok(v[0] as f64)
}

/// Trains a fresh network for `c` and returns the best weights (on a plain device).
pub fn train(
    c: &NetClassifier,
    x: &Matrix,
    y: &[usize],
    valid: Option<(&Matrix, &[usize])>,
    seed: u64,
) -> Result<(nets::Net, TrainLog)> {
    let cfg = &c.config.train;
    let device = Device::flex().autodiff();
    device.seed(seed);
    let mut net = nets::build(c.kind, &c.config, &c.layout, c.n_classes, &device);
    let mut optim = AdamConfig::new().init();
    let k = c.n_classes;
    let weights: Vec<f32> = if c.config.class_weights {
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
    } else {
        vec![1.0; k]
    };
    let ones = vec![1.0f32; k];
    let mut lr = cfg.learning_rate;
    let mut log = TrainLog::default();
    let mut best: Option<(f64, nets::Net)> = None;
    let (mut since_best, mut since_lr) = (0usize, 0usize);
    let p_drop = if c.kind == nets::Kind::Bnn {
        c.config.dropout
    } else {
        0.0
    };
    for epoch in 0..cfg.epochs {
        let mut order: Vec<usize> = (0..x.n).collect();
        order.shuffle(&mut crate::rng::stream(
            seed,
            "classify/train/shuffle",
            epoch as u64,
        ));
        let fresh = c.augment.as_ref().map(|f| f(epoch));
        let x = fresh.as_ref().unwrap_or(x);
        let mut total = 0.0;
        for (bi, rows) in order.chunks(cfg.batch_size).enumerate() {
            let xb = batch_tensor(x, rows, &device);
            let tb = target_tensor(y, rows, &weights, &device);
            let masks = (p_drop > 0.0).then(|| {
                let mut r = crate::rng::stream(
                    seed,
                    "classify/train/dropout",
                    ((epoch as u64) << 20) + bi as u64,
                );
                nets::draw_masks(&net, rows.len(), p_drop, &mut r, &device)
            });
            let logits = net.forward(c.kind, &c.layout, xb, masks.as_ref());
            let loss = (log_softmax(logits, 1) * tb)
                .sum_dim(1)
                .mean()
                .mul_scalar(-1.0);
            total += scalar(loss.clone().detach())? * rows.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
        }
        log.train_loss.push(total / x.n.max(1) as f64);
        let Some((xv, yv)) = valid.filter(|(xv, _)| xv.n > 0) else {
            best = Some((0.0, net.clone()));
            log.best_epoch = epoch;
            continue;
        };
        let vnet = net.valid();
        let vdev = vnet.device();
        let all: Vec<usize> = (0..xv.n).collect();
        let logits = vnet.forward(c.kind, &c.layout, batch_tensor(xv, &all, &vdev), None);
        let vloss = -scalar(
            (log_softmax(logits, 1) * target_tensor(yv, &all, &ones, &vdev))
                .sum_dim(1)
                .mean(),
        )?;
        log.valid_loss.push(vloss);
        if best.as_ref().is_none_or(|(b, _)| vloss < *b - 1e-6) {
            best = Some((vloss, net.clone()));
            log.best_epoch = epoch;
            since_best = 0;
            since_lr = 0;
        } else {
            since_best += 1;
            since_lr += 1;
            if cfg.lr_patience > 0 && since_lr >= cfg.lr_patience {
                lr *= cfg.lr_factor;
                since_lr = 0;
            }
            if cfg.patience > 0 && since_best >= cfg.patience {
                break;
            }
        }
    }
    log.final_learning_rate = lr;
    let (_, net) = best.ok_or_else(|| Error::Internal("no epoch trained".into()))?;
    Ok((net.valid(), log))
}
