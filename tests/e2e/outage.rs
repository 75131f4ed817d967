//! What happens to accepted data when the store goes away: it is spooled to disk (202), and
//! replayed exactly once when the store is back. Nothing accepted is lost.

use crate::support::{TestApp, eventually};
use serde_json::{Value, json};
use std::time::Duration;
use superinsights::domain::model::Channel;

#[tokio::test]
async fn store_outage_spools_to_disk_and_drains_exactly_once_on_recovery() {
    let app = TestApp::spawn(&[("SQLITE_BUSY_TIMEOUT_MS", "150")]).await;
    let p = app.project().await;
    assert_eq!(
        app.ingest("events", &p.public_api_key, &json!({"eventName": "before"}))
            .await
            .status(),
        201
    );

    let lock = app.lock_database().await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let (http, url, key) = (
            app.http.clone(),
            app.url("/v1/events"),
            p.public_api_key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let items: Vec<Value> = (0..5)
                .map(|j| json!({"eventName": format!("during-{i}-{j}")}))
                .collect();
            let r = http
                .post(url)
                .bearer_auth(key)
                .json(&json!({"items": items}))
                .send()
                .await
                .unwrap();
            let retry_after = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string());
            (
                r.status().as_u16(),
                retry_after,
                r.json::<Value>().await.unwrap(),
            )
        }));
    }
    for t in tasks {
        let (status, retry_after, body) = t.await.unwrap();
        assert_eq!(status, 202, "{body}");
        assert_eq!(retry_after.as_deref(), Some("5"));
        assert_eq!(body["success"], true);
        assert_eq!(body["spooled"], 5);
    }
    let spool = app.state.spool.clone();
    assert!(spool.has_pending());
    let lines = std::fs::read_to_string(spool.path())
        .unwrap()
        .lines()
        .count();
    assert!(lines >= 1, "one line per spooled batch");

    lock.release().await;
    // The next successful commit wakes the drainer.
    assert_eq!(
        app.ingest("events", &p.public_api_key, &json!({"eventName": "after"}))
            .await
            .status(),
        201
    );
    eventually(
        Duration::from_secs(15),
        "spool drained into the store",
        async || app.count(&p, Channel::Events).await == 102 && !spool.has_pending(),
    )
    .await;
    // A second drain pass, run here, finds nothing to replay: nothing duplicated.
    let again = spool.drain(&*app.state.stores.events).await.unwrap();
    assert_eq!(
        (again.drained, again.requeued, again.dead),
        (0, 0, 0),
        "nothing left to replay"
    );
    // A marker through the one writer: once it is stored, anything queued before it is too, so
    // a late duplicate would be counted here.
    assert_eq!(
        app.ingest("events", &p.public_api_key, &json!({"eventName": "marker"}))
            .await
            .status(),
        201
    );
    eventually(
        Duration::from_secs(15),
        "the marker is stored",
        async || {
            app.state
                .stores
                .stats
                .recent(p.id, Channel::Events, 200)
                .await
                .unwrap()
                .iter()
                .any(|e| e["eventName"] == "marker")
        },
    )
    .await;
    assert_eq!(
        app.count(&p, Channel::Events).await,
        103,
        "102 and the marker"
    );
    let names: Vec<String> = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Events, 200)
        .await
        .unwrap()
        .iter()
        .map(|e| e["eventName"].as_str().unwrap().to_string())
        .collect();
    for i in 0..20 {
        for j in 0..5 {
            assert!(
                names.contains(&format!("during-{i}-{j}")),
                "during-{i}-{j} arrived"
            );
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn when_store_and_spool_both_fail_the_request_is_refused_not_acknowledged() {
    let (_dir, app) = TestApp::spawn_without_spool().await;
    let p = app.project().await;
    let lock = app.lock_database().await;
    let r = app
        .ingest("pageviews", &p.public_api_key, &json!({"url": "/x"}))
        .await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "5");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Service temporarily unavailable");
    lock.release().await;
    assert_eq!(
        app.ingest("pageviews", &p.public_api_key, &json!({"url": "/y"}))
            .await
            .status(),
        201
    );
    assert_eq!(
        app.count(&p, Channel::Pageviews).await,
        1,
        "only the acknowledged view is stored"
    );
    app.stop().await;
}
