//! The `[catalog]` section: the mock AGN and PSR population (Panes et al. 2021, app. A).

use crate::config::{Invalid, invalid};
use serde::{Deserialize, Serialize};

/// Which 4FGL release the parameter distributions are taken from.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Prior {
    /// 4FGL DR1 (gll_psc_v20, 8 years): reproduces Panes et al. 2021.
    #[serde(rename = "4fgl-dr1")]
    Dr1,
    /// 4FGL-DR4 (gll_psc_v35, 14 years): the default.
    #[serde(rename = "4fgl-dr4")]
    Dr4,
}

impl Prior {
    /// The config spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            Prior::Dr1 => "4fgl-dr1",
            Prior::Dr4 => "4fgl-dr4",
        }
    }
}

/// Luminosity-function extrapolation below the 4FGL threshold (Panes et al. 2021, app. A).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum LuminosityFunction {
    /// Follow 4FGL above its peak, flat below it down to the threshold.
    Flat,
    /// A power law in log N - log E100 down to the threshold.
    PowerLaw,
}

/// Named catalog presets of the paper.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
pub enum Preset {
    /// Flat to 3.4e-13 erg cm-2 s-1 (training and test F0).
    F0,
    /// Flat to 2.2e-14 erg cm-2 s-1 (test F1).
    F1,
    /// Power law to 2.2e-14 erg cm-2 s-1 (test F2).
    F2,
}

impl Preset {
    /// (luminosity function, threshold in erg cm-2 s-1) of the preset.
    pub fn resolve(self) -> (LuminosityFunction, f64) {
        match self {
            Preset::F0 => (LuminosityFunction::Flat, 3.4e-13),
            Preset::F1 => (LuminosityFunction::Flat, 2.2e-14),
            Preset::F2 => (LuminosityFunction::PowerLaw, 2.2e-14),
        }
    }
}

/// Mock-catalog stage configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CatalogConfig {
    /// F0, F1 or F2; sets `luminosity_function` and `threshold_erg_cm2_s` unless given.
    #[serde(default)]
    pub preset: Option<Preset>,
    /// 4FGL release the spectral and spatial distributions come from.
    #[serde(default = "default_prior")]
    pub prior: Prior,
    /// `flat` or `power_law` (resolved from the preset when absent; `flat` otherwise).
    #[serde(default)]
    pub luminosity_function: Option<LuminosityFunction>,
    /// Lowest energy flux 0.1-100 GeV of the mock population, erg cm-2 s-1.
    #[serde(default)]
    pub threshold_erg_cm2_s: Option<f64>,
    /// Which classes to generate.
    #[serde(default = "default_classes")]
    pub classes: Vec<String>,
    /// Number of equal-width log10 bins over the 4FGL Energy_Flux100 range of AGN+PSR; this
    /// fixes the bin width used by both luminosity functions (30 reproduces the paper's fit).
    #[serde(default = "default_n_bins")]
    pub lf_bins_4fgl: usize,
    /// Flat-extrapolation parameters.
    #[serde(default)]
    pub flat: FlatConfig,
    /// Power-law-extrapolation parameters.
    #[serde(default)]
    pub power_law: PowerLawConfig,
    /// PSR latitude double Gaussian; defaults depend on the prior.
    #[serde(default)]
    pub psr_latitude: Option<PsrLatitudeConfig>,
    /// Also write figures (PNG and SVG) to `figures/`.
    #[serde(default = "default_true")]
    pub figures: bool,
    /// Fermi Science Tools XML source models to render instead of generating a population
    /// (e.g. the published mock catalogs of Panes et al. 2021, or a fermipy / gtlike model);
    /// empty: generate from the luminosity function. (Left out of the config hash when
    /// empty, so stored catalogs keep their keys.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub source: Vec<String>,
}

fn default_prior() -> Prior {
    Prior::Dr4
}
fn default_classes() -> Vec<String> {
    vec!["AGN".into(), "PSR".into()]
}
fn default_n_bins() -> usize {
    30
}
fn default_true() -> bool {
    true
}

