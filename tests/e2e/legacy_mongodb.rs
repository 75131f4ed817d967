//! A SuperInsights 1.x database opens as it is (issue 13): `tests/fixtures/superinsights-1x.json`
//! holds one 1.x database, documents exactly as 1.x (Mongoose, saasbackend) writes them, with
//! the indexes Mongoose creates. It is loaded with the driver into a fresh database and the real
//! binary is started on it as is. The 1.x user signs in with the 1.x password, sees the 1.x
//! project and its figures, ingests with the 1.x keys (the 1.x drop rules apply), opens the 1.x
//! public link; `superinsights migrate` runs, and all of it still works. Finally every 1.x
//! document is compared with what was loaded: nothing 1.x wrote may change, and the only field
//! added to a 1.x document is the one `docs/mongodb.md` lists.
//!
//! Always on MongoDB, whatever the e2e backend: it needs `SUPERINSIGHTS_TEST_MONGODB_URI`
//! (`scripts/test` starts FerretDB and sets it for both legs). Without it the test says
//! `SKIPPED` on stderr, or fails when `SUPERINSIGHTS_TEST_MONGODB_REQUIRED` is set, as the
//! store's MongoDB contract tests do.

use crate::support::{
    ServerProcess, browser, csrf_of, get_accepting, json_of, location, page, run_cli,
};
use futures::TryStreamExt;
use mongodb::{
    IndexModel,
    bson::{Bson, DateTime, Document, doc},
    options::IndexOptions,
};
use reqwest::Client;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const FIXTURE: &str = include_str!("../fixtures/superinsights-1x.json");
const URI_VAR: &str = "SUPERINSIGHTS_TEST_MONGODB_URI";
const REQUIRED_VAR: &str = "SUPERINSIGHTS_TEST_MONGODB_REQUIRED";

/// The fixture's live project ("Legacy Shop") and its soft-deleted one ("Old Site").
const PROJECT: &str = "6650a1b2c3d4e5f604000001";
const DELETED_PROJECT: &str = "6650a1b2c3d4e5f604000002";

/// Fields this server may add to a SuperInsights 1.x document, per collection; each is listed
/// in `docs/mongodb.md` ("What changed in stored data"). Anything else added, removed or
/// changed fails the test.
const ADDED_FIELDS: &[(&str, &str)] = &[("projects", "droppedEventsCount")];

/// The MongoDB server to load the fixture into, or `None` (reported as skipped).
fn mongodb_uri() -> Option<String> {
    let uri = std::env::var(URI_VAR).unwrap_or_default();
    if !uri.trim().is_empty() {
        return Some(uri.trim().to_string());
    }
    let required = std::env::var(REQUIRED_VAR).unwrap_or_default();
    assert!(
        matches!(required.trim(), "" | "0" | "false"),
        "{REQUIRED_VAR} is set but {URI_VAR} is not: the SuperInsights 1.x fixture test must run here"
    );
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED mongodb legacy fixture `a_superinsights_1x_database_opens_as_it_is`: {URI_VAR} \
         is not set (scripts/test sets it when Go can build FerretDB)"
    );
    None
}

/// One index as Mongoose's autoIndex created it.
struct IndexSpec {
    collection: String,
    name: String,
    keys: Document,
    unique: bool,
    sparse: bool,
}

/// The fixture, its dates moved so that its `epoch` is now.
struct Fixture {
    meta: Value,
    /// Collection → documents, as loaded.
    collections: BTreeMap<String, Vec<Document>>,
    indexes: Vec<IndexSpec>,
}

