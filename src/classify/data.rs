//! The catalog track's data: the labelled sources of one of Finke et al.'s tasks in a 4FGL
//! catalog and the sources whose class the task predicts.
//!
//! Inputs as in Finke, Kraemer & Manconi 2021 (arXiv:2012.05251) and Manconi et al. (ICRC
//! 2021): `Flux_Band_0..B-1` (photon flux in the 4FGL energy bands, ph cm-2 s-1; B = 7 in
//! DR1/DR2, 8 in DR4) and, unless `use_history = false`, `Flux_History_0..Y-1` (yearly photon
//! flux 0.1-100 GeV, ph cm-2 s-1), both as log10, optionally `GLAT` (deg).
//!
//! Tasks ([`Task`]):
//! * `agn_psr`: GROUP AGN (class 0) vs GROUP PSR (class 1); predicted: GROUP UNC.
//! * `msp_yng`: pulsars, YNG (class 0, CLASS1 `psr`) vs MSP (class 1, CLASS1 `msp`), case
//!   insensitive. 4FGL-DR2 lists every pulsar as `PSR`, so when the catalog has no `msp` row
//!   the labels come from `pulsar_labels_file` (4FGL-DR4 by default) by `Source_Name`: a
//!   GROUP PSR source of the catalog whose name is a DR4 `msp` is MSP, a DR4 `psr` is YNG, and
//!   one not found (or not a DR4 pulsar) is left out; the counts are in [`LabelMatch`].
//!   Predicted: GROUP UNC.
//! * `bll_fsrq`: CLASS1 `bll` (class 0) vs `fsrq` (class 1); predicted: CLASS1 `bcu`.
//!
//! Missing values: a flux that is empty, not a number or <= 0 (4FGL-DR2 has one such cell,
//! a `Flux_Band_6` of 0) cannot be logged, so it becomes NaN here and is imputed by
//! [`crate::classify::scale::Scaler`] with the *training-split* median of that column (in
//! log space); the number of imputed cells is logged. No row is dropped.
//!
//! Upper limits ([`UpperLimits`]): 4FGL leaves the lower error of a band (or year) without a
//! detection empty, and its best-fit flux then scatters over many decades below the detected
//! ones (in DR2, `Flux_Band_6` of undetected AGN and PSR: 10th-90th percentile 1e-18-1e-12,
//! detected: 2e-12-3e-11 ph cm-2 s-1). With `upper_limits = "upper_limit"` such a cell holds
//! `Flux + Unc_Flux_hi`, the catalog's upper limit, instead.

use super::{Layout, Matrix};
use crate::config::{Task, UpperLimits};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// Class names of the AGN vs PSR task, index = class id.
pub const CLASSES: [&str; 2] = ["AGN", "PSR"];

/// Sky position of a source (deg).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SkyPos {
    pub ra_deg: f64,
    pub dec_deg: f64,
    pub glon_deg: f64,
    pub glat_deg: f64,
}

/// How the MSP / YNG labels of a catalog without MSP classes were found by name.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LabelMatch {
    /// The catalog the labels were read from.
    pub labels_file: String,
    /// GROUP PSR sources of the catalog.
    pub n_pulsars: usize,
    /// Of them, found as `msp` in the labels file.
    pub n_msp: usize,
    /// Found as `psr`.
    pub n_yng: usize,
    /// Not found among the labels file's pulsars (left out).
    pub n_unmatched: usize,
}

/// Which columns feed the networks and how fluxes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inputs {
    pub use_glat: bool,
    pub use_history: bool,
    pub upper_limits: UpperLimits,
}

impl Inputs {
    /// The inputs of the AGN vs PSR default (`Flux_Band`, `Flux_History`, best-fit fluxes).
    pub fn new(use_glat: bool) -> Self {
        Self {
            use_glat,
            use_history: true,
            upper_limits: UpperLimits::BestFit,
        }
    }
    /// The inputs a `[classify]` section asks for.
    pub fn of(c: &crate::config::ClassifyConfig) -> Self {
        Self {
            use_glat: c.use_glat,
            use_history: c.use_history,
            upper_limits: c.upper_limits,
        }
    }
}

