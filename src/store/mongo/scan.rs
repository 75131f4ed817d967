//! The drill-down figures of the MongoDB backend, folded in Rust over documents read with a
//! plain `find` and a projection ([`MongoStore::rows`]). MongoDB and FerretDB 1.24 share `$match`
//! and `$group` with `$sum`, but not `$dateToString`, `$first`/`$min`/`$max`/`$avg`/`$push`,
//! `$ifNull`, `$cond`, `$objectToArray` or `$facet`, so per-day series, top lists, distinct
//! counts, percentiles and property schemas are computed here with the domain's rules; web
//! vitals go through the analytics engine's `Folder` (as the dashboard does). Pure functions over
//! BSON documents apart from `rows`; the one analytics engine (issue 12) is meant to take over
//! the rest for both backends.

use super::{
    MongoStore,
    docs::{bson_to_json, collection_of},
    errors::CollectAll,
};
use crate::analytics::plan::DAY;
use crate::domain::{
    analytics::{
        DayCount, Dimension, ErrorGroup, PropertyKey, SCHEMA_SAMPLES, TimedEvent, TopEvent,
        percentile, utc_day,
    },
    model::Channel,
    plausible::duration_is_plausible,
    timestamp::to_iso,
};
use crate::store::StoreResult;
use mongodb::bson::{Bson, Document};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

impl MongoStore {
    /// The `fields` (and `_id`) of every document of `channel` matching `filter`, unordered.
    pub(super) async fn rows(
        &self,
        channel: Channel,
        filter: Document,
        fields: &[&str],
    ) -> StoreResult<Vec<Document>> {
        let mut projection = Document::new();
        for field in fields {
            projection.insert(*field, 1);
        }
        self.coll(collection_of(channel))
            .find(filter)
            .projection(projection)
            .collect_all()
            .await
    }

    /// Like [`MongoStore::rows`], but streamed: each document is handed to `visit` as its batch
    /// arrives, so a scan of millions of documents never holds them all.
    pub(super) async fn each(
        &self,
        channel: Channel,
        filter: Document,
        fields: &[&str],
        mut visit: impl FnMut(&Document) + Send,
    ) -> StoreResult<()> {
        use futures::TryStreamExt;
        let mut projection = Document::new();
        for field in fields {
            projection.insert(*field, 1);
        }
        let mut cursor = self
            .coll(collection_of(channel))
            .find(filter)
            .projection(projection)
            .await
            .map_err(super::errors::map_err)?;
        while let Some(d) = cursor.try_next().await.map_err(super::errors::map_err)? {
            visit(&d);
        }
        Ok(())
    }
}

/// A date field as epoch milliseconds.
pub(super) fn millis(d: &Document, field: &str) -> Option<i64> {
    match d.get(field)? {
        Bson::DateTime(t) => Some(t.timestamp_millis()),
        _ => None,
    }
}

/// A string field (`None` when missing, null or another type).
pub(super) fn text<'a>(d: &'a Document, field: &str) -> Option<&'a str> {
    match d.get(field)? {
        Bson::String(s) => Some(s),
        _ => None,
    }
}

/// A numeric field whatever its BSON number type (Mongoose stores Int32 or Double).
pub(super) fn number(d: &Document, field: &str) -> Option<f64> {
    match d.get(field)? {
        Bson::Double(f) => Some(*f),
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        _ => None,
    }
}

/// Documents per UTC day of `timestamp`, ascending, only days with documents.
pub(super) fn days(docs: &[Document]) -> Vec<DayCount> {
    let mut by_day: BTreeMap<i64, u64> = BTreeMap::new();
    for ms in docs.iter().filter_map(|d| millis(d, "timestamp")) {
        *by_day.entry(ms.div_euclid(DAY)).or_default() += 1;
    }
    by_day
        .into_iter()
        .map(|(day, count)| DayCount {
            date: utc_day(day * DAY),
            count,
        })
        .collect()
}

/// Distinct non-missing values of a string field.
pub(super) fn distinct(docs: &[Document], field: &str) -> u64 {
    docs.iter()
        .filter_map(|d| text(d, field))
        .collect::<HashSet<_>>()
        .len() as u64
}

