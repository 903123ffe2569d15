//! Image track: AGN / PSR / FAKE classification of 7x7x5 cut-outs around detections
//! (Panes et al. 2021, A&A 656, A62, sect. 5).
//!
//! Inputs (formats of the patch stage and the detector's match table):
//! * `patches_<component>.npy`, float32 `(N, 64, 64, 5)` = `[patch, y_pix, x_pix, bin]`,
//!   expected counts (Asimov) per component (diffuse, agn, psr); the total is their sum
//!   (or `patches_total.npy` when present);
//! * `truth.csv`: `patch_id,source_id,class,x_pix,y_pix,...,snr_c,sbr_c` (class `AGN`/`PSR`
//!   or 0/1);
//! * the match table: `patch_id,x_pix,y_pix,status,source_id` with status `TP` or `FP`.
//!
//! A true positive takes its matched source's class, a false positive is FAKE. A cut-out is
//! the 7x7 pixels (all 5 bins) centred on the detection's pixel; centres closer than 3 px to
//! the edge are skipped. The cut-outs are expected counts; the networks see a fresh Poisson
//! draw every epoch (stream `(seed, "classify/image/poisson/train", epoch * 2^32 + row)`),
//! validation and test rows one fixed draw. Features are standardised per pixel and bin
//! with a [`Scaler`] fitted on (one Poisson draw of) the training rows. Balanced training
//! duplicates minority-class rows up to the majority count; each duplicate has its own row
//! index and so its own Poisson draws. The paper's per-class completeness: (70, 70, 75) %
//! balanced, (99, 30, 13) % unbalanced.

use super::forest::RandomForest;
use super::nets::{Kind, NetClassifier};
use super::scale::Scaler;
use super::{Classifier, Layout, Matrix, calibration, cv, metrics};
use crate::config::{ExperimentConfig, Variant};
use crate::error::{Error, Result};
use crate::formats::{atomic_write, fmt_f64};
use rand::Rng as _;
use rand_distr::{Distribution, Poisson};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::Instant;

/// Image-track classes, index = class id.
pub const CLASSES: [&str; 3] = ["AGN", "PSR", "FAKE"];
/// Cut-out side in pixels.
pub const SIDE: usize = 7;
/// Minimum distance of a cut-out centre from the patch edge, pixels.
pub const EDGE_PX: usize = 3;
/// SNR_c bin edges used in the per-bin completeness (Panes et al. 2021).
pub const SNR_EDGES: [f64; 2] = [2.7, 5.8];

/// A stack of patches, `[patch, y, x, bin]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cube {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub bins: usize,
    pub data: Vec<f32>,
}

impl Cube {
    fn at(&self, p: usize, y: usize, x: usize, b: usize) -> f32 {
        self.data[((p * self.h + y) * self.w + x) * self.bins + b]
    }
}

/// Reads a float32 C-order 4-d `.npy` `(N, H, W, bins)` with [`crate::npy`].
pub fn read_npy(path: &Path) -> Result<Cube> {
    let (shape, data) = crate::npy::read_f32(path)?;
    if shape.len() != 4 {
        return Err(Error::bad_file(
            path,
            "expected a 4-d array (N, H, W, bins)",
        ));
    }
    Ok(Cube {
        n: shape[0],
        h: shape[1],
        w: shape[2],
        bins: shape[3],
        data,
    })
}

/// Writes a cube as `.npy` with [`crate::npy`].
pub fn write_npy(path: &Path, c: &Cube) -> Result<()> {
    crate::npy::write_f32(path, &[c.n, c.h, c.w, c.bins], &c.data)
}

/// One row of the detector's match table.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub patch_id: usize,
    pub x_pix: f64,
    pub y_pix: f64,
    /// True positive (matched to `source_id`).
    pub tp: bool,
    pub source_id: String,
}

/// Truth of one source: class (0 AGN, 1 PSR) and SNR_c.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Truth {
    pub class: usize,
    pub snr_c: f64,
}

fn headers_index(path: &Path, h: &csv::StringRecord, names: &[&str]) -> Result<usize> {
    names
        .iter()
        .find_map(|n| h.iter().position(|x| x == *n))
        .ok_or_else(|| Error::bad_file(path, format!("missing column `{}`", names[0])))
}

