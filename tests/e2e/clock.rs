//! Time-decided behaviour over real HTTP, on a server whose clock the test advances
//! (`TestApp::spawn_manual`): a signed-in session slides while used and ends after 14 idle
//! days, an invite link stops opening after its 7 days, and a report's download answers 410
//! after its 30 days while the hourly sweep removes its file. Nothing here waits for real time
//! to pass.

use crate::reports::{self, DAY, HOUR, NO_GEN_LIMIT, custom, download, generate, owner};
use crate::support::{TestApp, eventually, location, page, register, submit};
use serde_json::{Value, json};
use std::time::Duration;
use superinsights::{domain::timestamp::now_ms, services::orgs::token_hash};

const MINUTE: i64 = 60_000;

/// Moves `clock` forward by `ms` milliseconds of server time.
fn advance(clock: &superinsights::domain::clock::ManualClock, ms: i64) {
    clock.advance_ms(u64::try_from(ms).unwrap());
}

#[tokio::test]
async fn a_session_slides_while_used_and_ends_after_fourteen_idle_days() {
    let (app, clock) = TestApp::spawn_manual(&[]).await;
    let (client, settings) = register(&app, "idle@example.com").await;
    let (status, _) = page(&client, &app, &settings).await;
    assert_eq!(status, 200);

    // Used a minute before 14 idle days are up: still signed in, and the use extends it, so
    // the next use, past 14 days after sign-in, is still signed in too.
    for _ in 0..2 {
        advance(&clock, 14 * DAY - MINUTE);
        let (status, html) = page(&client, &app, &settings).await;
        assert_eq!(status, 200, "signed in after 13 days 23:59 idle: {html}");
        // The projects list counts visitors per hour on the server's clock, days ahead of
        // the store's wall clock.
        let (status, html) = page(&client, &app, "/projects").await;
        assert_eq!(
            status, 200,
            "the projects list on the server's clock: {html}"
        );
    }

    // 14 days and a minute without a request: the next page sends the browser to sign in.
    advance(&clock, 14 * DAY + MINUTE);
    let r = client
        .get(app.url(&settings))
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    let next: String = form_urlencoded::byte_serialize(settings.as_bytes()).collect();
    assert_eq!(location(&r), format!("/auth/login?next={next}"));
    app.stop().await;
}

/// The token of the invite link shown on a page (`/accept-invite?token=…`).
fn invite_token(html: &str) -> String {
    let marker = "/accept-invite?token=";
    let at = html.find(marker).expect("the page shows the invite link") + marker.len();
    html[at..].split('"').next().unwrap().to_string()
}

#[tokio::test]
async fn an_invite_link_opens_for_seven_days_then_answers_expired() {
    let (app, clock) = TestApp::spawn_manual(&[]).await;
    let (alice, _) = register(&app, "alice@example.com").await;
    let r = submit(
        &alice,
        &app,
        "/org/users",
        "/org/users/invite",
        &[("email", "carol@example.com"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let token = invite_token(&r.text().await.unwrap());
    let link = format!("/accept-invite?token={token}");
    let visitor = crate::support::browser();

    advance(&clock, 7 * DAY - MINUTE);
    let (status, html) = page(&visitor, &app, &link).await;
    assert_eq!(
        status, 200,
        "a minute before its expiry the link opens: {html}"
    );
    assert!(html.contains("carol@example.com"), "{html}");

    advance(&clock, 2 * MINUTE);
    let (status, html) = page(&visitor, &app, &link).await;
    assert_eq!(status, 400, "{html}");
    assert!(html.contains("expired"), "{html}");
    let stored = app
        .state
        .stores
        .invites
        .invite_by_token_hash(&token_hash(&token))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status.as_str(), "expired");
    app.stop().await;
}

#[tokio::test]
async fn a_report_download_answers_410_after_thirty_days_and_the_hourly_sweep_removes_the_file() {
    let (app, clock) = TestApp::spawn_manual(&[("JOB_WORKERS", "0"), NO_GEN_LIMIT]).await;
    let at = now_ms() - HOUR;
    let who = owner(&app, "expiry@example.com", at).await;
    let id = generate(&app, &who, custom(at, json!({"format": "csv"}))).await;
    reports::worker(&app).run_once().await.unwrap();
    let stored = reports::stored_report(&app, &id).await;
    let on_disk = app
        .data_dir
        .join("reports")
        .join(stored.file_key.as_deref().unwrap());
    assert!(on_disk.exists(), "{}", on_disk.display());
    let r = download(&app, &who, &id).await;
    assert_eq!(r.status(), 200, "fresh: {}", location(&r));

    // A minute before its 30 days: still served (the hourly sweep, woken by the advances,
    // leaves it). The owner comes back every 10 days, so stays signed in.
    for _ in 0..3 {
        advance(&clock, 10 * DAY - MINUTE / 3);
        let r = who
            .client
            .get(app.url(&format!("/projects/{}/reports", who.id)))
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", location(&r));
    }
    let r = download(&app, &who, &id).await;
    assert_eq!(r.status(), 200, "a minute before: {}", location(&r));
    assert!(on_disk.exists());

    // Past them: 410, before any sweep has run.
    advance(&clock, 2 * MINUTE);
    let r = download(&app, &who, &id).await;
    assert_eq!(r.status(), 410);
    assert_eq!(r.json::<Value>().await.unwrap()["code"], "EXPIRED");

    // An hour later the hourly sweep runs: it removes the file, then records the removal (the
    // report stays, without a file).
    advance(&clock, HOUR);
    let reports = app.state.stores.reports.clone();
    eventually(
        Duration::from_secs(10),
        "the hourly sweep records the expired file removed",
        async || {
            let report = reports.report(stored.id).await.unwrap().unwrap();
            report.file_key.is_none()
        },
    )
    .await;
    assert!(!on_disk.exists(), "{}", on_disk.display());
    assert_eq!(download(&app, &who, &id).await.status(), 410);
    app.stop().await;
}
