//! The dashboard summaries from exact aggregates: page views (totals, unique visitors, per day,
//! top pages), events, errors, web vitals (lower-nearest-rank percentiles, daily averages of
//! plausible values, the implausible count) and breakdowns. Pure: whatever span the [`Aggs`]
//! cover (rollups, raw edges or a whole raw scan), the figures come out the same way.

use super::{
    plan::DAY,
    rollup::{Aggs, NameFigures, add_days, value_at_rank},
};
use crate::domain::{
    analytics::{
        BreakdownRow, Breakdowns, DayCount, Dimension, DurationSummary, ErrorDetail, ErrorGroup,
        ErrorsReport, ErrorsSummary, EventCount, EventDetail, EventsReport, EventsSummary,
        KeyCount, METRICS, MetricsDay, PageCount, PageStats, PageViewsReport, PageViewsSummary,
        Pagination, Percentiles, PerformanceFigures, PerformanceReport, PropertyKey, REPORT_TOP,
        RecentPaging, SIGNATURE_GROUP_TOP, SIGNATURE_GROUPS_MAX, SignatureGroup, TimedEvent,
        TopEvent, VisitsSummary, utc_day,
    },
    error_groups::{ErrorFigures, GroupRow},
    timestamp::to_iso,
};
use std::collections::{BTreeMap, HashMap};

/// The value at lower nearest rank `p` of `n` values spread over `hists`.
fn at_rank(hists: &[super::rollup::Hist], n: u64, p: f64) -> Option<f64> {
    (n > 0)
        .then(|| value_at_rank(hists, (p * (n - 1) as f64).floor() as u64))
        .flatten()
}

/// The plausible durations of one name (or of several merged).
fn durations(f: &NameFigures) -> DurationSummary {
    let n = f.timed();
    DurationSummary {
        count: n,
        avg_ms: (n > 0).then(|| f.duration_sum.value() / n as f64),
        p50_ms: at_rank(&f.durations, n, 0.5),
        p95_ms: at_rank(&f.durations, n, 0.95),
        max_ms: at_rank(&f.durations, n, 1.0),
        implausible: f.implausible,
    }
}

fn by_day(days: &BTreeMap<i64, u64>) -> Vec<DayCount> {
    days.iter()
        .filter(|(_, n)| **n > 0)
        .map(|(d, n)| DayCount {
            date: utc_day(d * DAY),
            count: *n,
        })
        .collect()
}

/// The `top` keys by count, ties by key (byte order).
fn ranked(counts: HashMap<String, u64>, top: usize) -> Vec<(String, u64)> {
    let mut all: Vec<(String, u64)> = counts.into_iter().filter(|(_, n)| *n > 0).collect();
    all.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    all.truncate(top);
    all
}

/// How many error signatures there are, and the `top` by count (ties by key).
fn ranked_signatures(
    signatures: HashMap<String, super::rollup::SignatureFigures>,
    top: usize,
) -> (u64, Vec<(String, super::rollup::SignatureFigures)>) {
    let mut all: Vec<_> = signatures.into_iter().collect();
    let unique = all.len() as u64;
    all.sort_unstable_by(|a, b| b.1.count().cmp(&a.1.count()).then_with(|| a.0.cmp(&b.0)));
    all.truncate(top);
    (unique, all)
}

/// The visits' figures from their totals over a span holding `total_views` page views: how
/// many, the bounces (one page view), the mean duration (first to last page view) and views
/// per visit.
pub(crate) fn visits_summary(t: &super::rollup::VisitTotals, total_views: u64) -> VisitsSummary {
    let n = t.visits;
    let per = |x: f64| (n > 0).then(|| x / n as f64);
    VisitsSummary {
        visits: n,
        bounces: t.bounces,
        bounce_rate: per(t.bounces as f64 * 100.0),
        avg_duration_ms: per(t.duration_ms as f64),
        views_per_visit: per(t.views as f64),
        views_without_session: total_views.saturating_sub(t.views),
    }
}

impl Aggs {
    /// Distinct visitors of the page views: client ids, and the page views without one as one
    /// more visitor together.
    pub(crate) fn unique_visitors(&self) -> u64 {
        self.clients.len() + self.unnamed.len() as u64 + u64::from(self.pv_anon > 0)
    }

