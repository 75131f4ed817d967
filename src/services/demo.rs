//! Demo data: realistic-looking analytics for trying the dashboards and benchmarking them —
//! Zipf-distributed paths and event names, referrers, UTM campaigns, devices, browsers, countries,
//! returning visitors, web vitals and a few recurring errors, spread over the last `days` days.

use crate::{
    domain::{
        fingerprint::error_fingerprint,
        ids::DocId,
        model::{
            DeviceType, Docs, Enrichment, ErrorEvent, Event, PageView, PerformanceMetric,
            WriteBatch,
        },
        timestamp::now_ms,
    },
    store::{StoreResult, Stores},
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

const DAY_MS: i64 = 86_400_000;
const PATHS: usize = 200;
const BATCH: usize = 5_000;

/// An index in `0..n` drawn with Zipf-like weights (rank r has weight 1/r).
fn zipf(rng: &mut StdRng, n: usize) -> usize {
    // Inverse transform on the harmonic series, approximated with the log: cheap and good enough.
    let u: f64 = rng.random();
    let x = ((n as f64 + 1.0).ln() * u).exp() - 1.0;
    (x as usize).min(n - 1)
}

/// Rounded to 0.1 ms.
fn tenth(ms: f64) -> f64 {
    (ms * 10.0).round() / 10.0
}

fn pick<'a>(rng: &mut StdRng, items: &[&'a str]) -> &'a str {
    items[rng.random_range(0..items.len())]
}

/// How many documents of each kind were written.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seeded {
    pub pageviews: u64,
    pub events: u64,
    pub errors: u64,
    pub performance: u64,
}

/// Writes about `total` documents into `project` (70 % page views, 22 % events, 3 % errors, 5 %
/// web-vitals records) spread evenly over the last `days` days in time order, deterministic for
/// a given `seed`.
pub async fn seed(
    stores: &Stores,
    project: DocId,
    total: u64,
    days: u32,
    seed: u64,
) -> StoreResult<Seeded> {
    let mut rng = StdRng::seed_from_u64(seed);
    let now = now_ms();
    let span = i64::from(days.max(1)) * DAY_MS;
    let visitors = (total / 6).max(1);
    let referrers = [
        "https://www.google.com/",
        "https://news.ycombinator.com/",
        "https://twitter.com/",
        "https://www.reddit.com/",
        "https://duckduckgo.com/",
        "",
    ];
    let campaigns = ["spring", "launch", "newsletter", ""];
    let browsers = ["Chrome", "Safari", "Firefox", "Edge"];
    let oses = ["Windows", "macOS", "iOS", "Android", "Linux"];
    let countries = ["US", "DE", "FR", "GB", "IN", "BR", "JP", "NL"];
    let event_names = [
        "signup",
        "add_to_cart",
        "checkout",
        "search",
        "share",
        "$click",
        "play_video",
        "download",
    ];
    let messages = [
        "TypeError: x is undefined",
        "ReferenceError: foo is not defined",
        "NetworkError when attempting to fetch resource",
        "Script error.",
    ];
    let slice = span as f64 / total.max(1) as f64;
    let mut seeded = Seeded::default();
    let mut written = 0u64;
    while written < total {
        let n = (total - written).min(BATCH as u64) as usize;
        let (mut pv, mut ev, mut er, mut pm) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            // In time order, as real ingestion writes them: document k of `total` falls at a
            // random point of the k-th of `total` equal slices of the span.
            let k = written + i as u64;
            let ts = now - span + ((k as f64 + rng.random::<f64>()) * slice) as i64;
            let client = format!("v{}", zipf(&mut rng, visitors as usize));
            let enrichment = Enrichment {
                ip: None,
                country: Some(pick(&mut rng, &countries).to_string()),
                is_bot: false,
                timestamp_replaced: false,
            };
            let path = format!(
                "/{}",
                if zipf(&mut rng, PATHS) == 0 {
                    String::new()
                } else {
                    format!("page/{}", zipf(&mut rng, PATHS))
                }
            );
            let roll: u32 = rng.random_range(0..100);
            if roll < 70 {
                let referrer = pick(&mut rng, &referrers);
                let campaign = pick(&mut rng, &campaigns);
                pv.push(PageView {
                    id: DocId::new(),
                    url: format!("https://demo.example{path}"),
                    title: Some(format!("Demo {path}")),
                    referrer: (!referrer.is_empty()).then(|| referrer.to_string()),
                    session_id: Some(format!("{client}-s{}", ts / (30 * 60_000))),
                    client_id: Some(client),
                    utm_source: (!campaign.is_empty()).then(|| "newsletter".to_string()),
                    utm_medium: (!campaign.is_empty()).then(|| "email".to_string()),
                    utm_campaign: (!campaign.is_empty()).then(|| campaign.to_string()),
                    utm_term: None,
                    utm_content: None,
                    device_type: Some(
                        [DeviceType::Desktop, DeviceType::Mobile, DeviceType::Tablet]
                            [zipf(&mut rng, 3)],
                    ),
                    browser: Some(pick(&mut rng, &browsers).to_string()),
                    os: Some(pick(&mut rng, &oses).to_string()),
                    enrichment,
                    timestamp: ts,
                });
            } else if roll < 92 {
                let name = event_names[zipf(&mut rng, event_names.len())];
                ev.push(Event {
                    id: DocId::new(),
                    event_name: name.to_string(),
                    properties: json!({"path": path, "plan": pick(&mut rng, &["free", "pro", "team"])}),
                    duration_ms: (name == "play_video").then(|| rng.random_range(100.0..5000.0)),
                    session_id: None,
                    client_id: Some(client),
                    enrichment,
                    timestamp: ts,
                });
            } else if roll < 95 {
                let message = messages[zipf(&mut rng, messages.len())];
                let stack = format!(
                    "at handler (https://demo.example/app.js:{}:7)",
                    zipf(&mut rng, 40)
                );
                er.push(ErrorEvent {
                    id: DocId::new(),
                    fingerprint: error_fingerprint(message, Some(&stack)),
                    message: message.to_string(),
                    error_type: Some("window_error".into()),
                    stack_trace: Some(stack),
                    source_file: Some("https://demo.example/app.js".into()),
                    line_number: Some(12.0),
                    column_number: Some(7.0),
                    browser: Some(pick(&mut rng, &browsers).to_string()),
                    browser_version: None,
                    os: Some(pick(&mut rng, &oses).to_string()),
                    os_version: None,
                    device_type: Some("desktop".into()),
                    context: Some(json!({"url": format!("https://demo.example{path}")})),
                    client_id: Some(client),
                    user_id: None,
                    enrichment,
                    timestamp: ts,
                });
            } else {
                pm.push(PerformanceMetric {
                    id: DocId::new(),
                    metric_type: "web_vitals_aggregate".into(),
                    // At the resolution browsers report: 0.1 ms timers, CLS to 4 decimals.
                    lcp: Some(tenth(rng.random_range(800.0..5000.0))),
                    cls: Some((rng.random_range(0.0..0.4_f64) * 1e4).round() / 1e4),
                    fid: rng
                        .random_bool(0.5)
                        .then(|| tenth(rng.random_range(5.0..400.0))),
                    ttfb: Some(tenth(rng.random_range(50.0..2000.0))),
                    inp: Some(tenth(rng.random_range(40.0..700.0))),
                    url: Some(format!("https://demo.example{path}")),
                    client_id: Some(client),
                    device_type: Some("desktop".into()),
                    browser: Some(pick(&mut rng, &browsers).to_string()),
                    connection_type: Some("4g".into()),
                    properties: json!({}),
                    enrichment,
                    timestamp: ts,
                });
            }
        }
        seeded.pageviews += pv.len() as u64;
        seeded.events += ev.len() as u64;
        seeded.errors += er.len() as u64;
        seeded.performance += pm.len() as u64;
        let batches: Vec<WriteBatch> = [
            Docs::Pageviews(pv),
            Docs::Events(ev),
            Docs::Errors(er),
            Docs::Performance(pm),
        ]
        .into_iter()
        .filter(|d| !d.is_empty())
        .map(|docs| WriteBatch {
            batch_id: DocId::new(),
            project_id: project,
            docs,
            dropped: 0,
        })
        .collect();
        stores.events.write(&batches).await?;
        written += n as u64;
    }
    Ok(seeded)
}

