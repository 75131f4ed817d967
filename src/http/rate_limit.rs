//! The rate-limit tower layer, configured per use: a namespace, a key taken from the request
//! (client IP, authenticated project, or any closure), a [`Limit`] and a response style. It asks
//! the [`RateLimiter`] port (chosen at startup) and answers 429 itself; it holds no counts.
//! Every answer it lets through or rejects carries `RateLimit-Limit`, `RateLimit-Remaining`,
//! `RateLimit-Reset` and `RateLimit-Policy` (IETF draft, as express-rate-limit's `draft-6`).

use crate::{
    config::Limit,
    error::AppError,
    ingest::{Ingestor, keys::ProjectAuth},
    runtime::rate_limit::{Decision, RateLimiter},
    state::AppState,
};
use axum::{
    extract::{ConnectInfo, Request},
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::future::BoxFuture;
use std::{
    convert::Infallible,
    net::{IpAddr, SocketAddr},
    sync::Arc,
    task::{Context, Poll},
};
use tower::{Layer, Service};

pub const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

/// The text of the HTML 429 page (SuperInsights 1.x).
pub const TOO_MANY_REQUESTS_TEXT: &str = "Too many requests. Please try again later.";

/// How a rejection looks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// API routes: 429 `{"error":"Rate limit exceeded","retryAfter":s}` and `Retry-After`.
    Json,
    /// HTML forms: 429 error page "Too many requests. Please try again later." and `Retry-After`.
    Html,
}

/// Picks the limiter key from a request; `None` lets the request through unlimited.
pub type KeyFn = Arc<dyn Fn(&Request) -> Option<String> + Send + Sync>;

struct Settings {
    limiter: Arc<dyn RateLimiter>,
    namespace: &'static str,
    limit: Limit,
    style: Style,
    key: KeyFn,
}

/// A configured limiter, applied with `Router::route_layer` (or `layer`).
#[derive(Clone)]
pub struct RateLimitLayer {
    settings: Arc<Settings>,
}

impl RateLimitLayer {
    /// A limiter keyed by any closure over the request (e.g. user + project for reports).
    pub fn new(
        limiter: Arc<dyn RateLimiter>,
        namespace: &'static str,
        limit: Limit,
        style: Style,
        key: impl Fn(&Request) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            settings: Arc::new(Settings {
                limiter,
                namespace,
                limit,
                style,
                key: Arc::new(key),
            }),
        }
    }

    /// Keyed by the client IP as the ingestion enricher sees it: the socket peer, or the trusted
    /// proxy's `X-Forwarded-For` entry only with `TRUST_PROXY` (see [`client_ip_key`]).
    pub fn per_client_ip(
        state: &AppState,
        namespace: &'static str,
        limit: Limit,
        style: Style,
    ) -> Self {
        let ingestor = state.ingestor.clone();
        Self::new(
            state.rate_limiter.clone(),
            namespace,
            limit,
            style,
            move |request| Some(client_ip_key(&ingestor, request)),
        )
    }

    /// Keyed by the project a previous layer authenticated ([`ProjectAuth`] in the request
    /// extensions); a request without one passes unlimited.
    pub fn per_project(
        state: &AppState,
        namespace: &'static str,
        limit: Limit,
        style: Style,
    ) -> Self {
        Self::new(
            state.rate_limiter.clone(),
            namespace,
            limit,
            style,
            project_key,
        )
    }
}

/// The client IP key: IPv4 as is; IPv6 by its /64 prefix (one host usually holds a whole /64,
/// so per-address keys would let it multiply its budget). Without a peer address: `unknown`.
pub fn client_ip_key(ingestor: &Ingestor, request: &Request) -> String {
    match request.extensions().get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => {
            ip_key(ingestor.enricher.client_ip(peer.ip(), request.headers()))
        }
        None => "unknown".into(),
    }
}

/// The limiter key of a client IP (IPv6 by /64), for keys built outside a request.
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

/// The authenticated project's id, if a previous layer put a [`ProjectAuth`] in the extensions.
pub fn project_key(request: &Request) -> Option<String> {
    request
        .extensions()
        .get::<ProjectAuth>()
        .map(|auth| auth.project_id.to_hex())
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            settings: self.settings.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    settings: Arc<Settings>,
}

impl<S> Service<Request> for RateLimitService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // The clone is not ready yet; keep the ready one for this call (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let settings = self.settings.clone();
        Box::pin(async move {
            let key = match settings.limit.is_off() {
                true => None,
                false => (settings.key)(&request),
            };
            let Some(key) = key else {
                return inner.call(request).await;
            };
            let decision = settings
                .limiter
                .check(
                    settings.namespace,
                    &key,
                    settings.limit.max,
                    settings.limit.window,
                )
                .await;
            crate::telemetry::rate_limit_decision(settings.namespace, decision.allowed);
            if !decision.allowed {
                return Ok(rejection(settings.style, settings.limit, &decision));
            }
            let mut response = inner.call(request).await?;
            set_headers(response.headers_mut(), &decision, settings.limit);
            Ok(response)
        })
    }
}

/// The layer's check for a handler that must decide first whether a limit applies (the
/// WebSocket upgrade): `Err` is the same 429 answer, with the same headers.
pub async fn check(
    limiter: &dyn RateLimiter,
    namespace: &'static str,
    key: &str,
    limit: Limit,
    style: Style,
) -> Result<(), Response> {
    if limit.is_off() {
        return Ok(());
    }
    let decision = limiter.check(namespace, key, limit.max, limit.window).await;
    crate::telemetry::rate_limit_decision(namespace, decision.allowed);
    if decision.allowed {
        Ok(())
    } else {
        Err(rejection(style, limit, &decision))
    }
}

