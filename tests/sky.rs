#![allow(clippy::needless_range_loop)]
//! Sky and patch stages: counts conservation, PSF containment, projection, truth, SNR_c,
//! determinism across thread counts, FITS headers. Smoke scale (run with --release).

use gammabench::catalog::{Source, SourceClass, Spectrum};
use gammabench::config::{self, ExperimentConfig};
use gammabench::patches;
use gammabench::projection::PatchGeometry;
use gammabench::sky::fits::HealpixFits;
use gammabench::sky::healpix::{Disc, Grid, lonlat_deg_to_vec};
use gammabench::sky::render::{self, PointSource};
use gammabench::store::Store;
use std::path::Path;
use std::process::Command;

fn smoke_cfg() -> ExperimentConfig {
    config::load(Some(Path::new("configs/smoke/sky.toml")), &[])
        .unwrap()
        .remove(0)
        .config
}

fn source(id: u64, class: SourceClass, l: f64, b: f64, k: f64) -> Source {
    let spectrum = Spectrum::LogParabola {
        k,
        e0_mev: 1000.0,
        alpha: 2.0,
        beta: 0.05,
    };
    Source {
        source_id: id,
        class,
        glon_deg: l,
        glat_deg: b,
        ra_deg: 0.0,
        dec_deg: 0.0,
        spectrum,
        eflux_100_erg_cm2_s: spectrum.energy_flux_erg(100.0, 1e5),
        flux_1000_ph_cm2_s: spectrum.photon_flux(1e3, 1e5),
        flux_10000_ph_cm2_s: spectrum.photon_flux(1e4, 1e6),
        flux_bins_ph_cm2_s: vec![],
    }
}