/// The `top` event names by count, then most recent occurrence, then name.
pub(super) fn top_events(docs: &[Document], top: usize) -> Vec<TopEvent> {
    let mut names: HashMap<&str, (u64, i64)> = HashMap::new();
    for d in docs {
        let entry = names
            .entry(text(d, "eventName").unwrap_or_default())
            .or_insert((0, i64::MIN));
        entry.0 += 1;
        entry.1 = entry.1.max(millis(d, "timestamp").unwrap_or(i64::MIN));
    }
    let mut rows: Vec<(&str, u64, i64)> = names.into_iter().map(|(k, (n, t))| (k, n, t)).collect();
    rows.sort_unstable_by(|a, b| {
        b.1.cmp(&a.1)
            .then_with(|| b.2.cmp(&a.2))
            .then_with(|| a.0.cmp(b.0))
    });
    rows.truncate(top);
    rows.into_iter()
        .map(|(name, count, last)| TopEvent {
            event_name: name.to_string(),
            count,
            most_recent_timestamp: to_iso(last),
        })
        .collect()
}

/// Distinct event names, ascending.
pub(super) fn event_names(docs: &[Document]) -> Vec<String> {
    docs.iter()
        .filter_map(|d| text(d, "eventName"))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .map(str::to_string)
        .collect()
}

/// Figures of a set of durations (ms): the plausible ones sorted, and how many were not.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Durations {
    /// Plausible durations, ascending.
    pub sorted: Vec<f64>,
    /// Durations beyond `plausible::duration_is_plausible`.
    pub implausible: u64,
}

impl Durations {
    fn add(&mut self, ms: f64) {
        if duration_is_plausible(ms) {
            self.sorted.push(ms);
        } else {
            self.implausible += 1;
        }
    }

    fn finish(mut self) -> Self {
        self.sorted.sort_unstable_by(f64::total_cmp);
        self
    }

    pub fn count(&self) -> u64 {
        self.sorted.len() as u64
    }

    pub fn avg(&self) -> Option<f64> {
        (!self.sorted.is_empty())
            .then(|| self.sorted.iter().sum::<f64>() / self.sorted.len() as f64)
    }

    pub fn max(&self) -> Option<f64> {
        self.sorted.last().copied()
    }

    pub fn at(&self, p: f64) -> Option<f64> {
        percentile(&self.sorted, p)
    }
}

/// The `durationMs` of `docs` (those that carry a number).
pub(super) fn durations(docs: &[Document]) -> Durations {
    let mut out = Durations::default();
    for ms in docs.iter().filter_map(|d| number(d, "durationMs")) {
        out.add(ms);
    }
    out.finish()
}

/// Timed events: per name, the plausible durations' count, average, maximum, p50 and p95;
/// names without a plausible duration are left out. Ordered by p95, average, maximum
/// (descending), then name; `top` rows. Also how many durations were implausible.
pub(super) fn timed_events(docs: &[Document], top: usize) -> (Vec<TimedEvent>, u64) {
    let mut by_name: HashMap<&str, Durations> = HashMap::new();
    for d in docs {
        if let Some(ms) = number(d, "durationMs") {
            by_name
                .entry(text(d, "eventName").unwrap_or_default())
                .or_default()
                .add(ms);
        }
    }
    let implausible = by_name.values().map(|d| d.implausible).sum();
    let mut rows: Vec<TimedEvent> = by_name
        .into_iter()
        .map(|(name, d)| (name, d.finish()))
        .filter(|(_, d)| d.count() > 0)
        .map(|(name, d)| TimedEvent {
            event_name: name.to_string(),
            count: d.count(),
            avg_ms: d.avg().unwrap_or(0.0),
            max_ms: d.max().unwrap_or(0.0),
            p50_ms: d.at(0.5),
            p95_ms: d.at(0.95),
        })
        .collect();
    let key = |v: Option<f64>| v.unwrap_or(f64::NEG_INFINITY);
    rows.sort_unstable_by(|a, b| {
        key(b.p95_ms)
            .total_cmp(&key(a.p95_ms))
            .then_with(|| b.avg_ms.total_cmp(&a.avg_ms))
            .then_with(|| b.max_ms.total_cmp(&a.max_ms))
            .then_with(|| a.event_name.cmp(&b.event_name))
    });
    rows.truncate(top);
    (rows, implausible)
}

