//! Stage 2: Fermi-LAT-like expected-counts (Asimov) maps of a mock catalog over an
//! interstellar emission model (Panes et al. 2021, sec. 2.2-2.3).
//!
//! The paper ran the Fermi Science Tools' `gtmodel` on the official emission models; this
//! stage is an open, versioned and fast equivalent: [`instrument`] (PSF, exposure),
//! [`iem`] (models B1-B3), [`render`] (point sources and diffuse on HEALPix), [`fits`]
//! (healpy-readable maps) and [`figures`].
//!
//! Outputs in the stage directory: `map_diffuse.fits`, `map_agn.fits`, `map_psr.fits` (HEALPix
//! RING, Galactic, one float32 column of expected counts per energy bin), `source_counts.csv`
//! (expected counts of every catalog source per bin), `iem.toml` (the model used),
//! `config.resolved.toml` and `figures/`.

pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::SkyConfig as Config;
pub mod figures;
pub mod fits;
pub mod healpix;
pub mod iem;
pub mod instrument;
pub mod render;

use crate::catalog::{Source, SourceClass};
use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use crate::formats::fmt_f64;
use healpix::{Grid, lonlat_deg_to_vec};
use iem::IemModel;
use instrument::Instrument;
use std::path::Path;
use std::time::Instant;

/// Bumped whenever the rendering changes its output for the same config, so the store never
/// reuses maps made by an older algorithm. 2: diffuse PSF convolution with ring stencils in
/// the equatorial belt, closed-form sub-pixel positions there, point-source weights kept from
/// one disc walk. 3: stencils on every ring (rotation period), mirrored hemispheres and
/// vectorised shifted sums for the diffuse convolution and the emission-model templates;
/// point-source normalisation summed in four partial sums.
pub const ALGORITHM_VERSION: u32 = 4;

/// Component names, in file order.
pub const COMPONENTS: [&str; 3] = ["diffuse", "agn", "psr"];

/// Rendered maps of one sky.
#[derive(Debug, Clone)]
pub struct Sky {
    pub grid: Grid,
    /// `maps[component][bin][pixel]`, expected counts; components in [`COMPONENTS`] order.
    pub maps: Vec<Vec<Vec<f64>>>,
    /// Expected counts of each source per bin (same order as the input sources).
    pub source_counts: Vec<Vec<f64>>,
    /// Local spectral index of each source per bin (selects its PSF table).
    pub source_index: Vec<Vec<f64>>,
    /// Local index of the diffuse spectrum per bin.
    pub diffuse_index: Vec<f64>,
    /// Wall times of the steps, s.
    pub timing: serde_json::Map<String, serde_json::Value>,
}

/// Builds the instrument of a config.
pub fn instrument(cfg: &ExperimentConfig) -> Result<Instrument> {
    Instrument::new(
        &cfg.sky.irf,
        cfg.sky.survey_years,
        cfg.sky.exposure_fraction,
        &cfg.energy.edges_mev(),
        cfg.sky.point_radius_r95,
    )
}

/// Expected counts and local index of a source in every bin.
pub fn source_bins(inst: &Instrument, s: &Source) -> (Vec<f64>, Vec<f64>) {
    (0..inst.n_bins())
        .map(|b| {
            let c = inst.expected_counts_in_bin(b, |x| s.spectrum.dnde(x));
            let g = inst.local_index(b, |x| s.spectrum.dnde(x));
            (c, g)
        })
        .unzip()
}

/// The diffuse counts maps of a model (PSF-smoothed), with the diffuse local indices.
pub fn render_diffuse(
    cfg: &ExperimentConfig,
    model: &IemModel,
    grid: &Grid,
    inst: &Instrument,
) -> Result<(Vec<Vec<f64>>, Vec<f64>)> {
    let t = Instant::now();
    let maps = model.maps(grid)?;
    log::debug!(
        "{}: templates in {:.2} s",
        model.name,
        t.elapsed().as_secs_f64()
    );
    let (raw, idx) = model.counts(&maps, grid, inst);
    let out = raw
        .iter()
        .enumerate()
        .map(|(b, m)| {
            let t = Instant::now();
            let psf = inst.psf(b, idx[b]);
            let s = render::smooth_diffuse(grid, m, psf, psf.r95_deg * cfg.sky.diffuse_radius_r95);
            log::debug!(
                "diffuse bin {b}: PSF smoothing in {:.2} s",
                t.elapsed().as_secs_f64()
            );
            s
        })
        .collect();
    Ok((out, idx))
}

