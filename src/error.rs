//! `AppError`: the one error type handlers return, and its single mapping to HTTP responses.
//! Ingestion keeps SuperInsights 1.x's body shapes. A 5xx body says only "Internal server error"
//! with the request id; the cause travels in a response extension and is logged once by the
//! request-id middleware (`http::request_id`), inside the request's span.

use crate::domain::analytics::StillComputing;
use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde_json::json;

/// The largest ingestion body, in bytes (SuperInsights 1.x: 64 KiB).
pub const MAX_INGEST_BYTES: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// A client sent something invalid; `details` says what (ingestion's 400 shape).
    #[error("validation failed: {0}")]
    Validation(String),
    #[error("payload too large")]
    PayloadTooLarge,
    #[error("API key required")]
    ApiKeyRequired,
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("not found")]
    NotFound,
    /// Over a rate limit; the client may retry after `retry_after` seconds (429, `Retry-After`).
    #[error("rate limit exceeded")]
    RateLimited { retry_after: u64 },
    /// The request body did not arrive within `HTTP_BODY_TIMEOUT_MS` (408; the connection closes).
    #[error("request body timed out")]
    RequestTimeout,
    /// Too many open connections of one kind (e.g. WebSockets from one IP); the client may try
    /// again after `retry_after` seconds (429, `Retry-After`).
    #[error("too many connections (at most {limit})")]
    TooManyConnections { limit: usize, retry_after: u64 },
    /// A dependency is down and nothing was accepted; the client should retry after `retry_after` s.
    #[error("service unavailable: {cause}")]
    Unavailable { cause: String, retry_after: u32 },
    /// An analytics view is still being computed after the request's wait; the computation goes
    /// on and fills the cache, so a retry after `retry_after` s finds it. JSON clients get the
    /// same 503 as [`AppError::Unavailable`]; browsers a page that says so and reloads itself.
    #[error("still computing: {cause}")]
    StillComputing { cause: String, retry_after: u32 },
    /// A bug or an unexpected failure; `cause` is logged, never shown.
    #[error("internal error: {0}")]
    Internal(String),
    /// A request the user may fix (a form field, a missing parameter); the text is shown.
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A query parameter a view does not take or cannot use (400 naming it in `parameter`).
    #[error(transparent)]
    BadParameter(#[from] crate::domain::params::BadParam),
    /// Signed in, but not allowed to do this; the text is shown.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// The change collides with existing state (e.g. already a member); the text is shown.
    #[error("conflict: {0}")]
    Conflict(String),
}

/// What the HTML error page needs, attached to every error response so that HTML routers can
/// render a page instead of the JSON body (see `http::pages::html_errors`).
#[derive(Clone, Debug)]
pub struct ErrorPageInfo {
    pub message: String,
    /// Seconds after which the page reloads itself (a view still being computed), if ever.
    pub reload_after: Option<u32>,
}

impl ErrorPageInfo {
    /// A page showing `message`, not reloading itself.
    pub fn new(message: String) -> Self {
        Self {
            message,
            reload_after: None,
        }
    }
}

/// What the page of a view still being computed says.
const STILL_COMPUTING: &str = "These figures are still being computed. The first look at a long \
    period or at a lot of data can take a while; the computation goes on without this page, and \
    the figures appear as soon as it is done.";

/// The hidden cause of a 5xx response, for the request-id middleware to log.
#[derive(Clone, Debug)]
pub struct ErrorCause(pub String);

