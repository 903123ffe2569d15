//! Truth tables (ours, `truth.csv`, and the published challenge's) and patch centres
//! (`patches.csv`) as the scorer, the fidelity check and the published-layout import read
//! them, with located errors (file, 1-based line, column, field).

use crate::error::{Error, Result};
use crate::formats::csv_reader;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// One row of a truth table: a true source as seen in one patch. A source lying in several
/// overlapping patches has one row per patch, all with the same `source_id`.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthRow {
    pub patch_id: i64,
    pub source_id: i64,
    /// `AGN` or `PSR`.
    pub class: String,
    pub x_pix: f64,
    pub y_pix: f64,
    pub glon_deg: f64,
    pub glat_deg: f64,
    /// S1: photon flux 1-100 GeV, ph cm-2 s-1.
    pub flux_1000_ph_cm2_s: f64,
    /// S10: photon flux 10-100 GeV, ph cm-2 s-1.
    pub flux_10000_ph_cm2_s: f64,
    /// SNR_c = S / sqrt(S + B) at the central pixel (NaN when unknown).
    pub snr_c: f64,
    /// SBR_c = S / B at the central pixel (NaN when unknown).
    pub sbr_c: f64,
    /// Published format only: the `catalog` column (NaN otherwise).
    pub catalog: f64,
    /// Published format only: patch centre `lon_c, lat_c` (NaN otherwise).
    pub patch_lon_deg: f64,
    pub patch_lat_deg: f64,
}

/// A truth table with the patch centres it refers to.
#[derive(Debug, Clone, Default)]
pub struct Truth {
    pub rows: Vec<TruthRow>,
    /// Patch centre (l, b) in deg by patch id.
    pub patches: HashMap<i64, (f64, f64)>,
}

/// 1-based line numbers of CSV records from their byte offsets. The csv crate's own line
/// counter lags by one after CRLF line ends (a record starts before the `\n` is consumed), so
/// the terminators are skipped and the `\n` before the record's first byte are counted.
pub struct LineIndex<'a> {
    bytes: &'a [u8],
    newlines: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        Self::from_bytes(text.as_bytes())
    }
    /// The same over raw bytes (the text need not be valid UTF-8).
    pub fn from_bytes(bytes: &'a [u8]) -> Self {
        Self {
            bytes,
            newlines: bytes
                .iter()
                .enumerate()
                .filter(|(_, b)| **b == b'\n')
                .map(|(i, _)| i)
                .collect(),
        }
    }
    /// Line of the record at `pos` (0 when unknown).
    pub fn line(&self, pos: Option<&csv::Position>) -> usize {
        let Some(p) = pos else { return 0 };
        let mut b = p.byte() as usize;
        while b < self.bytes.len() && (self.bytes[b] == b'\r' || self.bytes[b] == b'\n') {
            b += 1;
        }
        self.newlines.partition_point(|&n| n < b) + 1
    }
}

/// A CSV table read with headers (`.gz` too), with located errors.
pub(crate) struct Table {
    pub(crate) path: String,
    pub(crate) header: Vec<String>,
    /// (1-based line, record).
    pub(crate) rows: Vec<(usize, csv::StringRecord)>,
}

