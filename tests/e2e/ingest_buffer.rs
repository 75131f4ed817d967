//! The Redis Streams ingest buffer (`INGEST_BUFFER_REDIS`, issue 18 item 4) against real
//! redis-server processes (append-only, `appendfsync always`, as the acknowledgement assumes)
//! and the real binary: batches acknowledged on any instance are stored exactly once, a store
//! outage costs only lag, a killed writer's pending batches are taken over, a killed Redis
//! sends requests down the local path, a full stream too. Each test counts events acknowledged
//! against events stored.

use crate::backend::{self, StoreLock, StoreProxy};
use crate::process::{Load, create_admin, stored_events};
use crate::support::{RedisServer, ServerProcess, TestApp, eventually, metric_sum};
use serde_json::{Value, json};
use std::{sync::atomic::Ordering, time::Duration};
use superinsights::domain::model::Channel;

/// Redis append-only with `appendfsync always` (compose.yml keeps `everysec`): every add is in the
/// append-only file before its answer, so a restarted server has every acknowledged entry.
async fn durable_redis() -> RedisServer {
    RedisServer::start_args(&["--appendonly", "yes", "--appendfsync", "always"]).await
}

/// The buffer on `redis`, a writer taking over entries idle for a second, no rate limits.
fn buffer_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("REDIS_URL", url.to_string()),
        ("INGEST_BUFFER_REDIS", "true".into()),
        ("INGEST_BUFFER_CLAIM_IDLE_MS", "1000".into()),
        ("RATE_LIMIT_INGEST_IP", "off".into()),
        ("RATE_LIMIT_INGEST_PROJECT", "off".into()),
        ("SQLITE_BUSY_TIMEOUT_MS", "150".into()),
    ]
}

fn pairs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// The value of `si_ingest_buffer_batches_total{outcome="…"}` on a server process.
async fn buffer_batches(server: &ServerProcess, outcome: &str) -> u64 {
    let label = format!("outcome=\"{outcome}\"");
    metric_sum(server, "si_ingest_buffer_batches_total", &label).await as u64
}

/// A number `redis-cli` printed (`XLEN`), 0 when it printed none.
async fn redis_number(redis: &RedisServer, command: &str) -> u64 {
    redis
        .cli(&format!("{command}\n"))
        .await
        .trim()
        .parse()
        .unwrap_or(0)
}

async fn stream_length(redis: &RedisServer) -> u64 {
    redis_number(redis, "XLEN si:{ingest}:batches").await
}

/// Entries delivered to some writer and not acknowledged (`XPENDING` summary's count).
async fn stream_pending(redis: &RedisServer) -> u64 {
    let out = redis
        .cli("XPENDING si:{ingest}:batches si-ingest-writers\n")
        .await;
    out.lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .unwrap_or(0)
}

/// Takes the store of the servers on `dir` away on demand, for server processes: the SQLite
/// file's write lock held by another connection, or (MongoDB) a proxy in front of the
/// database that refuses writes; `env` points a process at the proxy.
struct ProcessStoreFault {
    proxy: Option<StoreProxy>,
    env: Vec<(String, String)>,
    dir: std::path::PathBuf,
}

impl ProcessStoreFault {
    async fn new(dir: &std::path::Path) -> Self {
        match backend::backend() {
            backend::Backend::MongoDb { uri } => {
                let guard = backend::DatabaseGuard(backend::database_for(dir));
                let proxy = StoreProxy::start(uri, Some(guard)).await;
                let env = backend::env_for(dir, Some(&proxy.uri(uri)));
                Self {
                    proxy: Some(proxy),
                    env,
                    dir: dir.to_path_buf(),
                }
            }
            backend::Backend::Sqlite => Self {
                proxy: None,
                env: Vec::new(),
                dir: dir.to_path_buf(),
            },
        }
    }

    /// The environment of a process whose store this fault can take away.
    fn env(&self) -> Vec<(&str, &str)> {
        self.env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect()
    }

    async fn lock(&self) -> StoreLock {
        if let Some(proxy) = &self.proxy {
            return StoreLock::mongo(proxy.lock_writes());
        }
        StoreLock::sqlite_file(&self.dir).await
    }
}

