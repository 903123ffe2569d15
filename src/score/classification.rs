//! Classification metrics (AGN / PSR / FAKE, or any set of classes), computed the way
//! scikit-learn 1.9 computes them so the numbers agree to rounding (checked against
//! `tests/fixtures/sklearn_metrics.json`, made by `tests/fixtures/make_sklearn_fixtures.py`).
//!
//! The predicted class is the arg-max of the probabilities (the first column on ties, like
//! `numpy.argmax`). With `n_kj` the confusion matrix (true k, predicted j), `t_k = sum_j n_kj`,
//! `p_j = sum_k n_kj`, `c = trace`, `s = n`:
//! * completeness (recall) `n_kk / t_k`, purity (precision) `n_kk / p_k`,
//!   F1 `2 n_kk / (t_k + p_k)`; macro-F1 over the classes present in the truth or the
//!   predictions (`f1_score(average="macro")`); balanced accuracy = mean recall over the classes
//!   present in the truth (`balanced_accuracy_score`);
//! * Matthews correlation (Gorodkin 2004), `matthews_corrcoef`:
//!   `(c s - t.p) / sqrt((s^2 - p.p)(s^2 - t.t))`;
//! * ROC one-vs-rest per class with `roc_curve(drop_intermediate=True)` and its trapezoidal
//!   AUC (tied scores form one step, i.e. count one half); macro AUC = mean of the class AUCs
//!   (`roc_auc_score(multi_class="ovr", average="macro")`);
//! * average precision `sum_n (R_n - R_{n-1}) P_n` over distinct thresholds
//!   (`average_precision_score`);
//! * Brier: multiclass `mean_i sum_k (p_ik - y_ik)^2` (`brier_score_loss(scale_by_half=False)`)
//!   and one-vs-rest per class `mean_i (p_ik - y_ik)^2`;
//! * log loss `-mean_i log clip(p_i,true, eps, 1 - eps)`, eps = 2^-52 (`log_loss`);
//! * expected calibration error, top-label (Guo et al. 2017): confidence = max_k p_ik,
//!   correct = [argmax = true], `ECE = sum_b (n_b / N) |acc_b - conf_b|`, over 15 equal-width
//!   bins and over equal-mass bins (edges at the confidence quantiles); bins as in
//!   `calibration_curve` (`searchsorted` on the inner edges: right-closed, first bin closed).
//!
//! A metric that cannot be computed is `{"value": null, "undefined": "<reason>"}`, never NaN.

use crate::error::{Error, Result};
use serde::Serialize;
use std::path::Path;

/// A value or the reason it is undefined.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub undefined: Option<String>,
}

impl Metric {
    pub fn ok(v: f64) -> Self {
        Self {
            value: Some(v),
            undefined: None,
        }
    }
    pub fn undefined(reason: impl Into<String>) -> Self {
        Self {
            value: None,
            undefined: Some(reason.into()),
        }
    }
}

/// Classification input: class names, true class index and probabilities per item.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassData {
    pub classes: Vec<String>,
    pub y_true: Vec<usize>,
    pub probs: Vec<Vec<f64>>,
}

