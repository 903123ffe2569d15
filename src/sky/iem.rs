//! Interstellar emission models B1, B2, B3 (and any further one a config describes).
//!
//! Panes et al. 2021 (sec. 2.2) used three Fermi-LAT models that nobody may redistribute:
//! B1 = gll_iem_v07 (4FGL), B2 = an SNR-catalog alternative model (Acero et al. 2016), B3 =
//! gll_iem_v06 rescaled (3FGL). They differ in the gas surveys (fine structure), in their
//! tuning, and B1 and B3 contain a component built from filtered data residuals, B2 does not.
//! gammabench builds open stand-ins that differ the same ways. Each is a versioned TOML file
//! under `configs/iem/` (embedded for B1-B3; any other path works too). An intensity map
//! (ph cm-2 s-1 sr-1 MeV-1) is the sum of
//!
//! 1. **gas x pion decay**: a gas column `N_H = c x tracer` from a real all-sky survey
//!    (`data/gas`, NSIDE 64: HI4PI N(HI) for B1; Planck 2013 E(B-V) for B2; SFD98 E(B-V) for
//!    B3, with `c = 5.8e21 cm-2 mag-1`, Bohlin, Savage & Drake 1978), capped where dust maps
//!    saturate, times an inner-Galaxy factor (cosmic-ray gradient, and for HI the molecular gas
//!    it misses), upsampled to the target NSIDE by a Gaussian-weighted interpolation, times
//!    a **log-normal sub-degree field** `exp(s g - s^2/2)` (g: unit-variance Gaussian random
//!    field, a weighted sum of smoothed white noises at the model's scales, seeded by the
//!    model's own seed: different structure and spectrum per model), times the emissivity per
//!    H atom `q(E)`, a smoothly broken power law normalised to the local HI emissivity measured by
//!    the LAT, `q(>100 MeV) = 1.63e-26 ph s-1 sr-1 H-1` (Abdo et al. 2009, ApJ 703, 1249);
//! 2. **inverse Compton**: a smooth template peaked on the Galactic centre and plane, power
//!    law in energy;
//! 3. **isotropic**: the LAT IGRB, `I(>100 MeV) = 7.2e-6 ph cm-2 s-1 sr-1`, index 2.32,
//!    cut-off 279 GeV (Ackermann et al. 2015, ApJ 799, 86, foreground model A);
//! 4. (B1, B3) a **residual-like** component: Fermi-bubble-like lobes (E^2 dN/dE ~ 4e-7 GeV
//!    cm-2 s-1 sr-1, index 1.9; Ackermann et al. 2014, ApJ 793, 64) plus the positive part of
//!    a degree-scale random field concentrated towards the plane.
//!
//! The model is fixed by its file (its seed included), not by the experiment seed: B1 is the
//! same sky whatever catalog is laid over it.

use super::fits::HealpixFits;
use super::healpix::Grid;
use super::instrument::Instrument;
use crate::error::{Error, Result};
use rand_distr::{Distribution, StandardNormal};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// Embedded model files.
pub const B1_TOML: &str = include_str!("../../configs/iem/B1.toml");
pub const B2_TOML: &str = include_str!("../../configs/iem/B2.toml");
pub const B3_TOML: &str = include_str!("../../configs/iem/B3.toml");

static HI4PI: &[u8] = include_bytes!("../../data/gas/h1_nh_HI4PI_healpix_lowres.fits");
static PLANCK: &[u8] = include_bytes!("../../data/gas/dust_ebv_Planck13_healpix_lowres.fits");
static SFD: &[u8] = include_bytes!("../../data/gas/dust_ebv_SFD_healpix_lowres.fits");

/// A whole emission model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IemModel {
    pub name: String,
    pub version: String,
    pub description: String,
    /// Seed of the model's random fields.
    pub seed: u64,
    pub gas: GasConfig,
    pub substructure: SubstructureConfig,
    pub inverse_compton: IcConfig,
    pub isotropic: IsotropicConfig,
    pub residual: ResidualConfig,
    /// Energy-dependent calibration of the Galactic components (absent: the physical forms
    /// above as they are).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub calibration: Option<CalibrationConfig>,
}

