//! Realistic ingestion bodies, built once before a run so that generating them costs the load
//! generator nothing while measuring: `{"items":[…]}` of custom events (properties, clientId,
//! sessionId, ISO timestamps) or page views (url, title, referrer, UTM tags, deviceType), plus
//! the browser User-Agent strings the requests carry.

use bytes::Bytes;
use rand::{Rng, SeedableRng, rngs::StdRng};
use serde_json::{Value, json};
use std::time::Duration;

/// The `/v1/{channel}` the bodies are for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Channel {
    Events,
    Pageviews,
}

impl Channel {
    pub fn path(self) -> &'static str {
        match self {
            Channel::Events => "/v1/events",
            Channel::Pageviews => "/v1/pageviews",
        }
    }

    /// Plural noun for reports.
    pub fn noun(self) -> &'static str {
        match self {
            Channel::Events => "events",
            Channel::Pageviews => "page views",
        }
    }
}

/// How many distinct bodies a run cycles through.
const VARIANTS: usize = 256;
/// Stands in for each timestamp in a template; as long as an ISO timestamp (24 bytes).
const STAMP: &str = "@@@@@@@@@@@@@@@@@@@@@@@@";

/// Pre-serialized request bodies whose timestamps are filled in at send time, so that every
/// item is as fresh as the SDK would make it however long the run lasts.
pub struct Bodies {
    templates: Vec<Template>,
}

struct Template {
    bytes: Vec<u8>,
    /// Byte offset of each timestamp and the item's age when sent, in milliseconds.
    stamps: Vec<(usize, i64)>,
}

impl Bodies {
    /// `VARIANTS` bodies of `batch` items each, deterministic for a given `seed`. Like the SDK's
    /// queue (flushed at 20 items or every 5 s), the items of a batch were recorded over
    /// `spread` before the send, oldest first; a single item is sent as soon as it is recorded.
    pub fn generate(channel: Channel, batch: usize, spread: Duration, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let spread_ms = spread.as_millis() as i64;
        let templates = (0..VARIANTS)
            .map(|_| {
                let mut ages: Vec<i64> = (0..batch)
                    .map(|_| {
                        if batch > 1 && spread_ms > 0 {
                            rng.random_range(0..=spread_ms)
                        } else {
                            0
                        }
                    })
                    .collect();
                ages.sort_unstable_by(|a, b| b.cmp(a));
                let items: Vec<Value> = (0..batch)
                    .map(|_| match channel {
                        Channel::Events => event(&mut rng),
                        Channel::Pageviews => pageview(&mut rng),
                    })
                    .collect();
                let bytes = serde_json::to_vec(&json!({ "items": items })).expect("json");
                let offsets = bytes
                    .windows(STAMP.len())
                    .enumerate()
                    .filter(|(_, w)| *w == STAMP.as_bytes())
                    .map(|(i, _)| i);
                let stamps = offsets.zip(ages).collect();
                Template { bytes, stamps }
            })
            .collect();
        Self { templates }
    }

    /// Body number `i` (cycling), its timestamps set relative to `now_ms` (epoch milliseconds).
    pub fn body(&self, i: usize, now_ms: i64) -> Bytes {
        let t = &self.templates[i % self.templates.len()];
        let mut bytes = t.bytes.clone();
        for &(at, age) in &t.stamps {
            bytes[at..at + STAMP.len()].copy_from_slice(&iso_ms(now_ms - age));
        }
        Bytes::from(bytes)
    }

