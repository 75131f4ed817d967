//! Exact rollup aggregates: what a span of analytics documents folds into (per-day counts, top
//! keys, exact unique visitors as a bitmap of dense client ids, value histograms for exact
//! percentiles, compensated sums for averages), how spans merge without losing exactness, and
//! the byte encoding a store keeps them in. Pure: no IO, no SQL, no BSON; a backend scans raw
//! rows into [`Aggs`] and stores the encoded blobs.

use super::plan::DAY;
use crate::domain::{
    analytics::{Dimension, METRICS, SCHEMA_SAMPLES, url_has_prefix},
    model::Channel,
    plausible::{duration_is_plausible, vital_is_plausible},
};
use crate::store::{StoreError, StoreResult};
use roaring::RoaringBitmap;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Encoding of `rollups.data`; rows of another format are rebuilt on read. 2: web-vital days
/// count implausible values (`domain::plausible`) and leave them out of sums and histograms.
/// 3: the `Pages` part (visitors per page). 4: web-vital days count complete documents.
/// 5: the `EventNames` and `ErrorGroups` parts. 6: the `Segments` part. 7: the
/// `EventProperties` part. 8: the `Visits` part. 9: each segment of the `Segments` part also
/// carries its page views' breakdowns and visits (the dashboard under one segment filter).
/// 10: the `ErrorSignatures` part. Older rows are rebuilt on first read, as for every change.
pub(crate) const FMT: i64 = 10;

/// What a rollup row holds; one row per part so each summary decodes only what it needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Part {
    Pageviews,
    Events,
    Errors,
    Performance,
    Breakdowns,
    /// Visitors of each page (the page-views report's unique visitors per page).
    Pages,
    /// Per event name: days, newest occurrence, durations (the events report and event detail).
    EventNames,
    /// Per error fingerprint: days, first and last occurrence (the errors report and detail).
    ErrorGroups,
    /// Per value of each [`SEGMENT_DIMS`] dimension: the `Pageviews`, `Pages`, `Breakdowns`
    /// and `Visits` figures of the page views carrying it (the page-views report and the
    /// dashboard under one segment filter).
    Segments,
    /// Per event name and top-level property key: the [`SCHEMA_SAMPLES`] most recently seen
    /// distinct values (the event detail's property schema).
    EventProperties,
    /// The visits ([`Visits`]): totals of those complete within the bucket, and per `sessionId`
    /// the first and last page view and number of page views of those that may continue in a
    /// neighbouring bucket (visits, bounces, durations, entry and exit pages).
    Visits,
    /// Per error signature (`domain::error_signature`): days, first and last occurrence, top
    /// pages and browsers, affected visitors (the errors page's groups).
    ErrorSignatures,
}

/// The dimensions (indices into `Dimension::ALL`) whose raw stored values the `Segments` part
/// keeps figures for: every breakdown but the referrer (whole URLs: too many values).
pub(crate) const SEGMENT_DIMS: [usize; 7] = [1, 2, 3, 4, 5, 6, 7];

/// The parts each segment of the `Segments` part carries, in their stored order.
pub(crate) const SEGMENT_PARTS: [Part; 4] =
    [Part::Pageviews, Part::Pages, Part::Breakdowns, Part::Visits];

impl Part {
    pub(crate) const ALL: [Part; 12] = [
        Part::Pageviews,
        Part::Events,
        Part::Errors,
        Part::Performance,
        Part::Breakdowns,
        Part::Pages,
        Part::EventNames,
        Part::ErrorGroups,
        Part::Segments,
        Part::EventProperties,
        Part::Visits,
        Part::ErrorSignatures,
    ];

    pub(crate) fn code(self) -> i64 {
        self as i64
    }

    /// The channel whose documents the part is folded from.
    pub(crate) fn channel(self) -> Channel {
        match self {
            Part::Pageviews | Part::Breakdowns | Part::Pages | Part::Segments | Part::Visits => {
                Channel::Pageviews
            }
            Part::Events | Part::EventNames | Part::EventProperties => Channel::Events,
            Part::Errors | Part::ErrorGroups | Part::ErrorSignatures => Channel::Errors,
            Part::Performance => Channel::Performance,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Aggregates
// ---------------------------------------------------------------------------------------------

/// A float sum with Neumaier compensation (as SQLite's own `SUM`/`AVG`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sum {
    s: f64,
    c: f64,
}

impl Sum {
    pub(crate) fn add(&mut self, x: f64) {
        let t = self.s + x;
        if self.s.abs() >= x.abs() {
            self.c += (self.s - t) + x;
        } else {
            self.c += (x - t) + self.s;
        }
        self.s = t;
    }

    pub(crate) fn merge(&mut self, o: Sum) {
        self.add(o.s);
        self.add(o.c);
    }

    pub(crate) fn value(self) -> f64 {
        self.s + self.c
    }
}

/// Web vitals of one UTC day: rows, and per metric the count and sum of plausible values, and
/// the values left out as implausible.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct PerfDay {
    pub rows: u64,
    /// Documents carrying all of LCP, CLS, FID and TTFB (whatever their values).
    pub complete: u64,
    pub n: [u64; 5],
    pub sum: [Sum; 5],
    pub implausible: u64,
}

/// Sorted (ordered key of the value, count) pairs: an exact histogram.
pub(crate) type Hist = Vec<(u64, u64)>;

/// A key whose unsigned order is the numeric order of the value (−0 counts as 0).
pub(crate) fn ord_key(v: f64) -> u64 {
    let v = if v == 0.0 { 0.0 } else { v };
    let b = v.to_bits();
    if b >> 63 == 1 { !b } else { b | (1 << 63) }
}

pub(crate) fn from_ord_key(k: u64) -> f64 {
    if k >> 63 == 1 {
        f64::from_bits(k & !(1 << 63))
    } else {
        f64::from_bits(!k)
    }
}

/// The visitors of one page: dense client ids, whether a view without a client id was seen, and
/// client ids not in the dictionary yet (raw scans only).
#[derive(Debug, Default, Clone)]
pub(crate) struct PageVisitors {
    pub clients: RoaringBitmap,
    pub anon: bool,
    pub unnamed: HashSet<String>,
}

impl PageVisitors {
    fn add(&mut self, visitor: Visitor<'_>) {
        match visitor {
            Visitor::Anonymous => self.anon = true,
            Visitor::Dense(id) => {
                self.clients.insert(id);
            }
            Visitor::Unnamed(c) => {
                if !self.unnamed.contains(c) {
                    self.unnamed.insert(c.to_string());
                }
            }
        }
    }

    fn merge(&mut self, o: PageVisitors) {
        self.clients |= o.clients;
        self.anon |= o.anon;
        self.unnamed.extend(o.unnamed);
    }

    /// Distinct visitors (views without a client id count as one visitor together).
    pub(crate) fn count(&self) -> u64 {
        self.clients.len() + self.unnamed.len() as u64 + u64::from(self.anon)
    }
}

/// One event name over a span: occurrences per UTC day, the newest one, and its plausible
/// durations (an exact histogram per merged span, their compensated sum) and implausible ones.
#[derive(Debug, Default, Clone)]
pub(crate) struct NameFigures {
    pub days: BTreeMap<i64, u64>,
    pub last: i64,
    pub durations: Vec<Hist>,
    pub duration_sum: Sum,
    pub implausible: u64,
}

impl NameFigures {
    pub(crate) fn count(&self) -> u64 {
        self.days.values().sum()
    }

    /// Number of plausible durations.
    pub(crate) fn timed(&self) -> u64 {
        self.durations.iter().flatten().map(|e| e.1).sum()
    }

    fn merge(&mut self, o: NameFigures) {
        add_days(&mut self.days, o.days);
        self.last = self.last.max(o.last);
        self.durations
            .extend(o.durations.into_iter().filter(|h| !h.is_empty()));
        self.duration_sum.merge(o.duration_sum);
        self.implausible += o.implausible;
    }
}

/// Longest time between two page views of one visit: the SDK's own inactivity rule for its
/// `sessionId` (a session id whose page views are further apart makes several visits).
pub(crate) const VISIT_GAP: i64 = 30 * 60_000;

/// One visit (page views sharing a `sessionId`, none more than [`VISIT_GAP`] after the one
/// before) within a span: its first and its last page view (time and URL; on equal times the
/// smaller URL is first and the larger last, so the order documents arrive in never matters)
/// and its number of page views.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VisitFigures {
    pub first: (i64, String),
    pub last: (i64, String),
    pub views: u64,
}

impl VisitFigures {
    fn of(ts: i64, url: &str) -> Self {
        VisitFigures {
            first: (ts, url.to_string()),
            last: (ts, url.to_string()),
            views: 1,
        }
    }

    fn merge(&mut self, o: VisitFigures) {
        self.views += o.views;
        if o.first < self.first {
            self.first = o.first;
        }
        if o.last > self.last {
            self.last = o.last;
        }
    }

    /// Milliseconds from the first to the last page view (0 for a single page view).
    pub(crate) fn duration_ms(&self) -> i64 {
        self.last.0 - self.first.0
    }
}

/// Totals of complete visits: how many, their bounces (one page view), page views and summed
/// durations, and how many entered and left by each page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct VisitTotals {
    pub visits: u64,
    pub bounces: u64,
    pub views: u64,
    pub duration_ms: i64,
    pub entries: HashMap<String, u64>,
    pub exits: HashMap<String, u64>,
}

impl VisitTotals {
    fn add(&mut self, v: &VisitFigures) {
        self.visits += 1;
        self.bounces += u64::from(v.views == 1);
        self.views += v.views;
        self.duration_ms += v.duration_ms();
        bump(&mut self.entries, &v.first.1);
        bump(&mut self.exits, &v.last.1);
    }

    fn merge(&mut self, o: VisitTotals) {
        self.visits += o.visits;
        self.bounces += o.bounces;
        self.views += o.views;
        self.duration_ms += o.duration_ms;
        add_counts(&mut self.entries, o.entries);
        add_counts(&mut self.exits, o.exits);
    }
}