    /// Page views: every view, unique visitors (page views without a `clientId` count as one
    /// visitor together), per UTC day, the `top` pages.
    pub(crate) fn pageviews_summary(self, top: usize) -> PageViewsSummary {
        PageViewsSummary {
            total_views: self.pv_days.values().sum(),
            unique_visitors: self.unique_visitors(),
            views_by_day: by_day(&self.pv_days),
            top_pages: ranked(self.urls, top)
                .into_iter()
                .map(|(url, views)| PageCount { url, views })
                .collect(),
        }
    }

    /// The page-views report: the summary's figures with each top page's visitors.
    pub(crate) fn pageviews_report(mut self, top: usize) -> PageViewsReport {
        let pages = std::mem::take(&mut self.pages);
        let summary = self.pageviews_summary(top);
        PageViewsReport {
            total_views: summary.total_views,
            unique_visitors: summary.unique_visitors,
            views_by_day: summary.views_by_day,
            top_pages: summary
                .top_pages
                .into_iter()
                .map(|p| PageStats {
                    unique_visitors: pages.get(&p.url).map_or(0, |v| v.count()),
                    url: p.url,
                    views: p.views,
                })
                .collect(),
        }
    }

    /// Events: total, per UTC day, the `top` names.
    pub(crate) fn events_summary(self, top: usize) -> EventsSummary {
        EventsSummary {
            total_events: self.ev_days.values().sum(),
            events_by_day: by_day(&self.ev_days),
            top_events: ranked(self.names, top)
                .into_iter()
                .map(|(event_name, count)| EventCount { event_name, count })
                .collect(),
        }
    }

    /// The events report of the `EventNames` part, restricted to `name` when given (the name
    /// list is not), with the recent-occurrence pagination of `paging` and no occurrences (the
    /// store reads that page).
    pub(crate) fn events_report(
        mut self,
        name: Option<&str>,
        paging: RecentPaging,
    ) -> EventsReport {
        let mut unique_event_names: Vec<String> = self.event_names.keys().cloned().collect();
        unique_event_names.sort_unstable();
        if let Some(name) = name {
            self.event_names.retain(|n, _| n == name);
        }
        let mut days = BTreeMap::new();
        for f in self.event_names.values() {
            add_days(&mut days, f.days.clone());
        }
        let total_events = days.values().sum();
        let mut names: Vec<(String, NameFigures)> = self.event_names.into_iter().collect();
        names.sort_unstable_by(|a, b| {
            (b.1.count().cmp(&a.1.count()))
                .then_with(|| b.1.last.cmp(&a.1.last))
                .then_with(|| a.0.cmp(&b.0))
        });
        let top_events = names
            .iter()
            .take(REPORT_TOP)
            .map(|(name, f)| TopEvent {
                event_name: name.clone(),
                count: f.count(),
                most_recent_timestamp: to_iso(f.last),
            })
            .collect();
        let implausible_durations = names.iter().map(|(_, f)| f.implausible).sum();
        let mut timed_events: Vec<TimedEvent> = names
            .iter()
            .filter(|(_, f)| f.timed() > 0)
            .map(|(name, f)| {
                let d = durations(f);
                TimedEvent {
                    event_name: name.clone(),
                    count: d.count,
                    avg_ms: d.avg_ms.unwrap_or(0.0),
                    max_ms: d.max_ms.unwrap_or(0.0),
                    p50_ms: d.p50_ms,
                    p95_ms: d.p95_ms,
                }
            })
            .collect();
        let key = |v: Option<f64>| v.unwrap_or(f64::NEG_INFINITY);
        timed_events.sort_unstable_by(|a, b| {
            key(b.p95_ms)
                .total_cmp(&key(a.p95_ms))
                .then_with(|| b.avg_ms.total_cmp(&a.avg_ms))
                .then_with(|| b.max_ms.total_cmp(&a.max_ms))
                .then_with(|| a.event_name.cmp(&b.event_name))
        });
        timed_events.truncate(REPORT_TOP);
        EventsReport {
            total_events,
            events_by_day: by_day(&days),
            unique_event_names,
            top_events,
            recent_occurrences: Vec::new(),
            recent_pagination: Pagination::of(paging, total_events),
            timed_events,
            implausible_durations,
        }
    }

    /// One event name's detail from the `EventNames` part and the sampled properties, without
    /// occurrences (the store reads those).
    pub(crate) fn event_detail(mut self, name: &str) -> EventDetail {
        let f = self.event_names.remove(name).unwrap_or_default();
        EventDetail {
            occurrences: Vec::new(),
            property_schema: self
                .event_properties
                .remove(name)
                .unwrap_or_default()
                .schema()
                .into_iter()
                .map(|(key, sample_values)| PropertyKey { key, sample_values })
                .collect(),
            events_by_day: by_day(&f.days),
            duration_summary: durations(&f),
        }
    }

