//! Validation of the JSON bodies of `POST …/reports/generate` and `POST …/filter-templates`
//! (reference §5.7, §5.8). Errors carry 1.x's `code` values (`INVALID_PARAMS`, `INVALID_RANGE`)
//! where 1.x answered 500 for a bad `dataType` or `format`.

use super::model::{CsvMode, DataType, ReportFormat};
use crate::domain::{
    analytics::{TimeRange, Timeframe},
    segment::SegmentFilters,
    timestamp::parse_iso,
};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The timeframe presets 1.x accepts (besides `custom`).
pub const PRESETS: [&str; 10] = [
    "5m", "30m", "1h", "6h", "12h", "24h", "7d", "30d", "3m", "1y",
];
/// The longest custom range: a year and a day (the `1y` preset is at most that long).
pub const MAX_RANGE_DAYS: i64 = 366;
const DAY_MS: i64 = 86_400_000;
/// Longest report name (1.x: 160) and template name / description (120 / 500).
pub const MAX_NAME: usize = 160;
pub const MAX_TEMPLATE_NAME: usize = 120;
pub const MAX_DESCRIPTION: usize = 500;

/// A 400 answer: `{error, code}`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Rejected {
    pub code: &'static str,
    pub message: String,
}

impl Rejected {
    pub fn params(message: impl Into<String>) -> Self {
        Self {
            code: "INVALID_PARAMS",
            message: message.into(),
        }
    }

    pub fn range(message: impl Into<String>) -> Self {
        Self {
            code: "INVALID_RANGE",
            message: message.into(),
        }
    }
}

/// A timeframe: a preset (resolved against "now" when used) or a custom range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Period {
    Preset(Timeframe),
    Custom(TimeRange),
}

impl Period {
    /// `7d`, … or `custom`.
    pub fn name(&self) -> &'static str {
        match self {
            Period::Preset(t) => t.as_str(),
            Period::Custom(_) => "custom",
        }
    }

    /// The range it covers at `now`.
    pub fn range(&self, now: i64) -> TimeRange {
        match self {
            Period::Preset(t) => t.range(now),
            Period::Custom(r) => *r,
        }
    }

    /// From a stored `timeframe` name and range (a preset is re-resolved at `now`).
    pub fn stored(name: &str, start: i64, end: i64) -> Self {
        if PRESETS.contains(&name) {
            Period::Preset(Timeframe::parse(Some(name)))
        } else {
            Period::Custom(TimeRange {
                start_ms: start,
                end_ms: end,
            })
        }
    }
}

/// A validated generate request (the template, when named, is applied by the service).
#[derive(Clone, Debug, PartialEq)]
pub struct GenerateRequest {
    pub name: String,
    pub data_type: DataType,
    /// `None` when the body named no timeframe (the template's, else `7d`).
    pub period: Option<Period>,
    pub format: ReportFormat,
    pub csv_mode: Option<CsvMode>,
    pub include_ai_insights: bool,
    pub filter_template_id: Option<String>,
    pub filters: SegmentFilters,
}

fn text<'a>(body: &'a Value, key: &str) -> Option<&'a str> {
    body.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

/// The timeframe of a body: `timeframe` (a preset or `custom` with `startDate`/`endDate`, start
/// before end, at most [`MAX_RANGE_DAYS`] apart). `None` when no timeframe is named.
pub fn parse_period(body: &Value) -> Result<Option<Period>, Rejected> {
    let Some(tf) = text(body, "timeframe") else {
        return Ok(None);
    };
    if tf == "custom" {
        let start = text(body, "startDate")
            .and_then(parse_iso)
            .ok_or_else(|| Rejected::range("Invalid startDate"))?;
        let end = text(body, "endDate")
            .and_then(parse_iso)
            .ok_or_else(|| Rejected::range("Invalid endDate"))?;
        if start >= end {
            return Err(Rejected::range("startDate must be before endDate"));
        }
        if end - start > MAX_RANGE_DAYS * DAY_MS {
            return Err(Rejected::range(format!(
                "Range too large (at most {MAX_RANGE_DAYS} days)"
            )));
        }
        return Ok(Some(Period::Custom(TimeRange {
            start_ms: start,
            end_ms: end,
        })));
    }
    if !PRESETS.contains(&tf) {
        return Err(Rejected::range(format!("Unknown timeframe {tf:?}")));
    }
    Ok(Some(Period::Preset(Timeframe::parse(Some(tf)))))
}

