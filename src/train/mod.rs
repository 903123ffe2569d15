//! The generic training loop of the U-Net detectors.
//!
//! * Adam (Kingma & Ba 2015) at `train.learning_rate`, mini-batches of `train.batch_size`;
//! * inputs are fresh Poisson draws of the Asimov patches every epoch, keyed by
//!   `(seed, "train/poisson/<epoch>", patch_id)` (the validation draw is fixed:
//!   `"train/val-poisson"`), so a run does not depend on thread count and a resumed run sees
//!   the same draws as an uninterrupted one;
//! * a validation split (`train.validation_fraction`, a seeded shuffle);
//! * the learning rate is multiplied by `lr_factor` (0.5) after `lr_patience` epochs without
//!   a new best validation loss (never below `min_learning_rate`), and training stops after
//!   `early_stop_patience` such epochs;
//! * the best model (lowest validation loss) is kept as `model.safetensors` (loadable from
//!   PyTorch with `safetensors.torch.load_file`), the last epoch's model (burnpack, which keeps
//!   parameter ids), optimizer state and counters in `checkpoint/` so that `resume` continues
//!   where a run stopped with the same Adam moments;
//! * a progress bar shows the running loss; `train_log.csv` gets one row per epoch
//!   (`epoch,train_loss,val_loss,learning_rate,wall_time_s,best`).
//!
//! Loss: mean pixel cross-entropy of the 2-class softmax against the disk targets, plus for
//! Centroid-Net `vector_loss_weight` times the mean squared error of the two vote channels.

pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::TrainConfig as Config;
pub mod data;

use crate::config::ExperimentConfig;
use crate::detect::{FitReport, PatchSet};
use crate::error::{Error, Result};
use crate::models::unet::{Unet, UnetConfig};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::log_softmax;
use data::{Draw, Normaliser};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Best-model weights file in a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Training log file.
pub const LOG_FILE: &str = "train_log.csv";

/// What the loss needs besides the network output.
#[derive(Debug, Clone, Copy)]
pub struct LossSpec {
    pub disk_radius_px: f64,
    /// `Some((max_dist_px, weight))` for Centroid-Net.
    pub vectors: Option<(f64, f64)>,
}

/// The loss of a batch (a scalar tensor).
pub fn loss(output: Tensor<4>, target: Tensor<4>, spec: &LossSpec) -> Tensor<1> {
    let [n, _, h, w] = output.dims();
    let logits = output.clone().narrow(1, 0, 2);
    let t = target.clone().narrow(1, 0, 2);
    let ce = (log_softmax(logits, 1) * t).sum().neg() / (n * h * w) as f32;
    match spec.vectors {
        Some((_, weight)) => {
            let d = output.narrow(1, 2, 2) - target.narrow(1, 2, 2);
            ce + d.square().mean() * weight as f32
        }
        None => ce,
    }
}

/// Counters saved in `checkpoint/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct LoopState {
    /// Epochs completed.
    epochs_done: usize,
    learning_rate: f64,
    best_val_loss: f64,
    best_epoch: usize,
    plateau_wait: usize,
    stop_wait: usize,
    first_train_loss: f64,
    last_train_loss: f64,
    log_rows: Vec<String>,
    stopped_early: bool,
}

/// Splits patch indices into (train, validation) with a seeded shuffle.
pub fn split(n: usize, fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    idx.shuffle(&mut crate::rng::stream(seed, "train/split", 0));
    let n_val = if fraction > 0.0 && n >= 2 {
        ((fraction * n as f64).round() as usize).clamp(1, n - 1)
    } else {
        0
    };
    let val = idx[..n_val].to_vec();
    let mut train = idx[n_val..].to_vec();
    train.sort_unstable();
    let mut val = val;
    val.sort_unstable();
    (train, val)
}

/// Saves a module's weights as safetensors (the store writes a scratch file and renames it,
/// so a killed run never leaves a truncated file).
pub fn save_weights(model: &Unet, path: &Path) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| Error::Internal(format!("saving {}: {e:?}", path.display())))
}

/// Loads weights saved by [`save_weights`] into `model`.
pub fn load_weights(mut model: Unet, path: &Path) -> Result<Unet> {
    let mut store = SafetensorsStore::from_file(path);
    let r = model
        .load_from(&mut store)
        .map_err(|e| Error::bad_file(path, format!("cannot load weights: {e:?}")))?;
    if !r.errors.is_empty() || !r.missing.is_empty() {
        return Err(Error::bad_file(
            path,
            format!(
                "weights do not fit the network: missing {:?}, errors {:?}",
                r.missing, r.errors
            ),
        ));
    }
    Ok(model)
}

