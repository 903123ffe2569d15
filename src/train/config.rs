//! The `[train]` section: the training loop and the training sky the runner builds.

use crate::catalog::config::Preset;
use crate::compute::Backend;
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
    /// A pretrained model folder (`gammabench export-models`) used instead of training: the
    /// `train` stage imports it (keyed by its files' SHA-256, not its path).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub pretrained: String,
    /// Use at most this many training patches (0: all).
    #[serde(default)]
    pub max_patches: usize,
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    #[serde(default = "default_epochs")]
    pub epochs: usize,
    /// Stop after the epoch in which this many optimiser steps (mini-batches) are done, a
    /// compute budget that caps large training sets (0: `epochs` only).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_steps: usize,
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
    /// Data augmentation of the training inputs (never of the validation draw).
    #[serde(default, skip_serializing_if = "Augment::is_none")]
    pub augment: Augment,
    /// The training sky the experiment runner builds when `train.patches` is empty.
    #[serde(default)]
    pub data: TrainDataConfig,
    /// K-fold cross-validation of a trained detector (issue 18; 0: one network). With
    /// `folds = K >= 2` the grid gets the axis `fold = [0, ..., K-1]` (unless the file sets
    /// `fold`): one network per fold, trained on the other folds' patches and validated on
    /// its own (early stopping and the operating threshold), the validation sky unused. The
    /// folds are regions of the training sky ([`crate::folds`], [`super::data::cv_rows`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub folds: usize,
    /// The fold this grid point holds out (`0..folds`).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub fold: usize,
    /// HEALPix NSIDE of the regions the folds are made of (a power of two; per sky
    /// realisation; NSIDE 1: the 12 base pixels, about 58 deg across).
    #[serde(
        default = "default_fold_nside",
        skip_serializing_if = "is_default_fold_nside"
    )]
    pub fold_nside: u32,
    /// The burn backend that trains the network and runs it on the test patches
    /// ([`crate::compute::Backend`]: `flex`, `tch-cpu`, `tch-cuda[:N]`, `cuda[:N]`; `--device`
    /// on the command line). Part of the stage keys: another backend is another result.
    #[serde(default, skip_serializing_if = "Backend::is_default")]
    pub device: Backend,
}

fn default_fold_nside() -> u32 {
    1
}
fn is_default_fold_nside(n: &u32) -> bool {
    *n == default_fold_nside()
}

/// Most folds `train.folds` takes.
pub const MAX_FOLDS: usize = 100;

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
    /// Random patches per independent sky realisation (the paper: 400, over 250
    /// realisations); `n_patches` are cut from `ceil(n_patches / patches_per_realisation)`
    /// realisations. Realisation 0 has the seed above; realisation `r > 0` has
    /// [`realisation_seed`]`(seed, r)`: its own catalog, sky and patches. 0: one realisation.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub patches_per_realisation: usize,
    /// Random patches of a validation sky, an independent realisation
    /// ([`realisation_seed`]`(seed, VALIDATION_REALISATION)`), used for early stopping and
    /// for choosing each head's operating threshold; 0: a `validation_fraction` split of the
    /// training patches instead.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub validation_patches: usize,
}

/// Realisation index of the validation sky in [`realisation_seed`].
pub const VALIDATION_REALISATION: u64 = 1_000_000;

/// Master seed of training-sky realisation `r` (`r = 0`: `base` itself; otherwise a
/// splitmix64 mix of `(base, r)`, so realisations never share a catalog or a Poisson stream
/// with each other or with the test skies at `base - 1`).
pub fn realisation_seed(base: u64, r: u64) -> u64 {
    if r == 0 {
        return base;
    }
    let mut z = base ^ r.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Augmentation of the training inputs.
///
/// A patch is a gnomonic projection with Galactic latitude up, so the Galactic plane runs
/// along x. The flips `x -> -x` (l -> -l about the patch centre) and `y -> -y` keep it
/// horizontal; rotations by 90 degrees would not, and are not offered.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Augment {
    /// The patches as they are.
    #[default]
    None,
    /// Each training patch (inputs and targets together) mirrored in x, in y, both or
    /// neither, one of four with equal probability, drawn per `(seed, epoch, patch)`.
    Flips,
}

impl Augment {
    fn is_none(&self) -> bool {
        *self == Augment::None
    }
}

impl TrainDataConfig {
    /// Number of sky realisations the training patches come from.
    pub fn realisations(&self) -> usize {
        if self.patches_per_realisation == 0 {
            1
        } else {
            self.n_patches.div_ceil(self.patches_per_realisation).max(1)
        }
    }
}
fn is_zero(n: &usize) -> bool {
    *n == 0
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
            patches_per_realisation: 0,
            validation_patches: 0,
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
            pretrained: String::new(),
            max_patches: 0,
            batch_size: default_batch(),
            epochs: default_epochs(),
            max_steps: 0,
            learning_rate: default_lr(),
            lr_factor: default_lr_factor(),
            lr_patience: default_patience(),
            min_learning_rate: default_min_lr(),
            early_stop_patience: default_early_stop(),
            validation_fraction: default_val_fraction(),
            poisson: true,
            augment: Augment::None,
            data: TrainDataConfig::default(),
            folds: 0,
            fold: 0,
            fold_nside: default_fold_nside(),
            device: Backend::default(),
        }
    }
}

impl TrainConfig {
    /// True when this point trains one fold of a K-fold cross-validation.
    pub fn cross_validates(&self) -> bool {
        self.folds >= 2
    }

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
        if self.data.realisations() > 10_000 {
            return Err(invalid(
                "train.data.patches_per_realisation",
                "needs at most 10000 realisations (n_patches / patches_per_realisation)",
            ));
        }
        if self.data.validation_patches > 1_000_000 {
            return Err(invalid(
                "train.data.validation_patches",
                "must be <= 1000000",
            ));
        }
        if let Some(t) = self.data.threshold_erg_cm2_s
            && !(t.is_finite() && t > 0.0)
        {
            return Err(invalid("train.data.threshold_erg_cm2_s", "must be > 0"));
        }
        if self.folds == 1 || self.folds > MAX_FOLDS {
            return Err(invalid(
                "train.folds",
                "must be 0 (no cross-validation) or 2..=100",
            ));
        }
        if self.fold > 0 && self.fold >= self.folds {
            return Err(invalid(
                "train.fold",
                "must be in 0..train.folds (a fold of the cross-validation)",
            ));
        }
        if !(self.fold_nside.is_power_of_two() && self.fold_nside <= 64) {
            return Err(invalid("train.fold_nside", "must be a power of two <= 64"));
        }
        Ok(())
    }
}
fn default_true() -> bool {
    true
}
