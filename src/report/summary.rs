//! The summary block at the top of `index.html`: what ran (grid points, stages, detectors,
//! test skies, classifiers), at which scale (training patches, epochs, test patches, NSIDE,
//! folds), a warning when that scale is far below the paper's, and the papers' headline
//! numbers beside ours. Everything is read from the stage manifests.

use super::Entry;
use super::html::esc;
use super::published::{self, PAPER_NSIDE, PAPER_TEST_PATCHES, PAPER_TRAIN_PATCHES, Published};
use std::collections::{BTreeMap, BTreeSet};

/// How the run's scale compares with the paper's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Seconds-to-minutes runs that check the pipeline works (tiny skies, a few patches).
    Smoke,
    /// Minutes-to-hours runs: the paper's test skies, a reduced training set.
    Ci,
    /// At the paper's scale (or above) in every respect the summary checks.
    Paper,
}

impl Scale {
    pub fn as_str(self) -> &'static str {
        match self {
            Scale::Smoke => "smoke",
            Scale::Ci => "CI",
            Scale::Paper => "paper",
        }
    }
}

/// One trained network.
#[derive(Debug, Clone, PartialEq)]
pub struct Trained {
    pub network: String,
    pub trained_on: String,
    pub patches: Option<u64>,
    pub epochs_run: Option<u64>,
    pub epochs_configured: Option<u64>,
}

/// One line of the comparison with the papers.
#[derive(Debug, Clone, PartialEq)]
pub struct PaperRow {
    pub result: String,
    pub paper: String,
    pub ours: String,
    pub note: String,
}

/// What a report is about.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    pub grid_points: Vec<String>,
    pub stages: Vec<(String, usize)>,
    pub detectors: Vec<String>,
    pub test_skies: Vec<String>,
    pub emission_models: Vec<String>,
    pub classifiers: Vec<String>,
    pub trained: Vec<Trained>,
    pub test_patches: Vec<u64>,
    pub nside: Vec<u64>,
    pub folds: Vec<u64>,
    pub classifier_epochs: Vec<(String, u64)>,
    /// `None` when the report has no sky, patch or training stage to judge.
    pub scale: Option<Scale>,
    /// Why the scale is what it is (one phrase per shortfall).
    pub shortfalls: Vec<String>,
    pub paper: Vec<PaperRow>,
}

fn u(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().map(|x| x as u64))
}

fn st(v: &serde_json::Value) -> String {
    v.as_str().unwrap_or("?").to_string()
}

fn list(v: &[String]) -> String {
    if v.is_empty() {
        "-".into()
    } else {
        v.join(", ")
    }
}

fn nums(v: &[u64]) -> String {
    let s: Vec<String> = v.iter().map(|x| thousands(*x)).collect();
    list(&s)
}

/// `100000` -> `100,000`.
pub fn thousands(x: u64) -> String {
    let s = x.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.2} %", 100.0 * x)
}

fn paper_cell(p: &Published) -> String {
    match p.std_percent {
        Some(s) => format!("{:.2} ± {:.2} %", p.percent, s),
        None => format!("{:.2} %", p.percent),
    }
}

