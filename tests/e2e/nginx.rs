//! Issue 18, item 3: three instances behind a real nginx (Debian's package, started by the test
//! on loopback) with `TRUST_PROXY=1`, sharing one store and one Redis. Through nginx a sign-in
//! holds on every instance, one per-IP ingest limit counts exactly across them (keyed on the
//! address nginx forwards, whatever the client claims), and a rolling restart of the instances
//! one by one under traffic answers no error, signs nobody out and loses no acknowledged event;
//! a dashboard's realtime stream held through nginx shows the events ingested through each
//! instance, and a rolling restart ends it cleanly (`shutdown`) and lets it reconnect.
//! The nginx configuration is the one `docs/deployment.md` shows, on test ports.

use crate::failover::{PageCounts, page_loads};
use crate::process::{Load, create_admin, sign_in_admin, stored_events};
use crate::realtime::Stream;
use crate::support::{RedisServer, ServerProcess, eventually, metrics_text, spawn_listening};
use serde_json::json;
use std::{
    net::SocketAddr,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use superinsights::domain::ids::DocId;

/// nginx as a reverse proxy in front of `upstreams`, on a port of its own.
struct Nginx {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Nginx {
    async fn start(upstreams: &[SocketAddr]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("nginx.conf");
        // The master process (`daemon off`) holds the listening socket: that it is ours is
        // checked, and a port taken meanwhile retried.
        let (child, ports) = spawn_listening("nginx", 1, Duration::from_secs(10), |ports| {
            std::fs::write(&conf, config(dir.path(), ports[0], upstreams)).unwrap();
            Command::new(nginx_binary())
                .arg("-p")
                .arg(dir.path())
                .arg("-c")
                .arg(&conf)
                .arg("-e")
                .arg(dir.path().join("startup.log"))
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("nginx is installed (scripts/test installs it)")
        })
        .await;
        let nginx = Self {
            child,
            port: ports[0],
            _dir: dir,
        };
        let url = nginx.url("/healthz");
        eventually(Duration::from_secs(10), "nginx answers", async || {
            reqwest::get(&url).await.is_ok_and(|r| r.status() == 200)
        })
        .await;
        nginx
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for Nginx {
    /// A fast shutdown (SIGTERM) lets the master stop its workers; SIGKILL would leave them
    /// running after the test. SIGKILL only if the master has not exited within 5 s.
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx_binary() -> &'static str {
    ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("nginx")
}

/// docs/deployment.md's reverse-proxy block, with every path inside `dir` so that nginx needs
/// nothing from the machine but its binary.
fn config(dir: &Path, port: u16, upstreams: &[SocketAddr]) -> String {
    let dir = dir.display();
    let servers: String = upstreams
        .iter()
        .map(|a| format!("        server {a} max_fails=0;\n"))
        .collect();
    // nginx started by root would hand its workers to `nobody`, who cannot use `dir`.
    let user = if is_root() { "user root root;\n" } else { "" };
    format!(
        r#"{user}worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream superinsights {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://superinsights;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_next_upstream error timeout non_idempotent;
            proxy_connect_timeout 2s;
        }}
        location ~ /realtime/stream$ {{
            proxy_pass http://superinsights;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
        }}
    }}
}}
"#
    )
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// Three instances on one store (this leg's backend) and one Redis, behind nginx.
struct Deployment {
    _redis: RedisServer,
    dir: tempfile::TempDir,
    project: DocId,
    key: String,
    /// What every instance is started with (a restarted one too).
    env: Vec<(&'static str, String)>,
    instances: Vec<ServerProcess>,
    nginx: Nginx,
}

impl Deployment {
    /// `limits`: the ingest rate limits, `(per IP, per project)`.
    async fn start(limits: (&'static str, &'static str)) -> Self {
        let redis = RedisServer::start().await;
        let dir = tempfile::tempdir().unwrap();
        let (project, key) = create_admin(dir.path());
        let env = vec![
            ("REDIS_URL", redis.url()),
            ("SESSION_STORE_REDIS", "true".into()),
            ("CACHE_REDIS", "true".into()),
            ("RATE_LIMIT_REDIS", "true".into()),
            ("SESSION_SECRET", "one-secret-for-every-instance".into()),
            ("PUBLIC_LINK_PEPPER", "one-pepper-for-every-instance".into()),
            ("TRUST_PROXY", "1".into()),
            ("RATE_LIMIT_INGEST_IP", limits.0.into()),
            ("RATE_LIMIT_INGEST_PROJECT", limits.1.into()),
        ];
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (a, b, c) = tokio::join!(
            ServerProcess::start(dir.path(), &pairs),
            ServerProcess::start(dir.path(), &pairs),
            ServerProcess::start(dir.path(), &pairs),
        );
        let nginx = Nginx::start(&[a.addr, b.addr, c.addr]).await;
        Self {
            _redis: redis,
            dir,
            project,
            key,
            env,
            instances: vec![a, b, c],
            nginx,
        }
    }