impl Fixture {
    fn load(now_ms: i64) -> Self {
        let meta: Value = serde_json::from_str(FIXTURE).expect("the fixture is JSON");
        let Ok(Bson::DateTime(epoch)) = Bson::try_from(meta["epoch"].clone()) else {
            panic!("the fixture's epoch is an extended JSON date");
        };
        let by = now_ms - epoch.timestamp_millis();
        let mut collections = BTreeMap::new();
        for (name, docs) in meta["collections"].as_object().unwrap() {
            let docs = docs
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    let mut b = Bson::try_from(d.clone()).expect("canonical extended JSON");
                    shift_dates(&mut b, by);
                    match b {
                        Bson::Document(d) => d,
                        other => panic!("{name}: not a document: {other}"),
                    }
                })
                .collect::<Vec<_>>();
            collections.insert(name.clone(), docs);
        }
        let mut indexes = Vec::new();
        for (collection, specs) in meta["indexes"].as_object().unwrap() {
            for spec in specs.as_array().unwrap() {
                let mut keys = Document::new();
                for pair in spec["key"].as_array().unwrap() {
                    let direction = i32::try_from(pair[1].as_i64().unwrap()).unwrap();
                    keys.insert(pair[0].as_str().unwrap(), direction);
                }
                indexes.push(IndexSpec {
                    collection: collection.clone(),
                    name: spec["name"].as_str().unwrap().to_string(),
                    keys,
                    unique: spec["unique"] == true,
                    sparse: spec["sparse"] == true,
                });
            }
        }
        Self {
            meta,
            collections,
            indexes,
        }
    }

    fn docs(&self, collection: &str) -> &[Document] {
        &self.collections[collection]
    }

    fn project(&self, id: &str) -> &Document {
        self.docs("projects")
            .iter()
            .find(|p| p.get_object_id("_id").unwrap().to_hex() == id)
            .unwrap()
    }

    fn str(&self, path: &[&str]) -> String {
        let mut v = &self.meta;
        for p in path {
            v = &v[*p];
        }
        v.as_str().unwrap_or_else(|| panic!("{path:?}")).to_string()
    }

    /// The documents of `collection` for the live project, stamped at or after `since_ms`.
    fn analytics(&self, collection: &str, since_ms: i64) -> Vec<&Document> {
        self.docs(collection)
            .iter()
            .filter(|d| d.get_object_id("projectId").unwrap().to_hex() == PROJECT)
            .filter(|d| d.get_datetime("timestamp").unwrap().timestamp_millis() >= since_ms)
            .collect()
    }
}

fn shift_dates(b: &mut Bson, by: i64) {
    match b {
        Bson::DateTime(t) => *t = DateTime::from_millis(t.timestamp_millis() + by),
        Bson::Document(d) => d.iter_mut().for_each(|(_, v)| shift_dates(v, by)),
        Bson::Array(a) => a.iter_mut().for_each(|v| shift_dates(v, by)),
        _ => {}
    }
}

/// The test's database, dropped when the test ends (also when it fails).
struct LegacyDatabase {
    uri: String,
    name: String,
}

impl LegacyDatabase {
    async fn client(&self) -> mongodb::Client {
        mongodb::Client::with_uri_str(&self.uri).await.unwrap()
    }

    /// Loads every document and creates every index of the fixture, as 1.x left them.
    async fn load(&self, fixture: &Fixture) {
        let client = self.client().await;
        let db = client.database(&self.name);
        for (name, docs) in &fixture.collections {
            db.collection::<Document>(name)
                .insert_many(docs.clone())
                .await
                .unwrap_or_else(|e| panic!("loading {name}: {e}"));
        }
        // One index per command (FerretDB 1.24 mishandles several existing ones in one).
        for spec in &fixture.indexes {
            let options = IndexOptions::builder()
                .name(spec.name.clone())
                .unique(spec.unique.then_some(true))
                .sparse(spec.sparse.then_some(true))
                .build();
            let model = IndexModel::builder()
                .keys(spec.keys.clone())
                .options(options)
                .build();
            db.collection::<Document>(&spec.collection)
                .create_index(model)
                .await
                .unwrap_or_else(|e| panic!("index {}.{}: {e}", spec.collection, spec.name));
        }
        client.shutdown().await;
    }

    /// Every document of `collection`, by `_id` (hex or string).
    async fn documents(&self, collection: &str) -> BTreeMap<String, Document> {
        let client = self.client().await;
        let docs: Vec<Document> = client
            .database(&self.name)
            .collection::<Document>(collection)
            .find(doc! {})
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        client.shutdown().await;
        docs.into_iter().map(|d| (id_of(&d), d)).collect()
    }

    /// Index name → keys of `collection`.
    async fn indexes(&self, collection: &str) -> BTreeMap<String, Document> {
        let client = self.client().await;
        let found: Vec<IndexModel> = client
            .database(&self.name)
            .collection::<Document>(collection)
            .list_indexes()
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        client.shutdown().await;
        found
            .into_iter()
            .map(|m| {
                let name = m.options.and_then(|o| o.name).unwrap_or_default();
                (name, m.keys)
            })
            .collect()
    }
}

impl Drop for LegacyDatabase {
    fn drop(&mut self) {
        crate::backend::drop_database_at(&self.uri, &self.name);
    }
}

fn id_of(d: &Document) -> String {
    match d.get("_id") {
        Some(Bson::ObjectId(o)) => o.to_hex(),
        Some(Bson::String(s)) => s.clone(),
        other => panic!("unexpected _id {other:?}"),
    }
}

