//! Union and intersection of UNEK and CNET (Panes et al. 2021, sect. 4), scored like the
//! grid's own detectors.
//!
//! For every test sky with both a `unek` and a `cnet` score stage on the same test patches,
//! the two stored detection lists are combined with [`crate::detect::combine`] (matched in
//! the same patch within the scorer's `match_radius_deg`) and scored against that sky's
//! `truth.csv` / `patches.csv` with [`crate::score::score_detections`] under the `[score]`
//! section and seed of the UNEK score stage. The results become two detection-leaderboard
//! rows ([`UNION`], [`INTERSECTION`]) and one row of `combination_claims.csv` per sky: TP and
//! FP of UNEK, CNET, the union and the intersection, the four ratios to UNEK alone, the
//! paper's claims beside them and whether each holds within [`CLAIMS`]' tolerance.
//!
//! The paper's claims (F0-B1/B2/B3, UNEK and CNET of similar quality): the union has about
//! 10 % more TP and nearly twice the FP; the intersection about 90 % fewer FP for 10 % fewer
//! TP. Everything here is deterministic: the combination is ordered, the scorer is seeded.

use super::Entry;
use super::table::{Table, format_sig};
use crate::detect::Detection;
use crate::error::{Error, Result};
use crate::score::config::ScoreConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Detector name of the union rows.
pub const UNION: &str = "unek∪cnet";
/// Detector name of the intersection rows.
pub const INTERSECTION: &str = "unek∩cnet";

/// A claim of Panes et al. 2021, sect. 4: (ratio, claimed value, tolerance either side).
pub const CLAIMS: [(&str, f64, f64); 4] = [
    ("TP_union/TP_unek", 1.10, 0.05),
    ("FP_union/FP_unek", 2.00, 0.25),
    ("TP_inter/TP_unek", 0.90, 0.05),
    ("FP_inter/FP_unek", 0.10, 0.05),
];

/// Counts of one scored detection list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct Counts {
    pub detections: usize,
    pub tp: usize,
    pub fp: usize,
    /// Detections on an already matched source (global matching), neither TP nor FP.
    pub duplicate: usize,
}

impl Counts {
    fn of_report(r: &crate::score::detection::DetectionReport) -> Self {
        Counts {
            detections: r.n_detections,
            tp: r.tp,
            fp: r.fp,
            duplicate: r.duplicate,
        }
    }
    fn of_summary(s: &serde_json::Value) -> Option<Self> {
        let u = |k: &str| s[k].as_u64().map(|v| v as usize);
        Some(Counts {
            detections: u("n_detections")?,
            tp: u("tp")?,
            fp: u("fp")?,
            duplicate: u("duplicate").unwrap_or(0),
        })
    }
}

/// One combined list, scored: its counts and the summary a score stage would keep
/// ([`crate::score::stage::report_summary`] with the grid coordinates).
#[derive(Debug, Clone)]
pub struct Scored {
    pub counts: Counts,
    pub summary: serde_json::Value,
    /// Where its detections, curves, S90 and metrics were written.
    pub dir: PathBuf,
}

/// The union and intersection of one test sky.
#[derive(Debug, Clone)]
pub struct Combination {
    pub preset: String,
    pub iem: String,
    pub unek: Counts,
    pub cnet: Counts,
    pub union: Scored,
    pub intersection: Scored,
    /// Hashes of the UNEK and CNET score stages.
    pub from: (String, String),
}

