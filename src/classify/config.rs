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
    /// Which of Finke et al.'s tasks: `agn_psr` (default), `msp_yng` or `bll_fsrq`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub task: Task,
    /// MSP / YNG labels for `msp_yng` when `catalog_file` has no MSP class (4FGL-DR2 lists
    /// every pulsar as PSR): the 4FGL catalog whose CLASS1 is read, matched by Source_Name.
    #[serde(
        default = "default_pulsar_labels_file",
        skip_serializing_if = "is_default_pulsar_labels_file"
    )]
    pub pulsar_labels_file: std::path::PathBuf,
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
    /// Use the light curve (`Flux_History`) as an input branch.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub use_history: bool,
    /// What a band or year without a detection (empty lower error) contributes.
    #[serde(default, skip_serializing_if = "is_default")]
    pub upper_limits: UpperLimits,
    /// SMOTE augmentation of the training rows for the network variants (`rf_smote` always
    /// balances): `none`, `minority` (up to the majority count) or `fixed` (every class up
    /// to `smote_per_class`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub smote: SmoteMode,
    /// Rows per class after `smote = "fixed"` (Butter et al.: 1500 or 10000).
    #[serde(
        default = "default_smote_per_class",
        skip_serializing_if = "is_default_smote_per_class"
    )]
    pub smote_per_class: usize,
    /// Temperature scaling on the validation split.
    #[serde(default = "default_true")]
    pub calibrate: bool,
    /// Unassociated sources are called AGN (PSR) when p_AGN (p_PSR) >= this.
    #[serde(default = "default_unc_threshold")]
    pub unc_threshold: f64,
    #[serde(default = "default_dnn")]
    pub dnn: NetConfig,
    #[serde(default = "default_rnn")]
    pub rnn: NetConfig,
    #[serde(default = "default_bnn")]
    pub bnn: NetConfig,
    #[serde(default = "default_conv_bilstm")]
    pub conv_bilstm: NetConfig,
    #[serde(default)]
    pub forest: ForestConfig,
    /// The burn backend that trains the networks (dnn, rnn, bnn, conv_bilstm, the image cnn;
    /// [`crate::compute::Backend`]: `flex`, `tch-cpu`, `tch-cuda[:N]`, `cuda[:N]`; `--device`
    /// on `run` sets it with `train.device`). Left out of the stage key when `flex`, so the
    /// default results are unchanged; another backend is another result. The forests ignore it.
    #[serde(default, skip_serializing_if = "crate::compute::Backend::is_default")]
    pub device: crate::compute::Backend,
}

/// The classification task (Finke, Kraemer & Manconi 2021; Manconi et al. ICRC 2021).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// AGN (4FGL GROUP AGN) vs pulsars (GROUP PSR); unassociated sources predicted.
    #[default]
    AgnPsr,
    /// Young (CLASS1 psr) vs millisecond (CLASS1 msp) pulsars; unassociated sources predicted.
    MspYng,
    /// BL Lacs (CLASS1 bll) vs FSRQs (CLASS1 fsrq); blazars of uncertain type (bcu) predicted.
    BllFsrq,
}

impl Task {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Task::AgnPsr => "agn_psr",
            Task::MspYng => "msp_yng",
            Task::BllFsrq => "bll_fsrq",
        }
    }
    /// Class names, index = class id; the last is the "positive" class whose probability the
    /// AUC ranks and whose Bayesian spread is reported.
    pub fn classes(&self) -> [&'static str; 2] {
        match self {
            Task::AgnPsr => ["AGN", "PSR"],
            Task::MspYng => ["YNG", "MSP"],
            Task::BllFsrq => ["BLL", "FSRQ"],
        }
    }
}

/// Treatment of fluxes without a detection (4FGL leaves `Unc_Flux_*_lo` empty there and the
/// best-fit flux can lie many decades below the detection threshold).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpperLimits {
    /// The catalog's best-fit flux, as it is.
    #[default]
    BestFit,
    /// The upper limit `Flux + Unc_Flux_hi` (4FGL's 2-sigma limit) in its place.
    UpperLimit,
}