impl Default for CatalogConfig {
    fn default() -> Self {
        Self {
            preset: None,
            prior: default_prior(),
            luminosity_function: None,
            threshold_erg_cm2_s: None,
            classes: default_classes(),
            lf_bins_4fgl: default_n_bins(),
            flat: FlatConfig::default(),
            power_law: PowerLawConfig::default(),
            psr_latitude: None,
            figures: true,
            source: Vec::new(),
        }
    }
}

/// Parameters of the flat extrapolation (Panes et al. 2021, app. A, steps 1-4).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct FlatConfig {
    /// Range of N_min, the count in every bin from the threshold up to the 4FGL peak, AGN.
    #[serde(default = "default_agn_nmin")]
    pub agn_n_min: [u32; 2],
    /// Same for PSR.
    #[serde(default = "default_psr_nmin")]
    pub psr_n_min: [u32; 2],
    /// Range of the per-bin multiplier N_noise applied to the 4FGL counts above the peak.
    #[serde(default = "default_noise")]
    pub noise: [f64; 2],
    /// Bins whose 4FGL count is 0 or 1 may hold up to this many mock sources.
    #[serde(default = "default_sparse_max")]
    pub sparse_bin_max: u32,
}

fn default_agn_nmin() -> [u32; 2] {
    [50, 250]
}
fn default_psr_nmin() -> [u32; 2] {
    [15, 25]
}
fn default_noise() -> [f64; 2] {
    [0.8, 1.3]
}
fn default_sparse_max() -> u32 {
    2
}

impl Default for FlatConfig {
    fn default() -> Self {
        Self {
            agn_n_min: default_agn_nmin(),
            psr_n_min: default_psr_nmin(),
            noise: default_noise(),
            sparse_bin_max: default_sparse_max(),
        }
    }
}

/// Power-law extrapolation: log10 N = slope (log10 E100 - x_intercept), N per bin of the
/// 4FGL histogram, fitted to 4FGL AGN above the peak (Panes et al. 2021, app. A).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PowerLawConfig {
    #[serde(default = "default_slope")]
    pub slope: f64,
    #[serde(default = "default_x_intercept")]
    pub x_intercept: f64,
}

fn default_slope() -> f64 {
    -0.96
}
fn default_x_intercept() -> f64 {
    -8.64
}

impl Default for PowerLawConfig {
    fn default() -> Self {
        Self {
            slope: default_slope(),
            x_intercept: default_x_intercept(),
        }
    }
}

/// PSR latitude density per degree of signed latitude,
/// `f(b) = A1 exp(-b^2 / 2 sigma1^2) + A2 exp(-b^2 / 2 sigma2^2)`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PsrLatitudeConfig {
    pub a1: f64,
    pub sigma1_deg: f64,
    pub a2: f64,
    pub sigma2_deg: f64,
}

impl PsrLatitudeConfig {
    /// Published: A1=0.11, sigma1=1.39 deg, A2=0.012, sigma2=19.2 deg (Panes et al. 2021).
    pub fn published() -> Self {
        Self {
            a1: 0.11,
            sigma1_deg: 1.39,
            a2: 0.012,
            sigma2_deg: 19.2,
        }
    }
    /// Maximum-likelihood refit on 4FGL-DR4 PSRs (shared/data README): weight 0.33 in the
    /// narrow component, sigma1 = 1.31 deg, sigma2 = 26.6 deg, expressed as amplitudes of a
    /// unit-normalised density.
    pub fn dr4_refit() -> Self {
        let w1 = 0.33;
        let (s1, s2) = (1.31, 26.6);
        let k = (2.0 * std::f64::consts::PI).sqrt();
        Self {
            a1: w1 / (s1 * k),
            sigma1_deg: s1,
            a2: (1.0 - w1) / (s2 * k),
            sigma2_deg: s2,
        }
    }
    /// Mixture weight of the narrow component.
    pub fn weight1(&self) -> f64 {
        let m1 = self.a1 * self.sigma1_deg;
        let m2 = self.a2 * self.sigma2_deg;
        m1 / (m1 + m2)
    }
}

