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
    /// Train the detector of `[detect]` on `train.patches` (model directory in --out).
    Train(TrainArgs),
    /// Run a trained detector (a model directory) on a patches directory.
    Detect(DetectArgs),
    /// Union or intersection of two detections.csv files, matched on the sky.
    Combine(CombineArgs),
}

#[derive(Args, Clone)]
struct TrainArgs {
    /// Experiment config (TOML) with [detect] and [train] sections.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key (repeatable); a grid axis list trains one model per value.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Model directory (one subdirectory per grid point).
    #[arg(long)]
    out: PathBuf,
    /// Training patches directory (overrides train.patches).
    #[arg(long)]
    patches: Option<PathBuf>,
    /// Continue from the checkpoint in the model directory.
    #[arg(long)]
    resume: bool,
}

#[derive(Args, Clone)]
struct DetectArgs {
    /// Model directory written by `train`.
    #[arg(long)]
    model: PathBuf,
    /// Patches directory to search.
    #[arg(long)]
    patches: PathBuf,
    /// Output directory (detections.csv, detections_published.csv).
    #[arg(long)]
    out: PathBuf,
    /// Only the first N patches (0: all).
    #[arg(long, default_value_t = 0)]
    max_patches: usize,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum CombineMode {
    Union,
    Intersection,
}

#[derive(Args, Clone)]
struct CombineArgs {
    /// First detections.csv.
    #[arg(long)]
    a: PathBuf,
    /// Second detections.csv.
    #[arg(long)]
    b: PathBuf,
    #[arg(long, value_enum)]
    mode: CombineMode,
    /// Matching radius on the sky, deg.
    #[arg(long, default_value_t = gammabench::detect::combine::SCORING_RADIUS_DEG)]
    radius_deg: f64,
    /// Output directory.
    #[arg(long)]
    out: PathBuf,
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

fn run_train(cli_quiet: bool, a: TrainArgs) -> Result<()> {
    let points = config::load(a.config.as_deref(), &a.set)?;
    for p in &points {
        let mut cfg = p.config.clone();
        if let Some(dir) = &a.patches {
            cfg.train.patches = dir.display().to_string();
        }
        if cfg.train.patches.is_empty() && cfg.detect.variant != config::DetectorVariant::Ts {
            return Err(Error::Usage(
                "no training patches: give --patches DIR or train.patches".into(),
            ));
        }
        let out = point_out(&a.out, &points, p);
        let mut det: Box<dyn gammabench::detect::Detector> =
            if cfg.detect.variant == config::DetectorVariant::Ts {
                gammabench::detect::build(&cfg)?
            } else {
                let mut d = gammabench::detect::neural::NeuralDetector::new(&cfg)?;
                d.resume = a.resume;
                Box::new(d)
            };
        let train = if cfg.train.patches.is_empty() {
            None
        } else {
            Some(gammabench::detect::PatchSet::load(
                std::path::Path::new(&cfg.train.patches),
                cfg.train.max_patches,
            )?)
        };
        let pb = progress_bar(cli_quiet, det.name());
        let empty = gammabench::detect::PatchSet::empty(64, cfg.energy.n_bins());
        let set = train.as_ref().unwrap_or(&empty);
        let r = det.fit(set, &out, &pb)?;
        pb.finish_and_clear();
        log::info!(
            "{} trained: {} epochs in {:.1} s, best epoch {} (val loss {:.5}), train loss {:.5} -> {:.5}; model in {}",
            det.name(),
            r.epochs_run,
            r.wall_time_s,
            r.best_epoch,
            r.best_val_loss,
            r.first_train_loss,
            r.last_train_loss,
            out.display()
        );
    }
    Ok(())
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
        Command::Train(a) => run_train(cli.quiet, a),
        Command::Detect(a) => {
            let det = gammabench::detect::load(&a.model)?;
            let patches = gammabench::detect::PatchSet::load(&a.patches, a.max_patches)?;
            let t0 = std::time::Instant::now();
            let dets = det.detect(&patches)?;
            gammabench::detect::write_detections(&a.out, &dets)?;
            if patches.truth.iter().any(|t| !t.is_empty()) {
                let (p, c, nd, nt) = gammabench::detect::combine::provisional_scores(
                    &dets,
                    &patches,
                    gammabench::detect::combine::SCORING_RADIUS_DEG,
                );
                log::info!(
                    "provisional match within 0.3 deg: purity {p:.3} ({nd} detections), completeness {c:.3} ({nt} true sources)"
                );
            }
            log::info!(
                "{}: {} detections in {} patches ({:.1} s) -> {}",
                det.name(),
                dets.len(),
                patches.len(),
                t0.elapsed().as_secs_f64(),
                a.out.display()
            );
            Ok(())
        }
        Command::Combine(a) => {
            use gammabench::detect::{combine, read_detections, write_detections};
            let (da, db) = (read_detections(&a.a)?, read_detections(&a.b)?);
            let out = match a.mode {
                CombineMode::Union => combine::union(&da, &db, a.radius_deg),
                CombineMode::Intersection => combine::intersection(&da, &db, a.radius_deg),
            };
            write_detections(&a.out, &out)?;
            log::info!("{} detections -> {}", out.len(), a.out.display());
            Ok(())
        }
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
