//! The curated leaderboards and cross-stage figures of a report, read from the stored
//! `score` and `classify` stage outputs (manifest summaries and `curves.csv`).
//!
//! * `detection`: one row per scored test sky: preset, emission model, detector, training
//!   sky, purity and completeness (all sky and per latitude band), F1, S90 in S1 and in
//!   SNR_c, median localisation error;
//! * `robustness`: the paper's central question as a matrix: rows detector x preset,
//!   columns the test emission model (B1, B2, B3 ...) with purity / completeness / S90(S1),
//!   every detector trained on one sky (F0-B1 by default);
//! * `classification`: one row per classifier run (track, task, protocol, variant with its
//!   SMOTE setting): mean +- standard deviation over folds of accuracy, balanced accuracy,
//!   AUC, ECE, Brier, training time, and the predicted classes of the unlabelled sources;
//! * figures: purity and completeness against S1 and SNR_c, one panel per detector and
//!   metric with one line per test sky (the paper's Figs. 5 and 6), S90(S1) per sky and
//!   detector (Fig. 7), example patches with true and detected sources (Fig. 12), and the
//!   classifiers' class-probability distributions by true class (Fig. 11).

use super::Entry;
use super::table::{Table, format_sig};
use crate::error::Result;
use crate::plot::{Chart, Dash, SeriesKind, color};
use plotters::style::RGBColor;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn s<'a>(v: &'a serde_json::Value, path: &[&str]) -> &'a serde_json::Value {
    let mut x = v;
    for p in path {
        x = &x[*p];
    }
    x
}

/// A numeric cell: the value to 4 significant digits, empty when there is none (so that a
/// CSV reader sees a number column with missing values, never text).
fn num(v: &serde_json::Value) -> String {
    v.as_f64().map(|x| format_sig(x, 4)).unwrap_or_default()
}

/// S90 value cell: the number, empty when not reached (the reason is in [`s90_status`]).
fn s90_cell(v: &serde_json::Value) -> String {
    v["value"]
        .as_f64()
        .map(|x| format_sig(x, 3))
        .unwrap_or_default()
}

/// S90 status cell (`reached`, `not_reached`, ...), `-` when the score stage has none.
fn s90_status(v: &serde_json::Value) -> String {
    v["status"].as_str().unwrap_or("-").to_string()
}

/// A crossing (the `crossing` rule) with its status when there is no value.
fn crossing_cell(v: &serde_json::Value, k: &str) -> String {
    v[k].as_f64().map(|x| format_sig(x, 3)).unwrap_or_default()
}

fn grid(e: &Entry) -> (String, String, String, String) {
    let g = &e.manifest.summary["grid"];
    let f = |k: &str| g[k].as_str().unwrap_or("?").to_string();
    (f("preset"), f("iem"), f("detector"), f("trained_on"))
}

/// What training a detector cost, beside its leaderboard row (issue 16: "the training
/// cost (wall time, patches, epochs) beside each").
#[derive(Debug, Clone, PartialEq)]
pub struct TrainingCost {
    /// Sum of the epochs' wall times of the train stage (`train::epoch_wall_times`: its
    /// summary, or a model folder's times; resumed runs included; a shipped model's are
    /// those of its original training).
    pub wall_time_s: f64,
    /// Training patches.
    pub n_patches: f64,
    /// Epochs run (one wall time each).
    pub epochs: usize,
    /// The model folder a pretrained network was imported from (`train.pretrained`); its
    /// log is the original training's.
    pub pretrained: Option<String>,
}

/// The training cost of every scored detector, keyed by the score stage's hash: the score's
/// `detections` input is a detect stage, whose `model` input is the train stage. Detectors
/// without a trained network (the TS baseline) and stages missing from `all` get none.
pub fn training_costs(all: &[Entry]) -> BTreeMap<String, TrainingCost> {
    let by_hash: BTreeMap<&str, &Entry> =
        all.iter().map(|e| (e.manifest.hash.as_str(), e)).collect();
    let input = |e: &Entry, k: &str| -> Option<&Entry> {
        let h = e.manifest.inputs.get(k)?;
        by_hash.get(h.as_str()).copied()
    };
    let mut out = BTreeMap::new();
    for score in all.iter().filter(|e| e.stage == "score") {
        // detect -> infer (the network's maps) -> train, or detect -> train (TS)
        let Some(train) = input(score, "detections").and_then(|d| {
            input(d, "maps")
                .and_then(|m| input(m, "model"))
                .or_else(|| input(d, "model"))
        }) else {
            continue;
        };
        let times = crate::train::epoch_wall_times(&train.dir, &train.manifest.summary);
        if times.is_empty() {
            continue;
        }
        out.insert(
            score.manifest.hash.clone(),
            TrainingCost {
                wall_time_s: times.iter().sum(),
                n_patches: train.manifest.summary["n_train_patches"]
                    .as_f64()
                    .unwrap_or(f64::NAN),
                epochs: times.len(),
                pretrained: train.manifest.summary["pretrained"]
                    .as_str()
                    .map(str::to_string),
            },
        );
    }
    out
}

