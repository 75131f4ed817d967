//! The query parameters each analytics view accepts, and the check that rejects anything else
//! before a view is parsed or a store is asked: an unknown parameter, or a value a filter cannot
//! use, is a [`BadParam`] naming the parameter (HTTP 400), never a silently widened result.
//! SuperInsights 1.x ignored such input and showed the default figures instead (e.g. 7 days for
//! `timeframe=2w`); an empty value still means "not set", as a submitted empty form field does.

use super::analytics::{FILTER_BROWSERS, FILTER_DEVICE_TYPES, RecentPaging, Timeframe, UNKNOWN};

/// The longest value any filter takes, in bytes (URLs, names and property values included).
pub const MAX_VALUE_BYTES: usize = 2048;

/// A parameter a view cannot use, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("query parameter `{name}`: {problem}")]
pub struct BadParam {
    pub name: String,
    pub problem: String,
    /// The JSON answer's `code`: `BAD_PARAMETER`, or `INVALID_DATE_RANGE` for a custom range.
    pub code: &'static str,
}

impl From<super::analytics::RangeProblem> for BadParam {
    fn from(p: super::analytics::RangeProblem) -> Self {
        BadParam {
            name: p.param.into(),
            problem: p.message,
            code: "INVALID_DATE_RANGE",
        }
    }
}

/// What a parameter's value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// One of the timeframes (`5m` … `1y`).
    Timeframe,
    /// `desktop`, `mobile`, `tablet` or `all`.
    DeviceType,
    /// A device type as the breakdowns show it, any case: `desktop`, `mobile`, `tablet`,
    /// `(unknown)`, or `all`.
    Device,
    /// One of the browsers the filter offers, or `all`.
    Browser,
    /// An error group's signature key (16 lowercase hex digits).
    Signature,
    /// Which error groups are listed: `open`, `resolved`, `ignored`, `all`.
    GroupState,
    /// Any text (an exact match, a literal prefix).
    Text,
    /// A page number, 1 or more.
    Page,
    /// A page size, 1 to [`RecentPaging::MAX_LIMIT`].
    Limit,
    /// A JSON object of property filters.
    Meta,
    /// `csv` (or `json`, the default).
    Format,
    /// A dashboard table's name ([`DASHBOARD_TABLES`]).
    Table,
    /// An on/off switch: `1` or `0`.
    Flag,
}

/// The dashboard's tables, by the name `table=` gives them (CSV downloads).
pub const DASHBOARD_TABLES: [&str; 13] = [
    "page",
    "entryPage",
    "exitPage",
    "event",
    "referrer",
    "utmSource",
    "utmMedium",
    "utmCampaign",
    "country",
    "browser",
    "os",
    "deviceType",
    "error",
];

/// The visitor filter every drill-down accepts (reference §4.7), both spellings.
const CLIENT: [(&str, Kind); 2] = [("clientId", Kind::Text), ("client_id", Kind::Text)];

/// The user and property filters of the documents that carry them (events, errors, web vitals;
/// page views have neither), both spellings.
const PEOPLE: [(&str, Kind); 5] = [
    ("userId", Kind::Text),
    ("user_id", Kind::Text),
    ("meta", Kind::Meta),
    ("metaKey", Kind::Text),
    ("metaValue", Kind::Text),
];

/// The page-view fields (segment, country, referrer host), each matched case-insensitively
/// against the value its breakdown shows, so any breakdown row (`(unknown)` too) filters.
const PAGEVIEW_SEGMENT: [(&str, Kind); 11] = [
    ("browser", Kind::Text),
    ("os", Kind::Text),
    ("utmSource", Kind::Text),
    ("utm_source", Kind::Text),
    ("utmMedium", Kind::Text),
    ("utm_medium", Kind::Text),
    ("utmCampaign", Kind::Text),
    ("utm_campaign", Kind::Text),
    ("deviceType", Kind::Device),
    ("country", Kind::Text),
    ("referrer", Kind::Text),
];

/// The dashboard's own filters besides the page-view fields: the URL (prefix or path) and the
/// event name; `format=csv` with `table` downloads one table (the drill-downs take `format=csv`
/// for their main table); `from` and `to` pick a custom range of days (checked together by
/// `DayRange::parse`); `compare=1` overlays the previous period on the page-view chart;
/// `signature` restricts the errors block to one error group.
const DASHBOARD_OWN: [(&str, Kind); 8] = [
    ("compare", Kind::Flag),
    ("urlPrefix", Kind::Text),
    ("entryPage", Kind::Text),
    ("exitPage", Kind::Text),
    ("eventName", Kind::Text),
    ("signature", Kind::Signature),
    ("format", Kind::Format),
    ("table", Kind::Table),
];

