//! The dashboard JSON (SuperInsights 1.x `/projects/:id/dashboard/data`) over real HTTP.

use crate::support::{TestApp, get_accepting, member_with_project, register, submit};
use serde_json::{Value, json};

#[tokio::test]
async fn dashboard_data_has_the_superinsights_shape_and_figures() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, key) = member_with_project(&app, "dash@example.com").await;

    let views =
        json!([{"url": "/a", "clientId": "c1"}, {"url": "/a", "clientId": "c2"}, {"url": "/b"}]);
    assert_eq!(app.ingest("pageviews", &key, &views).await.status(), 201);
    assert_eq!(
        app.ingest(
            "events",
            &key,
            &json!([{"eventName": "signup"}, {"eventName": "signup"}, {"eventName": "buy"}])
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        app.ingest(
            "errors",
            &key,
            &json!([{"message": "boom"}, {"message": "boom"}])
        )
        .await
        .status(),
        201
    );
    assert_eq!(
        app.ingest(
            "performance",
            &key,
            &json!([{"lcp": 1000, "cls": 0.01, "fid": 10, "ttfb": 100}, {"lcp": 3000}])
        )
        .await
        .status(),
        201
    );

    let r = get_accepting(
        &client,
        &app,
        &format!("/projects/{id}/dashboard/data?timeframe=24h"),
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["success"], true);
    let d = &body["data"];
    assert_eq!(d["timeframe"], "24h");
    assert_eq!(d["pageViews"]["totalViews"], 3);
    assert_eq!(
        d["pageViews"]["uniqueVisitors"], 3,
        "c1, c2 and the view without a clientId"
    );
    assert_eq!(
        d["pageViews"]["topPages"],
        json!([{"url": "/a", "views": 2}, {"url": "/b", "views": 1}])
    );
    assert_eq!(d["pageViews"]["viewsByDay"].as_array().unwrap().len(), 1);
    assert_eq!(d["events"]["totalEvents"], 3);
    assert_eq!(
        d["events"]["topEvents"][0],
        json!({"eventName": "signup", "count": 2})
    );
    assert_eq!(
        (
            d["errors"]["totalErrors"].as_u64(),
            d["errors"]["uniqueFingerprints"].as_u64()
        ),
        (Some(2), Some(1))
    );
    let perf = &d["performance"];
    assert_eq!(perf["totalMeasurements"], 2);
    assert_eq!(perf["percentiles"]["lcp_p50"], 1000.0);
    assert_eq!(
        perf["percentiles"]["lcp_p95"], 1000.0,
        "lower nearest rank of two values"
    );
    assert_eq!(perf["percentiles"]["inp_p75"], Value::Null);
    assert_eq!(perf["performanceScore"]["basis"], "p75");
    assert_eq!(
        perf["performanceScore"]["score"], 100,
        "p75 of every metric is good"
    );

    // Unknown timeframes are a 400 naming the parameter; strangers get 403; signed-out JSON
    // clients 401.
    let r = client
        .get(app.url(&format!("/projects/{id}/dashboard/data?timeframe=2w")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.json::<Value>().await.unwrap()["parameter"], "timeframe");
    let (stranger, _) = register(&app, "other@example.com").await;
    let r = get_accepting(
        &stranger,
        &app,
        &format!("/projects/{id}/dashboard/data"),
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = reqwest::Client::new()
        .get(app.url(&format!("/projects/{id}/dashboard/data")))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    app.stop().await;
}

/// With `CACHE_REDIS=true` the dashboard is cached in Redis with keys that hit; a Redis outage
/// only means computing uncached; clearing data invalidates at once.
#[tokio::test]
async fn dashboard_cache_on_redis_hits_survives_an_outage_and_invalidates() {
    use crate::support::{RedisServer, eventually};
    use std::time::Duration;
    let mut redis = RedisServer::start().await;
    let app = TestApp::spawn(&[("REDIS_URL", &redis.url()), ("CACHE_REDIS", "true")]).await;
    let counters = async || {
        let v = app.readiness().await;
        (
            v["redis"]["connected"].as_bool() == Some(true),
            v["dashboardCache"]["hits"].as_u64().unwrap(),
            v["dashboardCache"]["misses"].as_u64().unwrap(),
            v["dashboardCache"]["backend"].clone(),
        )
    };
    eventually(Duration::from_secs(10), "redis connected", async || {
        counters().await.0
    })
    .await;
    assert_eq!(counters().await.3, "redis");
    let (client, id, key) = member_with_project(&app, "cache@example.com").await;
    app.ingest("pageviews", &key, &json!([{"url": "/a"}, {"url": "/b"}]))
        .await;
    let total = async || {
        let v: Value = get_accepting(
            &client,
            &app,
            &format!("/projects/{id}/dashboard/data?timeframe=7d"),
            "application/json",
        )
        .await
        .json()
        .await
        .unwrap();
        v["data"]["pageViews"]["totalViews"].as_u64().unwrap()
    };
    assert_eq!(total().await, 2);
    app.ingest("pageviews", &key, &json!({"url": "/c"})).await;
    assert_eq!(
        total().await,
        2,
        "the second view within the bucket comes from the cache"
    );
    let (_, hits, misses, _) = counters().await;
    assert_eq!((hits, misses), (1, 1));
    let out = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port.to_string(),
            "--scan",
            "--pattern",
            "si:v1:dashboard:*",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "one time-bucketed key"
    );

    redis.kill();
    assert_eq!(
        total().await,
        3,
        "redis down: computed uncached, never an error"
    );
    redis.restart().await;
    eventually(Duration::from_secs(15), "redis reconnected", async || {
        counters().await.0
    })
    .await;
    assert_eq!(total().await, 3);

    // Clearing the project's data bumps its generation: the next view is fresh.
    let r = submit(
        &client,
        &app,
        &format!("/projects/{id}/settings"),
        &format!("/projects/{id}/clear-data"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(total().await, 0, "invalidated at once");
    app.stop().await;
}

/// A view that takes longer than the request's wait (`VIEW_WAIT_MS=0`: every view not yet
/// cached does) answers 503 with `Retry-After` while its computation goes on: JSON clients get
/// the JSON 503, a browser a page saying the figures are still being computed that reloads
/// itself after `Retry-After`. A retry a little later is served (200) from that computation,
/// not from one of its own.
#[tokio::test]
async fn a_cold_view_answers_503_with_retry_after_then_serves_its_computation() {
    use crate::support::{BROWSER_ACCEPT, eventually};
    use std::time::Duration;
    // A day's bucket (`REDIS_TTL`), so the retries ask for the first request's cache key.
    let app = TestApp::spawn(&[("VIEW_WAIT_MS", "0"), ("REDIS_TTL", "86400")]).await;
    let (client, id, key) = member_with_project(&app, "cold@example.com").await;
    let views = json!([{"url": "/a", "clientId": "c1"}, {"url": "/b", "clientId": "c2"}]);
    assert_eq!(app.ingest("pageviews", &key, &views).await.status(), 201);
    let computations = async || {
        app.readiness().await["dashboardCache"]["misses"]
            .as_u64()
            .unwrap()
    };
    let before = computations().await;
    // Two cold views (7 and 30 days), so neither request can find the other's result.
    let data = format!("/projects/{id}/dashboard/data?timeframe=7d");
    let page = format!("/projects/{id}/dashboard?timeframe=30d");
    let content_type =
        |r: &reqwest::Response| r.headers()["content-type"].to_str().unwrap().to_string();

    let r = get_accepting(&client, &app, &data, "application/json").await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(content_type(&r).starts_with("application/json"));
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Service temporarily unavailable", "retryAfter": 5})
    );

    let r = get_accepting(&client, &app, &page, BROWSER_ACCEPT).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    assert!(content_type(&r).starts_with("text/html"));
    let html = r.text().await.unwrap();
    for needle in [
        "<title>Still computing — SuperInsights</title>",
        r#"id="still-computing" data-reload-after="5""#,
        r#"role="status""#,
        r#"<p id="reload-stop-row" hidden><button type="button" id="reload-stop">Stop reloading</button></p>"#,
        "These figures are still being computed.",
        "This page reloads itself in 5 seconds.",
        &format!(r#"<a href="{page}">Reload now</a>"#),
    ] {
        assert!(html.contains(needle), "{needle:?} in the page:\n{html}");
    }

    // The retries (sooner than Retry-After, to keep the test short) are 503 until the
    // computations land, then 200 from them.
    for (path, accept) in [(&data, "application/json"), (&page, BROWSER_ACCEPT)] {
        eventually(
            Duration::from_secs(60),
            "the view is computed",
            async || {
                let status = get_accepting(&client, &app, path, accept).await.status();
                assert!(status == 200 || status == 503, "{path}: {status}");
                status == 200
            },
        )
        .await;
    }
    let r = get_accepting(&client, &app, &data, "application/json").await;
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["pageViews"]["totalViews"], 2, "{body}");
    let r = get_accepting(&client, &app, &page, BROWSER_ACCEPT).await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("Top pages") && !html.contains("Still computing"));
    assert_eq!(
        computations().await - before,
        2,
        "one computation per view: every retry was served from the first request's"
    );
    app.stop().await;
}
