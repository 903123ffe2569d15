//! Minimal NumPy `.npy` reading and writing for float arrays (format versions 1-3,
//! little-endian `<f4` or `<f8`, C order), the layout of the patches stage.
//!
//! A dedicated reader rather than `ndarray-npy`: that crate's dependency tree (`py_literal`,
//! `pest`, `psm`) changes the feature resolution of `libc` and `memchr`, which forces a full
//! rebuild of burn in the shared build directory; the format is small enough to read here.

use crate::error::{Error, Result};
use std::path::Path;

/// Reads a float `.npy` file as `(shape, values)` (float64 is converted to float32).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let bytes =
        std::fs::read(path).map_err(|e| Error::bad_file(path, format!("cannot read: {e}")))?;
    let bad = |m: &str| Error::bad_file(path, format!("not a supported .npy file: {m}"));
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("missing magic string"));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 => {
            if bytes.len() < 12 {
                return Err(bad("truncated header"));
            }
            (
                u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
                12,
            )
        }
        v => return Err(bad(&format!("format version {v}"))),
    };
    let header = std::str::from_utf8(
        bytes
            .get(hstart..hstart + hlen)
            .ok_or_else(|| bad("truncated header"))?,
    )
    .map_err(|_| bad("header is not text"))?;
    let field = |key: &str| -> Option<&str> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = &header[i + key.len() + 2..];
        Some(rest[rest.find(':')? + 1..].trim_start())
    };
    let descr = field("descr").ok_or_else(|| bad("no descr"))?;
    let width = if descr.starts_with("'<f4'") {
        4
    } else if descr.starts_with("'<f8'") {
        8
    } else {
        return Err(bad(&format!(
            "dtype {} (expected <f4 or <f8)",
            &descr[..descr.find(',').unwrap_or(descr.len())]
        )));
    };
    if !field("fortran_order").is_some_and(|v| v.starts_with("False")) {
        return Err(bad("Fortran order is not supported"));
    }
    let sh = field("shape").ok_or_else(|| bad("no shape"))?;
    let sh = &sh[1..sh.find(')').ok_or_else(|| bad("bad shape"))?];
    let shape: Vec<usize> = sh
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let n: usize = shape.iter().product();
    let data = &bytes[hstart + hlen..];
    if data.len() != n * width {
        return Err(bad(&format!(
            "{} data bytes for shape {shape:?}",
            data.len()
        )));
    }
    let values = if width == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    Ok((shape, values))
}

/// Writes a float32 `.npy` file (version 1, C order), atomically.
pub fn write_f32(path: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    assert_eq!(
        shape.iter().product::<usize>(),
        values.len(),
        "shape and data disagree"
    );
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Pad so that the data starts on a multiple of 64 bytes, header ends with '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * values.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
    crate::formats::atomic_write(path, &out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_alignment() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npy");
        let v: Vec<f32> = (0..24).map(|i| i as f32 * 0.5).collect();
        write_f32(&p, &[2, 3, 4], &v).unwrap();
        let bytes = std::fs::read(&p).unwrap();
        assert_eq!((bytes.len() - 24 * 4) % 64, 0);
        let (shape, w) = read_f32(&p).unwrap();
        assert_eq!(shape, vec![2, 3, 4]);
        assert_eq!(w, v);
        std::fs::write(&p, b"not npy").unwrap();
        assert!(read_f32(&p).is_err());
    }
}
