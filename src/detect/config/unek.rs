//! `[detect.unek]`: the UNEK head, `unet_kmeans.rs` (Panes et al. 2021, app. B, Alg. 1).

use serde::{Deserialize, Serialize};

/// Shape of the UNEK scoring region around each k-means centre.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum UnekRegion {
    /// Pixels within `region_size_px` of the centre (paper appendix B: R = 5 px).
    Disk,
    /// A square of side `region_size_px` px around the centre (the published code: 4 x 4).
    Square,
}

/// What a UNEK detection's `score` is, from the U-Net scores of the pixels k-means assigned
/// to its centre.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum UnekScore {
    /// Their mean (the score of before).
    #[default]
    Mean,
    /// Their sum: the integrated source score, large for a source's whole blob and small for
    /// a few noisy pixels above `score_threshold`.
    Sum,
    /// Their maximum.
    Max,
}

impl UnekScore {
    fn is_mean(&self) -> bool {
        *self == UnekScore::Mean
    }
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
    /// A detection's score: `mean`, `sum` or `max` of its pixels' U-Net scores.
    #[serde(default, skip_serializing_if = "UnekScore::is_mean")]
    pub detection_score: UnekScore,
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
            detection_score: UnekScore::Mean,
        }
    }
}

impl UnekSection {
    /// Range checks, done once when the config is loaded.
    pub fn validate(&self) -> std::result::Result<(), crate::config::Invalid> {
        use crate::config::invalid;
        let k = self;
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
        Ok(())
    }
}
