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
//! bilinear splatting so that sub-pixel vote positions are kept; the vote map's local maxima
//! over an `nm_size x nm_size` window (non-maximum suppression, 3) with at least
//! `vote_threshold` votes (10) are centroids, refined to sub-pixel by the vote-weighted mean
//! of their 3 x 3 neighbourhood; a centroid's score is the number of votes in that
//! neighbourhood. Pixels far from every source vote for themselves (one vote),
//! well below the threshold.
//!
//! OpenCentroidNet's `max_dist` of 30 px was chosen for images hundreds of pixels wide; on
//! our 64 px patches with sources a few pixels apart the default is 6 px (about the PSF
//! 95 % radius at 1 GeV), which keeps vectors pointing at the nearest source unambiguous.

use super::config::CnetSection;
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

/// The CNET head on one vector field (px, row-major).
pub fn cnet_head(vectors: &[[f32; 2]], size: usize, p: &CnetSection) -> Vec<PixelPeak> {
    let votes = vote_map(vectors, size);
    local_maxima(&votes, size, p.nm_size_px / 2, p.vote_threshold)
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
}
