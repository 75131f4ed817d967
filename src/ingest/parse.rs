//! Turns an ingestion body into validated documents with SuperInsights 1.x's rules: the three body
//! shapes, 1–100 items, per-item required fields, Mongoose-style casts, and its exact 400 messages.
//! Validation is all-or-nothing: one bad item rejects the whole request.

use crate::domain::useragent::UserAgentInfo;
use crate::domain::{
    fingerprint::error_fingerprint,
    ids::DocId,
    model::{
        Channel, DeviceType, Docs, Enrichment, ErrorEvent, Event, PageView, PerformanceMetric,
    },
    timestamp,
};
use serde_json::{Map, Value};

/// Most items one request may carry.
pub const MAX_ITEMS: usize = 100;

/// A validation failure; the text is the `details` of the 400 body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid(msg: impl Into<String>) -> Invalid {
    Invalid(msg.into())
}

pub type Item = Map<String, Value>;

/// Parses the body into raw items: `{"items":[…]}`, a bare array, or one object.
pub fn items(body: &[u8]) -> Result<Vec<Item>, Invalid> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid JSON body: {e}")))?;
    items_from_value(value)
}

/// The same rules over an already-parsed value (the WebSocket path parses the envelope itself).
pub fn items_from_value(value: Value) -> Result<Vec<Item>, Invalid> {
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut obj) => match obj.remove("items") {
            Some(Value::Array(list)) => list,
            Some(other) => {
                obj.insert("items".into(), other);
                vec![Value::Object(obj)]
            }
            None => vec![Value::Object(obj)],
        },
        _ => return Err(invalid("Payload must be a JSON object or array")),
    };
    if list.is_empty() {
        return Err(invalid("Payload array must not be empty"));
    }
    if list.len() > MAX_ITEMS {
        return Err(invalid(format!(
            "Bulk payload size exceeds limit of {MAX_ITEMS}"
        )));
    }
    list.into_iter()
        .map(|v| match v {
            Value::Object(o) => Ok(o),
            _ => Err(invalid("Each item must be a JSON object")),
        })
        .collect()
}

/// Server-side facts applied to every item of a request.
#[derive(Clone, Debug, Default)]
pub struct RequestFacts {
    pub enrichment: Enrichment,
    /// Parsed from the request's User-Agent; fills fields a server-side client did not send.
    pub user_agent: UserAgentInfo,
    /// Server time used when an item has no timestamp.
    pub now_ms: i64,
}

/// Validates items of one channel into documents.
pub fn documents(channel: Channel, items: &[Item], facts: &RequestFacts) -> Result<Docs, Invalid> {
    Ok(match channel {
        Channel::Pageviews => Docs::Pageviews(
            items
                .iter()
                .map(|i| pageview(i, facts))
                .collect::<Result<_, _>>()?,
        ),
        Channel::Events => Docs::Events(
            items
                .iter()
                .map(|i| event(i, facts))
                .collect::<Result<_, _>>()?,
        ),
        Channel::Errors => Docs::Errors(
            items
                .iter()
                .map(|i| error(i, facts))
                .collect::<Result<_, _>>()?,
        ),
        Channel::Performance => Docs::Performance(
            items
                .iter()
                .map(|i| performance(i, facts))
                .collect::<Result<_, _>>()?,
        ),
    })
}

/// A string field with Mongoose's String cast: numbers and booleans become text, objects fail.
fn text(item: &Item, field: &str) -> Result<Option<String>, Invalid> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(Value::Number(n)) => Ok(Some(n.to_string())),
        Some(Value::Bool(b)) => Ok(Some(b.to_string())),
        Some(_) => Err(invalid(format!("Field \"{field}\" must be a string"))),
    }
}

/// A required, trimmed string field.
fn required_text(item: &Item, field: &str) -> Result<String, Invalid> {
    match text(item, field)?.map(|s| s.trim().to_string()) {
        Some(s) if !s.is_empty() => Ok(s),
        _ => Err(invalid(format!("Field \"{field}\" is required"))),
    }
}

