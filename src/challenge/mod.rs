//! The data-challenge kit: `challenge build | validate | submit | leaderboard`.
//!
//! * [`build`] turns a patches-stage directory into a public bundle (Poisson-noised patches
//!   drawn with a secret seed, patch list, README with the format, example submission) and a
//!   private bundle (truth, seeds, the public/private split), each with a SHA-256 manifest.
//! * [`validate`] checks a submission and reports every problem with line and column.
//! * [`submit`] validates, scores on the public and the private half of the patches and
//!   records the result in a SQLite leaderboard (WAL, one `BEGIN IMMEDIATE` transaction per
//!   submission, so concurrent submitters are serialised and none is lost).
//! * [`leaderboard`] writes CSV, Markdown, JSON and a static HTML page.
//!
//! Nothing written to the public bundle or printed to a participant contains a truth value:
//! the participant sees their own file, the public patch list and their scores.

pub mod cli;
pub mod config;
/// This stage's section of the experiment file, defined and checked in [`config`].
pub use config::ChallengeConfig as Config;

use crate::config::{ChallengeConfig, ExperimentConfig, ScoreConfig};
use crate::error::{Error, Result};
use crate::formats::{atomic_write, atomic_write_with, fmt_f64, sha256_file, sha256_hex};
use crate::score::input::{self, ParseOptions, Parsed, TruthRow};
use crate::score::matching::match_global;
use rand_distr::Distribution;
use rusqlite::OptionalExtension;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The participant README (also copied into the public bundle).
pub const README: &str = include_str!("../../challenge/README.md");
/// The example submission shipped with the README.
pub const EXAMPLE_SUBMISSION: &str = include_str!("../../challenge/example_submission.csv");

/// Components whose sum is the expected (Asimov) counts.
pub const COMPONENTS: [&str; 3] = ["diffuse", "agn", "psr"];

// The secret seed: configured, or derived from the experiment seed.

/// A float32 array read with [`crate::npy`].
struct NpyArray {
    shape: Vec<usize>,
    data: Vec<f32>,
}

pub fn secret_seed(cfg: &ExperimentConfig) -> u64 {
    cfg.challenge.secret_seed.unwrap_or_else(|| {
        let h = sha256_hex(format!("challenge/secret/{}", cfg.seed).as_bytes());
        u64::from_str_radix(&h[..16], 16).unwrap_or(cfg.seed)
    })
}

/// Public half of the patches: the patch ids ranked by SHA-256 of `split-v1/<id>`, first
/// half (rounded up) public. Fixed for a given patch list, independent of any seed.
pub fn public_patches(ids: &[i64]) -> HashSet<i64> {
    let mut ranked: Vec<(String, i64)> = ids
        .iter()
        .map(|id| {
            (
                sha256_hex(format!("gammabench/split-v1/{id}").as_bytes()),
                *id,
            )
        })
        .collect();
    ranked.sort();
    ranked.dedup();
    let n_public = ranked.len().div_ceil(2);
    ranked.into_iter().take(n_public).map(|r| r.1).collect()
}

fn manifest(dir: &Path) -> Result<()> {
    let mut lines = String::new();
    for p in crate::store::walk(dir)? {
        let rel = p
            .strip_prefix(dir)
            .map_err(|e| Error::Internal(e.to_string()))?
            .to_string_lossy()
            .replace('\\', "/");
        if rel == "MANIFEST.sha256" {
            continue;
        }
        lines.push_str(&format!("{}  {}\n", sha256_file(&p)?, rel));
    }
    atomic_write(&dir.join("MANIFEST.sha256"), lines.as_bytes())
}

/// What `build` made.
#[derive(Debug, Clone, Serialize)]
pub struct BuildSummary {
    pub n_patches: usize,
    pub n_truth_rows: usize,
    pub public_dir: PathBuf,
    pub private_dir: PathBuf,
}

