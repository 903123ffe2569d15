//! Training: the one loop every network runs through ([`fit`]) and its use by the U-Net
//! detectors ([`train_unet`]).
//!
//! * Adam (Kingma & Ba 2015) at `train.learning_rate`, mini-batches of `train.batch_size`;
//! * inputs are fresh Poisson draws of the Asimov patches every epoch, keyed by
//!   `(seed, "train/poisson/<epoch>", patch_id)` (the validation draw is fixed:
//!   `"train/val-poisson"`), so a run does not depend on thread count and a resumed run sees
//!   the same draws as an uninterrupted one;
//! * a validation split (`train.validation_fraction`, a seeded shuffle), or the patches of
//!   an independent validation sky (`train.data.validation_patches`);
//! * optional flips of the training patches (`train.augment = "flips"`: x, y, both or
//!   neither, keyed by `(seed, "train/flip/<epoch>", patch_id)`; never a 90-degree
//!   rotation, which would stand the Galactic plane on end);
//! * the learning rate is multiplied by `lr_factor` (0.5) after `lr_patience` epochs without
//!   a new best validation loss (never below `min_learning_rate`), and training stops after
//!   `early_stop_patience` such epochs;
//! * the best model (lowest validation loss) is kept as `model.safetensors` (loadable from
//!   PyTorch with `safetensors.torch.load_file`), the last epoch's model (burnpack, which keeps
//!   parameter ids), optimizer state and counters in `checkpoint/` so that `resume` continues
//!   where a run stopped with the same Adam moments;
//! * a progress bar shows the running loss; `train_log.csv` gets one row per epoch
//!   (`epoch,train_loss,val_loss,learning_rate,best`, reproducible to the byte) and
//!   `train_times.csv` its wall time (`epoch,wall_time_s`).
//!
//! Everything above except the data and the loss is [`fit`]'s; the U-Net plugs in a
//! [`fit::Task`] with a strict improvement test (`val < best`), the learning-rate floor and
//! early stopping of `[train]`.
//!
//! Loss: mean pixel cross-entropy of the 2-class softmax against the disk targets, plus for
//! Centroid-Net `vector_loss_weight` times the mean squared error of the two vote channels.

pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::TrainConfig as Config;
pub mod data;
pub mod fit;

use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use crate::models::unet::{Unet, UnetConfig};
use crate::patches::set::PatchSet;
use burn::module::Module;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::activation::log_softmax;
use data::{Draw, Normaliser};
use rand::seq::SliceRandom;
use std::path::Path;

/// Best-model weights file in a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// Training log file (`fit::LOG_HEADER`: losses and learning rates, reproducible).
pub const LOG_FILE: &str = "train_log.csv";
/// The epochs' wall times (`fit::TIMES_HEADER`). A run-store stage keeps them in its
/// manifest's summary (`epoch_time_s`) instead, so that every file of a stage directory but
/// `manifest.json` is the same bytes on any machine; a model folder carries this file.
pub const TIMES_FILE: &str = "train_times.csv";

/// The epochs' wall times of a trained network: the stage summary's `epoch_time_s`, else
/// `dir`'s [`TIMES_FILE`], else the `wall_time_s` column of `dir`'s [`LOG_FILE`] (logs
/// written before the times moved out of it, as the shipped models' are). Empty when none
/// has them.
pub fn epoch_wall_times(dir: &Path, summary: &serde_json::Value) -> Vec<f64> {
    if let Some(a) = summary["epoch_time_s"].as_array() {
        return a.iter().filter_map(|v| v.as_f64()).collect();
    }
    for f in [TIMES_FILE, LOG_FILE] {
        if let Ok(text) = std::fs::read_to_string(dir.join(f)) {
            let t = fit::wall_times_of_csv(&text);
            if !t.is_empty() {
                return t;
            }
        }
    }
    Vec::new()
}

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

