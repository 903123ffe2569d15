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
    let o = kit::build(
        &pd,
        &out,
        &[
            "challenge.secret_seed=987654321",
            "challenge.train_patches=12",
        ],
    );
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
            "baseline.py",
            "dataset.json",
            "diffuse.npy",
            "example_submission.csv",
            "patches.csv",
            "patches.npy",
            "requirements.txt",
            "sample_submission.csv",
            "train_diffuse.npy",
            "train_patches.csv",
            "train_patches.npy",
            "train_truth.csv",
            "validate.py",
        ]
    );
    // no test truth value, seed or test-truth column name anywhere in the public bundle
    // (the training truth is public by design: another sky, its own columns)
    let train_seed = challenge::training_seed(987654321).to_string();
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
            !text.contains(&train_seed),
            "{n} contains the training seed"
        );
        assert!(
            !text.contains("source_id") && !text.contains("snr_c"),
            "{n}"
        );
    }
    // manifest matches
    let man = std::fs::read_to_string(public.join("MANIFEST.sha256")).unwrap();
    assert_eq!(man.lines().count(), names.len() - 1);
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
    let o = kit::build(
        &pd,
        &out2,
        &[
            "challenge.secret_seed=987654321",
            "challenge.train_patches=12",
        ],
    );
    assert!(o.status.success());
    for f in ["patches.npy", "train_patches.npy", "train_truth.csv"] {
        assert_eq!(
            std::fs::read(public.join(f)).unwrap(),
            std::fs::read(out2.join("public").join(f)).unwrap(),
            "{f}"
        );
    }
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
    let o = kit::build(
        &pd,
        &out,
        &[
            "challenge.secret_seed=424242424242",
            "challenge.train_patches=0",
        ],
    );
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

/// The rows of a CSV file as (header, rows of fields).
fn csv_rows(p: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let text = std::fs::read_to_string(p).unwrap();
    let mut lines = text.lines();
    let header = lines
        .next()
        .unwrap()
        .split(',')
        .map(str::to_string)
        .collect();
    let rows = lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect();
    (header, rows)
}

