//! Training data for the U-Net detectors: inputs (Poisson draws of the Asimov patches,
//! normalised) and targets (disks around sources, Centroid-Net vote vectors).

use crate::config::Normalisation;
use crate::patches::set::{PatchSet, poisson_counts};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Input normalisation with its fitted statistics (saved next to the weights).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normaliser {
    pub kind: Normalisation,
    /// Per-bin mean of `ln(1 + counts)` (standardise only).
    pub mean: Vec<f64>,
    /// Per-bin standard deviation of `ln(1 + counts)` (standardise only).
    pub std: Vec<f64>,
}

impl Normaliser {
    /// Fits the statistics on the Asimov totals of the given patches.
    pub fn fit(kind: Normalisation, patches: &PatchSet, idx: &[usize]) -> Self {
        let nb = patches.n_bins();
        let (mut s1, mut s2, mut n) = (vec![0.0; nb], vec![0.0; nb], 0.0);
        if kind == Normalisation::Standardise {
            for &i in idx {
                for (k, v) in patches.total.patch(i).iter().enumerate() {
                    let l = (*v as f64).ln_1p();
                    s1[k % nb] += l;
                    s2[k % nb] += l * l;
                }
                n += (patches.size() * patches.size()) as f64;
            }
        }
        let mean: Vec<f64> = s1.iter().map(|s| s / n.max(1.0)).collect();
        let std = s2
            .iter()
            .zip(&mean)
            .map(|(s, m)| (s / n.max(1.0) - m * m).max(0.0).sqrt().max(1e-3))
            .collect();
        Self { kind, mean, std }
    }

    /// Normalised value of `counts` in bin `b`.
    pub fn apply(&self, counts: f32, b: usize) -> f32 {
        let l = (counts as f64).ln_1p();
        match self.kind {
            Normalisation::Log1p => l as f32,
            Normalisation::Standardise => ((l - self.mean[b]) / self.std[b]) as f32,
        }
    }
}

/// How the inputs of a batch are drawn.
#[derive(Debug, Clone, Copy)]
pub enum Draw<'a> {
    /// Poisson counts keyed by `(seed, stage, patch_id)`.
    Poisson { seed: u64, stage: &'a str },
    /// The Asimov expected counts themselves.
    Asimov,
}

/// A mirror of a patch: pixel `(x, y)` of the mirrored patch is pixel
/// `(s - 1 - x, y)` (`x`), `(x, s - 1 - y)` (`y`) or both of the original; pixel centres sit
/// at integer coordinates, so a source at `x_pix` moves to `s - 1 - x_pix`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flip {
    pub x: bool,
    pub y: bool,
}

impl Flip {
    /// Code 0..4: bit 0 mirrors x, bit 1 mirrors y.
    pub fn from_code(code: u8) -> Self {
        Self {
            x: code & 1 == 1,
            y: code & 2 == 2,
        }
    }
    /// Source pixel index (row-major) that lands at `(x, y)` of the mirrored patch; a mirror
    /// is its own inverse, so this also maps an original pixel to its mirrored place.
    fn source_pixel(self, s: usize, x: usize, y: usize) -> usize {
        let sx = if self.x { s - 1 - x } else { x };
        let sy = if self.y { s - 1 - y } else { y };
        sy * s + sx
    }
    /// A position `(x, y)` in px, mirrored.
    pub fn point(self, s: usize, (x, y): (f64, f64)) -> (f64, f64) {
        let m = (s - 1) as f64;
        (
            if self.x { m - x } else { x },
            if self.y { m - y } else { y },
        )
    }
}

/// Input tensor `[n, bins, H, W]` for patches `idx`.
pub fn inputs(
    patches: &PatchSet,
    idx: &[usize],
    draw: Draw,
    norm: &Normaliser,
    device: &Device,
) -> Tensor<4> {
    inputs_flipped(patches, idx, draw, norm, &[], device)
}

