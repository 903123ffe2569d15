//! The nightly trend page: `trend.html` and one PNG (and SVG) per headline metric under
//! `trend/`, drawn from `history.jsonl.gz` (see [`super::history`]).
//!
//! Each figure shows the metric night by night, the tolerance band each night was judged
//! against (the median of the `window` nights before it, plus and minus the rule's tolerance),
//! and a red marker at every night whose value moved beyond the tolerance from the previous
//! night: the commit where a step happened, listed by commit in the page's table.
//!
//! Headline metrics are the ones a reader follows over time: purity, completeness, F1 and S90
//! (S1, all latitudes) of every `score` stage (detector x sky), the classifiers' AUCs, and the
//! speed figures (detection time and patches per second, diffuse rendering time, training wall
//! time, criterion bench means). The thousands of other compared metrics stay in `drift.json`.

use super::history::{self, Record};
use super::html::{Section, page_with_summary};
use super::table::{Table, format_sig};
use crate::config::NightlyConfig;
use crate::error::Result;
use crate::plot::{Chart, SeriesKind};
use plotters::style::RGBColor;
use std::collections::BTreeSet;
use std::path::Path;

/// Summary keys (the last `/` segment of a metric name) drawn on the trend page.
const HEADLINE_KEYS: &[&str] = &[
    "purity",
    "completeness",
    "f1",
    "s90.S1_all.value",
    "pooled_out_of_fold.macro_roc_auc",
    "metrics.auc.mean",
    "detect_s",
    "patches_per_s",
    "render_s",
];

/// True for a metric drawn on the trend page (see the module doc).
pub fn is_headline(metric: &str) -> bool {
    let stage = metric.split('/').next().unwrap_or("");
    let key = metric.rsplit('/').next().unwrap_or("");
    stage == "bench" || (stage == "train" && key == "wall_time_s") || HEADLINE_KEYS.contains(&key)
}

/// One metric's trend: its value per night, the band each night was judged against, the
/// nights where a step happened.
#[derive(Debug, Clone, PartialEq)]
pub struct Trend {
    pub metric: String,
    pub values: Vec<Option<f64>>,
    /// `(night, lo, hi)` for every night that had earlier nights with the metric.
    pub band: Vec<(usize, f64, f64)>,
    pub steps: Vec<usize>,
}

/// The trend of `metric` over `history`.
pub fn trend_of(history: &[Record], metric: &str, cfg: &NightlyConfig, window: usize) -> Trend {
    let rule = history::rule_for(cfg, metric);
    let values: Vec<Option<f64>> = history
        .iter()
        .map(|r| r.metrics.get(metric).copied())
        .collect();
    let mut band = Vec::new();
    for i in 0..values.len() {
        let lo = i.saturating_sub(window.max(1));
        let prior: Vec<f64> = values[lo..i].iter().flatten().copied().collect();
        if let Some(m) = history::median(&prior) {
            let t = history::tolerance(&rule, m);
            band.push((i, m - t, m + t));
        }
    }
    Trend {
        metric: metric.to_string(),
        steps: history::steps(&values, &rule),
        values,
        band,
    }
}

/// A short, file-safe name for a metric's figure: the stage, the key and a hash of the name
/// (grid-point labels are long and full of `|`, `=` and spaces).
fn slug(metric: &str) -> String {
    let stage = metric.split('/').next().unwrap_or("m");
    let key = metric.rsplit('/').next().unwrap_or("m");
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect()
    };
    let h = crate::formats::sha256_hex(metric.as_bytes());
    format!("{}-{}-{}", clean(stage), clean(key), &h[..10])
}

fn short(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let head: String = s.chars().take(n).collect();
        format!("{head}...")
    }
}

/// Writes `dir/trend.html` and `dir/trend/<metric>.{png,svg}` for every headline metric of
/// `history`; returns the number of figures.
/// The x of night `i` (0-based in the history): nights are numbered from 1, as in the table.
fn night(i: usize) -> f64 {
    (i + 1) as f64
}

