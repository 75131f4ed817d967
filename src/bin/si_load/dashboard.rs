//! `si-load dashboard`: dashboard latency, in-process with the server's own code — a fresh SQLite
//! file seeded with `superinsights`' demo generator, then the 30-day dashboard computed uncached
//! (every block from the store) and through the in-process cache. Bounded: at most 1,000 runs.

use clap::Args;
use std::time::{Duration, Instant};
use superinsights::{
    domain::analytics::Timeframe,
    runtime::cache::{DashboardCache, memory::MemoryCache},
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
        "admin",
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

    let mut uncached = Vec::new();
    for _ in 0..a.runs {
        let t = Instant::now();
        dashboard::dashboard(&stores, project.id, Timeframe::D30)
            .await
            .map_err(|e| e.to_string())?;
        uncached.push(t.elapsed());
    }
    let cache = DashboardCache::new(
        std::sync::Arc::new(MemoryCache::default()),
        Duration::from_secs(300),
    );
    cache
        .dashboard(&stores, project.id, Timeframe::D30)
        .await
        .map_err(|e| e.to_string())?;
    let mut cached = Vec::new();
    for _ in 0..a.runs {
        let t = Instant::now();
        cache
            .dashboard(&stores, project.id, Timeframe::D30)
            .await
            .map_err(|e| e.to_string())?;
        cached.push(t.elapsed());
    }
    println!(
        "seeded {} documents ({} page views, {} events, {} errors, {} web vitals) in {:.1} s",
        a.events,
        seeded.pageviews,
        seeded.events,
        seeded.errors,
        seeded.performance,
        seeding.as_secs_f64()
    );
    println!(
        "| 30-day dashboard, {} documents | runs | p50 | p95 |",
        a.events
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| uncached (SQLite) | {} | {} | {} |",
        a.runs,
        ms(p(&mut uncached, 0.5)),
        ms(p(&mut uncached, 0.95))
    );
    println!(
        "| cached (in-process) | {} | {} | {} |",
        a.runs,
        ms(p(&mut cached, 0.5)),
        ms(p(&mut cached, 0.95))
    );
    Ok(())
}