/// Computes the project's dashboards once (30 days and 90 days), which materialises the store's
/// rollups for the seeded days, so the first real view after seeding is as fast as the next.
pub async fn warm_up(stores: &Stores, project: DocId) -> StoreResult<()> {
    for timeframe in [
        crate::domain::analytics::Timeframe::D30,
        crate::domain::analytics::Timeframe::M3,
    ] {
        crate::services::dashboard::dashboard(stores, project, timeframe).await?;
    }
    stores.stats.rollups_settled().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        domain::model::Channel,
        store::sqlite::{SqliteOptions, SqliteStore},
    };

    #[tokio::test]
    async fn seeds_the_requested_volume_across_channels_and_days() {
        let dir = tempfile::tempdir().unwrap();
        let stores = Stores::new(
            "sqlite",
            SqliteStore::open(&dir.path().join("d.db"), SqliteOptions::default())
                .await
                .unwrap(),
        );
        stores.admin.migrate().await.unwrap();
        let p = crate::services::accounts::provision(
            &stores,
            "d@example.com",
            "password1",
            crate::domain::records::PlatformRole::User,
            "Demo",
        )
        .await
        .unwrap()
        .project;
        let s = seed(&stores, p.id, 12_000, 30, 7).await.unwrap();
        assert_eq!(s.pageviews + s.events + s.errors + s.performance, 12_000);
        assert!(
            s.pageviews > 7_000 && s.events > 2_000 && s.errors > 100 && s.performance > 300,
            "{s:?}"
        );
        assert_eq!(
            stores.stats.count(p.id, Channel::Pageviews).await.unwrap(),
            s.pageviews
        );
        let d = crate::services::dashboard::dashboard(
            &stores,
            p.id,
            crate::domain::analytics::Timeframe::D30,
        )
        .await
        .unwrap();
        assert!(
            d.page_views.views_by_day.len() >= 28,
            "spread over the days"
        );
        assert!(
            d.page_views.top_pages[0].views > d.page_views.top_pages[4].views,
            "Zipf: a head and a tail"
        );
    }
}
