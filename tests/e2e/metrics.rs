//! `GET /metrics`: who may read it, that a real Prometheus text parser reads it, that labels
//! stay bounded under a scan of random URLs, and that fallback counters rise when Redis dies.

use crate::support::{RedisServer, TestApp, eventually, member_with_project};
use prometheus_parse::{Scrape, Value};
use serde_json::json;
use std::time::Duration;

async fn scrape(app: &TestApp) -> Scrape {
    let r = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"),
    );
    let text = r.text().await.unwrap();
    if std::env::var("SI_DEBUG_METRICS").is_ok() {
        eprintln!("{text}");
    }
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text format")
}

/// The sum of a counter's samples whose labels include every `(name, value)` of `labels`.
fn total(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == metric)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn metrics_answer_loopback_clients_and_the_token_only() {
    let app = TestApp::spawn(&[("METRICS_TOKEN", "a-metrics-token-of-some-length")]).await;
    let p = app.project().await;
    assert_eq!(
        app.ingest("events", &p.public_api_key, &json!({"eventName": "m"}))
            .await
            .status(),
        201
    );
    let s = scrape(&app).await;
    assert!(
        total(&s, "si_http_requests_total", &[("status", "201")]) >= 1.0,
        "requests are counted by status: {:?}",
        s.samples
            .iter()
            .filter(|x| x.metric.starts_with("si_http"))
            .take(5)
            .collect::<Vec<_>>()
    );
    assert!(
        total(&s, "si_http_requests_total", &[("route", "/v1/*path")]) >= 1.0,
        "by route template"
    );
    assert!(total(&s, "si_ingest_items_total", &[("outcome", "stored")]) >= 1.0);
    assert!(
        s.samples
            .iter()
            .any(|x| x.metric == "si_http_request_duration_seconds_count"),
        "latency histograms"
    );
    assert!(s.samples.iter().any(|x| x.metric == "si_uptime_seconds"));

    // Through a proxy on the same host, loopback alone is not enough.
    let proxied = app
        .http
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.9")
        .send()
        .await
        .unwrap();
    assert_eq!(proxied.status(), 401);
    let body = proxied.text().await.unwrap();
    assert!(!body.contains("si_"), "no series without the token: {body}");
    let wrong = app
        .http
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.9")
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let right = app
        .http
        .get(app.url("/metrics"))
        .header("x-forwarded-for", "203.0.113.9")
        .bearer_auth("a-metrics-token-of-some-length")
        .send()
        .await
        .unwrap();
    assert_eq!(right.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_scan_of_random_urls_does_not_grow_the_series() {
    let app = TestApp::spawn(&[]).await;
    for i in 0..50 {
        let _ = app
            .http
            .get(app.url(&format!("/scan-{i}/{}", i * 7919)))
            .send()
            .await
            .unwrap();
    }
    let s = scrape(&app).await;
    assert!(
        !s.samples
            .iter()
            .any(|x| x.labels.values().any(|v| v.contains("scan-"))),
        "no raw path became a label"
    );
    assert!(total(&s, "si_http_requests_total", &[("route", "unmatched")]) >= 50.0);
    app.stop().await;
}

#[tokio::test]
async fn a_redis_outage_shows_in_the_fallback_counters_then_redis_is_used_again() {
    let mut redis = RedisServer::start().await;
    let app = TestApp::spawn_on_redis(&redis).await;
    let (client, id, key) = member_with_project(&app, "metrics@test.example").await;
    let dashboard = app.url(&format!("/projects/{id}/dashboard"));
    let before = scrape(&app).await;
    let fallbacks = |s: &Scrape, piece: &str| total(s, "si_fallbacks_total", &[("piece", piece)]);
    assert_eq!(total(&before, "si_redis_connected", &[]), 1.0);

    redis.kill();
    for _ in 0..5 {
        assert_eq!(client.get(&dashboard).send().await.unwrap().status(), 200);
        assert_eq!(
            app.ingest("events", &key, &json!({"eventName": "down"}))
                .await
                .status(),
            201
        );
    }
    let during = scrape(&app).await;
    assert_eq!(total(&during, "si_redis_connected", &[]), 0.0);
    // The first account is the platform admin: the system page shows the outage.
    let system = crate::support::html_of(&client, &app, "/admin/system", "text/html").await;
    assert!(
        system.contains("every piece on its fallback") || system.contains("breaker open"),
        "the system page shows redis down: {system}"
    );
    assert!(
        system.contains("id=\"fallbacks\""),
        "recent fallbacks listed"
    );
    for piece in ["rate_limits", "sessions", "cache"] {
        assert!(
            fallbacks(&during, piece) > fallbacks(&before, piece),
            "{piece} fell back while redis was down"
        );
    }

    redis.restart().await;
    eventually(
        Duration::from_secs(15),
        "redis connected again",
        async || total(&scrape(&app).await, "si_redis_connected", &[]) == 1.0,
    )
    .await;
    let after = scrape(&app).await;
    assert!(total(&after, "si_redis_reconnects_total", &[]) >= 1.0);
    let system = crate::support::html_of(&client, &app, "/admin/system", "text/html").await;
    assert!(system.contains(">connected<"), "and up again: {system}");
    app.stop().await;
}
