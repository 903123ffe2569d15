//! The nightly benchmark: run the CI grid, collect every numeric headline metric and every
//! stage's wall time, compare with a committed baseline under per-metric tolerances, and
//! write a drift report (Markdown + JSON). A regression makes the command exit with code 3.
//!
//! Metrics are named `<stage>/<grid point>/<summary key>` (and `<stage>/<grid point>/wall_time_s`
//! for speed; `bench/<name>/mean_ns` for criterion benches when they are run). A rule
//! (`[[nightly.rules]]` in the config) gives, for metrics whose name contains its `pattern`,
//! the direction (`higher_is_better`, `lower_is_better` or `exact`) and a relative and an
//! absolute tolerance; the first matching rule wins; the defaults treat wall times as
//! lower-is-better with 50 % relative tolerance (CI machines are noisy) and everything else as
//! `exact` within 1e-9 relative (the grid is deterministic, so any change is drift).

use super::Entry;
use crate::config::NightlyConfig;
use crate::error::{Error, Result};
use crate::formats::atomic_write;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::Path;

/// Numeric metrics by name.
pub type Metrics = BTreeMap<String, f64>;

/// Collects the numeric metrics of stored stage outputs.
pub fn metrics_of(entries: &[Entry]) -> Metrics {
    let mut out = Metrics::new();
    for e in entries {
        let mut flat = BTreeMap::new();
        super::flatten(&e.manifest.summary, "", &mut flat);
        for (k, v) in flat {
            if let Some(x) = v.as_f64() {
                out.insert(format!("{}/{}/{}", e.stage, e.label, k), x);
            }
        }
        out.insert(
            format!("{}/{}/wall_time_s", e.stage, e.label),
            e.manifest.wall_time_s,
        );
    }
    out
}

/// Sky-fidelity metrics: every F0 test `patches` stage cut at the NSIDE-8 centres compared with
/// `reference` (the published F0-B1 truth by default), one metric per check:
/// `fidelity/<grid point>/<check>` (see [`crate::patches::fidelity`]).
pub fn fidelity_metrics(entries: &[Entry], reference: &Path) -> Metrics {
    let mut out = Metrics::new();
    if !reference.exists() {
        log::warn!("no fidelity reference at {}", reference.display());
        return out;
    }
    for e in entries.iter().filter(|e| e.stage == "patches") {
        let centres = &e.manifest.config["patches"]["centres"];
        // the published reference is the F0 population (its B1 sky): only F0 test skies
        if centres.as_str() != Some("nside8") || !e.label.contains("preset=F0") {
            continue;
        }
        match crate::patches::fidelity::compare(
            &e.dir,
            reference,
            crate::patches::fidelity::Tolerances::default(),
        ) {
            Ok(r) => {
                for c in &r.checks {
                    out.insert(format!("fidelity/{}/{}", e.label, c.name), c.value);
                }
            }
            Err(err) => log::warn!("fidelity of {}: {err}", e.label),
        }
    }
    out
}

/// Reads criterion's estimates (`target/criterion/**/new/estimates.json`): mean in ns.
pub fn criterion_metrics(dir: &Path) -> Metrics {
    let mut out = Metrics::new();
    let Ok(files) = crate::store::walk(dir) else {
        return out;
    };
    for f in files {
        let s = f.to_string_lossy().replace('\\', "/");
        if !s.ends_with("/new/estimates.json") {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&f) else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
            continue;
        };
        if let Some(mean) = v["mean"]["point_estimate"].as_f64() {
            let rel = f
                .strip_prefix(dir)
                .unwrap_or(&f)
                .to_string_lossy()
                .replace('\\', "/");
            let name = rel.trim_end_matches("/new/estimates.json");
            out.insert(format!("bench/{name}/mean_ns"), mean);
        }
    }
    out
}

/// One compared metric.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Drift {
    pub metric: String,
    pub baseline: Option<f64>,
    pub current: Option<f64>,
    pub relative_change: Option<f64>,
    pub rule: String,
    /// `ok`, `improved`, `regressed`, `changed` (exact metrics), `new`, `missing`.
    pub status: String,
}

/// Compares `current` against `baseline`.
pub fn compare(baseline: &Metrics, current: &Metrics, cfg: &NightlyConfig) -> Vec<Drift> {
    let mut names: Vec<&String> = baseline.keys().chain(current.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|m| {
            let (b, c) = (baseline.get(m).copied(), current.get(m).copied());
            let rule = super::history::rule_for(cfg, m);
            let (rel, status) = match (b, c) {
                (None, Some(_)) => (None, "new".to_string()),
                (Some(_), None) => (None, "missing".to_string()),
                (None, None) => (None, "missing".to_string()),
                (Some(b), Some(c)) => {
                    let rel = if b != 0.0 {
                        Some((c - b) / b.abs())
                    } else {
                        None
                    };
                    let within = (c - b).abs() <= super::history::tolerance(&rule, b);
                    let status = if within {
                        "ok"
                    } else {
                        match rule.direction.as_str() {
                            "higher_is_better" => {
                                if c > b {
                                    "improved"
                                } else {
                                    "regressed"
                                }
                            }
                            "lower_is_better" => {
                                if c < b {
                                    "improved"
                                } else {
                                    "regressed"
                                }
                            }
                            _ => "changed",
                        }
                    };
                    (rel, status.to_string())
                }
            };
            Drift {
                metric: m.clone(),
                baseline: b,
                current: c,
                relative_change: rel,
                rule: format!(
                    "{} rel {} abs {}",
                    rule.direction, rule.rel_tol, rule.abs_tol
                ),
                status,
            }
        })
        .collect()
}

