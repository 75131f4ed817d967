//! Server-rendered pages (askama) and embedded static assets. Today: the landing page, the
//! not-found page, and `/static/*`; account and dashboard pages join in later areas.

use crate::{config::Config, state::AppState};
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
        "js/diagnostics.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/js/diagnostics.js"),
    ),
    (
        "vendor/uplot/uPlot.iife.min.js",
        "application/javascript; charset=utf-8",
        include_str!("../../static/vendor/uplot/uPlot.iife.min.js"),
    ),
    (
        "vendor/uplot/uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../../static/vendor/uplot/uPlot.min.css"),
    ),
];

pub fn router() -> Router<AppState> {
    Router::new().route("/static/{*path}", get(static_file))
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
    let html = wants_html(request.headers());
    let mut response = next.run(request).await;
    if !html {
        return response;
    }
    let Some(info) = response
        .extensions_mut()
        .remove::<crate::error::ErrorPageInfo>()
    else {
        return response;
    };
    let status = response.status();
    let page = ErrorPage {
        status: status.as_u16(),
        message: info.message,
    };
    let mut rendered = (status, page).into_response();
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
}

#[derive(Template, WebTemplate)]
#[template(path = "error.html")]
struct ErrorPage {
    status: u16,
    message: String,
}

async fn landing(State(config): State<Arc<Config>>, session: tower_sessions::Session) -> Response {
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
    LandingPage { base_url }.into_response()
}

async fn static_file(Path(path): Path<String>) -> Response {
    match STATIC_FILES.iter().find(|(p, _, _)| *p == path) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The HTML error page with `status` and `message` (used by layers that answer before any handler).
pub fn error_page(status: StatusCode, message: &str) -> Response {
    let page = ErrorPage {
        status: status.as_u16(),
        message: message.into(),
    };
    (status, page).into_response()
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
        let page = ErrorPage {
            status: 404,
            message: "This page does not exist.".into(),
        };
        (StatusCode::NOT_FOUND, page).into_response()
    } else {
        (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "Not found", "url": uri.path()})),
        )
            .into_response()
    }
}
