//! The HTML pages (no JavaScript) and the public bundle's files.
//!
//! `/files/<name>` looks `name` up in the list of the public bundle's files made at start:
//! any other name, `..` or an encoded slash included, is 404, so no private file can be
//! reached.

use super::App;
use super::api::ApiError;
use crate::challenge::{PAGE_STYLE, RANKING_RULE, board_of, board_table_html, escape_html};
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use std::sync::Arc;

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title>\n<style>{PAGE_STYLE}</style></head><body>\n\
         <nav><a href=\"/\">challenge</a> | <a href=\"/leaderboard\">leaderboard</a></nav>\n\
         {body}</body></html>\n",
        t = escape_html(title)
    ))
}

/// `GET /`: the task, the public bundle's download links, how to submit, an upload form.
pub async fn index(State(app): State<Arc<App>>) -> Response {
    let mut files = String::from(
        "<table>\n<tr><th class=\"t\">file</th><th>bytes</th><th class=\"t\">SHA-256</th></tr>\n",
    );
    for (name, f) in &app.public_files {
        files.push_str(&format!(
            "<tr><td class=\"t\"><a href=\"/files/{n}\">{n}</a></td><td>{}</td>\
             <td class=\"t\"><code>{}</code></td></tr>\n",
            f.bytes,
            escape_html(&f.sha256),
            n = escape_html(name)
        ));
    }
    files.push_str("</table>\n");
    let c = &app.cfg.challenge;
    let body = format!(
        "<h1>gammabench data challenge: find gamma-ray point sources</h1>\n\
         <p>Each test patch is a 10&times;10&deg; piece of a simulated Fermi-LAT-like sky (photon \
         counts, 5 energy bins). Find the point sources and submit one CSV row per detection. \
         The full task, format and scoring are in <a href=\"/files/README.md\">README.md</a>.</p>\n\
         <h2>Data (public bundle)</h2>\n{files}\
         <h2>Submit</h2>\n<p>With the token your organiser gave you (limit: {limit} \
         submissions per team per UTC day; an identical file is not counted again):</p>\n\
         <pre>curl -H \"Authorization: Bearer $TOKEN\" -F file=@my_detections.csv {{server}}/api/submissions</pre>\n\
         <form method=\"post\" action=\"/api/submissions\" enctype=\"multipart/form-data\">\n\
         <p><label>token <input type=\"password\" name=\"token\" size=\"70\"></label></p>\n\
         <p><label>file <input type=\"file\" name=\"file\" accept=\".csv,.gz\"></label></p>\n\
         <p><button type=\"submit\">submit</button> (the answer is the submission's id; \
         its status is at <code>/api/submissions/ID</code>)</p>\n</form>\n\
         <h2>Ranking</h2>\n<p>{rule}</p>\n<p><a href=\"/leaderboard\">Leaderboard</a></p>\n",
        limit = c.daily_limit,
        rule = escape_html(RANKING_RULE),
    );
    page("gammabench challenge", &body).into_response()
}

/// `GET /leaderboard`: the public board, and the private one once revealed.
pub async fn leaderboard(State(app): State<Arc<App>>) -> Response {
    let revealed = match app.revealed().await {
        Ok(r) => r,
        Err(e) => return ApiError::from(e).into_response(),
    };
    let halves: Vec<bool> = if revealed {
        vec![true, false]
    } else {
        vec![false]
    };
    let mut body = String::from("<h1>Leaderboard</h1>\n");
    for private in halves {
        let rows = match app.db(move |c, p| board_of(c, p, private)).await {
            Ok(r) => r,
            Err(e) => return ApiError::from(e).into_response(),
        };
        body.push_str(&format!(
            "<h2>{} half ({} teams)</h2>\n{}",
            if private { "Private (final)" } else { "Public" },
            rows.len(),
            board_table_html(&rows, false)
        ));
    }
    if !revealed {
        body.push_str(
            "<p>The final ranking uses the private half of the patches; it is shown here \
             when the organiser reveals it at the end.</p>\n",
        );
    }
    body.push_str(&format!(
        "<p>{} Matching radius {}&deg;. S90 in ph&nbsp;cm<sup>-2</sup>&nbsp;s<sup>-1</sup> \
         (1-100 GeV).</p>\n",
        escape_html(RANKING_RULE),
        app.cfg.score.match_radius_deg
    ));
    page("gammabench challenge leaderboard", &body).into_response()
}

/// `GET /files/{name}`: a file of the public bundle, nothing else.
pub async fn file(State(app): State<Arc<App>>, UrlPath(name): UrlPath<String>) -> Response {
    let Some(path) = app.public_files.get(&name).map(|f| f.path.clone()) else {
        return ApiError::new(StatusCode::NOT_FOUND, "not a file of the public bundle")
            .into_response();
    };
    let bytes = match tokio::task::spawn_blocking(move || std::fs::read(&path)).await {
        Ok(Ok(b)) => b,
        _ => {
            return ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "cannot read the file")
                .into_response();
        }
    };
    let ct = match name.rsplit('.').next() {
        Some("md") => "text/markdown; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        Some("sha256") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, ct.to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{}\"", name.replace('"', "")),
            ),
        ],
        bytes,
    )
        .into_response()
}
