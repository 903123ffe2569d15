//! The hosted challenge (`gammabench serve`): the API in process (tower's `oneshot`), one test
//! per security property, the queue's time limit, and real-socket tests on 127.0.0.1: a load
//! test (50 concurrent submissions of 10 teams), `kill -9` mid-load and restart, SIGTERM,
//! a client slow to send its body and clients slow to send their headers (hyper's header-read
//! timeout), the CLI client, and the starter kit as a participant uses it (download, the
//! Python baseline and validator, the shipped reference network, submit, leaderboard).
//! Everything runs on the tiny kit of `common/kit.rs` (built, its teams added and served by
//! the helpers there).

#[path = "common/kit.rs"]
mod kit;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use gammabench::challenge::server::{self, App};
use http_body_util::BodyExt;
use serde_json::Value;
use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tower::ServiceExt;

use kit::{BIN, Kit, SECRET};

fn config(sets: &[&str]) -> gammabench::config::ExperimentConfig {
    let sets: Vec<String> = sets.iter().map(|s| s.to_string()).collect();
    gammabench::config::single_for_scoring(gammabench::config::load(None, &sets).unwrap()).unwrap()
}

/// An in-process service with its workers.
struct InProcess {
    app: Arc<App>,
    router: axum::Router,
    _stop: tokio::sync::watch::Sender<bool>,
}

fn in_process(k: &Kit, sets: &[&str]) -> InProcess {
    let app = App::open(&config(sets), &k.challenge, &k.db).unwrap();
    let (tx, rx) = tokio::sync::watch::channel(false);
    server::queue::spawn_workers(app.clone(), rx);
    InProcess {
        router: server::router(app.clone()),
        app,
        _stop: tx,
    }
}

/// An answer: status, `Retry-After`, body text.
struct Got {
    status: StatusCode,
    retry_after: Option<String>,
    text: String,
}

impl Got {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }
}

async fn call(r: &axum::Router, req: Request<Body>) -> Got {
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_string());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    Got {
        status,
        retry_after,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn get(uri: &str, token: Option<&str>) -> Request<Body> {
    let mut b = Request::builder().uri(uri);
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

fn post(uri: &str, token: Option<&str>, body: Vec<u8>) -> Request<Body> {
    let mut b = Request::builder()
        .method("POST")
        .uri(uri)
        .header("content-type", "text/csv");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body)).unwrap()
}

fn multipart(token: Option<&str>, form_token: Option<&str>, file: &[u8]) -> Request<Body> {
    let boundary = "gammabench-test-boundary";
    let mut body = Vec::new();
    if let Some(t) = form_token {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"token\"\r\n\r\n{t}\r\n"
            )
            .as_bytes(),
        );
    }
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.csv\"\r\n\
             Content-Type: text/csv\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(file);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let mut b = Request::builder()
        .method("POST")
        .uri("/api/submissions")
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        );
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::from(body)).unwrap()
}

