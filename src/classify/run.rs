//! `gammabench classify cv` and `gammabench classify predict`.
//!
//! For every split (stratified K-fold, or Finke's repeated 70/30): fit the [`Scaler`] on the
//! training rows, (SMOTE inside the `rf_smote` variant, on training rows), fit the model with
//! the validation rows for early stopping, fit the temperature on the validation rows, score
//! the test rows before and after calibration, and predict the unassociated sources. Outputs
//! (all CSV, column names with units where there are any):
//!
//! * `folds.csv`: one row per fold: sizes, temperature, accuracy, balanced accuracy, AUC,
//!   ECE and Brier before (`_raw`) and after calibration, log loss, training time in s;
//! * `oof_predictions.csv`: `source_id,fold,true_class,p_AGN,p_PSR[,std_p_PSR]` (the Bayesian spread is
//!   named so that the classification scorer, which reads every `p_*` column as a class, skips it), calibrated
//!   (every labelled source once under K-fold), ready for the classification scorer;
//! * `summary.csv`, `summary.md`: mean and standard deviation over folds;
//! * `unassociated_predictions.csv`: for every UNC source the mean over the fold models of the
//!   calibrated probabilities, their spread over folds, and the class: AGN or PSR when its
//!   probability is >= `unc_threshold`, `unclassified` otherwise; `unassociated_counts.json`;
//! * `models/fold_<k>/`: each fold's model, scaler and temperature (read by `classify predict`).

use super::calibration;
use super::data;
use super::forest::RandomForest;
use super::metrics;
use super::nets::{Kind, NetClassifier};
use super::scale::Scaler;
pub use super::summary::{CvOutput, FoldResult, Summary, summarise, summary_table, write_summary};
use super::{Classifier, Matrix, cv};
use crate::config::{ClassifyConfig, ExperimentConfig, Protocol, SmoteMode, Task, Variant};
use crate::error::{Error, Result};
use crate::formats::{atomic_write, fmt_f64};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Builds an untrained classifier for the configured variant.
pub fn make(c: &ClassifyConfig, layout: &super::Layout, n_classes: usize) -> Box<dyn Classifier> {
    match c.variant {
        Variant::Rf => Box::new(RandomForest::new(c.forest.clone(), false, n_classes)),
        Variant::RfSmote => Box::new(RandomForest::new(c.forest.clone(), true, n_classes)),
        Variant::Dnn => Box::new(
            NetClassifier::new(Kind::Dnn, c.dnn.clone(), layout.clone(), n_classes).on(c.device),
        ),
        Variant::Rnn => Box::new(
            NetClassifier::new(Kind::Rnn, c.rnn.clone(), layout.clone(), n_classes).on(c.device),
        ),
        Variant::Bnn => Box::new(
            NetClassifier::new(Kind::Bnn, c.bnn.clone(), layout.clone(), n_classes).on(c.device),
        ),
        Variant::Cnn => Box::new(
            NetClassifier::new(
                Kind::Cnn,
                c.image.cnn.clone(),
                super::Layout::flat(super::nets::IMAGE_SHAPE.0.pow(2) * super::nets::IMAGE_SHAPE.1),
                3,
            )
            .on(c.device),
        ),
        Variant::ConvBilstm => Box::new(
            NetClassifier::new(
                Kind::ConvBilstm,
                c.conv_bilstm.clone(),
                layout.clone(),
                n_classes,
            )
            .on(c.device),
        ),
    }
}

/// One split's matrices after fitting the scaler on its training rows only.
pub struct Prepared {
    pub scaler: Scaler,
    pub xt: Matrix,
    pub yt: Vec<usize>,
    pub xv: Matrix,
    pub yv: Vec<usize>,
    pub xs: Matrix,
    pub ys: Vec<usize>,
}

/// Fits the [`Scaler`] on `split.train` rows (never validation or test rows) and transforms
/// the three parts.
pub fn prepare(x: &Matrix, y: &[usize], split: &cv::Split) -> Prepared {
    let raw_train = x.select(&split.train);
    let scaler = Scaler::fit(&raw_train);
    let labels = |idx: &[usize]| idx.iter().map(|i| y[*i]).collect::<Vec<_>>();
    Prepared {
        xt: scaler.transform(&raw_train),
        yt: labels(&split.train),
        xv: scaler.transform(&x.select(&split.valid)),
        yv: labels(&split.valid),
        xs: scaler.transform(&x.select(&split.test)),
        ys: labels(&split.test),
        scaler,
    }
}

