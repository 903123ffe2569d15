//! Other burn backends against flex, through the same weights (issue 21, item 1).
//!
//! Only built with `--features tch` (libtorch 2.9.0; `scripts/setup-tch.sh`):
//! `source ~/.venvs/gammabench-tch/tch.env && cargo test --release --features tch --test backends`.
//! The default build and CI run none of it. The tolerances are float32 ones: libtorch's
//! convolutions (oneDNN) sum in another order than flex's. Measured on 2 cores (README,
//! "Backends"): the forward pass differs by at most 6.0e-8 (outputs up to 0.29; bound 1e-4),
//! the losses of three Adam steps by at most 1.7e-5 relative (bound 1e-4), and the outputs
//! after them by 9.4e-4 (bound 1e-2: Adam's first steps divide each gradient by its own root
//! mean square, so a rounding difference in a near-zero gradient becomes a step of up to the
//! learning rate).
#![cfg(feature = "tch")]

use burn::optim::{AdamConfig, GradientsParams, Optimizer};
use burn::prelude::*;
use gammabench::compute::Backend;
use gammabench::models::unet::{Unet, UnetConfig};
use gammabench::train::{LossSpec, load_weights, loss, save_weights};
use rand::{Rng, SeedableRng};

/// The CI U-Net (8..64 filters, three poolings) and the published one's input shape.
fn net() -> UnetConfig {
    UnetConfig {
        in_channels: 5,
        out_channels: 2,
        widths: vec![8, 16, 32, 64],
    }
}

/// A batch of 4 log1p-count-like inputs and one-hot targets, from a fixed seed.
fn batch(device: &Device) -> (Tensor<4>, Tensor<4>) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    let (n, c, s) = (4, 5, 64);
    let x: Vec<f32> = (0..n * c * s * s)
        .map(|_| rng.random_range(0.0f32..3.0))
        .collect();
    let mut t = vec![0f32; n * 2 * s * s];
    for i in 0..n {
        for p in 0..s * s {
            let source = rng.random_bool(0.05);
            t[(i * 2 + usize::from(source)) * s * s + p] = 1.0;
        }
    }
    (
        Tensor::from_data(TensorData::new(x, [n, c, s, s]), device),
        Tensor::from_data(TensorData::new(t, [n, 2, s, s]), device),
    )
}

fn values(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The same weights on `backend`: flex initialises them from seed 5, the file carries them.
fn same_weights(backend: Backend, autodiff: bool, dir: &std::path::Path) -> (Unet, Device) {
    let path = dir.join("w.safetensors");
    if !path.exists() {
        let flex = Device::flex();
        flex.seed(5);
        save_weights(&net().init(&flex), &path).unwrap();
    }
    let device = if autodiff {
        backend.autodiff().unwrap()
    } else {
        backend.device().unwrap()
    };
    (load_weights(net().init(&device), &path).unwrap(), device)
}

#[test]
fn libtorch_cpu_forward_agrees_with_flex() {
    let dir = tempfile::tempdir().unwrap();
    let (flex_net, flex) = same_weights(Backend::Flex, false, dir.path());
    let (tch_net, tch) = same_weights(Backend::TchCpu, false, dir.path());
    let a = values(flex_net.forward(batch(&flex).0));
    let b = values(tch_net.forward(batch(&tch).0));
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs()));
    let d = max_abs_diff(&a, &b);
    eprintln!("forward: max |flex - tch| = {d:e} (outputs up to {scale})");
    assert!(scale > 1e-3, "a degenerate network proves nothing");
    assert!(d <= 1e-4 * scale.max(1.0), "forward differs by {d}");
}

#[test]
fn libtorch_cpu_training_step_agrees_with_flex() {
    let dir = tempfile::tempdir().unwrap();
    let spec = LossSpec {
        disk_radius_px: 1.0,
        vectors: None,
    };
    let mut after = Vec::new();
    let mut losses = Vec::new();
    for backend in [Backend::Flex, Backend::TchCpu] {
        let (mut model, device) = same_weights(backend, true, dir.path());
        let mut optim = AdamConfig::new().init();
        let (x, t) = batch(&device);
        for _ in 0..3 {
            let l = loss(model.forward(x.clone()), t.clone(), &spec);
            losses.push(l.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(l.backward(), &model);
            model = optim.step(1e-3, model, grads);
        }
        after.push(values(model.valid().forward(batch(&device.inner()).0)));
    }
    eprintln!("losses flex {:?}, tch {:?}", &losses[..3], &losses[3..]);
    for k in 0..3 {
        let (f, t) = (losses[k], losses[3 + k]);
        assert!(
            (f - t).abs() <= 1e-4 * f.abs(),
            "step {k}: loss flex {f} tch {t}"
        );
    }
    let d = max_abs_diff(&after[0], &after[1]);
    eprintln!("after 3 Adam steps: max |flex - tch| = {d:e}");
    assert!(
        d <= 1e-2,
        "three Adam steps later the outputs differ by {d}"
    );
    // the steps moved the network, so the agreement is not that of an untouched one
    let (start, flex) = same_weights(Backend::Flex, false, dir.path());
    let moved = max_abs_diff(&values(start.forward(batch(&flex).0)), &after[0]);
    assert!(
        moved > 10.0 * d,
        "the steps changed the outputs by only {moved}"
    );
}
