//! Accounts in a real browser: `tests/browser/accounts.test.mjs` registers, creates a project,
//! copies its keys with the copy buttons, logs out and in again in headless Chromium against the
//! real server on a real port; then the store is checked here.

use crate::{browser::missing_browser_prerequisite, support::TestApp};

#[tokio::test]
async fn register_create_project_copy_keys_log_out_log_in_in_chromium() {
    if let Some(missing) = missing_browser_prerequisite() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser tests must run in CI: {missing}"
        );
        eprintln!("SKIPPED the browser account test: {missing}; scripts/test installs everything");
        return;
    }
    let app = TestApp::spawn(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("projects.png");
    let status = tokio::process::Command::new("node")
        .args([
            "--test",
            "--test-reporter=spec",
            "tests/browser/accounts.test.mjs",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SI_URL", format!("http://{}", app.addr))
        .env("SI_SCREENSHOT", &shot)
        .kill_on_drop(true)
        .status()
        .await
        .expect("node runs");
    assert!(status.success(), "tests/browser/accounts.test.mjs failed");

    let user = app
        .state
        .stores
        .accounts
        .user_by_email("browser-user@example.com")
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(user.role, "admin", "first account");
    let orgs = app
        .state
        .stores
        .accounts
        .memberships(user.id)
        .await
        .unwrap();
    assert_eq!(orgs.len(), 1);
    let projects = app
        .state
        .stores
        .projects
        .projects_of_org(orgs[0].0.id)
        .await
        .unwrap();
    let names: Vec<_> = projects
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.environment.as_str(),
                p.data_retention_days,
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            ("Browser Shop", "staging", 30),
            ("My First Project", "production", 90)
        ]
    );
    assert!(
        std::fs::metadata(&shot).unwrap().len() > 1000,
        "a screenshot of the project list was taken"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_shows_seeded_totals_and_draws_charts_in_chromium() {
    if let Some(missing) = missing_browser_prerequisite() {
        assert!(
            std::env::var_os("CI").is_none(),
            "the browser tests must run in CI: {missing}"
        );
        eprintln!(
            "SKIPPED the browser dashboard test: {missing}; scripts/test installs everything"
        );
        return;
    }
    let app = TestApp::spawn(&[]).await;
    let (_, settings) = crate::support::register(&app, "dash-browser@example.com").await;
    let id = settings.split('/').nth(2).unwrap().to_string();
    let pid = superinsights::domain::ids::DocId::parse(&id).unwrap();
    let key = app
        .state
        .stores
        .projects
        .project(pid)
        .await
        .unwrap()
        .unwrap()
        .public_api_key;
    let now = superinsights::domain::timestamp::now_ms();
    let day = 86_400_000;
    let iso = superinsights::domain::timestamp::to_iso;
    let views: Vec<serde_json::Value> = (0..12)
        .map(|i| serde_json::json!({"url": if i % 3 == 0 { "/pricing" } else { "/" }, "clientId": format!("c{}", i % 5), "timestamp": iso(now - (i % 4) * day)}))
        .collect();
    assert_eq!(
        app.ingest("pageviews", &key, &serde_json::json!(views))
            .await
            .status(),
        201
    );
    let events: Vec<serde_json::Value> = (0..7)
        .map(|i| serde_json::json!({"eventName": "signup", "timestamp": iso(now - (i % 3) * day)}))
        .collect();
    assert_eq!(
        app.ingest("events", &key, &serde_json::json!(events))
            .await
            .status(),
        201
    );
    let errors: Vec<serde_json::Value> = (0..3)
        .map(|i| serde_json::json!({"message": "boom", "timestamp": iso(now - i * day)}))
        .collect();
    assert_eq!(
        app.ingest("errors", &key, &serde_json::json!(errors))
            .await
            .status(),
        201
    );
    let vitals: Vec<serde_json::Value> = (0..4).map(|i| serde_json::json!({"lcp": 1500 + i * 100, "ttfb": 200, "timestamp": iso(now - i * day)})).collect();
    assert_eq!(
        app.ingest("performance", &key, &serde_json::json!(vitals))
            .await
            .status(),
        201
    );

    let status = tokio::process::Command::new("node")
        .args([
            "--test",
            "--test-reporter=spec",
            "tests/browser/dashboard.test.mjs",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("SI_URL", format!("http://{}", app.addr))
        .env("SI_EMAIL", "dash-browser@example.com")
        .env("SI_PASSWORD", "password-123")
        .env("SI_PROJECT", &id)
        .env("SI_VIEWS", "12")
        .env("SI_EVENTS", "7")
        .env("SI_ERRORS", "3")
        .env(
            "SI_SCREENSHOT",
            std::env::var("SI_DASHBOARD_SCREENSHOT").unwrap_or_default(),
        )
        .kill_on_drop(true)
        .status()
        .await
        .expect("node runs");
    assert!(status.success(), "tests/browser/dashboard.test.mjs failed");
    app.stop().await;
}
