//! Experiment configuration: TOML files under `configs/`, `--set` overrides and grid axes.
//!
//! Loading goes in four steps, each with errors that point at the user's text:
//! 1. the file is parsed as TOML (syntax errors carry line and column);
//! 2. each `--set key.path=value` replaces or adds one key (the value is read as TOML, or as
//!    a bare string when it is not valid TOML, so `--set catalog.prior=4fgl-dr1` works);
//! 3. every key listed in [`GRID_AXES`] whose value is a list expands into one run per value
//!    (the cartesian product over all such keys, in file order of the axes list);
//! 4. each point is deserialised into [`ExperimentConfig`] (unknown keys and wrong types are
//!    errors) and then validated (ranges); errors name the file, line, column and key, or the
//!    `--set` assignment the key came from.
//!
//! The resolved config (after presets, overrides and grid expansion) is what every stage
//! hashes and saves in its manifest.

use crate::error::{Error, Result, line_col};
use serde::{Deserialize, Serialize};

pub use crate::catalog::config::{
    CatalogConfig, FlatConfig, LuminosityFunction, PowerLawConfig, Preset, Prior, PsrLatitudeConfig,
};
pub use crate::challenge::config::ChallengeConfig;
pub use crate::classify::config::{
    ClassifyConfig, ImageConfig, Protocol, SmoteMode, Task, Track, UpperLimits, Variant,
};
pub use crate::detect::config::{
    CnetSection, DetectConfig, DetectorVariant, LogSection, Normalisation, TsSection, UnekRegion,
    UnekSection, UnetSection, VoteThresholdOn,
};
pub use crate::patches::config::{Centres, PatchesConfig};
pub use crate::pipeline::config::RunConfig;
pub use crate::report::config::{NightlyConfig, NightlyRule};
pub use crate::score::config::{MatchMode, S90Rule, ScoreConfig};
pub use crate::sky::config::SkyConfig;
pub use crate::train::config::{TrainConfig, TrainDataConfig};
use std::path::Path;

/// The default experiment, embedded in the binary (`configs/default.toml`).
pub const EMBEDDED_DEFAULT: &str = include_str!("../configs/default.toml");

/// Keys that may hold a list of values, each value giving one run.
pub const GRID_AXES: &[&str] = &[
    "seed",
    "catalog.preset",
    "catalog.prior",
    "catalog.luminosity_function",
    "catalog.threshold_erg_cm2_s",
    "sky.iem",
    "sky.nside",
    "patches.centres",
    "classify.variant",
    "classify.protocol",
    "classify.use_glat",
    "classify.track",
    "classify.task",
    "classify.smote",
    "classify.image.balanced",
    "detect.variant",
    "detect.ensemble",
    "detect.unet.normalisation",
    "train.learning_rate",
    "train.batch_size",
    "train.data.n_patches",
    "train.fold",
];

/// A whole experiment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Free-form name, used in output labels.
    #[serde(default = "default_name")]
    pub name: String,
    /// Master seed; every random stream is keyed by (seed, stage, item).
    #[serde(default = "default_seed")]
    pub seed: u64,
    /// Analysis energy binning, shared by the catalog (per-bin fluxes) and the sky.
    #[serde(default)]
    pub energy: EnergyConfig,
    /// Mock catalog stage.
    #[serde(default)]
    pub catalog: CatalogConfig,
    /// Sky-map stage (instrument, emission model, HEALPix maps).
    #[serde(default)]
    pub sky: SkyConfig,
    /// Patch stage (64 x 64 x bins cut-outs, truth tables).
    #[serde(default)]
    pub patches: PatchesConfig,
    /// Scoring of detections and classifications.
    #[serde(default)]
    pub score: ScoreConfig,
    /// The data-challenge kit.
    #[serde(default)]
    pub challenge: ChallengeConfig,
    /// Which stages `gammabench run` plans for every grid point.
    #[serde(default)]
    pub run: RunConfig,
    /// Tolerances of the nightly benchmark.
    #[serde(default)]
    pub nightly: NightlyConfig,
    /// Classifiers under cross-validation (issue 6).
    #[serde(default)]
    pub classify: ClassifyConfig,
    /// Point-source detector (variant and hyperparameters).
    #[serde(default)]
    pub detect: DetectConfig,
    /// Training loop of the neural detectors.
    #[serde(default)]
    pub train: TrainConfig,
}

