//! The real binary: SIGTERM drains what was accepted, and several processes share one store (a
//! SQLite file, or a MongoDB database in the MongoDB leg).

use crate::support::{ServerProcess, get_accepting, metric_sum, run_cli};
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};
use superinsights::domain::ids::DocId;

/// Creates the admin and first project in `dir` with the CLI; returns (project id, public key).
pub fn create_admin(dir: &std::path::Path) -> (DocId, String) {
    let data = dir.to_str().unwrap();
    let (code, out, err) = run_cli(
        &["create-admin", "--email", "admin@example.com"],
        &[
            ("DATA_DIR", data),
            ("SUPERINSIGHTS_ADMIN_PASSWORD", "a-strong-password"),
        ],
    );
    assert_eq!(code, 0, "{out}{err}");
    let field = |name: &str| {
        out.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().last())
            .unwrap()
            .to_string()
    };
    let id = field("project:")
        .trim_matches(|c| c == '(' || c == ')')
        .to_string();
    (
        DocId::parse(&id).expect("project id printed"),
        field("public key:"),
    )
}

/// These tests load the server as hard as they can; rate limits are not what they measure.
const UNLIMITED: [(&str, &str); 2] = [
    ("RATE_LIMIT_INGEST_IP", "off"),
    ("RATE_LIMIT_INGEST_PROJECT", "off"),
];

/// Events of `project` stored by the servers on `dir` (its SQLite file or MongoDB database).
pub async fn stored_events(dir: &std::path::Path, project: DocId) -> u64 {
    crate::backend::stored_events(dir, project).await
}

