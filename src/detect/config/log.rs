//! `[detect.log]`: the Laplacian-of-Gaussian head, `log_blob.rs` (AutoSourceID).

use serde::{Deserialize, Serialize};

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

impl LogSection {
    /// Range checks, done once when the config is loaded.
    pub fn validate(&self) -> std::result::Result<(), crate::config::Invalid> {
        use crate::config::invalid;
        let l = self;
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
        Ok(())
    }
}