    /// Mean body size in bytes.
    pub fn mean_len(&self) -> usize {
        self.templates.iter().map(|t| t.bytes.len()).sum::<usize>() / self.templates.len()
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `2024-01-31T12:00:00.000Z` (what JavaScript's `toISOString`, and so the SDK, sends) for epoch
/// milliseconds after 1970, without allocating: this runs for every item sent.
pub fn iso_ms(ms: i64) -> [u8; 24] {
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let mut out = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: i64| {
        for i in (at..at + width).rev() {
            out[i] = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, month);
    put(8, 2, day);
    put(11, 2, in_day / 3_600_000);
    put(14, 2, in_day / 60_000 % 60);
    put(17, 2, in_day / 1000 % 60);
    put(20, 3, in_day % 1000);
    out
}

fn hex_id(rng: &mut StdRng, prefix: &str) -> String {
    format!("{prefix}{:016x}", rng.random::<u64>())
}

fn pick<'a>(rng: &mut StdRng, options: &[&'a str]) -> &'a str {
    options[rng.random_range(0..options.len())]
}

const EVENT_NAMES: &[&str] = &[
    "signup_click",
    "add_to_cart",
    "checkout_started",
    "video_play",
    "search",
    "newsletter_subscribe",
    "file_download",
    "share",
];
const PLANS: &[&str] = &["free", "starter", "pro", "enterprise"];
const PAGES: &[&str] = &[
    "/",
    "/pricing",
    "/blog/announcing-v2",
    "/docs/getting-started",
    "/products/running-shoes",
    "/checkout",
    "/about",
    "/contact",
];
const REFERRERS: &[&str] = &[
    "",
    "https://www.google.com/",
    "https://news.ycombinator.com/",
    "https://twitter.com/",
    "https://www.bing.com/search?q=analytics",
];
const UTM_SOURCES: &[&str] = &["newsletter", "google", "twitter", "partner"];
const DEVICES: &[&str] = &["desktop", "desktop", "mobile", "tablet"];

fn event(rng: &mut StdRng) -> Value {
    let page = pick(rng, PAGES);
    let mut item = json!({
        "clientId": hex_id(rng, "c_"),
        "sessionId": hex_id(rng, "s_"),
        "timestamp": STAMP,
        "deviceType": pick(rng, DEVICES),
        "eventName": pick(rng, EVENT_NAMES),
        "properties": {
            "plan": pick(rng, PLANS),
            "page": page,
            "value": rng.random_range(1..500),
            "experiment": if rng.random_bool(0.5) { "a" } else { "b" },
            "logged_in": rng.random_bool(0.3),
        },
    });
    if rng.random_bool(0.25) {
        item["durationMs"] = json!(rng.random_range(10..5_000));
    }
    item
}

fn pageview(rng: &mut StdRng) -> Value {
    let page = pick(rng, PAGES);
    let campaign = rng.random_bool(0.3);
    let mut item = json!({
        "clientId": hex_id(rng, "c_"),
        "sessionId": hex_id(rng, "s_"),
        "timestamp": STAMP,
        "url": format!("https://shop.example.com{page}"),
        "title": format!("{} – Example Shop", page.trim_start_matches('/')),
        "referrer": pick(rng, REFERRERS),
        "deviceType": pick(rng, DEVICES),
    });
    if campaign {
        item["utmSource"] = json!(pick(rng, UTM_SOURCES));
        item["utmMedium"] = json!("email");
        item["utmCampaign"] = json!("spring_sale");
    }
    item
}

/// Browser User-Agents, as the SDK's requests carry (the server parses them on every request).
pub const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_have_the_requested_number_of_fresh_items() {
        for channel in [Channel::Events, Channel::Pageviews] {
            let bodies = Bodies::generate(channel, 20, Duration::from_secs(5), 7);
            let now = 1_700_000_000_000;
            let v: Value = serde_json::from_slice(&bodies.body(3, now)).unwrap();
            let items = v["items"].as_array().unwrap();
            assert_eq!(items.len(), 20);
            let stamps: Vec<&str> = items
                .iter()
                .map(|i| i["timestamp"].as_str().unwrap())
                .collect();
            assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
            assert!(stamps[0] >= "2023-11-14T22:13:15.000Z", "{}", stamps[0]);
            assert!(stamps[19] <= "2023-11-14T22:13:20.000Z", "{}", stamps[19]);
        }
    }

    #[test]
    fn iso_timestamps_match_the_time_crate() {
        let f = time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        );
        for ms in [
            0,
            951_782_400_000,
            1_700_000_000_123,
            1_709_164_799_999,
            4_102_444_800_000,
        ] {
            let t =
                time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap();
            assert_eq!(
                std::str::from_utf8(&iso_ms(ms)).unwrap(),
                t.format(&f).unwrap()
            );
        }
    }
}
