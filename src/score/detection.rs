//! Detection metrics from a match table: purity, completeness, their curves, S90 and the
//! localisation error (Panes et al. 2021, sec. 3.3, eqs. 3-4, Figs. 5-7).
//!
//! * Purity `P = TP / (TP + FP)`, completeness `C = TP / (TP + FN)`.
//! * Errors: the paper's `sqrt(p (1 - p) / N)` and the Wilson score interval
//!   `(p + z^2/2N ± z sqrt(p(1-p)/N + z^2/4N^2)) / (1 + z^2/N)` (Wilson 1927), which stays
//!   inside [0, 1] and is sensible at p = 0 or 1 and small N.
//! * Curves: a true positive is placed at its matched source's value, a false negative at its
//!   own, a false positive at the value of the nearest true source (the paper's choice; the
//!   nearest in its patch in legacy mode), optionally also at the detection's own flux. Bins
//!   are equal in log10 (`bins_per_decade`), then merged left to right until each holds at
//!   least `min_count_per_bin` items (a short last group joins its neighbour). Regions:
//!   all sky, |b| > cut and |b| < cut, with b of the source (TP, FN) or of the detection (FP).
//! * S90 (see [`S90_DEFINITION`]).

use super::input::{Detection, TruthRow};
use super::matching::{Matching, Status};
use crate::config::{S90Rule, ScoreConfig};
use serde::Serialize;

/// The S90 definition of the default rule (`score.s90_rule = "crossing"`), written into every
/// output.
pub const S90_DEFINITION: &str = "S90 is the larger of two crossings of the level (0.9): \
the purity crossing and the completeness crossing, each read from its own curve. Bins: log10 \
bins (bins_per_decade) merged left to right until each holds at least min_count_per_bin items \
of that curve (TP+FP for purity, TP+FN for completeness), the bins of curves.csv. A bin passes \
when its value is >= level; it fails (vetoes) only when it is significantly below the level: \
its Wilson upper bound at z = s90_veto_z is below the level; otherwise it is consistent with the \
level (a bright bin with a handful of sources cannot veto). The crossing bin j is the first \
passing bin above the last failing one. If j is the first bin, the crossing is reported as that \
bin's lower edge with status reached_at_lowest_bin (an upper bound); if no bin above the last \
failing one passes, not_reached. Otherwise it is where the curve crosses the level, \
interpolated linearly in log10(x) between the geometric centres of bins j-1 and j. S90 is \
not_reached when either crossing is; reached_at_lowest_bin when the larger crossing is an upper \
bound. Intervals: a seeded bootstrap stratified by the fine log10 bins (each fine bin's hits \
redrawn as Binomial(n, k/n), the bins kept), the central bootstrap_ci quantiles of the replicas \
that reach the level, reported only when the point estimate is reached.";

/// The earlier definition (`score.s90_rule = "all_bins_above"`).
pub const S90_DEFINITION_ALL_BINS_ABOVE: &str = "S90 is the lowest value x of the axis such that purity and \
completeness are both >= level in every bin above x. Bins: log10 bins merged until each holds \
at least min_count_per_bin detections (TP+FP) and min_count_per_bin sources (TP+FN). Let j be \
the first bin from which every bin passes. If j is the first bin, S90 is reported as that bin's \
lower edge with status reached_at_lowest_bin (an upper bound). If the last bin fails, the status \
is not_reached. Otherwise S90 is where min(purity, completeness) crosses level, interpolated \
linearly in log10(x) between the geometric centres of bins j-1 and j. The interval comes from a \
seeded bootstrap stratified by bin (rows are resampled with replacement within each bin) and \
gives the central bootstrap_ci quantiles of the replicas that reach the level (reported only when \
the point estimate is reached; bootstrap_reached counts those replicas).";

/// Wilson score interval for k successes out of n (`None` for n = 0).
pub fn wilson(k: usize, n: usize, z: f64) -> Option<(f64, f64)> {
    if n == 0 {
        return None;
    }
    let (nf, p) = (n as f64, k as f64 / n as f64);
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    Some(((centre - half).max(0.0), (centre + half).min(1.0)))
}

/// A proportion with both error estimates.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Proportion {
    pub k: usize,
    pub n: usize,
    /// k / n (`None`: undefined, n = 0).
    pub value: Option<f64>,
    /// sqrt(p (1 - p) / n), the paper's error.
    pub se: Option<f64>,
    pub wilson_lo: Option<f64>,
    pub wilson_hi: Option<f64>,
}

