//! Raster figures of the sky stage: Mollweide all-sky maps (Panes et al. 2021, Fig. 2) and
//! grids of patches, one column per energy bin (Fig. 8).
//!
//! Drawn pixel by pixel with plotters' bitmap backend (PNG); the SVG beside each PNG embeds
//! the same raster (as a base64 data URI) with its title as SVG text.

use super::Sky;
use super::healpix::Grid;
use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use plotters::prelude::*;
use std::path::Path;

/// Viridis at 9 control points.
const VIRIDIS: [(u8, u8, u8); 9] = [
    (68, 1, 84),
    (71, 44, 122),
    (59, 81, 139),
    (44, 113, 142),
    (33, 144, 141),
    (39, 173, 129),
    (92, 200, 99),
    (170, 220, 50),
    (253, 231, 37),
];

/// Colour of `t` in [0, 1].
pub fn viridis(t: f64) -> RGBColor {
    let t = if t.is_finite() {
        t.clamp(0.0, 1.0)
    } else {
        0.0
    } * (VIRIDIS.len() - 1) as f64;
    let i = (t as usize).min(VIRIDIS.len() - 2);
    let f = t - i as f64;
    let (a, b) = (VIRIDIS[i], VIRIDIS[i + 1]);
    let m = |x: u8, y: u8| (x as f64 + (y as f64 - x as f64) * f).round() as u8;
    RGBColor(m(a.0, b.0), m(a.1, b.1), m(a.2, b.2))
}