/// Summarises the stored stage outputs of a report.
pub fn summarize(entries: &[Entry]) -> RunSummary {
    // Grid points: the labels of the leaf stages (those no other stage takes as input).
    let used: BTreeSet<&str> = entries
        .iter()
        .flat_map(|e| e.manifest.inputs.values().map(String::as_str))
        .collect();
    let mut grid_points = BTreeSet::new();
    for e in entries
        .iter()
        .filter(|e| !used.contains(e.manifest.hash.as_str()))
    {
        for l in e.label.split(" | ") {
            grid_points.insert(l.to_string());
        }
    }
    let mut stages: Vec<(String, usize)> = Vec::new();
    for e in entries {
        match stages.iter_mut().find(|(s, _)| *s == e.stage) {
            Some(x) => x.1 += 1,
            None => stages.push((e.stage.clone(), 1)),
        }
    }
    let by = |s: &'static str| entries.iter().filter(move |e| e.stage == s);
    let mut detectors = BTreeSet::new();
    let mut skies = BTreeSet::new();
    for e in by("score") {
        let g = &e.manifest.summary["grid"];
        detectors.insert(st(&g["detector"]));
        skies.insert(format!("{}-{}", st(&g["preset"]), st(&g["iem"])));
    }
    for e in by("detect") {
        if let Some(d) = e.manifest.summary["detector"].as_str() {
            detectors.insert(d.to_string());
        }
    }
    let emission_models: BTreeSet<String> = by("sky")
        .filter_map(|e| e.manifest.summary["iem"].as_str().map(String::from))
        .collect();
    let mut classifiers = BTreeSet::new();
    let mut folds = BTreeSet::new();
    let mut classifier_epochs = BTreeSet::new();
    for e in by("classify") {
        let m = &e.manifest.summary;
        let variant = st(&m["variant"]);
        classifiers.insert(format!("{variant} ({} track)", st(&m["track"])));
        if let Some(f) = u(&m["folds"]) {
            folds.insert(f);
        }
        let c = &e.manifest.config["classify"];
        let base = variant
            .trim_start_matches("image_")
            .trim_end_matches("_balanced")
            .trim_end_matches("_unbalanced")
            .to_string();
        let ep = u(&c[base.as_str()]["train"]["epochs"])
            .or_else(|| u(&c["image"][base.as_str()]["train"]["epochs"]));
        if let Some(ep) = ep {
            classifier_epochs.insert((variant, ep));
        }
    }
    let trained: Vec<Trained> = by("train")
        .filter(|e| e.manifest.summary["network"].as_str() != Some("none"))
        .map(|e| {
            let m = &e.manifest.summary;
            Trained {
                network: st(&m["network"]),
                trained_on: st(&m["trained_on"]),
                patches: u(&m["n_train_patches"]),
                epochs_run: u(&m["epochs_run"]),
                epochs_configured: u(&e.manifest.config["train"]["epochs"]),
            }
        })
        .collect();
    // Test patches: the patch sets a detector or classifier reads; without one, every set
    // that is not a training set.
    let train_inputs: BTreeSet<&str> = by("train")
        .flat_map(|e| e.manifest.inputs.values().map(String::as_str))
        .collect();
    let test_inputs: BTreeSet<&str> = entries
        .iter()
        .filter(|e| matches!(e.stage.as_str(), "detect" | "score" | "classify"))
        .filter_map(|e| e.manifest.inputs.get("patches").map(String::as_str))
        .collect();
    let test_patches: BTreeSet<u64> = by("patches")
        .filter(|e| {
            let h = e.manifest.hash.as_str();
            if test_inputs.is_empty() {
                !train_inputs.contains(h)
            } else {
                test_inputs.contains(h)
            }
        })
        .filter_map(|e| u(&e.manifest.summary["n_patches"]))
        .collect();
    let nside: BTreeSet<u64> = by("sky")
        .filter_map(|e| u(&e.manifest.summary["nside"]))
        .collect();

    let mut shortfalls = Vec::new();
    let mut scale = None;
    if !nside.is_empty() || !test_patches.is_empty() || !trained.is_empty() {
        let mut smoke = false;
        let mut below = false;
        if let Some(&n) = nside.iter().min()
            && n < PAPER_NSIDE
        {
            shortfalls.push(format!("sky maps at NSIDE {n} (paper: {PAPER_NSIDE})"));
            below = true;
            smoke |= n < 128;
        }
        if let Some(&n) = test_patches.iter().min()
            && n < PAPER_TEST_PATCHES
        {
            shortfalls.push(format!(
                "{} test patches per sky (paper: {PAPER_TEST_PATCHES})",
                thousands(n)
            ));
            below = true;
            smoke |= n < 100;
        }
        for t in &trained {
            if let Some(n) = t.patches
                && n < PAPER_TRAIN_PATCHES
            {
                shortfalls.push(format!(
                    "{} trained on {} {} patches for {} epochs (paper: {} patches)",
                    t.network,
                    thousands(n),
                    t.trained_on,
                    t.epochs_run.map(|x| x.to_string()).unwrap_or("?".into()),
                    thousands(PAPER_TRAIN_PATCHES)
                ));
                below = true;
                smoke |= n < 100;
            }
        }
        scale = Some(if smoke {
            Scale::Smoke
        } else if below {
            Scale::Ci
        } else {
            Scale::Paper
        });
    }

    let mut paper = Vec::new();
    let scores: Vec<&Entry> = by("score").collect();
    if !scores.is_empty() {
        let unek = scores.iter().find(|e| {
            let g = &e.manifest.summary["grid"];
            g["detector"] == "unek" && g["preset"] == "F0" && g["iem"] == "B1"
        });
        let note = match unek {
            None => "no UNEK F0-B1 score stage in this report".to_string(),
            Some(e) => {
                let mode = e.manifest.summary["mode"].as_str().unwrap_or("?");
                let rule = if mode == "legacy" {
                    "the paper's per-patch rules (score.mode = \"legacy\")".to_string()
                } else {
                    format!(
                        "{mode} one-to-one matching; the paper counts per patch (score.mode = \"legacy\" reproduces its rules)"
                    )
                };
                match scale {
                    Some(s) if s != Scale::Paper => format!("{rule}; {} scale", s.as_str()),
                    _ => rule,
                }
            }
        };
        for p in published::unek_f0b1() {
            paper.push(PaperRow {
                result: format!("UNEK on F0-B1: {}", p.what),
                paper: format!("{} ({})", paper_cell(&p), p.source),
                ours: unek
                    .and_then(|e| e.manifest.summary[p.what].as_f64())
                    .map(pct)
                    .unwrap_or_else(|| "-".into()),
                note: note.clone(),
            });
        }
    }
    let classify: Vec<&Entry> = by("classify").collect();
    if !classify.is_empty() {
        let dnn = classify.iter().find(|e| {
            e.manifest.summary["variant"] == "dnn" && e.manifest.summary["track"] == "catalog"
        });
        let note = match dnn {
            None => "no catalog-track DNN in this report".to_string(),
            Some(e) => {
                let proto = e.manifest.config["classify"]["protocol"]
                    .as_str()
                    .unwrap_or("?");
                let f = u(&e.manifest.summary["folds"]).unwrap_or(0);
                format!("ours: mean ± std over {f} folds ({proto}); the paper: 10 x 70/30 splits")
            }
        };
        for p in published::finke_dnn() {
            let ours = dnn
                .and_then(|e| {
                    let m = &e.manifest.summary["metrics"][p.what];
                    Some(format!(
                        "{:.2} ± {:.2} %",
                        100.0 * m["mean"].as_f64()?,
                        100.0 * m["std"].as_f64().unwrap_or(0.0)
                    ))
                })
                .unwrap_or_else(|| "-".into());
            paper.push(PaperRow {
                result: format!(
                    "DNN AGN vs PSR: {}",
                    if p.what == "auc" { "AUC" } else { p.what }
                ),
                paper: format!("{} ({})", paper_cell(&p), p.source),
                ours,
                note: note.clone(),
            });
        }
    }
    RunSummary {
        grid_points: grid_points.into_iter().collect(),
        stages,
        detectors: detectors.into_iter().collect(),
        test_skies: skies.into_iter().collect(),
        emission_models: emission_models.into_iter().collect(),
        classifiers: classifiers.into_iter().collect(),
        trained,
        test_patches: test_patches.into_iter().collect(),
        nside: nside.into_iter().collect(),
        folds: folds.into_iter().collect(),
        classifier_epochs: classifier_epochs.into_iter().collect(),
        scale,
        shortfalls,
        paper,
    }
}

