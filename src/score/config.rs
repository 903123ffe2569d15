//! The `[score]` section: how detections are matched and curves and S90 are read.

use crate::config::{Invalid, invalid};
use serde::{Deserialize, Serialize};

/// How detections are matched to true sources.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// The published per-patch greedy scorer of Panes et al. (2021).
    Legacy,
    /// One-to-one across the whole sky (see `score::matching`).
    Global,
}

/// How S90 is read from the purity and completeness curves (see `score::detection`).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum S90Rule {
    /// Purity and completeness crossings read separately, S90 the larger; a bin below the
    /// level vetoes a crossing only when it is significantly below (its Wilson upper bound
    /// at `s90_veto_z` is under the level).
    #[default]
    Crossing,
    /// The rule before: min(purity, completeness) >= level in every bin above.
    AllBinsAbove,
}

/// Scoring configuration (`[score]`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScoreConfig {
    /// Match radius in deg (great-circle); Panes et al. 2021 use 0.3 deg.
    #[serde(default = "default_match_radius")]
    pub match_radius_deg: f64,
    /// `legacy` or `global`.
    #[serde(default = "default_match_mode")]
    pub mode: MatchMode,
    /// Log bins per decade of the curve axes before merging.
    #[serde(default = "default_bins_per_decade")]
    pub bins_per_decade: usize,
    /// Adjacent bins are merged until each holds at least this many items.
    #[serde(default = "default_min_count")]
    pub min_count_per_bin: usize,
    /// Purity and completeness threshold of S90.
    #[serde(default = "default_s90_level")]
    pub s90_level: f64,
    /// `crossing` (default) or `all_bins_above` (the earlier rule).
    #[serde(default)]
    pub s90_rule: S90Rule,
    /// z of the one-sided Wilson bound that decides whether a bin below the level vetoes
    /// an S90 crossing (3: a bin vetoes only when it is 3 sigma below the level).
    #[serde(default = "default_s90_veto_z")]
    pub s90_veto_z: f64,
    /// Bootstrap replicas of the S90 interval (0 disables it).
    #[serde(default = "default_bootstrap")]
    pub bootstrap_reps: usize,
    /// Central coverage of the bootstrap interval.
    #[serde(default = "default_ci")]
    pub bootstrap_ci: f64,
    /// z of the Wilson score interval (1 = 68.27 %, like the paper's 1-sigma errors).
    #[serde(default = "default_wilson_z")]
    pub wilson_z: f64,
    /// |b| in deg separating the high- and low-latitude curves.
    #[serde(default = "default_lat_cut")]
    pub latitude_cut_deg: f64,
    /// Equal-width bins of the expected calibration error.
    #[serde(default = "default_ece_bins")]
    pub ece_bins: usize,
}

fn default_match_radius() -> f64 {
    0.3
}
fn default_match_mode() -> MatchMode {
    MatchMode::Global
}
fn default_bins_per_decade() -> usize {
    4
}
fn default_min_count() -> usize {
    10
}
fn default_s90_level() -> f64 {
    0.9
}
fn default_s90_veto_z() -> f64 {
    3.0
}
fn default_bootstrap() -> usize {
    200
}
fn default_ci() -> f64 {
    0.9
}
fn default_wilson_z() -> f64 {
    1.0
}
fn default_lat_cut() -> f64 {
    20.0
}
fn default_ece_bins() -> usize {
    15
}

impl Default for ScoreConfig {
    fn default() -> Self {
        Self {
            match_radius_deg: default_match_radius(),
            mode: default_match_mode(),
            bins_per_decade: default_bins_per_decade(),
            min_count_per_bin: default_min_count(),
            s90_level: default_s90_level(),
            s90_rule: S90Rule::default(),
            s90_veto_z: default_s90_veto_z(),
            bootstrap_reps: default_bootstrap(),
            bootstrap_ci: default_ci(),
            wilson_z: default_wilson_z(),
            latitude_cut_deg: default_lat_cut(),
            ece_bins: default_ece_bins(),
        }
    }
}

impl ScoreConfig {
    /// Range checks.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if !(self.match_radius_deg.is_finite()
            && self.match_radius_deg > 0.0
            && self.match_radius_deg <= 10.0)
        {
            return Err(invalid("score.match_radius_deg", "must be in (0, 10] deg"));
        }
        if !(1..=50).contains(&self.bins_per_decade) {
            return Err(invalid("score.bins_per_decade", "must be between 1 and 50"));
        }
        if !(1..=100_000).contains(&self.min_count_per_bin) {
            return Err(invalid(
                "score.min_count_per_bin",
                "must be between 1 and 100000",
            ));
        }
        if !(self.s90_level > 0.0 && self.s90_level < 1.0) {
            return Err(invalid("score.s90_level", "must be in (0, 1)"));
        }
        if !(self.s90_veto_z.is_finite() && self.s90_veto_z >= 0.0 && self.s90_veto_z <= 10.0) {
            return Err(invalid("score.s90_veto_z", "must be in [0, 10]"));
        }
        if self.bootstrap_reps > 100_000 {
            return Err(invalid("score.bootstrap_reps", "must be at most 100000"));
        }
        if !(self.bootstrap_ci > 0.0 && self.bootstrap_ci < 1.0) {
            return Err(invalid("score.bootstrap_ci", "must be in (0, 1)"));
        }
        if !(self.wilson_z.is_finite() && self.wilson_z > 0.0 && self.wilson_z <= 10.0) {
            return Err(invalid("score.wilson_z", "must be in (0, 10]"));
        }
        if !(self.latitude_cut_deg >= 0.0 && self.latitude_cut_deg < 90.0) {
            return Err(invalid("score.latitude_cut_deg", "must be in [0, 90) deg"));
        }
        if !(1..=1000).contains(&self.ece_bins) {
            return Err(invalid("score.ece_bins", "must be between 1 and 1000"));
        }
        Ok(())
    }
}
