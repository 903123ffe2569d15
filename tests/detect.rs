//! Detector tests (issue 5): heads on planted score maps, union/intersection, U-Net overfit,
//! save/load, resume, and the TS baseline. Smoke-sized; run with `--release`.

use gammabench::config::{
    self, CnetSection, ExperimentConfig, LogSection, UnekRegion, UnekSection,
};
use gammabench::detect::centroid_net::{cnet_head, vote_targets};
use gammabench::detect::log_blob::log_head;
use gammabench::detect::neural::NeuralDetector;
use gammabench::detect::patches::write_patch_dir;
use gammabench::detect::ts_baseline::{psf_templates, ts_map, ts_peaks};
use gammabench::detect::unet_kmeans::unek_head;
use gammabench::detect::{Cube, Detector, PatchSet, PixelPeak, TruthSource, combine, draw_poisson};
use gammabench::projection::PatchGeometry;
use std::path::Path;

const S: usize = 64;

/// Planted sources of the head tests, (x, y) px, sub-pixel and well separated.
const PLANTED: [(f64, f64); 5] = [
    (10.3, 12.6),
    (40.8, 9.2),
    (25.5, 33.1),
    (52.2, 50.7),
    (12.0, 54.4),
];

fn disk_map(sources: &[(f64, f64)], r: f64, inside: f64, outside: f64) -> Vec<f64> {
    (0..S * S)
        .map(|i| {
            let (x, y) = ((i % S) as f64, (i / S) as f64);
            if sources
                .iter()
                .any(|(sx, sy)| (x - sx).powi(2) + (y - sy).powi(2) <= r * r)
            {
                inside
            } else {
                outside
            }
        })
        .collect()
}

/// Every planted source has exactly one peak within `tol` px and there are no other peaks.
fn assert_exact(peaks: &[PixelPeak], planted: &[(f64, f64)], tol: f64, what: &str) {
    assert_eq!(peaks.len(), planted.len(), "{what}: {peaks:?}");
    for (sx, sy) in planted {
        let n = peaks
            .iter()
            .filter(|p| ((p.x_pix - sx).powi(2) + (p.y_pix - sy).powi(2)).sqrt() < tol)
            .count();
        assert_eq!(
            n, 1,
            "{what}: source ({sx}, {sy}) matched {n} times in {peaks:?}"
        );
    }
}

#[test]
fn unek_finds_planted_disks() {
    let map = disk_map(&PLANTED, 2.5, 0.95, 0.03);
    let peaks = unek_head(&map, S, &UnekSection::default(), 1, 0);
    assert_exact(&peaks, &PLANTED, 0.5, "UNEK disk R=5");
    assert!(peaks.iter().all(|p| p.score > 0.9));
    // The published code's 4 x 4 square region finds the same sources.
    let sq = UnekSection {
        region: UnekRegion::Square,
        region_size_px: 4.0,
        ..UnekSection::default()
    };
    assert_exact(
        &unek_head(&map, S, &sq, 1, 0),
        &PLANTED,
        0.5,
        "UNEK square 4",
    );
    // Nothing above threshold: nothing found.
    assert!(unek_head(&vec![0.1; S * S], S, &UnekSection::default(), 1, 0).is_empty());
}

#[test]
fn cnet_votes_find_planted_sources() {
    let mut v = vote_targets(S, &PLANTED, 6.0);
    // Imperfect network: a deterministic +-0.3 px wobble on every vector.
    for (k, vec) in v.iter_mut().enumerate() {
        if vec[0] != 0.0 || vec[1] != 0.0 {
            let w = ((k * 7919) % 13) as f32 / 12.0 - 0.5;
            vec[0] += 0.6 * w;
            vec[1] -= 0.6 * w;
        }
    }
    assert_exact(
        &cnet_head(&v, S, &CnetSection::default()),
        &PLANTED,
        0.5,
        "CNET",
    );
    // Zero vectors: every pixel votes once for itself, below the 10-vote threshold.
    assert!(cnet_head(&vec![[0.0; 2]; S * S], S, &CnetSection::default()).is_empty());
}

