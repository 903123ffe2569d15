//! The data-challenge kit: `challenge build | validate | submit | leaderboard`.
//!
//! * [`build`] turns a patches-stage directory into a public bundle (Poisson-noised patches
//!   drawn with a secret seed, patch list, the diffuse template, a labelled training set from
//!   an independent sky realisation seeded from the secret, README with the format, example
//!   and sample submissions, the starter kit of [`STARTER_FILES`]) and a private bundle
//!   (truth, seeds, the public/private split), each with a SHA-256 manifest.
//! * [`validate`] checks a submission and reports every problem with line and column.
//! * [`submit`] validates, scores on the public and the private half of the patches and
//!   records the result in a SQLite leaderboard (WAL, one `BEGIN IMMEDIATE` transaction per
//!   submission, so concurrent submitters are serialised and none is lost).
//! * [`leaderboard`] writes CSV, Markdown, JSON and a static HTML page.
//!
//! Nothing written to the public bundle or printed to a participant contains a truth value of
//! the test patches: the participant sees their own file, the public patch list, the emission
//! model's diffuse template, the training set (another sky, labelled by design) and their
//! scores.

pub mod cli;
pub mod client;
pub mod config;
pub mod db;
pub mod server;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::ChallengeConfig as Config;

use crate::config::{ChallengeConfig, ExperimentConfig, ScoreConfig};
use crate::error::{Error, Result};
use crate::formats::{atomic_write, atomic_write_with, fmt_f64, sha256_file, sha256_hex};
use crate::score::input::{self, ParseOptions, Parsed, TruthRow};
use crate::score::matching::match_global;
use rand_distr::Distribution;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The participant README (also copied into the public bundle).
pub const README: &str = include_str!("../../challenge/README.md");
/// The example submission shipped with the README.
pub const EXAMPLE_SUBMISSION: &str = include_str!("../../challenge/example_submission.csv");

/// The starter kit copied into every public bundle (`challenge/starter/`): a matched-filter
/// baseline tuned on the training set, a pure-Python validator with the messages of
/// [`validate`], and the baseline's optional requirement (numpy).
pub const STARTER_FILES: [(&str, &str); 3] = [
    (
        "baseline.py",
        include_str!("../../challenge/starter/baseline.py"),
    ),
    (
        "validate.py",
        include_str!("../../challenge/starter/validate.py"),
    ),
    (
        "requirements.txt",
        include_str!("../../challenge/starter/requirements.txt"),
    ),
];

/// Components whose sum is the expected (Asimov) counts.
pub const COMPONENTS: [&str; 3] = ["diffuse", "agn", "psr"];

/// A float32 array read with [`crate::npy`].
struct NpyArray {
    shape: Vec<usize>,
    data: Vec<f32>,
}

mod shipped {
    include!(concat!(env!("OUT_DIR"), "/shipped_seeds.rs"));
}
/// Every seed written in the shipped `configs/` (the default experiment seed among them): a
/// sky made with one of them is regenerated, truth and all, by anyone with the open code.
pub use shipped::SHIPPED_SEEDS;

/// The secret seed of a build: `challenge.secret_seed`, which must be given explicitly and
/// must not be a seed shipped with the project.
pub fn secret_seed(cfg: &ExperimentConfig) -> Result<u64> {
    let s = cfg.challenge.secret_seed.ok_or_else(|| {
        Error::Usage(
            "challenge build needs an explicit challenge.secret_seed (--set \
             challenge.secret_seed=N with a random N kept private, e.g. `od -An -N6 -tu8 \
             /dev/urandom`): a derived default can be recomputed by anyone"
                .into(),
        )
    })?;
    if SHIPPED_SEEDS.contains(&s) {
        return Err(Error::Usage(format!(
            "challenge.secret_seed {s} is a seed shipped in configs/; choose a private random one"
        )));
    }
    Ok(s)
}

/// Refuses a patches directory whose sky was made with a seed shipped with the project
/// (read from its `manifest.json` and `config.resolved.toml`, where present): its truth is
/// public in effect. `allow` (`--allow-known-sky`) builds it anyway, as a practice kit.
pub fn check_sky_seed(patches_dir: &Path, allow: bool) -> Result<()> {
    let mut found: Vec<(PathBuf, u64)> = Vec::new();
    let manifest = patches_dir.join("manifest.json");
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| Error::bad_file(&manifest, e))?;
        if let Some(seed) = v.get("seed").and_then(|s| s.as_u64()) {
            found.push((manifest, seed));
        }
    }
    let resolved = patches_dir.join("config.resolved.toml");
    if let Ok(text) = std::fs::read_to_string(&resolved) {
        let v: toml::Table = toml::from_str(&text).map_err(|e| Error::bad_file(&resolved, e))?;
        if let Some(seed) = v.get("seed").and_then(|s| s.as_integer()) {
            found.push((resolved, seed as u64));
        }
    }
    for (file, seed) in found {
        if SHIPPED_SEEDS.contains(&seed) {
            let msg = format!(
                "{}: the sky was made with seed {seed}, which ships with the project (configs/), \
                 so anyone can regenerate its truth; make the test sky with a private seed \
                 (--set seed=N), or pass --allow-known-sky for a practice kit",
                file.display()
            );
            if allow {
                log::warn!("{msg}");
            } else {
                return Err(Error::Usage(msg));
            }
        }
    }
    Ok(())
}

/// Public half of the patches: the patch ids ranked by SHA-256 of
/// `gammabench/split-v2/<secret>/<id>`, first half (rounded up) public. Salted with the secret
/// seed, so it cannot be recomputed from the patch list; written to the private `split.csv`.
pub fn public_patches(ids: &[i64], secret: u64) -> HashSet<i64> {
    let mut ranked: Vec<(String, i64)> = ids
        .iter()
        .map(|id| {
            (
                sha256_hex(format!("gammabench/split-v2/{secret}/{id}").as_bytes()),
                *id,
            )
        })
        .collect();
    ranked.sort();
    ranked.dedup();
    let n_public = ranked.len().div_ceil(2);
    ranked.into_iter().take(n_public).map(|r| r.1).collect()
}

