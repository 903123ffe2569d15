//! Point-source detectors (issue 5): one [`Detector`] trait, one file per variant.
//!
//! * [`unet_kmeans`] — UNEK: U-Net segmentation then iterative k-means (Panes et al. 2021,
//!   A&A 656 A62, sect. 3.2.1 and app. B, Alg. 1);
//! * [`centroid_net`] — CNET: U-Net with two extra vote-vector channels, votes counted and
//!   peaks kept (Dijkstra et al. 2018, OpenCentroidNet; Panes et al. 2021, sect. 3.2.2);
//! * [`log_blob`] — LoG: U-Net segmentation then Laplacian-of-Gaussian blob detection
//!   (AutoSourceID, Stoppa et al. 2022; Bhattacharyya et al. 2024);
//! * [`ts_baseline`] — the classical Poisson likelihood test statistic on a grid (the method
//!   of the Fermi-LAT catalogs), needing no training.
//!
//! Every detector sees the same input: one Poisson draw of the total Asimov counts per patch,
//! seeded by `(seed, "detect/poisson", patch_id)`, so all variants are scored on the same
//! noisy sky. [`combine`] forms unions and intersections of two detectors' outputs.

pub mod cli;
pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::DetectConfig as Config;
pub mod centroid_net;
pub mod combine;
pub mod ensemble;
pub mod export;
pub mod infer;
pub mod log_blob;
pub mod neural;
pub mod post;
pub mod pretrained;
pub mod stage;
pub mod ts_baseline;
pub mod unet_kmeans;

use crate::config::{DetectorVariant, ExperimentConfig};
use crate::error::{Error, Result};
use crate::formats::fmt_f64;
/// The patches directory reader, now [`crate::patches::set`] (kept under its old path).
pub use crate::patches::set as patches;
pub use crate::patches::set::{Cube, PatchSet, TruthSource, draw_poisson, poisson_counts};
use crate::projection::PatchGeometry;
use std::fmt::Write as _;
use std::path::Path;

/// A detected source.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub patch_id: u64,
    /// Column, sub-pixel (pixel centres at integers).
    pub x_pix: f64,
    /// Row, sub-pixel.
    pub y_pix: f64,
    pub glon_deg: f64,
    pub glat_deg: f64,
    /// Detector-specific confidence (UNEK: mean score in the region; CNET: votes; LoG:
    /// response; TS: the test statistic).
    pub score: f64,
    pub detector: String,
}

#[cfg(test)]
impl Detection {
    /// A test detection at pixel (x, y) of `patch` with `score` (sky position 0, 0).
    pub(crate) fn at(patch: u64, x: f64, y: f64, score: f64) -> Self {
        Detection {
            patch_id: patch,
            x_pix: x,
            y_pix: y,
            glon_deg: 0.0,
            glat_deg: 0.0,
            score,
            detector: "t".into(),
        }
    }
}

/// A position found by a head inside one patch, before sky coordinates are attached.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PixelPeak {
    pub x_pix: f64,
    pub y_pix: f64,
    pub score: f64,
}

pub use crate::train::FitReport;

/// A point-source detector.
pub trait Detector {
    /// Short name written in the `detector` column.
    fn name(&self) -> &str;
    /// Trains on patches with truth (a no-op for detectors that need no training).
    /// `out` receives checkpoints and the training log.
    fn fit(
        &mut self,
        train: &PatchSet,
        out: &Path,
        progress: &indicatif::ProgressBar,
    ) -> Result<FitReport>;
    /// Detects sources in each patch of `patches` (inputs drawn with [`poisson_counts`]).
    fn detect(&self, patches: &PatchSet) -> Result<Vec<Detection>> {
        self.detect_with_progress(patches, &indicatif::ProgressBar::hidden())
    }
    /// [`Detector::detect`] advancing `progress` as patches are done (the same detections).
    fn detect_with_progress(
        &self,
        patches: &PatchSet,
        progress: &indicatif::ProgressBar,
    ) -> Result<Vec<Detection>>;
    /// Saves everything [`load`] needs into `dir`.
    fn save(&self, dir: &Path) -> Result<()>;
}

