//! The one training loop every network of the crate runs through: the U-Net detectors
//! ([`super::train_unet`]), the catalog classifiers (DNN, RNN, MC-dropout BNN, conv + BiLSTM)
//! and the image CNN (`crate::classify::nets`).
//!
//! The loop owns the Adam optimiser (Kingma & Ba 2015, burn's defaults), the epoch loop, the
//! per-epoch shuffle of the training rows (stream `(seed, shuffle_stream, epoch)`), the
//! plateau schedule and early stopping ([`Schedule`]), best-epoch tracking, the progress bar,
//! the per-epoch log (`epoch,train_loss,val_loss,learning_rate,best`: a function of the
//! seed and the data alone, byte-identical between two runs), the epochs' wall times in a
//! file of their own (`epoch,wall_time_s`: a measurement, not a result) and
//! checkpoint/resume ([`Checkpoint`]: last weights as burnpack, which keeps the parameter ids
//! the Adam moments are keyed by, the optimiser state and the counters in `state.json`).
//! A network plugs in through [`Task`]: the loss of a mini-batch, the validation loss, and
//! what to do with a new best model.
//!
//! Per epoch: the task's `begin_epoch`; the shuffled rows in chunks of `batch_size`, each a
//! loss, `backward`, one Adam step at the current learning rate; the training loss is the
//! row-weighted mean of the batch losses; then the validation loss `v` (if any). `v` is a new
//! best when `v < best - min_delta` (and always on the first validated epoch when
//! `first_always_best`); otherwise both wait counters grow. After `lr_patience` epochs
//! without one the learning rate is multiplied by `lr_factor` (never below `lr_floor`) and
//! the plateau counter restarts; after `early_stop` epochs training stops. Without
//! validation every epoch is the best and the schedule does not move.

use crate::error::{Error, Result};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use burn::store::{BurnpackStore, ModuleSnapshot};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Header of the per-epoch log: every column is a function of the seed, the data and the
/// config, so two runs of one stage write the same bytes (the wall times are in
/// [`TIMES_HEADER`]'s file).
pub const LOG_HEADER: &str = "epoch,train_loss,val_loss,learning_rate,best";

/// Header of the per-epoch wall times (`FitConfig::times_file`).
pub const TIMES_HEADER: &str = "epoch,wall_time_s";

/// The times file's text ([`TIMES_HEADER`]): one row per epoch, numbered from 1.
pub fn times_csv(epoch_time_s: &[f64]) -> String {
    let mut csv = format!("{TIMES_HEADER}\n");
    for (i, t) in epoch_time_s.iter().enumerate() {
        csv.push_str(&format!("{},{}\n", i + 1, crate::formats::fmt_f64(*t)));
    }
    csv
}

/// The `wall_time_s` column of a CSV with a header: a times file ([`TIMES_HEADER`]) or a
/// training log written before the wall times moved out of it (whose header was
/// `epoch,train_loss,val_loss,learning_rate,wall_time_s,best`; the shipped models of
/// `models/reference/` have it). Empty when the header has no such column; rows whose field
/// does not parse are skipped.
pub fn wall_times_of_csv(text: &str) -> Vec<f64> {
    let mut lines = text.lines();
    let Some(col) = lines
        .next()
        .and_then(|h| h.split(',').position(|c| c.trim() == "wall_time_s"))
    else {
        return Vec::new();
    };
    lines
        .filter_map(|l| l.split(',').nth(col)?.trim().parse::<f64>().ok())
        .collect()
}
/// Checkpoint model file: burnpack keeps the parameter ids the optimizer state is keyed by
/// (safetensors does not), so a resumed run continues with its Adam moments.
pub const CHECKPOINT_MODEL: &str = "model.bpk";
/// Checkpoint optimiser state.
pub const CHECKPOINT_OPTIM: &str = "optim.bpk";
/// Checkpoint counters.
pub const CHECKPOINT_STATE: &str = "state.json";