/// The visits of a span. A visit at least [`VISIT_GAP`] away from both ends of the span it was
/// built in cannot take in a page view from outside it, so it is `closed`: kept as totals only.
/// The others stay `open` with their figures, per session in time order, and merging spans
/// joins those of one session that are at most [`VISIT_GAP`] apart. Both steps are exact, so
/// any spans merge to the visits of one fold of their page views; a day keeps only the few
/// visits near its midnights open, which keeps a month's read small.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Visits {
    pub closed: VisitTotals,
    pub open: HashMap<String, Vec<VisitFigures>>,
}

impl Visits {
    /// Joins a session's visits (any order) that are at most [`VISIT_GAP`] apart; the result is
    /// in time order.
    fn join(list: &mut Vec<VisitFigures>) {
        if list.len() < 2 {
            return;
        }
        list.sort_unstable_by(|a, b| a.first.cmp(&b.first));
        let mut out: Vec<VisitFigures> = Vec::with_capacity(list.len());
        for v in list.drain(..) {
            match out.last_mut() {
                Some(prev) if v.first.0 - prev.last.0 <= VISIT_GAP => prev.merge(v),
                _ => out.push(v),
            }
        }
        *list = out;
    }

    fn merge(&mut self, o: Visits) {
        self.closed.merge(o.closed);
        merge_map(&mut self.open, o.open, |into, mut from| {
            into.append(&mut from);
            Visits::join(into);
        });
    }

    /// Closes the open visits that lie at least [`VISIT_GAP`] inside `[from, to]` (inclusive
    /// ms), the span these figures are all of (a bucket being stored).
    pub(crate) fn close(&mut self, from: i64, to: i64) {
        let closed = &mut self.closed;
        self.open.retain(|_, list| {
            list.retain(|v| {
                let inside = v.first.0 - from >= VISIT_GAP && to - v.last.0 >= VISIT_GAP;
                if inside {
                    closed.add(v);
                }
                !inside
            });
            !list.is_empty()
        });
    }

    /// The totals of every visit, closed and open.
    pub(crate) fn totals(&self) -> VisitTotals {
        let mut t = self.closed.clone();
        for v in self.open.values().flatten() {
            t.add(v);
        }
        t
    }

    /// Every open visit with its session id.
    pub(crate) fn open_visits(&self) -> impl Iterator<Item = (&String, &VisitFigures)> {
        self.open
            .iter()
            .flat_map(|(s, l)| l.iter().map(move |v| (s, v)))
    }
}

/// One raw error as a scan hands it over: its fingerprint and what describes a group.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct ErrorRow<'a> {
    pub fingerprint: Option<&'a str>,
    /// Storage order among errors of equal time (SQLite's rowid, MongoDB's `_id`), compared
    /// bytewise: the first stored describes its group.
    pub order: [u8; 12],
    pub message: Option<&'a str>,
    pub browser: Option<&'a str>,
    pub os: Option<&'a str>,
    pub os_version: Option<&'a str>,
    pub device_type: Option<&'a str>,
    /// `errorType`, the stack trace, the page (`context.url`) and the visitor (`userId`, else
    /// `clientId`): what the `ErrorSignatures` part reads.
    pub error_type: Option<&'a str>,
    pub stack: Option<&'a str>,
    pub page: Option<&'a str>,
    pub visitor: Option<&'a str>,
}

/// The earliest occurrence of a fingerprint (owned [`ErrorRow`] fields with its time).
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct FirstError {
    pub ts: i64,
    pub order: [u8; 12],
    pub message: String,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub device_type: Option<String>,
}

impl FirstError {
    fn of(ts: i64, e: &ErrorRow<'_>) -> Self {
        let owned = |v: Option<&str>| v.map(str::to_string);
        FirstError {
            ts,
            order: e.order,
            message: e.message.unwrap_or_default().to_string(),
            browser: owned(e.browser),
            os: owned(e.os),
            os_version: owned(e.os_version),
            device_type: owned(e.device_type),
        }
    }

    fn precedes(&self, other: &FirstError) -> bool {
        (self.ts, self.order) < (other.ts, other.order)
    }
}

/// One fingerprint over a span: occurrences per UTC day, the earliest and the newest.
#[derive(Debug, Clone)]
pub(crate) struct GroupFigures {
    pub days: BTreeMap<i64, u64>,
    pub first: FirstError,
    pub last: i64,
}

impl GroupFigures {
    pub(crate) fn count(&self) -> u64 {
        self.days.values().sum()
    }

    fn merge(&mut self, o: GroupFigures) {
        add_days(&mut self.days, o.days);
        if o.first.precedes(&self.first) {
            self.first = o.first;
        }
        self.last = self.last.max(o.last);
    }
}

/// Pages and browsers kept per error signature and bucket (the most frequent; ties by name).
pub(crate) const SIGNATURE_TOP_KEYS: usize = 20;
/// Distinct visitors counted per error signature; beyond, the count shows as "at least".
pub(crate) const SIGNATURE_VISITORS_CAP: usize = 1000;

/// One error signature over a span: occurrences per day, the earliest occurrence (its
/// fingerprint and message represent the group), the newest time, the most frequent pages and
/// browsers, and the affected visitors up to [`SIGNATURE_VISITORS_CAP`].
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct SignatureFigures {
    pub days: BTreeMap<i64, u64>,
    pub first: FirstError,
    pub fingerprint: String,
    pub error_type: Option<String>,
    pub pattern: String,
    pub frame: Option<String>,
    pub last: i64,
    pub pages: HashMap<String, u64>,
    pub browsers: HashMap<String, u64>,
    pub visitors: HashSet<String>,
    /// True when more visitors were seen than are kept.
    pub visitors_more: bool,
}

impl SignatureFigures {
    pub(crate) fn count(&self) -> u64 {
        self.days.values().sum()
    }

    fn merge(&mut self, o: SignatureFigures) {
        add_days(&mut self.days, o.days);
        if o.first.precedes(&self.first) {
            self.first = o.first;
            self.fingerprint = o.fingerprint;
        }
        self.last = self.last.max(o.last);
        add_counts(&mut self.pages, o.pages);
        add_counts(&mut self.browsers, o.browsers);
        self.visitors_more |= o.visitors_more;
        self.visitors.extend(o.visitors);
        self.bound();
    }

    /// Keeps the most frequent pages and browsers and at most the visitors cap.
    fn bound(&mut self) {
        for m in [&mut self.pages, &mut self.browsers] {
            if m.len() > SIGNATURE_TOP_KEYS {
                let mut v: Vec<_> = m.drain().collect();
                v.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                v.truncate(SIGNATURE_TOP_KEYS);
                m.extend(v);
            }
        }
        if self.visitors.len() > SIGNATURE_VISITORS_CAP {
            let mut v: Vec<_> = self.visitors.drain().collect();
            v.sort_unstable();
            v.truncate(SIGNATURE_VISITORS_CAP);
            self.visitors.extend(v);
            self.visitors_more = true;
        }
    }
}

/// The path of a page URL (origin, query and fragment dropped), as the errors page lists it.
fn page_path(url: &str) -> String {
    let cut = url.find(['?', '#']).map_or(url, |i| &url[..i]);
    match cut.find("://") {
        Some(i) => cut[i + 3..]
            .find('/')
            .map_or("/".to_string(), |j| cut[i + 3 + j..].to_string()),
        None => cut.to_string(),
    }
}

/// Top-level property keys of one event name's events with their distinct values (by JSON
/// text, so `"3"` is not `3`) and when each was last seen. A stored bucket keeps per key only
/// the [`SCHEMA_SAMPLES`] most recently seen values ([`PropertySamples::top`]); merging such
/// buckets is still exact for the schema: a value among the most recent of a merged span is
/// among the most recent of the bucket where it was seen last.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct PropertySamples(pub BTreeMap<String, HashMap<String, i64>>);

impl PropertySamples {
    fn add(&mut self, ts: i64, properties: &serde_json::Map<String, Value>) {
        for (key, value) in properties {
            let values = match self.0.get_mut(key) {
                Some(v) => v,
                None => self.0.entry(key.clone()).or_default(),
            };
            let seen = values.entry(value.to_string()).or_insert(ts);
            *seen = (*seen).max(ts);
            bound(values);
        }
    }

    fn merge(&mut self, o: PropertySamples) {
        for (key, values) in o.0 {
            match self.0.get_mut(&key) {
                Some(into) => {
                    merge_map(into, values, |a, b| *a = (*a).max(b));
                    bound(into);
                }
                None => {
                    self.0.insert(key, values);
                }
            }
        }
    }

    /// Per key (ascending), its `n` most recently seen values as JSON text with when, newest
    /// first, ties by text.
    fn top(&self, n: usize) -> impl Iterator<Item = (&String, Vec<(&String, i64)>)> {
        self.0
            .iter()
            .map(move |(key, values)| (key, newest(values, n)))
    }

    /// Per key (ascending), up to [`SCHEMA_SAMPLES`] values, most recently seen first, ties by
    /// JSON text.
    pub(crate) fn schema(&self) -> Vec<(String, Vec<Value>)> {
        self.top(SCHEMA_SAMPLES)
            .map(|(key, values)| {
                let samples = values
                    .into_iter()
                    .filter_map(|(text, _)| serde_json::from_str(text).ok())
                    .collect();
                (key.clone(), samples)
            })
            .collect()
    }
}

/// The `n` most recently seen of `values` (JSON text → when) with when, newest first, ties by
/// text: the one order of a property's samples, in memory, in storage and on screen.
fn newest(values: &HashMap<String, i64>, n: usize) -> Vec<(&String, i64)> {
    let mut all: Vec<(&String, i64)> = values.iter().map(|(t, ts)| (t, *ts)).collect();
    all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    all.truncate(n);
    all
}