/// A number field with Mongoose's Number cast: finite JSON numbers or numeric strings.
fn number(item: &Item, field: &str) -> Result<Option<f64>, Invalid> {
    let bad = || invalid(format!("Field \"{field}\" must be a number"));
    match item.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(bad),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .map(Some)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// A JSON number only (no string cast), as the performance "at least one metric" rule wants.
fn json_number(item: &Item, field: &str) -> Option<f64> {
    item.get(field)
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite())
}

fn object(item: &Item, field: &str) -> Result<Value, Invalid> {
    match item.get(field) {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(invalid(format!("Field \"{field}\" must be an object"))),
    }
}

/// ISO string, epoch milliseconds, or absent (server time). Anything else is rejected.
fn timestamp_of(item: &Item, now_ms: i64) -> Result<i64, Invalid> {
    let bad =
        || invalid("Field \"timestamp\" must be an ISO 8601 date string or epoch milliseconds");
    match item.get("timestamp") {
        None | Some(Value::Null) => Ok(now_ms),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(now_ms),
        Some(Value::String(s)) => timestamp::parse_iso(s).ok_or_else(bad),
        Some(Value::Number(n)) => n
            .as_f64()
            .and_then(timestamp::from_epoch_number)
            .ok_or_else(bad),
        Some(_) => Err(bad()),
    }
}

/// `clientId`, else `properties.client_id`, else `properties.clientId` (SuperInsights 1.x fallback).
fn client_id(item: &Item, properties: &Value) -> Result<Option<String>, Invalid> {
    if let Some(id) = text(item, "clientId")? {
        return Ok(Some(id));
    }
    let Value::Object(props) = properties else {
        return Ok(None);
    };
    for key in ["client_id", "clientId"] {
        if let Some(id) = text(props, key).ok().flatten() {
            return Ok(Some(id));
        }
    }
    Ok(None)
}

fn pageview(item: &Item, facts: &RequestFacts) -> Result<PageView, Invalid> {
    let device_type = match text(item, "deviceType")? {
        None => facts.user_agent.device_type,
        Some(s) if s.is_empty() => facts.user_agent.device_type,
        Some(s) => Some(DeviceType::parse(&s).ok_or_else(|| {
            invalid("Field \"deviceType\" must be one of desktop, mobile, tablet")
        })?),
    };
    Ok(PageView {
        id: DocId::new(),
        url: required_text(item, "url")?,
        title: text(item, "title")?,
        referrer: text(item, "referrer")?,
        session_id: text(item, "sessionId")?,
        client_id: text(item, "clientId")?,
        utm_source: text(item, "utmSource")?,
        utm_medium: text(item, "utmMedium")?,
        utm_campaign: text(item, "utmCampaign")?,
        utm_term: text(item, "utmTerm")?,
        utm_content: text(item, "utmContent")?,
        device_type,
        browser: text(item, "browser")?.or_else(|| facts.user_agent.browser.clone()),
        os: text(item, "os")?.or_else(|| facts.user_agent.os.clone()),
        enrichment: facts.enrichment.clone(),
        timestamp: timestamp_of(item, facts.now_ms)?,
    })
}

fn event(item: &Item, facts: &RequestFacts) -> Result<Event, Invalid> {
    let event_name = required_text(item, "eventName")?;
    let duration_ms = match item.get("durationMs") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_f64()
                .filter(|d| d.is_finite() && *d >= 0.0)
                .ok_or_else(|| invalid("Field \"durationMs\" must be a finite number >= 0"))?,
        ),
    };
    let properties = object(item, "properties")?;
    Ok(Event {
        id: DocId::new(),
        event_name,
        client_id: client_id(item, &properties)?,
        properties,
        duration_ms,
        session_id: text(item, "sessionId")?,
        enrichment: facts.enrichment.clone(),
        timestamp: timestamp_of(item, facts.now_ms)?,
    })
}

