//! Redis failover under traffic (issue 18 item 2): the real binary on a Sentinel-watched
//! primary with a replica (and on a Redis Cluster with a replica per primary), the primary
//! killed while a signed-in user loads pages, clients send events and analysis jobs run.
//! Counted: 5xx answers, sign-outs, events acknowledged vs stored, job attempts; measured: the
//! time from the kill until the server is on Redis again.

use crate::process::{Load, create_admin, csrf_on, get_json, sign_in_admin, stored_events};
use crate::support::{RedisServer, ServerProcess, eventually, metric_sum};
use serde_json::{Value, json};
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};
use superinsights::{
    domain::ids::DocId,
    store::{JobDispatch, JobState},
};

/// A primary, its replica and three sentinels on loopback, all started by the test.
struct SentinelSetup {
    primary: RedisServer,
    replica: RedisServer,
    sentinels: Vec<RedisServer>,
}

const SERVICE: &str = "si-primary";
/// Every Redis server of these tests requires it.
const PASSWORD: &str = "failover-test-pw";
/// The sentinels' own password (`sentinelPassword=` in the URL).
const SENTINEL_PASSWORD: &str = "sentinel-test-pw";

/// `--requirepass` (and `--masterauth`, for replication) with [`PASSWORD`].
const AUTH: [&str; 4] = ["--requirepass", PASSWORD, "--masterauth", PASSWORD];

impl SentinelSetup {
    /// Starts everything and waits until every sentinel knows the replica and the two other
    /// sentinels (otherwise a failover could not be agreed on).
    async fn start() -> Self {
        let mut primary = RedisServer::start_args(&AUTH).await;
        primary.password = Some(PASSWORD.into());
        let replica_of = primary.port.to_string();
        let mut args = AUTH.to_vec();
        args.extend(["--replicaof", "127.0.0.1", &replica_of]);
        let mut replica = RedisServer::start_args(&args).await;
        replica.password = Some(PASSWORD.into());
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(
                RedisServer::sentinel(
                    SERVICE,
                    primary.port,
                    Some(PASSWORD),
                    Some(SENTINEL_PASSWORD),
                )
                .await,
            );
        }
        let setup = Self {
            primary,
            replica,
            sentinels,
        };
        eventually(
            Duration::from_secs(15),
            "the replica is in sync and every sentinel knows the others",
            async || {
                if !setup
                    .replica
                    .cli("INFO replication\n")
                    .await
                    .contains("master_link_status:up")
                {
                    return false;
                }
                for sentinel in &setup.sentinels {
                    let info = sentinel.cli(&format!("SENTINEL MASTER {SERVICE}\n")).await;
                    let field = |name: &str| {
                        let mut lines = info.lines();
                        lines.find(|l| *l == name);
                        lines.next().map(str::to_string)
                    };
                    if field("num-slaves").as_deref() != Some("1")
                        || field("num-other-sentinels").as_deref() != Some("2")
                    {
                        return false;
                    }
                }
                true
            },
        )
        .await;
        setup
    }

    /// `REDIS_URL` in fred's grammar: the servers' password, the first sentinel as the host,
    /// the others as `node=`, the sentinels' password.
    fn url(&self) -> String {
        let [first, rest @ ..] = &self.sentinels[..] else {
            unreachable!("three sentinels")
        };
        let nodes: String = rest
            .iter()
            .map(|s| format!("&node=127.0.0.1:{}", s.port))
            .collect();
        format!(
            "redis-sentinel://:{PASSWORD}@127.0.0.1:{}/0?sentinelServiceName={SERVICE}{nodes}&sentinelPassword={SENTINEL_PASSWORD}",
            first.port
        )
    }
}

/// What the signed-in user saw while the traffic ran.
#[derive(Default)]
pub(crate) struct PageCounts {
    pub(crate) ok: AtomicU64,
    pub(crate) signed_out: AtomicU64,
    pub(crate) server_errors: AtomicU64,
}