/// What a training run reports (`crate::detect::Detector::fit`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FitReport {
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub best_val_loss: f64,
    pub first_train_loss: f64,
    pub last_train_loss: f64,
    /// Training wall time: the epochs' wall times summed, those of resumed runs included.
    pub wall_time_s: f64,
    /// Every epoch's wall time, those of resumed runs included.
    pub epoch_time_s: Vec<f64>,
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
        .map_err(|e| Error::Internal(format!("saving {}: {e:?}", path.display())))?;
    canonicalise_safetensors(path)
}

/// Rewrites a safetensors file in one canonical byte layout: the header's tensors in name
/// order (the JSON object's keys sorted, `__metadata__` kept), their data in the same order
/// with offsets to match, the header padded with spaces to a multiple of 8 bytes (the
/// format's alignment). burn's store writes the header from a hash map, so two saves of the
/// same weights differed in their bytes; after this they are byte-identical, as every other
/// stage output is. The tensors' bytes are copied unchanged.
pub fn canonicalise_safetensors(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |m: &str| Error::bad_file(path, format!("not a safetensors file: {m}"));
    if bytes.len() < 8 {
        return Err(bad("shorter than its 8-byte header length"));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let data = bytes
        .get(8 + n..)
        .ok_or_else(|| bad("header longer than the file"))?;
    let header: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(&bytes[8..8 + n]).map_err(|e| bad(&e.to_string()))?;
    // serde_json's map is ordered by key (no `preserve_order` feature)
    let mut out_header = serde_json::Map::new();
    let mut out_data = Vec::with_capacity(data.len());
    for (name, entry) in header {
        if name == "__metadata__" {
            out_header.insert(name, entry);
            continue;
        }
        let mut entry = entry;
        let offsets = entry["data_offsets"]
            .as_array()
            .and_then(|a| Some((a.first()?.as_u64()? as usize, a.get(1)?.as_u64()? as usize)))
            .ok_or_else(|| bad(&format!("tensor {name} has no data_offsets")))?;
        let slice = data
            .get(offsets.0..offsets.1)
            .ok_or_else(|| bad(&format!("tensor {name}'s data lies outside the file")))?;
        let start = out_data.len();
        out_data.extend_from_slice(slice);
        entry["data_offsets"] = serde_json::json!([start, out_data.len()]);
        out_header.insert(name, entry);
    }
    let mut text = serde_json::to_vec(&out_header).map_err(|e| Error::Internal(e.to_string()))?;
    while text.len() % 8 != 0 {
        text.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + out_data.len());
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(&text);
    out.extend_from_slice(&out_data);
    crate::formats::atomic_write(path, &out)
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

/// The U-Net as a [`fit::Task`]: Poisson (or Asimov) inputs, disk (and vote) targets, the
/// validation loss on the fixed validation draw, the best weights to `model.safetensors`.
struct UnetTask<'a> {
    patches: &'a PatchSet,
    /// Where the validation patches are: the training set itself or a validation sky.
    val_set: &'a PatchSet,
    val_idx: Vec<usize>,
    augment: config::Augment,
    normaliser: &'a Normaliser,
    spec: &'a LossSpec,
    seed: u64,
    poisson: bool,
    batch_size: usize,
    device: Device,
    plain: Device,
    weights: std::path::PathBuf,
}

impl fit::Task for UnetTask<'_> {
    type Model = Unet;

    fn batch_loss(
        &mut self,
        model: &Unet,
        epoch: usize,
        _batch: usize,
        rows: &[usize],
    ) -> Result<Tensor<1>> {
        let stage = format!("train/poisson/{epoch}");
        let draw = if self.poisson {
            Draw::Poisson {
                seed: self.seed,
                stage: &stage,
            }
        } else {
            Draw::Asimov
        };
        let flips = match self.augment {
            config::Augment::None => Vec::new(),
            config::Augment::Flips => {
                let stage = format!("train/flip/{epoch}");
                rows.iter()
                    .map(|&i| {
                        use rand::Rng as _;
                        let mut rng =
                            crate::rng::stream(self.seed, &stage, self.patches.patch_ids[i]);
                        data::Flip::from_code(rng.random_range(0..4u8))
                    })
                    .collect()
            }
        };
        let x = data::inputs_flipped(
            self.patches,
            rows,
            draw,
            self.normaliser,
            &flips,
            &self.device,
        );
        let t = data::targets_flipped(
            self.patches,
            rows,
            self.spec.disk_radius_px,
            self.spec.vectors.map(|v| v.0),
            &flips,
            &self.device,
        );
        Ok(loss(model.forward(x), t, self.spec))
    }

    fn validate(&mut self, model: &Unet, train_loss: f64) -> Result<Option<f64>> {
        Ok(Some(if self.val_idx.is_empty() {
            train_loss
        } else {
            evaluate(
                &model.valid(),
                self.val_set,
                &self.val_idx,
                self.normaliser,
                self.spec,
                self.seed,
                self.batch_size,
                &self.plain,
            )
        }))
    }

    fn keep_best(&mut self, model: &Unet, _epoch: usize) -> Result<()> {
        save_weights(model, &self.weights)
    }
}

