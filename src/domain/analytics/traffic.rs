//! The page-views and events drill-downs (reference §4.3, §4.4): their filters, paging, top
//! lists, event details and property schemas. JSON field names are SuperInsights 1.x's.

use super::*;

/// Top pages and top events on the drill-down pages (SuperInsights 1.x: 10).
pub const REPORT_TOP: usize = 10;
/// Occurrences on an event's detail page (SuperInsights 1.x: the latest 100).
pub const DETAIL_OCCURRENCES: u32 = 100;
/// Distinct sample values kept per property key.
pub const SCHEMA_SAMPLES: usize = 5;

/// What page views are restricted to (the page-views report, the dashboard). `url_prefix` is a
/// literal, anchored prefix (no pattern characters) of the URL or, when it starts with `/`, of
/// the URL's path ([`url_has_prefix`]); `segment` applies as reference §4.7 maps it onto page
/// views; `country` and `referrer` (a host, as the breakdown shows it) are page-view fields too.
/// Every field but the URL and the client id is matched case-insensitively against the value the
/// breakdowns show ([`Dimension::value_of`]), so a breakdown row's value always filters to that
/// row. [`PageViewFilters::matches`] is the one definition; stores push down the client id only.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PageViewFilters {
    pub device_type: Option<crate::domain::model::DeviceType>,
    pub url_prefix: Option<String>,
    pub segment: crate::domain::segment::SegmentFilters,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub referrer: Option<String>,
    /// Only the page views of visits whose first page view is this page ([`same_page`]); the
    /// engine resolves it through the visits of the range, not per page view.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_page: Option<String>,
    /// Only the page views of visits whose last page view is this page ([`same_page`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_page: Option<String>,
}

/// True when `url` is the page `wanted`: equal, or, for a `wanted` path (starting with `/`),
/// the path (with its query) of an absolute `url` is exactly `wanted`. What an entry or exit
/// page filter matches.
pub fn same_page(url: &str, wanted: &str) -> bool {
    if url == wanted {
        return true;
    }
    if !wanted.starts_with('/') || !url_has_prefix(url, wanted) {
        return false;
    }
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').is_some_and(|i| &rest[i..] == wanted),
        None => false,
    }
}

/// True when `url` starts with `prefix` literally, or, for a prefix that is a path (starts with
/// `/`), when the path of an absolute `url` (`scheme://host/path…`) does: `/blog/` finds
/// `https://shop.example/blog/a` as well as a stored `/blog/a`. Case matters (paths are
/// case-sensitive); an empty prefix matches everything.
pub fn url_has_prefix(url: &str, prefix: &str) -> bool {
    if url.starts_with(prefix) {
        return true;
    }
    if !prefix.starts_with('/') {
        return false;
    }
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    match rest.find(['/', '?', '#']) {
        Some(i) if rest[i..].starts_with('/') => rest[i..].starts_with(prefix),
        _ => false,
    }
}

/// True when `shown` equals `wanted` ignoring case (Unicode lowercase of both).
fn same_ignoring_case(shown: &str, wanted: &str) -> bool {
    shown
        .chars()
        .flat_map(char::to_lowercase)
        .eq(wanted.chars().flat_map(char::to_lowercase))
}

impl Dimension {
    /// True when a page view whose stored field is `stored` shows `wanted` under this dimension,
    /// ignoring case: what a click on a breakdown row filters to.
    pub fn matches(self, stored: Option<&str>, wanted: &str) -> bool {
        same_ignoring_case(&self.value_of(stored), wanted)
    }

    /// True when `value` is what this dimension shows for a missing field (`(direct)`,
    /// `(none)`, `(unknown)`), in any case.
    pub fn is_placeholder(self, value: &str) -> bool {
        self.matches(None, value)
    }
}

impl PageViewFilters {
    /// True when nothing restricts the page views.
    pub fn is_empty(&self) -> bool {
        *self == PageViewFilters::default()
    }

