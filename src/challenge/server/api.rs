//! The JSON API. Every error is `{"error": "..."}` (plus fields named in the README); no
//! answer to a participant carries a truth value, a seed, a private-half score or a TP/FP/FN
//! count.

use super::App;
use super::auth::{self, Identity};
use crate::challenge::db::{self, AuditEntry, sql_err};
use crate::challenge::{HalfScore, PublicScore, board_json, board_of};
use crate::error::Error;
use axum::Json;
use axum::extract::{ConnectInfo, FromRequest, Path as UrlPath, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use rusqlite::OptionalExtension;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::Arc;

/// An error answer: status, JSON body, optional `Retry-After`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    /// `{"error": message}` with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({ "error": message.into() }),
            retry_after_s: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, Json(self.body)).into_response();
        if let Some(s) = self.retry_after_s
            && let Ok(v) = HeaderValue::from_str(&s.to_string())
        {
            r.headers_mut().insert(header::RETRY_AFTER, v);
        }
        r
    }
}

/// An internal failure: logged in full, answered without detail (a path or an SQL message
/// is no business of a participant).
impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        log::error!("{e}");
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

type ApiResult = std::result::Result<Response, ApiError>;

/// Every request: the per-address rate limit and the request time limit (a slow client,
/// headers or body, gets 408).
pub async fn guard(
    State(app): State<Arc<App>>,
    req: Request,
    next: axum::middleware::Next,
) -> Response {
    if let Some(ConnectInfo(addr)) = req.extensions().get::<ConnectInfo<SocketAddr>>()
        && let Err(left) = app.address_limits.check(&addr.ip().to_string())
    {
        return rate_limited("address", app.address_limits.per_minute(), left).into_response();
    }
    let limit = std::time::Duration::from_secs_f64(app.cfg.challenge.request_timeout_s);
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request took longer than {} s",
                app.cfg.challenge.request_timeout_s
            ),
        )
        .into_response(),
    }
}

fn rate_limited(what: &str, per_minute: u32, left: u64) -> ApiError {
    let resets = std::time::SystemTime::now() + std::time::Duration::from_secs(left);
    ApiError {
        status: StatusCode::TOO_MANY_REQUESTS,
        body: json!({
            "error": format!("rate limit: {per_minute} requests per minute per {what}"),
            "reason": "rate_limit",
            "resets_utc": humantime::format_rfc3339_seconds(resets).to_string(),
        }),
        retry_after_s: Some(left),
    }
}

/// Unknown route: 404.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not found")
}

fn address(headers: &HeaderMap, ci: Option<&ConnectInfo<SocketAddr>>) -> Option<String> {
    let _ = headers;
    ci.map(|c| c.0.ip().to_string())
}

/// The identity of a token, with the per-token rate limit; 401 when it is not active.
async fn identify(
    app: &Arc<App>,
    token: Option<String>,
) -> std::result::Result<Identity, ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing or invalid token: send `Authorization: Bearer TOKEN` (from the organiser)",
        )
    };
    let token = token.ok_or_else(unauthorized)?;
    // a fresh connection: tokens are added and revoked by another process while serving
    let path = app.db_path.clone();
    let id = tokio::task::spawn_blocking(move || {
        let c = db::open_read(&path)?;
        auth::authenticate(&c, &path, &token)
    })
    .await
    .map_err(|e| Error::Internal(format!("token check: {e}")))??
    .ok_or_else(unauthorized)?;
    if let Err(left) = app.token_limits.check(&id.key) {
        return Err(rate_limited("token", app.token_limits.per_minute(), left));
    }
    Ok(id)
}

fn header_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(auth::bearer)
        .map(str::to_string)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("the file is over the limit of {limit} bytes"),
    )
}

