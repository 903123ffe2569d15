//! The catalog track's three tasks (issue 17): labels of AGN / PSR, MSP / YNG (DR2 pulsars
//! labelled by name from DR4) and BLL / FSRQ (BCUs predicted), the upper-limit inputs, SMOTE
//! to a fixed size, the stage keys of the default task, and the `classify cv` tables and the
//! Bayesian spread figure on smoke configs.

use gammabench::classify::data::{self, Inputs};
use gammabench::classify::{Matrix, smote};
use gammabench::config::{ClassifyConfig, Task, UpperLimits};
use std::path::{Path, PathBuf};
use std::process::Command;

fn dr(n: u8) -> PathBuf {
    let f = match n {
        2 => "4fgl_dr2_v27_all.csv.gz",
        _ => "4fgl_dr4_v35_all.csv.gz",
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/4fgl")
        .join(f)
}

fn count(y: &[usize], k: usize) -> usize {
    y.iter().filter(|t| **t == k).count()
}

#[test]
fn task_labels_have_the_catalog_counts() {
    // AGN vs PSR: GROUP AGN / PSR, UNC predicted; the old loader gives the same rows
    let a = data::load_task(&dr(2), Task::AgnPsr, Inputs::new(false), None).unwrap();
    assert_eq!(
        (count(&a.y, 0), count(&a.y, 1), a.unc_ids.len()),
        (3508, 271, 1667)
    );
    let old = data::load_catalog(&dr(2), false).unwrap();
    let bits = |m: &Matrix| m.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!((bits(&old.x), old.y), (bits(&a.x), a.y.clone()));
    // BLL vs FSRQ: CLASS1 bll/BLL 1286 + 22, fsrq/FSRQ 701 + 43, bcu/BCU 1382 + 2 predicted
    let b = data::load_task(&dr(2), Task::BllFsrq, Inputs::new(false), None).unwrap();
    assert_eq!(
        (count(&b.y, 0), count(&b.y, 1), b.unc_ids.len()),
        (1308, 744, 1384)
    );
    assert_eq!(b.classes, ["BLL", "FSRQ"]);
    assert_eq!(b.unc_pos.len(), 1384);
    // MSP vs YNG on DR2: every pulsar is `PSR` there, so DR4's CLASS1 labels them by name
    let m = data::load_task(&dr(2), Task::MspYng, Inputs::new(true), Some(&dr(4))).unwrap();
    let lm = m.label_match.clone().expect("labels found by name");
    assert_eq!(
        (lm.n_pulsars, lm.n_msp, lm.n_yng, lm.n_unmatched),
        (271, 144, 125, 2)
    );
    assert_eq!((count(&m.y, 1), count(&m.y, 0)), (144, 125));
    assert_eq!(m.layout.extra.len(), 1, "GLAT column");
    // without a labels file the DR2 task is an error naming the file, not a panic
    let e = data::load_task(&dr(2), Task::MspYng, Inputs::new(true), None)
        .err()
        .expect("no labels");
    assert!(e.to_string().contains("4fgl_dr2"), "{e}");
    // DR4 labels its own pulsars: MSP 139 + 40, PSR 137 + 4
    let m4 = data::load_task(&dr(4), Task::MspYng, Inputs::new(true), None).unwrap();
    assert!(m4.label_match.is_none());
    assert_eq!((count(&m4.y, 1), count(&m4.y, 0)), (179, 141));
    assert_eq!(m4.layout.band.len(), 8, "DR4 has 8 bands");
}

#[test]
fn upper_limits_replace_the_undetected_best_fit_fluxes() {
    let mut inp = Inputs::new(false);
    let a = data::load_task(&dr(2), Task::AgnPsr, inp, None).unwrap();
    inp.upper_limits = UpperLimits::UpperLimit;
    let b = data::load_task(&dr(2), Task::AgnPsr, inp, None).unwrap();
    assert_eq!(a.n_upper_limits, 0);
    assert!(b.n_upper_limits > 5000, "{}", b.n_upper_limits);
    assert_eq!(a.x.d, b.x.d);
    let mut changed = 0;
    for (u, v) in a.x.data.iter().zip(&b.x.data) {
        if u.is_finite() && v.is_finite() {
            // the upper limit flux + Unc_hi is never below the best fit
            assert!(*v >= *u - 1e-6, "{v} < {u}");
            changed += usize::from(v != u);
        }
    }
    assert!(changed > 5000);
    // DR2's undetected Flux_Band_6 spans many decades; its upper limits do not
    let col = |m: &Matrix, j: usize| -> (f32, f32) {
        let v: Vec<f32> = (0..m.n)
            .map(|i| m.at(i, j))
            .filter(|v| v.is_finite())
            .collect();
        (
            v.iter().copied().fold(f32::INFINITY, f32::min),
            v.iter().copied().fold(f32::NEG_INFINITY, f32::max),
        )
    };
    let (lo_a, _) = col(&a.x, 6);
    let (lo_b, _) = col(&b.x, 6);
    assert!(lo_a < -16.0 && lo_b > -13.0, "{lo_a} {lo_b}");
}

#[test]
fn smote_to_a_fixed_size_fills_every_class() {
    let rows: Vec<Vec<f32>> = (0..30).map(|i| vec![i as f32, (i % 7) as f32]).collect();
    let y: Vec<usize> = (0..30).map(|i| usize::from(i >= 20)).collect();
    let x = Matrix::from_rows(&rows);
    let (xo, yo) = smote::oversample_to(&x, &y, 3, 4, Some(50));
    assert_eq!((count(&yo, 0), count(&yo, 1)), (50, 50));
    assert_eq!(xo.n, 100);
    assert_eq!(
        &xo.data[..x.data.len()],
        &x.data[..],
        "original rows first, unchanged"
    );
    assert_eq!(smote::oversample_to(&x, &y, 3, 4, Some(50)), (xo, yo));
    // a class already above the size keeps its rows
    let (_, y2) = smote::oversample_to(&x, &y, 3, 4, Some(15));
    assert_eq!((count(&y2, 0), count(&y2, 1)), (20, 15));
}

#[test]
fn the_default_task_keeps_the_stored_keys() {
    // new keys are skip-serialised at their defaults, so the AGN / PSR stage keys (and the
    // stored CI-grid hashes) do not change
    let c = ClassifyConfig::default();
    let v = serde_json::to_value(&c).unwrap();
    for k in [
        "task",
        "pulsar_labels_file",
        "use_history",
        "upper_limits",
        "smote",
        "smote_per_class",
    ] {
        assert!(v.get(k).is_none(), "`{k}` serialised at its default");
    }
    let c2 = ClassifyConfig {
        task: Task::BllFsrq,
        ..ClassifyConfig::default()
    };
    assert_eq!(serde_json::to_value(&c2).unwrap()["task"], "bll_fsrq");
}

fn cv(dir: &Path, sets: &[&str]) {
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/smoke/classify.toml");
    let mut args = vec!["-q", "classify", "cv", "--config", cfg];
    for s in sets {
        args.extend(["--set", s]);
    }
    let o = Command::new(env!("CARGO_BIN_EXE_gammabench"))
        .args(&args)
        .arg("--out")
        .arg(dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn bll_fsrq_predicts_every_bcu_with_a_bayesian_spread() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("bnn");
    cv(
        &out,
        &[
            "classify.task=\"bll_fsrq\"",
            "classify.variant=\"bnn\"",
            "classify.upper_limits=\"upper_limit\"",
            "classify.smote=\"fixed\"",
            "classify.smote_per_class=1000",
        ],
    );
    let t = std::fs::read_to_string(out.join("bcu_predictions.csv")).unwrap();
    let mut lines = t.lines();
    assert_eq!(
        lines.next().unwrap(),
        "source_id,ra_deg,dec_deg,glon_deg,glat_deg,p_BLL,p_FSRQ,p_FSRQ_fold_std,std_p_FSRQ,predicted_class"
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 1384, "one row per BCU");
    let names: std::collections::HashSet<_> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(names.len(), 1384);
    for r in &rows {
        let p: f64 = r[5].parse::<f64>().unwrap() + r[6].parse::<f64>().unwrap();
        assert!((p - 1.0).abs() < 1e-9, "{r:?}");
        assert!(r[8].parse::<f64>().unwrap() >= 0.0);
        assert!(["BLL", "FSRQ", "unclassified"].contains(&r[9]));
    }
    let oof = std::fs::read_to_string(out.join("oof_predictions.csv")).unwrap();
    assert_eq!(
        oof.lines().next().unwrap(),
        "source_id,fold,true_class,p_BLL,p_FSRQ,std_p_FSRQ"
    );
    assert_eq!(oof.lines().count(), 1 + 1308 + 744);
    // source by source against the authors' published BNN scores: every BCU matched
    let cmp = d.path().join("cmp.json");
    let o = Command::new(env!("CARGO_BIN_EXE_gammabench"))
        .args(["-q", "classify", "compare", "--ours"])
        .arg(out.join("bcu_predictions.csv"))
        .arg("--theirs")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/data/reference/manconi2021/butter2021_bnn_bcu.csv"
        ))
        .args(["--column", "mean_p_FSRQ", "--out"])
        .arg(&cmp)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&cmp).unwrap()).unwrap();
    assert_eq!(r["n_common"], 1384);
    let rho = r["pearson_p"].as_f64().unwrap();
    // even a 3-epoch smoke network ranks the BCUs like the authors' BNN
    assert!(rho > 0.5, "correlation {rho}");
    // the spread figure and its table from this run
    let fig = d.path().join("fig");
    let o = Command::new(env!("CARGO_BIN_EXE_gammabench"))
        .args(["-q", "classify", "spread-figure", "--run"])
        .arg(format!("fixed={}", out.display()))
        .arg("--out")
        .arg(&fig)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(fig.join("bnn_spread_vs_mean.png").exists());
    let tab = std::fs::read_to_string(fig.join("bnn_spread_vs_mean.csv")).unwrap();
    let n: usize = tab
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(3).unwrap().parse::<usize>().unwrap())
        .sum();
    assert_eq!(n, 1308 + 744, "every test source in one bin");
    // a non-Bayesian run has no spread: an error naming the file
    let dnn = d.path().join("dnn");
    cv(
        &dnn,
        &["classify.task=\"bll_fsrq\"", "classify.variant=\"rf\""],
    );
    let o = Command::new(env!("CARGO_BIN_EXE_gammabench"))
        .args(["-q", "classify", "spread-figure", "--run"])
        .arg(format!("rf={}", dnn.display()))
        .arg("--out")
        .arg(&fig)
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("oof_predictions.csv"));
}