/// Resolves a data path: as given, else relative to the crate root (for `cargo run`).
pub fn resolve_data(p: &Path) -> PathBuf {
    if p.exists() || p.is_absolute() {
        return p.to_path_buf();
    }
    let alt = Path::new(env!("CARGO_MANIFEST_DIR")).join(p);
    if alt.exists() { alt } else { p.to_path_buf() }
}

/// Loads the data of the configured task (the pulsar labels file resolved like the catalog).
pub fn load_data(c: &ClassifyConfig) -> Result<data::CatalogData> {
    let path = resolve_data(&c.catalog_file);
    let labels = resolve_data(&c.pulsar_labels_file);
    data::load_task(
        &path,
        c.task,
        data::Inputs::of(c),
        (c.task == Task::MspYng).then_some(labels.as_path()),
    )
}

/// The file the predictions for the task's unlabelled sources go to.
pub fn unlabelled_file(task: Task) -> &'static str {
    match task {
        Task::BllFsrq => "bcu_predictions.csv",
        _ => "unassociated_predictions.csv",
    }
}

/// SMOTE rows appended to the (standardised) training rows of a network variant, as
/// `classify.smote` asks; the forests balance by themselves (`rf_smote`) or not at all.
fn augment(c: &ClassifyConfig, x: Matrix, y: Vec<usize>, seed: u64) -> (Matrix, Vec<usize>) {
    let net = !matches!(c.variant, Variant::Rf | Variant::RfSmote);
    match c.smote {
        SmoteMode::None => (x, y),
        _ if !net => (x, y),
        SmoteMode::Minority => super::smote::oversample(&x, &y, c.forest.smote_k, seed),
        SmoteMode::Fixed => {
            super::smote::oversample_to(&x, &y, c.forest.smote_k, seed, Some(c.smote_per_class))
        }
    }
}

/// The splits of a config's protocol (K-fold or repeated 70/30) over the labelled rows.
fn splits_of(cfg: &ExperimentConfig, y: &[usize]) -> Vec<cv::Split> {
    let c = &cfg.classify;
    match c.protocol {
        Protocol::Kfold => cv::kfold_splits(y, c.folds, c.valid_fraction, cfg.seed),
        Protocol::RepeatedSplit => {
            cv::repeated_splits(y, c.repeats, c.test_fraction, c.valid_fraction, cfg.seed)
        }
    }
}

/// `classify features`: the labelled catalog-track table exactly as the classifiers get it
/// before standardisation, for peers outside the crate (scikit-learn's forest in
/// `benches/peers/rf_sklearn.py`) to run on the same rows and the same splits:
/// * `features.csv`: `source_id,class,<column>...` (the `Flux_Band` columns `band_<i>`, the
///   `Flux_History` columns `history_<i>`, then `glat` when enabled; an empty cell is a
///   missing value, which the classifiers impute by the training part's median);
/// * `splits.csv`: `split,source_id,role` with role `train`, `valid` or `test` for every
///   fold (K-fold) or repeat (70/30) of the config's protocol and seed.
///
/// Returns (rows, columns, splits).
pub fn export_features(cfg: &ExperimentConfig, out: &Path) -> Result<(usize, usize, usize)> {
    if cfg.classify.track == crate::config::Track::Image {
        return Err(Error::Usage(
            "classify features: the catalog track only (classify.track = \"catalog\")".into(),
        ));
    }
    let d = load_data(&cfg.classify)?;
    let splits = splits_of(cfg, &d.y);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut names: Vec<String> = Vec::with_capacity(d.x.d);
    names.extend((0..d.layout.band.len()).map(|i| format!("band_{i}")));
    names.extend((0..d.layout.history.len()).map(|i| format!("history_{i}")));
    names.extend(d.layout.extra.clone().map(|_| "glat".to_string()));
    let mut f = format!("source_id,class,{}\n", names.join(","));
    for (r, id) in d.ids.iter().enumerate() {
        write!(f, "{id},{}", d.classes[d.y[r]]).ok();
        for v in &d.x.data[r * d.x.d..(r + 1) * d.x.d] {
            if v.is_nan() {
                f.push(',');
            } else {
                write!(f, ",{v}").ok();
            }
        }
        f.push('\n');
    }
    atomic_write(&out.join("features.csv"), f.as_bytes())?;
    let mut sp = String::from("split,source_id,role\n");
    for s in &splits {
        for (role, idx) in [("train", &s.train), ("valid", &s.valid), ("test", &s.test)] {
            for &i in idx {
                writeln!(sp, "{},{},{role}", s.fold, d.ids[i]).ok();
            }
        }
    }
    atomic_write(&out.join("splits.csv"), sp.as_bytes())?;
    Ok((d.ids.len(), d.x.d, splits.len()))
}

