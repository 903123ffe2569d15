//! `gammabench reproduce results/<name>/manifest.json`: re-scores every published `score`
//! and `classify` stage from the predictions kept in the store (never re-running a detector
//! or classifier) and compares each headline number with the published one.
//!
//! For a `score` stage: the stored `detections.csv` and its test patches' `truth.csv` and
//! `patches.csv` are scored again with the stage's own `[score]` section and seed; for a
//! `classify` stage: `oof_predictions.csv` goes through the classification scorer again.
//! Before that, the SHA-256 of every input file is checked against its stage manifest, so a
//! changed file is reported as such rather than as a metric drift. Differences beyond
//! `rel_tol` (relative) are listed; the command exits with code 3 when there is any.

use crate::error::{Error, Result};
use crate::store::{Manifest, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One compared number.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub stage: String,
    pub hash: String,
    pub label: String,
    pub metric: String,
    pub published: Option<f64>,
    pub reproduced: Option<f64>,
    pub ok: bool,
}

/// What a reproduction found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Reproduction {
    pub compared: Vec<Comparison>,
    /// Problems that prevented a comparison (missing stage, changed file).
    pub problems: Vec<String>,
    pub stages_checked: usize,
}

impl Reproduction {
    /// Comparisons outside tolerance.
    pub fn differences(&self) -> Vec<&Comparison> {
        self.compared.iter().filter(|c| !c.ok).collect()
    }
}

fn read_manifest(dir: &Path) -> Result<Manifest> {
    let p = dir.join("manifest.json");
    let text = std::fs::read_to_string(&p)
        .map_err(|e| Error::bad_file(&p, format!("cannot read: {e}")))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(&p, e.to_string()))
}

/// Checks the SHA-256 of `files` of a stored stage against its manifest.
fn verify(dir: &Path, m: &Manifest, files: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    for f in files {
        match (m.files.get(*f), crate::formats::sha256_file(&dir.join(f))) {
            (Some(want), Ok(got)) if *want == got => {}
            (Some(_), Ok(_)) => out.push(format!(
                "{}: changed since the stage wrote it",
                dir.join(f).display()
            )),
            (None, _) => out.push(format!(
                "{}: not in the stage manifest",
                dir.join(f).display()
            )),
            (_, Err(e)) => out.push(format!("{}: {e}", dir.join(f).display())),
        }
    }
    out
}

fn compare(
    out: &mut Reproduction,
    stage: &str,
    hash: &str,
    label: &str,
    published: &serde_json::Value,
    reproduced: &serde_json::Value,
    rel_tol: f64,
) {
    let (mut a, mut b) = (BTreeMap::new(), BTreeMap::new());
    super::flatten(reproduced, "", &mut b);
    super::flatten(published, "", &mut a);
    for (k, rv) in &b {
        let Some(pv) = a.get(k) else { continue };
        let (p, r) = (pv.as_f64(), rv.as_f64());
        let ok = match (p, r) {
            (Some(p), Some(r)) => (p - r).abs() <= rel_tol * p.abs().max(r.abs()) + 1e-300,
            _ => pv == rv,
        };
        if p.is_some() || r.is_some() || !ok {
            out.compared.push(Comparison {
                stage: stage.into(),
                hash: hash.into(),
                label: label.into(),
                metric: k.clone(),
                published: p,
                reproduced: r,
                ok,
            });
        }
    }
}

