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