/// One row per scored sky, sorted by preset, emission model and detector.
pub fn detection_table(entries: &[&Entry]) -> Table {
    detection_table_with(entries, &[], &BTreeMap::new())
}

/// [`detection_table`] with extra rows from score summaries that are no stage of the plan
/// (the union and intersection of UNEK and CNET, [`super::combinations`]): their hash cell
/// is empty. `costs` ([`training_costs`]) fills the training columns.
pub fn detection_table_with(
    entries: &[&Entry],
    extra: &[&serde_json::Value],
    costs: &BTreeMap<String, TrainingCost>,
) -> Table {
    let header = [
        "preset",
        "iem",
        "detector",
        "trained on",
        "sources",
        "detections",
        "purity",
        "completeness",
        "F1",
        "purity |b|>20",
        "completeness |b|>20",
        "purity |b|<20",
        "completeness |b|<20",
        "S90(S1) (ph cm-2 s-1)",
        "S90(S1) status",
        "S1 purity crossing (ph cm-2 s-1)",
        "S1 completeness crossing (ph cm-2 s-1)",
        "S90(SNR_c)",
        "S90(SNR_c) status",
        "median offset (deg)",
        "ECE of p_real",
        "training time (s)",
        "training patches",
        "training epochs",
        "pretrained model",
        "fold",
        "hash",
    ];
    let row = |m: &serde_json::Value, hash: String| {
        let cost = costs.get(&hash);
        let g = &m["grid"];
        let f = |k: &str| g[k].as_str().unwrap_or("?").to_string();
        let (p, i, d, t) = (f("preset"), f("iem"), f("detector"), f("trained_on"));
        let key = (p.clone(), i.clone(), d.clone());
        (
            key,
            vec![
                p,
                i,
                d,
                t,
                num(&m["n_sources"]),
                num(&m["n_detections"]),
                num(&m["purity"]),
                num(&m["completeness"]),
                num(&m["f1"]),
                num(s(m, &["bands", "purity_high_lat"])),
                num(s(m, &["bands", "completeness_high_lat"])),
                num(s(m, &["bands", "purity_low_lat"])),
                num(s(m, &["bands", "completeness_low_lat"])),
                s90_cell(s(m, &["s90", "S1_all"])),
                s90_status(s(m, &["s90", "S1_all"])),
                crossing_cell(s(m, &["s90", "S1_all"]), "purity_crossing"),
                crossing_cell(s(m, &["s90", "S1_all"]), "completeness_crossing"),
                s90_cell(s(m, &["s90", "SNR_c_all"])),
                s90_status(s(m, &["s90", "SNR_c_all"])),
                num(&m["localisation_median_deg"]),
                num(s(m, &["calibration", "ece"])),
                cost.map(|c| format!("{:.0}", c.wall_time_s))
                    .unwrap_or_default(),
                cost.map(|c| format_sig(c.n_patches, 6)).unwrap_or_default(),
                cost.map(|c| c.epochs.to_string()).unwrap_or_default(),
                cost.and_then(|c| c.pretrained.clone()).unwrap_or_default(),
                match (g["fold"].as_u64(), g["folds"].as_u64()) {
                    (Some(f), Some(k)) => format!("{f}/{k}"),
                    _ => String::new(),
                },
                hash.get(..12).unwrap_or_default().to_string(),
            ],
        )
    };
    let mut rows: Vec<(_, Vec<String>)> = entries
        .iter()
        .map(|e| row(&e.manifest.summary, e.manifest.hash.clone()))
        .chain(extra.iter().map(|m| row(m, String::new())))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows: rows.into_iter().map(|r| r.1).collect(),
        json: None,
    }
}

