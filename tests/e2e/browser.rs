//! The browser SDK proven in a real browser: the server on a real port, Debian's Chromium driven
//! by `tests/browser/sdk.test.mjs` (playwright-core, `node --test`), then the stored documents
//! checked here field by field. Also the SDK's HTTP caching. Skips with a message only outside CI
//! when Chromium, Node or playwright-core (`npm ci`) is missing; `scripts/test` installs them.

use crate::support::TestApp;
use serde_json::Value;
use std::{path::Path, time::Duration};
use superinsights::{domain::model::Channel, store::Project};

/// Why the browser suite cannot run here, if it cannot.
pub(crate) fn missing_browser_prerequisite() -> Option<String> {
    let chromium = std::env::var("SI_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    if !Path::new(&chromium).exists() {
        return Some(format!("{chromium} not found (apt-get install chromium)"));
    }
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        return Some("node not found".into());
    }
    let playwright = Path::new(env!("CARGO_MANIFEST_DIR")).join("node_modules/playwright-core");
    if !playwright.exists() {
        return Some("node_modules/playwright-core not found (run npm ci)".into());
    }
    None
}

async fn stored(app: &TestApp, project: &Project, channel: Channel) -> Vec<Value> {
    app.state
        .stores
        .stats
        .recent(project.id, channel, 200)
        .await
        .unwrap()
}

