//! `[detect.post]`: what every head's detections go through before they are written
//! (`post.rs`): merging of crowded detections and the operating threshold.
use serde::{Deserialize, Serialize};

/// Where the operating threshold (`min_score`) comes from.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ThresholdSource {
    /// `detect.post.min_score` as written.
    #[default]
    Fixed,
    /// Chosen by the `threshold` stage on the validation sky (`train.data.validation_patches`)
    /// with the rule of `target_purity`; never on a test sky.
    Validation,
    /// The head's threshold shipped with the pretrained model (`train.pretrained`,
    /// `operating_points.json`), which its `threshold` stage chose on its validation sky.
    Model,
}

/// `[detect.post]`: merging and the operating threshold.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PostSection {
    /// Detections of one patch closer than this (px) to a higher-scoring detection of the
    /// same patch are dropped (non-maximum suppression); 0 keeps them all. A bright source
    /// gives a large high-score blob that k-means may split into several clusters: each
    /// extra cluster is a false positive under both matching rules.
    #[serde(default)]
    pub min_separation_px: f64,
    /// Detections scoring below this are dropped (the head's own score: UNEK the mean U-Net
    /// score of the cluster, CNET the votes, LoG the response, TS the test statistic).
    #[serde(default)]
    pub min_score: f64,
    /// `fixed` (`min_score`), `validation` or `model`.
    #[serde(default)]
    pub threshold: ThresholdSource,
    /// With `threshold = "validation"`: the threshold with the highest validation
    /// completeness among those whose validation purity is at least this; when none
    /// reaches it, the threshold with the highest F1.
    #[serde(default = "default_target_purity")]
    pub target_purity: f64,
}

fn default_target_purity() -> f64 {
    0.9
}

impl Default for PostSection {
    fn default() -> Self {
        Self {
            min_separation_px: 0.0,
            min_score: 0.0,
            threshold: ThresholdSource::Fixed,
            target_purity: default_target_purity(),
        }
    }
}

impl PostSection {
    /// True when it changes nothing (it is then left out of the stage keys).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// Range checks, done once when the config is loaded.
    pub fn validate(&self) -> std::result::Result<(), crate::config::Invalid> {
        use crate::config::invalid;
        if !(self.min_separation_px.is_finite() && (0.0..=32.0).contains(&self.min_separation_px)) {
            return Err(invalid(
                "detect.post.min_separation_px",
                "must be in [0, 32] px",
            ));
        }
        if !self.min_score.is_finite() {
            return Err(invalid("detect.post.min_score", "must be finite"));
        }
        if !(self.target_purity > 0.0 && self.target_purity < 1.0) {
            return Err(invalid("detect.post.target_purity", "must be in (0, 1)"));
        }
        Ok(())
    }
}
