//! Scorer tests: hand-worked matching cases, the legacy scorer on a published-format example,
//! S90 on constructed curves, classification metrics against scikit-learn fixtures, and the
//! `score` CLI end to end.

use gammabench::coords::angular_distance_deg;
use gammabench::projection::PatchGeometry;
use gammabench::score::classification::{self, ClassData};
use gammabench::score::detection::{self, s90_from_quality};
use gammabench::score::input::{Detection, TruthRow};
use gammabench::score::matching::{Status, match_global, match_legacy};
use std::path::Path;

fn src(patch: i64, id: i64, l: f64, b: f64, flux: f64) -> TruthRow {
    TruthRow {
        patch_id: patch,
        source_id: id,
        class: "AGN".into(),
        x_pix: 0.0,
        y_pix: 0.0,
        glon_deg: l,
        glat_deg: b,
        flux_1000_ph_cm2_s: flux,
        flux_10000_ph_cm2_s: flux / 10.0,
        snr_c: 5.0,
        sbr_c: 1.0,
        catalog: f64::NAN,
        patch_lon_deg: f64::NAN,
        patch_lat_deg: f64::NAN,
    }
}

/// A detection at sky (l, b) seen in a patch centred on (l0, b0).
fn det_at(patch: i64, centre: (f64, f64), l: f64, b: f64, score: Option<f64>) -> Detection {
    let g = PatchGeometry::default();
    let (x, y) = g.sky_to_pix(centre.0, centre.1, l, b).unwrap();
    let (gl, gb) = g.pix_to_sky(centre.0, centre.1, x, y);
    Detection {
        line: 0,
        patch_id: patch,
        x_pix: x,
        y_pix: y,
        glon_deg: gl,
        glat_deg: gb,
        score,
        class_id: None,
        probs: None,
        flux_1000_ph_cm2_s: None,
        sky_given_deg: None,
        catalog: None,
    }
}

fn statuses(
    m: &gammabench::score::matching::Matching,
) -> Vec<(Status, Option<usize>, Option<usize>)> {
    m.rows.iter().map(|r| (r.status, r.det, r.truth)).collect()
}

#[test]
fn two_truths_inside_radius_take_the_brighter() {
    let c = (30.0, 10.0);
    let truth = vec![
        src(1, 1, 30.10, 10.0, 1e-10),
        src(1, 2, 29.90, 10.0, 5e-10), // brighter, farther from the detection
    ];
    let d = vec![det_at(1, c, 30.05, 10.0, None)];
    assert!(angular_distance_deg(30.05, 10.0, 29.9, 10.0) < 0.3);
    for m in [match_legacy(&truth, &d, 0.3), match_global(&truth, &d, 0.3)] {
        assert_eq!(m.n_tp, 1);
        assert_eq!(m.rows[0].truth, Some(1), "the brighter source is matched");
        assert_eq!(m.n_fn, 1);
        assert_eq!(m.rows[1].truth, Some(0));
    }
}

#[test]
fn one_truth_claimed_by_two_detections() {
    let c = (100.0, -30.0);
    // same patch: the second detection is a false positive in both modes
    let truth = vec![src(7, 1, 100.0, -30.0, 1e-9), src(7, 2, 103.0, -30.0, 1e-9)];
    let d = vec![
        det_at(7, c, 100.1, -30.0, Some(0.2)),
        det_at(7, c, 100.0, -30.05, Some(0.9)),
    ];
    let legacy = match_legacy(&truth, &d, 0.3);
    assert_eq!(
        statuses(&legacy),
        vec![
            (Status::TP, Some(0), Some(0)), // file order: detection 0 claims
            (Status::FP, Some(1), Some(1)), // nearest remaining row of the patch
            (Status::FN, None, Some(1)),
        ]
    );
    let global = match_global(&truth, &d, 0.3);
    // decreasing score: detection 1 (0.9) claims the source, detection 0 is the FP
    assert_eq!(global.rows[0].status, Status::FP);
    assert_eq!(global.rows[1].status, Status::TP);
    assert_eq!((global.n_tp, global.n_fp, global.n_fn), (1, 1, 1));
    // the FP carries the nearest source anywhere (the matched one)
    assert_eq!(global.rows[0].truth, Some(0));

    // two overlapping patches list the same source: legacy counts it twice, global once
    let c2 = (104.0, -30.0);
    let truth = vec![src(7, 1, 101.0, -30.0, 1e-9), src(8, 1, 101.0, -30.0, 1e-9)];
    let d = vec![
        det_at(7, c, 101.02, -30.0, None),
        det_at(8, c2, 101.0, -30.02, None),
    ];
    let legacy = match_legacy(&truth, &d, 0.3);
    assert_eq!((legacy.n_tp, legacy.n_fp, legacy.n_fn), (2, 0, 0));
    let global = match_global(&truth, &d, 0.3);
    assert_eq!(
        (global.n_tp, global.n_fp, global.n_fn, global.n_duplicate),
        (1, 0, 0, 1)
    );
    // only one patch detects it: legacy has an FN for the other patch's row, global none
    let legacy = match_legacy(&truth, &d[..1], 0.3);
    assert_eq!((legacy.n_tp, legacy.n_fn), (1, 1));
    let global = match_global(&truth, &d[..1], 0.3);
    assert_eq!((global.n_tp, global.n_fn), (1, 0));
}

