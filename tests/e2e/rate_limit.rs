//! Rate limiting end to end: the Redis limiter against a private redis-server (the shared
//! contract), the /v1 limiters over real HTTP (429 shape, RateLimit-* headers, X-Forwarded-For
//! only behind a trusted proxy), three real server processes sharing one limit through Redis,
//! and a Redis outage while requests flow.

use crate::{
    process::create_admin,
    support::{RedisServer, ServerProcess, TestApp, eventually},
};
use fred::prelude::*;
use serde_json::{Value, json};
use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, Ordering},
    },
    time::{Duration, Instant},
};
use superinsights::{
    config::{RedisConfig, Secret},
    runtime::{
        rate_limit::{Decision, RateLimiter, RedisRateLimiter, contract, redis::redis_key},
        redis::RedisHandle,
    },
};

/// The Redis limiter with its errors turned into test failures (no silent fallback).
struct Strict(RedisRateLimiter);

#[async_trait::async_trait]
impl RateLimiter for Strict {
    async fn check(&self, namespace: &str, key: &str, limit: u32, window: Duration) -> Decision {
        self.0
            .try_check(namespace, key, limit, window)
            .await
            .expect("redis answers the rate-limit script")
    }

    fn backend(&self) -> &'static str {
        "redis (strict)"
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_limiter_passes_the_contract() {
    let redis = RedisServer::start().await;
    let handle = redis.connected_handle().await;
    // The script reads Redis's own `TIME`: real time passes for this limiter.
    contract::run_all(
        Arc::new(Strict(RedisRateLimiter::new(handle))),
        contract::Time::real(),
    )
    .await;
}

#[tokio::test]
async fn redis_keys_expire_with_their_window_and_the_script_reloads_after_a_flush() {
    let redis = RedisServer::start().await;
    let handle = redis.connected_handle().await;
    let limiter = RedisRateLimiter::new(handle.clone());
    let window = Duration::from_millis(1500);
    let d = limiter.try_check("ttl", "k", 5, window).await.unwrap();
    assert!(d.allowed && d.remaining == 4);
    let key = redis_key("ttl", "k");
    assert_eq!(key, "si:rl:ttl:k");
    let ttl: i64 = handle.client().pttl(&key).await.unwrap();
    assert!(0 < ttl && ttl <= 1500, "PEXPIRE = window, got {ttl}");
    // A server that forgot the script (restart, SCRIPT FLUSH) gets it again through EVAL.
    handle.client().script_flush(false).await.unwrap();
    let d = limiter.try_check("ttl", "k", 5, window).await.unwrap();
    assert!(d.allowed && d.remaining == 3);
    let members: i64 = handle.client().zcard(&key).await.unwrap();
    assert_eq!(members, 2);
}

fn header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

async fn post_event(app: &TestApp, key: &str, forwarded_for: Option<&str>) -> reqwest::Response {
    let mut request = app
        .http
        .post(app.url("/v1/events"))
        .bearer_auth(key)
        .header("origin", "https://site.example")
        .json(&json!({"eventName": "rl"}));
    if let Some(ip) = forwarded_for {
        request = request.header("x-forwarded-for", ip);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn over_the_ip_limit_ingestion_answers_429_json_with_retry_after_and_ratelimit_headers() {
    let app = TestApp::spawn(&[("RATE_LIMIT_INGEST_IP", "3/60s")]).await;
    let p = app.project().await;
    for remaining in ["2", "1", "0"] {
        let r = post_event(&app, &p.public_api_key, None).await;
        assert_eq!(r.status(), 201);
        assert_eq!(header(&r, "ratelimit-limit").as_deref(), Some("3"));
        assert_eq!(
            header(&r, "ratelimit-remaining").as_deref(),
            Some(remaining)
        );
        let reset: u64 = header(&r, "ratelimit-reset").unwrap().parse().unwrap();
        assert!(
            (58..=60).contains(&reset),
            "seconds until the oldest ages out"
        );
        assert_eq!(header(&r, "ratelimit-policy").as_deref(), Some("3;w=60"));
    }
    let r = post_event(&app, &p.public_api_key, None).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(header(&r, "ratelimit-limit").as_deref(), Some("3"));
    assert_eq!(header(&r, "ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(
        header(&r, "ratelimit-reset")
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        retry
    );
    assert_eq!(
        header(&r, "access-control-allow-origin").as_deref(),
        Some("https://site.example"),
        "browsers can read the 429"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "Rate limit exceeded", "retryAfter": retry})
    );

    // The per-IP limit comes before authentication and the size guard (SuperInsights 2.4.1)...
    let r = app
        .http
        .post(app.url("/v1/events"))
        .json(&json!({"eventName": "no key"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    // ...and after CORS: preflights are never limited.
    let r = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/v1/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        app.count(&p, superinsights::domain::model::Channel::Events)
            .await,
        3
    );
}

#[tokio::test]
async fn forwarded_for_does_not_change_the_key_unless_the_proxy_is_trusted() {
    let direct = TestApp::spawn(&[("RATE_LIMIT_INGEST_IP", "2/60s")]).await;
    let p = direct.project().await;
    let spoofed = ["198.51.100.1", "198.51.100.2", "198.51.100.3"];
    let statuses: Vec<u16> = futures::future::join_all(
        spoofed
            .iter()
            .map(|ip| post_event(&direct, &p.public_api_key, Some(ip))),
    )
    .await
    .iter()
    .map(|r| r.status().as_u16())
    .collect();
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, [201, 201, 429], "one budget for the socket peer");

    let proxied =
        TestApp::spawn(&[("RATE_LIMIT_INGEST_IP", "2/60s"), ("TRUST_PROXY", "true")]).await;
    let p = proxied.project().await;
    for ip in spoofed {
        assert_eq!(
            post_event(&proxied, &p.public_api_key, Some(ip))
                .await
                .status(),
            201
        );
    }
    assert_eq!(
        post_event(&proxied, &p.public_api_key, Some("198.51.100.1"))
            .await
            .status(),
        201
    );
    assert_eq!(
        post_event(&proxied, &p.public_api_key, Some("198.51.100.1"))
            .await
            .status(),
        429,
        "behind a trusted proxy each forwarded client has its own budget"
    );
}

#[tokio::test]
async fn the_project_limit_counts_authenticated_requests_per_project() {
    let app = TestApp::spawn(&[("RATE_LIMIT_INGEST_PROJECT", "2/60s")]).await;
    let (a, b) = (app.project().await, app.project().await);
    // Requests that fail authentication or the size guard never reach the project limiter.
    let r = post_event(&app, "pk_not_a_key", None).await;
    assert_eq!(r.status(), 401);
    let too_big = app
        .http
        .post(app.url("/v1/events"))
        .bearer_auth(&a.public_api_key)
        .header("content-type", "application/json")
        .body(vec![b' '; 70_000])
        .send()
        .await
        .unwrap();
    assert_eq!(too_big.status(), 413);

    for remaining in ["1", "0"] {
        let r = post_event(&app, &a.public_api_key, None).await;
        assert_eq!(r.status(), 201);
        assert_eq!(header(&r, "ratelimit-limit").as_deref(), Some("2"));
        assert_eq!(
            header(&r, "ratelimit-remaining").as_deref(),
            Some(remaining),
            "the tighter limiter (project) shows"
        );
    }
    let r = post_event(&app, &a.secret_api_key, None).await;
    assert_eq!(r.status(), 429, "both keys of a project share its budget");
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "Rate limit exceeded", "retryAfter": retry})
    );
    assert_eq!(
        post_event(&app, &b.public_api_key, None).await.status(),
        201
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_one_redis_accept_exactly_the_limit_together() {
    const LIMIT: usize = 50;
    const WINDOW: Duration = Duration::from_secs(20);
    const REQUESTS: usize = 200;
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let url = redis.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("RATE_LIMIT_REDIS", "true"),
        ("RATE_LIMIT_INGEST_PROJECT", "50/20s"),
    ];
    // Started at once and used from their very first request: startup waits for Redis
    // (REDIS_STARTUP_WAIT_MS), so no instance counts in memory first.
    let (a, b, c) = tokio::join!(
        ServerProcess::start(dir.path(), &env),
        ServerProcess::start(dir.path(), &env),
        ServerProcess::start(dir.path(), &env),
    );
    let servers = [a, b, c];

    let urls: Vec<String> = servers.iter().map(|s| s.url("/v1/events")).collect();
    let http = reqwest::Client::new();
    let started = Instant::now();
    let statuses: Vec<u16> = futures::future::join_all((0..REQUESTS).map(|i| {
        let request = http
            .post(&urls[i % urls.len()])
            .header("x-api-key", &key)
            .json(&json!({"eventName": "multi", "properties": {"i": i}}));
        async move { request.send().await.unwrap().status().as_u16() }
    }))
    .await;
    let elapsed = started.elapsed();
    assert!(
        elapsed < WINDOW,
        "all requests fell into one window (took {elapsed:?})"
    );
    let mut by_status = BTreeMap::new();
    for s in &statuses {
        *by_status.entry(*s).or_insert(0usize) += 1;
    }
    assert_eq!(
        by_status,
        BTreeMap::from([(201, LIMIT), (429, REQUESTS - LIMIT)]),
        "exactly the limit accepted across three instances"
    );
    // Every instance did its share of accepting and rejecting through the same sorted set.
    let handle = {
        let config = RedisConfig {
            url: Some(Secret::new(url.clone())),
            ..RedisConfig::default()
        };
        RedisHandle::start(&config).unwrap().unwrap()
    };
    eventually(
        Duration::from_secs(10),
        "test client connects",
        async || handle.ping().await.is_ok(),
    )
    .await;
    let members: i64 = handle
        .client()
        .zcard(redis_key("ingest-project", &project.to_hex()))
        .await
        .unwrap();
    assert_eq!(members as usize, LIMIT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_outage_keeps_limiting_in_memory_and_redis_is_used_again_when_back() {
    let mut redis = RedisServer::start().await;
    let url = redis.url();
    let app = TestApp::spawn(&[
        ("REDIS_URL", &url),
        ("RATE_LIMIT_REDIS", "true"),
        ("RATE_LIMIT_INGEST_IP", "off"),
        ("RATE_LIMIT_INGEST_PROJECT", "10/1s"),
    ])
    .await;
    let p = app.project().await;
    let handle = app.state.redis.clone().unwrap();
    let key = redis_key("ingest-project", &p.id.to_hex());
    let key_in_redis = async || handle.client().exists::<i64, _>(&key).await.unwrap_or(0) == 1;
    eventually(
        Duration::from_secs(10),
        "the app reaches redis",
        async || handle.ping().await.is_ok(),
    )
    .await;

    // Clients send continuously; every answer is tallied under the phase it arrived in.
    let phase = Arc::new(AtomicU8::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Mutex::new(BTreeMap::<(u8, u16), usize>::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| {
            let (phase, stop, tally) = (phase.clone(), stop.clone(), tally.clone());
            let (http, target, api_key) = (
                app.http.clone(),
                app.url("/v1/events"),
                p.public_api_key.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let r = http
                        .post(&target)
                        .bearer_auth(&api_key)
                        .json(&json!({"eventName": "flow"}))
                        .send()
                        .await
                        .expect("the server always answers");
                    let status = r.status().as_u16();
                    *tally
                        .lock()
                        .unwrap()
                        .entry((phase.load(Ordering::Relaxed), status))
                        .or_default() += 1;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        })
        .collect();
    let seen = |phase: u8, status: u16| {
        tally
            .lock()
            .unwrap()
            .get(&(phase, status))
            .copied()
            .unwrap_or(0)
    };

    // Phase 0: Redis up and used.
    eventually(
        Duration::from_secs(10),
        "limits recorded in redis",
        async || key_in_redis().await && seen(0, 201) > 0 && seen(0, 429) > 0,
    )
    .await;

    // Phase 1: Redis killed; limiting continues in memory.
    redis.kill();
    let outage_started = Instant::now();
    phase.store(1, Ordering::Relaxed);
    eventually(
        Duration::from_secs(15),
        "requests accepted and rejected while redis is down",
        async || seen(1, 201) >= 10 && seen(1, 429) >= 10,
    )
    .await;
    let outage = outage_started.elapsed();
    // In memory the budget is still 10 per rolling second (plus whatever Redis took just before
    // the kill was noticed).
    let accepted = seen(1, 201) as f64;
    assert!(
        accepted <= 10.0 * (outage.as_secs_f64() + 2.0),
        "limited during the outage: {accepted} accepted in {outage:?}"
    );

    // Phase 2: Redis back (empty); the limiter records there again.
    redis.restart().await;
    phase.store(2, Ordering::Relaxed);
    eventually(
        Duration::from_secs(20),
        "limits recorded in redis again",
        async || key_in_redis().await,
    )
    .await;
    eventually(
        Duration::from_secs(10),
        "limiting after recovery",
        async || seen(2, 201) > 0 && seen(2, 429) > 0,
    )
    .await;

    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.await.unwrap();
    }
    let tally = tally.lock().unwrap().clone();
    assert!(
        tally
            .keys()
            .all(|(_, status)| *status == 201 || *status == 429),
        "never anything but 201 or 429: {tally:?}"
    );
}

#[tokio::test]
async fn login_attempts_over_the_limit_get_the_html_page_and_leave_other_limiters_alone() {
    let app = TestApp::spawn(&[
        ("RATE_LIMIT_AUTH_IP", "2/60s"),
        ("RATE_LIMIT_INGEST_IP", "2/60s"),
    ])
    .await;
    let p = app.project().await;
    let attempt = async |path: &str| {
        app.http
            .post(app.url(path))
            .header("accept", "text/html")
            .form(&[("email", "someone@test.example"), ("password", "wrong")])
            .send()
            .await
            .unwrap()
    };
    for _ in 0..2 {
        assert_ne!(attempt("/auth/login").await.status(), 429);
    }
    let r = attempt("/auth/login").await;
    assert_eq!(r.status(), 429);
    assert!(header(&r, "content-type").unwrap().starts_with("text/html"));
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(header(&r, "ratelimit-limit").as_deref(), Some("2"));
    assert_eq!(header(&r, "ratelimit-remaining").as_deref(), Some("0"));
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Too many requests. Please try again later.")
    );
    assert_eq!(
        attempt("/auth/register").await.status(),
        429,
        "login and registration share one budget"
    );
    let form = app.http.get(app.url("/auth/login")).send().await.unwrap();
    assert_eq!(form.status(), 200, "the forms themselves are not limited");
    // Unlike SuperInsights 1.x's shared map, other limiters keep their own budgets.
    assert_eq!(
        post_event(&app, &p.public_api_key, None).await.status(),
        201
    );
}
