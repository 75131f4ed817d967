//! Redis is optional and never fatal: the server starts without it, reports it in /readyz,
//! reconnects when it returns, and ingestion keeps working throughout.

use crate::support::{RedisServer, TestApp, eventually, free_port};
use serde_json::{Value, json};
use std::time::Duration;

async fn redis_connected(app: &TestApp) -> bool {
    let v: Value = app
        .http
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["redis"]["connected"].as_bool().unwrap_or(false)
}

#[tokio::test]
async fn redis_down_at_start_then_up_then_killed_then_back() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let app = TestApp::spawn(&[
        ("REDIS_URL", &url),
        ("CACHE_REDIS", "true"),
        ("REDIS_STARTUP_WAIT_MS", "300"),
    ])
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "startup waits for redis only REDIS_STARTUP_WAIT_MS, then starts degraded"
    );
    let p = app.project().await;
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a missing redis does not make the server unready"
    );
    assert!(!redis_connected(&app).await);
    assert_eq!(
        app.ingest(
            "events",
            &p.public_api_key,
            &json!({"eventName": "no-redis"})
        )
        .await
        .status(),
        201
    );

    let mut redis = RedisServer::start_on(port).await;
    eventually(
        Duration::from_secs(15),
        "fred connects once redis is up",
        async || redis_connected(&app).await,
    )
    .await;

    redis.kill();
    eventually(
        Duration::from_secs(10),
        "readyz notices the outage",
        async || !redis_connected(&app).await,
    )
    .await;
    assert_eq!(
        app.ingest(
            "events",
            &p.public_api_key,
            &json!({"eventName": "redis-down"})
        )
        .await
        .status(),
        201
    );

    redis.restart().await;
    eventually(
        Duration::from_secs(15),
        "reconnects without a restart",
        async || redis_connected(&app).await,
    )
    .await;
    app.stop().await;
}
