//! Point-source spectra of the 4FGL catalog and their integrals.
//!
//! * AGN: `LogParabola`, `dN/dE = K (E/E0)^(-alpha - beta ln(E/E0))` (Panes et al. 2021,
//!   eq. 1; 4FGL columns LP_Flux_Density, Pivot_Energy, LP_Index, LP_beta).
//! * PSR: `PLSuperExpCutoff2`, `dN/dE = K (E/E0)^(-Gamma) exp(a (E0^b - E^b))` (eq. 2; 4FGL-DR1
//!   columns PLEC_Flux_Density, PLEC_Index, PLEC_Expfactor in MeV^-b, PLEC_Exp_Index).
//!
//! Energies are in MeV, `K` in ph cm-2 s-1 MeV-1. Integrals use composite 8-point
//! Gauss-Legendre quadrature in `x = ln E` (panels of at most 0.5 in ln E, narrower where a
//! cut-off is steep), where both spectral shapes are smooth; against the closed forms (power
//! law, and the error-function form of the log-parabola) the relative error is below 1e-10.

/// erg per MeV.
pub const ERG_PER_MEV: f64 = 1.602_176_634e-6;

/// A point-source spectrum.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Spectrum {
    /// `K (E/E0)^(-alpha - beta ln(E/E0))`.
    LogParabola {
        k: f64,
        e0_mev: f64,
        alpha: f64,
        beta: f64,
    },
    /// `K (E/E0)^(-gamma) exp(a (E0^b - E^b))`, `a` in MeV^-b.
    PlSuperExpCutoff2 {
        k: f64,
        e0_mev: f64,
        gamma: f64,
        a: f64,
        b: f64,
    },
}

// 8-point Gauss-Legendre nodes and weights on [-1, 1].
const GL_X: [f64; 4] = [
    0.183_434_642_495_649_8,
    0.525_532_409_916_329,
    0.796_666_477_413_626_7,
    0.960_289_856_497_536_3,
];
const GL_W: [f64; 4] = [
    0.362_683_783_378_362,
    0.313_706_645_877_887_3,
    0.222_381_034_453_374_5,
    0.101_228_536_290_376_3,
];

/// Maximum panel width in `ln E`.
const MAX_PANEL: f64 = 0.5;

impl Spectrum {
    /// `(int dN/dE dE, int E dN/dE dE)` over `[lo_mev, hi_mev]` (photon flux in ph cm-2 s-1
    /// and energy flux in MeV cm-2 s-1), by composite 8-point Gauss-Legendre in `x = ln E`.
    ///
    /// Panels are at most 0.5 wide in `ln E` and narrow enough that the log of the integrand
    /// changes by at most 1.5 across one (`|d ln(E dN/dE)/dx| h <= 1.5`), so a steep
    /// super-exponential cut-off is resolved. Once both integrands decrease, the remaining
    /// tail of each is bounded by `g(x) / |d ln g/dx|` (both spectral shapes are log-concave
    /// in `x`), and the loop stops when that bound is below 1e-16 of the running totals.
    pub fn integrals(&self, lo_mev: f64, hi_mev: f64) -> (f64, f64) {
        if hi_mev.partial_cmp(&lo_mev) != Some(std::cmp::Ordering::Greater) {
            return (0.0, 0.0);
        }
        let (mut x, x1) = (lo_mev.ln(), hi_mev.ln());
        let (mut photons, mut energy) = (0.0, 0.0);
        while x < x1 {
            let end = (x + MAX_PANEL).min(x1);
            let steep = [self.log_slope(x), self.log_slope(end)]
                .iter()
                .map(|s| (1.0 + s).abs().max((2.0 + s).abs()))
                .fold(0.0, f64::max);
            let h = (1.5 / steep.max(1e-9)).min(MAX_PANEL).min(x1 - x);
            let (mid, half) = (x + 0.5 * h, 0.5 * h);
            let (mut p, mut e) = (0.0, 0.0);
            for j in 0..4 {
                for xx in [mid - half * GL_X[j], mid + half * GL_X[j]] {
                    let en = xx.exp();
                    let g = en * self.dnde(en);
                    p += GL_W[j] * g;
                    e += GL_W[j] * g * en;
                }
            }
            photons += p * half;
            energy += e * half;
            x += h;
            let sl = self.log_slope(x);
            if 2.0 + sl < 0.0 && photons > 0.0 {
                let en = x.exp();
                let g = en * self.dnde(en);
                if g / -(1.0 + sl) < 1e-16 * photons && g * en / -(2.0 + sl) < 1e-16 * energy {
                    break;
                }
            }
        }
        (photons, energy)
    }

