//! Error groups over real HTTP: errors whose messages differ only in numbers, ids and URLs
//! are one group each (the 1.x fingerprints still per message), groups are resolved, ignored
//! and reopened with CSRF-checked forms by members with write rights, a resolved group seen
//! again comes back as regressed, readers (viewers, public links) cannot change states, and bad
//! input is a 400 or 404, never a 500. The dashboard counts and lists the same groups (1.x's
//! fingerprint count kept beside them) and filters its errors by one (`signature=`). The same
//! flows in headless Chromium: `tests/browser/error_groups.test.mjs`.

use crate::support::{
    BROWSER_ACCEPT, TestApp, browser_suite_available, csrf_of, eventually, get_accepting as get,
    json_of, location, member_with_project, page, post_form, register, run_browser_script,
};
use serde_json::{Value, json};
use std::time::Duration;

/// Four message shapes, `n` occurrences each, every one with its own numbers, ids and URLs.
fn four_shapes(n: u32) -> Vec<Value> {
    let stack = |i: u32| {
        format!(
            "Error\n    at load (https://shop.example/assets/app.js:{}:7)",
            i % 3 + 1
        )
    };
    let mut items = Vec::new();
    for i in 0..n {
        items.push(json!({"message": format!("Item {i} not found"), "errorType": "Error",
            "stackTrace": stack(i), "browser": "Firefox",
            "clientId": format!("c{i}"), "context": {"url": format!("https://shop.example/items/{i}")}}));
        items.push(json!({"message": format!("Failed to fetch https://api.example/orders/{}?t={i}", 7000 + i),
            "errorType": "Error", "stackTrace": stack(i), "browser": "Chrome",
            "context": {"url": "https://shop.example/checkout"}}));
        items.push(json!({"message": format!("Session 3f2b8c1e-0a4d-4c8e-9b1a-2d3e4f5a6b{:02x} expired", i),
            "errorType": "Error", "stackTrace": stack(i), "browser": "Safari"}));
        items.push(
            json!({"message": format!("Cannot read properties of undefined (reading 'f{i}')"),
            "errorType": "TypeError", "stackTrace": stack(i), "browser": "Chrome"}),
        );
    }
    items
}

fn group<'a>(list: &'a Value, prefix: &str) -> &'a Value {
    list["errorGroups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["pattern"].as_str().unwrap().starts_with(prefix))
        .unwrap_or_else(|| panic!("no group {prefix} in {list}"))
}

async fn set_state(
    client: &reqwest::Client,
    app: &TestApp,
    id: &str,
    signature: &str,
    csrf: &str,
    state: &str,
) -> reqwest::Response {
    post_form(
        client,
        app,
        &format!("/projects/{id}/errors/groups/{signature}/state"),
        csrf,
        &[
            ("state", state),
            ("back", &format!("/projects/{id}/errors?timeframe=24h")),
        ],
    )
    .await
}

