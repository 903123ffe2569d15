//! Parquet copies of the large tables, beside their CSV (issue 21, item 3).
//!
//! The CSV stays the reference format (every reader of the harness reads it; its numbers are
//! the shortest round-trip decimal). The Parquet file next to it holds the same columns under
//! the same names (the unit is in each name: `flux_1000_ph_cm2_s`, `glon_deg`), in the same
//! row order, typed once per column from the CSV's text:
//!
//! | cells (empty cells are nulls) | Parquet / Arrow type |
//! |---|---|
//! | all integers | INT64 |
//! | all numbers (`1.5e-9`, `NaN`, `inf`) | DOUBLE (the same `f64` the CSV spells) |
//! | all `true` / `false` | BOOLEAN |
//! | anything else | UTF8 string |
//!
//! so `pandas.read_parquet` and `polars.read_parquet` give the frames `read_csv` gives
//! (`benches/peers/parquet_check.py` checks that cell by cell). Files are written with the
//! `parquet` crate's Arrow writer, Snappy-compressed, one row group per 1,048,576 rows, and
//! are byte-identical for identical CSVs (no timestamps in the footer).
//!
//! Which tables: [`PARQUET_TABLES`]: the mock catalogs (F2 has about 200,000 rows), the
//! truth tables, detections, the scorer's match tables and evaluations, and out-of-fold
//! predictions. [`crate::store::Store::run_stage`] writes the copy of each such file a stage
//! produced, so every stage output (and `--out` export) carries both.

use crate::error::{Error, Result};
use arrow_array::{ArrayRef, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File names of the CSV tables that get a Parquet copy.
pub const PARQUET_TABLES: &[&str] = &[
    "catalog.csv",
    "truth.csv",
    "detections.csv",
    "match_table.csv",
    "evaluation.csv",
    "oof_predictions.csv",
];

/// The Parquet path of a CSV table: `a/b/truth.csv` -> `a/b/truth.parquet`.
pub fn parquet_path(csv: &Path) -> PathBuf {
    csv.with_extension("parquet")
}

/// A column's type, the narrowest that every non-empty cell parses as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Int,
    Float,
    Bool,
    Text,
}

/// The narrowest [`Kind`] of a column's cells (empty cells are nulls and do not count; an
/// all-empty column is text).
pub fn infer(cells: &[&str]) -> Kind {
    let present: Vec<&str> = cells.iter().copied().filter(|c| !c.is_empty()).collect();
    if present.is_empty() {
        Kind::Text
    } else if present.iter().all(|c| c.parse::<i64>().is_ok()) {
        Kind::Int
    } else if present.iter().all(|c| c.parse::<f64>().is_ok()) {
        Kind::Float
    } else if present.iter().all(|c| *c == "true" || *c == "false") {
        Kind::Bool
    } else {
        Kind::Text
    }
}

fn column(kind: Kind, cells: &[&str]) -> ArrayRef {
    fn opt<'a>(c: &&'a str) -> Option<&'a str> {
        (!c.is_empty()).then_some(*c)
    }
    match kind {
        Kind::Int => Arc::new(Int64Array::from_iter(
            cells
                .iter()
                .map(|c| opt(c).map(|c| c.parse::<i64>().unwrap_or_default())),
        )),
        Kind::Float => Arc::new(Float64Array::from_iter(
            cells
                .iter()
                .map(|c| opt(c).map(|c| c.parse::<f64>().unwrap_or(f64::NAN))),
        )),
        Kind::Bool => Arc::new(BooleanArray::from_iter(
            cells.iter().map(|c| opt(c).map(|c| c == "true")),
        )),
        Kind::Text => Arc::new(StringArray::from_iter(cells.iter().map(opt))),
    }
}

/// The CSV table `csv` (header row first, `.csv` or `.csv.gz`) as one Arrow record batch.
pub fn read_csv_batch(csv: &Path) -> Result<RecordBatch> {
    let mut rdr = crate::formats::csv_reader(csv)?;
    let header: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::bad_file(csv, format!("header: {e}")))?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows: Vec<csv::StringRecord> = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::bad_file(csv, format!("row {}: {e}", i + 2)))?;
        if rec.len() != header.len() {
            return Err(Error::bad_file(
                csv,
                format!(
                    "row {}: {} fields, the header has {}",
                    i + 2,
                    rec.len(),
                    header.len()
                ),
            ));
        }
        rows.push(rec);
    }
    let mut columns: Vec<(String, ArrayRef)> = Vec::with_capacity(header.len());
    for (j, name) in header.iter().enumerate() {
        let cells: Vec<&str> = rows.iter().map(|r| &r[j]).collect();
        columns.push((name.clone(), column(infer(&cells), &cells)));
    }
    if columns.is_empty() {
        return Err(Error::bad_file(csv, "no columns"));
    }
    RecordBatch::try_from_iter_with_nullable(columns.into_iter().map(|(n, a)| (n, a, true)))
        .map_err(|e| Error::bad_file(csv, format!("cannot build the table: {e}")))
}

