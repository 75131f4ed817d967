//! Time charts, formatting, dark mode, phone widths and the accessibility scan in a real
//! browser: `tests/browser/charts.test.mjs`, against the real server over a week of seeded page
//! views (a German desktop Chrome, from a trusted CDN header), events, errors and web vitals,
//! for a member and through a public link. Screenshots of the dashboard and the drill-downs at
//! 1280 and 390 px (light and dark) land in `{CARGO_TARGET_TMPDIR}/screenshots/charts`.

use crate::support::{
    TestApp, browser_suite_available, get_accepting, member_with_project, run_browser_script,
};
use serde_json::{Value, json};

const DESKTOP_CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
    (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

/// Ingests `items` on `channel` from a German desktop Chrome, 50 at a time.
async fn ingest_from_germany(app: &TestApp, key: &str, channel: &str, items: Vec<Value>) {
    let client = reqwest::Client::new();
    for chunk in items.chunks(50) {
        let r = client
            .post(app.url(&format!("/v1/{channel}")))
            .bearer_auth(key)
            .header("cf-ipcountry", "DE")
            .header("user-agent", DESKTOP_CHROME)
            .json(&chunk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}

#[tokio::test]
async fn charts_formatting_dark_mode_and_phone_widths_in_chromium() {
    if !browser_suite_available("the browser charts test") {
        return;
    }
    let app = TestApp::spawn(&[("TRUST_PROXY", "true")]).await;
    let (client, id, key) = member_with_project(&app, "charts@example.com").await;
    let iso = superinsights::domain::timestamp::to_iso;
    let now = superinsights::domain::timestamp::now_ms();
    let (minute, day) = (60_000, 86_400_000);
    // 1,100 page views spread over the last 6.9 days (a few in the last minutes), and 20 more
    // between 20 and 80 days ago.
    let mut views: Vec<Value> = (0..1_100)
        .map(|i: i64| {
            let url = if i % 3 == 0 {
                "https://shop.example/pricing".to_string()
            } else {
                format!("https://shop.example/blog/{}", i % 7)
            };
            json!({"url": url, "clientId": format!("c{}", i % 40),
                "timestamp": iso(now - 30_000 - i * (69 * day / 10) / 1_100)})
        })
        .collect();
    views.extend((0..20).map(|i: i64| {
        json!({"url": "https://shop.example/archive", "timestamp": iso(now - (20 + 3 * i) * day)})
    }));
    ingest_from_germany(&app, &key, "pageviews", views).await;
    let events: Vec<Value> = (0..30)
        .map(|i: i64| json!({"eventName": "signup", "timestamp": iso(now - 20_000 - i * 5 * 3_600_000)}))
        .collect();
    ingest_from_germany(&app, &key, "events", events).await;
    let errors: Vec<Value> = (0..12)
        .map(|i: i64| {
            json!({"message": "boom", "errorType": "window_error", "url": "https://shop.example/pricing",
                "timestamp": iso(now - 10_000 - i * 7 * minute)})
        })
        .collect();
    ingest_from_germany(&app, &key, "errors", errors).await;
    let vitals: Vec<Value> = (0..10)
        .map(|i: i64| {
            json!({"lcp": 1800 + 100 * i, "cls": 0.02, "ttfb": 300 + 10 * i, "inp": 120,
                "url": "https://shop.example/pricing", "timestamp": iso(now - 15_000 - i * 2 * 3_600_000)})
        })
        .collect();
    ingest_from_germany(&app, &key, "performance", vitals).await;

    // The JSON every page draws from, checked here once: totals and the error's fingerprint.
    let get = async |path: &str| -> Value {
        let r = get_accepting(
            &client,
            &app,
            &format!("/projects/{id}{path}"),
            "application/json",
        )
        .await;
        assert_eq!(r.status(), 200, "{path}");
        r.json().await.unwrap()
    };
    let week = get("/dashboard/data?timeframe=7d").await;
    assert_eq!(week["data"]["pageViews"]["totalViews"], 1_100);
    let errors = get("/errors?timeframe=7d").await;
    let fingerprint = errors["groupedErrors"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(errors["series"]["bucket"], "day");

    let project = superinsights::domain::ids::DocId::parse(&id).unwrap();
    let link = app.enable_public_link(project).await;
    let shots = format!("{}/screenshots/charts", env!("CARGO_TARGET_TMPDIR"));
    run_browser_script(
        &app,
        "charts.test.mjs",
        &[
            ("SI_EMAIL", "charts@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_PUBLIC_BASE", &format!("/p/{id}/{}", link.token)),
            ("SI_FINGERPRINT", &fingerprint),
            ("SI_TOTAL_7D", "1100"),
            ("SI_SHOTS", &shots),
        ],
    )
    .await;
    for page in ["dashboard", "pageviews", "events", "errors", "performance"] {
        for width in [1280, 390] {
            let path = format!("{shots}/{page}-{width}-light.png");
            assert!(
                std::fs::metadata(&path).is_ok_and(|m| m.len() > 5_000),
                "{path}"
            );
        }
    }
    app.stop().await;
}
