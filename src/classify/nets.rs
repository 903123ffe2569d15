//! Neural-network variants on burn 0.22 (flex backend, pure Rust).
//!
//! * `dnn` (Finke, Kraemer & Manconi 2021, Fig. 1 right): one dense branch per input (energy
//!   spectrum `Flux_Band`, light curve `Flux_History`), ReLU, concatenated (with GLAT when
//!   enabled) into a dense classification head ending in a softmax. The paper optimised the
//!   layer sizes by 10-fold CV; ours are configurable (`hidden`, default two layers of 16 per
//!   branch and one of 16 in the head). Adam, batch 64, lr 0.01, 50 epochs.
//! * `rnn`: each branch is 3 stacked simple recurrent layers (Keras SimpleRNN:
//!   `h_t = tanh(W x_t + U h_{t-1} + b)`) of 8 units reading the sequence one value per step;
//!   the final hidden states of both branches (16 features) enter the same head.
//!   Adam, batch 32, lr 0.001.
//! * `bnn`: Bayesian approximation by Monte-Carlo dropout (Gal & Ghahramani 2016) instead of
//!   the paper's DenseFlipout layers: a dense network on the energy spectrum only (as the
//!   paper's BNN) with dropout p after every hidden layer, kept on at prediction; the
//!   prediction is the mean of `mc_samples` stochastic passes and the spread their standard
//!   deviation. Masks are drawn from `(seed, "classify/bnn/...", item)` streams, not from the
//!   backend, so they are reproducible.
//! * `conv_bilstm` (Fraga et al., blazar SEDs): a 1-d convolution (kernel 3, same padding,
//!   ReLU) over the energy spectrum followed by a bidirectional LSTM whose final forward and
//!   backward hidden states are concatenated; the light curve enters through a dense branch.
//!
//! All minimise the categorical cross-entropy `L = -1/B sum_i sum_k w_k y_ik log p_ik`
//! (class weights w_k = 1 unless `class_weights` is set: `w_k = n / (K n_k)`).

use super::train::{TrainLog, batch_tensor, class_weights, scalar, target_tensor};
use super::{Classifier, Layout, Matrix};
use crate::error::{Error, Result};
use crate::train::fit::{self, Task};
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig, Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::nn::{BiLstm, BiLstmConfig, Linear, LinearConfig, PaddingConfig1d, Rnn, RnnConfig};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Device, Tensor, TensorData};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use std::path::Path;

pub use super::config::{Kind, NetConfig};

/// Side (pixels) and energy bins of an image-track cut-out.
pub const IMAGE_SHAPE: (usize, usize) = (7, 5);

/// The burn module; the parts a family does not use are empty.
#[derive(Module, Debug)]
pub struct Net {
    band_dense: Vec<Linear>,
    hist_dense: Vec<Linear>,
    band_rnn: Vec<Rnn>,
    hist_rnn: Vec<Rnn>,
    conv: Vec<Conv1d>,
    lstm: Vec<BiLstm>,
    bn: Vec<BatchNorm>,
    conv2d: Vec<Conv2d>,
    pool: Vec<MaxPool2d>,
    head: Vec<Linear>,
    out: Linear,
}

fn dense_stack(d_in: usize, units: &[usize], device: &Device) -> (Vec<Linear>, usize) {
    let mut d = d_in;
    let mut v = Vec::new();
    for &u in units {
        v.push(LinearConfig::new(d, u).init(device));
        d = u;
    }
    (v, d)
}

fn rnn_stack(layers: usize, units: usize, device: &Device) -> Vec<Rnn> {
    (0..layers)
        .map(|l| RnnConfig::new(if l == 0 { 1 } else { units }, units, true).init(device))
        .collect()
}