/// Rows detector x preset, columns per test emission model: purity / completeness / S90(S1)
/// (numeric, empty when not reached), then the S90 status of every emission model. A
/// cross-validated detector's cell is the mean over its folds (S90 over the folds that reach
/// it), with the folds' sample standard deviations in `std` columns and its status
/// `reached k/K` (the columns only appear when the grid has folds).
pub fn robustness_table(entries: &[&Entry]) -> Table {
    let iems: BTreeSet<String> = entries.iter().map(|e| grid(e).1).collect();
    let mut cells: BTreeMap<(String, String, String), BTreeMap<String, Vec<&Entry>>> =
        BTreeMap::new();
    for e in entries {
        let (p, i, d, t) = grid(e);
        cells
            .entry((d, t, p))
            .or_default()
            .entry(i)
            .or_default()
            .push(e);
    }
    let folded = entries.iter().any(|e| fold_of(e).is_some());
    let mut header = vec![
        "detector".to_string(),
        "trained on".into(),
        "test preset".into(),
    ];
    for i in &iems {
        header.push(format!("{i} purity"));
        header.push(format!("{i} completeness"));
        header.push(format!("{i} S90(S1)"));
        if folded {
            header.push(format!("{i} purity std"));
            header.push(format!("{i} completeness std"));
            header.push(format!("{i} S90(S1) std"));
        }
    }
    for i in &iems {
        header.push(format!("{i} S90(S1) status"));
    }
    let rows = cells
        .into_iter()
        .map(|((d, t, p), by)| {
            let mut row = vec![d, t, p];
            for i in &iems {
                match by.get(i) {
                    Some(es) => {
                        let st = FoldStats::of(es);
                        row.push(fmt_opt(st.purity.0));
                        row.push(fmt_opt(st.completeness.0));
                        row.push(fmt_opt_sig(st.s90_s1.0, 3));
                        if folded {
                            row.push(fmt_std(&st, st.purity.1));
                            row.push(fmt_std(&st, st.completeness.1));
                            row.push(if st.n > 1 {
                                fmt_opt_sig(st.s90_s1.1, 2)
                            } else {
                                String::new()
                            });
                        }
                    }
                    None => {
                        let n = if folded { 6 } else { 3 };
                        row.extend(std::iter::repeat_n(String::new(), n));
                    }
                }
            }
            for i in &iems {
                row.push(match by.get(i) {
                    Some(es) if es.len() == 1 => {
                        s90_status(s(&es[0].manifest.summary, &["s90", "S1_all"]))
                    }
                    Some(es) => format!("reached {}/{}", FoldStats::of(es).s90_s1.2, es.len()),
                    None => "not tested".into(),
                });
            }
            row
        })
        .collect();
    Table {
        header,
        rows,
        json: None,
    }
}

/// `(fold, folds)` of a cross-validated detector's score stage.
fn fold_of(e: &Entry) -> Option<(u64, u64)> {
    let g = &e.manifest.summary["grid"];
    Some((g["fold"].as_u64()?, g["folds"].as_u64()?))
}

/// Mean and sample standard deviation over the folds of one detector on one sky (one
/// entry: that entry's values, std 0).
struct FoldStats {
    n: usize,
    purity: (f64, f64),
    completeness: (f64, f64),
    f1: (f64, f64),
    /// mean, std over the folds that reach it, and how many do
    s90_s1: (f64, f64, usize),
    s90_snr: (f64, f64, usize),
}

impl FoldStats {
    fn of(es: &[&Entry]) -> Self {
        let get = |k: &str| -> Vec<f64> {
            es.iter()
                .map(|e| e.manifest.summary[k].as_f64().unwrap_or(f64::NAN))
                .collect()
        };
        let s90 = |k: &str| {
            let v: Vec<f64> = es
                .iter()
                .filter_map(|e| s(&e.manifest.summary, &["s90", k, "value"]).as_f64())
                .collect();
            let (m, sd) = crate::folds::mean_std(&v);
            (m, sd, v.len())
        };
        Self {
            n: es.len(),
            purity: crate::folds::mean_std(&get("purity")),
            completeness: crate::folds::mean_std(&get("completeness")),
            f1: crate::folds::mean_std(&get("f1")),
            s90_s1: s90("S1_all"),
            s90_snr: s90("SNR_c_all"),
        }
    }
}