/// Keeps a key's values in memory to the [`SCHEMA_SAMPLES`] newest once it holds more than four
/// times that. Exact: a value outranked by that many others stays outranked whatever comes
/// later (it can only come back with a newer time, which is then its own), so the schema is
/// unchanged and memory bounded however many distinct values a property has (order ids,
/// search terms).
fn bound(values: &mut HashMap<String, i64>) {
    if values.len() > 4 * SCHEMA_SAMPLES {
        *values = newest(values, SCHEMA_SAMPLES)
            .into_iter()
            .map(|(t, ts)| (t.clone(), ts))
            .collect();
    }
}

/// Figures of some span for the parts that were asked for; merging spans is exact.
#[derive(Debug, Default, Clone)]
pub(crate) struct Aggs {
    // Page views: per day, without clientId, per URL, client ids (dense) and client ids not in
    // the dictionary yet (raw edges only).
    pub pv_days: BTreeMap<i64, u64>,
    pub pv_anon: u64,
    pub urls: HashMap<String, u64>,
    pub clients: RoaringBitmap,
    pub unnamed: HashSet<String>,
    pub ev_days: BTreeMap<i64, u64>,
    pub names: HashMap<String, u64>,
    pub er_days: BTreeMap<i64, u64>,
    pub fingerprints: HashMap<String, u64>,
    pub perf_days: BTreeMap<i64, PerfDay>,
    /// Per metric of `METRICS`: one histogram per merged span.
    pub hists: [Vec<Hist>; 5],
    /// Per `Dimension::ALL`: value → page views.
    pub dims: [HashMap<String, u64>; 8],
    /// Per URL: its visitors.
    pub pages: HashMap<String, PageVisitors>,
    /// Per event name.
    pub event_names: HashMap<String, NameFigures>,
    /// Per error fingerprint (errors without one are in no group).
    pub error_groups: HashMap<String, GroupFigures>,
    /// Per error signature key.
    pub error_signatures: HashMap<String, SignatureFigures>,
    /// Per event name: its properties' most recently seen values.
    pub event_properties: HashMap<String, PropertySamples>,
    /// Per `Dimension::ALL` index (only [`SEGMENT_DIMS`]) and raw value: the page views'
    /// `Pageviews`, `Pages`, `Breakdowns` and `Visits` figures.
    pub segments: [HashMap<String, Aggs>; 8],
    /// Per `sessionId` (page views without one are in no visit).
    pub visits: Visits,
}

pub(crate) fn add_counts<K: Eq + std::hash::Hash>(
    into: &mut HashMap<K, u64>,
    from: HashMap<K, u64>,
) {
    merge_map(into, from, |n, m| *n += m);
}

/// Moves the entries of `from` into `into`, combining the values of keys in both with `merge`.
fn merge_map<K: Eq + std::hash::Hash, V>(
    into: &mut HashMap<K, V>,
    from: HashMap<K, V>,
    merge: impl Fn(&mut V, V),
) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (k, v) in from {
        match into.entry(k) {
            std::collections::hash_map::Entry::Occupied(mut e) => merge(e.get_mut(), v),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
}

pub(crate) fn add_days(into: &mut BTreeMap<i64, u64>, from: BTreeMap<i64, u64>) {
    for (k, n) in from {
        *into.entry(k).or_default() += n;
    }
}

pub(crate) fn bump(map: &mut HashMap<String, u64>, key: &str) {
    if let Some(n) = map.get_mut(key) {
        *n += 1;
    } else {
        map.insert(key.to_string(), 1);
    }
}

impl Aggs {
    pub(crate) fn merge(&mut self, o: Aggs) {
        add_days(&mut self.pv_days, o.pv_days);
        self.pv_anon += o.pv_anon;
        add_counts(&mut self.urls, o.urls);
        self.clients |= o.clients;
        self.unnamed.extend(o.unnamed);
        add_days(&mut self.ev_days, o.ev_days);
        add_counts(&mut self.names, o.names);
        add_days(&mut self.er_days, o.er_days);
        add_counts(&mut self.fingerprints, o.fingerprints);
        for (day, p) in o.perf_days {
            let into = self.perf_days.entry(day).or_default();
            into.rows += p.rows;
            into.complete += p.complete;
            into.implausible += p.implausible;
            for i in 0..5 {
                into.n[i] += p.n[i];
                into.sum[i].merge(p.sum[i]);
            }
        }
        for (into, from) in self.hists.iter_mut().zip(o.hists) {
            into.extend(from.into_iter().filter(|h| !h.is_empty()));
        }
        for (into, from) in self.dims.iter_mut().zip(o.dims) {
            add_counts(into, from);
        }
        merge_map(&mut self.pages, o.pages, PageVisitors::merge);
        merge_map(&mut self.event_names, o.event_names, NameFigures::merge);
        merge_map(&mut self.error_groups, o.error_groups, GroupFigures::merge);
        merge_map(
            &mut self.error_signatures,
            o.error_signatures,
            SignatureFigures::merge,
        );
        for (into, from) in self.segments.iter_mut().zip(o.segments) {
            merge_map(into, from, Aggs::merge);
        }
        merge_map(
            &mut self.event_properties,
            o.event_properties,
            PropertySamples::merge,
        );
        self.visits.merge(o.visits);
    }

    /// True when no document was folded in.
    pub(crate) fn is_empty(&self) -> bool {
        self.pv_days.is_empty()
            && self.ev_days.is_empty()
            && self.er_days.is_empty()
            && self.perf_days.is_empty()
    }

    /// Restricts the `Pageviews` and `Pages` figures of one span within UTC day `day` to the
    /// page views of URLs starting with `prefix` (the page-views report's URL filter, exact and
    /// case-sensitive like the stores' query): their counts, their day, and their visitors as the
    /// union of the kept pages' visitors.
    pub(crate) fn keep_urls(&mut self, prefix: &str, day: i64) {
        self.urls.retain(|url, _| url_has_prefix(url, prefix));
        self.pages.retain(|url, _| url_has_prefix(url, prefix));
        let views: u64 = self.urls.values().sum();
        self.pv_days = if views > 0 {
            BTreeMap::from([(day, views)])
        } else {
            BTreeMap::new()
        };
        let (mut clients, mut unnamed, mut anon) = (RoaringBitmap::new(), HashSet::new(), false);
        for page in self.pages.values() {
            clients |= &page.clients;
            unnamed.extend(page.unnamed.iter().cloned());
            anon |= page.anon;
        }
        (self.clients, self.unnamed, self.pv_anon) = (clients, unnamed, u64::from(anon));
    }

    /// Closes the visits lying well inside `[from, to]` ([`Visits::close`]), the span these
    /// figures are all of, and those of every segment.
    pub(crate) fn close_visits(&mut self, from: i64, to: i64) {
        self.visits.close(from, to);
        for sub in self.segments.iter_mut().flat_map(HashMap::values_mut) {
            sub.close_visits(from, to);
        }
    }

    /// Documents folded in, of every channel.
    pub(crate) fn documents(&self) -> u64 {
        let days = |d: &BTreeMap<i64, u64>| d.values().sum::<u64>();
        days(&self.pv_days)
            + days(&self.ev_days)
            + days(&self.er_days)
            + self.perf_days.values().map(|p| p.rows).sum::<u64>()
    }

    /// Every client id counted by name (not in the dictionary when scanned).
    pub(crate) fn unnamed_clients(&self) -> Vec<String> {
        let mut all: HashSet<&String> = HashSet::new();
        self.each_unnamed(&mut |c| {
            all.insert(c);
        });
        all.into_iter().cloned().collect()
    }

    fn each_unnamed<'a>(&'a self, f: &mut impl FnMut(&'a String)) {
        self.unnamed.iter().for_each(&mut *f);
        for p in self.pages.values() {
            p.unnamed.iter().for_each(&mut *f);
        }
        for sub in self.segments.iter().flat_map(HashMap::values) {
            sub.each_unnamed(f);
        }
    }

    /// Replaces client ids counted by name with their dense ids, where `ids` has one.
    pub(crate) fn resolve(&mut self, ids: &HashMap<String, u32>) {
        let resolve = |clients: &mut RoaringBitmap, unnamed: &mut HashSet<String>| {
            unnamed.retain(|c| match ids.get(c) {
                Some(id) => {
                    clients.insert(*id);
                    false
                }
                None => true,
            });
        };
        resolve(&mut self.clients, &mut self.unnamed);
        for p in self.pages.values_mut() {
            resolve(&mut p.clients, &mut p.unnamed);
        }
        for sub in self.segments.iter_mut().flat_map(HashMap::values_mut) {
            sub.resolve(ids);
        }
    }

    /// One page view's `Pageviews` figures (its day, or its [`Folder::with_unit`] bucket; URL,
    /// visitor).
    fn count_view(&mut self, bucket: i64, url: &str, visitor: Visitor<'_>) {
        *self.pv_days.entry(bucket).or_default() += 1;
        bump(&mut self.urls, url);
        match visitor {
            Visitor::Anonymous => self.pv_anon += 1,
            Visitor::Dense(id) => {
                self.clients.insert(id);
            }
            Visitor::Unnamed(c) => {
                if !self.unnamed.contains(c) {
                    self.unnamed.insert(c.to_string());
                }
            }
        }
    }

    /// One page view's `Pages` figure (its page's visitor).
    fn count_page_visitor(&mut self, url: &str, visitor: Visitor<'_>) {
        match self.pages.get_mut(url) {
            Some(p) => p.add(visitor),
            None => {
                let mut p = PageVisitors::default();
                p.add(visitor);
                self.pages.insert(url.to_string(), p);
            }
        }
    }

    /// A copy of one part.
    pub(crate) fn clone_part(&self, part: Part) -> Aggs {
        let mut out = Aggs::default();
        match part {
            Part::Pageviews => {
                out.pv_days = self.pv_days.clone();
                out.pv_anon = self.pv_anon;
                out.urls = self.urls.clone();
                out.clients = self.clients.clone();
                out.unnamed = self.unnamed.clone();
            }
            Part::Events => {
                out.ev_days = self.ev_days.clone();
                out.names = self.names.clone();
            }
            Part::Errors => {
                out.er_days = self.er_days.clone();
                out.fingerprints = self.fingerprints.clone();
            }
            Part::Performance => {
                out.perf_days = self.perf_days.clone();
                out.hists = self.hists.clone();
            }
            Part::Breakdowns => out.dims = self.dims.clone(),
            Part::Pages => out.pages = self.pages.clone(),
            Part::EventNames => out.event_names = self.event_names.clone(),
            Part::ErrorGroups => out.error_groups = self.error_groups.clone(),
            Part::Segments => out.segments = self.segments.clone(),
            Part::EventProperties => out.event_properties = self.event_properties.clone(),
            Part::Visits => out.visits = self.visits.clone(),
            Part::ErrorSignatures => out.error_signatures = self.error_signatures.clone(),
        }
        out
    }

    /// A copy of several parts.
    pub(crate) fn clone_parts(&self, parts: &[Part]) -> Aggs {
        let mut out = Aggs::default();
        for part in parts {
            out.merge(self.clone_part(*part));
        }
        out
    }

    /// Folds the histograms of each metric and event name into one (before storing a merged
    /// bucket).
    pub(crate) fn fold_hists(&mut self) {
        for hists in self
            .hists
            .iter_mut()
            .chain(self.event_names.values_mut().map(|n| &mut n.durations))
        {
            fold_hists(hists);
        }
    }

    /// The value at 0-based `rank` of metric `m` over every histogram, `None` when `rank` is out
    /// of range.
    pub(crate) fn value_at_rank(&self, m: usize, rank: u64) -> Option<f64> {
        value_at_rank(&self.hists[m], rank)
    }

    /// Number of non-null values of metric `m`.
    pub(crate) fn metric_count(&self, m: usize) -> u64 {
        self.hists[m].iter().flatten().map(|e| e.1).sum()
    }
}

/// Merges histograms into one.
fn fold_hists(hists: &mut Vec<Hist>) {
    if hists.len() <= 1 {
        return;
    }
    let mut all: Hist = hists.drain(..).flatten().collect();
    all.sort_unstable_by_key(|e| e.0);
    let mut folded: Hist = Vec::with_capacity(all.len());
    for (k, n) in all {
        match folded.last_mut() {
            Some(last) if last.0 == k => last.1 += n,
            _ => folded.push((k, n)),
        }
    }
    hists.push(folded);
}

/// The value at 0-based `rank` over several histograms, `None` when `rank` is out of range.
/// Binary search over the ordered key space: ~64 probes of a binary search per histogram,
/// whatever the number of values.
pub(crate) fn value_at_rank(hists: &[Hist], rank: u64) -> Option<f64> {
    let hists: Vec<(&Hist, Vec<u64>)> = hists
        .iter()
        .filter(|h| !h.is_empty())
        .map(|h| {
            let mut acc = 0;
            let cum = h
                .iter()
                .map(|e| {
                    acc += e.1;
                    acc
                })
                .collect();
            (h, cum)
        })
        .collect();
    let total: u64 = hists.iter().map(|(_, c)| *c.last().unwrap_or(&0)).sum();
    if rank >= total {
        return None;
    }
    let count_le = |key: u64| -> u64 {
        hists
            .iter()
            .map(|(h, cum)| match h.partition_point(|e| e.0 <= key) {
                0 => 0,
                i => cum[i - 1],
            })
            .sum()
    };
    let mut lo = hists.iter().map(|(h, _)| h[0].0).min()?;
    let mut hi = hists.iter().map(|(h, _)| h[h.len() - 1].0).max()?;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if count_le(mid) > rank {
            hi = mid;
        } else {
            lo = mid + 1;
        }
    }
    Some(from_ord_key(lo))
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::other(format!("rollup: {e}"))
}

