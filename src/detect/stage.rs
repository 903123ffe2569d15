//! The detector stages of the experiment runner.
//!
//! * `train`: fits the configured detector (`detect.variant`) on the training sky of
//!   `[train.data]` (the paper's F0-B1: its own catalog, sky and random-centre patches
//!   stages, shared by every test sky of the grid). The TS baseline needs no training; its
//!   `train` stage only records its configuration, so every variant has a model directory.
//! * `detect`: applies a trained model with the grid point's head (UNEK and LoG share one
//!   segmentation U-Net) to the grid point's (test) patches and writes
//!   `detections.csv` and the published format `detections_published.csv`.
//!
//! Both keys are computable before anything runs: `train` depends on the network kind, the
//! U-Net shape, `[train]`, the energy bins and the training patches' key; `detect` on the
//! variant's head section, the model's and the test patches' keys.

use super::{Detector, PatchSet};
use crate::config::{DetectorVariant, ExperimentConfig};
use crate::error::Result;
use crate::store::{StageKey, StageOutput, Store};
use std::time::Instant;

/// True when the variant learns from patches.
fn trains(cfg: &ExperimentConfig) -> bool {
    cfg.detect.variant != DetectorVariant::Ts
}

/// The content key of the `train` stage.
pub fn train_key(cfg: &ExperimentConfig) -> Result<StageKey> {
    let mut inputs = std::collections::BTreeMap::new();
    if trains(cfg) {
        if cfg.train.patches.is_empty() {
            let data = cfg.training_data_config();
            inputs.insert(
                "patches".to_string(),
                crate::patches::stage_key(&data)?.hash(),
            );
        } else {
            // An external directory: the store cannot see its contents, only its path.
            inputs.insert("patches_dir".to_string(), cfg.train.patches.clone());
        }
    }
    Ok(StageKey {
        stage: "train".into(),
        config: serde_json::json!({
            "energy": cfg.energy,
            "network": network(cfg),
            "unet": if trains(cfg) { serde_json::to_value(&cfg.detect.unet).unwrap_or_default() } else { serde_json::Value::Null },
            "cnet": if cfg.detect.variant == DetectorVariant::Cnet { serde_json::to_value(&cfg.detect.cnet).unwrap_or_default() } else { serde_json::Value::Null },
            "train": if trains(cfg) { serde_json::to_value(&cfg.train).unwrap_or_default() } else { serde_json::Value::Null },
        }),
        inputs,
        seed: cfg.seed,
    })
}

/// What the `train` stage trains: UNEK and LoG are two heads on one segmentation U-Net, so
/// they share a trained network; Centroid-Net has its own (two extra vote channels); the TS
/// baseline none.
pub fn network(cfg: &ExperimentConfig) -> &'static str {
    match cfg.detect.variant {
        DetectorVariant::Unek | DetectorVariant::Log => "segmentation_unet",
        DetectorVariant::Cnet => "centroid_net_unet",
        DetectorVariant::Ts => "none",
    }
}

/// The content key of the `detect` stage.
pub fn detect_key(cfg: &ExperimentConfig) -> Result<StageKey> {
    let mut inputs: std::collections::BTreeMap<String, String> = [
        ("model".to_string(), train_key(cfg)?.hash()),
        (
            "patches".to_string(),
            crate::patches::stage_key(cfg)?.hash(),
        ),
    ]
    .into();
    if let Some(bcfg) = ts_background_config(cfg) {
        inputs.insert(
            "background_diffuse".to_string(),
            background_diffuse_key(&bcfg)?.hash(),
        );
    }
    Ok(StageKey {
        stage: "detect".into(),
        config: head_config(cfg),
        inputs,
        seed: cfg.seed,
    })
}

/// The config of the TS baseline's background model when it is another emission model's
/// diffuse stage (see [`super::ts_baseline::background_config`]); `None` for other variants,
/// an external `background_patches` directory, or the patches' own diffuse.
pub fn ts_background_config(cfg: &ExperimentConfig) -> Option<ExperimentConfig> {
    let ts = &cfg.detect.ts;
    if cfg.detect.variant != DetectorVariant::Ts || !ts.background_patches.is_empty() {
        return None;
    }
    super::ts_baseline::background_config(ts, cfg)
}

