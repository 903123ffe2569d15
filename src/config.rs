//! Experiment configuration: TOML files under `configs/`, `--set` overrides and grid axes.
//!
//! Loading goes in four steps, each with errors that point at the user's text:
//! 1. the file is parsed as TOML (syntax errors carry line and column);
//! 2. each `--set key.path=value` replaces or adds one key (the value is read as TOML, or as
//!    a bare string when it is not valid TOML, so `--set catalog.prior=4fgl-dr1` works);
//! 3. every key listed in [`GRID_AXES`] whose value is a list expands into one run per value
//!    (the cartesian product over all such keys, in file order of the axes list);
//! 4. each point is deserialised into [`ExperimentConfig`] (unknown keys and wrong types are
//!    errors) and then validated (ranges); errors name the file, line, column and key, or the
//!    `--set` assignment the key came from.
//!
//! The resolved config (after presets, overrides and grid expansion) is what every stage
//! hashes and saves in its manifest.

use crate::error::{Error, Result, line_col};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The default experiment, embedded in the binary (`configs/default.toml`).
pub const EMBEDDED_DEFAULT: &str = include_str!("../configs/default.toml");

/// Keys that may hold a list of values, each value giving one run.
pub const GRID_AXES: &[&str] = &[
    "seed",
    "catalog.preset",
    "catalog.prior",
    "catalog.luminosity_function",
    "catalog.threshold_erg_cm2_s",
    "sky.iem",
    "sky.nside",
    "patches.centres",
    "classify.variant",
    "classify.protocol",
    "classify.use_glat",
    "classify.track",
    "classify.image.balanced",
    "detect.variant",
    "detect.unet.normalisation",
    "train.learning_rate",
    "train.batch_size",
];

/// A whole experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Free-form name, used in output labels.
    #[serde(default = "default_name")]
    pub name: String,
    /// Master seed; every random stream is keyed by (seed, stage, item).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Analysis energy binning, shared by the catalog (per-bin fluxes) and the sky.
    #[serde(default)]
    pub energy: EnergyConfig,
    /// Mock catalog stage.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// Sky-map stage (instrument, emission model, HEALPix maps).
    #[serde(default)]
    pub sky: SkyConfig,
    /// Patch stage (64 x 64 x bins cut-outs, truth tables).
    #[serde(default)]
    pub patches: PatchesConfig,
    /// Scoring of detections and classifications.
    #[serde(default)]
    pub score: ScoreConfig,
    /// The data-challenge kit.
    #[serde(default)]
    pub challenge: ChallengeConfig,
    /// Which stages `gammabench run` plans for every grid point.
    #[serde(default)]
    pub run: RunConfig,
    /// Tolerances of the nightly benchmark.
    #[serde(default)]
    pub nightly: NightlyConfig,
    /// Classifiers under cross-validation (issue 6).
    #[serde(default)]
    pub classify: ClassifyConfig,
    /// Point-source detector (variant and hyperparameters).
    #[serde(default)]
    pub detect: DetectConfig,
    /// Training loop of the neural detectors.
    #[serde(default)]
    pub train: TrainConfig,
}

/// Nightly benchmark: per-metric comparison rules (first match by substring wins).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NightlyConfig {
    #[serde(default)]
    pub rules: Vec<NightlyRule>,
}

/// How one family of metrics is compared with the baseline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NightlyRule {
    /// Substring of the metric name (`score/`, `purity`, `wall_time_s`...).
    pub pattern: String,
    /// `higher_is_better`, `lower_is_better` or `exact`.
    pub direction: String,
    /// Allowed relative change.
    #[serde(default)]
    pub rel_tol: f64,
    /// Allowed absolute change.
    #[serde(default)]
    pub abs_tol: f64,
}

/// The experiment runner's section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Stages to plan for every grid point, upstream stages included automatically.
    #[serde(default = "default_stages")]
    pub stages: Vec<String>,
}

/// Every stage the runner knows, in data-flow order.
pub const KNOWN_STAGES: &[&str] = &[
    "catalog", "sky", "patches", "train", "detect", "score", "classify",
];

fn default_stages() -> Vec<String> {
    vec!["catalog".into()]
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            stages: default_stages(),
        }
    }
}

/// Sky-map stage configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SkyConfig {
    /// Emission model: `B1`, `B2`, `B3` (embedded `configs/iem/*.toml`) or a path to a model
    /// file.
    #[serde(default = "default_iem")]
    pub iem: String,
    /// HEALPix NSIDE of the maps (power of two; the paper's 256).
    #[serde(default = "default_nside")]
    pub nside: u32,
    /// Instrument response: `P8R3_ULTRACLEANVETO_V2` (closest to the paper's
    /// P8R2_ULTRACLEANVETO_V6) or `P8R3_SOURCE_V2`.
    #[serde(default = "default_irf")]
    pub irf: String,
    /// Survey duration, years (9.5 in the paper).
    #[serde(default = "default_years")]
    pub survey_years: f64,
    /// Sky-averaged fraction of the survey time a direction is within 60 deg of the boresight
    /// while the LAT is live (1/4 x 0.8 livetime).
    #[serde(default = "default_exposure_fraction")]
    pub exposure_fraction: f64,
    /// Point sources are spread over the pixels within this many r95 of the bin PSF.
    #[serde(default = "default_point_radius")]
    pub point_radius_r95: f64,
    /// The diffuse PSF convolution is truncated at this many r95.
    #[serde(default = "default_diffuse_radius")]
    pub diffuse_radius_r95: f64,
    /// Also write figures (PNG and SVG) to `figures/`.
    #[serde(default = "default_true")]
    pub figures: bool,
}

/// Physical memory of this machine (Linux `/proc/meminfo` MemTotal), if known.
pub fn machine_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// True for an emission model name the sky stage can load: an embedded model or a `.toml`.
fn is_iem_name(name: &str) -> bool {
    ["B1", "B2", "B3"].contains(&name) || name.ends_with(".toml")
}

fn default_iem() -> String {
    "B1".into()
}
fn default_nside() -> u32 {
    256
}
fn default_irf() -> String {
    "P8R3_ULTRACLEANVETO_V2".into()
}
fn default_years() -> f64 {
    9.5
}
fn default_exposure_fraction() -> f64 {
    0.2
}
fn default_point_radius() -> f64 {
    3.0
}
fn default_diffuse_radius() -> f64 {
    1.0
}

impl Default for SkyConfig {
    fn default() -> Self {
        Self {
            iem: default_iem(),
            nside: default_nside(),
            irf: default_irf(),
            survey_years: default_years(),
            exposure_fraction: default_exposure_fraction(),
            point_radius_r95: default_point_radius(),
            diffuse_radius_r95: default_diffuse_radius(),
            figures: true,
        }
    }
}

/// Where patches are centred.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Centres {
    /// l uniform, sin b uniform (training); `patches.n` of them.
    Random,
    /// The 768 HEALPix NSIDE-8 pixel centres in RING order (testing).
    Nside8,
}

