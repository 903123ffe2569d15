//! Purity and completeness in the layout of Panes et al. 2021, Figs. 5 and 6, one figure set
//! per test sky with every detector of that sky on the same axes.
//!
//! For each test sky (preset x emission model) two figures, purity on the left and
//! completeness on the right as in the paper:
//! * `<preset>-<iem>_fig5_S1`: against S1, the top row at |b| > cut, the bottom row at
//!   |b| < cut (`score.latitude_cut_deg`, 20 deg by default);
//! * `<preset>-<iem>_fig6_SNR_SBR`: against SNR_c (top) and SBR_c (bottom), all latitudes.
//!
//! Every panel: y from 0 to 1, a dashed line at 0.9, one line per detector (its points at
//! the bin centres of the score stage's `curves.csv`, error bars its Wilson interval), the
//! S90 of each detector as a tick on the 0.9 line (where reached; `s90` of the stage's
//! summary, the same axis and region), log x axes ticked at powers of ten, and one legend
//! under the panels. A detector has the same colour in every figure (its index among the
//! report's detectors, sorted, as in the `s90_by_sky` figure).
//!
//! On the F0-B1 sky the published UNEK curves are drawn too, computed from the published
//! evaluation file (`unek_evaluation_test.csv.gz`) with the bins and merging rules of the
//! authors' notebook ([`crate::score::paper`]), errors the Wilson interval of the same counts,
//! each point at the geometric centre of its (merged) bin (the notebook puts it at the left
//! edge of the group's last bin). That sky is the paper's own realisation, not ours: the
//! curves compare detectors, not detections. Their S90 marks are the paper's hand-read values
//! (SNR_c 3.0, SBR_c 1.1; the paper gives S1 for the whole sky only, so the banded S1
//! panels carry none).

use super::Entry;
use crate::error::{Error, Result};
use crate::plot::{Dash, color, dash_pattern, register_font};
use crate::score::config::ScoreConfig;
use crate::score::paper::{self, EvalRow, LatCut};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The label of the published UNEK curves.
pub const PUBLISHED_LABEL: &str = "published UNEK (Panes+21, its own sky)";

/// One point of a curve: where it is drawn, its counts (`k` of `n`: TP of TP+FP for purity,
/// TP of TP+FN for completeness), the value `k / n` and its Wilson interval.
#[derive(Debug, Clone, PartialEq)]
pub struct CurvePoint {
    pub x: f64,
    pub k: usize,
    pub n: usize,
    pub value: f64,
    pub lo: f64,
    pub hi: f64,
}

/// How the points of a line are marked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marker {
    Disc,
    OpenSquare,
}

/// One line of a panel (or a legend entry).
#[derive(Debug, Clone)]
pub struct Line {
    pub label: String,
    pub color: RGBColor,
    pub dash: Dash,
    pub marker: Marker,
    pub points: Vec<CurvePoint>,
    /// S90 on this panel's axis and region, when reached.
    pub s90: Option<f64>,
}

/// One panel: a metric (`purity`, `completeness`) against an axis in a region.
#[derive(Debug, Clone)]
pub struct Panel {
    pub title: String,
    pub axis: String,
    pub region: String,
    pub metric: String,
    pub lines: Vec<Line>,
}

/// One figure: panels two per row (purity, completeness), and the legend under them.
#[derive(Debug, Clone)]
pub struct Figure {
    pub stem: String,
    pub title: String,
    pub caption: String,
    pub panels: Vec<Panel>,
}

impl Figure {
    /// The legend: one entry per distinct line label, in first-seen order.
    pub fn legend(&self) -> Vec<&Line> {
        let mut seen = BTreeSet::new();
        self.panels
            .iter()
            .flat_map(|p| &p.lines)
            .filter(|l| seen.insert(l.label.clone()))
            .collect()
    }
}