fn field<T: std::str::FromStr>(
    path: &Path,
    rec: &csv::StringRecord,
    h: &csv::StringRecord,
    line: usize,
    c: usize,
) -> Result<T> {
    rec[c].trim().parse::<T>().map_err(|_| Error::Data {
        file: path.display().to_string(),
        line,
        column: c + 1,
        field: h[c].to_string(),
        message: format!("cannot parse `{}`", &rec[c]),
    })
}

/// Reads `truth.csv`, keyed by `(patch_id, source_id)`.
pub fn read_truth(path: &Path) -> Result<HashMap<(usize, String), Truth>> {
    let mut r = crate::formats::csv_reader(path)?;
    let h = r
        .headers()
        .map_err(|e| Error::bad_file(path, e.to_string()))?
        .clone();
    let (cp, cs, cc, cn) = (
        headers_index(path, &h, &["patch_id"])?,
        headers_index(path, &h, &["source_id"])?,
        headers_index(path, &h, &["class"])?,
        headers_index(path, &h, &["snr_c"])?,
    );
    let mut out = HashMap::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| Error::bad_file(path, format!("line {line}: {e}")))?;
        let class = match rec[cc].trim() {
            "AGN" | "agn" | "0" => 0,
            "PSR" | "psr" | "1" => 1,
            other => {
                return Err(Error::Data {
                    file: path.display().to_string(),
                    line,
                    column: cc + 1,
                    field: "class".into(),
                    message: format!("unknown class `{other}` (AGN, PSR, 0 or 1)"),
                });
            }
        };
        out.insert(
            (field(path, &rec, &h, line, cp)?, rec[cs].trim().to_string()),
            Truth {
                class,
                snr_c: field(path, &rec, &h, line, cn)?,
            },
        );
    }
    Ok(out)
}

/// Reads the match table (`status` TP / FP, matched `source_id`).
pub fn read_matches(path: &Path) -> Result<Vec<Detection>> {
    let mut r = crate::formats::csv_reader(path)?;
    let h = r
        .headers()
        .map_err(|e| Error::bad_file(path, e.to_string()))?
        .clone();
    let (cp, cx, cy, ct, cs) = (
        headers_index(path, &h, &["patch_id", "det_patch_id"])?,
        headers_index(path, &h, &["x_pix", "det_x_pix"])?,
        headers_index(path, &h, &["y_pix", "det_y_pix"])?,
        headers_index(path, &h, &["status"])?,
        headers_index(path, &h, &["source_id", "matched_source_id"])?,
    );
    let mut out = Vec::new();
    for (i, rec) in r.records().enumerate() {
        let line = i + 2;
        let rec = rec.map_err(|e| Error::bad_file(path, format!("line {line}: {e}")))?;
        let tp = match rec[ct].trim() {
            "TP" => true,
            "FP" => false,
            _ => continue, // FN rows (undetected sources) have no cut-out
        };
        out.push(Detection {
            patch_id: field(path, &rec, &h, line, cp)?,
            x_pix: field(path, &rec, &h, line, cx)?,
            y_pix: field(path, &rec, &h, line, cy)?,
            tp,
            source_id: rec[cs].trim().to_string(),
        });
    }
    Ok(out)
}

/// Cut-outs: expected counts `[dy][dx][bin]` flattened, classes, SNR_c (NaN for FAKE).
#[derive(Debug, Clone, PartialEq)]
pub struct Cutouts {
    pub ids: Vec<String>,
    pub x: Matrix,
    pub y: Vec<usize>,
    pub snr_c: Vec<f64>,
    /// Detections skipped for lying closer than 3 px to the edge.
    pub n_edge_skipped: usize,
}

