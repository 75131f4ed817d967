//! BSON shapes of the documents `MongoStore` writes and reads, with SuperInsights 1.x collection
//! and field names (camelCase). Pure conversions only: no driver calls, no IO.
//!
//! Readers are lenient about how a number or id was stored (a SuperInsights 1.x database written
//! by Mongoose stores integers as Int32 or Double), writers are strict and deterministic.

use crate::domain::{
    ids::DocId,
    model::{Channel, Docs, Enrichment, ErrorEvent, Event, PageView, PerformanceMetric},
    timestamp::to_iso,
};
use crate::store::{
    Invite, InviteScope, InviteStatus, OrgRole, OrgStatus, Organization, PlatformRole, Project,
    ProjectUpdate, StoreError, StoreResult, User,
};
use mongodb::bson::{Binary, Bson, DateTime, Document, doc, oid::ObjectId, spec::BinarySubtype};
use serde_json::{Map, Number, Value};

/// Analytics collections, named as SuperInsights 1.x (Mongoose pluralised model names).
pub(super) const PAGEVIEWS: &str = "pageviews";
pub(super) const EVENTS: &str = "events";
pub(super) const ERRORS: &str = "errors";
pub(super) const PERFORMANCE: &str = "performancemetrics";
/// Account and settings collections (saasbackend's models).
pub(super) const PROJECTS: &str = "projects";
pub(super) const USERS: &str = "users";
pub(super) const ORGANIZATIONS: &str = "organizations";
pub(super) const MEMBERS: &str = "organizationmembers";
pub(super) const SETTINGS: &str = "globalsettings";
/// Organization invitations (saasbackend's Invite) and platform invitations (SuperInsights').
pub(super) const INVITES: &str = "invites";
pub(super) const PLATFORM_INVITES: &str = "platforminvites";
/// SuperInsights 1.x's AI analysis runs: only ever deleted here, with the project's data.
pub(super) const AI_RUNS: &str = "aianalysisruns";
/// Durable session records (`_id` = session id); the name connect-mongo used in 1.x.
pub(super) const SESSIONS: &str = "sessions";
/// Ours, not SuperInsights': one marker per batch applied by `write_once`.
pub(super) const INGEST_BATCHES: &str = "ingestbatches";

/// The collection holding a channel's documents.
pub(super) fn collection_of(channel: Channel) -> &'static str {
    match channel {
        Channel::Pageviews => PAGEVIEWS,
        Channel::Events => EVENTS,
        Channel::Errors => ERRORS,
        Channel::Performance => PERFORMANCE,
    }
}

/// Our id as an ObjectId (same 12 bytes).
pub(super) fn oid(id: DocId) -> ObjectId {
    ObjectId::from_bytes(id.0)
}

/// An epoch-milliseconds timestamp as a BSON date.
pub(super) fn date(ms: i64) -> DateTime {
    DateTime::from_millis(ms)
}

/// The collection holding an invitation: `invites` for an organization's, `platforminvites` for
/// the platform's (`org_id` = `None`).
pub(super) fn invites_collection(org_id: Option<DocId>) -> &'static str {
    if org_id.is_some() {
        INVITES
    } else {
        PLATFORM_INVITES
    }
}

// ---------------------------------------------------------------------------------------------
// Writing analytics documents
// ---------------------------------------------------------------------------------------------

/// The documents of one batch as BSON, each with `_id` = its [`DocId`] (so a replay hits the
/// `_id` index instead of duplicating) and `projectId` = the batch's project.
pub(super) fn analytics_docs(docs: &Docs, project_id: DocId) -> Vec<Document> {
    let project = oid(project_id);
    match docs {
        Docs::Pageviews(d) => d.iter().map(|x| pageview_doc(x, project)).collect(),
        Docs::Events(d) => d.iter().map(|x| event_doc(x, project)).collect(),
        Docs::Errors(d) => d.iter().map(|x| error_doc(x, project)).collect(),
        Docs::Performance(d) => d.iter().map(|x| metric_doc(x, project)).collect(),
    }
}

fn head(id: DocId, project: ObjectId) -> Document {
    doc! { "_id": oid(id), "projectId": project }
}

fn put_str(d: &mut Document, key: &str, value: &Option<String>) {
    if let Some(v) = value {
        d.insert(key, v.as_str());
    }
}

fn put_f64(d: &mut Document, key: &str, value: Option<f64>) {
    if let Some(v) = value {
        d.insert(key, v);
    }
}

