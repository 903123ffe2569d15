//! The `infer` stage: a trained network's output maps on a grid point's patches, computed
//! once and read by every head that needs them.
//!
//! The network pass is the expensive half of a U-Net detector (the heads are a k-means, a
//! Laplacian-of-Gaussian or a vote count per patch). UNEK and LoG are two heads on one
//! segmentation U-Net, and the deep ensemble of `train.folds = K` reads the K fold networks'
//! maps of the same patches, so without this stage every sky paid for the same forward
//! passes three times (UNEK, LoG, and the ensemble's copy of each member). With it, a grid
//! runs each (network, fold, test sky) once; the `detect` stages of UNEK, LoG and the
//! ensembles apply their heads to the stored maps, and give the same detections as running
//! the network in place (the maps are the network's `f32` outputs, stored losslessly).
//!
//! Files: `score.npy` (`f32`, shape `(N, S, S)`: the softmax source probability, channel 1
//! of the network's first two, row-major `[y][x]` per patch, in the order of the patches
//! directory) and, for the Centroid-Net, `vectors.npy` (`f32`, `(N, S, S, 2)`: the vote
//! vector of every pixel in px, already scaled by `detect.cnet.max_dist_px`).
//!
//! The key: the trained network's key, the test patches' key, the Poisson stream of the
//! inputs (`(seed, "detect/poisson", patch_id)`, or the observed counts of a challenge
//! bundle), the batch size of the pass and, for the Centroid-Net, the vote scale.

use super::PatchSet;
use super::neural::{NeuralDetector, PatchOutput};
use super::stage::{network, run_train, train_key, trains};
use crate::config::{DetectorVariant, ExperimentConfig};
use crate::error::{Error, Result};
use crate::store::{StageKey, StageOutput, Store};
use std::path::Path;
use std::time::Instant;

/// The source-probability maps.
pub const SCORE_FILE: &str = "score.npy";
/// The Centroid-Net's vote vectors.
pub const VECTORS_FILE: &str = "vectors.npy";
/// The Poisson stream of the test inputs (shared with [`NeuralDetector`]'s default).
const POISSON_STREAM: &str = "detect/poisson";

/// True when the grid point's detector runs a network (every variant but the TS baseline).
pub fn applies(cfg: &ExperimentConfig) -> bool {
    trains(cfg)
}

/// The content key of the `infer` stage.
pub fn infer_key(cfg: &ExperimentConfig) -> Result<StageKey> {
    let inputs: std::collections::BTreeMap<String, String> = [
        ("model".to_string(), train_key(cfg)?.hash()),
        (
            "patches".to_string(),
            crate::patches::stage_key(cfg)?.hash(),
        ),
    ]
    .into();
    let vote_scale = if cfg.detect.variant == DetectorVariant::Cnet {
        serde_json::json!(cfg.detect.cnet.max_dist_px)
    } else {
        serde_json::Value::Null
    };
    Ok(StageKey {
        stage: "infer".into(),
        config: serde_json::json!({
            "network": network(cfg),
            "batch_size": cfg.train.batch_size,
            "poisson_stream": POISSON_STREAM,
            "vote_scale_px": vote_scale,
        }),
        inputs,
        seed: cfg.seed,
    })
}