#[test]
fn build_writes_a_labelled_training_set_and_the_diffuse_template() {
    let d = tempfile::tempdir().unwrap();
    let pd = d.path().join("patches");
    std::fs::create_dir_all(&pd).unwrap();
    patches_dir(&pd);
    let secret = "555000111222";
    let o = kit::build(
        &pd,
        &d.path().join("a"),
        &[
            &format!("challenge.secret_seed={secret}"),
            "challenge.train_patches=16",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = d.path().join("a/public");
    // the diffuse template is the emission model's expected diffuse counts of each test patch
    let diffuse = read_npy(&public.join("diffuse.npy")).unwrap();
    let model = read_npy(&pd.join("patches_diffuse.npy")).unwrap();
    assert_eq!(diffuse.shape, vec![6, 64, 64, 5]);
    assert_eq!(diffuse.data, model.data);
    // training patches: Poisson counts in the test layout, their diffuse template, a list
    let counts = read_npy(&public.join("train_patches.npy")).unwrap();
    let tdiff = read_npy(&public.join("train_diffuse.npy")).unwrap();
    assert_eq!(counts.shape, vec![16, 64, 64, 5]);
    assert_eq!(tdiff.shape, counts.shape);
    assert!(counts.data.iter().all(|v| *v >= 0.0 && v.fract() == 0.0));
    assert!(tdiff.data.iter().all(|v| *v > 0.0 && v.is_finite()));
    // more counts than the diffuse template alone: the sources are in the counts
    let sum = |a: &Npy| a.data.iter().map(|v| *v as f64).sum::<f64>();
    assert!(
        sum(&counts) > sum(&tdiff),
        "{} vs {}",
        sum(&counts),
        sum(&tdiff)
    );
    let (h, list) = csv_rows(&public.join("train_patches.csv"));
    assert_eq!(h, ["index", "patch_id", "glon_deg", "glat_deg"]);
    assert_eq!(list.len(), 16);
    // labelled: every source of every training patch, inside its patch, with class and flux
    let (h, truth) = csv_rows(&public.join("train_truth.csv"));
    assert_eq!(h, challenge::TRAIN_TRUTH_COLUMNS);
    assert!(truth.len() >= 16, "{} training sources", truth.len());
    for r in &truth {
        let pid: usize = r[0].parse().unwrap();
        assert!(pid < 16, "{r:?}");
        for v in &r[1..3] {
            let v: f64 = v.parse().unwrap();
            assert!((-0.5..63.5).contains(&v), "{r:?}");
        }
        assert!(r[5] == "AGN" || r[5] == "PSR", "{r:?}");
        assert!(r[6].parse::<f64>().unwrap() > 0.0, "{r:?}");
    }
    // the training sky is another realisation: no source position of the test truth in it
    let (_, test_truth) = csv_rows(&pd.join("truth.csv"));
    let train_pos: std::collections::HashSet<(&str, &str)> = truth
        .iter()
        .map(|r| (r[3].as_str(), r[4].as_str()))
        .collect();
    for r in &test_truth {
        assert!(
            !train_pos.contains(&(r[5].as_str(), r[6].as_str())),
            "{r:?}"
        );
    }
    // dataset.json describes both
    let ds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(public.join("dataset.json")).unwrap())
            .unwrap();
    assert_eq!(ds["diffuse_template"]["file"], "diffuse.npy");
    assert_eq!(ds["train"]["n_patches"], 16);
    assert_eq!(ds["train"]["n_sources"], truth.len());
    assert_eq!(ds["train"]["truth"], "train_truth.csv");
    // the private seeds record how it was made; the public bundle does not
    let seeds = std::fs::read_to_string(d.path().join("a/private/seeds.json")).unwrap();
    let train_seed = challenge::training_seed(secret.parse().unwrap());
    assert!(
        seeds.contains(&format!("\"sky_seed\": {train_seed}")),
        "{seeds}"
    );
    // another secret: another training sky; train_patches = 0: none
    let o = kit::build(
        &pd,
        &d.path().join("b"),
        &[
            "challenge.secret_seed=555000111223",
            "challenge.train_patches=16",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_ne!(
        std::fs::read(public.join("train_truth.csv")).unwrap(),
        std::fs::read(d.path().join("b/public/train_truth.csv")).unwrap()
    );
    let o = kit::build(
        &pd,
        &d.path().join("c"),
        &[
            "challenge.secret_seed=555000111223",
            "challenge.train_patches=0",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(!d.path().join("c/public/train_truth.csv").exists());
    assert!(d.path().join("c/public/diffuse.npy").exists());
    // the scratch store of the training sky is gone
    for x in ["a", "b", "c"] {
        assert!(!d.path().join(x).join(".train-sky").exists());
    }
}

/// Runs a validator; (exit code, stdout, stderr).
fn run_validator(mut c: Command) -> (Option<i32>, String, String) {
    let o = c.output().unwrap();
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn python_validator_gives_the_same_messages_as_challenge_validate() {
    let Some(python) =
        kit::python3("python_validator_gives_the_same_messages_as_challenge_validate")
    else {
        return;
    };
    let d = tempfile::tempdir().unwrap();
    let patches = fixtures().join("challenge_patches.csv");
    // every fixture, plus cases for number syntax, number formatting, quoting, line ends,
    // the published format, the problem cap and the limits
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures().join("bad_submissions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "csv"))
        .collect();
    files.push(fixtures().join("valid_bom_crlf.csv"));
    files.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("challenge/example_submission.csv"));
    let mut many = String::from("patch_id,x_pix,y_pix\n");
    for i in 0..250 {
        many.push_str(&format!("7,{i},1\n"));
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "numbers.csv",
            b"patch_id,x_pix,y_pix,score\n0,1e20,2,1\n0,-0.75,1,1\n0,63.5,1,1\n0,1,2.5e2,1\n\
              0,1_0,2,1\n0,+5,2,1\n0,.5,2,1\n0,5.,3,1\n0, 7 ,2,1\n0,infinity,2,1\n0,-NaN,2,1\n\
              1e0,3,3,1\n2.5,3,3,1\n1e16,3,3,1\n-0,4,4,1\n0,0.1,0.2,inf\n0,1e-7,3,x\n0,e5,3,1\n\
              0,.,3,1\n0,1e,3,1\n0,\xd9\xa1,3,1\n"
                .to_vec(),
        ),
        (
            "probabilities.csv",
            b"patch_id,x_pix,y_pix,p_AGN,p_PSR,p_FAKE,flux_1000_ph_cm2_s\n\
              0,1,1,0.1,0.2,0.6,1e-9\n0,2,2,-0.5,1.5,0,0\n0,3,3,0.3333333,0.3333333,0.3333333,-1e-12\n\
              0,4,4,0.1,0.2,0.7000001,0\n"
                .to_vec(),
        ),
        (
            "quoting.csv",
            b"\"patch_id\",\"x_pix\",y_pix,detector\n\"0\",\"1.5\",2,\"a, b\"\n0,\"1,5\",2,x\n\
              0,\"3\"\"\",2,x\n0,4,5,\"multi\nline\"\n0,4,5,\"dup\"\n"
                .to_vec(),
        ),
        (
            "line_ends.csv",
            b"patch_id,x_pix,y_pix\r0,1,1\r\r0,1,1\n   \n0,99,1\r\n\r\n0,2,x\n".to_vec(),
        ),
        (
            "sky.csv",
            b"patch_id,x_pix,y_pix,glon_deg,glat_deg\n0,31.5,31.5,45,0\n0,31.5,31.5,45.5,0.3\n\
              2,0,0,360,91\n3,63,63,-1,-90\n"
                .to_vec(),
        ),
        (
            "published.csv",
            b"image_nr,centroid_y,centroid_x,class_id,probability,lon_c,lat_c,lon_ps,lat_ps,catalog\n\
              0,31.5,31.5,0,0.5,45,0,45,0,1\n0,31.5,31.5,1.5,1.2,46,0,-400,0,1\n\
              9,31.5,31.5,-1,0.5,10,20,10,20,1\n9,31.5,31.5,0,0.5,10,20,12,20,1\n"
                .to_vec(),
        ),
        (
            "columns.csv",
            b" patch_id ,x_pix,y_pix,glon_deg,p_AGN,x_pix,Score\n".to_vec(),
        ),
        ("header_only.csv", b"patch_id,x_pix,y_pix\n".to_vec()),
        ("blank.csv", b"\n\n  \n".to_vec()),
        ("many.csv", many.into_bytes()),
    ];
    for (name, bytes) in &cases {
        let p = d.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        files.push(p);
    }
    // a gzip-compressed submission is read decompressed by both
    let gz = d.path().join("gzipped.csv");
    {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(b"patch_id,x_pix,y_pix\n0,1,1\n0,99,1\n")
            .unwrap();
        std::fs::write(&gz, e.finish().unwrap()).unwrap();
    }
    files.push(gz);
    // a file that is not there: the same error line
    files.push(d.path().join("missing.csv"));
    let mut checked = 0;
    let mut invalid = 0;
    for f in &files {
        for limits in [
            &[][..],
            &["challenge.max_rows=3"],
            &["challenge.max_file_bytes=64"],
        ] {
            let mut rust = Command::new(BIN);
            rust.args(["-q", "challenge", "validate"])
                .arg(f)
                .arg("--patches")
                .arg(&patches);
            let mut py = Command::new(&python);
            py.arg(kit::starter("validate.py"))
                .arg(f)
                .arg("--patches")
                .arg(&patches);
            for l in limits {
                rust.args(["--set", l]);
                let (k, v) = l.split_once('=').unwrap();
                py.arg(format!("--{}", k["challenge.".len()..].replace('_', "-")))
                    .arg(v);
            }
            let want = run_validator(rust);
            let got = run_validator(py);
            assert_eq!(got, want, "{} with {limits:?}", f.display());
            checked += 1;
            invalid += usize::from(want.0 == Some(2));
        }
    }
    assert!(invalid > files.len(), "{invalid} invalid runs");
    println!(
        "validate.py: identical output to `challenge validate` on {checked} runs ({invalid} invalid)"
    );
}

#[test]
fn baseline_numpy_and_standard_library_paths_write_the_same_submission() {
    let Some(python) =
        kit::python3("baseline_numpy_and_standard_library_paths_write_the_same_submission")
    else {
        return;
    };
    let has_numpy = Command::new(&python)
        .args(["-c", "import numpy"])
        .output()
        .is_ok_and(|o| o.status.success());
    let k = kit::Kit::with_training(6);
    let run = |out: &Path, extra: &[&str]| {
        let o = Command::new(&python)
            .arg(kit::starter("baseline.py"))
            .arg("--bundle")
            .arg(k.public())
            .arg("--out")
            .arg(out)
            .args(extra)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).into_owned()
    };
    let std_out = k.dir.path().join("std.csv");
    let log = run(&std_out, &["--no-numpy"]);
    assert!(log.contains("standard-library arithmetic"), "{log}");
    assert!(log.contains("chosen on the training set"), "{log}");
    // the baseline's file is a valid submission
    let o = Command::new(BIN)
        .args(["-q", "challenge", "validate"])
        .arg(&std_out)
        .arg("--patches")
        .arg(k.public().join("patches.csv"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    if !has_numpy {
        eprintln!(
            "SKIPPED the numpy half of baseline_numpy_and_standard_library_paths_write_the_same_submission: \
             no numpy (pip install -r challenge/starter/requirements.txt)"
        );
        return;
    }
    let np_out = k.dir.path().join("np.csv");
    let log = run(&np_out, &[]);
    assert!(log.contains("numpy arithmetic"), "{log}");
    assert_eq!(
        std::fs::read_to_string(&np_out).unwrap(),
        std::fs::read_to_string(&std_out).unwrap()
    );
}
