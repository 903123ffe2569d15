//! Rendering expected counts on a HEALPix RING map: point sources spread by the PSF, and the
//! diffuse emission smoothed by it.
//!
//! **Point sources.** Each source's counts in a bin are spread over the pixels whose centres
//! are within the bin PSF's truncation radius (a few r95 for bright sources, less for faint
//! ones: [`PointSource::radius_deg`]), with weights equal to the PSF
//! density at the pixel centre, normalised so that the weights of a source sum to exactly 1
//! (its counts are conserved to rounding). When the PSF core is not much wider than a pixel
//! (r68 < 2 pixel sizes), the pixels within 1.5 pixel sizes of the source take the mean of
//! the PSF over a 4 x 4 grid of equal-area sub-pixel positions instead, so a narrow PSF is
//! integrated over the pixel rather than sampled at its centre.
//! Sources go in chunks of 2048: the first step (parallel over sources) computes each source's
//! normalisation and keeps its scaled weights as runs of consecutive pixels; the second
//! (parallel over bands of rings, i.e. contiguous slices of the RING map) adds every source
//! of the chunk touching the band, in source order. Each pixel therefore sums its sources in
//! the same order whatever the thread count: maps are byte-identical.
//!
//! **Diffuse.** The counts map is convolved with the bin PSF truncated at its r95 radius
//! (`sky.diffuse_radius_r95`) as a gather that conserves counts: the input is first summed into
//! a working grid whose pixels are at most r68/2 wide (coarser grids for the broad
//! low-energy PSF, the target grid when the PSF is narrow), then each input pixel q spreads its
//! counts over the output pixels p within the radius with weights
//! `w(p, q) / sum_p' w(p', q)`. Computed as a gather (`out[p] = sum_q a[q] w(p, q)`, with
//! `a[q] = in[q] / norm[q]`), parallel over output pixels and deterministic. Both the
//! normalisation and the gather use per-ring weight stencils ([`Grid::gather_linear`],
//! [`Grid::kernel_sums`]): the rings' rotation and mirror symmetries mean the PSF is evaluated
//! for the first few pixels of each pair of mirrored rings only; the other pixels reuse those
//! weights (a sum of shifted source rings in the belt, dot products in the caps).

use super::healpix::{Disc, Grid, dot};
use super::instrument::PsfTable;
use rayon::prelude::*;

/// One source to render in one bin.
#[derive(Debug, Clone, Copy)]
pub struct PointSource<'a> {
    pub v: [f64; 3],
    pub counts: f64,
    pub psf: &'a PsfTable,
}

impl PointSource<'_> {
    /// Radius of the disc the source is spread over, deg: the PSF table's full extent
    /// (`sky.point_radius_r95` x r95) for sources with at least 100 expected counts in the
    /// bin, less for fainter ones: 2 r95 from 10 counts, 1.5 r95 from 1 count, r95 from 0.1
    /// count, 2 r68 below. The tail beyond r95 holds 5% of the counts (beyond 2 r68 about
    /// 15%), so what a faint source's truncated tail would have put in any pixel is far below
    /// one count; its counts are conserved all
    /// the same (the weights are normalised over the disc actually used). This keeps the
    /// ~2.5e5 mostly faint sources of an F2 sky from costing 10^4 pixels each.
    pub fn radius_deg(&self) -> f64 {
        let full = self.psf.radius_deg;
        let r95 = self.psf.r95_deg;
        let r = if self.counts >= 100.0 {
            full
        } else if self.counts >= 10.0 {
            2.0 * r95
        } else if self.counts >= 1.0 {
            1.5 * r95
        } else if self.counts >= 0.1 {
            r95
        } else {
            (2.0 * self.psf.r68_deg).min(r95)
        };
        r.min(full)
    }
}

/// Per-source result of the first pass.
#[derive(Debug, Clone, Default)]
pub struct SourceNorm {
    /// Sum of the raw weights over the disc.
    pub norm: f64,
    /// Ring span of the disc.
    pub rings: (usize, usize),
    /// Supersampled weights of the core pixels, sorted by pixel.
    pub core: Vec<(u64, f64)>,
    /// cos of the core radius (pixels with larger cos are looked up in `core`).
    pub cos_core: f64,
    /// When no pixel centre of the disc gets any weight (a PSF much narrower than the
    /// pixels), all the counts go to the pixel holding the source.
    pub fallback: Option<u64>,
}

