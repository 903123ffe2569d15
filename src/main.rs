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
    /// Expected-counts HEALPix maps of a catalog over an emission model (map_*.fits, figures/).
    Sky(StageArgs),
    /// 64x64xbins patches, masks and truth tables cut from the sky maps.
    Patches(StageArgs),
    /// Print the resolved config(s) as TOML, one per grid point.
    Config(StageArgs),
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

fn label(p: &Resolved) -> String {
    if p.label.is_empty() {
        String::new()
    } else {
        format!(" [{}]", p.label)
    }
}

fn report(what: &str, out: &store::StageOutput) {
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
        Command::Sky(a) => {
            let points = config::load(a.config.as_deref(), &a.set)?;
            for p in &points {
                let pb = progress_bar(cli.quiet, "catalog");
                let (_, out) = gammabench::sky::run(&store, &p.config, a.force, &pb)?;
                pb.finish_and_clear();
                let s = &out.manifest.summary;
                let what = format!(
                    "sky {}{}: {} NSIDE {}, diffuse counts/pixel > 1 GeV: {:.3} at |b| > 30 deg, {:.3} at |b| < 5 deg",
                    out.manifest.hash,
                    label(p),
                    s["iem"].as_str().unwrap_or("?"),
                    s["nside"],
                    s["diffuse_counts_per_pixel_above_1gev"]["abs_b_gt_30_deg"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                    s["diffuse_counts_per_pixel_above_1gev"]["abs_b_lt_5_deg"]
                        .as_f64()
                        .unwrap_or(f64::NAN),
                );
                report(&what, &out);
                if let Some(o) = &a.out {
                    let dest = point_out(o, &points, p);
                    store::export(&out, &dest)?;
                    log::info!("wrote {}", dest.display());
                }
            }
            Ok(())
        }
        Command::Patches(a) => {
            let points = config::load(a.config.as_deref(), &a.set)?;
            for p in &points {
                let pb = progress_bar(cli.quiet, "catalog");
                let out = gammabench::patches::run(&store, &p.config, a.force, &pb)?;
                pb.finish_and_clear();
                let s = &out.manifest.summary;
                let what = format!(
                    "patches {}{}: {} patches ({}), {} truth rows",
                    out.manifest.hash,
                    label(p),
                    s["n_patches"],
                    s["centres"].as_str().unwrap_or("?"),
                    s["n_truth_rows"],
                );
                report(&what, &out);
                if let Some(o) = &a.out {
                    let dest = point_out(o, &points, p);
                    store::export(&out, &dest)?;
                    log::info!("wrote {}", dest.display());
                }
            }
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