#[test]
fn smoke_pipeline_outputs_and_conservation() {
    let cfg = smoke_cfg();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let pb = indicatif::ProgressBar::hidden();
    let (cat, sky) = gammabench::sky::run(&store, &cfg, false, &pb).unwrap();
    let out = patches::run(&store, &cfg, false, &pb).unwrap();

    // point-source maps hold exactly the sources' expected counts (0.1%)
    let sources = gammabench::catalog::table::read_csv(&cat.dir.join("catalog.csv")).unwrap();
    let counts = gammabench::sky::read_source_counts(&sky.dir.join("source_counts.csv")).unwrap();
    let (nside, maps) = gammabench::sky::read_maps(&sky.dir).unwrap();
    assert_eq!(nside, 64);
    for (c, class) in [(1, SourceClass::Agn), (2, SourceClass::Psr)] {
        for b in 0..5 {
            let want: f64 = sources
                .iter()
                .filter(|s| s.class == class)
                .map(|s| counts[&s.source_id].0[b])
                .sum();
            let got: f64 = maps[c][b].iter().map(|&x| x as f64).sum();
            assert!(
                want > 0.0 && (got / want - 1.0).abs() < 1e-3,
                "{class:?} bin {b}: {got} vs {want}"
            );
        }
    }
    // the diffuse map holds the unsmoothed model counts (1%)
    let model = gammabench::sky::iem::IemModel::load("B1").unwrap();
    let grid = Grid::new(64);
    let inst = gammabench::sky::instrument(&cfg).unwrap();
    let t = model.maps(&grid).unwrap();
    let (raw, _) = model.counts(&t, &grid, &inst);
    for b in 0..5 {
        let want: f64 = raw[b].iter().sum();
        let got: f64 = maps[0][b].iter().map(|&x| x as f64).sum();
        assert!(
            (got / want - 1.0).abs() < 1e-2,
            "diffuse bin {b}: {got} vs {want}"
        );
    }

    // FITS headers healpy needs
    let f = HealpixFits::read(&sky.dir.join("map_agn.fits")).unwrap();
    assert_eq!(
        (f.nside, f.ordering.as_str(), f.coordsys.as_str()),
        (64, "RING", "G")
    );
    assert_eq!(f.columns.len(), 5);
    assert_eq!(f.columns[0].1, "counts");
    assert_eq!(f.key("COMPONT"), Some("agn"));
    assert_eq!(
        f.key("EMIN0").map(|v| v.parse::<f64>().unwrap()),
        Some(500.0)
    );
    let raw = std::fs::read(sky.dir.join("map_agn.fits")).unwrap();
    let header = String::from_utf8_lossy(&raw[2880..2880 * 3]);
    for k in [
        "PIXTYPE = 'HEALPIX '",
        "ORDERING= 'RING    '",
        "COORDSYS= 'G       '",
        "INDXSCHM= 'IMPLICIT'",
    ] {
        assert!(header.contains(k), "{k}");
    }

    // patches: shapes, truth header, masks
    let (shape, diffuse) =
        gammabench::npy::read::<f32>(&out.dir.join("patches_diffuse.npy")).unwrap();
    assert_eq!(shape, vec![12, 64, 64, 5]);
    assert!(diffuse.iter().all(|x| *x > 0.0 && x.is_finite()));
    let (mshape, masks) = gammabench::npy::read::<u8>(&out.dir.join("masks.npy")).unwrap();
    assert_eq!(mshape, vec![12, 64, 64]);
    let (_, poisson) = gammabench::npy::read::<f32>(&out.dir.join("patches_poisson.npy")).unwrap();
    assert!(poisson.iter().all(|x| x.fract() == 0.0 && *x >= 0.0));
    let truth = std::fs::read_to_string(out.dir.join("truth.csv")).unwrap();
    let mut lines = truth.lines();
    assert_eq!(
        lines.next().unwrap(),
        "patch_id,source_id,class,x_pix,y_pix,glon_deg,glat_deg,flux_1000_ph_cm2_s,flux_10000_ph_cm2_s,counts_bin0,counts_bin1,counts_bin2,counts_bin3,counts_bin4,snr_c,sbr_c"
    );
    let rows: Vec<Vec<String>> = lines
        .map(|l| l.split(',').map(String::from).collect())
        .collect();
    assert!(!rows.is_empty());
    let centres = patches::centres(&cfg);
    let geom = PatchGeometry::default();
    for r in &rows {
        let pid: usize = r[0].parse().unwrap();
        let (x, y): (f64, f64) = (r[3].parse().unwrap(), r[4].parse().unwrap());
        assert!(r[2] == "AGN" || r[2] == "PSR");
        // the truth position is the projection of the source's sky position
        let (l, b) = (r[5].parse().unwrap(), r[6].parse().unwrap());
        let (x2, y2) = geom
            .sky_to_pix(centres[pid].0, centres[pid].1, l, b)
            .unwrap();
        assert!((x - x2).abs() < 1e-9 && (y - y2).abs() < 1e-9);
        // the mask covers the source's pixel
        let (cx, cy) = (x.round() as usize, y.round() as usize);
        assert_eq!(masks[pid * 4096 + cy.min(63) * 64 + cx.min(63)], 1);
        let (snr, sbr): (f64, f64) = (r[14].parse().unwrap(), r[15].parse().unwrap());
        assert!(snr > 0.0 && sbr > 0.0);
    }
    let published = std::fs::read_to_string(out.dir.join("truth_published.csv")).unwrap();
    assert_eq!(
        published.lines().next().unwrap(),
        "filename,xmin,xmax,ymin,ymax,class,lon_c,lat_c,flux_1000,lon_p,lat_p,catalog,flux_10000"
    );
    assert_eq!(published.lines().count(), rows.len() + 1);
    // figures
    for f in ["mollweide_diffuse.png", "mollweide_point_sources.png"] {
        assert!(sky.dir.join("figures").join(f).exists(), "{f}");
    }
    assert!(out.dir.join("figures/patches_examples.png").exists());
}

#[test]
fn bright_source_puts_68_percent_within_r68_in_every_bin() {
    let cfg = smoke_cfg();
    let inst = gammabench::sky::instrument(&cfg).unwrap();
    let src = source(0, SourceClass::Agn, 123.4, 45.6, 1e-9);
    // NSIDE 4096 (0.014 deg pixels) resolves even the 20-200 GeV r68 (~0.1 deg)
    let grid = Grid::new(4096);
    let v = lonlat_deg_to_vec(src.glon_deg, src.glat_deg);
    for b in 0..5 {
        let index = inst.local_index(b, |e| src.spectrum.dnde(e));
        let psf = inst.psf(b, index);
        let p = PointSource {
            v,
            counts: 1000.0,
            psf,
        };
        let n = render::source_norm(&grid, &p);
        let r68 = psf.r68_deg.to_radians();
        let disc = Disc::new(v, r68);
        let (lo, hi) = grid.ring_span(v, r68);
        let mut inside = 0.0;
        grid.for_each_in_disc(&disc, lo, hi, |pix, _| {
            inside += render::source_fraction_at(&grid, &p, &n, pix)
        });
        eprintln!(
            "bin {b}: fraction {inside:.4} within r68 = {:.4} deg",
            psf.r68_deg
        );
        assert!(
            (inside / 0.68 - 1.0).abs() < 0.05,
            "bin {b}: {inside} within r68 = {} deg",
            psf.r68_deg
        );
    }
}

