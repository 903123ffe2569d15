//! Scoring 1e5 detections against 1e5 true sources (768 patches of 130 sources).
//!
//! Also writes the same input as CSV to `target/score-bench/` (truth.csv, patches.csv,
//! pred.csv, and the published-format test.csv / pred_published.csv) so the Python peer
//! `benches/peers/score_peer.py` scores the very same data:
//! `python benches/peers/score_peer.py target/score-bench`.

use criterion::{Criterion, criterion_group, criterion_main};
use gammabench::config::ScoreConfig;
use gammabench::projection::PatchGeometry;
use gammabench::score::detection;
use gammabench::score::input::{Detection, TruthRow};
use gammabench::score::matching::{match_global, match_legacy};
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;

const N_PATCHES: usize = 768;
const PER_PATCH: usize = 130;

fn data() -> (Vec<(f64, f64)>, Vec<TruthRow>, Vec<Detection>) {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(42);
    let g = PatchGeometry::default();
    let centres: Vec<(f64, f64)> = (0..N_PATCHES)
        .map(|_| {
            (
                r.random_range(0.0..360.0),
                r.random_range(-1.0f64..1.0).asin().to_degrees(),
            )
        })
        .collect();
    let mut truth = Vec::new();
    let mut dets = Vec::new();
    for (p, &(l0, b0)) in centres.iter().enumerate() {
        for _ in 0..PER_PATCH {
            let (x, y): (f64, f64) = (r.random_range(0.0..63.0), r.random_range(0.0..63.0));
            let (l, b) = g.pix_to_sky(l0, b0, x, y);
            let flux: f64 = 10f64.powf(r.random_range(-11.0..-8.5));
            let id = truth.len() as i64;
            truth.push(TruthRow {
                patch_id: p as i64,
                source_id: id,
                class: if id % 4 == 0 { "PSR" } else { "AGN" }.into(),
                x_pix: x,
                y_pix: y,
                glon_deg: l,
                glat_deg: b,
                flux_1000_ph_cm2_s: flux,
                flux_10000_ph_cm2_s: flux / 9.0,
                snr_c: flux * 3e10,
                sbr_c: flux * 1e10,
                catalog: 0.0,
                patch_lon_deg: l0,
                patch_lat_deg: b0,
            });
            // 80 % detected near the source, 20 % junk elsewhere in the patch
            let (dx, dy) = if r.random::<f64>() < 0.8 {
                (x + r.random_range(-1.0..1.0), y + r.random_range(-1.0..1.0))
            } else {
                (r.random_range(0.0..63.0), r.random_range(0.0..63.0))
            };
            let (dx, dy) = (dx.clamp(0.0, 63.0), dy.clamp(0.0, 63.0));
            let (dl, db) = g.pix_to_sky(l0, b0, dx, dy);
            dets.push(Detection {
                line: dets.len() + 2,
                patch_id: p as i64,
                x_pix: dx,
                y_pix: dy,
                glon_deg: dl,
                glat_deg: db,
                score: Some(r.random::<f64>()),
                class_id: Some(0),
                probs: None,
                flux_1000_ph_cm2_s: None,
                sky_given_deg: None,
                catalog: None,
            });
        }
    }
    (centres, truth, dets)
}

fn write_inputs(dir: &Path, centres: &[(f64, f64)], truth: &[TruthRow], dets: &[Detection]) {
    std::fs::create_dir_all(dir).unwrap();
    let mut s = String::from("patch_id,glon_deg,glat_deg\n");
    for (i, (l, b)) in centres.iter().enumerate() {
        writeln!(s, "{i},{l:?},{b:?}").unwrap();
    }
    std::fs::write(dir.join("patches.csv"), &s).unwrap();
    let mut s = String::from(
        "patch_id,source_id,class,x_pix,y_pix,glon_deg,glat_deg,flux_1000_ph_cm2_s,flux_10000_ph_cm2_s,snr_c,sbr_c\n",
    );
    let mut p = String::from(
        "filename,xmin,xmax,ymin,ymax,class,lon_c,lat_c,flux_1000,lon_p,lat_p,catalog,flux_10000\n",
    );
    for t in truth {
        writeln!(
            s,
            "{},{},{},{:?},{:?},{:?},{:?},{:?},{:?},{:?},{:?}",
            t.patch_id,
            t.source_id,
            t.class,
            t.x_pix,
            t.y_pix,
            t.glon_deg,
            t.glat_deg,
            t.flux_1000_ph_cm2_s,
            t.flux_10000_ph_cm2_s,
            t.snr_c,
            t.sbr_c
        )
        .unwrap();
        let (xc, yc) = (t.x_pix.round() as i64, t.y_pix.round() as i64);
        writeln!(
            p,
            "test_image_{}.npy,{},{},{},{},{},{:?},{:?},{:?},{:?},{:?},0,{:?}",
            t.patch_id,
            xc - 2,
            xc + 2,
            yc - 2,
            yc + 2,
            (t.class == "PSR") as i32,
            t.patch_lon_deg,
            t.patch_lat_deg,
            t.flux_1000_ph_cm2_s,
            t.glon_deg,
            t.glat_deg,
            t.flux_10000_ph_cm2_s
        )
        .unwrap();
    }
    std::fs::write(dir.join("truth.csv"), &s).unwrap();
    std::fs::write(dir.join("test.csv"), &p).unwrap();
    let mut s = String::from("patch_id,x_pix,y_pix,score\n");
    let mut p = String::from("image_nr,centroid_y,centroid_x,class_id,probability,lon,lat\n");
    for d in dets {
        writeln!(
            s,
            "{},{:?},{:?},{:?}",
            d.patch_id,
            d.x_pix,
            d.y_pix,
            d.score.unwrap()
        )
        .unwrap();
        writeln!(
            p,
            "{},{:?},{:?},0,{:?},{:?},{:?}",
            d.patch_id,
            d.y_pix,
            d.x_pix,
            d.score.unwrap(),
            d.glon_deg,
            d.glat_deg
        )
        .unwrap();
    }
    std::fs::write(dir.join("pred.csv"), &s).unwrap();
    std::fs::write(dir.join("pred_published.csv"), &p).unwrap();
}

fn bench(c: &mut Criterion) {
    let (centres, truth, dets) = data();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/score-bench");
    write_inputs(&dir, &centres, &truth, &dets);
    let m = match_legacy(&truth, &dets, 0.3);
    eprintln!(
        "legacy: TP {} FP {} FN {} (inputs in {})",
        m.n_tp,
        m.n_fp,
        m.n_fn,
        dir.display()
    );
    let mut g = c.benchmark_group("score_1e5");
    g.sample_size(10);
    g.bench_function("match_legacy", |b| {
        b.iter(|| black_box(match_legacy(&truth, &dets, 0.3)))
    });
    g.bench_function("match_global", |b| {
        b.iter(|| black_box(match_global(&truth, &dets, 0.3)))
    });
    let cfg = ScoreConfig::default();
    g.bench_function("legacy_match_and_full_report_200_bootstrap", |b| {
        b.iter(|| {
            let m = match_legacy(&truth, &dets, 0.3);
            black_box(detection::report(&truth, &dets, &m, "legacy", &cfg, 1))
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