/// Learning-rate plateau schedule and early stopping on the validation loss.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    /// Learning rate of the first epoch.
    pub learning_rate: f64,
    /// A validation loss is a new best when it is below the best so far minus this.
    pub min_delta: f64,
    /// The first validated epoch is the best so far whatever its loss (even NaN); otherwise
    /// it has to beat `+inf` like every other epoch.
    pub first_always_best: bool,
    /// Epochs without a new best before the learning rate drops (`None`: never; `Some(0)`:
    /// every epoch).
    pub lr_patience: Option<usize>,
    /// Factor applied to the learning rate on a plateau.
    pub lr_factor: f64,
    /// The learning rate never drops below this (and does not drop once it is there).
    pub lr_floor: Option<f64>,
    /// Epochs without a new best before training stops (`None`: never).
    pub early_stop: Option<usize>,
}

impl Schedule {
    /// Whether `val` is a new best for the counters `st`.
    fn improves(&self, val: f64, st: &LoopState) -> bool {
        (self.first_always_best && st.best_epoch == 0) || val < st.best_val_loss - self.min_delta
    }

    /// Applies the plateau rule and early stopping after an epoch (the counters already
    /// account for it).
    fn after_epoch(&self, st: &mut LoopState, epoch: usize, announce: bool) {
        if let Some(p) = self.lr_patience
            && st.plateau_wait >= p
            && self.lr_floor.is_none_or(|f| st.learning_rate > f)
        {
            st.learning_rate = match self.lr_floor {
                Some(f) => (st.learning_rate * self.lr_factor).max(f),
                None => st.learning_rate * self.lr_factor,
            };
            st.plateau_wait = 0;
            if announce {
                log::info!("learning rate lowered to {:e}", st.learning_rate);
            }
        }
        if let Some(p) = self.early_stop
            && st.stop_wait >= p
        {
            st.stopped_early = true;
            if announce {
                log::info!("early stop after epoch {}", epoch + 1);
            }
        }
    }
}

/// Counters of a run, saved in `checkpoint/state.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct LoopState {
    /// Epochs completed.
    pub epochs_done: usize,
    pub learning_rate: f64,
    pub best_val_loss: f64,
    /// 1-based epoch of the best model (0: none yet).
    pub best_epoch: usize,
    pub plateau_wait: usize,
    pub stop_wait: usize,
    pub first_train_loss: f64,
    pub last_train_loss: f64,
    /// Rows of the per-epoch log so far.
    pub log_rows: Vec<String>,
    /// Wall time of every epoch so far, those of the runs this one resumed included.
    #[serde(default)]
    pub epoch_time_s: Vec<f64>,
    pub stopped_early: bool,
}

impl LoopState {
    fn new(learning_rate: f64) -> Self {
        Self {
            epochs_done: 0,
            learning_rate,
            best_val_loss: f64::INFINITY,
            best_epoch: 0,
            plateau_wait: 0,
            stop_wait: 0,
            first_train_loss: f64::NAN,
            last_train_loss: f64::NAN,
            log_rows: Vec::new(),
            epoch_time_s: Vec::new(),
            stopped_early: false,
        }
    }
}

/// Where a run keeps its checkpoint.
#[derive(Debug, Clone)]
pub struct Checkpoint {
    /// Directory of `model.bpk`, `optim.bpk` and `state.json` (created if needed).
    pub dir: PathBuf,
    /// Continue from the checkpoint there when it exists.
    pub resume: bool,
}

/// One epoch of this invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochRecord {
    /// 0-based epoch.
    pub epoch: usize,
    pub train_loss: f64,
    /// `None` without validation rows.
    pub val_loss: Option<f64>,
    /// Learning rate the epoch trained with.
    pub learning_rate: f64,
    pub best: bool,
}

/// What a network supplies to the loop.
pub trait Task {
    /// The network (on the autodiff device).
    type Model: Module;
    /// Called before the batches of every epoch (fresh augmentation draws...).
    fn begin_epoch(&mut self, _epoch: usize) -> Result<()> {
        Ok(())
    }
    /// The loss (a one-element tensor with its graph) of mini-batch `batch` of `epoch`,
    /// made of the training rows `rows`.
    fn batch_loss(
        &mut self,
        model: &Self::Model,
        epoch: usize,
        batch: usize,
        rows: &[usize],
    ) -> Result<Tensor<1>>;
    /// The validation loss of `model` after an epoch whose training loss was `train_loss`
    /// (`None`: no validation, every epoch is the best).
    fn validate(&mut self, model: &Self::Model, train_loss: f64) -> Result<Option<f64>>;
    /// `model` (after 0-based `epoch`) is the best so far: keep it.
    fn keep_best(&mut self, model: &Self::Model, epoch: usize) -> Result<()>;
}