#[test]
fn projection_centre_poles_wrap_and_known_source() {
    let geom = PatchGeometry::default();
    // centre pixel maps to the centre
    for &(l0, b0) in &[(10.0, 20.0), (0.0, 90.0), (0.0, -90.0), (359.9, 0.0)] {
        let (l, b) = geom.pix_to_sky(l0, b0, 31.5, 31.5);
        assert!(gammabench::coords::angular_distance_deg(l, b, l0, b0) < 1e-9);
    }
    // patches at the poles and across l = 0/360 are whole: every patch pixel samples a
    // distinct sky position and every sampled HEALPix pixel is within the patch
    let grid = Grid::new(256);
    for &(l0, b0) in &[(0.0, 90.0), (123.0, -90.0), (0.0, 0.0), (359.0, 30.0)] {
        let pix = patches::sample_pixels(&grid, &geom, l0, b0);
        let mut uniq = pix.clone();
        uniq.sort_unstable();
        uniq.dedup();
        // 4096 patch pixels of 0.159 deg on 0.229 deg HEALPix pixels: ~2000 distinct
        assert!(
            uniq.len() > 1500,
            "({l0}, {b0}): {} distinct pixels",
            uniq.len()
        );
        for p in uniq {
            let (l, b) = grid.pix_to_lonlat_deg(p);
            let (x, y) = geom.sky_to_pix(l0, b0, l, b).unwrap();
            assert!(
                (-2.0..65.0).contains(&x) && (-2.0..65.0).contains(&y),
                "({l0}, {b0}): pixel at ({x}, {y})"
            );
        }
    }
    // across l = 0: left half at small l, right half at l near 360
    let (l_left, _) = geom.pix_to_sky(0.0, 0.0, 5.0, 31.5);
    let (l_right, _) = geom.pix_to_sky(0.0, 0.0, 58.0, 31.5);
    assert!(l_left > 3.0 && l_left < 5.0 && l_right > 355.0 && l_right < 357.0);

    // a bright source at (l, b) = (2, 1) in a patch centred on (0, 0) peaks at x = (5 - 2) / (10/63),
    // y = (5 + 1) / (10/63)
    let cfg = smoke_cfg();
    let inst = gammabench::sky::instrument(&cfg).unwrap();
    let grid = Grid::new(512);
    let src = source(0, SourceClass::Agn, 2.0, 1.0, 1e-9);
    let (maps, _, _) = gammabench::sky::render_sources(&grid, &inst, std::slice::from_ref(&src));
    let pixels = patches::sample_pixels(&grid, &geom, 0.0, 0.0);
    let map32: Vec<Vec<f32>> = maps[0]
        .iter()
        .map(|m| m.iter().map(|&x| x as f32).collect())
        .collect();
    let patch = patches::cut(&map32, &pixels, patches::area_scale(&grid, &geom));
    let (mut best, mut at) = (0.0f32, 0usize);
    for i in 0..4096 {
        if patch[i * 5 + 4] > best {
            best = patch[i * 5 + 4];
            at = i;
        }
    }
    let (x, y) = ((at % 64) as f64, (at / 64) as f64);
    let (xe, ye) = (3.0 / geom.pixel_deg(), 6.0 / geom.pixel_deg());
    assert!(
        (x - xe).abs() <= 1.0 && (y - ye).abs() <= 1.0,
        "peak at ({x}, {y}), expected ({xe}, {ye})"
    );
    // and the truth projection says the same
    let (xs, ys) = geom.sky_to_pix(0.0, 0.0, 2.0, 1.0).unwrap();
    assert!((xs - xe).abs() < 1e-9 && (ys - ye).abs() < 1e-9);
}

