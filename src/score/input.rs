//! Reading the scorer's inputs: truth tables (ours and the published challenge's), patch
//! centres, and detection files (ours and the published Centroid-Net format).
//!
//! Detection files are read by [`parse_detections`], which collects *every* problem with its
//! line and column (1-based; the column is the CSV field number) instead of stopping at the
//! first one; `challenge validate` prints them all, the scorer stops on the first. Messages
//! never contain a truth value: they only quote the submission itself and public facts (the
//! patch geometry, the list of patch ids).

use crate::error::{Error, Result};
pub(crate) use crate::patches::truth::Table;
pub use crate::patches::truth::{
    LineIndex, Truth, TruthRow, patch_number, read_patches, read_truth,
};
use crate::projection::PatchGeometry;
use std::collections::HashMap;
use std::path::Path;

/// Which detection format a file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DetectionFormat {
    /// `patch_id,x_pix,y_pix[,glon_deg,glat_deg,score,p_AGN,p_PSR,p_FAKE,flux_1000_ph_cm2_s]`.
    Gammabench,
    /// `image_nr,centroid_y,centroid_x,class_id,probability[,lon_c,lat_c,lon_ps,lat_ps,catalog]`
    /// (Panes et al. 2021 / Centroid-Net; the last five as in the published
    /// `unek_prediction_test.csv`), columns in any order.
    Published,
}

/// One detection.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// 1-based line of the file it came from (0 when built in code).
    pub line: usize,
    pub patch_id: i64,
    /// Column coordinate (sub-pixel), see [`crate::projection`].
    pub x_pix: f64,
    /// Row coordinate (sub-pixel).
    pub y_pix: f64,
    /// Sky position from the pixel and the patch centre (NaN when the centre is unknown).
    /// [`use_given_positions`] replaces it by `sky_given_deg` for legacy scoring.
    pub glon_deg: f64,
    pub glat_deg: f64,
    /// The sky position written in the file (`lon_ps, lat_ps` of the published format, our
    /// `glon_deg, glat_deg`), deg; the published scorer matches on it.
    pub sky_given_deg: Option<(f64, f64)>,
    /// Published format only: the `catalog` column (the mock sky's id).
    pub catalog: Option<f64>,
    /// Confidence (our `score`, or the published `probability`).
    pub score: Option<f64>,
    /// Published `class_id` (0 AGN, 1 PSR, 2 FAKE; negative = not a source).
    pub class_id: Option<i64>,
    /// `(p_AGN, p_PSR, p_FAKE)` when given.
    pub probs: Option<[f64; 3]>,
    /// The detector's own S1 estimate, ph cm-2 s-1.
    pub flux_1000_ph_cm2_s: Option<f64>,
}

/// A problem found in an input file.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Problem {
    /// 1-based line.
    pub line: usize,
    /// 1-based column: the CSV field number.
    pub column: usize,
    /// Column name (or `-`).
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "line {}, column {} (`{}`): {}",
            self.line, self.column, self.field, self.message
        )
    }
}

impl Problem {
    /// As an [`Error::Data`] of `file`.
    pub fn into_error(self, file: &Path) -> Error {
        Error::Data {
            file: file.display().to_string(),
            line: self.line,
            column: self.column,
            field: self.field,
            message: self.message,
        }
    }
}

/// Limits and context of [`parse_detections`].
#[derive(Debug, Clone)]
pub struct ParseOptions {
    pub max_file_bytes: u64,
    pub max_rows: usize,
    /// Known patch centres; detections in other patches are problems when this is `Some`.
    pub patches: Option<HashMap<i64, (f64, f64)>>,
    pub geometry: PatchGeometry,
    /// At most this many problems are collected.
    pub max_problems: usize,
}

impl Default for ParseOptions {
    fn default() -> Self {
        Self {
            max_file_bytes: 50 * 1024 * 1024,
            max_rows: 1_000_000,
            patches: None,
            geometry: PatchGeometry::default(),
            max_problems: 200,
        }
    }
}

/// Outcome of [`parse_detections`].
#[derive(Debug, Clone)]
pub struct Parsed {
    pub format: Option<DetectionFormat>,
    pub detections: Vec<Detection>,
    pub problems: Vec<Problem>,
    /// Problems beyond `max_problems` that were counted but not kept.
    pub more_problems: usize,
    pub n_rows: usize,
}

