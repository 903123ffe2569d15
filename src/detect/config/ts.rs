//! `[detect.ts]`: the likelihood TS baseline, `ts_baseline.rs`.

use serde::{Deserialize, Serialize};

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
    #[serde(default = "crate::sky::config::default_iem")]
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
            background_iem: crate::sky::config::default_iem(),
            background_patches: String::new(),
            spectral_index: default_ts_index(),
            support_r68: default_ts_support(),
        }
    }
}

impl TsSection {
    /// Range checks, done once when the config is loaded.
    pub fn validate(&self) -> std::result::Result<(), crate::config::Invalid> {
        use crate::config::invalid;
        let t = self;
        if !(t.threshold.is_finite() && t.threshold > 0.0) {
            return Err(invalid("detect.ts.threshold", "must be > 0"));
        }
        if !(t.spectral_index.is_finite() && (0.5..=5.0).contains(&t.spectral_index)) {
            return Err(invalid("detect.ts.spectral_index", "must be in [0.5, 5]"));
        }
        if !(t.support_r68.is_finite() && (0.5..=10.0).contains(&t.support_r68)) {
            return Err(invalid("detect.ts.support_r68", "must be in [0.5, 10]"));
        }
        if !t.background_iem.is_empty() && !crate::sky::config::is_iem_name(&t.background_iem) {
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