/// Builds an untrained network (weights from the device's seeded generator).
pub fn build(
    kind: Kind,
    cfg: &NetConfig,
    layout: &Layout,
    n_classes: usize,
    device: &Device,
) -> Net {
    let (nb, nh, ne) = (layout.band.len(), layout.history.len(), layout.extra.len());
    let empty = || (Vec::new(), 0usize);
    let (band_dense, db) = match kind {
        Kind::Dnn | Kind::Bnn => dense_stack(nb, &cfg.branch_units, device),
        _ => empty(),
    };
    let (hist_dense, dh) = match kind {
        Kind::Dnn | Kind::ConvBilstm if nh > 0 => dense_stack(nh, &cfg.branch_units, device),
        _ => empty(),
    };
    let (band_rnn, hist_rnn, dr) = match kind {
        Kind::Rnn => (
            rnn_stack(cfg.rnn_layers, cfg.rnn_units, device),
            if nh > 0 {
                rnn_stack(cfg.rnn_layers, cfg.rnn_units, device)
            } else {
                Vec::new()
            },
            cfg.rnn_units * if nh > 0 { 2 } else { 1 },
        ),
        _ => (Vec::new(), Vec::new(), 0),
    };
    let (conv, lstm, dc) = match kind {
        Kind::ConvBilstm => (
            vec![
                Conv1dConfig::new(1, cfg.conv_filters, 3)
                    .with_padding(PaddingConfig1d::Same)
                    .init(device),
            ],
            vec![BiLstmConfig::new(cfg.conv_filters, cfg.lstm_units, true).init(device)],
            2 * cfg.lstm_units,
        ),
        _ => (Vec::new(), Vec::new(), 0),
    };
    // image CNN: the band range holds the 7 x 7 x 5 cut-out, [y][x][bin] order
    let (bn, conv2d, pool, di) = match kind {
        Kind::Cnn => {
            let (side, bins) = IMAGE_SHAPE;
            let ch = [8usize, 16, 16, 32];
            let mut convs = Vec::new();
            let mut c_in = bins;
            for c in ch {
                convs.push(
                    Conv2dConfig::new([c_in, c], [3, 3])
                        .with_padding(PaddingConfig2d::Same)
                        .init(device),
                );
                c_in = c;
            }
            let pooled = side / 2;
            (
                vec![BatchNormConfig::new(bins).init(device)],
                convs,
                vec![MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init()],
                32 * pooled * pooled,
            )
        }
        _ => (Vec::new(), Vec::new(), Vec::new(), 0),
    };
    let merged = db + dh + dr + dc + ne + di;
    let (head, dout) = dense_stack(merged, &cfg.head_units, device);
    Net {
        bn,
        conv2d,
        pool,
        band_dense,
        hist_dense,
        band_rnn,
        hist_rnn,
        conv,
        lstm,
        head,
        out: LinearConfig::new(dout, n_classes).init(device),
    }
}

/// Dropout masks for one forward pass: one `[batch, width]` tensor per hidden dense layer
/// (band branch, then head), entries 0 or 1/(1-p) (inverted dropout).
pub struct Masks(pub Vec<Tensor<2>>);

/// Draws masks for `rows` items from `stream`.
pub fn draw_masks(
    net: &Net,
    rows: usize,
    p: f64,
    r: &mut crate::rng::Rng,
    device: &Device,
) -> Masks {
    let widths: Vec<usize> = net
        .band_dense
        .iter()
        .chain(&net.head)
        .map(|l| l.weight.val().dims()[1])
        .collect();
    let keep = 1.0 / (1.0 - p) as f32;
    Masks(
        widths
            .into_iter()
            .map(|w| {
                let v: Vec<f32> = (0..rows * w)
                    .map(|_| if r.random::<f64>() < p { 0.0 } else { keep })
                    .collect();
                Tensor::from_data(TensorData::new(v, [rows, w]), device)
            })
            .collect(),
    )
}

fn seq_last(stack: &[Rnn], x: Tensor<2>) -> Tensor<2> {
    let [b, t] = x.dims();
    let mut h: Tensor<3> = x.reshape([b, t, 1]);
    let mut last = None;
    for l in stack {
        let (out, state) = l.forward(h, None);
        h = out;
        last = Some(state.hidden);
    }
    last.expect("at least one recurrent layer")
}

impl Net {
    /// The device the weights live on.
    pub fn device(&self) -> Device {
        self.out.weight.val().device()
    }

