//! The `[nightly]` section: per-metric rules of the nightly benchmark comparison.

use crate::config::{Invalid, invalid};
use serde::{Deserialize, Serialize};

/// Nightly benchmark: per-metric comparison rules (first match by substring wins).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NightlyConfig {
    #[serde(default)]
    pub rules: Vec<NightlyRule>,
    /// Rolling window: regressions are judged against the median of each metric over the
    /// last `window` nights of `history.jsonl.gz` (asv's model; 7 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<usize>,
}

/// How one family of metrics is compared with the baseline.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NightlyRule {
    /// Substring of the metric name (`score/`, `purity`, `wall_time_s`...).
    pub pattern: String,
    /// `higher_is_better`, `lower_is_better` or `exact`.
    pub direction: String,
    /// Allowed relative change.
    #[serde(default)]
    pub rel_tol: f64,
    /// Allowed absolute change.
    #[serde(default)]
    pub abs_tol: f64,
}

impl NightlyConfig {
    /// Range checks of the nightly rules.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        if self.window == Some(0) {
            return Err(invalid("nightly.window", "must be >= 1 (nights)"));
        }
        for (i, r) in self.rules.iter().enumerate() {
            if !["higher_is_better", "lower_is_better", "exact"].contains(&r.direction.as_str()) {
                return Err(invalid(
                    &format!("nightly.rules[{i}].direction"),
                    "expected higher_is_better, lower_is_better or exact",
                ));
            }
            if !(r.rel_tol >= 0.0 && r.abs_tol >= 0.0) {
                return Err(invalid(
                    &format!("nightly.rules[{i}]"),
                    "tolerances must be >= 0",
                ));
            }
        }
        Ok(())
    }
}
