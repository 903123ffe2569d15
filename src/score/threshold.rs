//! The `threshold` stage: a trained head's operating threshold chosen on the validation sky
//! (never a test sky), which the `detect` stage then applies.
//!
//! * the trained detector with the grid point's head runs on the validation sky
//!   (`train.data.validation_patches`), then [`crate::detect::post::suppress`];
//! * [`scan`]: for candidate thresholds `t` (every distinct score, thinned to at most
//!   [`MAX_CANDIDATES`] quantiles), the detections with `score >= t` matched to the truth
//!   by the configured scorer ([`crate::score::run_matching`]): purity, completeness, F1;
//! * [`choose`]: the threshold with the highest completeness among those whose purity is at
//!   least the target (ties: the lower threshold), else the one with the highest F1.
//!
//! It lives with the scorer because it scores; the `detect` stage only reads its
//! `operating_point.json` (the key is `detect::stage::threshold_key`).

use crate::config::{ExperimentConfig, ScoreConfig};
use crate::detect::stage::{OPERATING_POINT_FILE, threshold_key, validation_config};
use crate::detect::{Detection, Detector, PatchSet};
use crate::error::Result;
use crate::patches::truth::TruthRow;
use crate::store::{StageKey, StageOutput, Store};
use serde::{Deserialize, Serialize};
use std::time::Instant;

pub use crate::detect::config::MIN_TP_FOR_PURITY;

/// Most candidate thresholds a [`scan`] tries.
pub const MAX_CANDIDATES: usize = 200;

/// One candidate threshold of a [`scan`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ScanRow {
    pub min_score: f64,
    pub n_detections: usize,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub purity: f64,
    pub completeness: f64,
    pub f1: f64,
}

/// The scorer's view of a detection (its sky position both computed and "given", so the
/// legacy scorer, which matches on the given one, sees the same).
fn for_scoring(d: &Detection, line: usize) -> crate::score::input::Detection {
    crate::score::input::Detection {
        line,
        patch_id: d.patch_id as i64,
        x_pix: d.x_pix,
        y_pix: d.y_pix,
        glon_deg: d.glon_deg,
        glat_deg: d.glat_deg,
        sky_given_deg: Some((d.glon_deg, d.glat_deg)),
        catalog: None,
        score: Some(d.score),
        class_id: None,
        probs: None,
        flux_1000_ph_cm2_s: None,
    }
}

/// Purity, completeness and F1 of `dets` against `truth` with the scorer of `cfg`.
pub fn evaluate(
    truth: &[TruthRow],
    dets: &[Detection],
    min_score: f64,
    cfg: &ScoreConfig,
) -> ScanRow {
    let kept: Vec<crate::score::input::Detection> = dets
        .iter()
        .filter(|d| d.score >= min_score)
        .enumerate()
        .map(|(i, d)| for_scoring(d, i + 2))
        .collect();
    let m = crate::score::run_matching(truth, &kept, cfg);
    let ratio = |k: usize, n: usize| if n > 0 { k as f64 / n as f64 } else { f64::NAN };
    // duplicates (a source found again in an overlapping patch) count neither way
    let purity = ratio(m.n_tp, m.n_tp + m.n_fp);
    let completeness = ratio(m.n_tp, m.n_tp + m.n_fn);
    let f1 = if purity + completeness > 0.0 {
        2.0 * purity * completeness / (purity + completeness)
    } else {
        f64::NAN
    };
    ScanRow {
        min_score,
        n_detections: kept.len(),
        tp: m.n_tp,
        fp: m.n_fp,
        fn_: m.n_fn,
        purity,
        completeness,
        f1,
    }
}

/// Candidate thresholds: `-inf` (everything) and the distinct scores, thinned to at most
/// [`MAX_CANDIDATES`] evenly spaced ranks.
pub fn candidates(dets: &[Detection]) -> Vec<f64> {
    let mut s: Vec<f64> = dets
        .iter()
        .map(|d| d.score)
        .filter(|v| v.is_finite())
        .collect();
    s.sort_by(|a, b| a.partial_cmp(b).expect("finite"));
    s.dedup();
    let mut out = vec![f64::NEG_INFINITY];
    if s.len() <= MAX_CANDIDATES {
        out.extend(s);
    } else {
        let step = (s.len() - 1) as f64 / (MAX_CANDIDATES - 1) as f64;
        let mut last = usize::MAX;
        for j in 0..MAX_CANDIDATES {
            let i = (j as f64 * step).round() as usize;
            if i != last {
                out.push(s[i]);
                last = i;
            }
        }
    }
    out
}

