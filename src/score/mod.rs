//! The score stage: detections and class probabilities against truth.
//!
//! * [`input`]: truth tables, patch centres and detection files (ours and the published ones);
//! * [`matching`]: legacy (published, per patch) and global (one-to-one) matching;
//! * [`detection`]: purity, completeness, curves, S90, localisation;
//! * [`classification`]: confusion matrix, AUC, AP, Brier, log loss, ECE (as scikit-learn);
//! * [`figures`]: the plots.

pub mod calibration;
pub mod cli;
pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::ScoreConfig as Config;
pub mod classification;
pub mod detection;
pub mod figures;
pub mod input;
pub mod matching;
pub mod paper;
pub mod stage;
pub mod threshold;

use crate::config::{MatchMode, ScoreConfig};
use crate::error::{Error, Result};
use crate::formats::{atomic_write, atomic_write_with, fmt_f64};
use input::{Detection, TruthRow};
use matching::{Matching, Status};
use std::path::Path;

/// Matches with the configured mode.
pub fn run_matching(truth: &[TruthRow], dets: &[Detection], cfg: &ScoreConfig) -> Matching {
    match cfg.mode {
        MatchMode::Legacy => matching::match_legacy(truth, dets, cfg.match_radius_deg),
        MatchMode::Global => matching::match_global(truth, dets, cfg.match_radius_deg),
    }
}

fn opt(v: Option<f64>) -> String {
    v.map(fmt_f64).unwrap_or_default()
}

/// Writes the match table: one row per detection (TP, FP, duplicate) then one per missed
/// source (FN).
pub fn write_match_table(
    path: &Path,
    truth: &[TruthRow],
    dets: &[Detection],
    m: &Matching,
) -> Result<()> {
    atomic_write_with(path, |w| {
        writeln!(
            w,
            "status,stat_code,det_index,det_line,det_patch_id,det_x_pix,det_y_pix,det_glon_deg,\
             det_glat_deg,det_score,source_id,source_patch_id,source_class,source_glon_deg,\
             source_glat_deg,distance_deg,flux_1000_ph_cm2_s,flux_10000_ph_cm2_s,snr_c,sbr_c,\
             source_is_nearest"
        )?;
        for r in &m.rows {
            let d = r.det.map(|i| &dets[i]);
            let t = r.truth.map(|i| &truth[i]);
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                r.status.as_str(),
                r.status.code(),
                r.det.map(|i| i.to_string()).unwrap_or_default(),
                d.map(|d| d.line.to_string()).unwrap_or_default(),
                d.map(|d| d.patch_id.to_string()).unwrap_or_default(),
                d.map(|d| fmt_f64(d.x_pix)).unwrap_or_default(),
                d.map(|d| fmt_f64(d.y_pix)).unwrap_or_default(),
                d.map(|d| fmt_f64(d.glon_deg)).unwrap_or_default(),
                d.map(|d| fmt_f64(d.glat_deg)).unwrap_or_default(),
                opt(d.and_then(|d| d.score)),
                t.map(|t| t.source_id.to_string()).unwrap_or_default(),
                t.map(|t| t.patch_id.to_string()).unwrap_or_default(),
                t.map(|t| t.class.clone()).unwrap_or_default(),
                t.map(|t| fmt_f64(t.glon_deg)).unwrap_or_default(),
                t.map(|t| fmt_f64(t.glat_deg)).unwrap_or_default(),
                fmt_f64(r.distance_deg),
                t.map(|t| fmt_f64(t.flux_1000_ph_cm2_s)).unwrap_or_default(),
                t.map(|t| fmt_f64(t.flux_10000_ph_cm2_s))
                    .unwrap_or_default(),
                t.map(|t| fmt_f64(t.snr_c)).unwrap_or_default(),
                t.map(|t| fmt_f64(t.sbr_c)).unwrap_or_default(),
                r.status == Status::FP && t.is_some(),
            )?;
        }
        Ok(())
    })
}