fn error(item: &Item, facts: &RequestFacts) -> Result<ErrorEvent, Invalid> {
    let message = required_text(item, "message")?;
    let stack_trace = text(item, "stackTrace")?;
    let ua = &facts.user_agent;
    Ok(ErrorEvent {
        id: DocId::new(),
        fingerprint: error_fingerprint(&message, stack_trace.as_deref()),
        message,
        error_type: text(item, "errorType")?,
        stack_trace,
        source_file: text(item, "sourceFile")?,
        line_number: number(item, "lineNumber")?,
        column_number: number(item, "columnNumber")?,
        browser: text(item, "browser")?.or_else(|| ua.browser.clone()),
        browser_version: text(item, "browserVersion")?.or_else(|| ua.browser_version.clone()),
        os: text(item, "os")?.or_else(|| ua.os.clone()),
        os_version: text(item, "osVersion")?.or_else(|| ua.os_version.clone()),
        device_type: text(item, "deviceType")?
            .or_else(|| ua.device_type.map(|d| d.as_str().to_string())),
        context: error_context(item)?,
        enrichment: facts.enrichment.clone(),
        timestamp: timestamp_of(item, facts.now_ms)?,
    })
}

/// The error's `context` as sent, with the SDK's top-level `clientId`/`userId` copied into it
/// (when it is an object, or absent, and does not set them itself). SuperInsights 1.x dropped
/// them, so its client/user segment filters, which look at `context.clientId`/`context.userId`,
/// never matched an SDK error.
fn error_context(item: &Item) -> Result<Option<Value>, Invalid> {
    let mut context = item.get("context").filter(|v| !v.is_null()).cloned();
    for field in ["clientId", "userId"] {
        let Some(value) = text(item, field)? else {
            continue;
        };
        match &mut context {
            None => {
                let mut map = Map::new();
                map.insert(field.into(), Value::String(value));
                context = Some(Value::Object(map));
            }
            Some(Value::Object(map)) => {
                map.entry(field).or_insert(Value::String(value));
            }
            Some(_) => {}
        }
    }
    Ok(context)
}

