//! Redis is optional and never fatal: the server starts without it, reports it in /readyz,
//! reconnects when it returns, and ingestion keeps working throughout.

use crate::support::{
    RedisServer, ServerProcess, TestApp, eventually, free_port, listens_on, stdout_of,
    wait_listening,
};
use serde_json::{Value, json};
use std::time::Duration;

async fn redis_connected(app: &TestApp) -> bool {
    let v = app.readiness().await;
    v["redis"]["connected"].as_bool().unwrap_or(false)
}

#[tokio::test]
async fn redis_down_at_start_then_up_then_killed_then_back() {
    let port = free_port();
    let url = format!("redis://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let app = TestApp::spawn(&[
        ("REDIS_URL", &url),
        ("CACHE_REDIS", "true"),
        ("REDIS_STARTUP_WAIT_MS", "300"),
    ])
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "startup waits for redis only REDIS_STARTUP_WAIT_MS, then starts degraded"
    );
    let p = app.project().await;
    let r = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        200,
        "a missing redis does not make the server unready"
    );
    assert!(!redis_connected(&app).await);
    assert_eq!(
        app.ingest(
            "events",
            &p.public_api_key,
            &json!({"eventName": "no-redis"})
        )
        .await
        .status(),
        201
    );

    let mut redis = RedisServer::start_on(port).await;
    eventually(
        Duration::from_secs(15),
        "fred connects once redis is up",
        async || redis_connected(&app).await,
    )
    .await;

    redis.kill();
    eventually(
        Duration::from_secs(10),
        "readyz notices the outage",
        async || !redis_connected(&app).await,
    )
    .await;
    assert_eq!(
        app.ingest(
            "events",
            &p.public_api_key,
            &json!({"eventName": "redis-down"})
        )
        .await
        .status(),
        201
    );

    redis.restart().await;
    eventually(
        Duration::from_secs(15),
        "reconnects without a restart",
        async || redis_connected(&app).await,
    )
    .await;
    app.stop().await;
}

/// Issue 18: a Sentinel or Cluster URL whose nodes cannot be reached at startup is not an error:
/// the server starts on its fallbacks within `REDIS_STARTUP_WAIT_MS`, as with one server.
#[tokio::test]
async fn an_unreachable_sentinel_or_cluster_at_startup_degrades_like_one_server() {
    for url in [
        format!(
            "redis-sentinel://127.0.0.1:{}/0?sentinelServiceName=si&node=127.0.0.1:{}",
            free_port(),
            free_port()
        ),
        format!(
            "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}",
            free_port(),
            free_port()
        ),
    ] {
        let started = std::time::Instant::now();
        let app = TestApp::spawn(&[
            ("REDIS_URL", &url),
            ("SESSION_STORE_REDIS", "true"),
            ("CACHE_REDIS", "true"),
            ("RATE_LIMIT_REDIS", "true"),
            ("JOB_QUEUE_REDIS", "true"),
            ("REDIS_STARTUP_WAIT_MS", "300"),
        ])
        .await;
        assert!(started.elapsed() < Duration::from_secs(5), "{url}");
        let r = app.http.get(app.url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 200, "{url}");
        assert!(!redis_connected(&app).await, "{url}");
        let p = app.project().await;
        let r = app
            .ingest(
                "events",
                &p.public_api_key,
                &json!({"eventName": "no-topology"}),
            )
            .await;
        assert_eq!(r.status(), 201, "{url}");
        app.stop().await;
    }
}