    /// The errors report of the `Errors` and `ErrorGroups` parts: the `top` fingerprints by
    /// count (ties by fingerprint), each described by its earliest occurrence.
    pub(crate) fn errors_report(self, top: usize) -> ErrorsReport {
        let (unique_signatures, signatures) =
            ranked_signatures(self.error_signatures, SIGNATURE_GROUPS_MAX);
        let top_keys = |m: HashMap<String, u64>| {
            let mut v: Vec<_> = m
                .into_iter()
                .map(|(key, count)| KeyCount { key, count })
                .collect();
            v.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
            v.truncate(SIGNATURE_GROUP_TOP);
            v
        };
        let signature_groups = signatures
            .into_iter()
            .map(|(signature, g)| SignatureGroup {
                count: g.count(),
                signature,
                message: g.first.message,
                pattern: g.pattern,
                error_type: g.error_type,
                frame: g.frame,
                fingerprint: g.fingerprint,
                visitors: g.visitors.len() as u64,
                visitors_more: g.visitors_more,
                first_seen: to_iso(g.first.ts),
                last_seen: to_iso(g.last),
                pages: top_keys(g.pages),
                browsers: top_keys(g.browsers),
            })
            .collect();
        let mut groups: Vec<_> = self.error_groups.into_iter().collect();
        let unique_fingerprints = groups.len() as u64;
        groups.sort_unstable_by(|a, b| b.1.count().cmp(&a.1.count()).then_with(|| a.0.cmp(&b.0)));
        groups.truncate(top);
        ErrorsReport {
            signature_groups,
            unique_signatures,
            total_errors: self.er_days.values().sum(),
            errors_by_day: by_day(&self.er_days),
            unique_fingerprints,
            grouped_errors: groups
                .into_iter()
                .map(|(fingerprint, g)| ErrorGroup {
                    count: g.count(),
                    fingerprint,
                    message: g.first.message,
                    browser: g.first.browser,
                    os: g.first.os,
                    os_version: g.first.os_version,
                    device_type: g.first.device_type,
                    first_seen: to_iso(g.first.ts),
                })
                .collect(),
        }
    }

    /// One fingerprint from the `ErrorGroups` part, without occurrences (the store reads those).
    pub(crate) fn error_detail(mut self, fingerprint: &str) -> ErrorDetail {
        let Some(g) = self.error_groups.remove(fingerprint) else {
            return ErrorDetail {
                fingerprint: fingerprint.to_string(),
                ..Default::default()
            };
        };
        ErrorDetail {
            fingerprint: fingerprint.to_string(),
            total_occurrences: g.count(),
            first_seen: Some(to_iso(g.first.ts)),
            last_seen: Some(to_iso(g.last)),
            errors_by_day: by_day(&g.days),
            occurrences: Vec::new(),
        }
    }

    /// The dashboard's errors block from the `Errors` and `ErrorSignatures` parts: 1.x's
    /// summary and, beside it, the number of error groups and the `list` most frequent.
    pub(crate) fn error_figures(mut self, list: usize) -> ErrorFigures {
        let signatures = std::mem::take(&mut self.error_signatures);
        let (unique_signatures, top) = ranked_signatures(signatures, list);
        ErrorFigures {
            summary: self.errors_summary(),
            unique_signatures,
            top_groups: top
                .into_iter()
                .map(|(signature, g)| GroupRow {
                    count: g.count(),
                    signature,
                    message: g.first.message,
                    pattern: g.pattern,
                    last_seen: to_iso(g.last),
                })
                .collect(),
        }
    }

    /// Errors: total, distinct fingerprints, per UTC day.
    pub(crate) fn errors_summary(self) -> ErrorsSummary {
        ErrorsSummary {
            total_errors: self.er_days.values().sum(),
            unique_fingerprints: self.fingerprints.values().filter(|n| **n > 0).count() as u64,
            errors_by_day: by_day(&self.er_days),
        }
    }

