//! The page-views and events pages over real HTTP: HTML for browsers, JSON for JSON-only clients
//! (SuperInsights 1.x shapes, as the `si` CLI reads them), filters, paging that keeps them,
//! `live.json` (on public links too), the `$click` detail, escaping of untrusted names and
//! properties, access control; and the events page's live refresh in headless Chromium
//! (`tests/browser/events.test.mjs`).

use crate::support::{
    TestApp, browser, browser_suite_available, get_accepting as get, html_of, json_of,
    member_with_project, run_browser_script,
};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use superinsights::domain::{ids::DocId, timestamp::now_ms, timestamp::to_iso};

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn page_views_answer_html_or_json_with_device_prefix_and_segment_filters() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, key) = member_with_project(&app, "pageviews@example.com").await;
    let views = json!([
        {"url": "/blog/a", "clientId": "c1", "deviceType": "mobile"},
        {"url": "/blog/a", "clientId": "c2", "deviceType": "desktop"},
        {"url": "/blog/b", "deviceType": "mobile"},
        {"url": "/50%_off", "clientId": "c3", "deviceType": "desktop", "browser": "Firefox"},
        {"url": "/50x_off", "clientId": "c3", "deviceType": "desktop"},
        {"url": "/<script>alert(1)</script>", "clientId": "c4", "deviceType": "tablet"},
    ]);
    assert_eq!(app.ingest("pageviews", &key, &views).await.status(), 201);
    let base = format!("/projects/{id}/pageviews");

    let all = json_of(&client, &app, &format!("{base}?timeframe=24h")).await;
    assert_eq!(
        keys(&all),
        set(&[
            "timeframe",
            "totalViews",
            "uniqueVisitors",
            "topPages",
            "viewsByDay",
            "series"
        ])
    );
    // The chart's series beside 1.x's day list: a day of hours, every view counted.
    assert_eq!(all["series"]["bucket"], "hour");
    assert_eq!(all["series"]["points"].as_array().unwrap().len(), 25);
    assert_eq!(all["timeframe"], "24h");
    assert_eq!(all["totalViews"], 6);
    assert_eq!(all["uniqueVisitors"], 5, "c1..c4 and one for no clientId");
    assert_eq!(
        all["topPages"][0],
        json!({"url": "/blog/a", "views": 2, "uniqueVisitors": 2})
    );
    assert_eq!(all["topPages"].as_array().unwrap().len(), 5);
    assert_eq!(all["viewsByDay"].as_array().unwrap().len(), 1);
    assert_eq!(all["viewsByDay"][0]["count"], 6);

    let with = async |query: &[(&str, &str)]| {
        let r = client
            .get(app.url(&base))
            .query(query)
            .header("accept", "application/json")
            .send()
            .await
            .unwrap();
        r.json::<Value>().await.unwrap()
    };
    let literal = with(&[("timeframe", "24h"), ("urlPrefix", " /50%_ ")]).await;
    assert_eq!(
        literal["topPages"],
        json!([{"url": "/50%_off", "views": 1, "uniqueVisitors": 1}]),
        "the prefix is literal and trimmed"
    );
    assert_eq!(
        with(&[("urlPrefix", "/blog/"), ("deviceType", "mobile")]).await["totalViews"],
        2
    );
    assert_eq!(
        with(&[("deviceType", "all")]).await["totalViews"],
        6,
        "`all` devices means every device"
    );
    assert_eq!(with(&[("clientId", "c3")]).await["totalViews"], 2);
    assert_eq!(with(&[("browser", "Firefox")]).await["totalViews"], 1);
    assert_eq!(
        with(&[("timeframe", "")]).await["timeframe"],
        "7d",
        "an empty timeframe is the default"
    );

    // Browsers and `*/*` get the page; untrusted URLs are escaped.
    for accept in [
        "text/html,application/xhtml+xml,*/*;q=0.8",
        "*/*",
        "application/json, text/html",
    ] {
        let html = html_of(&client, &app, &format!("{base}?timeframe=24h"), accept).await;
        assert!(html.contains("Average views per visitor"));
        assert!(html.contains(">1.20<"), "6 views / 5 visitors");
        assert!(html.contains("/&#60;script&#62;alert(1)&#60;/script&#62;"));
        assert!(!html.contains("<script>alert(1)"));
        assert!(html.contains(r#"id="pageviews-data""#));
        assert!(html.contains(r#"aria-current="page">Page views<"#));
    }
    let html = html_of(
        &client,
        &app,
        &format!("{base}?timeframe=24h&urlPrefix=%2Fblog%2F&deviceType=mobile&clientId=c1"),
        "text/html",
    )
    .await;
    assert!(
        html.contains(r#"name="urlPrefix" value="/blog/""#),
        "the form keeps the filters"
    );
    assert!(html.contains(r#"<option value="mobile" selected>"#));
    assert!(html.contains(r#"name="clientId" value="c1""#));
    assert!(html.contains(r#"<strong id="total-views">1</strong>"#));
    app.stop().await;
}

/// Every analytics view rejects a parameter it does not take, or a value its filter cannot use,
/// with a 400 naming the parameter (JSON for JSON clients, the error page for browsers) before
/// any store is asked; what it takes still answers.
#[tokio::test]
async fn bad_query_parameters_are_400s_naming_the_parameter_on_every_view() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, _) = member_with_project(&app, "badparams@example.com").await;
    let base = format!("/projects/{id}");
    let cases = [
        ("dashboard/data?timeframe=2w", "timeframe"),
        ("dashboard?timeframe=1w", "timeframe"),
        ("pageviews?deviceType=watch", "deviceType"),
        ("pageviews?eventName=x", "eventName"),
        ("pageviews?meta=%5B1%5D", "meta"),
        ("events?recentLimit=500", "recentLimit"),
        ("events?recentPage=0", "recentPage"),
        ("events?os=Linux", "os"),
        ("events/live.json?recentLimit=abc", "recentLimit"),
        ("events/signup?urlPrefix=%2F", "urlPrefix"),
        ("errors?browser=Opera", "browser"),
        ("errors/abc123?clientId=c1", "clientId"),
        ("performance?deviceType=phone", "deviceType"),
        ("performance?typo=1", "typo"),
    ];
    for (path, parameter) in cases {
        let r = get(&client, &app, &format!("{base}/{path}"), "application/json").await;
        assert_eq!(r.status(), 400, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        assert!(
            body["error"].as_str().unwrap().contains(parameter),
            "{path}: {body}"
        );
    }
    let r = get(
        &client,
        &app,
        &format!("{base}/pageviews?deviceType=watch"),
        "text/html",
    )
    .await;
    assert_eq!(r.status(), 400);
    let html = r.text().await.unwrap();
    assert!(html.contains("deviceType"), "the error page names it");
    for path in [
        "dashboard/data?timeframe=30d",
        "pageviews?deviceType=all&browser=Any&urlPrefix=",
        "events?recentPage=2&recentLimit=50&clientId=c1",
        "errors?browser=all&errorType=TypeError",
        "performance?deviceType=tablet&browser=Safari",
    ] {
        let r = get(&client, &app, &format!("{base}/{path}"), "application/json").await;
        assert_eq!(r.status(), 200, "{path}");
    }
    app.stop().await;
}

/// Fourteen events a few seconds old: two `$click`, three timed `search`, nine `signup`.
async fn seed_events(app: &TestApp, key: &str) {
    let now = now_ms();
    let mut events = vec![
        json!({"eventName": "$click", "clientId": "c1", "timestamp": to_iso(now - 1000),
               "properties": {"tag": "button", "text": "<b>Buy</b>"}}),
        json!({"eventName": "$click", "clientId": "c2", "timestamp": to_iso(now - 2000),
               "properties": {"tag": "a"}}),
        json!({"eventName": "search", "clientId": "c1", "durationMs": 10, "timestamp": to_iso(now - 3000),
               "properties": {"q": "x"}}),
        json!({"eventName": "search", "clientId": "c2", "durationMs": 30, "timestamp": to_iso(now - 4000)}),
        json!({"eventName": "search", "durationMs": 20, "timestamp": to_iso(now - 5000)}),
    ];
    for i in 0..9 {
        events.push(json!({
            "eventName": "signup",
            "clientId": format!("c{}", i % 2),
            "timestamp": to_iso(now - 10_000 - i * 1000),
            "properties": {"plan": if i % 3 == 0 { "pro" } else { "free" }, "userId": format!("u{i}")},
        }));
    }
    assert_eq!(
        app.ingest("events", key, &json!(events)).await.status(),
        201
    );
}

#[tokio::test]
async fn events_answer_html_or_json_with_filters_paging_live_and_detail() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, key) = member_with_project(&app, "events@example.com").await;
    seed_events(&app, &key).await;
    let base = format!("/projects/{id}/events");

    let all = json_of(&client, &app, &base).await;
    assert_eq!(
        keys(&all),
        set(&[
            "timeframe",
            "eventName",
            "totalEvents",
            "uniqueEventNames",
            "topEvents",
            "recentOccurrences",
            "recentPagination",
            "eventsByDay",
            "timedEvents",
            "implausibleDurations",
            "series"
        ])
    );
    assert_eq!(all["implausibleDurations"], 0);
    assert_eq!(all["timeframe"], "7d");
    assert_eq!(all["eventName"], "");
    assert_eq!(all["totalEvents"], 14);
    assert_eq!(
        all["uniqueEventNames"],
        json!(["$click", "search", "signup"])
    );
    assert_eq!(
        all["topEvents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (
                e["eventName"].as_str().unwrap(),
                e["count"].as_u64().unwrap()
            ))
            .collect::<Vec<_>>(),
        vec![("signup", 9), ("search", 3), ("$click", 2)]
    );
    assert!(all["topEvents"][0]["mostRecentTimestamp"].is_string());
    assert_eq!(
        all["recentPagination"],
        json!({"page": 1, "limit": 10, "total": 14, "totalPages": 2})
    );
    let first = &all["recentOccurrences"][0];
    assert_eq!(
        keys(first),
        set(&["_id", "eventName", "timestamp", "properties"]),
        "no session and no duration on this one: omitted"
    );
    assert_eq!(first["eventName"], "$click");
    assert_eq!(all["recentOccurrences"][2]["durationMs"], 10.0);
    assert_eq!(
        all["timedEvents"],
        json!([{"eventName": "search", "count": 3, "avgMs": 20.0, "maxMs": 30.0, "p50Ms": 20.0, "p95Ms": 20.0}]),
        "exact lower-nearest-rank percentiles of [10, 20, 30]"
    );
    assert_eq!(all["eventsByDay"][0]["count"], 14);

    let page2 = json_of(&client, &app, &format!("{base}?recentPage=2&recentLimit=5")).await;
    assert_eq!(
        page2["recentPagination"],
        json!({"page": 2, "limit": 5, "total": 14, "totalPages": 3})
    );
    assert_eq!(page2["recentOccurrences"].as_array().unwrap().len(), 5);
    assert_eq!(page2["recentOccurrences"][0]["properties"]["userId"], "u0");
    let past = json_of(
        &client,
        &app,
        &format!("{base}?recentPage=9&recentLimit=50"),
    )
    .await;
    assert_eq!(past["recentPagination"]["limit"], 50);
    assert_eq!(
        past["recentOccurrences"],
        json!([]),
        "a page past the end is empty"
    );

    let search = json_of(&client, &app, &format!("{base}?eventName=search")).await;
    assert_eq!(search["eventName"], "search");
    assert_eq!(search["totalEvents"], 3);
    assert_eq!(
        search["uniqueEventNames"], all["uniqueEventNames"],
        "unique names ignore the name filter"
    );
    let pro = json_of(&client, &app, &format!("{base}?metaKey=plan&metaValue=pro")).await;
    assert_eq!(pro["totalEvents"], 3);
    let u4 = json_of(&client, &app, &format!("{base}?userId=u4")).await;
    assert_eq!(u4["totalEvents"], 1);
    let c1 = json_of(&client, &app, &format!("{base}?client_id=c1")).await;
    assert_eq!(c1["totalEvents"], 6);

    // live.json is JSON whatever the client accepts.
    let r = get(
        &client,
        &app,
        &format!("{base}/live.json?recentLimit=3"),
        "text/html",
    )
    .await;
    assert_eq!(r.status(), 200);
    let live: Value = r.json().await.unwrap();
    assert_eq!(
        keys(&live),
        set(&[
            "timeframe",
            "topEvents",
            "recentOccurrences",
            "recentPagination"
        ])
    );
    assert_eq!(live["recentOccurrences"].as_array().unwrap().len(), 3);
    assert_eq!(live["recentPagination"]["total"], 14);

    // Detail of `$click`, raw or percent-encoded.
    for path in [format!("{base}/$click"), format!("{base}/%24click")] {
        let detail = json_of(&client, &app, &path).await;
        assert_eq!(
            keys(&detail),
            set(&[
                "eventName",
                "timeframe",
                "segment",
                "occurrences",
                "propertySchema",
                "eventsByDay",
                "durationSummary",
                "series"
            ])
        );
        assert_eq!(detail["eventName"], "$click");
        assert_eq!(detail["occurrences"].as_array().unwrap().len(), 2);
        assert_eq!(detail["occurrences"][0]["clientId"], "c1");
        assert_eq!(
            detail["propertySchema"],
            json!([{"key": "tag", "sampleValues": ["button", "a"]}, {"key": "text", "sampleValues": ["<b>Buy</b>"]}])
        );
        assert_eq!(
            detail["durationSummary"],
            json!({"count": 0, "avgMs": null, "p50Ms": null, "p95Ms": null, "maxMs": null, "implausible": 0})
        );
    }
    let timed = json_of(
        &client,
        &app,
        &format!("{base}/search?timeframe=24h&clientId=c2"),
    )
    .await;
    assert_eq!(timed["segment"], json!({"clientId": "c2"}));
    assert_eq!(timed["durationSummary"]["count"], 1);
    assert_eq!(timed["durationSummary"]["p95Ms"], 30.0);

    // The HTML pages: escaped, linked, paging links keep the filters.
    let html = html_of(&client, &app, &base, "*/*").await;
    assert!(html.contains(&format!(
        r#"href="/projects/{id}/events/%24click?timeframe=7d""#
    )));
    assert!(html.contains(&format!(
        r#"data-live-url="/projects/{id}/events/live.json?timeframe=7d&#38;recentLimit=10&#38;recentPage=1""#
    )));
    assert!(html.contains("Page 1 of 2 (14 occurrences)"));
    assert!(html.contains("&#60;b&#62;Buy&#60;/b&#62;") && !html.contains("<b>Buy</b>"));
    assert!(html.contains(r#"id="live-status" role="status""#));
    let filtered = html_of(
        &client,
        &app,
        &format!("{base}?eventName=signup&recentLimit=5&metaKey=plan&metaValue=free&recentPage=1"),
        "text/html",
    )
    .await;
    assert!(filtered.contains("Page 1 of 2 (6 occurrences)"));
    let next = filtered
        .split(r#"rel="next""#)
        .next()
        .unwrap()
        .rsplit("href=\"")
        .next()
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&");
    assert!(next.starts_with(&format!("{base}?")), "{next}");
    for part in [
        "eventName=signup",
        "recentLimit=5",
        "recentPage=2",
        "meta=%7B%22plan%22%3A%22free%22%7D",
    ] {
        assert!(next.contains(part), "{part} kept in {next}");
    }
    let page2 = json_of(&client, &app, &next).await;
    assert_eq!(page2["recentOccurrences"].as_array().unwrap().len(), 1);
    assert_eq!(page2["recentPagination"]["page"], 2);

    let detail = html_of(&client, &app, &format!("{base}/%24click"), "text/html").await;
    assert!(detail.contains(r#"<code id="event-name">$click</code>"#));
    assert!(detail.contains(r#"<td class="mono">text</td><td><span class="badge">string</span>"#));
    assert!(detail.contains("&#60;b&#62;Buy&#60;/b&#62;") && !detail.contains("<b>Buy</b>"));
    assert!(
        detail.contains(r#"<option value="24h" "#) && detail.contains(r#"<option value="30d" "#)
    );
    assert!(
        !detail.contains(r#"<option value="1y""#),
        "the detail offers 24h, 7d and 30d"
    );
    app.stop().await;
}

#[tokio::test]
async fn strangers_get_403_unknown_projects_404_and_public_links_read_everything_including_live() {
    let app = TestApp::spawn(&[]).await;
    let (_owner, id, key) = member_with_project(&app, "owner-events@example.com").await;
    seed_events(&app, &key).await;
    let (stranger, _, _) = member_with_project(&app, "stranger-events@example.com").await;
    let paths = ["pageviews", "events", "events/live.json", "events/$click"];
    for path in paths {
        for accept in ["application/json", "text/html"] {
            let r = get(&stranger, &app, &format!("/projects/{id}/{path}"), accept).await;
            assert_eq!(r.status(), 403, "{path} as a non-member ({accept})");
        }
        let r = get(
            &stranger,
            &app,
            &format!("/projects/{}/{path}", DocId::new()),
            "application/json",
        )
        .await;
        assert_eq!(r.status(), 404, "{path} of an unknown project");
        let r = get(
            &browser(),
            &app,
            &format!("/projects/{id}/{path}"),
            "application/json",
        )
        .await;
        assert_eq!(r.status(), 401, "{path} signed out");
    }

    let link = app.enable_public_link(DocId::parse(&id).unwrap()).await;
    let public = format!("/p/{id}/{}", link.token);
    let anyone = browser();
    let live = json_of(&anyone, &app, &format!("{public}/events/live.json")).await;
    assert_eq!(
        live["topEvents"][0]["eventName"], "signup",
        "live.json works on public links (SuperInsights 1.x answered an empty detail)"
    );
    assert_eq!(live["recentPagination"]["total"], 14);
    let events = json_of(&anyone, &app, &format!("{public}/events")).await;
    assert_eq!(events["totalEvents"], 14);
    let detail = json_of(&anyone, &app, &format!("{public}/events/$click")).await;
    assert_eq!(detail["occurrences"].as_array().unwrap().len(), 2);
    for occurrence in detail["occurrences"].as_array().unwrap() {
        assert!(occurrence.get("sessionId").is_some() || occurrence.get("_id").is_some());
        assert!(
            occurrence.get("ip").is_none(),
            "visitor IPs never leave through a public link: {occurrence}"
        );
    }
    assert_eq!(
        json_of(&anyone, &app, &format!("{public}/pageviews")).await["totalViews"],
        0
    );
    let html = html_of(&anyone, &app, &format!("{public}/events"), "text/html").await;
    assert!(html.contains(&format!(r#"href="{public}/events/%24click?timeframe=7d""#)));
    assert!(html.contains(&format!(r#"data-live-url="{public}/events/live.json?"#)));
    assert!(
        !html.contains("/projects/"),
        "a public viewer never leaves the public prefix"
    );
    let wrong = get(
        &anyone,
        &app,
        &format!("/p/{id}/{}/events/live.json", "0".repeat(64)),
        "application/json",
    )
    .await;
    assert_eq!(wrong.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_events_page_refreshes_itself_every_30_seconds_in_chromium() {
    if !browser_suite_available("the browser events test") {
        return;
    }
    let app = TestApp::spawn(&[]).await;
    let (_, id, key) = member_with_project(&app, "events-browser@example.com").await;
    seed_events(&app, &key).await;
    run_browser_script(
        &app,
        "events.test.mjs",
        &[
            ("SI_EMAIL", "events-browser@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_KEY", &key),
        ],
    )
    .await;
    // The browser's ingestion went through the real pipeline.
    let stored = app
        .state
        .stores
        .stats
        .recent(
            DocId::parse(&id).unwrap(),
            superinsights::domain::model::Channel::Events,
            1,
        )
        .await
        .unwrap();
    assert_eq!(stored[0]["eventName"], "live_signal");
    app.stop().await;
}
