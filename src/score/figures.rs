//! Figures of the score stage: purity and completeness curves with error bands (Panes et
//! al. 2021, Figs. 5-6), ROC curves, reliability diagrams and confusion matrices (PNG + SVG).

use super::classification::ClassReport;
use super::detection::{Curve, DetectionReport};
use crate::error::{Error, Result};
use crate::plot::{COLORS, Chart, SeriesKind, save};
use plotters::prelude::*;
use std::path::Path;

fn axis_label(axis: &str) -> &'static str {
    match axis {
        "S1" => "S1 = flux 1-100 GeV [ph cm-2 s-1]",
        "S10" => "S10 = flux 10-100 GeV [ph cm-2 s-1]",
        "SNR_c" => "SNR_c",
        "SBR_c" => "SBR_c",
        _ => "own S1 estimate [ph cm-2 s-1]",
    }
}

fn add_curve(chart: Chart, c: &Curve, color: RGBColor, label: &str) -> Chart {
    let xs: Vec<f64> = c.bins.iter().map(|b| b.centre).collect();
    let lo: Vec<f64> = c
        .bins
        .iter()
        .map(|b| b.p.wilson_lo.unwrap_or(0.0))
        .collect();
    let hi: Vec<f64> = c
        .bins
        .iter()
        .map(|b| b.p.wilson_hi.unwrap_or(1.0))
        .collect();
    let ys: Vec<f64> = c.bins.iter().map(|b| b.p.value.unwrap_or(0.0)).collect();
    let se: Vec<f64> = c.bins.iter().map(|b| b.p.se.unwrap_or(0.0)).collect();
    chart
        .with(
            "",
            color,
            SeriesKind::Band {
                xs: xs.clone(),
                lo,
                hi,
            },
        )
        .with(
            label,
            color,
            SeriesKind::Points {
                xs,
                ys,
                yerr: Some(se),
            },
        )
}

/// Purity and completeness against each axis, one figure per axis, regions as colours
/// (band: Wilson interval; bars: sqrt(p(1-p)/N)).
pub fn detection_figures(r: &DetectionReport, dir: &Path) -> Result<()> {
    let mut axes: Vec<&str> = r.curves.iter().map(|c| c.axis.as_str()).collect();
    axes.dedup();
    for axis in axes {
        let mut charts = Vec::new();
        for metric in ["purity", "completeness"] {
            let mut ch = Chart::new(
                &format!("{metric} vs {axis} ({} mode)", r.mode),
                axis_label(axis),
                metric,
            )
            .log_x();
            for (i, region) in ["all", "high_lat", "low_lat"].iter().enumerate() {
                if let Some(c) = r
                    .curves
                    .iter()
                    .find(|c| c.axis == axis && c.metric == metric && c.region == *region)
                    && !c.bins.is_empty()
                {
                    let label = match *region {
                        "all" => "all sky",
                        "high_lat" => "|b| > cut",
                        _ => "|b| < cut",
                    };
                    ch = add_curve(ch, c, COLORS[i], label);
                }
            }
            let all_sky = r.s90.iter().find(|s| s.axis == axis && s.region == "all");
            if let Some(x) = all_sky
                .and_then(|s| match metric {
                    "purity" => s.purity.as_ref(),
                    _ => s.completeness.as_ref(),
                })
                .and_then(|c| c.value)
            {
                ch = ch.with(
                    &format!("{metric} crossing (all sky)"),
                    COLORS[4],
                    SeriesKind::Line {
                        xs: vec![x, x],
                        ys: vec![0.0, 1.0],
                    },
                );
            }
            if let Some(s) = all_sky.and_then(|s| s.value) {
                ch = ch.with(
                    "S90 (all sky)",
                    COLORS[3],
                    SeriesKind::Line {
                        xs: vec![s, s],
                        ys: vec![0.0, 1.0],
                    },
                );
            }
            charts.push(ch);
        }
        save(&charts, 2, dir, &format!("purity_completeness_{axis}"))?;
    }
    if let Some(c) = &r.fp_by_own_flux
        && !c.bins.is_empty()
    {
        let ch = add_curve(
            Chart::new("purity vs own flux estimate", axis_label("own"), "purity").log_x(),
            c,
            COLORS[0],
            "all sky",
        );
        save(&[ch], 1, dir, "purity_own_flux")?;
    }
    Ok(())
}

