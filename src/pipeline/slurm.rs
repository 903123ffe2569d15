//! Slurm job arrays for a plan: one array per dependency level, chained with
//! `--dependency=afterok`, each task running one stage (`gammabench run ... --only HASH`)
//! against the same content-addressed store on a shared filesystem.

use super::plan::Plan;
use crate::error::Result;
use crate::formats::atomic_write;
use crate::store::Store;
use std::path::Path;

/// Options of the emitted scripts.
#[derive(Debug, Clone)]
pub struct SlurmOptions {
    /// The `gammabench run` arguments that rebuild the same plan (config and `--set`s).
    pub run_args: Vec<String>,
    /// Path of the gammabench binary on the cluster.
    pub binary: String,
    /// CPUs per task.
    pub cpus_per_task: usize,
    /// Wall-time limit per task (`HH:MM:SS`).
    pub time_limit: String,
    /// Memory per task (`16G`).
    pub mem: String,
    /// `--partition`, when the cluster needs one.
    pub partition: Option<String>,
    /// `--account`, when the cluster needs one.
    pub account: Option<String>,
    /// `--gpus-per-task` of the arrays of `gpu_stages`.
    pub gpus_per_task: Option<usize>,
    /// Stages whose arrays get the GPUs.
    pub gpu_stages: Vec<String>,
    /// A shell line run before gammabench in every task (modules, environments).
    pub setup: Option<String>,
    /// Extra `#SBATCH` options, verbatim.
    pub extra: Vec<String>,
}

impl SlurmOptions {
    /// The settings of `[run.slurm]` (already merged with the flags) with the defaults: 8
    /// CPUs, 32G, 24 h per task, GPUs for `train`.
    pub fn from_config(
        c: &super::config::SlurmConfig,
        run_args: Vec<String>,
        binary: String,
    ) -> Self {
        Self {
            run_args,
            binary: c.binary.clone().unwrap_or(binary),
            cpus_per_task: c.cpus_per_task.unwrap_or(8),
            time_limit: c.time.clone().unwrap_or_else(|| "24:00:00".into()),
            mem: c.mem.clone().unwrap_or_else(|| "32G".into()),
            partition: c.partition.clone(),
            account: c.account.clone(),
            gpus_per_task: c.gpus_per_task.filter(|g| *g > 0),
            gpu_stages: c.gpu_stages.clone().unwrap_or_else(|| vec!["train".into()]),
            setup: c.setup.clone().filter(|s| !s.trim().is_empty()),
            extra: c.extra.clone(),
        }
    }
}