impl Proportion {
    pub fn new(k: usize, n: usize, z: f64) -> Self {
        let value = (n > 0).then(|| k as f64 / n as f64);
        let w = wilson(k, n, z);
        Self {
            k,
            n,
            value,
            se: value.map(|p| (p * (1.0 - p) / n as f64).sqrt()),
            wilson_lo: w.map(|w| w.0),
            wilson_hi: w.map(|w| w.1),
        }
    }
}

/// Log10 edges with `per_decade` bins covering the positive finite `values`.
pub fn log_edges(values: &[f64], per_decade: usize) -> Vec<f64> {
    let pd = per_decade.max(1) as f64;
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for &v in values {
        if v > 0.0 && v.is_finite() {
            lo = lo.min(v.log10());
            hi = hi.max(v.log10());
        }
    }
    if !lo.is_finite() {
        return Vec::new();
    }
    let a = (lo * pd).floor() as i64;
    let mut b = (hi * pd).floor() as i64 + 1;
    if b <= a {
        b = a + 1;
    }
    (a..=b).map(|i| 10f64.powf(i as f64 / pd)).collect()
}

/// Bin index of `v` in `edges` (left-closed, the last bin right-closed).
pub fn bin_of(edges: &[f64], v: f64) -> Option<usize> {
    if edges.len() < 2 || !(v >= edges[0] && v <= edges[edges.len() - 1]) {
        return None;
    }
    let k = edges.partition_point(|e| *e <= v);
    Some((k.max(1) - 1).min(edges.len() - 2))
}

/// Merges adjacent bins left to right until every group satisfies `ok(counts)`; a last group
/// that does not joins the previous one. `counts[i]` are per-bin count vectors.
pub fn merge_bins(edges: &[f64], counts: &[Vec<usize>], ok: impl Fn(&[usize]) -> bool) -> Vec<f64> {
    if edges.len() < 2 {
        return edges.to_vec();
    }
    let width = counts.first().map(|c| c.len()).unwrap_or(0);
    let mut out = vec![edges[0]];
    let mut acc = vec![0usize; width];
    for (i, c) in counts.iter().enumerate() {
        for (a, x) in acc.iter_mut().zip(c) {
            *a += x;
        }
        if ok(&acc) {
            out.push(edges[i + 1]);
            acc.iter_mut().for_each(|a| *a = 0);
        }
    }
    let last = edges[edges.len() - 1];
    if acc.iter().any(|&a| a > 0) || out.len() == 1 {
        if out.len() > 1 {
            *out.last_mut().expect("non-empty") = last;
        } else {
            out.push(last);
        }
    } else if *out.last().expect("non-empty") != last {
        *out.last_mut().expect("non-empty") = last;
    }
    out
}

/// The curve axes.
pub const AXES: [(&str, &str); 4] = [
    ("S1", "flux_1000_ph_cm2_s"),
    ("S10", "flux_10000_ph_cm2_s"),
    ("SNR_c", "snr_c"),
    ("SBR_c", "sbr_c"),
];

fn axis_value(t: &TruthRow, axis: &str) -> f64 {
    match axis {
        "S1" => t.flux_1000_ph_cm2_s,
        "S10" => t.flux_10000_ph_cm2_s,
        "SNR_c" => t.snr_c,
        "SBR_c" => t.sbr_c,
        _ => f64::NAN,
    }
}

/// One bin of a curve.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CurveBin {
    pub lo: f64,
    pub hi: f64,
    /// Geometric centre sqrt(lo hi).
    pub centre: f64,
    #[serde(flatten)]
    pub p: Proportion,
}

/// Purity or completeness against one axis in one region.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Curve {
    pub metric: String,
    pub axis: String,
    pub region: String,
    pub bins: Vec<CurveBin>,
    /// Items without a positive finite axis value (not in any bin).
    pub n_outside: usize,
}

/// One bin of a crossing: its counts and verdict.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CrossingBin {
    pub lo: f64,
    pub hi: f64,
    pub k: usize,
    pub n: usize,
    pub value: f64,
    /// Wilson upper bound at `s90_veto_z`.
    pub upper: f64,
    /// `pass`, `consistent` or `fail`.
    pub verdict: &'static str,
}

