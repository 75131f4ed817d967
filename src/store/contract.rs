//! The contract every storage backend must meet: one async function per behaviour, each run as
//! its own test against each backend (SQLite always; MongoDB when
//! `SUPERINSIGHTS_TEST_MONGODB_URI` is set). Test-only: it is not compiled into the binary.

use super::{
    Invite, InviteScope, InviteStatus, KeyKind, NewProject, OrgRole, OrgStatus, PlatformRole,
    ProjectUpdate, StoreError, Stores,
};
use crate::domain::{
    drop_rules::{DropFilter, DropMode, DropRules, FilterOp},
    fingerprint::error_fingerprint,
    ids::DocId,
    model::*,
};
use serde_json::json;

/// Calls `$then! { name, … }` with the name of every behaviour of the contract, each an
/// `async fn(&Stores)` of this module, so each backend's tests run them one test apiece
/// (`store::sqlite` and `store::mongo` do).
macro_rules! contract_behaviours {
    ($then:ident) => {
        $then! {
            accounts,
            projects,
            writes,
            write_is_all_or_nothing,
            replays_are_idempotent,
            grouped_replays_skip_ledgered_batches_all_or_nothing,
            project_lifecycle,
            account_admin,
            invites,
            sessions,
            public_links,
            jobs_claims_and_leases,
            analytics_summaries,
            summaries_over_days_hours_and_edges,
            visitors_of_many_ranges_read_together,
            errors_report_groups_by_fingerprint,
            errors_report_groups_by_signature,
            dashboard_error_figures_count_groups_by_signature,
            error_group_states_per_project,
            error_segments_match_own_ids_or_context,
            error_detail_counts_every_occurrence,
            performance_report_filters_and_quality,
            pageviews_report_filters,
            pageviews_report_matches_a_naive_count,
            dashboard_visits_follow_session_ids,
            dashboard_segment_figures_equal_the_scan,
            events_reports,
            implausible_values_are_kept_but_left_out_of_figures,
            ai_presets_and_runs,
            ai_sample_documents,
            reports_and_templates,
            report_files_to_sweep,
            document_scans_page_in_order,
            raw_logs_filter_page_and_prune,
            password_resets_are_single_use,
            email_subscriptions_and_send_claims,
        }
    };
}
pub(crate) use contract_behaviours;