/// Reads `true_class,p_<A>,p_<B>,...` (other columns, e.g. an id, are ignored).
pub fn read_predictions(path: &Path) -> Result<ClassData> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::bad_file(path, format!("cannot read as UTF-8 text: {e}")))?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let lines = super::input::LineIndex::new(text);
    let mut rdr = csv::ReaderBuilder::new().from_reader(text.as_bytes());
    let file = path.display().to_string();
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::bad_file(path, format!("unreadable header: {e}")))?
        .iter()
        .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
        .collect();
    let tc = header
        .iter()
        .position(|h| h == "true_class")
        .ok_or_else(|| Error::Data {
            file: file.clone(),
            line: 1,
            column: header.len() + 1,
            field: "true_class".into(),
            message: "missing required column `true_class`".into(),
        })?;
    let pcols: Vec<(usize, String)> = header
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.strip_prefix("p_").map(|c| (i, c.to_string())))
        .collect();
    if pcols.len() < 2 {
        return Err(Error::Data {
            file,
            line: 1,
            column: header.len() + 1,
            field: "p_<class>".into(),
            message: "need one probability column p_<class> per class, at least two".into(),
        });
    }
    let classes: Vec<String> = pcols.iter().map(|p| p.1.clone()).collect();
    let mut d = ClassData {
        classes: classes.clone(),
        y_true: Vec::new(),
        probs: Vec::new(),
    };
    for rec in rdr.records() {
        let rec = rec.map_err(|e| Error::Data {
            file: file.clone(),
            line: lines.line(e.position()),
            column: 1,
            field: "-".into(),
            message: format!("malformed CSV: {e}"),
        })?;
        let line = lines.line(rec.position());
        let t = rec.get(tc).unwrap_or("").trim();
        let k = classes
            .iter()
            .position(|c| c == t)
            .ok_or_else(|| Error::Data {
                file: file.clone(),
                line,
                column: tc + 1,
                field: "true_class".into(),
                message: format!("unknown class `{t}` (classes: {})", classes.join(", ")),
            })?;
        let mut row = Vec::with_capacity(pcols.len());
        for (i, name) in &pcols {
            let raw = rec.get(*i).unwrap_or("").trim();
            let v: f64 = raw.parse().map_err(|_| Error::Data {
                file: file.clone(),
                line,
                column: i + 1,
                field: format!("p_{name}"),
                message: format!("`{raw}` is not a number"),
            })?;
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::Data {
                    file: file.clone(),
                    line,
                    column: i + 1,
                    field: format!("p_{name}"),
                    message: format!("{v} is not a probability in [0, 1]"),
                });
            }
            row.push(v);
        }
        let s: f64 = row.iter().sum();
        if (s - 1.0).abs() > 1e-3 {
            return Err(Error::Data {
                file: file.clone(),
                line,
                column: pcols[0].0 + 1,
                field: format!("p_{}", pcols[0].1),
                message: format!("probabilities sum to {s}, not 1 +- 1e-3"),
            });
        }
        d.y_true.push(k);
        d.probs.push(row);
    }
    if d.y_true.is_empty() {
        return Err(Error::bad_file(path, "no data rows"));
    }
    Ok(d)
}

/// A ROC curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Roc {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    /// Thresholds; the first is +infinity, written as `null` in JSON.
    pub thresholds: Vec<Option<f64>>,
}

