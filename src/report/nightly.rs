//! The nightly benchmark: run the CI grid, collect every numeric headline metric and every
//! stage's wall time, compare with a committed baseline under per-metric tolerances, and
//! write a drift report (Markdown + JSON). A regression makes the command exit with code 3.
//!
//! Metrics are named `<stage>/<grid point>/<summary key>` (and `<stage>/<grid point>/wall_time_s`
//! for speed; `bench/<name>/mean_ns` for criterion benches when they are run). The grid point
//! of a stage that several grid points share is [`metric_labels`]'s: the coordinates they all
//! agree on, so the name does not change when the grid gains a point. A rule
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

/// The grid point a shared stage's metrics are named by.
///
/// The plan merges the labels of every grid point that uses a stage (`detect:preset=F0,
/// iem=B1,variant=unek | detect:preset=F0,iem=B1,variant=log | pretrained:...`), so that list
/// grows whenever the grid gains a variant, a fold or a config file, and a metric named by it
/// would vanish from the history and reappear under a new name. This keeps the coordinates on
/// which the users agree, so a new point along an axis they already differ on (another
/// variant, another fold) leaves the name as it was: each `key=value` whose key takes one value among the labels that
/// have it, and the config file (`detect:`) when all labels come from one. A sky read by
/// every detector of F0-B1 is `preset=F0,iem=B1`; fold 3's segmentation network, shared by
/// UNEK, LoG and their ensembles, is `detect:preset=F0,iem=B1,fold=3`; the detections every
/// point of `classify_image.toml` reads are `classify_image`. A single label, a label not of
/// the `file:key=value,...` form, or one where nothing is agreed is kept whole.
pub fn metric_label(label: &str) -> String {
    let parts: Vec<&str> = label.split(" | ").collect();
    if parts.len() < 2 {
        return label.to_string();
    }
    // key -> values, keys in first-seen order ("" is the config file)
    let mut keys: Vec<&str> = Vec::new();
    let mut values: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for p in &parts {
        let Some((file, coords)) = p.split_once(':') else {
            return label.to_string();
        };
        let pairs = coords.split(',').map(|kv| kv.split_once('='));
        for kv in std::iter::once(Some(("", file))).chain(pairs) {
            let Some((k, v)) = kv else {
                return label.to_string();
            };
            let vs = values.entry(k).or_default();
            if vs.is_empty() {
                keys.push(k);
            }
            if !vs.contains(&v) {
                vs.push(v);
            }
        }
    }
    let agreed = |k: &&str| values[*k].len() == 1;
    let coords: Vec<String> = keys
        .iter()
        .filter(|k| !k.is_empty() && agreed(k))
        .map(|k| format!("{k}={}", values[*k][0]))
        .collect();
    match (agreed(&""), coords.is_empty()) {
        (true, false) => format!("{}:{}", values[""][0], coords.join(",")),
        (true, true) => values[""][0].to_string(),
        (false, false) => coords.join(","),
        (false, true) => label.to_string(),
    }
}

/// [`metric_label`] of every `(stage, label)`, except that two stages of one kind whose agreed
/// labels coincide keep their whole labels (a name never stands for two stages).
pub fn metric_labels(points: &[(&str, &str)]) -> Vec<String> {
    let short: Vec<String> = points.iter().map(|(_, l)| metric_label(l)).collect();
    let mut owners: BTreeMap<(&str, &str), std::collections::BTreeSet<&str>> = BTreeMap::new();
    for ((stage, label), s) in points.iter().zip(&short) {
        owners.entry((stage, s.as_str())).or_default().insert(label);
    }
    points
        .iter()
        .zip(&short)
        .map(
            |((stage, label), s)| match owners[&(*stage, s.as_str())].len() {
                1 => s.clone(),
                _ => label.to_string(),
            },
        )
        .collect()
}

