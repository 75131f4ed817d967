//! The HTTP surface: one router per area, composed here with the cross-cutting layers
//! (request ids and error logging, CORS, security headers). Handlers stay thin: extract, call a service, answer.

pub mod admin;
pub mod ai;
pub mod analytics;
pub mod auth;
pub mod cors;
pub mod health;
pub mod ingest;
pub mod invites;
pub mod links;
pub mod org;
pub mod pages;
pub mod projects;
pub mod rate_limit;
pub mod sdk;
pub mod security_headers;
pub mod session;
pub mod views;
pub mod ws;

use crate::{error::ErrorCause, runtime::sessions::AppSessionStore, state::AppState};
use axum::{
    Json, Router,
    extract::Request,
    http::{HeaderValue, StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};
use tracing::Instrument;

/// The whole application router. Only the signed-in area carries the session layer; ingestion,
/// health, the SDK and static files never touch sessions.
pub fn router(state: AppState) -> Router {
    let app_area = Router::new()
        .merge(auth::router(&state))
        .merge(projects::router())
        .merge(ai::router(&state))
        .nest("/projects/{id}", analytics::routes())
        .merge(org::router(&state))
        .merge(invites::router())
        .merge(admin::router(&state))
        .merge(pages::session_router())
        .layer(middleware::from_fn(pages::html_errors))
        .layer(session_layer(&state));
    Router::new()
        .merge(app_area)
        .merge(public_area(&state))
        .merge(health::router())
        .merge(ingest::router(&state))
        .merge(pages::router())
        .merge(sdk::router())
        .merge(ws::router())
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), cors::cors))
        .layer(middleware::from_fn(request_id))
        .layer(middleware::map_response(security_headers::security_headers))
        .with_state(state)
}

/// Public links: the analytics routes again, read-only, behind a token instead of a session
/// (docs/features/public-links.md). Every request under the prefixes, unknown paths and wrong
/// tokens included, counts against the per-IP limit; every answer, 404 and 429 included, says
/// `X-Robots-Tag: noindex` and `Referrer-Policy: no-referrer` (the token is in the URL).
fn public_area(state: &AppState) -> Router<AppState> {
    let per_ip = rate_limit::RateLimitLayer::per_client_ip(
        state,
        crate::runtime::rate_limit::namespaces::PUBLIC_LINKS_IP,
        state.config.rate_limits.public_links_ip,
        // JSON for the `si` CLI; `html_errors` turns it into the HTML page for browsers.
        rate_limit::Style::Json,
    );
    // The fallbacks keep unknown paths under the prefixes inside this area's layers.
    Router::new()
        .nest(
            "/p/{id}/{token}",
            analytics::routes().fallback(pages::not_found),
        )
        .nest(
            "/docs/{id}/{token}",
            analytics::routes().fallback(pages::not_found),
        )
        .route("/p/{id}", axum::routing::any(pages::not_found))
        .layer(per_ip)
        .layer(middleware::from_fn(pages::html_errors))
        .layer(middleware::map_response(public_headers))
}

async fn public_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-robots-tag", HeaderValue::from_static("noindex"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

/// Server-side sessions: cookie `sid`, 14 days of inactivity, HttpOnly, SameSite from
/// `SESSION_SAMESITE`, Secure in production (or with SameSite=None), domain from `SESSION_DOMAIN`.
fn session_layer(state: &AppState) -> SessionManagerLayer<AppSessionStore> {
    let config = &state.config;
    let same_site = match config.session_samesite.as_str() {
        "strict" => SameSite::Strict,
        "none" => SameSite::None,
        _ => SameSite::Lax,
    };
    let mut layer = SessionManagerLayer::new(state.sessions.clone())
        .with_name("sid")
        .with_http_only(true)
        .with_same_site(same_site)
        .with_secure(config.production || same_site == SameSite::None)
        .with_expiry(Expiry::OnInactivity(time::Duration::days(14)));
    if let Some(domain) = &config.session_domain {
        layer = layer.with_domain(domain.clone());
    }
    layer
}

/// The request path as logs may show it: a public link's token (`/p/{id}/{token}/…`,
/// `/docs/{id}/{token}/…`) is replaced by `…`, so turning on debug logs never records tokens.
fn loggable_path(path: &str) -> std::borrow::Cow<'_, str> {
    let mut parts = path.splitn(5, '/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(""), Some(area @ ("p" | "docs")), Some(id), Some(_token)) => {
            let rest = parts.next().map(|r| format!("/{r}")).unwrap_or_default();
            format!("/{area}/{id}/…{rest}").into()
        }
        _ => path.into(),
    }
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> String {
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    let prefix = PREFIX.get_or_init(|| crate::domain::ids::random_hex(4));
    format!("{prefix}-{:x}", REQUEST_SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Gives every request an id (kept from a sane `X-Request-Id`, else generated), runs it inside a
/// span carrying that id, logs the hidden cause of any 5xx once, and puts the id into 500 bodies.
async fn request_id(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map(str::to_string)
        .unwrap_or_else(new_request_id);
    let span = tracing::debug_span!("request", id = %id, method = %request.method(), path = %loggable_path(request.uri().path()));
    async move {
        let mut response = next.run(request).await;
        let status = response.status();
        if let Some(ErrorCause(cause)) = response.extensions_mut().remove::<ErrorCause>() {
            tracing::error!(request_id = %id, status = status.as_u16(), cause = %cause, "request failed");
            if status == StatusCode::INTERNAL_SERVER_ERROR {
                let headers = std::mem::take(response.headers_mut());
                response = (status, Json(json!({"error": "Internal server error", "requestId": id}))).into_response();
                for (name, value) in headers.iter() {
                    if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
                        response.headers_mut().insert(name.clone(), value.clone());
                    }
                }
            }
        }
        tracing::debug!(status = status.as_u16(), "answered");
        if let Ok(value) = HeaderValue::from_str(&id) {
            response.headers_mut().insert("x-request-id", value);
        }
        response
    }
    .instrument(span)
    .await
}

#[cfg(test)]
mod tests {
    use super::loggable_path;

    #[test]
    fn public_link_tokens_never_reach_the_logs() {
        assert_eq!(loggable_path("/p/abc/tok123/events/x"), "/p/abc/…/events/x");
        assert_eq!(loggable_path("/docs/abc/tok123"), "/docs/abc/…");
        assert_eq!(loggable_path("/p/abc"), "/p/abc");
        assert_eq!(
            loggable_path("/projects/abc/dashboard"),
            "/projects/abc/dashboard"
        );
        assert_eq!(loggable_path("/v1/events"), "/v1/events");
    }
}