/// `(fps, tps, thresholds)` at each distinct score, scores descending
/// (sklearn `_binary_clf_curve`).
fn binary_clf_curve(y: &[bool], s: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut idx: Vec<usize> = (0..s.len()).collect();
    idx.sort_by(|&a, &b| s[b].total_cmp(&s[a]));
    let (mut fps, mut tps, mut th) = (Vec::new(), Vec::new(), Vec::new());
    let (mut tp, mut fp) = (0.0, 0.0);
    for (n, &i) in idx.iter().enumerate() {
        if y[i] {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let last = n + 1 == idx.len() || s[idx[n + 1]] != s[i];
        if last {
            fps.push(fp);
            tps.push(tp);
            th.push(s[i]);
        }
    }
    (fps, tps, th)
}

/// ROC curve as sklearn's `roc_curve(drop_intermediate=True)`; `None` without both classes.
pub fn roc_curve(y: &[bool], s: &[f64]) -> Option<Roc> {
    let (mut fps, mut tps, mut th) = binary_clf_curve(y, s);
    if fps.is_empty() {
        return None;
    }
    if fps.len() > 2 {
        let n = fps.len();
        let keep: Vec<usize> = (0..n)
            .filter(|&i| {
                i == 0
                    || i == n - 1
                    || (fps[i + 1] - 2.0 * fps[i] + fps[i - 1]) != 0.0
                    || (tps[i + 1] - 2.0 * tps[i] + tps[i - 1]) != 0.0
            })
            .collect();
        fps = keep.iter().map(|&i| fps[i]).collect();
        tps = keep.iter().map(|&i| tps[i]).collect();
        th = keep.iter().map(|&i| th[i]).collect();
    }
    let (fmax, tmax) = (*fps.last()?, *tps.last()?);
    if fmax == 0.0 || tmax == 0.0 {
        return None;
    }
    let mut fpr = vec![0.0];
    let mut tpr = vec![0.0];
    fpr.extend(fps.iter().map(|f| f / fmax));
    tpr.extend(tps.iter().map(|t| t / tmax));
    let mut thresholds = vec![None];
    thresholds.extend(th.into_iter().map(Some));
    Some(Roc {
        fpr,
        tpr,
        thresholds,
    })
}

/// Trapezoidal area under (x, y) (`numpy.trapezoid`).
pub fn trapezoid(x: &[f64], y: &[f64]) -> f64 {
    (1..x.len())
        .map(|i| (x[i] - x[i - 1]) * (y[i] + y[i - 1]) / 2.0)
        .sum()
}

/// Average precision (sklearn `average_precision_score`); `None` without positives.
pub fn average_precision(y: &[bool], s: &[f64]) -> Option<f64> {
    let (fps, tps, _) = binary_clf_curve(y, s);
    let total = *tps.last()?;
    if total == 0.0 {
        return None;
    }
    let mut prev_r = 0.0;
    let mut ap = 0.0;
    for (f, t) in fps.iter().zip(&tps) {
        let p = t / (t + f);
        let r = t / total;
        ap += (r - prev_r) * p;
        prev_r = r;
    }
    Some(ap)
}

/// `numpy.linspace(0, 1, n + 1)`.
pub fn np_linspace01(n: usize) -> Vec<f64> {
    let step = 1.0 / n as f64;
    (0..=n)
        .map(|i| if i == n { 1.0 } else { i as f64 * step })
        .collect()
}

/// `numpy.percentile(sorted, q * 100)` with the default linear method.
pub fn np_percentile(sorted: &[f64], q_frac: f64) -> f64 {
    let n = sorted.len();
    let q = (q_frac * 100.0) / 100.0;
    let vi = (n - 1) as f64 * q;
    if vi >= (n - 1) as f64 {
        return sorted[n - 1];
    }
    let prev = vi.floor();
    let g = vi - prev;
    let (a, b) = (sorted[prev as usize], sorted[prev as usize + 1]);
    let d = b - a;
    if g >= 0.5 {
        b - d * (1.0 - g)
    } else {
        a + d * g
    }
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    pub lo: f64,
    pub hi: f64,
    pub n: usize,
    /// Mean predicted probability (`prob_pred` of `calibration_curve`).
    pub mean_predicted: f64,
    /// Observed frequency (`prob_true`).
    pub observed: f64,
}

/// Reliability data and ECE of (probability, outcome) pairs, `strategy` = `uniform` or
/// `quantile`, binned exactly as `sklearn.calibration.calibration_curve`.
pub fn reliability(
    p: &[f64],
    y: &[bool],
    n_bins: usize,
    strategy: &str,
) -> (Vec<ReliabilityBin>, f64) {
    let edges = if strategy == "quantile" {
        let mut s = p.to_vec();
        s.sort_by(f64::total_cmp);
        np_linspace01(n_bins)
            .into_iter()
            .map(|q| np_percentile(&s, q))
            .collect()
    } else {
        np_linspace01(n_bins)
    };
    let inner = &edges[1..edges.len() - 1];
    let mut n = vec![0usize; n_bins];
    let mut sp = vec![0.0; n_bins];
    let mut st = vec![0.0; n_bins];
    for (v, t) in p.iter().zip(y) {
        let b = inner.partition_point(|e| *e < *v);
        n[b] += 1;
        sp[b] += v;
        if *t {
            st[b] += 1.0;
        }
    }
    let total = p.len() as f64;
    let mut ece = 0.0;
    let mut bins = Vec::new();
    for b in 0..n_bins {
        if n[b] == 0 {
            continue;
        }
        let (mp, ob) = (sp[b] / n[b] as f64, st[b] / n[b] as f64);
        ece += n[b] as f64 / total * (ob - mp).abs();
        bins.push(ReliabilityBin {
            lo: edges[b],
            hi: edges[b + 1],
            n: n[b],
            mean_predicted: mp,
            observed: ob,
        });
    }
    (bins, ece)
}

/// Per-class figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub class: String,
    pub n_true: usize,
    pub n_predicted: usize,
    pub completeness: Metric,
    pub purity: Metric,
    pub f1: Metric,
    pub roc_auc: Metric,
    pub average_precision: Metric,
    pub brier_ovr: Metric,
    pub roc: Option<Roc>,
    pub reliability: Vec<ReliabilityBin>,
}

