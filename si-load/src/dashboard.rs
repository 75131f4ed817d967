//! `si-load dashboard`: dashboard latency, in-process with the server's own code — a fresh SQLite
//! file seeded with `superinsights`' demo generator, then: the first 30-day view after the bulk
//! load (it materialises the rollups), uncached dashboards per timeframe, cached ones, and the
//! cache hit ratio of dashboards left open with auto-refresh (a real cache with time scaled
//! down, and the same key policy replayed on a virtual clock for every timeframe). Bounded: at
//! most 1,000 runs, 20 M documents, 50 viewers, 600 s of simulation.

use clap::Args;
use rand::{Rng, SeedableRng, rngs::StdRng};
use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};
use superinsights::{
    domain::analytics::Timeframe,
    runtime::cache::{DashboardCache, bucket_len, memory::MemoryCache},
    services::{accounts, dashboard, demo},
    store::{
        Stores,
        sqlite::{SqliteOptions, SqliteStore},
    },
};

#[derive(Args, Debug)]
pub struct DashboardArgs {
    /// Documents to seed (page views, events, errors, web vitals together), over 30 days.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1_000..=20_000_000))]
    pub events: u64,
    /// Dashboard computations per measurement.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=1_000))]
    pub runs: u64,
    /// Dashboards left open at once on the project (hit-ratio simulation).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=50))]
    pub viewers: u64,
    /// Time compression of the real-cache simulation: `REDIS_TTL` (300 s) and the 30 s poll are
    /// both divided by this.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub scale: u64,
    /// Wall-clock length of the real-cache simulation, in seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub sim_seconds: u64,
}