/// Disc radius used for `s` on `grid`, rad: [`PointSource::radius_deg`], and at least one
/// pixel size so that a disc always holds some pixel centre.
fn disc_radius(grid: &Grid, s: &PointSource) -> f64 {
    s.radius_deg().max(grid.pixel_size_deg()).to_radians()
}

const SUB: usize = 4;

/// First pass for one source: normalisation and supersampled core.
pub fn source_norm(grid: &Grid, s: &PointSource) -> SourceNorm {
    source_norm_keep(grid, s, None)
}

/// [`source_norm`], also keeping the raw weights of the disc's pixels in `keep`.
fn source_norm_keep(
    grid: &Grid,
    s: &PointSource,
    mut keep: Option<&mut SourceWeights>,
) -> SourceNorm {
    let radius = disc_radius(grid, s);
    let disc = Disc::new(s.v, radius);
    let rings = grid.ring_span(s.v, radius);
    let pix_deg = grid.pixel_size_deg();
    let supersample = s.psf.r68_deg < 2.0 * pix_deg;
    let cos_core = if supersample {
        (1.5 * pix_deg).to_radians().min(radius).cos()
    } else {
        2.0 // no pixel has cos > 2: no core
    };
    let mut core = Vec::new();
    let mut subs = Vec::with_capacity(SUB * SUB);
    let mut norm = 0.0;
    let mut cos_buf = Vec::new();
    if let Some(k) = keep.as_deref_mut() {
        // the disc's pixel count, plus the rings' ragged edges
        let n_est = 2.0 * std::f64::consts::PI * (1.0 - radius.cos()) / grid.pixel_area_sr();
        k.w.reserve(n_est as usize + 8 * (rings.1 - rings.0 + 1));
    }
    // without `keep`, the weights of one run go to a scratch buffer
    let mut scratch = Vec::new();
    grid.for_each_run_in_disc(&disc, rings.0, rings.1, &mut cos_buf, |first, coss| {
        let w: &mut [f64] = match keep.as_deref_mut() {
            Some(kw) => {
                kw.push_run(first, coss.len());
                let start = kw.w.len();
                kw.w.extend(coss.iter().map(|&cos| s.psf.at_cos(cos)));
                &mut kw.w[start..]
            }
            None => {
                scratch.clear();
                scratch.extend(coss.iter().map(|&cos| s.psf.at_cos(cos)));
                &mut scratch
            }
        };
        if supersample {
            for (k, &cos) in coss.iter().enumerate() {
                if cos > cos_core {
                    let pix = first + k as u64;
                    grid.subpixel_vecs(pix, SUB, &mut subs);
                    w[k] = subs.iter().map(|u| s.psf.at_cos(dot(*u, s.v))).sum::<f64>()
                        / subs.len() as f64;
                    core.push((pix, w[k]));
                }
            }
        }
        norm += sum4(w);
    });
    core.sort_by_key(|c| c.0);
    if norm <= 0.0 || !norm.is_finite() {
        let pix = grid.lonlat_deg_to_pix(
            s.v[1].atan2(s.v[0]).to_degrees(),
            s.v[2].clamp(-1.0, 1.0).asin().to_degrees(),
        );
        let r = grid.ring_of(pix);
        return SourceNorm {
            norm: 1.0,
            rings: (r, r),
            core: vec![],
            cos_core,
            fallback: Some(pix),
        };
    }
    SourceNorm {
        norm,
        rings,
        core,
        cos_core,
        fallback: None,
    }
}

/// Sum of a slice in four interleaved partial sums (independent add chains), combined in a
/// fixed order, then the remainder.
#[inline]
fn sum4(x: &[f64]) -> f64 {
    let mut acc = [0.0f64; 4];
    let chunks = x.chunks_exact(4);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..4 {
            acc[i] += c[i];
        }
    }
    rest.iter()
        .fold((acc[0] + acc[1]) + (acc[2] + acc[3]), |s, v| s + v)
}