impl Table {
    pub(crate) fn read(path: &Path) -> Result<Self> {
        // The whole (decompressed) text is kept so that line numbers come from byte offsets
        // ([`LineIndex`]): the csv crate's own counter is one short after CRLF line ends.
        let mut bytes = Vec::new();
        csv_reader(path)?
            .into_inner()
            .read_to_end(&mut bytes)
            .map_err(|e| Error::bad_file(path, format!("cannot read: {e}")))?;
        let lines = LineIndex::from_bytes(&bytes);
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .from_reader(bytes.as_slice());
        let header: Vec<String> = rdr
            .headers()
            .map_err(|e| Error::bad_file(path, format!("unreadable header: {e}")))?
            .iter()
            .map(|s| s.trim().trim_start_matches('\u{feff}').to_string())
            .collect();
        let mut rows = Vec::new();
        for r in rdr.records() {
            let r = r.map_err(|e| {
                let line = lines.line(e.position());
                Error::Data {
                    file: path.display().to_string(),
                    line,
                    column: 1,
                    field: "-".into(),
                    message: format!("malformed CSV: {e}"),
                }
            })?;
            let line = lines.line(r.position());
            rows.push((line, r));
        }
        Ok(Self {
            path: path.display().to_string(),
            header,
            rows,
        })
    }
    pub(crate) fn col(&self, name: &str) -> Option<usize> {
        self.header.iter().position(|h| h == name)
    }
    pub(crate) fn need(&self, name: &str) -> Result<usize> {
        self.col(name).ok_or_else(|| Error::Data {
            file: self.path.clone(),
            line: 1,
            column: self.header.len() + 1,
            field: name.into(),
            message: format!("missing required column `{name}`"),
        })
    }
    /// The number at (row, col); empty or `nan` cells are NaN.
    pub(crate) fn f64_at(&self, row: usize, col: usize) -> Result<f64> {
        let (line, r) = &self.rows[row];
        let raw = r.get(col).unwrap_or("").trim();
        if raw.is_empty() || raw.eq_ignore_ascii_case("nan") {
            return Ok(f64::NAN);
        }
        raw.parse::<f64>().map_err(|_| Error::Data {
            file: self.path.clone(),
            line: *line,
            column: col + 1,
            field: self.header[col].clone(),
            message: format!("`{raw}` is not a number"),
        })
    }
    fn i64_at(&self, row: usize, col: usize) -> Result<i64> {
        let v = self.f64_at(row, col)?;
        if v.fract() != 0.0 || !v.is_finite() {
            let (line, _) = &self.rows[row];
            return Err(Error::Data {
                file: self.path.clone(),
                line: *line,
                column: col + 1,
                field: self.header[col].clone(),
                message: "expected an integer".into(),
            });
        }
        Ok(v as i64)
    }
    fn str_at(&self, row: usize, col: usize) -> &str {
        self.rows[row].1.get(col).unwrap_or("").trim()
    }
}

/// Reads `patches.csv` (`patch_id,glon_deg,glat_deg`).
pub fn read_patches(path: &Path) -> Result<HashMap<i64, (f64, f64)>> {
    let t = Table::read(path)?;
    let (ci, cl, cb) = (
        t.need("patch_id")?,
        t.need("glon_deg")?,
        t.need("glat_deg")?,
    );
    let mut out = HashMap::with_capacity(t.rows.len());
    for i in 0..t.rows.len() {
        out.insert(t.i64_at(i, ci)?, (t.f64_at(i, cl)?, t.f64_at(i, cb)?));
    }
    Ok(out)
}

