//! HEALPix in the RING scheme (Górski et al. 2005, ApJ 622, 759), the pixelisation of every
//! gammabench map.
//!
//! Pixel indexing, centres and sub-pixel positions come from `cdshealpix` (its RING scheme is
//! the standard one healpy uses: pixel 0 of NSIDE 8 is centred on l = 45 deg,
//! b = 84.1497 deg). What cdshealpix does not offer for the RING scheme is an exact disc query
//! by ring, so this module adds one, written as healpy's `query_disc(inclusive=False)`: a pixel
//! is in the disc when its **centre** is within the radius. Iterating ring by ring gives, for
//! every ring, one or two contiguous index ranges, which is what makes rendering fast and
//! lets a band of rings (a contiguous slice of a RING map) be processed by one thread.
//!
//! Ring geometry (rings numbered 1..=4 NSIDE - 1 from the north pole):
//! * north cap, `i < NSIDE`: `z = 1 - i^2 / (3 NSIDE^2)`, `4 i` pixels, first pixel
//!   `2 i (i - 1)`, centres at `phi = (j + 1/2) pi / (2 i)`;
//! * equatorial belt, `NSIDE <= i <= 3 NSIDE`: `z = 4/3 - 2 i / (3 NSIDE)`, `4 NSIDE` pixels,
//!   first pixel `2 NSIDE (NSIDE - 1) + 4 NSIDE (i - NSIDE)`, centres shifted by half a pixel
//!   when `i - NSIDE` is even;
//! * south cap mirrors the north cap.

use std::f64::consts::PI;

/// One iso-latitude ring.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ring {
    /// Index of the first pixel of the ring.
    pub first: u64,
    /// Pixels in the ring.
    pub n: u64,
    /// `cos(theta)` of the ring (z of the unit vector).
    pub z: f64,
    /// `sin(theta)`.
    pub sin_theta: f64,
    /// Longitude of the first pixel centre, rad (0 or half a pixel).
    pub phi0: f64,
    /// sin and cos of the pixel spacing `2 pi / n`.
    pub sin_dp: f64,
    pub cos_dp: f64,
    /// Offset of the ring's `(cos phi, sin phi)` in the grid's longitude table, which rings
    /// with the same pixel count and `phi0` share (all the rings of the equatorial belt use
    /// one of two; north and south cap rings pair up).
    pub trig_offset: usize,
}

/// A HEALPix RING grid of a given NSIDE, with its rings precomputed.
#[derive(Debug, Clone)]
pub struct Grid {
    pub nside: u32,
    rings: Vec<Ring>,
    trig: std::sync::OnceLock<Vec<[f64; 2]>>,
    /// Length of the longitude table (distinct rings' pixel counts summed).
    trig_len: usize,
}

/// Grids up to NSIDE 512 keep a table of pixel longitudes' cosines and sines, one entry per
/// pixel of each distinct ring (about `2 NSIDE^2` entries: 2 MB at NSIDE 256, 8 MB at 512),
/// small enough to stay in cache where a per-pixel table (`12 NSIDE^2`) would not.
const TRIG_MAX_NPIX: usize = 12 * 512 * 512;

