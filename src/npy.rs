//! NumPy `.npy` files (format version 1.0): a magic string, a little-endian header length,
//! a Python-literal header `{'descr': '<f4', 'fortran_order': False, 'shape': (...), }`
//! padded with spaces to a multiple of 64 bytes, then the data in C order.

use crate::error::{Error, Result};
use std::io::Write;
use std::path::Path;

/// Element types gammabench writes.
pub trait NpyElem: Copy {
    const DESCR: &'static str;
    fn write_le(&self, w: &mut dyn Write) -> std::io::Result<()>;
    fn from_le(b: &[u8]) -> Self;
    const SIZE: usize;
}

impl NpyElem for f32 {
    const DESCR: &'static str = "<f4";
    const SIZE: usize = 4;
    fn write_le(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(&self.to_le_bytes())
    }
    fn from_le(b: &[u8]) -> Self {
        f32::from_le_bytes(b.try_into().expect("4 bytes"))
    }
}

impl NpyElem for u8 {
    const DESCR: &'static str = "|u1";
    const SIZE: usize = 1;
    fn write_le(&self, w: &mut dyn Write) -> std::io::Result<()> {
        w.write_all(&[*self])
    }
    fn from_le(b: &[u8]) -> Self {
        b[0]
    }
}

fn header(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("{},", shape[0]),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.div_ceil(64) * 64;
    let mut h = Vec::with_capacity(total);
    h.extend_from_slice(b"\x93NUMPY\x01\x00");
    h.extend_from_slice(&((total - 10) as u16).to_le_bytes());
    h.extend_from_slice(dict.as_bytes());
    h.resize(total - 1, b' ');
    h.push(b'\n');
    h
}

/// Writes `data` (C order) with `shape` atomically.
pub fn write<T: NpyElem>(path: &Path, shape: &[usize], data: &[T]) -> Result<()> {
    let n: usize = shape.iter().product();
    if n != data.len() {
        return Err(Error::Internal(format!(
            "npy {}: shape {shape:?} but {} values",
            path.display(),
            data.len()
        )));
    }
    crate::formats::atomic_write_with(path, |w| {
        w.write_all(&header(T::DESCR, shape))?;
        let mut buf = Vec::with_capacity(1 << 16);
        for chunk in data.chunks(1 << 14) {
            buf.clear();
            for x in chunk {
                x.write_le(&mut buf)?;
            }
            w.write_all(&buf)?;
        }
        Ok(())
    })
}

/// Reads an array written by [`write`]: (shape, data).
pub fn read<T: NpyElem>(path: &Path) -> Result<(Vec<usize>, Vec<T>)> {
    let b = std::fs::read(path).map_err(|e| Error::bad_file(path, format!("cannot read: {e}")))?;
    let h = parse_header(path, &b)?;
    if h.descr != T::DESCR {
        return Err(Error::bad_file(path, format!("dtype is not {}", T::DESCR)));
    }
    let n: usize = h.shape.iter().product();
    let body = &b[h.data_start..];
    if body.len() != n * T::SIZE {
        return Err(Error::bad_file(path, "data length does not match shape"));
    }
    Ok((h.shape, body.chunks(T::SIZE).map(T::from_le).collect()))
}

/// The parsed header of a `.npy` file.
struct Header<'a> {
    descr: &'a str,
    shape: Vec<usize>,
    /// Byte offset of the data.
    data_start: usize,
}

