//! Connection timeouts and caps (`crate::server`), with raw TCP clients on a real port: slow
//! headers, idle keep-alive, bodies shorter than their `Content-Length`, the connection cap with
//! its reserved health-check slots, and the real binary under a 1,024 open-file limit.

use crate::support::{TestApp, eventually, spawn_listening};
use std::{
    net::SocketAddr,
    process::{Command, Stdio},
    time::{Duration, Instant},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

/// Reads until the server closes the connection (or resets it); returns what arrived and when
/// the connection ended. Fails after `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, Duration) {
    let started = Instant::now();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => panic!(
                "still open after {limit:?}; received {:?}",
                String::from_utf8_lossy(&received)
            ),
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
        }
    }
    (String::from_utf8_lossy(&received).into(), started.elapsed())
}

/// Reads one response whose body has a `Content-Length`, leaving the connection open.
async fn read_response(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("a response within 5 s")
            .unwrap();
        assert!(n > 0, "closed before a full response");
        received.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&received).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            if received.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[tokio::test]
async fn slow_headers_are_cut_off_at_the_header_timeout() {
    let app = TestApp::spawn(&[
        ("HTTP_HEADER_TIMEOUT_MS", "300"),
        ("HTTP_IDLE_TIMEOUT_MS", "10000"),
    ])
    .await;
    // Half a request line, then nothing.
    let mut slow = TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: te")
        .await
        .unwrap();
    // Nothing at all.
    let mut silent = TcpStream::connect(app.addr).await.unwrap();
    for stream in [&mut slow, &mut silent] {
        let (received, after) = read_until_closed(stream, Duration::from_secs(3)).await;
        assert!(received.is_empty(), "{received}");
        assert!(after < Duration::from_millis(2000), "{after:?}");
    }
    // On a keep-alive connection the header timeout counts from the next request's first byte.
    let mut keep = TcpStream::connect(app.addr).await.unwrap();
    keep.write_all(get("/healthz").as_bytes()).await.unwrap();
    assert!(read_response(&mut keep).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    keep.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let (received, after) = read_until_closed(&mut keep, Duration::from_secs(3)).await;
    assert!(received.is_empty(), "{received}");
    assert!(after >= Duration::from_millis(250), "{after:?}");
    app.stop().await;
}

#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_idle_timeout() {
    let app = TestApp::spawn(&[
        ("HTTP_IDLE_TIMEOUT_MS", "300"),
        ("HTTP_HEADER_TIMEOUT_MS", "10000"),
    ])
    .await;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    conn.write_all(get("/healthz").as_bytes()).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    // Within the idle timeout the connection is reused.
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.write_all(get("/healthz").as_bytes()).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
    let (received, after) = read_until_closed(&mut conn, Duration::from_secs(3)).await;
    assert!(received.is_empty(), "{received}");
    assert!(
        after >= Duration::from_millis(250) && after < Duration::from_millis(2000),
        "{after:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_body_shorter_than_its_content_length_gets_408_at_the_body_timeout() {
    let app = TestApp::spawn(&[("HTTP_BODY_TIMEOUT_MS", "300")]).await;
    let p = app.project().await;
    // Ingestion (which reads the body itself, up to 64 KiB) and a form route (an extractor).
    let requests = [
        format!(
            "POST /v1/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: 100\r\n\r\n[{{\"eventName\"",
            p.public_api_key
        ),
        "POST /auth/login HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 100\r\n\r\nemail=a%40b.example"
            .to_string(),
    ];
    for request in requests {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        conn.write_all(request.as_bytes()).await.unwrap();
        let (received, after) = read_until_closed(&mut conn, Duration::from_secs(3)).await;
        assert!(received.starts_with("HTTP/1.1 408"), "{received}");
        assert!(received.to_ascii_lowercase().contains("connection: close"));
        assert!(after >= Duration::from_millis(250), "{after:?}");
    }
    // A body that arrives whole, slowly but within the limit, is accepted.
    let body = r#"[{"eventName":"slow"}]"#;
    let mut conn = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v1/events HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        p.public_api_key,
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&body.as_bytes()[..5]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    conn.write_all(&body.as_bytes()[5..]).await.unwrap();
    assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 201"));
    app.stop().await;
}

#[tokio::test]
async fn over_the_connection_cap_only_health_checks_are_answered_until_slots_free_up() {
    let app = TestApp::spawn(&[
        ("HTTP_MAX_CONNECTIONS", "8"),
        ("HTTP_RESERVED_CONNECTIONS", "2"),
        ("HTTP_HEADER_TIMEOUT_MS", "60000"),
        ("HTTP_IDLE_TIMEOUT_MS", "60000"),
    ])
    .await;
    let p = app.project().await;
    // Eight idle connections (after one request each, so the server has surely accepted them).
    let mut held = Vec::new();
    for _ in 0..8 {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        conn.write_all(get("/healthz").as_bytes()).await.unwrap();
        assert!(read_response(&mut conn).await.starts_with("HTTP/1.1 200"));
        held.push(conn);
    }
    // Over the cap: a reserved slot answers health checks, and refuses anything else with 503.
    for (path, status) in [("/healthz", "200"), ("/readyz", "200"), ("/", "503")] {
        let mut conn = TcpStream::connect(app.addr).await.unwrap();
        conn.write_all(get(path).as_bytes()).await.unwrap();
        let (received, _) = read_until_closed(&mut conn, Duration::from_secs(3)).await;
        assert!(
            received.starts_with(&format!("HTTP/1.1 {status}")),
            "{path}: {received}"
        );
    }
    // With the reserved slots taken too, new connections are closed at once.
    let mut reserved = Vec::new();
    for _ in 0..2 {
        reserved.push(TcpStream::connect(app.addr).await.unwrap());
    }
    let mut refused = TcpStream::connect(app.addr).await.unwrap();
    let _ = refused.write_all(get("/healthz").as_bytes()).await;
    let (received, _) = read_until_closed(&mut refused, Duration::from_secs(3)).await;
    assert!(received.is_empty(), "{received}");
    // Freed connections make room again: health, ingestion, and the server never went down.
    drop(held);
    drop(reserved);
    eventually(
        Duration::from_secs(5),
        "/healthz answers again",
        async || {
            reqwest::get(app.url("/healthz"))
                .await
                .is_ok_and(|r| r.status() == 200)
        },
    )
    .await;
    let r = app
        .ingest(
            "events",
            &p.public_api_key,
            &serde_json::json!([{"eventName": "after"}]),
        )
        .await;
    assert_eq!(r.status(), 201);
    app.stop().await;
}

/// The real binary under a 1,024 open-file limit, against 1,100 idle sockets from one client
/// (the campaign's attack): it keeps running and `/healthz` answers as the idle sockets time out.
#[tokio::test]
async fn the_binary_survives_more_idle_sockets_than_its_open_file_limit() {
    // This test process needs room for 1,100 sockets of its own.
    let _ = rlimit::increase_nofile_limit(4096);
    let dir = tempfile::tempdir().unwrap();
    // `exec`: the shell becomes the server, so the pid that must hold the port is the child's.
    let (mut child, ports) = spawn_listening("the server", 1, Duration::from_secs(20), |ports| {
        Command::new("sh")
            .args([
                "-c",
                r#"ulimit -Sn 1024 && ulimit -Hn 1024 && exec "$0""#,
                env!("CARGO_BIN_EXE_superinsights"),
            ])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATA_DIR", dir.path())
            .env("HOST", "127.0.0.1")
            .env("PORT", ports[0].to_string())
            .env("ENV_FILE", "/nonexistent")
            .env("RUST_LOG", "error")
            .env("HTTP_HEADER_TIMEOUT_MS", "1500")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    let addr: SocketAddr = ([127, 0, 0, 1], ports[0]).into();
    let health = format!("http://{addr}/healthz");
    let healthy = async || reqwest::get(&health).await.is_ok_and(|r| r.status() == 200);
    eventually(Duration::from_secs(20), "the server starts", healthy).await;

    let mut idle = Vec::new();
    for _ in 0..1_100 {
        if let Ok(Ok(conn)) =
            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(addr)).await
        {
            idle.push(conn);
        }
    }
    assert!(idle.len() > 1_000, "opened {}", idle.len());
    // The server closes what it cannot hold at once and the rest at the header timeout, so a
    // health check gets through while the client still holds its sockets.
    let started = Instant::now();
    eventually(
        Duration::from_secs(10),
        "/healthz with 1,100 idle sockets open",
        healthy,
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(child.try_wait().unwrap().is_none(), "the server is running");
    drop(idle);
    assert!(healthy().await);
    let _ = child.kill();
    let _ = child.wait();
}
