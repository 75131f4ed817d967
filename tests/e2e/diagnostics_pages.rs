//! The errors and performance pages over real HTTP: HTML for browsers, JSON for JSON-only
//! clients, filters, the true occurrence count past 100, escaping of untrusted error text,
//! access control; and the performance page in headless Chromium
//! (`tests/browser/performance.test.mjs`).

use crate::support::{
    self, BROWSER_ACCEPT, TestApp, browser_suite_available, get_accepting as get, json_of,
    member_with_project, register, run_browser_script,
};
use serde_json::{Value, json};

async fn html_of(client: &reqwest::Client, app: &TestApp, path: &str) -> String {
    support::html_of(client, app, path, BROWSER_ACCEPT).await
}

const SCRIPT_MESSAGE: &str = "<script>alert('pwned')</script> broke";
const SCRIPT_STACK: &str = "Error\n    at <img src=x onerror=alert(1)> (app.js:1:2)";

#[tokio::test]
async fn errors_list_negotiates_json_and_html_filters_and_escapes_messages() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, key) = member_with_project(&app, "errors@example.com").await;
    let boom = json!({"message": "boom", "browser": "Firefox", "os": "Linux", "errorType": "window_error",
        "context": {"clientId": "c1", "url": "https://shop.example/"}});
    let script = json!({"message": SCRIPT_MESSAGE, "stackTrace": SCRIPT_STACK, "browser": "Chrome",
        "errorType": "unhandled_rejection", "sourceFile": "app.js", "lineNumber": 1, "columnNumber": 2});
    assert_eq!(
        app.ingest("errors", &key, &json!([boom, boom, boom, script]))
            .await
            .status(),
        201
    );

    let list = json_of(
        &client,
        &app,
        &format!("/projects/{id}/errors?timeframe=24h"),
    )
    .await;
    let mut keys: Vec<_> = list.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "errorGroups",
            "errorsByDay",
            "groupedErrors",
            "series",
            "stateCounts",
            "stateFilter",
            "timeframe",
            "totalErrors",
            "uniqueFingerprints",
            "uniqueSignatures"
        ],
        "SuperInsights 1.x's JSON shape, the chart's series and the error groups"
    );
    assert_eq!(list["timeframe"], "24h");
    assert_eq!(
        (
            list["totalErrors"].as_u64(),
            list["uniqueFingerprints"].as_u64()
        ),
        (Some(4), Some(2))
    );
    let first = &list["groupedErrors"][0];
    assert_eq!(
        (
            &first["message"],
            &first["count"],
            &first["browser"],
            &first["os"]
        ),
        (
            &json!("boom"),
            &json!(3),
            &json!("Firefox"),
            &json!("Linux")
        )
    );
    assert_eq!(list["errorsByDay"].as_array().unwrap().len(), 1);
    let script_fp = list["groupedErrors"][1]["fingerprint"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        script_fp,
        superinsights::domain::fingerprint::error_fingerprint(SCRIPT_MESSAGE, Some(SCRIPT_STACK))
    );

    let total = async |query: &str| {
        json_of(&client, &app, &format!("/projects/{id}/errors?{query}")).await["totalErrors"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(total("browser=Chrome").await, 1);
    assert_eq!(
        total("browser=all").await,
        4,
        "`all` browsers means every browser"
    );
    assert_eq!(total("errorType=unhandled_rejection").await, 1);
    assert_eq!(total("errorType=all").await, 4);
    assert_eq!(total("clientId=c1").await, 3, "context.clientId");
    assert_eq!(
        total("metaKey=url&metaValue=https://shop.example/").await,
        3
    );
    assert_eq!(total("clientId=c2").await, 0);
    let chrome = json_of(
        &client,
        &app,
        &format!("/projects/{id}/errors?browser=Chrome"),
    )
    .await;
    assert_eq!(
        chrome["uniqueFingerprints"], 1,
        "distinct fingerprints follow the browser filter"
    );

    // Browsers (and */*) get the page; the untrusted message is escaped, never markup.
    let html = html_of(&client, &app, &format!("/projects/{id}/errors")).await;
    assert!(html.contains("id=\"total-errors\">4<"), "{html}");
    assert!(
        html.contains("id=\"avg-per-day\">0.57<"),
        "4 errors over 7 nominal days"
    );
    assert!(html.contains("&#60;script&#62;alert(&#39;pwned&#39;)&#60;/script&#62; broke"));
    assert!(!html.contains("<script>alert("));
    assert!(html.contains(&format!(
        "href=\"/projects/{id}/errors/{script_fp}?timeframe=7d\""
    )));
    assert!(html.contains("aria-current=\"page\">Errors</a>"));
    let r = get(&client, &app, &format!("/projects/{id}/errors"), "*/*").await;
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let filtered = html_of(
        &client,
        &app,
        &format!("/projects/{id}/errors?browser=Chrome&clientId=c9"),
    )
    .await;
    assert!(filtered.contains("id=\"no-errors\""));
    assert!(filtered.contains("<option value=\"Chrome\" selected>"));
    assert!(filtered.contains("name=\"clientId\" value=\"c9\""));

    // The detail page escapes the message and the stack trace too.
    let detail = html_of(&client, &app, &format!("/projects/{id}/errors/{script_fp}")).await;
    assert!(detail.contains("&#60;script&#62;alert(&#39;pwned&#39;)&#60;/script&#62; broke"));
    assert!(detail.contains("at &#60;img src=x onerror=alert(1)&#62; (app.js:1:2)"));
    assert!(!detail.contains("<img src=x"));
    assert!(detail.contains("app.js:1:2"));
    assert!(detail.contains("id=\"total-occurrences\">1<"));
    app.stop().await;
}

#[tokio::test]
async fn error_detail_counts_every_occurrence_beyond_the_100_listed() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, key) = member_with_project(&app, "detail@example.com").await;
    let now = superinsights::domain::timestamp::now_ms();
    let iso = superinsights::domain::timestamp::to_iso;
    for chunk in 0..2 {
        let items: Vec<Value> = (0..60)
            .map(|i| {
                json!({"message": "TypeError: x is undefined", "stackTrace": "at f (a.js:1:1)",
                    "browser": "Safari", "context": {"url": format!("https://shop.example/p/{chunk}/{i}")},
                    "timestamp": iso(now - (chunk * 60 + i) * 1000)})
            })
            .collect();
        assert_eq!(
            app.ingest("errors", &key, &json!(items)).await.status(),
            201
        );
    }
    let fp = superinsights::domain::fingerprint::error_fingerprint(
        "TypeError: x is undefined",
        Some("at f (a.js:1:1)"),
    );
    let html = html_of(
        &client,
        &app,
        &format!("/projects/{id}/errors/{fp}?timeframe=24h"),
    )
    .await;
    assert!(
        html.contains("id=\"total-occurrences\">120<"),
        "the true count"
    );
    assert!(html.contains("The latest 100 of 120."));
    assert_eq!(
        html.matches("<td class=\"url\">").count(),
        100,
        "100 rows listed"
    );

    let detail = json_of(
        &client,
        &app,
        &format!("/projects/{id}/errors/{fp}?timeframe=24h"),
    )
    .await;
    assert_eq!(detail["totalOccurrences"], 120);
    assert_eq!(detail["occurrences"].as_array().unwrap().len(), 100);
    assert_eq!(
        detail["details"]["context"]["url"],
        "https://shop.example/p/0/0"
    );
    assert_eq!(detail["firstSeen"], json!(iso(now - 119_000)));
    assert_eq!(detail["timeframe"], "24h");

    let none = html_of(
        &client,
        &app,
        &format!("/projects/{id}/errors/{}", "0".repeat(64)),
    )
    .await;
    assert!(none.contains("id=\"no-occurrences\""));
    app.stop().await;
}