    /// `(photon flux, energy flux in MeV cm-2 s-1)` in each of `ranges`, computed once over
    /// the union of their edges (each sub-interval integrated once, then summed).
    pub fn integrals_in(&self, ranges: &[(f64, f64)]) -> Vec<(f64, f64)> {
        let mut edges: Vec<f64> = ranges.iter().flat_map(|r| [r.0, r.1]).collect();
        edges.sort_by(f64::total_cmp);
        edges.dedup();
        let parts: Vec<(f64, f64)> = edges
            .windows(2)
            .map(|w| self.integrals(w[0], w[1]))
            .collect();
        ranges
            .iter()
            .map(|&(a, b)| {
                edges
                    .windows(2)
                    .zip(&parts)
                    .filter(|(w, _)| w[0] >= a && w[1] <= b)
                    .fold((0.0, 0.0), |acc, (_, p)| (acc.0 + p.0, acc.1 + p.1))
            })
            .collect()
    }
}

impl Spectrum {
    /// Differential photon flux dN/dE at `e_mev`, ph cm-2 s-1 MeV-1.
    pub fn dnde(&self, e_mev: f64) -> f64 {
        match *self {
            Spectrum::LogParabola {
                k,
                e0_mev,
                alpha,
                beta,
            } => {
                let x = (e_mev / e0_mev).ln();
                k * (-(alpha + beta * x) * x).exp()
            }
            Spectrum::PlSuperExpCutoff2 {
                k,
                e0_mev,
                gamma,
                a,
                b,
            } => {
                let x = (e_mev / e0_mev).ln();
                k * (-gamma * x + a * (e0_mev.powf(b) - e_mev.powf(b))).exp()
            }
        }
    }

    /// Logarithmic slope `d ln(dN/dE) / d ln E` at `x = ln(E / MeV)`.
    pub fn log_slope(&self, x: f64) -> f64 {
        match *self {
            Spectrum::LogParabola {
                e0_mev,
                alpha,
                beta,
                ..
            } => -alpha - 2.0 * beta * (x - e0_mev.ln()),
            Spectrum::PlSuperExpCutoff2 { gamma, a, b, .. } => -gamma - a * b * (b * x).exp(),
        }
    }

    /// Photon flux between `e1_mev` and `e2_mev`, ph cm-2 s-1: `int dN/dE dE`.
    pub fn photon_flux(&self, e1_mev: f64, e2_mev: f64) -> f64 {
        self.integrals(e1_mev, e2_mev).0
    }

    /// Energy flux between `e1_mev` and `e2_mev`, erg cm-2 s-1: `int E dN/dE dE`.
    pub fn energy_flux_erg(&self, e1_mev: f64, e2_mev: f64) -> f64 {
        ERG_PER_MEV * self.integrals(e1_mev, e2_mev).1
    }

    /// The normalisation `K`.
    pub fn norm(&self) -> f64 {
        match *self {
            Spectrum::LogParabola { k, .. } | Spectrum::PlSuperExpCutoff2 { k, .. } => k,
        }
    }

    /// The same shape with normalisation `k`.
    pub fn with_norm(mut self, new_k: f64) -> Self {
        match &mut self {
            Spectrum::LogParabola { k, .. } | Spectrum::PlSuperExpCutoff2 { k, .. } => *k = new_k,
        }
        self
    }

    /// The pivot energy in MeV.
    pub fn pivot_mev(&self) -> f64 {
        match *self {
            Spectrum::LogParabola { e0_mev, .. } | Spectrum::PlSuperExpCutoff2 { e0_mev, .. } => {
                e0_mev
            }
        }
    }

