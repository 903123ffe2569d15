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
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_gammabench");

#[path = "common/kit.rs"]
mod kit;
use kit::{patches_dir, submission};

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
            "patches.npy",
            "sample_submission.csv"
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
    assert_eq!(man.lines().count(), 6);
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
        .args(["--set", "challenge.secret_seed=424242424242"])
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
        let q = |x: f64| (x * 1e4).round() as i64;
        assert!(
            f1.windows(2).all(|w| q(w[0]) >= q(w[1])),
            "ranked by F1 at 4 decimals: {f1:?}"
        );
        assert!(f1[0] > 0.5);
        assert_eq!(js["ranking"]["primary"], "f1");
        for r in rows {
            let st = r["score"]["s90_status"].as_str().unwrap();
            assert!(
                ["reached", "reached_at_lowest_bin", "not_reached"].contains(&st),
                "{st}"
            );
            assert_eq!(r["score"]["s90_s1"].is_null(), st == "not_reached");
        }
        let csv = std::fs::read_to_string(lb.join("leaderboard.csv")).unwrap();
        assert!(csv.starts_with("rank,team,f1,purity,completeness,s90_s1_ph_cm2_s,s90_status,"));
        let md = std::fs::read_to_string(lb.join("leaderboard.md")).unwrap();
        assert!(
            md.contains("| F1 | purity | completeness | S90 (S1) |") && md.contains("Tie-breakers")
        );
        let html = std::fs::read_to_string(lb.join("leaderboard.html")).unwrap();
        assert!(html.contains("<table>") && html.contains("team 0"));
        assert!(html.contains("<th>S90 (S1)</th>") && html.contains("<th>purity</th>"));
    }
}

#[test]
fn ranking_primary_metric_and_tie_breakers() {
    use gammabench::challenge::{HalfScore, S90Status, rank_order};
    let base = HalfScore {
        tp: 80,
        fp: 20,
        fn_: 20,
        duplicate: 0,
        purity: 0.8,
        completeness: 0.8,
        f1: 0.8,
        s90_s1: Some(1e-10),
        s90_status: S90Status::Reached,
    };
    let t = "2026-01-01T00:00:00.000Z";
    let later = "2026-01-02T00:00:00.000Z";
    let lt = |a: &HalfScore, b: &HalfScore| rank_order((a, t, 1), (b, t, 2)).is_lt();
    // primary: F1 (at 4 decimals)
    let better_f1 = HalfScore { f1: 0.81, ..base };
    assert!(lt(&better_f1, &base) && !lt(&base, &better_f1));
    let same_shown_f1 = HalfScore {
        f1: 0.800_04,
        s90_s1: Some(2e-10),
        ..base
    };
    assert!(
        lt(&base, &same_shown_f1),
        "equal F1 at 4 decimals: lower S90 wins"
    );
    // S90: lower wins, not reached ranks last
    let not_reached = HalfScore {
        s90_s1: None,
        s90_status: S90Status::NotReached,
        ..base
    };
    assert!(lt(&base, &not_reached));
    let lowest = HalfScore {
        s90_s1: Some(5e-11),
        s90_status: S90Status::ReachedAtLowestBin,
        ..base
    };
    assert!(lt(&lowest, &base));
    // then completeness, then purity
    let more_complete = HalfScore {
        completeness: 0.82,
        purity: 0.78,
        ..base
    };
    assert!(lt(&more_complete, &base));
    let purer = HalfScore {
        purity: 0.81,
        ..base
    };
    assert!(lt(&purer, &base));
    // then the earlier submission, then the smaller id
    assert!(rank_order((&base, t, 9), (&base, later, 1)).is_lt());
    assert!(rank_order((&base, t, 1), (&base, t, 2)).is_lt());
}
