//! The runner's verbs: `run`, `report`, `nightly`, `reproduce` on a grid of configs.

use crate::error::{Error, Result};
use crate::store::Store;
use std::path::{Path, PathBuf};

/// What `gammabench run` was asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// A config file or a directory of them; `None`: the embedded default.
    pub config: Option<PathBuf>,
    pub set: Vec<String>,
    pub dry_run: bool,
    pub force: bool,
    pub jobs: usize,
    /// Run only the stage with this hash (a cluster task).
    pub only: Option<String>,
    /// `(kind, dir)`: write job scripts instead of running.
    pub emit: Option<(String, PathBuf)>,
    /// Publish the report here after the run.
    pub report: Option<PathBuf>,
}

/// What `gammabench nightly` was asked to do.
#[derive(Debug, Clone)]
pub struct NightlyOptions {
    pub config: PathBuf,
    pub baseline: PathBuf,
    pub out: Option<PathBuf>,
    pub benches: bool,
    pub update_baseline: bool,
    pub jobs: usize,
    pub set: Vec<String>,
}

/// `gammabench report`: leaderboards, figures and `index.html` of a grid from the store.
pub fn report(
    store: &Store,
    config: Option<&Path>,
    set: &[String],
    out: &Path,
    name: Option<&str>,
    figures_of: &[String],
) -> Result<()> {
    for st in figures_of {
        super::stage(st)?;
    }
    let points = super::load_points(config, set)?;
    let plan = super::build(&points)?;
    let entries = super::collect(&plan, store)?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| crate::report::config_title(&points));
    let m = crate::report::publish_with(&entries, out, &name, figures_of)?;
    log::info!(
        "report of {} stage outputs -> {} ({})",
        entries.len(),
        out.join("index.html").display(),
        m.display()
    );
    Ok(())
}

/// `gammabench reproduce`: re-scores a published report from the store; an error when a
/// number differs.
pub fn reproduce(store: &Store, manifest: &Path, rel_tol: f64) -> Result<()> {
    use crate::report::reproduce;
    let r = reproduce::reproduce(manifest, store, rel_tol)?;
    let dir = manifest.parent().unwrap_or(Path::new("."));
    reproduce::write(&r, dir)?;
    let diffs = r.differences();
    log::info!(
        "{} stages re-scored, {} numbers compared, {} differ, {} problems -> {}",
        r.stages_checked,
        r.compared.len(),
        diffs.len(),
        r.problems.len(),
        dir.join("reproduce.md").display()
    );
    if diffs.is_empty() && r.problems.is_empty() {
        Ok(())
    } else {
        Err(Error::Regression(format!(
            "{} number(s) differ and {} problem(s): see {}",
            diffs.len(),
            r.problems.len(),
            dir.join("reproduce.md").display()
        )))
    }
}