/// SMOTE augmentation setting of the network variants (Butter et al.: no, minority, fixed).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum SmoteMode {
    /// No synthetic rows.
    #[default]
    None,
    /// The smaller class up to the size of the larger.
    Minority,
    /// Every class up to `smote_per_class` rows (a larger class is left as it is).
    Fixed,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn is_true(v: &bool) -> bool {
    *v
}
fn default_pulsar_labels_file() -> std::path::PathBuf {
    "data/4fgl/4fgl_dr4_v35_all.csv.gz".into()
}
fn is_default_pulsar_labels_file(p: &std::path::Path) -> bool {
    p == default_pulsar_labels_file()
}
fn default_smote_per_class() -> usize {
    1500
}
fn is_default_smote_per_class(n: &usize) -> bool {
    *n == default_smote_per_class()
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
    pub cnn: NetConfig,
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
fn default_cnn() -> NetConfig {
    NetConfig::defaults(Kind::Cnn)
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
fn default_dnn() -> NetConfig {
    NetConfig::defaults(Kind::Dnn)
}
fn default_rnn() -> NetConfig {
    NetConfig::defaults(Kind::Rnn)
}
fn default_bnn() -> NetConfig {
    NetConfig::defaults(Kind::Bnn)
}
fn default_conv_bilstm() -> NetConfig {
    NetConfig::defaults(Kind::ConvBilstm)
}

impl Default for ClassifyConfig {
    fn default() -> Self {
        Self {
            track: default_track(),
            image: ImageConfig::default(),
            catalog_file: default_catalog_file(),
            task: Task::default(),
            pulsar_labels_file: default_pulsar_labels_file(),
            variant: default_variant(),
            protocol: default_protocol(),
            folds: default_folds(),
            repeats: default_folds(),
            test_fraction: default_test_fraction(),
            valid_fraction: default_valid_fraction(),
            use_glat: false,
            use_history: true,
            upper_limits: UpperLimits::default(),
            smote: SmoteMode::default(),
            smote_per_class: default_smote_per_class(),
            calibrate: true,
            unc_threshold: default_unc_threshold(),
            dnn: default_dnn(),
            rnn: default_rnn(),
            bnn: default_bnn(),
            conv_bilstm: default_conv_bilstm(),
            forest: Default::default(),
            device: Default::default(),
        }
    }
}

impl ClassifyConfig {
    /// Range checks of the classifier stage.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if let Err(e) = self.device.check() {
            return Err(invalid("classify.device", e));
        }
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
        if !(2..=1_000_000).contains(&self.smote_per_class) {
            return Err(invalid(
                "classify.smote_per_class",
                "must be in 2..=1000000",
            ));
        }
        if self.track == Track::Image && self.task != Task::AgnPsr {
            return Err(invalid(
                "classify.task",
                "the image track classifies AGN / PSR / FAKE; tasks are catalog-track only",
            ));
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

// ---- the networks' and the forest's hyperparameters (`[classify.<variant>]`) ----

/// Network family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Dnn,
    Rnn,
    Bnn,
    ConvBilstm,
    /// The image-track CNN of Panes et al. 2021 on 7x7x5 cut-outs.
    Cnn,
}

impl Kind {
    /// Variant name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Kind::Dnn => "dnn",
            Kind::Rnn => "rnn",
            Kind::Bnn => "bnn",
            Kind::ConvBilstm => "conv_bilstm",
            Kind::Cnn => "cnn",
        }
    }
}

/// Hyperparameters of a network variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetConfig {
    /// Hidden widths of each dense branch (dnn, bnn) or the dense light-curve branch
    /// (conv_bilstm).
    #[serde(default = "d_branch")]
    pub branch_units: Vec<usize>,
    /// Hidden widths of the classification head.
    #[serde(default = "d_head")]
    pub head_units: Vec<usize>,
    /// Recurrent layers per branch and their units (rnn).
    #[serde(default = "d_rnn_layers")]
    pub rnn_layers: usize,
    #[serde(default = "d_rnn_units")]
    pub rnn_units: usize,
    /// Convolution filters and LSTM hidden units (conv_bilstm).
    #[serde(default = "d_filters")]
    pub conv_filters: usize,
    #[serde(default = "d_lstm")]
    pub lstm_units: usize,
    /// Dropout probability (bnn; 0 elsewhere unless set).
    #[serde(default)]
    pub dropout: f64,
    /// Stochastic passes at prediction (bnn).
    #[serde(default = "d_mc")]
    pub mc_samples: usize,
    /// Inverse-frequency class weights in the loss.
    #[serde(default)]
    pub class_weights: bool,
    /// Optimisation (`[classify.<variant>.train]`).
    #[serde(default)]
    pub train: TrainConfig,
}
fn d_branch() -> Vec<usize> {
    vec![16, 16]
}
fn d_head() -> Vec<usize> {
    vec![16]
}
fn d_rnn_layers() -> usize {
    3
}
fn d_rnn_units() -> usize {
    8
}
fn d_filters() -> usize {
    16
}
fn d_lstm() -> usize {
    16
}
fn d_mc() -> usize {
    50
}