/// The warning for a run below the paper's scale, `None` at the paper's scale.
pub fn warning(s: &RunSummary) -> Option<String> {
    let scale = s.scale?;
    let what = match scale {
        Scale::Paper => return None,
        Scale::Smoke => {
            "Smoke scale: this run checks that the pipeline works end to end; its numbers say nothing about how well the detectors or classifiers perform"
        }
        Scale::Ci => {
            "CI scale: far below the paper's; the numbers track regressions between versions and are not comparable with the published ones"
        }
    };
    Some(format!(
        "{what}. Below the paper: {}.",
        s.shortfalls.join("; ")
    ))
}

/// The summary block (HTML).
pub fn html(s: &RunSummary) -> String {
    let mut out = String::from("<section id=\"summary\" class=\"summary\"><h2>Summary</h2>\n");
    if let Some(w) = warning(s) {
        out.push_str(&format!(
            "<p class=\"warn\"><strong>&#9888; {}</strong></p>\n",
            esc(&w)
        ));
    }
    let stages = s
        .stages
        .iter()
        .map(|(n, k)| format!("{n} ({k})"))
        .collect::<Vec<_>>();
    let trained: Vec<String> = s
        .trained
        .iter()
        .map(|t| {
            format!(
                "{} on {}: {} patches, {} epochs{}",
                t.network,
                t.trained_on,
                t.patches.map(thousands).unwrap_or("?".into()),
                t.epochs_run.map(|x| x.to_string()).unwrap_or("?".into()),
                match t.epochs_configured {
                    Some(c) if Some(c) != t.epochs_run => format!(" (of {c} configured)"),
                    _ => String::new(),
                }
            )
        })
        .collect();
    let epochs: Vec<String> = s
        .classifier_epochs
        .iter()
        .map(|(v, e)| format!("{v}: {e}"))
        .collect();
    let mut rows: Vec<(&str, String)> = vec![
        ("grid points", format!("{}", s.grid_points.len())),
        ("stages", list(&stages)),
    ];
    let mut opt = |k: &'static str, v: String| {
        if v != "-" {
            rows.push((k, v));
        }
    };
    opt("detectors", list(&s.detectors));
    opt("test skies", list(&s.test_skies));
    opt("emission models", list(&s.emission_models));
    opt("classifiers", list(&s.classifiers));
    opt("training", list(&trained));
    opt("test patches per sky", nums(&s.test_patches));
    opt("NSIDE", nums(&s.nside));
    opt("CV folds", nums(&s.folds));
    opt("classifier epochs", list(&epochs));
    if let Some(sc) = s.scale {
        let paper = format!(
            "{} (paper: {} training patches, {} test patches per sky, NSIDE {})",
            sc.as_str(),
            thousands(PAPER_TRAIN_PATCHES),
            PAPER_TEST_PATCHES,
            PAPER_NSIDE
        );
        rows.push(("scale", paper));
    }
    out.push_str("<table class=\"kv\"><tbody>\n");
    for (k, v) in rows {
        out.push_str(&format!(
            "<tr><th>{}</th><td>{}</td></tr>\n",
            esc(k),
            esc(&v)
        ));
    }
    out.push_str("</tbody></table>\n");
    if !s.paper.is_empty() {
        out.push_str("<h3>The papers' numbers beside ours</h3>\n<div class=\"scroll\"><table><thead><tr><th>result</th><th>paper</th><th>this report</th><th>how they compare</th></tr></thead><tbody>\n");
        for r in &s.paper {
            out.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td>{}</td></tr>\n",
                esc(&r.result),
                esc(&r.paper),
                esc(&r.ours),
                esc(&r.note)
            ));
        }
        out.push_str("</tbody></table></div>\n");
    }
    out.push_str("</section>\n");
    out
}

/// The summary as JSON (for `manifest.json`).
pub fn json(s: &RunSummary) -> serde_json::Value {
    let stages: BTreeMap<&str, usize> = s.stages.iter().map(|(a, b)| (a.as_str(), *b)).collect();
    serde_json::json!({
        "grid_points": s.grid_points.len(),
        "stages": stages,
        "detectors": s.detectors,
        "test_skies": s.test_skies,
        "classifiers": s.classifiers,
        "training_patches": s.trained.iter().filter_map(|t| t.patches).collect::<Vec<_>>(),
        "epochs": s.trained.iter().filter_map(|t| t.epochs_run).collect::<Vec<_>>(),
        "test_patches": s.test_patches,
        "nside": s.nside,
        "scale": s.scale.map(|x| x.as_str()),
        "warning": warning(s),
        "paper": s.paper.iter().map(|r| serde_json::json!({
            "result": r.result, "paper": r.paper, "ours": r.ours, "note": r.note,
        })).collect::<Vec<_>>(),
    })
}
