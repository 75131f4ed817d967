//! The errors and performance drill-downs (reference §4.5, §4.6): their filters, error groups,
//! occurrences and details. JSON field names are SuperInsights 1.x's.

use super::*;

/// Error groups on the errors page (SuperInsights 1.x: the top 50 fingerprints).
pub const GROUPED_ERRORS_TOP: usize = 50;
/// Occurrences listed on an error's detail page (SuperInsights 1.x: the latest 100).
pub const ERROR_DETAIL_OCCURRENCES: usize = 100;
/// The browsers the errors and performance pages filter on; any other value means "all".
pub const FILTER_BROWSERS: [&str; 4] = ["Chrome", "Firefox", "Safari", "Edge"];
/// The device types the performance page filters on; any other value means "all".
pub const FILTER_DEVICE_TYPES: [&str; 3] = ["desktop", "mobile", "tablet"];

/// The index of the lower-nearest-rank `p` percentile among `n` sorted values (⌊p·(n−1)⌋),
/// the same rank [`percentile`] reads; for stores that fetch one value by offset.
pub fn rank_index(n: u64, p: f64) -> u64 {
    (p * n.saturating_sub(1) as f64).floor() as u64
}

/// Keeps only the segment fields that apply to errors and performance (reference §4.7:
/// `clientId`, `userId`, metadata). Metadata keys with an empty path segment (`a..b`, `.a`)
/// cannot name a field in either backend and are dropped, like other unusable values.
fn document_segment(
    segment: &crate::domain::segment::SegmentFilters,
) -> crate::domain::segment::SegmentFilters {
    crate::domain::segment::SegmentFilters {
        client_id: segment.client_id.clone(),
        user_id: segment.user_id.clone(),
        meta: segment
            .meta
            .iter()
            .filter(|(k, _)| k.split('.').all(|part| !part.is_empty()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..crate::domain::segment::SegmentFilters::default()
    }
}

/// A short stable digest of filters for cache keys (`-` when nothing filters).
fn filters_token(value: &impl Serialize, empty: bool) -> String {
    if empty {
        return "-".into();
    }
    use sha2::{Digest, Sha256};
    let json = serde_json::to_vec(value).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..8])
}

/// What the errors page is restricted to. Stores map `segment` onto `context.clientId`,
/// `context.userId` and `context.<key>` (reference §4.7), exact string matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorFilters {
    /// One of [`FILTER_BROWSERS`], or `None` for all.
    pub browser: Option<String>,
    /// An exact `errorType`, or `None` for all.
    pub error_type: Option<String>,
    /// Only `client_id`, `user_id` and `meta` are ever set.
    pub segment: crate::domain::segment::SegmentFilters,
    /// One error group's signature key (`domain::error_signature`), matched by the analytics
    /// engine (stores do not see it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

impl ErrorFilters {
    /// From query parameters: `browser` (only the four known values), `errorType` (non-empty,
    /// not `all`) and the segment parameters (§4.7). Unusable values are ignored.
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let mut f = ErrorFilters {
            segment: document_segment(&crate::domain::segment::SegmentFilters::from_params(
                params.clone(),
            )),
            ..Default::default()
        };
        for (name, value) in params {
            let value = value.trim();
            match name {
                "browser" if FILTER_BROWSERS.contains(&value) => f.browser = Some(value.into()),
                "errorType" if !value.is_empty() && value != "all" && !value.contains('\0') => {
                    f.error_type = Some(value.into())
                }
                "signature" if crate::domain::error_signature::is_signature_key(value) => {
                    f.signature = Some(value.into())
                }
                _ => {}
            }
        }
        f
    }

    pub fn is_empty(&self) -> bool {
        *self == ErrorFilters::default()
    }

    /// A short stable digest for cache keys (`-` when nothing filters).
    pub fn cache_token(&self) -> String {
        filters_token(self, self.is_empty())
    }
}

/// What the performance page is restricted to. Stores map `segment` onto `clientId`,
/// `properties.userId` and `properties.<key>` (reference §4.7), exact string matches.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceFilters {
    /// One of [`FILTER_DEVICE_TYPES`], or `None` for all.
    pub device_type: Option<String>,
    /// One of [`FILTER_BROWSERS`], or `None` for all.
    pub browser: Option<String>,
    /// Only `client_id`, `user_id` and `meta` are ever set.
    pub segment: crate::domain::segment::SegmentFilters,
}

