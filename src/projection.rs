//! The patch projection: healpy `cartview(rot=(l, b, 0), lonra=[-5, 5], latra=[-5, 5],
//! xsize=64)` as used by Panes et al. 2021 for their 64 x 64 patches.
//!
//! Orientation (the same as the array healpy returns with `return_projected_map=True`):
//! * arrays are indexed `[row, column]` = `[y_pix, x_pix]`; pixel centres are at integer
//!   coordinates, so a patch spans `-0.5 ..= 63.5` on each axis;
//! * row `y_pix = 0` is the **bottom** (rotated latitude -5 deg); latitude increases with
//!   `y_pix`;
//! * column `x_pix = 0` is the **left** edge, rotated longitude **+5 deg** (the astronomical
//!   convention, healpy's `flip='astro'`): longitude decreases as `x_pix` increases;
//! * pixel centres are spaced `10/63` deg (healpy puts the first and last pixel centres on
//!   the edges of `lonra`/`latra`), so `(31.5, 31.5)` is the patch centre `(l, b)`.
//!
//! "Rotated" coordinates are those of the frame in which the patch centre is at (0, 0):
//! `v' = R_y(b) R_z(-l) v`, so the meridian through the centre is vertical and the patch is
//! undistorted at any latitude, poles included.

/// Patch geometry.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PatchGeometry {
    /// Pixels per side (64).
    pub size: usize,
    /// Half width of the patch in deg (5: a 10 x 10 deg patch).
    pub half_width_deg: f64,
}

impl Default for PatchGeometry {
    fn default() -> Self {
        Self {
            size: 64,
            half_width_deg: 5.0,
        }
    }
}

impl PatchGeometry {
    /// Spacing of pixel centres in deg (`2 * half_width / (size - 1)`).
    pub fn pixel_deg(&self) -> f64 {
        2.0 * self.half_width_deg / (self.size as f64 - 1.0)
    }
    /// Centre pixel coordinate (31.5 for 64 pixels).
    pub fn centre_pix(&self) -> f64 {
        (self.size as f64 - 1.0) / 2.0
    }
    /// Pixel `(x_pix, y_pix)` (sub-pixel allowed) to rotated (lon', lat') in deg.
    pub fn pix_to_rotated(&self, x_pix: f64, y_pix: f64) -> (f64, f64) {
        let d = self.pixel_deg();
        let x = -self.half_width_deg + d * x_pix;
        let y = -self.half_width_deg + d * y_pix;
        (-x, y)
    }
    /// Rotated (lon', lat') in deg to pixel `(x_pix, y_pix)`.
    pub fn rotated_to_pix(&self, lon_r_deg: f64, lat_r_deg: f64) -> (f64, f64) {
        let d = self.pixel_deg();
        (
            (-lon_r_deg + self.half_width_deg) / d,
            (lat_r_deg + self.half_width_deg) / d,
        )
    }
    /// Pixel to Galactic (l, b) in deg for a patch centred on `(l0, b0)`.
    pub fn pix_to_sky(&self, l0_deg: f64, b0_deg: f64, x_pix: f64, y_pix: f64) -> (f64, f64) {
        let (lr, br) = self.pix_to_rotated(x_pix, y_pix);
        unrotate(l0_deg, b0_deg, lr, br)
    }
    /// Galactic (l, b) to pixel for a patch centred on `(l0, b0)`; `None` when the point is
    /// on the far side of the sphere (rotated longitude beyond +-90 deg).
    pub fn sky_to_pix(
        &self,
        l0_deg: f64,
        b0_deg: f64,
        l_deg: f64,
        b_deg: f64,
    ) -> Option<(f64, f64)> {
        let (lr, br) = rotate(l0_deg, b0_deg, l_deg, b_deg);
        if lr.abs() > 90.0 {
            return None;
        }
        Some(self.rotated_to_pix(lr, br))
    }
    /// True when a sub-pixel position lies inside the patch (`-0.5 <= x, y < size - 0.5`).
    pub fn contains(&self, x_pix: f64, y_pix: f64) -> bool {
        let hi = self.size as f64 - 0.5;
        (-0.5..hi).contains(&x_pix) && (-0.5..hi).contains(&y_pix)
    }
}

