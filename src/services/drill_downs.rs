//! The page-views and events drill-downs (reference §4.3, §4.4): query parsing into filters,
//! the cached report calls, and the JSON shapes SuperInsights 1.x answers (`si` CLI):
//! - page views `{timeframe,totalViews,uniqueVisitors,topPages,viewsByDay}`;
//! - events `{timeframe,eventName,totalEvents,uniqueEventNames,topEvents,recentOccurrences,
//!   recentPagination,eventsByDay,timedEvents}`;
//! - live `{timeframe,topEvents,recentOccurrences,recentPagination}` (computed fresh, never
//!   from the cache: it is the live view);
//! - event detail `{eventName,timeframe,segment,occurrences,propertySchema,eventsByDay,
//!   durationSummary}`.
//!
//! Holds no HTTP types: handlers pass the query pairs in.

use crate::{
    analytics::series::SeriesSource,
    domain::{
        analytics::{
            DayCount, DayRange, DurationSummary, EventFilters, Occurrence, PageViewFilters,
            PageViewsReport, Pagination, PropertyKey, RecentPaging, Span, TimedEvent, Timeframe,
            TopEvent,
        },
        ids::DocId,
        segment::SegmentFilters,
    },
    runtime::cache::DashboardCache,
    services::drill::Drill,
    store::{StoreResult, Stores},
};
use serde::{Deserialize, Serialize};

/// The first value of query parameter `name`, trimmed; `None` when missing or blank.
fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

fn segment_of(pairs: &[(String, String)]) -> SegmentFilters {
    SegmentFilters::from_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// A short digest of whatever tells two views of one kind apart, for cache keys.
fn variant(value: &impl Serialize) -> String {
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// What the page-views page was asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct PageViewsQuery {
    pub timeframe: Timeframe,
    /// A custom range of days in place of the timeframe (checked by the handler).
    pub days: Option<DayRange>,
    pub filters: PageViewFilters,
}

impl PageViewsQuery {
    /// `timeframe`, `deviceType` (any case; `all` or empty for all), `urlPrefix` (trimmed,
    /// literal; a path also finds absolute URLs), `country`, `referrer` (a host) and the
    /// page-view segment fields of reference §4.7, matched as [`PageViewFilters::matches`]
    /// says. Values are checked first (`domain::params`).
    pub fn parse(pairs: &[(String, String)]) -> Self {
        let mut segment = segment_of(pairs);
        if segment
            .device_type
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case("all"))
        {
            segment.device_type = None;
        }
        Self {
            timeframe: Timeframe::parse(param(pairs, "timeframe")),
            days: None,
            filters: PageViewFilters {
                device_type: None,
                url_prefix: param(pairs, "urlPrefix").map(str::to_string),
                country: param(pairs, "country").map(str::to_string),
                referrer: param(pairs, "referrer").map(str::to_string),
                entry_page: param(pairs, "entryPage").map(str::to_string),
                exit_page: param(pairs, "exitPage").map(str::to_string),
                segment,
            },
        }
    }

    /// The timeframe, or the custom range in its place.
    pub fn span(&self) -> Span {
        Span {
            timeframe: self.timeframe,
            days: self.days,
        }
    }
}

/// The page-views JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageViewsView {
    pub timeframe: Timeframe,
    #[serde(flatten)]
    pub report: PageViewsReport,
    /// The chart's series, bucketed by the length of the range (minutes to months), the
    /// partial buckets marked; the day list stays as in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<crate::analytics::series::TimeSeries>,
}

impl PageViewsView {
    /// Views per visitor, two decimals (`0.00` without visitors).
    pub fn avg_views_per_visitor(&self) -> String {
        if self.report.unique_visitors == 0 {
            return "0.00".into();
        }
        format!(
            "{:.2}",
            self.report.total_views as f64 / self.report.unique_visitors as f64
        )
    }
}

/// Existing values of the page-view fields over `span` (up to
/// [`crate::services::dashboard::BREAKDOWN_LIST`] each, most frequent first), to suggest in
/// filter fields: (query name, values).
pub async fn pageview_suggestions(
    stores: &Stores,
    cache: &DashboardCache,
    project: DocId,
    span: Span,
) -> StoreResult<Vec<(&'static str, Vec<String>)>> {
    let list = crate::services::dashboard::BREAKDOWN_LIST;
    let now = cache.now_ms();
    let token = span.cache_token();
    let variant = if token.is_empty() { "-" } else { &token };
    let b: crate::domain::analytics::Breakdowns = cache
        .get_or_compute("suggestions", project, span.timeframe, variant, || {
            let stats = stores.stats.clone();
            async move { stats.breakdowns(project, span.range(now), list).await }
        })
        .await?;
    let values = |rows: Vec<crate::domain::analytics::BreakdownRow>| {
        rows.into_iter().map(|r| r.value).collect::<Vec<_>>()
    };
    Ok(vec![
        ("country", values(b.country)),
        ("referrer", values(b.referrer)),
        ("browser", values(b.browser)),
        ("os", values(b.os)),
        ("utmSource", values(b.utm_source)),
        ("utmMedium", values(b.utm_medium)),
        ("utmCampaign", values(b.utm_campaign)),
    ])
}

