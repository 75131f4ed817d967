//! Organization members, invites and the platform-admin pages through real HTTP with cookie-jar
//! clients, as a browser would use them.

use crate::support::{
    TestApp, assert_answer, browser, csrf_of, get_accepting, location, login, page, post_form,
    project_id_of as project_id, register, submit,
};
use reqwest::Client;
use serde_json::Value;
use superinsights::{
    domain::{ids::DocId, timestamp::now_ms},
    services::orgs::token_hash,
    store::{Invite, InviteScope, InviteStatus, OrgRole, User},
};

fn sid(r: &reqwest::Response) -> Option<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("sid="))
        .map(|c| c.split(';').next().unwrap().to_string())
}

async fn user(app: &TestApp, email: &str) -> User {
    app.state
        .stores
        .accounts
        .user_by_email(email)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{email} has an account"))
}

/// The organizations the user is an active member of, with the role.
async fn orgs_of(app: &TestApp, email: &str) -> Vec<(DocId, String)> {
    let id = user(app, email).await.id;
    app.state
        .stores
        .accounts
        .memberships(id)
        .await
        .unwrap()
        .into_iter()
        .map(|(o, r)| (o.id, r.to_string()))
        .collect()
}

/// The token of the invite link shown on a page (`<path>?token=…`).
fn token_in(html: &str, path: &str) -> String {
    let marker = format!("{path}?token=");
    let at = html
        .find(&marker)
        .unwrap_or_else(|| panic!("the page shows a {path} link"))
        + marker.len();
    html[at..].split('"').next().unwrap().to_string()
}

/// A server whose first account (the platform admin) is `root@example.com`, so that accounts
/// registered afterwards are plain users. Returns the app and the admin's client.
async fn app_with_admin() -> (TestApp, Client) {
    let app = TestApp::spawn(&[]).await;
    let (root, _) = register(&app, "root@example.com").await;
    assert_eq!(user(&app, "root@example.com").await.role.as_str(), "admin");
    (app, root)
}

