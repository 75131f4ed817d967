//! Public (shareable) read-only links `/p/{id}/{token}/…` through real HTTP: made on the
//! settings page and shown once, opened without an account, refused (404) once wrong, replaced,
//! revoked or deleted, limited per IP, listed and revoked by organization owners and platform
//! admins — and the upstream `si` CLI's exact requests.

use crate::support::{
    TestApp, csrf_of, location, page, post_form, project_id_of as project_id, public_key_of,
    register, submit,
};
use reqwest::{Client, Response, StatusCode};
use serde_json::{Value, json};
use superinsights::{domain::ids::DocId, services::public_links::token_hash};

/// The public URL shown on a settings page after enable/regenerate, if any.
fn shown_url(html: &str) -> Option<String> {
    let marker = "id=\"public-link-url\" readonly value=\"";
    let at = html.find(marker)? + marker.len();
    Some(html[at..].split('"').next().unwrap().to_string())
}

/// The token inside `…/p/{id}/{token}/dashboard`.
fn token_of(url: &str) -> String {
    let parts: Vec<&str> = url.rsplit('/').collect();
    assert_eq!(parts[0], "dashboard", "{url}");
    parts[1].to_string()
}

/// Posts a settings action with the settings page's CSRF token; returns (status, body).
async fn settings_action(
    client: &Client,
    app: &TestApp,
    settings: &str,
    action: &str,
) -> (StatusCode, String) {
    let id = project_id(settings);
    let r = submit(
        client,
        app,
        settings,
        &format!("/projects/{id}/public-link/{action}"),
        &[],
    )
    .await;
    (r.status(), r.text().await.unwrap())
}