#[test]
fn nside8_centres() {
    let c = patches::nside8_centres();
    assert_eq!(c.len(), 768);
    assert!(
        (c[0].0 - 45.0).abs() < 1e-9 && (c[0].1 - 84.1497).abs() < 1e-4,
        "{:?}",
        c[0]
    );
    let mut cfg = smoke_cfg();
    cfg.patches.centres = gammabench::config::Centres::Nside8;
    assert_eq!(patches::centres(&cfg), c);
    // random centres: reproducible, l uniform, sin b uniform (mean ~0)
    let r = patches::random_centres(5, 4000);
    assert_eq!(r, patches::random_centres(5, 4000));
    let mean_sinb = r.iter().map(|(_, b)| b.to_radians().sin()).sum::<f64>() / 4000.0;
    let mean_l = r.iter().map(|(l, _)| l).sum::<f64>() / 4000.0;
    assert!(mean_sinb.abs() < 0.05 && (mean_l - 180.0).abs() < 8.0);
}

#[test]
fn snr_and_sbr_on_a_two_source_patch() {
    let cfg = smoke_cfg();
    let inst = gammabench::sky::instrument(&cfg).unwrap();
    let grid = Grid::new(64);
    // two sources 0.6 deg apart near the centre of a patch at (0, 0), uniform diffuse
    let s1 = source(0, SourceClass::Agn, 0.3, 0.2, 2e-10);
    let s2 = source(1, SourceClass::Psr, 359.8, -0.1, 5e-10);
    let sources = vec![s1.clone(), s2.clone()];
    let (pts, counts, index) = gammabench::sky::render_sources(&grid, &inst, &sources);
    let diffuse = vec![vec![2.0f64; grid.npix()]; 5];
    let to32 = |m: &Vec<Vec<f64>>| {
        m.iter()
            .map(|b| b.iter().map(|&x| x as f32).collect())
            .collect::<Vec<Vec<f32>>>()
    };
    let maps = vec![to32(&diffuse), to32(&pts[0]), to32(&pts[1])];
    let psf = patches::SourcePsf {
        grid: &grid,
        inst: &inst,
        counts,
        index,
    };
    let p = patches::build(&cfg, vec![(0.0, 0.0)], &grid, &maps, &sources, &psf, None);
    assert_eq!(p.truth.len(), 2);
    let geom = PatchGeometry::default();
    let scale = patches::area_scale(&grid, &geom);
    // source 2 alone, to know its counts in source 1's central pixel
    let (alone, _, _) = gammabench::sky::render_sources(&grid, &inst, std::slice::from_ref(&s2));
    let (alone1, _, _) = gammabench::sky::render_sources(&grid, &inst, std::slice::from_ref(&s1));
    for t in &p.truth {
        let pixels = patches::sample_pixels(&grid, &geom, 0.0, 0.0);
        let pix = pixels[(t.y_pix.round() as usize) * 64 + t.x_pix.round() as usize] as usize;
        let (own, other) = if t.source == 0 {
            (&alone1, &alone)
        } else {
            (&alone, &alone1)
        };
        let cls_own = if t.source == 0 { 0 } else { 1 };
        let cls_other = 1 - cls_own;
        let s: f64 = (0..5).map(|b| own[cls_own][b][pix]).sum::<f64>() * scale;
        let bkg: f64 = (0..5)
            .map(|b| diffuse[b][pix] + other[cls_other][b][pix])
            .sum::<f64>()
            * scale;
        let (snr, sbr) = (s / (s + bkg).sqrt(), s / bkg);
        assert!(
            (t.snr_c / snr - 1.0).abs() < 1e-4,
            "source {}: snr {} vs {snr}",
            t.source,
            t.snr_c
        );
        assert!(
            (t.sbr_c / sbr - 1.0).abs() < 1e-4,
            "source {}: sbr {} vs {sbr}",
            t.source,
            t.sbr_c
        );
        // the neighbour contributes to the background
        assert!(other[cls_other].iter().map(|m| m[pix]).sum::<f64>() > 0.0);
    }
    assert_eq!(patches::snr_sbr(9.0, 16.0), (9.0 / 5.0, 9.0 / 16.0));
}

