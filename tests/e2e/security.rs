//! Hardening rules over real HTTP: redirects after login and organization switches stay on this
//! site (never a 500), security headers on HTML, JSON, script and static answers (CORS intact),
//! data files private on disk, and absolute links never built from a hostile `Host` header.

use crate::support::{
    TestApp, browser, csrf_of, eventually, get_accepting, location, page, post_form, project_id_of,
    register,
};
use reqwest::header;
use serde_json::json;
use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    time::Duration,
};
use superinsights::domain::ids::DocId;

/// Targets a browser would follow off-site, or that used to break the login (500).
const HOSTILE_TARGETS: &[&str] = &[
    "/\t/evil.example",
    "/\n/evil.example",
    "/\u{0b}/evil.example",
    "/x\u{0c}y",
    "/x\u{00}y",
    "/x\u{7f}y",
    "//evil.example",
    "/\\evil.example",
    "\\\\evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/%2F/evil.example",
    "/%09/evil.example",
    "/%5Cevil.example",
    "/.//evil.example",
    "/\u{3000}/evil.example",
    "/x\r\nSet-Cookie: a=b",
];

/// A registered account that signs in freshly for each attempt (the login limit is off).
async fn app_with_account() -> TestApp {
    let app = TestApp::spawn(&[("RATE_LIMIT_AUTH_IP", "off")]).await;
    register(&app, "redirects@example.com").await;
    app
}

/// Signs in with `next` through the form; returns the response (no redirect followed).
async fn log_in_with_next(app: &TestApp, next: &str) -> reqwest::Response {
    let client = browser();
    let (_, html) = page(&client, app, "/auth/login").await;
    post_form(
        &client,
        app,
        "/auth/login",
        &csrf_of(&html),
        &[
            ("email", "redirects@example.com"),
            ("password", "password-123"),
            ("next", next),
        ],
    )
    .await
}

#[tokio::test]
async fn login_redirects_only_to_paths_on_this_site_and_never_fails() {
    let app = app_with_account().await;
    for target in HOSTILE_TARGETS {
        let query: String = form_urlencoded::byte_serialize(target.as_bytes()).collect();
        let (status, html) = page(&browser(), &app, &format!("/auth/login?next={query}")).await;
        assert_eq!(status, 200, "{target:?}");
        assert!(
            html.contains("name=\"next\" value=\"/projects\""),
            "the form carries the default, not {target:?}"
        );

        let r = log_in_with_next(&app, target).await;
        assert_eq!(r.status(), 303, "{target:?}: {}", r.text().await.unwrap());
        assert_eq!(location(&r), "/projects", "{target:?}");
    }

    let kept = "/projects/0123456789abcdef01234567/dashboard?timeframe=7d";
    let r = log_in_with_next(&app, kept).await;
    assert_eq!(r.status(), 303);
    assert_eq!(
        location(&r),
        kept,
        "a path on this site is kept, query included"
    );
    let r = log_in_with_next(&app, "/projects/ä").await;
    assert_eq!(
        location(&r),
        "/projects/%C3%A4",
        "normalised to a valid header"
    );

    // A decoded path segment that ends up in a redirect goes through the same parser.
    for segment in ["%0a", "%0d%0aSet-Cookie:%20a=b", "%7f"] {
        let r = browser()
            .get(app.url(&format!("/projects/{segment}")))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_redirection(), "{segment}: {}", r.status());
        assert_eq!(location(&r), "/projects", "{segment}");
    }
    app.stop().await;
}

#[tokio::test]
async fn organization_switch_redirects_only_to_paths_on_this_site() {
    let app = TestApp::spawn(&[]).await;
    let (client, settings) = register(&app, "switch@example.com").await;
    let user = app
        .state
        .stores
        .accounts
        .user_by_email("switch@example.com")
        .await
        .unwrap()
        .unwrap();
    let org: DocId = app
        .state
        .stores
        .accounts
        .memberships(user.id)
        .await
        .unwrap()[0]
        .0
        .id;
    let (_, html) = page(&client, &app, &settings).await;
    let csrf = csrf_of(&html);
    let org = org.to_hex();
    for target in HOSTILE_TARGETS {
        let r = post_form(
            &client,
            &app,
            "/org/switch",
            &csrf,
            &[("orgId", &org), ("redirectTo", target)],
        )
        .await;
        assert_eq!(r.status(), 303, "{target:?}");
        assert_eq!(location(&r), "/projects", "{target:?}");
    }
    let r = post_form(
        &client,
        &app,
        "/org/switch",
        &csrf,
        &[("orgId", &org), ("redirectTo", &settings)],
    )
    .await;
    assert_eq!(location(&r), settings);
    app.stop().await;
}