/// The public half from a private bundle's `split.csv` (`patch_id,split`).
pub fn read_split(private_dir: &Path) -> Result<HashSet<i64>> {
    let path = private_dir.join("split.csv");
    let mut rdr = crate::formats::csv_reader(&path)?;
    let mut public = HashSet::new();
    for (i, r) in rdr.records().enumerate() {
        let r = r.map_err(|e| Error::bad_file(&path, e))?;
        let id: i64 = r.get(0).unwrap_or("").trim().parse().map_err(|_| {
            Error::bad_file(&path, format!("line {}: patch_id is not an integer", i + 2))
        })?;
        match r.get(1).map(str::trim) {
            Some("public") => {
                public.insert(id);
            }
            Some("private") => {}
            other => {
                return Err(Error::bad_file(
                    &path,
                    format!(
                        "line {}: split `{}` is neither public nor private",
                        i + 2,
                        other.unwrap_or("")
                    ),
                ));
            }
        }
    }
    Ok(public)
}

fn manifest(dir: &Path) -> Result<()> {
    let mut lines = String::new();
    for p in crate::store::walk(dir)? {
        let rel = p
            .strip_prefix(dir)
            .map_err(|e| Error::Internal(e.to_string()))?
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "MANIFEST.sha256" {
            continue;
        }
        lines.push_str(&format!("{}  {}\n", sha256_file(&p)?, rel));
    }
    atomic_write(&dir.join("MANIFEST.sha256"), lines.as_bytes())
}

/// What `build` made.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSummary {
    pub n_patches: usize,
    /// Patches of the public training set (0 when `challenge.train_patches` is 0).
    pub n_train_patches: usize,
    pub n_truth_rows: usize,
    pub public_dir: PathBuf,
    pub private_dir: PathBuf,
}

