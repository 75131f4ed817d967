//! WebSocket ingestion (`/v1/ws`) without a browser, through a real WebSocket client on a real
//! port: the SuperInsights 1.x protocol (ready, ack, error replies, 401 before the upgrade) and
//! what this server adds (enrichment, the 64 KiB limit, keepalive, the durable path, 1001 on
//! shutdown).

use crate::support::{TestApp, eventually};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use superinsights::domain::model::Channel;
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{
        Message,
        client::IntoClientRequest,
        protocol::frame::{
            Frame,
            coding::{CloseCode, Data as OpData, OpCode},
        },
    },
};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A client that has received `{"type":"ready"}`.
async fn open(app: &TestApp, key: &str) -> Socket {
    open_with(app, &format!("/v1/ws?apiKey={key}"), &[]).await
}

async fn open_with(
    app: &TestApp,
    path_and_query: &str,
    headers: &[(&'static str, &str)],
) -> Socket {
    let mut request = format!("ws://{}{path_and_query}", app.addr)
        .into_client_request()
        .unwrap();
    for (name, value) in headers {
        request.headers_mut().insert(*name, value.parse().unwrap());
    }
    let (mut socket, _) = connect_async(request).await.expect("upgrade accepted");
    assert_eq!(next_json(&mut socket).await, json!({"type": "ready"}));
    socket
}

/// The next text message as JSON (pings are answered by the client library on read).
async fn next_json(socket: &mut Socket) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("a message within 10 s")
            .expect("the socket is open")
            .expect("a valid frame");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn send(socket: &mut Socket, message: impl ToString) -> Value {
    socket
        .send(Message::text(message.to_string()))
        .await
        .unwrap();
    next_json(socket).await
}

/// The close frame's code, skipping anything before it.
async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("the server closes within 10 s")
        {
            Some(Ok(Message::Close(frame))) => {
                // Keep reading so the client library sends its half of the closing handshake.
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    while socket.next().await.is_some() {}
                })
                .await;
                return frame.map(|f| u16::from(f.code));
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

#[tokio::test]
async fn ws_acks_each_message_and_stores_items_enriched_from_the_upgrade_request() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";
    let mut ws = open_with(
        &app,
        &format!("/v1/ws?api_key={}", p.public_api_key),
        &[("user-agent", ua)],
    )
    .await;
    let ack = send(
        &mut ws,
        json!({"channel": "events", "items": [{"eventName": "a", "properties": {"n": 1}}, {"eventName": "b"}]}),
    )
    .await;
    assert_eq!(ack, json!({"type": "ack", "channel": "events", "count": 2}));
    let ack = send(
        &mut ws,
        json!({"channel": "pageviews", "items": [{"url": "https://example.com/"}]}),
    )
    .await;
    assert_eq!(ack["count"], 1);
    let ack = send(
        &mut ws,
        json!({"channel": "performance", "items": [{"inp": 180, "lcp": 1200.5}]}),
    )
    .await;
    assert_eq!(
        ack,
        json!({"type": "ack", "channel": "performance", "count": 1})
    );

    // Acked means durable: the documents are in the store now, with the server's facts.
    assert_eq!(app.count(&p, Channel::Events).await, 2);
    let views = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Pageviews, 10)
        .await
        .unwrap();
    assert_eq!(views[0]["ip"], "127.0.0.1");
    assert_eq!(views[0]["browser"], "Chrome");
    assert_eq!(views[0]["os"], "Windows");
    assert_eq!(views[0]["deviceType"], "desktop");
    let vitals = app
        .state
        .stores
        .stats
        .recent(p.id, Channel::Performance, 10)
        .await
        .unwrap();
    assert_eq!(vitals[0]["inp"], 180.0);
    assert_eq!(vitals[0]["ip"], "127.0.0.1");
    app.stop().await;
}

