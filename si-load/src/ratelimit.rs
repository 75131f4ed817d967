//! `si-load ratelimit`: what rate limiting costs, measured in-process with the server's own code.
//! (1) per-check latency of the in-process and the Redis limiter (against a private
//! `redis-server` on a loopback port, started and killed here, or a given loopback URL), one at a
//! time and with concurrent callers; (2) per-request cost of the tower layer: the same router
//! driven with `oneshot`, without the layer, with it on memory and with it on Redis.
//! Bounded: at most 1,000,000 checks per measurement; nothing leaves the machine.

use axum::{Router, body::Body, extract::ConnectInfo, extract::Request, routing::post};
use clap::Args;
use std::{
    net::SocketAddr,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};
use superinsights::{
    config::{Limit, RedisConfig, Secret},
    http::rate_limit::{RateLimitLayer, Style},
    runtime::{
        rate_limit::{FallbackLimiter, MemoryRateLimiter, RateLimiter, RedisRateLimiter},
        redis::RedisHandle,
    },
};
use tower::ServiceExt;

#[derive(Args, Debug)]
pub struct RateLimitArgs {
    /// Checks (and layer requests) per measurement, after a warm-up of a tenth as many.
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=1_000_000))]
    pub checks: u64,
    /// Callers at once in the concurrent measurements (1–256).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..=256))]
    pub concurrency: u64,
    /// Distinct keys the checks are spread over (like client IPs).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    pub keys: u64,
    /// Use this Redis (loopback only) instead of starting a private `redis-server`.
    #[arg(long)]
    pub redis_url: Option<String>,
    /// The `redis-server` executable to start privately.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
}

/// A private redis-server on a free loopback port, killed when dropped.
pub(crate) struct PrivateRedis {
    _child: tokio::process::Child,
    pub(crate) url: String,
}

impl PrivateRedis {
    pub(crate) async fn start(binary: &str) -> Result<Self, String> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        // Persistence is off, so the directory only has to exist; nothing is written there.
        let child = tokio::process::Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(std::env::temp_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| {
                format!("cannot start {binary}: {e} (install redis-server or pass --redis-url)")
            })?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                return Err("redis-server did not start within 10 s".into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Self {
            _child: child,
            url: format!("redis://127.0.0.1:{port}"),
        })
    }
}

fn check_loopback(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or("--redis-url must start with redis://")?;
    let host_port = rest.rsplit('@').next().unwrap_or(rest);
    let host = host_port.split('/').next().unwrap_or(host_port);
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) if ip.is_loopback() => Ok(()),
        _ => Err("--redis-url must name a loopback address (127.0.0.1 or ::1)".into()),
    }
}

/// Latency figures of one measurement.
struct Figures {
    what: String,
    n: usize,
    p50: Duration,
    p99: Duration,
    mean: Duration,
    per_sec: f64,
}

fn figures(what: String, mut samples: Vec<Duration>, wall: Duration) -> Figures {
    samples.sort_unstable();
    let n = samples.len();
    let at = |q: f64| samples[((n as f64 * q).ceil() as usize).clamp(1, n) - 1];
    Figures {
        what,
        n,
        p50: at(0.50),
        p99: at(0.99),
        mean: samples.iter().sum::<Duration>() / n as u32,
        per_sec: n as f64 / wall.as_secs_f64(),
    }
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// `checks` limiter checks from `callers` tasks at once, keys spread round-robin.
async fn measure_checks(
    what: &str,
    limiter: Arc<dyn RateLimiter>,
    checks: u64,
    callers: u64,
    keys: u64,
) -> Figures {
    // Large enough that nothing is rejected: the cost measured is the check-and-record.
    let limit = Limit::per_minute(1_000_000_000);
    let keys: Arc<Vec<String>> = Arc::new(
        (0..keys)
            .map(|i| format!("10.0.{}.{}", i / 256, i % 256))
            .collect(),
    );
    let warmup = (checks / 10).max(10);
    let run = |n: u64| {
        let per = n.div_ceil(callers);
        let tasks: Vec<_> = (0..callers)
            .map(|c| {
                let (limiter, keys) = (limiter.clone(), keys.clone());
                tokio::spawn(async move {
                    let mut samples = Vec::with_capacity(per as usize);
                    for i in 0..per {
                        let key = &keys[((c * per + i) % keys.len() as u64) as usize];
                        let started = Instant::now();
                        let d = limiter.check("bench", key, limit.max, limit.window).await;
                        samples.push(started.elapsed());
                        debug_assert!(d.allowed);
                    }
                    samples
                })
            })
            .collect();
        async move {
            let started = Instant::now();
            let mut all = Vec::with_capacity(n as usize);
            for t in tasks {
                all.extend(t.await.expect("bench task"));
            }
            (all, started.elapsed())
        }
    };
    let _ = run(warmup).await;
    let (samples, wall) = run(checks).await;
    figures(format!("{what}, {callers} caller(s)"), samples, wall)
}

/// The layer's cost: `checks` sequential `oneshot` requests through a router.
async fn measure_layer(
    what: &str,
    layer: Option<RateLimitLayer>,
    checks: u64,
    keys: u64,
) -> Figures {
    let mut router = Router::new().route("/v1/events", post(|| async { "ok" }));
    if let Some(layer) = layer {
        router = router.route_layer(layer);
    }
    let request = |i: u64| {
        let peer = SocketAddr::from((
            [10, 0, (i % keys / 256) as u8, (i % keys % 256) as u8],
            40000,
        ));
        let mut r = Request::post("/v1/events")
            .body(Body::empty())
            .expect("request");
        r.extensions_mut().insert(ConnectInfo(peer));
        r
    };
    for i in 0..(checks / 10).max(10) {
        let _ = router.clone().oneshot(request(i)).await;
    }
    let mut samples = Vec::with_capacity(checks as usize);
    let started = Instant::now();
    for i in 0..checks {
        let r = request(i);
        let t = Instant::now();
        let response = router.clone().oneshot(r).await.expect("infallible");
        samples.push(t.elapsed());
        debug_assert_eq!(response.status(), 200);
    }
    figures(what.to_string(), samples, started.elapsed())
}

fn ip_layer(limiter: Arc<dyn RateLimiter>) -> RateLimitLayer {
    RateLimitLayer::new(
        limiter,
        "bench-layer",
        Limit::per_minute(1_000_000_000),
        Style::Json,
        |r: &Request| {
            r.extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string())
        },
    )
}

