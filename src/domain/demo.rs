//! Demo data, generated: realistic-looking analytics for trying the dashboards and benchmarking
//! them — Zipf-distributed paths and event names, referrers, UTM campaigns, devices, browsers,
//! countries, returning visitors, web vitals and a few recurring errors, spread over the last
//! `days` days. Pure: writing it is `services::demo`'s.

use crate::domain::{
    fingerprint::error_fingerprint,
    ids::DocId,
    model::{
        DeviceType, Docs, Enrichment, ErrorEvent, Event, PageView, PerformanceMetric, WriteBatch,
    },
};
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::json;

const DAY_MS: i64 = 86_400_000;
const PATHS: usize = 200;
/// Documents per chunk (one store write each).
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

const REFERRERS: &[&str] = &[
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://twitter.com/",
    "https://www.reddit.com/",
    "https://duckduckgo.com/",
    "",
];
const CAMPAIGNS: &[&str] = &["spring", "launch", "newsletter", ""];
const BROWSERS: &[&str] = &["Chrome", "Safari", "Firefox", "Edge"];
const OSES: &[&str] = &["Windows", "macOS", "iOS", "Android", "Linux"];
const COUNTRIES: &[&str] = &["US", "DE", "FR", "GB", "IN", "BR", "JP", "NL"];
const EVENT_NAMES: &[&str] = &[
    "signup",
    "add_to_cart",
    "checkout",
    "search",
    "share",
    "$click",
    "play_video",
    "download",
];
const MESSAGES: &[&str] = &[
    "TypeError: x is undefined",
    "ReferenceError: foo is not defined",
    "NetworkError when attempting to fetch resource",
    "Script error.",
];
/// How many documents of each kind were generated.
#[derive(Debug, Default, Clone, Copy)]
pub struct Seeded {
    pub pageviews: u64,
    pub events: u64,
    pub errors: u64,
    pub performance: u64,
}

/// About `total` documents for `project` (70 % page views, 22 % events, 3 % errors, 5 %
/// web-vitals records) spread evenly over the `days` days before `now` in time order,
/// deterministic for a given `seed`, in chunks of write batches (one per kind).
pub struct DemoData {
    rng: StdRng,
    project: DocId,
    total: u64,
    now: i64,
    span: i64,
    visitors: u64,
    slice: f64,
    written: u64,
    seeded: Seeded,
}

impl DemoData {
    pub fn new(project: DocId, total: u64, days: u32, seed: u64, now: i64) -> Self {
        let span = i64::from(days.max(1)) * DAY_MS;
        Self {
            rng: StdRng::seed_from_u64(seed),
            project,
            total,
            now,
            span,
            visitors: (total / 6).max(1),
            slice: span as f64 / total.max(1) as f64,
            written: 0,
            seeded: Seeded::default(),
        }
    }

    /// What the chunks so far held.
    pub fn seeded(&self) -> Seeded {
        self.seeded
    }
}

impl Iterator for DemoData {
    type Item = Vec<WriteBatch>;

    fn next(&mut self) -> Option<Vec<WriteBatch>> {
        if self.written >= self.total {
            return None;
        }
        let n = (self.total - self.written).min(BATCH as u64) as usize;
        let (mut pv, mut ev, mut er, mut pm) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..n {
            // In time order, as real ingestion writes them: document k of `total` falls at a
            // random point of the k-th of `total` equal slices of the span.
            let k = self.written + i as u64;
            let ts =
                self.now - self.span + ((k as f64 + self.rng.random::<f64>()) * self.slice) as i64;
            let client = format!("v{}", zipf(&mut self.rng, self.visitors as usize));
            let enrichment = Enrichment {
                ip: None,
                country: Some(pick(&mut self.rng, COUNTRIES).to_string()),
                is_bot: false,
                timestamp_replaced: false,
            };
            let path = format!(
                "/{}",
                if zipf(&mut self.rng, PATHS) == 0 {
                    String::new()
                } else {
                    format!("page/{}", zipf(&mut self.rng, PATHS))
                }
            );
            let roll: u32 = self.rng.random_range(0..100);
            if roll < 70 {
                let referrer = pick(&mut self.rng, REFERRERS);
                let campaign = pick(&mut self.rng, CAMPAIGNS);
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
                            [zipf(&mut self.rng, 3)],
                    ),
                    browser: Some(pick(&mut self.rng, BROWSERS).to_string()),
                    os: Some(pick(&mut self.rng, OSES).to_string()),
                    enrichment,
                    timestamp: ts,
                });
            } else if roll < 92 {
                let name = EVENT_NAMES[zipf(&mut self.rng, EVENT_NAMES.len())];
                ev.push(Event {
                id: DocId::new(),
                event_name: name.to_string(),
                properties: json!({"path": path, "plan": pick(&mut self.rng, &["free", "pro", "team"])}),
                duration_ms: (name == "play_video").then(|| self.rng.random_range(100.0..5000.0)),
                session_id: None,
                client_id: Some(client),
                enrichment,
                timestamp: ts,
            });
            } else if roll < 95 {
                let message = MESSAGES[zipf(&mut self.rng, MESSAGES.len())];
                let stack = format!(
                    "at handler (https://demo.example/app.js:{}:7)",
                    zipf(&mut self.rng, 40)
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
                    browser: Some(pick(&mut self.rng, BROWSERS).to_string()),
                    browser_version: None,
                    os: Some(pick(&mut self.rng, OSES).to_string()),
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
                    // At the resolution BROWSERS report: 0.1 ms timers, CLS to 4 decimals.
                    lcp: Some(tenth(self.rng.random_range(800.0..5000.0))),
                    cls: Some((self.rng.random_range(0.0..0.4_f64) * 1e4).round() / 1e4),
                    fid: self
                        .rng
                        .random_bool(0.5)
                        .then(|| tenth(self.rng.random_range(5.0..400.0))),
                    ttfb: Some(tenth(self.rng.random_range(50.0..2000.0))),
                    inp: Some(tenth(self.rng.random_range(40.0..700.0))),
                    url: Some(format!("https://demo.example{path}")),
                    client_id: Some(client),
                    device_type: Some("desktop".into()),
                    browser: Some(pick(&mut self.rng, BROWSERS).to_string()),
                    connection_type: Some("4g".into()),
                    properties: json!({}),
                    enrichment,
                    timestamp: ts,
                });
            }
        }
        self.seeded.pageviews += pv.len() as u64;
        self.seeded.events += ev.len() as u64;
        self.seeded.errors += er.len() as u64;
        self.seeded.performance += pm.len() as u64;
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
            project_id: self.project,
            docs,
            dropped: 0,
        })
        .collect();
        self.written += n as u64;
        Some(batches)
    }
}
