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
pub(crate) fn trains(cfg: &ExperimentConfig) -> bool {
    cfg.detect.variant != DetectorVariant::Ts
}

/// The content key of the `train` stage.
pub fn train_key(cfg: &ExperimentConfig) -> Result<StageKey> {
    if trains(cfg) && !cfg.train.pretrained.is_empty() {
        // An imported model: its files are the key (the folder can move).
        let files = super::pretrained::content_hashes(std::path::Path::new(&cfg.train.pretrained))?;
        return Ok(StageKey {
            stage: "train".into(),
            config: serde_json::json!({ "network": network(cfg), "pretrained": files }),
            inputs: Default::default(),
            seed: 0,
        });
    }
    let mut inputs = std::collections::BTreeMap::new();
    if trains(cfg) {
        if cfg.train.patches.is_empty() {
            // Realisation 0 keeps the key name of a one-realisation training sky.
            for (r, data) in cfg.training_data_configs().iter().enumerate() {
                let name = if r == 0 {
                    "patches".to_string()
                } else {
                    format!("patches_{r}")
                };
                inputs.insert(name, crate::patches::stage_key(data)?.hash());
            }
            if let Some(v) = cfg.validation_data_config() {
                inputs.insert(
                    "validation_patches".to_string(),
                    crate::patches::stage_key(&v)?.hash(),
                );
            }
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
            // what the Centroid-Net training reads (its vote targets and loss), not the head
            "cnet": if cfg.detect.variant == DetectorVariant::Cnet { serde_json::json!({ "max_dist_px": cfg.detect.cnet.max_dist_px, "vector_loss_weight": cfg.detect.cnet.vector_loss_weight }) } else { serde_json::Value::Null },
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

/// The member configs of an ensemble grid point (`detect.ensemble`): the point's config
/// with `train.fold = f` for every fold `f`, each an ordinary cross-validated point.
pub fn ensemble_members(cfg: &ExperimentConfig) -> Vec<ExperimentConfig> {
    (0..cfg.train.folds)
        .map(|f| {
            let mut c = cfg.clone();
            c.train.fold = f;
            c.detect.ensemble = false;
            c
        })
        .collect()
}

/// The label of an ensemble point's member `fold`: the fold point's own label (members are
/// the grid's fold points, so their stages are one node of the plan).
pub fn member_label(ensemble_label: &str, fold: usize) -> String {
    format!(
        "{},fold={fold}",
        ensemble_label.replace("ensemble=true", "ensemble=false")
    )
}

/// The content key of the `detect` stage.
pub fn detect_key(cfg: &ExperimentConfig) -> Result<StageKey> {
    if cfg.detect.ensemble {
        let mut inputs = std::collections::BTreeMap::new();
        inputs.insert(
            "patches".to_string(),
            crate::patches::stage_key(cfg)?.hash(),
        );
        for (f, m) in ensemble_members(cfg).iter().enumerate() {
            inputs.insert(format!("maps_{f}"), infer_key(m)?.hash());
        }
        if tunes(cfg) {
            inputs.insert("threshold".to_string(), threshold_key(cfg)?.hash());
        }
        let mut config = head_config(cfg);
        config["ensemble"] = cfg.train.folds.into();
        return Ok(StageKey {
            stage: "detect".into(),
            config,
            inputs,
            seed: cfg.seed,
        });
    }
    // a network's detector reads its maps (whose key holds the model's), the TS baseline its
    // train stage's record
    let model = if infer_applies(cfg) {
        ("maps".to_string(), infer_key(cfg)?.hash())
    } else {
        ("model".to_string(), train_key(cfg)?.hash())
    };
    let mut inputs: std::collections::BTreeMap<String, String> = [
        model,
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
    if tunes(cfg) {
        inputs.insert("threshold".to_string(), threshold_key(cfg)?.hash());
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

/// True when the grid point's operating threshold is chosen on the validation sky by the
/// `threshold` stage (`detect.post.threshold = "validation"`; the TS baseline keeps its
/// Wilks threshold `detect.ts`, so it never tunes).
pub fn tunes(cfg: &ExperimentConfig) -> bool {
    trains(cfg) && cfg.detect.post.threshold == crate::detect::config::ThresholdSource::Validation
}

/// The validation sky's config, or the error a `threshold = "validation"` without one gets.
pub fn validation_config(cfg: &ExperimentConfig) -> Result<ExperimentConfig> {
    cfg.validation_data_config().ok_or_else(|| {
        crate::error::Error::Usage(
            "detect.post.threshold = \"validation\" needs a validation sky: set \
             train.data.validation_patches > 0"
                .into(),
        )
    })
}

/// The content key of the `threshold` stage: the model, the validation patches, the head
/// (with `[detect.post]`) and the scorer's matching rule.
/// A cross-validated point validates on its held-out fold, which its model's key (the
/// training sky, `train.folds`, `train.fold`) already fixes.
pub fn threshold_key(cfg: &ExperimentConfig) -> Result<StageKey> {
    if cfg.detect.ensemble {
        // cross-fitted on the members' held-out folds (`score::threshold`)
        let mut inputs = std::collections::BTreeMap::new();
        for (f, m) in ensemble_members(cfg).iter().enumerate() {
            inputs.insert(format!("model_{f}"), train_key(m)?.hash());
        }
        return Ok(StageKey {
            stage: "threshold".into(),
            config: serde_json::json!({
                "head": head_config(cfg),
                "post": cfg.detect.post,
                "match": { "mode": cfg.score.mode, "radius_deg": cfg.score.match_radius_deg },
                "calibration": crate::calibration::METHOD,
                "min_tp_for_purity": super::config::MIN_TP_FOR_PURITY,
                "ensemble": cfg.train.folds,
                "cross_fit": crate::detect::config::CROSS_FIT,
            }),
            inputs,
            seed: cfg.seed,
        });
    }
    let mut inputs: std::collections::BTreeMap<String, String> =
        [("model".to_string(), train_key(cfg)?.hash())].into();
    if !cfg.train.cross_validates() {
        let v = validation_config(cfg)?;
        inputs.insert(
            "validation_patches".to_string(),
            crate::patches::stage_key(&v)?.hash(),
        );
    }
    Ok(StageKey {
        stage: "threshold".into(),
        config: serde_json::json!({
            "head": head_config(cfg),
            "post": cfg.detect.post,
            "match": { "mode": cfg.score.mode, "radius_deg": cfg.score.match_radius_deg },
            // it also fits the score's calibration (`calibration.json`)
            "calibration": crate::calibration::METHOD,
            "min_tp_for_purity": super::config::MIN_TP_FOR_PURITY,
        }),
        inputs,
        seed: cfg.seed,
    })
}

/// File of the `threshold` stage with the chosen operating point.
pub const OPERATING_POINT_FILE: &str = "operating_point.json";

/// The operating threshold of a `threshold` stage's output (`-inf` when it keeps all).
pub fn read_operating_threshold(dir: &std::path::Path) -> Result<f64> {
    let p = dir.join(OPERATING_POINT_FILE);
    let text = std::fs::read_to_string(&p).map_err(|e| crate::error::Error::io(&p, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| crate::error::Error::bad_file(&p, e))?;
    Ok(v["min_score"].as_f64().unwrap_or(f64::NEG_INFINITY))
}

/// The head's slice of `[detect]`: the variant and its own section (the network's part is in
/// the `train` key), and `[detect.post]` when it is not the default.
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
    let mut v = serde_json::json!({ "variant": d.variant, "head": section });
    // `[detect.post]` follows the trained heads; the TS baseline has its own threshold
    // (TS >= 25) and peak suppression.
    if trains(cfg) && !d.post.is_default() {
        v["post"] = serde_json::to_value(&d.post).unwrap_or_default();
    }
    v
}

/// The training sky of `[train.data]` (its realisations' patches stages, run if needed) as
/// one set ([`PatchSet::concat`]: realisation `r`'s patch ids offset by `r << 32`), the first
/// `train.max_patches`, and the stage directories it came from in realisation order.
pub fn training_sky(
    store: &Store,
    cfg: &ExperimentConfig,
    progress: &indicatif::ProgressBar,
) -> Result<(PatchSet, Vec<std::path::PathBuf>)> {
    let mut sets = Vec::new();
    let mut dirs = Vec::new();
    for data in cfg.training_data_configs() {
        let p = crate::patches::run(store, &data, false, progress)?;
        sets.push(PatchSet::load(&p.dir, 0)?);
        dirs.push(p.dir);
    }
    let mut set = PatchSet::concat(sets)?;
    if cfg.train.max_patches > 0 && cfg.train.max_patches < set.len() {
        set = set.select(&(0..cfg.train.max_patches).collect::<Vec<_>>());
    }
    Ok((set, dirs))
}

/// The held-out fold of a cross-validated grid point (`train.folds >= 2`) with its truth
/// table (every realisation's `truth.csv`, patch ids offset as in [`training_sky`]): what
/// the `threshold` stage validates on.
pub fn held_out_fold(
    store: &Store,
    cfg: &ExperimentConfig,
    progress: &indicatif::ProgressBar,
) -> Result<(PatchSet, Vec<crate::patches::truth::TruthRow>)> {
    if !cfg.train.patches.is_empty() {
        return Err(crate::error::Error::Usage(
            "train.folds needs the runner's training sky ([train.data]), not train.patches".into(),
        ));
    }
    let (sky, truth) = training_sky_with_truth(store, cfg, progress)?;
    Ok(held_out_of(&sky, &truth, cfg))
}

/// The training sky ([`training_sky`]) and its truth (every realisation's `truth.csv`, patch
/// ids offset as the sky's).
pub fn training_sky_with_truth(
    store: &Store,
    cfg: &ExperimentConfig,
    progress: &indicatif::ProgressBar,
) -> Result<(PatchSet, Vec<crate::patches::truth::TruthRow>)> {
    if !cfg.train.patches.is_empty() {
        return Err(crate::error::Error::Usage(
            "train.folds needs the runner's training sky ([train.data]), not train.patches".into(),
        ));
    }
    let (set, dirs) = training_sky(store, cfg, progress)?;
    let mut rows = Vec::new();
    for (r, dir) in dirs.iter().enumerate() {
        let t = crate::patches::truth::read_truth(
            &dir.join("truth.csv"),
            Some(&dir.join("patches.csv")),
        )?;
        let offset = (r as i64) << 32;
        rows.extend(t.rows.into_iter().map(|mut row| {
            row.patch_id += offset;
            row
        }));
    }
    Ok((set, rows))
}

/// Fold `cfg.train.fold`'s held-out patches of a training sky and their rows of its truth.
pub fn held_out_of(
    sky: &PatchSet,
    truth: &[crate::patches::truth::TruthRow],
    cfg: &ExperimentConfig,
) -> (PatchSet, Vec<crate::patches::truth::TruthRow>) {
    let (_, held) = crate::train::data::cv_rows(sky, &cfg.train, cfg.seed);
    let held = sky.select(&held);
    let ids: std::collections::HashSet<i64> = held.patch_ids.iter().map(|&id| id as i64).collect();
    let rows = truth
        .iter()
        .filter(|r| ids.contains(&r.patch_id))
        .cloned()
        .collect();
    (held, rows)
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
    if trains(cfg) && !cfg.train.pretrained.is_empty() {
        return import_pretrained(store, cfg, &key, force);
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
        (
            training_sky(store, cfg, progress)?.0,
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
    // a cross-validated network trains on the other folds and validates on its own; else
    // the validation sky (or a `validation_fraction` split inside the training loop)
    let (set, validation) = if trains(cfg) && cfg.train.cross_validates() {
        let (train_rows, held_out) = crate::train::data::cv_rows(&set, &cfg.train, cfg.seed);
        log::info!(
            "fold {} of {}: {} training patches ({} dropped within the overlap buffer), {} held out",
            cfg.train.fold,
            cfg.train.folds,
            train_rows.len(),
            set.len() - train_rows.len() - held_out.len(),
            held_out.len()
        );
        if train_rows.is_empty() || held_out.is_empty() {
            return Err(crate::error::Error::Usage(format!(
                "train.folds = {}: fold {} has {} training and {} held-out patches; use fewer \
                 folds, a finer train.fold_nside or more training patches",
                cfg.train.folds,
                cfg.train.fold,
                train_rows.len(),
                held_out.len()
            )));
        }
        (set.select(&train_rows), Some(set.select(&held_out)))
    } else {
        let validation = match cfg.validation_data_config() {
            Some(v) if trains(cfg) => {
                let p = crate::patches::run(store, &v, false, progress)?;
                Some(PatchSet::load(&p.dir, 0)?)
            }
            _ => None,
        };
        (set, validation)
    };
    let n_validation = validation.as_ref().map_or(0, |v| v.len());
    // A network trains in a work directory that outlives a killed run (`.work-<hash>`
    // beside the stage directories): its per-epoch checkpoint lets the next `run` resume
    // where this one stopped, with the same Adam moments and data draws.
    let work = store
        .stage_dir(&key.stage, &key.hash())
        .with_file_name(format!(".work-{}", key.hash()));
    let out = store.run_stage(&key, force, |dir| {
        let mut det: Box<dyn Detector> = if trains(cfg) {
            let mut d = super::neural::NeuralDetector::new(cfg)?;
            d.resume = !force;
            d.validation = validation;
            Box::new(d)
        } else {
            super::build(cfg)?
        };
        let r = if trains(cfg) {
            if force {
                let _ = std::fs::remove_dir_all(&work);
            }
            let r = det.fit(&set, &work, progress)?;
            // The log, not the checkpoint (burn's resume records carry random parameter
            // ids) nor the wall times (in the manifest's summary): every file of the stage
            // is the same bytes on any machine.
            let f = crate::train::LOG_FILE;
            crate::formats::copy_tree(&work.join(f), &dir.join(f))?;
            r
        } else {
            det.fit(&set, dir, progress)?
        };
        det.save(dir)?;
        Ok(serde_json::json!({
            "network": network(cfg),
            "trained_on": data_label,
            "n_train_patches": set.len(),
            "n_validation_patches": n_validation,
            "fold": cfg.train.cross_validates().then_some(cfg.train.fold),
            "folds": cfg.train.cross_validates().then_some(cfg.train.folds),
            "epochs_run": r.epochs_run,
            "best_epoch": r.best_epoch,
            "best_val_loss": crate::formats::finite_or_null(r.best_val_loss),
            "first_train_loss": crate::formats::finite_or_null(r.first_train_loss),
            "last_train_loss": crate::formats::finite_or_null(r.last_train_loss),
            "train_time_s": r.wall_time_s,
            "epoch_time_s": r.epoch_time_s,
        }))
    })?;
    let _ = std::fs::remove_dir_all(&work);
    Ok(out)
}

/// The `train` stage of a pretrained model: its folder copied into the store after
/// [`super::pretrained::check_fits`].
fn import_pretrained(
    store: &Store,
    cfg: &ExperimentConfig,
    key: &StageKey,
    force: bool,
) -> Result<StageOutput> {
    let src = std::path::Path::new(&cfg.train.pretrained);
    super::pretrained::check_fits(src, cfg)?;
    let mp = src.join(super::pretrained::MANIFEST_FILE);
    let manifest: serde_json::Value = match std::fs::read_to_string(&mp) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| crate::error::Error::bad_file(&mp, e))?,
        Err(_) => serde_json::Value::Null,
    };
    store.run_stage(key, force, |dir| {
        crate::formats::copy_tree(src, dir)?;
        let t = &manifest["training"];
        Ok(serde_json::json!({
            "network": network(cfg),
            "pretrained": cfg.train.pretrained,
            "trained_on": manifest["training_data"]["sky"],
            "n_train_patches": manifest["training_data"]["n_patches"],
            "n_validation_patches": manifest["training_data"]["n_validation_patches"],
            "epochs_run": t["epochs_run"],
            "best_epoch": t["best_epoch"],
            "best_val_loss": t["best_val_loss"],
            "train_time_s": t["train_time_s"],
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
    if cfg.detect.ensemble {
        return run_ensemble_detect(store, cfg, &key, force, progress);
    }
    let model = run_train(store, cfg, false, progress)?;
    let operating = if tunes(cfg) {
        // computed before by the planner (or `score::stage::run`): the threshold stage
        // scores, so it sits with the scorer, downstream of this module
        let key = threshold_key(cfg)?;
        let t = store.lookup_verified(&key).ok_or_else(|| {
            crate::error::Error::Usage(format!(
                "the threshold stage {} ({} on the validation sky) is not in the store yet: \
                 `gammabench run` (or `stage detect`) computes it before this detect stage",
                &key.hash()[..12],
                cfg.detect.variant.as_str()
            ))
        })?;
        Some((
            read_operating_threshold(&t.dir)?,
            crate::calibration::read(&t.dir)?,
        ))
    } else if trains(cfg)
        && cfg.detect.post.threshold == crate::detect::config::ThresholdSource::Model
    {
        Some((
            super::pretrained::operating_threshold(
                &model.dir,
                cfg.detect.variant,
                &head_config(cfg)["head"],
            )?.ok_or_else(|| {
                crate::error::Error::Usage(format!(
                    "{}: the pretrained model has no operating point for {} (detect.post.threshold = \"model\")",
                    cfg.train.pretrained,
                    cfg.detect.variant.as_str()
                ))
            })?,
            super::pretrained::OperatingPoints::read(&model.dir)?.calibration(cfg.detect.variant)?,
        ))
    } else {
        None
    };
    let (operating, calibration) = match operating {
        Some((t, c)) => (Some(t), c),
        None => (None, None),
    };
    let patches = crate::patches::run(store, cfg, false, progress)?;
    if let Some(bcfg) = ts_background_config(cfg) {
        let iem = crate::sky::iem::IemModel::load(&bcfg.sky.iem)?;
        crate::sky::run_diffuse(store, &bcfg, &iem, false)?;
    }
    // the network's maps of these patches, shared by every head of the network
    let maps = if infer_applies(cfg) {
        Some(run_infer(store, cfg, false, progress)?)
    } else {
        None
    };
    store.run_stage(&key, force, |dir| {
        // The grid point's config picks the head (a segmentation U-Net serves UNEK and LoG).
        let set = PatchSet::load(&patches.dir, 0)?;
        let mut background = serde_json::Value::Null;
        let t0 = Instant::now();
        let (dets, infer_s) = match &maps {
            Some(m) => {
                let outs = super::infer::read_outputs(&m.dir, set.len(), set.size())?;
                progress.set_length(set.len() as u64);
                let net = super::neural::NeuralDetector::new(cfg)?;
                (
                    net.detections_from(&set, &outs, progress),
                    m.manifest.summary["infer_s"].as_f64().unwrap_or(0.0),
                )
            }
            None => {
                let mut ts = super::ts_baseline::TsDetector::new(cfg)?;
                background = ts
                    .resolve_background(store, Some(cfg), &patches.dir, &set)?
                    .into();
                (ts.detect_with_progress(&set, progress)?, 0.0)
            }
        };
        let head_s = t0.elapsed().as_secs_f64();
        // the detector's whole time on the sky: its network pass (the infer stage's, once
        // for all the network's heads) and its head
        let secs = infer_s + head_s;
        let post = &cfg.detect.post;
        let min_score = operating.unwrap_or(post.min_score);
        let n_raw = dets.len();
        let dets = if post.is_default() || !trains(cfg) {
            dets
        } else {
            super::post::above(
                super::post::suppress(dets, post.min_separation_px),
                min_score,
            )
        };
        // the calibrated probability of the threshold stage's fit, where there is one
        let p_real: Option<Vec<f64>> = calibration
            .as_ref()
            .map(|c| dets.iter().map(|d| c.predict(d.score)).collect());
        super::write_detections_with(
            dir,
            &dets,
            &super::ExtraColumns {
                p_real: p_real.as_deref(),
                spread: None,
            },
        )?;
        let mut extra = serde_json::Map::new();
        if !post.is_default() && trains(cfg) {
            extra.insert("n_before_post".into(), n_raw.into());
            extra.insert(
                "min_score".into(),
                crate::formats::finite_or_null(min_score),
            );
            extra.insert(
                "threshold_from".into(),
                match (operating.is_some(), post.threshold) {
                    (true, crate::detect::config::ThresholdSource::Model) => "model",
                    (true, _) => "validation",
                    (false, _) => "config",
                }
                .into(),
            );
        }
        Ok(serde_json::json!({
            "detector": cfg.detect.variant.as_str(),
            "post": extra,
            "background": background,
            "n_patches": set.len(),
            "n_detections": dets.len(),
            "infer_s": infer_s,
            "head_s": head_s,
            "detect_s": secs,
            "patches_per_s": set.len() as f64 / secs.max(1e-9),
        }))
    })
}

/// The `detect` stage of an ensemble point: the members' maps of the grid point's patches
/// (their `infer` stages), the mean map, the head, [`super::post::suppress`], then the
/// ensemble's own operating threshold and calibration (its `threshold` stage, cross-fitted
/// on the held-out folds; `detect.post.min_score` without one); the detections file
/// carries each detection's spread over the members ([`super::ensemble`]) and `p_real`.
fn run_ensemble_detect(
    store: &Store,
    cfg: &ExperimentConfig,
    key: &StageKey,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<StageOutput> {
    let members = ensemble_members(cfg);
    let mut maps = Vec::new();
    for m in &members {
        maps.push(run_infer(store, m, false, progress)?);
    }
    // the ensemble's own operating point, cross-fitted on the held-out folds (computed
    // before by the planner: the threshold stage sits with the scorer, downstream)
    let operating = if tunes(cfg) {
        let key = threshold_key(cfg)?;
        let t = store.lookup_verified(&key).ok_or_else(|| {
            crate::error::Error::Usage(format!(
                "the threshold stage {} (the {} ensemble on its held-out folds) is not in the \
                 store yet: `gammabench run` computes it before this detect stage",
                &key.hash()[..12],
                cfg.detect.variant.as_str()
            ))
        })?;
        Some((
            read_operating_threshold(&t.dir)?,
            crate::calibration::read(&t.dir)?,
        ))
    } else {
        None
    };
    let patches = crate::patches::run(store, cfg, false, progress)?;
    store.run_stage(key, force, |dir| {
        let set = PatchSet::load(&patches.dir, 0)?;
        let outs = maps
            .iter()
            .map(|m| super::infer::read_outputs(&m.dir, set.len(), set.size()))
            .collect::<Result<Vec<_>>>()?;
        // the members' heads need no weights: their maps are the fold networks' infer stages
        let det = super::ensemble::EnsembleDetector::from_members(
            vec![super::neural::NeuralDetector::new(cfg)?],
            cfg,
        );
        let post = &cfg.detect.post;
        let radius_px = cfg.score.match_radius_deg
            / crate::projection::PatchGeometry::default().pixel_deg();
        progress.set_length(((outs.len() + 1) * set.len()) as u64);
        let t0 = Instant::now();
        let (dets, spreads) =
            det.detect_from_outputs(&set, &outs, post.min_separation_px, radius_px, progress)?;
        let head_s = t0.elapsed().as_secs_f64();
        let infer_s: f64 = maps
            .iter()
            .map(|m| m.manifest.summary["infer_s"].as_f64().unwrap_or(0.0))
            .sum();
        let secs = infer_s + head_s;
        let min_score = operating.as_ref().map_or(post.min_score, |o| o.0);
        let n_raw = dets.len();
        let (dets, spreads): (Vec<_>, Vec<_>) = dets
            .into_iter()
            .zip(spreads)
            .filter(|(d, _)| d.score >= min_score)
            .unzip();
        let p_real: Option<Vec<f64>> = operating
            .as_ref()
            .and_then(|o| o.1.as_ref())
            .map(|c| dets.iter().map(|d| c.predict(d.score)).collect());
        super::write_detections_with(
            dir,
            &dets,
            &super::ExtraColumns {
                p_real: p_real.as_deref(),
                spread: Some(&spreads),
            },
        )?;
        let median = |v: Vec<f64>| {
            let v: Vec<f64> = v.into_iter().filter(|x| x.is_finite()).collect();
            if v.is_empty() {
                serde_json::Value::Null
            } else {
                crate::formats::finite_or_null(super::ensemble::median_threshold(&v))
            }
        };
        Ok(serde_json::json!({
            "detector": det.name(),
            "ensemble": members.len(),
            "post": {
                "n_before_post": n_raw,
                "min_score": crate::formats::finite_or_null(min_score),
                "threshold_from": if operating.is_some() { "the held-out folds, cross-fitted" } else { "config" },
            },
            "n_patches": set.len(),
            "n_detections": dets.len(),
            "median_position_err_deg": median(spreads.iter().map(|s| s.position_err_deg).collect()),
            "median_score_err": median(spreads.iter().map(|s| s.score_err).collect()),
            "infer_s": infer_s,
            "head_s": head_s,
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
        ]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        _label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        if !trains(cfg) || !cfg.train.patches.is_empty() || !cfg.train.pretrained.is_empty() {
            return Ok(vec![]);
        }
        let d = &cfg.train.data;
        let mut inputs: Vec<crate::stage::Input> = cfg
            .training_data_configs()
            .into_iter()
            .enumerate()
            .map(|(r, c)| crate::stage::Input {
                stage: "patches",
                label: if d.realisations() == 1 {
                    format!("train-sky {:?}-{} n={}", d.preset, d.iem, d.n_patches)
                } else {
                    format!(
                        "train-sky {:?}-{} realisation {}/{} n={}",
                        d.preset,
                        d.iem,
                        r + 1,
                        d.realisations(),
                        c.patches.n
                    )
                },
                config: std::sync::Arc::new(c),
            })
            .collect();
        if let Some(v) = cfg.validation_data_config() {
            inputs.push(crate::stage::Input {
                stage: "patches",
                label: format!("validation-sky {:?}-{} n={}", d.preset, d.iem, v.patches.n),
                config: std::sync::Arc::new(v),
            });
        }
        Ok(inputs)
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
        if trains(cfg) && !cfg.train.pretrained.is_empty() {
            format!("{} from {}", network(cfg), cfg.train.pretrained)
        } else if !trains(cfg) || !cfg.train.patches.is_empty() {
            network(cfg).to_string()
        } else {
            let d = &cfg.train.data;
            let fold = if cfg.train.cross_validates() {
                format!(" fold {}/{}", cfg.train.fold, cfg.train.folds)
            } else {
                String::new()
            };
            format!("{} on {:?}-{}{fold}", network(cfg), d.preset, d.iem)
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
        &[
            "detections.csv",
            "detections.parquet",
            "detections_published.csv",
        ]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        if cfg.detect.ensemble {
            let mut v = Vec::new();
            for m in ensemble_members(cfg) {
                let m = std::sync::Arc::new(m);
                let l = member_label(label, m.train.fold);
                v.push(crate::stage::Input::same("infer", &m, &l));
            }
            if tunes(cfg) {
                v.push(crate::stage::Input::same("threshold", cfg, label));
            }
            v.push(crate::stage::Input::same("patches", cfg, label));
            return Ok(v);
        }
        // a network's maps (infer reads train), or the TS baseline's train record
        let first = if infer_applies(cfg) { "infer" } else { "train" };
        let mut v = vec![crate::stage::Input::same(first, cfg, label)];
        if tunes(cfg) {
            v.push(crate::stage::Input::same("threshold", cfg, label));
        }
        v.push(crate::stage::Input::same("patches", cfg, label));
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

/// True when the grid point's detector runs a network (every variant but the TS baseline).
pub fn infer_applies(cfg: &ExperimentConfig) -> bool {
    trains(cfg)
}

/// The content key of the `infer` stage.
pub fn infer_key(cfg: &ExperimentConfig) -> Result<StageKey> {
    let inputs: std::collections::BTreeMap<String, String> = [
        ("model".to_string(), train_key(cfg)?.hash()),
        (
            "patches".to_string(),
            crate::patches::stage_key(cfg)?.hash(),
        ),
    ]
    .into();
    let vote_scale = if cfg.detect.variant == DetectorVariant::Cnet {
        serde_json::json!(cfg.detect.cnet.max_dist_px)
    } else {
        serde_json::Value::Null
    };
    Ok(StageKey {
        stage: "infer".into(),
        config: serde_json::json!({
            "network": network(cfg),
            "batch_size": cfg.train.batch_size,
            "poisson_stream": super::infer::POISSON_STREAM,
            "vote_scale_px": vote_scale,
        }),
        inputs,
        seed: cfg.seed,
    })
}

/// Runs (or reuses) the `infer` stage of a network grid point.
pub fn run_infer(
    store: &Store,
    cfg: &ExperimentConfig,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<StageOutput> {
    if !infer_applies(cfg) {
        return Err(crate::error::Error::Usage(format!(
            "the {} detector runs no network: it has no infer stage",
            cfg.detect.variant.as_str()
        )));
    }
    let key = infer_key(cfg)?;
    if !force && let Some(o) = store.lookup_verified(&key) {
        return Ok(o);
    }
    let model = run_train(store, cfg, false, progress)?;
    let patches = crate::patches::run(store, cfg, false, progress)?;
    store.run_stage(&key, force, |dir| {
        let set = PatchSet::load(&patches.dir, 0)?;
        let mut net = super::neural::NeuralDetector::load(&model.dir, cfg)?;
        net.poisson_stream = super::infer::POISSON_STREAM;
        progress.set_length(set.len() as u64);
        let t0 = Instant::now();
        let outs = net.outputs_with_progress(&set, cfg.train.batch_size, progress)?;
        let secs = t0.elapsed().as_secs_f64();
        super::infer::write_outputs(dir, &outs, set.size())?;
        Ok(serde_json::json!({
            "network": network(cfg),
            "n_patches": set.len(),
            "infer_s": secs,
            "patches_per_s": set.len() as f64 / secs.max(1e-9),
        }))
    })
}

/// The `infer` stage: a trained network's output maps on a grid point's test patches.
pub struct InferStage;

impl crate::stage::Stage for InferStage {
    fn name(&self) -> &'static str {
        "infer"
    }
    fn about(&self) -> &'static str {
        "runs a trained network on the test patches once and stores its maps, which every head (UNEK, LoG, CNET, the ensembles) reads"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &[super::infer::SCORE_FILE]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        if !infer_applies(cfg) {
            return Ok(vec![]);
        }
        Ok(vec![
            crate::stage::Input::same("train", cfg, label),
            crate::stage::Input::same("patches", cfg, label),
        ])
    }
    fn key(&self, cfg: &ExperimentConfig) -> Result<StageKey> {
        infer_key(cfg)
    }
    fn run(
        &self,
        store: &Store,
        cfg: &ExperimentConfig,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<StageOutput> {
        run_infer(store, cfg, force, progress)
    }
    /// The network and the test sky, not the head (UNEK and LoG share the node).
    fn label(&self, cfg: &ExperimentConfig, _point_label: &str) -> String {
        let fold = if cfg.train.cross_validates() {
            format!(" fold {}/{}", cfg.train.fold, cfg.train.folds)
        } else {
            String::new()
        };
        let sky = match cfg.catalog.preset {
            Some(p) => format!("{p:?}-{}", cfg.sky.iem),
            None => cfg.sky.iem.clone(),
        };
        format!("{}{fold} on {sky}", network(cfg))
    }
    fn describe(&self, out: &StageOutput) -> String {
        let s = &out.manifest.summary;
        format!(
            "{} maps of {} patches ({:.1} patches/s)",
            s["network"].as_str().unwrap_or("?"),
            s["n_patches"],
            s["patches_per_s"].as_f64().unwrap_or(f64::NAN)
        )
    }
}
