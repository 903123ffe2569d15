//! The challenge database (SQLite in WAL mode), shared by the local `challenge submit` and the
//! hosted service (`gammabench serve`):
//!
//! * `submissions`: one row per accepted submission with its status (`queued | scoring |
//!   scored | failed`), the reason of a failure, both halves' scores once scored, and the
//!   name of the stored file (content-addressed by SHA-256) for the queue;
//! * `tokens`: team and organiser bearer tokens, stored only as their SHA-256;
//! * `audit`: append-only log (who, what, when, file hash, result); triggers refuse any
//!   `UPDATE` or `DELETE`;
//! * `settings`: the organiser's switches (`revealed`).
//!
//! [`admit`] is the one admission rule (identical file, daily limit) of both submit paths.

use crate::error::{Error, Result};
use rusqlite::OptionalExtension;
use std::path::Path;

/// Submission status values.
pub const QUEUED: &str = "queued";
pub const SCORING: &str = "scoring";
pub const SCORED: &str = "scored";
pub const FAILED: &str = "failed";

/// The error of a database call on `path`.
pub fn sql_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + '_ {
    move |e| Error::Internal(format!("leaderboard {}: {e}", path.display()))
}

/// Opens (and creates or upgrades) the challenge database.
pub fn open_db(path: &Path) -> Result<rusqlite::Connection> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let sql = sql_err(path);
    let conn = rusqlite::Connection::open(path).map_err(&sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(60))
        .map_err(&sql)?;
    // switching to WAL needs a lock; retry while another process holds it
    let mut tries = 0;
    loop {
        match conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => break,
            Err(e) if tries < 200 => {
                tries += 1;
                log::debug!("journal_mode: {e}; retrying");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            Err(e) => return Err(sql(e)),
        }
    }
    // FULL: a commit is on disk before the call returns (the service answers 202 after it)
    conn.execute_batch(
        "PRAGMA synchronous=FULL;
         CREATE TABLE IF NOT EXISTS submissions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            team TEXT NOT NULL,
            submitted_utc TEXT NOT NULL,
            day TEXT NOT NULL,
            sha256 TEXT NOT NULL,
            file_name TEXT NOT NULL,
            n_detections INTEGER NOT NULL,
            public_json TEXT NOT NULL,
            private_json TEXT NOT NULL,
            public_f1 REAL NOT NULL,
            private_f1 REAL NOT NULL
         );
         CREATE INDEX IF NOT EXISTS by_team_day ON submissions(team, day);
         CREATE TABLE IF NOT EXISTS tokens (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            team TEXT NOT NULL,
            token_sha256 TEXT NOT NULL UNIQUE,
            admin INTEGER NOT NULL DEFAULT 0,
            created_utc TEXT NOT NULL,
            revoked_utc TEXT
         );
         CREATE TABLE IF NOT EXISTS audit (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            utc TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            submission_id INTEGER,
            sha256 TEXT,
            result TEXT NOT NULL,
            address TEXT
         );
         CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
         CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
            BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
         CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);",
    )
    .map_err(&sql)?;
    upgrade(&conn, path)?;
    Ok(conn)
}

/// A read-only connection to an existing database (no schema work).
pub fn open_read(path: &Path) -> Result<rusqlite::Connection> {
    let sql = sql_err(path);
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(60))
        .map_err(&sql)?;
    Ok(conn)
}