/// Every candidate threshold of `dets`, scored.
pub fn scan(truth: &[TruthRow], dets: &[Detection], cfg: &ScoreConfig) -> Vec<ScanRow> {
    use rayon::prelude::*;
    candidates(dets)
        .par_iter()
        .map(|&t| evaluate(truth, dets, t, cfg))
        .collect()
}

/// The operating point chosen from a scan.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Choice {
    pub row: ScanRow,
    /// `purity_at_least` (the target was reached), `max_f1` or `keep_all` (nothing found).
    pub rule: &'static str,
}

/// The highest-completeness threshold with purity `>= target_purity` (ties: the lower
/// threshold), else the highest-F1 one (ties: the lower), else (nothing detected) the first
/// row, which keeps everything; `None` for an empty scan.
pub fn choose(rows: &[ScanRow], target_purity: f64) -> Option<Choice> {
    // a purity from a handful of detections is noise (with 2 of 2 true it is 1.0): the
    // target counts only where at least MIN_TP_FOR_PURITY detections are true
    let better = |a: &ScanRow, b: &ScanRow, key: fn(&ScanRow) -> f64| {
        let (ka, kb) = (key(a), key(b));
        ka > kb || (ka == kb && a.min_score < b.min_score)
    };
    let mut best: Option<ScanRow> = None;
    for r in rows.iter().filter(|r| {
        r.purity >= target_purity && r.completeness.is_finite() && r.tp >= MIN_TP_FOR_PURITY
    }) {
        if best.is_none_or(|b| better(r, &b, |x| x.completeness)) {
            best = Some(*r);
        }
    }
    if let Some(row) = best {
        return Some(Choice {
            row,
            rule: "purity_at_least",
        });
    }
    for r in rows.iter().filter(|r| r.f1.is_finite()) {
        if best.is_none_or(|b| better(r, &b, |x| x.f1)) {
            best = Some(*r);
        }
    }
    if let Some(row) = best {
        return Some(Choice {
            row,
            rule: "max_f1",
        });
    }
    // nothing detected (no purity, no F1): keep everything, the threshold is moot
    rows.first().map(|&row| Choice {
        row,
        rule: "keep_all",
    })
}

/// Writes a scan as CSV (`min_score,n_detections,tp,fp,fn,purity,completeness,f1`).
pub fn write_scan(path: &std::path::Path, rows: &[ScanRow]) -> crate::error::Result<()> {
    use crate::formats::fmt_f64;
    let mut s = String::from("min_score,n_detections,tp,fp,fn,purity,completeness,f1\n");
    for r in rows {
        s.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            fmt_f64(r.min_score),
            r.n_detections,
            r.tp,
            r.fp,
            r.fn_,
            fmt_f64(r.purity),
            fmt_f64(r.completeness),
            fmt_f64(r.f1)
        ));
    }
    crate::formats::atomic_write(path, s.as_bytes())
}