impl Grid {
    /// A grid of `nside` (a power of two, 1..=8192).
    pub fn new(nside: u32) -> Self {
        let n = nside as u64;
        let npix = 12 * n * n;
        let ncap = 2 * n * (n - 1);
        let mut rings = Vec::with_capacity(4 * nside as usize - 1);
        // (pixels per ring, shifted) -> offset in the shared longitude table
        let mut offsets: std::collections::HashMap<(u64, bool), usize> = Default::default();
        let mut trig_len = 0usize;
        for i in 1..4 * n {
            let north = i.min(4 * n - i);
            let (mut z, npr, mut first, shifted) = if north < n {
                let z = 1.0 - (north * north) as f64 / (3.0 * (n * n) as f64);
                (z, 4 * north, 2 * north * (north - 1), true)
            } else {
                let z = 4.0 / 3.0 - 2.0 * north as f64 / (3.0 * n as f64);
                (
                    z,
                    4 * n,
                    ncap + (north - n) * 4 * n,
                    (north - n).is_multiple_of(2),
                )
            };
            if north != i {
                z = -z;
                first = npix - first - npr;
            }
            let sin_theta = ((1.0 - z) * (1.0 + z)).max(0.0).sqrt();
            let phi0 = if shifted { PI / npr as f64 } else { 0.0 };
            let (sin_dp, cos_dp) = (2.0 * PI / npr as f64).sin_cos();
            let trig_offset = *offsets.entry((npr, shifted)).or_insert_with(|| {
                trig_len += npr as usize;
                trig_len - npr as usize
            });
            rings.push(Ring {
                first,
                n: npr,
                z,
                sin_theta,
                phi0,
                sin_dp,
                cos_dp,
                trig_offset,
            });
        }
        Self {
            nside,
            rings,
            trig: std::sync::OnceLock::new(),
            trig_len,
        }
    }
    /// `(cos phi, sin phi)` of every pixel centre, built on first use for grids of at most
    /// `TRIG_MAX_NPIX` pixels (larger grids use a rotation recurrence along each ring).
    fn trig(&self) -> Option<&[[f64; 2]]> {
        if self.npix() > TRIG_MAX_NPIX {
            return None;
        }
        Some(self.trig.get_or_init(|| {
            let mut t = vec![[0.0; 2]; self.trig_len];
            for r in &self.rings {
                for j in 0..r.n {
                    let (s, c) = (r.phi0 + j as f64 * 2.0 * PI / r.n as f64).sin_cos();
                    t[r.trig_offset + j as usize] = [c, s];
                }
            }
            t
        }))
    }
    /// The `(cos phi, sin phi)` of the pixels of ring `ri`, if the grid keeps the table.
    #[inline]
    fn ring_trig<'t>(&self, trig: Option<&'t [[f64; 2]]>, ri: usize) -> Option<&'t [[f64; 2]]> {
        let r = &self.rings[ri];
        trig.map(|t| &t[r.trig_offset..r.trig_offset + r.n as usize])
    }
    /// Pixel size in deg of a grid of `nside` (no grid built).
    pub fn pixel_size_deg_of(nside: u32) -> f64 {
        (4.0 * PI / (12.0 * nside as f64 * nside as f64))
            .sqrt()
            .to_degrees()
    }
    /// Number of pixels, `12 NSIDE^2`.
    pub fn npix(&self) -> usize {
        12 * self.nside as usize * self.nside as usize
    }
    /// Pixel solid angle, sr.
    pub fn pixel_area_sr(&self) -> f64 {
        4.0 * PI / self.npix() as f64
    }
    /// Pixel size `sqrt(area)`, deg (0.229 deg at NSIDE 256).
    pub fn pixel_size_deg(&self) -> f64 {
        self.pixel_area_sr().sqrt().to_degrees()
    }
    /// The rings, north to south.
    pub fn rings(&self) -> &[Ring] {
        &self.rings
    }
    /// Index of the ring holding pixel `pix` (0-based into [`Grid::rings`]).
    pub fn ring_of(&self, pix: u64) -> usize {
        self.rings.partition_point(|r| r.first + r.n <= pix)
    }
    /// Galactic (l, b) in deg of a pixel centre; l in [0, 360).
    pub fn pix_to_lonlat_deg(&self, pix: u64) -> (f64, f64) {
        let (lon, lat) = cdshealpix::ring::center(self.nside, pix);
        (lon.to_degrees().rem_euclid(360.0), lat.to_degrees())
    }
    /// Unit vector of a pixel centre.
    pub fn pix_to_vec(&self, pix: u64) -> [f64; 3] {
        let r = &self.rings[self.ring_of(pix)];
        if let Some(t) = self.trig() {
            let [c, s] = t[r.trig_offset + (pix - r.first) as usize];
            return [r.sin_theta * c, r.sin_theta * s, r.z];
        }
        let phi = r.phi0 + (pix - r.first) as f64 * 2.0 * PI / r.n as f64;
        [r.sin_theta * phi.cos(), r.sin_theta * phi.sin(), r.z]
    }
    /// Pixel holding Galactic (l, b) in deg.
    pub fn lonlat_deg_to_pix(&self, l_deg: f64, b_deg: f64) -> u64 {
        cdshealpix::ring::hash(
            self.nside,
            l_deg.rem_euclid(360.0).to_radians(),
            b_deg.clamp(-90.0, 90.0).to_radians(),
        )
    }
    /// Unit vectors of a `k x k` grid of equal-area sub-pixel positions of `pix` (the centres of
    /// the cells of a `k`-times finer grid in the HEALPix projection plane).
    ///
    /// Pixels entirely inside the equatorial belt (`|z| <= 2/3`, where the HEALPix projection
    /// is linear in `(phi, z)`: a pixel is a diamond of half-widths `pi / 4 NSIDE` in `phi` and
    /// `2 / 3 NSIDE` in `z`) are done in closed form; the others through `cdshealpix`.
    pub fn subpixel_vecs(&self, pix: u64, k: usize, out: &mut Vec<[f64; 3]>) {
        out.clear();
        let ri = self.ring_of(pix);
        let r = &self.rings[ri];
        let n = self.nside as f64;
        let dz = 2.0 / (3.0 * n);
        if r.n == 4 * self.nside as u64 && r.z.abs() + dz <= 2.0 / 3.0 + 1e-12 {
            let dphi = PI / (4.0 * n);
            let phi_c = r.phi0 + (pix - r.first) as f64 * 2.0 * PI / r.n as f64;
            // dx - dy and dx + dy - 1 both take the values (i - (k - 1)) / k, i in 0..2k-1
            let m = 2 * k - 1;
            let off = |i: usize| (i as f64 - (k as f64 - 1.0)) / k as f64;
            // on the stack for k <= 8 (the renderer's 4)
            let mut cs_buf = [(0.0, 0.0); 15];
            let mut zs_buf = [(0.0, 0.0); 15];
            let mut cs_vec = Vec::new();
            let mut zs_vec = Vec::new();
            let cs: &mut [(f64, f64)] = if m <= 15 {
                &mut cs_buf[..m]
            } else {
                cs_vec.resize(m, (0.0, 0.0));
                &mut cs_vec
            };
            let zs: &mut [(f64, f64)] = if m <= 15 {
                &mut zs_buf[..m]
            } else {
                zs_vec.resize(m, (0.0, 0.0));
                &mut zs_vec
            };
            for i in 0..m {
                cs[i] = (phi_c + dphi * off(i)).sin_cos();
                let z = r.z + dz * off(i);
                zs[i] = (z, ((1.0 - z) * (1.0 + z)).max(0.0).sqrt());
            }
            for a in 0..k {
                for b in 0..k {
                    // dx = (a + 1/2) / k, dy = (b + 1/2) / k
                    let (sp, cp) = cs[a + k - 1 - b];
                    let (z, st) = zs[a + b];
                    out.push([st * cp, st * sp, z]);
                }
            }
            return;
        }
        for a in 0..k {
            for b in 0..k {
                let dx = (a as f64 + 0.5) / k as f64;
                let dy = (b as f64 + 0.5) / k as f64;
                let (lon, lat) = cdshealpix::ring::sph_coo(self.nside, pix, dx, dy);
                out.push(lonlat_rad_to_vec(lon, lat));
            }
        }
    }

    /// Rings (indices into [`Grid::rings`]) that may hold pixels within `radius_rad` of the
    /// unit vector `v`: the ring range covering `theta +- radius`, widened by one ring.
    pub fn ring_span(&self, v: [f64; 3], radius_rad: f64) -> (usize, usize) {
        let theta = v[2].clamp(-1.0, 1.0).acos();
        let z_hi = (theta - radius_rad).max(0.0).cos();
        let z_lo = (theta + radius_rad).min(PI).cos();
        let lo = self.rings.partition_point(|r| r.z > z_hi).saturating_sub(1);
        let hi = self
            .rings
            .partition_point(|r| r.z >= z_lo)
            .min(self.rings.len() - 1);
        (lo, hi)
    }

    /// Calls `f(first_pixel, count)` for each contiguous run of pixels of ring `ri` whose
    /// centres lie within `disc`. The runs are in increasing pixel order.
    #[inline]
    pub fn disc_ring_runs<F: FnMut(u64, u64)>(&self, ri: usize, disc: &Disc, mut f: F) {
        let r = &self.rings[ri];
        let denom = r.sin_theta * disc.sin_theta;
        let num = disc.cos_radius - r.z * disc.v[2];
        let n = r.n as i64;
        if denom <= 1e-300 {
            // the disc centre is a pole: the ring is all in or all out
            if num <= 0.0 {
                f(r.first, r.n);
            }
            return;
        }
        let x = num / denom;
        if x > 1.0 {
            return;
        }
        if x <= -1.0 {
            f(r.first, r.n);
            return;
        }
        let dphi = x.acos();
        let dp = 2.0 * PI / r.n as f64;
        // pixel j has phi = phi0 + j dp; keep phi in [phi_c - dphi, phi_c + dphi]
        let j_lo = ((disc.phi - dphi - r.phi0) / dp).ceil() as i64;
        let j_hi = ((disc.phi + dphi - r.phi0) / dp).floor() as i64;
        if j_hi < j_lo {
            return;
        }
        if j_hi - j_lo + 1 >= n {
            f(r.first, r.n);
            return;
        }
        let a = j_lo.rem_euclid(n);
        let b = j_hi.rem_euclid(n);
        if a <= b {
            f(r.first + a as u64, (b - a + 1) as u64);
        } else {
            // wraps through phi = 0: emit in increasing index order
            f(r.first, (b + 1) as u64);
            f(r.first + a as u64, (n - a) as u64);
        }
    }

    /// Calls `f(pixel, cos_theta)` for every pixel of rings `ring_lo..=ring_hi` whose centre is
    /// within `disc`, with `cos_theta` the cosine of its distance to the disc centre; pixels in
    /// increasing order (one call per pixel of [`Grid::for_each_run_in_disc`]).
    #[inline]
    pub fn for_each_in_disc<F: FnMut(u64, f64)>(
        &self,
        disc: &Disc,
        ring_lo: usize,
        ring_hi: usize,
        mut f: F,
    ) {
        let mut buf = Vec::new();
        self.for_each_run_in_disc(disc, ring_lo, ring_hi, &mut buf, |first, coss| {
            for (k, &c) in coss.iter().enumerate() {
                f(first + k as u64, c);
            }
        });
    }

    /// Calls `f(first_pixel, cos_theta)` once per contiguous run of pixels of rings
    /// `ring_lo..=ring_hi` whose centres are within `disc`, with `cos_theta[k]` the cosine of
    /// the distance of pixel `first_pixel + k` to the disc centre (from the shared longitude
    /// table, or an exact rotation recurrence along the ring on grids too large for it);
    /// runs in increasing pixel order. `buf` is
    /// scratch space. The per-run call keeps the per-pixel loops tight.
    #[inline]
    pub fn for_each_run_in_disc<F: FnMut(u64, &[f64])>(
        &self,
        disc: &Disc,
        ring_lo: usize,
        ring_hi: usize,
        buf: &mut Vec<f64>,
        mut f: F,
    ) {
        let trig = self.trig();
        for ri in ring_lo..=ring_hi {
            let r = self.rings[ri];
            let zz = r.z * disc.v[2];
            if let Some(t) = self.ring_trig(trig, ri) {
                let (x0, y0) = (r.sin_theta * disc.v[0], r.sin_theta * disc.v[1]);
                self.disc_ring_runs(ri, disc, |first, count| {
                    let j = (first - r.first) as usize;
                    let run = &t[j..j + count as usize];
                    buf.clear();
                    buf.extend(run.iter().map(|[c, s]| zz + c * x0 + s * y0));
                    f(first, buf);
                });
            } else {
                let dp = 2.0 * PI / r.n as f64;
                let a = r.sin_theta * disc.sin_theta;
                self.disc_ring_runs(ri, disc, |first, count| {
                    let phi = r.phi0 + (first - r.first) as f64 * dp - disc.phi;
                    let (mut s, mut c) = phi.sin_cos();
                    buf.clear();
                    for _ in 0..count {
                        buf.push(zz + a * c);
                        let c2 = c * r.cos_dp - s * r.sin_dp;
                        s = s * r.cos_dp + c * r.sin_dp;
                        c = c2;
                    }
                    f(first, buf);
                });
            }
        }
    }

    /// Rings whose z lies within `radius_rad` (in theta) of `z`, widened by one ring.
    pub fn ring_span_z(&self, z: f64, radius_rad: f64) -> (usize, usize) {
        self.ring_span([(1.0 - z * z).max(0.0).sqrt(), 0.0, z], radius_rad)
    }

    /// `(cos phi, sin phi)` of a pixel centre (table or direct).
    #[inline]
    fn cs(&self, trig: Option<&[[f64; 2]]>, ring: &Ring, pix: u64) -> [f64; 2] {
        match trig {
            Some(t) => t[ring.trig_offset + (pix - ring.first) as usize],
            None => {
                let (s, c) =
                    (ring.phi0 + (pix - ring.first) as f64 * 2.0 * PI / ring.n as f64).sin_cos();
                [c, s]
            }
        }
    }

    /// The linear gather `out[p] = sum_q values[q] kernel(cos theta_pq)` over the source pixels
    /// `q` whose centres are within `radius_rad` of target pixel `p` (a healpy
    /// `query_disc(inclusive=False)` around each target pixel centre).
    ///
    /// Every HEALPix ring is mapped onto itself by a rotation of a quarter turn, and the belt
    /// rings by a rotation of one pixel step. For a target ring with `n_t` pixels and the
    /// source rings within the radius with `n_k` pixels, rotating by `P` target pixels maps
    /// every one of those rings onto itself when `P n_k / n_t` is an integer for every `k`;
    /// the smallest such period is `P = lcm_k(n_t / gcd(n_t, n_k))`, at most `n_t / 4` (the
    /// quarter turn) and 1 or 2 in the belt. The kernel weights of target pixel `j + m P` are
    /// those of pixel `j`, with the index range on source ring `k` shifted by `m P n_k / n_t`.
    /// So the kernel is evaluated for the first `P` pixels of each target ring only (a quarter
    /// of the polar-cap pairs, a few per belt ring), and once for a ring and its mirror in the
    /// other hemisphere (`z -> -z` maps the grid onto itself with the same longitudes). Where
    /// every source ring has `n_t / P` pixels (the belt) a period shifts each of them by one
    /// pixel, and the ring is a sum of shifted source rings, vectorised over the whole ring;
    /// elsewhere (the caps) each target pixel is a dot product over contiguous source slices.
    /// Parallel over pairs of mirrored target rings; each `out[p]` sums its `q` in a fixed
    /// order, so the result does not depend on the thread count.
    pub fn gather_linear<K>(
        &self,
        source: &Grid,
        radius_rad: f64,
        values: &[f64],
        kernel: K,
    ) -> Vec<f64>
    where
        K: Fn(f64) -> f64 + Sync,
    {
        assert_eq!(values.len(), source.npix());
        self.gather_stencils(source, radius_rad, Some(values), kernel)
    }

    /// The kernel sums `out[p] = sum_q kernel(cos theta_pq)` over the pairs of
    /// [`Grid::gather_linear`] (its result for values all 1), computed from the weights of the
    /// first `P` pixels of each ring only.
    pub fn kernel_sums<K>(&self, source: &Grid, radius_rad: f64, kernel: K) -> Vec<f64>
    where
        K: Fn(f64) -> f64 + Sync,
    {
        self.gather_stencils(source, radius_rad, None, kernel)
    }

    fn gather_stencils<K>(
        &self,
        source: &Grid,
        radius_rad: f64,
        values: Option<&[f64]>,
        kernel: K,
    ) -> Vec<f64>
    where
        K: Fn(f64) -> f64 + Sync,
    {
        use rayon::prelude::*;
        let n_rings = self.rings.len();
        let n_src_rings = source.rings.len();
        let mut out = vec![0.0; self.npix()];
        // (north ring, its slice, the mirror ring's slice): a ring and its mirror in the other
        // hemisphere (z -> -z) have the same stencils on mirrored source rings
        type MirroredRings<'a> = (usize, &'a mut [f64], Option<&'a mut [f64]>);
        let mut tasks: Vec<MirroredRings> = Vec::new();
        {
            let mut slices: Vec<Option<&mut [f64]>> = Vec::with_capacity(n_rings);
            let mut rest: &mut [f64] = &mut out;
            for r in &self.rings {
                let (head, tail) = rest.split_at_mut(r.n as usize);
                slices.push(Some(head));
                rest = tail;
            }
            for ri in 0..n_rings.div_ceil(2) {
                let mirror = n_rings - 1 - ri;
                let north = slices[ri].take().expect("each ring once");
                let south = if mirror != ri {
                    slices[mirror].take()
                } else {
                    None
                };
                tasks.push((ri, north, south));
            }
        }
        let src_trig = source.trig();
        let cos_r = radius_rad.cos();
        tasks.into_par_iter().for_each(|(ri, north, south)| {
            let r = self.rings[ri];
            let (lo, hi) = source.ring_span_z(r.z, radius_rad);
            // (source ring, half-width or negative for the whole ring, z z', s s')
            let mut pairs: Vec<(usize, f64, f64, f64)> = Vec::with_capacity(hi + 1 - lo);
            for k in lo..=hi {
                let sr = &source.rings[k];
                let zz = r.z * sr.z;
                let ss = r.sin_theta * sr.sin_theta;
                let num = cos_r - zz;
                if ss <= 1e-300 {
                    if num <= 0.0 {
                        pairs.push((k, -1.0, zz, ss));
                    }
                    continue;
                }
                let x = num / ss;
                if x > 1.0 {
                    continue;
                }
                pairs.push((k, if x <= -1.0 { -1.0 } else { x.acos() }, zz, ss));
            }
            // the rotation period in target pixels
            let nt = r.n;
            let period = pairs.iter().fold(1u64, |p, &(k, ..)| {
                let f = nt / gcd(nt, source.rings[k].n);
                p / gcd(p, f) * f
            }) as usize;
            let dp = 2.0 * PI / nt as f64;
            // stencils of the first `period` pixels: (source ring, first index in the ring,
            // shift per period `period n / nt` (an integer by the choice of period), offset of
            // the weights); `bounds[j]..bounds[j + 1]` are pixel j's
            let mut heads: Vec<(usize, usize, usize, usize)> = Vec::new();
            let mut weights: Vec<f64> = Vec::new();
            let mut bounds: Vec<usize> = Vec::with_capacity(period + 1);
            let mut sums: Vec<f64> = Vec::with_capacity(period);
            for j in 0..period {
                bounds.push(heads.len());
                let phi = r.phi0 + j as f64 * dp;
                let (sp, cp) = phi.sin_cos();
                let mut sum = 0.0;
                for &(k, dphi, zz, ss) in &pairs {
                    let sr = &source.rings[k];
                    let n = sr.n as i64;
                    let (a, b) = if dphi < 0.0 {
                        (0, n - 1)
                    } else {
                        let dq = 2.0 * PI / sr.n as f64;
                        let a = ((phi - dphi - sr.phi0) / dq).ceil() as i64;
                        let b = ((phi + dphi - sr.phi0) / dq).floor() as i64;
                        if b - a + 1 >= n { (0, n - 1) } else { (a, b) }
                    };
                    if b < a {
                        continue;
                    }
                    // fewer than n indices starting within one turn of 0
                    let start = a.rem_euclid(n) as usize;
                    let off = weights.len();
                    let ring_trig = source.ring_trig(src_trig, k);
                    let mut l = start;
                    for _ in a..=b {
                        let [c, s] = match ring_trig {
                            Some(t) => t[l],
                            None => source.cs(None, sr, sr.first + l as u64),
                        };
                        let w = kernel(zz + ss * (c * cp + s * sp));
                        sum += w;
                        weights.push(w);
                        l += 1;
                        if l == n as usize {
                            l = 0;
                        }
                    }
                    heads.push((k, start, period * n as usize / nt as usize, off));
                }
                sums.push(sum);
            }
            bounds.push(heads.len());
            let Some(values) = values else {
                for slice in std::iter::once(north).chain(south) {
                    for (j, o) in slice.iter_mut().enumerate() {
                        *o = sums[j % period];
                    }
                }
                return;
            };
            // head h: its source ring's values (mirrored for the south ring), first index,
            // shift per period and weights
            let head = |h: usize, mirrored: bool| {
                let (k, start, step, off) = heads[h];
                let end = heads.get(h + 1).map_or(weights.len(), |x| x.3);
                let sr = &source.rings[if mirrored { n_src_rings - 1 - k } else { k }];
                let ring = &values[sr.first as usize..(sr.first + sr.n) as usize];
                (ring, start, step, &weights[off..end])
            };
            // every source ring has `nt / period` pixels, so rotating by one period shifts
            // every source ring by one pixel: pixel `f + m period` is a sum of the source rings
            // shifted by `m`, computed for all `m` at once as vectorised sums of shifted rings
            // (no per-pixel bookkeeping)
            let unit_shift = heads.iter().all(|h| h.2 == 1);
            // acc[m] = sum over stencil f of w ring[(s + m) mod n]
            let shifted_sum = |acc: &mut [f64], f: usize, mirrored: bool| {
                acc.fill(0.0);
                for h in bounds[f]..bounds[f + 1] {
                    let (ring, start, _, w) = head(h, mirrored);
                    let n = ring.len();
                    let mut s = start;
                    for &w in w {
                        let (lo, hi) = acc.split_at_mut(n - s);
                        axpy(lo, w, &ring[s..]);
                        axpy(hi, w, &ring[..s]);
                        s += 1;
                        if s == n {
                            s = 0;
                        }
                    }
                }
            };
            let apply = |slice: &mut [f64], mirrored: bool| {
                if unit_shift {
                    let mut acc = vec![0.0; nt as usize / period];
                    for f in 0..period {
                        shifted_sum(&mut acc, f, mirrored);
                        for (m, v) in acc.iter().enumerate() {
                            slice[f + m * period] = *v;
                        }
                    }
                    return;
                }
                let mut f = 0usize;
                let mut m = 0usize;
                for o in slice.iter_mut() {
                    let mut acc = 0.0;
                    for h in bounds[f]..bounds[f + 1] {
                        let (ring, start, step, w) = head(h, mirrored);
                        let n = ring.len();
                        // rotation by m periods: m step source pixels (< n)
                        let mut s = start + m * step;
                        if s >= n {
                            s -= n;
                        }
                        let head = (n - s).min(w.len());
                        acc += dot_slices(&ring[s..s + head], &w[..head]);
                        if head < w.len() {
                            acc += dot_slices(&ring[..w.len() - head], &w[head..]);
                        }
                    }
                    *o = acc;
                    f += 1;
                    if f == period {
                        f = 0;
                        m += 1;
                    }
                }
            };
            apply(north, false);
            if let Some(south) = south {
                apply(south, true);
            }
        });
        out
    }

    /// All pixels whose centres are within `radius_rad` of `v`, increasing order.
    pub fn query_disc(&self, v: [f64; 3], radius_rad: f64) -> Vec<u64> {
        let mut out = Vec::new();
        let disc = Disc::new(v, radius_rad);
        let (lo, hi) = self.ring_span(v, radius_rad);
        for ri in lo..=hi {
            self.disc_ring_runs(ri, &disc, |first, n| out.extend(first..first + n));
        }
        out
    }

    /// The ring bands used for parallel work: `n_bands` contiguous ring ranges, each
    /// `(ring_lo, ring_hi_inclusive)`.
    pub fn bands(&self, n_bands: usize) -> Vec<(usize, usize)> {
        let nr = self.rings.len();
        let n_bands = n_bands.clamp(1, nr);
        (0..n_bands)
            .map(|k| (k * nr / n_bands, (k + 1) * nr / n_bands - 1))
            .collect()
    }
    /// Pixel index range `[start, end)` of the rings `lo..=hi`.
    pub fn band_pixels(&self, lo: usize, hi: usize) -> (usize, usize) {
        let a = self.rings[lo].first as usize;
        let b = (self.rings[hi].first + self.rings[hi].n) as usize;
        (a, b)
    }
}

