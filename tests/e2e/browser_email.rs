//! The password-reset flow and the log viewer's filters in a real browser:
//! `tests/browser/email_logs.test.mjs` in headless Chromium against the real server, whose
//! email goes to the local SMTP sink of `email.rs`; then the store is checked here. The
//! email-report form's delivery choice: `tests/browser/email_reports.test.mjs`.

use crate::{
    email::SmtpSink,
    support::{TestApp, browser_suite_available, project_id_of, register, run_browser_script},
};

#[tokio::test]
async fn reset_a_password_by_email_and_filter_the_log_in_chromium() {
    if !browser_suite_available("the browser email test") {
        return;
    }
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn(&[("SMTP_URL", &url), ("SMTP_FROM", "si@example.com")]).await;
    let email = "browser-admin@example.com";
    register(&app, email).await;
    let maildir = sink.maildir();
    run_browser_script(
        &app,
        "email_logs.test.mjs",
        &[
            ("SI_MAILDIR", maildir.to_str().unwrap()),
            ("SI_EMAIL", email),
        ],
    )
    .await;
    let stores = &app.state.stores;
    assert!(
        superinsights::services::accounts::check_login(stores, email, "a-new-browser-password")
            .await
            .unwrap()
            .is_some(),
        "the new password is stored"
    );
    assert!(
        superinsights::services::accounts::check_login(stores, email, "password-123")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(sink.messages().len(), 1);
    app.stop().await;
}

#[tokio::test]
async fn choose_the_pdf_or_a_link_for_email_reports_in_chromium() {
    if !browser_suite_available("the browser email-report test") {
        return;
    }
    let sink = SmtpSink::start().await;
    let url = sink.url();
    let app = TestApp::spawn(&[
        ("SMTP_URL", &url),
        ("SMTP_FROM", "si@example.com"),
        ("PUBLIC_URL", "http://si.test"),
    ])
    .await;
    let email = "browser-reports@example.com";
    let (_, settings) = register(&app, email).await;
    let project = project_id_of(&settings);
    run_browser_script(
        &app,
        "email_reports.test.mjs",
        &[("SI_EMAIL", email), ("SI_PROJECT", &project)],
    )
    .await;
    let user = app
        .state
        .stores
        .accounts
        .user_by_email(email)
        .await
        .unwrap()
        .unwrap();
    let subs = app
        .state
        .stores
        .mail
        .subscriptions_of(
            superinsights::domain::ids::DocId::parse(&project).unwrap(),
            user.id,
        )
        .await
        .unwrap();
    assert_eq!(subs.len(), 1, "{subs:?}");
    assert_eq!(
        subs[0].cadence,
        superinsights::domain::email::Cadence::Weekly
    );
    assert_eq!(
        subs[0].delivery,
        superinsights::domain::email::Delivery::Pdf
    );
    app.stop().await;
}
