//! The rest of issue 16's pages, through the real server: custom date ranges on every
//! drill-down (JSON figures and `INVALID_DATE_RANGE`), the previous period over the page-view
//! chart, and in headless Chromium `tests/browser/dashboard_ui.test.mjs` (the date picker on
//! the drill-downs, the overlay, every dashboard control by keyboard only) and
//! `tests/browser/pages.test.mjs` (an axe-core scan and the 390 px check of every other page a
//! person reaches, with screenshots at 1280 and 390 px in
//! `{CARGO_TARGET_TMPDIR}/screenshots/pages`).

use crate::support::{
    TestApp, assert_answer, browser_suite_available, csrf_of, eventually, get_accepting, get_json,
    member_with_project, page, run_browser_script,
};
use serde_json::{Value, json};
use std::time::Duration;
use superinsights::domain::{analytics::utc_day, timestamp::to_iso};

const DAY: i64 = 86_400_000;
const HOUR: i64 = 3_600_000;

/// What was seeded: the page views', events', errors' and web vitals' timestamps.
struct Seeded {
    views: Vec<i64>,
    events: Vec<i64>,
    errors: Vec<i64>,
    vitals: Vec<i64>,
}

/// Ingests `items` on `channel`, 50 at a time, from a desktop Chrome in Germany.
async fn ingest(app: &TestApp, key: &str, channel: &str, items: Vec<Value>) {
    let client = reqwest::Client::new();
    for chunk in items.chunks(50) {
        let r = client
            .post(app.url(&format!("/v1/{channel}")))
            .bearer_auth(key)
            .header("cf-ipcountry", "DE")
            .header(
                "user-agent",
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
                 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
            )
            .json(&chunk)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201, "{}", r.text().await.unwrap());
    }
}

/// Twenty days of page views (one every 3 hours, in visits of three, over seven pages),
/// events, errors and web vitals, the newest a minute old.
async fn seed(app: &TestApp, key: &str) -> Seeded {
    let now = superinsights::domain::timestamp::now_ms();
    let views: Vec<i64> = (0..160).map(|i| now - 60_000 - i * 3 * HOUR).collect();
    let events: Vec<i64> = (0..40).map(|i| now - 90_000 - i * 11 * HOUR).collect();
    let errors: Vec<i64> = (0..25).map(|i| now - 30_000 - i * 17 * HOUR).collect();
    let vitals: Vec<i64> = (0..30).map(|i| now - 45_000 - i * 13 * HOUR).collect();
    let pages = [
        "/",
        "/pricing",
        "/blog/one",
        "/blog/two",
        "/blog/three",
        "/docs",
        "/about",
    ];
    ingest(
        app,
        key,
        "pageviews",
        (views.iter().enumerate())
            .map(|(i, &t)| {
                json!({"url": format!("https://shop.example{}", pages[i % 7]),
                    "clientId": format!("c{}", i % 9), "sessionId": format!("s{}", i / 3),
                    "referrer": "https://news.example/item", "timestamp": to_iso(t)})
            })
            .collect(),
    )
    .await;
    ingest(
        app,
        key,
        "events",
        (events.iter().enumerate())
            .map(|(i, &t)| {
                json!({"eventName": if i % 2 == 0 { "signup" } else { "checkout" },
                    "properties": {"plan": "pro"}, "timestamp": to_iso(t)})
            })
            .collect(),
    )
    .await;
    ingest(
        app,
        key,
        "errors",
        (errors.iter())
            .map(|&t| {
                json!({"message": "boom", "errorType": "window_error",
                    "url": "https://shop.example/pricing", "timestamp": to_iso(t)})
            })
            .collect(),
    )
    .await;
    ingest(
        app,
        key,
        "performance",
        (vitals.iter().enumerate())
            .map(|(i, &t)| {
                json!({"lcp": 1500 + 40 * i, "cls": 0.05, "ttfb": 200, "inp": 150,
                    "url": "https://shop.example/", "timestamp": to_iso(t)})
            })
            .collect(),
    )
    .await;
    Seeded {
        views,
        events,
        errors,
        vitals,
    }
}

/// How many of `times` fall on the UTC days `from..=to` days ago.
fn within(times: &[i64], from: i64, to: i64) -> u64 {
    let today = superinsights::domain::timestamp::now_ms().div_euclid(DAY);
    let (first, last) = (today - from, today - to);
    (times.iter())
        .filter(|t| (first..=last).contains(&t.div_euclid(DAY)))
        .count() as u64
}

/// `YYYY-MM-DD` of the UTC day `n` days ago.
fn day(n: i64) -> String {
    utc_day(superinsights::domain::timestamp::now_ms() - n * DAY)
}