/// Log-scale limits: the 1st and 99.9th percentiles of the positive values.
fn log_limits(values: &[f64]) -> (f64, f64) {
    let mut v: Vec<f64> = values
        .iter()
        .copied()
        .filter(|x| *x > 0.0 && x.is_finite())
        .collect();
    if v.is_empty() {
        return (0.0, 1.0);
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| v[((v.len() - 1) as f64 * p) as usize].log10();
    let (lo, hi) = (q(0.01), q(0.999));
    if hi > lo {
        (lo, hi)
    } else {
        (lo - 1.0, lo + 1.0)
    }
}

/// A tick value `10^v` as text: `0.01`, `3`, `250`, `1.2e4`.
pub fn tick_text(v: f64) -> String {
    let x = 10f64.powf(v);
    if !(1e-3..1e4).contains(&x) {
        format!("{x:.0e}")
    } else if x >= 10.0 {
        format!("{x:.0}")
    } else {
        let s = format!("{x:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// Tick positions (log10 values) of a colour bar over `lo..hi`: the decades inside, or the
/// two ends when the range is under a decade.
pub fn ticks(lo: f64, hi: f64) -> Vec<f64> {
    let decades: Vec<f64> = ((lo.ceil() as i64)..=(hi.floor() as i64))
        .map(|k| k as f64)
        .collect();
    if decades.len() >= 2 {
        decades
    } else {
        vec![lo, hi]
    }
}

/// Draws a horizontal viridis colour bar with its ticks (the values, log scale) and `label`
/// below it: `(x, y)` top left, `w x h` pixels, log10 limits `lo..hi`. `compact` draws only
/// the two end values (for small panels).
#[allow(clippy::too_many_arguments)]
pub fn colorbar<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    (x, y): (i32, i32),
    (w, h): (i32, i32),
    (lo, hi): (f64, f64),
    label: &str,
    compact: bool,
) -> std::result::Result<(), String> {
    for i in 0..w {
        let t = (i as f64 + 0.5) / w as f64;
        root.draw(&Rectangle::new(
            [(x + i, y), (x + i + 1, y + h)],
            viridis(t).filled(),
        ))
        .map_err(|e| e.to_string())?;
    }
    root.draw(&Rectangle::new(
        [(x, y), (x + w, y + h)],
        BLACK.stroke_width(1),
    ))
    .map_err(|e| e.to_string())?;
    let size = if compact { 11 } else { 13 };
    let font = ("sans-serif", size).into_font().color(&BLACK);
    let ts = if compact { vec![lo, hi] } else { ticks(lo, hi) };
    for (k, v) in ts.iter().enumerate() {
        let px = x + ((v - lo) / (hi - lo).max(1e-12) * w as f64).round() as i32;
        root.draw(&PathElement::new(
            vec![(px, y + h), (px, y + h + 3)],
            BLACK.stroke_width(1),
        ))
        .map_err(|e| e.to_string())?;
        let text = tick_text(*v);
        // end labels stay inside the bar's extent
        let tw = (text.len() as i32) * size * 6 / 10;
        let tx = if compact && k == 1 {
            px - tw
        } else if compact {
            px
        } else {
            px - tw / 2
        };
        root.draw_text(&text, &font, (tx, y + h + 4))
            .map_err(|e| e.to_string())?;
    }
    if !label.is_empty() {
        let ly = y + h + 4 + size + 2;
        root.draw_text(label, &font, (x, ly))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for c in bytes.chunks(3) {
        let n = (c[0] as u32) << 16
            | (*c.get(1).unwrap_or(&0) as u32) << 8
            | *c.get(2).unwrap_or(&0) as u32;
        for k in 0..4 {
            if k <= c.len() {
                s.push(T[(n >> (18 - 6 * k) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

/// Renders `draw` into `dir/stem.png` (atomically) and a `dir/stem.svg` that embeds it.
fn save_raster<F>(dir: &Path, stem: &str, size: (u32, u32), title: &str, draw: F) -> Result<()>
where
    F: FnOnce(
        &DrawingArea<BitMapBackend, plotters::coord::Shift>,
    ) -> std::result::Result<(), String>,
{
    crate::plot::register_font();
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let png = dir.join(format!("{stem}.png"));
    let tmp = dir.join(format!(".{stem}.{}.png", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, size).into_drawing_area();
        root.fill(&WHITE)
            .map_err(|e| Error::Internal(e.to_string()))?;
        root.draw_text(
            title,
            &("sans-serif", 18).into_font().color(&BLACK),
            (10, 6),
        )
        .map_err(|e| Error::Internal(e.to_string()))?;
        draw(&root).map_err(|e| Error::Internal(format!("drawing {}: {e}", png.display())))?;
        root.present().map_err(|e| Error::Internal(e.to_string()))?;
    }
    std::fs::rename(&tmp, &png).map_err(|e| Error::io(&png, e))?;
    let bytes = std::fs::read(&png).map_err(|e| Error::io(&png, e))?;
    let svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\"><title>{t}</title><image width=\"{w}\" height=\"{h}\" href=\"data:image/png;base64,{d}\"/></svg>\n",
        w = size.0,
        h = size.1,
        t = title.replace('&', "&amp;").replace('<', "&lt;"),
        d = b64(&bytes)
    );
    crate::formats::atomic_write(&dir.join(format!("{stem}.svg")), svg.as_bytes())
}

/// Inverse Mollweide: plane (x, y) with |x| <= 2 sqrt2, |y| <= sqrt2 to Galactic (l, b) deg,
/// l = 0 at the centre increasing to the left; `None` outside the ellipse.
pub fn mollweide_inverse(x: f64, y: f64) -> Option<(f64, f64)> {
    let s2 = std::f64::consts::SQRT_2;
    let st = y / s2;
    if st.abs() > 1.0 {
        return None;
    }
    let th = st.asin();
    let ct = th.cos();
    let lon = -std::f64::consts::PI * x / (2.0 * s2 * ct.max(1e-12));
    if lon.abs() > std::f64::consts::PI {
        return None;
    }
    let sb = ((2.0 * th + (2.0 * th).sin()) / std::f64::consts::PI).clamp(-1.0, 1.0);
    Some((lon.to_degrees().rem_euclid(360.0), sb.asin().to_degrees()))
}

/// A Mollweide map (log colour scale) of a RING map, with a colour bar labelled `unit`.
pub fn mollweide(
    dir: &Path,
    stem: &str,
    title: &str,
    unit: &str,
    grid: &Grid,
    map: &[f64],
) -> Result<()> {
    let (w, h) = (800u32, 500u32);
    let (lo, hi) = log_limits(map);
    save_raster(dir, stem, (w, h), title, |root| {
        colorbar(
            root,
            (150, 440),
            (500, 14),
            (lo, hi),
            &format!("{unit} (log scale)"),
            false,
        )?;
        let (pw, ph) = (780.0, 390.0);
        let s2 = std::f64::consts::SQRT_2;
        for j in 0..ph as i32 {
            for i in 0..pw as i32 {
                let x = (i as f64 + 0.5 - pw / 2.0) / (pw / 2.0) * 2.0 * s2;
                let y = (ph / 2.0 - j as f64 - 0.5) / (ph / 2.0) * s2;
                if let Some((l, b)) = mollweide_inverse(x, y) {
                    let v = map[grid.lonlat_deg_to_pix(l, b) as usize];
                    let t = if v > 0.0 {
                        (v.log10() - lo) / (hi - lo)
                    } else {
                        0.0
                    };
                    root.draw_pixel((10 + i, 40 + j), &viridis(t))
                        .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    })
}

/// The energy range (GeV) of the bins starting at or above 1 GeV, as text (`1-200 GeV`).
fn above_1gev_range(edges_mev: &[f64]) -> String {
    let first = edges_mev
        .iter()
        .take(edges_mev.len().saturating_sub(1))
        .copied()
        .find(|e| *e >= 999.0)
        .unwrap_or(1000.0);
    let last = edges_mev.last().copied().unwrap_or(first);
    let g = |mev: f64| crate::formats::format_sig(mev / 1000.0, 3);
    format!("{}-{} GeV", g(first), g(last))
}

/// Sums the bins starting at or above 1 GeV.
fn above_1gev(bins: &[Vec<f64>], edges_mev: &[f64]) -> Vec<f64> {
    let mut out = vec![0.0; bins[0].len()];
    for (k, m) in bins.iter().enumerate() {
        if edges_mev[k] >= 999.0 {
            out.iter_mut().zip(m).for_each(|(a, b)| *a += b);
        }
    }
    out
}

/// The sky stage's figures: counts above 1 GeV of the diffuse model, of the point sources
/// (AGN + PSR) and of the total.
pub fn sky_figures(dir: &Path, cfg: &ExperimentConfig, model: &str, sky: &Sky) -> Result<()> {
    let edges = cfg.energy.edges_mev();
    let diffuse = above_1gev(&sky.maps[0], &edges);
    let agn = above_1gev(&sky.maps[1], &edges);
    let psr = above_1gev(&sky.maps[2], &edges);
    let points: Vec<f64> = agn.iter().zip(&psr).map(|(a, b)| a + b).collect();
    let total: Vec<f64> = points.iter().zip(&diffuse).map(|(a, b)| a + b).collect();
    let n = cfg.sky.nside;
    let unit = format!("expected counts / pixel, {}", above_1gev_range(&edges));
    mollweide(
        dir,
        "mollweide_diffuse",
        &format!("{model} diffuse + isotropic, counts > 1 GeV, NSIDE {n}"),
        &unit,
        &sky.grid,
        &diffuse,
    )?;
    mollweide(
        dir,
        "mollweide_point_sources",
        &format!("AGN + PSR, counts > 1 GeV, NSIDE {n}"),
        &unit,
        &sky.grid,
        &points,
    )?;
    mollweide(
        dir,
        "mollweide_total",
        &format!("{model} total, counts > 1 GeV, NSIDE {n}"),
        &unit,
        &sky.grid,
        &total,
    )
}

/// A grid of patches of expected counts: one row per patch, one column per energy bin;
/// `patches[r]` is a `[y][x][bin]` array of `size x size x n_bins` values (row 0 at the
/// bottom). Each panel has its own log colour scale, shown by a bar under it.
#[allow(clippy::too_many_arguments)]
pub fn patch_grid(
    dir: &Path,
    stem: &str,
    title: &str,
    patches: &[Vec<f32>],
    labels: &[String],
    size: usize,
    n_bins: usize,
    bin_labels: &[String],
) -> Result<()> {
    patch_grid_with_unit(
        dir,
        stem,
        title,
        "expected counts / pixel",
        patches,
        labels,
        size,
        n_bins,
        bin_labels,
    )
}

/// [`patch_grid`] with the quantity of the colour bars named: `unit` (`counts / pixel`),
/// followed on the figure by the energy bin of each column.
#[allow(clippy::too_many_arguments)]
pub fn patch_grid_with_unit(
    dir: &Path,
    stem: &str,
    title: &str,
    unit: &str,
    patches: &[Vec<f32>],
    labels: &[String],
    size: usize,
    n_bins: usize,
    bin_labels: &[String],
) -> Result<()> {
    let cell = 3 * size as u32; // 3 screen pixels per patch pixel
    let gap = 8u32;
    let bar = 30u32; // colour bar under every panel
    let left = 150u32;
    let top = 78u32;
    let w = left + n_bins as u32 * (cell + gap);
    let h = top + patches.len() as u32 * (cell + bar + gap);
    save_raster(dir, stem, (w, h), title, |root| {
        let font = ("sans-serif", 14).into_font().color(&BLACK);
        root.draw_text(
            &format!("colour: {unit} in the column's energy bin, log scale per panel"),
            &font,
            (10, 30),
        )
        .map_err(|e| e.to_string())?;
        for (k, lab) in bin_labels.iter().enumerate() {
            root.draw_text(lab, &font, ((left + k as u32 * (cell + gap)) as i32, 54))
                .map_err(|e| e.to_string())?;
        }
        for (r, p) in patches.iter().enumerate() {
            let y0 = top + r as u32 * (cell + bar + gap);
            root.draw_text(&labels[r], &font, (6, (y0 + cell / 2) as i32))
                .map_err(|e| e.to_string())?;
            for k in 0..n_bins {
                let vals: Vec<f64> = (0..size * size).map(|i| p[i * n_bins + k] as f64).collect();
                let (lo, hi) = log_limits(&vals);
                let x0 = left + k as u32 * (cell + gap);
                colorbar(
                    root,
                    (x0 as i32, (y0 + cell + 3) as i32),
                    (cell as i32, 8),
                    (lo, hi),
                    "",
                    true,
                )?;
                for y in 0..size {
                    for x in 0..size {
                        let v = vals[y * size + x];
                        let t = if v > 0.0 {
                            (v.log10() - lo) / (hi - lo)
                        } else {
                            0.0
                        };
                        let c = viridis(t);
                        // row 0 is the bottom of the patch
                        let sy = y0 + (size - 1 - y) as u32 * 3;
                        let sx = x0 + x as u32 * 3;
                        root.draw(&Rectangle::new(
                            [(sx as i32, sy as i32), (sx as i32 + 3, sy as i32 + 3)],
                            c.filled(),
                        ))
                        .map_err(|e| e.to_string())?;
                    }
                }
            }
        }
        Ok(())
    })
}

/// One panel of [`marked_patches`]: a map `[y][x]` (row 0 at the bottom), true source and
/// detection positions in patch pixels (x = column, y = row).
pub struct MarkedPatch {
    pub label: String,
    pub map: Vec<f64>,
    pub truth: Vec<(f64, f64)>,
    pub detections: Vec<(f64, f64)>,
}

/// Patches (log colour scale per panel, a colour bar of `unit` under each) with true
/// sources as white circles of the mask radius and detections as red crosses (the paper's
/// Fig. 12), `cols` panels per row.
#[allow(clippy::too_many_arguments)]
pub fn marked_patches(
    dir: &Path,
    stem: &str,
    title: &str,
    unit: &str,
    panels: &[MarkedPatch],
    size: usize,
    cols: usize,
    circle_px: f64,
) -> Result<()> {
    let scale = 4u32;
    let cell = scale * size as u32;
    let gap = 24u32 + 34; // label above, colour bar below
    let top = 60u32;
    let cols = cols.max(1);
    let rows = panels.len().div_ceil(cols);
    let w = (10 + cols as u32 * (cell + 10)).max(560);
    let h = top + rows as u32 * (cell + gap);
    save_raster(dir, stem, (w, h), title, |root| {
        let font = ("sans-serif", 13).into_font().color(&BLACK);
        root.draw_text(
            &format!("colour: {unit}, log scale per panel (bar under each panel)"),
            &font,
            (10, 30),
        )
        .map_err(|e| e.to_string())?;
        for (i, p) in panels.iter().enumerate() {
            let x0 = 10 + (i % cols) as u32 * (cell + 10);
            let y0 = top + (i / cols) as u32 * (cell + gap) + 16;
            root.draw_text(&p.label, &font, (x0 as i32, y0 as i32 - 15))
                .map_err(|e| e.to_string())?;
            let (lo, hi) = log_limits(&p.map);
            colorbar(
                root,
                (x0 as i32, (y0 + cell + 3) as i32),
                (cell as i32, 8),
                (lo, hi),
                "",
                true,
            )?;
            for y in 0..size {
                for x in 0..size {
                    let v = p.map[y * size + x];
                    let t = if v > 0.0 {
                        (v.log10() - lo) / (hi - lo)
                    } else {
                        0.0
                    };
                    let sy = y0 + (size - 1 - y) as u32 * scale;
                    let sx = x0 + x as u32 * scale;
                    root.draw(&Rectangle::new(
                        [
                            (sx as i32, sy as i32),
                            ((sx + scale) as i32, (sy + scale) as i32),
                        ],
                        viridis(t).filled(),
                    ))
                    .map_err(|e| e.to_string())?;
                }
            }
            let to_screen = |x: f64, y: f64| {
                (
                    (x0 as f64 + (x + 0.5) * scale as f64) as i32,
                    (y0 as f64 + (size as f64 - 0.5 - y) * scale as f64) as i32,
                )
            };
            for &(x, y) in &p.truth {
                root.draw(&Circle::new(
                    to_screen(x, y),
                    (circle_px * scale as f64) as i32,
                    WHITE.stroke_width(1),
                ))
                .map_err(|e| e.to_string())?;
            }
            for &(x, y) in &p.detections {
                let (cx, cy) = to_screen(x, y);
                for (dx, dy) in [(-4, -4), (-4, 4)] {
                    root.draw(&PathElement::new(
                        vec![(cx + dx, cy + dy), (cx - dx, cy - dy)],
                        RED.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?;
                }
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mollweide_inverse_landmarks() {
        let (l, b) = mollweide_inverse(0.0, 0.0).unwrap();
        assert!(l.abs() < 1e-9 && b.abs() < 1e-9);
        let (_, b) = mollweide_inverse(0.0, std::f64::consts::SQRT_2).unwrap();
        assert!((b - 90.0).abs() < 1e-6);
        // left of centre is positive longitude
        let (l, _) = mollweide_inverse(-1.0, 0.0).unwrap();
        assert!(l > 0.0 && l < 180.0);
        assert!(mollweide_inverse(2.9, 0.0).is_none());
        assert_eq!(b64(b"Man"), "TWFu");
        assert_eq!(b64(b"Ma"), "TWE=");
    }
}
