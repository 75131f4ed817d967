//! Turns an ingestion body into validated documents exactly as SuperInsights 1.x stored them
//! (docs/features/ingestion-compatibility.md): the three body shapes, 1–100 items, then in two
//! passes over the items — first the handler's checks (object items, truthy required fields,
//! `durationMs`), then Mongoose's casts and validators with its `<Model> validation failed: …`
//! messages — and JavaScript's conversions ([`super::coerce`]). All-or-nothing: the first bad
//! item rejects the request. Never panics; every refusal is an [`Invalid`] (a 400).

use super::coerce::{
    self, cast_error_type, cast_error_value, date_from_number, js_trim, parse_date, truthy,
};
use crate::domain::useragent::UserAgentInfo;
use crate::domain::{
    fingerprint::error_fingerprint,
    ids::DocId,
    model::{
        Channel, DeviceType, Docs, Enrichment, ErrorEvent, Event, PageView, PerformanceMetric,
    },
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

/// One item as sent: normally an object; anything else is refused per item, as in 1.x.
pub type Item = Value;

/// No fields: what a non-object item offers to drop rules.
static NO_FIELDS: std::sync::LazyLock<Map<String, Value>> = std::sync::LazyLock::new(Map::new);

/// The fields of an item (none for an array or a scalar), for drop rules.
pub fn fields(item: &Item) -> &Map<String, Value> {
    item.as_object().unwrap_or(&NO_FIELDS)
}

/// Parses a JSON body into raw items: `{"items":[…]}`, a bare array, or one object.
pub fn items(body: &[u8]) -> Result<Vec<Item>, Invalid> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| invalid(format!("Invalid JSON body: {e}")))?;
    if !matches!(value, Value::Array(_) | Value::Object(_)) {
        return Err(invalid("Payload must be a JSON object or array"));
    }
    items_from_value(value)
}

/// Parses an `application/x-www-form-urlencoded` body the way 1.x's `express.urlencoded({
/// extended: false })` did: one object of strings, a repeated name becoming an array of strings.
pub fn form_items(body: &[u8]) -> Result<Vec<Item>, Invalid> {
    let mut object = Map::new();
    for (key, value) in form_urlencoded::parse(body) {
        let value = Value::String(value.into_owned());
        match object.get_mut(key.as_ref()) {
            Some(Value::Array(list)) => list.push(value),
            Some(first) => *first = Value::Array(vec![first.take(), value]),
            None => {
                object.insert(key.into_owned(), value);
            }
        }
    }
    items_from_value(Value::Object(object))
}

/// The bulk rules over an already-parsed value (the WebSocket path parses its envelope itself):
/// `items` when it is an array, else the value itself when it is an array, else the value as
/// the one item; non-empty and at most [`MAX_ITEMS`].
pub fn items_from_value(value: Value) -> Result<Vec<Item>, Invalid> {
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut obj) if obj.get("items").is_some_and(Value::is_array) => {
            match obj.remove("items") {
                Some(Value::Array(list)) => list,
                _ => Vec::new(),
            }
        }
        other => vec![other],
    };
    if list.is_empty() {
        return Err(invalid("Payload array must not be empty"));
    }
    if list.len() > MAX_ITEMS {
        return Err(invalid(format!(
            "Bulk payload size exceeds limit of {MAX_ITEMS}"
        )));
    }
    Ok(list)
}

/// Server-side facts applied to every item of a request.
#[derive(Clone, Debug, Default)]
pub struct RequestFacts {
    pub enrichment: Enrichment,
    /// Parsed from the request's User-Agent; fills fields a server-side client did not send.
    pub user_agent: UserAgentInfo,
    /// Server time used when an item has no timestamp, or one JavaScript could not read.
    pub now_ms: i64,
}

/// Validates items of one channel into documents: the handler's checks over every item first,
/// then the schema casts and validators over every item, as 1.x did.
pub fn documents(channel: Channel, items: &[Item], facts: &RequestFacts) -> Result<Docs, Invalid> {
    let objects = items
        .iter()
        .map(|item| handler_checks(channel, item))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(match channel {
        Channel::Pageviews => Docs::Pageviews(collect(&objects, |o| pageview(o, facts))?),
        Channel::Events => Docs::Events(collect(&objects, |o| event(o, facts))?),
        Channel::Errors => Docs::Errors(collect(&objects, |o| error(o, facts))?),
        Channel::Performance => Docs::Performance(collect(&objects, |o| performance(o, facts))?),
    })
}

fn collect<T>(
    objects: &[&Map<String, Value>],
    build: impl Fn(&Map<String, Value>) -> Result<T, Invalid>,
) -> Result<Vec<T>, Invalid> {
    objects.iter().map(|o| build(o)).collect()
}

type Fields = Map<String, Value>;