/// `challenge build`: public and private bundles under `out/public` and `out/private`.
/// Refuses a build without an explicit, unshipped `challenge.secret_seed` and a sky made
/// with a shipped seed unless `allow_known_sky` (see [`check_sky_seed`]).
pub fn build(
    cfg: &ExperimentConfig,
    patches_dir: &Path,
    out: &Path,
    allow_known_sky: bool,
) -> Result<BuildSummary> {
    let seed = secret_seed(cfg)?;
    check_sky_seed(patches_dir, allow_known_sky)?;
    let patches_csv = patches_dir.join("patches.csv");
    let centres = input::read_patches(&patches_csv)?;
    // keep the file order of patches.csv: array index i <-> row i
    let mut order: Vec<i64> = Vec::new();
    {
        let mut rdr = crate::formats::csv_reader(&patches_csv)?;
        let hdr = rdr
            .headers()
            .map_err(|e| Error::bad_file(&patches_csv, e))?
            .clone();
        let ci = hdr.iter().position(|h| h == "patch_id").unwrap_or(0);
        for r in rdr.records() {
            let r = r.map_err(|e| Error::bad_file(&patches_csv, e))?;
            order.push(
                r.get(ci)
                    .unwrap_or("")
                    .trim()
                    .parse()
                    .map_err(|_| Error::bad_file(&patches_csv, "patch_id is not an integer"))?,
            );
        }
    }
    let (total, diffuse) = read_components(patches_dir, order.len())?;
    let counts = poisson_counts(&total, seed, "challenge/poisson");
    let public = out.join("public");
    let private = out.join("private");
    for d in [&public, &private] {
        if d.exists() {
            return Err(Error::Usage(format!(
                "{} exists already; choose an empty --out",
                d.display()
            )));
        }
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    crate::npy::write_f32(&public.join("patches.npy"), &total.shape, &counts)?;
    // the emission model's expected diffuse counts of every test patch: public knowledge
    // (the model is open), and what a participant subtracts before looking for sources
    crate::npy::write_f32(&public.join("diffuse.npy"), &diffuse.shape, &diffuse.data)?;
    let train = if cfg.challenge.train_patches > 0 {
        Some(write_training_set(cfg, patches_dir, seed, out, &public)?)
    } else {
        None
    };
    let list: String = std::iter::once("index,patch_id,glon_deg,glat_deg\n".to_string())
        .chain(order.iter().enumerate().map(|(i, id)| {
            let (l, b) = centres[id];
            format!("{i},{id},{},{}\n", fmt_f64(l), fmt_f64(b))
        }))
        .collect();
    atomic_write(&public.join("patches.csv"), list.as_bytes())?;
    atomic_write(&public.join("README.md"), README.as_bytes())?;
    atomic_write(
        &public.join("example_submission.csv"),
        EXAMPLE_SUBMISSION.as_bytes(),
    )?;
    // the format with one row per test patch (at its centre): a valid file to start from
    let sample: String = std::iter::once("patch_id,x_pix,y_pix,score\n".to_string())
        .chain(order.iter().map(|id| format!("{id},31.5,31.5,0\n")))
        .collect();
    atomic_write(&public.join("sample_submission.csv"), sample.as_bytes())?;
    for (name, text) in STARTER_FILES {
        atomic_write(&public.join(name), text.as_bytes())?;
    }
    let info = serde_json::json!({
        "instrument": instrument_info(cfg, patches_dir)?,
        "n_patches": order.len(),
        "shape": total.shape,
        "axes": ["patch", "y_pix", "x_pix", "energy_bin"],
        "dtype": "float32 (integer photon counts)",
        "energy_bins_gev": cfg.energy.bin_edges_gev,
        "patch_size_deg": 10.0,
        "projection": "healpy cartview(rot=(l, b, 0), lonra=[-5, 5], latra=[-5, 5], xsize=64)",
        "files": {
            "patches.npy": "photon counts of the test patches, float32 (N, 64, 64, bins)",
            "patches.csv": "index,patch_id,glon_deg,glat_deg of the test patches (row index of the arrays)",
            "diffuse.npy": "diffuse template of the test patches, float32 like patches.npy",
            "sample_submission.csv": "a valid submission with one row per test patch",
            "example_submission.csv": "a small valid submission (patch ids 0 and 1)",
            "train_patches.npy": "photon counts of the labelled training patches, float32 like patches.npy",
            "train_diffuse.npy": "diffuse template of the training patches",
            "train_patches.csv": "index,patch_id,glon_deg,glat_deg of the training patches",
            "train_truth.csv": "every source in every training patch (see train.truth_columns)",
            "baseline.py": "the starter baseline: python3 baseline.py --bundle . --out my_detections.csv",
            "validate.py": "the submission checker without the binary: python3 validate.py FILE --patches patches.csv",
            "requirements.txt": "baseline.py's optional numpy",
        },
        "diffuse_template": {
            "file": "diffuse.npy",
            "shape": diffuse.shape,
            "content": "expected counts per pixel and energy bin of the emission model's diffuse \
                        emission (Galactic interstellar and isotropic), same layout and units as \
                        patches.npy, point sources not included: counts = Poisson(diffuse + \
                        point sources). train_diffuse.npy is the same for the training patches.",
        },
        "train": train.as_ref().map(|t| t.info.clone()),
    });
    atomic_write(
        &public.join("dataset.json"),
        &serde_json::to_vec_pretty(&info).map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    // private: truth, seeds, split
    let truth_src = patches_dir.join("truth.csv");
    let truth = input::read_truth(&truth_src, Some(&patches_csv))?;
    crate::formats::atomic_copy(&truth_src, &private.join("truth.csv"))?;
    crate::formats::atomic_copy(&patches_csv, &private.join("patches.csv"))?;
    let pub_set = public_patches(&order, seed);
    let split: String = std::iter::once("patch_id,split\n".to_string())
        .chain(order.iter().map(|id| {
            format!(
                "{id},{}\n",
                if pub_set.contains(id) {
                    "public"
                } else {
                    "private"
                }
            )
        }))
        .collect();
    atomic_write(&private.join("split.csv"), split.as_bytes())?;
    let seeds = serde_json::json!({
        "experiment_seed": cfg.seed,
        "secret_seed": seed,
        "poisson_stream": "rng::stream(secret_seed, \"challenge/poisson\", patch_index)",
        "split": "patch ids ranked by sha256(\"gammabench/split-v2/<secret_seed>/<patch_id>\"), first half (rounded up) public",
        "practice_kit": allow_known_sky,
        "train": train.as_ref().map(|t| serde_json::json!({
            "sky_seed": t.sky_seed,
            "sky_seed_derivation": "rng::stream(secret_seed, \"challenge/train\", 0), first u64 >> 12",
            "poisson_stream": "rng::stream(secret_seed, \"challenge/train/poisson\", patch_index)",
            "n_patches": t.n_patches,
            "n_truth_rows": t.n_truth_rows,
        })),
        "source": patches_dir.display().to_string(),
    });
    atomic_write(
        &private.join("seeds.json"),
        &serde_json::to_vec_pretty(&seeds).map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    manifest(&public)?;
    manifest(&private)?;
    Ok(BuildSummary {
        n_patches: order.len(),
        n_train_patches: train.as_ref().map_or(0, |t| t.n_patches),
        n_truth_rows: truth.rows.len(),
        public_dir: public,
        private_dir: private,
    })
}

/// The Asimov total (sum of [`COMPONENTS`]) and the diffuse component of a patches
/// directory, each `(n, 64, 64, bins)`; `n` must be the number of rows of its patches.csv.
fn read_components(patches_dir: &Path, n: usize) -> Result<(NpyArray, NpyArray)> {
    let mut total: Option<NpyArray> = None;
    let mut diffuse: Option<NpyArray> = None;
    for c in COMPONENTS {
        let p = patches_dir.join(format!("patches_{c}.npy"));
        let (shape, data) = crate::npy::read_f32(&p)?;
        let a = NpyArray { shape, data };
        if a.shape.len() != 4 || a.shape[0] != n {
            return Err(Error::bad_file(
                &p,
                format!(
                    "shape {:?}, expected ({n}, 64, 64, bins) like patches.csv",
                    a.shape
                ),
            ));
        }
        if c == "diffuse" {
            diffuse = Some(NpyArray {
                shape: a.shape.clone(),
                data: a.data.clone(),
            });
        }
        total = Some(match total {
            None => a,
            Some(mut t) => {
                if t.shape != a.shape {
                    return Err(Error::bad_file(
                        &p,
                        "shape differs from the other components",
                    ));
                }
                t.data.iter_mut().zip(&a.data).for_each(|(x, y)| *x += y);
                t
            }
        });
    }
    let total = total.ok_or_else(|| Error::Internal("no components".into()))?;
    let diffuse = diffuse.ok_or_else(|| Error::Internal("no diffuse component".into()))?;
    Ok((total, diffuse))
}

/// Poisson draws of the expected counts `mu`, patch `i` from `rng::stream(seed, label, i)`
/// (so a build is reproducible whatever the number of threads).
fn poisson_counts(mu: &NpyArray, seed: u64, label: &str) -> Vec<f32> {
    use rayon::prelude::*;
    let per_patch: usize = mu.shape[1..].iter().product::<usize>().max(1);
    let mut counts = vec![0f32; mu.data.len()];
    counts
        .par_chunks_mut(per_patch)
        .zip(mu.data.par_chunks(per_patch))
        .enumerate()
        .for_each(|(i, (dst, mu))| {
            let mut rng = crate::rng::stream(seed, label, i as u64);
            for (d, m) in dst.iter_mut().zip(mu) {
                *d = if *m > 0.0 && m.is_finite() {
                    rand_distr::Poisson::new(*m as f64)
                        .map(|p| p.sample(&mut rng) as f32)
                        .unwrap_or(0.0)
                } else {
                    0.0
                };
            }
        });
    counts
}

/// The seed of the training sky: derived from the secret seed (one-way, so the published
/// training truth says nothing about the secret), 52 bits (a TOML integer).
pub fn training_seed(secret: u64) -> u64 {
    use rand::RngCore;
    crate::rng::stream(secret, "challenge/train", 0).next_u64() >> 12
}

/// The config of the test sky: its own `config.resolved.toml` when the patches directory has
/// one (a sky made by `gammabench patches`), else the build's config.
fn sky_config(cfg: &ExperimentConfig, patches_dir: &Path) -> Result<ExperimentConfig> {
    let resolved = patches_dir.join("config.resolved.toml");
    Ok(if resolved.is_file() {
        crate::config::load(Some(&resolved), &[])?
            .into_iter()
            .next()
            .map(|p| p.config)
            .unwrap_or_else(|| cfg.clone())
    } else {
        cfg.clone()
    })
}

/// The config of the training sky: the test sky's model (catalog preset and prior, emission
/// model, NSIDE, instrument, energy bins) with the seed of [`training_seed`] and
/// `challenge.train_patches` random-centre patches: an independent realisation (its own
/// source catalog) of the same kind of sky.
pub fn training_config(
    cfg: &ExperimentConfig,
    patches_dir: &Path,
    secret: u64,
) -> Result<ExperimentConfig> {
    let mut c = sky_config(cfg, patches_dir)?;
    c.seed = training_seed(secret);
    if SHIPPED_SEEDS.contains(&c.seed) {
        return Err(Error::Usage(format!(
            "the training seed derived from challenge.secret_seed is {}, a seed shipped in \
             configs/; choose another secret seed",
            c.seed
        )));
    }
    c.patches.centres = crate::config::Centres::Random;
    c.patches.n = cfg.challenge.train_patches;
    c.patches.poisson = false;
    c.patches.figures = false;
    c.sky.figures = false;
    c.catalog.figures = false;
    Ok(c)
}

/// What [`write_training_set`] wrote.
struct TrainingSet {
    /// The `train` entry of `dataset.json`.
    info: serde_json::Value,
    sky_seed: u64,
    n_patches: usize,
    n_truth_rows: usize,
}

/// Columns of the public training truth `train_truth.csv`.
pub const TRAIN_TRUTH_COLUMNS: [&str; 8] = [
    "patch_id",
    "x_pix",
    "y_pix",
    "glon_deg",
    "glat_deg",
    "class",
    "flux_1000_ph_cm2_s",
    "flux_10000_ph_cm2_s",
];

/// The labelled training set of the public bundle: catalog, sky and patches of
/// [`training_config`] run in a scratch store under `out` (removed afterwards), then
/// `train_patches.npy` (Poisson counts drawn from the secret seed, like the test patches),
/// `train_diffuse.npy`, `train_patches.csv` and `train_truth.csv` (every source in every
/// training patch: position, class, fluxes) in `public`.
fn write_training_set(
    cfg: &ExperimentConfig,
    patches_dir: &Path,
    secret: u64,
    out: &Path,
    public: &Path,
) -> Result<TrainingSet> {
    let tc = training_config(cfg, patches_dir, secret)?;
    let scratch = out.join(".train-sky");
    let result = (|| {
        let store = crate::store::Store::new(&scratch);
        let stage = crate::patches::run(&store, &tc, false, &indicatif::ProgressBar::hidden())?;
        let dir = stage.dir;
        let list_src = dir.join("patches.csv");
        let centres = input::read_patches(&list_src)?;
        let mut ids: Vec<i64> = centres.keys().copied().collect();
        ids.sort_unstable();
        let (total, diffuse) = read_components(&dir, ids.len())?;
        let counts = poisson_counts(&total, secret, "challenge/train/poisson");
        crate::npy::write_f32(&public.join("train_patches.npy"), &total.shape, &counts)?;
        crate::npy::write_f32(
            &public.join("train_diffuse.npy"),
            &diffuse.shape,
            &diffuse.data,
        )?;
        // the stage writes patch ids 0..n in array order; checked, since the files index it
        if ids.iter().enumerate().any(|(i, id)| *id != i as i64) {
            return Err(Error::bad_file(
                &list_src,
                "training patch ids are not 0..n in order",
            ));
        }
        let list: String = std::iter::once("index,patch_id,glon_deg,glat_deg\n".to_string())
            .chain(ids.iter().map(|id| {
                let (l, b) = centres[id];
                format!("{id},{id},{},{}\n", fmt_f64(l), fmt_f64(b))
            }))
            .collect();
        atomic_write(&public.join("train_patches.csv"), list.as_bytes())?;
        let truth_src = dir.join("truth.csv");
        let mut rdr = crate::formats::csv_reader(&truth_src)?;
        let hdr = rdr
            .headers()
            .map_err(|e| Error::bad_file(&truth_src, e))?
            .clone();
        let cols: Vec<usize> = TRAIN_TRUTH_COLUMNS
            .iter()
            .map(|c| {
                hdr.iter().position(|h| h == *c).ok_or_else(|| {
                    Error::bad_file(&truth_src, format!("no column `{c}` in the header"))
                })
            })
            .collect::<Result<_>>()?;
        let mut n_rows = 0;
        atomic_write_with(&public.join("train_truth.csv"), |w| {
            writeln!(w, "{}", TRAIN_TRUTH_COLUMNS.join(","))?;
            for r in rdr.records() {
                let r =
                    r.map_err(|e| std::io::Error::other(format!("{}: {e}", truth_src.display())))?;
                let fields: Vec<&str> = cols.iter().map(|&i| r.get(i).unwrap_or("")).collect();
                writeln!(w, "{}", fields.join(","))?;
                n_rows += 1;
            }
            Ok(())
        })?;
        Ok(TrainingSet {
            info: serde_json::json!({
                "n_patches": ids.len(),
                "n_sources": n_rows,
                "patches": "train_patches.npy",
                "diffuse": "train_diffuse.npy",
                "list": "train_patches.csv",
                "truth": "train_truth.csv",
                "truth_columns": TRAIN_TRUTH_COLUMNS,
                "centres": "random (l uniform, sin b uniform)",
                "sky": "an independent realisation of the test sky's model: the same catalog \
                        model, emission model and instrument, its own sources and Poisson \
                        draws; truth lists every source in each training patch, with x_pix, \
                        y_pix in the patch's pixel frame",
            }),
            sky_seed: tc.seed,
            n_patches: ids.len(),
            n_truth_rows: n_rows,
        })
    })();
    let _ = std::fs::remove_dir_all(&scratch);
    result
}

/// The instrument per energy bin (PSF 68 / 95 % containment radii and exposure at the bin's
/// geometric centre), from the sky's own `config.resolved.toml` when the patches directory
/// has one, else from the build's config.
fn instrument_info(cfg: &ExperimentConfig, patches_dir: &Path) -> Result<serde_json::Value> {
    let sky_cfg = sky_config(cfg, patches_dir)?;
    let inst = crate::sky::instrument(&sky_cfg)?;
    let edges = sky_cfg.energy.edges_mev();
    let bins: Vec<serde_json::Value> = edges
        .windows(2)
        .enumerate()
        .map(|(k, w)| {
            let e = (w[0] * w[1]).sqrt();
            serde_json::json!({
                "bin": k,
                "e_min_gev": w[0] / 1e3,
                "e_max_gev": w[1] / 1e3,
                "e_centre_gev": e / 1e3,
                "psf_r68_deg": inst.irf.r68_deg(e),
                "psf_r95_deg": inst.irf.r95_deg(e),
                "exposure_cm2_s": inst.exposure_cm2_s(e),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "irf": sky_cfg.sky.irf,
        "survey_years": sky_cfg.sky.survey_years,
        "exposure": "uniform over the sky",
        "bins": bins,
    }))
}

/// Parse options of a challenge submission.
pub fn parse_options(cfg: &ChallengeConfig, patches: HashMap<i64, (f64, f64)>) -> ParseOptions {
    ParseOptions {
        max_file_bytes: cfg.max_file_bytes,
        max_rows: cfg.max_rows,
        patches: Some(patches),
        ..Default::default()
    }
}

/// `challenge validate`: every problem of a submission (empty when valid).
pub fn validate(cfg: &ChallengeConfig, patches_csv: &Path, submission: &Path) -> Result<Parsed> {
    let patches = input::read_patches(patches_csv)?;
    input::parse_detections(submission, &parse_options(cfg, patches))
}

/// Formats the problems of a validation as `file:line:column: field: message` lines.
pub fn format_problems(file: &Path, p: &Parsed) -> String {
    let mut s = String::new();
    for q in &p.problems {
        s.push_str(&format!(
            "{}:{}:{}: `{}`: {}\n",
            file.display(),
            q.line,
            q.column,
            q.field,
            q.message
        ));
    }
    if p.more_problems > 0 {
        s.push_str(&format!("... and {} more problems\n", p.more_problems));
    }
    s
}

/// Scores of one half.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct HalfScore {
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub duplicate: usize,
    pub purity: f64,
    pub completeness: f64,
    /// Primary ranking score: harmonic mean of purity and completeness (0 when both are 0).
    pub f1: f64,
    /// S90 on S1 (1-100 GeV photon flux, ph cm-2 s-1), all sky of this half, as
    /// [`crate::score::detection::S90_DEFINITION`] (point estimate; `None` when not reached).
    #[serde(default)]
    pub s90_s1: Option<f64>,
    #[serde(default)]
    pub s90_status: S90Status,
}

/// Status of [`HalfScore::s90_s1`].
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum S90Status {
    Reached,
    /// Every bin passes: the value is the lowest bin edge, an upper bound.
    ReachedAtLowestBin,
    #[default]
    NotReached,
}

/// The leaderboard's ranking rule, written into every leaderboard file.
pub const RANKING_RULE: &str = "Primary metric: F1 = 2PC/(P+C) of purity P and completeness C \
(global one-to-one matching), higher is better, compared at the 4 decimals shown. Tie-breakers, \
in order: lower S90 on S1 (all sky of the half; not_reached ranks below any value), higher \
completeness, higher purity (each at 4 decimals), then the earlier submission. A team's best \
submission under this order counts.";

/// Total order of the leaderboard: `Less` when `a` ranks above `b` (see [`RANKING_RULE`]).
pub fn rank_order(a: (&HalfScore, &str, i64), b: (&HalfScore, &str, i64)) -> std::cmp::Ordering {
    let q = |x: f64| (x * 1e4).round() as i64;
    let s90 = |s: &HalfScore| match (s.s90_status, s.s90_s1) {
        (S90Status::NotReached, _) | (_, None) => f64::INFINITY,
        (_, Some(v)) => v,
    };
    q(b.0.f1)
        .cmp(&q(a.0.f1))
        .then(s90(a.0).total_cmp(&s90(b.0)))
        .then(q(b.0.completeness).cmp(&q(a.0.completeness)))
        .then(q(b.0.purity).cmp(&q(a.0.purity)))
        .then(a.1.cmp(b.1))
        .then(a.2.cmp(&b.2))
}

/// Global-mode score of the detections and truth rows whose patch is in `keep`.
pub fn score_half(
    truth: &[TruthRow],
    dets: &[input::Detection],
    keep: &dyn Fn(i64) -> bool,
    score: &ScoreConfig,
) -> HalfScore {
    let t: Vec<TruthRow> = truth.iter().filter(|r| keep(r.patch_id)).cloned().collect();
    let d: Vec<input::Detection> = dets.iter().filter(|r| keep(r.patch_id)).cloned().collect();
    let m = match_global(&t, &d, score.match_radius_deg);
    let s90 = crate::score::detection::s90_point(&t, &d, &m, "S1", "all", score);
    let s90_status = match s90.status.as_str() {
        "reached" => S90Status::Reached,
        "reached_at_lowest_bin" => S90Status::ReachedAtLowestBin,
        _ => S90Status::NotReached,
    };
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let purity = ratio(m.n_tp, m.n_tp + m.n_fp);
    let completeness = ratio(m.n_tp, m.n_tp + m.n_fn);
    HalfScore {
        tp: m.n_tp,
        fp: m.n_fp,
        fn_: m.n_fn,
        duplicate: m.n_duplicate,
        purity,
        completeness,
        f1: if purity + completeness > 0.0 {
            2.0 * purity * completeness / (purity + completeness)
        } else {
            0.0
        },
        s90_s1: s90.value,
        s90_status,
    }
}

/// Outcome of `submit`.
#[derive(Debug, Clone, Serialize)]
pub enum SubmitOutcome {
    /// Recorded as submission `id`; only the public score is shown.
    Recorded { id: i64, public: HalfScore },
    /// The same file (same SHA-256) was already recorded for this team.
    Identical { id: i64, submitted_utc: String },
    /// The team reached its daily limit.
    LimitReached { limit: u32, day: String },
}

pub use db::open_db;

/// Team names: 1-64 characters of letters, digits, space, `-`, `_`, `.`.
pub fn check_team(team: &str) -> Result<()> {
    let ok = !team.trim().is_empty()
        && team.chars().count() <= 64
        && team
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "team name `{team}`: use 1-64 letters, digits, spaces, '-', '_' or '.'"
        )))
    }
}