#[test]
fn detection_on_patch_edge() {
    let g = PatchGeometry::default();
    let c = (50.0, 0.0);
    // a detection at the left edge of patch 1 (x = -0.45 px, rotated longitude ~ +5.07 deg)
    let (l, b) = g.pix_to_sky(c.0, c.1, -0.45, 31.5);
    assert!(g.contains(-0.45, 31.5));
    // the source is 0.2 deg further out, outside patch 1: it is listed in patch 2 only
    let truth = vec![src(2, 9, l + 0.2, b, 1e-9)];
    let (xs, _) = g.sky_to_pix(c.0, c.1, l + 0.2, b).unwrap();
    assert!(!g.contains(xs, 31.5));
    let d = vec![Detection {
        line: 2,
        patch_id: 1,
        x_pix: -0.45,
        y_pix: 31.5,
        glon_deg: l,
        glat_deg: b,
        score: None,
        class_id: None,
        probs: None,
        flux_1000_ph_cm2_s: None,
        sky_given_deg: None,
        catalog: None,
    }];
    let legacy = match_legacy(&truth, &d, 0.3);
    assert_eq!((legacy.n_tp, legacy.n_fp, legacy.n_fn), (0, 1, 1));
    assert_eq!(
        legacy.rows[0].truth, None,
        "no row of patch 1 to be nearest to"
    );
    let global = match_global(&truth, &d, 0.3);
    assert_eq!((global.n_tp, global.n_fp, global.n_fn), (1, 0, 0));
    assert!((global.rows[0].distance_deg - 0.2).abs() < 1e-6);
}

#[test]
fn longitude_wrap_and_poles() {
    // l = 359.9 and l = 0.1 are 0.2 deg apart
    let c = (0.0, 0.0);
    let truth = vec![src(0, 1, 359.9, 0.0, 1e-9)];
    let d = vec![det_at(0, c, 0.1, 0.0, None)];
    for m in [match_legacy(&truth, &d, 0.3), match_global(&truth, &d, 0.3)] {
        assert_eq!((m.n_tp, m.n_fp, m.n_fn), (1, 0, 0));
        assert!((m.rows[0].distance_deg - 0.2).abs() < 1e-9);
    }
    // near the north pole, l = 10 and l = 190 at b = 89.95 are 0.1 deg apart
    let c = (0.0, 90.0);
    let truth = vec![src(3, 1, 10.0, 89.95, 1e-9), src(3, 2, 100.0, 89.5, 2e-9)];
    let d = vec![det_at(3, c, 190.0, 89.95, None)];
    for m in [match_legacy(&truth, &d, 0.3), match_global(&truth, &d, 0.3)] {
        assert_eq!(m.n_tp, 1);
        assert_eq!(m.rows[0].truth, Some(0));
        assert!((m.rows[0].distance_deg - 0.1).abs() < 1e-6);
    }
    // south pole
    let c = (0.0, -90.0);
    let truth = vec![src(4, 1, 45.0, -89.9, 1e-9)];
    let d = vec![det_at(4, c, 225.0, -89.9, None)];
    let m = match_global(&truth, &d, 0.3);
    assert_eq!(m.n_tp, 1);
    assert!((m.rows[0].distance_deg - 0.2).abs() < 1e-6);
}

