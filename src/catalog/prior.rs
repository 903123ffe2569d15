//! The 4FGL prior: spectral-parameter and spatial distributions of the real AGN and PSR
//! populations, read from the catalog extracts shipped in `data/4fgl/` (embedded in the
//! binary; provenance in `data/4fgl/README.md`).
//!
//! Following Panes et al. 2021 (sec. 2.1 and app. A), shape parameters are Gaussian with the
//! 4FGL mean and covariance, drawn jointly because they are strongly correlated; LP_beta
//! (AGN) and PLEC_Exp_Index (PSR) are drawn from their empirical distributions.
//!
//! 4FGL-DR4 gives pulsars in the PLSuperExpCutoff4 form
//! `K (E/E0)^(d/b - Gamma_S) exp(d/b^2 (1 - (E/E0)^b))`; it is the same function as the
//! PLSuperExpCutoff2 of DR1 with `Gamma = Gamma_S - d/b` and `a = d / (b^2 E0^b)`, so both
//! priors produce PLSuperExpCutoff2 sources.

use super::table::SourceClass;
use crate::config::Prior;
use crate::error::{Error, Result};
use std::io::Read;

const DR1_GZ: &[u8] = include_bytes!("../../data/4fgl/4fgl_dr1_v20_all.csv.gz");
const DR4_GZ: &[u8] = include_bytes!("../../data/4fgl/4fgl_dr4_v35_all.csv.gz");

/// One 4FGL AGN or PSR, with the columns the prior needs (NaN where missing).
#[derive(Debug, Clone)]
pub struct Row {
    pub class: SourceClass,
    pub glon_deg: f64,
    pub glat_deg: f64,
    pub ra_deg: f64,
    pub dec_deg: f64,
    pub pivot_mev: f64,
    pub lp_k: f64,
    pub lp_index: f64,
    pub lp_beta: f64,
    pub plec_k: f64,
    /// PLSuperExpCutoff2 photon index (converted for DR4).
    pub plec_gamma: f64,
    /// PLSuperExpCutoff2 exponential factor, MeV^-b (converted for DR4).
    pub plec_a: f64,
    pub plec_b: f64,
    pub eflux_100_erg_cm2_s: f64,
    pub flux_1000_ph_cm2_s: f64,
    /// 4FGL's preferred model (`PowerLaw`, `LogParabola`, `PLSuperExpCutoff`...), which
    /// its Flux1000 and Energy_Flux100 were computed from.
    pub spectrum_type: String,
}

/// The AGN and PSR rows of one 4FGL release.
#[derive(Debug, Clone)]
pub struct FourFgl {
    pub prior: Prior,
    pub rows: Vec<Row>,
}

impl FourFgl {
    /// Loads the embedded extract of `prior`.
    pub fn load(prior: Prior) -> Result<Self> {
        let (name, gz) = match prior {
            Prior::Dr1 => ("data/4fgl/4fgl_dr1_v20_all.csv.gz", DR1_GZ),
            Prior::Dr4 => ("data/4fgl/4fgl_dr4_v35_all.csv.gz", DR4_GZ),
        };
        let mut text = String::new();
        flate2::read::GzDecoder::new(gz)
            .read_to_string(&mut text)
            .map_err(|e| Error::Internal(format!("{name}: {e}")))?;
        let rows = parse(name, &text, prior)?;
        Ok(Self { prior, rows })
    }

    /// Rows of one class.
    pub fn class(&self, class: SourceClass) -> impl Iterator<Item = &Row> {
        self.rows.iter().filter(move |r| r.class == class)
    }
}

