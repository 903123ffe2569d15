//! The published binned tables of Panes et al. 2021 (Figs. 5-6), computed as the authors'
//! notebook `localization-plots.ipynb` computes them from a legacy `evaluation.csv`
//! (`unek_evaluation_test.csv` for UNEK on F0-B1).
//!
//! The notebook's rules, reproduced here exactly:
//! * Values are `|x|` of one column of the evaluation file: `test_flux_1000` (S1),
//!   `test_flux_10000` (S10), `snr_center_pred` (SNR_c), `sbr_center_pred` (SBR_c). A false
//!   positive sits at the value of the nearest remaining truth row of its patch (or 0 when
//!   there was none); SNR_c and SBR_c of TP and FP rows are those at the *predicted* pixel.
//! * Histograms with `numpy.histogram` over fixed edges: S1 `logspace(-12, -7, 20)`, S10
//!   `logspace(-14, -9, 24)`, SNR_c and SBR_c `logspace(-2, 2, 20)`; bins are half open
//!   `[e_i, e_{i+1})` except the last, which is closed; values outside (and NaN) are dropped.
//! * Latitude cuts on `test_lat` (the truth's latitude, also for FP rows): S1 all sky is the
//!   notebook's `|b| > 0`, then `|b| > 20` and `|b| < 20`; S10 `|b| > 20`; SNR_c and SBR_c
//!   have no cut.
//! * Consecutive bins are merged left to right until the group holds at least `min_tp` true
//!   positives (0 for S1 and S10, so every bin is a point; 2 for SNR_c and SBR_c); a last group
//!   short of it is dropped. A point is placed at the **left edge of the last bin** of its
//!   group (the notebook's `bins[con]`).
//! * Purity `TP/(TP+FP)`, completeness `TP/(TP+FN)`, errors `sqrt(p (1-p) / N)`; an empty
//!   denominator gives 0 and error 0, as printed.
//!
//! These tables are for comparison with the paper; gammabench's own curves
//! ([`super::detection`]) use data-driven bins, Wilson intervals and no dropped values.

use crate::error::{Error, Result};
use crate::formats::{atomic_write_with, fmt_f64};
use std::path::Path;

/// The latitude selection of a table.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LatCut {
    /// No selection.
    None,
    /// `|test_lat| > deg`.
    Above(f64),
    /// `|test_lat| < deg`.
    Below(f64),
}

impl LatCut {
    fn keep(self, b: f64) -> bool {
        match self {
            LatCut::None => true,
            LatCut::Above(c) => b.abs() > c,
            LatCut::Below(c) => b.abs() < c,
        }
    }
    /// Label as in the paper's figures.
    pub fn label(self) -> String {
        match self {
            LatCut::None => "all".into(),
            LatCut::Above(c) => format!("|b|>{c}"),
            LatCut::Below(c) => format!("|b|<{c}"),
        }
    }
}

/// One of the published tables.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TableSpec {
    /// `S1`, `S10`, `SNR_c`, `SBR_c`.
    pub axis: &'static str,
    /// The evaluation column the values come from.
    pub column: &'static str,
    pub cut: LatCut,
    /// `numpy.logspace(lo, hi, n)`.
    pub log10_lo: f64,
    pub log10_hi: f64,
    pub n_edges: usize,
    /// Minimum TP per merged point.
    pub min_tp: usize,
}

/// The six tables the notebook prints or plots.
pub const TABLES: [TableSpec; 6] = [
    TableSpec {
        axis: "S1",
        column: "test_flux_1000",
        cut: LatCut::Above(0.0),
        log10_lo: -12.0,
        log10_hi: -7.0,
        n_edges: 20,
        min_tp: 0,
    },
    TableSpec {
        axis: "S1",
        column: "test_flux_1000",
        cut: LatCut::Above(20.0),
        log10_lo: -12.0,
        log10_hi: -7.0,
        n_edges: 20,
        min_tp: 0,
    },
    TableSpec {
        axis: "S1",
        column: "test_flux_1000",
        cut: LatCut::Below(20.0),
        log10_lo: -12.0,
        log10_hi: -7.0,
        n_edges: 20,
        min_tp: 0,
    },
    TableSpec {
        axis: "S10",
        column: "test_flux_10000",
        cut: LatCut::Above(20.0),
        log10_lo: -14.0,
        log10_hi: -9.0,
        n_edges: 24,
        min_tp: 0,
    },
    TableSpec {
        axis: "SNR_c",
        column: "snr_center_pred",
        cut: LatCut::None,
        log10_lo: -2.0,
        log10_hi: 2.0,
        n_edges: 20,
        min_tp: 2,
    },
    TableSpec {
        axis: "SBR_c",
        column: "sbr_center_pred",
        cut: LatCut::None,
        log10_lo: -2.0,
        log10_hi: 2.0,
        n_edges: 20,
        min_tp: 2,
    },
];