/// Sends `requests` 5-event batches one after another; returns the events acknowledged and
/// the statuses seen.
async fn send_batches(url: &str, key: &str, requests: usize, tag: &str) -> (u64, Vec<u16>) {
    let http = reqwest::Client::new();
    let (mut acked, mut statuses) = (0, Vec::new());
    for i in 0..requests {
        let items: Vec<Value> = (0..5)
            .map(|j| json!({"eventName": format!("{tag}-{i}-{j}")}))
            .collect();
        let r = http
            .post(url)
            .bearer_auth(key)
            .json(&json!({"items": items}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if status == 201 || status == 202 {
            acked += 5;
        }
        statuses.push(status);
    }
    (acked, statuses)
}

/// (1) Two instances with the buffer on, clients on both: every acknowledged event is stored
/// exactly once, every batch went through the stream, and the stream ends empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_store_every_buffered_batch_exactly_once() {
    let redis = durable_redis().await;
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let env = buffer_env(&redis.url());
    let env = pairs(&env);
    let (a, b) = tokio::join!(
        ServerProcess::start(dir.path(), &env),
        ServerProcess::start(dir.path(), &env),
    );
    let load = Load::start(vec![a.url("/v1/events"), b.url("/v1/events")], key, 8);
    eventually(Duration::from_secs(20), "load under way", async || {
        load.acked() >= 1_000
    })
    .await;
    let acked = load.stop().await;
    let mut stored = 0;
    eventually(
        Duration::from_secs(30),
        "every batch committed",
        async || {
            stored = stored_events(dir.path(), project).await;
            stored >= acked && stream_length(&redis).await == 0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stored_events(dir.path(), project).await,
        acked,
        "stored = acknowledged"
    );
    let buffered = buffer_batches(&a, "buffered").await + buffer_batches(&b, "buffered").await;
    let committed = buffer_batches(&a, "committed").await + buffer_batches(&b, "committed").await;
    assert_eq!(
        buffered * 5,
        acked,
        "every acknowledged batch went through the stream"
    );
    assert_eq!(
        committed, buffered,
        "each committed once, by one writer or the other"
    );
    assert!(
        buffer_batches(&a, "committed").await > 0 && buffer_batches(&b, "committed").await > 0,
        "both instances' writers took part"
    );
    assert_eq!(stream_pending(&redis).await, 0);
}

/// (2) The store refuses writes while clients keep sending: every request is acknowledged from
/// the stream (201, nothing spooled), the batches wait there (the lag shows in `/readyz`), and
/// all are stored once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_outage_costs_only_lag() {
    let redis = durable_redis().await;
    let env = buffer_env(&redis.url());
    let app = TestApp::spawn(&pairs(&env)).await;
    let p = app.project().await;
    let lock = app.lock_database().await;
    let (acked, statuses) =
        send_batches(&app.url("/v1/events"), &p.public_api_key, 30, "out").await;
    assert!(
        statuses.iter().all(|s| *s == 201),
        "acknowledged from the stream: {statuses:?}"
    );
    assert_eq!(acked, 150);
    assert!(!app.state.spool.has_pending(), "nothing took the spool");
    // The lag is visible while it lasts.
    eventually(Duration::from_secs(10), "the lag is reported", async || {
        let r = app.readiness().await;
        r["ingestBuffer"]["length"] == 30 && r["ingestBuffer"]["pending"].as_u64() > Some(0)
    })
    .await;
    assert_eq!(
        stream_length(&redis).await,
        30,
        "every batch waits in the stream"
    );
    lock.release().await;
    eventually(
        Duration::from_secs(30),
        "the stream drains into the store",
        async || app.count(&p, Channel::Events).await >= acked && stream_length(&redis).await == 0,
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.count(&p, Channel::Events).await,
        acked,
        "stored = acknowledged"
    );
    let stats = app.state.ingestor.buffer().unwrap().stats();
    assert_eq!(stats.committed.load(Ordering::Relaxed), 30);
    assert_eq!(stats.fell_back.load(Ordering::Relaxed), 0);
    app.stop().await;
}

/// (3) An instance is SIGKILLed holding batches it read but could not commit (the store was
/// away): another instance takes them over after the claim time, reads the rest, and stores
/// each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_writers_pending_batches_are_taken_over() {
    let redis = durable_redis().await;
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let fault = ProcessStoreFault::new(dir.path()).await;
    let env = buffer_env(&redis.url());
    let mut a_env = pairs(&env);
    a_env.extend(fault.env());
    let mut a = ServerProcess::start(dir.path(), &a_env).await;
    let lock = fault.lock().await;
    let url = a.url("/v1/events");
    let sends: Vec<_> = (0..4)
        .map(|w| {
            let (url, key) = (url.clone(), key.clone());
            tokio::spawn(async move { send_batches(&url, &key, 10, &format!("w{w}")).await })
        })
        .collect();
    let mut acked = 0;
    for s in sends {
        let (n, statuses) = s.await.unwrap();
        assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
        acked += n;
    }
    assert_eq!(acked, 200);
    // While the store refuses, A keeps retrying the batches it read (the rest wait unread).
    let mut held = 0;
    eventually(
        Duration::from_secs(15),
        "A holds batches it cannot commit",
        async || {
            held = stream_pending(&redis).await;
            held > 0
        },
    )
    .await;
    assert!(!a.crash().success());
    lock.release().await;
    assert_eq!(stream_length(&redis).await, 40, "nothing lost with A");
    let b = ServerProcess::start(dir.path(), &pairs(&env)).await;
    let mut stored = 0;
    eventually(
        Duration::from_secs(30),
        "B took the batches over",
        async || {
            stored = stored_events(dir.path(), project).await;
            stored >= acked && stream_length(&redis).await == 0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stored_events(dir.path(), project).await,
        acked,
        "stored = acknowledged"
    );
    assert!(
        buffer_batches(&b, "reclaimed").await >= held,
        "B took over the {held} batches A held"
    );
    assert_eq!(
        buffer_batches(&b, "committed").await + buffer_batches(&b, "duplicate").await,
        40
    );
    assert_eq!(stream_pending(&redis).await, 0);
}

/// (4) Redis is killed mid-load: requests keep being acknowledged through the local path (an
/// add left unanswered goes to the spool); Redis comes back from its append-only file and what
/// waited in the stream is committed. Nothing acknowledged is lost or stored twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_killed_mid_load_falls_back_without_losing_anything() {
    let mut redis = durable_redis().await;
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let env = buffer_env(&redis.url());
    let server = ServerProcess::start(dir.path(), &pairs(&env)).await;
    let load = Load::start(vec![server.url("/v1/events")], key, 8);
    eventually(Duration::from_secs(20), "load under way", async || {
        load.acked() >= 1_000
    })
    .await;
    redis.kill();
    let at_kill = load.acked();
    eventually(
        Duration::from_secs(20),
        "acknowledged without redis",
        async || load.acked() >= at_kill + 1_000,
    )
    .await;
    redis.restart().await;
    eventually(Duration::from_secs(20), "redis used again", async || {
        let before = buffer_batches(&server, "buffered").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        buffer_batches(&server, "buffered").await > before
    })
    .await;
    let acked = load.stop().await;
    let mut stored = 0;
    eventually(
        Duration::from_secs(40),
        "stream and spool drained",
        async || {
            stored = stored_events(dir.path(), project).await;
            stored >= acked && stream_length(&redis).await == 0
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stored_events(dir.path(), project).await,
        acked,
        "stored = acknowledged, nothing twice"
    );
    assert!(
        buffer_batches(&server, "unavailable").await > 0,
        "the local path took batches while redis was down"
    );
}

/// (5) The stream at its bound: further batches take the local path (here the store is away,
/// so the spool: 202), nothing in the stream is trimmed, and everything acknowledged is stored
/// once the store is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_stream_sends_batches_down_the_local_path() {
    let redis = durable_redis().await;
    let mut env = buffer_env(&redis.url());
    env.push(("INGEST_BUFFER_MAX_BATCHES", "5".into()));
    let app = TestApp::spawn(&pairs(&env)).await;
    let p = app.project().await;
    let lock = app.lock_database().await;
    let (acked, statuses) =
        send_batches(&app.url("/v1/events"), &p.public_api_key, 12, "full").await;
    assert_eq!(acked, 60, "all acknowledged: {statuses:?}");
    assert_eq!(&statuses[..5], &[201; 5], "the first five in the stream");
    assert!(
        statuses[5..].iter().all(|s| *s == 202),
        "the rest spooled by the local path: {statuses:?}"
    );
    assert_eq!(
        stream_length(&redis).await,
        5,
        "the stream holds its bound, nothing trimmed"
    );
    let stats = app.state.ingestor.buffer().unwrap().stats();
    assert_eq!(stats.buffered.load(Ordering::Relaxed), 5);
    assert_eq!(stats.fell_back.load(Ordering::Relaxed), 7);
    lock.release().await;
    // Spool replays run on the drainer's interval or after the next local commit.
    eventually(
        Duration::from_secs(30),
        "stream and spool drained",
        async || {
            app.count(&p, Channel::Events).await >= acked
                && stream_length(&redis).await == 0
                && !app.state.spool.has_pending()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        app.count(&p, Channel::Events).await,
        acked,
        "stored = acknowledged"
    );
    // Room again: the next batch goes to the stream.
    let (_, statuses) = send_batches(&app.url("/v1/events"), &p.public_api_key, 1, "after").await;
    assert_eq!(statuses, [201]);
    assert_eq!(stats.buffered.load(Ordering::Relaxed), 6);
    app.stop().await;
}

/// `INGEST_BUFFER_REDIS=true` without Redis stops startup with exit 78, naming the variables.
#[test]
fn the_buffer_without_redis_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let (code, out, err) = crate::support::run_cli(
        &["check-config"],
        &[("DATA_DIR", data), ("INGEST_BUFFER_REDIS", "true")],
    );
    assert_eq!(code, 78, "{out}{err}");
    assert!(
        err.contains("INGEST_BUFFER_REDIS") && err.contains("REDIS_URL"),
        "{err}"
    );
}