fn parse(name: &str, text: &str, prior: Prior) -> Result<Vec<Row>> {
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let headers = rdr
        .headers()
        .map_err(|e| Error::Internal(format!("{name}: {e}")))?
        .clone();
    let col = |c: &str| {
        headers
            .iter()
            .position(|h| h == c)
            .ok_or_else(|| Error::Internal(format!("{name}: no column {c}")))
    };
    let (gi, gl, gb, ra, dec, piv) = (
        col("GROUP")?,
        col("GLON")?,
        col("GLAT")?,
        col("RA")?,
        col("DEC")?,
        col("Pivot_Energy")?,
    );
    let (lpk, lpi, lpb) = (col("LP_Flux_Density")?, col("LP_Index")?, col("LP_beta")?);
    let (pk, pb) = (col("PLEC_Flux_Density")?, col("PLEC_Exp_Index")?);
    let (pidx, pexp) = match prior {
        Prior::Dr1 => (col("PLEC_Index")?, col("PLEC_Expfactor")?),
        Prior::Dr4 => (col("PLEC_IndexS")?, col("PLEC_ExpfactorS")?),
    };
    let (ef, f1, st) = (
        col("Energy_Flux100")?,
        col("Flux1000")?,
        col("SpectrumType")?,
    );
    let mut rows = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| Error::Internal(format!("{name}: {e}")))?;
        let class = match rec.get(gi) {
            Some("AGN") => SourceClass::Agn,
            Some("PSR") => SourceClass::Psr,
            _ => continue,
        };
        let f = |i: usize| {
            rec.get(i)
                .and_then(|s| s.trim().parse::<f64>().ok())
                .unwrap_or(f64::NAN)
        };
        let pivot = f(piv);
        let b = f(pb);
        let (gamma, a) = match prior {
            Prior::Dr1 => (f(pidx), f(pexp)),
            Prior::Dr4 => {
                let (gs, d) = (f(pidx), f(pexp));
                (gs - d / b, d / (b * b * pivot.powf(b)))
            }
        };
        rows.push(Row {
            class,
            glon_deg: f(gl),
            glat_deg: f(gb),
            ra_deg: f(ra),
            dec_deg: f(dec),
            pivot_mev: pivot,
            lp_k: f(lpk),
            lp_index: f(lpi),
            lp_beta: f(lpb),
            plec_k: f(pk),
            plec_gamma: gamma,
            plec_a: a,
            plec_b: b,
            eflux_100_erg_cm2_s: f(ef),
            flux_1000_ph_cm2_s: f(f1),
            spectrum_type: rec.get(st).unwrap_or("").trim().to_string(),
        });
    }
    Ok(rows)
}

/// A multivariate normal fitted to data (mean and covariance), sampled by Cholesky factor.
#[derive(Debug, Clone)]
pub struct Gaussian {
    pub names: Vec<&'static str>,
    pub mean: Vec<f64>,
    pub cov: Vec<Vec<f64>>,
    chol: Vec<Vec<f64>>,
}

impl Gaussian {
    /// Fits mean and (n-1) covariance to the rows of `data` that have no NaN and no
    /// component outside its 0.5-99.5% quantiles (a handful of 4FGL fits sit far out in
    /// the tails, e.g. DR4 pulsar cut-offs below 10 MeV, and would inflate the covariance).
    pub fn fit(names: Vec<&'static str>, data: &[Vec<f64>]) -> Result<Self> {
        let d = names.len();
        let finite: Vec<&Vec<f64>> = data
            .iter()
            .filter(|r| r.iter().all(|v| v.is_finite()))
            .collect();
        let bounds: Vec<(f64, f64)> = (0..d)
            .map(|j| {
                let mut v: Vec<f64> = finite.iter().map(|r| r[j]).collect();
                v.sort_by(f64::total_cmp);
                if v.is_empty() {
                    return (f64::NEG_INFINITY, f64::INFINITY);
                }
                let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
                (q(0.005), q(0.995))
            })
            .collect();
        let rows: Vec<&Vec<f64>> = finite
            .into_iter()
            .filter(|r| {
                r.iter()
                    .zip(&bounds)
                    .all(|(v, (lo, hi))| v >= lo && v <= hi)
            })
            .collect();
        if rows.len() < d + 2 {
            return Err(Error::Internal(format!("too few rows to fit {names:?}")));
        }
        let n = rows.len() as f64;
        let mean: Vec<f64> = (0..d)
            .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
            .collect();
        let mut cov = vec![vec![0.0; d]; d];
        for r in &rows {
            for i in 0..d {
                for j in 0..d {
                    cov[i][j] += (r[i] - mean[i]) * (r[j] - mean[j]) / (n - 1.0);
                }
            }
        }
        let chol = cholesky(&cov).ok_or_else(|| {
            Error::Internal(format!("covariance of {names:?} is not positive definite"))
        })?;
        Ok(Self {
            names,
            mean,
            cov,
            chol,
        })
    }

    /// Draws one vector.
    pub fn sample<R: rand::Rng>(&self, rng: &mut R) -> Vec<f64> {
        let z: Vec<f64> = (0..self.mean.len())
            .map(|_| rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng))
            .collect();
        (0..self.mean.len())
            .map(|i| self.mean[i] + (0..=i).map(|j| self.chol[i][j] * z[j]).sum::<f64>())
            .collect()
    }

    /// Standard deviation of component `i`.
    pub fn std(&self, i: usize) -> f64 {
        self.cov[i][i].sqrt()
    }

    /// Correlation of components `i` and `j`.
    pub fn corr(&self, i: usize, j: usize) -> f64 {
        self.cov[i][j] / (self.std(i) * self.std(j))
    }
}

