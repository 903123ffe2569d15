//! A tiny challenge for the tests: a patches-stage directory (6 patches, 3 components, truth
//! with unusual digits) and submissions made from its truth.
#![allow(dead_code)]

use gammabench::npy;
use gammabench::projection::PatchGeometry;
use std::path::Path;

/// A tiny patches-stage directory: 6 patches, 3 components, truth with unusual digits;
/// returns the truth values as written (none may appear in a public answer).
pub fn patches_dir(dir: &Path) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let g = PatchGeometry::default();
    let n = 6;
    let centres: Vec<(f64, f64)> = (0..n)
        .map(|i| (i as f64 * 7.0 + 3.0, 25.0 - 9.0 * i as f64))
        .collect();
    let mut pc = String::from("patch_id,glon_deg,glat_deg\n");
    for (i, (l, b)) in centres.iter().enumerate() {
        pc.push_str(&format!("{},{l},{b}\n", 100 + i));
    }
    std::fs::write(dir.join("patches.csv"), pc).unwrap();
    let mut truth = String::from(
        "patch_id,source_id,class,x_pix,y_pix,glon_deg,glat_deg,flux_1000_ph_cm2_s,flux_10000_ph_cm2_s,counts_bin0,counts_bin1,counts_bin2,counts_bin3,counts_bin4,snr_c,sbr_c\n",
    );
    let mut values = Vec::new();
    let size = 64 * 64 * 5;
    let mut agn = vec![0f32; n * size];
    let mut psr = vec![0f32; n * size];
    let diffuse: Vec<f32> = (0..n * size).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
    for (p, &(l0, b0)) in centres.iter().enumerate() {
        for s in 0..8 {
            let (x, y): (f64, f64) = (r.random_range(3.0..60.0), r.random_range(3.0..60.0));
            let (l, b) = g.pix_to_sky(l0, b0, x, y);
            let flux: f64 = 10f64.powf(r.random_range(-10.5..-8.7));
            let f10 = flux * r.random_range(0.05..0.2);
            let is_psr = s % 2 == 1;
            let row = vec![
                format!("{x}"),
                format!("{y}"),
                format!("{l}"),
                format!("{b}"),
                format!("{flux}"),
                format!("{f10}"),
            ];
            truth.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},1,2,3,4,5,{},{}\n",
                100 + p,
                p * 100 + s,
                if is_psr { "PSR" } else { "AGN" },
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                flux * 1e10,
                flux * 3e9
            ));
            values.extend(row);
            let (xi, yi) = (x.round() as usize, y.round() as usize);
            let target = if is_psr { &mut psr } else { &mut agn };
            for k in 0..5 {
                target[p * size + (yi * 64 + xi) * 5 + k] += (flux * 1e11) as f32;
            }
        }
    }
    std::fs::write(dir.join("truth.csv"), truth).unwrap();
    for (name, data) in [("diffuse", &diffuse), ("agn", &agn), ("psr", &psr)] {
        npy::write_f32(
            &dir.join(format!("patches_{name}.npy")),
            &[n, 64, 64, 5],
            data,
        )
        .unwrap();
    }
    values
}

/// A submission detecting a share of the truth sources, plus junk rows.
pub fn submission(path: &Path, truth: &Path, keep_every: usize, junk: usize) {
    let text = std::fs::read_to_string(truth).unwrap();
    let mut s = String::from("patch_id,x_pix,y_pix,score\n");
    for (i, l) in text.lines().skip(1).enumerate() {
        if i % keep_every != 0 {
            continue;
        }
        let f: Vec<&str> = l.split(',').collect();
        let x: f64 = f[3].parse().unwrap();
        let y: f64 = f[4].parse().unwrap();
        s.push_str(&format!("{},{},{},0.9\n", f[0], x + 0.3, y - 0.2));
    }
    for j in 0..junk {
        s.push_str(&format!("100,{}.25,1.75,0.1\n", j % 60));
    }
    std::fs::write(path, s).unwrap();
}
