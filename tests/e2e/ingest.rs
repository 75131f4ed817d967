//! The `/v1` ingestion contract of SuperInsights 1.x, over real HTTP.

use crate::support::{TestApp, get_accepting};
use serde_json::{Value, json};
use superinsights::domain::{
    drop_rules::{DropFilter, DropMode, DropRules, FilterOp},
    fingerprint::error_fingerprint,
    model::Channel,
};

#[tokio::test]
async fn all_four_channels_store_what_superinsights_sdk_sends() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let ua = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1";

    let r = app
        .http
        .post(app.url("/v1/pageviews"))
        .bearer_auth(&p.public_api_key)
        .header("user-agent", ua)
        .json(&json!({"items": [{
            "url": "https://shop.example/p/1", "title": "P1", "referrer": "https://news.example/",
            "sessionId": "s-1", "clientId": "c-1", "utmSource": "newsletter", "utmMedium": "email",
            "utmCampaign": "spring", "deviceType": "desktop", "browser": "Firefox", "os": "Linux",
            "browserVersion": "120", "timestamp": "2024-01-31T12:00:00.000Z"
        }, {"url": "https://shop.example/"}], "user": {"userId": "u1"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"success": true, "count": 2})
    );

    let pv = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Pageviews, 10)
        .await
        .unwrap();
    let first = pv
        .iter()
        .find(|d| d["url"] == "https://shop.example/p/1")
        .unwrap();
    assert_eq!(first["timestamp"], "2024-01-31T12:00:00.000Z");
    assert_eq!(first["utmCampaign"], "spring");
    assert_eq!(
        first["browser"], "Firefox",
        "client-sent fields win over the User-Agent"
    );
    assert_eq!(first["ip"], "127.0.0.1");
    let second = pv
        .iter()
        .find(|d| d["url"] == "https://shop.example/")
        .unwrap();
    assert_eq!(
        second["deviceType"], "mobile",
        "filled from the User-Agent when missing"
    );
    assert_eq!(second["os"], "iOS");

    let r = app
        .http
        .post(app.url("/v1/events"))
        .header("x-api-key", &p.secret_api_key)
        .json(&json!([{"eventName": "checkout", "properties": {"plan": "pro", "client_id": "c-9"}, "durationMs": 250}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "secret keys are accepted too");
    let ev = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Events, 1)
        .await
        .unwrap();
    assert_eq!(ev[0]["eventName"], "checkout");
    assert_eq!(ev[0]["clientId"], "c-9");
    assert_eq!(ev[0]["durationMs"].as_f64(), Some(250.0));

    let r = app
        .http
        .post(app.url(&format!("/v1/errors?apiKey={}", p.public_api_key)))
        .header("content-type", "text/plain")
        .body(json!({"message": "TypeError: x is undefined", "stackTrace": "at a (app.js:1:1)", "errorType": "window_error", "context": {"url": "https://shop.example/"}}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        201,
        "sendBeacon bodies arrive as text/plain with ?apiKey="
    );
    let er = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Errors, 1)
        .await
        .unwrap();
    assert_eq!(
        er[0]["fingerprint"],
        error_fingerprint("TypeError: x is undefined", Some("at a (app.js:1:1)"))
    );
    assert_eq!(er[0]["context"]["url"], "https://shop.example/");

    let r = app
        .http
        .post(app.url(&format!("/v1/performance?api_key={}", p.public_api_key)))
        .json(&json!({"lcp": 1800, "cls": 0.02, "ttfb": 120, "inp": 140, "url": "https://shop.example/"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let pm = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Performance, 1)
        .await
        .unwrap();
    assert_eq!(pm[0]["metricType"], "web_vitals_aggregate");
    assert_eq!(pm[0]["inp"].as_f64(), Some(140.0));
    app.stop().await;
}

#[tokio::test]
async fn keys_are_required_and_checked() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let r = app
        .http
        .post(app.url("/v1/events"))
        .json(&json!({"eventName": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "API key required"})
    );
    let r = app
        .ingest("events", "pk_wrong", &json!({"eventName": "x"}))
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Invalid API key"})
    );
    let r = app
        .http
        .get(app.url("/v1/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "unknown /v1 paths authenticate first");
    let r = app
        .http
        .get(app.url("/v1/nothing-here"))
        .bearer_auth(&p.public_api_key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

/// Every malformed body gets a clear 4xx and writes nothing.
#[tokio::test]
async fn bad_input_gets_a_4xx_and_writes_nothing() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let key = p.public_api_key.clone();
    let post_raw = |channel: &'static str, body: Vec<u8>| {
        app.http
            .post(app.url(&format!("/v1/{channel}")))
            .bearer_auth(&key)
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let deep = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let hundred_and_one: Vec<Value> = (0..101).map(|i| json!({"url": format!("/{i}")})).collect();
    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("pageviews", b"not json".to_vec(), 400, "Invalid JSON body"),
        (
            "pageviews",
            vec![0xff, 0xfe, 0x7b, 0x7d],
            400,
            "Invalid JSON body",
        ),
        ("pageviews", b"".to_vec(), 400, "Invalid JSON body"),
        ("pageviews", deep.into_bytes(), 400, ""),
        (
            "pageviews",
            json!(hundred_and_one).to_string().into_bytes(),
            400,
            "Bulk payload size exceeds limit of 100",
        ),
        (
            "pageviews",
            b"[]".to_vec(),
            400,
            "Payload array must not be empty",
        ),
        (
            "pageviews",
            br#"[{"url":"/ok"},{"title":"no url"}]"#.to_vec(),
            400,
            "Field \"url\" is required",
        ),
        (
            "pageviews",
            br#"{"url":{"nested":true}}"#.to_vec(),
            400,
            "PageView validation failed: url: Cast to string failed for value \"{ nested: true }\" (type Object) at path \"url\"",
        ),
        (
            "pageviews",
            br#"{"url":"/x","deviceType":"fridge"}"#.to_vec(),
            400,
            "PageView validation failed: deviceType: `fridge` is not a valid enum value for path `deviceType`.",
        ),
        (
            "events",
            br#"{"eventName":"x","timestamp":1e400}"#.to_vec(),
            400,
            "",
        ),
        (
            "events",
            br#"{"eventName":"x","durationMs":-5}"#.to_vec(),
            400,
            "Field \"durationMs\" must be a non-negative number",
        ),
        (
            "events",
            br#"[{"eventName":"x"},null]"#.to_vec(),
            400,
            "Each item must be an object",
        ),
        (
            "errors",
            br#"{"message":"m","lineNumber":"abc"}"#.to_vec(),
            400,
            "Error validation failed: lineNumber: Cast to Number failed for value \"abc\" (type string) at path \"lineNumber\"",
        ),
        (
            "performance",
            br#"{"lcp":"fast"}"#.to_vec(),
            400,
            "At least one of",
        ),
        (
            "pageviews",
            b"42".to_vec(),
            400,
            "Payload must be a JSON object or array",
        ),
    ];
    for (channel, body, status, needle) in cases {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(60)
            .collect::<String>();
        let r = post_raw(channel, body).await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{channel} {shown}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "Validation failed", "{shown}: {v}");
        assert!(
            v["details"].as_str().unwrap().contains(needle),
            "{shown}: {v}"
        );
    }

    // 10 MB with a Content-Length: rejected from the header alone.
    let r = post_raw("pageviews", vec![b' '; 10 * 1024 * 1024])
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Payload too large", "maxBytes": 65536})
    );

    // A chunked body (no Content-Length) over the limit: the real body limit catches it.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..20).map(|_| Ok(vec![b' '; 8 * 1024])).collect();
    let r = app
        .http
        .post(app.url("/v1/pageviews"))
        .bearer_auth(&p.public_api_key)
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413, "chunked bodies are limited too");

    app.assert_nothing_stored(&p).await;
    app.stop().await;
}

