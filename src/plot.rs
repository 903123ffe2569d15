//! A small figure layer over plotters: charts are described as data ([`Chart`]) and rendered
//! to PNG and SVG with the same code, one panel or a grid of panels.
//!
//! Log axes are drawn by plotting log10 of the values and labelling ticks with the values
//! themselves (`1e-12`, `3e-13`), so every chart type shares one code path.

use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::element::DashedPathElement;
use plotters::prelude::*;
use std::path::Path;

static FONT: &[u8] = include_bytes!("../data/fonts/DejaVuSans.ttf");

/// Registers the embedded DejaVu Sans as `sans-serif` (idempotent); needed before drawing
/// with plotters directly.
pub fn register_font() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// Categorical palette: matplotlib's tab10 in its order (blue, orange, green, red, purple,
/// brown, pink, grey, olive, cyan), then six dark colours that stay apart from them (black,
/// navy, maroon, teal, magenta, dark olive): 16 colours, no two closer than 60 in RGB, so a
/// figure with up to 16 lines (the nine test skies F0-F2 x B1-B3 among them) never repeats
/// a colour. Use [`color`] to index it cyclically.
pub const COLORS: [RGBColor; 16] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 0),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
    RGBColor(0, 128, 128),
    RGBColor(255, 0, 255),
    RGBColor(128, 128, 0),
];

/// The `i`-th palette colour (cyclic).
pub fn color(i: usize) -> RGBColor {
    COLORS[i % COLORS.len()]
}

/// How a line (or a step histogram) is stroked; beyond the palette's 16 colours, or to
/// encode a second variable (the emission model of a test sky), lines differ by dash.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dash {
    #[default]
    Solid,
    Dashed,
    Dotted,
    LongDash,
}

impl Dash {
    /// The `i`-th style (cyclic): solid, dashed, dotted, long dash.
    pub fn nth(i: usize) -> Dash {
        [Dash::Solid, Dash::Dashed, Dash::Dotted, Dash::LongDash][i % 4]
    }
}

/// What a series draws.
#[derive(Debug, Clone)]
pub enum SeriesKind {
    /// A step histogram: `values.len() + 1` edges.
    Steps { edges: Vec<f64>, values: Vec<f64> },
    /// A polyline.
    Line { xs: Vec<f64>, ys: Vec<f64> },
    /// Markers with optional symmetric y errors.
    Points {
        xs: Vec<f64>,
        ys: Vec<f64>,
        yerr: Option<Vec<f64>>,
    },
    /// A shaded band between `lo` and `hi`.
    Band {
        xs: Vec<f64>,
        lo: Vec<f64>,
        hi: Vec<f64>,
    },
}

/// One labelled series.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub color: RGBColor,
    /// Stroke of `Line` and `Steps` series (ignored by the others).
    pub dash: Dash,
    pub kind: SeriesKind,
}

/// A chart: axes, labels and series.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x_log: bool,
    pub y_log: bool,
    /// Label the x axis at whole numbers only (nights, epochs), half a unit of margin each side.
    pub x_integer: bool,
    pub series: Vec<Series>,
}

impl Chart {
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            ..Default::default()
        }
    }
    pub fn log_x(mut self) -> Self {
        self.x_log = true;
        self
    }
    pub fn log_y(mut self) -> Self {
        self.y_log = true;
        self
    }
    /// Ticks at whole numbers on the x axis (night 1, 2, ...), never 0.1, 0.2, ...
    pub fn integer_x(mut self) -> Self {
        self.x_integer = true;
        self
    }
    pub fn with(self, label: &str, color: RGBColor, kind: SeriesKind) -> Self {
        self.with_dash(label, color, Dash::Solid, kind)
    }
    /// A series stroked with `dash` (lines and steps).
    pub fn with_dash(mut self, label: &str, color: RGBColor, dash: Dash, kind: SeriesKind) -> Self {
        self.series.push(Series {
            label: label.into(),
            color,
            dash,
            kind,
        });
        self
    }
    /// Pairs of labelled series drawn identically (same colour, same dash, same kind of
    /// mark): a reader could not tell them apart. Empty for a well-drawn chart.
    pub fn indistinguishable(&self) -> Vec<(String, String)> {
        let key = |s: &Series| {
            let mark = match s.kind {
                SeriesKind::Steps { .. } | SeriesKind::Line { .. } => 0,
                SeriesKind::Points { .. } => 1,
                SeriesKind::Band { .. } => 2,
            };
            (s.color, s.dash, mark)
        };
        let named: Vec<&Series> = self.series.iter().filter(|s| !s.label.is_empty()).collect();
        let mut out = Vec::new();
        for (i, a) in named.iter().enumerate() {
            for b in &named[i + 1..] {
                if key(a) == key(b) {
                    out.push((a.label.clone(), b.label.clone()));
                }
            }
        }
        out
    }
}