#[test]
fn outputs_are_identical_at_1_and_2_threads() {
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_gammabench");
    let mut files = Vec::new();
    for threads in ["1", "2"] {
        let store = dir.path().join(format!("store{threads}"));
        let status = Command::new(bin)
            .args(["-q", "--threads", threads, "--store"])
            .arg(&store)
            .args(["patches", "--config", "configs/smoke/sky.toml"])
            .status()
            .unwrap();
        assert!(status.success());
        let mut all = std::collections::BTreeMap::new();
        for stage in ["catalog", "diffuse", "sky", "patches"] {
            for e in std::fs::read_dir(store.join(stage)).unwrap() {
                let m: serde_json::Value = serde_json::from_str(
                    &std::fs::read_to_string(e.unwrap().path().join("manifest.json")).unwrap(),
                )
                .unwrap();
                for (k, v) in m["files"].as_object().unwrap() {
                    all.insert(
                        format!("{stage}/{}/{k}", m["hash"].as_str().unwrap()),
                        v.as_str().unwrap().to_string(),
                    );
                }
            }
        }
        files.push(all);
    }
    assert!(files[0].keys().any(|k| k.ends_with("map_agn.fits")));
    assert!(files[0].keys().any(|k| k.ends_with("patches_poisson.npy")));
    assert_eq!(files[0], files[1]);
}

#[test]
fn bad_sky_config_is_located() {
    let text = "[sky]\nnside = 100\n";
    let err = config::load_text("x.toml", text, &[])
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("x.toml:2:1: key `sky.nside`"), "{err}");
    let err = config::load_text("x.toml", "[sky]\niem = \"B7\"\n", &[])
        .unwrap_err()
        .to_string();
    assert!(err.contains("sky.iem"), "{err}");
    let grid = config::load_text("x.toml", "[sky]\niem = [\"B1\", \"B2\", \"B3\"]\n", &[]).unwrap();
    assert_eq!(grid.len(), 3);
}

#[test]
fn nine_test_skies_at_smoke_scale() {
    let points = config::load(Some(Path::new("configs/smoke/nine_skies.toml")), &[]).unwrap();
    assert_eq!(points.len(), 9);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(dir.path());
    let pb = indicatif::ProgressBar::hidden();
    let mut skies = std::collections::BTreeSet::new();
    let mut diffuse_totals = std::collections::BTreeMap::new();
    for p in &points {
        let out = patches::run(&store, &p.config, false, &pb).unwrap();
        assert_eq!(out.manifest.summary["n_patches"], 768);
        skies.insert(out.manifest.inputs["sky"].clone());
        let (_, maps) =
            gammabench::sky::read_maps(&store.stage_dir("sky", &out.manifest.inputs["sky"]))
                .unwrap();
        let total: f64 = maps[0].iter().flatten().map(|&x| x as f64).sum();
        diffuse_totals.insert(p.config.sky.iem.clone(), total);
    }
    assert_eq!(skies.len(), 9);
    // three diffuse renders, shared by the three catalogs, and the models differ
    assert_eq!(
        std::fs::read_dir(dir.path().join("diffuse"))
            .unwrap()
            .count(),
        3
    );
    let t: Vec<f64> = diffuse_totals.values().copied().collect();
    assert!(
        t.len() == 3 && (t[0] - t[1]).abs() > 1e-3 * t[0] && (t[1] - t[2]).abs() > 1e-3 * t[1],
        "{t:?}"
    );
}

/// The instrument of the paper's skies (five bins 0.5-200 GeV, 9.5 years).
fn paper_instrument() -> gammabench::sky::instrument::Instrument {
    let cfg = config::load_text("paper", "[catalog]\nfigures = false\n", &[])
        .unwrap()
        .remove(0)
        .config;
    gammabench::sky::instrument(&cfg).unwrap()
}

