//! The `challenge` verbs: build the bundles, validate a submission, submit, leaderboard.

use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// The leaderboard database: `--db`, else `challenge.database`, else in the run store.
pub fn db_path(store_root: &Path, db: Option<&Path>, c: &ExperimentConfig) -> PathBuf {
    db.map(Path::to_path_buf)
        .or_else(|| c.challenge.database.clone())
        .unwrap_or_else(|| store_root.join("challenge").join("leaderboard.sqlite"))
}

/// `challenge build`: public and private bundles of a patches directory.
pub fn build(
    c: &ExperimentConfig,
    patches_dir: Option<&Path>,
    out: &Path,
    allow_known_sky: bool,
) -> Result<()> {
    let dir = patches_dir
        .map(Path::to_path_buf)
        .or_else(|| c.challenge.patches_dir.clone())
        .ok_or_else(|| Error::Usage("give --patches-dir or challenge.patches_dir".into()))?;
    let s = super::build(c, &dir, out, allow_known_sky)?;
    log::info!(
        "{} test patches, {} training patches: public bundle {}, private bundle {}",
        s.n_patches,
        s.n_train_patches,
        s.public_dir.display(),
        s.private_dir.display()
    );
    Ok(())
}

/// `challenge validate`: every problem of a submission on stderr; an error when invalid.
pub fn validate(c: &ExperimentConfig, submission: &Path, patches: Option<&Path>) -> Result<()> {
    let patches = patches
        .map(Path::to_path_buf)
        .or_else(|| {
            c.challenge
                .private_dir
                .as_ref()
                .map(|d| d.join("patches.csv"))
        })
        .ok_or_else(|| Error::Usage("give --patches patches.csv".into()))?;
    let p = super::validate(&c.challenge, &patches, submission)?;
    if p.problems.is_empty() {
        println!(
            "{}: valid ({} detections, {} format)",
            submission.display(),
            p.detections.len(),
            match p.format {
                Some(crate::score::input::DetectionFormat::Published) => "published",
                _ => "gammabench",
            }
        );
        Ok(())
    } else {
        eprint!("{}", super::format_problems(submission, &p));
        Err(Error::Usage(format!(
            "{}: invalid ({} problems)",
            submission.display(),
            p.problems.len() + p.more_problems
        )))
    }
}

/// `challenge submit`: validates, scores both halves and records the submission.
pub fn submit(
    store_root: &Path,
    c: &ExperimentConfig,
    team: &str,
    submission: &Path,
    private: Option<&Path>,
    db: Option<&Path>,
) -> Result<()> {
    let private = private
        .map(Path::to_path_buf)
        .or_else(|| c.challenge.private_dir.clone())
        .ok_or_else(|| Error::Usage("give --private DIR or challenge.private_dir".into()))?;
    let db = db_path(store_root, db, c);
    match super::submit(
        c,
        &private,
        &db,
        team,
        submission,
        std::time::SystemTime::now(),
    )? {
        super::SubmitOutcome::Recorded { id, public } => {
            println!(
                "submission #{id} of team `{team}` recorded; public score: F1 {:.4} (purity {:.4}, completeness {:.4})",
                public.f1, public.purity, public.completeness
            );
            Ok(())
        }
        super::SubmitOutcome::Identical { id, submitted_utc } => {
            println!(
                "identical to submission #{id} of team `{team}` ({submitted_utc}); not counted again"
            );
            Ok(())
        }
        super::SubmitOutcome::LimitReached { limit, day } => Err(Error::Usage(format!(
            "team `{team}` has used its {limit} submissions for {day} (UTC)"
        ))),
    }
}

/// `challenge submit --server URL --token T FILE`: the file to the hosted challenge; with
/// `wait`, polls until it is scored or failed and prints the public score.
pub fn submit_remote(server: &str, token: &str, file: &Path, wait: bool) -> Result<()> {
    let a = super::client::submit(server, token, file)?;
    if !(200..300).contains(&a.status) {
        return Err(super::client::answer_error(&a));
    }
    let id = a.body["id"].as_i64().unwrap_or(0);
    if a.body["identical"].as_bool() == Some(true) {
        println!(
            "{}",
            a.body["message"]
                .as_str()
                .unwrap_or("identical file; not counted again")
        );
    } else {
        println!("submission #{id} queued");
    }
    if wait {
        loop {
            let s = super::client::status(server, token, id)?;
            if s.status != 200 {
                return Err(super::client::answer_error(&s));
            }
            match s.body["status"].as_str() {
                Some("scored") | Some("failed") => return print_status(&s.body),
                _ => std::thread::sleep(std::time::Duration::from_millis(500)),
            }
        }
    }
    Ok(())
}

