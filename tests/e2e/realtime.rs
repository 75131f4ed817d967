//! Realtime over real HTTP: the `…/realtime/stream` Server-Sent Events stream of a member and
//! of a public link shows an ingested page view within seconds and the five-minute visitor
//! count moves; the stream ends on logout, on public link revocation and on shutdown (which
//! does not wait for it); streams are capped per client; two instances sharing Redis see each
//! other's events and sign-outs; a password change ends the other sessions' streams and a
//! member removed from the organization loses theirs, each within the stream's check. The
//! guided first run: landing links, the setup page after
//! sign-up, the projects list's visitors today, the empty dashboard's explanation.

use crate::support::{
    RedisServer, TestApp, csrf_of, get_accepting, location, login, member_with_project, page,
    post_form, register, submit,
};
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

/// One Server-Sent Events stream, read event by event.
pub(crate) struct Stream {
    body: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl Stream {
    pub(crate) async fn open(client: &reqwest::Client, url: &str) -> Self {
        let r = client
            .get(url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{url}: {}", r.text().await.unwrap());
        Self {
            body: r.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (name, data), skipping keep-alive comments; `None` when the stream ended.
    pub(crate) async fn next(&mut self, within: Duration) -> Option<(String, Value)> {
        self.next_or_wait(within).await.expect("an event in time")
    }

    /// Like [`next`](Self::next), but `Err` when nothing came within `within` (the stream is
    /// still open).
    pub(crate) async fn next_or_wait(
        &mut self,
        within: Duration,
    ) -> Result<Option<(String, Value)>, tokio::time::error::Elapsed> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = "message".to_string();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        name = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if data.is_empty() {
                    continue;
                }
                return Ok(Some((name, serde_json::from_str(&data).unwrap())));
            }
            let chunk = tokio::time::timeout_at(deadline, self.body.next()).await?;
            match chunk {
                Some(Ok(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Some(Err(_)) | None => return Ok(None),
            }
        }
    }

    /// Reads until an event named `name` whose data passes `check`; panics after `within`.
    pub(crate) async fn until(
        &mut self,
        within: Duration,
        name: &str,
        check: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next(left).await {
                Some((n, data)) if n == name && check(&data) => return data,
                Some(_) => {}
                None => panic!("the stream ended before a `{name}` event"),
            }
        }
    }

    /// Reads to the end: the `end` event's reason, then the close.
    pub(crate) async fn end_reason(&mut self, within: Duration) -> String {
        let data = self.until(within, "end", |_| true).await;
        assert!(
            self.next(within).await.is_none(),
            "the stream closes after its end event"
        );
        data["reason"].as_str().unwrap().to_string()
    }
}

async fn pageview(app: &TestApp, key: &str, url: &str, client_id: &str) {
    let r = app
        .ingest(
            "pageviews",
            key,
            &json!({"url": url, "clientId": client_id}),
        )
        .await;
    assert_eq!(r.status(), 201);
}

const SOON: Duration = Duration::from_secs(5);

#[tokio::test]
async fn an_ingested_page_view_appears_on_the_stream_and_the_visitor_count_moves() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, key) = member_with_project(&app, "live@example.com").await;
    let mut stream = Stream::open(
        &client,
        &app.url(&format!("/projects/{id}/realtime/stream")),
    )
    .await;
    let first = stream.until(SOON, "visitors", |_| true).await;
    assert_eq!(first["visitors"], 0);
    assert_eq!(first["windowMinutes"], 5);

    pageview(&app, &key, "https://shop.example/live-page", "visitor-1").await;
    let hits = stream.until(SOON, "hits", |_| true).await;
    assert_eq!(hits["count"], 1);
    assert_eq!(hits["hits"][0]["kind"], "pageviews");
    assert_eq!(hits["hits"][0]["label"], "https://shop.example/live-page");
    stream.until(SOON, "visitors", |d| d["visitors"] == 1).await;
    pageview(&app, &key, "https://shop.example/other", "visitor-2").await;
    stream.until(SOON, "visitors", |d| d["visitors"] == 2).await;

