//! Exact rollup aggregates: what a span of analytics documents folds into (per-day counts, top
//! keys, exact unique visitors as a bitmap of dense client ids, value histograms for exact
//! percentiles, compensated sums for averages), how spans merge without losing exactness, and
//! the byte encoding a store keeps them in. Pure: no IO, no SQL, no BSON; a backend scans raw
//! rows into [`Aggs`] and stores the encoded blobs.

use super::plan::DAY;
use crate::domain::{
    analytics::{Dimension, METRICS},
    plausible::vital_is_plausible,
};
use crate::store::{StoreError, StoreResult};
use roaring::RoaringBitmap;
use std::collections::{BTreeMap, HashMap, HashSet};

/// Encoding of `rollups.data`; rows of another format are rebuilt on read. 2: web-vital days
/// count implausible values (`domain::plausible`) and leave them out of sums and histograms.
/// 3: the `Pages` part (visitors per page). 4: web-vital days count complete documents.
pub(crate) const FMT: i64 = 4;

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
}

impl Part {
    pub(crate) const ALL: [Part; 6] = [
        Part::Pageviews,
        Part::Events,
        Part::Errors,
        Part::Performance,
        Part::Breakdowns,
        Part::Pages,
    ];

    pub(crate) fn code(self) -> i64 {
        self as i64
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

/// Figures of some span for the parts that were asked for; merging spans is exact.
#[derive(Debug, Default)]
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
}

pub(crate) fn add_counts<K: Eq + std::hash::Hash>(
    into: &mut HashMap<K, u64>,
    from: HashMap<K, u64>,
) {
    if into.is_empty() {
        *into = from;
        return;
    }
    for (k, n) in from {
        *into.entry(k).or_default() += n;
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
        if self.pages.is_empty() {
            self.pages = o.pages;
        } else {
            for (url, v) in o.pages {
                self.pages.entry(url).or_default().merge(v);
            }
        }
    }

    /// True when no document was folded in.
    pub(crate) fn is_empty(&self) -> bool {
        self.pv_days.is_empty()
            && self.ev_days.is_empty()
            && self.er_days.is_empty()
            && self.perf_days.is_empty()
    }

    /// Every client id counted by name (not in the dictionary when scanned).
    pub(crate) fn unnamed_clients(&self) -> Vec<String> {
        let mut all: HashSet<&String> = self.unnamed.iter().collect();
        for p in self.pages.values() {
            all.extend(&p.unnamed);
        }
        all.into_iter().cloned().collect()
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
    }

    /// Moves one part out (the rest stays behind).
    pub(crate) fn take(&mut self, part: Part) -> Aggs {
        let mut out = Aggs::default();
        match part {
            Part::Pageviews => {
                out.pv_days = std::mem::take(&mut self.pv_days);
                out.pv_anon = self.pv_anon;
                out.urls = std::mem::take(&mut self.urls);
                out.clients = std::mem::take(&mut self.clients);
                out.unnamed = std::mem::take(&mut self.unnamed);
            }
            Part::Events => {
                out.ev_days = std::mem::take(&mut self.ev_days);
                out.names = std::mem::take(&mut self.names);
            }
            Part::Errors => {
                out.er_days = std::mem::take(&mut self.er_days);
                out.fingerprints = std::mem::take(&mut self.fingerprints);
            }
            Part::Performance => {
                out.perf_days = std::mem::take(&mut self.perf_days);
                out.hists = std::mem::take(&mut self.hists);
            }
            Part::Breakdowns => out.dims = std::mem::take(&mut self.dims),
            Part::Pages => out.pages = std::mem::take(&mut self.pages),
        }
        out
    }

    /// Folds the histograms of each metric into one (before storing a merged bucket).
    pub(crate) fn fold_hists(&mut self) {
        for hists in &mut self.hists {
            if hists.len() <= 1 {
                continue;
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
    }

    /// The value at 0-based `rank` of metric `m` over every histogram, `None` when `rank` is out
    /// of range. Binary search over the ordered key space: ~64 probes of a binary search per
    /// histogram, whatever the number of values.
    pub(crate) fn value_at_rank(&self, m: usize, rank: u64) -> Option<f64> {
        let hists: Vec<(&Hist, Vec<u64>)> = self.hists[m]
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

    /// Number of non-null values of metric `m`.
    pub(crate) fn metric_count(&self, m: usize) -> u64 {
        self.hists[m].iter().flatten().map(|e| e.1).sum()
    }
}

pub(crate) fn corrupt(e: impl std::fmt::Display) -> StoreError {
    StoreError::Other(format!("rollup: {e}"))
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
    pub(crate) fn days(&mut self) -> StoreResult<BTreeMap<i64, u64>> {
        let n = self.u()?;
        (0..n).map(|_| Ok((self.i()?, self.u()?))).collect()
    }
    pub(crate) fn counts(&mut self) -> StoreResult<HashMap<String, u64>> {
        let n = self.u()? as usize;
        let mut m = HashMap::with_capacity(n);
        for _ in 0..n {
            let k = String::from_utf8(self.bytes()?.to_vec()).map_err(corrupt)?;
            m.insert(k, self.u()?);
        }
        Ok(m)
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
                    e.f(p.sum[m].s);
                    e.f(p.sum[m].c);
                }
            }
            for hists in &a.hists {
                let empty = Hist::new();
                let h = match hists.len() {
                    0 => &empty,
                    1 => &hists[0],
                    _ => return Err(corrupt("unfolded histogram")),
                };
                e.u(h.len() as u64);
                let mut prev = 0u64;
                for (k, n) in h {
                    e.u(k - prev);
                    e.u(*n);
                    prev = *k;
                }
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
                    p.sum[m] = Sum {
                        s: d.f()?,
                        c: d.f()?,
                    };
                }
                o.perf_days.insert(day, p);
            }
            for m in 0..5 {
                let n = d.u()? as usize;
                let mut h = Hist::with_capacity(n);
                let mut prev = 0u64;
                for _ in 0..n {
                    prev += d.u()?;
                    h.push((prev, d.u()?));
                }
                if !h.is_empty() {
                    o.hists[m].push(h);
                }
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
                let url = String::from_utf8(d.bytes()?.to_vec()).map_err(corrupt)?;
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
    }
    a.merge(o);
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
    raw_dims: [HashMap<Option<String>, u64>; 8],
    hists: [BTreeMap<u64, u64>; 5],
}

impl Folder {
    pub(crate) fn new(parts: &[Part]) -> Self {
        Self {
            a: Aggs::default(),
            parts: parts.to_vec(),
            pageviews: parts.contains(&Part::Pageviews),
            breakdowns: parts.contains(&Part::Breakdowns),
            pages: parts.contains(&Part::Pages),
            raw_dims: Default::default(),
            hists: Default::default(),
        }
    }

    /// True when the documents of `part`'s channel are wanted (page views feed three parts).
    pub(crate) fn wants(&self, part: Part) -> bool {
        match part {
            Part::Pageviews | Part::Breakdowns | Part::Pages => self.wants_pageviews(),
            other => self.parts.contains(&other),
        }
    }

    /// True when page views are scanned at all.
    pub(crate) fn wants_pageviews(&self) -> bool {
        self.pageviews || self.breakdowns || self.pages
    }

    /// True when visitors are counted (callers can skip resolving dense ids otherwise).
    pub(crate) fn wants_visitors(&self) -> bool {
        self.pageviews || self.pages
    }

    /// One page view; `dims` are the raw stored values of `Dimension::ALL`, in that order.
    pub(crate) fn pageview(
        &mut self,
        ts: i64,
        url: &str,
        visitor: Visitor<'_>,
        dims: [Option<&str>; 8],
    ) {
        if self.pageviews {
            *self.a.pv_days.entry(ts.div_euclid(DAY)).or_default() += 1;
            bump(&mut self.a.urls, url);
            match visitor {
                Visitor::Anonymous => self.a.pv_anon += 1,
                Visitor::Dense(id) => {
                    self.a.clients.insert(id);
                }
                Visitor::Unnamed(c) => {
                    if !self.a.unnamed.contains(c) {
                        self.a.unnamed.insert(c.to_string());
                    }
                }
            }
        }
        if self.pages {
            match self.a.pages.get_mut(url) {
                Some(p) => p.add(visitor),
                None => {
                    let mut p = PageVisitors::default();
                    p.add(visitor);
                    self.a.pages.insert(url.to_string(), p);
                }
            }
        }
        if self.breakdowns {
            for (counts, v) in self.raw_dims.iter_mut().zip(dims) {
                if let Some(n) = counts.get_mut(&v.map(str::to_string)) {
                    *n += 1;
                } else {
                    counts.insert(v.map(str::to_string), 1);
                }
            }
        }
    }

    /// One custom event.
    pub(crate) fn event(&mut self, ts: i64, name: &str) {
        *self.a.ev_days.entry(ts.div_euclid(DAY)).or_default() += 1;
        bump(&mut self.a.names, name);
    }

    /// One error, by fingerprint.
    pub(crate) fn error(&mut self, ts: i64, fingerprint: &str) {
        *self.a.er_days.entry(ts.div_euclid(DAY)).or_default() += 1;
        bump(&mut self.a.fingerprints, fingerprint);
    }

    /// One web-vitals document: its values of `METRICS`, in that order. Implausible values are
    /// counted and left out.
    pub(crate) fn vitals(&mut self, ts: i64, values: [Option<f64>; 5]) {
        let day = self.a.perf_days.entry(ts.div_euclid(DAY)).or_default();
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
        for ((dim, raw), into) in Dimension::ALL
            .iter()
            .zip(self.raw_dims)
            .zip(self.a.dims.iter_mut())
        {
            for (v, n) in raw {
                *into.entry(dim.value_of(v.as_deref())).or_default() += n;
            }
        }
        for (into, hist) in self.a.hists.iter_mut().zip(self.hists) {
            if !hist.is_empty() {
                into.push(hist.into_iter().collect());
            }
        }
        self.a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        f.pageview(T, "/a", Visitor::Dense(7), dims);
        f.pageview(T + 1, "/a", Visitor::Dense(7), dims);
        f.pageview(T + 2, "/b", Visitor::Unnamed("new"), dims);
        f.pageview(T - DAY, "/b", Visitor::Anonymous, [None; 8]);
        f.event(T, "signup");
        f.error(T, "fp1");
        f.vitals(T, [Some(2_000.0), Some(0.1), None, None, None]);
        f.vitals(T, [Some(1e308), Some(1_000.0), None, None, None]);
        let a = f.finish();
        assert_eq!(a.pv_days.values().sum::<u64>(), 4);
        assert_eq!(a.pv_days.len(), 2, "two UTC days");
        assert_eq!((a.urls["/a"], a.urls["/b"]), (2, 2));
        assert_eq!(a.clients.len(), 1, "one dense visitor however often seen");
        assert!(a.unnamed.contains("new"));
        assert_eq!(a.pv_anon, 1);
        assert_eq!(a.names["signup"], 1);
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
}