/// Calibration of the Galactic components against a measured sky: multiplicative factors on
/// the gas emissivity and on the IC intensity at node energies, interpolated linearly in
/// `ln E` between nodes and constant beyond the first and last. For B1 the nodes are the
/// log-centres of the paper's five bins and the factors are fitted to the published F0-B1
/// background levels (`examples/calibrate_iem.rs`): they carry what the open gas tracer and
/// the smooth spectra miss of gll_iem_v07 (molecular and dark gas, the cosmic-ray gradient,
/// the model's spectral shape), per energy band and all-sky, never per patch.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CalibrationConfig {
    /// What the factors were fitted to.
    pub reference: String,
    /// Node energies, MeV, increasing.
    pub energies_mev: Vec<f64>,
    /// Factor on the gas emissivity at each node.
    pub gas_scale: Vec<f64>,
    /// Factor on the IC intensity at each node.
    pub inverse_compton_scale: Vec<f64>,
}

impl CalibrationConfig {
    /// `values` at `e_mev`: linear in `ln E` between nodes, constant outside.
    pub fn at(&self, values: &[f64], e_mev: f64) -> f64 {
        let e = &self.energies_mev;
        if e_mev <= e[0] {
            return values[0];
        }
        for k in 1..e.len() {
            if e_mev <= e[k] {
                let t = (e_mev / e[k - 1]).ln() / (e[k] / e[k - 1]).ln();
                return values[k - 1] + t * (values[k] - values[k - 1]);
            }
        }
        values[values.len() - 1]
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GasConfig {
    /// `hi4pi_nhi`, `planck_ebv` or `sfd_ebv`.
    pub tracer: String,
    /// Gas column per tracer unit, cm-2 (1 for N(HI); 5.8e21 per mag of E(B-V)).
    pub column_per_unit_cm2: f64,
    /// Tracer values above this are capped (dust maps saturate in the plane).
    pub tracer_max: f64,
    /// Emissivity per H atom above 100 MeV, ph s-1 sr-1.
    pub emissivity_100mev_ph_s_sr: f64,
    /// Emissivity spectrum: index below and above the break, break energy, smoothness.
    pub index_low: f64,
    pub index_high: f64,
    pub break_mev: f64,
    /// Inner-Galaxy factor `1 + a exp(-l^2/2 wl^2 - b^2/2 wb^2)`.
    pub inner_boost: f64,
    pub inner_width_l_deg: f64,
    pub inner_width_b_deg: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SubstructureConfig {
    /// Gaussian smoothing scales of the field components, deg.
    pub scales_deg: Vec<f64>,
    /// Relative weights of the components (the sum is normalised to unit variance).
    pub weights: Vec<f64>,
    /// Standard deviation of ln(multiplier).
    pub sigma_ln: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IcConfig {
    /// E^2 dN/dE at 1 GeV towards (l, b) = (0, 0), MeV cm-2 s-1 sr-1.
    pub e2dnde_1gev_centre_mev_cm2_s_sr: f64,
    pub index: f64,
    /// Template `(f_l + (1-f_l) exp(-l^2/2 wl^2)) (f_b exp(-|b|/hb1) + (1-f_b) exp(-|b|/hb2))`.
    pub floor_l: f64,
    pub width_l_deg: f64,
    pub frac_thin: f64,
    pub height_thin_deg: f64,
    pub height_thick_deg: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct IsotropicConfig {
    /// Intensity above 100 MeV, ph cm-2 s-1 sr-1.
    pub intensity_100mev_ph_cm2_s_sr: f64,
    pub index: f64,
    pub cutoff_gev: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ResidualConfig {
    pub enabled: bool,
    /// E^2 dN/dE at 1 GeV inside the lobes, MeV cm-2 s-1 sr-1.
    pub e2dnde_1gev_mev_cm2_s_sr: f64,
    pub index: f64,
    /// Lobe centres at (0, +-lobe_b_deg), semi-axes in l and b, deg.
    pub lobe_b_deg: f64,
    pub lobe_axis_l_deg: f64,
    pub lobe_axis_b_deg: f64,
    /// Random-field part: amplitude relative to the lobes, smoothing scale, latitude scale.
    pub field_amplitude: f64,
    pub field_scale_deg: f64,
    pub field_height_deg: f64,
}

impl IemModel {
    /// The model named `B1`, `B2`, `B3`, or read from a TOML path.
    pub fn load(name: &str) -> Result<Self> {
        let (src, text) = match name {
            "B1" => ("configs/iem/B1.toml".to_string(), B1_TOML.to_string()),
            "B2" => ("configs/iem/B2.toml".to_string(), B2_TOML.to_string()),
            "B3" => ("configs/iem/B3.toml".to_string(), B3_TOML.to_string()),
            p if p.ends_with(".toml") => (
                p.to_string(),
                std::fs::read_to_string(p)
                    .map_err(|e| Error::bad_file(p, format!("cannot read: {e}")))?,
            ),
            other => {
                return Err(Error::Usage(format!(
                    "unknown emission model `{other}` (expected B1, B2, B3 or a path to a .toml model file)"
                )));
            }
        };
        let de =
            toml::Deserializer::parse(&text).map_err(|e| Error::bad_file(&src, e.to_string()))?;
        let m: IemModel = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            let (line, column) = crate::config::key_position(&text, &key).unwrap_or((1, 1));
            Error::Config {
                file: src.clone(),
                line,
                column,
                key,
                message: e.inner().to_string(),
            }
        })?;
        m.validate().map_err(|(key, message)| {
            let (line, column) = crate::config::key_position(&text, &key).unwrap_or((1, 1));
            Error::Config {
                file: src.clone(),
                line,
                column,
                key,
                message,
            }
        })?;
        Ok(m)
    }

    fn validate(&self) -> std::result::Result<(), (String, String)> {
        let bad = |k: &str, m: &str| Err((k.to_string(), m.to_string()));
        if !["hi4pi_nhi", "planck_ebv", "sfd_ebv"].contains(&self.gas.tracer.as_str()) {
            return bad("gas.tracer", "expected hi4pi_nhi, planck_ebv or sfd_ebv");
        }
        for (k, v) in [
            ("gas.column_per_unit_cm2", self.gas.column_per_unit_cm2),
            ("gas.tracer_max", self.gas.tracer_max),
            (
                "gas.emissivity_100mev_ph_s_sr",
                self.gas.emissivity_100mev_ph_s_sr,
            ),
            ("gas.break_mev", self.gas.break_mev),
            ("gas.inner_width_l_deg", self.gas.inner_width_l_deg),
            ("gas.inner_width_b_deg", self.gas.inner_width_b_deg),
            (
                "isotropic.intensity_100mev_ph_cm2_s_sr",
                self.isotropic.intensity_100mev_ph_cm2_s_sr,
            ),
            ("isotropic.cutoff_gev", self.isotropic.cutoff_gev),
            (
                "inverse_compton.width_l_deg",
                self.inverse_compton.width_l_deg,
            ),
            (
                "inverse_compton.height_thin_deg",
                self.inverse_compton.height_thin_deg,
            ),
            (
                "inverse_compton.height_thick_deg",
                self.inverse_compton.height_thick_deg,
            ),
        ] {
            if !(v.is_finite() && v > 0.0) {
                return bad(k, "must be finite and > 0");
            }
        }
        let s = &self.substructure;
        if s.scales_deg.len() != s.weights.len() || s.scales_deg.is_empty() {
            return bad(
                "substructure.weights",
                "needs one weight per scale (and at least one scale)",
            );
        }
        if s.scales_deg.iter().any(|x| !(0.01..=10.0).contains(x)) {
            return bad("substructure.scales_deg", "scales must be in 0.01..10 deg");
        }
        if s.weights.iter().any(|w| !(w.is_finite() && *w >= 0.0))
            || s.weights.iter().sum::<f64>() <= 0.0
        {
            return bad("substructure.weights", "weights must be >= 0 and not all 0");
        }
        if !(0.0..=2.0).contains(&s.sigma_ln) {
            return bad("substructure.sigma_ln", "must be in 0..2");
        }
        let r = &self.residual;
        if r.enabled && !(r.field_scale_deg > 0.1 && r.field_scale_deg <= 20.0) {
            return bad("residual.field_scale_deg", "must be in (0.1, 20] deg");
        }
        if let Some(c) = &self.calibration {
            if c.energies_mev.is_empty()
                || c.energies_mev.windows(2).any(|w| w[1] <= w[0])
                || c.energies_mev.iter().any(|e| !(e.is_finite() && *e > 0.0))
            {
                return bad(
                    "calibration.energies_mev",
                    "needs at least one node, finite, > 0 and increasing",
                );
            }
            for (k, v) in [
                ("calibration.gas_scale", &c.gas_scale),
                (
                    "calibration.inverse_compton_scale",
                    &c.inverse_compton_scale,
                ),
            ] {
                if v.len() != c.energies_mev.len() {
                    return bad(k, "needs one factor per node of calibration.energies_mev");
                }
                if v.iter()
                    .any(|x| !(x.is_finite() && *x > 0.0 && *x <= 100.0))
                {
                    return bad(k, "factors must be finite and in (0, 100]");
                }
            }
        }
        Ok(())
    }

    /// Emissivity spectrum shape (unnormalised), smoothly broken power law.
    fn gas_shape(&self, e_mev: f64) -> f64 {
        let g = &self.gas;
        let x = e_mev / g.break_mev;
        x.powf(-g.index_low) * (1.0 + x).powf(g.index_low - g.index_high)
    }
    /// Gas emissivity per H atom of the physical form alone (normalised to
    /// `emissivity_100mev_ph_s_sr` above 100 MeV), ph s-1 sr-1 MeV-1.
    pub fn gas_emissivity_uncalibrated(&self, e_mev: f64) -> f64 {
        let norm = super::instrument::integrate_ln(100.0, 1e6, 200, |e| self.gas_shape(e));
        self.gas.emissivity_100mev_ph_s_sr * self.gas_shape(e_mev) / norm
    }
    /// Gas emissivity per H atom, calibrated, ph s-1 sr-1 MeV-1.
    pub fn gas_emissivity(&self, e_mev: f64) -> f64 {
        let f = self
            .calibration
            .as_ref()
            .map_or(1.0, |c| c.at(&c.gas_scale, e_mev));
        f * self.gas_emissivity_uncalibrated(e_mev)
    }
    /// IC intensity spectrum at the template's peak, calibrated, ph cm-2 s-1 sr-1 MeV-1.
    pub fn ic_dnde(&self, e_mev: f64) -> f64 {
        let c = &self.inverse_compton;
        let f = self
            .calibration
            .as_ref()
            .map_or(1.0, |k| k.at(&k.inverse_compton_scale, e_mev));
        f * c.e2dnde_1gev_centre_mev_cm2_s_sr / 1e6 * (e_mev / 1000.0).powf(-c.index)
    }
    /// Isotropic intensity, ph cm-2 s-1 sr-1 MeV-1.
    pub fn iso_dnde(&self, e_mev: f64) -> f64 {
        let c = &self.isotropic;
        let shape = |e: f64| (e / 1000.0).powf(-c.index) * (-e / (c.cutoff_gev * 1e3)).exp();
        let norm = super::instrument::integrate_ln(100.0, 1e7, 400, shape);
        c.intensity_100mev_ph_cm2_s_sr * shape(e_mev) / norm
    }
    /// Residual-like intensity inside the lobes, ph cm-2 s-1 sr-1 MeV-1.
    pub fn residual_dnde(&self, e_mev: f64) -> f64 {
        let r = &self.residual;
        r.e2dnde_1gev_mev_cm2_s_sr / 1e6 * (e_mev / 1000.0).powf(-r.index)
    }
}

/// The spatial templates of a model at a given NSIDE.
#[derive(Debug, Clone)]
pub struct IemMaps {
    /// Gas column x inner factor x log-normal multiplier, cm-2.
    pub gas_cm2: Vec<f64>,
    /// IC template, 1 at the centre.
    pub ic: Vec<f64>,
    /// Residual template (0 when disabled).
    pub residual: Vec<f64>,
}

fn wrap_l(l_deg: f64) -> f64 {
    let l = l_deg.rem_euclid(360.0);
    if l > 180.0 { l - 360.0 } else { l }
}

/// The tracer map (NSIDE 64) of a model.
pub fn tracer_map(tracer: &str) -> Result<Vec<f64>> {
    let bytes = match tracer {
        "hi4pi_nhi" => HI4PI,
        "planck_ebv" => PLANCK,
        "sfd_ebv" => SFD,
        t => return Err(Error::Usage(format!("unknown gas tracer {t}"))),
    };
    let m = HealpixFits::from_bytes(bytes)
        .map_err(|e| Error::Internal(format!("gas map {tracer}: {e}")))?;
    Ok(m.columns[0].2.iter().map(|&x| x as f64).collect())
}

/// Gaussian-weighted interpolation of a low-resolution RING map onto `grid`.
pub fn upsample(low: &[f64], low_nside: u32, grid: &Grid) -> Vec<f64> {
    let gl = Grid::new(low_nside);
    let pix = gl.pixel_size_deg();
    let sigma = (0.5 * pix).to_radians();
    let radius = 2.0 * pix.to_radians();
    let k = |cos: f64| (-(2.0 * (1.0 - cos)) / (2.0 * sigma * sigma)).exp();
    let s = grid.gather_linear(&gl, radius, low, k);
    let w = grid.kernel_sums(&gl, radius, k);
    s.into_iter()
        .zip(w)
        .map(|(s, w)| if w > 0.0 { s / w } else { 0.0 })
        .collect()
}

/// `exp(-theta^2 / 2 sigma^2)` tabulated against `x = 1 - cos(theta)` (theta^2 ~ 2x), up to
/// `radius`.
struct GaussTable {
    inv_dx: f64,
    values: Vec<f64>,
}

impl GaussTable {
    fn new(sigma: f64, radius: f64) -> Self {
        const N: usize = 2048;
        let dx = (1.0 - radius.cos()) / (N - 1) as f64;
        let values = (0..N)
            .map(|i| {
                let theta = (1.0 - i as f64 * dx).clamp(-1.0, 1.0).acos();
                (-theta * theta / (2.0 * sigma * sigma)).exp()
            })
            .chain([0.0])
            .collect();
        Self {
            inv_dx: 1.0 / dx,
            values,
        }
    }
    #[inline]
    fn at_cos(&self, cos: f64) -> f64 {
        let x = (1.0 - cos).max(0.0) * self.inv_dx;
        let i = x as usize;
        if i + 1 >= self.values.len() {
            return 0.0;
        }
        let t = x - i as f64;
        self.values[i] * (1.0 - t) + self.values[i + 1] * t
    }
}

/// A unit-variance Gaussian random field on `grid` with correlation (Gaussian smoothing)
/// scale `scale_deg`: white noise on a grid whose pixels are at most the scale, drawn
/// ring by ring from streams keyed by (seed, label, ring), smoothed onto `grid` and divided by
/// the exact per-pixel standard deviation `sqrt(sum w^2)`.
pub fn gaussian_field(grid: &Grid, scale_deg: f64, seed: u64, label: &str) -> Vec<f64> {
    let mut nside_n = 1u32;
    while nside_n < grid.nside && Grid::pixel_size_deg_of(nside_n) > scale_deg {
        nside_n *= 2;
    }
    let gn = Grid::new(nside_n);
    let noise: Vec<f64> = gn
        .rings()
        .par_iter()
        .enumerate()
        .flat_map_iter(|(ri, r)| {
            let mut rng = crate::rng::stream(seed, label, ri as u64);
            (0..r.n)
                .map(move |_| StandardNormal.sample(&mut rng))
                .collect::<Vec<f64>>()
        })
        .collect();
    let sigma = scale_deg.to_radians();
    let radius = 3.0 * sigma;
    let kernel = GaussTable::new(sigma, radius);
    let s = grid.gather_linear(&gn, radius, &noise, |cos| kernel.at_cos(cos));
    let w2 = grid.kernel_sums(&gn, radius, |cos| kernel.at_cos(cos).powi(2));
    s.into_iter()
        .zip(w2)
        .map(|(s, w2)| if w2 > 0.0 { s / w2.sqrt() } else { 0.0 })
        .collect()
}

impl IemModel {
    /// Builds the spatial templates at `grid`.
    pub fn maps(&self, grid: &Grid) -> Result<IemMaps> {
        let g = &self.gas;
        let tracer = tracer_map(&g.tracer)?;
        let capped: Vec<f64> = tracer
            .iter()
            .map(|&t| {
                if t.is_finite() {
                    t.clamp(0.0, g.tracer_max) * g.column_per_unit_cm2
                } else {
                    0.0
                }
            })
            .collect();
        let t = std::time::Instant::now();
        let mut gas = upsample(&capped, 64, grid);
        log::debug!(
            "{}: gas upsampled in {:.2} s",
            self.name,
            t.elapsed().as_secs_f64()
        );
        // log-normal sub-degree structure
        let s = &self.substructure;
        let wsum: f64 = s.weights.iter().map(|w| w * w).sum::<f64>().sqrt();
        let mut field = vec![0.0; grid.npix()];
        for (k, (&scale, &w)) in s.scales_deg.iter().zip(&s.weights).enumerate() {
            let f = gaussian_field(
                grid,
                scale,
                self.seed,
                &format!("iem/{}/substructure/{k}", self.name),
            );
            field
                .iter_mut()
                .zip(&f)
                .for_each(|(a, b)| *a += w / wsum * b);
        }
        let sl = s.sigma_ln;
        gas.par_iter_mut()
            .zip(field.par_iter())
            .enumerate()
            .for_each(|(p, (x, f))| {
                let (l, b) = grid.pix_to_lonlat_deg(p as u64);
                let lw = wrap_l(l);
                let inner = 1.0
                    + g.inner_boost
                        * (-(lw * lw) / (2.0 * g.inner_width_l_deg.powi(2))
                            - b * b / (2.0 * g.inner_width_b_deg.powi(2)))
                        .exp();
                *x *= inner * (sl * f - 0.5 * sl * sl).exp();
            });
        let c = &self.inverse_compton;
        let ic: Vec<f64> = (0..grid.npix())
            .into_par_iter()
            .map(|p| {
                let (l, b) = grid.pix_to_lonlat_deg(p as u64);
                let lw = wrap_l(l);
                (c.floor_l + (1.0 - c.floor_l) * (-(lw * lw) / (2.0 * c.width_l_deg.powi(2))).exp())
                    * (c.frac_thin * (-b.abs() / c.height_thin_deg).exp()
                        + (1.0 - c.frac_thin) * (-b.abs() / c.height_thick_deg).exp())
            })
            .collect();
        let r = &self.residual;
        let residual = if r.enabled {
            let f = gaussian_field(
                grid,
                r.field_scale_deg,
                self.seed,
                &format!("iem/{}/residual", self.name),
            );
            (0..grid.npix())
                .into_par_iter()
                .map(|p| {
                    let (l, b) = grid.pix_to_lonlat_deg(p as u64);
                    let lw = wrap_l(l);
                    // lobes: soft-edged ellipses in (l, |b|) above and below the centre
                    let d2 = (lw / r.lobe_axis_l_deg).powi(2)
                        + ((b.abs() - r.lobe_b_deg) / r.lobe_axis_b_deg).powi(2);
                    let lobe = 1.0 / (1.0 + (8.0 * (d2.sqrt() - 1.0)).exp());
                    let env = (-b.abs() / r.field_height_deg).exp();
                    lobe + r.field_amplitude * env * f[p].max(0.0)
                })
                .collect()
        } else {
            vec![0.0; grid.npix()]
        };
        Ok(IemMaps {
            gas_cm2: gas,
            ic,
            residual,
        })
    }

    /// Expected diffuse counts per pixel and bin (before PSF smoothing): `[bin][pixel]`, and
    /// the local spectral index of the all-sky mean diffuse spectrum in each bin.
    pub fn counts(
        &self,
        maps: &IemMaps,
        grid: &Grid,
        inst: &Instrument,
    ) -> (Vec<Vec<f64>>, Vec<f64>) {
        let area = grid.pixel_area_sr();
        let e = &inst.edges_mev;
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        let (mg, mi, mr) = (mean(&maps.gas_cm2), mean(&maps.ic), mean(&maps.residual));
        let mut out = Vec::new();
        let mut idx = Vec::new();
        for b in 0..e.len() - 1 {
            let cg = area * inst.expected_counts(e[b], e[b + 1], |x| self.gas_emissivity(x));
            let ci = area * inst.expected_counts(e[b], e[b + 1], |x| self.ic_dnde(x));
            let cr = area * inst.expected_counts(e[b], e[b + 1], |x| self.residual_dnde(x));
            let cs = area * inst.expected_counts(e[b], e[b + 1], |x| self.iso_dnde(x));
            let m: Vec<f64> = (0..grid.npix())
                .into_par_iter()
                .map(|p| maps.gas_cm2[p] * cg + maps.ic[p] * ci + maps.residual[p] * cr + cs)
                .collect();
            out.push(m);
            let total = |x: f64| {
                mg * self.gas_emissivity(x)
                    + mi * self.ic_dnde(x)
                    + mr * self.residual_dnde(x)
                    + self.iso_dnde(x)
            };
            idx.push(inst.local_index(b, total));
        }
        (out, idx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_load_and_differ() {
        let b1 = IemModel::load("B1").unwrap();
        let b2 = IemModel::load("B2").unwrap();
        let b3 = IemModel::load("B3").unwrap();
        assert!(b1.residual.enabled && b3.residual.enabled && !b2.residual.enabled);
        assert_ne!(b1.gas.tracer, b2.gas.tracer);
        assert_ne!(b2.gas.tracer, b3.gas.tracer);
        assert!(IemModel::load("B9").is_err());
        // emissivity integrates to the published value
        let q = super::super::instrument::integrate_ln(100.0, 1e6, 400, |e| {
            b1.gas_emissivity_uncalibrated(e)
        });
        assert!((q / 1.63e-26 - 1.0).abs() < 1e-6, "{q}");
        let i = super::super::instrument::integrate_ln(100.0, 1e7, 400, |e| b1.iso_dnde(e));
        assert!((i / b1.isotropic.intensity_100mev_ph_cm2_s_sr - 1.0).abs() < 1e-6);
    }

    #[test]
    fn gaussian_field_has_unit_variance_and_is_seeded() {
        let grid = Grid::new(32);
        let f = gaussian_field(&grid, 4.0, 7, "t");
        let n = f.len() as f64;
        let m = f.iter().sum::<f64>() / n;
        let v = f.iter().map(|x| (x - m).powi(2)).sum::<f64>() / n;
        assert!(m.abs() < 0.2 && (0.6..1.4).contains(&v), "{m} {v}");
        assert_eq!(f, gaussian_field(&grid, 4.0, 7, "t"));
        assert_ne!(f, gaussian_field(&grid, 4.0, 8, "t"));
    }
}
