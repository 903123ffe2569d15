//! Sky coordinates: Galactic <-> ICRS (equatorial J2000), great-circle distances and a
//! spatial index of points on the sphere ([`SkyIndex`]).
//!
//! The rotation is the ICRS-to-Galactic matrix of the Hipparcos catalogue (ESA 1997, vol. 1,
//! sec. 1.5.3), the one astropy uses; it reproduces the 4FGL RA/DEC <-> GLON/GLAT columns to
//! better than 1e-3 deg.

/// Rows: Galactic x, y, z as combinations of ICRS x, y, z.
const ICRS_TO_GAL: [[f64; 3]; 3] = [
    [
        -0.054_875_560_416_215_4,
        -0.873_437_090_234_885,
        -0.483_835_015_548_713_2,
    ],
    [
        0.494_109_427_875_583_7,
        -0.444_829_629_960_011_2,
        0.746_982_244_497_219,
    ],
    [
        -0.867_666_149_019_004_7,
        -0.198_076_373_431_201_5,
        0.455_983_776_175_066_9,
    ],
];

fn to_vec(lon_deg: f64, lat_deg: f64) -> [f64; 3] {
    let (l, b) = (lon_deg.to_radians(), lat_deg.to_radians());
    [b.cos() * l.cos(), b.cos() * l.sin(), b.sin()]
}

fn from_vec(v: [f64; 3]) -> (f64, f64) {
    let lon = v[1].atan2(v[0]).to_degrees().rem_euclid(360.0);
    let lat = v[2].clamp(-1.0, 1.0).asin().to_degrees();
    // rem_euclid can return 360.0 for tiny negative inputs
    (if lon >= 360.0 { 0.0 } else { lon }, lat)
}

/// Galactic (l, b) in degrees to ICRS (ra, dec) in degrees.
pub fn gal_to_icrs(l_deg: f64, b_deg: f64) -> (f64, f64) {
    let g = to_vec(l_deg, b_deg);
    let m = &ICRS_TO_GAL;
    let v = [
        m[0][0] * g[0] + m[1][0] * g[1] + m[2][0] * g[2],
        m[0][1] * g[0] + m[1][1] * g[1] + m[2][1] * g[2],
        m[0][2] * g[0] + m[1][2] * g[1] + m[2][2] * g[2],
    ];
    from_vec(v)
}

/// ICRS (ra, dec) in degrees to Galactic (l, b) in degrees.
pub fn icrs_to_gal(ra_deg: f64, dec_deg: f64) -> (f64, f64) {
    let e = to_vec(ra_deg, dec_deg);
    let m = &ICRS_TO_GAL;
    let v = [
        m[0][0] * e[0] + m[0][1] * e[1] + m[0][2] * e[2],
        m[1][0] * e[0] + m[1][1] * e[1] + m[1][2] * e[2],
        m[2][0] * e[0] + m[2][1] * e[1] + m[2][2] * e[2],
    ];
    from_vec(v)
}

/// Great-circle distance in degrees (haversine form, accurate at small separations).
pub fn angular_distance_deg(lon1_deg: f64, lat1_deg: f64, lon2_deg: f64, lat2_deg: f64) -> f64 {
    let (p1, p2) = (lat1_deg.to_radians(), lat2_deg.to_radians());
    let dp = p2 - p1;
    let dl = (lon2_deg - lon1_deg).to_radians();
    let a = (dp / 2.0).sin().powi(2) + p1.cos() * p2.cos() * (dl / 2.0).sin().powi(2);
    (2.0 * a.sqrt().min(1.0).asin()).to_degrees()
}

// ---- A spatial index of points on the sphere (the scorer's matching, the fidelity check).

type CellMap = std::collections::HashMap<
    (i32, i32, i32),
    (u32, u32),
    std::hash::BuildHasherDefault<CellHasher>,
>;

/// A small multiplicative hasher for integer cell keys (SipHash is needlessly slow here and
/// the keys are not attacker-controlled).
#[derive(Default, Clone, Copy)]
pub struct CellHasher(u64);