#[tokio::test]
async fn drop_rules_drop_events_and_count_them() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let rules = DropRules {
        enabled: true,
        mode: DropMode::Blacklist,
        filters: vec![DropFilter {
            key: "env".into(),
            op: FilterOp::Contains,
            value: "dev,test".into(),
        }],
        ..Default::default()
    };
    app.state
        .stores
        .projects
        .set_drop_rules(p.id, &rules)
        .await
        .unwrap();
    app.state.ingestor.keys().invalidate_project(p.id);

    let r = app.ingest("events", &p.public_api_key, &json!([{"eventName": "a", "properties": {"env": "dev"}}, {"eventName": "b", "env": "test"}])).await;
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"success": true, "count": 0, "dropped": 2})
    );
    let r = app.ingest("events", &p.public_api_key, &json!([{"eventName": "c", "properties": {"env": "prod"}}, {"eventName": "d", "properties": {"env": "dev"}}])).await;
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"success": true, "count": 1})
    );
    assert_eq!(app.count(&p, Channel::Events).await, 1);
    assert_eq!(
        app.state.stores.stats.dropped_events(p.id).await.unwrap(),
        3
    );
    // Drop rules apply to events only.
    let r = app
        .ingest(
            "pageviews",
            &p.public_api_key,
            &json!({"url": "/x", "env": "dev"}),
        )
        .await;
    assert_eq!(r.status(), 201);
    app.stop().await;
}

