//! Sky coordinates: Galactic <-> ICRS (equatorial J2000) and great-circle distances.
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
