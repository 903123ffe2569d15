//! The report as a new user sees it: the summary block and its scale warning, the papers'
//! numbers, numeric S90 columns with a separate status, readable stage-table headers, the
//! title from the config's `name`, the embedded catalog figures, and figures whose lines
//! never share a colour.

use gammabench::plot::{COLORS, Chart, Dash, SeriesKind, color};
use gammabench::report::summary::{self, Scale};
use gammabench::report::{Entry, leaderboards};
use gammabench::store::Manifest;
use serde_json::json;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn entry(stage: &str, hash: &str, label: &str, summary: serde_json::Value) -> Entry {
    entry_in(
        stage,
        hash,
        label,
        summary,
        json!({}),
        json!({}),
        PathBuf::new(),
    )
}

fn entry_in(
    stage: &str,
    hash: &str,
    label: &str,
    summary: serde_json::Value,
    inputs: serde_json::Value,
    config: serde_json::Value,
    dir: PathBuf,
) -> Entry {
    let manifest: Manifest = serde_json::from_value(json!({
        "stage": stage, "hash": format!("{hash:0<32}"), "config": config, "inputs": inputs,
        "seed": 1, "crate_version": "0", "git_commit": "test", "created_utc": "now",
        "wall_time_s": 1.0, "threads": 1, "files": {}, "summary": summary,
    }))
    .unwrap();
    Entry {
        stage: stage.into(),
        label: label.into(),
        dir,
        manifest,
    }
}

/// A detection grid at the given scale: one sky, its test patches, a trained network, a
/// detector and its score (UNEK on F0-B1, purity 0.5, completeness 0.25).
fn detection_grid(nside: u64, test_patches: u64, train_patches: u64) -> Vec<Entry> {
    let h = |c: char| format!("{c:0<32}");
    vec![
        entry(
            "sky",
            "a",
            "p",
            json!({"iem": "B1", "nside": nside, "n_sources": 10}),
        ),
        entry_in(
            "patches",
            "b",
            "p",
            json!({"n_patches": test_patches}),
            json!({"sky": h('a')}),
            json!({}),
            PathBuf::new(),
        ),
        entry_in(
            "patches",
            "c",
            "train-sky",
            json!({"n_patches": train_patches}),
            json!({}),
            json!({}),
            PathBuf::new(),
        ),
        entry_in(
            "train",
            "d",
            "net",
            json!({"network": "segmentation_unet", "trained_on": "F0-B1",
                   "n_train_patches": train_patches, "epochs_run": 2}),
            json!({"patches": h('c')}),
            json!({"train": {"epochs": 2}}),
            PathBuf::new(),
        ),
        entry_in(
            "detect",
            "e",
            "p",
            json!({"detector": "unek"}),
            json!({"patches": h('b'), "model": h('d')}),
            json!({}),
            PathBuf::new(),
        ),
        entry_in(
            "score",
            "f",
            "p",
            json!({"grid": {"detector": "unek", "preset": "F0", "iem": "B1", "trained_on": "F0-B1"},
                   "purity": 0.5, "completeness": 0.25, "mode": "global"}),
            json!({"patches": h('b'), "detections": h('e')}),
            json!({}),
            PathBuf::new(),
        ),
    ]
}

