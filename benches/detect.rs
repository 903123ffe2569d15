//! U-Net speed on every backend this build has: one Adam training step at batch 16 and
//! inference at batch 32 (patches per second in criterion's throughput line) of the CI U-Net
//! (8..64 filters, three poolings) and the published one (16..256 filters, four poolings) on
//! 64 x 64 x 5 inputs. Groups are `unet_<net>/<backend>/<what>`.
//!
//! Backends: flex always; `tch-cpu` with `--features tch`; GPU ones (`tch-cuda`, `cuda`) only
//! when named in `UNET_BENCH_DEVICES` (comma-separated `--device` spellings; default: the CPU
//! backends of the build). The same networks in PyTorch: `benches/peers/unet_peer.py`;
//! `benches/unet_backends.sh` runs both with the same threads and writes the table.
//!
//! `conv3x3/<backend>/b16_<c_in>x<c_out>_<hw>`: one 3 x 3 convolution forward (stride 1,
//! padding 1, batch 16) at each encoder level of the two U-Nets (`CONV_SHAPES`), to see which
//! layers a backend loses time on; the PyTorch peer is `benches/peers/conv_peer.py`.

use burn::optim::{AdamConfig, GradientsParams};
use burn::prelude::*;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gammabench::compute::Backend;
use gammabench::models::unet::UnetConfig;
use gammabench::train::{LossSpec, loss};

fn batch(n: usize, device: &Device) -> (Tensor<4>, Tensor<4>) {
    let x = Tensor::<4>::random(
        [n, 5, 64, 64],
        burn::tensor::Distribution::Uniform(0.0, 3.0),
        device,
    );
    let mut t = vec![0f32; n * 2 * 64 * 64];
    for j in 0..n {
        for k in 0..64 * 64_usize {
            let src = (k % 64).abs_diff(32) < 3 && (k / 64).abs_diff(20) < 3;
            t[j * 2 * 4096 + k] = if src { 0.0 } else { 1.0 };
            t[j * 2 * 4096 + 4096 + k] = if src { 1.0 } else { 0.0 };
        }
    }
    (
        x,
        Tensor::from_data(TensorData::new(t, [n, 2, 64, 64]), device),
    )
}

fn backends() -> Vec<Backend> {
    match std::env::var("UNET_BENCH_DEVICES") {
        Ok(list) if !list.trim().is_empty() => list
            .split(',')
            .map(|s| {
                s.trim()
                    .parse::<Backend>()
                    .unwrap_or_else(|e| panic!("UNET_BENCH_DEVICES: {e}"))
            })
            .collect(),
        _ => Backend::compiled_backends()
            .into_iter()
            .filter(|b| matches!(b, Backend::Flex | Backend::TchCpu))
            .collect(),
    }
}

fn bench(c: &mut Criterion) {
    let spec = LossSpec {
        disk_radius_px: 2.5,
        vectors: None,
    };
    let nets = [
        ("ci", vec![8, 16, 32, 64]),
        ("published", vec![16, 32, 64, 128, 256]),
    ];
    for backend in backends() {
        for (name, widths) in &nets {
            let cfg = UnetConfig {
                in_channels: 5,
                out_channels: 2,
                widths: widths.clone(),
            };
            let mut g = c.benchmark_group(format!("unet_{name}/{backend}"));
            g.sample_size(10);
            g.measurement_time(std::time::Duration::from_secs(if *name == "ci" {
                8
            } else {
                20
            }));

            let device = backend.autodiff().unwrap_or_else(|e| panic!("{e}"));
            device.seed(1);
            let mut model = Some(cfg.init(&device));
            let mut optim = AdamConfig::new().init();
            let (x, t) = batch(16, &device);
            g.throughput(Throughput::Elements(16));
            g.bench_function("train_step_batch16", |b| {
                b.iter(|| {
                    let m = model.take().unwrap();
                    let l = loss(m.forward(x.clone()), t.clone(), &spec);
                    // reading the loss back waits for an asynchronous (GPU) backend
                    let _: f32 = l.clone().into_scalar();
                    let grads = GradientsParams::from_grads(l.backward(), &m);
                    model = Some(optim.step(1e-3, m, grads));
                })
            });

            let plain = backend.device().unwrap();
            let inf = model.take().unwrap().valid();
            let (x, _) = batch(32, &plain);
            g.throughput(Throughput::Elements(32));
            g.bench_function("inference_batch32", |b| {
                b.iter(|| {
                    let y = inf.forward(x.clone());
                    let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
                    v.len()
                })
            });
            g.finish();
        }
    }
}

/// `(c_in, c_out, hw)` of the encoder convolutions of the CI U-Net (8..64, input 5 bands at
/// 64 x 64) and of the published one (16..256), each once.
pub const CONV_SHAPES: [(usize, usize, usize); 16] = [
    (5, 8, 64),
    (8, 8, 64),
    (8, 16, 32),
    (16, 16, 32),
    (16, 32, 16),
    (32, 32, 16),
    (32, 64, 8),
    (64, 64, 8),
    (5, 16, 64),
    (16, 16, 64),
    (16, 32, 32),
    (32, 32, 32),
    (32, 64, 16),
    (64, 64, 16),
    (64, 128, 8),
    (128, 128, 8),
];

fn bench_convs(c: &mut Criterion) {
    use burn::tensor::Distribution::Uniform;
    use burn::tensor::ops::ConvOptions;
    for backend in backends() {
        let device = backend.device().unwrap_or_else(|e| panic!("{e}"));
        device.seed(2);
        let mut g = c.benchmark_group(format!("conv3x3/{backend}"));
        g.sample_size(20);
        g.measurement_time(std::time::Duration::from_secs(2));
        g.warm_up_time(std::time::Duration::from_millis(500));
        for (c_in, c_out, hw) in CONV_SHAPES {
            let x = Tensor::<4>::random([16, c_in, hw, hw], Uniform(0.0, 1.0), &device);
            let w = Tensor::<4>::random([c_out, c_in, 3, 3], Uniform(-0.5, 0.5), &device);
            g.throughput(Throughput::Elements(16));
            g.bench_function(format!("b16_{c_in}x{c_out}_{hw}"), |b| {
                b.iter(|| {
                    let y = burn::tensor::module::conv2d(
                        x.clone(),
                        w.clone(),
                        None,
                        ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
                    );
                    let v: Vec<f32> = y.into_data().try_to_vec::<f32>().unwrap();
                    v.len()
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench, bench_convs);
criterion_main!(benches);
