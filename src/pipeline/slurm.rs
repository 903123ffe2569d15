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
    /// Extra `#SBATCH` lines (partition, account, GPUs).
    pub extra: Vec<String>,
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

/// Writes `level_<k>.txt` (stage hashes), `level_<k>.sbatch` and `submit.sh` into `dir`.
/// Stages already in the store are left out. Returns the number of levels written.
pub fn emit(plan: &Plan, store: &Store, dir: &Path, opts: &SlurmOptions) -> Result<usize> {
    let levels = plan.levels();
    let max_level = levels.iter().copied().max().unwrap_or(0);
    let store_abs =
        std::path::absolute(store.root()).unwrap_or_else(|_| store.root().to_path_buf());
    let run_args: Vec<String> = opts.run_args.iter().map(|a| shell_quote(a)).collect();
    let mut submit = String::from(
        "#!/usr/bin/env bash\n# Submits the gammabench plan level by level; each level waits for the previous one.\nset -euo pipefail\ncd \"$(dirname \"$0\")\"\nprev=\"\"\n",
    );
    let mut written = 0;
    for level in 0..=max_level {
        let hashes: Vec<String> = plan
            .nodes()
            .iter()
            .zip(&levels)
            .filter(|(n, l)| **l == level && store.lookup(&n.key).is_none())
            .map(|(n, _)| n.hash())
            .collect();
        if hashes.is_empty() {
            continue;
        }
        atomic_write(
            &dir.join(format!("level_{level}.txt")),
            (hashes.join("\n") + "\n").as_bytes(),
        )?;
        let mut s = String::new();
        s.push_str("#!/usr/bin/env bash\n");
        s.push_str(&format!("#SBATCH --job-name=gammabench-L{level}\n"));
        s.push_str(&format!("#SBATCH --array=0-{}\n", hashes.len() - 1));
        s.push_str(&format!("#SBATCH --cpus-per-task={}\n", opts.cpus_per_task));
        s.push_str(&format!("#SBATCH --time={}\n", opts.time_limit));
        s.push_str(&format!("#SBATCH --mem={}\n", opts.mem));
        s.push_str(&format!("#SBATCH --output=logs/level_{level}_%a.out\n"));
        for e in &opts.extra {
            s.push_str(&format!("#SBATCH {e}\n"));
        }
        s.push_str("set -euo pipefail\n");
        s.push_str(&format!("HASH=$(sed -n \"$((SLURM_ARRAY_TASK_ID + 1))p\" \"$SLURM_SUBMIT_DIR/level_{level}.txt\")\n"));
        s.push_str(&format!(
            "{} --store {} --threads \"$SLURM_CPUS_PER_TASK\" run {} --only \"$HASH\"\n",
            shell_quote(&opts.binary),
            shell_quote(&store_abs.display().to_string()),
            run_args.join(" ")
        ));
        atomic_write(&dir.join(format!("level_{level}.sbatch")), s.as_bytes())?;
        submit.push_str(&format!(
            "jid=$(sbatch --parsable ${{prev:+--dependency=afterok:$prev}} level_{level}.sbatch)\necho \"level {level}: job $jid ({} tasks)\"\nprev=$jid\n",
            hashes.len()
        ));
        written += 1;
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
