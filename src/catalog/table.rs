//! The mock catalog table: one row per source, written as `catalog.csv` and read back by the
//! sky stage.

use super::spectrum::Spectrum;
use crate::error::{Error, Result};
use crate::formats::fmt_f64;
use std::path::Path;

/// Source class.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum SourceClass {
    #[serde(rename = "AGN")]
    Agn,
    #[serde(rename = "PSR")]
    Psr,
}

impl SourceClass {
    pub fn as_str(&self) -> &'static str {
        match self {
            SourceClass::Agn => "AGN",
            SourceClass::Psr => "PSR",
        }
    }
    /// Class code of the published challenge (0 AGN, 1 PSR).
    pub fn code(&self) -> u8 {
        match self {
            SourceClass::Agn => 0,
            SourceClass::Psr => 1,
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "AGN" => Some(SourceClass::Agn),
            "PSR" => Some(SourceClass::Psr),
            _ => None,
        }
    }
}

/// One mock source.
#[derive(Debug, Clone, PartialEq)]
pub struct Source {
    pub source_id: u64,
    pub class: SourceClass,
    pub glon_deg: f64,
    pub glat_deg: f64,
    pub ra_deg: f64,
    pub dec_deg: f64,
    pub spectrum: Spectrum,
    /// Energy flux 0.1-100 GeV, erg cm-2 s-1.
    pub eflux_100_erg_cm2_s: f64,
    /// Photon flux 1-100 GeV (S1), ph cm-2 s-1.
    pub flux_1000_ph_cm2_s: f64,
    /// Photon flux 10-1000 GeV (S10), ph cm-2 s-1.
    pub flux_10000_ph_cm2_s: f64,
    /// Photon flux in each analysis energy bin, ph cm-2 s-1.
    pub flux_bins_ph_cm2_s: Vec<f64>,
}

/// Column names of `catalog.csv` (the per-bin columns follow).
pub const FIXED_COLUMNS: &[&str] = &[
    "source_id",
    "class",
    "glon_deg",
    "glat_deg",
    "ra_deg",
    "dec_deg",
    "spectrum",
    "pivot_mev",
    "flux_density_ph_cm2_s_mev",
    "index",
    "beta",
    "exp_factor",
    "exp_index",
    "eflux_100_erg_cm2_s",
    "flux_1000_ph_cm2_s",
    "flux_10000_ph_cm2_s",
];

/// Writes the catalog as CSV (header + one row per source).
pub fn write_csv(
    w: &mut dyn std::io::Write,
    sources: &[Source],
    n_bins: usize,
) -> std::io::Result<()> {
    use rayon::prelude::*;
    let mut header: Vec<String> = FIXED_COLUMNS.iter().map(|s| s.to_string()).collect();
    header.extend((0..n_bins).map(|k| format!("flux_bin{k}_ph_cm2_s")));
    writeln!(w, "{}", header.join(","))?;
    // Rows are formatted in parallel chunks and written in order: same bytes at any thread count.
    let chunks: Vec<String> = sources
        .par_chunks(4096)
        .map(|chunk| {
            let mut out = String::with_capacity(chunk.len() * 400);
            for s in chunk {
                format_row(&mut out, s);
            }
            out
        })
        .collect();
    for c in chunks {
        w.write_all(c.as_bytes())?;
    }
    Ok(())
}

fn format_row(out: &mut String, s: &Source) {
    let (idx, beta, ef, ei) = match s.spectrum {
        Spectrum::LogParabola { alpha, beta, .. } => (alpha, beta, f64::NAN, f64::NAN),
        Spectrum::PlSuperExpCutoff2 { gamma, a, b, .. } => (gamma, f64::NAN, a, b),
    };
    let fields = [
        s.source_id.to_string(),
        s.class.as_str().to_string(),
        fmt_f64(s.glon_deg),
        fmt_f64(s.glat_deg),
        fmt_f64(s.ra_deg),
        fmt_f64(s.dec_deg),
        s.spectrum.name().to_string(),
        fmt_f64(s.spectrum.pivot_mev()),
        fmt_f64(s.spectrum.norm()),
        fmt_f64(idx),
        fmt_f64(beta),
        fmt_f64(ef),
        fmt_f64(ei),
        fmt_f64(s.eflux_100_erg_cm2_s),
        fmt_f64(s.flux_1000_ph_cm2_s),
        fmt_f64(s.flux_10000_ph_cm2_s),
    ];
    // No field can contain a comma or quote (numbers and fixed words), so no quoting.
    out.push_str(&fields.join(","));
    for f in &s.flux_bins_ph_cm2_s {
        out.push(',');
        out.push_str(&fmt_f64(*f));
    }
    out.push('\n');
}

