//! Publishing: leaderboards (CSV, Markdown, JSON), figures and a static HTML report, built
//! from stage manifests only (never by re-running anything).
//!
//! `gammabench report CONFIG_OR_DIR --out results/<name>/` rebuilds the plan of the config
//! (which stages, which hashes), reads every stage's manifest from the store, and writes:
//! * `leaderboard_{detection,robustness,classification}.{csv,md,json}`: the curated
//!   leaderboards of [`leaderboards`] (per test sky, the B1/B2/B3 robustness matrix, per
//!   classifier) and their cross-sky figures;
//! * `leaderboard_<stage>.{csv,md,json}`: one row per stage output, the headline numbers of
//!   its manifest summary as columns (readable headers with the key in brackets, see
//!   [`columns`]; the JSON keeps the keys, nested ones joined with `.`, and typed values);
//! * `speed.{csv,md,json}`: wall time per stage output;
//! * `figures/<stage>/<hash>/...`: every figure the stages drew (PNG and SVG);
//! * `index.html`: all of it on one page, readable offline, opening with a summary block
//!   ([`summary`]: what ran, at which scale, a warning below the paper's scale, the papers'
//!   numbers beside ours), then the curated leaderboards, the sky maps and catalog figures;
//! * `manifest.json`: what was published (stage hashes and the file hashes), for
//!   `gammabench reproduce`.

pub mod columns;
pub mod combinations;
pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::NightlyConfig as Config;
pub mod history;
pub mod html;
pub mod leaderboards;
pub mod nightly;
pub mod paper_layout;
pub mod published;
pub mod reproduce;
pub mod summary;
pub mod table;
pub mod trend;

