//! The `[train]` section: the training loop and the training sky the runner builds.

use crate::catalog::config::Preset;
use crate::config::{Invalid, invalid};
use crate::patches::config::default_n_patches;
use crate::sky::config::default_iem;
use serde::{Deserialize, Serialize};

/// The `[train]` section: the generic training loop.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Training patches directory (the patches stage output, F0-B1).
    #[serde(default)]
    pub patches: String,
    /// Use at most this many training patches (0: all).
    #[serde(default)]
    pub max_patches: usize,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Adam learning rate at the start.
    #[serde(default = "default_lr")]
    pub learning_rate: f64,
    /// The learning rate is multiplied by this when validation loss stalls.
    #[serde(default = "default_lr_factor")]
    pub lr_factor: f64,
    /// Epochs without improvement before the learning rate drops.
    #[serde(default = "default_patience")]
    pub lr_patience: usize,
    #[serde(default = "default_min_lr")]
    pub min_learning_rate: f64,
    /// Epochs without improvement before training stops (0: never).
    #[serde(default = "default_early_stop")]
    pub early_stop_patience: usize,
    /// Fraction of the patches held out for validation.
    #[serde(default = "default_val_fraction")]
    pub validation_fraction: f64,
    /// Poisson-draw the inputs from the Asimov patches (fresh each epoch); false: Asimov.
    #[serde(default = "default_true")]
    pub poisson: bool,
    /// The training sky the experiment runner builds when `train.patches` is empty.
    #[serde(default)]
    pub data: TrainDataConfig,
}

/// The training set the runner makes for `gammabench run` (`[train.data]`): the grid point's
/// config with the catalog preset, emission model and random patch centres replaced, so
/// every test sky of a grid shares one training sky (the paper trains on F0-B1 only and tests
/// on F0/F1/F2 x B1/B2/B3: the robustness question).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TrainDataConfig {
    /// Catalog preset of the training sky (the paper's F0).
    #[serde(default = "default_train_preset")]
    pub preset: Preset,
    /// Lower energy-flux threshold of the training catalog, erg cm-2 s-1 (absent: the
    /// preset's).
    #[serde(default)]
    pub threshold_erg_cm2_s: Option<f64>,
    /// Emission model of the training sky (the paper's B1).
    #[serde(default = "default_iem")]
    pub iem: String,
    /// Number of random training patches (the paper's 100,000).
    #[serde(default = "default_n_patches")]
    pub n_patches: usize,
    /// Master seed of the training sky (absent: the experiment's seed + 1), so the training
    /// catalog and patches are a realisation independent of the test skies.
    #[serde(default)]
    pub seed: Option<u64>,
}

fn default_train_preset() -> Preset {
    Preset::F0
}

impl Default for TrainDataConfig {
    fn default() -> Self {
        Self {
            preset: default_train_preset(),
            threshold_erg_cm2_s: None,
            iem: default_iem(),
            n_patches: default_n_patches(),
            seed: None,
        }
    }
}

fn default_batch() -> usize {
    16
}
fn default_epochs() -> usize {
    50
}
fn default_lr() -> f64 {
    1e-3
}
fn default_lr_factor() -> f64 {
    0.5
}
fn default_patience() -> usize {
    5
}
fn default_min_lr() -> f64 {
    1e-5
}
fn default_early_stop() -> usize {
    10
}
fn default_val_fraction() -> f64 {
    0.1
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            patches: String::new(),
            max_patches: 0,
            batch_size: default_batch(),
            epochs: default_epochs(),
            learning_rate: default_lr(),
            lr_factor: default_lr_factor(),
            lr_patience: default_patience(),
            min_learning_rate: default_min_lr(),
            early_stop_patience: default_early_stop(),
            validation_fraction: default_val_fraction(),
            poisson: true,
            data: TrainDataConfig::default(),
        }
    }
}

impl TrainConfig {
    /// Range checks of the training loop.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if !(1..=4096).contains(&self.batch_size) {
            return Err(invalid("train.batch_size", "must be 1..=4096"));
        }
        if !(1..=100_000).contains(&self.epochs) {
            return Err(invalid("train.epochs", "must be 1..=100000"));
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0 && self.learning_rate < 1.0)
        {
            return Err(invalid("train.learning_rate", "must be in (0, 1)"));
        }
        if !(self.lr_factor > 0.0 && self.lr_factor < 1.0) {
            return Err(invalid("train.lr_factor", "must be in (0, 1)"));
        }
        if !(self.min_learning_rate.is_finite()
            && self.min_learning_rate > 0.0
            && self.min_learning_rate <= self.learning_rate)
        {
            return Err(invalid(
                "train.min_learning_rate",
                "must be > 0 and <= train.learning_rate",
            ));
        }
        if !(0.0..0.9).contains(&self.validation_fraction) {
            return Err(invalid("train.validation_fraction", "must be in [0, 0.9)"));
        }
        if !(1..=10_000_000).contains(&self.data.n_patches) {
            return Err(invalid("train.data.n_patches", "must be 1..=10000000"));
        }
        if let Some(t) = self.data.threshold_erg_cm2_s
            && !(t.is_finite() && t > 0.0)
        {
            return Err(invalid("train.data.threshold_erg_cm2_s", "must be > 0"));
        }
        Ok(())
    }
}
fn default_true() -> bool {
    true
}