fn fmt_opt(x: f64) -> String {
    fmt_opt_sig(x, 4)
}
fn fmt_opt_sig(x: f64, sig: usize) -> String {
    if x.is_finite() {
        format_sig(x, sig)
    } else {
        String::new()
    }
}
fn fmt_std(st: &FoldStats, sd: f64) -> String {
    if st.n > 1 {
        fmt_opt_sig(sd, 2)
    } else {
        String::new()
    }
}

/// The cross-validation leaderboard (issue 18): one row per detector and test sky, purity,
/// completeness, F1, S90(S1) and S90(SNR_c) as mean and sample standard deviation over the
/// detector's folds (a detector without folds, the TS baseline, is one value with no
/// spread), and each detector compared with the next one down the sky's F1 ranking: the
/// difference of the mean F1s against the fold spread `sqrt(s_a^2 + s_b^2)`, marked
/// `beyond spread` when it exceeds it. `None` when no score stage has folds.
pub fn fold_table(entries: &[&Entry]) -> Option<Table> {
    if !entries.iter().any(|e| fold_of(e).is_some()) {
        return None;
    }
    let mut groups: BTreeMap<(String, String, String, String), Vec<&Entry>> = BTreeMap::new();
    for e in entries {
        let (p, i, d, t) = grid(e);
        groups.entry((p, i, d, t)).or_default().push(e);
    }
    // per sky, the detectors by mean F1 (best first)
    type Ranked = Vec<(String, String, FoldStats)>;
    let mut by_sky: BTreeMap<(String, String), Ranked> = BTreeMap::new();
    for ((p, i, d, t), es) in groups {
        by_sky
            .entry((p, i))
            .or_default()
            .push((d, t, FoldStats::of(&es)));
    }
    let header = [
        "preset",
        "iem",
        "detector",
        "trained on",
        "folds",
        "purity",
        "purity std",
        "completeness",
        "completeness std",
        "F1",
        "F1 std",
        "S90(S1) (ph cm-2 s-1)",
        "S90(S1) std",
        "S90(S1) reached",
        "S90(SNR_c)",
        "S90(SNR_c) std",
        "S90(SNR_c) reached",
        "next by F1",
        "F1 difference",
        "fold spread",
        "difference",
    ];
    let mut rows = Vec::new();
    for ((p, i), mut ds) in by_sky {
        // undefined F1 (nothing detected) ranks last
        let f1 = |x: &FoldStats| {
            if x.f1.0.is_nan() {
                f64::NEG_INFINITY
            } else {
                x.f1.0
            }
        };
        ds.sort_by(|a, b| f1(&b.2).total_cmp(&f1(&a.2)).then(a.0.cmp(&b.0)));
        for j in 0..ds.len() {
            let (d, t, st) = &ds[j];
            let spread = |x: &FoldStats| if x.n > 1 { x.f1.1 } else { 0.0 };
            let next = ds.get(j + 1).map(|(nd, _, ns)| {
                let diff = st.f1.0 - ns.f1.0;
                let sp = (spread(st).powi(2) + spread(ns).powi(2)).sqrt();
                let verdict = if !(diff.is_finite() && sp.is_finite()) {
                    "-"
                } else if st.n < 2 && ns.n < 2 {
                    "no folds"
                } else if diff > sp {
                    "beyond spread"
                } else {
                    "within spread"
                };
                (nd.clone(), diff, sp, verdict)
            });
            rows.push(vec![
                p.clone(),
                i.clone(),
                d.clone(),
                t.clone(),
                st.n.to_string(),
                fmt_opt(st.purity.0),
                fmt_std(st, st.purity.1),
                fmt_opt(st.completeness.0),
                fmt_std(st, st.completeness.1),
                fmt_opt(st.f1.0),
                fmt_std(st, st.f1.1),
                fmt_opt_sig(st.s90_s1.0, 3),
                if st.n > 1 {
                    fmt_opt_sig(st.s90_s1.1, 2)
                } else {
                    String::new()
                },
                format!("{}/{}", st.s90_s1.2, st.n),
                fmt_opt_sig(st.s90_snr.0, 3),
                if st.n > 1 {
                    fmt_opt_sig(st.s90_snr.1, 2)
                } else {
                    String::new()
                },
                format!("{}/{}", st.s90_snr.2, st.n),
                next.as_ref().map(|n| n.0.clone()).unwrap_or_default(),
                next.as_ref()
                    .map(|n| fmt_opt_sig(n.1, 3))
                    .unwrap_or_default(),
                next.as_ref()
                    .map(|n| fmt_opt_sig(n.2, 3))
                    .unwrap_or_default(),
                next.as_ref().map(|n| n.3.to_string()).unwrap_or_default(),
            ]);
        }
    }
    Some(Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
        json: None,
    })
}