#[test]
fn summary_warns_at_smoke_scale_and_not_at_the_papers() {
    let smoke = summary::summarize(&detection_grid(64, 16, 24));
    assert_eq!(smoke.scale, Some(Scale::Smoke));
    assert_eq!(smoke.grid_points, vec!["p".to_string()]);
    assert_eq!(smoke.detectors, vec!["unek".to_string()]);
    assert_eq!(smoke.test_skies, vec!["F0-B1".to_string()]);
    assert_eq!(smoke.test_patches, vec![16]);
    assert_eq!(smoke.trained[0].patches, Some(24));
    let html = summary::html(&smoke);
    assert!(html.contains("id=\"summary\""), "{html}");
    assert!(html.contains("Smoke scale"), "{html}");
    assert!(
        html.contains("24 F0-B1 patches") && html.contains("100,000"),
        "{html}"
    );
    // the paper's UNEK F0-B1 numbers beside ours
    assert!(
        html.contains("87.81 %") && html.contains("48.47 %"),
        "{html}"
    );
    assert!(
        html.contains("50.00 %") && html.contains("25.00 %"),
        "{html}"
    );

    let ci = summary::summarize(&detection_grid(256, 768, 400));
    assert_eq!(ci.scale, Some(Scale::Ci));
    assert!(summary::warning(&ci).unwrap().starts_with("CI scale"));

    let paper = summary::summarize(&detection_grid(256, 768, 100_000));
    assert_eq!(paper.scale, Some(Scale::Paper));
    assert!(summary::warning(&paper).is_none());
    assert!(!summary::html(&paper).contains("class=\"warn\""));
}

#[test]
fn summary_sets_finke_dnn_beside_our_classifier() {
    let e = entry_in(
        "classify",
        "a",
        "classify:variant=dnn",
        json!({"track": "catalog", "variant": "dnn", "folds": 10,
               "metrics": {"accuracy": {"mean": 0.973, "std": 0.009},
                           "auc": {"mean": 0.9587, "std": 0.02}}}),
        json!({}),
        json!({"classify": {"protocol": "kfold", "dnn": {"train": {"epochs": 50}}}}),
        PathBuf::new(),
    );
    let s = summary::summarize(&[e]);
    assert_eq!(s.scale, None, "no sky or training stage: nothing to judge");
    assert_eq!(s.classifier_epochs, vec![("dnn".to_string(), 50)]);
    let html = summary::html(&s);
    assert!(html.contains("97.60 ± 0.20 %") && html.contains("97.99 ± 0.75 %"));
    assert!(html.contains("97.30 ± 0.90 %") && html.contains("95.87 ± 2.00 %"));
}

fn s90(value: Option<f64>, status: &str) -> serde_json::Value {
    json!({"value": value, "status": status, "purity_crossing": value,
           "completeness_crossing": null, "completeness_status": "not_reached"})
}

fn score(preset: &str, iem: &str, det: &str, s1: serde_json::Value) -> Entry {
    entry(
        "score",
        &format!("{preset}{iem}{det}"),
        "p",
        json!({"grid": {"detector": det, "preset": preset, "iem": iem, "trained_on": "F0-B1"},
               "purity": 0.9, "completeness": 0.4, "n_sources": 10,
               "s90": {"S1_all": s1, "SNR_c_all": s90(None, "not_reached")}}),
    )
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let h = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|x| x.unwrap().iter().map(String::from).collect())
        .collect();
    (h, rows)
}

#[test]
fn s90_columns_are_numbers_with_the_status_apart() {
    let es = [
        score("F0", "B1", "unek", s90(Some(2.5e-9), "reached")),
        score("F0", "B2", "unek", s90(None, "not_reached")),
    ];
    let refs: Vec<&Entry> = es.iter().collect();
    let d = tempfile::tempdir().unwrap();
    leaderboards::detection_table(&refs)
        .write_all(d.path(), "det")
        .unwrap();
    leaderboards::robustness_table(&refs)
        .write_all(d.path(), "rob")
        .unwrap();
    let (h, rows) = read_csv(&d.path().join("det.csv"));
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let (v, st) = (col("S90(S1) (ph cm-2 s-1)"), col("S90(S1) status"));
    for numeric in [
        v,
        col("S1 purity crossing (ph cm-2 s-1)"),
        col("S1 completeness crossing (ph cm-2 s-1)"),
        col("S90(SNR_c)"),
    ] {
        for r in &rows {
            assert!(
                r[numeric].is_empty() || r[numeric].parse::<f64>().is_ok(),
                "{}: `{}` is not a number",
                h[numeric],
                r[numeric]
            );
        }
    }
    assert_eq!(rows[0][v].parse::<f64>().unwrap(), 2.5e-9);
    assert_eq!(rows[0][st], "reached");
    assert_eq!(rows[1][v], "");
    assert_eq!(rows[1][st], "not_reached");
    let (h, rows) = read_csv(&d.path().join("rob.csv"));
    let b2 = h.iter().position(|x| x == "B2 S90(S1)").unwrap();
    assert_eq!(rows[0][b2], "");
    let b2s = h.iter().position(|x| x == "B2 S90(S1) status").unwrap();
    assert_eq!(rows[0][b2s], "not_reached");
    // the Markdown shows a missing number as `-`
    let md = std::fs::read_to_string(d.path().join("det.md")).unwrap();
    assert!(md.contains("| - | not_reached |"), "{md}");
}