/// The custom range every view takes instead of its timeframe: `from` and `to`, checked
/// together by `DayRange::parse` (a 400 `INVALID_DATE_RANGE`).
const RANGE: [(&str, Kind); 2] = [("from", Kind::Text), ("to", Kind::Text)];

/// An analytics view, by the parameters it accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum View {
    /// The dashboard and its data route.
    Dashboard,
    /// The page-views report.
    Pageviews,
    /// The events report and its live refresh.
    Events,
    /// One event name.
    EventDetail,
    /// The errors report.
    Errors,
    /// One error fingerprint.
    ErrorDetail,
    /// The performance report.
    Performance,
}

impl View {
    fn own(self) -> &'static [(&'static str, Kind)] {
        match self {
            View::Dashboard => &DASHBOARD_OWN,
            View::ErrorDetail => &[],
            View::Pageviews => &[
                ("urlPrefix", Kind::Text),
                ("entryPage", Kind::Text),
                ("exitPage", Kind::Text),
                ("format", Kind::Format),
            ],
            View::Events => &[
                ("eventName", Kind::Text),
                ("recentPage", Kind::Page),
                ("recentLimit", Kind::Limit),
                ("format", Kind::Format),
            ],
            View::EventDetail => &[],
            View::Errors => &[
                ("browser", Kind::Browser),
                ("errorType", Kind::Text),
                ("signature", Kind::Signature),
                ("state", Kind::GroupState),
                ("format", Kind::Format),
            ],
            View::Performance => &[
                ("deviceType", Kind::DeviceType),
                ("browser", Kind::Browser),
                ("format", Kind::Format),
            ],
        }
    }

    /// The segment fields (reference §4.7) that apply to the view's documents.
    fn segment(self) -> [&'static [(&'static str, Kind)]; 2] {
        match self {
            View::Dashboard => [&[], &PAGEVIEW_SEGMENT],
            View::ErrorDetail => [&[], &[]],
            View::Pageviews => [&CLIENT, &PAGEVIEW_SEGMENT],
            View::Events | View::EventDetail | View::Errors | View::Performance => {
                [&CLIENT, &PEOPLE]
            }
        }
    }

    fn kind_of(self, name: &str) -> Option<Kind> {
        if name == "timeframe" {
            return Some(Kind::Timeframe);
        }
        let [a, b] = self.segment();
        self.own()
            .iter()
            .chain(&RANGE)
            .chain(a)
            .chain(b)
            .find(|(n, _)| *n == name)
            .map(|(_, k)| *k)
    }

    /// Rejects the first parameter the view does not take or cannot use.
    pub fn check<'a>(
        self,
        params: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<(), BadParam> {
        for (name, value) in params {
            let bad = |problem: String| BadParam {
                name: name.chars().take(64).collect(),
                problem,
                code: "BAD_PARAMETER",
            };
            let Some(kind) = self.kind_of(name) else {
                return Err(bad("not a parameter of this view".into()));
            };
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            if value.len() > MAX_VALUE_BYTES {
                return Err(bad(format!("longer than {MAX_VALUE_BYTES} bytes")));
            }
            if value.contains('\0') {
                return Err(bad("contains a NUL character".into()));
            }
            check_value(kind, value).map_err(bad)?;
        }
        Ok(())
    }
}

fn one_of(value: &str, allowed: &[&str]) -> Result<(), String> {
    if allowed.contains(&value) {
        Ok(())
    } else {
        Err(format!("expected one of {}", allowed.join(", ")))
    }
}

