//! The catalog track's data: labelled AGN and PSR of 4FGL-DR2 and the unassociated sources.
//!
//! Inputs as in Finke, Kraemer & Manconi 2021: `Flux_Band_0..6` (photon flux in the seven
//! 4FGL bands 50 MeV-1 TeV, ph cm-2 s-1) and `Flux_History_0..9` (yearly photon flux
//! 0.1-100 GeV, ph cm-2 s-1), both as log10, optionally `GLAT` (deg).
//!
//! Missing values: a flux that is empty, not a number or <= 0 (4FGL-DR2 has one such cell,
//! a `Flux_Band_6` of 0) cannot be logged, so it becomes NaN here and is imputed by
//! [`crate::classify::scale::Scaler`] with the *training-fold* median of that column (in
//! log space); the number of imputed cells is logged. No row is dropped.

use super::{Layout, Matrix};
use crate::error::{Error, Result};
use std::path::Path;

/// Class names of the catalog track, index = class id.
pub const CLASSES: [&str; 2] = ["AGN", "PSR"];

/// Labelled and unassociated sources.
pub struct CatalogData {
    /// Labelled source names.
    pub ids: Vec<String>,
    /// Labelled features.
    pub x: Matrix,
    /// Labelled classes (0 AGN, 1 PSR).
    pub y: Vec<usize>,
    /// Unassociated (GROUP = UNC) source names.
    pub unc_ids: Vec<String>,
    /// Their features.
    pub unc_x: Matrix,
    /// Column layout.
    pub layout: Layout,
    /// Number of cells that were missing or non-positive (imputed later).
    pub n_missing: usize,
}

/// Reads the 4FGL CSV (gzip or plain).
pub fn load_catalog(path: &Path, use_glat: bool) -> Result<CatalogData> {
    let mut rdr = crate::formats::csv_reader(path)?;
    let headers = rdr
        .headers()
        .map_err(|e| Error::bad_file(path, e.to_string()))?
        .clone();
    let col = |name: &str| -> Result<usize> {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::bad_file(path, format!("missing column `{name}`")))
    };
    let group = col("GROUP")?;
    let name = col("Source_Name")?;
    let mut cols = Vec::new();
    for i in 0..7 {
        cols.push((col(&format!("Flux_Band_{i}"))?, true));
    }
    for i in 0..10 {
        cols.push((col(&format!("Flux_History_{i}"))?, true));
    }
    if use_glat {
        cols.push((col("GLAT")?, false));
    }
    let layout = Layout {
        band: 0..7,
        history: 7..17,
        extra: 17..cols.len(),
    };
    let (mut ids, mut rows, mut y) = (Vec::new(), Vec::new(), Vec::new());
    let (mut unc_ids, mut unc_rows) = (Vec::new(), Vec::new());
    let mut n_missing = 0;
    for (r, rec) in rdr.records().enumerate() {
        let line = r + 2;
        let rec = rec.map_err(|e| Error::bad_file(path, format!("line {line}: {e}")))?;
        let g = &rec[group];
        let class = match g {
            "AGN" => Some(0),
            "PSR" => Some(1),
            "UNC" => None,
            _ => continue,
        };
        let mut row = Vec::with_capacity(cols.len());
        for &(c, is_flux) in &cols {
            let s = rec[c].trim();
            let v = if s.is_empty() {
                f64::NAN
            } else {
                s.parse::<f64>().map_err(|e| Error::Data {
                    file: path.display().to_string(),
                    line,
                    column: c + 1,
                    field: headers[c].to_string(),
                    message: format!("not a number: {e}"),
                })?
            };
            let v = if is_flux {
                if v.is_finite() && v > 0.0 {
                    v.log10()
                } else {
                    f64::NAN
                }
            } else {
                v
            };
            if v.is_nan() {
                n_missing += 1;
            }
            row.push(v as f32);
        }
        match class {
            Some(k) => {
                ids.push(rec[name].to_string());
                rows.push(row);
                y.push(k);
            }
            None => {
                unc_ids.push(rec[name].to_string());
                unc_rows.push(row);
            }
        }
    }
    if ids.is_empty() {
        return Err(Error::bad_file(path, "no AGN or PSR rows"));
    }
    Ok(CatalogData {
        ids,
        x: Matrix::from_rows(&rows),
        y,
        unc_ids,
        unc_x: Matrix::from_rows(&unc_rows),
        layout,
        n_missing,
    })
}