/// Physical memory of this machine (Linux `/proc/meminfo` MemTotal), if known.
pub fn machine_memory_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn default_name() -> String {
    "default".into()
}
fn default_seed() -> u64 {
    20210901
}

/// Analysis energy bins.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EnergyConfig {
    /// Bin edges in GeV, increasing; the paper's 0.5-1, 1-2, 2-7, 7-20, 20-200 GeV by default.
    #[serde(default = "default_edges")]
    pub bin_edges_gev: Vec<f64>,
}

fn default_edges() -> Vec<f64> {
    vec![0.5, 1.0, 2.0, 7.0, 20.0, 200.0]
}

impl Default for EnergyConfig {
    fn default() -> Self {
        Self {
            bin_edges_gev: default_edges(),
        }
    }
}

impl EnergyConfig {
    /// Bin edges in MeV.
    pub fn edges_mev(&self) -> Vec<f64> {
        self.bin_edges_gev.iter().map(|e| e * 1e3).collect()
    }
    /// Number of bins.
    pub fn n_bins(&self) -> usize {
        self.bin_edges_gev.len().saturating_sub(1)
    }
}

/// A validation failure: the dotted key and what is wrong with it.
pub struct Invalid {
    pub key: String,
    pub message: String,
}

pub fn invalid(key: &str, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        message: message.into(),
    }
}

impl ExperimentConfig {
    /// Range checks, done once when the config is built (like linfa's checked params).
    pub fn validate(&self) -> std::result::Result<(), Invalid> {
        let e = &self.energy.bin_edges_gev;
        if e.len() < 2 {
            return Err(invalid("energy.bin_edges_gev", "needs at least two edges"));
        }
        if e.iter().any(|x| !x.is_finite() || *x <= 0.0) {
            return Err(invalid(
                "energy.bin_edges_gev",
                "edges must be finite and > 0 GeV",
            ));
        }
        if e.windows(2).any(|w| w[1] <= w[0]) {
            return Err(invalid(
                "energy.bin_edges_gev",
                "edges must increase strictly",
            ));
        }
        if e.iter().any(|x| !(0.01..=10_000.0).contains(x)) {
            return Err(invalid(
                "energy.bin_edges_gev",
                "edges must lie in 0.01..10000 GeV (the LAT's range; the response table covers 0.1-300 GeV)",
            ));
        }
        self.nightly.validate()?;
        self.run.validate()?;
        self.catalog.validate()?;
        self.sky.validate()?;
        self.patches.validate()?;
        self.score.validate()?;
        self.challenge.validate()?;
        if self.detect.post.threshold == crate::detect::config::ThresholdSource::Validation
            && self.detect.variant != DetectorVariant::Ts
            && self.train.data.validation_patches == 0
            && !self.train.cross_validates()
        {
            return Err(invalid(
                "detect.post.threshold",
                "`validation` needs a validation sky (train.data.validation_patches > 0) or \
                 the held-out folds of train.folds >= 2",
            ));
        }
        if self.detect.ensemble
            && self.detect.variant != DetectorVariant::Ts
            && (!self.train.cross_validates() || !self.train.pretrained.is_empty())
        {
            return Err(invalid(
                "detect.ensemble",
                "an ensemble is the fold networks of a trained head: set train.folds >= 2 \
                 (not with a pretrained model)",
            ));
        }
        if self.detect.post.threshold == crate::detect::config::ThresholdSource::Model
            && self.detect.variant != DetectorVariant::Ts
            && self.train.pretrained.is_empty()
        {
            return Err(invalid(
                "detect.post.threshold",
                "`model` reads the threshold of a pretrained model: set train.pretrained",
            ));
        }
        let pc = &self.patches;
        // sizes checked against the machine before anything is allocated
        if let Some(total) = machine_memory_bytes() {
            let budget = 0.8 * total as f64;
            let gib = |b: f64| b / (1u64 << 30) as f64;
            let bins = self.energy.n_bins().max(1) as f64;
            // diffuse, AGN, PSR maps in f64 plus one smoothing buffer, per bin
            let sky = 12.0 * (self.sky.nside as f64).powi(2) * bins * 8.0 * 4.0;
            if sky > budget {
                return Err(invalid(
                    "sky.nside",
                    format!(
                        "NSIDE {} needs about {:.1} GiB for its maps, more than this machine's {:.1} GiB allows",
                        self.sky.nside,
                        gib(sky),
                        gib(total as f64)
                    ),
                ));
            }
            let n = if pc.centres == Centres::Random {
                pc.n
            } else {
                768
            } as f64;
            // diffuse, AGN, PSR, Poisson arrays in f32 and the mask, 64 x 64 pixels each
            let patches = n * 64.0 * 64.0 * (bins * 4.0 * 4.0 + 1.0);
            if patches > budget {
                return Err(invalid(
                    "patches.n",
                    format!(
                        "{} patches need about {:.1} GiB, more than this machine's {:.1} GiB allows",
                        pc.n,
                        gib(patches),
                        gib(total as f64)
                    ),
                ));
            }
        }
        self.classify.validate()?;
        self.detect.validate()?;
        self.train.validate()?;
        Ok(())
    }

