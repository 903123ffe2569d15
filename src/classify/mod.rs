//! Source classifiers under cross-validation (issue 6).
//!
//! * [`data`]: the 4FGL catalog track, the three tasks of Finke, Kraemer & Manconi 2021
//!   (arXiv:2012.05251) and Manconi et al. (ICRC 2021): AGN vs PSR, MSP vs YNG pulsars, BLL vs
//!   FSRQ (predicting the BCUs), from Flux_Band, Flux_History and optionally GLAT
//!   (`classify.task`).
//! * [`compare`]: our predictions against the authors' published ones, source by source.
//! * [`uncertainty`]: the Bayesian network's spread against its mean score (ICRC Fig. 3).
//! * [`cv`]: stratified K-fold and Finke's repeated stratified 70/30 split, with a validation
//!   split carved out of each training part.
//! * [`scale`]: imputation + standardisation fitted on training rows only.
//! * [`smote`]: SMOTE oversampling (Chawla et al. 2002), training rows only.
//! * [`calibration`]: temperature scaling fitted on the validation split.
//! * Variants, one file each with its own config: [`forest`] (random forest, with or without
//!   SMOTE, as MUWCLASS), [`nets`] (DNN, RNN, MC-dropout Bayesian DNN, conv + BiLSTM, on burn's
//!   flex backend) trained by [`train`].
//! * [`image`]: the image track (AGN / PSR / FAKE on 7x7x5 cut-outs, Panes et al. 2021).
//! * [`run`]: the `gammabench classify cv` pipeline and its output files; [`summary`]: the
//!   fold results and summary tables both tracks write.
//! * [`metrics`]: the few metrics of the fold table (to be replaced by the shared scorer).

pub mod cli;
pub mod compare;
pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::ClassifyConfig as Config;
pub mod calibration;
pub mod cv;
pub mod data;
pub mod forest;
pub mod image;
pub mod metrics;
pub mod nets;
pub mod run;
pub mod scale;
pub mod smote;
pub mod stage;
pub mod summary;
pub mod train;
pub mod uncertainty;

use crate::error::{Error, Result};
use std::path::Path;

/// A dense row-major matrix of f32 features.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Matrix {
    /// Rows.
    pub n: usize,
    /// Columns.
    pub d: usize,
    /// `n * d` values, row after row.
    pub data: Vec<f32>,
}

impl Matrix {
    /// A matrix from rows of equal length.
    pub fn from_rows(rows: &[Vec<f32>]) -> Self {
        let d = rows.first().map_or(0, |r| r.len());
        let mut data = Vec::with_capacity(rows.len() * d);
        for r in rows {
            assert_eq!(r.len(), d, "ragged rows");
            data.extend_from_slice(r);
        }
        Self {
            n: rows.len(),
            d,
            data,
        }
    }
    /// Row `i`.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.d..(i + 1) * self.d]
    }
    /// The rows at `idx`, in that order.
    pub fn select(&self, idx: &[usize]) -> Self {
        let mut data = Vec::with_capacity(idx.len() * self.d);
        for &i in idx {
            data.extend_from_slice(self.row(i));
        }
        Self {
            n: idx.len(),
            d: self.d,
            data,
        }
    }
    /// Column `j` of row `i`.
    pub fn at(&self, i: usize, j: usize) -> f32 {
        self.data[i * self.d + j]
    }
}

/// Which columns of the feature matrix form which input branch of a network.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Layout {
    /// `Flux_Band` columns (the energy spectrum), a sequence.
    pub band: std::ops::Range<usize>,
    /// `Flux_History` columns (the light curve), a sequence.
    pub history: std::ops::Range<usize>,
    /// Extra scalar columns (GLAT when enabled).
    pub extra: std::ops::Range<usize>,
}

impl Layout {
    /// Total number of columns.
    pub fn width(&self) -> usize {
        self.band.len() + self.history.len() + self.extra.len()
    }
    /// A layout where every column is one flat block (toy problems, image features).
    pub fn flat(d: usize) -> Self {
        Self {
            band: 0..d,
            history: d..d,
            extra: d..d,
        }
    }
}

/// A trained or trainable classifier.
///
/// `fit` receives standardised features (see [`scale`]) and the class indices; the
/// validation rows (never the test rows) serve early stopping. `predict_logits` returns one
/// row of unnormalised log-scores per item; probabilities are their softmax, so temperature
/// scaling ([`calibration`]) applies to every variant alike.
pub trait Classifier: Send {
    /// Variant name (`dnn`, `rf`...).
    fn name(&self) -> &'static str;
    /// Trains on `(x, y)`; `valid` is used for early stopping where the variant has epochs.
    fn fit(
        &mut self,
        x: &Matrix,
        y: &[usize],
        valid: Option<(&Matrix, &[usize])>,
        seed: u64,
    ) -> Result<()>;
    /// Log-scores, `n x n_classes`.
    fn predict_logits(&self, x: &Matrix) -> Result<Vec<Vec<f64>>>;
    /// Class probabilities, `n x n_classes` (softmax of the logits).
    fn predict_proba(&self, x: &Matrix) -> Result<Vec<Vec<f64>>> {
        Ok(self
            .predict_logits(x)?
            .iter()
            .map(|l| calibration::softmax(l, 1.0))
            .collect())
    }
    /// Per-item spread of the positive-class probability when the variant has one
    /// (Bayesian MC dropout: standard deviation over the weight draws).
    fn predict_spread(&self, _x: &Matrix) -> Result<Option<Vec<f64>>> {
        Ok(None)
    }
    /// Writes the trained model into `dir` (created if needed).
    fn save(&self, dir: &Path) -> Result<()>;
}

/// Loads a model saved by [`Classifier::save`] (the variant is read from `dir/model.json`).
pub fn load(dir: &Path) -> Result<Box<dyn Classifier>> {
    let meta = dir.join("model.json");
    let text = std::fs::read_to_string(&meta)
        .map_err(|e| Error::bad_file(&meta, format!("cannot read: {e}")))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad_file(&meta, e.to_string()))?;
    match v["variant"].as_str() {
        Some("rf") | Some("rf_smote") => Ok(Box::new(forest::RandomForest::load(dir)?)),
        Some(_) => Ok(nets::load(dir)?),
        None => Err(Error::bad_file(&meta, "no `variant` field")),
    }
}

/// Writes JSON atomically.
pub(crate) fn write_json(path: &Path, v: &impl serde::Serialize) -> Result<()> {
    let s = serde_json::to_vec_pretty(v).map_err(|e| Error::Internal(e.to_string()))?;
    crate::formats::atomic_write(path, &s)
}

/// Reads JSON written by [`write_json`].
pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::bad_file(path, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(path, e.to_string()))
}