/// Runs `openssl` with `args` in `dir` (the test's certificate authority).
fn openssl(dir: &std::path::Path, args: &[&str]) {
    let out = std::process::Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl is installed (scripts/test installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 18: TLS works, on one server (`rediss://`), behind Sentinel (`rediss-sentinel://`:
/// the sentinel and the primary it names both TLS-only) and on a Cluster (`rediss-cluster://`). Certificates come from a test CA that
/// the server trusts through `SSL_CERT_FILE` (rustls, with the system's roots otherwise).
#[tokio::test]
async fn tls_only_redis_is_used_on_one_server_sentinel_and_cluster() {
    let certs = tempfile::tempdir().unwrap();
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509", "-days", "1", "-subj", "/CN=si-test-ca"];
    ca.extend(ec);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(certs.path(), &ca);
    let mut csr = vec!["req", "-subj", "/CN=localhost"];
    csr.extend(ec);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(certs.path(), &csr);
    std::fs::write(
        certs.path().join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(
        certs.path(),
        &[
            "x509",
            "-req",
            "-days",
            "1",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ],
    );
    let file = |name: &str| certs.path().join(name).to_str().unwrap().to_string();
    let (cert, key, ca) = (file("server.pem"), file("server.key"), file("ca.pem"));
    // A TLS-only server on `port` (no plain port), clients not asked for certificates.
    let tls_only = |port: u16| -> Vec<String> {
        [
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &cert,
            "--tls-key-file",
            &key,
            "--tls-ca-cert-file",
            &ca,
            "--tls-auth-clients",
            "no",
        ]
        .map(str::to_string)
        .to_vec()
    };
    let redis = RedisServer::start_ports(0, |port, _| tls_only(port)).await;
    let port = redis.port;
    // The sentinel reaches the primary over TLS too (`tls-replication`).
    let sentinel = RedisServer::sentinel_with("si-tls", port, |sentinel_port| {
        format!(
            "port 0\ntls-port {sentinel_port}\ntls-cert-file {cert}\ntls-key-file {key}\n\
             tls-ca-cert-file {ca}\ntls-auth-clients no\ntls-replication yes\n"
        )
    })
    .await;
    // Three TLS-only cluster nodes (bus and replication over TLS too), one slot range each.
    let tls_args = |port: u16, bus: u16| -> Vec<String> {
        let mut args = tls_only(port);
        args.extend(
            [
                "--tls-cluster",
                "yes",
                "--tls-replication",
                "yes",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus.to_string(),
            ]
            .map(str::to_string),
        );
        args
    };
    let mut nodes = Vec::new();
    for _ in 0..3 {
        nodes.push(RedisServer::start_ports(1, |port, spare| tls_args(port, spare[0])).await);
    }
    let mut create = std::process::Command::new("redis-cli");
    create.args(["--tls", "--cacert", &ca, "--cluster", "create"]);
    for node in &nodes {
        create.arg(format!("127.0.0.1:{}", node.port));
    }
    stdout_of(
        create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(std::process::Stdio::null()),
    );
    for url in [
        format!("rediss://localhost:{port}"),
        format!(
            "rediss-sentinel://localhost:{}/0?sentinelServiceName=si-tls",
            sentinel.port
        ),
        format!(
            "rediss-cluster://127.0.0.1:{}?node=127.0.0.1:{}",
            nodes[0].port, nodes[1].port
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = ServerProcess::start(
            dir.path(),
            &[
                ("REDIS_URL", &url),
                ("CACHE_REDIS", "true"),
                ("SSL_CERT_FILE", &ca),
            ],
        )
        .await;
        eventually(
            Duration::from_secs(10),
            &format!("connected over TLS: {url}"),
            async || {
                let v: Value = reqwest::get(server.url("/readyz"))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                v["redis"]["connected"] == true
            },
        )
        .await;
    }
}

/// The harness never takes another process's socket for the helper it started: with the port
/// held by this test, a `redis-server` started on it is reported as exited (address in use), not
/// as up; a server started on fresh ports comes up owning its port.
#[tokio::test]
async fn a_helper_whose_port_was_taken_is_detected_not_mistaken_for_ours() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    assert!(
        listens_on(std::process::id(), port),
        "the socket held here is this process's"
    );
    let mut child = std::process::Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server is installed (scripts/test installs it)");
    assert!(!listens_on(child.id(), port));
    let refused = wait_listening(&mut child, &[port], Duration::from_secs(10))
        .await
        .expect_err("the port belongs to this test, not to the child");
    assert!(refused.contains("exited"), "{refused}");
    drop(held);
    let redis = RedisServer::start().await;
    assert!(listens_on(redis.pid(), redis.port));
    assert!(!listens_on(std::process::id(), redis.port));
}