    /// Science Tools name of the spectral model.
    pub fn name(&self) -> &'static str {
        match self {
            Spectrum::LogParabola { .. } => "LogParabola",
            Spectrum::PlSuperExpCutoff2 { .. } => "PLSuperExpCutoff2",
        }
    }
}

/// Closed form of `int_{e1}^{e2} K (E/E0)^-gamma dE` (reference for tests).
pub fn power_law_photon_flux(k: f64, e0: f64, gamma: f64, e1: f64, e2: f64) -> f64 {
    if (gamma - 1.0).abs() < 1e-12 {
        k * e0 * (e2 / e1).ln()
    } else {
        let p = 1.0 - gamma;
        k * e0 / p * ((e2 / e0).powf(p) - (e1 / e0).powf(p))
    }
}

/// Closed form of the log-parabola photon flux through the error function:
/// with `x = ln(E/E0)`, `int K E0 exp((1-alpha) x - beta x^2) dx`
/// `= K E0 sqrt(pi/beta)/2 exp(c^2/(4 beta)) [erf(sqrt(beta)(x2 - c/(2beta))) - erf(...x1...)]`,
/// `c = 1 - alpha` (beta > 0; reference for tests).
pub fn log_parabola_photon_flux(k: f64, e0: f64, alpha: f64, beta: f64, e1: f64, e2: f64) -> f64 {
    let c = 1.0 - alpha;
    let (x1, x2) = ((e1 / e0).ln(), (e2 / e0).ln());
    let sb = beta.sqrt();
    let shift = c / (2.0 * beta);
    let (u1, u2) = (sb * (x1 - shift), sb * (x2 - shift));
    // erf(u2) - erf(u1) without cancellation in the tails
    let diff = if u1 >= 0.0 {
        statrs::function::erf::erfc(u1) - statrs::function::erf::erfc(u2)
    } else if u2 <= 0.0 {
        statrs::function::erf::erfc(-u2) - statrs::function::erf::erfc(-u1)
    } else {
        statrs::function::erf::erf(u2) - statrs::function::erf::erf(u1)
    };
    k * e0 * (std::f64::consts::PI / beta).sqrt() / 2.0 * (c * c / (4.0 * beta)).exp() * diff
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rel(a: f64, b: f64) -> f64 {
        ((a - b) / b).abs()
    }

    #[test]
    fn log_parabola_beta0_is_power_law() {
        let s = Spectrum::LogParabola {
            k: 3e-12,
            e0_mev: 1500.0,
            alpha: 2.2,
            beta: 0.0,
        };
        let exact = power_law_photon_flux(3e-12, 1500.0, 2.2, 1000.0, 1e5);
        assert!(rel(s.photon_flux(1000.0, 1e5), exact) < 1e-10);
    }

    #[test]
    fn log_parabola_matches_erf_form() {
        for &(alpha, beta) in &[(2.0, 0.05), (1.7, 0.4), (2.6, 1.0)] {
            let s = Spectrum::LogParabola {
                k: 1e-12,
                e0_mev: 2000.0,
                alpha,
                beta,
            };
            for &(e1, e2) in &[(100.0, 1e5), (1e3, 1e5), (1e4, 1e6), (500.0, 1000.0)] {
                let exact = log_parabola_photon_flux(1e-12, 2000.0, alpha, beta, e1, e2);
                assert!(
                    rel(s.photon_flux(e1, e2), exact) < 1e-9,
                    "{alpha} {beta} {e1} {e2}"
                );
            }
        }
    }

    #[test]
    fn plec_a0_is_power_law() {
        let s = Spectrum::PlSuperExpCutoff2 {
            k: 1e-11,
            e0_mev: 1000.0,
            gamma: 1.3,
            a: 0.0,
            b: 0.6667,
        };
        let exact = power_law_photon_flux(1e-11, 1000.0, 1.3, 100.0, 1e5);
        assert!(rel(s.photon_flux(100.0, 1e5), exact) < 1e-10);
    }
}
