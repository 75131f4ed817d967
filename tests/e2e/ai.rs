//! AI analysis end to end: the real server on a real port, a real SQLite file, and a local
//! OpenAI-compatible stub provider (a small axum app on a loopback port) that records every
//! request. Runs are queued by `POST …/ai-analysis/run` (202) and executed by driving a worker.

use crate::support::{
    TestApp, browser_suite_available, get_json, page, project_id_of, register, run_browser_script,
};
use axum::{Json, Router, extract::State, http::HeaderMap, routing::post};
use serde_json::{Value, json};
use std::{
    sync::{Arc, Mutex},
    time::Duration,
};
use superinsights::{
    domain::{
        ids::DocId,
        model::{Docs, Enrichment, ErrorEvent, Event, PageView, PerformanceMetric, WriteBatch},
        timestamp::now_ms,
    },
    runtime::jobs::{JobHandlers, Outcome, Worker, kinds},
    services::ai_analysis::AiAnalysisHandler,
};

/// One request the stub received: its `Authorization` header and its JSON body.
type Seen = (Option<String>, Value);

/// What the stub answers and how long it waits first; every request it saw.
#[derive(Clone, Default)]
struct Stub {
    reply: Arc<Mutex<String>>,
    delay: Arc<Mutex<Duration>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    async fn start(reply: &str) -> (Self, String) {
        let stub = Stub::default();
        *stub.reply.lock().unwrap() = reply.to_string();
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (stub, url)
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

async fn complete(
    State(stub): State<Stub>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Json<Value> {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    stub.seen.lock().unwrap().push((auth, body));
    let delay = *stub.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let content = stub.reply.lock().unwrap().clone();
    Json(json!({
        "id": "cmpl-1",
        "model": "stub/answering-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 1234, "completion_tokens": 56, "total_tokens": 1290},
    }))
}

/// A recognisable IP and an unassigned country code seeded on every document, which must
/// never reach the provider.
const SECRET_IP: &str = "203.0.113.77";
const SECRET_COUNTRY: &str = "QZ";

fn private() -> Enrichment {
    Enrichment {
        ip: Some(SECRET_IP.into()),
        country: Some(SECRET_COUNTRY.into()),
        is_bot: false,
        timestamp_replaced: false,
    }
}

/// Seeds page views, timed events, errors and web vitals for the project, all carrying an IP
/// and a country.
async fn seed(app: &TestApp, project: DocId) {
    let now = now_ms();
    let views = (0..6)
        .map(|i| PageView {
            id: DocId::new(),
            url: if i % 2 == 0 {
                "/pricing".into()
            } else {
                "/checkout".into()
            },
            title: Some("Pricing page".into()),
            referrer: Some("https://news.example/".into()),
            session_id: Some(format!("s{i}")),
            client_id: Some(format!("client-{}", i % 3)),
            utm_source: Some("newsletter".into()),
            utm_medium: None,
            utm_campaign: None,
            utm_term: None,
            utm_content: None,
            device_type: None,
            browser: Some("Firefox".into()),
            os: Some("Linux".into()),
            enrichment: private(),
            timestamp: now - i * 60_000,
        })
        .collect();
    let events = (0..4)
        .map(|i| Event {
            id: DocId::new(),
            event_name: "checkout_submit".into(),
            properties: json!({"plan": "pro", "cartValue": 40 + i}),
            duration_ms: Some(250.0 * (i + 1) as f64),
            session_id: Some("s1".into()),
            client_id: Some("client-1".into()),
            enrichment: private(),
            timestamp: now - i * 60_000,
        })
        .collect();
    let errors = (0..3)
        .map(|i| ErrorEvent {
            id: DocId::new(),
            message: "TypeError: cart is undefined".into(),
            error_type: Some("window_error".into()),
            stack_trace: Some("at pay (checkout.js:10:5)".into()),
            source_file: Some("checkout.js".into()),
            line_number: Some(10.0),
            column_number: Some(5.0),
            browser: Some("Firefox".into()),
            browser_version: None,
            os: Some("Linux".into()),
            os_version: None,
            device_type: None,
            context: Some(json!({"url": "https://shop.example/checkout"})),
            fingerprint: superinsights::domain::fingerprint::error_fingerprint(
                "TypeError: cart is undefined",
                Some("at pay (checkout.js:10:5)"),
            ),
            client_id: None,
            user_id: None,
            enrichment: private(),
            timestamp: now - i * 60_000,
        })
        .collect();
    let vitals = (0..4)
        .map(|i| PerformanceMetric {
            id: DocId::new(),
            metric_type: "web_vitals_aggregate".into(),
            lcp: Some(1800.0 + 900.0 * i as f64),
            cls: Some(0.02),
            fid: None,
            ttfb: Some(300.0),
            inp: None,
            url: Some("https://shop.example/pricing".into()),
            client_id: Some("client-2".into()),
            device_type: Some("desktop".into()),
            browser: Some("Firefox".into()),
            connection_type: None,
            properties: json!({}),
            enrichment: private(),
            timestamp: now - i * 60_000,
        })
        .collect();
    let batch = |docs| WriteBatch {
        batch_id: DocId::new(),
        project_id: project,
        docs,
        dropped: 0,
    };
    app.state
        .stores
        .events
        .write(&[
            batch(Docs::Pageviews(views)),
            batch(Docs::Events(events)),
            batch(Docs::Errors(errors)),
            batch(Docs::Performance(vitals)),
        ])
        .await
        .unwrap();
}

/// A worker running AI jobs with the app's own service (the app's workers are off: JOB_WORKERS=0).
fn worker(app: &TestApp) -> Worker {
    Worker::new(
        app.state.jobs.clone(),
        JobHandlers::new().register(
            kinds::AI_ANALYSIS,
            Arc::new(AiAnalysisHandler(app.state.ai.clone())),
        ),
    )
}

/// Signs up, seeds data, and opens the AI page; returns (client, project id, CSRF token).
/// The audit log's action codes starting with `prefix`, oldest first, with their emails.
async fn logged(app: &TestApp, prefix: &str) -> Vec<(String, String)> {
    let page = app
        .state
        .stores
        .logs
        .query_logs(&superinsights::domain::audit::LogQuery {
            page: 1,
            limit: 200,
            ..Default::default()
        })
        .await
        .unwrap();
    page.entries
        .iter()
        .rev()
        .filter_map(|l| {
            let code = l.action_code.clone()?;
            code.starts_with(prefix)
                .then(|| (code, l.email.clone().unwrap_or_default()))
        })
        .collect()
}

async fn signed_in(app: &TestApp, email: &str) -> (reqwest::Client, String, String) {
    let (client, settings) = register(app, email).await;
    let id = project_id_of(&settings);
    seed(app, DocId::parse(&id).unwrap()).await;
    let (status, html) = page(&client, app, &format!("/projects/{id}/ai-analysis")).await;
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("AI Analysis"),
        "the sub-navigation links the page"
    );
    let at = html.find("data-csrf=\"").expect("csrf on the page") + "data-csrf=\"".len();
    let csrf = html[at..].split('"').next().unwrap().to_string();
    (client, id, csrf)
}

async fn post_run(
    client: &reqwest::Client,
    app: &TestApp,
    id: &str,
    csrf: &str,
    body: Value,
) -> (u16, Value) {
    let r = client
        .post(app.url(&format!("/projects/{id}/ai-analysis/run")))
        .header("accept", "application/json")
        .header("x-csrf-token", csrf)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

const REPLY: &str = "## Summary\nCheckout is slow.\n\n<script>window.__pwned=1</script>\n\n<img src=x onerror=\"window.__pwned=2\">\n\n## Highlights / anomalies\nNone.";

#[tokio::test]
async fn a_run_is_queued_then_sends_the_fixed_instructions_payload_and_samples_but_no_ips_or_countries()
 {
    let (stub, url) = Stub::start(REPLY).await;
    let app = TestApp::spawn(&[
        ("OPENROUTER_BASE_URL", &url),
        ("OPENROUTER_API_KEY", "sk-test-key"),
        ("AI_ANALYSIS_MODEL", "test/model-a"),
        ("AI_ANALYSIS_TEMPERATURE", "0.3"),
        ("AI_ANALYSIS_MAX_TOKENS", "512"),
        ("JOB_WORKERS", "0"),
    ])
    .await;
    let (client, id, csrf) = signed_in(&app, "ai-owner@example.com").await;

    // CSRF and validation come first.
    let (status, body) = post_run(&client, &app, &id, "wrong", json!({})).await;
    assert_eq!((status, body["success"].clone()), (403, json!(false)));
    let (status, body) = post_run(
        &client,
        &app,
        &id,
        &csrf,
        json!({"mode": "custom", "start": "2024-01-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        (status, body),
        (
            400,
            json!({"success": false, "error": "Range too large (max 90 days)"})
        )
    );
    let (status, body) = post_run(
        &client,
        &app,
        &id,
        &csrf,
        json!({"presetId": "builtin:nope"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (400, json!("Preset not found"))
    );

    let (status, body) = post_run(
        &client,
        &app,
        &id,
        &csrf,
        json!({"timeframe": "24h", "presetId": "builtin:errors", "clientId": "client-1"}),
    )
    .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["success"], true);
    let run_id = body["runId"].as_str().unwrap().to_string();
    let (_, run) = get_json(
        &client,
        &app,
        &format!("/projects/{id}/ai-analysis/runs/{run_id}"),
    )
    .await;
    assert_eq!(
        run["data"]["status"], "queued",
        "answered before the model is called"
    );
    assert!(stub.requests().is_empty());

    assert_eq!(
        worker(&app).run_once().await.unwrap(),
        Outcome::Completed(DocId::parse(&run_id).unwrap())
    );

    let (status, run) = get_json(
        &client,
        &app,
        &format!("/projects/{id}/ai-analysis/runs/{run_id}"),
    )
    .await;
    assert_eq!(status, 200);
    let run = &run["data"];
    assert_eq!(run["status"], "completed");
    assert_eq!(run["resultMarkdown"], REPLY);
    assert_eq!(run["model"], "stub/answering-model");
    assert_eq!(run["tokenUsage"]["total_tokens"], 1290);
    assert_eq!(run["presetId"], "builtin:errors");
    assert_eq!(run["timeframePreset"], "24h");
    assert!(run["durationMs"].as_i64().unwrap() >= 0);
    let html = run["resultHtml"].as_str().unwrap();
    assert!(html.contains("<h2>Summary</h2>"), "{html}");
    assert!(
        !html.contains("<script") && !html.contains("onerror") && !html.contains("__pwned"),
        "{html}"
    );

    let requests = stub.requests();
    assert_eq!(requests.len(), 1);
    let (auth, request) = &requests[0];
    assert_eq!(auth.as_deref(), Some("Bearer sk-test-key"));
    assert_eq!(request["model"], "test/model-a");
    assert_eq!(request["temperature"], 0.3);
    assert_eq!(request["max_tokens"], 512);
    assert_eq!(request["stream"], false);
    let messages = request["messages"].as_array().unwrap();
    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "Return ONLY Markdown."})
    );
    let user = messages[1]["content"].as_str().unwrap();
    for heading in superinsights::ai::prompt::HEADINGS {
        assert!(
            user.contains(&format!("## {heading}\n")),
            "heading {heading}"
        );
    }
    assert!(user.contains("Preset focus instructions"));
    assert!(
        user.contains("rank the error fingerprints"),
        "the builtin's focus"
    );
    let payload: Value =
        serde_json::from_str(&user[user.find("Payload (JSON):\n").unwrap() + 16..]).unwrap();
    for section in [
        "meta",
        "pageviews",
        "events",
        "timedEvents",
        "errors",
        "performance",
        "samples",
    ] {
        assert!(payload.get(section).is_some(), "section {section}");
    }
    assert_eq!(payload["meta"]["segment"]["clientId"], "client-1");
    // The segment applies: client-1 saw /checkout only (views 1, 3, 5 → client-1, client-0, client-2).
    assert_eq!(
        payload["pageviews"]["totalViews"], 2,
        "{}",
        payload["pageviews"]
    );
    assert_eq!(payload["events"]["totalEvents"], 4);
    assert_eq!(payload["timedEvents"][0]["eventName"], "checkout_submit");
    assert_eq!(payload["timedEvents"][0]["maxMs"], 1000.0);
    assert_eq!(
        payload["samples"]["timedEvents"]["checkout_submit"][0]["durationMs"], 1000.0,
        "slowest first"
    );
    assert_eq!(
        payload["samples"]["events"]["checkout_submit"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    assert!(
        payload["samples"]["pageviews"].get("/pricing").is_some()
            || payload["samples"]["pageviews"].get("/checkout").is_some()
    );
    // Errors and vitals carry no client-1 context/properties here except vitals' clientId.
    assert_eq!(
        payload["errors"]["totalErrors"], 0,
        "errors match context.clientId, which the seed leaves unset"
    );

    let sent = serde_json::to_string(request).unwrap();
    assert!(!sent.contains(SECRET_IP), "an IP was sent");
    assert!(!sent.contains(SECRET_COUNTRY), "a country was sent");
    assert!(
        !sent.contains("\\\"ip\\\"") && !sent.contains("\\\"country\\\""),
        "ip/country fields were sent"
    );

    // History and the not-found answer.
    let (_, list) = get_json(
        &client,
        &app,
        &format!("/projects/{id}/ai-analysis/runs?limit=5"),
    )
    .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["_id"], run_id.as_str());
    let (status, missing) = get_json(
        &client,
        &app,
        &format!("/projects/{id}/ai-analysis/runs/{}", DocId::new()),
    )
    .await;
    assert_eq!(
        (status, missing),
        (404, json!({"success": false, "error": "Run not found"}))
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unsegmented_run_sends_error_and_web_vital_samples_without_ips() {
    let (stub, url) = Stub::start("## Summary\nok").await;
    let app = TestApp::spawn(&[
        ("OPENAI_BASE_URL", &url),
        ("OPENAI_API_KEY", "sk-openai"),
        ("JOB_WORKERS", "0"),
    ])
    .await;
    let (client, id, csrf) = signed_in(&app, "ai-all@example.com").await;
    let (status, _) = post_run(&client, &app, &id, &csrf, json!({"timeframe": "24h"})).await;
    assert_eq!(status, 202);
    assert!(matches!(
        worker(&app).run_once().await.unwrap(),
        Outcome::Completed(_)
    ));
    let (auth, request) = stub.requests().pop().unwrap();
    assert_eq!(auth.as_deref(), Some("Bearer sk-openai"));
    let user = request["messages"][1]["content"].as_str().unwrap();
    assert!(
        !user.contains("Preset focus instructions"),
        "no preset, no focus"
    );
    let payload: Value =
        serde_json::from_str(&user[user.find("Payload (JSON):\n").unwrap() + 16..]).unwrap();
    assert_eq!(payload["pageviews"]["totalViews"], 6);
    assert_eq!(payload["errors"]["totalErrors"], 3);
    let fp = payload["errors"]["topFingerprints"][0].clone();
    assert_eq!(fp["count"], 3);
    assert_eq!(fp["errorType"], "window_error");
    let samples = &payload["samples"]["errors"][fp["fingerprint"].as_str().unwrap()];
    assert_eq!(samples[0]["stackTrace"], "at pay (checkout.js:10:5)");
    // lcp values 1800, 2700, 3600, 4500: p95 (lower nearest rank) is 3600; records ≥ it, worst first.
    let lcp = &payload["samples"]["webVitals"]["lcp_gte_p95"];
    assert_eq!(lcp["threshold"], 3600.0);
    assert_eq!(
        lcp["records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["lcp"].clone())
            .collect::<Vec<_>>(),
        [json!(4500.0), json!(3600.0)]
    );
    assert_eq!(
        payload["samples"]["pageviews"]["/pricing"][0]["title"],
        "Pricing page"
    );
    let sent = serde_json::to_string(&request).unwrap();
    assert!(!sent.contains(SECRET_IP) && !sent.contains(SECRET_COUNTRY));
    app.stop().await;
}

#[tokio::test]
async fn a_provider_slower_than_the_timeout_fails_the_run_with_a_timeout_error() {
    let (stub, url) = Stub::start("## Summary\nlate").await;
    *stub.delay.lock().unwrap() = Duration::from_secs(3);
    let app = TestApp::spawn(&[
        ("OPENROUTER_BASE_URL", &url),
        ("OPENROUTER_API_KEY", "k"),
        ("AI_ANALYSIS_TIMEOUT_MS", "300"),
        ("JOB_WORKERS", "0"),
    ])
    .await;
    let (client, id, csrf) = signed_in(&app, "ai-timeout@example.com").await;
    let (_, body) = post_run(&client, &app, &id, &csrf, json!({"timeframe": "7d"})).await;
    let run_id = body["runId"].as_str().unwrap().to_string();
    let started = std::time::Instant::now();
    assert_eq!(
        worker(&app).run_once().await.unwrap(),
        Outcome::Failed(DocId::parse(&run_id).unwrap())
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "the call was abandoned at the timeout"
    );
    let (_, run) = get_json(
        &client,
        &app,
        &format!("/projects/{id}/ai-analysis/runs/{run_id}"),
    )
    .await;
    assert_eq!(run["data"]["status"], "failed");
    assert_eq!(
        run["data"]["errorMessage"],
        "the AI provider did not answer within 300 ms"
    );
    assert_eq!(run["data"]["resultMarkdown"], Value::Null);
    assert_eq!(stub.requests().len(), 1);
    let who = "ai-timeout@example.com".to_string();
    assert_eq!(
        logged(&app, "AI_ANALYSIS_RUN").await,
        vec![
            ("AI_ANALYSIS_RUN_STARTED".to_string(), who.clone()),
            ("AI_ANALYSIS_RUN_FAILED".to_string(), who)
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn model_calls_are_rate_limited_per_client_ip() {
    let app = TestApp::spawn(&[("JOB_WORKERS", "0"), ("RATE_LIMIT_AI", "2/60s")]).await;
    let (client, id, csrf) = signed_in(&app, "ai-limit@example.com").await;
    for _ in 0..2 {
        let (status, _) = post_run(&client, &app, &id, &csrf, json!({"timeframe": "7d"})).await;
        assert_eq!(status, 202);
    }
    let (status, body) = post_run(&client, &app, &id, &csrf, json!({"timeframe": "7d"})).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "Rate limit exceeded");
    // Reading runs is not limited.
    let (status, runs) = get_json(&client, &app, &format!("/projects/{id}/ai-analysis/runs")).await;
    assert_eq!(status, 200);
    assert_eq!(
        runs["data"].as_array().unwrap().len(),
        2,
        "the refused run was not created"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_a_provider_key_the_run_writes_the_statistical_digest() {
    let app = TestApp::spawn(&[("JOB_WORKERS", "0")]).await;
    let (client, id, csrf) = signed_in(&app, "ai-digest@example.com").await;
    let (status, body) = post_run(&client, &app, &id, &csrf, json!({"timeframe": "7d"})).await;
    assert_eq!(status, 202);
    let run_id = body["runId"].as_str().unwrap().to_string();
    assert!(matches!(
        worker(&app).run_once().await.unwrap(),
        Outcome::Completed(_)
    ));
    let (_, run) = get_json(
        &client,
        &app,
        &format!("/projects/{id}/ai-analysis/runs/{run_id}"),
    )
    .await;
    let run = &run["data"];
    assert_eq!(run["status"], "completed");
    assert_eq!(run["model"], "statistical-digest");
    let md = run["resultMarkdown"].as_str().unwrap();
    assert!(md.contains("No AI model was used"), "{md}");
    for heading in superinsights::ai::prompt::HEADINGS {
        assert!(md.contains(&format!("## {heading}\n")), "heading {heading}");
    }
    assert!(md.contains("Page views: new (0 → 6)"), "{md}");
    // durations 250, 500, 750, 1000: p95 is index ⌊0.95·3⌋ = 2 (lower nearest rank).
    assert!(
        md.contains("`checkout_submit`: p95 750 ms, p50 500 ms, max 1000 ms over 4 occurrences"),
        "{md}"
    );
    assert!(md.contains("× 3: TypeError: cart is undefined"), "{md}");
    assert!(!md.contains(SECRET_IP));
    let who = "ai-digest@example.com".to_string();
    assert_eq!(
        logged(&app, "AI_ANALYSIS_RUN").await,
        vec![
            ("AI_ANALYSIS_RUN_STARTED".to_string(), who.clone()),
            ("AI_ANALYSIS_RUN_COMPLETED".to_string(), who)
        ],
        "the worker's entry names who asked"
    );
    app.stop().await;
}

#[tokio::test]
async fn presets_are_versioned_owner_only_and_builtins_are_read_only() {
    let (_stub, url) = Stub::start(
        "Here you go: {\"name\": \"Checkout focus\", \"description\": \"d\", \"visibility\": \"public\", \"definition\": {\"focusAreas\": [\"checkout\"], \"promptTemplate\": \"Look at checkout.\"}} done",
    )
    .await;
    let app = TestApp::spawn(&[
        ("OPENROUTER_BASE_URL", &url),
        ("OPENROUTER_API_KEY", "k"),
        ("JOB_WORKERS", "0"),
    ])
    .await;
    let (alice, _, alice_csrf) = signed_in(&app, "preset-alice@example.com").await;
    let (bob, _, bob_csrf) = signed_in(&app, "preset-bob@example.com").await;
    let send =
        |client: &reqwest::Client, method: reqwest::Method, path: &str, csrf: &str, body: Value| {
            let req = client
                .request(method, app.url(path))
                .header("accept", "application/json")
                .header("x-csrf-token", csrf)
                .json(&body);
            async move {
                let r = req.send().await.unwrap();
                (r.status().as_u16(), r.json::<Value>().await.unwrap())
            }
        };
    use reqwest::Method;
    let (status, created) = send(
        &alice,
        Method::POST,
        "/ai-analysis/presets",
        &alice_csrf,
        json!({"name": "Mine", "definition": {"promptTemplate": "p"}, "tags": ["x"]}),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let pid = created["data"]["_id"].as_str().unwrap().to_string();
    assert_eq!(created["data"]["version"], 1);
    assert_eq!(created["data"]["visibility"], "private");
    let (status, bad) = send(
        &alice,
        Method::POST,
        "/ai-analysis/presets",
        &alice_csrf,
        json!({"name": "n".repeat(121), "definition": {}}),
    )
    .await;
    assert_eq!(
        (status, bad["error"].clone()),
        (400, json!("name must be at most 120 characters"))
    );

    let (status, edited) = send(
        &alice,
        Method::PUT,
        &format!("/ai-analysis/presets/{pid}"),
        &alice_csrf,
        json!({"description": "better"}),
    )
    .await;
    assert_eq!(
        (
            status,
            edited["data"]["version"].clone(),
            edited["data"]["description"].clone()
        ),
        (200, json!(2), json!("better"))
    );
    let (status, _) = get_json(&bob, &app, &format!("/ai-analysis/presets/{pid}")).await;
    assert_eq!(status, 403, "private presets are the owner's");
    let (status, published) = send(
        &alice,
        Method::POST,
        &format!("/ai-analysis/presets/{pid}/publish"),
        &alice_csrf,
        json!({}),
    )
    .await;
    assert_eq!(
        (status, published["data"]["version"].clone()),
        (200, json!(3))
    );
    let (_, listed) = get_json(&bob, &app, "/ai-analysis/presets").await;
    assert_eq!(listed["data"]["builtins"].as_array().unwrap().len(), 4);
    assert_eq!(listed["data"]["public"][0]["_id"], pid.as_str());
    assert_eq!(listed["data"]["mine"], json!([]));
    let (status, _) = send(
        &bob,
        Method::PUT,
        &format!("/ai-analysis/presets/{pid}"),
        &bob_csrf,
        json!({"name": "stolen"}),
    )
    .await;
    assert_eq!(status, 403, "only the owner edits");
    let (status, _) = send(
        &bob,
        Method::DELETE,
        &format!("/ai-analysis/presets/{pid}"),
        &bob_csrf,
        json!({}),
    )
    .await;
    assert_eq!(status, 403);
    let (status, body) = send(
        &alice,
        Method::PUT,
        "/ai-analysis/presets/builtin:traffic",
        &alice_csrf,
        json!({"name": "x"}),
    )
    .await;
    assert_eq!(
        (status, body["error"].clone()),
        (403, json!("Builtin presets are read-only"))
    );
    let (status, builtin) = get_json(&bob, &app, "/ai-analysis/presets/builtin:traffic").await;
    assert_eq!(
        (status, builtin["data"]["name"].clone()),
        (200, json!("Traffic analysis"))
    );

    let (status, generated) = send(
        &bob,
        Method::POST,
        "/ai-analysis/presets/ai-generate",
        &bob_csrf,
        json!({"goal": "Understand checkout drop-off"}),
    )
    .await;
    assert_eq!(status, 201, "{generated}");
    assert_eq!(generated["data"]["name"], "Checkout focus");
    assert_eq!(
        generated["data"]["visibility"], "private",
        "the request's visibility, not the model's"
    );
    let gid = generated["data"]["_id"].as_str().unwrap().to_string();
    let (status, refined) = send(
        &bob,
        Method::POST,
        &format!("/ai-analysis/presets/{gid}/ai-refine"),
        &bob_csrf,
        json!({"goal": "shorter"}),
    )
    .await;
    assert_eq!(
        (status, refined["data"]["version"].clone()),
        (200, json!(2))
    );
    let (status, _) = send(
        &bob,
        Method::POST,
        &format!("/ai-analysis/presets/{gid}/ai-refine"),
        &bob_csrf,
        json!({}),
    )
    .await;
    assert_eq!(status, 400, "a goal is required");

    let (status, _) = send(
        &alice,
        Method::DELETE,
        &format!("/ai-analysis/presets/{pid}"),
        &alice_csrf,
        json!({}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = get_json(&alice, &app, &format!("/ai-analysis/presets/{pid}")).await;
    assert_eq!(status, 404);
    let codes: Vec<String> = logged(&app, "AI_ANALYSIS_PRESET")
        .await
        .into_iter()
        .map(|(code, _)| code.trim_start_matches("AI_ANALYSIS_PRESET_").to_string())
        .collect();
    assert_eq!(
        codes,
        [
            "CREATED",
            "UPDATED",
            "PUBLISHED",
            "AI_GENERATED",
            "AI_REFINED",
            "DELETED"
        ],
        "every preset change is in the audit log; refused ones are not"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_page_runs_an_analysis_shows_progress_and_never_executes_injected_html_in_chromium() {
    if !browser_suite_available("the AI browser test") {
        return;
    }
    let (stub, url) = Stub::start(
        "## Summary\nCheckout is **slow**.\n\n<script>window.__pwned=1</script>\n\n<img src=x onerror=\"window.__pwned=2\">\n\n## Recommendations (Prioritized)\n1. Fix it.",
    )
    .await;
    // Slow enough for the page to show `running` while the model "thinks".
    *stub.delay.lock().unwrap() = Duration::from_millis(1500);
    // The app's own worker runs the job here (JOB_WORKERS defaults to 1).
    let app = TestApp::spawn(&[("OPENROUTER_BASE_URL", &url), ("OPENROUTER_API_KEY", "k")]).await;
    let (_, settings) = register(&app, "ai-browser@example.com").await;
    let id = project_id_of(&settings);
    seed(&app, DocId::parse(&id).unwrap()).await;
    run_browser_script(
        &app,
        "ai.test.mjs",
        &[
            ("SI_EMAIL", "ai-browser@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
        ],
    )
    .await;
    // The browser's run reached the provider with its preset and segment.
    let (_, request) = stub.requests().pop().expect("the provider was called");
    let user = request["messages"][1]["content"].as_str().unwrap();
    assert!(user.contains("Preset focus instructions"));
    assert!(
        user.contains("\"utmSource\":\"newsletter\""),
        "the segment filter row was sent"
    );
    app.stop().await;
}