/// Where one curve (purity or completeness) crosses the level.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Crossing {
    /// `reached`, `reached_at_lowest_bin` or `not_reached`.
    pub status: String,
    pub value: Option<f64>,
    pub bootstrap_reached: usize,
    pub interval_lo: Option<f64>,
    pub interval_hi: Option<f64>,
    pub bins: Vec<CrossingBin>,
}

/// S90 of one axis and region.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct S90 {
    pub axis: String,
    pub region: String,
    pub level: f64,
    /// `crossing` or `all_bins_above` ([`S90_DEFINITION`], [`S90_DEFINITION_ALL_BINS_ABOVE`]).
    pub rule: String,
    /// The purity crossing (`crossing` rule only).
    pub purity: Option<Crossing>,
    /// The completeness crossing (`crossing` rule only).
    pub completeness: Option<Crossing>,
    /// `reached`, `reached_at_lowest_bin` or `not_reached`.
    pub status: String,
    pub value: Option<f64>,
    pub bootstrap_reps: usize,
    pub bootstrap_reached: usize,
    pub interval_lo: Option<f64>,
    pub interval_hi: Option<f64>,
    pub bins: Vec<S90Bin>,
}

/// A shared bin of the S90 computation.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct S90Bin {
    pub lo: f64,
    pub hi: f64,
    pub purity: Option<f64>,
    pub completeness: Option<f64>,
}

/// Quantiles of the TP offsets.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Localisation {
    pub n: usize,
    pub median_deg: Option<f64>,
    pub q68_deg: Option<f64>,
    pub q95_deg: Option<f64>,
}

/// Everything `score detections` reports.
#[derive(Debug, Clone, Serialize)]
pub struct DetectionReport {
    pub mode: String,
    pub match_radius_deg: f64,
    pub n_detections: usize,
    pub n_sources: usize,
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub duplicate: usize,
    pub purity: Proportion,
    pub completeness: Proportion,
    /// Harmonic mean of purity and completeness (undefined when both are 0 or undefined).
    pub f1: Option<f64>,
    pub localisation: Localisation,
    pub curves: Vec<Curve>,
    pub fp_by_own_flux: Option<Curve>,
    pub s90: Vec<S90>,
    pub s90_definition: String,
    pub wilson_z: f64,
}

pub use crate::stats::quantile_sorted;

/// An item of a curve: its axis value, whether it is a source (TP/FN) or a detection
/// (TP/FP) item and its outcome.
#[derive(Debug, Clone, Copy)]
struct Item {
    x: f64,
    status: Status,
}

fn region_ok(region: &str, b: f64, cut: f64) -> bool {
    match region {
        "all" => true,
        "high_lat" => b.abs() > cut,
        "low_lat" => b.abs() < cut,
        _ => false,
    }
}

/// Latitude that decides a row's region.
fn row_lat(r: &super::matching::MatchRow, truth: &[TruthRow], dets: &[Detection]) -> f64 {
    match r.status {
        Status::FP => r.det.map(|d| dets[d].glat_deg).unwrap_or(f64::NAN),
        _ => r.truth.map(|t| truth[t].glat_deg).unwrap_or(f64::NAN),
    }
}

fn curve(metric: &str, axis: &str, region: &str, items: &[Item], cfg: &ScoreConfig) -> Curve {
    let (hit, miss) = if metric == "purity" {
        (Status::TP, Status::FP)
    } else {
        (Status::TP, Status::FN)
    };
    let used: Vec<Item> = items
        .iter()
        .copied()
        .filter(|i| i.status == hit || i.status == miss)
        .collect();
    let xs: Vec<f64> = used.iter().map(|i| i.x).collect();
    let edges = log_edges(&xs, cfg.bins_per_decade);
    let nb = edges.len().saturating_sub(1);
    let mut counts = vec![vec![0usize]; nb];
    let mut n_outside = 0;
    for i in &used {
        match bin_of(&edges, i.x) {
            Some(b) => counts[b][0] += 1,
            None => n_outside += 1,
        }
    }
    let min = cfg.min_count_per_bin;
    let edges = merge_bins(&edges, &counts, |c| c[0] >= min);
    let nb = edges.len().saturating_sub(1);
    let (mut k, mut n) = (vec![0usize; nb], vec![0usize; nb]);
    for i in &used {
        if let Some(b) = bin_of(&edges, i.x) {
            n[b] += 1;
            if i.status == hit {
                k[b] += 1;
            }
        }
    }
    Curve {
        metric: metric.into(),
        axis: axis.into(),
        region: region.into(),
        bins: (0..nb)
            .filter(|&b| n[b] > 0)
            .map(|b| CurveBin {
                lo: edges[b],
                hi: edges[b + 1],
                centre: (edges[b] * edges[b + 1]).sqrt(),
                p: Proportion::new(k[b], n[b], cfg.wilson_z),
            })
            .collect(),
        n_outside,
    }
}