/// `ip`, `country`, `isBot` and `timestampReplaced` (each only when true, as the JSON shape) and
/// `timestamp`, always last.
fn put_tail(d: &mut Document, e: &Enrichment, timestamp: i64) {
    put_str(d, "ip", &e.ip);
    put_str(d, "country", &e.country);
    if e.is_bot {
        d.insert("isBot", true);
    }
    if e.timestamp_replaced {
        d.insert("timestampReplaced", true);
    }
    d.insert("timestamp", date(timestamp));
}

/// A page view as stored in `pageviews`; `None` fields are omitted.
pub(super) fn pageview_doc(p: &PageView, project: ObjectId) -> Document {
    let mut d = head(p.id, project);
    d.insert("url", p.url.as_str());
    put_str(&mut d, "title", &p.title);
    put_str(&mut d, "referrer", &p.referrer);
    put_str(&mut d, "sessionId", &p.session_id);
    put_str(&mut d, "clientId", &p.client_id);
    put_str(&mut d, "utmSource", &p.utm_source);
    put_str(&mut d, "utmMedium", &p.utm_medium);
    put_str(&mut d, "utmCampaign", &p.utm_campaign);
    put_str(&mut d, "utmTerm", &p.utm_term);
    put_str(&mut d, "utmContent", &p.utm_content);
    if let Some(device) = p.device_type {
        d.insert("deviceType", device.as_str());
    }
    put_str(&mut d, "browser", &p.browser);
    put_str(&mut d, "os", &p.os);
    put_tail(&mut d, &p.enrichment, p.timestamp);
    d
}

/// A custom event as stored in `events`; `properties` is an embedded document.
pub(super) fn event_doc(e: &Event, project: ObjectId) -> Document {
    let mut d = head(e.id, project);
    d.insert("eventName", e.event_name.as_str());
    d.insert("properties", json_to_bson(&e.properties));
    put_f64(&mut d, "durationMs", e.duration_ms);
    put_str(&mut d, "sessionId", &e.session_id);
    put_str(&mut d, "clientId", &e.client_id);
    put_tail(&mut d, &e.enrichment, e.timestamp);
    d
}

/// A JavaScript error as stored in `errors`; `context` is an embedded document when present.
pub(super) fn error_doc(e: &ErrorEvent, project: ObjectId) -> Document {
    let mut d = head(e.id, project);
    d.insert("message", e.message.as_str());
    put_str(&mut d, "errorType", &e.error_type);
    put_str(&mut d, "stackTrace", &e.stack_trace);
    put_str(&mut d, "sourceFile", &e.source_file);
    put_f64(&mut d, "lineNumber", e.line_number);
    put_f64(&mut d, "columnNumber", e.column_number);
    put_str(&mut d, "browser", &e.browser);
    put_str(&mut d, "browserVersion", &e.browser_version);
    put_str(&mut d, "os", &e.os);
    put_str(&mut d, "osVersion", &e.os_version);
    put_str(&mut d, "deviceType", &e.device_type);
    if let Some(context) = &e.context {
        d.insert("context", json_to_bson(context));
    }
    d.insert("fingerprint", e.fingerprint.as_str());
    put_str(&mut d, "clientId", &e.client_id);
    put_str(&mut d, "userId", &e.user_id);
    put_tail(&mut d, &e.enrichment, e.timestamp);
    d
}

/// A web-vitals sample as stored in `performancemetrics` (plus `inp`, new in this port).
pub(super) fn metric_doc(m: &PerformanceMetric, project: ObjectId) -> Document {
    let mut d = head(m.id, project);
    d.insert("metricType", m.metric_type.as_str());
    put_f64(&mut d, "lcp", m.lcp);
    put_f64(&mut d, "cls", m.cls);
    put_f64(&mut d, "fid", m.fid);
    put_f64(&mut d, "ttfb", m.ttfb);
    put_f64(&mut d, "inp", m.inp);
    put_str(&mut d, "url", &m.url);
    put_str(&mut d, "clientId", &m.client_id);
    put_str(&mut d, "deviceType", &m.device_type);
    put_str(&mut d, "browser", &m.browser);
    put_str(&mut d, "connectionType", &m.connection_type);
    d.insert("properties", json_to_bson(&m.properties));
    put_tail(&mut d, &m.enrichment, m.timestamp);
    d
}