    /// Web vitals: p50/p75/p95 of each metric (lower nearest rank over the plausible values),
    /// daily averages, measurements and implausible values.
    pub(crate) fn performance_figures(self) -> PerformanceFigures {
        let percentiles = METRICS
            .iter()
            .enumerate()
            .map(|(m, name)| {
                let n = self.metric_count(m);
                let mut at = Percentiles::default();
                if n > 0 {
                    for (p, slot) in [(0.5, &mut at.p50), (0.75, &mut at.p75), (0.95, &mut at.p95)]
                    {
                        *slot = self.value_at_rank(m, (p * (n - 1) as f64).floor() as u64);
                    }
                }
                (name.to_string(), at)
            })
            .collect();
        let metrics_by_day = self
            .perf_days
            .iter()
            .filter(|(_, d)| d.rows > 0)
            .map(|(day, d)| {
                let avg = |m: usize| (d.n[m] > 0).then(|| d.sum[m].value() / d.n[m] as f64);
                MetricsDay {
                    date: utc_day(day * DAY),
                    lcp: avg(0),
                    cls: avg(1),
                    fid: avg(2),
                    ttfb: avg(3),
                    inp: avg(4),
                    n: d.n,
                }
            })
            .collect();
        PerformanceFigures {
            percentiles,
            metrics_by_day,
            total_measurements: self.perf_days.values().map(|d| d.rows).sum(),
            implausible_values: self.perf_days.values().map(|d| d.implausible).sum(),
        }
    }

    /// The performance report: the figures and the complete measurements.
    pub(crate) fn performance_report(self) -> PerformanceReport {
        let complete_measurements = self.perf_days.values().map(|d| d.complete).sum();
        PerformanceReport {
            figures: self.performance_figures(),
            complete_measurements,
        }
    }

    /// The dashboard's page-view figures: the summary with its `top` pages, the visits, and the
    /// breakdowns with up to `list` rows per dimension, per page (`page`) and per entry and exit
    /// page (visits).
    pub(crate) fn pageview_figures(
        mut self,
        top: usize,
        list: usize,
    ) -> (PageViewsSummary, VisitsSummary, Breakdowns) {
        let dims = std::mem::take(&mut self.dims);
        let visits = std::mem::take(&mut self.visits);
        let pages = Breakdowns::rank(self.urls.iter().map(|(u, n)| (u.clone(), *n)), list);
        let summary = self.pageviews_summary(top);
        let mut out = Breakdowns::default();
        for (dim, counts) in Dimension::ALL.iter().zip(dims) {
            *out.of_mut(*dim) = Breakdowns::rank(counts, list);
        }
        out.page = pages;
        let totals = visits.totals();
        let visits = visits_summary(&totals, summary.total_views);
        if list > 0 {
            out.entry_page = Breakdowns::rank(totals.entries, list);
            out.exit_page = Breakdowns::rank(totals.exits, list);
        }
        (summary, visits, out)
    }

    /// The dashboard's event figures from the `Events` part (every name) or, for one `name`,
    /// the `EventNames` part: the summary with its `top` names, and up to `list` names.
    pub(crate) fn event_figures(
        mut self,
        name: Option<&str>,
        top: usize,
        list: usize,
    ) -> (EventsSummary, Vec<BreakdownRow>) {
        let Some(name) = name else {
            let names = Breakdowns::rank(self.names.iter().map(|(k, n)| (k.clone(), *n)), list);
            return (self.events_summary(top), names);
        };
        let f = self.event_names.remove(name).unwrap_or_default();
        let count = f.count();
        let summary = EventsSummary {
            total_events: count,
            events_by_day: by_day(&f.days),
            top_events: (count > 0)
                .then(|| EventCount {
                    event_name: name.to_string(),
                    count,
                })
                .into_iter()
                .collect(),
        };
        let names = Breakdowns::rank([(name.to_string(), count)], list);
        (summary, names)
    }