/// The submission's bytes, file name and form token (a browser form sends the token as a
/// field): the multipart field `file`, or the raw body.
async fn read_upload(
    app: &Arc<App>,
    req: Request,
) -> std::result::Result<(Vec<u8>, String, Option<String>), ApiError> {
    let limit = app.cfg.challenge.max_file_bytes;
    let multipart = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("multipart/form-data"));
    if !multipart {
        let body = axum::body::to_bytes(req.into_body(), limit as usize + 1)
            .await
            .map_err(|_| too_large(limit))?;
        if body.len() as u64 > limit {
            return Err(too_large(limit));
        }
        return Ok((body.to_vec(), "upload.csv".into(), None));
    }
    let bad = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large(limit)
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("multipart body: {}", e.body_text()),
            )
        }
    };
    let mut mp = axum::extract::Multipart::from_request(req, &())
        .await
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))?;
    let (mut file, mut name, mut token) = (None, String::from("upload.csv"), None);
    while let Some(mut field) = mp.next_field().await.map_err(bad)? {
        match field.name() {
            Some("file") => {
                if let Some(n) = field.file_name() {
                    name = n.chars().filter(|c| !c.is_control()).take(200).collect();
                }
                let mut buf = Vec::new();
                while let Some(chunk) = field.chunk().await.map_err(bad)? {
                    buf.extend_from_slice(&chunk);
                    if buf.len() as u64 > limit {
                        return Err(too_large(limit));
                    }
                }
                file = Some(buf);
            }
            Some("token") => {
                let t = field.text().await.map_err(bad)?;
                token = Some(t.chars().take(256).collect::<String>().trim().to_string());
            }
            _ => {}
        }
    }
    let file = file.ok_or_else(|| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "multipart body without a `file` field",
        )
    })?;
    Ok((file, name, token))
}

/// Writes `bytes` to `path` and fsyncs the file and its directory.
fn durable_write(path: &std::path::Path, bytes: &[u8]) -> crate::error::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(std::path::Path::new("."));
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        std::process::id()
    ));
    let r = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    r.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })
}