fn shell_quote(s: &str) -> String {
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+[]@".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// Writes, per dependency level, one job array of the stages that need no GPU
/// (`level_<k>.{txt,sbatch}`) and, when GPUs are asked for, one of the GPU stages
/// (`level_<k>_gpu.{txt,sbatch}`, with `--gpus-per-task`); and `submit.sh`, which submits them
/// in order, each level's arrays depending (`afterok`) on every array of the level before.
/// Stages already in the store are left out. Returns the number of arrays written.
pub fn emit(plan: &Plan, store: &Store, dir: &Path, opts: &SlurmOptions) -> Result<usize> {
    let levels = plan.levels();
    let max_level = levels.iter().copied().max().unwrap_or(0);
    let store_abs =
        std::path::absolute(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
    let run_args: Vec<String> = opts.run_args.iter().map(|a| shell_quote(a)).collect();
    std::fs::create_dir_all(dir).map_err(|e| crate::Error::io(dir, e))?;
    let mut submit = String::from(
        "#!/usr/bin/env bash\n# Submits the gammabench plan level by level; each level waits for every array of the previous one.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\nprev=\"\"\n",
    );
    let mut written = 0;
    for level in 0..=max_level {
        let mut level_jobs = Vec::new();
        for gpu in [false, true] {
            let hashes: Vec<String> = plan
                .nodes()
                .iter()
                .zip(&levels)
                .filter(|(n, l)| {
                    **l == level
                        && (opts.gpus_per_task.is_some() && opts.gpu_stages.contains(&n.stage))
                            == gpu
                        && store.lookup(&n.key).is_none()
                })
                .map(|(n, _)| n.hash())
                .collect();
            if hashes.is_empty() {
                continue;
            }
            let name = if gpu {
                format!("level_{level}_gpu")
            } else {
                format!("level_{level}")
            };
            atomic_write(
                &dir.join(format!("{name}.txt")),
                (hashes.join("\n") + "\n").as_bytes(),
            )?;
            let mut s = String::new();
            s.push_str("#!/usr/bin/env bash\n");
            s.push_str(&format!("#SBATCH --job-name=gammabench-{name}\n"));
            s.push_str(&format!("#SBATCH --array=0-{}\n", hashes.len() - 1));
            s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus_per_task));
            s.push_str(&format!("#SBATCH --time={}\n", opts.time_limit));
            s.push_str(&format!("#SBATCH --mem={}\n", opts.mem));
            if let Some(p) = &opts.partition {
                s.push_str(&format!("#SBATCH --partition={p}\n"));
            }
            if let Some(a) = &opts.account {
                s.push_str(&format!("#SBATCH --account={a}\n"));
            }
            if gpu && let Some(g) = opts.gpus_per_task {
                s.push_str(&format!("#SBATCH --gpus-per-task={g}\n"));
            }
            s.push_str(&format!("#SBATCH --output=logs/{name}_%a.out\n"));
            for e in &opts.extra {
                s.push_str(&format!("#SBATCH {e}\n"));
            }
            s.push_str("set -euo pipefail\n");
            if let Some(setup) = &opts.setup {
                s.push_str("# environment set-up ([run.slurm] setup / --setup)\n");
                s.push_str(setup.trim_end());
                s.push('\n');
            }
            s.push_str(&format!(
                "HASH=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$SLURM_SUBMIT_DIR/{name}.txt\")\n"
            ));
            s.push_str(&format!(
                "{} --store {} --threads \"${{SLURM_CPUS_PER_TASK:-{}}}\" run {} --only \"$HASH\"\n",
                shell_quote(&opts.binary),
                shell_quote(&store_abs.display().to_string()),
                opts.cpus_per_task,
                run_args.join(" ")
            ));
            atomic_write(&dir.join(format!("{name}.sbatch")), s.as_bytes())?;
            let var = if gpu { "jg" } else { "jc" };
            submit.push_str(&format!(
                "{var}=$(sbatch --parsable ${{prev:+--dependency=afterok:$prev}} {name}.sbatch)\necho \"{name}: job ${var} ({} tasks)\"\n",
                hashes.len()
            ));
            level_jobs.push(var);
            written += 1;
        }
        if !level_jobs.is_empty() {
            let ids: Vec<String> = level_jobs.iter().map(|v| format!("${{{v}%%;*}}")).collect();
            submit.push_str(&format!("prev={}\n", ids.join(":")));
        }
    }
    std::fs::create_dir_all(dir.join("logs")).map_err(|e| crate::Error::io(dir.join("logs"), e))?;
    atomic_write(&dir.join("submit.sh"), submit.as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("submit.sh");
        let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755));
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_over_defaults_and_flags_over_config() {
        use super::super::config::SlurmConfig;
        let cfg = SlurmConfig {
            partition: Some("cpu".into()),
            mem: Some("64G".into()),
            gpus_per_task: Some(1),
            setup: Some("module load cuda".into()),
            ..Default::default()
        };
        let flags = SlurmConfig {
            partition: Some("gpu".into()),
            time: Some("02:00:00".into()),
            ..Default::default()
        };
        let o = SlurmOptions::from_config(&cfg.overridden_by(&flags), vec![], "gb".into());
        assert_eq!(o.partition.as_deref(), Some("gpu"));
        assert_eq!(o.time_limit, "02:00:00");
        assert_eq!(o.mem, "64G");
        assert_eq!(o.cpus_per_task, 8);
        assert_eq!(o.gpus_per_task, Some(1));
        assert_eq!(o.gpu_stages, vec!["train".to_string()]);
        assert_eq!(o.setup.as_deref(), Some("module load cuda"));
        assert_eq!(o.binary, "gb");
    }
}