/// S90 from per-bin (TP, FP, FN) counts over `edges`; returns (status, value).
pub fn s90_from_counts(edges: &[f64], counts: &[[usize; 3]], level: f64) -> (String, Option<f64>) {
    let q: Vec<f64> = counts
        .iter()
        .map(|&[tp, fp, fnn]| {
            let p = if tp + fp > 0 {
                tp as f64 / (tp + fp) as f64
            } else {
                0.0
            };
            let c = if tp + fnn > 0 {
                tp as f64 / (tp + fnn) as f64
            } else {
                0.0
            };
            p.min(c)
        })
        .collect();
    s90_from_quality(edges, &q, level)
}

/// S90 from per-bin `min(purity, completeness)` values `q` over `edges`.
pub fn s90_from_quality(edges: &[f64], q: &[f64], level: f64) -> (String, Option<f64>) {
    let nb = q.len();
    if nb == 0 || q[nb - 1] < level {
        return ("not_reached".into(), None);
    }
    let mut j = nb - 1;
    while j > 0 && q[j - 1] >= level {
        j -= 1;
    }
    if j == 0 {
        return ("reached_at_lowest_bin".into(), Some(edges[0]));
    }
    let c0 = (edges[j - 1] * edges[j]).sqrt().log10();
    let c1 = (edges[j] * edges[j + 1]).sqrt().log10();
    let t = (level - q[j - 1]) / (q[j] - q[j - 1]);
    ("reached".into(), Some(10f64.powf(c0 + t * (c1 - c0))))
}

fn s90(axis: &str, region: &str, items: &[Item], cfg: &ScoreConfig, seed: u64) -> S90 {
    match cfg.s90_rule {
        S90Rule::Crossing => s90_crossing(axis, region, items, cfg, seed),
        S90Rule::AllBinsAbove => s90_all_bins_above(axis, region, items, cfg, seed),
    }
}

/// Verdict of a bin: `pass` (value >= level), `fail` (Wilson upper bound at `z` < level) or
/// `consistent`.
fn verdict(k: usize, n: usize, level: f64, z: f64) -> (&'static str, f64) {
    let upper = wilson(k, n, z).map(|w| w.1).unwrap_or(1.0);
    if n > 0 && k as f64 / n as f64 >= level {
        ("pass", upper)
    } else if upper < level {
        ("fail", upper)
    } else {
        ("consistent", upper)
    }
}

/// The crossing of one curve given per-bin hits `k` and totals `n` over `edges` (see
/// [`S90_DEFINITION`]); returns (status, value).
pub fn crossing_from_counts(
    edges: &[f64],
    k: &[usize],
    n: &[usize],
    level: f64,
    z: f64,
) -> (&'static str, Option<f64>) {
    let nb = k.len();
    let v: Vec<&str> = (0..nb).map(|b| verdict(k[b], n[b], level, z).0).collect();
    let start = v.iter().rposition(|x| *x == "fail").map_or(0, |f| f + 1);
    let Some(j) = (start..nb).find(|&b| v[b] == "pass") else {
        return ("not_reached", None);
    };
    if j == 0 {
        return ("reached_at_lowest_bin", Some(edges[0]));
    }
    let q = |b: usize| k[b] as f64 / n[b].max(1) as f64;
    let c0 = (edges[j - 1] * edges[j]).sqrt().log10();
    let c1 = (edges[j] * edges[j + 1]).sqrt().log10();
    let (q0, q1) = (q(j - 1), q(j));
    let t = if q1 > q0 {
        ((level - q0) / (q1 - q0)).clamp(0.0, 1.0)
    } else {
        1.0
    };
    ("reached", Some(10f64.powf(c0 + t * (c1 - c0))))
}

/// The fine and merged bins of one curve: fine edges, fine (k, n), merged edges and the
/// merged group of every fine bin.
struct CurveBins {
    fine_k: Vec<usize>,
    fine_n: Vec<usize>,
    edges: Vec<f64>,
    group: Vec<usize>,
}