/// `POST /api/submissions`: validate, store durably, queue; 202 `{"id", "status"}`.
pub async fn submit(State(app): State<Arc<App>>, req: Request) -> ApiResult {
    let ci = req.extensions().get::<ConnectInfo<SocketAddr>>().cloned();
    let addr = address(req.headers(), ci.as_ref());
    let header = header_token(req.headers());
    // with a header token, refuse before reading a body
    let mut who = match &header {
        Some(_) => Some(identify(&app, header.clone()).await?),
        None => None,
    };
    let (bytes, file_name, form_token) = read_upload(&app, req).await?;
    if who.is_none() {
        who = Some(identify(&app, form_token).await?);
    }
    let who = who.ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "missing token"))?;
    if who.admin {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the organiser's token does not submit; use a team token",
        ));
    }
    let sha = crate::formats::sha256_hex(&bytes);
    // validate from a private temporary file, then keep it under its hash
    let stored = format!("{sha}.csv");
    let final_path = app.files_dir.join(&stored);
    let tmp = app.files_dir.join(format!(
        ".upload-{}-{}.tmp",
        std::process::id(),
        auth::new_token()
    ));
    let scorer = app.scorer.clone();
    let (tmp2, final2) = (tmp.clone(), final_path.clone());
    let parsed = tokio::task::spawn_blocking(move || -> crate::error::Result<_> {
        std::fs::write(&tmp2, &bytes).map_err(|e| Error::io(&tmp2, e))?;
        let parsed = scorer.parse(&tmp2);
        let parsed = match parsed {
            Ok(p) => p,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp2);
                return Err(e);
            }
        };
        if parsed.problems.is_empty() {
            durable_write(&final2, &bytes)?;
        }
        let _ = std::fs::remove_file(&tmp2);
        Ok(parsed)
    })
    .await
    .map_err(|e| Error::Internal(format!("validation task: {e}")))??;
    let team = who.team.clone();
    if !parsed.problems.is_empty() {
        let problems: Vec<String> = parsed
            .problems
            .iter()
            .map(|q| format!("{}:{}: {}: {}", q.line, q.column, q.field, q.message))
            .collect();
        let n = problems.len() + parsed.more_problems;
        let (t, s, a) = (team.clone(), sha.clone(), addr.clone());
        app.db(move |c, p| {
            db::audit(
                c,
                p,
                &AuditEntry {
                    actor: &t,
                    action: "submit",
                    submission_id: None,
                    sha256: Some(&s),
                    result: &format!("rejected: invalid ({n} problems)"),
                    address: a.as_deref(),
                },
            )
        })
        .await?;
        return Err(ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({
                "error": format!("invalid submission ({n} problems); nothing was recorded"),
                "problems": problems,
                "more_problems": parsed.more_problems,
            }),
            retry_after_s: None,
        });
    }
    let limit = app.cfg.challenge.daily_limit;
    let n_det = parsed.detections.len();
    let now = std::time::SystemTime::now();
    let (t, s) = (team.clone(), sha.clone());
    let admission = app
        .db(move |c, p| {
            let (utc, day) = db::stamp(now);
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql_err(p))?;
            let a = db::admit(&tx, p, &t, &s, &day, limit)?;
            let (id, result) = match &a {
                db::Admission::New => {
                    let id = db::insert(
                        &tx,
                        p,
                        &db::NewSubmission {
                            team: &t,
                            submitted_utc: &utc,
                            day: &day,
                            sha256: &s,
                            file_name: &file_name,
                            stored_file: Some(&stored),
                            n_detections: n_det,
                            scores: None,
                        },
                    )?;
                    (Some(id), "queued".to_string())
                }
                db::Admission::Identical { id, .. } => (Some(*id), format!("identical to #{id}")),
                db::Admission::LimitReached { limit, day } => {
                    (None, format!("refused: daily limit {limit} ({day})"))
                }
            };
            db::audit(
                &tx,
                p,
                &AuditEntry {
                    actor: &t,
                    action: "submit",
                    submission_id: id,
                    sha256: Some(&s),
                    result: &result,
                    address: addr.as_deref(),
                },
            )?;
            tx.commit().map_err(sql_err(p))?;
            Ok((a, id))
        })
        .await?;
    match admission {
        (db::Admission::New, Some(id)) => {
            app.wake.notify_waiters();
            app.wake.notify_one();
            Ok((
                StatusCode::ACCEPTED,
                Json(json!({ "id": id, "status": db::QUEUED })),
            )
                .into_response())
        }
        (db::Admission::Identical { id, submitted_utc }, _) => {
            let st = app
                .db(move |c, p| {
                    c.query_row("SELECT status FROM submissions WHERE id = ?1", [id], |r| {
                        r.get::<_, String>(0)
                    })
                    .map_err(sql_err(p))
                })
                .await?;
            Ok((
                StatusCode::OK,
                Json(json!({
                    "id": id,
                    "status": st,
                    "identical": true,
                    "message": format!("identical to submission #{id} of {submitted_utc}; not counted again"),
                })),
            )
                .into_response())
        }
        (db::Admission::LimitReached { limit, day }, _) => {
            let resets = db::next_day_utc(now);
            let left = humantime::parse_rfc3339(&resets)
                .ok()
                .and_then(|t| t.duration_since(now).ok())
                .map(|d| d.as_secs().max(1));
            Err(ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                body: json!({
                    "error": format!("team `{team}` has used its {limit} submissions for {day} (UTC)"),
                    "reason": "daily_limit",
                    "limit": limit,
                    "resets_utc": resets,
                }),
                retry_after_s: left,
            })
        }
        (db::Admission::New, None) => Err(Error::Internal("insert without id".into()).into()),
    }
}