impl CatalogConfig {
    /// The luminosity function after applying the preset.
    pub fn resolved_lf(&self) -> LuminosityFunction {
        self.luminosity_function
            .or(self.preset.map(|p| p.resolve().0))
            .unwrap_or(LuminosityFunction::Flat)
    }
    /// The threshold after applying the preset (F0's 3.4e-13 when nothing is given).
    pub fn resolved_threshold(&self) -> f64 {
        self.threshold_erg_cm2_s
            .or(self.preset.map(|p| p.resolve().1))
            .unwrap_or(3.4e-13)
    }
    /// PSR latitude parameters after applying the prior's default.
    pub fn resolved_psr_latitude(&self) -> PsrLatitudeConfig {
        self.psr_latitude.clone().unwrap_or(match self.prior {
            Prior::Dr1 => PsrLatitudeConfig::published(),
            Prior::Dr4 => PsrLatitudeConfig::dr4_refit(),
        })
    }
    /// Fills presets and prior-dependent defaults so the saved config says everything.
    pub fn resolve(&mut self) {
        self.luminosity_function = Some(self.resolved_lf());
        self.threshold_erg_cm2_s = Some(self.resolved_threshold());
        self.psr_latitude = Some(self.resolved_psr_latitude());
    }
}

impl CatalogConfig {
    /// Range checks of the catalog stage.
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        let c = self;
        if let Some(t) = c.threshold_erg_cm2_s
            && (!t.is_finite() || t <= 0.0)
        {
            return Err(invalid(
                "catalog.threshold_erg_cm2_s",
                format!("must be a positive energy flux in erg cm-2 s-1, got {t}"),
            ));
        }
        if let Some(t) = c.threshold_erg_cm2_s
            && !(1e-17..=1e-9).contains(&t)
        {
            return Err(invalid(
                "catalog.threshold_erg_cm2_s",
                format!("{t} is outside the supported range 1e-17..1e-9 erg cm-2 s-1"),
            ));
        }
        if c.classes.is_empty() {
            return Err(invalid("catalog.classes", "needs at least one of AGN, PSR"));
        }
        for cl in &c.classes {
            if cl != "AGN" && cl != "PSR" {
                return Err(invalid(
                    "catalog.classes",
                    format!("unknown class `{cl}` (expected AGN or PSR)"),
                ));
            }
        }
        if !(5..=200).contains(&c.lf_bins_4fgl) {
            return Err(invalid("catalog.lf_bins_4fgl", "must be between 5 and 200"));
        }
        for (key, r) in [
            ("catalog.flat.agn_n_min", c.flat.agn_n_min),
            ("catalog.flat.psr_n_min", c.flat.psr_n_min),
        ] {
            if r[0] > r[1] {
                return Err(invalid(key, "range must be [low, high] with low <= high"));
            }
        }
        let n = c.flat.noise;
        if !(n[0].is_finite() && n[1].is_finite() && 0.0 < n[0] && n[0] <= n[1]) {
            return Err(invalid(
                "catalog.flat.noise",
                "range must be [low, high] with 0 < low <= high",
            ));
        }
        if !(c.power_law.slope.is_finite() && c.power_law.slope < 0.0) {
            return Err(invalid("catalog.power_law.slope", "must be negative"));
        }
        if !c.power_law.x_intercept.is_finite() {
            return Err(invalid("catalog.power_law.x_intercept", "must be finite"));
        }
        if let Some(p) = &c.psr_latitude {
            for (k, v) in [
                ("catalog.psr_latitude.a1", p.a1),
                ("catalog.psr_latitude.a2", p.a2),
            ] {
                if !(v.is_finite() && v >= 0.0) {
                    return Err(invalid(k, "must be >= 0"));
                }
            }
            for (k, v) in [
                ("catalog.psr_latitude.sigma1_deg", p.sigma1_deg),
                ("catalog.psr_latitude.sigma2_deg", p.sigma2_deg),
            ] {
                if !(v.is_finite() && v > 0.0 && v <= 180.0) {
                    return Err(invalid(k, "must be in (0, 180] deg"));
                }
            }
            if p.a1 + p.a2 <= 0.0 {
                return Err(invalid("catalog.psr_latitude.a1", "a1 + a2 must be > 0"));
            }
        }
        Ok(())
    }
}
