//! The `[patches]` section: where 64 x 64 patches are cut and how they are masked.

use crate::config::{Invalid, invalid};
use serde::{Deserialize, Serialize};

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
pub(crate) fn default_n_patches() -> usize {
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

impl PatchesConfig {
    /// Range checks of the patch stage.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        let pc = self;
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
        Ok(())
    }
}

fn default_true() -> bool {
    true
}