fn p(samples: &mut [Duration], q: f64) -> Duration {
    samples.sort_unstable();
    samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub async fn run(a: DashboardArgs) -> Result<(), String> {
    let dir = std::env::temp_dir().join(format!("si-load-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let result = measure(&a, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

const DEFAULT_TTL: Duration = Duration::from_secs(300);
const POLL: Duration = Duration::from_secs(30);

async fn measure(a: &DashboardArgs, dir: &std::path::Path) -> Result<(), String> {
    let store = SqliteStore::open(&dir.join("dashboard.db"), SqliteOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let stores = Stores::new("sqlite", store);
    stores.admin.migrate().await.map_err(|e| e.to_string())?;
    let project = accounts::provision(
        &stores,
        "bench@example.com",
        "bench-password",
        superinsights::domain::records::PlatformRole::Admin,
        "Bench",
    )
    .await
    .map_err(|e| e.to_string())?
    .project;
    let started = Instant::now();
    let seeded = demo::seed(&stores, project.id, a.events, 30, 1)
        .await
        .map_err(|e| e.to_string())?;
    let seeding = started.elapsed();
    println!(
        "seeded {} documents ({} page views, {} events, {} errors, {} web vitals) in {:.1} s",
        a.events,
        seeded.pageviews,
        seeded.events,
        seeded.errors,
        seeded.performance,
        seeding.as_secs_f64()
    );
    let db_size = |dir: &std::path::Path| -> u64 {
        ["dashboard.db", "dashboard.db-wal"]
            .iter()
            .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
            .map(|m| m.len())
            .sum()
    };
    let before_rollups = db_size(dir);

    let t = Instant::now();
    dashboard::dashboard(&stores, project.id, Timeframe::D30)
        .await
        .map_err(|e| e.to_string())?;
    let first = t.elapsed();
    println!(
        "first 30-day view after the bulk load (materialises the rollups): {:.2} s; database {:.0} MB → {:.0} MB",
        first.as_secs_f64(),
        before_rollups as f64 / 1e6,
        db_size(dir) as f64 / 1e6
    );

    println!();
    println!(
        "| dashboard, {} documents, uncached | runs | p50 | p95 |",
        a.events
    );
    println!("|---|---:|---:|---:|");
    for timeframe in [
        Timeframe::M5,
        Timeframe::H24,
        Timeframe::D7,
        Timeframe::D30,
        Timeframe::M3,
    ] {
        // One unmeasured view first: it materialises whatever this range needs beyond 30 days.
        dashboard::dashboard(&stores, project.id, timeframe)
            .await
            .map_err(|e| e.to_string())?;
        let mut samples = Vec::new();
        for _ in 0..a.runs {
            let t = Instant::now();
            dashboard::dashboard(&stores, project.id, timeframe)
                .await
                .map_err(|e| e.to_string())?;
            samples.push(t.elapsed());
        }
        println!(
            "| {} (SQLite, rollups built) | {} | {} | {} |",
            timeframe.as_str(),
            a.runs,
            ms(p(&mut samples, 0.5)),
            ms(p(&mut samples, 0.95))
        );
    }
    let cache = DashboardCache::new(Arc::new(MemoryCache::default()), DEFAULT_TTL);
    cached_30_days(&cache, &stores, project.id).await?;
    let mut cached = Vec::new();
    for _ in 0..a.runs {
        let t = Instant::now();
        cached_30_days(&cache, &stores, project.id).await?;
        cached.push(t.elapsed());
    }
    println!(
        "| 30d cached (in-process) | {} | {} | {} |",
        a.runs,
        ms(p(&mut cached, 0.5)),
        ms(p(&mut cached, 0.95))
    );

    real_cache_simulation(a, &stores, project.id).await?;
    virtual_clock_simulation(a.viewers);
    Ok(())
}

/// `viewers` dashboards (30 days) open at once on one project through a real in-process
/// `DashboardCache`, each polling every 30 s / scale, with `REDIS_TTL` = 300 s / scale; each
/// viewer opens the page at a random moment of the first poll interval.
async fn real_cache_simulation(
    a: &DashboardArgs,
    stores: &Stores,
    project: superinsights::domain::ids::DocId,
) -> Result<(), String> {
    let ttl = DEFAULT_TTL / a.scale as u32;
    let poll = POLL / a.scale as u32;
    let cache = Arc::new(DashboardCache::new(Arc::new(MemoryCache::default()), ttl));
    let deadline = Instant::now() + Duration::from_secs(a.sim_seconds);
    let mut tasks = Vec::new();
    for v in 0..a.viewers {
        let (cache, stores) = (cache.clone(), stores.clone());
        let offset = poll.mul_f64(StdRng::seed_from_u64(v).random::<f64>());
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            while Instant::now() < deadline {
                tick.tick().await;
                cached_30_days(&cache, &stores, project).await?;
            }
            Ok::<_, String>(())
        }));
    }
    for t in tasks {
        t.await.map_err(|e| e.to_string())??;
    }
    let hits = cache.counters.hits.load(Ordering::Relaxed);
    let misses = cache.counters.misses.load(Ordering::Relaxed);
    println!();
    println!(
        "real cache, 30d, {} viewer(s), time ÷ {} (REDIS_TTL {:.1} s, poll {:.2} s), {} s: {} hits, {} misses, hit ratio {:.1} %",
        a.viewers,
        a.scale,
        ttl.as_secs_f64(),
        poll.as_secs_f64(),
        a.sim_seconds,
        hits,
        misses,
        100.0 * hits as f64 / (hits + misses).max(1) as f64
    );
    Ok(())
}

/// The cache's key policy (`bucket_len`, slot = ⌊now / bucket⌋, one key per project, timeframe
/// and slot) replayed on a virtual clock: for every timeframe, 1 and `viewers` dashboards open
/// for 30 minutes each (opened at random moments of one hour), page load then a poll every 30 s.
/// An entry lives for one bucket, so "key seen before" is exactly "hit".
fn virtual_clock_simulation(viewers: u64) {
    println!();
    println!("| timeframe | bucket | hit ratio, 1 viewer | hit ratio, {viewers} viewers |");
    println!("|---|---:|---:|---:|");
    for timeframe in Timeframe::ALL {
        let bucket = bucket_len(timeframe, DEFAULT_TTL).as_millis() as i64;
        let ratio = |n: u64| {
            let mut rng = StdRng::seed_from_u64(42 + n);
            let mut seen = HashSet::new();
            let (mut hits, mut total) = (0u64, 0u64);
            let mut polls: Vec<i64> = Vec::new();
            for _ in 0..n {
                let open = rng.random_range(0..3_600_000i64) + 1_000_000_000_000;
                polls.extend((0..=60).map(|i| open + i * POLL.as_millis() as i64));
            }
            polls.sort_unstable();
            for t in polls {
                total += 1;
                if !seen.insert(t / bucket) {
                    hits += 1;
                }
            }
            100.0 * hits as f64 / total as f64
        };
        println!(
            "| {} | {} s | {:.1} % | {:.1} % |",
            timeframe.as_str(),
            bucket / 1000,
            ratio(1),
            ratio(viewers)
        );
    }
}

/// The 30-day dashboard through `cache`, as the page reads it.
async fn cached_30_days(
    cache: &DashboardCache,
    stores: &Stores,
    project: superinsights::domain::ids::DocId,
) -> Result<(), String> {
    superinsights::services::dashboard::cached(
        cache,
        stores,
        project,
        Timeframe::D30,
        &Default::default(),
    )
    .await
    .map(drop)
    .map_err(|e| e.to_string())
}