#[tokio::test]
async fn cors_reflects_origins_on_v1_and_answers_every_options() {
    let app = TestApp::spawn(&[("CORS_ALLOWED_ORIGINS", "https://admin.example")]).await;
    let p = app.project().await;
    let r = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/v1/events"))
        .header("origin", "https://site.example")
        .header("access-control-request-headers", "content-type, x-api-key")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://site.example"
    );
    assert_eq!(r.headers()["access-control-allow-credentials"], "true");
    assert_eq!(
        r.headers()["access-control-allow-headers"],
        "content-type, x-api-key"
    );
    let r = app
        .http
        .request(reqwest::Method::OPTIONS, app.url("/anything/at/all"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);

    let r = app
        .http
        .post(app.url("/v1/events"))
        .header("origin", "https://site.example")
        .bearer_auth(&p.public_api_key)
        .json(&json!({"eventName": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://site.example"
    );
    let r = app
        .http
        .get(app.url("/healthz"))
        .header("origin", "https://site.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "*",
        "outside /v1 only allow-listed origins are reflected"
    );
    let r = app
        .http
        .get(app.url("/healthz"))
        .header("origin", "https://admin.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "https://admin.example"
    );
    app.stop().await;
}

#[tokio::test]
async fn health_landing_and_not_found() {
    let app = TestApp::spawn(&[]).await;
    let r = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.json::<Value>().await.unwrap(), json!({"status": "ok"}));
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (
            v["status"].as_str(),
            v["store"]["backend"].as_str(),
            v["redis"]["configured"].as_bool()
        ),
        (Some("ready"), Some(crate::backend::name()), Some(false))
    );
    let r = app.http.get(app.url("/")).send().await.unwrap();
    assert!(r.text().await.unwrap().contains("/v1/events"));
    let r = get_accepting(&app.http, &app, "/nope", "text/html").await;
    assert_eq!(r.status(), 404);
    assert!(r.text().await.unwrap().contains("<h1>404</h1>"));
    let r = app.http.get(app.url("/nope")).send().await.unwrap();
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"error": "Not found", "url": "/nope"})
    );
    let r = app
        .http
        .get(app.url("/static/css/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.headers()["x-request-id"].to_str().unwrap().len() > 4);
    app.stop().await;
}

#[tokio::test]
async fn concurrent_requests_are_group_committed_without_loss() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (http, url, key) = (
            app.http.clone(),
            app.url("/v1/events"),
            p.public_api_key.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let items: Vec<Value> = (0..10)
                .map(|j| json!({"eventName": format!("e{i}-{j}")}))
                .collect();
            http.post(url)
                .bearer_auth(key)
                .json(&json!({"items": items}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    assert_eq!(app.count(&p, Channel::Events).await, 2000);
    app.stop().await;
}

/// The compatibility rules of docs/features/ingestion-compatibility.md over real HTTP: what
/// SuperInsights 1.x stored is stored the same way (R3, R7–R11, R14, R17, R18).
#[tokio::test]
async fn inputs_superinsights_1x_stored_are_stored_the_same_way() {
    use superinsights::domain::{analytics::ErrorFilters, segment::SegmentFilters, timestamp};
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let key = p.public_api_key.clone();
    let post = |path: &'static str, body: Value| {
        app.http
            .post(app.url(path))
            .bearer_auth(&key)
            .json(&body)
            .send()
    };
    let before = timestamp::now_ms();
    let r = post(
        "/v1/events/",
        json!([
            {"eventName": "dur-string", "durationMs": "12"},
            {"eventName": "dur-bool", "durationMs": true},
            {"eventName": "props-string", "properties": "plain text"},
            {"eventName": "ts-garbage", "timestamp": "garbage"},
            {"eventName": "ts-bool", "timestamp": true},
            {"eventName": "ts-digits", "timestamp": "1793527200000"},
            {"eventName": "ts-legacy", "timestamp": "Nov 1, 2026 10:00:00"},
        ]),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201, "a trailing slash is the same route (R17)");
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"success": true, "count": 7})
    );
    let after = timestamp::now_ms();
    let events = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Events, 20)
        .await
        .unwrap();
    let event = |name: &str| {
        events
            .iter()
            .find(|e| e["eventName"] == name)
            .unwrap_or_else(|| panic!("{name} stored"))
            .clone()
    };
    assert_eq!(event("dur-string")["durationMs"].as_f64(), Some(12.0));
    assert_eq!(event("dur-bool")["durationMs"].as_f64(), Some(1.0));
    assert_eq!(event("props-string")["properties"], "plain text");
    for replaced in ["ts-garbage", "ts-bool", "ts-digits"] {
        let e = event(replaced);
        assert_eq!(e["timestampReplaced"], true, "{replaced}: flagged");
        let ms =
            superinsights::domain::timestamp::parse_iso(e["timestamp"].as_str().unwrap()).unwrap();
        assert!((before..=after).contains(&ms), "{replaced}: server time");
    }
    let legacy = event("ts-legacy");
    assert_eq!(legacy["timestamp"], "2026-11-01T10:00:00.000Z");
    assert!(
        legacy.get("timestampReplaced").is_none(),
        "read, not replaced"
    );
    assert!(event("dur-string").get("timestampReplaced").is_none());

    let r = post("/v1/PageViews", json!({"url": 42, "title": true}))
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "routes are case-insensitive (R17)");
    let r = app
        .http
        .post(app.url("/v1/pageviews"))
        .bearer_auth(&key)
        .form(&[("url", "/form"), ("title", "Sent as a form")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "form bodies (R3)");
    let views = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Pageviews, 10)
        .await
        .unwrap();
    assert!(
        views
            .iter()
            .any(|v| v["url"] == "42" && v["title"] == "true")
    );
    assert!(
        views
            .iter()
            .any(|v| v["url"] == "/form" && v["title"] == "Sent as a form")
    );

    // Errors: context as sent, the SDK's ids beside it, and the segment filters find them.
    let r = post(
        "/v1/errors",
        json!({"items": [
            {"message": "from the sdk", "clientId": "c-sdk", "context": {"url": "/a", "userAgent": "UA"}},
            {"message": "hand written", "context": {"clientId": "c-ctx", "userId": "u-ctx"}},
        ]}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 201);
    let errors = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Errors, 10)
        .await
        .unwrap();
    let sdk = errors
        .iter()
        .find(|e| e["message"] == "from the sdk")
        .unwrap();
    assert_eq!(sdk["context"], json!({"url": "/a", "userAgent": "UA"}));
    assert_eq!(sdk["clientId"], "c-sdk");
    let total_for = |segment: SegmentFilters| {
        let stats = app.state.stores.stats.clone();
        let id = p.id;
        async move {
            let range = superinsights::domain::analytics::TimeRange {
                start_ms: 0,
                end_ms: timestamp::now_ms() + 1,
            };
            let filters = ErrorFilters {
                segment,
                ..Default::default()
            };
            stats
                .errors_report(id, range, &filters, 50)
                .await
                .unwrap()
                .total_errors
        }
    };
    for (segment, what) in [
        (
            SegmentFilters {
                client_id: Some("c-sdk".into()),
                ..Default::default()
            },
            "the error's own clientId",
        ),
        (
            SegmentFilters {
                client_id: Some("c-ctx".into()),
                ..Default::default()
            },
            "context.clientId",
        ),
        (
            SegmentFilters {
                user_id: Some("u-ctx".into()),
                ..Default::default()
            },
            "context.userId",
        ),
    ] {
        assert_eq!(total_for(segment).await, 1, "{what}");
    }
    app.stop().await;
}