/// The published challenge formats; counts worked out by hand (see the comments).
#[test]
fn legacy_on_published_format() {
    let d = tempfile::tempdir().unwrap();
    let g = PatchGeometry::default();
    // patch 0 centred (10, 30), patch 1 centred (14, 30): they overlap.
    let pos = |c: (f64, f64), x: f64, y: f64| g.pix_to_sky(c.0, c.1, x, y);
    let (a, b) = ((10.0, 30.0), (14.0, 30.0));
    let s1 = pos(a, 20.0, 20.0); // bright, patch 0
    let s2 = pos(a, 21.0, 20.0); // faint, 0.159 deg from s1
    let s3 = pos(a, 50.0, 50.0); // patch 0, never detected
    let s4 = pos(b, 10.0, 40.0); // patch 1
    let truth = format!(
        "filename,xmin,xmax,ymin,ymax,class,lon_c,lat_c,flux_1000,lon_p,lat_p,catalog,flux_10000\n\
         test_image_0.npy,18,22,18,22,0,10,30,5e-10,{},{},0,5e-11\n\
         test_image_0.npy,19,23,18,22,1,10,30,1e-10,{},{},0,1e-11\n\
         test_image_0.npy,48,52,48,52,0,10,30,3e-10,{},{},0,3e-11\n\
         test_image_1.npy,8,12,38,42,1,14,30,2e-10,{},{},0,2e-11\n",
        s1.0, s1.1, s2.0, s2.1, s3.0, s3.1, s4.0, s4.1
    );
    // predictions (file order):
    // 0: patch 0 at (20.5, 20) -> within 0.3 of s1 and s2 -> TP on s1 (brighter)
    // 1: patch 0 at (20.6, 20.2) -> s1 taken, s2 within -> TP on s2
    // 2: patch 0 at (20.4, 19.9) -> nothing left within -> FP, nearest remaining row = s3
    // 3: patch 1 at (10, 40) class_id -1 -> dropped before scoring
    // 4: patch 1 at (40, 10) -> FP, nearest remaining row of patch 1 = s4
    // left: s3 (FN), s4 (FN)  =>  TP 2, FP 2, FN 2
    let preds = "image_nr,centroid_y,centroid_x,class_id,probability\n\
                 0,20,20.5,0,0.9\n0,20.2,20.6,1,0.8\n0,19.9,20.4,0,0.7\n1,40,10,-1,0.6\n1,10,40,0,0.5\n";
    let tp = d.path().join("test.csv");
    let pp = d.path().join("pred.csv");
    std::fs::write(&tp, truth).unwrap();
    std::fs::write(&pp, preds).unwrap();
    let out = d.path().join("out");
    let cfg = gammabench::config::ScoreConfig {
        mode: gammabench::config::MatchMode::Legacy,
        bootstrap_reps: 10,
        ..Default::default()
    };
    let r = gammabench::score::score_detections(&tp, &pp, None, &out, &cfg, 1, false).unwrap();
    assert_eq!((r.tp, r.fp, r.fn_), (2, 2, 2));
    let ev = std::fs::read_to_string(out.join("evaluation.csv")).unwrap();
    let lines: Vec<&str> = ev.lines().collect();
    assert_eq!(lines[0].split(',').count(), 25);
    assert!(lines[0].starts_with("stat_code,pred_con,pred_lon"));
    let codes: Vec<(&str, &str)> = lines[1..]
        .iter()
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            assert_eq!(f.len(), 25, "{l}");
            (f[0], f[1])
        })
        .collect();
    // stat_code and pred_con (index among kept predictions; the dropped one does not count)
    assert_eq!(
        codes,
        vec![
            ("0", "0"),
            ("0", "1"),
            ("1", "2"),
            ("1", "3"),
            ("2", "0"),
            ("2", "0")
        ]
    );
    let f: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(f[8].parse::<f64>().unwrap(), 5e-10); // test_flux_1000 of s1
    assert_eq!(f[13], "0"); // class AGN
    let num = |s: &str| s.parse::<f64>().unwrap();
    assert_eq!((num(f[14]), num(f[15])), (20.0, 20.0)); // int((18 + 22) / 2)
    let f: Vec<&str> = lines[3].split(',').collect();
    assert_eq!(f[13], "2"); // FP class = FAKE
    assert_eq!(f[8].parse::<f64>().unwrap(), 3e-10); // nearest remaining row: s3
    // global mode on the same input: same counts here (no shared source)
    let cfg = gammabench::config::ScoreConfig {
        bootstrap_reps: 0,
        ..Default::default()
    };
    let r = gammabench::score::score_detections(&tp, &pp, None, &out, &cfg, 1, false).unwrap();
    assert_eq!((r.tp, r.fp, r.fn_), (2, 2, 2));
}

#[test]
fn s90_on_constructed_curves() {
    let edges: Vec<f64> = (0..=6).map(|i| 10f64.powi(i - 12)).collect();
    // monotone: crosses 0.9 between bins 2 (0.8) and 3 (0.95)
    let (st, v) = s90_from_quality(&edges, &[0.2, 0.5, 0.8, 0.95, 0.97, 0.99], 0.9);
    assert_eq!(st, "reached");
    let c2 = (edges[2] * edges[3]).sqrt().log10();
    let c3 = (edges[3] * edges[4]).sqrt().log10();
    let want = 10f64.powf(c2 + (0.9 - 0.8) / (0.95 - 0.8) * (c3 - c2));
    assert!((v.unwrap() / want - 1.0).abs() < 1e-12);
    // non-monotone: passes in bin 1, dips in bin 3, passes from bin 4 on
    let (st, v) = s90_from_quality(&edges, &[0.5, 0.92, 0.95, 0.7, 0.9, 0.99], 0.9);
    assert_eq!(st, "reached");
    let c3b = c3;
    let c4 = (edges[4] * edges[5]).sqrt().log10();
    let want = 10f64.powf(c3b + (0.9 - 0.7) / (0.9 - 0.7) * (c4 - c3b));
    assert!((v.unwrap() / want - 1.0).abs() < 1e-12);
    // never reached: the brightest bin fails
    let (st, v) = s90_from_quality(&edges, &[0.95, 0.96, 0.97, 0.98, 0.99, 0.85], 0.9);
    assert_eq!((st.as_str(), v), ("not_reached", None));
    // every bin passes: the lowest edge, flagged
    let (st, v) = s90_from_quality(&edges, &[0.95; 6], 0.9);
    assert_eq!((st.as_str(), v), ("reached_at_lowest_bin", Some(edges[0])));
}

fn as_f64s(v: &serde_json::Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap_or(f64::NAN))
        .collect()
}

fn close(a: f64, b: f64, what: &str) {
    assert!(
        (a - b).abs() <= 1e-12 * (1.0 + b.abs()),
        "{what}: gammabench {a} vs scikit-learn {b}"
    );
}

