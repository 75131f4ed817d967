//! Breakdowns of page views (page, referrer, UTM, country, browser, OS, device): their rows,
//! dimensions and the values they show.

use super::*;

/// Rows per breakdown table on the dashboard.
pub const BREAKDOWN_TOP: usize = 5;
/// The breakdown value of a page view without a referrer (or an empty one).
pub const DIRECT: &str = "(direct)";
/// The breakdown value of a missing UTM field.
pub const NO_CAMPAIGN: &str = "(none)";
/// The breakdown value of a missing country, browser, OS or device type.
pub const UNKNOWN: &str = "(unknown)";

/// One row of a breakdown: a value and how many page views carry it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BreakdownRow {
    pub value: String,
    pub count: u64,
}

/// Page views in a range broken down by dimension; each list holds the top values by count
/// (ties by value, byte order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Breakdowns {
    /// Referrer host ([`referrer_host`]), `(direct)` without a referrer.
    pub referrer: Vec<BreakdownRow>,
    pub utm_source: Vec<BreakdownRow>,
    pub utm_medium: Vec<BreakdownRow>,
    pub utm_campaign: Vec<BreakdownRow>,
    pub country: Vec<BreakdownRow>,
    pub browser: Vec<BreakdownRow>,
    pub os: Vec<BreakdownRow>,
    pub device_type: Vec<BreakdownRow>,
    /// Page views per URL (the dashboard's expandable pages table; empty elsewhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub page: Vec<BreakdownRow>,
    /// Events per name (the dashboard's expandable events table; empty elsewhere).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub event: Vec<BreakdownRow>,
    /// Visits per entry page (their first page view's URL; the dashboard only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub entry_page: Vec<BreakdownRow>,
    /// Visits per exit page (their last page view's URL; the dashboard only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exit_page: Vec<BreakdownRow>,
}

/// The breakdown dimensions, in [`Breakdowns`] field order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    Referrer,
    UtmSource,
    UtmMedium,
    UtmCampaign,
    Country,
    Browser,
    Os,
    DeviceType,
}

impl Dimension {
    pub const ALL: [Dimension; 8] = [
        Dimension::Referrer,
        Dimension::UtmSource,
        Dimension::UtmMedium,
        Dimension::UtmCampaign,
        Dimension::Country,
        Dimension::Browser,
        Dimension::Os,
        Dimension::DeviceType,
    ];

    /// The value a page view shows under this dimension, given the stored field (`None` or
    /// blank = missing).
    pub fn value_of(self, stored: Option<&str>) -> String {
        let stored = stored.map(str::trim).filter(|s| !s.is_empty());
        match (self, stored) {
            (Dimension::Referrer, Some(r)) => referrer_host(r),
            (Dimension::Referrer, None) => DIRECT.to_string(),
            (Dimension::UtmSource | Dimension::UtmMedium | Dimension::UtmCampaign, None) => {
                NO_CAMPAIGN.to_string()
            }
            (_, None) => UNKNOWN.to_string(),
            (_, Some(v)) => v.to_string(),
        }
    }
}

impl Breakdowns {
    /// The list of one dimension.
    pub fn of_mut(&mut self, dim: Dimension) -> &mut Vec<BreakdownRow> {
        match dim {
            Dimension::Referrer => &mut self.referrer,
            Dimension::UtmSource => &mut self.utm_source,
            Dimension::UtmMedium => &mut self.utm_medium,
            Dimension::UtmCampaign => &mut self.utm_campaign,
            Dimension::Country => &mut self.country,
            Dimension::Browser => &mut self.browser,
            Dimension::Os => &mut self.os,
            Dimension::DeviceType => &mut self.device_type,
        }
    }

    /// Builds one dimension's list from full counts: count descending, then value, `top` rows.
    pub fn rank(counts: impl IntoIterator<Item = (String, u64)>, top: usize) -> Vec<BreakdownRow> {
        let mut rows: Vec<BreakdownRow> = counts
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .map(|(value, count)| BreakdownRow { value, count })
            .collect();
        rows.sort_unstable_by(|a, b| b.count.cmp(&a.count).then_with(|| a.value.cmp(&b.value)));
        rows.truncate(top);
        rows
    }
}

/// The host a referrer URL points at, lowercased, without `www.`, user info or port
/// (`https://www.Google.com/search?q=x` → `google.com`). A value without a scheme is read as
/// `host/path`; one without any host is `(unknown)`.
pub fn referrer_host(referrer: &str) -> String {
    let r = referrer.trim();
    let rest = r.split_once("://").map_or(r, |(_, rest)| rest);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host_port.split(':').next().unwrap_or_default()
    };
    let host = host.to_ascii_lowercase();
    let host = host.strip_prefix("www.").unwrap_or(&host);
    if host.is_empty() {
        UNKNOWN.to_string()
    } else {
        host.to_string()
    }
}

#[cfg(test)]
mod breakdown_tests {
    use super::*;

    #[test]
    fn referrers_group_by_host() {
        assert_eq!(
            referrer_host("https://www.Google.com/search?q=x"),
            "google.com"
        );
        assert_eq!(
            referrer_host("http://user@news.ycombinator.com:8080/item"),
            "news.ycombinator.com"
        );
        assert_eq!(
            referrer_host("android-app://com.example.app/"),
            "com.example.app"
        );
        assert_eq!(referrer_host("t.co/abc"), "t.co");
        assert_eq!(referrer_host("http://[::1]:3000/x"), "::1");
        assert_eq!(referrer_host("https:///nohost"), UNKNOWN);
        assert_eq!(Dimension::Referrer.value_of(Some("  ")), DIRECT);
        assert_eq!(Dimension::Referrer.value_of(None), DIRECT);
        assert_eq!(Dimension::UtmSource.value_of(None), NO_CAMPAIGN);
        assert_eq!(Dimension::Country.value_of(Some("")), UNKNOWN);
        assert_eq!(Dimension::Browser.value_of(Some("Firefox")), "Firefox");
    }

    #[test]
    fn ranking_is_by_count_then_value() {
        let rows = Breakdowns::rank(
            [
                ("b".to_string(), 2),
                ("a".to_string(), 2),
                ("c".to_string(), 5),
                ("z".to_string(), 0),
            ],
            2,
        );
        let got: Vec<_> = rows.iter().map(|r| (r.value.as_str(), r.count)).collect();
        assert_eq!(got, vec![("c", 5), ("a", 2)]);
    }
}