/// `workers` clients sending 5-event batches until stopped, counting acknowledged events.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicU64>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Starts the clients, spread over `urls` (each a `/v1/events` URL).
    pub(crate) fn start(urls: Vec<String>, key: String, workers: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicU64::new(0));
        let workers = (0..workers)
            .map(|w| {
                let (url, key, stop, acked) = (
                    urls[w % urls.len()].clone(),
                    key.clone(),
                    stop.clone(),
                    acked.clone(),
                );
                tokio::spawn(async move {
                    let http = reqwest::Client::new();
                    while !stop.load(Ordering::Relaxed) {
                        let items: Vec<Value> = (0..5)
                            .map(|i| json!({"eventName": "load", "properties": {"w": w, "i": i}}))
                            .collect();
                        match http
                            .post(&url)
                            .bearer_auth(&key)
                            .json(&json!({"items": items}))
                            .send()
                            .await
                        {
                            Ok(r) if r.status() == 201 || r.status() == 202 => {
                                acked.fetch_add(5, Ordering::Relaxed);
                            }
                            Ok(r) => panic!("unexpected status {}", r.status()),
                            // The server closed: no acknowledgement, nothing promised.
                            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            acked,
            workers,
        }
    }

    /// Events acknowledged so far.
    pub(crate) fn acked(&self) -> u64 {
        self.acked.load(Ordering::Relaxed)
    }

    /// Stops the clients, waits for them, and returns the events acknowledged in all.
    pub(crate) async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        for w in self.workers {
            w.await.unwrap();
        }
        self.acked.load(Ordering::Relaxed)
    }
}

#[tokio::test]
async fn sigterm_stops_accepting_and_stores_everything_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let mut server = ServerProcess::start(dir.path(), &UNLIMITED).await;
    let load = Load::start(vec![server.url("/v1/events")], key, 16);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    let acked = load.stop().await;
    assert!(status.success(), "clean exit after drain: {status:?}");
    assert!(acked > 0, "load ran before the signal");
    assert_eq!(
        stored_events(dir.path(), project).await,
        acked,
        "every acknowledged event is stored"
    );
}

/// Issue 14, item 4: SIGKILL mid-load (no drain, no destructor). Every acknowledged event is
/// stored once the server is back on the same files; the only extra ones are those of requests
/// in flight at the kill (committed, never answered): at most one 5-event batch per worker.
#[tokio::test]
async fn sigkill_mid_load_loses_nothing_acknowledged() {
    const WORKERS: usize = 16;
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let mut server = ServerProcess::start(dir.path(), &UNLIMITED).await;
    let load = Load::start(vec![server.url("/v1/events")], key, WORKERS);
    crate::support::eventually(Duration::from_secs(10), "load under way", async || {
        load.acked() >= 2_000
    })
    .await;
    let status = tokio::task::spawn_blocking(move || server.crash())
        .await
        .unwrap();
    let acked = load.stop().await;
    assert!(!status.success(), "killed, not exited: {status:?}");
    // Back on the same files: anything spooled before the kill is replayed.
    let server = ServerProcess::start(dir.path(), &UNLIMITED).await;
    let mut stored = 0;
    crate::support::eventually(Duration::from_secs(20), "replay settled", async || {
        stored = stored_events(dir.path(), project).await;
        stored >= acked
    })
    .await;
    assert!(
        stored <= acked + 5 * WORKERS as u64,
        "{stored} stored, {acked} acknowledged: more extra than requests in flight"
    );
    drop(server);
}

#[tokio::test]
async fn two_processes_share_one_sqlite_file() {
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let mut a = ServerProcess::start(dir.path(), &UNLIMITED).await;
    let mut b = ServerProcess::start(dir.path(), &UNLIMITED).await;
    let load = Load::start(vec![a.url("/v1/events"), b.url("/v1/events")], key, 8);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let acked = load.stop().await;
    assert!(a.terminate().success());
    assert!(b.terminate().success());
    assert!(acked > 0);
    assert_eq!(stored_events(dir.path(), project).await, acked);
}

/// The value of every `si_cache_requests_total` series with `result="{result}"` on a server.
async fn cache_lookups(server: &ServerProcess, result: &str) -> f64 {
    let label = format!("result=\"{result}\"");
    metric_sum(server, "si_cache_requests_total", &label).await
}

/// GETs `path` on `server` as a JSON client (the `si` CLI's `Accept`).
pub(crate) async fn get_json(
    client: &reqwest::Client,
    server: &ServerProcess,
    path: &str,
) -> reqwest::Response {
    get_accepting(client, server, path, "application/json").await
}

/// The `_csrf` of the first form on a page of `server`, fetched with `client`.
pub(crate) async fn csrf_on(
    client: &reqwest::Client,
    server: &ServerProcess,
    path: &str,
) -> String {
    let r = client.get(server.url(path)).send().await.unwrap();
    assert_eq!(r.status(), 200, "{path}");
    crate::support::csrf_of(&r.text().await.unwrap())
}

/// Signs `browser` in as the admin `create_admin` made, through the server (or proxy) at `base`
/// (`http://host:port`).
pub(crate) async fn sign_in_admin(browser: &reqwest::Client, base: &str) {
    let page = browser
        .get(format!("{base}/auth/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200, "the login page at {base}");
    let csrf = crate::support::csrf_of(&page.text().await.unwrap());
    let r = browser
        .post(format!("{base}/auth/login"))
        .form(&[
            ("_csrf", csrf.as_str()),
            ("email", "admin@example.com"),
            ("password", "a-strong-password"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed in at {base}");
}

/// Issue 13 item 4 (and the scale-out the design card promises): three processes on one store
/// (this leg's backend: a SQLite file, or one MongoDB database) and one Redis behave as one
/// deployment, whichever instance a request lands on — a sign-in on one is a sign-in on all
/// (and a form fetched from one posts to another), one dashboard cache, a public link enabled
/// on one opens on the others with the `si` CLI's requests, and a sign-out on one signs out
/// everywhere.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_on_one_store_and_one_redis_act_as_one_deployment() {
    let redis = crate::support::RedisServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let url = redis.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("SESSION_STORE_REDIS", "true"),
        ("CACHE_REDIS", "true"),
        ("RATE_LIMIT_REDIS", "true"),
        ("SESSION_SECRET", "one-secret-for-every-instance"),
        ("PUBLIC_LINK_PEPPER", "one-pepper-for-every-instance"),
    ];
    let (a, b, c) = tokio::join!(
        ServerProcess::start(dir.path(), &env),
        ServerProcess::start(dir.path(), &env),
        ServerProcess::start(dir.path(), &env),
    );
    let http = reqwest::Client::new();
    for (i, server) in [&a, &b, &c].into_iter().enumerate() {
        let r = http
            .post(server.url("/v1/pageviews"))
            .header("x-api-key", &key)
            .json(&json!({"url": format!("/from-{i}"), "clientId": format!("c{i}")}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }

    // Signed in on A; the same cookie opens the project on B and C.
    let browser = crate::support::browser();
    sign_in_admin(&browser, &format!("http://{}", a.addr)).await;
    let dashboard = format!("/projects/{project}/dashboard/data?timeframe=24h");
    for server in [&b, &c] {
        let r = get_json(&browser, server, &dashboard).await;
        assert_eq!(
            r.status(),
            200,
            "the session from A is known on {}",
            server.addr
        );
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["data"]["pageViews"]["totalViews"], 3);
    }
    // One cache: B filled it above (a miss there); C read it (a hit there, no miss).
    assert!(cache_lookups(&b, "miss").await >= 1.0);
    assert!(cache_lookups(&c, "hit").await >= 1.0);
    assert_eq!(cache_lookups(&c, "miss").await, 0.0, "C never computed it");

    // A form fetched from A posts to B (the CSRF token lives in the shared session).
    let settings = format!("/projects/{project}/settings");
    let csrf = csrf_on(&browser, &a, &settings).await;
    let r = browser
        .post(b.url(&format!("/projects/{project}/public-link/enable")))
        .header("accept", "text/html")
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "enabled through B");
    let html = get_accepting(&browser, &b, &settings, "text/html")
        .await
        .text()
        .await
        .unwrap();
    let marker = "id=\"public-link-url\" readonly value=\"";
    let at = html.find(marker).expect("the new link is shown") + marker.len();
    let link = html[at..].split('"').next().unwrap();
    let token = link.rsplit('/').nth(1).unwrap().to_string();

    // The `si` CLI's requests through the link, on C and A, without a session.
    for (server, path) in [
        (&c, "/dashboard/data"),
        (&a, "/pageviews?timeframe=24h"),
        (&c, "/events?timeframe=24h"),
        (&a, "/errors?timeframe=24h"),
    ] {
        let r = get_json(&http, server, &format!("/p/{project}/{token}{path}")).await;
        assert_eq!(r.status(), 200, "{path} on {}", server.addr);
    }

    // Signed out on C: the cookie no longer opens anything on A or B.
    let csrf = csrf_on(&browser, &c, &settings).await;
    let r = browser
        .post(c.url("/auth/logout"))
        .form(&[("_csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "signed out on C");
    for server in [&a, &b] {
        let r = get_json(&browser, server, &dashboard).await;
        assert_eq!(r.status(), 401, "signed out on {} too", server.addr);
    }
}