fn vec3(l_deg: f64, b_deg: f64) -> [f64; 3] {
    let (l, b) = (l_deg.to_radians(), b_deg.to_radians());
    [b.cos() * l.cos(), b.cos() * l.sin(), b.sin()]
}

fn lonlat(v: [f64; 3]) -> (f64, f64) {
    (
        v[1].atan2(v[0]).to_degrees(),
        v[2].clamp(-1.0, 1.0).asin().to_degrees(),
    )
}

/// Galactic (l, b) to the frame rotated so that (l0, b0) is at (0, 0); lon' in (-180, 180].
pub fn rotate(l0_deg: f64, b0_deg: f64, l_deg: f64, b_deg: f64) -> (f64, f64) {
    let v = vec3(l_deg - l0_deg, b_deg); // R_z(-l0)
    let (s, c) = b0_deg.to_radians().sin_cos();
    // R_y(b0): (x, z) -> (c x + s z, -s x + c z)
    lonlat([c * v[0] + s * v[2], v[1], -s * v[0] + c * v[2]])
}

/// Inverse of [`rotate`]: rotated (lon', lat') back to Galactic (l, b), l in [0, 360).
pub fn unrotate(l0_deg: f64, b0_deg: f64, lon_r_deg: f64, lat_r_deg: f64) -> (f64, f64) {
    let v = vec3(lon_r_deg, lat_r_deg);
    let (s, c) = b0_deg.to_radians().sin_cos();
    let w = [c * v[0] - s * v[2], v[1], s * v[0] + c * v[2]]; // R_y(-b0)
    let (l, b) = lonlat(w);
    let l = (l + l0_deg).rem_euclid(360.0);
    (if l >= 360.0 { 0.0 } else { l }, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coords::angular_distance_deg;

    #[test]
    fn centre_and_orientation() {
        let g = PatchGeometry::default();
        let (l, b) = g.pix_to_sky(120.0, 30.0, 31.5, 31.5);
        assert!(angular_distance_deg(l, b, 120.0, 30.0) < 1e-9);
        // x = 0 is +5 deg of (rotated) longitude, y = 0 is -5 deg of latitude.
        let (lr, br) = g.pix_to_rotated(0.0, 0.0);
        assert!((lr - 5.0).abs() < 1e-12 && (br + 5.0).abs() < 1e-12);
        // On the equator the rotated frame is the Galactic frame.
        let (l, b) = g.pix_to_sky(0.0, 0.0, 0.0, 63.0);
        assert!((l - 5.0).abs() < 1e-9 && (b - 5.0).abs() < 1e-9);
        let (l, _) = g.pix_to_sky(0.0, 0.0, 63.0, 31.5);
        assert!((l - 355.0).abs() < 1e-9);
    }

    #[test]
    fn round_trip_everywhere() {
        let g = PatchGeometry::default();
        for &(l0, b0) in &[
            (0.0, 0.0),
            (359.0, 10.0),
            (45.0, 84.1497),
            (200.0, -90.0),
            (10.0, 90.0),
        ] {
            for &(x, y) in &[(0.0, 0.0), (63.0, 63.0), (12.3, 45.6), (31.5, 31.5)] {
                let (l, b) = g.pix_to_sky(l0, b0, x, y);
                let (x2, y2) = g.sky_to_pix(l0, b0, l, b).unwrap();
                assert!(
                    (x - x2).abs() < 1e-8 && (y - y2).abs() < 1e-8,
                    "{l0} {b0} {x} {y} -> {x2} {y2}"
                );
            }
        }
    }
}