fn grid(e: &Entry) -> (String, String, String) {
    let g = &e.manifest.summary["grid"];
    let f = |k: &str| g[k].as_str().unwrap_or("?").to_string();
    (f("preset"), f("iem"), f("detector"))
}

/// The `[score]` section a score stage ran with (the default when its manifest has none).
pub fn score_config(e: &Entry) -> ScoreConfig {
    serde_json::from_value(e.manifest.config["score"].clone()).unwrap_or_default()
}

/// The colour of a detector: its index among `detectors` (sorted), as in every other figure
/// of the report.
pub fn detector_color(detectors: &[String], d: &str) -> RGBColor {
    color(
        detectors
            .iter()
            .position(|x| x == d)
            .unwrap_or(detectors.len()),
    )
}

/// The colour of the published curves: black (the palette's eleventh), or the first colour
/// after the detectors' when there are more than ten.
pub fn published_color(detectors: &[String]) -> RGBColor {
    color(detectors.len().max(10))
}

/// The points of one curve of a score stage's `curves.csv` (`metric`, `axis`, `region`),
/// bins with no items left out.
pub fn read_points(dir: &Path, metric: &str, axis: &str, region: &str) -> Vec<CurvePoint> {
    let Ok(mut r) = csv::Reader::from_path(dir.join("curves.csv")) else {
        return Vec::new();
    };
    let Ok(h) = r.headers().cloned() else {
        return Vec::new();
    };
    let col = |n: &str| h.iter().position(|x| x == n);
    let (Some(cm), Some(ca), Some(cr), Some(cx), Some(ck), Some(cn), Some(cv), Some(cl), Some(ch)) = (
        col("metric"),
        col("axis"),
        col("region"),
        col("bin_centre"),
        col("k"),
        col("n"),
        col("value"),
        col("wilson_lo"),
        col("wilson_hi"),
    ) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for rec in r.records().flatten() {
        if rec.get(cm) != Some(metric) || rec.get(ca) != Some(axis) || rec.get(cr) != Some(region) {
            continue;
        }
        let f = |c: usize| rec.get(c).and_then(|v| v.parse::<f64>().ok());
        let u = |c: usize| rec.get(c).and_then(|v| v.parse::<usize>().ok());
        if let (Some(x), Some(k), Some(n), Some(value)) = (f(cx), u(ck), u(cn), f(cv))
            && n > 0
            && x > 0.0
        {
            out.push(CurvePoint {
                x,
                k,
                n,
                value,
                lo: f(cl).unwrap_or(value),
                hi: f(ch).unwrap_or(value),
            });
        }
    }
    out
}

/// The published curve of `metric` against `axis` in `cut` from evaluation rows, with the
/// notebook's bins and merging ([`paper::TABLES`]: S1 in `logspace(-12, -7, 20)`, SNR_c and
/// SBR_c in `logspace(-2, 2, 20)` merged to at least 2 TP), errors the Wilson interval at
/// `z`, each point at the geometric centre of its group of bins; groups with an empty
/// denominator are left out. `None` for an axis the notebook has no table of.
pub fn published_points(
    rows: &[EvalRow],
    metric: &str,
    axis: &str,
    cut: LatCut,
    z: f64,
) -> Option<Vec<CurvePoint>> {
    let mut spec = *paper::TABLES.iter().find(|t| t.axis == axis)?;
    spec.cut = cut;
    let t = paper::table(rows, &spec);
    Some(
        t.points
            .iter()
            .filter_map(|p| {
                let (k, n) = match metric {
                    "purity" => (p.tp, p.tp + p.fp),
                    _ => (p.tp, p.tp + p.fn_),
                };
                let (lo, hi) = crate::score::detection::wilson(k, n, z)?;
                Some(CurvePoint {
                    x: (p.lo * p.hi).sqrt(),
                    k,
                    n,
                    value: k as f64 / n as f64,
                    lo,
                    hi,
                })
            })
            .collect(),
    )
}