/// Patch stage configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatchesConfig {
    /// `random` or `nside8`.
    #[serde(default = "default_centres")]
    pub centres: Centres,
    /// Number of random patches (ignored for `nside8`).
    #[serde(default = "default_n_patches")]
    pub n: usize,
    /// Radius of the mask disks around every source, patch pixels.
    #[serde(default = "default_mask_radius")]
    pub mask_radius_pix: f64,
    /// Also write `patches_poisson.npy`: one Poisson realisation of the total counts, drawn
    /// from a stream keyed by (seed, sky hash, patch).
    #[serde(default)]
    pub poisson: bool,
    /// Also write a figure of example patches.
    #[serde(default = "default_true")]
    pub figures: bool,
}

fn default_centres() -> Centres {
    Centres::Random
}
fn default_n_patches() -> usize {
    400
}
fn default_mask_radius() -> f64 {
    2.5
}

impl Default for PatchesConfig {
    fn default() -> Self {
        Self {
            centres: default_centres(),
            n: default_n_patches(),
            mask_radius_pix: default_mask_radius(),
            poisson: false,
            figures: true,
        }
    }
}

fn default_name() -> String {
    "default".into()
}
fn default_seed() -> u64 {
    20210901
}

/// Analysis energy bins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnergyConfig {
    /// Bin edges in GeV, increasing; the paper's 0.5-1, 1-2, 2-7, 7-20, 20-200 GeV by default.
    #[serde(default = "default_edges")]
    pub bin_edges_gev: Vec<f64>,
}

fn default_edges() -> Vec<f64> {
    vec![0.5, 1.0, 2.0, 7.0, 20.0, 200.0]
}

impl Default for EnergyConfig {
    fn default() -> Self {
        Self {
            bin_edges_gev: default_edges(),
        }
    }
}

impl EnergyConfig {
    /// Bin edges in MeV.
    pub fn edges_mev(&self) -> Vec<f64> {
        self.bin_edges_gev.iter().map(|e| e * 1e3).collect()
    }
    /// Number of bins.
    pub fn n_bins(&self) -> usize {
        self.bin_edges_gev.len().saturating_sub(1)
    }
}

/// Which 4FGL release the parameter distributions are taken from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Prior {
    /// 4FGL DR1 (gll_psc_v20, 8 years): reproduces Panes et al. 2021.
    #[serde(rename = "4fgl-dr1")]
    Dr1,
    /// 4FGL-DR4 (gll_psc_v35, 14 years): the default.
    #[serde(rename = "4fgl-dr4")]
    Dr4,
}

impl Prior {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Prior::Dr1 => "4fgl-dr1",
            Prior::Dr4 => "4fgl-dr4",
        }
    }
}

/// Luminosity-function extrapolation below the 4FGL threshold (Panes et al. 2021, app. A).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LuminosityFunction {
    /// Follow 4FGL above its peak, flat below it down to the threshold.
    Flat,
    /// A power law in log N - log E100 down to the threshold.
    PowerLaw,
}

/// Named catalog presets of the paper.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Flat to 3.4e-13 erg cm-2 s-1 (training and test F0).
    F0,
    /// Flat to 2.2e-14 erg cm-2 s-1 (test F1).
    F1,
    /// Power law to 2.2e-14 erg cm-2 s-1 (test F2).
    F2,
}

impl Preset {
    /// (luminosity function, threshold in erg cm-2 s-1) of the preset.
    pub fn resolve(self) -> (LuminosityFunction, f64) {
        match self {
            Preset::F0 => (LuminosityFunction::Flat, 3.4e-13),
            Preset::F1 => (LuminosityFunction::Flat, 2.2e-14),
            Preset::F2 => (LuminosityFunction::PowerLaw, 2.2e-14),
        }
    }
}

/// Mock-catalog stage configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// F0, F1 or F2; sets `luminosity_function` and `threshold_erg_cm2_s` unless given.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// 4FGL release the spectral and spatial distributions come from.
    #[serde(default = "default_prior")]
    pub prior: Prior,
    /// `flat` or `power_law` (resolved from the preset when absent; `flat` otherwise).
    #[serde(default)]
    pub luminosity_function: Option<LuminosityFunction>,
    /// Lowest energy flux 0.1-100 GeV of the mock population, erg cm-2 s-1.
    #[serde(default)]
    pub threshold_erg_cm2_s: Option<f64>,
    /// Which classes to generate.
    #[serde(default = "default_classes")]
    pub classes: Vec<String>,
    /// Number of equal-width log10 bins over the 4FGL Energy_Flux100 range of AGN+PSR; this
    /// fixes the bin width used by both luminosity functions (30 reproduces the paper's fit).
    #[serde(default = "default_n_bins")]
    pub lf_bins_4fgl: usize,
    /// Flat-extrapolation parameters.
    #[serde(default)]
    pub flat: FlatConfig,
    /// Power-law-extrapolation parameters.
    #[serde(default)]
    pub power_law: PowerLawConfig,
    /// PSR latitude double Gaussian; defaults depend on the prior.
    #[serde(default)]
    pub psr_latitude: Option<PsrLatitudeConfig>,
    /// Also write figures (PNG and SVG) to `figures/`.
    #[serde(default = "default_true")]
    pub figures: bool,
    /// Fermi Science Tools XML source models to render instead of generating a population
    /// (e.g. the published mock catalogs of Panes et al. 2021, or a fermipy / gtlike model);
    /// empty: generate from the luminosity function. (Left out of the config hash when
    /// empty, so stored catalogs keep their keys.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
}

fn default_prior() -> Prior {
    Prior::Dr4
}
fn default_classes() -> Vec<String> {
    vec!["AGN".into(), "PSR".into()]
}
fn default_n_bins() -> usize {
    30
}
fn default_true() -> bool {
    true
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            preset: None,
            prior: default_prior(),
            luminosity_function: None,
            threshold_erg_cm2_s: None,
            classes: default_classes(),
            lf_bins_4fgl: default_n_bins(),
            flat: FlatConfig::default(),
            power_law: PowerLawConfig::default(),
            psr_latitude: None,
            figures: true,
            source: Vec::new(),
        }
    }
}

/// Parameters of the flat extrapolation (Panes et al. 2021, app. A, steps 1-4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlatConfig {
    /// Range of N_min, the count in every bin from the threshold up to the 4FGL peak, AGN.
    #[serde(default = "default_agn_nmin")]
    pub agn_n_min: [u32; 2],
    /// Same for PSR.
    #[serde(default = "default_psr_nmin")]
    pub psr_n_min: [u32; 2],
    /// Range of the per-bin multiplier N_noise applied to the 4FGL counts above the peak.
    #[serde(default = "default_noise")]
    pub noise: [f64; 2],
    /// Bins whose 4FGL count is 0 or 1 may hold up to this many mock sources.
    #[serde(default = "default_sparse_max")]
    pub sparse_bin_max: u32,
}

fn default_agn_nmin() -> [u32; 2] {
    [50, 250]
}
fn default_psr_nmin() -> [u32; 2] {
    [15, 25]
}
fn default_noise() -> [f64; 2] {
    [0.8, 1.3]
}
fn default_sparse_max() -> u32 {
    2
}

impl Default for FlatConfig {
    fn default() -> Self {
        Self {
            agn_n_min: default_agn_nmin(),
            psr_n_min: default_psr_nmin(),
            noise: default_noise(),
            sparse_bin_max: default_sparse_max(),
        }
    }
}