fn mean_std(m: &serde_json::Value, k: &str) -> String {
    let x = &m["metrics"][k];
    match (x["mean"].as_f64(), x["std"].as_f64()) {
        (Some(a), Some(b)) => format!("{} ± {}", format_sig(a, 4), format_sig(b, 2)),
        _ => "-".into(),
    }
}

/// One row per classifier run (mean ± std over folds).
pub fn classification_table(entries: &[&Entry]) -> Table {
    let header = [
        "track",
        "task",
        "protocol",
        "variant",
        "balanced",
        "folds",
        "accuracy",
        "balanced accuracy",
        "AUC",
        "ECE",
        "Brier",
        "train time (s)",
        "predicted (class 0 / class 1 / unclassified)",
        "hash",
    ];
    let mut rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            let m = &e.manifest.summary;
            let u = &m["unassociated"];
            vec![
                m["track"].as_str().unwrap_or("?").to_string(),
                m["task"].as_str().unwrap_or("-").to_string(),
                m["protocol"].as_str().unwrap_or("-").to_string(),
                match m["smote"].as_str() {
                    Some(a) => format!("{} (SMOTE {a})", m["variant"].as_str().unwrap_or("?")),
                    None => m["variant"].as_str().unwrap_or("?").to_string(),
                },
                m["balanced"]
                    .as_bool()
                    .map(|b| b.to_string())
                    .unwrap_or("-".into()),
                num(&m["folds"]),
                mean_std(m, "accuracy"),
                mean_std(m, "balanced_accuracy"),
                mean_std(m, "auc"),
                mean_std(m, "ece"),
                mean_std(m, "brier"),
                mean_std(m, "train_time_s"),
                if u.is_object() {
                    let name = |k: usize| u["classes"][k].as_str().unwrap_or("?").to_string();
                    let n = |k: usize| u["counts"][k].as_u64().unwrap_or(0);
                    if u["counts"].is_array() {
                        format!(
                            "{} {} / {} {} / {} of {}",
                            n(0),
                            name(0),
                            n(1),
                            name(1),
                            u["unclassified"],
                            u["n"]
                        )
                    } else {
                        format!(
                            "{} AGN / {} PSR / {} of {}",
                            u["agn"], u["psr"], u["unclassified"], u["n"]
                        )
                    }
                } else {
                    "-".into()
                },
                e.manifest.hash[..12].to_string(),
            ]
        })
        .collect();
    rows.sort();
    Table {
        header: header.iter().map(|h| h.to_string()).collect(),
        rows,
        json: None,
    }
}

/// A curve read back from a score stage's `curves.csv`: (bin centres, values).
fn read_curve(dir: &Path, metric: &str, axis: &str, region: &str) -> Option<(Vec<f64>, Vec<f64>)> {
    let mut r = csv::Reader::from_path(dir.join("curves.csv")).ok()?;
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for rec in r.records().flatten() {
        if &rec[0] == metric
            && &rec[1] == axis
            && &rec[2] == region
            && let (Ok(x), Ok(y)) = (rec[5].parse::<f64>(), rec[8].parse::<f64>())
        {
            xs.push(x);
            ys.push(y);
        }
    }
    (!xs.is_empty()).then_some((xs, ys))
}

/// The line style of a test sky in the cross-sky figures: a colour of its own (its index
/// among all the report's skies, sorted by preset then emission model, so the same sky has
/// the same colour in every panel and nine skies get nine colours) and a dash per emission
/// model (B1 solid, B2 dashed, B3 dotted) as a second cue.
pub fn sky_style(skies: &[(String, String)], sky: &(String, String)) -> (RGBColor, Dash) {
    let k = skies.iter().position(|s| s == sky).unwrap_or(0);
    let iems: BTreeSet<&String> = skies.iter().map(|s| &s.1).collect();
    let d = iems.iter().position(|i| **i == sky.1).unwrap_or(0);
    (color(k), Dash::nth(d))
}

