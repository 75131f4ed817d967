//! `si-load redis-compare`: each Redis piece off and on in one run, through the real server
//! binary over loopback HTTP, then the cost of a Redis outage. It starts a private
//! `redis-server` on a free loopback port, runs the same measurements against a server without
//! Redis and one with `SESSION_STORE_REDIS`, `CACHE_REDIS`, `RATE_LIMIT_REDIS` and
//! `JOB_QUEUE_REDIS` on, then kills Redis (SIGKILL) under traffic, restarts it on the same port
//! and times the recovery the server reports on `/metrics`. Prints Markdown. Bounded: every
//! count and duration has a cap, every child process is killed when the run ends.

use crate::{
    args::{Target, parse_duration},
    client::Conn,
    load::{self, LoadSpec},
    payload::{Bodies, Channel, now_ms},
    report::{ms, thousands},
    suite::{free_port, now_utc, start_server, terminate},
};
use bytes::Bytes;
use clap::Args;
use http_body_util::Full;
use hyper::{Method, Request, header};
use std::{
    collections::BTreeMap,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};
use tokio::{
    process::{Child, Command},
    time::Instant,
};

/// The benchmark account every si-load mode that signs in creates.
pub(crate) const EMAIL: &str = "bench@example.com";
pub(crate) const PASSWORD: &str = "si-load-benchmark-password";
/// A rate limit no benchmark reaches.
pub(crate) const HUGE: &str = "1000000000/60s";
/// Bound on each setup command of this mode.
const CLI_TIMEOUT: Duration = Duration::from_secs(30);
const TIMEOUT: Duration = Duration::from_secs(10);
/// A job not started or finished by then counts as lost for the measurement.
const JOB_DEADLINE: Duration = Duration::from_secs(20);
/// Longest wait for the server to report Redis back after the restart.
const RECOVERY_DEADLINE: Duration = Duration::from_secs(60);

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The server binary (started twice: Redis off, Redis on).
    #[arg(long, default_value = "target/release/superinsights")]
    pub binary: PathBuf,
    /// The `redis-server` executable to start privately (persistence off, loopback only).
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
    /// Sequential signed-in requests per session measurement (after 20 unmeasured).
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u64).range(10..=5_000))]
    pub requests: u64,
    /// Projects whose first dashboard view is measured uncached (each then 10 cached views).
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub projects: u64,
    /// AI-analysis jobs enqueued one after another (offline digest: no model is called).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=100))]
    pub jobs: u64,
    /// Measured length of each ingest load phase.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub seconds: Duration,
    /// Open-loop rate of the single-item ingest phase (req/s).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long Redis stays down in the outage phase.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub outage: Duration,
    /// Traffic before the kill and after the recovery, in the outage phase.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub steady: Duration,
    /// Also write the Markdown report to this file.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl CompareArgs {
    fn validate(&self) -> Result<(), String> {
        let cap = Duration::from_secs(60);
        for (name, d) in [
            ("--seconds", self.seconds),
            ("--outage", self.outage),
            ("--steady", self.steady),
        ] {
            if d.is_zero() || d > cap {
                return Err(format!("{name} must be more than 0 and at most 60s"));
            }
        }
        if !(self.rate.is_finite() && self.rate > 0.0 && self.rate <= 20_000.0) {
            return Err("--rate must be more than 0 and at most 20000".into());
        }
        if !self.binary.is_file() {
            return Err(format!(
                "{}: no such server binary (cargo build --release --bin superinsights)",
                self.binary.display()
            ));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// The private Redis: killed and restarted on the same port.

struct Redis {
    binary: String,
    port: u16,
    child: Option<Child>,
}

impl Redis {
    async fn start(binary: &str) -> Result<Self, String> {
        let mut redis = Self {
            binary: binary.to_string(),
            port: free_port()?,
            child: None,
        };
        redis.restart().await?;
        Ok(redis)
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn restart(&mut self) -> Result<(), String> {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.binary))?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err("redis-server did not start within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// SIGKILL: no shutdown, no goodbye to clients, as when a host dies.
    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// One server process with its own DATA_DIR, projects and a signed-in session.

pub(crate) struct Project {
    pub(crate) id: String,
    pub(crate) key: String,
}

pub(crate) struct Server {
    child: Child,
    pid: u32,
    target: Target,
    dir: PathBuf,
    projects: Vec<Project>,
    cookie: String,
    csrf: String,
}

fn base_env(dir: &Path) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = [
        ("DATA_DIR", dir.display().to_string()),
        ("ENV_FILE", "/nonexistent".into()),
        ("RUST_LOG", "warn".into()),
        ("NO_COLOR", "1".into()),
        ("RATE_LIMIT_INGEST_IP", HUGE.into()),
        ("RATE_LIMIT_INGEST_PROJECT", HUGE.into()),
        ("RATE_LIMIT_AI", HUGE.into()),
        ("RATE_LIMIT_AUTH_IP", HUGE.into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    if let Ok(path) = std::env::var("PATH") {
        env.push(("PATH".into(), path));
    }
    env
}

/// The Redis settings of the "on" server: every piece that has a Redis backend.
pub(crate) fn redis_env(url: &str) -> Vec<(String, String)> {
    [
        ("REDIS_URL", url),
        ("SESSION_STORE_REDIS", "true"),
        ("CACHE_REDIS", "true"),
        ("RATE_LIMIT_REDIS", "true"),
        ("JOB_QUEUE_REDIS", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

pub(crate) async fn cli(
    binary: &Path,
    env: &[(String, String)],
    args: &[&str],
    timeout: Duration,
) -> Result<String, String> {
    let out = tokio::time::timeout(
        timeout,
        Command::new(binary)
            .args(args)
            .env_clear()
            .envs(env.iter().cloned())
            .env("SUPERINSIGHTS_ADMIN_PASSWORD", PASSWORD)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("superinsights {} did not finish in {timeout:?}", args[0]))?
    .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "superinsights {} failed ({}): {stdout}{}",
            args[0],
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}

/// `project:  name (id)` and `public key: pk_…` from create-admin / create-project output.
pub(crate) fn parse_project(out: &str) -> Result<Project, String> {
    let id = out
        .lines()
        .filter_map(|l| l.strip_prefix("project:"))
        .find_map(|l| {
            let l = l.trim().strip_suffix(')')?;
            Some(l[l.rfind('(')? + 1..].to_string())
        });
    let key = out
        .lines()
        .filter_map(|l| l.strip_prefix("public key:"))
        .map(|k| k.trim().to_string())
        .find(|k| k.starts_with("pk_"));
    match (id, key) {
        (Some(id), Some(key)) => Ok(Project { id, key }),
        _ => Err(format!("no project id and key in:\n{out}")),
    }
}

impl Server {
    pub(crate) async fn start(
        a: &CompareArgs,
        label: &str,
        extra: &[(String, String)],
    ) -> Result<Self, String> {
        let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        let dir = std::env::temp_dir().join(format!(
            "si-load-redis-{label}-{}-{stamp:x}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mut env = base_env(&dir);
        env.extend(extra.iter().cloned());
        let first = cli(
            &a.binary,
            &env,
            &["create-admin", "--email", EMAIL, "--project", "p0"],
            CLI_TIMEOUT,
        )
        .await?;
        let mut projects = vec![parse_project(&first)?];
        for i in 1..a.projects {
            let name = format!("p{i}");
            let out = cli(
                &a.binary,
                &env,
                &["create-project", "--owner", EMAIL, "--name", &name],
                CLI_TIMEOUT,
            )
            .await?;
            projects.push(parse_project(&out)?);
        }
        let (child, pid, target) = start_server(&a.binary, env, &dir.join("server.log")).await?;
        let mut server = Self {
            child,
            pid,
            target,
            dir,
            projects,
            cookie: String::new(),
            csrf: String::new(),
        };
        server.sign_in().await?;
        // Some data in every project, so a dashboard has something to compute.
        let mut conn = server.conn().await?;
        let bodies = Bodies::generate(Channel::Events, 20, Duration::from_secs(5), 7);
        for (i, p) in server.projects.iter().enumerate() {
            let (status, _) = conn
                .send(ingest_request(&server.target, &p.key, &bodies, i))
                .await?;
            if status != 201 {
                return Err(format!("seeding project {}: status {status}", p.id));
            }
        }
        Ok(server)
    }

    async fn conn(&self) -> Result<Conn, String> {
        Conn::open(self.target.addr).await
    }

    fn request(&self, method: Method, path: &str, body: Bytes) -> Request<Full<Bytes>> {
        let mut r = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.target.authority)
            .header(header::ACCEPT, "application/json");
        if !self.cookie.is_empty() {
            r = r.header(header::COOKIE, &self.cookie);
        }
        if !body.is_empty() {
            r = r
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-csrf-token", &self.csrf);
        }
        r.body(Full::new(body)).expect("valid request")
    }

    /// Signs in through the login form, like a browser.
    async fn sign_in(&mut self) -> Result<(), String> {
        (self.cookie, self.csrf) = sign_in(&self.target, EMAIL, PASSWORD).await?;
        Ok(())
    }

    /// Counters of `/metrics` whose name starts with `prefix`, by their full series text.
    async fn metrics(&self, prefix: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        let Ok(mut conn) = self.conn().await else {
            return out;
        };
        let r = Request::get("/metrics")
            .header(header::HOST, &self.target.authority)
            .body(Full::new(Bytes::new()))
            .expect("valid request");
        if let Ok((200, body)) = conn.send(r).await {
            for line in String::from_utf8_lossy(&body).lines() {
                if line.starts_with(prefix)
                    && let Some((series, value)) = line.rsplit_once(' ')
                    && let Ok(v) = value.parse::<f64>()
                {
                    out.insert(series.to_string(), v);
                }
            }
        }
        out
    }

    pub(crate) async fn stop(mut self) {
        let _ = terminate(self.pid).await;
        if tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The login form, its POST, then a page for the session's CSRF token, as a browser does:
/// `(sid cookie, CSRF token)`.
pub(crate) async fn sign_in(
    target: &Target,
    email: &str,
    password: &str,
) -> Result<(String, String), String> {
    let mut conn = Conn::open(target.addr).await?;
    let get = |path: &str, cookie: &str| {
        let mut r = Request::get(path).header(header::HOST, &target.authority);
        if !cookie.is_empty() {
            r = r.header(header::COOKIE, cookie);
        }
        r.body(Full::new(Bytes::new())).expect("valid request")
    };
    let (_, headers, body) = conn.send_full(get("/auth/login", "")).await?;
    let mut cookie = sid_cookie(&headers).ok_or("no sid cookie from GET /auth/login")?;
    let csrf = hidden_csrf(&body).ok_or("no _csrf field in the login form")?;
    let form = format!(
        "_csrf={}&next=%2Fprojects&email={}&password={}",
        form_encode(&csrf),
        form_encode(email),
        form_encode(password)
    );
    let post = Request::post("/auth/login")
        .header(header::HOST, &target.authority)
        .header(header::COOKIE, &cookie)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from(form)))
        .expect("valid request");
    let (status, headers, _) = conn.send_full(post).await?;
    if !(300..400).contains(&status) {
        return Err(format!("login answered {status}, expected a redirect"));
    }
    if let Some(c) = sid_cookie(&headers) {
        cookie = c;
    }
    let (status, _, body) = conn.send_full(get("/projects", &cookie)).await?;
    let csrf = hidden_csrf(&body)
        .ok_or_else(|| format!("no CSRF token on /projects (status {status})"))?;
    Ok((cookie, csrf))
}

fn ingest_request(target: &Target, key: &str, bodies: &Bodies, i: usize) -> Request<Full<Bytes>> {
    Request::post("/v1/events")
        .header(header::HOST, &target.authority)
        .header(header::AUTHORIZATION, format!("Bearer {key}"))
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::USER_AGENT, crate::payload::USER_AGENTS[0])
        .body(Full::new(bodies.body(i, now_ms())))
        .expect("valid request")
}

pub(crate) fn sid_cookie(headers: &hyper::HeaderMap) -> Option<String> {
    headers
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|c| c.starts_with("sid="))
        .map(str::to_string)
}

pub(crate) fn hidden_csrf(html: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(html);
    let at = text.find("name=\"_csrf\" value=\"")? + "name=\"_csrf\" value=\"".len();
    let end = text[at..].find('"')?;
    Some(text[at..at + end].to_string())
}

pub(crate) fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The string value of `"field":"…"` in a small JSON body.
fn json_str(body: &[u8], field: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    v.get(field)?.as_str().map(str::to_string)
}

// ---------------------------------------------------------------------------------------------
// Figures.

#[derive(Clone, Debug, Default)]
pub(crate) struct Stat {
    pub(crate) n: usize,
    pub(crate) errors: usize,
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl Stat {
    fn of(mut samples: Vec<Duration>, errors: usize) -> Self {
        samples.sort_unstable();
        let n = samples.len();
        if n == 0 {
            return Self {
                errors,
                ..Self::default()
            };
        }
        let at = |q: f64| samples[((n as f64 * q).ceil() as usize).clamp(1, n) - 1];
        Self {
            n,
            errors,
            p50: at(0.5),
            p99: at(0.99),
            max: samples[n - 1],
        }
    }

    pub(crate) fn p50_p99(&self) -> String {
        if self.n == 0 {
            return "–".into();
        }
        format!("{} / {}", ms(self.p50), ms(self.p99))
    }
}

fn ratio(on: Duration, off: Duration) -> String {
    if off.is_zero() {
        return "–".into();
    }
    format!("{:.2}×", on.as_secs_f64() / off.as_secs_f64())
}

/// What one server measured.
pub(crate) struct Figures {
    pub(crate) session: Stat,
    pub(crate) uncached: Stat,
    pub(crate) cached: Stat,
    pub(crate) job_start: Stat,
    pub(crate) job_done: Stat,
    pub(crate) single: load::LoadResult,
    pub(crate) batch: load::LoadResult,
}

async fn timed(conn: &mut Conn, request: Request<Full<Bytes>>) -> (Duration, Option<u16>, Bytes) {
    let t = Instant::now();
    match tokio::time::timeout(TIMEOUT, conn.send(request)).await {
        Ok(Ok((status, body))) => (t.elapsed(), Some(status), body),
        _ => (t.elapsed(), None, Bytes::new()),
    }
}

pub(crate) async fn measure(a: &CompareArgs, s: &Server) -> Result<Figures, String> {
    let p0 = &s.projects[0].id;
    let mut conn = s.conn().await?;

    // Sessions: a signed-in JSON request that does little besides loading the session.
    let path = format!("/projects/{p0}/ai-analysis/runs?limit=1");
    let (mut samples, mut errors) = (Vec::new(), 0);
    for i in 0..a.requests + 20 {
        let (d, status, _) = timed(&mut conn, s.request(Method::GET, &path, Bytes::new())).await;
        if status != Some(200) {
            errors += 1;
            conn = s.conn().await?;
        } else if i >= 20 {
            samples.push(d);
        }
    }
    let session = Stat::of(samples, errors);
    eprintln!(
        "si-load redis-compare:   session request {}",
        session.p50_p99()
    );

    // Dashboard: the first 7-day view of each project misses the cache, the next ten hit it.
    let (mut first, mut again, mut errors) = (Vec::new(), Vec::new(), 0);
    for p in &s.projects {
        let path = format!("/projects/{}/dashboard/data?timeframe=7d", p.id);
        for i in 0..11 {
            let (d, status, _) =
                timed(&mut conn, s.request(Method::GET, &path, Bytes::new())).await;
            if status != Some(200) {
                errors += 1;
                conn = s.conn().await?;
            } else if i == 0 {
                first.push(d);
            } else {
                again.push(d);
            }
        }
    }
    let uncached = Stat::of(first, errors);
    let cached = Stat::of(again, 0);
    eprintln!(
        "si-load redis-compare:   dashboard uncached {}, cached {}",
        uncached.p50_p99(),
        cached.p50_p99()
    );

    // Job queue: enqueue an AI analysis, poll its run until it leaves `queued`, then until done.
    let (mut starts, mut dones, mut errors) = (Vec::new(), Vec::new(), 0);
    for _ in 0..a.jobs {
        match one_job(s, &mut conn).await {
            Ok((start, done)) => {
                starts.push(start);
                dones.push(done);
            }
            Err(e) => {
                errors += 1;
                eprintln!("si-load redis-compare:   job: {e}");
                conn = s.conn().await?;
            }
        }
    }
    let job_start = Stat::of(starts, errors);
    let job_done = Stat::of(dones, errors);
    eprintln!(
        "si-load redis-compare:   job enqueue → start {}",
        job_start.p50_p99()
    );

    // Ingest: single items on an open loop (two rate-limit checks each), then batches of 20.
    let spec = |batch: usize, rate: Option<f64>, concurrency: usize| LoadSpec {
        target: s.target.clone(),
        key: s.projects[0].key.clone(),
        channel: Channel::Events,
        batch,
        concurrency,
        warmup: Duration::from_millis(500),
        duration: a.seconds,
        rate,
        timestamp_spread: Duration::from_secs(5),
        timeout: TIMEOUT,
        max_requests: 5_000_000,
        get: None,
    };
    let single = load::run(&spec(1, Some(a.rate), 8)).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let batch = load::run(&spec(20, None, 16)).await?;
    eprintln!(
        "si-load redis-compare:   ingest single p50 {}, batches {} events/s",
        ms(single.latency.p50),
        thousands(batch.items_per_sec() as u64)
    );
    Ok(Figures {
        session,
        uncached,
        cached,
        job_start,
        job_done,
        single,
        batch,
    })
}

/// Enqueue one run; `(enqueue → seen running, enqueue → seen finished)`, polled every 2 ms.
async fn one_job(s: &Server, conn: &mut Conn) -> Result<(Duration, Duration), String> {
    let p0 = &s.projects[0].id;
    let t0 = Instant::now();
    let body = Bytes::from_static(br#"{"timeframe":"24h"}"#);
    let (_, status, answer) = timed(
        conn,
        s.request(
            Method::POST,
            &format!("/projects/{p0}/ai-analysis/run"),
            body,
        ),
    )
    .await;
    if status != Some(202) {
        return Err(format!(
            "enqueue answered {status:?}: {}",
            String::from_utf8_lossy(&answer)
        ));
    }
    let run = json_str(&answer, "runId").ok_or("no runId in the answer")?;
    let path = format!("/projects/{p0}/ai-analysis/runs/{run}");
    let mut started = None;
    while t0.elapsed() < JOB_DEADLINE {
        let (_, status, body) = timed(conn, s.request(Method::GET, &path, Bytes::new())).await;
        if status != Some(200) {
            return Err(format!("run status answered {status:?}"));
        }
        let v: serde_json::Value = serde_json::from_slice(&body).map_err(|e| e.to_string())?;
        let state = v
            .get("status")
            .or_else(|| v.get("data").and_then(|r| r.get("status")))
            .and_then(|s| s.as_str())
            .unwrap_or("")
            .to_string();
        if state != "queued" && started.is_none() {
            started = Some(t0.elapsed());
        }
        if state == "completed" || state == "failed" {
            let done = t0.elapsed();
            return Ok((started.unwrap_or(done), done));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    Err(format!("run {run} not finished within {JOB_DEADLINE:?}"))
}

// ---------------------------------------------------------------------------------------------
// The outage: traffic on the Redis server while Redis is killed and restarted.

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Session,
    Dashboard,
    Ingest,
    Job,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Session, Kind::Dashboard, Kind::Ingest, Kind::Job];

    fn label(self) -> &'static str {
        match self {
            Kind::Session => "signed-in request (sessions)",
            Kind::Dashboard => "dashboard 7d (cache)",
            Kind::Ingest => "ingest, single item (rate limits)",
            Kind::Job => "job enqueue → start (job queue)",
        }
    }

    /// Pause between two requests of one probe.
    fn pause(self) -> Duration {
        match self {
            Kind::Ingest => Duration::from_millis(5),
            Kind::Job => Duration::from_millis(100),
            _ => Duration::from_millis(20),
        }
    }
}

/// One probe request: when it was sent (since the phase began), how long it took, whether it
/// succeeded.
struct Sample {
    at: Duration,
    took: Duration,
    ok: bool,
}

async fn probe(kind: Kind, s: Arc<Server>, t0: Instant, stop: Arc<AtomicBool>) -> Vec<Sample> {
    let mut out = Vec::new();
    let mut conn = s.conn().await.ok();
    let bodies = Bodies::generate(Channel::Events, 1, Duration::ZERO, 11);
    let p0 = s.projects[0].id.clone();
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        let Some(c) = conn.as_mut() else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            conn = s.conn().await.ok();
            continue;
        };
        let at = t0.elapsed();
        let (took, ok) = match kind {
            Kind::Job => match one_job(&s, c).await {
                Ok((start, _)) => (start, true),
                Err(_) => (t0.elapsed() - at, false),
            },
            _ => {
                let request = match kind {
                    Kind::Session => s.request(
                        Method::GET,
                        &format!("/projects/{p0}/ai-analysis/runs?limit=1"),
                        Bytes::new(),
                    ),
                    Kind::Dashboard => s.request(
                        Method::GET,
                        &format!("/projects/{p0}/dashboard/data?timeframe=7d"),
                        Bytes::new(),
                    ),
                    _ => ingest_request(&s.target, &s.projects[0].key, &bodies, i),
                };
                let (took, status, _) = timed(c, request).await;
                let ok = matches!(status, Some(200..=299));
                (took, ok)
            }
        };
        if !ok {
            conn = s.conn().await.ok();
        }
        out.push(Sample { at, took, ok });
        i += 1;
        tokio::time::sleep(kind.pause()).await;
    }
    out
}

struct Outage {
    killed_at: Duration,
    restarted_at: Duration,
    /// Restart → `/metrics` says connected with the breaker closed; `None`: not within the deadline.
    recovered_after: Option<Duration>,
    ended_at: Duration,
    samples: BTreeMap<Kind, Vec<Sample>>,
    fallbacks: BTreeMap<String, f64>,
}

async fn outage(a: &CompareArgs, s: Arc<Server>, redis: &mut Redis) -> Result<Outage, String> {
    let before = s.metrics("si_fallbacks_total").await;
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let tasks: Vec<_> = Kind::ALL
        .into_iter()
        .map(|k| {
            let (s, stop) = (s.clone(), stop.clone());
            (k, tokio::spawn(probe(k, s, t0, stop)))
        })
        .collect();
    tokio::time::sleep(a.steady).await;
    let killed_at = t0.elapsed();
    redis.kill().await;
    eprintln!("si-load redis-compare:   redis killed");
    tokio::time::sleep(a.outage).await;
    redis.restart().await?;
    let restarted_at = t0.elapsed();
    eprintln!("si-load redis-compare:   redis restarted");
    let mut recovered_after = None;
    while t0.elapsed() - restarted_at < RECOVERY_DEADLINE {
        let m = s.metrics("si_redis_").await;
        if m.get("si_redis_connected") == Some(&1.0) && m.get("si_redis_breaker_open") == Some(&0.0)
        {
            recovered_after = Some(t0.elapsed() - restarted_at);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(a.steady).await;
    stop.store(true, Ordering::Relaxed);
    let ended_at = t0.elapsed();
    let mut samples = BTreeMap::new();
    for (k, t) in tasks {
        samples.insert(k, t.await.map_err(|e| e.to_string())?);
    }
    let after = s.metrics("si_fallbacks_total").await;
    let mut fallbacks = BTreeMap::new();
    for (series, v) in after {
        let piece = series
            .split("piece=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or("?")
            .to_string();
        let delta = v - before.get(&series).copied().unwrap_or(0.0);
        *fallbacks.entry(piece).or_insert(0.0) += delta;
    }
    Ok(Outage {
        killed_at,
        restarted_at,
        recovered_after,
        ended_at,
        samples,
        fallbacks,
    })
}

// ---------------------------------------------------------------------------------------------

pub async fn run(a: CompareArgs) -> Result<(), String> {
    a.validate()?;
    let started = Instant::now();
    let load_before = crate::probe::load_average();
    eprintln!("si-load redis-compare: server without Redis");
    let off_server = Server::start(&a, "off", &[]).await?;
    let off = measure(&a, &off_server).await;
    off_server.stop().await;
    let off = off?;

    let mut redis = Redis::start(&a.redis_server).await?;
    eprintln!(
        "si-load redis-compare: server with every Redis piece on ({})",
        redis.url()
    );
    let on_server = Server::start(&a, "on", &redis_env(&redis.url())).await?;
    let on = measure(&a, &on_server).await;
    let on_server = Arc::new(on_server);
    let outage = match on {
        Ok(_) => outage(&a, on_server.clone(), &mut redis).await,
        Err(_) => Err("skipped".into()),
    };
    if let Ok(server) = Arc::try_unwrap(on_server) {
        server.stop().await;
    }
    redis.kill().await;
    let (on, outage) = (on?, outage?);

    let markdown = report(&a, &off, &on, &outage, started.elapsed(), load_before);
    println!("{markdown}");
    if let Some(out) = &a.out {
        std::fs::write(out, &markdown).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(())
}

fn report(
    a: &CompareArgs,
    off: &Figures,
    on: &Figures,
    o: &Outage,
    took: Duration,
    load_before: Option<f64>,
) -> String {
    let mut s = String::new();
    let command: Vec<String> = std::iter::once("si-load".to_string())
        .chain(std::env::args().skip(1))
        .collect();
    s += &format!(
        "`{}` — {}, load average before {}, whole run {:.0} s\n\n",
        command.join(" "),
        now_utc(),
        load_before.map_or("?".into(), |l| format!("{l:.2}")),
        took.as_secs_f64()
    );
    s += "| piece | measurement | Redis off | Redis on | on ÷ off (p50) |\n|---|---|---:|---:|---:|\n";
    let row = |piece: &str, what: String, off: &Stat, on: &Stat| {
        format!(
            "| {piece} | {what} | {} | {} | {} |\n",
            off.p50_p99(),
            on.p50_p99(),
            ratio(on.p50, off.p50)
        )
    };
    s += &row(
        "sessions",
        format!(
            "signed-in JSON request (`GET …/ai-analysis/runs?limit=1`), {} sequential, p50 / p99",
            a.requests
        ),
        &off.session,
        &on.session,
    );
    s += &row(
        "dashboard cache",
        format!(
            "7-day dashboard JSON, uncached (first view of each of {} projects), p50 / p99",
            a.projects
        ),
        &off.uncached,
        &on.uncached,
    );
    s += &row(
        "dashboard cache",
        format!(
            "7-day dashboard JSON, cached (10 more views each, {}), p50 / p99",
            a.projects * 10
        ),
        &off.cached,
        &on.cached,
    );
    let lat = |r: &load::LoadResult| Stat {
        n: r.latency.count,
        errors: 0,
        p50: r.latency.p50,
        p99: r.latency.p99,
        max: r.latency.max,
    };
    s += &row(
        "rate limits",
        format!(
            "ingest, single items, {} req/s open loop (two limiter checks each), p50 / p99",
            a.rate
        ),
        &lat(&off.single),
        &lat(&on.single),
    );
    s += &row(
        "job queue",
        format!(
            "AI analysis (digest), enqueue → seen running, {} jobs, p50 / p99",
            a.jobs
        ),
        &off.job_start,
        &on.job_start,
    );
    s += &row(
        "job queue",
        "enqueue → seen finished, p50 / p99".into(),
        &off.job_done,
        &on.job_done,
    );
    let eps = |r: &load::LoadResult| r.items_per_sec();
    s += &format!(
        "| ingest | batches of 20, 16 connections, closed loop: events/s (p50) | {} ({}) | {} ({}) | {:.2}× throughput |\n",
        thousands(eps(&off.batch) as u64),
        ms(off.batch.latency.p50),
        thousands(eps(&on.batch) as u64),
        ms(on.batch.latency.p50),
        eps(&on.batch) / eps(&off.batch).max(1.0)
    );
    let errs = |f: &Figures| {
        f.session.errors
            + f.uncached.errors
            + f.job_start.errors
            + (f.single.measured.requests - f.single.measured.ok_2xx) as usize
            + (f.batch.measured.requests - f.batch.measured.ok_2xx) as usize
    };
    s += &format!(
        "\nFailed requests: {} with Redis off, {} with Redis on.\n\n",
        errs(off),
        errs(on)
    );

    s += &format!(
        "Outage (Redis on; redis-server SIGKILLed at {:.1} s, restarted at {:.1} s, run ended at {:.1} s). \
         Server reported Redis connected with the breaker closed {} after the restart.\n\n",
        o.killed_at.as_secs_f64(),
        o.restarted_at.as_secs_f64(),
        o.ended_at.as_secs_f64(),
        o.recovered_after
            .map_or("not within 60 s".into(), |d| format!("{} ", ms(d))
                .trim()
                .to_string())
    );
    s += "| traffic | window | requests | failed | p50 | p99 | max |\n|---|---|---:|---:|---:|---:|---:|\n";
    let recovered = o.restarted_at + o.recovered_after.unwrap_or(RECOVERY_DEADLINE);
    let windows = [
        ("before", Duration::ZERO, o.killed_at),
        ("Redis down", o.killed_at, o.restarted_at),
        ("restart → recovered", o.restarted_at, recovered),
        ("after", recovered, o.ended_at),
    ];
    for kind in Kind::ALL {
        let samples = o.samples.get(&kind).map(Vec::as_slice).unwrap_or(&[]);
        for (name, from, to) in windows {
            let inside: Vec<&Sample> = samples
                .iter()
                .filter(|x| x.at >= from && x.at < to)
                .collect();
            let failed = inside.iter().filter(|x| !x.ok).count();
            let st = Stat::of(
                inside.iter().filter(|x| x.ok).map(|x| x.took).collect(),
                failed,
            );
            if inside.is_empty() {
                s += &format!("| {} | {name} | 0 | 0 | – | – | – |\n", kind.label());
            } else {
                s += &format!(
                    "| {} | {name} | {} | {} | {} | {} | {} |\n",
                    kind.label(),
                    inside.len(),
                    failed,
                    if st.n > 0 { ms(st.p50) } else { "–".into() },
                    if st.n > 0 { ms(st.p99) } else { "–".into() },
                    if st.n > 0 { ms(st.max) } else { "–".into() },
                );
            }
        }
    }
    let fallbacks: Vec<String> = o
        .fallbacks
        .iter()
        .filter(|(_, v)| **v > 0.0)
        .map(|(k, v)| format!("{k} {}", thousands(*v as u64)))
        .collect();
    s += &format!(
        "\n`si_fallbacks_total` during the outage phase, by piece: {}.\n",
        if fallbacks.is_empty() {
            "none".to_string()
        } else {
            fallbacks.join(", ")
        }
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_output_gives_project_id_and_key() {
        let out = "admin:          a@b\nproject:        p0 (0123456789abcdef01234567)\npublic key:     pk_abc\nsecret key:     sk_x\n";
        let p = parse_project(out).unwrap();
        assert_eq!(p.id, "0123456789abcdef01234567");
        assert_eq!(p.key, "pk_abc");
        assert!(parse_project("nothing").is_err());
    }

    #[test]
    fn csrf_and_cookie_are_found() {
        let html = br#"<form><input type="hidden" name="_csrf" value="tok-123"></form>"#;
        assert_eq!(hidden_csrf(html).as_deref(), Some("tok-123"));
        let mut h = hyper::HeaderMap::new();
        h.append(header::SET_COOKIE, "other=1; Path=/".parse().unwrap());
        h.append(header::SET_COOKIE, "sid=abc; HttpOnly".parse().unwrap());
        assert_eq!(sid_cookie(&h).as_deref(), Some("sid=abc"));
        assert_eq!(form_encode("a@b c"), "a%40b%20c");
    }
}