    /// Fills every derived default, so the saved config is complete.
    pub fn resolve(&mut self) {
        self.catalog.resolve();
    }
}

impl ExperimentConfig {
    /// The config of the training sky of `[train.data]`: this config with the catalog preset
    /// (and threshold), the emission model and `patches.centres = random`, `patches.n`
    /// replaced and the seed of `train.data.seed`; everything else (energy bins, NSIDE,
    /// instrument) kept.
    pub fn training_data_config(&self) -> ExperimentConfig {
        let d = &self.train.data;
        let mut c = self.clone();
        c.catalog.preset = Some(d.preset);
        c.catalog.luminosity_function = None;
        c.catalog.threshold_erg_cm2_s = d.threshold_erg_cm2_s;
        c.catalog.resolve();
        c.sky.iem = d.iem.clone();
        c.patches.centres = Centres::Random;
        c.patches.n = d.n_patches;
        c.patches.poisson = false;
        c.seed = d.seed.unwrap_or(self.seed.wrapping_add(1));
        if d.realisations() > 1 {
            c.patches.n = Self::share(d.n_patches, d.patches_per_realisation, 0);
        }
        c
    }

    /// Patches of realisation `r` when `n` are cut `per` to a realisation (the last one
    /// takes the rest).
    fn share(n: usize, per: usize, r: usize) -> usize {
        per.min(n - r * per)
    }

    /// The configs of every training-sky realisation (`train.data.realisations`): the first
    /// is [`Self::training_data_config`]; realisation `r` has the seed
    /// `train::config::realisation_seed(seed, r)` and its share of `train.data.n_patches`.
    pub fn training_data_configs(&self) -> Vec<ExperimentConfig> {
        let d = &self.train.data;
        let first = self.training_data_config();
        let base = first.seed;
        let mut out = vec![first.clone()];
        for r in 1..d.realisations() {
            let mut c = first.clone();
            c.seed = crate::train::config::realisation_seed(base, r as u64);
            c.patches.n = Self::share(d.n_patches, d.patches_per_realisation, r);
            out.push(c);
        }
        out
    }

    /// The validation sky (`train.data.validation_patches > 0`): the training sky's catalog
    /// preset and emission model, an independent realisation, its own random patches.
    pub fn validation_data_config(&self) -> Option<ExperimentConfig> {
        let d = &self.train.data;
        // a cross-validated network validates on its held-out fold
        if d.validation_patches == 0 || self.train.cross_validates() {
            return None;
        }
        let mut c = self.training_data_config();
        c.seed = crate::train::config::realisation_seed(
            c.seed,
            crate::train::config::VALIDATION_REALISATION,
        );
        c.patches.n = d.validation_patches;
        Some(c)
    }
}