/// `numpy.logspace(lo, hi, n)`: `10 ** linspace(lo, hi, n)`, with numpy's `linspace`
/// arithmetic (`i * step + start`, the last point set to `stop`).
pub fn np_logspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![10f64.powf(lo)];
    }
    let step = (hi - lo) / (n - 1) as f64;
    (0..n)
        .map(|i| {
            let y = if i == n - 1 { hi } else { i as f64 * step + lo };
            10f64.powf(y)
        })
        .collect()
}

/// `numpy.histogram(values, bins=edges)` counts: half-open bins, the last closed, values
/// outside and NaN dropped ([`super::detection::bin_of`] bins exactly so).
pub fn np_histogram(values: &[f64], edges: &[f64]) -> Vec<usize> {
    let mut h = vec![0usize; edges.len().saturating_sub(1)];
    for &v in values {
        if let Some(b) = super::detection::bin_of(edges, v) {
            h[b] += 1;
        }
    }
    h
}

/// One printed point of a table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PaperPoint {
    /// Where the notebook plots the point: the left edge of the group's last bin.
    pub x: f64,
    /// The group's edges.
    pub lo: f64,
    pub hi: f64,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub purity: f64,
    pub err_purity: f64,
    pub completeness: f64,
    pub err_completeness: f64,
}

/// One table.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PaperTable {
    pub axis: String,
    pub region: String,
    pub min_tp: usize,
    pub points: Vec<PaperPoint>,
}

/// The columns a table needs, one entry per evaluation row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EvalRow {
    /// 0 TP, 1 FP, 2 FN.
    pub stat_code: u8,
    pub test_lat: f64,
    pub test_flux_1000: f64,
    pub test_flux_10000: f64,
    pub snr_center_pred: f64,
    pub sbr_center_pred: f64,
}

impl EvalRow {
    fn value(&self, column: &str) -> f64 {
        match column {
            "test_flux_1000" => self.test_flux_1000,
            "test_flux_10000" => self.test_flux_10000,
            "snr_center_pred" => self.snr_center_pred,
            "sbr_center_pred" => self.sbr_center_pred,
            _ => f64::NAN,
        }
    }
}

fn ratio(k: usize, other: usize) -> (f64, f64) {
    let n = k + other;
    if n == 0 {
        return (0.0, 0.0);
    }
    let p = k as f64 / n as f64;
    (p, (p * (1.0 - p) / n as f64).sqrt())
}

/// One table from evaluation rows.
pub fn table(rows: &[EvalRow], spec: &TableSpec) -> PaperTable {
    let edges = np_logspace(spec.log10_lo, spec.log10_hi, spec.n_edges);
    let pick = |code: u8| -> Vec<f64> {
        rows.iter()
            .filter(|r| r.stat_code == code && spec.cut.keep(r.test_lat))
            .map(|r| r.value(spec.column).abs())
            .collect()
    };
    let (h_tp, h_fp, h_fn) = (
        np_histogram(&pick(0), &edges),
        np_histogram(&pick(1), &edges),
        np_histogram(&pick(2), &edges),
    );
    let mut points = Vec::new();
    let (mut tp, mut fp, mut fnn, mut first) = (0, 0, 0, 0usize);
    for b in 0..h_tp.len() {
        tp += h_tp[b];
        fp += h_fp[b];
        fnn += h_fn[b];
        if tp >= spec.min_tp {
            let (p, ep) = ratio(tp, fp);
            let (c, ec) = ratio(tp, fnn);
            points.push(PaperPoint {
                x: edges[b],
                lo: edges[first],
                hi: edges[b + 1],
                tp,
                fp,
                fn_: fnn,
                purity: p,
                err_purity: ep,
                completeness: c,
                err_completeness: ec,
            });
            (tp, fp, fnn, first) = (0, 0, 0, b + 1);
        }
    }
    PaperTable {
        axis: spec.axis.into(),
        region: spec.cut.label(),
        min_tp: spec.min_tp,
        points,
    }
}

/// Every table of [`TABLES`].
pub fn tables(rows: &[EvalRow]) -> Vec<PaperTable> {
    TABLES.iter().map(|s| table(rows, s)).collect()
}

/// Reads the columns of a legacy evaluation file (ours or the published one; `.gz` too).
/// Empty or `nan` cells are NaN (dropped by the histograms).
pub fn read_evaluation(path: &Path) -> Result<Vec<EvalRow>> {
    let t = super::input::Table::read(path)?;
    let names = [
        "stat_code",
        "test_lat",
        "test_flux_1000",
        "test_flux_10000",
        "snr_center_pred",
        "sbr_center_pred",
    ];
    let cols: Vec<usize> = names.iter().map(|n| t.need(n)).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(t.rows.len());
    for i in 0..t.rows.len() {
        let v: Vec<f64> = cols
            .iter()
            .map(|&c| t.f64_at(i, c))
            .collect::<Result<_>>()?;
        let code = v[0];
        if !(code == 0.0 || code == 1.0 || code == 2.0) {
            return Err(Error::Data {
                file: t.path.clone(),
                line: t.rows[i].0,
                column: cols[0] + 1,
                field: "stat_code".into(),
                message: format!("`{code}` is not 0 (TP), 1 (FP) or 2 (FN)"),
            });
        }
        out.push(EvalRow {
            stat_code: code as u8,
            test_lat: v[1],
            test_flux_1000: v[2],
            test_flux_10000: v[3],
            snr_center_pred: v[4],
            sbr_center_pred: v[5],
        });
    }
    Ok(out)
}