fn header_of(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// The HTML-page headers, checked on one answer.
fn assert_html_headers(r: &reqwest::Response, what: &str) {
    assert!(
        header_of(r, "content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{what} is HTML"
    );
    let csp = header_of(r, "content-security-policy").unwrap_or_else(|| panic!("{what}: CSP"));
    for directive in [
        "default-src 'self'",
        "script-src 'self'",
        "frame-ancestors 'none'",
        "object-src 'none'",
    ] {
        assert!(csp.contains(directive), "{what}: {csp}");
    }
    assert!(!csp.contains("unsafe-inline"), "{what}: {csp}");
    assert_eq!(
        header_of(r, "x-frame-options").as_deref(),
        Some("DENY"),
        "{what}"
    );
    assert_eq!(
        header_of(r, "x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert!(header_of(r, "referrer-policy").is_some(), "{what}");
}

/// Non-HTML answers: `nosniff`, and no page policy.
fn assert_plain_headers(r: &reqwest::Response, what: &str) {
    assert_eq!(
        header_of(r, "x-content-type-options").as_deref(),
        Some("nosniff"),
        "{what}"
    );
    assert_eq!(header_of(r, "content-security-policy"), None, "{what}");
}

#[tokio::test]
async fn security_headers_on_pages_and_nosniff_everywhere_with_cors_intact() {
    let app = TestApp::spawn(&[]).await;
    let (client, settings) = register(&app, "headers@example.com").await;
    let anonymous = browser();
    let html = |path: &'static str| {
        anonymous
            .get(app.url(path))
            .header(header::ACCEPT, "text/html")
            .send()
    };

    let login = html("/auth/login").await.unwrap();
    assert_html_headers(&login, "login page");
    assert_eq!(
        header_of(&login, "referrer-policy").as_deref(),
        Some("same-origin")
    );
    let missing = html("/no/such/page").await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_html_headers(&missing, "404 page");
    let settings_page = get_accepting(&client, &app, &settings, "text/html").await;
    assert_html_headers(&settings_page, "settings page");

    // A public link keeps its stricter referrer policy.
    let id = DocId::parse(&project_id_of(&settings)).unwrap();
    let made = superinsights::services::public_links::regenerate(
        &app.state.stores,
        app.state.config.public_link_pepper.expose(),
        id,
    )
    .await
    .unwrap();
    let public = get_accepting(
        &anonymous,
        &app,
        &format!("/p/{id}/{}/dashboard", made.token),
        "text/html",
    )
    .await;
    assert_eq!(public.status(), 200);
    assert_html_headers(&public, "public dashboard");
    assert_eq!(
        header_of(&public, "referrer-policy").as_deref(),
        Some("no-referrer")
    );

    let health = anonymous.get(app.url("/healthz")).send().await.unwrap();
    assert_plain_headers(&health, "/healthz");
    let css = anonymous
        .get(app.url("/static/css/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert_plain_headers(&css, "static css");
    let script = anonymous
        .get(app.url("/static/js/app.js"))
        .send()
        .await
        .unwrap();
    assert!(
        header_of(&script, "content-type")
            .unwrap()
            .starts_with("application/javascript")
    );
    assert_plain_headers(&script, "static js");

    let sdk = anonymous
        .get(app.url("/sdk/superinsights.js"))
        .header(header::ORIGIN, "https://customer.example")
        .send()
        .await
        .unwrap();
    assert_eq!(sdk.status(), 200);
    assert_plain_headers(&sdk, "SDK");
    assert_eq!(
        header_of(&sdk, "access-control-allow-origin").as_deref(),
        Some("*")
    );

    let key = crate::support::public_key_of(&app, &id.to_hex()).await;
    let preflight = anonymous
        .request(reqwest::Method::OPTIONS, app.url("/v1/events"))
        .header(header::ORIGIN, "https://customer.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(
        header_of(&preflight, "access-control-allow-origin").as_deref(),
        Some("https://customer.example")
    );
    let ingest = anonymous
        .post(app.url("/v1/events"))
        .bearer_auth(&key)
        .header(header::ORIGIN, "https://customer.example")
        .json(&json!({"eventName": "cross_origin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ingest.status(), 201);
    assert_plain_headers(&ingest, "/v1/events");
    assert_eq!(
        header_of(&ingest, "access-control-allow-origin").as_deref(),
        Some("https://customer.example")
    );
    app.stop().await;
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Every entry under `dir`, recursively.
fn tree(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(tree(&path));
        }
        out.push(path);
    }
    out
}

fn assert_private(data_dir: &Path) -> Vec<String> {
    assert_eq!(mode(data_dir), 0o700, "{}", data_dir.display());
    let mut names = Vec::new();
    for path in tree(data_dir) {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(
            mode(&path),
            expected,
            "{:o} {}",
            mode(&path),
            path.display()
        );
        names.push(path.file_name().unwrap().to_string_lossy().into_owned());
    }
    names
}

#[tokio::test]
async fn database_spool_and_dead_letter_files_are_private_in_a_private_directory() {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data_dir = root.path().join("nested/data");
    let app = TestApp::spawn_in(&data_dir, &[("SQLITE_BUSY_TIMEOUT_MS", "150")]).await;
    let p = app.project().await;
    let event = |name: &str| json!({"eventName": name});
    assert_eq!(
        app.ingest("events", &p.public_api_key, &event("stored"))
            .await
            .status(),
        201
    );

    // The store refuses writes (its write lock held elsewhere): the next batch goes to the spool.
    let lock = app.lock_database().await;
    assert_eq!(
        app.ingest("events", &p.public_api_key, &event("spooled"))
            .await
            .status(),
        202
    );
    // A line nobody can read: the drain moves it to the dead-letter file.
    let spool = app.state.spool.path().to_path_buf();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&spool)
            .unwrap();
        f.write_all(b"{torn\n").unwrap();
    }
    lock.release().await;
    assert_eq!(
        app.ingest("events", &p.public_api_key, &event("after"))
            .await
            .status(),
        201
    );
    let dead = spool.with_file_name(format!(
        "{}.dead",
        spool.file_name().unwrap().to_string_lossy()
    ));
    eventually(Duration::from_secs(10), "the drain ran", async || {
        dead.exists() && !app.state.spool.has_pending()
    })
    .await;

    let names = assert_private(&data_dir);
    // On MongoDB the data directory holds only the spool's files.
    let database_files: &[&str] = if crate::backend::is_mongodb() {
        &[]
    } else {
        &[
            "superinsights.db",
            "superinsights.db-wal",
            "superinsights.db-shm",
        ]
    };
    for expected in database_files
        .iter()
        .chain(&["ingest-spool.ndjson.lock", "ingest-spool.ndjson.dead"])
    {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    assert_eq!(
        mode(&root.path().join("nested")),
        0o700,
        "created parents too"
    );
    app.stop().await;
}

#[tokio::test]
async fn files_left_world_readable_by_an_older_build_are_tightened_at_startup() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = root.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    // On MongoDB an older build left no database file here, only the spool's.
    let left: &[&str] = if crate::backend::is_mongodb() {
        &["ingest-spool.ndjson.dead"]
    } else {
        &["ingest-spool.ndjson.dead", "superinsights.db"]
    };
    for name in left {
        let path = data_dir.join(name);
        std::fs::write(&path, "").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let app = TestApp::spawn_in(&data_dir, &[]).await;
    app.project().await;
    assert_private(&data_dir);
    app.stop().await;
}

/// The `value` of the input with `id` on a page.
fn input_value(html: &str, id: &str) -> Option<String> {
    let marker = format!("id=\"{id}\" readonly value=\"");
    let at = html.find(&marker)? + marker.len();
    Some(html[at..].split('"').next().unwrap().replace("&amp;", "&"))
}

/// Creates an org invite with `host` as the request's Host header; returns the page.
async fn invite_page(app: &TestApp, client: &reqwest::Client, host: &str, email: &str) -> String {
    let (_, html) = page(client, app, "/org/users").await;
    let r = client
        .post(app.url("/org/users/invite"))
        .header(header::HOST, host)
        .header(header::ACCEPT, "text/html")
        .form(&[
            ("_csrf", csrf_of(&html).as_str()),
            ("email", email),
            ("role", "viewer"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn links_never_take_a_hostile_host_header() {
    let app = TestApp::spawn(&[("ALLOWED_HOSTS", "analytics.test")]).await;
    let (client, settings) = register(&app, "links@example.com").await;

    let html = invite_page(&app, &client, "evil.example", "one@example.com").await;
    let link = input_value(&html, "invite-link").expect("invite link shown");
    assert!(link.starts_with("/accept-invite?token="), "{link}");
    assert!(html.contains("unknown-address"), "the page says why");
    assert!(!html.contains("evil.example"));

    let html = invite_page(&app, &client, "analytics.test", "two@example.com").await;
    let link = input_value(&html, "invite-link").unwrap();
    assert!(
        link.starts_with("http://analytics.test/accept-invite?token="),
        "{link}"
    );
    assert!(!html.contains("unknown-address"));

    let evil_settings = client
        .get(app.url(&settings))
        .header(header::HOST, "evil.example:3000")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        !evil_settings.contains("evil.example"),
        "no hostile snippet"
    );
    assert!(evil_settings.contains("YOUR-SUPERINSIGHTS-ADDRESS"));

    let id = project_id_of(&settings);
    let r = client
        .post(app.url(&format!("/projects/{id}/public-link/regenerate")))
        .header(header::HOST, "evil.example")
        .header(header::ACCEPT, "text/html")
        .form(&[("_csrf", csrf_of(&evil_settings).as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "POST-redirect-GET");
    let html = client
        .get(app.url(&settings))
        .header(header::HOST, "evil.example")
        .header(header::ACCEPT, "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let url = input_value(&html, "public-link-url").expect("public link shown");
    assert!(url.starts_with(&format!("/p/{id}/")), "{url}");
    assert!(!html.contains("evil.example"));

    // Loopback hosts keep working in development (the tests and a laptop use them).
    let (_, local) = page(&client, &app, &settings).await;
    assert!(local.contains(&format!("http://{}/sdk/superinsights.js", app.addr)));
    app.stop().await;
}

#[tokio::test]
async fn every_page_satisfies_its_content_security_policy_in_chromium() {
    if !crate::support::browser_suite_available("the CSP browser test") {
        return;
    }
    let app = TestApp::spawn(&[]).await;
    let email = "csp-browser@example.com";
    let (_, id, key) = crate::support::member_with_project(&app, email).await;
    let now = superinsights::domain::timestamp::now_ms();
    let iso = superinsights::domain::timestamp::to_iso;
    for (channel, body) in [
        (
            "pageviews",
            json!([{"url": "/", "clientId": "c1", "timestamp": iso(now - 60_000)}]),
        ),
        (
            "events",
            json!([{"eventName": "signup", "durationMs": 120, "timestamp": iso(now - 60_000)}]),
        ),
        (
            "errors",
            json!([{"message": "boom", "stack": "at x", "timestamp": iso(now - 60_000)}]),
        ),
        (
            "performance",
            json!([{"lcp": 1500, "ttfb": 200, "timestamp": iso(now - 60_000)}]),
        ),
    ] {
        assert_eq!(
            app.ingest(channel, &key, &body).await.status(),
            201,
            "{channel}"
        );
    }
    let project = DocId::parse(&id).unwrap();
    let errors = app
        .state
        .stores
        .stats
        .recent(project, superinsights::domain::model::Channel::Errors, 1)
        .await
        .unwrap();
    let fingerprint = errors[0]["fingerprint"].as_str().unwrap().to_string();
    let accounts = &app.state.stores.accounts;
    let user = accounts.user_by_email(email).await.unwrap().unwrap();
    let second = accounts.create_org("Second", user.id).await.unwrap();
    accounts
        .add_member(second.id, user.id, superinsights::store::OrgRole::Owner)
        .await
        .unwrap();
    let made = superinsights::services::public_links::regenerate(
        &app.state.stores,
        app.state.config.public_link_pepper.expose(),
        project,
    )
    .await
    .unwrap();
    let public = format!("/p/{id}/{}/dashboard", made.token);
    crate::support::run_browser_script(
        &app,
        "csp.test.mjs",
        &[
            ("SI_EMAIL", email),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_ERROR", &fingerprint),
            ("SI_PUBLIC", &public),
            ("SI_ORG2", &second.id.to_hex()),
            (
                "SI_CSP",
                superinsights::http::security_headers::CONTENT_SECURITY_POLICY,
            ),
        ],
    )
    .await;
    app.stop().await;
}