#[test]
fn classification_matches_sklearn_fixtures() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sklearn_metrics.json"),
    )
    .unwrap();
    let fx: serde_json::Value = serde_json::from_str(&text).unwrap();
    let cases = fx["cases"].as_array().unwrap();
    assert!(cases.len() >= 4);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let classes: Vec<String> = case["classes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_string())
            .collect();
        let y: Vec<usize> = case["y_true"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let probs: Vec<Vec<f64>> = case["probs"]
            .as_array()
            .unwrap()
            .iter()
            .map(as_f64s)
            .collect();
        let nb = case["n_bins"].as_u64().unwrap() as usize;
        let r = classification::report(
            &ClassData {
                classes: classes.clone(),
                y_true: y,
                probs,
            },
            nb,
        );
        let e = &case["expected"];
        let cm: Vec<Vec<usize>> = e["confusion"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                r.as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_u64().unwrap() as usize)
                    .collect()
            })
            .collect();
        assert_eq!(r.confusion, cm, "{name}");
        close(
            r.accuracy.value.unwrap(),
            e["accuracy"].as_f64().unwrap(),
            name,
        );
        close(
            r.balanced_accuracy.value.unwrap(),
            e["balanced_accuracy"].as_f64().unwrap(),
            &format!("{name} balanced accuracy"),
        );
        close(
            r.macro_f1.value.unwrap(),
            e["macro_f1"].as_f64().unwrap(),
            &format!("{name} macro F1"),
        );
        match r.mcc.value {
            Some(v) => close(v, e["mcc"].as_f64().unwrap(), &format!("{name} MCC")),
            None => {
                assert_eq!(
                    e["mcc"].as_f64().unwrap(),
                    0.0,
                    "{name}: undefined MCC is 0 in sklearn"
                );
                assert!(r.mcc.undefined.is_some());
            }
        }
        close(
            r.log_loss.value.unwrap(),
            e["log_loss"].as_f64().unwrap(),
            &format!("{name} log loss"),
        );
        close(
            r.brier_multiclass.value.unwrap(),
            e["brier_multiclass"].as_f64().unwrap(),
            &format!("{name} brier"),
        );
        if let Some(b) = e["brier_multiclass_sklearn"].as_f64() {
            close(
                r.brier_multiclass.value.unwrap(),
                b,
                &format!("{name} brier (sklearn)"),
            );
        }
        match e["macro_roc_auc"].as_f64() {
            Some(v) => close(
                r.macro_roc_auc.value.unwrap(),
                v,
                &format!("{name} macro AUC"),
            ),
            None => assert!(r.macro_roc_auc.value.is_none()),
        }
        let rec = as_f64s(&e["recall"]);
        let prec = as_f64s(&e["precision"]);
        for (k, pc) in r.per_class.iter().enumerate() {
            let ek = &e["per_class"][k];
            let what = format!("{name} class {}", classes[k]);
            match pc.completeness.value {
                Some(v) => close(v, rec[k], &format!("{what} recall")),
                None => assert!(rec[k].is_nan()),
            }
            match pc.purity.value {
                Some(v) => close(v, prec[k], &format!("{what} precision")),
                None => assert!(prec[k].is_nan(), "{what}: sklearn defines precision"),
            }
            close(
                pc.brier_ovr.value.unwrap(),
                ek["brier_ovr"].as_f64().unwrap(),
                &format!("{what} brier"),
            );
            if let Some(auc) = ek["roc_auc"].as_f64() {
                close(pc.roc_auc.value.unwrap(), auc, &format!("{what} AUC"));
                close(
                    pc.average_precision.value.unwrap(),
                    ek["average_precision"].as_f64().unwrap(),
                    &format!("{what} AP"),
                );
                let roc = pc.roc.as_ref().unwrap();
                assert_eq!(
                    roc.fpr.len(),
                    ek["fpr"].as_array().unwrap().len(),
                    "{what} roc length"
                );
                for (a, b) in roc.fpr.iter().zip(as_f64s(&ek["fpr"])) {
                    close(*a, b, &format!("{what} fpr"));
                }
                for (a, b) in roc.tpr.iter().zip(as_f64s(&ek["tpr"])) {
                    close(*a, b, &format!("{what} tpr"));
                }
                for (a, b) in roc.thresholds[1..].iter().zip(as_f64s(&ek["thresholds"])) {
                    close(a.unwrap(), b, &format!("{what} thresholds"));
                }
            } else {
                assert!(pc.roc_auc.value.is_none() && pc.roc_auc.undefined.is_some());
            }
            let ct = as_f64s(&ek["calibration_true"]);
            let cp = as_f64s(&ek["calibration_pred"]);
            assert_eq!(pc.reliability.len(), ct.len(), "{what} calibration bins");
            for (b, (t, p)) in pc.reliability.iter().zip(ct.iter().zip(&cp)) {
                close(b.observed, *t, &format!("{what} prob_true"));
                close(b.mean_predicted, *p, &format!("{what} prob_pred"));
            }
        }
        for (cal, key) in [
            (&r.ece_top_label_equal_width, "ece_equal_width"),
            (&r.ece_top_label_equal_mass, "ece_equal_mass"),
        ] {
            let x = &e[key];
            close(
                cal.ece.value.unwrap(),
                x["ece"].as_f64().unwrap(),
                &format!("{name} {key}"),
            );
            let n: Vec<usize> = x["n"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_u64().unwrap() as usize)
                .collect();
            assert_eq!(
                cal.bins.iter().map(|b| b.n).collect::<Vec<_>>(),
                n,
                "{name} {key} counts"
            );
            for (b, (t, p)) in cal.bins.iter().zip(
                as_f64s(&x["prob_true"])
                    .iter()
                    .zip(as_f64s(&x["prob_pred"])),
            ) {
                close(b.observed, *t, &format!("{name} {key} prob_true"));
                close(b.mean_predicted, p, &format!("{name} {key} prob_pred"));
            }
        }
        // no NaN anywhere in the JSON
        let js = serde_json::to_string(&r).unwrap();
        assert!(!js.contains("NaN") && !js.contains("nan"), "{name}");
    }
}