/// True when a drift fails the nightly: a regression, an exact metric that changed, or a
/// baseline metric that disappeared.
pub fn is_failure(d: &Drift) -> bool {
    matches!(d.status.as_str(), "regressed" | "changed" | "missing")
}

/// Writes `drift.md` and `drift.json` into `out`; returns the failures. `reference` says
/// what the `baseline` column is (the window's median or the baseline file).
pub fn write_report(drifts: &[Drift], out: &Path, reference: &str) -> Result<Vec<Drift>> {
    let failures: Vec<Drift> = drifts.iter().filter(|d| is_failure(d)).cloned().collect();
    let json = serde_json::json!({
        "created_utc": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "git_commit": crate::store::GIT_COMMIT,
        "reference": reference,
        "n_metrics": drifts.len(),
        "n_failures": failures.len(),
        "drifts": drifts,
    });
    atomic_write(
        &out.join("drift.json"),
        &serde_json::to_vec_pretty(&json).map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    let f = |x: Option<f64>| {
        x.map(|v| super::table::format_sig(v, 6))
            .unwrap_or_else(|| "-".into())
    };
    let mut md = format!(
        "# Nightly drift report\n\n{} metrics compared with {}, {} failing (commit {}).\n\n",
        drifts.len(),
        reference,
        failures.len(),
        crate::store::GIT_COMMIT
    );
    let interesting: Vec<&Drift> = drifts.iter().filter(|d| d.status != "ok").collect();
    if interesting.is_empty() {
        md.push_str("Every metric is within its tolerance.\n");
    } else {
        md.push_str(
            "| status | metric | baseline | current | change | rule |\n|---|---|---|---|---|---|\n",
        );
        for d in interesting {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                d.status,
                d.metric.replace('|', "\\|"),
                f(d.baseline),
                f(d.current),
                d.relative_change
                    .map(|r| format!("{:+.1} %", 100.0 * r))
                    .unwrap_or_else(|| "-".into()),
                d.rule
            ));
        }
    }
    atomic_write(&out.join("drift.md"), md.as_bytes())?;
    Ok(failures)
}

/// Reads a baseline (`baseline.json`: a metrics map).
pub fn read_baseline(path: &Path) -> Result<Metrics> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::bad_file(path, format!("cannot read baseline: {e}")))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        Error::bad_file(
            path,
            format!("line {}, column {}: {e}", e.line(), e.column()),
        )
    })?;
    let m = v.get("metrics").cloned().unwrap_or(v);
    serde_json::from_value(m)
        .map_err(|e| Error::bad_file(path, format!("`metrics` must map names to numbers: {e}")))
}

/// Writes a baseline.
pub fn write_baseline(path: &Path, metrics: &Metrics) -> Result<()> {
    let v = serde_json::json!({
        "created_utc": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "git_commit": crate::store::GIT_COMMIT,
        "metrics": metrics,
    });
    atomic_write(
        path,
        &serde_json::to_vec_pretty(&v).map_err(|e| Error::Internal(e.to_string()))?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NightlyRule;

    fn cfg() -> NightlyConfig {
        NightlyConfig {
            rules: vec![NightlyRule {
                pattern: "purity".into(),
                direction: "higher_is_better".into(),
                rel_tol: 0.02,
                abs_tol: 0.0,
            }],
            window: None,
        }
    }

    #[test]
    fn flags_regressions_and_passes_unchanged() {
        let base: Metrics = [
            ("score/F0/purity".to_string(), 0.9),
            ("catalog/F0/n_agn".to_string(), 4809.0),
            ("catalog/F0/wall_time_s".to_string(), 1.0),
        ]
        .into();
        let same = compare(&base, &base, &cfg());
        assert!(same.iter().all(|d| d.status == "ok"));
        let mut worse = base.clone();
        worse.insert("score/F0/purity".into(), 0.85);
        worse.insert("catalog/F0/wall_time_s".into(), 1.3);
        let d = compare(&base, &worse, &cfg());
        let by = |m: &str| d.iter().find(|x| x.metric == m).unwrap().status.clone();
        assert_eq!(by("score/F0/purity"), "regressed");
        assert_eq!(
            by("catalog/F0/wall_time_s"),
            "ok",
            "within the 50 % speed tolerance"
        );
        worse.insert("catalog/F0/wall_time_s".into(), 3.0);
        worse.insert("catalog/F0/n_agn".into(), 4810.0);
        let d = compare(&base, &worse, &cfg());
        let by = |m: &str| d.iter().find(|x| x.metric == m).unwrap().status.clone();
        assert_eq!(by("catalog/F0/wall_time_s"), "regressed");
        assert_eq!(by("catalog/F0/n_agn"), "changed");
        let mut better = base.clone();
        better.insert("score/F0/purity".into(), 0.95);
        let d = compare(&base, &better, &cfg());
        assert!(d.iter().all(|x| !is_failure(x)));
    }
}