/// Power-law extrapolation: log10 N = slope (log10 E100 - x_intercept), N per bin of the
/// 4FGL histogram, fitted to 4FGL AGN above the peak (Panes et al. 2021, app. A).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PowerLawConfig {
    #[serde(default = "default_slope")]
    pub slope: f64,
    #[serde(default = "default_x_intercept")]
    pub x_intercept: f64,
}

fn default_slope() -> f64 {
    -0.96
}
fn default_x_intercept() -> f64 {
    -8.64
}

impl Default for PowerLawConfig {
    fn default() -> Self {
        Self {
            slope: default_slope(),
            x_intercept: default_x_intercept(),
        }
    }
}

/// PSR latitude density per degree of signed latitude,
/// `f(b) = A1 exp(-b^2 / 2 sigma1^2) + A2 exp(-b^2 / 2 sigma2^2)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PsrLatitudeConfig {
    pub a1: f64,
    pub sigma1_deg: f64,
    pub a2: f64,
    pub sigma2_deg: f64,
}

impl PsrLatitudeConfig {
    /// Published: A1=0.11, sigma1=1.39 deg, A2=0.012, sigma2=19.2 deg (Panes et al. 2021).
    pub fn published() -> Self {
        Self {
            a1: 0.11,
            sigma1_deg: 1.39,
            a2: 0.012,
            sigma2_deg: 19.2,
        }
    }
    /// Maximum-likelihood refit on 4FGL-DR4 PSRs (shared/data README): weight 0.33 in the
    /// narrow component, sigma1 = 1.31 deg, sigma2 = 26.6 deg, expressed as amplitudes of a
    /// unit-normalised density.
    pub fn dr4_refit() -> Self {
        let w1 = 0.33;
        let (s1, s2) = (1.31, 26.6);
        let k = (2.0 * std::f64::consts::PI).sqrt();
        Self {
            a1: w1 / (s1 * k),
            sigma1_deg: s1,
            a2: (1.0 - w1) / (s2 * k),
            sigma2_deg: s2,
        }
    }
    /// Mixture weight of the narrow component.
    pub fn weight1(&self) -> f64 {
        let m1 = self.a1 * self.sigma1_deg;
        let m2 = self.a2 * self.sigma2_deg;
        m1 / (m1 + m2)
    }
}

impl CatalogConfig {
    /// The luminosity function after applying the preset.
    pub fn resolved_lf(&self) -> LuminosityFunction {
        self.luminosity_function
            .or(self.preset.map(|p| p.resolve().0))
            .unwrap_or(LuminosityFunction::Flat)
    }
    /// The threshold after applying the preset (F0's 3.4e-13 when nothing is given).
    pub fn resolved_threshold(&self) -> f64 {
        self.threshold_erg_cm2_s
            .or(self.preset.map(|p| p.resolve().1))
            .unwrap_or(3.4e-13)
    }
    /// PSR latitude parameters after applying the prior's default.
    pub fn resolved_psr_latitude(&self) -> PsrLatitudeConfig {
        self.psr_latitude.clone().unwrap_or(match self.prior {
            Prior::Dr1 => PsrLatitudeConfig::published(),
            Prior::Dr4 => PsrLatitudeConfig::dr4_refit(),
        })
    }
    /// Fills presets and prior-dependent defaults so the saved config says everything.
    pub fn resolve(&mut self) {
        self.luminosity_function = Some(self.resolved_lf());
        self.threshold_erg_cm2_s = Some(self.resolved_threshold());
        self.psr_latitude = Some(self.resolved_psr_latitude());
    }
}

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

/// A validation failure: the dotted key and what is wrong with it.
pub struct Invalid {
    pub key: String,
    pub message: String,
}