/// `[class][bin][pixel]` maps (AGN, PSR), per-source counts and indices per bin.
pub type RenderedSources = (Vec<Vec<Vec<f64>>>, Vec<Vec<f64>>, Vec<Vec<f64>>);

/// Per source id: expected counts and PSF index per bin.
pub type SourceCountsTable = std::collections::HashMap<u64, (Vec<f64>, Vec<f64>)>;

/// Renders the AGN and PSR maps of `sources`.
pub fn render_sources(grid: &Grid, inst: &Instrument, sources: &[Source]) -> RenderedSources {
    use rayon::prelude::*;
    let (counts, index): (Vec<Vec<f64>>, Vec<Vec<f64>>) =
        sources.par_iter().map(|s| source_bins(inst, s)).unzip();
    let vecs: Vec<[f64; 3]> = sources
        .iter()
        .map(|s| lonlat_deg_to_vec(s.glon_deg, s.glat_deg))
        .collect();
    // The (class, bin) maps are independent: rendered concurrently (each also parallel
    // inside), every one in its own fixed order, so the result does not depend on threads.
    let classes = [SourceClass::Agn, SourceClass::Psr];
    let jobs: Vec<(SourceClass, usize)> = classes
        .iter()
        .flat_map(|&c| (0..inst.n_bins()).map(move |b| (c, b)))
        .collect();
    let mut maps: Vec<Vec<f64>> = jobs
        .par_iter()
        .map(|&(class, b)| {
            let pts: Vec<render::PointSource> = sources
                .iter()
                .enumerate()
                .filter(|(_, s)| s.class == class)
                .map(|(i, _)| render::PointSource {
                    v: vecs[i],
                    counts: counts[i][b],
                    psf: inst.psf(b, index[i][b]),
                })
                .collect();
            render::render_points(grid, &pts).0
        })
        .collect();
    let psr = maps.split_off(inst.n_bins());
    (vec![maps, psr], counts, index)
}

/// Renders a whole sky: diffuse (model + isotropic), AGN and PSR maps.
pub fn render_sky(cfg: &ExperimentConfig, model: &IemModel, sources: &[Source]) -> Result<Sky> {
    let t = Instant::now();
    let grid = Grid::new(cfg.sky.nside);
    let inst = instrument(cfg)?;
    let (diffuse, diffuse_index) = render_diffuse(cfg, model, &grid, &inst)?;
    let mut sky = render_sky_over(cfg, diffuse, diffuse_index, sources)?;
    sky.timing
        .insert("diffuse_s".into(), t.elapsed().as_secs_f64().into());
    Ok(sky)
}

/// Renders the point sources of a sky over an already rendered diffuse map.
pub fn render_sky_over(
    cfg: &ExperimentConfig,
    diffuse: Vec<Vec<f64>>,
    diffuse_index: Vec<f64>,
    sources: &[Source],
) -> Result<Sky> {
    let mut timing = serde_json::Map::new();
    let t = Instant::now();
    let grid = Grid::new(cfg.sky.nside);
    let inst = instrument(cfg)?;
    timing.insert("instrument_s".into(), t.elapsed().as_secs_f64().into());
    let t = Instant::now();
    let (mut points, source_counts, source_index) = render_sources(&grid, &inst, sources);
    timing.insert("point_sources_s".into(), t.elapsed().as_secs_f64().into());
    let psr = points.pop().expect("psr");
    let agn = points.pop().expect("agn");
    Ok(Sky {
        grid,
        maps: vec![diffuse, agn, psr],
        source_counts,
        source_index,
        diffuse_index,
        timing,
    })
}