impl NetConfig {
    /// The paper's defaults for each family.
    pub fn defaults(kind: Kind) -> Self {
        let (batch, lr, dropout) = match kind {
            Kind::Dnn => (64, 0.01, 0.0),
            Kind::Rnn => (32, 0.001, 0.0),
            Kind::Bnn => (32, 0.001, 0.2),
            Kind::ConvBilstm => (32, 0.001, 0.0),
            Kind::Cnn => (64, 0.001, 0.0),
        };
        Self {
            branch_units: d_branch(),
            head_units: if kind == Kind::Cnn {
                vec![128, 64, 32, 16]
            } else {
                d_head()
            },
            rnn_layers: d_rnn_layers(),
            rnn_units: d_rnn_units(),
            conv_filters: d_filters(),
            lstm_units: d_lstm(),
            dropout,
            mc_samples: d_mc(),
            class_weights: false,
            train: TrainConfig {
                epochs: 50,
                batch_size: batch,
                learning_rate: lr,
                ..TrainConfig::default()
            },
        }
    }

    /// Range checks (key relative to the variant table, message).
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        if self.branch_units.is_empty() || self.branch_units.iter().any(|u| !(1..=4096).contains(u))
        {
            return Err((
                "branch_units",
                "needs 1..=4096 units per layer, at least one layer".into(),
            ));
        }
        if self.head_units.iter().any(|u| !(1..=4096).contains(u)) {
            return Err(("head_units", "units must be in 1..=4096".into()));
        }
        if !(1..=8).contains(&self.rnn_layers) || !(1..=512).contains(&self.rnn_units) {
            return Err((
                "rnn_layers",
                "rnn_layers in 1..=8, rnn_units in 1..=512".into(),
            ));
        }
        if !(1..=512).contains(&self.conv_filters) || !(1..=512).contains(&self.lstm_units) {
            return Err((
                "conv_filters",
                "conv_filters and lstm_units in 1..=512".into(),
            ));
        }
        if !(0.0..0.95).contains(&self.dropout) {
            return Err(("dropout", "must be in [0, 0.95)".into()));
        }
        if !(1..=10000).contains(&self.mc_samples) {
            return Err(("mc_samples", "must be in 1..=10000".into()));
        }
        self.train.validate()
    }
}

/// Optimisation settings of a classifier network (flattened into each network's config table).
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

/// Random-forest hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForestConfig {
    /// Number of trees.
    #[serde(default = "d_trees")]
    pub n_trees: usize,
    /// Maximum depth (0: unlimited).
    #[serde(default)]
    pub max_depth: usize,
    /// Minimum rows in a leaf.
    #[serde(default = "d_leaf")]
    pub min_samples_leaf: usize,
    /// Columns tried per split (0: round(sqrt(d))).
    #[serde(default)]
    pub max_features: usize,
    /// Neighbours used by SMOTE in the `rf_smote` variant.
    #[serde(default = "d_k")]
    pub smote_k: usize,
}
fn d_trees() -> usize {
    200
}
fn d_leaf() -> usize {
    1
}
fn d_k() -> usize {
    5
}
impl Default for ForestConfig {
    fn default() -> Self {
        Self {
            n_trees: d_trees(),
            max_depth: 0,
            min_samples_leaf: d_leaf(),
            max_features: 0,
            smote_k: d_k(),
        }
    }
}

impl ForestConfig {
    /// Range checks (dotted key relative to the variant table, message).
    pub fn validate(&self) -> std::result::Result<(), (&'static str, String)> {
        if !(1..=5000).contains(&self.n_trees) {
            return Err(("n_trees", "must be in 1..=5000".into()));
        }
        if self.min_samples_leaf == 0 {
            return Err(("min_samples_leaf", "must be >= 1".into()));
        }
        if !(1..=50).contains(&self.smote_k) {
            return Err(("smote_k", "must be in 1..=50".into()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    // A path, not `super::*`: the architecture scanner reads `super` from the file, not the inline module.
    use crate::classify::config::*;
    use crate::compute::Backend;

    #[test]
    fn device_is_checked_once_and_left_out_of_the_key_when_flex() {
        let c = ClassifyConfig::default();
        assert_eq!(c.device, Backend::Flex);
        assert!(c.validate().is_ok());
        // The default stage key is unchanged by the key's existence.
        let t = toml::to_string(&c).unwrap();
        assert!(!t.contains("device"), "{t}");
        for b in [Backend::TchCpu, Backend::Cuda(0)] {
            let c = ClassifyConfig {
                device: b,
                ..ClassifyConfig::default()
            };
            assert!(
                toml::to_string(&c)
                    .unwrap()
                    .contains(&format!("device = \"{b}\""))
            );
            match (b.compiled(), c.validate()) {
                (true, r) => assert!(r.is_ok()),
                (false, Err(e)) => {
                    assert_eq!(e.key, "classify.device");
                    assert!(e.message.contains("--features"), "{}", e.message);
                }
                (false, Ok(())) => panic!("{b} accepted by a build without it"),
            }
        }
    }
}
