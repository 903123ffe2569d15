//! `[detect.unet]`: the shared U-Net of UNEK, LoG and CNET (Panes et al. 2021, Fig. 3).

use serde::{Deserialize, Serialize};

/// U-Net shape and targets (Panes et al. 2021, Fig. 3).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct UnetSection {
    /// Filters per level, top to bottleneck; `len - 1` pooling stages (published: 16..256).
    #[serde(default = "default_widths")]
    pub widths: Vec<usize>,
    /// Input normalisation.
    #[serde(default = "default_norm")]
    pub normalisation: super::Normalisation,
    /// Radius of the target disks around each source, px.
    #[serde(default = "default_disk")]
    pub disk_radius_px: f64,
}

fn default_widths() -> Vec<usize> {
    vec![16, 32, 64, 128, 256]
}
fn default_norm() -> super::Normalisation {
    super::Normalisation::Log1p
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

impl UnetSection {
    /// Range checks, done once when the config is loaded.
    pub fn validate(&self) -> std::result::Result<(), crate::config::Invalid> {
        use crate::config::invalid;
        let u = self;
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
        Ok(())
    }
}