/// The key of the `diffuse` stage of a background config.
pub fn background_diffuse_key(bcfg: &ExperimentConfig) -> Result<StageKey> {
    let model = crate::sky::iem::IemModel::load(&bcfg.sky.iem)?;
    Ok(crate::sky::diffuse_key(bcfg, &model))
}

/// The head's slice of `[detect]`: the variant and its own section (the network's part is in
/// the `train` key).
pub fn head_config(cfg: &ExperimentConfig) -> serde_json::Value {
    let d = &cfg.detect;
    let section = match d.variant {
        DetectorVariant::Unek => serde_json::to_value(&d.unek),
        DetectorVariant::Cnet => serde_json::to_value(&d.cnet),
        DetectorVariant::Log => serde_json::to_value(&d.log),
        DetectorVariant::Ts => {
            // The background as resolved: naming the sky's own model is the same stage as
            // leaving it empty.
            let mut ts = d.ts.clone();
            if ts.background_patches.is_empty() && ts_background_config(cfg).is_none() {
                ts.background_iem.clear();
            }
            serde_json::to_value(&ts)
        }
    }
    .unwrap_or_default();
    serde_json::json!({ "variant": d.variant, "head": section })
}

/// Runs (or reuses) the `train` stage, building the training patches first if needed.
pub fn run_train(
    store: &Store,
    cfg: &ExperimentConfig,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<StageOutput> {
    let key = train_key(cfg)?;
    if !force && let Some(o) = store.lookup_verified(&key) {
        return Ok(o);
    }
    let (set, data_label) = if !trains(cfg) {
        (
            PatchSet::empty(
                crate::projection::PatchGeometry::default().size,
                cfg.energy.n_bins(),
            ),
            String::new(),
        )
    } else if cfg.train.patches.is_empty() {
        let data = cfg.training_data_config();
        let p = crate::patches::run(store, &data, false, progress)?;
        (
            PatchSet::load(&p.dir, cfg.train.max_patches)?,
            format!("{:?}-{}", cfg.train.data.preset, cfg.train.data.iem),
        )
    } else {
        (
            PatchSet::load(
                std::path::Path::new(&cfg.train.patches),
                cfg.train.max_patches,
            )?,
            cfg.train.patches.clone(),
        )
    };
    store.run_stage(&key, force, |dir| {
        let mut det: Box<dyn Detector> = super::build(cfg)?;
        let r = det.fit(&set, dir, progress)?;
        det.save(dir)?;
        Ok(serde_json::json!({
            "network": network(cfg),
            "trained_on": data_label,
            "n_train_patches": set.len(),
            "epochs_run": r.epochs_run,
            "best_epoch": r.best_epoch,
            "best_val_loss": crate::formats::finite_or_null(r.best_val_loss),
            "first_train_loss": crate::formats::finite_or_null(r.first_train_loss),
            "last_train_loss": crate::formats::finite_or_null(r.last_train_loss),
            "train_time_s": r.wall_time_s,
        }))
    })
}

/// Runs (or reuses) the `detect` stage on the grid point's patches.
pub fn run_detect(
    store: &Store,
    cfg: &ExperimentConfig,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<StageOutput> {
    let key = detect_key(cfg)?;
    if !force && let Some(o) = store.lookup_verified(&key) {
        return Ok(o);
    }
    let model = run_train(store, cfg, false, progress)?;
    let patches = crate::patches::run(store, cfg, false, progress)?;
    if let Some(bcfg) = ts_background_config(cfg) {
        let iem = crate::sky::iem::IemModel::load(&bcfg.sky.iem)?;
        crate::sky::run_diffuse(store, &bcfg, &iem, false)?;
    }
    store.run_stage(&key, force, |dir| {
        // The grid point's config picks the head (a segmentation U-Net serves UNEK and LoG).
        let set = PatchSet::load(&patches.dir, 0)?;
        let mut background = serde_json::Value::Null;
        let det: Box<dyn Detector> = match cfg.detect.variant {
            DetectorVariant::Ts => {
                let mut ts = super::ts_baseline::TsDetector::new(cfg)?;
                background = ts
                    .resolve_background(store, Some(cfg), &patches.dir, &set)?
                    .into();
                Box::new(ts)
            }
            _ => Box::new(super::neural::NeuralDetector::load(&model.dir, cfg)?),
        };
        let t0 = Instant::now();
        let dets = det.detect_with_progress(&set, progress)?;
        let secs = t0.elapsed().as_secs_f64();
        super::write_detections(dir, &dets)?;
        Ok(serde_json::json!({
            "detector": cfg.detect.variant.as_str(),
            "background": background,
            "n_patches": set.len(),
            "n_detections": dets.len(),
            "detect_s": secs,
            "patches_per_s": set.len() as f64 / secs.max(1e-9),
        }))
    })
}

/// The `train` stage: one network trained on the training sky of `[train.data]` (or on
/// `train.patches`); the TS baseline "trains" nothing and stores only its config.
pub struct TrainStage;

impl crate::stage::Stage for TrainStage {
    fn name(&self) -> &'static str {
        "train"
    }
    fn about(&self) -> &'static str {
        "trains the detector's network (U-Net for UNEK/LoG, Centroid-Net for CNET) on the training sky"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &[
            "model.safetensors",
            "normaliser.json",
            "config.toml",
            "train_log.csv",
            "checkpoint/",
        ]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        _label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        if !trains(cfg) || !cfg.train.patches.is_empty() {
            return Ok(vec![]);
        }
        let d = &cfg.train.data;
        Ok(vec![crate::stage::Input {
            stage: "patches",
            config: std::sync::Arc::new(cfg.training_data_config()),
            label: format!("train-sky {:?}-{} n={}", d.preset, d.iem, d.n_patches),
        }])
    }
    fn key(&self, cfg: &ExperimentConfig) -> Result<StageKey> {
        train_key(cfg)
    }
    fn run(
        &self,
        store: &Store,
        cfg: &ExperimentConfig,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<StageOutput> {
        run_train(store, cfg, force, progress)
    }
    fn label(&self, cfg: &ExperimentConfig, _point_label: &str) -> String {
        if !trains(cfg) || !cfg.train.patches.is_empty() {
            network(cfg).to_string()
        } else {
            let d = &cfg.train.data;
            format!("{} on {:?}-{}", network(cfg), d.preset, d.iem)
        }
    }
    fn describe(&self, out: &StageOutput) -> String {
        let s = &out.manifest.summary;
        format!(
            "{} on {} patches, {} epochs (best {}), {:.1} s",
            s["network"].as_str().unwrap_or("?"),
            s["n_train_patches"],
            s["epochs_run"],
            s["best_epoch"],
            s["train_time_s"].as_f64().unwrap_or(f64::NAN)
        )
    }
}

/// The `detect` stage: a trained detector (or the TS baseline) run on a grid point's test
/// patches.
pub struct DetectStage;

impl crate::stage::Stage for DetectStage {
    fn name(&self) -> &'static str {
        "detect"
    }
    fn about(&self) -> &'static str {
        "runs a detector head (UNEK, CNET, LoG or the TS baseline) on the test patches"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &["detections.csv", "detections_published.csv"]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        let mut v = vec![
            crate::stage::Input::same("train", cfg, label),
            crate::stage::Input::same("patches", cfg, label),
        ];
        if let Some(bcfg) = ts_background_config(cfg) {
            // The TS baseline's background model: another emission model's diffuse map.
            v.push(crate::stage::Input {
                stage: "diffuse",
                label: bcfg.sky.iem.clone(),
                config: std::sync::Arc::new(bcfg),
            });
        }
        Ok(v)
    }
    fn key(&self, cfg: &ExperimentConfig) -> Result<StageKey> {
        detect_key(cfg)
    }
    fn run(
        &self,
        store: &Store,
        cfg: &ExperimentConfig,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<StageOutput> {
        run_detect(store, cfg, force, progress)
    }
    fn describe(&self, out: &StageOutput) -> String {
        let s = &out.manifest.summary;
        format!(
            "{}: {} detections in {} patches ({:.1} patches/s)",
            s["detector"].as_str().unwrap_or("?"),
            s["n_detections"],
            s["n_patches"],
            s["patches_per_s"].as_f64().unwrap_or(f64::NAN)
        )
    }
}