/// Runs cross-validation of the configured variant on the catalog track and writes `out`.
pub fn run_cv(cfg: &ExperimentConfig, out: &Path) -> Result<CvOutput> {
    if cfg.classify.track == crate::config::Track::Image {
        return super::image::run_image_cv(cfg, out);
    }
    let c = &cfg.classify;
    let d = load_data(c)?;
    let classes = d.classes;
    let pos = classes[1];
    log::info!(
        "classify {} {}: {} labelled ({} {}, {} {}), {} to predict, {} missing cells imputed by training medians, {} upper limits",
        c.task.as_str(),
        c.variant.as_str(),
        d.y.len(),
        d.y.iter().filter(|t| **t == 0).count(),
        classes[0],
        d.y.iter().filter(|t| **t == 1).count(),
        classes[1],
        d.unc_ids.len(),
        d.n_missing,
        d.n_upper_limits
    );
    if let Some(m) = &d.label_match {
        log::info!(
            "  MSP / YNG labels by name from {}: {} pulsars, {} MSP, {} YNG, {} not matched (left out)",
            m.labels_file,
            m.n_pulsars,
            m.n_msp,
            m.n_yng,
            m.n_unmatched
        );
    }
    let k = classes.len();
    let splits = splits_of(cfg, &d.y);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut oof = String::from("source_id,fold,true_class");
    for cl in classes {
        write!(oof, ",p_{cl}").ok();
    }
    let bayes = c.variant == Variant::Bnn;
    if bayes {
        write!(oof, ",std_p_{pos}").ok();
    }
    oof.push('\n');
    let mut folds = Vec::new();
    let mut unc_sum = vec![vec![0.0; k]; d.unc_ids.len()];
    let mut unc_sq = vec![0.0; d.unc_ids.len()];
    let mut unc_mc = vec![0.0; d.unc_ids.len()];
    for sp in &splits {
        let Prepared {
            scaler,
            xt,
            yt,
            xv,
            yv,
            xs,
            ys,
        } = prepare(&d.x, &d.y, sp);
        let mut model = make(c, &d.layout, k);
        let fold_seed: u64 = rand::Rng::random(&mut crate::rng::stream(
            cfg.seed,
            "classify/fold",
            sp.fold as u64,
        ));
        let (xt, yt) = augment(c, xt, yt, fold_seed);
        let t0 = Instant::now();
        model.fit(&xt, &yt, Some((&xv, &yv)), fold_seed)?;
        let train_time_s = t0.elapsed().as_secs_f64();
        let temperature = if c.calibrate && !yv.is_empty() {
            calibration::fit_temperature(&model.predict_logits(&xv)?, &yv)
        } else {
            1.0
        };
        let logits = model.predict_logits(&xs)?;
        let raw_p = calibration::apply(&logits, 1.0);
        let p = calibration::apply(&logits, temperature);
        let spread = model.predict_spread(&xs)?;
        for (r, &i) in sp.test.iter().enumerate() {
            write!(oof, "{},{},{}", d.ids[i], sp.fold, classes[d.y[i]]).ok();
            for v in &p[r] {
                write!(oof, ",{}", fmt_f64(*v)).ok();
            }
            if let Some(s) = &spread {
                write!(oof, ",{}", fmt_f64(s[r])).ok();
            }
            oof.push('\n');
        }
        let fr = FoldResult {
            fold: sp.fold,
            n_train: sp.train.len(),
            n_valid: sp.valid.len(),
            n_test: sp.test.len(),
            temperature,
            raw: metrics::scores(&ys, &raw_p, k),
            calibrated: metrics::scores(&ys, &p, k),
            train_time_s,
        };
        log::info!(
            "  fold {}: accuracy {:.4}, AUC {:.4}, ECE {:.4} -> {:.4} (T = {:.3}), {:.1} s",
            sp.fold,
            fr.calibrated.accuracy,
            fr.calibrated.auc,
            fr.raw.ece,
            fr.calibrated.ece,
            temperature,
            train_time_s
        );
        folds.push(fr);
        if d.unc_x.n > 0 {
            let xu = scaler.transform(&d.unc_x);
            let pu = calibration::apply(&model.predict_logits(&xu)?, temperature);
            for (acc, (q, sq)) in unc_sum.iter_mut().zip(pu.iter().zip(unc_sq.iter_mut())) {
                for (a, b) in acc.iter_mut().zip(q) {
                    *a += b;
                }
                *sq += q[1] * q[1];
            }
            if let Some(s) = model.predict_spread(&xu)? {
                for (a, b) in unc_mc.iter_mut().zip(s) {
                    *a += b;
                }
            }
        }
        let mdir = out.join("models").join(format!("fold_{}", sp.fold));
        model.save(&mdir)?;
        super::write_json(&mdir.join("scaler.json"), &scaler)?;
        super::write_json(&mdir.join("temperature.json"), &temperature)?;
    }
    atomic_write(&out.join("oof_predictions.csv"), oof.as_bytes())?;
    // folds.csv
    let mut fcsv = String::from(
        "fold,n_train,n_valid,n_test,temperature,accuracy,balanced_accuracy,auc,ece_raw,ece,brier_raw,brier,log_loss_raw,log_loss,train_time_s\n",
    );
    for f in &folds {
        writeln!(
            fcsv,
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{:.3}",
            f.fold,
            f.n_train,
            f.n_valid,
            f.n_test,
            fmt_f64(f.temperature),
            fmt_f64(f.calibrated.accuracy),
            fmt_f64(f.calibrated.balanced_accuracy),
            fmt_f64(f.calibrated.auc),
            fmt_f64(f.raw.ece),
            fmt_f64(f.calibrated.ece),
            fmt_f64(f.raw.brier),
            fmt_f64(f.calibrated.brier),
            fmt_f64(f.raw.log_loss),
            fmt_f64(f.calibrated.log_loss),
            f.train_time_s
        )
        .ok();
    }
    atomic_write(&out.join("folds.csv"), fcsv.as_bytes())?;
    let summary = summarise(&folds);
    write_summary(out, c.variant.as_str(), &summary)?;
    // the unlabelled sources: one row each, positions for cross-matching
    let nf = splits.len() as f64;
    let mut counts = [0usize; 3];
    let mut ucsv = format!(
        "source_id,ra_deg,dec_deg,glon_deg,glat_deg,p_{},p_{pos},p_{pos}_fold_std",
        classes[0]
    );
    if bayes {
        write!(ucsv, ",std_p_{pos}").ok();
    }
    ucsv.push_str(",predicted_class\n");
    for (i, id) in d.unc_ids.iter().enumerate() {
        let p: Vec<f64> = unc_sum[i].iter().map(|v| v / nf).collect();
        let sd = (unc_sq[i] / nf - p[1] * p[1]).max(0.0).sqrt();
        let cls = if p[0] >= c.unc_threshold {
            counts[0] += 1;
            classes[0]
        } else if p[1] >= c.unc_threshold {
            counts[1] += 1;
            classes[1]
        } else {
            counts[2] += 1;
            "unclassified"
        };
        let q = &d.unc_pos[i];
        write!(
            ucsv,
            "{id},{},{},{},{},{},{},{}",
            fmt_f64(q.ra_deg),
            fmt_f64(q.dec_deg),
            fmt_f64(q.glon_deg),
            fmt_f64(q.glat_deg),
            fmt_f64(p[0]),
            fmt_f64(p[1]),
            fmt_f64(sd)
        )
        .ok();
        if bayes {
            write!(ucsv, ",{}", fmt_f64(unc_mc[i] / nf)).ok();
        }
        writeln!(ucsv, ",{cls}").ok();
    }
    atomic_write(&out.join(unlabelled_file(c.task)), ucsv.as_bytes())?;
    let mut uj = serde_json::json!({
        "task": c.task.as_str(),
        "n_unassociated": d.unc_ids.len(),
        "threshold": c.unc_threshold,
        "unclassified": counts[2],
    });
    uj[classes[0]] = counts[0].into();
    uj[classes[1]] = counts[1].into();
    if c.task == Task::AgnPsr {
        uj["paper_dnn"] = serde_json::json!({"n_unassociated": 1679, "AGN": 1050, "PSR": 78, "unclassified": 551});
    }
    if let Some(m) = &d.label_match {
        uj["label_match"] = serde_json::to_value(m).map_err(|e| Error::Internal(e.to_string()))?;
    }
    super::write_json(&out.join("unassociated_counts.json"), &uj)?;
    let text = toml::to_string_pretty(cfg).map_err(|e| Error::Internal(e.to_string()))?;
    atomic_write(&out.join("config.toml"), text.as_bytes())?;
    Ok(CvOutput {
        variant: c.variant.as_str().into(),
        task: c.task,
        folds,
        summary,
        unc_counts: counts,
        n_unc: d.unc_ids.len(),
        label_match: d.label_match,
    })
}