/// Dash and gap lengths (pixels) of a stroke; `None` for a solid line.
pub fn dash_pattern(d: Dash) -> Option<(i32, i32)> {
    match d {
        Dash::Solid => None,
        Dash::Dashed => Some((8, 5)),
        Dash::Dotted => Some((2, 4)),
        Dash::LongDash => Some((10, 4)),
    }
}

fn tx(v: f64, log: bool) -> Option<f64> {
    if log {
        (v > 0.0 && v.is_finite()).then(|| v.log10())
    } else {
        v.is_finite().then_some(v)
    }
}

fn points_of(kind: &SeriesKind) -> Vec<(f64, f64)> {
    match kind {
        SeriesKind::Steps { edges, values } => values
            .iter()
            .enumerate()
            .flat_map(|(i, v)| [(edges[i], *v), (edges[i + 1], *v)])
            .collect(),
        SeriesKind::Line { xs, ys } | SeriesKind::Points { xs, ys, .. } => {
            xs.iter().copied().zip(ys.iter().copied()).collect()
        }
        SeriesKind::Band { xs, lo, hi } => xs
            .iter()
            .zip(lo.iter().zip(hi))
            .flat_map(|(x, (l, h))| [(*x, *l), (*x, *h)])
            .collect(),
    }
}

fn range(vals: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in vals {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return (0.0, 1.0);
    }
    if hi - lo < 1e-12 {
        return (lo - 0.5, hi + 0.5);
    }
    let pad = 0.05 * (hi - lo);
    (lo - pad, hi + pad)
}

fn tick_label(v: f64, log: bool) -> String {
    if log {
        let x = 10f64.powf(v);
        let s = format!("{x:.0e}");
        if s.ends_with("e0") {
            s.trim_end_matches("e0").to_string()
        } else {
            s
        }
    } else if v.abs() >= 1e4 || (v != 0.0 && v.abs() < 1e-2) {
        format!("{v:.1e}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

type DynErr = Box<dyn std::error::Error + Send + Sync>;

fn render<DB: DrawingBackend>(
    chart: &Chart,
    area: &DrawingArea<DB, Shift>,
) -> std::result::Result<(), DynErr>
where
    DB::ErrorType: 'static,
{
    let pts: Vec<(f64, f64)> = chart
        .series
        .iter()
        .flat_map(|s| points_of(&s.kind))
        .filter_map(|(x, y)| Some((tx(x, chart.x_log)?, tx(y, chart.y_log)?)))
        .collect();
    let (mut x0, mut x1) = range(pts.iter().map(|p| p.0));
    if chart.x_integer {
        x0 = x0.round() - 0.5;
        x1 = x1.round() + 0.5;
    }
    let (mut y0, y1) = range(pts.iter().map(|p| p.1));
    if !chart.y_log && y0 > 0.0 && y0 < 0.3 * y1 {
        y0 = 0.0;
    }
    // Non-negative data (fractions, counts) never gets a negative axis, even when flat.
    if !chart.y_log && y0 < 0.0 && pts.iter().all(|p| p.1 >= 0.0) {
        y0 = 0.0;
    }
    let mut ctx = ChartBuilder::on(area)
        .caption(&chart.title, ("sans-serif", 18))
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(x0..x1, y0..y1)?;
    let (xl, yl, xi) = (chart.x_log, chart.y_log, chart.x_integer);
    // at whole numbers only: a label between two nights would name no night
    let x_tick = |v: &f64| match xi {
        true if (v - v.round()).abs() > 1e-6 => String::new(),
        true => format!("{}", v.round() as i64),
        false => tick_label(*v, xl),
    };
    let n_x_labels = match xi {
        true => ((x1 - x0).round() as usize).clamp(2, 10) + 1,
        false => 10,
    };
    ctx.configure_mesh()
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .x_labels(n_x_labels)
        .x_label_formatter(&x_tick)
        .y_label_formatter(&|v| tick_label(*v, yl))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    let t = |x: f64, y: f64| Some((tx(x, xl)?, tx(y, yl)?));
    for s in &chart.series {
        let color = s.color;
        match &s.kind {
            SeriesKind::Steps { .. } | SeriesKind::Line { .. } => {
                let line: Vec<(f64, f64)> = points_of(&s.kind)
                    .into_iter()
                    .filter_map(|(x, y)| t(x, y))
                    .collect();
                let style = color.stroke_width(2);
                let anno = match dash_pattern(s.dash) {
                    None => ctx.draw_series(LineSeries::new(line, style))?,
                    Some((on, off)) => {
                        ctx.draw_series(DashedLineSeries::new(line, on, off, style))?
                    }
                };
                let dash = s.dash;
                anno.label(&s.label).legend(move |(x, y)| {
                    let pts = vec![(x, y), (x + 24, y)];
                    let e: DynElement<DB, _> = match dash_pattern(dash) {
                        None => PathElement::new(pts, style).into_dyn(),
                        Some((on, off)) => DashedPathElement::new(pts, on, off, style).into_dyn(),
                    };
                    e
                });
            }
            SeriesKind::Points { xs, ys, yerr } => {
                let mut err_lines = Vec::new();
                if let Some(e) = yerr {
                    for ((x, y), e) in xs.iter().zip(ys).zip(e) {
                        if let (Some(a), Some(b)) = (t(*x, y - e), t(*x, y + e)) {
                            err_lines.push(PathElement::new(vec![a, b], color.stroke_width(1)));
                        }
                    }
                }
                ctx.draw_series(err_lines)?;
                let p: Vec<(f64, f64)> = xs.iter().zip(ys).filter_map(|(x, y)| t(*x, *y)).collect();
                ctx.draw_series(p.into_iter().map(|c| Circle::new(c, 3, color.filled())))?
                    .label(&s.label)
                    .legend(move |(x, y)| Circle::new((x + 9, y), 3, color.filled()));
            }
            SeriesKind::Band { xs, lo, hi } => {
                let upper: Vec<(f64, f64)> =
                    xs.iter().zip(hi).filter_map(|(x, y)| t(*x, *y)).collect();
                let lower: Vec<(f64, f64)> = xs
                    .iter()
                    .zip(lo)
                    .filter_map(|(x, y)| t(*x, *y))
                    .rev()
                    .collect();
                let poly: Vec<(f64, f64)> = upper.into_iter().chain(lower).collect();
                ctx.draw_series(std::iter::once(Polygon::new(
                    poly,
                    color.mix(0.25).filled(),
                )))?
                .label(&s.label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 4), (x + 18, y + 4)], color.mix(0.25).filled())
                });
            }
        }
    }
    if chart.series.iter().any(|s| !s.label.is_empty()) {
        ctx.configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .label_font(("sans-serif", 13))
            .position(SeriesLabelPosition::UpperRight)
            .draw()?;
    }
    Ok(())
}

