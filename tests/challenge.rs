//! Challenge-kit tests: bad submissions rejected with line and column, the public bundle free
//! of truth, 20 concurrent submissions all recorded, resubmission and daily limit, leaderboard.

use gammabench::challenge;
use gammabench::npy;

/// A float32 array as read by `gammabench::npy`.
struct Npy {
    shape: Vec<usize>,
    data: Vec<f32>,
}

fn read_npy(p: &std::path::Path) -> gammabench::Result<Npy> {
    npy::read_f32(p).map(|(shape, data)| Npy { shape, data })
}
use gammabench::projection::PatchGeometry;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_gammabench");

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

#[test]
fn bad_submissions_are_rejected_with_line_and_column() {
    let dir = fixtures().join("bad_submissions");
    let patches = fixtures().join("challenge_patches.csv");
    let expected = std::fs::read_to_string(dir.join("expected.txt")).unwrap();
    let mut n = 0;
    for line in expected
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
    {
        let f: Vec<&str> = line.split('\t').collect();
        let (file, l, c, field, msg) = (f[0], f[1], f[2], f[3], f[4]);
        let o = Command::new(BIN)
            .args(["-q", "challenge", "validate"])
            .arg(dir.join(file))
            .arg("--patches")
            .arg(&patches)
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{file} must be rejected");
        let err = String::from_utf8_lossy(&o.stderr);
        let want = format!("{file}:{l}:{c}: `{field}`: ");
        assert!(
            err.lines().any(|e| e.contains(&want) && e.contains(msg)),
            "{file}: expected `{want}...{msg}` in\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
        n += 1;
    }
    // every file of the folder is listed
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "csv")
        })
        .count();
    assert_eq!(n, files);
    // BOM + CRLF is fine
    let o = Command::new(BIN)
        .args(["-q", "challenge", "validate"])
        .arg(fixtures().join("valid_bom_crlf.csv"))
        .arg("--patches")
        .arg(&patches)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stdout).contains("valid (2 detections"));
    // the example submission of the README is valid for patches 0 and 1
    let o = Command::new(BIN)
        .args(["-q", "challenge", "validate"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("challenge/example_submission.csv"))
        .arg("--patches")
        .arg(&patches)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn size_and_row_limits() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("s.csv");
    let mut s = String::from("patch_id,x_pix,y_pix\n");
    for i in 0..10 {
        s.push_str(&format!("0,{i}.5,1.25\n"));
    }
    std::fs::write(&p, &s).unwrap();
    let patches = fixtures().join("challenge_patches.csv");
    let run = |set: &str| {
        Command::new(BIN)
            .args(["-q", "challenge", "validate"])
            .arg(&p)
            .arg("--patches")
            .arg(&patches)
            .args(["--set", set])
            .output()
            .unwrap()
    };
    let o = run("challenge.max_rows=5");
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("s.csv:7:1: `-`: more than 5 data rows"),
        "{err}"
    );
    let o = run("challenge.max_file_bytes=64");
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("over the limit of 64 bytes"));
    assert_eq!(run("challenge.max_rows=10").status.code(), Some(0));
}

/// A tiny patches-stage directory: 6 patches, 3 components, truth with unusual digits.
fn patches_dir(dir: &Path) -> Vec<String> {
    use rand::{Rng, SeedableRng};
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let g = PatchGeometry::default();
    let n = 6;
    let centres: Vec<(f64, f64)> = (0..n)
        .map(|i| (i as f64 * 7.0 + 3.0, 25.0 - 9.0 * i as f64))
        .collect();
    let mut pc = String::from("patch_id,glon_deg,glat_deg\n");
    for (i, (l, b)) in centres.iter().enumerate() {
        pc.push_str(&format!("{},{l},{b}\n", 100 + i));
    }
    std::fs::write(dir.join("patches.csv"), pc).unwrap();
    let mut truth = String::from(
        "patch_id,source_id,class,x_pix,y_pix,glon_deg,glat_deg,flux_1000_ph_cm2_s,flux_10000_ph_cm2_s,counts_bin0,counts_bin1,counts_bin2,counts_bin3,counts_bin4,snr_c,sbr_c\n",
    );
    let mut values = Vec::new();
    let size = 64 * 64 * 5;
    let mut agn = vec![0f32; n * size];
    let mut psr = vec![0f32; n * size];
    let diffuse: Vec<f32> = (0..n * size).map(|i| 0.5 + (i % 7) as f32 * 0.1).collect();
    for (p, &(l0, b0)) in centres.iter().enumerate() {
        for s in 0..8 {
            let (x, y): (f64, f64) = (r.random_range(3.0..60.0), r.random_range(3.0..60.0));
            let (l, b) = g.pix_to_sky(l0, b0, x, y);
            let flux: f64 = 10f64.powf(r.random_range(-10.5..-8.7));
            let f10 = flux * r.random_range(0.05..0.2);
            let is_psr = s % 2 == 1;
            let row = vec![
                format!("{x}"),
                format!("{y}"),
                format!("{l}"),
                format!("{b}"),
                format!("{flux}"),
                format!("{f10}"),
            ];
            truth.push_str(&format!(
                "{},{},{},{},{},{},{},{},{},1,2,3,4,5,{},{}\n",
                100 + p,
                p * 100 + s,
                if is_psr { "PSR" } else { "AGN" },
                row[0],
                row[1],
                row[2],
                row[3],
                row[4],
                row[5],
                flux * 1e10,
                flux * 3e9
            ));
            values.extend(row);
            let (xi, yi) = (x.round() as usize, y.round() as usize);
            let target = if is_psr { &mut psr } else { &mut agn };
            for k in 0..5 {
                target[p * size + (yi * 64 + xi) * 5 + k] += (flux * 1e11) as f32;
            }
        }
    }
    std::fs::write(dir.join("truth.csv"), truth).unwrap();
    for (name, data) in [("diffuse", &diffuse), ("agn", &agn), ("psr", &psr)] {
        npy::write_f32(
            &dir.join(format!("patches_{name}.npy")),
            &[n, 64, 64, 5],
            data,
        )
        .unwrap();
    }
    values
}