/// Settings of one run of the loop.
#[derive(Debug, Clone)]
pub struct FitConfig<'a> {
    pub schedule: Schedule,
    /// Total epochs (a resumed run stops there too).
    pub epochs: usize,
    pub batch_size: usize,
    /// Training rows, shuffled afresh every epoch.
    pub rows: Vec<usize>,
    pub seed: u64,
    /// RNG stream name of the per-epoch shuffle.
    pub shuffle_stream: &'a str,
    /// Per-epoch log file ([`LOG_HEADER`]), rewritten after every epoch.
    pub log_file: Option<PathBuf>,
    /// Per-epoch wall times ([`TIMES_HEADER`]), rewritten after every epoch.
    pub times_file: Option<PathBuf>,
    pub checkpoint: Option<Checkpoint>,
    /// Progress bar: one step per batch, the running loss as message.
    pub progress: Option<&'a indicatif::ProgressBar>,
    /// Log every epoch, learning-rate drop, early stop and resume at info level (else
    /// debug).
    pub announce: bool,
}

/// The counters at the end and the epochs this invocation ran.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub state: LoopState,
    pub history: Vec<EpochRecord>,
}

fn save_checkpoint_model<M: Module>(model: &M, path: &Path) -> Result<()> {
    let mut store = BurnpackStore::from_file(path).overwrite(true);
    model
        .save_into(&mut store)
        .map_err(|e| Error::Internal(format!("saving {}: {e:?}", path.display())))
}

fn load_checkpoint_model<M: Module>(mut model: M, path: &Path) -> Result<M> {
    let mut store = BurnpackStore::from_file(path);
    model
        .load_from(&mut store)
        .map_err(|e| Error::bad_file(path, format!("cannot load checkpoint: {e:?}")))?;
    Ok(model)
}