/// The controller's own checks (1.x's exact messages): an object (arrays pass, with no fields),
/// the required field present and truthy, `Number(durationMs)` finite and not negative, and a
/// JSON number among the web vitals (1.x answered that one with a 500).
fn handler_checks(channel: Channel, item: &Item) -> Result<&Fields, Invalid> {
    let fields = match item {
        Value::Object(o) => o,
        Value::Array(_) => &*NO_FIELDS,
        _ => return Err(invalid("Each item must be an object")),
    };
    let required = match channel {
        Channel::Pageviews => Some("url"),
        Channel::Events => Some("eventName"),
        Channel::Errors => Some("message"),
        Channel::Performance => None,
    };
    if let Some(field) = required.filter(|f| !fields.get(*f).is_some_and(truthy)) {
        return Err(invalid(format!("Field \"{field}\" is required")));
    }
    let duration = fields.get("durationMs").filter(|v| !v.is_null());
    if let Some(d) = duration.filter(|_| channel == Channel::Events) {
        let n = coerce::to_number(d);
        if !n.is_finite() || n < 0.0 {
            return Err(invalid(
                "Field \"durationMs\" must be a non-negative number",
            ));
        }
    }
    if channel == Channel::Performance
        && ["lcp", "cls", "fid", "ttfb", "inp"]
            .iter()
            .all(|f| !fields.get(*f).is_some_and(Value::is_number))
    {
        return Err(invalid(
            "At least one of lcp, cls, fid, ttfb or inp must be a number",
        ));
    }
    Ok(fields)
}

