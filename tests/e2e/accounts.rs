//! Accounts, projects and sessions through real HTTP with a cookie jar, as a browser would.

use crate::support::{
    RedisServer, TestApp, assert_answer, browser, csrf_of, eventually, get_accepting, location,
    login, page, post_form, register,
};
use std::time::Duration;

fn sid(client_response: &reqwest::Response) -> Option<String> {
    client_response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sid="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

#[tokio::test]
async fn register_sees_keys_logs_out_and_logs_back_in() {
    let app = TestApp::spawn(&[]).await;
    let (client, settings) = register(&app, "first@example.com").await;
    let (status, html) = page(&client, &app, &settings).await;
    assert_eq!(status, 200);
    assert!(html.contains("My First Project") && html.contains("pk_") && html.contains("sk_"));
    assert!(html.contains("/sdk/superinsights.js"), "SDK snippet shown");
    let first = app
        .state
        .stores
        .accounts
        .user_by_email("first@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.role.as_str(),
        "admin",
        "the first account is the platform admin"
    );

    let (second, _) = register(&app, "second@example.com").await;
    let user = app
        .state
        .stores
        .accounts
        .user_by_email("second@example.com")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(user.role.as_str(), "user");
    drop(second);

    let (_, html) = page(&client, &app, "/projects").await;
    let r = post_form(&client, &app, "/auth/logout", &csrf_of(&html), &[]).await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/auth/login");
    let r = get_accepting(&client, &app, "/projects", "text/html").await;
    assert_eq!(r.status(), 303, "signed out");
    assert!(location(&r).starts_with("/auth/login?next=%2Fprojects"));

    let (_, bad) = login(&app, "first@example.com", "wrong-password").await;
    assert_answer(bad, 400, "Invalid email or password").await;
    let (again, ok) = login(&app, "FIRST@example.com", "password-123").await;
    assert_eq!(ok.status(), 303);
    assert_eq!(location(&ok), "/projects");
    let (status, html) = page(&again, &app, "/projects").await;
    assert_eq!(status, 200);
    assert!(html.contains("My First Project"));
    app.stop().await;
}

#[tokio::test]
async fn login_rotates_the_session_id_and_cookies_are_http_only() {
    let app = TestApp::spawn(&[]).await;
    register(&app, "rot@example.com").await;
    let client = browser();
    let r = client.get(app.url("/auth/login")).send().await.unwrap();
    let before = sid(&r).expect("the login form starts a session for its CSRF token");
    let cookie = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("sid="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let html = r.text().await.unwrap();
    let r = post_form(
        &client,
        &app,
        "/auth/login",
        &csrf_of(&html),
        &[("email", "rot@example.com"), ("password", "password-123")],
    )
    .await;
    let after = sid(&r).expect("login sets a new session cookie");
    assert_ne!(before, after, "no session fixation");
    app.stop().await;
}

#[tokio::test]
async fn forms_without_the_csrf_token_are_refused() {
    let app = TestApp::spawn(&[]).await;
    let (client, settings) = register(&app, "csrf@example.com").await;
    let id = settings.split('/').nth(2).unwrap().to_string();
    let r = post_form(
        &client,
        &app,
        &format!("/projects/{id}/delete"),
        "forged",
        &[],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Reload the page"));
    let r = client
        .post(app.url(&format!("/projects/{id}/delete")))
        .form(&[("x", "y")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let (status, _) = page(&client, &app, &settings).await;
    assert_eq!(status, 200, "project still there");
    app.stop().await;
}

#[tokio::test]
async fn project_lifecycle_through_the_settings_page() {
    let app = TestApp::spawn(&[]).await;
    let (client, settings) = register(&app, "owner@example.com").await;
    let id = settings.split('/').nth(2).unwrap().to_string();
    let pid = superinsights::domain::ids::DocId::parse(&id).unwrap();
    let project = app.stored_project(pid).await;

    let (_, html) = page(&client, &app, "/projects/new").await;
    let r = post_form(
        &client,
        &app,
        "/projects",
        &csrf_of(&html),
        &[
            ("name", ""),
            ("dataRetentionDays", "90"),
            ("environment", "production"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("Name is required"));
    let r = post_form(
        &client,
        &app,
        "/projects",
        &csrf_of(&html),
        &[
            ("name", "Blog"),
            ("icon", "📝"),
            ("environment", "staging"),
            ("dataRetentionDays", "30"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, list) = page(&client, &app, "/projects").await;
    assert!(list.contains("Blog") && list.contains("My First Project"));

    let (_, html) = page(&client, &app, &settings).await;
    let csrf = csrf_of(&html);
    let r = post_form(
        &client,
        &app,
        &format!("/projects/{id}/update"),
        &csrf,
        &[
            ("name", "Shop"),
            ("icon", "🛒"),
            ("environment", "production"),
            ("dataRetentionDays", "400"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400, "retention out of range");
    let r = post_form(
        &client,
        &app,
        &format!("/projects/{id}/update"),
        &csrf,
        &[
            ("name", "Shop"),
            ("icon", "🛒"),
            ("environment", "production"),
            ("dataRetentionDays", "60"),
        ],
    )
    .await;
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Project updated successfully.")
    );
    assert_eq!(app.stored_project(pid).await.data_retention_days, 60);

    // Keys: the old one stops working at once, also for ingestion's key cache.
    let ok = app
        .ingest(
            "events",
            &project.public_api_key,
            &serde_json::json!({"eventName": "x"}),
        )
        .await;
    assert_eq!(ok.status(), 201);
    let r = post_form(
        &client,
        &app,
        &format!("/projects/{id}/regenerate-keys"),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    let stale = app
        .ingest(
            "events",
            &project.public_api_key,
            &serde_json::json!({"eventName": "x"}),
        )
        .await;
    assert_eq!(stale.status(), 401);

    // Drop rules from the form, then the report.
    let r = post_form(
        &client,
        &app,
        &format!("/projects/{id}/settings/drop-events"),
        &csrf,
        &[("dropEnabled", "on"), ("dropMode", "blacklist")],
    )
    .await;
    assert_eq!(r.status(), 400, "enabled without filters");
    let r = post_form(
        &client,
        &app,
        &format!("/projects/{id}/settings/drop-events"),
        &csrf,
        &[
            ("dropEnabled", "on"),
            ("dropMode", "blacklist"),
            ("dropFilterKey[]", "eventName"),
            ("dropFilterOp[]", "equals"),
            ("dropFilterValue[]", "noise"),
            ("dropFilterKey[]", ""),
            ("dropFilterOp[]", "equals"),
            ("dropFilterValue[]", ""),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let key = app.stored_project(pid).await.public_api_key;
    let r = app
        .ingest(
            "events",
            &key,
            &serde_json::json!([{"eventName": "noise"}, {"eventName": "signal"}]),
        )
        .await;
    assert_eq!(r.json::<serde_json::Value>().await.unwrap()["count"], 1);
    let report: serde_json::Value = client
        .get(app.url(&format!("/projects/{id}/settings/drop-events/report")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(report, serde_json::json!({"dropped": 1}));

    let r = post_form(
        &client,
        &app,
        &format!("/projects/{id}/clear-data"),
        &csrf,
        &[],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        app.count(&project, superinsights::domain::model::Channel::Events)
            .await,
        0
    );

    let r = post_form(&client, &app, &format!("/projects/{id}/delete"), &csrf, &[]).await;
    assert_eq!(r.status(), 303);
    let (status, _) = page(&client, &app, &settings).await;
    assert_eq!(status, 404, "deleted projects are gone from the UI");
    assert_eq!(
        app.ingest("events", &key, &serde_json::json!({"eventName": "x"}))
            .await
            .status(),
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn roles_and_tenants_are_enforced() {
    let app = TestApp::spawn(&[]).await;
    let (alice, alice_settings) = register(&app, "alice@example.com").await;
    let (bob, bob_settings) = register(&app, "bob@example.com").await;
    let alice_id = alice_settings.split('/').nth(2).unwrap().to_string();

    // Bob is in another organization: no access to Alice's project by id.
    let (status, _) = page(&bob, &app, &alice_settings).await;
    assert_eq!(status, 403);
    let (_, bob_html) = page(&bob, &app, &bob_settings).await;
    let r = post_form(
        &bob,
        &app,
        &format!("/projects/{alice_id}/delete"),
        &csrf_of(&bob_html),
        &[],
    )
    .await;
    assert_eq!(r.status(), 403);
    let (status, _) = page(&bob, &app, "/projects/000000000000000000000000/settings").await;
    assert_eq!(status, 404);
    let (status, _) = page(&bob, &app, "/projects/not-an-id/settings").await;
    assert_eq!(status, 404, "bad ids are a 404, not a 500");

    // Alice adds Bob as a viewer: he sees the project list but cannot open settings or change keys.
    let (_, html) = page(&alice, &app, &alice_settings).await;
    let r = post_form(
        &alice,
        &app,
        &format!("/projects/{alice_id}/users/add"),
        &csrf_of(&html),
        &[("email", "bob@example.com"), ("role", "viewer")],
    )
    .await;
    assert!(r.text().await.unwrap().contains("now has access as viewer"));
    let alice_org = app
        .state
        .stores
        .accounts
        .memberships(
            app.state
                .stores
                .accounts
                .user_by_email("alice@example.com")
                .await
                .unwrap()
                .unwrap()
                .id,
        )
        .await
        .unwrap()[0]
        .0
        .id;
    let r = post_form(
        &bob,
        &app,
        "/org/switch",
        &csrf_of(&bob_html),
        &[
            ("orgId", &alice_org.to_hex()),
            ("redirectTo", "//evil.example"),
        ],
    )
    .await;
    assert_eq!(location(&r), "/projects", "no open redirect");
    let (_, list) = page(&bob, &app, "/projects").await;
    assert!(list.contains("My First Project"));
    let (status, _) = page(&bob, &app, &alice_settings).await;
    assert_eq!(status, 403, "viewers cannot open settings");
    let r = post_form(
        &bob,
        &app,
        &format!("/projects/{alice_id}/regenerate-keys"),
        &csrf_of(&bob_html),
        &[],
    )
    .await;
    assert_eq!(r.status(), 403);

    // Unknown emails get an invite link; owners cannot remove themselves here.
    let (_, html) = page(&alice, &app, &alice_settings).await;
    let r = post_form(
        &alice,
        &app,
        &format!("/projects/{alice_id}/users/add"),
        &csrf_of(&html),
        &[("email", "carol@example.com"), ("role", "admin")],
    )
    .await;
    let text = r.text().await.unwrap();
    assert!(
        text.contains("/accept-invite?token=inv_"),
        "invite link shown"
    );
    let alice_user = app
        .state
        .stores
        .accounts
        .user_by_email("alice@example.com")
        .await
        .unwrap()
        .unwrap();
    let r = post_form(
        &alice,
        &app,
        &format!("/projects/{alice_id}/users/remove"),
        &csrf_of(&html),
        &[("userId", &alice_user.id.to_hex())],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("cannot remove yourself"));
    let bob_user = app
        .state
        .stores
        .accounts
        .user_by_email("bob@example.com")
        .await
        .unwrap()
        .unwrap();
    let r = post_form(
        &alice,
        &app,
        &format!("/projects/{alice_id}/users/remove"),
        &csrf_of(&html),
        &[("userId", &bob_user.id.to_hex())],
    )
    .await;
    assert!(r.text().await.unwrap().contains("Member removed."));
    let (status, _) = page(&bob, &app, "/projects").await;
    assert_eq!(status, 200, "bob falls back to his own workspace");
    app.stop().await;
}

#[tokio::test]
async fn registration_can_be_closed() {
    let app = TestApp::spawn(&[("REGISTRATION_ENABLED", "false")]).await;
    let client = browser();
    let r = client.get(app.url("/auth/register")).send().await.unwrap();
    assert_eq!(r.status(), 303);
    let (_, html) = page(&client, &app, "/auth/login").await;
    let r = post_form(
        &client,
        &app,
        "/auth/register",
        &csrf_of(&html),
        &[("email", "x@example.com"), ("password", "password-123")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(app.state.stores.accounts.count_users().await.unwrap(), 0);
    app.stop().await;
}

/// The heart of the session layer: Redis is a cache in front of the durable store, so an outage
/// costs speed only — nobody is logged out, no request fails, and Redis is used again after.
#[tokio::test]
async fn redis_outage_does_not_log_users_out() {
    let mut redis = RedisServer::start().await;
    let app = TestApp::spawn(&[("REDIS_URL", &redis.url()), ("SESSION_STORE_REDIS", "true")]).await;
    let ready = async || {
        let v = app.readiness().await;
        v["redis"]["connected"].as_bool() == Some(true)
    };
    eventually(Duration::from_secs(10), "redis connected", ready).await;
    let (client, settings) = register(&app, "steady@example.com").await;
    let (status, _) = page(&client, &app, &settings).await;
    assert_eq!(status, 200);
    let keys_in_redis = || {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "dbsize"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<u64>()
            .unwrap_or(0)
    };
    assert!(keys_in_redis() >= 1, "the session is cached in redis");

    redis.kill();
    for _ in 0..5 {
        let (status, html) = page(&client, &app, &settings).await;
        assert_eq!(status, 200, "still signed in while redis is down");
        assert!(html.contains("My First Project"));
    }
    let (_, html) = page(&client, &app, &settings).await;
    let id = settings.split('/').nth(2).unwrap();
    let r = post_form(
        &client,
        &app,
        &format!("/projects/{id}/update"),
        &csrf_of(&html),
        &[
            ("name", "Renamed during outage"),
            ("environment", "production"),
            ("dataRetentionDays", "90"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200, "writes work during the outage");

    redis.restart().await;
    eventually(Duration::from_secs(15), "redis reconnected", ready).await;
    for _ in 0..3 {
        let (status, html) = page(&client, &app, &settings).await;
        assert_eq!(status, 200, "same session after redis is back");
        assert!(html.contains("Renamed during outage"));
    }
    let port = redis.port;
    eventually(
        Duration::from_secs(10),
        "session cached in redis again",
        async || {
            let out = std::process::Command::new("redis-cli")
                .args(["-p", &port.to_string(), "dbsize"])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u64>()
                .unwrap_or(0)
                >= 1
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_password_change_ends_the_users_other_sessions() {
    let app = TestApp::spawn(&[]).await;
    let (admin, _) = register(&app, "root@example.com").await;
    let (_, _) = register(&app, "member@example.com").await;
    let (member, ok) = login(&app, "member@example.com", "password-123").await;
    assert_eq!(ok.status(), 303);
    let (status, _) = page(&member, &app, "/projects").await;
    assert_eq!(status, 200);

    let target = app
        .state
        .stores
        .accounts
        .user_by_email("member@example.com")
        .await
        .unwrap()
        .unwrap();
    let (_, html) = page(&admin, &app, "/admin/users").await;
    let r = post_form(
        &admin,
        &app,
        "/admin/users/set-password",
        &csrf_of(&html),
        &[
            ("userId", &target.id.to_hex()),
            ("password", "brand-new-password"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = get_accepting(&member, &app, "/projects", "text/html").await;
    assert_eq!(
        r.status(),
        303,
        "the old session ended with the password change"
    );
    assert!(location(&r).starts_with("/auth/login"));
    let (_, ok) = login(&app, "member@example.com", "brand-new-password").await;
    assert_eq!(ok.status(), 303);

    // An admin changing their own password stays signed in.
    let me = app
        .state
        .stores
        .accounts
        .user_by_email("root@example.com")
        .await
        .unwrap()
        .unwrap();
    let r = post_form(
        &admin,
        &app,
        "/admin/users/set-password",
        &csrf_of(&html),
        &[
            ("userId", &me.id.to_hex()),
            ("password", "root-new-password"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (status, _) = page(&admin, &app, "/admin/users").await;
    assert_eq!(status, 200);
    app.stop().await;
}

#[tokio::test]
async fn users_change_their_own_password_on_the_account_page() {
    let app = TestApp::spawn(&[]).await;
    let (me, _) = register(&app, "self@example.com").await;
    let (other, ok) = login(&app, "self@example.com", "password-123").await;
    assert_eq!(ok.status(), 303);
    let (status, html) = page(&me, &app, "/account").await;
    assert_eq!(status, 200);
    assert!(html.contains("self@example.com") && html.contains("href=\"/account\""));
    let change = async |csrf: &str, current: &str, new: &str, again: &str| {
        post_form(
            &me,
            &app,
            "/account/password",
            csrf,
            &[
                ("currentPassword", current),
                ("newPassword", new),
                ("confirmPassword", again),
            ],
        )
        .await
    };
    for (current, new, again, says) in [
        (
            "wrong-password",
            "new-password-1",
            "new-password-1",
            "current password is not correct",
        ),
        (
            "password-123",
            "new-password-1",
            "new-password-2",
            "do not match",
        ),
        ("password-123", "short", "short", "at least 8 characters"),
    ] {
        let r = change(&csrf_of(&html), current, new, again).await;
        assert_eq!(r.status(), 400, "{says}");
        assert!(r.text().await.unwrap().contains(says), "{says}");
    }
    let r = change(
        &csrf_of(&html),
        "password-123",
        "new-password-1",
        "new-password-1",
    )
    .await;
    assert_answer(r, 200, "Your password was changed.").await;
    // This session goes on; the other one ended; the new password signs in, the old one not.
    let (status, _) = page(&me, &app, "/account").await;
    assert_eq!(status, 200);
    let r = get_accepting(&other, &app, "/projects", "text/html").await;
    assert_eq!(r.status(), 303, "the other session ended");
    let (_, old) = login(&app, "self@example.com", "password-123").await;
    assert_ne!(old.status(), 303);
    let (_, new) = login(&app, "self@example.com", "new-password-1").await;
    assert_eq!(new.status(), 303);
    // The email changes with the password, never onto another account's.
    let (_, html) = page(&me, &app, "/account").await;
    let (_, _) = register(&app, "taken@example.com").await;
    let email = async |address: &str, password: &str| {
        post_form(
            &me,
            &app,
            "/account/email",
            &csrf_of(&html),
            &[("email", address), ("password", password)],
        )
        .await
    };
    let r = email("taken@example.com", "new-password-1").await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("already exists"));
    assert_eq!(email("me@example.com", "wrong").await.status(), 400);
    assert_eq!(email("not an email", "new-password-1").await.status(), 400);
    let r = email("Me@Example.com", "new-password-1").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("me@example.com"));
    let (_, ok) = login(&app, "me@example.com", "new-password-1").await;
    assert_eq!(ok.status(), 303, "the new email signs in");
    // The first account is the platform admin, who sees whether registration is open.
    let (status, hub) = page(&me, &app, "/admin").await;
    assert_eq!(status, 200);
    assert!(
        hub.contains(r#"id="registration""#) && hub.contains("Open: anyone"),
        "{hub}"
    );
    // ... and closes it in the page: registration is refused until it is opened again.
    let r = post_form(
        &me,
        &app,
        "/admin/registration",
        &csrf_of(&hub),
        &[("open", "false")],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, hub) = page(&me, &app, "/admin").await;
    assert!(
        hub.contains("Closed: accounts come from invitations only."),
        "{hub}"
    );
    let stranger = crate::support::browser();
    let r = stranger
        .get(app.url("/auth/register"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "the form sends strangers to the login");
    let (_, login_page) = page(&stranger, &app, "/auth/login").await;
    let r = post_form(
        &stranger,
        &app,
        "/auth/register",
        &csrf_of(&login_page),
        &[("email", "late@example.com"), ("password", "password-123")],
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = post_form(
        &me,
        &app,
        "/admin/registration",
        &csrf_of(&hub),
        &[("open", "true")],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (status, _) = page(&stranger, &app, "/auth/register").await;
    assert_eq!(status, 200, "open again");
    app.stop().await;
}
