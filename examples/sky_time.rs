//! One-shot wall times of the sky renders at NSIDE 256 (what `benches/sky.rs` measures, without
//! criterion's repetitions): `cargo run --release --example sky_time -- [f0|f2|diffuse|patches]...`
use gammabench::catalog::{PriorSet, generate};
use gammabench::config::{self, Centres, ExperimentConfig};
use gammabench::sky::healpix::Grid;
use gammabench::sky::iem::IemModel;
use std::time::Instant;

fn cfg(preset: &str) -> ExperimentConfig {
    let text = format!(
        "[catalog]\npreset = \"{preset}\"\nprior = \"4fgl-dr1\"\nfigures = false\n[sky]\nnside = 256\n"
    );
    config::load_text("bench", &text, &[])
        .unwrap()
        .remove(0)
        .config
}

fn main() {
    let what: Vec<String> = std::env::args().skip(1).collect();
    let want = |w: &str| what.is_empty() || what.iter().any(|x| x == w);
    let pb = indicatif::ProgressBar::hidden();
    let grid = Grid::new(256);
    let f0 = cfg("F0");
    let inst = gammabench::sky::instrument(&f0).unwrap();
    let cat0 = generate(&f0, &PriorSet::load(&f0).unwrap(), &pb)
        .unwrap()
        .sources;
    if want("f0") {
        for k in 0..3 {
            let t = Instant::now();
            let (m, _, _) = gammabench::sky::render_sources(&grid, &inst, &cat0);
            let tot: f64 = m.iter().flatten().map(|x| x.iter().sum::<f64>()).sum();
            println!(
                "f0 points ({} sources) run {k}: {:.3} s total {tot:.1}",
                cat0.len(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    if want("f2") {
        let f2 = cfg("F2");
        let cat2 = generate(&f2, &PriorSet::load(&f2).unwrap(), &pb)
            .unwrap()
            .sources;
        for k in 0..2 {
            let t = Instant::now();
            let (m, _, _) = gammabench::sky::render_sources(&grid, &inst, &cat2);
            let tot: f64 = m.iter().flatten().map(|x| x.iter().sum::<f64>()).sum();
            println!(
                "f2 points ({} sources) run {k}: {:.3} s total {tot:.1}",
                cat2.len(),
                t.elapsed().as_secs_f64()
            );
        }
    }
    if want("f0split") {
        split("f0", &grid, &inst, &cat0);
    }
    if want("f2split") {
        let f2 = cfg("F2");
        let cat2 = generate(&f2, &PriorSet::load(&f2).unwrap(), &pb)
            .unwrap()
            .sources;
        split("f2", &grid, &inst, &cat2);
    }
    let b1 = IemModel::load("B1").unwrap();
    if want("diffuse") {
        let t = Instant::now();
        let (d, _) = gammabench::sky::render_diffuse(&f0, &b1, &grid, &inst).unwrap();
        let tot: Vec<f64> = d.iter().map(|x| x.iter().sum::<f64>()).collect();
        println!(
            "b1 diffuse: {:.3} s totals {tot:?}",
            t.elapsed().as_secs_f64()
        );
    }
    if want("diffsplit") {
        let t = Instant::now();
        let maps = b1.maps(&grid).unwrap();
        println!("b1 templates: {:.3} s", t.elapsed().as_secs_f64());
        let t = Instant::now();
        let (raw, idx) = b1.counts(&maps, &grid, &inst);
        println!("b1 counts: {:.3} s", t.elapsed().as_secs_f64());
        for (b, m) in raw.iter().enumerate() {
            let t = Instant::now();
            let psf = inst.psf(b, idx[b]);
            let _ = gammabench::sky::render::smooth_diffuse(
                &grid,
                m,
                psf,
                psf.r95_deg * f0.sky.diffuse_radius_r95,
            );
            println!(
                "b1 bin {b} smoothing (r68 {:.3} deg, working NSIDE {}): {:.3} s",
                psf.r68_deg,
                gammabench::sky::render::working_nside(256, psf.r68_deg),
                t.elapsed().as_secs_f64()
            );
        }
    }
    if want("patches") {
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
        for k in 0..2 {
            let t = Instant::now();
            let _ = gammabench::patches::build(
                &pc,
                gammabench::patches::centres(&pc),
                &grid,
                &maps,
                &cat0,
                &psf,
                None,
            );
            println!("patches 768 run {k}: {:.3} s", t.elapsed().as_secs_f64());
        }
    }
}

/// Times the per-source counts and each bin's render separately.
fn split(
    label: &str,
    grid: &Grid,
    inst: &gammabench::sky::instrument::Instrument,
    cat: &[gammabench::catalog::Source],
) {
    use rayon::prelude::*;
    let t = Instant::now();
    let (counts, index): (Vec<Vec<f64>>, Vec<Vec<f64>>) = cat
        .par_iter()
        .map(|s| gammabench::sky::source_bins(inst, s))
        .unzip();
    println!("{label} source_bins: {:.3} s", t.elapsed().as_secs_f64());
    for b in 0..5 {
        let pts: Vec<gammabench::sky::render::PointSource> = cat
            .iter()
            .enumerate()
            .map(|(i, s)| gammabench::sky::render::PointSource {
                v: gammabench::sky::healpix::lonlat_deg_to_vec(s.glon_deg, s.glat_deg),
                counts: counts[i][b],
                psf: inst.psf(b, index[i][b]),
            })
            .collect();
        let t = Instant::now();
        let (m, _) = gammabench::sky::render::render_points(grid, &pts);
        let tot: f64 = m.iter().sum();
        println!(
            "{label} bin {b}: render_points {:.3} s, total {tot:.1} of {:.1}",
            t.elapsed().as_secs_f64(),
            pts.iter().map(|p| p.counts).sum::<f64>(),
        );
    }
}
