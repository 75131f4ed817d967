//! What the model is told: the fixed instructions (required Markdown headings), the optional
//! preset focus, and the payload shape with its size limits. The payload carries no IP address
//! and no country: its types have no field for them, and samples are built from allowlists.

use super::client::ChatMessage;
use crate::domain::analytics::{DayCount, MetricsDay};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The system message.
pub const SYSTEM: &str = "Return ONLY Markdown.";

/// The headings every analysis has, in order (the digest uses them too).
pub const HEADINGS: [&str; 9] = [
    "Summary",
    "Highlights / anomalies",
    "Traffic (Pageviews)",
    "Product usage (Events)",
    "Bottlenecks (Timed Events)",
    "Reliability (Errors)",
    "Performance (Web Vitals)",
    "Recommendations (Prioritized)",
    "Missing instrumentation / Next questions",
];

/// Separator before a preset's own instructions.
pub const PRESET_SEPARATOR: &str = "--- Preset focus instructions ---";

/// Limits of the payload (reference §6.2).
pub const MAX_DAYS: usize = 90;
pub const MAX_TOP: usize = 10;
pub const MAX_PATTERNS: usize = 10;
pub const MAX_SAMPLES: usize = 5;
pub const MAX_SAMPLE_STRING: usize = 2000;
pub const MAX_PROJECT_NAME: usize = 120;
pub const MAX_URL: usize = 300;
pub const MAX_EVENT_NAME: usize = 120;
pub const MAX_ERROR_MESSAGE: usize = 220;