// ---------------------------------------------------------------------------------------------
// Encoding of `rollups.data`
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
pub(crate) struct Enc(Vec<u8>);

impl Enc {
    pub(crate) fn u(&mut self, mut v: u64) {
        loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.0.push(b);
                return;
            }
            self.0.push(b | 0x80);
        }
    }
    pub(crate) fn i(&mut self, v: i64) {
        self.u(((v << 1) ^ (v >> 63)) as u64);
    }
    pub(crate) fn f(&mut self, v: f64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    pub(crate) fn bytes(&mut self, b: &[u8]) {
        self.u(b.len() as u64);
        self.0.extend_from_slice(b);
    }
    /// An error group's first occurrence (the `ErrorGroups` and `ErrorSignatures` parts).
    fn first_error(&mut self, first: &FirstError) {
        self.i(first.ts);
        self.bytes(&first.order);
        self.bytes(first.message.as_bytes());
        for t in [
            &first.browser,
            &first.os,
            &first.os_version,
            &first.device_type,
        ] {
            self.text(t.as_deref());
        }
    }

    pub(crate) fn days(&mut self, d: &BTreeMap<i64, u64>) {
        self.u(d.len() as u64);
        for (k, n) in d {
            self.i(*k);
            self.u(*n);
        }
    }
    pub(crate) fn counts(&mut self, m: &HashMap<String, u64>) {
        self.u(m.len() as u64);
        for (k, n) in m {
            self.bytes(k.as_bytes());
            self.u(*n);
        }
    }
    /// At most one histogram (a bucket's are folded before storing).
    fn hist(&mut self, hists: &[Hist]) -> StoreResult<()> {
        let empty = Hist::new();
        let h = match hists.len() {
            0 => &empty,
            1 => &hists[0],
            _ => return Err(corrupt("unfolded histogram")),
        };
        self.u(h.len() as u64);
        let mut prev = 0u64;
        for (k, n) in h {
            self.u(k - prev);
            self.u(*n);
            prev = *k;
        }
        Ok(())
    }
    fn sum(&mut self, s: Sum) {
        self.f(s.s);
        self.f(s.c);
    }
    fn text(&mut self, t: Option<&str>) {
        match t {
            None => self.u(0),
            Some(t) => {
                self.u(t.len() as u64 + 1);
                self.0.extend_from_slice(t.as_bytes());
            }
        }
    }
}

pub(crate) struct Dec<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Dec<'a> {
    pub(crate) fn u(&mut self) -> StoreResult<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = *self.b.get(self.at).ok_or_else(|| corrupt("truncated"))?;
            self.at += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(corrupt("varint"))
    }
    pub(crate) fn i(&mut self) -> StoreResult<i64> {
        let u = self.u()?;
        Ok(((u >> 1) as i64) ^ -((u & 1) as i64))
    }
    pub(crate) fn f(&mut self) -> StoreResult<f64> {
        let s = self
            .b
            .get(self.at..self.at + 8)
            .ok_or_else(|| corrupt("truncated"))?;
        self.at += 8;
        Ok(f64::from_le_bytes(s.try_into().map_err(corrupt)?))
    }
    pub(crate) fn bytes(&mut self) -> StoreResult<&'a [u8]> {
        let n = self.u()? as usize;
        let s = self
            .b
            .get(self.at..self.at + n)
            .ok_or_else(|| corrupt("truncated"))?;
        self.at += n;
        Ok(s)
    }
    /// What [`Enc::first_error`] wrote.
    fn first_error(&mut self) -> StoreResult<FirstError> {
        Ok(FirstError {
            ts: self.i()?,
            order: self.bytes()?.try_into().map_err(corrupt)?,
            message: self.string()?,
            browser: self.text()?,
            os: self.text()?,
            os_version: self.text()?,
            device_type: self.text()?,
        })
    }

    pub(crate) fn days(&mut self) -> StoreResult<BTreeMap<i64, u64>> {
        let n = self.u()?;
        (0..n).map(|_| Ok((self.i()?, self.u()?))).collect()
    }
    pub(crate) fn counts(&mut self) -> StoreResult<HashMap<String, u64>> {
        let n = self.u()? as usize;
        let mut m = HashMap::with_capacity(n);
        for _ in 0..n {
            m.insert(self.string()?, self.u()?);
        }
        Ok(m)
    }
    fn string(&mut self) -> StoreResult<String> {
        String::from_utf8(self.bytes()?.to_vec()).map_err(corrupt)
    }
    /// Zero or one histogram.
    fn hist(&mut self) -> StoreResult<Vec<Hist>> {
        let n = self.u()? as usize;
        let mut h = Hist::with_capacity(n);
        let mut prev = 0u64;
        for _ in 0..n {
            prev += self.u()?;
            h.push((prev, self.u()?));
        }
        Ok(if h.is_empty() { Vec::new() } else { vec![h] })
    }
    fn sum(&mut self) -> StoreResult<Sum> {
        Ok(Sum {
            s: self.f()?,
            c: self.f()?,
        })
    }
    fn text(&mut self) -> StoreResult<Option<String>> {
        match self.u()? as usize {
            0 => Ok(None),
            n => {
                let s = self
                    .b
                    .get(self.at..self.at + n - 1)
                    .ok_or_else(|| corrupt("truncated"))?;
                self.at += n - 1;
                Ok(Some(String::from_utf8(s.to_vec()).map_err(corrupt)?))
            }
        }
    }
}