#[test]
fn build_bundles_without_truth_in_public() {
    let d = tempfile::tempdir().unwrap();
    let pd = d.path().join("patches");
    std::fs::create_dir_all(&pd).unwrap();
    let truth_values = patches_dir(&pd);
    let out = d.path().join("bundle");
    let o = Command::new(BIN)
        .args(["-q", "challenge", "build", "--patches-dir"])
        .arg(&pd)
        .arg("--out")
        .arg(&out)
        .args(["--set", "challenge.secret_seed=987654321"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = out.join("public");
    let mut names: Vec<String> = std::fs::read_dir(&public)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "MANIFEST.sha256",
            "README.md",
            "dataset.json",
            "example_submission.csv",
            "patches.csv",
            "patches.npy"
        ]
    );
    // no truth value, seed or truth column name anywhere in the public bundle
    for n in &names {
        let bytes = std::fs::read(public.join(n)).unwrap();
        let text = String::from_utf8_lossy(&bytes);
        for v in &truth_values {
            assert!(
                !text.contains(v.as_str()),
                "{n} contains the truth value {v}"
            );
        }
        assert!(!text.contains("987654321"), "{n} contains the secret seed");
        assert!(
            !text.contains("source_id") && !text.contains("snr_c"),
            "{n}"
        );
    }
    // manifest matches
    let man = std::fs::read_to_string(public.join("MANIFEST.sha256")).unwrap();
    assert_eq!(man.lines().count(), 5);
    for l in man.lines() {
        let (h, f) = l.split_once("  ").unwrap();
        assert_eq!(
            h,
            gammabench::formats::sha256_file(&public.join(f)).unwrap(),
            "{f}"
        );
    }
    // counts: integer Poisson draws with the Asimov mean, shape kept
    let a = read_npy(&public.join("patches.npy")).unwrap();
    assert_eq!(a.shape, vec![6, 64, 64, 5]);
    assert!(a.data.iter().all(|v| *v >= 0.0 && v.fract() == 0.0));
    let mean = a.data.iter().map(|v| *v as f64).sum::<f64>() / a.data.len() as f64;
    let mu: f64 = ["diffuse", "agn", "psr"]
        .iter()
        .map(|c| {
            read_npy(&pd.join(format!("patches_{c}.npy")))
                .unwrap()
                .data
                .iter()
                .map(|v| *v as f64)
                .sum::<f64>()
        })
        .sum::<f64>()
        / a.data.len() as f64;
    assert!((mean / mu - 1.0).abs() < 0.02, "{mean} vs {mu}");
    // private bundle: truth, seeds, split, manifest
    let private = out.join("private");
    for f in [
        "truth.csv",
        "patches.csv",
        "seeds.json",
        "split.csv",
        "MANIFEST.sha256",
    ] {
        assert!(private.join(f).exists(), "{f}");
    }
    assert!(
        std::fs::read_to_string(private.join("seeds.json"))
            .unwrap()
            .contains("987654321")
    );
    // a second build with the same seed gives the same counts
    let out2 = d.path().join("bundle2");
    let o = Command::new(BIN)
        .args(["-q", "challenge", "build", "--patches-dir"])
        .arg(&pd)
        .arg("--out")
        .arg(&out2)
        .args(["--set", "challenge.secret_seed=987654321", "--threads", "1"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert_eq!(
        std::fs::read(public.join("patches.npy")).unwrap(),
        std::fs::read(out2.join("public/patches.npy")).unwrap()
    );
    // the split is half and half
    let split = std::fs::read_to_string(private.join("split.csv")).unwrap();
    assert_eq!(split.matches(",public").count(), 3);
    assert_eq!(split.matches(",private").count(), 3);
}

/// A submission detecting a share of the truth sources, plus junk rows.
fn submission(path: &Path, truth: &Path, keep_every: usize, junk: usize) {
    let text = std::fs::read_to_string(truth).unwrap();
    let mut s = String::from("patch_id,x_pix,y_pix,score\n");
    for (i, l) in text.lines().skip(1).enumerate() {
        if i % keep_every != 0 {
            continue;
        }
        let f: Vec<&str> = l.split(',').collect();
        let x: f64 = f[3].parse().unwrap();
        let y: f64 = f[4].parse().unwrap();
        s.push_str(&format!("{},{},{},0.9\n", f[0], x + 0.3, y - 0.2));
    }
    for j in 0..junk {
        s.push_str(&format!("100,{}.25,1.75,0.1\n", j % 60));
    }
    std::fs::write(path, s).unwrap();
}

#[test]
fn concurrent_submissions_resubmission_limit_and_leaderboard() {
    let d = tempfile::tempdir().unwrap();
    let pd = d.path().join("patches");
    std::fs::create_dir_all(&pd).unwrap();
    patches_dir(&pd);
    let out = d.path().join("bundle");
    let o = Command::new(BIN)
        .args(["-q", "challenge", "build", "--patches-dir"])
        .arg(&pd)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let private = out.join("private");
    let db = d.path().join("board.sqlite");
    // 20 processes at once, 5 teams x 4 different files each
    let mut children = Vec::new();
    for i in 0..20 {
        let p = d.path().join(format!("sub{i}.csv"));
        submission(&p, &private.join("truth.csv"), 1 + i % 4, i);
        children.push(
            Command::new(BIN)
                .args(["-q", "challenge", "submit", "--team"])
                .arg(format!("team {}", i % 5))
                .arg(&p)
                .arg("--private")
                .arg(&private)
                .arg("--db")
                .arg(&db)
                .args(["--set", "challenge.daily_limit=4"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap(),
        );
    }
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(String::from_utf8_lossy(&o.stdout).contains("recorded; public score"));
    }
    let conn = challenge::open_db(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM submissions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 20, "every concurrent submission is recorded");
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // identical file again: recognised, not counted
    let o = Command::new(BIN)
        .args(["-q", "challenge", "submit", "--team", "team 0"])
        .arg(d.path().join("sub0.csv"))
        .arg("--private")
        .arg(&private)
        .arg("--db")
        .arg(&db)
        .args(["--set", "challenge.daily_limit=4"])
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("identical to submission #"));
    // a fifth different file for team 0 today: over the daily limit (exit 2)
    let p = d.path().join("sub_extra.csv");
    submission(&p, &private.join("truth.csv"), 7, 3);
    let o = Command::new(BIN)
        .args(["-q", "challenge", "submit", "--team", "team 0"])
        .arg(&p)
        .arg("--private")
        .arg(&private)
        .arg("--db")
        .arg(&db)
        .args(["--set", "challenge.daily_limit=4"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("used its 4 submissions"));
    // an invalid submission is rejected with its location and no truth
    let bad = d.path().join("bad.csv");
    std::fs::write(&bad, "patch_id,x_pix,y_pix\n100,70,1\n").unwrap();
    let o = Command::new(BIN)
        .args(["-q", "challenge", "submit", "--team", "team 9"])
        .arg(&bad)
        .arg("--private")
        .arg(&private)
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("line 2, column 2 (`x_pix`)"));
    // leaderboards
    for (flag, dir) in [(None, "pub"), (Some("--private"), "priv")] {
        let lb = d.path().join(dir);
        let mut c = Command::new(BIN);
        c.args(["-q", "challenge", "leaderboard", "--out"])
            .arg(&lb)
            .arg("--db")
            .arg(&db);
        if let Some(f) = flag {
            c.arg(f);
        }
        let o = c.output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        for f in [
            "leaderboard.csv",
            "leaderboard.md",
            "leaderboard.json",
            "leaderboard.html",
        ] {
            assert!(lb.join(f).exists(), "{f}");
        }
        let js: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(lb.join("leaderboard.json")).unwrap())
                .unwrap();
        let rows = js["rows"].as_array().unwrap();
        assert_eq!(rows.len(), 5);
        let total: u64 = rows
            .iter()
            .map(|r| r["submissions"].as_u64().unwrap())
            .sum();
        assert_eq!(total, 20);
        let f1: Vec<f64> = rows
            .iter()
            .map(|r| r["score"]["f1"].as_f64().unwrap())
            .collect();
        assert!(f1.windows(2).all(|w| w[0] >= w[1]), "ranked by F1: {f1:?}");
        assert!(f1[0] > 0.5);
        let html = std::fs::read_to_string(lb.join("leaderboard.html")).unwrap();
        assert!(html.contains("<table>") && html.contains("team 0"));
    }
}
