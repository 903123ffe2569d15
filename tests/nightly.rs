//! The nightly benchmark's history and the cluster path, end to end on the smoke grid:
//! `nightly` appends one record per night and judges against the rolling window; `run
//! --emit slurm` writes the cluster's settings; two workers racing for one stage compute it
//! once.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn smoke() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke/pipeline.toml")
}

fn gb(store: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_gammabench"))
        .arg("--store")
        .arg(store)
        .args(["--threads", "2"])
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn nightly_appends_history_and_judges_against_the_window() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("runs");
    let res = d.path().join("nightly");
    let cfg = smoke();
    // the plain-text history (the default `history.jsonl.gz` is tested in report::history)
    let hist = res.join("history.jsonl");
    let base = [
        "nightly",
        "--config",
        cfg.to_str().unwrap(),
        "--baseline",
        res.to_str().unwrap(),
        "--history",
        hist.to_str().unwrap(),
    ];
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect::<Vec<_>>()
    };
    let run = |extra: &[&str]| {
        let a = with(extra);
        gb(&store, &a.iter().map(|s| s.as_str()).collect::<Vec<_>>())
    };
    // night 1: the baseline is written and the night recorded
    let o = run(&["--update-baseline"]);
    assert!(o.status.success(), "{}", text(&o));
    let lines = |p: &Path| std::fs::read_to_string(p).unwrap().lines().count();
    assert_eq!(lines(&hist), 1);
    assert!(res.join("baseline.json").exists());
    assert!(res.join("trend.html").exists());
    // night 2: everything cached, judged against night 1 (the window), nothing drifts
    let o = run(&[]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(lines(&hist), 2);
    let md = std::fs::read_to_string(res.join("latest/drift.md")).unwrap();
    assert!(md.contains("median of the last 1 night"), "{md}");
    assert!(md.contains("0 failing"), "{md}");
    let first: serde_json::Value = serde_json::from_str(
        std::fs::read_to_string(&hist)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    for k in [
        "commit",
        "date_utc",
        "crate_version",
        "data_version",
        "code_version",
    ] {
        assert!(first[k].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    }
    let purity = first["metrics"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.starts_with("score/") && k.ends_with("/purity"))
        .unwrap()
        .clone();
    // a night with a much better purity: tonight's (unchanged) value is a regression
    // against a window of that night alone, exit 3; the figure of the metric is drawn
    let mut better = first.clone();
    let p = better["metrics"][&purity].as_f64().unwrap();
    better["metrics"][&purity] = serde_json::json!(p + 0.5);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&hist)
        .unwrap();
    use std::io::Write;
    writeln!(f, "{better}").unwrap();
    drop(f);
    let o = run(&["--window", "1"]);
    assert_eq!(o.status.code(), Some(3), "{}", text(&o));
    let md = std::fs::read_to_string(res.join("latest/drift.md")).unwrap();
    assert!(md.contains(&purity), "{md}");
    assert_eq!(lines(&hist), 4, "a regressed night is recorded too");
    let pngs = std::fs::read_dir(res.join("trend"))
        .unwrap()
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
        .count();
    assert!(pngs >= 4, "{pngs} trend figures");
    // a truncated last line: refused with file and line before the grid runs; nothing lost
    let before = std::fs::read_to_string(&hist).unwrap();
    std::fs::write(&hist, format!("{before}{{\"commit\":")).unwrap();
    let o = run(&[]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("history.jsonl"), "{}", text(&o));
    assert!(text(&o).contains("line 5"), "{}", text(&o));
    assert!(std::fs::read_to_string(&hist).unwrap().starts_with(&before));
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .to_string()
}

#[cfg(target_os = "linux")]
#[test]
fn emitted_scripts_carry_the_cluster_settings_and_racing_workers_compute_once() {
    let d = tempfile::tempdir().unwrap();
    let store = d.path().join("runs");
    let jobs = d.path().join("jobs");
    let cfg = smoke();
    let cfg_s = cfg.to_str().unwrap();
    let o = gb(
        &store,
        &[
            "run",
            cfg_s,
            "--emit",
            "slurm",
            jobs.to_str().unwrap(),
            "--partition",
            "debug",
            "--time",
            "01:00:00",
            "--gpus-per-task",
            "1",
            "--setup",
            "module load cuda/12",
        ],
    );
    assert!(o.status.success(), "{}", text(&o));
    let l0 = std::fs::read_to_string(jobs.join("level_0.sbatch")).unwrap();
    assert!(l0.contains("#SBATCH --partition=debug\n"), "{l0}");
    assert!(l0.contains("#SBATCH --time=01:00:00\n"), "{l0}");
    assert!(l0.contains("#SBATCH --mem=32G\n"), "{l0}");
    assert!(!l0.contains("gpus"), "only train arrays get GPUs: {l0}");
    assert!(l0.contains("\nmodule load cuda/12\n"), "{l0}");
    let gpu: Vec<String> = std::fs::read_dir(&jobs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.ends_with("_gpu.sbatch"))
        .collect();
    // the smoke grid trains at two levels (its training sky's patches, then the network)
    assert!(!gpu.is_empty(), "train arrays: {gpu:?}");
    for f in &gpu {
        let g = std::fs::read_to_string(jobs.join(f)).unwrap();
        assert!(g.contains("#SBATCH --gpus-per-task=1\n"), "{g}");
        assert!(
            g.contains(&format!("{}.txt", f.trim_end_matches(".sbatch"))),
            "{g}"
        );
    }
    let submit = std::fs::read_to_string(jobs.join("submit.sh")).unwrap();
    assert!(submit.contains("--dependency=afterok:$prev"), "{submit}");
    // flags that only make sense with --emit are refused without it
    let o = gb(&store, &["run", cfg_s, "--partition", "debug"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));

    // the first catalog stage: full hash from the emitted list, stage from the plan
    let plan = text(&gb(&store, &["run", cfg_s, "--dry-run"]));
    let hashes = std::fs::read_to_string(jobs.join("level_0.txt")).unwrap();
    let hash = hashes
        .lines()
        .find(|h| {
            plan.lines()
                .any(|l| l.contains(" catalog ") && l.contains(&h[..12]))
        })
        .unwrap()
        .to_string();
    // a claim held by a live process of this host: both workers must wait for it
    let stage_dir = store.join("catalog");
    std::fs::create_dir_all(&stage_dir).unwrap();
    let mut holder = Command::new("sleep").arg("60").spawn().unwrap();
    let claim = stage_dir.join(format!(".claim-{hash}"));
    std::fs::write(&claim, format!("{} {} 0\n", host_name(), holder.id())).unwrap();
    let worker = || {
        Command::new(env!("CARGO_BIN_EXE_gammabench"))
            .arg("--store")
            .arg(&store)
            .args(["--threads", "1", "run", cfg_s, "--only", &hash])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (mut a, mut b) = (worker(), worker());
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(a.try_wait().unwrap().is_none() && b.try_wait().unwrap().is_none());
    assert!(
        !stage_dir.join(&hash).exists(),
        "nobody computes under a live claim"
    );
    // the holder dies: its claim is stale, one worker takes it over and computes, the
    // other waits for that one and reuses its output
    holder.kill().unwrap();
    holder.wait().unwrap();
    let (oa, ob) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(oa.status.success(), "{}", text(&oa));
    assert!(ob.status.success(), "{}", text(&ob));
    let logs = [text(&oa), text(&ob)];
    let computed = logs.iter().filter(|t| t.contains(": computed")).count();
    let cached = logs.iter().filter(|t| t.contains(": cached")).count();
    assert_eq!((computed, cached), (1, 1), "{logs:?}");
    assert!(logs.iter().any(|t| t.contains("stale claim")), "{logs:?}");
    assert!(stage_dir.join(&hash).join("manifest.json").exists());
    let left: Vec<String> = std::fs::read_dir(&stage_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "claims or temporaries left: {left:?}");
    let o = gb(&store, &["verify"]);
    assert!(o.status.success(), "{}", text(&o));
}