/// Re-scores the stages of a published report (its `manifest.json`) from `store`.
pub fn reproduce(manifest: &Path, store: &Store, rel_tol: f64) -> Result<Reproduction> {
    let text = std::fs::read_to_string(manifest)
        .map_err(|e| Error::bad_file(manifest, format!("cannot read: {e}")))?;
    let published: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| Error::bad_file(manifest, e.to_string()))?;
    let stages = published["stages"].as_array().ok_or_else(|| {
        Error::bad_file(
            manifest,
            "no `stages` list: not a gammabench report manifest",
        )
    })?;
    let mut out = Reproduction::default();
    let tmp = tempdir(store)?;
    for (i, st) in stages.iter().enumerate() {
        let stage = st["stage"].as_str().unwrap_or("");
        let hash = st["hash"].as_str().unwrap_or("");
        let label = st["label"].as_str().unwrap_or("");
        if stage != "score" && stage != "classify" {
            continue;
        }
        let dir = store.stage_dir(stage, hash);
        let m = match read_manifest(&dir) {
            Ok(m) => m,
            Err(e) => {
                out.problems.push(format!("{stage} {hash}: {e}"));
                continue;
            }
        };
        out.stages_checked += 1;
        let work = tmp.join(format!("{i}"));
        if stage == "score" {
            let det_dir = store.stage_dir(
                "detect",
                m.inputs.get("detections").map(String::as_str).unwrap_or(""),
            );
            let pat_dir = store.stage_dir(
                "patches",
                m.inputs.get("patches").map(String::as_str).unwrap_or(""),
            );
            let mut problems = Vec::new();
            for (d, files) in [
                (&det_dir, &["detections.csv"][..]),
                (&pat_dir, &["truth.csv", "patches.csv"][..]),
            ] {
                match read_manifest(d) {
                    Ok(dm) => problems.extend(verify(d, &dm, files)),
                    Err(e) => problems.push(e.to_string()),
                }
            }
            if !problems.is_empty() {
                out.problems
                    .extend(problems.into_iter().map(|p| format!("{stage} {hash}: {p}")));
                continue;
            }
            let cfg: crate::config::ScoreConfig = serde_json::from_value(m.config["score"].clone())
                .map_err(|e| {
                    Error::bad_file(dir.join("manifest.json"), format!("config.score: {e}"))
                })?;
            let r = crate::score::score_detections(
                &pat_dir.join("truth.csv"),
                &det_dir.join("detections.csv"),
                Some(&pat_dir.join("patches.csv")),
                &work,
                &cfg,
                m.seed,
                false,
            )?;
            let again = crate::score::stage::report_summary(&r);
            compare(
                &mut out,
                stage,
                hash,
                label,
                &st["summary"],
                &again,
                rel_tol,
            );
        } else {
            let problems = verify(&dir, &m, &["oof_predictions.csv"]);
            if !problems.is_empty() {
                out.problems
                    .extend(problems.into_iter().map(|p| format!("{stage} {hash}: {p}")));
                continue;
            }
            let cfg: crate::config::ScoreConfig =
                serde_json::from_value(published_score_config(&dir).unwrap_or_else(|| {
                    serde_json::to_value(crate::config::ScoreConfig::default()).unwrap_or_default()
                }))
                .map_err(|e| Error::bad_file(dir.join("config.toml"), e.to_string()))?;
            let r = crate::score::score_classification(
                &dir.join("oof_predictions.csv"),
                &work,
                &cfg,
                false,
            )?;
            let again = serde_json::json!({ "pooled_out_of_fold": r.pooled_summary() });
            compare(
                &mut out,
                stage,
                hash,
                label,
                &st["summary"],
                &again,
                rel_tol,
            );
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(out)
}

/// The `[score]` section a classify stage was scored with (from its saved config).
fn published_score_config(dir: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(dir.join("config.toml")).ok()?;
    let cfg: crate::config::ExperimentConfig = toml::from_str(&text).ok()?;
    serde_json::to_value(cfg.score).ok()
}

fn tempdir(store: &Store) -> Result<PathBuf> {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let p = store
        .root()
        .join(format!(".reproduce-{}-{nonce}", std::process::id()));
    std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
    Ok(p)
}

/// Writes `reproduce.json` and `reproduce.md` next to the published manifest.
pub fn write(r: &Reproduction, dir: &Path) -> Result<()> {
    let json = serde_json::to_vec_pretty(r).map_err(|e| Error::Internal(e.to_string()))?;
    crate::formats::atomic_write(&dir.join("reproduce.json"), &json)?;
    let mut md = format!(
        "# Reproduction\n\n{} stages re-scored, {} numbers compared, {} differ, {} problems.\n\n",
        r.stages_checked,
        r.compared.len(),
        r.differences().len(),
        r.problems.len()
    );
    for p in &r.problems {
        md.push_str(&format!("- problem: {p}\n"));
    }
    if !r.differences().is_empty() {
        md.push_str("\n| stage | hash | grid point | metric | published | reproduced |\n|---|---|---|---|---|---|\n");
        for c in r.differences() {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {:?} | {:?} |\n",
                c.stage,
                &c.hash[..12.min(c.hash.len())],
                c.label,
                c.metric,
                c.published,
                c.reproduced
            ));
        }
    }
    crate::formats::atomic_write(&dir.join("reproduce.md"), md.as_bytes())
}