fn curve_bins(items: &[Item], hit: Status, miss: Status, cfg: &ScoreConfig) -> CurveBins {
    let used: Vec<&Item> = items
        .iter()
        .filter(|i| i.status == hit || i.status == miss)
        .collect();
    let xs: Vec<f64> = used.iter().map(|i| i.x).collect();
    let fine = log_edges(&xs, cfg.bins_per_decade);
    let nf = fine.len().saturating_sub(1);
    let (mut fine_k, mut fine_n) = (vec![0usize; nf], vec![0usize; nf]);
    for i in &used {
        if let Some(b) = bin_of(&fine, i.x) {
            fine_n[b] += 1;
            if i.status == hit {
                fine_k[b] += 1;
            }
        }
    }
    let counts: Vec<Vec<usize>> = fine_n.iter().map(|&n| vec![n]).collect();
    let min = cfg.min_count_per_bin;
    let edges = merge_bins(&fine, &counts, |c| c[0] >= min);
    // merged edges are a subset of the fine edges: group of each fine bin
    let group = (0..nf)
        .map(|b| {
            let centre = (fine[b] * fine[b + 1]).sqrt();
            bin_of(&edges, centre).unwrap_or(0)
        })
        .collect();
    CurveBins {
        fine_k,
        fine_n,
        edges,
        group,
    }
}

impl CurveBins {
    fn merged(&self, fine_k: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let nb = self.edges.len().saturating_sub(1);
        let (mut k, mut n) = (vec![0usize; nb], vec![0usize; nb]);
        for (b, &g) in self.group.iter().enumerate() {
            if g < nb {
                k[g] += fine_k[b];
                n[g] += self.fine_n[b];
            }
        }
        (k, n)
    }
}

fn s90_crossing(axis: &str, region: &str, items: &[Item], cfg: &ScoreConfig, seed: u64) -> S90 {
    let (level, z) = (cfg.s90_level, cfg.s90_veto_z);
    let curves = [
        curve_bins(items, Status::TP, Status::FP, cfg),
        curve_bins(items, Status::TP, Status::FN, cfg),
    ];
    let point: Vec<(&str, Option<f64>)> = curves
        .iter()
        .map(|c| {
            let (k, n) = c.merged(&c.fine_k);
            crossing_from_counts(&c.edges, &k, &n, level, z)
        })
        .collect();
    let combine = |a: (&str, Option<f64>), b: (&str, Option<f64>)| -> (String, Option<f64>) {
        match (a.1, b.1) {
            (Some(x), Some(y)) => {
                let (hi, hi_status) = if x >= y { (x, a.0) } else { (y, b.0) };
                (hi_status.to_string(), Some(hi))
            }
            _ => ("not_reached".into(), None),
        }
    };
    let (status, value) = combine(point[0], point[1]);
    // bootstrap: each fine bin's hits redrawn as Binomial(n, k/n), both curves per replica
    let mut reps: [Vec<f64>; 3] = Default::default();
    for r in 0..cfg.bootstrap_reps {
        let mut rng = crate::rng::stream(
            seed,
            &format!("score/s90-crossing-bootstrap/{axis}/{region}"),
            r as u64,
        );
        let mut got = [("not_reached", None); 2];
        for (ci, c) in curves.iter().enumerate() {
            let fk: Vec<usize> = c
                .fine_k
                .iter()
                .zip(&c.fine_n)
                .map(|(&k, &n)| {
                    if n == 0 {
                        0
                    } else {
                        binomial(&mut rng, n as u64, k as f64 / n as f64) as usize
                    }
                })
                .collect();
            let (k, n) = c.merged(&fk);
            got[ci] = crossing_from_counts(&c.edges, &k, &n, level, z);
            if let Some(x) = got[ci].1 {
                reps[ci].push(x);
            }
        }
        if let (_, Some(x)) = combine(got[0], got[1]) {
            reps[2].push(x);
        }
    }
    for r in reps.iter_mut() {
        r.sort_by(f64::total_cmp);
    }
    let a = (1.0 - cfg.bootstrap_ci) / 2.0;
    let interval = |v: Option<f64>, r: &[f64]| {
        (
            v.and_then(|_| quantile_sorted(r, a)),
            v.and_then(|_| quantile_sorted(r, 1.0 - a)),
        )
    };
    let crossing = |ci: usize| {
        let c = &curves[ci];
        let (k, n) = c.merged(&c.fine_k);
        let (lo, hi) = interval(point[ci].1, &reps[ci]);
        Crossing {
            status: point[ci].0.into(),
            value: point[ci].1,
            bootstrap_reached: reps[ci].len(),
            interval_lo: lo,
            interval_hi: hi,
            bins: (0..k.len())
                .map(|b| {
                    let (v, upper) = verdict(k[b], n[b], level, z);
                    CrossingBin {
                        lo: c.edges[b],
                        hi: c.edges[b + 1],
                        k: k[b],
                        n: n[b],
                        value: k[b] as f64 / n[b].max(1) as f64,
                        upper,
                        verdict: v,
                    }
                })
                .collect(),
        }
    };
    let (interval_lo, interval_hi) = interval(value, &reps[2]);
    S90 {
        axis: axis.into(),
        region: region.into(),
        level,
        rule: "crossing".into(),
        purity: Some(crossing(0)),
        completeness: Some(crossing(1)),
        status,
        value,
        bootstrap_reps: cfg.bootstrap_reps,
        bootstrap_reached: reps[2].len(),
        interval_lo,
        interval_hi,
        bins: Vec::new(),
    }
}