/// The published scorer's 25 columns.
pub const LEGACY_COLUMNS: [&str; 25] = [
    "stat_code",
    "pred_con",
    "pred_lon",
    "pred_lat",
    "test_lon",
    "test_lat",
    "distance_degree",
    "distance_pixel",
    "test_flux_1000",
    "catalog",
    "patch_number",
    "pred_y",
    "pred_x",
    "class",
    "test_y",
    "test_x",
    "test_lon_patch",
    "test_lat_patch",
    "probability",
    "test_flux_10000",
    "snr_center_pred",
    "class_ps",
    "snr_center_test",
    "sbr_center_pred",
    "sbr_center_test",
];

fn class_code(c: &str) -> i64 {
    match c {
        "AGN" => 0,
        "PSR" => 1,
        _ => -1,
    }
}

/// The component arrays (diffuse, AGN, PSR) of a patches directory, for the published
/// scorer's SNR and SBR at a predicted pixel.
pub struct Components {
    index: std::collections::HashMap<i64, usize>,
    arrays: Vec<crate::patches::set::Cube>,
}

impl Components {
    /// Loads `patches_{diffuse,agn,psr}.npy` and `patches.csv` of `dir`; `None` when the
    /// directory has no arrays.
    pub fn load(dir: &Path) -> Result<Option<Self>> {
        if !dir.join("patches_diffuse.npy").exists() || !dir.join("patches.csv").exists() {
            return Ok(None);
        }
        let mut arrays = Vec::new();
        for c in crate::sky::COMPONENTS {
            arrays.push(crate::patches::set::Cube::read_npy(
                &dir.join(format!("patches_{c}.npy")),
            )?);
        }
        let (ids, _) =
            crate::patches::set::read_patch_list(&dir.join("patches.csv"), arrays[0].shape()[0])?;
        Ok(Some(Self {
            index: ids
                .iter()
                .enumerate()
                .map(|(i, id)| (*id as i64, i))
                .collect(),
            arrays,
        }))
    }

    /// The published scorer's `(snr_center_test, sbr_center_test)` of a true source of
    /// `class` at its box-centre pixel `(x_pix, y_pix)` (integers in the published truth),
    /// [`crate::patches::published::snr_sbr_test`] (`None`: unknown patch or pixel).
    pub fn snr_sbr_test(
        &self,
        patch_id: i64,
        x_pix: f64,
        y_pix: f64,
        class: &str,
    ) -> Option<(f64, f64)> {
        let (iem, agn, psr) = self.sums(patch_id, x_pix, y_pix)?;
        Some(crate::patches::published::snr_sbr_test(
            iem, agn, psr, class,
        ))
    }

    /// (diffuse, AGN, PSR) at pixel `(int(y), int(x))` of a patch, summed over bins.
    fn sums(&self, patch_id: i64, x_pix: f64, y_pix: f64) -> Option<(f64, f64, f64)> {
        let &p = self.index.get(&patch_id)?;
        let [_, size, _, k] = self.arrays[0].shape();
        let (x, y) = (x_pix.trunc(), y_pix.trunc());
        if !(0.0..size as f64).contains(&x) || !(0.0..size as f64).contains(&y) {
            return None;
        }
        let at = ((y as usize) * size + x as usize) * k;
        let sum = |c: usize| -> f64 {
            self.arrays[c].patch(p)[at..at + k]
                .iter()
                .map(|&v| v as f64)
                .sum()
        };
        Some((sum(0), sum(1), sum(2)))
    }

    /// The published scorer's `(snr_center_pred, sbr_center_pred)` at pixel
    /// `(int(y), int(x))` of a patch, [`crate::patches::published::snr_sbr_pred`] (`None`:
    /// unknown patch or pixel).
    pub fn snr_sbr_pred(&self, patch_id: i64, x_pix: f64, y_pix: f64) -> Option<(f64, f64)> {
        let (iem, agn, psr) = self.sums(patch_id, x_pix, y_pix)?;
        Some(crate::patches::published::snr_sbr_pred(iem, agn, psr))
    }
}

