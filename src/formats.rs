//! File formats shared by every stage: atomic writes, hashing, gzip CSV reading.

use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// A temporary sibling name for `path`, unique to this process and call.
fn tmp_sibling(path: &Path) -> PathBuf {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Writes a file atomically: the content goes to a temporary sibling which is fsynced and
/// renamed over `path`, so a reader (or a killed run) never sees a half-written file.
pub fn atomic_write_with<F>(path: &Path, f: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> std::io::Result<()>,
{
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = tmp_sibling(path);
    let result = (|| -> std::io::Result<()> {
        let file = std::fs::File::create(&tmp)?;
        let mut w = BufWriter::new(file);
        f(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    Ok(())
}

/// Writes bytes atomically (see [`atomic_write_with`]).
pub fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

/// Copies a file atomically.
pub fn atomic_copy(from: &Path, to: &Path) -> Result<()> {
    let mut f = std::fs::File::open(from).map_err(|e| Error::io(from, e))?;
    atomic_write_with(to, |w| {
        std::io::copy(&mut f, w)?;
        Ok(())
    })
}

/// Copies a file, or a directory with everything under it, to `to` (each file atomically);
/// a missing `from` copies nothing.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if from.is_dir() {
        std::fs::create_dir_all(to).map_err(|e| Error::io(to, e))?;
        let mut entries: Vec<_> = std::fs::read_dir(from)
            .map_err(|e| Error::io(from, e))?
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            let name = p.file_name().expect("a directory entry has a name");
            copy_tree(&p, &to.join(name))?;
        }
        Ok(())
    } else if from.is_file() {
        atomic_copy(from, to)
    } else {
        Ok(())
    }
}

/// Hex SHA-256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex SHA-256 of a file's content.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex::encode(h.finalize()))
}

/// Opens a CSV file, transparently gunzipping `*.gz`.
pub fn csv_reader(path: &Path) -> Result<csv::Reader<Box<dyn Read>>> {
    let f = std::fs::File::open(path)
        .map_err(|e| Error::bad_file(path, format!("cannot open: {e}")))?;
    let r: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::GzDecoder::new(std::io::BufReader::new(f)))
    } else {
        Box::new(std::io::BufReader::new(f))
    };
    Ok(csv::ReaderBuilder::new().has_headers(true).from_reader(r))
}

/// The header row of a CSV file: columns looked up by name, with errors that name the file,
/// the line, the column and the field.
#[derive(Debug, Clone)]
pub struct Columns {
    path: PathBuf,
    headers: csv::StringRecord,
}

impl Columns {
    /// The header row of `rdr` (a reader of `path`).
    pub fn read<R: Read>(path: &Path, rdr: &mut csv::Reader<R>) -> Result<Self> {
        let headers = rdr
            .headers()
            .map_err(|e| Error::bad_file(path, e.to_string()))?
            .clone();
        Ok(Self {
            path: path.to_path_buf(),
            headers,
        })
    }

    /// The index of column `name`, or an error naming the file and the missing column.
    pub fn index(&self, name: &str) -> Result<usize> {
        self.find(name)
            .ok_or_else(|| Error::bad_file(&self.path, format!("missing column `{name}`")))
    }

    /// The index of column `name`, if the file has it.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.headers.iter().position(|h| h == name)
    }

    /// The column names.
    pub fn headers(&self) -> &csv::StringRecord {
        &self.headers
    }

    /// Field `name` of `rec` parsed as `T`; an error names the file, line, column and field.
    pub fn parse<T: std::str::FromStr>(&self, rec: &csv::StringRecord, name: &str) -> Result<T> {
        let col = self.index(name)?;
        let line = rec.position().map(|p| p.line() as usize).unwrap_or(0);
        let raw = rec.get(col).unwrap_or("");
        raw.trim().parse().map_err(|_| Error::Data {
            file: self.path.display().to_string(),
            line,
            column: col + 1,
            field: name.into(),
            message: format!("cannot parse `{raw}`"),
        })
    }
}