#[tokio::test]
async fn an_invited_stranger_creates_an_account_and_lands_in_the_organization() {
    let (app, _root) = app_with_admin().await;
    let (alice, alice_settings) = register(&app, "alice@example.com").await;
    let alice_project = project_id(&alice_settings);

    let (status, html) = page(&alice, &app, "/org/users").await;
    assert_eq!(status, 200);
    assert!(html.contains("alice@example.com") && html.contains("Create invite"));

    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/invite",
        &[("email", "Carol@Example.com"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    let token = token_in(&html, "/accept-invite");
    assert!(
        token.starts_with("inv_")
            && token.len() == 52
            && token[4..].bytes().all(|b| b.is_ascii_hexdigit()),
        "{token}"
    );
    assert!(
        html.contains(&format!("http://{}/accept-invite?token=", app.addr)),
        "the link uses the request's host when PUBLIC_URL is unset"
    );
    let stored = app
        .state
        .stores
        .invites
        .invite_by_token_hash(&token_hash(&token))
        .await
        .unwrap()
        .expect("stored by the SHA-256 of the token");
    assert_ne!(stored.token_hash, token, "the token itself is never stored");
    assert_eq!(
        (
            stored.email.as_str(),
            stored.scope.role_str(),
            stored.status.as_str()
        ),
        ("carol@example.com", "viewer", "pending")
    );
    let week = 7 * 24 * 3600 * 1000;
    assert!((stored.expires_at - stored.created_at - week).abs() < 1000);

    // The link is shown once: the members page lists the invite, not the token.
    let (_, html) = page(&alice, &app, "/org/users").await;
    assert!(html.contains("carol@example.com") && !html.contains(&token));
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/invite",
        &[("email", "carol@example.com"), ("role", "owner")],
    )
    .await;
    assert_eq!(r.status(), 409, "an invite is already pending");

    // Carol opens the link in her own browser and creates her account.
    let carol = browser();
    let invite_path = format!("/accept-invite?token={token}");
    let (status, html) = page(&carol, &app, &invite_path).await;
    assert_eq!(status, 200);
    assert!(html.contains("Join alice") && html.contains("s Workspace"));
    assert!(html.contains("Create account and join") && html.contains("carol@example.com"));
    let csrf = csrf_of(&html);
    let r = post_form(
        &carol,
        &app,
        "/accept-invite",
        &csrf,
        &[("token", &token), ("name", "Carol"), ("password", "short")],
    )
    .await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("at least 8 characters"));
    let r = post_form(
        &carol,
        &app,
        "/accept-invite",
        &csrf,
        &[
            ("token", &token),
            ("name", "Carol"),
            ("password", "carol-password"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/projects");
    assert!(sid(&r).is_some(), "signed in with a new session id");
    let (status, html) = page(&carol, &app, "/projects").await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&format!("/projects/{alice_project}/dashboard")),
        "Carol sees the organization's project"
    );

    let carol_user = user(&app, "carol@example.com").await;
    assert_eq!(carol_user.role.as_str(), "user");
    assert_eq!(carol_user.name.as_deref(), Some("Carol"));
    let carol_orgs = orgs_of(&app, "carol@example.com").await;
    assert_eq!(carol_orgs.len(), 1, "no workspace of her own");
    assert_eq!(carol_orgs[0].1, "viewer");
    assert_eq!(
        app.state
            .stores
            .invites
            .invite_by_token_hash(&token_hash(&token))
            .await
            .unwrap()
            .unwrap()
            .status
            .as_str(),
        "accepted"
    );
    let (status, _) = page(&browser(), &app, &invite_path).await;
    assert_eq!(status, 400, "an accepted invite cannot be used again");
    let (_, carol_login) = login(&app, "carol@example.com", "carol-password").await;
    assert_eq!(carol_login.status(), 303);

    // A viewer sees the members read-only and cannot change anything.
    let (status, html) = page(&carol, &app, "/org/users").await;
    assert_eq!(status, 200);
    assert!(html.contains("alice@example.com") && html.contains("Only owners"));
    assert!(!html.contains("Create invite") && !html.contains("/org/users/remove"));
    let csrf = csrf_of(&html);
    let alice_id = user(&app, "alice@example.com").await.id.to_hex();
    for (action, fields) in [
        (
            "/org/users/invite",
            vec![("email", "eve@example.com"), ("role", "owner")],
        ),
        (
            "/org/users/add",
            vec![("email", "root@example.com"), ("role", "owner")],
        ),
        (
            "/org/users/set-role",
            vec![("userId", alice_id.as_str()), ("role", "viewer")],
        ),
        ("/org/users/remove", vec![("userId", alice_id.as_str())]),
        ("/org/rename", vec![("name", "Carol's now")]),
    ] {
        let r = post_form(&carol, &app, action, &csrf, &fields).await;
        assert_eq!(r.status(), 403, "{action}");
        assert!(
            r.text().await.unwrap().contains("Only an owner"),
            "{action}"
        );
    }
    assert_eq!(orgs_of(&app, "alice@example.com").await[0].1, "owner");
    app.stop().await;
}

#[tokio::test]
async fn owners_add_members_and_the_last_owner_is_protected() {
    let (app, _root) = app_with_admin().await;
    let (alice, _) = register(&app, "alice@example.com").await;
    register(&app, "bob@example.com").await;
    let alice_org = orgs_of(&app, "alice@example.com").await[0].0;
    let alice_id = user(&app, "alice@example.com").await.id.to_hex();
    let bob_id = user(&app, "bob@example.com").await.id.to_hex();

    let add = async |email: &str, role: &str| {
        submit(
            &alice,
            &app,
            "/org/users",
            "/org/users/add",
            &[("email", email), ("role", role)],
        )
        .await
    };
    let r = add("nobody@example.com", "viewer").await;
    assert_answer(r, 404, "User not found. Use invite instead.").await;
    let r = add("bob@example.com", "viewer").await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("now has access as viewer"));
    let r = add("bob@example.com", "owner").await;
    assert_eq!(r.status(), 409, "already an active member");
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/invite",
        &[("email", "bob@example.com"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 409, "members cannot be invited");

    // The only owner can neither demote nor remove herself.
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/set-role",
        &[("userId", &alice_id), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("last owner"));
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/remove",
        &[("userId", &alice_id)],
    )
    .await;
    assert_eq!(r.status(), 400, "not yourself");
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/remove",
        &[("userId", "not-an-id")],
    )
    .await;
    assert_eq!(r.status(), 400);

    // Bob becomes an owner; then Alice may step down, and her session id changes.
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/set-role",
        &[("userId", &bob_id), ("role", "owner")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let (alice, logged_in) = login(&app, "alice@example.com", "password-123").await;
    let before = sid(&logged_in).unwrap();
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/set-role",
        &[("userId", &alice_id), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 303);
    let after = sid(&r).expect("own privileges changed: new session id");
    assert_ne!(before, after);
    let (status, html) = page(&alice, &app, "/org/users").await;
    assert_eq!(status, 200, "still signed in after the rotation");
    assert!(html.contains("Only owners"), "now read-only");

    // Bob (now the only owner) manages Alice's workspace.
    let (bob, _) = login(&app, "bob@example.com", "password-123").await;
    let r = submit(
        &bob,
        &app,
        "/projects",
        "/org/switch",
        &[("orgId", &alice_org.to_hex())],
    )
    .await;
    assert_eq!(r.status(), 303);
    let r = submit(
        &bob,
        &app,
        "/org/users",
        "/org/users/set-role",
        &[("userId", &bob_id), ("role", "admin")],
    )
    .await;
    assert_eq!(r.status(), 403, "the last owner cannot be demoted");
    let r = submit(&bob, &app, "/org/users", "/org/rename", &[("name", "  ")]).await;
    assert_eq!(r.status(), 400, "a name is required");
    let r = submit(
        &bob,
        &app,
        "/org/users",
        "/org/rename",
        &[("name", "Shared Space")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("Shared Space"));
    let r = submit(
        &bob,
        &app,
        "/org/users",
        "/org/users/remove",
        &[("userId", &alice_id)],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(orgs_of(&app, "alice@example.com").await.is_empty());
    let (status, html) = page(&alice, &app, "/projects").await;
    assert_eq!(status, 403, "no organization left: {html}");

    // A removed member can be added again (the membership is reactivated).
    let r = submit(
        &bob,
        &app,
        "/org/users",
        "/org/users/add",
        &[("email", "alice@example.com"), ("role", "sorcerer")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(
        orgs_of(&app, "alice@example.com").await,
        vec![(alice_org, "viewer".to_string())],
        "unknown roles become viewer"
    );
    app.stop().await;
}

#[tokio::test]
async fn unknown_revoked_expired_and_foreign_invite_tokens_are_refused() {
    let (app, _root) = app_with_admin().await;
    let (alice, _) = register(&app, "alice@example.com").await;
    let alice_user = user(&app, "alice@example.com").await;
    let alice_org = orgs_of(&app, "alice@example.com").await[0].0;
    let visitor = browser();

    let (status, _) = page(&visitor, &app, "/accept-invite").await;
    assert_eq!(status, 400, "missing token");
    let (status, html) = page(&visitor, &app, "/accept-invite?token=").await;
    assert_eq!(status, 400, "{html}");
    let (status, html) = page(
        &visitor,
        &app,
        &format!("/accept-invite?token=inv_{}", "0".repeat(48)),
    )
    .await;
    assert_eq!(status, 404);
    assert!(html.contains("not valid"));

    // Revoked by the owner.
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/invite",
        &[("email", "dave@example.com"), ("role", "viewer")],
    )
    .await;
    let token = token_in(&r.text().await.unwrap(), "/accept-invite");
    let (status, form) = page(&visitor, &app, &format!("/accept-invite?token={token}")).await;
    assert_eq!(status, 200);
    let pending = app
        .state
        .stores
        .invites
        .pending_invites(Some(alice_org))
        .await
        .unwrap();
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/invites/revoke",
        &[("inviteId", &pending[0].id.to_hex())],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("revoked"));
    let (status, html) = page(&visitor, &app, &format!("/accept-invite?token={token}")).await;
    assert_eq!(status, 400);
    assert!(html.contains("revoked"));
    let r = post_form(
        &visitor,
        &app,
        "/accept-invite",
        &csrf_of(&form),
        &[
            ("token", &token),
            ("name", "Dave"),
            ("password", "dave-password"),
        ],
    )
    .await;
    assert_eq!(r.status(), 400, "a revoked invite cannot be accepted");
    assert!(
        app.state
            .stores
            .accounts
            .user_by_email("dave@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // Past its expiry: refused and marked expired.
    let expired = "inv_expired-for-the-test";
    app.state
        .stores
        .invites
        .create_invite(&Invite {
            id: DocId::new(),
            email: "late@example.com".into(),
            token_hash: token_hash(expired),
            scope: InviteScope::Org {
                org_id: alice_org,
                role: OrgRole::Viewer,
            },
            status: InviteStatus::Pending,
            created_by: alice_user.id,
            expires_at: now_ms() - 1000,
            created_at: now_ms() - 8 * 24 * 3600 * 1000,
        })
        .await
        .unwrap();
    let (status, html) = page(&visitor, &app, &format!("/accept-invite?token={expired}")).await;
    assert_eq!(status, 400);
    assert!(html.contains("expired"));
    let stored = app
        .state
        .stores
        .invites
        .invite_by_token_hash(&token_hash(expired))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status.as_str(), "expired");

    // An organization token does not open the platform route, and vice versa.
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/invite",
        &[("email", "erin@example.com"), ("role", "viewer")],
    )
    .await;
    let org_token = token_in(&r.text().await.unwrap(), "/accept-invite");
    let (status, _) = page(
        &visitor,
        &app,
        &format!("/accept-platform-invite?token={org_token}"),
    )
    .await;
    assert_eq!(status, 404);
    app.stop().await;
}

#[tokio::test]
async fn invited_existing_accounts_join_signed_in_or_with_their_password() {
    let (app, _root) = app_with_admin().await;
    let (alice, _) = register(&app, "alice@example.com").await;
    let (frank, _) = register(&app, "frank@example.com").await;
    register(&app, "gina@example.com").await;
    let alice_org = orgs_of(&app, "alice@example.com").await[0].0;
    let invite = async |email: &str, role: &str| {
        let r = submit(
            &alice,
            &app,
            "/org/users",
            "/org/users/invite",
            &[("email", email), ("role", role)],
        )
        .await;
        assert_eq!(r.status(), 200);
        token_in(&r.text().await.unwrap(), "/accept-invite")
    };

    // Signed in as the invitee: one button.
    let token = invite("frank@example.com", "admin").await;
    let path = format!("/accept-invite?token={token}");
    let (status, html) = page(&frank, &app, &path).await;
    assert_eq!(status, 200);
    assert!(html.contains(">Join<") && !html.contains("name=\"password\""));
    let r = post_form(
        &frank,
        &app,
        "/accept-invite",
        &csrf_of(&html),
        &[("token", &token)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(
        orgs_of(&app, "frank@example.com")
            .await
            .contains(&(alice_org, "admin".to_string()))
    );

    // Someone else's browser: the password of the invited account is needed.
    let token = invite("gina@example.com", "viewer").await;
    let path = format!("/accept-invite?token={token}");
    let stranger = browser();
    let (status, html) = page(&stranger, &app, &path).await;
    assert_eq!(status, 200);
    assert!(html.contains("name=\"password\"") && html.contains("Confirm and join"));
    assert!(html.contains("/auth/login?next=/accept-invite%3Ftoken%3Dinv_"));
    let csrf = csrf_of(&html);
    let r = post_form(
        &stranger,
        &app,
        "/accept-invite",
        &csrf,
        &[("token", &token), ("password", "not-gina's")],
    )
    .await;
    assert_answer(r, 403, "Sign in as gina@example.com").await;
    let r = post_form(
        &stranger,
        &app,
        "/accept-invite",
        &csrf,
        &[("token", &token), ("password", "password-123")],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert!(
        orgs_of(&app, "gina@example.com")
            .await
            .contains(&(alice_org, "viewer".to_string()))
    );

    // Already a member by the time the invite is used: 409.
    let token = invite("root@example.com", "viewer").await;
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/add",
        &[("email", "root@example.com"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let (root, _) = login(&app, "root@example.com", "password-123").await;
    let (_, html) = page(&root, &app, &format!("/accept-invite?token={token}")).await;
    let r = post_form(
        &root,
        &app,
        "/accept-invite",
        &csrf_of(&html),
        &[("token", &token)],
    )
    .await;
    assert_eq!(r.status(), 409);
    app.stop().await;
}

#[tokio::test]
async fn admin_pages_are_for_platform_admins_only() {
    let (app, root) = app_with_admin().await;
    let (bob, _) = register(&app, "bob@example.com").await;
    let bob_id = user(&app, "bob@example.com").await.id.to_hex();

    for path in ["/admin", "/admin/users", "/admin/orgs", "/admin/system"] {
        let (status, html) = page(&bob, &app, path).await;
        assert_eq!(status, 403, "{path}");
        assert!(html.contains("platform administrators only"), "{path}");
        let r = browser()
            .get(app.url(path))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "signed out: {path}");
        assert!(location(&r).starts_with("/auth/login?next="));
    }
    let (_, html) = page(&bob, &app, "/projects").await;
    assert!(!html.contains("href=\"/admin\""), "no admin link for users");
    let csrf = csrf_of(&html);
    for (action, fields) in [
        (
            "/admin/users/set-role",
            vec![("userId", bob_id.as_str()), ("role", "admin")],
        ),
        (
            "/admin/users/platform-invite",
            vec![("email", "x@example.com"), ("role", "admin")],
        ),
        ("/admin/orgs", vec![("name", "Mine")]),
    ] {
        let r = post_form(&bob, &app, action, &csrf, &fields).await;
        assert_eq!(r.status(), 403, "{action}");
    }
    assert_eq!(user(&app, "bob@example.com").await.role.as_str(), "user");

    let (status, html) = page(&root, &app, "/admin").await;
    assert_eq!(status, 200);
    assert!(html.contains("2 users, 1 admin"));
    let (status, html) = page(&root, &app, "/admin/users").await;
    assert_eq!(status, 200);
    assert!(html.contains("bob@example.com") && html.contains("root@example.com"));
    let (status, html) = page(&root, &app, "/admin/orgs").await;
    assert_eq!(status, 200);
    assert!(html.contains("<strong>bob") && html.contains("s Workspace"));
    app.stop().await;
}

#[tokio::test]
async fn admins_change_roles_and_passwords_and_delete_users() {
    let (app, root) = app_with_admin().await;
    let (bob, _) = register(&app, "bob@example.com").await;
    register(&app, "carl@example.com").await;
    let root_id = user(&app, "root@example.com").await.id.to_hex();
    let bob_id = user(&app, "bob@example.com").await.id.to_hex();
    let carl_id = user(&app, "carl@example.com").await.id.to_hex();
    let admin_post = async |action: &str, fields: &[(&str, &str)]| {
        submit(&root, &app, "/admin/users", action, fields).await
    };

    // Roles.
    let r = admin_post(
        "/admin/users/set-role",
        &[("userId", &root_id), ("role", "user")],
    )
    .await;
    assert_eq!(r.status(), 403, "the last admin stays admin");
    assert!(r.text().await.unwrap().contains("last platform admin"));
    let r = admin_post(
        "/admin/users/set-role",
        &[("userId", &bob_id), ("role", "superuser")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = admin_post(
        "/admin/users/set-role",
        &[("userId", &bob_id), ("role", "admin")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(user(&app, "bob@example.com").await.role.as_str(), "admin");
    let (status, _) = page(&bob, &app, "/admin/users").await;
    assert_eq!(status, 200, "Bob is an admin now");
    let r = admin_post(
        "/admin/users/set-role",
        &[("userId", &bob_id), ("role", "user")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let (status, _) = page(&bob, &app, "/admin/users").await;
    assert_eq!(status, 403, "and not any more");

    // Passwords.
    let r = admin_post(
        "/admin/users/set-password",
        &[("userId", &bob_id), ("password", "short")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = admin_post(
        "/admin/users/set-password",
        &[("userId", &bob_id), ("password", "brand-new-secret")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert!(
        user(&app, "bob@example.com")
            .await
            .password_hash
            .starts_with("$argon2id$")
    );
    let (_, old) = login(&app, "bob@example.com", "password-123").await;
    assert_eq!(old.status(), 400, "the old password no longer works");
    let (_, new) = login(&app, "bob@example.com", "brand-new-secret").await;
    assert_eq!(new.status(), 303);

    // Deletion: JSON for API clients (SuperInsights' shape), a redirect for browsers.
    let (_, html) = page(&root, &app, "/admin/users").await;
    let csrf = csrf_of(&html);
    let delete_json = async |id: &str| {
        let r = root
            .post(app.url("/admin/users/delete"))
            .header("accept", "application/json")
            .form(&[("_csrf", csrf.as_str()), ("userId", id)])
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<Value>().await.unwrap())
    };
    let (status, body) = delete_json(&root_id).await;
    assert_eq!(status, 400);
    assert_eq!(body["success"], false);
    let (status, body) = delete_json("nope").await;
    assert_eq!(
        (status.as_u16(), body["success"].clone()),
        (400, false.into())
    );
    let (status, body) = delete_json(&DocId::new().to_hex()).await;
    assert_eq!(
        (status.as_u16(), body["success"].clone()),
        (404, false.into())
    );
    let bob_org = orgs_of(&app, "bob@example.com").await[0].0;
    let (status, body) = delete_json(&bob_id).await;
    assert_eq!(status, 200);
    assert_eq!(body["success"], true);
    assert!(body["message"].is_string());
    assert!(
        app.state
            .stores
            .accounts
            .user_by_email("bob@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        app.state
            .stores
            .accounts
            .members(bob_org)
            .await
            .unwrap()
            .is_empty(),
        "memberships are gone with the user"
    );
    let (_, gone) = login(&app, "bob@example.com", "brand-new-secret").await;
    assert_eq!(gone.status(), 400, "a deleted user cannot log in");
    let r = get_accepting(&bob, &app, "/projects", "text/html").await;
    assert_eq!(r.status(), 303, "the deleted user's session ends");

    let r = post_form(
        &root,
        &app,
        "/admin/users/delete",
        &csrf,
        &[("userId", &root_id)],
    )
    .await;
    assert_eq!(r.status(), 400, "not yourself (HTML)");
    assert!(r.text().await.unwrap().contains("your own account"));
    let r = post_form(
        &root,
        &app,
        "/admin/users/delete",
        &csrf,
        &[("userId", &carl_id)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/admin/users?notice=deleted");
    let (_, html) = page(&root, &app, &location(&r)).await;
    assert!(html.contains("User deleted.") && !html.contains("carl@example.com"));
    app.stop().await;
}

#[tokio::test]
async fn platform_invites_create_accounts_with_a_workspace_or_promote() {
    let (app, root) = app_with_admin().await;
    register(&app, "bob@example.com").await;
    let platform_invite = async |email: &str, role: &str| {
        submit(
            &root,
            &app,
            "/admin/users",
            "/admin/users/platform-invite",
            &[("email", email), ("role", role)],
        )
        .await
    };

    let r = platform_invite("bob@example.com", "user").await;
    assert_eq!(r.status(), 409, "the account exists");
    let r = platform_invite("nina@example.com", "user").await;
    assert_eq!(r.status(), 200);
    let token = token_in(&r.text().await.unwrap(), "/accept-platform-invite");
    assert!(token.starts_with("pinv_") && token.len() == 53, "{token}");
    let r = platform_invite("nina@example.com", "admin").await;
    assert_eq!(r.status(), 409, "an invite is pending");
    let (_, html) = page(&root, &app, "/admin/users").await;
    assert!(html.contains("nina@example.com") && !html.contains(&token));

    let (status, _) = page(&browser(), &app, &format!("/accept-invite?token={token}")).await;
    assert_eq!(
        status, 404,
        "platform tokens do not open organization invites"
    );
    let nina = browser();
    let (status, html) = page(
        &nina,
        &app,
        &format!("/accept-platform-invite?token={token}"),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("Join SuperInsights"));
    let r = post_form(
        &nina,
        &app,
        "/accept-platform-invite",
        &csrf_of(&html),
        &[
            ("token", &token),
            ("name", "Nina"),
            ("password", "nina-password"),
        ],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(location(&r), "/projects");
    let nina_user = user(&app, "nina@example.com").await;
    assert_eq!(
        (nina_user.role.as_str(), nina_user.name.as_deref()),
        ("user", Some("Nina"))
    );
    let nina_orgs = orgs_of(&app, "nina@example.com").await;
    assert_eq!(nina_orgs.len(), 1, "a workspace of her own");
    assert_eq!(nina_orgs[0].1, "owner");
    let (status, html) = page(&nina, &app, "/projects").await;
    assert_eq!(status, 200, "can use the app right away");
    assert!(html.contains("My First Project"));

    // An admin invite for someone who registered in the meantime promotes them.
    let r = platform_invite("omar@example.com", "admin").await;
    let token = token_in(&r.text().await.unwrap(), "/accept-platform-invite");
    let (omar, _) = register(&app, "omar@example.com").await;
    let (_, html) = page(
        &omar,
        &app,
        &format!("/accept-platform-invite?token={token}"),
    )
    .await;
    assert!(html.contains(">Join<"));
    let r = post_form(
        &omar,
        &app,
        "/accept-platform-invite",
        &csrf_of(&html),
        &[("token", &token)],
    )
    .await;
    assert_eq!(r.status(), 303);
    assert_eq!(user(&app, "omar@example.com").await.role.as_str(), "admin");
    let (status, _) = page(&omar, &app, "/admin").await;
    assert_eq!(status, 200);

    // Revoked platform invites cannot be used.
    let r = platform_invite("pia@example.com", "user").await;
    let token = token_in(&r.text().await.unwrap(), "/accept-platform-invite");
    let invite = app
        .state
        .stores
        .invites
        .pending_invites(None)
        .await
        .unwrap();
    let pia = invite
        .iter()
        .find(|i| i.email == "pia@example.com")
        .unwrap();
    let r = submit(
        &root,
        &app,
        "/admin/users",
        "/admin/invites/revoke",
        &[("inviteId", &pia.id.to_hex())],
    )
    .await;
    assert_eq!(r.status(), 200);
    let (status, _) = page(
        &browser(),
        &app,
        &format!("/accept-platform-invite?token={token}"),
    )
    .await;
    assert_eq!(status, 400);
    app.stop().await;
}

#[tokio::test]
async fn admins_manage_organizations_and_disabling_one_cuts_its_members_off() {
    let (app, root) = app_with_admin().await;
    let (alice, alice_settings) = register(&app, "alice@example.com").await;
    let (bob, _) = register(&app, "bob@example.com").await;
    let alice_org = orgs_of(&app, "alice@example.com").await[0].0;
    let alice_project = project_id(&alice_settings);
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/add",
        &[("email", "bob@example.com"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let r = submit(
        &bob,
        &app,
        "/projects",
        "/org/switch",
        &[("orgId", &alice_org.to_hex())],
    )
    .await;
    assert_eq!(r.status(), 303);
    let (_, html) = page(&bob, &app, "/projects").await;
    assert!(html.contains(&alice_project), "Bob sees Alice's project");
    let (status, _) = page(&alice, &app, &alice_settings).await;
    assert_eq!(status, 200);

    let org_post = async |action: &str, fields: &[(&str, &str)]| {
        submit(&root, &app, "/admin/orgs", action, fields).await
    };
    let r = org_post("/admin/orgs/disable", &[("orgId", &alice_org.to_hex())]).await;
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("disabled"));
    let (status, _) = page(&alice, &app, &alice_settings).await;
    assert_eq!(status, 403, "the owner lost access to the project");
    let (status, _) = page(&alice, &app, "/projects").await;
    assert_eq!(status, 403, "and has no organization left");
    let (status, html) = page(&bob, &app, "/projects").await;
    assert_eq!(status, 200, "Bob moves to his own workspace");
    assert!(!html.contains(&alice_project));
    let (_, html) = page(&root, &app, "/admin/orgs").await;
    assert!(html.contains("badge off\">disabled"));

    let r = org_post("/admin/orgs/enable", &[("orgId", &alice_org.to_hex())]).await;
    assert_eq!(r.status(), 200);
    let (status, _) = page(&alice, &app, &alice_settings).await;
    assert_eq!(status, 200, "access is back");

    let r = org_post(
        "/admin/orgs/rename",
        &[("orgId", &alice_org.to_hex()), ("name", "")],
    )
    .await;
    assert_eq!(r.status(), 400);
    let r = org_post(
        "/admin/orgs/rename",
        &[("orgId", &alice_org.to_hex()), ("name", "Alice & Co")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let org = app
        .state
        .stores
        .accounts
        .org(alice_org)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(org.name, "Alice & Co");
    let r = org_post("/admin/orgs/disable", &[("orgId", &DocId::new().to_hex())]).await;
    assert_eq!(r.status(), 404);

    // Creating an organization makes the creator its owner, with a new session id.
    let (root, logged_in) = login(&app, "root@example.com", "password-123").await;
    let before = sid(&logged_in).unwrap();
    let r = submit(
        &root,
        &app,
        "/admin/orgs",
        "/admin/orgs",
        &[("name", "Acme")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let after = sid(&r).expect("privileges changed: new session id");
    assert_ne!(before, after);
    let acme = app
        .state
        .stores
        .accounts
        .list_orgs()
        .await
        .unwrap()
        .into_iter()
        .find(|o| o.name == "Acme")
        .unwrap();
    assert!(
        orgs_of(&app, "root@example.com")
            .await
            .contains(&(acme.id, "owner".to_string()))
    );
    let r = submit(&root, &app, "/admin/orgs", "/admin/orgs", &[("name", " ")]).await;
    assert_eq!(r.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn every_area_refuses_forged_csrf_tokens() {
    let (app, root) = app_with_admin().await;
    let (alice, _) = register(&app, "alice@example.com").await;
    let alice_org = orgs_of(&app, "alice@example.com").await[0].0;

    // /org
    let r = post_form(
        &alice,
        &app,
        "/org/users/invite",
        "forged",
        &[("email", "mallory@example.com"), ("role", "owner")],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(r.text().await.unwrap().contains("Reload the page"));
    let r = alice
        .post(app.url("/org/rename"))
        .form(&[("name", "Pwned")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no token at all");
    assert!(
        app.state
            .stores
            .invites
            .pending_invites(Some(alice_org))
            .await
            .unwrap()
            .is_empty()
    );

    // /admin
    let r = post_form(&root, &app, "/admin/orgs", "forged", &[("name", "Evil")]).await;
    assert_eq!(r.status(), 403);
    let r = post_form(
        &root,
        &app,
        "/admin/users/delete",
        "forged",
        &[("userId", &user(&app, "alice@example.com").await.id.to_hex())],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(
        app.state
            .stores
            .accounts
            .list_orgs()
            .await
            .unwrap()
            .iter()
            .all(|o| o.name != "Evil")
    );
    assert_eq!(app.state.stores.accounts.count_users().await.unwrap(), 2);

    // Invite acceptance
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/invite",
        &[("email", "zoe@example.com"), ("role", "viewer")],
    )
    .await;
    let token = token_in(&r.text().await.unwrap(), "/accept-invite");
    let zoe = browser();
    let (status, _) = page(&zoe, &app, &format!("/accept-invite?token={token}")).await;
    assert_eq!(status, 200);
    let r = post_form(
        &zoe,
        &app,
        "/accept-invite",
        "forged",
        &[
            ("token", &token),
            ("name", "Zoe"),
            ("password", "zoe-password"),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert!(
        app.state
            .stores
            .accounts
            .user_by_email("zoe@example.com")
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}
