//! HEALPix maps in FITS: a small reader and writer for the binary-table layout healpy uses
//! (FITS Standard 4.0, sec. 7.3; HEALPix FITS conventions of the HEALPix primer).
//!
//! Hand-written rather than taken from a crate: `fitsio` needs the cfitsio C library, and the
//! pure-Rust `fitsrs` only reads. A HEALPix map is a primary HDU with no data followed by
//! one BINTABLE whose columns are the map's fields (here one per energy bin), one row per
//! pixel (or `r` pixels per row with `TFORM = 'rE'`), big-endian, in 2880-byte blocks, with
//! the keys PIXTYPE, ORDERING, NSIDE, FIRSTPIX, LASTPIX, INDXSCHM, OBJECT and COORDSYS.
//! Written files open with `healpy.read_map(path, field=None)`.

use crate::error::{Error, Result};
use std::path::Path;

const BLOCK: usize = 2880;

/// A HEALPix map with one or more columns.
#[derive(Debug, Clone, PartialEq)]
pub struct HealpixFits {
    pub nside: u32,
    /// `RING` or `NESTED`.
    pub ordering: String,
    /// `G` (Galactic) for every map gammabench writes.
    pub coordsys: String,
    /// (name, unit, values); every column holds `12 nside^2` values.
    pub columns: Vec<(String, String, Vec<f32>)>,
    /// Extra header cards of the table, (key, value as written).
    pub extra: Vec<(String, String)>,
}

fn card(key: &str, value: &str, comment: &str) -> String {
    let mut s = format!("{key:<8}= {value:>20}");
    if !comment.is_empty() {
        s.push_str(" / ");
        s.push_str(comment);
    }
    s.truncate(80);
    format!("{s:<80}")
}

fn str_value(v: &str) -> String {
    let q = v.replace('\'', "''");
    format!("'{q:<8}'")
}

fn card_str(key: &str, value: &str, comment: &str) -> String {
    let mut s = format!("{key:<8}= {:<20}", str_value(value));
    if !comment.is_empty() {
        s.push_str(" / ");
        s.push_str(comment);
    }
    s.truncate(80);
    format!("{s:<80}")
}

fn pad_header(cards: &[String]) -> Vec<u8> {
    let mut h: Vec<u8> = cards.concat().into_bytes();
    h.extend(format!("{:<80}", "END").bytes());
    while !h.len().is_multiple_of(BLOCK) {
        h.push(b' ');
    }
    h
}

impl HealpixFits {
    /// Serialises the map.
    pub fn to_bytes(&self) -> Vec<u8> {
        let npix = 12 * self.nside as usize * self.nside as usize;
        let ncol = self.columns.len();
        let mut out = pad_header(&[
            card("SIMPLE", "T", "conforms to FITS standard"),
            card("BITPIX", "8", "array data type"),
            card("NAXIS", "0", "number of array dimensions"),
            card("EXTEND", "T", ""),
        ]);
        let mut cards = vec![
            card_str("XTENSION", "BINTABLE", "binary table extension"),
            card("BITPIX", "8", "array data type"),
            card("NAXIS", "2", "number of array dimensions"),
            card("NAXIS1", &(4 * ncol).to_string(), "length of dimension 1"),
            card("NAXIS2", &npix.to_string(), "length of dimension 2"),
            card("PCOUNT", "0", "number of group parameters"),
            card("GCOUNT", "1", "number of groups"),
            card("TFIELDS", &ncol.to_string(), "number of table fields"),
        ];
        for (i, (name, unit, _)) in self.columns.iter().enumerate() {
            cards.push(card_str(&format!("TTYPE{}", i + 1), name, ""));
            cards.push(card_str(&format!("TFORM{}", i + 1), "E", ""));
            if !unit.is_empty() {
                cards.push(card_str(&format!("TUNIT{}", i + 1), unit, ""));
            }
        }
        cards.extend([
            card_str("PIXTYPE", "HEALPIX", "HEALPIX pixelisation"),
            card_str(
                "ORDERING",
                &self.ordering,
                "Pixel ordering scheme, RING or NESTED",
            ),
            card_str(
                "COORDSYS",
                &self.coordsys,
                "Ecliptic, Galactic or Celestial (equatorial)",
            ),
            card_str("EXTNAME", "xtension", "name of this binary table extension"),
            card(
                "NSIDE",
                &self.nside.to_string(),
                "Resolution parameter of HEALPIX",
            ),
            card("FIRSTPIX", "0", "First pixel # (0 based)"),
            card("LASTPIX", &(npix - 1).to_string(), "Last pixel # (0 based)"),
            card_str("INDXSCHM", "IMPLICIT", "Indexing: IMPLICIT or EXPLICIT"),
            card_str(
                "OBJECT",
                "FULLSKY",
                "Sky coverage, either FULLSKY or PARTIAL",
            ),
        ]);
        for (k, v) in &self.extra {
            if v.starts_with('\'') || v.parse::<f64>().is_ok() || v == "T" || v == "F" {
                cards.push(card(k, v, ""));
            } else {
                cards.push(card_str(k, v, ""));
            }
        }
        out.extend(pad_header(&cards));
        let mut data = Vec::with_capacity(npix * ncol * 4 + BLOCK);
        for p in 0..npix {
            for (_, _, col) in &self.columns {
                data.extend_from_slice(&col[p].to_be_bytes());
            }
        }
        while data.len() % BLOCK != 0 {
            data.push(0);
        }
        out.extend(data);
        out
    }

