//! CSV: 1.x's aggregated `metric,value,dataType,timeframe` rows (from the context), and the raw
//! mode 1.x never built — every document in range within the segment filters, written page by
//! page (bounded memory) by `services::report_jobs` through [`RawCsv`].

use super::context::{self, num, s};
use super::model::DataType;
use crate::domain::model::Channel;
use serde_json::Value;

/// One CSV cell: quoted when it holds a comma, quote or line break; a text cell that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) is prefixed with `'`.
pub fn cell(text: &str, out: &mut String) {
    let guarded = matches!(
        text.chars().next(),
        Some('=' | '+' | '-' | '@' | '\t' | '\r')
    ) && text.parse::<f64>().is_err();
    let needs_quotes = guarded || text.contains([',', '"', '\n', '\r']);
    if needs_quotes {
        out.push('"');
        if guarded {
            out.push('\'');
        }
        out.push_str(&text.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(text);
    }
}

/// One CSV line (ends with `\r\n`, RFC 4180).
pub fn line<S: AsRef<str>>(cells: &[S], out: &mut String) {
    for (i, c) in cells.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        cell(c.as_ref(), out);
    }
    out.push_str("\r\n");
}

fn fnum(v: Option<&Value>) -> String {
    match v {
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    }
}

/// The aggregated CSV of a context.
pub fn aggregated(ctx: &Value) -> String {
    let timeframe = ctx
        .pointer("/meta/timeframe")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = String::new();
    line(&["metric", "value", "dataType", "timeframe"], &mut out);
    if ctx.pointer("/summary/empty").and_then(Value::as_bool) == Some(true) {
        let data = ctx
            .pointer("/meta/dataType")
            .and_then(Value::as_str)
            .unwrap_or("");
        line(
            &[
                "note",
                "No data was recorded in this period",
                data,
                timeframe,
            ],
            &mut out,
        );
    }
    let row = |metric: String, value: String, d: DataType, out: &mut String| {
        line(
            &[metric.as_str(), value.as_str(), d.as_str(), timeframe],
            out,
        );
    };
    for d in context::sections(ctx) {
        let sec = &ctx[d.as_str()];
        let list = |k: &str| {
            sec.get(k)
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        match d {
            DataType::Pageviews => {
                row(
                    "totalViews".into(),
                    num(sec, "total").to_string(),
                    d,
                    &mut out,
                );
                row(
                    "uniqueVisitors".into(),
                    num(sec, "uniqueVisitors").to_string(),
                    d,
                    &mut out,
                );
                for (i, p) in list("topPages").iter().enumerate() {
                    let n = i + 1;
                    row(format!("topPage_{n}_url"), s(p, "url").into(), d, &mut out);
                    row(
                        format!("topPage_{n}_views"),
                        num(p, "views").to_string(),
                        d,
                        &mut out,
                    );
                    row(
                        format!("topPage_{n}_uniqueVisitors"),
                        num(p, "uniqueVisitors").to_string(),
                        d,
                        &mut out,
                    );
                }
            }
            DataType::Events => {
                row(
                    "totalEvents".into(),
                    num(sec, "total").to_string(),
                    d,
                    &mut out,
                );
                for (i, e) in list("topEvents").iter().enumerate() {
                    let n = i + 1;
                    row(
                        format!("topEvent_{n}_name"),
                        s(e, "eventName").into(),
                        d,
                        &mut out,
                    );
                    row(
                        format!("topEvent_{n}_count"),
                        num(e, "count").to_string(),
                        d,
                        &mut out,
                    );
                }
            }
            DataType::Errors => {
                row(
                    "totalErrors".into(),
                    num(sec, "total").to_string(),
                    d,
                    &mut out,
                );
                row(
                    "uniqueFingerprints".into(),
                    num(sec, "uniqueFingerprints").to_string(),
                    d,
                    &mut out,
                );
                for (i, e) in list("topErrors").iter().enumerate() {
                    let n = i + 1;
                    row(
                        format!("topError_{n}_fingerprint"),
                        s(e, "fingerprint").into(),
                        d,
                        &mut out,
                    );
                    row(
                        format!("topError_{n}_message"),
                        s(e, "message").into(),
                        d,
                        &mut out,
                    );
                    row(
                        format!("topError_{n}_count"),
                        num(e, "count").to_string(),
                        d,
                        &mut out,
                    );
                }
            }
            DataType::Performance | DataType::All => {
                row(
                    "totalMeasurements".into(),
                    num(sec, "total").to_string(),
                    d,
                    &mut out,
                );
                for m in crate::domain::analytics::METRICS {
                    for q in ["p50", "p75", "p95"] {
                        let v = sec.pointer(&format!("/percentiles/{m}/{q}"));
                        row(format!("{m}_{q}"), fnum(v), d, &mut out);
                    }
                }
            }
        }
        for (date, count) in context::by_day(sec) {
            row(format!("day_{date}"), count.to_string(), d, &mut out);
        }
    }
    out
}

/// The columns of raw rows per channel (SuperInsights field names). IP addresses are never
/// exported.
pub fn raw_columns(channel: Channel) -> &'static [&'static str] {
    match channel {
        Channel::Pageviews => &[
            "timestamp",
            "url",
            "title",
            "referrer",
            "sessionId",
            "clientId",
            "utmSource",
            "utmMedium",
            "utmCampaign",
            "utmTerm",
            "utmContent",
            "deviceType",
            "browser",
            "os",
            "country",
            "isBot",
        ],
        Channel::Events => &[
            "timestamp",
            "eventName",
            "properties",
            "durationMs",
            "sessionId",
            "clientId",
            "country",
            "isBot",
        ],
        Channel::Errors => &[
            "timestamp",
            "message",
            "errorType",
            "stackTrace",
            "sourceFile",
            "lineNumber",
            "columnNumber",
            "browser",
            "os",
            "deviceType",
            "fingerprint",
            "clientId",
            "userId",
            "context",
            "country",
        ],
        Channel::Performance => &[
            "timestamp",
            "metricType",
            "url",
            "lcp",
            "cls",
            "fid",
            "ttfb",
            "inp",
            "deviceType",
            "browser",
            "connectionType",
            "clientId",
            "properties",
            "country",
        ],
    }
}