/// (6) Writers killed one after another (SIGKILL: no chance to leave the group) leave no names
/// behind: the live writer removes those idle for twice the claim time with nothing pending,
/// and every acknowledged event is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn killed_writers_leave_no_consumer_names_behind() {
    use superinsights::ingest::buffer::{GROUP, STREAM};
    let redis = durable_redis().await;
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let env = buffer_env(&redis.url());
    let mut acked = 0;
    let mut seen = std::collections::HashSet::new();
    for round in 0..3 {
        let mut server = ServerProcess::start(dir.path(), &pairs(&env)).await;
        let (n, statuses) =
            send_batches(&server.url("/v1/events"), &key, 5, &format!("r{round}")).await;
        assert!(statuses.iter().all(|s| *s == 201), "{statuses:?}");
        acked += n;
        eventually(
            Duration::from_secs(15),
            "the batches are committed",
            async || {
                stream_length(&redis).await == 0
                    && stored_events(dir.path(), project).await == acked
            },
        )
        .await;
        seen.extend(redis.consumer_names(STREAM, GROUP).await);
        assert!(!server.crash().success());
    }
    assert!(
        seen.len() >= 3,
        "each process joined under its own name: {seen:?}"
    );
    let last = ServerProcess::start(dir.path(), &pairs(&env)).await;
    let (n, _) = send_batches(&last.url("/v1/events"), &key, 2, "last").await;
    acked += n;
    let mut names = Vec::new();
    eventually(
        Duration::from_secs(15),
        "only the live writer's name is left",
        async || {
            names = redis.consumer_names(STREAM, GROUP).await;
            names.len() == 1 && !seen.contains(&names[0])
        },
    )
    .await;
    eventually(Duration::from_secs(15), "everything stored", async || {
        stored_events(dir.path(), project).await >= acked
    })
    .await;
    assert_eq!(stored_events(dir.path(), project).await, acked);
}

