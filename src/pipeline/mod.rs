//! The experiment runner: expands a config grid into stages keyed by content hash, shows the
//! plan (`--dry-run`), runs the stages in dependency order with independent stages in
//! parallel, and emits Slurm job arrays for a cluster.
//!
//! A stage's key depends only on its config slice, its seed and the keys of its inputs, so
//! the whole plan (and what is cached) is known before anything runs. The store makes every
//! stage atomic, so a run killed at any point resumes without recomputing finished stages
//! and without a corrupt file.

pub mod plan;
pub mod slurm;

pub use plan::{Node, Plan, PlanRow};

use crate::config::Resolved;
use crate::error::Result;
use std::sync::Arc;

/// Builds the plan of every grid point: for each, the stages listed in `run.stages`.
/// Identical stages of different grid points (the same catalog under three emission
/// models, say) become one node.
pub fn build(points: &[Resolved]) -> Result<Plan> {
    let mut plan = Plan::new();
    for p in points {
        let cfg = Arc::new(p.config.clone());
        let label = if p.label.is_empty() {
            cfg.name.clone()
        } else {
            p.label.clone()
        };
        let wants = |s: &str| cfg.run.stages.iter().any(|x| x == s);
        if wants("catalog") {
            let c = cfg.clone();
            plan.add(Node {
                stage: "catalog".into(),
                label: label.clone(),
                key: crate::catalog::stage_key(&cfg),
                deps: vec![],
                run: Arc::new(move |store, force, pb| crate::catalog::run(store, &c, force, pb)),
            })?;
        }
    }
    Ok(plan)
}

/// Loads one config file, or every `*.toml` of a directory (sorted), with the same `--set`s.
pub fn load_points(path: &std::path::Path, overrides: &[String]) -> Result<Vec<Resolved>> {
    if path.is_dir() {
        let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(path)
            .map_err(|e| crate::Error::bad_file(path, format!("cannot list: {e}")))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(crate::Error::bad_file(
                path,
                "no *.toml config in this directory",
            ));
        }
        let mut out = Vec::new();
        for f in files {
            let stem = f
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            for mut r in crate::config::load(Some(&f), overrides)? {
                r.label = if r.label.is_empty() {
                    stem.clone()
                } else {
                    format!("{stem}:{}", r.label)
                };
                out.push(r);
            }
        }
        Ok(out)
    } else {
        crate::config::load(Some(path), overrides)
    }
}