impl PerformanceFilters {
    /// From query parameters: `deviceType` (`desktop|mobile|tablet`), `browser` (the four known
    /// values) and the segment parameters (§4.7). Unusable values are ignored.
    pub fn from_params<'a>(params: impl IntoIterator<Item = (&'a str, &'a str)> + Clone) -> Self {
        let segment = crate::domain::segment::SegmentFilters::from_params(params);
        PerformanceFilters {
            device_type: segment
                .device_type
                .clone()
                .filter(|d| FILTER_DEVICE_TYPES.contains(&d.as_str())),
            browser: segment
                .browser
                .clone()
                .filter(|b| FILTER_BROWSERS.contains(&b.as_str())),
            segment: document_segment(&segment),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == PerformanceFilters::default()
    }

    /// A short stable digest for cache keys (`-` when nothing filters).
    pub fn cache_token(&self) -> String {
        filters_token(self, self.is_empty())
    }
}

/// One fingerprint on the errors page; the descriptive fields come from its **earliest**
/// occurrence in the range (as in SuperInsights 1.x).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorGroup {
    pub fingerprint: String,
    pub message: String,
    pub browser: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub device_type: Option<String>,
    /// ISO time of the earliest occurrence in the range.
    pub first_seen: String,
    pub count: u64,
}

/// The errors report (without the timeframe, which the caller adds).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorsReport {
    pub total_errors: u64,
    pub errors_by_day: Vec<DayCount>,
    /// The top fingerprints by count, ties by fingerprint.
    pub grouped_errors: Vec<ErrorGroup>,
    /// Distinct fingerprints matching the same filters as `total_errors` (SuperInsights 1.x
    /// ignored the browser filter here; we do not).
    pub unique_fingerprints: u64,
    /// Every error signature (`domain::error_signature`) by count, ties by key, at most
    /// [`SIGNATURE_GROUPS_MAX`]; the caller applies the groups' states.
    #[serde(default)]
    pub signature_groups: Vec<SignatureGroup>,
    /// Distinct signatures under the same filters.
    #[serde(default)]
    pub unique_signatures: u64,
}

/// Error signatures a report carries at most (the errors page shows the top ones of a state).
pub const SIGNATURE_GROUPS_MAX: usize = 1000;
/// Pages and browsers shown per error group.
pub const SIGNATURE_GROUP_TOP: usize = 3;

/// A name with its number of occurrences.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCount {
    pub key: String,
    pub count: u64,
}

/// One error group as developers read it: every occurrence with the same signature (type,
/// normalised message, top frame). Descriptive fields come from its earliest occurrence in the
/// range.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignatureGroup {
    /// The signature key (16 hex digits).
    pub signature: String,
    /// The earliest occurrence's message.
    pub message: String,
    /// The normalised message the group is keyed by.
    pub pattern: String,
    pub error_type: Option<String>,
    /// The top stack frame without line and column.
    pub frame: Option<String>,
    /// The earliest occurrence's 1.x fingerprint (its detail page).
    pub fingerprint: String,
    pub count: u64,
    /// Distinct `userId`s (else `clientId`s) seen, at least this many when `visitors_more`.
    pub visitors: u64,
    pub visitors_more: bool,
    pub first_seen: String,
    pub last_seen: String,
    /// The most frequent pages (paths) and browsers, with counts.
    pub pages: Vec<KeyCount>,
    pub browsers: Vec<KeyCount>,
}

/// One stored occurrence of an error (absent fields are omitted from JSON).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorOccurrence {
    /// ISO time.
    pub timestamp: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line_number: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub column_number: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub os_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// Free JSON (the SDK sends `{url, userAgent}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<serde_json::Value>,
}

impl ErrorOccurrence {
    /// `context.url` when the context carries one.
    pub fn page_url(&self) -> Option<&str> {
        self.context.as_ref()?.get("url")?.as_str()
    }

    /// `file:line:column` when known.
    pub fn location(&self) -> Option<String> {
        let file = self.source_file.as_deref()?;
        let mut out = file.to_string();
        for n in [self.line_number, self.column_number].into_iter().flatten() {
            out.push_str(&format!(":{n}"));
        }
        Some(out)
    }
}

