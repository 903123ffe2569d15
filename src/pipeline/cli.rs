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
    /// Cluster settings from the flags (over `[run.slurm]`), for `emit`.
    pub slurm: super::config::SlurmConfig,
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
    /// The history file (default `<baseline>/history.jsonl.gz`).
    pub history: Option<PathBuf>,
    /// Rolling-window length (overrides `[nightly] window`).
    pub window: Option<usize>,
    /// Judge against `baseline.json` only, not the history (still appended).
    pub no_window: bool,
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
    if a.emit.is_none() && !a.slurm.is_empty() {
        return Err(Error::Usage(
            "--partition, --account, --time, --mem, --cpus-per-task, --gpus-per-task, --setup \
             and --binary only apply with --emit slurm DIR"
                .into(),
        ));
    }
    if let Some((kind, dir)) = &a.emit {
        if kind != "slurm" {
            return Err(Error::Usage(format!(
                "--emit {kind}: only `slurm` is supported"
            )));
        }
        // absolute: the tasks run in the job directory (submit.sh's), not here
        let mut run_args: Vec<String> = a
            .config
            .iter()
            .map(|c| {
                std::path::absolute(c)
                    .unwrap_or_else(|_| c.clone())
                    .display()
                    .to_string()
            })
            .collect();
        for s in &a.set {
            run_args.push("--set".into());
            run_args.push(s.clone());
        }
        let from_config = points
            .first()
            .map(|p| p.config.run.slurm.clone())
            .unwrap_or_default();
        if points.iter().any(|p| p.config.run.slurm != from_config) {
            log::warn!(
                "the grid's configs differ in [run.slurm]; the first one's is used: {from_config:?}"
            );
        }
        let opts = super::slurm::SlurmOptions::from_config(
            &from_config.overridden_by(&a.slurm),
            run_args,
            std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "gammabench".into()),
        );
        let n = super::slurm::emit(&plan, store, dir, &opts)?;
        log::info!(
            "wrote {n} job arrays to {} (submit with {}/submit.sh)",
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

/// `gammabench nightly`: runs the grid (and the benches), appends the night's metrics to the
/// history, compares every metric with the reference under the grid's `[[nightly.rules]]`,
/// redraws the trend page, and fails (exit 3) on a regression.
///
/// The reference of a metric is the median of its last `window` nights in `history.jsonl.gz`
/// (asv's model: one noisy night does not move it); with an empty history (the first night)
/// or `--no-window` it is `baseline.json`. `--update-baseline` rewrites `baseline.json` from
/// tonight's metrics instead of comparing. The reference is taken before tonight's record is
/// appended, so a night is never compared with itself.
pub fn nightly(store: &Store, a: &NightlyOptions) -> Result<()> {
    use crate::report::{history, nightly, trend};
    let points = super::load_points(Some(&a.config), &a.set)?;
    let baseline_path = a.baseline.join("baseline.json");
    let history_path = a
        .history
        .clone()
        .unwrap_or_else(|| a.baseline.join("history.jsonl.gz"));
    // refuse a malformed history before spending the night on the grid
    let past = history::read(&history_path)?;
    let mut cfg = crate::config::NightlyConfig::default();
    for p in &points {
        for r in &p.config.nightly.rules {
            if !cfg.rules.contains(r) {
                cfg.rules.push(r.clone());
            }
        }
        if cfg.window.is_none() {
            cfg.window = p.config.nightly.window;
        }
    }
    let window = a
        .window
        .or(cfg.window)
        .unwrap_or(history::DEFAULT_WINDOW)
        .max(1);
    let (reference, reference_label) = if a.update_baseline {
        (None, String::new())
    } else if past.is_empty() || a.no_window {
        (
            Some(nightly::read_baseline(&baseline_path)?),
            format!("the baseline {}", baseline_path.display()),
        )
    } else {
        let n = past.len().min(window);
        (
            Some(history::window_reference(&past, window)),
            format!(
                "the median of the last {n} night(s) of {} (window {window})",
                history_path.display()
            ),
        )
    };
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
    let hashes: Vec<String> = plan.nodes().iter().map(|n| n.hash()).collect();
    let record = history::Record {
        commit: crate::store::GIT_COMMIT.into(),
        date_utc: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        crate_version: env!("CARGO_PKG_VERSION").into(),
        data_version: history::data_version(&hashes),
        code_version: history::code_version(),
        metrics: metrics.clone(),
    };
    history::append(&history_path, &record)?;
    let mut all = past;
    all.push(record);
    let trend_dir = history_path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let n_fig = trend::write(&all, &cfg, window, trend_dir)?;
    log::info!(
        "night {} appended to {}; trend of {n_fig} headline metrics -> {}",
        all.len(),
        history_path.display(),
        trend_dir.join("trend.html").display()
    );
    let Some(reference) = reference else {
        nightly::write_baseline(&baseline_path, &metrics)?;
        log::info!(
            "wrote baseline of {} metrics to {}",
            metrics.len(),
            baseline_path.display()
        );
        return Ok(());
    };
    let out = a.out.clone().unwrap_or_else(|| a.baseline.join("latest"));
    let drifts = nightly::compare(&reference, &metrics, &cfg);
    let failures = nightly::write_report(&drifts, &out, &reference_label)?;
    log::info!(
        "{} metrics compared with {reference_label}, {} failing: {}",
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
