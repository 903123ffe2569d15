//! Laplacian-of-Gaussian head (AutoSourceID: Stoppa et al. 2022; Bhattacharyya et al. 2024,
//! "U-Net + LoG" for Fermi-LAT).
//!
//! The U-Net score map is filtered with the scale-normalised negative Laplacian of a Gaussian,
//! `-sigma^2 (d2/dx2 + d2/dy2) G_sigma`, for each scale `sigma` (default 1.4 px, matching the
//! 2.5 px target disks: a disk of radius R answers `R^2/sigma^2 exp(-R^2 / 2 sigma^2)` at
//! its centre, 0.65 here); local maxima over space and scale above `threshold` (0.2) are
//! blobs of radius `sigma sqrt(2)`; when two blobs overlap by more than `overlap` (0.8) of the
//! smaller one's area, the smaller-scale (or, at equal scale, weaker) blob is dropped, as in
//! scikit-image's `blob_log`. Positions are refined to sub-pixel by a parabola through the
//! response along each axis. The blob score is the LoG response.

use super::config::LogSection;
use super::{PixelPeak, refine_parabolic};

/// The scale-normalised negative LoG kernel, `(2r+1)^2` with `r = ceil(4 sigma)`.
pub fn log_kernel(sigma: f64) -> (Vec<f64>, usize) {
    let r = (4.0 * sigma).ceil() as usize;
    let n = 2 * r + 1;
    let s2 = sigma * sigma;
    let mut k = vec![0.0; n * n];
    for y in 0..n {
        for x in 0..n {
            let (dx, dy) = (x as f64 - r as f64, y as f64 - r as f64);
            let q = (dx * dx + dy * dy) / (2.0 * s2);
            // -sigma^2 * laplacian of the unit Gaussian.
            k[y * n + x] = (1.0 - q) * (-q).exp() / (std::f64::consts::PI * s2);
        }
    }
    // Zero sum: a flat map gives no response.
    let mean = k.iter().sum::<f64>() / (n * n) as f64;
    k.iter_mut().for_each(|v| *v -= mean);
    (k, r)
}

/// Filters a map with the LoG at `sigma`, padding with the nearest edge value (scipy's
/// `mode="nearest"`), so that a flat map gives no response anywhere, edges included.
pub fn log_response(map: &[f64], size: usize, sigma: f64) -> Vec<f64> {
    let (k, r) = log_kernel(sigma);
    let n = 2 * r + 1;
    let last = size as isize - 1;
    let mut out = vec![0.0; size * size];
    for y in 0..size {
        for x in 0..size {
            let mut acc = 0.0;
            for ky in 0..n {
                let yy = (y as isize + ky as isize - r as isize).clamp(0, last) as usize;
                for kx in 0..n {
                    let xx = (x as isize + kx as isize - r as isize).clamp(0, last) as usize;
                    acc += k[ky * n + kx] * map[yy * size + xx];
                }
            }
            out[y * size + x] = acc;
        }
    }
    out
}

/// Area of intersection of two disks over the smaller one's area.
fn overlap_fraction(r1: f64, r2: f64, d: f64) -> f64 {
    let (r1, r2) = if r1 <= r2 { (r1, r2) } else { (r2, r1) };
    if d >= r1 + r2 {
        return 0.0;
    }
    if d <= r2 - r1 {
        return 1.0;
    }
    let a1 = r1
        * r1
        * ((d * d + r1 * r1 - r2 * r2) / (2.0 * d * r1))
            .clamp(-1.0, 1.0)
            .acos();
    let a2 = r2
        * r2
        * ((d * d + r2 * r2 - r1 * r1) / (2.0 * d * r2))
            .clamp(-1.0, 1.0)
            .acos();
    let a3 = 0.5
        * ((-d + r1 + r2) * (d + r1 - r2) * (d - r1 + r2) * (d + r1 + r2))
            .max(0.0)
            .sqrt();
    (a1 + a2 - a3) / (std::f64::consts::PI * r1 * r1)
}

/// The LoG head on one score map.
pub fn log_head(score: &[f64], size: usize, p: &LogSection) -> Vec<PixelPeak> {
    let responses: Vec<Vec<f64>> = p
        .sigmas_px
        .iter()
        .map(|&s| log_response(score, size, s))
        .collect();
    let ns = responses.len();
    // (x, y, sigma, response)
    let mut blobs: Vec<(f64, f64, f64, f64)> = Vec::new();
    for (si, resp) in responses.iter().enumerate() {
        for y in 0..size {
            for x in 0..size {
                let v = resp[y * size + x];
                if v.is_nan() || v < p.threshold {
                    continue;
                }
                let mut is_max = true;
                let lo = si.saturating_sub(1);
                'w: for (sj, rs) in responses
                    .iter()
                    .enumerate()
                    .take((si + 1).min(ns - 1) + 1)
                    .skip(lo)
                {
                    for yy in y.saturating_sub(1)..=(y + 1).min(size - 1) {
                        for xx in x.saturating_sub(1)..=(x + 1).min(size - 1) {
                            let o = rs[yy * size + xx];
                            let earlier = (sj, yy, xx) < (si, y, x);
                            if o > v || (o == v && earlier) {
                                is_max = false;
                                break 'w;
                            }
                        }
                    }
                }
                if is_max {
                    let (fx, fy) = refine_parabolic(resp, size, y, x);
                    blobs.push((fx, fy, p.sigmas_px[si], v));
                }
            }
        }
    }
    // Prune overlapping blobs: strongest (larger scale, then larger response) first.
    blobs.sort_by(|a, b| (b.2, b.3).partial_cmp(&(a.2, a.3)).expect("finite"));
    let mut kept: Vec<(f64, f64, f64, f64)> = Vec::new();
    for b in blobs {
        let clash = kept.iter().any(|k| {
            let d = ((k.0 - b.0).powi(2) + (k.1 - b.1).powi(2)).sqrt();
            overlap_fraction(k.2 * 2f64.sqrt(), b.2 * 2f64.sqrt(), d) > p.overlap
        });
        if !clash {
            kept.push(b);
        }
    }
    kept.sort_by(|a, b| (a.1, a.0).partial_cmp(&(b.1, b.0)).expect("finite"));
    kept.into_iter()
        .map(|(x, y, _, v)| PixelPeak {
            x_pix: x,
            y_pix: y,
            score: v,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_map_gives_no_response_and_disk_centre_matches_theory() {
        let size = 32;
        let flat = vec![1.0; size * size];
        let r = log_response(&flat, size, 1.4);
        assert!(r[16 * size + 16].abs() < 1e-9);
        let disk: Vec<f64> = (0..size * size)
            .map(|i| {
                let (x, y) = ((i % size) as f64 - 16.0, (i / size) as f64 - 16.0);
                if x * x + y * y <= 6.25 { 1.0 } else { 0.0 }
            })
            .collect();
        let r = log_response(&disk, size, 1.4);
        let theory = (6.25f64 / 1.96) * (-6.25f64 / (2.0 * 1.96)).exp();
        assert!(
            (r[16 * size + 16] - theory).abs() < 0.12,
            "{} vs {theory}",
            r[16 * size + 16]
        );
    }

    #[test]
    fn overlap_fraction_limits() {
        assert_eq!(overlap_fraction(1.0, 1.0, 3.0), 0.0);
        assert_eq!(overlap_fraction(1.0, 2.0, 0.5), 1.0);
        let f = overlap_fraction(1.0, 1.0, 1.0);
        assert!((f - 0.391).abs() < 0.01, "{f}");
    }
}