/// A disc on the sphere: centre, radius and the centre's precomputed angles.
#[derive(Debug, Clone, Copy)]
pub struct Disc {
    pub v: [f64; 3],
    pub cos_radius: f64,
    pub sin_theta: f64,
    pub phi: f64,
}

impl Disc {
    pub fn new(v: [f64; 3], radius_rad: f64) -> Self {
        Self {
            v,
            cos_radius: radius_rad.cos(),
            sin_theta: (v[0] * v[0] + v[1] * v[1]).sqrt(),
            phi: v[1].atan2(v[0]),
        }
    }
}

/// Unit vector of (lon, lat) in radians.
#[inline]
pub fn lonlat_rad_to_vec(lon: f64, lat: f64) -> [f64; 3] {
    let (sl, cl) = lon.sin_cos();
    let (sb, cb) = lat.sin_cos();
    [cb * cl, cb * sl, sb]
}

/// Unit vector of Galactic (l, b) in deg.
#[inline]
pub fn lonlat_deg_to_vec(l_deg: f64, b_deg: f64) -> [f64; 3] {
    lonlat_rad_to_vec(l_deg.to_radians(), b_deg.to_radians())
}

/// Dot product of two equally long slices: four partial sums over interleaved indices
/// (independent add chains), added in a fixed order, then the remainder in index order.
#[inline]
fn dot_slices(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f64; 4];
    let (ca, cb) = (a.chunks_exact(4), b.chunks_exact(4));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..4 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// `out += w x`, elementwise.