fn invalid(key: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl ExperimentConfig {
    /// Range checks, done once when the config is built (like linfa's checked params).
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        let e = &self.energy.bin_edges_gev;
        if e.len() < 2 {
            return Err(invalid("energy.bin_edges_gev", "needs at least two edges"));
        }
        if e.iter().any(|x| !x.is_finite() || *x <= 0.0) {
            return Err(invalid(
                "energy.bin_edges_gev",
                "edges must be finite and > 0 GeV",
            ));
        }
        if e.windows(2).any(|w| w[1] <= w[0]) {
            return Err(invalid(
                "energy.bin_edges_gev",
                "edges must increase strictly",
            ));
        }
        if e.iter().any(|x| !(0.01..=10_000.0).contains(x)) {
            return Err(invalid(
                "energy.bin_edges_gev",
                "edges must lie in 0.01..10000 GeV (the LAT's range; the response table covers 0.1-300 GeV)",
            ));
        }
        for (i, r) in self.nightly.rules.iter().enumerate() {
            if !["higher_is_better", "lower_is_better", "exact"].contains(&r.direction.as_str()) {
                return Err(invalid(
                    &format!("nightly.rules[{i}].direction"),
                    "expected higher_is_better, lower_is_better or exact",
                ));
            }
            if !(r.rel_tol >= 0.0 && r.abs_tol >= 0.0) {
                return Err(invalid(
                    &format!("nightly.rules[{i}]"),
                    "tolerances must be >= 0",
                ));
            }
        }
        for st in &self.run.stages {
            if !KNOWN_STAGES.contains(&st.as_str()) {
                return Err(invalid(
                    "run.stages",
                    format!("unknown stage `{st}` (known: {})", KNOWN_STAGES.join(", ")),
                ));
            }
        }
        let c = &self.catalog;
        if let Some(t) = c.threshold_erg_cm2_s
            && (!t.is_finite() || t <= 0.0)
        {
            return Err(invalid(
                "catalog.threshold_erg_cm2_s",
                format!("must be a positive energy flux in erg cm-2 s-1, got {t}"),
            ));
        }
        if let Some(t) = c.threshold_erg_cm2_s
            && !(1e-17..=1e-9).contains(&t)
        {
            return Err(invalid(
                "catalog.threshold_erg_cm2_s",
                format!("{t} is outside the supported range 1e-17..1e-9 erg cm-2 s-1"),
            ));
        }
        if c.classes.is_empty() {
            return Err(invalid("catalog.classes", "needs at least one of AGN, PSR"));
        }
        for cl in &c.classes {
            if cl != "AGN" && cl != "PSR" {
                return Err(invalid(
                    "catalog.classes",
                    format!("unknown class `{cl}` (expected AGN or PSR)"),
                ));
            }
        }
        if !(5..=200).contains(&c.lf_bins_4fgl) {
            return Err(invalid("catalog.lf_bins_4fgl", "must be between 5 and 200"));
        }
        for (key, r) in [
            ("catalog.flat.agn_n_min", c.flat.agn_n_min),
            ("catalog.flat.psr_n_min", c.flat.psr_n_min),
        ] {
            if r[0] > r[1] {
                return Err(invalid(key, "range must be [low, high] with low <= high"));
            }
        }
        let n = c.flat.noise;
        if !(n[0].is_finite() && n[1].is_finite() && 0.0 < n[0] && n[0] <= n[1]) {
            return Err(invalid(
                "catalog.flat.noise",
                "range must be [low, high] with 0 < low <= high",
            ));
        }
        if !(c.power_law.slope.is_finite() && c.power_law.slope < 0.0) {
            return Err(invalid("catalog.power_law.slope", "must be negative"));
        }
        if !c.power_law.x_intercept.is_finite() {
            return Err(invalid("catalog.power_law.x_intercept", "must be finite"));
        }
        if let Some(p) = &c.psr_latitude {
            for (k, v) in [
                ("catalog.psr_latitude.a1", p.a1),
                ("catalog.psr_latitude.a2", p.a2),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(invalid(k, "must be >= 0"));
                }
            }
            for (k, v) in [
                ("catalog.psr_latitude.sigma1_deg", p.sigma1_deg),
                ("catalog.psr_latitude.sigma2_deg", p.sigma2_deg),
            ] {
                if !(v.is_finite() && v > 0.0 && v <= 180.0) {
                    return Err(invalid(k, "must be in (0, 180] deg"));
                }
            }
            if p.a1 + p.a2 <= 0.0 {
                return Err(invalid("catalog.psr_latitude.a1", "a1 + a2 must be > 0"));
            }
        }
        self.score.validate()?;
        self.challenge.validate()?;
        let k = &self.sky;
        if !(k.nside.is_power_of_two() && (1..=4096).contains(&k.nside)) {
            return Err(invalid(
                "sky.nside",
                format!("must be a power of two in 1..4096, got {}", k.nside),
            ));
        }
        if !is_iem_name(&k.iem) {
            return Err(invalid(
                "sky.iem",
                format!(
                    "unknown model `{}` (expected B1, B2, B3 or a .toml path)",
                    k.iem
                ),
            ));
        }
        if !["P8R3_ULTRACLEANVETO_V2", "P8R3_SOURCE_V2"].contains(&k.irf.as_str()) {
            return Err(invalid(
                "sky.irf",
                "expected P8R3_ULTRACLEANVETO_V2 or P8R3_SOURCE_V2",
            ));
        }
        if !(k.survey_years.is_finite() && k.survey_years > 0.0 && k.survey_years <= 100.0) {
            return Err(invalid("sky.survey_years", "must be in (0, 100] years"));
        }
        if !(k.exposure_fraction.is_finite()
            && k.exposure_fraction > 0.0
            && k.exposure_fraction <= 1.0)
        {
            return Err(invalid("sky.exposure_fraction", "must be in (0, 1]"));
        }
        if !(1.0..=10.0).contains(&k.point_radius_r95) {
            return Err(invalid("sky.point_radius_r95", "must be in 1..10"));
        }
        if !(0.5..=5.0).contains(&k.diffuse_radius_r95) || k.diffuse_radius_r95 > k.point_radius_r95
        {
            return Err(invalid(
                "sky.diffuse_radius_r95",
                "must be in 0.5..5 and at most sky.point_radius_r95 (the PSF tables' extent)",
            ));
        }
        let pc = &self.patches;
        if pc.centres == Centres::Random && !(1..=1_000_000).contains(&pc.n) {
            return Err(invalid("patches.n", "must be in 1..1000000"));
        }
        if !(pc.mask_radius_pix.is_finite()
            && pc.mask_radius_pix > 0.0
            && pc.mask_radius_pix <= 32.0)
        {
            return Err(invalid(
                "patches.mask_radius_pix",
                "must be in (0, 32] pixels",
            ));
        }
        // sizes checked against the machine before anything is allocated
        if let Some(total) = machine_memory_bytes() {
            let budget = 0.8 * total as f64;
            let gib = |b: f64| b / (1u64 << 30) as f64;
            let bins = self.energy.n_bins().max(1) as f64;
            // diffuse, AGN, PSR maps in f64 plus one smoothing buffer, per bin
            let sky = 12.0 * (self.sky.nside as f64).powi(2) * bins * 8.0 * 4.0;
            if sky > budget {
                return Err(invalid(
                    "sky.nside",
                    format!(
                        "NSIDE {} needs about {:.1} GiB for its maps, more than this machine's {:.1} GiB allows",
                        self.sky.nside,
                        gib(sky),
                        gib(total as f64)
                    ),
                ));
            }
            let n = if pc.centres == Centres::Random {
                pc.n
            } else {
                768
            } as f64;
            // diffuse, AGN, PSR, Poisson arrays in f32 and the mask, 64 x 64 pixels each
            let patches = n * 64.0 * 64.0 * (bins * 4.0 * 4.0 + 1.0);
            if patches > budget {
                return Err(invalid(
                    "patches.n",
                    format!(
                        "{} patches need about {:.1} GiB, more than this machine's {:.1} GiB allows",
                        pc.n,
                        gib(patches),
                        gib(total as f64)
                    ),
                ));
            }
        }
        self.classify.validate()?;
        self.detect.validate()?;
        self.train.validate()?;
        Ok(())
    }

    /// Fills every derived default, so the saved config is complete.
    pub fn resolve(&mut self) {
        self.catalog.resolve();
    }
}

/// Which detector a run trains and applies (`detect.variant`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum DetectorVariant {
    /// U-Net segmentation + iterative k-means (Panes et al. 2021, UNEK).
    Unek,
    /// U-Net with vote-vector outputs + vote counting (Centroid-Net, CNET).
    Cnet,
    /// U-Net segmentation + Laplacian of Gaussian blobs (AutoSourceID).
    Log,
    /// Poisson likelihood test statistic on a grid (no training).
    Ts,
}

impl DetectorVariant {
    /// The config / CSV spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            DetectorVariant::Unek => "unek",
            DetectorVariant::Cnet => "cnet",
            DetectorVariant::Log => "log",
            DetectorVariant::Ts => "ts",
        }
    }
}

/// Input normalisation of the U-Net (recorded with the weights).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Normalisation {
    /// `ln(1 + counts)` per pixel and bin.
    Log1p,
    /// `(ln(1 + counts) - mean_b) / std_b` with per-bin statistics of the training set.
    Standardise,
}

/// The `[detect]` section: the detector variant and its hyperparameters.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// `unek`, `cnet`, `log` or `ts`.
    #[serde(default = "default_detector_variant")]
    pub variant: DetectorVariant,
    #[serde(default)]
    pub unet: UnetSection,
    #[serde(default)]
    pub unek: UnekSection,
    #[serde(default)]
    pub cnet: CnetSection,
    #[serde(default)]
    pub log: LogSection,
    #[serde(default)]
    pub ts: TsSection,
}

fn default_detector_variant() -> DetectorVariant {
    DetectorVariant::Unek
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            variant: default_detector_variant(),
            unet: UnetSection::default(),
            unek: UnekSection::default(),
            cnet: CnetSection::default(),
            log: LogSection::default(),
            ts: TsSection::default(),
        }
    }
}

/// U-Net shape and targets (Panes et al. 2021, Fig. 3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UnetSection {
    /// Filters per level, top to bottleneck; `len - 1` pooling stages (published: 16..256).
    #[serde(default = "default_widths")]
    pub widths: Vec<usize>,
    /// Input normalisation.
    #[serde(default = "default_norm")]
    pub normalisation: Normalisation,
    /// Radius of the target disks around each source, px.
    #[serde(default = "default_disk")]
    pub disk_radius_px: f64,
}

fn default_widths() -> Vec<usize> {
    vec![16, 32, 64, 128, 256]
}
fn default_norm() -> Normalisation {
    Normalisation::Log1p
}
fn default_disk() -> f64 {
    2.5
}

