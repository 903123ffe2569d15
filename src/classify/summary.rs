//! The fold table's summary of a `classify cv` run (catalog and image tracks alike): one
//! [`FoldResult`] per fold, the mean and sample standard deviation of every metric,
//! `summary.csv` / `summary.md` and the cross-variant Markdown table.

use super::metrics::Scores;
use crate::error::Result;
use crate::formats::{atomic_write, fmt_f64};
use std::fmt::Write as _;
use std::path::Path;

/// Result of one fold.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FoldResult {
    pub fold: usize,
    pub n_train: usize,
    pub n_valid: usize,
    pub n_test: usize,
    pub temperature: f64,
    pub raw: Scores,
    pub calibrated: Scores,
    pub train_time_s: f64,
}

/// Summary line of a whole run: (metric name, mean, standard deviation).
pub type Summary = Vec<(String, f64, f64)>;

use crate::folds::mean_std;

/// Mean and sample standard deviation (n - 1) of every fold metric.
pub fn summarise(folds: &[FoldResult]) -> Summary {
    type Getter = Box<dyn Fn(&FoldResult) -> f64>;
    let get: Vec<(&str, Getter)> = vec![
        ("accuracy", Box::new(|f| f.calibrated.accuracy)),
        (
            "balanced_accuracy",
            Box::new(|f| f.calibrated.balanced_accuracy),
        ),
        ("auc", Box::new(|f| f.calibrated.auc)),
        ("ece_raw", Box::new(|f| f.raw.ece)),
        ("ece", Box::new(|f| f.calibrated.ece)),
        ("brier_raw", Box::new(|f| f.raw.brier)),
        ("brier", Box::new(|f| f.calibrated.brier)),
        ("log_loss", Box::new(|f| f.calibrated.log_loss)),
        ("temperature", Box::new(|f| f.temperature)),
        ("train_time_s", Box::new(|f| f.train_time_s)),
    ];
    get.into_iter()
        .map(|(n, g)| {
            let v: Vec<f64> = folds.iter().map(&g).collect();
            let (m, s) = mean_std(&v);
            (n.to_string(), m, s)
        })
        .collect()
}

/// Everything `classify cv` produced, for the CLI's log and cross-variant table.
pub struct CvOutput {
    pub variant: String,
    /// The task (AGN / PSR for the image track).
    pub task: crate::config::Task,
    pub folds: Vec<FoldResult>,
    pub summary: Summary,
    /// (AGN, PSR, unclassified) counts among the unassociated sources.
    pub unc_counts: [usize; 3],
    pub n_unc: usize,
    /// MSP / YNG labels found by name, when they were.
    pub label_match: Option<super::data::LabelMatch>,
}

/// Writes `summary.csv` and `summary.md` for one variant.
pub fn write_summary(out: &Path, variant: &str, s: &Summary) -> Result<()> {
    let mut csv = String::from("variant,metric,mean,std\n");
    for (n, m, sd) in s {
        writeln!(csv, "{variant},{n},{},{}", fmt_f64(*m), fmt_f64(*sd)).ok();
    }
    atomic_write(&out.join("summary.csv"), csv.as_bytes())?;
    atomic_write(
        &out.join("summary.md"),
        summary_table(&[(variant.to_string(), s.clone())]).as_bytes(),
    )
}

/// A Markdown table, one row per variant: percentages for accuracy, balanced accuracy, AUC
/// and ECE, plain numbers for Brier, seconds for training time.
pub fn summary_table(rows: &[(String, Summary)]) -> String {
    let mut t = String::from(
        "| variant | accuracy % | balanced acc. % | AUC % | ECE % (raw -> cal.) | Brier (raw -> cal.) | T | train time s |\n|---|---|---|---|---|---|---|---|\n",
    );
    for (v, s) in rows {
        let g = |n: &str| {
            s.iter()
                .find(|x| x.0 == n)
                .map(|x| (x.1, x.2))
                .unwrap_or((f64::NAN, f64::NAN))
        };
        let pc = |n: &str| {
            let (m, sd) = g(n);
            format!("{:.2} ± {:.2}", 100.0 * m, 100.0 * sd)
        };
        let (er, _) = g("ece_raw");
        let (br, _) = g("brier_raw");
        let (b, bs) = g("brier");
        let (tm, ts) = g("temperature");
        let (tt, tts) = g("train_time_s");
        writeln!(
            t,
            "| {v} | {} | {} | {} | {:.2} -> {} | {:.4} -> {:.4} ± {:.4} | {:.2} ± {:.2} | {:.1} ± {:.1} |",
            pc("accuracy"),
            pc("balanced_accuracy"),
            pc("auc"),
            100.0 * er,
            pc("ece"),
            br,
            b,
            bs,
            tm,
            ts,
            tt,
            tts
        )
        .ok();
    }
    t
}