/// Labelled sources and the sources to predict.
pub struct CatalogData {
    /// The task.
    pub task: Task,
    /// Class names, index = class id.
    pub classes: [&'static str; 2],
    /// Labelled source names.
    pub ids: Vec<String>,
    /// Labelled features.
    pub x: Matrix,
    /// Labelled classes.
    pub y: Vec<usize>,
    /// Sources to predict (UNC for agn_psr and msp_yng, BCU for bll_fsrq): names.
    pub unc_ids: Vec<String>,
    /// Their positions.
    pub unc_pos: Vec<SkyPos>,
    /// Their features.
    pub unc_x: Matrix,
    /// Column layout.
    pub layout: Layout,
    /// Number of cells that were missing or non-positive (imputed later).
    pub n_missing: usize,
    /// Number of flux cells replaced by their upper limit.
    pub n_upper_limits: usize,
    /// MSP / YNG labels found by name (msp_yng on a catalog without MSP classes).
    pub label_match: Option<LabelMatch>,
}

/// Reads the 4FGL CSV (gzip or plain) for AGN vs PSR.
pub fn load_catalog(path: &Path, use_glat: bool) -> Result<CatalogData> {
    load_task(path, Task::AgnPsr, Inputs::new(use_glat), None)
}

/// What a row is for the task: `Some(Some(k))` labelled class k, `Some(None)` to predict,
/// `None` not used.
type Role = Option<Option<usize>>;

/// `Source_Name -> CLASS1` (lower case) of the pulsars (GROUP PSR) of a 4FGL CSV.
fn pulsar_classes(path: &Path) -> Result<HashMap<String, String>> {
    let mut rdr = crate::formats::csv_reader(path)?;
    let columns = crate::formats::Columns::read(path, &mut rdr)?;
    let col = |name: &str| columns.index(name);
    let (g, n, c) = (col("GROUP")?, col("Source_Name")?, col("CLASS1")?);
    let mut out = HashMap::new();
    for (r, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::bad_file(path, format!("line {}: {e}", r + 2)))?;
        if &rec[g] == "PSR" {
            out.insert(rec[n].trim().to_string(), rec[c].trim().to_lowercase());
        }
    }
    Ok(out)
}