/// The environment that puts the binary on the legacy database, whatever the e2e backend.
fn server_env<'a>(db: &'a LegacyDatabase, pepper: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("MONGODB_URI", db.uri.as_str()),
        ("MONGODB_DB", db.name.as_str()),
        ("PUBLIC_LINK_PEPPER", pepper),
    ]
}

/// Posts the login form; returns the client (with its session cookie) and the response.
async fn sign_in(
    server: &ServerProcess,
    email: &str,
    password: &str,
) -> (Client, reqwest::Response) {
    let client = browser();
    let (status, html) = page(&client, server, "/auth/login").await;
    assert_eq!(status, 200);
    let r = client
        .post(server.url("/auth/login"))
        .header("accept", "text/html")
        .form(&[
            ("_csrf", csrf_of(&html).as_str()),
            ("email", email),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    (client, r)
}

/// What the dashboard must show for the fixture's live project over a window.
struct Expected {
    views: u64,
    visitors: u64,
    top_page: (String, u64),
    events: u64,
    errors: u64,
    fingerprints: u64,
    measurements: u64,
    lcp_p50: f64,
}

fn number(d: &Document, field: &str) -> Option<f64> {
    match d.get(field)? {
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        Bson::Double(f) => Some(*f),
        _ => None,
    }
}

fn expected(fixture: &Fixture, since_ms: i64, extra_events: u64) -> Expected {
    let views = fixture.analytics("pageviews", since_ms);
    let clients: BTreeSet<&str> = views
        .iter()
        .filter_map(|d| d.get_str("clientId").ok())
        .collect();
    let anonymous = views.iter().any(|d| d.get_str("clientId").is_err());
    let mut per_url: BTreeMap<&str, u64> = BTreeMap::new();
    for v in &views {
        *per_url.entry(v.get_str("url").unwrap()).or_default() += 1;
    }
    let top_page = per_url
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(u, n)| (u.to_string(), *n))
        .unwrap();
    let errors = fixture.analytics("errors", since_ms);
    let fingerprints: BTreeSet<&str> = errors
        .iter()
        .map(|d| d.get_str("fingerprint").unwrap())
        .collect();
    let metrics = fixture.analytics("performancemetrics", since_ms);
    let mut lcp: Vec<f64> = metrics.iter().filter_map(|d| number(d, "lcp")).collect();
    lcp.sort_by(f64::total_cmp);
    Expected {
        views: views.len() as u64,
        visitors: clients.len() as u64 + u64::from(anonymous),
        top_page,
        events: fixture.analytics("events", since_ms).len() as u64 + extra_events,
        errors: errors.len() as u64,
        fingerprints: fingerprints.len() as u64,
        measurements: metrics.len() as u64,
        lcp_p50: lcp[(lcp.len() - 1) / 2],
    }
}

/// Checks a `dashboard/data` answer against the fixture.
fn assert_dashboard(body: &Value, want: &Expected, what: &str) {
    assert_eq!(body["success"], true, "{what}: {body}");
    let d = &body["data"];
    let got = (
        d["pageViews"]["totalViews"].as_u64(),
        d["pageViews"]["uniqueVisitors"].as_u64(),
        d["events"]["totalEvents"].as_u64(),
        d["errors"]["totalErrors"].as_u64(),
        d["errors"]["uniqueFingerprints"].as_u64(),
        d["performance"]["totalMeasurements"].as_u64(),
    );
    let want_tuple = (
        Some(want.views),
        Some(want.visitors),
        Some(want.events),
        Some(want.errors),
        Some(want.fingerprints),
        Some(want.measurements),
    );
    assert_eq!(
        got, want_tuple,
        "{what}: (views, visitors, events, errors, fingerprints, measurements)"
    );
    assert_eq!(
        d["pageViews"]["topPages"][0],
        json!({"url": want.top_page.0, "views": want.top_page.1}),
        "{what}: top page"
    );
    assert_eq!(
        d["performance"]["percentiles"]["lcp_p50"].as_f64(),
        Some(want.lcp_p50),
        "{what}: LCP p50 over Int32 and Double values"
    );
}

/// Everything a 1.x user does with the server on the legacy database, once before and once
/// after `migrate`. `round` numbers the events it ingests.
async fn use_the_legacy_database(
    server: &ServerProcess,
    fixture: &Fixture,
    db: &LegacyDatabase,
    loaded_at_ms: i64,
    round: u64,
) {
    let project = fixture.project(PROJECT);
    let public_key = project.get_str("publicApiKey").unwrap();
    let secret_key = project.get_str("secretApiKey").unwrap();
    let email = fixture.str(&["login", "email"]);
    let password = fixture.str(&["login", "password"]);

    // A wrong password is refused; the 1.x bcrypt password signs in.
    let (_, r) = sign_in(server, &email, "not-the-password").await;
    assert_eq!(r.status(), 400, "a wrong password is refused");
    let (client, r) = sign_in(server, &email.to_uppercase(), &password).await;
    assert_eq!(r.status(), 303, "{}", r.text().await.unwrap());
    assert_eq!(location(&r), "/projects");

    // The 1.x project is listed (the soft-deleted one is not), in the 1.x organization.
    let (status, html) = page(&client, server, "/projects").await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Legacy Shop"), "{html}");
    assert!(html.contains(&format!("/projects/{PROJECT}/")), "{html}");
    assert!(
        !html.contains("Old Site"),
        "the deleted project is not listed"
    );
    let (status, html) = page(&client, server, &format!("/projects/{PROJECT}/dashboard")).await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Legacy Shop"));
    let (status, _) = page(
        &client,
        server,
        &format!("/projects/{DELETED_PROJECT}/dashboard"),
    )
    .await;
    assert_eq!(status, 404, "the deleted project stays deleted");

    // Its figures are the fixture's (events ingested by an earlier round included).
    let earlier = 2 * (round - 1);
    let week = expected(fixture, i64::MIN, earlier);
    let data = json_of(
        &client,
        server,
        &format!("/projects/{PROJECT}/dashboard/data?timeframe=7d"),
    )
    .await;
    assert_dashboard(&data, &week, "7d dashboard");
    let day = expected(fixture, loaded_at_ms - 24 * 3_600_000, earlier);
    let data = json_of(
        &client,
        server,
        &format!("/projects/{PROJECT}/dashboard/data?timeframe=24h"),
    )
    .await;
    assert_dashboard(&data, &day, "24h dashboard");

    // The 1.x viewer signs in too, and sees the project.
    let (viewer, r) = sign_in(
        server,
        &fixture.str(&["login", "viewerEmail"]),
        &fixture.str(&["login", "viewerPassword"]),
    )
    .await;
    assert_eq!(r.status(), 303, "the 1.x viewer signs in");
    let data = json_of(
        &viewer,
        server,
        &format!("/projects/{PROJECT}/dashboard/data?timeframe=7d"),
    )
    .await;
    assert_dashboard(&data, &week, "the viewer's dashboard");

    // Ingestion with the 1.x keys (public as Bearer, secret as X-API-Key); the 1.x drop rule
    // (blacklist eventName = debug_ping) applies; the deleted project's key is refused.
    let http = Client::new();
    let event =
        |n: u64| json!({"items": [{"eventName": "legacy_check", "properties": {"round": n}}]});
    let r = http
        .post(server.url("/v1/events"))
        .bearer_auth(public_key)
        .json(&event(round))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"success": true, "count": 1})
    );
    let r = http
        .post(server.url("/v1/events"))
        .header("x-api-key", secret_key)
        .json(&event(round))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "the secret key ingests too");
    let r = http
        .post(server.url("/v1/events"))
        .bearer_auth(public_key)
        .json(&json!([{"eventName": "debug_ping"}]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(
        r.json::<Value>().await.unwrap(),
        json!({"success": true, "count": 0, "dropped": 1}),
        "the 1.x drop rule applies"
    );
    let deleted_key = fixture
        .project(DELETED_PROJECT)
        .get_str("publicApiKey")
        .unwrap();
    let r = http
        .post(server.url("/v1/events"))
        .bearer_auth(deleted_key)
        .json(&event(round))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the deleted project's key is refused");
    let stored = db.documents("events").await;
    let ours: Vec<&Document> = stored
        .values()
        .filter(|d| d.get_str("eventName") == Ok("legacy_check"))
        .collect();
    assert_eq!(ours.len() as u64, 2 * round, "both events are stored");
    for d in ours {
        assert_eq!(
            d.get_object_id("projectId").unwrap().to_hex(),
            PROJECT,
            "stored under the 1.x project, as an ObjectId"
        );
        assert!(d.get_datetime("timestamp").is_ok(), "a BSON date: {d}");
    }
    assert!(
        !stored
            .values()
            .any(|d| d.get_str("eventName") == Ok("debug_ping")),
        "the dropped event is not stored"
    );
    let report = json_of(
        &client,
        server,
        &format!("/projects/{PROJECT}/settings/drop-events/report"),
    )
    .await;
    assert_eq!(report, json!({"dropped": round}));

    // The 1.x public link, with the token whose hash 1.x stored.
    let token = fixture.str(&["publicLink", "token"]);
    let anyone = Client::new();
    let r = get_accepting(
        &anyone,
        server,
        &format!("/p/{PROJECT}/{token}/dashboard"),
        "text/html",
    )
    .await;
    assert_eq!(r.status(), 200, "the 1.x public link opens");
    assert_eq!(
        r.headers().get("x-robots-tag").map(|v| v.to_str().unwrap()),
        Some("noindex")
    );
    assert!(r.text().await.unwrap().contains("Legacy Shop"));
    let data = json_of(
        &anyone,
        server,
        &format!("/p/{PROJECT}/{token}/dashboard/data?timeframe=24h"),
    )
    .await;
    assert_eq!(
        data["data"]["pageViews"]["totalViews"].as_u64(),
        Some(day.views),
        "public dashboard/data: {data}"
    );
    let pv = json_of(
        &anyone,
        server,
        &format!("/p/{PROJECT}/{token}/pageviews?timeframe=7d"),
    )
    .await;
    assert_eq!(pv["totalViews"].as_u64(), Some(week.views), "{pv}");
    assert_eq!(pv["uniqueVisitors"].as_u64(), Some(week.visitors), "{pv}");
    let errors = json_of(
        &anyone,
        server,
        &format!("/p/{PROJECT}/{token}/errors?timeframe=7d"),
    )
    .await;
    assert_eq!(
        errors["totalErrors"].as_u64(),
        Some(week.errors),
        "{errors}"
    );
    let r = get_accepting(
        &anyone,
        server,
        &format!("/p/{PROJECT}/{}/dashboard/data", "0".repeat(64)),
        "application/json",
    )
    .await;
    assert_eq!(r.status(), 404, "another token is refused");
}

/// Every document the fixture loaded is still there, as loaded, except for the fields
/// [`ADDED_FIELDS`] allows this server to add; the indexes 1.x made are still there.
async fn assert_1x_documents_unchanged(fixture: &Fixture, db: &LegacyDatabase) {
    for (collection, loaded) in &fixture.collections {
        let now = db.documents(collection).await;
        let allowed: BTreeSet<&str> = ADDED_FIELDS
            .iter()
            .filter(|(c, _)| c == collection)
            .map(|(_, f)| *f)
            .collect();
        for before in loaded {
            let id = id_of(before);
            let after = now
                .get(&id)
                .unwrap_or_else(|| panic!("{collection} {id} is gone"));
            for (field, value) in before {
                assert_eq!(
                    after.get(field),
                    Some(value),
                    "{collection} {id}: {field} changed (1.x reads it back): now {after}"
                );
            }
            for field in after.keys() {
                assert!(
                    before.contains_key(field) || allowed.contains(field.as_str()),
                    "{collection} {id}: {field} was added and docs/mongodb.md does not say so: {after}"
                );
            }
        }
    }
    for spec in &fixture.indexes {
        let found = db.indexes(&spec.collection).await;
        assert_eq!(
            found.get(&spec.name),
            Some(&spec.keys),
            "1.x's index {}.{} is kept as it was",
            spec.collection,
            spec.name
        );
    }
}

#[tokio::test]
async fn a_superinsights_1x_database_opens_as_it_is() {
    let Some(uri) = mongodb_uri() else { return };
    let loaded_at_ms = superinsights::domain::timestamp::now_ms();
    let fixture = Fixture::load(loaded_at_ms);
    let db = LegacyDatabase {
        uri,
        name: format!(
            "si_legacy_{}_{}",
            std::process::id(),
            superinsights::domain::ids::random_hex(4)
        ),
    };
    db.load(&fixture).await;
    let pepper = fixture.str(&["publicLink", "pepper"]);
    let data_dir = tempfile::tempdir().unwrap();
    let env = server_env(&db, &pepper);

    // The server on the database as 1.x left it.
    let mut server = ServerProcess::start(data_dir.path(), &env).await;
    use_the_legacy_database(&server, &fixture, &db, loaded_at_ms, 1).await;
    assert!(server.terminate().success());

    // `migrate`, then everything again.
    let dir = data_dir.path().to_str().unwrap();
    let mut cli_env = env.clone();
    cli_env.push(("DATA_DIR", dir));
    let (code, out, err) = run_cli(&["migrate"], &cli_env);
    assert_eq!(code, 0, "migrate on the 1.x database: {out}{err}");
    let mut server = ServerProcess::start(Path::new(dir), &env).await;
    use_the_legacy_database(&server, &fixture, &db, loaded_at_ms, 2).await;
    assert!(server.terminate().success());

    assert_1x_documents_unchanged(&fixture, &db).await;
}