impl Default for UnetSection {
    fn default() -> Self {
        Self {
            widths: default_widths(),
            normalisation: default_norm(),
            disk_radius_px: default_disk(),
        }
    }
}

/// Shape of the UNEK scoring region around each k-means centre.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum UnekRegion {
    /// Pixels within `region_size_px` of the centre (paper appendix B: R = 5 px).
    Disk,
    /// A square of side `region_size_px` px around the centre (the published code: 4 x 4).
    Square,
}

/// UNEK head (Panes et al. 2021, app. B, Alg. 1).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UnekSection {
    /// Pixels with a source score above this feed k-means (l_sth).
    #[serde(default = "default_score_threshold")]
    pub score_threshold: f64,
    /// Largest k tried (k = 1..=k_max; the paper's `range(1, 50)`).
    #[serde(default = "default_k_max")]
    pub k_max: usize,
    /// Value given to pixels already counted by an earlier centre (l_sng).
    #[serde(default = "default_penalty")]
    pub penalty: f64,
    /// Region shape.
    #[serde(default = "default_region")]
    pub region: UnekRegion,
    /// Disk radius or square side, px.
    #[serde(default = "default_region_size")]
    pub region_size_px: f64,
    /// Lloyd iterations per k-means run.
    #[serde(default = "default_kmeans_iters")]
    pub kmeans_iterations: usize,
    /// k-means++ restarts per k, the lowest inertia kept (scikit-learn's `n_init`).
    #[serde(default = "default_kmeans_restarts")]
    pub kmeans_restarts: usize,
}

fn default_score_threshold() -> f64 {
    0.2
}
fn default_k_max() -> usize {
    49
}
fn default_penalty() -> f64 {
    -10.0
}
fn default_region() -> UnekRegion {
    UnekRegion::Disk
}
fn default_region_size() -> f64 {
    5.0
}
fn default_kmeans_iters() -> usize {
    100
}
fn default_kmeans_restarts() -> usize {
    4
}

impl Default for UnekSection {
    fn default() -> Self {
        Self {
            score_threshold: default_score_threshold(),
            k_max: default_k_max(),
            penalty: default_penalty(),
            region: default_region(),
            region_size_px: default_region_size(),
            kmeans_iterations: default_kmeans_iters(),
            kmeans_restarts: default_kmeans_restarts(),
        }
    }
}

/// Centroid-Net head (Dijkstra et al. 2018; OpenCentroidNet defaults).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CnetSection {
    /// Pixels farther than this from every source get a zero vote vector, px.
    #[serde(default = "default_max_dist")]
    pub max_dist_px: f64,
    /// Side of the non-maximum-suppression window, px.
    #[serde(default = "default_nm_size")]
    pub nm_size_px: usize,
    /// Votes needed for a centroid.
    #[serde(default = "default_vote_threshold")]
    pub vote_threshold: f64,
    /// Weight of the vector MSE in the training loss.
    #[serde(default = "default_vector_weight")]
    pub vector_loss_weight: f64,
}

fn default_max_dist() -> f64 {
    6.0
}
fn default_nm_size() -> usize {
    3
}
fn default_vote_threshold() -> f64 {
    10.0
}
fn default_vector_weight() -> f64 {
    1.0
}

impl Default for CnetSection {
    fn default() -> Self {
        Self {
            max_dist_px: default_max_dist(),
            nm_size_px: default_nm_size(),
            vote_threshold: default_vote_threshold(),
            vector_loss_weight: default_vector_weight(),
        }
    }
}

/// Laplacian-of-Gaussian head (AutoSourceID).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LogSection {
    /// Gaussian scales tried, px.
    #[serde(default = "default_sigmas")]
    pub sigmas_px: Vec<f64>,
    /// Minimum scale-normalised LoG response.
    #[serde(default = "default_log_threshold")]
    pub threshold: f64,
    /// Blobs overlapping by more than this fraction of the smaller one are merged.
    #[serde(default = "default_overlap")]
    pub overlap: f64,
}

fn default_sigmas() -> Vec<f64> {
    vec![1.4]
}
fn default_log_threshold() -> f64 {
    0.2
}
fn default_overlap() -> f64 {
    0.8
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            sigmas_px: default_sigmas(),
            threshold: default_log_threshold(),
            overlap: default_overlap(),
        }
    }
}

/// Likelihood test-statistic baseline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TsSection {
    /// Detection threshold on TS = 2 (ln L1 - ln L0).
    #[serde(default = "default_ts_threshold")]
    pub threshold: f64,
    /// Emission model whose diffuse counts are the background model (`B1`, `B2`, `B3` or a
    /// model `.toml`): B1 by default even when the sky was made with B2 or B3, the model
    /// mismatch of the paper's robustness test. Its diffuse map (the `diffuse` stage, same
    /// NSIDE and instrument as the sky) is cut at the searched patches' centres. Empty: the
    /// searched patches' own diffuse component (the true background, an idealised baseline).
    #[serde(default = "default_iem")]
    pub background_iem: String,
    /// Patches directory whose `patches_diffuse.npy` is the background model (same patch ids
    /// in the same order); overrides `background_iem` when set.
    #[serde(default)]
    pub background_patches: String,
    /// Photon index of the power-law spectrum that weights the PSF templates across bins.
    #[serde(default = "default_ts_index")]
    pub spectral_index: f64,
    /// Template support radius in units of the bin's r68.
    #[serde(default = "default_ts_support")]
    pub support_r68: f64,
}

fn default_ts_threshold() -> f64 {
    25.0
}
fn default_ts_index() -> f64 {
    2.2
}
fn default_ts_support() -> f64 {
    2.5
}

impl Default for TsSection {
    fn default() -> Self {
        Self {
            threshold: default_ts_threshold(),
            background_iem: default_iem(),
            background_patches: String::new(),
            spectral_index: default_ts_index(),
            support_r68: default_ts_support(),
        }
    }
}

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

