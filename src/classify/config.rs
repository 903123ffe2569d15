//! The `[classify]` section: classifiers under cross-validation, catalog and image tracks.

use crate::config::{Invalid, invalid};
use serde::{Deserialize, Serialize};

/// Classifier variant (`classify.variant`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Dense network, one branch per input (Finke et al. 2021).
    Dnn,
    /// Simple recurrent network, 3 x 8 tanh units per branch (Finke et al. 2021).
    Rnn,
    /// Monte-Carlo-dropout Bayesian dense network on the energy spectrum.
    Bnn,
    /// Random forest.
    Rf,
    /// Random forest on SMOTE-balanced training folds (MUWCLASS).
    RfSmote,
    /// Convolution + bidirectional LSTM over the spectrum (Fraga et al.).
    ConvBilstm,
    /// Image track: the CNN of Panes et al. 2021 on 7x7x5 cut-outs.
    Cnn,
}

impl Variant {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Variant::Dnn => "dnn",
            Variant::Rnn => "rnn",
            Variant::Bnn => "bnn",
            Variant::Rf => "rf",
            Variant::RfSmote => "rf_smote",
            Variant::ConvBilstm => "conv_bilstm",
            Variant::Cnn => "cnn",
        }
    }
}

/// Validation protocol (`classify.protocol`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Protocol {
    /// Stratified K-fold (`classify.folds`).
    Kfold,
    /// `classify.repeats` stratified train/test splits (Finke et al.: 10 x 70/30).
    RepeatedSplit,
}

/// Classifier stage configuration. Each network table, when given, should list all its
/// optimisation keys: a key left out takes the generic default (epochs 50, batch 64,
/// lr 0.01), not the variant's published one.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ClassifyConfig {
    /// `catalog` (4FGL AGN vs PSR) or `image` (AGN / PSR / FAKE cut-outs).
    #[serde(default = "default_track")]
    pub track: Track,
    /// Image-track inputs and CNN.
    #[serde(default)]
    pub image: ImageConfig,
    /// The 4FGL CSV (relative paths are tried from the working directory, then the crate).
    #[serde(default = "default_catalog_file")]
    pub catalog_file: std::path::PathBuf,
    /// Which classifier.
    #[serde(default = "default_variant")]
    pub variant: Variant,
    /// `kfold` or `repeated_split`.
    #[serde(default = "default_protocol")]
    pub protocol: Protocol,
    /// K of the K-fold.
    #[serde(default = "default_folds")]
    pub folds: usize,
    /// Repeats of the train/test split.
    #[serde(default = "default_folds")]
    pub repeats: usize,
    /// Test fraction of each repeat.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f64,
    /// Fraction of each training part held out for early stopping and calibration.
    #[serde(default = "default_valid_fraction")]
    pub valid_fraction: f64,
    /// Add GLAT (deg) as an extra input.
    #[serde(default)]
    pub use_glat: bool,
    /// Temperature scaling on the validation split.
    #[serde(default = "default_true")]
    pub calibrate: bool,
    /// Unassociated sources are called AGN (PSR) when p_AGN (p_PSR) >= this.
    #[serde(default = "default_unc_threshold")]
    pub unc_threshold: f64,
    #[serde(default = "default_dnn")]
    pub dnn: crate::classify::nets::NetConfig,
    #[serde(default = "default_rnn")]
    pub rnn: crate::classify::nets::NetConfig,
    #[serde(default = "default_bnn")]
    pub bnn: crate::classify::nets::NetConfig,
    #[serde(default = "default_conv_bilstm")]
    pub conv_bilstm: crate::classify::nets::NetConfig,
    #[serde(default)]
    pub forest: crate::classify::forest::ForestConfig,
}

/// Which classification track.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Track {
    Catalog,
    Image,
}

fn default_track() -> Track {
    Track::Catalog
}

/// Image-track configuration (Panes et al. 2021 sect. 5).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImageConfig {
    /// Directory with `patches_*.npy`, the truth and match tables; absent: synthetic patches.
    #[serde(default)]
    pub patches_dir: Option<std::path::PathBuf>,
    /// Truth table inside `patches_dir`.
    #[serde(default = "default_truth_file")]
    pub truth_file: String,
    /// Detector match table inside `patches_dir` (patch_id,x_pix,y_pix,status,source_id).
    #[serde(default = "default_matches_file")]
    pub matches_file: String,
    /// Number of synthetic patches when `patches_dir` is absent.
    #[serde(default = "default_synth")]
    pub synthetic_patches: usize,
    /// Duplicate minority classes (fresh Poisson draws) up to the majority count.
    #[serde(default = "default_true")]
    pub balanced: bool,
    /// The CNN's hyperparameters.
    #[serde(default = "default_cnn")]
    pub cnn: crate::classify::nets::NetConfig,
}

