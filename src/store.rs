//! The content-addressed run store.
//!
//! Each stage's output lives in `runs/<stage>/<hash>/`, where `<hash>` is the SHA-256 of the
//! stage name, the stage's slice of the resolved config, and the hashes of its inputs (for a
//! downstream stage, the hashes of the upstream stage outputs). A stage directory is complete
//! exactly when it holds `manifest.json`: outputs are written into a temporary directory that
//! is renamed into place at the end, so a killed run leaves no half-written stage and a re-run
//! resumes where it stopped.

use crate::error::{Error, Result};
use crate::formats::{atomic_write, sha256_file, sha256_hex};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Git commit the binary was built from (or `unknown`).
pub const GIT_COMMIT: &str = match option_env!("GAMMABENCH_GIT_COMMIT") {
    Some(c) => c,
    None => "unknown",
};

/// What a stage is keyed by.
#[derive(Debug, Clone, Serialize)]
pub struct StageKey {
    /// Stage name (`catalog`, `sky`, ...).
    pub stage: String,
    /// The part of the resolved config this stage depends on.
    pub config: serde_json::Value,
    /// Named input hashes (upstream stage hashes or data-file hashes).
    pub inputs: BTreeMap<String, String>,
    /// Master seed.
    pub seed: u64,
}

impl StageKey {
    /// The content hash (hex SHA-256, first 32 characters).
    ///
    /// The crate version enters the hash so that a new release never reuses outputs of an
    /// older algorithm; the git commit does not, so a rebuild reuses its own outputs.
    pub fn hash(&self) -> String {
        let payload = serde_json::json!({
            "stage": self.stage,
            "config": self.config,
            "inputs": self.inputs,
            "seed": self.seed,
            "version": env!("CARGO_PKG_VERSION"),
        });
        // serde_json maps are BTreeMaps: key order is canonical.
        let bytes = serde_json::to_vec(&payload).expect("json");
        sha256_hex(&bytes)[..32].to_string()
    }
}

/// The manifest of a completed stage.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub stage: String,
    pub hash: String,
    pub config: serde_json::Value,
    pub inputs: BTreeMap<String, String>,
    pub seed: u64,
    pub crate_version: String,
    pub git_commit: String,
    pub created_utc: String,
    pub wall_time_s: f64,
    pub threads: usize,
    /// SHA-256 of every output file, by relative path.
    pub files: BTreeMap<String, String>,
    /// Free-form stage summary (counts, headline metrics).
    #[serde(default)]
    pub summary: serde_json::Value,
}

/// Outcome of [`Store::run_stage`].
#[derive(Debug, Clone)]
pub struct StageOutput {
    pub dir: PathBuf,
    pub manifest: Manifest,
    /// True when the output was already stored and nothing was computed.
    pub reused: bool,
}

/// A run store rooted at a directory (default `runs/`).
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

impl Store {
    /// Opens (lazily creates) the store at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The store root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of a stage output.
    pub fn stage_dir(&self, stage: &str, hash: &str) -> PathBuf {
        self.root.join(stage).join(hash)
    }

    /// The manifest of a completed stage output, if there is one.
    pub fn lookup(&self, key: &StageKey) -> Option<StageOutput> {
        let dir = self.stage_dir(&key.stage, &key.hash());
        let text = std::fs::read_to_string(dir.join("manifest.json")).ok()?;
        let manifest: Manifest = serde_json::from_str(&text).ok()?;
        Some(StageOutput {
            dir,
            manifest,
            reused: true,
        })
    }

    /// Checks a stored output against its manifest: every listed file present with the listed
    /// SHA-256. Returns the problems (empty when intact).
    pub fn verify(&self, out: &StageOutput) -> Vec<String> {
        let mut problems = Vec::new();
        for (rel, want) in &out.manifest.files {
            let path = out.dir.join(rel);
            match sha256_file(&path) {
                Ok(got) if &got == want => {}
                Ok(got) => problems.push(format!(
                    "{}: SHA-256 {} but the manifest says {}",
                    path.display(),
                    &got[..16],
                    &want[..want.len().min(16)]
                )),
                Err(_) => problems.push(format!("{}: missing or unreadable", path.display())),
            }
        }
        problems
    }