fn s90_all_bins_above(
    axis: &str,
    region: &str,
    items: &[Item],
    cfg: &ScoreConfig,
    seed: u64,
) -> S90 {
    let xs: Vec<f64> = items.iter().map(|i| i.x).collect();
    let edges = log_edges(&xs, cfg.bins_per_decade);
    let nb = edges.len().saturating_sub(1);
    let idx = |s: Status| match s {
        Status::TP => 0,
        Status::FP => 1,
        _ => 2,
    };
    let mut counts = vec![vec![0usize; 3]; nb];
    for i in items {
        if let Some(b) = bin_of(&edges, i.x) {
            counts[b][idx(i.status)] += 1;
        }
    }
    let min = cfg.min_count_per_bin;
    let edges = merge_bins(&edges, &counts, |c| {
        c[0] + c[1] >= min && c[0] + c[2] >= min
    });
    let nb = edges.len().saturating_sub(1);
    let mut per_bin: Vec<Vec<Status>> = vec![Vec::new(); nb];
    for i in items {
        if let Some(b) = bin_of(&edges, i.x) {
            per_bin[b].push(i.status);
        }
    }
    let count = |bins: &[Vec<Status>]| -> Vec<[usize; 3]> {
        bins.iter()
            .map(|v| {
                let mut c = [0usize; 3];
                for s in v {
                    c[idx(*s)] += 1;
                }
                c
            })
            .collect()
    };
    let base = count(&per_bin);
    let (status, value) = s90_from_counts(&edges, &base, cfg.s90_level);
    let mut reps = Vec::new();
    if nb > 0 {
        for r in 0..cfg.bootstrap_reps {
            let mut rng = crate::rng::stream(
                seed,
                &format!("score/s90-bootstrap/{axis}/{region}"),
                r as u64,
            );
            // Resampling the n rows of a bin with replacement gives (TP, FP, FN) counts
            // ~ Multinomial(n; counts / n): drawn as two binomials, O(bins) per replica.
            let c: Vec<[usize; 3]> = base
                .iter()
                .map(|&[tp, fp, fnn]| {
                    let n = (tp + fp + fnn) as u64;
                    if n == 0 {
                        return [0, 0, 0];
                    }
                    let a = binomial(&mut rng, n, tp as f64 / n as f64);
                    let rest = n - a;
                    let b = if fp + fnn == 0 {
                        0
                    } else {
                        binomial(&mut rng, rest, fp as f64 / (fp + fnn) as f64)
                    };
                    [a as usize, b as usize, (rest - b) as usize]
                })
                .collect();
            if let (_, Some(x)) = s90_from_counts(&edges, &c, cfg.s90_level) {
                reps.push(x);
            }
        }
    }
    reps.sort_by(f64::total_cmp);
    let a = (1.0 - cfg.bootstrap_ci) / 2.0;
    S90 {
        axis: axis.into(),
        region: region.into(),
        level: cfg.s90_level,
        rule: "all_bins_above".into(),
        purity: None,
        completeness: None,
        status,
        value,
        bootstrap_reps: cfg.bootstrap_reps,
        bootstrap_reached: reps.len(),
        // an interval only around a reached point estimate
        interval_lo: value.and_then(|_| quantile_sorted(&reps, a)),
        interval_hi: value.and_then(|_| quantile_sorted(&reps, 1.0 - a)),
        bins: (0..nb)
            .map(|b| {
                let [tp, fp, fnn] = base[b];
                S90Bin {
                    lo: edges[b],
                    hi: edges[b + 1],
                    purity: (tp + fp > 0).then(|| tp as f64 / (tp + fp) as f64),
                    completeness: (tp + fnn > 0).then(|| tp as f64 / (tp + fnn) as f64),
                }
            })
            .collect(),
    }
}