/// Scores the union and the intersection of `a` and `b` against a truth table and patch
/// list, writing each into `out/union/` and `out/intersection/` (`detections.csv`,
/// `curves.csv`, `s90.csv`, `metrics.json`; the per-row match table is not kept).
pub fn score_pair(
    truth: &Path,
    patches: &Path,
    a: &[Detection],
    b: &[Detection],
    cfg: &ScoreConfig,
    seed: u64,
    out: &Path,
) -> Result<[(crate::score::detection::DetectionReport, PathBuf); 2]> {
    let r = cfg.match_radius_deg;
    let lists = [
        ("union", crate::detect::combine::union(a, b, r)),
        (
            "intersection",
            crate::detect::combine::intersection(a, b, r),
        ),
    ];
    let mut reps = Vec::new();
    for (name, dets) in lists {
        let dir = out.join(name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        crate::detect::write_detections(&dir, &dets)?;
        let rep = crate::score::score_detections(
            truth,
            &dir.join("detections.csv"),
            Some(patches),
            &dir,
            cfg,
            seed,
            false,
        )?;
        // the combined detections are re-made from the stored ones with `gammabench combine`
        for big in [
            "match_table.csv",
            "evaluation.csv",
            "detections_published.csv",
            "detections.csv",
        ] {
            let _ = std::fs::remove_file(dir.join(big));
        }
        reps.push((rep, dir));
    }
    let mut it = reps.into_iter();
    Ok([it.next().expect("union"), it.next().expect("intersection")])
}

fn grid(e: &Entry) -> (String, String, String, String) {
    let g = &e.manifest.summary["grid"];
    let f = |k: &str| g[k].as_str().unwrap_or("?").to_string();
    (f("preset"), f("iem"), f("detector"), f("trained_on"))
}

/// The store root of a stage output (`<root>/<stage>/<hash>`).
fn root_of(e: &Entry) -> Option<&Path> {
    e.dir.parent().and_then(|p| p.parent())
}

/// Combines the UNEK and CNET score stages of one sky; `Ok(None)` (with a warning) when
/// their inputs cannot be found or they were scored on different patches or rules.
fn combine_sky(unek: &Entry, cnet: &Entry, out: &Path) -> Result<Option<Combination>> {
    let (preset, iem, _, trained) = grid(unek);
    let sky = format!("{preset}-{iem}");
    let input = |e: &Entry, k: &str| e.manifest.inputs.get(k).cloned();
    let (Some(root), Some(pu), Some(pc), Some(du), Some(dc)) = (
        root_of(unek),
        input(unek, "patches"),
        input(cnet, "patches"),
        input(unek, "detections"),
        input(cnet, "detections"),
    ) else {
        log::warn!("{sky}: union/intersection left out (the score stages name no inputs)");
        return Ok(None);
    };
    if pu != pc {
        log::warn!(
            "{sky}: union/intersection left out (UNEK and CNET were tested on different patches)"
        );
        return Ok(None);
    }
    let cfg = super::paper_layout::score_config(unek);
    if cfg != super::paper_layout::score_config(cnet) {
        log::warn!(
            "{sky}: union/intersection left out (UNEK and CNET were scored with different [score] sections)"
        );
        return Ok(None);
    }
    let pdir = root.join("patches").join(&pu);
    let (truth, patches) = (pdir.join("truth.csv"), pdir.join("patches.csv"));
    let (fu, fc) = (
        root.join("detect").join(&du).join("detections.csv"),
        root.join("detect").join(&dc).join("detections.csv"),
    );
    if ![&truth, &patches, &fu, &fc].iter().all(|p| p.exists()) {
        log::warn!("{sky}: union/intersection left out (detections or truth not in the store)");
        return Ok(None);
    }
    let a = crate::detect::read_detections(&fu)?;
    let b = crate::detect::read_detections(&fc)?;
    let seed = unek.manifest.seed;
    let [(ru, dir_u), (ri, dir_i)] =
        score_pair(&truth, &patches, &a, &b, &cfg, seed, &out.join(&sky))?;
    let counts_of = |e: &Entry| -> Result<Counts> {
        match Counts::of_summary(&e.manifest.summary) {
            Some(c) => Ok(c),
            None => {
                // an older summary without counts: score the stored detections again
                let tmp = out.join(&sky).join(format!(".rescore-{}", grid(e).2));
                let f = root
                    .join("detect")
                    .join(input(e, "detections").unwrap_or_default())
                    .join("detections.csv");
                let r = crate::score::score_detections(
                    &truth,
                    &f,
                    Some(&patches),
                    &tmp,
                    &cfg,
                    e.manifest.seed,
                    false,
                )?;
                let _ = std::fs::remove_dir_all(&tmp);
                Ok(Counts::of_report(&r))
            }
        }
    };
    let trained_on = {
        let tc = grid(cnet).3;
        if tc == trained {
            trained
        } else {
            format!("{trained} / {tc}")
        }
    };
    let scored = |r: &crate::score::detection::DetectionReport, dir: PathBuf, name: &str| {
        let mut s = crate::score::stage::report_summary(r);
        s["grid"] = serde_json::json!({
            "preset": preset, "iem": iem, "detector": name, "trained_on": trained_on,
        });
        Scored {
            counts: Counts::of_report(r),
            summary: s,
            dir,
        }
    };
    Ok(Some(Combination {
        preset: preset.clone(),
        iem: iem.clone(),
        unek: counts_of(unek)?,
        cnet: counts_of(cnet)?,
        union: scored(&ru, dir_u, UNION),
        intersection: scored(&ri, dir_i, INTERSECTION),
        from: (unek.manifest.hash.clone(), cnet.manifest.hash.clone()),
    }))
}

/// The union and intersection of every test sky (sorted by preset and emission model) that
/// has both a `unek` and a `cnet` score stage; nothing when the grid lacks either. Where a
/// sky has both networks trained by the grid and imported ones (score hashes in
/// `pretrained`, e.g. the nightly grid's shipped models), the grid's own are combined, so
/// that the pair is always of one kind. Outputs go to `out/<preset>-<iem>/{union,intersection}/`.
pub fn combine_all(
    scores: &[&Entry],
    pretrained: &std::collections::BTreeSet<String>,
    out: &Path,
) -> Result<Vec<Combination>> {
    // per sky and head, the grid's own network where the grid trained one, else the
    // imported one: the key's `false` (grid-trained) sorts before `true` (imported)
    let mut by_sky: BTreeMap<(String, String), BTreeMap<String, &Entry>> = BTreeMap::new();
    let mut candidates: BTreeMap<(String, String, String, bool), &Entry> = BTreeMap::new();
    for e in scores {
        let (p, i, d, _) = grid(e);
        if d == "unek" || d == "cnet" {
            let imported = pretrained.contains(&e.manifest.hash);
            candidates.insert((p, i, d, imported), *e);
        }
    }
    for ((p, i, d, _), e) in candidates {
        by_sky.entry((p, i)).or_default().entry(d).or_insert(e);
    }
    let mut all = Vec::new();
    for (_, ds) in by_sky {
        if let (Some(u), Some(c)) = (ds.get("unek"), ds.get("cnet"))
            && let Some(x) = combine_sky(u, c, out)?
        {
            all.push(x);
        }
    }
    Ok(all)
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The four ratios of a combination to UNEK alone, in the order of [`CLAIMS`].
pub fn ratios(c: &Combination) -> [Option<f64>; 4] {
    [
        ratio(c.union.counts.tp, c.unek.tp),
        ratio(c.union.counts.fp, c.unek.fp),
        ratio(c.intersection.counts.tp, c.unek.tp),
        ratio(c.intersection.counts.fp, c.unek.fp),
    ]
}

/// Whether a measured ratio is within the tolerance of its claim.
pub fn holds(value: Option<f64>, claim: f64, tol: f64) -> Option<bool> {
    value.map(|v| (v - claim).abs() <= tol + 1e-12)
}

/// `combination_claims`: one row per sky: counts, the four ratios, the claims beside them
/// and whether each holds.
pub fn claims_table(all: &[Combination]) -> Table {
    let mut header: Vec<String> = [
        "preset",
        "iem",
        "TP unek",
        "FP unek",
        "TP cnet",
        "FP cnet",
        "TP union",
        "FP union",
        "TP intersection",
        "FP intersection",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for (name, claim, tol) in CLAIMS {
        header.push(name.to_string());
        header.push(format!("{name} claimed"));
        header.push(format!("{name} holds (claimed ± {tol})"));
        let _ = claim;
    }
    let rows = all
        .iter()
        .map(|c| {
            let mut row = vec![
                c.preset.clone(),
                c.iem.clone(),
                c.unek.tp.to_string(),
                c.unek.fp.to_string(),
                c.cnet.tp.to_string(),
                c.cnet.fp.to_string(),
                c.union.counts.tp.to_string(),
                c.union.counts.fp.to_string(),
                c.intersection.counts.tp.to_string(),
                c.intersection.counts.fp.to_string(),
            ];
            for (v, (_, claim, tol)) in ratios(c).into_iter().zip(CLAIMS) {
                row.push(v.map(|x| format_sig(x, 4)).unwrap_or_default());
                row.push(format_sig(claim, 3));
                row.push(match holds(v, claim, tol) {
                    Some(true) => "yes".into(),
                    Some(false) => "no".into(),
                    None => "undefined".into(),
                });
            }
            row
        })
        .collect();
    Table {
        header,
        rows,
        json: None,
    }
}

/// The combinations as a JSON value for the report's manifest.
pub fn json(all: &[Combination]) -> serde_json::Value {
    serde_json::Value::Array(
        all.iter()
            .map(|c| {
                serde_json::json!({
                    "preset": c.preset, "iem": c.iem,
                    "from_score_stages": [c.from.0, c.from.1],
                    "unek": c.unek, "cnet": c.cnet,
                    "union": c.union.counts, "intersection": c.intersection.counts,
                    "ratios": CLAIMS.iter().zip(ratios(c)).map(|((n, claim, tol), v)| {
                        serde_json::json!({"ratio": n, "value": v, "claimed": claim,
                                           "tolerance": tol, "holds": holds(v, *claim, *tol)})
                    }).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