/// Weight of `pix` for a source (0 outside its disc): the fraction of its counts in `pix`.
pub fn source_fraction_at(grid: &Grid, s: &PointSource, n: &SourceNorm, pix: u64) -> f64 {
    if let Some(f) = n.fallback {
        return if f == pix { 1.0 } else { 0.0 };
    }
    if n.norm <= 0.0 {
        return 0.0;
    }
    if let Ok(i) = n.core.binary_search_by_key(&pix, |c| c.0) {
        return n.core[i].1 / n.norm;
    }
    let cos = dot(grid.pix_to_vec(pix), s.v);
    if cos < disc_radius(grid, s).cos() {
        return 0.0;
    }
    s.psf.at_cos(cos) / n.norm
}

/// Number of ring bands the second pass splits the map into (fixed, so that nothing depends
/// on the thread count).
fn n_bands(grid: &Grid) -> usize {
    (grid.rings().len() / 4).clamp(1, 256)
}

/// Splits `map` into the pixel slices of `bands`.
fn band_slices<'m>(
    grid: &Grid,
    bands: &[(usize, usize)],
    mut map: &'m mut [f64],
) -> Vec<&'m mut [f64]> {
    let mut out = Vec::with_capacity(bands.len());
    for &(lo, hi) in bands {
        let (a, b) = grid.band_pixels(lo, hi);
        let (head, tail) = map.split_at_mut(b - a);
        out.push(head);
        map = tail;
    }
    out
}

/// Pixels whose weights are computed at once before being added to the map (sources are
/// grouped until their discs reach this many pixels): 2 MB of weights, which stay in cache
/// until added, while each group is large enough to keep both phases' threads busy.
const CHUNK_PIXELS: f64 = 262_144.0;

/// Consecutive groups of sources of about [`CHUNK_PIXELS`] disc pixels (at least one source
/// each). The grouping only affects speed: every pixel adds its sources in source order.
fn chunk_bounds(grid: &Grid, sources: &[PointSource]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let (mut start, mut acc) = (0usize, 0.0f64);
    let area = grid.pixel_area_sr();
    for (i, s) in sources.iter().enumerate() {
        let r = disc_radius(grid, s);
        acc += 2.0 * std::f64::consts::PI * (1.0 - r.cos()) / area;
        if acc >= CHUNK_PIXELS {
            out.push((start, i + 1));
            start = i + 1;
            acc = 0.0;
        }
    }
    if start < sources.len() {
        out.push((start, sources.len()));
    }
    out
}

/// The pixel weights of one source, already scaled by counts / norm: runs of consecutive
/// pixels `(first pixel, length)` in increasing order, and their weights in the same order.
#[derive(Debug, Default)]
struct SourceWeights {
    runs: Vec<(u64, u32)>,
    /// Index into `w` of each run's first weight.
    offsets: Vec<u32>,
    /// Raw weights; the map gets `w * scale`.
    w: Vec<f64>,
    scale: f64,
}

impl SourceWeights {
    /// Appends the run of `len` pixels from `first` (its weights are pushed by the caller),
    /// merged with the last run when they touch.
    #[inline]
    fn push_run(&mut self, first: u64, len: usize) {
        match self.runs.last_mut() {
            Some(r) if r.0 + r.1 as u64 == first => r.1 += len as u32,
            _ => {
                self.offsets.push(self.w.len() as u32);
                self.runs.push((first, len as u32));
            }
        }
    }
    #[inline]
    fn push(&mut self, pix: u64, w: f64) {
        self.push_run(pix, 1);
        self.w.push(w);
    }
}

/// One walk over a source's disc: its [`SourceNorm`], and its weights scaled by
/// counts / norm written into `out` (cleared first; its capacity is reused).
fn source_weights_into(grid: &Grid, s: &PointSource, out: &mut SourceWeights) -> SourceNorm {
    out.runs.clear();
    out.offsets.clear();
    out.w.clear();
    out.scale = 0.0;
    if s.counts <= 0.0 {
        return source_norm(grid, s);
    }
    let n = source_norm_keep(grid, s, Some(out));
    if let Some(pix) = n.fallback {
        out.runs.clear();
        out.offsets.clear();
        out.w.clear();
        out.push(pix, 1.0);
        out.scale = s.counts;
        return n;
    }
    // counts / norm, applied when the weights are added to the map
    out.scale = s.counts / n.norm;
    n
}