/// Extracts the cut-outs of `dets` from `cube`.
pub fn extract(
    cube: &Cube,
    dets: &[Detection],
    truth: &HashMap<(usize, String), Truth>,
) -> Result<Cutouts> {
    let half = SIDE / 2;
    let (mut ids, mut rows, mut y, mut snr) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut skipped = 0;
    for (k, d) in dets.iter().enumerate() {
        let cx = d.x_pix.floor() as i64;
        let cy = d.y_pix.floor() as i64;
        let e = EDGE_PX as i64;
        if d.patch_id >= cube.n
            || cx < e
            || cy < e
            || cx >= cube.w as i64 - e
            || cy >= cube.h as i64 - e
        {
            skipped += 1;
            continue;
        }
        let (cx, cy) = (cx as usize, cy as usize);
        let mut row = Vec::with_capacity(SIDE * SIDE * cube.bins);
        for yy in cy - half..=cy + half {
            for xx in cx - half..=cx + half {
                for b in 0..cube.bins {
                    row.push(cube.at(d.patch_id, yy, xx, b));
                }
            }
        }
        let (class, s) = if d.tp {
            let t = truth
                .get(&(d.patch_id, d.source_id.clone()))
                .ok_or_else(|| {
                    Error::Usage(format!(
                        "detection {k}: matched source `{}` of patch {} is not in the truth table",
                        d.source_id, d.patch_id
                    ))
                })?;
            (t.class, t.snr_c)
        } else {
            (2, f64::NAN)
        };
        ids.push(format!("p{}_x{:.2}_y{:.2}", d.patch_id, d.x_pix, d.y_pix));
        rows.push(row);
        y.push(class);
        snr.push(s);
    }
    Ok(Cutouts {
        ids,
        x: Matrix::from_rows(&rows),
        y,
        snr_c: snr,
        n_edge_skipped: skipped,
    })
}

/// A Poisson draw of every expected count; row r uses the stream `(seed, purpose, key0 + r)`.
pub fn poisson(x: &Matrix, seed: u64, purpose: &str, key0: u64) -> Matrix {
    let mut out = x.clone();
    for i in 0..x.n {
        let mut r = crate::rng::stream(seed, purpose, key0 + i as u64);
        for v in &mut out.data[i * x.d..(i + 1) * x.d] {
            *v = if *v > 0.0 {
                Poisson::new(*v as f64).map_or(0.0, |p| p.sample(&mut r) as f32)
            } else {
                0.0
            };
        }
    }
    out
}

/// Photometric features of a cut-out (counts): counts per bin (5), total, hardness ratios
/// `(C_{b+1} - C_b) / (C_{b+1} + C_b)` of consecutive bins (4), and peak-to-ring contrast
/// `(C_centre3x3 / 9) / (C_ring / n_ring)` with the ring the pixels at Chebyshev distance 3
/// (summed over bins), plus the central pixel's fraction of the total.
pub fn photometric(x: &Matrix, bins: usize) -> Matrix {
    let half = (SIDE / 2) as i64;
    let rows: Vec<Vec<f32>> = (0..x.n)
        .map(|i| {
            let r = x.row(i);
            let mut per_bin = vec![0f64; bins];
            let (mut core, mut ring, mut centre) = (0f64, 0f64, 0f64);
            let mut n_ring = 0;
            for yy in 0..SIDE {
                for xx in 0..SIDE {
                    let dist = (yy as i64 - half).abs().max((xx as i64 - half).abs());
                    let s: f64 = (0..bins)
                        .map(|b| r[(yy * SIDE + xx) * bins + b] as f64)
                        .sum();
                    for (b, pb) in per_bin.iter_mut().enumerate() {
                        *pb += r[(yy * SIDE + xx) * bins + b] as f64;
                    }
                    if dist <= 1 {
                        core += s;
                    }
                    if dist == 0 {
                        centre += s;
                    }
                    if dist == half {
                        ring += s;
                        n_ring += 1;
                    }
                }
            }
            let total: f64 = per_bin.iter().sum();
            let mut f: Vec<f32> = per_bin.iter().map(|v| *v as f32).collect();
            f.push(total as f32);
            for b in 0..bins - 1 {
                let (a, c) = (per_bin[b], per_bin[b + 1]);
                f.push(if a + c > 0.0 {
                    ((c - a) / (c + a)) as f32
                } else {
                    0.0
                });
            }
            f.push(((core / 9.0 + 0.5) / (ring / n_ring as f64 + 0.5)) as f32);
            f.push((centre / total.max(1.0)) as f32);
            f
        })
        .collect();
    Matrix::from_rows(&rows)
}

