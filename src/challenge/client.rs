//! The command-line client of the hosted challenge (`challenge submit --server`, `status`,
//! `leaderboard --server`): plain HTTP(S) calls of the JSON API with `ureq`.

use crate::error::{Error, Result};
use std::path::Path;

/// An answer: HTTP status and JSON body (or `{"error": text}` when the body is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(600)))
        .build()
        .into()
}

fn answer(
    server: &str,
    r: std::result::Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<Answer> {
    let mut r = r.map_err(|e| Error::Usage(format!("{server}: {e}")))?;
    let status = r.status().as_u16();
    let text = r
        .body_mut()
        .read_to_string()
        .map_err(|e| Error::Usage(format!("{server}: reading the answer: {e}")))?;
    let body = serde_json::from_str(&text).unwrap_or_else(|_| serde_json::json!({ "error": text }));
    Ok(Answer { status, body })
}

fn url(server: &str, path: &str) -> String {
    format!("{}{path}", server.trim_end_matches('/'))
}

/// `POST /api/submissions` with the file as the raw body.
pub fn submit(server: &str, token: &str, file: &Path) -> Result<Answer> {
    let bytes =
        std::fs::read(file).map_err(|e| Error::bad_file(file, format!("cannot read: {e}")))?;
    let r = agent()
        .post(url(server, "/api/submissions"))
        .header("Authorization", format!("Bearer {token}"))
        .header("Content-Type", "text/csv")
        .send(&bytes[..]);
    answer(server, r)
}

/// `GET /api/submissions/{id}`.
pub fn status(server: &str, token: &str, id: i64) -> Result<Answer> {
    let r = agent()
        .get(url(server, &format!("/api/submissions/{id}")))
        .header("Authorization", format!("Bearer {token}"))
        .call();
    answer(server, r)
}

/// `GET /api/leaderboard?half=...` (the token is optional: the organiser's shows the private
/// half before the reveal).
pub fn leaderboard(server: &str, token: Option<&str>, private: bool) -> Result<Answer> {
    let mut req = agent().get(url(
        server,
        &format!(
            "/api/leaderboard?half={}",
            if private { "private" } else { "public" }
        ),
    ));
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    answer(server, req.call())
}

/// The error of a non-2xx answer: its `error` text and, for 422, every problem.
pub fn answer_error(a: &Answer) -> Error {
    let mut msg = format!(
        "HTTP {}: {}",
        a.status,
        a.body["error"].as_str().unwrap_or("(no message)")
    );
    if let Some(p) = a.body["problems"].as_array() {
        for q in p {
            msg.push_str(&format!("\n  {}", q.as_str().unwrap_or("")));
        }
    }
    if let Some(r) = a.body["resets_utc"].as_str() {
        msg.push_str(&format!(" (resets {r})"));
    }
    Error::Usage(msg)
}