fn performance(item: &Item, facts: &RequestFacts) -> Result<PerformanceMetric, Invalid> {
    if ["lcp", "cls", "fid", "ttfb", "inp"]
        .iter()
        .all(|f| json_number(item, f).is_none())
    {
        return Err(invalid(
            "At least one of lcp, cls, fid, ttfb or inp must be a number",
        ));
    }
    let properties = object(item, "properties")?;
    Ok(PerformanceMetric {
        id: DocId::new(),
        metric_type: text(item, "metricType")?
            .filter(|s| !s.trim().is_empty())
            .unwrap_or_else(|| "web_vitals_aggregate".into()),
        lcp: number(item, "lcp")?,
        cls: number(item, "cls")?,
        fid: number(item, "fid")?,
        ttfb: number(item, "ttfb")?,
        inp: number(item, "inp")?,
        url: text(item, "url")?,
        client_id: client_id(item, &properties)?,
        device_type: text(item, "deviceType")?
            .or_else(|| facts.user_agent.device_type.map(|d| d.as_str().to_string())),
        browser: text(item, "browser")?.or_else(|| facts.user_agent.browser.clone()),
        connection_type: text(item, "connectionType")?,
        properties,
        enrichment: facts.enrichment.clone(),
        timestamp: timestamp_of(item, facts.now_ms)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn facts() -> RequestFacts {
        RequestFacts {
            now_ms: 1_000,
            ..Default::default()
        }
    }

    fn docs(channel: Channel, body: Value) -> Result<Docs, Invalid> {
        let items = items(body.to_string().as_bytes())?;
        documents(channel, &items, &facts())
    }

    fn details(r: Result<Docs, Invalid>) -> String {
        r.unwrap_err().0
    }

    #[test]
    fn three_body_shapes_are_accepted() {
        for body in [
            json!({"items": [{"url": "/a"}]}),
            json!([{"url": "/a"}]),
            json!({"url": "/a"}),
        ] {
            assert_eq!(docs(Channel::Pageviews, body).unwrap().len(), 1);
        }
        // `items` that is not an array: the object itself is the item.
        assert!(
            matches!(docs(Channel::Pageviews, json!({"items": 5, "url": "/x"})), Ok(d) if d.len() == 1)
        );
    }

    #[test]
    fn bulk_limits_use_the_reference_messages() {
        assert_eq!(
            details(docs(Channel::Pageviews, json!([]))),
            "Payload array must not be empty"
        );
        let many: Vec<Value> = (0..101).map(|_| json!({"url": "/"})).collect();
        assert_eq!(
            details(docs(Channel::Pageviews, Value::Array(many))),
            "Bulk payload size exceeds limit of 100"
        );
        let hundred: Vec<Value> = (0..100).map(|_| json!({"url": "/"})).collect();
        assert_eq!(
            docs(Channel::Pageviews, Value::Array(hundred))
                .unwrap()
                .len(),
            100
        );
        assert_eq!(
            details(docs(Channel::Pageviews, json!([1]))),
            "Each item must be a JSON object"
        );
        assert_eq!(
            details(docs(Channel::Pageviews, json!("x"))),
            "Payload must be a JSON object or array"
        );
    }

    #[test]
    fn required_fields_per_channel() {
        assert_eq!(
            details(docs(Channel::Pageviews, json!({"title": "t"}))),
            "Field \"url\" is required"
        );
        assert_eq!(
            details(docs(Channel::Pageviews, json!({"url": "   "}))),
            "Field \"url\" is required"
        );
        assert_eq!(
            details(docs(Channel::Events, json!({}))),
            "Field \"eventName\" is required"
        );
        assert_eq!(
            details(docs(Channel::Errors, json!({"stackTrace": "x"}))),
            "Field \"message\" is required"
        );
        assert_eq!(
            details(docs(Channel::Performance, json!({"lcp": "12"}))),
            "At least one of lcp, cls, fid, ttfb or inp must be a number"
        );
    }

    #[test]
    fn one_bad_item_rejects_the_batch() {
        let r = docs(
            Channel::Pageviews,
            json!([{"url": "/ok"}, {"url": "/bad", "deviceType": "watch"}]),
        );
        assert_eq!(
            details(r),
            "Field \"deviceType\" must be one of desktop, mobile, tablet"
        );
    }

    #[test]
    fn casts_follow_mongoose() {
        let Docs::Pageviews(pv) =
            docs(Channel::Pageviews, json!({"url": 42, "title": true})).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (pv[0].url.as_str(), pv[0].title.as_deref()),
            ("42", Some("true"))
        );
        assert_eq!(
            details(docs(Channel::Pageviews, json!({"url": {"a": 1}}))),
            "Field \"url\" must be a string"
        );
        let Docs::Errors(er) =
            docs(Channel::Errors, json!({"message": "m", "lineNumber": "12"})).unwrap()
        else {
            panic!()
        };
        assert_eq!(er[0].line_number, Some(12.0));
        assert_eq!(
            details(docs(
                Channel::Errors,
                json!({"message": "m", "lineNumber": "x"})
            )),
            "Field \"lineNumber\" must be a number"
        );
    }

    #[test]
    fn event_duration_must_be_finite_and_non_negative() {
        let Docs::Events(ev) = docs(
            Channel::Events,
            json!({"eventName": "t", "durationMs": 12.5}),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].duration_ms, Some(12.5));
        for bad in [json!(-1), json!("12"), json!({})] {
            let r = docs(
                Channel::Events,
                json!({"eventName": "t", "durationMs": bad}),
            );
            assert_eq!(
                details(r),
                "Field \"durationMs\" must be a finite number >= 0"
            );
        }
    }

    #[test]
    fn events_take_client_id_from_properties_and_default_properties() {
        let Docs::Events(ev) = docs(
            Channel::Events,
            json!([
                {"eventName": "a", "properties": {"client_id": "p1"}},
                {"eventName": "b", "properties": {"clientId": "p2"}},
                {"eventName": "c", "clientId": "top", "properties": {"client_id": "p3"}},
                {"eventName": "  d  "},
            ]),
        )
        .unwrap() else {
            panic!()
        };
        let ids: Vec<_> = ev.iter().map(|e| e.client_id.clone()).collect();
        assert_eq!(
            ids,
            vec![
                Some("p1".into()),
                Some("p2".into()),
                Some("top".into()),
                None
            ]
        );
        assert_eq!(ev[3].properties, json!({}));
        assert_eq!(ev[3].event_name, "d");
    }

    #[test]
    fn timestamps_iso_epoch_or_server_now() {
        let Docs::Events(ev) = docs(
            Channel::Events,
            json!([
                {"eventName": "a", "timestamp": "2024-01-31T12:00:00.000Z"},
                {"eventName": "b", "timestamp": 1_706_702_400_000_i64},
                {"eventName": "c"},
            ]),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(
            ev.iter().map(|e| e.timestamp).collect::<Vec<_>>(),
            vec![1_706_702_400_000, 1_706_702_400_000, 1_000]
        );
        for bad in [json!("NaN"), json!("not a date"), json!(true), json!(1e300)] {
            assert!(docs(Channel::Events, json!({"eventName": "x", "timestamp": bad})).is_err());
        }
    }

    #[test]
    fn error_fingerprint_uses_trimmed_message_and_stack() {
        let Docs::Errors(er) = docs(
            Channel::Errors,
            json!({"message": "  boom ", "stackTrace": "at x"}),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(er[0].message, "boom");
        assert_eq!(er[0].fingerprint, error_fingerprint("boom", Some("at x")));
    }

    #[test]
    fn error_context_receives_the_sdk_client_and_user_ids_without_overriding() {
        let context_of = |item: Value| {
            let Docs::Errors(er) = docs(Channel::Errors, item).unwrap() else {
                panic!()
            };
            er[0].context.clone()
        };
        assert_eq!(
            context_of(json!({"message": "m", "clientId": "c1", "userId": "u1",
                "context": {"url": "/a", "userId": "own"}})),
            Some(json!({"url": "/a", "clientId": "c1", "userId": "own"}))
        );
        assert_eq!(
            context_of(json!({"message": "m", "clientId": "c1"})),
            Some(json!({"clientId": "c1"}))
        );
        assert_eq!(context_of(json!({"message": "m"})), None);
        assert_eq!(
            context_of(json!({"message": "m", "clientId": "c1", "context": "text"})),
            Some(json!("text"))
        );
    }

    #[test]
    fn user_agent_fills_missing_fields_only() {
        let mut f = facts();
        f.user_agent = UserAgentInfo {
            browser: Some("Chrome".into()),
            device_type: Some(DeviceType::Desktop),
            ..Default::default()
        };
        let items =
            items(br#"[{"url":"/a"},{"url":"/b","browser":"Safari","deviceType":"mobile"}]"#)
                .unwrap();
        let Docs::Pageviews(pv) = documents(Channel::Pageviews, &items, &f).unwrap() else {
            panic!()
        };
        assert_eq!(pv[0].browser.as_deref(), Some("Chrome"));
        assert_eq!(pv[0].device_type, Some(DeviceType::Desktop));
        assert_eq!(pv[1].browser.as_deref(), Some("Safari"));
        assert_eq!(pv[1].device_type, Some(DeviceType::Mobile));
    }

    #[test]
    fn malformed_json_is_a_validation_error() {
        assert!(items(b"{not json").is_err());
        assert!(items(&[0xff, 0xfe, b'{']).is_err());
        assert!(items(b"").is_err());
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(
            items(deep.as_bytes()).is_err(),
            "recursion limit, not a stack overflow"
        );
    }
}