/// The top-level keys of the events' `properties` (objects only), ascending, each with up to
/// [`SCHEMA_SAMPLES`] distinct values (distinct by JSON type and value: `"3"` is not `3`),
/// most recently seen first, ties by the value's JSON text.
pub(super) fn property_schema(docs: &[Document]) -> Vec<PropertyKey> {
    // key → JSON text of a value → (value, last seen)
    let mut keys: BTreeMap<String, HashMap<String, (Value, i64)>> = BTreeMap::new();
    for d in docs {
        let Some(Bson::Document(properties)) = d.get("properties") else {
            continue;
        };
        let at = millis(d, "timestamp").unwrap_or(i64::MIN);
        for (key, value) in properties {
            let value = bson_to_json(value);
            let text = value.to_string();
            let seen = keys
                .entry(key.clone())
                .or_default()
                .entry(text)
                .or_insert((value, at));
            seen.1 = seen.1.max(at);
        }
    }
    keys.into_iter()
        .map(|(key, values)| {
            let mut values: Vec<(String, (Value, i64))> = values.into_iter().collect();
            values.sort_unstable_by(|a, b| b.1.1.cmp(&a.1.1).then_with(|| a.0.cmp(&b.0)));
            PropertyKey {
                key,
                sample_values: values
                    .into_iter()
                    .take(SCHEMA_SAMPLES)
                    .map(|(_, (value, _))| value)
                    .collect(),
            }
        })
        .collect()
}

/// Errors grouped by `fingerprint` (documents without one are left out): each group's count and
/// its earliest occurrence (the first stored on equal times: smallest `_id`), which describes
/// it. Ordered by count (descending), then fingerprint; `top` groups.
pub(super) fn error_groups(docs: &[Document], top: usize) -> Vec<ErrorGroup> {
    let order = |d: &Document| {
        (
            millis(d, "timestamp").unwrap_or(i64::MAX),
            d.get_object_id("_id")
                .map(|o| o.bytes())
                .unwrap_or([0xff; 12]),
        )
    };
    let mut groups: HashMap<&str, (u64, &Document)> = HashMap::new();
    for d in docs {
        let Some(fingerprint) = text(d, "fingerprint") else {
            continue;
        };
        let group = groups.entry(fingerprint).or_insert((0, d));
        group.0 += 1;
        if order(d) < order(group.1) {
            group.1 = d;
        }
    }
    let mut rows: Vec<(&str, u64, &Document)> =
        groups.into_iter().map(|(f, (n, d))| (f, n, d)).collect();
    rows.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    rows.truncate(top);
    let owned = |d: &Document, field: &str| text(d, field).map(str::to_string);
    rows.into_iter()
        .map(|(fingerprint, count, first)| ErrorGroup {
            fingerprint: fingerprint.to_string(),
            message: owned(first, "message").unwrap_or_default(),
            browser: owned(first, "browser"),
            os: owned(first, "os"),
            os_version: owned(first, "osVersion"),
            device_type: owned(first, "deviceType"),
            first_seen: millis(first, "timestamp").map(to_iso).unwrap_or_default(),
            count,
        })
        .collect()
}