/// A submission as its team sees it.
fn submission_json(r: &SubmissionRow, with_private: bool) -> Value {
    let mut v = json!({
        "id": r.id,
        "team": r.team,
        "status": r.status,
        "submitted_utc": r.submitted_utc,
        "finished_utc": r.finished_utc,
        "sha256": r.sha256,
        "file_name": r.file_name,
        "n_detections": r.n_detections,
    });
    if r.status == db::FAILED {
        v["reason"] = json!(r.reason);
    }
    if let Some(p) = &r.public {
        v["public"] = json!(PublicScore::from(p));
    }
    if with_private {
        v["public_full"] = json!(r.public);
        v["private"] = json!(r.private);
    }
    v
}

struct SubmissionRow {
    id: i64,
    team: String,
    status: String,
    submitted_utc: String,
    finished_utc: Option<String>,
    sha256: String,
    file_name: String,
    n_detections: i64,
    reason: Option<String>,
    public: Option<HalfScore>,
    private: Option<HalfScore>,
}

const ROW_SQL: &str = "SELECT id, team, status, submitted_utc, finished_utc, sha256, file_name,
    n_detections, reason, public_json, private_json FROM submissions";

fn row(r: &rusqlite::Row) -> rusqlite::Result<SubmissionRow> {
    let js = |s: String| serde_json::from_str::<Option<HalfScore>>(&s).ok().flatten();
    Ok(SubmissionRow {
        id: r.get(0)?,
        team: r.get(1)?,
        status: r.get(2)?,
        submitted_utc: r.get(3)?,
        finished_utc: r.get(4)?,
        sha256: r.get(5)?,
        file_name: r.get(6)?,
        n_detections: r.get(7)?,
        reason: r.get(8)?,
        public: js(r.get(9)?),
        private: js(r.get(10)?),
    })
}

/// `GET /api/submissions/{id}`: status and public score, for the owning team only (404
/// otherwise); the organiser sees every submission with both halves.
pub async fn status(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> ApiResult {
    let who = identify(&app, header_token(&headers)).await?;
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no submission {id} of yours"),
        )
    };
    let Ok(n) = id.parse::<i64>() else {
        return Err(missing());
    };
    let r = app
        .db(move |c, p| {
            c.query_row(&format!("{ROW_SQL} WHERE id = ?1"), [n], row)
                .optional()
                .map_err(sql_err(p))
        })
        .await?;
    match r {
        Some(r) if who.admin || r.team == who.team => {
            Ok(Json(submission_json(&r, who.admin)).into_response())
        }
        _ => Err(missing()),
    }
}

/// `GET /api/submissions`: the team's history, newest first.
pub async fn history(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let who = identify(&app, header_token(&headers)).await?;
    let (team, admin) = (who.team.clone(), who.admin);
    let rows = app
        .db(move |c, p| {
            let q = if admin {
                format!("{ROW_SQL} ORDER BY id DESC")
            } else {
                format!("{ROW_SQL} WHERE team = ?1 ORDER BY id DESC")
            };
            let mut st = c.prepare(&q).map_err(sql_err(p))?;
            let it = if admin {
                st.query_map([], row)
            } else {
                st.query_map([&team], row)
            }
            .map_err(sql_err(p))?;
            it.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(sql_err(p))
        })
        .await?;
    let list: Vec<Value> = rows.iter().map(|r| submission_json(r, admin)).collect();
    Ok(Json(json!({ "team": who.team, "submissions": list })).into_response())
}

#[derive(serde::Deserialize)]
pub struct BoardQuery {
    half: Option<String>,
}

