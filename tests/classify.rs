//! Classifier tests (issue 6): leakage-free scaling, every variant on a separable toy
//! problem, save/load, and the `classify cv` command on the real catalog (smoke size).

use gammabench::classify::forest::{ForestConfig, RandomForest};
use gammabench::classify::nets::{Kind, NetClassifier, NetConfig};
use gammabench::classify::{Classifier, Layout, Matrix, cv, metrics, run};
use rand::Rng as _;
use rand_distr::{Distribution, Normal};

/// 17 columns shaped like the catalog track (7 "band", 10 "history"); class 1 has a
/// curved spectrum (+1.5 in the middle bands) and a flat light curve, class 0 a straight
/// spectrum and a variable light curve. 20 % class 1.
fn toy(n: usize, seed: u64) -> (Matrix, Vec<usize>) {
    let mut r = gammabench::rng::stream(seed, "test/toy", 0);
    let noise = Normal::new(0.0, 0.4).unwrap();
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = usize::from(i % 5 == 0);
        let mut row = Vec::new();
        let level: f64 = r.random_range(-1.0..1.0);
        for b in 0..7 {
            let curve = if c == 1 {
                1.5 * (1.0 - ((b as f64 - 3.0) / 3.0).powi(2))
            } else {
                0.0
            };
            row.push((level - 0.2 * b as f64 + curve + noise.sample(&mut r)) as f32);
        }
        for _ in 0..10 {
            let var = if c == 1 { 0.1 } else { 1.0 };
            row.push((level + var * noise.sample(&mut r) * 2.0) as f32);
        }
        rows.push(row);
        y.push(c);
    }
    (Matrix::from_rows(&rows), y)
}

fn layout() -> Layout {
    Layout {
        band: 0..7,
        history: 7..17,
        extra: 17..17,
    }
}

fn quick(kind: Kind, epochs: usize, lr: f64) -> NetConfig {
    let mut c = NetConfig::defaults(kind);
    c.train.epochs = epochs;
    c.train.learning_rate = lr;
    c.mc_samples = 10;
    c
}

fn variants() -> Vec<Box<dyn Classifier>> {
    let l = layout();
    let forest = ForestConfig {
        n_trees: 40,
        ..ForestConfig::default()
    };
    vec![
        Box::new(NetClassifier::new(
            Kind::Dnn,
            quick(Kind::Dnn, 15, 0.01),
            l.clone(),
            2,
        )),
        Box::new(NetClassifier::new(
            Kind::Rnn,
            quick(Kind::Rnn, 15, 0.01),
            l.clone(),
            2,
        )),
        Box::new(NetClassifier::new(
            Kind::Bnn,
            quick(Kind::Bnn, 15, 0.005),
            l.clone(),
            2,
        )),
        Box::new(NetClassifier::new(
            Kind::ConvBilstm,
            quick(Kind::ConvBilstm, 15, 0.005),
            l.clone(),
            2,
        )),
        Box::new(RandomForest::new(forest.clone(), false, 2)),
        Box::new(RandomForest::new(forest, true, 2)),
    ]
}

#[test]
fn scaling_is_fitted_on_training_rows_only() {
    let (x, y) = toy(300, 1);
    let split = &cv::kfold_splits(&y, 5, 0.1, 3)[0];
    let a = run::prepare(&x, &y, split);
    // poison the validation and test rows: nothing fitted may change
    let mut poisoned = x.clone();
    for &i in split.test.iter().chain(&split.valid) {
        for j in 0..x.d {
            poisoned.data[i * x.d + j] = 1e4 + 1e3 * j as f32;
        }
    }
    let b = run::prepare(&poisoned, &y, split);
    assert_eq!(a.scaler, b.scaler, "scaler saw validation or test rows");
    assert_eq!(a.xt, b.xt);
    assert_ne!(a.xs, b.xs);
    // and the training rows are standardised: mean 0, std 1 per column
    for j in 0..a.xt.d {
        let col: Vec<f64> = (0..a.xt.n).map(|i| a.xt.at(i, j) as f64).collect();
        let m = col.iter().sum::<f64>() / col.len() as f64;
        assert!(m.abs() < 1e-4, "column {j} mean {m}");
    }
}

#[test]
fn every_variant_separates_the_toy_problem_and_round_trips() {
    let (x, y) = toy(600, 2);
    let split = &cv::kfold_splits(&y, 4, 0.15, 7)[0];
    let p = run::prepare(&x, &y, split);
    let dir = tempfile::tempdir().unwrap();
    for mut m in variants() {
        m.fit(&p.xt, &p.yt, Some((&p.xv, &p.yv)), 42).unwrap();
        let prob = m.predict_proba(&p.xs).unwrap();
        let acc = metrics::accuracy(&p.ys, &prob);
        assert!(acc > 0.95, "{}: accuracy {acc}", m.name());
        let d = dir.path().join(m.name());
        m.save(&d).unwrap();
        let back = gammabench::classify::load(&d).unwrap();
        assert_eq!(back.name(), m.name());
        assert_eq!(
            back.predict_logits(&p.xs).unwrap(),
            m.predict_logits(&p.xs).unwrap(),
            "{}: loaded model predicts differently",
            m.name()
        );
    }
}

