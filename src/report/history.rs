//! The nightly history, in the model of asv (airspeed velocity): every `gammabench nightly`
//! appends one record per night (commit, UTC date, crate version, the versions of the data and
//! of the code, and every metric it compared) to `results/nightly/history.jsonl.gz`, one JSON
//! object a line. Regressions are then judged against a rolling window of the last N nights
//! (`[nightly] window`, 7 by default) rather than against a single run: the reference value of
//! a metric is the median of its values over the window (robust to one noisy night, as asv's
//! step detection is), and the rule per metric (`[[nightly.rules]]`) is applied to the
//! reference and tonight's value exactly as it is to a baseline.
//!
//! The file is append-only: a new line is written with one `write` on a file opened for
//! appending and `fsync`ed before the command goes on, so a killed run leaves at most a
//! truncated last line, which the next run refuses (naming the file and line) instead of
//! silently dropping it. Earlier lines are never rewritten.
//!
//! A night of the CI grid is about 25,000 metrics, 2.5 MB of JSON. A path ending in `.gz`
//! (the default, `history.jsonl.gz`) stores each night as its own gzip member appended to
//! the file (RFC 1952 allows any number of members; `zcat`, Python's `gzip` and pandas read
//! the concatenation as one stream): about 0.27 MB a night, and appending still never
//! rewrites what is there. A plain `.jsonl` path is read and written as plain text.

/// A night's metrics by name (the same map as `nightly::Metrics`; not imported, so that
/// `nightly` may read this module's rules without an import cycle).
pub type Metrics = std::collections::BTreeMap<String, f64>;
use crate::config::{NightlyConfig, NightlyRule};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// Rolling-window length when the config has no `[nightly] window`.
pub const DEFAULT_WINDOW: usize = 7;

/// One night of the history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Record {
    /// Git commit the binary was built from (`unknown` without `GAMMABENCH_GIT_COMMIT`).
    pub commit: String,
    /// When the run finished, RFC 3339 UTC (`2026-12-02T03:00:00Z`).
    pub date_utc: String,
    /// `CARGO_PKG_VERSION` of the binary.
    pub crate_version: String,
    /// SHA-256 of the plan's stage hashes (sorted): identical when the grid's configs and
    /// inputs are identical, so a change of data is told apart from a change of code.
    pub data_version: String,
    /// SHA-256 of the gammabench executable: identifies the code even when the commit is
    /// `unknown` or the tree was dirty.
    pub code_version: String,
    /// Every metric of the night (finite values only).
    pub metrics: Metrics,
}

/// Reads a history file; a missing file is an empty history. Blank lines are skipped; any
/// other line that is not a record is an error naming `file:line`.
pub fn read(path: &Path) -> Result<Vec<Record>> {
    let text = match read_text(path)? {
        Some(t) => t,
        None => return Ok(vec![]),
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let r: Record = serde_json::from_str(line).map_err(|e| {
            Error::bad_file(
                path,
                format!(
                    "line {}, column {}: not a history record ({e}); fix or remove the line",
                    i + 1,
                    e.column()
                ),
            )
        })?;
        out.push(r);
    }
    Ok(out)
}

fn gzipped(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// The history's text (every gzip member decompressed in order for a `.gz` path); `None`
/// when the file does not exist.
fn read_text(path: &Path) -> Result<Option<String>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let bytes = if gzipped(path) && !bytes.is_empty() {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::MultiGzDecoder::new(&bytes[..]), &mut out)
            .map_err(|e| {
                Error::bad_file(
                    path,
                    format!(
                        "not a complete gzip stream after {} decompressed bytes ({e}): a \
                         killed writer's partial last member; restore the file or cut it",
                        out.len()
                    ),
                )
            })?;
        out
    } else {
        bytes
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|e| Error::bad_file(path, format!("not UTF-8 text: {e}")))
}