/// Renders point sources of one bin; returns the map and each source's normalisation.
///
/// Sources go in chunks: the weights of a chunk's sources are computed in parallel (one
/// disc walk per source, into buffers reused from chunk to chunk so that the pages are
/// touched once), then added to the map in parallel over bands of rings, each band adding
/// the chunk's sources in source order (so the map does not depend on the thread count).
pub fn render_points(grid: &Grid, sources: &[PointSource]) -> (Vec<f64>, Vec<SourceNorm>) {
    let mut map = vec![0.0f64; grid.npix()];
    let bands = grid.bands(n_bands(grid));
    let band_px: Vec<(u64, u64)> = bands
        .iter()
        .map(|&(lo, hi)| {
            let (a, b) = grid.band_pixels(lo, hi);
            (a as u64, b as u64)
        })
        .collect();
    let mut norms = Vec::with_capacity(sources.len());
    let chunks = chunk_bounds(grid, sources);
    let largest = chunks.iter().map(|(a, b)| b - a).max().unwrap_or(0);
    let mut pool: Vec<SourceWeights> = (0..largest).map(|_| SourceWeights::default()).collect();
    let mut per_band: Vec<Vec<u32>> = vec![Vec::new(); bands.len()];
    for &(c0, c1) in &chunks {
        let chunk = &sources[c0..c1];
        let done = &mut pool[..chunk.len()];
        let chunk_norms: Vec<SourceNorm> = done
            .par_iter_mut()
            .zip(chunk.par_iter())
            .map(|(sw, s)| source_weights_into(grid, s, sw))
            .collect();
        let done = &pool[..chunk.len()];
        // Each band's sources (those whose pixels overlap it), in source order.
        per_band.iter_mut().for_each(Vec::clear);
        for (i, sw) in done.iter().enumerate() {
            let (Some(f), Some(l)) = (sw.runs.first(), sw.runs.last()) else {
                continue;
            };
            let (p0, p1) = (f.0, l.0 + l.1 as u64);
            let b0 = band_px.partition_point(|&(_, b)| b <= p0);
            for (k, list) in per_band.iter_mut().enumerate().skip(b0) {
                if band_px[k].0 >= p1 {
                    break;
                }
                list.push(i as u32);
            }
        }
        let slices = band_slices(grid, &bands, &mut map);
        slices
            .into_par_iter()
            .zip(band_px.par_iter())
            .zip(per_band.par_iter())
            .for_each(|((slice, &(a, b)), list)| {
                for &i in list {
                    let sw = &done[i as usize];
                    // runs are sorted: skip those ending before the band, stop after it
                    let start = sw.runs.partition_point(|r| r.0 + r.1 as u64 <= a);
                    let mut k: usize = sw.offsets[start] as usize;
                    for &(first, len) in &sw.runs[start..] {
                        if first >= b {
                            break;
                        }
                        let (lo, hi) = (first.max(a), (first + len as u64).min(b));
                        if lo < hi {
                            let w = &sw.w[k + (lo - first) as usize..k + (hi - first) as usize];
                            let o = &mut slice[(lo - a) as usize..(hi - a) as usize];
                            let scale = sw.scale;
                            o.iter_mut().zip(w).for_each(|(o, w)| *o += w * scale);
                        }
                        k += len as usize;
                    }
                }
            });
        norms.extend(chunk_norms);
    }
    (map, norms)
}

/// The working NSIDE of the diffuse convolution: the coarsest grid whose pixels are at most
/// r68/2 wide, and no finer than the target.
pub fn working_nside(nside: u32, r68_deg: f64) -> u32 {
    let mut w = 1u32;
    while w < nside && Grid::pixel_size_deg_of(w) > r68_deg / 2.0 {
        w *= 2;
    }
    w
}