#[test]
fn bayesian_variant_reports_a_spread() {
    let (x, y) = toy(300, 3);
    let split = &cv::kfold_splits(&y, 3, 0.15, 1)[0];
    let p = run::prepare(&x, &y, split);
    let mut m = NetClassifier::new(Kind::Bnn, quick(Kind::Bnn, 5, 0.005), layout(), 2);
    m.fit(&p.xt, &p.yt, Some((&p.xv, &p.yv)), 5).unwrap();
    let s = m.predict_spread(&p.xs).unwrap().expect("bnn has a spread");
    assert_eq!(s.len(), p.xs.n);
    assert!(s.iter().all(|v| v.is_finite() && *v >= 0.0));
    assert!(s.iter().any(|v| *v > 0.0), "MC dropout gave no spread");
    // deterministic: same seed, same predictions
    assert_eq!(
        m.predict_proba(&p.xs).unwrap(),
        m.predict_proba(&p.xs).unwrap()
    );
}

#[test]
fn cli_cv_writes_the_fold_table_and_predictions() {
    let out = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_gammabench");
    let cfg = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/smoke/classify.toml");
    let st = std::process::Command::new(bin)
        .args([
            "-q",
            "classify",
            "cv",
            "--config",
            cfg,
            "--set",
            "classify.variant=rf",
            "--out",
        ])
        .arg(out.path())
        .status()
        .unwrap();
    assert!(st.success());
    let oof = std::fs::read_to_string(out.path().join("oof_predictions.csv")).unwrap();
    let mut lines = oof.lines();
    assert_eq!(
        lines.next().unwrap(),
        "source_id,fold,true_class,p_AGN,p_PSR"
    );
    let ids: Vec<&str> = lines.map(|l| l.split(',').next().unwrap()).collect();
    // 3508 AGN + 271 PSR, each tested exactly once
    assert_eq!(ids.len(), 3508 + 271);
    let uniq: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(uniq.len(), ids.len());
    let folds = std::fs::read_to_string(out.path().join("folds.csv")).unwrap();
    assert_eq!(folds.lines().count(), 1 + 3);
    let unc = std::fs::read_to_string(out.path().join("unassociated_predictions.csv")).unwrap();
    assert_eq!(unc.lines().count(), 1 + 1667);
    // predict with the saved fold models
    let pred = out.path().join("pred.csv");
    let data = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/4fgl/4fgl_dr2_v27_all.csv.gz"
    );
    let st = std::process::Command::new(bin)
        .args(["-q", "classify", "predict", "--model"])
        .arg(out.path())
        .args(["--input", data, "--out"])
        .arg(&pred)
        .status()
        .unwrap();
    assert!(st.success());
    assert_eq!(
        std::fs::read_to_string(&pred).unwrap().lines().count(),
        1 + 3508 + 271 + 1667
    );
}

/// 7x7x5 cut-outs whose class (0, 1, 2) sets the energy bin holding a Gaussian blob, on a flat
/// background, Poisson-drawn: separable by spectrum.
fn toy_cutouts(n: usize, seed: u64) -> (Matrix, Vec<usize>) {
    let mut rows = Vec::new();
    let mut y = Vec::new();
    for i in 0..n {
        let c = i % 3;
        let mut row = Vec::with_capacity(245);
        for yy in 0..7 {
            for xx in 0..7 {
                let d2 =
                    ((yy as f32 - 3.0).powi(2) + (xx as f32 - 3.0).powi(2)) / (2.0 * 1.2 * 1.2);
                for b in 0..5 {
                    let blob = if b == c + 1 { 25.0 * (-d2).exp() } else { 0.0 };
                    row.push(2.0 + blob);
                }
            }
        }
        rows.push(row);
        y.push(c);
    }
    let x =
        gammabench::classify::image::poisson(&Matrix::from_rows(&rows), seed, "test/cutouts", 0);
    (x, y)
}

#[test]
fn image_cnn_and_forest_separate_toy_cutouts() {
    let (x, y) = toy_cutouts(360, 4);
    let split = &cv::kfold_splits(&y, 4, 0.15, 2)[0];
    let p = run::prepare(&x, &y, split);
    let mut cfg = NetConfig::defaults(Kind::Cnn);
    cfg.train.epochs = 12;
    cfg.train.learning_rate = 0.003;
    let mut cnn = NetClassifier::new(Kind::Cnn, cfg, Layout::flat(245), 3);
    cnn.fit(&p.xt, &p.yt, Some((&p.xv, &p.yv)), 8).unwrap();
    let acc = metrics::accuracy(&p.ys, &cnn.predict_proba(&p.xs).unwrap());
    assert!(acc > 0.95, "cnn: accuracy {acc}");
    let dir = tempfile::tempdir().unwrap();
    cnn.save(dir.path()).unwrap();
    let back = gammabench::classify::load(dir.path()).unwrap();
    assert_eq!(
        back.predict_logits(&p.xs).unwrap(),
        cnn.predict_logits(&p.xs).unwrap()
    );
    // random forest on photometric features
    use gammabench::classify::image::photometric;
    let (ft, fs) = (
        photometric(&x.select(&split.train), 5),
        photometric(&x.select(&split.test), 5),
    );
    let mut rf = RandomForest::new(
        ForestConfig {
            n_trees: 50,
            ..ForestConfig::default()
        },
        false,
        3,
    );
    rf.fit(&ft, &p.yt, None, 1).unwrap();
    let acc = metrics::accuracy(&p.ys, &rf.predict_proba(&fs).unwrap());
    assert!(acc > 0.95, "photometric rf: accuracy {acc}");
}
