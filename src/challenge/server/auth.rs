//! Teams, bearer tokens and rate limits of the hosted challenge.
//!
//! A token is 32 random bytes (the thread CSPRNG, seeded from the OS) written as 64 hex
//! digits after `gbt_`; it is printed once by `challenge team add` and stored only as its
//! SHA-256. A request's token is hashed and compared with every active token's hash in
//! constant time ([`subtle`]), without stopping at the first match, so neither the answer
//! time nor the database's index order tells anything about a token.

use crate::challenge::db::{self, sql_err};
use crate::error::{Error, Result};
use rand::Rng;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq;

/// Who a request is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub team: String,
    /// The organiser (admin token): may see the private board, reveal, rescore; may not submit.
    pub admin: bool,
    /// Rate-limit key: the token's hash (never the token).
    pub key: String,
}

/// A new bearer token (`gbt_` + 64 hex digits).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::rng().random();
    format!("gbt_{}", hex::encode(bytes))
}

/// SHA-256 of a token, hex.
pub fn token_hash(token: &str) -> String {
    crate::formats::sha256_hex(token.as_bytes())
}

/// Constant-time equality of two hex hashes of equal length (different lengths: unequal).
pub fn hashes_equal(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// `challenge team add NAME [--admin]`: a new token for the team (printed once by the
/// caller, stored as a hash). A team that already has an active token must revoke it first.
pub fn add_team(db_path: &Path, team: &str, admin: bool) -> Result<String> {
    crate::challenge::check_team(team)?;
    let mut conn = db::open_db(db_path)?;
    let sql = sql_err(db_path);
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(&sql)?;
    let active: i64 = tx
        .query_row(
            "SELECT COUNT(*) FROM tokens WHERE team = ?1 AND revoked_utc IS NULL",
            [team],
            |r| r.get(0),
        )
        .map_err(&sql)?;
    if active > 0 {
        return Err(Error::Usage(format!(
            "team `{team}` has an active token already; `challenge team revoke` it first to \
             issue a new one"
        )));
    }
    let token = new_token();
    let (now, _) = db::stamp(std::time::SystemTime::now());
    tx.execute(
        "INSERT INTO tokens (team, token_sha256, admin, created_utc) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![team, token_hash(&token), admin as i64, now],
    )
    .map_err(&sql)?;
    db::audit(
        &tx,
        db_path,
        &db::AuditEntry {
            actor: "organiser (cli)",
            action: if admin { "admin token add" } else { "team add" },
            submission_id: None,
            sha256: None,
            result: team,
            address: None,
        },
    )?;
    tx.commit().map_err(&sql)?;
    Ok(token)
}

/// One line of `challenge team list`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TeamInfo {
    pub team: String,
    pub admin: bool,
    pub created_utc: String,
    pub revoked_utc: Option<String>,
    pub submissions: i64,
}

/// Every token ever issued (no token or hash), with the team's submission count.
pub fn list_teams(db_path: &Path) -> Result<Vec<TeamInfo>> {
    let conn = db::open_db(db_path)?;
    let sql = sql_err(db_path);
    let mut st = conn
        .prepare(
            "SELECT t.team, t.admin, t.created_utc, t.revoked_utc,
                (SELECT COUNT(*) FROM submissions s WHERE s.team = t.team)
             FROM tokens t ORDER BY t.team, t.id",
        )
        .map_err(&sql)?;
    let rows = st
        .query_map([], |r| {
            Ok(TeamInfo {
                team: r.get(0)?,
                admin: r.get::<_, i64>(1)? != 0,
                created_utc: r.get(2)?,
                revoked_utc: r.get(3)?,
                submissions: r.get(4)?,
            })
        })
        .map_err(&sql)?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(&sql)?;
    Ok(rows)
}

/// `challenge team revoke NAME`: revokes the team's active tokens; returns how many.
pub fn revoke_team(db_path: &Path, team: &str) -> Result<usize> {
    let conn = db::open_db(db_path)?;
    let (now, _) = db::stamp(std::time::SystemTime::now());
    let n = conn
        .execute(
            "UPDATE tokens SET revoked_utc = ?1 WHERE team = ?2 AND revoked_utc IS NULL",
            rusqlite::params![now, team],
        )
        .map_err(sql_err(db_path))?;
    if n == 0 {
        return Err(Error::Usage(format!("team `{team}` has no active token")));
    }
    db::audit(
        &conn,
        db_path,
        &db::AuditEntry {
            actor: "organiser (cli)",
            action: "team revoke",
            submission_id: None,
            sha256: None,
            result: team,
            address: None,
        },
    )?;
    Ok(n)
}

/// The identity of a bearer token, if it is active.
pub fn authenticate(
    conn: &rusqlite::Connection,
    db_path: &Path,
    token: &str,
) -> Result<Option<Identity>> {
    let given = token_hash(token.trim());
    let mut st = conn
        .prepare("SELECT team, token_sha256, admin FROM tokens WHERE revoked_utc IS NULL")
        .map_err(sql_err(db_path))?;
    let rows = st
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, i64>(2)?,
            ))
        })
        .map_err(sql_err(db_path))?;
    let mut found = None;
    for row in rows {
        let (team, hash, admin) = row.map_err(sql_err(db_path))?;
        // no early exit: every active token is compared
        if hashes_equal(&given, &hash) {
            found = Some(Identity {
                team,
                admin: admin != 0,
                key: hash,
            });
        }
    }
    Ok(found)
}

/// The bearer token of an `Authorization: Bearer TOKEN` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty()).then(|| token.trim())
}

/// Fixed one-minute windows of request counts per key (token hash or client address).
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_minute` requests per key and minute.
    pub fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request of `key`: `Err(seconds until the window resets)` when over the limit.
    pub fn check(&self, key: &str) -> std::result::Result<(), u64> {
        let now = Instant::now();
        let window = Duration::from_secs(60);
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() > 100_000 {
            w.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let e = w.entry(key.to_string()).or_insert((now, 0));
        if now.duration_since(e.0) >= window {
            *e = (now, 0);
        }
        if e.1 >= self.per_minute {
            let left = window.saturating_sub(now.duration_since(e.0));
            return Err(left.as_secs().max(1));
        }
        e.1 += 1;
        Ok(())
    }

    /// The limit per minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_tokens_are_random_hashed_and_compared_in_full() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 68);
        assert!(hashes_equal(&token_hash(&a), &token_hash(&a)));
        assert!(!hashes_equal(&token_hash(&a), &token_hash(&b)));
        assert!(!hashes_equal("ab", "abc"));
        assert_eq!(bearer("Bearer  gbt_x "), Some("gbt_x"));
        assert_eq!(bearer("Basic gbt_x"), None);
        assert_eq!(bearer("Bearer"), None);
    }

    #[test]
    fn challenge_rate_limiter_counts_per_key() {
        let r = RateLimiter::new(2);
        assert!(r.check("a").is_ok() && r.check("a").is_ok());
        let left = r.check("a").unwrap_err();
        assert!((1..=60).contains(&left));
        assert!(r.check("b").is_ok());
    }
}