/// Reads a truth table, ours (`truth.csv`) or the published one (detected from the header),
/// plus the patch centres (`patches` overrides those implied by a published table).
pub fn read_truth(path: &Path, patches: Option<&Path>) -> Result<Truth> {
    let t = Table::read(path)?;
    let mut truth = Truth::default();
    // positions must be finite and fluxes finite and >= 0: a NaN would silently match nothing
    let check = |i: usize, col: usize, field: &str, v: f64, flux: bool| -> Result<()> {
        if v.is_finite() && (!flux || v >= 0.0) {
            return Ok(());
        }
        Err(Error::Data {
            file: t.path.clone(),
            line: t.rows[i].0,
            column: col + 1,
            field: field.into(),
            message: format!(
                "{v} is not {}",
                if flux {
                    "a finite flux >= 0"
                } else {
                    "a finite number"
                }
            ),
        })
    };
    if t.col("filename").is_some() {
        // the published columns but the optional last two (catalog, flux_10000)
        let c: Vec<usize> = super::PUBLISHED_HEADER[..11]
            .iter()
            .map(|n| t.need(n))
            .collect::<Result<_>>()?;
        let c_cat = t.col("catalog");
        let c_f10 = t.col("flux_10000");
        // The published table has no source id: a source is identified by its position and
        // flux (identical in every patch it appears in).
        let mut ids: HashMap<(u64, u64, u64), i64> = HashMap::new();
        for i in 0..t.rows.len() {
            let name = t.str_at(i, c[0]);
            let patch_id = patch_number(name).ok_or_else(|| Error::Data {
                file: t.path.clone(),
                line: t.rows[i].0,
                column: c[0] + 1,
                field: "filename".into(),
                message: format!("`{name}` has no patch number (expected e.g. test_image_12.npy)"),
            })?;
            let (xmin, xmax, ymin, ymax) = (
                t.f64_at(i, c[1])?,
                t.f64_at(i, c[2])?,
                t.f64_at(i, c[3])?,
                t.f64_at(i, c[4])?,
            );
            let class = match t.i64_at(i, c[5])? {
                0 => "AGN",
                1 => "PSR",
                _ => "OTHER",
            };
            let (lon, lat, flux) = (t.f64_at(i, c[9])?, t.f64_at(i, c[10])?, t.f64_at(i, c[8])?);
            check(i, c[9], "lon_p", lon, false)?;
            check(i, c[10], "lat_p", lat, false)?;
            check(i, c[8], "flux_1000", flux, true)?;
            let next = ids.len() as i64;
            let source_id = *ids
                .entry((lon.to_bits(), lat.to_bits(), flux.to_bits()))
                .or_insert(next);
            let (lc, bc) = (t.f64_at(i, c[6])?, t.f64_at(i, c[7])?);
            truth.patches.entry(patch_id).or_insert((lc, bc));
            truth.rows.push(TruthRow {
                patch_id,
                source_id,
                class: class.into(),
                // the published scorer: int((min + max) / 2)
                x_pix: ((xmin + xmax) / 2.0).trunc(),
                y_pix: ((ymin + ymax) / 2.0).trunc(),
                glon_deg: lon,
                glat_deg: lat,
                flux_1000_ph_cm2_s: flux,
                flux_10000_ph_cm2_s: match c_f10 {
                    Some(k) => t.f64_at(i, k)?,
                    None => f64::NAN,
                },
                snr_c: f64::NAN,
                sbr_c: f64::NAN,
                catalog: match c_cat {
                    Some(k) => t.f64_at(i, k)?,
                    None => f64::NAN,
                },
                patch_lon_deg: lc,
                patch_lat_deg: bc,
            });
        }
    } else {
        let names = [
            "patch_id",
            "source_id",
            "class",
            "x_pix",
            "y_pix",
            "glon_deg",
            "glat_deg",
            "flux_1000_ph_cm2_s",
        ];
        let c: Vec<usize> = names.iter().map(|n| t.need(n)).collect::<Result<_>>()?;
        let opt = |n: &str| t.col(n);
        let (c10, csnr, csbr) = (opt("flux_10000_ph_cm2_s"), opt("snr_c"), opt("sbr_c"));
        let get = |i: usize, c: Option<usize>| -> Result<f64> {
            match c {
                Some(k) => t.f64_at(i, k),
                None => Ok(f64::NAN),
            }
        };
        for i in 0..t.rows.len() {
            for (k, name) in names.iter().enumerate().skip(3) {
                check(i, c[k], name, t.f64_at(i, c[k])?, k == 7)?;
            }
            truth.rows.push(TruthRow {
                patch_id: t.i64_at(i, c[0])?,
                source_id: t.i64_at(i, c[1])?,
                class: t.str_at(i, c[2]).to_string(),
                x_pix: t.f64_at(i, c[3])?,
                y_pix: t.f64_at(i, c[4])?,
                glon_deg: t.f64_at(i, c[5])?,
                glat_deg: t.f64_at(i, c[6])?,
                flux_1000_ph_cm2_s: t.f64_at(i, c[7])?,
                flux_10000_ph_cm2_s: get(i, c10)?,
                snr_c: get(i, csnr)?,
                sbr_c: get(i, csbr)?,
                catalog: f64::NAN,
                patch_lon_deg: f64::NAN,
                patch_lat_deg: f64::NAN,
            });
        }
    }
    if let Some(p) = patches {
        truth.patches = read_patches(p)?;
    }
    for r in &mut truth.rows {
        if let Some(&(l, b)) = truth.patches.get(&r.patch_id) {
            r.patch_lon_deg = l;
            r.patch_lat_deg = b;
        }
    }
    Ok(truth)
}

/// The number in a published file name: `test_image_12.npy` -> 12.
pub fn patch_number(name: &str) -> Option<i64> {
    let stem = name.rsplit('/').next()?.split('.').next()?;
    stem.rsplit('_').next()?.parse().ok()
}