#[tokio::test]
async fn every_drill_down_takes_a_custom_range_and_refuses_bad_ones() {
    let app = TestApp::spawn(&[("TRUST_PROXY", "true")]).await;
    let (client, id, key) = member_with_project(&app, "ranges@example.com").await;
    let seeded = seed(&app, &key).await;
    let base = format!("/projects/{id}");
    let (errors, _) = get_json(&client, &app, &format!("{base}/errors?timeframe=30d")).await;
    assert_eq!(errors, 200);
    let (_, list) = get_json(&client, &app, &format!("{base}/errors?timeframe=30d")).await;
    let fingerprint = list["groupedErrors"][0]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    let range = format!("from={}&to={}", day(9), day(3));

    // The figures are those of the picked days, whatever the timeframe says.
    let expect = [
        ("pageviews", "totalViews", within(&seeded.views, 9, 3)),
        ("events", "totalEvents", within(&seeded.events, 9, 3)),
        ("errors", "totalErrors", within(&seeded.errors, 9, 3)),
        (
            "performance",
            "totalMeasurements",
            within(&seeded.vitals, 9, 3),
        ),
    ];
    for (view, field, n) in expect {
        assert!(n > 0, "{view}: the seed covers the range");
        let (status, body) = get_json(
            &client,
            &app,
            &format!("{base}/{view}?timeframe=24h&{range}"),
        )
        .await;
        assert_eq!(status, 200, "{view}: {body}");
        assert_eq!(body[field], n, "{view} over {range}");
        assert_eq!(body["series"]["bucket"], "day", "{view}: 7 days in days");
        assert_eq!(
            body["series"]["points"].as_array().unwrap().len(),
            7,
            "{view}"
        );
    }
    let signups = (seeded.events.iter().enumerate())
        .filter(|(i, _)| i % 2 == 0)
        .map(|(_, t)| *t)
        .collect::<Vec<_>>();
    let (_, detail) = get_json(&client, &app, &format!("{base}/events/signup?{range}")).await;
    let by_day: u64 = (detail["eventsByDay"].as_array().unwrap().iter())
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(by_day, within(&signups, 9, 3), "event detail over {range}");
    let (_, detail) = get_json(
        &client,
        &app,
        &format!("{base}/errors/{fingerprint}?{range}"),
    )
    .await;
    assert_eq!(
        detail["totalOccurrences"].as_u64(),
        Some(within(&seeded.errors, 9, 3)),
        "error detail over {range}: {detail}"
    );

    // Reversed, half-given, impossible, future or absurd: a 400 with the code, every view.
    let bad = [
        format!("from={}&to={}", day(3), day(9)),
        format!("from={}", day(3)),
        "from=2026-02-30&to=2026-03-02".to_string(),
        format!("from={}&to={}", day(-3), day(-2)),
        "from=1999-12-31&to=2000-01-02".to_string(),
        "from=2010-01-01&to=2020-01-01".to_string(),
    ];
    let views = [
        "pageviews".to_string(),
        "events".into(),
        "events/live.json".into(),
        "events/signup".into(),
        "errors".into(),
        format!("errors/{fingerprint}"),
        "performance".into(),
        "dashboard/data".into(),
    ];
    for view in &views {
        for q in &bad {
            let (status, body) = get_json(&client, &app, &format!("{base}/{view}?{q}")).await;
            assert_eq!(status, 400, "{view}?{q}: {body}");
            assert_eq!(body["code"], "INVALID_DATE_RANGE", "{view}?{q}");
        }
    }
    // Browsers get the message on a page.
    let r = get_accepting(
        &client,
        &app,
        &format!("{base}/performance?from={}&to={}", day(3), day(9)),
        "text/html",
    )
    .await;
    assert_answer(r, 400, "the start date is after the end date").await;
    app.stop().await;
}

