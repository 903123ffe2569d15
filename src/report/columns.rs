//! Human-readable column headers for the per-stage leaderboards.
//!
//! A stage table's columns are the flattened keys of its manifest summary
//! (`metrics.accuracy.mean`, `detect_s`, `s90.S1_all.value`). The CSV and Markdown headers
//! show a readable label with the key after it in brackets (`detection time (s) [detect_s]`),
//! so a column can still be traced to the JSON (which keeps the keys, with typed values) and
//! to the nightly baseline (which names metrics by key). Labels are built from a few rules
//! (statistic suffixes, units of `_s` and `_deg` keys, S90 entries) and a short dictionary of
//! the common keys; an unknown key falls back to its words.

/// Labels of whole keys (after the statistic suffix is removed).
const WORDS: &[(&str, &str)] = &[
    ("accuracy", "accuracy"),
    ("auc", "AUC"),
    ("background", "background model"),
    ("balanced", "balanced classes"),
    ("balanced_accuracy", "balanced accuracy"),
    ("best_epoch", "best epoch"),
    ("best_val_loss", "best validation loss"),
    ("brier", "Brier score"),
    ("brier_raw", "Brier score (uncalibrated)"),
    ("centres", "patch centres"),
    ("completeness", "completeness"),
    ("detect_s", "detection time (s)"),
    ("detector", "detector"),
    ("diffuse_render_s", "diffuse render time (s)"),
    ("duplicate", "duplicate detections"),
    ("ece", "ECE"),
    ("ece_raw", "ECE (uncalibrated)"),
    ("epochs_run", "epochs run"),
    ("exposure_1gev_cm2_s", "exposure at 1 GeV (cm2 s)"),
    ("f1", "F1"),
    ("first_train_loss", "first training loss"),
    ("fn", "false negatives"),
    ("folds", "folds"),
    ("fp", "false positives"),
    ("iem", "emission model"),
    ("iem_version", "emission model version"),
    ("last_train_loss", "last training loss"),
    ("localisation_median_deg", "median localisation error (deg)"),
    ("localisation_q68_deg", "68 % localisation error (deg)"),
    ("log_loss", "log loss"),
    ("macro_f1", "macro F1"),
    ("macro_roc_auc", "macro ROC AUC"),
    ("mcc", "MCC"),
    ("mode", "matching mode"),
    ("n", "sources"),
    ("n_agn", "AGN"),
    ("n_detections", "detections"),
    ("n_patches", "patches"),
    ("n_psr", "PSR"),
    ("n_sources", "sources"),
    ("n_train_patches", "training patches"),
    ("n_truth_agn", "true AGN"),
    ("n_truth_psr", "true PSR"),
    ("n_truth_rows", "true sources"),
    ("network", "network"),
    ("nside", "NSIDE"),
    ("patches_per_s", "patches per second"),
    ("point_sources_render_s", "point-source render time (s)"),
    ("poisson", "Poisson counts"),
    ("purity", "purity"),
    ("render_s", "render time (s)"),
    ("temperature", "calibration temperature"),
    ("track", "track"),
    ("train_time_s", "training time (s)"),
    // the threshold stage: every validation detection, before the operating threshold
    (
        "validation_completeness_all",
        "validation completeness, all detections",
    ),
    ("validation_purity_all", "validation purity, all detections"),
    ("trained_on", "trained on"),
    ("variant", "variant"),
];

/// Region suffixes of score keys.
fn region(r: &str) -> Option<&'static str> {
    match r {
        "all" => Some("all sky"),
        "high_lat" => Some("|b| > cut"),
        "low_lat" => Some("|b| < cut"),
        _ => None,
    }
}

fn word(k: &str) -> String {
    if let Some((_, w)) = WORDS.iter().find(|(a, _)| *a == k) {
        return w.to_string();
    }
    // `completeness_high_lat` -> `completeness |b| > cut`
    for r in ["all", "high_lat", "low_lat"] {
        if let Some(head) = k.strip_suffix(&format!("_{r}"))
            && let Some(rl) = region(r)
        {
            return format!("{} {rl}", word(head));
        }
    }
    if let Some(head) = k.strip_suffix("_s") {
        return format!("{} (s)", head.replace('_', " "));
    }
    if let Some(head) = k.strip_suffix("_deg") {
        return format!("{} (deg)", head.replace('_', " "));
    }
    k.replace('_', " ")
}

/// The readable label of a flattened summary key (without the key itself).
pub fn readable(key: &str) -> String {
    let parts: Vec<&str> = key.split('.').collect();
    match parts.as_slice() {
        ["metrics", m, stat @ ("mean" | "std")] => {
            let s = if *stat == "mean" { "mean" } else { "std" };
            format!("{} ({s} over folds)", word(m))
        }
        ["pooled_out_of_fold", m] => format!("{} (pooled out-of-fold)", word(m)),
        ["unassociated", m] => format!("unassociated: {}", word(m)),
        ["s90", which, field] => {
            let (axis, reg) = ["high_lat", "low_lat", "all"]
                .iter()
                .find_map(|r| Some((which.strip_suffix(&format!("_{r}"))?, *r)))
                .unwrap_or((which, ""));
            let reg = region(reg).unwrap_or(reg);
            let what = match *field {
                "value" => "S90".to_string(),
                "status" => "S90 status".into(),
                "interval_lo" => "S90 interval low".into(),
                "interval_hi" => "S90 interval high".into(),
                "purity_crossing" => "purity crossing".into(),
                "purity_status" => "purity crossing status".into(),
                "completeness_crossing" => "completeness crossing".into(),
                "completeness_status" => "completeness crossing status".into(),
                other => other.replace('_', " "),
            };
            format!("{what} ({axis}, {reg})")
        }
        ["bands", k] => word(k),
        ["grid", k] => format!("grid: {}", word(k)),
        ["timing", k] => format!("timing: {}", word(k)),
        [head @ .., last] if !head.is_empty() => {
            format!("{}: {}", head.join(" ").replace('_', " "), word(last))
        }
        _ => word(key),
    }
}

/// The header of a stage-table column: the readable label and, when it differs, the key in
/// brackets.
pub fn header(key: &str) -> String {
    let r = readable(key);
    if r == key { r } else { format!("{r} [{key}]") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readable_labels() {
        assert_eq!(header("detect_s"), "detection time (s) [detect_s]");
        assert_eq!(
            header("patches_per_s"),
            "patches per second [patches_per_s]"
        );
        assert_eq!(
            header("metrics.accuracy.mean"),
            "accuracy (mean over folds) [metrics.accuracy.mean]"
        );
        assert_eq!(readable("s90.S1_high_lat.value"), "S90 (S1, |b| > cut)");
        assert_eq!(
            readable("s90.SNR_c_all.status"),
            "S90 status (SNR_c, all sky)"
        );
        assert_eq!(readable("bands.purity_low_lat"), "purity |b| < cut");
        assert_eq!(
            readable("counts_per_pixel_above_1gev.all_sky"),
            "counts per pixel above 1gev: all sky"
        );
        assert!(header("n_agn").contains("n_agn"));
        // the threshold stage's `_all` is every detection, not the whole sky
        assert_eq!(
            readable("validation_purity_all"),
            "validation purity, all detections"
        );
    }
}