/// Free JSON (`properties`, `context`) as BSON, the way the Node driver stores it: integers that
/// fit in 32 bits as Int32, other integers as Int64 (Double beyond `i64`), fractions as Double.
/// Unlike `bson::to_bson` this cannot fail (that one rejects integers above `i64::MAX`).
pub(super) fn json_to_bson(v: &Value) -> Bson {
    match v {
        Value::Null => Bson::Null,
        Value::Bool(b) => Bson::Boolean(*b),
        Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => i32::try_from(i).map(Bson::Int32).unwrap_or(Bson::Int64(i)),
            (None, Some(f)) => Bson::Double(f),
            (None, None) => Bson::Null,
        },
        Value::String(s) => Bson::String(s.clone()),
        Value::Array(a) => Bson::Array(a.iter().map(json_to_bson).collect()),
        Value::Object(o) => Bson::Document(
            o.iter()
                .map(|(k, v)| (k.clone(), json_to_bson(v)))
                .collect(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Reading
// ---------------------------------------------------------------------------------------------

/// A stored analytics document as SuperInsights JSON: `_id` and Mongoose's `__v` removed,
/// ObjectIds (`projectId`) as hex strings, dates (`timestamp`) as ISO strings, and `isBot`
/// always present: documents carry it only when true (1.x's never do), and readers get
/// `false` otherwise, as from the SQLite backend.
pub(super) fn to_json(d: &Document) -> Value {
    let mut out = Map::new();
    for (key, value) in d {
        if key == "_id" || key == "__v" {
            continue;
        }
        out.insert(key.clone(), bson_to_json(value));
    }
    out.entry("isBot").or_insert(Value::Bool(false));
    Value::Object(out)
}

/// One BSON value as plain JSON (numbers as numbers, not extended JSON wrappers).
pub(super) fn bson_to_json(b: &Bson) -> Value {
    match b {
        Bson::Null | Bson::Undefined => Value::Null,
        Bson::Boolean(x) => Value::Bool(*x),
        Bson::Int32(i) => Value::from(*i),
        Bson::Int64(i) => Value::from(*i),
        Bson::Double(f) => Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        Bson::String(s) => Value::String(s.clone()),
        Bson::ObjectId(o) => Value::String(o.to_hex()),
        Bson::DateTime(t) => Value::String(to_iso(t.timestamp_millis())),
        Bson::Array(a) => Value::Array(a.iter().map(bson_to_json).collect()),
        Bson::Document(d) => Value::Object(
            d.iter()
                .map(|(k, v)| (k.clone(), bson_to_json(v)))
                .collect(),
        ),
        other => other.clone().into_relaxed_extjson(),
    }
}

fn malformed(collection: &str, field: &str) -> StoreError {
    StoreError::other(format!("malformed or missing {collection}.{field}"))
}

/// An id field stored as an ObjectId (or, leniently, as 24 hex characters).
pub(super) fn read_id(d: &Document, collection: &str, field: &str) -> StoreResult<DocId> {
    match d.get(field) {
        Some(Bson::ObjectId(o)) => Ok(DocId(o.bytes())),
        Some(Bson::String(s)) => DocId::parse(s).ok_or_else(|| malformed(collection, field)),
        _ => Err(malformed(collection, field)),
    }
}

fn read_str(d: &Document, collection: &str, field: &str) -> StoreResult<String> {
    d.get_str(field)
        .map(str::to_string)
        .map_err(|_| malformed(collection, field))
}

fn read_opt_str(d: &Document, field: &str) -> Option<String> {
    d.get_str(field).ok().map(str::to_string)
}

/// A role or status of a `collection` document read into its enum: `default` (the schema's
/// default) when the field is absent or not a string, an error for a string outside the enum.
pub(super) fn read_enum<T>(
    d: &Document,
    collection: &str,
    field: &str,
    default: T,
) -> StoreResult<T>
where
    T: std::str::FromStr<Err = crate::domain::records::UnknownValue>,
{
    match d.get_str(field) {
        Ok(s) => s
            .parse()
            .map_err(|e| StoreError::other_with(format!("{collection}.{field}: {e}"), e)),
        Err(_) => Ok(default),
    }
}

/// An integer stored as Int32, Int64 or an integral Double (Mongoose writes any of them).
pub(super) fn read_int(d: &Document, field: &str) -> Option<i64> {
    match d.get(field)? {
        Bson::Int32(i) => Some(i64::from(*i)),
        Bson::Int64(i) => Some(*i),
        Bson::Double(f) if f.is_finite() => Some(*f as i64),
        _ => None,
    }
}

/// A date stored as a BSON date (or, leniently, as epoch milliseconds).
fn read_millis(d: &Document, field: &str) -> Option<i64> {
    match d.get(field)? {
        Bson::DateTime(t) => Some(t.timestamp_millis()),
        _ => read_int(d, field),
    }
}

/// `createdAt`, falling back to the creation second inside the ObjectId `_id`.
fn created_at(d: &Document) -> i64 {
    read_millis(d, "createdAt")
        .or_else(|| {
            d.get_object_id("_id")
                .ok()
                .map(|o| o.timestamp().timestamp_millis())
        })
        .unwrap_or(0)
}

/// A new project document (SuperInsights 1.x fields plus our `droppedEventsCount`).
pub(super) fn project_doc(p: &Project) -> Document {
    doc! {
        "_id": oid(p.id),
        "name": p.name.as_str(),
        "icon": p.icon.as_str(),
        "environment": p.environment.as_str(),
        "publicApiKey": p.public_api_key.as_str(),
        "secretApiKey": p.secret_api_key.as_str(),
        "dataRetentionDays": i32::try_from(p.data_retention_days).unwrap_or(i32::MAX),
        "saasOrgId": oid(p.org_id),
        "publicLinkEnabled": false,
        "deletedAt": Bson::Null,
        "droppedEventsCount": 0_i64,
        "createdAt": date(p.created_at),
        "updatedAt": date(p.created_at),
    }
}

/// A project read from `projects`, with SuperInsights 1.x defaults for fields it may lack.
pub(super) fn project_from_doc(d: &Document) -> StoreResult<Project> {
    Ok(Project {
        id: read_id(d, PROJECTS, "_id")?,
        name: read_str(d, PROJECTS, "name")?,
        icon: read_opt_str(d, "icon").unwrap_or_else(|| "📊".into()),
        environment: read_opt_str(d, "environment").unwrap_or_else(|| "production".into()),
        public_api_key: read_str(d, PROJECTS, "publicApiKey")?,
        secret_api_key: read_str(d, PROJECTS, "secretApiKey")?,
        data_retention_days: read_int(d, "dataRetentionDays")
            .and_then(|n| u32::try_from(n).ok())
            .unwrap_or(90),
        org_id: read_id(d, PROJECTS, "saasOrgId")?,
        created_at: created_at(d),
        deleted_at: read_millis(d, "deletedAt"),
    })
}

/// A new user document (saasbackend's User fields).
pub(super) fn user_doc(u: &User) -> Document {
    let mut d = doc! {
        "_id": oid(u.id),
        "email": u.email.as_str(),
        "passwordHash": u.password_hash.as_str(),
    };
    put_str(&mut d, "name", &u.name);
    d.insert("role", u.role.as_str());
    d.insert("createdAt", date(u.created_at));
    d.insert("updatedAt", date(u.created_at));
    d
}

/// A user read from `users` (`role` defaults to `user`, as in saasbackend). Every role but
/// `admin` reads as `user`: SuperInsights 1.x's `/admin/users/invite` created users with role
/// `viewer`, and such a user must still sign in, with no platform rights.
pub(super) fn user_from_doc(d: &Document) -> StoreResult<User> {
    Ok(User {
        id: read_id(d, USERS, "_id")?,
        email: read_str(d, USERS, "email")?,
        password_hash: read_str(d, USERS, "passwordHash")?,
        name: read_opt_str(d, "name"),
        role: match d.get_str("role") {
            Ok("admin") => PlatformRole::Admin,
            _ => PlatformRole::User,
        },
        created_at: created_at(d),
    })
}

/// A new organization document (saasbackend's Organization fields).
pub(super) fn org_doc(o: &Organization) -> Document {
    doc! {
        "_id": oid(o.id),
        "name": o.name.as_str(),
        "slug": o.slug.as_str(),
        "ownerUserId": oid(o.owner_user_id),
        "allowPublicJoin": false,
        "status": o.status.as_str(),
        "createdAt": date(o.created_at),
        "updatedAt": date(o.created_at),
    }
}

/// An organization read from `organizations` (`status` defaults to `active`).
pub(super) fn org_from_doc(d: &Document) -> StoreResult<Organization> {
    Ok(Organization {
        id: read_id(d, ORGANIZATIONS, "_id")?,
        name: read_str(d, ORGANIZATIONS, "name")?,
        slug: read_str(d, ORGANIZATIONS, "slug")?,
        owner_user_id: read_id(d, ORGANIZATIONS, "ownerUserId")?,
        status: read_enum(d, ORGANIZATIONS, "status", OrgStatus::Active)?,
        created_at: created_at(d),
    })
}

/// The `$set` of a project update (the name trimmed, as on create).
pub(super) fn project_update_set(u: &ProjectUpdate, now_ms: i64) -> Document {
    doc! {
        "name": u.name.trim(),
        "icon": u.icon.as_str(),
        "environment": u.environment.as_str(),
        "dataRetentionDays": i32::try_from(u.data_retention_days).unwrap_or(i32::MAX),
        "updatedAt": date(now_ms),
    }
}

/// A new invitation document, for the collection [`invites_collection`] names: saasbackend's
/// Invite fields (with `orgId`) or SuperInsights' PlatformInvite fields (without). The email is
/// stored trimmed and lower-cased, as both schemas do.
pub(super) fn invite_doc(i: &Invite) -> Document {
    let mut d = doc! {
        "_id": oid(i.id),
        "email": i.email.trim().to_lowercase(),
        "tokenHash": i.token_hash.as_str(),
    };
    if let Some(org) = i.org_id() {
        d.insert("orgId", oid(org));
    }
    d.insert("role", i.scope.role_str());
    d.insert("status", i.status.as_str());
    d.insert("createdByUserId", oid(i.created_by));
    d.insert("expiresAt", date(i.expires_at));
    d.insert("createdAt", date(i.created_at));
    d.insert("updatedAt", date(i.created_at));
    d
}

/// An invitation read from `collection` (`invites` or `platforminvites`); `role` defaults as in
/// the schemas (`member` for organizations, `user` for the platform), `status` to `pending`.
pub(super) fn invite_from_doc(d: &Document, collection: &str) -> StoreResult<Invite> {
    let scope = if collection == INVITES {
        InviteScope::Org {
            org_id: read_id(d, collection, "orgId")?,
            role: read_enum(d, collection, "role", OrgRole::Member)?,
        }
    } else {
        InviteScope::Platform {
            role: read_enum(d, collection, "role", PlatformRole::User)?,
        }
    };
    Ok(Invite {
        id: read_id(d, collection, "_id")?,
        email: read_str(d, collection, "email")?,
        token_hash: read_str(d, collection, "tokenHash")?,
        scope,
        status: read_enum(d, collection, "status", InviteStatus::Pending)?,
        created_by: read_id(d, collection, "createdByUserId")?,
        expires_at: read_millis(d, "expiresAt")
            .ok_or_else(|| malformed(collection, "expiresAt"))?,
        created_at: created_at(d),
    })
}

/// A session record: `_id` = the session id, `data` = the opaque bytes (generic binary),
/// `expireAt` = a BSON date (what the TTL index on `sessions` expires).
pub(super) fn session_doc(id: &str, data: &[u8], expires_at_ms: i64) -> Document {
    doc! {
        "_id": id,
        "data": Binary { subtype: BinarySubtype::Generic, bytes: data.to_vec() },
        "expireAt": date(expires_at_ms),
    }
}

/// The bytes of a session record.
pub(super) fn session_data(d: &Document) -> StoreResult<Vec<u8>> {
    match d.get("data") {
        Some(Bson::Binary(b)) => Ok(b.bytes.clone()),
        _ => Err(malformed(SESSIONS, "data")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::DeviceType;
    use crate::store::contract;
    use serde_json::json;

    #[test]
    fn pageview_doc_has_superinsights_field_names_and_omits_none() {
        let project = DocId::new();
        let p = contract::pageview("https://x.example/a", 1_706_702_400_005);
        let d = pageview_doc(&p, oid(project));
        assert_eq!(d.get_object_id("_id").unwrap(), oid(p.id));
        assert_eq!(d.get_object_id("projectId").unwrap(), oid(project));
        assert_eq!(d.get_str("url").unwrap(), "https://x.example/a");
        assert_eq!(d.get_str("sessionId").unwrap(), "s1");
        assert_eq!(d.get_str("clientId").unwrap(), "c1");
        assert_eq!(d.get_str("utmSource").unwrap(), "news");
        assert_eq!(
            d.get_str("deviceType").unwrap(),
            DeviceType::Mobile.as_str()
        );
        assert_eq!(d.get_str("country").unwrap(), "FR");
        assert_eq!(
            d.get_datetime("timestamp").unwrap().timestamp_millis(),
            1_706_702_400_005
        );
        for absent in [
            "utmMedium",
            "utmCampaign",
            "utmTerm",
            "utmContent",
            "isBot",
            "id",
            "project_id",
        ] {
            assert!(!d.contains_key(absent), "{absent} must be omitted");
        }
    }

    #[test]
    fn bots_are_flagged_only_when_true() {
        let mut p = contract::pageview("https://x.example/", 1);
        p.enrichment.is_bot = true;
        assert_eq!(
            pageview_doc(&p, oid(DocId::new())).get_bool("isBot"),
            Ok(true)
        );
    }

    #[test]
    fn replaced_timestamps_and_error_ids_are_written_only_when_present() {
        let mut e = contract::error("boom", 1);
        let plain = error_doc(&e, oid(DocId::new()));
        for absent in ["timestampReplaced", "clientId", "userId"] {
            assert!(!plain.contains_key(absent), "{absent} must be omitted");
        }
        e.enrichment.timestamp_replaced = true;
        e.client_id = Some("c1".into());
        e.user_id = Some("u1".into());
        let d = error_doc(&e, oid(DocId::new()));
        assert_eq!(d.get_bool("timestampReplaced"), Ok(true));
        assert_eq!(d.get_str("clientId"), Ok("c1"));
        assert_eq!(d.get_str("userId"), Ok("u1"));
    }

    #[test]
    fn event_properties_and_error_context_are_embedded_documents() {
        let e = contract::event("signup", 1);
        let d = event_doc(&e, oid(DocId::new()));
        assert_eq!(d.get_str("eventName").unwrap(), "signup");
        assert_eq!(d.get_f64("durationMs").unwrap(), 120.5);
        let props = d.get_document("properties").unwrap();
        assert_eq!(props.get_str("plan").unwrap(), "pro");
        assert_eq!(
            props.get("n"),
            Some(&Bson::Int32(3)),
            "small integers stay integers"
        );
        assert!(!d.contains_key("sessionId"));

        let err = contract::error("boom", 1);
        let d = error_doc(&err, oid(DocId::new()));
        assert_eq!(d.get_str("fingerprint").unwrap(), err.fingerprint);
        assert_eq!(d.get_str("stackTrace").unwrap(), "at f (app.js:1:2)");
        assert_eq!(d.get_f64("lineNumber").unwrap(), 1.0);
        assert_eq!(
            d.get_document("context").unwrap().get_str("url").unwrap(),
            "https://x.example/"
        );
        assert!(!d.contains_key("browser"));
    }

    #[test]
    fn metric_doc_carries_inp() {
        let d = metric_doc(&contract::metric(1), oid(DocId::new()));
        assert_eq!(d.get_str("metricType").unwrap(), "web_vitals_aggregate");
        assert_eq!(d.get_f64("inp").unwrap(), 90.0);
        assert_eq!(d.get_str("connectionType").unwrap(), "4g");
        assert!(!d.contains_key("fid"));
        assert!(d.get_document("properties").unwrap().is_empty());
    }

    #[test]
    fn json_converts_without_loss_or_failure() {
        let v = json!({"a": [1, 2.5, "x", null, true], "big": 5_000_000_000_i64, "huge": u64::MAX, "o": {"k": -1}});
        let b = json_to_bson(&v);
        let d = b.as_document().unwrap();
        assert_eq!(d.get("big"), Some(&Bson::Int64(5_000_000_000)));
        assert_eq!(d.get("huge"), Some(&Bson::Double(u64::MAX as f64)));
        let back = bson_to_json(&b);
        assert_eq!(back["a"], json!([1, 2.5, "x", null, true]));
        assert_eq!(back["o"], json!({"k": -1}));
        assert_eq!(back["big"], json!(5_000_000_000_i64));
    }

    #[test]
    fn stored_documents_read_back_as_superinsights_json() {
        let project = DocId::new();
        let d = pageview_doc(
            &contract::pageview("https://x.example/b", 1_706_702_400_005),
            oid(project),
        );
        let v = to_json(&d);
        assert!(v.get("_id").is_none());
        assert_eq!(v["projectId"], project.to_hex());
        assert_eq!(v["timestamp"], "2024-01-31T12:00:00.005Z");
        assert_eq!(v["deviceType"], "mobile");
        assert_eq!(v["utmSource"], "news");
        assert_eq!(v["isBot"], false, "stored only when true, read as false");

        let v = to_json(&event_doc(&contract::event("buy", 1), oid(project)));
        assert_eq!(v["properties"], json!({"plan": "pro", "n": 3}));
        assert_eq!(v["durationMs"].as_f64(), Some(120.5));
    }

    #[test]
    fn projects_and_users_round_trip() {
        let p = Project {
            id: DocId::new(),
            name: "Shop".into(),
            icon: "📊".into(),
            environment: "production".into(),
            public_api_key: "pk_1".into(),
            secret_api_key: "sk_1".into(),
            data_retention_days: 90,
            org_id: DocId::new(),
            created_at: 1_706_702_400_123,
            deleted_at: None,
        };
        let d = project_doc(&p);
        assert_eq!(d.get_object_id("saasOrgId").unwrap(), oid(p.org_id));
        assert_eq!(d.get("deletedAt"), Some(&Bson::Null));
        assert_eq!(d.get_bool("publicLinkEnabled"), Ok(false));
        assert_eq!(project_from_doc(&d).unwrap(), p);

        let u = User {
            id: DocId::new(),
            email: "a@b.c".into(),
            password_hash: "$argon2id$x".into(),
            name: None,
            role: PlatformRole::Admin,
            created_at: 1_706_702_400_000,
        };
        let d = user_doc(&u);
        assert!(!d.contains_key("name"));
        assert_eq!(user_from_doc(&d).unwrap(), u);

        let o = Organization {
            id: DocId::new(),
            name: "Acme".into(),
            slug: "acme".into(),
            owner_user_id: u.id,
            status: OrgStatus::Active,
            created_at: 1_706_702_400_000,
        };
        let d = org_doc(&o);
        assert_eq!(d.get_object_id("ownerUserId").unwrap(), oid(u.id));
        assert_eq!(d.get_bool("allowPublicJoin"), Ok(false));
        assert_eq!(org_from_doc(&d).unwrap(), o);
    }

    #[test]
    fn superinsights_1x_documents_are_read_leniently() {
        let id = ObjectId::new();
        let d = doc! {
            "_id": id, "name": "Old", "publicApiKey": "pk_x", "secretApiKey": "sk_x",
            "saasOrgId": DocId::new().to_hex(), "dataRetentionDays": 30.0, "__v": 0,
        };
        let p = project_from_doc(&d).unwrap();
        assert_eq!(p.icon, "📊");
        assert_eq!(p.environment, "production");
        assert_eq!(p.data_retention_days, 30);
        assert_eq!(p.created_at, id.timestamp().timestamp_millis());
        assert_eq!(p.deleted_at, None);
        assert!(project_from_doc(&doc! {"_id": id}).is_err());
    }

    fn invite(org_id: Option<DocId>) -> Invite {
        let scope = match org_id {
            Some(org_id) => InviteScope::Org {
                org_id,
                role: OrgRole::Viewer,
            },
            None => InviteScope::Platform {
                role: PlatformRole::Admin,
            },
        };
        let (now, week) = (1_706_702_400_000, 7 * 86_400_000);
        Invite::new(
            scope,
            "guest@example.com".into(),
            "ab".repeat(32),
            DocId::new(),
            now,
            week,
        )
    }

    #[test]
    fn a_1x_user_with_any_role_but_admin_reads_as_a_plain_user() {
        let user = |role: Option<&str>| {
            let mut d = doc! {
                "_id": ObjectId::new(),
                "email": "old@example.com",
                "passwordHash": "$2a$10$abcdefghijklmnopqrstuv",
            };
            if let Some(role) = role {
                d.insert("role", role);
            }
            user_from_doc(&d).unwrap().role
        };
        assert_eq!(user(Some("admin")), PlatformRole::Admin);
        for role in [Some("viewer"), Some("user"), Some("root"), None] {
            assert_eq!(user(role), PlatformRole::User, "{role:?}");
        }
    }

    #[test]
    fn org_and_platform_invites_round_trip_in_their_collections() {
        let org = invite(Some(DocId::new()));
        assert_eq!(invites_collection(org.org_id()), INVITES);
        let d = invite_doc(&org);
        assert_eq!(
            d.get_object_id("orgId").unwrap(),
            oid(org.org_id().unwrap())
        );
        assert_eq!(d.get_str("role").unwrap(), "viewer");
        assert_eq!(d.get_str("status").unwrap(), "pending");
        assert_eq!(
            d.get_object_id("createdByUserId").unwrap(),
            oid(org.created_by)
        );
        assert_eq!(
            d.get_datetime("expiresAt").unwrap().timestamp_millis(),
            org.expires_at
        );
        assert_eq!(d.get_str("tokenHash").unwrap(), org.token_hash);
        assert_eq!(invite_from_doc(&d, INVITES).unwrap(), org);

        let platform = invite(None);
        assert_eq!(invites_collection(None), PLATFORM_INVITES);
        let d = invite_doc(&platform);
        assert!(!d.contains_key("orgId"), "platform invites carry no orgId");
        assert_eq!(d.get_str("role").unwrap(), "admin");
        assert_eq!(invite_from_doc(&d, PLATFORM_INVITES).unwrap(), platform);
        assert!(
            invite_from_doc(&d, INVITES).is_err(),
            "an org invite needs its orgId"
        );
    }

    #[test]
    fn invite_emails_are_stored_lower_cased_and_defaults_apply() {
        let mut i = invite(None);
        i.email = "  Guest@Example.COM ".into();
        assert_eq!(
            invite_doc(&i).get_str("email").unwrap(),
            "guest@example.com"
        );

        // A PlatformInvite written by SuperInsights 1.x: string creator id, no role or createdAt.
        let id = ObjectId::new();
        let creator = DocId::new();
        let d = doc! {
            "_id": id, "email": "a@b.c", "tokenHash": "h", "status": "pending",
            "createdByUserId": creator.to_hex(), "expiresAt": date(5), "__v": 0,
        };
        let read = invite_from_doc(&d, PLATFORM_INVITES).unwrap();
        assert_eq!(
            (read.scope, read.created_by, read.expires_at),
            (
                InviteScope::Platform {
                    role: PlatformRole::User
                },
                creator,
                5
            )
        );
        assert_eq!(read.created_at, id.timestamp().timestamp_millis());
        let mut d = d;
        let org_id = DocId::new();
        d.insert("orgId", oid(org_id));
        assert_eq!(
            invite_from_doc(&d, INVITES).unwrap().scope,
            InviteScope::Org {
                org_id,
                role: OrgRole::Member
            }
        );
        d.remove("expiresAt");
        assert!(invite_from_doc(&d, INVITES).is_err());
    }

    #[test]
    fn org_and_invite_roles_and_statuses_outside_their_enums_are_errors() {
        // (A user's role is lenient: see a_1x_user_with_any_role_but_admin_reads_as_a_plain_user.)
        let org = doc! {
            "_id": ObjectId::new(), "name": "A", "slug": "a", "ownerUserId": ObjectId::new(),
            "status": "archived",
        };
        assert!(org_from_doc(&org).is_err());
        let mut d = invite_doc(&invite(Some(DocId::new())));
        d.insert("status", "lost");
        assert!(invite_from_doc(&d, INVITES).is_err());
        let mut d = invite_doc(&invite(None));
        d.insert("role", "owner");
        assert!(
            invite_from_doc(&d, PLATFORM_INVITES).is_err(),
            "a platform invite grants a platform role"
        );
    }

    #[test]
    fn session_records_are_binary_data_with_a_date_to_expire_at() {
        let d = session_doc("sess-1", b"\x00opaque\xff", 1_706_702_400_000);
        assert_eq!(d.get_str("_id").unwrap(), "sess-1");
        assert_eq!(
            d.get("data"),
            Some(&Bson::Binary(Binary {
                subtype: BinarySubtype::Generic,
                bytes: b"\x00opaque\xff".to_vec()
            }))
        );
        assert_eq!(
            d.get_datetime("expireAt").unwrap().timestamp_millis(),
            1_706_702_400_000,
            "a BSON date, so the TTL index applies"
        );
        assert_eq!(d.len(), 3);
        assert_eq!(session_data(&d).unwrap(), b"\x00opaque\xff");
        assert!(session_data(&doc! {"_id": "x", "data": "text"}).is_err());
    }

    #[test]
    fn project_updates_set_the_editable_fields() {
        let u = ProjectUpdate {
            name: " Renamed ".into(),
            icon: "🚀".into(),
            environment: "staging".into(),
            data_retention_days: 30,
        };
        let set = project_update_set(&u, 1_706_702_400_000);
        assert_eq!(set.get_str("name").unwrap(), "Renamed");
        assert_eq!(set.get_str("icon").unwrap(), "🚀");
        assert_eq!(set.get_str("environment").unwrap(), "staging");
        assert_eq!(set.get_i32("dataRetentionDays").unwrap(), 30);
        assert_eq!(
            set.get_datetime("updatedAt").unwrap().timestamp_millis(),
            1_706_702_400_000
        );
        assert_eq!(set.len(), 5, "keys, org and deletion are not editable");
    }
}