/// `challenge build`: public and private bundles under `out/public` and `out/private`.
pub fn build(cfg: &ExperimentConfig, patches_dir: &Path, out: &Path) -> Result<BuildSummary> {
    let patches_csv = patches_dir.join("patches.csv");
    let centres = input::read_patches(&patches_csv)?;
    // keep the file order of patches.csv: array index i <-> row i
    let mut order: Vec<i64> = Vec::new();
    {
        let mut rdr = crate::formats::csv_reader(&patches_csv)?;
        let hdr = rdr
            .headers()
            .map_err(|e| Error::bad_file(&patches_csv, e))?
            .clone();
        let ci = hdr.iter().position(|h| h == "patch_id").unwrap_or(0);
        for r in rdr.records() {
            let r = r.map_err(|e| Error::bad_file(&patches_csv, e))?;
            order.push(
                r.get(ci)
                    .unwrap_or("")
                    .trim()
                    .parse()
                    .map_err(|_| Error::bad_file(&patches_csv, "patch_id is not an integer"))?,
            );
        }
    }
    let mut total: Option<NpyArray> = None;
    for c in COMPONENTS {
        let p = patches_dir.join(format!("patches_{c}.npy"));
        let (shape, data) = crate::npy::read_f32(&p)?;
        let a = NpyArray { shape, data };
        if a.shape.len() != 4 || a.shape[0] != order.len() {
            return Err(Error::bad_file(
                &p,
                format!(
                    "shape {:?}, expected ({}, 64, 64, bins) like patches.csv",
                    a.shape,
                    order.len()
                ),
            ));
        }
        total = Some(match total {
            None => a,
            Some(mut t) => {
                if t.shape != a.shape {
                    return Err(Error::bad_file(
                        &p,
                        "shape differs from the other components",
                    ));
                }
                t.data.iter_mut().zip(&a.data).for_each(|(x, y)| *x += y);
                t
            }
        });
    }
    let total = total.ok_or_else(|| Error::Internal("no components".into()))?;
    let per_patch: usize = total.shape[1..].iter().product();
    let seed = secret_seed(cfg);
    let mut counts = vec![0f32; total.data.len()];
    {
        use rayon::prelude::*;
        counts
            .par_chunks_mut(per_patch)
            .zip(total.data.par_chunks(per_patch))
            .enumerate()
            .for_each(|(i, (dst, mu))| {
                let mut rng = crate::rng::stream(seed, "challenge/poisson", i as u64);
                for (d, m) in dst.iter_mut().zip(mu) {
                    *d = if *m > 0.0 && m.is_finite() {
                        rand_distr::Poisson::new(*m as f64)
                            .map(|p| p.sample(&mut rng) as f32)
                            .unwrap_or(0.0)
                    } else {
                        0.0
                    };
                }
            });
    }
    let public = out.join("public");
    let private = out.join("private");
    for d in [&public, &private] {
        if d.exists() {
            return Err(Error::Usage(format!(
                "{} exists already; choose an empty --out",
                d.display()
            )));
        }
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    crate::npy::write_f32(&public.join("patches.npy"), &total.shape, &counts)?;
    let list: String = std::iter::once("index,patch_id,glon_deg,glat_deg\n".to_string())
        .chain(order.iter().enumerate().map(|(i, id)| {
            let (l, b) = centres[id];
            format!("{i},{id},{},{}\n", fmt_f64(l), fmt_f64(b))
        }))
        .collect();
    atomic_write(&public.join("patches.csv"), list.as_bytes())?;
    atomic_write(&public.join("README.md"), README.as_bytes())?;
    atomic_write(
        &public.join("example_submission.csv"),
        EXAMPLE_SUBMISSION.as_bytes(),
    )?;
    let info = serde_json::json!({
        "n_patches": order.len(),
        "shape": total.shape,
        "axes": ["patch", "y_pix", "x_pix", "energy_bin"],
        "dtype": "float32 (integer photon counts)",
        "energy_bins_gev": cfg.energy.bin_edges_gev,
        "patch_size_deg": 10.0,
        "projection": "healpy cartview(rot=(l, b, 0), lonra=[-5, 5], latra=[-5, 5], xsize=64)",
    });
    atomic_write(
        &public.join("dataset.json"),
        &serde_json::to_vec_pretty(&info).map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    // private: truth, seeds, split
    let truth_src = patches_dir.join("truth.csv");
    let truth = input::read_truth(&truth_src, Some(&patches_csv))?;
    crate::formats::atomic_copy(&truth_src, &private.join("truth.csv"))?;
    crate::formats::atomic_copy(&patches_csv, &private.join("patches.csv"))?;
    let pub_set = public_patches(&order);
    let split: String = std::iter::once("patch_id,split\n".to_string())
        .chain(order.iter().map(|id| {
            format!(
                "{id},{}\n",
                if pub_set.contains(id) {
                    "public"
                } else {
                    "private"
                }
            )
        }))
        .collect();
    atomic_write(&private.join("split.csv"), split.as_bytes())?;
    let seeds = serde_json::json!({
        "experiment_seed": cfg.seed,
        "secret_seed": seed,
        "poisson_stream": "rng::stream(secret_seed, \"challenge/poisson\", patch_index)",
        "source": patches_dir.display().to_string(),
    });
    atomic_write(
        &private.join("seeds.json"),
        &serde_json::to_vec_pretty(&seeds).map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    manifest(&public)?;
    manifest(&private)?;
    Ok(BuildSummary {
        n_patches: order.len(),
        n_truth_rows: truth.rows.len(),
        public_dir: public,
        private_dir: private,
    })
}

/// Parse options of a challenge submission.
pub fn parse_options(cfg: &ChallengeConfig, patches: HashMap<i64, (f64, f64)>) -> ParseOptions {
    ParseOptions {
        max_file_bytes: cfg.max_file_bytes,
        max_rows: cfg.max_rows,
        patches: Some(patches),
        ..Default::default()
    }
}

/// `challenge validate`: every problem of a submission (empty when valid).
pub fn validate(cfg: &ChallengeConfig, patches_csv: &Path, submission: &Path) -> Result<Parsed> {
    let patches = input::read_patches(patches_csv)?;
    input::parse_detections(submission, &parse_options(cfg, patches))
}

/// Formats the problems of a validation as `file:line:column: field: message` lines.
pub fn format_problems(file: &Path, p: &Parsed) -> String {
    let mut s = String::new();
    for q in &p.problems {
        s.push_str(&format!(
            "{}:{}:{}: `{}`: {}\n",
            file.display(),
            q.line,
            q.column,
            q.field,
            q.message
        ));
    }
    if p.more_problems > 0 {
        s.push_str(&format!("... and {} more problems\n", p.more_problems));
    }
    s
}

/// Scores of one half.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq)]
pub struct HalfScore {
    pub tp: usize,
    pub fp: usize,
    #[serde(rename = "fn")]
    pub fn_: usize,
    pub duplicate: usize,
    pub purity: f64,
    pub completeness: f64,
    /// Primary ranking score: harmonic mean of purity and completeness (0 when both are 0).
    pub f1: f64,
    /// S90 on S1 (1-100 GeV photon flux, ph cm-2 s-1), all sky of this half, as
    /// [`crate::score::detection::S90_DEFINITION`] (point estimate; `None` when not reached).
    #[serde(default)]
    pub s90_s1: Option<f64>,
    #[serde(default)]
    pub s90_status: S90Status,
}

/// Status of [`HalfScore::s90_s1`].
#[derive(Debug, Clone, Copy, Default, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum S90Status {
    Reached,
    /// Every bin passes: the value is the lowest bin edge, an upper bound.
    ReachedAtLowestBin,
    #[default]
    NotReached,
}

/// The leaderboard's ranking rule, written into every leaderboard file.
pub const RANKING_RULE: &str = "Primary metric: F1 = 2PC/(P+C) of purity P and completeness C \
(global one-to-one matching), higher is better, compared at the 4 decimals shown. Tie-breakers, \
in order: lower S90 on S1 (all sky of the half; not_reached ranks below any value), higher \
completeness, higher purity (each at 4 decimals), then the earlier submission. A team's best \
submission under this order counts.";

/// Total order of the leaderboard: `Less` when `a` ranks above `b` (see [`RANKING_RULE`]).
pub fn rank_order(a: (&HalfScore, &str, i64), b: (&HalfScore, &str, i64)) -> std::cmp::Ordering {
    let q = |x: f64| (x * 1e4).round() as i64;
    let s90 = |s: &HalfScore| match (s.s90_status, s.s90_s1) {
        (S90Status::NotReached, _) | (_, None) => f64::INFINITY,
        (_, Some(v)) => v,
    };
    q(b.0.f1)
        .cmp(&q(a.0.f1))
        .then(s90(a.0).total_cmp(&s90(b.0)))
        .then(q(b.0.completeness).cmp(&q(a.0.completeness)))
        .then(q(b.0.purity).cmp(&q(a.0.purity)))
        .then(a.1.cmp(b.1))
        .then(a.2.cmp(&b.2))
}

/// Global-mode score of the detections and truth rows whose patch is in `keep`.
pub fn score_half(
    truth: &[TruthRow],
    dets: &[input::Detection],
    keep: &dyn Fn(i64) -> bool,
    score: &ScoreConfig,
) -> HalfScore {
    let t: Vec<TruthRow> = truth.iter().filter(|r| keep(r.patch_id)).cloned().collect();
    let d: Vec<input::Detection> = dets.iter().filter(|r| keep(r.patch_id)).cloned().collect();
    let m = match_global(&t, &d, score.match_radius_deg);
    let s90 = crate::score::detection::s90_point(&t, &d, &m, "S1", "all", score);
    let s90_status = match s90.status.as_str() {
        "reached" => S90Status::Reached,
        "reached_at_lowest_bin" => S90Status::ReachedAtLowestBin,
        _ => S90Status::NotReached,
    };
    let ratio = |a: usize, b: usize| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    let purity = ratio(m.n_tp, m.n_tp + m.n_fp);
    let completeness = ratio(m.n_tp, m.n_tp + m.n_fn);
    HalfScore {
        tp: m.n_tp,
        fp: m.n_fp,
        fn_: m.n_fn,
        duplicate: m.n_duplicate,
        purity,
        completeness,
        f1: if purity + completeness > 0.0 {
            2.0 * purity * completeness / (purity + completeness)
        } else {
            0.0
        },
        s90_s1: s90.value,
        s90_status,
    }
}

/// Outcome of `submit`.
#[derive(Debug, Clone, Serialize)]
pub enum SubmitOutcome {
    /// Recorded as submission `id`; only the public score is shown.
    Recorded { id: i64, public: HalfScore },
    /// The same file (same SHA-256) was already recorded for this team.
    Identical { id: i64, submitted_utc: String },
    /// The team reached its daily limit.
    LimitReached { limit: u32, day: String },
}

/// Opens (and creates) the leaderboard database.
pub fn open_db(path: &Path) -> Result<rusqlite::Connection> {
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| Error::io(d, e))?;
    }
    let sql = |e: rusqlite::Error| Error::Internal(format!("leaderboard {}: {e}", path.display()));
    let conn = rusqlite::Connection::open(path).map_err(sql)?;
    conn.busy_timeout(std::time::Duration::from_secs(60))
        .map_err(sql)?;
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
    conn.execute_batch(
        "PRAGMA synchronous=NORMAL;
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
         CREATE INDEX IF NOT EXISTS by_team_day ON submissions(team, day);",
    )
    .map_err(sql)?;
    Ok(conn)
}

