//! `gammabench export-models`: the trained networks of a run grid written as model folders
//! (the format is [`super::pretrained`]'s).

use super::pretrained::{MANIFEST_FILE, MAX_MODEL_BYTES, MODEL_FILES, OPERATING_POINTS_FILE};
use crate::config::{DetectorVariant, ExperimentConfig};
use crate::error::{Error, Result};
use crate::store::Store;
use std::collections::BTreeMap;
use std::path::Path;

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
            // the score's calibration fitted beside the threshold (p_real), where there is one
            if let Some(c) = crate::calibration::read(tdir)? {
                v["calibration"] =
                    serde_json::to_value(c).map_err(|e| Error::Internal(e.to_string()))?;
            }
            points.insert(head.clone(), v);
        }
        let text = serde_json::to_string_pretty(&serde_json::Value::Object(points.clone()))
            .map_err(|e| Error::Internal(e.to_string()))?;
        crate::formats::atomic_write(&tmp.join(OPERATING_POINTS_FILE), text.as_bytes())?;
        let s = &trained.manifest.summary;
        // the training cost: every epoch's wall time, resumed runs included (the stage's
        // summary; the file of a model folder)
        let times = crate::train::epoch_wall_times(&trained.dir, s);
        let train_time_s: f64 = times.iter().sum();
        let times_file = (!times.is_empty()).then_some(crate::train::TIMES_FILE);
        if let Some(f) = times_file {
            let csv = crate::train::fit::times_csv(&times);
            crate::formats::atomic_write(&tmp.join(f), csv.as_bytes())?;
        }
        let data_hash = crate::formats::sha256_hex(
            serde_json::to_string(&key.inputs)
                .map_err(|e| Error::Internal(e.to_string()))?
                .as_bytes(),
        );
        let files: BTreeMap<String, String> = MODEL_FILES
            .iter()
            .chain([OPERATING_POINTS_FILE].iter())
            .chain(times_file.iter())
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