fn entry_labels(entries: &[Entry]) -> Vec<String> {
    let points: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.stage.as_str(), e.label.as_str()))
        .collect();
    metric_labels(&points)
}

/// Collects the numeric metrics of stored stage outputs.
pub fn metrics_of(entries: &[Entry]) -> Metrics {
    let mut out = Metrics::new();
    for (e, label) in entries.iter().zip(entry_labels(entries)) {
        let mut flat = BTreeMap::new();
        super::flatten(&e.manifest.summary, "", &mut flat);
        for (k, v) in flat {
            if let Some(x) = v.as_f64() {
                out.insert(format!("{}/{label}/{k}", e.stage), x);
            }
        }
        out.insert(
            format!("{}/{label}/wall_time_s", e.stage),
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
    let labels = entry_labels(entries);
    for (e, label) in entries
        .iter()
        .zip(&labels)
        .filter(|(e, _)| e.stage == "patches")
    {
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
                    out.insert(format!("fidelity/{label}/{}", c.name), c.value);
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
    fn shared_stages_are_named_by_the_coordinates_their_users_agree_on() {
        // one user: the label as it is
        let one = "detect:preset=F0,iem=B1,variant=unek,ensemble=false,fold=3";
        assert_eq!(metric_label(one), one);
        assert_eq!(
            metric_label("train-sky F0-B1 n=400"),
            "train-sky F0-B1 n=400"
        );
        // a sky read by every detector of two config files
        let sky = "detect:preset=F0,iem=B1,variant=unek,ensemble=false,fold=0 | \
                   detect:preset=F0,iem=B1,variant=unek,ensemble=false,fold=1 | \
                   detect:preset=F0,iem=B1,variant=log,ensemble=true | \
                   pretrained:preset=F0,iem=B1,variant=unek | pretrained_cnet:preset=F0,iem=B1";
        assert_eq!(metric_label(sky), "preset=F0,iem=B1");
        // ... and the same sky once the grid gains a variant and a fold: the same name
        let grown = format!("{sky} | detect:preset=F0,iem=B1,variant=cnet,ensemble=false,fold=9");
        assert_eq!(metric_label(&grown), "preset=F0,iem=B1");
        // fold 3's network, shared by two heads and their ensembles, in one config file
        let net = "detect:preset=F0,iem=B1,variant=unek,ensemble=false,fold=3 | \
                   detect:preset=F0,iem=B1,variant=log,ensemble=false,fold=3 | \
                   detect:preset=F0,iem=B1,variant=unek,ensemble=true";
        assert_eq!(metric_label(net), "detect:preset=F0,iem=B1,fold=3");
        // nothing agreed, or a part not of the file:key=value form: kept whole
        // only the config file agreed: named by it
        assert_eq!(metric_label("a:x=1,y=1 | a:x=2,y=1 | a:x=1,y=2"), "a");
        let none = "a:x=1 | b:x=2";
        assert_eq!(metric_label(none), none);
        let odd = "train-sky F0-B1 n=400 | detect:preset=F0";
        assert_eq!(metric_label(odd), odd);
    }

    #[test]
    fn two_stages_never_share_a_name() {
        let es = [
            ("sky", "d:preset=F0,iem=B1,v=a | d:preset=F0,iem=B1,v=b"),
            ("sky", "d:preset=F0,iem=B2,v=a | d:preset=F0,iem=B2,v=b"),
            // agree on the same coordinates as the first but are another stage
            ("train", "d:preset=F0,iem=B1,v=a | d:preset=F0,iem=B1,v=b"),
            ("train", "d:preset=F0,iem=B1,v=c | d:preset=F0,iem=B1,v=d"),
        ];
        let l = metric_labels(&es);
        assert_eq!(l[0], "d:preset=F0,iem=B1");
        assert_eq!(l[1], "d:preset=F0,iem=B2");
        assert_eq!(l[2], es[2].1);
        assert_eq!(l[3], es[3].1);
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
