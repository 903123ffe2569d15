//! The `score` stage of the experiment runner: scores a `detect` stage's detections against
//! its test patches' truth with [`super::score_detections`] and keeps the headline numbers
//! (global and per-latitude-band purity and completeness, S90 on every axis, localisation)
//! in the manifest summary, which is what the published leaderboards read.

use super::detection::DetectionReport;
use crate::config::ExperimentConfig;
use crate::error::Result;
use crate::store::{StageKey, StageOutput, Store};

/// The content key of the `score` stage.
pub fn stage_key(cfg: &ExperimentConfig) -> Result<StageKey> {
    Ok(StageKey {
        stage: "score".into(),
        config: serde_json::json!({ "score": cfg.score }),
        inputs: [
            (
                "detections".to_string(),
                crate::detect::stage::detect_key(cfg)?.hash(),
            ),
            (
                "patches".to_string(),
                crate::patches::stage_key(cfg)?.hash(),
            ),
        ]
        .into(),
        seed: cfg.seed,
    })
}

/// Runs (or reuses) the `score` stage (and the stages before it).
pub fn run(
    store: &Store,
    cfg: &ExperimentConfig,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<StageOutput> {
    let key = stage_key(cfg)?;
    if !force && let Some(o) = store.lookup(&key) {
        return Ok(o);
    }
    if crate::detect::stage::tunes(cfg) {
        super::threshold::run_threshold(store, cfg, false, progress)?;
    }
    let det = crate::detect::stage::run_detect(store, cfg, false, progress)?;
    let patches = crate::patches::run(store, cfg, false, progress)?;
    store.run_stage(&key, force, |dir| {
        let r = super::score_detections(
            &patches.dir.join("truth.csv"),
            &det.dir.join("detections.csv"),
            Some(&patches.dir.join("patches.csv")),
            dir,
            &cfg.score,
            cfg.seed,
            true,
        )?;
        Ok(summary(cfg, &r))
    })
}

/// The grid coordinates of a scored sky: preset, emission model, detector, training sky.
pub fn grid_coordinates(cfg: &ExperimentConfig) -> serde_json::Value {
    let d = &cfg.train.data;
    serde_json::json!({
        "preset": cfg.catalog.preset.map(|p| format!("{p:?}")).unwrap_or_else(|| "custom".into()),
        "iem": cfg.sky.iem,
        "detector": cfg.detect.variant.as_str(),
        "trained_on": if cfg.detect.variant == crate::config::DetectorVariant::Ts {
            "none".to_string()
        } else if !cfg.train.pretrained.is_empty() {
            let name = std::path::Path::new(&cfg.train.pretrained)
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default();
            format!("pretrained {name}")
        } else if cfg.train.patches.is_empty() {
            format!("{:?}-{}", d.preset, d.iem)
        } else {
            cfg.train.patches.clone()
        },
    })
}

/// Headline numbers of a detection report (the manifest summary of the `score` stage).
pub fn summary(cfg: &ExperimentConfig, r: &DetectionReport) -> serde_json::Value {
    let mut s = report_summary(r);
    s["grid"] = grid_coordinates(cfg);
    s
}

/// [`summary`] without the grid coordinates: everything computed from the report alone
/// (what `gammabench reproduce` recomputes and compares).
pub fn report_summary(r: &DetectionReport) -> serde_json::Value {
    let mut bands = serde_json::Map::new();
    for region in ["all", "high_lat", "low_lat"] {
        for metric in ["purity", "completeness"] {
            if let Some(c) = r
                .curves
                .iter()
                .find(|c| c.axis == "S1" && c.region == region && c.metric == metric)
            {
                let (k, n) = c
                    .bins
                    .iter()
                    .fold((0usize, 0usize), |(k, n), b| (k + b.p.k, n + b.p.n));
                bands.insert(
                    format!("{metric}_{region}"),
                    if n > 0 {
                        (k as f64 / n as f64).into()
                    } else {
                        serde_json::Value::Null
                    },
                );
            }
        }
    }
    let mut s90 = serde_json::Map::new();
    for s in &r.s90 {
        s90.insert(
            format!("{}_{}", s.axis, s.region),
            serde_json::json!({ "value": s.value, "status": s.status,
                "interval_lo": s.interval_lo, "interval_hi": s.interval_hi,
                "purity_crossing": s.purity.as_ref().and_then(|c| c.value),
                "purity_status": s.purity.as_ref().map(|c| c.status.clone()),
                "completeness_crossing": s.completeness.as_ref().and_then(|c| c.value),
                "completeness_status": s.completeness.as_ref().map(|c| c.status.clone()) }),
        );
    }
    serde_json::json!({
        "mode": r.mode,
        "n_detections": r.n_detections,
        "n_sources": r.n_sources,
        "tp": r.tp,
        "fp": r.fp,
        "fn": r.fn_,
        "duplicate": r.duplicate,
        "purity": r.purity.value,
        "completeness": r.completeness.value,
        "f1": r.f1,
        "bands": bands,
        "s90": s90,
        "localisation_median_deg": r.localisation.median_deg,
        "localisation_q68_deg": r.localisation.q68_deg,
    })
}

/// The `score` stage: a `detect` stage's detections matched to its test patches' truth.
pub struct ScoreStage;

impl crate::stage::Stage for ScoreStage {
    fn name(&self) -> &'static str {
        "score"
    }
    fn about(&self) -> &'static str {
        "matches detections to truth (0.3 deg): purity, completeness, F1, curves, S90, localisation"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &[
            "metrics.json",
            "match_table.csv",
            "curves.csv",
            "s90.csv",
            "figures/",
        ]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        Ok(vec![
            crate::stage::Input::same("detect", cfg, label),
            crate::stage::Input::same("patches", cfg, label),
        ])
    }
    fn key(&self, cfg: &ExperimentConfig) -> Result<StageKey> {
        stage_key(cfg)
    }
    fn run(
        &self,
        store: &Store,
        cfg: &ExperimentConfig,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<StageOutput> {
        run(store, cfg, force, progress)
    }
    fn describe(&self, out: &StageOutput) -> String {
        let s = &out.manifest.summary;
        let f = |k: &str| {
            s[k].as_f64()
                .map(|v| format!("{v:.3}"))
                .unwrap_or_else(|| "undefined".into())
        };
        format!(
            "{} detections of {} sources: purity {}, completeness {}, F1 {}",
            s["n_detections"],
            s["n_sources"],
            f("purity"),
            f("completeness"),
            f("f1")
        )
    }
}
