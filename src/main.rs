//! The `gammabench` command line: a thin layer over the library.

use clap::{Args, Parser, Subcommand};
use gammabench::config;
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
    /// The data-challenge kit: build, validate, submit, leaderboard, teams.
    #[command(subcommand)]
    Challenge(ChallengeCmd),
    /// Serve a challenge (the `--out` of `challenge build`) over HTTP: JSON API, pages, queue.
    Serve {
        /// Directory holding the public/ and private/ bundles of `challenge build`.
        #[arg(long)]
        challenge: PathBuf,
        /// Address to listen on; port 0 picks a free port (printed on the first line).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: String,
        /// Challenge database (default: challenge.database or <store>/challenge/leaderboard.sqlite);
        /// submission files are kept in submissions/ beside it.
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Source classifiers (AGN / PSR) under cross-validation.
    #[command(subcommand)]
    Classify(ClassifyCommand),
    /// Train the detector of `[detect]` on `train.patches` (model directory in --out).
    Train(TrainArgs),
    /// Run a trained detector (a model directory) on a patches directory.
    Detect(DetectArgs),
    /// Write the trained networks of a run grid (and their heads' operating points chosen on
    /// the validation sky) as shippable model folders: `--out models/reference`.
    ExportModels(ExportModelsArgs),
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
        let points = config::load(self.config.as_deref(), &self.set)?;
        config::single_for_scoring(points)
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
        /// Build even from a sky made with a seed shipped in configs/ (its truth can be
        /// regenerated by anyone): a practice kit, never a real challenge.
        #[arg(long)]
        allow_known_sky: bool,
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
    /// Validate, score and record a submission: locally (--team, --private) or on a hosted
    /// challenge (--server, --token).
    Submit {
        /// Team name (local scoring).
        #[arg(long, required_unless_present = "server")]
        team: Option<String>,
        /// URL of a hosted challenge (`gammabench serve`).
        #[arg(long, conflicts_with_all = ["team", "private", "db"])]
        server: Option<String>,
        /// The team's bearer token (with --server).
        #[arg(long, env = "GAMMABENCH_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// With --server: wait until the submission is scored and print its public score.
        #[arg(long)]
        wait: bool,
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
    /// Submission status on a hosted challenge.
    Status {
        #[arg(long)]
        server: String,
        #[arg(long, env = "GAMMABENCH_TOKEN", hide_env_values = true)]
        token: String,
        /// Submission id (the number `submit` printed).
        id: i64,
    },
    /// Teams and their tokens in the challenge database.
    #[command(subcommand)]
    Team(TeamCmd),
    /// Write the leaderboard as CSV, Markdown, JSON and HTML (local database), or print a
    /// hosted challenge's (--server).
    Leaderboard {
        /// Rank on the private half (final results) instead of the public one.
        #[arg(long)]
        private: bool,
        #[arg(long, required_unless_present = "server")]
        out: Option<PathBuf>,
        /// URL of a hosted challenge.
        #[arg(long, conflicts_with_all = ["out", "db"])]
        server: Option<String>,
        /// Token (optional; the organiser's shows the private half before the reveal).
        #[arg(long, env = "GAMMABENCH_TOKEN", hide_env_values = true)]
        token: Option<String>,
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
}

#[derive(Subcommand)]
enum TeamCmd {
    /// Add a team (or, with --admin, the organiser) and print its new bearer token once.
    Add {
        name: String,
        /// An organiser token: private board, reveal, rescore, audit log.
        #[arg(long)]
        admin: bool,
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// List the teams (never a token).
    List {
        #[arg(long)]
        db: Option<PathBuf>,
        #[command(flatten)]
        cfg: ConfigArgs,
    },
    /// Revoke a team's token(s); `team add` then issues a new one.
    Revoke {
        name: String,
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
    /// The history file each night is appended to (default: <baseline>/history.jsonl.gz, one
    /// gzip member a night; a path not ending in .gz is plain text); the trend page goes
    /// beside it.
    #[arg(long)]
    history: Option<PathBuf>,
    /// Judge against the median of the last N nights (default: `[nightly] window`, else 7).
    #[arg(long, value_name = "N")]
    window: Option<usize>,
    /// Judge against baseline.json only (the night is still appended to the history).
    #[arg(long)]
    no_window: bool,
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
    /// Copy the figures of these stages only (comma-separated, e.g.
    /// `train,threshold,detect,score`; default: every stage's). The leaderboard and
    /// paper-layout figures are always drawn.
    #[arg(long, value_delimiter = ',')]
    figures_of: Vec<String>,
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
    /// The burn backend of the networks (sets `train.device` and `classify.device`): flex
    /// (default), tch-cpu, tch-cuda[:N], cuda[:N]; tch and cuda need the cargo features of
    /// those names.
    #[arg(long, value_name = "DEVICE")]
    device: Option<gammabench::compute::Backend>,
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
    /// With --emit slurm: `--partition` of every array (over `[run.slurm] partition`).
    #[arg(long)]
    partition: Option<String>,
    /// With --emit slurm: `--account` of every array.
    #[arg(long)]
    account: Option<String>,
    /// With --emit slurm: wall-time limit per task (`HH:MM:SS`; default 24:00:00).
    #[arg(long)]
    time: Option<String>,
    /// With --emit slurm: memory per task (`32G`, the default).
    #[arg(long)]
    mem: Option<String>,
    /// With --emit slurm: CPUs per task (default 8; also gammabench's --threads).
    #[arg(long)]
    cpus_per_task: Option<usize>,
    /// With --emit slurm: GPUs per task of the `train` arrays (`[run.slurm] gpu_stages`).
    #[arg(long)]
    gpus_per_task: Option<usize>,
    /// With --emit slurm: a shell line run before gammabench in every task
    /// (`module load cuda; source venv/bin/activate`).
    #[arg(long)]
    setup: Option<String>,
    /// With --emit slurm: the gammabench binary's path on the cluster (default: this one's).
    #[arg(long)]
    binary: Option<String>,
}

#[derive(Subcommand)]
enum ClassifyCommand {
    /// Cross-validate the configured variant(s) on the 4FGL-DR2 catalog track: per-fold
    /// metrics, out-of-fold predictions, summary table, unassociated-source predictions.
    Cv(StageArgs),
    /// Write the labelled catalog-track table as the classifiers get it (features.csv) and
    /// the protocol's splits (splits.csv) to --out, for peers such as scikit-learn.
    Features(StageArgs),
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
        /// Output CSV: source_id,p_<class 0>,p_<class 1>,predicted_class.
        #[arg(long)]
        out: PathBuf,
    },
    /// Compare predictions with published ones source by source (see classify::compare).
    Compare {
        /// Our table (unassociated_predictions.csv or bcu_predictions.csv of a cv run).
        #[arg(long)]
        ours: PathBuf,
        /// Their table, e.g. data/reference/manconi2021/finke2021_unassociated_classes.csv.
        #[arg(long)]
        theirs: PathBuf,
        /// Their column: a class column (class_dnn ...) or a probability (mean_p_FSRQ).
        #[arg(long)]
        column: String,
        /// Output JSON report.
        #[arg(long)]
        out: PathBuf,
    },
    /// The Bayesian network's spread against its mean score (ICRC 2021 Fig. 3) for one or
    /// more `classify cv` runs of the bnn variant, e.g. no, minority and fixed SMOTE.
    SpreadFigure {
        /// `LABEL=DIR`: a label and the output directory of a bnn `classify cv` run.
        #[arg(long = "run", required = true)]
        runs: Vec<String>,
        /// Directory for bnn_spread_vs_mean.{png,svg,csv}.
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
    /// The burn backend of the networks (sets `train.device`): flex (default), tch-cpu,
    /// tch-cuda[:N], cuda[:N]; tch and cuda need the cargo features of those names.
    #[arg(long, value_name = "DEVICE")]
    device: Option<gammabench::compute::Backend>,
}

#[derive(Args, Clone)]
struct ExportModelsArgs {
    /// Experiment config (TOML) or directory whose grid trained the networks.
    config: PathBuf,
    /// Override a config key (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Folder receiving one model folder per network (`segmentation-unet`, `centroid-net-unet`).
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Clone)]
struct DetectArgs {
    /// Model directory written by `train` or `export-models`.
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
    /// The head to run (default: the one the model was trained for). UNEK and LoG share the
    /// segmentation network; TS needs none.
    #[arg(long, value_enum)]
    head: Option<gammabench::config::DetectorVariant>,
    /// Override a `detect.*` key (or `seed`) of the model's config (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// The burn backend of the networks (sets `train.device`): flex (default), tch-cpu,
    /// tch-cuda[:N], cuda[:N]; tch and cuda need the cargo features of those names.
    #[arg(long, value_name = "DEVICE")]
    device: Option<gammabench::compute::Backend>,
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

fn run(cli: Cli) -> Result<()> {
    if let Some(n) = cli.threads {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build_global()
            .map_err(|e| Error::Internal(e.to_string()))?;
    }
    let store = Store::new(&cli.store);
    let root = store.root().to_path_buf();
    use gammabench::{challenge, classify, detect, patches, pipeline, score};
    match cli.command {
        Command::Catalog(a) => stage_verb(&store, "catalog", a),
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
            let r = patches::published::import(
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
            let n = patches::published::export(&patches_dir, &out, force)?;
            log::info!("exported {n} patches -> {}", out.display());
            Ok(())
        }
        Command::Patches(PatchesArgs { stage: a, .. }) => stage_verb(&store, "patches", a),
        Command::Stage { name, args } => stage_verb(&store, &name, args),
        Command::Stages => {
            for st in pipeline::STAGES {
                println!("{:<9} {}", st.name(), st.about());
                println!("{:<9} writes {}", "", st.outputs().join(", "));
            }
            Ok(())
        }
        Command::Config(a) => {
            for p in &config::load(a.config.as_deref(), &a.set)? {
                if !p.label.is_empty() {
                    println!("# grid point: {}", p.label);
                }
                print!("{}", gammabench::formats::to_toml_pretty(&p.config)?);
            }
            Ok(())
        }
        Command::Run(a) => pipeline::cli::run(
            &store,
            &pipeline::cli::RunOptions {
                config: a.config,
                set: with_device(a.set, a.device, &["train.device", "classify.device"]),
                dry_run: a.dry_run,
                force: a.force,
                jobs: a.jobs,
                only: a.only,
                emit: a.emit.map(|e| (e[0].clone(), PathBuf::from(&e[1]))),
                report: a.report,
                slurm: pipeline::config::SlurmConfig {
                    partition: a.partition,
                    account: a.account,
                    time: a.time,
                    mem: a.mem,
                    cpus_per_task: a.cpus_per_task,
                    gpus_per_task: a.gpus_per_task,
                    setup: a.setup,
                    binary: a.binary,
                    ..Default::default()
                },
            },
        ),
        Command::Report(a) => pipeline::cli::report(
            &store,
            a.config.as_deref(),
            &a.set,
            &a.out,
            a.name.as_deref(),
            &a.figures_of,
        ),
        Command::Nightly(a) => pipeline::cli::nightly(
            &store,
            &pipeline::cli::NightlyOptions {
                config: a.config,
                baseline: a.baseline,
                out: a.out,
                benches: a.benches,
                update_baseline: a.update_baseline,
                jobs: a.jobs,
                set: a.set,
                history: a.history,
                window: a.window,
                no_window: a.no_window,
            },
        ),
        Command::Reproduce(a) => pipeline::cli::reproduce(&store, &a.manifest, a.rel_tol),
        Command::Verify => gammabench::store::verify_store(&store),
        Command::Score(ScoreCmd::Detections {
            truth,
            predictions,
            out,
            patches,
            mode,
            no_figures,
            cfg,
        }) => score::cli::detections(
            &cfg.load()?,
            &truth,
            &predictions,
            patches.as_deref(),
            &out,
            mode.as_deref(),
            !no_figures,
        ),
        Command::Score(ScoreCmd::PaperTables { evaluation, out }) => {
            score::cli::paper_tables(&evaluation, &out)
        }
        Command::Score(ScoreCmd::Classification {
            predictions,
            out,
            no_figures,
            cfg,
        }) => score::cli::classification(&cfg.load()?, &predictions, &out, !no_figures),
        Command::Challenge(ChallengeCmd::Build {
            patches_dir,
            out,
            allow_known_sky,
            cfg,
        }) => challenge::cli::build(&cfg.load()?, patches_dir.as_deref(), &out, allow_known_sky),
        Command::Serve {
            challenge: dir,
            addr,
            db,
            cfg,
        } => challenge::cli::serve(&root, &cfg.load()?, &dir, &addr, db.as_deref()),
        Command::Challenge(ChallengeCmd::Status { server, token, id }) => {
            challenge::cli::status_remote(&server, &token, id)
        }
        Command::Challenge(ChallengeCmd::Team(t)) => match t {
            TeamCmd::Add {
                name,
                admin,
                db,
                cfg,
            } => challenge::cli::team_add(
                &challenge::cli::db_path(&root, db.as_deref(), &cfg.load()?),
                &name,
                admin,
            ),
            TeamCmd::List { db, cfg } => challenge::cli::team_list(&challenge::cli::db_path(
                &root,
                db.as_deref(),
                &cfg.load()?,
            )),
            TeamCmd::Revoke { name, db, cfg } => challenge::cli::team_revoke(
                &challenge::cli::db_path(&root, db.as_deref(), &cfg.load()?),
                &name,
            ),
        },
        Command::Challenge(ChallengeCmd::Validate {
            submission,
            patches,
            cfg,
        }) => challenge::cli::validate(&cfg.load()?, &submission, patches.as_deref()),
        Command::Challenge(ChallengeCmd::Submit {
            team,
            server,
            token,
            wait,
            submission,
            private,
            db,
            cfg,
        }) => match (server, team) {
            (Some(server), _) => {
                let token = token.ok_or_else(|| {
                    Error::Usage("--server needs --token (or GAMMABENCH_TOKEN)".into())
                })?;
                challenge::cli::submit_remote(&server, &token, &submission, wait)
            }
            (None, Some(team)) => challenge::cli::submit(
                &root,
                &cfg.load()?,
                &team,
                &submission,
                private.as_deref(),
                db.as_deref(),
            ),
            (None, None) => Err(Error::Usage("give --team (local) or --server".into())),
        },
        Command::Challenge(ChallengeCmd::Leaderboard {
            private,
            out,
            server,
            token,
            db,
            cfg,
        }) => match (server, out) {
            (Some(server), _) => {
                challenge::cli::leaderboard_remote(&server, token.as_deref(), private)
            }
            (None, Some(out)) => {
                challenge::cli::leaderboard(&root, &cfg.load()?, private, &out, db.as_deref())
            }
            (None, None) => Err(Error::Usage("give --out DIR or --server URL".into())),
        },
        Command::Classify(ClassifyCommand::Cv(a)) => {
            let out = a
                .out
                .ok_or_else(|| Error::Usage("classify cv needs --out DIR".into()))?;
            classify::cli::cv(&config::load(a.config.as_deref(), &a.set)?, &out)
        }
        Command::Classify(ClassifyCommand::Features(a)) => {
            let out = a
                .out
                .ok_or_else(|| Error::Usage("classify features needs --out DIR".into()))?;
            classify::cli::features(&config::load(a.config.as_deref(), &a.set)?, &out)
        }
        Command::Classify(ClassifyCommand::Predict {
            model,
            input,
            use_glat,
            out,
        }) => classify::cli::predict(&model, &input, use_glat, &out),
        Command::Classify(ClassifyCommand::Compare {
            ours,
            theirs,
            column,
            out,
        }) => {
            let r = classify::compare::compare(&ours, &theirs, &column, &out)?;
            println!(
                "{}",
                serde_json::to_string_pretty(&r).map_err(|e| Error::Internal(e.to_string()))?
            );
            Ok(())
        }
        Command::Classify(ClassifyCommand::SpreadFigure { runs, out }) => {
            let runs = runs
                .iter()
                .map(|r| {
                    r.split_once('=')
                        .map(|(l, d)| (l.to_string(), PathBuf::from(d)))
                        .ok_or_else(|| Error::Usage(format!("--run {r}: expected LABEL=DIR")))
                })
                .collect::<std::result::Result<Vec<_>, _>>()?;
            classify::uncertainty::spread_figure(&runs, &out)
        }
        Command::Train(a) => detect::cli::train(
            &config::load(
                a.config.as_deref(),
                &with_device(a.set, a.device, &["train.device"]),
            )?,
            a.patches.as_deref(),
            &a.out,
            a.resume,
        ),
        Command::Detect(a) => detect::cli::detect(
            &store,
            &a.model,
            &a.patches,
            &a.out,
            a.max_patches,
            a.head,
            &with_device(a.set, a.device, &["train.device"]),
        ),
        Command::ExportModels(a) => detect::export::export(
            &store,
            &pipeline::load_points(Some(&a.config), &a.set)?,
            &a.out,
        )
        .map(|_| ()),
        Command::Combine(a) => detect::cli::combine(
            &a.a,
            &a.b,
            matches!(a.mode, CombineMode::Union),
            a.radius_deg,
            &a.out,
        ),
        Command::Fidelity(a) => {
            patches::fidelity::run_cli(&a.patches, a.reference.as_deref(), &a.out, a.strict)
        }
    }
}

/// A registered stage's verb on every grid point of `--config` / `--set`.
fn stage_verb(store: &Store, name: &str, a: StageArgs) -> Result<()> {
    let points = config::load(a.config.as_deref(), &a.set)?;
    gammabench::pipeline::run_stage_verb(store, name, &points, a.force, a.out.as_deref())?;
    Ok(())
}

/// `--set` overrides with `--device` appended for each of `keys` (a later `--set` cannot undo
/// an explicit `--device`).
fn with_device(
    mut set: Vec<String>,
    device: Option<gammabench::compute::Backend>,
    keys: &[&str],
) -> Vec<String> {
    if let Some(d) = device {
        set.extend(keys.iter().map(|k| format!("{k}=\"{d}\"")));
    }
    set
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