#[test]
fn log_finds_planted_disks() {
    let map = disk_map(&PLANTED, 2.5, 0.95, 0.03);
    assert_exact(
        &log_head(&map, S, &LogSection::default()),
        &PLANTED,
        0.5,
        "LoG",
    );
    let multi = LogSection {
        sigmas_px: vec![1.0, 1.4, 2.0, 2.8],
        ..LogSection::default()
    };
    assert_exact(&log_head(&map, S, &multi), &PLANTED, 0.5, "LoG multi-scale");
    assert!(log_head(&vec![0.5; S * S], S, &LogSection::default()).is_empty());
}

#[test]
fn union_and_intersection_of_hand_made_lists() {
    let det = |p: u64, l: f64, b: f64, n: &str| gammabench::detect::Detection {
        patch_id: p,
        x_pix: 0.0,
        y_pix: 0.0,
        glon_deg: l,
        glat_deg: b,
        score: 0.5,
        detector: n.into(),
    };
    // Across l = 0: 359.9 and 0.1 are 0.2 deg apart.
    let a = vec![det(3, 359.9, 10.0, "unek"), det(3, 5.0, 10.0, "unek")];
    let b = vec![
        det(3, 0.1, 10.0, "cnet"),
        det(4, 5.0, 10.0, "cnet"),
        det(3, 5.25, 10.0, "cnet"),
    ];
    let i = combine::intersection(&a, &b, 0.3);
    assert_eq!(i.len(), 2);
    assert!(i.iter().any(|d| d.glon_deg < 0.01 || d.glon_deg > 359.99));
    assert_eq!(combine::union(&a, &b, 0.3).len(), 3);
    assert_eq!(combine::union(&a, &b, 0.1).len(), 5);
}

fn smoke_config() -> ExperimentConfig {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke/detect.toml");
    let mut pts = config::load(Some(&path), &[]).expect("smoke config loads");
    pts.remove(0).config
}

/// Synthetic patches: flat diffuse background plus bright Gaussian sources (sigma 1.2 px) at
/// seeded random sub-pixel positions away from the edges, 2-4 per patch.
fn synthetic(
    n: usize,
    seed: u64,
    bg_per_bin: f32,
    src_counts: f64,
) -> (Cube, Cube, Vec<TruthSource>) {
    use rand::Rng as _;
    let nb = 5;
    let diffuse = Cube::from_elem([n, S, S, nb], bg_per_bin);
    let mut agn = Cube::zeros([n, S, S, nb]);
    let mut truth = Vec::new();
    for p in 0..n {
        let mut rng = gammabench::rng::stream(seed, "test/synthetic", p as u64);
        let k = rng.random_range(2..=4);
        let mut placed: Vec<(f64, f64)> = Vec::new();
        while placed.len() < k {
            let (x, y) = (rng.random_range(6.0..58.0), rng.random_range(6.0..58.0));
            if placed.iter().all(|(a, b)| (a - x).hypot(b - y) > 10.0) {
                placed.push((x, y));
            }
        }
        for &(sx, sy) in &placed {
            for y in 0..S {
                for x in 0..S {
                    let r2 = (x as f64 - sx).powi(2) + (y as f64 - sy).powi(2);
                    let g = (-r2 / (2.0 * 1.44)).exp() / (2.0 * std::f64::consts::PI * 1.44);
                    for b in 0..nb {
                        *agn.at_mut(p, y, x, b) += (src_counts / nb as f64 * g) as f32;
                    }
                }
            }
            truth.push(TruthSource {
                patch_id: p as u64,
                x_pix: sx,
                y_pix: sy,
                flux_1000_ph_cm2_s: 1e-9,
            });
        }
    }
    (diffuse, agn, truth)
}

fn synthetic_dir(dir: &Path, n: usize, seed: u64) -> PatchSet {
    let (diffuse, agn, truth) = synthetic(n, seed, 0.3, 400.0);
    let psr = Cube::zeros(diffuse.shape());
    let centres: Vec<(f64, f64)> = (0..n).map(|i| (30.0 * i as f64, 20.0)).collect();
    write_patch_dir(dir, [&diffuse, &agn, &psr], &centres, &truth).unwrap();
    PatchSet::load(dir, 0).unwrap()
}

