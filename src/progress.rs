//! Progress bars and log lines that do not break each other on a terminal.
//!
//! Every bar lives in one process-wide [`indicatif::MultiProgress`]; the logger
//! ([`init_logging`]) prints each log line through it (indicatif-log-bridge), so a line is
//! written above the bars instead of through the middle of one. Off a terminal indicatif
//! draws nothing and the log lines go to stderr as usual.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::sync::OnceLock;

static MULTI: OnceLock<MultiProgress> = OnceLock::new();
static QUIET: OnceLock<bool> = OnceLock::new();

fn multi() -> &'static MultiProgress {
    MULTI.get_or_init(MultiProgress::new)
}

/// Installs the logger at `level` (error only when `quiet`), printing through the bars.
pub fn init_logging(level: log::LevelFilter, quiet: bool) {
    let _ = QUIET.set(quiet);
    let logger = env_logger::Builder::new()
        .filter_level(level)
        .format_target(false)
        .format_timestamp(None)
        .build();
    let max = logger.filter();
    if indicatif_log_bridge::LogWrapper::new(multi().clone(), logger)
        .try_init()
        .is_ok()
    {
        log::set_max_level(max);
    }
}

/// True when bars are hidden (`-q`).
pub fn quiet() -> bool {
    QUIET.get().copied().unwrap_or(false)
}

/// A bar for one piece of work (a stage, a training run): `msg` on the left, position,
/// length, elapsed and ETA; hidden under `-q`.
pub fn bar(msg: &str) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let pb = multi().add(ProgressBar::new(0));
    pb.set_style(
        ProgressStyle::with_template(
            "{prefix:>12} [{bar:30}] {pos}/{len} {elapsed} (eta {eta}) {msg}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    pb.set_prefix(msg.to_string());
    pb
}

/// The bar of a whole plan: stages done out of the plan's stages.
pub fn stages_bar(n: u64) -> ProgressBar {
    if quiet() {
        return ProgressBar::hidden();
    }
    let pb = multi().add(ProgressBar::new(n));
    pb.set_style(
        ProgressStyle::with_template("stages {pos}/{len} [{bar:30}] {elapsed} (eta {eta}) {msg}")
            .expect("template")
            .progress_chars("=> "),
    );
    pb
}
