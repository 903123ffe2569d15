//! The `classify` stage of the experiment runner: one cross-validation run of one variant on
//! one track, stored like every other stage.
//!
//! * Catalog track: keyed by the `[classify]` section and the SHA-256 of the 4FGL file.
//! * Image track: when `classify.image.patches_dir` is not set and the grid point plans the
//!   `score` stage, the cut-outs come from the grid point's test patches and the score
//!   stage's match table (true positives take their source's class, false positives are
//!   FAKE); with `patches_dir` set, from that directory; otherwise synthetic patches.

use crate::config::{ExperimentConfig, Track};
use crate::error::Result;
use crate::store::{StageKey, StageOutput, Store};
use std::path::PathBuf;

/// Where the image track's inputs come from.
fn image_from_pipeline(cfg: &ExperimentConfig) -> bool {
    cfg.classify.track == Track::Image
        && cfg.classify.image.patches_dir.is_none()
        && cfg.run.stages.iter().any(|s| s == "score")
}

/// The content key of the `classify` stage.
pub fn stage_key(cfg: &ExperimentConfig) -> Result<StageKey> {
    let c = &cfg.classify;
    let mut inputs = std::collections::BTreeMap::new();
    match c.track {
        Track::Catalog => {
            let path = super::run::resolve_data(&c.catalog_file);
            let sha = crate::formats::sha256_file(&path).map_err(|e| {
                crate::Error::bad_file(&path, format!("cannot read the catalog: {e}"))
            })?;
            inputs.insert("catalog_file".to_string(), sha);
            if c.task == crate::config::Task::MspYng {
                // the MSP / YNG labels may come from this file (keyed only for that task, so
                // the other tasks' keys stay as they were)
                let lp = super::run::resolve_data(&c.pulsar_labels_file);
                let sha = crate::formats::sha256_file(&lp).map_err(|e| {
                    crate::Error::bad_file(&lp, format!("cannot read the pulsar labels: {e}"))
                })?;
                inputs.insert("pulsar_labels_file".to_string(), sha);
            }
        }
        Track::Image if image_from_pipeline(cfg) => {
            inputs.insert(
                "patches".to_string(),
                crate::patches::stage_key(cfg)?.hash(),
            );
            inputs.insert(
                "score".to_string(),
                crate::score::stage::stage_key(cfg)?.hash(),
            );
        }
        Track::Image => {}
    }
    Ok(StageKey {
        stage: "classify".into(),
        config: serde_json::json!({ "classify": c }),
        inputs,
        seed: cfg.seed,
    })
}

/// Runs (or reuses) the `classify` stage.
pub fn run(
    store: &Store,
    cfg: &ExperimentConfig,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<StageOutput> {
    let key = stage_key(cfg)?;
    if !force && let Some(o) = store.lookup_verified(&key) {
        return Ok(o);
    }
    let mut c = cfg.clone();
    if image_from_pipeline(cfg) {
        let score = crate::score::stage::run(store, cfg, false, progress)?;
        let patches = crate::patches::run(store, cfg, false, progress)?;
        c.classify.image.patches_dir = Some(patches.dir.clone());
        c.classify.image.matches_file = abs(score.dir.join("match_table.csv"));
    }
    store.run_stage(&key, force, |dir| {
        let r = super::run::run_cv(&c, dir)?;
        // The scorer on the out-of-fold predictions: confusion matrices, ROC, reliability
        // diagram (figures/), metrics.json.
        let scored = crate::score::score_classification(
            &dir.join("oof_predictions.csv"),
            dir,
            &cfg.score,
            true,
        )?;
        let mut metrics = serde_json::Map::new();
        for (name, mean, std) in &r.summary {
            metrics.insert(
                name.clone(),
                serde_json::json!({ "mean": crate::formats::finite_or_null(*mean), "std": crate::formats::finite_or_null(*std) }),
            );
        }
        let mut s = serde_json::json!({
            "variant": r.variant,
            "track": match cfg.classify.track { Track::Catalog => "catalog", Track::Image => "image" },
            "folds": r.folds.len(),
            "metrics": metrics,
            "pooled_out_of_fold": scored.pooled_summary(),
        });
        if cfg.classify.track == Track::Image {
            s["balanced"] = cfg.classify.image.balanced.into();
        }
        if cfg.classify.track == Track::Catalog {
            s["task"] = r.task.as_str().into();
            s["protocol"] = match cfg.classify.protocol {
                crate::config::Protocol::Kfold => "kfold",
                crate::config::Protocol::RepeatedSplit => "repeated_split",
            }
            .into();
            if cfg.classify.smote != crate::config::SmoteMode::None {
                s["smote"] = match cfg.classify.smote {
                    crate::config::SmoteMode::Minority => "minority".to_string(),
                    _ => format!("{} per class", cfg.classify.smote_per_class),
                }
                .into();
            }
            if let Some(m) = &r.label_match {
                s["label_match"] = serde_json::to_value(m)
                    .map_err(|e| crate::Error::Internal(e.to_string()))?;
            }
        }
        if r.n_unc > 0 {
            let cl = r.task.classes();
            s["unassociated"] = serde_json::json!({
                "n": r.n_unc, "classes": cl, "counts": r.unc_counts,
                "unclassified": r.unc_counts[2],
            });
            if r.task == crate::config::Task::AgnPsr {
                s["unassociated"]["agn"] = r.unc_counts[0].into();
                s["unassociated"]["psr"] = r.unc_counts[1].into();
            }
        }
        Ok(s)
    })
}

fn abs(p: PathBuf) -> String {
    std::fs::canonicalize(&p).unwrap_or(p).display().to_string()
}

/// The `classify` stage: a classifier under cross-validation (catalog or image track).
pub struct ClassifyStage;

impl crate::stage::Stage for ClassifyStage {
    fn name(&self) -> &'static str {
        "classify"
    }
    fn about(&self) -> &'static str {
        "source classifiers (AGN / PSR, MSP / YNG, BLL / FSRQ; image track AGN / PSR / FAKE) under cross-validation"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &[
            "folds.csv",
            "oof_predictions.csv",
            "oof_predictions.parquet",
            "summary.csv",
            "summary.md",
            "metrics.json",
            "figures/",
        ]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        Ok(if image_from_pipeline(cfg) {
            vec![
                crate::stage::Input::same("score", cfg, label),
                crate::stage::Input::same("patches", cfg, label),
            ]
        } else {
            vec![]
        })
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
        let m = |k: &str| {
            s["metrics"][k]["mean"]
                .as_f64()
                .map(|v| format!("{v:.4}"))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "{} {} ({} folds): accuracy {}, AUC {}",
            s["task"].as_str().unwrap_or(""),
            s["variant"].as_str().unwrap_or("?"),
            s["folds"],
            m("accuracy"),
            m("auc")
        )
    }
}
