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
    /// Source classifiers (AGN / PSR) under cross-validation.
    #[command(subcommand)]
    Classify(ClassifyCommand),
}

#[derive(Subcommand)]
enum ClassifyCommand {
    /// Cross-validate the configured variant(s) on the 4FGL-DR2 catalog track: per-fold
    /// metrics, out-of-fold predictions, summary table, unassociated-source predictions.
    Cv(StageArgs),
    /// Apply the fold models written by `classify cv` to a 4FGL-format CSV.
    Predict {
        /// Output directory of a `classify cv` run (holds models/fold_*/).
        #[arg(long)]
        model: PathBuf,
        /// 4FGL-format CSV (.csv or .csv.gz) with Flux_Band_* and Flux_History_* columns.
        #[arg(long)]
        input: PathBuf,
        /// The models were trained with GLAT as an extra input.
        #[arg(long)]
        use_glat: bool,
        /// Output CSV: source_id,p_AGN,p_PSR,predicted_class.
        #[arg(long)]
        out: PathBuf,
    },
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
        Command::Classify(ClassifyCommand::Cv(a)) => {
            let points = config::load(a.config.as_deref(), &a.set)?;
            let out = a
                .out
                .clone()
                .ok_or_else(|| Error::Usage("classify cv needs --out DIR".into()))?;
            let mut rows = Vec::new();
            for p in &points {
                let dest = point_out(&out, &points, p);
                let r = gammabench::classify::run::run_cv(&p.config, &dest)?;
                if r.n_unc == 0 {
                    log::info!("classify {}: wrote {}", r.variant, dest.display());
                    rows.push((r.variant, r.summary));
                    continue;
                }
                log::info!(
                    "classify {}: unassociated {} -> {} AGN, {} PSR, {} unclassified; wrote {}",
                    r.variant,
                    r.n_unc,
                    r.unc_counts[0],
                    r.unc_counts[1],
                    r.unc_counts[2],
                    dest.display()
                );
                rows.push((r.variant, r.summary));
            }
            let table = gammabench::classify::run::summary_table(&rows);
            if points.len() > 1 {
                gammabench::formats::atomic_write(&out.join("summary.md"), table.as_bytes())?;
            }
            println!("{table}");
            Ok(())
        }
        Command::Classify(ClassifyCommand::Predict {
            model,
            input,
            use_glat,
            out,
        }) => {
            let n = gammabench::classify::run::predict(&model, &input, use_glat, &out)?;
            log::info!("classified {n} sources -> {}", out.display());
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