const OUR_REQUIRED: [&str; 3] = ["patch_id", "x_pix", "y_pix"];
/// Optional columns; `detector` is a free-text label (the method name), kept out of scoring.
const OUR_OPTIONAL: [&str; 12] = [
    "detector",
    // the calibrated probability that the detection is real (not scored; a submission
    // may send it as `score`)
    "p_real",
    // an ensemble's spread over its members (not scored)
    "position_err_deg",
    "score_err",
    "n_members",
    "glon_deg",
    "glat_deg",
    "score",
    "p_AGN",
    "p_PSR",
    "p_FAKE",
    "flux_1000_ph_cm2_s",
];
const PUB_COLUMNS: [&str; 5] = [
    "image_nr",
    "centroid_y",
    "centroid_x",
    "class_id",
    "probability",
];
/// Optional columns of the published format (`unek_prediction_test.csv` has all five):
/// the patch centre, the detection's sky position from the detector's own pixel-to-sky
/// conversion, and the mock sky's id.
const PUB_OPTIONAL: [&str; 5] = ["lon_c", "lat_c", "lon_ps", "lat_ps", "catalog"];

struct Collector {
    problems: Vec<Problem>,
    more: usize,
    max: usize,
}

impl Collector {
    fn push(&mut self, line: usize, column: usize, field: &str, message: impl Into<String>) {
        if self.problems.len() < self.max {
            self.problems.push(Problem {
                line,
                column,
                field: field.into(),
                message: message.into(),
            });
        } else {
            self.more += 1;
        }
    }
}

/// Reads and checks a detection file. Never panics; every problem is collected with its
/// line and column. A UTF-8 BOM and CRLF line ends are accepted.
pub fn parse_detections(path: &Path, opts: &ParseOptions) -> Result<Parsed> {
    let meta =
        std::fs::metadata(path).map_err(|e| Error::bad_file(path, format!("cannot open: {e}")))?;
    let mut c = Collector {
        problems: Vec::new(),
        more: 0,
        max: opts.max_problems.max(1),
    };
    let empty = |c: Collector| Parsed {
        format: None,
        detections: Vec::new(),
        problems: c.problems,
        more_problems: c.more,
        n_rows: 0,
    };
    if meta.len() > opts.max_file_bytes {
        c.push(
            1,
            1,
            "-",
            format!(
                "file is {} bytes, over the limit of {} bytes",
                meta.len(),
                opts.max_file_bytes
            ),
        );
        return Ok(empty(c));
    }
    let mut bytes =
        std::fs::read(path).map_err(|e| Error::bad_file(path, format!("cannot read: {e}")))?;
    if bytes.starts_with(&[0x1f, 0x8b]) {
        // gzip: decompressed, with the size limit applied to the decompressed text
        let mut out = Vec::new();
        let limit = opts.max_file_bytes.saturating_add(1);
        let r = std::io::Read::read_to_end(
            &mut std::io::Read::take(flate2::read::GzDecoder::new(bytes.as_slice()), limit),
            &mut out,
        );
        if let Err(e) = r {
            c.push(1, 1, "-", format!("not a readable gzip file: {e}"));
            return Ok(empty(c));
        }
        if out.len() as u64 > opts.max_file_bytes {
            c.push(
                1,
                1,
                "-",
                format!(
                    "decompressed file is over the limit of {} bytes",
                    opts.max_file_bytes
                ),
            );
            return Ok(empty(c));
        }
        bytes = out;
    }
    Ok(parse_detections_bytes(&bytes, opts, c))
}

/// [`parse_detections`] on bytes in memory (the size limit is checked by the caller).
pub fn parse_detections_from_bytes(bytes: &[u8], opts: &ParseOptions) -> Parsed {
    let c = Collector {
        problems: Vec::new(),
        more: 0,
        max: opts.max_problems.max(1),
    };
    parse_detections_bytes(bytes, opts, c)
}