/// One point of an expanded grid.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// `axis=value` labels of this point (empty when the config had no grid).
    pub label: String,
    /// The resolved config.
    pub config: ExperimentConfig,
}

/// Where a grid point's files go under `out`: `out` itself for a single point, else a
/// subdirectory named after the point's label.
pub fn point_dir(out: &std::path::Path, points: &[Resolved], p: &Resolved) -> std::path::PathBuf {
    if points.len() == 1 {
        out.to_path_buf()
    } else {
        out.join(p.label.replace([',', '='], "_").replace(['/', ' '], "-"))
    }
}

/// The one config of the scoring and challenge verbs: a grid is accepted when its points
/// differ only in keys those verbs do not read (the embedded default's four detectors), and
/// refused when they differ in `seed`, `energy`, `score` or `challenge`.
pub fn single_for_scoring(mut points: Vec<Resolved>) -> Result<ExperimentConfig> {
    let first = points.remove(0).config;
    for p in &points {
        let c = &p.config;
        if c.seed != first.seed
            || c.energy != first.energy
            || c.score != first.score
            || c.challenge != first.challenge
        {
            return Err(Error::Usage(format!(
                "this command takes one config, not a grid whose points differ in seed, energy, \
                 score or challenge keys (grid point {})",
                p.label
            )));
        }
    }
    Ok(first)
}

/// Where a config's text came from, for error messages.
struct Source<'a> {
    name: String,
    text: &'a str,
}

/// Loads a config file (or the embedded default when `path` is `None`), applies `--set`
/// overrides, expands grid axes and validates every point.
pub fn load(path: Option<&Path>, overrides: &[String]) -> Result<Vec<Resolved>> {
    let owned;
    let src = match path {
        Some(p) => {
            owned = std::fs::read_to_string(p)
                .map_err(|e| Error::bad_file(p, format!("cannot read config: {e}")))?;
            Source {
                name: p.display().to_string(),
                text: &owned,
            }
        }
        None => Source {
            name: "<embedded configs/default.toml>".into(),
            text: EMBEDDED_DEFAULT,
        },
    };
    load_text(&src.name, src.text, overrides)
}