/// Writes one component as a HEALPix FITS file.
pub fn write_map(
    path: &Path,
    cfg: &ExperimentConfig,
    model: &str,
    component: &str,
    grid: &Grid,
    bins: &[Vec<f64>],
) -> Result<()> {
    let edges = cfg.energy.edges_mev();
    let mut extra = vec![
        ("COMPONT".to_string(), component.to_string()),
        ("IEM".to_string(), model.to_string()),
        ("IRF".to_string(), cfg.sky.irf.clone()),
        (
            "LIVETIME".to_string(),
            format!(
                "{:.6E}",
                cfg.sky.survey_years * instrument::SECONDS_PER_YEAR * cfg.sky.exposure_fraction
            ),
        ),
        ("BUNIT".to_string(), "counts".to_string()),
    ];
    for b in 0..bins.len() {
        extra.push((format!("EMIN{b}"), format!("{:.6E}", edges[b])));
        extra.push((format!("EMAX{b}"), format!("{:.6E}", edges[b + 1])));
    }
    fits::HealpixFits {
        nside: grid.nside,
        ordering: "RING".into(),
        coordsys: "G".into(),
        columns: bins
            .iter()
            .enumerate()
            .map(|(b, m)| {
                (
                    format!("BIN{b}"),
                    "counts".to_string(),
                    m.iter().map(|&x| x as f32).collect(),
                )
            })
            .collect(),
        extra,
    }
    .write(path)
}

/// Reads the maps of a sky stage directory: `[component][bin][pixel]` and NSIDE.
pub fn read_maps(dir: &Path) -> Result<(u32, Vec<Vec<Vec<f32>>>)> {
    let mut nside = 0;
    let mut out = Vec::new();
    for c in COMPONENTS {
        let m = fits::HealpixFits::read(&dir.join(format!("map_{c}.fits")))?;
        nside = m.nside;
        out.push(m.columns.into_iter().map(|(_, _, v)| v).collect());
    }
    Ok((nside, out))
}

/// Mean counts per pixel above `e_min_mev` (summing the bins that start at or above it) over
/// pixels with `b_lo <= |b| < b_hi`.
pub fn mean_counts_above(
    grid: &Grid,
    bins: &[Vec<f64>],
    edges_mev: &[f64],
    e_min_mev: f64,
    b_lo: f64,
    b_hi: f64,
) -> f64 {
    let (mut s, mut n) = (0.0, 0usize);
    for p in 0..grid.npix() {
        let (_, b) = grid.pix_to_lonlat_deg(p as u64);
        if b.abs() >= b_lo && b.abs() < b_hi {
            s += (0..bins.len())
                .filter(|&k| edges_mev[k] >= e_min_mev * 0.999)
                .map(|k| bins[k][p])
                .sum::<f64>();
            n += 1;
        }
    }
    if n == 0 { 0.0 } else { s / n as f64 }
}

/// The stage's slice of the config, with the emission model spelled out so that editing a
/// model file changes the hash.
pub fn stage_config(cfg: &ExperimentConfig, model: &IemModel) -> serde_json::Value {
    serde_json::json!({
        "algorithm": ALGORITHM_VERSION,
        "energy": cfg.energy,
        "sky": cfg.sky,
        "iem_model": model,
    })
}

/// The diffuse stage's slice of the config: what the diffuse map depends on (not the
/// catalog), so the nine test skies share three diffuse renders.
pub fn diffuse_stage_config(cfg: &ExperimentConfig, model: &IemModel) -> serde_json::Value {
    let k = &cfg.sky;
    serde_json::json!({
        "algorithm": ALGORITHM_VERSION,
        "energy": cfg.energy,
        "nside": k.nside,
        "irf": k.irf,
        "survey_years": k.survey_years,
        "exposure_fraction": k.exposure_fraction,
        "point_radius_r95": k.point_radius_r95,
        "diffuse_radius_r95": k.diffuse_radius_r95,
        "iem_model": model,
    })
}

/// The content key of the diffuse stage of `model` under `cfg`'s instrument and binning.
pub fn diffuse_key(cfg: &ExperimentConfig, model: &IemModel) -> crate::store::StageKey {
    crate::store::StageKey {
        stage: "diffuse".into(),
        config: diffuse_stage_config(cfg, model),
        inputs: Default::default(),
        seed: model.seed,
    }
}

/// The content key of the sky stage: its config slice and the catalog and diffuse keys.
pub fn sky_key(cfg: &ExperimentConfig, model: &IemModel) -> crate::store::StageKey {
    crate::store::StageKey {
        stage: "sky".into(),
        config: stage_config(cfg, model),
        inputs: [
            ("catalog".to_string(), crate::catalog::stage_key(cfg).hash()),
            ("diffuse".to_string(), diffuse_key(cfg, model).hash()),
        ]
        .into(),
        seed: cfg.seed,
    }
}

