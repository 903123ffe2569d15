//! The U-Net of Panes et al. 2021 (Fig. 3; Ronneberger et al. 2015).
//!
//! Input `[batch, bins, 64, 64]` (channels first, burn's and PyTorch's layout); `L =
//! widths.len()` levels with `L - 1` 2 x 2 max-pooling stages (published: widths 16, 32, 64,
//! 128, 256, four poolings). Each level is two 3 x 3 convolutions ("same" padding), each
//! followed by batch normalisation and ReLU. The decoder upsamples with a 2 x 2 transposed
//! convolution of stride 2, concatenates the encoder output of the same level (skip
//! connection) and applies the same double convolution. A final 1 x 1 convolution gives
//! `out_channels` maps: 2 class logits (background, source; softmax over them gives the score
//! map) plus, for Centroid-Net, 2 vote-vector channels.
//!
//! Parameter names (`down.0.conv1.weight`, ...) are what the safetensors file holds; the
//! PyTorch peer in `benches/peers/unet_peer.py` builds the same network.

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::relu;
use serde::{Deserialize, Serialize};

/// Shape of a U-Net.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnetConfig {
    /// Input channels (energy bins).
    pub in_channels: usize,
    /// Output channels (2 for segmentation, 4 with vote vectors).
    pub out_channels: usize,
    /// Filters per level, top to bottleneck.
    pub widths: Vec<usize>,
}

impl UnetConfig {
    /// Checks the shape once (linfa style); `patch_px` must be divisible by 2^(levels-1).
    pub fn check(&self, patch_px: usize) -> Result<(), String> {
        if self.in_channels == 0 || self.out_channels == 0 {
            return Err("in_channels and out_channels must be >= 1".into());
        }
        if self.widths.len() < 2 {
            return Err("a U-Net needs at least two levels".into());
        }
        let f = 1usize << (self.widths.len() - 1);
        if !patch_px.is_multiple_of(f) {
            return Err(format!(
                "patch size {patch_px} px is not divisible by 2^{} (the pooling stages)",
                self.widths.len() - 1
            ));
        }
        Ok(())
    }

    /// Builds the network with freshly initialised weights on `device`.
    pub fn init(&self, device: &Device) -> Unet {
        let w = &self.widths;
        let depth = w.len() - 1;
        let down = (0..=depth)
            .map(|i| {
                let cin = if i == 0 { self.in_channels } else { w[i - 1] };
                ConvBlock::new(cin, w[i], device)
            })
            .collect();
        let up = (0..depth)
            .rev()
            .map(|i| {
                ConvTranspose2dConfig::new([w[i + 1], w[i]], [2, 2])
                    .with_stride([2, 2])
                    .init(device)
            })
            .collect();
        let dec = (0..depth)
            .rev()
            .map(|i| ConvBlock::new(2 * w[i], w[i], device))
            .collect();
        Unet {
            down,
            up,
            dec,
            pool: MaxPool2dConfig::new([2, 2]).init(),
            head: Conv2dConfig::new([w[0], self.out_channels], [1, 1]).init(device),
        }
    }
}

/// Two 3 x 3 convolutions, each with batch norm and ReLU.
#[derive(Module, Debug)]
pub struct ConvBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
}

impl ConvBlock {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        let conv = |a, b| {
            Conv2dConfig::new([a, b], [3, 3])
                .with_padding(PaddingConfig2d::Same)
                .init(device)
        };
        Self {
            conv1: conv(cin, cout),
            bn1: BatchNormConfig::new(cout).init(device),
            conv2: conv(cout, cout),
            bn2: BatchNormConfig::new(cout).init(device),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = relu(self.bn1.forward(self.conv1.forward(x)));
        relu(self.bn2.forward(self.conv2.forward(x)))
    }
}

/// The U-Net.
#[derive(Module, Debug)]
pub struct Unet {
    down: Vec<ConvBlock>,
    up: Vec<ConvTranspose2d>,
    dec: Vec<ConvBlock>,
    pool: MaxPool2d,
    head: Conv2d,
}

impl Unet {
    /// `[batch, in_channels, H, W]` to `[batch, out_channels, H, W]` (raw outputs).
    pub fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let depth = self.up.len();
        let mut skips = Vec::with_capacity(depth);
        let mut x = input;
        for (i, block) in self.down.iter().enumerate() {
            x = block.forward(x);
            if i < depth {
                skips.push(x.clone());
                x = self.pool.forward(x);
            }
        }
        for (up, dec) in self.up.iter().zip(&self.dec) {
            x = up.forward(x);
            let skip = skips.pop().expect("one skip per level");
            x = dec.forward(Tensor::cat(vec![skip, x], 1));
        }
        self.head.forward(x)
    }
}