/// Writes `paper_tables.csv` (one row per point) and `paper_tables.md` (the notebook's
/// printout: `%.2E` bins, counts, `%.2f` metrics) into `dir`.
pub fn write_tables(dir: &Path, tables: &[PaperTable]) -> Result<()> {
    atomic_write_with(&dir.join("paper_tables.csv"), |w| {
        writeln!(
            w,
            "axis,region,min_tp,x,bin_lo,bin_hi,tp,fp,fn,purity,err_purity,completeness,\
             err_completeness"
        )?;
        for t in tables {
            for p in &t.points {
                writeln!(
                    w,
                    "{},{},{},{},{},{},{},{},{},{},{},{},{}",
                    t.axis,
                    t.region,
                    t.min_tp,
                    fmt_f64(p.x),
                    fmt_f64(p.lo),
                    fmt_f64(p.hi),
                    p.tp,
                    p.fp,
                    p.fn_,
                    fmt_f64(p.purity),
                    fmt_f64(p.err_purity),
                    fmt_f64(p.completeness),
                    fmt_f64(p.err_completeness)
                )?;
            }
        }
        Ok(())
    })?;
    atomic_write_with(&dir.join("paper_tables.md"), |w| {
        writeln!(
            w,
            "# Binned tables as in Panes et al. 2021 (`localization-plots.ipynb`)\n\n\
             Points at the left edge of each group's last bin; errors sqrt(p(1-p)/N).\n"
        )?;
        for t in tables {
            writeln!(
                w,
                "## {} ({}, at least {} TP per point)\n",
                t.axis, t.region, t.min_tp
            )?;
            writeln!(
                w,
                "| bin | TP | FP | FN | purity | err | completeness | err |\n|---|---|---|---|---|---|---|---|"
            )?;
            for p in &t.points {
                writeln!(
                    w,
                    "| {} | {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    py_e2(p.x),
                    p.tp,
                    p.fp,
                    p.fn_,
                    p.purity,
                    p.err_purity,
                    p.completeness,
                    p.err_completeness
                )?;
            }
            writeln!(w)?;
        }
        Ok(())
    })
}

/// Python's `"%.2E" % x` (two exponent digits at least: `1.44E-09`).
pub fn py_e2(x: f64) -> String {
    let s = format!("{x:.2E}");
    match s.split_once('E') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ("-", d),
                None => ("+", e),
            };
            format!("{m}E{sign}{digits:0>2}")
        }
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_exponent_format() {
        assert_eq!(py_e2(1.4384e-9), "1.44E-09");
        assert_eq!(py_e2(3.36), "3.36E+00");
        assert_eq!(py_e2(61.6), "6.16E+01");
    }

    #[test]
    fn logspace_and_histogram_like_numpy() {
        let e = np_logspace(-12.0, -7.0, 20);
        assert_eq!(e.len(), 20);
        assert_eq!(e[0], 1e-12);
        assert_eq!(e[19], 1e-7);
        // numpy: 1.274274985703132e-10, printed 1.27E-10
        assert!((e[8] / 1.274_274_985_703_132e-10 - 1.0).abs() < 1e-15);
        let h = np_histogram(&[1.0, 2.0, 2.5, 3.0, 0.5, f64::NAN, 3.5], &[1.0, 2.0, 3.0]);
        assert_eq!(h, vec![1, 3]); // 3.0 falls in the closed last bin
    }

    #[test]
    fn merging_places_points_at_the_left_edge_of_the_last_bin() {
        let spec = TableSpec {
            axis: "SNR_c",
            column: "snr_center_pred",
            cut: LatCut::None,
            log10_lo: 0.0,
            log10_hi: 3.0,
            n_edges: 4,
            min_tp: 2,
        };
        let row = |code: u8, snr: f64| EvalRow {
            stat_code: code,
            test_lat: 0.0,
            test_flux_1000: 0.0,
            test_flux_10000: 0.0,
            snr_center_pred: snr,
            sbr_center_pred: 0.0,
        };
        // bin [1,10): 1 TP 1 FP; [10,100): 1 TP 2 FN; [100,1000]: 1 TP (a short last group)
        let rows = [
            row(0, 2.0),
            row(1, 3.0),
            row(0, 20.0),
            row(2, 30.0),
            row(2, -40.0),
            row(0, 200.0),
        ];
        let t = table(&rows, &spec);
        assert_eq!(t.points.len(), 1);
        let p = &t.points[0];
        assert_eq!((p.x, p.lo, p.hi), (10.0, 1.0, 100.0));
        assert_eq!((p.tp, p.fp, p.fn_), (2, 1, 2));
        assert!((p.purity - 2.0 / 3.0).abs() < 1e-15);
        assert!((p.err_completeness - (0.25f64 / 4.0).sqrt()).abs() < 1e-15);
    }
}