/// What SuperInsights 1.x refused is refused with its status and message; what it answered
/// with a 500 is a 400 here; nothing of a refused batch is stored.
#[tokio::test]
async fn inputs_superinsights_1x_refused_keep_its_status_and_message() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let cases = [
        (
            "pageviews",
            json!([{"url": "/ok"}, {"url": ""}]),
            "Field \"url\" is required",
        ),
        (
            "pageviews",
            json!({"url": "   "}),
            "PageView validation failed: url: Path `url` is required.",
        ),
        (
            "events",
            json!({"eventName": "e", "durationMs": [5]}),
            "Event validation failed: durationMs: Cast to Number failed for value \"[ 5 ]\" (type Array) at path \"durationMs\"",
        ),
        (
            "events",
            json!({"eventName": "e", "durationMs": "soon"}),
            "Field \"durationMs\" must be a non-negative number",
        ),
        (
            "errors",
            json!([{"message": "m"}, 5]),
            "Each item must be an object",
        ),
        (
            "performance",
            json!({"lcp": "1200"}),
            "At least one of lcp, cls, fid, ttfb or inp must be a number",
        ),
    ];
    for (channel, body, details) in cases {
        let r = app.ingest(channel, &p.public_api_key, &body).await;
        assert_eq!(r.status(), 400, "{channel} {body}");
        assert_eq!(
            r.json::<Value>().await.unwrap(),
            json!({"error": "Validation failed", "details": details}),
            "{channel} {body}"
        );
    }
    app.assert_nothing_stored(&p).await;
    app.stop().await;
}