/// Synthetic patches for tests and the CI-scale image track when no patch stage output is
/// given: a smooth background `B_b (1 + 0.3 sin)`, AGN as Gaussian blobs (sigma 1.2 px) with a
/// soft power-law spectrum, PSR with a hard, curved spectrum peaking in bin 2, and FAKE
/// detections on background bumps (blobs whose spectrum follows the background).
pub fn synthetic(
    n_patches: usize,
    seed: u64,
) -> (Cube, HashMap<(usize, String), Truth>, Vec<Detection>) {
    let (h, w, bins) = (64usize, 64usize, 5usize);
    let bg = [6.0f32, 3.0, 1.8, 0.5, 0.15];
    let agn = [0.45f32, 0.27, 0.18, 0.07, 0.03];
    let psr = [0.12f32, 0.28, 0.40, 0.17, 0.03];
    let mut data = vec![0f32; n_patches * h * w * bins];
    let mut truth = HashMap::new();
    let mut dets = Vec::new();
    for p in 0..n_patches {
        let mut r = crate::rng::stream(seed, "classify/image/synthetic", p as u64);
        let phase: f32 = r.random_range(0.0..std::f32::consts::TAU);
        for y in 0..h {
            for x in 0..w {
                let m = 1.0 + 0.3 * ((x as f32 * 0.1 + y as f32 * 0.07) + phase).sin();
                for b in 0..bins {
                    data[((p * h + y) * w + x) * bins + b] = bg[b] * m;
                }
            }
        }
        let n_src = r.random_range(3..7);
        for s in 0..n_src + 2 {
            let (cx, cy) = (r.random_range(1.0..63.0f64), r.random_range(1.0..63.0f64));
            let (spec, class) = if s >= n_src {
                (&bg, 2)
            } else if r.random::<f64>() < 0.7 {
                (&agn, 0)
            } else {
                (&psr, 1)
            };
            let amp: f32 = if class == 2 {
                r.random_range(0.15..0.35)
            } else {
                (10f64.powf(r.random_range(1.3..2.4))) as f32
            };
            let sig = 1.2f32;
            for y in 0..h {
                for x in 0..w {
                    let d2 =
                        (x as f32 + 0.5 - cx as f32).powi(2) + (y as f32 + 0.5 - cy as f32).powi(2);
                    let g =
                        (-d2 / (2.0 * sig * sig)).exp() / (2.0 * std::f32::consts::PI * sig * sig);
                    for b in 0..bins {
                        data[((p * h + y) * w + x) * bins + b] +=
                            amp * spec[b] * g * if class == 2 { 9.0 } else { 1.0 };
                    }
                }
            }
            let sid = format!("s{p}_{s}");
            if class < 2 {
                let src_c: f64 = (amp / (2.0 * std::f32::consts::PI * sig * sig)) as f64;
                let b_c: f64 = bg.iter().map(|v| *v as f64).sum();
                truth.insert(
                    (p, sid.clone()),
                    Truth {
                        class,
                        snr_c: src_c / (src_c + b_c).sqrt(),
                    },
                );
            }
            dets.push(Detection {
                patch_id: p,
                x_pix: cx,
                y_pix: cy,
                tp: class < 2,
                source_id: if class < 2 { sid } else { String::new() },
            });
        }
    }
    (
        Cube {
            n: n_patches,
            h,
            w,
            bins,
            data,
        },
        truth,
        dets,
    )
}

/// Loads the configured image-track inputs (or synthesises them).
pub fn load_inputs(cfg: &ExperimentConfig) -> Result<Cutouts> {
    let ic = &cfg.classify.image;
    let (cube, truth, dets) = match &ic.patches_dir {
        None => synthetic(ic.synthetic_patches, cfg.seed),
        Some(dir) => {
            let total = dir.join("patches_total.npy");
            let cube = if total.exists() {
                read_npy(&total)?
            } else {
                let mut sum: Option<Cube> = None;
                for comp in ["diffuse", "agn", "psr"] {
                    let c = read_npy(&dir.join(format!("patches_{comp}.npy")))?;
                    sum = Some(match sum {
                        None => c,
                        Some(mut s) => {
                            if (s.n, s.h, s.w, s.bins) != (c.n, c.h, c.w, c.bins) {
                                return Err(Error::bad_file(dir, "component patch shapes differ"));
                            }
                            s.data.iter_mut().zip(&c.data).for_each(|(a, b)| *a += b);
                            s
                        }
                    });
                }
                sum.expect("three components")
            };
            let truth = read_truth(&dir.join(&ic.truth_file))?;
            let dets = read_matches(&dir.join(&ic.matches_file))?;
            (cube, truth, dets)
        }
    };
    extract(&cube, &dets, &truth)
}