/// Fraction of planted sources with a detection within `tol` px, and the number of
/// detections matching nothing.
fn recall(set: &PatchSet, dets: &[gammabench::detect::Detection], tol: f64) -> (f64, usize) {
    let mut found = 0;
    let mut total = 0;
    for (i, srcs) in set.truth.iter().enumerate() {
        for s in srcs {
            total += 1;
            if dets.iter().any(|d| {
                d.patch_id == set.patch_ids[i] && (d.x_pix - s.x_pix).hypot(d.y_pix - s.y_pix) < tol
            }) {
                found += 1;
            }
        }
    }
    let spurious = dets
        .iter()
        .filter(|d| {
            let i = set.patch_ids.iter().position(|p| *p == d.patch_id).unwrap();
            !set.truth[i]
                .iter()
                .any(|s| (d.x_pix - s.x_pix).hypot(d.y_pix - s.y_pix) < tol)
        })
        .count();
    (found as f64 / total as f64, spurious)
}

#[test]
fn unet_overfits_finds_sources_saves_loads_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let set = synthetic_dir(&tmp.path().join("patches"), 8, 5);
    let mut cfg = smoke_config();
    let pb = indicatif::ProgressBar::hidden();

    // Overfit: the training loss falls by at least a factor 4.
    let mut det = NeuralDetector::new(&cfg).unwrap();
    let model_dir = tmp.path().join("unek");
    let r = det.fit(&set, &model_dir, &pb).unwrap();
    eprintln!("overfit: {r:?}");
    assert_eq!(r.epochs_run, cfg.train.epochs);
    assert!(
        r.last_train_loss < r.first_train_loss / 4.0,
        "loss {} -> {}",
        r.first_train_loss,
        r.last_train_loss
    );
    // The planted bright sources are found on (new Poisson draws of) the training patches.
    let dets = det.detect(&set).unwrap();
    let (rec, spurious) = recall(&set, &dets, 1.5);
    eprintln!("UNEK recall {rec}, spurious {spurious} of {}", dets.len());
    assert!(rec >= 0.9, "recall {rec}");
    assert!(spurious <= 2, "{spurious} spurious detections");
    assert!(model_dir.join("train_log.csv").exists());
    let log = std::fs::read_to_string(model_dir.join("train_log.csv")).unwrap();
    assert_eq!(log.lines().count(), cfg.train.epochs + 1);

    // The LoG head on the same network output finds them too.
    cfg.detect.variant = config::DetectorVariant::Log;
    let log_det = NeuralDetector::load(&model_dir, &cfg).unwrap();
    let (rec_log, spurious_log) = recall(&set, &log_det.detect(&set).unwrap(), 1.5);
    eprintln!("LoG recall {rec_log}, spurious {spurious_log}");
    assert!(rec_log >= 0.9, "LoG recall {rec_log}");

    // Save, load, identical predictions.
    let saved = tmp.path().join("saved");
    det.save(&saved).unwrap();
    let loaded = gammabench::detect::load(&saved).unwrap();
    assert_eq!(loaded.detect(&set).unwrap(), dets);
    let loaded2 = gammabench::detect::load(&model_dir).unwrap();
    assert_eq!(loaded2.detect(&set).unwrap(), dets);

    // Resume: 2 epochs then 2 more from the checkpoint equals 4 epochs straight.
    let mut short = smoke_config();
    short.train.epochs = 2;
    let a_dir = tmp.path().join("a");
    NeuralDetector::new(&short)
        .unwrap()
        .fit(&set, &a_dir, &pb)
        .unwrap();
    short.train.epochs = 4;
    let mut resumed = NeuralDetector::new(&short).unwrap();
    resumed.resume = true;
    let ra = resumed.fit(&set, &a_dir, &pb).unwrap();
    assert_eq!(ra.epochs_run, 4);
    let b_dir = tmp.path().join("b");
    let rb = NeuralDetector::new(&short)
        .unwrap()
        .fit(&set, &b_dir, &pb)
        .unwrap();
    let col = |d: &Path| -> Vec<f64> {
        std::fs::read_to_string(d.join("train_log.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
            .collect()
    };
    let (la, lb) = (col(&a_dir), col(&b_dir));
    assert_eq!(la.len(), 4);
    for (x, y) in la.iter().zip(&lb) {
        assert!(
            (x - y).abs() <= 1e-4 * y.abs(),
            "resumed {la:?} vs straight {lb:?}"
        );
    }
    assert!((ra.last_train_loss - rb.last_train_loss).abs() <= 1e-4 * rb.last_train_loss);
}

#[test]
fn cnet_trains_and_votes() {
    let tmp = tempfile::tempdir().unwrap();
    let set = synthetic_dir(&tmp.path().join("patches"), 8, 9);
    let mut cfg = smoke_config();
    cfg.detect.variant = config::DetectorVariant::Cnet;
    // 40 smoke epochs leave the vote vectors short of full length (votes spread over a few
    // pixels); half of OpenCentroidNet's 10-vote threshold is used for this smoke check.
    cfg.detect.cnet.vote_threshold = 5.0;
    cfg.detect.cnet.threshold_on = config::VoteThresholdOn::Peak;
    let mut det = NeuralDetector::new(&cfg).unwrap();
    let r = det
        .fit(
            &set,
            &tmp.path().join("cnet"),
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
    eprintln!("cnet: {r:?}");
    assert!(r.last_train_loss < r.first_train_loss / 2.0);
    let dets = det.detect(&set).unwrap();
    let (rec, spurious) = recall(&set, &dets, 1.5);
    eprintln!("CNET recall {rec}, spurious {spurious} of {}", dets.len());
    assert!(rec >= 0.8, "recall {rec}");
}

#[test]
fn ts_detects_bright_source_and_not_background() {
    let geom = PatchGeometry::default();
    let edges = [0.5, 1.0, 2.0, 7.0, 20.0, 200.0];
    let mut cfg = config::load(None, &[]).unwrap().remove(0).config;
    cfg.energy.bin_edges_gev = edges.to_vec();
    let inst = gammabench::sky::instrument(&cfg).unwrap();
    let templates = psf_templates(&inst, 2.2, &geom, 2.5, 0.229);
    let nb = 5;
    let bg = vec![2.0f32; S * S * nb];
    // Expected counts: background + 300 source counts at pixel (30, 20).
    let mut mu: Vec<f64> = bg.iter().map(|&b| b as f64).collect();
    for (b, t) in templates.iter().enumerate() {
        let n = 2 * t.half_px + 1;
        for ty in 0..n {
            for tx in 0..n {
                let x = 30 + tx as isize - t.half_px as isize;
                let y = 20 + ty as isize - t.half_px as isize;
                if (0..S as isize).contains(&x) && (0..S as isize).contains(&y) {
                    mu[(y as usize * S + x as usize) * nb + b] += 300.0 * t.values[ty * n + tx];
                }
            }
        }
    }
    let mut rng = gammabench::rng::stream(3, "test/ts", 0);
    let counts: Vec<f32> = mu
        .iter()
        .map(|&m| draw_poisson(&mut rng, m) as f32)
        .collect();
    let ts = ts_map(&counts, &bg, S, &templates);
    let peaks = ts_peaks(&ts, S, 25.0);
    eprintln!("TS peaks {peaks:?}");
    assert_eq!(peaks.len(), 1, "{peaks:?}");
    assert!(peaks[0].score > 100.0);
    assert!((peaks[0].x_pix - 30.0).abs() < 0.5 && (peaks[0].y_pix - 20.0).abs() < 0.5);
    // Pure background: no detection.
    for item in 0..3 {
        let mut rng = gammabench::rng::stream(4, "test/ts-bg", item);
        let counts: Vec<f32> = bg
            .iter()
            .map(|&m| draw_poisson(&mut rng, m as f64) as f32)
            .collect();
        let ts = ts_map(&counts, &bg, S, &templates);
        let max = ts.iter().cloned().fold(0.0, f64::max);
        assert!(ts_peaks(&ts, S, 25.0).is_empty(), "background TS max {max}");
    }
}

#[test]
fn cli_train_detect_and_combine() {
    let tmp = tempfile::tempdir().unwrap();
    let pdir = tmp.path().join("patches");
    synthetic_dir(&pdir, 6, 21);
    let exe = env!("CARGO_BIN_EXE_gammabench");
    let cfgp = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke/detect.toml");
    let run = |args: &[&str]| {
        let o = std::process::Command::new(exe).args(args).output().unwrap();
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    let s = |p: &Path| p.display().to_string();
    let (m_log, m_ts) = (tmp.path().join("m_log"), tmp.path().join("m_ts"));
    run(&[
        "-q",
        "train",
        "--config",
        &s(&cfgp),
        "--patches",
        &s(&pdir),
        "--out",
        &s(&m_log),
        "--set",
        "detect.variant=log",
        "--set",
        "train.epochs=3",
    ]);
    // The TS baseline "trains" by recording its config, with extra `--set` overrides.
    let train_ts = |extra: &[&str]| {
        let mut args = vec!["-q", "train", "--config", cfgp.to_str().unwrap()];
        args.extend([
            "--out",
            m_ts.to_str().unwrap(),
            "--set",
            "detect.variant=ts",
        ]);
        args.extend_from_slice(extra);
        run(&args);
    };
    train_ts(&[]);
    // The default background is the B1 model's diffuse map, which needs to know where the
    // patches lie on the sky: synthetic patches have no config.resolved.toml, so detect
    // refuses and says how to choose their own diffuse component instead.
    let o = std::process::Command::new(exe)
        .args(["-q", "--store", &s(&tmp.path().join("store"))])
        .args(["detect", "--model", &s(&m_ts), "--patches", &s(&pdir)])
        .args(["--out", &s(&tmp.path().join("d_refused"))])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("detect.ts.background_iem") && err.contains("config.resolved.toml"),
        "{err}"
    );
    assert!(!tmp.path().join("d_refused").exists());
    train_ts(&["--set", "detect.ts.background_iem=\"\""]);
    let (d_log, d_ts, d_u) = (
        tmp.path().join("d_log"),
        tmp.path().join("d_ts"),
        tmp.path().join("d_u"),
    );
    run(&[
        "-q",
        "detect",
        "--model",
        &s(&m_log),
        "--patches",
        &s(&pdir),
        "--out",
        &s(&d_log),
    ]);
    run(&[
        "-q",
        "detect",
        "--model",
        &s(&m_ts),
        "--patches",
        &s(&pdir),
        "--out",
        &s(&d_ts),
    ]);
    // The head is chosen at detect time: the LoG model's segmentation network runs the UNEK
    // head with `--head unek`, and a `detect.*` key can change with `--set`; Centroid-Net
    // needs its own network, and other keys stay what the network was trained with.
    let d_head = tmp.path().join("d_head");
    run(&[
        "-q",
        "detect",
        "--model",
        &s(&m_log),
        "--patches",
        &s(&pdir),
        "--out",
        &s(&d_head),
        "--head",
        "unek",
        "--set",
        "detect.unek.k_max=8",
    ]);
    let unek = gammabench::detect::read_detections(&d_head.join("detections.csv")).unwrap();
    let log = gammabench::detect::read_detections(&d_log.join("detections.csv")).unwrap();
    assert!(!unek.is_empty());
    assert_ne!(unek, log, "the UNEK head gives other detections than LoG");
    // `--device flex` is the default spelled out: the same detections; a backend the build
    // lacks is a usage error that names the cargo feature, before anything is written.
    let d_flex = tmp.path().join("d_flex");
    run(&[
        "-q",
        "detect",
        "--model",
        &s(&m_log),
        "--patches",
        &s(&pdir),
        "--out",
        &s(&d_flex),
        "--device",
        "flex",
    ]);
    assert_eq!(
        std::fs::read(d_flex.join("detections.csv")).unwrap(),
        std::fs::read(d_log.join("detections.csv")).unwrap()
    );
    let mut refused = vec![
        (vec!["--head", "cnet"], "Centroid-Net"),
        (vec!["--set", "sky.nside=64"], "only detect.*"),
        (vec!["--device", "gpu"], "unknown device `gpu`"),
    ];
    if !cfg!(feature = "cuda") {
        refused.push((vec!["--device", "cuda:0"], "--features cuda"));
    }
    if !cfg!(feature = "tch") {
        refused.push((vec!["--device", "tch-cpu"], "--features tch"));
    }
    for (extra, want) in refused {
        let o = std::process::Command::new(exe)
            .args([
                "-q",
                "detect",
                "--model",
                &s(&m_log),
                "--patches",
                &s(&pdir),
            ])
            .args(["--out", &s(&tmp.path().join("d_bad"))])
            .args(&extra)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{extra:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(want), "{extra:?}: {err}");
        assert!(!tmp.path().join("d_bad").exists());
    }
    let ts = gammabench::detect::read_detections(&d_ts.join("detections.csv")).unwrap();
    let set = PatchSet::load(&pdir, 0).unwrap();
    let (rec, spurious) = recall(&set, &ts, 1.5);
    eprintln!("TS on synthetic patches: recall {rec}, spurious {spurious}");
    assert!(rec >= 0.9);
    let published = std::fs::read_to_string(d_ts.join("detections_published.csv")).unwrap();
    assert!(published.starts_with("image_nr,centroid_y,centroid_x,class_id,probability\n"));
    assert_eq!(published.lines().count(), ts.len() + 1);
    run(&[
        "-q",
        "combine",
        "--a",
        &s(&d_log.join("detections.csv")),
        "--b",
        &s(&d_ts.join("detections.csv")),
        "--mode",
        "union",
        "--out",
        &s(&d_u),
    ]);
    let u = gammabench::detect::read_detections(&d_u.join("detections.csv")).unwrap();
    assert!(u.len() >= ts.len());
    // A bad hyperparameter is a located config error (exit 2).
    let o = std::process::Command::new(exe)
        .args([
            "train",
            "--config",
            &s(&cfgp),
            "--out",
            &s(&m_ts),
            "--set",
            "detect.unek.k_max=0",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("detect.unek.k_max"));
}

#[test]
fn nan_negative_counts_and_nan_truth_are_refused_with_their_place() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("p");
    synthetic_dir(&dir, 2, 5);
    let good = PatchSet::load(&dir, 0).unwrap();
    let (shape, mut agn) = gammabench::npy::read_f32(&dir.join("patches_agn.npy")).unwrap();
    // patch 1, y 3, x 4, bin 0
    let i = ((shape[1] + 3) * shape[2] + 4) * shape[3];
    for (bad, want) in [(f32::NAN, "NaN"), (-1.0, "-1")] {
        agn[i] = bad;
        gammabench::npy::write_f32(&dir.join("patches_agn.npy"), &shape, &agn).unwrap();
        let e = PatchSet::load(&dir, 0).err().unwrap().to_string();
        assert!(e.contains("patches_agn.npy"), "{e}");
        assert!(
            e.contains("patch 1, y 3, x 4, bin 0") && e.contains(want),
            "{e}"
        );
    }
    assert_eq!(good.len(), 2);
    // a truth row with a NaN flux names its line and column
    let bad = tmp.path().join("truth_bad.csv");
    std::fs::write(
        &bad,
        "patch_id,source_id,class,x_pix,y_pix,glon_deg,glat_deg,flux_1000_ph_cm2_s\n\
         0,0,AGN,10,10,1.0,2.0,1e-9\n\
         0,1,AGN,20,20,1.5,2.5,nan\n",
    )
    .unwrap();
    let e = gammabench::score::input::read_truth(&bad, None)
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("truth_bad.csv") && e.contains("line 3, column 8") && e.contains("flux_1000"),
        "{e}"
    );
}

/// Flip augmentation (issue 16): a mirrored patch's inputs and targets are the original's
/// read from the mirrored pixel, exactly, so a source and its disk move together; the
/// Centroid-Net vote vectors change sign with the mirrored axis.
#[test]
fn flipped_inputs_and_targets_move_together() {
    use gammabench::train::data::{self, Draw, Flip, Normaliser};
    let d = tempfile::tempdir().unwrap();
    let set = synthetic_dir(d.path(), 3, 11);
    let dev = burn::prelude::Device::flex();
    let norm = Normaliser::fit(config::Normalisation::Log1p, &set, &[0, 1, 2]);
    let idx = [0usize, 1, 2];
    let flips = [Flip::from_code(1), Flip::from_code(2), Flip::from_code(3)];
    let plain = data::inputs(&set, &idx, Draw::Asimov, &norm, &dev)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let flipped = data::inputs_flipped(&set, &idx, Draw::Asimov, &norm, &flips, &dev)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let t_plain = data::targets(&set, &idx, 2.5, Some(6.0), &dev)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let t_flip = data::targets_flipped(&set, &idx, 2.5, Some(6.0), &flips, &dev)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let nb = set.n_bins();
    for (j, f) in flips.iter().enumerate() {
        for y in 0..S {
            for x in 0..S {
                let sx = if f.x { S - 1 - x } else { x };
                let sy = if f.y { S - 1 - y } else { y };
                for b in 0..nb {
                    let a = flipped[((j * nb + b) * S + y) * S + x];
                    let o = plain[((j * nb + b) * S + sy) * S + sx];
                    assert_eq!(a, o, "input patch {j} bin {b} at ({x}, {y})");
                }
                for c in 0..4 {
                    let a = t_flip[((j * 4 + c) * S + y) * S + x];
                    let o = t_plain[((j * 4 + c) * S + sy) * S + sx];
                    // vote x flips sign with a mirror in x, vote y with one in y
                    let sign = match c {
                        2 if f.x => -1.0,
                        3 if f.y => -1.0,
                        _ => 1.0,
                    };
                    assert!(
                        (a - sign * o).abs() < 1e-6,
                        "target {j} channel {c} at ({x}, {y}): {a} vs {o}"
                    );
                }
            }
        }
    }
    // no flip is the identity
    let none = data::inputs_flipped(&set, &idx, Draw::Asimov, &norm, &[Flip::default(); 3], &dev)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(none, plain);
}

/// Training skies of several realisations (issue 16): the patch counts add up, every
/// realisation and the validation sky have their own seed (none equal to a test sky's), the
/// first realisation is the one-realisation sky, and joined sets keep ids distinct.
#[test]
fn training_realisations_and_validation_sky() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke/detect.toml");
    let sets = [
        "train.data.n_patches=1000".to_string(),
        "train.data.patches_per_realisation=400".to_string(),
        "train.data.validation_patches=300".to_string(),
    ];
    let cfg = config::load(Some(&path), &sets).unwrap().remove(0).config;
    let real = cfg.training_data_configs();
    assert_eq!(
        real.iter().map(|c| c.patches.n).collect::<Vec<_>>(),
        vec![400, 400, 200]
    );
    let v = cfg.validation_data_config().unwrap();
    assert_eq!(v.patches.n, 300);
    let mut seeds: Vec<u64> = real
        .iter()
        .map(|c| c.seed)
        .chain([v.seed, cfg.seed])
        .collect();
    seeds.sort_unstable();
    seeds.dedup();
    assert_eq!(seeds.len(), 5, "every sky has its own seed");
    assert_eq!(real[0].seed, cfg.seed + 1);
    // one realisation: the sky and key of before
    let one = config::load(Some(&path), &[]).unwrap().remove(0).config;
    assert_eq!(one.training_data_configs().len(), 1);
    assert!(one.validation_data_config().is_none());
    // the validation threshold needs a validation sky, and says which key
    let e = config::load(
        Some(&path),
        &["detect.post.threshold=\"validation\"".to_string()],
    )
    .unwrap_err();
    assert!(e.to_string().contains("detect.post.threshold"), "{e}");

    let d = tempfile::tempdir().unwrap();
    let a = synthetic_dir(&d.path().join("a"), 3, 1);
    let b = synthetic_dir(&d.path().join("b"), 2, 2);
    let j = PatchSet::concat(vec![a.clone(), b.clone()]).unwrap();
    assert_eq!(j.len(), 5);
    assert_eq!(&j.patch_ids[..3], &a.patch_ids[..]);
    let ids: std::collections::BTreeSet<u64> = j.patch_ids.iter().copied().collect();
    assert_eq!(ids.len(), 5);
    for (i, t) in j.truth.iter().enumerate() {
        assert!(t.iter().all(|s| s.patch_id == j.patch_ids[i]));
    }
    assert_eq!(j.total.patch(4), b.total.patch(1));
}