/// Waits until the project has at least `n` documents of `channel`, and returns them. Generous:
/// under a loaded machine a slow store spools a batch and the drain replays it a few seconds later.
/// On a timeout it says what was stored, so a missing document can be told from a late one.
async fn at_least(app: &TestApp, project: &Project, channel: Channel, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let found = stored(app, project, channel).await;
        if found.len() >= n {
            return found;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {n} stored {channel:?}; stored: {found:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn named<'a>(events: &'a [Value], name: &str) -> &'a Value {
    events
        .iter()
        .find(|e| e["eventName"] == name)
        .unwrap_or_else(|| panic!("event {name} stored: {events:#?}"))
}

fn path_of(url: &Value) -> String {
    let url = url.as_str().unwrap();
    let after_host = url.splitn(4, '/').nth(3).unwrap_or("");
    format!("/{}", after_host.split('?').next().unwrap())
}

/// What both the fetch and the ws pages send (`exercise` in sdk.test.mjs), checked in the store.
async fn assert_exercise_stored(app: &TestApp, project: &Project, landing: &str) {
    let mut views = at_least(app, project, Channel::Pageviews, 2).await;
    views.sort_by_key(|v| v["timestamp"].as_str().unwrap().to_string());
    assert_eq!(
        views.iter().map(|v| path_of(&v["url"])).collect::<Vec<_>>(),
        vec![landing.to_string(), "/app/step2".to_string()],
        "the landing page view and the pushState navigation"
    );
    let client_id = views[0]["clientId"].as_str().unwrap();
    assert_eq!(client_id.len(), 36, "a UUID visitor id");
    for view in &views {
        assert_eq!(view["title"], "SDK test page");
        assert_eq!(view["clientId"], client_id);
        assert_eq!(view["sessionId"], views[0]["sessionId"]);
        assert_eq!(view["deviceType"], "desktop");
        assert_eq!(view["browser"], "Chrome", "from the request's User-Agent");
        assert_eq!(view["os"], "Linux");
        assert_eq!(view["ip"], "127.0.0.1", "enriched by the server: {view}");
        assert_eq!(view["isBot"], false);
    }

    let events = at_least(app, project, Channel::Events, 5).await;
    let signup = named(&events, "signup");
    assert_eq!(signup["properties"]["plan"], "pro");
    assert_eq!(signup["properties"]["seats"], 3);
    assert_eq!(signup["clientId"], client_id);
    assert!(signup.get("durationMs").is_none_or(Value::is_null));
    assert_eq!(named(&events, "search")["durationMs"], 123.5);
    assert_eq!(named(&events, "search")["properties"]["query"], "shoes");
    assert!(named(&events, "compute")["durationMs"].as_f64().unwrap() >= 5.0);
    assert!(named(&events, "load_data")["durationMs"].as_f64().unwrap() >= 25.0);
    let click = &named(&events, "$click")["properties"];
    assert_eq!(click["tag"], "button");
    assert_eq!(click["id"], "buy");
    assert_eq!(click["className"], "cta");
    assert_eq!(click["text"], "Buy now");
    assert_eq!(click["selector"], "button#buy");
    assert_eq!(click["data"], serde_json::json!({"plan": "pro"}));
    assert!(
        click["rect"]["w"].as_f64().unwrap() > 0.0 && click["rect"]["h"].as_f64().unwrap() > 0.0
    );
    assert_eq!(
        events.iter().filter(|e| e["eventName"] == "$click").count(),
        1,
        "ignored and password elements are not captured"
    );

    let errors = at_least(app, project, Channel::Errors, 2).await;
    let thrown = errors
        .iter()
        .find(|e| e["errorType"] == "window_error")
        .expect("the thrown error");
    assert_eq!(
        thrown["message"],
        "Uncaught Error: boom: thrown by the test page"
    );
    assert!(thrown["stackTrace"].as_str().unwrap().contains("thrower"));
    assert!(
        thrown["sourceFile"].as_str().unwrap().contains(landing),
        "{thrown}"
    );
    assert!(thrown["lineNumber"].as_f64().unwrap() > 0.0);
    assert_eq!(thrown["browser"], "Chrome");
    assert!(
        thrown["context"]["url"]
            .as_str()
            .unwrap()
            .contains("/app/step2")
    );
    assert!(!thrown["fingerprint"].as_str().unwrap().is_empty());
    let rejected = errors
        .iter()
        .find(|e| e["errorType"] == "unhandled_rejection")
        .expect("the unhandled rejection");
    assert_eq!(rejected["message"], "nope: rejected by the test page");
    assert_eq!(errors.len(), 2, "each error once");

    let vitals = at_least(app, project, Channel::Performance, 1).await;
    assert_eq!(vitals.len(), 1, "one web-vitals record per page load");
    let v = &vitals[0];
    assert_eq!(v["metricType"], "web_vitals_aggregate");
    assert!(
        v["inp"].as_f64().unwrap() >= 100.0,
        "INP after a 120 ms click handler: {v}"
    );
    assert!(v["lcp"].as_f64().unwrap() > 0.0, "{v}");
    assert!(v["fid"].as_f64().unwrap() >= 0.0, "{v}");
    assert!(v["ttfb"].as_f64().unwrap() >= 0.0, "{v}");
    assert!(v["cls"].as_f64().unwrap() >= 0.0, "{v}");
    assert_eq!(v["clientId"], client_id);
    assert_eq!(v["ip"], "127.0.0.1");
}

#[tokio::test]
async fn the_sdk_delivers_everything_from_a_real_browser_by_fetch_beacon_and_websocket() {
    if let Some(missing) = missing_browser_prerequisite() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser tests must run in CI: {missing}"
        );
        eprintln!("SKIPPED the browser SDK tests: {missing}; scripts/test installs everything");
        return;
    }
    let app = TestApp::spawn(&[]).await;
    let (http, beacon, ws, misc) = (
        app.project().await,
        app.project().await,
        app.project().await,
        app.project().await,
    );
    let status = tokio::process::Command::new("node")
        .args([
            "--test",
            "--test-reporter=spec",
            "tests/browser/sdk.test.mjs",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SI_URL", format!("http://{}", app.addr))
        .env("SI_KEY_HTTP", &http.public_api_key)
        .env("SI_KEY_BEACON", &beacon.public_api_key)
        .env("SI_KEY_WS", &ws.public_api_key)
        .env("SI_KEY_MISC", &misc.public_api_key)
        .kill_on_drop(true)
        .status()
        .await
        .expect("node runs");
    assert!(status.success(), "tests/browser/sdk.test.mjs failed");

    assert_exercise_stored(&app, &http, "/app.html").await;
    let landing = &stored(&app, &http, Channel::Pageviews).await;
    let landing = landing
        .iter()
        .find(|v| path_of(&v["url"]) == "/app.html")
        .unwrap();
    assert_eq!(landing["utmSource"], "newsletter");
    assert_eq!(landing["utmCampaign"], "launch");

    let events = at_least(&app, &beacon, Channel::Events, 1).await;
    assert_eq!(
        named(&events, "before_hide")["properties"]["reason"],
        "navigating away"
    );
    at_least(&app, &beacon, Channel::Pageviews, 1).await;
    at_least(&app, &beacon, Channel::Performance, 1).await;

    assert_exercise_stored(&app, &ws, "/ws.html").await;

    let events = at_least(&app, &misc, Channel::Events, 4).await;
    let count = |name: &str| events.iter().filter(|e| e["eventName"] == name).count();
    assert_eq!(count("retried"), 1, "retried until stored, stored once");
    assert_eq!(count("session_check"), 2);
    assert_eq!(count("queued_while_offline"), 1, "sent after the reconnect");
    assert_eq!(count("must_not_arrive"), 0, "Do Not Track, secret key");
    assert_eq!(events.len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn the_sdk_is_served_with_its_content_type_and_no_store_in_development() {
    let app = TestApp::spawn(&[]).await;
    let r = app
        .http
        .get(app.url("/sdk/superinsights.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["content-type"],
        "application/javascript; charset=utf-8"
    );
    assert_eq!(r.headers()["cache-control"], "no-store");
    let body = r.text().await.unwrap();
    assert_eq!(body, superinsights::http::sdk::SDK_JS);
    assert!(body.contains("SuperInsights"));
    app.stop().await;
}

#[tokio::test]
async fn in_production_the_sdk_is_cached_by_etag_and_forever_at_its_versioned_url() {
    let app = TestApp::spawn(&[
        ("NODE_ENV", "production"),
        ("SESSION_SECRET", "a-long-random-test-session-secret"),
        ("JWT_ACCESS_SECRET", "a-long-random-test-access-secret"),
        ("JWT_REFRESH_SECRET", "a-long-random-test-refresh-secret"),
    ])
    .await;
    let plain = app
        .http
        .get(app.url("/sdk/superinsights.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["cache-control"], "public, max-age=86400");
    let etag = plain.headers()["etag"].to_str().unwrap().to_string();
    let version = superinsights::http::sdk::sdk_version();
    assert_eq!(etag, format!("\"{version}\""));

    let revalidated = app
        .http
        .get(app.url("/sdk/superinsights.js"))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(revalidated.status(), 304);
    assert_eq!(revalidated.headers()["etag"], etag.as_str());
    assert!(revalidated.bytes().await.unwrap().is_empty());

    let versioned = app
        .http
        .get(app.url(&superinsights::http::sdk::sdk_versioned_path()))
        .send()
        .await
        .unwrap();
    assert_eq!(versioned.status(), 200);
    assert_eq!(
        versioned.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    let stale = app
        .http
        .get(app.url("/sdk/superinsights.js?v=0000000000000000"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        stale.headers()["cache-control"],
        "public, max-age=86400",
        "an old version's URL is not pinned for a year"
    );
    app.stop().await;
}
