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
        // One worker computes a stage at a time (two cluster arrays, two `run`s on one store):
        // the others wait for its claim to go, then reuse its output.
        let _claim = Claim::acquire(&parent, &hash)?;
        if !force && let Some(out) = self.lookup_verified(key) {
            return Ok(out);
        }
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
        // the large tables also as Parquet, beside their CSV (crate::tables)
        // (one walk: the stage's files, then the copies just written)
        let paths = match walk(&tmp).and_then(|mut f| {
            let copies = crate::tables::write_parquet_copies(&f)?;
            f.extend(copies);
            Ok(f)
        }) {
            Ok(f) => f,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let wall = started.elapsed().as_secs_f64();
        let mut files = BTreeMap::new();
        for path in paths {
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

/// Seconds after which a claim whose heartbeat stopped is taken over (`GAMMABENCH_CLAIM_STALE_S`).
const CLAIM_STALE_S: u64 = 600;
/// How often the holder of a claim refreshes its modification time.
const CLAIM_HEARTBEAT_S: u64 = 30;

/// The claim on a stage being computed: `runs/<stage>/.claim-<hash>`, created with O_EXCL
/// (`create_new`) and holding `host pid unix-time`. While it exists, other workers on the same
/// store wait instead of computing the same stage again (their work would be wasted and, with
/// `--force`, could swap a directory another reader is using). The holder touches the file
/// every 30 s; a claim is stale, and taken over, when its holder is a process of this host
/// that no longer exists, or when it has not been touched for `GAMMABENCH_CLAIM_STALE_S`
/// seconds (600 by default; a worker on another node that was killed). Dropping the claim
/// removes the file.
pub struct Claim {
    path: PathBuf,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    heartbeat: Option<std::thread::JoinHandle<()>>,
}

/// This machine's host name (Linux `/proc`; `HOSTNAME`; else `unknown`).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

impl Claim {
    /// The claim file of stage `hash` under `parent` (`runs/<stage>/`).
    pub fn path(parent: &Path, hash: &str) -> PathBuf {
        parent.join(format!(".claim-{hash}"))
    }

    /// Takes the claim, waiting while another live worker holds it.
    pub fn acquire(parent: &Path, hash: &str) -> Result<Claim> {
        let path = Self::path(parent, hash);
        let stale_s = std::env::var("GAMMABENCH_CLAIM_STALE_S")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(CLAIM_STALE_S);
        let me = host_name();
        let mut waited = false;
        loop {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    use std::io::Write;
                    let now = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map(|d| d.as_secs())
                        .unwrap_or(0);
                    f.write_all(format!("{me} {} {now}\n", std::process::id()).as_bytes())
                        .and_then(|_| f.sync_all())
                        .map_err(|e| Error::io(&path, e))?;
                    if waited {
                        log::info!("took the claim {}", path.display());
                    }
                    return Ok(Self::with_heartbeat(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    if Self::is_stale(&path, &me, stale_s) {
                        Self::remove_stale(&path, &me, stale_s);
                        continue;
                    }
                    if !waited {
                        log::info!(
                            "stage {} is being computed by {}: waiting",
                            &hash[..hash.len().min(12)],
                            std::fs::read_to_string(&path).unwrap_or_default().trim()
                        );
                        waited = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
                Err(e) => return Err(Error::io(&path, e)),
            }
        }
    }

    /// Removes the stale claim at `path`, guarded by `<path>.takeover` (O_EXCL) so that two
    /// workers taking over at once cannot remove the fresh claim one of them just created:
    /// under the guard the claim is removed only if it is still the stale one that was read.
    fn remove_stale(path: &Path, me: &str, stale_s: u64) {
        let seen = std::fs::read(path).unwrap_or_default();
        let guard = PathBuf::from(format!("{}.takeover", path.display()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&guard)
        {
            Ok(_) => {
                if std::fs::read(path).is_ok_and(|now| now == seen)
                    && Self::is_stale(path, me, stale_s)
                {
                    log::warn!(
                        "taking over the stale claim {} ({})",
                        path.display(),
                        String::from_utf8_lossy(&seen).trim()
                    );
                    let _ = std::fs::remove_file(path);
                }
                let _ = std::fs::remove_file(&guard);
            }
            Err(_) => {
                // another worker is taking over; a guard left by a killed one expires
                let old = std::fs::metadata(&guard)
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|t| t.elapsed().ok())
                    .is_some_and(|d| d.as_secs() >= 60);
                if old {
                    let _ = std::fs::remove_file(&guard);
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    }

    /// A claim of a dead process of this host, or one untouched for `stale_s` seconds.
    /// An unreadable or half-written claim counts by its age only.
    fn is_stale(path: &Path, me: &str, stale_s: u64) -> bool {
        let age = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .map(|d| d.as_secs());
        let Some(age) = age else {
            return false; // gone meanwhile: the next create_new decides
        };
        if age >= stale_s {
            return true;
        }
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let mut it = text.split_whitespace();
        let (host, pid) = (it.next(), it.next().and_then(|p| p.parse::<u32>().ok()));
        if let (Some(h), Some(pid)) = (host, pid)
            && h == me
            && Path::new("/proc/self").exists()
        {
            return pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists();
        }
        false
    }

    fn with_heartbeat(path: PathBuf) -> Claim {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let (p, s) = (path.clone(), stop.clone());
        let heartbeat = std::thread::Builder::new()
            .name("claim-heartbeat".into())
            .spawn(move || {
                let mut ticks = 0u64;
                while !s.load(Ordering::Relaxed) {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                    ticks += 1;
                    if ticks.is_multiple_of(CLAIM_HEARTBEAT_S * 10)
                        && let Ok(f) = std::fs::OpenOptions::new().append(true).open(&p)
                    {
                        let _ = f.set_modified(std::time::SystemTime::now());
                    }
                }
            })
            .ok();
        Claim {
            path,
            stop,
            heartbeat,
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(h) = self.heartbeat.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
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
