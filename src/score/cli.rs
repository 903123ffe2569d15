//! The `score` verbs: a detections file or a classification file against truth, and the
//! published notebook's tables from an evaluation file.

use crate::config::{ExperimentConfig, MatchMode};
use crate::error::{Error, Result};
use std::path::Path;

/// `score detections`: matches `predictions` to `truth` under `cfg.score` (the match mode
/// replaced by `mode` when given), writes everything to `out` and logs the headline line.
pub fn detections(
    cfg: &ExperimentConfig,
    truth: &Path,
    predictions: &Path,
    patches: Option<&Path>,
    out: &Path,
    mode: Option<&str>,
    figures: bool,
) -> Result<()> {
    let mut c = cfg.score.clone();
    if let Some(m) = mode {
        c.mode = match m {
            "legacy" => MatchMode::Legacy,
            "global" => MatchMode::Global,
            other => {
                return Err(Error::Usage(format!(
                    "--mode {other}: expected legacy or global"
                )));
            }
        };
    }
    let t0 = std::time::Instant::now();
    let r = super::score_detections(truth, predictions, patches, out, &c, cfg.seed, figures)?;
    let s1 = r
        .s90
        .iter()
        .find(|s| s.axis == "S1" && s.region == "all")
        .map(|s| match s.value {
            Some(v) => format!("S90(S1) = {v:.3e} ({})", s.status),
            None => format!("S90(S1) {}", s.status),
        })
        .unwrap_or_default();
    let f = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or("undefined".into());
    log::info!(
        "{} mode: TP {} FP {} FN {} duplicate {}; purity {} completeness {}; {s1}; {:.2} s -> {}",
        r.mode,
        r.tp,
        r.fp,
        r.fn_,
        r.duplicate,
        f(r.purity.value),
        f(r.completeness.value),
        t0.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

/// `score paper-tables`: the notebook's binned tables of a legacy evaluation file.
pub fn paper_tables(evaluation: &Path, out: &Path) -> Result<()> {
    let rows = super::paper::read_evaluation(evaluation)?;
    let tables = super::paper::tables(&rows);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    super::paper::write_tables(out, &tables)?;
    log::info!(
        "{} evaluation rows, {} tables -> {}",
        rows.len(),
        tables.len(),
        out.join("paper_tables.md").display()
    );
    Ok(())
}

/// `score classification`: the classification metrics of a predictions file.
pub fn classification(
    cfg: &ExperimentConfig,
    predictions: &Path,
    out: &Path,
    figures: bool,
) -> Result<()> {
    let r = super::score_classification(predictions, out, &cfg.score, figures)?;
    let f = |m: &super::classification::Metric| {
        m.value
            .map(|v| format!("{v:.4}"))
            .unwrap_or("undefined".into())
    };
    log::info!(
        "{} items: accuracy {} balanced {} macro-F1 {} MCC {} macro AUC {} log loss {} -> {}",
        r.n,
        f(&r.accuracy),
        f(&r.balanced_accuracy),
        f(&r.macro_f1),
        f(&r.mcc),
        f(&r.macro_roc_auc),
        f(&r.log_loss),
        out.display()
    );
    Ok(())
}
