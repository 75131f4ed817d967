//! The audit trail through real HTTP (reference §5.9): actions recorded by the use cases,
//! error answers recorded by the error handler, nothing secret in any entry, and the
//! `/admin/logs` and `/org/logs` viewers with their filters, paging and scoping.

use crate::support::{
    TestApp, browser, csrf_of, get_json, login, page, post_form, project_id_of, public_key_of,
    register, submit,
};
use serde_json::Value;

fn codes(v: &Value) -> Vec<String> {
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            e["actionCode"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("error {}", e["status"]))
        })
        .collect()
}

#[tokio::test]
async fn actions_and_errors_are_logged_without_secrets_and_the_admin_viewer_filters_them() {
    let app = TestApp::spawn(&[]).await;
    let (root, _) = register(&app, "root@example.com").await;
    let (alice, settings) = register(&app, "alice@example.com").await;
    let alice_project = project_id_of(&settings);
    let alice_key = public_key_of(&app, &alice_project).await;

    // Log out and in again.
    let (_, html) = page(&alice, &app, "/projects").await;
    let r = post_form(&alice, &app, "/auth/logout", &csrf_of(&html), &[]).await;
    assert!(r.status().is_redirection());
    let (alice, r) = login(&app, "alice@example.com", "password-123").await;
    assert!(r.status().is_redirection());
    // A project, an invite (whose token must not reach the log), an error.
    let r = submit(
        &alice,
        &app,
        "/projects/new",
        "/projects",
        &[("name", "Shop"), ("environment", "staging")],
    )
    .await;
    assert_eq!(r.status(), 303);
    let shop = project_id_of(r.headers()["location"].to_str().unwrap());
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/invite",
        &[("email", "carol@example.com"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let invite_page = r.text().await.unwrap();
    let token_at = invite_page.find("token=inv_").expect("an invite link") + 6;
    let token: String = invite_page[token_at..].chars().take(52).collect();
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/set-role",
        &[("role", "owner")],
    )
    .await;
    assert_eq!(r.status(), 400, "no userId");

    // A plain user cannot read the platform log.
    let (status, _) = get_json(&alice, &app, "/admin/logs").await;
    assert_eq!(status, 403);

    let (status, all) = get_json(&root, &app, "/admin/logs?limit=200").await;
    assert_eq!(status, 200);
    let seen = codes(&all);
    for code in [
        "AUTH_REGISTER_SUCCESS",
        "AUTH_LOGOUT",
        "AUTH_LOGIN_SUCCESS",
        "PROJECT_CREATE",
        "ORG_USER_INVITE",
        "error 400",
    ] {
        assert!(seen.iter().any(|c| c == code), "{code} in {seen:?}");
    }
    // Newest first: alice's refused look at the platform log, then her bad form.
    assert_eq!(seen[..2], ["error 403", "error 400"]);
    assert_eq!(all["entries"][0]["path"], "/admin/logs");
    let error = &all["entries"][1];
    assert_eq!(error["kind"], "error");
    assert_eq!(error["email"], "alice@example.com");
    assert_eq!(error["path"], "/org/users/set-role");
    assert_eq!(error["method"], "POST");
    assert_eq!(error["errorMessage"], "userId is required");
    assert_eq!(error["ip"], "127.0.0.1");

    // Nothing secret in any entry: passwords, keys, invite tokens, session ids.
    let text = all.to_string();
    for secret in ["password-123", alice_key.as_str(), token.as_str()] {
        assert!(!text.contains(secret), "{secret} leaked into the log");
    }

    // Filters.
    let (_, v) = get_json(&root, &app, "/admin/logs?kind=error").await;
    assert_eq!(codes(&v), vec!["error 403", "error 400"]);
    let (_, v) = get_json(&root, &app, "/admin/logs?actionCode=PROJECT_CREATE").await;
    assert_eq!(v["total"], 1);
    assert_eq!(v["entries"][0]["projectId"], shop.as_str());
    assert_eq!(v["entries"][0]["email"], "alice@example.com");
    let (_, v) = get_json(&root, &app, "/admin/logs?email=ROOT@example.com").await;
    assert_eq!(codes(&v), vec!["AUTH_REGISTER_SUCCESS"]);
    let root_id = v["entries"][0]["userId"].as_str().unwrap().to_string();
    let (_, v) = get_json(&root, &app, &format!("/admin/logs?userId={root_id}")).await;
    assert_eq!(v["total"], 1);
    let (_, v) = get_json(
        &root,
        &app,
        &format!("/admin/logs?projectId={alice_project}"),
    )
    .await;
    assert_eq!(codes(&v), vec!["AUTH_REGISTER_SUCCESS"]);
    let (_, v) = get_json(&root, &app, "/admin/logs?contains=SET-ROLE").await;
    assert_eq!(codes(&v), vec!["error 400"]);
    let (_, v) = get_json(&root, &app, "/admin/logs?to=2000-01-01").await;
    assert_eq!(v["total"], 0);
    let (_, v) = get_json(&root, &app, "/admin/logs?from=2000-01-01&limit=10&page=1").await;
    assert_eq!(v["total"].as_u64(), Some(seen.len() as u64));
    assert_eq!(v["limit"], 10);
    // Bad input is a 400 naming the parameter, never a 500.
    let (status, v) = get_json(&root, &app, "/admin/logs?kind=warning").await;
    assert_eq!((status, v["parameter"].as_str()), (400, Some("kind")));
    let long = "x".repeat(201);
    let (status, _) = get_json(&root, &app, &format!("/admin/logs?contains={long}")).await;
    assert_eq!(status, 400);

    // The HTML page, with the filter echoed escaped.
    let (status, html) = page(
        &root,
        &app,
        "/admin/logs?contains=%3Cscript%3Ex&kind=action",
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("id=\"log-filters\""));
    assert!(html.contains("&#60;script&#62;x") || html.contains("&lt;script&gt;x"));
    assert!(!html.contains("<script>x"));
    let (_, html) = page(&root, &app, "/admin/logs?actionCode=PROJECT_CREATE").await;
    assert!(html.contains("PROJECT_CREATE") && html.contains("alice@example.com"));
    app.stop().await;
}

#[tokio::test]
async fn paging_is_newest_first_in_pages_of_the_limit() {
    let app = TestApp::spawn(&[]).await;
    let (root, _) = register(&app, "root@example.com").await;
    for _ in 0..12 {
        let (_, r) = login(&app, "root@example.com", "password-123").await;
        assert!(r.status().is_redirection());
    }
    let (_, first) = get_json(
        &root,
        &app,
        "/admin/logs?actionCode=AUTH_LOGIN_SUCCESS&limit=10",
    )
    .await;
    let (_, second) = get_json(
        &root,
        &app,
        "/admin/logs?actionCode=AUTH_LOGIN_SUCCESS&limit=10&page=2",
    )
    .await;
    assert_eq!(
        (first["total"].as_u64(), first["pages"].as_u64()),
        (Some(12), Some(2))
    );
    assert_eq!(first["entries"].as_array().unwrap().len(), 10);
    assert_eq!(second["entries"].as_array().unwrap().len(), 2);
    let ts = |v: &Value| -> Vec<String> {
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["ts"].as_str().unwrap().to_string())
            .collect()
    };
    let mut all = ts(&first);
    all.extend(ts(&second));
    let mut sorted = all.clone();
    sorted.sort();
    sorted.reverse();
    assert_eq!(all, sorted, "newest first across pages");
    let (_, html) = page(
        &root,
        &app,
        "/admin/logs?actionCode=AUTH_LOGIN_SUCCESS&limit=10",
    )
    .await;
    assert!(html.contains("rel=\"next\"") && html.contains("page=2"));
    app.stop().await;
}

