//! Visits from the SDK's `sessionId` on the dashboard, over real HTTP: the visit KPIs beside the
//! previous period, entry and exit pages as tables whose rows filter the dashboard (JSON, a
//! public link, and a click in headless Chromium: `tests/browser/visits.test.mjs`).

use crate::support::{
    TestApp, browser_suite_available, get_accepting, member_with_project, run_browser_script,
};
use serde_json::{Value, json};

/// Three visits and a page view without a session, all in the last half hour:
/// `a` enters on /landing, reads /pricing and leaves on /signup five minutes later; `b` sees
/// /landing only (a bounce); `c` enters on /blog and leaves on /pricing a minute later.
async fn seed_visits(app: &TestApp, key: &str) {
    let iso = superinsights::domain::timestamp::to_iso;
    let now = superinsights::domain::timestamp::now_ms();
    let min = 60_000;
    let view = |url: &str, session: Option<&str>, ago: i64| {
        json!({"url": url, "sessionId": session, "clientId": session.unwrap_or("x"),
               "timestamp": iso(now - ago * min)})
    };
    let views = json!([
        view("/landing", Some("a"), 10),
        view("/pricing", Some("a"), 8),
        view("/signup", Some("a"), 5),
        view("/landing", Some("b"), 3),
        view("/blog", Some("c"), 20),
        view("/pricing", Some("c"), 19),
        view("/pricing", None, 2),
    ]);
    let r = app.ingest("pageviews", key, &views).await;
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

fn rows(v: &Value) -> Vec<(String, u64)> {
    v.as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|r| {
            (
                r["value"].as_str().unwrap().to_string(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[tokio::test]
async fn dashboard_json_counts_visits_and_filters_by_entry_and_exit_page() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, key) = member_with_project(&app, "visits@example.com").await;
    seed_visits(&app, &key).await;
    let data = async |query: &str| -> Value {
        let r = get_accepting(
            &client,
            &app,
            &format!("/projects/{id}/dashboard/data?timeframe=24h{query}"),
            "application/json",
        )
        .await;
        assert_eq!(r.status(), 200, "{query}");
        r.json::<Value>().await.unwrap()["data"].clone()
    };

    let d = data("").await;
    let v = &d["visits"];
    assert_eq!(v["visits"], 3);
    assert_eq!(v["bounces"], 1);
    assert_eq!(v["bounceRate"].as_f64().unwrap(), 100.0 / 3.0);
    assert_eq!(v["viewsPerVisit"], 2.0);
    assert_eq!(v["avgDurationMs"], 120_000.0, "(5 min + 0 + 1 min) / 3");
    assert_eq!(v["viewsWithoutSession"], 1);
    assert_eq!(d["pageViews"]["totalViews"], 7);
    assert_eq!(
        rows(&d["breakdowns"]["entryPage"]),
        [("/landing".into(), 2), ("/blog".into(), 1)]
    );
    assert_eq!(
        rows(&d["breakdowns"]["exitPage"]),
        [
            ("/landing".into(), 1),
            ("/pricing".into(), 1),
            ("/signup".into(), 1)
        ]
    );
    assert_eq!(d["previous"]["visits"], 0);
    assert_eq!(d["previous"]["bounceRate"], Value::Null);

    // Entry page /landing: the page views of visits a and b.
    let d = data("&entryPage=%2Flanding").await;
    assert_eq!(d["pageViews"]["totalViews"], 4);
    assert_eq!(d["visits"]["visits"], 2);
    assert_eq!(d["visits"]["bounceRate"], 50.0);
    assert_eq!(d["filters"]["pageviews"]["entryPage"], "/landing");
    assert_eq!(
        rows(&d["breakdowns"]["entryPage"]),
        [("/landing".into(), 2)]
    );
    // With a page-view filter too: only a's /pricing view (c entered elsewhere).
    let d = data("&entryPage=%2Flanding&urlPrefix=%2Fpricing").await;
    assert_eq!(d["pageViews"]["totalViews"], 1);
    // Exit page /pricing: visit c only (the view without a session is in no visit).
    let d = data("&exitPage=%2Fpricing").await;
    assert_eq!(d["pageViews"]["totalViews"], 2);
    assert_eq!(rows(&d["breakdowns"]["entryPage"]), [("/blog".into(), 1)]);

    // The entry pages download as CSV, shares of visits.
    let r = client
        .get(app.url(&format!(
            "/projects/{id}/dashboard/data?timeframe=24h&format=csv&table=entryPage"
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let csv = r.text().await.unwrap();
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            "Entry page,Count,Percent",
            "/landing,2,66.7%",
            "/blog,1,33.3%"
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn clicking_an_entry_page_filters_the_dashboard_in_chromium() {
    if !browser_suite_available("the browser visits test") {
        return;
    }
    let app = TestApp::spawn(&[]).await;
    let (_, id, key) = member_with_project(&app, "visits-ui@example.com").await;
    seed_visits(&app, &key).await;
    let project = superinsights::domain::ids::DocId::parse(&id).unwrap();
    let link = app.enable_public_link(project).await;
    let public_base = format!("/p/{id}/{}", link.token);
    run_browser_script(
        &app,
        "visits.test.mjs",
        &[
            ("SI_EMAIL", "visits-ui@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_PUBLIC_BASE", &public_base),
        ],
    )
    .await;
    app.stop().await;
}