/// Indices with minority classes duplicated (cycling) up to the majority count.
pub fn balance(idx: &[usize], y: &[usize], n_classes: usize) -> Vec<usize> {
    let mut by: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for &i in idx {
        by[y[i]].push(i);
    }
    let target = by.iter().map(Vec::len).max().unwrap_or(0);
    let mut out = Vec::with_capacity(target * n_classes);
    for members in by.iter().filter(|m| !m.is_empty()) {
        for j in 0..target {
            out.push(members[j % members.len()]);
        }
    }
    out
}

/// Completeness per class, and per SNR_c bin for AGN and PSR.
fn completeness_rows(ys: &[usize], p: &[Vec<f64>], snr: &[f64]) -> Vec<(String, f64, usize)> {
    let mut out = Vec::new();
    for (k, name) in CLASSES.iter().enumerate() {
        let sel: Vec<usize> = (0..ys.len()).filter(|i| ys[*i] == k).collect();
        let hit = sel.iter().filter(|i| metrics::argmax(&p[**i]) == k).count();
        out.push((
            format!("completeness_{name}"),
            hit as f64 / sel.len().max(1) as f64,
            sel.len(),
        ));
        if k < 2 {
            let edges = [f64::NEG_INFINITY, SNR_EDGES[0], SNR_EDGES[1], f64::INFINITY];
            for b in 0..3 {
                let s: Vec<&usize> = sel
                    .iter()
                    .filter(|i| snr[**i] >= edges[b] && snr[**i] < edges[b + 1])
                    .collect();
                let hit = s.iter().filter(|i| metrics::argmax(&p[***i]) == k).count();
                out.push((
                    format!(
                        "completeness_{name}_snr{}",
                        ["lt2.7", "2.7to5.8", "ge5.8"][b]
                    ),
                    if s.is_empty() {
                        f64::NAN
                    } else {
                        hit as f64 / s.len() as f64
                    },
                    s.len(),
                ));
            }
        }
    }
    out
}