#[tokio::test]
async fn errors_group_by_signature_and_members_resolve_ignore_and_reopen_them() {
    // A one-second cache, so the regression shows without waiting for the default TTL.
    let app = TestApp::spawn(&[("REDIS_TTL", "1")]).await;
    let (client, id, key) = member_with_project(&app, "groups@example.com").await;
    assert_eq!(
        app.ingest("errors", &key, &json!(four_shapes(10)))
            .await
            .status(),
        201
    );
    let list_path = format!("/projects/{id}/errors?timeframe=24h");
    let list = json_of(&client, &app, &list_path).await;
    assert_eq!(list["totalErrors"], 40);
    assert_eq!(
        list["uniqueFingerprints"], 40,
        "1.x fingerprints are kept per message"
    );
    assert_eq!(list["uniqueSignatures"], 4, "one group per message shape");
    assert_eq!(list["errorGroups"].as_array().unwrap().len(), 4);
    assert_eq!(list["stateFilter"], "open");
    assert_eq!(list["stateCounts"]["open"], 4);
    assert_eq!(
        list["groupedErrors"].as_array().unwrap().len(),
        40,
        "1.x's list stays"
    );
    let items = group(&list, "Item <n> not found");
    assert_eq!(items["count"], 10);
    assert_eq!(items["message"], "Item 0 not found");
    assert_eq!(items["errorType"], "Error");
    assert_eq!(items["frame"], "load (/assets/app.js)");
    assert_eq!(items["visitors"], 10);
    assert_eq!(items["state"], "open");
    assert_eq!(items["browsers"], json!([{"key": "Firefox", "count": 10}]));
    assert_eq!(
        items["pages"].as_array().unwrap().len(),
        3,
        "the top three pages"
    );
    assert!(items["firstSeen"].as_str().unwrap() <= items["lastSeen"].as_str().unwrap());
    let fetches = group(&list, "Failed to fetch https://api.example/orders/<id>");
    assert_eq!(fetches["pages"], json!([{"key": "/checkout", "count": 10}]));
    let signature = items["signature"].as_str().unwrap().to_string();

    // Clicking a group filters the page: the totals are the group's.
    let only = json_of(&client, &app, &format!("{list_path}&signature={signature}")).await;
    assert_eq!(only["totalErrors"], 10);
    assert_eq!(only["errorGroups"].as_array().unwrap().len(), 1);
    let (_, html) = page(&client, &app, &format!("{list_path}&signature={signature}")).await;
    assert!(
        html.contains("Error group: <strong>Item &#60;n&#62; not found</strong>"),
        "{html}"
    );
    assert!(html.contains(&format!(
        "href=\"/projects/{id}/errors?timeframe=24h\" class=\"chip-remove\""
    )));

    // Resolve: it leaves the default list and shows under "resolved".
    let (_, html) = page(&client, &app, &list_path).await;
    assert!(html.contains(&format!(
        "action=\"/projects/{id}/errors/groups/{signature}/state\""
    )));
    let csrf = csrf_of(&html);
    let r = set_state(&client, &app, &id, &signature, &csrf, "resolved").await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), list_path);
    let list = json_of(&client, &app, &list_path).await;
    assert_eq!(list["errorGroups"].as_array().unwrap().len(), 3);
    assert_eq!(list["stateCounts"]["resolved"], 1);
    let resolved = json_of(&client, &app, &format!("{list_path}&state=resolved")).await;
    assert_eq!(resolved["errorGroups"][0]["signature"], signature.as_str());
    assert_eq!(resolved["errorGroups"][0]["state"], "resolved");
    // The change is in the organization's audit log, with the group and its new state.
    let logs = json_of(
        &client,
        &app,
        "/org/logs?actionCode=ERROR_GROUP_SET_STATE&limit=10",
    )
    .await;
    let entries = logs["entries"].as_array().expect("log entries");
    assert_eq!(entries.len(), 1, "{logs}");
    assert_eq!(entries[0]["projectId"], id.as_str(), "{logs}");
    assert!(
        entries[0]
            .to_string()
            .contains(&format!("{signature} resolved")),
        "{logs}"
    );

    // Ignore another: hidden by default, listed under "ignored", then reopened.
    let other = group(&list, "Session <uuid> expired")["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let r = set_state(&client, &app, &id, &other, &csrf, "ignored").await;
    assert_eq!(r.status(), 303);
    let list = json_of(&client, &app, &list_path).await;
    assert_eq!(list["errorGroups"].as_array().unwrap().len(), 2);
    let ignored = json_of(&client, &app, &format!("{list_path}&state=ignored")).await;
    assert_eq!(ignored["errorGroups"][0]["signature"], other.as_str());
    let all = json_of(&client, &app, &format!("{list_path}&state=all")).await;
    assert_eq!(all["errorGroups"].as_array().unwrap().len(), 4);
    let r = set_state(&client, &app, &id, &other, &csrf, "open").await;
    assert_eq!(r.status(), 303);
    let list = json_of(&client, &app, &list_path).await;
    assert_eq!(list["errorGroups"].as_array().unwrap().len(), 3);

    // A new occurrence of the resolved group brings it back as regressed.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let again = json!([{"message": "Item 99 not found", "errorType": "Error",
        "stackTrace": "Error\n    at load (https://shop.example/assets/app.js:40:2)", "browser": "Edge"}]);
    assert_eq!(app.ingest("errors", &key, &again).await.status(), 201);
    eventually(Duration::from_secs(10), "the group regresses", async || {
        let list = json_of(&client, &app, &list_path).await;
        list["errorGroups"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g["signature"] == signature.as_str() && g["state"] == "regressed")
    })
    .await;
    let list = json_of(&client, &app, &list_path).await;
    assert_eq!(list["stateCounts"]["regressed"], 1);
    assert_eq!(group(&list, "Item <n> not found")["count"], 11);
    let (_, html) = page(&client, &app, &list_path).await;
    assert!(html.contains("state-regressed\">Regressed<"));
    app.stop().await;
}

