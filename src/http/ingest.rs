//! `/v1` ingestion routes, wire-compatible with SuperInsights 1.x: the per-IP limit, the size guard,
//! the API key from `Authorization: Bearer`, `X-API-Key`, `?apiKey=` or `?api_key=`, the
//! per-project limit, and its 201/202/400/401/413/429 bodies.
//! Handlers only extract and answer; [`crate::ingest::Ingestor`] does the work.

use crate::{
    domain::model::Channel,
    error::{AppError, MAX_INGEST_BYTES},
    http::rate_limit::{RateLimitLayer, Style},
    ingest::{Ingestor, keys::ProjectAuth},
    runtime::rate_limit::namespaces,
    state::AppState,
};
use axum::{
    Extension, Json, Router,
    body::Body,
    extract::{ConnectInfo, Path, Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::any,
};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use std::{net::SocketAddr, sync::Arc};

pub fn router(state: &AppState) -> Router<AppState> {
    let limits = &state.config.rate_limits;
    // One catch-all route: every /v1 path goes through the SuperInsights 1.x chain (2.4.1), then
    // POSTs to a known channel ingest and anything else is a 404. Route layers run bottom-up:
    // per-IP limit → size guard + key auth → per-project limit → handler. (OPTIONS never gets
    // here: the CORS middleware answers it first.)
    Router::new()
        .route("/v1/{*path}", any(v1))
        .route_layer(RateLimitLayer::per_project(
            state,
            namespaces::INGEST_PROJECT,
            limits.ingest_project,
            Style::Json,
        ))
        .route_layer(middleware::from_fn_with_state(
            state.ingestor.clone(),
            authenticate,
        ))
        .route_layer(RateLimitLayer::per_client_ip(
            state,
            namespaces::INGEST_IP,
            limits.ingest_ip,
            Style::Json,
        ))
}

/// The key, in SuperInsights 1.x's priority order.
fn api_key<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<String> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::to_string);
    let header_key = || {
        headers
            .get("x-api-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let query_key = || {
        let query = uri.query()?;
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        ["apiKey", "api_key"].iter().find_map(|name| {
            pairs
                .iter()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        })
    };
    bearer
        .filter(|k| !k.trim().is_empty())
        .or_else(header_key)
        .or_else(query_key)
}

/// The channel a `/v1/<path>` names, routed as Express did for 1.x: case-insensitive, with one
/// optional trailing slash (`/v1/events/`, `/v1/Events`).
fn channel_of(path: &str) -> Option<Channel> {
    let path = path.strip_suffix('/').unwrap_or(path);
    Channel::parse(&path.to_ascii_lowercase())
}

/// An HTML-form body (`curl -d url=/a`), which 1.x parsed into an object of strings. Every
/// other body is read as JSON.
fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        })
}

/// Rejects a declared body over the limit before reading anything.
fn check_declared_length(headers: &HeaderMap) -> Result<(), AppError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_INGEST_BYTES as u64 => Err(AppError::PayloadTooLarge),
        _ => Ok(()),
    }
}

/// Reads the body, enforcing the limit on the bytes actually received (chunked bodies included)
/// and the body timeout.
async fn read_limited(body: Body) -> Result<bytes::Bytes, AppError> {
    match Limited::new(body, MAX_INGEST_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(AppError::PayloadTooLarge)
        }
        // The rest did not arrive within HTTP_BODY_TIMEOUT_MS (crate::server): 408, not a 400.
        Err(e) if crate::server::is_body_timeout(&*e) => Err(AppError::RequestTimeout),
        Err(e) => Err(AppError::Validation(format!(
            "Could not read request body: {e}"
        ))),
    }
}