/// A JSON number, or `null` for NaN and infinities (which JSON cannot hold).
pub fn finite_or_null(x: f64) -> serde_json::Value {
    if x.is_finite() {
        x.into()
    } else {
        serde_json::Value::Null
    }
}

/// Formats a float for CSV: shortest representation that round-trips exactly.
pub fn fmt_f64(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        format!("{x:?}")
    }
}

/// A value as pretty TOML with floats written the way a person writes them: `3.4e-13`, not
/// `0.00000000000034` (the toml crate prints every float positionally). Floats with
/// magnitude below 1e-4 or at least 1e16 are rewritten in exponent form (Rust's shortest
/// round-trip digits, so the file reads back to the same `f64`); strings are left alone.
pub fn to_toml_pretty<T: serde::Serialize + ?Sized>(value: &T) -> crate::Result<String> {
    let text = toml::to_string_pretty(value).map_err(|e| crate::Error::Internal(e.to_string()))?;
    Ok(readable_toml_floats(&text))
}

/// Rewrites positional float literals outside strings and comments (see [`to_toml_pretty`]).
pub fn readable_toml_floats(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let b = line.as_bytes();
        let mut i = 0;
        let mut in_str: Option<u8> = None;
        while i < b.len() {
            let c = b[i];
            if let Some(q) = in_str {
                out.push(c as char);
                if c == b'\\' && q == b'"' && i + 1 < b.len() {
                    out.push(b[i + 1] as char);
                    i += 2;
                    continue;
                }
                if c == q {
                    in_str = None;
                }
                i += 1;
                continue;
            }
            if c == b'"' || c == b'\'' {
                in_str = Some(c);
                out.push(c as char);
                i += 1;
                continue;
            }
            if c == b'#' {
                out.push_str(&line[i..]);
                break;
            }
            let starts_number = (c.is_ascii_digit()
                || (c == b'-' && i + 1 < b.len() && b[i + 1].is_ascii_digit()))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'));
            if starts_number {
                let mut j = i + 1;
                while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.') {
                    j += 1;
                }
                let tok = &line[i..j];
                let at_word_end = j == b.len() || !(b[j].is_ascii_alphanumeric() || b[j] == b'_');
                if at_word_end
                    && tok.contains('.')
                    && let Ok(v) = tok.parse::<f64>()
                    && v != 0.0
                    && (v.abs() < 1e-4 || v.abs() >= 1e16)
                {
                    out.push_str(&format!("{v:e}"));
                } else {
                    out.push_str(tok);
                }
                i = j;
                continue;
            }
            // multi-byte characters are copied whole
            let ch = line[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `x` to `sig` significant digits, without trailing zeros.
pub fn format_sig(x: f64, sig: usize) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let mag = x.abs().log10().floor() as i32;
    if !(-4..6).contains(&mag) {
        return format!("{:.*e}", sig.saturating_sub(1), x);
    }
    let decimals = (sig as i32 - 1 - mag).max(0) as usize;
    let s = format!("{x:.decimals$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

#[cfg(test)]
mod toml_float_tests {
    use super::*;

    #[test]
    fn small_and_large_floats_are_written_with_exponents_and_read_back_exactly() {
        #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
        struct T {
            threshold_erg_cm2_s: f64,
            edges: Vec<f64>,
            big: f64,
            name: String,
            n: u64,
        }
        let t = T {
            threshold_erg_cm2_s: 3.4e-13,
            edges: vec![0.5, 1.0, 2.2e-14, 200.0],
            big: 1e30,
            name: "0.00000000000034 stays".into(),
            n: 20210901,
        };
        let text = to_toml_pretty(&t).unwrap();
        assert!(text.contains("threshold_erg_cm2_s = 3.4e-13\n"), "{text}");
        assert!(text.contains("2.2e-14"), "{text}");
        assert!(text.contains("big = 1e30\n"), "{text}");
        assert!(text.contains("\"0.00000000000034 stays\""), "{text}");
        assert!(text.contains("n = 20210901\n"), "{text}");
        assert!(text.contains("0.5"), "{text}");
        let back: T = toml::from_str(&text).unwrap();
        assert_eq!(back, t);
    }
}
