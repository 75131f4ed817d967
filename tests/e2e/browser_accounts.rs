//! Accounts in a real browser: `tests/browser/accounts.test.mjs` registers, creates a project,
//! copies its keys with the copy buttons, logs out and in again in headless Chromium against the
//! real server on a real port; then the store is checked here.

use crate::support::{TestApp, browser_suite_available, member_with_project, run_browser_script};

#[tokio::test]
async fn register_create_project_copy_keys_log_out_log_in_in_chromium() {
    if !browser_suite_available("the browser account test") {
        return;
    }
    let app = TestApp::spawn(&[]).await;
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("projects.png");
    run_browser_script(
        &app,
        "accounts.test.mjs",
        &[("SI_SCREENSHOT", shot.to_str().unwrap())],
    )
    .await;

    let user = app
        .state
        .stores
        .accounts
        .user_by_email("browser-user@example.com")
        .await
        .unwrap()
        .expect("registered");
    assert_eq!(user.role.as_str(), "admin", "first account");
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
    if !browser_suite_available("the browser dashboard test") {
        return;
    }
    let app = TestApp::spawn(&[]).await;
    let (_, id, key) = member_with_project(&app, "dash-browser@example.com").await;
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

    let screenshot = std::env::var("SI_DASHBOARD_SCREENSHOT").unwrap_or_default();
    run_browser_script(
        &app,
        "dashboard.test.mjs",
        &[
            ("SI_EMAIL", "dash-browser@example.com"),
            ("SI_PASSWORD", "password-123"),
            ("SI_PROJECT", &id),
            ("SI_VIEWS", "12"),
            ("SI_EVENTS", "7"),
            ("SI_ERRORS", "3"),
            ("SI_SCREENSHOT", &screenshot),
        ],
    )
    .await;
    app.stop().await;
}