#[test]
fn stage_tables_have_readable_headers_and_keep_keys_in_the_json() {
    let e = entry(
        "detect",
        "a",
        "p",
        json!({"detect_s": 1.5, "patches_per_s": 10.0, "detector": "ts"}),
    );
    let t = gammabench::report::stage_table(&[&e]);
    assert!(
        t.header
            .contains(&"detection time (s) [detect_s]".to_string())
    );
    assert!(
        t.header
            .contains(&"patches per second [patches_per_s]".to_string())
    );
    let j = t.to_json();
    assert_eq!(j[0]["detect_s"], 1.5, "{j}");
    assert_eq!(j[0]["patches_per_s"], 10.0);
}

#[test]
fn palette_has_sixteen_distinct_colours() {
    let set: BTreeSet<(u8, u8, u8)> = COLORS.iter().map(|c| (c.0, c.1, c.2)).collect();
    assert!(set.len() >= 10 && set.len() == COLORS.len());
    for (i, a) in COLORS.iter().enumerate() {
        for b in &COLORS[i + 1..] {
            let d = ((a.0 as f64 - b.0 as f64).powi(2)
                + (a.1 as f64 - b.1 as f64).powi(2)
                + (a.2 as f64 - b.2 as f64).powi(2))
            .sqrt();
            assert!(d > 55.0, "{a:?} and {b:?} are too close ({d:.0})");
        }
    }
    assert_eq!(color(COLORS.len()), COLORS[0]);
    // the checker sees two identical lines
    let line = || SeriesKind::Line {
        xs: vec![1.0, 2.0],
        ys: vec![0.1, 0.2],
    };
    let c = Chart::new("t", "x", "y")
        .with("a", color(0), line())
        .with_dash("b", color(0), Dash::Dashed, line())
        .with("c", color(0), line());
    assert_eq!(c.indistinguishable(), vec![("a".into(), "c".into())]);
}

