//! The `[challenge]` section: the data-challenge kit's limits and files.

use crate::config::{Invalid, invalid};
use serde::{Deserialize, Serialize};

/// Data-challenge configuration (`[challenge]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ChallengeConfig {
    /// Directory of the patches stage output (patches.csv, truth.csv, patches_<component>.npy).
    #[serde(default)]
    pub patches_dir: Option<std::path::PathBuf>,
    /// Secret seed of the Poisson draws and of the public/private split; kept in the private
    /// bundle only. `challenge build` needs it set explicitly, to a value not shipped in
    /// `configs/` (a derived default would be recomputable by anyone with the open code).
    #[serde(default)]
    pub secret_seed: Option<u64>,
    /// Patches of the labelled training set that `challenge build` adds to the public bundle
    /// (an independent realisation of the test sky's model, seeded from the secret seed,
    /// with its truth); 0 builds no training set.
    #[serde(default = "default_train_patches")]
    pub train_patches: usize,
    /// Submissions per team per UTC day.
    #[serde(default = "default_daily_limit")]
    pub daily_limit: u32,
    /// Largest accepted submission file, bytes.
    #[serde(default = "default_max_bytes")]
    pub max_file_bytes: u64,
    /// Largest accepted number of data rows.
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    /// Leaderboard database (SQLite). Default: `<store>/challenge/leaderboard.sqlite`.
    #[serde(default)]
    pub database: Option<std::path::PathBuf>,
    /// Private bundle directory used by `submit` (truth and patch list).
    #[serde(default)]
    pub private_dir: Option<std::path::PathBuf>,
    /// `serve`: scoring workers (jobs scored at once).
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// `serve`: time limit of one scoring job, seconds; a job over it ends as `failed` and
    /// does not count against the daily limit.
    #[serde(default = "default_job_timeout")]
    pub job_timeout_s: f64,
    /// `serve`: time limit of one request (reading the body included), seconds; slower
    /// clients get 408.
    #[serde(default = "default_request_timeout")]
    pub request_timeout_s: f64,
    /// `serve`: time limit for a client to send a request's head (request line and
    /// headers), seconds, counted from the moment the connection is ready for a request;
    /// the connection is closed when it runs out (slow or stalled clients, idle keep-alive
    /// connections).
    #[serde(default = "default_header_timeout")]
    pub header_timeout_s: f64,
    /// `serve`: API requests per minute per token.
    #[serde(default = "default_rate_token")]
    pub rate_per_minute_token: u32,
    /// `serve`: requests per minute per client address (all routes).
    #[serde(default = "default_rate_address")]
    pub rate_per_minute_address: u32,
}

fn default_train_patches() -> usize {
    200
}
fn default_workers() -> usize {
    2
}
fn default_job_timeout() -> f64 {
    300.0
}
fn default_request_timeout() -> f64 {
    60.0
}
fn default_header_timeout() -> f64 {
    10.0
}
fn default_rate_token() -> u32 {
    30
}
fn default_rate_address() -> u32 {
    300
}

fn default_daily_limit() -> u32 {
    5
}
fn default_max_bytes() -> u64 {
    50 * 1024 * 1024
}
fn default_max_rows() -> usize {
    1_000_000
}

impl Default for ChallengeConfig {
    fn default() -> Self {
        Self {
            patches_dir: None,
            secret_seed: None,
            train_patches: default_train_patches(),
            daily_limit: default_daily_limit(),
            max_file_bytes: default_max_bytes(),
            max_rows: default_max_rows(),
            database: None,
            private_dir: None,
            workers: default_workers(),
            job_timeout_s: default_job_timeout(),
            request_timeout_s: default_request_timeout(),
            header_timeout_s: default_header_timeout(),
            rate_per_minute_token: default_rate_token(),
            rate_per_minute_address: default_rate_address(),
        }
    }
}

impl ChallengeConfig {
    /// Range checks.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if self.train_patches > 100_000 {
            return Err(invalid(
                "challenge.train_patches",
                "must be between 0 and 100000",
            ));
        }
        if !(1..=10_000).contains(&self.daily_limit) {
            return Err(invalid(
                "challenge.daily_limit",
                "must be between 1 and 10000",
            ));
        }
        if !(64..=(1u64 << 34)).contains(&self.max_file_bytes) {
            return Err(invalid(
                "challenge.max_file_bytes",
                "must be between 64 bytes and 16 GiB",
            ));
        }
        if !(1..=100_000_000).contains(&self.max_rows) {
            return Err(invalid("challenge.max_rows", "must be between 1 and 1e8"));
        }
        if !(1..=256).contains(&self.workers) {
            return Err(invalid("challenge.workers", "must be between 1 and 256"));
        }
        for (key, v) in [
            ("challenge.job_timeout_s", self.job_timeout_s),
            ("challenge.request_timeout_s", self.request_timeout_s),
            ("challenge.header_timeout_s", self.header_timeout_s),
        ] {
            if !(v > 0.0 && v <= 86_400.0) {
                return Err(invalid(key, "must be above 0 and at most 86400 seconds"));
            }
        }
        for (key, v) in [
            (
                "challenge.rate_per_minute_token",
                self.rate_per_minute_token,
            ),
            (
                "challenge.rate_per_minute_address",
                self.rate_per_minute_address,
            ),
        ] {
            if !(1..=1_000_000).contains(&v) {
                return Err(invalid(key, "must be between 1 and 1000000"));
            }
        }
        Ok(())
    }
}