/// Builds an untrained detector from a config.
pub fn build(config: &ExperimentConfig) -> Result<Box<dyn Detector>> {
    config
        .validate()
        .map_err(|e| Error::Usage(format!("invalid config key `{}`: {}", e.key, e.message)))?;
    Ok(match config.detect.variant {
        DetectorVariant::Ts => Box::new(ts_baseline::TsDetector::new(config)?),
        _ => Box::new(neural::NeuralDetector::new(config)?),
    })
}

/// Loads a saved detector from a model directory (written by [`Detector::save`]).
pub fn load(dir: &Path) -> Result<Box<dyn Detector>> {
    let config = read_config(&dir.join("config.toml"))?;
    load_with(dir, &config)
}

/// A resolved experiment config written by a stage (`config.toml`, `config.resolved.toml`).
pub(crate) fn read_config(path: &Path) -> Result<ExperimentConfig> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::bad_file(path, format!("cannot read: {e}")))?;
    toml::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))
}

/// The detector of model directory `dir` whose config has been read.
fn load_with(dir: &Path, config: &ExperimentConfig) -> Result<Box<dyn Detector>> {
    Ok(match config.detect.variant {
        DetectorVariant::Ts => Box::new(ts_baseline::TsDetector::new(config)?),
        _ => Box::new(neural::NeuralDetector::load(dir, config)?),
    })
}

/// Loads a saved detector ready to search the patches of `patches_dir` (already loaded as
/// `patches`): for the TS baseline this resolves its background model
/// ([`ts_baseline::TsDetector::resolve_background`]) from the sky named in the directory's
/// `config.resolved.toml` (written by the patches stage), computing the background model's
/// `diffuse` stage in `store` if needed.
pub fn load_for_patches(
    model_dir: &Path,
    store: &crate::store::Store,
    patches_dir: &Path,
    patches: &PatchSet,
) -> Result<Box<dyn Detector>> {
    load_for_patches_with(model_dir, &[], store, patches_dir, patches)
}

/// The network a variant's weights belong to: UNEK and LoG share the segmentation U-Net,
/// Centroid-Net has its own (vote channels), TS has none.
pub(crate) fn network_of(v: DetectorVariant) -> &'static str {
    match v {
        DetectorVariant::Unek | DetectorVariant::Log => "segmentation U-Net",
        DetectorVariant::Cnet => "Centroid-Net U-Net",
        DetectorVariant::Ts => "none",
    }
}

/// The model directory's config with `overrides` (`detect.*` keys, `seed` and the backend
/// `train.device`, which runs the same weights elsewhere) applied: the
/// head (`detect.variant`) can change to any head of the same trained network (UNEK <-> LoG on
/// the segmentation U-Net) or to the TS baseline, which needs no network.
pub fn model_config_with(model_dir: &Path, overrides: &[String]) -> Result<ExperimentConfig> {
    let path = model_dir.join("config.toml");
    let trained = read_config(&path)?;
    if overrides.is_empty() {
        return Ok(trained);
    }
    for o in overrides {
        let key = o.split('=').next().unwrap_or("").trim();
        if !(key.starts_with("detect.") || key == "seed" || key == "train.device") {
            return Err(Error::Override {
                assignment: o.clone(),
                message: "detect --set changes only detect.* keys, seed and train.device (the rest is what the network was trained with)".into(),
            });
        }
    }
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::bad_file(&path, format!("cannot read: {e}")))?;
    let mut points = crate::config::load_text(&path.display().to_string(), &text, overrides)?;
    if points.len() != 1 {
        return Err(Error::Usage(format!(
            "detect --set must name one value per key, got a grid of {} points",
            points.len()
        )));
    }
    let config = points.remove(0).config;
    let (was, now) = (trained.detect.variant, config.detect.variant);
    if now != DetectorVariant::Ts && network_of(was) != network_of(now) {
        return Err(Error::Usage(format!(
            "{}: trained for {} ({}); head {} needs the {}",
            model_dir.display(),
            was.as_str(),
            network_of(was),
            now.as_str(),
            network_of(now)
        )));
    }
    Ok(config)
}