#[test]
fn undefined_metrics_are_reported_not_nan() {
    let d = ClassData {
        classes: vec!["AGN".into(), "PSR".into(), "FAKE".into()],
        y_true: vec![0, 0, 0],
        probs: vec![
            vec![0.7, 0.2, 0.1],
            vec![0.5, 0.4, 0.1],
            vec![0.2, 0.7, 0.1],
        ],
    };
    let r = classification::report(&d, 15);
    assert!(r.mcc.value.is_some() || r.mcc.undefined.is_some());
    assert!(
        r.per_class[0].roc_auc.undefined.is_some(),
        "one class only: no ROC"
    );
    assert!(r.per_class[1].completeness.undefined.is_some());
    assert!(r.per_class[2].purity.undefined.is_some());
    assert!(r.macro_roc_auc.undefined.is_some());
    assert!(!serde_json::to_string(&r).unwrap().contains("NaN"));
}

/// A synthetic all-sky truth with patches, for the CLI and the curve code.
pub fn synthetic(
    dir: &Path,
    n_patches: i64,
    seed: u64,
) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let g = PatchGeometry::default();
    let mut patches = String::from("patch_id,glon_deg,glat_deg\n");
    let mut truth = String::from(
        "patch_id,source_id,class,x_pix,y_pix,glon_deg,glat_deg,flux_1000_ph_cm2_s,flux_10000_ph_cm2_s,snr_c,sbr_c\n",
    );
    let mut preds = String::from("patch_id,x_pix,y_pix,score,flux_1000_ph_cm2_s\n");
    let mut sid = 0;
    for p in 0..n_patches {
        let (l0, b0) = (r.random_range(0.0..360.0), r.random_range(-60.0..60.0));
        patches.push_str(&format!("{p},{l0},{b0}\n"));
        for _ in 0..30 {
            let (x, y) = (r.random_range(2.0..61.0), r.random_range(2.0..61.0));
            let (l, b) = g.pix_to_sky(l0, b0, x, y);
            let flux: f64 = 10f64.powf(r.random_range(-11.0..-8.5));
            let snr = flux / 1e-10 * 3.0;
            truth.push_str(&format!(
                "{p},{sid},{},{x},{y},{l},{b},{flux},{},{snr},{}\n",
                if sid % 3 == 0 { "PSR" } else { "AGN" },
                flux / 8.0,
                snr / 3.0
            ));
            sid += 1;
            // detection probability rises with flux
            let pdet = 1.0 / (1.0 + (-(flux.log10() + 10.0) * 4.0).exp());
            if r.random::<f64>() < pdet {
                let (dx, dy) = (r.random_range(-0.6..0.6), r.random_range(-0.6..0.6));
                preds.push_str(&format!(
                    "{p},{},{},{},{}\n",
                    (x + dx).clamp(0.0, 63.0),
                    (y + dy).clamp(0.0, 63.0),
                    r.random::<f64>(),
                    flux * r.random_range(0.7..1.3)
                ));
            }
        }
        for _ in 0..3 {
            preds.push_str(&format!(
                "{p},{},{},{},{}\n",
                r.random_range(0.0..63.0),
                r.random_range(0.0..63.0),
                r.random::<f64>() * 0.5,
                10f64.powf(r.random_range(-11.0..-10.0))
            ));
        }
    }
    let (pp, tp, dp) = (
        dir.join("patches.csv"),
        dir.join("truth.csv"),
        dir.join("pred.csv"),
    );
    std::fs::write(&pp, patches).unwrap();
    std::fs::write(&tp, truth).unwrap();
    std::fs::write(&dp, preds).unwrap();
    (pp, tp, dp)
}