/// The paper's hand-read S90 of UNEK on F0-B1 on `axis` (the larger of its purity and
/// completeness crossings), for the panels it applies to: SNR_c and SBR_c (all latitudes).
fn published_s90(axis: &str, region: &str) -> Option<f64> {
    if region != "all" {
        return None;
    }
    super::published::UNEK_F0B1_S90_HAND_DRAWN
        .iter()
        .find(|(a, _, _)| *a == axis)
        .map(|(_, p, c)| p.max(*c))
}

fn axis_label(axis: &str) -> &'static str {
    match axis {
        "S1" => "S1 = photon flux 1-100 GeV (ph cm⁻² s⁻¹)",
        "SNR_c" => "SNR_c (signal-to-noise at the central pixel)",
        "SBR_c" => "SBR_c (signal-to-background at the central pixel)",
        _ => "value",
    }
}

/// The figures of every test sky of `scores` (score stage entries), sorted by preset and
/// emission model; `published` (the published UNEK evaluation rows) is drawn on F0-B1.
pub fn sky_figures(scores: &[&Entry], published: Option<&[EvalRow]>) -> Vec<Figure> {
    let detectors: Vec<String> = scores
        .iter()
        .map(|e| grid(e).2)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut skies: BTreeMap<(String, String), Vec<&Entry>> = BTreeMap::new();
    for e in scores {
        let (p, i, _) = grid(e);
        skies.entry((p, i)).or_default().push(e);
    }
    let mut out = Vec::new();
    for ((preset, iem), mut es) in skies {
        es.sort_by_key(|e| grid(e).2);
        let cfg = score_config(es[0]);
        let cut = cfg.latitude_cut_deg;
        let own_sky = preset == "F0" && iem == "B1";
        let rows_of = |specs: [(&str, &str, String); 2]| -> Vec<Panel> {
            let mut panels = Vec::new();
            for (axis, region, where_) in specs {
                for metric in ["purity", "completeness"] {
                    let mut lines = Vec::new();
                    for e in &es {
                        let d = grid(e).2;
                        let s90 =
                            e.manifest.summary["s90"][format!("{axis}_{region}")]["value"].as_f64();
                        lines.push(Line {
                            label: d.clone(),
                            color: detector_color(&detectors, &d),
                            dash: Dash::Solid,
                            marker: Marker::Disc,
                            points: read_points(&e.dir, metric, axis, region),
                            s90,
                        });
                    }
                    if own_sky && let Some(rows) = published {
                        let lat = match region {
                            "high_lat" => LatCut::Above(cut),
                            "low_lat" => LatCut::Below(cut),
                            _ => LatCut::None,
                        };
                        if let Some(points) =
                            published_points(rows, metric, axis, lat, cfg.wilson_z)
                        {
                            lines.push(Line {
                                label: PUBLISHED_LABEL.into(),
                                color: published_color(&detectors),
                                dash: Dash::Dashed,
                                marker: Marker::OpenSquare,
                                points,
                                s90: published_s90(axis, region),
                            });
                        }
                    }
                    panels.push(Panel {
                        title: format!("{metric} vs {axis}{where_}"),
                        axis: axis.into(),
                        region: region.into(),
                        metric: metric.into(),
                        lines,
                    });
                }
            }
            panels
        };
        let sky = format!("{preset}-{iem}");
        let f5 = rows_of([
            ("S1", "high_lat", format!(", |b| > {cut}°")),
            ("S1", "low_lat", format!(", |b| < {cut}°")),
        ]);
        out.push(Figure {
            stem: format!("{sky}_fig5_S1"),
            title: format!("{sky}: purity and completeness vs S1 (layout of Panes et al. 2021, Fig. 5)"),
            caption: format!(
                "{sky}: purity and completeness vs S1 at |b| > {cut}° and |b| < {cut}°, every detector{}",
                if own_sky && published.is_some() { ", and the published UNEK curves (Panes et al. 2021, their own F0-B1 sky)" } else { "" }
            ),
            panels: f5,
        });
        let f6 = rows_of([
            ("SNR_c", "all", ", all latitudes".to_string()),
            ("SBR_c", "all", ", all latitudes".to_string()),
        ]);
        out.push(Figure {
            stem: format!("{sky}_fig6_SNR_SBR"),
            title: format!(
                "{sky}: purity and completeness vs SNR_c and SBR_c (layout of Panes et al. 2021, Fig. 6)"
            ),
            caption: format!(
                "{sky}: purity and completeness vs SNR_c and SBR_c, every detector{}",
                if own_sky && published.is_some() { ", and the published UNEK curves" } else { "" }
            ),
            panels: f6,
        });
    }
    out
}

