//! Stage 3: 10 x 10 deg patches of 64 x 64 pixels x energy bins cut from the sky maps, with
//! the truth tables every detector is trained and scored against (Panes et al. 2021, sec. 3.1).
//!
//! * Centres: `random` (l uniform in [0, 360), sin b uniform in [-1, 1], one stream per
//!   patch) for training; `nside8`, the 768 HEALPix NSIDE-8 pixel centres in RING order
//!   (centre 0 at l = 45, b = 84.1497 deg), for testing.
//! * Projection: [`crate::projection`], healpy's `cartview(rot=(l, b, 0), lonra=[-5, 5],
//!   latra=[-5, 5], xsize=64)`. Arrays are `[patch, y_pix, x_pix, bin]`: `y_pix` is the row,
//!   row 0 at the **bottom** (latitude increases with the row), `x_pix` the column, column 0
//!   on the **left** at +5 deg of rotated longitude (longitude decreases with the column, the
//!   astronomical convention), pixel centres 10/63 deg apart, patch centre at (31.5, 31.5).
//! * Sampling: nearest HEALPix pixel to each patch pixel centre; counts are rescaled from the
//!   HEALPix pixel solid angle to the patch pixel's `(10/63 deg)^2`.
//! * Truth: one row per (patch, source inside it) with sub-pixel position, fluxes, expected
//!   counts per bin, and `snr_c = S / sqrt(S + B)`, `sbr_c = S / B`, where S is the source's own
//!   expected counts in its central patch pixel (the pixel nearest its position) summed over
//!   bins and B everything else there (diffuse, isotropic and every other source).

pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::PatchesConfig as Config;
pub mod fidelity;
pub mod published;
pub mod set;
pub mod truth;

use crate::catalog::Source;
use crate::config::{Centres, ExperimentConfig};
use crate::error::{Error, Result};
use crate::formats::fmt_f64;
use crate::projection::PatchGeometry;
use crate::sky::healpix::{Grid, lonlat_deg_to_vec};
use crate::sky::instrument::Instrument;
use crate::sky::render::{self, PointSource, SourceNorm};
use rand::Rng;
use rand_distr::{Distribution, Poisson};
use rayon::prelude::*;
use std::collections::HashMap;
use std::path::Path;

/// Patch centres (l, b) in deg.
pub fn centres(cfg: &ExperimentConfig) -> Vec<(f64, f64)> {
    match cfg.patches.centres {
        Centres::Nside8 => nside8_centres(),
        Centres::Random => random_centres(cfg.seed, cfg.patches.n),
    }
}

/// The 768 NSIDE-8 RING pixel centres.
pub fn nside8_centres() -> Vec<(f64, f64)> {
    let g = Grid::new(8);
    (0..g.npix() as u64)
        .map(|p| g.pix_to_lonlat_deg(p))
        .collect()
}

/// `n` centres with l uniform and sin b uniform, one stream per patch.
pub fn random_centres(seed: u64, n: usize) -> Vec<(f64, f64)> {
    (0..n)
        .map(|i| {
            let mut r = crate::rng::stream(seed, "patches/centre", i as u64);
            let l = r.random_range(0.0..360.0);
            let sb: f64 = r.random_range(-1.0..=1.0);
            (l, sb.asin().to_degrees())
        })
        .collect()
}

/// HEALPix pixel sampled by each patch pixel, `[y][x]` flattened.
pub fn sample_pixels(grid: &Grid, geom: &PatchGeometry, l0: f64, b0: f64) -> Vec<u64> {
    let n = geom.size;
    let mut out = Vec::with_capacity(n * n);
    for y in 0..n {
        for x in 0..n {
            let (l, b) = geom.pix_to_sky(l0, b0, x as f64, y as f64);
            out.push(grid.lonlat_deg_to_pix(l, b));
        }
    }
    out
}

/// Patch-pixel solid angle over HEALPix pixel solid angle.
pub fn area_scale(grid: &Grid, geom: &PatchGeometry) -> f64 {
    geom.pixel_deg().to_radians().powi(2) / grid.pixel_area_sr()
}