    /// Writes the map atomically.
    pub fn write(&self, path: &Path) -> Result<()> {
        crate::formats::atomic_write(path, &self.to_bytes())
    }

    /// Reads a HEALPix map (first BINTABLE; columns of type E or D, any repeat count).
    pub fn read(path: &Path) -> Result<Self> {
        let bytes =
            std::fs::read(path).map_err(|e| Error::bad_file(path, format!("cannot read: {e}")))?;
        Self::from_bytes(&bytes).map_err(|m| Error::bad_file(path, m))
    }

    /// Parses a HEALPix FITS file from memory.
    pub fn from_bytes(bytes: &[u8]) -> std::result::Result<Self, String> {
        let mut pos = 0;
        loop {
            let (cards, next) = read_header(bytes, pos)?;
            let get = |k: &str| cards.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
            let geti = |k: &str| -> std::result::Result<usize, String> {
                get(k)
                    .ok_or(format!("missing key {k}"))?
                    .parse::<usize>()
                    .map_err(|e| format!("key {k}: {e}"))
            };
            let naxis = geti("NAXIS")?;
            let mut data_len = if naxis == 0 { 0 } else { 1 };
            for i in 1..=naxis {
                data_len *= geti(&format!("NAXIS{i}"))?;
            }
            let bitpix: i64 = get("BITPIX")
                .ok_or("missing BITPIX")?
                .parse()
                .map_err(|e| format!("BITPIX: {e}"))?;
            data_len *= (bitpix.unsigned_abs() / 8) as usize;
            data_len += get("PCOUNT")
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if get("XTENSION").as_deref() == Some("BINTABLE") {
                return parse_table(&cards, &bytes[next..]);
            }
            pos = next + data_len.div_ceil(BLOCK) * BLOCK;
            if pos >= bytes.len() {
                return Err("no BINTABLE extension".into());
            }
        }
    }

    /// The value of an extra header key.
    pub fn key(&self, k: &str) -> Option<&str> {
        self.extra
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, v)| v.as_str())
    }
}

/// Header cards from `pos` to END: (key, value) with strings unquoted; returns the offset of
/// the data that follows.
fn read_header(
    bytes: &[u8],
    mut pos: usize,
) -> std::result::Result<(Vec<(String, String)>, usize), String> {
    let mut cards = Vec::new();
    loop {
        if pos + 80 > bytes.len() {
            return Err("truncated header (no END card)".into());
        }
        let c = std::str::from_utf8(&bytes[pos..pos + 80]).map_err(|_| "non-ASCII header card")?;
        pos += 80;
        let key = c[..8].trim().to_string();
        if key == "END" {
            break;
        }
        if &c[8..10] != "= " {
            continue;
        }
        let rest = c[10..].trim_start();
        let value = if let Some(r) = rest.strip_prefix('\'') {
            // quoted string, '' escapes a quote
            let mut s = String::new();
            let mut it = r.chars().peekable();
            while let Some(ch) = it.next() {
                if ch == '\'' {
                    if it.peek() == Some(&'\'') {
                        s.push('\'');
                        it.next();
                    } else {
                        break;
                    }
                } else {
                    s.push(ch);
                }
            }
            s.trim_end().to_string()
        } else {
            rest.split('/').next().unwrap_or("").trim().to_string()
        };
        cards.push((key, value));
    }
    Ok((cards, pos.div_ceil(BLOCK) * BLOCK))
}