/// Everything sent about one project and range.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Payload {
    pub meta: Meta,
    pub pageviews: PageviewsBlock,
    pub events: EventsBlock,
    pub timed_events: Vec<TimedEvent>,
    pub errors: ErrorsBlock,
    pub performance: PerformanceBlock,
    pub samples: Samples,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Meta {
    pub project_id: String,
    pub project_name: String,
    pub environment: String,
    /// ISO-8601 (UTC).
    pub start: String,
    pub end: String,
    /// The segment filters applied to every block (empty: none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub segment: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PageviewsBlock {
    pub total_views: u64,
    pub unique_visitors: u64,
    pub views_by_day: Vec<DayCount>,
    pub top_pages: Vec<TopPage>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopPage {
    pub url: String,
    pub views: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unique_visitors: Option<u64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventsBlock {
    pub total_events: u64,
    pub events_by_day: Vec<DayCount>,
    pub top_events: Vec<TopEvent>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopEvent {
    pub event_name: String,
    pub count: u64,
}

/// Durations of one timed event (milliseconds, rounded).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TimedEvent {
    pub event_name: String,
    pub count: u64,
    pub avg_ms: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub max_ms: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorsBlock {
    pub total_errors: u64,
    pub unique_fingerprints: u64,
    pub errors_by_day: Vec<DayCount>,
    pub top_fingerprints: Vec<TopFingerprint>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopFingerprint {
    pub fingerprint: String,
    pub count: u64,
    pub message: String,
    pub error_type: Option<String>,
    /// ISO-8601.
    pub first_seen: Option<String>,
    pub last_seen: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PerformanceBlock {
    pub total_measurements: u64,
    /// `lcp_p50`, `lcp_p75`, `lcp_p95`, … (metrics without data are left out).
    pub percentiles: BTreeMap<String, f64>,
    pub metrics_by_day: Vec<MetricsDay>,
}

/// Example documents behind the aggregates, keyed by pattern (fingerprint, event name, URL, or
/// `<metric>_gte_p95`). Every document is built from an allowlist of fields.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Samples {
    pub errors: BTreeMap<String, Vec<serde_json::Value>>,
    pub timed_events: BTreeMap<String, Vec<serde_json::Value>>,
    pub events: BTreeMap<String, Vec<serde_json::Value>>,
    pub pageviews: BTreeMap<String, Vec<serde_json::Value>>,
    pub web_vitals: BTreeMap<String, WorstRecords>,
}

/// The worst measurements of one web vital at or above its p95.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorstRecords {
    pub threshold: f64,
    pub records: Vec<serde_json::Value>,
}

/// At most `max` characters of `s` (on a character boundary), with `…` when cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Truncates every string inside a JSON value to [`MAX_SAMPLE_STRING`] characters.
pub fn truncate_strings(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::String(s) if s.chars().count() > MAX_SAMPLE_STRING => {
            *s = truncate(s, MAX_SAMPLE_STRING);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(truncate_strings),
        serde_json::Value::Object(o) => o.values_mut().for_each(truncate_strings),
        _ => {}
    }
}

/// Rounds to whole milliseconds (durations) or 4 decimals (CLS-sized values).
pub fn round(v: f64) -> f64 {
    if v.abs() >= 10.0 {
        v.round()
    } else {
        (v * 10_000.0).round() / 10_000.0
    }
}

/// The instructions, in our words: the required headings and how to write the analysis.
pub fn instructions() -> String {
    let mut out = String::from(
        "You are a product analytics expert reviewing one web project's telemetry for the period \
         in the JSON payload below. Write the analysis in Markdown with exactly these level-2 \
         headings, in this order, and no others:\n",
    );
    for h in HEADINGS {
        out.push_str("## ");
        out.push_str(h);
        out.push('\n');
    }
    out.push_str(
        "\nRules:\n\
         - Quote numbers from the payload (totals, percentages, p50/p95 durations, days) instead \
         of vague words; compare days and pages with each other.\n\
         - When a block has little or no data, say so plainly and do not invent figures.\n\
         - Use the samples to explain patterns (which pages, which errors, which events), never \
         to identify people.\n\
         - Recommendations are a numbered list, most important first, each with the expected \
         effect.\n\
         - End with the instrumentation that is missing and the questions worth asking next.\n",
    );
    out
}

/// The two messages of an analysis: the system message and one user message holding the
/// instructions, the preset's focus (if any) and the payload as JSON.
pub fn messages(payload: &Payload, preset_focus: Option<&str>) -> Vec<ChatMessage> {
    let mut user = instructions();
    if let Some(focus) = preset_focus.map(str::trim).filter(|f| !f.is_empty()) {
        user.push('\n');
        user.push_str(PRESET_SEPARATOR);
        user.push('\n');
        user.push_str(focus);
        user.push('\n');
    }
    user.push_str("\nPayload (JSON):\n");
    user.push_str(&serde_json::to_string(payload).unwrap_or_else(|_| "{}".into()));
    vec![ChatMessage::system(SYSTEM), ChatMessage::user(user)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_message_lists_every_heading_then_the_focus_then_the_payload() {
        let mut p = Payload::default();
        p.meta.project_name = "Shop".into();
        let m = messages(&p, Some("Focus on checkout."));
        assert_eq!(m.len(), 2);
        assert_eq!(
            (m[0].role.as_str(), m[0].content.as_str()),
            ("system", SYSTEM)
        );
        let user = &m[1].content;
        let mut at = 0;
        for h in HEADINGS {
            let found = user[at..].find(&format!("## {h}\n")).expect(h);
            at += found;
        }
        let sep = user.find(PRESET_SEPARATOR).unwrap();
        assert!(sep > at && user.find("Focus on checkout.").unwrap() > sep);
        assert!(user.contains("\"projectName\":\"Shop\""));
        assert!(user.contains("\"timedEvents\":[]"));
        assert!(
            !messages(&p, Some("  "))
                .iter()
                .any(|m| m.content.contains(PRESET_SEPARATOR))
        );
    }

    #[test]
    fn truncation_is_by_characters_and_reaches_nested_strings() {
        assert_eq!(truncate("héllo", 3), "hé…");
        assert_eq!(truncate("abc", 3), "abc");
        let mut v = serde_json::json!({"a": ["é".repeat(2500)], "b": 1});
        truncate_strings(&mut v);
        assert_eq!(
            v["a"][0].as_str().unwrap().chars().count(),
            MAX_SAMPLE_STRING
        );
        assert_eq!(round(1234.56), 1235.0);
        assert_eq!(round(0.123456), 0.1235);
    }
}