/// The page-views report for a query, through the cache.
pub async fn pageviews(
    stores: &Stores,
    cache: &DashboardCache,
    project: DocId,
    query: &PageViewsQuery,
) -> StoreResult<PageViewsView> {
    let (timeframe, span) = (query.timeframe, query.span());
    let drill = Drill::new(stores, cache, project, span);
    let report = drill
        .cached("pageviews", &variant(&query.filters), |stats, range| {
            let filters = query.filters.clone();
            async move { stats.pageviews_report(project, range, &filters).await }
        })
        .await?;
    let source = SeriesSource::Pageviews(&query.filters);
    let series = drill
        .count_series("views", source, &report.views_by_day)
        .await?;
    Ok(PageViewsView {
        timeframe,
        report,
        series: Some(series),
    })
}

/// What the events pages were asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct EventsQuery {
    pub timeframe: Timeframe,
    /// A custom range of days in place of the timeframe (checked by the handler).
    pub days: Option<DayRange>,
    pub filters: EventFilters,
    pub paging: RecentPaging,
}

impl EventsQuery {
    /// `timeframe`, `eventName` (exact, trimmed), the events' segment fields, `recentPage` (≥ 1,
    /// default 1) and `recentLimit` (1–50, default 10).
    pub fn parse(pairs: &[(String, String)]) -> Self {
        Self {
            timeframe: Timeframe::parse(param(pairs, "timeframe")),
            days: None,
            filters: EventFilters {
                event_name: param(pairs, "eventName").map(str::to_string),
                segment: segment_of(pairs),
            },
            paging: RecentPaging::parse(param(pairs, "recentPage"), param(pairs, "recentLimit")),
        }
    }

    /// The timeframe, or the custom range in its place.
    pub fn span(&self) -> Span {
        Span {
            timeframe: self.timeframe,
            days: self.days,
        }
    }

    /// The query as URL pairs (timeframe and custom range, event name, segment, limit), for
    /// links that keep the filters; the page number is left to the caller.
    pub fn to_params(&self) -> Vec<(&'static str, String)> {
        let mut out = self.span().to_params();
        if let Some(name) = &self.filters.event_name {
            out.push(("eventName", name.clone()));
        }
        out.extend(self.filters.segment.to_params());
        out.push(("recentLimit", self.paging.limit.to_string()));
        out
    }
}

/// The events JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsView {
    pub timeframe: Timeframe,
    /// The event-name filter, `""` for all.
    pub event_name: String,
    pub total_events: u64,
    pub unique_event_names: Vec<String>,
    pub top_events: Vec<TopEvent>,
    pub recent_occurrences: Vec<Occurrence>,
    pub recent_pagination: Pagination,
    pub events_by_day: Vec<DayCount>,
    pub timed_events: Vec<TimedEvent>,
    /// Events whose duration is beyond the plausible bound, left out of `timed_events`.
    #[serde(default)]
    pub implausible_durations: u64,
    /// The chart's series, bucketed by the length of the range (minutes to months), the
    /// partial buckets marked; the day list stays as in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<crate::analytics::series::TimeSeries>,
}

/// The live JSON the events page polls.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveView {
    pub timeframe: Timeframe,
    pub top_events: Vec<TopEvent>,
    pub recent_occurrences: Vec<Occurrence>,
    pub recent_pagination: Pagination,
}

/// The events report for a query, through the cache.
pub async fn events(
    stores: &Stores,
    cache: &DashboardCache,
    project: DocId,
    query: &EventsQuery,
) -> StoreResult<EventsView> {
    let (timeframe, span) = (query.timeframe, query.span());
    let drill = Drill::new(stores, cache, project, span);
    let key = variant(&(&query.filters, query.paging));
    let report = drill
        .cached("events", &key, |stats, range| {
            let (filters, paging) = (query.filters.clone(), query.paging);
            async move { stats.events_report(project, range, &filters, paging).await }
        })
        .await?;
    let source = SeriesSource::Events {
        name: query.filters.event_name.as_deref(),
        segment: &query.filters.segment,
    };
    let series = drill
        .count_series("events", source, &report.events_by_day)
        .await?;
    Ok(EventsView {
        series: Some(series),
        timeframe,
        event_name: query.filters.event_name.clone().unwrap_or_default(),
        total_events: report.total_events,
        unique_event_names: report.unique_event_names,
        top_events: report.top_events,
        recent_occurrences: report.recent_occurrences,
        recent_pagination: report.recent_pagination,
        events_by_day: report.events_by_day,
        timed_events: report.timed_events,
        implausible_durations: report.implausible_durations,
    })
}