fn parse_table(
    cards: &[(String, String)],
    data: &[u8],
) -> std::result::Result<HealpixFits, String> {
    let get = |k: &str| cards.iter().find(|(kk, _)| kk == k).map(|(_, v)| v.clone());
    let geti = |k: &str| -> std::result::Result<usize, String> {
        get(k)
            .ok_or(format!("missing key {k}"))?
            .parse::<usize>()
            .map_err(|e| format!("key {k}: {e}"))
    };
    let row_len = geti("NAXIS1")?;
    let nrows = geti("NAXIS2")?;
    let nfields = geti("TFIELDS")?;
    if get("PIXTYPE").as_deref() != Some("HEALPIX") {
        return Err("PIXTYPE is not HEALPIX".into());
    }
    let nside: u32 = geti("NSIDE")? as u32;
    if !super::healpix::valid_nside(nside) {
        return Err(format!("NSIDE {nside} is not a power of two in 1..8192"));
    }
    let npix = 12 * nside as usize * nside as usize;
    if data.len() < row_len * nrows {
        return Err("data shorter than NAXIS1 x NAXIS2".into());
    }
    let mut columns = Vec::new();
    let mut offset = 0;
    for i in 1..=nfields {
        let form = get(&format!("TFORM{i}")).ok_or(format!("missing TFORM{i}"))?;
        let form = form.trim();
        let (rep, ty) = form.split_at(form.len() - 1);
        let rep: usize = if rep.is_empty() {
            1
        } else {
            rep.parse().map_err(|_| format!("TFORM{i} = {form}"))?
        };
        let size = match ty {
            "E" => 4,
            "D" => 8,
            _ => {
                return Err(format!(
                    "TFORM{i} = {form}: only E and D columns are supported"
                ));
            }
        };
        if rep * nrows != npix {
            return Err(format!(
                "column {i} has {} values, NSIDE {nside} needs {npix}",
                rep * nrows
            ));
        }
        let mut v = Vec::with_capacity(npix);
        for r in 0..nrows {
            let base = r * row_len + offset;
            for k in 0..rep {
                let at = base + k * size;
                let x = if size == 4 {
                    f32::from_be_bytes(data[at..at + 4].try_into().expect("4 bytes"))
                } else {
                    f64::from_be_bytes(data[at..at + 8].try_into().expect("8 bytes")) as f32
                };
                v.push(x);
            }
        }
        offset += rep * size;
        columns.push((
            get(&format!("TTYPE{i}")).unwrap_or_else(|| format!("COL{i}")),
            get(&format!("TUNIT{i}")).unwrap_or_default(),
            v,
        ));
    }
    if offset != row_len {
        return Err(format!(
            "columns take {offset} bytes per row, NAXIS1 says {row_len}"
        ));
    }
    const STANDARD: &[&str] = &[
        "XTENSION", "BITPIX", "NAXIS", "NAXIS1", "NAXIS2", "PCOUNT", "GCOUNT", "TFIELDS",
        "PIXTYPE", "ORDERING", "COORDSYS", "EXTNAME", "NSIDE", "FIRSTPIX", "LASTPIX", "INDXSCHM",
        "OBJECT",
    ];
    let extra = cards
        .iter()
        .filter(|(k, _)| {
            !STANDARD.contains(&k.as_str())
                && !k.starts_with("TTYPE")
                && !k.starts_with("TFORM")
                && !k.starts_with("TUNIT")
        })
        .cloned()
        .collect();
    Ok(HealpixFits {
        nside,
        ordering: get("ORDERING").unwrap_or_else(|| "RING".into()),
        coordsys: get("COORDSYS").unwrap_or_default(),
        columns,
        extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_header_keys() {
        let nside = 4;
        let npix = 192;
        let m = HealpixFits {
            nside,
            ordering: "RING".into(),
            coordsys: "G".into(),
            columns: vec![
                (
                    "BIN0".into(),
                    "counts".into(),
                    (0..npix).map(|i| i as f32 * 0.5).collect(),
                ),
                (
                    "BIN1".into(),
                    "counts".into(),
                    (0..npix).map(|i| -(i as f32)).collect(),
                ),
            ],
            extra: vec![
                ("EMIN1".into(), "500.0".into()),
                ("COMPONT".into(), "diffuse".into()),
            ],
        };
        let b = m.to_bytes();
        assert_eq!(b.len() % 2880, 0);
        let text = String::from_utf8_lossy(&b[2880..2880 * 2]);
        for key in [
            "PIXTYPE = 'HEALPIX '",
            "ORDERING= 'RING    '",
            "COORDSYS= 'G       '",
            "NSIDE   =                    4",
        ] {
            assert!(text.contains(key), "{key} missing");
        }
        let r = HealpixFits::from_bytes(&b).unwrap();
        assert_eq!(r, m);
        assert_eq!(r.key("COMPONT"), Some("diffuse"));
    }

    #[test]
    fn reads_the_shipped_gas_map() {
        let b = include_bytes!("../../data/gas/h1_nh_HI4PI_healpix_lowres.fits");
        let m = HealpixFits::from_bytes(b).unwrap();
        assert_eq!(m.nside, 64);
        assert_eq!(m.ordering, "RING");
        let v = &m.columns[0].2;
        assert_eq!(v.len(), 49152);
        // N(HI) is 1e19..1e23 cm-2 everywhere
        assert!(
            v.iter().all(|&x| (1e19..1e23).contains(&x)),
            "{:?}",
            v.iter().cloned().fold(f32::MAX, f32::min)
        );
    }

    #[test]
    fn rejects_bad_files() {
        assert!(HealpixFits::from_bytes(b"SIMPLE  = T").is_err());
        let mut b = HealpixFits {
            nside: 1,
            ordering: "RING".into(),
            coordsys: "G".into(),
            columns: vec![("I".into(), String::new(), vec![1.0; 12])],
            extra: vec![],
        }
        .to_bytes();
        b.truncate(2880 * 2 + 10);
        b[2880 * 2..].fill(0);
        assert!(HealpixFits::from_bytes(&b[..2880 * 2 + 10]).is_err());
    }
}
