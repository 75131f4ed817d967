//! The contract every storage backend must meet, as one async suite run against each backend
//! (SQLite always; MongoDB when `SUPERINSIGHTS_TEST_MONGODB_URI` is set).

use super::{KeyKind, NewProject, StoreError, Stores};
use crate::domain::{
    drop_rules::{DropFilter, DropMode, DropRules, FilterOp},
    fingerprint::error_fingerprint,
    ids::DocId,
    model::*,
};
use serde_json::json;

/// Runs every contract check against one backend.
pub async fn run_all(stores: Stores) {
    stores.admin.migrate().await.expect("migrate is repeatable");
    stores.admin.ping().await.expect("ping");
    accounts(&stores).await;
    projects(&stores).await;
    writes(&stores).await;
    write_is_all_or_nothing(&stores).await;
    replays_are_idempotent(&stores).await;
}

pub fn pageview(url: &str, ts: i64) -> PageView {
    PageView {
        id: DocId::new(),
        url: url.into(),
        title: Some("Home".into()),
        referrer: Some("https://ref.example/".into()),
        session_id: Some("s1".into()),
        client_id: Some("c1".into()),
        utm_source: Some("news".into()),
        utm_medium: None,
        utm_campaign: None,
        utm_term: None,
        utm_content: None,
        device_type: Some(DeviceType::Mobile),
        browser: Some("Firefox".into()),
        os: Some("Linux".into()),
        enrichment: Enrichment {
            ip: Some("203.0.113.9".into()),
            country: Some("FR".into()),
            is_bot: false,
        },
        timestamp: ts,
    }
}

pub fn event(name: &str, ts: i64) -> Event {
    Event {
        id: DocId::new(),
        event_name: name.into(),
        properties: json!({"plan": "pro", "n": 3}),
        duration_ms: Some(120.5),
        session_id: None,
        client_id: Some("c1".into()),
        enrichment: Enrichment::default(),
        timestamp: ts,
    }
}

pub fn error(message: &str, ts: i64) -> ErrorEvent {
    ErrorEvent {
        id: DocId::new(),
        message: message.into(),
        error_type: Some("window_error".into()),
        stack_trace: Some("at f (app.js:1:2)".into()),
        source_file: Some("app.js".into()),
        line_number: Some(1.0),
        column_number: Some(2.0),
        browser: None,
        browser_version: None,
        os: None,
        os_version: None,
        device_type: None,
        context: Some(json!({"url": "https://x.example/"})),
        fingerprint: error_fingerprint(message, Some("at f (app.js:1:2)")),
        enrichment: Enrichment::default(),
        timestamp: ts,
    }
}

pub fn metric(ts: i64) -> PerformanceMetric {
    PerformanceMetric {
        id: DocId::new(),
        metric_type: "web_vitals_aggregate".into(),
        lcp: Some(1200.0),
        cls: Some(0.05),
        fid: None,
        ttfb: Some(80.0),
        inp: Some(90.0),
        url: Some("https://x.example/".into()),
        client_id: Some("c1".into()),
        device_type: Some("desktop".into()),
        browser: Some("Chrome".into()),
        connection_type: Some("4g".into()),
        properties: json!({}),
        enrichment: Enrichment::default(),
        timestamp: ts,
    }
}

pub fn batch(project_id: DocId, docs: Docs) -> WriteBatch {
    WriteBatch {
        batch_id: DocId::new(),
        project_id,
        docs,
        dropped: 0,
    }
}

async fn new_project(stores: &Stores, name: &str) -> super::Project {
    let owner = stores
        .accounts
        .create_user(
            &format!("{}@contract.test", DocId::new()),
            "hash",
            None,
            "user",
        )
        .await
        .unwrap();
    let org = stores
        .accounts
        .create_org("Contract Org", owner.id)
        .await
        .unwrap();
    stores
        .projects
        .create_project(NewProject::named(name, org.id))
        .await
        .unwrap()
}