    /// Logits `[batch, n_classes]` for standardised features `[batch, d]`.
    pub fn forward(
        &self,
        kind: Kind,
        layout: &Layout,
        x: Tensor<2>,
        masks: Option<&Masks>,
    ) -> Tensor<2> {
        let [b, _] = x.dims();
        let cols = |r: &std::ops::Range<usize>| x.clone().narrow(1, r.start, r.len());
        let mut mask_i = 0;
        let mut apply = |t: Tensor<2>| -> Tensor<2> {
            match masks {
                Some(m) => {
                    let t = t * m.0[mask_i].clone();
                    mask_i += 1;
                    t
                }
                None => t,
            }
        };
        let mut parts = Vec::new();
        match kind {
            Kind::Dnn | Kind::Bnn => {
                let mut h = cols(&layout.band);
                for l in &self.band_dense {
                    h = apply(relu(l.forward(h)));
                }
                parts.push(h);
            }
            Kind::Rnn => {
                parts.push(seq_last(&self.band_rnn, cols(&layout.band)));
                if !self.hist_rnn.is_empty() {
                    parts.push(seq_last(&self.hist_rnn, cols(&layout.history)));
                }
            }
            Kind::ConvBilstm => {
                let s = cols(&layout.band);
                let nb = layout.band.len();
                let c = relu(self.conv[0].forward(s.reshape([b, 1, nb]))); // [b, f, nb]
                let (_, state) = self.lstm[0].forward(c.swap_dims(1, 2), None);
                let hd = state.hidden; // [2, b, h]
                let [_, _, hu] = hd.dims();
                parts.push(hd.swap_dims(0, 1).reshape([b, 2 * hu]));
            }
            Kind::Cnn => {
                let (side, bins) = IMAGE_SHAPE;
                let img: Tensor<4> = cols(&layout.band).reshape([b, side, side, bins]);
                let mut h = self.bn[0].forward(img.permute([0, 3, 1, 2]));
                h = relu(self.conv2d[0].forward(h));
                h = relu(self.conv2d[1].forward(h));
                h = self.pool[0].forward(h);
                h = relu(self.conv2d[2].forward(h));
                h = relu(self.conv2d[3].forward(h));
                let [_, c, hh, ww] = h.dims();
                parts.push(h.reshape([b, c * hh * ww]));
            }
        }
        if !self.hist_dense.is_empty() {
            let mut h = cols(&layout.history);
            for l in &self.hist_dense {
                h = relu(l.forward(h));
            }
            parts.push(h);
        }
        if !layout.extra.is_empty() {
            parts.push(cols(&layout.extra));
        }
        let mut h = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(parts, 1)
        };
        for l in &self.head {
            h = apply(relu(l.forward(h)));
        }
        self.out.forward(h)
    }
}

/// A network classifier (any [`Kind`]).
pub struct NetClassifier {
    /// Family.
    pub kind: Kind,
    /// Hyperparameters.
    pub config: NetConfig,
    /// Column layout of the inputs.
    pub layout: Layout,
    /// Number of classes.
    pub n_classes: usize,
    /// Seed of the fit (MC-dropout masks at prediction derive from it).
    pub seed: u64,
    /// Trained weights (on the inference device of `device`; flex after [`load`]).
    pub net: Option<Net>,
    /// Loss curves of the last fit.
    pub log: Option<TrainLog>,
    /// Optional per-epoch training data (fresh Poisson draws of the image track): called with
    /// the epoch, returns rows aligned with the `y` given to `fit`.
    pub augment: Option<Augment>,
    /// The backend `fit` trains on (`classify.device`); the trained weights stay on its
    /// inference device, so prediction runs there too. [`load`] puts a saved network on flex.
    pub device: crate::compute::Backend,
}

/// Per-epoch training-data generator.
pub type Augment = std::sync::Arc<dyn Fn(usize) -> Matrix + Send + Sync>;

#[derive(Serialize, Deserialize)]
struct Meta {
    variant: String,
    kind: Kind,
    config: NetConfig,
    layout: Layout,
    n_classes: usize,
    seed: u64,
}

impl NetClassifier {
    /// An untrained network classifier.
    pub fn new(kind: Kind, config: NetConfig, layout: Layout, n_classes: usize) -> Self {
        Self {
            kind,
            config,
            layout,
            n_classes,
            seed: 0,
            net: None,
            log: None,
            augment: None,
            device: crate::compute::Backend::default(),
        }
    }

    /// The same classifier, trained on `device`.
    pub fn on(mut self, device: crate::compute::Backend) -> Self {
        self.device = device;
        self
    }

    fn trained(&self) -> Result<&Net> {
        self.net
            .as_ref()
            .ok_or_else(|| Error::Internal(format!("{}: predict before fit", self.kind.as_str())))
    }