/// The scorer of a private bundle: truth, patch list and public/private split, loaded once
/// (the service keeps one for all its jobs).
pub struct Scorer {
    truth: input::Truth,
    public: HashSet<i64>,
    challenge: ChallengeConfig,
    score: ScoreConfig,
}

impl Scorer {
    /// Reads `truth.csv`, `patches.csv` and `split.csv` of a private bundle.
    pub fn load(cfg: &ExperimentConfig, private_dir: &Path) -> Result<Scorer> {
        let truth = input::read_truth(
            &private_dir.join("truth.csv"),
            Some(&private_dir.join("patches.csv")),
        )?;
        let public = read_split(private_dir)?;
        Ok(Scorer {
            truth,
            public,
            challenge: cfg.challenge.clone(),
            score: cfg.score.clone(),
        })
    }

    /// Validates a submission file against the patch list.
    pub fn parse(&self, submission: &Path) -> Result<Parsed> {
        input::parse_detections(
            submission,
            &parse_options(&self.challenge, self.truth.patches.clone()),
        )
    }

    /// Public and private half scores of valid detections.
    pub fn score(&self, dets: &[input::Detection]) -> (HalfScore, HalfScore) {
        let public = score_half(
            &self.truth.rows,
            dets,
            &|p| self.public.contains(&p),
            &self.score,
        );
        let private = score_half(
            &self.truth.rows,
            dets,
            &|p| !self.public.contains(&p),
            &self.score,
        );
        (public, private)
    }
}