/// Loads the dashboard data (cache, session) and the settings page (session) as a signed-in
/// browser until told to stop, counting 200s, sign-outs (401 or a redirect to the login) and
/// 5xx answers.
pub(crate) fn page_loads(
    browser: reqwest::Client,
    base: String,
    project: DocId,
    stop: Arc<AtomicBool>,
    counts: Arc<PageCounts>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let paths = [
            format!("/projects/{project}/dashboard/data?timeframe=24h"),
            format!("/projects/{project}/settings"),
        ];
        let mut n = 0usize;
        while !stop.load(Ordering::Relaxed) {
            let path = &paths[n % paths.len()];
            n += 1;
            let Ok(r) = browser
                .get(format!("{base}{path}"))
                .header("accept", "application/json, text/html")
                .send()
                .await
            else {
                continue;
            };
            let status = r.status().as_u16();
            let counter = match status {
                200 => &counts.ok,
                401 | 302 | 303 => &counts.signed_out,
                s if s >= 500 => &counts.server_errors,
                other => panic!("{path}: unexpected status {other}"),
            };
            counter.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
}

/// Whether the server reports Redis connected with its breaker closed.
async fn on_redis(server: &ServerProcess) -> bool {
    let Ok(r) = reqwest::get(server.url("/readyz")).await else {
        return false;
    };
    let v: Value = r.json().await.unwrap_or_default();
    v["redis"]["connected"] == true && v["redis"]["breaker"]["open"] != true
}

/// Queues an AI analysis run (a statistical digest: no provider) and returns its id.
async fn queue_run(
    browser: &reqwest::Client,
    server: &ServerProcess,
    project: DocId,
    csrf: &str,
) -> DocId {
    let r = browser
        .post(server.url(&format!("/projects/{project}/ai-analysis/run")))
        .header("accept", "application/json")
        .header("x-csrf-token", csrf)
        .json(&json!({"timeframe": "24h"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202, "the run is queued");
    let body: Value = r.json().await.unwrap();
    DocId::parse(body["runId"].as_str().unwrap()).unwrap()
}

/// What one failover run measured, from the kill.
struct Figures {
    /// Until the topology named the replica as the primary (Sentinel: the sentinels' answer;
    /// Cluster: the replica's role), polled, so to within ~30 ms.
    promoted_after: Duration,
    /// Until the server reported itself on Redis again (connected, breaker closed).
    recovered_after: Duration,
    /// Calls that took their piece's fallback meanwhile (`si_fallbacks_total`).
    fallbacks: f64,
    /// Signed-in page loads answered 200, and events acknowledged (all stored), in the run.
    pages: u64,
    events: u64,
}

impl Figures {
    fn print(&self, topology: &str) {
        eprintln!(
            "{topology} failover: replica named primary {:.2} s and the server on redis again {:.2} s after the primary was killed; {} calls fell back meanwhile; {} page loads, {} events acknowledged and stored, no 5xx, no sign-out",
            self.promoted_after.as_secs_f64(),
            self.recovered_after.as_secs_f64(),
            self.fallbacks,
            self.pages,
            self.events,
        );
    }
}

/// Runs the server on `redis_url`, drives mixed traffic, calls `kill_primary` (which makes
/// sure what matters is replicated, then kills the primary) and checks the promises.
/// `promoted` tells whether the replica is primary now; `promoted_commands` reads the number
/// of commands it has processed.
async fn failover_under_traffic(
    redis_url: &str,
    redis_password: Option<&str>,
    kill_primary: impl AsyncFnOnce(),
    promoted: impl AsyncFn() -> bool,
    promoted_commands: impl AsyncFn() -> u64,
) -> Figures {
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let mut env = vec![
        ("REDIS_URL", redis_url),
        ("SESSION_STORE_REDIS", "true"),
        ("CACHE_REDIS", "true"),
        ("RATE_LIMIT_REDIS", "true"),
        ("JOB_QUEUE_REDIS", "true"),
        // Limits stay on (counted in Redis) but never refuse this test's traffic.
        ("RATE_LIMIT_INGEST_IP", "1000000/60s"),
        ("RATE_LIMIT_INGEST_PROJECT", "1000000/60s"),
        ("RATE_LIMIT_AUTH_IP", "1000/60s"),
    ];
    if let Some(password) = redis_password {
        env.push(("REDIS_PASSWORD", password));
    }
    let mut server = ServerProcess::start(dir.path(), &env).await;
    assert!(on_redis(&server).await, "on redis from the start");

    // Signed in, with the session's CSRF token fetched before anything is replicated.
    let browser = crate::support::browser();
    sign_in_admin(&browser, &format!("http://{}", server.addr)).await;
    let csrf = csrf_on(&browser, &server, &format!("/projects/{project}/settings")).await;

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new(PageCounts::default());
    let load = Load::start(vec![server.url("/v1/events")], key, 2);
    let pages = page_loads(
        browser.clone(),
        format!("http://{}", server.addr),
        project,
        stop.clone(),
        counts.clone(),
    );
    let mut runs = vec![queue_run(&browser, &server, project, &csrf).await];
    eventually(
        Duration::from_secs(10),
        "traffic flows on redis",
        async || counts.ok.load(Ordering::Relaxed) >= 10 && load.acked() >= 50,
    )
    .await;

    kill_primary().await;
    let killed = Instant::now();
    runs.push(queue_run(&browser, &server, project, &csrf).await);
    let mut promoted_after = None;
    eventually(
        Duration::from_secs(20),
        "the server is on redis again after the failover",
        async || {
            if promoted_after.is_none() && promoted().await {
                promoted_after = Some(killed.elapsed());
            }
            on_redis(&server).await
        },
    )
    .await;
    let recovered_after = killed.elapsed();
    eventually(
        Duration::from_secs(10),
        "the replica is named primary",
        async || promoted().await,
    )
    .await;
    let promoted_after = promoted_after.unwrap_or(recovered_after);

    // Redis serves again: the promoted node processes the traffic's commands, sessions are
    // read from it, and no piece falls back any more.
    let lookups = metric_sum(&server, "si_session_lookups_total", "store=\"redis\"").await;
    let (fallbacks, commands) = (
        metric_sum(&server, "si_fallbacks_total", "").await,
        promoted_commands().await,
    );
    runs.push(queue_run(&browser, &server, project, &csrf).await);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert!(
        promoted_commands().await > commands,
        "the promoted node serves the server"
    );
    assert!(
        metric_sum(&server, "si_session_lookups_total", "store=\"redis\"").await > lookups,
        "sessions are read from redis again"
    );
    assert_eq!(
        metric_sum(&server, "si_fallbacks_total", "").await,
        fallbacks,
        "no piece falls back once redis is back"
    );

    for run in &runs {
        eventually(
            Duration::from_secs(20),
            "each queued run completes",
            async || {
                let r = get_json(
                    &browser,
                    &server,
                    &format!("/projects/{project}/ai-analysis/runs/{run}"),
                )
                .await;
                let body: Value = r.json().await.unwrap_or_default();
                body["data"]["status"] == "completed"
            },
        )
        .await;
    }
    stop.store(true, Ordering::Relaxed);
    pages.await.expect("no client saw an unexpected answer");
    let acked = load.stop().await;
    let status = tokio::task::spawn_blocking(move || server.terminate())
        .await
        .unwrap();
    assert!(status.success(), "clean exit: {status:?}");

    assert_eq!(
        counts.server_errors.load(Ordering::Relaxed),
        0,
        "no 5xx during the failover"
    );
    assert_eq!(
        counts.signed_out.load(Ordering::Relaxed),
        0,
        "nobody was signed out"
    );
    assert!(counts.ok.load(Ordering::Relaxed) > 20);
    assert_eq!(
        stored_events(dir.path(), project).await,
        acked,
        "every acknowledged event is stored"
    );
    let jobs = crate::backend::stores_at(dir.path()).await.jobs;
    for (i, run) in runs.iter().enumerate() {
        let job = jobs.job(*run).await.unwrap().expect("the run's job");
        assert_eq!(job.state, JobState::Completed);
        assert_eq!(job.attempts, 1, "run {i} ran once");
    }
    let last = jobs.job(runs[2]).await.unwrap().unwrap();
    assert_eq!(
        last.dispatch,
        JobDispatch::Redis,
        "a job queued after the failover goes through redis"
    );
    Figures {
        promoted_after,
        recovered_after,
        fallbacks,
        pages: counts.ok.load(Ordering::Relaxed),
        events: acked,
    }
}

/// Whether a Redis server's role is primary.
async fn is_primary(server: &RedisServer) -> bool {
    server.cli("ROLE\n").await.starts_with("master")
}

/// `total_commands_processed` of a Redis server.
async fn commands_processed(server: &RedisServer) -> u64 {
    server
        .cli("INFO stats\n")
        .await
        .lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes a marker on the primary and waits (`WAIT`) until the replica has it: replication is
/// one ordered stream, so everything written before (the session, the queue's groups) is on the
/// replica too. Writes after this point may be lost with the primary, as Redis replication is
/// asynchronous; sessions survive that (the durable store is behind Redis), and so do jobs (the
/// store sweep runs what Redis lost).
async fn replicate_then_kill(primary: &mut RedisServer) {
    let out = primary.cli("SET si:test:replicated 1\nWAIT 1 5000\n").await;
    assert_eq!(
        out.lines().nth(1).map(str::trim),
        Some("1"),
        "the replica acknowledged: {out}"
    );
    primary.kill();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sentinel_failover_under_traffic_loses_no_event_session_or_job() {
    let mut setup = SentinelSetup::start().await;
    let url = setup.url();
    let replica = &setup.replica;
    let sentinel = &setup.sentinels[0];
    let primary = &mut setup.primary;
    let figures = failover_under_traffic(
        &url,
        None,
        async || replicate_then_kill(primary).await,
        // What the client asks: the sentinels' answer, which follows the replica's promotion
        // once they have seen it (they poll its INFO every second during a failover).
        async || {
            sentinel
                .cli(&format!("SENTINEL GET-MASTER-ADDR-BY-NAME {SERVICE}\n"))
                .await
                .lines()
                .nth(1)
                .is_some_and(|port| port.trim() == replica.port.to_string())
        },
        async || commands_processed(replica).await,
    )
    .await;
    assert!(is_primary(replica).await, "the replica was promoted");
    figures.print("sentinel");
}

/// Three primaries with a replica each, on loopback, all started by the test.
struct ClusterSetup {
    nodes: Vec<RedisServer>,
}

impl ClusterSetup {
    async fn start() -> Self {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            // The bus port too (one spare port): by default it is the port + 10000, beyond
            // 65535 for a port from the upper part of the ephemeral range.
            nodes.push(
                RedisServer::start_ports(1, |_, spare| {
                    let mut args: Vec<String> = [
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                    ]
                    .map(str::to_string)
                    .to_vec();
                    args.extend(["--cluster-port".to_string(), spare[0].to_string()]);
                    args.extend(AUTH.map(str::to_string));
                    args
                })
                .await,
            );
            nodes.last_mut().unwrap().password = Some(PASSWORD.into());
        }
        let mut create = tokio::process::Command::new("redis-cli");
        create
            .args(["--no-auth-warning", "-a", PASSWORD])
            .arg("--cluster")
            .arg("create");
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let out = create
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .expect("redis-cli --cluster create runs");
        assert!(
            out.status.success(),
            "cluster created: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let setup = Self { nodes };
        eventually(
            Duration::from_secs(20),
            "every node sees the cluster ok and every replica is in sync",
            async || {
                for node in &setup.nodes {
                    if !node
                        .cli("CLUSTER INFO\n")
                        .await
                        .contains("cluster_state:ok")
                    {
                        return false;
                    }
                    let replication = node.cli("INFO replication\n").await;
                    if replication.contains("role:slave")
                        && !replication.contains("master_link_status:up")
                    {
                        return false;
                    }
                }
                true
            },
        )
        .await;
        setup
    }

    /// `REDIS_URL`: one node as the host, two more as seeds (the password is `REDIS_PASSWORD`).
    fn url(&self) -> String {
        format!(
            "redis-cluster://127.0.0.1:{}?node=127.0.0.1:{}&node=127.0.0.1:{}",
            self.nodes[0].port, self.nodes[1].port, self.nodes[2].port
        )
    }

    /// (index of the primary serving `key`, index of its replica), from `CLUSTER NODES`.
    async fn primary_and_replica_of(&self, key: &str) -> (usize, usize) {
        let slot: u16 = self.nodes[0]
            .cli(&format!("CLUSTER KEYSLOT {key}\n"))
            .await
            .trim()
            .parse()
            .unwrap();
        let table = self.nodes[0].cli("CLUSTER NODES\n").await;
        let index_of = |addr: &str| {
            let port: u16 = addr
                .split('@')
                .next()
                .and_then(|a| a.rsplit(':').next())
                .and_then(|p| p.parse().ok())
                .unwrap();
            self.nodes.iter().position(|n| n.port == port).unwrap()
        };
        let rows: Vec<Vec<&str>> = table
            .lines()
            .map(|l| l.split_whitespace().collect())
            .collect();
        let primary = rows
            .iter()
            .find(|r| {
                r.len() > 8
                    && r[2].contains("master")
                    && r[8..].iter().any(|range| {
                        let (a, b) = range.split_once('-').unwrap_or((range, range));
                        matches!((a.parse::<u16>(), b.parse::<u16>()), (Ok(a), Ok(b)) if a <= slot && slot <= b)
                    })
            })
            .expect("a primary serves the slot");
        let replica = rows
            .iter()
            .find(|r| r.len() > 3 && r[2].contains("slave") && r[3] == primary[0])
            .expect("the primary has a replica");
        (index_of(primary[1]), index_of(replica[1]))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn cluster_failover_under_traffic_loses_no_event_session_or_job() {
    let mut setup = ClusterSetup::start().await;
    let url = setup.url();
    // The primary holding the job queue's slot (`{jobs}`): its loss stops the queue until its
    // replica takes over.
    let (primary, replica) = setup
        .primary_and_replica_of(superinsights::runtime::jobs::redis::DELAYED_SET)
        .await;
    let (victim, promoted) = if primary < replica {
        let (left, right) = setup.nodes.split_at_mut(replica);
        (&mut left[primary], &right[0])
    } else {
        let (left, right) = setup.nodes.split_at_mut(primary);
        (&mut right[0], &left[replica])
    };
    let figures = failover_under_traffic(
        &url,
        Some(PASSWORD),
        async || {
            // The marker hashes to the victim's slot, so its WAIT covers what went before.
            let out = victim
                .cli("SET si:{jobs}:test-replicated 1\nWAIT 1 5000\n")
                .await;
            assert_eq!(out.lines().nth(1).map(str::trim), Some("1"), "{out}");
            victim.kill();
        },
        async || is_primary(promoted).await,
        async || commands_processed(promoted).await,
    )
    .await;
    figures.print("cluster");
}

/// `master_repl_offset` of a Redis server (on a replica: how far it has processed).
async fn replication_offset(server: &RedisServer) -> Option<u64> {
    server
        .cli("INFO replication\n")
        .await
        .lines()
        .find_map(|l| l.strip_prefix("master_repl_offset:"))
        .and_then(|n| n.trim().parse().ok())
}

/// Pauses writes on `primary` (clients' writes wait, then time out), waits until `replica` has
/// processed everything the primary has, then kills the primary. Redis replication is
/// asynchronous: a plain kill can lose the writes of the last moments, acknowledged batches
/// among them (the buffer's module docs say so); this kill loses none, so every acknowledged
/// event must be stored.
async fn kill_once_replicated(primary: &mut RedisServer, replica: &RedisServer) {
    assert!(
        primary
            .cli("CLIENT PAUSE 10000 WRITE\n")
            .await
            .contains("OK")
    );
    eventually(
        Duration::from_secs(5),
        "the replica has processed every write of the primary",
        async || {
            let at = replication_offset(primary).await;
            at.is_some() && replication_offset(replica).await == at
        },
    )
    .await;
    primary.kill();
}

/// Two instances with the Redis Streams ingest buffer on `redis_url`, clients on both; the
/// primary holding the stream is failed over mid-traffic (`kill_primary`). Every acknowledged
/// event is stored exactly once, the buffer is used again after the promotion, and the stream
/// ends empty. Returns (events acknowledged, batches through the stream after the failover).
async fn buffer_failover_under_traffic(
    redis_url: &str,
    redis_password: Option<&str>,
    kill_primary: impl AsyncFnOnce(),
    promoted: &RedisServer,
) -> (u64, f64) {
    let dir = tempfile::tempdir().unwrap();
    let (project, key) = create_admin(dir.path());
    let mut env = vec![
        ("REDIS_URL", redis_url),
        ("INGEST_BUFFER_REDIS", "true"),
        ("INGEST_BUFFER_CLAIM_IDLE_MS", "1000"),
        ("RATE_LIMIT_INGEST_IP", "off"),
        ("RATE_LIMIT_INGEST_PROJECT", "off"),
    ];
    if let Some(password) = redis_password {
        env.push(("REDIS_PASSWORD", password));
    }
    let (mut a, mut b) = tokio::join!(
        ServerProcess::start(dir.path(), &env),
        ServerProcess::start(dir.path(), &env),
    );
    let buffered = async |s: &ServerProcess| {
        metric_sum(s, "si_ingest_buffer_batches_total", "outcome=\"buffered\"").await
    };
    let load = Load::start(vec![a.url("/v1/events"), b.url("/v1/events")], key, 4);
    eventually(
        Duration::from_secs(20),
        "batches flow through the stream on both instances",
        async || load.acked() >= 500 && buffered(&a).await > 0.0 && buffered(&b).await > 0.0,
    )
    .await;

    kill_primary().await;
    let killed_at = load.acked();
    eventually(
        Duration::from_secs(20),
        "both instances are on redis again after the failover",
        async || on_redis(&a).await && on_redis(&b).await,
    )
    .await;
    let before = buffered(&a).await + buffered(&b).await;
    eventually(
        Duration::from_secs(20),
        "the buffer takes batches again, on the promoted node",
        async || {
            buffered(&a).await + buffered(&b).await > before + 20.0
                && load.acked() >= killed_at + 500
        },
    )
    .await;
    let after = buffered(&a).await + buffered(&b).await - before;
    let acked = load.stop().await;

    let stream = superinsights::ingest::buffer::STREAM;
    let mut stored = 0;
    eventually(
        Duration::from_secs(40),
        "stream and spool drained into the store",
        async || {
            stored = stored_events(dir.path(), project).await;
            let left = promoted.cli(&format!("XLEN {stream}\n")).await;
            stored >= acked && left.trim() == "0"
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        stored_events(dir.path(), project).await,
        acked,
        "stored = acknowledged: nothing lost, nothing twice"
    );
    let pending = promoted
        .cli(&format!(
            "XPENDING {stream} {}\n",
            superinsights::ingest::buffer::GROUP
        ))
        .await;
    assert_eq!(
        pending.lines().next().map(str::trim),
        Some("0"),
        "{pending}"
    );
    for server in [&mut a, &mut b] {
        assert!(server.terminate().success());
    }
    (acked, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ingest_buffer_survives_a_sentinel_failover_exactly_once() {
    let mut setup = SentinelSetup::start().await;
    let url = setup.url();
    let replica = &setup.replica;
    let primary = &mut setup.primary;
    let (acked, after) = buffer_failover_under_traffic(
        &url,
        None,
        async || kill_once_replicated(primary, replica).await,
        replica,
    )
    .await;
    assert!(is_primary(replica).await, "the replica was promoted");
    eprintln!(
        "sentinel buffer failover: {acked} events acknowledged and stored once; {after} batches through the stream after it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_ingest_buffer_survives_a_cluster_failover_exactly_once() {
    let mut setup = ClusterSetup::start().await;
    let url = setup.url();
    // The primary serving the buffer's slot (`{ingest}`).
    let (primary, replica) = setup
        .primary_and_replica_of(superinsights::ingest::buffer::STREAM)
        .await;
    let (victim, promoted) = if primary < replica {
        let (left, right) = setup.nodes.split_at_mut(replica);
        (&mut left[primary], &right[0])
    } else {
        let (left, right) = setup.nodes.split_at_mut(primary);
        (&mut right[0], &left[replica])
    };
    let (acked, after) = buffer_failover_under_traffic(
        &url,
        Some(PASSWORD),
        async || kill_once_replicated(victim, promoted).await,
        promoted,
    )
    .await;
    assert!(is_primary(promoted).await, "the replica was promoted");
    eprintln!(
        "cluster buffer failover: {acked} events acknowledged and stored once; {after} batches through the stream after it"
    );
}