/// Team names: 1-64 characters of letters, digits, space, `-`, `_`, `.`.
pub fn check_team(team: &str) -> Result<()> {
    let ok = !team.trim().is_empty()
        && team.chars().count() <= 64
        && team
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::Usage(format!(
            "team name `{team}`: use 1-64 letters, digits, spaces, '-', '_' or '.'"
        )))
    }
}

/// `challenge submit`: validate, score both halves, record. `now` is the submission time.
pub fn submit(
    cfg: &ExperimentConfig,
    private_dir: &Path,
    db: &Path,
    team: &str,
    submission: &Path,
    now: std::time::SystemTime,
) -> Result<SubmitOutcome> {
    check_team(team)?;
    let truth = input::read_truth(
        &private_dir.join("truth.csv"),
        Some(&private_dir.join("patches.csv")),
    )?;
    let parsed = input::parse_detections(
        submission,
        &parse_options(&cfg.challenge, truth.patches.clone()),
    )?;
    if let Some(first) = parsed.problems.first() {
        let n = parsed.problems.len() + parsed.more_problems;
        let mut e = first.clone();
        if n > 1 {
            e.message = format!(
                "{} (and {} more problems; run `challenge validate`)",
                e.message,
                n - 1
            );
        }
        return Err(e.into_error(submission));
    }
    let sha = sha256_file(submission)?;
    let ids: Vec<i64> = truth.patches.keys().copied().collect();
    let pub_set = public_patches(&ids);
    let public = score_half(
        &truth.rows,
        &parsed.detections,
        &|p| pub_set.contains(&p),
        &cfg.score,
    );
    let private = score_half(
        &truth.rows,
        &parsed.detections,
        &|p| !pub_set.contains(&p),
        &cfg.score,
    );
    let stamp = humantime::format_rfc3339_millis(now).to_string();
    let day = stamp[..10].to_string();
    let mut conn = open_db(db)?;
    let sql = |e: rusqlite::Error| Error::Internal(format!("leaderboard {}: {e}", db.display()));
    let tx = conn
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(sql)?;
    let same: Option<(i64, String)> = tx
        .query_row(
            "SELECT id, submitted_utc FROM submissions WHERE team = ?1 AND sha256 = ?2 ORDER BY id LIMIT 1",
            rusqlite::params![team, sha],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(sql)?;
    if let Some((id, submitted_utc)) = same {
        tx.commit().map_err(sql)?;
        return Ok(SubmitOutcome::Identical { id, submitted_utc });
    }
    let today: u32 = tx
        .query_row(
            "SELECT COUNT(*) FROM submissions WHERE team = ?1 AND day = ?2",
            rusqlite::params![team, day],
            |r| r.get(0),
        )
        .map_err(sql)?;
    if today >= cfg.challenge.daily_limit {
        tx.commit().map_err(sql)?;
        return Ok(SubmitOutcome::LimitReached {
            limit: cfg.challenge.daily_limit,
            day,
        });
    }
    let js = |h: &HalfScore| serde_json::to_string(h).map_err(|e| Error::Internal(e.to_string()));
    tx.execute(
        "INSERT INTO submissions (team, submitted_utc, day, sha256, file_name, n_detections,
            public_json, private_json, public_f1, private_f1)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        rusqlite::params![
            team,
            stamp,
            day,
            sha,
            submission
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            parsed.detections.len() as i64,
            js(&public)?,
            js(&private)?,
            public.f1,
            private.f1
        ],
    )
    .map_err(sql)?;
    let id = tx.last_insert_rowid();
    tx.commit().map_err(sql)?;
    Ok(SubmitOutcome::Recorded { id, public })
}