/// Reads a `catalog.csv` written by [`write_csv`] (or by hand in the same format).
///
/// Errors name the file, line and column of the first bad cell.
pub fn read_csv(path: &Path) -> Result<Vec<Source>> {
    let mut rdr = crate::formats::csv_reader(path)?;
    let file = path.display().to_string();
    let headers = rdr
        .headers()
        .map_err(|e| Error::bad_file(path, format!("cannot read header: {e}")))?
        .clone();
    let col = |name: &str| -> Result<usize> {
        headers
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::Data {
                file: file.clone(),
                line: 1,
                column: 1,
                field: name.into(),
                message: "missing column".into(),
            })
    };
    let idx: Vec<usize> = FIXED_COLUMNS
        .iter()
        .map(|c| col(c))
        .collect::<Result<_>>()?;
    let bin_cols: Vec<usize> = (0..)
        .map_while(|k| {
            headers
                .iter()
                .position(|h| h == format!("flux_bin{k}_ph_cm2_s"))
        })
        .collect();
    let mut out = Vec::new();
    for (row_i, rec) in rdr.records().enumerate() {
        let line = row_i + 2;
        let rec = rec.map_err(|e| Error::Data {
            file: file.clone(),
            line,
            column: 1,
            field: "-".into(),
            message: e.to_string(),
        })?;
        let get = |c: usize| rec.get(c).unwrap_or("");
        let num = |c: usize, allow_empty: bool| -> Result<f64> {
            let s = get(c).trim();
            if s.is_empty() && allow_empty {
                return Ok(f64::NAN);
            }
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| Error::Data {
                    file: file.clone(),
                    line,
                    column: c + 1,
                    field: headers.get(c).unwrap_or("?").into(),
                    message: format!("expected a finite number, got `{s}`"),
                })
        };
        let source_id = get(idx[0]).trim().parse::<u64>().map_err(|_| Error::Data {
            file: file.clone(),
            line,
            column: idx[0] + 1,
            field: "source_id".into(),
            message: format!("expected a non-negative integer, got `{}`", get(idx[0])),
        })?;
        let class = SourceClass::parse(get(idx[1]).trim()).ok_or_else(|| Error::Data {
            file: file.clone(),
            line,
            column: idx[1] + 1,
            field: "class".into(),
            message: format!("expected AGN or PSR, got `{}`", get(idx[1])),
        })?;
        let (k, e0, index) = (
            num(idx[8], false)?,
            num(idx[7], false)?,
            num(idx[9], false)?,
        );
        let spectrum = match get(idx[6]).trim() {
            "LogParabola" => Spectrum::LogParabola {
                k,
                e0_mev: e0,
                alpha: index,
                beta: num(idx[10], false)?,
            },
            "PLSuperExpCutoff2" => Spectrum::PlSuperExpCutoff2 {
                k,
                e0_mev: e0,
                gamma: index,
                a: num(idx[11], false)?,
                b: num(idx[12], false)?,
            },
            other => {
                return Err(Error::Data {
                    file: file.clone(),
                    line,
                    column: idx[6] + 1,
                    field: "spectrum".into(),
                    message: format!("expected LogParabola or PLSuperExpCutoff2, got `{other}`"),
                });
            }
        };
        out.push(Source {
            source_id,
            class,
            glon_deg: num(idx[2], false)?,
            glat_deg: num(idx[3], false)?,
            ra_deg: num(idx[4], false)?,
            dec_deg: num(idx[5], false)?,
            spectrum,
            eflux_100_erg_cm2_s: num(idx[13], false)?,
            flux_1000_ph_cm2_s: num(idx[14], false)?,
            flux_10000_ph_cm2_s: num(idx[15], false)?,
            flux_bins_ph_cm2_s: bin_cols
                .iter()
                .map(|&c| num(c, false))
                .collect::<Result<_>>()?,
        });
    }
    Ok(out)
}
