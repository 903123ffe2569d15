//! Source-by-source comparison of our predictions with published ones (the authors' lists in
//! `data/reference/manconi2021/`, from github.com/manconi/agn-psr-nn-classification).
//!
//! `gammabench classify compare --ours OURS.csv --theirs THEIRS.csv --column COL --out J.json`
//! matches rows by source name (`source_id` in ours, `source_name` in theirs; names trimmed).
//!
//! * A class column (`class_dnn`, `psr_type_dnn_spec_glat` ...): their class per source, empty
//!   meaning not classified (their lists hold only the sources they call a class, so a source
//!   of ours missing from theirs counts as one they left unclassified). Ours is
//!   `predicted_class` (the class whose calibrated probability is >= `unc_threshold`, else
//!   `unclassified`). Reported: the confusion matrix ours x theirs, the fraction of common
//!   sources with the same label (unclassified included), and among the sources both call a
//!   class, the fraction with the same class.
//! * A probability column (`mean_p_FSRQ` of the BNN BCU predictions): Pearson's correlation
//!   `r = sum (a - a_mean)(b - b_mean) / sqrt(sum (a - a_mean)^2 sum (b - b_mean)^2)` of their
//!   and our `p_<class>` (the class named after `mean_p_`), the mean absolute difference, and
//!   the fraction on the same side of 0.5; with `std_p_<class>` in both, the correlation of
//!   the spreads too.

use crate::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A CSV's header and its rows keyed by one column's trimmed value.
type Keyed = (Vec<String>, HashMap<String, Vec<String>>);

/// Reads a CSV into (header, rows keyed by the trimmed value of `key`).
fn table(path: &Path, key: &str) -> Result<Keyed> {
    let mut rdr = crate::formats::csv_reader(path)?;
    let h: Vec<String> = rdr
        .headers()
        .map_err(|e| Error::bad_file(path, e.to_string()))?
        .iter()
        .map(String::from)
        .collect();
    let k = h
        .iter()
        .position(|c| c == key)
        .ok_or_else(|| Error::bad_file(path, format!("missing column `{key}`")))?;
    let mut rows = HashMap::new();
    for (r, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::bad_file(path, format!("line {}: {e}", r + 2)))?;
        let v: Vec<String> = rec.iter().map(|s| s.trim().to_string()).collect();
        rows.insert(v[k].clone(), v);
    }
    Ok((h, rows))
}

fn col(h: &[String], name: &str, path: &Path) -> Result<usize> {
    h.iter()
        .position(|c| c == name)
        .ok_or_else(|| Error::bad_file(path, format!("missing column `{name}`")))
}

/// Pearson's correlation coefficient (NaN for fewer than two points or no variance).
pub fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    if n < 2 {
        return f64::NAN;
    }
    let ma = a[..n].iter().sum::<f64>() / n as f64;
    let mb = b[..n].iter().sum::<f64>() / n as f64;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (x, y) = (a[i] - ma, b[i] - mb);
        sab += x * y;
        saa += x * x;
        sbb += y * y;
    }
    sab / (saa * sbb).sqrt()
}