/// The first problem of an invalid submission as an error (with the count of the others).
pub fn first_problem_error(submission: &Path, parsed: &Parsed) -> Option<Error> {
    let first = parsed.problems.first()?;
    let n = parsed.problems.len() + parsed.more_problems;
    let mut e = first.clone();
    if n > 1 {
        e.message = format!(
            "{} (and {} more problems; run `challenge validate`)",
            e.message,
            n - 1
        );
    }
    Some(e.into_error(submission))
}

/// `challenge submit`: validate, score both halves, record. `now` is the submission time.
pub fn submit(
    cfg: &ExperimentConfig,
    private_dir: &Path,
    db_path: &Path,
    team: &str,
    submission: &Path,
    now: std::time::SystemTime,
) -> Result<SubmitOutcome> {
    check_team(team)?;
    let scorer = Scorer::load(cfg, private_dir)?;
    let parsed = scorer.parse(submission)?;
    if let Some(e) = first_problem_error(submission, &parsed) {
        return Err(e);
    }
    let sha = sha256_file(submission)?;
    let (public, private) = scorer.score(&parsed.detections);
    let (stamp, day) = db::stamp(now);
    let mut conn = open_db(db_path)?;
    let sql = db::sql_err(db_path);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&sql)?;
    let file_name = submission
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let outcome = match db::admit(&tx, db_path, team, &sha, &day, cfg.challenge.daily_limit)? {
        db::Admission::Identical { id, submitted_utc } => {
            SubmitOutcome::Identical { id, submitted_utc }
        }
        db::Admission::LimitReached { limit, day } => SubmitOutcome::LimitReached { limit, day },
        db::Admission::New => {
            let id = db::insert(
                &tx,
                db_path,
                &db::NewSubmission {
                    team,
                    submitted_utc: &stamp,
                    day: &day,
                    sha256: &sha,
                    file_name: &file_name,
                    stored_file: None,
                    n_detections: parsed.detections.len(),
                    scores: Some((&public, &private)),
                },
            )?;
            SubmitOutcome::Recorded { id, public }
        }
    };
    let result = match &outcome {
        SubmitOutcome::Recorded { public, .. } => format!("scored: public F1 {:.4}", public.f1),
        SubmitOutcome::Identical { id, .. } => format!("identical to #{id}"),
        SubmitOutcome::LimitReached { limit, day } => format!("refused: {limit} per day ({day})"),
    };
    let id = match &outcome {
        SubmitOutcome::Recorded { id, .. } | SubmitOutcome::Identical { id, .. } => Some(*id),
        SubmitOutcome::LimitReached { .. } => None,
    };
    db::audit(
        &tx,
        db_path,
        &db::AuditEntry {
            actor: team,
            action: "submit (local)",
            submission_id: id,
            sha256: Some(&sha),
            result: &result,
            address: None,
        },
    )?;
    tx.commit().map_err(&sql)?;
    Ok(outcome)
}