pub async fn run(a: RateLimitArgs) -> Result<(), String> {
    let mut private = None;
    let url = match &a.redis_url {
        Some(url) => {
            check_loopback(url)?;
            url.clone()
        }
        None => {
            let redis = PrivateRedis::start(&a.redis_server).await?;
            let url = redis.url.clone();
            private = Some(redis);
            url
        }
    };
    let handle = RedisHandle::start(&RedisConfig {
        url: Some(Secret::new(url)),
        ..RedisConfig::default()
    })
    .map_err(|e| e.to_string())?
    .ok_or("no redis handle")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while handle.ping().await.is_err() {
        if Instant::now() > deadline {
            return Err("redis did not answer within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let version = redis_version(&handle).await;

    let memory: Arc<dyn RateLimiter> = Arc::new(MemoryRateLimiter::default());
    let fallback = Arc::new(FallbackLimiter::new(
        RedisRateLimiter::new(handle.clone()),
        Arc::new(MemoryRateLimiter::default()),
    ));
    let redis: Arc<dyn RateLimiter> = fallback.clone();
    let mut rows = Vec::new();
    for callers in [1, a.concurrency] {
        rows.push(measure_checks("memory", memory.clone(), a.checks, callers, a.keys).await);
    }
    for callers in [1, a.concurrency] {
        rows.push(measure_checks("redis", redis.clone(), a.checks, callers, a.keys).await);
    }
    let server_usec = script_usec_per_call(&handle).await;
    let layer_rows = vec![
        measure_layer("router without the layer", None, a.checks, a.keys).await,
        measure_layer(
            "layer on memory",
            Some(ip_layer(memory.clone())),
            a.checks,
            a.keys,
        )
        .await,
        measure_layer(
            "layer on redis",
            Some(ip_layer(redis.clone())),
            a.checks,
            a.keys,
        )
        .await,
    ];
    // Any fallback during the Redis runs would make their figures memory figures.
    let fallbacks = fallback.fallbacks();
    handle.quit().await;
    drop(private);

    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    println!(
        "si-load ratelimit: {} checks per row, keys spread over {}, {cpus} CPUs ({model}), redis {version} on loopback{}\n",
        a.checks,
        a.keys,
        if fallbacks == 0 {
            ""
        } else {
            " (WARNING: some Redis checks fell back to memory; those figures are not Redis figures)"
        }
    );
    println!("| limiter check | n | p50 | p99 | mean | checks/s |");
    println!("|---|---:|---:|---:|---:|---:|");
    for f in &rows {
        println!(
            "| {} | {} | {} | {} | {} | {:.0} |",
            f.what,
            f.n,
            us(f.p50),
            us(f.p99),
            us(f.mean),
            f.per_sec
        );
    }
    if let Some(usec) = server_usec {
        println!("\nRedis's own time per script call (INFO commandstats, evalsha): {usec} µs");
    }
    let base = &layer_rows[0];
    println!(
        "\n| request through the router (oneshot, sequential) | n | p50 | p99 | p50 overhead vs no layer |"
    );
    println!("|---|---:|---:|---:|---:|");
    for f in &layer_rows {
        let overhead = f.p50.saturating_sub(base.p50);
        println!(
            "| {} | {} | {} | {} | {} |",
            f.what,
            f.n,
            us(f.p50),
            us(f.p99),
            if std::ptr::eq(f, base) {
                "—".into()
            } else {
                us(overhead)
            }
        );
    }
    Ok(())
}

async fn redis_version(handle: &RedisHandle) -> String {
    info_field(handle, fred::types::InfoKind::Server, "redis_version:")
        .await
        .unwrap_or_else(|| "?".into())
}

/// Time Redis itself spends per `EVALSHA` of the script (`INFO commandstats`), in µs.
async fn script_usec_per_call(handle: &RedisHandle) -> Option<String> {
    let stats = info_field(
        handle,
        fred::types::InfoKind::CommandStats,
        "cmdstat_evalsha:",
    )
    .await?;
    stats
        .split(',')
        .find_map(|kv| kv.strip_prefix("usec_per_call="))
        .map(str::to_string)
}

async fn info_field(
    handle: &RedisHandle,
    kind: fred::types::InfoKind,
    prefix: &str,
) -> Option<String> {
    use fred::prelude::*;
    let info: String = handle.client().info(Some(kind)).await.ok()?;
    info.lines()
        .find_map(|l| l.strip_prefix(prefix).map(|v| v.trim().to_string()))
}
