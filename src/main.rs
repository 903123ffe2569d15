//! The `gammabench` command line: a thin layer over the library.

use clap::{Args, Parser, Subcommand};
use gammabench::config::{self, Resolved};
use gammabench::store::Store;
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

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct PatchesArgs {
    #[command(subcommand)]
    cmd: Option<PatchesCmd>,
    #[command(flatten)]
    stage: StageArgs,
}

#[derive(Subcommand)]
enum PatchesCmd {
    /// Import a published test set (Panes et al. 2021: test_image_N.npy of shape
    /// (3, 64, 64, 5) and test.csv) into a patches directory every detector and the scorer take.
    Import {
        /// Directory with the test_image_N.npy files (and test.csv).
        from: PathBuf,
        /// Output patches directory.
        #[arg(long)]
        out: PathBuf,
        /// Truth table (default: FROM/test.csv).
        #[arg(long)]
        truth: Option<PathBuf>,
        /// Centres of images without truth rows (patch_id,glon_deg,glat_deg).
        #[arg(long)]
        centres: Option<PathBuf>,
        /// Replace a non-empty output directory.
        #[arg(long)]
        force: bool,
    },
    /// Export a patches directory in the published layout (test_image_N.npy + test.csv).
    Export {
        /// A patches directory (patches_{diffuse,agn,psr}.npy, patches.csv, truth.csv).
        patches_dir: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Replace a non-empty output directory.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum Command {
    /// Mock AGN/PSR catalogs drawn from 4FGL (catalog.csv, catalog.xml, figures/).
    Catalog(StageArgs),
    /// Expected-counts HEALPix maps of a catalog over an emission model (map_*.fits, figures/).
    Sky(StageArgs),
    /// 64x64xbins patches, masks and truth tables cut from the sky maps; `patches import` /
    /// `patches export` convert the published test-set layout (test_image_N.npy + test.csv).
    Patches(PatchesArgs),
    /// Run any registered stage by name (and the stages it reads) on every grid point.
    Stage {
        /// Stage name (see `gammabench stages`).
        name: String,
        #[command(flatten)]
        args: StageArgs,
    },
    /// List the registered stages: what each computes and writes.
    Stages,
    /// Print the resolved config(s) as TOML, one per grid point.
    Config(StageArgs),
    /// Run a whole experiment grid: every stage of every grid point, cached stages reused.
    Run(RunArgs),
    /// Publish leaderboards, figures and an HTML report of a grid from stored manifests.
    Report(ReportArgs),
    /// Run the CI grid (and optionally the criterion benches) and compare every metric with
    /// a baseline; exit code 3 on a regression.
    Nightly(NightlyArgs),
    /// Re-score a published report's detections and classifications from the store and
    /// report any difference from the published numbers (exit code 3).
    Reproduce(ReproduceArgs),
    /// Check every stored stage against its manifest (file SHA-256s, incomplete or left-over
    /// directories); exit code 3 when one fails.
    Verify,
    /// Score detections or classifications against truth.
    #[command(subcommand)]
    Score(ScoreCmd),
    /// The data-challenge kit: build, validate, submit, leaderboard.
    #[command(subcommand)]
    Challenge(ChallengeCmd),
    /// Source classifiers (AGN / PSR) under cross-validation.
    #[command(subcommand)]
    Classify(ClassifyCommand),
    /// Train the detector of `[detect]` on `train.patches` (model directory in --out).
    Train(TrainArgs),
    /// Run a trained detector (a model directory) on a patches directory.
    Detect(DetectArgs),
    /// Union or intersection of two detections.csv files, matched on the sky.
    Combine(CombineArgs),
    /// Sky fidelity: a patches directory against a reference (the published F0-B1 truth by
    /// default, an imported published test set, or any patches directory): populations,
    /// S1/S10/SNR_c distributions with KS statistics, background per band and bin.
    Fidelity(FidelityArgs),
}

#[derive(Args)]
struct FidelityArgs {
    /// Our patches directory (patches.csv, truth.csv, patches_*.npy).
    #[arg(long)]
    patches: PathBuf,
    /// Reference: a truth table (published test.csv or our truth.csv) or a patches directory.
    /// Default: ../shared/reference/panes2021-f0b1/test.csv.gz.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Output directory (fidelity.json, fidelity.md, figures/).
    #[arg(long)]
    out: PathBuf,
    /// Exit with code 3 when a check fails.
    #[arg(long)]
    strict: bool,
}

/// Config options of the score and challenge commands.
#[derive(Args, Clone)]
struct ConfigArgs {
    /// Experiment config (TOML; its [score] and [challenge] tables). Default: embedded.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override a config key, e.g. --set score.mode=legacy (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ConfigArgs {
    fn load(&self) -> Result<gammabench::config::ExperimentConfig> {
        let mut points = config::load(self.config.as_deref(), &self.set)?;
        if points.len() != 1 {
            return Err(Error::Usage(
                "this command takes one config, not a grid".into(),
            ));
        }
        Ok(points.remove(0).config)
    }
}

#[derive(Subcommand)]
enum ScoreCmd {
    /// Match detections to true sources; purity, completeness, curves, S90 (metrics.json,
    /// match_table.csv, curves.csv, s90.csv, figures/).
    Detections {
        /// Truth table: truth.csv of the patches stage or the published challenge truth CSV.
        #[arg(long)]
        truth: PathBuf,
        /// Detections: patch_id,x_pix,y_pix[,...] or image_nr,centroid_y,centroid_x,class_id,probability.
        #[arg(long)]
        predictions: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        /// Patch centres (patch_id,glon_deg,glat_deg); needed with our truth.csv.
        #[arg(long)]
        patches: Option<PathBuf>,
        /// legacy (published per-patch scorer) or global (one-to-one); default from config.
        #[arg(long)]
        mode: Option<String>,
        /// Skip the figures.
        #[arg(long)]
        no_figures: bool,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// The published notebook's binned tables (Panes et al. 2021 Figs. 5-6) from a legacy
    /// evaluation.csv, ours or the published unek_evaluation_test.csv (paper_tables.csv/.md).
    PaperTables {
        /// A legacy evaluation file (the published 25 columns; .gz accepted).
        #[arg(long)]
        evaluation: PathBuf,
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
    },
    /// Classification metrics from true_class,p_<class>... (metrics.json, roc.csv,
    /// reliability.csv, figures/).
    Classification {
        #[arg(long)]
        predictions: PathBuf,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        no_figures: bool,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
}

#[derive(Subcommand)]
enum ChallengeCmd {
    /// Build the public and private bundles from a patches-stage directory.
    Build {
        /// Patches directory (patches.csv, truth.csv, patches_{diffuse,agn,psr}.npy);
        /// default: challenge.patches_dir of the config.
        #[arg(long)]
        patches_dir: Option<PathBuf>,
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Check a submission; every problem with line and column. Exit 0 valid, 2 invalid.
    Validate {
        submission: PathBuf,
        /// The public patches.csv (default: <challenge.private_dir>/patches.csv).
        #[arg(long)]
        patches: Option<PathBuf>,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Validate, score and record a submission in the leaderboard.
    Submit {
        #[arg(long)]
        team: String,
        submission: PathBuf,
        /// Private bundle (default: challenge.private_dir).
        #[arg(long)]
        private: Option<PathBuf>,
        /// Leaderboard database (default: challenge.database or <store>/challenge/leaderboard.sqlite).
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Write the leaderboard as CSV, Markdown, JSON and HTML.
    Leaderboard {
        /// Rank on the private half (final results) instead of the public one.
        #[arg(long)]
        private: bool,
        #[arg(long)]
        out: PathBuf,
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
}

#[derive(Args)]
struct NightlyArgs {
    /// The CI grid: a config file or directory.
    #[arg(long, default_value = "configs/ci")]
    config: PathBuf,
    /// Directory holding baseline.json.
    #[arg(long, default_value = "results/nightly")]
    baseline: PathBuf,
    /// Where the drift report goes (default: <baseline>/latest).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also run `cargo bench` (from the repository) and compare criterion's means.
    #[arg(long)]
    benches: bool,
    /// Write the current metrics as the new baseline instead of failing on drift.
    #[arg(long)]
    update_baseline: bool,
    /// Stages run at the same time.
    #[arg(long, default_value_t = 1)]
    jobs: usize,
    /// Override a config key.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

#[derive(Args)]
struct ReportArgs {
    /// The config file (or directory) the grid was run with.
    config: Option<PathBuf>,
    /// The same overrides as the run.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Output directory (e.g. results/<name>/).
    #[arg(long)]
    out: PathBuf,
    /// Report name (default: the output directory's name).
    #[arg(long)]
    name: Option<String>,
}

#[derive(Args)]
struct ReproduceArgs {
    /// The report's manifest (results/<name>/manifest.json).
    manifest: PathBuf,
    /// Relative tolerance of a number to count as reproduced.
    #[arg(long, default_value_t = 1e-9)]
    rel_tol: f64,
}

#[derive(Args)]
struct RunArgs {
    /// A config file, or a directory of them (every *.toml).
    config: Option<PathBuf>,
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
    /// After the run, publish the report (leaderboards, figures, index.html) of the grid to
    /// this directory and print the detection leaderboard.
    #[arg(long, value_name = "DIR")]
    report: Option<PathBuf>,
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
    /// The head to run (`unek`, `log`, `cnet`, `ts`; default: the one the model was trained
    /// for). UNEK and LoG share the segmentation network; TS needs none.
    #[arg(long)]
    head: Option<String>,
    /// Override a `detect.*` key (or `seed`) of the model's config (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
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

fn point_out(out: &std::path::Path, points: &[Resolved], p: &Resolved) -> PathBuf {
    gammabench::pipeline::point_dir(out, points, p)
}

fn db_path(
    store: &Store,
    db: Option<PathBuf>,
    c: &gammabench::config::ExperimentConfig,
) -> PathBuf {
    db.or_else(|| c.challenge.database.clone())
        .unwrap_or_else(|| store.root().join("challenge").join("leaderboard.sqlite"))
}

fn run_score(cmd: ScoreCmd) -> Result<()> {
    use gammabench::score;
    match cmd {
        ScoreCmd::Detections {
            truth,
            predictions,
            out,
            patches,
            mode,
            no_figures,
            cfg,
        } => {
            let mut c = cfg.load()?;
            if let Some(m) = mode {
                c.score.mode = match m.as_str() {
                    "legacy" => config::MatchMode::Legacy,
                    "global" => config::MatchMode::Global,
                    other => {
                        return Err(Error::Usage(format!(
                            "--mode {other}: expected legacy or global"
                        )));
                    }
                };
            }
            let t0 = std::time::Instant::now();
            let r = score::score_detections(
                &truth,
                &predictions,
                patches.as_deref(),
                &out,
                &c.score,
                c.seed,
                !no_figures,
            )?;
            let s1 = r
                .s90
                .iter()
                .find(|s| s.axis == "S1" && s.region == "all")
                .map(|s| match s.value {
                    Some(v) => format!("S90(S1) = {v:.3e} ({})", s.status),
                    None => format!("S90(S1) {}", s.status),
                })
                .unwrap_or_default();
            log::info!(
                "{} mode: TP {} FP {} FN {} duplicate {}; purity {} completeness {}; {s1}; {:.2} s -> {}",
                r.mode,
                r.tp,
                r.fp,
                r.fn_,
                r.duplicate,
                r.purity
                    .value
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or("undefined".into()),
                r.completeness
                    .value
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or("undefined".into()),
                t0.elapsed().as_secs_f64(),
                out.display()
            );
            Ok(())
        }
        ScoreCmd::PaperTables { evaluation, out } => {
            let rows = score::paper::read_evaluation(&evaluation)?;
            let tables = score::paper::tables(&rows);
            std::fs::create_dir_all(&out).map_err(|e| Error::io(&out, e))?;
            score::paper::write_tables(&out, &tables)?;
            log::info!(
                "{} evaluation rows, {} tables -> {}",
                rows.len(),
                tables.len(),
                out.join("paper_tables.md").display()
            );
            Ok(())
        }
        ScoreCmd::Classification {
            predictions,
            out,
            no_figures,
            cfg,
        } => {
            let c = cfg.load()?;
            let r = score::score_classification(&predictions, &out, &c.score, !no_figures)?;
            let f = |m: &score::classification::Metric| {
                m.value
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or("undefined".into())
            };
            log::info!(
                "{} items: accuracy {} balanced {} macro-F1 {} MCC {} macro AUC {} log loss {} -> {}",
                r.n,
                f(&r.accuracy),
                f(&r.balanced_accuracy),
                f(&r.macro_f1),
                f(&r.mcc),
                f(&r.macro_roc_auc),
                f(&r.log_loss),
                out.display()
            );
            Ok(())
        }
    }
}

fn run_challenge(store: &Store, cmd: ChallengeCmd) -> Result<()> {
    use gammabench::challenge;
    match cmd {
        ChallengeCmd::Build {
            patches_dir,
            out,
            cfg,
        } => {
            let c = cfg.load()?;
            let dir = patches_dir
                .or_else(|| c.challenge.patches_dir.clone())
                .ok_or_else(|| {
                    Error::Usage("give --patches-dir or challenge.patches_dir".into())
                })?;
            let s = challenge::build(&c, &dir, &out)?;
            log::info!(
                "{} patches: public bundle {}, private bundle {}",
                s.n_patches,
                s.public_dir.display(),
                s.private_dir.display()
            );
            Ok(())
        }
        ChallengeCmd::Validate {
            submission,
            patches,
            cfg,
        } => {
            let c = cfg.load()?;
            let patches = patches
                .or_else(|| {
                    c.challenge
                        .private_dir
                        .as_ref()
                        .map(|d| d.join("patches.csv"))
                })
                .ok_or_else(|| Error::Usage("give --patches patches.csv".into()))?;
            let p = challenge::validate(&c.challenge, &patches, &submission)?;
            if p.problems.is_empty() {
                println!(
                    "{}: valid ({} detections, {} format)",
                    submission.display(),
                    p.detections.len(),
                    match p.format {
                        Some(gammabench::score::input::DetectionFormat::Published) => "published",
                        _ => "gammabench",
                    }
                );
                Ok(())
            } else {
                eprint!("{}", challenge::format_problems(&submission, &p));
                Err(Error::Usage(format!(
                    "{}: invalid ({} problems)",
                    submission.display(),
                    p.problems.len() + p.more_problems
                )))
            }
        }
        ChallengeCmd::Submit {
            team,
            submission,
            private,
            db,
            cfg,
        } => {
            let c = cfg.load()?;
            let private = private
                .or_else(|| c.challenge.private_dir.clone())
                .ok_or_else(|| {
                    Error::Usage("give --private DIR or challenge.private_dir".into())
                })?;
            let db = db_path(store, db, &c);
            match challenge::submit(
                &c,
                &private,
                &db,
                &team,
                &submission,
                std::time::SystemTime::now(),
            )? {
                challenge::SubmitOutcome::Recorded { id, public } => {
                    println!(
                        "submission #{id} of team `{team}` recorded; public score: F1 {:.4} (purity {:.4}, completeness {:.4})",
                        public.f1, public.purity, public.completeness
                    );
                    Ok(())
                }
                challenge::SubmitOutcome::Identical { id, submitted_utc } => {
                    println!(
                        "identical to submission #{id} of team `{team}` ({submitted_utc}); not counted again"
                    );
                    Ok(())
                }
                challenge::SubmitOutcome::LimitReached { limit, day } => Err(Error::Usage(
                    format!("team `{team}` has used its {limit} submissions for {day} (UTC)"),
                )),
            }
        }
        ChallengeCmd::Leaderboard {
            private,
            out,
            db,
            cfg,
        } => {
            let c = cfg.load()?;
            let db = db_path(store, db, &c);
            let rows = challenge::leaderboard(&db, private, c.score.match_radius_deg, &out)?;
            log::info!(
                "{} teams ({} half) -> {}",
                rows.len(),
                if private { "private" } else { "public" },
                out.display()
            );
            Ok(())
        }
    }
}

fn run_train(a: TrainArgs) -> Result<()> {
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
        let pb = gammabench::progress::bar(det.name());
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
        Command::Score(cmd) => run_score(cmd),
        Command::Fidelity(a) => {
            use gammabench::patches::fidelity;
            let reference = a.reference.unwrap_or_else(fidelity::default_reference);
            let r = fidelity::compare(&a.patches, &reference, fidelity::Tolerances::default())?;
            fidelity::write(&r, &a.out)?;
            let failed: Vec<&str> = r
                .checks
                .iter()
                .filter(|c| !c.pass)
                .map(|c| c.name.as_str())
                .collect();
            log::info!(
                "{} patches paired, {} checks, {} failing -> {}",
                r.n_patches_paired,
                r.checks.len(),
                failed.len(),
                a.out.join("fidelity.md").display()
            );
            if a.strict && !failed.is_empty() {
                return Err(Error::Regression(format!(
                    "{} fidelity check(s) failed, e.g. {}",
                    failed.len(),
                    failed[0]
                )));
            }
            Ok(())
        }
        Command::Challenge(cmd) => run_challenge(&store, cmd),
        Command::Config(a) => {
            let points = config::load(a.config.as_deref(), &a.set)?;
            for p in &points {
                if !p.label.is_empty() {
                    println!("# grid point: {}", p.label);
                }
                print!("{}", gammabench::formats::to_toml_pretty(&p.config)?);
            }
            Ok(())
        }
        Command::Run(a) => run_plan(&store, a, cli.quiet),
        Command::Verify => {
            let all = store.verify_all()?;
            let bad: Vec<_> = all.iter().filter(|(_, p)| !p.is_empty()).collect();
            for (dir, problems) in &bad {
                for p in problems.iter() {
                    println!("FAIL {}: {p}", dir.display());
                }
            }
            log::info!(
                "{} stored stage(s) under {}: {} intact, {} failing",
                all.len(),
                store.root().display(),
                all.len() - bad.len(),
                bad.len()
            );
            if bad.is_empty() {
                Ok(())
            } else {
                Err(Error::Regression(format!(
                    "{} stored stage(s) fail verification (a `gammabench run` recomputes them)",
                    bad.len()
                )))
            }
        }
        Command::Nightly(a) => run_nightly(&store, a),
        Command::Reproduce(a) => {
            use gammabench::report::reproduce;
            let r = reproduce::reproduce(&a.manifest, &store, a.rel_tol)?;
            let dir = a.manifest.parent().unwrap_or(std::path::Path::new("."));
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
        Command::Report(a) => {
            let points = gammabench::pipeline::load_points(a.config.as_deref(), &a.set)?;
            let plan = gammabench::pipeline::build(&points)?;
            let entries = gammabench::report::collect(&plan, &store)?;
            let name = a.name.clone().unwrap_or_else(|| report_name(&points));
            let m = gammabench::report::publish(&entries, &a.out, &name)?;
            log::info!(
                "report of {} stage outputs -> {} ({})",
                entries.len(),
                a.out.join("index.html").display(),
                m.display()
            );
            Ok(())
        }
        Command::Sky(a) => stage_verb(&store, "sky", a),
        Command::Patches(PatchesArgs {
            cmd:
                Some(PatchesCmd::Import {
                    from,
                    out,
                    truth,
                    centres,
                    force,
                }),
            ..
        }) => {
            let r = gammabench::patches::published::import(
                &from,
                truth.as_deref(),
                centres.as_deref(),
                &out,
                force,
            )?;
            log::info!(
                "imported {} patches ({}x{}x{}), {} truth rows of {} sources -> {}",
                r.n_patches,
                r.size,
                r.size,
                r.n_bins,
                r.n_truth_rows,
                r.n_sources,
                out.display()
            );
            Ok(())
        }
        Command::Patches(PatchesArgs {
            cmd:
                Some(PatchesCmd::Export {
                    patches_dir,
                    out,
                    force,
                }),
            ..
        }) => {
            let n = gammabench::patches::published::export(&patches_dir, &out, force)?;
            log::info!("exported {n} patches -> {}", out.display());
            Ok(())
        }
        Command::Patches(PatchesArgs { stage: a, .. }) => stage_verb(&store, "patches", a),
        Command::Stage { name, args } => stage_verb(&store, &name, args),
        Command::Stages => {
            for st in gammabench::pipeline::STAGES {
                println!("{:<9} {}", st.name(), st.about());
                println!("{:<9} writes {}", "", st.outputs().join(", "));
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
        Command::Train(a) => run_train(a),
        Command::Detect(a) => {
            let patches = gammabench::detect::PatchSet::load(&a.patches, a.max_patches)?;
            let mut set = a.set.clone();
            if let Some(h) = &a.head {
                set.push(format!("detect.variant=\"{h}\""));
            }
            let det = gammabench::detect::load_for_patches_with(
                &a.model, &set, &store, &a.patches, &patches,
            )?;
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
        Command::Catalog(a) => stage_verb(&store, "catalog", a),
    }
}

/// A registered stage's verb on every grid point of `--config` / `--set`.
fn stage_verb(store: &Store, name: &str, a: StageArgs) -> Result<()> {
    let points = config::load(a.config.as_deref(), &a.set)?;
    gammabench::pipeline::run_stage_verb(store, name, &points, a.force, a.out.as_deref())?;
    Ok(())
}

/// The report's title: the config's name (the distinct names of a directory of configs).
fn report_name(points: &[Resolved]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for p in points {
        if !names.contains(&p.config.name.as_str()) {
            names.push(&p.config.name);
        }
    }
    if names.is_empty() {
        "report".into()
    } else {
        names.join(" + ")
    }
}

fn run_plan(store: &Store, a: RunArgs, quiet: bool) -> Result<()> {
    use gammabench::pipeline;
    let points = pipeline::load_points(a.config.as_deref(), &a.set)?;
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
        let mut run_args: Vec<String> = a.config.iter().map(|c| c.display().to_string()).collect();
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
    let pb = gammabench::progress::stages_bar(plan.len() as u64);
    let outs = plan.execute(store, a.jobs, a.force, &pb)?;
    let computed = outs.values().filter(|o| !o.reused).count();
    log::info!(
        "{} stages: {} computed, {} cached",
        outs.len(),
        computed,
        outs.len() - computed
    );
    if !quiet {
        print!("{}", pipeline::results_summary(&plan, &outs));
    }
    if let Some(dir) = &a.report {
        let entries = gammabench::report::collect(&plan, store)?;
        let m = gammabench::report::publish(&entries, dir, &report_name(&points))?;
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

fn run_nightly(store: &Store, a: NightlyArgs) -> Result<()> {
    use gammabench::report::nightly;
    let points = gammabench::pipeline::load_points(Some(&a.config), &a.set)?;
    let baseline_path = a.baseline.join("baseline.json");
    let baseline = if a.update_baseline {
        None
    } else {
        Some(nightly::read_baseline(&baseline_path)?)
    };
    let mut cfg = gammabench::config::NightlyConfig::default();
    for p in &points {
        for r in &p.config.nightly.rules {
            if !cfg.rules.contains(r) {
                cfg.rules.push(r.clone());
            }
        }
    }
    let plan = gammabench::pipeline::build(&points)?;
    let pb = gammabench::progress::stages_bar(plan.len() as u64);
    plan.execute(store, a.jobs, false, &pb)?;
    let entries = gammabench::report::collect(&plan, store)?;
    let mut metrics = nightly::metrics_of(&entries);
    metrics.extend(nightly::fidelity_metrics(
        &entries,
        &gammabench::patches::fidelity::default_reference(),
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
    gammabench::progress::init_logging(level, cli.quiet);
    if let Err(e) = run(cli) {
        eprintln!("error: {e}");
        std::process::exit(e.exit_code());
    }
}
