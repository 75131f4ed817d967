//! Early answers of the JSON routes that keep their own error shapes (reports: `{error, code}`;
//! AI analysis: `{success: false, error}`), beside any [`AppError`], so every handler can stop
//! with `?`; and the CSRF-checked JSON body those routes read.

use crate::{error::AppError, store::StoreError};
use axum::{
    Json,
    body::Bytes,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// Largest JSON body these routes read.
const MAX_JSON_BYTES: usize = 64 * 1024;

/// Why a JSON route answers early.
pub enum Refused {
    /// `{error, code}` with its status.
    Coded(StatusCode, String, &'static str),
    /// `{success: false, error}` with its status.
    Fail(StatusCode, String),
    /// An application error, rendered as usual.
    App(AppError),
}

impl From<AppError> for Refused {
    fn from(e: AppError) -> Self {
        Refused::App(e)
    }
}

impl From<StoreError> for Refused {
    fn from(e: StoreError) -> Self {
        Refused::App(e.into())
    }
}

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        match self {
            Refused::Coded(status, error, code) => coded(status, &error, code),
            Refused::Fail(status, error) => fail(status, error),
            Refused::App(e) => e.into_response(),
        }
    }
}

/// A JSON error `{error, code}`.
pub fn coded(status: StatusCode, error: &str, code: &str) -> Response {
    (status, Json(json!({"error": error, "code": code}))).into_response()
}

/// A JSON error `{success: false, error}`.
pub fn fail(status: StatusCode, error: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"success": false, "error": error.into()})),
    )
        .into_response()
}

/// Why a JSON body was not read: the status and the message.
pub type BodyRefusal = (StatusCode, &'static str);

/// 403 unless `X-CSRF-Token` equals the session's token `csrf`; 413 over 64 KiB; 400 unless the
/// body is a JSON object (an empty body is `{}`). Then the body.
pub fn csrf_json(csrf: &str, headers: &HeaderMap, body: &Bytes) -> Result<Value, BodyRefusal> {
    let sent = headers
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sent.is_empty() || !bool::from(sent.as_bytes().ct_eq(csrf.as_bytes())) {
        return Err((StatusCode::FORBIDDEN, "Invalid or missing CSRF token"));
    }
    if body.len() > MAX_JSON_BYTES {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, "Body too large"));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(json!({}));
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(v @ Value::Object(_)) => Ok(v),
        _ => Err((StatusCode::BAD_REQUEST, "Body must be a JSON object")),
    }
}