    /// The wanted value per dimension (in `Dimension::ALL` order); the device is the page's own
    /// `device_type` or the segment's.
    pub fn by_dimension(&self) -> [Option<&str>; 8] {
        let s = &self.segment;
        [
            self.referrer.as_deref(),
            s.utm_source.as_deref(),
            s.utm_medium.as_deref(),
            s.utm_campaign.as_deref(),
            self.country.as_deref(),
            s.browser.as_deref(),
            s.os.as_deref(),
            self.device_type
                .map(|d| d.as_str())
                .or(s.device_type.as_deref()),
        ]
    }

    /// True when the entry or exit page restricts the page views (to whole visits).
    pub fn by_visit(&self) -> bool {
        self.entry_page.is_some() || self.exit_page.is_some()
    }

    /// True when a page view passes every filter: its `url` by [`url_has_prefix`], its client
    /// id exactly, each stored breakdown field (`dims`, in `Dimension::ALL` order) by
    /// [`Dimension::matches`]. Filters page views do not carry (user, metadata) do not apply
    /// (reference §4.7); the entry and exit page are matched per visit by the engine.
    pub fn matches(&self, url: &str, client: Option<&str>, dims: [Option<&str>; 8]) -> bool {
        let s = &self.segment;
        if let Some(c) = &s.client_id
            && client != Some(c.as_str())
        {
            return false;
        }
        if let Some(p) = &self.url_prefix
            && !url_has_prefix(url, p)
        {
            return false;
        }
        if let (Some(own), Some(seg)) = (self.device_type, &s.device_type)
            && !same_ignoring_case(own.as_str(), seg)
        {
            return false;
        }
        (Dimension::ALL.iter().zip(self.by_dimension()).zip(dims))
            .all(|((dim, wanted), stored)| wanted.is_none_or(|w| dim.matches(stored, w)))
    }
}

#[cfg(test)]
mod filter_tests {
    use super::*;

    #[test]
    fn an_entry_page_is_one_url_or_one_path_with_its_query() {
        assert!(same_page("https://x.example/a", "https://x.example/a"));
        assert!(same_page("https://x.example/a?b=1", "/a?b=1"));
        assert!(same_page("/a", "/a"));
        assert!(!same_page("https://x.example/ab", "/a"));
        assert!(!same_page("https://x.example/a/", "/a"));
        assert!(!same_page("https://x.example/A", "/a"));
        assert!(!same_page("https://x.example/a", "x.example/a"));
    }

    #[test]
    fn a_path_prefix_finds_absolute_urls_and_stored_paths_but_keeps_case() {
        assert!(url_has_prefix("https://shop.example/blog/a?x=1", "/blog/"));
        assert!(url_has_prefix("/blog/a", "/blog/"));
        assert!(url_has_prefix(
            "https://shop.example/blog/a",
            "https://shop.example/blog"
        ));
        assert!(!url_has_prefix("https://shop.example/Blog/a", "/blog/"));
        assert!(!url_has_prefix("https://shop.example?/blog/", "/blog/"));
        assert!(!url_has_prefix("https://blog.example/x", "blog"));
        assert!(url_has_prefix("anything", ""));
    }

