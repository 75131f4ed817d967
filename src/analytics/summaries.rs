//! The dashboard summaries from exact aggregates: page views (totals, unique visitors, per day,
//! top pages), events, errors, web vitals (lower-nearest-rank percentiles, daily averages of
//! plausible values, the implausible count) and breakdowns. Pure: whatever span the [`Aggs`]
//! cover (rollups, raw edges or a whole raw scan), the figures come out the same way.

use super::{plan::DAY, rollup::Aggs};
use crate::domain::analytics::{
    Breakdowns, DayCount, Dimension, ErrorsSummary, EventCount, EventsSummary, METRICS, MetricsDay,
    PageCount, PageStats, PageViewsReport, PageViewsSummary, Percentiles, PerformanceFigures,
    PerformanceReport, utc_day,
};
use std::collections::{BTreeMap, HashMap};

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

impl Aggs {
    /// Page views: every view, unique visitors (page views without a `clientId` count as one
    /// visitor together), per UTC day, the `top` pages.
    pub(crate) fn pageviews_summary(self, top: usize) -> PageViewsSummary {
        let unnamed = self.unnamed.len() as u64;
        PageViewsSummary {
            total_views: self.pv_days.values().sum(),
            unique_visitors: self.clients.len() + unnamed + u64::from(self.pv_anon > 0),
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
            f.pageview(T, url, visitor, [None; 8]);
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
}