/// One leaderboard line.
#[derive(Debug, Clone, Serialize)]
pub struct BoardRow {
    pub rank: usize,
    pub team: String,
    pub submissions: usize,
    pub best_id: i64,
    pub submitted_utc: String,
    pub score: HalfScore,
}

/// What a participant sees of a score: the leaderboard's metrics at the precision shown
/// (4 decimals; S90 at 3 significant digits), no TP/FP/FN counts.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct PublicScore {
    pub f1: f64,
    pub purity: f64,
    pub completeness: f64,
    pub s90_s1: Option<f64>,
    pub s90_status: S90Status,
}

impl From<&HalfScore> for PublicScore {
    fn from(h: &HalfScore) -> Self {
        let r4 = |x: f64| (x * 1e4).round() / 1e4;
        let sig3 = |x: f64| format!("{x:.2e}").parse::<f64>().unwrap_or(f64::NAN);
        PublicScore {
            f1: r4(h.f1),
            purity: r4(h.purity),
            completeness: r4(h.completeness),
            s90_s1: h.s90_s1.map(sig3),
            s90_status: h.s90_status,
        }
    }
}

/// A leaderboard line as published: [`PublicScore`] instead of the full score.
#[derive(Debug, Clone, Serialize)]
pub struct PublicBoardRow {
    pub rank: usize,
    pub team: String,
    pub submissions: usize,
    pub best_id: i64,
    pub submitted_utc: String,
    pub score: PublicScore,
}