/// Enables (or regenerates) the project's link as its owner: the POST redirects to the
/// settings page (POST-redirect-GET), which shows the new link once; returns that page.
async fn link_page(client: &Client, app: &TestApp, settings: &str, action: &str) -> String {
    let id = project_id(settings);
    let r = submit(
        client,
        app,
        settings,
        &format!("/projects/{id}/public-link/{action}"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 303, "{action}");
    let to = location(&r);
    assert_eq!(to, format!("{settings}#public-link"));
    let (status, html) = page(client, app, settings).await;
    assert_eq!(status, 200);
    html
}

/// Enables (or regenerates) the project's link as its owner; returns the token shown.
async fn make_link(client: &Client, app: &TestApp, settings: &str, action: &str) -> String {
    let html = link_page(client, app, settings, action).await;
    token_of(&shown_url(&html).expect("the new link is shown"))
}

/// GETs a public path without any session, as the `si` CLI or a browser would.
async fn public_get(app: &TestApp, path: &str, accept: &str) -> Response {
    reqwest::Client::new()
        .get(app.url(path))
        .header("accept", accept)
        .send()
        .await
        .unwrap()
}

fn assert_noindex(r: &Response) {
    assert_eq!(
        r.headers().get("x-robots-tag").map(|v| v.to_str().unwrap()),
        Some("noindex"),
        "{} {}",
        r.url(),
        r.status()
    );
}

fn is_json(r: &Response) -> bool {
    r.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

#[tokio::test]
async fn a_shared_link_is_shown_once_and_opens_the_dashboard_without_an_account() {
    let app = TestApp::spawn(&[]).await;
    let (owner, settings) = register(&app, "share@example.com").await;
    let id = project_id(&settings);
    let (_, html) = page(&owner, &app, &settings).await;
    assert!(html.contains("Enable public link"), "{html}");
    assert!(shown_url(&html).is_none());

    let html = link_page(&owner, &app, &settings, "enable").await;
    let url = shown_url(&html).expect("the link is shown right after enabling");
    assert!(html.contains("will not be shown again"));
    // Beside its message, at the top of the page.
    let message = html.find("Public link enabled.").expect("the message");
    assert!(html.find("id=\"public-link-url\"").unwrap() < html.find("<h2>Details</h2>").unwrap());
    assert!(message < html.find("id=\"public-link-url\"").unwrap());
    let token = token_of(&url);
    assert_eq!(
        url,
        format!("http://{}/p/{id}/{token}/dashboard", app.addr),
        "request origin without PUBLIC_URL"
    );
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));

    // Shown once: a later view (a reload) of the settings says enabled, without the link, and
    // made no new one.
    let (_, later) = page(&owner, &app, &settings).await;
    assert!(!later.contains(&token), "the token is never shown again");
    assert_eq!(
        public_get(
            &app,
            &format!("/p/{id}/{token}/dashboard/data"),
            "application/json"
        )
        .await
        .status(),
        200,
        "the link shown still works after the reload"
    );
    assert!(shown_url(&later).is_none());
    assert!(later.contains("Regenerate link") && later.contains("Revoke link"));
    assert!(later.contains("enabled</span> since"), "{later}");

    // Only SHA-256(pepper ":" token) is stored (pepper unset here), never the token.
    let pid = DocId::parse(&id).unwrap();
    let stored = app.stored_public_link(pid).await;
    assert!(stored.enabled);
    assert_eq!(stored.token_hash, Some(token_hash("", &token)));
    assert!(
        app.stored_data_contains(&token_hash("", &token)).await,
        "the scan sees what the store wrote"
    );
    assert!(
        !app.stored_data_contains(&token).await,
        "the raw token is nowhere in the stored data"
    );
    assert!(
        !crate::support::file_tree_contains(&app.data_dir, token.as_bytes()),
        "the raw token is in no file of the data directory"
    );

    // No session: the dashboard opens read-only, not indexed, no settings or account links.
    let r = public_get(&app, &format!("/p/{id}/{token}/dashboard"), "text/html").await;
    assert_eq!(r.status(), 200);
    assert_noindex(&r);
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert!(
        r.headers().get("set-cookie").is_none(),
        "no session is started"
    );
    let body = r.text().await.unwrap();
    assert!(body.contains("Shared read-only view"));
    assert!(
        !body.contains("/settings"),
        "no settings link for the public"
    );
    assert!(!body.contains("Log out"));
    assert!(
        body.contains(&format!("/p/{id}/{token}/pageviews")),
        "the sub-navigation stays under the public prefix"
    );
    // The same link under /docs (SuperInsights 1.x mounts both).
    let r = public_get(&app, &format!("/docs/{id}/{token}/dashboard"), "text/html").await;
    assert_eq!(r.status(), 200);
    assert_noindex(&r);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains(&format!("/docs/{id}/{token}/pageviews")),
        "the /docs alias keeps its own prefix in links"
    );

    // A wrong token is the HTML 404 page for browsers and JSON for API clients, not indexed.
    let wrong = format!("/p/{id}/{}/dashboard", "0".repeat(64));
    let r = public_get(&app, &wrong, "text/html").await;
    assert_eq!(r.status(), 404);
    assert_noindex(&r);
    assert!(r.text().await.unwrap().contains("<html"));
    let r = public_get(&app, &format!("{wrong}/data"), "application/json").await;
    assert_eq!(r.status(), 404);
    assert_noindex(&r);
    assert!(is_json(&r));
    assert_eq!(r.json::<Value>().await.unwrap()["error"], "Not found");
    // Unknown pages under a valid link are 404 and not indexed either.
    let r = public_get(&app, &format!("/p/{id}/{token}/settings"), "text/html").await;
    assert_eq!(r.status(), 404);
    assert_noindex(&r);
    let r = public_get(&app, &format!("/p/{id}"), "application/json").await;
    assert_eq!(r.status(), 404);
    assert_noindex(&r);
    app.stop().await;
}