/// The stored page-view field behind each breakdown dimension.
pub(super) const BREAKDOWN_FIELDS: [(Dimension, &str); 8] = [
    (Dimension::Referrer, "referrer"),
    (Dimension::UtmSource, "utmSource"),
    (Dimension::UtmMedium, "utmMedium"),
    (Dimension::UtmCampaign, "utmCampaign"),
    (Dimension::Country, "country"),
    (Dimension::Browser, "browser"),
    (Dimension::Os, "os"),
    (Dimension::DeviceType, "deviceType"),
];

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::{DateTime, doc, oid::ObjectId};

    const T: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    fn at(ms: i64) -> Bson {
        Bson::DateTime(DateTime::from_millis(ms))
    }

    #[test]
    fn days_are_utc_and_ascending() {
        let docs = [T + DAY, T, T + 2 * 3_600_000, T + DAY].map(|ms| doc! {"timestamp": at(ms)});
        let got = days(&docs);
        let expected = [("2023-11-14", 1), ("2023-11-15", 3)];
        assert_eq!(
            got.iter()
                .map(|d| (d.date.as_str(), d.count))
                .collect::<Vec<_>>(),
            expected
        );
    }

    #[test]
    fn top_lists_break_ties_by_key() {
        let docs = [
            doc! {"eventName": "old", "timestamp": at(T)},
            doc! {"eventName": "new", "timestamp": at(T + 5)},
            doc! {"eventName": "b", "timestamp": at(T)},
            doc! {"eventName": "a", "timestamp": at(T)},
        ];
        let names: Vec<String> = top_events(&docs, 10)
            .into_iter()
            .map(|e| e.event_name)
            .collect();
        assert_eq!(names, ["new", "a", "b", "old"]);
        assert_eq!(event_names(&docs), ["a", "b", "new", "old"]);
    }

    #[test]
    fn timed_events_use_lower_nearest_rank_and_skip_implausible_durations() {
        let mut docs: Vec<Document> = (1..=10)
            .map(|i| doc! {"eventName": "load", "durationMs": f64::from(i) * 10.0})
            .collect();
        docs.push(doc! {"eventName": "load", "durationMs": 1e308});
        docs.push(doc! {"eventName": "tiny", "durationMs": 5_i32});
        docs.push(doc! {"eventName": "untimed"});
        docs.push(doc! {"eventName": "broken", "durationMs": 1e300});
        let (rows, implausible) = timed_events(&docs, 10);
        assert_eq!(implausible, 2);
        assert_eq!(
            rows.len(),
            2,
            "names without a plausible duration are left out"
        );
        let load = &rows[0];
        assert_eq!(load.event_name, "load");
        assert_eq!((load.count, load.avg_ms, load.max_ms), (10, 55.0, 100.0));
        assert_eq!((load.p50_ms, load.p95_ms), (Some(50.0), Some(90.0)));
        assert_eq!(rows[1].p95_ms, Some(5.0));
        let all = durations(&docs);
        assert_eq!((all.count(), all.implausible), (11, 2));
        assert_eq!(all.at(0.5), Some(50.0));
        assert_eq!(durations(&[]).avg(), None);
    }

    #[test]
    fn property_schema_keeps_distinct_typed_values_newest_first() {
        let docs = [
            doc! {"timestamp": at(T), "properties": {"plan": "pro", "n": 3}},
            doc! {"timestamp": at(T + 1), "properties": {"plan": "free", "n": "3"}},
            doc! {"timestamp": at(T + 2), "properties": {"plan": "pro"}},
            doc! {"timestamp": at(T + 3), "properties": "not an object"},
        ];
        let schema = property_schema(&docs);
        assert_eq!(schema.len(), 2);
        assert_eq!(schema[0].key, "n");
        assert_eq!(
            schema[0].sample_values,
            vec![Value::from("3"), Value::from(3)]
        );
        assert_eq!(schema[1].key, "plan");
        assert_eq!(
            schema[1].sample_values,
            vec![Value::from("pro"), Value::from("free")]
        );
    }

    #[test]
    fn error_groups_are_described_by_their_first_occurrence() {
        let first = ObjectId::from_bytes([1; 12]);
        let later = ObjectId::from_bytes([2; 12]);
        let docs = [
            doc! {"_id": later, "fingerprint": "f1", "message": "second", "timestamp": at(T)},
            doc! {"_id": first, "fingerprint": "f1", "message": "first", "browser": "Chrome", "timestamp": at(T)},
            doc! {"_id": ObjectId::from_bytes([0; 12]), "fingerprint": "f1", "message": "newest", "timestamp": at(T + 9)},
            doc! {"fingerprint": "f0", "message": "other", "timestamp": at(T)},
            doc! {"message": "no fingerprint", "timestamp": at(T)},
        ];
        let groups = error_groups(&docs, 10);
        assert_eq!(groups.len(), 2);
        assert_eq!((groups[0].fingerprint.as_str(), groups[0].count), ("f1", 3));
        assert_eq!(groups[0].message, "first");
        assert_eq!(groups[0].browser.as_deref(), Some("Chrome"));
        assert_eq!(groups[0].first_seen, to_iso(T));
        assert_eq!(distinct(&docs, "fingerprint"), 2);
        assert_eq!(error_groups(&docs, 1).len(), 1);
    }
}