/// The test skies (preset, emission model) of scored entries, sorted.
fn skies_of(entries: &[&Entry]) -> Vec<(String, String)> {
    entries
        .iter()
        .map(|e| (grid(e).0, grid(e).1))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// Purity and completeness against `axis` (`S1`, `SNR_c`): one panel per detector and metric,
/// one line per test sky (read from each score stage's `curves.csv`).
pub fn sky_curve_charts(entries: &[&Entry], axis: &str) -> Vec<Chart> {
    let unit = match axis {
        "S1" => "S1 = flux 1-100 GeV (ph cm-2 s-1)",
        other => other,
    };
    let skies = skies_of(entries);
    let detectors: BTreeSet<String> = entries.iter().map(|e| grid(e).2).collect();
    let mut charts = Vec::new();
    for d in &detectors {
        let mut es: Vec<&&Entry> = entries.iter().filter(|e| grid(e).2 == *d).collect();
        es.sort_by_key(|e| (grid(e).0, grid(e).1));
        for metric in ["purity", "completeness"] {
            let mut c = Chart::new(&format!("{d}: {metric}"), unit, metric).log_x();
            for e in &es {
                let (p, i, _, _) = grid(e);
                if let Some((xs, ys)) = read_curve(&e.dir, metric, axis, "all") {
                    let (col, dash) = sky_style(&skies, &(p.clone(), i.clone()));
                    c = c.with_dash(&format!("{p}-{i}"), col, dash, SeriesKind::Line { xs, ys });
                }
            }
            charts.push(c);
        }
    }
    charts
}

/// Draws the cross-sky figures into `dir`; returns (title, relative path) of each PNG.
pub fn figures(entries: &[&Entry], dir: &Path, rel: &str) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let detectors: BTreeSet<String> = entries.iter().map(|e| grid(e).2).collect();
    for axis in ["S1", "SNR_c"] {
        let charts = sky_curve_charts(entries, axis);
        if charts.iter().all(|c| c.series.is_empty()) {
            continue;
        }
        let stem = format!("purity_completeness_{axis}_by_sky");
        crate::plot::save(&charts, 2, dir, &stem)?;
        out.push((
            format!("purity and completeness vs {axis}, every test sky"),
            format!("{rel}/{stem}.png"),
        ));
    }
    // S90(S1) per sky, one series per detector (reached values only).
    let skies = skies_of(entries);
    let mut c = Chart::new(
        "S90(S1) per test sky (missing: not reached)",
        "test sky (index: preset-iem in the table)",
        "S90(S1) (ph cm-2 s-1)",
    )
    .log_y();
    let mut any = false;
    for (k, d) in detectors.iter().enumerate() {
        let (mut xs, mut ys) = (Vec::new(), Vec::new());
        for e in entries.iter().filter(|e| grid(e).2 == *d) {
            let (p, i, _, _) = grid(e);
            let j = skies.iter().position(|s| s.0 == p && s.1 == i).unwrap_or(0);
            if let Some(v) = s(&e.manifest.summary, &["s90", "S1_all", "value"]).as_f64() {
                xs.push(j as f64);
                ys.push(v);
            }
        }
        if !xs.is_empty() {
            any = true;
            c = c.with(d, color(k), SeriesKind::Points { xs, ys, yerr: None });
        }
    }
    if any {
        crate::plot::save(&[c], 1, dir, "s90_by_sky")?;
        out.push((
            "S90(S1) per test sky and detector".into(),
            format!("{rel}/s90_by_sky.png"),
        ));
    }
    if let Some(f) = example_patches(entries, dir, rel)? {
        out.push(f);
    }
    Ok(out)
}