/// Cuts one component: `[y][x][bin]` flattened, rescaled by `scale`.
pub fn cut(bins: &[Vec<f32>], pixels: &[u64], scale: f64) -> Vec<f32> {
    let k = bins.len();
    let mut out = vec![0f32; pixels.len() * k];
    for (i, &p) in pixels.iter().enumerate() {
        for b in 0..k {
            out[i * k + b] = (bins[b][p as usize] as f64 * scale) as f32;
        }
    }
    out
}

/// `(snr_c, sbr_c)` from the source's own counts `s` and the rest `b` (both summed over bins).
pub fn snr_sbr(s: f64, b: f64) -> (f64, f64) {
    let snr = if s + b > 0.0 { s / (s + b).sqrt() } else { 0.0 };
    let sbr = if b > 0.0 { s / b } else { f64::INFINITY };
    (snr, sbr)
}

/// One truth row.
#[derive(Debug, Clone, PartialEq)]
pub struct TruthRow {
    pub patch_id: usize,
    pub source: usize,
    pub x_pix: f64,
    pub y_pix: f64,
    pub snr_c: f64,
    pub sbr_c: f64,
}

/// Sources within a patch: (index into `sources`, x_pix, y_pix), in source order.
pub fn sources_in_patch(
    geom: &PatchGeometry,
    l0: f64,
    b0: f64,
    sources: &[Source],
    buckets: &HashMap<u64, Vec<usize>>,
    bucket_grid: &Grid,
) -> Vec<(usize, f64, f64)> {
    // the patch's corners are 7.07 deg from its centre; NSIDE-16 pixels are < 4.5 deg across
    let cand = bucket_grid.query_disc(lonlat_deg_to_vec(l0, b0), 12f64.to_radians());
    let mut idx: Vec<usize> = cand
        .iter()
        .filter_map(|p| buckets.get(p))
        .flatten()
        .copied()
        .collect();
    idx.sort_unstable();
    idx.into_iter()
        .filter_map(|i| {
            let s = &sources[i];
            let (x, y) = geom.sky_to_pix(l0, b0, s.glon_deg, s.glat_deg)?;
            geom.contains(x, y).then_some((i, x, y))
        })
        .collect()
}

/// The patches stage's per-source PSF data: counts and index per bin from the sky stage.
pub struct SourcePsf<'a> {
    pub grid: &'a Grid,
    pub inst: &'a Instrument,
    pub counts: Vec<Vec<f64>>,
    pub index: Vec<Vec<f64>>,
}

impl SourcePsf<'_> {
    fn point(&self, sources: &[Source], i: usize, b: usize) -> PointSource<'_> {
        PointSource {
            v: lonlat_deg_to_vec(sources[i].glon_deg, sources[i].glat_deg),
            counts: self.counts[i][b],
            psf: self.inst.psf(b, self.index[i][b]),
        }
    }
    /// Normalisations of source `i` in every bin.
    pub fn norms(&self, sources: &[Source], i: usize) -> Vec<SourceNorm> {
        (0..self.inst.n_bins())
            .map(|b| render::source_norm(self.grid, &self.point(sources, i, b)))
            .collect()
    }
    /// Expected counts of source `i` in HEALPix pixel `pix`, summed over bins.
    pub fn counts_at(&self, sources: &[Source], i: usize, norms: &[SourceNorm], pix: u64) -> f64 {
        (0..self.inst.n_bins())
            .map(|b| {
                let p = self.point(sources, i, b);
                p.counts * render::source_fraction_at(self.grid, &p, &norms[b], pix)
            })
            .sum()
    }
}

/// Everything the stage writes, in memory.
pub struct Patches {
    pub centres: Vec<(f64, f64)>,
    /// `[component][patch]` of `[y][x][bin]` arrays.
    pub arrays: Vec<Vec<Vec<f32>>>,
    pub masks: Vec<Vec<u8>>,
    pub truth: Vec<TruthRow>,
    pub poisson: Option<Vec<Vec<f32>>>,
}