use crate::error::{Error, Result};
use crate::formats::atomic_write;
use crate::store::{Manifest, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use table::Table;

/// One stored stage output of a plan.
#[derive(Debug, Clone)]
pub struct Entry {
    pub stage: String,
    pub label: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// Reads the manifest of every planned stage, given as `(stage, label, key)` in plan order
/// (`pipeline::collect` passes a plan's nodes); an error lists the stages not yet computed.
pub fn collect<'a>(
    nodes: impl IntoIterator<Item = (&'a str, &'a str, &'a crate::store::StageKey)>,
    store: &Store,
) -> Result<Vec<Entry>> {
    let mut out = Vec::new();
    let mut missing = Vec::new();
    let mut corrupt = Vec::new();
    for (stage, label, key) in nodes {
        match store.lookup(key) {
            Some(o) => {
                let problems = store.verify(&o);
                if problems.is_empty() {
                    out.push(Entry {
                        stage: stage.to_string(),
                        label: label.to_string(),
                        dir: o.dir,
                        manifest: o.manifest,
                    });
                } else {
                    corrupt.push(format!("{} [{}]: {}", stage, label, problems.join("; ")));
                }
            }
            None => missing.push(format!("{} {} [{}]", stage, &key.hash()[..12], label)),
        }
    }
    if !corrupt.is_empty() {
        return Err(Error::Usage(format!(
            "{} stored stage(s) of this plan fail verification, nothing published (`gammabench run` recomputes them): {}",
            corrupt.len(),
            corrupt.join("; ")
        )));
    }
    if !missing.is_empty() {
        return Err(Error::Usage(format!(
            "{} stage(s) of this plan are not in the store (run `gammabench run` first): {}",
            missing.len(),
            missing.join("; ")
        )));
    }
    Ok(out)
}

/// Flattens the scalar leaves of a JSON value into `prefix.key` columns (arrays skipped).
pub fn flatten(v: &serde_json::Value, prefix: &str, out: &mut BTreeMap<String, serde_json::Value>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(x, &key, out);
            }
        }
        serde_json::Value::Array(_) | serde_json::Value::Null => {}
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

/// The leaderboard of one stage kind: one row per output. Headers are readable labels with
/// the summary key in brackets ([`columns::header`]); the JSON keeps the keys and the typed
/// values of every row.
pub fn stage_table(entries: &[&Entry]) -> Table {
    let mut rows: Vec<BTreeMap<String, serde_json::Value>> = Vec::new();
    for e in entries {
        let mut m = BTreeMap::new();
        flatten(&e.manifest.summary, "", &mut m);
        rows.push(m);
    }
    let mut cols: Vec<String> = rows.iter().flat_map(|r| r.keys().cloned()).collect();
    cols.sort();
    cols.dedup();
    let mut header = vec!["grid point".to_string(), "hash".to_string()];
    header.extend(cols.iter().map(|c| columns::header(c)));
    let json = serde_json::Value::Array(
        entries
            .iter()
            .zip(&rows)
            .map(|(e, r)| {
                let mut o = serde_json::Map::new();
                o.insert("grid point".into(), e.label.clone().into());
                o.insert("hash".into(), e.manifest.hash.clone().into());
                for c in &cols {
                    o.insert(c.clone(), r.get(c).cloned().unwrap_or_default());
                }
                serde_json::Value::Object(o)
            })
            .collect(),
    );
    let body = entries
        .iter()
        .zip(&rows)
        .map(|(e, r)| {
            let mut row = vec![e.label.clone(), e.manifest.hash[..12].to_string()];
            row.extend(
                cols.iter()
                    .map(|c| r.get(c).map(table::cell).unwrap_or_default()),
            );
            row
        })
        .collect();
    Table {
        header,
        rows: body,
        json: Some(json),
    }
}

/// The report's title from the configs of its grid points: their `name` fields (distinct,
/// in order, joined with `, `); `report` when there is none.
pub fn config_title(points: &[crate::config::Resolved]) -> String {
    let mut names: Vec<&str> = Vec::new();
    for p in points {
        let n = p.config.name.as_str();
        if !n.is_empty() && !names.contains(&n) {
            names.push(n);
        }
    }
    if names.is_empty() {
        "report".into()
    } else {
        names.join(", ")
    }
}

/// A figure a stage drew, copied into the report.
struct Copied {
    stage: String,
    entry: usize,
    /// File stem (`mollweide_total`).
    stem: String,
    /// Path relative to the report (`figures/sky/<hash>/mollweide_total.png`).
    rel: String,
}

/// The caption of a curated figure of entry `e`.
fn caption(e: &Entry, stem: &str) -> String {
    let m = &e.manifest.summary;
    match e.stage.as_str() {
        "sky" => format!(
            "{} ({} sky, {} sources, NSIDE {}) [{}]",
            stem.trim_start_matches("mollweide_").replace('_', " "),
            m["iem"].as_str().unwrap_or("?"),
            m["n_sources"],
            m["nside"],
            e.label
        ),
        "catalog" => format!(
            "{} ({} AGN, {} PSR) [{}]",
            stem.replace('_', " "),
            m["n_agn"],
            m["n_psr"],
            e.label
        ),
        _ => format!("{stem} [{}]", e.label),
    }
}

/// Writes the whole report into `out`, titled `name`.
pub fn publish(entries: &[Entry], out: &Path, name: &str) -> Result<PathBuf> {
    publish_with(entries, out, name, &[])
}

/// [`publish`], copying the stage figures of `figures_of` only (empty: every stage's).
pub fn publish_with(
    entries: &[Entry],
    out: &Path,
    name: &str,
    figures_of: &[String],
) -> Result<PathBuf> {
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut order: Vec<&str> = Vec::new();
    for e in entries {
        if !order.contains(&e.stage.as_str()) {
            order.push(&e.stage);
        }
    }
    let mut sections = Vec::new();
    let mut published = Vec::new();
    let mut copied: Vec<Copied> = Vec::new();
    for stage in &order {
        let es: Vec<(usize, &Entry)> = entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.stage == *stage)
            .collect();
        let refs: Vec<&Entry> = es.iter().map(|x| x.1).collect();
        let t = stage_table(&refs);
        t.write_all(out, &format!("leaderboard_{stage}"))?;
        let mut figures = Vec::new();
        let copy_figures = figures_of.is_empty() || figures_of.iter().any(|s| s == stage);
        for (idx, e) in &es {
            for rel in e
                .manifest
                .files
                .keys()
                .filter(|f| copy_figures && f.starts_with("figures/"))
            {
                let dest_rel = format!(
                    "figures/{stage}/{}/{}",
                    &e.manifest.hash[..12],
                    &rel["figures/".len()..]
                );
                crate::formats::atomic_copy(&e.dir.join(rel), &out.join(&dest_rel))?;
                if rel.ends_with(".png") {
                    let stem = rel["figures/".len()..].trim_end_matches(".png").to_string();
                    figures.push((format!("{stem} [{}]", e.label), dest_rel.clone()));
                    copied.push(Copied {
                        stage: stage.to_string(),
                        entry: *idx,
                        stem,
                        rel: dest_rel,
                    });
                }
            }
            published.push(serde_json::json!({
                "stage": e.stage, "label": e.label, "hash": e.manifest.hash,
                "files": e.manifest.files, "summary": e.manifest.summary,
            }));
        }
        sections.push(html::Section {
            title: format!("{stage} ({} outputs)", es.len()),
            note: "Every stored output of this stage: one row per output, the headline numbers of its manifest summary (key in brackets; the JSON file keeps the keys and typed values).".into(),
            table: t,
            figures,
        });
    }
    let mut curated = Vec::new();
    let scores: Vec<&Entry> = entries.iter().filter(|e| e.stage == "score").collect();
    let mut combos = Vec::new();
    if !scores.is_empty() {
        let costs = leaderboards::training_costs(entries);
        let pretrained: std::collections::BTreeSet<String> = costs
            .iter()
            .filter(|(_, c)| c.pretrained.is_some())
            .map(|(h, _)| h.clone())
            .collect();
        combos = combinations::combine_all(&scores, &pretrained, &out.join("combinations"))?;
        let extra: Vec<&serde_json::Value> = combos
            .iter()
            .flat_map(|c| [&c.union.summary, &c.intersection.summary])
            .collect();
        let t = leaderboards::detection_table_with(&scores, &extra, &costs);
        t.write_all(out, "leaderboard_detection")?;
        let figs = leaderboards::figures(
            &scores,
            &out.join("figures/leaderboards"),
            "figures/leaderboards",
        )?;
        curated.push(html::Section {
            title: "detection leaderboard".into(),
            note: "One row per scored test sky. S90: the S1 (or SNR_c) above which purity and completeness both stay at or above 90 %; empty when not reached, the status column says why. Purity and completeness are fractions (0-1). Rows unek∪cnet and unek∩cnet (where the grid has both detectors on a sky): the union and intersection of their detections, scored by the report (see the union and intersection section).".into(),
            table: t,
            figures: figs,
        });
        let figs = paper_layout::figures(
            &scores,
            Some(&published::unek_evaluation_file()),
            &out.join("figures/paper_layout"),
            "figures/paper_layout",
        )?;
        if !figs.is_empty() {
            curated.push(html::Section {
                title: "purity and completeness per test sky (layout of Panes et al. 2021, Figs. 5-6)".into(),
                note: "One pair of figures per test sky, every detector on the same axes (a detector has the same colour in every figure): purity (left) and completeness (right) against S1 at high and low latitude (Fig. 5), against SNR_c and SBR_c at all latitudes (Fig. 6). Points at the bin centres of each score stage's curves.csv, bars the Wilson interval, the dashed line 0.9, the triangle-and-tick the detector's S90 on that axis and region where reached. On F0-B1 the published UNEK curves are drawn too (black, dashed, open squares): computed from the published evaluation file unek_evaluation_test.csv.gz with the bins of the authors' notebook, Wilson intervals of the same counts, points at the geometric centre of each (merged) bin; that is the paper's own F0-B1 realisation, not ours, and its S90 marks are the paper's hand-read values (SNR_c 3.0, SBR_c 1.1; none on the banded S1 panels, the paper gives S1 for the whole sky only).".into(),
                figures: figs,
                ..Default::default()
            });
        }
        if !combos.is_empty() {
            let t = combinations::claims_table(&combos);
            t.write_all(out, "combination_claims")?;
            curated.push(html::Section {
                title: "union and intersection of UNEK and CNET (Panes et al. 2021, sect. 4)".into(),
                note: format!(
                    "Per test sky with both detectors: UNEK's and CNET's stored detections combined (matched in the same patch within the scoring radius; crate::detect::combine) and scored with the grid's scorer and [score] section; their rows {} and {} are in the detection leaderboard (no stage hash: they are computed by the report, outputs under combinations/). The paper's claims: the union about +10 % TP for about twice the FP, the intersection about -90 % FP for -10 % TP; a claim holds when the measured ratio to UNEK alone is within the stated tolerance of it.",
                    combinations::UNION,
                    combinations::INTERSECTION
                ),
                table: t,
                figures: vec![],
            });
        }
        if let Some(t) = leaderboards::fold_table(&scores) {
            t.write_all(out, "leaderboard_folds")?;
            curated.push(html::Section {
                title: "cross-validation: mean ± std over the folds".into(),
                note: "One row per detector and test sky: each cross-validated detector (train.folds = K) is K networks, each trained on the other folds' regions of the training sky and validated (early stopping, operating threshold) on its own; the columns are the mean and the sample standard deviation (n - 1) over the K networks' test scores; S90 over the folds that reach it (how many in the reached column). A detector without folds (the TS baseline) is one value. Each row is compared with the next detector down the sky's F1 ranking: the difference of the mean F1s against the fold spread sqrt(s_a² + s_b²); beyond spread when it exceeds it.".into(),
                table: t,
                figures: vec![],
            });
        }
        let t = leaderboards::robustness_table(&scores);
        t.write_all(out, "leaderboard_robustness")?;
        curated.push(html::Section {
            title: "robustness: trained on one sky, tested on every emission model".into(),
            note: "S90(S1) in ph cm-2 s-1, empty when not reached (statuses in the last columns)."
                .into(),
            table: t,
            figures: vec![],
        });
    }
    let classify: Vec<&Entry> = entries.iter().filter(|e| e.stage == "classify").collect();
    if !classify.is_empty() {
        let t = leaderboards::classification_table(&classify);
        t.write_all(out, "leaderboard_classification")?;
        let figs = leaderboards::class_probability_figures(
            &classify,
            &out.join("figures/leaderboards"),
            "figures/leaderboards",
        )?;
        curated.push(html::Section {
            title: "classification leaderboard (mean ± std over folds)".into(),
            table: t,
            figures: figs,
            ..Default::default()
        });
    }
    // The sky maps and catalog figures the stages drew, shown up front.
    let sky_maps: Vec<(String, String)> = copied
        .iter()
        .filter(|c| c.stage == "sky" && c.stem == "mollweide_total")
        .chain(
            copied
                .iter()
                .filter(|c| c.stage == "sky" && c.stem != "mollweide_total")
                .take(2),
        )
        .map(|c| (caption(&entries[c.entry], &c.stem), c.rel.clone()))
        .collect();
    if !sky_maps.is_empty() {
        curated.push(html::Section {
            title: "sky maps".into(),
            note: "Mollweide projections in Galactic coordinates (l = 0 at the centre, increasing to the left) of the expected counts per pixel summed over the energy bins from 1 GeV up: the total of every sky, then the diffuse and point-source parts of the first.".into(),
            figures: sky_maps,
            ..Default::default()
        });
    }
    let catalog_figs: Vec<(String, String)> = copied
        .iter()
        .filter(|c| c.stage == "catalog")
        .map(|c| (caption(&entries[c.entry], &c.stem), c.rel.clone()))
        .collect();
    if !catalog_figs.is_empty() {
        curated.push(html::Section {
            title: "catalogs".into(),
            note: "The mock AGN and PSR populations against the 4FGL prior they were drawn from (Panes et al. 2021, Fig. 1 and Figs. A.1-A.2).".into(),
            figures: catalog_figs,
            ..Default::default()
        });
    }
    sections.splice(0..0, curated);
    let speed = Table {
        header: [
            "stage",
            "grid point",
            "hash",
            "wall time (s)",
            "threads",
            "git commit",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        rows: entries
            .iter()
            .map(|e| {
                vec![
                    e.stage.clone(),
                    e.label.clone(),
                    e.manifest.hash[..12].to_string(),
                    format!("{:.3}", e.manifest.wall_time_s),
                    e.manifest.threads.to_string(),
                    e.manifest.git_commit.chars().take(12).collect(),
                ]
            })
            .collect(),
        json: None,
    };
    speed.write_all(out, "speed")?;
    sections.push(html::Section {
        title: "speed".into(),
        table: speed,
        ..Default::default()
    });
    let run = summary::summarize(entries);
    let page = html::page_with_summary(name, &summary::html(&run), &sections);
    atomic_write(&out.join("index.html"), page.as_bytes())?;
    let manifest = serde_json::json!({
        "name": name,
        "created_utc": humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        "crate_version": env!("CARGO_PKG_VERSION"),
        "git_commit": crate::store::GIT_COMMIT,
        "summary": summary::json(&run),
        "combinations": combinations::json(&combos),
        "stages": published,
    });
    let path = out.join("manifest.json");
    atomic_write(
        &path,
        &serde_json::to_vec_pretty(&manifest).map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    Ok(path)
}