#[tokio::test]
async fn the_previous_period_is_overlaid_bucket_by_bucket() {
    let app = TestApp::spawn(&[("TRUST_PROXY", "true")]).await;
    let (client, id, key) = member_with_project(&app, "overlay@example.com").await;
    seed(&app, &key).await;
    let base = format!("/projects/{id}/dashboard/data");
    let range = format!("from={}&to={}", day(8), day(2));
    for q in [
        "timeframe=7d",
        "timeframe=24h",
        "timeframe=6h",
        range.as_str(),
    ] {
        let (status, plain) = get_json(&client, &app, &format!("{base}?{q}")).await;
        assert_eq!(status, 200);
        assert!(
            plain["data"]["charts"].get("viewsPrevious").is_none(),
            "{q}"
        );
        let (status, body) = get_json(&client, &app, &format!("{base}?{q}&compare=1")).await;
        assert_eq!(status, 200, "{q}: {body}");
        let data = &body["data"];
        let now = data["charts"]["views"]["points"].as_array().unwrap();
        let before = data["charts"]["viewsPrevious"]["points"]
            .as_array()
            .unwrap();
        assert_eq!(
            before.len(),
            now.len(),
            "{q}: one earlier bucket per bucket"
        );
        assert_eq!(
            data["charts"]["viewsPrevious"]["bucket"],
            data["charts"]["views"]["bucket"]
        );
        let sum: f64 = before
            .iter()
            .map(|p| p["values"][0].as_f64().unwrap())
            .sum();
        assert_eq!(
            sum as u64,
            data["previous"]["totalViews"].as_u64().unwrap(),
            "{q}: the overlay adds up to the previous period's total"
        );
        assert!(sum > 0.0, "{q}: the seed reaches the previous period");
        let len = |p: &Value| p["end"].as_i64().unwrap() - p["start"].as_i64().unwrap();
        for (a, b) in now.iter().zip(before) {
            assert_eq!(len(a), len(b), "{q}: same bucket size");
            assert!(b["end"].as_i64().unwrap() <= now[0]["end"].as_i64().unwrap());
        }
    }
    let (status, body) = get_json(&client, &app, &format!("{base}?compare=yes")).await;
    assert_eq!(status, 400);
    assert_eq!(body["code"], "BAD_PARAMETER");
    app.stop().await;
}

/// A completed HTML report of the project, generated by the server's own worker: its id.
async fn completed_report(app: &TestApp, client: &reqwest::Client, id: &str) -> String {
    let (status, html) = page(client, app, &format!("/projects/{id}/reports")).await;
    assert_eq!(status, 200);
    let r = client
        .post(app.url(&format!("/projects/{id}/reports/generate")))
        .header("accept", "application/json")
        .header("x-csrf-token", csrf_of(&html))
        .json(&json!({"name": "Weekly", "dataType": "all", "format": "html", "timeframe": "7d"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let report: Value = r.json().await.unwrap();
    let report = report["reportId"].as_str().unwrap().to_string();
    let status_path = format!("/projects/{id}/reports/{report}/status");
    eventually(
        Duration::from_secs(60),
        "the report completes",
        async || {
            let (_, s) = get_json(client, app, &status_path).await;
            s.to_string().contains("completed")
        },
    )
    .await;
    report
}

#[tokio::test]
async fn drill_down_ranges_the_overlay_and_keyboard_use_work_in_chromium() {
    if !browser_suite_available("the dashboard UI browser test") {
        return;
    }
    let app = TestApp::spawn(&[("TRUST_PROXY", "true")]).await;
    let (_, id, key) = member_with_project(&app, "dashui@example.com").await;
    seed(&app, &key).await;
    let link = app
        .enable_public_link(superinsights::domain::ids::DocId::parse(&id).unwrap())
        .await;
    run_browser_script(
        &app,
        "dashboard_ui.test.mjs",
        &[
            ("SI_EMAIL", "dashui@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_PUBLIC_BASE", &format!("/p/{id}/{}", link.token)),
        ],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn every_other_page_fits_a_phone_and_passes_axe_in_chromium() {
    if !browser_suite_available("the pages browser test") {
        return;
    }
    let app = TestApp::spawn(&[("TRUST_PROXY", "true")]).await;
    // The first account is the platform admin (for /admin/logs).
    let (client, id, key) = member_with_project(&app, "pages@example.com").await;
    seed(&app, &key).await;
    let report = completed_report(&app, &client, &id).await;
    let project = superinsights::domain::ids::DocId::parse(&id).unwrap();
    let link = app.enable_public_link(project).await;
    let shots = format!("{}/screenshots/pages", env!("CARGO_TARGET_TMPDIR"));
    run_browser_script(
        &app,
        "pages.test.mjs",
        &[
            ("SI_EMAIL", "pages@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_REPORT", &report),
            ("SI_PUBLIC_BASE", &format!("/p/{id}/{}", link.token)),
            ("SI_SHOTS", &shots),
            ("SI_KEY", &key),
        ],
    )
    .await;
    for name in [
        "landing",
        "login",
        "register",
        "setup",
        "realtime",
        "reports",
        "report-new",
        "report-detail",
        "report-view",
        "settings",
        "account",
        "org-logs",
        "admin-logs",
        "public-dashboard",
        "404",
    ] {
        for width in [1280, 390] {
            let path = format!("{shots}/{name}-{width}.png");
            assert!(
                std::fs::metadata(&path).is_ok_and(|m| m.len() > 3_000),
                "{path}"
            );
        }
    }
    app.stop().await;
}