async fn accounts(stores: &Stores) {
    let a = &stores.accounts;
    let before = a.count_users().await.unwrap();
    let email = format!("Mixed.{}@Example.COM", DocId::new());
    let user = a
        .create_user(&email, "$argon2id$x", Some("Ann"), "admin")
        .await
        .unwrap();
    assert_eq!(user.email, email.to_lowercase());
    assert!(matches!(
        a.create_user(&email.to_uppercase(), "h", None, "user")
            .await,
        Err(StoreError::Conflict(_))
    ));
    let found = a
        .user_by_email(&email.to_uppercase())
        .await
        .unwrap()
        .expect("case-insensitive lookup");
    assert_eq!(found.id, user.id);
    assert_eq!(found.role, "admin");
    assert_eq!(a.count_users().await.unwrap(), before + 1);
    assert_eq!(a.user_by_email("nobody@example.com").await.unwrap(), None);

    let org1 = a.create_org("Acme Team", user.id).await.unwrap();
    let org2 = a.create_org("Acme Team", user.id).await.unwrap();
    assert_ne!(org1.slug, org2.slug, "slugs stay unique");
    assert!(org1.slug.starts_with("acme-team"));
    a.add_member(org1.id, user.id, "owner").await.unwrap();
    assert_eq!(
        a.member_role(org1.id, user.id).await.unwrap().as_deref(),
        Some("owner")
    );
    a.add_member(org1.id, user.id, "viewer").await.unwrap();
    assert_eq!(
        a.member_role(org1.id, user.id).await.unwrap().as_deref(),
        Some("viewer")
    );
    assert_eq!(a.member_role(org2.id, user.id).await.unwrap(), None);
    a.add_member(org2.id, user.id, "member").await.unwrap();
    let orgs: Vec<_> = a
        .memberships(user.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(o, r)| (o.id, r))
        .collect();
    assert_eq!(
        orgs,
        vec![
            (org1.id, "viewer".to_string()),
            (org2.id, "member".to_string())
        ]
    );
    assert_eq!(a.memberships(DocId::new()).await.unwrap(), vec![]);
}