fn binomial(rng: &mut crate::rng::Rng, n: u64, p: f64) -> u64 {
    if p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    rand_distr::Binomial::new(n, p)
        .map(|d| rand_distr::Distribution::sample(&d, rng))
        .unwrap_or(0)
}

/// The rows of one axis and region (duplicates left out), each at its axis value.
fn items_of(
    truth: &[TruthRow],
    dets: &[Detection],
    m: &Matching,
    axis: &str,
    region: &str,
    cfg: &ScoreConfig,
) -> Vec<Item> {
    m.rows
        .iter()
        .filter(|r| r.status != Status::Duplicate)
        .filter(|r| region_ok(region, row_lat(r, truth, dets), cfg.latitude_cut_deg))
        .filter_map(|r| {
            Some(Item {
                x: axis_value(&truth[r.truth?], axis),
                status: r.status,
            })
        })
        .collect()
}

/// S90 of one axis (`S1`, `S10`, `SNR_c`, `SBR_c`) and region (`all`, `high_lat`,
/// `low_lat`) exactly as in [`report`], without the bootstrap interval.
pub fn s90_point(
    truth: &[TruthRow],
    dets: &[Detection],
    m: &Matching,
    axis: &str,
    region: &str,
    cfg: &ScoreConfig,
) -> S90 {
    let cfg = ScoreConfig {
        bootstrap_reps: 0,
        ..cfg.clone()
    };
    let finite: Vec<Item> = items_of(truth, dets, m, axis, region, &cfg)
        .into_iter()
        .filter(|i| i.x > 0.0 && i.x.is_finite())
        .collect();
    s90(axis, region, &finite, &cfg, 0)
}

