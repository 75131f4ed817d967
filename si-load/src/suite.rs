//! `si-load suite`: the reproducible end-to-end benchmark. Per run: a fresh `DATA_DIR`,
//! `superinsights create-admin` for a `pk_` key, the server on a free loopback port, idle RSS,
//! then four phases — batches of 20, single items, the same single-item load against
//! `si-load bare` (a child re-exec of this binary), and an open loop at a fixed rate — then
//! SIGTERM, wait for the drain, and count the stored rows (SQLite opened read-only, or the run's
//! own MongoDB database with `--mongodb-uri`) against what the server acknowledged. Every child process is killed if the suite stops early.

use crate::{
    args::{SuiteArgs, Target},
    client::get_status,
    load::{self, LoadSpec},
    payload::Channel,
    probe::{Machine, clock_ticks, cpu_time, load_average, memory_kib},
    report::{self, Phase, SuiteMeta, SuiteRun},
};
use std::{
    net::{Ipv4Addr, SocketAddr},
    path::{Path, PathBuf},
    process::Stdio,
    time::Duration,
};
use tokio::{
    process::{Child, Command},
    time::Instant,
};

const STARTUP_DEADLINE: Duration = Duration::from_secs(30);
const SHUTDOWN_DEADLINE: Duration = Duration::from_secs(30);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause between phases so the writer's queue is empty before the next phase starts.
const SETTLE: Duration = Duration::from_millis(500);
const ADMIN_PASSWORD: &str = "si-load-benchmark-password";
const ADMIN_EMAIL: &str = "bench@example.com";
/// `--seed-events` of 20M takes minutes (a cold rollup build included).
const SEED_DEADLINE: Duration = Duration::from_secs(1800);

pub async fn run(a: SuiteArgs) -> Result<(), String> {
    if !a.binary.is_file() {
        return Err(format!(
            "{}: no such server binary (build it with `cargo build --release --bins`)",
            a.binary.display()
        ));
    }
    let data_parent = a.data_parent.clone().unwrap_or_else(std::env::temp_dir);
    let ticks = clock_ticks();
    let meta = SuiteMeta {
        date: now_utc(),
        machine: Machine::probe(),
        command: std::iter::once("si-load".to_string())
            .chain(std::env::args().skip(1))
            .collect::<Vec<_>>()
            .join(" "),
        binary: a.binary.display().to_string(),
        data_parent: data_parent.display().to_string(),
        seconds: a.seconds,
        warmup: a.warmup,
        concurrency: a.concurrency,
        batch: a.batch as usize,
        rate: a.rate,
        timestamp_spread: a.timestamp_spread,
        seed_events: a.seed_events,
        settings: settings(&a)
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect(),
    };
    let mut runs = Vec::new();
    for i in 1..=a.runs {
        eprintln!("si-load suite: run {i} of {}", a.runs);
        runs.push(run_once(&a, &data_parent, i, ticks).await?);
    }
    let markdown = report::suite_markdown(&meta, &runs);
    println!("{markdown}");
    if let Some(out) = &a.out {
        std::fs::write(out, &markdown).map_err(|e| format!("{}: {e}", out.display()))?;
        eprintln!("si-load suite: report written to {}", out.display());
    }
    match runs.iter().map(SuiteRun::lost).max().flatten() {
        Some(l) if l > 0 => Err(format!("{l} acknowledged items were not stored")),
        None => Err("stored rows could not be counted".into()),
        _ => Ok(()),
    }
}

pub(crate) fn now_utc() -> String {
    let f = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::now_utc()
        .format(&f)
        .unwrap_or_default()
}