impl ExperimentConfig {
    /// The config of the training sky of `[train.data]`: this config with the catalog preset
    /// (and threshold), the emission model and `patches.centres = random`, `patches.n`
    /// replaced and the seed of `train.data.seed`; everything else (energy bins, NSIDE,
    /// instrument) kept.
    pub fn training_data_config(&self) -> ExperimentConfig {
        let d = &self.train.data;
        let mut c = self.clone();
        c.catalog.preset = Some(d.preset);
        c.catalog.luminosity_function = None;
        c.catalog.threshold_erg_cm2_s = d.threshold_erg_cm2_s;
        c.catalog.resolve();
        c.sky.iem = d.iem.clone();
        c.patches.centres = Centres::Random;
        c.patches.n = d.n_patches;
        c.patches.poisson = false;
        c.seed = d.seed.unwrap_or(self.seed.wrapping_add(1));
        c
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

impl DetectConfig {
    /// Range checks of the detector hyperparameters.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        let u = &self.unet;
        if u.widths.len() < 2 || u.widths.len() > 6 {
            return Err(invalid(
                "detect.unet.widths",
                "needs 2 to 6 levels (1 to 5 pooling stages)",
            ));
        }
        if u.widths.iter().any(|w| *w == 0 || *w > 1024) {
            return Err(invalid("detect.unet.widths", "each width must be 1..=1024"));
        }
        if !(u.disk_radius_px.is_finite() && u.disk_radius_px > 0.0 && u.disk_radius_px <= 16.0) {
            return Err(invalid(
                "detect.unet.disk_radius_px",
                "must be in (0, 16] px",
            ));
        }
        let k = &self.unek;
        if !(0.0..1.0).contains(&k.score_threshold) {
            return Err(invalid("detect.unek.score_threshold", "must be in [0, 1)"));
        }
        if !(1..=200).contains(&k.k_max) {
            return Err(invalid("detect.unek.k_max", "must be 1..=200"));
        }
        if !(k.penalty.is_finite() && k.penalty <= 0.0) {
            return Err(invalid("detect.unek.penalty", "must be <= 0"));
        }
        if !(k.region_size_px.is_finite() && k.region_size_px >= 1.0 && k.region_size_px <= 32.0) {
            return Err(invalid(
                "detect.unek.region_size_px",
                "must be in [1, 32] px",
            ));
        }
        if k.kmeans_iterations == 0 {
            return Err(invalid("detect.unek.kmeans_iterations", "must be >= 1"));
        }
        if !(1..=100).contains(&k.kmeans_restarts) {
            return Err(invalid("detect.unek.kmeans_restarts", "must be 1..=100"));
        }
        let c = &self.cnet;
        if !(c.max_dist_px.is_finite() && c.max_dist_px > 0.0 && c.max_dist_px <= 64.0) {
            return Err(invalid("detect.cnet.max_dist_px", "must be in (0, 64] px"));
        }
        if c.nm_size_px == 0 || c.nm_size_px.is_multiple_of(2) || c.nm_size_px > 15 {
            return Err(invalid("detect.cnet.nm_size_px", "must be odd, 1..=15"));
        }
        if !(c.vote_threshold.is_finite() && c.vote_threshold > 0.0) {
            return Err(invalid("detect.cnet.vote_threshold", "must be > 0"));
        }
        if !(c.vector_loss_weight.is_finite() && c.vector_loss_weight >= 0.0) {
            return Err(invalid("detect.cnet.vector_loss_weight", "must be >= 0"));
        }
        let l = &self.log;
        if l.sigmas_px.is_empty()
            || l.sigmas_px
                .iter()
                .any(|s| !(s.is_finite() && *s > 0.0 && *s <= 16.0))
        {
            return Err(invalid(
                "detect.log.sigmas_px",
                "needs at least one scale, each in (0, 16] px",
            ));
        }
        if !(l.threshold.is_finite() && l.threshold > 0.0) {
            return Err(invalid("detect.log.threshold", "must be > 0"));
        }
        if !(0.0..=1.0).contains(&l.overlap) {
            return Err(invalid("detect.log.overlap", "must be in [0, 1]"));
        }
        let t = &self.ts;
        if !(t.threshold.is_finite() && t.threshold > 0.0) {
            return Err(invalid("detect.ts.threshold", "must be > 0"));
        }
        if !(t.spectral_index.is_finite() && (0.5..=5.0).contains(&t.spectral_index)) {
            return Err(invalid("detect.ts.spectral_index", "must be in [0.5, 5]"));
        }
        if !(t.support_r68.is_finite() && (0.5..=10.0).contains(&t.support_r68)) {
            return Err(invalid("detect.ts.support_r68", "must be in [0.5, 10]"));
        }
        if !t.background_iem.is_empty() && !is_iem_name(&t.background_iem) {
            return Err(invalid(
                "detect.ts.background_iem",
                format!(
                    "unknown model `{}` (expected B1, B2, B3, a .toml path, or empty for the \
                     patches' own diffuse)",
                    t.background_iem
                ),
            ));
        }
        Ok(())
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

/// One point of an expanded grid.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `axis=value` labels of this point (empty when the config had no grid).
    pub label: String,
    /// The resolved config.
    pub config: ExperimentConfig,
}

/// Where a config's text came from, for error messages.
struct Source<'a> {
    name: String,
    text: &'a str,
}

/// Loads a config file (or the embedded default when `path` is `None`), applies `--set`
/// overrides, expands grid axes and validates every point.
pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Vec<Resolved>> {
    let owned;
    let src = match path {
        Some(p) => {
            owned = std::fs::read_to_string(p)
                .map_err(|e| Error::bad_file(p, format!("cannot read config: {e}")))?;
            Source {
                name: p.display().to_string(),
                text: &owned,
            }
        }
        None => Source {
            name: "<embedded configs/default.toml>".into(),
            text: EMBEDDED_DEFAULT,
        },
    };
    load_text(&src.name, src.text, overrides)
}

/// [`load`] on text already in memory; `name` is used in messages.
pub fn load_text(name: &str, text: &str, overrides: &[String]) -> Result<Vec<Resolved>> {
    let src = Source {
        name: name.into(),
        text,
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        Error::Config {
            file: src.name.clone(),
            line,
            column,
            key: "-".into(),
            message: format!("TOML syntax: {}", e.message()),
        }
    })?;
    let mut overridden: Vec<(String, String)> = Vec::new();
    for assignment in overrides {
        let (key, value) = parse_override(assignment)?;
        set_path(&mut table, &key, value).map_err(|message| Error::Override {
            assignment: assignment.clone(),
            message,
        })?;
        overridden.push((key, assignment.clone()));
    }
    // an empty list on a grid axis would expand to no experiment at all
    for axis in GRID_AXES {
        if let Some(toml::Value::Array(values)) = get_path(&table, axis)
            && values.is_empty()
        {
            let key = axis.to_string();
            if let Some((_, assignment)) = overridden.iter().find(|(k, _)| *k == key) {
                return Err(Error::Override {
                    assignment: assignment.clone(),
                    message: "an empty list on a grid axis leaves no experiment to run".into(),
                });
            }
            let (line, column) = key_position(text, &key).unwrap_or((1, 1));
            return Err(Error::Config {
                file: src.name.clone(),
                line,
                column,
                key,
                message: "an empty list on a grid axis leaves no experiment to run".into(),
            });
        }
    }
    let points = expand_grid(&table);
    let mut out = Vec::with_capacity(points.len());
    for (label, t) in points {
        let mut cfg: ExperimentConfig = serde_path_to_error::deserialize(toml::Value::Table(t))
            .map_err(|e| {
                let key = e.path().to_string();
                let msg = e.inner().to_string();
                locate(&src, &overridden, &key, clean_serde_message(&msg))
            })?;
        cfg.validate()
            .map_err(|inv| locate(&src, &overridden, &inv.key, inv.message))?;
        cfg.resolve();
        out.push(Resolved { label, config: cfg });
    }
    Ok(out)
}

fn clean_serde_message(msg: &str) -> String {
    // toml's value deserialiser appends its own location-free text; keep the first line.
    msg.lines().next().unwrap_or(msg).trim().to_string()
}

/// Builds the error for `key`: from a `--set` when the key (or a parent) was overridden,
/// otherwise at the key's line and column in the file (or its nearest existing parent).
fn locate(src: &Source, overridden: &[(String, String)], key: &str, message: String) -> Error {
    if let Some((_, assignment)) = overridden.iter().rev().find(|(k, _)| {
        key == k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}."))
    }) {
        return Error::Override {
            assignment: assignment.clone(),
            message: format!("key `{key}`: {message}"),
        };
    }
    let (line, column) = key_position(src.text, key).unwrap_or((1, 1));
    Error::Config {
        file: src.name.clone(),
        line,
        column,
        key: if key.is_empty() || key == "." {
            "-".into()
        } else {
            key.into()
        },
        message,
    }
}