    /// The `top` values of every dimension by page views.
    pub(crate) fn breakdowns(self, top: usize) -> Breakdowns {
        let mut out = Breakdowns::default();
        for (dim, counts) in Dimension::ALL.iter().zip(self.dims) {
            *out.of_mut(*dim) = Breakdowns::rank(counts, top);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use crate::analytics::rollup::{Folder, Part, Visitor};
    use crate::domain::analytics::PageStats;

    #[test]
    fn views_without_a_client_are_one_more_visitor_overall_and_per_page() {
        const T: i64 = 1_700_000_000_000;
        let mut f = Folder::new(&[Part::Pageviews, Part::Pages]);
        for (url, visitor) in [
            ("/x", Visitor::Unnamed("a")),
            ("/y", Visitor::Dense(7)),
            ("/x", Visitor::Anonymous),
            ("/x", Visitor::Anonymous),
            ("/y", Visitor::Unnamed("b")),
        ] {
            f.pageview(T, url, visitor, None, [None; 8]);
        }
        let report = f.finish().pageviews_report(10);
        assert_eq!((report.total_views, report.unique_visitors), (5, 4));
        assert_eq!(
            report.top_pages,
            vec![
                PageStats {
                    url: "/x".into(),
                    views: 3,
                    unique_visitors: 2
                },
                PageStats {
                    url: "/y".into(),
                    views: 2,
                    unique_visitors: 2
                },
            ]
        );
        assert_eq!(report.views_by_day.len(), 1);
    }

    #[test]
    fn the_performance_report_leaves_implausible_values_out_and_counts_complete_documents() {
        use crate::analytics::plan::DAY;
        use crate::domain::analytics::METRICS;
        const T: i64 = 1_700_000_000_000;
        let mut f = Folder::new(&[Part::Performance]);
        f.vitals(T, [Some(1000.0), Some(0.1), Some(10.0), Some(50.0), None]);
        f.vitals(T + 1, [Some(3000.0), Some(1000.0), None, None, None]);
        f.vitals(T + DAY, [Some(1e12), None, None, None, Some(200.0)]);
        let report = f.finish().performance_report();
        let figures = &report.figures;
        assert_eq!(report.complete_measurements, 1);
        assert_eq!(figures.total_measurements, 3);
        assert_eq!(figures.implausible_values, 2);
        let lcp = figures.of("lcp");
        assert_eq!((lcp.p50, lcp.p95), (Some(1000.0), Some(1000.0)));
        assert_eq!(figures.of("cls").p50, Some(0.1));
        assert_eq!(figures.of("inp").p75, Some(200.0));
        assert_eq!(figures.metrics_by_day.len(), 2);
        assert_eq!(figures.metrics_by_day[0].lcp, Some(2000.0));
        assert_eq!(figures.metrics_by_day[1].lcp, None);
        assert_eq!(figures.metrics_by_day[1].inp, Some(200.0));
        let empty = Folder::new(&[Part::Performance])
            .finish()
            .performance_report();
        assert_eq!(empty.figures.percentiles.len(), METRICS.len());
        assert!(empty.figures.metrics_by_day.is_empty());
    }

    /// Folds `parts` of two spans separately, stores each as a bucket would be stored, and
    /// merges the decoded blobs: what a read over two rollups sees.
    fn through_rollups(
        parts: &[Part],
        fold: impl Fn(&mut Folder, i64),
    ) -> crate::analytics::rollup::Aggs {
        use crate::analytics::rollup::{decode_into, encode};
        let mut out = crate::analytics::rollup::Aggs::default();
        for span in 0..2 {
            let mut f = Folder::new(parts);
            fold(&mut f, span);
            let mut a = f.finish();
            a.fold_hists();
            for part in parts {
                decode_into(&mut out, *part, &encode(&a, *part).unwrap()).unwrap();
            }
        }
        out
    }

    const T: i64 = 1_700_000_000_000; // 2023-11-14T22:13:20Z

    #[test]
    fn events_report_ranks_names_times_durations_and_survives_storage() {
        use crate::domain::analytics::{RecentPaging, TopEvent};
        // Span 0: load 10..50 ms, "old" once; span 1: load 60..100 ms and one implausible,
        // "new" later, "tiny" 5 ms, "untimed", "broken" implausible only.
        let a = through_rollups(&[Part::EventNames], |f, span| {
            let base = T + span * 3_600_000;
            for i in 1..=5 {
                f.event(base, "load", Some(f64::from(i + 5 * span as i32) * 10.0));
            }
            if span == 0 {
                f.event(base, "old", None);
            } else {
                f.event(base, "load", Some(1e308));
                f.event(base + 5, "new", None);
                f.event(base, "tiny", Some(5.0));
                f.event(base, "untimed", None);
                f.event(base, "broken", Some(1e300));
            }
        });
        let paging = RecentPaging { page: 1, limit: 4 };
        let report = a.events_report(None, paging);
        assert_eq!(report.total_events, 16);
        assert_eq!(
            report.unique_event_names,
            ["broken", "load", "new", "old", "tiny", "untimed"]
        );
        let top: Vec<&str> = report
            .top_events
            .iter()
            .map(|e| e.event_name.as_str())
            .collect();
        assert_eq!(
            top,
            ["load", "new", "broken", "tiny", "untimed", "old"],
            "count, newest, name"
        );
        assert_eq!(report.implausible_durations, 2);
        assert_eq!(
            report.timed_events.len(),
            2,
            "names without a plausible duration are left out"
        );
        let load = &report.timed_events[0];
        assert_eq!((load.event_name.as_str(), load.count), ("load", 10));
        assert_eq!((load.avg_ms, load.max_ms), (55.0, 100.0));
        assert_eq!((load.p50_ms, load.p95_ms), (Some(50.0), Some(90.0)));
        assert_eq!(report.timed_events[1].p95_ms, Some(5.0));
        assert_eq!(report.recent_pagination.total_pages, 4);
        assert!(
            report.recent_occurrences.is_empty(),
            "the store reads the page"
        );

        let only = through_rollups(&[Part::EventNames], |f, span| {
            f.event(T + span, "a", None);
            f.event(T + span, "b", Some(1.0));
        })
        .events_report(Some("b"), paging);
        assert_eq!(only.total_events, 2);
        assert_eq!(
            only.unique_event_names,
            ["a", "b"],
            "the name list ignores the name filter"
        );
        assert_eq!(
            only.top_events,
            vec![TopEvent {
                event_name: "b".into(),
                count: 2,
                most_recent_timestamp: crate::domain::timestamp::to_iso(T + 1),
            }]
        );
    }

    #[test]
    fn event_detail_keeps_distinct_typed_property_values_newest_first() {
        let mut f = Folder::new(&[Part::EventNames, Part::EventProperties]);
        let props = |v: serde_json::Value| v.as_object().unwrap().clone();
        for (ts, p) in [
            (T, serde_json::json!({"plan": "pro", "n": 3})),
            (T + 1, serde_json::json!({"plan": "free", "n": "3"})),
            (T + 2, serde_json::json!({"plan": "pro"})),
        ] {
            f.event(ts, "signup", Some(10.0));
            f.properties(ts, "signup", &props(p));
            f.event(ts, "other", None);
            f.properties(ts, "other", &props(serde_json::json!({"x": 1})));
        }
        let detail = f.finish().event_detail("signup");
        assert_eq!(detail.property_schema.len(), 2);
        assert_eq!(detail.property_schema[0].key, "n");
        assert_eq!(
            detail.property_schema[0].sample_values,
            vec![serde_json::json!("3"), serde_json::json!(3)]
        );
        assert_eq!(
            detail.property_schema[1].sample_values,
            vec![serde_json::json!("pro"), serde_json::json!("free")]
        );
        assert_eq!(detail.duration_summary.count, 3);
        assert_eq!(detail.events_by_day.len(), 1);
        let none = Folder::new(&[Part::EventNames]).finish().event_detail("x");
        assert_eq!(
            (none.duration_summary.count, none.duration_summary.avg_ms),
            (0, None)
        );
    }

    #[test]
    fn error_groups_are_described_by_their_first_occurrence_across_buckets() {
        use crate::analytics::rollup::ErrorRow;
        let row = |fp: &'static str, order: u8, message: &'static str| ErrorRow {
            fingerprint: Some(fp),
            order: [order; 12],
            message: Some(message),
            browser: (message == "first").then_some("Chrome"),
            ..Default::default()
        };
        let a = through_rollups(&[Part::Errors, Part::ErrorGroups], |f, span| {
            if span == 0 {
                f.error(T, &row("f1", 2, "second"));
                f.error(T, &row("f1", 1, "first"));
                f.error(T, &row("f0", 0, "other"));
                f.error(
                    T,
                    &ErrorRow {
                        message: Some("no fingerprint"),
                        ..Default::default()
                    },
                );
            } else {
                f.error(T + 9 * 3_600_000, &row("f1", 0, "newest"));
            }
        });
        let detail = through_rollups(&[Part::ErrorGroups], |f, span| {
            f.error(T + span * 3_600_000, &row("f1", 0, "x"));
        })
        .error_detail("f1");
        assert_eq!(detail.total_occurrences, 2);
        assert_eq!(
            detail.first_seen.as_deref(),
            Some(crate::domain::timestamp::to_iso(T).as_str())
        );
        assert_eq!(
            detail.last_seen,
            Some(crate::domain::timestamp::to_iso(T + 3_600_000))
        );
        let report = a.errors_report(10);
        assert_eq!((report.total_errors, report.unique_fingerprints), (5, 2));
        let g = &report.grouped_errors[0];
        assert_eq!((g.fingerprint.as_str(), g.count), ("f1", 3));
        assert_eq!(
            (g.message.as_str(), g.browser.as_deref()),
            ("first", Some("Chrome"))
        );
        assert_eq!(g.first_seen, crate::domain::timestamp::to_iso(T));
        assert_eq!(report.errors_by_day.len(), 2);
    }
}
