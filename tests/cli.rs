//! The command line end to end: determinism across thread counts, store reuse, and bad
//! configs rejected with located messages, exit code 2 and nothing written.

use std::path::Path;
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gammabench"))
}

fn run(args: &[&str], store: &Path) -> Output {
    bin()
        .args(["--store", store.to_str().unwrap(), "-q"])
        .args(args)
        .output()
        .expect("binary runs")
}

fn smoke() -> String {
    format!("{}/configs/smoke/catalog.toml", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn catalog_is_identical_at_any_thread_count() {
    let d = tempfile::tempdir().unwrap();
    let mut csv = Vec::new();
    for threads in ["1", "2"] {
        let store = d.path().join(format!("store{threads}"));
        let out = d.path().join(format!("out{threads}"));
        let o = run(
            &[
                "--threads",
                threads,
                "catalog",
                "--config",
                &smoke(),
                "--set",
                "catalog.figures=false",
                "--out",
                out.to_str().unwrap(),
            ],
            &store,
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        csv.push(std::fs::read(out.join("catalog.csv")).unwrap());
        assert!(out.join("catalog.xml").exists() && out.join("manifest.json").exists());
    }
    assert_eq!(
        csv[0], csv[1],
        "catalog.csv differs between 1 and 2 threads"
    );
    // A different seed gives a different catalog.
    let out = d.path().join("out_seed");
    let o = run(
        &[
            "catalog",
            "--config",
            &smoke(),
            "--set",
            "seed=8",
            "--set",
            "catalog.figures=false",
            "--out",
            out.to_str().unwrap(),
        ],
        &d.path().join("store1"),
    );
    assert!(o.status.success());
    assert_ne!(std::fs::read(out.join("catalog.csv")).unwrap(), csv[0]);
}

#[test]
fn second_run_reuses_the_store_and_force_recomputes() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("runs");
    let args = [
        "catalog",
        "--config",
        &smoke(),
        "--set",
        "catalog.figures=false",
    ];
    let o = bin()
        .args(["--store", store.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("computed in"));
    let o = bin()
        .args(["--store", store.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("reusing stored output"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = bin()
        .args(["--store", store.to_str().unwrap()])
        .args(args)
        .arg("--force")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stderr).contains("computed in"));
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            std::fs::read_dir(store.join("catalog"))
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path()
                .join("manifest.json"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["stage"], "catalog");
    assert_eq!(manifest["seed"], 7);
    assert!(manifest["files"]["catalog.csv"].as_str().unwrap().len() == 64);
    assert_eq!(manifest["config"]["catalog"]["prior"], "4fgl-dr1");
}

/// Runs a bad config and checks: exit code 2, the expected message, nothing written.
fn rejected(config_text: Option<&str>, extra: &[&str], expect: &[&str]) {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("bad.toml");
    if let Some(t) = config_text {
        std::fs::write(&cfg, t).unwrap();
    }
    let store = d.path().join("runs");
    let out = d.path().join("out");
    let mut args = vec![
        "catalog",
        "--config",
        cfg.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let o = run(&args, &store);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{err}");
    for e in expect {
        assert!(err.contains(e), "expected `{e}` in: {err}");
    }
    assert!(!store.exists(), "store written on bad input");
    assert!(!out.exists(), "output written on bad input");
}

#[test]
fn bad_configs_are_rejected_with_location() {
    rejected(
        Some("seed = 1\n[catalog]\nprior = \"4fgl-dr1\"\nthreshold = 1e-13\n"),
        &[],
        &[
            "bad.toml:4:1: key `catalog.threshold`",
            "unknown field `threshold`",
        ],
    );
    rejected(
        Some("seed = 1\n[catalog]\nthreshold_erg_cm2_s = \"low\"\n"),
        &[],
        &[
            "bad.toml:3:1: key `catalog.threshold_erg_cm2_s`",
            "invalid type",
        ],
    );
    rejected(
        Some("[catalog]\n  threshold_erg_cm2_s = -3.4e-13\n"),
        &[],
        &[
            "bad.toml:2:3: key `catalog.threshold_erg_cm2_s`",
            "must be a positive",
        ],
    );
    rejected(
        Some("seed = \"seven\"\n"),
        &[],
        &["bad.toml:1:1: key `seed`"],
    );
    rejected(
        Some("[catalog\nprior = 1\n"),
        &[],
        &["bad.toml:1:", "TOML syntax"],
    );
    rejected(
        Some("[catalog]\nprior = \"4fgl-dr9\"\n"),
        &[],
        &["bad.toml:2:1: key `catalog.prior`", "unknown variant"],
    );
    rejected(None, &[], &["bad.toml: cannot read config"]);
    rejected(
        Some("seed = 1\n"),
        &["--set", "catalog.threshold_erg_cm2_s=-1"],
        &["--set catalog.threshold_erg_cm2_s=-1"],
    );
    rejected(
        Some("seed = 1\n"),
        &["--set", "nonsense"],
        &["--set nonsense: expected key.path=value"],
    );
}

#[test]
fn grid_axes_expand_into_runs() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("out");
    let o = run(
        &[
            "catalog",
            "--config",
            &smoke(),
            "--set",
            "catalog.figures=false",
            "--set",
            "seed=[1,2]",
            "--set",
            "catalog.prior=[4fgl-dr1,4fgl-dr4]",
            "--out",
            out.to_str().unwrap(),
        ],
        &d.path().join("runs"),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "seed_1_prior_4fgl-dr1",
            "seed_1_prior_4fgl-dr4",
            "seed_2_prior_4fgl-dr1",
            "seed_2_prior_4fgl-dr4"
        ]
    );
    for n in names {
        let cfg = std::fs::read_to_string(out.join(n).join("config.resolved.toml")).unwrap();
        assert!(cfg.contains("luminosity_function = \"flat\""));
    }
}

#[test]
fn corrupted_store_is_detected_and_recomputed() {
    // A bit-flipped stored catalog.csv must not be reused: `verify` names it (exit 3), the
    // next run recomputes the stage (with a warning) and the store is intact again.
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("runs");
    let out = d.path().join("out");
    let args = [
        "catalog",
        "--config",
        &smoke(),
        "--set",
        "catalog.figures=false",
        "--out",
        out.to_str().unwrap(),
    ];
    let o = run(&args, &store);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let good = std::fs::read(out.join("catalog.csv")).unwrap();
    let stage = std::fs::read_dir(store.join("catalog"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .find(|p| p.join("manifest.json").exists())
        .unwrap();
    let ok = run(&["verify"], &store);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // flip one bit in the middle of the stored table
    let path = stage.join("catalog.csv");
    let mut bytes = std::fs::read(&path).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let bad = run(&["verify"], &store);
    assert_eq!(bad.status.code(), Some(3));
    let text = String::from_utf8_lossy(&bad.stdout);
    assert!(
        text.contains("catalog.csv") && text.contains("SHA-256"),
        "{text}"
    );
    // the next run does not trust it: recomputed, identical to the first output
    let o = bin()
        .args(["--store", store.to_str().unwrap()])
        .args(args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = String::from_utf8_lossy(&o.stderr);
    assert!(log.contains("fails verification"), "{log}");
    assert_eq!(std::fs::read(out.join("catalog.csv")).unwrap(), good);
    assert_eq!(std::fs::read(&path).unwrap(), good);
    assert!(run(&["verify"], &store).status.success());
}