pub(crate) fn encode(a: &Aggs, part: Part) -> StoreResult<Vec<u8>> {
    let mut e = Enc::default();
    match part {
        Part::Pageviews => {
            if !a.unnamed.is_empty() {
                return Err(corrupt("client ids without a dense id"));
            }
            e.days(&a.pv_days);
            e.u(a.pv_anon);
            e.counts(&a.urls);
            let mut bits = Vec::with_capacity(a.clients.serialized_size());
            a.clients.serialize_into(&mut bits).map_err(corrupt)?;
            e.bytes(&bits);
        }
        Part::Events => {
            e.days(&a.ev_days);
            e.counts(&a.names);
        }
        Part::Errors => {
            e.days(&a.er_days);
            e.counts(&a.fingerprints);
        }
        Part::Performance => {
            e.u(a.perf_days.len() as u64);
            for (day, p) in &a.perf_days {
                e.i(*day);
                e.u(p.rows);
                e.u(p.complete);
                e.u(p.implausible);
                for m in 0..5 {
                    e.u(p.n[m]);
                    e.sum(p.sum[m]);
                }
            }
            for hists in &a.hists {
                e.hist(hists)?;
            }
        }
        Part::Breakdowns => {
            for d in &a.dims {
                e.counts(d);
            }
        }
        Part::Pages => {
            e.u(a.pages.len() as u64);
            for (url, v) in &a.pages {
                if !v.unnamed.is_empty() {
                    return Err(corrupt("client ids without a dense id"));
                }
                e.bytes(url.as_bytes());
                e.u(u64::from(v.anon));
                let mut bits = Vec::with_capacity(v.clients.serialized_size());
                v.clients.serialize_into(&mut bits).map_err(corrupt)?;
                e.bytes(&bits);
            }
        }
        Part::EventNames => {
            e.u(a.event_names.len() as u64);
            for (name, f) in &a.event_names {
                e.bytes(name.as_bytes());
                e.days(&f.days);
                e.i(f.last);
                e.hist(&f.durations)?;
                e.sum(f.duration_sum);
                e.u(f.implausible);
            }
        }
        Part::Segments => {
            for d in SEGMENT_DIMS {
                e.u(a.segments[d].len() as u64);
                for (value, sub) in &a.segments[d] {
                    e.bytes(value.as_bytes());
                    for part in SEGMENT_PARTS {
                        e.bytes(&encode(sub, part)?);
                    }
                }
            }
        }
        Part::EventProperties => {
            e.u(a.event_properties.len() as u64);
            for (name, samples) in &a.event_properties {
                e.bytes(name.as_bytes());
                let mut one = Enc::default();
                one.u(samples.0.len() as u64);
                for (key, values) in samples.top(SCHEMA_SAMPLES) {
                    one.bytes(key.as_bytes());
                    one.u(values.len() as u64);
                    for (text, ts) in values {
                        one.bytes(text.as_bytes());
                        one.i(ts);
                    }
                }
                e.bytes(&one.0);
            }
        }
        Part::Visits => {
            let c = &a.visits.closed;
            e.u(c.visits);
            e.u(c.bounces);
            e.u(c.views);
            e.i(c.duration_ms);
            e.counts(&c.entries);
            e.counts(&c.exits);
            e.u(a.visits.open.len() as u64);
            for (session, list) in &a.visits.open {
                e.bytes(session.as_bytes());
                e.u(list.len() as u64);
                for v in list {
                    e.i(v.first.0);
                    e.bytes(v.first.1.as_bytes());
                    e.i(v.last.0);
                    e.bytes(v.last.1.as_bytes());
                    e.u(v.views);
                }
            }
        }
        Part::ErrorSignatures => {
            e.u(a.error_signatures.len() as u64);
            for (key, g) in &a.error_signatures {
                e.bytes(key.as_bytes());
                e.days(&g.days);
                e.i(g.last);
                e.first_error(&g.first);
                e.bytes(g.fingerprint.as_bytes());
                e.text(g.error_type.as_deref());
                e.bytes(g.pattern.as_bytes());
                e.text(g.frame.as_deref());
                e.counts(&g.pages);
                e.counts(&g.browsers);
                e.u(u64::from(g.visitors_more));
                e.u(g.visitors.len() as u64);
                for v in &g.visitors {
                    e.bytes(v.as_bytes());
                }
            }
        }
        Part::ErrorGroups => {
            e.u(a.error_groups.len() as u64);
            for (fingerprint, g) in &a.error_groups {
                e.bytes(fingerprint.as_bytes());
                e.days(&g.days);
                e.i(g.last);
                e.first_error(&g.first);
            }
        }
    }
    Ok(e.0)
}

pub(crate) fn decode_into(a: &mut Aggs, part: Part, data: &[u8]) -> StoreResult<()> {
    let mut d = Dec { b: data, at: 0 };
    let mut o = Aggs::default();
    match part {
        Part::Pageviews => {
            o.pv_days = d.days()?;
            o.pv_anon = d.u()?;
            o.urls = d.counts()?;
            o.clients = RoaringBitmap::deserialize_from(d.bytes()?).map_err(corrupt)?;
        }
        Part::Events => {
            o.ev_days = d.days()?;
            o.names = d.counts()?;
        }
        Part::Errors => {
            o.er_days = d.days()?;
            o.fingerprints = d.counts()?;
        }
        Part::Performance => {
            for _ in 0..d.u()? {
                let day = d.i()?;
                let mut p = PerfDay {
                    rows: d.u()?,
                    complete: d.u()?,
                    implausible: d.u()?,
                    ..Default::default()
                };
                for m in 0..5 {
                    p.n[m] = d.u()?;
                    p.sum[m] = d.sum()?;
                }
                o.perf_days.insert(day, p);
            }
            for m in 0..5 {
                o.hists[m] = d.hist()?;
            }
        }
        Part::Breakdowns => {
            for dim in &mut o.dims {
                *dim = d.counts()?;
            }
        }
        Part::Pages => {
            let n = d.u()? as usize;
            o.pages.reserve(n);
            for _ in 0..n {
                let url = d.string()?;
                let anon = d.u()? != 0;
                let clients = RoaringBitmap::deserialize_from(d.bytes()?).map_err(corrupt)?;
                o.pages.insert(
                    url,
                    PageVisitors {
                        clients,
                        anon,
                        unnamed: HashSet::new(),
                    },
                );
            }
        }
        Part::EventNames => {
            let n = d.u()? as usize;
            o.event_names.reserve(n);
            for _ in 0..n {
                let name = d.string()?;
                let f = NameFigures {
                    days: d.days()?,
                    last: d.i()?,
                    durations: d.hist()?,
                    duration_sum: d.sum()?,
                    implausible: d.u()?,
                };
                o.event_names.insert(name, f);
            }
        }
        Part::Segments => {
            for dim in SEGMENT_DIMS {
                let n = d.u()? as usize;
                o.segments[dim].reserve(n);
                for _ in 0..n {
                    let value = d.string()?;
                    let mut sub = Aggs::default();
                    for part in SEGMENT_PARTS {
                        decode_into(&mut sub, part, d.bytes()?)?;
                    }
                    o.segments[dim].insert(value, sub);
                }
            }
        }
        Part::EventProperties => {
            let n = d.u()? as usize;
            o.event_properties.reserve(n);
            for _ in 0..n {
                let name = d.string()?;
                o.event_properties.insert(name, decode_samples(d.bytes()?)?);
            }
        }
        Part::Visits => {
            o.visits.closed = VisitTotals {
                visits: d.u()?,
                bounces: d.u()?,
                views: d.u()?,
                duration_ms: d.i()?,
                entries: d.counts()?,
                exits: d.counts()?,
            };
            let n = d.u()? as usize;
            o.visits.open.reserve(n);
            for _ in 0..n {
                let session = d.string()?;
                let k = d.u()? as usize;
                let mut list = Vec::with_capacity(k.min(1024));
                for _ in 0..k {
                    list.push(VisitFigures {
                        first: (d.i()?, d.string()?),
                        last: (d.i()?, d.string()?),
                        views: d.u()?,
                    });
                }
                o.visits.open.insert(session, list);
            }
        }
        Part::ErrorGroups => {
            let n = d.u()? as usize;
            o.error_groups.reserve(n);
            for _ in 0..n {
                let fingerprint = d.string()?;
                let days = d.days()?;
                let last = d.i()?;
                let first = d.first_error()?;
                o.error_groups
                    .insert(fingerprint, GroupFigures { days, first, last });
            }
        }
        Part::ErrorSignatures => {
            let n = d.u()? as usize;
            o.error_signatures.reserve(n);
            for _ in 0..n {
                let key = d.string()?;
                let days = d.days()?;
                let last = d.i()?;
                let first = d.first_error()?;
                let fingerprint = d.string()?;
                let error_type = d.text()?;
                let pattern = d.string()?;
                let frame = d.text()?;
                let pages = d.counts()?;
                let browsers = d.counts()?;
                let visitors_more = d.u()? != 0;
                let nv = d.u()? as usize;
                let mut visitors = HashSet::with_capacity(nv);
                for _ in 0..nv {
                    visitors.insert(d.string()?);
                }
                o.error_signatures.insert(
                    key,
                    SignatureFigures {
                        days,
                        first,
                        fingerprint,
                        error_type,
                        pattern,
                        frame,
                        last,
                        pages,
                        browsers,
                        visitors,
                        visitors_more,
                    },
                );
            }
        }
    }
    a.merge(o);
    Ok(())
}

/// Decodes from a `Segments` blob only the segments of dimension `dim` (an index into
/// `Dimension::ALL`) whose stored value shows `value` ([`Dimension::matches`]: case aside), into
/// `a.segments[dim]` by stored value; every other value is skipped without decoding.
pub(crate) fn decode_segment(
    a: &mut Aggs,
    data: &[u8],
    dim: usize,
    value: &str,
) -> StoreResult<()> {
    let mut d = Dec { b: data, at: 0 };
    for at in SEGMENT_DIMS {
        for _ in 0..d.u()? {
            let this = d.bytes()?;
            let blobs: [&[u8]; SEGMENT_PARTS.len()] =
                [d.bytes()?, d.bytes()?, d.bytes()?, d.bytes()?];
            // Every stored value showing `value` (case aside) counts: "Firefox" and "firefox".
            let stored = String::from_utf8_lossy(this);
            if at == dim && Dimension::ALL[dim].matches(Some(&stored), value) {
                let mut sub = Aggs::default();
                for (part, blob) in SEGMENT_PARTS.into_iter().zip(blobs) {
                    decode_into(&mut sub, part, blob)?;
                }
                let mut one = Aggs::default();
                one.segments[dim].insert(stored.into_owned(), sub);
                a.merge(one);
            }
        }
        if at == dim {
            return Ok(());
        }
    }
    Ok(())
}

