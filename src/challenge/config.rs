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
    /// Secret seed of the Poisson draws; kept in the private bundle only. Default: the
    /// experiment seed mixed with the string `challenge/secret`.
    #[serde(default)]
    pub secret_seed: Option<u64>,
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
            daily_limit: default_daily_limit(),
            max_file_bytes: default_max_bytes(),
            max_rows: default_max_rows(),
            database: None,
            private_dir: None,
        }
    }
}

impl ChallengeConfig {
    /// Range checks.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
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
        Ok(())
    }
}