/// Sums a RING map at `nside` into a RING map at the coarser `nside_w`.
pub fn downsample(map: &[f64], nside: u32, nside_w: u32) -> Vec<f64> {
    if nside_w == nside {
        return map.to_vec();
    }
    let depth = nside.trailing_zeros() as u8;
    let depth_w = nside_w.trailing_zeros() as u8;
    let shift = 2 * (depth - depth_w) as u32;
    let layer = cdshealpix::nested::get(depth);
    let layer_w = cdshealpix::nested::get(depth_w);
    let mut out = vec![0.0; 12 * nside_w as usize * nside_w as usize];
    for (p, &x) in map.iter().enumerate() {
        let parent = layer.from_ring(p as u64) >> shift;
        out[layer_w.to_ring(parent) as usize] += x;
    }
    out
}

/// Convolves a diffuse counts map with `psf` truncated at `radius_deg`, conserving counts.
pub fn smooth_diffuse(grid: &Grid, map: &[f64], psf: &PsfTable, radius_deg: f64) -> Vec<f64> {
    let nside_w = working_nside(grid.nside, psf.r68_deg);
    let coarser;
    let gw = if nside_w == grid.nside {
        grid
    } else {
        coarser = Grid::new(nside_w);
        &coarser
    };
    let coarse = downsample(map, grid.nside, nside_w);
    let radius = radius_deg.to_radians();
    // norm[q]: sum of the weights the working pixel q gives to the output pixels
    let norm: Vec<f64> = gw.kernel_sums(grid, radius, |cos| psf.at_cos(cos));
    let a: Vec<f64> = coarse
        .iter()
        .zip(&norm)
        .map(|(c, n)| if *n > 0.0 { c / n } else { 0.0 })
        .collect();
    grid.gather_linear(gw, radius, &a, |cos| psf.at_cos(cos))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sky::healpix::lonlat_deg_to_vec;
    use crate::sky::instrument::Instrument;

    fn inst() -> Instrument {
        Instrument::new(
            "P8R3_ULTRACLEANVETO_V2",
            9.5,
            0.2,
            &[500.0, 1000.0, 2000.0, 7000.0, 20000.0, 200000.0],
            3.0,
        )
        .unwrap()
    }

    #[test]
    fn point_counts_are_conserved() {
        let inst = inst();
        let grid = Grid::new(64);
        for bin in 0..5 {
            let psf = inst.psf(bin, 2.2);
            let srcs: Vec<PointSource> = [
                (0.0, 0.0),
                (359.99, 89.9),
                (123.4, -45.6),
                (10.0, -90.0),
                (200.0, 1.0),
            ]
            .iter()
            .enumerate()
            .map(|(i, &(l, b))| PointSource {
                v: lonlat_deg_to_vec(l, b),
                // bright, faint and very faint sources (different disc radii)
                counts: [100.0, 200.0, 0.5, 5.0, 50.0][i],
                psf,
            })
            .collect();
            let (map, _) = render_points(&grid, &srcs);
            let total: f64 = map.iter().sum();
            assert!((total / 355.5 - 1.0).abs() < 1e-9, "bin {bin}: {total}");
        }
    }

    #[test]
    fn diffuse_counts_are_conserved() {
        let inst = inst();
        let grid = Grid::new(32);
        let map: Vec<f64> = (0..grid.npix()).map(|p| 1.0 + (p % 17) as f64).collect();
        let total: f64 = map.iter().sum();
        for bin in 0..5 {
            let psf = inst.psf(bin, 2.7);
            let out = smooth_diffuse(&grid, &map, psf, psf.r95_deg);
            let t: f64 = out.iter().sum();
            assert!((t / total - 1.0).abs() < 1e-3, "bin {bin}: {t} vs {total}");
        }
        // a uniform map stays nearly uniform (ripple from the working grid below 5%)
        let uniform = vec![1.0; grid.npix()];
        let psf = inst.psf(0, 2.7);
        let out = smooth_diffuse(&grid, &uniform, psf, psf.r95_deg);
        let (mn, mx) = out
            .iter()
            .fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        assert!(mn > 0.95 && mx < 1.05, "{mn} {mx}");
    }
}