#[tokio::test]
async fn error_group_states_refuse_readers_and_bad_input_without_a_500() {
    let app = TestApp::spawn(&[]).await;
    let (alice, id, key) = member_with_project(&app, "alice-groups@example.com").await;
    assert_eq!(
        app.ingest("errors", &key, &json!(four_shapes(2)))
            .await
            .status(),
        201
    );
    let list_path = format!("/projects/{id}/errors?timeframe=24h");
    let list = json_of(&alice, &app, &list_path).await;
    let signature = list["errorGroups"][0]["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, html) = page(&alice, &app, &list_path).await;
    let csrf = csrf_of(&html);
    let state_path = format!("/projects/{id}/errors/groups/{signature}/state");

    // Unknown state, malformed signature: 400 with a code in JSON, a message in HTML.
    let r = alice
        .post(app.url(&state_path))
        .header("accept", "application/json")
        .form(&[("_csrf", csrf.as_str()), ("state", "deleted")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert!(body["code"].is_string(), "{body}");
    let r = set_state(&alice, &app, &id, "not-a-signature", &csrf, "resolved").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("16 hexadecimal digits"));
    let r = set_state(&alice, &app, &id, &signature, &csrf, "").await;
    assert_eq!(r.status(), 400);
    // A JSON client gets the new state back.
    let r = alice
        .post(app.url(&state_path))
        .header("accept", "application/json")
        .form(&[("_csrf", csrf.as_str()), ("state", "ignored")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"success": true, "signature": signature, "state": "ignored"})
    );
    // Without the CSRF token: refused, nothing changed.
    let r = set_state(&alice, &app, &id, &signature, "wrong", "open").await;
    assert_eq!(r.status(), 403);
    let ignored = json_of(&alice, &app, &format!("{list_path}&state=ignored")).await;
    assert_eq!(ignored["errorGroups"].as_array().unwrap().len(), 1);
    // Bad list parameters: 400, never a 500.
    for bad in ["state=bogus", "signature=xyz", "signature=%3Cscript%3E"] {
        let r = get(
            &alice,
            &app,
            &format!("{list_path}&{bad}"),
            "application/json",
        )
        .await;
        assert_eq!(r.status(), 400, "{bad}");
        let r = get(&alice, &app, &format!("{list_path}&{bad}"), BROWSER_ACCEPT).await;
        assert_eq!(r.status(), 400, "{bad}");
        assert!(!r.text().await.unwrap().contains("<script>"));
    }

    // Another user's project and an unknown one: 403 and 404.
    let (mallory, mallory_settings) = register(&app, "mallory-groups@example.com").await;
    let (_, m_html) = page(&mallory, &app, &mallory_settings).await;
    let m_csrf = csrf_of(&m_html);
    let r = set_state(&mallory, &app, &id, &signature, &m_csrf, "resolved").await;
    assert_eq!(r.status(), 403, "a stranger's project");
    let r = set_state(
        &mallory,
        &app,
        "000000000000000000000000",
        &signature,
        &m_csrf,
        "open",
    )
    .await;
    assert_eq!(r.status(), 404);
    let r = set_state(&mallory, &app, "not-an-id", &signature, &m_csrf, "open").await;
    assert_eq!(r.status(), 404);

    // A viewer reads the groups but has no forms and gets 403 on a post.
    let (_, settings_html) = page(&alice, &app, &format!("/projects/{id}/settings")).await;
    let r = post_form(
        &alice,
        &app,
        &format!("/projects/{id}/users/add"),
        &csrf_of(&settings_html),
        &[("email", "mallory-groups@example.com"), ("role", "viewer")],
    )
    .await;
    assert!(r.status().is_success() || r.status().is_redirection());
    let (status, viewer_html) = page(&mallory, &app, &format!("{list_path}&state=all")).await;
    assert_eq!(status, 200);
    assert!(viewer_html.contains("id=\"error-groups\""));
    assert!(
        !viewer_html.contains("/state\""),
        "no state forms for viewers"
    );
    let r = set_state(&mallory, &app, &id, &signature, &m_csrf, "open").await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("read-only"));

    // A public link reads the groups; a post is refused.
    let link = app
        .enable_public_link(superinsights::domain::ids::DocId::parse(&id).unwrap())
        .await;
    let public = format!("/p/{id}/{}", link.token);
    let anon = reqwest::Client::new();
    let r = get(
        &anon,
        &app,
        &format!("{public}/errors?timeframe=24h&state=all"),
        BROWSER_ACCEPT,
    )
    .await;
    assert_eq!(r.status(), 200);
    let public_html = r.text().await.unwrap();
    assert!(public_html.contains("id=\"error-groups\""));
    assert!(!public_html.contains("/state\""));
    let r = anon
        .post(app.url(&format!("{public}/errors/groups/{signature}/state")))
        .header("accept", "application/json")
        .form(&[("state", "open")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let still = json_of(&alice, &app, &format!("{list_path}&state=ignored")).await;
    assert_eq!(
        still["errorGroups"].as_array().unwrap().len(),
        1,
        "unchanged"
    );
    app.stop().await;
}

/// The dashboard's errors KPI and table count groups by signature (the JSON keeps 1.x's
/// fields, with the group count beside them); a row filters the dashboard's errors by its group
/// and links to the errors page filtered the same way; the chip removes it; section links carry
/// it both ways; public links keep it; a malformed key is a 400, never a 500.
#[tokio::test]
async fn dashboard_counts_error_groups_and_filters_by_one() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, key) = member_with_project(&app, "dash-groups@example.com").await;
    assert_eq!(
        app.ingest("errors", &key, &json!(four_shapes(10)))
            .await
            .status(),
        201
    );
    let views = json!([{"url": "https://shop.example/", "clientId": "v1"},
        {"url": "https://shop.example/items/1", "clientId": "v2"}]);
    assert_eq!(app.ingest("pageviews", &key, &views).await.status(), 201);
    let data_path = format!("/projects/{id}/dashboard/data?timeframe=24h");
    let all = json_of(&client, &app, &data_path).await;
    let errors = &all["data"]["errors"];
    // 1.x's fields, same names and meaning; the groups beside them.
    assert_eq!(errors["totalErrors"], 40);
    assert_eq!(
        errors["uniqueFingerprints"], 40,
        "1.x: one fingerprint per message"
    );
    assert!(errors["errorsByDay"].is_array());
    assert_eq!(errors["uniqueSignatures"], 4, "one group per message shape");
    let groups = errors["topGroups"].as_array().unwrap();
    assert_eq!(groups.len(), 4);
    assert!(groups.iter().all(|g| g["count"] == 10), "{errors}");
    let item = groups
        .iter()
        .find(|g| g["pattern"] == "Item <n> not found")
        .expect("the item group");
    assert_eq!(item["message"], "Item 0 not found");
    let signature = item["signature"].as_str().unwrap().to_string();
    assert_eq!(all["data"]["previous"]["uniqueFingerprints"], 0);
    assert_eq!(all["data"]["pageViews"]["totalViews"], 2);

    // The page: "4 error groups" under the KPI, a row per group.
    let dash = format!("/projects/{id}/dashboard?timeframe=24h");
    let (status, html) = page(&client, &app, &dash).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(r#"data-field="errors.uniqueSignatures">4</span> error groups"#),
        "{html}"
    );
    let filter_href = format!("/projects/{id}/dashboard?timeframe=24h&#38;signature={signature}");
    let detail_href = format!("/projects/{id}/errors?timeframe=24h&#38;signature={signature}");
    assert!(html.contains(&format!("href=\"{filter_href}\"")), "{html}");
    assert!(html.contains(&format!("href=\"{detail_href}\" class=\"row-detail\"")));
    assert!(html.contains(r#"id="bd-error""#));
    assert!(
        !html.contains(r#"id="filter-scope""#),
        "nothing filtered yet"
    );

    // Filtered by the group: the errors are the group's, the page views are not filtered.
    let one = json_of(&client, &app, &format!("{data_path}&signature={signature}")).await;
    let e = &one["data"]["errors"];
    assert_eq!(e["totalErrors"], 10);
    assert_eq!(e["uniqueSignatures"], 1);
    assert_eq!(e["uniqueFingerprints"], 10);
    assert_eq!(e["topGroups"].as_array().unwrap().len(), 1);
    assert_eq!(e["topGroups"][0]["signature"], signature.as_str());
    assert_eq!(one["data"]["filters"]["signature"], signature.as_str());
    assert_eq!(
        one["data"]["pageViews"]["totalViews"], 2,
        "page views are not filtered"
    );
    let chart_total: f64 = one["data"]["charts"]["errors"]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["values"][0].as_f64().unwrap_or(0.0))
        .sum();
    assert_eq!(chart_total, 10.0, "the errors chart follows the group");
    let (status, html) = page(&client, &app, &format!("{dash}&signature={signature}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("Error group: <strong>Item &#60;n&#62; not found</strong>"),
        "{html}"
    );
    assert!(html.contains(&format!(
        "href=\"/projects/{id}/dashboard?timeframe=24h\" class=\"chip-remove\""
    )));
    assert!(html.contains("The error group filter applies to errors only"));
    assert!(
        html.contains(r#"<input type="hidden" name="signature""#),
        "the forms keep it"
    );
    // The section links: the errors page gets the group, the page views do not.
    assert!(
        html.contains(&format!("href=\"{detail_href}\">Errors")),
        "{html}"
    );
    assert!(html.contains(&format!("href=\"/projects/{id}/pageviews\">Page views")));
    // …and the errors page sends it back to the dashboard.
    let (_, errors_html) = page(
        &client,
        &app,
        &format!("/projects/{id}/errors?timeframe=24h&signature={signature}"),
    )
    .await;
    assert!(
        errors_html.contains(&format!("href=\"{filter_href}\">Dashboard")),
        "{errors_html}"
    );
    // The groups table as CSV.
    let csv = get(
        &client,
        &app,
        &format!("{data_path}&format=csv&table=error"),
        "text/csv",
    )
    .await;
    assert_eq!(csv.status(), 200);
    let csv = csv.text().await.unwrap();
    assert!(csv.starts_with("Error,Signature,Count,Percent"), "{csv}");
    assert!(
        csv.contains(&format!("Item 0 not found,{signature},10,25.0%")),
        "{csv}"
    );
    assert_eq!(csv.lines().count(), 5);

    // A well-formed key without errors: zeros, its key on the chip.
    let absent = "0000000000000000";
    let none = json_of(&client, &app, &format!("{data_path}&signature={absent}")).await;
    assert_eq!(none["data"]["errors"]["totalErrors"], 0);
    assert_eq!(none["data"]["errors"]["uniqueSignatures"], 0);
    let (status, html) = page(&client, &app, &format!("{dash}&signature={absent}")).await;
    assert_eq!(status, 200);
    assert!(html.contains(&format!("Error group: <strong>{absent}</strong>")));

    // Malformed keys: 400 with a code in JSON, a message on the page, nothing unescaped.
    for bad in [
        "xyz",
        "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
        "0123456789ABCDEF",
    ] {
        let r = get(
            &client,
            &app,
            &format!("{data_path}&signature={bad}"),
            "application/json",
        )
        .await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["code"], "BAD_PARAMETER", "{body}");
        assert_eq!(body["parameter"], "signature", "{body}");
        let r = get(
            &client,
            &app,
            &format!("{dash}&signature={bad}"),
            BROWSER_ACCEPT,
        )
        .await;
        assert_eq!(r.status(), 400, "{bad}");
        let text = r.text().await.unwrap();
        assert!(
            text.contains("error group signature (16 hex digits)"),
            "{text}"
        );
        assert!(!text.contains("<script>"));
    }

    // A public link keeps the group in its links and figures.
    let link = app
        .enable_public_link(superinsights::domain::ids::DocId::parse(&id).unwrap())
        .await;
    let public = format!("/p/{id}/{}", link.token);
    let anon = reqwest::Client::new();
    let r = get(
        &anon,
        &app,
        &format!("{public}/dashboard?timeframe=24h&signature={signature}"),
        BROWSER_ACCEPT,
    )
    .await;
    assert_eq!(r.status(), 200);
    let public_html = r.text().await.unwrap();
    assert!(public_html.contains("Error group: <strong>Item &#60;n&#62; not found</strong>"));
    assert!(public_html.contains(&format!(
        "href=\"{public}/errors?timeframe=24h&#38;signature={signature}\""
    )));
    let r = get(
        &anon,
        &app,
        &format!("{public}/dashboard/data?timeframe=24h&signature={signature}"),
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["data"]["errors"]["totalErrors"], 10);
    app.stop().await;
}

/// In headless Chromium: resolve a group, see it leave the list, ingest a new occurrence and
/// see it come back as regressed; an accessibility scan and a 390 px check.
#[tokio::test]
async fn error_groups_are_resolved_and_regress_in_chromium() {
    if !browser_suite_available("error groups in Chromium") {
        return;
    }
    let app = TestApp::spawn(&[("REDIS_TTL", "1")]).await;
    let (_client, id, key) = member_with_project(&app, "browser-groups@example.com").await;
    assert_eq!(
        app.ingest("errors", &key, &json!(four_shapes(5)))
            .await
            .status(),
        201
    );
    run_browser_script(
        &app,
        "error_groups.test.mjs",
        &[
            ("SI_EMAIL", "browser-groups@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_KEY", &key),
        ],
    )
    .await;
    app.stop().await;
}