/// Reads the 4FGL CSV (gzip or plain) for `task`; `pulsar_labels` is the catalog that labels
/// MSP / YNG by name when `path` has no `msp` class (needed by `msp_yng` then).
pub fn load_task(
    path: &Path,
    task: Task,
    inputs: Inputs,
    pulsar_labels: Option<&Path>,
) -> Result<CatalogData> {
    let mut rdr = crate::formats::csv_reader(path)?;
    let columns = crate::formats::Columns::read(path, &mut rdr)?;
    let col = |name: &str| columns.index(name);
    let group = col("GROUP")?;
    let name = col("Source_Name")?;
    let class1 = col("CLASS1")?;
    let pos_cols = [col("RA")?, col("DEC")?, col("GLON")?, col("GLAT")?];
    let count = |prefix: &str| {
        (0..)
            .take_while(|i| columns.find(&format!("{prefix}{i}")).is_some())
            .count()
    };
    let n_band = count("Flux_Band_");
    let n_hist = if inputs.use_history {
        count("Flux_History_")
    } else {
        0
    };
    if n_band == 0 {
        return Err(Error::bad_file(path, "missing column `Flux_Band_0`"));
    }
    // (value column, lower-error column, upper-error column) of each flux input; GLAT raw
    let mut cols: Vec<(usize, Option<(usize, usize)>)> = Vec::new();
    for (prefix, n) in [("Flux_Band", n_band), ("Flux_History", n_hist)] {
        for i in 0..n {
            cols.push((
                col(&format!("{prefix}_{i}"))?,
                Some((
                    col(&format!("Unc_{prefix}_lo_{i}"))?,
                    col(&format!("Unc_{prefix}_hi_{i}"))?,
                )),
            ));
        }
    }
    if inputs.use_glat {
        cols.push((col("GLAT")?, None));
    }
    let layout = Layout {
        band: 0..n_band,
        history: n_band..n_band + n_hist,
        extra: n_band + n_hist..cols.len(),
    };
    // MSP / YNG by name when the catalog itself has no msp class
    let records: Vec<csv::StringRecord> = rdr
        .records()
        .enumerate()
        .map(|(r, rec)| rec.map_err(|e| Error::bad_file(path, format!("line {}: {e}", r + 2))))
        .collect::<Result<_>>()?;
    let mut label_match = None;
    let by_name = if task == Task::MspYng
        && !records
            .iter()
            .any(|r| &r[group] == "PSR" && r[class1].trim().eq_ignore_ascii_case("msp"))
    {
        let lp = pulsar_labels.ok_or_else(|| {
            Error::bad_file(
                path,
                "no `msp` in CLASS1: msp_yng needs classify.pulsar_labels_file",
            )
        })?;
        let m = pulsar_classes(lp)?;
        let mut lm = LabelMatch {
            labels_file: lp.display().to_string(),
            n_pulsars: 0,
            n_msp: 0,
            n_yng: 0,
            n_unmatched: 0,
        };
        for r in records.iter().filter(|r| &r[group] == "PSR") {
            lm.n_pulsars += 1;
            match m.get(r[name].trim()).map(String::as_str) {
                Some("msp") => lm.n_msp += 1,
                Some("psr") => lm.n_yng += 1,
                _ => lm.n_unmatched += 1,
            }
        }
        label_match = Some(lm);
        Some(m)
    } else {
        None
    };
    let role = |rec: &csv::StringRecord| -> Role {
        let g = &rec[group];
        let c = rec[class1].trim().to_lowercase();
        match task {
            Task::AgnPsr => match g {
                "AGN" => Some(Some(0)),
                "PSR" => Some(Some(1)),
                "UNC" => Some(None),
                _ => None,
            },
            Task::MspYng => match g {
                "PSR" => {
                    let c = match &by_name {
                        Some(m) => m.get(rec[name].trim()).cloned().unwrap_or_default(),
                        None => c,
                    };
                    match c.as_str() {
                        "psr" => Some(Some(0)),
                        "msp" => Some(Some(1)),
                        _ => None,
                    }
                }
                "UNC" => Some(None),
                _ => None,
            },
            Task::BllFsrq => match c.as_str() {
                "bll" => Some(Some(0)),
                "fsrq" => Some(Some(1)),
                "bcu" => Some(None),
                _ => None,
            },
        }
    };
    let (mut ids, mut rows, mut y) = (Vec::new(), Vec::new(), Vec::new());
    let (mut unc_ids, mut unc_rows, mut unc_pos) = (Vec::new(), Vec::new(), Vec::new());
    let (mut n_missing, mut n_upper_limits) = (0, 0);
    for (r, rec) in records.iter().enumerate() {
        let line = r + 2;
        let Some(class) = role(rec) else {
            continue;
        };
        let num = |c: usize| -> Result<f64> {
            let s = rec[c].trim();
            if s.is_empty() {
                return Ok(f64::NAN);
            }
            s.parse::<f64>().map_err(|e| Error::Data {
                file: path.display().to_string(),
                line,
                column: c + 1,
                field: columns.headers()[c].to_string(),
                message: format!("not a number: {e}"),
            })
        };
        let mut row = Vec::with_capacity(cols.len());
        for &(c, unc) in &cols {
            let mut v = num(c)?;
            if let Some((lo, hi)) = unc {
                if inputs.upper_limits == UpperLimits::UpperLimit && rec[lo].trim().is_empty() {
                    let h = num(hi)?;
                    if h.is_finite() && h > 0.0 {
                        v = if v.is_finite() { v.max(0.0) + h } else { h };
                        n_upper_limits += 1;
                    }
                }
                v = if v.is_finite() && v > 0.0 {
                    v.log10()
                } else {
                    f64::NAN
                };
            }
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
                let p: Vec<f64> = pos_cols.iter().map(|&c| num(c)).collect::<Result<_>>()?;
                unc_ids.push(rec[name].to_string());
                unc_rows.push(row);
                unc_pos.push(SkyPos {
                    ra_deg: p[0],
                    dec_deg: p[1],
                    glon_deg: p[2],
                    glat_deg: p[3],
                });
            }
        }
    }
    let classes = task.classes();
    for (k, cl) in classes.iter().enumerate() {
        if !y.contains(&k) {
            return Err(Error::bad_file(
                path,
                format!("task {}: no {cl} rows", task.as_str()),
            ));
        }
    }
    Ok(CatalogData {
        task,
        classes,
        ids,
        x: Matrix::from_rows(&rows),
        y,
        unc_ids,
        unc_pos,
        unc_x: if unc_rows.is_empty() {
            Matrix {
                n: 0,
                d: cols.len(),
                data: Vec::new(),
            }
        } else {
            Matrix::from_rows(&unc_rows)
        },
        layout,
        n_missing,
        n_upper_limits,
        label_match,
    })
}