#[test]
fn b1_reproduces_the_published_background_levels() {
    // The published F0-B1 levels (issue 14): mean expected counts per pixel of the 768 test
    // patches, |b| bands 0-2, 2-10, 10-30, 30-90 deg, bins 0.5-1 ... 20-200 GeV; B1's model
    // file must give each within 5 % (the fit gives 4 %; NSIDE 64 band means are within 0.5 %
    // of NSIDE 256).
    use gammabench::patches::fidelity::model_levels;
    use gammabench::sky::iem::IemModel;
    let published = [
        [61.51, 35.57, 23.29, 2.878, 0.743],
        [30.90, 17.60, 11.51, 1.446, 0.370],
        [8.512, 4.630, 3.024, 0.409, 0.107],
        [3.871, 2.043, 1.343, 0.199, 0.055],
    ];
    let inst = paper_instrument();
    let grid = Grid::new(64);
    let centres = patches::nside8_centres();
    let b1 = IemModel::load("B1").unwrap();
    let levels = model_levels(&b1, &grid, &inst, &centres).unwrap();
    assert_eq!(levels.len(), 20);
    let n: Vec<usize> = levels.iter().step_by(5).map(|l| l.n_patches).collect();
    assert_eq!(n, [32, 128, 224, 384]);
    for (k, l) in levels.iter().enumerate() {
        let p = published[k / 5][k % 5];
        assert_eq!(l.published, Some(p));
        let r = l.total / p;
        assert!(
            (r - 1.0).abs() < 0.05,
            "band {}-{} bin {}: {} vs published {p} (ratio {r:.3})",
            l.band_lo_deg,
            l.band_hi_deg,
            l.bin,
            l.total
        );
    }
    // without the calibration the physical forms alone are far below (0.32-0.62)
    let mut raw = b1.clone();
    raw.calibration = None;
    let low = model_levels(&raw, &grid, &inst, &centres).unwrap();
    assert!(low.iter().all(|l| l.total / l.published.unwrap() < 0.65));
    // the isotropic level is the documented IGRB through the exposure, the same in every band
    assert!(
        levels
            .iter()
            .all(|l| (l.isotropic / levels[l.bin].isotropic - 1.0).abs() < 1e-12)
    );
}

#[test]
fn shipped_calibration_is_the_fit_of_the_published_levels() {
    // Refitting B1 from its uncalibrated physical forms gives the factors in its file.
    use gammabench::patches::fidelity::calibrate_galactic;
    use gammabench::sky::iem::IemModel;
    let inst = paper_instrument();
    let grid = Grid::new(64);
    let b1 = IemModel::load("B1").unwrap();
    let shipped = b1.calibration.clone().unwrap();
    let mut raw = b1.clone();
    raw.calibration = None;
    let (fit, levels) =
        calibrate_galactic(&raw, &grid, &inst, &patches::nside8_centres(), "test").unwrap();
    for k in 0..5 {
        assert!((fit.energies_mev[k] / shipped.energies_mev[k] - 1.0).abs() < 1e-6);
        assert!(
            (fit.gas_scale[k] / shipped.gas_scale[k] - 1.0).abs() < 1e-3,
            "{fit:?}"
        );
        assert!(
            (fit.inverse_compton_scale[k] / shipped.inverse_compton_scale[k] - 1.0).abs() < 1e-3,
            "{fit:?}"
        );
    }
    assert!(
        levels
            .iter()
            .all(|l| (l.total / l.published.unwrap() - 1.0).abs() < 0.05)
    );
    // B2 and B3 carry B1's factors
    for m in ["B2", "B3"] {
        assert_eq!(IemModel::load(m).unwrap().calibration.unwrap(), shipped);
    }
    // interpolation: exact at the nodes, constant beyond, linear in ln E between
    let c = &shipped;
    assert_eq!(c.at(&c.gas_scale, c.energies_mev[2]), c.gas_scale[2]);
    assert_eq!(c.at(&c.gas_scale, 100.0), c.gas_scale[0]);
    assert_eq!(c.at(&c.gas_scale, 1e6), c.gas_scale[4]);
    let mid = (c.energies_mev[0] * c.energies_mev[1]).sqrt();
    let want = 0.5 * (c.gas_scale[0] + c.gas_scale[1]);
    assert!((c.at(&c.gas_scale, mid) - want).abs() < 1e-12);
}

#[test]
fn bad_calibration_table_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let text = gammabench::sky::iem::B1_TOML.replace(
        "inverse_compton_scale = [2.1147, 1.7532, 2.7661, 2.7648, 2.1284]",
        "inverse_compton_scale = [1.6768, 1.2345]",
    );
    let p = dir.path().join("bad.toml");
    std::fs::write(&p, &text).unwrap();
    let e = gammabench::sky::iem::IemModel::load(p.to_str().unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("calibration.inverse_compton_scale"), "{e}");
    assert!(e.contains("one factor per node"), "{e}");
    let line = text
        .lines()
        .position(|l| l.starts_with("inverse_compton_scale"))
        .unwrap()
        + 1;
    assert!(e.contains(&format!(":{line}:")), "{e}");
}