pub fn write(history: &[Record], cfg: &NightlyConfig, window: usize, dir: &Path) -> Result<usize> {
    let names: BTreeSet<&String> = history
        .iter()
        .flat_map(|r| r.metrics.keys())
        .filter(|m| is_headline(m))
        .collect();
    let fig_dir = dir.join("trend");
    let red = RGBColor(214, 39, 40);
    let blue = RGBColor(31, 119, 180);
    let band_colour = RGBColor(160, 200, 230);
    let mut rows = Vec::new();
    let mut figures = Vec::new();
    for m in &names {
        let t = trend_of(history, m, cfg, window);
        let present: Vec<(f64, f64)> = t
            .values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (night(i), v)))
            .collect();
        let mut chart =
            Chart::new(&short(m, 90), "night (commits in the table)", "value").integer_x();
        if !t.band.is_empty() {
            chart = chart.with(
                &format!("reference +- tolerance (median of {window} nights)"),
                band_colour,
                SeriesKind::Band {
                    xs: t.band.iter().map(|b| night(b.0)).collect(),
                    lo: t.band.iter().map(|b| b.1).collect(),
                    hi: t.band.iter().map(|b| b.2).collect(),
                },
            );
        }
        chart = chart.with(
            "value",
            blue,
            SeriesKind::Line {
                xs: present.iter().map(|p| p.0).collect(),
                ys: present.iter().map(|p| p.1).collect(),
            },
        );
        if !t.steps.is_empty() {
            chart = chart.with(
                "step",
                red,
                SeriesKind::Points {
                    xs: t.steps.iter().map(|&i| night(i)).collect(),
                    ys: t.steps.iter().filter_map(|&i| t.values[i]).collect(),
                    yerr: None,
                },
            );
        }
        let stem = slug(m);
        crate::plot::save(&[chart], 1, &fig_dir, &stem)?;
        figures.push((short(m, 120), format!("trend/{stem}.png")));
        let last = t.values.iter().rev().flatten().next().copied();
        let step_commits: Vec<String> = t
            .steps
            .iter()
            .map(|&i| short(&history[i].commit, 12))
            .collect();
        rows.push(vec![
            m.to_string(),
            last.map(|v| format_sig(v, 6)).unwrap_or_default(),
            t.band
                .last()
                .filter(|b| b.0 + 1 == t.values.len())
                .map(|b| format!("{} .. {}", format_sig(b.1, 4), format_sig(b.2, 4)))
                .unwrap_or_default(),
            step_commits.join(" "),
            format!("trend/{stem}.png"),
        ]);
    }
    let nights = Table {
        header: [
            "night",
            "commit",
            "date (UTC)",
            "crate",
            "data",
            "code",
            "metrics",
        ]
        .map(String::from)
        .to_vec(),
        rows: history
            .iter()
            .enumerate()
            .map(|(i, r)| {
                vec![
                    (i + 1).to_string(),
                    short(&r.commit, 12),
                    r.date_utc.clone(),
                    r.crate_version.clone(),
                    short(&r.data_version, 12),
                    short(&r.code_version, 12),
                    r.metrics.len().to_string(),
                ]
            })
            .collect(),
        json: None,
    };
    let metrics = Table {
        header: [
            "metric",
            "last",
            "band of the last night",
            "steps at commit",
            "figure",
        ]
        .map(String::from)
        .to_vec(),
        rows,
        json: None,
    };
    let summary = format!(
        "<p>{} nights, {} headline metrics; each night is judged against the median of the \
         {window} nights before it under the grid's <code>[[nightly.rules]]</code>; a red \
         marker is a step (a change beyond the tolerance from the previous night).</p>",
        history.len(),
        names.len()
    );
    let sections = vec![
        Section {
            title: "Nights".into(),
            note: String::new(),
            table: nights,
            figures: vec![],
        },
        Section {
            title: "Headline metrics".into(),
            note: String::new(),
            table: metrics,
            figures,
        },
    ];
    let html = page_with_summary("Nightly trend", &summary, &sections);
    crate::formats::atomic_write(&dir.join("trend.html"), html.as_bytes())?;
    Ok(names.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::NightlyRule;

    fn rec(commit: &str, v: Option<f64>) -> Record {
        Record {
            commit: commit.into(),
            date_utc: "2026-12-02T03:00:00Z".into(),
            crate_version: "0.1.0".into(),
            data_version: "d".into(),
            code_version: "c".into(),
            metrics: v
                .map(|v| ("score/F0-B1 unek/purity".to_string(), v))
                .into_iter()
                .chain([("score/F0-B1 unek/n_detections".to_string(), 7.0)])
                .collect(),
        }
    }

    #[test]
    fn headline_selection() {
        assert!(is_headline("score/x/purity"));
        assert!(is_headline("score/x/s90.S1_all.value"));
        assert!(!is_headline("score/x/s90.S1_all.interval_lo"));
        assert!(is_headline("train/x/wall_time_s"));
        assert!(!is_headline("catalog/x/wall_time_s"));
        assert!(is_headline("bench/render/mean_ns"));
        assert!(!is_headline("score/x/n_detections"));
    }

    #[test]
    fn band_steps_and_page() {
        let cfg = NightlyConfig {
            rules: vec![NightlyRule {
                pattern: "purity".into(),
                direction: "higher_is_better".into(),
                rel_tol: 0.0,
                abs_tol: 0.01,
            }],
            window: Some(2),
        };
        let h = vec![
            rec("aaa", Some(0.5)),
            rec("bbb", Some(0.505)),
            rec("ccc", None),
            rec("ddd", Some(0.6)),
        ];
        let t = trend_of(&h, "score/F0-B1 unek/purity", &cfg, 2);
        assert_eq!(t.steps, vec![3]);
        // night 1: median of night 0; night 2: of nights 0, 1; night 3: of night 1 only
        assert_eq!(t.band.len(), 3);
        assert_eq!(t.band[0].0, 1);
        assert!((t.band[0].1 - 0.49).abs() < 1e-12 && (t.band[0].2 - 0.51).abs() < 1e-12);
        assert!((t.band[1].1 - 0.4925).abs() < 1e-12);
        assert!((t.band[2].1 - 0.495).abs() < 1e-12 && (t.band[2].2 - 0.515).abs() < 1e-12);
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(write(&h, &cfg, 2, dir.path()).unwrap(), 1);
        let html = std::fs::read_to_string(dir.path().join("trend.html")).unwrap();
        assert!(html.contains("ddd"), "the step's commit is listed");
        let pngs: Vec<_> = std::fs::read_dir(dir.path().join("trend"))
            .unwrap()
            .flatten()
            .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
            .collect();
        assert_eq!(pngs.len(), 1);
    }
}