/// `10ⁿ` with the exponent in Unicode superscripts (`10⁻¹⁰`, `10⁰`, `10²`).
pub fn pow10_label(n: i32) -> String {
    let sup = |c: char| match c {
        '-' => '⁻',
        '0' => '⁰',
        '1' => '¹',
        '2' => '²',
        '3' => '³',
        '4' => '⁴',
        '5' => '⁵',
        '6' => '⁶',
        '7' => '⁷',
        '8' => '⁸',
        _ => '⁹',
    };
    format!("10{}", n.to_string().chars().map(sup).collect::<String>())
}

/// The decades `(lo, hi)` (log10, whole numbers) an x axis spans: every point and S90 mark
/// of the panels, at least one decade.
fn decades(panels: &[&Panel]) -> (i32, i32) {
    let xs: Vec<f64> = panels
        .iter()
        .flat_map(|p| &p.lines)
        .flat_map(|l| l.points.iter().map(|q| q.x).chain(l.s90))
        .filter(|x| *x > 0.0 && x.is_finite())
        .map(f64::log10)
        .collect();
    if xs.is_empty() {
        return match panels.first().map(|p| p.axis.as_str()) {
            Some("S1") => (-12, -7),
            _ => (-2, 2),
        };
    }
    let lo = xs.iter().cloned().fold(f64::INFINITY, f64::min);
    let hi = xs.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let (a, b) = ((lo - 0.1).floor() as i32, (hi + 0.1).ceil() as i32);
    (a, b.max(a + 1))
}

type DynErr = Box<dyn std::error::Error + Send + Sync>;

const GREY: RGBColor = RGBColor(110, 110, 110);
const FONT: &str = "sans-serif";

