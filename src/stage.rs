//! The one interface every stage of the harness implements, and that the command line, the
//! experiment runner ([`crate::pipeline`]) and the report all go through.
//!
//! A stage is a pure function of its config slice, its seed and its inputs' outputs: its
//! [`Stage::key`] hashes exactly those, so the whole plan of a grid (what is cached, what
//! runs) is known before anything runs, and the store keeps one output per key. A stage
//! names the stages it reads ([`Stage::inputs`]), each with the config that stage runs
//! under (the training sky of a detector, the background model of the TS baseline), so the
//! runner builds the DAG without knowing any stage by name.
//!
//! Adding a stage (an importer, a fidelity report, a server's scorer) is one module with a
//! unit struct implementing [`Stage`] and one line in [`crate::pipeline::STAGES`].

use crate::config::ExperimentConfig;
use crate::error::Result;
use crate::store::{StageKey, StageOutput, Store};
use std::sync::Arc;

/// A stage this one reads: its name, the config it runs under and its label in the plan.
#[derive(Clone)]
pub struct Input {
    /// The input stage's [`Stage::name`].
    pub stage: &'static str,
    /// The config the input stage runs under (often the same grid point's).
    pub config: Arc<ExperimentConfig>,
    /// Its label in the plan and the report (the grid point, or e.g. `train-sky F0-B1`).
    pub label: String,
}

impl Input {
    /// An input that runs under the same config and label as the stage reading it.
    pub fn same(stage: &'static str, cfg: &Arc<ExperimentConfig>, label: &str) -> Self {
        Self {
            stage,
            config: cfg.clone(),
            label: label.to_string(),
        }
    }
}

/// One stage of the harness.
pub trait Stage: Send + Sync {
    /// The stage's name: its `run.stages` spelling, its folder in the store.
    fn name(&self) -> &'static str;
    /// One line on what it computes (shown by `gammabench stages` and in the report).
    fn about(&self) -> &'static str;
    /// The user-facing files its output directory holds.
    fn outputs(&self) -> &'static [&'static str];
    /// The stages it reads for `cfg`, in the order they should be planned.
    fn inputs(&self, cfg: &Arc<ExperimentConfig>, label: &str) -> Result<Vec<Input>>;
    /// Content key: config slice, seed and the inputs' hashes.
    fn key(&self, cfg: &ExperimentConfig) -> Result<StageKey>;
    /// Computes the output (or reuses the stored one unless `force`), running missing
    /// inputs first.
    fn run(
        &self,
        store: &Store,
        cfg: &ExperimentConfig,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<StageOutput>;
    /// Label of its node in the plan, from the grid point's label.
    fn label(&self, cfg: &ExperimentConfig, point_label: &str) -> String {
        let _ = cfg;
        point_label.to_string()
    }
    /// One line for the terminal on what a stored output holds.
    fn describe(&self, out: &StageOutput) -> String;
}