/// The segment filters of a body: the §4.7 fields at the top level or under `filters`.
pub fn parse_filters(body: &Value) -> SegmentFilters {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut collect = |map: &serde_json::Map<String, Value>| {
        for (k, v) in map {
            match v {
                Value::String(s) => pairs.push((k.clone(), s.clone())),
                Value::Object(_) if k == "meta" => pairs.push((k.clone(), v.to_string())),
                _ => {}
            }
        }
    };
    if let Some(map) = body.get("filters").and_then(Value::as_object) {
        collect(map);
    }
    if let Some(map) = body.as_object() {
        collect(map);
    }
    let mut segment =
        SegmentFilters::from_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    segment
        .meta
        .retain(|k, _| k.split('.').all(|p| !p.is_empty()));
    segment
}

/// Reads a generate body. Errors: `INVALID_PARAMS` for a bad name, data type, format or CSV
/// mode; `INVALID_RANGE` for a bad timeframe.
pub fn parse_generate(body: &Value) -> Result<GenerateRequest, Rejected> {
    let name = match body.get("name") {
        None | Some(Value::Null) => "Report".to_string(),
        Some(Value::String(s)) if s.trim().is_empty() => "Report".to_string(),
        Some(Value::String(s)) if s.trim().chars().count() <= MAX_NAME => s.trim().to_string(),
        Some(Value::String(_)) => {
            return Err(Rejected::params(format!(
                "name must be at most {MAX_NAME} characters"
            )));
        }
        Some(_) => return Err(Rejected::params("name must be a string")),
    };
    let data_type = match body.get("dataType") {
        None | Some(Value::Null) => DataType::Pageviews,
        Some(v) => v.as_str().and_then(DataType::parse).ok_or_else(|| {
            Rejected::params("Invalid dataType (pageviews, events, errors, performance or all)")
        })?,
    };
    let format = match body.get("format") {
        None | Some(Value::Null) => ReportFormat::Pdf,
        Some(v) => v
            .as_str()
            .and_then(ReportFormat::parse)
            .ok_or_else(|| Rejected::params("Invalid format (pdf, csv, json or html)"))?,
    };
    let csv_mode = match (format, body.get("csvMode")) {
        (ReportFormat::Csv, None | Some(Value::Null)) => Some(CsvMode::Aggregated),
        (ReportFormat::Csv, Some(v)) => match v.as_str() {
            Some("aggregated") => Some(CsvMode::Aggregated),
            Some("raw") => Some(CsvMode::Raw),
            _ => return Err(Rejected::params("Invalid csvMode (aggregated or raw)")),
        },
        _ => None,
    };
    let include_ai_insights = match body.get("includeAiInsights") {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.as_str(), "true" | "on" | "1"),
        _ => false,
    };
    Ok(GenerateRequest {
        name,
        data_type,
        period: parse_period(body)?,
        format,
        csv_mode,
        include_ai_insights,
        filter_template_id: text(body, "filterTemplateId").map(str::to_string),
        filters: parse_filters(body),
    })
}

/// A validated filter-template body.
#[derive(Clone, Debug, PartialEq)]
pub struct TemplateRequest {
    pub name: String,
    pub description: String,
    pub period: Option<Period>,
    pub filters: SegmentFilters,
}