/// What every behaviour starts from: the schema migrated (twice: `migrate` is repeatable) and
/// the store answering.
pub async fn prepare(stores: &Stores) {
    stores.admin.migrate().await.expect("migrate");
    stores.admin.migrate().await.expect("migrate is repeatable");
    stores.admin.ping().await.expect("ping");
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
            timestamp_replaced: false,
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
        client_id: None,
        user_id: None,
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
            PlatformRole::User,
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

pub(crate) async fn accounts(stores: &Stores) {
    let a = &stores.accounts;
    let before = a.count_users().await.unwrap();
    let email = format!("Mixed.{}@Example.COM", DocId::new());
    let user = a
        .create_user(&email, "$argon2id$x", Some("Ann"), PlatformRole::Admin)
        .await
        .unwrap();
    assert_eq!(user.email, email.to_lowercase());
    assert!(matches!(
        a.create_user(&email.to_uppercase(), "h", None, PlatformRole::User)
            .await,
        Err(StoreError::Conflict(_))
    ));
    let found = a
        .user_by_email(&email.to_uppercase())
        .await
        .unwrap()
        .expect("case-insensitive lookup");
    assert_eq!(found.id, user.id);
    assert_eq!(found.role, PlatformRole::Admin);
    assert_eq!(a.count_users().await.unwrap(), before + 1);
    assert_eq!(a.user_by_email("nobody@example.com").await.unwrap(), None);

    let org1 = a.create_org("Acme Team", user.id).await.unwrap();
    let org2 = a.create_org("Acme Team", user.id).await.unwrap();
    assert_ne!(org1.slug, org2.slug, "slugs stay unique");
    assert!(org1.slug.starts_with("acme-team"));
    a.add_member(org1.id, user.id, OrgRole::Owner)
        .await
        .unwrap();
    assert_eq!(
        a.member_role(org1.id, user.id).await.unwrap(),
        Some(OrgRole::Owner)
    );
    a.add_member(org1.id, user.id, OrgRole::Viewer)
        .await
        .unwrap();
    assert_eq!(
        a.member_role(org1.id, user.id).await.unwrap(),
        Some(OrgRole::Viewer)
    );
    assert_eq!(a.member_role(org2.id, user.id).await.unwrap(), None);
    a.add_member(org2.id, user.id, OrgRole::Member)
        .await
        .unwrap();
    let orgs: Vec<_> = a
        .memberships(user.id)
        .await
        .unwrap()
        .into_iter()
        .map(|(o, r)| (o.id, r))
        .collect();
    assert_eq!(
        orgs,
        vec![(org1.id, OrgRole::Viewer), (org2.id, OrgRole::Member)]
    );
    assert_eq!(a.memberships(DocId::new()).await.unwrap(), vec![]);
}

pub(crate) async fn projects(stores: &Stores) {
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

pub(crate) async fn writes(stores: &Stores) {
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

pub(crate) async fn write_is_all_or_nothing(stores: &Stores) {
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

pub(crate) async fn replays_are_idempotent(stores: &Stores) {
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

/// `write_once_many`: one call for several batches. A batch already in the ledger (or named
/// twice) is skipped and reported `false`, the others are stored; a group that fails records
/// none of its batches, so each replays as new.
pub(crate) async fn grouped_replays_skip_ledgered_batches_all_or_nothing(stores: &Stores) {
    let p = new_project(stores, "Grouped replay").await;
    let w = &stores.events;
    let seen = batch(p.id, Docs::Events(vec![event("a", 1)]));
    assert!(w.write_once(&seen).await.unwrap());
    let two_events = batch(p.id, Docs::Events(vec![event("b", 2), event("c", 3)]));
    let mut a_view = batch(
        p.id,
        Docs::Pageviews(vec![pageview("https://x.example/", 4)]),
    );
    a_view.dropped = 2;
    let group = [
        two_events.clone(),
        seen.clone(),
        a_view.clone(),
        two_events.clone(),
    ];
    assert_eq!(
        w.write_once_many(&group).await.unwrap(),
        vec![true, false, true, false],
        "the ledgered batch and the repeated one are skipped, the rest stored"
    );
    let counts = || async {
        (
            stores.stats.count(p.id, Channel::Events).await.unwrap(),
            stores.stats.count(p.id, Channel::Pageviews).await.unwrap(),
            stores.stats.dropped_events(p.id).await.unwrap(),
        )
    };
    assert_eq!(counts().await, (3, 1, 2));
    assert_eq!(
        w.write_once_many(&group).await.unwrap(),
        vec![false; 4],
        "a replayed group is a no-op"
    );
    assert_eq!(counts().await, (3, 1, 2));
    assert_eq!(w.write_once_many(&[]).await.unwrap(), Vec::<bool>::new());

    let good = batch(p.id, Docs::Events(vec![event("d", 5), event("e", 6)]));
    let ghost = batch(DocId::new(), Docs::Events(vec![event("ghost", 7)]));
    assert!(
        w.write_once_many(&[good.clone(), ghost]).await.is_err(),
        "a batch for an unknown project fails the group"
    );
    assert_eq!(
        counts().await,
        (3, 1, 2),
        "nothing of the failed group stored"
    );
    assert!(
        w.write_once(&good).await.unwrap(),
        "the failed group's good batch is not in the ledger"
    );
    assert_eq!(counts().await, (5, 1, 2));
}

pub(crate) async fn project_lifecycle(stores: &Stores) {
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

pub(crate) async fn account_admin(stores: &Stores) {
    let a = &stores.accounts;
    let owner = a
        .create_user(
            &format!("o-{}@t.example", DocId::new()),
            "h1",
            Some("Olga"),
            PlatformRole::User,
        )
        .await
        .unwrap();
    let viewer = a
        .create_user(
            &format!("v-{}@t.example", DocId::new()),
            "h2",
            None,
            PlatformRole::User,
        )
        .await
        .unwrap();
    assert_eq!(a.user(owner.id).await.unwrap().unwrap(), owner);
    assert_eq!(a.user(DocId::new()).await.unwrap(), None);
    let all = a.list_users().await.unwrap();
    assert!(all.iter().any(|u| u.id == owner.id) && all.iter().any(|u| u.id == viewer.id));

    // The platform's registration setting: unset, then as last set.
    assert_eq!(a.registration_setting().await.unwrap(), None);
    a.set_registration_setting(false).await.unwrap();
    assert_eq!(a.registration_setting().await.unwrap(), Some(false));
    a.set_registration_setting(true).await.unwrap();
    assert_eq!(a.registration_setting().await.unwrap(), Some(true));
    // Emails change, never onto another user's.
    let new_email = format!("v2-{}@t.example", DocId::new());
    a.set_user_email(viewer.id, &new_email).await.unwrap();
    assert_eq!(
        a.user_by_email(&new_email).await.unwrap().unwrap().id,
        viewer.id
    );
    assert!(matches!(
        a.set_user_email(viewer.id, &owner.email).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        a.set_user_email(DocId::new(), "nobody@t.example").await,
        Err(StoreError::NotFound)
    );
    a.set_password_hash(viewer.id, "h3").await.unwrap();
    a.set_user_role(viewer.id, PlatformRole::Admin)
        .await
        .unwrap();
    let v = a.user(viewer.id).await.unwrap().unwrap();
    assert_eq!(
        (v.password_hash.as_str(), v.role),
        ("h3", PlatformRole::Admin)
    );
    assert_eq!(
        a.set_user_role(DocId::new(), PlatformRole::Admin).await,
        Err(StoreError::NotFound)
    );

    let org = a.create_org("Team", owner.id).await.unwrap();
    assert_eq!(a.org(org.id).await.unwrap().unwrap(), org);
    assert!(a.list_orgs().await.unwrap().iter().any(|o| o.id == org.id));
    a.rename_org(org.id, " Team Two ").await.unwrap();
    assert_eq!(a.org(org.id).await.unwrap().unwrap().name, "Team Two");
    a.add_member(org.id, owner.id, OrgRole::Owner)
        .await
        .unwrap();
    a.add_member(org.id, viewer.id, OrgRole::Viewer)
        .await
        .unwrap();
    let members: Vec<_> = a
        .members(org.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.user.id, m.role))
        .collect();
    assert_eq!(
        members,
        vec![(owner.id, OrgRole::Owner), (viewer.id, OrgRole::Viewer)]
    );

    a.remove_member(org.id, viewer.id).await.unwrap();
    assert_eq!(
        a.remove_member(org.id, viewer.id).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(a.members(org.id).await.unwrap().len(), 1);
    assert_eq!(a.member_role(org.id, viewer.id).await.unwrap(), None);

    a.set_org_status(org.id, OrgStatus::Disabled).await.unwrap();
    assert_eq!(
        a.org(org.id).await.unwrap().unwrap().status,
        OrgStatus::Disabled
    );
    assert!(
        a.memberships(owner.id)
            .await
            .unwrap()
            .iter()
            .all(|(o, _)| o.id != org.id),
        "disabled orgs give no access"
    );
    a.set_org_status(org.id, OrgStatus::Active).await.unwrap();
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

pub(crate) async fn invites(stores: &Stores) {
    let inviter = DocId::new();
    let org = DocId::new();
    let invite = |org_id: Option<DocId>, hash: &str, created_at: i64| {
        let scope = match org_id {
            Some(org_id) => InviteScope::Org {
                org_id,
                role: OrgRole::Viewer,
            },
            None => InviteScope::Platform {
                role: PlatformRole::Admin,
            },
        };
        let (email, week) = ("Guest@Example.com".into(), 7 * 86_400_000);
        Invite::new(scope, email, hash.into(), inviter, created_at, week)
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
        (found.id, found.scope, found.expires_at),
        (first.id, first.scope, first.expires_at)
    );
    assert_eq!(found.org_id(), Some(org));
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
            .any(|i| i.id == platform.id && i.scope == platform.scope)
    );
    stores
        .invites
        .set_invite_status(first.id, InviteStatus::Accepted)
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
        InviteStatus::Accepted
    );
    assert_eq!(
        stores
            .invites
            .set_invite_status(DocId::new(), InviteStatus::Revoked)
            .await,
        Err(StoreError::NotFound)
    );
}

pub(crate) async fn sessions(stores: &Stores) {
    let s = &stores.sessions;
    let now = crate::domain::timestamp::now_ms();
    let id = format!("sess-{}", DocId::new());
    assert!(s.create_session(&id, b"one", now + 60_000).await.unwrap());
    assert!(
        !s.create_session(&id, b"other", now + 60_000).await.unwrap(),
        "ids never collide silently"
    );
    assert_eq!(
        s.load_session(&id, now).await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    s.save_session(&id, b"two", now + 60_000).await.unwrap();
    assert_eq!(
        s.load_session(&id, now).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    let expired = format!("old-{}", DocId::new());
    s.save_session(&expired, b"x", now - 1).await.unwrap();
    assert_eq!(
        s.load_session(&expired, now).await.unwrap(),
        None,
        "expired records are not loaded"
    );
    // Expiry is decided at the caller's "now": the live record is expired a minute later, and
    // the sweep at that time removes it too.
    assert_eq!(
        s.load_session(&id, now + 60_000).await.unwrap(),
        None,
        "expired at the given time"
    );
    assert!(
        s.load_session(&id, now + 59_999).await.unwrap().is_some(),
        "live until its expiry"
    );
    assert!(s.delete_expired_sessions(now).await.unwrap() >= 1);
    assert!(
        s.load_session(&id, now).await.unwrap().is_some(),
        "the sweep at `now` keeps what is live at `now`"
    );
    s.delete_expired_sessions(now + 60_000).await.unwrap();
    assert_eq!(
        s.load_session(&id, now).await.unwrap(),
        None,
        "swept once expired"
    );
    s.save_session(&id, b"three", now + 60_000).await.unwrap();
    s.delete_session(&id).await.unwrap();
    assert_eq!(s.load_session(&id, now).await.unwrap(), None);
    s.delete_session(&id).await.unwrap();
}

/// Hand-computed figures on a small fixture: ties, a missing clientId, one value, an empty range.
pub(crate) async fn analytics_summaries(stores: &Stores) {
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
        (67, 100, 0, 84),
        "the mean of the measured LCP and CLS (FID is no longer counted)"
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

/// Public links: only a hash is stored, enabling keeps the first enable time, revoking clears
/// the hash, lists hold enabled links of live projects only (per organization or all).
pub(crate) async fn public_links(stores: &Stores) {
    let ps = &stores.projects;
    let a = new_project(stores, "Shared A").await;
    let fresh = ps.public_link(a.id).await.unwrap().unwrap();
    assert_eq!(fresh.project, a);
    assert_eq!(
        (
            fresh.enabled,
            fresh.token_hash,
            fresh.created_at,
            fresh.revoked_at
        ),
        (false, None, None, None)
    );
    assert_eq!(ps.public_link(DocId::new()).await.unwrap(), None);

    let t0 = 1_700_000_000_000;
    let on = ps.set_public_link(a.id, "hash-1", t0).await.unwrap();
    assert_eq!(
        (
            on.enabled,
            on.token_hash.as_deref(),
            on.created_at,
            on.last_regenerated_at,
            on.revoked_at
        ),
        (true, Some("hash-1"), Some(t0), Some(t0), None)
    );
    // A new token on an enabled link: the link's age is kept, the token's time moves.
    let again = ps
        .set_public_link(a.id, "hash-2", t0 + 1_000)
        .await
        .unwrap();
    assert_eq!(
        (
            again.token_hash.as_deref(),
            again.created_at,
            again.last_regenerated_at
        ),
        (Some("hash-2"), Some(t0), Some(t0 + 1_000))
    );
    assert_eq!(ps.public_link(a.id).await.unwrap().unwrap(), again);

    ps.revoke_public_link(a.id, t0 + 2_000).await.unwrap();
    let off = ps.public_link(a.id).await.unwrap().unwrap();
    assert_eq!(
        (off.enabled, off.token_hash, off.revoked_at, off.created_at),
        (false, None, Some(t0 + 2_000), Some(t0))
    );
    // Enabling after a revoke starts a new link (new creation time, revoke cleared).
    let reborn = ps
        .set_public_link(a.id, "hash-3", t0 + 3_000)
        .await
        .unwrap();
    assert_eq!(
        (reborn.created_at, reborn.revoked_at),
        (Some(t0 + 3_000), None)
    );
    assert_eq!(
        ps.revoke_public_link(DocId::new(), t0).await,
        Err(StoreError::NotFound)
    );
    assert_eq!(
        ps.set_public_link(DocId::new(), "h", t0).await,
        Err(StoreError::NotFound)
    );

    // b: same organization as nothing else, enabled later; c: enabled then revoked;
    // d: enabled then deleted (gone from lists, cannot be re-enabled).
    let b = new_project(stores, "Shared B").await;
    let c = new_project(stores, "Shared C").await;
    let d = new_project(stores, "Shared D").await;
    ps.set_public_link(b.id, "hash-b", t0 + 4_000)
        .await
        .unwrap();
    ps.set_public_link(c.id, "hash-c", t0 + 5_000)
        .await
        .unwrap();
    ps.revoke_public_link(c.id, t0 + 6_000).await.unwrap();
    ps.set_public_link(d.id, "hash-d", t0 + 7_000)
        .await
        .unwrap();
    ps.soft_delete_project(d.id).await.unwrap();
    assert_eq!(
        ps.set_public_link(d.id, "hash-d2", t0 + 8_000).await,
        Err(StoreError::NotFound)
    );

    let ours = [a.id, b.id, c.id, d.id];
    let all: Vec<(DocId, Option<String>)> = ps
        .public_links(None)
        .await
        .unwrap()
        .into_iter()
        .filter(|l| ours.contains(&l.project.id))
        .map(|l| (l.project.id, l.token_hash))
        .collect();
    assert_eq!(
        all,
        vec![
            (b.id, Some("hash-b".to_string())),
            (a.id, Some("hash-3".to_string()))
        ],
        "enabled links of live projects, most recently enabled first"
    );
    let of_a: Vec<DocId> = ps
        .public_links(Some(a.org_id))
        .await
        .unwrap()
        .into_iter()
        .map(|l| l.project.id)
        .collect();
    assert_eq!(
        of_a,
        vec![a.id],
        "each test project has its own organization"
    );
}

/// The page-views report (reference §4.3): device, a literal URL prefix (`%`, `_`, `(` and case
/// matter), page-view segment fields, per-page uniques with a missing clientId, ties by URL.
pub(crate) async fn pageviews_report_filters(stores: &Stores) {
    use crate::domain::{
        analytics::{DayCount, PageStats, PageViewFilters, TimeRange},
        segment::SegmentFilters,
    };
    let p = new_project(stores, "Page views report").await;
    let day = 86_400_000;
    let t0 = 1_706_702_400_000; // 2024-01-31T12:00:00Z
    let range = TimeRange {
        start_ms: t0 - 2 * day,
        end_ms: t0,
    };
    let pv = |url: &str, client: Option<&str>, device: DeviceType, ts: i64| PageView {
        client_id: client.map(str::to_string),
        device_type: Some(device),
        ..pageview(url, ts)
    };
    let (m, d, t) = (DeviceType::Mobile, DeviceType::Desktop, DeviceType::Tablet);
    stores
        .events
        .write(&[batch(
            p.id,
            Docs::Pageviews(vec![
                pv("/blog/a", Some("c1"), m, t0),
                PageView {
                    browser: Some("Chrome".into()),
                    ..pv("/blog/a", Some("c2"), d, t0 - 1000)
                },
                pv("/blog/b", None, m, t0 - 2000),
                pv("/blog/b", Some("c1"), m, t0 - day),
                pv("/50%_off", Some("c3"), d, t0 - day - 1),
                pv("/50x_off", Some("c3"), m, t0 - day - 2),
                PageView {
                    utm_source: Some("ads".into()),
                    ..pv("/blog(1)", Some("c4"), t, t0 - 3)
                },
                pv("/blog/a", Some("c5"), d, t0 - 3 * day),
                pv("/Blog/c", Some("c6"), d, t0 - 5),
            ]),
        )])
        .await
        .unwrap();
    let report = async |f: PageViewFilters| {
        stores
            .stats
            .pageviews_report(p.id, range, &f)
            .await
            .unwrap()
    };
    let prefix = |s: &str| PageViewFilters {
        url_prefix: Some(s.into()),
        ..Default::default()
    };
    let page = |url: &str, views, unique_visitors| PageStats {
        url: url.into(),
        views,
        unique_visitors,
    };

    let all = report(PageViewFilters::default()).await;
    assert_eq!(all.total_views, 8, "the view three days ago is outside");
    assert_eq!(
        all.unique_visitors, 6,
        "c1 c2 c3 c4 c6, and one for no clientId"
    );
    assert_eq!(
        all.views_by_day,
        vec![
            DayCount {
                date: "2024-01-30".into(),
                count: 3
            },
            DayCount {
                date: "2024-01-31".into(),
                count: 5
            }
        ]
    );
    assert_eq!(
        all.top_pages,
        vec![
            page("/blog/a", 2, 2),
            page("/blog/b", 2, 2),
            page("/50%_off", 1, 1),
            page("/50x_off", 1, 1),
            page("/Blog/c", 1, 1),
            page("/blog(1)", 1, 1),
        ],
        "by views, ties by URL (byte order); a missing clientId is one visitor of /blog/b"
    );

    let blog = report(prefix("/blog")).await;
    assert_eq!(
        (blog.total_views, blog.unique_visitors),
        (5, 4),
        "case-sensitive prefix: not /Blog/c; c1 c2 c4 and no clientId"
    );
    let posts = report(prefix("/blog/")).await;
    assert_eq!((posts.total_views, posts.unique_visitors), (4, 3));
    assert_eq!(
        report(prefix("/50%_")).await.top_pages,
        vec![page("/50%_off", 1, 1)],
        "% and _ are literal"
    );
    assert_eq!(report(prefix("/50%")).await.total_views, 1);
    assert_eq!(
        report(prefix("/blog(")).await.top_pages,
        vec![page("/blog(1)", 1, 1)],
        "regex characters are literal"
    );
    assert_eq!(report(prefix("/nothing")).await, Default::default());

    let mobile = report(PageViewFilters {
        device_type: Some(DeviceType::Mobile),
        ..Default::default()
    })
    .await;
    assert_eq!((mobile.total_views, mobile.unique_visitors), (4, 3));
    let mobile_posts = report(PageViewFilters {
        device_type: Some(DeviceType::Mobile),
        url_prefix: Some("/blog/".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        mobile_posts.top_pages,
        vec![page("/blog/b", 2, 2), page("/blog/a", 1, 1)]
    );

    let segment = |pairs: &[(&str, &str)]| PageViewFilters {
        segment: SegmentFilters::from_params(pairs.iter().copied()),
        ..Default::default()
    };
    let c1 = report(segment(&[("clientId", "c1")])).await;
    assert_eq!(
        c1.top_pages,
        vec![page("/blog/a", 1, 1), page("/blog/b", 1, 1)]
    );
    assert_eq!((c1.total_views, c1.unique_visitors), (2, 1));
    assert_eq!(
        report(segment(&[("browser", "Chrome")])).await.total_views,
        1
    );
    assert_eq!(
        report(segment(&[("utm_source", "ads")])).await.top_pages,
        vec![page("/blog(1)", 1, 1)]
    );
    assert_eq!(
        report(segment(&[("deviceType", "tablet")]))
            .await
            .total_views,
        1
    );
    assert_eq!(
        report(segment(&[
            ("userId", "u1"),
            ("metaKey", "plan"),
            ("metaValue", "x")
        ]))
        .await
        .total_views,
        8,
        "userId and meta do not apply to page views"
    );
    // Breakdown values filter case-insensitively, missing fields by their placeholder; country
    // and referrer host are filters too.
    for (pairs, country, referrer, views) in [
        (&[("browser", "chrome")][..], None, None, 1),
        (&[("browser", "FIREFOX")][..], None, None, 7),
        (&[("deviceType", "(unknown)")][..], None, None, 0),
        (&[("utmSource", "(NONE)")][..], None, None, 0),
        (&[][..], Some("fr"), None, 8),
        (&[][..], Some("(unknown)"), None, 0),
        (&[][..], None, Some("REF.example"), 8),
        (
            &[("browser", "chrome")][..],
            Some("FR"),
            Some("ref.example"),
            1,
        ),
        (&[][..], None, Some("(direct)"), 0),
    ] {
        let mut f = segment(pairs);
        f.country = country.map(str::to_string);
        f.referrer = referrer.map(str::to_string);
        assert_eq!(
            report(f).await.total_views,
            views,
            "{pairs:?} {country:?} {referrer:?}"
        );
    }
    // A path prefix also finds absolute URLs (their path), a full-URL prefix only those URLs.
    let later = t0 + 10 * day;
    stores
        .events
        .write(&[batch(
            p.id,
            Docs::Pageviews(vec![
                pageview("https://shop.example/blog/x?y=1", later),
                {
                    let mut v = pageview("https://shop.example/about", later + 1);
                    v.enrichment.country = None;
                    v.referrer = None;
                    v
                },
                pageview("/blog/z", later + 2),
            ]),
        )])
        .await
        .unwrap();
    let around = TimeRange {
        start_ms: later - day,
        end_ms: later + day,
    };
    let views_of = async |f: PageViewFilters| {
        stores
            .stats
            .pageviews_report(p.id, around, &f)
            .await
            .unwrap()
            .total_views
    };
    assert_eq!(views_of(prefix("/blog/")).await, 2);
    assert_eq!(views_of(prefix("https://shop.example/")).await, 2);
    assert_eq!(views_of(prefix("/about")).await, 1);
    let direct = PageViewFilters {
        referrer: Some("(Direct)".into()),
        country: Some("(unknown)".into()),
        ..Default::default()
    };
    assert_eq!(views_of(direct).await, 1);

    let empty = TimeRange {
        start_ms: t0 + day,
        end_ms: t0 + 2 * day,
    };
    assert_eq!(
        stores
            .stats
            .pageviews_report(p.id, empty, &PageViewFilters::default())
            .await
            .unwrap(),
        Default::default()
    );
    assert_eq!(
        stores
            .stats
            .pageviews_report(DocId::new(), range, &PageViewFilters::default())
            .await
            .unwrap(),
        Default::default(),
        "unknown project"
    );
}

/// The events report and detail (reference §4.4) on a hand-checked fixture: name and segment
/// filters (exact string matches, missing clientId), ties, paging edges, exact percentiles.
/// Property check of the analytics engine: on random page views (near now, so ranges cross
/// days, hours, 5-minute slots, the open slot and raw edges), the page-views report and the
/// dashboard summary equal a naive count of the same documents, for random ranges, unfiltered
/// (rollups) and filtered (a scan), before and after late writes into built rollups.
/// Visits (by `sessionId`) on the dashboard: sessions crossing hours and days, page views
/// without a session, one-page visits; unfiltered (rollups and raw edges), filtered (one scan
/// of both periods) and by entry and exit page, each against a naive count of the documents.
pub(crate) async fn dashboard_visits_follow_session_ids(stores: &Stores) {
    use crate::domain::analytics::{PageViewFilters, TimeRange, VisitsSummary, same_page};
    use crate::domain::timestamp::now_ms;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::collections::HashMap;

    let p = new_project(stores, "Visits").await;
    let mut rng = StdRng::seed_from_u64(16);
    let now = now_ms();
    let hour = 3_600_000;
    let urls = ["/", "/a", "/b", "/c"];
    let browsers = ["Chrome", "Firefox"];
    let mut views = Vec::new();
    for s in 0..300 {
        // Each session lives within two hours somewhere in the last four days: many cross an
        // hour, some a day, some the two periods' boundary.
        let start = now - rng.random_range(0..4 * 24 * hour);
        let n = if s % 3 == 0 {
            1
        } else {
            rng.random_range(2..6)
        };
        // Some sessions are read slowly: views up to two hours apart (several visits).
        let spread = if s % 4 == 1 { 2 * hour } else { hour / 2 };
        for _ in 0..n {
            let mut v = pageview(
                urls[rng.random_range(0..urls.len())],
                (start + rng.random_range(0..spread)).min(now),
            );
            v.session_id = Some(format!("s{s}"));
            v.browser = Some(browsers[rng.random_range(0..2)].into());
            views.push(v);
        }
    }
    for i in 0..15 {
        let mut v = pageview("/a", now - i * 5 * hour);
        v.session_id = None;
        views.push(v);
    }
    stores
        .events
        .write(&[batch(p.id, Docs::Pageviews(views.clone()))])
        .await
        .unwrap();

    // Naive: a visit is a run of one session's page views (by time, then URL) none more than
    // 30 minutes after the one before; (first, last, views) per visit of the kept page views.
    type Visit = ((i64, String), (i64, String), u64);
    let visits_of = |kept: &[&PageView]| -> Vec<(String, Visit)> {
        let mut by_session: HashMap<String, Vec<(i64, String)>> = HashMap::new();
        for v in kept {
            if let Some(s) = &v.session_id {
                by_session
                    .entry(s.clone())
                    .or_default()
                    .push((v.timestamp, v.url.clone()));
            }
        }
        let mut out = Vec::new();
        for (s, mut at) in by_session {
            at.sort();
            let mut visit: Option<Visit> = None;
            for a in at {
                visit = match visit {
                    Some((first, last, n)) if a.0 - last.0 <= 30 * 60_000 => {
                        Some((first, a, n + 1))
                    }
                    Some(done) => {
                        out.push((s.clone(), done));
                        Some((a.clone(), a, 1))
                    }
                    None => Some((a.clone(), a, 1)),
                };
            }
            out.extend(visit.map(|v| (s.clone(), v)));
        }
        out
    };
    let naive = |range: TimeRange, keep: &dyn Fn(&PageView) -> bool| {
        let in_range: Vec<&PageView> = views
            .iter()
            .filter(|v| (range.start_ms..=range.end_ms).contains(&v.timestamp))
            .collect();
        let visits = visits_of(&in_range);
        let kept: Vec<&PageView> = in_range.iter().copied().filter(|v| keep(v)).collect();
        let out = visits_of(&kept);
        let n = out.len() as u64;
        let bounces = out.iter().filter(|v| v.1.2 == 1).count() as u64;
        let in_visits: u64 = out.iter().map(|v| v.1.2).sum();
        let duration: i64 = out.iter().map(|v| v.1.1.0 - v.1.0.0).sum();
        let per = |x: f64| (n > 0).then(|| x / n as f64);
        let summary = VisitsSummary {
            visits: n,
            bounces,
            bounce_rate: per(bounces as f64 * 100.0),
            avg_duration_ms: per(duration as f64),
            views_per_visit: per(in_visits as f64),
            views_without_session: kept.len() as u64 - in_visits,
        };
        (summary, visits)
    };
    let range = TimeRange {
        start_ms: now - 2 * 24 * hour,
        end_ms: now,
    };
    let before = range.previous();
    let all = |_: &PageView| true;
    for round in 0..2 {
        // Twice: built from raw rows, then from the stored rollups.
        let f = stores
            .stats
            .pageview_figures(
                p.id,
                range,
                Some(before),
                &PageViewFilters::default(),
                5,
                200,
            )
            .await
            .unwrap();
        let (want, sessions) = naive(range, &all);
        assert!(want.visits > 20 && want.bounces > 0, "{want:?}");
        assert_eq!(f.visits, want, "round {round}");
        assert_eq!(f.previous.as_ref().unwrap().1, naive(before, &all).0);
        let mut entries: HashMap<&str, u64> = HashMap::new();
        for (_, v) in &sessions {
            *entries.entry(v.0.1.as_str()).or_default() += 1;
        }
        let shown: HashMap<&str, u64> = (f.breakdowns.entry_page.iter())
            .map(|r| (r.value.as_str(), r.count))
            .collect();
        assert_eq!(shown, entries);
        assert_eq!(
            f.breakdowns.exit_page.iter().map(|r| r.count).sum::<u64>(),
            want.visits
        );
        stores.stats.rollups_settled().await;
    }

    // A page-view filter: the visits of the matching page views, both periods in one scan.
    let chrome = PageViewFilters {
        segment: crate::domain::segment::SegmentFilters {
            browser: Some("chrome".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let is_chrome = |v: &PageView| v.browser.as_deref() == Some("Chrome");
    let f = stores
        .stats
        .pageview_figures(p.id, range, Some(before), &chrome, 5, 200)
        .await
        .unwrap();
    assert_eq!(f.visits, naive(range, &is_chrome).0);
    assert_eq!(f.previous.unwrap().1, naive(before, &is_chrome).0);

    // Entry and exit page: the page views of the visits entering (leaving) there.
    for (entry, exit) in [
        (Some("/a"), None),
        (None, Some("/b")),
        (Some("/"), Some("/c")),
    ] {
        let (_, sessions) = naive(range, &all);
        let kept = |v: &PageView| {
            v.session_id.as_deref().is_some_and(|s| {
                sessions.iter().any(|(id, visit)| {
                    id == s
                        && (visit.0.0..=visit.1.0).contains(&v.timestamp)
                        && entry.is_none_or(|e| same_page(&visit.0.1, e))
                        && exit.is_none_or(|e| same_page(&visit.1.1, e))
                })
            })
        };
        let filters = PageViewFilters {
            entry_page: entry.map(str::to_string),
            exit_page: exit.map(str::to_string),
            ..Default::default()
        };
        let f = stores
            .stats
            .pageview_figures(p.id, range, None, &filters, 5, 200)
            .await
            .unwrap();
        let (want, _) = naive(range, &kept);
        assert_eq!(f.visits, want, "{entry:?} {exit:?}");
        let views = views
            .iter()
            .filter(|v| (range.start_ms..=range.end_ms).contains(&v.timestamp) && kept(v))
            .count() as u64;
        assert_eq!(f.summary.total_views, views);
        if let Some(e) = entry {
            assert!(f.breakdowns.entry_page.iter().all(|r| r.value == e));
        }
    }
    // Unknown project: empty figures.
    let none = stores
        .stats
        .pageview_figures(DocId::new(), range, Some(before), &chrome, 5, 200)
        .await
        .unwrap();
    assert_eq!(none.visits.visits, 0);
}

/// The dashboard under one segment filter is answered from the rollups' `Segments` part
/// (totals, chart days, pages, breakdowns, visits, entry and exit pages, the previous period);
/// its figures equal those of a scan of the same page views (the same filter with a URL prefix
/// every page view has, which the rollups cannot answer), for every segment dimension, built
/// from raw rows, then from stored rollups, and after a late write into a built bucket. Where
/// two stored values differ only by case, both are counted (a scan then answers the visits).
pub(crate) async fn dashboard_segment_figures_equal_the_scan(stores: &Stores) {
    use crate::domain::analytics::{PageViewFilters, TimeRange};
    use crate::domain::segment::SegmentFilters;
    use crate::domain::timestamp::now_ms;
    use rand::{Rng, SeedableRng, rngs::StdRng};

    let p = new_project(stores, "Segments").await;
    let mut rng = StdRng::seed_from_u64(23);
    let now = now_ms();
    let hour = 3_600_000;
    let urls = ["/", "/a", "/b", "/c"];
    let browsers = ["Chrome", "Firefox", "Safari"];
    // "windows" beside "Windows": one filter value, two stored values.
    let systems = ["Linux", "Windows", "windows"];
    let countries = [Some("FR"), Some("DE"), None];
    let sources = [Some("news"), Some("ads"), None];
    let devices = [DeviceType::Mobile, DeviceType::Desktop];
    let mut views = Vec::new();
    let mut write = |views: &mut Vec<PageView>, sessions: std::ops::Range<usize>| {
        for s in sessions {
            let start = now - rng.random_range(0..4 * 24 * hour);
            let n = rng.random_range(1..6);
            let browser = browsers[rng.random_range(0..browsers.len())];
            for _ in 0..n {
                let mut v = pageview(
                    urls[rng.random_range(0..urls.len())],
                    (start + rng.random_range(0..hour)).min(now),
                );
                v.session_id = (s % 7 != 0).then(|| format!("s{s}"));
                v.client_id = Some(format!("c{}", s % 90));
                v.browser = Some(browser.into());
                v.os = Some(systems[rng.random_range(0..systems.len())].into());
                v.enrichment.country = countries[rng.random_range(0..3)].map(str::to_string);
                v.utm_source = sources[rng.random_range(0..3)].map(str::to_string);
                v.device_type = Some(devices[rng.random_range(0..2)]);
                views.push(v);
            }
        }
    };
    write(&mut views, 0..250);
    stores
        .events
        .write(&[batch(p.id, Docs::Pageviews(views.clone()))])
        .await
        .unwrap();
    let range = TimeRange {
        start_ms: now - 2 * 24 * hour,
        end_ms: now,
    };
    let before = range.previous();
    let filters = [
        ("browser", "chrome"),
        ("browser", "Safari"),
        ("os", "Linux"),
        ("os", "WINDOWS"),
        ("country", "fr"),
        ("utm_source", "news"),
        ("deviceType", "mobile"),
    ];
    let one = |name: &str, value: &str| {
        let mut f = PageViewFilters {
            segment: SegmentFilters::from_params([(name, value)]),
            ..Default::default()
        };
        if name == "country" {
            f.country = Some(value.into());
        }
        f
    };
    for round in 0..3 {
        if round == 2 {
            // A late write into buckets already built and stored.
            let mut late = Vec::new();
            write(&mut late, 250..280);
            stores
                .events
                .write(&[batch(p.id, Docs::Pageviews(late))])
                .await
                .unwrap();
        }
        for (name, value) in filters {
            let segment = one(name, value);
            // Every page view's URL starts with "/": the same page views, read by a scan.
            let scanned = PageViewFilters {
                url_prefix: Some("/".into()),
                ..segment.clone()
            };
            let figures = |f: PageViewFilters| async move {
                stores
                    .stats
                    .pageview_figures(p.id, range, Some(before), &f, 5, 200)
                    .await
                    .unwrap()
            };
            use crate::analytics::engine::answers_from_segments;
            assert!(answers_from_segments(&segment), "{name}={value}");
            assert!(!answers_from_segments(&scanned), "{name}={value}");
            let (from_rollups, from_scan) = (figures(segment).await, figures(scanned).await);
            assert!(from_scan.summary.total_views > 0, "{name}={value}");
            assert!(from_scan.visits.visits > 0, "{name}={value}");
            assert_eq!(from_rollups, from_scan, "round {round}: {name}={value}");
        }
        stores.stats.rollups_settled().await;
    }
}

pub(crate) async fn pageviews_report_matches_a_naive_count(stores: &Stores) {
    use crate::domain::analytics::{
        DayCount, PageStats, PageViewFilters, PageViewsReport, REPORT_TOP, TimeRange, utc_day,
    };
    use crate::domain::timestamp::now_ms;
    use rand::{Rng, SeedableRng, rngs::StdRng};
    use std::collections::{BTreeMap, HashMap, HashSet};

    let p = new_project(stores, "Naive").await;
    let mut rng = StdRng::seed_from_u64(12);
    let now = now_ms();
    let span = 3 * 86_400_000;
    let urls = ["/", "/a", "/a/b", "/b%", "/c_d", "/A"];
    let browsers = ["Chrome", "Firefox", "Safari"];
    let random_views = |n: usize, rng: &mut StdRng| -> Vec<PageView> {
        (0..n)
            .map(|_| {
                let mut v = pageview(
                    urls[rng.random_range(0..urls.len())],
                    now - rng.random_range(0..span),
                );
                v.client_id = match rng.random_range(0..40) {
                    0..5 => None,
                    c => Some(format!("c{c}")),
                };
                v.browser = Some(browsers[rng.random_range(0..browsers.len())].into());
                v.device_type = Some(if rng.random_bool(0.5) {
                    DeviceType::Desktop
                } else {
                    DeviceType::Mobile
                });
                v
            })
            .collect()
    };
    let mut all = random_views(400, &mut rng);
    stores
        .events
        .write(&[batch(p.id, Docs::Pageviews(all.clone()))])
        .await
        .unwrap();

    let naive = |views: &[PageView], range: TimeRange, f: &PageViewFilters| -> PageViewsReport {
        let kept: Vec<&PageView> = views
            .iter()
            .filter(|v| v.timestamp >= range.start_ms && v.timestamp <= range.end_ms)
            .filter(|v| f.device_type.is_none() || v.device_type == f.device_type)
            .filter(|v| {
                f.url_prefix
                    .as_ref()
                    .is_none_or(|pre| v.url.starts_with(pre.as_str()))
            })
            .filter(|v| f.segment.browser.is_none() || v.browser == f.segment.browser)
            .collect();
        let mut days: BTreeMap<String, u64> = BTreeMap::new();
        let mut pages: HashMap<&str, (u64, HashSet<Option<&str>>)> = HashMap::new();
        let mut visitors = HashSet::new();
        for v in &kept {
            *days.entry(utc_day(v.timestamp)).or_default() += 1;
            let page = pages.entry(v.url.as_str()).or_default();
            page.0 += 1;
            page.1.insert(v.client_id.as_deref());
            visitors.insert(v.client_id.as_deref());
        }
        let mut top_pages: Vec<PageStats> = pages
            .into_iter()
            .map(|(url, (views, who))| PageStats {
                url: url.into(),
                views,
                unique_visitors: who.len() as u64,
            })
            .collect();
        top_pages.sort_by(|a, b| b.views.cmp(&a.views).then_with(|| a.url.cmp(&b.url)));
        top_pages.truncate(REPORT_TOP);
        PageViewsReport {
            total_views: kept.len() as u64,
            unique_visitors: visitors.len() as u64,
            views_by_day: days
                .into_iter()
                .map(|(date, count)| DayCount { date, count })
                .collect(),
            top_pages,
        }
    };
    let filters = {
        let chrome = PageViewFilters {
            segment: crate::domain::segment::SegmentFilters {
                browser: Some("Chrome".into()),
                ..Default::default()
            },
            ..Default::default()
        };
        vec![
            PageViewFilters::default(),
            chrome.clone(),
            PageViewFilters {
                url_prefix: Some("/a".into()),
                ..Default::default()
            },
            PageViewFilters {
                device_type: Some(DeviceType::Desktop),
                ..chrome
            },
            // One segment dimension each: answered from the rollups' `Segments` part.
            PageViewFilters {
                device_type: Some(DeviceType::Mobile),
                ..Default::default()
            },
            PageViewFilters {
                segment: crate::domain::segment::SegmentFilters {
                    browser: Some("Opera".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        ]
    };
    // The whole span's first read builds more than a chunked build's threshold (day by day,
    // stored as it goes); the smaller ranges and the rebuilds after late writes build in one
    // scan stored in the background. Both must answer the naive figures.
    assert!(span / 3_600_000 > crate::analytics::engine::CHUNKED_BUILD_HOURS as i64);
    let mut ranges = vec![
        TimeRange {
            start_ms: now - span,
            end_ms: now,
        },
        TimeRange {
            start_ms: now - 7 * 60_000,
            end_ms: now,
        },
    ];
    for _ in 0..5 {
        let a = now - rng.random_range(0..span);
        let b = now - rng.random_range(0..span);
        ranges.push(TimeRange {
            start_ms: a.min(b),
            end_ms: a.max(b),
        });
    }
    for round in 0..2 {
        for range in &ranges {
            for f in &filters {
                let got = stores
                    .stats
                    .pageviews_report(p.id, *range, f)
                    .await
                    .unwrap();
                assert_eq!(
                    got,
                    naive(&all, *range, f),
                    "round {round}, {range:?}, {f:?}"
                );
            }
            let summary = stores
                .stats
                .pageviews_summary(p.id, *range, REPORT_TOP)
                .await
                .unwrap();
            let want = naive(&all, *range, &PageViewFilters::default());
            assert_eq!(
                (summary.total_views, summary.unique_visitors),
                (want.total_views, want.unique_visitors),
                "summary, round {round}, {range:?}"
            );
        }
        // Late writes into hours and days whose rollups the first round built.
        let late = random_views(60, &mut rng);
        stores
            .events
            .write(&[batch(p.id, Docs::Pageviews(late.clone()))])
            .await
            .unwrap();
        all.extend(late);
    }
}

pub(crate) async fn events_reports(stores: &Stores) {
    use crate::domain::{
        analytics::{
            DayCount, DurationSummary, EventFilters, Pagination, PropertyKey, RecentPaging,
            TimeRange, TimedEvent, TopEvent,
        },
        segment::SegmentFilters,
        timestamp::to_iso,
    };
    let p = new_project(stores, "Events report").await;
    let day = 86_400_000;
    let t0 = 1_706_702_400_000; // 2024-01-31T12:00:00Z
    let range = TimeRange {
        start_ms: t0 - 2 * day,
        end_ms: t0,
    };
    let ev = |name: &str, ts: i64, duration: Option<f64>, client: Option<&str>, properties| Event {
        duration_ms: duration,
        client_id: client.map(str::to_string),
        properties,
        ..event(name, ts)
    };
    stores
        .events
        .write(&[batch(
            p.id,
            Docs::Events(vec![
                Event {
                    session_id: Some("s1".into()),
                    ..ev(
                        "signup",
                        t0,
                        None,
                        Some("c1"),
                        json!({"plan": "pro", "userId": "u1"}),
                    )
                },
                ev(
                    "signup",
                    t0 - 10,
                    None,
                    Some("c2"),
                    json!({"plan": "free", "userId": "u2"}),
                ),
                ev("signup", t0 - day, None, None, json!({"plan": "pro"})),
                ev(
                    "$click",
                    t0 - 20,
                    None,
                    Some("c1"),
                    json!({"tag": "button", "n": 3}),
                ),
                ev(
                    "$click",
                    t0 - 30,
                    None,
                    Some("c1"),
                    json!({"tag": "a", "n": "3"}),
                ),
                ev(
                    "$click",
                    t0 - day - 5,
                    None,
                    Some("c3"),
                    json!({"tag": "button"}),
                ),
                ev(
                    "search",
                    t0 - 40,
                    Some(10.0),
                    Some("c1"),
                    json!({"q": "shoes"}),
                ),
                ev(
                    "search",
                    t0 - 50,
                    Some(30.0),
                    Some("c2"),
                    json!({"q": "hats"}),
                ),
                ev(
                    "search",
                    t0 - 60,
                    Some(20.0),
                    Some("c1"),
                    json!({"q": "shoes"}),
                ),
                ev("search", t0 - 70, Some(40.0), Some("c1"), json!({})),
                ev(
                    "load",
                    t0 - 80,
                    Some(100.0),
                    Some("c2"),
                    json!({"page": {"id": 1}}),
                ),
                ev(
                    "load",
                    t0 - 90,
                    Some(5.0),
                    Some("c2"),
                    json!({"page": {"id": 2}}),
                ),
                ev("compute", t0 - 100, Some(30.0), None, json!({})),
                ev("compute", t0 - 110, Some(30.0), None, json!({})),
                ev("old", t0 - 3 * day, Some(999.0), Some("c1"), json!({})),
            ]),
        )])
        .await
        .unwrap();
    let report = async |name: Option<&str>, pairs: &[(&str, &str)], paging: RecentPaging| {
        let filters = EventFilters {
            event_name: name.map(str::to_string),
            segment: SegmentFilters::from_params(pairs.iter().copied()),
        };
        stores
            .stats
            .events_report(p.id, range, &filters, paging)
            .await
            .unwrap()
    };
    let top = |name: &str, count, ts: i64| TopEvent {
        event_name: name.into(),
        count,
        most_recent_timestamp: to_iso(ts),
    };
    let names = |r: &crate::domain::analytics::EventsReport| {
        r.recent_occurrences
            .iter()
            .map(|o| o.event_name.clone())
            .collect::<Vec<_>>()
    };

    let all = report(None, &[], RecentPaging::default()).await;
    assert_eq!(all.total_events, 14);
    assert_eq!(
        all.events_by_day,
        vec![
            DayCount {
                date: "2024-01-30".into(),
                count: 2
            },
            DayCount {
                date: "2024-01-31".into(),
                count: 12
            }
        ]
    );
    assert_eq!(
        all.unique_event_names,
        vec!["$click", "compute", "load", "search", "signup"]
    );
    assert_eq!(
        all.top_events,
        vec![
            top("search", 4, t0 - 40),
            top("signup", 3, t0),
            top("$click", 3, t0 - 20),
            top("load", 2, t0 - 80),
            top("compute", 2, t0 - 100),
        ],
        "by count, ties by the most recent occurrence"
    );
    assert_eq!(
        all.top_events[1].most_recent_timestamp,
        "2024-01-31T12:00:00.000Z"
    );
    let timed = |name: &str, count, avg, max, p50, p95| TimedEvent {
        event_name: name.into(),
        count,
        avg_ms: avg,
        max_ms: max,
        p50_ms: Some(p50),
        p95_ms: Some(p95),
    };
    assert_eq!(
        all.timed_events,
        vec![
            timed("compute", 2, 30.0, 30.0, 30.0, 30.0),
            timed("search", 4, 25.0, 40.0, 20.0, 30.0),
            timed("load", 2, 52.5, 100.0, 5.0, 5.0),
        ],
        "by p95, then average, then max; lower nearest rank of [10,20,30,40] is 20 / 30"
    );
    assert_eq!(
        all.recent_pagination,
        Pagination {
            page: 1,
            limit: 10,
            total: 14,
            total_pages: 2
        }
    );
    assert_eq!(all.recent_occurrences.len(), 10);
    let first = &all.recent_occurrences[0];
    assert_eq!(
        (
            first.event_name.as_str(),
            first.timestamp.as_str(),
            first.session_id.as_deref(),
            first.duration_ms
        ),
        ("signup", "2024-01-31T12:00:00.000Z", Some("s1"), None)
    );
    assert_eq!(first.properties, json!({"plan": "pro", "userId": "u1"}));
    assert_eq!(first.id.len(), 24);
    assert_ne!(first.id, all.recent_occurrences[1].id);
    assert_eq!(all.recent_occurrences[4].duration_ms, Some(10.0));

    let page3 = report(None, &[], RecentPaging { page: 3, limit: 5 }).await;
    assert_eq!(
        names(&page3),
        vec!["compute", "compute", "signup", "$click"],
        "the last, partial page, newest first"
    );
    assert_eq!(page3.recent_pagination.total_pages, 3);
    let past = report(None, &[], RecentPaging { page: 4, limit: 5 }).await;
    assert!(past.recent_occurrences.is_empty(), "past the last page");
    assert_eq!(
        past.recent_pagination,
        Pagination {
            page: 4,
            limit: 5,
            total: 14,
            total_pages: 3
        }
    );
    let one = report(None, &[], RecentPaging { page: 2, limit: 1 }).await;
    assert_eq!(names(&one), vec!["signup"]);
    assert_eq!(one.recent_occurrences[0].timestamp, to_iso(t0 - 10));

    let search = report(Some("search"), &[], RecentPaging::default()).await;
    assert_eq!(search.total_events, 4);
    assert_eq!(
        search.unique_event_names, all.unique_event_names,
        "unique names ignore the event-name filter"
    );
    assert_eq!(search.top_events, vec![top("search", 4, t0 - 40)]);
    assert_eq!(names(&search), vec!["search"; 4]);
    assert_eq!(search.timed_events.len(), 1);

    let c1 = report(None, &[("clientId", "c1")], RecentPaging::default()).await;
    assert_eq!(
        c1.total_events, 6,
        "events without a clientId never match a clientId filter"
    );
    assert_eq!(c1.unique_event_names, vec!["$click", "search", "signup"]);
    assert_eq!(
        c1.timed_events,
        vec![timed("search", 3, 70.0 / 3.0, 40.0, 20.0, 20.0)]
    );
    let u1 = report(None, &[("userId", "u1")], RecentPaging::default()).await;
    assert_eq!((u1.total_events, names(&u1)), (1, vec!["signup".into()]));
    let n = report(
        None,
        &[("metaKey", "n"), ("metaValue", "3")],
        RecentPaging::default(),
    )
    .await;
    assert_eq!(
        n.recent_occurrences
            .iter()
            .map(|o| o.properties.clone())
            .collect::<Vec<_>>(),
        vec![json!({"tag": "a", "n": "3"})],
        "exact string match: the number 3 is not \"3\""
    );
    let both = report(
        None,
        &[("client_id", "c1"), ("meta", r#"{"tag": "button"}"#)],
        RecentPaging::default(),
    )
    .await;
    assert_eq!(both.total_events, 1, "filters combine");
    assert_eq!(
        report(Some("nope"), &[], RecentPaging::default())
            .await
            .total_events,
        0
    );

    // Detail of one name.
    let detail = async |name: &str, pairs: &[(&str, &str)]| {
        stores
            .stats
            .event_detail(
                p.id,
                range,
                name,
                &SegmentFilters::from_params(pairs.iter().copied()),
            )
            .await
            .unwrap()
    };
    let key = |k: &str, samples: Vec<serde_json::Value>| PropertyKey {
        key: k.into(),
        sample_values: samples,
    };
    let click = detail("$click", &[]).await;
    assert_eq!(click.occurrences.len(), 3);
    assert_eq!(click.occurrences[0]["eventName"], "$click");
    assert_eq!(
        click.occurrences[0]["properties"],
        json!({"tag": "button", "n": 3})
    );
    assert_eq!(click.occurrences[0]["clientId"], "c1");
    assert_eq!(click.occurrences[0]["timestamp"], to_iso(t0 - 20).as_str());
    assert_eq!(
        click.occurrences[2]["timestamp"],
        to_iso(t0 - day - 5).as_str()
    );
    assert_eq!(click.occurrences[0]["_id"].as_str().map(str::len), Some(24));
    assert_eq!(
        click.property_schema,
        vec![
            key("n", vec![json!(3), json!("3")]),
            key("tag", vec![json!("button"), json!("a")]),
        ],
        "keys sorted, distinct samples (typed), most recent first"
    );
    assert_eq!(
        click.events_by_day,
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
    assert_eq!(click.duration_summary, DurationSummary::default());
    let s = detail("search", &[]).await;
    assert_eq!(
        s.property_schema,
        vec![key("q", vec![json!("shoes"), json!("hats")])]
    );
    assert_eq!(
        s.duration_summary,
        DurationSummary {
            count: 4,
            avg_ms: Some(25.0),
            p50_ms: Some(20.0),
            p95_ms: Some(30.0),
            max_ms: Some(40.0),
            implausible: 0
        }
    );
    assert_eq!(
        detail("search", &[("clientId", "c2")])
            .await
            .duration_summary,
        DurationSummary {
            count: 1,
            avg_ms: Some(30.0),
            p50_ms: Some(30.0),
            p95_ms: Some(30.0),
            max_ms: Some(30.0),
            implausible: 0
        },
        "one value"
    );
    assert_eq!(
        detail("load", &[]).await.property_schema,
        vec![key("page", vec![json!({"id": 1}), json!({"id": 2})])]
    );

    // At most five samples per key; other projects never leak in.
    let other = new_project(stores, "Many values").await;
    stores
        .events
        .write(&[batch(
            other.id,
            Docs::Events(
                (0..7)
                    .map(|i| ev("many", t0 - 100 * i, None, None, json!({"v": i})))
                    .collect(),
            ),
        )])
        .await
        .unwrap();
    let many = stores
        .stats
        .event_detail(other.id, range, "many", &SegmentFilters::default())
        .await
        .unwrap();
    assert_eq!(
        many.property_schema,
        vec![key("v", (0..5).map(|i| json!(i)).collect())]
    );
    assert_eq!(detail("many", &[]).await.occurrences.len(), 0);
    assert_eq!(
        report(None, &[], RecentPaging::default())
            .await
            .total_events,
        14
    );

    // An empty range and an unknown project give empty reports.
    let empty = TimeRange {
        start_ms: t0 + day,
        end_ms: t0 + 2 * day,
    };
    let none = stores
        .stats
        .events_report(
            p.id,
            empty,
            &EventFilters::default(),
            RecentPaging::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            none.total_events,
            none.unique_event_names.len(),
            none.top_events.len(),
            none.recent_occurrences.len(),
            none.timed_events.len(),
            none.recent_pagination.total_pages
        ),
        (0, 0, 0, 0, 0, 1)
    );
    let unknown = stores
        .stats
        .events_report(
            DocId::new(),
            range,
            &EventFilters::default(),
            RecentPaging::default(),
        )
        .await
        .unwrap();
    assert_eq!(unknown.total_events, 0);
    assert_eq!(unknown.recent_pagination.total, 0);
    assert_eq!(
        stores
            .stats
            .event_detail(DocId::new(), range, "signup", &SegmentFilters::default())
            .await
            .unwrap(),
        Default::default()
    );
    assert_eq!(
        stores
            .stats
            .event_detail(p.id, empty, "signup", &SegmentFilters::default())
            .await
            .unwrap(),
        Default::default()
    );
}

// ---------------------------------------------------------------------------------------------
/// Values beyond `domain::plausible`'s bounds (a `durationMs` or an LCP of 1e308) are stored as
/// sent, but every average and percentile leaves them out, and each summary counts them.
pub(crate) async fn implausible_values_are_kept_but_left_out_of_figures(stores: &Stores) {
    use crate::domain::analytics::{EventFilters, PerformanceFilters, RecentPaging, TimeRange};
    let p = new_project(stores, "Implausible").await;
    let t0 = 1_706_702_400_000; // 2024-01-31T12:00:00Z
    let range = TimeRange {
        start_ms: t0 - 86_400_000,
        end_ms: t0 + 1,
    };
    let timed = |ms: f64, ts: i64| Event {
        duration_ms: Some(ms),
        ..event("t", ts)
    };
    let vitals = |lcp: f64, cls: f64, ts: i64| PerformanceMetric {
        lcp: Some(lcp),
        cls: Some(cls),
        ttfb: None,
        inp: None,
        ..metric(ts)
    };
    stores
        .events
        .write(&[
            batch(
                p.id,
                Docs::Events(vec![
                    timed(100.0, t0 - 3_000),
                    timed(200.0, t0 - 2_000),
                    timed(1e308, t0 - 1_000),
                    timed(-5.0, t0 - 500),
                ]),
            ),
            batch(
                p.id,
                Docs::Performance(vec![
                    vitals(2_000.0, 0.1, t0 - 3_000),
                    vitals(3_000.0, 0.1, t0 - 2_000),
                    vitals(1e308, 1_000.0, t0 - 1_000),
                    vitals(-100.0, 0.1, t0 - 500),
                ]),
            ),
        ])
        .await
        .unwrap();

    let stored = stores
        .stats
        .recent(p.id, Channel::Events, 10)
        .await
        .unwrap();
    assert!(
        stored
            .iter()
            .any(|d| d["durationMs"].as_f64() == Some(1e308)),
        "kept as sent: {stored:?}"
    );

    let f = stores.stats.performance_summary(p.id, range).await.unwrap();
    assert_eq!(f.total_measurements, 4);
    assert_eq!(
        f.implausible_values, 3,
        "the LCP and the CLS of the third row, the negative LCP of the fourth"
    );
    let lcp = f.of("lcp");
    assert_eq!((lcp.p50, lcp.p95), (Some(2_000.0), Some(2_000.0)));
    assert_eq!(f.of("cls").p95, Some(0.1));
    assert_eq!(f.metrics_by_day.len(), 1);
    assert_eq!(f.metrics_by_day[0].lcp, Some(2_500.0));
    let cls = f.metrics_by_day[0].cls.unwrap();
    assert!((cls - 0.1).abs() < 1e-12, "the average of three 0.1: {cls}");

    let report = stores
        .stats
        .performance_report(p.id, range, &PerformanceFilters::default())
        .await
        .unwrap();
    assert_eq!(report.figures.implausible_values, 3);
    assert_eq!(report.figures.of("lcp").p95, Some(2_000.0));
    assert_eq!(report.figures.metrics_by_day[0].lcp, Some(2_500.0));

    let events = stores
        .stats
        .events_report(
            p.id,
            range,
            &EventFilters::default(),
            RecentPaging::parse(None, None),
        )
        .await
        .unwrap();
    assert_eq!(events.total_events, 4, "counted as events all the same");
    assert_eq!(events.implausible_durations, 2);
    let t = &events.timed_events[0];
    assert_eq!(
        (t.count, t.avg_ms, t.max_ms, t.p95_ms),
        (2, 150.0, 200.0, Some(100.0))
    );

    let detail = stores
        .stats
        .event_detail(p.id, range, "t", &Default::default())
        .await
        .unwrap();
    let d = detail.duration_summary;
    assert_eq!(
        (d.count, d.avg_ms, d.max_ms, d.implausible),
        (2, Some(150.0), Some(200.0), 2)
    );
}

// Errors and performance drill-downs (reference §4.5, §4.6).
// ---------------------------------------------------------------------------------------------

/// 2024-01-31T12:00:00Z and one day, for the drill-down fixtures.
const DIAG_T0: i64 = 1_706_702_400_000;
const DIAG_DAY: i64 = 86_400_000;

fn diag_range() -> crate::domain::analytics::TimeRange {
    crate::domain::analytics::TimeRange {
        start_ms: DIAG_T0 - 2 * DIAG_DAY,
        end_ms: DIAG_T0,
    }
}

/// Errors whose messages differ only in numbers, ids and URLs fall into one group per message
/// shape, with the 1.x fingerprints still stored per message; each group carries its count,
/// earliest message and fingerprint, newest time, pages, browsers and visitors, the same read
/// from rollups (unfiltered, then again once stored) as from a filtered scan.
pub(crate) async fn errors_report_groups_by_signature(stores: &Stores) {
    use crate::domain::analytics::{ErrorFilters, KeyCount};
    let p = new_project(stores, "Error signatures").await;
    let t0 = DIAG_T0;
    let stack = |line: u32| format!("Error\n    at load (https://x.example/app.js:{line}:3)");
    let mut docs = Vec::new();
    for i in 0..12u32 {
        let ts = t0 - DIAG_DAY + i64::from(i) * 60_000;
        let messages = [
            format!("Item {i} not found"),
            format!(
                "Failed to fetch https://api.example/orders/{}?t={i}",
                900 + i
            ),
            format!(
                "Session 3f2b8c1e-0a4d-4c8e-9b1a-2d3e4f5a6b{:02x} expired",
                i
            ),
            format!("Cannot read properties of undefined (reading 'f{i}')"),
        ];
        for (k, m) in messages.into_iter().enumerate() {
            let st = stack(i % 3 + 1);
            docs.push(ErrorEvent {
                error_type: Some(if k == 3 { "TypeError" } else { "Error" }.into()),
                fingerprint: error_fingerprint(&m, Some(&st)),
                stack_trace: Some(st),
                browser: Some(if i % 4 == 0 { "Firefox" } else { "Chrome" }.into()),
                context: Some(json!({"url": format!("https://x.example/p{}?q=1", i % 2)})),
                client_id: Some(format!("c{}", i % 5)),
                user_id: (k == 0 && i == 0).then(|| "u-1".to_string()),
                ..error(&m, ts)
            });
        }
    }
    stores
        .events
        .write(&[batch(p.id, Docs::Errors(docs))])
        .await
        .unwrap();
    let unfiltered = stores
        .stats
        .errors_report(p.id, diag_range(), &ErrorFilters::default(), 50)
        .await
        .unwrap();
    assert_eq!(
        unfiltered.unique_fingerprints, 48,
        "1.x fingerprints stay per message"
    );
    assert_eq!(unfiltered.unique_signatures, 4);
    assert_eq!(unfiltered.signature_groups.len(), 4);
    stores.stats.rollups_settled().await;
    let stored = stores
        .stats
        .errors_report(p.id, diag_range(), &ErrorFilters::default(), 50)
        .await
        .unwrap();
    assert_eq!(stored.signature_groups, unfiltered.signature_groups);
    let items = stored
        .signature_groups
        .iter()
        .find(|g| g.pattern == "Item <n> not found")
        .expect("the item group");
    assert_eq!(items.count, 12);
    assert_eq!(
        items.message, "Item 0 not found",
        "the earliest represents the group"
    );
    assert_eq!(
        items.fingerprint,
        error_fingerprint("Item 0 not found", Some(&stack(1)))
    );
    assert_eq!(items.error_type.as_deref(), Some("Error"));
    assert_eq!(items.frame.as_deref(), Some("load (/app.js)"));
    assert_eq!(items.first_seen, "2024-01-30T12:00:00.000Z");
    assert_eq!(items.last_seen, "2024-01-30T12:11:00.000Z");
    assert_eq!(
        items.pages,
        vec![
            KeyCount {
                key: "/p0".into(),
                count: 6
            },
            KeyCount {
                key: "/p1".into(),
                count: 6
            }
        ]
    );
    assert_eq!(
        items.browsers,
        vec![
            KeyCount {
                key: "Chrome".into(),
                count: 9
            },
            KeyCount {
                key: "Firefox".into(),
                count: 3
            }
        ]
    );
    assert_eq!(
        (items.visitors, items.visitors_more),
        (6, false),
        "c0…c4 and one user id instead of c0"
    );
    let fetches = stored
        .signature_groups
        .iter()
        .find(|g| g.pattern.starts_with("Failed to fetch"))
        .unwrap();
    assert_eq!(
        fetches.pattern,
        "Failed to fetch https://api.example/orders/<id>"
    );
    let firefox = stores
        .stats
        .errors_report(
            p.id,
            diag_range(),
            &ErrorFilters {
                browser: Some("Firefox".into()),
                ..Default::default()
            },
            50,
        )
        .await
        .unwrap();
    assert_eq!(firefox.signature_groups.len(), 4);
    assert!(firefox.signature_groups.iter().all(|g| g.count == 3));
    let keys = |r: &crate::domain::analytics::ErrorsReport| {
        let mut k: Vec<_> = r
            .signature_groups
            .iter()
            .map(|g| g.signature.clone())
            .collect();
        k.sort();
        k
    };
    assert_eq!(
        keys(&firefox),
        keys(&stored),
        "the same signatures from a scan"
    );
}

/// The projects list's read: unique visitors of each of the last 24 hours and of the day so far,
/// in one read, cold (nothing built) and warm, equal to one summary per range, also for ranges
/// made on a clock hours ahead of the store's (a server on a manual clock); a range that cuts a
/// bucket of the union is refused, never answered short.
pub(crate) async fn visitors_of_many_ranges_read_together(stores: &Stores) {
    use crate::domain::analytics::TimeRange;
    const HOUR: i64 = 3_600_000;
    let p = new_project(stores, "Visitors per hour").await;
    let now = crate::domain::timestamp::now_ms();
    let current_hour = now - now.rem_euclid(HOUR);
    let mut views = Vec::new();
    for back in 0..26i64 {
        let start = current_hour - back * HOUR;
        // In every hour the regular "a"; one visitor of that hour only; in every third hour a
        // view without a clientId; within the current hour, only what is already past.
        for (k, client) in [Some("a".to_string()), Some(format!("h{back}")), None]
            .into_iter()
            .enumerate()
        {
            let ts = (start + k as i64 * 60_000).min(now - 1);
            if client.is_none() && back % 3 != 0 {
                continue;
            }
            views.push(PageView {
                client_id: client,
                ..pageview("/hour", ts)
            });
        }
    }
    stores
        .events
        .write(&[batch(p.id, Docs::Pageviews(views))])
        .await
        .unwrap();
    let ranges = TimeRange::hours_and_today(now);
    let cold = stores
        .stats
        .unique_visitors_each(p.id, &ranges)
        .await
        .unwrap();
    stores.stats.rollups_settled().await;
    let mut want = Vec::new();
    for r in &ranges {
        let s = stores.stats.pageviews_summary(p.id, *r, 0).await.unwrap();
        want.push(s.unique_visitors);
    }
    assert_eq!(cold, want, "cold: one read equals one summary per range");
    let hours_today = (now.rem_euclid(24 * HOUR) / HOUR) as usize + 1;
    assert_eq!(want[23], 3, "the current hour: a, h0, anonymous");
    assert!(
        want[24] > hours_today as u64,
        "today: a and each hour's own visitor"
    );
    let warm = stores
        .stats
        .unique_visitors_each(p.id, &ranges)
        .await
        .unwrap();
    assert_eq!(warm, want, "warm: read from the stored rollups");
    // Hours that have not begun on the store's clock are raw edges, cut at every range's ends.
    let ahead = TimeRange::hours_and_today(now + 3 * HOUR + 60_000);
    let mut want_ahead = Vec::new();
    for r in &ahead {
        let s = stores.stats.pageviews_summary(p.id, *r, 0).await.unwrap();
        want_ahead.push(s.unique_visitors);
    }
    assert_eq!(
        stores
            .stats
            .unique_visitors_each(p.id, &ahead)
            .await
            .unwrap(),
        want_ahead,
        "ranges ahead of the store's clock"
    );
    let cut = [
        ranges[0],
        TimeRange {
            start_ms: current_hour - HOUR / 2,
            end_ms: now,
        },
    ];
    assert!(
        stores.stats.unique_visitors_each(p.id, &cut).await.is_err(),
        "a range cutting an hour of the union is refused"
    );
    let other = new_project(stores, "No views").await;
    assert_eq!(
        stores
            .stats
            .unique_visitors_each(other.id, &ranges)
            .await
            .unwrap(),
        vec![0; ranges.len()]
    );
}

/// The dashboard's errors block counts error groups by signature beside 1.x's fingerprints:
/// the summary equals `errors_summary`, the groups equal the errors report's (counts, order,
/// earliest message), `list` cuts only the rows, the same from rollups once stored, and one
/// group's key restricts every figure to that group (an absent key gives zeros).
pub(crate) async fn dashboard_error_figures_count_groups_by_signature(stores: &Stores) {
    use crate::domain::analytics::ErrorFilters;
    let p = new_project(stores, "Dashboard error groups").await;
    let stack = |line: u32| format!("Error\n    at run (https://x.example/main.js:{line}:9)");
    let mut docs = Vec::new();
    // Shape k occurs when i % (k + 1) == 0: 12, 6, 4 and 3 times, each message its own.
    for i in 0..12u32 {
        let ts = DIAG_T0 - DIAG_DAY - 3_600_000 + i64::from(i) * 60_000;
        let messages = [
            format!("Order {} failed", 5000 + i),
            format!("Timeout after {i}ms at https://api.example/v{i}/cart"),
            format!("User 9b2c{i:04x}-aaaa-4bbb-8ccc-0123456789ab not allowed"),
            format!("Cannot read properties of null (reading 'k{i}')"),
        ];
        for (k, m) in messages.into_iter().enumerate() {
            if i % (k as u32 + 1) != 0 {
                continue;
            }
            let st = stack(i % 4 + 1);
            docs.push(ErrorEvent {
                error_type: Some(if k == 3 { "TypeError" } else { "Error" }.into()),
                fingerprint: error_fingerprint(&m, Some(&st)),
                stack_trace: Some(st),
                ..error(&m, ts)
            });
        }
    }
    // Outside the range: counted nowhere.
    docs.push(error("Order 1 failed", DIAG_T0 + DIAG_DAY));
    stores
        .events
        .write(&[batch(p.id, Docs::Errors(docs))])
        .await
        .unwrap();
    let range = diag_range();
    let check = |f: &crate::domain::error_groups::ErrorFigures| {
        assert_eq!(f.summary.total_errors, 25);
        assert_eq!(f.summary.unique_fingerprints, 25, "1.x: one per message");
        assert_eq!(f.unique_signatures, 4, "one group per message shape");
        let counts: Vec<u64> = f.top_groups.iter().map(|g| g.count).collect();
        assert_eq!(counts, [12, 6, 4, 3], "by count");
        assert_eq!(f.top_groups[0].pattern, "Order <n> failed");
        assert_eq!(f.top_groups[0].message, "Order 5000 failed", "the earliest");
    };
    let first = stores
        .stats
        .error_figures(p.id, range, None, 50)
        .await
        .unwrap();
    assert_eq!(
        first.summary,
        stores.stats.errors_summary(p.id, range).await.unwrap(),
        "1.x's figures unchanged"
    );
    let report = stores
        .stats
        .errors_report(p.id, range, &ErrorFilters::default(), 50)
        .await
        .unwrap();
    let from_report: Vec<(String, u64, String)> = (report.signature_groups.iter())
        .map(|g| (g.signature.clone(), g.count, g.message.clone()))
        .collect();
    let from_dashboard: Vec<(String, u64, String)> = (first.top_groups.iter())
        .map(|g| (g.signature.clone(), g.count, g.message.clone()))
        .collect();
    assert_eq!(from_dashboard, from_report, "the errors page's groups");
    assert_eq!(
        first.top_groups[0].last_seen, "2024-01-30T11:11:00.000Z",
        "the newest occurrence"
    );
    stores.stats.rollups_settled().await;
    let stored = stores
        .stats
        .error_figures(p.id, range, None, 50)
        .await
        .unwrap();
    assert_eq!(stored, first, "the same from stored rollups");
    check(&stored);
    let two = stores
        .stats
        .error_figures(p.id, range, None, 2)
        .await
        .unwrap();
    assert_eq!(two.top_groups, stored.top_groups[..2]);
    assert_eq!(two.unique_signatures, 4, "the count is not cut");

    let key = stored.top_groups[1].signature.clone();
    let one = stores
        .stats
        .error_figures(p.id, range, Some(&key), 50)
        .await
        .unwrap();
    assert_eq!(one.summary.total_errors, 6);
    assert_eq!(one.summary.unique_fingerprints, 6);
    assert_eq!(one.unique_signatures, 1);
    assert_eq!(one.top_groups, stored.top_groups[1..2]);
    assert_eq!(one.summary.errors_by_day.len(), 1);
    let none = stores
        .stats
        .error_figures(p.id, range, Some("0000000000000000"), 50)
        .await
        .unwrap();
    assert_eq!(none, Default::default(), "no error of that group");
    assert_eq!(
        stores
            .stats
            .error_figures(DocId::new(), range, None, 50)
            .await
            .unwrap(),
        Default::default(),
        "an unknown project"
    );
}

/// Group states are stored per project and signature, replaced on a second set, and removed
/// when the project's data is cleared or the project is deleted.
pub(crate) async fn error_group_states_per_project(stores: &Stores) {
    use crate::domain::error_groups::{ErrorGroupState, GroupState};
    let a = new_project(stores, "States A").await;
    let b = new_project(stores, "States B").await;
    let user = DocId::new();
    let state = |project: DocId, signature: &str, state: GroupState, at: i64| ErrorGroupState {
        project_id: project,
        signature: signature.into(),
        state,
        updated_at: at,
        updated_by: Some(user),
    };
    assert!(
        stores
            .error_states
            .error_group_states(a.id)
            .await
            .unwrap()
            .is_empty()
    );
    let es = &stores.error_states;
    es.set_error_group_state(&state(a.id, "00000000000000aa", GroupState::Resolved, 1000))
        .await
        .unwrap();
    es.set_error_group_state(&state(a.id, "00000000000000bb", GroupState::Ignored, 2000))
        .await
        .unwrap();
    es.set_error_group_state(&state(b.id, "00000000000000aa", GroupState::Ignored, 3000))
        .await
        .unwrap();
    assert_eq!(
        es.error_group_states(a.id).await.unwrap(),
        vec![
            state(a.id, "00000000000000aa", GroupState::Resolved, 1000),
            state(a.id, "00000000000000bb", GroupState::Ignored, 2000),
        ]
    );
    let reopened = ErrorGroupState {
        updated_by: None,
        ..state(a.id, "00000000000000aa", GroupState::Open, 4000)
    };
    es.set_error_group_state(&reopened).await.unwrap();
    let now = es.error_group_states(a.id).await.unwrap();
    assert_eq!(now.len(), 2, "replaced, not added");
    assert_eq!(now[0], reopened);
    assert_eq!(
        es.error_group_states(b.id).await.unwrap(),
        vec![state(b.id, "00000000000000aa", GroupState::Ignored, 3000)],
        "the other project's state is its own"
    );
    stores.projects.clear_project_data(a.id).await.unwrap();
    assert!(es.error_group_states(a.id).await.unwrap().is_empty());
    assert_eq!(es.error_group_states(b.id).await.unwrap().len(), 1);
    stores.projects.soft_delete_project(b.id).await.unwrap();
    assert!(
        es.error_group_states(b.id).await.unwrap().is_empty(),
        "deleting the project removes its states"
    );
}

/// An error of fingerprint `fp` (set directly, so one group can carry different messages).
fn diag_error(fp: &str, message: &str, browser: Option<&str>, ts: i64) -> ErrorEvent {
    ErrorEvent {
        fingerprint: fp.into(),
        browser: browser.map(str::to_string),
        ..error(message, ts)
    }
}

/// The client and user segment filters find an error by its own `clientId`/`userId` (what the
/// SDK sends, kept beside the error) or by the same key in its `context` (where SuperInsights
/// 1.x looked); `context` itself is stored as sent, and a replaced timestamp is flagged.
pub(crate) async fn error_segments_match_own_ids_or_context(stores: &Stores) {
    use super::SampleQuery;
    use crate::domain::analytics::ErrorFilters;
    use crate::domain::segment::SegmentFilters;
    let p = new_project(stores, "Error segments").await;
    let t0 = DIAG_T0;
    let own = ErrorEvent {
        client_id: Some("c-own".into()),
        user_id: Some("u-own".into()),
        context: Some(json!({"url": "https://x.example/own"})),
        ..diag_error("fp-own", "own ids", None, t0 - 3)
    };
    let mut replaced = ErrorEvent {
        context: Some(json!({"clientId": "c-ctx", "userId": "u-ctx"})),
        ..diag_error("fp-ctx", "context ids", None, t0 - 2)
    };
    replaced.enrichment.timestamp_replaced = true;
    let other = ErrorEvent {
        client_id: Some("c-other".into()),
        context: Some(json!({"clientId": "c-own-not-really"})),
        ..diag_error("fp-other", "other", None, t0 - 1)
    };
    stores
        .events
        .write(&[batch(p.id, Docs::Errors(vec![own, replaced, other]))])
        .await
        .unwrap();
    let total_for = |segment: SegmentFilters| {
        let stats = stores.stats.clone();
        async move {
            let filters = ErrorFilters {
                segment,
                ..Default::default()
            };
            stats
                .errors_report(p.id, diag_range(), &filters, 50)
                .await
                .unwrap()
                .total_errors
        }
    };
    let client = |id: &str| SegmentFilters {
        client_id: Some(id.into()),
        ..Default::default()
    };
    let user = |id: &str| SegmentFilters {
        user_id: Some(id.into()),
        ..Default::default()
    };
    assert_eq!(
        total_for(client("c-own")).await,
        1,
        "the error's own clientId"
    );
    assert_eq!(total_for(client("c-ctx")).await, 1, "context.clientId");
    assert_eq!(total_for(user("u-own")).await, 1, "the error's own userId");
    assert_eq!(total_for(user("u-ctx")).await, 1, "context.userId");
    assert_eq!(total_for(client("nobody")).await, 0);

    let docs = stores
        .ai
        .sample_documents(
            p.id,
            diag_range(),
            &client("c-ctx"),
            &SampleQuery::ErrorsWithFingerprint("fp-ctx".into()),
            5,
        )
        .await
        .unwrap();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        docs[0]["context"],
        json!({"clientId": "c-ctx", "userId": "u-ctx"}),
        "context as sent"
    );
    assert_eq!(docs[0]["timestampReplaced"], json!(true));
    let own = stores
        .ai
        .sample_documents(
            p.id,
            diag_range(),
            &client("c-own"),
            &SampleQuery::ErrorsWithFingerprint("fp-own".into()),
            5,
        )
        .await
        .unwrap();
    assert_eq!(
        (&own[0]["clientId"], &own[0]["userId"]),
        (&json!("c-own"), &json!("u-own"))
    );
    assert!(own[0].get("timestampReplaced").is_none());
}

pub(crate) async fn errors_report_groups_by_fingerprint(stores: &Stores) {
    use crate::domain::analytics::{DayCount, ErrorFilters, ErrorsReport};
    use crate::domain::segment::SegmentFilters;
    let p = new_project(stores, "Errors report").await;
    let (t0, day) = (DIAG_T0, DIAG_DAY);
    let a_first = ErrorEvent {
        os: Some("Linux".into()),
        os_version: Some("6.1".into()),
        device_type: Some("desktop".into()),
        context: Some(json!({"clientId": "c1", "url": "https://x.example/a"})),
        ..diag_error("fp-a", "A first", Some("Firefox"), t0 - day)
    };
    let b_later = ErrorEvent {
        error_type: Some("unhandled_rejection".into()),
        context: Some(json!({"userId": "u1", "release": "1.2"})),
        ..diag_error("fp-b", "B later", Some("Firefox"), t0 - 2000)
    };
    let a_latest = ErrorEvent {
        context: Some(json!({"app": {"version": "7"}})),
        ..diag_error("fp-a", "A latest", Some("Chrome"), t0)
    };
    let c_later = ErrorEvent {
        context: Some(json!({"release": 1.2})),
        ..diag_error("fp-c", "C later", Some("Chrome"), t0 - 1)
    };
    stores
        .events
        .write(&[batch(
            p.id,
            Docs::Errors(vec![
                // Inserted out of time order on purpose: "earliest" is by time, not insertion.
                a_latest,
                diag_error("fp-a", "A later", Some("Chrome"), t0 - 10),
                a_first,
                diag_error("fp-a", "A outside", Some("Edge"), t0 - 3 * day),
                b_later,
                diag_error("fp-b", "B first", Some("Safari"), t0 - day - 5),
                c_later,
                diag_error("fp-c", "C first", Some("Chrome"), t0 - 2),
            ]),
        )])
        .await
        .unwrap();
    let report = |filters: ErrorFilters, top: usize| {
        let stats = stores.stats.clone();
        async move {
            stats
                .errors_report(p.id, diag_range(), &filters, top)
                .await
                .unwrap()
        }
    };

    let all = report(ErrorFilters::default(), 50).await;
    assert_eq!(
        (all.total_errors, all.unique_fingerprints),
        (7, 3),
        "the occurrence before the range is not counted"
    );
    assert_eq!(
        all.errors_by_day,
        vec![
            DayCount {
                date: "2024-01-30".into(),
                count: 2
            },
            DayCount {
                date: "2024-01-31".into(),
                count: 5
            }
        ]
    );
    let groups: Vec<_> = all
        .grouped_errors
        .iter()
        .map(|g| (g.fingerprint.as_str(), g.count, g.message.as_str()))
        .collect();
    assert_eq!(
        groups,
        vec![
            ("fp-a", 3, "A first"),
            ("fp-b", 2, "B first"),
            ("fp-c", 2, "C first")
        ],
        "by count, ties by fingerprint; message of the earliest occurrence in range"
    );
    let a = &all.grouped_errors[0];
    assert_eq!(
        (
            a.browser.as_deref(),
            a.os.as_deref(),
            a.os_version.as_deref(),
            a.device_type.as_deref(),
            a.first_seen.as_str()
        ),
        (
            Some("Firefox"),
            Some("Linux"),
            Some("6.1"),
            Some("desktop"),
            "2024-01-30T12:00:00.000Z"
        ),
        "every descriptive field comes from the earliest occurrence"
    );
    assert_eq!(
        all.grouped_errors[1].browser.as_deref(),
        Some("Safari"),
        "fp-b's earliest is the Safari one"
    );
    assert_eq!(
        report(ErrorFilters::default(), 1)
            .await
            .grouped_errors
            .iter()
            .map(|g| g.fingerprint.as_str())
            .collect::<Vec<_>>(),
        vec!["fp-a"]
    );

    let chrome = report(
        ErrorFilters {
            browser: Some("Chrome".into()),
            ..Default::default()
        },
        50,
    )
    .await;
    assert_eq!(
        (chrome.total_errors, chrome.unique_fingerprints),
        (4, 2),
        "distinct fingerprints honour the browser filter (SuperInsights 1.x said 3 here)"
    );
    let groups: Vec<_> = chrome
        .grouped_errors
        .iter()
        .map(|g| (g.fingerprint.as_str(), g.count, g.message.as_str()))
        .collect();
    assert_eq!(
        groups,
        vec![("fp-a", 2, "A later"), ("fp-c", 2, "C first")],
        "the earliest occurrence among the filtered ones"
    );

    let rejections = report(
        ErrorFilters {
            error_type: Some("unhandled_rejection".into()),
            ..Default::default()
        },
        50,
    )
    .await;
    assert_eq!(rejections.total_errors, 1);
    assert_eq!(rejections.grouped_errors[0].message, "B later");
    assert_eq!(
        rejections.grouped_errors[0].first_seen,
        "2024-01-31T11:59:58.000Z"
    );

    let segment = |s: SegmentFilters| ErrorFilters {
        segment: s,
        ..Default::default()
    };
    let total_for = |s: SegmentFilters| {
        let f = segment(s);
        async move { report(f, 50).await.total_errors }
    };
    assert_eq!(
        total_for(SegmentFilters {
            client_id: Some("c1".into()),
            ..Default::default()
        })
        .await,
        1,
        "clientId is context.clientId"
    );
    assert_eq!(
        total_for(SegmentFilters {
            user_id: Some("u1".into()),
            ..Default::default()
        })
        .await,
        1,
        "userId is context.userId"
    );
    let meta = |k: &str, v: &str| SegmentFilters {
        meta: [(k.to_string(), v.to_string())].into(),
        ..Default::default()
    };
    assert_eq!(
        total_for(meta("release", "1.2")).await,
        1,
        "exact string match: the number 1.2 does not match \"1.2\""
    );
    assert_eq!(
        total_for(meta("app.version", "7")).await,
        1,
        "dotted keys are nested"
    );
    assert_eq!(total_for(meta("release", "9")).await, 0);

    let empty = crate::domain::analytics::TimeRange {
        start_ms: t0 + day,
        end_ms: t0 + 2 * day,
    };
    assert_eq!(
        stores
            .stats
            .errors_report(p.id, empty, &ErrorFilters::default(), 50)
            .await
            .unwrap(),
        ErrorsReport::default()
    );
    assert_eq!(
        stores
            .stats
            .errors_report(DocId::new(), diag_range(), &ErrorFilters::default(), 50)
            .await
            .unwrap(),
        ErrorsReport::default(),
        "unknown project"
    );
}

pub(crate) async fn error_detail_counts_every_occurrence(stores: &Stores) {
    use crate::domain::analytics::DayCount;
    let p = new_project(stores, "Error detail").await;
    let (t0, day) = (DIAG_T0, DIAG_DAY);
    let mut docs: Vec<ErrorEvent> = (0..150)
        .map(|i| {
            diag_error(
                "fp-many",
                &format!("many {i}"),
                Some("Chrome"),
                t0 - i * 1000,
            )
        })
        .collect();
    docs.push(diag_error("fp-many", "too old", None, t0 - 3 * day));
    docs.push(ErrorEvent {
        error_type: Some("unhandled_rejection".into()),
        stack_trace: Some("at g (old.js:9:9)".into()),
        source_file: Some("old.js".into()),
        line_number: Some(9.0),
        column_number: Some(9.0),
        os: Some("Android".into()),
        context: Some(json!({"url": "https://x.example/first"})),
        ..diag_error("fp-two", "two first", Some("Safari"), t0 - day)
    });
    let mut newest = ErrorEvent {
        stack_trace: Some("at <script>alert(1)</script> (app.js:3:4)".into()),
        source_file: Some("app.js".into()),
        line_number: Some(3.0),
        column_number: Some(4.0),
        browser_version: Some("121".into()),
        os: Some("Windows".into()),
        os_version: Some("11".into()),
        device_type: Some("desktop".into()),
        context: Some(json!({"url": "https://x.example/newest", "userAgent": "UA"})),
        ..diag_error("fp-two", "two newest", Some("Firefox"), t0 - 5)
    };
    newest.enrichment.country = Some("FR".into());
    docs.push(newest);
    // One batch write: a single transaction however many documents.
    stores
        .events
        .write(&[batch(p.id, Docs::Errors(docs))])
        .await
        .unwrap();

    let many = stores
        .stats
        .error_detail(p.id, "fp-many", diag_range(), 100)
        .await
        .unwrap();
    assert_eq!(
        many.total_occurrences, 150,
        "the true count, not the 100 listed"
    );
    assert_eq!(many.occurrences.len(), 100);
    assert_eq!(many.occurrences[0].message, "many 0", "newest first");
    assert_eq!(many.occurrences[99].message, "many 99");
    assert_eq!(
        (many.first_seen.as_deref(), many.last_seen.as_deref()),
        (
            Some("2024-01-31T11:57:31.000Z"),
            Some("2024-01-31T12:00:00.000Z")
        ),
        "first seen over all 150 in range, not over the listed ones"
    );
    assert_eq!(
        many.errors_by_day,
        vec![DayCount {
            date: "2024-01-31".into(),
            count: 150
        }]
    );

    let two = stores
        .stats
        .error_detail(p.id, "fp-two", diag_range(), 100)
        .await
        .unwrap();
    assert_eq!(two.total_occurrences, 2);
    assert_eq!(two.fingerprint, "fp-two");
    let latest = two.latest().expect("an occurrence");
    assert_eq!(latest.message, "two newest");
    assert_eq!(latest.error_type.as_deref(), Some("window_error"));
    assert_eq!(
        latest.stack_trace.as_deref(),
        Some("at <script>alert(1)</script> (app.js:3:4)")
    );
    assert_eq!(latest.location().as_deref(), Some("app.js:3:4"));
    assert_eq!(latest.page_url(), Some("https://x.example/newest"));
    assert_eq!(
        (
            latest.browser.as_deref(),
            latest.browser_version.as_deref(),
            latest.os.as_deref(),
            latest.os_version.as_deref(),
            latest.device_type.as_deref(),
            latest.country.as_deref(),
        ),
        (
            Some("Firefox"),
            Some("121"),
            Some("Windows"),
            Some("11"),
            Some("desktop"),
            Some("FR")
        )
    );
    assert_eq!(
        latest.context,
        Some(json!({"url": "https://x.example/newest", "userAgent": "UA"}))
    );
    assert_eq!(two.occurrences[1].message, "two first");
    assert_eq!(
        two.occurrences[1].error_type.as_deref(),
        Some("unhandled_rejection")
    );
    assert_eq!(
        two.errors_by_day,
        vec![
            DayCount {
                date: "2024-01-30".into(),
                count: 1
            },
            DayCount {
                date: "2024-01-31".into(),
                count: 1
            }
        ]
    );
    let limited = stores
        .stats
        .error_detail(p.id, "fp-two", diag_range(), 1)
        .await
        .unwrap();
    assert_eq!(
        (limited.total_occurrences, limited.occurrences.len()),
        (2, 1)
    );

    for (project, fingerprint, what) in [
        (p.id, "fp-unknown", "unknown fingerprint"),
        (DocId::new(), "fp-two", "unknown project"),
    ] {
        let none = stores
            .stats
            .error_detail(project, fingerprint, diag_range(), 100)
            .await
            .unwrap();
        assert_eq!(
            (
                none.total_occurrences,
                none.occurrences.len(),
                none.first_seen,
                none.errors_by_day.len()
            ),
            (0, 0, None, 0),
            "{what}"
        );
        assert_eq!(none.fingerprint, fingerprint);
    }
}

pub(crate) async fn performance_report_filters_and_quality(stores: &Stores) {
    use crate::domain::analytics::PerformanceFilters;
    use crate::domain::segment::SegmentFilters;
    let p = new_project(stores, "Performance report").await;
    let (t0, day) = (DIAG_T0, DIAG_DAY);
    let m = |ts: i64,
             [lcp, cls, fid, ttfb, inp]: [Option<f64>; 5],
             device: &str,
             browser: &str,
             client: &str,
             properties: serde_json::Value| PerformanceMetric {
        lcp,
        cls,
        fid,
        ttfb,
        inp,
        device_type: Some(device.into()),
        browser: Some(browser.into()),
        client_id: Some(client.into()),
        properties,
        ..metric(ts)
    };
    stores
        .events
        .write(&[batch(
            p.id,
            Docs::Performance(vec![
                m(
                    t0,
                    [
                        Some(1000.0),
                        Some(0.01),
                        Some(10.0),
                        Some(100.0),
                        Some(50.0),
                    ],
                    "desktop",
                    "Chrome",
                    "c1",
                    json!({"userId": "u1", "plan": "pro"}),
                ),
                m(
                    t0 - 1,
                    [Some(2000.0), Some(0.2), Some(200.0), Some(900.0), None],
                    "mobile",
                    "Safari",
                    "c2",
                    json!({"plan": "free"}),
                ),
                m(
                    t0 - day,
                    [Some(3000.0), None, None, Some(2000.0), None],
                    "desktop",
                    "Firefox",
                    "c1",
                    json!({"userId": "u2"}),
                ),
                m(
                    t0 - day - 1,
                    [Some(4000.0), Some(0.3), Some(400.0), Some(500.0), None],
                    "mobile",
                    "Chrome",
                    "c3",
                    json!({"plan": "pro", "n": 5}),
                ),
                m(
                    t0 - 3 * day,
                    [
                        Some(9999.0),
                        Some(9.0),
                        Some(999.0),
                        Some(9999.0),
                        Some(999.0),
                    ],
                    "mobile",
                    "Chrome",
                    "c1",
                    json!({"plan": "pro"}),
                ),
            ]),
        )])
        .await
        .unwrap();
    let report = |filters: PerformanceFilters| {
        let stats = stores.stats.clone();
        async move {
            stats
                .performance_report(p.id, diag_range(), &filters)
                .await
                .unwrap()
        }
    };
    let ranks = |r: &crate::domain::analytics::PerformanceReport, metric: &str| {
        let q = r.figures.of(metric);
        (q.p50, q.p75, q.p95)
    };

    let all = report(PerformanceFilters::default()).await;
    assert_eq!(all.figures.total_measurements, 4);
    assert_eq!(
        all.complete_measurements, 3,
        "the third lacks cls and fid; inp does not count"
    );
    assert_eq!(
        ranks(&all, "lcp"),
        (Some(2000.0), Some(3000.0), Some(3000.0)),
        "indexes 1, 2, 2 of four"
    );
    assert_eq!(
        ranks(&all, "cls"),
        (Some(0.2), Some(0.2), Some(0.2)),
        "nulls excluded"
    );
    assert_eq!(ranks(&all, "fid"), (Some(200.0), Some(200.0), Some(200.0)));
    assert_eq!(ranks(&all, "ttfb"), (Some(500.0), Some(900.0), Some(900.0)));
    assert_eq!(
        ranks(&all, "inp"),
        (Some(50.0), Some(50.0), Some(50.0)),
        "one value"
    );
    let score = all.figures.score();
    assert_eq!(
        (
            score.lcp_score,
            score.cls_score,
            score.fid_score,
            score.ttfb_score,
            score.score
        ),
        (67, 33, 50, 90, 73),
        "LCP, CLS, INP (100) and TTFB; FID reported, not counted"
    );
    assert_eq!(score.inp_score, 100);
    let days: Vec<_> = all
        .figures
        .metrics_by_day
        .iter()
        .map(|d| (d.date.as_str(), d.lcp, d.fid, d.ttfb, d.inp))
        .collect();
    assert_eq!(
        days,
        vec![
            ("2024-01-30", Some(3500.0), Some(400.0), Some(1250.0), None),
            (
                "2024-01-31",
                Some(1500.0),
                Some(105.0),
                Some(500.0),
                Some(50.0)
            )
        ]
    );
    assert_eq!(all.figures.metrics_by_day[0].cls, Some(0.3));

    let mobile = report(PerformanceFilters {
        device_type: Some("mobile".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(
        (
            mobile.figures.total_measurements,
            mobile.complete_measurements
        ),
        (2, 2)
    );
    assert_eq!(
        ranks(&mobile, "lcp"),
        (Some(2000.0), Some(2000.0), Some(2000.0)),
        "index 0 of two"
    );
    let chrome = report(PerformanceFilters {
        browser: Some("Chrome".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(chrome.figures.total_measurements, 2);
    assert_eq!(ranks(&chrome, "lcp").0, Some(1000.0));

    let segment = |s: SegmentFilters| PerformanceFilters {
        segment: s,
        ..Default::default()
    };
    let c1 = report(segment(SegmentFilters {
        client_id: Some("c1".into()),
        ..Default::default()
    }))
    .await;
    assert_eq!(
        (c1.figures.total_measurements, c1.complete_measurements),
        (2, 1)
    );
    let u1 = report(segment(SegmentFilters {
        user_id: Some("u1".into()),
        ..Default::default()
    }))
    .await;
    assert_eq!(
        u1.figures.total_measurements, 1,
        "userId is properties.userId"
    );
    let meta = |k: &str, v: &str| SegmentFilters {
        meta: [(k.to_string(), v.to_string())].into(),
        ..Default::default()
    };
    let pro = report(segment(meta("plan", "pro"))).await;
    assert_eq!(pro.figures.total_measurements, 2);
    let numeric = report(segment(meta("n", "5"))).await;
    assert_eq!(
        (numeric.figures.total_measurements, ranks(&numeric, "lcp")),
        (0, (None, None, None)),
        "exact string match: the number 5 does not match \"5\""
    );
    let both = report(PerformanceFilters {
        device_type: Some("mobile".into()),
        segment: meta("plan", "pro"),
        ..Default::default()
    })
    .await;
    assert_eq!(both.figures.total_measurements, 1);
    assert_eq!(
        ranks(&both, "lcp"),
        (Some(4000.0), Some(4000.0), Some(4000.0))
    );

    let empty_range = crate::domain::analytics::TimeRange {
        start_ms: t0 + day,
        end_ms: t0 + 2 * day,
    };
    for (project, range, what) in [
        (p.id, empty_range, "empty range"),
        (DocId::new(), diag_range(), "unknown project"),
    ] {
        let none = stores
            .stats
            .performance_report(project, range, &PerformanceFilters::default())
            .await
            .unwrap();
        assert_eq!(
            (
                none.figures.total_measurements,
                none.complete_measurements,
                none.figures.metrics_by_day.len(),
                none.figures.percentiles.len(),
                ranks(&none, "lcp"),
                none.figures.score().score,
            ),
            (0, 0, 0, 5, (None, None, None), 0),
            "{what}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// AI analysis: presets, runs, samples
// ---------------------------------------------------------------------------------------------

pub async fn ai_presets_and_runs(stores: &Stores) {
    use crate::ai::{
        model::{AiRun, RunOutcome, RunStatus},
        presets::{Preset, PresetFields},
    };
    let owner = DocId::new();
    let other = DocId::new();
    let preset = |owner: DocId, name: &str, visibility: &str, at: i64| Preset {
        id: DocId::new(),
        owner_user_id: owner,
        owner_email: "o@x.test".into(),
        visibility: visibility.into(),
        fields: PresetFields {
            name: name.into(),
            description: "d".into(),
            tags: vec!["t1".into()],
            definition: json!({"focusAreas": ["a"], "promptTemplate": "p", "n": 3}),
        },
        version: 1,
        created_at: at,
        updated_at: at,
    };
    let mine_old = preset(owner, "Old", "private", 1_000);
    let mine_new = preset(owner, "New", "public", 2_000);
    let theirs_public = preset(other, "Shared", "public", 1_500);
    let theirs_private = preset(other, "Hidden", "private", 1_600);
    for p in [&mine_old, &mine_new, &theirs_public, &theirs_private] {
        stores.ai.create_preset(p).await.unwrap();
    }
    assert!(matches!(
        stores.ai.create_preset(&mine_old).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        stores.ai.preset(mine_old.id).await.unwrap(),
        Some(mine_old.clone())
    );
    assert_eq!(stores.ai.preset(DocId::new()).await.unwrap(), None);
    let names = |list: Vec<Preset>| list.into_iter().map(|p| p.fields.name).collect::<Vec<_>>();
    assert_eq!(
        names(stores.ai.presets_of_owner(owner).await.unwrap()),
        ["New", "Old"]
    );
    assert_eq!(
        names(stores.ai.public_presets(owner, 200).await.unwrap()),
        ["Shared"]
    );
    assert_eq!(
        names(stores.ai.public_presets(other, 200).await.unwrap()),
        ["New"]
    );
    assert!(stores.ai.public_presets(other, 0).await.unwrap().is_empty());

    let edited = stores
        .ai
        .update_preset(
            mine_old.id,
            &PresetFields {
                name: "Renamed".into(),
                description: String::new(),
                tags: vec![],
                definition: json!({"promptTemplate": "q"}),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (edited.fields.name.as_str(), edited.version),
        ("Renamed", 2)
    );
    assert_eq!(edited.fields.definition, json!({"promptTemplate": "q"}));
    assert!(edited.updated_at >= edited.created_at);
    let published = stores
        .ai
        .set_preset_visibility(mine_old.id, "public")
        .await
        .unwrap();
    assert_eq!(
        (published.visibility.as_str(), published.version),
        ("public", 3)
    );
    assert_eq!(
        names(stores.ai.public_presets(other, 200).await.unwrap()),
        ["Renamed", "New"],
        "most recently updated first"
    );
    assert_eq!(
        stores.ai.update_preset(DocId::new(), &edited.fields).await,
        Err(StoreError::NotFound)
    );
    stores.ai.delete_preset(mine_old.id).await.unwrap();
    assert_eq!(
        stores.ai.delete_preset(mine_old.id).await,
        Err(StoreError::NotFound)
    );

    let project = DocId::new();
    let run = |at: i64| AiRun {
        id: DocId::new(),
        project_id: project,
        preset_id: Some("builtin:traffic".into()),
        preset_snapshot: Some(json!({"name": "Traffic analysis"})),
        created_by_user_id: owner.to_hex(),
        created_by_email: "o@x.test".into(),
        status: RunStatus::Queued,
        progress: None,
        model: "m1".into(),
        timeframe_preset: Some("7d".into()),
        start: at - 1000,
        end: at,
        segment: crate::domain::segment::SegmentFilters {
            client_id: Some("c1".into()),
            ..Default::default()
        },
        result_markdown: None,
        error_message: None,
        duration_ms: None,
        token_usage: None,
        job_id: None,
        created_at: at,
        updated_at: at,
    };
    let first = run(10_000);
    let second = run(20_000);
    stores.ai.create_run(&first).await.unwrap();
    stores.ai.create_run(&second).await.unwrap();
    stores
        .ai
        .create_run(&AiRun {
            project_id: DocId::new(),
            ..run(30_000)
        })
        .await
        .unwrap();
    assert_eq!(stores.ai.run(first.id).await.unwrap(), Some(first.clone()));
    let listed: Vec<_> = stores
        .ai
        .runs_of_project(project, 30)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(
        listed,
        vec![second.id, first.id],
        "newest first, this project only"
    );
    assert_eq!(
        stores.ai.runs_of_project(project, 1).await.unwrap().len(),
        1
    );

    stores.ai.set_run_job(first.id, "job-1").await.unwrap();
    assert_eq!(
        stores.ai.set_run_job(DocId::new(), "x").await,
        Err(StoreError::NotFound)
    );
    assert!(
        stores
            .ai
            .set_run_running(first.id, "building payload")
            .await
            .unwrap()
    );
    assert!(
        stores
            .ai
            .set_run_running(first.id, "calling model")
            .await
            .unwrap(),
        "running → running"
    );
    let running = stores.ai.run(first.id).await.unwrap().unwrap();
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(running.progress.as_deref(), Some("calling model"));
    assert_eq!(running.job_id.as_deref(), Some("job-1"));
    let done = RunOutcome {
        status: RunStatus::Completed,
        model: "m2".into(),
        result_markdown: Some("## Summary\nok".into()),
        error_message: None,
        duration_ms: 1234,
        token_usage: Some(json!({"prompt_tokens": 10, "completion_tokens": 5})),
    };
    assert!(stores.ai.finish_run(first.id, &done).await.unwrap());
    let failed = RunOutcome {
        status: RunStatus::Failed,
        error_message: Some("late".into()),
        result_markdown: None,
        ..done.clone()
    };
    assert!(
        !stores.ai.finish_run(first.id, &failed).await.unwrap(),
        "final runs never change"
    );
    assert!(!stores.ai.set_run_running(first.id, "again").await.unwrap());
    let finished = stores.ai.run(first.id).await.unwrap().unwrap();
    assert_eq!(finished.status, RunStatus::Completed);
    assert_eq!(finished.progress, None);
    assert_eq!(finished.model, "m2");
    assert_eq!(finished.result_markdown.as_deref(), Some("## Summary\nok"));
    assert_eq!(finished.duration_ms, Some(1234));
    assert_eq!(
        finished.token_usage,
        Some(json!({"prompt_tokens": 10, "completion_tokens": 5}))
    );
    assert_eq!(finished.segment.client_id.as_deref(), Some("c1"));
    assert!(!stores.ai.finish_run(DocId::new(), &done).await.unwrap());
}

pub async fn ai_sample_documents(stores: &Stores) {
    use super::SampleQuery;
    use crate::domain::{analytics::TimeRange, segment::SegmentFilters};
    let p = new_project(stores, "Samples").await;
    let t0 = 1_706_702_400_000;
    let range = TimeRange {
        start_ms: t0 - 10_000,
        end_ms: t0,
    };
    let timed = |name: &str, ms: f64, ts: i64, client: &str, props: serde_json::Value| Event {
        duration_ms: Some(ms),
        client_id: Some(client.into()),
        properties: props,
        ..event(name, ts)
    };
    let fp_error = |msg: &str, ts: i64, ctx: serde_json::Value| ErrorEvent {
        context: Some(ctx),
        ..error(msg, ts)
    };
    let vital = |lcp: f64, ts: i64| PerformanceMetric {
        lcp: Some(lcp),
        ..metric(ts)
    };
    stores
        .events
        .write(&[
            batch(
                p.id,
                Docs::Events(vec![
                    timed("checkout", 300.0, t0 - 5, "c1", json!({"plan": "pro"})),
                    timed("checkout", 900.0, t0 - 4, "c2", json!({"plan": "free"})),
                    timed(
                        "checkout",
                        600.0,
                        t0 - 3,
                        "c1",
                        json!({"plan": "pro", "userId": "u1"}),
                    ),
                    Event {
                        duration_ms: None,
                        ..event("checkout", t0 - 1)
                    },
                    timed("checkout", 5000.0, t0 - 20_000, "c1", json!({})),
                    timed("search", 50.0, t0 - 2, "c1", json!({})),
                ]),
            ),
            batch(
                p.id,
                Docs::Pageviews(vec![
                    pageview("/a", t0 - 3),
                    PageView {
                        browser: Some("Chrome".into()),
                        ..pageview("/a", t0 - 2)
                    },
                    pageview("/b", t0 - 1),
                ]),
            ),
            batch(
                p.id,
                Docs::Errors(vec![
                    fp_error("boom", t0 - 3, json!({"clientId": "c1"})),
                    fp_error("boom", t0 - 2, json!({"clientId": "c2"})),
                    fp_error("other", t0 - 1, json!({})),
                ]),
            ),
            batch(
                p.id,
                Docs::Performance(vec![
                    vital(1000.0, t0 - 3),
                    vital(4000.0, t0 - 2),
                    vital(3000.0, t0 - 1),
                ]),
            ),
        ])
        .await
        .unwrap();
    let all = SegmentFilters::default();
    let sample = |segment: SegmentFilters, query: SampleQuery, limit: u32| {
        let stores = stores.clone();
        async move {
            stores
                .ai
                .sample_documents(p.id, range, &segment, &query, limit)
                .await
                .unwrap()
        }
    };
    let field = |docs: &[serde_json::Value], key: &str| -> Vec<serde_json::Value> {
        docs.iter().map(|d| d[key].clone()).collect()
    };

    let slow = sample(
        all.clone(),
        SampleQuery::SlowestEvents("checkout".into()),
        2,
    )
    .await;
    assert_eq!(
        field(&slow, "durationMs"),
        [json!(900.0), json!(600.0)],
        "longest first, in range, timed only"
    );
    assert_eq!(slow[0]["eventName"], "checkout");
    assert_eq!(slow[0]["properties"], json!({"plan": "free"}));
    let newest = sample(all.clone(), SampleQuery::NewestEvents("checkout".into()), 5).await;
    assert_eq!(newest.len(), 4);
    assert_eq!(
        newest[0]["durationMs"],
        serde_json::Value::Null,
        "the untimed one is newest"
    );
    let by_client = SegmentFilters {
        client_id: Some("c1".into()),
        ..Default::default()
    };
    assert_eq!(
        field(
            &sample(
                by_client.clone(),
                SampleQuery::SlowestEvents("checkout".into()),
                5
            )
            .await,
            "durationMs"
        ),
        [json!(600.0), json!(300.0)]
    );
    let by_user = SegmentFilters {
        user_id: Some("u1".into()),
        ..Default::default()
    };
    assert_eq!(
        field(
            &sample(by_user, SampleQuery::NewestEvents("checkout".into()), 5).await,
            "durationMs"
        ),
        [json!(600.0)]
    );
    let mut by_meta = SegmentFilters::default();
    by_meta.meta.insert("plan".into(), "pro".into());
    assert_eq!(
        sample(by_meta, SampleQuery::NewestEvents("checkout".into()), 5)
            .await
            .len(),
        3,
        "the untimed fixture event is on plan pro too"
    );

    let views = sample(all.clone(), SampleQuery::NewestPageviews("/a".into()), 5).await;
    assert_eq!(
        field(&views, "browser"),
        [json!("Chrome"), json!("Firefox")]
    );
    assert_eq!(views[0]["title"], "Home");
    let chrome = SegmentFilters {
        browser: Some("Chrome".into()),
        ..Default::default()
    };
    assert_eq!(
        sample(chrome, SampleQuery::NewestPageviews("/a".into()), 5)
            .await
            .len(),
        1
    );

    let boom = error_fingerprint("boom", Some("at f (app.js:1:2)"));
    let errs = sample(
        all.clone(),
        SampleQuery::ErrorsWithFingerprint(boom.clone()),
        5,
    )
    .await;
    assert_eq!(
        field(&errs, "context"),
        [json!({"clientId": "c2"}), json!({"clientId": "c1"})]
    );
    assert_eq!(errs[0]["stackTrace"], "at f (app.js:1:2)");
    assert_eq!(
        sample(by_client, SampleQuery::ErrorsWithFingerprint(boom), 5)
            .await
            .len(),
        1,
        "errors match context.clientId"
    );

    let worst = sample(
        all.clone(),
        SampleQuery::WorstMetric {
            metric: "lcp".into(),
            threshold: 3000.0,
        },
        5,
    )
    .await;
    assert_eq!(field(&worst, "lcp"), [json!(4000.0), json!(3000.0)]);

    let unknown = stores
        .ai
        .sample_documents(
            DocId::new(),
            range,
            &all,
            &SampleQuery::NewestEvents("checkout".into()),
            5,
        )
        .await
        .unwrap();
    assert!(unknown.is_empty());
}

/// Everything the unfiltered summaries answer for a range, to compare in one assertion.
async fn all_summaries(
    stores: &Stores,
    p: DocId,
    range: crate::domain::analytics::TimeRange,
) -> (
    crate::domain::analytics::PageViewsSummary,
    crate::domain::analytics::EventsSummary,
    crate::domain::analytics::ErrorsSummary,
    crate::domain::analytics::PerformanceFigures,
    crate::domain::analytics::Breakdowns,
) {
    (
        stores.stats.pageviews_summary(p, range, 3).await.unwrap(),
        stores.stats.events_summary(p, range, 3).await.unwrap(),
        stores.stats.errors_summary(p, range).await.unwrap(),
        stores.stats.performance_summary(p, range).await.unwrap(),
        stores.stats.breakdowns(p, range, 3).await.unwrap(),
    )
}

/// Summaries over a range that spans partial hours, partial days and full days (so a backend
/// with rollups reads raw edges, hour and day rollups), read twice (building, then reusing),
/// then after late writes into already-read hours and days, a retention purge, clearing the
/// data and writing again. Every figure is hand-computed.
pub(crate) async fn summaries_over_days_hours_and_edges(stores: &Stores) {
    use crate::domain::analytics::{BreakdownRow, DayCount, EventCount, PageCount, TimeRange};
    let p = new_project(stores, "Rollups").await;
    let (min, hour, day) = (60_000, 3_600_000, 86_400_000);
    let d0 = 1_704_067_200_000; // 2024-01-01T00:00Z
    let start = d0 + 22 * hour + 30 * min; // Jan 1 22:30: a raw edge, then hour 23
    let end = d0 + 3 * day + hour + 20 * min; // Jan 4 01:20: hour 00, then a raw edge
    let range = TimeRange {
        start_ms: start,
        end_ms: end,
    };
    let view = |url: &str, client: Option<&str>, referrer: Option<&str>, ts: i64| PageView {
        client_id: client.map(str::to_string),
        referrer: referrer.map(str::to_string),
        ..pageview(url, ts)
    };
    let google = Some("https://www.google.com/search?q=x");
    let perf = |lcp: f64, cls: Option<f64>, ts: i64| PerformanceMetric {
        lcp: Some(lcp),
        cls,
        fid: None,
        ttfb: None,
        inp: None,
        ..metric(ts)
    };
    let mut no_country = view("/b", None, Some(""), d0 + day + 3 * hour); // Jan 2 (full day)
    no_country.enrichment.country = None;
    let mut no_utm = view(
        "/a",
        Some("c3"),
        Some("https://ref.example/a"),
        d0 + 2 * day + 12 * hour,
    );
    no_utm.utm_source = None;
    let mut desktop = view(
        "/c",
        Some("c2"),
        Some("https://news.ycombinator.com/"),
        d0 + 3 * day + 10 * min,
    );
    desktop.device_type = Some(DeviceType::Desktop);
    stores
        .events
        .write(&[
            batch(
                p.id,
                Docs::Pageviews(vec![
                    view("/x", Some("c1"), None, start - 1),
                    view("/a", Some("c1"), google, start),
                    view(
                        "/a",
                        Some("c2"),
                        Some("http://www.Google.com/"),
                        d0 + 22 * hour + 59 * min,
                    ),
                    view("/b", Some("c1"), None, d0 + 23 * hour + 5 * min),
                    no_country,
                    no_utm,
                    desktop,
                    view("/c", Some("c4"), google, end),
                    view("/x", Some("c5"), None, end + 1),
                ]),
            ),
            batch(
                p.id,
                Docs::Events(vec![
                    event("old", start - 1),
                    event("signup", start + 1),
                    event("buy", d0 + day - 1),
                    event("signup", d0 + day + hour),
                    event("buy", d0 + 2 * day),
                    event("signup", d0 + 3 * day + 30 * min),
                    event("view", end),
                ]),
            ),
            batch(
                p.id,
                Docs::Errors(vec![
                    error("boom", start),
                    error("boom", d0 + day + 2 * hour),
                    error("bang", d0 + 2 * day + 5 * hour),
                    error("boom", d0 + 3 * day + hour + 10 * min),
                    error("zap", end + 1),
                ]),
            ),
            batch(
                p.id,
                Docs::Performance(vec![
                    perf(4000.0, None, start + 5),
                    perf(1000.0, None, d0 + 23 * hour),
                    perf(3000.0, Some(0.1), d0 + day + 6 * hour),
                    perf(2000.0, None, d0 + 2 * day + 6 * hour),
                    perf(5000.0, None, d0 + 3 * day + 5 * min),
                    perf(1000.0, None, end),
                    perf(9999.0, None, end + 1),
                ]),
            ),
        ])
        .await
        .unwrap();
    let days = |counts: &[(&str, u64)]| -> Vec<DayCount> {
        counts
            .iter()
            .map(|(d, n)| DayCount {
                date: d.to_string(),
                count: *n,
            })
            .collect()
    };
    let pages = |rows: &[(&str, u64)]| -> Vec<PageCount> {
        rows.iter()
            .map(|(u, n)| PageCount {
                url: u.to_string(),
                views: *n,
            })
            .collect()
    };
    let rows = |rows: &[(&str, u64)]| -> Vec<BreakdownRow> {
        rows.iter()
            .map(|(v, n)| BreakdownRow {
                value: v.to_string(),
                count: *n,
            })
            .collect()
    };
    for round in ["building", "reusing"] {
        let (pv, ev, er, pf, bd) = all_summaries(stores, p.id, range).await;
        assert_eq!(pv.total_views, 7, "{round}: both boundaries are inclusive");
        assert_eq!(
            pv.unique_visitors, 5,
            "{round}: c1..c4 and one for the views without a clientId"
        );
        assert_eq!(
            pv.views_by_day,
            days(&[
                ("2024-01-01", 3),
                ("2024-01-02", 1),
                ("2024-01-03", 1),
                ("2024-01-04", 2)
            ]),
            "{round}"
        );
        assert_eq!(
            pv.top_pages,
            pages(&[("/a", 3), ("/b", 2), ("/c", 2)]),
            "{round}"
        );
        assert_eq!(ev.total_events, 6, "{round}");
        assert_eq!(
            ev.top_events,
            vec![
                EventCount {
                    event_name: "signup".into(),
                    count: 3
                },
                EventCount {
                    event_name: "buy".into(),
                    count: 2
                },
                EventCount {
                    event_name: "view".into(),
                    count: 1
                },
            ],
            "{round}"
        );
        assert_eq!(
            ev.events_by_day,
            days(&[
                ("2024-01-01", 2),
                ("2024-01-02", 1),
                ("2024-01-03", 1),
                ("2024-01-04", 2)
            ]),
            "{round}"
        );
        assert_eq!((er.total_errors, er.unique_fingerprints), (4, 2), "{round}");
        assert_eq!(er.errors_by_day.len(), 4, "{round}");
        assert_eq!(pf.total_measurements, 6, "{round}");
        let lcp = pf.of("lcp");
        assert_eq!(
            (lcp.p50, lcp.p75, lcp.p95),
            (Some(2000.0), Some(3000.0), Some(4000.0)),
            "{round}: 1000 1000 2000 3000 4000 5000 at indexes 2, 3, 4"
        );
        assert_eq!(pf.of("cls").p95, Some(0.1), "{round}");
        let daily: Vec<_> = pf
            .metrics_by_day
            .iter()
            .map(|d| (d.date.as_str(), d.lcp))
            .collect();
        assert_eq!(
            daily,
            vec![
                ("2024-01-01", Some(2500.0)),
                ("2024-01-02", Some(3000.0)),
                ("2024-01-03", Some(2000.0)),
                ("2024-01-04", Some(3000.0)),
            ],
            "{round}"
        );
        assert_eq!(
            bd.referrer,
            rows(&[
                ("google.com", 3),
                ("(direct)", 2),
                ("news.ycombinator.com", 1)
            ]),
            "{round}: grouped by host, ties by value"
        );
        assert_eq!(bd.country, rows(&[("FR", 6), ("(unknown)", 1)]), "{round}");
        assert_eq!(
            bd.utm_source,
            rows(&[("news", 6), ("(none)", 1)]),
            "{round}"
        );
        assert_eq!(bd.utm_medium, rows(&[("(none)", 7)]), "{round}");
        assert_eq!(bd.utm_campaign, rows(&[("(none)", 7)]), "{round}");
        assert_eq!(
            bd.device_type,
            rows(&[("mobile", 6), ("desktop", 1)]),
            "{round}"
        );
        assert_eq!(
            (bd.browser.clone(), bd.os.clone()),
            (rows(&[("Firefox", 7)]), rows(&[("Linux", 7)])),
            "{round}"
        );
    }

    // Late writes into an hour and a day that were already read.
    stores
        .events
        .write(&[
            batch(
                p.id,
                Docs::Pageviews(vec![
                    view("/b", Some("c9"), None, d0 + 2 * day + 5 * hour),
                    view("/a", None, None, d0 + 23 * hour + 30 * min),
                ]),
            ),
            batch(
                p.id,
                Docs::Performance(vec![perf(6000.0, None, d0 + day + 7 * hour)]),
            ),
        ])
        .await
        .unwrap();
    let (pv, _, _, pf, bd) = all_summaries(stores, p.id, range).await;
    assert_eq!(
        (pv.total_views, pv.unique_visitors),
        (9, 6),
        "the late views and c9 count"
    );
    assert_eq!(
        pv.views_by_day,
        days(&[
            ("2024-01-01", 4),
            ("2024-01-02", 1),
            ("2024-01-03", 2),
            ("2024-01-04", 2)
        ])
    );
    assert_eq!(pv.top_pages, pages(&[("/a", 4), ("/b", 3), ("/c", 2)]));
    let lcp = pf.of("lcp");
    assert_eq!(
        (pf.total_measurements, lcp.p50, lcp.p75, lcp.p95),
        (7, Some(3000.0), Some(4000.0), Some(5000.0))
    );
    assert_eq!(pf.metrics_by_day[1].lcp, Some(4500.0), "(3000 + 6000) / 2");
    assert_eq!(
        bd.referrer[0],
        BreakdownRow {
            value: "(direct)".into(),
            count: 4
        }
    );

    // A range whose edges fall inside 5-minute buckets: Jan 1 22:53:00.001 (raw to 22:55, then
    // 5-minute buckets 22:55 … 23:05) to 23:12:30 (raw from 23:10).
    let inner = TimeRange {
        start_ms: d0 + 22 * hour + 53 * min + 1,
        end_ms: d0 + 23 * hour + 12 * min + 30_000,
    };
    for round in ["building", "reusing"] {
        let (pv, ev, _, pf, _) = all_summaries(stores, p.id, inner).await;
        assert_eq!(
            (pv.total_views, pv.unique_visitors),
            (2, 2),
            "{round}: c2 at 22:59 and c1 at 23:05"
        );
        assert_eq!(pv.top_pages, pages(&[("/a", 1), ("/b", 1)]), "{round}");
        assert_eq!((ev.total_events, pf.total_measurements), (0, 1), "{round}");
    }
    // Late writes into the built 5-minute buckets 23:00 and 23:05, and into the raw head edge.
    stores
        .events
        .write(&[
            batch(
                p.id,
                Docs::Pageviews(vec![
                    view("/a", Some("c8"), None, d0 + 23 * hour + 6 * min),
                    view("/e", None, None, d0 + 22 * hour + 54 * min),
                ]),
            ),
            batch(
                p.id,
                Docs::Events(vec![event("late", d0 + 23 * hour + 9 * min)]),
            ),
            batch(
                p.id,
                Docs::Performance(vec![perf(7000.0, None, d0 + 23 * hour + min)]),
            ),
        ])
        .await
        .unwrap();
    let (pv, ev, _, pf, _) = all_summaries(stores, p.id, inner).await;
    assert_eq!(
        (pv.total_views, pv.unique_visitors),
        (4, 4),
        "c2, c1, c8 and the view without a clientId"
    );
    assert_eq!(pv.top_pages, pages(&[("/a", 2), ("/b", 1), ("/e", 1)]));
    assert_eq!(ev.total_events, 1);
    assert_eq!(
        (pf.total_measurements, pf.metrics_by_day[0].lcp),
        (2, Some(4000.0)),
        "(1000 + 7000) / 2"
    );
    let (pv, ev, ..) = all_summaries(stores, p.id, range).await;
    assert_eq!(
        (pv.total_views, ev.total_events),
        (11, 7),
        "the hour 23 rollup saw the late writes too"
    );

    // Retention purge in the middle of an already-read day.
    let cutoff = d0 + 2 * day + 12 * hour;
    stores.projects.purge_before(p.id, cutoff).await.unwrap();
    let (pv, ev, er, pf, bd) = all_summaries(stores, p.id, range).await;
    assert_eq!(
        (pv.total_views, pv.unique_visitors),
        (3, 3),
        "c3 (at the cutoff), c2, c4; no view without clientId is left"
    );
    assert_eq!(
        pv.views_by_day,
        days(&[("2024-01-03", 1), ("2024-01-04", 2)])
    );
    assert_eq!(pv.top_pages, pages(&[("/c", 2), ("/a", 1)]));
    assert_eq!(
        (ev.total_events, ev.events_by_day.clone()),
        (2, days(&[("2024-01-04", 2)]))
    );
    assert_eq!((er.total_errors, er.unique_fingerprints), (1, 1));
    assert_eq!((pf.total_measurements, pf.of("lcp").p50), (2, Some(1000.0)));
    assert_eq!(
        bd.referrer,
        rows(&[
            ("google.com", 1),
            ("news.ycombinator.com", 1),
            ("ref.example", 1)
        ])
    );

    // Clearing the data, then writing again: nothing from before may come back.
    stores.projects.clear_project_data(p.id).await.unwrap();
    let (pv, ev, er, pf, bd) = all_summaries(stores, p.id, range).await;
    assert_eq!((pv, ev, er, bd), Default::default());
    assert_eq!(pf.total_measurements, 0);
    stores
        .events
        .write(&[batch(
            p.id,
            Docs::Pageviews(vec![view(
                "/new",
                Some("c1"),
                None,
                d0 + 2 * day + 5 * hour,
            )]),
        )])
        .await
        .unwrap();
    let again = stores
        .stats
        .pageviews_summary(p.id, range, 3)
        .await
        .unwrap();
    assert_eq!(
        (again.total_views, again.unique_visitors, again.top_pages),
        (1, 1, pages(&[("/new", 1)]))
    );
}

/// Jobs: due order, kinds, the Redis grace, leases and their expiry, token-conditional writes,
/// retries, release, abandoned jobs and counts, on fixed clock values.
pub(crate) async fn jobs_claims_and_leases(stores: &Stores) {
    use super::{JobClaim, JobCounts, JobDispatch, JobState, NewJobRecord};
    const T: i64 = 1_700_000_000_000;
    let jobs = &stores.jobs;
    let insert = async |kind: &str, run_after: i64, dispatch: JobDispatch, max_attempts: u32| {
        let record = NewJobRecord {
            id: DocId::new(),
            kind: kind.into(),
            payload: json!({"kind": kind, "n": [1, 2]}),
            max_attempts,
            queued_at: T - 1000,
            run_after,
            dispatch,
        };
        jobs.insert_job(&record).await.expect("insert job");
        record
    };
    let claim = |token: &'static str, now: i64| JobClaim {
        token,
        worker: "w1",
        now,
        lease_until: now + 1000,
    };
    let cx = vec!["cx".to_string()];
    let a = insert("cx", T, JobDispatch::Store, 3).await;
    let b = insert("cx", T + 100, JobDispatch::Store, 3).await;
    let c = insert("other", T, JobDispatch::Store, 3).await;
    let d = insert("cx", T - 50, JobDispatch::Redis, 3).await;
    assert!(matches!(
        jobs.insert_job(&a).await,
        Err(StoreError::Conflict(_))
    ));
    let stored = jobs.job(a.id).await.unwrap().expect("stored");
    assert_eq!(
        (
            stored.state,
            stored.attempts,
            stored.max_attempts,
            stored.progress
        ),
        (JobState::Queued, 0, 3, 0)
    );
    assert_eq!(stored.payload, json!({"kind": "cx", "n": [1, 2]}));
    assert_eq!((stored.queued_at, stored.run_after), (T - 1000, T));
    assert_eq!(stored.dispatch, JobDispatch::Store);

    assert!(
        jobs.claim_next_job(&cx, &claim("t0", T - 100), T - 100)
            .await
            .unwrap()
            .is_none()
    );
    // D (Redis, due T-50) is left to Redis while the cutoff is before its due time.
    let got = jobs
        .claim_next_job(&cx, &claim("t1", T), T - 60)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, a.id);
    assert_eq!((got.state, got.attempts), (JobState::Running, 1));
    assert_eq!(
        (
            got.lease_token.as_deref(),
            got.lease_until,
            got.started_at,
            got.worker.as_deref()
        ),
        (Some("t1"), Some(T + 1000), Some(T), Some("w1"))
    );
    let got = jobs
        .claim_next_job(&cx, &claim("t2", T), T)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, d.id, "due first once the cutoff passes it");
    assert!(
        jobs.claim_next_job(&cx, &claim("tx", T + 50), T + 50)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        jobs.claim_job(b.id, &claim("tx", T + 50))
            .await
            .unwrap()
            .is_none(),
        "not due"
    );
    let got = jobs
        .claim_job(c.id, &claim("t4", T))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.id, c.id, "claim by id ignores kinds");

    assert!(
        !jobs
            .renew_job_lease(a.id, "wrong", T + 2000, None)
            .await
            .unwrap()
    );
    assert!(
        jobs.renew_job_lease(a.id, "t1", T + 1500, Some((55, Some("half"))))
            .await
            .unwrap()
    );
    let renewed = jobs.job(a.id).await.unwrap().unwrap();
    assert_eq!(
        (
            renewed.progress,
            renewed.progress_message.as_deref(),
            renewed.lease_until
        ),
        (55, Some("half"), Some(T + 1500))
    );
    assert!(
        jobs.complete_job(a.id, "t1", &json!({"md": "# A"}), T + 10)
            .await
            .unwrap()
    );
    assert!(
        !jobs
            .complete_job(a.id, "t1", &json!("twice"), T + 11)
            .await
            .unwrap()
    );
    let done = jobs.job(a.id).await.unwrap().unwrap();
    assert_eq!(
        (
            done.state,
            done.progress,
            done.finished_at,
            done.lease_token
        ),
        (JobState::Completed, 100, Some(T + 10), None)
    );
    assert_eq!(done.result, Some(json!({"md": "# A"})));

    // D fails once: queued again at its retry time, with its error, dispatched to the store.
    assert!(
        !jobs
            .fail_job(d.id, "t1", "x", Some(T + 500), JobDispatch::Store, T)
            .await
            .unwrap()
    );
    assert!(
        jobs.fail_job(
            d.id,
            "t2",
            "boom",
            Some(T + 500),
            JobDispatch::Store,
            T + 20
        )
        .await
        .unwrap()
    );
    let retry = jobs.job(d.id).await.unwrap().unwrap();
    assert_eq!(
        (retry.state, retry.run_after, retry.attempts, retry.dispatch),
        (JobState::Queued, T + 500, 1, JobDispatch::Store)
    );
    assert_eq!(
        (retry.last_error.as_deref(), retry.lease_token),
        (Some("boom"), None)
    );
    assert!(
        jobs.claim_job(d.id, &claim("t3", T + 499))
            .await
            .unwrap()
            .is_none()
    );
    let again = jobs
        .claim_job(d.id, &claim("t3", T + 500))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.attempts, again.progress), (2, 0));
    assert_eq!(
        again.last_error.as_deref(),
        Some("boom"),
        "kept while retrying"
    );

    // C's lease (until T+1000) expires: claimable again, and the old token stops counting.
    assert!(
        jobs.claim_job(c.id, &claim("t5", T + 999))
            .await
            .unwrap()
            .is_none()
    );
    let taken = jobs
        .claim_job(c.id, &claim("t5", T + 1000))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.attempts, 2);
    assert!(
        !jobs
            .complete_job(c.id, "t4", &json!("late"), T + 1001)
            .await
            .unwrap()
    );
    assert!(
        jobs.fail_job(
            c.id,
            "t5",
            "bad payload",
            None,
            JobDispatch::Store,
            T + 1002
        )
        .await
        .unwrap()
    );
    let failed = jobs.job(c.id).await.unwrap().unwrap();
    assert_eq!(
        (
            failed.state,
            failed.finished_at,
            failed.last_error.as_deref()
        ),
        (JobState::Failed, Some(T + 1002), Some("bad payload"))
    );

    // Release: due now, the attempt not counted.
    assert!(
        jobs.release_job(d.id, "t3", JobDispatch::Store, T + 600)
            .await
            .unwrap()
    );
    let released = jobs.job(d.id).await.unwrap().unwrap();
    assert_eq!(
        (
            released.state,
            released.attempts,
            released.run_after,
            released.lease_token
        ),
        (JobState::Queued, 1, T + 600, None)
    );
    assert!(
        !jobs
            .release_job(d.id, "t3", JobDispatch::Store, T + 601)
            .await
            .unwrap()
    );
    jobs.set_job_dispatch(d.id, JobDispatch::Redis)
        .await
        .unwrap();
    assert_eq!(
        jobs.job(d.id).await.unwrap().unwrap().dispatch,
        JobDispatch::Redis
    );

    // A job whose worker died on its last attempt is failed, not claimed again.
    let e = insert("cx", T, JobDispatch::Store, 1).await;
    let got = jobs
        .claim_job(e.id, &claim("t6", T))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.attempts, 1);
    assert!(
        jobs.fail_abandoned_jobs(T + 999, "gone")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        jobs.claim_job(e.id, &claim("t7", T + 1000))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        jobs.fail_abandoned_jobs(T + 1000, "gone").await.unwrap(),
        vec![e.id]
    );
    let abandoned = jobs.job(e.id).await.unwrap().unwrap();
    assert_eq!(
        (abandoned.state, abandoned.last_error.as_deref()),
        (JobState::Failed, Some("gone"))
    );
    assert_eq!(
        jobs.job_counts().await.unwrap(),
        JobCounts {
            queued: 2,
            running: 0,
            completed: 1,
            failed: 2,
            oldest_queued_ms: Some(T - 1000),
        }
    );
    assert!(jobs.job(DocId::new()).await.unwrap().is_none());
}

/// A report of `project` as the service would first record it.
fn new_report(project: &super::Project, hash: &str, created_at: i64) -> crate::reports::Report {
    use crate::reports::{DataType, Report, ReportFormat, ReportStatus, Stage};
    Report {
        id: DocId::new(),
        project_id: project.id,
        org_id: project.org_id,
        created_by: DocId::new(),
        name: "Weekly \u{e9}t\u{e9}".into(),
        data_type: DataType::All,
        timeframe: "custom".into(),
        start: created_at - 86_400_000,
        end: created_at,
        filters: crate::domain::segment::SegmentFilters {
            browser: Some("Firefox".into()),
            meta: [("plan".to_string(), "pro".to_string())].into(),
            ..Default::default()
        },
        format: ReportFormat::Csv,
        csv_mode: Some(crate::reports::CsvMode::Raw),
        include_ai_insights: true,
        status: ReportStatus::Pending,
        status_message: None,
        stages: Vec::new(),
        current_stage: Stage::Queued,
        progress: 0,
        estimated_duration_ms: 15_000,
        job_timeout_at: created_at + 300_000,
        dedup_hash: hash.into(),
        filter_template_id: None,
        file_key: None,
        file_size: None,
        expires_at: None,
        generated_at: None,
        download_count: 0,
        deleted_at: None,
        context_snapshot: None,
        created_at,
        updated_at: created_at,
    }
}

pub async fn reports_and_templates(stores: &Stores) {
    use crate::reports::{FilterTemplate, ReportStatus, Stage};
    let p = new_project(stores, "Reports").await;
    let other = new_project(stores, "Other").await;
    let t0 = 1_706_702_400_000;
    let mut a = new_report(&p, "h1", t0);
    a.enter(Stage::Queued, t0);
    let b = new_report(&p, "h2", t0 + 1);
    let c = new_report(&other, "h1", t0 + 2);
    for r in [&a, &b, &c] {
        stores.reports.insert_report(r).await.unwrap();
    }
    assert!(matches!(
        stores.reports.insert_report(&a).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        stores.reports.report(a.id).await.unwrap().as_ref(),
        Some(&a)
    );
    assert_eq!(stores.reports.report(DocId::new()).await.unwrap(), None);
    let listed: Vec<DocId> = stores
        .reports
        .reports_of_project(p.id, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(listed, vec![b.id, a.id], "newest first, own project only");
    assert_eq!(
        stores
            .reports
            .reports_of_project(p.id, 1)
            .await
            .unwrap()
            .len(),
        1
    );
    // Dedup finds pending/generating reports of the project only.
    let found = stores
        .reports
        .active_report_by_hash(p.id, "h1")
        .await
        .unwrap();
    assert_eq!(found.map(|r| r.id), Some(a.id));
    assert_eq!(
        stores
            .reports
            .active_report_by_hash(p.id, "zz")
            .await
            .unwrap(),
        None
    );
    // Saving moves it along, with the snapshot and stages.
    let mut a2 = a.clone();
    a2.enter(Stage::Aggregating, t0 + 10);
    a2.context_snapshot =
        Some(json!({"summary": {"totalCount": 3, "empty": false}, "x": [1.5, "s"]}));
    a2.enter(Stage::Completed, t0 + 20);
    a2.file_key = Some("k".into());
    a2.expires_at = Some(t0 + 1000);
    assert!(stores.reports.save_report(&a2).await.unwrap());
    assert_eq!(
        stores.reports.report(a.id).await.unwrap().as_ref(),
        Some(&a2)
    );
    assert_eq!(a2.status, ReportStatus::Completed);
    assert_eq!(
        stores
            .reports
            .active_report_by_hash(p.id, "h1")
            .await
            .unwrap(),
        None
    );
    stores.reports.count_download(a.id).await.unwrap();
    stores.reports.count_download(a.id).await.unwrap();
    assert_eq!(
        stores
            .reports
            .report(a.id)
            .await
            .unwrap()
            .unwrap()
            .download_count,
        2
    );
    // Soft delete: gone from the list, once; a deleted report is not saved again.
    assert!(
        stores
            .reports
            .soft_delete_report(b.id, t0 + 30)
            .await
            .unwrap()
    );
    assert!(
        !stores
            .reports
            .soft_delete_report(b.id, t0 + 31)
            .await
            .unwrap()
    );
    assert!(
        !stores
            .reports
            .soft_delete_report(DocId::new(), t0)
            .await
            .unwrap()
    );
    let kept = stores.reports.report(b.id).await.unwrap().unwrap();
    assert_eq!(kept.deleted_at, Some(t0 + 30));
    assert!(!stores.reports.save_report(&b).await.unwrap());
    assert_eq!(
        stores
            .reports
            .reports_of_project(p.id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        stores
            .reports
            .active_report_by_hash(p.id, "h2")
            .await
            .unwrap(),
        None
    );

    // Filter templates.
    let template = |project: &super::Project, name: &str, at: i64| FilterTemplate {
        id: DocId::new(),
        project_id: project.id,
        name: name.into(),
        description: "d".into(),
        filters: crate::domain::segment::SegmentFilters {
            utm_source: Some("news".into()),
            ..Default::default()
        },
        timeframe: Some("custom".into()),
        start_date: Some(at - 5),
        end_date: Some(at),
        created_by: DocId::new(),
        created_at: at,
        updated_at: at,
    };
    let t1 = template(&p, "First", t0);
    let t2 = template(&p, "Second \u{1F600}", t0 + 1);
    let t3 = template(&other, "Elsewhere", t0 + 2);
    for t in [&t1, &t2, &t3] {
        stores.reports.insert_filter_template(t).await.unwrap();
    }
    assert_eq!(
        stores
            .reports
            .filter_template(t2.id)
            .await
            .unwrap()
            .as_ref(),
        Some(&t2)
    );
    let names: Vec<String> = stores
        .reports
        .filter_templates(p.id, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, vec![t2.name.clone(), t1.name.clone()]);
    assert!(stores.reports.delete_filter_template(t1.id).await.unwrap());
    assert!(!stores.reports.delete_filter_template(t1.id).await.unwrap());
    assert_eq!(stores.reports.filter_template(t1.id).await.unwrap(), None);
    assert_eq!(
        stores
            .reports
            .filter_templates(p.id, 100)
            .await
            .unwrap()
            .len(),
        1
    );
}

pub async fn report_files_to_sweep(stores: &Stores) {
    use crate::reports::Stage;
    let p = new_project(stores, "Sweep").await;
    let t0 = 1_706_702_400_000;
    let with_file = |hash: &str, expires: i64, at: i64| {
        let mut r = new_report(&p, hash, at);
        r.enter(Stage::Completed, at);
        r.file_key = Some(format!("ns/{hash}"));
        r.expires_at = Some(expires);
        r
    };
    let expired = with_file("expired", t0 - 1, t0);
    let fresh = with_file("fresh", t0 + 1_000_000, t0 + 1);
    let deleted = with_file("deleted", t0 + 1_000_000, t0 + 2);
    let no_file = new_report(&p, "none", t0 + 3);
    for r in [&expired, &fresh, &deleted, &no_file] {
        stores.reports.insert_report(r).await.unwrap();
    }
    stores
        .reports
        .soft_delete_report(deleted.id, t0)
        .await
        .unwrap();
    let stale: Vec<DocId> = stores
        .reports
        .reports_with_stale_files(t0, 10)
        .await
        .unwrap()
        .iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stale, vec![expired.id, deleted.id]);
    stores.reports.clear_report_file(expired.id).await.unwrap();
    stores.reports.clear_report_file(deleted.id).await.unwrap();
    assert!(
        stores
            .reports
            .reports_with_stale_files(t0, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        stores
            .reports
            .report(expired.id)
            .await
            .unwrap()
            .unwrap()
            .file_key,
        None
    );
    assert_eq!(
        stores
            .reports
            .report(deleted.id)
            .await
            .unwrap()
            .unwrap()
            .file_key,
        None
    );
    assert!(
        stores
            .reports
            .report(fresh.id)
            .await
            .unwrap()
            .unwrap()
            .file_key
            .is_some()
    );
}

pub async fn document_scans_page_in_order(stores: &Stores) {
    use crate::domain::{analytics::TimeRange, segment::SegmentFilters};
    let p = new_project(stores, "Scans").await;
    let t0 = 1_706_702_400_000;
    // 25 views, several on the same millisecond, two browsers; one outside the range.
    let views: Vec<PageView> = (0..25)
        .map(|i| PageView {
            browser: Some(if i % 5 == 0 { "Safari" } else { "Firefox" }.into()),
            ..pageview(&format!("/p{i}"), t0 + (i / 3) as i64)
        })
        .chain(std::iter::once(pageview("/late", t0 + 100_000)))
        .collect();
    stores
        .events
        .write(&[batch(p.id, Docs::Pageviews(views))])
        .await
        .unwrap();
    stores
        .events
        .write(&[batch(p.id, Docs::Events(vec![event("e", t0)]))])
        .await
        .unwrap();
    let range = TimeRange {
        start_ms: t0,
        end_ms: t0 + 1000,
    };
    let scan = |segment: SegmentFilters| async move {
        use futures::StreamExt;
        let mut stream = stores
            .reports
            .document_pages(p.id, Channel::Pageviews, range, &segment, 4)
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut pages = 0;
        while let Some(page) = stream.next().await {
            let page = page.unwrap();
            assert!(!page.is_empty() && page.len() <= 4, "{}", page.len());
            pages += 1;
            seen.extend(page.into_iter().map(|d| {
                let ts =
                    crate::domain::timestamp::parse_iso(d["timestamp"].as_str().unwrap()).unwrap();
                (ts, d["url"].as_str().unwrap().to_string())
            }));
        }
        (seen, pages)
    };
    let (all, pages) = scan(SegmentFilters::default()).await;
    assert_eq!(all.len(), 25, "every document once, none outside the range");
    assert_eq!(pages, 7);
    let mut urls: Vec<&str> = all.iter().map(|(_, u)| u.as_str()).collect();
    assert!(all.windows(2).all(|w| w[0].0 <= w[1].0), "time order");
    urls.sort();
    urls.dedup();
    assert_eq!(urls.len(), 25, "no duplicates across pages of equal times");
    let (safari, _) = scan(SegmentFilters {
        browser: Some("Safari".into()),
        ..Default::default()
    })
    .await;
    assert_eq!(safari.len(), 5, "the segment is pushed down");
    let collect = |project: DocId, channel: Channel| async move {
        use futures::StreamExt;
        let pages: Vec<_> = stores
            .reports
            .document_pages(project, channel, range, &SegmentFilters::default(), 10)
            .await
            .unwrap()
            .collect()
            .await;
        pages
            .into_iter()
            .flat_map(|p| p.unwrap())
            .collect::<Vec<_>>()
    };
    assert!(collect(DocId::new(), Channel::Pageviews).await.is_empty());
    let events = collect(p.id, Channel::Events).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["eventName"], "e");
}

/// Raw logs: every filter of the viewers (reference §5.9) agrees with
/// [`LogQuery::matches`](crate::domain::audit::LogQuery::matches), pages are newest first, and
/// pruning keeps the newest entries.
pub async fn raw_logs_filter_page_and_prune(stores: &Stores) {
    use crate::domain::audit::{LogKind, LogQuery, OrgScope, RawLog};
    prepare(stores).await;
    let base = 1_700_000_000_000i64;
    let mut all = Vec::new();
    for i in 0..30i64 {
        let mut log = RawLog::new(
            if i % 3 == 0 {
                LogKind::Error
            } else {
                LogKind::Action
            },
            base + i * 1000,
        );
        log.action_code = (i % 3 != 0).then(|| {
            if i % 2 == 0 {
                "PROJECT_CREATE".to_string()
            } else {
                "AUTH_LOGIN_SUCCESS".to_string()
            }
        });
        log.error_message = (i % 3 == 0).then(|| format!("Boom_{i}% in Checkout"));
        log.user_id = Some(format!("u{}", i % 4));
        log.email = Some(format!("user{}@x.example", i % 4));
        log.project_id = (i % 5 != 0).then(|| format!("p{}", i % 2));
        log.org_id = (i % 5 == 0).then(|| "o1".to_string());
        log.method = Some("POST".into());
        log.path = Some(format!("/projects/{i}/settings"));
        log.status = Some(if i % 3 == 0 { 500 } else { 302 });
        log.ip = Some("203.0.113.7".into());
        stores.logs.insert_log(&log).await.unwrap();
        all.push(log);
    }
    // Stored as written.
    let page = stores
        .logs
        .query_logs(&LogQuery {
            page: 1,
            limit: 200,
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(page.total, 30);
    let mut newest_first = all.clone();
    newest_first.reverse();
    assert_eq!(page.entries, newest_first);

    let queries = [
        LogQuery {
            kind: Some(LogKind::Error),
            ..LogQuery::default()
        },
        LogQuery {
            action_code: Some("PROJECT_CREATE".into()),
            ..LogQuery::default()
        },
        LogQuery {
            user_id: Some("u1".into()),
            email: Some("USER1@x.example".into()),
            ..LogQuery::default()
        },
        LogQuery {
            project_id: Some("p0".into()),
            ..LogQuery::default()
        },
        // Literal and case-insensitive: `%` and `_` are not wildcards.
        LogQuery {
            contains: Some("_1% IN check".into()),
            ..LogQuery::default()
        },
        LogQuery {
            contains: Some("_12% IN check".into()),
            ..LogQuery::default()
        },
        LogQuery {
            contains: Some("/projects/2".into()),
            ..LogQuery::default()
        },
        LogQuery {
            contains: Some("x%y".into()),
            ..LogQuery::default()
        },
        LogQuery {
            from: Some(base + 5000),
            to: Some(base + 9000),
            ..LogQuery::default()
        },
        LogQuery {
            scope: Some(OrgScope {
                org_id: "o1".into(),
                project_ids: vec!["p1".into()],
            }),
            ..LogQuery::default()
        },
        LogQuery {
            scope: Some(OrgScope {
                org_id: "o2".into(),
                project_ids: vec![],
            }),
            ..LogQuery::default()
        },
    ];
    for mut q in queries {
        q.page = 1;
        q.limit = 10;
        let want: Vec<RawLog> = newest_first
            .iter()
            .filter(|l| q.matches(l))
            .cloned()
            .collect();
        let got = stores.logs.query_logs(&q).await.unwrap();
        assert_eq!(got.total, want.len() as u64, "{q:?}");
        assert_eq!(
            got.entries,
            want.iter().take(10).cloned().collect::<Vec<_>>(),
            "{q:?}"
        );
        q.page = 2;
        let second = stores.logs.query_logs(&q).await.unwrap();
        assert_eq!(
            second.entries,
            want.iter().skip(10).take(10).cloned().collect::<Vec<_>>(),
            "page 2 of {q:?}"
        );
    }

    assert_eq!(stores.logs.prune_logs(40).await.unwrap(), 0);
    assert_eq!(stores.logs.prune_logs(12).await.unwrap(), 18);
    let kept = stores
        .logs
        .query_logs(&LogQuery {
            page: 1,
            limit: 200,
            ..LogQuery::default()
        })
        .await
        .unwrap();
    assert_eq!(kept.total, 12);
    assert_eq!(kept.entries, newest_first[..12].to_vec(), "the newest stay");
}

/// A reset token is used once, only before it expires, and concurrent uses let one through.
pub async fn password_resets_are_single_use(stores: &Stores) {
    use crate::domain::email::PasswordReset;
    prepare(stores).await;
    let now = 1_700_000_000_000i64;
    let reset = |hash: &str, expires_at: i64| PasswordReset {
        id: DocId::new(),
        user_id: DocId::new(),
        token_hash: hash.to_string(),
        created_at: now - 1000,
        expires_at,
        used_at: None,
    };
    let live = reset("hash-live", now + 60_000);
    stores.mail.insert_password_reset(&live).await.unwrap();
    assert!(matches!(
        stores
            .mail
            .insert_password_reset(&reset("hash-live", now))
            .await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        stores.mail.password_reset("hash-live").await.unwrap(),
        Some(live.clone())
    );
    assert_eq!(stores.mail.password_reset("nope").await.unwrap(), None);
    // Two at once: exactly one wins.
    let (a, b) = tokio::join!(
        stores.mail.use_password_reset("hash-live", now),
        stores.mail.use_password_reset("hash-live", now)
    );
    let winners: Vec<_> = [a.unwrap(), b.unwrap()].into_iter().flatten().collect();
    assert_eq!(winners.len(), 1);
    assert_eq!(winners[0].user_id, live.user_id);
    assert_eq!(winners[0].used_at, Some(now));
    assert_eq!(
        stores
            .mail
            .use_password_reset("hash-live", now)
            .await
            .unwrap(),
        None,
        "used once"
    );
    assert_eq!(
        stores
            .mail
            .password_reset("hash-live")
            .await
            .unwrap()
            .unwrap()
            .used_at,
        Some(now)
    );
    let old = reset("hash-old", now);
    stores.mail.insert_password_reset(&old).await.unwrap();
    assert_eq!(
        stores
            .mail
            .use_password_reset("hash-old", now)
            .await
            .unwrap(),
        None,
        "expired at its expiry time"
    );
    assert_eq!(
        stores
            .mail
            .use_password_reset("unknown", now)
            .await
            .unwrap(),
        None
    );
}

/// Subscriptions are idempotent per cadence (subscribing again only changes the delivery); a
/// send key is claimed once until released.
pub async fn email_subscriptions_and_send_claims(stores: &Stores) {
    use crate::domain::email::{Cadence, Delivery, Subscription};
    prepare(stores).await;
    let (project, user, other) = (DocId::new(), DocId::new(), DocId::new());
    let sub = |user: DocId, cadence: Cadence, at: i64| Subscription {
        project_id: project,
        user_id: user,
        cadence,
        delivery: Delivery::Link,
        created_at: at,
    };
    stores
        .mail
        .subscribe(&sub(user, Cadence::Weekly, 10))
        .await
        .unwrap();
    stores
        .mail
        .subscribe(&sub(user, Cadence::Weekly, 11))
        .await
        .unwrap();
    stores
        .mail
        .subscribe(&sub(user, Cadence::Monthly, 12))
        .await
        .unwrap();
    stores
        .mail
        .subscribe(&sub(other, Cadence::Weekly, 13))
        .await
        .unwrap();
    assert_eq!(
        stores.mail.subscriptions_of(project, user).await.unwrap(),
        vec![
            sub(user, Cadence::Weekly, 10),
            sub(user, Cadence::Monthly, 12)
        ]
    );
    assert_eq!(
        stores.mail.subscribers(Cadence::Weekly).await.unwrap(),
        vec![
            sub(user, Cadence::Weekly, 10),
            sub(other, Cadence::Weekly, 13)
        ]
    );
    stores
        .mail
        .unsubscribe(project, user, Cadence::Weekly)
        .await
        .unwrap();
    stores
        .mail
        .unsubscribe(project, user, Cadence::Weekly)
        .await
        .unwrap();
    assert_eq!(
        stores.mail.subscriptions_of(project, user).await.unwrap(),
        vec![sub(user, Cadence::Monthly, 12)]
    );
    // Subscribing again with the other delivery changes only the delivery.
    let pdf = Subscription {
        delivery: Delivery::Pdf,
        ..sub(user, Cadence::Monthly, 99)
    };
    stores.mail.subscribe(&pdf).await.unwrap();
    assert_eq!(
        stores.mail.subscriptions_of(project, user).await.unwrap(),
        vec![Subscription {
            delivery: Delivery::Pdf,
            ..sub(user, Cadence::Monthly, 12)
        }]
    );
    assert!(stores.mail.claim_send("weekly:k", 1).await.unwrap());
    assert!(!stores.mail.claim_send("weekly:k", 2).await.unwrap());
    assert!(stores.mail.claim_send("weekly:other", 2).await.unwrap());
    stores.mail.release_send("weekly:k").await.unwrap();
    assert!(stores.mail.claim_send("weekly:k", 3).await.unwrap());
}