    #[test]
    fn breakdown_values_filter_case_insensitively_and_placeholders_find_missing_fields() {
        let f = PageViewFilters {
            country: Some("de".into()),
            referrer: Some("NEWS.example".into()),
            segment: crate::domain::segment::SegmentFilters {
                browser: Some("firefox".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut dims = [None; 8];
        dims[0] = Some("https://www.news.example/story");
        dims[4] = Some("DE");
        dims[5] = Some("Firefox");
        assert!(f.matches("/", None, dims));
        dims[5] = Some("Chrome");
        assert!(!f.matches("/", None, dims));
        let direct = PageViewFilters {
            referrer: Some("(Direct)".into()),
            ..Default::default()
        };
        assert!(direct.matches("/", None, [None; 8]));
        assert!(Dimension::Country.is_placeholder("(UNKNOWN)"));
        assert!(!Dimension::Country.is_placeholder("DE"));
        let client = PageViewFilters {
            segment: crate::domain::segment::SegmentFilters {
                client_id: Some("C1".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(client.matches("/", Some("C1"), [None; 8]));
        assert!(!client.matches("/", Some("c1"), [None; 8]), "ids are exact");
    }
}

/// One row of the page-views report's top pages.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageStats {
    pub url: String,
    pub views: u64,
    /// Distinct `clientId`s on that URL; views without one count as one more.
    pub unique_visitors: u64,
}

/// The page-views report (without the timeframe, which the caller adds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageViewsReport {
    pub total_views: u64,
    pub unique_visitors: u64,
    pub views_by_day: Vec<DayCount>,
    /// The [`REPORT_TOP`] most viewed URLs, ties by URL.
    pub top_pages: Vec<PageStats>,
}

/// What the events reports are restricted to: an exact event name (lists only) and the segment,
/// which for events means `clientId`, `properties.userId` and `properties.<meta key>`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventFilters {
    pub event_name: Option<String>,
    pub segment: crate::domain::segment::SegmentFilters,
}

/// Which page of recent occurrences to show: `page` ≥ 1, `limit` in 1..=50.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecentPaging {
    pub page: u32,
    pub limit: u32,
}

impl Default for RecentPaging {
    fn default() -> Self {
        Self { page: 1, limit: 10 }
    }
}

impl RecentPaging {
    pub const MAX_LIMIT: u32 = 50;

    /// From the `recentPage` and `recentLimit` query values: unparsable values take the defaults
    /// (page 1, limit 10); out-of-range ones are clamped.
    pub fn parse(page: Option<&str>, limit: Option<&str>) -> Self {
        let number = |s: Option<&str>| s.and_then(|s| s.trim().parse::<i64>().ok());
        Self {
            page: number(page).map_or(1, |p| p.clamp(1, i64::from(u32::MAX)) as u32),
            limit: number(limit).map_or(10, |l| l.clamp(1, i64::from(Self::MAX_LIMIT)) as u32),
        }
    }

    /// Rows to skip before this page.
    pub fn offset(self) -> u64 {
        u64::from(self.page - 1) * u64::from(self.limit)
    }
}

/// `recentPagination` of the events report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pagination {
    pub page: u32,
    pub limit: u32,
    /// Occurrences matching the filters.
    pub total: u64,
    /// ⌈total ÷ limit⌉, at least 1.
    pub total_pages: u64,
}

impl Pagination {
    pub fn of(paging: RecentPaging, total: u64) -> Self {
        let limit = u64::from(paging.limit.max(1));
        Self {
            page: paging.page,
            limit: paging.limit,
            total,
            total_pages: total.div_ceil(limit).max(1),
        }
    }
}

/// One event name with its count and latest occurrence (ISO time).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopEvent {
    pub event_name: String,
    pub count: u64,
    pub most_recent_timestamp: String,
}

/// A recent occurrence, with the fields SuperInsights 1.x lists (absent fields are omitted).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Occurrence {
    #[serde(rename = "_id")]
    pub id: String,
    pub event_name: String,
    /// ISO time.
    pub timestamp: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    pub properties: serde_json::Value,
}

/// Durations of one timed event name (events carrying `durationMs`), in milliseconds.
/// Percentiles are exact (lower nearest rank).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimedEvent {
    pub event_name: String,
    pub count: u64,
    pub avg_ms: f64,
    pub max_ms: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
}