    /// [`Store::lookup`], trusting the output only when [`Store::verify`] finds it intact: a
    /// corrupted stage is reported (warning) and treated as absent, so it is recomputed.
    pub fn lookup_verified(&self, key: &StageKey) -> Option<StageOutput> {
        let out = self.lookup(key)?;
        let problems = self.verify(&out);
        if problems.is_empty() {
            return Some(out);
        }
        log::warn!(
            "stored {} {} fails verification, recomputing: {}",
            key.stage,
            out.manifest.hash,
            problems.join("; ")
        );
        None
    }

    /// Every stored stage output (directories holding a readable `manifest.json`), with the
    /// problems [`Store::verify`] finds in each; unreadable manifests are problems too.
    pub fn verify_all(&self) -> Result<Vec<(PathBuf, Vec<String>)>> {
        let mut out = Vec::new();
        let Ok(stages) = std::fs::read_dir(&self.root) else {
            return Ok(out);
        };
        let mut stage_dirs: Vec<PathBuf> = stages.flatten().map(|e| e.path()).collect();
        stage_dirs.sort();
        for sd in stage_dirs.into_iter().filter(|p| p.is_dir()) {
            let mut dirs: Vec<PathBuf> = std::fs::read_dir(&sd)
                .map_err(|e| Error::io(&sd, e))?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            dirs.sort();
            for dir in dirs {
                let name = dir
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                if name.starts_with(".tmp-") || name.starts_with(".old-") {
                    out.push((dir, vec!["left over from an interrupted run".into()]));
                    continue;
                }
                if name.starts_with(".work-") {
                    // A training run's resumable checkpoint (see `detect::stage::run_train`).
                    continue;
                }
                let text = match std::fs::read_to_string(dir.join("manifest.json")) {
                    Ok(t) => t,
                    Err(_) => {
                        out.push((dir, vec!["no manifest.json (incomplete stage)".into()]));
                        continue;
                    }
                };
                match serde_json::from_str::<Manifest>(&text) {
                    Ok(manifest) => {
                        let o = StageOutput {
                            dir: dir.clone(),
                            manifest,
                            reused: true,
                        };
                        let p = self.verify(&o);
                        out.push((dir, p));
                    }
                    Err(e) => out.push((dir, vec![format!("manifest.json: {e}")])),
                }
            }
        }
        Ok(out)
    }

