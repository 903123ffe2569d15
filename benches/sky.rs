//! Sky and patch rendering speed at the paper's scale (NSIDE 256, five bins):
//! point sources of an F0 and an F2 sky, the B1 diffuse map (emission model and PSF
//! convolution), and the 768 NSIDE-8 test patches. Run with `cargo bench --bench sky`; the
//! healpy peer is `benches/peers/sky_peer.py`.

use criterion::{Criterion, criterion_group, criterion_main};
use gammabench::catalog::{PriorSet, generate};
use gammabench::config::{self, Centres, ExperimentConfig};
use gammabench::sky::healpix::Grid;
use gammabench::sky::iem::IemModel;
use std::time::Duration;

fn cfg(preset: &str) -> ExperimentConfig {
    let text = format!(
        "[catalog]\npreset = \"{preset}\"\nprior = \"4fgl-dr1\"\nfigures = false\n[sky]\nnside = 256\n"
    );
    config::load_text("bench", &text, &[])
        .unwrap()
        .remove(0)
        .config
}

fn bench(c: &mut Criterion) {
    let pb = indicatif::ProgressBar::hidden();
    let f0 = cfg("F0");
    let f2 = cfg("F2");
    let cat0 = generate(&f0, &PriorSet::load(&f0).unwrap(), &pb)
        .unwrap()
        .sources;
    let cat2 = generate(&f2, &PriorSet::load(&f2).unwrap(), &pb)
        .unwrap()
        .sources;
    eprintln!("F0: {} sources, F2: {} sources", cat0.len(), cat2.len());
    let grid = Grid::new(256);
    let inst = gammabench::sky::instrument(&f0).unwrap();
    let b1 = IemModel::load("B1").unwrap();

    let mut g = c.benchmark_group("sky");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    g.bench_function("f0_points_nside256_5bins", |b| {
        b.iter(|| gammabench::sky::render_sources(&grid, &inst, &cat0))
    });
    g.bench_function("f2_points_nside256_5bins", |b| {
        b.iter(|| gammabench::sky::render_sources(&grid, &inst, &cat2))
    });
    g.bench_function("b1_diffuse_nside256_5bins", |b| {
        b.iter(|| gammabench::sky::render_diffuse(&f0, &b1, &grid, &inst).unwrap())
    });
    let sky = gammabench::sky::render_sky(&f0, &b1, &cat0).unwrap();
    let maps: Vec<Vec<Vec<f32>>> = sky
        .maps
        .iter()
        .map(|c| {
            c.iter()
                .map(|m| m.iter().map(|&x| x as f32).collect())
                .collect()
        })
        .collect();
    let mut pc = f0.clone();
    pc.patches.centres = Centres::Nside8;
    let psf = gammabench::patches::SourcePsf {
        grid: &grid,
        inst: &inst,
        counts: sky.source_counts.clone(),
        index: sky.source_index.clone(),
    };
    g.bench_function("patches_768_nside8", |b| {
        b.iter(|| {
            gammabench::patches::build(
                &pc,
                gammabench::patches::centres(&pc),
                &grid,
                &maps,
                &cat0,
                &psf,
                None,
            )
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
