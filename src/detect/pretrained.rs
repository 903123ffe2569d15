//! Pretrained models: a trained network exported from the run store into a folder a user can
//! ship, run (`gammabench detect --model DIR`) and score on any sky, and imported back into a
//! run as the `train` stage (`train.pretrained = "DIR"`).
//!
//! A model folder holds:
//! * `model.safetensors`, `normaliser.json`, `config.toml` (the resolved config it was trained
//!   with), `train_log.csv`: what the `train` stage wrote;
//! * `operating_points.json`: per head of the network (`unek` and `log` on the segmentation
//!   U-Net, `cnet` on Centroid-Net) the `threshold` stage's choice on the validation sky
//!   (`min_score`, the rule, the validation purity and completeness);
//! * `MODEL.json`: the manifest: the network, the train stage's key and the keys of every
//!   training and validation patch set and their SHA-256 (`training_data.hash`), the commit
//!   that trained it, the training cost (wall time summed from `train_log.csv`, patches,
//!   epochs), the validation metrics and the SHA-256 of each file.

use crate::config::{DetectorVariant, ExperimentConfig};
use crate::error::{Error, Result};
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::Path;

/// The manifest file of a model folder.
pub const MANIFEST_FILE: &str = "MODEL.json";
/// Per-head operating thresholds of a model folder.
pub const OPERATING_POINTS_FILE: &str = "operating_points.json";
/// Files copied from the `train` stage.
const MODEL_FILES: [&str; 4] = [
    crate::train::WEIGHTS_FILE,
    "normaliser.json",
    "config.toml",
    crate::train::LOG_FILE,
];
/// Largest model folder the repository takes.
pub const MAX_MODEL_BYTES: u64 = 10 * 1024 * 1024;

/// The SHA-256 of the files that define a model folder (weights, normaliser, config,
/// operating points): its content key as the `train` stage of a run.
pub fn content_hashes(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for f in [
        crate::train::WEIGHTS_FILE,
        "normaliser.json",
        "config.toml",
        OPERATING_POINTS_FILE,
    ] {
        let p = dir.join(f);
        if p.exists() {
            out.insert(f.to_string(), crate::formats::sha256_file(&p)?);
        } else if f != OPERATING_POINTS_FILE {
            return Err(Error::bad_file(
                &p,
                "missing: not a model folder (see `gammabench export-models`)",
            ));
        }
    }
    Ok(out)
}

/// The operating threshold of `cfg`'s head in a model folder, if it has one. A threshold is
/// on the scale of its head's scores, so the head's section must be the one it was chosen
/// with (else an error naming the differing section).
pub fn operating_threshold(dir: &Path, cfg: &ExperimentConfig) -> Result<Option<f64>> {
    let variant = cfg.detect.variant;
    let p = dir.join(OPERATING_POINTS_FILE);
    if !p.exists() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
    let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| Error::bad_file(&p, e))?;
    let Some(h) = v.get(variant.as_str()) else {
        return Ok(None);
    };
    let want = &h["head"];
    let have = &super::stage::head_config(cfg)["head"];
    if !want.is_null() && want != have {
        return Err(Error::Usage(format!(
            "{}: the {} operating point was chosen with [detect.{}] = {want}; this config has \
             {have}: use the model's settings (its config.toml) or a fixed threshold",
            p.display(),
            variant.as_str(),
            variant.as_str()
        )));
    }
    Ok(Some(h["min_score"].as_f64().unwrap_or(f64::NEG_INFINITY)))
}

/// Checks that a pretrained model fits the grid point that imports it: the same network
/// (variant family), U-Net shape and energy bins.
pub fn check_fits(dir: &Path, cfg: &ExperimentConfig) -> Result<ExperimentConfig> {
    let trained = super::read_config(&dir.join("config.toml"))?;
    let net = |c: &ExperimentConfig| super::stage::network(c);
    if net(&trained) != net(cfg) {
        return Err(Error::Usage(format!(
            "{}: a {} cannot serve the {} head (train.pretrained)",
            dir.display(),
            net(&trained),
            cfg.detect.variant.as_str()
        )));
    }
    if trained.detect.unet != cfg.detect.unet || trained.energy != cfg.energy {
        return Err(Error::Usage(format!(
            "{}: trained with [detect.unet] {:?} and {} energy bins; this config has {:?} and {} \
             (set [detect.unet] and [energy] as the model's config.toml)",
            dir.display(),
            trained.detect.unet.widths,
            trained.energy.n_bins(),
            cfg.detect.unet.widths,
            cfg.energy.n_bins()
        )));
    }
    if net(cfg) == "centroid_net_unet"
        && trained.detect.cnet.max_dist_px != cfg.detect.cnet.max_dist_px
    {
        return Err(Error::Usage(format!(
            "{}: trained with detect.cnet.max_dist_px = {}; this config has {}",
            dir.display(),
            trained.detect.cnet.max_dist_px,
            cfg.detect.cnet.max_dist_px
        )));
    }
    Ok(trained)
}