fn parse_detections_bytes(bytes: &[u8], opts: &ParseOptions, mut c: Collector) -> Parsed {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            // the prefix is valid UTF-8 by construction
            let prefix = std::str::from_utf8(good).unwrap_or("");
            let (line, column) = crate::error::line_col(prefix, prefix.len());
            c.push(
                line,
                column,
                "-",
                format!("invalid UTF-8 at byte {}", e.valid_up_to()),
            );
            return Parsed {
                format: None,
                detections: Vec::new(),
                problems: c.problems,
                more_problems: c.more,
                n_rows: 0,
            };
        }
    };
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let line_at = LineIndex::new(text);
    let line_at = |p: Option<&csv::Position>| line_at.line(p);
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut records = rdr.records();
    let mut out = Parsed {
        format: None,
        detections: Vec::new(),
        problems: Vec::new(),
        more_problems: 0,
        n_rows: 0,
    };
    let header: Vec<String> = match records.next() {
        None => {
            c.push(1, 1, "-", "empty file: expected a header line");
            out.problems = c.problems;
            return out;
        }
        Some(Err(e)) => {
            c.push(1, 1, "-", format!("unreadable header: {e}"));
            out.problems = c.problems;
            return out;
        }
        Some(Ok(r)) => r.iter().map(|s| s.trim().to_string()).collect(),
    };
    let format = if header.iter().any(|h| h == "image_nr") {
        DetectionFormat::Published
    } else {
        DetectionFormat::Gammabench
    };
    out.format = Some(format);
    let (required, optional): (&[&str], &[&str]) = match format {
        DetectionFormat::Gammabench => (&OUR_REQUIRED, &OUR_OPTIONAL),
        DetectionFormat::Published => (&PUB_COLUMNS, &PUB_OPTIONAL),
    };
    let mut col: HashMap<&str, usize> = HashMap::new();
    for (i, h) in header.iter().enumerate() {
        let known = required.iter().chain(optional).find(|k| **k == h.as_str());
        match known {
            None => c.push(
                1,
                i + 1,
                h,
                format!(
                    "unknown column `{h}` (expected {}{})",
                    required.join(", "),
                    if optional.is_empty() {
                        String::new()
                    } else {
                        format!(" and optionally {}", optional.join(", "))
                    }
                ),
            ),
            Some(k) => {
                if col.insert(k, i).is_some() {
                    c.push(1, i + 1, h, format!("column `{h}` appears twice"));
                }
            }
        }
    }
    for r in required {
        if !col.contains_key(r) {
            c.push(
                1,
                header.len() + 1,
                r,
                format!("missing required column `{r}`"),
            );
        }
    }
    let p_cols = ["p_AGN", "p_PSR", "p_FAKE"];
    let n_p = p_cols.iter().filter(|p| col.contains_key(*p)).count();
    if n_p > 0 && n_p < 3 {
        for p in p_cols {
            if !col.contains_key(p) {
                c.push(
                    1,
                    header.len() + 1,
                    p,
                    "class probabilities need all of p_AGN, p_PSR, p_FAKE",
                );
            }
        }
    }
    for (a, b) in [
        ("glon_deg", "glat_deg"),
        ("lon_ps", "lat_ps"),
        ("lon_c", "lat_c"),
    ] {
        if col.contains_key(a) != col.contains_key(b) {
            let missing = if col.contains_key(a) { b } else { a };
            c.push(
                1,
                header.len() + 1,
                missing,
                format!("missing column `{missing}`: {a} and {b} must be given together"),
            );
        }
    }
    if required.iter().any(|r| !col.contains_key(r)) {
        out.problems = c.problems;
        out.more_problems = c.more;
        return out;
    }
    let geom = opts.geometry;
    let mut seen: HashMap<(i64, u64, u64), usize> = HashMap::new();
    for rec in records {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                let line = line_at(e.position());
                c.push(line, 1, "-", format!("malformed CSV: {e}"));
                continue;
            }
        };
        let line = line_at(rec.position());
        if rec.len() == 1 && rec.get(0).is_some_and(|s| s.trim().is_empty()) {
            continue; // blank line
        }
        out.n_rows += 1;
        if out.n_rows > opts.max_rows {
            c.push(
                line,
                1,
                "-",
                format!("more than {} data rows (the row limit)", opts.max_rows),
            );
            break;
        }
        if rec.len() != header.len() {
            c.push(
                line,
                rec.len().min(header.len()) + 1,
                "-",
                format!("{} fields, but the header has {}", rec.len(), header.len()),
            );
            continue;
        }
        let mut ok = true;
        let mut num = |name: &str, c: &mut Collector| -> Option<f64> {
            let i = *col.get(name)?;
            let raw = rec.get(i).unwrap_or("").trim();
            match raw.parse::<f64>() {
                Ok(v) if v.is_finite() => Some(v),
                Ok(_) => {
                    c.push(
                        line,
                        i + 1,
                        name,
                        format!("`{raw}` is not finite (NaN or inf)"),
                    );
                    ok = false;
                    None
                }
                Err(_) => {
                    c.push(line, i + 1, name, format!("`{raw}` is not a number"));
                    ok = false;
                    None
                }
            }
        };
        let (pid_name, x_name, y_name) = match format {
            DetectionFormat::Gammabench => ("patch_id", "x_pix", "y_pix"),
            DetectionFormat::Published => ("image_nr", "centroid_x", "centroid_y"),
        };
        let pid = num(pid_name, &mut c);
        let x = num(x_name, &mut c);
        let y = num(y_name, &mut c);
        let score = match format {
            DetectionFormat::Gammabench => num("score", &mut c),
            DetectionFormat::Published => num("probability", &mut c),
        };
        let class_id = if format == DetectionFormat::Published {
            num("class_id", &mut c)
        } else {
            None
        };
        let (lon_name, lat_name) = match format {
            DetectionFormat::Gammabench => ("glon_deg", "glat_deg"),
            DetectionFormat::Published => ("lon_ps", "lat_ps"),
        };
        let glon = num(lon_name, &mut c);
        let glat = num(lat_name, &mut c);
        let lon_c = num("lon_c", &mut c);
        let lat_c = num("lat_c", &mut c);
        let catalog = num("catalog", &mut c);
        let flux = num("flux_1000_ph_cm2_s", &mut c);
        let pa = num("p_AGN", &mut c);
        let pp = num("p_PSR", &mut c);
        let pf = num("p_FAKE", &mut c);
        let ci = |n: &str| col.get(n).map(|i| i + 1).unwrap_or(1);
        let mut patch_id = None;
        if let Some(p) = pid {
            if p.fract() != 0.0 || p.abs() > 9.0e15 {
                c.push(
                    line,
                    ci(pid_name),
                    pid_name,
                    format!("`{p}` is not an integer patch id"),
                );
                ok = false;
            } else {
                let p = p as i64;
                if let Some(known) = &opts.patches
                    && !known.contains_key(&p)
                {
                    c.push(
                        line,
                        ci(pid_name),
                        pid_name,
                        format!("unknown patch id {p}"),
                    );
                    ok = false;
                }
                patch_id = Some(p);
            }
        }
        let hi = geom.size as f64 - 0.5;
        for (name, v) in [(x_name, x), (y_name, y)] {
            if let Some(v) = v
                && !(-0.5..hi).contains(&v)
            {
                c.push(
                    line,
                    ci(name),
                    name,
                    format!("{v} is outside the patch (valid: -0.5 <= {name} < {hi})"),
                );
                ok = false;
            }
        }
        if format == DetectionFormat::Published {
            if let Some(s) = score
                && !(0.0..=1.0).contains(&s)
            {
                c.push(
                    line,
                    ci("probability"),
                    "probability",
                    format!("{s} is outside [0, 1]"),
                );
                ok = false;
            }
            if let Some(k) = class_id
                && k.fract() != 0.0
            {
                c.push(
                    line,
                    ci("class_id"),
                    "class_id",
                    format!("`{k}` is not an integer"),
                );
                ok = false;
            }
        }
        if let Some(f) = flux
            && f < 0.0
        {
            c.push(
                line,
                ci("flux_1000_ph_cm2_s"),
                "flux_1000_ph_cm2_s",
                format!("{f} is negative"),
            );
            ok = false;
        }
        // the published files write longitudes in [-180, 360) (e.g. lon_c = -135)
        let (lon_lo, lon_range) = match format {
            DetectionFormat::Gammabench => (0.0, "[0, 360)"),
            DetectionFormat::Published => (-360.0, "[-360, 360)"),
        };
        for (name, v) in [(lon_name, glon), ("lon_c", lon_c)] {
            if let Some(l) = v
                && !(lon_lo..360.0).contains(&l)
            {
                c.push(line, ci(name), name, format!("{l} is outside {lon_range}"));
                ok = false;
            }
        }
        for (name, v) in [(lat_name, glat), ("lat_c", lat_c)] {
            if let Some(b) = v
                && !(-90.0..=90.0).contains(&b)
            {
                c.push(line, ci(name), name, format!("{b} is outside [-90, 90]"));
                ok = false;
            }
        }
        let mut probs = None;
        if let (Some(a), Some(p), Some(f)) = (pa, pp, pf) {
            let mut good = true;
            for (name, v) in [("p_AGN", a), ("p_PSR", p), ("p_FAKE", f)] {
                if !(0.0..=1.0).contains(&v) {
                    c.push(line, ci(name), name, format!("{v} is outside [0, 1]"));
                    good = false;
                }
            }
            let s = a + p + f;
            if good && (s - 1.0).abs() > 1e-3 {
                c.push(
                    line,
                    ci("p_AGN"),
                    "p_AGN",
                    format!("p_AGN + p_PSR + p_FAKE = {s}, not 1 +- 1e-3"),
                );
                good = false;
            }
            ok &= good;
            probs = Some([a, p, f]);
        }
        let (Some(patch_id), Some(x), Some(y)) = (patch_id, x, y) else {
            continue;
        };
        let (mut l, mut b) = (f64::NAN, f64::NAN);
        // the patch centre: the known patches first, else the file's own lon_c, lat_c
        let centre = opts
            .patches
            .as_ref()
            .and_then(|k| k.get(&patch_id).copied())
            .or(lon_c.zip(lat_c));
        if let Some((l0, b0)) = centre {
            (l, b) = geom.pix_to_sky(l0, b0, x, y);
            if let (Some(gl), Some(gb)) = (glon, glat) {
                let d = crate::coords::angular_distance_deg(l, b, gl, gb);
                // the published positions come from the detector's own pixel-to-sky
                // conversion (UNEK's: up to ~1.1 px off the pixel centre's position)
                let (tol_pix, tol_text) = match format {
                    DetectionFormat::Gammabench => (1.0, "one pixel"),
                    DetectionFormat::Published => (2.0, "two pixels"),
                };
                if d > tol_pix * geom.pixel_deg() {
                    c.push(
                        line,
                        ci(lon_name),
                        lon_name,
                        format!(
                            "({lon_name}, {lat_name}) = ({gl}, {gb}) is {d:.3} deg from the sky \
                             position of ({x}, {y}) in patch {patch_id}, more than {tol_text}"
                        ),
                    );
                    ok = false;
                }
            }
        }
        if let (Some(known), Some((l0, b0))) = (
            opts.patches.as_ref().and_then(|k| k.get(&patch_id)),
            lon_c.zip(lat_c),
        ) && crate::coords::angular_distance_deg(known.0, known.1, l0, b0) > 1e-6
        {
            c.push(
                line,
                ci("lon_c"),
                "lon_c",
                format!(
                    "(lon_c, lat_c) = ({l0}, {b0}) is not the centre of patch {patch_id} ({}, {})",
                    known.0, known.1
                ),
            );
            ok = false;
        }
        let key = (patch_id, x.to_bits(), y.to_bits());
        if let Some(first) = seen.get(&key) {
            c.push(
                line,
                1,
                pid_name,
                format!("duplicate detection: same patch and position as line {first}"),
            );
            ok = false;
        } else {
            seen.insert(key, line);
        }
        if ok {
            out.detections.push(Detection {
                line,
                patch_id,
                x_pix: x,
                y_pix: y,
                glon_deg: l,
                glat_deg: b,
                sky_given_deg: glon.zip(glat),
                catalog,
                score,
                class_id: class_id.map(|k| k as i64),
                probs,
                flux_1000_ph_cm2_s: flux,
            });
        }
    }
    out.problems = c.problems;
    out.more_problems = c.more;
    out
}

