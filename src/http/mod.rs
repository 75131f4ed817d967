//! The HTTP surface: one router per area, composed here with the cross-cutting layers
//! (request ids, tracing, metrics and error logging in `observe`, CORS, security headers,
//! response compression). Handlers
//! stay thin: extract, call a service, answer.

pub mod admin;
pub mod ai;
pub mod analytics;
pub mod audit_context;
pub mod auth;
pub mod cors;
pub mod email;
pub mod health;
pub mod ingest;
pub mod invites;
pub mod links;
pub mod logs;
pub mod observe;
pub mod org;
pub mod pages;
pub mod projects;
pub mod rate_limit;
pub mod refused;
pub mod report_routes;
pub mod sdk;
pub mod security_headers;
pub mod session;
pub mod views;
pub mod ws;

use crate::{runtime::sessions::AppSessionStore, state::AppState};
use axum::{
    Router,
    http::{HeaderValue, header},
    middleware,
    response::Response,
};
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use tower_sessions::{Expiry, SessionManagerLayer, cookie::SameSite};

/// The whole application router. Only the signed-in area carries the session layer; ingestion,
/// health, the SDK and static files never touch sessions.
pub fn router(state: AppState) -> Router {
    let app_area = Router::new()
        .merge(auth::router(&state))
        .merge(projects::router())
        .merge(ai::router(&state))
        .merge(report_routes::router())
        .nest("/projects/{id}", analytics::routes())
        .merge(org::router(&state))
        .merge(invites::router())
        .merge(admin::router(&state))
        .merge(logs::router())
        .merge(email::router(&state))
        .merge(pages::session_router())
        .layer(middleware::from_fn(pages::html_errors))
        .layer(session_layer(&state));
    // Pages, their assets, the SDK and JSON views are compressed; ingestion (small answers, on
    // the hot path) and WebSocket upgrades are not.
    let compressed = Router::new()
        .merge(app_area)
        .merge(public_area(&state))
        .merge(health::router())
        .merge(pages::router())
        .merge(sdk::router())
        .layer(compression());
    Router::new()
        .merge(compressed)
        .merge(ingest::router(&state))
        .merge(ws::router())
        .fallback(pages::not_found)
        .layer(middleware::from_fn_with_state(state.clone(), cors::cors))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit_context::audit_context,
        ))
        .layer(middleware::from_fn(observe::log_error_cause))
        .layer(middleware::from_fn(observe::record_metrics))
        .layer(PropagateRequestIdLayer::new(observe::X_REQUEST_ID.clone()))
        .layer(observe::trace_layer())
        .layer(SetRequestIdLayer::new(
            observe::X_REQUEST_ID.clone(),
            observe::SequentialIds,
        ))
        .layer(middleware::from_fn(observe::drop_unsafe_request_id))
        .layer(middleware::map_response(security_headers::security_headers))
        .with_state(state)
}

/// gzip or Brotli by the client's `Accept-Encoding`, at a fast level (4: most of the size
/// saving for a fraction of the CPU of the maximum), for answers over 32 bytes that are not
/// images, gRPC or event streams (tower-http's default predicate: SSE is never buffered).
fn compression() -> tower_http::compression::CompressionLayer {
    tower_http::compression::CompressionLayer::new()
        .quality(tower_http::CompressionLevel::Precise(4))
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