#[tokio::test]
async fn ws_answers_bad_messages_with_error_replies_and_stays_open() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let mut ws = open(&app, &p.secret_api_key).await;
    let cases = [
        (
            "{not json",
            json!({"type": "error", "error": "invalid_json"}),
        ),
        (
            r#"{"channel":"clicks","items":[{"eventName":"a"}]}"#,
            json!({"type": "error", "error": "ingestion_failed", "details": "unknown_channel"}),
        ),
        (
            r#"{"items":[{"eventName":"a"}]}"#,
            json!({"type": "error", "error": "ingestion_failed", "details": "unknown_channel"}),
        ),
        (
            r#"{"channel":"events","items":[]}"#,
            json!({"type": "error", "error": "validation_failed", "details": "Payload array must not be empty"}),
        ),
        (
            r#"{"channel":"events","items":{"eventName":"not an array"}}"#,
            json!({"type": "error", "error": "validation_failed", "details": "Payload array must not be empty"}),
        ),
        (
            // As in 1.x, the batch size is checked before the channel.
            r#"{"channel":"clicks","items":[]}"#,
            json!({"type": "error", "error": "validation_failed", "details": "Payload array must not be empty"}),
        ),
        (
            "null",
            json!({"type": "error", "error": "validation_failed", "details": "Payload array must not be empty"}),
        ),
        (
            r#"{"channel":"events","items":[{"eventName":"ok"},{"properties":{}}]}"#,
            json!({"type": "error", "error": "ingestion_failed", "details": "Field \"eventName\" is required"}),
        ),
        (
            r#"{"channel":"events","items":[{"eventName":"ok"},7]}"#,
            json!({"type": "error", "error": "ingestion_failed", "details": "Each item must be an object"}),
        ),
        (
            r#"{"channel":"pageviews","items":[{"url":"/x","deviceType":"fridge"}]}"#,
            json!({"type": "error", "error": "ingestion_failed", "details": "PageView validation failed: deviceType: `fridge` is not a valid enum value for path `deviceType`."}),
        ),
    ];
    for (message, reply) in cases {
        assert_eq!(send(&mut ws, message).await, reply, "reply to {message}");
    }
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"eventName": format!("e{i}")}))
        .collect();
    let reply = send(&mut ws, json!({"channel": "events", "items": too_many})).await;
    assert_eq!(reply["error"], "validation_failed");
    assert_eq!(reply["details"], "Bulk payload size exceeds limit of 100");
    assert_eq!(
        app.count(&p, Channel::Events).await,
        0,
        "all-or-nothing: nothing of a rejected message is stored"
    );

    // Still open, and binary frames are read as JSON text too.
    ws.send(Message::binary(
        br#"{"channel":"events","items":[{"eventName":"after"}]}"#.to_vec(),
    ))
    .await
    .unwrap();
    assert_eq!(next_json(&mut ws).await["type"], "ack");
    assert_eq!(app.count(&p, Channel::Events).await, 1);
    app.stop().await;
}

/// A client that closes gets the closing handshake answered with its own code (and reason), so
/// it sees a clean close instead of 1006; the connection's place is given back.
#[tokio::test]
async fn ws_answers_the_clients_close_frame_with_the_same_code() {
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    for code in [CloseCode::Normal, CloseCode::Away, CloseCode::Library(4001)] {
        let mut ws = open(&app, &p.public_api_key).await;
        let ack = send(
            &mut ws,
            json!({"channel": "events", "items": [{"eventName": "before close"}]}),
        )
        .await;
        assert_eq!(ack["type"], "ack");
        ws.close(Some(CloseFrame {
            code,
            reason: "bye".into(),
        }))
        .await
        .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the server answers within 10 s");
        match answer {
            Some(Ok(Message::Close(Some(frame)))) => {
                assert_eq!(frame.code, code, "the code is echoed");
                assert_eq!(frame.reason.as_str(), "bye");
            }
            other => panic!("expected the server's close frame for {code:?}, got {other:?}"),
        }
    }
    eventually(
        Duration::from_secs(10),
        "the connections are gone",
        async || app.state.ws.connections() == 0,
    )
    .await;
    assert_eq!(app.count(&p, Channel::Events).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn ws_refuses_a_missing_or_unknown_key_with_401_before_upgrading() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    for (path, headers, error) in [
        ("/v1/ws", vec![], "API key required"),
        ("/v1/ws?apiKey=pk_nope", vec![], "Invalid API key"),
        (
            "/v1/ws",
            vec![("x-api-key", p.public_api_key.as_str())],
            "API key required",
        ),
    ] {
        let mut request = format!("ws://{}{path}", app.addr)
            .into_client_request()
            .unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(name, value.parse().unwrap());
        }
        match connect_async(request).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 401, "{path}");
                let body: Value =
                    serde_json::from_slice(response.body().as_deref().unwrap_or_default()).unwrap();
                assert_eq!(body["error"], error);
            }
            other => panic!("{path}: expected a 401, got {other:?}"),
        }
    }
    // A plain GET with a valid key is not an upgrade.
    let r = app
        .http
        .get(app.url(&format!("/v1/ws?apiKey={}", p.public_api_key)))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_client_error(), "{}", r.status());
    app.stop().await;
}

