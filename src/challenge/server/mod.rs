//! `gammabench serve`: the data challenge as a hosted service (axum on tokio).
//!
//! * [`auth`]: teams, bearer tokens (stored as SHA-256, compared in constant time), rate
//!   limits per token and per client address;
//! * [`api`]: the JSON API (`/api/submissions`, `/api/leaderboard`, `/api/admin/*`);
//! * [`pages`]: the HTML pages (`/`, `/leaderboard`) and the public bundle's files
//!   (`/files/<name>`, nothing else);
//! * [`queue`]: the durable scoring queue: a bounded pool of workers, a time limit per job,
//!   jobs interrupted by a stop resumed at the next start.
//!
//! A submission is answered 202 only after its file (content-addressed, fsynced) and its
//! `queued` row (SQLite WAL, `synchronous=FULL`) are on disk, so a `kill -9` loses nothing
//! that was acknowledged. No answer to a participant contains a truth value, a seed, a
//! private-half score or a private file: the scorer lives behind the queue, and what leaves
//! it is a [`crate::challenge::PublicScore`].

pub mod api;
pub mod auth;
pub mod pages;
pub mod queue;

use crate::challenge::{Scorer, db};
use crate::config::ExperimentConfig;
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A file of the public bundle, with its size and SHA-256 (computed once at start).
#[derive(Debug, Clone)]
pub struct PublicFile {
    pub path: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// The state of a running service.
pub struct App {
    pub cfg: ExperimentConfig,
    /// The public bundle (served under `/files/`).
    pub public_dir: PathBuf,
    pub db_path: PathBuf,
    /// Stored submission files, `<sha256>.csv`.
    pub files_dir: PathBuf,
    pub scorer: Arc<Scorer>,
    /// The files of the public bundle by name: the only ones `/files/` serves.
    pub public_files: BTreeMap<String, PublicFile>,
    conn: Arc<Mutex<rusqlite::Connection>>,
    pub token_limits: auth::RateLimiter,
    pub address_limits: auth::RateLimiter,
    /// Wakes the workers when a job is queued.
    pub wake: tokio::sync::Notify,
}

impl App {
    /// Opens a challenge directory (`public/` and `private/` of `challenge build`) with its
    /// database; interrupted jobs (`scoring`) are queued again.
    pub fn open(cfg: &ExperimentConfig, challenge_dir: &Path, db_path: &Path) -> Result<Arc<App>> {
        let public_dir = challenge_dir.join("public");
        let private_dir = challenge_dir.join("private");
        for d in [&public_dir, &private_dir] {
            if !d.is_dir() {
                return Err(Error::Usage(format!(
                    "{}: missing; --challenge takes the --out directory of `challenge build`",
                    d.display()
                )));
            }
        }
        let scorer = Arc::new(Scorer::load(cfg, &private_dir)?);
        let mut public_files = BTreeMap::new();
        for e in std::fs::read_dir(&public_dir).map_err(|e| Error::io(&public_dir, e))? {
            let e = e.map_err(|e| Error::io(&public_dir, e))?;
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_file() && !name.starts_with('.') {
                let bytes = std::fs::metadata(&p).map_err(|e| Error::io(&p, e))?.len();
                let sha256 = crate::formats::sha256_file(&p)?;
                public_files.insert(
                    name,
                    PublicFile {
                        path: p,
                        bytes,
                        sha256,
                    },
                );
            }
        }
        let files_dir = db_path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
            .join("submissions");
        std::fs::create_dir_all(&files_dir).map_err(|e| Error::io(&files_dir, e))?;
        let conn = db::open_db(db_path)?;
        let n = queue::recover(&conn, db_path)?;
        if n > 0 {
            log::info!("{n} interrupted or queued jobs resume");
        }
        Ok(Arc::new(App {
            cfg: cfg.clone(),
            public_dir,
            db_path: db_path.to_path_buf(),
            files_dir,
            scorer,
            public_files,
            conn: Arc::new(Mutex::new(conn)),
            token_limits: auth::RateLimiter::new(cfg.challenge.rate_per_minute_token),
            address_limits: auth::RateLimiter::new(cfg.challenge.rate_per_minute_address),
            wake: tokio::sync::Notify::new(),
        }))
    }

    /// Runs `f` on the database connection on a blocking thread.
    pub async fn db<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut rusqlite::Connection, &Path) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        let path = self.db_path.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            let r = f(&mut c, &path);
            if !c.is_autocommit() {
                // a transaction left open would pin a stale snapshot for every later call
                log::error!("database call left a transaction open; rolled back");
                let _ = c.execute_batch("ROLLBACK");
            }
            r
        })
        .await
        .map_err(|e| Error::Internal(format!("database task: {e}")))?
    }

    /// Whether the organiser has revealed the private leaderboard.
    pub async fn revealed(&self) -> Result<bool> {
        self.db(|c, p| Ok(db::setting(c, p, "revealed")?.as_deref() == Some("true")))
            .await
    }
}