/// Adds the queue columns to a database written before the service existed (rows already
/// there are `scored`).
fn upgrade(conn: &rusqlite::Connection, path: &Path) -> Result<()> {
    let sql = sql_err(path);
    let has = |conn: &rusqlite::Connection| -> Result<bool> {
        let mut st = conn
            .prepare("SELECT name FROM pragma_table_info('submissions')")
            .map_err(&sql)?;
        let names: Vec<String> = st
            .query_map([], |r| r.get(0))
            .map_err(&sql)?
            .collect::<std::result::Result<_, _>>()
            .map_err(&sql)?;
        Ok(names.iter().any(|n| n == "status"))
    };
    if has(conn)? {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE").map_err(&sql)?;
    let r = (|| -> Result<()> {
        if !has(conn)? {
            conn.execute_batch(
                "ALTER TABLE submissions ADD COLUMN status TEXT NOT NULL DEFAULT 'scored';
                 ALTER TABLE submissions ADD COLUMN reason TEXT;
                 ALTER TABLE submissions ADD COLUMN stored_file TEXT;
                 ALTER TABLE submissions ADD COLUMN finished_utc TEXT;
                 CREATE INDEX IF NOT EXISTS by_status ON submissions(status, id);",
            )
            .map_err(&sql)?;
        }
        Ok(())
    })();
    match r {
        Ok(()) => conn.execute_batch("COMMIT").map_err(&sql),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// RFC 3339 time (milliseconds) and UTC day of `now`.
pub fn stamp(now: std::time::SystemTime) -> (String, String) {
    let s = humantime::format_rfc3339_millis(now).to_string();
    let day = s[..10].to_string();
    (s, day)
}

/// The start of the UTC day after `now` (when the daily limit resets), RFC 3339.
pub fn next_day_utc(now: std::time::SystemTime) -> String {
    let secs = now
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let next = (secs / 86_400 + 1) * 86_400;
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(next))
        .to_string()
}

/// Whether a new submission of `team` with file hash `sha` is taken.
#[derive(Debug, Clone, PartialEq)]
pub enum Admission {
    /// Take it.
    New,
    /// The same file was already taken (and has not failed) for this team.
    Identical { id: i64, submitted_utc: String },
    /// The team has used its `limit` submissions of `day`; failed jobs do not count.
    LimitReached { limit: u32, day: String },
}

/// The admission rule of both submit paths; call inside an immediate transaction so that
/// concurrent submitters are serialised.
pub fn admit(
    tx: &rusqlite::Connection,
    path: &Path,
    team: &str,
    sha: &str,
    day: &str,
    limit: u32,
) -> Result<Admission> {
    let sql = sql_err(path);
    let same: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, submitted_utc FROM submissions
             WHERE team = ?1 AND sha256 = ?2 AND status <> 'failed' ORDER BY id LIMIT 1",
            rusqlite::params![team, sha],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(&sql)?;
    if let Some((id, submitted_utc)) = same {
        return Ok(Admission::Identical { id, submitted_utc });
    }
    let today: u32 = tx
        .query_row(
            "SELECT COUNT(*) FROM submissions WHERE team = ?1 AND day = ?2 AND status <> 'failed'",
            rusqlite::params![team, day],
            |r| r.get(0),
        )
        .map_err(&sql)?;
    if today >= limit {
        return Ok(Admission::LimitReached {
            limit,
            day: day.to_string(),
        });
    }
    Ok(Admission::New)
}

/// A new submission row (queued when `scores` is `None`, else scored).
pub struct NewSubmission<'a> {
    pub team: &'a str,
    pub submitted_utc: &'a str,
    pub day: &'a str,
    pub sha256: &'a str,
    pub file_name: &'a str,
    pub stored_file: Option<&'a str>,
    pub n_detections: usize,
    pub scores: Option<(&'a super::HalfScore, &'a super::HalfScore)>,
}

/// Inserts a submission; returns its id.
pub fn insert(tx: &rusqlite::Connection, path: &Path, s: &NewSubmission) -> Result<i64> {
    let js = |h: Option<&super::HalfScore>| {
        serde_json::to_string(&h).map_err(|e| Error::Internal(e.to_string()))
    };
    let (pubs, privs) = (s.scores.map(|x| x.0), s.scores.map(|x| x.1));
    tx.execute(
        "INSERT INTO submissions (team, submitted_utc, day, sha256, file_name, n_detections,
            public_json, private_json, public_f1, private_f1, status, stored_file, finished_utc)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        rusqlite::params![
            s.team,
            s.submitted_utc,
            s.day,
            s.sha256,
            s.file_name,
            s.n_detections as i64,
            js(pubs)?,
            js(privs)?,
            pubs.map(|h| h.f1).unwrap_or(0.0),
            privs.map(|h| h.f1).unwrap_or(0.0),
            if s.scores.is_some() { SCORED } else { QUEUED },
            s.stored_file,
            s.scores.map(|_| s.submitted_utc),
        ],
    )
    .map_err(sql_err(path))?;
    Ok(tx.last_insert_rowid())
}

/// One audit-log entry.
pub struct AuditEntry<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub submission_id: Option<i64>,
    pub sha256: Option<&'a str>,
    pub result: &'a str,
    pub address: Option<&'a str>,
}

/// Appends to the audit log.
pub fn audit(conn: &rusqlite::Connection, path: &Path, e: &AuditEntry) -> Result<()> {
    let (utc, _) = stamp(std::time::SystemTime::now());
    conn.execute(
        "INSERT INTO audit (utc, actor, action, submission_id, sha256, result, address)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        rusqlite::params![
            utc,
            e.actor,
            e.action,
            e.submission_id,
            e.sha256,
            e.result,
            e.address
        ],
    )
    .map_err(sql_err(path))?;
    Ok(())
}

/// A setting of the organiser (`None` when never set).
pub fn setting(conn: &rusqlite::Connection, path: &Path, key: &str) -> Result<Option<String>> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
        r.get(0)
    })
    .optional()
    .map_err(sql_err(path))
}

/// Sets a setting of the organiser.
pub fn set_setting(conn: &rusqlite::Connection, path: &Path, key: &str, value: &str) -> Result<()> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        [key, value],
    )
    .map_err(sql_err(path))?;
    Ok(())
}