    // The same figures as JSON, with the newest documents first.
    let r = get_accepting(
        &client,
        &app,
        &format!("/projects/{id}/realtime"),
        "application/json",
    )
    .await;
    let now: Value = r.json().await.unwrap();
    assert_eq!(now["visitors"], 2);
    assert_eq!(now["recent"][0]["label"], "https://shop.example/other");
    // A stream opened now starts with that feed.
    let mut late = Stream::open(
        &client,
        &app.url(&format!("/projects/{id}/realtime/stream")),
    )
    .await;
    let seeded = late.until(SOON, "hits", |_| true).await;
    assert_eq!(seeded["count"], 0, "the seed is not new data");
    assert_eq!(seeded["hits"].as_array().unwrap().len(), 2);

    // Hand-edited URLs: a 400 naming the parameter; no session: 401; another project: 404.
    let r = client
        .get(app.url(&format!("/projects/{id}/realtime/stream?x=<b>")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("query parameter `x`"));
    let r = reqwest::Client::new()
        .get(app.url(&format!("/projects/{id}/realtime/stream")))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = get_accepting(
        &client,
        &app,
        "/projects/000000000000000000000000/realtime/stream",
        "text/event-stream",
    )
    .await;
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn the_stream_ends_on_logout() {
    let app = TestApp::spawn(&[]).await;
    let (client, id, _) = member_with_project(&app, "leaver@example.com").await;
    let url = app.url(&format!("/projects/{id}/realtime/stream"));
    let mut stream = Stream::open(&client, &url).await;
    stream.until(SOON, "visitors", |_| true).await;
    let (_, html) = page(&client, &app, "/projects").await;
    let r = post_form(&client, &app, "/auth/logout", &csrf_of(&html), &[]).await;
    assert_eq!(location(&r), "/auth/login");
    assert_eq!(stream.end_reason(SOON).await, "signed-out");
    let r = client
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the old cookie opens nothing");
    app.stop().await;
}

#[tokio::test]
async fn a_public_link_stream_shows_events_and_ends_when_the_link_is_revoked() {
    let app = TestApp::spawn(&[]).await;
    let (owner, id, key) = member_with_project(&app, "sharer@example.com").await;
    let project = superinsights::domain::ids::DocId::parse(&id).unwrap();
    let link = app.enable_public_link(project).await;
    let public = format!("/p/{id}/{}/realtime/stream", link.token);
    let mut stream = Stream::open(&reqwest::Client::new(), &app.url(&public)).await;
    stream.until(SOON, "visitors", |_| true).await;
    pageview(&app, &key, "https://shop.example/shared", "v1").await;
    let hits = stream.until(SOON, "hits", |_| true).await;
    assert_eq!(hits["hits"][0]["label"], "https://shop.example/shared");

    let (_, html) = page(&owner, &app, &format!("/projects/{id}/settings")).await;
    let r = post_form(
        &owner,
        &app,
        &format!("/projects/{id}/public-link/revoke"),
        &csrf_of(&html),
        &[],
    )
    .await;
    assert!(r.status().is_success(), "{}", r.status());
    assert_eq!(stream.end_reason(SOON).await, "revoked");
    let r = reqwest::Client::new()
        .get(app.url(&public))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}

#[tokio::test]
async fn streams_are_capped_per_client_and_shutdown_ends_them_without_waiting() {
    let app = TestApp::spawn(&[
        ("REALTIME_STREAMS_PER_CLIENT", "2"),
        ("SHUTDOWN_TIMEOUT_SECS", "30"),
    ])
    .await;
    let (client, id, _) = member_with_project(&app, "greedy@example.com").await;
    let url = app.url(&format!("/projects/{id}/realtime/stream"));
    let mut a = Stream::open(&client, &url).await;
    let b = Stream::open(&client, &url).await;
    let r = client
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429, "a third stream of the same session");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["limit"], 2);
    // Another session is another client.
    let (other, other_id, _) = member_with_project(&app, "other@example.com").await;
    let _c = Stream::open(
        &other,
        &app.url(&format!("/projects/{other_id}/realtime/stream")),
    )
    .await;
    // A closed stream frees its slot.
    drop(b);
    crate::support::eventually(SOON, "the slot is freed", async || {
        client
            .get(&url)
            .header("accept", "text/event-stream")
            .send()
            .await
            .unwrap()
            .status()
            == 200
    })
    .await;