#[tokio::test]
async fn ws_closes_with_1009_when_a_message_exceeds_64_kib() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let mut ws = open(&app, &p.public_api_key).await;
    // Exactly at the limit is accepted.
    let padding = "x".repeat(65_536 - r#"{"channel":"events","items":[{"eventName":""}]}"#.len());
    let at_limit = format!(r#"{{"channel":"events","items":[{{"eventName":"{padding}"}}]}}"#);
    assert_eq!(at_limit.len(), 65_536);
    assert_eq!(send(&mut ws, &at_limit).await["type"], "ack");

    let over = format!(r#"{{"channel":"events","items":[{{"eventName":"{padding}x"}}]}}"#);
    ws.send(Message::text(over)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, Some(u16::from(CloseCode::Size)));

    // Far over the limit: refused by its frame header with 1009, without buffering it.
    let mut ws = open(&app, &p.public_api_key).await;
    let _ = ws.send(Message::text("y".repeat(1 << 20))).await;
    assert_eq!(close_code(&mut ws).await, Some(1009));
    // The same over several frames (a fragmented message) is counted as it arrives.
    let mut ws = open(&app, &p.public_api_key).await;
    let chunk = bytes::Bytes::from("z".repeat(40_000));
    for (opcode, fin) in [
        (OpData::Text, false),
        (OpData::Continue, false),
        (OpData::Continue, true),
    ] {
        let frame = Frame::message(chunk.clone(), OpCode::Data(opcode), fin);
        if ws.send(Message::Frame(frame)).await.is_err() {
            break;
        }
    }
    assert_eq!(close_code(&mut ws).await, Some(1009));
    assert_eq!(app.count(&p, Channel::Events).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn ws_items_are_spooled_while_the_store_is_locked_and_stored_after() {
    let app = TestApp::spawn(&[("SQLITE_BUSY_TIMEOUT_MS", "150")]).await;
    let p = app.project().await;
    let mut ws = open(&app, &p.public_api_key).await;
    let lock = app.lock_database().await;

    let ack = send(
        &mut ws,
        json!({"channel": "events", "items": [{"eventName": "during-1"}, {"eventName": "during-2"}]}),
    )
    .await;
    assert_eq!(
        ack,
        json!({"type": "ack", "channel": "events", "count": 2, "spooled": true})
    );
    assert!(app.state.spool.has_pending());

    lock.release().await;
    // The next successful commit wakes the drainer.
    let ack = send(
        &mut ws,
        json!({"channel": "events", "items": [{"eventName": "after"}]}),
    )
    .await;
    assert_eq!(ack, json!({"type": "ack", "channel": "events", "count": 1}));
    eventually(
        Duration::from_secs(15),
        "the spooled items are stored",
        async || app.count(&p, Channel::Events).await == 3 && !app.state.spool.has_pending(),
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn ws_asks_the_client_to_retry_when_store_and_spool_both_refuse() {
    let (_dir, app) = TestApp::spawn_without_spool().await;
    let p = app.project().await;
    let mut ws = open(&app, &p.public_api_key).await;
    let lock = app.lock_database().await;
    let reply = send(
        &mut ws,
        json!({"channel": "errors", "items": [{"message": "x"}]}),
    )
    .await;
    assert_eq!(reply["type"], "error");
    assert_eq!(reply["error"], "ingestion_failed");
    assert_eq!(reply["channel"], "errors");
    assert_eq!(reply["retryAfter"], 5);
    lock.release().await;
    // The retry succeeds, and only it is stored.
    let ack = send(
        &mut ws,
        json!({"channel": "errors", "items": [{"message": "x"}]}),
    )
    .await;
    assert_eq!(ack["type"], "ack");
    assert_eq!(app.count(&p, Channel::Errors).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn ws_messages_are_rate_limited_per_project() {
    let app = TestApp::spawn(&[("RATE_LIMIT_WS_PROJECT", "3/60s")]).await;
    let (p, other) = (app.project().await, app.project().await);
    let mut ws = open(&app, &p.public_api_key).await;
    let mut second = open(&app, &p.public_api_key).await;
    let event = json!({"channel": "events", "items": [{"eventName": "e"}]});
    assert_eq!(send(&mut ws, &event).await["type"], "ack");
    assert_eq!(send(&mut second, &event).await["type"], "ack");
    assert_eq!(send(&mut ws, "{bad json").await["error"], "invalid_json");
    let limited = send(&mut second, &event).await;
    assert_eq!(limited["type"], "error");
    assert_eq!(limited["error"], "rate_limited");
    assert!(limited["retryAfter"].as_u64().unwrap() >= 1);
    // Another project has its own budget.
    let mut theirs = open(&app, &other.public_api_key).await;
    assert_eq!(send(&mut theirs, &event).await["type"], "ack");
    assert_eq!(app.count(&p, Channel::Events).await, 2);
    app.stop().await;
}

#[tokio::test]
async fn ws_pings_clients_and_drops_those_that_do_not_answer() {
    let app = TestApp::spawn(&[]).await;
    app.state.ws.set_ping_interval(Duration::from_millis(100));
    let p = app.project().await;
    let mut answering = open(&app, &p.public_api_key).await;
    let silent = open(&app, &p.public_api_key).await;
    assert_eq!(app.state.ws.connections(), 2);

    // Reading lets the client library answer the server's pings.
    let mut pings = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, answering.next()).await {
        pings += matches!(message, Message::Ping(_)) as u32;
    }
    assert!(pings >= 3, "pinged every 100 ms: {pings}");
    eventually(
        Duration::from_secs(5),
        "the silent client is dropped",
        async || app.state.ws.connections() == 1,
    )
    .await;
    assert_eq!(
        send(
            &mut answering,
            json!({"channel": "events", "items": [{"eventName": "alive"}]})
        )
        .await["type"],
        "ack"
    );
    drop(silent);
    app.stop().await;
}

#[tokio::test]
async fn ws_clients_are_closed_with_1001_on_shutdown() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let mut ws = open(&app, &p.public_api_key).await;
    assert_eq!(
        send(
            &mut ws,
            json!({"channel": "events", "items": [{"eventName": "before"}]})
        )
        .await["type"],
        "ack"
    );
    let stores = app.state.stores.clone();
    let stopping = tokio::spawn(app.stop());
    assert_eq!(close_code(&mut ws).await, Some(u16::from(CloseCode::Away)));
    tokio::time::timeout(Duration::from_secs(10), stopping)
        .await
        .expect("the server stops after closing its clients")
        .unwrap();
    assert_eq!(stores.stats.count(p.id, Channel::Events).await.unwrap(), 1);
}

#[tokio::test]
async fn ws_applies_new_drop_rules_and_revoked_keys_to_open_connections() {
    use superinsights::domain::drop_rules::{DropFilter, DropMode, DropRules, FilterOp};
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let mut ws = open(&app, &p.public_api_key).await;
    let events =
        json!({"channel": "events", "items": [{"eventName": "noise"}, {"eventName": "signal"}]});
    assert_eq!(send(&mut ws, &events).await["count"], 2);

    let rules = DropRules {
        enabled: true,
        mode: DropMode::Blacklist,
        filters: vec![DropFilter {
            key: "eventName".into(),
            op: FilterOp::Equals,
            value: "noise".into(),
        }],
        ..DropRules::default()
    };
    app.state
        .stores
        .projects
        .set_drop_rules(p.id, &rules)
        .await
        .unwrap();
    app.state.ingestor.keys().invalidate_project(p.id);
    assert_eq!(
        send(&mut ws, &events).await,
        json!({"type": "ack", "channel": "events", "count": 1, "dropped": 1})
    );
    let only_noise = json!({"channel": "events", "items": [{"eventName": "noise"}]});
    assert_eq!(
        send(&mut ws, &only_noise).await,
        json!({"type": "ack", "channel": "events", "count": 0, "dropped": 1})
    );
    assert_eq!(app.count(&p, Channel::Events).await, 3);

    app.state
        .stores
        .projects
        .regenerate_keys(p.id)
        .await
        .unwrap();
    app.state.ingestor.keys().invalidate_project(p.id);
    assert_eq!(
        send(&mut ws, &events).await,
        json!({"type": "error", "error": "unauthorized"})
    );
    assert_eq!(
        close_code(&mut ws).await,
        Some(u16::from(CloseCode::Policy))
    );
    assert_eq!(app.count(&p, Channel::Events).await, 3);
    app.stop().await;
}

#[tokio::test]
async fn ws_closes_with_1007_when_a_text_message_is_not_utf8() {
    let app = TestApp::spawn(&[]).await;
    let p = app.project().await;
    let mut ws = open(&app, &p.public_api_key).await;
    let invalid = bytes::Bytes::from_static(b"{\"channel\":\"events\",\"items\":[\"\xff\xfe\"]}");
    let frame = Frame::message(invalid, OpCode::Data(OpData::Text), true);
    ws.send(Message::Frame(frame)).await.unwrap();
    assert_eq!(
        close_code(&mut ws).await,
        Some(u16::from(CloseCode::Invalid))
    );
    // The same bytes as a binary message are only invalid JSON: an error reply, still open.
    let mut ws = open(&app, &p.public_api_key).await;
    ws.send(Message::binary(&b"\xff\xfe"[..])).await.unwrap();
    assert_eq!(next_json(&mut ws).await["error"], "invalid_json");
    app.stop().await;
}

/// The HTTP status of a refused upgrade, and its `Retry-After`.
async fn refused_upgrade(app: &TestApp, key: &str) -> (u16, Option<String>) {
    let request = format!("ws://{}/v1/ws?apiKey={key}", app.addr)
        .into_client_request()
        .unwrap();
    match connect_async(request).await {
        Ok(_) => panic!("the upgrade was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => (
            response.status().as_u16(),
            response
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_string()),
        ),
        Err(other) => panic!("expected an HTTP refusal, got {other}"),
    }
}

#[tokio::test]
async fn ws_connections_per_ip_are_capped_and_a_closed_one_makes_room() {
    let app = TestApp::spawn(&[("WS_MAX_CONNECTIONS_PER_IP", "2")]).await;
    let p = app.project().await;
    let first = open(&app, &p.public_api_key).await;
    let _second = open(&app, &p.public_api_key).await;
    let (status, retry_after) = refused_upgrade(&app, &p.public_api_key).await;
    assert_eq!(status, 429);
    assert!(retry_after.is_some());
    assert_eq!(app.state.ws.connections(), 2);
    drop(first);
    eventually(
        Duration::from_secs(10),
        "a closed connection frees its place",
        async || {
            let request = format!("ws://{}/v1/ws?apiKey={}", app.addr, p.public_api_key)
                .into_client_request()
                .unwrap();
            connect_async(request).await.is_ok()
        },
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn ws_upgrades_per_ip_are_rate_limited_even_with_a_wrong_key() {
    let app = TestApp::spawn(&[("RATE_LIMIT_WS_UPGRADE_IP", "3/60s")]).await;
    let p = app.project().await;
    let _ws = open(&app, &p.public_api_key).await;
    // Wrong keys count too: guessing costs the same budget.
    assert_eq!(refused_upgrade(&app, "pk_wrong").await.0, 401);
    assert_eq!(refused_upgrade(&app, "pk_wrong").await.0, 401);
    let (status, retry_after) = refused_upgrade(&app, &p.public_api_key).await;
    assert_eq!(status, 429);
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry_after));
    app.stop().await;
}
