//! The dashboard's click-to-filter in a real browser: `tests/browser/dashboard_filters.test.mjs`
//! clicks table rows, removes chips, goes back, types lowercase values with suggestions and a
//! path prefix, expands a table and downloads it as CSV, against the real server over seeded
//! page views (countries from a trusted CDN header), for a member and through a public link; and
//! a cold dashboard's "Still computing" page (`tests/browser/still_computing.test.mjs`).

use crate::support::{TestApp, browser_suite_available, member_with_project, run_browser_script};
use serde_json::json;

/// Ingests `views` page views with the CDN country header `country`.
async fn views_from(app: &TestApp, key: &str, country: &str, views: serde_json::Value) {
    let r = reqwest::Client::new()
        .post(app.url("/v1/pageviews"))
        .bearer_auth(key)
        .header("cf-ipcountry", country)
        .json(&views)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
}

#[tokio::test]
async fn clicking_rows_filters_the_dashboard_and_its_links_in_chromium() {
    if !browser_suite_available("the browser dashboard filter test") {
        return;
    }
    let app = TestApp::spawn(&[("TRUST_PROXY", "true")]).await;
    let (_, id, key) = member_with_project(&app, "filters@example.com").await;
    let iso = superinsights::domain::timestamp::to_iso;
    let now = superinsights::domain::timestamp::now_ms();
    // Germany: six blog posts read with Firefox from a news site; France: the pricing page
    // four times with Chrome, no referrer.
    let de: Vec<_> = (1..=6)
        .map(|i| {
            json!({"url": format!("https://shop.example/blog/{i}"), "browser": "Firefox",
            "referrer": "https://www.news.example/story", "clientId": format!("de{i}"),
            "timestamp": iso(now - i * 60_000)})
        })
        .collect();
    let fr: Vec<_> = (1..=4)
        .map(|i| {
            json!({"url": "https://shop.example/pricing", "browser": "Chrome",
            "clientId": format!("fr{i}"), "timestamp": iso(now - i * 60_000)})
        })
        .collect();
    views_from(&app, &key, "DE", json!(de)).await;
    views_from(&app, &key, "FR", json!(fr)).await;
    let events = json!([{"eventName": "signup"}, {"eventName": "signup"}, {"eventName": "checkout"},
            {"eventName": "=HYPERLINK(\"http://evil.example\",\"x\")"}]);
    assert_eq!(app.ingest("events", &key, &events).await.status(), 201);

    let project = superinsights::domain::ids::DocId::parse(&id).unwrap();
    // A second project of the organization, for the project switcher.
    let stores = &app.state.stores;
    let org = app.stored_project(project).await.org_id;
    let sibling = stores
        .projects
        .create_project(superinsights::store::NewProject::named("Second Shop", org))
        .await
        .unwrap();
    let link = app.enable_public_link(project).await;
    let public_base = format!("/p/{id}/{}", link.token);
    let screenshot = std::env::var("SI_DASHBOARD_SCREENSHOT").unwrap_or_default();
    run_browser_script(
        &app,
        "dashboard_filters.test.mjs",
        &[
            ("SI_EMAIL", "filters@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_PUBLIC_BASE", &public_base),
            ("SI_SIBLING", &sibling.id.to_hex()),
            ("SI_SCREENSHOT", &screenshot),
        ],
    )
    .await;

    // The JSON route answers the same filters, and refuses what it cannot use with a 400.
    let client = reqwest::Client::new();
    let data = |query: &str| {
        client
            .get(app.url(&format!("{public_base}/dashboard/data{query}")))
            .header("accept", "application/json")
            .send()
    };
    let body: serde_json::Value = data("?timeframe=24h&country=de&browser=FIREFOX")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["pageViews"]["totalViews"], 6);
    assert_eq!(body["data"]["pageViews"]["uniqueVisitors"], 6);
    assert_eq!(
        body["data"]["events"]["totalEvents"], 4,
        "events carry no country"
    );
    assert_eq!(body["data"]["filters"]["pageviews"]["country"], "de");
    for bad in ["?nope=1", "?timeframe=2w", "?format=xls", "?table=secrets"] {
        let r = data(bad).await.unwrap();
        assert_eq!(r.status(), 400, "{bad}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert!(
            body["error"].as_str().unwrap().contains("query parameter"),
            "{body}"
        );
    }

    // Every drill-down's main table downloads as CSV with the page's filters; a cell that a
    // spreadsheet would run as a formula is quoted.
    let csv = async |path: &str| {
        let r = client
            .get(app.url(&format!("{public_base}{path}")))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        r.text().await.unwrap()
    };
    let pages = csv("/pageviews?timeframe=24h&country=de&format=csv").await;
    assert_eq!(pages.lines().next(), Some("Page,Views,Unique visitors"));
    assert_eq!(pages.lines().count(), 7, "{pages}");
    let events = csv("/events?timeframe=24h&format=csv").await;
    assert!(
        events.contains("\r\n\"'=HYPERLINK(\"\"http://evil.example\"\",\"\"x\"\")\",1,"),
        "{events}"
    );
    assert!(
        csv("/errors?format=csv")
            .await
            .starts_with("Message,Count,")
    );
    let vitals = csv("/performance?format=csv").await;
    assert!(
        vitals.starts_with("Metric,p50,p75,p95,Status (p75)\r\nLCP,"),
        "{vitals}"
    );
    app.stop().await;
}

/// A cold dashboard in Chromium (`tests/browser/still_computing.test.mjs`): with
/// `VIEW_WAIT_MS=0` its first request answers the "Still computing" page (light and dark, no
/// axe violations), which reloads itself after `Retry-After` into the computed dashboard.
#[tokio::test]
async fn a_cold_dashboard_page_says_still_computing_and_reloads_itself_in_chromium() {
    if !browser_suite_available("the browser still-computing test") {
        return;
    }
    // A day's bucket (`REDIS_TTL`), so the reload asks for the first request's cache key.
    let app = TestApp::spawn(&[("VIEW_WAIT_MS", "0"), ("REDIS_TTL", "86400")]).await;
    let (_, id, key) = member_with_project(&app, "cold-page@example.com").await;
    let views = json!([{"url": "/a", "clientId": "c1"}, {"url": "/b", "clientId": "c2"}]);
    assert_eq!(app.ingest("pageviews", &key, &views).await.status(), 201);
    let shots = std::env::var("SI_STILL_COMPUTING_SHOTS").unwrap_or_default();
    run_browser_script(
        &app,
        "still_computing.test.mjs",
        &[
            ("SI_EMAIL", "cold-page@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_SHOTS", &shots),
        ],
    )
    .await;
    app.stop().await;
}