/// One fingerprint over a range: the **true** number of occurrences (SuperInsights 1.x showed
/// at most 100), first and last seen over all of them, per-day counts, and the newest ones.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorDetail {
    pub fingerprint: String,
    pub total_occurrences: u64,
    /// ISO time of the earliest occurrence in the range.
    pub first_seen: Option<String>,
    /// ISO time of the newest occurrence in the range.
    pub last_seen: Option<String>,
    pub errors_by_day: Vec<DayCount>,
    /// The newest occurrences (at most the requested limit), newest first.
    pub occurrences: Vec<ErrorOccurrence>,
}

impl ErrorDetail {
    /// The newest occurrence, whose message, type, stack, location and context the page shows.
    pub fn latest(&self) -> Option<&ErrorOccurrence> {
        self.occurrences.first()
    }
}

/// The performance report: the figures of the dashboard under filters, plus how many
/// measurements carry all four SuperInsights 1.x metrics (lcp, cls, fid, ttfb).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceReport {
    pub figures: PerformanceFigures,
    pub complete_measurements: u64,
}

#[cfg(test)]
mod diagnostics_tests {
    use super::*;

    fn pairs<'a>(p: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, &'a str)> + Clone {
        p.iter().copied()
    }

    #[test]
    fn error_filters_keep_known_browsers_real_types_and_document_segments() {
        let f = ErrorFilters::from_params(pairs(&[
            ("browser", "Firefox"),
            ("errorType", " unhandled_rejection "),
            ("clientId", "c1"),
            ("os", "Linux"),
            ("deviceType", "mobile"),
            ("meta", r#"{"release":"1.2","a..b":"x",".a":"y"}"#),
        ]));
        assert_eq!(f.browser.as_deref(), Some("Firefox"));
        assert_eq!(f.error_type.as_deref(), Some("unhandled_rejection"));
        assert_eq!(f.segment.client_id.as_deref(), Some("c1"));
        assert_eq!(
            (&f.segment.os, &f.segment.device_type, &f.segment.browser),
            (&None, &None, &None),
            "only clientId, userId and metadata apply to errors"
        );
        assert_eq!(
            f.segment.meta.keys().collect::<Vec<_>>(),
            vec!["release"],
            "keys with an empty path segment are dropped"
        );
        let all = ErrorFilters::from_params(pairs(&[
            ("browser", "Opera"),
            ("browser", "chrome"),
            ("errorType", "all"),
            ("errorType", "  "),
        ]));
        assert!(all.is_empty());
        assert_eq!(all.cache_token(), "-");
        assert_ne!(f.cache_token(), "-");
    }

    #[test]
    fn performance_filters_take_device_and_browser_from_the_query() {
        let f = PerformanceFilters::from_params(pairs(&[
            ("device_type", "tablet"),
            ("browser", "Safari"),
            ("userId", "u1"),
            ("utm_source", "news"),
        ]));
        assert_eq!(f.device_type.as_deref(), Some("tablet"));
        assert_eq!(f.browser.as_deref(), Some("Safari"));
        assert_eq!(f.segment.user_id.as_deref(), Some("u1"));
        assert_eq!(f.segment.utm_source, None);
        assert_eq!(f.segment.browser, None, "browser is the page's own filter");
        let all =
            PerformanceFilters::from_params(pairs(&[("deviceType", "tv"), ("browser", "IE")]));
        assert!(all.is_empty());
        assert_ne!(
            f.cache_token(),
            PerformanceFilters::from_params(pairs(&[("browser", "Safari")])).cache_token()
        );
    }

    #[test]
    fn rank_index_is_the_percentile_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        for p in [0.5, 0.75, 0.95] {
            assert_eq!(
                Some(v[rank_index(10, p) as usize]),
                percentile(&v, p),
                "p{p}"
            );
        }
        assert_eq!(rank_index(1, 0.95), 0);
        assert_eq!(rank_index(0, 0.5), 0);
    }

    #[test]
    fn occurrences_know_their_location_and_page() {
        let o = ErrorOccurrence {
            source_file: Some("app.js".into()),
            line_number: Some(3.0),
            column_number: Some(14.0),
            context: Some(serde_json::json!({"url": "https://x.example/"})),
            ..Default::default()
        };
        assert_eq!(o.location().as_deref(), Some("app.js:3:14"));
        assert_eq!(o.page_url(), Some("https://x.example/"));
        assert_eq!(ErrorOccurrence::default().location(), None);
    }
}