/// Writes the published scorer's evaluation CSV (legacy mode). `pred_con` counts the
/// predictions kept after the `class_id >= 0` filter, as in the published script. The
/// published `snr_center_pred`/`sbr_center_pred` of TP/FP rows come from the patch arrays
/// at the predicted pixel ([`Components::snr_sbr_pred`]); they are empty without them.
pub fn write_legacy_evaluation(
    path: &Path,
    truth: &[TruthRow],
    dets: &[Detection],
    m: &Matching,
    components: Option<&Components>,
) -> Result<()> {
    let pred_snr = |d: &Detection| -> (String, String) {
        match components.and_then(|c| c.snr_sbr_pred(d.patch_id, d.x_pix, d.y_pix)) {
            Some((a, b)) => (fmt_f64(a), fmt_f64(b)),
            None => (String::new(), String::new()),
        }
    };
    // pred_con: index among the kept predictions
    let mut kept = vec![0usize; dets.len()];
    let mut n = 0;
    for (i, d) in dets.iter().enumerate() {
        kept[i] = n;
        if d.class_id.is_none_or(|k| k >= 0) {
            n += 1;
        }
    }
    let px = |d: &Detection, t: &TruthRow| {
        ((d.y_pix - t.y_pix).powi(2) + (d.x_pix - t.x_pix).powi(2)).sqrt()
    };
    atomic_write_with(path, |w| {
        writeln!(w, "{}", LEGACY_COLUMNS.join(","))?;
        for r in &m.rows {
            let f = fmt_f64;
            let cols: Vec<String> = match r.status {
                Status::TP | Status::Duplicate => {
                    let (d, t) = (&dets[r.det.unwrap_or(0)], &truth[r.truth.unwrap_or(0)]);
                    let c = class_code(&t.class).to_string();
                    vec![
                        "0".into(),
                        kept[r.det.unwrap_or(0)].to_string(),
                        f(d.glon_deg),
                        f(d.glat_deg),
                        f(t.glon_deg),
                        f(t.glat_deg),
                        f(r.distance_deg),
                        f(px(d, t)),
                        f(t.flux_1000_ph_cm2_s),
                        f(t.catalog),
                        t.patch_id.to_string(),
                        f(d.y_pix),
                        f(d.x_pix),
                        c.clone(),
                        f(t.y_pix),
                        f(t.x_pix),
                        f(t.patch_lon_deg),
                        f(t.patch_lat_deg),
                        opt(d.score),
                        f(t.flux_10000_ph_cm2_s),
                        pred_snr(d).0,
                        c,
                        f(t.snr_c),
                        pred_snr(d).1,
                        f(t.sbr_c),
                    ]
                }
                Status::FP => {
                    let d = &dets[r.det.unwrap_or(0)];
                    let t = r.truth.map(|i| &truth[i]);
                    let z = |g: &dyn Fn(&TruthRow) -> String| t.map(g).unwrap_or("0".into());
                    vec![
                        "1".into(),
                        kept[r.det.unwrap_or(0)].to_string(),
                        f(d.glon_deg),
                        f(d.glat_deg),
                        z(&|t| f(t.glon_deg)),
                        z(&|t| f(t.glat_deg)),
                        t.map(|_| f(r.distance_deg)).unwrap_or("1000".into()),
                        t.map(|t| f(px(d, t))).unwrap_or("1000".into()),
                        z(&|t| f(t.flux_1000_ph_cm2_s)),
                        t.map(|t| f(t.catalog)).unwrap_or_else(|| opt(d.catalog)),
                        t.map(|t| t.patch_id).unwrap_or(d.patch_id).to_string(),
                        f(d.y_pix),
                        f(d.x_pix),
                        "2".into(),
                        z(&|t| f(t.y_pix)),
                        z(&|t| f(t.x_pix)),
                        z(&|t| f(t.patch_lon_deg)),
                        z(&|t| f(t.patch_lat_deg)),
                        opt(d.score),
                        z(&|t| f(t.flux_10000_ph_cm2_s)),
                        pred_snr(d).0,
                        t.map(|t| class_code(&t.class)).unwrap_or(-1).to_string(),
                        z(&|t| f(t.snr_c)),
                        pred_snr(d).1,
                        z(&|t| f(t.sbr_c)),
                    ]
                }
                Status::FN => {
                    let t = &truth[r.truth.unwrap_or(0)];
                    let c = class_code(&t.class).to_string();
                    vec![
                        "2".into(),
                        "0".into(),
                        "0".into(),
                        "0".into(),
                        f(t.glon_deg),
                        f(t.glat_deg),
                        "0".into(),
                        "0".into(),
                        f(t.flux_1000_ph_cm2_s),
                        f(t.catalog),
                        t.patch_id.to_string(),
                        "0".into(),
                        "0".into(),
                        c.clone(),
                        f(t.y_pix),
                        f(t.x_pix),
                        f(t.patch_lon_deg),
                        f(t.patch_lat_deg),
                        "1".into(),
                        f(t.flux_10000_ph_cm2_s),
                        f(t.snr_c),
                        c,
                        f(t.snr_c),
                        f(t.sbr_c),
                        f(t.sbr_c),
                    ]
                }
            };
            writeln!(w, "{}", cols.join(","))?;
        }
        Ok(())
    })
}