    a.until(SOON, "visitors", |_| true).await;
    let started = std::time::Instant::now();
    let stopping = tokio::spawn(app.stop());
    assert_eq!(a.end_reason(SOON).await, "shutdown");
    stopping.await.unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shutdown does not wait for streams (took {:?})",
        started.elapsed()
    );
}

#[tokio::test]
async fn two_instances_on_one_redis_share_events_and_sign_outs() {
    let redis = RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let url = redis.url();
    let env = [("REDIS_URL", url.as_str()), ("SESSION_STORE_REDIS", "true")];
    let a = TestApp::spawn_in(dir.path(), &env).await;
    let b = TestApp::spawn_in(dir.path(), &env).await;
    let (client, id, key) = member_with_project(&a, "fleet@example.com").await;
    // Signed in on A, the same cookie holds a stream on B.
    let stream_url = b.url(&format!("/projects/{id}/realtime/stream"));
    let mut on_b = Stream::open(&client, &stream_url).await;
    on_b.until(SOON, "visitors", |_| true).await;
    // Ingested on A, seen on B (B's own hub never saw it).
    crate::support::eventually(SOON, "B relays A's events", async || {
        pageview(&a, &key, "https://shop.example/from-a", "fleet-1").await;
        // The outer timeout ends each try (the inner deadline is longer, so a slow relay is a
        // retry with a new page view, never the inner read's panic).
        let got = tokio::time::timeout(
            Duration::from_secs(1),
            on_b.until(Duration::from_secs(30), "hits", |d| {
                d["hits"][0]["label"] == "https://shop.example/from-a"
            }),
        )
        .await;
        got.is_ok()
    })
    .await;
    on_b.until(SOON, "visitors", |d| d["visitors"] == 1).await;
    // Signed out on A: the stream on B ends at once (the signal, not B's periodic check).
    let (_, html) = page(&client, &a, "/projects").await;
    let started = std::time::Instant::now();
    post_form(&client, &a, "/auth/logout", &csrf_of(&html), &[]).await;
    assert_eq!(on_b.end_reason(SOON).await, "signed-out");
    assert!(started.elapsed() < Duration::from_secs(5));
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn the_first_run_leads_from_the_landing_page_to_the_snippet_and_live_status() {
    let app = TestApp::spawn(&[]).await;
    let landing = reqwest::Client::new()
        .get(app.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(landing.contains(r#"href="/auth/login""#), "{landing}");
    assert!(landing.contains(r#"href="/auth/register""#), "{landing}");

    let (client, id, key) = member_with_project(&app, "first@example.com").await;
    let (status, setup) = page(&client, &app, &format!("/projects/{id}/setup")).await;
    assert_eq!(status, 200);
    assert!(setup.contains("Waiting for your first event"), "{setup}");
    assert!(setup.contains(&key), "the snippet carries the public key");
    assert!(setup.contains(&format!(r#"data-stream="/projects/{id}/realtime/stream""#)));

    // An empty dashboard explains itself instead of showing zeros.
    let (_, dashboard) = page(&client, &app, &format!("/projects/{id}/dashboard")).await;
    assert!(dashboard.contains(r#"id="first-run""#), "{dashboard}");
    assert!(dashboard.contains(&format!(r#"href="/projects/{id}/setup""#)));
    let (_, list) = page(&client, &app, "/projects").await;
    assert!(
        list.contains("<strong>0</strong> <span class=\"muted\">visitors today"),
        "{list}"
    );

    pageview(&app, &key, "https://shop.example/", "first-visitor").await;
    let (_, setup) = page(&client, &app, &format!("/projects/{id}/setup")).await;
    assert!(setup.contains("Receiving data"), "{setup}");
    let (_, dashboard) = page(&client, &app, &format!("/projects/{id}/dashboard")).await;
    assert!(!dashboard.contains(r#"id="first-run""#));
    let (_, list) = page(&client, &app, "/projects").await;
    assert!(
        list.contains("<strong>1</strong> <span class=\"muted\">visitors today"),
        "{list}"
    );
    assert!(list.contains("<polyline points=\""), "{list}");
    app.stop().await;
}

/// Longest a stream may outlive an access it lost without a signal: the stream's 10 s check,
/// and some slack.
const CHECK: Duration = Duration::from_secs(15);

#[tokio::test]
async fn a_password_change_ends_the_streams_of_the_other_sessions() {
    let app = TestApp::spawn(&[]).await;
    register(&app, "root@example.com").await; // the first account is the platform admin
    let (me, id, _) = member_with_project(&app, "pass@example.com").await;
    let (elsewhere, r) = login(&app, "pass@example.com", "password-123").await;
    assert_eq!(r.status(), 303);
    let mut stream = Stream::open(
        &elsewhere,
        &app.url(&format!("/projects/{id}/realtime/stream")),
    )
    .await;
    stream.until(SOON, "visitors", |_| true).await;
    let (_, html) = page(&me, &app, "/account").await;
    let r = post_form(
        &me,
        &app,
        "/account/password",
        &csrf_of(&html),
        &[
            ("currentPassword", "password-123"),
            ("newPassword", "new-password-1"),
            ("confirmPassword", "new-password-1"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let started = std::time::Instant::now();
    assert_eq!(stream.end_reason(CHECK).await, "password-changed");
    assert!(started.elapsed() < CHECK, "{:?}", started.elapsed());
    // The session that changed it goes on: its stream opens.
    let mut mine = Stream::open(&me, &app.url(&format!("/projects/{id}/realtime/stream"))).await;
    mine.until(SOON, "visitors", |_| true).await;
    app.stop().await;
}

#[tokio::test]
async fn removing_a_member_ends_their_streams_of_the_organization_projects() {
    let app = TestApp::spawn(&[]).await;
    register(&app, "root@example.com").await; // the first account is the platform admin
    let (owner, id, key) = member_with_project(&app, "owner@example.com").await;
    let (mate, _) = register(&app, "mate@example.com").await;
    let r = submit(
        &owner,
        &app,
        "/org/users",
        "/org/users/add",
        &[("email", "mate@example.com"), ("role", "viewer")],
    )
    .await;
    assert_eq!(r.status(), 200);
    let url = app.url(&format!("/projects/{id}/realtime/stream"));
    let mut stream = Stream::open(&mate, &url).await;
    stream.until(SOON, "visitors", |_| true).await;
    // Still a member: the stream lives through its checks and carries the hits.
    pageview(&app, &key, "https://team.example/", "mate-1").await;
    stream
        .until(SOON, "hits", |d| {
            d["hits"][0]["label"] == "https://team.example/"
        })
        .await;
    let mate_id = app
        .state
        .stores
        .accounts
        .user_by_email("mate@example.com")
        .await
        .unwrap()
        .unwrap()
        .id
        .to_hex();
    let r = submit(
        &owner,
        &app,
        "/org/users",
        "/org/users/remove",
        &[("userId", &mate_id)],
    )
    .await;
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let started = std::time::Instant::now();
    assert_eq!(stream.end_reason(CHECK).await, "access-removed");
    assert!(started.elapsed() < CHECK, "{:?}", started.elapsed());
    let r = mate
        .get(&url)
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "no new stream either");
    app.stop().await;
}