/// Trains `model` with `task` under `cfg`; returns the last epoch's model (the best one went
/// to [`Task::keep_best`]) and the counters.
pub fn fit<T: Task>(
    task: &mut T,
    mut model: T::Model,
    cfg: &FitConfig,
) -> Result<(T::Model, Outcome)> {
    let sched = &cfg.schedule;
    let mut optim = AdamConfig::new().init();
    let mut st = LoopState::new(sched.learning_rate);
    if let Some(ck) = &cfg.checkpoint {
        std::fs::create_dir_all(&ck.dir).map_err(|e| Error::io(&ck.dir, e))?;
        let state_path = ck.dir.join(CHECKPOINT_STATE);
        if ck.resume && state_path.exists() {
            let text =
                std::fs::read_to_string(&state_path).map_err(|e| Error::io(&state_path, e))?;
            st = serde_json::from_str(&text).map_err(|e| Error::bad_file(&state_path, e))?;
            model = load_checkpoint_model(model, &ck.dir.join(CHECKPOINT_MODEL))?;
            let op = ck.dir.join(CHECKPOINT_OPTIM);
            optim = optim
                .load(&op)
                .map_err(|e| Error::bad_file(&op, format!("{e:?}")))?;
            log::info!("resuming after epoch {}", st.epochs_done);
        }
    }
    let n_batches = cfg.rows.len().div_ceil(cfg.batch_size);
    if let Some(pb) = cfg.progress {
        pb.set_length((cfg.epochs * n_batches) as u64);
        pb.set_position((st.epochs_done * n_batches) as u64);
    }
    let mut history = Vec::new();
    for epoch in st.epochs_done..cfg.epochs {
        if st.stopped_early {
            break;
        }
        let t0 = std::time::Instant::now();
        task.begin_epoch(epoch)?;
        let mut order = cfg.rows.clone();
        order.shuffle(&mut crate::rng::stream(
            cfg.seed,
            cfg.shuffle_stream,
            epoch as u64,
        ));
        let (mut sum, mut n) = (0.0, 0usize);
        for (bi, chunk) in order.chunks(cfg.batch_size).enumerate() {
            let l = task.batch_loss(&model, epoch, bi, chunk)?;
            let lv: f32 = l.clone().into_scalar();
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(st.learning_rate, model, grads);
            sum += lv as f64 * chunk.len() as f64;
            n += chunk.len();
            if let Some(pb) = cfg.progress {
                pb.set_message(format!("epoch {} loss {:.4}", epoch + 1, sum / n as f64));
                pb.inc(1);
            }
        }
        let train_loss = sum / n.max(1) as f64;
        if epoch == 0 {
            st.first_train_loss = train_loss;
        }
        st.last_train_loss = train_loss;
        let val_loss = task.validate(&model, train_loss)?;
        let improved = match val_loss {
            Some(v) => {
                let better = sched.improves(v, &st);
                if better {
                    st.best_val_loss = v;
                    st.best_epoch = epoch + 1;
                    st.plateau_wait = 0;
                    st.stop_wait = 0;
                    task.keep_best(&model, epoch)?;
                } else {
                    st.plateau_wait += 1;
                    st.stop_wait += 1;
                }
                better
            }
            None => {
                st.best_epoch = epoch + 1;
                task.keep_best(&model, epoch)?;
                true
            }
        };
        let lr_used = st.learning_rate;
        st.log_rows.push(format!(
            "{},{},{},{},{}",
            epoch + 1,
            crate::formats::fmt_f64(train_loss),
            val_loss.map_or(String::new(), crate::formats::fmt_f64),
            crate::formats::fmt_f64(lr_used),
            improved as u8
        ));
        st.epoch_time_s.push(t0.elapsed().as_secs_f64());
        if val_loss.is_some() {
            sched.after_epoch(&mut st, epoch, cfg.announce);
        }
        st.epochs_done = epoch + 1;
        if let Some(path) = &cfg.log_file {
            let mut csv = format!("{LOG_HEADER}\n");
            for r in &st.log_rows {
                csv.push_str(r);
                csv.push('\n');
            }
            crate::formats::atomic_write(path, csv.as_bytes())?;
        }
        if let Some(path) = &cfg.times_file {
            crate::formats::atomic_write(path, times_csv(&st.epoch_time_s).as_bytes())?;
        }
        if let Some(ck) = &cfg.checkpoint {
            save_checkpoint_model(&model, &ck.dir.join(CHECKPOINT_MODEL))?;
            optim
                .save(ck.dir.join(CHECKPOINT_OPTIM))
                .map_err(|e| Error::Internal(format!("saving optimizer state: {e:?}")))?;
            let json =
                serde_json::to_string_pretty(&st).map_err(|e| Error::Internal(e.to_string()))?;
            crate::formats::atomic_write(&ck.dir.join(CHECKPOINT_STATE), json.as_bytes())?;
        }
        let level = if cfg.announce {
            log::Level::Info
        } else {
            log::Level::Debug
        };
        log::log!(
            level,
            "epoch {}: train loss {train_loss:.5}, val loss {}{}",
            epoch + 1,
            val_loss.map_or("-".into(), |v| format!("{v:.5}")),
            if improved { " (best)" } else { "" }
        );
        history.push(EpochRecord {
            epoch,
            train_loss,
            val_loss,
            learning_rate: lr_used,
            best: improved,
        });
    }
    Ok((model, Outcome { state: st, history }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wall_times_are_read_by_column_name_from_a_times_file_or_a_legacy_log() {
        let times = format!("{TIMES_HEADER}\n1,710.5\n2,701\n3,x\n");
        assert_eq!(wall_times_of_csv(&times), vec![710.5, 701.0]);
        // a log of the shipped models (wall times in its fifth column)
        let legacy = "epoch,train_loss,val_loss,learning_rate,wall_time_s,best\n\
                      1,0.5,0.4,0.003,710.5,1\n2,0.3,0.35,0.003,701,1\nbad\n";
        assert_eq!(wall_times_of_csv(legacy), vec![710.5, 701.0]);
        // today's log has no wall times: its numbers are never read as seconds
        let log = format!("{LOG_HEADER}\n1,0.5,0.4,0.003,1\n");
        assert!(wall_times_of_csv(&log).is_empty());
        assert!(wall_times_of_csv("").is_empty());
    }
}