/// Runs (or reuses) the `infer` stage of a network grid point.
pub fn run_infer(
    store: &Store,
    cfg: &ExperimentConfig,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<StageOutput> {
    if !applies(cfg) {
        return Err(Error::Usage(format!(
            "the {} detector runs no network: it has no infer stage",
            cfg.detect.variant.as_str()
        )));
    }
    let key = infer_key(cfg)?;
    if !force && let Some(o) = store.lookup_verified(&key) {
        return Ok(o);
    }
    let model = run_train(store, cfg, false, progress)?;
    let patches = crate::patches::run(store, cfg, false, progress)?;
    store.run_stage(&key, force, |dir| {
        let set = PatchSet::load(&patches.dir, 0)?;
        let mut net = NeuralDetector::load(&model.dir, cfg)?;
        net.poisson_stream = POISSON_STREAM;
        progress.set_length(set.len() as u64);
        let t0 = Instant::now();
        let outs = net.outputs_with_progress(&set, cfg.train.batch_size, progress)?;
        let secs = t0.elapsed().as_secs_f64();
        write_outputs(dir, &outs, set.size())?;
        Ok(serde_json::json!({
            "network": network(cfg),
            "n_patches": set.len(),
            "infer_s": secs,
            "patches_per_s": set.len() as f64 / secs.max(1e-9),
        }))
    })
}

/// Writes the maps of `outs` (one per patch, `size` x `size`) into `dir`.
pub fn write_outputs(dir: &Path, outs: &[PatchOutput], size: usize) -> Result<()> {
    let n = outs.len();
    let mut score = Vec::with_capacity(n * size * size);
    for o in outs {
        // the network's f32 probabilities, widened to f64 in memory: narrowing is exact
        score.extend(o.score.iter().map(|&v| v as f32));
    }
    crate::npy::write_f32(&dir.join(SCORE_FILE), &[n, size, size], &score)?;
    if outs.first().is_some_and(|o| o.vectors.is_some()) {
        let mut v = Vec::with_capacity(n * size * size * 2);
        for o in outs {
            let vectors = o.vectors.as_ref().ok_or_else(|| {
                Error::Internal("some patches have vote vectors and some none".into())
            })?;
            v.extend(vectors.iter().flat_map(|p| [p[0], p[1]]));
        }
        crate::npy::write_f32(&dir.join(VECTORS_FILE), &[n, size, size, 2], &v)?;
    }
    Ok(())
}

/// Reads the maps of an `infer` stage for the patches they were computed on (`n` patches of
/// `size` x `size`); a shape that does not fit names the file.
pub fn read_outputs(dir: &Path, n: usize, size: usize) -> Result<Vec<PatchOutput>> {
    let path = dir.join(SCORE_FILE);
    let (shape, score) = crate::npy::read_f32(&path)?;
    if shape != [n, size, size] {
        return Err(Error::bad_file(
            &path,
            format!(
                "shape {shape:?}, expected [{n}, {size}, {size}] (the patches' count and size)"
            ),
        ));
    }
    let vpath = dir.join(VECTORS_FILE);
    let vectors = if vpath.exists() {
        let (vshape, v) = crate::npy::read_f32(&vpath)?;
        if vshape != [n, size, size, 2] {
            return Err(Error::bad_file(
                &vpath,
                format!("shape {vshape:?}, expected [{n}, {size}, {size}, 2]"),
            ));
        }
        Some(v)
    } else {
        None
    };
    let px = size * size;
    Ok((0..n)
        .map(|i| PatchOutput {
            score: score[i * px..(i + 1) * px]
                .iter()
                .map(|&v| v as f64)
                .collect(),
            vectors: vectors.as_ref().map(|v| {
                v[i * 2 * px..(i + 1) * 2 * px]
                    .chunks_exact(2)
                    .map(|c| [c[0], c[1]])
                    .collect()
            }),
        })
        .collect())
}

/// The `infer` stage: a trained network's output maps on a grid point's test patches.
pub struct InferStage;

impl crate::stage::Stage for InferStage {
    fn name(&self) -> &'static str {
        "infer"
    }
    fn about(&self) -> &'static str {
        "runs a trained network on the test patches once and stores its maps, which every head (UNEK, LoG, CNET, the ensembles) reads"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &[SCORE_FILE]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        if !applies(cfg) {
            return Ok(vec![]);
        }
        Ok(vec![
            crate::stage::Input::same("train", cfg, label),
            crate::stage::Input::same("patches", cfg, label),
        ])
    }
    fn key(&self, cfg: &ExperimentConfig) -> Result<StageKey> {
        infer_key(cfg)
    }
    fn run(
        &self,
        store: &Store,
        cfg: &ExperimentConfig,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<StageOutput> {
        run_infer(store, cfg, force, progress)
    }
    /// The network and the test sky, not the head (UNEK and LoG share the node).
    fn label(&self, cfg: &ExperimentConfig, _point_label: &str) -> String {
        let fold = if cfg.train.cross_validates() {
            format!(" fold {}/{}", cfg.train.fold, cfg.train.folds)
        } else {
            String::new()
        };
        let sky = match cfg.catalog.preset {
            Some(p) => format!("{p:?}-{}", cfg.sky.iem),
            None => cfg.sky.iem.clone(),
        };
        format!("{}{fold} on {sky}", network(cfg))
    }
    fn describe(&self, out: &StageOutput) -> String {
        let s = &out.manifest.summary;
        format!(
            "{} maps of {} patches ({:.1} patches/s)",
            s["network"].as_str().unwrap_or("?"),
            s["n_patches"],
            s["patches_per_s"].as_f64().unwrap_or(f64::NAN)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::Detector;
    use burn::prelude::*;

    fn probe(variant: &str) -> (ExperimentConfig, PatchSet) {
        let cfg = crate::config::load_text(
            "t.toml",
            &format!(
                "seed = 5\n[detect]\nvariant = \"{variant}\"\n[detect.unet]\nwidths = [4, 8]\n\
                 [detect.unek]\nscore_threshold = 0.3\nk_max = 6\n"
            ),
            &[],
        )
        .unwrap()
        .remove(0)
        .config;
        let nb = cfg.energy.n_bins();
        let (n, size) = (3usize, 64usize);
        let mut data = vec![0.5f32; n * size * size * nb];
        for p in 0..n {
            let (cx, cy) = (20.0 + 10.0 * p as f32, 30.0 + 5.0 * p as f32);
            for y in 0..size {
                for x in 0..size {
                    let r2 = (x as f32 - cx).powi(2) + (y as f32 - cy).powi(2);
                    for b in 0..nb {
                        data[((p * size + y) * size + x) * nb + b] += 150.0 * (-r2 / 6.0).exp();
                    }
                }
            }
        }
        let total = crate::patches::set::Cube::from_vec([n, size, size, nb], data);
        let patches = PatchSet {
            patch_ids: vec![4, 9, 11],
            centres_deg: vec![(10.0, 40.0), (100.0, -25.0), (200.0, 50.0)],
            diffuse: crate::patches::set::Cube::zeros(total.shape()),
            total,
            truth: vec![Vec::new(); n],
            observed: false,
        };
        (cfg, patches)
    }

    /// The stored maps are the network's outputs bit for bit, and the heads on them give the
    /// detections of the network run in place (UNEK and LoG on one U-Net, CNET's votes).
    #[test]
    fn heads_on_stored_maps_detect_what_the_network_does() {
        for (variant, heads) in [("unek", &["unek", "log"][..]), ("cnet", &["cnet"][..])] {
            let (cfg, patches) = probe(variant);
            let device = Device::flex();
            device.seed(11);
            let net0 = NeuralDetector::new(&cfg).unwrap();
            let model = net0.unet().init(&device);
            let norm = crate::train::data::Normaliser {
                kind: crate::config::Normalisation::Log1p,
                mean: vec![],
                std: vec![],
            };
            let net = NeuralDetector::from_parts(&cfg, model.clone(), norm.clone()).unwrap();
            let outs = net.outputs(&patches, 2).unwrap();
            let dir = tempfile::tempdir().unwrap();
            write_outputs(dir.path(), &outs, 64).unwrap();
            let back = read_outputs(dir.path(), 3, 64).unwrap();
            assert_eq!(back.len(), outs.len());
            for (a, b) in outs.iter().zip(&back) {
                assert_eq!(a.score, b.score);
                assert_eq!(a.vectors, b.vectors);
            }
            assert_eq!(dir.path().join(VECTORS_FILE).exists(), variant == "cnet");
            for head in heads {
                let mut hcfg = cfg.clone();
                hcfg.detect.variant = match *head {
                    "log" => DetectorVariant::Log,
                    "cnet" => DetectorVariant::Cnet,
                    _ => DetectorVariant::Unek,
                };
                let direct = NeuralDetector::from_parts(&hcfg, model.clone(), norm.clone())
                    .unwrap()
                    .detect(&patches)
                    .unwrap();
                let stored = NeuralDetector::new(&hcfg).unwrap().detections_from(
                    &patches,
                    &back,
                    &indicatif::ProgressBar::hidden(),
                );
                assert_eq!(direct, stored, "{head}");
            }
        }
    }

    #[test]
    fn maps_of_another_patch_set_are_refused_with_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let outs = vec![
            PatchOutput {
                score: vec![0.25; 16],
                vectors: None,
            };
            2
        ];
        write_outputs(dir.path(), &outs, 4).unwrap();
        let e = read_outputs(dir.path(), 3, 4).unwrap_err().to_string();
        assert!(e.contains(SCORE_FILE) && e.contains("[3, 4, 4]"), "{e}");
        assert_eq!(
            read_outputs(dir.path(), 2, 4).unwrap()[1].score,
            vec![0.25; 16]
        );
    }
}