#[inline]
fn axpy(out: &mut [f64], w: f64, x: &[f64]) {
    for (o, x) in out.iter_mut().zip(x) {
        *o += w * x;
    }
}

/// Greatest common divisor.
fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// Dot product.
#[inline]
pub fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Whether `nside` is a supported power of two.
pub fn valid_nside(nside: u32) -> bool {
    nside.is_power_of_two() && (1..=8192).contains(&nside)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rings_match_cdshealpix_centres() {
        for nside in [1u32, 2, 8, 64] {
            let g = Grid::new(nside);
            assert_eq!(g.rings().iter().map(|r| r.n).sum::<u64>(), g.npix() as u64);
            for pix in (0..g.npix() as u64).step_by(7) {
                let v = g.pix_to_vec(pix);
                let (l, b) = g.pix_to_lonlat_deg(pix);
                let w = lonlat_deg_to_vec(l, b);
                assert!(dot(v, w) > 1.0 - 1e-12, "nside {nside} pix {pix}");
                assert_eq!(g.lonlat_deg_to_pix(l, b), pix);
            }
        }
    }

    /// `gather_linear` and `kernel_sums` against a brute-force sum over all pixel pairs, for
    /// finer, equal and coarser source grids and radii that reach over the poles.
    #[test]
    fn gather_linear_matches_brute_force() {
        for (nt, ns, deg) in [
            (16u32, 8u32, 12.0f64),
            (8, 16, 9.0),
            (16, 16, 6.0),
            (32, 8, 15.0),
            (8, 8, 40.0),
        ] {
            let t = Grid::new(nt);
            let src = Grid::new(ns);
            let radius = deg.to_radians();
            let values: Vec<f64> = (0..src.npix()).map(|q| 1.0 + (q % 13) as f64).collect();
            // zero at the edge, so pixels on the boundary do not matter
            let kernel = |cos: f64| (1.0 + cos) * (cos - radius.cos()).max(0.0);
            let got = t.gather_linear(&src, radius, &values, kernel);
            let sums = t.kernel_sums(&src, radius, kernel);
            for p in 0..t.npix() {
                let vp = t.pix_to_vec(p as u64);
                let (mut want, mut want_sum) = (0.0, 0.0);
                for (q, v) in values.iter().enumerate() {
                    let w = kernel(dot(vp, src.pix_to_vec(q as u64)));
                    want += v * w;
                    want_sum += w;
                }
                assert!(
                    (got[p] - want).abs() < 1e-9 * want.abs().max(1e-3),
                    "{nt}/{ns} pix {p}: {} vs {want}",
                    got[p]
                );
                assert!(
                    (sums[p] - want_sum).abs() < 1e-9 * want_sum.abs().max(1e-3),
                    "{nt}/{ns} pix {p}: sum {} vs {want_sum}",
                    sums[p]
                );
            }
        }
    }

    /// The disc walk finds exactly the pixels whose centres lie within the disc (up to
    /// rounding at the edge), in increasing order, with their cosines, both with the shared
    /// longitude table (NSIDE 64) and with the recurrence (NSIDE 1024, no table); and the
    /// shared table holds each pixel's own `sin_cos`.
    #[test]
    fn disc_walk_finds_the_disc() {
        for nside in [64u32, 1024] {
            let g = Grid::new(nside);
            for (l, lat, r_deg) in [(10.0, 20.0, 3.0), (200.0, -70.0, 5.0), (0.0, 89.0, 2.0)] {
                let v = lonlat_deg_to_vec(l, lat);
                let radius = f64::to_radians(r_deg);
                let disc = Disc::new(v, radius);
                let (lo, hi) = g.ring_span(v, radius);
                let mut got = Vec::new();
                g.for_each_in_disc(&disc, lo, hi, |p, c| got.push((p, c)));
                assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
                let cos_r = radius.cos();
                for &(p, c) in &got {
                    let d = dot(g.pix_to_vec(p), v);
                    assert!((c - d).abs() < 1e-12, "nside {nside} pixel {p}: {c} vs {d}");
                    assert!(d >= cos_r - 1e-12);
                }
                let set: std::collections::HashSet<u64> = got.iter().map(|x| x.0).collect();
                let (r0, r1) = (g.rings()[lo].first, g.rings()[hi].first + g.rings()[hi].n);
                for p in r0..r1 {
                    if dot(g.pix_to_vec(p), v) >= cos_r + 1e-12 {
                        assert!(set.contains(&p), "nside {nside}: pixel {p} missed");
                    }
                }
            }
        }
        let g = Grid::new(64);
        let t = g.trig().unwrap();
        for r in g.rings() {
            for j in 0..r.n {
                let (s, c) = (r.phi0 + j as f64 * 2.0 * PI / r.n as f64).sin_cos();
                assert_eq!(t[r.trig_offset + j as usize], [c, s]);
            }
        }
        // the shared table is about 2 NSIDE^2 entries rather than 12 NSIDE^2
        assert!(t.len() < 3 * 64 * 64, "{}", t.len());
    }

    #[test]
    fn subpixel_vecs_match_cdshealpix() {
        for nside in [4u32, 64] {
            let g = Grid::new(nside);
            let mut fast = Vec::new();
            let mut n_belt = 0;
            for pix in (0..g.npix() as u64).step_by(3) {
                g.subpixel_vecs(pix, 4, &mut fast);
                let mut slow = Vec::new();
                for a in 0..4 {
                    for b in 0..4 {
                        let (lon, lat) = cdshealpix::ring::sph_coo(
                            nside,
                            pix,
                            (a as f64 + 0.5) / 4.0,
                            (b as f64 + 0.5) / 4.0,
                        );
                        slow.push(lonlat_rad_to_vec(lon, lat));
                    }
                }
                let r = g.rings()[g.ring_of(pix)];
                if r.n == 4 * nside as u64 && r.z.abs() + 2.0 / (3.0 * nside as f64) <= 2.0 / 3.0 {
                    n_belt += 1;
                }
                // the same set of points (in any order)
                for u in &fast {
                    assert!(
                        slow.iter().any(|w| dot(*u, *w) > 1.0 - 1e-13),
                        "nside {nside} pix {pix}"
                    );
                }
                assert_eq!(fast.len(), 16);
            }
            assert!(n_belt > 0);
        }
    }

    #[test]
    fn nside8_pixel0_is_healpy_centre() {
        let g = Grid::new(8);
        let (l, b) = g.pix_to_lonlat_deg(0);
        assert!(
            (l - 45.0).abs() < 1e-9 && (b - 84.1497).abs() < 1e-4,
            "{l} {b}"
        );
    }

    #[test]
    fn disc_query_equals_brute_force() {
        let g = Grid::new(32);
        let all: Vec<[f64; 3]> = (0..g.npix() as u64).map(|p| g.pix_to_vec(p)).collect();
        for &(l, b, r) in &[
            (0.0, 0.0, 5.0f64),
            (359.9, 10.0, 7.0),
            (123.0, 89.9, 12.0),
            (10.0, 90.0, 8.0),
            (200.0, -88.0, 15.0),
            (45.0, 41.8, 30.0),
            (300.0, -30.0, 1.0),
        ] {
            let v = lonlat_deg_to_vec(l, b);
            let c = r.to_radians().cos();
            let brute: Vec<u64> = (0..g.npix() as u64)
                .filter(|&p| dot(all[p as usize], v) >= c)
                .collect();
            let got = g.query_disc(v, r.to_radians());
            // pixels exactly on the edge may differ by rounding: compare away from it
            let tol = |p: u64| (dot(all[p as usize], v) - c).abs() > 1e-12;
            let a: Vec<u64> = brute.iter().copied().filter(|&p| tol(p)).collect();
            let b: Vec<u64> = got.iter().copied().filter(|&p| tol(p)).collect();
            assert_eq!(a, b, "disc ({l}, {b:?}, {r})");
            assert!(!a.is_empty());
        }
    }
}