/// [`load_for_patches`] with `detect --set` overrides (see [`model_config_with`]).
pub fn load_for_patches_with(
    model_dir: &Path,
    overrides: &[String],
    store: &crate::store::Store,
    patches_dir: &Path,
    patches: &PatchSet,
) -> Result<Box<dyn Detector>> {
    let config = model_config_with(model_dir, overrides)?;
    if config.detect.variant != DetectorVariant::Ts {
        return load_with(model_dir, &config);
    }
    if patches.observed {
        return Err(Error::Usage(format!(
            "{}: {}",
            patches_dir.display(),
            ts_baseline::OBSERVED_REFUSAL
        )));
    }
    let pc_path = patches_dir.join("config.resolved.toml");
    let patches_cfg = if pc_path.exists() {
        Some(read_config(&pc_path)?)
    } else {
        None
    };
    let mut ts = ts_baseline::TsDetector::new(&config)?;
    let label = ts.resolve_background(store, patches_cfg.as_ref(), patches_dir, patches)?;
    log::info!("TS background model: {label}");
    Ok(Box::new(ts))
}

/// Writes the resolved config of a detector into a model directory.
pub(crate) fn save_config(dir: &Path, config: &ExperimentConfig) -> Result<()> {
    let text = crate::formats::to_toml_pretty(config)?;
    crate::formats::atomic_write(&dir.join("config.toml"), text.as_bytes())
}

/// Attaches sky coordinates to the peaks found in patch `index`.
pub fn to_detections(
    patches: &PatchSet,
    index: usize,
    peaks: &[PixelPeak],
    detector: &str,
) -> Vec<Detection> {
    let geom = PatchGeometry {
        size: patches.size(),
        ..PatchGeometry::default()
    };
    let (l0, b0) = patches.centres_deg[index];
    peaks
        .iter()
        .map(|p| {
            let (l, b) = geom.pix_to_sky(l0, b0, p.x_pix, p.y_pix);
            Detection {
                patch_id: patches.patch_ids[index],
                x_pix: p.x_pix,
                y_pix: p.y_pix,
                glon_deg: l,
                glat_deg: b,
                score: p.score,
                detector: detector.to_string(),
            }
        })
        .collect()
}

/// Writes `detections.csv` (`patch_id,x_pix,y_pix,glon_deg,glat_deg,score,detector`) and the
/// published format `detections_published.csv` (`image_nr,centroid_y,centroid_x,class_id,
/// probability`; class_id 0 since detection carries no class, probability the score clipped
/// to [0, 1] for the U-Net heads and 1 for TS/CNET whose scores are not probabilities).
pub fn write_detections(dir: &Path, dets: &[Detection]) -> Result<()> {
    write_detections_with(dir, dets, &ExtraColumns::default())
}

/// Per-detection columns of `detections.csv` beyond the detector's own, in this order
/// after `detector`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ExtraColumns<'a> {
    /// `p_real`: the calibrated probability that the detection is real
    /// ([`crate::calibration`]).
    pub p_real: Option<&'a [f64]>,
    /// `position_err_deg,score_err,n_members`: an ensemble's spread over its members
    /// ([`ensemble::Spread`]).
    pub spread: Option<&'a [ensemble::Spread]>,
}