fn render_grid<DB: DrawingBackend>(
    charts: &[Chart],
    cols: usize,
    root: DrawingArea<DB, Shift>,
) -> std::result::Result<(), DynErr>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE)?;
    let rows = charts.len().div_ceil(cols);
    let areas = root.split_evenly((rows, cols));
    for (chart, area) in charts.iter().zip(areas.iter()) {
        render(chart, area)?;
    }
    root.present()?;
    Ok(())
}

/// Saves `charts` as a `cols`-wide grid of panels to `dir/stem.png` and `dir/stem.svg`.
pub fn save(charts: &[Chart], cols: usize, dir: &Path, stem: &str) -> Result<()> {
    register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let cols = cols.max(1).min(charts.len().max(1));
    let rows = charts.len().div_ceil(cols).max(1);
    let size = (520 * cols as u32, 400 * rows as u32);
    let png = dir.join(format!("{stem}.png"));
    let svg = dir.join(format!("{stem}.svg"));
    let fail = |p: &Path, e: DynErr| Error::Internal(format!("drawing {}: {e}", p.display()));
    // Render to temporary names, then rename: figures are never half-written.
    let tmp_png = dir.join(format!(".{stem}.{}.png", std::process::id()));
    render_grid(
        charts,
        cols,
        BitMapBackend::new(&tmp_png, size).into_drawing_area(),
    )
    .map_err(|e| fail(&png, e))?;
    std::fs::rename(&tmp_png, &png).map_err(|e| Error::io(&png, e))?;
    let mut buf = String::new();
    render_grid(
        charts,
        cols,
        SVGBackend::with_string(&mut buf, size).into_drawing_area(),
    )
    .map_err(|e| fail(&svg, e))?;
    crate::formats::atomic_write(&svg, buf.as_bytes())
}

/// A histogram of `values` over `edges` (values outside ignored).
pub fn histogram(values: &[f64], edges: &[f64]) -> Vec<f64> {
    let mut h = vec![0.0; edges.len().saturating_sub(1)];
    for &v in values {
        if !v.is_finite() {
            continue;
        }
        let k = edges.partition_point(|e| *e <= v);
        if k >= 1 && k < edges.len() {
            h[k - 1] += 1.0;
        } else if k == edges.len() && v == edges[edges.len() - 1] {
            h[k - 2] += 1.0;
        }
    }
    h
}

/// `n` equal-width edges covering `values` (finite ones).
pub fn edges_for(values: &[f64], n: usize) -> Vec<f64> {
    let (lo, hi) = values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let (lo, hi) = if lo.is_finite() && hi > lo {
        (lo, hi)
    } else {
        (0.0, 1.0)
    };
    (0..=n)
        .map(|i| lo + (hi - lo) * i as f64 / n as f64)
        .collect()
}
