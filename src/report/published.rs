//! The published headline numbers a report sets beside its own.
//!
//! * Panes et al. 2021 (A&A 656, A62), UNEK on the F0-B1 test sky, per-patch matching under
//!   the published rules: purity (precision) 87.81 %, completeness (recall) 48.47 %. Read from
//!   the authors' `global_stats.csv` in the shared reference data
//!   (`../shared/reference/panes2021-f0b1/`) when it is there; the same numbers are compiled
//!   in as a fallback, and `tests/published.rs` recomputes them from the published detections
//!   (TP 4999, FP 694, FN 5315).
//! * Finke et al. 2021, AGN vs PSR on 4FGL-DR2 with their DNN, 10 stratified 70/30 splits:
//!   accuracy 97.60 +- 0.20 %, AUC 97.99 +- 0.75 % (the paper's Table 2; README, "Results").
//! * The paper's scale: 100,000 training patches (250 F0-B1 realisations of 400 patches,
//!   `configs/paper/train_f0_b1.toml`), 768 NSIDE-8 test patches of sky maps at NSIDE 256
//!   (`configs/paper/test_skies.toml`).

use std::path::{Path, PathBuf};

/// Training patches of Panes et al. 2021.
pub const PAPER_TRAIN_PATCHES: u64 = 100_000;
/// Test patches per sky (the NSIDE-8 pixel centres).
pub const PAPER_TEST_PATCHES: u64 = 768;
/// NSIDE of the paper's sky maps.
pub const PAPER_NSIDE: u64 = 256;

/// A published number in percent, with its standard deviation when given.
#[derive(Debug, Clone, PartialEq)]
pub struct Published {
    pub what: &'static str,
    pub percent: f64,
    pub std_percent: Option<f64>,
    pub source: String,
}

/// Panes et al. 2021 UNEK F0-B1 (purity, completeness) in percent, compiled in.
pub const UNEK_F0B1_PURITY_COMPLETENESS: (f64, f64) = (87.81, 48.47);
/// Panes et al. 2021 UNEK F0-B1: the S90 read off the paper's Figs. 5-6 by hand (no public
/// code computes it; see `reference/panes2021-f0b1/README.md`): `(axis, purity crossing,
/// completeness crossing)`. S1 is all-sky (ph cm-2 s-1); SNR_c and SBR_c have no latitude cut.
pub const UNEK_F0B1_S90_HAND_DRAWN: [(&str, f64, f64); 3] = [
    ("S1", 1.6e-10, 4.5e-10),
    ("SNR_c", 1.3, 3.0),
    ("SBR_c", 0.3, 1.1),
];

/// The published evaluation of UNEK on F0-B1 (per-row TP / FP / FN, S1, SNR_c, SBR_c,
/// latitude), in the shared reference directory.
pub fn unek_evaluation_file() -> PathBuf {
    reference_dir().join("unek_evaluation_test.csv.gz")
}

/// Finke et al. 2021 DNN (accuracy, std), (AUC, std) in percent.
pub const FINKE_DNN_ACCURACY: (f64, f64) = (97.60, 0.20);
pub const FINKE_DNN_AUC: (f64, f64) = (97.99, 0.75);

/// The shared reference directory of the published F0-B1 challenge.
pub fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/reference/panes2021-f0b1")
}

/// `(precision, recall)` of the `test_f0_b1` row of a `global_stats.csv`.
pub fn read_global_stats(path: &Path) -> Option<(f64, f64)> {
    let mut r = csv::Reader::from_path(path).ok()?;
    let h = r.headers().ok()?.clone();
    let col = |n: &str| h.iter().position(|x| x == n);
    let (p, c) = (col("precision")?, col("recall")?);
    for rec in r.records().flatten() {
        if rec.get(0) == Some("test_f0_b1") {
            return Some((rec.get(p)?.parse().ok()?, rec.get(c)?.parse().ok()?));
        }
    }
    None
}

/// Panes et al. 2021 UNEK on F0-B1: purity and completeness.
pub fn unek_f0b1() -> [Published; 2] {
    let file = reference_dir().join("global_stats.csv");
    let (p, c, source) = match read_global_stats(&file) {
        Some((p, c)) => (
            p,
            c,
            "Panes et al. 2021, global_stats.csv of the published F0-B1 challenge".to_string(),
        ),
        None => (
            UNEK_F0B1_PURITY_COMPLETENESS.0,
            UNEK_F0B1_PURITY_COMPLETENESS.1,
            "Panes et al. 2021 (compiled in)".to_string(),
        ),
    };
    [
        Published {
            what: "purity",
            percent: p,
            std_percent: None,
            source: source.clone(),
        },
        Published {
            what: "completeness",
            percent: c,
            std_percent: None,
            source,
        },
    ]
}

/// Finke et al. 2021 DNN: accuracy and AUC.
pub fn finke_dnn() -> [Published; 2] {
    let source = "Finke et al. 2021, DNN, 10 x 70/30 splits".to_string();
    [
        Published {
            what: "accuracy",
            percent: FINKE_DNN_ACCURACY.0,
            std_percent: Some(FINKE_DNN_ACCURACY.1),
            source: source.clone(),
        },
        Published {
            what: "auc",
            percent: FINKE_DNN_AUC.0,
            std_percent: Some(FINKE_DNN_AUC.1),
            source,
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compiled-in numbers are the published file's, where the shared data is present.
    #[test]
    fn compiled_in_numbers_match_the_published_file() {
        let f = reference_dir().join("global_stats.csv");
        if let Some(x) = read_global_stats(&f) {
            assert_eq!(x, UNEK_F0B1_PURITY_COMPLETENESS);
        }
        assert_eq!(unek_f0b1()[0].percent, 87.81);
        assert_eq!(unek_f0b1()[1].percent, 48.47);
    }
}