/// Writes every curve as one long CSV.
pub fn write_curves(path: &Path, r: &detection::DetectionReport) -> Result<()> {
    atomic_write_with(path, |w| {
        writeln!(
            w,
            "metric,axis,region,bin_lo,bin_hi,bin_centre,k,n,value,se,wilson_lo,wilson_hi"
        )?;
        for c in r.curves.iter().chain(r.fp_by_own_flux.iter()) {
            for b in &c.bins {
                writeln!(
                    w,
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    c.metric,
                    c.axis,
                    c.region,
                    fmt_f64(b.lo),
                    fmt_f64(b.hi),
                    fmt_f64(b.centre),
                    b.p.k,
                    b.p.n,
                    opt(b.p.value),
                    opt(b.p.se),
                    opt(b.p.wilson_lo),
                    opt(b.p.wilson_hi)
                )?;
            }
        }
        Ok(())
    })
}

/// Writes `s90.csv`: one row per axis and region, with the purity and completeness
/// crossings beside S90 (empty under the `all_bins_above` rule).
pub fn write_s90(path: &Path, rep: &detection::DetectionReport) -> Result<()> {
    atomic_write_with(path, |w| {
        writeln!(
            w,
            "axis,region,rule,level,status,value,interval_lo,interval_hi,bootstrap_reached,\
             bootstrap_reps,purity_status,purity_crossing,purity_lo,purity_hi,\
             completeness_status,completeness_crossing,completeness_lo,completeness_hi"
        )?;
        for s in &rep.s90 {
            let c = |x: &Option<detection::Crossing>| match x {
                Some(c) => format!(
                    "{},{},{},{}",
                    c.status,
                    opt(c.value),
                    opt(c.interval_lo),
                    opt(c.interval_hi)
                ),
                None => ",,,".into(),
            };
            writeln!(
                w,
                "{},{},{},{},{},{},{},{},{},{},{},{}",
                s.axis,
                s.region,
                s.rule,
                s.level,
                s.status,
                opt(s.value),
                opt(s.interval_lo),
                opt(s.interval_hi),
                s.bootstrap_reached,
                s.bootstrap_reps,
                c(&s.purity),
                c(&s.completeness)
            )?;
        }
        Ok(())
    })
}

fn json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Internal(e.to_string()))?;
    bytes.push(b'\n');
    atomic_write(path, &bytes)
}

