//! The experiment runner: plans, hashes, caching, resumption and Slurm emission.

use gammabench::config;
use gammabench::pipeline;
use gammabench::store::Store;
use std::process::Command;

fn plan_of(text: &str, sets: &[&str]) -> pipeline::Plan {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    pipeline::build(&config::load_text("x.toml", text, &sets).unwrap()).unwrap()
}

fn hashes(p: &pipeline::Plan) -> Vec<String> {
    let mut h: Vec<String> = p.nodes().iter().map(|n| n.hash()).collect();
    h.sort();
    h
}

#[test]
fn grid_counts_and_key_order() {
    let a = "seed = 1\n[catalog]\npreset = [\"F0\", \"F1\"]\nprior = [\"4fgl-dr1\", \"4fgl-dr4\"]\nfigures = false\n";
    let b = "[catalog]\nfigures = false\nprior = [\"4fgl-dr1\", \"4fgl-dr4\"]\npreset = [\"F0\", \"F1\"]\n\n[energy]\nbin_edges_gev = [0.5, 1.0, 2.0, 7.0, 20.0, 200.0]\n";
    let pa = plan_of(a, &[]);
    assert_eq!(pa.len(), 4);
    // Key order, explicit defaults and the position of `seed` do not change any hash.
    let pb = plan_of(&format!("seed = 1\n{b}"), &[]);
    assert_eq!(hashes(&pa), hashes(&pb));
    // Changing one key changes exactly the stages that depend on it.
    let pc = plan_of(a, &["catalog.flat.noise=[0.8, 1.2]"]);
    assert_eq!(pc.len(), 4);
    let common: Vec<_> = hashes(&pa)
        .into_iter()
        .filter(|h| hashes(&pc).contains(h))
        .collect();
    assert!(
        common.is_empty(),
        "every catalog depends on catalog.flat.noise"
    );
    // A key of one grid point only changes that point's stage.
    let pe = plan_of(a, &["catalog.preset=[F0, F2]"]);
    let shared: Vec<_> = hashes(&pa)
        .into_iter()
        .filter(|h| hashes(&pe).contains(h))
        .collect();
    assert_eq!(shared.len(), 2, "the two F0 catalogs are unchanged");
}

#[test]
fn identical_stages_are_planned_once() {
    // Two grid points that resolve to the same catalog (preset F0 and its explicit spelling).
    let p = plan_of(
        "seed = 1\n[catalog]\nfigures = false\nthreshold_erg_cm2_s = [3.4e-13, 3.4e-13]\n",
        &[],
    );
    assert_eq!(p.len(), 1);
    assert!(p.nodes()[0].label.contains("threshold_erg_cm2_s"));
}

#[test]
fn execute_caches_and_runs_in_parallel() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path());
    let p = plan_of(
        "[catalog]\nfigures = false\nprior = \"4fgl-dr1\"\n",
        &["seed=[1,2,3]"],
    );
    assert_eq!(p.len(), 3);
    assert!(p.describe(&store).iter().all(|r| !r.cached));
    let outs = p
        .execute(&store, 2, false, &indicatif::ProgressBar::hidden())
        .unwrap();
    assert_eq!(outs.len(), 3);
    assert!(outs.values().all(|o| !o.reused));
    assert!(p.describe(&store).iter().all(|r| r.cached));
    let again = p
        .execute(&store, 2, false, &indicatif::ProgressBar::hidden())
        .unwrap();
    assert!(again.values().all(|o| o.reused), "second run does nothing");
    // --only on one hash
    let h = p.nodes()[1].hash();
    assert!(p.execute_one(&store, &h[..10], false).unwrap().reused);
    assert!(p.execute_one(&store, "deadbeefdeadbeef", false).is_err());
}

