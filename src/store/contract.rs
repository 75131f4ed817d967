//! The contract every storage backend must meet, as one async suite run against each backend
//! (SQLite always; MongoDB when `SUPERINSIGHTS_TEST_MONGODB_URI` is set).

use super::{Invite, KeyKind, NewProject, ProjectUpdate, StoreError, Stores};
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
    project_lifecycle(&stores).await;
    account_admin(&stores).await;
    invites(&stores).await;
    sessions(&stores).await;
    analytics_summaries(&stores).await;
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

async fn project_lifecycle(stores: &Stores) {
    let p = new_project(stores, "Life").await;
    let ps = &stores.projects;
    let update = ProjectUpdate {
        name: " Renamed ".into(),
        icon: "🚀".into(),
        environment: "staging".into(),
        data_retention_days: 30,
    };
    let updated = ps.update_project(p.id, &update).await.unwrap();
    assert_eq!(
        (
            updated.name.as_str(),
            updated.icon.as_str(),
            updated.environment.as_str(),
            updated.data_retention_days
        ),
        ("Renamed", "🚀", "staging", 30)
    );
    assert_eq!(ps.project(p.id).await.unwrap().unwrap(), updated);
    assert_eq!(
        ps.update_project(DocId::new(), &update).await,
        Err(StoreError::NotFound)
    );

    let fresh = ps.regenerate_keys(p.id).await.unwrap();
    assert_ne!(fresh.public_api_key, p.public_api_key);
    assert_ne!(fresh.secret_api_key, p.secret_api_key);
    assert_eq!(
        ps.find_by_api_key(&p.public_api_key).await.unwrap(),
        None,
        "old keys stop working at once"
    );
    assert_eq!(
        ps.find_by_api_key(&fresh.secret_api_key)
            .await
            .unwrap()
            .unwrap()
            .project_id,
        p.id
    );

    // Data, drop rules and the dropped counter, then clear.
    let t0 = 1_700_000_000_000;
    let mut b = batch(
        p.id,
        Docs::Events(vec![event("old", t0), event("new", t0 + 10_000)]),
    );
    b.dropped = 2;
    stores
        .events
        .write(&[
            b,
            batch(
                p.id,
                Docs::Pageviews(vec![pageview("/old", t0), pageview("/new", t0 + 10_000)]),
            ),
        ])
        .await
        .unwrap();
    assert_eq!(
        ps.purge_before(p.id, t0 + 5_000).await.unwrap(),
        2,
        "one event and one page view were older"
    );
    assert_eq!(stores.stats.count(p.id, Channel::Events).await.unwrap(), 1);
    ps.set_drop_rules(
        p.id,
        &DropRules {
            enabled: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    ps.clear_project_data(p.id).await.unwrap();
    for channel in Channel::ALL {
        assert_eq!(stores.stats.count(p.id, channel).await.unwrap(), 0);
    }
    assert_eq!(stores.stats.dropped_events(p.id).await.unwrap(), 0);
    assert_eq!(ps.drop_rules(p.id).await.unwrap(), DropRules::default());

    assert!(
        ps.live_projects()
            .await
            .unwrap()
            .iter()
            .any(|x| x.id == p.id)
    );
    ps.soft_delete_project(p.id).await.unwrap();
    assert_eq!(
        ps.find_by_api_key(&fresh.public_api_key).await.unwrap(),
        None,
        "deleted projects' keys stop working"
    );
    assert!(
        ps.projects_of_org(p.org_id)
            .await
            .unwrap()
            .iter()
            .all(|x| x.id != p.id)
    );
    assert!(
        ps.live_projects()
            .await
            .unwrap()
            .iter()
            .all(|x| x.id != p.id)
    );
    assert!(
        ps.project(p.id)
            .await
            .unwrap()
            .unwrap()
            .deleted_at
            .is_some(),
        "kept, marked deleted"
    );
    assert_eq!(
        ps.soft_delete_project(p.id).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        ps.update_project(p.id, &update).await,
        Err(StoreError::NotFound)
    );
}

async fn account_admin(stores: &Stores) {
    let a = &stores.accounts;
    let owner = a
        .create_user(
            &format!("o-{}@t.example", DocId::new()),
            "h1",
            Some("Olga"),
            "user",
        )
        .await
        .unwrap();
    let viewer = a
        .create_user(&format!("v-{}@t.example", DocId::new()), "h2", None, "user")
        .await
        .unwrap();
    assert_eq!(a.user(owner.id).await.unwrap().unwrap(), owner);
    assert_eq!(a.user(DocId::new()).await.unwrap(), None);
    let all = a.list_users().await.unwrap();
    assert!(all.iter().any(|u| u.id == owner.id) && all.iter().any(|u| u.id == viewer.id));

    a.set_password_hash(viewer.id, "h3").await.unwrap();
    a.set_user_role(viewer.id, "admin").await.unwrap();
    let v = a.user(viewer.id).await.unwrap().unwrap();
    assert_eq!((v.password_hash.as_str(), v.role.as_str()), ("h3", "admin"));
    assert_eq!(
        a.set_user_role(DocId::new(), "admin").await,
        Err(StoreError::NotFound)
    );

    let org = a.create_org("Team", owner.id).await.unwrap();
    assert_eq!(a.org(org.id).await.unwrap().unwrap(), org);
    assert!(a.list_orgs().await.unwrap().iter().any(|o| o.id == org.id));
    a.rename_org(org.id, " Team Two ").await.unwrap();
    assert_eq!(a.org(org.id).await.unwrap().unwrap().name, "Team Two");
    a.add_member(org.id, owner.id, "owner").await.unwrap();
    a.add_member(org.id, viewer.id, "viewer").await.unwrap();
    let members: Vec<_> = a
        .members(org.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user.id, m.role))
        .collect();
    assert_eq!(
        members,
        vec![
            (owner.id, "owner".to_string()),
            (viewer.id, "viewer".to_string())
        ]
    );

    a.remove_member(org.id, viewer.id).await.unwrap();
    assert_eq!(
        a.remove_member(org.id, viewer.id).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(a.members(org.id).await.unwrap().len(), 1);
    assert_eq!(a.member_role(org.id, viewer.id).await.unwrap(), None);

    a.set_org_status(org.id, "disabled").await.unwrap();
    assert!(
        a.memberships(owner.id)
            .await
            .unwrap()
            .iter()
            .all(|(o, _)| o.id != org.id),
        "disabled orgs give no access"
    );
    a.set_org_status(org.id, "active").await.unwrap();
    assert!(
        a.memberships(owner.id)
            .await
            .unwrap()
            .iter()
            .any(|(o, _)| o.id == org.id)
    );

    a.delete_user(owner.id).await.unwrap();
    assert_eq!(a.user(owner.id).await.unwrap(), None);
    assert!(
        a.members(org.id).await.unwrap().is_empty(),
        "memberships go with the user"
    );
    assert_eq!(a.delete_user(owner.id).await, Err(StoreError::NotFound));
}

async fn invites(stores: &Stores) {
    let inviter = DocId::new();
    let org = DocId::new();
    let invite = |org_id: Option<DocId>, hash: &str, created_at: i64| Invite {
        id: DocId::new(),
        email: "Guest@Example.com".into(),
        token_hash: hash.into(),
        org_id,
        role: "viewer".into(),
        status: "pending".into(),
        created_by: inviter,
        expires_at: created_at + 7 * 86_400_000,
        created_at,
    };
    let first = invite(Some(org), &format!("h1-{}", DocId::new()), 1_000);
    let second = invite(Some(org), &format!("h2-{}", DocId::new()), 2_000);
    let platform = invite(None, &format!("h3-{}", DocId::new()), 3_000);
    for i in [&first, &second, &platform] {
        stores.invites.create_invite(i).await.unwrap();
    }
    let found = stores
        .invites
        .invite_by_token_hash(&first.token_hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        found.email, "guest@example.com",
        "emails are stored lower-cased"
    );
    assert_eq!(
        (found.id, found.org_id, found.expires_at),
        (first.id, Some(org), first.expires_at)
    );
    assert_eq!(
        stores.invites.invite_by_token_hash("nope").await.unwrap(),
        None
    );
    let pending: Vec<_> = stores
        .invites
        .pending_invites(Some(org))
        .await
        .unwrap()
        .into_iter()
        .map(|i| i.id)
        .collect();
    assert_eq!(pending, vec![second.id, first.id], "newest first");
    assert!(
        stores
            .invites
            .pending_invites(None)
            .await
            .unwrap()
            .iter()
            .any(|i| i.id == platform.id)
    );
    stores
        .invites
        .set_invite_status(first.id, "accepted")
        .await
        .unwrap();
    assert_eq!(
        stores
            .invites
            .pending_invites(Some(org))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        stores
            .invites
            .invite_by_token_hash(&first.token_hash)
            .await
            .unwrap()
            .unwrap()
            .status,
        "accepted"
    );
    assert_eq!(
        stores
            .invites
            .set_invite_status(DocId::new(), "revoked")
            .await,
        Err(StoreError::NotFound)
    );
}

async fn sessions(stores: &Stores) {
    let s = &stores.sessions;
    let now = crate::domain::timestamp::now_ms();
    let id = format!("sess-{}", DocId::new());
    assert!(s.create_session(&id, b"one", now + 60_000).await.unwrap());
    assert!(
        !s.create_session(&id, b"other", now + 60_000).await.unwrap(),
        "ids never collide silently"
    );
    assert_eq!(
        s.load_session(&id).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    s.save_session(&id, b"two", now + 60_000).await.unwrap();
    assert_eq!(
        s.load_session(&id).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    let expired = format!("old-{}", DocId::new());
    s.save_session(&expired, b"x", now - 1).await.unwrap();
    assert_eq!(
        s.load_session(&expired).await.unwrap(),
        None,
        "expired records are not loaded"
    );
    assert!(s.delete_expired_sessions().await.unwrap() >= 1);
    s.delete_session(&id).await.unwrap();
    assert_eq!(s.load_session(&id).await.unwrap(), None);
    s.delete_session(&id).await.unwrap();
}

/// Hand-computed figures on a small fixture: ties, a missing clientId, one value, an empty range.
async fn analytics_summaries(stores: &Stores) {
    use crate::domain::analytics::{DayCount, EventCount, PageCount, TimeRange};
    let p = new_project(stores, "Stats").await;
    let day = 86_400_000;
    let t0 = 1_706_702_400_000; // 2024-01-31T12:00:00Z
    let range = TimeRange {
        start_ms: t0 - 2 * day,
        end_ms: t0,
    };
    let pv = |url: &str, client: Option<&str>, ts: i64| PageView {
        client_id: client.map(str::to_string),
        ..pageview(url, ts)
    };
    let ev = |name: &str, ts: i64| event(name, ts);
    let perf = |lcp: Option<f64>, cls: Option<f64>, ts: i64| PerformanceMetric {
        lcp,
        cls,
        fid: None,
        ttfb: None,
        inp: None,
        ..metric(ts)
    };
    stores
        .events
        .write(&[
            batch(
                p.id,
                Docs::Pageviews(vec![
                    pv("/a", Some("c1"), t0),
                    pv("/a", Some("c2"), t0 - 1000),
                    pv("/b", Some("c1"), t0 - 2000),
                    pv("/b", None, t0 - day),
                    pv("/c", Some("c3"), t0 - day - 1000),
                    pv("/old", Some("c9"), t0 - 3 * day),
                ]),
            ),
            batch(
                p.id,
                Docs::Events(vec![
                    ev("signup", t0),
                    ev("signup", t0 - day),
                    ev("signup", t0 - 5),
                    ev("view", t0 - 6),
                    ev("buy", t0 - 7),
                    ev("old", t0 - 3 * day),
                ]),
            ),
            batch(
                p.id,
                Docs::Errors(vec![
                    error("boom", t0),
                    error("boom", t0 - day),
                    error("bang", t0 - 1),
                ]),
            ),
            batch(
                p.id,
                Docs::Performance(vec![
                    perf(Some(4000.0), None, t0),
                    perf(Some(1000.0), Some(0.1), t0 - 1),
                    perf(Some(3000.0), None, t0 - day),
                    perf(Some(2000.0), None, t0 - day - 1),
                    perf(Some(9999.0), Some(9.0), t0 - 3 * day),
                ]),
            ),
        ])
        .await
        .unwrap();

    let s = stores
        .stats
        .pageviews_summary(p.id, range, 5)
        .await
        .unwrap();
    assert_eq!(
        s.total_views, 5,
        "the view outside the range is not counted"
    );
    assert_eq!(
        s.unique_visitors, 4,
        "c1, c2, c3 and one for the views without a clientId"
    );
    assert_eq!(
        s.views_by_day,
        vec![
            DayCount {
                date: "2024-01-30".into(),
                count: 2
            },
            DayCount {
                date: "2024-01-31".into(),
                count: 3
            }
        ]
    );
    let top = |url: &str, views| PageCount {
        url: url.into(),
        views,
    };
    assert_eq!(
        s.top_pages,
        vec![top("/a", 2), top("/b", 2), top("/c", 1)],
        "ties broken by URL"
    );
    assert_eq!(
        stores
            .stats
            .pageviews_summary(p.id, range, 1)
            .await
            .unwrap()
            .top_pages,
        vec![top("/a", 2)]
    );

    let e = stores.stats.events_summary(p.id, range, 2).await.unwrap();
    assert_eq!(e.total_events, 5);
    assert_eq!(
        e.top_events,
        vec![
            EventCount {
                event_name: "signup".into(),
                count: 3
            },
            EventCount {
                event_name: "buy".into(),
                count: 1
            }
        ]
    );
    assert_eq!(e.events_by_day.iter().map(|d| d.count).sum::<u64>(), 5);

    let r = stores.stats.errors_summary(p.id, range).await.unwrap();
    assert_eq!((r.total_errors, r.unique_fingerprints), (3, 2));
    assert_eq!(
        r.errors_by_day,
        vec![
            DayCount {
                date: "2024-01-30".into(),
                count: 1
            },
            DayCount {
                date: "2024-01-31".into(),
                count: 2
            }
        ]
    );

    let f = stores.stats.performance_summary(p.id, range).await.unwrap();
    assert_eq!(f.total_measurements, 4);
    let lcp = f.of("lcp");
    assert_eq!(
        (lcp.p50, lcp.p75, lcp.p95),
        (Some(2000.0), Some(3000.0), Some(3000.0)),
        "lower nearest rank of 1000..4000"
    );
    let cls = f.of("cls");
    assert_eq!(
        (cls.p50, cls.p75, cls.p95),
        (Some(0.1), Some(0.1), Some(0.1)),
        "one value"
    );
    assert_eq!(f.of("fid").p75, None, "no data");
    let score = f.score();
    assert_eq!(
        (
            score.lcp_score,
            score.cls_score,
            score.fid_score,
            score.score
        ),
        (67, 100, 0, 42)
    );
    let days: Vec<_> = f
        .metrics_by_day
        .iter()
        .map(|d| (d.date.as_str(), d.lcp))
        .collect();
    assert_eq!(
        days,
        vec![("2024-01-30", Some(2500.0)), ("2024-01-31", Some(2500.0))],
        "daily averages"
    );
    assert_eq!(
        f.metrics_by_day[1].cls,
        Some(0.1),
        "nulls excluded from the average"
    );

    let empty = TimeRange {
        start_ms: t0 + day,
        end_ms: t0 + 2 * day,
    };
    assert_eq!(
        stores
            .stats
            .pageviews_summary(p.id, empty, 5)
            .await
            .unwrap(),
        Default::default()
    );
    assert_eq!(
        stores.stats.events_summary(p.id, empty, 5).await.unwrap(),
        Default::default()
    );
    assert_eq!(
        stores.stats.errors_summary(p.id, empty).await.unwrap(),
        Default::default()
    );
    let none = stores.stats.performance_summary(p.id, empty).await.unwrap();
    assert_eq!(
        (
            none.total_measurements,
            none.of("lcp").p50,
            none.score().score
        ),
        (0, None, 0)
    );
    assert_eq!(
        stores
            .stats
            .pageviews_summary(DocId::new(), range, 5)
            .await
            .unwrap()
            .total_views,
        0,
        "unknown project"
    );
}