impl From<&BoardRow> for PublicBoardRow {
    fn from(r: &BoardRow) -> Self {
        PublicBoardRow {
            rank: r.rank,
            team: r.team.clone(),
            submissions: r.submissions,
            best_id: r.best_id,
            submitted_utc: r.submitted_utc.clone(),
            score: PublicScore::from(&r.score),
        }
    }
}

/// The leaderboard: each team's best submission on the public (or private) half, ranked by
/// [`rank_order`] (see [`RANKING_RULE`]).
pub fn board(db_path: &Path, private: bool) -> Result<Vec<BoardRow>> {
    board_of(&open_db(db_path)?, db_path, private)
}

/// [`board`] on an open database: rows with scores (a job being rescored keeps its previous
/// ones; a failed job has none).
pub fn board_of(
    conn: &rusqlite::Connection,
    db_path: &Path,
    private: bool,
) -> Result<Vec<BoardRow>> {
    let sql = db::sql_err(db_path);
    let col = if private {
        "private_json"
    } else {
        "public_json"
    };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, team, submitted_utc, {col} FROM submissions
             WHERE {col} <> 'null' AND status <> 'failed' ORDER BY id"
        ))
        .map_err(&sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(&sql)?;
    let mut best: BTreeMap<String, (usize, i64, String, HalfScore)> = BTreeMap::new();
    for row in rows {
        let (id, team, t, js) = row.map_err(&sql)?;
        let s: HalfScore = serde_json::from_str(&js)
            .map_err(|e| Error::Internal(format!("leaderboard row {id}: {e}")))?;
        let e = best.entry(team).or_insert((0, id, t.clone(), s));
        e.0 += 1;
        if rank_order((&s, &t, id), (&e.3, &e.2, e.1)).is_lt() {
            (e.1, e.2, e.3) = (id, t, s);
        }
    }
    let mut out: Vec<BoardRow> = best
        .into_iter()
        .map(|(team, (n, id, t, s))| BoardRow {
            rank: 0,
            team,
            submissions: n,
            best_id: id,
            submitted_utc: t,
            score: s,
        })
        .collect();
    out.sort_by(|a, b| {
        rank_order(
            (&a.score, &a.submitted_utc, a.best_id),
            (&b.score, &b.submitted_utc, b.best_id),
        )
        .then(a.team.cmp(&b.team))
    });
    for (i, r) in out.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    Ok(out)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn s90_status_str(s: S90Status) -> &'static str {
    match s {
        S90Status::Reached => "reached",
        S90Status::ReachedAtLowestBin => "reached_at_lowest_bin",
        S90Status::NotReached => "not_reached",
    }
}

/// S90 as shown in Markdown and HTML: `1.23e-10`, `<= 1.23e-10` (reached at the lowest bin)
/// or `not_reached`.
fn s90_text(s: &HalfScore) -> String {
    match (s.s90_status, s.s90_s1) {
        (S90Status::Reached, Some(v)) => format!("{v:.3e}"),
        (S90Status::ReachedAtLowestBin, Some(v)) => format!("<= {v:.3e}"),
        _ => "not_reached".into(),
    }
}