#[test]
fn msp_yng_trains_and_predicts_the_unassociated_sources() {
    let d = tempfile::tempdir().unwrap();
    cv(
        d.path(),
        &[
            "classify.task=\"msp_yng\"",
            "classify.variant=\"dnn\"",
            "classify.use_glat=true",
            "classify.use_history=false",
            "classify.protocol=\"repeated_split\"",
            "classify.repeats=2",
        ],
    );
    let t = std::fs::read_to_string(d.path().join("unassociated_predictions.csv")).unwrap();
    assert!(t.starts_with("source_id,ra_deg,dec_deg,glon_deg,glat_deg,p_YNG,p_MSP,"));
    assert_eq!(t.lines().count(), 1 + 1667);
    let oof = std::fs::read_to_string(d.path().join("oof_predictions.csv")).unwrap();
    // 2 repeats of a stratified 30 % test split of 144 MSP + 125 YNG
    assert_eq!(oof.lines().count(), 1 + 2 * (43 + 38));
    let counts: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(d.path().join("unassociated_counts.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(counts["label_match"]["n_msp"], 144);
    // classify predict reads the task and inputs from the run's config.toml
    let pred = d.path().join("pred.csv");
    let st = Command::new(env!("CARGO_BIN_EXE_gammabench"))
        .args(["-q", "classify", "predict", "--model"])
        .arg(d.path())
        .arg("--input")
        .arg(dr(2))
        .arg("--out")
        .arg(&pred)
        .status()
        .unwrap();
    assert!(st.success());
    let p = std::fs::read_to_string(&pred).unwrap();
    assert!(p.starts_with("source_id,p_YNG,p_MSP,predicted_class\n"));
    assert_eq!(p.lines().count(), 1 + 144 + 125 + 1667);
}

#[test]
fn features_export_is_the_cv_rows_and_splits() {
    // `classify features` (the table for scikit-learn's peer forest): one row per labelled
    // source, and splits that partition the rows per fold, each source tested once, in the
    // same folds as the out-of-fold predictions of `classify cv`
    let d = tempfile::tempdir().unwrap();
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/smoke/classify.toml");
    let feat = d.path().join("feat");
    let o = Command::new(env!("CARGO_BIN_EXE_gammabench"))
        .args(["-q", "classify", "features", "--config", cfg])
        .args(["--set", "classify.variant=\"rf\"", "--out"])
        .arg(&feat)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let f = std::fs::read_to_string(feat.join("features.csv")).unwrap();
    let header = f.lines().next().unwrap();
    assert!(header.starts_with("source_id,class,band_0,"), "{header}");
    let width = header.split(',').count();
    let rows: Vec<Vec<&str>> = f.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == width));
    let ids: std::collections::HashSet<&str> = rows.iter().map(|r| r[0]).collect();
    assert_eq!(ids.len(), rows.len(), "one row per source");
    let s = std::fs::read_to_string(feat.join("splits.csv")).unwrap();
    assert_eq!(s.lines().next().unwrap(), "split,source_id,role");
    let mut per_split: std::collections::BTreeMap<&str, Vec<(&str, &str)>> = Default::default();
    let mut test_of: std::collections::HashMap<&str, &str> = Default::default();
    for l in s.lines().skip(1) {
        let v: Vec<&str> = l.split(',').collect();
        per_split.entry(v[0]).or_default().push((v[1], v[2]));
        if v[2] == "test" {
            assert!(
                test_of.insert(v[1], v[0]).is_none(),
                "{} tested twice",
                v[1]
            );
        }
    }
    for (k, members) in &per_split {
        let set: std::collections::HashSet<&str> = members.iter().map(|m| m.0).collect();
        assert_eq!(set.len(), members.len(), "split {k}: a source in two roles");
        assert_eq!(set, ids, "split {k}: not every labelled source");
    }
    assert_eq!(test_of.len(), ids.len(), "every source tested once");
    let out = d.path().join("cv");
    cv(&out, &["classify.variant=\"rf\""]);
    let oof = std::fs::read_to_string(out.join("oof_predictions.csv")).unwrap();
    let mut n = 0;
    for l in oof.lines().skip(1) {
        let v: Vec<&str> = l.split(',').collect();
        assert_eq!(test_of[v[0]], v[1], "{}: fold", v[0]);
        n += 1;
    }
    assert_eq!(n, ids.len());
}
