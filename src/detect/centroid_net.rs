//! Centroid-Net head: vote counting (Dijkstra et al. 2018, "CentroidNet: a deep neural
//! network for joint object localization and counting"; OpenCentroidNet; Panes et al. 2021,
//! sect. 3.2.2).
//!
//! The U-Net gets two extra output channels trained with a mean squared error to the vector
//! `(dx, dy)` from each pixel to its nearest source when that source is within
//! `max_dist_px`, and `(0, 0)` otherwise ([`vote_targets`], built with the training targets in
//! [`crate::train::data`]; the network regresses the vector
//! divided by `max_dist_px`). At inference every pixel casts one vote at its own position plus
//! its predicted vector; votes are accumulated on the pixel grid (spatial binning 1) by
//! bilinear splatting so that sub-pixel vote positions are kept; the local maxima of the 3 x 3
//! vote sums over an `nm_size x nm_size` window (non-maximum suppression, 3) with at least
//! `vote_threshold` votes (40) are centroids, refined to sub-pixel by the vote-weighted mean
//! of their 3 x 3 neighbourhood; a centroid's score is the number of votes in that
//! neighbourhood. (`threshold_on = "peak"` searches the vote map pixel by pixel instead, the
//! earlier rule: a bright source's votes spread over several pixels stayed under the
//! threshold in each, and CNET lost 102 of the 104 sources above S1 = 1e-8 of the CI F0-B1
//! test sky.) Pixels far from every source vote for themselves (one vote),
//! well below the threshold.
//!
//! OpenCentroidNet's `max_dist` of 30 px was chosen for images hundreds of pixels wide; on
//! our 64 px patches with sources a few pixels apart the default is 6 px (about the PSF
//! 95 % radius at 1 GeV), which keeps vectors pointing at the nearest source unambiguous.

use super::config::{CnetSection, VoteThresholdOn};
use super::{PixelPeak, local_maxima};

pub use crate::train::data::vote_targets;

/// Accumulates the votes of a vector field (px) into a `size x size` map.
pub fn vote_map(vectors: &[[f32; 2]], size: usize) -> Vec<f64> {
    let mut votes = vec![0.0; size * size];
    for y in 0..size {
        for x in 0..size {
            let v = vectors[y * size + x];
            let (vx, vy) = (x as f64 + v[0] as f64, y as f64 + v[1] as f64);
            let (x0, y0) = (vx.floor(), vy.floor());
            let (fx, fy) = (vx - x0, vy - y0);
            for (ox, wx) in [(0.0, 1.0 - fx), (1.0, fx)] {
                for (oy, wy) in [(0.0, 1.0 - fy), (1.0, fy)] {
                    let (px, py) = (x0 + ox, y0 + oy);
                    if px >= 0.0 && py >= 0.0 && (px as usize) < size && (py as usize) < size {
                        votes[py as usize * size + px as usize] += wx * wy;
                    }
                }
            }
        }
    }
    votes
}

/// The votes of each pixel's 3 x 3 neighbourhood (clipped at the edges).
pub fn window_sums(votes: &[f64], size: usize) -> Vec<f64> {
    let mut out = vec![0.0; size * size];
    for y in 0..size {
        for x in 0..size {
            let mut s = 0.0;
            for yy in y.saturating_sub(1)..=(y + 1).min(size - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(size - 1) {
                    s += votes[yy * size + xx];
                }
            }
            out[y * size + x] = s;
        }
    }
    out
}

/// The CNET head on one vector field (px, row-major).
pub fn cnet_head(vectors: &[[f32; 2]], size: usize, p: &CnetSection) -> Vec<PixelPeak> {
    let votes = vote_map(vectors, size);
    let searched = match p.threshold_on {
        VoteThresholdOn::Window => window_sums(&votes, size),
        VoteThresholdOn::Peak => votes.clone(),
    };
    local_maxima(&searched, size, p.nm_size_px / 2, p.vote_threshold)
        .into_iter()
        .map(|(y, x)| {
            let (mut w, mut sx, mut sy) = (0.0, 0.0, 0.0);
            for yy in y.saturating_sub(1)..=(y + 1).min(size - 1) {
                for xx in x.saturating_sub(1)..=(x + 1).min(size - 1) {
                    let v = votes[yy * size + xx];
                    w += v;
                    sx += v * xx as f64;
                    sy += v * yy as f64;
                }
            }
            PixelPeak {
                x_pix: sx / w,
                y_pix: sy / w,
                score: w,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_vectors_vote_at_the_source() {
        let src = [(20.3, 40.7), (45.0, 10.2)];
        let v = vote_targets(64, &src, 6.0);
        let peaks = cnet_head(&v, 64, &CnetSection::default());
        assert_eq!(peaks.len(), 2, "{peaks:?}");
        for (sx, sy) in src {
            assert!(
                peaks
                    .iter()
                    .any(|p| (p.x_pix - sx).abs() < 0.05 && (p.y_pix - sy).abs() < 0.05)
            );
        }
        // About pi * 6^2 pixels vote for each source, all within its 3 x 3 neighbourhood.
        assert!(peaks.iter().all(|p| p.score > 80.0));
    }

    #[test]
    fn spread_votes_pass_the_window_threshold_not_the_pixel_one() {
        // 40 pixels vote for a source at (20, 20), their votes spread evenly over the 3 x 3
        // pixels around it (about 4.4 each): 40 votes in the window, < 10 in any pixel.
        let mut v = vec![[0.0f32; 2]; 64 * 64];
        let mut k = 0;
        for y in 10..30usize {
            for x in 10..30usize {
                if k >= 40 || (x, y) == (20, 20) {
                    continue;
                }
                let (tx, ty) = (19 + (k % 3), 19 + (k / 3) % 3);
                v[y * 64 + x] = [tx as f32 - x as f32, ty as f32 - y as f32];
                k += 1;
            }
        }
        let window = cnet_head(&v, 64, &CnetSection::default());
        assert_eq!(window.len(), 1, "{window:?}");
        assert!((window[0].x_pix - 20.0).abs() < 0.2 && (window[0].y_pix - 20.0).abs() < 0.2);
        assert!(window[0].score >= 40.0);
        let peak = CnetSection {
            threshold_on: VoteThresholdOn::Peak,
            ..CnetSection::default()
        };
        assert!(cnet_head(&v, 64, &peak).is_empty());
    }
}