/// A calibration summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    pub label: String,
    pub ece: Metric,
    pub bins: Vec<ReliabilityBin>,
}

/// Everything `score classification` reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassReport {
    pub classes: Vec<String>,
    pub n: usize,
    /// Rows: true class; columns: predicted class.
    pub confusion: Vec<Vec<usize>>,
    /// Confusion normalised by true class (rows without items are `null`).
    pub confusion_normalised: Vec<Option<Vec<f64>>>,
    pub per_class: Vec<ClassMetrics>,
    pub accuracy: Metric,
    pub balanced_accuracy: Metric,
    pub macro_f1: Metric,
    pub mcc: Metric,
    pub macro_roc_auc: Metric,
    pub brier_multiclass: Metric,
    pub log_loss: Metric,
    pub ece_top_label_equal_width: Calibration,
    pub ece_top_label_equal_mass: Calibration,
    pub definitions: Vec<String>,
}

impl ClassReport {
    /// The headline numbers of a classifier's pooled out-of-fold predictions, as the
    /// `classify` stage stores them in its summary and `reproduce` recomputes them.
    pub fn pooled_summary(&self) -> serde_json::Value {
        serde_json::json!({
            "n": self.n,
            "accuracy": self.accuracy.value,
            "balanced_accuracy": self.balanced_accuracy.value,
            "macro_roc_auc": self.macro_roc_auc.value,
            "macro_f1": self.macro_f1.value,
            "mcc": self.mcc.value,
        })
    }
}