/// Polls a submission until it is scored or failed.
async fn wait_done(r: &axum::Router, id: i64, token: &str) -> Value {
    let t0 = Instant::now();
    loop {
        let g = call(r, get(&format!("/api/submissions/{id}"), Some(token))).await;
        assert_eq!(g.status, StatusCode::OK, "{}", g.text);
        let v = g.json();
        if v["status"] == "scored" || v["status"] == "failed" {
            return v;
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "stuck: {v}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every key of a JSON value, recursively.
fn keys(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                keys(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys(x, out)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_api_submit_status_history_limits_and_board() {
    let k = Kit::new();
    let a = k.team("alpha", false);
    let b = k.team("beta", false);
    let s = in_process(&k, &["challenge.daily_limit=3"]);
    let r = &s.router;
    let file = std::fs::read(k.sub("a1.csv", 1, 2)).unwrap();
    // 401 without or with a bad token, nothing recorded
    assert_eq!(
        call(r, post("/api/submissions", None, file.clone()))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        call(r, post("/api/submissions", Some("gbt_bad"), file.clone()))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // 202 with the raw body
    let g = call(r, post("/api/submissions", Some(&a), file.clone())).await;
    assert_eq!(g.status, StatusCode::ACCEPTED, "{}", g.text);
    assert_eq!(g.json()["status"], "queued");
    let id = g.json()["id"].as_i64().unwrap();
    // identical file: recognised, not counted
    let g = call(r, post("/api/submissions", Some(&a), file.clone())).await;
    assert_eq!(g.status, StatusCode::OK);
    assert_eq!(g.json()["identical"], true);
    assert_eq!(g.json()["id"], id);
    // 202 as multipart (header token) and as a browser form (token field)
    let f2 = std::fs::read(k.sub("a2.csv", 2, 1)).unwrap();
    let g = call(r, multipart(Some(&a), None, &f2)).await;
    assert_eq!(g.status, StatusCode::ACCEPTED, "{}", g.text);
    let f3 = std::fs::read(k.sub("a3.csv", 3, 1)).unwrap();
    let g = call(r, multipart(None, Some(&a), &f3)).await;
    assert_eq!(g.status, StatusCode::ACCEPTED, "{}", g.text);
    // the fourth different file of the day: 429 with the reason and the reset time
    let f4 = std::fs::read(k.sub("a4.csv", 4, 1)).unwrap();
    let g = call(r, post("/api/submissions", Some(&a), f4)).await;
    assert_eq!(g.status, StatusCode::TOO_MANY_REQUESTS, "{}", g.text);
    assert_eq!(g.json()["reason"], "daily_limit");
    let resets = g.json()["resets_utc"].as_str().unwrap().to_string();
    assert!(resets.ends_with("T00:00:00Z"), "{resets}");
    assert!(g.retry_after.is_some());
    // 422: every problem as line:column: field: message; nothing recorded
    let g = call(
        r,
        post(
            "/api/submissions",
            Some(&b),
            b"patch_id,x_pix,y_pix\n100,70,1\n999,1,1\n".to_vec(),
        ),
    )
    .await;
    assert_eq!(g.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", g.text);
    let problems: Vec<String> = g.json()["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    assert!(
        problems.iter().any(|p| p.starts_with("2:2: x_pix: ")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("3:1: patch_id: ")),
        "{problems:?}"
    );
    // scored; the owner sees the public score only, another team gets 404
    let v = wait_done(r, id, &a).await;
    assert_eq!(v["status"], "scored", "{v}");
    assert!(v["public"]["f1"].as_f64().unwrap() > 0.5, "{v}");
    let g = call(r, get(&format!("/api/submissions/{id}"), Some(&b))).await;
    assert_eq!(g.status, StatusCode::NOT_FOUND);
    assert_eq!(
        call(r, get("/api/submissions/99999", Some(&a)))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // history: the team's own submissions only
    let g = call(r, get("/api/submissions", Some(&a))).await;
    assert_eq!(g.json()["submissions"].as_array().unwrap().len(), 3);
    let g = call(r, get("/api/submissions", Some(&b))).await;
    assert_eq!(g.json()["submissions"].as_array().unwrap().len(), 0);
    // public leaderboard for everyone
    for id in 2..=3 {
        wait_done(r, id, &a).await;
    }
    let g = call(r, get("/api/leaderboard", None)).await;
    assert_eq!(g.status, StatusCode::OK);
    let rows = g.json()["rows"].as_array().unwrap().clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["team"], "alpha");
    assert_eq!(rows[0]["submissions"], 3);
    // pages without JavaScript
    let g = call(r, get("/", None)).await;
    assert!(g.text.contains("/files/patches.npy") && !g.text.contains("<script"));
    assert!(g.text.contains("enctype=\"multipart/form-data\""));
    let g = call(r, get("/leaderboard", None)).await;
    assert!(g.text.contains("<table>") && g.text.contains("alpha"));
    assert!(!g.text.contains("<script"));
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_no_truth_seed_or_private_score_in_any_participant_answer() {
    let k = Kit::new();
    let a = k.team("alpha", false);
    let admin = k.team("organiser", true);
    let s = in_process(&k, &[]);
    let r = &s.router;
    let mut answers: Vec<Got> = Vec::new();
    let file = std::fs::read(k.sub("a1.csv", 1, 3)).unwrap();
    let g = call(r, post("/api/submissions", Some(&a), file)).await;
    let id = g.json()["id"].as_i64().unwrap();
    answers.push(g);
    let done = wait_done(r, id, &a).await;
    answers.push(Got {
        status: StatusCode::OK,
        retry_after: None,
        text: done.to_string(),
    });
    for uri in [
        "/",
        "/leaderboard",
        "/api/leaderboard",
        "/api/leaderboard?half=private",
        "/api/submissions",
        "/api/submissions/1",
        "/api/admin/audit",
        "/files/README.md",
        "/files/patches.csv",
        "/files/dataset.json",
        "/files/MANIFEST.sha256",
        "/files/example_submission.csv",
        "/files/sample_submission.csv",
        "/files/train_truth.csv",
        "/files/train_patches.csv",
        "/files/baseline.py",
        "/files/validate.py",
        "/files/truth.csv",
        "/files/private_truth.csv",
        "/files/seeds.json",
        "/nowhere",
    ] {
        answers.push(call(r, get(uri, Some(&a))).await);
        answers.push(call(r, get(uri, None)).await);
    }
    for uri in ["/api/admin/reveal", "/api/admin/rescore"] {
        let g = call(r, post(uri, Some(&a), vec![])).await;
        assert_eq!(g.status, StatusCode::FORBIDDEN, "{uri}");
        answers.push(g);
    }
    // a 422 on patch ids that exist in the truth but a detection far from any source
    answers.push(
        call(
            r,
            post(
                "/api/submissions",
                Some(&a),
                b"patch_id,x_pix,y_pix\n100,NaN,1\n".to_vec(),
            ),
        )
        .await,
    );
    // the organiser's view has the private half: its scores must not appear above
    let full = call(r, get(&format!("/api/submissions/{id}"), Some(&admin))).await;
    let private = full.json()["private"].clone();
    assert!(private["f1"].is_number(), "{}", full.text);
    for g in &answers {
        for v in &k.truth_values {
            assert!(
                !g.text.contains(v.as_str()),
                "truth value {v} in {}",
                g.text
            );
        }
        assert!(!g.text.contains(SECRET), "secret seed in {}", g.text);
        assert!(
            !g.text.contains("source_id") && !g.text.contains("snr_c"),
            "{}",
            g.text
        );
        let mut ks = Vec::new();
        keys(&g.json(), &mut ks);
        for bad in ["tp", "fp", "fn", "duplicate", "private", "public_full"] {
            assert!(!ks.iter().any(|x| x == bad), "key `{bad}` in {}", g.text);
        }
    }
    // the participant's public score is shown at the board's precision only
    let f1 = done["public"]["f1"].as_f64().unwrap();
    assert_eq!((f1 * 1e4).round() / 1e4, f1);
    // the private board: 403 for a team, shown to the organiser, then to all after reveal
    assert_eq!(
        call(r, get("/api/leaderboard?half=private", Some(&a)))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let g = call(r, get("/api/leaderboard?half=private", Some(&admin))).await;
    assert_eq!(g.status, StatusCode::OK);
    assert!(g.json()["rows"][0]["score"]["tp"].is_number());
    let g = call(r, post("/api/admin/reveal", Some(&admin), vec![])).await;
    assert_eq!(g.status, StatusCode::OK);
    let g = call(r, get("/api/leaderboard?half=private", None)).await;
    assert_eq!(g.status, StatusCode::OK, "{}", g.text);
    assert!(g.json()["rows"][0]["score"]["tp"].is_null());
    assert!(
        call(r, get("/leaderboard", None))
            .await
            .text
            .contains("Private (final)")
    );
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_files_only_the_public_bundle_no_traversal() {
    let k = Kit::new();
    let s = in_process(&k, &[]);
    let r = &s.router;
    for name in [
        "README.md",
        "patches.csv",
        "patches.npy",
        "dataset.json",
        "MANIFEST.sha256",
        "diffuse.npy",
        "train_patches.npy",
        "train_diffuse.npy",
        "train_patches.csv",
        "train_truth.csv",
        "baseline.py",
        "validate.py",
        "requirements.txt",
    ] {
        let g = call(r, get(&format!("/files/{name}"), None)).await;
        assert_eq!(g.status, StatusCode::OK, "{name}");
    }
    let truth = std::fs::read_to_string(k.truth()).unwrap();
    for uri in [
        "/files/truth.csv",
        "/files/seeds.json",
        "/files/split.csv",
        "/files/../private/truth.csv",
        "/files/..%2Fprivate%2Ftruth.csv",
        "/files/%2e%2e%2fprivate%2ftruth.csv",
        "/files/..%5Cprivate%5Ctruth.csv",
        "/files/.",
        "/files/",
        "/files/%2Fetc%2Fpasswd",
        "/private/truth.csv",
        "/files/public/patches.csv",
    ] {
        let g = call(r, get(uri, None)).await;
        assert_eq!(g.status, StatusCode::NOT_FOUND, "{uri}: {}", g.text);
        assert!(!g.text.contains(truth.lines().nth(1).unwrap()));
    }
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_tokens_hashed_revocable_and_rate_limited() {
    let k = Kit::new();
    let a = k.team("alpha", false);
    // a second active token for the same team is refused
    let o = Command::new(BIN)
        .args(["-q", "challenge", "team", "add", "alpha", "--db"])
        .arg(&k.db)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let s = in_process(&k, &["challenge.rate_per_minute_token=3"]);
    let r = &s.router;
    // the token is nowhere in the database files, its SHA-256 is
    let mut bytes = Vec::new();
    for e in std::fs::read_dir(k.db.parent().unwrap()).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            bytes.extend(std::fs::read(p).unwrap());
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(!text.contains(&a) && !text.contains(&a[4..]));
    assert!(text.contains(&gammabench::challenge::server::auth::token_hash(&a)));
    // `team list` never prints a token
    let o = Command::new(BIN)
        .args(["-q", "challenge", "team", "list", "--db"])
        .arg(&k.db)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("alpha") && !out.contains(&a[4..]), "{out}");
    // per-token rate limit: the 4th request of the minute is 429 with the reason
    for _ in 0..3 {
        assert_eq!(
            call(r, get("/api/submissions", Some(&a))).await.status,
            StatusCode::OK
        );
    }
    let g = call(r, get("/api/submissions", Some(&a))).await;
    assert_eq!(g.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(g.json()["reason"], "rate_limit");
    assert!(g.json()["resets_utc"].is_string() && g.retry_after.is_some());
    // a revoked token is refused at once
    let o = Command::new(BIN)
        .args(["-q", "challenge", "team", "revoke", "alpha", "--db"])
        .arg(&k.db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let g = call(r, get("/api/submissions", Some(&a))).await;
    let conn = gammabench::challenge::open_db(&k.db).unwrap();
    let active: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM tokens WHERE revoked_utc IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        g.status,
        StatusCode::UNAUTHORIZED,
        "{} (active tokens: {active})",
        g.text
    );
    // the audit log is append-only
    assert!(conn.execute("UPDATE audit SET result = 'x'", []).is_err());
    assert!(conn.execute("DELETE FROM audit", []).is_err());
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM audit WHERE action = 'team revoke'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 1);
    drop(s);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_body_limit_and_job_time_limit_do_not_count() {
    let k = Kit::new();
    let a = k.team("alpha", false);
    let admin = k.team("organiser", true);
    // 413 over the size limit (raw and multipart)
    let s = in_process(&k, &["challenge.max_file_bytes=2000"]);
    let big = std::fs::read(k.sub("big.csv", 1, 300)).unwrap();
    assert!(big.len() > 2000);
    let g = call(&s.router, post("/api/submissions", Some(&a), big.clone())).await;
    assert_eq!(g.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", g.text);
    let g = call(&s.router, multipart(Some(&a), None, &big)).await;
    assert_eq!(g.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", g.text);
    drop(s);
    // a job over its time limit fails with the reason and does not use the daily limit
    let s = in_process(
        &k,
        &["challenge.job_timeout_s=0.0005", "challenge.daily_limit=1"],
    );
    let r = &s.router;
    let mut body = String::from("patch_id,x_pix,y_pix,score\n");
    for i in 0..60_000 {
        let j = i / 6;
        let (x, y) = ((j % 100) as f64 * 0.6 + 0.1, (j / 100) as f64 * 0.6 + 0.1);
        body.push_str(&format!("{},{x:.2},{y:.2},0.5\n", 100 + i % 6));
    }
    let g = call(r, post("/api/submissions", Some(&a), body.into_bytes())).await;
    assert_eq!(g.status, StatusCode::ACCEPTED, "{}", g.text);
    let id = g.json()["id"].as_i64().unwrap();
    let v = wait_done(r, id, &a).await;
    assert_eq!(v["status"], "failed", "{v}");
    assert!(
        v["reason"]
            .as_str()
            .unwrap()
            .contains("longer than the limit"),
        "{v}"
    );
    drop(s);
    let s = in_process(&k, &["challenge.daily_limit=1"]);
    let r = &s.router;
    let f = std::fs::read(k.sub("ok.csv", 2, 0)).unwrap();
    let g = call(r, post("/api/submissions", Some(&a), f)).await;
    assert_eq!(
        g.status,
        StatusCode::ACCEPTED,
        "the failed job is not counted: {}",
        g.text
    );
    let id2 = g.json()["id"].as_i64().unwrap();
    assert_eq!(wait_done(r, id2, &a).await["status"], "scored");
    // rescore (organiser): every stored submission again, audited; the failed one now scores
    let g = call(r, post("/api/admin/rescore", Some(&admin), vec![])).await;
    assert_eq!(g.status, StatusCode::ACCEPTED, "{}", g.text);
    assert_eq!(g.json()["queued"], 2);
    assert_eq!(wait_done(r, id, &a).await["status"], "scored");
    let g = call(r, get("/api/admin/audit", Some(&admin))).await;
    let audit = g.json()["audit"].as_array().unwrap().clone();
    assert!(audit.iter().any(|e| e["action"] == "rescore"));
    assert!(audit.iter().any(|e| {
        e["result"]
            .as_str()
            .unwrap()
            .starts_with("failed: scoring took")
    }));
    assert!(
        audit
            .iter()
            .filter(|e| e["action"] == "submit")
            .all(|e| e["sha256"].is_string() && e["actor"] == "alpha")
    );
    assert_eq!(s.app.cfg.challenge.daily_limit, 1);
    drop(s);
}

#[test]
fn build_refuses_known_seeds_and_salts_the_split() {
    let d = tempfile::tempdir().unwrap();
    let pd = d.path().join("patches");
    std::fs::create_dir_all(&pd).unwrap();
    kit::patches_dir(&pd);
    let build = |out: &str, extra: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(["-q", "challenge", "build", "--patches-dir"])
            .arg(&pd)
            .arg("--out")
            .arg(d.path().join(out))
            .args(["--set", "challenge.train_patches=4"]);
        for s in kit::SMOKE_TRAIN_SKY {
            c.args(["--set", s]);
        }
        c.args(extra).output().unwrap()
    };
    // no explicit secret seed
    let o = build("a", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("explicit challenge.secret_seed"));
    // a shipped seed as the secret
    let o = build("b", &["--set", "challenge.secret_seed=20210901"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("shipped in configs/"));
    assert!(gammabench::challenge::SHIPPED_SEEDS.contains(&20210901));
    // a sky made with a shipped seed (its manifest says so)
    std::fs::write(
        pd.join("manifest.json"),
        r#"{"stage": "patches", "seed": 11}"#,
    )
    .unwrap();
    let o = build("c", &["--set", "challenge.secret_seed=99887766"]);
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("seed 11, which ships with the project"),
        "{err}"
    );
    let o = build(
        "c",
        &[
            "--set",
            "challenge.secret_seed=99887766",
            "--allow-known-sky",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::remove_file(pd.join("manifest.json")).unwrap();
    // the split depends on the secret: not recomputable from the patch ids
    let ids: Vec<i64> = (0..200).collect();
    let s1 = gammabench::challenge::public_patches(&ids, 1_234_567_891);
    let s2 = gammabench::challenge::public_patches(&ids, 1_234_567_892);
    assert_eq!(s1.len(), 100);
    assert_ne!(s1, s2);
    // the public leaderboard files show metrics only
    let o = build("e", &["--set", "challenge.secret_seed=99887766"]);
    assert!(o.status.success());
    let sub = d.path().join("s.csv");
    kit::submission(&sub, &d.path().join("e/private/truth.csv"), 1, 1);
    let db = d.path().join("b.sqlite");
    let o = Command::new(BIN)
        .args(["-q", "challenge", "submit", "--team", "t"])
        .arg(&sub)
        .arg("--private")
        .arg(d.path().join("e/private"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = Command::new(BIN)
        .args(["-q", "challenge", "leaderboard", "--out"])
        .arg(d.path().join("lb"))
        .arg("--db")
        .arg(&db)
        .output()
        .unwrap();
    assert!(o.status.success());
    let lb = |f: &str| std::fs::read_to_string(d.path().join("lb").join(f)).unwrap();
    assert!(
        !lb("leaderboard.csv")
            .lines()
            .next()
            .unwrap()
            .contains(",tp,")
    );
    assert!(!lb("leaderboard.md").contains("| TP |"));
    assert!(!lb("leaderboard.html").contains("<th>TP</th>"));
    let js: Value = serde_json::from_str(&lb("leaderboard.json")).unwrap();
    let mut ks = Vec::new();
    keys(&js["rows"], &mut ks);
    assert!(ks.iter().any(|k| k == "f1"));
    assert!(
        !ks.iter()
            .any(|k| ["tp", "fp", "fn", "duplicate"].contains(&k.as_str())),
        "{ks:?}"
    );
}

// ---- real sockets ----

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

/// POST a file; (status, body, seconds).
fn http_submit(url: &str, token: &str, body: &[u8]) -> Result<(u16, Value, f64), String> {
    let t0 = Instant::now();
    let mut r = agent()
        .post(format!("{url}/api/submissions"))
        .header("Authorization", format!("Bearer {token}"))
        .send(body)
        .map_err(|e| e.to_string())?;
    let text = r.body_mut().read_to_string().map_err(|e| e.to_string())?;
    Ok((
        r.status().as_u16(),
        serde_json::from_str(&text).unwrap_or(Value::Null),
        t0.elapsed().as_secs_f64(),
    ))
}

fn http_status(url: &str, token: &str, id: i64) -> Value {
    let mut r = agent()
        .get(format!("{url}/api/submissions/{id}"))
        .header("Authorization", format!("Bearer {token}"))
        .call()
        .unwrap();
    serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap()
}

fn wait_all_scored(url: &str, ids: &[(i64, String)], limit: Duration) {
    let t0 = Instant::now();
    for (id, token) in ids {
        loop {
            let v = http_status(url, token, *id);
            if v["status"] == "scored" {
                break;
            }
            assert_ne!(v["status"], "failed", "{v}");
            assert!(t0.elapsed() < limit, "#{id} stuck: {v}");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[test]
fn serve_load_50_concurrent_submissions_of_10_teams() {
    let k = Kit::new();
    let tokens = k.teams(10);
    let files: Vec<Vec<u8>> = (0..50)
        .map(|i| std::fs::read(k.sub(&format!("l{i}.csv"), 1 + i % 5, i)).unwrap())
        .collect();
    let s = k.serve(&["challenge.workers=2"]);
    let t0 = Instant::now();
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let (url, token, body) = (s.url.clone(), tokens[i % 10].clone(), files[i].clone());
            std::thread::spawn(move || (i, token.clone(), http_submit(&url, &token, &body)))
        })
        .collect();
    let mut times = Vec::new();
    let mut ids = Vec::new();
    for h in handles {
        let (i, token, r) = h.join().unwrap();
        let (st, v, secs) = r.unwrap();
        assert_eq!(st, 202, "submission {i}: {v}");
        ids.push((v["id"].as_i64().unwrap(), token));
        times.push(secs);
    }
    let wall_submit = t0.elapsed().as_secs_f64();
    wait_all_scored(&s.url, &ids, Duration::from_secs(60));
    let wall_scored = t0.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    println!(
        "load: 50 submissions of 10 teams: answer p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         all answered in {:.2} s, all scored in {:.2} s",
        percentile(&times, 0.5) * 1e3,
        percentile(&times, 0.99) * 1e3,
        times[times.len() - 1] * 1e3,
        wall_submit,
        wall_scored
    );
    let conn = gammabench::challenge::open_db(&k.db).unwrap();
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM submissions WHERE status = 'scored'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(n, 50);
    let mut r = agent()
        .get(format!("{}/api/leaderboard", s.url))
        .call()
        .unwrap();
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(v["rows"].as_array().unwrap().len(), 10);
}

#[test]
fn serve_kill_9_mid_load_loses_nothing_acknowledged() {
    let k = Kit::new();
    let tokens = k.teams(10);
    let files: Vec<Vec<u8>> = (0..40)
        .map(|i| std::fs::read(k.sub(&format!("k{i}.csv"), 1 + i % 4, 3 * i)).unwrap())
        .collect();
    let mut s = k.serve(&["challenge.workers=1", "challenge.daily_limit=10"]);
    let handles: Vec<_> = (0..40)
        .map(|i| {
            let (url, token, body) = (s.url.clone(), tokens[i % 10].clone(), files[i].clone());
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(5 * i as u64));
                (token.clone(), http_submit(&url, &token, &body))
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    s.child.kill().unwrap(); // SIGKILL
    s.child.wait().unwrap();
    let mut acked = Vec::new();
    let mut lost_connections = 0;
    for h in handles {
        match h.join().unwrap() {
            (token, Ok((202, v, _))) => acked.push((v["id"].as_i64().unwrap(), token)),
            (_, Ok((st, v, _))) => panic!("{st}: {v}"),
            (_, Err(_)) => lost_connections += 1,
        }
    }
    println!(
        "kill -9: {} acknowledged before the kill, {lost_connections} cut off",
        acked.len()
    );
    assert!(!acked.is_empty());
    // restart: every acknowledged submission is there and gets scored
    let s2 = k.serve(&["challenge.workers=2"]);
    wait_all_scored(&s2.url, &acked, Duration::from_secs(60));
    let conn = gammabench::challenge::open_db(&k.db).unwrap();
    for (id, _) in &acked {
        let st: String = conn
            .query_row("SELECT status FROM submissions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(st, "scored");
    }
    drop(s2);
}

#[test]
fn serve_stops_on_sigterm_and_cuts_off_slow_clients() {
    let k = Kit::new();
    let mut s = k.serve(&["challenge.request_timeout_s=1"]);
    let addr = s.addr();
    // a client that announces a body and never sends it gets 408 after the time limit
    let t0 = Instant::now();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(
        b"POST /api/submissions HTTP/1.1\r\nHost: x\r\nContent-Type: text/csv\r\nContent-Length: 100000\r\n\r\npatch_id",
    )
    .unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf);
    assert!(
        text.starts_with("HTTP/1.1 408") || text.starts_with("HTTP/1.1 401"),
        "{text}"
    );
    assert!(t0.elapsed() < Duration::from_secs(5));
    // SIGTERM: a clean stop, exit code 0
    let st = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    loop {
        if let Some(code) = s.child.try_wait().unwrap() {
            assert!(code.success(), "{code:?}");
            break;
        }
        assert!(t0.elapsed() < Duration::from_secs(10), "no stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Reads until the server closes the connection (or 15 s pass): (bytes read, seconds).
fn read_until_closed(c: &mut std::net::TcpStream, t0: Instant) -> (Vec<u8>, f64) {
    c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut buf = Vec::new();
    let r = c.read_to_end(&mut buf);
    let secs = t0.elapsed().as_secs_f64();
    // a reset counts as closed too; only the read timeout means "still open"
    if let Err(e) = r {
        assert!(
            !matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ),
            "the connection was still open after {secs:.1} s: {e}"
        );
    }
    (buf, secs)
}

#[test]
fn serve_cuts_off_clients_that_send_their_headers_slowly() {
    let k = Kit::new();
    // a generous body limit, a 1 s limit on the request head
    let s = k.serve(&[
        "challenge.header_timeout_s=1",
        "challenge.request_timeout_s=30",
    ]);
    let addr = s.addr();
    // a partial request line, then nothing: closed after the header timeout, no answer
    let t0 = Instant::now();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    c.write_all(b"GET /api/leaderb").unwrap();
    let (buf, secs) = read_until_closed(&mut c, t0);
    println!("stalled request line: closed after {secs:.2} s");
    assert!((0.8..4.0).contains(&secs), "closed after {secs:.2} s");
    assert!(
        buf.is_empty() || String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
    // headers trickled a byte every 200 ms (slowloris): the limit is on the whole head, so
    // the connection is closed after about 1 s although bytes keep coming
    let t0 = Instant::now();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    let head = b"GET /api/leaderboard HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut cut_after = None;
    for b in head.iter() {
        if c.write_all(&[*b]).is_err() {
            cut_after = Some(t0.elapsed().as_secs_f64());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
        if t0.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    let secs = match cut_after {
        Some(t) => t,
        None => read_until_closed(&mut c, t0).1,
    };
    println!("trickled headers: cut off after {secs:.2} s");
    assert!(secs < 4.0, "a slow client was served for {secs:.1} s");
    // an idle connection (nothing sent) is closed too
    let t0 = Instant::now();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    let (_, secs) = read_until_closed(&mut c, t0);
    println!("idle connection: closed after {secs:.2} s");
    assert!((0.8..4.0).contains(&secs), "closed after {secs:.2} s");
    // a normal request is answered, also on a connection kept alive for a second one
    let t0 = Instant::now();
    let mut c = std::net::TcpStream::connect(&addr).unwrap();
    let req = b"GET /api/leaderboard HTTP/1.1\r\nHost: x\r\n\r\n";
    c.write_all(req).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\"rows\"") {
        let n = c.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the answer");
        got.extend_from_slice(&chunk[..n]);
    }
    assert!(
        String::from_utf8_lossy(&got).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    let mut r = agent()
        .get(format!("{}/api/leaderboard", s.url))
        .call()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.body_mut().read_to_string().unwrap().contains("\"rows\""));
}

#[test]
fn serve_cli_client_submit_status_leaderboard() {
    let k = Kit::new();
    let a = k.team("alpha", false);
    let s = k.serve(&[]);
    let sub = k.sub("c.csv", 1, 2);
    let o = Command::new(BIN)
        .args([
            "-q",
            "challenge",
            "submit",
            "--server",
            &s.url,
            "--token",
            &a,
            "--wait",
        ])
        .arg(&sub)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        out.contains("submission #1 queued") && out.contains("scored; public score: F1"),
        "{out}"
    );
    let o = Command::new(BIN)
        .args(["-q", "challenge", "status", "--server", &s.url, "1"])
        .env("GAMMABENCH_TOKEN", &a)
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("#1: scored"));
    let o = Command::new(BIN)
        .args(["-q", "challenge", "leaderboard", "--server", &s.url])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && out.contains("alpha"), "{out}");
    // an invalid file: exit 2 with every problem
    let bad = k.dir.path().join("bad.csv");
    std::fs::write(&bad, "patch_id,x_pix,y_pix\n100,70,1\n").unwrap();
    let o = Command::new(BIN)
        .args([
            "-q",
            "challenge",
            "submit",
            "--server",
            &s.url,
            "--token",
            &a,
        ])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("2:2: x_pix: "));
}

/// The first of Debian's Chromium binaries on PATH.
fn chromium() -> Option<String> {
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find(|b| {
            Command::new(b)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
        })
        .map(|b| b.to_string())
}

#[test]
fn serve_leaderboard_page_in_headless_chromium() {
    let Some(browser) = chromium() else {
        eprintln!(
            "SKIPPED serve_leaderboard_page_in_headless_chromium: no chromium on PATH \
             (`apt-get install chromium`; .ci/run installs it where it can)"
        );
        return;
    };
    let k = Kit::new();
    let a = k.team("alpha team", false);
    let s = k.serve(&[]);
    let (st, v, _) =
        http_submit(&s.url, &a, &std::fs::read(k.sub("c.csv", 1, 1)).unwrap()).unwrap();
    assert_eq!(st, 202, "{v}");
    wait_all_scored(
        &s.url,
        &[(v["id"].as_i64().unwrap(), a)],
        Duration::from_secs(30),
    );
    let profile = k.dir.path().join("chromium-profile");
    let o = Command::new(&browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("{}/leaderboard", s.url))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{dom}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // rendered by the browser (no script on the page): the table, the team, the metrics
    assert!(
        dom.contains("<table>") && dom.contains("<th>F1</th>"),
        "{dom}"
    );
    assert!(dom.contains("alpha team"), "{dom}");
    assert!(
        !dom.contains("<th>TP</th>") && !dom.contains("<script"),
        "{dom}"
    );
}

/// Runs `c` in `dir`; its stdout, after asserting success.
fn run_ok(mut c: Command, dir: &std::path::Path, what: &str) -> String {
    let o = c.current_dir(dir).output().unwrap();
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        o.status.success(),
        "{what}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    out
}

/// The public F1 in `challenge submit --wait`'s last line.
fn printed_f1(out: &str) -> f64 {
    let tail = out
        .split("public score: F1 ")
        .nth(1)
        .unwrap_or_else(|| panic!("no score in {out}"));
    tail.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn starter_kit_baselines_are_scored_and_on_the_public_board() {
    let Some(python) = kit::python3("starter_kit_baselines_are_scored_and_on_the_public_board")
    else {
        return;
    };
    let k = Kit::with_training(24);
    let baseline_token = k.team("starter baseline", false);
    let reference_token = k.team("reference unek", false);
    let s = k.serve(&[]);
    // a participant downloads the public bundle from the front page's links and checks it
    let dl = k.dir.path().join("download");
    std::fs::create_dir_all(&dl).unwrap();
    let get = |name: &str| -> Vec<u8> {
        let mut r = agent()
            .get(format!("{}/files/{name}", s.url))
            .call()
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{name}");
        r.body_mut()
            .with_config()
            .limit(1 << 30)
            .read_to_vec()
            .unwrap()
    };
    let manifest = String::from_utf8(get("MANIFEST.sha256")).unwrap();
    for l in manifest.lines() {
        let (sha, name) = l.split_once("  ").unwrap();
        let bytes = get(name);
        assert_eq!(gammabench::formats::sha256_hex(&bytes), sha, "{name}");
        std::fs::write(dl.join(name), bytes).unwrap();
    }
    for f in [
        "baseline.py",
        "validate.py",
        "requirements.txt",
        "train_truth.csv",
    ] {
        assert!(dl.join(f).exists(), "{f} is not in the public bundle");
    }
    // the README's steps, as written, in the download folder
    let t0 = Instant::now();
    let mut c = Command::new(&python);
    c.args(["baseline.py", "--bundle", ".", "--out", "my_detections.csv"]);
    run_ok(c, &dl, "baseline.py");
    let baseline_secs = t0.elapsed().as_secs_f64();
    let mut c = Command::new(&python);
    c.args([
        "validate.py",
        "my_detections.csv",
        "--patches",
        "patches.csv",
    ]);
    let py_valid = run_ok(c, &dl, "validate.py");
    let mut c = Command::new(BIN);
    c.args([
        "challenge",
        "validate",
        "my_detections.csv",
        "--patches",
        "patches.csv",
    ]);
    assert_eq!(run_ok(c, &dl, "challenge validate"), py_valid);
    let mut c = Command::new(BIN);
    c.args([
        "challenge",
        "submit",
        "--server",
        &s.url,
        "--wait",
        "my_detections.csv",
    ])
    .env("GAMMABENCH_TOKEN", &baseline_token);
    let out = run_ok(c, &dl, "challenge submit");
    assert!(out.contains("submission #1 queued"), "{out}");
    let f1 = printed_f1(&out);
    let mut c = Command::new(BIN);
    c.args(["challenge", "status", "--server", &s.url, "1"])
        .env("GAMMABENCH_TOKEN", &baseline_token);
    assert!(run_ok(c, &dl, "challenge status").contains("#1: scored"));
    // the shipped pretrained detector: one command, its detections.csv is the submission
    let mut c = Command::new(BIN);
    c.args([
        "-q",
        "detect",
        "--model",
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("models/reference/segmentation-unet")
            .display()
            .to_string(),
        "--head",
        "unek",
        "--patches",
        ".",
        "--out",
        "reference",
    ]);
    run_ok(c, &dl, "detect --model");
    let mut c = Command::new(BIN);
    c.args([
        "challenge",
        "submit",
        "--server",
        &s.url,
        "--wait",
        "reference/detections.csv",
    ])
    .env("GAMMABENCH_TOKEN", &reference_token);
    let reference_f1 = printed_f1(&run_ok(c, &dl, "submit reference"));
    // both on the public leaderboard, with the scores the submitters saw
    let mut c = Command::new(BIN);
    c.args(["challenge", "leaderboard", "--server", &s.url]);
    let board = run_ok(c, &dl, "challenge leaderboard");
    assert!(
        board.contains("starter baseline") && board.contains("reference unek"),
        "{board}"
    );
    let mut r = agent()
        .get(format!("{}/api/leaderboard", s.url))
        .call()
        .unwrap();
    let v: Value = serde_json::from_str(&r.body_mut().read_to_string().unwrap()).unwrap();
    let row = |team: &str| {
        v["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["team"] == team)
            .unwrap_or_else(|| panic!("{team} not on the board: {v}"))
            .clone()
    };
    assert_eq!(row("starter baseline")["score"]["f1"].as_f64().unwrap(), f1);
    assert_eq!(
        row("reference unek")["score"]["f1"].as_f64().unwrap(),
        reference_f1
    );
    let page = agent()
        .get(format!("{}/leaderboard", s.url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(page.contains("starter baseline"), "{page}");
    println!(
        "starter kit on the test kit: baseline.py public F1 {f1:.4} ({baseline_secs:.1} s), \
         reference segmentation-unet/unek public F1 {reference_f1:.4}"
    );
    // a point-source finder must find some of the kit's bright sources
    assert!(f1 > 0.2 && reference_f1 > 0.0, "{f1} {reference_f1}");
}