    /// Removes the `.tmp-*` / `.old-*` directories under `parent` left by runs whose process is
    /// gone (the pid in the name no longer exists; Linux `/proc`; elsewhere nothing is removed).
    fn remove_stale_temporaries(parent: &Path) {
        if !Path::new("/proc/self").exists() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(parent) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(rest) = name
                .strip_prefix(".tmp-")
                .or_else(|| name.strip_prefix(".old-"))
            else {
                continue;
            };
            // .tmp-{hash}-{pid}-{nonce}
            let pid = rest.split('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            if let Some(pid) = pid
                && pid != std::process::id()
                && !Path::new(&format!("/proc/{pid}")).exists()
            {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    /// Runs a stage unless its output is stored already and intact (or `force`).
    ///
    /// `compute` receives an empty temporary directory to write into and returns a JSON
    /// summary; the manifest is written last and the directory renamed into place.
    pub fn run_stage<F>(&self, key: &StageKey, force: bool, compute: F) -> Result<StageOutput>
    where
        F: FnOnce(&Path) -> Result<serde_json::Value>,
    {
        if !force && let Some(out) = self.lookup_verified(key) {
            return Ok(out);
        }
        let hash = key.hash();
        let final_dir = self.stage_dir(&key.stage, &hash);
        let parent = final_dir
            .parent()
            .expect("stage dir has a parent")
            .to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| Error::io(&parent, e))?;
        Self::remove_stale_temporaries(&parent);
        let nonce = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let tmp = parent.join(format!(".tmp-{hash}-{}-{nonce}", std::process::id()));
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let started = Instant::now();
        let summary = match compute(&tmp) {
            Ok(s) => s,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let wall = started.elapsed().as_secs_f64();
        let mut files = BTreeMap::new();
        for path in walk(&tmp)? {
            let rel = path
                .strip_prefix(&tmp)
                .expect("under tmp")
                .to_string_lossy()
                .replace('\\', "/");
            files.insert(rel, sha256_file(&path)?);
        }
        let manifest = Manifest {
            stage: key.stage.clone(),
            hash: hash.clone(),
            config: key.config.clone(),
            inputs: key.inputs.clone(),
            seed: key.seed,
            crate_version: env!("CARGO_PKG_VERSION").into(),
            git_commit: GIT_COMMIT.into(),
            created_utc: humantime::format_rfc3339_seconds(std::time::SystemTime::now())
                .to_string(),
            wall_time_s: wall,
            threads: rayon::current_num_threads(),
            files,
            summary,
        };
        let json =
            serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
        atomic_write(&tmp.join("manifest.json"), &json)?;
        if final_dir.exists() {
            // --force: move the old output aside first, then swap in the new one.
            let old = parent.join(format!(".old-{hash}-{}-{nonce}", std::process::id()));
            std::fs::rename(&final_dir, &old).map_err(|e| Error::io(&final_dir, e))?;
            std::fs::rename(&tmp, &final_dir).map_err(|e| Error::io(&final_dir, e))?;
            let _ = std::fs::remove_dir_all(&old);
        } else if let Err(e) = std::fs::rename(&tmp, &final_dir) {
            // Another process finished the same stage first: keep theirs (same content).
            let _ = std::fs::remove_dir_all(&tmp);
            if !final_dir.join("manifest.json").exists() {
                return Err(Error::io(&final_dir, e));
            }
        }
        let manifest = self.lookup(key).map(|o| o.manifest).ok_or_else(|| {
            Error::Internal(format!(
                "stage {} vanished after write",
                final_dir.display()
            ))
        })?;
        Ok(StageOutput {
            dir: final_dir,
            manifest,
            reused: false,
        })
    }
}

/// All regular files under `dir`, sorted.
pub fn walk(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).map_err(|e| Error::io(&d, e))? {
            let entry = entry.map_err(|e| Error::io(&d, e))?;
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Copies a stage's files (all of them are user-facing) and its manifest into `out`,
/// atomically per file.
pub fn export(stage: &StageOutput, out: &Path) -> Result<()> {
    for rel in stage.manifest.files.keys() {
        crate::formats::atomic_copy(&stage.dir.join(rel), &out.join(rel))?;
    }
    crate::formats::atomic_copy(&stage.dir.join("manifest.json"), &out.join("manifest.json"))?;
    Ok(())
}

/// `gammabench verify`: checks every stored stage, prints one `FAIL dir: problem` line per
/// problem, logs the count; an error (exit 3) when any stage fails.
pub fn verify_store(store: &Store) -> Result<()> {
    let all = store.verify_all()?;
    let bad: Vec<_> = all.iter().filter(|(_, p)| !p.is_empty()).collect();
    for (dir, problems) in &bad {
        for p in problems.iter() {
            println!("FAIL {}: {p}", dir.display());
        }
    }
    log::info!(
        "{} stored stage(s) under {}: {} intact, {} failing",
        all.len(),
        store.root().display(),
        all.len() - bad.len(),
        bad.len()
    );
    if bad.is_empty() {
        Ok(())
    } else {
        Err(crate::Error::Regression(format!(
            "{} stored stage(s) fail verification (a `gammabench run` recomputes them)",
            bad.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(x: i64) -> StageKey {
        StageKey {
            stage: "t".into(),
            config: serde_json::json!({"b": 1, "a": x}),
            inputs: BTreeMap::new(),
            seed: 1,
        }
    }

    #[test]
    fn second_run_reuses_and_force_recomputes() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let mut calls = 0;
        let a = s
            .run_stage(&key(1), false, |p| {
                calls += 1;
                std::fs::write(p.join("x.txt"), "1").unwrap();
                Ok(serde_json::json!({}))
            })
            .unwrap();
        assert!(!a.reused);
        let b = s
            .run_stage(&key(1), false, |_| panic!("must not recompute"))
            .unwrap();
        assert!(b.reused);
        assert_eq!(a.dir, b.dir);
        let c = s
            .run_stage(&key(1), true, |p| {
                calls += 1;
                std::fs::write(p.join("x.txt"), "2").unwrap();
                Ok(serde_json::json!({}))
            })
            .unwrap();
        assert!(!c.reused);
        assert_eq!(calls, 2);
        assert_eq!(std::fs::read_to_string(c.dir.join("x.txt")).unwrap(), "2");
        assert_ne!(key(1).hash(), key(2).hash());
    }

    #[test]
    fn failed_stage_leaves_nothing() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(d.path());
        let r = s.run_stage(&key(3), false, |p| {
            std::fs::write(p.join("partial"), "x").unwrap();
            Err(Error::Internal("boom".into()))
        });
        assert!(r.is_err());
        assert!(s.lookup(&key(3)).is_none());
        assert_eq!(std::fs::read_dir(d.path().join("t")).unwrap().count(), 0);
    }
}