impl std::hash::Hasher for CellHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(*b as u64);
        }
    }
    fn write_u32(&mut self, i: u32) {
        self.write_u64(i as u64);
    }
    fn write_i32(&mut self, i: i32) {
        self.write_u64(i as u32 as u64);
    }
    fn write_u64(&mut self, i: u64) {
        self.0 = (self.0.rotate_left(5) ^ i).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

/// A spatial index of points on the sphere.
#[derive(Debug, Clone)]
pub struct SkyIndex {
    cell: f64,
    /// Sorted cell keys and the start of each in `order`.
    cells: CellMap,
    order: Vec<u32>,
    lon: Vec<f64>,
    lat: Vec<f64>,
    pub(crate) vec: Vec<[f64; 3]>,
}

/// Squared chord between two unit vectors.
#[inline]
pub(crate) fn chord2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
}

/// A squared chord that every point within `angle_deg` (haversine) stays under, with a wide
/// margin for rounding in both computations (NaN for NaN).
#[inline]
pub(crate) fn chord2_bound(angle_deg: f64) -> f64 {
    (chord(angle_deg) * (1.0 + 1e-9) + 1e-12).powi(2)
}

/// Unit vector of a (lon, lat) direction in deg.
pub(crate) fn unit(lon_deg: f64, lat_deg: f64) -> [f64; 3] {
    let (l, b) = (lon_deg.to_radians(), lat_deg.to_radians());
    [b.cos() * l.cos(), b.cos() * l.sin(), b.sin()]
}

/// Chord length of an angle in deg.
pub fn chord(angle_deg: f64) -> f64 {
    2.0 * (angle_deg.min(180.0).to_radians() / 2.0).sin()
}

impl SkyIndex {
    /// Builds the index; `cell_deg` is the typical query radius (points with NaN coordinates
    /// are kept but never returned).
    pub fn new(lon_lat_deg: &[(f64, f64)], cell_deg: f64) -> Self {
        let cell = chord(cell_deg).max(1e-9);
        let vec: Vec<[f64; 3]> = lon_lat_deg.iter().map(|&(l, b)| unit(l, b)).collect();
        let key = |v: &[f64; 3]| -> (i32, i32, i32) {
            (
                (v[0] / cell).floor() as i32,
                (v[1] / cell).floor() as i32,
                (v[2] / cell).floor() as i32,
            )
        };
        let mut keyed: Vec<((i32, i32, i32), u32)> = vec
            .iter()
            .enumerate()
            .filter(|(_, v)| v.iter().all(|c| c.is_finite()))
            .map(|(i, v)| (key(v), i as u32))
            .collect();
        keyed.sort_unstable();
        let mut cells = CellMap::default();
        let mut start = 0usize;
        while start < keyed.len() {
            let k = keyed[start].0;
            let mut end = start;
            while end < keyed.len() && keyed[end].0 == k {
                end += 1;
            }
            cells.insert(k, (start as u32, end as u32));
            start = end;
        }
        Self {
            cell,
            cells,
            order: keyed.into_iter().map(|(_, i)| i).collect(),
            lon: lon_lat_deg.iter().map(|p| p.0).collect(),
            lat: lon_lat_deg.iter().map(|p| p.1).collect(),
            vec,
        }
    }

    fn cell_of(&self, v: &[f64; 3]) -> (i32, i32, i32) {
        (
            (v[0] / self.cell).floor() as i32,
            (v[1] / self.cell).floor() as i32,
            (v[2] / self.cell).floor() as i32,
        )
    }

    fn visit_cell(&self, k: (i32, i32, i32), f: &mut impl FnMut(u32)) {
        if let Some(&(a, b)) = self.cells.get(&k) {
            for &i in &self.order[a as usize..b as usize] {
                f(i);
            }
        }
    }

    /// Indices of the points within `radius_deg` (great circle, inclusive) of `(lon, lat)`,
    /// with their distances, in increasing index order.
    pub fn within(&self, lon_deg: f64, lat_deg: f64, radius_deg: f64) -> Vec<(u32, f64)> {
        let mut out = Vec::new();
        self.for_each_within(lon_deg, lat_deg, radius_deg, |i, d| out.push((i, d)));
        out.sort_unstable_by_key(|p| p.0);
        out
    }