/// The diffuse and sky keys of `cfg` (loading its emission model), computable before
/// anything runs, so the experiment runner can plan.
pub fn stage_keys(
    cfg: &ExperimentConfig,
) -> Result<(crate::store::StageKey, crate::store::StageKey)> {
    let model = IemModel::load(&cfg.sky.iem)?;
    Ok((diffuse_key(cfg, &model), sky_key(cfg, &model)))
}

/// Runs (or reuses) the diffuse map of a model: `map_diffuse.fits` in its own store stage.
pub fn run_diffuse(
    store: &crate::store::Store,
    cfg: &ExperimentConfig,
    model: &IemModel,
    force: bool,
) -> Result<crate::store::StageOutput> {
    let key = diffuse_key(cfg, model);
    store.run_stage(&key, force, |dir| {
        let grid = Grid::new(cfg.sky.nside);
        let inst = instrument(cfg)?;
        let t = Instant::now();
        let (maps, index) = render_diffuse(cfg, model, &grid, &inst)?;
        write_map(
            &dir.join("map_diffuse.fits"),
            cfg,
            &model.name,
            "diffuse",
            &grid,
            &maps,
        )?;
        let edges = cfg.energy.edges_mev();
        Ok(serde_json::json!({
            "iem": model.name,
            "render_s": t.elapsed().as_secs_f64(),
            "diffuse_psf_index_per_bin": index,
            "total_counts_per_bin": maps.iter().map(|m| m.iter().sum::<f64>()).collect::<Vec<_>>(),
            "counts_per_pixel_above_1gev": {
                "abs_b_gt_30_deg": mean_counts_above(&grid, &maps, &edges, 1000.0, 30.0, 90.1),
                "abs_b_lt_5_deg": mean_counts_above(&grid, &maps, &edges, 1000.0, 0.0, 5.0),
                "all_sky": mean_counts_above(&grid, &maps, &edges, 1000.0, 0.0, 90.1),
            },
        }))
    })
}