/// `gammabench run`: plan the grid, then print the plan (`dry_run`), write Slurm job arrays
/// (`emit`), run one stage (`only`), or run everything and print the results block (and
/// publish the report when `report` is given).
pub fn run(store: &Store, a: &RunOptions) -> Result<()> {
    let quiet = crate::progress::quiet();
    let points = super::load_points(a.config.as_deref(), &a.set)?;
    let plan = super::build(&points)?;
    if a.dry_run {
        print!("{}", super::plan::format_plan(&plan.describe(store)));
        return Ok(());
    }
    if let Some((kind, dir)) = &a.emit {
        if kind != "slurm" {
            return Err(Error::Usage(format!(
                "--emit {kind}: only `slurm` is supported"
            )));
        }
        let mut run_args: Vec<String> = a.config.iter().map(|c| c.display().to_string()).collect();
        for s in &a.set {
            run_args.push("--set".into());
            run_args.push(s.clone());
        }
        let opts = super::slurm::SlurmOptions {
            run_args,
            binary: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "gammabench".into()),
            cpus_per_task: 8,
            time_limit: "24:00:00".into(),
            mem: "32G".into(),
            extra: vec![],
        };
        let n = super::slurm::emit(&plan, store, dir, &opts)?;
        log::info!(
            "wrote {n} job-array levels to {} (submit with {}/submit.sh)",
            dir.display(),
            dir.display()
        );
        return Ok(());
    }
    if let Some(h) = &a.only {
        let out = plan.execute_one(store, h, a.force)?;
        log::info!(
            "{} {}: {}",
            out.manifest.stage,
            out.manifest.hash,
            if out.reused { "cached" } else { "computed" }
        );
        return Ok(());
    }
    let pb = crate::progress::stages_bar(plan.len() as u64);
    let outs = plan.execute(store, a.jobs, a.force, &pb)?;
    let computed = outs.values().filter(|o| !o.reused).count();
    log::info!(
        "{} stages: {} computed, {} cached",
        outs.len(),
        computed,
        outs.len() - computed
    );
    if !quiet {
        print!("{}", super::results_summary(&plan, &outs));
    }
    if let Some(dir) = &a.report {
        let entries = super::collect(&plan, store)?;
        let m = crate::report::publish(&entries, dir, &crate::report::config_title(&points))?;
        log::info!(
            "report of {} stage outputs -> {} ({})",
            entries.len(),
            dir.join("index.html").display(),
            m.display()
        );
        let board = dir.join("leaderboard_detection.md");
        if !quiet && let Ok(text) = std::fs::read_to_string(&board) {
            println!("\ndetection leaderboard ({}):\n{text}", board.display());
        }
    }
    Ok(())
}

/// `gammabench nightly`: runs the grid (and the benches), compares every metric with the
/// baseline under the grid's `[[nightly.rules]]` (or rewrites the baseline); an error on a
/// regression.
pub fn nightly(store: &Store, a: &NightlyOptions) -> Result<()> {
    use crate::report::nightly;
    let points = super::load_points(Some(&a.config), &a.set)?;
    let baseline_path = a.baseline.join("baseline.json");
    let baseline = if a.update_baseline {
        None
    } else {
        Some(nightly::read_baseline(&baseline_path)?)
    };
    let mut cfg = crate::config::NightlyConfig::default();
    for p in &points {
        for r in &p.config.nightly.rules {
            if !cfg.rules.contains(r) {
                cfg.rules.push(r.clone());
            }
        }
    }
    let plan = super::build(&points)?;
    let pb = crate::progress::stages_bar(plan.len() as u64);
    plan.execute(store, a.jobs, false, &pb)?;
    let entries = super::collect(&plan, store)?;
    let mut metrics = nightly::metrics_of(&entries);
    metrics.extend(nightly::fidelity_metrics(
        &entries,
        &crate::patches::fidelity::default_reference(),
    ));
    if a.benches {
        let status = std::process::Command::new("cargo")
            .args(["bench", "--benches", "--", "--noplot"])
            .status()
            .map_err(|e| Error::Usage(format!("--benches needs cargo and the repository: {e}")))?;
        if !status.success() {
            return Err(Error::Internal(format!("cargo bench failed: {status}")));
        }
        metrics.extend(nightly::criterion_metrics(std::path::Path::new(
            "target/criterion",
        )));
    }
    if a.update_baseline {
        nightly::write_baseline(&baseline_path, &metrics)?;
        log::info!(
            "wrote baseline of {} metrics to {}",
            metrics.len(),
            baseline_path.display()
        );
        return Ok(());
    }
    let out = a.out.clone().unwrap_or_else(|| a.baseline.join("latest"));
    let drifts = nightly::compare(baseline.as_ref().expect("read above"), &metrics, &cfg);
    let failures = nightly::write_report(&drifts, &out)?;
    log::info!(
        "{} metrics compared, {} failing: {}",
        drifts.len(),
        failures.len(),
        out.join("drift.md").display()
    );
    if failures.is_empty() {
        Ok(())
    } else {
        Err(Error::Regression(format!(
            "{} metric(s) drifted beyond tolerance, e.g. {} ({}): see {}",
            failures.len(),
            failures[0].metric,
            failures[0].status,
            out.join("drift.md").display()
        )))
    }
}