    /// Softmax probabilities of every MC-dropout pass (bnn) or of the single deterministic pass.
    fn passes(&self, x: &Matrix) -> Result<Vec<Vec<Vec<f64>>>> {
        let net = self.trained()?;
        let device = net.device();
        let t = Tensor::<2>::from_data(TensorData::new(x.data.clone(), [x.n, x.d]), &device);
        let n_pass = if self.kind == Kind::Bnn && self.config.dropout > 0.0 {
            self.config.mc_samples
        } else {
            1
        };
        let mut out = Vec::with_capacity(n_pass);
        for s in 0..n_pass {
            let masks = (n_pass > 1).then(|| {
                let mut r = crate::rng::stream(self.seed, "classify/bnn/mc", s as u64);
                draw_masks(net, x.n, self.config.dropout, &mut r, &device)
            });
            let logits = net.forward(self.kind, &self.layout, t.clone(), masks.as_ref());
            out.push(to_rows(logits, self.n_classes)?);
        }
        Ok(out)
    }
}

/// `[n, k]` tensor to rows of f64.
pub fn to_rows(t: Tensor<2>, k: usize) -> Result<Vec<Vec<f64>>> {
    let v: Vec<f32> = t
        .into_data()
        .try_to_vec()
        .map_err(|e| Error::Internal(format!("{e:?}")))?;
    Ok(v.chunks(k)
        .map(|c| c.iter().map(|a| *a as f64).collect())
        .collect())
}

/// A network of [`NetClassifier`] as a [`fit::Task`] (see [`super::train`] for the streams,
/// the loss and the schedule).
struct NetTask<'a> {
    c: &'a NetClassifier,
    x: &'a Matrix,
    /// This epoch's augmented rows, if any.
    fresh: Option<Matrix>,
    y: &'a [usize],
    weights: Vec<f32>,
    valid: Option<(&'a Matrix, &'a [usize])>,
    p_drop: f64,
    seed: u64,
    device: Device,
    best: Option<Net>,
}

impl Task for NetTask<'_> {
    type Model = Net;

    fn begin_epoch(&mut self, epoch: usize) -> Result<()> {
        self.fresh = self.c.augment.as_ref().map(|f| f(epoch));
        Ok(())
    }

    fn batch_loss(
        &mut self,
        net: &Net,
        epoch: usize,
        batch: usize,
        rows: &[usize],
    ) -> Result<Tensor<1>> {
        let x = self.fresh.as_ref().unwrap_or(self.x);
        let xb = batch_tensor(x, rows, &self.device);
        let tb = target_tensor(self.y, rows, &self.weights, &self.device);
        let masks = (self.p_drop > 0.0).then(|| {
            let mut r = crate::rng::stream(
                self.seed,
                "classify/train/dropout",
                ((epoch as u64) << 20) + batch as u64,
            );
            draw_masks(net, rows.len(), self.p_drop, &mut r, &self.device)
        });
        let logits = net.forward(self.c.kind, &self.c.layout, xb, masks.as_ref());
        Ok((log_softmax(logits, 1) * tb)
            .sum_dim(1)
            .mean()
            .mul_scalar(-1.0))
    }

    fn validate(&mut self, net: &Net, _train_loss: f64) -> Result<Option<f64>> {
        let Some((xv, yv)) = self.valid.filter(|(xv, _)| xv.n > 0) else {
            return Ok(None);
        };
        let vnet = net.valid();
        let vdev = vnet.device();
        let all: Vec<usize> = (0..xv.n).collect();
        let ones = vec![1.0f32; self.c.n_classes];
        let logits = vnet.forward(
            self.c.kind,
            &self.c.layout,
            batch_tensor(xv, &all, &vdev),
            None,
        );
        Ok(Some(-scalar(
            (log_softmax(logits, 1) * target_tensor(yv, &all, &ones, &vdev))
                .sum_dim(1)
                .mean(),
        )?))
    }

    fn keep_best(&mut self, net: &Net, _epoch: usize) -> Result<()> {
        self.best = Some(net.clone());
        Ok(())
    }
}