/// The nine test skies F0-F2 x B1-B3: nine colours in every panel, the same sky the same
/// colour in every panel, no two lines alike.
#[test]
fn nine_sky_figure_uses_nine_colours() {
    let d = tempfile::tempdir().unwrap();
    let mut es = Vec::new();
    for preset in ["F0", "F1", "F2"] {
        for iem in ["B1", "B2", "B3"] {
            for det in ["unek", "ts"] {
                let dir = d.path().join(format!("{preset}{iem}{det}"));
                std::fs::create_dir_all(&dir).unwrap();
                let mut csv = String::from("metric,axis,region,lo,hi,centre,n,k,value\n");
                for m in ["purity", "completeness"] {
                    for (x, y) in [(1e-10, 0.2), (1e-9, 0.5), (1e-8, 0.9)] {
                        csv.push_str(&format!("{m},S1,all,0,0,{x},10,5,{y}\n"));
                    }
                }
                std::fs::write(dir.join("curves.csv"), csv).unwrap();
                es.push(entry_in(
                    "score",
                    &format!("{preset}{iem}{det}"),
                    "p",
                    json!({"grid": {"detector": det, "preset": preset, "iem": iem, "trained_on": "F0-B1"}}),
                    json!({}),
                    json!({}),
                    dir,
                ));
            }
        }
    }
    let refs: Vec<&Entry> = es.iter().collect();
    let charts = leaderboards::sky_curve_charts(&refs, "S1");
    assert_eq!(charts.len(), 4, "two detectors x purity, completeness");
    let mut colour_of = std::collections::BTreeMap::new();
    for c in &charts {
        assert_eq!(c.series.len(), 9);
        let colours: BTreeSet<_> = c
            .series
            .iter()
            .map(|s| (s.color.0, s.color.1, s.color.2))
            .collect();
        assert_eq!(colours.len(), 9, "{}: {} colours", c.title, colours.len());
        assert!(c.indistinguishable().is_empty());
        for s in &c.series {
            let prev = colour_of.insert(s.label.clone(), (s.color, s.dash));
            assert!(prev.is_none() || prev == Some((s.color, s.dash)));
        }
    }
    // F0-B1 and F2-B1 (alike before: five colours for nine skies) now differ
    assert_ne!(colour_of["F0-B1"].0, colour_of["F2-B1"].0);
    assert_eq!(colour_of["F0-B2"].1, Dash::Dashed);
    // and the figure is drawn
    leaderboards::figures(&refs, &d.path().join("fig"), "fig").unwrap();
    assert!(
        d.path()
            .join("fig/purity_completeness_S1_by_sky.png")
            .exists()
    );
}