#[test]
fn killed_run_resumes_without_recomputing() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("grid.toml");
    // Three F1 catalogs: long enough to kill the run in the middle.
    std::fs::write(
        &cfg,
        "[catalog]\npreset = \"F1\"\nprior = \"4fgl-dr4\"\nfigures = true\n",
    )
    .unwrap();
    let store = d.path().join("runs");
    let bin = env!("CARGO_BIN_EXE_gammabench");
    let args = |extra: &[&str]| {
        let mut v = vec![
            "-q",
            "--store",
            store.to_str().unwrap(),
            "--threads",
            "1",
            "run",
            cfg.to_str().unwrap(),
            "--set",
            "seed=[1,2,3,4,5,6]",
        ];
        v.extend_from_slice(extra);
        v.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let mut child = Command::new(bin).args(args(&[])).spawn().unwrap();
    // Wait for the first stage to land, then kill.
    let t0 = std::time::Instant::now();
    loop {
        let done = std::fs::read_dir(store.join("catalog"))
            .map(|r| {
                r.filter_map(|e| e.ok())
                    .filter(|e| e.path().join("manifest.json").exists())
                    .count()
            })
            .unwrap_or(0);
        if done >= 1 || t0.elapsed().as_secs() > 120 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let finished: Vec<String> = std::fs::read_dir(store.join("catalog"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("manifest.json").exists())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    assert!(
        !finished.is_empty() && finished.len() < 6,
        "killed after {} stages",
        finished.len()
    );
    let mtimes: Vec<_> = finished
        .iter()
        .map(|h| {
            std::fs::metadata(store.join("catalog").join(h).join("manifest.json"))
                .unwrap()
                .modified()
                .unwrap()
        })
        .collect();
    // Resume: finishes the rest, leaves finished stages untouched.
    let o = Command::new(bin).args(args(&[])).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan = Command::new(bin)
        .args(args(&["--dry-run"]))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plan.stdout);
    assert!(text.starts_with("6 stages, 6 cached, 0 to run"), "{text}");
    // the killed run's temporary directory is gone after the next run
    let left: Vec<String> = std::fs::read_dir(store.join("catalog"))
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().into_string().unwrap())
        .filter(|n| n.starts_with(".tmp-") || n.starts_with(".old-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    for (h, m) in finished.iter().zip(mtimes) {
        let now = std::fs::metadata(store.join("catalog").join(h).join("manifest.json"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(now, m, "finished stage {h} was recomputed");
    }
    // Every stored stage is complete: its files match the manifest hashes.
    for e in std::fs::read_dir(store.join("catalog"))
        .unwrap()
        .filter_map(|e| e.ok())
    {
        let dir = e.path();
        if !dir.join("manifest.json").exists() {
            continue; // a temporary directory of the killed run
        }
        let m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
        for (file, sha) in m["files"].as_object().unwrap() {
            assert_eq!(
                gammabench::formats::sha256_file(&dir.join(file)).unwrap(),
                sha.as_str().unwrap()
            );
        }
    }
}

#[test]
fn slurm_scripts_have_one_array_per_level() {
    let d = tempfile::tempdir().unwrap();
    let store = Store::new(d.path().join("runs"));
    let p = plan_of("[catalog]\nfigures = false\n", &["seed=[1,2,3]"]);
    let opts = pipeline::slurm::SlurmOptions {
        run_args: vec![
            "configs/x.toml".into(),
            "--set".into(),
            "seed=[1,2,3]".into(),
        ],
        binary: "/opt/gammabench".into(),
        cpus_per_task: 4,
        time_limit: "01:00:00".into(),
        mem: "8G".into(),
        partition: None,
        account: None,
        gpus_per_task: None,
        gpu_stages: vec!["train".into()],
        setup: None,
        extra: vec!["--partition=cpu".into()],
    };
    let out = d.path().join("slurm");
    assert_eq!(pipeline::slurm::emit(&p, &store, &out, &opts).unwrap(), 1);
    let sb = std::fs::read_to_string(out.join("level_0.sbatch")).unwrap();
    assert!(sb.contains("#SBATCH --array=0-2"));
    assert!(sb.contains("#SBATCH --cpus-per-task=4") && sb.contains("#SBATCH --partition=cpu"));
    assert!(
        sb.contains("run configs/x.toml --set seed=[1,2,3] --only \"$HASH\""),
        "{sb}"
    );
    let list = std::fs::read_to_string(out.join("level_0.txt")).unwrap();
    assert_eq!(list.lines().count(), 3);
    for n in p.nodes() {
        assert!(list.contains(&n.hash()));
    }
    let submit = std::fs::read_to_string(out.join("submit.sh")).unwrap();
    assert!(
        submit.contains("sbatch --parsable ${prev:+--dependency=afterok:$prev} level_0.sbatch")
    );
}

#[test]
fn nightly_flags_an_injected_regression() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("ci.toml");
    std::fs::write(
        &cfg,
        "[catalog]\nprior = \"4fgl-dr1\"\nfigures = false\n[[nightly.rules]]\npattern = \"wall_time_s\"\ndirection = \"lower_is_better\"\nrel_tol = 100.0\nabs_tol = 100.0\n",
    )
    .unwrap();
    let base = d.path().join("baseline");
    let bin = env!("CARGO_BIN_EXE_gammabench");
    let run = |extra: &[&str]| {
        Command::new(bin)
            .args([
                "-q",
                "--store",
                d.path().join("runs").to_str().unwrap(),
                "nightly",
                "--config",
                cfg.to_str().unwrap(),
            ])
            .args(["--baseline", base.to_str().unwrap()])
            .args(extra)
            .output()
            .unwrap()
    };
    assert!(run(&["--update-baseline"]).status.success());
    let o = run(&[]);
    assert!(
        o.status.success(),
        "unchanged run passes: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Inject a regression into the baseline: the catalog had more AGN before.
    let path = base.join("baseline.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let key = v["metrics"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.ends_with("/n_agn"))
        .unwrap()
        .clone();
    let n = v["metrics"][&key].as_f64().unwrap();
    v["metrics"][&key] = serde_json::json!(n + 1.0);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
    // judged against the baseline file, not the history's window (see tests/nightly.rs)
    let o = run(&["--no-window"]);
    assert_eq!(
        o.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let md = std::fs::read_to_string(base.join("latest/drift.md")).unwrap();
    assert!(md.contains("| changed |") && md.contains("n_agn"), "{md}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(base.join("latest/drift.json")).unwrap()).unwrap();
    assert_eq!(json["n_failures"], 1);
}

#[test]
fn report_is_built_from_manifests() {
    let d = tempfile::tempdir().unwrap();
    let cfg = d.path().join("grid.toml");
    std::fs::write(
        &cfg,
        "[catalog]\nprior = \"4fgl-dr1\"\npreset = [\"F0\", \"F1\"]\n",
    )
    .unwrap();
    let bin = env!("CARGO_BIN_EXE_gammabench");
    let store = d.path().join("runs");
    let out = d.path().join("results/smoke");
    let report = || {
        Command::new(bin)
            .args([
                "-q",
                "--store",
                store.to_str().unwrap(),
                "report",
                cfg.to_str().unwrap(),
                "--out",
                out.to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    // Nothing run yet: the report refuses and names what is missing.
    let o = report();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not in the store"));
    let o = Command::new(bin)
        .args([
            "-q",
            "--store",
            store.to_str().unwrap(),
            "run",
            cfg.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success());
    let o = report();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let csv = std::fs::read_to_string(out.join("leaderboard_catalog.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3);
    assert!(csv.lines().next().unwrap().contains("n_agn"));
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(
        html.contains("<table>")
            && html.contains("figures/catalog/")
            && html.contains("dnde_eflux")
    );
    for line in html.lines().filter(|l| l.contains("<img src=")) {
        let src = line
            .split("<img src=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert!(out.join(src).exists(), "broken image link {src}");
    }
}

fn smoke_pipeline(sets: &[&str]) -> pipeline::Plan {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke/pipeline.toml");
    pipeline::build(&config::load(Some(&path), &sets).unwrap()).unwrap()
}

fn by_stage(p: &pipeline::Plan) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut m: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for n in p.nodes() {
        m.entry(n.stage.clone()).or_default().push(n.hash());
    }
    m
}

#[test]
fn detection_grid_plans_every_stage_once() {
    let p = smoke_pipeline(&[]);
    let m = by_stage(&p);
    let count = |s: &str| m.get(s).map(Vec::len).unwrap_or(0);
    // One F0 catalog (test skies and the training sky's catalog differ by seed: 2), two
    // diffuse maps (B1, B2), three skies (F0-B1, F0-B2, training F0-B1), three patch sets,
    // two trainings (the segmentation U-Net; the TS baseline's record), 2 skies x 2
    // detectors detect and score stages.
    assert_eq!(count("catalog"), 2);
    assert_eq!(count("diffuse"), 2);
    assert_eq!(count("sky"), 3);
    assert_eq!(count("patches"), 3);
    assert_eq!(count("train"), 2);
    // the U-Net's maps of each test sky (the TS baseline runs no network)
    assert_eq!(count("infer"), 2);
    assert_eq!(count("detect"), 4);
    assert_eq!(count("score"), 4);
    // The TS baseline's background is the B1 model even on the B2 sky: that detect stage
    // depends on the B1 diffuse map, which the B1 sky's chain already plans.
    let b1_diffuse = p
        .nodes()
        .iter()
        .find(|n| n.stage == "diffuse" && n.label == "B1")
        .unwrap()
        .hash();
    let ts_b2: Vec<_> = p
        .nodes()
        .iter()
        .filter(|n| n.stage == "detect" && n.label.contains("B2") && n.label.contains("ts"))
        .collect();
    assert_eq!(
        ts_b2.len(),
        1,
        "{:?}",
        p.nodes().iter().map(|n| &n.label).collect::<Vec<_>>()
    );
    assert!(ts_b2[0].deps.contains(&b1_diffuse));
    assert_eq!(ts_b2[0].key.inputs["background_diffuse"], b1_diffuse);
    // Dependencies come before their dependents and every level is consistent.
    let levels = p.levels();
    for (i, n) in p.nodes().iter().enumerate() {
        for d in &n.deps {
            let j = p.nodes().iter().position(|x| &x.hash() == d).unwrap();
            assert!(j < i && levels[j] < levels[i]);
        }
    }
}

#[test]
fn a_changed_key_changes_only_the_stages_downstream_of_it() {
    let base = by_stage(&smoke_pipeline(&[]));
    let changed = |sets: &[&str]| {
        let m = by_stage(&smoke_pipeline(sets));
        let mut out: Vec<(String, usize)> = m
            .iter()
            .map(|(s, hs)| {
                let old = &base[s];
                (s.clone(), hs.iter().filter(|h| !old.contains(h)).count())
            })
            .filter(|(_, k)| *k > 0)
            .collect();
        out.sort();
        out
    };
    // A head hyperparameter: the two UNEK detect and score stages, not the shared network.
    assert_eq!(
        changed(&["detect.unek.k_max=7"]),
        vec![("detect".to_string(), 2), ("score".to_string(), 2)]
    );
    // The match radius: only the four score stages.
    assert_eq!(
        changed(&["score.match_radius_deg=0.25"]),
        vec![("score".to_string(), 4)]
    );
    // The TS background model: only the TS stage of the B2 sky (on B1 the model is the sky's
    // own either way) and its score.
    assert_eq!(
        changed(&["detect.ts.background_iem=\"\""]),
        vec![("detect".to_string(), 1), ("score".to_string(), 1)]
    );
    // The training-set size: its patches, the U-Net, its maps of the two test skies and the
    // UNEK detections downstream; the test skies and the TS baseline are untouched.
    assert_eq!(
        changed(&["train.data.n_patches=20"]),
        vec![
            ("detect".to_string(), 2),
            ("infer".to_string(), 2),
            ("patches".to_string(), 1),
            ("score".to_string(), 2),
            ("train".to_string(), 1)
        ]
    );
}

#[test]
fn smoke_detection_grid_runs_caches_and_publishes_leaderboards() {
    let d = tempfile::tempdir().unwrap();
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke/pipeline.toml");
    let bin = env!("CARGO_BIN_EXE_gammabench");
    let store = d.path().join("runs");
    let out = d.path().join("results/smoke");
    let run = || {
        Command::new(bin)
            .args([
                "--store",
                store.to_str().unwrap(),
                "run",
                cfg.to_str().unwrap(),
                "--jobs",
                "2",
            ])
            .output()
            .unwrap()
    };
    let o = run();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let log = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(log.contains("22 stages: 22 computed, 0 cached"), "{log}");
    let o = run();
    let log = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(log.contains("22 stages: 0 computed, 22 cached"), "{log}");
    let o = Command::new(bin)
        .args([
            "-q",
            "--store",
            store.to_str().unwrap(),
            "report",
            cfg.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let det = std::fs::read_to_string(out.join("leaderboard_detection.csv")).unwrap();
    let rows: Vec<&str> = det.lines().collect();
    assert_eq!(rows.len(), 5, "{det}");
    assert!(rows[0].starts_with("preset,iem,detector,trained on,sources,detections,purity"));
    // Rows are sorted by preset, emission model, detector; the TS baseline finds the bright
    // smoke sources on both skies (completeness well above zero); with its B1 background model
    // on the B2 sky (10-20 % more diffuse emission than B1 since the calibration) the
    // mismatch costs purity, as in the paper's robustness test, so purity is asserted on B1.
    assert!(rows[1].starts_with("F0,B1,ts,none,"));
    assert!(rows[2].starts_with("F0,B1,unek,F0-B1,"));
    assert!(rows[3].starts_with("F0,B2,ts,none,"));
    for (k, r) in [rows[1], rows[3]].into_iter().enumerate() {
        let f: Vec<&str> = r.split(',').collect();
        let (p, c): (f64, f64) = (f[6].parse().unwrap(), f[7].parse().unwrap());
        assert!(c > 0.2 && (k == 1 || p > 0.2), "{r}");
    }
    let rob = std::fs::read_to_string(out.join("leaderboard_robustness.csv")).unwrap();
    assert_eq!(rob.lines().count(), 3, "{rob}");
    assert!(
        rob.lines()
            .next()
            .unwrap()
            .contains("B1 purity,B1 completeness,B1 S90(S1),B2 purity")
    );
    assert!(
        out.join("figures/leaderboards/purity_completeness_S1_by_sky.png")
            .exists()
    );
    assert!(
        out.join("figures/leaderboards/example_patches.png")
            .exists()
    );
    let html = std::fs::read_to_string(out.join("index.html")).unwrap();
    assert!(html.contains("detection leaderboard") && html.contains("robustness"));
    // `reproduce` re-scores the stored detections: identical numbers, exit 0 ...
    let reproduce = || {
        Command::new(bin)
            .args([
                "-q",
                "--store",
                store.to_str().unwrap(),
                "reproduce",
                out.join("manifest.json").to_str().unwrap(),
            ])
            .output()
            .unwrap()
    };
    let o = reproduce();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("reproduce.md")).unwrap();
    assert!(
        md.contains("4 stages re-scored") && md.contains(" 0 differ, 0 problems"),
        "{md}"
    );
    // ... and a published number that does not follow from the predictions is flagged.
    let mpath = out.join("manifest.json");
    let mut m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&mpath).unwrap()).unwrap();
    let st = m["stages"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|s| s["stage"] == "score")
        .unwrap();
    let p = st["summary"]["purity"].as_f64().unwrap();
    st["summary"]["purity"] = (p + 0.01).into();
    std::fs::write(&mpath, serde_json::to_vec(&m).unwrap()).unwrap();
    let o = reproduce();
    assert_eq!(o.status.code(), Some(3));
    let md = std::fs::read_to_string(out.join("reproduce.md")).unwrap();
    assert!(
        md.contains(" 1 differ") && md.contains("| purity |"),
        "{md}"
    );
    // The image-track classifier on the TS detections of the F0-B1 sky: cut-outs from the
    // stored patches and match table, reusing every stage of the grid above.
    let sets = [
        "run.stages=[\"score\",\"classify\"]",
        "detect.variant=ts",
        "sky.iem=B1",
        "classify.track=image",
        "classify.variant=rf",
        "classify.folds=2",
        "classify.forest.n_trees=10",
    ];
    let mut args = vec![
        "--store",
        store.to_str().unwrap(),
        "run",
        cfg.to_str().unwrap(),
    ];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let o = Command::new(bin).args(&args).output().unwrap();
    let log = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{log}");
    assert!(log.contains("8 stages: 1 computed, 7 cached"), "{log}");
    let out2 = d.path().join("results/image");
    args[2] = "report";
    args.extend(["--out", out2.to_str().unwrap()]);
    let o = Command::new(bin).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cls = std::fs::read_to_string(out2.join("leaderboard_classification.csv")).unwrap();
    assert_eq!(cls.lines().count(), 2, "{cls}");
    assert!(
        out2.join("figures/leaderboards/class_probabilities_image_rf_balanced.png")
            .exists()
    );
    assert!(
        cls.lines()
            .nth(1)
            .unwrap()
            .starts_with("image,-,-,image_rf_balanced,true,2,"),
        "{cls}"
    );
}

/// The reference recipe's stages (issue 16) on the smoke grid: a training sky of two
/// realisations, a validation sky, flips, and the operating threshold chosen on the
/// validation sky by its own `threshold` stage, which the detect stage reads.
#[test]
fn operating_threshold_is_chosen_on_the_validation_sky() {
    let sets = [
        "detect.variant=\"unek\"",
        "sky.iem=\"B1\"",
        "train.data.n_patches=24",
        "train.data.patches_per_realisation=12",
        "train.data.validation_patches=12",
        "train.augment=\"flips\"",
        "detect.post.threshold=\"validation\"",
        "detect.post.min_separation_px=3",
        "train.epochs=10",
        "train.learning_rate=0.01",
        // a head that is not the training config's (its config.toml has the defaults):
        // `detect --model` must take it from the shipped operating point
        "detect.unek.region=\"square\"",
        "detect.unek.region_size_px=4",
    ];
    let p = smoke_pipeline(&sets);
    let m = by_stage(&p);
    let count = |s: &str| m.get(s).map(Vec::len).unwrap_or(0);
    // test sky, two training realisations, the validation sky
    assert_eq!(count("patches"), 4);
    assert_eq!(count("threshold"), 1);
    let th = &m["threshold"][0];
    let det = p.nodes().iter().find(|n| n.stage == "detect").unwrap();
    assert!(det.deps.contains(th) && det.key.inputs["threshold"] == *th);
    // The target purity moves the threshold and what reads it, never the network.
    let mut with_target: Vec<&str> = sets.to_vec();
    with_target.push("detect.post.target_purity=0.5");
    let m2 = by_stage(&smoke_pipeline(&with_target));
    assert_eq!(m2["train"], m["train"]);
    assert_ne!(m2["threshold"], m["threshold"]);
    assert_ne!(m2["detect"], m["detect"]);

    let d = tempfile::tempdir().unwrap();
    let cfg = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke/pipeline.toml");
    let store = d.path().join("runs");
    let mut args: Vec<String> = vec![
        "-q".into(),
        "--store".into(),
        store.display().to_string(),
        "run".into(),
        cfg.display().to_string(),
    ];
    for s in sets {
        args.push("--set".into());
        args.push(s.into());
    }
    let o = Command::new(env!("CARGO_BIN_EXE_gammabench"))
        .args(&args)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let th_dir = store.join("threshold").join(th);
    let point: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(th_dir.join("operating_point.json")).unwrap(),
    )
    .unwrap();
    let scan = std::fs::read_to_string(th_dir.join("threshold_scan.csv")).unwrap();
    assert!(scan.starts_with("min_score,n_detections,tp,fp,fn,purity,completeness,f1\n"));
    assert!(scan.lines().count() >= 2, "{scan}");
    let det_dir = store.join("detect").join(det.hash());
    let man: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(det_dir.join("manifest.json")).unwrap())
            .unwrap();
    let post = &man["summary"]["post"];
    assert_eq!(post["threshold_from"], "validation");
    assert_eq!(post["min_score"], point["min_score"]);
    assert_ne!(
        point["rule"], "keep_all",
        "the smoke network finds sources: {point}"
    );
    // every written detection is at or above the validation threshold
    let min = point["min_score"].as_f64().unwrap_or(f64::NEG_INFINITY);
    let dets = std::fs::read_to_string(det_dir.join("detections.csv")).unwrap();
    for l in dets.lines().skip(1) {
        let score: f64 = l.split(',').nth(5).unwrap().parse().unwrap();
        assert!(score >= min, "{l} below {min}");
    }
    // the training log moved from the work directory into the stage's; the checkpoint (burn's
    // resume records, random parameter ids) and the wall times (in the manifest) did not, so
    // every file of the stage but manifest.json is reproducible to the byte
    let train_dir = store.join("train").join(&m["train"][0]);
    assert!(train_dir.join("train_log.csv").exists());
    assert!(!train_dir.join("checkpoint").exists());
    assert!(!train_dir.join("train_times.csv").exists());
    let log = std::fs::read_to_string(train_dir.join("train_log.csv")).unwrap();
    assert!(
        log.starts_with("epoch,train_loss,val_loss,learning_rate,best\n"),
        "{log}"
    );
    let tm: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(train_dir.join("manifest.json")).unwrap())
            .unwrap();
    let times = tm["summary"]["epoch_time_s"].as_array().unwrap();
    assert_eq!(times.len(), log.lines().count() - 1);
    assert!(times.iter().all(|t| t.as_f64().unwrap() > 0.0));
    assert!(
        !store
            .join("train")
            .join(format!(".work-{}", m["train"][0]))
            .exists()
    );

    // Exported as a model folder: manifest, the head's operating point, the files' hashes.
    let bin = env!("CARGO_BIN_EXE_gammabench");
    let models = d.path().join("models");
    let mut exp: Vec<String> = vec![
        "-q".into(),
        "--store".into(),
        store.display().to_string(),
        "export-models".into(),
        cfg.display().to_string(),
        "--out".into(),
        models.display().to_string(),
    ];
    for s in sets {
        exp.push("--set".into());
        exp.push(s.into());
    }
    let o = Command::new(bin).args(&exp).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let model = models.join("segmentation-unet");
    let man: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model.join("MODEL.json")).unwrap()).unwrap();
    assert_eq!(man["train_stage"], m["train"][0].as_str());
    assert_eq!(man["heads"], serde_json::json!(["unek"]));
    assert_eq!(man["training_data"]["n_patches"], 24);
    assert!(man["training_data"]["patch_sets"]["validation_patches"].is_string());
    // the epochs' wall times travel with the folder, summed in its manifest
    let shipped = std::fs::read_to_string(model.join("train_times.csv")).unwrap();
    let secs: Vec<f64> = shipped
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(secs.len(), times.len());
    let total = man["training"]["train_time_s"].as_f64().unwrap();
    assert!((total - secs.iter().sum::<f64>()).abs() < 1e-6 * total.max(1.0));
    assert!(man["files"]["train_times.csv"].is_string());
    let ops: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(model.join("operating_points.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(ops["unek"]["min_score"], point["min_score"]);

    // `detect --model` applies the shipped operating point: the same detections as the run.
    let test_patches = store.join("patches").join(&det.key.inputs["patches"]);
    let out = d.path().join("cli-detect");
    let run_cli = |extra: &[&str]| {
        let mut a = vec![
            "-q".to_string(),
            "--store".into(),
            store.display().to_string(),
            "detect".into(),
            "--model".into(),
            model.display().to_string(),
            "--patches".into(),
            test_patches.display().to_string(),
            "--out".into(),
            out.display().to_string(),
        ];
        a.extend(extra.iter().map(|s| s.to_string()));
        Command::new(bin).args(&a).output().unwrap()
    };
    let o = run_cli(&[]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(out.join("detections.csv")).unwrap(),
        dets
    );
    // another head of the same network has no operating point yet: a clear error naming
    // the way out, and then it runs
    let o = run_cli(&["--head", "log"]);
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("no operating point for head log") && err.contains("detect.post.threshold"),
        "{err}"
    );
    let o = run_cli(&["--head", "log", "--set", "detect.post.threshold=\"fixed\""]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // The challenge kit's baseline: the shipped model on a public bundle (observed counts,
    // no truth, no diffuse component) gives a valid submission; the TS baseline refuses it.
    let kit = d.path().join("kit");
    let o = Command::new(bin)
        .args(["-q", "challenge", "build", "--patches-dir"])
        .arg(&test_patches)
        .arg("--out")
        .arg(&kit)
        // a smoke sky of the shipped configs: a practice kit
        .args([
            "--allow-known-sky",
            "--set",
            "challenge.secret_seed=424242424242",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let public = kit.join("public");
    let baseline = d.path().join("baseline");
    let o = Command::new(bin)
        .args(["-q", "detect", "--model"])
        .arg(&model)
        .arg("--patches")
        .arg(&public)
        .arg("--out")
        .arg(&baseline)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let sub = std::fs::read_to_string(baseline.join("detections.csv")).unwrap();
    assert!(sub.lines().count() > 1, "{sub}");
    for l in sub.lines().skip(1) {
        let score: f64 = l.split(',').nth(5).unwrap().parse().unwrap();
        assert!(score >= min, "{l} below the shipped threshold {min}");
    }
    let o = Command::new(bin)
        .args(["challenge", "validate"])
        .arg(baseline.join("detections.csv"))
        .arg("--patches")
        .arg(public.join("patches.csv"))
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let o = Command::new(bin)
        .args(["-q", "detect", "--model"])
        .arg(&model)
        .args(["--head", "ts", "--patches"])
        .arg(&public)
        .arg("--out")
        .arg(d.path().join("ts-on-kit"))
        .output()
        .unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("challenge bundle"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    // A run that imports the folder (`train.pretrained`) with the shipped threshold
    // (`detect.post.threshold = "model"`) detects exactly what the trained run detected.
    let mut sets2: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    sets2.push(format!("train.pretrained=\"{}\"", model.display()));
    sets2.push("detect.post.threshold=\"model\"".to_string());
    let mut args2 = args[..5].to_vec();
    for s in &sets2 {
        args2.push("--set".into());
        args2.push(s.clone());
    }
    let o = Command::new(bin).args(&args2).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let points = config::load(Some(&cfg), &sets2).unwrap();
    let k = gammabench::detect::stage::detect_key(&points[0].config)
        .unwrap()
        .hash();
    let ddir = store.join("detect").join(&k);
    assert_eq!(
        std::fs::read_to_string(ddir.join("detections.csv")).unwrap(),
        dets
    );
    let man: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ddir.join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(man["summary"]["post"]["threshold_from"], "model");
    assert_eq!(man["summary"]["post"]["min_score"], point["min_score"]);
}

/// Issue 18: `train.folds = K` plans one network per fold, keyed so that changing K reruns
/// the networks and what reads them, never the skies, the patches or the TS baseline.
#[test]
fn k_fold_networks_are_stages_of_their_own_and_k_moves_only_them() {
    let base = [
        "train.data.n_patches=60",
        "detect.post.threshold=\"validation\"",
    ];
    let with = |extra: &[&str]| {
        let mut s: Vec<&str> = base.to_vec();
        s.extend_from_slice(extra);
        by_stage(&smoke_pipeline(&s))
    };
    let k3 = with(&["train.folds=3"]);
    let k4 = with(&["train.folds=4"]);
    let count = |m: &std::collections::BTreeMap<String, Vec<String>>, s: &str| {
        m.get(s).map(Vec::len).unwrap_or(0)
    };
    // UNEK: one train and threshold stage per fold; TS: one network-free train stage
    assert_eq!(count(&k3, "train"), 3 + 1);
    // each fold's network runs once per test sky
    assert_eq!(count(&k3, "infer"), 2 * 3);
    assert_eq!(count(&k3, "threshold"), 3);
    assert_eq!(count(&k4, "threshold"), 4);
    // two test skies x (3 UNEK folds + TS)
    assert_eq!(count(&k3, "score"), 2 * (3 + 1));
    // the held-out fold is part of the training sky: no validation sky is planned
    assert_eq!(k3["patches"], k4["patches"]);
    assert_eq!(count(&k3, "patches"), 2 + 1);
    for stage in ["catalog", "sky", "diffuse"] {
        assert_eq!(k3.get(stage), k4.get(stage), "{stage}");
    }
    let shared: Vec<&String> = k3["train"]
        .iter()
        .filter(|h| k4["train"].contains(h))
        .collect();
    assert_eq!(
        shared.len(),
        1,
        "only the TS baseline's train stage is shared"
    );
    // a scorer setting moves the scores, not the networks
    let k3b = with(&["train.folds=3", "score.bootstrap_reps=7"]);
    assert_eq!(k3b["train"], k3["train"]);
    assert_eq!(k3b["threshold"], k3["threshold"]);
    assert_ne!(k3b["score"], k3["score"]);
    // folds out of range are refused with the key
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke/pipeline.toml");
    for bad in ["train.folds=1", "train.folds=101"] {
        let e = config::load(Some(&path), &[bad.to_string()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("train.folds"), "{e}");
    }
    let e = config::load(
        Some(&path),
        &["train.folds=3".to_string(), "train.fold=3".to_string()],
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("train.fold"), "{e}");
}

/// The network pass runs once per (network, fold, test sky): UNEK and LoG (two heads on one
/// segmentation U-Net) and the ensembles read the same `infer` stages, and a head setting
/// moves the detect stages, not the maps.
#[test]
fn heads_and_ensembles_share_the_networks_maps() {
    let base = [
        "train.data.n_patches=60",
        "train.folds=3",
        "detect.variant=[\"unek\", \"log\", \"ts\"]",
        "detect.ensemble=[false, true]",
    ];
    let plan = smoke_pipeline(&base);
    let m = by_stage(&plan);
    let count = |s: &str| m.get(s).map(Vec::len).unwrap_or(0);
    // two test skies x three folds of the one U-Net
    assert_eq!(count("infer"), 2 * 3);
    // two skies x (3 UNEK folds + 3 LoG folds + 2 ensembles + TS)
    assert_eq!(count("detect"), 2 * (3 + 3 + 2 + 1));
    let infer: std::collections::BTreeSet<&String> = m["infer"].iter().collect();
    let stage_of: std::collections::BTreeMap<String, String> = plan
        .nodes()
        .iter()
        .map(|n| (n.hash(), n.stage.clone()))
        .collect();
    for n in plan.nodes().iter().filter(|n| n.stage == "detect") {
        let reads: Vec<&String> = n.deps.iter().map(|d| &stage_of[d]).collect();
        if n.label.contains("ts") {
            assert!(
                !reads.iter().any(|s| *s == "infer"),
                "{}: {reads:?}",
                n.label
            );
        } else {
            let maps = reads.iter().filter(|s| **s == "infer").count();
            let want = if n.label.contains("ensemble=true") {
                3
            } else {
                1
            };
            assert_eq!(maps, want, "{}: {reads:?}", n.label);
            assert!(
                !reads.iter().any(|s| *s == "train"),
                "{}: {reads:?}",
                n.label
            );
        }
    }
    let mut more = base.to_vec();
    more.push("detect.log.threshold=0.37");
    let m2 = by_stage(&smoke_pipeline(&more));
    let infer2: std::collections::BTreeSet<&String> = m2["infer"].iter().collect();
    assert_eq!(infer, infer2, "a head setting reruns no network");
    assert_ne!(m["detect"], m2["detect"]);
}

/// Issue 18: the folds of a real (smoke) training sky never share a region, no training
/// patch overlaps a held-out patch of its realisation, every patch is held out once, and the
/// report summarises the fold networks as mean ± std.
#[test]
fn k_fold_run_holds_out_whole_regions_and_reports_the_spread() {
    let sets = [
        "train.data.n_patches=60",
        "train.data.patches_per_realisation=30",
        "detect.post.threshold=\"validation\"",
        "train.folds=3",
        "sky.iem=\"B1\"",
        "train.epochs=10",
        "train.learning_rate=0.01",
        "detect.variant=[\"unek\", \"ts\"]",
        "detect.ensemble=[false, true]",
    ];
    let d = tempfile::tempdir().unwrap();
    let cfg_path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/smoke/pipeline.toml");
    let store_dir = d.path().join("runs");
    let mut args: Vec<String> = vec![
        "-q".into(),
        "--store".into(),
        store_dir.display().to_string(),
        "run".into(),
        cfg_path.display().to_string(),
    ];
    for s in sets {
        args.push("--set".into());
        args.push(s.into());
    }
    let bin = env!("CARGO_BIN_EXE_gammabench");
    let o = Command::new(bin).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    let points = config::load(Some(&cfg_path), &sets).unwrap();
    let unek: Vec<&config::Resolved> = points
        .iter()
        .filter(|p| {
            p.config.detect.variant == config::DetectorVariant::Unek && !p.config.detect.ensemble
        })
        .collect();
    assert_eq!(unek.len(), 3);
    // one TS point (no fold axis) and one ensemble point (all folds) besides the folds
    assert_eq!(
        points.len(),
        3 + 1 + 1,
        "{:?}",
        points.iter().map(|p| &p.label).collect::<Vec<_>>()
    );
    let ens = points.iter().find(|p| p.config.detect.ensemble).unwrap();
    let ens_key = gammabench::detect::stage::detect_key(&ens.config).unwrap();
    let store = Store::new(&store_dir);
    let pb = indicatif::ProgressBar::hidden();
    let (sky, _) = gammabench::detect::stage::training_sky(&store, &unek[0].config, &pb).unwrap();
    let groups = gammabench::folds::region_groups(&sky.patch_ids, &sky.centres_deg, 1);
    let mut held_times = vec![0; sky.len()];
    for p in &unek {
        let (train, held) = gammabench::train::data::cv_rows(&sky, &p.config.train, p.config.seed);
        assert!(!train.is_empty() && !held.is_empty());
        for &h in &held {
            held_times[h] += 1;
            for &t in &train {
                assert_ne!(
                    groups[h], groups[t],
                    "a region on both sides of fold {}",
                    p.config.train.fold
                );
                if sky.patch_ids[h] >> 32 == sky.patch_ids[t] >> 32 {
                    let (a, b) = (sky.centres_deg[h], sky.centres_deg[t]);
                    let sep = gammabench::coords::angular_distance_deg(a.0, a.1, b.0, b.1);
                    assert!(
                        sep >= 2.0 * 2f64.sqrt() * 5.0,
                        "patches {h} and {t} overlap ({sep} deg)"
                    );
                }
            }
        }
        // the stored network was validated on exactly its held-out fold
        let key = gammabench::detect::stage::train_key(&p.config).unwrap();
        let man = store.lookup_verified(&key).unwrap().manifest;
        assert_eq!(man.summary["fold"], p.config.train.fold);
        assert_eq!(man.summary["n_validation_patches"], held.len());
        assert_eq!(man.summary["n_train_patches"], train.len());
    }
    assert!(held_times.iter().all(|&n| n == 1), "{held_times:?}");
    // the ensemble reads the three fold networks and writes each detection's spread
    for (f, p) in unek.iter().enumerate() {
        assert_eq!(p.config.train.fold, f);
        assert_eq!(
            ens_key.inputs[&format!("maps_{f}")],
            gammabench::detect::stage::infer_key(&p.config)
                .unwrap()
                .hash(),
            "the ensemble reads fold {f}'s stored maps"
        );
    }
    let ens_out = store.lookup_verified(&ens_key).unwrap();
    assert_eq!(ens_out.manifest.summary["ensemble"], 3);
    // its own threshold, cross-fitted: every training patch is validated exactly once, by
    // the two fold networks that did not train on it
    let thr_key = gammabench::detect::stage::threshold_key(&ens.config).unwrap();
    assert_eq!(ens_key.inputs["threshold"], thr_key.hash());
    let thr = store.lookup_verified(&thr_key).unwrap().manifest;
    assert_eq!(thr.summary["cross_fit"]["folds"], 3);
    assert_eq!(thr.summary["n_validation_patches"], sky.len());
    let ens_dets = std::fs::read_to_string(ens_out.dir.join("detections.csv")).unwrap();
    assert!(
        ens_dets.starts_with("patch_id,x_pix,y_pix,glon_deg,glat_deg,score,detector,p_real,position_err_deg,score_err,n_members\n"),
        "{ens_dets}"
    );
    for l in ens_dets.lines().skip(1) {
        let p: f64 = l.split(',').nth(7).unwrap().parse().unwrap();
        assert!((0.0..=1.0).contains(&p), "{l}");
    }
    for l in ens_dets.lines().skip(1) {
        let n: usize = l.rsplit(',').next().unwrap().parse().unwrap();
        assert!(n <= 3, "{l}");
    }

    let out = d.path().join("report");
    args[3] = "report".into();
    args.extend(["--out".into(), out.display().to_string()]);
    let o = Command::new(bin).args(&args).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let folds = std::fs::read_to_string(out.join("leaderboard_folds.csv")).unwrap();
    let header: Vec<&str> = folds.lines().next().unwrap().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let row: Vec<&str> = folds
        .lines()
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|r| r[col("detector")] == "unek")
        .unwrap();
    assert_eq!(row[col("folds")], "3", "{folds}");
    assert!(
        folds
            .lines()
            .any(|l| l.split(',').nth(col("detector")) == Some("unek_ensemble")),
        "{folds}"
    );
    // the mean is the mean of the three fold rows of the detection leaderboard
    let det = std::fs::read_to_string(out.join("leaderboard_detection.csv")).unwrap();
    let dh: Vec<&str> = det.lines().next().unwrap().split(',').collect();
    let dcol = |name: &str| dh.iter().position(|h| *h == name).unwrap();
    let purities: Vec<f64> = det
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .filter(|r| r[dcol("detector")] == "unek")
        // empty: a fold whose network kept no detection (purity undefined)
        .map(|r| r[dcol("purity")].parse().unwrap_or(f64::NAN))
        .collect();
    assert_eq!(purities.len(), 3, "{det}");
    let defined: Vec<f64> = purities.iter().copied().filter(|p| p.is_finite()).collect();
    assert!(!defined.is_empty(), "{det}");
    let mean: f64 = row[col("purity")].parse().unwrap();
    assert!(
        (mean - defined.iter().sum::<f64>() / defined.len() as f64).abs() < 1e-3,
        "{mean} {purities:?}"
    );
}