/// Checkpoint model file: burnpack keeps the parameter ids the optimizer state is keyed by
/// (safetensors does not), so a resumed run continues with its Adam moments.
const CHECKPOINT_MODEL: &str = "model.bpk";

fn save_checkpoint_model(model: &Unet, path: &Path) -> Result<()> {
    let mut store = BurnpackStore::from_file(path).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| Error::Internal(format!("saving {}: {e:?}", path.display())))
}

fn load_checkpoint_model(mut model: Unet, path: &Path) -> Result<Unet> {
    let mut store = BurnpackStore::from_file(path);
    model
        .load_from(&mut store)
        .map_err(|e| Error::bad_file(path, format!("cannot load checkpoint: {e:?}")))?;
    Ok(model)
}

/// Mean loss over `idx` without gradients.
#[allow(clippy::too_many_arguments)]
fn evaluate(
    model: &Unet,
    patches: &PatchSet,
    idx: &[usize],
    norm: &Normaliser,
    spec: &LossSpec,
    seed: u64,
    batch: usize,
    device: &Device,
) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for chunk in idx.chunks(batch) {
        let draw = Draw::Poisson {
            seed,
            stage: "train/val-poisson",
        };
        let x = data::inputs(patches, chunk, draw, norm, device);
        let t = data::targets(
            patches,
            chunk,
            spec.disk_radius_px,
            spec.vectors.map(|v| v.0),
            device,
        );
        let l: f32 = loss(model.forward(x), t, spec).into_scalar();
        sum += l as f64 * chunk.len() as f64;
        n += chunk.len();
    }
    sum / n.max(1) as f64
}

/// Everything a trained U-Net detector needs at inference.
pub struct Trained {
    pub model: Unet,
    pub normaliser: Normaliser,
    pub report: FitReport,
}