/// One leaderboard line.
#[derive(Debug, Clone, Serialize)]
pub struct BoardRow {
    pub rank: usize,
    pub team: String,
    pub submissions: usize,
    pub best_id: i64,
    pub submitted_utc: String,
    pub score: HalfScore,
}

/// The leaderboard: each team's best submission on the public (or private) half, ranked by
/// [`rank_order`] (see [`RANKING_RULE`]).
pub fn board(db: &Path, private: bool) -> Result<Vec<BoardRow>> {
    let conn = open_db(db)?;
    let sql = |e: rusqlite::Error| Error::Internal(format!("leaderboard {}: {e}", db.display()));
    let col = if private {
        "private_json"
    } else {
        "public_json"
    };
    let mut stmt = conn
        .prepare(&format!(
            "SELECT id, team, submitted_utc, {col} FROM submissions ORDER BY id"
        ))
        .map_err(sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
            ))
        })
        .map_err(sql)?;
    let mut best: BTreeMap<String, (usize, i64, String, HalfScore)> = BTreeMap::new();
    for row in rows {
        let (id, team, t, js) = row.map_err(sql)?;
        let s: HalfScore = serde_json::from_str(&js)
            .map_err(|e| Error::Internal(format!("leaderboard row {id}: {e}")))?;
        let e = best.entry(team).or_insert((0, id, t.clone(), s));
        e.0 += 1;
        if rank_order((&s, &t, id), (&e.3, &e.2, e.1)).is_lt() {
            (e.1, e.2, e.3) = (id, t, s);
        }
    }
    let mut out: Vec<BoardRow> = best
        .into_iter()
        .map(|(team, (n, id, t, s))| BoardRow {
            rank: 0,
            team,
            submissions: n,
            best_id: id,
            submitted_utc: t,
            score: s,
        })
        .collect();
    out.sort_by(|a, b| {
        rank_order(
            (&a.score, &a.submitted_utc, a.best_id),
            (&b.score, &b.submitted_utc, b.best_id),
        )
        .then(a.team.cmp(&b.team))
    });
    for (i, r) in out.iter_mut().enumerate() {
        r.rank = i + 1;
    }
    Ok(out)
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn s90_status_str(s: S90Status) -> &'static str {
    match s {
        S90Status::Reached => "reached",
        S90Status::ReachedAtLowestBin => "reached_at_lowest_bin",
        S90Status::NotReached => "not_reached",
    }
}