/// Runs (or reuses) the `threshold` stage: the trained detector with the grid point's head on
/// the validation sky, [`crate::detect::post::suppress`], then the scan of
/// [`scan`] and the rule of [`choose`].
pub fn run_threshold(
    store: &Store,
    cfg: &ExperimentConfig,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<StageOutput> {
    let key = threshold_key(cfg)?;
    if !force && let Some(o) = store.lookup_verified(&key) {
        return Ok(o);
    }
    if cfg.detect.ensemble {
        return run_ensemble_threshold(store, cfg, &key, force, progress);
    }
    let model = crate::detect::stage::run_train(store, cfg, false, progress)?;
    // the validation sky, or a cross-validated point's held-out fold
    let (set, truth) = if cfg.train.cross_validates() {
        crate::detect::stage::held_out_fold(store, cfg, progress)?
    } else {
        let vcfg = validation_config(cfg)?;
        let vp = crate::patches::run(store, &vcfg, false, progress)?;
        let truth = crate::patches::truth::read_truth(
            &vp.dir.join("truth.csv"),
            Some(&vp.dir.join("patches.csv")),
        )?;
        (PatchSet::load(&vp.dir, 0)?, truth.rows)
    };
    store.run_stage(&key, force, |dir| {
        let mut det = crate::detect::neural::NeuralDetector::load(&model.dir, cfg)?;
        det.poisson_stream = VALIDATION_POISSON;
        let t0 = Instant::now();
        let dets = crate::detect::post::suppress(
            det.detect_with_progress(&set, progress)?,
            cfg.detect.post.min_separation_px,
        );
        let detect_s = t0.elapsed().as_secs_f64();
        let mut summary = choose_and_calibrate(dir, cfg, &dets, &truth, set.len())?;
        summary["n_train_patches"] = model.manifest.summary["n_train_patches"].clone();
        summary["detect_s"] = detect_s.into();
        Ok(summary)
    })
}

/// The Poisson stream of the validation inputs (`(seed, stream, patch_id)`), apart from the
/// test skies' `detect/poisson`.
const VALIDATION_POISSON: &str = "threshold/validation-poisson";

/// The `threshold` stage of an ensemble point (`detect.ensemble`), cross-fitted: no patch of
/// the training sky is held out from every member, so each held-out fold `f` is detected by
/// the ensemble of the other K-1 fold networks (none of which saw fold `f`: the mean of
/// their maps, the head, the suppression), and the K folds' detections, pooled, are the
/// ensemble's validation set (out-of-fold predictions, as in stacking: Wolpert 1992; the
/// calibration of cross-validated models, scikit-learn's `CalibratedClassifierCV` with
/// `ensemble=False`). The threshold and the isotonic calibration are chosen on the pool as
/// for one network. With K = 2 each fold's "ensemble" is the one other member.
fn run_ensemble_threshold(
    store: &Store,
    cfg: &ExperimentConfig,
    key: &StageKey,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<StageOutput> {
    let members = crate::detect::stage::ensemble_members(cfg);
    let mut models = Vec::new();
    for m in &members {
        models.push(crate::detect::stage::run_train(store, m, false, progress)?);
    }
    store.run_stage(key, force, |dir| {
        let (sky, truth_all) = crate::detect::stage::training_sky_with_truth(store, cfg, progress)?;
        let nets = members
            .iter()
            .zip(&models)
            .map(|(m, o)| {
                let mut n = crate::detect::neural::NeuralDetector::load(&o.dir, m)?;
                n.poisson_stream = VALIDATION_POISSON;
                Ok(n)
            })
            .collect::<Result<Vec<_>>>()?;
        let head = crate::detect::ensemble::EnsembleDetector::from_members(
            vec![crate::detect::neural::NeuralDetector::new(cfg)?],
            cfg,
        );
        let hidden = indicatif::ProgressBar::hidden();
        let t0 = Instant::now();
        let mut dets = Vec::new();
        let mut truth = Vec::new();
        let mut n_patches = 0;
        for (f, m) in members.iter().enumerate() {
            let (held, rows) = crate::detect::stage::held_out_of(&sky, &truth_all, m);
            let outs = nets
                .iter()
                .enumerate()
                .filter(|(g, _)| *g != f)
                .map(|(_, n)| n.outputs(&held, cfg.train.batch_size))
                .collect::<Result<Vec<_>>>()?;
            let (d, _) = head.detect_from_outputs(
                &held,
                &outs,
                cfg.detect.post.min_separation_px,
                0.0,
                &hidden,
            )?;
            n_patches += held.len();
            dets.extend(d);
            truth.extend(rows);
            progress.inc(1);
        }
        let detect_s = t0.elapsed().as_secs_f64();
        let mut summary = choose_and_calibrate(dir, cfg, &dets, &truth, n_patches)?;
        summary["detector"] = format!("{}_ensemble", cfg.detect.variant.as_str()).into();
        summary["cross_fit"] = serde_json::json!({
            "rule": CROSS_FIT,
            "folds": members.len(),
        });
        summary["detect_s"] = detect_s.into();
        Ok(summary)
    })
}

pub use crate::detect::config::CROSS_FIT;

/// The scan, the choice and the calibration of a head's validation detections (`dets`,
/// already suppressed, against `truth` of `n_patches` patches): writes the detections,
/// `threshold_scan.csv`, the calibration and the operating point into `dir` and returns
/// the stage summary.
fn choose_and_calibrate(
    dir: &std::path::Path,
    cfg: &ExperimentConfig,
    dets: &[Detection],
    truth: &[TruthRow],
    n_patches: usize,
) -> Result<serde_json::Value> {
    crate::detect::write_detections(dir, dets)?;
    let rows = scan(truth, dets, &cfg.score);
    write_scan(&dir.join("threshold_scan.csv"), &rows)?;
    let choice = choose(&rows, cfg.detect.post.target_purity)
        .ok_or_else(|| crate::error::Error::Internal("empty threshold scan".into()))?;
    if choice.rule == "keep_all" {
        log::warn!(
            "{}: nothing detected on the {} validation patches; every test detection is kept",
            cfg.detect.variant.as_str(),
            n_patches
        );
    }
    let all = rows.first().copied();
    // the score's calibration, fitted on every validation detection
    let scored: Vec<crate::score::input::Detection> = dets
        .iter()
        .enumerate()
        .map(|(i, d)| for_scoring(d, i + 2))
        .collect();
    let labelled =
        crate::score::calibration::labels(&crate::score::run_matching(truth, &scored, &cfg.score));
    let scores: Vec<f64> = labelled.iter().map(|(i, _)| dets[*i].score).collect();
    let is_tp: Vec<bool> = labelled.iter().map(|(_, t)| *t).collect();
    let iso = crate::score::calibration::Isotonic::fit(&scores, &is_tp);
    let (_, ece_fit) = match &iso {
        Some(f) => crate::score::calibration::reliability(
            &scores.iter().map(|&x| f.predict(x)).collect::<Vec<_>>(),
            &is_tp,
            10,
        ),
        None => (Vec::new(), f64::NAN),
    };
    let calib = serde_json::json!({
        "method": crate::score::calibration::METHOD,
        "n_detections": labelled.len(),
        "n_true": is_tp.iter().filter(|t| **t).count(),
        "ece_in_sample": crate::formats::finite_or_null(ece_fit),
        "isotonic": iso,
    });
    crate::formats::atomic_write(
        &dir.join(crate::score::calibration::FILE),
        serde_json::to_string_pretty(&calib)
            .map_err(|e| crate::error::Error::Internal(e.to_string()))?
            .as_bytes(),
    )?;
    let point = serde_json::json!({
        "detector": cfg.detect.variant.as_str(),
        "min_score": crate::formats::finite_or_null(choice.row.min_score),
        "rule": choice.rule,
        "target_purity": cfg.detect.post.target_purity,
        "match_mode": cfg.score.mode,
        "min_separation_px": cfg.detect.post.min_separation_px,
        "n_validation_patches": n_patches,
        "fold": (cfg.train.cross_validates() && !cfg.detect.ensemble).then_some(cfg.train.fold),
        "validation": choice.row,
        "validation_all_detections": all,
    });
    let text = serde_json::to_string_pretty(&point)
        .map_err(|e| crate::error::Error::Internal(e.to_string()))?;
    crate::formats::atomic_write(&dir.join(OPERATING_POINT_FILE), text.as_bytes())?;
    Ok(serde_json::json!({
        "detector": cfg.detect.variant.as_str(),
        "min_score": crate::formats::finite_or_null(choice.row.min_score),
        "rule": choice.rule,
        "n_validation_patches": n_patches,
        "validation_purity": crate::formats::finite_or_null(choice.row.purity),
        "validation_completeness": crate::formats::finite_or_null(choice.row.completeness),
        "validation_f1": crate::formats::finite_or_null(choice.row.f1),
        "validation_purity_all": all.map(|r| crate::formats::finite_or_null(r.purity)),
        "validation_completeness_all": all.map(|r| crate::formats::finite_or_null(r.completeness)),
    }))
}

/// The `threshold` stage: a trained head's operating threshold chosen on the validation sky.
pub struct ThresholdStage;

impl crate::stage::Stage for ThresholdStage {
    fn name(&self) -> &'static str {
        "threshold"
    }
    fn about(&self) -> &'static str {
        "chooses a trained head's operating threshold on the validation sky (never a test sky)"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &[
            OPERATING_POINT_FILE,
            "threshold_scan.csv",
            "detections.csv",
            crate::score::calibration::FILE,
        ]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        if cfg.detect.ensemble {
            // every fold network (each fold's detections come from the others)
            return Ok(crate::detect::stage::ensemble_members(cfg)
                .into_iter()
                .map(|m| {
                    let l = crate::detect::stage::member_label(label, m.train.fold);
                    crate::stage::Input::same("train", &std::sync::Arc::new(m), &l)
                })
                .collect());
        }
        if cfg.train.cross_validates() {
            // the held-out fold is part of the training sky, an input of `train`
            return Ok(vec![crate::stage::Input::same("train", cfg, label)]);
        }
        let v = validation_config(cfg)?;
        let d = &cfg.train.data;
        Ok(vec![
            crate::stage::Input::same("train", cfg, label),
            crate::stage::Input {
                stage: "patches",
                label: format!("validation-sky {:?}-{} n={}", d.preset, d.iem, v.patches.n),
                config: std::sync::Arc::new(v),
            },
        ])
    }
    fn key(&self, cfg: &ExperimentConfig) -> Result<StageKey> {
        threshold_key(cfg)
    }
    fn run(
        &self,
        store: &Store,
        cfg: &ExperimentConfig,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<StageOutput> {
        run_threshold(store, cfg, force, progress)
    }
    fn label(&self, cfg: &ExperimentConfig, _point_label: &str) -> String {
        if cfg.detect.ensemble {
            format!(
                "{} ensemble on its {} held-out folds (cross-fitted)",
                cfg.detect.variant.as_str(),
                cfg.train.folds
            )
        } else if cfg.train.cross_validates() {
            format!(
                "{} on held-out fold {}/{}",
                cfg.detect.variant.as_str(),
                cfg.train.fold,
                cfg.train.folds
            )
        } else {
            format!("{} on validation sky", cfg.detect.variant.as_str())
        }
    }
    fn describe(&self, out: &StageOutput) -> String {
        let s = &out.manifest.summary;
        format!(
            "{}: min_score {} ({}), validation purity {} completeness {}",
            s["detector"].as_str().unwrap_or("?"),
            s["min_score"],
            s["rule"].as_str().unwrap_or("?"),
            s["validation_purity"],
            s["validation_completeness"]
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(patch: u64, x: f64, y: f64, score: f64) -> Detection {
        Detection::at(patch, x, y, score)
    }

    fn row(t: f64, p: f64, c: f64) -> ScanRow {
        ScanRow {
            min_score: t,
            n_detections: 0,
            tp: 1000,
            fp: 0,
            fn_: 0,
            purity: p,
            completeness: c,
            f1: 2.0 * p * c / (p + c),
        }
    }

    #[test]
    fn a_purity_from_a_handful_of_true_detections_does_not_meet_the_target() {
        // the top two detections are true (purity 1.0) but nothing else reaches 0.9
        let mut top = row(0.9, 1.0, 0.001);
        top.tp = 2;
        let rows = [row(0.1, 0.3, 0.6), row(0.5, 0.8, 0.4), top];
        let c = choose(&rows, 0.9).unwrap();
        assert_eq!(c.rule, "max_f1");
        assert_eq!(c.row.min_score, 0.5);
        top.tp = MIN_TP_FOR_PURITY;
        let c = choose(&[row(0.1, 0.3, 0.6), top], 0.9).unwrap();
        assert_eq!(c.rule, "purity_at_least");
    }

    #[test]
    fn choice_takes_the_most_complete_threshold_at_the_target_purity_else_max_f1() {
        let rows = [
            row(0.1, 0.6, 0.9),
            row(0.3, 0.91, 0.6),
            row(0.5, 0.95, 0.5),
            row(0.2, 0.89, 0.7),
        ];
        let c = choose(&rows, 0.9).unwrap();
        assert_eq!((c.row.min_score, c.rule), (0.3, "purity_at_least"));
        let c = choose(&rows, 0.99).unwrap();
        // F1: 0.72, 0.723, 0.655, 0.785 -> 0.2
        assert_eq!((c.row.min_score, c.rule), (0.2, "max_f1"));
        assert!(choose(&[], 0.9).is_none());
        let nothing = row(f64::NEG_INFINITY, f64::NAN, 0.0);
        assert_eq!(choose(&[nothing], 0.9).unwrap().rule, "keep_all");
    }

    #[test]
    fn candidates_are_thinned_and_start_with_everything() {
        let d: Vec<Detection> = (0..1000).map(|i| det(1, 0.0, 0.0, i as f64)).collect();
        let c = candidates(&d);
        assert_eq!(c[0], f64::NEG_INFINITY);
        assert_eq!(c.len(), MAX_CANDIDATES + 1);
        assert_eq!((c[1], *c.last().unwrap()), (0.0, 999.0));
        assert!(c.windows(2).all(|w| w[0] < w[1]));
    }
}