/// Applies the fold models saved under `model_dir/models/` to a 4FGL-format CSV: the mean of
/// their calibrated probabilities for every row the run's task labels or predicts (AGN, PSR
/// or UNC for agn_psr). The task and inputs are read from the run's `config.toml` (absent:
/// AGN vs PSR with `use_glat`).
pub fn predict(model_dir: &Path, input: &Path, use_glat: bool, out: &Path) -> Result<usize> {
    let cfg_path = model_dir.join("config.toml");
    let mut c = ClassifyConfig {
        use_glat,
        ..ClassifyConfig::default()
    };
    if cfg_path.exists() {
        let text = std::fs::read_to_string(&cfg_path)
            .map_err(|e| Error::bad_file(&cfg_path, format!("cannot read: {e}")))?;
        let run: ExperimentConfig =
            toml::from_str(&text).map_err(|e| Error::bad_file(&cfg_path, e.to_string()))?;
        c = run.classify;
    }
    c.catalog_file = input.to_path_buf();
    let d = load_data(&c)?;
    let classes = d.classes;
    let mdirs: Vec<PathBuf> = {
        let root = model_dir.join("models");
        let mut v: Vec<PathBuf> = std::fs::read_dir(&root)
            .map_err(|e| Error::bad_file(&root, format!("cannot list models: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.join("model.json").exists())
            .collect();
        v.sort();
        v
    };
    if mdirs.is_empty() {
        return Err(Error::bad_file(model_dir, "no models/fold_*/model.json"));
    }
    let ids: Vec<&String> = d.ids.iter().chain(&d.unc_ids).collect();
    let mut rows = d.x.data.clone();
    rows.extend_from_slice(&d.unc_x.data);
    let x = Matrix {
        n: ids.len(),
        d: d.x.d,
        data: rows,
    };
    let mut sum = vec![vec![0.0; classes.len()]; x.n];
    for m in &mdirs {
        let model = super::load(m)?;
        let scaler: Scaler = super::read_json(&m.join("scaler.json"))?;
        let t: f64 = super::read_json(&m.join("temperature.json"))?;
        let p = calibration::apply(&model.predict_logits(&scaler.transform(&x))?, t);
        for (a, q) in sum.iter_mut().zip(p) {
            for (u, v) in a.iter_mut().zip(q) {
                *u += v / mdirs.len() as f64;
            }
        }
    }
    let mut csv = format!(
        "source_id,p_{},p_{},predicted_class\n",
        classes[0], classes[1]
    );
    for (id, p) in ids.iter().zip(&sum) {
        writeln!(
            csv,
            "{id},{},{},{}",
            fmt_f64(p[0]),
            fmt_f64(p[1]),
            classes[metrics::argmax(p)]
        )
        .ok();
    }
    atomic_write(out, csv.as_bytes())?;
    Ok(x.n)
}
