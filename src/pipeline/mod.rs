//! The experiment runner: expands a config grid into stages keyed by content hash, shows the
//! plan (`--dry-run`), runs the stages in dependency order with independent stages in
//! parallel, and emits Slurm job arrays for a cluster.
//!
//! A stage's key depends only on its config slice, its seed and the keys of its inputs, so
//! the whole plan (and what is cached) is known before anything runs. The store makes every
//! stage atomic, so a run killed at any point resumes without recomputing finished stages
//! and without a corrupt file.

pub mod cli;
pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::RunConfig as Config;
pub mod plan;
pub mod slurm;

pub use plan::{Node, Plan, PlanRow};

use crate::config::{ExperimentConfig, Resolved};
use crate::error::Result;
use crate::stage::Stage;
use std::sync::Arc;

/// Every stage the runner knows, in data-flow order: the one place a new stage is
/// registered. The CLI's stage verbs, the planner, `run.stages` and the report all read it.
pub static STAGES: &[&dyn Stage] = &[
    &crate::catalog::CatalogStage,
    &crate::sky::DiffuseStage,
    &crate::sky::SkyStage,
    &crate::patches::PatchesStage,
    &crate::detect::stage::TrainStage,
    &crate::detect::stage::InferStage,
    &crate::score::threshold::ThresholdStage,
    &crate::detect::stage::DetectStage,
    &crate::score::stage::ScoreStage,
    &crate::classify::stage::ClassifyStage,
];

