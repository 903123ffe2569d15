//! Catalog generation speed: F0 and F2 on the DR4 prior (sources per second are in the
//! criterion throughput line).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use gammabench::catalog::{self, PriorSet};
use gammabench::config;

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("catalog");
    g.sample_size(10);
    for preset in ["F0", "F2"] {
        let cfg = config::load_text(
            "bench.toml",
            &format!("seed = 1\n[catalog]\npreset = \"{preset}\"\nprior = \"4fgl-dr4\"\nfigures = false\n"),
            &[],
        )
        .unwrap()
        .remove(0)
        .config;
        let priors = PriorSet::load(&cfg).unwrap();
        let hidden = indicatif::ProgressBar::hidden();
        let n = catalog::generate(&cfg, &priors, &hidden)
            .unwrap()
            .sources
            .len();
        g.throughput(Throughput::Elements(n as u64));
        g.bench_function(format!("generate_{preset}_dr4_{n}_sources"), |b| {
            b.iter(|| catalog::generate(&cfg, &priors, &hidden).unwrap())
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