#[tokio::test]
async fn the_org_viewer_shows_only_its_projects_and_its_own_entries() {
    let app = TestApp::spawn(&[]).await;
    let (_root, _) = register(&app, "root@example.com").await;
    let (alice, alice_settings) = register(&app, "alice@example.com").await;
    let (bob, bob_settings) = register(&app, "bob@example.com").await;
    let alice_project = project_id_of(&alice_settings);
    let bob_project = project_id_of(&bob_settings);
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/invite",
        &[("email", "carol@example.com"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = submit(
        &bob,
        &app,
        "/projects/new",
        "/projects",
        &[("name", "Bob's")],
    )
    .await;
    assert_eq!(r.status(), 303);

    let (status, v) = get_json(&alice, &app, "/org/logs?limit=200").await;
    assert_eq!(status, 200);
    let entries = v["entries"].as_array().unwrap();
    assert!(!entries.is_empty());
    let alice_org = entries
        .iter()
        .find(|e| e["actionCode"] == "ORG_USER_INVITE")
        .expect("the organization's own membership change is in its log")["orgId"]
        .clone();
    for e in entries {
        assert!(
            e["projectId"] == alice_project.as_str() || e["orgId"] == alice_org,
            "only alice's organization: {e}"
        );
        assert_ne!(e["projectId"], bob_project.as_str());
        assert_ne!(e["email"], "bob@example.com");
    }
    // Even when asked for bob's project by id.
    let (_, v) = get_json(&alice, &app, &format!("/org/logs?projectId={bob_project}")).await;
    assert_eq!(v["total"], 0);
    let (status, html) = page(&alice, &app, "/org/logs").await;
    assert_eq!(status, 200);
    assert!(html.contains("ORG_USER_INVITE"));

    // A viewer of the organization may not read its log.
    let carol = browser();
    let token_page = {
        let r = submit(
            &alice,
            &app,
            "/org/users",
            "/org/users/invite",
            &[("email", "dave@example.com"), ("role", "viewer")],
        )
        .await;
        r.text().await.unwrap()
    };
    let at = token_page.find("/accept-invite?token=").unwrap() + "/accept-invite?token=".len();
    let token: String = token_page[at..].chars().take(52).collect();
    let (_, html) = page(&carol, &app, &format!("/accept-invite?token={token}")).await;
    let r = post_form(
        &carol,
        &app,
        "/accept-invite",
        &csrf_of(&html),
        &[("token", &token), ("password", "password-456")],
    )
    .await;
    assert!(r.status().is_redirection(), "{}", r.status());
    let (status, _) = get_json(&carol, &app, "/org/logs").await;
    assert_eq!(status, 403);
    let (_, v) = get_json(&alice, &app, "/org/logs?actionCode=ORG_INVITE_ACCEPT").await;
    assert_eq!(v["entries"][0]["email"], "dave@example.com");
    app.stop().await;
}