/// Writes every trained network of `points` (run before in `store`) into `out/<network>`,
/// with the operating points of the heads that share it.
pub fn export(
    store: &Store,
    points: &[crate::config::Resolved],
    out: &Path,
) -> Result<Vec<std::path::PathBuf>> {
    // network -> (train key, first config, heads -> threshold stage dir)
    type Heads = BTreeMap<String, (std::path::PathBuf, serde_json::Value)>;
    let mut nets: BTreeMap<String, (crate::store::StageKey, ExperimentConfig, Heads)> =
        BTreeMap::new();
    for p in points {
        let cfg = &p.config;
        if cfg.detect.variant == DetectorVariant::Ts || !cfg.train.pretrained.is_empty() {
            continue;
        }
        let key = super::stage::train_key(cfg)?;
        let name = super::stage::network(cfg).replace('_', "-");
        let entry = nets
            .entry(name.clone())
            .or_insert_with(|| (key.clone(), cfg.clone(), BTreeMap::new()));
        if entry.0.hash() != key.hash() {
            return Err(Error::Usage(format!(
                "the grid trains more than one {name} ({} and {}): export one grid point at a time with --set",
                &entry.0.hash()[..12],
                &key.hash()[..12]
            )));
        }
        if super::stage::tunes(cfg) {
            let tk = super::stage::threshold_key(cfg)?;
            let o = store.lookup_verified(&tk).ok_or_else(|| {
                Error::Usage(format!(
                    "the threshold stage {} ({} on the validation sky) is not in the store {}: run the grid first",
                    &tk.hash()[..12],
                    cfg.detect.variant.as_str(),
                    store.root().display()
                ))
            })?;
            entry.2.insert(
                cfg.detect.variant.as_str().to_string(),
                (
                    o.dir.clone(),
                    super::stage::head_config(cfg)["head"].clone(),
                ),
            );
        }
    }
    if nets.is_empty() {
        return Err(Error::Usage("the grid trains no network to export".into()));
    }
    let mut written = Vec::new();
    for (name, (key, cfg, heads)) in nets {
        let trained = store.lookup_verified(&key).ok_or_else(|| {
            Error::Usage(format!(
                "the train stage {} ({name}) is not in the store {}: run the grid first",
                &key.hash()[..12],
                store.root().display()
            ))
        })?;
        let dir = out.join(&name);
        // written beside and renamed at the end: an existing folder is replaced whole or not at all
        let tmp = out.join(format!(".tmp-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        for f in MODEL_FILES {
            crate::formats::atomic_copy(&trained.dir.join(f), &tmp.join(f))?;
        }
        let mut points = serde_json::Map::new();
        for (head, (tdir, section)) in &heads {
            let p = tdir.join(super::stage::OPERATING_POINT_FILE);
            let text = std::fs::read_to_string(&p).map_err(|e| Error::io(&p, e))?;
            let mut v: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| Error::bad_file(&p, e))?;
            v["threshold_stage"] = tdir
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
                .into();
            // the head's settings the threshold belongs to (its scores' scale)
            v["head"] = section.clone();
            points.insert(head.clone(), v);
        }
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(points.clone()))
            .map_err(|e| Error::Internal(e.to_string()))?;
        crate::formats::atomic_write(&tmp.join(OPERATING_POINTS_FILE), text.as_bytes())?;
        let s = &trained.manifest.summary;
        // the training cost from the log itself: every epoch's wall time, resumed runs included
        let log_path = tmp.join(crate::train::LOG_FILE);
        let log_text = std::fs::read_to_string(&log_path).map_err(|e| Error::io(&log_path, e))?;
        let train_time_s: f64 = log_text
            .lines()
            .skip(1)
            .filter_map(|l| l.split(',').nth(4)?.parse::<f64>().ok())
            .sum();
        let data_hash = crate::formats::sha256_hex(
            serde_json::to_string(&key.inputs)
                .map_err(|e| Error::Internal(e.to_string()))?
                .as_bytes(),
        );
        let files: BTreeMap<String, String> = MODEL_FILES
            .iter()
            .chain([OPERATING_POINTS_FILE].iter())
            .map(|f| Ok((f.to_string(), crate::formats::sha256_file(&tmp.join(f))?)))
            .collect::<Result<_>>()?;
        let manifest = serde_json::json!({
            "name": name,
            "network": super::stage::network(&cfg),
            "unet_widths": cfg.detect.unet.widths,
            "heads": points.keys().collect::<Vec<_>>(),
            "train_stage": key.hash(),
            "training_data": {
                "hash": data_hash,
                "sky": format!("{:?}-{}", cfg.train.data.preset, cfg.train.data.iem),
                "patch_sets": key.inputs,
                "n_patches": s["n_train_patches"],
                "patches_per_realisation": cfg.train.data.patches_per_realisation,
                "n_validation_patches": s["n_validation_patches"],
                "augment": cfg.train.augment,
            },
            "training": {
                "train_time_s": train_time_s,
                "epochs_run": s["epochs_run"],
                "best_epoch": s["best_epoch"],
                "best_val_loss": s["best_val_loss"],
                "threads": trained.manifest.threads,
            },
            "validation": points.iter().map(|(h, v)| (h.clone(), v["validation"].clone())).collect::<serde_json::Map<_, _>>(),
            "git_commit": trained.manifest.git_commit,
            "exported_by_commit": crate::store::GIT_COMMIT,
            "crate_version": trained.manifest.crate_version,
            "trained_utc": trained.manifest.created_utc,
            "files": files,
        });
        let text =
            serde_json::to_string_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?;
        crate::formats::atomic_write(&tmp.join(MANIFEST_FILE), text.as_bytes())?;
        let bytes: u64 = std::fs::read_dir(&tmp)
            .map_err(|e| Error::io(&tmp, e))?
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        if bytes > MAX_MODEL_BYTES {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(Error::Usage(format!(
                "{name}: {bytes} bytes, over the {MAX_MODEL_BYTES}-byte limit of a shipped model"
            )));
        }
        if dir.exists() {
            std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        std::fs::rename(&tmp, &dir).map_err(|e| Error::io(&dir, e))?;
        log::info!(
            "{name}: {bytes} bytes, heads {:?} -> {}",
            points.keys().collect::<Vec<_>>(),
            dir.display()
        );
        written.push(dir);
    }
    Ok(written)
}