async fn projects(stores: &Stores) {
    let p = new_project(stores, "  Shop  ").await;
    assert_eq!(p.name, "Shop");
    assert_eq!(p.icon, "📊");
    assert_eq!(p.data_retention_days, 90);
    assert!(p.public_api_key.starts_with("pk_") && p.public_api_key.len() == 67);
    assert!(p.secret_api_key.starts_with("sk_") && p.secret_api_key.len() == 67);
    let loaded = stores.projects.project(p.id).await.unwrap().unwrap();
    assert_eq!(loaded, p);
    assert_eq!(stores.projects.project(DocId::new()).await.unwrap(), None);

    let by_pk = stores
        .projects
        .find_by_api_key(&p.public_api_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((by_pk.project_id, by_pk.kind), (p.id, KeyKind::Public));
    let by_sk = stores
        .projects
        .find_by_api_key(&p.secret_api_key)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((by_sk.project_id, by_sk.kind), (p.id, KeyKind::Secret));
    assert_eq!(
        stores.projects.find_by_api_key("pk_unknown").await.unwrap(),
        None
    );

    let second = stores
        .projects
        .create_project(NewProject::named("Blog", p.org_id))
        .await
        .unwrap();
    let listed: Vec<_> = stores
        .projects
        .projects_of_org(p.org_id)
        .await
        .unwrap()
        .into_iter()
        .map(|x| x.id)
        .collect();
    assert_eq!(listed, vec![second.id, p.id], "newest first");

    assert_eq!(
        stores.projects.drop_rules(p.id).await.unwrap(),
        DropRules::default()
    );
    let rules = DropRules {
        enabled: true,
        mode: DropMode::Whitelist,
        filters: vec![DropFilter {
            key: "eventName".into(),
            op: FilterOp::Contains,
            value: "a,b".into(),
        }],
        ..Default::default()
    };
    stores.projects.set_drop_rules(p.id, &rules).await.unwrap();
    assert_eq!(stores.projects.drop_rules(p.id).await.unwrap(), rules);
    assert_eq!(
        stores.projects.drop_rules(second.id).await.unwrap(),
        DropRules::default()
    );
}

async fn writes(stores: &Stores) {
    let p = new_project(stores, "Writes").await;
    let other = new_project(stores, "Other").await;
    let t0 = 1_706_702_400_000;
    let mut events_batch = batch(
        p.id,
        Docs::Events(vec![event("signup", t0), event("buy", t0 + 1)]),
    );
    events_batch.dropped = 3;
    stores
        .events
        .write(&[
            batch(
                p.id,
                Docs::Pageviews(vec![
                    pageview("https://x.example/a", t0),
                    pageview("https://x.example/b", t0 + 5),
                ]),
            ),
            events_batch,
            batch(p.id, Docs::Errors(vec![error("boom", t0)])),
            batch(p.id, Docs::Performance(vec![metric(t0)])),
            batch(
                other.id,
                Docs::Pageviews(vec![pageview("https://y.example/", t0)]),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        stores.stats.count(p.id, Channel::Pageviews).await.unwrap(),
        2
    );
    assert_eq!(stores.stats.count(p.id, Channel::Events).await.unwrap(), 2);
    assert_eq!(stores.stats.count(p.id, Channel::Errors).await.unwrap(), 1);
    assert_eq!(
        stores
            .stats
            .count(p.id, Channel::Performance)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        stores
            .stats
            .count(other.id, Channel::Pageviews)
            .await
            .unwrap(),
        1
    );
    assert_eq!(stores.stats.dropped_events(p.id).await.unwrap(), 3);

    let pv = stores
        .stats
        .recent(p.id, Channel::Pageviews, 10)
        .await
        .unwrap();
    assert_eq!(pv.len(), 2);
    assert_eq!(pv[0]["url"], "https://x.example/b", "newest first");
    assert_eq!(pv[0]["timestamp"], "2024-01-31T12:00:00.005Z");
    assert_eq!(pv[0]["deviceType"], "mobile");
    assert_eq!(pv[0]["utmSource"], "news");
    assert_eq!(pv[0]["country"], "FR");
    assert_eq!(pv[0]["projectId"], p.id.to_hex());
    let ev = stores.stats.recent(p.id, Channel::Events, 1).await.unwrap();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0]["eventName"], "buy");
    assert_eq!(ev[0]["properties"], json!({"plan": "pro", "n": 3}));
    assert_eq!(ev[0]["durationMs"].as_f64(), Some(120.5));
    let er = stores.stats.recent(p.id, Channel::Errors, 5).await.unwrap();
    assert_eq!(
        er[0]["fingerprint"],
        error_fingerprint("boom", Some("at f (app.js:1:2)"))
    );
    assert_eq!(er[0]["context"], json!({"url": "https://x.example/"}));
    let pm = stores
        .stats
        .recent(p.id, Channel::Performance, 5)
        .await
        .unwrap();
    assert_eq!(pm[0]["inp"].as_f64(), Some(90.0));
    assert_eq!(pm[0]["lcp"].as_f64(), Some(1200.0));
}

async fn write_is_all_or_nothing(stores: &Stores) {
    let p = new_project(stores, "Atomic").await;
    let result = stores
        .events
        .write(&[
            batch(
                p.id,
                Docs::Pageviews(vec![pageview("https://x.example/", 1)]),
            ),
            batch(
                DocId::new(),
                Docs::Pageviews(vec![pageview("https://ghost.example/", 1)]),
            ),
        ])
        .await;
    assert!(
        result.is_err(),
        "a batch for an unknown project fails the write"
    );
    assert_eq!(
        stores.stats.count(p.id, Channel::Pageviews).await.unwrap(),
        0,
        "nothing partial"
    );
}

async fn replays_are_idempotent(stores: &Stores) {
    let p = new_project(stores, "Replay").await;
    let b = batch(
        p.id,
        Docs::Events(vec![event("a", 1), event("b", 2), event("c", 3)]),
    );
    assert!(stores.events.write_once(&b).await.unwrap());
    assert!(
        !stores.events.write_once(&b).await.unwrap(),
        "second replay is a no-op"
    );
    assert_eq!(stores.stats.count(p.id, Channel::Events).await.unwrap(), 3);
    let next = batch(p.id, Docs::Events(vec![event("d", 4)]));
    assert!(stores.events.write_once(&next).await.unwrap());
    assert_eq!(stores.stats.count(p.id, Channel::Events).await.unwrap(), 4);
}