/// The channels a data type's raw export covers.
pub fn raw_channels(d: DataType) -> Vec<Channel> {
    d.parts()
        .into_iter()
        .map(|p| match p {
            DataType::Pageviews => Channel::Pageviews,
            DataType::Events => Channel::Events,
            DataType::Errors => Channel::Errors,
            _ => Channel::Performance,
        })
        .collect()
}

/// Writes raw rows: one header (`dataType` then the union of the channels' columns, in order),
/// then one line per document.
pub struct RawCsv {
    columns: Vec<&'static str>,
}

impl RawCsv {
    pub fn new(channels: &[Channel]) -> Self {
        let mut columns = vec!["dataType"];
        for c in channels {
            for col in raw_columns(*c) {
                if !columns.contains(col) {
                    columns.push(col);
                }
            }
        }
        Self { columns }
    }

    pub fn header(&self) -> String {
        let mut out = String::new();
        line(&self.columns, &mut out);
        out
    }

    /// Appends the line of one document of `channel`.
    pub fn row(&self, channel: Channel, doc: &Value, out: &mut String) {
        let own = raw_columns(channel);
        let cells: Vec<String> = self
            .columns
            .iter()
            .map(|col| {
                if *col == "dataType" {
                    return channel_name(channel).to_string();
                }
                if !own.contains(col) {
                    return String::new();
                }
                match doc.get(*col) {
                    None | Some(Value::Null) => String::new(),
                    Some(Value::String(s)) => s.clone(),
                    Some(v @ (Value::Object(_) | Value::Array(_))) => v.to_string(),
                    Some(v) => v.to_string(),
                }
            })
            .collect();
        line(&cells, out);
    }
}

/// The data-type word of a channel.
pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::Pageviews => "pageviews",
        Channel::Events => "events",
        Channel::Errors => "errors",
        Channel::Performance => "performance",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cells_are_quoted_and_formulas_defused() {
        let mut out = String::new();
        line(&["a,b", "say \"hi\"", "=cmd()", "-3", "plain"], &mut out);
        assert_eq!(out, "\"a,b\",\"say \"\"hi\"\"\",\"'=cmd()\",-3,plain\r\n");
    }

    #[test]
    fn aggregated_rows_follow_1x_names() {
        let ctx = json!({
            "meta": {"timeframe": "7d"},
            "pageviews": {"total": 3, "uniqueVisitors": 2, "byDay": [{"date": "2024-01-01", "count": 3}],
                           "topPages": [{"url": "/a", "views": 3, "uniqueVisitors": 2}]},
        });
        let csv = aggregated(&ctx);
        assert!(csv.starts_with("metric,value,dataType,timeframe\r\n"));
        assert!(csv.contains("totalViews,3,pageviews,7d\r\n"));
        assert!(csv.contains("topPage_1_url,/a,pageviews,7d\r\n"));
        assert!(csv.contains("day_2024-01-01,3,pageviews,7d\r\n"));
    }

    #[test]
    fn raw_rows_share_one_header_and_leave_ips_out() {
        let raw = RawCsv::new(&[Channel::Pageviews, Channel::Events]);
        assert!(raw.header().starts_with("dataType,timestamp,url,"));
        assert!(!raw.header().contains("ip"));
        let mut out = String::new();
        raw.row(
            Channel::Events,
            &json!({"timestamp": "2024-01-01T00:00:00.000Z", "eventName": "buy", "ip": "1.2.3.4",
                    "properties": {"plan": "pro"}}),
            &mut out,
        );
        assert!(out.starts_with("events,2024-01-01T00:00:00.000Z,"));
        assert!(out.contains("buy"));
        assert!(out.contains("\"{\"\"plan\"\":\"\"pro\"\"}\""));
        assert!(!out.contains("1.2.3.4"));
    }
}