/// The events report (without the timeframe and event name, which the caller adds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsReport {
    pub total_events: u64,
    pub events_by_day: Vec<DayCount>,
    /// Every event name in the range and segment, sorted; ignores the event-name filter.
    pub unique_event_names: Vec<String>,
    /// [`REPORT_TOP`] names by count, then most recent first, then name.
    pub top_events: Vec<TopEvent>,
    /// The requested page, newest first.
    pub recent_occurrences: Vec<Occurrence>,
    pub recent_pagination: Pagination,
    /// [`REPORT_TOP`] timed names by p95, then average, then maximum (descending), then name.
    pub timed_events: Vec<TimedEvent>,
    /// Events in range whose `durationMs` lies beyond [`crate::domain::plausible`]'s bound: left
    /// out of `timed_events`.
    #[serde(default)]
    pub implausible_durations: u64,
}

/// A top-level property key of an event with up to [`SCHEMA_SAMPLES`] distinct values, the
/// most recently seen first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PropertyKey {
    pub key: String,
    pub sample_values: Vec<serde_json::Value>,
}

/// Durations of one event name; everything `None` (and `count` 0) without timed occurrences.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DurationSummary {
    pub count: u64,
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Occurrences whose duration lies beyond [`crate::domain::plausible`]'s bound: left out of
    /// the figures above.
    #[serde(default)]
    pub implausible: u64,
}

/// One event name in detail.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventDetail {
    /// The latest [`DETAIL_OCCURRENCES`] documents, newest first, with every stored field but
    /// the visitor's IP (`_id`, `timestamp` as ISO).
    pub occurrences: Vec<serde_json::Value>,
    /// Keys sorted.
    pub property_schema: Vec<PropertyKey>,
    pub events_by_day: Vec<DayCount>,
    pub duration_summary: DurationSummary,
}

/// The JSON type name of a property's samples, for the detail page: `string`, `number`,
/// `boolean`, `object`, `array`, `null`, or `mixed` when the samples disagree (nulls aside).
pub fn inferred_type(samples: &[serde_json::Value]) -> &'static str {
    use serde_json::Value;
    let name = |v: &Value| match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let mut found: Option<&'static str> = None;
    for v in samples.iter().filter(|v| !v.is_null()) {
        match found {
            None => found = Some(name(v)),
            Some(t) if t != name(v) => return "mixed",
            Some(_) => {}
        }
    }
    found.unwrap_or("null")
}

#[cfg(test)]
mod report_tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn recent_paging_defaults_and_clamps() {
        assert_eq!(RecentPaging::parse(None, None), RecentPaging::default());
        assert_eq!(
            RecentPaging::parse(Some("0"), Some("0")),
            RecentPaging { page: 1, limit: 1 }
        );
        assert_eq!(
            RecentPaging::parse(Some("3"), Some("500")),
            RecentPaging { page: 3, limit: 50 }
        );
        assert_eq!(
            RecentPaging::parse(Some("x"), Some("-4")),
            RecentPaging { page: 1, limit: 1 }
        );
        assert_eq!(RecentPaging { page: 3, limit: 10 }.offset(), 20);
    }

    #[test]
    fn pagination_counts_pages_and_has_at_least_one() {
        let p = |total| Pagination::of(RecentPaging { page: 2, limit: 10 }, total).total_pages;
        assert_eq!((p(0), p(1), p(10), p(11), p(20)), (1, 1, 1, 2, 2));
    }

    #[test]
    fn property_types_are_inferred_from_samples() {
        assert_eq!(inferred_type(&[json!("a"), json!("b")]), "string");
        assert_eq!(
            inferred_type(&[json!(1), Value::Null, json!(2.5)]),
            "number"
        );
        assert_eq!(inferred_type(&[json!(true)]), "boolean");
        assert_eq!(inferred_type(&[json!({"a": 1})]), "object");
        assert_eq!(inferred_type(&[json!([1])]), "array");
        assert_eq!(inferred_type(&[json!(1), json!("1")]), "mixed");
        assert_eq!(inferred_type(&[Value::Null]), "null");
        assert_eq!(inferred_type(&[]), "null");
    }

    use serde_json::Value;
}
