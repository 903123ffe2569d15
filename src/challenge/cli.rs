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
pub fn build(c: &ExperimentConfig, patches_dir: Option<&Path>, out: &Path) -> Result<()> {
    let dir = patches_dir
        .map(Path::to_path_buf)
        .or_else(|| c.challenge.patches_dir.clone())
        .ok_or_else(|| Error::Usage("give --patches-dir or challenge.patches_dir".into()))?;
    let s = super::build(c, &dir, out)?;
    log::info!(
        "{} patches: public bundle {}, private bundle {}",
        s.n_patches,
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