/// The registered stage called `name`.
pub fn stage(name: &str) -> Result<&'static dyn Stage> {
    STAGES
        .iter()
        .copied()
        .find(|s| s.name() == name)
        .ok_or_else(|| {
            crate::Error::Usage(format!(
                "unknown stage `{name}` (known: {})",
                STAGES
                    .iter()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        })
}

/// Builds the plan of every grid point: for each, the stages listed in `run.stages` and,
/// through [`Stage::inputs`], every stage they read (`score` reads `detect` and the test
/// `patches`; `detect` reads `train`; `train` reads the training sky's own `patches`, ...).
/// Identical stages of different grid points (the same catalog under three emission
/// models, the one training sky of a whole grid) become one node.
pub fn build(points: &[Resolved]) -> Result<Plan> {
    let mut plan = Plan::new();
    for p in points {
        let cfg = Arc::new(p.config.clone());
        let label = if p.label.is_empty() {
            cfg.name.clone()
        } else {
            p.label.clone()
        };
        let names: Vec<&str> = cfg.run.stages.iter().map(|s| s.as_str()).collect();
        add_point(&mut plan, &cfg, &label, &names)?;
    }
    Ok(plan)
}

/// The plan of `stages` (and what they read) for one config, e.g. the `sky` verb's.
pub fn build_stages(cfg: &ExperimentConfig, label: &str, stages: &[&str]) -> Result<Plan> {
    let mut plan = Plan::new();
    add_point(&mut plan, &Arc::new(cfg.clone()), label, stages)?;
    Ok(plan)
}

/// Adds the wanted stages of one grid point: first every stage of the grid point's own
/// config they need, in data-flow order (the test sky's catalog, diffuse, sky, patches...),
/// each with what it reads under another config (the training sky, the TS background) just
/// before it.
fn add_point(
    plan: &mut Plan,
    cfg: &Arc<ExperimentConfig>,
    label: &str,
    wanted: &[&str],
) -> Result<()> {
    let mut needed = std::collections::BTreeSet::new();
    for w in wanted {
        collect_needed(stage(w)?, cfg, label, &mut needed)?;
    }
    for (i, st) in STAGES.iter().enumerate() {
        if needed.contains(&i) {
            add_node(plan, *st, cfg, label)?;
        }
    }
    Ok(())
}

/// Indices in [`STAGES`] of `st` and of every stage it reads under the same config.
fn collect_needed(
    st: &dyn Stage,
    cfg: &Arc<ExperimentConfig>,
    label: &str,
    needed: &mut std::collections::BTreeSet<usize>,
) -> Result<()> {
    let i = STAGES
        .iter()
        .position(|s| s.name() == st.name())
        .expect("registered");
    if !needed.insert(i) {
        return Ok(());
    }
    for input in st.inputs(cfg, label)? {
        if Arc::ptr_eq(&input.config, cfg) {
            collect_needed(stage(input.stage)?, cfg, label, needed)?;
        }
    }
    Ok(())
}

/// Adds `st` under `cfg` after its inputs (recursively); returns its hash.
fn add_node(
    plan: &mut Plan,
    st: &'static dyn Stage,
    cfg: &Arc<ExperimentConfig>,
    label: &str,
) -> Result<String> {
    let mut deps = Vec::new();
    for input in st.inputs(cfg, label)? {
        deps.push(add_node(
            plan,
            stage(input.stage)?,
            &input.config,
            &input.label,
        )?);
    }
    let c = cfg.clone();
    plan.add(Node {
        stage: st.name().into(),
        label: st.label(cfg, label),
        key: st.key(cfg)?,
        deps,
        run: Arc::new(move |store, force, pb| st.run(store, &c, force, pb)),
    })
}

/// Runs one registered stage verb (`gammabench catalog`, `sky`, `patches`, `stage NAME`) on
/// every grid point: the stage and what it reads (stored inputs reused; `force` recomputes
/// only this stage), one line per point on what it holds, and a copy of its output in
/// `out` (one subdirectory per grid point) when given.
pub fn run_stage_verb(
    store: &crate::store::Store,
    name: &str,
    points: &[Resolved],
    force: bool,
    out: Option<&std::path::Path>,
) -> Result<Vec<crate::store::StageOutput>> {
    let st = stage(name)?;
    // Grid points that differ only in keys this stage does not read (the default's four
    // detectors, for `catalog`) are one stage: run and export it once.
    let mut seen = std::collections::HashSet::new();
    let mut unique: Vec<Resolved> = Vec::new();
    for p in points {
        if seen.insert(st.key(&p.config)?.hash()) {
            unique.push(p.clone());
        }
    }
    if unique.len() == 1 {
        unique[0].label.clear();
    }
    let points = &unique[..];
    let mut outs = Vec::with_capacity(points.len());
    for p in points {
        let pb = crate::progress::bar(name);
        let o = st.run(store, &p.config, force, &pb)?;
        pb.finish_and_clear();
        let what = format!(
            "{name} {}{}: {}",
            o.manifest.hash,
            if p.label.is_empty() {
                String::new()
            } else {
                format!(" [{}]", p.label)
            },
            st.describe(&o)
        );
        if o.reused {
            log::info!(
                "{what}: reusing stored output {} (use --force to recompute)",
                o.dir.display()
            );
        } else {
            log::info!(
                "{what}: computed in {:.2} s -> {}",
                o.manifest.wall_time_s,
                o.dir.display()
            );
        }
        if let Some(dir) = out {
            let dest = point_dir(dir, points, p);
            crate::store::export(&o, &dest)?;
            log::info!("wrote {}", dest.display());
        }
        outs.push(o);
    }
    Ok(outs)
}

pub use crate::config::point_dir;

/// The stored output of every stage of `plan`, for the report (see [`crate::report::collect`]).
pub fn collect(plan: &Plan, store: &crate::store::Store) -> Result<Vec<crate::report::Entry>> {
    crate::report::collect(
        plan.nodes()
            .iter()
            .map(|n| (n.stage.as_str(), n.label.as_str(), &n.key)),
        store,
    )
}

/// The results block printed at the end of `gammabench run`: one line per computed or
/// reused stage of the kinds a user looks at first (scores, classifiers), by grid point.
pub fn results_summary(
    plan: &Plan,
    outputs: &std::collections::BTreeMap<String, crate::store::StageOutput>,
) -> String {
    let mut lines = Vec::new();
    for n in plan.nodes() {
        if !["score", "classify"].contains(&n.stage.as_str()) {
            continue;
        }
        let (Ok(st), Some(o)) = (stage(&n.stage), outputs.get(&n.hash())) else {
            continue;
        };
        lines.push(format!(
            "  {:<8} {:<48} {}",
            n.stage,
            n.label,
            st.describe(o)
        ));
    }
    if lines.is_empty() {
        return String::new();
    }
    format!("results:\n{}\n", lines.join("\n"))
}

/// Loads one config file, every `*.toml` of a directory (sorted), or the embedded default
/// (`None`), with the same `--set`s.
pub fn load_points(path: Option<&std::path::Path>, overrides: &[String]) -> Result<Vec<Resolved>> {
    let Some(path) = path else {
        return crate::config::load(None, overrides);
    };
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

#[cfg(test)]
mod tests {
    #[test]
    fn run_stages_names_are_the_registered_stages() {
        let registered: Vec<&str> = super::STAGES.iter().map(|s| s.name()).collect();
        assert_eq!(registered, super::config::STAGE_NAMES);
    }
}