/// Runs the sky stage (and the catalog and diffuse stages before it) through the store.
pub fn run(
    store: &crate::store::Store,
    cfg: &ExperimentConfig,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<(crate::store::StageOutput, crate::store::StageOutput)> {
    let cat = crate::catalog::run(store, cfg, false, progress)?;
    let model = IemModel::load(&cfg.sky.iem)?;
    let diffuse = run_diffuse(store, cfg, &model, false)?;
    let key = sky_key(cfg, &model);
    let out = store.run_stage(&key, force, |dir| {
        // phases of this stage on its bar: read, render, write, figures
        progress.set_length(4);
        progress.set_position(0);
        progress.set_message("reading the catalog and the diffuse map");
        let sources = crate::catalog::table::read_csv(&cat.dir.join("catalog.csv"))?;
        let t0 = Instant::now();
        let dmap = fits::HealpixFits::read(&diffuse.dir.join("map_diffuse.fits"))?;
        let dmaps: Vec<Vec<f64>> = dmap
            .columns
            .iter()
            .map(|(_, _, v)| v.iter().map(|&x| x as f64).collect())
            .collect();
        let dindex: Vec<f64> = diffuse.manifest.summary["diffuse_psf_index_per_bin"]
            .as_array()
            .map(|a| a.iter().filter_map(|x| x.as_f64()).collect())
            .unwrap_or_default();
        progress.inc(1);
        progress.set_message(format!("rendering {} sources", sources.len()));
        let sky = render_sky_over(cfg, dmaps, dindex, &sources)?;
        let render_s = t0.elapsed().as_secs_f64();
        progress.inc(1);
        progress.set_message("writing the maps");
        crate::formats::atomic_copy(
            &diffuse.dir.join("map_diffuse.fits"),
            &dir.join("map_diffuse.fits"),
        )?;
        for (c, name) in COMPONENTS.iter().enumerate().skip(1) {
            write_map(
                &dir.join(format!("map_{name}.fits")),
                cfg,
                &model.name,
                name,
                &sky.grid,
                &sky.maps[c],
            )?;
        }
        write_source_counts(&dir.join("source_counts.csv"), &sources, &sky)?;
        let toml = crate::formats::to_toml_pretty(cfg)?;
        crate::formats::atomic_write(&dir.join("config.resolved.toml"), toml.as_bytes())?;
        let mtoml = crate::formats::to_toml_pretty(&model)?;
        crate::formats::atomic_write(&dir.join("iem.toml"), mtoml.as_bytes())?;
        progress.inc(1);
        if cfg.sky.figures {
            progress.set_message("drawing the figures");
            figures::sky_figures(&dir.join("figures"), cfg, &model.name, &sky)?;
        }
        progress.inc(1);
        let mut s = summary(cfg, &model, &sky, render_s);
        s["diffuse_render_s"] = diffuse.manifest.summary["render_s"].clone();
        Ok(s)
    })?;
    Ok((cat, out))
}

fn write_source_counts(path: &Path, sources: &[Source], sky: &Sky) -> Result<()> {
    crate::formats::atomic_write_with(path, |w| {
        let mut wr = csv::Writer::from_writer(w);
        let k = sky.source_counts.first().map(|v| v.len()).unwrap_or(0);
        let mut header = vec!["source_id".to_string()];
        header.extend((0..k).map(|b| format!("counts_bin{b}")));
        header.extend((0..k).map(|b| format!("psf_index_bin{b}")));
        wr.write_record(&header)?;
        for (i, s) in sources.iter().enumerate() {
            let mut row = vec![s.source_id.to_string()];
            row.extend(sky.source_counts[i].iter().map(|&x| fmt_f64(x)));
            row.extend(sky.source_index[i].iter().map(|&x| fmt_f64(x)));
            wr.write_record(&row)?;
        }
        wr.flush()
    })
}

/// Reads `source_counts.csv`: per source id, the expected counts per bin and the PSF index.
pub fn read_source_counts(path: &Path) -> Result<SourceCountsTable> {
    let mut rdr = crate::formats::csv_reader(path)?;
    let k = (rdr.headers().map_err(|e| Error::bad_file(path, e))?.len() - 1) / 2;
    let mut out = std::collections::HashMap::new();
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| Error::bad_file(path, e))?;
        let f = |c: usize| -> Result<f64> {
            rec.get(c)
                .unwrap_or("")
                .parse::<f64>()
                .map_err(|e| Error::Data {
                    file: path.display().to_string(),
                    line: line + 2,
                    column: c + 1,
                    field: "counts".into(),
                    message: e.to_string(),
                })
        };
        let id: u64 = f(0)? as u64;
        let counts = (0..k).map(|b| f(1 + b)).collect::<Result<Vec<_>>>()?;
        let index = (0..k).map(|b| f(1 + k + b)).collect::<Result<Vec<_>>>()?;
        out.insert(id, (counts, index));
    }
    Ok(out)
}

fn summary(
    cfg: &ExperimentConfig,
    model: &IemModel,
    sky: &Sky,
    render_s: f64,
) -> serde_json::Value {
    let edges = cfg.energy.edges_mev();
    let totals: serde_json::Map<String, serde_json::Value> = COMPONENTS
        .iter()
        .enumerate()
        .map(|(c, n)| {
            (
                n.to_string(),
                sky.maps[c]
                    .iter()
                    .map(|m| m.iter().sum::<f64>())
                    .collect::<Vec<f64>>()
                    .into(),
            )
        })
        .collect();
    let d = &sky.maps[0];
    let inst = instrument(cfg).ok();
    serde_json::json!({
        "iem": model.name,
        "iem_version": model.version,
        "nside": cfg.sky.nside,
        "n_sources": sky.source_counts.len(),
        "total_counts_per_bin": totals,
        "diffuse_counts_per_pixel_above_1gev": {
            "abs_b_gt_30_deg": mean_counts_above(&sky.grid, d, &edges, 1000.0, 30.0, 90.1),
            "abs_b_lt_5_deg": mean_counts_above(&sky.grid, d, &edges, 1000.0, 0.0, 5.0),
            "all_sky": mean_counts_above(&sky.grid, d, &edges, 1000.0, 0.0, 90.1),
        },
        "diffuse_psf_index_per_bin": sky.diffuse_index,
        "psf_r68_deg_index2": inst.as_ref().map(|i| (0..i.n_bins()).map(|b| i.psf(b, 2.0).r68_deg).collect::<Vec<_>>()),
        "psf_r95_deg_index2": inst.as_ref().map(|i| (0..i.n_bins()).map(|b| i.psf(b, 2.0).r95_deg).collect::<Vec<_>>()),
        "exposure_1gev_cm2_s": inst.as_ref().map(|i| i.exposure_cm2_s(1000.0)),
        "point_sources_render_s": render_s,
        "timing": sky.timing,
    })
}