/// Mongoose's verdict on one document: cast errors in the order the fields were set, then
/// `required`, then `enum`, joined into `<Model> validation failed: path: message, …`.
struct Schema {
    model: &'static str,
    cast: Vec<(&'static str, String)>,
    checks: Vec<(&'static str, String)>,
}

impl Schema {
    fn new(model: &'static str) -> Self {
        Self {
            model,
            cast: Vec::new(),
            checks: Vec::new(),
        }
    }

    fn cast_failed(&mut self, path: &'static str, kind: &str, value: &Value) {
        self.cast.push((
            path,
            format!(
                "Cast to {kind} failed for value {} (type {}) at path \"{path}\"",
                cast_error_value(value),
                cast_error_type(value)
            ),
        ));
    }

    /// A `String` path: null is unset; numbers and booleans become their JavaScript text; an
    /// object with a string `_id` becomes that id; other objects and arrays fail.
    fn string(&mut self, path: &'static str, value: Option<&Value>) -> Option<String> {
        match value? {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(coerce::number_to_string(coerce::number_of(n))),
            Value::Bool(b) => Some(b.to_string()),
            Value::Object(o) => match o.get("_id") {
                Some(Value::String(id)) if !id.is_empty() => Some(id.clone()),
                _ => {
                    self.cast_failed(path, "string", value?);
                    None
                }
            },
            other @ Value::Array(_) => {
                self.cast_failed(path, "string", other);
                None
            }
        }
    }

    fn field(&mut self, item: &Fields, path: &'static str) -> Option<String> {
        self.string(path, item.get(path))
    }

    /// A `String` path with `required` and `trim`.
    fn required(&mut self, item: &Fields, path: &'static str) -> String {
        let failed_before = self.cast.len();
        let value = self.field(item, path).map(|s| js_trim(&s).to_string());
        match value {
            Some(s) if !s.is_empty() => s,
            _ => {
                if self.cast.len() == failed_before {
                    self.checks
                        .push((path, format!("Path `{path}` is required.")));
                }
                String::new()
            }
        }
    }

    /// A `Number` path: `""` is unset; strings and booleans go through `Number()`; `NaN`,
    /// arrays and objects fail. Infinite values, which JSON cannot carry on, fail too.
    fn number(&mut self, item: &Fields, path: &'static str) -> Option<f64> {
        let value = item.get(path)?;
        let n = match value {
            Value::Null => return None,
            Value::String(s) if s.is_empty() => return None,
            Value::String(_) | Value::Bool(_) => coerce::to_number(value),
            Value::Number(n) => coerce::number_of(n),
            Value::Array(_) | Value::Object(_) => f64::NAN,
        };
        if n.is_finite() {
            Some(n)
        } else {
            self.cast_failed(path, "Number", value);
            None
        }
    }

    fn finish(self) -> Result<(), Invalid> {
        if self.cast.is_empty() && self.checks.is_empty() {
            return Ok(());
        }
        let details = self
            .cast
            .iter()
            .chain(&self.checks)
            .map(|(path, message)| format!("{path}: {message}"))
            .collect::<Vec<_>>()
            .join(", ");
        Err(invalid(format!(
            "{} validation failed: {details}",
            self.model
        )))
    }
}

/// `timestamp` as `new Date(value)`: absent or null is the server's time; a number or string
/// JavaScript cannot read as a date (and any other type) is replaced by the server's time, and
/// the document says so.
fn timestamp_of(item: &Fields, facts: &RequestFacts) -> (i64, bool) {
    let parsed = match item.get("timestamp") {
        None | Some(Value::Null) => return (facts.now_ms, false),
        Some(Value::Number(n)) => date_from_number(coerce::number_of(n)),
        Some(Value::String(s)) => parse_date(s),
        Some(_) => None,
    };
    match parsed {
        Some(ms) => (ms, false),
        None => (facts.now_ms, true),
    }
}

fn enrichment(item: &Fields, facts: &RequestFacts) -> (Enrichment, i64) {
    let (timestamp, replaced) = timestamp_of(item, facts);
    let enrichment = Enrichment {
        timestamp_replaced: replaced,
        ..facts.enrichment.clone()
    };
    (enrichment, timestamp)
}

/// `properties`, or `{}` when it is falsy; any truthy value is kept as sent (a Mixed path).
fn properties(item: &Fields) -> Value {
    item.get("properties")
        .filter(|v| truthy(v))
        .cloned()
        .unwrap_or_else(|| Value::Object(Map::new()))
}

/// The first truthy of `clientId`, `properties.client_id`, `properties.clientId` (1.x's `||`
/// chain), cast as a string.
fn fallback_client_id(schema: &mut Schema, item: &Fields) -> Option<String> {
    let props = item.get("properties").and_then(Value::as_object);
    let chosen = item
        .get("clientId")
        .filter(|v| truthy(v))
        .or_else(|| props?.get("client_id").filter(|v| truthy(v)))
        .or_else(|| props?.get("clientId").filter(|v| truthy(v)));
    schema.string("clientId", chosen)
}

fn pageview(item: &Fields, facts: &RequestFacts) -> Result<PageView, Invalid> {
    let mut s = Schema::new("PageView");
    let url = s.required(item, "url");
    let title = s.field(item, "title");
    let referrer = s.field(item, "referrer");
    let session_id = s.field(item, "sessionId");
    let client_id = s.field(item, "clientId");
    let utm_source = s.field(item, "utmSource");
    let utm_medium = s.field(item, "utmMedium");
    let utm_campaign = s.field(item, "utmCampaign");
    let utm_term = s.field(item, "utmTerm");
    let utm_content = s.field(item, "utmContent");
    let device_text = s.field(item, "deviceType");
    let browser = s.field(item, "browser");
    let os = s.field(item, "os");
    let device_type = match device_text {
        None => facts.user_agent.device_type,
        Some(text) => {
            let parsed = DeviceType::parse(&text);
            if parsed.is_none() {
                s.checks.push((
                    "deviceType",
                    format!("`{text}` is not a valid enum value for path `deviceType`."),
                ));
            }
            parsed
        }
    };
    s.finish()?;
    let (enrichment, timestamp) = enrichment(item, facts);
    Ok(PageView {
        id: DocId::new(),
        url,
        title,
        referrer,
        session_id,
        client_id,
        utm_source,
        utm_medium,
        utm_campaign,
        utm_term,
        utm_content,
        device_type,
        browser: browser.or_else(|| facts.user_agent.browser.clone()),
        os: os.or_else(|| facts.user_agent.os.clone()),
        enrichment,
        timestamp,
    })
}

fn event(item: &Fields, facts: &RequestFacts) -> Result<Event, Invalid> {
    let mut s = Schema::new("Event");
    let event_name = s.required(item, "eventName");
    let properties = properties(item);
    let duration_ms = s.number(item, "durationMs");
    let session_id = s.field(item, "sessionId");
    let client_id = fallback_client_id(&mut s, item);
    s.finish()?;
    let (enrichment, timestamp) = enrichment(item, facts);
    Ok(Event {
        id: DocId::new(),
        event_name,
        properties,
        duration_ms,
        session_id,
        client_id,
        enrichment,
        timestamp,
    })
}

fn error(item: &Fields, facts: &RequestFacts) -> Result<ErrorEvent, Invalid> {
    let mut s = Schema::new("Error");
    let message = s.required(item, "message");
    let error_type = s.field(item, "errorType");
    let stack_trace = s.field(item, "stackTrace");
    let source_file = s.field(item, "sourceFile");
    let line_number = s.number(item, "lineNumber");
    let column_number = s.number(item, "columnNumber");
    let browser = s.field(item, "browser");
    let browser_version = s.field(item, "browserVersion");
    let os = s.field(item, "os");
    let os_version = s.field(item, "osVersion");
    let device_type = s.field(item, "deviceType");
    // 1.x had no schema path for these and dropped them; they are kept (cast leniently: an
    // uncastable value is left out rather than refused, since 1.x accepted any value here) so
    // the client and user segment filters can find SDK errors.
    let mut ids = Schema::new("Error");
    let client_id = ids.field(item, "clientId");
    let user_id = ids.field(item, "userId");
    s.finish()?;
    let ua = &facts.user_agent;
    let (enrichment, timestamp) = enrichment(item, facts);
    Ok(ErrorEvent {
        id: DocId::new(),
        fingerprint: error_fingerprint(&message, stack_trace.as_deref()),
        message,
        error_type,
        stack_trace,
        source_file,
        line_number,
        column_number,
        browser: browser.or_else(|| ua.browser.clone()),
        browser_version: browser_version.or_else(|| ua.browser_version.clone()),
        os: os.or_else(|| ua.os.clone()),
        os_version: os_version.or_else(|| ua.os_version.clone()),
        device_type: device_type.or_else(|| ua.device_type.map(|d| d.as_str().to_string())),
        context: item.get("context").filter(|v| !v.is_null()).cloned(),
        client_id,
        user_id,
        enrichment,
        timestamp,
    })
}

fn performance(item: &Fields, facts: &RequestFacts) -> Result<PerformanceMetric, Invalid> {
    let mut s = Schema::new("PerformanceMetric");
    let metric_type = s
        .string("metricType", item.get("metricType").filter(|v| truthy(v)))
        .unwrap_or_else(|| "web_vitals_aggregate".into());
    let lcp = s.number(item, "lcp");
    let cls = s.number(item, "cls");
    let fid = s.number(item, "fid");
    let ttfb = s.number(item, "ttfb");
    let inp = s.number(item, "inp");
    let url = s.field(item, "url");
    let client_id = fallback_client_id(&mut s, item);
    let device_type = s.field(item, "deviceType");
    let browser = s.field(item, "browser");
    let connection_type = s.field(item, "connectionType");
    let properties = properties(item);
    s.finish()?;
    let (enrichment, timestamp) = enrichment(item, facts);
    Ok(PerformanceMetric {
        id: DocId::new(),
        metric_type,
        lcp,
        cls,
        fid,
        ttfb,
        inp,
        url,
        client_id,
        device_type: device_type
            .or_else(|| facts.user_agent.device_type.map(|d| d.as_str().to_string())),
        browser: browser.or_else(|| facts.user_agent.browser.clone()),
        connection_type,
        properties,
        enrichment,
        timestamp,
    })
}

#[cfg(test)]
mod tests {
    //! One test per rule of docs/features/ingestion-compatibility.md (R-numbers), with the
    //! expected values taken from SuperInsights 1.x on Node 20 and Mongoose 8.
    use super::*;
    use serde_json::json;

    const NOW: i64 = 1_000;

    fn facts() -> RequestFacts {
        RequestFacts {
            now_ms: NOW,
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

    fn one_event(item: Value) -> Event {
        match docs(Channel::Events, item) {
            Ok(Docs::Events(mut ev)) => ev.remove(0),
            other => panic!("{other:?}"),
        }
    }

    fn one_pageview(item: Value) -> PageView {
        match docs(Channel::Pageviews, item) {
            Ok(Docs::Pageviews(mut pv)) => pv.remove(0),
            other => panic!("{other:?}"),
        }
    }

    fn one_error(item: Value) -> ErrorEvent {
        match docs(Channel::Errors, item) {
            Ok(Docs::Errors(mut er)) => er.remove(0),
            other => panic!("{other:?}"),
        }
    }

    fn one_metric(item: Value) -> PerformanceMetric {
        match docs(Channel::Performance, item) {
            Ok(Docs::Performance(mut pm)) => pm.remove(0),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn r1_three_body_shapes_are_accepted() {
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
        assert_eq!(
            details(docs(Channel::Pageviews, json!("x"))),
            "Payload must be a JSON object or array"
        );
    }

    #[test]
    fn r2_bulk_limits_use_the_reference_messages() {
        assert_eq!(
            details(docs(Channel::Pageviews, json!([]))),
            "Payload array must not be empty"
        );
        assert_eq!(
            details(docs(Channel::Pageviews, json!({"items": []}))),
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
    }

    #[test]
    fn r3_form_bodies_are_one_item_of_strings() {
        let items = form_items(b"url=%2Fa&title=Hi+there&tag=x&tag=y").unwrap();
        assert_eq!(
            items,
            vec![json!({"url": "/a", "title": "Hi there", "tag": ["x", "y"]})]
        );
        let Docs::Events(ev) = documents(
            Channel::Events,
            &form_items(b"eventName=e&durationMs=12").unwrap(),
            &facts(),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(ev[0].duration_ms, Some(12.0));
        assert_eq!(
            documents(Channel::Pageviews, &form_items(b"").unwrap(), &facts())
                .unwrap_err()
                .0,
            "Field \"url\" is required"
        );
    }

    #[test]
    fn r4_items_must_be_objects_and_arrays_have_no_fields() {
        for item in [json!(null), json!(1), json!("x"), json!(true)] {
            assert_eq!(
                details(docs(Channel::Pageviews, json!([{"url": "/"}, item]))),
                "Each item must be an object"
            );
        }
        assert_eq!(
            details(docs(Channel::Pageviews, json!([["/a"]]))),
            "Field \"url\" is required"
        );
    }

    #[test]
    fn r5_required_fields_must_be_truthy_and_are_checked_first() {
        for missing in [
            json!({}),
            json!({"url": null}),
            json!({"url": ""}),
            json!({"url": 0}),
            json!({"url": false}),
        ] {
            assert_eq!(
                details(docs(Channel::Pageviews, missing)),
                "Field \"url\" is required"
            );
        }
        assert_eq!(
            details(docs(Channel::Events, json!({"eventName": ""}))),
            "Field \"eventName\" is required"
        );
        assert_eq!(
            details(docs(Channel::Errors, json!({"stackTrace": "x"}))),
            "Field \"message\" is required"
        );
        // The handler's checks run over every item before any schema check.
        assert_eq!(
            details(docs(
                Channel::Pageviews,
                json!([{"url": "/", "deviceType": "watch"}, {"title": "no url"}])
            )),
            "Field \"url\" is required"
        );
    }

    #[test]
    fn r6_required_strings_are_trimmed_and_blank_is_a_schema_error() {
        assert_eq!(
            details(docs(Channel::Pageviews, json!({"url": "   "}))),
            "PageView validation failed: url: Path `url` is required."
        );
        assert_eq!(
            details(docs(Channel::Errors, json!({"message": "\u{feff} "}))),
            "Error validation failed: message: Path `message` is required."
        );
        assert_eq!(one_pageview(json!({"url": " /a\u{a0}"})).url, "/a");
        assert_eq!(one_event(json!({"eventName": "  d  "})).event_name, "d");
        let er = one_error(json!({"message": "  boom ", "stackTrace": "at x"}));
        assert_eq!(er.message, "boom");
        assert_eq!(er.fingerprint, error_fingerprint("boom", Some("at x")));
    }

    #[test]
    fn r7_string_casts_follow_mongoose() {
        let pv = one_pageview(
            json!({"url": 1.0, "title": true, "referrer": 1e21, "os": {"_id": "linux"}}),
        );
        assert_eq!(pv.url, "1");
        assert_eq!(pv.title.as_deref(), Some("true"));
        assert_eq!(pv.referrer.as_deref(), Some("1e+21"));
        assert_eq!(pv.os.as_deref(), Some("linux"));
        assert_eq!(
            one_pageview(json!({"url": "/", "title": ""}))
                .title
                .as_deref(),
            Some("")
        );
        assert_eq!(
            details(docs(Channel::Pageviews, json!({"url": {"a": 1}}))),
            "PageView validation failed: url: Cast to string failed for value \"{ a: 1 }\" (type Object) at path \"url\""
        );
        assert_eq!(
            details(docs(Channel::Pageviews, json!({"url": [1, 2]}))),
            "PageView validation failed: url: Cast to string failed for value \"[ 1, 2 ]\" (type Array) at path \"url\""
        );
    }

    #[test]
    fn r8_number_casts_follow_mongoose() {
        let er = one_error(json!({"message": "m", "lineNumber": "12", "columnNumber": true}));
        assert_eq!((er.line_number, er.column_number), (Some(12.0), Some(1.0)));
        let er = one_error(json!({"message": "m", "lineNumber": "", "columnNumber": " 0x10 "}));
        assert_eq!((er.line_number, er.column_number), (None, Some(16.0)));
        assert_eq!(
            one_error(json!({"message": "m", "lineNumber": "  "})).line_number,
            Some(0.0)
        );
        assert_eq!(
            details(docs(
                Channel::Errors,
                json!({"message": "m", "lineNumber": "x"})
            )),
            "Error validation failed: lineNumber: Cast to Number failed for value \"x\" (type string) at path \"lineNumber\""
        );
        assert_eq!(
            details(docs(
                Channel::Errors,
                json!({"message": "m", "lineNumber": [3]})
            )),
            "Error validation failed: lineNumber: Cast to Number failed for value \"[ 3 ]\" (type Array) at path \"lineNumber\""
        );
        let pm = one_metric(json!({"lcp": 1200, "ttfb": "80", "fid": false}));
        assert_eq!(
            (pm.lcp, pm.ttfb, pm.fid),
            (Some(1200.0), Some(80.0), Some(0.0))
        );
    }

    #[test]
    fn r9_duration_is_numberlike_finite_and_not_negative() {
        for (sent, stored) in [
            (json!(12.5), Some(12.5)),
            (json!("12"), Some(12.0)),
            (json!(true), Some(1.0)),
            (json!(false), Some(0.0)),
            (json!(""), None),
            (json!(null), None),
        ] {
            assert_eq!(
                one_event(json!({"eventName": "t", "durationMs": sent})).duration_ms,
                stored,
                "{sent}"
            );
        }
        for bad in [
            json!(-1),
            json!("-1"),
            json!("x"),
            json!({}),
            json!("Infinity"),
        ] {
            assert_eq!(
                details(docs(
                    Channel::Events,
                    json!({"eventName": "t", "durationMs": bad})
                )),
                "Field \"durationMs\" must be a non-negative number"
            );
        }
        assert_eq!(
            details(docs(
                Channel::Events,
                json!({"eventName": "t", "durationMs": [5]})
            )),
            "Event validation failed: durationMs: Cast to Number failed for value \"[ 5 ]\" (type Array) at path \"durationMs\""
        );
    }

    #[test]
    fn r10_properties_default_only_when_falsy() {
        for falsy in [json!(null), json!(""), json!(0), json!(false)] {
            assert_eq!(
                one_event(json!({"eventName": "e", "properties": falsy})).properties,
                json!({})
            );
        }
        for kept in [json!("text"), json!(5), json!([1, 2]), json!({"a": 1})] {
            assert_eq!(
                one_event(json!({"eventName": "e", "properties": kept.clone()})).properties,
                kept
            );
            assert_eq!(
                one_metric(json!({"cls": 0, "properties": kept.clone()})).properties,
                kept
            );
        }
    }

    #[test]
    fn r11_client_id_falls_back_to_properties_on_falsy_values() {
        let ids: Vec<_> = [
            json!({"eventName": "a", "properties": {"client_id": "p1"}}),
            json!({"eventName": "b", "properties": {"clientId": "p2"}}),
            json!({"eventName": "c", "clientId": "top", "properties": {"client_id": "p3"}}),
            json!({"eventName": "d", "clientId": "", "properties": {"client_id": 0, "clientId": 7}}),
            json!({"eventName": "e", "properties": "client_id"}),
        ]
        .into_iter()
        .map(|item| one_event(item).client_id)
        .collect();
        assert_eq!(
            ids,
            vec![
                Some("p1".into()),
                Some("p2".into()),
                Some("top".into()),
                Some("7".into()),
                None
            ]
        );
        assert_eq!(
            details(docs(
                Channel::Events,
                json!({"eventName": "e", "properties": {"clientId": {"a": 1}}})
            )),
            "Event validation failed: clientId: Cast to string failed for value \"{ a: 1 }\" (type Object) at path \"clientId\""
        );
        assert_eq!(
            one_metric(json!({"cls": 0, "properties": {"client_id": "p"}}))
                .client_id
                .as_deref(),
            Some("p")
        );
    }

    #[test]
    fn r12_metric_type_defaults_when_falsy() {
        assert_eq!(
            one_metric(json!({"cls": 0, "metricType": ""})).metric_type,
            "web_vitals_aggregate"
        );
        assert_eq!(
            one_metric(json!({"cls": 0, "metricType": 0})).metric_type,
            "web_vitals_aggregate"
        );
        assert_eq!(
            one_metric(json!({"cls": 0, "metricType": " x "})).metric_type,
            " x "
        );
    }

    #[test]
    fn r13_device_type_is_an_enum_on_page_views() {
        assert_eq!(
            details(docs(
                Channel::Pageviews,
                json!([{"url": "/ok"}, {"url": "/bad", "deviceType": "watch"}])
            )),
            "PageView validation failed: deviceType: `watch` is not a valid enum value for path `deviceType`."
        );
        assert_eq!(
            details(docs(
                Channel::Pageviews,
                json!({"url": "/", "deviceType": ""})
            )),
            "PageView validation failed: deviceType: `` is not a valid enum value for path `deviceType`."
        );
        assert_eq!(
            one_pageview(json!({"url": "/", "deviceType": null})).device_type,
            None
        );
        assert_eq!(
            one_error(json!({"message": "m", "deviceType": "watch"}))
                .device_type
                .as_deref(),
            Some("watch"),
            "free text on errors"
        );
    }

    #[test]
    fn r14_timestamps_parse_like_new_date_or_become_now_with_a_flag() {
        let stamp = |t: Value| {
            let e = one_event(json!({"eventName": "e", "timestamp": t}));
            (e.timestamp, e.enrichment.timestamp_replaced)
        };
        assert_eq!(
            stamp(json!("2024-01-31T12:00:00.000Z")),
            (1_706_702_400_000, false)
        );
        assert_eq!(
            stamp(json!(1_706_702_400_000_i64)),
            (1_706_702_400_000, false)
        );
        assert_eq!(
            stamp(json!(1_706_702_400_000.9)),
            (1_706_702_400_000, false)
        );
        assert_eq!(
            stamp(json!("Nov 1, 2026 10:00:00")),
            (1_793_527_200_000, false)
        );
        assert_eq!(
            stamp(json!("Sun, 01 Nov 2026 10:00:00 GMT")),
            (1_793_527_200_000, false)
        );
        assert_eq!(stamp(json!(null)), (NOW, false));
        assert!(
            !one_event(json!({"eventName": "e"}))
                .enrichment
                .timestamp_replaced
        );
        for replaced in [
            json!("garbage"),
            json!("1793527200000"),
            json!("NaN"),
            json!(""),
            json!(true),
            json!({}),
            json!([2026]),
            json!(1e300),
        ] {
            assert_eq!(stamp(replaced.clone()), (NOW, true), "{replaced}");
        }
    }

    #[test]
    fn r15_schema_errors_are_joined_casts_then_required_then_enum() {
        assert_eq!(
            details(docs(
                Channel::Pageviews,
                json!({"url": "  ", "title": {"a": 1}, "deviceType": "x", "browser": [1]})
            )),
            "PageView validation failed: title: Cast to string failed for value \"{ a: 1 }\" (type Object) at path \"title\", browser: Cast to string failed for value \"[ 1 ]\" (type Array) at path \"browser\", url: Path `url` is required., deviceType: `x` is not a valid enum value for path `deviceType`."
        );
    }

    #[test]
    fn r16_performance_needs_one_numeric_vital() {
        for item in [json!({"lcp": "12"}), json!({}), json!({"url": "/"})] {
            assert_eq!(
                details(docs(Channel::Performance, item)),
                "At least one of lcp, cls, fid, ttfb or inp must be a number"
            );
        }
    }

    #[test]
    fn r18_error_context_is_stored_as_sent_and_ids_beside_it() {
        let er = one_error(json!({"message": "m", "clientId": "c1", "userId": "u1",
            "context": {"url": "/a", "userId": "own"}}));
        assert_eq!(er.context, Some(json!({"url": "/a", "userId": "own"})));
        assert_eq!(
            (er.client_id.as_deref(), er.user_id.as_deref()),
            (Some("c1"), Some("u1"))
        );
        let er = one_error(json!({"message": "m", "clientId": {"x": 1}, "context": "text"}));
        assert_eq!((er.context, er.client_id), (Some(json!("text")), None));
        assert_eq!(one_error(json!({"message": "m"})).context, None);
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

#[cfg(test)]
mod fuzz {
    //! A stable-Rust fuzz target over the parser, run by `cargo test` for a bounded number of
    //! cases (`SUPERINSIGHTS_FUZZ_CASES`, default 20,000; `SUPERINSIGHTS_FUZZ_SEED` to replay or
    //! vary): structure-aware random items over the fields 1.x reads plus byte-level mutations
    //! of real bodies, through the JSON and form parsers and all four channels. The parser must
    //! never panic, must either accept every item or refuse with one of the 400 messages, and
    //! what it accepts must be storable (finite numbers, in-range timestamps).
    use super::*;
    use crate::ingest::coerce;

    /// xorshift64*: tiny, deterministic, good enough to explore.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n.max(1) as u64) as usize
        }
        fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
            &items[self.below(items.len())]
        }
    }

    const FIELDS: &[&str] = &[
        "url",
        "eventName",
        "message",
        "durationMs",
        "timestamp",
        "properties",
        "clientId",
        "client_id",
        "userId",
        "sessionId",
        "lineNumber",
        "columnNumber",
        "lcp",
        "cls",
        "fid",
        "ttfb",
        "inp",
        "deviceType",
        "metricType",
        "context",
        "items",
        "title",
        "stackTrace",
        "_id",
        "browser",
    ];

    const STRINGS: &[&str] = &[
        "",
        " ",
        "12",
        " 0x1F ",
        "-1",
        "1e400",
        "Infinity",
        "NaN",
        "garbage",
        "desktop",
        "mobile",
        "2026-11-01T10:00:00Z",
        "Nov 1, 2026 10:00:00",
        "1793527200000",
        "+275760-09-13T00:00:00.001Z",
        "12:00 pm",
        "\u{feff}",
        "ünï\u{0}cødé",
        "(((",
        "--1",
        "2026-02-30",
        "GMT+99999",
        "0b",
        ".",
        "1.",
        "t",
        "Z",
    ];

    fn value(rng: &mut Rng, depth: usize) -> Value {
        match rng.below(if depth > 3 { 6 } else { 9 }) {
            0 => Value::Null,
            1 => Value::Bool(rng.below(2) == 1),
            2 => Value::from(rng.next() as i64 >> rng.below(64)),
            3 => Value::from(f64::from_bits(rng.next())).clone(),
            4 => Value::String(rng.pick(STRINGS).to_string()),
            5 => {
                let len = rng.below(12);
                Value::String((0..len).map(|_| char::from(rng.below(128) as u8)).collect())
            }
            6 | 7 => Value::Object(object(rng, depth + 1)),
            _ => Value::Array((0..rng.below(4)).map(|_| value(rng, depth + 1)).collect()),
        }
    }

    fn object(rng: &mut Rng, depth: usize) -> Map<String, Value> {
        (0..rng.below(7))
            .map(|_| (rng.pick(FIELDS).to_string(), value(rng, depth)))
            .collect()
    }

    fn body(rng: &mut Rng) -> Vec<u8> {
        let shaped = match rng.below(4) {
            0 => Value::Object(object(rng, 0)),
            1 => Value::Array((0..rng.below(5)).map(|_| value(rng, 1)).collect()),
            2 => {
                let items: Vec<Value> = (0..rng.below(5))
                    .map(|_| Value::Object(object(rng, 1)))
                    .collect();
                serde_json::json!({ "items": items })
            }
            _ => value(rng, 0),
        };
        let mut bytes = serde_json::to_vec(&shaped).unwrap_or_default();
        // Sometimes damage it, byte by byte.
        for _ in 0..rng.below(3) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            match rng.below(3) {
                0 => bytes[at] = rng.next() as u8,
                1 => {
                    bytes.remove(at);
                }
                _ => bytes.insert(at, *rng.pick(b"{}[]\",:0e-. \\")),
            }
        }
        bytes
    }

    fn known_refusal(message: &str) -> bool {
        [
            "Invalid JSON body",
            "Payload must be a JSON object or array",
            "Payload array must not be empty",
            "Bulk payload size exceeds limit of 100",
            "Each item must be an object",
            "Field \"",
            "At least one of lcp, cls, fid, ttfb or inp must be a number",
            "PageView validation failed: ",
            "Event validation failed: ",
            "Error validation failed: ",
            "PerformanceMetric validation failed: ",
        ]
        .iter()
        .any(|p| message.starts_with(p))
    }

    fn storable(docs: &Docs) {
        let finite = |v: Option<f64>| assert!(v.is_none_or(f64::is_finite), "{v:?}");
        let in_range = |t: i64| assert!(t.unsigned_abs() <= 8_640_000_000_000_000, "{t}");
        match docs {
            Docs::Pageviews(d) => d.iter().for_each(|x| in_range(x.timestamp)),
            Docs::Events(d) => d.iter().for_each(|x| {
                in_range(x.timestamp);
                finite(x.duration_ms);
            }),
            Docs::Errors(d) => d.iter().for_each(|x| {
                in_range(x.timestamp);
                finite(x.line_number);
                finite(x.column_number);
            }),
            Docs::Performance(d) => d.iter().for_each(|x| {
                in_range(x.timestamp);
                [x.lcp, x.cls, x.fid, x.ttfb, x.inp]
                    .into_iter()
                    .for_each(finite);
            }),
        }
        // The spool writes batches as JSON and reads them back. (Not compared for equality:
        // without serde_json's `float_roundtrip` feature a float can come back one ulp off.)
        let text = serde_json::to_string(docs).unwrap();
        assert_eq!(
            serde_json::from_str::<Docs>(&text).unwrap().len(),
            docs.len()
        );
    }

    fn one_case(rng: &mut Rng) {
        let bytes = body(rng);
        let facts = RequestFacts {
            now_ms: 1_700_000_000_000,
            ..Default::default()
        };
        for parsed in [items(&bytes), form_items(&bytes)] {
            let list = match parsed {
                Ok(list) => list,
                Err(e) => {
                    assert!(known_refusal(&e.0), "unexpected refusal {:?}", e.0);
                    continue;
                }
            };
            assert!((1..=MAX_ITEMS).contains(&list.len()));
            for channel in Channel::ALL {
                match documents(channel, &list, &facts) {
                    Ok(docs) => {
                        assert_eq!(docs.len(), list.len(), "all or nothing");
                        storable(&docs);
                    }
                    Err(e) => assert!(known_refusal(&e.0), "unexpected refusal {:?}", e.0),
                }
            }
        }
        // The conversions underneath, on raw text.
        let text = String::from_utf8_lossy(&bytes);
        let _ = coerce::parse_date(&text);
        let _ = coerce::string_to_number(&text);
        let f = f64::from_bits(rng.next());
        if f.is_finite() {
            assert_eq!(coerce::string_to_number(&coerce::number_to_string(f)), f);
        }
    }

    #[test]
    fn the_parser_never_panics_and_refuses_only_with_400_messages() {
        let env = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<u64>().ok());
        let cases = env("SUPERINSIGHTS_FUZZ_CASES").unwrap_or(20_000);
        let seed = env("SUPERINSIGHTS_FUZZ_SEED").unwrap_or(0x05ee_d1e5_50f1_c0de);
        for case in 0..cases {
            let case_seed = seed ^ (case + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let outcome = std::panic::catch_unwind(|| one_case(&mut Rng(case_seed | 1)));
            assert!(
                outcome.is_ok(),
                "case {case} failed: replay with SUPERINSIGHTS_FUZZ_SEED={seed} (case seed {case_seed:#x})"
            );
        }
    }
}
