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
        let mut s = summary(cfg, &r);
        if let Some(c) = reliability_of(&det.dir.join("detections.csv"), dir)? {
            s["calibration"] = c;
        }
        Ok(s)
    })
}

/// The reliability of a detections file's `p_real` column on the test sky (issue 18): the
/// score stage's match table (`match_table.csv`, written just before) labels each
/// detection TP or FP (duplicates left out); ten bins of `p_real` go to `reliability.csv`
/// and `figures/reliability.png`, the ECE to the summary. `None` without a `p_real` column.
fn reliability_of(
    detections: &std::path::Path,
    dir: &std::path::Path,
) -> Result<Option<serde_json::Value>> {
    use crate::formats::{Columns, csv_reader, fmt_f64};
    let mut r = csv_reader(detections)?;
    let cols = Columns::read(detections, &mut r)?;
    let Some(pc) = cols.find("p_real") else {
        return Ok(None);
    };
    let mut p_real = Vec::new();
    for rec in r.records() {
        let rec = rec.map_err(|e| crate::error::Error::bad_file(detections, e.to_string()))?;
        p_real.push(
            rec.get(pc)
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN),
        );
    }
    let mt = dir.join("match_table.csv");
    let mut r = csv_reader(&mt)?;
    let mcols = Columns::read(&mt, &mut r)?;
    let (sc, dc) = (mcols.index("status")?, mcols.index("det_index")?);
    let (mut p, mut l) = (Vec::new(), Vec::new());
    for rec in r.records() {
        let rec = rec.map_err(|e| crate::error::Error::bad_file(&mt, e.to_string()))?;
        let is_tp = match rec.get(sc) {
            Some("TP") => true,
            Some("FP") => false,
            _ => continue,
        };
        let Some(i) = rec.get(dc).and_then(|v| v.trim().parse::<usize>().ok()) else {
            continue;
        };
        if let Some(q) = p_real.get(i).filter(|q| q.is_finite()) {
            p.push(*q);
            l.push(is_tp);
        }
    }
    let (bins, ece) = super::calibration::reliability(&p, &l, 10);
    let mut csv = String::from("p_lo,p_hi,n,mean_p_real,fraction_true\n");
    for b in &bins {
        csv.push_str(&format!(
            "{},{},{},{},{}\n",
            fmt_f64(b.lo),
            fmt_f64(b.hi),
            b.n,
            fmt_f64(b.mean_p),
            fmt_f64(b.frac_true)
        ));
    }
    crate::formats::atomic_write(&dir.join("reliability.csv"), csv.as_bytes())?;
    let filled: Vec<&super::calibration::ReliabilityBin> =
        bins.iter().filter(|b| b.n > 0).collect();
    let chart = crate::plot::Chart::new(
        &format!(
            "reliability of p_real (ECE {})",
            crate::formats::format_sig(ece, 3)
        ),
        "p_real (bin mean)",
        "fraction of true positives",
    )
    .with(
        "perfect calibration",
        crate::plot::color(7),
        crate::plot::SeriesKind::Line {
            xs: vec![0.0, 1.0],
            ys: vec![0.0, 1.0],
        },
    )
    .with(
        "detections",
        crate::plot::color(0),
        crate::plot::SeriesKind::Points {
            xs: filled.iter().map(|b| b.mean_p).collect(),
            ys: filled.iter().map(|b| b.frac_true).collect(),
            yerr: Some(
                filled
                    .iter()
                    .map(|b| (b.frac_true * (1.0 - b.frac_true) / b.n as f64).sqrt())
                    .collect(),
            ),
        },
    );
    if !filled.is_empty() {
        crate::plot::save(&[chart], 1, &dir.join("figures"), "reliability")?;
    }
    Ok(Some(serde_json::json!({
        "ece": crate::formats::finite_or_null(ece),
        "n": p.len(),
    })))
}

/// The grid coordinates of a scored sky: preset, emission model, detector, training sky and,
/// for a cross-validated network, its fold and the number of folds.
pub fn grid_coordinates(cfg: &ExperimentConfig) -> serde_json::Value {
    let d = &cfg.train.data;
    let mut g = serde_json::json!({
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
    });
    // the ensemble of the K fold networks, or one of them (the TS baseline trains none)
    if cfg.detect.ensemble {
        g["detector"] = format!("{}_ensemble", cfg.detect.variant.as_str()).into();
        g["ensemble"] = cfg.train.folds.into();
    } else if cfg.train.cross_validates()
        && cfg.detect.variant != crate::config::DetectorVariant::Ts
    {
        g["fold"] = cfg.train.fold.into();
        g["folds"] = cfg.train.folds.into();
    }
    g
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
            "match_table.parquet",
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
