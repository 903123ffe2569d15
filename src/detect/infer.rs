//! The maps of the `infer` stage (its key and runner are in [`super::stage`]): a trained
//! network's output maps on a grid point's patches, computed once and read by every head
//! that needs them.
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

use super::neural::PatchOutput;
use crate::error::{Error, Result};
use std::path::Path;

/// The source-probability maps.
pub const SCORE_FILE: &str = "score.npy";
/// The Centroid-Net's vote vectors.
pub const VECTORS_FILE: &str = "vectors.npy";
/// The Poisson stream of the test inputs (shared with `NeuralDetector`'s default).
pub const POISSON_STREAM: &str = "detect/poisson";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DetectorVariant, ExperimentConfig};
    use crate::detect::neural::NeuralDetector;
    use crate::detect::{Detector, PatchSet};
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
