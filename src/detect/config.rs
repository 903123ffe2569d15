//! The `[detect]` section: the detector variant and one sub-table per head, each defined
//! and checked in its own file named after the head (`config/unek.rs` for `unet_kmeans.rs`,
//! `cnet.rs` for `centroid_net.rs`, `log.rs` for `log_blob.rs`, `ts.rs` for
//! `ts_baseline.rs`, `unet.rs` for the shared U-Net of `neural.rs`). They import nothing but
//! other config sections, so the experiment config can compose them without importing a
//! detector.

mod cnet;
mod log;
mod post;
mod ts;
mod unek;
mod unet;

use crate::config::Invalid;
pub use cnet::{CnetSection, VoteThresholdOn};
pub use log::LogSection;
pub use post::{PostSection, ThresholdSource};
use serde::{Deserialize, Serialize};
pub use ts::TsSection;
pub use unek::{UnekRegion, UnekScore, UnekSection};
pub use unet::UnetSection;

/// True positives a threshold needs before its purity counts against the target of the
/// `threshold` stage's rule (`crate::score::threshold::choose`; a cross-validated network's
/// small held-out fold otherwise accepts its top two detections at purity 1.0 and
/// completeness 0.001). Part of the threshold stage's key.
pub const MIN_TP_FOR_PURITY: usize = 20;

/// How an ensemble's validation detections are made (part of its `threshold` key; see
/// `score::threshold`): no training patch is held out from every member.
pub const CROSS_FIT: &str = "each held-out fold by the ensemble of the other folds' networks";

/// Which detector a run trains and applies (`detect.variant`; `detect --head` on the CLI).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
#[value(rename_all = "snake_case")]
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
    /// Merging and the operating threshold, after every head.
    #[serde(default, skip_serializing_if = "PostSection::is_default")]
    pub post: PostSection,
    /// The deep ensemble of the `train.folds` fold networks as the detector
    /// ([`super::ensemble`]): the mean of their maps, then the head.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ensemble: bool,
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
            post: PostSection::default(),
            ensemble: false,
        }
    }
}

impl DetectConfig {
    /// Range checks of every head's hyperparameters (each section checks itself).
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        self.unet.validate()?;
        self.post.validate()?;
        self.unek.validate()?;
        self.cnet.validate()?;
        self.log.validate()?;
        self.ts.validate()
    }
}