/// Cuts every patch and builds the truth table.
#[allow(clippy::too_many_arguments)]
pub fn build(
    cfg: &ExperimentConfig,
    centres: Vec<(f64, f64)>,
    grid: &Grid,
    maps: &[Vec<Vec<f32>>],
    sources: &[Source],
    psf: &SourcePsf,
    poisson_label: Option<&str>,
) -> Patches {
    let geom = PatchGeometry::default();
    let scale = area_scale(grid, &geom);
    let bucket_grid = Grid::new(16);
    let mut buckets: HashMap<u64, Vec<usize>> = HashMap::new();
    for (i, s) in sources.iter().enumerate() {
        buckets
            .entry(bucket_grid.lonlat_deg_to_pix(s.glon_deg, s.glat_deg))
            .or_default()
            .push(i);
    }
    let n = geom.size;
    let k = cfg.energy.n_bins();
    let r2 = cfg.patches.mask_radius_pix.powi(2);
    struct One {
        arrays: Vec<Vec<f32>>,
        mask: Vec<u8>,
        members: Vec<(usize, f64, f64)>,
        pixels: Vec<u64>,
        poisson: Option<Vec<f32>>,
    }
    let per: Vec<One> = centres
        .par_iter()
        .enumerate()
        .map(|(pid, &(l0, b0))| {
            let pixels = sample_pixels(grid, &geom, l0, b0);
            let arrays: Vec<Vec<f32>> = maps.iter().map(|m| cut(m, &pixels, scale)).collect();
            let members = sources_in_patch(&geom, l0, b0, sources, &buckets, &bucket_grid);
            let mut mask = vec![0u8; n * n];
            for &(_, xs, ys) in &members {
                for y in 0..n {
                    for x in 0..n {
                        if (x as f64 - xs).powi(2) + (y as f64 - ys).powi(2) <= r2 {
                            mask[y * n + x] = 1;
                        }
                    }
                }
            }
            let poisson = poisson_label.map(|label| {
                let mut rng = crate::rng::stream(cfg.seed, label, pid as u64);
                (0..n * n * k)
                    .map(|i| {
                        let lam: f64 = arrays.iter().map(|a| a[i] as f64).sum();
                        if lam > 0.0 {
                            Poisson::new(lam).map(|d| d.sample(&mut rng)).unwrap_or(0.0) as f32
                        } else {
                            0.0
                        }
                    })
                    .collect()
            });
            One {
                arrays,
                mask,
                members,
                pixels,
                poisson,
            }
        })
        .collect();
    // SNR_c / SBR_c: per-source normalisations, computed once per source present
    let mut present: Vec<usize> = per
        .iter()
        .flat_map(|o| o.members.iter().map(|m| m.0))
        .collect();
    present.sort_unstable();
    present.dedup();
    let norms: HashMap<usize, Vec<SourceNorm>> = present
        .par_iter()
        .map(|&i| (i, psf.norms(sources, i)))
        .collect();
    let norms = &norms;
    let truth: Vec<TruthRow> = per
        .par_iter()
        .enumerate()
        .flat_map_iter(|(pid, o)| {
            o.members.iter().map(move |&(i, x, y)| {
                let cx = (x.round() as usize).min(n - 1);
                let cy = (y.round() as usize).min(n - 1);
                let pix = o.pixels[cy * n + cx];
                let total: f64 = maps
                    .iter()
                    .map(|m| (0..k).map(|b| m[b][pix as usize] as f64).sum::<f64>())
                    .sum();
                let s = psf.counts_at(sources, i, &norms[&i], pix);
                let (snr_c, sbr_c) = snr_sbr(s * scale, ((total - s) * scale).max(0.0));
                TruthRow {
                    patch_id: pid,
                    source: i,
                    x_pix: x,
                    y_pix: y,
                    snr_c,
                    sbr_c,
                }
            })
        })
        .collect();
    let mut arrays = vec![Vec::with_capacity(per.len()); maps.len()];
    let mut masks = Vec::with_capacity(per.len());
    let mut poisson = poisson_label.map(|_| Vec::with_capacity(per.len()));
    for o in per {
        for (c, a) in o.arrays.into_iter().enumerate() {
            arrays[c].push(a);
        }
        masks.push(o.mask);
        if let (Some(p), Some(v)) = (poisson.as_mut(), o.poisson) {
            p.push(v);
        }
    }
    Patches {
        centres,
        arrays,
        masks,
        truth,
        poisson,
    }
}

