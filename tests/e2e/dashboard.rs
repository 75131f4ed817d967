//! The dashboard JSON (SuperInsights 1.x `/projects/:id/dashboard/data`) over real HTTP.

use crate::support::{TestApp, browser, csrf_of, page, post_form};
use serde_json::{Value, json};

#[tokio::test]
async fn dashboard_data_has_the_superinsights_shape_and_figures() {
    let app = TestApp::spawn(&[]).await;
    let client = browser();
    let (_, html) = page(&client, &app, "/auth/register").await;
    let r = post_form(
        &client,
        &app,
        "/auth/register",
        &csrf_of(&html),
        &[("email", "dash@example.com"), ("password", "password-123")],
    )
    .await;
    let settings = r.headers()["location"].to_str().unwrap().to_string();
    let id = settings.split('/').nth(2).unwrap().to_string();
    let pid = superinsights::domain::ids::DocId::parse(&id).unwrap();
    let key = app
        .state
        .stores
        .projects
        .project(pid)
        .await
        .unwrap()
        .unwrap()
        .public_api_key;

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

    let r = client
        .get(app.url(&format!("/projects/{id}/dashboard/data?timeframe=24h")))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
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

    // Unknown timeframes fall back to 7d; strangers get 403; signed-out JSON clients 401.
    let r = client
        .get(app.url(&format!("/projects/{id}/dashboard/data?timeframe=2w")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["data"]["timeframe"], "7d");
    let stranger = browser();
    let (_, html) = page(&stranger, &app, "/auth/register").await;
    post_form(
        &stranger,
        &app,
        "/auth/register",
        &csrf_of(&html),
        &[("email", "other@example.com"), ("password", "password-123")],
    )
    .await;
    let r = stranger
        .get(app.url(&format!("/projects/{id}/dashboard/data")))
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
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