/// ROC curves, reliability diagrams and the confusion matrices.
pub fn classification_figures(r: &ClassReport, dir: &Path) -> Result<()> {
    let mut roc = Chart::new(
        "ROC (one vs rest)",
        "false positive rate",
        "true positive rate",
    );
    for (i, c) in r.per_class.iter().enumerate() {
        if let Some(curve) = &c.roc {
            let label = match c.roc_auc.value {
                Some(a) => format!("{} (AUC {a:.3})", c.class),
                None => c.class.clone(),
            };
            roc = roc.with(
                &label,
                COLORS[i % COLORS.len()],
                SeriesKind::Line {
                    xs: curve.fpr.clone(),
                    ys: curve.tpr.clone(),
                },
            );
        }
    }
    roc = roc.with(
        "chance",
        COLORS[5],
        SeriesKind::Line {
            xs: vec![0.0, 1.0],
            ys: vec![0.0, 1.0],
        },
    );
    let mut rel = Chart::new("reliability (top label)", "mean confidence", "accuracy");
    for (i, cal) in [&r.ece_top_label_equal_width, &r.ece_top_label_equal_mass]
        .iter()
        .enumerate()
    {
        let label = format!(
            "{} (ECE {:.3})",
            if i == 0 { "equal width" } else { "equal mass" },
            cal.ece.value.unwrap_or(f64::NAN)
        );
        rel = rel.with(
            &label,
            COLORS[i],
            SeriesKind::Points {
                xs: cal.bins.iter().map(|b| b.mean_predicted).collect(),
                ys: cal.bins.iter().map(|b| b.observed).collect(),
                yerr: None,
            },
        );
    }
    rel = rel.with(
        "perfect",
        COLORS[5],
        SeriesKind::Line {
            xs: vec![0.0, 1.0],
            ys: vec![0.0, 1.0],
        },
    );
    save(&[roc, rel], 2, dir, "roc_reliability")?;
    confusion_figure(r, dir, "confusion_matrix")
}

fn draw_confusion<DB: DrawingBackend>(
    r: &ClassReport,
    root: DrawingArea<DB, plotters::coord::Shift>,
) -> std::result::Result<(), Box<dyn std::error::Error + Send + Sync>>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let k = r.classes.len();
    let panels = root.split_evenly((1, 2));
    for (pi, area) in panels.iter().enumerate() {
        let title = if pi == 0 {
            "confusion (counts)"
        } else {
            "confusion (normalised by true class)"
        };
        let mut ctx = ChartBuilder::on(area)
            .caption(title, ("sans-serif", 18))
            .margin(15)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..k as f64, 0f64..k as f64)?;
        let names = r.classes.clone();
        let label = move |v: f64, flip: bool| {
            let i = v.floor() as usize;
            if (v - v.floor() - 0.5).abs() < 1e-9 && i < k {
                // rows are drawn top-down: true class t sits at y = k - 1 - t
                names[if flip { k - 1 - i } else { i }].clone()
            } else {
                String::new()
            }
        };
        let xfmt = |v: &f64| label(*v, false);
        let yfmt = |v: &f64| label(*v, true);
        ctx.configure_mesh()
            .disable_mesh()
            .x_desc("predicted")
            .y_desc("true")
            .x_labels(2 * k + 1)
            .y_labels(2 * k + 1)
            .x_label_formatter(&xfmt)
            .y_label_formatter(&yfmt)
            .label_style(("sans-serif", 13))
            .draw()?;
        for t in 0..k {
            for p in 0..k {
                let count = r.confusion[t][p];
                let frac = r.confusion_normalised[t].as_ref().map(|row| row[p]);
                let shade = frac.unwrap_or(0.0);
                let y = (k - 1 - t) as f64;
                let color = RGBColor(
                    (255.0 - 224.0 * shade) as u8,
                    (255.0 - 136.0 * shade) as u8,
                    (255.0 - 75.0 * shade) as u8,
                );
                ctx.draw_series(std::iter::once(Rectangle::new(
                    [(p as f64, y), (p as f64 + 1.0, y + 1.0)],
                    color.filled(),
                )))?;
                let text = if pi == 0 {
                    count.to_string()
                } else {
                    frac.map(|f| format!("{f:.3}")).unwrap_or("-".into())
                };
                let tc = if shade > 0.6 { WHITE } else { BLACK };
                ctx.draw_series(std::iter::once(Text::new(
                    text,
                    (p as f64 + 0.4, y + 0.5),
                    ("sans-serif", 16).into_font().color(&tc),
                )))?;
            }
        }
    }
    root.present()?;
    Ok(())
}

/// The confusion matrix heat map (counts and row-normalised), PNG and SVG.
pub fn confusion_figure(r: &ClassReport, dir: &Path, stem: &str) -> Result<()> {
    crate::plot::register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let size = (1000u32, 460u32);
    let png = dir.join(format!("{stem}.png"));
    let tmp = dir.join(format!(".{stem}.{}.png", std::process::id()));
    draw_confusion(r, BitMapBackend::new(&tmp, size).into_drawing_area())
        .map_err(|e| Error::Internal(format!("drawing {}: {e}", png.display())))?;
    std::fs::rename(&tmp, &png).map_err(|e| Error::io(&png, e))?;
    let mut buf = String::new();
    draw_confusion(
        r,
        SVGBackend::with_string(&mut buf, size).into_drawing_area(),
    )
    .map_err(|e| Error::Internal(format!("drawing svg: {e}")))?;
    crate::formats::atomic_write(&dir.join(format!("{stem}.svg")), buf.as_bytes())
}