/// The size guard and key authentication, before the per-project limit: puts the
/// [`ProjectAuth`] into the request extensions for the limiter and the handler.
async fn authenticate(
    State(ingestor): State<Arc<Ingestor>>,
    mut request: Request,
    next: Next,
) -> Result<Response, AppError> {
    check_declared_length(request.headers())?;
    let auth = ingestor
        .authenticate(api_key(request.headers(), request.uri()).as_deref())
        .await?;
    request.extensions_mut().insert(auth);
    Ok(next.run(request).await)
}

#[allow(clippy::too_many_arguments)]
async fn v1(
    State(ingestor): State<Arc<Ingestor>>,
    Extension(auth): Extension<ProjectAuth>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    let Some(channel) = channel_of(&path).filter(|_| method == Method::POST) else {
        let body = Json(json!({"error": "Not found", "url": uri.path()}));
        return Ok((StatusCode::NOT_FOUND, body).into_response());
    };
    let bytes = read_limited(body).await?;
    let items = if is_form(&headers) {
        crate::ingest::parse::form_items(&bytes)
    } else {
        crate::ingest::parse::items(&bytes)
    }
    .map_err(|e| AppError::Validation(e.0))?;
    let facts = ingestor.enricher.facts(peer.ip(), &headers);
    let accepted = ingestor.ingest(&auth, channel, items, &facts).await?;
    Ok(if accepted.spooled {
        let mut r = (
            StatusCode::ACCEPTED,
            Json(json!({
                "success": true,
                "spooled": accepted.count,
                "note": "Database unavailable; payload spooled and will be flushed on recovery",
            })),
        )
            .into_response();
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        r
    } else if accepted.count == 0 && accepted.dropped > 0 {
        (
            StatusCode::CREATED,
            Json(json!({"success": true, "count": 0, "dropped": accepted.dropped})),
        )
            .into_response()
    } else {
        (
            StatusCode::CREATED,
            Json(json!({"success": true, "count": accepted.count})),
        )
            .into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| (header::HeaderName::from_static(k), v.parse().unwrap()))
            .collect()
    }

    #[test]
    fn key_priority_is_bearer_then_header_then_query() {
        let uri: Uri = "/v1/events?apiKey=q1&api_key=q2".parse().unwrap();
        let all = headers(&[("authorization", "Bearer b"), ("x-api-key", "h")]);
        assert_eq!(api_key(&all, &uri).as_deref(), Some("b"));
        assert_eq!(
            api_key(&headers(&[("x-api-key", "h")]), &uri).as_deref(),
            Some("h")
        );
        assert_eq!(api_key(&HeaderMap::new(), &uri).as_deref(), Some("q1"));
        let only_snake: Uri = "/v1/events?api_key=q2".parse().unwrap();
        assert_eq!(
            api_key(&HeaderMap::new(), &only_snake).as_deref(),
            Some("q2")
        );
        assert_eq!(
            api_key(&HeaderMap::new(), &"/v1/events".parse().unwrap()),
            None
        );
    }

    #[test]
    fn channels_route_like_express_non_strict_case_insensitive() {
        assert_eq!(channel_of("events"), Some(Channel::Events));
        assert_eq!(channel_of("events/"), Some(Channel::Events));
        assert_eq!(channel_of("PageViews/"), Some(Channel::Pageviews));
        assert_eq!(channel_of("events//"), None);
        assert_eq!(channel_of("events/x"), None);
        assert_eq!(channel_of(""), None);
    }

    #[test]
    fn form_bodies_are_recognised_by_content_type() {
        let form = headers(&[(
            "content-type",
            "application/x-www-form-urlencoded; charset=UTF-8",
        )]);
        assert!(is_form(&form));
        assert!(!is_form(&headers(&[("content-type", "application/json")])));
        assert!(!is_form(&HeaderMap::new()));
    }

    #[test]
    fn declared_length_over_64k_is_rejected() {
        assert!(check_declared_length(&headers(&[("content-length", "65536")])).is_ok());
        assert!(matches!(
            check_declared_length(&headers(&[("content-length", "65537")])),
            Err(AppError::PayloadTooLarge)
        ));
    }
}