/// Compares `ours` with `theirs` on `column` and returns the report (also written to `out`).
pub fn compare(ours: &Path, theirs: &Path, column: &str, out: &Path) -> Result<serde_json::Value> {
    let (ho, ro) = table(ours, "source_id")?;
    let (ht, rt) = table(theirs, "source_name")?;
    let tc = col(&ht, column, theirs)?;
    let mut names: Vec<&String> = ro.keys().filter(|n| rt.contains_key(*n)).collect();
    names.sort();
    if names.is_empty() {
        return Err(Error::bad_file(
            theirs,
            "no source name in common with ours",
        ));
    }
    let num = |path: &Path, v: &str, field: &str, name: &str| -> Result<f64> {
        v.parse::<f64>().map_err(|e| {
            Error::bad_file(
                path,
                format!("source {name}, column {field}: not a number: {e}"),
            )
        })
    };
    let report = if let Some(class) = column.strip_prefix("mean_p_") {
        let po = col(&ho, &format!("p_{class}"), ours)?;
        let so = ho.iter().position(|c| c == &format!("std_p_{class}"));
        let st = ht.iter().position(|c| c == &format!("std_p_{class}"));
        let (mut a, mut b, mut sa, mut sb) = (vec![], vec![], vec![], vec![]);
        for n in &names {
            a.push(num(ours, &ro[*n][po], &ho[po], n)?);
            b.push(num(theirs, &rt[*n][tc], column, n)?);
            if let (Some(i), Some(j)) = (so, st) {
                sa.push(num(ours, &ro[*n][i], &ho[i], n)?);
                sb.push(num(theirs, &rt[*n][j], &ht[j], n)?);
            }
        }
        let same = a
            .iter()
            .zip(&b)
            .filter(|(x, y)| (**x >= 0.5) == (**y >= 0.5))
            .count();
        let mad = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).sum::<f64>() / a.len() as f64;
        serde_json::json!({
            "column": column,
            "n_ours": ro.len(), "n_theirs": rt.len(), "n_common": names.len(),
            "pearson_p": crate::formats::finite_or_null(pearson(&a, &b)),
            "mean_abs_diff_p": mad,
            "same_side_of_0.5": same as f64 / names.len() as f64,
            "pearson_spread": if sa.is_empty() { serde_json::Value::Null } else {
                crate::formats::finite_or_null(pearson(&sa, &sb)) },
        })
    } else {
        let pc = col(&ho, "predicted_class", ours)?;
        let norm = |s: &str| {
            if s.is_empty() || s.eq_ignore_ascii_case("unclassified") {
                "unclassified".to_string()
            } else {
                s.to_uppercase()
            }
        };
        let mut confusion: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        let (mut same, mut both, mut both_same) = (0usize, 0usize, 0usize);
        // their lists hold only the sources they call a class: a source of ours that is not
        // listed is one they left unclassified
        let mut all: Vec<&String> = ro.keys().collect();
        all.sort();
        for n in &all {
            let t = rt.get(*n).map_or("", |r| r[tc].as_str());
            let (o, t) = (norm(&ro[*n][pc]), norm(t));
            *confusion
                .entry(format!("ours {o}"))
                .or_default()
                .entry(format!("theirs {t}"))
                .or_default() += 1;
            same += usize::from(o == t);
            if o != "unclassified" && t != "unclassified" {
                both += 1;
                both_same += usize::from(o == t);
            }
        }
        serde_json::json!({
            "column": column,
            "n_ours": ro.len(), "n_theirs": rt.len(), "n_common": names.len(),
            "n_compared": all.len(),
            "confusion": confusion,
            "same_label": same as f64 / all.len() as f64,
            "n_both_classified": both,
            "same_class_when_both_classified": if both > 0 { serde_json::json!(both_same as f64 / both as f64) } else { serde_json::Value::Null },
        })
    };
    super::write_json(out, &report)?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pearson_of_a_line_is_one() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!((pearson(&a, &[2.0, 4.0, 6.0, 8.0]) - 1.0).abs() < 1e-12);
        assert!((pearson(&a, &[8.0, 6.0, 4.0, 2.0]) + 1.0).abs() < 1e-12);
        assert!(pearson(&a[..1], &a[..1]).is_nan());
    }

    #[test]
    fn class_lists_count_unlisted_sources_as_unclassified() {
        let d = tempfile::tempdir().unwrap();
        let ours = d.path().join("ours.csv");
        let theirs = d.path().join("theirs.csv");
        std::fs::write(
            &ours,
            "source_id,p_AGN,p_PSR,predicted_class\nA,0.99,0.01,AGN\nB,0.02,0.98,PSR\nC,0.5,0.5,unclassified\nD,0.95,0.05,AGN\n",
        )
        .unwrap();
        // padded names as in the published lists; D is not listed (left unclassified)
        std::fs::write(&theirs, "source_name,class_dnn\nA ,AGN\nB,AGN\nC,\nE,PSR\n").unwrap();
        let r = compare(&ours, &theirs, "class_dnn", &d.path().join("r.json")).unwrap();
        assert_eq!(r["n_compared"], 4);
        assert_eq!(r["n_common"], 3);
        assert_eq!(r["n_both_classified"], 2);
        assert_eq!(r["same_class_when_both_classified"], 0.5);
        assert_eq!(r["same_label"], 0.5);
        assert_eq!(r["confusion"]["ours AGN"]["theirs unclassified"], 1);
        // a missing column is an error naming the file
        let e = compare(&ours, &theirs, "class_rnn", &d.path().join("r.json")).unwrap_err();
        assert!(e.to_string().contains("theirs.csv"), "{e}");
    }
}