/// [`write_detections`] with [`ExtraColumns`].
pub fn write_detections_with(dir: &Path, dets: &[Detection], extra: &ExtraColumns) -> Result<()> {
    let mut s = String::from("patch_id,x_pix,y_pix,glon_deg,glat_deg,score,detector");
    if extra.p_real.is_some() {
        s.push_str(",p_real");
    }
    if extra.spread.is_some() {
        s.push_str(",position_err_deg,score_err,n_members");
    }
    s.push('\n');
    let mut p = String::from("image_nr,centroid_y,centroid_x,class_id,probability\n");
    for (i, d) in dets.iter().enumerate() {
        let _ = write!(
            s,
            "{},{},{},{},{},{},{}",
            d.patch_id,
            fmt_f64(d.x_pix),
            fmt_f64(d.y_pix),
            fmt_f64(d.glon_deg),
            fmt_f64(d.glat_deg),
            fmt_f64(d.score),
            d.detector
        );
        if let Some(p) = extra.p_real {
            let _ = write!(s, ",{}", fmt_f64(p.get(i).copied().unwrap_or(f64::NAN)));
        }
        if let Some(sp) = extra.spread {
            match sp.get(i) {
                Some(sp) => {
                    let _ = write!(
                        s,
                        ",{},{},{}",
                        fmt_f64(sp.position_err_deg),
                        fmt_f64(sp.score_err),
                        sp.n_members
                    );
                }
                None => s.push_str(",,,0"),
            }
        }
        s.push('\n');
        let prob = if d.score <= 1.0 {
            d.score.max(0.0)
        } else {
            1.0
        };
        let _ = writeln!(
            p,
            "{},{},{},0,{}",
            d.patch_id,
            fmt_f64(d.y_pix),
            fmt_f64(d.x_pix),
            fmt_f64(prob)
        );
    }
    crate::formats::atomic_write(&dir.join("detections.csv"), s.as_bytes())?;
    crate::formats::atomic_write(&dir.join("detections_published.csv"), p.as_bytes())
}

/// Reads a `detections.csv` written by [`write_detections`].
pub fn read_detections(path: &Path) -> Result<Vec<Detection>> {
    let mut r = crate::formats::csv_reader(path)?;
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let rec = rec.map_err(|e| Error::bad_file(path, e.to_string()))?;
        let f = |c: usize, name: &str| -> Result<f64> {
            rec.get(c)
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| Error::Data {
                    file: path.display().to_string(),
                    line: i + 2,
                    column: c + 1,
                    field: name.into(),
                    message: "not a number".into(),
                })
        };
        out.push(Detection {
            patch_id: f(0, "patch_id")? as u64,
            x_pix: f(1, "x_pix")?,
            y_pix: f(2, "y_pix")?,
            glon_deg: f(3, "glon_deg")?,
            glat_deg: f(4, "glat_deg")?,
            score: f(5, "score")?,
            detector: rec.get(6).unwrap_or("").to_string(),
        });
    }
    Ok(out)
}

/// Pixels of a `size x size` map that are local maxima over a `(2h+1)^2` window and at least
/// `threshold`; ties are broken towards the first pixel in row-major order. Returns `(y, x)`.
pub fn local_maxima(map: &[f64], size: usize, half: usize, threshold: f64) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for y in 0..size {
        for x in 0..size {
            let v = map[y * size + x];
            if v.is_nan() || v < threshold {
                continue;
            }
            let mut is_max = true;
            'w: for yy in y.saturating_sub(half)..=(y + half).min(size - 1) {
                for xx in x.saturating_sub(half)..=(x + half).min(size - 1) {
                    let o = map[yy * size + xx];
                    let earlier = (yy, xx) < (y, x);
                    if o > v || (o == v && earlier) {
                        is_max = false;
                        break 'w;
                    }
                }
            }
            if is_max {
                out.push((y, x));
            }
        }
    }
    out
}

/// Sub-pixel refinement of a peak at `(y, x)`: the vertex of a parabola through the three
/// values along each axis, clamped to half a pixel.
pub fn refine_parabolic(map: &[f64], size: usize, y: usize, x: usize) -> (f64, f64) {
    let at = |yy: usize, xx: usize| map[yy * size + xx];
    let off = |m: f64, c: f64, p: f64| {
        let d = m - 2.0 * c + p;
        if d < 0.0 {
            (0.5 * (m - p) / d).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    };
    let dx = if x > 0 && x + 1 < size {
        off(at(y, x - 1), at(y, x), at(y, x + 1))
    } else {
        0.0
    };
    let dy = if y > 0 && y + 1 < size {
        off(at(y - 1, x), at(y, x), at(y + 1, x))
    } else {
        0.0
    };
    (x as f64 + dx, y as f64 + dy)
}
