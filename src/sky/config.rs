//! The `[sky]` section: instrument, emission model and HEALPix maps.

use crate::config::{Invalid, invalid};
use serde::{Deserialize, Serialize};

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

/// True for an emission model name the sky stage can load: an embedded model or a `.toml`.
pub fn is_iem_name(name: &str) -> bool {
    ["B1", "B2", "B3"].contains(&name) || name.ends_with(".toml")
}

pub(crate) fn default_iem() -> String {
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

impl SkyConfig {
    /// Range checks of the sky stage (memory is checked with the patches, in
    /// [`crate::config::ExperimentConfig::validate`]).
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        let k = self;
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
        Ok(())
    }
}

fn default_true() -> bool {
    true
}
