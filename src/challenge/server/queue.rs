//! The scoring queue: the `submissions` table is the queue (durable before the 202), worked
//! by `challenge.workers` tasks. Each job is scored on a blocking thread under
//! `challenge.job_timeout_s`; a job over its limit, or whose scorer panicked, ends `failed`
//! with the reason and does not count against the daily limit. At start, jobs left
//! `scoring` by a stop or a crash are queued again ([`recover`]).

use super::App;
use crate::challenge::db::{self, AuditEntry, sql_err};
use crate::error::Result;
use rusqlite::OptionalExtension;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A claimed job.
#[derive(Debug, Clone)]
pub struct Job {
    pub id: i64,
    pub team: String,
    pub sha256: String,
    pub stored_file: String,
}

/// Queues again every job left `scoring`; returns the number of jobs now queued.
pub fn recover(conn: &rusqlite::Connection, path: &Path) -> Result<usize> {
    let sql = sql_err(path);
    conn.execute(
        "UPDATE submissions SET status = 'queued' WHERE status = 'scoring'",
        [],
    )
    .map_err(&sql)?;
    let n: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM submissions WHERE status = 'queued'",
            [],
            |r| r.get(0),
        )
        .map_err(&sql)?;
    Ok(n as usize)
}

/// Takes the oldest queued job (marks it `scoring`).
pub fn claim(conn: &rusqlite::Connection, path: &Path) -> Result<Option<Job>> {
    conn.query_row(
        "UPDATE submissions SET status = 'scoring'
         WHERE id = (SELECT id FROM submissions WHERE status = 'queued'
                     AND stored_file IS NOT NULL ORDER BY id LIMIT 1)
         RETURNING id, team, sha256, stored_file",
        [],
        |r| {
            Ok(Job {
                id: r.get(0)?,
                team: r.get(1)?,
                sha256: r.get(2)?,
                stored_file: r.get(3)?,
            })
        },
    )
    .optional()
    .map_err(sql_err(path))
}

/// Starts the workers; they stop when `stop` turns true (after their current job).
pub fn spawn_workers(
    app: Arc<App>,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..app.cfg.challenge.workers)
        .map(|_| tokio::spawn(worker(app.clone(), stop.clone())))
        .collect()
}

async fn worker(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        if *stop.borrow() {
            return;
        }
        match app.db(|c, p| claim(c, p)).await {
            Ok(Some(job)) => run_job(&app, job).await,
            Ok(None) => {
                tokio::select! {
                    _ = app.wake.notified() => {}
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                    // stop, or the stopping side is gone (the service was dropped)
                    r = stop.changed() => if r.is_err() { return },
                }
            }
            Err(e) => {
                log::error!("queue: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// What a job ended as.
enum Outcome {
    Scored(
        crate::challenge::HalfScore,
        crate::challenge::HalfScore,
        usize,
    ),
    Failed(String),
}

async fn run_job(app: &Arc<App>, job: Job) {
    let limit = app.cfg.challenge.job_timeout_s;
    let scorer = app.scorer.clone();
    let path = app.files_dir.join(&job.stored_file);
    let id = job.id;
    let task = tokio::task::spawn_blocking(move || -> std::result::Result<_, String> {
        let parsed = scorer.parse(&path).map_err(|e| {
            log::error!("job #{id}: {e}");
            "the stored file could not be read (internal error)".to_string()
        })?;
        if let Some(p) = parsed.problems.first() {
            return Err(format!(
                "invalid: {}:{}: {}: {}",
                p.line, p.column, p.field, p.message
            ));
        }
        let (public, private) = scorer.score(&parsed.detections);
        Ok((public, private, parsed.detections.len()))
    });
    let outcome = match tokio::time::timeout(Duration::from_secs_f64(limit), task).await {
        Err(_) => Outcome::Failed(format!(
            "scoring took longer than the limit of {limit} s; not counted against the daily limit"
        )),
        Ok(Err(e)) => {
            log::error!("job #{id}: scorer task: {e}");
            Outcome::Failed(
                "the scorer crashed (internal error); not counted against the daily limit".into(),
            )
        }
        Ok(Ok(Err(reason))) => Outcome::Failed(reason),
        Ok(Ok(Ok((public, private, n)))) => Outcome::Scored(public, private, n),
    };
    let r = app
        .db(move |c, p| {
            let (now, _) = db::stamp(std::time::SystemTime::now());
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql_err(p))?;
            let result = match &outcome {
                Outcome::Scored(public, private, n) => {
                    let js = |h: &crate::challenge::HalfScore| {
                        serde_json::to_string(h)
                            .map_err(|e| crate::error::Error::Internal(e.to_string()))
                    };
                    tx.execute(
                        "UPDATE submissions SET status = 'scored', reason = NULL,
                            public_json = ?1, private_json = ?2, public_f1 = ?3,
                            private_f1 = ?4, n_detections = ?5, finished_utc = ?6
                         WHERE id = ?7",
                        rusqlite::params![
                            js(public)?,
                            js(private)?,
                            public.f1,
                            private.f1,
                            *n as i64,
                            now,
                            job.id
                        ],
                    )
                    .map_err(sql_err(p))?;
                    format!(
                        "scored: public F1 {:.4}, private F1 {:.4}",
                        public.f1, private.f1
                    )
                }
                Outcome::Failed(reason) => {
                    tx.execute(
                        "UPDATE submissions SET status = 'failed', reason = ?1, finished_utc = ?2
                         WHERE id = ?3",
                        rusqlite::params![reason, now, job.id],
                    )
                    .map_err(sql_err(p))?;
                    format!("failed: {reason}")
                }
            };
            db::audit(
                &tx,
                p,
                &AuditEntry {
                    actor: "scorer",
                    action: "score",
                    submission_id: Some(job.id),
                    sha256: Some(&job.sha256),
                    result: &result,
                    address: None,
                },
            )?;
            tx.commit().map_err(sql_err(p))?;
            log::info!("job #{} of `{}`: {result}", job.id, job.team);
            Ok(())
        })
        .await;
    if let Err(e) = r {
        log::error!("job #{id}: recording the result: {e}");
    }
}