/// [`inputs`] with patch `idx[j]` mirrored by `flips[j]` (an empty `flips`: none).
pub fn inputs_flipped(
    patches: &PatchSet,
    idx: &[usize],
    draw: Draw,
    norm: &Normaliser,
    flips: &[Flip],
    device: &Device,
) -> Tensor<4> {
    let (s, nb) = (patches.size(), patches.n_bins());
    let mut buf = vec![0f32; idx.len() * nb * s * s];
    for (j, &i) in idx.iter().enumerate() {
        let hwc: Vec<f32> = match draw {
            Draw::Poisson { seed, stage } => poisson_counts(patches, i, seed, stage),
            Draw::Asimov => patches.total.patch(i).to_vec(),
        };
        let flip = flips.get(j).copied().unwrap_or_default();
        let base = j * nb * s * s;
        for y in 0..s {
            for x in 0..s {
                let from = flip.source_pixel(s, x, y);
                let pix = y * s + x;
                for b in 0..nb {
                    buf[base + b * s * s + pix] = norm.apply(hwc[from * nb + b], b);
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(buf, [idx.len(), nb, s, s]), device)
}

/// Source positions `(x, y)` of patch `i`.
pub fn source_xy(patches: &PatchSet, i: usize) -> Vec<(f64, f64)> {
    patches.truth[i]
        .iter()
        .map(|t| (t.x_pix, t.y_pix))
        .collect()
}

/// Disk mask (1 within `radius_px` of a source) of patch `i`, row-major.
pub fn disk_mask(patches: &PatchSet, i: usize, radius_px: f64) -> Vec<f32> {
    disk_mask_at(patches.size(), &source_xy(patches, i), radius_px)
}

/// Disk mask of sources at `src` on a `s x s` patch, row-major.
fn disk_mask_at(s: usize, src: &[(f64, f64)], radius_px: f64) -> Vec<f32> {
    (0..s * s)
        .map(|k| {
            let (x, y) = ((k % s) as f64, (k / s) as f64);
            let inside = src
                .iter()
                .any(|(sx, sy)| (x - sx).powi(2) + (y - sy).powi(2) <= radius_px * radius_px);
            if inside { 1.0 } else { 0.0 }
        })
        .collect()
}

/// Targets `[n, 2 or 4, H, W]`: one-hot (background, source) disks, then for Centroid-Net the
/// vote vectors divided by `max_dist_px`.
pub fn targets(
    patches: &PatchSet,
    idx: &[usize],
    radius_px: f64,
    vectors_max_dist_px: Option<f64>,
    device: &Device,
) -> Tensor<4> {
    targets_flipped(patches, idx, radius_px, vectors_max_dist_px, &[], device)
}

/// [`targets`] of patch `idx[j]` mirrored by `flips[j]` (the sources mirrored, so the vote
/// vectors change sign with them).
pub fn targets_flipped(
    patches: &PatchSet,
    idx: &[usize],
    radius_px: f64,
    vectors_max_dist_px: Option<f64>,
    flips: &[Flip],
    device: &Device,
) -> Tensor<4> {
    let s = patches.size();
    let c = if vectors_max_dist_px.is_some() { 4 } else { 2 };
    let mut buf = vec![0f32; idx.len() * c * s * s];
    for (j, &i) in idx.iter().enumerate() {
        let flip = flips.get(j).copied().unwrap_or_default();
        let src: Vec<(f64, f64)> = source_xy(patches, i)
            .into_iter()
            .map(|p| flip.point(s, p))
            .collect();
        let base = j * c * s * s;
        for (k, m) in disk_mask_at(s, &src, radius_px).into_iter().enumerate() {
            buf[base + k] = 1.0 - m;
            buf[base + s * s + k] = m;
        }
        if let Some(md) = vectors_max_dist_px {
            for (k, v) in vote_targets(s, &src, md).into_iter().enumerate() {
                buf[base + 2 * s * s + k] = v[0] / md as f32;
                buf[base + 3 * s * s + k] = v[1] / md as f32;
            }
        }
    }
    Tensor::from_data(TensorData::new(buf, [idx.len(), c, s, s]), device)
}

/// Centroid-Net target vote vectors `(dx, dy)` for one patch (to the nearest source within
/// `max_dist_px`, `(0, 0)` otherwise; see [`crate::detect::centroid_net`]), row-major `[y][x]`, in px.
pub fn vote_targets(size: usize, sources: &[(f64, f64)], max_dist_px: f64) -> Vec<[f32; 2]> {
    let mut out = vec![[0.0f32; 2]; size * size];
    for y in 0..size {
        for x in 0..size {
            let mut best = (f64::INFINITY, [0.0; 2]);
            for &(sx, sy) in sources {
                let (dx, dy) = (sx - x as f64, sy - y as f64);
                let d2 = dx * dx + dy * dy;
                if d2 < best.0 {
                    best = (d2, [dx, dy]);
                }
            }
            if best.0 <= max_dist_px * max_dist_px {
                out[y * size + x] = [best.1[0] as f32, best.1[1] as f32];
            }
        }
    }
    out
}

/// The rows of a cross-validated training set (`train.folds >= 2`): `(train, held_out)` of
/// fold `train.fold`. The folds are [`crate::folds::Folds::grouped`] over the regions of
/// [`crate::folds::region_groups`] (`train.fold_nside`, per sky realisation), balanced by
/// true source count, with the stream `(seed, "train/folds", 0)`; the training rows keep
/// [`crate::folds::Folds::train_rows`]'s buffer of `2 sqrt(2)` patch half widths from the
/// held-out patches of their realisation, so no training patch overlaps a held-out one.
pub fn cv_rows(
    set: &PatchSet,
    tc: &super::config::TrainConfig,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    let folds = fold_assignment(set, tc, seed);
    let half_width_deg = crate::projection::PatchGeometry::default().half_width_deg;
    let realisation: Vec<u64> = set.patch_ids.iter().map(|id| id >> 32).collect();
    let train = folds.train_rows(
        tc.fold,
        &realisation,
        &set.centres_deg,
        2.0 * std::f64::consts::SQRT_2 * half_width_deg,
    );
    (train, folds.held_out(tc.fold))
}

/// The fold of every patch of a cross-validated training set (see [`cv_rows`]).
pub fn fold_assignment(
    set: &PatchSet,
    tc: &super::config::TrainConfig,
    seed: u64,
) -> crate::folds::Folds {
    let groups = crate::folds::region_groups(&set.patch_ids, &set.centres_deg, tc.fold_nside);
    let weight: Vec<f64> = set.truth.iter().map(|t| t.len() as f64).collect();
    crate::folds::Folds::grouped(&groups, &weight, tc.folds, seed, "train/folds")
}