fn default_truth_file() -> String {
    "truth.csv".into()
}
fn default_matches_file() -> String {
    "matches.csv".into()
}
fn default_synth() -> usize {
    200
}
fn default_cnn() -> crate::classify::nets::NetConfig {
    crate::classify::nets::NetConfig::defaults(crate::classify::nets::Kind::Cnn)
}

impl Default for ImageConfig {
    fn default() -> Self {
        Self {
            patches_dir: None,
            truth_file: default_truth_file(),
            matches_file: default_matches_file(),
            synthetic_patches: default_synth(),
            balanced: true,
            cnn: default_cnn(),
        }
    }
}

fn default_catalog_file() -> std::path::PathBuf {
    "data/4fgl/4fgl_dr2_v27_all.csv.gz".into()
}
fn default_variant() -> Variant {
    Variant::Dnn
}
fn default_protocol() -> Protocol {
    Protocol::Kfold
}
fn default_folds() -> usize {
    10
}
fn default_test_fraction() -> f64 {
    0.3
}
fn default_valid_fraction() -> f64 {
    0.1
}
fn default_unc_threshold() -> f64 {
    0.9
}
fn default_dnn() -> crate::classify::nets::NetConfig {
    crate::classify::nets::NetConfig::defaults(crate::classify::nets::Kind::Dnn)
}
fn default_rnn() -> crate::classify::nets::NetConfig {
    crate::classify::nets::NetConfig::defaults(crate::classify::nets::Kind::Rnn)
}
fn default_bnn() -> crate::classify::nets::NetConfig {
    crate::classify::nets::NetConfig::defaults(crate::classify::nets::Kind::Bnn)
}
fn default_conv_bilstm() -> crate::classify::nets::NetConfig {
    crate::classify::nets::NetConfig::defaults(crate::classify::nets::Kind::ConvBilstm)
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            track: default_track(),
            image: ImageConfig::default(),
            catalog_file: default_catalog_file(),
            variant: default_variant(),
            protocol: default_protocol(),
            folds: default_folds(),
            repeats: default_folds(),
            test_fraction: default_test_fraction(),
            valid_fraction: default_valid_fraction(),
            use_glat: false,
            calibrate: true,
            unc_threshold: default_unc_threshold(),
            dnn: default_dnn(),
            rnn: default_rnn(),
            bnn: default_bnn(),
            conv_bilstm: default_conv_bilstm(),
            forest: Default::default(),
        }
    }
}

impl ClassifyConfig {
    /// Range checks of the classifier stage.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if !(2..=100).contains(&self.folds) {
            return Err(invalid("classify.folds", "must be in 2..=100"));
        }
        if !(1..=1000).contains(&self.repeats) {
            return Err(invalid("classify.repeats", "must be in 1..=1000"));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(invalid("classify.test_fraction", "must be in (0, 1)"));
        }
        if !(0.0..0.5).contains(&self.valid_fraction) {
            return Err(invalid("classify.valid_fraction", "must be in [0, 0.5)"));
        }
        if !(self.unc_threshold >= 0.5 && self.unc_threshold <= 1.0) {
            return Err(invalid("classify.unc_threshold", "must be in [0.5, 1]"));
        }
        match (self.track, self.variant) {
            (Track::Image, Variant::Cnn | Variant::Rf) => {}
            (Track::Image, v) => {
                return Err(invalid(
                    "classify.variant",
                    format!(
                        "`{}` is a catalog-track variant; the image track has cnn and rf",
                        v.as_str()
                    ),
                ));
            }
            (Track::Catalog, Variant::Cnn) => {
                return Err(invalid(
                    "classify.variant",
                    "cnn needs classify.track = \"image\"",
                ));
            }
            _ => {}
        }
        if !(1..=100_000).contains(&self.image.synthetic_patches) {
            return Err(invalid(
                "classify.image.synthetic_patches",
                "must be in 1..=100000",
            ));
        }
        self.image
            .cnn
            .validate()
            .map_err(|(k, m)| invalid(&format!("classify.image.cnn.{k}"), m))?;
        for (name, n) in [
            ("dnn", &self.dnn),
            ("rnn", &self.rnn),
            ("bnn", &self.bnn),
            ("conv_bilstm", &self.conv_bilstm),
        ] {
            n.validate()
                .map_err(|(k, m)| invalid(&format!("classify.{name}.{k}"), m))?;
        }
        self.forest
            .validate()
            .map_err(|(k, m)| invalid(&format!("classify.forest.{k}"), m))
    }
}
fn default_true() -> bool {
    true
}
