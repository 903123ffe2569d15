//! Pretrained models: a trained network exported from the run store into a folder a user can
//! ship, run (`gammabench detect --model DIR`) and score on any sky, and imported back into a
//! run as the `train` stage (`train.pretrained = "DIR"`).
//!
//! A model folder holds:
//! * `model.safetensors`, `normaliser.json`, `config.toml` (the resolved config it was trained
//!   with), `train_log.csv`: what the `train` stage wrote; `train_times.csv`: the epochs'
//!   wall times (from the stage's manifest);
//! * `operating_points.json`: per head of the network (`unek` and `log` on the segmentation
//!   U-Net, `cnet` on Centroid-Net) the `threshold` stage's choice on the validation sky
//!   (`min_score`, the rule, the validation purity and completeness);
//! * `MODEL.json`: the manifest: the network, the train stage's key and the keys of every
//!   training and validation patch set and their SHA-256 (`training_data.hash`), the commit
//!   that trained it, the training cost (wall time summed over the epochs, patches,
//!   epochs), the validation metrics and the SHA-256 of each file.

use crate::config::{DetectorVariant, ExperimentConfig};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest file of a model folder.
pub const MANIFEST_FILE: &str = "MODEL.json";
/// Per-head operating thresholds of a model folder.
pub const OPERATING_POINTS_FILE: &str = "operating_points.json";
/// Files copied from the `train` stage.
pub(crate) const MODEL_FILES: [&str; 4] = [
    crate::train::WEIGHTS_FILE,
    "normaliser.json",
    "config.toml",
    crate::train::LOG_FILE,
];
/// Largest model folder the repository takes.
pub const MAX_MODEL_BYTES: u64 = 10 * 1024 * 1024;

/// The SHA-256 of the files that define a model folder (weights, normaliser, config,
/// operating points): its content key as the `train` stage of a run.
pub fn content_hashes(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for f in [
        crate::train::WEIGHTS_FILE,
        "normaliser.json",
        "config.toml",
        OPERATING_POINTS_FILE,
    ] {
        let p = dir.join(f);
        if p.exists() {
            out.insert(f.to_string(), crate::formats::sha256_file(&p)?);
        } else if f != OPERATING_POINTS_FILE {
            return Err(Error::bad_file(
                &p,
                "missing: not a model folder (see `gammabench export-models`)",
            ));
        }
    }
    Ok(out)
}

/// A model folder's `operating_points.json`, read once: per head, the threshold the
/// `threshold` stage chose on the validation sky and the head settings it was chosen with.
#[derive(Debug, Clone)]
pub struct OperatingPoints {
    path: std::path::PathBuf,
    points: serde_json::Value,
}

impl OperatingPoints {
    /// Reads `dir/operating_points.json`; a folder without one has no operating points.
    pub fn read(dir: &Path) -> Result<Self> {
        let path = dir.join(OPERATING_POINTS_FILE);
        let points = if path.exists() {
            let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
            serde_json::from_str(&text).map_err(|e| Error::bad_file(&path, e))?
        } else {
            serde_json::Value::Null
        };
        Ok(Self { path, points })
    }

    /// The operating threshold of `variant`'s head, if the folder has one. A threshold is on
    /// the scale of its head's scores, so `head` (the grid point's head section,
    /// `detect::stage::head_config(cfg)["head"]`) must be the one it was chosen with (else an
    /// error naming the differing section).
    pub fn threshold(
        &self,
        variant: DetectorVariant,
        head: &serde_json::Value,
    ) -> Result<Option<f64>> {
        let Some(h) = self.points.get(variant.as_str()) else {
            return Ok(None);
        };
        let want = &h["head"];
        if !want.is_null() && want != head {
            return Err(Error::Usage(format!(
                "{}: the {} operating point was chosen with [detect.{}] = {want}; this config has \
                 {head}: use the model's settings (its config.toml) or a fixed threshold",
                self.path.display(),
                variant.as_str(),
                variant.as_str()
            )));
        }
        Ok(Some(h["min_score"].as_f64().unwrap_or(f64::NEG_INFINITY)))
    }

    /// The calibration of `variant`'s scores fitted beside its threshold (`p_real`), if the
    /// folder has one.
    pub fn calibration(
        &self,
        variant: DetectorVariant,
    ) -> Result<Option<crate::calibration::Isotonic>> {
        match self.points.get(variant.as_str()).map(|h| &h["calibration"]) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(c) => serde_json::from_value(c.clone())
                .map(Some)
                .map_err(|e| Error::bad_file(&self.path, e)),
        }
    }

    /// The head settings `head`'s operating point was chosen with, as `--set` assignments
    /// (`detect.<head>.<key>=<value>`), so that `detect --model DIR --head H` runs the head as
    /// it was validated: the folder's `config.toml` is the training config, whose head
    /// sections are the defaults. Empty when there is no operating point for `head`.
    pub fn head_overrides(&self, head: DetectorVariant) -> Vec<String> {
        let Some(section) = self
            .points
            .get(head.as_str())
            .and_then(|h| h["head"].as_object())
        else {
            return Vec::new();
        };
        // JSON scalars and arrays of scalars are TOML values as they are written
        section
            .iter()
            .map(|(k, val)| format!("detect.{}.{k}={val}", head.as_str()))
            .collect()
    }
}

/// [`OperatingPoints::threshold`] of a model folder.
pub fn operating_threshold(
    dir: &Path,
    variant: DetectorVariant,
    head: &serde_json::Value,
) -> Result<Option<f64>> {
    OperatingPoints::read(dir)?.threshold(variant, head)
}

/// Checks that a pretrained model fits the grid point that imports it: the same network
/// (variant family), U-Net shape and energy bins.
pub fn check_fits(dir: &Path, cfg: &ExperimentConfig) -> Result<ExperimentConfig> {
    let trained = super::read_config(&dir.join("config.toml"))?;
    let net = |c: &ExperimentConfig| super::network_of(c.detect.variant);
    if net(&trained) != net(cfg) {
        return Err(Error::Usage(format!(
            "{}: a {} cannot serve the {} head (train.pretrained)",
            dir.display(),
            net(&trained),
            cfg.detect.variant.as_str()
        )));
    }
    if trained.detect.unet != cfg.detect.unet || trained.energy != cfg.energy {
        return Err(Error::Usage(format!(
            "{}: trained with [detect.unet] {:?} and {} energy bins; this config has {:?} and {} \
             (set [detect.unet] and [energy] as the model's config.toml)",
            dir.display(),
            trained.detect.unet.widths,
            trained.energy.n_bins(),
            cfg.detect.unet.widths,
            cfg.energy.n_bins()
        )));
    }
    if net(cfg) == "centroid_net_unet"
        && trained.detect.cnet.max_dist_px != cfg.detect.cnet.max_dist_px
    {
        return Err(Error::Usage(format!(
            "{}: trained with detect.cnet.max_dist_px = {}; this config has {}",
            dir.display(),
            trained.detect.cnet.max_dist_px,
            cfg.detect.cnet.max_dist_px
        )));
    }
    Ok(trained)
}