/// With no GEOIP_DB_PATH, the bundled IP-to-country database (npm ci) gives every document a
/// country: from a forwarded public IPv4 or IPv6 address behind a trusted proxy, and never
/// from an address a client put further left in `X-Forwarded-For`.
#[tokio::test]
async fn countries_come_from_the_bundled_database_with_no_setup() {
    let app = TestApp::spawn(&[("TRUST_PROXY", "1")]).await;
    assert!(
        app.state.config.ingest.geoip_db_path.is_some(),
        "the bundled database was found (run `npm ci`)"
    );
    let p = app.project().await;
    for (forwarded, country) in [
        ("81.2.69.160", "GB"),
        ("2a01:4f8::1", "DE"),
        ("81.2.69.160, 2001:41d0::1", "FR"),
    ] {
        let r = app
            .http
            .post(app.url("/v1/pageviews"))
            .bearer_auth(&p.public_api_key)
            .header("x-forwarded-for", forwarded)
            .json(&json!({"url": format!("/from/{country}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let views = app
            .state
            .stores
            .stats
            .recent(p.id, Channel::Pageviews, 10)
            .await
            .unwrap();
        let view = views
            .iter()
            .find(|v| v["url"] == format!("/from/{country}"))
            .unwrap();
        assert_eq!(view["country"], country, "{forwarded}");
    }
    app.stop().await;
}