/// A catalog grid run through the CLI, published with the library: the title is the
/// config's `name`, the summary block sits at the top, and the catalog figures are embedded
/// and copied.
#[test]
fn report_title_is_the_config_name_and_figures_are_embedded() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("grid.toml");
    std::fs::write(
        &cfg,
        "name = \"my-catalog-grid\"\n[catalog]\nprior = \"4fgl-dr1\"\npreset = [\"F0\", \"F1\"]\n",
    )
    .unwrap();
    let store = d.path().join("runs");
    let o = Command::new(env!("CARGO_BIN_EXE_gammabench"))
        .args(["-q", "--store", store.to_str().unwrap(), "run"])
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let points = gammabench::pipeline::load_points(Some(&cfg), &[]).unwrap();
    assert_eq!(gammabench::report::config_title(&points), "my-catalog-grid");
    let plan = gammabench::pipeline::build(&points).unwrap();
    let entries =
        gammabench::pipeline::collect(&plan, &gammabench::store::Store::new(&store)).unwrap();
    let out = d.path().join("results/some-folder");
    gammabench::report::publish(&entries, &out, &gammabench::report::config_title(&points))
        .unwrap();
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("<h1>my-catalog-grid</h1>"), "{html}");
    assert!(!html.contains("some-folder"));
    let summary_at = html.find("id=\"summary\"").unwrap();
    let first_section = html.find("<section id=\"s0\"").unwrap();
    assert!(summary_at < first_section);
    assert!(html.contains("<th>grid points</th><td>2</td>"), "{html}");
    // catalog figures: a gallery of their own, every image copied
    assert!(html.contains(">catalogs</a>"));
    let srcs: Vec<&str> = html
        .split("<img src=\"")
        .skip(1)
        .map(|s| s.split('"').next().unwrap())
        .collect();
    assert!(srcs.iter().any(|s| s.contains("dnde_eflux")), "{srcs:?}");
    for s in srcs {
        assert!(out.join(s).exists(), "{s} missing");
    }
    let csv = std::fs::read_to_string(out.join("leaderboard_catalog.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("AGN [n_agn]"), "{csv}");
}

// ---- the paper-layout figures (Figs. 5-6) and the union / intersection of UNEK and CNET ----

use gammabench::report::{combinations, paper_layout};
use gammabench::score::paper::LatCut;

/// The published UNEK curves drawn on F0-B1 hold the counts of the published evaluation
/// file, counted here independently: TP / (TP + FP) and TP / (TP + FN) per S1 bin of
/// `logspace(-12, -7, 20)` (half-open bins, the last closed) at |b| > 20 and |b| < 20.
#[test]
fn published_unek_curves_hold_the_published_counts() {
    let path = gammabench::report::published::unek_evaluation_file();
    if !path.exists() {
        eprintln!("skipped: {} not here", path.display());
        return;
    }
    let rows = gammabench::score::paper::read_evaluation(&path).unwrap();
    // independent reading: flate2 + csv, by column name
    let mut r = csv::Reader::from_reader(flate2::read::GzDecoder::new(
        std::fs::File::open(&path).unwrap(),
    ));
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (cs, cl, cf) = (col("stat_code"), col("test_lat"), col("test_flux_1000"));
    let raw: Vec<(u8, f64, f64)> = r
        .records()
        .map(|x| {
            let x = x.unwrap();
            let f = |c: usize| x[c].trim().parse::<f64>().unwrap_or(f64::NAN);
            (f(cs) as u8, f(cl), f(cf).abs())
        })
        .collect();
    assert_eq!(raw.len(), 11_008);
    let n = |code: u8| raw.iter().filter(|r| r.0 == code).count();
    assert_eq!((n(0), n(1), n(2)), (4999, 694, 5315));
    let edges: Vec<f64> = (0..20)
        .map(|i| 10f64.powf(-12.0 + 5.0 * i as f64 / 19.0))
        .collect();
    let bin = |v: f64| -> Option<usize> {
        (0..19).find(|&i| v >= edges[i] && (v < edges[i + 1] || (i == 18 && v <= edges[19])))
    };
    for (cut, keep) in [
        (
            LatCut::Above(20.0),
            Box::new(|b: f64| b.abs() > 20.0) as Box<dyn Fn(f64) -> bool>,
        ),
        (LatCut::Below(20.0), Box::new(|b: f64| b.abs() < 20.0)),
    ] {
        let mut counts = [[0usize; 3]; 19];
        for &(code, b, s1) in &raw {
            if keep(b)
                && let Some(i) = bin(s1)
            {
                counts[i][code as usize] += 1;
            }
        }
        for (metric, other) in [("purity", 1), ("completeness", 2)] {
            let pts = paper_layout::published_points(&rows, metric, "S1", cut, 1.0).unwrap();
            let want: Vec<(f64, usize, usize)> = counts
                .iter()
                .enumerate()
                .filter(|(_, c)| c[0] + c[other] > 0)
                .map(|(i, c)| ((edges[i] * edges[i + 1]).sqrt(), c[0], c[0] + c[other]))
                .collect();
            assert_eq!(pts.len(), want.len(), "{metric} {cut:?}");
            for (p, (x, k, n)) in pts.iter().zip(&want) {
                assert!(
                    (p.x / x - 1.0).abs() < 1e-9,
                    "{metric} {cut:?}: x {} vs {x}",
                    p.x
                );
                assert_eq!((p.k, p.n), (*k, *n), "{metric} {cut:?} at {x:e}");
                assert_eq!(p.value, *k as f64 / *n as f64);
                // (Wilson bounds at k = 0 or k = n equal the value up to rounding)
                assert!(p.lo <= p.value + 1e-12 && p.value <= p.hi + 1e-12);
            }
        }
    }
    // SNR_c: groups merged to at least 2 TP, as the notebook does
    let pts = paper_layout::published_points(&rows, "purity", "SNR_c", LatCut::None, 1.0).unwrap();
    assert!(!pts.is_empty() && pts.iter().all(|p| p.k >= 2));
    assert!(pts.iter().map(|p| p.k).sum::<usize>() <= 4999);
}

fn tiny_truth(dir: &Path) -> (PathBuf, PathBuf, Vec<(f64, f64)>) {
    // one patch at (100, 45) with three sources 20 px apart
    let geom = gammabench::projection::PatchGeometry::default();
    let (l0, b0) = (100.0, 45.0);
    let pp = dir.join("patches.csv");
    std::fs::write(&pp, format!("patch_id,glon_deg,glat_deg\n0,{l0},{b0}\n")).unwrap();
    let tp = dir.join("truth.csv");
    let mut t = String::from(
        "patch_id,source_id,class,x_pix,y_pix,glon_deg,glat_deg,flux_1000_ph_cm2_s,\
         flux_10000_ph_cm2_s,snr_c,sbr_c\n",
    );
    let srcs = [(10.0, 10.0), (30.0, 30.0), (50.0, 50.0)];
    for (i, (x, y)) in srcs.iter().enumerate() {
        let (l, b) = geom.pix_to_sky(l0, b0, *x, *y);
        t.push_str(&format!("0,{i},AGN,{x},{y},{l},{b},1e-9,1e-10,5,0.5\n"));
    }
    std::fs::write(&tp, t).unwrap();
    (tp, pp, srcs.to_vec())
}

fn dets(name: &str, at: &[(f64, f64)]) -> Vec<gammabench::detect::Detection> {
    let geom = gammabench::projection::PatchGeometry::default();
    at.iter()
        .map(|&(x, y)| {
            let (l, b) = geom.pix_to_sky(100.0, 45.0, x, y);
            gammabench::detect::Detection {
                patch_id: 0,
                x_pix: x,
                y_pix: y,
                glon_deg: l,
                glat_deg: b,
                score: 0.5,
                detector: name.into(),
            }
        })
        .collect()
}

/// UNEK finds sources 1 and 2 and one fake, CNET sources 1 (half a pixel off) and 3 and
/// another fake: the union has 3 TP and 2 FP, the intersection 1 TP and no FP.
fn tiny_lists() -> (
    Vec<gammabench::detect::Detection>,
    Vec<gammabench::detect::Detection>,
) {
    (
        dets("unek", &[(10.0, 10.0), (30.0, 30.0), (20.0, 50.0)]),
        dets("cnet", &[(10.5, 10.0), (50.0, 50.0), (55.0, 10.0)]),
    )
}

#[test]
fn union_and_intersection_of_a_hand_made_sky_are_scored() {
    let d = tempfile::tempdir().unwrap();
    let (truth, patches, _) = tiny_truth(d.path());
    let (a, b) = tiny_lists();
    let cfg = gammabench::score::config::ScoreConfig {
        bootstrap_reps: 0,
        ..Default::default()
    };
    let [(u, udir), (i, idir)] =
        combinations::score_pair(&truth, &patches, &a, &b, &cfg, 1, &d.path().join("c")).unwrap();
    assert_eq!((u.n_detections, u.tp, u.fp), (5, 3, 2));
    assert_eq!((i.n_detections, i.tp, i.fp), (1, 1, 0));
    for dir in [udir, idir] {
        for f in ["curves.csv", "metrics.json", "s90.csv"] {
            assert!(dir.join(f).exists(), "{f}");
        }
        // the large per-detection files are left out (`gammabench combine` re-makes them)
        for f in ["match_table.csv", "detections.csv"] {
            assert!(!dir.join(f).exists(), "{f}");
        }
    }
}

/// A store holding one sky's UNEK and CNET score stages (scored for real from the tiny
/// lists), and optionally a third detector's.
fn tiny_store(root: &Path, detectors: &[&str]) -> Vec<Entry> {
    let pdir = root.join("patches").join(format!("{:0<32}", "p"));
    std::fs::create_dir_all(&pdir).unwrap();
    tiny_truth(&pdir);
    let (a, b) = tiny_lists();
    let mut out = Vec::new();
    for (k, det) in detectors.iter().enumerate() {
        let list = match *det {
            "unek" => a.clone(),
            "cnet" => b.clone(),
            _ => dets(det, &[(30.0, 30.0)]),
        };
        let dh = format!("{:0<32}", format!("d{k}"));
        let sh = format!("{:0<32}", format!("s{k}"));
        let ddir = root.join("detect").join(&dh);
        std::fs::create_dir_all(&ddir).unwrap();
        gammabench::detect::write_detections(&ddir, &list).unwrap();
        let sdir = root.join("score").join(&sh);
        let cfg = gammabench::score::config::ScoreConfig {
            bootstrap_reps: 0,
            ..Default::default()
        };
        let rep = gammabench::score::score_detections(
            &pdir.join("truth.csv"),
            &ddir.join("detections.csv"),
            Some(&pdir.join("patches.csv")),
            &sdir,
            &cfg,
            1,
            false,
        )
        .unwrap();
        let mut summary = gammabench::score::stage::report_summary(&rep);
        summary["grid"] =
            json!({"detector": det, "preset": "F0", "iem": "B1", "trained_on": "F0-B1"});
        out.push(entry_in(
            "score",
            &format!("s{k}"),
            &format!("test:{det}"),
            summary,
            json!({"detections": dh, "patches": format!("{:0<32}", "p")}),
            json!({"score": cfg}),
            sdir,
        ));
    }
    out
}

#[test]
fn report_adds_union_and_intersection_rows_claims_and_paper_layout_figures() {
    let d = tempfile::tempdir().unwrap();
    let es = tiny_store(&d.path().join("runs"), &["cnet", "ts", "unek"]);
    let out = d.path().join("report");
    gammabench::report::publish(&es, &out, "tiny").unwrap();
    let (h, rows) = read_csv(&out.join("leaderboard_detection.csv"));
    let det = h.iter().position(|x| x == "detector").unwrap();
    let names: Vec<&str> = rows.iter().map(|r| r[det].as_str()).collect();
    assert_eq!(
        names,
        vec![
            "cnet",
            "ts",
            "unek",
            combinations::INTERSECTION,
            combinations::UNION
        ]
    );
    let hash = h.iter().position(|x| x == "hash").unwrap();
    assert_eq!(rows[3][hash], "", "a combination is no stage");
    // the claims table: counts and ratios to UNEK alone
    let (h, rows) = read_csv(&out.join("combination_claims.csv"));
    assert_eq!(rows.len(), 1);
    let get = |name: &str| rows[0][h.iter().position(|x| x == name).unwrap()].clone();
    assert_eq!((get("TP unek"), get("FP unek")), ("2".into(), "1".into()));
    assert_eq!((get("TP union"), get("FP union")), ("3".into(), "2".into()));
    assert_eq!(
        (get("TP intersection"), get("FP intersection")),
        ("1".into(), "0".into())
    );
    assert_eq!(get("TP_union/TP_unek").parse::<f64>().unwrap(), 1.5);
    assert_eq!(get("FP_union/FP_unek").parse::<f64>().unwrap(), 2.0);
    assert_eq!(get("FP_union/FP_unek claimed").parse::<f64>().unwrap(), 2.0);
    assert_eq!(get("FP_union/FP_unek holds (claimed ± 0.25)"), "yes");
    assert_eq!(get("TP_union/TP_unek holds (claimed ± 0.05)"), "no");
    assert_eq!(get("FP_inter/FP_unek").parse::<f64>().unwrap(), 0.0);
    // the figures: two per sky, PNG and SVG, non-empty, linked from the page
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    for stem in ["F0-B1_fig5_S1", "F0-B1_fig6_SNR_SBR"] {
        for ext in ["png", "svg"] {
            let f = out.join(format!("figures/paper_layout/{stem}.{ext}"));
            assert!(
                std::fs::metadata(&f).unwrap().len() > 1000,
                "{}",
                f.display()
            );
        }
        assert!(
            html.contains(&format!("figures/paper_layout/{stem}.png")),
            "{stem}"
        );
    }
    assert!(html.contains("combination_claims") || html.contains("union and intersection"));
    let svg = std::fs::read_to_string(out.join("figures/paper_layout/F0-B1_fig5_S1.svg")).unwrap();
    let texts: Vec<&str> = svg
        .split("</text>")
        .filter_map(|t| t.rsplit_once('>').map(|x| x.1.trim()))
        .collect();
    for label in ["cnet", "ts", "unek", "0.9 level"] {
        assert!(texts.contains(&label), "legend lacks {label}");
    }
    if gammabench::report::published::unek_evaluation_file().exists() {
        assert!(texts.contains(&paper_layout::PUBLISHED_LABEL));
    }
    assert!(svg.contains("10⁻"), "powers of ten as ticks");
    // the same detector has the same colour in every figure
    let refs: Vec<&Entry> = es.iter().collect();
    let figs = paper_layout::sky_figures(&refs, None);
    let mut colour = std::collections::BTreeMap::new();
    for f in &figs {
        for p in &f.panels {
            assert_eq!(p.lines.len(), 3);
            for l in &p.lines {
                let c = (l.color.0, l.color.1, l.color.2);
                assert_eq!(*colour.entry(l.label.clone()).or_insert(c), c);
            }
        }
    }
    assert_eq!(colour.len(), 3);
}

#[test]
fn no_combination_rows_without_both_unek_and_cnet() {
    let d = tempfile::tempdir().unwrap();
    let es = tiny_store(&d.path().join("runs"), &["ts", "unek"]);
    let out = d.path().join("report");
    gammabench::report::publish(&es, &out, "tiny").unwrap();
    let (_, rows) = read_csv(&out.join("leaderboard_detection.csv"));
    assert_eq!(rows.len(), 2);
    assert!(!out.join("combination_claims.csv").exists());
}

#[test]
fn detection_leaderboard_carries_each_trained_detectors_training_cost_from_its_log() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path().join("runs");
    let mut es = tiny_store(&root, &["ts", "unek"]);
    // UNEK's detections (detect stage d1) came from a network trained for 3 epochs (train
    // stage t); the TS baseline (d0) trained nothing.
    let tdir = root.join("train").join(format!("{:0<32}", "t"));
    std::fs::create_dir_all(&tdir).unwrap();
    std::fs::write(
        tdir.join("train_log.csv"),
        "epoch,train_loss,val_loss,learning_rate,wall_time_s,best\n\
         1,0.5,0.4,0.003,100.25,1\n2,0.4,0.3,0.003,200.5,1\n3,0.3,0.31,0.003,50.25,0\n",
    )
    .unwrap();
    // a stale summary (0 s) must not win over the log
    es.push(entry_in(
        "train",
        "t",
        "segmentation_unet on F0-B1",
        json!({"n_train_patches": 10000, "train_time_s": 0.0,
               "pretrained": "models/reference/segmentation-unet"}),
        json!({}),
        json!({}),
        tdir,
    ));
    for (k, model) in [(0, "0"), (1, "t")] {
        es.push(entry_in(
            "detect",
            &format!("d{k}"),
            "detect",
            json!({}),
            json!({"model": format!("{model:0<32}")}),
            json!({}),
            root.join("detect")
                .join(format!("{:0<32}", format!("d{k}"))),
        ));
    }
    let out = d.path().join("report");
    gammabench::report::publish(&es, &out, "tiny").unwrap();
    let (h, rows) = read_csv(&out.join("leaderboard_detection.csv"));
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    let det = col("detector");
    let unek = rows.iter().find(|r| r[det] == "unek").unwrap();
    assert_eq!(unek[col("training time (s)")], "351");
    assert_eq!(unek[col("training patches")], "10000");
    assert_eq!(unek[col("training epochs")], "3");
    assert_eq!(
        unek[col("pretrained model")],
        "models/reference/segmentation-unet"
    );
    let ts = rows.iter().find(|r| r[det] == "ts").unwrap();
    assert_eq!(ts[col("training time (s)")], "");
    assert_eq!(ts[col("training epochs")], "");
}