fn draw_panel<DB: DrawingBackend>(
    p: &Panel,
    area: &DrawingArea<DB, Shift>,
    (d0, d1): (i32, i32),
) -> std::result::Result<(), DynErr>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = (d0 as f64, d1 as f64);
    let step = ((d1 - d0) as f64 / 8.0).ceil().max(1.0) as i32;
    let major: Vec<f64> = (d0..=d1)
        .filter(|k| (k - d0) % step == 0)
        .map(|k| k as f64)
        .collect();
    let minor: Vec<f64> = (d0..d1)
        .flat_map(|k| (2..=9).map(move |m| k as f64 + (m as f64).log10()))
        .collect();
    let mut ctx = ChartBuilder::on(area)
        .caption(&p.title, (FONT, 17))
        .margin(8)
        .margin_right(18)
        .x_label_area_size(46)
        .y_label_area_size(54)
        .build_cartesian_2d(x0..x1, 0f64..1f64)?;
    // x ticks are drawn by hand at the powers of ten (plotters would put them at round
    // values of log10); y by plotters at 0, 0.2, ... 1
    ctx.configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_labels(6)
        .x_desc(axis_label(&p.axis))
        .y_desc(&p.metric)
        .y_label_formatter(&|v| format!("{v:.1}"))
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 14))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(BLACK.mix(0.0))
        .draw()?;
    for &x in &minor {
        ctx.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, 1.0)],
            BLACK.mix(0.05).stroke_width(1),
        )))?;
        ctx.draw_series(std::iter::once(
            EmptyElement::at((x, 0.0))
                + PathElement::new(vec![(0, 0), (0, 3)], BLACK.stroke_width(1)),
        ))?;
    }
    let tick_font =
        (FONT, 14)
            .into_font()
            .color(&BLACK)
            .pos(plotters::style::text_anchor::Pos::new(
                plotters::style::text_anchor::HPos::Center,
                plotters::style::text_anchor::VPos::Top,
            ));
    for &x in &major {
        ctx.draw_series(std::iter::once(PathElement::new(
            vec![(x, 0.0), (x, 1.0)],
            BLACK.mix(0.12).stroke_width(1),
        )))?;
        ctx.draw_series(std::iter::once(
            EmptyElement::at((x, 0.0))
                + PathElement::new(vec![(0, 0), (0, 6)], BLACK.stroke_width(1))
                + Text::new(pow10_label(x.round() as i32), (0, 9), tick_font.clone()),
        ))?;
    }
    ctx.draw_series(std::iter::once(DashedPathElement::new(
        vec![(x0, 0.9), (x1, 0.9)],
        6,
        4,
        GREY.stroke_width(1),
    )))?;
    for l in &p.lines {
        let c = l.color;
        let pts: Vec<(f64, f64)> = l.points.iter().map(|q| (q.x.log10(), q.value)).collect();
        let style = c.stroke_width(2);
        match dash_pattern(l.dash) {
            None => {
                ctx.draw_series(std::iter::once(PathElement::new(pts.clone(), style)))?;
            }
            Some((on, off)) => {
                ctx.draw_series(std::iter::once(DashedPathElement::new(
                    pts.clone(),
                    on,
                    off,
                    style,
                )))?;
            }
        }
        for q in &l.points {
            let x = q.x.log10();
            let bar = c.stroke_width(1);
            ctx.draw_series(std::iter::once(PathElement::new(
                vec![(x, q.lo), (x, q.hi)],
                bar,
            )))?;
            for y in [q.lo, q.hi] {
                ctx.draw_series(std::iter::once(
                    EmptyElement::at((x, y)) + PathElement::new(vec![(-3, 0), (3, 0)], bar),
                ))?;
            }
        }
        match l.marker {
            Marker::Disc => {
                ctx.draw_series(pts.iter().map(|&q| Circle::new(q, 3, c.filled())))?;
            }
            Marker::OpenSquare => {
                ctx.draw_series(pts.iter().map(|&q| {
                    EmptyElement::at(q) + Rectangle::new([(-4, -4), (4, 4)], c.stroke_width(2))
                }))?;
            }
        }
        if let Some(s) = l.s90.filter(|s| *s > 0.0) {
            let x = s.log10();
            ctx.draw_series(std::iter::once(
                EmptyElement::at((x, 0.9))
                    + PathElement::new(vec![(0, -10), (0, 10)], c.stroke_width(3))
                    + Polygon::new(vec![(-6, -22), (6, -22), (0, -11)], c.filled()),
            ))?;
        }
    }
    Ok(())
}

/// A legend entry's sample (a line with its marker, or a special mark) and label.
enum Sample<'a> {
    Line(&'a Line),
    Level,
    S90,
}

fn legend_entries(fig: &Figure) -> Vec<(Sample<'_>, String)> {
    let mut v: Vec<(Sample, String)> = fig
        .legend()
        .into_iter()
        .map(|l| (Sample::Line(l), l.label.clone()))
        .collect();
    v.push((Sample::Level, "0.9 level".into()));
    v.push((
        Sample::S90,
        "S90 of the line of that colour (where reached)".into(),
    ));
    v
}

const LEGEND_ROW: i32 = 26;
const SAMPLE_W: i32 = 34;