/// Appends `record` as one line (one gzip member for a `.gz` path). The existing file is read
/// (and refused when malformed) first; the bytes are written with a single `write_all` in
/// append mode and `fsync`ed, so earlier nights are never touched and a crash cannot
/// interleave half of two records.
pub fn append(path: &Path, record: &Record) -> Result<()> {
    let before = read_text(path)?;
    read(path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let mut clean = record.clone();
    clean.metrics.retain(|_, v| v.is_finite());
    let mut line = serde_json::to_string(&clean).map_err(|e| Error::Internal(e.to_string()))?;
    line.push('\n');
    // a previous writer without a final newline (hand-edited): start on a fresh line
    if before.is_some_and(|t| !t.is_empty() && !t.ends_with('\n')) {
        line.insert(0, '\n');
    }
    let bytes = if gzipped(path) {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(line.as_bytes())
            .and_then(|_| gz.finish())
            .map_err(|e| Error::io(path, e))?
    } else {
        line.into_bytes()
    };
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| Error::io(path, e))?;
    f.write_all(&bytes)
        .and_then(|_| f.sync_all())
        .map_err(|e| Error::io(path, e))
}

/// Median of `v` (mean of the two middle values for an even count); `None` when empty.
pub fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        0.5 * (s[n / 2 - 1] + s[n / 2])
    })
}

/// The reference of every metric: the median of its values over the last `window` records
/// (a metric absent from some of them is the median of the nights that have it).
pub fn window_reference(history: &[Record], window: usize) -> Metrics {
    let start = history.len().saturating_sub(window.max(1));
    let mut values: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    for r in &history[start..] {
        for (k, v) in &r.metrics {
            values.entry(k).or_default().push(*v);
        }
    }
    values
        .into_iter()
        .filter_map(|(k, v)| median(&v).map(|m| (k.to_string(), m)))
        .collect()
}

/// The rule a metric is judged by: the first `[[nightly.rules]]` whose pattern it contains,
/// else the defaults (wall times and bench means lower-is-better within 50 %, everything
/// else exact within 1e-9 relative).
pub fn rule_for(cfg: &NightlyConfig, metric: &str) -> NightlyRule {
    if let Some(r) = cfg.rules.iter().find(|r| metric.contains(&r.pattern)) {
        return r.clone();
    }
    if metric.ends_with("wall_time_s") || metric.ends_with("mean_ns") {
        NightlyRule {
            pattern: "wall_time_s".into(),
            direction: "lower_is_better".into(),
            rel_tol: 0.5,
            abs_tol: 0.5,
        }
    } else {
        NightlyRule {
            pattern: String::new(),
            direction: "exact".into(),
            rel_tol: 1e-9,
            abs_tol: 1e-12,
        }
    }
}

/// Half-width of the tolerance band of `rule` around `reference`.
pub fn tolerance(rule: &NightlyRule, reference: f64) -> f64 {
    rule.abs_tol.max(rule.rel_tol * reference.abs())
}

/// Indices `i` of `series` (in night order; `None` where a night lacks the metric) where the
/// value changed from the previous night that has it by more than the rule's tolerance
/// (in either direction): the commit where a step happened.
pub fn steps(series: &[Option<f64>], rule: &NightlyRule) -> Vec<usize> {
    let mut out = Vec::new();
    let mut prev: Option<f64> = None;
    for (i, v) in series.iter().enumerate() {
        if let Some(c) = v {
            if let Some(p) = prev
                && (c - p).abs() > tolerance(rule, p)
            {
                out.push(i);
            }
            prev = Some(*c);
        }
    }
    out
}

/// SHA-256 of the sorted stage hashes of a plan: the record's `data_version`.
pub fn data_version(stage_hashes: &[String]) -> String {
    let mut h = stage_hashes.to_vec();
    h.sort();
    crate::formats::sha256_hex(h.join("\n").as_bytes())
}