/// Example patches of the first test sky (sorted by preset, emission model) with true
/// sources and each detector's detections marked (the paper's Fig. 12): the three patches
/// with the most true sources, one row per detector. Read from the stored `detect` and
/// `patches` stages the score stages name as inputs.
fn example_patches(entries: &[&Entry], dir: &Path, rel: &str) -> Result<Option<(String, String)>> {
    let mut es: Vec<&&Entry> = entries.iter().collect();
    es.sort_by_key(|e| grid(e));
    let Some(first) = es.first() else {
        return Ok(None);
    };
    let sky = (grid(first).0, grid(first).1);
    let Some(root) = first.dir.parent().and_then(|p| p.parent()) else {
        return Ok(None);
    };
    let input = |e: &Entry, k: &str| e.manifest.inputs.get(k).cloned().unwrap_or_default();
    let pdir = root.join("patches").join(input(first, "patches"));
    let set = match crate::detect::PatchSet::load(&pdir, 0) {
        Ok(s) => s,
        Err(e) => {
            log::warn!("example patches skipped: {e}");
            return Ok(None);
        }
    };
    let (size, nb) = (set.size(), set.n_bins());
    let mut order: Vec<usize> = (0..set.len()).collect();
    order.sort_by(|a, b| set.truth[*b].len().cmp(&set.truth[*a].len()).then(a.cmp(b)));
    let pick: Vec<usize> = order.into_iter().take(3).collect();
    let mut panels = Vec::new();
    for e in es.iter().filter(|e| (grid(e).0, grid(e).1) == sky) {
        let ddir = root.join("detect").join(input(e, "detections"));
        let dets = crate::detect::read_detections(&ddir.join("detections.csv"))?;
        for &i in &pick {
            let id = set.patch_ids[i];
            let cube = set.total.patch(i);
            let map: Vec<f64> = (0..size * size)
                .map(|p| cube[p * nb..(p + 1) * nb].iter().map(|v| *v as f64).sum())
                .collect();
            panels.push(crate::sky::figures::MarkedPatch {
                label: format!(
                    "{} #{id} ({:.1}, {:.1})",
                    grid(e).2,
                    set.centres_deg[i].0,
                    set.centres_deg[i].1
                ),
                map,
                truth: set.truth[i].iter().map(|t| (t.x_pix, t.y_pix)).collect(),
                detections: dets
                    .iter()
                    .filter(|d| d.patch_id == id)
                    .map(|d| (d.x_pix, d.y_pix))
                    .collect(),
            });
        }
    }
    let stem = "example_patches";
    crate::sky::figures::marked_patches(
        dir,
        stem,
        &format!(
            "{}-{}: true sources (white circles), detections (red crosses)",
            sky.0, sky.1
        ),
        "expected counts / pixel, summed over all energy bins",
        &panels,
        size,
        pick.len(),
        2.5,
    )?;
    Ok(Some((
        format!(
            "example patches of {}-{} with true and detected sources",
            sky.0, sky.1
        ),
        format!("{rel}/{stem}.png"),
    )))
}

/// Class-probability distributions of the out-of-fold predictions (the paper's Fig. 11):
/// for each classify stage, one panel per predicted class with one histogram per true class.
pub fn class_probability_figures(
    entries: &[&Entry],
    dir: &Path,
    rel: &str,
) -> Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    for e in entries {
        let Ok(d) =
            crate::score::classification::read_predictions(&e.dir.join("oof_predictions.csv"))
        else {
            continue;
        };
        let edges: Vec<f64> = (0..=20).map(|k| k as f64 / 20.0).collect();
        let mut charts = Vec::new();
        for (c, cname) in d.classes.iter().enumerate() {
            let mut ch =
                Chart::new(&format!("p_{cname}"), &format!("p_{cname}"), "fraction").log_y();
            for (t, tname) in d.classes.iter().enumerate() {
                let v: Vec<f64> = d
                    .y_true
                    .iter()
                    .zip(&d.probs)
                    .filter(|(y, _)| **y == t)
                    .map(|(_, p)| p[c])
                    .collect();
                if v.is_empty() {
                    continue;
                }
                let n = v.len() as f64;
                let h: Vec<f64> = crate::plot::histogram(&v, &edges)
                    .into_iter()
                    .map(|x| (x / n).max(1e-4))
                    .collect();
                ch = ch.with(
                    &format!("true {tname} ({})", v.len()),
                    color(t),
                    SeriesKind::Steps {
                        edges: edges.clone(),
                        values: h,
                    },
                );
            }
            charts.push(ch);
        }
        let name = e.manifest.summary["variant"]
            .as_str()
            .unwrap_or("classifier");
        let stem = format!("class_probabilities_{name}");
        crate::plot::save(&charts, charts.len().min(3), dir, &stem)?;
        out.push((
            format!("class probabilities by true class: {name}"),
            format!("{rel}/{stem}.png"),
        ));
    }
    Ok(out)
}