/// Column names of `truth.csv` for `k` bins.
pub fn truth_header(k: usize) -> Vec<String> {
    let mut h: Vec<String> = [
        "patch_id",
        "source_id",
        "class",
        "x_pix",
        "y_pix",
        "glon_deg",
        "glat_deg",
        "flux_1000_ph_cm2_s",
        "flux_10000_ph_cm2_s",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    h.extend((0..k).map(|b| format!("counts_bin{b}")));
    h.push("snr_c".into());
    h.push("sbr_c".into());
    h
}

/// Columns of the published challenge's truth format (Centroid-Net style).
pub const PUBLISHED_HEADER: [&str; 13] = [
    "filename",
    "xmin",
    "xmax",
    "ymin",
    "ymax",
    "class",
    "lon_c",
    "lat_c",
    "flux_1000",
    "lon_p",
    "lat_p",
    "catalog",
    "flux_10000",
];

/// File name of a patch in the published truth format.
pub fn patch_filename(patch_id: usize) -> String {
    format!("patch_{patch_id:05}.npy")
}

fn write_outputs(
    dir: &Path,
    cfg: &ExperimentConfig,
    p: &Patches,
    sources: &[Source],
    counts: &[Vec<f64>],
    catalog_hash: &str,
) -> Result<()> {
    let n = 64;
    let k = cfg.energy.n_bins();
    let np = p.centres.len();
    for (c, name) in crate::sky::COMPONENTS.iter().enumerate() {
        let flat: Vec<f32> = p.arrays[c].concat();
        crate::npy::write(
            &dir.join(format!("patches_{name}.npy")),
            &[np, n, n, k],
            &flat,
        )?;
    }
    crate::npy::write(&dir.join("masks.npy"), &[np, n, n], &p.masks.concat())?;
    if let Some(po) = &p.poisson {
        crate::npy::write(
            &dir.join("patches_poisson.npy"),
            &[np, n, n, k],
            &po.concat(),
        )?;
    }
    let csv_err = |e: csv::Error| std::io::Error::other(e.to_string());
    crate::formats::atomic_write_with(&dir.join("patches.csv"), |w| {
        let mut wr = csv::Writer::from_writer(w);
        wr.write_record(["patch_id", "glon_deg", "glat_deg"])
            .map_err(csv_err)?;
        for (i, (l, b)) in p.centres.iter().enumerate() {
            wr.write_record([i.to_string(), fmt_f64(*l), fmt_f64(*b)])
                .map_err(csv_err)?;
        }
        wr.flush()
    })?;
    crate::formats::atomic_write_with(&dir.join("truth.csv"), |w| {
        let mut wr = csv::Writer::from_writer(w);
        wr.write_record(truth_header(k)).map_err(csv_err)?;
        for t in &p.truth {
            let s = &sources[t.source];
            let mut row = vec![
                t.patch_id.to_string(),
                s.source_id.to_string(),
                s.class.as_str().to_string(),
                fmt_f64(t.x_pix),
                fmt_f64(t.y_pix),
                fmt_f64(s.glon_deg),
                fmt_f64(s.glat_deg),
                fmt_f64(s.flux_1000_ph_cm2_s),
                fmt_f64(s.flux_10000_ph_cm2_s),
            ];
            row.extend(counts[t.source].iter().map(|&c| fmt_f64(c)));
            row.push(fmt_f64(t.snr_c));
            row.push(fmt_f64(t.sbr_c));
            wr.write_record(&row).map_err(csv_err)?;
        }
        wr.flush()
    })?;
    let r = cfg.patches.mask_radius_pix;
    crate::formats::atomic_write_with(&dir.join("truth_published.csv"), |w| {
        let mut wr = csv::Writer::from_writer(w);
        wr.write_record(PUBLISHED_HEADER).map_err(csv_err)?;
        for t in &p.truth {
            let s = &sources[t.source];
            let (lc, bc) = p.centres[t.patch_id];
            wr.write_record([
                patch_filename(t.patch_id),
                fmt_f64((t.x_pix - r).max(0.0)),
                fmt_f64((t.x_pix + r).min(63.0)),
                fmt_f64((t.y_pix - r).max(0.0)),
                fmt_f64((t.y_pix + r).min(63.0)),
                s.class.code().to_string(),
                fmt_f64(lc),
                fmt_f64(bc),
                fmt_f64(s.flux_1000_ph_cm2_s),
                fmt_f64(s.glon_deg),
                fmt_f64(s.glat_deg),
                catalog_hash.to_string(),
                fmt_f64(s.flux_10000_ph_cm2_s),
            ])
            .map_err(csv_err)?;
        }
        wr.flush()
    })?;
    Ok(())
}

/// The stage's slice of the config.
pub fn stage_config(cfg: &ExperimentConfig) -> serde_json::Value {
    serde_json::json!({ "energy": cfg.energy, "patches": cfg.patches, "geometry": PatchGeometry::default() })
}

/// The content key of the patches stage (its config slice, the catalog and sky keys).
pub fn stage_key(cfg: &ExperimentConfig) -> Result<crate::store::StageKey> {
    let (_, sky) = crate::sky::stage_keys(cfg)?;
    Ok(crate::store::StageKey {
        stage: "patches".into(),
        config: stage_config(cfg),
        inputs: [
            ("catalog".to_string(), crate::catalog::stage_key(cfg).hash()),
            ("sky".to_string(), sky.hash()),
        ]
        .into(),
        seed: cfg.seed,
    })
}

/// Runs catalog, sky and patches through the store.
pub fn run(
    store: &crate::store::Store,
    cfg: &ExperimentConfig,
    force: bool,
    progress: &indicatif::ProgressBar,
) -> Result<crate::store::StageOutput> {
    let (cat, sky) = crate::sky::run(store, cfg, false, progress)?;
    let key = stage_key(cfg)?;
    store.run_stage(&key, force, |dir| {
        let sources = crate::catalog::table::read_csv(&cat.dir.join("catalog.csv"))?;
        let (nside, maps) = crate::sky::read_maps(&sky.dir)?;
        if nside != cfg.sky.nside {
            return Err(Error::bad_file(
                sky.dir.join("map_diffuse.fits"),
                format!("NSIDE {nside}, config says {}", cfg.sky.nside),
            ));
        }
        let table = crate::sky::read_source_counts(&sky.dir.join("source_counts.csv"))?;
        let mut counts = Vec::with_capacity(sources.len());
        let mut index = Vec::with_capacity(sources.len());
        for s in &sources {
            let (c, g) = table.get(&s.source_id).cloned().ok_or_else(|| {
                Error::bad_file(
                    sky.dir.join("source_counts.csv"),
                    format!("no row for source {}", s.source_id),
                )
            })?;
            counts.push(c);
            index.push(g);
        }
        let grid = Grid::new(nside);
        let inst = crate::sky::instrument(cfg)?;
        let psf = SourcePsf {
            grid: &grid,
            inst: &inst,
            counts,
            index,
        };
        let label = format!("patches/poisson/{}", sky.manifest.hash);
        let p = build(
            cfg,
            centres(cfg),
            &grid,
            &maps,
            &sources,
            &psf,
            cfg.patches.poisson.then_some(label.as_str()),
        );
        write_outputs(
            dir,
            cfg,
            &p,
            &sources,
            &psf.counts,
            &cat.manifest.hash[..12],
        )?;
        let toml = crate::formats::to_toml_pretty(cfg)?;
        crate::formats::atomic_write(&dir.join("config.resolved.toml"), toml.as_bytes())?;
        if cfg.patches.figures {
            example_figure(dir, cfg, &p)?;
        }
        let n_agn = p
            .truth
            .iter()
            .filter(|t| sources[t.source].class == crate::catalog::SourceClass::Agn)
            .count();
        Ok(serde_json::json!({
            "n_patches": p.centres.len(),
            "centres": cfg.patches.centres,
            "n_truth_rows": p.truth.len(),
            "n_truth_agn": n_agn,
            "n_truth_psr": p.truth.len() - n_agn,
            "nside": nside,
            "poisson": cfg.patches.poisson,
        }))
    })
}

/// Four example patches (the first patches with the most sources, lowest index on ties):
/// total counts, one column per bin.
fn example_figure(dir: &Path, cfg: &ExperimentConfig, p: &Patches) -> Result<()> {
    let mut count = vec![0usize; p.centres.len()];
    for t in &p.truth {
        count[t.patch_id] += 1;
    }
    let mut order: Vec<usize> = (0..p.centres.len()).collect();
    order.sort_by(|a, b| count[*b].cmp(&count[*a]).then(a.cmp(b)));
    let pick: Vec<usize> = order.into_iter().take(4).collect();
    let k = cfg.energy.n_bins();
    let totals: Vec<Vec<f32>> = pick
        .iter()
        .map(|&i| {
            let mut t = p.arrays[0][i].clone();
            for c in 1..p.arrays.len() {
                t.iter_mut().zip(&p.arrays[c][i]).for_each(|(a, b)| *a += b);
            }
            t
        })
        .collect();
    let labels: Vec<String> = pick
        .iter()
        .map(|&i| {
            format!(
                "#{i} ({:.1}, {:.1}) {} src",
                p.centres[i].0, p.centres[i].1, count[i]
            )
        })
        .collect();
    let e = &cfg.energy.bin_edges_gev;
    let bins: Vec<String> = (0..k)
        .map(|b| format!("{}-{} GeV", e[b], e[b + 1]))
        .collect();
    crate::sky::figures::patch_grid(
        &dir.join("figures"),
        "patches_examples",
        "Example patches: expected total counts (log scale per panel)",
        &totals,
        &labels,
        64,
        k,
        &bins,
    )
}

/// The `patches` stage: 64 x 64 x bins cut-outs of a sky, masks and truth tables.
pub struct PatchesStage;

impl crate::stage::Stage for PatchesStage {
    fn name(&self) -> &'static str {
        "patches"
    }
    fn about(&self) -> &'static str {
        "64 x 64 x bins patches (diffuse, AGN, PSR components), masks and truth tables cut from a sky"
    }
    fn outputs(&self) -> &'static [&'static str] {
        &[
            "patches_diffuse.npy",
            "patches_agn.npy",
            "patches_psr.npy",
            "masks.npy",
            "patches.csv",
            "truth.csv",
            "truth.parquet",
            "truth_published.csv",
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
            crate::stage::Input::same("sky", cfg, label),
        ])
    }
    fn key(&self, cfg: &ExperimentConfig) -> Result<crate::store::StageKey> {
        stage_key(cfg)
    }
    fn run(
        &self,
        store: &crate::store::Store,
        cfg: &ExperimentConfig,
        force: bool,
        progress: &indicatif::ProgressBar,
    ) -> Result<crate::store::StageOutput> {
        run(store, cfg, force, progress)
    }
    fn describe(&self, out: &crate::store::StageOutput) -> String {
        let s = &out.manifest.summary;
        format!(
            "{} patches ({}), {} truth rows",
            s["n_patches"],
            s["centres"].as_str().unwrap_or("?"),
            s["n_truth_rows"]
        )
    }
}