/// S90 of a JSON score as the leaderboard shows it.
fn s90_json_text(s: &serde_json::Value) -> String {
    match (s["s90_status"].as_str(), s["s90_s1"].as_f64()) {
        (Some("reached"), Some(v)) => format!("{v:.3e}"),
        (Some("reached_at_lowest_bin"), Some(v)) => format!("<= {v:.3e}"),
        _ => "not_reached".into(),
    }
}

fn print_status(b: &serde_json::Value) -> Result<()> {
    let id = b["id"].as_i64().unwrap_or(0);
    match b["status"].as_str().unwrap_or("?") {
        "scored" => println!(
            "submission #{id}: scored; public score: F1 {:.4} (purity {:.4}, completeness {:.4}), S90 {}",
            b["public"]["f1"].as_f64().unwrap_or(0.0),
            b["public"]["purity"].as_f64().unwrap_or(0.0),
            b["public"]["completeness"].as_f64().unwrap_or(0.0),
            s90_json_text(&b["public"])
        ),
        "failed" => println!(
            "submission #{id}: failed: {}",
            b["reason"].as_str().unwrap_or("")
        ),
        st => println!("submission #{id}: {st}"),
    }
    Ok(())
}

/// `challenge status --server URL --token T ID`.
pub fn status_remote(server: &str, token: &str, id: i64) -> Result<()> {
    let a = super::client::status(server, token, id)?;
    if a.status != 200 {
        return Err(super::client::answer_error(&a));
    }
    print_status(&a.body)
}

/// `challenge leaderboard --server URL`: the board as a table on stdout.
pub fn leaderboard_remote(server: &str, token: Option<&str>, private: bool) -> Result<()> {
    let a = super::client::leaderboard(server, token, private)?;
    if a.status != 200 {
        return Err(super::client::answer_error(&a));
    }
    println!(
        "{:>4}  {:<24} {:>7} {:>7} {:>7} {:>11}  submissions",
        "rank", "team", "F1", "purity", "compl.", "S90"
    );
    for r in a.body["rows"].as_array().into_iter().flatten() {
        let s = &r["score"];
        println!(
            "{:>4}  {:<24} {:>7.4} {:>7.4} {:>7.4} {:>11}  {}",
            r["rank"].as_u64().unwrap_or(0),
            r["team"].as_str().unwrap_or(""),
            s["f1"].as_f64().unwrap_or(0.0),
            s["purity"].as_f64().unwrap_or(0.0),
            s["completeness"].as_f64().unwrap_or(0.0),
            s90_json_text(s),
            r["submissions"].as_u64().unwrap_or(0)
        );
    }
    Ok(())
}

/// `challenge team add NAME [--admin]`: prints the new token (once).
pub fn team_add(db: &Path, team: &str, admin: bool) -> Result<()> {
    let token = super::server::auth::add_team(db, team, admin)?;
    println!("{token}");
    log::info!(
        "{} `{team}` added to {}; the token above is shown only now (stored as its SHA-256)",
        if admin { "organiser" } else { "team" },
        db.display()
    );
    Ok(())
}

/// `challenge team list`.
pub fn team_list(db: &Path) -> Result<()> {
    println!("team\trole\tcreated_utc\trevoked_utc\tsubmissions");
    for t in super::server::auth::list_teams(db)? {
        println!(
            "{}\t{}\t{}\t{}\t{}",
            t.team,
            if t.admin { "organiser" } else { "team" },
            t.created_utc,
            t.revoked_utc.as_deref().unwrap_or("-"),
            t.submissions
        );
    }
    Ok(())
}

/// `challenge team revoke NAME`.
pub fn team_revoke(db: &Path, team: &str) -> Result<()> {
    let n = super::server::auth::revoke_team(db, team)?;
    println!("revoked {n} token(s) of `{team}`");
    Ok(())
}

/// `gammabench serve --challenge DIR [--addr A] [--db F]`.
pub fn serve(
    store_root: &Path,
    c: &ExperimentConfig,
    challenge_dir: &Path,
    addr: &str,
    db: Option<&Path>,
) -> Result<()> {
    let db = db_path(store_root, db, c);
    super::server::run(c, challenge_dir, addr, &db)
}

/// `challenge leaderboard`: the public (or private) leaderboard files.
pub fn leaderboard(
    store_root: &Path,
    c: &ExperimentConfig,
    private: bool,
    out: &Path,
    db: Option<&Path>,
) -> Result<()> {
    let db = db_path(store_root, db, c);
    let rows = super::leaderboard(&db, private, c.score.match_radius_deg, out)?;
    log::info!(
        "{} teams ({} half) -> {}",
        rows.len(),
        if private { "private" } else { "public" },
        out.display()
    );
    Ok(())
}