/// One event name's property samples of an `EventProperties` blob.
fn decode_samples(data: &[u8]) -> StoreResult<PropertySamples> {
    let mut d = Dec { b: data, at: 0 };
    let mut out = PropertySamples::default();
    for _ in 0..d.u()? {
        let key = d.string()?;
        let n = d.u()? as usize;
        let mut values = HashMap::with_capacity(n);
        for _ in 0..n {
            let text = d.string()?;
            values.insert(text, d.i()?);
        }
        out.0.insert(key, values);
    }
    Ok(out)
}

/// Decodes from an `EventProperties` blob only the samples of events named `name`, into `a`;
/// every other name is skipped without decoding.
pub(crate) fn decode_properties_of(a: &mut Aggs, data: &[u8], name: &str) -> StoreResult<()> {
    let mut d = Dec { b: data, at: 0 };
    for _ in 0..d.u()? {
        let this = d.bytes()?;
        let samples = d.bytes()?;
        if this == name.as_bytes() {
            let mut o = Aggs::default();
            o.event_properties
                .insert(name.to_string(), decode_samples(samples)?);
            a.merge(o);
            return Ok(());
        }
    }
    Ok(())
}

/// How a raw page view names its visitor for the unique count.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Visitor<'a> {
    /// No `clientId`: counts as one visitor for all of them (SuperInsights 1.x's rule).
    Anonymous,
    /// A client id with its dense id from the store's dictionary.
    Dense(u32),
    /// A client id not in the dictionary yet (only raw edges meet these).
    Unnamed(&'a str),
}

/// Folds raw documents of one span into [`Aggs`], for the parts asked for: the one place that
/// decides what a document contributes (its UTC day, top keys, visitor, breakdown values, and
/// only plausible web-vital values). A store feeds it the rows it scanned.
pub(crate) struct Folder {
    a: Aggs,
    parts: Vec<Part>,
    pageviews: bool,
    breakdowns: bool,
    pages: bool,
    events: bool,
    event_names: bool,
    errors: bool,
    error_groups: bool,
    error_signatures: bool,
    /// Signatures already computed in this fold, by a hash of type, message and stack.
    signature_memo: HashMap<u64, std::sync::Arc<crate::domain::error_signature::Signature>>,
    /// Only errors of this signature are folded ([`Folder::only_signature`]).
    only_signature: Option<String>,
    segments: bool,
    properties: bool,
    visits: bool,
    /// Per session id: its page views as one-view visits, joined at [`Folder::finish`].
    sessions: HashMap<String, Vec<VisitFigures>>,
    /// Per dimension: page views per raw stored value, and those without the field (counted
    /// apart so that a page view allocates nothing for a value seen before).
    raw_dims: [HashMap<String, u64>; 8],
    missing_dims: [u64; 8],
    /// Per [`SEGMENT_DIMS`] dimension and raw stored value: that segment's fold (the
    /// `Segments` part), moved into the figures at [`Folder::finish`].
    segment_folds: [HashMap<String, SegmentFold>; 8],
    hists: [BTreeMap<u64, u64>; 5],
    name_hists: HashMap<String, BTreeMap<u64, u64>>,
    /// The length (ms) of the buckets the per-"day" maps are keyed by: a UTC day, except in a
    /// fold for a fine time series ([`Folder::with_unit`]).
    unit: i64,
}

impl Folder {
    pub(crate) fn new(parts: &[Part]) -> Self {
        Self::with_unit(parts, DAY)
    }

    /// A fold whose per-day maps (`pv_days`, `ev_days`, `er_days`, `perf_days`, the days of
    /// event names and error groups) count buckets of `unit` ms instead (minutes or hours for a
    /// fine time series, `analytics::series`). Never stored as a rollup.
    pub(crate) fn with_unit(parts: &[Part], unit: i64) -> Self {
        Self {
            unit,
            a: Aggs::default(),
            parts: parts.to_vec(),
            pageviews: parts.contains(&Part::Pageviews),
            breakdowns: parts.contains(&Part::Breakdowns),
            pages: parts.contains(&Part::Pages),
            events: parts.contains(&Part::Events),
            event_names: parts.contains(&Part::EventNames),
            errors: parts.contains(&Part::Errors),
            error_groups: parts.contains(&Part::ErrorGroups),
            error_signatures: parts.contains(&Part::ErrorSignatures),
            signature_memo: HashMap::new(),
            only_signature: None,
            segments: parts.contains(&Part::Segments),
            properties: parts.contains(&Part::EventProperties),
            visits: parts.contains(&Part::Visits),
            sessions: HashMap::new(),
            raw_dims: Default::default(),
            missing_dims: [0; 8],
            segment_folds: Default::default(),
            hists: Default::default(),
            name_hists: HashMap::new(),
        }
    }

    /// True when the documents of `part`'s channel are wanted.
    pub(crate) fn wants(&self, part: Part) -> bool {
        self.parts.iter().any(|p| p.channel() == part.channel())
    }

    /// True when events should come with their properties ([`Folder::properties`]): the
    /// `EventProperties` part is asked for.
    pub(crate) fn wants_properties(&self) -> bool {
        self.properties
    }

    /// True when visitors are counted (callers can skip resolving dense ids otherwise).
    pub(crate) fn wants_visitors(&self) -> bool {
        self.pageviews || self.pages
    }

    /// One page view with its `sessionId` when it has one; `dims` are the raw stored values of
    /// `Dimension::ALL`, in that order.
    pub(crate) fn pageview(
        &mut self,
        ts: i64,
        url: &str,
        visitor: Visitor<'_>,
        session: Option<&str>,
        dims: [Option<&str>; 8],
    ) {
        if self.visits
            && let Some(session) = session
        {
            add_session_view(&mut self.sessions, session, ts, url);
        }
        if self.pageviews {
            self.a.count_view(ts.div_euclid(self.unit), url, visitor);
        }
        if self.pages {
            self.a.count_page_visitor(url, visitor);
        }
        if self.segments {
            for d in SEGMENT_DIMS {
                let Some(value) = dims[d] else { continue };
                let values = &mut self.segment_folds[d];
                let sub = match values.get_mut(value) {
                    Some(sub) => sub,
                    None => values.entry(value.to_string()).or_default(),
                };
                sub.a.count_view(ts.div_euclid(self.unit), url, visitor);
                sub.a.count_page_visitor(url, visitor);
                count_dims(&mut sub.raw_dims, &mut sub.missing_dims, dims);
                if let Some(session) = session {
                    add_session_view(&mut sub.sessions, session, ts, url);
                }
            }
        }
        if self.breakdowns {
            count_dims(&mut self.raw_dims, &mut self.missing_dims, dims);
        }
    }

    /// One custom event with its `durationMs` when it carries a number. Implausible durations
    /// are counted and left out.
    pub(crate) fn event(&mut self, ts: i64, name: &str, duration: Option<f64>) {
        let day = ts.div_euclid(self.unit);
        if self.events {
            *self.a.ev_days.entry(day).or_default() += 1;
            bump(&mut self.a.names, name);
        }
        if self.event_names {
            let f = match self.a.event_names.get_mut(name) {
                Some(f) => f,
                None => self
                    .a
                    .event_names
                    .entry(name.to_string())
                    .or_insert_with(|| NameFigures {
                        last: i64::MIN,
                        ..Default::default()
                    }),
            };
            *f.days.entry(day).or_default() += 1;
            f.last = f.last.max(ts);
            match duration {
                Some(ms) if duration_is_plausible(ms) => {
                    f.duration_sum.add(ms);
                    let hist = match self.name_hists.get_mut(name) {
                        Some(h) => h,
                        None => self.name_hists.entry(name.to_string()).or_default(),
                    };
                    *hist.entry(ord_key(ms)).or_default() += 1;
                }
                Some(_) => f.implausible += 1,
                None => {}
            }
        }
    }

    /// The top-level properties of an event named `name` (only when
    /// [`Folder::wants_properties`]; non-object properties have none).
    pub(crate) fn properties(
        &mut self,
        ts: i64,
        name: &str,
        properties: &serde_json::Map<String, Value>,
    ) {
        if !self.properties {
            return;
        }
        let samples = match self.a.event_properties.get_mut(name) {
            Some(s) => s,
            None => self.a.event_properties.entry(name.to_string()).or_default(),
        };
        samples.add(ts, properties);
    }

    /// One error.
    pub(crate) fn error(&mut self, ts: i64, e: &ErrorRow<'_>) {
        if let Some(only) = self.only_signature.clone()
            && self.signature_of(e).key != only
        {
            return;
        }
        let day = ts.div_euclid(self.unit);
        if self.errors {
            *self.a.er_days.entry(day).or_default() += 1;
            bump(&mut self.a.fingerprints, e.fingerprint.unwrap_or_default());
        }
        if self.error_signatures {
            self.error_signature(ts, day, e);
        }
        let Some(fingerprint) = e.fingerprint.filter(|_| self.error_groups) else {
            return;
        };
        match self.a.error_groups.get_mut(fingerprint) {
            Some(g) => {
                *g.days.entry(day).or_default() += 1;
                g.last = g.last.max(ts);
                if (ts, e.order) < (g.first.ts, g.first.order) {
                    g.first = FirstError::of(ts, e);
                }
            }
            None => {
                self.a.error_groups.insert(
                    fingerprint.to_string(),
                    GroupFigures {
                        days: BTreeMap::from([(day, 1)]),
                        first: FirstError::of(ts, e),
                        last: ts,
                    },
                );
            }
        }
    }