/// `text`, then the text of each error down the `source` chain that `text` does not already say
/// (a driver error's own text is usually the port error's message already).
fn with_causes(mut text: String, mut source: Option<&(dyn std::error::Error + 'static)>) -> String {
    while let Some(e) = source {
        let said = e.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        source = e.source();
    }
    text
}

/// The store error's causes go into the logged cause.
impl From<crate::store::StoreError> for AppError {
    fn from(e: crate::store::StoreError) -> Self {
        use std::error::Error;
        match &e {
            crate::store::StoreError::NotFound => AppError::NotFound,
            crate::store::StoreError::Unavailable {
                message,
                source: Some(cause),
            } if cause.is::<StillComputing>() => AppError::StillComputing {
                cause: message.clone(),
                retry_after: 5,
            },
            crate::store::StoreError::Unavailable { message, .. } => AppError::Unavailable {
                cause: with_causes(message.clone(), e.source()),
                retry_after: 5,
            },
            _ => AppError::Internal(with_causes(e.to_string(), e.source())),
        }
    }
}

/// The ingest path's refusals, as 1.x answers them.
impl From<crate::ingest::IngestError> for AppError {
    fn from(e: crate::ingest::IngestError) -> Self {
        use crate::ingest::IngestError;
        match e {
            IngestError::ApiKeyRequired => AppError::ApiKeyRequired,
            IngestError::InvalidApiKey => AppError::InvalidApiKey,
            IngestError::Validation(details) => AppError::Validation(details),
            IngestError::Unavailable { cause, retry_after } => {
                AppError::Unavailable { cause, retry_after }
            }
            IngestError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, body) = match &self {
            AppError::Validation(details) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "Validation failed", "details": details}),
            ),
            AppError::PayloadTooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "Payload too large", "maxBytes": MAX_INGEST_BYTES}),
            ),
            AppError::ApiKeyRequired => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "API key required"}),
            ),
            AppError::InvalidApiKey => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "Invalid API key"}),
            ),
            AppError::NotFound => (StatusCode::NOT_FOUND, json!({"error": "Not found"})),
            AppError::RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "Rate limit exceeded", "retryAfter": retry_after}),
            ),
            AppError::RequestTimeout => (
                StatusCode::REQUEST_TIMEOUT,
                json!({"error": "Request timeout"}),
            ),
            AppError::TooManyConnections { limit, retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                json!({"error": "Too many connections", "limit": limit, "retryAfter": retry_after}),
            ),
            AppError::Unavailable { retry_after, .. }
            | AppError::StillComputing { retry_after, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "Service temporarily unavailable", "retryAfter": retry_after}),
            ),
            AppError::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({"error": "Internal server error"}),
            ),
            AppError::BadRequest(m) => (StatusCode::BAD_REQUEST, json!({"error": m})),
            AppError::BadParameter(bad) => (
                StatusCode::BAD_REQUEST,
                json!({"error": bad.to_string(), "parameter": bad.name, "code": bad.code}),
            ),
            AppError::Forbidden(m) => (
                StatusCode::FORBIDDEN,
                json!({"error": m, "code": "FORBIDDEN"}),
            ),
            AppError::Conflict(m) => (StatusCode::CONFLICT, json!({"error": m})),
        };
        let message = match &self {
            AppError::BadRequest(m) | AppError::Forbidden(m) | AppError::Conflict(m) => m.clone(),
            AppError::Validation(d) => d.clone(),
            AppError::NotFound => "This page does not exist.".into(),
            AppError::RateLimited { .. } | AppError::TooManyConnections { .. } => {
                "Too many requests. Please try again later.".into()
            }
            AppError::RequestTimeout => "The request took too long to arrive.".into(),
            AppError::Unavailable { .. } => {
                "The service is temporarily unavailable. Please try again shortly.".into()
            }
            AppError::StillComputing { .. } => STILL_COMPUTING.into(),
            AppError::Internal(_) => "Something went wrong on our side.".into(),
            other => other.to_string(),
        };
        let reload_after = match &self {
            AppError::StillComputing { retry_after, .. } => Some(*retry_after),
            _ => None,
        };
        let mut response = (status, Json(body)).into_response();
        response.extensions_mut().insert(ErrorPageInfo {
            message,
            reload_after,
        });
        match self {
            AppError::Unavailable { cause, retry_after } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
                response.extensions_mut().insert(ErrorCause(cause));
            }
            // Not a failure: no cause to log as one (the request's log line shows the 503).
            AppError::StillComputing { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            AppError::Internal(cause) => {
                response.extensions_mut().insert(ErrorCause(cause));
            }
            AppError::RateLimited { retry_after }
            | AppError::TooManyConnections { retry_after, .. } => {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            }
            // The rest of the body may still be on its way: this connection cannot be reused.
            AppError::RequestTimeout => {
                response
                    .headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A driver-like error with a cause of its own.
    #[derive(Debug, thiserror::Error)]
    #[error("{0}")]
    struct Failure(&'static str, #[source] Option<Box<Failure>>);

    #[test]
    fn store_errors_convert_with_their_causes() {
        use crate::store::StoreError;
        let reset = Failure("pool closed", Some(Box::new(Failure("socket reset", None))));
        match AppError::from(StoreError::unavailable_from(reset)) {
            AppError::Unavailable { cause, retry_after } => {
                assert_eq!(
                    (cause.as_str(), retry_after),
                    ("pool closed: socket reset", 5)
                );
            }
            other => panic!("{other:?}"),
        }
        let bad = Failure("no such column", None);
        match AppError::from(StoreError::other_with("reading users", bad)) {
            AppError::Internal(cause) => {
                assert_eq!(cause, "store error: reading users: no such column");
            }
            other => panic!("{other:?}"),
        }
        match AppError::from(StoreError::other("bad id".into())) {
            AppError::Internal(cause) => assert_eq!(cause, "store error: bad id"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            AppError::from(StoreError::NotFound),
            AppError::NotFound
        ));
    }

    #[test]
    fn internal_errors_hide_the_cause_from_the_body() {
        let r = AppError::Internal("db password wrong".into()).into_response();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            r.extensions().get::<ErrorCause>().unwrap().0,
            "db password wrong"
        );
    }

    #[test]
    fn unavailable_sets_retry_after() {
        let r = AppError::Unavailable {
            cause: "x".into(),
            retry_after: 5,
        }
        .into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        assert_eq!(
            r.extensions().get::<ErrorPageInfo>().unwrap().reload_after,
            None
        );
    }

    /// A view still being computed: JSON clients get the outage's 503, browsers a page that
    /// reloads itself after `Retry-After`; no failure is logged. Any other outage stays one.
    #[test]
    fn a_view_still_being_computed_is_a_503_whose_page_reloads_itself() {
        use crate::store::StoreError;
        let pending = StillComputing {
            kind: "dashboard".into(),
            waited: std::time::Duration::from_secs(20),
        };
        let e = AppError::from(StoreError::unavailable_from(pending.clone()));
        assert!(
            matches!(&e, AppError::StillComputing { cause, retry_after: 5 } if *cause == pending.to_string()),
            "{e:?}"
        );
        let r = e.into_response();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "5");
        let info = r.extensions().get::<ErrorPageInfo>().unwrap();
        assert_eq!(info.reload_after, Some(5));
        assert!(info.message.contains("still being computed"), "{info:?}");
        assert!(r.extensions().get::<ErrorCause>().is_none());
        let outage = AppError::from(StoreError::unavailable("pool closed".into()));
        assert!(matches!(outage, AppError::Unavailable { .. }), "{outage:?}");
    }
}