fn rejection(style: Style, limit: Limit, decision: &Decision) -> Response {
    let retry_after = decision.reset_after_secs();
    let mut response = match style {
        Style::Json => AppError::RateLimited { retry_after }.into_response(),
        Style::Html => {
            let mut page =
                super::pages::error_page(StatusCode::TOO_MANY_REQUESTS, TOO_MANY_REQUESTS_TEXT);
            page.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
            page
        }
    };
    set_headers(response.headers_mut(), decision, limit);
    response
}

/// Sets the RateLimit-* headers, unless an inner limiter already set tighter ones: with two
/// limiters on one route (per IP, then per project) the client sees the one closest to its limit.
fn set_headers(headers: &mut HeaderMap, decision: &Decision, limit: Limit) {
    let inner_remaining = headers
        .get(&RATELIMIT_REMAINING)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u32>().ok());
    if inner_remaining.is_some_and(|r| r <= decision.remaining) {
        return;
    }
    let window_secs = limit.window.as_millis().div_ceil(1000).max(1);
    headers.insert(RATELIMIT_LIMIT, HeaderValue::from(decision.limit));
    headers.insert(RATELIMIT_REMAINING, HeaderValue::from(decision.remaining));
    headers.insert(
        RATELIMIT_RESET,
        HeaderValue::from(decision.reset_after_secs()),
    );
    if let Ok(policy) = HeaderValue::from_str(&format!("{};w={window_secs}", decision.limit)) {
        headers.insert(RATELIMIT_POLICY, policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::rate_limit::MemoryRateLimiter;
    use axum::{Router, body::Body, routing::get};
    use http_body_util::BodyExt;
    use std::time::Duration;
    use tower::ServiceExt;

    fn app(style: Style, max: u32) -> Router {
        let limiter: Arc<dyn RateLimiter> = Arc::new(MemoryRateLimiter::default());
        let limit = Limit {
            max,
            window: Duration::from_secs(60),
        };
        Router::new()
            .route("/", get(|| async { "ok" }))
            .route_layer(RateLimitLayer::new(
                limiter,
                "test",
                limit,
                style,
                |r: &Request| {
                    r.headers()
                        .get("x-user")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string)
                },
            ))
    }

    async fn get_as(app: &Router, user: Option<&str>) -> Response {
        let mut request = Request::builder().uri("/");
        if let Some(user) = user {
            request = request.header("x-user", user);
        }
        app.clone()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap()
    }

    async fn text(response: Response) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn html_style_answers_the_too_many_requests_page() {
        let app = app(Style::Html, 1);
        let ok = get_as(&app, Some("a")).await;
        assert_eq!(ok.status(), 200);
        assert_eq!(ok.headers()["ratelimit-limit"], "1");
        assert_eq!(ok.headers()["ratelimit-remaining"], "0");
        assert_eq!(ok.headers()["ratelimit-reset"], "60");
        assert_eq!(ok.headers()["ratelimit-policy"], "1;w=60");
        let limited = get_as(&app, Some("a")).await;
        assert_eq!(limited.status(), 429);
        assert!(
            limited.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let retry: u64 = limited.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=60).contains(&retry));
        assert_eq!(limited.headers()["ratelimit-remaining"], "0");
        assert!(text(limited).await.contains(TOO_MANY_REQUESTS_TEXT));
        // Another key has its own budget.
        assert_eq!(get_as(&app, Some("b")).await.status(), 200);
    }

    #[tokio::test]
    async fn json_style_answers_the_superinsights_body() {
        let app = app(Style::Json, 1);
        assert_eq!(get_as(&app, Some("a")).await.status(), 200);
        let limited = get_as(&app, Some("a")).await;
        assert_eq!(limited.status(), 429);
        let retry = limited.headers()[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .to_string();
        let body: serde_json::Value = serde_json::from_str(&text(limited).await).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": "Rate limit exceeded", "retryAfter": retry.parse::<u64>().unwrap()})
        );
    }

    #[tokio::test]
    async fn no_key_or_a_limit_turned_off_passes_without_headers() {
        let app = app(Style::Json, 1);
        for _ in 0..3 {
            let r = get_as(&app, None).await;
            assert_eq!(r.status(), 200);
            assert!(r.headers().get("ratelimit-limit").is_none());
        }
        let off = self::app(Style::Json, 0);
        for _ in 0..3 {
            assert_eq!(get_as(&off, Some("a")).await.status(), 200);
        }
    }

    #[test]
    fn ipv6_clients_share_a_key_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(ip_key("203.0.113.9".parse().unwrap()), "203.0.113.9");
    }

    #[test]
    fn the_tighter_of_two_limiters_shows_in_the_headers() {
        let mut headers = HeaderMap::new();
        let limit = Limit::per_minute(10);
        let decision = |remaining| Decision {
            allowed: true,
            limit: 10,
            remaining,
            reset_after: Duration::from_secs(5),
        };
        set_headers(&mut headers, &decision(3), limit);
        set_headers(&mut headers, &decision(7), limit);
        assert_eq!(headers["ratelimit-remaining"], "3");
        set_headers(&mut headers, &decision(1), limit);
        assert_eq!(headers["ratelimit-remaining"], "1");
    }
}
