//! The U-Net detectors (UNEK, CNET, LoG): one network, trained by [`crate::train`], and a
//! head per variant applied to its output.
//!
//! A model directory holds `config.toml` (the resolved experiment config: variant, network
//! shape, head hyperparameters), `model.safetensors` (the best weights), `normaliser.json`
//! (input normalisation and its statistics), `train_log.csv` and `checkpoint/`.

use super::{Detection, Detector, FitReport, PatchSet, PixelPeak};
use crate::config::{DetectorVariant, ExperimentConfig};
use crate::error::{Error, Result};
use crate::models::unet::{Unet, UnetConfig};
use crate::train::data::{self, Draw, Normaliser};
use crate::train::{LossSpec, WEIGHTS_FILE, load_weights, save_weights, train_unet};
use burn::tensor::activation::softmax;
use rayon::prelude::*;
use std::path::Path;

/// Network outputs for one patch.
#[derive(Debug, Clone)]
pub struct PatchOutput {
    /// Source score (softmax channel 1), row-major `[y][x]`.
    pub score: Vec<f64>,
    /// Vote vectors in px (Centroid-Net only), row-major.
    pub vectors: Option<Vec<[f32; 2]>>,
}

/// A U-Net detector.
pub struct NeuralDetector {
    config: ExperimentConfig,
    unet: UnetConfig,
    trained: Option<(Unet, Normaliser)>,
    /// Continue from `out/checkpoint` in [`Detector::fit`].
    pub resume: bool,
    /// Patches of an independent validation sky for early stopping (`None`: a
    /// `train.validation_fraction` split of the training patches).
    pub validation: Option<PatchSet>,
    /// Stream of the Poisson draw of the inputs at detection, keyed by
    /// `(seed, poisson_stream, patch_id)` (`detect/poisson`; the validation sky's own stream
    /// when the `threshold` stage runs the detector there).
    pub poisson_stream: &'static str,
}

fn unet_config(config: &ExperimentConfig) -> UnetConfig {
    UnetConfig {
        in_channels: config.energy.n_bins(),
        out_channels: if config.detect.variant == DetectorVariant::Cnet {
            4
        } else {
            2
        },
        widths: config.detect.unet.widths.clone(),
    }
}

impl NeuralDetector {
    /// An untrained detector (the config must be validated).
    pub fn new(config: &ExperimentConfig) -> Result<Self> {
        if config.detect.variant == DetectorVariant::Ts {
            return Err(Error::Usage(
                "the TS baseline is not a U-Net detector".into(),
            ));
        }
        Ok(Self {
            config: config.clone(),
            unet: unet_config(config),
            trained: None,
            resume: false,
            validation: None,
            poisson_stream: "detect/poisson",
        })
    }

    /// Loads a trained detector from a model directory.
    pub fn load(dir: &Path, config: &ExperimentConfig) -> Result<Self> {
        let mut d = Self::new(config)?;
        let np = dir.join("normaliser.json");
        let text = std::fs::read_to_string(&np).map_err(|e| Error::bad_file(&np, e))?;
        let norm: Normaliser = serde_json::from_str(&text).map_err(|e| Error::bad_file(&np, e))?;
        let device = config.train.device.device()?;
        let model = load_weights(d.unet.init(&device), &dir.join(WEIGHTS_FILE))?;
        d.trained = Some((model, norm));
        Ok(d)
    }

    /// A detector from a network and its normaliser already in memory.
    pub fn from_parts(
        config: &ExperimentConfig,
        model: Unet,
        normaliser: Normaliser,
    ) -> Result<Self> {
        let mut d = Self::new(config)?;
        d.trained = Some((model, normaliser));
        Ok(d)
    }

    /// The network shape a config asks for.
    pub fn unet(&self) -> &UnetConfig {
        &self.unet
    }

    fn loss_spec(&self) -> LossSpec {
        let c = &self.config.detect;
        LossSpec {
            disk_radius_px: c.unet.disk_radius_px,
            vectors: (c.variant == DetectorVariant::Cnet)
                .then_some((c.cnet.max_dist_px, c.cnet.vector_loss_weight)),
        }
    }

    /// Runs the network on every patch (inputs: the shared seeded Poisson draw of the expected
    /// counts, or the observed counts of a challenge bundle).
    pub fn outputs(&self, patches: &PatchSet, batch: usize) -> Result<Vec<PatchOutput>> {
        self.outputs_with_progress(patches, batch, &indicatif::ProgressBar::hidden())
    }