/// [`load`] on text already in memory; `name` is used in messages.
pub fn load_text(name: &str, text: &str, overrides: &[String]) -> Result<Vec<Resolved>> {
    let src = Source {
        name: name.into(),
        text,
    };
    let mut table: toml::Table = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        Error::Config {
            file: src.name.clone(),
            line,
            column,
            key: "-".into(),
            message: format!("TOML syntax: {}", e.message()),
        }
    })?;
    let mut overridden: Vec<(String, String)> = Vec::new();
    for assignment in overrides {
        let (key, value) = parse_override(assignment)?;
        set_path(&mut table, &key, value).map_err(|message| Error::Override {
            assignment: assignment.clone(),
            message,
        })?;
        overridden.push((key, assignment.clone()));
    }
    // `train.folds = K` trains one network per fold: the grid gets the axis
    // `train.fold = [0, ..., K-1]` unless the file picks its folds (out-of-range K is left
    // to the range check)
    if let Some(toml::Value::Integer(k)) = get_path(&table, "train.folds")
        && (2..=crate::train::config::MAX_FOLDS as i64).contains(k)
        && get_path(&table, "train.fold").is_none()
    {
        let folds = toml::Value::Array((0..*k).map(toml::Value::Integer).collect());
        set_path(&mut table, "train.fold", folds).map_err(|message| Error::Config {
            file: src.name.clone(),
            line: 1,
            column: 1,
            key: "train.fold".into(),
            message,
        })?;
    }
    // an empty list on a grid axis would expand to no experiment at all
    for axis in GRID_AXES {
        if let Some(toml::Value::Array(values)) = get_path(&table, axis)
            && values.is_empty()
        {
            let key = axis.to_string();
            if let Some((_, assignment)) = overridden.iter().find(|(k, _)| *k == key) {
                return Err(Error::Override {
                    assignment: assignment.clone(),
                    message: "an empty list on a grid axis leaves no experiment to run".into(),
                });
            }
            let (line, column) = key_position(text, &key).unwrap_or((1, 1));
            return Err(Error::Config {
                file: src.name.clone(),
                line,
                column,
                key,
                message: "an empty list on a grid axis leaves no experiment to run".into(),
            });
        }
    }
    let points = expand_grid(&table);
    let mut out = Vec::with_capacity(points.len());
    for (label, t) in points {
        let mut cfg: ExperimentConfig = serde_path_to_error::deserialize(toml::Value::Table(t))
            .map_err(|e| {
                let key = e.path().to_string();
                let msg = e.inner().to_string();
                locate(&src, &overridden, &key, clean_serde_message(&msg))
            })?;
        cfg.validate()
            .map_err(|inv| locate(&src, &overridden, &inv.key, inv.message))?;
        cfg.resolve();
        // the fold axis means nothing to a point that trains no fold network (the TS
        // baseline) or reads them all (an ensemble): one point instead of K
        let mut label = label;
        // the TS baseline has no fold networks to ensemble: `ensemble = true` is itself
        if cfg.detect.variant == DetectorVariant::Ts {
            cfg.detect.ensemble = false;
            label = strip_axis(&label, "ensemble");
        }
        if cfg.train.cross_validates()
            && (cfg.detect.ensemble || cfg.detect.variant == DetectorVariant::Ts)
        {
            cfg.train.fold = 0;
            label = strip_axis(&label, "fold");
        }
        if out.iter().any(|r: &Resolved| r.label == label) {
            continue;
        }
        out.push(Resolved { label, config: cfg });
    }
    Ok(out)
}

/// `label` without its `axis=value` part.
fn strip_axis(label: &str, axis: &str) -> String {
    let prefix = format!("{axis}=");
    label
        .split(',')
        .filter(|part| !part.starts_with(&prefix))
        .collect::<Vec<_>>()
        .join(",")
}

fn clean_serde_message(msg: &str) -> String {
    // toml's value deserialiser appends its own location-free text; keep the first line.
    msg.lines().next().unwrap_or(msg).trim().to_string()
}

/// Builds the error for `key`: from a `--set` when the key (or a parent) was overridden,
/// otherwise at the key's line and column in the file (or its nearest existing parent).
fn locate(src: &Source, overridden: &[(String, String)], key: &str, message: String) -> Error {
    if let Some((_, assignment)) = overridden.iter().rev().find(|(k, _)| {
        key == k || key.starts_with(&format!("{k}.")) || k.starts_with(&format!("{key}."))
    }) {
        return Error::Override {
            assignment: assignment.clone(),
            message: format!("key `{key}`: {message}"),
        };
    }
    let (line, column) = key_position(src.text, key).unwrap_or((1, 1));
    Error::Config {
        file: src.name.clone(),
        line,
        column,
        key: if key.is_empty() || key == "." {
            "-".into()
        } else {
            key.into()
        },
        message,
    }
}

/// 1-based line and column of the deepest existing key on `dotted` in `text`.
pub fn key_position(text: &str, dotted: &str) -> Option<(usize, usize)> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut best = None;
    for seg in dotted.split('.') {
        // serde_path_to_error writes list indices as `[i]`
        let seg = seg.split('[').next().unwrap_or(seg);
        let Some((k, item)) = table.get_key_value(seg) else {
            break;
        };
        if let Some(span) = k.span() {
            best = Some(line_col(text, span.start));
        }
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    best
}

