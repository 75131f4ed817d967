//! What every request leaves behind: a request id (kept from a sane `X-Request-Id`, else made
//! here; tower-http's request-id layers carry it), one `info` line when it is answered (method,
//! route template, status, latency, id; tower-http's trace layer), the Prometheus series by
//! route template and status, and — for a failed request — its hidden cause logged once, with
//! 500 bodies naming the id. Route templates, never raw paths, label the series and the log
//! line, so a public link's token or a scan of random URLs never reaches either.

use crate::error::ErrorCause;
use axum::{
    Json,
    extract::{MatchedPath, Request},
    http::{HeaderName, HeaderValue, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde_json::json;
use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};
use tower_http::{
    classify::{ServerErrorsAsFailures, SharedClassifier},
    request_id::{MakeRequestId, RequestId},
    trace::{MakeSpan, OnResponse, TraceLayer},
};
use tracing::Span;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes ids `<process prefix>-<sequence in hex>`: short, unique per process, sortable.
#[derive(Clone, Copy, Default)]
pub struct SequentialIds;

impl MakeRequestId for SequentialIds {
    fn make_request_id<B>(&mut self, _: &axum::http::Request<B>) -> Option<RequestId> {
        HeaderValue::from_str(&new_request_id())
            .ok()
            .map(RequestId::new)
    }
}

static REQUEST_SEQ: AtomicU64 = AtomicU64::new(0);

fn new_request_id() -> String {
    use std::sync::OnceLock;
    static PREFIX: OnceLock<String> = OnceLock::new();
    let prefix = PREFIX.get_or_init(|| crate::domain::ids::random_hex(4));
    format!("{prefix}-{:x}", REQUEST_SEQ.fetch_add(1, Ordering::Relaxed))
}

/// Drops an incoming `X-Request-Id` that is not 1–64 of `[A-Za-z0-9_-]`, so the id layer makes
/// one instead of logging whatever a client sent.
pub async fn drop_unsafe_request_id(mut request: Request, next: Next) -> Response {
    let sane = request
        .headers()
        .get(&X_REQUEST_ID)
        .map(|v| {
            let b = v.as_bytes();
            !b.is_empty()
                && b.len() <= 64
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
        })
        .unwrap_or(true);
    if !sane {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    next.run(request).await
}

/// The route template of a request, or `unmatched`.
fn route_of(request: &Request) -> String {
    request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string())
}

/// tower-http's trace layer with our span and answer line.
pub fn trace_layer()
-> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, RequestSpan, (), AnswerLine> {
    TraceLayer::new_for_http()
        .make_span_with(RequestSpan)
        .on_request(())
        .on_response(AnswerLine)
}

/// The `request` span: method, route template (the raw path, with public-link tokens masked,
/// only when no route matched) and request id.
#[derive(Clone, Copy)]
pub struct RequestSpan;

impl<B> MakeSpan<B> for RequestSpan {
    fn make_span(&mut self, request: &axum::http::Request<B>) -> Span {
        let id = request
            .extensions()
            .get::<RequestId>()
            .and_then(|id| id.header_value().to_str().ok())
            .unwrap_or("-");
        let route = match request.extensions().get::<MatchedPath>() {
            Some(p) => p.as_str().to_string(),
            None => loggable_path(request.uri().path()).into_owned(),
        };
        tracing::info_span!("request", method = %request.method(), route = %route, id = %id)
    }
}

/// One `info` line per answered request, inside its span.
#[derive(Clone, Copy)]
pub struct AnswerLine;

impl<B> OnResponse<B> for AnswerLine {
    fn on_response(self, response: &axum::http::Response<B>, latency: Duration, _: &Span) {
        tracing::info!(
            status = response.status().as_u16(),
            latency_ms = latency.as_secs_f64() * 1000.0,
            "answered"
        );
    }
}

/// Counts the request by method, route template and status, with its latency.
pub async fn record_metrics(request: Request, next: Next) -> Response {
    let method = request.method().as_str().to_string();
    let route = route_of(&request);
    let started = Instant::now();
    let response = next.run(request).await;
    crate::telemetry::http_request(
        &method,
        &route,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

/// Logs the hidden cause of a failed request once (inside its span), and turns a 500's body
/// into `{"error":"Internal server error","requestId":…}`.
pub async fn log_error_cause(request: Request, next: Next) -> Response {
    let id = request
        .extensions()
        .get::<RequestId>()
        .and_then(|id| id.header_value().to_str().ok())
        .unwrap_or("-")
        .to_string();
    let mut response = next.run(request).await;
    let status = response.status();
    if let Some(ErrorCause(cause)) = response.extensions_mut().remove::<ErrorCause>() {
        tracing::error!(request_id = %id, status = status.as_u16(), cause = %cause, "request failed");
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            let headers = std::mem::take(response.headers_mut());
            response = (
                status,
                Json(json!({"error": "Internal server error", "requestId": id})),
            )
                .into_response();
            for (name, value) in headers.iter() {
                if name != header::CONTENT_LENGTH && name != header::CONTENT_TYPE {
                    response.headers_mut().insert(name.clone(), value.clone());
                }
            }
        }
    }
    response
}

/// The request path as logs may show it: a public link's token (`/p/{id}/{token}/…`,
/// `/docs/{id}/{token}/…`) is replaced by `…`, so no log line ever records a token.
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