/// Lower Cholesky factor of a symmetric positive-definite matrix.
pub fn cholesky(a: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let n = a.len();
    let mut l = vec![vec![0.0; n]; n];
    for i in 0..n {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            if i == j {
                let v = a[i][i] - s;
                if v <= 0.0 || !v.is_finite() {
                    return None;
                }
                l[i][j] = v.sqrt();
            } else {
                l[i][j] = (a[i][j] - s) / l[j][j];
            }
        }
    }
    Some(l)
}

/// An empirical distribution sampled by its linearly interpolated inverse CDF.
#[derive(Debug, Clone)]
pub struct Empirical {
    pub sorted: Vec<f64>,
}

impl Empirical {
    pub fn new(values: impl IntoIterator<Item = f64>) -> Result<Self> {
        let mut sorted: Vec<f64> = values.into_iter().filter(|v| v.is_finite()).collect();
        if sorted.len() < 2 {
            return Err(Error::Internal(
                "empirical distribution needs two values".into(),
            ));
        }
        sorted.sort_by(f64::total_cmp);
        Ok(Self { sorted })
    }

    /// Inverse CDF at `u` in [0, 1].
    pub fn quantile(&self, u: f64) -> f64 {
        let n = self.sorted.len();
        let pos = u.clamp(0.0, 1.0) * (n - 1) as f64;
        let i = (pos.floor() as usize).min(n - 2);
        let t = pos - i as f64;
        self.sorted[i] * (1.0 - t) + self.sorted[i + 1] * t
    }

    pub fn sample<R: rand::Rng>(&self, rng: &mut R) -> f64 {
        self.quantile(rng.random::<f64>())
    }
}

/// The sampling model of one class.
#[derive(Debug, Clone)]
pub struct ClassPrior {
    pub class: SourceClass,
    /// AGN: (LP_Index, log10 Pivot_Energy/MeV); PSR: (Gamma, log10 Pivot_Energy/MeV, log10 a).
    pub shape: Gaussian,
    /// AGN: LP_beta; PSR: PLEC_Exp_Index.
    pub curvature: Empirical,
    /// 4FGL log10 Energy_Flux100 of the class (for the luminosity function).
    pub log10_eflux: Vec<f64>,
    /// log10 flux density (LP for AGN, PLEC for PSR), for comparison figures.
    pub log10_k: Vec<f64>,
    /// Mean and standard deviation of `log10_k` (the flat sampler's log-normal K).
    pub log10_k_mean: f64,
    pub log10_k_std: f64,
    /// Galactic latitudes of the class, deg.
    pub glat_deg: Vec<f64>,
    /// Number of 4FGL sources of the class.
    pub n: usize,
}

impl ClassPrior {
    /// Builds the prior of `class` from a 4FGL release.
    pub fn new(fgl: &FourFgl, class: SourceClass) -> Result<Self> {
        let rows: Vec<&Row> = fgl.class(class).collect();
        let (shape, curvature, log10_k): (Gaussian, Empirical, Vec<f64>) = match class {
            SourceClass::Agn => (
                Gaussian::fit(
                    vec!["LP_Index", "log10_Pivot_Energy"],
                    &rows
                        .iter()
                        .map(|r| vec![r.lp_index, r.pivot_mev.log10()])
                        .collect::<Vec<_>>(),
                )?,
                Empirical::new(rows.iter().map(|r| r.lp_beta))?,
                rows.iter()
                    .map(|r| r.lp_k.log10())
                    .filter(|v| v.is_finite())
                    .collect(),
            ),
            SourceClass::Psr => (
                Gaussian::fit(
                    vec!["PLEC_Index", "log10_Pivot_Energy", "log10_PLEC_Expfactor"],
                    &rows
                        .iter()
                        .map(|r| vec![r.plec_gamma, r.pivot_mev.log10(), r.plec_a.log10()])
                        .collect::<Vec<_>>(),
                )?,
                Empirical::new(rows.iter().map(|r| r.plec_b))?,
                rows.iter()
                    .map(|r| r.plec_k.log10())
                    .filter(|v| v.is_finite())
                    .collect(),
            ),
        };
        let nk = log10_k.len().max(2) as f64;
        let log10_k_mean = log10_k.iter().sum::<f64>() / nk;
        let log10_k_std = (log10_k
            .iter()
            .map(|v: &f64| (v - log10_k_mean).powi(2))
            .sum::<f64>()
            / (nk - 1.0))
            .sqrt();
        Ok(Self {
            class,
            shape,
            curvature,
            log10_k_mean,
            log10_k_std,
            log10_eflux: rows
                .iter()
                .map(|r| r.eflux_100_erg_cm2_s.log10())
                .filter(|v| v.is_finite())
                .collect(),
            log10_k,
            glat_deg: rows.iter().map(|r| r.glat_deg).collect(),
            n: rows.len(),
        })
    }
}
