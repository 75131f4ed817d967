//! Server-rendered pages (askama) and embedded static assets. Today: the landing page, the
//! not-found page, the favicon and `/static/*`: templates link assets by versioned URLs
//! ([`asset`]: `/static/v/{digest of every asset}/{path}`), served with a year-long immutable
//! cache, so a new build's files are fetched at once and unchanged ones never again.

use crate::config::Config;
use crate::state::AppState;
use crate::store::Stores;
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;
use std::sync::Arc;

/// Static files compiled into the binary, so one file is the whole server.
const STATIC_FILES: &[(&str, &str, &str)] = &[
    (
        "css/app.css",
        "text/css; charset=utf-8",
        include_str!("../../static/css/app.css"),
    ),
    (
        "js/app.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/app.js"),
    ),
    (
        "js/ai.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/ai.js"),
    ),
    (
        "js/reports.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/reports.js"),
    ),
    (
        "js/dashboard.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/dashboard.js"),
    ),
    (
        "js/events.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/events.js"),
    ),
    (
        "js/pageviews.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/pageviews.js"),
    ),
    (
        "js/realtime.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/realtime.js"),
    ),
    (
        "js/diagnostics.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/diagnostics.js"),
    ),
    (
        "js/charts.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/charts.js"),
    ),
    (
        "js/theme.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/theme.js"),
    ),
    (
        "js/format.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/format.js"),
    ),
    (
        "favicon.svg",
        "image/svg+xml",
        include_str!("../../static/favicon.svg"),
    ),
];

/// The assets' version: the first 12 hex digits of a SHA-256 over every path and body, so any
/// change to any asset gives every URL a new version.
pub fn asset_version() -> &'static str {
    static VERSION: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
        use sha2::{Digest, Sha256};
        let mut h = Sha256::new();
        for (path, _, body) in STATIC_FILES {
            h.update(path.as_bytes());
            h.update([0]);
            h.update(body.as_bytes());
            h.update([0]);
        }
        hex::encode(&h.finalize()[..6])
    });
    &VERSION
}

/// The versioned URL of a static asset (`css/app.css` → `/static/v/{version}/css/app.css`).
pub fn asset(path: &str) -> String {
    format!("/static/v/{}/{path}", asset_version())
}

/// A year: how long a versioned asset may be cached.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/static/{*path}", get(static_file))
        .route("/favicon.ico", get(favicon))
}

/// Pages that look at the session (mounted under the session layer).
pub fn session_router() -> Router<AppState> {
    Router::new().route("/", get(landing))
}

/// On HTML routers: turns an error response into the HTML error page for browsers (keeping the
/// status and headers such as `Retry-After`); JSON clients keep the JSON body.
pub async fn html_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if !wants_html(request.headers()) {
        return next.run(request).await;
    }
    // The same request again, for a page that reloads itself (a view still being computed).
    let reload_href = request.uri().path_and_query().map_or_else(
        || request.uri().path().to_string(),
        |p| p.as_str().to_string(),
    );
    let mut response = next.run(request).await;
    let Some(info) = response
        .extensions_mut()
        .remove::<crate::error::ErrorPageInfo>()
    else {
        return response;
    };
    let status = response.status();
    let page = ErrorPage {
        status: status.as_u16(),
        message: info.message.clone(),
        reload_after: info.reload_after,
        reload_href,
    };
    let mut rendered = (status, page).into_response();
    // Kept for the audit trail's error entries (`http::audit_context`).
    rendered.extensions_mut().insert(info);
    for (name, value) in response.headers() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rendered.headers_mut().insert(name.clone(), value.clone());
        }
    }
    for ext in [response
        .extensions_mut()
        .remove::<crate::error::ErrorCause>()]
    .into_iter()
    .flatten()
    {
        rendered.extensions_mut().insert(ext);
    }
    rendered
}

#[derive(Template, WebTemplate)]
#[template(path = "landing.html")]
struct LandingPage {
    base_url: String,
    /// Whether the "Create an account" link is shown.
    registration_open: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    message: String,
    /// Seconds after which the page reloads itself (`static/js/app.js`, with a button to stop
    /// it: a `<meta http-equiv="refresh">` could not be stopped), if ever.
    reload_after: Option<u32>,
    /// This request's path and query, for the "Reload now" link.
    reload_href: String,
}

impl ErrorPage {
    /// A page that does not reload itself.
    fn plain(status: u16, message: String) -> Self {
        Self {
            status,
            message,
            reload_after: None,
            reload_href: String::new(),
        }
    }
}

async fn landing(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    session: tower_sessions::Session,
) -> Response {
    if session
        .get::<crate::domain::ids::DocId>("uid")
        .await
        .ok()
        .flatten()
        .is_some()
    {
        return axum::response::Redirect::to("/projects").into_response();
    }
    let base_url = config
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://localhost:{}", config.port));
    // A store that cannot answer hides the sign-up link rather than failing the page.
    let registration_open =
        crate::services::accounts::registration_open(&stores, config.registration_enabled)
            .await
            .unwrap_or(false);
    LandingPage {
        base_url,
        registration_open,
    }
    .into_response()
}

/// `/static/{path}` (an hour's cache, for links from older pages) and
/// `/static/v/{version}/{path}`: immutable for a year when the version is this build's; an
/// older version gets today's file with an hour's cache (a page of the previous build during a
/// deploy), never a 404.
async fn static_file(Path(path): Path<String>) -> Response {
    let (path, cache) = match path.strip_prefix("v/").and_then(|p| p.split_once('/')) {
        Some((version, rest)) if version == asset_version() => (rest, IMMUTABLE),
        Some((_, rest)) => (rest, "public, max-age=3600"),
        None => (path.as_str(), "public, max-age=3600"),
    };
    match STATIC_FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, cache),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// `/favicon.ico` for clients that ask before reading the page's `<link rel="icon">`: the SVG
/// icon (browsers read it whatever the name).
async fn favicon() -> Response {
    static_file(Path("favicon.svg".into())).await
}

/// The HTML error page with `status` and `message` (used by layers that answer before any handler).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    (status, ErrorPage::plain(status.as_u16(), message.into())).into_response()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

/// 404 for anything unrouted: an HTML page for browsers, JSON otherwise.
pub async fn not_found(uri: Uri, headers: HeaderMap) -> Response {
    if wants_html(&headers) {
        let page = ErrorPage::plain(404, "This page does not exist.".into());
        (StatusCode::NOT_FOUND, page).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Not found", "url": uri.path()})),
        )
            .into_response()
    }
}