/// The leaderboard as an HTML `<table>`: the metrics, and for the private (final) board also
/// TP/FP/FN (see [`PublicScore`]).
pub fn board_table_html(rows: &[BoardRow], private: bool) -> String {
    let counts_head = if private {
        "<th>TP</th><th>FP</th><th>FN</th>"
    } else {
        ""
    };
    let mut html = format!(
        "<table>\n<tr><th>rank</th><th class=\"t\">team</th><th>F1</th><th>purity</th>\
         <th>completeness</th><th>S90 (S1)</th>{counts_head}<th>submissions</th>\
         <th class=\"t\">submitted (UTC)</th></tr>\n"
    );
    for r in rows {
        let counts = if private {
            format!(
                "<td>{}</td><td>{}</td><td>{}</td>",
                r.score.tp, r.score.fp, r.score.fn_
            )
        } else {
            String::new()
        };
        html.push_str(&format!(
            "<tr><td>{}</td><td class=\"t\">{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td>\
             <td>{}</td>{counts}<td>{}</td><td class=\"t\">{}</td></tr>\n",
            r.rank,
            html_escape(&r.team),
            r.score.f1,
            r.score.purity,
            r.score.completeness,
            html_escape(&s90_text(&r.score)),
            r.submissions,
            html_escape(&r.submitted_utc)
        ));
    }
    html.push_str("</table>\n");
    html
}

/// The page style shared by the leaderboard files and the service's pages.
pub const PAGE_STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:60em}\
table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:4px 10px;text-align:right}\
td.t,th.t{text-align:left}tr:nth-child(even){background:#f4f6fa}";

/// HTML-escapes text for the pages.
pub fn escape_html(s: &str) -> String {
    html_escape(s)
}

/// The leaderboard as JSON: the ranking rule and the rows; without `with_counts` (every
/// participant-facing answer) the rows are [`PublicBoardRow`]s.
pub fn board_json(
    rows: &[BoardRow],
    private: bool,
    with_counts: bool,
    radius: f64,
) -> serde_json::Value {
    let rows_js = if with_counts {
        serde_json::to_value(rows)
    } else {
        serde_json::to_value(rows.iter().map(PublicBoardRow::from).collect::<Vec<_>>())
    }
    .unwrap_or(serde_json::Value::Null);
    serde_json::json!({
        "half": if private { "private" } else { "public" },
        "ranking": {
            "primary": "f1",
            "tie_breakers": ["s90_s1 (lower)", "completeness", "purity", "submitted_utc (earlier)"],
            "rule": RANKING_RULE,
        },
        "match_radius_deg": radius,
        "s90_definition": crate::score::detection::S90_DEFINITION,
        "rows": rows_js,
    })
}

/// `challenge leaderboard`: writes `leaderboard.{csv,md,json,html}` into `out`; `radius` is
/// the match radius the scores were computed with (for the page's text). The public board
/// shows the metrics only; the private (final) one also TP/FP/FN.
pub fn leaderboard(db: &Path, private: bool, radius: f64, out: &Path) -> Result<Vec<BoardRow>> {
    let rows = board(db, private)?;
    let half = if private { "private" } else { "public" };
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    atomic_write_with(&out.join("leaderboard.csv"), |w| {
        write!(
            w,
            "rank,team,f1,purity,completeness,s90_s1_ph_cm2_s,s90_status,"
        )?;
        if private {
            write!(w, "tp,fp,fn,duplicate,")?;
        }
        writeln!(w, "submissions,best_submission_id,submitted_utc")?;
        for r in &rows {
            let team = if r.team.contains([',', '"']) {
                format!("\"{}\"", r.team.replace('"', "\"\""))
            } else {
                r.team.clone()
            };
            let p = PublicScore::from(&r.score);
            write!(
                w,
                "{},{},{:.4},{:.4},{:.4},{},{},",
                r.rank,
                team,
                p.f1,
                p.purity,
                p.completeness,
                p.s90_s1.map(fmt_f64).unwrap_or_default(),
                s90_status_str(r.score.s90_status),
            )?;
            if private {
                write!(
                    w,
                    "{},{},{},{},",
                    r.score.tp, r.score.fp, r.score.fn_, r.score.duplicate
                )?;
            }
            writeln!(w, "{},{},{}", r.submissions, r.best_id, r.submitted_utc)?;
        }
        Ok(())
    })?;
    let (counts_head, counts_rule) = if private {
        (" TP | FP | FN |", "---:|---:|---:|")
    } else {
        ("", "")
    };
    let mut md = format!(
        "# Leaderboard ({half} half of the test patches)\n\n{RANKING_RULE} Matching radius \
         {radius} deg. S90 in ph cm-2 s-1 (1-100 GeV).\n\n\
         | rank | team | F1 | purity | completeness | S90 (S1) |{counts_head} submissions |\n\
         |---:|---|---:|---:|---:|---:|{counts_rule}---:|\n"
    );
    for r in &rows {
        let counts = if private {
            format!(" {} | {} | {} |", r.score.tp, r.score.fp, r.score.fn_)
        } else {
            String::new()
        };
        md.push_str(&format!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {} |{counts} {} |\n",
            r.rank,
            r.team.replace('|', "\\|"),
            r.score.f1,
            r.score.purity,
            r.score.completeness,
            s90_text(&r.score),
            r.submissions
        ));
    }
    atomic_write(&out.join("leaderboard.md"), md.as_bytes())?;
    atomic_write(
        &out.join("leaderboard.json"),
        &serde_json::to_vec_pretty(&board_json(&rows, private, private, radius))
            .map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    let html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>gammabench challenge leaderboard ({half})</title>\n<style>{PAGE_STYLE}</style></head><body>\n\
         <h1>Leaderboard &mdash; {half} half</h1>\n<p>{rule} Matching radius {radius}&deg;. \
         S90 in ph&nbsp;cm<sup>-2</sup>&nbsp;s<sup>-1</sup> (1-100 GeV).</p>\n{table}</body></html>\n",
        rule = html_escape(RANKING_RULE),
        table = board_table_html(&rows, private)
    );
    atomic_write(&out.join("leaderboard.html"), html.as_bytes())?;
    Ok(rows)
}