/// The requests the upstream `si` CLI (cmd/si v0.1.0) makes, exactly: `GET {api}/p/{project}/
/// {token}{path}` with `Accept: application/json`, the event name pasted unescaped.
#[tokio::test]
async fn the_si_cli_requests_work_against_a_public_link() {
    let app = TestApp::spawn(&[("PUBLIC_LINK_PEPPER", "pepper-for-tests")]).await;
    let (owner, settings) = register(&app, "cli@example.com").await;
    let id = project_id(&settings);
    let pid = DocId::parse(&id).unwrap();
    let key = public_key_of(&app, &id).await;
    for (channel, body) in [
        (
            "pageviews",
            json!([{"url": "/a", "clientId": "c1"}, {"url": "/b", "clientId": "c2"}]),
        ),
        (
            "events",
            json!([{"eventName": "$click", "properties": {"tag": "button"}}, {"eventName": "signup"}]),
        ),
        ("errors", json!([{"message": "boom"}])),
    ] {
        assert_eq!(app.ingest(channel, &key, &body).await.status(), 201);
    }
    let token = make_link(&owner, &app, &settings, "enable").await;
    let stored = app.state.stores.projects.public_link(pid).await.unwrap();
    assert_eq!(
        stored.unwrap().token_hash,
        Some(token_hash("pepper-for-tests", &token)),
        "the pepper is part of the hash"
    );

    let cli = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .unwrap();
    let get = async |path: &str| -> Value {
        let r = cli
            .get(format!("http://{}/p/{id}/{token}{path}", app.addr))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        assert!(is_json(&r), "{path}: {:?}", r.headers().get("content-type"));
        assert_noindex(&r);
        r.json().await.unwrap()
    };

    // `si projects`: the connectivity check.
    let dash = get("/dashboard/data").await;
    assert_eq!(dash["success"], true);
    assert_eq!(dash["data"]["pageViews"]["totalViews"], 2);
    assert_eq!(dash["data"]["events"]["totalEvents"], 2);
    for block in ["timeframe", "pageViews", "events", "errors", "performance"] {
        assert!(
            dash["data"].get(block).is_some(),
            "dashboard/data has {block}"
        );
    }

    // `si pageviews` (reference §4.3).
    let pv = get("/pageviews?timeframe=24h").await;
    assert_eq!(pv["timeframe"], "24h");
    assert_eq!(pv["totalViews"], 2);
    assert_eq!(pv["uniqueVisitors"], 2);
    assert!(pv["topPages"].is_array() && pv["viewsByDay"].is_array());

    // `si events` (§4.4).
    let ev = get("/events?timeframe=24h").await;
    assert_eq!(ev["timeframe"], "24h");
    assert_eq!(ev["totalEvents"], 2);
    for field in [
        "uniqueEventNames",
        "topEvents",
        "recentOccurrences",
        "eventsByDay",
        "timedEvents",
    ] {
        assert!(ev[field].is_array(), "events has {field}: {ev}");
    }
    assert!(ev["recentPagination"].is_object());

    // `si autocapture --top`: `/events/$click`, the name pasted as is.
    let detail = get("/events/$click?timeframe=24h").await;
    assert_eq!(detail["eventName"], "$click");
    assert_eq!(detail["timeframe"], "24h");
    assert_eq!(detail["occurrences"].as_array().map(Vec::len), Some(1));
    assert!(detail["propertySchema"].is_array() && detail["eventsByDay"].is_array());
    assert!(detail["durationSummary"].is_object());

    // `si errors` (§4.5).
    let er = get("/errors?timeframe=24h").await;
    assert_eq!(er["timeframe"], "24h");
    assert_eq!(er["totalErrors"], 1);
    assert_eq!(er["uniqueFingerprints"], 1);
    assert!(er["groupedErrors"].is_array() && er["errorsByDay"].is_array());

    // The CLI maps 404 to its own exit code: a wrong token must be a 404, in JSON.
    let r = cli
        .get(app.url(&format!("/p/{id}/{}/dashboard/data", "f".repeat(64))))
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert!(is_json(&r));
    app.stop().await;
}