    /// Starts an instance on `port`: the address of one that was stopped, so nginx's list holds.
    async fn start_instance(&self, port: u16) -> ServerProcess {
        let pairs: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        ServerProcess::start_on(self.dir.path(), &pairs, port).await
    }
}

/// Signs in as the admin through `nginx`; returns the browser holding the cookie.
async fn sign_in(nginx: &Nginx) -> reqwest::Client {
    let browser = crate::support::browser();
    sign_in_admin(&browser, &nginx.url("")).await;
    browser
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn through_nginx_one_sign_in_and_one_exact_ip_limit_span_three_instances() {
    let d = Deployment::start(("20/60s", "off")).await;
    let (nginx, project, key) = (&d.nginx, d.project, &d.key);

    // Every instance serves the signed-in user: nginx spreads these over all three.
    let browser = sign_in(nginx).await;
    for i in 0..9 {
        let r = browser
            .get(nginx.url(&format!("/projects/{project}/settings")))
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "request {i}: signed in on whichever instance"
        );
    }
    // nginx's round robin really reached each instance.
    for server in &d.instances {
        let text = metrics_text(server).await;
        assert!(
            text.lines()
                .any(|l| l.starts_with("si_http_requests_total")
                    && l.contains("/projects/:id/settings")),
            "{} served some of the signed-in pages",
            server.addr
        );
    }

    // 30 single events from one client that claims another address: exactly 20 are taken,
    // over three instances, and the claim changes nothing (nginx appends what it saw).
    let http = reqwest::Client::new();
    let (mut created, mut limited) = (0, 0);
    for i in 0..30 {
        let r = http
            .post(nginx.url("/v1/events"))
            .bearer_auth(key)
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .json(&json!({"eventName": format!("limited-{i}")}))
            .send()
            .await
            .unwrap();
        match r.status().as_u16() {
            201 => created += 1,
            429 => limited += 1,
            other => panic!("event {i}: unexpected status {other}"),
        }
    }
    assert_eq!(
        (created, limited),
        (20, 10),
        "one limit across the instances"
    );
    assert_eq!(stored_events(d.dir.path(), project).await, 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_behind_nginx_answers_no_error_and_loses_nothing() {
    let mut d = Deployment::start(("off", "off")).await;
    let project = d.project;
    let browser = sign_in(&d.nginx).await;

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(PageCounts::default());
    let pages = page_loads(
        browser,
        d.nginx.url(""),
        project,
        stop.clone(),
        counts.clone(),
    );
    // A 502 (or any answer but 201/202) through nginx makes a load client panic.
    let load = Load::start(vec![d.nginx.url("/v1/events")], d.key.clone(), 4);
    eventually(Duration::from_secs(10), "traffic flows", async || {
        counts.ok.load(Ordering::Relaxed) >= 10 && load.acked() >= 100
    })
    .await;

    // One by one: SIGTERM (the instance drains), then a new process on the same address.
    for i in 0..d.instances.len() {
        let before = load.acked();
        let mut old = d.instances.remove(i);
        let port = old.addr.port();
        let status = tokio::task::spawn_blocking(move || old.terminate())
            .await
            .unwrap();
        assert!(
            status.success(),
            "instance {i} drained and exited: {status:?}"
        );
        let new = d.start_instance(port).await;
        d.instances.insert(i, new);
        eventually(
            Duration::from_secs(10),
            "traffic goes on after the restart",
            async || load.acked() >= before + 100,
        )
        .await;
    }

    stop.store(true, Ordering::Relaxed);
    pages.await.expect("no page load saw an unexpected answer");
    let acked = load.stop().await;
    assert_eq!(
        counts.server_errors.load(Ordering::Relaxed),
        0,
        "no 5xx through nginx during the restarts"
    );
    assert_eq!(
        counts.signed_out.load(Ordering::Relaxed),
        0,
        "nobody was signed out"
    );
    for server in &mut d.instances {
        assert!(server.terminate().success());
    }
    assert_eq!(
        stored_events(d.dir.path(), project).await,
        acked,
        "every acknowledged event is stored once"
    );
}

/// Ingests one page view through `server` (directly, not through nginx) and waits until
/// `stream` shows it, sending it again if the stream missed it (a subscription just made).
async fn seen_on_stream(stream: &mut Stream, server: &ServerProcess, key: &str, label: &str) {
    let http = reqwest::Client::new();
    for attempt in 0..5 {
        let r = http
            .post(server.url("/v1/pageviews"))
            .bearer_auth(key)
            .json(&json!({"url": label, "clientId": format!("rt-{attempt}-{label}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match stream.next_or_wait(left).await {
                Ok(Some((name, data))) => {
                    if name == "hits"
                        && data["hits"]
                            .as_array()
                            .is_some_and(|h| h.iter().any(|h| h["label"] == label))
                    {
                        return;
                    }
                    assert_ne!(name, "end", "the stream ended: {data}");
                }
                Ok(None) => panic!("the stream closed before showing {label}"),
                Err(_) => break,
            }
        }
    }
    panic!(
        "{label}, ingested through {}, never reached the stream",
        server.addr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_realtime_stream_through_nginx_sees_every_instance_and_survives_a_rolling_restart() {
    let mut d = Deployment::start(("off", "off")).await;
    let (project, key) = (d.project, d.key.clone());
    let browser = sign_in(&d.nginx).await;
    let stream_url = d.nginx.url(&format!("/projects/{project}/realtime/stream"));
    let mut stream = Stream::open(&browser, &stream_url).await;
    stream
        .until(Duration::from_secs(5), "visitors", |_| true)
        .await;
    // Events ingested through each instance reach the one stream, whichever instance holds it.
    for (i, server) in d.instances.iter().enumerate() {
        seen_on_stream(
            &mut stream,
            server,
            &key,
            &format!("https://shop.example/via-{i}"),
        )
        .await;
    }

    // One by one: the restart of the instance holding the stream ends it with `shutdown` and
    // a clean close; the browser reconnects through nginx and sees events again.
    let mut ends = 0;
    for i in 0..d.instances.len() {
        let mut old = d.instances.remove(i);
        let port = old.addr.port();
        let status = tokio::task::spawn_blocking(move || old.terminate())
            .await
            .unwrap();
        assert!(status.success(), "instance {i} exited cleanly: {status:?}");
        // The holder's shutdown has sent `end` before the process exited; others send nothing
        // but their periodic counts.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match stream.next_or_wait(left).await {
                Ok(Some((name, data))) if name == "end" => {
                    assert_eq!(data["reason"], "shutdown", "restart {i}");
                    assert!(
                        matches!(stream.next_or_wait(Duration::from_secs(5)).await, Ok(None)),
                        "the stream closes after its end event"
                    );
                    ends += 1;
                    stream = Stream::open(&browser, &stream_url).await;
                    stream
                        .until(Duration::from_secs(5), "visitors", |_| true)
                        .await;
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("restart {i}: the stream closed without an end event"),
                Err(_) => break,
            }
        }
        let new = d.start_instance(port).await;
        d.instances.insert(i, new);
        // The reconnected (or untouched) stream still sees every instance, the new one too.
        for (j, server) in d.instances.iter().enumerate() {
            seen_on_stream(
                &mut stream,
                server,
                &key,
                &format!("https://shop.example/after-{i}-via-{j}"),
            )
            .await;
        }
    }
    assert!(
        ends >= 1,
        "the instance holding the stream was among those restarted"
    );
    for server in &mut d.instances {
        assert!(server.terminate().success());
    }
}