fn argmax(row: &[f64]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

/// Computes every classification metric.
pub fn report(d: &ClassData, ece_bins: usize) -> ClassReport {
    let k = d.classes.len();
    let n = d.y_true.len();
    let pred: Vec<usize> = d.probs.iter().map(|r| argmax(r)).collect();
    let mut cm = vec![vec![0usize; k]; k];
    for (t, p) in d.y_true.iter().zip(&pred) {
        cm[*t][*p] += 1;
    }
    let t_sum: Vec<usize> = (0..k).map(|i| cm[i].iter().sum()).collect();
    let p_sum: Vec<usize> = (0..k).map(|j| (0..k).map(|i| cm[i][j]).sum()).collect();
    let trace: usize = (0..k).map(|i| cm[i][i]).sum();
    let confusion_normalised = (0..k)
        .map(|i| {
            (t_sum[i] > 0).then(|| cm[i].iter().map(|c| *c as f64 / t_sum[i] as f64).collect())
        })
        .collect();
    let mut per_class = Vec::with_capacity(k);
    let mut f1s = Vec::new();
    let mut recalls = Vec::new();
    let mut aucs: Vec<Option<f64>> = Vec::new();
    for c in 0..k {
        let tp = cm[c][c];
        let y: Vec<bool> = d.y_true.iter().map(|t| *t == c).collect();
        let s: Vec<f64> = d.probs.iter().map(|r| r[c]).collect();
        let completeness = if t_sum[c] > 0 {
            let r = tp as f64 / t_sum[c] as f64;
            recalls.push(r);
            Metric::ok(r)
        } else {
            Metric::undefined("no item of this class in the truth")
        };
        let purity = if p_sum[c] > 0 {
            Metric::ok(tp as f64 / p_sum[c] as f64)
        } else {
            Metric::undefined("this class is never predicted")
        };
        let f1 = if t_sum[c] + p_sum[c] > 0 {
            let f = 2.0 * tp as f64 / (t_sum[c] + p_sum[c]) as f64;
            f1s.push(f);
            Metric::ok(f)
        } else {
            Metric::undefined("class absent from truth and predictions")
        };
        let roc = roc_curve(&y, &s);
        let roc_auc = match &roc {
            Some(r) => Metric::ok(trapezoid(&r.fpr, &r.tpr)),
            None => Metric::undefined("one-vs-rest needs items of this class and of the others"),
        };
        aucs.push(roc_auc.value);
        let average_precision = match average_precision(&y, &s) {
            Some(v) => Metric::ok(v),
            None => Metric::undefined("no item of this class in the truth"),
        };
        let brier_ovr = Metric::ok(
            y.iter()
                .zip(&s)
                .map(|(t, p)| (p - if *t { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>()
                / n as f64,
        );
        let (reliability, _) = reliability(&s, &y, ece_bins, "uniform");
        per_class.push(ClassMetrics {
            class: d.classes[c].clone(),
            n_true: t_sum[c],
            n_predicted: p_sum[c],
            completeness,
            purity,
            f1,
            roc_auc,
            average_precision,
            brier_ovr,
            roc,
            reliability,
        });
    }
    let accuracy = Metric::ok(trace as f64 / n as f64);
    let balanced_accuracy = Metric::ok(recalls.iter().sum::<f64>() / recalls.len() as f64);
    let macro_f1 = Metric::ok(f1s.iter().sum::<f64>() / f1s.len() as f64);
    let (s, c) = (n as f64, trace as f64);
    let tp_dot: f64 = (0..k).map(|i| t_sum[i] as f64 * p_sum[i] as f64).sum();
    let pp: f64 = p_sum.iter().map(|x| (*x as f64).powi(2)).sum();
    let tt: f64 = t_sum.iter().map(|x| (*x as f64).powi(2)).sum();
    let cov_ytyp = c * s - tp_dot;
    let cov_ypyp = s * s - pp;
    let cov_ytyt = s * s - tt;
    let mcc = if cov_ypyp * cov_ytyt == 0.0 {
        Metric::undefined(
            "only one class in the truth or in the predictions (scikit-learn returns 0.0)",
        )
    } else {
        Metric::ok(cov_ytyp / (cov_ytyt * cov_ypyp).sqrt())
    };
    let macro_roc_auc = if aucs.iter().all(|a| a.is_some()) {
        Metric::ok(aucs.iter().flatten().sum::<f64>() / k as f64)
    } else {
        Metric::undefined("some class has no items (or all items) in the truth")
    };
    let brier = d
        .y_true
        .iter()
        .zip(&d.probs)
        .map(|(t, r)| {
            r.iter()
                .enumerate()
                .map(|(j, p)| (if j == *t { 1.0 } else { 0.0 } - p).powi(2))
                .sum::<f64>()
        })
        .sum::<f64>()
        / s;
    let eps = f64::EPSILON;
    let ll = d
        .y_true
        .iter()
        .zip(&d.probs)
        .map(|(t, r)| -r[*t].clamp(eps, 1.0 - eps).ln())
        .sum::<f64>()
        / s;
    let conf: Vec<f64> = d.probs.iter().zip(&pred).map(|(r, p)| r[*p]).collect();
    let correct: Vec<bool> = d.y_true.iter().zip(&pred).map(|(t, p)| t == p).collect();
    let (wb, we) = reliability(&conf, &correct, ece_bins, "uniform");
    let (mb, me) = reliability(&conf, &correct, ece_bins, "quantile");
    ClassReport {
        classes: d.classes.clone(),
        n,
        confusion: cm,
        confusion_normalised,
        per_class,
        accuracy,
        balanced_accuracy,
        macro_f1,
        mcc,
        macro_roc_auc,
        brier_multiclass: Metric::ok(brier),
        log_loss: Metric::ok(ll),
        ece_top_label_equal_width: Calibration {
            label: format!("top-label ECE, {ece_bins} equal-width bins on [0, 1]"),
            ece: Metric::ok(we),
            bins: wb,
        },
        ece_top_label_equal_mass: Calibration {
            label: format!("top-label ECE, {ece_bins} equal-mass bins (confidence quantiles)"),
            ece: Metric::ok(me),
            bins: mb,
        },
        definitions: vec![
            "predicted class = argmax of the probabilities (first on ties)".into(),
            "completeness = recall, purity = precision (per class)".into(),
            "macro_f1 over the classes present in truth or predictions; balanced_accuracy = \
             mean completeness over the classes present in the truth"
                .into(),
            "roc_auc: one-vs-rest, trapezoid over sklearn's roc_curve (ties count one half)".into(),
            "brier_multiclass = mean_i sum_k (p_ik - y_ik)^2; brier_ovr = mean_i (p_ik - y_ik)^2"
                .into(),
            "log_loss = -mean_i ln clip(p_i,true, 2^-52, 1 - 2^-52)".into(),
            "ECE = sum_b n_b/N |accuracy_b - mean confidence_b|, confidence = max_k p_ik".into(),
        ],
    }
}