#[tokio::test]
async fn performance_page_shows_score_status_quality_and_filters() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, key) = member_with_project(&app, "perf@example.com").await;
    let vitals = json!([
        {"lcp": 1000, "cls": 0.01, "fid": 10, "ttfb": 100, "deviceType": "desktop", "browser": "Chrome", "clientId": "c1"},
        {"lcp": 2000, "cls": 0.02, "fid": 20, "ttfb": 200, "deviceType": "desktop", "browser": "Chrome", "properties": {"userId": "u7"}},
        {"lcp": 5000, "ttfb": 3000, "deviceType": "mobile", "browser": "Safari", "properties": {"plan": "pro"}},
    ]);
    assert_eq!(app.ingest("performance", &key, &vitals).await.status(), 201);

    let all = json_of(&client, &app, &format!("/projects/{id}/performance")).await;
    assert_eq!(all["timeframe"], "7d");
    assert_eq!(all["totalMeasurements"], 3);
    assert_eq!(all["completeMeasurements"], 2);
    assert_eq!(all["dataQuality"], 66.7);
    assert_eq!(all["percentiles"]["lcp_p75"], 2000.0, "index ⌊0.75·2⌋ = 1");
    assert_eq!(all["percentiles"]["cls_p75"], 0.01, "two values: index 0");
    assert_eq!(all["performanceScore"]["score"], 100);
    assert_eq!(all["metrics"][0]["metric"], "lcp");
    assert_eq!(all["metrics"][0]["status"], "good");

    let mobile = json_of(
        &client,
        &app,
        &format!("/projects/{id}/performance?deviceType=mobile"),
    )
    .await;
    assert_eq!(mobile["totalMeasurements"], 1);
    assert_eq!(mobile["filters"]["deviceType"], "mobile");
    assert_eq!(mobile["metrics"][0]["status"], "poor", "LCP 5000 ms");
    assert_eq!(mobile["metrics"][3]["status"], "poor", "TTFB 3000 ms");
    assert_eq!(
        mobile["performanceScore"]["score"], 0,
        "poor LCP and TTFB; missing CLS and INP are left out"
    );
    assert_eq!(mobile["dataQuality"], 0.0);
    let count = async |query: &str| {
        json_of(
            &client,
            &app,
            &format!("/projects/{id}/performance?{query}"),
        )
        .await["totalMeasurements"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(count("browser=Chrome").await, 2);
    assert_eq!(
        count("browser=all").await,
        3,
        "`all` browsers means every browser (an unknown one is a 400)"
    );
    assert_eq!(count("clientId=c1").await, 1);
    assert_eq!(count("userId=u7").await, 1, "properties.userId");
    assert_eq!(count("meta=%7B%22plan%22%3A%22pro%22%7D").await, 1);

    let html = html_of(&client, &app, &format!("/projects/{id}/performance")).await;
    assert!(
        html.contains("class=\"score good\" id=\"performance-score\">100<"),
        "{html}"
    );
    assert!(html.contains("id=\"data-quality\">66.7%<"));
    assert!(html.contains("id=\"thresholds\""));
    assert!(html.contains("≤ 2500ms"));
    assert!(html.contains("id=\"chart-lcp\""));
    let poor = html_of(
        &client,
        &app,
        &format!("/projects/{id}/performance?deviceType=mobile"),
    )
    .await;
    assert!(poor.contains("class=\"score poor\" id=\"performance-score\">0<"));
    assert!(poor.contains("<span class=\"status poor\">Poor</span>"));
    assert!(poor.contains("<option value=\"mobile\" selected>"));
    let empty = html_of(
        &client,
        &app,
        &format!("/projects/{id}/performance?timeframe=5m&clientId=nobody"),
    )
    .await;
    assert!(empty.contains("id=\"performance-score\">—<"));
    app.stop().await;
}

#[tokio::test]
async fn strangers_get_403_and_unknown_projects_404() {
    let app = TestApp::spawn(&[]).await;
    let (_, id, _) = member_with_project(&app, "owner@example.com").await;
    let (stranger, _) = register(&app, "stranger@example.com").await;
    let fp = "a".repeat(64);
    for path in ["errors", &format!("errors/{fp}"), "performance"] {
        for accept in ["text/html", "application/json"] {
            let r = get(&stranger, &app, &format!("/projects/{id}/{path}"), accept).await;
            assert_eq!(r.status(), 403, "{path} {accept}");
            let unknown = superinsights::domain::ids::DocId::new();
            let r = get(
                &stranger,
                &app,
                &format!("/projects/{unknown}/{path}"),
                accept,
            )
            .await;
            assert_eq!(r.status(), 404, "{path} {accept}");
        }
    }
    let r = get(
        &reqwest::Client::new(),
        &app,
        &format!("/projects/{id}/errors"),
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 401, "signed out");
    app.stop().await;
}

#[tokio::test]
async fn the_performance_page_shows_the_score_and_draws_its_charts_in_chromium() {
    if !browser_suite_available("the browser performance test") {
        return;
    }
    let app = TestApp::spawn(&[]).await;
    let (_, id, key) = member_with_project(&app, "perf-browser@example.com").await;
    let now = superinsights::domain::timestamp::now_ms();
    let iso = superinsights::domain::timestamp::to_iso;
    let day = 86_400_000;
    // LCP p75 3000 ms (score 67), CLS 0.05 (100), TTFB 1000 (80): score 82 (FID is shown,
    // not counted; INP, not measured, is left out).
    let vitals: Vec<Value> = [1500, 2000, 3000, 3500]
        .into_iter()
        .zip(0..)
        .map(|(lcp, i)| {
            json!({"lcp": lcp, "cls": 0.05, "fid": 50, "ttfb": 1000,
                "timestamp": iso(now - i * day)})
        })
        .collect();
    assert_eq!(
        app.ingest("performance", &key, &json!(vitals))
            .await
            .status(),
        201
    );
    let screenshot = std::env::var("SI_PERFORMANCE_SCREENSHOT").unwrap_or_default();
    run_browser_script(
        &app,
        "performance.test.mjs",
        &[
            ("SI_EMAIL", "perf-browser@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_SCORE", "82"),
            ("SI_SCREENSHOT", &screenshot),
        ],
    )
    .await;
    app.stop().await;
}
