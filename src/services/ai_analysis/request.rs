//! A run request: the JSON body of `POST …/ai-analysis/run` read and validated into a
//! [`RunRequest`] (timeframe or custom range, preset, segment filters).

use crate::ai::presets::Invalid;
use crate::domain::{
    analytics::{TimeRange, Timeframe},
    segment::SegmentFilters,
    timestamp::parse_iso,
};
use serde_json::Value;

/// Longest custom range (reference §6.1).
pub const MAX_RANGE_DAYS: i64 = 90;
const DAY_MS: i64 = 86_400_000;

/// What a run is asked for, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    pub timeframe: Option<Timeframe>,
    pub range: TimeRange,
    pub preset_id: Option<String>,
    pub segment: SegmentFilters,
}

/// Reads the JSON body of `POST …/ai-analysis/run` (reference §6.1): `mode` (`preset` default,
/// or `custom` with `start`/`end` at most 90 days apart), `timeframe`, `presetId` and the segment
/// filters (§4.7). Errors carry the reference's messages.
pub fn parse_run_request(body: &Value, now: i64) -> Result<RunRequest, Invalid> {
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::trim);
    let custom = text("mode") == Some("custom");
    let (timeframe, range) = if custom {
        let start = text("start")
            .and_then(parse_iso)
            .ok_or_else(|| Invalid("Invalid start date".into()))?;
        let end = text("end")
            .and_then(parse_iso)
            .ok_or_else(|| Invalid("Invalid end date".into()))?;
        if start >= end {
            return Err(Invalid("Start date must be before end date".into()));
        }
        if end - start > MAX_RANGE_DAYS * DAY_MS {
            return Err(Invalid("Range too large (max 90 days)".into()));
        }
        (
            None,
            TimeRange {
                start_ms: start,
                end_ms: end,
            },
        )
    } else {
        let tf = Timeframe::parse(text("timeframe"));
        (Some(tf), tf.range(now))
    };
    let preset_id = text("presetId")
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    // Segment filters from the body: strings (or a `meta` object) under their usual names.
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(map) = body.as_object() {
        for (k, v) in map {
            match v {
                Value::String(s) => pairs.push((k.clone(), s.clone())),
                Value::Object(_) if k == "meta" => pairs.push((k.clone(), v.to_string())),
                _ => {}
            }
        }
    }
    let mut segment =
        SegmentFilters::from_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // A key with an empty path part (`a..b`) cannot name a field in either backend.
    segment
        .meta
        .retain(|k, _| k.split('.').all(|p| !p.is_empty()));
    Ok(RunRequest {
        timeframe,
        range,
        preset_id,
        segment,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_706_702_400_000;

    #[test]
    fn run_requests_validate_ranges_with_the_reference_messages() {
        let err = |body: Value| parse_run_request(&body, NOW).unwrap_err().0;
        assert_eq!(
            err(json!({"mode": "custom", "start": "nope", "end": "2024-01-02"})),
            "Invalid start date"
        );
        assert_eq!(
            err(json!({"mode": "custom", "start": "2024-01-02"})),
            "Invalid end date"
        );
        assert_eq!(
            err(json!({"mode": "custom", "start": "2024-01-02", "end": "2024-01-01"})),
            "Start date must be before end date"
        );
        assert_eq!(
            err(json!({"mode": "custom", "start": "2024-01-01", "end": "2024-04-01"})),
            "Range too large (max 90 days)"
        );
        let ok = parse_run_request(
            &json!({"mode": "custom", "start": "2024-01-01", "end": "2024-03-31"}),
            NOW,
        )
        .unwrap();
        assert_eq!(ok.timeframe, None);
        assert_eq!(ok.range.end_ms - ok.range.start_ms, 90 * DAY_MS);
        let preset = parse_run_request(
            &json!({"timeframe": "24h", "presetId": "builtin:errors", "clientId": "c1", "meta": {"plan": "pro", "a..b": "x"}, "deviceType": "mobile"}),
            NOW,
        )
        .unwrap();
        assert_eq!(preset.timeframe, Some(Timeframe::H24));
        assert_eq!(
            preset.range,
            TimeRange {
                start_ms: NOW - DAY_MS,
                end_ms: NOW
            }
        );
        assert_eq!(preset.preset_id.as_deref(), Some("builtin:errors"));
        assert_eq!(preset.segment.client_id.as_deref(), Some("c1"));
        assert_eq!(preset.segment.device_type.as_deref(), Some("mobile"));
        assert_eq!(
            preset.segment.meta.len(),
            1,
            "keys with empty path parts are dropped"
        );
        assert_eq!(
            parse_run_request(&json!({}), NOW).unwrap().timeframe,
            Some(Timeframe::D7)
        );
    }
}
