//! Catalog figures (Panes et al. 2021, Fig. 1 and Figs. A.1-A.2): the mock population
//! against the 4FGL prior it was drawn from.

use super::{Catalog, PriorSet, SourceClass, Spectrum};
use crate::config::ExperimentConfig;
use crate::error::Result;
use crate::plot::{COLORS, Chart, SeriesKind, edges_for, histogram, save};
use std::path::Path;

fn density(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let h = histogram(values, edges);
    let n: f64 = values.iter().filter(|v| v.is_finite()).count().max(1) as f64;
    h.iter()
        .zip(edges.windows(2))
        .map(|(c, w)| c / (n * (w[1] - w[0])))
        .collect()
}

fn compare(title: &str, x_label: &str, mock: &[f64], real: &[f64], bins: usize) -> Chart {
    let all: Vec<f64> = mock.iter().chain(real).copied().collect();
    let edges = edges_for(&all, bins);
    Chart::new(title, x_label, "probability density")
        .with(
            "4FGL",
            COLORS[0],
            SeriesKind::Steps {
                edges: edges.clone(),
                values: density(real, &edges),
            },
        )
        .with(
            "mock",
            COLORS[1],
            SeriesKind::Steps {
                values: density(mock, &edges),
                edges,
            },
        )
}

/// Writes `dnde_eflux`, `psr_latitude`, `params_agn`, `params_psr` (PNG and SVG) into `dir`.
pub fn draw_all(
    dir: &Path,
    cfg: &ExperimentConfig,
    priors: &PriorSet,
    cat: &Catalog,
) -> Result<()> {
    let g = &cat.grid;
    // Fig. 1 left: dN/dlog10(E100) per class, counts per grid bin.
    let mut panels = Vec::new();
    for (class, hist) in &cat.hist_4fgl {
        let edges: Vec<f64> = (0..=g.n).map(|k| 10f64.powf(g.edge(k))).collect();
        let mock: Vec<f64> = cat
            .sources
            .iter()
            .filter(|s| s.class == *class)
            .map(|s| s.eflux_100_erg_cm2_s.log10())
            .collect();
        let mock_h: Vec<f64> = g
            .histogram(&mock)
            .iter()
            .map(|&c| (c as f64).max(0.5))
            .collect();
        let real_h: Vec<f64> = hist.iter().map(|&c| (c as f64).max(0.5)).collect();
        panels.push(
            Chart::new(
                &format!(
                    "{} dN/dlog E100 ({}, {} mock)",
                    class.as_str(),
                    cfg.catalog.prior.as_str(),
                    mock.len()
                ),
                "Energy_Flux100 [erg cm-2 s-1]",
                &format!("sources per {:.3}-dex bin", g.width),
            )
            .log_x()
            .log_y()
            .with(
                "4FGL",
                COLORS[0],
                SeriesKind::Steps {
                    edges: edges.clone(),
                    values: real_h,
                },
            )
            .with(
                "mock",
                COLORS[1],
                SeriesKind::Steps {
                    edges,
                    values: mock_h,
                },
            ),
        );
    }
    save(&panels, 2, dir, "dnde_eflux")?;

    // Fig. 1 right: PSR latitude with the double-Gaussian density.
    if cat.hist_4fgl.iter().any(|(c, _)| *c == SourceClass::Psr) {
        let p = cfg.catalog.resolved_psr_latitude();
        let real = &priors.get(SourceClass::Psr).glat_deg;
        let mock: Vec<f64> = cat
            .sources
            .iter()
            .filter(|s| s.class == SourceClass::Psr)
            .map(|s| s.glat_deg)
            .collect();
        let edges: Vec<f64> = (0..=60).map(|i| -90.0 + 3.0 * i as f64).collect();
        let xs: Vec<f64> = (0..=720).map(|i| -90.0 + 0.25 * i as f64).collect();
        let norm =
            (2.0 * std::f64::consts::PI).sqrt() * (p.a1 * p.sigma1_deg + p.a2 * p.sigma2_deg);
        let ys: Vec<f64> = xs
            .iter()
            .map(|b| {
                (p.a1 * (-b * b / (2.0 * p.sigma1_deg.powi(2))).exp()
                    + p.a2 * (-b * b / (2.0 * p.sigma2_deg.powi(2))).exp())
                    / norm
            })
            .collect();
        let chart = Chart::new(
            "PSR latitude",
            "Galactic latitude b [deg]",
            "probability density [deg^-1]",
        )
        .with(
            "4FGL PSR",
            COLORS[0],
            SeriesKind::Steps {
                edges: edges.clone(),
                values: density(real, &edges),
            },
        )
        .with(
            "mock PSR",
            COLORS[1],
            SeriesKind::Steps {
                values: density(&mock, &edges),
                edges,
            },
        )
        .with(
            &format!(
                "A1={:.3} s1={:.2} A2={:.4} s2={:.1}",
                p.a1, p.sigma1_deg, p.a2, p.sigma2_deg
            ),
            COLORS[3],
            SeriesKind::Line { xs, ys },
        );
        save(&[chart], 1, dir, "psr_latitude")?;
    }

    // Figs. A.1 / A.2: every spectral parameter against 4FGL.
    for (class, _) in &cat.hist_4fgl {
        let rows: Vec<_> = priors.fgl.class(*class).collect();
        let mock: Vec<&Spectrum> = cat
            .sources
            .iter()
            .filter(|s| s.class == *class)
            .map(|s| &s.spectrum)
            .collect();
        let pick = |f: &dyn Fn(&Spectrum) -> Option<f64>| -> Vec<f64> {
            mock.iter().filter_map(|s| f(s)).collect()
        };
        let log_e100_mock: Vec<f64> = cat
            .sources
            .iter()
            .filter(|s| s.class == *class)
            .map(|s| s.eflux_100_erg_cm2_s.log10())
            .collect();
        let log_e100_real: Vec<f64> = rows.iter().map(|r| r.eflux_100_erg_cm2_s.log10()).collect();
        let charts = match class {
            SourceClass::Agn => vec![
                compare(
                    "LP_Index",
                    "alpha",
                    &pick(&|s| {
                        if let Spectrum::LogParabola { alpha, .. } = s {
                            Some(*alpha)
                        } else {
                            None
                        }
                    }),
                    &rows.iter().map(|r| r.lp_index).collect::<Vec<_>>(),
                    40,
                ),
                compare(
                    "LP_beta",
                    "beta",
                    &pick(&|s| {
                        if let Spectrum::LogParabola { beta, .. } = s {
                            Some(*beta)
                        } else {
                            None
                        }
                    }),
                    &rows.iter().map(|r| r.lp_beta).collect::<Vec<_>>(),
                    40,
                ),
                compare(
                    "Pivot_Energy",
                    "log10(E0 / MeV)",
                    &pick(&|s| Some(s.pivot_mev().log10())),
                    &rows.iter().map(|r| r.pivot_mev.log10()).collect::<Vec<_>>(),
                    40,
                ),
                compare(
                    "LP_Flux_Density",
                    "log10(K / ph cm-2 s-1 MeV-1)",
                    &pick(&|s| Some(s.norm().log10())),
                    &rows.iter().map(|r| r.lp_k.log10()).collect::<Vec<_>>(),
                    40,
                ),
                compare(
                    "Energy_Flux100",
                    "log10(E100 / erg cm-2 s-1)",
                    &log_e100_mock,
                    &log_e100_real,
                    40,
                ),
            ],
            SourceClass::Psr => vec![
                compare(
                    "PLEC_Index",
                    "Gamma",
                    &pick(&|s| {
                        if let Spectrum::PlSuperExpCutoff2 { gamma, .. } = s {
                            Some(*gamma)
                        } else {
                            None
                        }
                    }),
                    &rows.iter().map(|r| r.plec_gamma).collect::<Vec<_>>(),
                    30,
                ),
                compare(
                    "PLEC_Expfactor",
                    "log10(a / MeV^-b)",
                    &pick(&|s| {
                        if let Spectrum::PlSuperExpCutoff2 { a, .. } = s {
                            Some(a.log10())
                        } else {
                            None
                        }
                    }),
                    &rows.iter().map(|r| r.plec_a.log10()).collect::<Vec<_>>(),
                    30,
                ),
                compare(
                    "PLEC_Exp_Index",
                    "b",
                    &pick(&|s| {
                        if let Spectrum::PlSuperExpCutoff2 { b, .. } = s {
                            Some(*b)
                        } else {
                            None
                        }
                    }),
                    &rows.iter().map(|r| r.plec_b).collect::<Vec<_>>(),
                    30,
                ),
                compare(
                    "Pivot_Energy",
                    "log10(E0 / MeV)",
                    &pick(&|s| Some(s.pivot_mev().log10())),
                    &rows.iter().map(|r| r.pivot_mev.log10()).collect::<Vec<_>>(),
                    30,
                ),
                compare(
                    "PLEC_Flux_Density",
                    "log10(K / ph cm-2 s-1 MeV-1)",
                    &pick(&|s| Some(s.norm().log10())),
                    &rows.iter().map(|r| r.plec_k.log10()).collect::<Vec<_>>(),
                    30,
                ),
                compare(
                    "Energy_Flux100",
                    "log10(E100 / erg cm-2 s-1)",
                    &log_e100_mock,
                    &log_e100_real,
                    30,
                ),
            ],
        };
        save(
            &charts,
            3,
            dir,
            &format!("params_{}", class.as_str().to_lowercase()),
        )?;
    }
    Ok(())
}
