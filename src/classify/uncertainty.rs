//! The Bayesian network's uncertainty figure (Manconi et al., ICRC 2021, Fig. 3 right): for
//! each augmentation setting, the per-source spread `sigma_i` of the positive-class
//! probability over the MC-dropout weight draws (`std_p_<class>` of `oof_predictions.csv`)
//! against its mean `mu_i` (`p_<class>`), one point per test source, with the mean spread in
//! ten bins of `mu` on top (the paper's histograms of the mean values within the bins):
//! `s_b = (1 / n_b) sum_{mu_i in bin b} sigma_i`, bins `[b/10, (b+1)/10)`.
//!
//! `gammabench classify spread-figure --run LABEL=DIR ... --out DIR` writes
//! `bnn_spread_vs_mean.{png,svg}` (one panel per run and one with every binned curve) and
//! `bnn_spread_vs_mean.csv` (`setting,bin_lo,bin_hi,n_sources,mean_spread`).

use crate::error::{Error, Result};
use crate::formats::{atomic_write, fmt_f64};
use crate::plot::{Chart, SeriesKind, color};
use std::fmt::Write as _;
use std::path::Path;

/// Number of bins of the mean score.
pub const BINS: usize = 10;

/// `(mean, spread)` of the positive (last) class of every row of a Bayesian run's
/// `oof_predictions.csv`, and that class's name.
pub fn read_spread(path: &Path) -> Result<(String, Vec<(f64, f64)>)> {
    let mut rdr = crate::formats::csv_reader(path)?;
    let h = rdr
        .headers()
        .map_err(|e| Error::bad_file(path, e.to_string()))?
        .clone();
    let si = h
        .iter()
        .position(|c| c.starts_with("std_p_"))
        .ok_or_else(|| {
            Error::bad_file(
                path,
                "no `std_p_<class>` column (not a Bayesian run: classify.variant = \"bnn\")",
            )
        })?;
    let class = h[si].trim_start_matches("std_p_").to_string();
    let pi = h
        .iter()
        .position(|c| c == format!("p_{class}"))
        .ok_or_else(|| Error::bad_file(path, format!("missing column `p_{class}`")))?;
    let mut out = Vec::new();
    for (r, rec) in rdr.records().enumerate() {
        let line = r + 2;
        let rec = rec.map_err(|e| Error::bad_file(path, format!("line {line}: {e}")))?;
        let num = |c: usize| -> Result<f64> {
            rec[c].trim().parse::<f64>().map_err(|e| Error::Data {
                file: path.display().to_string(),
                line,
                column: c + 1,
                field: h[c].to_string(),
                message: format!("not a number: {e}"),
            })
        };
        out.push((num(pi)?, num(si)?));
    }
    Ok((class, out))
}

/// Mean spread and count per bin of the mean score (empty bins: NaN, 0).
pub fn binned(points: &[(f64, f64)]) -> Vec<(f64, usize)> {
    let mut sum = [0.0; BINS];
    let mut n = [0usize; BINS];
    for &(m, s) in points {
        let b = ((m * BINS as f64).floor() as usize).min(BINS - 1);
        sum[b] += s;
        n[b] += 1;
    }
    (0..BINS)
        .map(|b| {
            (
                if n[b] > 0 {
                    sum[b] / n[b] as f64
                } else {
                    f64::NAN
                },
                n[b],
            )
        })
        .collect()
}

/// Draws the figure and writes the table for `runs` (label, `classify cv` output dir).
pub fn spread_figure(runs: &[(String, std::path::PathBuf)], out: &Path) -> Result<()> {
    if runs.is_empty() {
        return Err(Error::Usage(
            "spread-figure needs at least one --run".into(),
        ));
    }
    let centres: Vec<f64> = (0..BINS).map(|b| (b as f64 + 0.5) / BINS as f64).collect();
    let mut csv = String::from("setting,bin_lo,bin_hi,n_sources,mean_spread\n");
    let mut panels = Vec::new();
    let mut all = Vec::new();
    let mut class = String::new();
    for (i, (label, dir)) in runs.iter().enumerate() {
        let (cl, pts) = read_spread(&dir.join("oof_predictions.csv"))?;
        class = cl;
        let bins = binned(&pts);
        for (b, (s, n)) in bins.iter().enumerate() {
            writeln!(
                csv,
                "{label},{},{},{n},{}",
                fmt_f64(b as f64 / BINS as f64),
                fmt_f64((b + 1) as f64 / BINS as f64),
                fmt_f64(*s)
            )
            .ok();
        }
        let (xs, ys): (Vec<f64>, Vec<f64>) = bins
            .iter()
            .zip(&centres)
            .filter(|((s, _), _)| s.is_finite())
            .map(|((s, _), c)| (*c, *s))
            .unzip();
        let chart = Chart::new(
            &format!("BNN, {label}"),
            &format!("mean p({class})"),
            &format!("std p({class}) over weight draws"),
        )
        .with(
            "sources",
            color(i),
            SeriesKind::Points {
                xs: pts.iter().map(|p| p.0).collect(),
                ys: pts.iter().map(|p| p.1).collect(),
                yerr: None,
            },
        )
        .with(
            "bin mean",
            crate::plot::color(7),
            SeriesKind::Line {
                xs: xs.clone(),
                ys: ys.clone(),
            },
        );
        panels.push(chart);
        all.push((label.clone(), xs, ys));
    }
    let mut overlay = Chart::new(
        "BNN spread, bin means",
        &format!("mean p({class})"),
        &format!("mean std p({class})"),
    );
    for (i, (label, xs, ys)) in all.into_iter().enumerate() {
        overlay = overlay.with(&label, color(i), SeriesKind::Line { xs, ys });
    }
    panels.push(overlay);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    crate::plot::save(&panels, 2, out, "bnn_spread_vs_mean")?;
    atomic_write(&out.join("bnn_spread_vs_mean.csv"), csv.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_average_the_spread_by_mean_score() {
        let b = binned(&[(0.05, 0.1), (0.07, 0.3), (0.95, 0.02), (1.0, 0.04)]);
        assert_eq!(b.len(), BINS);
        assert!((b[0].0 - 0.2).abs() < 1e-12 && b[0].1 == 2);
        assert!((b[9].0 - 0.03).abs() < 1e-12 && b[9].1 == 2);
        assert!(b[5].0.is_nan() && b[5].1 == 0);
    }
}