/// Writes `csv`'s Parquet copy beside it ([`parquet_path`]), atomically.
pub fn write_parquet_beside(csv: &Path) -> Result<PathBuf> {
    let batch = read_csv_batch(csv)?;
    let out = parquet_path(csv);
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::SNAPPY)
        .set_max_row_group_row_count(Some(1 << 20))
        .build();
    let fail =
        |e: parquet::errors::ParquetError| Error::Internal(format!("{}: {e}", out.display()));
    let mut bytes = Vec::new();
    let mut writer = parquet::arrow::ArrowWriter::try_new(&mut bytes, batch.schema(), Some(props))
        .map_err(fail)?;
    writer.write(&batch).map_err(fail)?;
    writer.close().map_err(fail)?;
    crate::formats::atomic_write(&out, &bytes)?;
    Ok(out)
}

/// Writes the Parquet copy of every [`PARQUET_TABLES`] file among `files` (a stage's output
/// files, e.g. [`crate::store::walk`] of its directory) that has none yet; returns the files
/// written.
pub fn write_parquet_copies(files: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    for path in files {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if PARQUET_TABLES.contains(&name) && !parquet_path(path).exists() {
            written.push(write_parquet_beside(path)?);
        }
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::Array;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

    #[test]
    fn kinds_are_the_narrowest_that_fit() {
        assert_eq!(infer(&["1", "", "-3"]), Kind::Int);
        assert_eq!(infer(&["1", "2.5e-9", "NaN", "inf"]), Kind::Float);
        assert_eq!(infer(&["true", "false", ""]), Kind::Bool);
        assert_eq!(infer(&["agn", "1"]), Kind::Text);
        assert_eq!(infer(&["", ""]), Kind::Text);
    }

    #[test]
    fn a_table_round_trips_with_its_types_nulls_and_order() {
        let d = tempfile::tempdir().unwrap();
        let csv = d.path().join("truth.csv");
        std::fs::write(
            &csv,
            "patch_id,x_pix,class,flux_1000_ph_cm2_s,resolved\n\
             3,12.5,agn,1.25e-9,true\n\
             1,,psr,3e-10,false\n\
             2,40,\"a, b\",,\n",
        )
        .unwrap();
        let out = write_parquet_beside(&csv).unwrap();
        assert_eq!(out, d.path().join("truth.parquet"));
        let f = std::fs::File::open(&out).unwrap();
        let mut reader = ParquetRecordBatchReaderBuilder::try_new(f)
            .unwrap()
            .build()
            .unwrap();
        let b = reader.next().unwrap().unwrap();
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        assert_eq!(
            names,
            [
                "patch_id",
                "x_pix",
                "class",
                "flux_1000_ph_cm2_s",
                "resolved"
            ]
        );
        let ids = b.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(ids.values(), &[3, 1, 2]);
        let x = b.column(1).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!((x.value(0), x.is_null(1), x.value(2)), (12.5, true, 40.0));
        let class = b.column(2).as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(class.value(2), "a, b");
        let flux = b.column(3).as_any().downcast_ref::<Float64Array>().unwrap();
        assert_eq!(flux.value(0), 1.25e-9);
        assert!(flux.is_null(2));
        let res = b.column(4).as_any().downcast_ref::<BooleanArray>().unwrap();
        assert!(res.value(0) && !res.value(1) && res.is_null(2));
        // the same CSV gives the same bytes
        let first = std::fs::read(&out).unwrap();
        std::fs::remove_file(&out).unwrap();
        write_parquet_beside(&csv).unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), first);
    }

    #[test]
    fn a_ragged_row_is_an_error_naming_file_and_row() {
        let d = tempfile::tempdir().unwrap();
        let csv = d.path().join("catalog.csv");
        std::fs::write(&csv, "a,b\n1,2\n3\n").unwrap();
        let e = write_parquet_beside(&csv).unwrap_err().to_string();
        assert!(e.contains("catalog.csv") && e.contains("row 3"), "{e}");
        assert!(!d.path().join("catalog.parquet").exists());
    }
}
