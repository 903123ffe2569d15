//! The `train`, `detect` and `combine` verbs on directories the user names (the runner's
//! `train` and `detect` stages are in [`super::stage`]).

use crate::config::{DetectorVariant, Resolved};
use crate::error::{Error, Result};
use crate::store::Store;
use std::path::Path;

/// `train`: trains the `[detect]` variant of every grid point on `patches` (or
/// `train.patches`) into `out` (one subdirectory per grid point), resuming from
/// `out/checkpoint` when `resume`.
pub fn train(points: &[Resolved], patches: Option<&Path>, out: &Path, resume: bool) -> Result<()> {
    for p in points {
        let mut cfg = p.config.clone();
        if let Some(dir) = patches {
            cfg.train.patches = dir.display().to_string();
        }
        if cfg.train.patches.is_empty() && cfg.detect.variant != DetectorVariant::Ts {
            return Err(Error::Usage(
                "no training patches: give --patches DIR or train.patches".into(),
            ));
        }
        let out = crate::config::point_dir(out, points, p);
        let mut det: Box<dyn super::Detector> = if cfg.detect.variant == DetectorVariant::Ts {
            super::build(&cfg)?
        } else {
            let mut d = super::neural::NeuralDetector::new(&cfg)?;
            d.resume = resume;
            Box::new(d)
        };
        let train = if cfg.train.patches.is_empty() {
            None
        } else {
            Some(super::PatchSet::load(
                Path::new(&cfg.train.patches),
                cfg.train.max_patches,
            )?)
        };
        let pb = crate::progress::bar(det.name());
        let empty = super::PatchSet::empty(64, cfg.energy.n_bins());
        let set = train.as_ref().unwrap_or(&empty);
        let r = det.fit(set, &out, &pb)?;
        pb.finish_and_clear();
        log::info!(
            "{} trained: {} epochs in {:.1} s, best epoch {} (val loss {:.5}), train loss {:.5} -> {:.5}; model in {}",
            det.name(),
            r.epochs_run,
            r.wall_time_s,
            r.best_epoch,
            r.best_val_loss,
            r.first_train_loss,
            r.last_train_loss,
            out.display()
        );
    }
    Ok(())
}

/// `detect`: runs the model in `model` (or another `head` of its network, with `set`
/// overrides of `detect.*` and `seed`) on a patches directory; logs a provisional match when
/// the directory has truth.
pub fn detect(
    store: &Store,
    model: &Path,
    patches_dir: &Path,
    out: &Path,
    max_patches: usize,
    head: Option<DetectorVariant>,
    set: &[String],
) -> Result<()> {
    let patches = super::PatchSet::load(patches_dir, max_patches)?;
    let points = super::pretrained::OperatingPoints::read(model)?;
    // the head as its operating point was chosen, then the user's overrides (which win)
    let variant = match head {
        Some(h) => h,
        None => {
            super::read_config(&model.join("config.toml"))?
                .detect
                .variant
        }
    };
    let mut overrides = points.head_overrides(variant);
    if let Some(h) = head {
        overrides.push(format!("detect.variant=\"{}\"", h.as_str()));
    }
    overrides.extend(set.iter().cloned());
    let set = overrides;
    let det = super::load_for_patches_with(model, &set, store, patches_dir, &patches)?;
    let cfg = super::model_config_with(model, &set)?;
    let t0 = std::time::Instant::now();
    let pb = crate::progress::bar(det.name());
    let dets = det.detect_with_progress(&patches, &pb)?;
    pb.finish_and_clear();
    let dets = post_process(model, &points, &cfg, dets)?;
    // p_real where the head's shipped operating point carries its calibration and is the
    // threshold applied (as the run's detect stage writes it)
    let calibrated = cfg.detect.variant != DetectorVariant::Ts
        && cfg.detect.post.threshold != crate::detect::config::ThresholdSource::Fixed
        && !cfg.detect.post.is_default();
    let p_real: Option<Vec<f64>> = match points.calibration(cfg.detect.variant)? {
        Some(c) if calibrated => Some(dets.iter().map(|d| c.predict(d.score)).collect()),
        _ => None,
    };
    super::write_detections_with(
        out,
        &dets,
        &super::ExtraColumns {
            p_real: p_real.as_deref(),
            spread: None,
        },
    )?;
    if patches.truth.iter().any(|t| !t.is_empty()) {
        let (p, c, nd, nt) =
            super::combine::provisional_scores(&dets, &patches, super::combine::SCORING_RADIUS_DEG);
        log::info!(
            "provisional match within 0.3 deg: purity {p:.3} ({nd} detections), completeness {c:.3} ({nt} true sources)"
        );
    }
    log::info!(
        "{}: {} detections in {} patches ({:.1} s) -> {}",
        det.name(),
        dets.len(),
        patches.len(),
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// `[detect.post]` of a model's config on its detections: suppression, then the operating
/// threshold: `fixed` the config's `min_score`; `validation` or `model` the head's entry of
/// the folder's `operating_points.json` (chosen on the validation sky when it was exported).
fn post_process(
    model: &Path,
    points: &super::pretrained::OperatingPoints,
    cfg: &crate::config::ExperimentConfig,
    dets: Vec<super::Detection>,
) -> Result<Vec<super::Detection>> {
    use crate::detect::config::ThresholdSource;
    let post = &cfg.detect.post;
    if post.is_default() || cfg.detect.variant == DetectorVariant::Ts {
        return Ok(dets);
    }
    let min_score = match post.threshold {
        ThresholdSource::Fixed => post.min_score,
        ThresholdSource::Validation | ThresholdSource::Model => points
            .threshold(cfg.detect.variant, &super::stage::head_config(cfg)["head"])?
            .ok_or_else(|| {
                Error::Usage(format!(
                    "{}: no operating point for head {} in {}; run `export-models` with that head, \
                     or pass --set detect.post.threshold=\"fixed\" --set detect.post.min_score=X",
                    model.display(),
                    cfg.detect.variant.as_str(),
                    super::pretrained::OPERATING_POINTS_FILE
                ))
            })?,
    };
    let n = dets.len();
    let out = super::post::above(
        super::post::suppress(dets, post.min_separation_px),
        min_score,
    );
    log::info!(
        "post-processing: {n} -> {} detections (min separation {} px, min score {min_score})",
        out.len(),
        post.min_separation_px
    );
    Ok(out)
}

/// `combine`: the union (or intersection) of two detections files matched on the sky.
pub fn combine(a: &Path, b: &Path, union: bool, radius_deg: f64, out: &Path) -> Result<()> {
    let (da, db) = (super::read_detections(a)?, super::read_detections(b)?);
    let merged = if union {
        super::combine::union(&da, &db, radius_deg)
    } else {
        super::combine::intersection(&da, &db, radius_deg)
    };
    super::write_detections(out, &merged)?;
    log::info!("{} detections -> {}", merged.len(), out.display());
    Ok(())
}