/// Reads a filter-template body: `name` (required, ≤ 120), `description` (≤ 500), the
/// timeframe and the filters. Errors: `INVALID_PARAMS`, `INVALID_RANGE`.
pub fn parse_template(body: &Value) -> Result<TemplateRequest, Rejected> {
    let name = text(body, "name").ok_or_else(|| Rejected::params("name is required"))?;
    if name.chars().count() > MAX_TEMPLATE_NAME {
        return Err(Rejected::params(format!(
            "name must be at most {MAX_TEMPLATE_NAME} characters"
        )));
    }
    let description = match body.get("description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.trim().chars().count() <= MAX_DESCRIPTION => {
            s.trim().to_string()
        }
        Some(_) => {
            return Err(Rejected::params(format!(
                "description must be a string of at most {MAX_DESCRIPTION} characters"
            )));
        }
    };
    Ok(TemplateRequest {
        name: name.to_string(),
        description,
        period: parse_period(body)?,
        filters: parse_filters(body),
    })
}

/// 1.x's dedup key: SHA-256 (hex) of the key-sorted JSON of what the report computes.
pub fn dedup_hash(
    project_id: &str,
    request: &GenerateRequest,
    timeframe: &str,
    range: TimeRange,
) -> String {
    // serde_json's map is ordered by key, so the JSON text is key-sorted.
    let key = json!({
        "projectId": project_id,
        "dataType": request.data_type.as_str(),
        "timeframe": timeframe,
        "start": range.start_ms,
        "end": range.end_ms,
        "filters": request.filters,
        "format": request.format.as_str(),
        "csvMode": request.csv_mode.map(CsvMode::as_str),
        "includeAiInsights": request.include_ai_insights,
    });
    hex::encode(Sha256::digest(key.to_string().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_a_pdf_of_page_views() {
        let r = parse_generate(&json!({})).unwrap();
        assert_eq!(r.name, "Report");
        assert_eq!(r.data_type, DataType::Pageviews);
        assert_eq!(r.format, ReportFormat::Pdf);
        assert_eq!(r.csv_mode, None);
        assert_eq!(r.period, None);
        let csv = parse_generate(&json!({"format": "csv"})).unwrap();
        assert_eq!(csv.csv_mode, Some(CsvMode::Aggregated));
    }

    #[test]
    fn bad_values_are_400s_with_their_codes() {
        let code = |body: Value| parse_generate(&body).unwrap_err().code;
        assert_eq!(code(json!({"dataType": "sessions"})), "INVALID_PARAMS");
        assert_eq!(code(json!({"format": "docx"})), "INVALID_PARAMS");
        assert_eq!(
            code(json!({"format": "csv", "csvMode": "x"})),
            "INVALID_PARAMS"
        );
        assert_eq!(code(json!({"name": "x".repeat(161)})), "INVALID_PARAMS");
        assert_eq!(code(json!({"timeframe": "2w"})), "INVALID_RANGE");
        assert_eq!(
            code(
                json!({"timeframe": "custom", "startDate": "2024-02-01", "endDate": "2024-01-01"})
            ),
            "INVALID_RANGE"
        );
        assert_eq!(
            code(
                json!({"timeframe": "custom", "startDate": "2020-01-01", "endDate": "2024-01-01"})
            ),
            "INVALID_RANGE"
        );
        assert_eq!(
            parse_template(&json!({})).unwrap_err().code,
            "INVALID_PARAMS"
        );
    }

    #[test]
    fn filters_come_from_the_top_level_or_a_filters_object() {
        let r = parse_generate(&json!({
            "browser": "Firefox",
            "filters": {"utmSource": "newsletter", "meta": {"plan": "pro"}},
        }))
        .unwrap();
        assert_eq!(r.filters.browser.as_deref(), Some("Firefox"));
        assert_eq!(r.filters.utm_source.as_deref(), Some("newsletter"));
        assert_eq!(r.filters.meta.get("plan").map(String::as_str), Some("pro"));
    }

    #[test]
    fn the_dedup_hash_depends_on_what_is_computed() {
        let range = TimeRange {
            start_ms: 1,
            end_ms: 2,
        };
        let a = parse_generate(&json!({"format": "csv"})).unwrap();
        let b = parse_generate(&json!({"format": "json"})).unwrap();
        assert_eq!(
            dedup_hash("p", &a, "custom", range),
            dedup_hash("p", &a, "custom", range)
        );
        assert_ne!(
            dedup_hash("p", &a, "custom", range),
            dedup_hash("p", &b, "custom", range)
        );
    }
}
