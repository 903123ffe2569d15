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
    /// Cluster settings of the scripts `run --emit slurm` writes (flags override them).
    /// Not part of any stage's key: where a stage runs does not change what it computes.
    #[serde(default, skip_serializing_if = "SlurmConfig::is_empty")]
    pub slurm: SlurmConfig,
}

/// `[run.slurm]`: what a cluster needs in the emitted job scripts. Every field is optional;
/// the defaults are 8 CPUs, 32G and 24:00:00 per task, no partition, account or GPUs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmConfig {
    /// `--partition` of every array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<String>,
    /// `--account` of every array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// `--time` per task (`HH:MM:SS` or `D-HH:MM:SS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<String>,
    /// `--mem` per task (`32G`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem: Option<String>,
    /// `--cpus-per-task` (also gammabench's `--threads`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus_per_task: Option<usize>,
    /// `--gpus-per-task` of the arrays of `gpu_stages` (the others get none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpus_per_task: Option<usize>,
    /// Stages that get the GPUs (default `["train"]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_stages: Option<Vec<String>>,
    /// A shell line run before gammabench in every task (`module load cuda/12; source
    /// ~/venv/bin/activate`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    /// Path of the gammabench binary on the cluster (default: the emitting binary's path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary: Option<String>,
    /// Extra `#SBATCH` options, verbatim (`--qos=long`, `--constraint=a100`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra: Vec<String>,
}

impl SlurmConfig {
    /// True when nothing is set (the section is left out of the printed config).
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// `other`'s set fields over `self`'s (flags over config).
    pub fn overridden_by(&self, other: &SlurmConfig) -> SlurmConfig {
        let mut extra = self.extra.clone();
        extra.extend(other.extra.iter().cloned());
        SlurmConfig {
            partition: other.partition.clone().or_else(|| self.partition.clone()),
            account: other.account.clone().or_else(|| self.account.clone()),
            time: other.time.clone().or_else(|| self.time.clone()),
            mem: other.mem.clone().or_else(|| self.mem.clone()),
            cpus_per_task: other.cpus_per_task.or(self.cpus_per_task),
            gpus_per_task: other.gpus_per_task.or(self.gpus_per_task),
            gpu_stages: other.gpu_stages.clone().or_else(|| self.gpu_stages.clone()),
            setup: other.setup.clone().or_else(|| self.setup.clone()),
            binary: other.binary.clone().or_else(|| self.binary.clone()),
            extra,
        }
    }
}

fn default_stages() -> Vec<String> {
    vec!["catalog".into()]
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            stages: default_stages(),
            slurm: SlurmConfig::default(),
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
        let sl = &self.slurm;
        if sl.cpus_per_task == Some(0) {
            return Err(invalid("run.slurm.cpus_per_task", "must be >= 1"));
        }
        for st in sl.gpu_stages.iter().flatten() {
            if !STAGE_NAMES.contains(&st.as_str()) {
                return Err(invalid(
                    "run.slurm.gpu_stages",
                    format!("unknown stage `{st}` (known: {})", STAGE_NAMES.join(", ")),
                ));
            }
        }
        for (field, v) in [
            ("time", &sl.time),
            ("mem", &sl.mem),
            ("partition", &sl.partition),
        ] {
            if let Some(v) = v
                && (v.is_empty() || v.chars().any(|c| c.is_whitespace()))
            {
                return Err(invalid(
                    &format!("run.slurm.{field}"),
                    format!("`{v}`: must be one word (Slurm reads it as an option value)"),
                ));
            }
        }
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
