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