/// The live part of the events report, computed fresh (new events show on the next poll).
pub async fn live(
    stores: &Stores,
    project: DocId,
    query: &EventsQuery,
    now: i64,
) -> StoreResult<LiveView> {
    let report = stores
        .stats
        .events_report(
            project,
            query.span().range(now),
            &query.filters,
            query.paging,
        )
        .await?;
    Ok(LiveView {
        timeframe: query.timeframe,
        top_events: report.top_events,
        recent_occurrences: report.recent_occurrences,
        recent_pagination: report.recent_pagination,
    })
}

/// The event-detail JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetailView {
    pub event_name: String,
    pub timeframe: Timeframe,
    pub segment: SegmentFilters,
    pub occurrences: Vec<serde_json::Value>,
    pub property_schema: Vec<PropertyKey>,
    pub events_by_day: Vec<DayCount>,
    pub duration_summary: DurationSummary,
    /// The chart's series, bucketed by the length of the range (minutes to months), the
    /// partial buckets marked; the day list stays as in 1.x.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<crate::analytics::series::TimeSeries>,
}

/// One event name in detail over `span` (the events' segment fields from the query), through
/// the cache.
pub async fn event_detail(
    stores: &Stores,
    cache: &DashboardCache,
    project: DocId,
    event_name: &str,
    span: Span,
    pairs: &[(String, String)],
) -> StoreResult<EventDetailView> {
    let timeframe = span.timeframe;
    let segment = segment_of(pairs);
    let drill = Drill::new(stores, cache, project, span);
    let detail = drill
        .cached(
            "event",
            &variant(&(event_name, &segment)),
            |stats, range| {
                let (name, segment) = (event_name.to_string(), segment.clone());
                async move { stats.event_detail(project, range, &name, &segment).await }
            },
        )
        .await?;
    let source = SeriesSource::Events {
        name: Some(event_name),
        segment: &segment,
    };
    let series = drill
        .count_series("events", source, &detail.events_by_day)
        .await?;
    Ok(EventDetailView {
        series: Some(series),
        event_name: event_name.to_string(),
        timeframe,
        segment,
        occurrences: detail.occurrences,
        property_schema: detail.property_schema,
        events_by_day: detail.events_by_day,
        duration_summary: detail.duration_summary,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn page_view_queries_read_every_page_view_field_and_a_trimmed_prefix() {
        let q = PageViewsQuery::parse(&pairs(&[
            ("timeframe", "24h"),
            ("deviceType", "Tablet"),
            ("urlPrefix", "  /blog/ "),
            ("browser", "Firefox"),
            ("country", "de"),
            ("referrer", "news.example"),
        ]));
        assert_eq!(q.timeframe, Timeframe::H24);
        assert_eq!(
            q.filters.device_type, None,
            "the segment carries the device"
        );
        assert_eq!(q.filters.segment.device_type.as_deref(), Some("Tablet"));
        assert_eq!(q.filters.url_prefix.as_deref(), Some("/blog/"));
        assert_eq!(q.filters.segment.browser.as_deref(), Some("Firefox"));
        assert_eq!(q.filters.country.as_deref(), Some("de"));
        assert_eq!(q.filters.referrer.as_deref(), Some("news.example"));
        let q = PageViewsQuery::parse(&pairs(&[("deviceType", "all"), ("urlPrefix", " ")]));
        assert_eq!(q.filters, PageViewFilters::default());
        assert_eq!(q.timeframe, Timeframe::D7);
    }

    #[test]
    fn event_queries_parse_paging_and_round_trip_their_links() {
        let q = EventsQuery::parse(&pairs(&[
            ("eventName", " $click "),
            ("recentPage", "2"),
            ("recentLimit", "99"),
            ("metaKey", "plan"),
            ("metaValue", "pro"),
        ]));
        assert_eq!(q.filters.event_name.as_deref(), Some("$click"));
        assert_eq!(q.paging, RecentPaging { page: 2, limit: 50 });
        let again: Vec<(String, String)> = q
            .to_params()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .chain([("recentPage".to_string(), "2".to_string())])
            .collect();
        assert_eq!(EventsQuery::parse(&again), q);
    }

    #[test]
    fn average_views_per_visitor_has_two_decimals() {
        let view = |total_views, unique_visitors| PageViewsView {
            timeframe: Timeframe::D7,
            report: PageViewsReport {
                total_views,
                unique_visitors,
                ..Default::default()
            },
            series: None,
        };
        assert_eq!(view(8, 6).avg_views_per_visitor(), "1.33");
        assert_eq!(view(0, 0).avg_views_per_visitor(), "0.00");
    }
}