/// The pruning script itself (the ingest buffer and the job queue share it): a consumer that
/// holds a pending entry is kept however long it has been idle, an idle one holding nothing
/// goes, the caller is never removed, and the holder goes once its entry is acknowledged.
#[tokio::test]
async fn pruning_removes_only_idle_consumers_holding_nothing() {
    use superinsights::runtime::stream_group::prune_idle_consumers;
    let redis = RedisServer::start().await;
    let handle = redis.connected_handle().await;
    let out = redis
        .cli(
            "XGROUP CREATE s g 0 MKSTREAM\nXADD s 1-0 b x\nXREADGROUP GROUP g holder COUNT 1 STREAMS s >\n\
             XGROUP CREATECONSUMER s g idle\nXGROUP CREATECONSUMER s g me\n",
        )
        .await;
    assert!(out.contains("1-0"), "{out}");
    let bound = Duration::from_millis(300);
    let removed = prune_idle_consumers(&handle, "s", "g", "me", bound)
        .await
        .unwrap();
    assert!(
        removed.is_empty(),
        "nobody idle long enough yet: {removed:?}"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let removed = prune_idle_consumers(&handle, "s", "g", "me", bound)
        .await
        .unwrap();
    assert_eq!(removed, ["idle"]);
    let mut names = redis.consumer_names("s", "g").await;
    names.sort();
    assert_eq!(
        names,
        ["holder", "me"],
        "the holder keeps its pending entry"
    );
    assert!(redis.cli("XPENDING s g\n").await.starts_with('1'));
    redis.cli("XACK s g 1-0\n").await;
    let removed = prune_idle_consumers(&handle, "s", "g", "me", bound)
        .await
        .unwrap();
    assert_eq!(removed, ["holder"]);
    assert_eq!(redis.consumer_names("s", "g").await, ["me"]);
    // No group: an error, not a panic; the caller tries again later.
    assert!(
        prune_idle_consumers(&handle, "nothing", "g", "me", bound)
            .await
            .is_err()
    );
}