/// Cross-validates the image-track classifier (`cnn` or `rf`); writes the same files as the
/// catalog track plus `completeness.csv` (per class and SNR_c bin, per fold).
pub fn run_image_cv(cfg: &ExperimentConfig, out: &Path) -> Result<super::summary::CvOutput> {
    let c = &cfg.classify;
    let ic = &c.image;
    let cut = load_inputs(cfg)?;
    let k = CLASSES.len();
    let counts: Vec<usize> = (0..k)
        .map(|j| cut.y.iter().filter(|t| **t == j).count())
        .collect();
    log::info!(
        "classify image {} ({}): {} cut-outs (AGN {}, PSR {}, FAKE {}), {} skipped at the edge",
        c.variant.as_str(),
        if ic.balanced {
            "balanced"
        } else {
            "unbalanced"
        },
        cut.y.len(),
        counts[0],
        counts[1],
        counts[2],
        cut.n_edge_skipped
    );
    if counts.iter().any(|n| *n < c.folds) {
        return Err(Error::Usage(format!(
            "image track: every class needs at least {} cut-outs, got {counts:?}",
            c.folds
        )));
    }
    let splits = cv::kfold_splits(&cut.y, c.folds, c.valid_fraction, cfg.seed);
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    let mut oof = String::from("source_id,fold,true_class,p_AGN,p_PSR,p_FAKE,snr_c\n");
    let mut comp = String::from("fold,metric,value,n\n");
    let mut folds = Vec::new();
    let bins = cut.x.d / (SIDE * SIDE);
    let seed = cfg.seed;
    for sp in &splits {
        let train_idx = if ic.balanced {
            balance(&sp.train, &cut.y, k)
        } else {
            sp.train.clone()
        };
        let exp_train = cut.x.select(&train_idx);
        let yt: Vec<usize> = train_idx.iter().map(|i| cut.y[*i]).collect();
        let f = sp.fold as u64;
        let draw_v = poisson(
            &cut.x.select(&sp.valid),
            seed,
            &format!("classify/image/poisson/valid/{f}"),
            0,
        );
        let draw_s = poisson(
            &cut.x.select(&sp.test),
            seed,
            &format!("classify/image/poisson/test/{f}"),
            0,
        );
        let yv: Vec<usize> = sp.valid.iter().map(|i| cut.y[*i]).collect();
        let ys: Vec<usize> = sp.test.iter().map(|i| cut.y[*i]).collect();
        let t0 = Instant::now();
        let (logits_v, logits_s) = match c.variant {
            Variant::Rf => {
                let tr = poisson(
                    &exp_train,
                    seed,
                    &format!("classify/image/poisson/train/{f}"),
                    0,
                );
                let (ft, fv, fs) = (
                    photometric(&tr, bins),
                    photometric(&draw_v, bins),
                    photometric(&draw_s, bins),
                );
                let scaler = Scaler::fit(&ft);
                let mut m = RandomForest::new(c.forest.clone(), false, k);
                m.fit(&scaler.transform(&ft), &yt, None, seed ^ f)?;
                (
                    m.predict_logits(&scaler.transform(&fv))?,
                    m.predict_logits(&scaler.transform(&fs))?,
                )
            }
            _ => {
                let fit_draw = poisson(
                    &exp_train,
                    seed,
                    &format!("classify/image/poisson/fit/{f}"),
                    0,
                );
                let scaler = std::sync::Arc::new(Scaler::fit(&fit_draw));
                let (sc, et) = (scaler.clone(), std::sync::Arc::new(exp_train.clone()));
                let purpose = format!("classify/image/poisson/train/{f}");
                let mut m = NetClassifier::new(Kind::Cnn, ic.cnn.clone(), Layout::flat(cut.x.d), k)
                    .on(c.device);
                m.augment = Some(std::sync::Arc::new(move |epoch| {
                    sc.transform(&poisson(&et, seed, &purpose, (epoch as u64) << 32))
                }));
                let xv = scaler.transform(&draw_v);
                m.fit(
                    &scaler.transform(&fit_draw),
                    &yt,
                    Some((&xv, &yv)),
                    seed ^ f,
                )?;
                (
                    m.predict_logits(&xv)?,
                    m.predict_logits(&scaler.transform(&draw_s))?,
                )
            }
        };
        let train_time_s = t0.elapsed().as_secs_f64();
        let temperature = if c.calibrate {
            calibration::fit_temperature(&logits_v, &yv)
        } else {
            1.0
        };
        let raw = calibration::apply(&logits_s, 1.0);
        let p = calibration::apply(&logits_s, temperature);
        for (r, &i) in sp.test.iter().enumerate() {
            writeln!(
                oof,
                "{},{},{},{},{},{},{}",
                cut.ids[i],
                sp.fold,
                CLASSES[cut.y[i]],
                fmt_f64(p[r][0]),
                fmt_f64(p[r][1]),
                fmt_f64(p[r][2]),
                fmt_f64(cut.snr_c[i])
            )
            .ok();
        }
        let snr: Vec<f64> = sp.test.iter().map(|i| cut.snr_c[*i]).collect();
        for (name, v, n) in completeness_rows(&ys, &p, &snr) {
            writeln!(comp, "{},{name},{},{n}", sp.fold, fmt_f64(v)).ok();
        }
        let fr = super::summary::FoldResult {
            fold: sp.fold,
            n_train: train_idx.len(),
            n_valid: sp.valid.len(),
            n_test: sp.test.len(),
            temperature,
            raw: metrics::scores(&ys, &raw, k),
            calibrated: metrics::scores(&ys, &p, k),
            train_time_s,
        };
        let rec = metrics::recall_per_class(&ys, &p, k);
        log::info!(
            "  fold {}: accuracy {:.3}, completeness AGN/PSR/FAKE {:.2}/{:.2}/{:.2}, {:.1} s",
            sp.fold,
            fr.calibrated.accuracy,
            rec[0],
            rec[1],
            rec[2],
            train_time_s
        );
        folds.push(fr);
    }
    atomic_write(&out.join("oof_predictions.csv"), oof.as_bytes())?;
    atomic_write(&out.join("completeness.csv"), comp.as_bytes())?;
    let mut summary = super::summary::summarise(&folds);
    // mean and std of the per-class completeness over folds
    let mut per: HashMap<String, Vec<f64>> = HashMap::new();
    for line in comp.lines().skip(1) {
        let v: Vec<&str> = line.split(',').collect();
        if let Ok(x) = v[2].parse::<f64>() {
            per.entry(v[1].to_string()).or_default().push(x);
        }
    }
    let mut keys: Vec<_> = per.keys().cloned().collect();
    keys.sort();
    for key in keys {
        let v = &per[&key];
        let m = v.iter().sum::<f64>() / v.len() as f64;
        let s = if v.len() > 1 {
            (v.iter().map(|a| (a - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64).sqrt()
        } else {
            0.0
        };
        summary.push((key, m, s));
    }
    let name = format!(
        "image_{}_{}",
        c.variant.as_str(),
        if ic.balanced {
            "balanced"
        } else {
            "unbalanced"
        }
    );
    super::summary::write_summary(out, &name, &summary)?;
    let text = toml::to_string_pretty(cfg).map_err(|e| Error::Internal(e.to_string()))?;
    atomic_write(&out.join("config.toml"), text.as_bytes())?;
    Ok(super::summary::CvOutput {
        variant: name,
        task: crate::config::Task::AgnPsr,
        folds,
        summary,
        unc_counts: [0; 3],
        n_unc: 0,
        label_match: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip_and_edge_skipping() {
        let (cube, truth, mut dets) = synthetic(2, 3);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("patches_total.npy");
        write_npy(&p, &cube).unwrap();
        assert_eq!(read_npy(&p).unwrap(), cube);
        dets.push(Detection {
            patch_id: 0,
            x_pix: 2.9,
            y_pix: 30.0,
            tp: false,
            source_id: String::new(),
        });
        dets.push(Detection {
            patch_id: 0,
            x_pix: 60.5,
            y_pix: 30.0,
            tp: false,
            source_id: String::new(),
        });
        let c = extract(&cube, &dets, &truth).unwrap();
        assert!(c.n_edge_skipped >= 2);
        assert_eq!(c.x.d, 7 * 7 * 5);
        // the cut-out centre is the detection pixel: compare one value
        let d = dets
            .iter()
            .position(|d| d.x_pix >= 3.0 && d.x_pix < 61.0 && d.y_pix >= 3.0 && d.y_pix < 61.0)
            .unwrap();
        let (cx, cy) = (
            dets[d].x_pix.floor() as usize,
            dets[d].y_pix.floor() as usize,
        );
        let row = c
            .ids
            .iter()
            .position(|id| id.starts_with(&format!("p{}_x{:.2}", dets[d].patch_id, dets[d].x_pix)))
            .unwrap();
        assert_eq!(
            c.x.at(row, (3 * 7 + 3) * 5 + 2),
            cube.at(dets[d].patch_id, cy, cx, 2)
        );
    }

    #[test]
    fn balancing_duplicates_minorities_and_poisson_is_keyed() {
        let y = vec![0, 0, 0, 0, 1, 2, 2];
        let idx: Vec<usize> = (0..7).collect();
        let b = balance(&idx, &y, 3);
        assert_eq!(b.len(), 12);
        for k in 0..3 {
            assert_eq!(b.iter().filter(|i| y[**i] == k).count(), 4);
        }
        let x = Matrix::from_rows(&[vec![5.0; 4], vec![5.0; 4]]);
        let a = poisson(&x, 1, "t", 0);
        assert_eq!(a, poisson(&x, 1, "t", 0));
        assert_ne!(a, poisson(&x, 1, "t", 1 << 32));
    }
}
