//! The `[run]` section: which stages the experiment runner plans for every grid point.

use crate::config::{Invalid, invalid};
use serde::{Deserialize, Serialize};

/// The experiment runner's section.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Stages to plan for every grid point, upstream stages included automatically.
    #[serde(default = "default_stages")]
    pub stages: Vec<String>,
}

fn default_stages() -> Vec<String> {
    vec!["catalog".into()]
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            stages: default_stages(),
        }
    }
}

/// The names of the stages registered in [`super::STAGES`], in the same order (the config
/// layer cannot import the stages themselves; a test keeps the two lists equal).
pub const STAGE_NAMES: &[&str] = &[
    "catalog",
    "diffuse",
    "sky",
    "patches",
    "train",
    "infer",
    "threshold",
    "detect",
    "score",
    "classify",
];

impl RunConfig {
    /// Every listed stage must be one the runner knows.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        for st in &self.stages {
            if !STAGE_NAMES.contains(&st.as_str()) {
                return Err(invalid(
                    "run.stages",
                    format!("unknown stage `{st}` (known: {})", STAGE_NAMES.join(", ")),
                ));
            }
        }
        Ok(())
    }
}