    /// The signature of an error, computed once per distinct (type, message, stack) in this
    /// fold.
    fn signature_of(
        &mut self,
        e: &ErrorRow<'_>,
    ) -> std::sync::Arc<crate::domain::error_signature::Signature> {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (e.error_type, e.message, e.stack).hash(&mut h);
        let memo_key = h.finish();
        if let Some(s) = self.signature_memo.get(&memo_key) {
            return s.clone();
        }
        let s = std::sync::Arc::new(crate::domain::error_signature::signature(
            e.error_type,
            e.message.unwrap_or_default(),
            e.stack,
        ));
        if self.signature_memo.len() >= 4096 {
            self.signature_memo.clear();
        }
        self.signature_memo.insert(memo_key, s.clone());
        s
    }

    /// Restricts the fold's errors to those of one signature (the errors page filtered by a
    /// group); never stored as a rollup.
    pub(crate) fn only_signature(mut self, key: Option<&str>) -> Self {
        self.only_signature = key.map(str::to_string);
        self
    }

    /// One error into its signature's figures; the signature is computed once per distinct
    /// (type, message, stack) in this fold.
    fn error_signature(&mut self, ts: i64, day: i64, e: &ErrorRow<'_>) {
        let sig = self.signature_of(e);
        let g = match self.a.error_signatures.get_mut(&sig.key) {
            Some(g) => g,
            None => self
                .a
                .error_signatures
                .entry(sig.key.clone())
                .or_insert_with(|| SignatureFigures {
                    first: FirstError::of(ts, e),
                    fingerprint: e.fingerprint.unwrap_or_default().to_string(),
                    error_type: e.error_type.map(str::to_string),
                    pattern: sig.pattern.clone(),
                    frame: sig.frame.clone(),
                    last: ts,
                    ..Default::default()
                }),
        };
        *g.days.entry(day).or_default() += 1;
        g.last = g.last.max(ts);
        if (ts, e.order) < (g.first.ts, g.first.order) {
            g.first = FirstError::of(ts, e);
            g.fingerprint = e.fingerprint.unwrap_or_default().to_string();
        }
        if let Some(page) = e.page.filter(|p| !p.is_empty()) {
            *g.pages.entry(page_path(page)).or_default() += 1;
        }
        bump(&mut g.browsers, e.browser.unwrap_or("Unknown"));
        if let Some(v) = e.visitor.filter(|v| !v.is_empty()) {
            if g.visitors.len() < SIGNATURE_VISITORS_CAP {
                g.visitors.insert(v.to_string());
            } else if !g.visitors.contains(v) {
                g.visitors_more = true;
            }
        }
        if g.pages.len() > 4 * SIGNATURE_TOP_KEYS || g.browsers.len() > 4 * SIGNATURE_TOP_KEYS {
            g.bound();
        }
    }

    /// One web-vitals document: its values of `METRICS`, in that order. Implausible values are
    /// counted and left out.
    pub(crate) fn vitals(&mut self, ts: i64, values: [Option<f64>; 5]) {
        let day = self
            .a
            .perf_days
            .entry(ts.div_euclid(self.unit))
            .or_default();
        day.rows += 1;
        day.complete += u64::from(values[..4].iter().all(Option::is_some));
        for (m, (hist, v)) in self.hists.iter_mut().zip(values).enumerate() {
            let Some(v) = v else { continue };
            if !vital_is_plausible(METRICS[m], v) {
                day.implausible += 1;
                continue;
            }
            day.n[m] += 1;
            day.sum[m].add(v);
            *hist.entry(ord_key(v)).or_default() += 1;
        }
    }

    /// The aggregates of everything folded in.
    pub(crate) fn finish(mut self) -> Aggs {
        add_dims(&mut self.a.dims, self.raw_dims, self.missing_dims);
        for (into, folds) in self.a.segments.iter_mut().zip(self.segment_folds) {
            for (value, fold) in folds {
                let mut sub = fold.a;
                add_dims(&mut sub.dims, fold.raw_dims, fold.missing_dims);
                sub.visits.open = joined(fold.sessions);
                into.insert(value, sub);
            }
        }
        for (into, hist) in self.a.hists.iter_mut().zip(self.hists) {
            if !hist.is_empty() {
                into.push(hist.into_iter().collect());
            }
        }
        for (name, hist) in self.name_hists {
            if let Some(f) = self.a.event_names.get_mut(&name) {
                f.durations.push(hist.into_iter().collect());
            }
        }
        self.a.visits.open = joined(self.sessions);
        for g in self.a.error_signatures.values_mut() {
            g.bound();
        }
        self.a
    }
}

/// One segment's fold (a [`SEGMENT_DIMS`] dimension's raw stored value): its `Pageviews` and
/// `Pages` figures, its breakdown counts by raw value and its sessions' page views, as the
/// [`Folder`] keeps them for all page views.
#[derive(Default)]
struct SegmentFold {
    a: Aggs,
    raw_dims: [HashMap<String, u64>; 8],
    missing_dims: [u64; 8],
    sessions: HashMap<String, Vec<VisitFigures>>,
}

/// Counts one page view's raw dimension values (`None`: the field is missing).
fn count_dims(
    raw: &mut [HashMap<String, u64>; 8],
    missing: &mut [u64; 8],
    dims: [Option<&str>; 8],
) {
    for ((counts, missing), v) in raw.iter_mut().zip(missing.iter_mut()).zip(dims) {
        match v {
            None => *missing += 1,
            Some(v) => match counts.get_mut(v) {
                Some(n) => *n += 1,
                None => {
                    counts.insert(v.to_string(), 1);
                }
            },
        }
    }
}

/// Adds raw dimension counts to breakdown counts by the value each shows
/// ([`Dimension::value_of`]).
fn add_dims(
    into: &mut [HashMap<String, u64>; 8],
    raw: [HashMap<String, u64>; 8],
    missing: [u64; 8],
) {
    for (((dim, raw), missing), into) in Dimension::ALL.iter().zip(raw).zip(missing).zip(into) {
        for (v, n) in raw {
            *into.entry(dim.value_of(Some(&v))).or_default() += n;
        }
        if missing > 0 {
            *into.entry(dim.value_of(None)).or_default() += missing;
        }
    }
}

/// One page view of a session, as a one-view visit (page views may come in any order: a
/// session's visits are cut by [`joined`]).
fn add_session_view(
    sessions: &mut HashMap<String, Vec<VisitFigures>>,
    session: &str,
    ts: i64,
    url: &str,
) {
    let views = match sessions.get_mut(session) {
        Some(v) => v,
        None => sessions.entry(session.to_string()).or_default(),
    };
    views.push(VisitFigures::of(ts, url));
}