/// 1-based line and column of the deepest existing key on `dotted` in `text`.
pub fn key_position(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut best = None;
    for seg in dotted.split('.') {
        // serde_path_to_error writes list indices as `[i]`
        let seg = seg.split('[').next().unwrap_or(seg);
        let Some((k, item)) = table.get_key_value(seg) else {
            break;
        };
        if let Some(span) = k.span() {
            best = Some(line_col(text, span.start));
        }
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    best
}

fn parse_override(assignment: &str) -> Result<(String, toml::Value)> {
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(Error::Override {
            assignment: assignment.into(),
            message: "expected key.path=value".into(),
        });
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|s| s.is_empty()) {
        return Err(Error::Override {
            assignment: assignment.into(),
            message: "empty key segment".into(),
        });
    }
    Ok((key.to_string(), parse_value(raw.trim())))
}

/// Reads a value as TOML; falls back to a bare string, and a `[a, b]` list of bare words.
fn parse_value(raw: &str) -> toml::Value {
    if let Ok(mut t) = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return toml::Value::Array(
            inner
                .split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(parse_value)
                .collect(),
        );
    }
    toml::Value::String(raw.to_string())
}

fn set_path(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let segs: Vec<&str> = key.split('.').collect();
    let mut t = table;
    for (i, seg) in segs.iter().enumerate() {
        if i + 1 == segs.len() {
            t.insert(seg.to_string(), value);
            return Ok(());
        }
        let entry = t
            .entry(seg.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("`{}` is not a table", segs[..=i].join("."))),
        };
    }
    Ok(())
}

fn get_path<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut segs = key.split('.').peekable();
    let mut t = table;
    while let Some(seg) = segs.next() {
        let v = t.get(seg)?;
        if segs.peek().is_none() {
            return Some(v);
        }
        t = v.as_table()?;
    }
    None
}

/// Expands every grid axis holding a list into the cartesian product of its values.
fn expand_grid(table: &toml::Table) -> Vec<(String, toml::Table)> {
    let mut points = vec![(String::new(), table.clone())];
    for axis in GRID_AXES {
        let Some(toml::Value::Array(values)) = get_path(table, axis) else {
            continue;
        };
        let mut next = Vec::with_capacity(points.len() * values.len());
        for (label, t) in &points {
            for v in values {
                let mut t2 = t.clone();
                set_path(&mut t2, axis, v.clone()).expect("axis path exists");
                let vs = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let short = axis.rsplit('.').next().unwrap_or(axis);
                let l = if label.is_empty() {
                    format!("{short}={vs}")
                } else {
                    format!("{label},{short}={vs}")
                };
                next.push((l, t2));
            }
        }
        points = next;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_that_hang_or_exhaust_memory_are_refused_at_the_door() {
        let e = load_text("t.toml", "[energy]\nbin_edges_gev = [0.5, 1e30]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("energy.bin_edges_gev") && e.contains("0.01..10000"),
            "{e}"
        );
        let e = load_text("t.toml", "seed = []\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("seed") && e.contains("empty list"), "{e}");
        let e = load_text("t.toml", "", &["seed=[]".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("seed=[]") && e.contains("empty list"), "{e}");
        // 201 M pixels x 5 bins of f64 maps: 30 GiB, more than 0.8 of any machine under 38 GiB
        if machine_memory_bytes().is_some_and(|m| m < 38 << 30) {
            let e = load_text("t.toml", "[sky]\nnside = 4096\n", &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains("sky.nside") && e.contains("GiB"), "{e}");
        }
        if machine_memory_bytes().is_some_and(|m| m < 64 << 30) {
            let e = load_text(
                "t.toml",
                "[patches]\ncentres = \"random\"\nn = 1000000\n",
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("patches.n") && e.contains("GiB"), "{e}");
        }
    }

    #[test]
    fn embedded_default_loads() {
        let r = load(None, &[]).unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].config.catalog.prior, Prior::Dr4);
    }

    #[test]
    fn unknown_key_is_located() {
        let text = "seed = 1\n[catalog]\nprior = \"4fgl-dr1\"\nthreshhold = 3\n";
        let err = load_text("x.toml", text, &[]).unwrap_err();
        match err {
            Error::Config {
                line,
                column,
                key,
                message,
                ..
            } => {
                assert_eq!((line, column), (4, 1), "{message}");
                assert_eq!(key, "catalog.threshhold");
                assert!(message.contains("unknown field"), "{message}");
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn wrong_type_and_range_are_located() {
        let text = "[catalog]\nthreshold_erg_cm2_s = \"big\"\n";
        let err = load_text("x.toml", text, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("x.toml:2:1: key `catalog.threshold_erg_cm2_s`"),
            "{err}"
        );
        let text = "[catalog]\nthreshold_erg_cm2_s = -1e-13\n";
        let err = load_text("x.toml", text, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("x.toml:2:1: key `catalog.threshold_erg_cm2_s`: must be a positive"),
            "{err}"
        );
    }

    #[test]
    fn overrides_and_grid() {
        let text = "seed = 3\n[catalog]\npreset = \"F0\"\n";
        let r = load_text(
            "x.toml",
            text,
            &[
                "catalog.prior=[4fgl-dr1, 4fgl-dr4]".into(),
                "catalog.preset=[F0,F2]".into(),
            ],
        )
        .unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].label, "preset=F0,prior=4fgl-dr1");
        assert_eq!(
            r[3].config.catalog.resolved_lf(),
            LuminosityFunction::PowerLaw
        );
        assert_eq!(r[3].config.catalog.threshold_erg_cm2_s, Some(2.2e-14));
        let err = load_text("x.toml", text, &["catalog.threshold_erg_cm2_s=-5".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--set catalog.threshold_erg_cm2_s=-5"),
            "{err}"
        );
    }
}

/// How detections are matched to true sources.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// The published per-patch greedy scorer of Panes et al. (2021).
    Legacy,
    /// One-to-one across the whole sky (see `score::matching`).
    Global,
}

/// How S90 is read from the purity and completeness curves (see `score::detection`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum S90Rule {
    /// Purity and completeness crossings read separately, S90 the larger; a bin below the
    /// level vetoes a crossing only when it is significantly below (its Wilson upper bound
    /// at `s90_veto_z` is under the level).
    #[default]
    Crossing,
    /// The rule before: min(purity, completeness) >= level in every bin above.
    AllBinsAbove,
}

/// Scoring configuration (`[score]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// Match radius in deg (great-circle); Panes et al. 2021 use 0.3 deg.
    #[serde(default = "default_match_radius")]
    pub match_radius_deg: f64,
    /// `legacy` or `global`.
    #[serde(default = "default_match_mode")]
    pub mode: MatchMode,
    /// Log bins per decade of the curve axes before merging.
    #[serde(default = "default_bins_per_decade")]
    pub bins_per_decade: usize,
    /// Adjacent bins are merged until each holds at least this many items.
    #[serde(default = "default_min_count")]
    pub min_count_per_bin: usize,
    /// Purity and completeness threshold of S90.
    #[serde(default = "default_s90_level")]
    pub s90_level: f64,
    /// `crossing` (default) or `all_bins_above` (the earlier rule).
    #[serde(default)]
    pub s90_rule: S90Rule,
    /// z of the one-sided Wilson bound that decides whether a bin below the level vetoes
    /// an S90 crossing (3: a bin vetoes only when it is 3 sigma below the level).
    #[serde(default = "default_s90_veto_z")]
    pub s90_veto_z: f64,
    /// Bootstrap replicas of the S90 interval (0 disables it).
    #[serde(default = "default_bootstrap")]
    pub bootstrap_reps: usize,
    /// Central coverage of the bootstrap interval.
    #[serde(default = "default_ci")]
    pub bootstrap_ci: f64,
    /// z of the Wilson score interval (1 = 68.27 %, like the paper's 1-sigma errors).
    #[serde(default = "default_wilson_z")]
    pub wilson_z: f64,
    /// |b| in deg separating the high- and low-latitude curves.
    #[serde(default = "default_lat_cut")]
    pub latitude_cut_deg: f64,
    /// Equal-width bins of the expected calibration error.
    #[serde(default = "default_ece_bins")]
    pub ece_bins: usize,
}