fn check_value(kind: Kind, value: &str) -> Result<(), String> {
    match kind {
        Kind::Timeframe => one_of(value, &Timeframe::ALL.map(Timeframe::as_str)),
        Kind::DeviceType => one_of(value, &[FILTER_DEVICE_TYPES.as_slice(), &["all"]].concat()),
        Kind::Browser => one_of(value, &[FILTER_BROWSERS.as_slice(), &["all"]].concat()),
        Kind::Text => Ok(()),
        Kind::Signature if crate::domain::error_signature::is_signature_key(value) => Ok(()),
        Kind::Signature => Err("expected an error group signature (16 hex digits)".into()),
        Kind::GroupState => one_of(value, &crate::domain::error_groups::StateFilter::NAMES),
        Kind::Device => one_of(
            &value.to_ascii_lowercase(),
            &[FILTER_DEVICE_TYPES.as_slice(), &["all", UNKNOWN]].concat(),
        ),
        Kind::Format => one_of(value, &["json", "csv"]),
        Kind::Table => one_of(value, &DASHBOARD_TABLES),
        Kind::Flag => one_of(value, &["1", "0"]),
        Kind::Page => match value.parse::<u32>() {
            Ok(n) if n >= 1 => Ok(()),
            _ => Err("expected a page number (1 or more)".into()),
        },
        Kind::Limit => match value.parse::<u32>() {
            Ok(n) if (1..=RecentPaging::MAX_LIMIT).contains(&n) => Ok(()),
            _ => Err(format!(
                "expected a number from 1 to {}",
                RecentPaging::MAX_LIMIT
            )),
        },
        Kind::Meta => match serde_json::from_str::<serde_json::Value>(value) {
            Ok(serde_json::Value::Object(map))
                if map.values().all(|v| {
                    matches!(
                        v,
                        serde_json::Value::String(_)
                            | serde_json::Value::Number(_)
                            | serde_json::Value::Bool(_)
                    )
                }) =>
            {
                Ok(())
            }
            _ => Err("expected a JSON object of strings, numbers or booleans".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Query<'a> = &'a [(&'a str, &'a str)];

    fn check(view: View, query: Query<'_>) -> Result<(), BadParam> {
        view.check(query.iter().copied())
    }

    #[test]
    fn what_a_view_offers_passes_and_empty_values_mean_unset() {
        assert!(check(View::Dashboard, &[("timeframe", "24h")]).is_ok());
        assert!(
            check(
                View::Pageviews,
                &[
                    ("timeframe", "30d"),
                    ("deviceType", "mobile"),
                    ("urlPrefix", "/blog?x=%_"),
                    ("browser", "Any Browser 1.0"),
                    ("utm_source", "news"),
                    ("client_id", "c1"),
                ]
            )
            .is_ok()
        );
        assert!(
            check(
                View::Events,
                &[
                    ("recentPage", "3"),
                    ("recentLimit", "50"),
                    ("eventName", "x")
                ]
            )
            .is_ok()
        );
        assert!(
            check(
                View::Errors,
                &[("browser", "all"), ("errorType", "TypeError")]
            )
            .is_ok()
        );
        assert!(
            check(
                View::Performance,
                &[("deviceType", ""), ("browser", "Safari")]
            )
            .is_ok()
        );
    }

    #[test]
    fn unknown_parameters_and_unusable_values_name_the_parameter() {
        let cases: [(View, Query<'_>, &str); 14] = [
            (View::Pageviews, &[("userId", "u1")], "userId"),
            (View::Dashboard, &[("timeframe", "2w")], "timeframe"),
            (View::Dashboard, &[("clientId", "c1")], "clientId"),
            (View::Dashboard, &[("format", "xls")], "format"),
            (View::Dashboard, &[("table", "users")], "table"),
            (View::Events, &[("country", "DE")], "country"),
            (View::Dashboard, &[("deviceType", "watch")], "deviceType"),
            (View::Pageviews, &[("eventName", "x")], "eventName"),
            (View::Events, &[("recentLimit", "51")], "recentLimit"),
            (View::Events, &[("recentPage", "0")], "recentPage"),
            (View::Events, &[("os", "Linux")], "os"),
            (View::Errors, &[("browser", "Opera")], "browser"),
            (View::Performance, &[("meta", "[1]")], "meta"),
            (View::ErrorDetail, &[("clientId", "c")], "clientId"),
        ];
        for (view, query, name) in cases {
            let err = check(view, query).unwrap_err();
            assert_eq!(err.name, name, "{view:?} {query:?}");
            assert!(!err.problem.is_empty());
        }
        let long = "x".repeat(MAX_VALUE_BYTES + 1);
        assert_eq!(
            check(View::Pageviews, &[("urlPrefix", &long)])
                .unwrap_err()
                .name,
            "urlPrefix"
        );
        assert!(check(View::Events, &[("eventName", "a\0b")]).is_err());
    }
}