async fn run_once(
    a: &SuiteArgs,
    data_parent: &Path,
    index: u32,
    ticks: u64,
) -> Result<SuiteRun, String> {
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let dir = data_parent.join(format!("si-load-{}-{index}-{stamp:x}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let result = run_in(a, &dir, ticks).await;
    if a.keep || result.is_err() {
        eprintln!(
            "si-load suite: data and server log kept in {}",
            dir.display()
        );
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
    if let Some(uri) = &a.mongodb_uri {
        let db = database_of(&dir);
        if a.keep {
            eprintln!("si-load suite: MongoDB database {db} kept");
        } else {
            crate::mongo::drop_database(uri, &db).await;
        }
    }
    result
}

/// The MongoDB database of the run whose `DATA_DIR` is `dir` (with `--mongodb-uri`).
fn database_of(dir: &Path) -> String {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    name.replace(|c: char| !c.is_ascii_alphanumeric(), "_")
}

/// Server settings the suite applies unless `--server-env` overrides them: the ingest rate
/// limits far above any load this machine can make, so that the limiter runs on every request
/// (its cost is part of the figures) but never answers 429.
pub const DEFAULT_SERVER_ENV: &[(&str, &str)] = &[
    ("RATE_LIMIT_INGEST_IP", "1000000000/60s"),
    ("RATE_LIMIT_INGEST_PROJECT", "1000000000/60s"),
];

/// The environment of every server process: nothing inherited but `PATH`, so a developer's
/// `REDIS_URL`, `MONGODB_URI` or `.env` cannot change what is measured.
fn server_env(a: &SuiteArgs, dir: &Path) -> Vec<(String, String)> {
    let mut env = vec![
        ("DATA_DIR".to_string(), dir.display().to_string()),
        ("ENV_FILE".into(), "/nonexistent".into()),
        ("RUST_LOG".into(), "warn".into()),
        ("NO_COLOR".into(), "1".into()),
    ];
    if let Ok(path) = std::env::var("PATH") {
        env.push(("PATH".into(), path));
    }
    if a.mongodb_uri.is_some() {
        env.push(("MONGODB_DB".into(), database_of(dir)));
    }
    env.extend(settings(a));
    env
}

/// The server settings of this suite: the defaults, then `--server-env` (later wins).
pub fn settings(a: &SuiteArgs) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = DEFAULT_SERVER_ENV
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    if let Some(uri) = &a.mongodb_uri {
        out.push(("MONGODB_URI".into(), uri.clone()));
    }
    for (k, v) in &a.server_env {
        out.retain(|(name, _)| name != k);
        out.push((k.clone(), v.clone()));
    }
    out
}

async fn run_in(a: &SuiteArgs, dir: &Path, ticks: u64) -> Result<SuiteRun, String> {
    let load_before = load_average();
    let key = create_admin(a, dir).await?;
    let seeded = seed(a, dir).await?;
    let log_path = dir.join("server.log");
    let (mut server, pid, target) = start_server(&a.binary, server_env(a, dir), &log_path).await?;
    eprintln!(
        "si-load suite:   server pid {pid} on {}; idle for {:?}",
        target.url(),
        a.idle
    );
    tokio::time::sleep(a.idle).await;
    let idle = memory_kib(pid);

    let spec = |batch: usize, rate: Option<f64>, target: &Target| LoadSpec {
        target: target.clone(),
        key: key.clone(),
        channel: Channel::Events,
        batch,
        concurrency: a.concurrency,
        warmup: a.warmup,
        duration: Duration::from_secs(a.seconds),
        rate,
        timestamp_spread: a.timestamp_spread,
        timeout: REQUEST_TIMEOUT,
        max_requests: 20_000_000,
        get: None,
    };
    let batch = measure_phase(
        format!("server: batches of {}, c={}", a.batch, a.concurrency),
        spec(a.batch as usize, None, &target),
        Some(pid),
        ticks,
    )
    .await?;
    tokio::time::sleep(SETTLE).await;
    let single = measure_phase(
        format!("server: single items, c={}", a.concurrency),
        spec(1, None, &target),
        Some(pid),
        ticks,
    )
    .await?;
    tokio::time::sleep(SETTLE).await;
    let bare = run_bare(a, ticks, |t| spec(1, None, t)).await?;
    tokio::time::sleep(SETTLE).await;
    let open = measure_phase(
        format!("server: single items, {} req/s open loop", a.rate),
        spec(1, Some(a.rate), &target),
        Some(pid),
        ticks,
    )
    .await?;
    let after = memory_kib(pid);
    let acked = [&batch, &single, &open]
        .iter()
        .map(|p| p.result.total.items_acked())
        .sum();

    // SIGTERM, then the drain: everything acknowledged must be in the file once it exits.
    let stopping = Instant::now();
    terminate(pid).await?;
    let exit = match tokio::time::timeout(SHUTDOWN_DEADLINE, server.wait()).await {
        Ok(Ok(status)) => status.to_string(),
        Ok(Err(e)) => format!("wait failed: {e}"),
        Err(_) => {
            let _ = server.start_kill();
            format!("still running {SHUTDOWN_DEADLINE:?} after SIGTERM (killed)")
        }
    };
    let shutdown = stopping.elapsed();
    let counted = count_stored(a, dir).await.and_then(|n| {
        n.checked_sub(seeded)
            .ok_or_else(|| format!("{n} documents stored, fewer than the {seeded} seeded"))
    });
    let (stored, stored_error) = match counted {
        Ok(n) => (Some(n), None),
        Err(e) => (None, Some(e)),
    };
    let spool_bytes = std::fs::metadata(dir.join("ingest-spool.ndjson")).map_or(0, |m| m.len());
    let (log_warnings, log_errors, log_sample) = scan_log(&log_path);
    let run = SuiteRun {
        batch,
        single,
        bare,
        open,
        idle_rss_kib: idle.map(|m| m.0),
        after_rss_kib: after.map(|m| m.0),
        peak_rss_kib: after.map(|m| m.1),
        acked,
        stored,
        stored_error,
        spool_bytes,
        exit,
        shutdown,
        log_warnings,
        log_errors,
        log_sample,
        load_before,
    };
    eprintln!(
        "si-load suite:   acknowledged {}, stored {:?}, exit {} after {:?}",
        run.acked, run.stored, run.exit, run.shutdown
    );
    Ok(run)
}

/// Runs one load phase and records the CPU both sides used meanwhile.
pub async fn measure_phase(
    label: String,
    spec: LoadSpec,
    server_pid: Option<u32>,
    ticks: u64,
) -> Result<Phase, String> {
    eprintln!("si-load: {label}: {}", spec.describe());
    let started = Instant::now();
    let server_before = server_pid.and_then(|p| cpu_time(p, ticks));
    let client_before = cpu_time(0, ticks);
    let result = load::run(&spec).await?;
    let wall = started.elapsed().as_secs_f64();
    let server_after = server_pid.and_then(|p| cpu_time(p, ticks));
    let client_after = cpu_time(0, ticks);
    let share = |before: Option<Duration>, after: Option<Duration>| {
        Some(after?.saturating_sub(before?).as_secs_f64() / wall)
    };
    eprintln!(
        "si-load:   {} req/s 2xx, {} items/s, p99 {}",
        report::thousands(result.ok_per_sec() as u64),
        report::thousands(result.items_per_sec() as u64),
        report::ms(result.latency.p99)
    );
    Ok(Phase {
        label,
        spec,
        server_cpu: share(server_before, server_after),
        client_cpu: share(client_before, client_after),
        result,
    })
}

/// Page views + events in the run's store (its SQLite file, or its MongoDB database).
async fn count_stored(a: &SuiteArgs, dir: &Path) -> Result<u64, String> {
    match &a.mongodb_uri {
        Some(uri) => crate::mongo::count_ingested(uri, &database_of(dir)).await,
        None => count_rows(&dir.join("superinsights.db")).await,
    }
}

/// With `--seed-events`: `superinsights seed-demo` into the run's store before the server
/// starts (its rollups built, as a grown install has them). Returns the page views + events
/// then stored, which the loss check subtracts.
async fn seed(a: &SuiteArgs, dir: &Path) -> Result<u64, String> {
    if a.seed_events == 0 {
        return Ok(0);
    }
    let started = Instant::now();
    let command = Command::new(&a.binary)
        .args(["seed-demo", "--owner", ADMIN_EMAIL, "--events"])
        .arg(a.seed_events.to_string())
        .env_clear()
        .envs(server_env(a, dir))
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(SEED_DEADLINE, command)
        .await
        .map_err(|_| format!("seed-demo did not finish within {SEED_DEADLINE:?}"))?
        .map_err(|e| format!("cannot run {}: {e}", a.binary.display()))?;
    if !output.status.success() {
        return Err(format!(
            "seed-demo failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    let seeded = count_stored(a, dir).await?;
    eprintln!(
        "si-load suite:   seeded {} documents ({seeded} page views + events) in {:.1?}",
        a.seed_events,
        started.elapsed()
    );
    Ok(seeded)
}

/// `superinsights create-admin` in the run's `DATA_DIR`; returns the project's `pk_` key.
async fn create_admin(a: &SuiteArgs, dir: &Path) -> Result<String, String> {
    let binary = &a.binary;
    let command = Command::new(binary)
        .args([
            "create-admin",
            "--email",
            ADMIN_EMAIL,
            "--project",
            "si-load benchmark",
        ])
        .env_clear()
        .envs(server_env(a, dir))
        .env("SUPERINSIGHTS_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(STARTUP_DEADLINE, command)
        .await
        .map_err(|_| "create-admin did not finish in time".to_string())?
        .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "create-admin failed ({}): {}{}",
            output.status,
            stdout.trim(),
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("public key:"))
        .map(str::trim)
        .find(|k| k.starts_with("pk_"))
        .map(str::to_string)
        .ok_or_else(|| format!("no `public key: pk_…` line in create-admin output:\n{stdout}"))
}

/// A port the kernel just handed out on 127.0.0.1 (free unless someone grabs it meanwhile).
pub(crate) fn free_port() -> Result<u16, String> {
    let listener =
        std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Starts `binary serve` on a free loopback port with exactly `env` (and `HOST`/`PORT`), its
/// output to `log`, and waits until it answers `/healthz`: the child, its pid and its address.
pub(crate) async fn start_server(
    binary: &Path,
    env: impl IntoIterator<Item = (String, String)>,
    log: &Path,
) -> Result<(Child, u32, Target), String> {
    let port = free_port()?;
    let file = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
    let mut child = Command::new(binary)
        .arg("serve")
        .env_clear()
        .envs(env)
        .env("HOST", "127.0.0.1")
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone().map_err(|e| e.to_string())?))
        .stderr(Stdio::from(file))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    let pid = child.id().ok_or("the server exited at once")?;
    let target = Target::loopback(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    wait_healthy(&target, &mut child, "the server", Some(log)).await?;
    Ok((child, pid, target))
}

/// Polls `/healthz` until it answers 200, the child exits, or the deadline passes.
pub(crate) async fn wait_healthy(
    target: &Target,
    child: &mut Child,
    what: &str,
    log: Option<&Path>,
) -> Result<(), String> {
    let deadline = Instant::now() + STARTUP_DEADLINE;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!(
                "{what} exited during startup ({status}){}",
                log_tail(log)
            ));
        }
        if get_status(target.addr, "/healthz", Duration::from_secs(1)).await == Some(200) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "{what} did not answer /healthz within {STARTUP_DEADLINE:?}{}",
                log_tail(log)
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn log_tail(log: Option<&Path>) -> String {
    let Some(text) = log.and_then(|p| std::fs::read_to_string(p).ok()) else {
        return String::new();
    };
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(15)..].join("\n");
    format!("; last log lines:\n{tail}")
}

pub(crate) async fn terminate(pid: u32) -> Result<(), String> {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("kill -TERM {pid} failed ({status})"))
    }
}

/// The single-item phase against `si-load bare`, run as a child process of this very binary.
async fn run_bare(
    a: &SuiteArgs,
    ticks: u64,
    spec: impl Fn(&Target) -> LoadSpec,
) -> Result<Phase, String> {
    let exe: PathBuf = std::env::current_exe().map_err(|e| e.to_string())?;
    let port = free_port()?;
    let max_time = format!("{}s", 2 * (a.seconds + a.warmup.as_secs()) + 60);
    let mut child = Command::new(&exe)
        .args(["bare", "--port", &port.to_string(), "--max-time", &max_time])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {} bare: {e}", exe.display()))?;
    let pid = child.id().ok_or("si-load bare exited at once")?;
    let target = Target::loopback(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    wait_healthy(&target, &mut child, "si-load bare", None).await?;
    let phase = measure_phase(
        format!("bare axum handler: single items, c={}", a.concurrency),
        spec(&target),
        Some(pid),
        ticks,
    )
    .await;
    let _ = terminate(pid).await;
    if tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
    }
    phase
}

/// Rows in the tables the suite writes to, with the file opened read-only.
async fn count_rows(db: &Path) -> Result<u64, String> {
    use sqlx::{
        Connection,
        sqlite::{SqliteConnectOptions, SqliteConnection},
    };
    let options = SqliteConnectOptions::new().filename(db).read_only(true);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .map_err(|e| format!("open {}: {e}", db.display()))?;
    let mut total = 0u64;
    for table in ["events", "pageviews"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .map_err(|e| format!("count {table}: {e}"))?;
        total += n as u64;
    }
    let _ = conn.close().await;
    Ok(total)
}

/// Counts WARN and ERROR lines of the server log and keeps the first few.
fn scan_log(path: &Path) -> (usize, usize, Vec<String>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let (mut warnings, mut errors, mut sample) = (0, 0, Vec::new());
    for line in text.lines() {
        let is_warn = line.contains(" WARN ");
        let is_error = line.contains("ERROR");
        warnings += is_warn as usize;
        errors += is_error as usize;
        if (is_warn || is_error) && sample.len() < 4 {
            sample.push(line.chars().take(300).collect());
        }
    }
    (warnings, errors, sample)
}