/// S90 as shown in Markdown and HTML: `1.23e-10`, `<= 1.23e-10` (reached at the lowest bin)
/// or `not_reached`.
fn s90_text(s: &HalfScore) -> String {
    match (s.s90_status, s.s90_s1) {
        (S90Status::Reached, Some(v)) => format!("{v:.3e}"),
        (S90Status::ReachedAtLowestBin, Some(v)) => format!("<= {v:.3e}"),
        _ => "not_reached".into(),
    }
}

/// `challenge leaderboard`: writes `leaderboard.{csv,md,json,html}` into `out`; `radius` is
/// the match radius the scores were computed with (for the page's text).
pub fn leaderboard(db: &Path, private: bool, radius: f64, out: &Path) -> Result<Vec<BoardRow>> {
    let rows = board(db, private)?;
    let half = if private { "private" } else { "public" };
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
    atomic_write_with(&out.join("leaderboard.csv"), |w| {
        writeln!(
            w,
            "rank,team,f1,purity,completeness,s90_s1_ph_cm2_s,s90_status,tp,fp,fn,duplicate,submissions,best_submission_id,submitted_utc"
        )?;
        for r in &rows {
            let team = if r.team.contains([',', '"']) {
                format!("\"{}\"", r.team.replace('"', "\"\""))
            } else {
                r.team.clone()
            };
            writeln!(
                w,
                "{},{},{:.6},{:.6},{:.6},{},{},{},{},{},{},{},{},{}",
                r.rank,
                team,
                r.score.f1,
                r.score.purity,
                r.score.completeness,
                r.score.s90_s1.map(fmt_f64).unwrap_or_default(),
                s90_status_str(r.score.s90_status),
                r.score.tp,
                r.score.fp,
                r.score.fn_,
                r.score.duplicate,
                r.submissions,
                r.best_id,
                r.submitted_utc
            )?;
        }
        Ok(())
    })?;
    let mut md = format!(
        "# Leaderboard ({half} half of the test patches)\n\n{RANKING_RULE} Matching radius \
         {radius} deg. S90 in ph cm-2 s-1 (1-100 GeV).\n\n\
         | rank | team | F1 | purity | completeness | S90 (S1) | TP | FP | FN | submissions |\n\
         |---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n"
    );
    for r in &rows {
        md.push_str(&format!(
            "| {} | {} | {:.4} | {:.4} | {:.4} | {} | {} | {} | {} | {} |\n",
            r.rank,
            r.team.replace('|', "\\|"),
            r.score.f1,
            r.score.purity,
            r.score.completeness,
            s90_text(&r.score),
            r.score.tp,
            r.score.fp,
            r.score.fn_,
            r.submissions
        ));
    }
    atomic_write(&out.join("leaderboard.md"), md.as_bytes())?;
    let json = serde_json::json!({
        "half": half,
        "ranking": {
            "primary": "f1",
            "tie_breakers": ["s90_s1 (lower)", "completeness", "purity", "submitted_utc (earlier)"],
            "rule": RANKING_RULE,
        },
        "match_radius_deg": radius,
        "s90_definition": crate::score::detection::S90_DEFINITION,
        "rows": rows,
    });
    atomic_write(
        &out.join("leaderboard.json"),
        &serde_json::to_vec_pretty(&json).map_err(|e| Error::Internal(e.to_string()))?,
    )?;
    let mut html = format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>gammabench challenge leaderboard ({half})</title>\n<style>\
         body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}\
         td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}\
         td.t,th.t{{text-align:left}}tr:nth-child(even){{background:#f4f6fa}}</style></head><body>\n\
         <h1>Leaderboard &mdash; {half} half</h1>\n<p>{rule} Matching radius {radius}&deg;. \
         S90 in ph&nbsp;cm<sup>-2</sup>&nbsp;s<sup>-1</sup> (1-100 GeV).</p>\n<table>\n<tr><th>rank</th>\
         <th class=\"t\">team</th><th>F1</th><th>purity</th><th>completeness</th><th>S90 (S1)</th>\
         <th>TP</th><th>FP</th><th>FN</th><th>submissions</th><th class=\"t\">submitted (UTC)</th></tr>\n",
        rule = html_escape(RANKING_RULE)
    );
    for r in &rows {
        html.push_str(&format!(
            "<tr><td>{}</td><td class=\"t\">{}</td><td>{:.4}</td><td>{:.4}</td><td>{:.4}</td>\
             <td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"t\">{}</td></tr>\n",
            r.rank,
            html_escape(&r.team),
            r.score.f1,
            r.score.purity,
            r.score.completeness,
            html_escape(&s90_text(&r.score)),
            r.score.tp,
            r.score.fp,
            r.score.fn_,
            r.submissions,
            html_escape(&r.submitted_utc)
        ));
    }
    html.push_str("</table>\n</body></html>\n");
    atomic_write(&out.join("leaderboard.html"), html.as_bytes())?;
    Ok(rows)
}