/// Parses the magic string, version (1.0, 2.0 or 3.0) and header dictionary; C order only.
fn parse_header<'a>(path: &Path, b: &'a [u8]) -> Result<Header<'a>> {
    if b.len() < 10 || &b[..6] != b"\x93NUMPY" {
        return Err(Error::bad_file(path, "not a .npy file"));
    }
    let (hl, start) = match b[6] {
        1 => (u16::from_le_bytes([b[8], b[9]]) as usize, 10),
        2 | 3 if b.len() >= 12 => (u32::from_le_bytes([b[8], b[9], b[10], b[11]]) as usize, 12),
        v => return Err(Error::bad_file(path, format!("unknown .npy version {v}"))),
    };
    let h = b
        .get(start..start + hl)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| Error::bad_file(path, "bad header"))?;
    let field = |key: &str| -> Option<&'a str> {
        let i = h.find(&format!("'{key}':"))? + key.len() + 3;
        Some(h[i..].trim_start())
    };
    let descr = field("descr")
        .and_then(|r| r.strip_prefix('\''))
        .and_then(|r| r.split('\'').next())
        .ok_or_else(|| Error::bad_file(path, "header has no descr"))?;
    if field("fortran_order").is_some_and(|r| r.starts_with("True")) {
        return Err(Error::bad_file(
            path,
            "Fortran-ordered arrays are not supported (save with numpy.ascontiguousarray)",
        ));
    }
    let shape_txt = field("shape")
        .and_then(|r| r.strip_prefix('('))
        .and_then(|r| r.split(')').next())
        .ok_or_else(|| Error::bad_file(path, "no shape"))?;
    let mut shape = Vec::new();
    for x in shape_txt
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
    {
        shape.push(
            x.parse::<usize>()
                .map_err(|_| Error::bad_file(path, format!("bad shape `{shape_txt}`")))?,
        );
    }
    Ok(Header {
        descr,
        shape,
        data_start: start + hl,
    })
}

/// Reads a float32 array (shape, C-order values).
pub fn read_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    read::<f32>(path)
}

/// Writes a float32 array of `shape` in C order.
pub fn write_f32(path: &Path, shape: &[usize], values: &[f32]) -> Result<()> {
    write(path, shape, values)
}

/// Reads a floating-point array written by NumPy (format 1.0, 2.0 or 3.0; `<f4`, `<f8` or
/// `<f2` in C order) as float32 values. Published data sets (e.g. the `test_image_N.npy`
/// files of Panes et al. 2021) are often float64; expected counts keep float32's 7 digits.
pub fn read_float_as_f32(path: &Path) -> Result<(Vec<usize>, Vec<f32>)> {
    let b = std::fs::read(path).map_err(|e| Error::bad_file(path, format!("cannot read: {e}")))?;
    let Header {
        descr,
        shape,
        data_start,
    } = parse_header(path, &b)?;
    let n: usize = shape.iter().product();
    let body = &b[data_start..];
    let size = match descr {
        "<f4" => 4,
        "<f8" => 8,
        "<f2" => 2,
        other => {
            return Err(Error::bad_file(
                path,
                format!("dtype {other} is not a little-endian float (<f2, <f4, <f8)"),
            ));
        }
    };
    if body.len() != n * size {
        return Err(Error::bad_file(
            path,
            format!(
                "{} data bytes, but shape {shape:?} of {descr} needs {}",
                body.len(),
                n * size
            ),
        ));
    }
    let values = body
        .chunks_exact(size)
        .map(|c| match size {
            4 => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            8 => f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]) as f32,
            _ => f16_to_f32(u16::from_le_bytes([c[0], c[1]])),
        })
        .collect();
    Ok((shape, values))
}

/// IEEE 754 half precision to single precision.
fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // subnormal: value = f * 2^-24
            return if sign != 0 { -1.0 } else { 1.0 } * f as f32 * 2f32.powi(-24);
        }
        (0x1f, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_header_alignment() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("a.npy");
        let data: Vec<f32> = (0..2 * 3 * 4).map(|i| i as f32 * 0.25).collect();
        write(&p, &[2, 3, 4], &data).unwrap();
        let raw = std::fs::read(&p).unwrap();
        assert_eq!((raw.len() - data.len() * 4) % 64, 0);
        let (shape, back) = read::<f32>(&p).unwrap();
        assert_eq!(shape, vec![2, 3, 4]);
        assert_eq!(back, data);
        write(&p, &[5], &[1u8, 0, 1, 1, 0]).unwrap();
        assert_eq!(read::<u8>(&p).unwrap().0, vec![5]);
        assert!(read::<f32>(&p).is_err());
    }
}
