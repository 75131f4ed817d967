//! The analytics documents as stored, with SuperInsights 1.x field names on the wire (camelCase)
//! and in MongoDB. Timestamps are UTC epoch milliseconds.

use super::ids::DocId;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The four ingestion channels, named as on the wire and as SuperInsights 1.x collections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    Pageviews,
    Events,
    Errors,
    Performance,
}

impl Channel {
    pub const ALL: [Channel; 4] = [
        Channel::Pageviews,
        Channel::Events,
        Channel::Errors,
        Channel::Performance,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Pageviews => "pageviews",
            Channel::Events => "events",
            Channel::Errors => "errors",
            Channel::Performance => "performance",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

/// Device class of a page view (SuperInsights 1.x rejects any other value).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeviceType {
    Desktop,
    Mobile,
    Tablet,
}

impl DeviceType {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceType::Desktop => "desktop",
            DeviceType::Mobile => "mobile",
            DeviceType::Tablet => "tablet",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "desktop" => Some(Self::Desktop),
            "mobile" => Some(Self::Mobile),
            "tablet" => Some(Self::Tablet),
            _ => None,
        }
    }
}

/// Facts the server adds to every document: the request's (IP, country, crawler) and whether the
/// item's own timestamp had to be replaced.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Enrichment {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    /// True when the User-Agent is a known crawler or automation tool.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_bot: bool,
    /// True when the item's `timestamp` could not be read as a date (SuperInsights 1.x's
    /// `new Date(value)` was invalid) and the server's time was stored instead.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub timestamp_replaced: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageView {
    pub id: DocId,
    pub url: String,
    pub title: Option<String>,
    pub referrer: Option<String>,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub device_type: Option<DeviceType>,
    pub browser: Option<String>,
    pub os: Option<String>,
    #[serde(flatten)]
    pub enrichment: Enrichment,
    pub timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub id: DocId,
    pub event_name: String,
    /// As sent when truthy (normally an object, but 1.x kept any truthy value), else `{}`.
    pub properties: Value,
    pub duration_ms: Option<f64>,
    pub session_id: Option<String>,
    pub client_id: Option<String>,
    #[serde(flatten)]
    pub enrichment: Enrichment,
    pub timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvent {
    pub id: DocId,
    pub message: String,
    pub error_type: Option<String>,
    pub stack_trace: Option<String>,
    pub source_file: Option<String>,
    pub line_number: Option<f64>,
    pub column_number: Option<f64>,
    pub browser: Option<String>,
    pub browser_version: Option<String>,
    pub os: Option<String>,
    pub os_version: Option<String>,
    pub device_type: Option<String>,
    /// As sent, never altered.
    pub context: Option<Value>,
    pub fingerprint: String,
    /// The sender's visitor and user ids, sent beside the error (1.x dropped them); the client
    /// and user segment filters match them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    #[serde(flatten)]
    pub enrichment: Enrichment,
    pub timestamp: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceMetric {
    pub id: DocId,
    pub metric_type: String,
    pub lcp: Option<f64>,
    pub cls: Option<f64>,
    pub fid: Option<f64>,
    pub ttfb: Option<f64>,
    /// Interaction to Next Paint, which SuperInsights 1.x did not measure.
    pub inp: Option<f64>,
    pub url: Option<String>,
    pub client_id: Option<String>,
    pub device_type: Option<String>,
    pub browser: Option<String>,
    pub connection_type: Option<String>,
    /// As sent when truthy, else `{}`.
    pub properties: Value,
    #[serde(flatten)]
    pub enrichment: Enrichment,
    pub timestamp: i64,
}

/// Validated documents of one channel.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "channel", content = "docs", rename_all = "lowercase")]
pub enum Docs {
    Pageviews(Vec<PageView>),
    Events(Vec<Event>),
    Errors(Vec<ErrorEvent>),
    Performance(Vec<PerformanceMetric>),
}

impl Docs {
    pub fn channel(&self) -> Channel {
        match self {
            Docs::Pageviews(_) => Channel::Pageviews,
            Docs::Events(_) => Channel::Events,
            Docs::Errors(_) => Channel::Errors,
            Docs::Performance(_) => Channel::Performance,
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Docs::Pageviews(d) => d.len(),
            Docs::Events(d) => d.len(),
            Docs::Errors(d) => d.len(),
            Docs::Performance(d) => d.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One accepted request's worth of documents for one project: the unit that is written, spooled
/// and acknowledged as a whole.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WriteBatch {
    /// Unique per accepted request; makes spool replays idempotent.
    pub batch_id: DocId,
    pub project_id: DocId,
    #[serde(flatten)]
    pub docs: Docs,
    /// Events dropped by the project's drop rules (counted, not stored).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub dropped: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}
