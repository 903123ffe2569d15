//! The experiment runner: expands a config grid into stages keyed by content hash, shows the
//! plan (`--dry-run`), runs the stages in dependency order with independent stages in
//! parallel, and emits Slurm job arrays for a cluster.
//!
//! A stage's key depends only on its config slice, its seed and the keys of its inputs, so
//! the whole plan (and what is cached) is known before anything runs. The store makes every
//! stage atomic, so a run killed at any point resumes without recomputing finished stages
//! and without a corrupt file.

pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::RunConfig as Config;
pub mod plan;
pub mod slurm;

pub use plan::{Node, Plan, PlanRow};

use crate::config::{ExperimentConfig, Resolved};
use crate::error::Result;
use std::sync::Arc;

/// Builds the plan of every grid point: for each, the stages listed in `run.stages` and the
/// stages they need (`score` needs `detect`, which needs `train` and the test `patches`;
/// `train` needs the training sky's own `catalog`, `diffuse`, `sky` and `patches`).
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
        add_point(&mut plan, &cfg, &label)?;
    }
    Ok(plan)
}

/// Which stages a grid point needs, upstream ones included.
fn needed(cfg: &ExperimentConfig) -> Vec<&'static str> {
    let wants = |s: &str| cfg.run.stages.iter().any(|x| x == s);
    let image_from_pipeline = cfg.classify.track == crate::config::Track::Image
        && cfg.classify.image.patches_dir.is_none()
        && wants("score");
    let score = wants("score") || (wants("classify") && image_from_pipeline);
    let detect = score || wants("detect");
    let train = detect || wants("train");
    let patches = detect || wants("patches");
    let sky = patches || wants("sky");
    let catalog = sky || wants("catalog");
    let mut out = Vec::new();
    for (on, name) in [
        (catalog, "catalog"),
        (sky, "sky"),
        (patches, "patches"),
        (train, "train"),
        (detect, "detect"),
        (score, "score"),
        (wants("classify"), "classify"),
    ] {
        if on {
            out.push(name);
        }
    }
    out
}

/// Adds the catalog, diffuse, sky and patches nodes of `cfg` (as far as `upto`); returns the
/// hash of the last one added.
fn add_sky_chain(
    plan: &mut Plan,
    cfg: &Arc<ExperimentConfig>,
    label: &str,
    upto: &str,
) -> Result<String> {
    let c = cfg.clone();
    let cat = plan.add(Node {
        stage: "catalog".into(),
        label: label.to_string(),
        key: crate::catalog::stage_key(cfg),
        deps: vec![],
        run: Arc::new(move |store, force, pb| crate::catalog::run(store, &c, force, pb)),
    })?;
    if upto == "catalog" {
        return Ok(cat);
    }
    let (_, skey) = crate::sky::stage_keys(cfg)?;
    let diffuse = add_diffuse(plan, cfg)?;
    let c = cfg.clone();
    let sky = plan.add(Node {
        stage: "sky".into(),
        label: label.to_string(),
        key: skey,
        deps: vec![cat.clone(), diffuse],
        run: Arc::new(move |store, force, pb| {
            crate::sky::run(store, &c, force, pb).map(|(_, s)| s)
        }),
    })?;
    if upto == "sky" {
        return Ok(sky);
    }
    let c = cfg.clone();
    plan.add(Node {
        stage: "patches".into(),
        label: label.to_string(),
        key: crate::patches::stage_key(cfg)?,
        deps: vec![cat, sky],
        run: Arc::new(move |store, force, pb| crate::patches::run(store, &c, force, pb)),
    })
}

/// Adds the `diffuse` node of `cfg`'s emission model; returns its hash.
fn add_diffuse(plan: &mut Plan, cfg: &Arc<ExperimentConfig>) -> Result<String> {
    let (dkey, _) = crate::sky::stage_keys(cfg)?;
    let c = cfg.clone();
    plan.add(Node {
        stage: "diffuse".into(),
        label: cfg.sky.iem.clone(),
        key: dkey,
        deps: vec![],
        run: Arc::new(move |store, force, _| {
            let model = crate::sky::iem::IemModel::load(&c.sky.iem)?;
            crate::sky::run_diffuse(store, &c, &model, force)
        }),
    })
}

fn add_point(plan: &mut Plan, cfg: &Arc<ExperimentConfig>, label: &str) -> Result<()> {
    let stages = needed(cfg);
    let has = |s: &str| stages.contains(&s);
    let upto = ["patches", "sky", "catalog"].into_iter().find(|s| has(s));
    let test_patches = match upto {
        Some(u) => Some(add_sky_chain(plan, cfg, label, u)?),
        None => None,
    };
    let mut score = None;
    if has("train") {
        let mut deps = vec![];
        let variant = cfg.detect.variant;
        if variant != crate::config::DetectorVariant::Ts && cfg.train.patches.is_empty() {
            let data = Arc::new(cfg.training_data_config());
            let d = &cfg.train.data;
            let tlabel = format!("train-sky {:?}-{} n={}", d.preset, d.iem, d.n_patches);
            deps.push(add_sky_chain(plan, &data, &tlabel, "patches")?);
        }
        let c = cfg.clone();
        let train = plan.add(Node {
            stage: "train".into(),
            label: if deps.is_empty() {
                crate::detect::stage::network(cfg).to_string()
            } else {
                let d = &cfg.train.data;
                format!(
                    "{} on {:?}-{}",
                    crate::detect::stage::network(cfg),
                    d.preset,
                    d.iem
                )
            },
            key: crate::detect::stage::train_key(cfg)?,
            deps,
            run: Arc::new(move |store, force, pb| {
                crate::detect::stage::run_train(store, &c, force, pb)
            }),
        })?;
        if has("detect") {
            let mut deps = vec![train, test_patches.clone().expect("detect plans patches")];
            if let Some(bcfg) = crate::detect::stage::ts_background_config(cfg) {
                // The TS baseline's background model: another emission model's diffuse map.
                deps.push(add_diffuse(plan, &Arc::new(bcfg))?);
            }
            let c = cfg.clone();
            let detect = plan.add(Node {
                stage: "detect".into(),
                label: label.to_string(),
                key: crate::detect::stage::detect_key(cfg)?,
                deps,
                run: Arc::new(move |store, force, pb| {
                    crate::detect::stage::run_detect(store, &c, force, pb)
                }),
            })?;
            if has("score") {
                let c = cfg.clone();
                score = Some(plan.add(Node {
                    stage: "score".into(),
                    label: label.to_string(),
                    key: crate::score::stage::stage_key(cfg)?,
                    deps: vec![detect, test_patches.clone().expect("score plans patches")],
                    run: Arc::new(move |store, force, pb| {
                        crate::score::stage::run(store, &c, force, pb)
                    }),
                })?);
            }
        }
    }
    if has("classify") {
        let key = crate::classify::stage::stage_key(cfg)?;
        let deps = if key.inputs.contains_key("score") {
            vec![
                score.expect("image track plans score"),
                test_patches.expect("and patches"),
            ]
        } else {
            vec![]
        };
        let c = cfg.clone();
        plan.add(Node {
            stage: "classify".into(),
            label: label.to_string(),
            key,
            deps,
            run: Arc::new(move |store, force, pb| {
                crate::classify::stage::run(store, &c, force, pb)
            }),
        })?;
    }
    Ok(())
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
