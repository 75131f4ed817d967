//! CORS as SuperInsights 1.x does it: on `/v1` (where `navigator.sendBeacon` forces credentials
//! mode) and for allow-listed origins, the origin is reflected with credentials; elsewhere `*`.
//! Every `OPTIONS` request is answered 204 here, before routing, auth or limits.

use crate::config::Config;
use axum::{
    extract::{Request, State},
    http::{HeaderMap, HeaderValue, Method, StatusCode, header},
    middleware::Next,
    response::{IntoResponse, Response},
};
use std::sync::Arc;

const ALLOW_METHODS: &str = "GET, POST, PUT, PATCH, DELETE, OPTIONS";
const DEFAULT_ALLOW_HEADERS: &str = "Authorization, X-API-Key, Content-Type";

pub async fn cors(State(config): State<Arc<Config>>, request: Request, next: Next) -> Response {
    let origin = request.headers().get(header::ORIGIN).cloned();
    let path = request.uri().path();
    let on_v1 = path == "/v1" || path.starts_with("/v1/");
    let requested_headers = request
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
        .cloned();
    let allow_listed = origin
        .as_ref()
        .and_then(|o| o.to_str().ok())
        .is_some_and(|o| config.cors_allowed_origins.iter().any(|a| a == o));
    let reflect = origin.filter(|_| on_v1 || allow_listed);

    let mut response = if request.method() == Method::OPTIONS {
        StatusCode::NO_CONTENT.into_response()
    } else {
        next.run(request).await
    };
    apply(response.headers_mut(), reflect, requested_headers);
    response
}

fn apply(
    headers: &mut HeaderMap,
    reflect: Option<HeaderValue>,
    requested_headers: Option<HeaderValue>,
) {
    match reflect {
        Some(origin) => {
            headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
            headers.append(header::VARY, HeaderValue::from_static("Origin"));
        }
        None => {
            headers.insert(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*"),
            );
        }
    }
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static(ALLOW_METHODS),
    );
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        requested_headers.unwrap_or_else(|| HeaderValue::from_static(DEFAULT_ALLOW_HEADERS)),
    );
}
