//! `si-load sessions`: session lookup latency, in-process with the server's own session stores:
//! the durable store (a real SQLite file) and Redis in front of it (a private `redis-server` on a
//! loopback port, started and killed here). Bounded: at most 1,000,000 lookups per measurement.

use super::ratelimit::PrivateRedis;
use clap::Args;
use std::{
    collections::HashMap,
    time::{Duration, Instant},
};
use superinsights::{
    config::{RedisConfig, Secret},
    runtime::{
        redis::RedisHandle,
        sessions::{DurableSessionStore, RedisFrontedStore},
    },
    store::{
        Stores,
        sqlite::{SqliteOptions, SqliteStore},
    },
};
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
};

#[derive(Args, Debug)]
pub struct SessionArgs {
    /// Lookups per measurement (after a warm-up of one per session).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=1_000_000))]
    pub lookups: u64,
    /// Distinct sessions the lookups cycle through.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub sessions: u64,
    /// The `redis-server` executable to start privately.
    #[arg(long, default_value = "redis-server")]
    pub redis_server: String,
}

/// p50, p99 and mean of `lookups` loads cycling over `ids`.
async fn measure(
    store: &dyn SessionStore,
    ids: &[Id],
    lookups: u64,
) -> Result<(Duration, Duration, Duration), String> {
    let mut samples = Vec::with_capacity(lookups as usize);
    for i in 0..lookups as usize {
        let id = &ids[i % ids.len()];
        let started = Instant::now();
        let found = store.load(id).await.map_err(|e| e.to_string())?;
        samples.push(started.elapsed());
        if found.is_none() {
            return Err(format!("session {id} vanished"));
        }
    }
    samples.sort_unstable();
    let at =
        |q: f64| samples[((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    Ok((at(0.5), at(0.99), mean))
}

fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

pub async fn run(a: SessionArgs) -> Result<(), String> {
    let dir = tempfile_dir()?;
    let sqlite = SqliteStore::open(&dir.join("sessions.db"), SqliteOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let stores = Stores::new("sqlite", sqlite);
    stores.admin.migrate().await.map_err(|e| e.to_string())?;
    let durable = DurableSessionStore::new(
        stores.sessions.clone(),
        superinsights::domain::clock::SystemClock::shared(),
    );

    // Sessions shaped like a signed-in user's: user id, current org, CSRF token.
    let mut ids = Vec::with_capacity(a.sessions as usize);
    for i in 0..a.sessions {
        let data: HashMap<String, serde_json::Value> = [
            ("uid".to_string(), serde_json::json!(format!("{:024x}", i))),
            (
                "org".to_string(),
                serde_json::json!(format!("{:024x}", i + 1)),
            ),
            ("csrf".to_string(), serde_json::json!("f".repeat(64))),
        ]
        .into_iter()
        .collect();
        let mut record = Record {
            id: Id::default(),
            data,
            expiry_date: time::OffsetDateTime::now_utc() + time::Duration::days(14),
        };
        durable
            .create(&mut record)
            .await
            .map_err(|e| e.to_string())?;
        ids.push(record.id);
    }
    measure(&durable, &ids, ids.len() as u64).await?;
    let (d50, d99, dmean) = measure(&durable, &ids, a.lookups).await?;

    let redis = PrivateRedis::start(&a.redis_server).await?;
    let config = RedisConfig {
        url: Some(Secret::new(redis.url.clone())),
        ..Default::default()
    };
    let handle = RedisHandle::start(&config)
        .map_err(|e| e.to_string())?
        .ok_or("redis handle")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !handle.is_connected() {
        if Instant::now() > deadline {
            return Err("redis did not connect within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let fronted = RedisFrontedStore::new(durable.clone(), handle.clone());
    // Warm-up: the first load of each session copies it into Redis.
    measure(&fronted, &ids, ids.len() as u64).await?;
    let (r50, r99, rmean) = measure(&fronted, &ids, a.lookups).await?;
    handle.quit().await;

    println!("| session store | lookups | p50 | p99 | mean |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| SQLite (durable store) | {} | {} | {} | {} |",
        a.lookups,
        us(d50),
        us(d99),
        us(dmean)
    );
    println!(
        "| Redis in front of SQLite | {} | {} | {} | {} |",
        a.lookups,
        us(r50),
        us(r99),
        us(rmean)
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf, String> {
    let dir = std::env::temp_dir().join(format!("si-load-sessions-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    Ok(dir)
}