/// Trains a fresh network for `c` and returns the best weights (on a plain device).
fn train(
    c: &NetClassifier,
    x: &Matrix,
    y: &[usize],
    valid: Option<(&Matrix, &[usize])>,
    seed: u64,
) -> Result<(Net, TrainLog)> {
    let cfg = &c.config.train;
    let device = c.device.autodiff()?;
    device.seed(seed);
    let net = build(c.kind, &c.config, &c.layout, c.n_classes, &device);
    let mut task = NetTask {
        c,
        x,
        fresh: None,
        y,
        weights: class_weights(y, c.n_classes, c.config.class_weights),
        valid,
        p_drop: if c.kind == Kind::Bnn {
            c.config.dropout
        } else {
            0.0
        },
        seed,
        device,
        best: None,
    };
    let fc = fit::FitConfig {
        schedule: cfg.schedule(),
        epochs: cfg.epochs,
        batch_size: cfg.batch_size,
        rows: (0..x.n).collect(),
        seed,
        shuffle_stream: "classify/train/shuffle",
        log_file: None,
        times_file: None,
        checkpoint: None,
        progress: None,
        announce: false,
    };
    let (_, outcome) = fit::fit(&mut task, net, &fc)?;
    let log = TrainLog {
        train_loss: outcome.history.iter().map(|e| e.train_loss).collect(),
        valid_loss: outcome.history.iter().filter_map(|e| e.val_loss).collect(),
        best_epoch: outcome.state.best_epoch.saturating_sub(1),
        final_learning_rate: outcome.state.learning_rate,
    };
    let net = task
        .best
        .ok_or_else(|| Error::Internal("no epoch trained".into()))?;
    Ok((net.valid(), log))
}

impl Classifier for NetClassifier {
    fn name(&self) -> &'static str {
        self.kind.as_str()
    }

    fn fit(
        &mut self,
        x: &Matrix,
        y: &[usize],
        valid: Option<(&Matrix, &[usize])>,
        seed: u64,
    ) -> Result<()> {
        self.seed = seed;
        let (net, log) = train(self, x, y, valid, seed)?;
        self.net = Some(net);
        self.log = Some(log);
        Ok(())
    }

    fn predict_logits(&self, x: &Matrix) -> Result<Vec<Vec<f64>>> {
        let passes = self.passes(x)?;
        if passes.len() == 1 {
            return Ok(passes.into_iter().next().expect("one pass"));
        }
        // MC average of the probabilities, returned as log-probabilities
        let s = passes.len() as f64;
        Ok((0..x.n)
            .map(|i| {
                let mut p = vec![0.0; self.n_classes];
                for pass in &passes {
                    let q = super::calibration::softmax(&pass[i], 1.0);
                    for (a, b) in p.iter_mut().zip(q) {
                        *a += b / s;
                    }
                }
                p.iter().map(|v| v.max(1e-12).ln()).collect()
            })
            .collect())
    }

    fn predict_spread(&self, x: &Matrix) -> Result<Option<Vec<f64>>> {
        if self.kind != Kind::Bnn || self.config.dropout == 0.0 {
            return Ok(None);
        }
        let passes = self.passes(x)?;
        let s = passes.len() as f64;
        Ok(Some(
            (0..x.n)
                .map(|i| {
                    let v: Vec<f64> = passes
                        .iter()
                        .map(|p| super::calibration::softmax(&p[i], 1.0)[self.n_classes - 1])
                        .collect();
                    let m = v.iter().sum::<f64>() / s;
                    (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / s).sqrt()
                })
                .collect(),
        ))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let net = self.trained()?;
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let meta = Meta {
            variant: self.kind.as_str().into(),
            kind: self.kind,
            config: self.config.clone(),
            layout: self.layout.clone(),
            n_classes: self.n_classes,
            seed: self.seed,
        };
        let path = dir.join("weights.bpk");
        net.clone()
            .save_file(&path)
            .map_err(|e| Error::Internal(format!("saving {}: {e:?}", path.display())))?;
        super::write_json(&dir.join("model.json"), &meta)
    }
}

/// Loads a network saved by [`Classifier::save`].
pub fn load(dir: &Path) -> Result<Box<dyn Classifier>> {
    let meta: Meta = super::read_json(&dir.join("model.json"))?;
    let device = Device::flex();
    let net = build(
        meta.kind,
        &meta.config,
        &meta.layout,
        meta.n_classes,
        &device,
    );
    let path = dir.join("weights.bpk");
    let net = net
        .try_load_file(&path)
        .map_err(|e| Error::bad_file(&path, format!("{e:?}")))?;
    Ok(Box::new(NetClassifier {
        kind: meta.kind,
        config: meta.config,
        layout: meta.layout,
        n_classes: meta.n_classes,
        seed: meta.seed,
        net: Some(net),
        log: None,
        augment: None,
        device: crate::compute::Backend::default(),
    }))
}