fn parse_override(assignment: &str) -> Result<(String, toml::Value)> {
    let Some((key, raw)) = assignment.split_once('=') else {
        return Err(Error::Override {
            assignment: assignment.into(),
            message: "expected key.path=value".into(),
        });
    };
    let key = key.trim();
    if key.is_empty() || key.split('.').any(|s| s.is_empty()) {
        return Err(Error::Override {
            assignment: assignment.into(),
            message: "empty key segment".into(),
        });
    }
    Ok((key.to_string(), parse_value(raw.trim())))
}

/// Reads a value as TOML; falls back to a bare string, and a `[a, b]` list of bare words.
fn parse_value(raw: &str) -> toml::Value {
    if let Ok(mut t) = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    if let Some(inner) = raw.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        return toml::Value::Array(
            inner
                .split(',')
                .map(|s| s.trim())
                .filter(|s| !s.is_empty())
                .map(parse_value)
                .collect(),
        );
    }
    toml::Value::String(raw.to_string())
}

fn set_path(
    table: &mut toml::Table,
    key: &str,
    value: toml::Value,
) -> std::result::Result<(), String> {
    let segs: Vec<&str> = key.split('.').collect();
    let mut t = table;
    for (i, seg) in segs.iter().enumerate() {
        if i + 1 == segs.len() {
            t.insert(seg.to_string(), value);
            return Ok(());
        }
        let entry = t
            .entry(seg.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = match entry {
            toml::Value::Table(inner) => inner,
            _ => return Err(format!("`{}` is not a table", segs[..=i].join("."))),
        };
    }
    Ok(())
}

fn get_path<'a>(table: &'a toml::Table, key: &str) -> Option<&'a toml::Value> {
    let mut segs = key.split('.').peekable();
    let mut t = table;
    while let Some(seg) = segs.next() {
        let v = t.get(seg)?;
        if segs.peek().is_none() {
            return Some(v);
        }
        t = v.as_table()?;
    }
    None
}