/// `score detections`: reads, matches, computes and writes `metrics.json`, `match_table.csv`,
/// `curves.csv`, `s90.csv`, (legacy) `evaluation.csv` and `figures/`.
pub fn score_detections(
    truth_path: &Path,
    pred_path: &Path,
    patches: Option<&Path>,
    out: &Path,
    cfg: &ScoreConfig,
    seed: u64,
    figures: bool,
) -> Result<detection::DetectionReport> {
    let mut truth = input::read_truth(truth_path, patches)?;
    // the component arrays beside the patch list (or the truth), when there are any
    let dir = patches
        .or(Some(truth_path))
        .and_then(|p| p.parent())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    // read (three full arrays) only when something needs them: the legacy evaluation's SNR
    // columns, or a truth table without SNR_c
    let needed = cfg.mode == MatchMode::Legacy || truth.rows.iter().any(|r| r.snr_c.is_nan());
    let components = if needed {
        Components::load(&dir)?
    } else {
        None
    };
    if let Some(c) = &components {
        // a published truth table carries no SNR_c / SBR_c: the published rule at its
        // box-centre pixel
        for r in truth.rows.iter_mut().filter(|r| r.snr_c.is_nan()) {
            if let Some((snr, sbr)) = c.snr_sbr_test(r.patch_id, r.x_pix, r.y_pix, &r.class) {
                (r.snr_c, r.sbr_c) = (snr, sbr);
            }
        }
    }
    let (_, mut dets) = input::read_detections(pred_path, &truth.patches)?;
    if cfg.mode == MatchMode::Legacy {
        input::use_given_positions(&mut dets);
    }
    if let Some(d) = dets
        .iter()
        .find(|d| !d.glon_deg.is_finite() || !d.glat_deg.is_finite())
    {
        return Err(Error::Data {
            file: pred_path.display().to_string(),
            line: d.line,
            column: 1,
            field: "patch_id".into(),
            message: format!(
                "patch {} has no centre (give --patches patches.csv)",
                d.patch_id
            ),
        });
    }
    let m = run_matching(&truth.rows, &dets, cfg);
    let mode = match cfg.mode {
        MatchMode::Legacy => "legacy",
        MatchMode::Global => "global",
    };
    let rep = detection::report(&truth.rows, &dets, &m, mode, cfg, seed);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    write_match_table(&out.join("match_table.csv"), &truth.rows, &dets, &m)?;
    if cfg.mode == MatchMode::Legacy {
        let eval = out.join("evaluation.csv");
        write_legacy_evaluation(&eval, &truth.rows, &dets, &m, components.as_ref())?;
        paper::write_tables(out, &paper::tables(&paper::read_evaluation(&eval)?))?;
    }
    write_curves(&out.join("curves.csv"), &rep)?;
    write_s90(&out.join("s90.csv"), &rep)?;
    json(&out.join("metrics.json"), &rep)?;
    if figures {
        figures::detection_figures(&rep, &out.join("figures"))?;
    }
    Ok(rep)
}

/// `score classification`: writes `metrics.json`, `roc.csv`, `reliability.csv`, `figures/`.
pub fn score_classification(
    pred_path: &Path,
    out: &Path,
    cfg: &ScoreConfig,
    figures: bool,
) -> Result<classification::ClassReport> {
    let d = classification::read_predictions(pred_path)?;
    let rep = classification::report(&d, cfg.ece_bins);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    json(&out.join("metrics.json"), &rep)?;
    atomic_write_with(&out.join("roc.csv"), |w| {
        writeln!(w, "class,fpr,tpr,threshold")?;
        for c in &rep.per_class {
            if let Some(r) = &c.roc {
                for i in 0..r.fpr.len() {
                    writeln!(
                        w,
                        "{},{},{},{}",
                        c.class,
                        fmt_f64(r.fpr[i]),
                        fmt_f64(r.tpr[i]),
                        r.thresholds[i].map(fmt_f64).unwrap_or("inf".into())
                    )?;
                }
            }
        }
        Ok(())
    })?;
    atomic_write_with(&out.join("reliability.csv"), |w| {
        writeln!(w, "kind,bin_lo,bin_hi,n,mean_predicted,observed")?;
        let mut all: Vec<(String, &Vec<classification::ReliabilityBin>)> = vec![
            (
                "top_label_equal_width".into(),
                &rep.ece_top_label_equal_width.bins,
            ),
            (
                "top_label_equal_mass".into(),
                &rep.ece_top_label_equal_mass.bins,
            ),
        ];
        for c in &rep.per_class {
            all.push((format!("ovr_{}", c.class), &c.reliability));
        }
        for (kind, bins) in all {
            for b in bins {
                writeln!(
                    w,
                    "{kind},{},{},{},{},{}",
                    fmt_f64(b.lo),
                    fmt_f64(b.hi),
                    b.n,
                    fmt_f64(b.mean_predicted),
                    fmt_f64(b.observed)
                )?;
            }
        }
        Ok(())
    })?;
    if figures {
        figures::classification_figures(&rep, &out.join("figures"))?;
    }
    Ok(rep)
}