/// SHA-256 of the running executable (`unknown` when it cannot be read): `code_version`.
pub fn code_version() -> String {
    std::env::current_exe()
        .ok()
        .and_then(|p| crate::formats::sha256_file(&p).ok())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(commit: &str, m: &[(&str, f64)]) -> Record {
        Record {
            commit: commit.into(),
            date_utc: "2026-12-02T03:00:00Z".into(),
            crate_version: "0.1.0".into(),
            data_version: "d".into(),
            code_version: "c".into(),
            metrics: m.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        }
    }

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
    }

    #[test]
    fn window_takes_the_last_n_nights() {
        let h = vec![
            rec("a", &[("p", 100.0)]),
            rec("b", &[("p", 0.5), ("q", 1.0)]),
            rec("c", &[("p", 0.75)]),
            rec("d", &[("p", 0.625), ("q", 3.0)]),
        ];
        let r = window_reference(&h, 3);
        // nights b, c, d: night a (100) is outside the window
        assert_eq!(r["p"], 0.625);
        // q only on b and d: the median of the two
        assert_eq!(r["q"], 2.0);
        // all four nights: (0.625 + 0.75) / 2
        assert_eq!(window_reference(&h, 10)["p"], 0.6875);
        assert!(window_reference(&[], 7).is_empty());
    }

    #[test]
    fn steps_beyond_the_tolerance_between_consecutive_nights() {
        let rule = NightlyRule {
            pattern: "purity".into(),
            direction: "higher_is_better".into(),
            rel_tol: 0.1,
            abs_tol: 0.0,
        };
        let s = [
            Some(1.0),
            Some(1.05),
            None,
            Some(1.2),
            Some(1.21),
            Some(0.9),
        ];
        // 1.0 -> 1.05 within 10 %; 1.05 -> (gap) -> 1.2 is 14 %; 1.21 -> 0.9 is 26 %
        assert_eq!(steps(&s, &rule), vec![3, 5]);
        assert!(steps(&[Some(1.0)], &rule).is_empty());
    }

    #[test]
    fn append_reads_back_and_refuses_a_malformed_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/history.jsonl");
        assert!(read(&p).unwrap().is_empty());
        let a = rec("a", &[("p", 0.5)]);
        let b = rec("b", &[("p", 0.25), ("nan", f64::NAN)]);
        append(&p, &a).unwrap();
        append(&p, &b).unwrap();
        let back = read(&p).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[0], a);
        assert_eq!(
            back[1].metrics.len(),
            1,
            "non-finite values are not recorded"
        );
        assert_eq!(back[1].metrics["p"], 0.25);
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text.lines().count(), 2);
        // a truncated last line (a killed writer): refused with file and line, nothing lost
        std::fs::write(&p, format!("{text}{{\"commit\":\"c\",")).unwrap();
        let err = read(&p).unwrap_err().to_string();
        assert!(err.contains("history.jsonl"), "{err}");
        assert!(err.contains("line 3"), "{err}");
        let err = append(&p, &a).unwrap_err().to_string();
        assert!(err.contains("line 3"), "{err}");
        assert!(std::fs::read_to_string(&p).unwrap().starts_with(&text));
    }

    #[test]
    fn a_gz_history_is_one_gzip_member_a_night_and_refuses_a_cut_member() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("history.jsonl.gz");
        let a = rec("a", &[("p", 0.5)]);
        let b = rec("b", &[("p", 0.25)]);
        append(&p, &a).unwrap();
        let one = std::fs::read(&p).unwrap();
        append(&p, &b).unwrap();
        let two = std::fs::read(&p).unwrap();
        assert!(
            two.starts_with(&one),
            "the first night's bytes are untouched"
        );
        assert_eq!(&two[..2], &[0x1f, 0x8b]);
        assert_eq!(
            &two[one.len()..one.len() + 2],
            &[0x1f, 0x8b],
            "a second member"
        );
        assert_eq!(read(&p).unwrap(), vec![a.clone(), b]);
        // a killed writer's partial member: refused with the file named, nothing rewritten
        std::fs::write(&p, &two[..two.len() - 5]).unwrap();
        let err = read(&p).unwrap_err().to_string();
        assert!(
            err.contains("history.jsonl.gz") && err.contains("gzip"),
            "{err}"
        );
        assert!(append(&p, &a).is_err());
        assert_eq!(std::fs::read(&p).unwrap(), &two[..two.len() - 5]);
    }

    #[test]
    fn defaults_and_first_matching_rule() {
        let cfg = NightlyConfig {
            rules: vec![NightlyRule {
                pattern: "purity".into(),
                direction: "higher_is_better".into(),
                rel_tol: 0.02,
                abs_tol: 0.0,
            }],
            window: None,
        };
        assert_eq!(rule_for(&cfg, "score/x/purity").rel_tol, 0.02);
        assert_eq!(
            rule_for(&cfg, "score/x/wall_time_s").direction,
            "lower_is_better"
        );
        assert_eq!(rule_for(&cfg, "score/x/n_detections").direction, "exact");
        assert_eq!(tolerance(&rule_for(&cfg, "a/wall_time_s"), 10.0), 5.0);
        assert_eq!(tolerance(&rule_for(&cfg, "a/wall_time_s"), 0.1), 0.5);
    }
}