/// Expands every grid axis holding a list into the cartesian product of its values.
fn expand_grid(table: &toml::Table) -> Vec<(String, toml::Table)> {
    let mut points = vec![(String::new(), table.clone())];
    for axis in GRID_AXES {
        let Some(toml::Value::Array(values)) = get_path(table, axis) else {
            continue;
        };
        let mut next = Vec::with_capacity(points.len() * values.len());
        for (label, t) in &points {
            for v in values {
                let mut t2 = t.clone();
                set_path(&mut t2, axis, v.clone()).expect("axis path exists");
                let vs = match v {
                    toml::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                let short = axis.rsplit('.').next().unwrap_or(axis);
                let l = if label.is_empty() {
                    format!("{short}={vs}")
                } else {
                    format!("{label},{short}={vs}")
                };
                next.push((l, t2));
            }
        }
        points = next;
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_that_hang_or_exhaust_memory_are_refused_at_the_door() {
        let e = load_text("t.toml", "[energy]\nbin_edges_gev = [0.5, 1e30]\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("energy.bin_edges_gev") && e.contains("0.01..10000"),
            "{e}"
        );
        let e = load_text("t.toml", "seed = []\n", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("seed") && e.contains("empty list"), "{e}");
        let e = load_text("t.toml", "", &["seed=[]".into()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("seed=[]") && e.contains("empty list"), "{e}");
        // 201 M pixels x 5 bins of f64 maps: 30 GiB, more than 0.8 of any machine under 38 GiB
        if machine_memory_bytes().is_some_and(|m| m < 38 << 30) {
            let e = load_text("t.toml", "[sky]\nnside = 4096\n", &[])
                .unwrap_err()
                .to_string();
            assert!(e.contains("sky.nside") && e.contains("GiB"), "{e}");
        }
        if machine_memory_bytes().is_some_and(|m| m < 64 << 30) {
            let e = load_text(
                "t.toml",
                "[patches]\ncentres = \"random\"\nn = 1000000\n",
                &[],
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("patches.n") && e.contains("GiB"), "{e}");
        }
    }

    #[test]
    fn embedded_default_loads() {
        // the quickstart: one grid point per detector, scored end to end
        let r = load(None, &[]).unwrap();
        let variants: Vec<&str> = r.iter().map(|p| p.config.detect.variant.as_str()).collect();
        assert_eq!(variants, ["unek", "cnet", "log", "ts"]);
        for p in &r {
            assert_eq!(p.config.name, "quickstart");
            assert_eq!(p.config.run.stages, ["score"]);
            assert_eq!(p.config.catalog.prior, Prior::Dr4);
            assert_eq!(p.config.catalog.preset, Some(Preset::F0));
        }
    }

    #[test]
    fn scoring_verbs_take_a_grid_only_when_it_does_not_change_their_keys() {
        let c = single_for_scoring(load(None, &[]).unwrap()).unwrap();
        assert_eq!(c.detect.variant, DetectorVariant::Unek);
        let err = single_for_scoring(load(None, &["seed=[1,2]".into()]).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains("differ in seed"), "{err}");
    }

    #[test]
    fn unknown_key_is_located() {
        let text = "seed = 1\n[catalog]\nprior = \"4fgl-dr1\"\nthreshhold = 3\n";
        let err = load_text("x.toml", text, &[]).unwrap_err();
        match err {
            Error::Config {
                line,
                column,
                key,
                message,
                ..
            } => {
                assert_eq!((line, column), (4, 1), "{message}");
                assert_eq!(key, "catalog.threshhold");
                assert!(message.contains("unknown field"), "{message}");
            }
            e => panic!("{e}"),
        }
    }

    #[test]
    fn wrong_type_and_range_are_located() {
        let text = "[catalog]\nthreshold_erg_cm2_s = \"big\"\n";
        let err = load_text("x.toml", text, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("x.toml:2:1: key `catalog.threshold_erg_cm2_s`"),
            "{err}"
        );
        let text = "[catalog]\nthreshold_erg_cm2_s = -1e-13\n";
        let err = load_text("x.toml", text, &[]).unwrap_err().to_string();
        assert!(
            err.starts_with("x.toml:2:1: key `catalog.threshold_erg_cm2_s`: must be a positive"),
            "{err}"
        );
    }

    #[test]
    fn overrides_and_grid() {
        let text = "seed = 3\n[catalog]\npreset = \"F0\"\n";
        let r = load_text(
            "x.toml",
            text,
            &[
                "catalog.prior=[4fgl-dr1, 4fgl-dr4]".into(),
                "catalog.preset=[F0,F2]".into(),
            ],
        )
        .unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].label, "preset=F0,prior=4fgl-dr1");
        assert_eq!(
            r[3].config.catalog.resolved_lf(),
            LuminosityFunction::PowerLaw
        );
        assert_eq!(r[3].config.catalog.threshold_erg_cm2_s, Some(2.2e-14));
        let err = load_text("x.toml", text, &["catalog.threshold_erg_cm2_s=-5".into()])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("--set catalog.threshold_erg_cm2_s=-5"),
            "{err}"
        );
    }
}

#[cfg(test)]
mod score_config_tests {
    use super::*;

    #[test]
    fn score_and_challenge_tables() {
        let r = load_text(
            "x.toml",
            "[score]\nmode = \"legacy\"\nmatch_radius_deg = 0.25\n",
            &[],
        )
        .unwrap();
        assert_eq!(r[0].config.score.mode, MatchMode::Legacy);
        assert_eq!(r[0].config.score.match_radius_deg, 0.25);
        assert_eq!(r[0].config.challenge.daily_limit, 5);
        let err = load_text("x.toml", "[score]\nmatch_radius_deg = -1\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("x.toml:2:1: key `score.match_radius_deg`"),
            "{err}"
        );
        let err = load_text("x.toml", "[challenge]\ndaily_limt = 3\n", &[])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("challenge.daily_limt") && err.contains("unknown field"),
            "{err}"
        );
        let err = load_text("x.toml", "", &["challenge.daily_limit=0".into()])
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("--set challenge.daily_limit=0"), "{err}");
    }
}