fn default_match_radius() -> f64 {
    0.3
}
fn default_match_mode() -> MatchMode {
    MatchMode::Global
}
fn default_bins_per_decade() -> usize {
    4
}
fn default_min_count() -> usize {
    10
}
fn default_s90_level() -> f64 {
    0.9
}
fn default_s90_veto_z() -> f64 {
    3.0
}
fn default_bootstrap() -> usize {
    200
}
fn default_ci() -> f64 {
    0.9
}
fn default_wilson_z() -> f64 {
    1.0
}
fn default_lat_cut() -> f64 {
    20.0
}
fn default_ece_bins() -> usize {
    15
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            match_radius_deg: default_match_radius(),
            mode: default_match_mode(),
            bins_per_decade: default_bins_per_decade(),
            min_count_per_bin: default_min_count(),
            s90_level: default_s90_level(),
            s90_rule: S90Rule::default(),
            s90_veto_z: default_s90_veto_z(),
            bootstrap_reps: default_bootstrap(),
            bootstrap_ci: default_ci(),
            wilson_z: default_wilson_z(),
            latitude_cut_deg: default_lat_cut(),
            ece_bins: default_ece_bins(),
        }
    }
}

impl ScoreConfig {
    /// Range checks.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if !(self.match_radius_deg.is_finite()
            && self.match_radius_deg > 0.0
            && self.match_radius_deg <= 10.0)
        {
            return Err(invalid("score.match_radius_deg", "must be in (0, 10] deg"));
        }
        if !(1..=50).contains(&self.bins_per_decade) {
            return Err(invalid("score.bins_per_decade", "must be between 1 and 50"));
        }
        if !(1..=100_000).contains(&self.min_count_per_bin) {
            return Err(invalid(
                "score.min_count_per_bin",
                "must be between 1 and 100000",
            ));
        }
        if !(self.s90_level > 0.0 && self.s90_level < 1.0) {
            return Err(invalid("score.s90_level", "must be in (0, 1)"));
        }
        if !(self.s90_veto_z.is_finite() && self.s90_veto_z >= 0.0 && self.s90_veto_z <= 10.0) {
            return Err(invalid("score.s90_veto_z", "must be in [0, 10]"));
        }
        if self.bootstrap_reps > 100_000 {
            return Err(invalid("score.bootstrap_reps", "must be at most 100000"));
        }
        if !(self.bootstrap_ci > 0.0 && self.bootstrap_ci < 1.0) {
            return Err(invalid("score.bootstrap_ci", "must be in (0, 1)"));
        }
        if !(self.wilson_z.is_finite() && self.wilson_z > 0.0 && self.wilson_z <= 10.0) {
            return Err(invalid("score.wilson_z", "must be in (0, 10]"));
        }
        if !(self.latitude_cut_deg >= 0.0 && self.latitude_cut_deg < 90.0) {
            return Err(invalid("score.latitude_cut_deg", "must be in [0, 90) deg"));
        }
        if !(1..=1000).contains(&self.ece_bins) {
            return Err(invalid("score.ece_bins", "must be between 1 and 1000"));
        }
        Ok(())
    }
}

/// Data-challenge configuration (`[challenge]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChallengeConfig {
    /// Directory of the patches stage output (patches.csv, truth.csv, patches_<component>.npy).
    #[serde(default)]
    pub patches_dir: Option<std::path::PathBuf>,
    /// Secret seed of the Poisson draws; kept in the private bundle only. Default: the
    /// experiment seed mixed with the string `challenge/secret`.
    #[serde(default)]
    pub secret_seed: Option<u64>,
    /// Submissions per team per UTC day.
    #[serde(default = "default_daily_limit")]
    pub daily_limit: u32,
    /// Largest accepted submission file, bytes.
    #[serde(default = "default_max_bytes")]
    pub max_file_bytes: u64,
    /// Largest accepted number of data rows.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Leaderboard database (SQLite). Default: `<store>/challenge/leaderboard.sqlite`.
    #[serde(default)]
    pub database: Option<std::path::PathBuf>,
    /// Private bundle directory used by `submit` (truth and patch list).
    #[serde(default)]
    pub private_dir: Option<std::path::PathBuf>,
}

fn default_daily_limit() -> u32 {
    5
}
fn default_max_bytes() -> u64 {
    50 * 1024 * 1024
}
fn default_max_rows() -> usize {
    1_000_000
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        Self {
            patches_dir: None,
            secret_seed: None,
            daily_limit: default_daily_limit(),
            max_file_bytes: default_max_bytes(),
            max_rows: default_max_rows(),
            database: None,
            private_dir: None,
        }
    }
}

impl ChallengeConfig {
    /// Range checks.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if !(1..=10_000).contains(&self.daily_limit) {
            return Err(invalid(
                "challenge.daily_limit",
                "must be between 1 and 10000",
            ));
        }
        if !(64..=(1u64 << 34)).contains(&self.max_file_bytes) {
            return Err(invalid(
                "challenge.max_file_bytes",
                "must be between 64 bytes and 16 GiB",
            ));
        }
        if !(1..=100_000_000).contains(&self.max_rows) {
            return Err(invalid("challenge.max_rows", "must be between 1 and 1e8"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod score_config_tests {
    use super::*;

    #[test]
    fn score_and_challenge_tables() {
        let r = load_text(
            "x.toml",
            "[score]\nmode = \"legacy\"\nmatch_radius_deg = 0.25\n",
            &[],
        )
        .unwrap();
        assert_eq!(r[0].config.score.mode, MatchMode::Legacy);
        assert_eq!(r[0].config.score.match_radius_deg, 0.25);
        assert_eq!(r[0].config.challenge.daily_limit, 5);
        let err = load_text("x.toml", "[score]\nmatch_radius_deg = -1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.toml:2:1: key `score.match_radius_deg`"),
            "{err}"
        );
        let err = load_text("x.toml", "[challenge]\ndaily_limt = 3\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("challenge.daily_limt") && err.contains("unknown field"),
            "{err}"
        );
        let err = load_text("x.toml", "", &["challenge.daily_limit=0".into()])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--set challenge.daily_limit=0"), "{err}");
    }
}