/// Each session's one-view visits joined into visits ([`Visits::join`]).
fn joined(mut sessions: HashMap<String, Vec<VisitFigures>>) -> HashMap<String, Vec<VisitFigures>> {
    for list in sessions.values_mut() {
        Visits::join(list);
    }
    sessions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_property_samples_merge_to_the_schema_of_one_fold() {
        // Many distinct values per key, spread over buckets in random time order: each stored
        // bucket keeps only its most recent few per key, yet the merged schema is that of one
        // fold of every event, for the whole span and for any run of buckets.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let buckets = 6;
        let mut folds: Vec<Folder> = (0..buckets)
            .map(|_| Folder::new(&[Part::EventProperties]))
            .collect();
        let mut events = Vec::new();
        for _ in 0..600 {
            let b = next(buckets as u64) as usize;
            let ts = b as i64 * 1000 + next(40) as i64; // few distinct times: ties happen
            let plan = ["free", "pro", "team"][next(3) as usize];
            let props = serde_json::json!({
                "plan": plan,
                "n": next(30),
                "s": next(30).to_string(),
            });
            let name = ["signup", "buy"][next(2) as usize];
            events.push((b, ts, name, props.as_object().unwrap().clone()));
        }
        for (b, ts, name, props) in &events {
            folds[*b].properties(*ts, name, props);
        }
        let stored: Vec<Vec<u8>> = folds
            .into_iter()
            .map(|f| encode(&f.finish(), Part::EventProperties).unwrap())
            .collect();
        for (from, to) in [(0, buckets), (1, 4), (2, 3)] {
            let mut one = Folder::new(&[Part::EventProperties]);
            for (b, ts, name, props) in &events {
                if (from..to).contains(b) {
                    one.properties(*ts, name, props);
                }
            }
            let one = one.finish();
            let mut merged = Aggs::default();
            let mut picked = Aggs::default();
            for blob in &stored[from..to] {
                decode_into(&mut merged, Part::EventProperties, blob).unwrap();
                decode_properties_of(&mut picked, blob, "buy").unwrap();
            }
            for name in ["signup", "buy"] {
                let schema = |a: &Aggs| a.event_properties.get(name).map(PropertySamples::schema);
                assert_eq!(schema(&merged), schema(&one), "{name} over {from}..{to}");
                assert_eq!(schema(&merged).unwrap()[0].1.len(), SCHEMA_SAMPLES);
            }
            assert_eq!(picked.event_properties.len(), 1);
            assert_eq!(
                picked.event_properties["buy"].schema(),
                one.event_properties["buy"].schema()
            );
        }
    }

    #[test]
    fn visits_merge_across_stored_buckets_as_one_fold_of_their_page_views() {
        use crate::analytics::summaries::visits_summary;
        const H: i64 = 3_600_000;
        const M: i64 = 60_000;
        const T: i64 = 1_706_702_400_000; // 2024-01-31T12:00:00Z, an hour's start
        // (time, url, session): s1 crosses the hour and ties at its start; s2 is one page
        // view; s3 comes back after more than 30 minutes (two visits); the last two have no
        // session id (in no visit).
        let views = [
            (T - M, "/b", Some("s1")),
            (T - M, "/a", Some("s1")),
            (T + 5_000, "/c", Some("s1")),
            (T + 25 * M, "/d", Some("s1")),
            (T + 30_000, "/a", Some("s2")),
            (T - 50 * M, "/x", Some("s3")),
            (T - 40 * M, "/y", Some("s3")),
            (T + 40 * M, "/z", Some("s3")),
            (T + 40_000, "/a", None),
            (T - 1, "/x", None),
        ];
        let fold = |from: i64, to: i64| {
            let mut f = Folder::new(&[Part::Pageviews, Part::Visits]);
            // Reversed: the order documents arrive in does not matter.
            for &(ts, url, session) in views.iter().rev() {
                if (from..=to).contains(&ts) {
                    f.pageview(ts, url, Visitor::Anonymous, session, [None; 8]);
                }
            }
            let mut a = f.finish();
            a.visits.close(from, to);
            a
        };
        let one = fold(T - DAY, T + DAY);
        // Stored hours (5-minute slots for the last one), merged in any order.
        let mut stored: Vec<(i64, i64)> =
            (-2..1).map(|h| (T + h * H, T + (h + 1) * H - 1)).collect();
        stored.extend((12..24).map(|s| (T + s * 5 * M, T + (s + 1) * 5 * M - 1)));
        stored.reverse();
        let mut merged = Aggs::default();
        for (from, to) in stored {
            let part = fold(from, to);
            for p in [Part::Pageviews, Part::Visits] {
                decode_into(&mut merged, p, &encode(&part, p).unwrap()).unwrap();
            }
        }
        assert_eq!(merged.visits.totals(), one.visits.totals());
        assert_eq!(
            one.visits.closed.visits, 4,
            "a day closes what lies 30 minutes inside"
        );
        let t = one.visits.totals();
        assert_eq!((t.visits, t.bounces, t.views), (4, 2, 8));
        assert_eq!(t.duration_ms, 26 * M + 10 * M);
        assert_eq!(
            t.entries.get("/a"),
            Some(&2),
            "ties: the smaller URL is first"
        );
        assert_eq!((t.exits.get("/d"), t.exits.get("/z")), (Some(&1), Some(&1)));
        let v = visits_summary(&t, 10);
        assert_eq!((v.visits, v.bounces, v.views_without_session), (4, 2, 2));
        assert_eq!(v.bounce_rate, Some(50.0));
        assert_eq!(v.views_per_visit, Some(2.0));
        assert_eq!(v.avg_duration_ms, Some((36 * M) as f64 / 4.0));
        let (_, visits, b) = merged.pageview_figures(5, 10);
        assert_eq!(visits, v);
        let rows = |r: &[crate::domain::analytics::BreakdownRow]| {
            r.iter()
                .map(|r| (r.value.clone(), r.count))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            rows(&b.entry_page),
            [
                ("/a".to_string(), 2),
                ("/x".to_string(), 1),
                ("/z".to_string(), 1)
            ]
        );
        // Without any session id there are no visits, and no figure to divide by.
        let none = visits_summary(&VisitTotals::default(), 3);
        assert_eq!(
            (none.visits, none.bounce_rate, none.views_without_session),
            (0, None, 3)
        );
    }

    #[test]
    fn ordered_keys_round_trip_and_sort_numerically() {
        let vals = [-5.5, -0.0, 0.0, 1e-9, 0.1, 2500.0, f64::MAX];
        let keys: Vec<u64> = vals.iter().map(|v| ord_key(*v)).collect();
        assert!(keys.windows(2).all(|w| w[0] <= w[1]));
        for v in vals {
            assert_eq!(from_ord_key(ord_key(v)), if v == 0.0 { 0.0 } else { v });
        }
    }

    #[test]
    fn ranks_over_several_histograms_are_lower_nearest_rank() {
        let h = |vals: &[f64]| {
            let mut m = BTreeMap::new();
            for v in vals {
                *m.entry(ord_key(*v)).or_insert(0u64) += 1;
            }
            m.into_iter().collect::<Hist>()
        };
        let mut a = Aggs::default();
        a.hists[0] = vec![h(&[1.0, 4.0, 4.0]), h(&[2.0, 3.0]), h(&[10.0])];
        // Sorted: 1 2 3 4 4 10 → n = 6.
        let at = |p: f64| a.value_at_rank(0, (p * 5.0_f64).floor() as u64);
        assert_eq!(
            (at(0.5), at(0.75), at(0.95)),
            (Some(3.0), Some(4.0), Some(4.0))
        );
        assert_eq!(a.value_at_rank(0, 5), Some(10.0));
        assert_eq!(a.value_at_rank(0, 6), None);
        assert_eq!(a.metric_count(0), 6);
        let mut folded = Aggs {
            hists: a.hists.clone(),
            ..Default::default()
        };
        folded.fold_hists();
        assert_eq!(folded.hists[0].len(), 1);
        let bytes = encode(&folded, Part::Performance).unwrap();
        let mut back = Aggs::default();
        decode_into(&mut back, Part::Performance, &bytes).unwrap();
        assert_eq!(back.hists[0], folded.hists[0]);
    }

    #[test]
    fn the_folder_counts_days_keys_visitors_dimensions_and_plausible_vitals() {
        const T: i64 = 1_706_702_400_000; // 2024-01-31T12:00:00Z
        let mut f = Folder::new(&Part::ALL);
        let dims = [
            None,
            None,
            None,
            None,
            Some("DE"),
            Some("Chrome"),
            None,
            None,
        ];
        f.pageview(T, "/a", Visitor::Dense(7), None, dims);
        f.pageview(T + 1, "/a", Visitor::Dense(7), None, dims);
        f.pageview(T + 2, "/b", Visitor::Unnamed("new"), None, dims);
        f.pageview(T - DAY, "/b", Visitor::Anonymous, None, [None; 8]);
        f.event(T, "signup", Some(120.0));
        f.event(T + 5, "signup", Some(-1.0));
        f.error(
            T,
            &ErrorRow {
                fingerprint: Some("fp1"),
                ..Default::default()
            },
        );
        f.vitals(T, [Some(2_000.0), Some(0.1), None, None, None]);
        f.vitals(T, [Some(1e308), Some(1_000.0), None, None, None]);
        let a = f.finish();
        assert_eq!(a.pv_days.values().sum::<u64>(), 4);
        assert_eq!(a.pv_days.len(), 2, "two UTC days");
        assert_eq!((a.urls["/a"], a.urls["/b"]), (2, 2));
        assert_eq!(a.clients.len(), 1, "one dense visitor however often seen");
        assert!(a.unnamed.contains("new"));
        assert_eq!(a.pv_anon, 1);
        assert_eq!(a.names["signup"], 2);
        let signup = &a.event_names["signup"];
        assert_eq!(
            (signup.count(), signup.timed(), signup.implausible),
            (2, 1, 1)
        );
        assert_eq!(signup.last, T + 5);
        assert_eq!(a.fingerprints["fp1"], 1);
        let day = a.perf_days[&T.div_euclid(DAY)];
        assert_eq!((day.rows, day.n[0], day.implausible), (2, 1, 2));
        assert_eq!(a.metric_count(0), 1);
        assert_eq!(a.value_at_rank(0, 0), Some(2_000.0));
        assert!(
            a.dims.iter().any(|d| d.get("DE") == Some(&3)),
            "{:?}",
            a.dims
        );
    }

    #[test]
    fn a_segment_decodes_alone_with_the_figures_of_its_page_views() {
        const T: i64 = 1_706_702_400_000;
        let dims = |browser: &'static str, device: &'static str| {
            let mut d = [None; 8];
            d[5] = Some(browser);
            d[7] = Some(device);
            d
        };
        let views = [
            (
                "/a",
                Visitor::Dense(1),
                dims("Chrome", "mobile"),
                Some("s1"),
            ),
            (
                "/a",
                Visitor::Dense(2),
                dims("Firefox", "mobile"),
                Some("s2"),
            ),
            ("/b", Visitor::Anonymous, dims("Chrome", "desktop"), None),
            (
                "/b",
                Visitor::Dense(1),
                dims("Chrome", "desktop"),
                Some("s1"),
            ),
        ];
        let mut all = Folder::new(&[Part::Segments]);
        let mut chrome = Folder::new(&SEGMENT_PARTS);
        for (i, (url, visitor, d, session)) in views.into_iter().enumerate() {
            let ts = T + i as i64 * 60_000;
            all.pageview(ts, url, visitor, session, d);
            if d[5] == Some("Chrome") {
                chrome.pageview(ts, url, visitor, session, d);
            }
        }
        let blob = encode(&all.finish(), Part::Segments).unwrap();
        // What a read keeps of the decoded segments: those of one dimension, merged.
        let decoded = |dim: usize, value: &str| {
            let mut a = Aggs::default();
            decode_segment(&mut a, &blob, dim, value).unwrap();
            let mut out = Aggs::default();
            for (_, sub) in std::mem::take(&mut a.segments[dim]) {
                out.merge(sub);
            }
            assert!(a.segments.iter().all(HashMap::is_empty) && a.is_empty());
            out
        };
        let got = decoded(5, "Chrome");
        let want = chrome.finish();
        assert_eq!((&got.pv_days, &got.urls), (&want.pv_days, &want.urls));
        assert_eq!((&got.clients, got.pv_anon), (&want.clients, want.pv_anon));
        assert_eq!(got.pages["/b"].count(), 2);
        assert_eq!(got.dims, want.dims);
        assert_eq!(got.dims[7]["desktop"], 2);
        assert_eq!(got.visits.totals(), want.visits.totals());
        assert_eq!(got.visits.totals().visits, 1, "s1 only: s2 is Firefox");
        let none = (decoded(5, "Opera"), decoded(6, "Chrome"));
        assert!(
            none.0.is_empty() && none.1.is_empty(),
            "other values and dimensions decode nothing"
        );
        assert_eq!(decoded(7, "mobile").clients.len(), 2);
    }
}
