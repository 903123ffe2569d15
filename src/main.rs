//! The `gammabench` command line: a thin layer over the library.

use clap::{Args, Parser, Subcommand};
use gammabench::config::{self, Resolved};
use gammabench::store::{self, Store};
use gammabench::{Error, Result};
use std::path::PathBuf;

#[derive(Parser)]
#[command(
    name = "gammabench",
    version,
    about = "Benchmark and data-challenge harness for gamma-ray point sources"
)]
struct Cli {
    /// More log output (-v debug, -vv trace); progress and results are logged at info.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors.
    #[arg(short, long, global = true)]
    quiet: bool,
    /// Run store directory.
    #[arg(long, global = true, env = "GAMMABENCH_STORE", default_value = "runs")]
    store: PathBuf,
    /// Worker threads (default: all cores). Outputs do not depend on it.
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(subcommand)]
    command: Command,
}

/// Options every stage command shares.
#[derive(Args, Clone)]
struct StageArgs {
    /// Experiment config (TOML). Default: the embedded configs/default.toml.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key: --set catalog.prior=4fgl-dr1 (repeatable; a list on a grid
    /// axis, e.g. --set catalog.preset=[F0,F1,F2], runs once per value).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Also write the user-facing files here (one subdirectory per grid point).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Recompute even when the store already has this output.
    #[arg(long)]
    force: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Mock AGN/PSR catalogs drawn from 4FGL (catalog.csv, catalog.xml, figures/).
    Catalog(StageArgs),
    /// Print the resolved config(s) as TOML, one per grid point.
    Config(StageArgs),
    /// Run a whole experiment grid: every stage of every grid point, cached stages reused.
    Run(RunArgs),
}

#[derive(Args)]
struct RunArgs {
    /// A config file, or a directory of them (every *.toml).
    config: PathBuf,
    /// Override a config key (repeatable; lists on grid axes expand the grid).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Print the plan (stages, hashes, cached or not) and stop.
    #[arg(long)]
    dry_run: bool,
    /// Recompute every stage of the plan.
    #[arg(long)]
    force: bool,
    /// Stages run at the same time (each also uses the thread pool).
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Run only the stage with this hash (its inputs must be stored): one cluster task.
    #[arg(long)]
    only: Option<String>,
    /// Write job scripts instead of running: `--emit slurm DIR`.
    #[arg(long, num_args = 2, value_names = ["KIND", "DIR"])]
    emit: Option<Vec<String>>,
}

fn progress_bar(quiet: bool, msg: &str) -> indicatif::ProgressBar {
    if quiet {
        return indicatif::ProgressBar::hidden();
    }
    let pb = indicatif::ProgressBar::new(0);
    pb.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    pb.set_message(msg.to_string());
    pb
}

/// Output directory of one grid point.
fn point_out(out: &std::path::Path, points: &[Resolved], p: &Resolved) -> PathBuf {
    if points.len() == 1 {
        out.to_path_buf()
    } else {
        out.join(p.label.replace([',', '='], "_").replace(['/', ' '], "-"))
    }
}

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
    let store = Store::new(&cli.store);
    match cli.command {
        Command::Config(a) => {
            let points = config::load(a.config.as_deref(), &a.set)?;
            for p in &points {
                if !p.label.is_empty() {
                    println!("# grid point: {}", p.label);
                }
                print!(
                    "{}",
                    toml::to_string_pretty(&p.config)
                        .map_err(|e| Error::Internal(e.to_string()))?
                );
            }
            Ok(())
        }
        Command::Run(a) => run_plan(&store, a, cli.quiet),
        Command::Catalog(a) => {
            let points = config::load(a.config.as_deref(), &a.set)?;
            for p in &points {
                let pb = progress_bar(cli.quiet, "catalog");
                let out = gammabench::catalog::run(&store, &p.config, a.force, &pb)?;
                pb.finish_and_clear();
                let s = &out.manifest.summary;
                let what = format!(
                    "catalog {}{}: {} AGN + {} PSR",
                    out.manifest.hash,
                    if p.label.is_empty() {
                        String::new()
                    } else {
                        format!(" [{}]", p.label)
                    },
                    s["n_agn"],
                    s["n_psr"]
                );
                if out.reused {
                    log::info!(
                        "{what}: reusing stored output {} (use --force to recompute)",
                        out.dir.display()
                    );
                } else {
                    log::info!(
                        "{what}: computed in {:.2} s -> {}",
                        out.manifest.wall_time_s,
                        out.dir.display()
                    );
                }
                if let Some(o) = &a.out {
                    let dest = point_out(o, &points, p);
                    store::export(&out, &dest)?;
                    log::info!("wrote {}", dest.display());
                }
            }
            Ok(())
        }
    }
}

fn run_plan(store: &Store, a: RunArgs, quiet: bool) -> Result<()> {
    use gammabench::pipeline;
    let points = pipeline::load_points(&a.config, &a.set)?;
    let plan = pipeline::build(&points)?;
    if a.dry_run {
        print!("{}", pipeline::plan::format_plan(&plan.describe(store)));
        return Ok(());
    }
    if let Some(emit) = &a.emit {
        if emit[0] != "slurm" {
            return Err(Error::Usage(format!(
                "--emit {}: only `slurm` is supported",
                emit[0]
            )));
        }
        let dir = PathBuf::from(&emit[1]);
        let mut run_args = vec![a.config.display().to_string()];
        for s in &a.set {
            run_args.push("--set".into());
            run_args.push(s.clone());
        }
        let opts = pipeline::slurm::SlurmOptions {
            run_args,
            binary: std::env::current_exe()
                .map(|p| p.display().to_string())
                .unwrap_or_else(|_| "gammabench".into()),
            cpus_per_task: 8,
            time_limit: "24:00:00".into(),
            mem: "32G".into(),
            extra: vec![],
        };
        let n = pipeline::slurm::emit(&plan, store, &dir, &opts)?;
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
    let pb = if quiet {
        indicatif::ProgressBar::hidden()
    } else {
        let pb = indicatif::ProgressBar::new(plan.len() as u64);
        pb.set_style(
            indicatif::ProgressStyle::with_template(
                "stages {pos}/{len} [{bar:30}] {elapsed} (eta {eta}) {msg}",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        pb
    };
    let outs = plan.execute(store, a.jobs, a.force, &pb)?;
    let computed = outs.values().filter(|o| !o.reused).count();
    log::info!(
        "{} stages: {} computed, {} cached",
        outs.len(),
        computed,
        outs.len() - computed
    );
    Ok(())
}

fn main() {
    let cli = Cli::parse();
    let level = if cli.quiet {
        log::LevelFilter::Error
    } else {
        match cli.verbose {
            0 => log::LevelFilter::Info,
            1 => log::LevelFilter::Debug,
            _ => log::LevelFilter::Trace,
        }
    };
    env_logger::Builder::new()
        .filter_level(level)
        .format_target(false)
        .format_timestamp(None)
        .init();
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