/// Trains a U-Net on `patches` (with truth) into `out`; resumes from `out/checkpoint` when
/// `resume` is set and a checkpoint exists.
pub fn train_unet(
    config: &ExperimentConfig,
    unet: &UnetConfig,
    spec: &LossSpec,
    patches: &PatchSet,
    out: &Path,
    resume: bool,
    pb: &indicatif::ProgressBar,
) -> Result<Trained> {
    let tc = &config.train;
    unet.check(patches.size()).map_err(Error::Usage)?;
    if patches.is_empty() {
        return Err(Error::Usage("no training patches".into()));
    }
    let start = std::time::Instant::now();
    let seed = config.seed;
    let device = Device::flex().autodiff();
    device.seed(seed);
    let plain = Device::flex();
    let (train_idx, val_idx) = split(patches.len(), tc.validation_fraction, seed);
    let normaliser = Normaliser::fit(config.detect.unet.normalisation, patches, &train_idx);
    let mut model = unet.init(&device);
    let mut optim = AdamConfig::new().init();
    let ckpt = out.join("checkpoint");
    std::fs::create_dir_all(&ckpt).map_err(|e| Error::io(&ckpt, e))?;
    let state_path = ckpt.join("state.json");
    let mut st = LoopState {
        epochs_done: 0,
        learning_rate: tc.learning_rate,
        best_val_loss: f64::INFINITY,
        best_epoch: 0,
        plateau_wait: 0,
        stop_wait: 0,
        first_train_loss: f64::NAN,
        last_train_loss: f64::NAN,
        log_rows: Vec::new(),
        stopped_early: false,
    };
    if resume && state_path.exists() {
        let text = std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
        st = serde_json::from_str(&text).map_err(|e| Error::bad_file(&state_path, e))?;
        model = load_checkpoint_model(model, &ckpt.join(CHECKPOINT_MODEL))?;
        optim = optim
            .load(ckpt.join("optim.bpk"))
            .map_err(|e| Error::bad_file(ckpt.join("optim.bpk"), format!("{e:?}")))?;
        log::info!("resuming after epoch {}", st.epochs_done);
    }
    let n_batches = train_idx.len().div_ceil(tc.batch_size);
    pb.set_length((tc.epochs * n_batches) as u64);
    pb.set_position((st.epochs_done * n_batches) as u64);
    for epoch in st.epochs_done..tc.epochs {
        if st.stopped_early {
            break;
        }
        let t0 = std::time::Instant::now();
        let mut order = train_idx.clone();
        order.shuffle(&mut crate::rng::stream(seed, "train/shuffle", epoch as u64));
        let stage = format!("train/poisson/{epoch}");
        let (mut sum, mut n) = (0.0, 0usize);
        for chunk in order.chunks(tc.batch_size) {
            let draw = if tc.poisson {
                Draw::Poisson {
                    seed,
                    stage: &stage,
                }
            } else {
                Draw::Asimov
            };
            let x = data::inputs(patches, chunk, draw, &normaliser, &device);
            let t = data::targets(
                patches,
                chunk,
                spec.disk_radius_px,
                spec.vectors.map(|v| v.0),
                &device,
            );
            let l = loss(model.forward(x), t, spec);
            let lv: f32 = l.clone().into_scalar();
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(st.learning_rate, model, grads);
            sum += lv as f64 * chunk.len() as f64;
            n += chunk.len();
            pb.set_message(format!("epoch {} loss {:.4}", epoch + 1, sum / n as f64));
            pb.inc(1);
        }
        let train_loss = sum / n.max(1) as f64;
        if epoch == 0 {
            st.first_train_loss = train_loss;
        }
        st.last_train_loss = train_loss;
        let val_loss = if val_idx.is_empty() {
            train_loss
        } else {
            evaluate(
                &model.valid(),
                patches,
                &val_idx,
                &normaliser,
                spec,
                seed,
                tc.batch_size,
                &plain,
            )
        };
        let improved = val_loss < st.best_val_loss;
        if improved {
            st.best_val_loss = val_loss;
            st.best_epoch = epoch + 1;
            st.plateau_wait = 0;
            st.stop_wait = 0;
            save_weights(&model, &out.join(WEIGHTS_FILE))?;
        } else {
            st.plateau_wait += 1;
            st.stop_wait += 1;
        }
        st.log_rows.push(format!(
            "{},{},{},{},{},{}",
            epoch + 1,
            crate::formats::fmt_f64(train_loss),
            crate::formats::fmt_f64(val_loss),
            crate::formats::fmt_f64(st.learning_rate),
            crate::formats::fmt_f64(t0.elapsed().as_secs_f64()),
            improved as u8
        ));
        if st.plateau_wait >= tc.lr_patience && st.learning_rate > tc.min_learning_rate {
            st.learning_rate = (st.learning_rate * tc.lr_factor).max(tc.min_learning_rate);
            st.plateau_wait = 0;
            log::info!("learning rate lowered to {:e}", st.learning_rate);
        }
        if tc.early_stop_patience > 0 && st.stop_wait >= tc.early_stop_patience {
            st.stopped_early = true;
            log::info!("early stop after epoch {}", epoch + 1);
        }
        st.epochs_done = epoch + 1;
        let mut csv = String::from("epoch,train_loss,val_loss,learning_rate,wall_time_s,best\n");
        for r in &st.log_rows {
            csv.push_str(r);
            csv.push('\n');
        }
        crate::formats::atomic_write(&out.join(LOG_FILE), csv.as_bytes())?;
        save_checkpoint_model(&model, &ckpt.join(CHECKPOINT_MODEL))?;
        optim
            .save(ckpt.join("optim.bpk"))
            .map_err(|e| Error::Internal(format!("saving optimizer state: {e:?}")))?;
        let json = serde_json::to_string_pretty(&st).map_err(|e| Error::Internal(e.to_string()))?;
        crate::formats::atomic_write(&state_path, json.as_bytes())?;
        log::info!(
            "epoch {}: train loss {train_loss:.5}, val loss {val_loss:.5}{}",
            epoch + 1,
            if improved { " (best)" } else { "" }
        );
    }
    let best = load_weights(unet.init(&plain), &out.join(WEIGHTS_FILE))?;
    Ok(Trained {
        model: best,
        normaliser,
        report: FitReport {
            epochs_run: st.epochs_done,
            best_epoch: st.best_epoch,
            best_val_loss: st.best_val_loss,
            first_train_loss: st.first_train_loss,
            last_train_loss: st.last_train_loss,
            wall_time_s: start.elapsed().as_secs_f64(),
        },
    })
}
