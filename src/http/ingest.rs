//! `/v1` ingestion routes, wire-compatible with SuperInsights 1.x: the size guard, the API key from
//! `Authorization: Bearer`, `X-API-Key`, `?apiKey=` or `?api_key=`, and its 201/202/400/401/413 bodies.
//! Handlers only extract and answer; [`crate::ingest::Ingestor`] does the work.

use crate::{
    domain::model::Channel,
    error::{AppError, MAX_INGEST_BYTES},
    ingest::Ingestor,
    state::AppState,
};
use axum::{
    Json, Router,
    body::Body,
    extract::{ConnectInfo, Path, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header},
    response::{IntoResponse, Response},
    routing::any,
};
use http_body_util::{BodyExt, Limited};
use serde_json::json;
use std::{net::SocketAddr, sync::Arc};

pub fn router() -> Router<AppState> {
    // One catch-all route: every /v1 path authenticates first (as in SuperInsights 1.x), then
    // POSTs to a known channel ingest and anything else is a 404.
    Router::new().route("/v1/{*path}", any(v1))
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

/// Reads the body, enforcing the limit on the bytes actually received (chunked bodies included).
async fn read_limited(body: Body) -> Result<bytes::Bytes, AppError> {
    match Limited::new(body, MAX_INGEST_BYTES).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(AppError::PayloadTooLarge)
        }
        Err(e) => Err(AppError::Validation(format!(
            "Could not read request body: {e}"
        ))),
    }
}

async fn v1(
    State(ingestor): State<Arc<Ingestor>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(path): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, AppError> {
    check_declared_length(&headers)?;
    let auth = ingestor
        .authenticate(api_key(&headers, &uri).as_deref())
        .await?;
    let Some(channel) = Channel::parse(&path).filter(|_| method == Method::POST) else {
        let body = Json(json!({"error": "Not found", "url": uri.path()}));
        return Ok((StatusCode::NOT_FOUND, body).into_response());
    };
    let bytes = read_limited(body).await?;
    let items = crate::ingest::parse::items(&bytes).map_err(|e| AppError::Validation(e.0))?;
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
    fn declared_length_over_64k_is_rejected() {
        assert!(check_declared_length(&headers(&[("content-length", "65536")])).is_ok());
        assert!(matches!(
            check_declared_length(&headers(&[("content-length", "65537")])),
            Err(AppError::PayloadTooLarge)
        ));
    }
}