/// Lays the legend out in rows across `width`: (x, row) of each entry.
fn legend_layout(widths: &[i32], width: i32) -> Vec<(i32, i32)> {
    let (mut x, mut row) = (16, 0);
    widths
        .iter()
        .map(|w| {
            let need = SAMPLE_W + 8 + w + 24;
            if x > 16 && x + need > width - 8 {
                x = 16;
                row += 1;
            }
            let at = (x, row);
            x += need;
            at
        })
        .collect()
}

fn text_width(s: &str) -> i32 {
    // DejaVu Sans at 14 px: about 8 px a character (wide enough never to overlap)
    (s.chars().count() as i32) * 8
}

fn legend_rows(fig: &Figure, width: i32) -> i32 {
    let widths: Vec<i32> = legend_entries(fig)
        .iter()
        .map(|e| text_width(&e.1))
        .collect();
    legend_layout(&widths, width)
        .last()
        .map(|p| p.1 + 1)
        .unwrap_or(0)
}

fn draw_legend<DB: DrawingBackend>(
    fig: &Figure,
    area: &DrawingArea<DB, Shift>,
) -> std::result::Result<(), DynErr>
where
    DB::ErrorType: 'static,
{
    let width = area.dim_in_pixel().0 as i32;
    let entries = legend_entries(fig);
    let widths: Vec<i32> = entries.iter().map(|e| text_width(&e.1)).collect();
    let rows = legend_layout(&widths, width)
        .last()
        .map(|p| p.1 + 1)
        .unwrap_or(0);
    area.draw(&Rectangle::new(
        [(8, 4), (width - 8, 10 + rows * LEGEND_ROW)],
        BLACK.mix(0.3).stroke_width(1),
    ))?;
    for ((sample, label), (x, row)) in entries.iter().zip(legend_layout(&widths, width)) {
        let y = 7 + row * LEGEND_ROW + LEGEND_ROW / 2;
        let mid = (x + SAMPLE_W / 2, y);
        match sample {
            Sample::Line(l) => {
                let pts = vec![(x, y), (x + SAMPLE_W, y)];
                let style = l.color.stroke_width(2);
                match dash_pattern(l.dash) {
                    None => area.draw(&PathElement::new(pts, style))?,
                    Some((on, off)) => area.draw(&DashedPathElement::new(pts, on, off, style))?,
                }
                match l.marker {
                    Marker::Disc => area.draw(&Circle::new(mid, 3, l.color.filled()))?,
                    Marker::OpenSquare => area.draw(&Rectangle::new(
                        [(mid.0 - 4, y - 4), (mid.0 + 4, y + 4)],
                        l.color.stroke_width(2),
                    ))?,
                }
            }
            Sample::Level => area.draw(&DashedPathElement::new(
                vec![(x, y), (x + SAMPLE_W, y)],
                6,
                4,
                GREY.stroke_width(1),
            ))?,
            Sample::S90 => {
                area.draw(&PathElement::new(
                    vec![(mid.0, y - 6), (mid.0, y + 9)],
                    GREY.stroke_width(3),
                ))?;
                area.draw(&Polygon::new(
                    vec![(mid.0 - 5, y - 11), (mid.0 + 5, y - 11), (mid.0, y - 3)],
                    GREY.filled(),
                ))?;
            }
        }
        area.draw(&Text::new(
            label.clone(),
            (x + SAMPLE_W + 8, y - 8),
            (FONT, 14).into_font(),
        ))?;
    }
    Ok(())
}

const PANEL: (u32, u32) = (560, 400);
const TITLE_H: u32 = 34;

fn size(fig: &Figure) -> (u32, u32) {
    let rows = fig.panels.len().div_ceil(2).max(1) as u32;
    let w = 2 * PANEL.0;
    let legend = (legend_rows(fig, w as i32) * LEGEND_ROW + 18) as u32;
    (w, TITLE_H + rows * PANEL.1 + legend)
}