/// The service's routes (see the module docs and `challenge/README.md`).
pub fn router(app: Arc<App>) -> axum::Router {
    use axum::routing::{get, post};
    let body_limit = (app.cfg.challenge.max_file_bytes as usize).saturating_add(1 << 20);
    axum::Router::new()
        .route("/", get(pages::index))
        .route("/leaderboard", get(pages::leaderboard))
        .route("/files/{name}", get(pages::file))
        .route(
            "/api/submissions",
            post(api::submit)
                .get(api::history)
                .layer(axum::extract::DefaultBodyLimit::max(body_limit)),
        )
        .route("/api/submissions/{id}", get(api::status))
        .route("/api/leaderboard", get(api::leaderboard))
        .route("/api/admin/reveal", post(api::reveal))
        .route("/api/admin/rescore", post(api::rescore))
        .route("/api/admin/audit", get(api::audit_log))
        .fallback(api::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            api::guard,
        ))
        .with_state(app)
}

/// Serves `app` on `listener` until `shutdown` resolves, with the scoring workers; then
/// stops taking connections, lets answers in flight finish (each connection is shut down
/// gracefully, waited for at most `challenge.request_timeout_s`) and the workers end.
///
/// Connections are served by hyper's HTTP/1 server directly (not `axum::serve`, which sets
/// no timer and so has no header-read timeout): a client must send the whole request head
/// (request line and headers) within `challenge.header_timeout_s` of the connection being
/// ready for a request, else the connection is closed. This cuts off clients that open a
/// connection and stall, or send their headers a byte at a time (slowloris), and closes idle
/// keep-alive connections after the same time. Reading the body is bounded separately by
/// `challenge.request_timeout_s` (a 408 answer, see [`api::guard`]).
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let workers = queue::spawn_workers(app.clone(), stop_rx);
    let addr = listener
        .local_addr()
        .map_err(|e| Error::Internal(format!("listener: {e}")))?;
    let header_timeout = std::time::Duration::from_secs_f64(app.cfg.challenge.header_timeout_s);
    let drain_limit = std::time::Duration::from_secs_f64(app.cfg.challenge.request_timeout_s);
    let router = router(app);
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(header_timeout);
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, remote) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(c) => c,
                Err(e) => {
                    // e.g. out of file descriptors: wait a little rather than spin
                    log::warn!("accept on {addr}: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let svc = hyper_util::service::TowerToHyperService::new(
            router
                .clone()
                .layer(axum::Extension(axum::extract::ConnectInfo(remote))),
        );
        let conn = http.serve_connection(hyper_util::rt::TokioIo::new(stream), svc);
        let mut close = close_rx.clone();
        connections.spawn(async move {
            tokio::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => {
                    if let Err(e) = r {
                        // a header timeout, a client gone mid-request: the connection ends
                        log::debug!("connection from {remote}: {e}");
                    }
                }
                _ = close.changed() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
        });
    }
    drop(listener);
    let _ = close_tx.send(true);
    let drained = tokio::time::timeout(drain_limit, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        log::warn!(
            "{} connections still open after {:.0} s; closed",
            connections.len(),
            drain_limit.as_secs_f64()
        );
        connections.abort_all();
    }
    let _ = stop_tx.send(true);
    for w in workers {
        // a job still scoring stays `scoring` and resumes at the next start
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), w).await;
    }
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn stop_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                log::warn!("cannot listen for SIGTERM: {e}");
                std::future::pending::<()>().await
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => log::info!("SIGINT: stopping"),
        _ = term => log::info!("SIGTERM: stopping"),
    }
}

/// `gammabench serve`: binds `addr`, prints `listening on http://ADDR` as the first line of
/// stdout, serves until SIGINT/SIGTERM.
pub fn run(cfg: &ExperimentConfig, challenge_dir: &Path, addr: &str, db_path: &Path) -> Result<()> {
    let app = App::open(cfg, challenge_dir, db_path)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Internal(format!("tokio runtime: {e}")))?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Usage(format!("--addr {addr}: cannot listen: {e}")))?;
        let local = listener
            .local_addr()
            .map_err(|e| Error::Internal(format!("listener: {e}")))?;
        {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "listening on http://{local}");
            let _ = out.flush();
        }
        log::info!(
            "challenge {} (database {})",
            challenge_dir.display(),
            db_path.display()
        );
        serve(app, listener, stop_signal()).await
    })
}