/// Reads detections for scoring: the first problem is an error (exit code 2).
pub fn read_detections(
    path: &Path,
    patches: &HashMap<i64, (f64, f64)>,
) -> Result<(DetectionFormat, Vec<Detection>)> {
    let opts = ParseOptions {
        max_file_bytes: u64::MAX,
        max_rows: usize::MAX,
        patches: None,
        max_problems: 1,
        ..Default::default()
    };
    let mut p = parse_detections(path, &opts)?;
    if let Some(first) = p.problems.into_iter().next() {
        return Err(first.into_error(path));
    }
    let geom = PatchGeometry::default();
    for d in &mut p.detections {
        if let Some(&(l0, b0)) = patches.get(&d.patch_id) {
            (d.glon_deg, d.glat_deg) = geom.pix_to_sky(l0, b0, d.x_pix, d.y_pix);
        }
    }
    Ok((
        p.format.unwrap_or(DetectionFormat::Gammabench),
        p.detections,
    ))
}

/// Legacy scoring: each detection that gives its own sky position (`lon_ps, lat_ps` or
/// `glon_deg, glat_deg`) is matched there, as the published scorer matched on `lon_ps,
/// lat_ps` (UNEK's own pixel-to-sky conversion, about 0.04 deg from the pixel centre's
/// position). Global mode does not call this: it matches every detector on the sky position
/// of its pixel under one projection ([`crate::projection`]), so no detector gains or loses
/// by its own conversion.
pub fn use_given_positions(dets: &mut [Detection]) {
    for d in dets {
        if let Some((l, b)) = d.sky_given_deg {
            (d.glon_deg, d.glat_deg) = (l, b);
        }
    }
}