    /// Calls `f(index, distance_deg)` for every point within `radius_deg` (inclusive; the
    /// haversine distance decides), in no particular order. A cheap chord test on the unit
    /// vectors discards the far candidates first.
    pub fn for_each_within(
        &self,
        lon_deg: f64,
        lat_deg: f64,
        radius_deg: f64,
        mut f: impl FnMut(u32, f64),
    ) {
        if !(lon_deg.is_finite() && lat_deg.is_finite()) {
            return;
        }
        let v = unit(lon_deg, lat_deg);
        let c = chord(radius_deg);
        let c2 = (c * (1.0 + 1e-9) + 1e-15).powi(2);
        // only the cells the ball of radius c (slightly padded) touches: <= 8 when c <= cell
        let pad = c * (1.0 + 1e-9) + 1e-15;
        let span = |x: f64| {
            (
                ((x - pad) / self.cell).floor() as i32,
                ((x + pad) / self.cell).floor() as i32,
            )
        };
        let ((x0, x1), (y0, y1), (z0, z1)) = (span(v[0]), span(v[1]), span(v[2]));
        for cx in x0..=x1 {
            for cy in y0..=y1 {
                for cz in z0..=z1 {
                    self.visit_cell((cx, cy, cz), &mut |i| {
                        let w = &self.vec[i as usize];
                        let d2 =
                            (w[0] - v[0]).powi(2) + (w[1] - v[1]).powi(2) + (w[2] - v[2]).powi(2);
                        if d2 > c2 {
                            return;
                        }
                        let d = angular_distance_deg(
                            lon_deg,
                            lat_deg,
                            self.lon[i as usize],
                            self.lat[i as usize],
                        );
                        if d <= radius_deg {
                            f(i, d);
                        }
                    });
                }
            }
        }
    }

    /// The nearest point (smallest distance, then smallest index) and its distance in deg.
    pub fn nearest(&self, lon_deg: f64, lat_deg: f64) -> Option<(u32, f64)> {
        if !(lon_deg.is_finite() && lat_deg.is_finite()) || self.order.is_empty() {
            return None;
        }
        let v = unit(lon_deg, lat_deg);
        let (cx, cy, cz) = self.cell_of(&v);
        let mut best: Option<(u32, f64)> = None;
        // squared chord above which a point cannot be as near as the best so far (a generous
        // bound, so the haversine distance alone still decides every close call)
        let mut bound = f64::INFINITY;
        let mut consider = |i: u32, best: &mut Option<(u32, f64)>| {
            if chord2(&self.vec[i as usize], &v) > bound {
                return;
            }
            let d =
                angular_distance_deg(lon_deg, lat_deg, self.lon[i as usize], self.lat[i as usize]);
            let better = match best {
                None => true,
                Some((bi, bd)) => d < *bd || (d == *bd && i < *bi),
            };
            if better {
                *best = Some((i, d));
                bound = chord2_bound(d);
            }
        };
        for k in 0i32.. {
            if k > 6 {
                // Sparse sky: a plain scan is cheaper than more shells.
                for &i in &self.order {
                    consider(i, &mut best);
                }
                return best;
            }
            for dx in -k..=k {
                for dy in -k..=k {
                    for dz in -k..=k {
                        if dx.abs().max(dy.abs()).max(dz.abs()) != k {
                            continue;
                        }
                        self.visit_cell((cx + dx, cy + dy, cz + dz), &mut |i| {
                            consider(i, &mut best)
                        });
                    }
                }
            }
            // Anything outside shell k differs by more than k cells along one axis.
            if let Some((_, d)) = best
                && chord(d) <= k as f64 * self.cell
            {
                return best;
            }
        }
        best
    }

    /// Unit vector of point `i`.
    pub fn vector(&self, i: usize) -> [f64; 3] {
        self.vec[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn galactic_centre_and_pole() {
        let (ra, dec) = gal_to_icrs(0.0, 0.0);
        assert!(
            (ra - 266.404_99).abs() < 1e-3 && (dec + 28.936_17).abs() < 1e-3,
            "{ra} {dec}"
        );
        let (ra, dec) = gal_to_icrs(0.0, 90.0);
        assert!(
            (ra - 192.859_48).abs() < 1e-3 && (dec - 27.128_25).abs() < 1e-3,
            "{ra} {dec}"
        );
        let (l, b) = icrs_to_gal(ra, dec);
        assert!((b - 90.0).abs() < 1e-9, "{l} {b}");
    }

    #[test]
    fn round_trip() {
        for &(l, b) in &[(10.0, 20.0), (359.9, -45.0), (180.0, 0.0), (45.0, 84.1497)] {
            let (ra, dec) = gal_to_icrs(l, b);
            let (l2, b2) = icrs_to_gal(ra, dec);
            assert!(angular_distance_deg(l, b, l2, b2) < 1e-9);
        }
        assert!((angular_distance_deg(359.9, 0.0, 0.1, 0.0) - 0.2).abs() < 1e-9);
    }
}