/// The `diffuse` stage: the expected-counts map of an emission model alone, shared by every
/// catalog rendered over it (and the TS baseline's background model).
pub struct DiffuseStage;

impl crate::stage::Stage for DiffuseStage {
    fn name(&self) -> &'static str {
        "diffuse"
    }
    fn about(&self) -> &'static str {
        "expected diffuse counts of an emission model (B1, B2, B3) on the HEALPix grid"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &["map_diffuse.fits"]
    }
    fn inputs(
        &self,
        _cfg: &std::sync::Arc<ExperimentConfig>,
        _label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        Ok(vec![])
    }
    fn key(&self, cfg: &ExperimentConfig) -> Result<crate::store::StageKey> {
        Ok(stage_keys(cfg)?.0)
    }
    fn run(
        &self,
        store: &crate::store::Store,
        cfg: &ExperimentConfig,
        force: bool,
        _progress: &indicatif::ProgressBar,
    ) -> Result<crate::store::StageOutput> {
        let model = IemModel::load(&cfg.sky.iem)?;
        run_diffuse(store, cfg, &model, force)
    }
    fn label(&self, cfg: &ExperimentConfig, _point_label: &str) -> String {
        cfg.sky.iem.clone()
    }
    fn describe(&self, out: &crate::store::StageOutput) -> String {
        let s = &out.manifest.summary;
        format!(
            "{} diffuse, counts/pixel > 1 GeV {:.3} at |b| > 30 deg",
            s["iem"].as_str().unwrap_or("?"),
            s["counts_per_pixel_above_1gev"]["abs_b_gt_30_deg"]
                .as_f64()
                .unwrap_or(f64::NAN)
        )
    }
}

/// The `sky` stage: a catalog's sources rendered over a diffuse map.
pub struct SkyStage;

impl crate::stage::Stage for SkyStage {
    fn name(&self) -> &'static str {
        "sky"
    }
    fn about(&self) -> &'static str {
        "expected-counts HEALPix maps of a catalog over an emission model, through the LAT's PSF and exposure"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &[
            "map_diffuse.fits",
            "map_agn.fits",
            "map_psr.fits",
            "source_counts.csv",
            "iem.toml",
            "figures/",
        ]
    }
    fn inputs(
        &self,
        cfg: &std::sync::Arc<ExperimentConfig>,
        label: &str,
    ) -> Result<Vec<crate::stage::Input>> {
        Ok(vec![
            crate::stage::Input::same("catalog", cfg, label),
            crate::stage::Input::same("diffuse", cfg, label),
        ])
    }
    fn key(&self, cfg: &ExperimentConfig) -> Result<crate::store::StageKey> {
        Ok(stage_keys(cfg)?.1)
    }
    fn run(
        &self,
        store: &crate::store::Store,
        cfg: &ExperimentConfig,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<crate::store::StageOutput> {
        run(store, cfg, force, progress).map(|(_, s)| s)
    }
    fn describe(&self, out: &crate::store::StageOutput) -> String {
        let s = &out.manifest.summary;
        format!(
            "{} NSIDE {}, diffuse counts/pixel > 1 GeV: {:.3} at |b| > 30 deg, {:.3} at |b| < 5 deg",
            s["iem"].as_str().unwrap_or("?"),
            s["nside"],
            s["diffuse_counts_per_pixel_above_1gev"]["abs_b_gt_30_deg"]
                .as_f64()
                .unwrap_or(f64::NAN),
            s["diffuse_counts_per_pixel_above_1gev"]["abs_b_lt_5_deg"]
                .as_f64()
                .unwrap_or(f64::NAN),
        )
    }
}