    /// [`Self::outputs`], advancing `progress` by each batch's patches.
    pub fn outputs_with_progress(
        &self,
        patches: &PatchSet,
        batch: usize,
        progress: &indicatif::ProgressBar,
    ) -> Result<Vec<PatchOutput>> {
        let (model, norm) = self
            .trained
            .as_ref()
            .ok_or_else(|| Error::Usage("the detector has not been trained or loaded".into()))?;
        let device = self.config.train.device.device()?;
        let s = patches.size();
        let idx: Vec<usize> = (0..patches.len()).collect();
        let max_dist = self.config.detect.cnet.max_dist_px as f32;
        let mut out = Vec::with_capacity(patches.len());
        for chunk in idx.chunks(batch.max(1)) {
            // observed counts (a challenge bundle) are the input itself
            let draw = if patches.observed {
                Draw::Asimov
            } else {
                Draw::Poisson {
                    seed: self.config.seed,
                    stage: self.poisson_stream,
                }
            };
            let x = data::inputs(patches, chunk, draw, norm, &device);
            let y = model.forward(x);
            let c = y.dims()[1];
            let prob = softmax(y.clone().narrow(1, 0, 2), 1).narrow(1, 1, 1);
            let prob: Vec<f32> = prob
                .into_data()
                .try_to_vec::<f32>()
                .map_err(|e| Error::Internal(format!("{e:?}")))?;
            let vec: Option<Vec<f32>> = if c == 4 {
                Some(
                    y.narrow(1, 2, 2)
                        .into_data()
                        .try_to_vec::<f32>()
                        .map_err(|e| Error::Internal(format!("{e:?}")))?,
                )
            } else {
                None
            };
            for j in 0..chunk.len() {
                let score = prob[j * s * s..(j + 1) * s * s]
                    .iter()
                    .map(|&v| v as f64)
                    .collect();
                let vectors = vec.as_ref().map(|v| {
                    let base = j * 2 * s * s;
                    (0..s * s)
                        .map(|k| [v[base + k] * max_dist, v[base + s * s + k] * max_dist])
                        .collect()
                });
                out.push(PatchOutput { score, vectors });
            }
            progress.inc(chunk.len() as u64);
        }
        Ok(out)
    }

    /// The variant's head on every patch's network output (`outs[i]` of patch `i`, e.g. the
    /// stored maps of an `infer` stage), advancing `progress` by one per patch; needs no
    /// weights ([`Self::new`] is enough).
    pub fn detections_from(
        &self,
        patches: &PatchSet,
        outs: &[PatchOutput],
        progress: &indicatif::ProgressBar,
    ) -> Vec<Detection> {
        let size = patches.size();
        let name = self.name().to_string();
        let per: Vec<Vec<Detection>> = outs
            .par_iter()
            .enumerate()
            .map(|(i, o)| {
                let peaks = self.head(o, size, patches.patch_ids[i]);
                let d = super::to_detections(patches, i, &peaks, &name);
                progress.inc(1);
                d
            })
            .collect();
        per.into_iter().flatten().collect()
    }

    /// The variant's head on one patch's network output.
    pub fn head(&self, out: &PatchOutput, size: usize, patch_id: u64) -> Vec<PixelPeak> {
        let d = &self.config.detect;
        match d.variant {
            DetectorVariant::Unek => {
                super::unet_kmeans::unek_head(&out.score, size, &d.unek, self.config.seed, patch_id)
            }
            DetectorVariant::Cnet => match &out.vectors {
                Some(v) => super::centroid_net::cnet_head(v, size, &d.cnet),
                None => Vec::new(),
            },
            DetectorVariant::Log => super::log_blob::log_head(&out.score, size, &d.log),
            DetectorVariant::Ts => unreachable!("checked in new()"),
        }
    }
}

impl Detector for NeuralDetector {
    fn name(&self) -> &str {
        self.config.detect.variant.as_str()
    }

    fn fit(
        &mut self,
        train: &PatchSet,
        out: &Path,
        pb: &indicatif::ProgressBar,
    ) -> Result<FitReport> {
        std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
        super::save_config(out, &self.config)?;
        let spec = self.loss_spec();
        let t = train_unet(
            &self.config,
            &self.unet,
            &spec,
            crate::train::TrainingData {
                train,
                validation: self.validation.as_ref(),
            },
            out,
            self.resume,
            pb,
        )?;
        let json = serde_json::to_string_pretty(&t.normaliser)
            .map_err(|e| Error::Internal(e.to_string()))?;
        crate::formats::atomic_write(&out.join("normaliser.json"), json.as_bytes())?;
        self.trained = Some((t.model, t.normaliser));
        Ok(t.report)
    }

    /// Network pass then head, each counted per patch (the bar's length is twice the
    /// patches).
    fn detect_with_progress(
        &self,
        patches: &PatchSet,
        progress: &indicatif::ProgressBar,
    ) -> Result<Vec<Detection>> {
        progress.set_length(2 * patches.len() as u64);
        let outs = self.outputs_with_progress(patches, self.config.train.batch_size, progress)?;
        Ok(self.detections_from(patches, &outs, progress))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let (model, norm) = self
            .trained
            .as_ref()
            .ok_or_else(|| Error::Usage("nothing to save: the detector is untrained".into()))?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        super::save_config(dir, &self.config)?;
        save_weights(model, &dir.join(WEIGHTS_FILE))?;
        let json =
            serde_json::to_string_pretty(norm).map_err(|e| Error::Internal(e.to_string()))?;
        crate::formats::atomic_write(&dir.join("normaliser.json"), json.as_bytes())
    }
}