fn draw<DB: DrawingBackend>(
    fig: &Figure,
    root: DrawingArea<DB, Shift>,
) -> std::result::Result<(), DynErr>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let rows = fig.panels.len().div_ceil(2).max(1);
    let (top, rest) = root.split_vertically(TITLE_H);
    top.draw(&Text::new(
        fig.title.clone(),
        (16, 8),
        (FONT, 19).into_font(),
    ))?;
    let (body, legend) = rest.split_vertically(rows as u32 * PANEL.1);
    let areas = body.split_evenly((rows, 2));
    for (r, pair) in fig.panels.chunks(2).enumerate() {
        let refs: Vec<&Panel> = pair.iter().collect();
        let range = decades(&refs);
        for (c, p) in pair.iter().enumerate() {
            draw_panel(p, &areas[2 * r + c], range)?;
        }
    }
    draw_legend(fig, &legend)?;
    root.present()?;
    Ok(())
}

/// Draws `fig` to `dir/<stem>.png` and `dir/<stem>.svg`.
pub fn save(fig: &Figure, dir: &Path) -> Result<()> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let sz = size(fig);
    let png = dir.join(format!("{}.png", fig.stem));
    let tmp = dir.join(format!(".{}.{}.png", fig.stem, std::process::id()));
    draw(fig, BitMapBackend::new(&tmp, sz).into_drawing_area())
        .map_err(|e| Error::Internal(format!("drawing {}: {e}", png.display())))?;
    std::fs::rename(&tmp, &png).map_err(|e| Error::io(&png, e))?;
    let mut buf = String::new();
    draw(
        fig,
        SVGBackend::with_string(&mut buf, sz).into_drawing_area(),
    )
    .map_err(|e| Error::Internal(format!("drawing {}.svg: {e}", fig.stem)))?;
    crate::formats::atomic_write(&dir.join(format!("{}.svg", fig.stem)), buf.as_bytes())
}

/// Reads the published UNEK evaluation, `None` (with a warning) when it is absent or
/// unreadable.
pub fn published_rows(path: &Path) -> Option<Vec<EvalRow>> {
    if !path.exists() {
        log::info!(
            "published UNEK curves left out: {} not found",
            path.display()
        );
        return None;
    }
    match paper::read_evaluation(path) {
        Ok(r) => Some(r),
        Err(e) => {
            log::warn!("published UNEK curves left out: {e}");
            None
        }
    }
}

/// Draws every sky's figures into `dir`; returns (caption, relative PNG path) of each.
/// `published` is the published UNEK evaluation file (drawn on F0-B1 when present).
pub fn figures(
    scores: &[&Entry],
    published: Option<&Path>,
    dir: &Path,
    rel: &str,
) -> Result<Vec<(String, String)>> {
    let rows = published.and_then(published_rows);
    let mut out = Vec::new();
    for f in sky_figures(scores, rows.as_deref()) {
        if f.panels
            .iter()
            .all(|p| p.lines.iter().all(|l| l.points.is_empty()))
        {
            continue;
        }
        save(&f, dir)?;
        out.push((f.caption.clone(), format!("{rel}/{}.png", f.stem)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn powers_of_ten_in_superscripts() {
        assert_eq!(pow10_label(-10), "10⁻¹⁰");
        assert_eq!(pow10_label(2), "10²");
        assert_eq!(pow10_label(0), "10⁰");
        assert_eq!(pow10_label(1), "10¹");
    }

    #[test]
    fn legend_rows_wrap_and_never_overlap() {
        let at = legend_layout(&[200, 200, 200, 200, 200], 1120);
        for w in at.windows(2) {
            if w[0].1 == w[1].1 {
                assert!(w[1].0 >= w[0].0 + SAMPLE_W + 8 + 200);
            }
        }
        assert!(at.last().unwrap().1 >= 1);
    }
}