/// The patches a U-Net learns from.
#[derive(Clone, Copy)]
pub struct TrainingData<'a> {
    /// Training patches (with truth).
    pub train: &'a PatchSet,
    /// An independent validation sky; `None`: a `train.validation_fraction` split of `train`.
    pub validation: Option<&'a PatchSet>,
}

/// Epochs to run: `train.epochs`, or fewer when `train.max_steps` runs out first (the
/// epoch in which the budget is reached is finished).
pub fn max_epochs(tc: &config::TrainConfig, n_train: usize) -> usize {
    if tc.max_steps == 0 {
        return tc.epochs;
    }
    let per_epoch = n_train.div_ceil(tc.batch_size).max(1);
    tc.epochs.min(tc.max_steps.div_ceil(per_epoch).max(1))
}

/// Trains a U-Net on `patches` (with truth) into `out`; resumes from `out/checkpoint` when
/// `resume` is set and a checkpoint exists.
pub fn train_unet(
    config: &ExperimentConfig,
    unet: &UnetConfig,
    spec: &LossSpec,
    data: TrainingData,
    out: &Path,
    resume: bool,
    pb: &indicatif::ProgressBar,
) -> Result<Trained> {
    let TrainingData {
        train: patches,
        validation,
    } = data;
    let tc = &config.train;
    unet.check(patches.size()).map_err(Error::Usage)?;
    if patches.is_empty() {
        return Err(Error::Usage("no training patches".into()));
    }
    let start = std::time::Instant::now();
    let seed = config.seed;
    let device = tc.device.autodiff()?;
    device.seed(seed);
    let plain = tc.device.device()?;
    let (train_idx, val_idx, val_set) = match validation {
        Some(v) if !v.is_empty() => ((0..patches.len()).collect(), (0..v.len()).collect(), v),
        _ => {
            let (t, v) = split(patches.len(), tc.validation_fraction, seed);
            (t, v, patches)
        }
    };
    let normaliser = Normaliser::fit(config.detect.unet.normalisation, patches, &train_idx);
    let model = unet.init(&device);
    let mut task = UnetTask {
        patches,
        val_set,
        val_idx,
        augment: tc.augment,
        normaliser: &normaliser,
        spec,
        seed,
        poisson: tc.poisson,
        batch_size: tc.batch_size,
        device,
        plain: plain.clone(),
        weights: out.join(WEIGHTS_FILE),
    };
    let cfg = fit::FitConfig {
        schedule: fit::Schedule {
            learning_rate: tc.learning_rate,
            min_delta: 0.0,
            first_always_best: false,
            lr_patience: Some(tc.lr_patience),
            lr_factor: tc.lr_factor,
            lr_floor: Some(tc.min_learning_rate),
            early_stop: (tc.early_stop_patience > 0).then_some(tc.early_stop_patience),
        },
        epochs: max_epochs(tc, train_idx.len()),
        batch_size: tc.batch_size,
        rows: train_idx,
        seed,
        shuffle_stream: "train/shuffle",
        log_file: Some(out.join(LOG_FILE)),
        times_file: Some(out.join(TIMES_FILE)),
        checkpoint: Some(fit::Checkpoint {
            dir: out.join("checkpoint"),
            resume,
        }),
        progress: Some(pb),
        announce: true,
    };
    let (_, outcome) = fit::fit(&mut task, model, &cfg)?;
    let st = outcome.state;
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
            // every epoch's wall time, also those of the runs this one resumed
            wall_time_s: st.epoch_time_s.iter().sum::<f64>().max(0.0)
                + if st.epoch_time_s.is_empty() {
                    start.elapsed().as_secs_f64()
                } else {
                    0.0
                },
            epoch_time_s: st.epoch_time_s,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut header = String::from("{");
        let mut data = Vec::new();
        for (i, (name, bytes)) in entries.iter().enumerate() {
            let start = data.len();
            data.extend_from_slice(bytes);
            if i > 0 {
                header.push(',');
            }
            header.push_str(&format!(
                "\"{name}\":{{\"dtype\":\"U8\",\"shape\":[{}],\"data_offsets\":[{start},{}]}}",
                bytes.len(),
                data.len()
            ));
        }
        header.push('}');
        let mut out = (header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&data);
        out
    }

    /// Two files with the same tensors in different orders become the same bytes, each
    /// tensor keeping its own data, and a second pass changes nothing.
    #[test]
    fn canonical_safetensors_do_not_depend_on_the_writers_order() {
        let d = tempfile::tempdir().unwrap();
        let (a, b) = (
            d.path().join("a.safetensors"),
            d.path().join("b.safetensors"),
        );
        std::fs::write(&a, file(&[("zeta", &[1, 2, 3]), ("alpha", &[9, 8])])).unwrap();
        std::fs::write(&b, file(&[("alpha", &[9, 8]), ("zeta", &[1, 2, 3])])).unwrap();
        canonicalise_safetensors(&a).unwrap();
        canonicalise_safetensors(&b).unwrap();
        let (ba, bb) = (std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        assert_eq!(ba, bb);
        let n = u64::from_le_bytes(ba[..8].try_into().unwrap()) as usize;
        assert_eq!(n % 8, 0);
        let h: serde_json::Value = serde_json::from_slice(&ba[8..8 + n]).unwrap();
        assert_eq!(h["alpha"]["data_offsets"], serde_json::json!([0, 2]));
        assert_eq!(h["zeta"]["data_offsets"], serde_json::json!([2, 5]));
        assert_eq!(&ba[8 + n..], &[9, 8, 1, 2, 3]);
        canonicalise_safetensors(&a).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), bb);
        std::fs::write(&a, b"\x05\0\0\0\0\0\0\0{").unwrap();
        let e = canonicalise_safetensors(&a).unwrap_err().to_string();
        assert!(e.contains("a.safetensors"), "{e}");
    }

    /// A network saved twice is the same file, and loads back to the same outputs.
    #[test]
    fn saved_weights_are_byte_identical_and_load_back() {
        use burn::prelude::*;
        let cfg = crate::models::unet::UnetConfig {
            in_channels: 2,
            out_channels: 2,
            widths: vec![4, 8],
        };
        let device = Device::flex();
        device.seed(3);
        let model = cfg.init(&device);
        let d = tempfile::tempdir().unwrap();
        let (p1, p2) = (
            d.path().join("1.safetensors"),
            d.path().join("2.safetensors"),
        );
        save_weights(&model, &p1).unwrap();
        save_weights(&model, &p2).unwrap();
        assert_eq!(std::fs::read(&p1).unwrap(), std::fs::read(&p2).unwrap());
        let back = load_weights(cfg.init(&device), &p1).unwrap();
        let x = Tensor::<4>::ones([1, 2, 16, 16], &device);
        let (y0, y1): (Vec<f32>, Vec<f32>) = (
            model
                .forward(x.clone())
                .into_data()
                .try_to_vec::<f32>()
                .unwrap(),
            back.forward(x).into_data().try_to_vec::<f32>().unwrap(),
        );
        assert_eq!(y0, y1);
    }
}