#[test]
fn cli_score_detections_and_classification() {
    let d = tempfile::tempdir().unwrap();
    let (pp, tp, dp) = synthetic(d.path(), 40, 5);
    let out = d.path().join("out");
    let bin = env!("CARGO_BIN_EXE_gammabench");
    let o = std::process::Command::new(bin)
        .args(["-q", "score", "detections", "--truth"])
        .arg(&tp)
        .arg("--predictions")
        .arg(&dp)
        .arg("--patches")
        .arg(&pp)
        .arg("--out")
        .arg(&out)
        .args(["--set", "score.bootstrap_reps=50"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "metrics.json",
        "match_table.csv",
        "curves.csv",
        "s90.csv",
        "figures/purity_completeness_S1.png",
        "figures/purity_completeness_SNR_c.svg",
        "figures/purity_own_flux.png",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    let tp_n = m["tp"].as_u64().unwrap();
    assert!(tp_n > 100, "{m}");
    assert!(m["purity"]["value"].as_f64().unwrap() > 0.5);
    assert!(
        m["s90_definition"]
            .as_str()
            .unwrap()
            .contains("purity crossing and the completeness crossing")
    );
    let s90 = m["s90"].as_array().unwrap();
    assert_eq!(s90.len(), 12, "4 axes x 3 regions");
    // the match table lists every detection and every missed source
    let mt = std::fs::read_to_string(out.join("match_table.csv")).unwrap();
    let n_rows = mt.lines().count() - 1;
    let n_det = std::fs::read_to_string(&dp).unwrap().lines().count() - 1;
    assert_eq!(n_rows as u64, n_det as u64 + m["fn"].as_u64().unwrap());
    // deterministic: same bytes on a second run
    let out2 = d.path().join("out2");
    let o = std::process::Command::new(bin)
        .args(["-q", "score", "detections", "--no-figures", "--truth"])
        .arg(&tp)
        .arg("--predictions")
        .arg(&dp)
        .arg("--patches")
        .arg(&pp)
        .arg("--out")
        .arg(&out2)
        .args(["--set", "score.bootstrap_reps=50", "--threads", "1"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(out.join("metrics.json")).unwrap(),
        std::fs::read(out2.join("metrics.json")).unwrap()
    );
    // a bad prediction file: exit 2 with line and column
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, "patch_id,x_pix,y_pix\n0,1,2\n0,abc,3\n").unwrap();
    let o = std::process::Command::new(bin)
        .args(["-q", "score", "detections", "--truth"])
        .arg(&tp)
        .arg("--predictions")
        .arg(&bad)
        .arg("--patches")
        .arg(&pp)
        .arg("--out")
        .arg(d.path().join("o3"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("line 3, column 2 (`x_pix`)"), "{err}");

    // classification
    let cp = d.path().join("cls.csv");
    std::fs::write(
        &cp,
        "id,true_class,p_AGN,p_PSR,p_FAKE\n1,AGN,0.7,0.2,0.1\n2,PSR,0.2,0.7,0.1\n3,FAKE,0.3,0.3,0.4\n4,AGN,0.4,0.5,0.1\n5,PSR,0.5,0.4,0.1\n6,FAKE,0.1,0.1,0.8\n",
    )
    .unwrap();
    let out = d.path().join("cls");
    let o = std::process::Command::new(bin)
        .args(["-q", "score", "classification", "--predictions"])
        .arg(&cp)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    for f in [
        "metrics.json",
        "roc.csv",
        "reliability.csv",
        "figures/confusion_matrix.png",
        "figures/roc_reliability.svg",
    ] {
        assert!(out.join(f).exists(), "{f}");
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    assert!((m["accuracy"]["value"].as_f64().unwrap() - 4.0 / 6.0).abs() < 1e-12);
}

#[test]
fn curves_merge_to_min_count_and_bootstrap_is_seeded() {
    let d = tempfile::tempdir().unwrap();
    let (pp, tp, dp) = synthetic(d.path(), 30, 9);
    let truth = gammabench::score::input::read_truth(&tp, Some(&pp)).unwrap();
    let (_, dets) = gammabench::score::input::read_detections(&dp, &truth.patches).unwrap();
    let cfg = gammabench::config::ScoreConfig {
        bootstrap_reps: 40,
        min_count_per_bin: 15,
        ..Default::default()
    };
    let m = match_global(&truth.rows, &dets, 0.3);
    let a = detection::report(&truth.rows, &dets, &m, "global", &cfg, 7);
    let b = detection::report(&truth.rows, &dets, &m, "global", &cfg, 7);
    assert_eq!(
        serde_json::to_string(&a).unwrap(),
        serde_json::to_string(&b).unwrap()
    );
    for c in &a.curves {
        let n: usize = c.bins.iter().map(|b| b.p.n).sum();
        if n >= 15 {
            assert!(
                c.bins.iter().all(|b| b.p.n >= 15),
                "{} {} {}",
                c.metric,
                c.axis,
                c.region
            );
        }
    }
    let s = a
        .s90
        .iter()
        .find(|s| s.axis == "S1" && s.region == "all")
        .unwrap();
    if s.status == "reached" {
        let (lo, hi) = (s.interval_lo.unwrap(), s.interval_hi.unwrap());
        assert!(lo <= hi);
    }
    assert!(a.localisation.median_deg.unwrap() < 0.3);
    assert!(a.localisation.q68_deg <= a.localisation.q95_deg);
}

#[test]
fn truth_and_patches_with_crlf_report_the_right_line() {
    let d = tempfile::tempdir().unwrap();
    let pp = d.path().join("patches.csv");
    std::fs::write(
        &pp,
        "patch_id,glon_deg,glat_deg\r\n0,10.0,5.0\r\n1,20.0,x\r\n",
    )
    .unwrap();
    let e = gammabench::score::input::read_patches(&pp)
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3") && e.contains("column 3"), "{e}");
    std::fs::write(
        &pp,
        "patch_id,glon_deg,glat_deg\r\n0,10.0,5.0\r\n1,20.0,6.0\r\n",
    )
    .unwrap();
    let tp = d.path().join("truth.csv");
    let head = "patch_id,source_id,class,x_pix,y_pix,glon_deg,glat_deg,flux_1000_ph_cm2_s,\
                flux_10000_ph_cm2_s,snr_c,sbr_c";
    let good = "0,1,AGN,3.0,4.0,10.1,5.1,1e-9,1e-10,5,0.1";
    for (eol, bom) in [("\r\n", ""), ("\n", ""), ("\r\n", "\u{feff}")] {
        let text = format!(
            "{bom}{head}{eol}{good}{eol}{good}{eol}0,2,AGN,3.0,oops,10.1,5.1,1e-9,1e-10,5,0.1{eol}"
        );
        std::fs::write(&tp, text).unwrap();
        let e = gammabench::score::input::read_truth(&tp, Some(&pp))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("line 4") && e.contains("column 5"),
            "{eol:?}: {e}"
        );
    }
    // a CRLF file with a record that has the wrong number of fields
    std::fs::write(&tp, format!("{head}\r\n{good}\r\n0,1,AGN\r\n")).unwrap();
    let e = gammabench::score::input::read_truth(&tp, Some(&pp))
        .unwrap_err()
        .to_string();
    assert!(e.contains("line 3"), "{e}");
}

// ---- indexed matching against an all-pairs implementation of the documented rules ----

use gammabench::score::matching::{MatchRow, Matching};

fn flux_of(t: &TruthRow) -> f64 {
    if t.flux_1000_ph_cm2_s.is_nan() {
        f64::NEG_INFINITY
    } else {
        t.flux_1000_ph_cm2_s
    }
}

fn push(m: &mut Matching, r: MatchRow) {
    match r.status {
        Status::TP => m.n_tp += 1,
        Status::FP => m.n_fp += 1,
        Status::FN => m.n_fn += 1,
        Status::Duplicate => m.n_duplicate += 1,
    }
    m.rows.push(r);
}

/// Random sky with overlapping patches (sources repeated under their `source_id`), tied
/// fluxes and tied scores, some negative class ids, clustered so that radii overlap.
fn random_case(seed: u64, with_scores: bool) -> (Vec<TruthRow>, Vec<Detection>) {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut truth = Vec::new();
    let mut dets = Vec::new();
    let centres: Vec<(f64, f64)> = (0..6)
        .map(|k| ((k as f64 * 0.7 + 359.0) % 360.0, r.random_range(-3.0..3.0)))
        .collect();
    for sid in 0..300i64 {
        let l = (359.0 + r.random_range(0.0..5.0)) % 360.0;
        let b = r.random_range(-4.0..4.0);
        let flux = [1e-10, 2e-10, 3e-10][r.random_range(0..3)];
        for (p, c) in centres.iter().enumerate() {
            if angular_distance_deg(l, b, c.0, c.1) < 2.5 {
                truth.push(TruthRow {
                    patch_id: p as i64,
                    source_id: sid,
                    class: "AGN".into(),
                    x_pix: 0.0,
                    y_pix: 0.0,
                    glon_deg: l,
                    glat_deg: b,
                    flux_1000_ph_cm2_s: flux,
                    flux_10000_ph_cm2_s: flux,
                    snr_c: f64::NAN,
                    sbr_c: f64::NAN,
                    catalog: f64::NAN,
                    patch_lon_deg: c.0,
                    patch_lat_deg: c.1,
                });
            }
        }
    }
    for k in 0..500 {
        let p = r.random_range(0..centres.len());
        let (l, b) = if k % 3 == 0 || truth.is_empty() {
            (
                (359.0 + r.random_range(0.0..5.0)) % 360.0,
                r.random_range(-4.0..4.0),
            )
        } else {
            let t = &truth[r.random_range(0..truth.len())];
            (
                (t.glon_deg + r.random_range(-0.3..0.3) + 360.0) % 360.0,
                t.glat_deg + r.random_range(-0.3..0.3),
            )
        };
        dets.push(Detection {
            line: k + 2,
            patch_id: p as i64,
            x_pix: 0.0,
            y_pix: 0.0,
            glon_deg: l,
            glat_deg: b,
            score: with_scores.then(|| (r.random_range(0..20) as f64) / 20.0),
            class_id: Some(if k % 17 == 0 { -1 } else { 0 }),
            probs: None,
            flux_1000_ph_cm2_s: None,
            sky_given_deg: None,
            catalog: None,
        });
    }
    (truth, dets)
}

/// The documented global rule, all pairs.
fn global_reference(truth: &[TruthRow], dets: &[Detection], radius: f64) -> Matching {
    let mut sources: Vec<usize> = Vec::new();
    for (i, t) in truth.iter().enumerate() {
        if !sources.iter().any(|&j| truth[j].source_id == t.source_id) {
            sources.push(i);
        }
    }
    let dist = |d: &Detection, s: usize| {
        angular_distance_deg(
            d.glon_deg,
            d.glat_deg,
            truth[sources[s]].glon_deg,
            truth[sources[s]].glat_deg,
        )
    };
    let mut order: Vec<usize> = (0..dets.len())
        .filter(|&i| dets[i].class_id.is_none_or(|k| k >= 0))
        .collect();
    if order.iter().all(|&i| dets[i].score.is_some()) {
        order.sort_by(|&a, &b| dets[b].score.unwrap().total_cmp(&dets[a].score.unwrap()));
    }
    let mut claimed: Vec<Option<usize>> = vec![None; sources.len()];
    let mut rows: Vec<(usize, MatchRow)> = Vec::new();
    for &di in &order {
        let d = &dets[di];
        let cands: Vec<(usize, f64)> = (0..sources.len())
            .map(|s| (s, dist(d, s)))
            .filter(|p| p.1 <= radius)
            .collect();
        let best = cands
            .iter()
            .filter(|(s, _)| claimed[*s].is_none())
            .min_by(|a, b| {
                flux_of(&truth[sources[b.0]])
                    .total_cmp(&flux_of(&truth[sources[a.0]]))
                    .then(a.1.total_cmp(&b.1))
                    .then(a.0.cmp(&b.0))
            });
        let row = if let Some(&(s, x)) = best {
            claimed[s] = Some(di);
            MatchRow {
                status: Status::TP,
                det: Some(di),
                truth: Some(sources[s]),
                distance_deg: x,
            }
        } else if let Some(&(s, x)) = cands
            .iter()
            .find(|(s, _)| claimed[*s].is_some_and(|o| dets[o].patch_id != d.patch_id))
        {
            MatchRow {
                status: Status::Duplicate,
                det: Some(di),
                truth: Some(sources[s]),
                distance_deg: x,
            }
        } else {
            let near = (0..sources.len())
                .map(|s| (s, dist(d, s)))
                .min_by(|a, b| a.1.total_cmp(&b.1).then(a.0.cmp(&b.0)));
            MatchRow {
                status: Status::FP,
                det: Some(di),
                truth: near.map(|n| sources[n.0]),
                distance_deg: near.map(|n| n.1).unwrap_or(f64::NAN),
            }
        };
        rows.push((di, row));
    }
    rows.sort_by_key(|r| r.0);
    let mut m = Matching::default();
    for (_, r) in rows {
        push(&mut m, r);
    }
    for (s, c) in claimed.iter().enumerate() {
        if c.is_none() {
            push(
                &mut m,
                MatchRow {
                    status: Status::FN,
                    det: None,
                    truth: Some(sources[s]),
                    distance_deg: f64::NAN,
                },
            );
        }
    }
    m
}

/// The documented legacy rule, all pairs.
fn legacy_reference(truth: &[TruthRow], dets: &[Detection], radius: f64) -> Matching {
    let mut alive = vec![true; truth.len()];
    let mut m = Matching::default();
    for (di, d) in dets.iter().enumerate() {
        if d.class_id.is_some_and(|k| k < 0) {
            continue;
        }
        let mut best: Option<(usize, f64)> = None;
        let mut near: Option<(usize, f64)> = None;
        for (i, t) in truth.iter().enumerate() {
            if !alive[i] || t.patch_id != d.patch_id {
                continue;
            }
            let x = angular_distance_deg(d.glon_deg, d.glat_deg, t.glon_deg, t.glat_deg);
            if x <= radius && best.is_none_or(|(b, _)| flux_of(t) > flux_of(&truth[b])) {
                best = Some((i, x));
            }
            if near.is_none_or(|(_, nd)| x < nd) {
                near = Some((i, x));
            }
        }
        if let Some((i, x)) = best {
            alive[i] = false;
            push(
                &mut m,
                MatchRow {
                    status: Status::TP,
                    det: Some(di),
                    truth: Some(i),
                    distance_deg: x,
                },
            );
        } else {
            push(
                &mut m,
                MatchRow {
                    status: Status::FP,
                    det: Some(di),
                    truth: near.map(|n| n.0),
                    distance_deg: near.map(|n| n.1).unwrap_or(f64::NAN),
                },
            );
        }
    }
    for (i, a) in alive.iter().enumerate() {
        if *a {
            push(
                &mut m,
                MatchRow {
                    status: Status::FN,
                    det: None,
                    truth: Some(i),
                    distance_deg: f64::NAN,
                },
            );
        }
    }
    m
}

fn key(m: &Matching) -> Vec<(Status, Option<usize>, Option<usize>, u64)> {
    m.rows
        .iter()
        .map(|r| (r.status, r.det, r.truth, r.distance_deg.to_bits()))
        .collect()
}

#[test]
fn indexed_matching_equals_all_pairs_reference() {
    for seed in 0..6 {
        for with_scores in [true, false] {
            let (truth, dets) = random_case(seed, with_scores);
            let g = match_global(&truth, &dets, 0.3);
            let gr = global_reference(&truth, &dets, 0.3);
            assert_eq!(key(&g), key(&gr), "global, seed {seed}");
            assert_eq!(
                (g.n_tp, g.n_fp, g.n_fn, g.n_duplicate),
                (gr.n_tp, gr.n_fp, gr.n_fn, gr.n_duplicate)
            );
            assert!(g.n_duplicate > 0 && g.n_fp > 0 && g.n_tp > 0);
            let l = match_legacy(&truth, &dets, 0.3);
            let lr = legacy_reference(&truth, &dets, 0.3);
            assert_eq!(key(&l), key(&lr), "legacy, seed {seed}");
        }
    }
}

#[test]
fn matching_does_not_depend_on_the_thread_count() {
    let (truth, dets) = random_case(11, true);
    let run = |n: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap();
        pool.install(|| {
            (
                key(&match_global(&truth, &dets, 0.3)),
                key(&match_legacy(&truth, &dets, 0.3)),
            )
        })
    };
    let one = run(1);
    assert_eq!(one, run(2));
    assert_eq!(one, run(5));
}