/// Computes the detection report.
pub fn report(
    truth: &[TruthRow],
    dets: &[Detection],
    m: &Matching,
    mode: &str,
    cfg: &ScoreConfig,
    seed: u64,
) -> DetectionReport {
    let z = cfg.wilson_z;
    let purity = Proportion::new(m.n_tp, m.n_tp + m.n_fp, z);
    let completeness = Proportion::new(m.n_tp, m.n_tp + m.n_fn, z);
    let f1 = match (purity.value, completeness.value) {
        (Some(p), Some(c)) if p + c > 0.0 => Some(2.0 * p * c / (p + c)),
        _ => None,
    };
    let mut offs: Vec<f64> = m
        .rows
        .iter()
        .filter(|r| r.status == Status::TP && r.distance_deg.is_finite())
        .map(|r| r.distance_deg)
        .collect();
    offs.sort_by(f64::total_cmp);
    let localisation = Localisation {
        n: offs.len(),
        median_deg: quantile_sorted(&offs, 0.5),
        q68_deg: quantile_sorted(&offs, 0.68),
        q95_deg: quantile_sorted(&offs, 0.95),
    };
    let mut curves = Vec::new();
    let mut s90s = Vec::new();
    let regions = ["all", "high_lat", "low_lat"];
    for (axis, _) in AXES {
        let have = truth.iter().any(|t| {
            let v = axis_value(t, axis);
            v > 0.0 && v.is_finite()
        });
        if !have {
            continue;
        }
        for region in regions {
            let items = items_of(truth, dets, m, axis, region, cfg);
            curves.push(curve("purity", axis, region, &items, cfg));
            curves.push(curve("completeness", axis, region, &items, cfg));
            let finite: Vec<Item> = items
                .iter()
                .copied()
                .filter(|i| i.x > 0.0 && i.x.is_finite())
                .collect();
            s90s.push(s90(axis, region, &finite, cfg, seed));
        }
    }
    let fp_by_own_flux = if !dets.is_empty() && dets.iter().all(|d| d.flux_1000_ph_cm2_s.is_some())
    {
        let items: Vec<Item> = m
            .rows
            .iter()
            .filter(|r| matches!(r.status, Status::TP | Status::FP))
            .filter_map(|r| {
                Some(Item {
                    x: dets[r.det?].flux_1000_ph_cm2_s?,
                    status: r.status,
                })
            })
            .collect();
        Some(curve("purity", "own_S1", "all", &items, cfg))
    } else {
        None
    };
    let n_sources = m
        .rows
        .iter()
        .filter(|r| matches!(r.status, Status::TP | Status::FN))
        .count();
    DetectionReport {
        mode: mode.into(),
        match_radius_deg: cfg.match_radius_deg,
        n_detections: dets.len(),
        n_sources,
        tp: m.n_tp,
        fp: m.n_fp,
        fn_: m.n_fn,
        duplicate: m.n_duplicate,
        purity,
        completeness,
        f1,
        localisation,
        curves,
        fp_by_own_flux,
        s90: s90s,
        s90_definition: match cfg.s90_rule {
            S90Rule::Crossing => S90_DEFINITION,
            S90Rule::AllBinsAbove => S90_DEFINITION_ALL_BINS_ABOVE,
        }
        .into(),
        wilson_z: z,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wilson_known_values() {
        // k = 8, n = 10, z = 1.96: (0.4902, 0.9433) (Newcombe 1998, table I style check)
        let (lo, hi) = wilson(8, 10, 1.959964).unwrap();
        assert!(
            (lo - 0.490_16).abs() < 1e-4 && (hi - 0.943_32).abs() < 1e-4,
            "{lo} {hi}"
        );
        let (lo, hi) = wilson(0, 5, 1.0).unwrap();
        assert_eq!(lo, 0.0);
        assert!(hi > 0.0 && hi < 0.3);
        assert!(wilson(0, 0, 1.0).is_none());
    }

    #[test]
    fn merging_reaches_min_count() {
        let edges = vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0];
        let counts = vec![vec![3], vec![4], vec![10], vec![1], vec![2]];
        let e = merge_bins(&edges, &counts, |c| c[0] >= 5);
        // 3+4 -> [1, 3); 10 -> [3, 4); the short tail 1+2 joins its neighbour -> [3, 6]
        assert_eq!(e, vec![1.0, 3.0, 6.0]);
        assert_eq!(bin_of(&e, 6.0), Some(1));
        assert_eq!(bin_of(&e, 0.5), None);
    }

    #[test]
    fn crossing_ignores_small_bright_bins_but_not_significant_failures() {
        // log10 edges 0..6, centres 0.5 .. 5.5
        let edges: Vec<f64> = (0..=6).map(|i| 10f64.powi(i)).collect();
        let n = [100, 100, 100, 100, 100, 5];
        // 0.5, 0.8, 0.95, 0.97, 0.96, then 3 of 5 in the brightest bin
        let k = [50, 80, 95, 97, 96, 3];
        let (st, v) = crossing_from_counts(&edges, &k, &n, 0.9, 3.0);
        assert_eq!(st, "reached");
        // between the centres of bins 1 and 2: t = (0.9 - 0.8) / 0.15 = 2/3
        let want = 10f64.powf(1.5 + 2.0 / 3.0);
        assert!((v.unwrap() / want - 1.0).abs() < 1e-12, "{v:?}");
        // the same bright bin with 500 sources (300 found) is a significant failure
        let n2 = [100, 100, 100, 100, 100, 500];
        let k2 = [50, 80, 95, 97, 96, 300];
        assert_eq!(
            crossing_from_counts(&edges, &k2, &n2, 0.9, 3.0),
            ("not_reached", None)
        );
        // a failing middle bin moves the crossing above it
        let k3 = [50, 80, 95, 60, 96, 3];
        let (st, v) = crossing_from_counts(&edges, &k3, &n, 0.9, 3.0);
        assert_eq!(st, "reached");
        let want = 10f64.powf(3.5 + (0.9 - 0.6) / (0.96 - 0.6));
        assert!((v.unwrap() / want - 1.0).abs() < 1e-12);
        // every bin passes: an upper bound at the lowest edge
        let all = [95, 95, 95, 95, 95, 5];
        assert_eq!(
            crossing_from_counts(&edges, &all, &n, 0.9, 3.0),
            ("reached_at_lowest_bin", Some(1.0))
        );
    }

    #[test]
    fn quantiles_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(quantile_sorted(&v, 0.5), Some(2.5));
        assert!((quantile_sorted(&v, 0.68).unwrap() - 3.04).abs() < 1e-12);
    }
}