#[tokio::test]
async fn wrong_replaced_revoked_and_deleted_links_are_not_found() {
    let app = TestApp::spawn(&[]).await;
    let (owner, settings) = register(&app, "life@example.com").await;
    let id = project_id(&settings);
    let data = |token: &str| format!("/p/{id}/{token}/dashboard/data");
    let status_of = async |path: String| {
        let r = public_get(&app, &path, "application/json").await;
        assert_noindex(&r);
        r.status()
    };

    // Before any link: nothing opens, not even an empty token's neighbour.
    assert_eq!(status_of(data(&"a".repeat(64))).await, 404);

    let first = make_link(&owner, &app, &settings, "enable").await;
    assert_eq!(status_of(data(&first)).await, 200);
    assert_eq!(status_of(data(&first.to_uppercase())).await, 404);
    assert_eq!(status_of(data(&first[..63])).await, 404);
    let other = format!("/p/{}/{first}/dashboard/data", DocId::new());
    assert_eq!(status_of(other).await, 404, "the token of another project");
    assert_eq!(
        status_of(format!("/p/not-an-id/{first}/dashboard/data")).await,
        404
    );

    // Regenerate: the old token stops at once, the new one works.
    let second = make_link(&owner, &app, &settings, "regenerate").await;
    assert_ne!(first, second);
    assert_eq!(status_of(data(&first)).await, 404);
    assert_eq!(status_of(data(&second)).await, 200);

    // Revoke: the link stops; the page says so and offers to enable again.
    let (status, html) = settings_action(&owner, &app, &settings, "revoke").await;
    assert_eq!(status, 200);
    assert!(html.contains("Enable public link") && html.contains("revoked"));
    assert_eq!(status_of(data(&second)).await, 404);
    let pid = DocId::parse(&id).unwrap();
    let stored = app.state.stores.projects.public_link(pid).await.unwrap();
    assert_eq!(
        stored.unwrap().token_hash,
        None,
        "revoking forgets the hash"
    );

    // Enabled again, then the project is deleted: 404.
    let third = make_link(&owner, &app, &settings, "enable").await;
    assert_eq!(status_of(data(&third)).await, 200);
    let r = submit(
        &owner,
        &app,
        &settings,
        &format!("/projects/{id}/delete"),
        &[],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(status_of(data(&third)).await, 404);
    app.stop().await;
}

#[tokio::test]
async fn public_links_are_limited_per_ip_with_retry_after() {
    let app = TestApp::spawn(&[("RATE_LIMIT_PUBLIC_LINKS_IP", "4/60s")]).await;
    let (owner, settings) = register(&app, "busy@example.com").await;
    let id = project_id(&settings);
    let token = make_link(&owner, &app, &settings, "enable").await;
    let good = format!("/p/{id}/{token}/dashboard/data");

    // Wrong tokens count too, so the budget cannot be spent probing for free.
    let r = public_get(
        &app,
        &format!("/p/{id}/{}/dashboard", "0".repeat(64)),
        "text/html",
    )
    .await;
    assert_eq!(r.status(), 404);
    assert_eq!(r.headers()["ratelimit-remaining"], "3");
    for _ in 0..3 {
        let r = public_get(&app, &good, "application/json").await;
        assert_eq!(r.status(), 200);
    }

    let r = public_get(&app, &good, "application/json").await;
    assert_eq!(r.status(), 429);
    assert_noindex(&r);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert!(is_json(&r));
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "Rate limit exceeded");
    assert_eq!(body["retryAfter"].as_u64(), Some(retry));

    // Browsers get the HTML page with the same status and header.
    let r = public_get(&app, &format!("/p/{id}/{token}/dashboard"), "text/html").await;
    assert_eq!(r.status(), 429);
    assert_noindex(&r);
    assert!(r.headers().get("retry-after").is_some());
    let html = r.text().await.unwrap();
    assert!(html.contains("Too many requests"), "{html}");

    // The signed-in area has its own budget.
    let (status, _) = page(&owner, &app, &format!("/projects/{id}/dashboard")).await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn org_owners_and_platform_admins_list_and_revoke_links() {
    let app = TestApp::spawn(&[]).await;
    // The first account is the platform admin.
    let (root, root_settings) = register(&app, "root@example.com").await;
    let (bob, bob_settings) = register(&app, "bob@example.com").await;
    let root_project = project_id(&root_settings);
    let bob_project = project_id(&bob_settings);
    let root_token = make_link(&root, &app, &root_settings, "enable").await;
    let bob_token = make_link(&bob, &app, &bob_settings, "enable").await;
    let works = async |project: &str, token: &str| {
        public_get(
            &app,
            &format!("/p/{project}/{token}/dashboard/data"),
            "application/json",
        )
        .await
        .status()
            == 200
    };
    assert!(works(&root_project, &root_token).await && works(&bob_project, &bob_token).await);

    // Bob's organization page lists his project only, never a token.
    let (status, html) = page(&bob, &app, "/org/users").await;
    assert_eq!(status, 200);
    assert!(html.contains("href=\"/org/public-links\""));
    let (status, html) = page(&bob, &app, "/org/public-links").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&format!("/org/public-links/{bob_project}/revoke")));
    assert!(!html.contains(&root_project));
    assert!(!html.contains(&bob_token));

    // Bob cannot revoke a project of another organization (not found there).
    let r = post_form(
        &bob,
        &app,
        &format!("/org/public-links/{root_project}/revoke"),
        &csrf_of(&html),
        &[],
    )
    .await;
    assert_eq!(r.status(), 404);
    assert!(works(&root_project, &root_token).await);

    // He revokes his own (the path form), and the list empties.
    let r = post_form(
        &bob,
        &app,
        &format!("/org/public-links/{bob_project}/revoke"),
        &csrf_of(&html),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(html.contains("was revoked"), "{html}");
    assert!(html.contains("id=\"no-public-links\""));
    assert!(!works(&bob_project, &bob_token).await);

    // SuperInsights 1.x's form (`projectId` in the body) works too.
    let bob_token = make_link(&bob, &app, &bob_settings, "enable").await;
    let r = submit(
        &bob,
        &app,
        "/org/public-links",
        "/org/public-links/revoke",
        &[("projectId", &bob_project)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(!works(&bob_project, &bob_token).await);

    // Bob is not a platform admin.
    let (status, _) = page(&bob, &app, "/admin/public-links").await;
    assert_eq!(status, 403);

    // The admin sees every enabled link with its organization and revokes any.
    let bob_token = make_link(&bob, &app, &bob_settings, "enable").await;
    let (status, html) = page(&root, &app, "/admin/public-links").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains(&format!("/admin/public-links/{bob_project}/revoke")));
    assert!(html.contains(&format!("/admin/public-links/{root_project}/revoke")));
    let (_, hub) = page(&root, &app, "/admin").await;
    assert!(hub.contains("href=\"/admin/public-links\""));
    let r = post_form(
        &root,
        &app,
        &format!("/admin/public-links/{bob_project}/revoke"),
        &csrf_of(&html),
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(!html.contains(&format!("/admin/public-links/{bob_project}/revoke")));
    assert!(!works(&bob_project, &bob_token).await);
    assert!(works(&root_project, &root_token).await);
    let r = post_form(
        &root,
        &app,
        "/admin/public-links/revoke",
        &csrf_of(&html),
        &[("projectId", &DocId::new().to_hex())],
    )
    .await;
    assert_eq!(r.status(), 404, "an unknown project");
    app.stop().await;
}

#[tokio::test]
async fn only_owners_change_links_and_every_change_needs_the_csrf_token() {
    let app = TestApp::spawn(&[]).await;
    let (root, _) = register(&app, "root@example.com").await;
    let (owner, settings) = register(&app, "owner@example.com").await;
    let (viewer, _) = register(&app, "viewer@example.com").await;
    let id = project_id(&settings);
    let pid = DocId::parse(&id).unwrap();
    app.join_org_of(
        pid,
        "viewer@example.com",
        superinsights::store::OrgRole::Viewer,
    )
    .await;
    let enabled = async || app.stored_public_link(pid).await.enabled;

    // A viewer of the organization may not open settings, nor change the link.
    let (_, html) = page(&viewer, &app, "/projects").await;
    for action in ["enable", "regenerate", "revoke"] {
        let r = post_form(
            &viewer,
            &app,
            &format!("/projects/{id}/public-link/{action}"),
            &csrf_of(&html),
            &[],
        )
        .await;
        assert_eq!(r.status(), 403, "viewer {action}");
    }
    // A platform admin counts as `admin` in projects: links are for owners (as 1.x).
    let (_, html) = page(&root, &app, &settings).await;
    assert!(html.contains("Only an owner of the project"));
    let r = post_form(
        &root,
        &app,
        &format!("/projects/{id}/public-link/enable"),
        &csrf_of(&html),
        &[],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(!enabled().await);
    // The org page is for owners.
    let (status, _) = page(&viewer, &app, "/org/public-links").await;
    assert_eq!(
        status, 200,
        "the viewer's own workspace, where they are owner"
    );

    // The owner without or with a forged CSRF token: refused, nothing changes.
    let r = owner
        .post(app.url(&format!("/projects/{id}/public-link/enable")))
        .header("accept", "text/html")
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = post_form(
        &owner,
        &app,
        &format!("/projects/{id}/public-link/enable"),
        "forged",
        &[],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(!enabled().await);

    let token = make_link(&owner, &app, &settings, "enable").await;
    assert!(enabled().await);
    for (client, path) in [
        (&owner, format!("/projects/{id}/public-link/revoke")),
        (&owner, format!("/org/public-links/{id}/revoke")),
        (&root, format!("/admin/public-links/{id}/revoke")),
    ] {
        let r = post_form(client, &app, &path, "forged", &[]).await;
        assert_eq!(r.status(), 403, "{path}");
    }
    assert!(enabled().await);
    let r = public_get(
        &app,
        &format!("/p/{id}/{token}/dashboard/data"),
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 200);

    // The viewer cannot reach the owner's organization links through their own org page.
    let r = submit(
        &viewer,
        &app,
        "/org/public-links",
        &format!("/org/public-links/{id}/revoke"),
        &[],
    )
    .await;
    assert_eq!(
        r.status(),
        404,
        "not a project of the viewer's current organization"
    );
    assert!(enabled().await);
    app.stop().await;
}