/// `GET /api/leaderboard[?half=public|private]`: public for everyone; private with the
/// organiser's token, or for everyone once revealed (then without counts).
pub async fn leaderboard(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(q): Query<BoardQuery>,
) -> ApiResult {
    let private = match q.half.as_deref() {
        None | Some("public") => false,
        Some("private") => true,
        Some(other) => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("half `{other}`: use public or private"),
            ));
        }
    };
    let admin = match header_token(&headers) {
        Some(t) => identify(&app, Some(t)).await?.admin,
        None => false,
    };
    if private && !admin && !app.revealed().await? {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "the private leaderboard is shown when the organiser reveals it at the end",
        ));
    }
    let rows = app.db(move |c, p| board_of(c, p, private)).await?;
    let radius = app.cfg.score.match_radius_deg;
    Ok(Json(board_json(&rows, private, private && admin, radius)).into_response())
}

async fn admin(app: &Arc<App>, headers: &HeaderMap) -> std::result::Result<Identity, ApiError> {
    let who = identify(app, header_token(headers)).await?;
    if !who.admin {
        return Err(ApiError::new(StatusCode::FORBIDDEN, "organiser only"));
    }
    Ok(who)
}

/// `POST /api/admin/reveal`: the private leaderboard becomes public (audited).
pub async fn reveal(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let who = admin(&app, &headers).await?;
    app.db(move |c, p| {
        db::set_setting(c, p, "revealed", "true")?;
        db::audit(
            c,
            p,
            &AuditEntry {
                actor: &who.team,
                action: "reveal",
                submission_id: None,
                sha256: None,
                result: "private leaderboard public",
                address: None,
            },
        )
    })
    .await?;
    Ok(Json(json!({ "revealed": true })).into_response())
}

/// `POST /api/admin/rescore`: every stored submission queued again (audited); scores stay on
/// the board until the new ones replace them.
pub async fn rescore(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    let who = admin(&app, &headers).await?;
    let (n, skipped) = app
        .db(move |c, p| {
            let tx = c
                .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                .map_err(sql_err(p))?;
            let n = tx
                .execute(
                    "UPDATE submissions SET status = 'queued', reason = NULL
                     WHERE status IN ('scored', 'failed') AND stored_file IS NOT NULL",
                    [],
                )
                .map_err(sql_err(p))?;
            let skipped: i64 = tx
                .query_row(
                    "SELECT COUNT(*) FROM submissions WHERE stored_file IS NULL",
                    [],
                    |r| r.get(0),
                )
                .map_err(sql_err(p))?;
            db::audit(
                &tx,
                p,
                &AuditEntry {
                    actor: &who.team,
                    action: "rescore",
                    submission_id: None,
                    sha256: None,
                    result: &format!("{n} queued, {skipped} without a stored file skipped"),
                    address: None,
                },
            )?;
            tx.commit().map_err(sql_err(p))?;
            Ok((n, skipped))
        })
        .await?;
    app.wake.notify_waiters();
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "queued": n, "skipped_without_file": skipped })),
    )
        .into_response())
}

/// `GET /api/admin/audit`: the audit log, oldest first (organiser only).
pub async fn audit_log(State(app): State<Arc<App>>, headers: HeaderMap) -> ApiResult {
    admin(&app, &headers).await?;
    let rows = app
        .db(|c, p| {
            let mut st = c
                .prepare(
                    "SELECT id, utc, actor, action, submission_id, sha256, result, address
                     FROM audit ORDER BY id",
                )
                .map_err(sql_err(p))?;
            let it = st
                .query_map([], |r| {
                    Ok(json!({
                        "id": r.get::<_, i64>(0)?,
                        "utc": r.get::<_, String>(1)?,
                        "actor": r.get::<_, String>(2)?,
                        "action": r.get::<_, String>(3)?,
                        "submission_id": r.get::<_, Option<i64>>(4)?,
                        "sha256": r.get::<_, Option<String>>(5)?,
                        "result": r.get::<_, String>(6)?,
                        "address": r.get::<_, Option<String>>(7)?,
                    }))
                })
                .map_err(sql_err(p))?;
            it.collect::<std::result::Result<Vec<_>, _>>()
                .map_err(sql_err(p))
        })
        .await?;
    Ok(Json(json!({ "audit": rows })).into_response())
}
