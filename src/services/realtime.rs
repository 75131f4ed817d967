//! What the live views read from the store: visitors in the last five minutes (the engine's
//! distinct-visitor count over that window), the newest documents that seed a live feed, whether
//! a project has received anything yet (the first run), and each project's visitors today with
//! an hourly sparkline (the projects list). The live signals themselves come from
//! `runtime::realtime`; this module never holds them.

use crate::{
    domain::{
        analytics::{TimeRange, Timeframe},
        ids::DocId,
        model::Channel,
        records::{PlatformRole, User},
        timestamp::parse_iso,
    },
    runtime::{cache::DashboardCache, realtime::LiveHit},
    store::{StoreResult, Stores},
};
use serde::{Deserialize, Serialize};

/// The window "visitors right now" counts over.
pub const WINDOW_MS: i64 = 5 * 60 * 1000;
/// How far back the feed a stream starts with reaches.
pub const FEED_SEED_MS: i64 = 30 * 60 * 1000;
/// Lines a feed starts with at most.
pub const FEED_SEED: u32 = 10;

/// Distinct visitors (page views' client ids, as every visitor count) in the last
/// [`WINDOW_MS`] up to `now`: the `Pageviews` figures alone (no breakdowns, pages or visits,
/// which a stream's recount every few seconds would fold for nothing).
pub async fn visitors_now(stores: &Stores, project: DocId, now: i64) -> StoreResult<u64> {
    let range = TimeRange {
        start_ms: now - WINDOW_MS + 1,
        end_ms: now,
    };
    unique_visitors(stores, project, range).await
}

/// Distinct visitors of the page views in `range`, from the `Pageviews` figures only.
async fn unique_visitors(stores: &Stores, project: DocId, range: TimeRange) -> StoreResult<u64> {
    let summary = stores.stats.pageviews_summary(project, range, 0).await?;
    Ok(summary.unique_visitors)
}

/// Why a member's live stream of `project` must end, `None` while `user` may still read it:
/// `deleted` when the project is gone, `access-removed` when the user is no longer a member of
/// its organization (nor a platform admin, who reads every project) — the same rule as opening
/// any project page.
pub async fn member_access_ended(
    stores: &Stores,
    user: &User,
    project: DocId,
) -> StoreResult<Option<&'static str>> {
    let Some(project) = stores.projects.project(project).await? else {
        return Ok(Some("deleted"));
    };
    if project.deleted_at.is_some() {
        return Ok(Some("deleted"));
    }
    if user.role == PlatformRole::Admin {
        return Ok(None);
    }
    let member = (stores.accounts.memberships(user.id).await?)
        .iter()
        .any(|(org, _)| org.id == project.org_id);
    Ok((!member).then_some("access-removed"))
}

/// The newest page views and events of the last [`FEED_SEED_MS`], newest first, at most
/// [`FEED_SEED`], as feed lines.
pub async fn recent_hits(stores: &Stores, project: DocId, now: i64) -> StoreResult<Vec<LiveHit>> {
    let (views, events) = tokio::try_join!(
        stores.stats.recent(project, Channel::Pageviews, FEED_SEED),
        stores.stats.recent(project, Channel::Events, FEED_SEED),
    )?;
    let mut hits: Vec<LiveHit> = (views
        .iter()
        .filter_map(|d| hit(Channel::Pageviews, d, "url")))
    .chain(
        events
            .iter()
            .filter_map(|d| hit(Channel::Events, d, "eventName")),
    )
    .filter(|h| h.at > now - FEED_SEED_MS)
    .collect();
    hits.sort_by_key(|h| std::cmp::Reverse(h.at));
    hits.truncate(FEED_SEED as usize);
    Ok(hits)
}

fn hit(kind: Channel, doc: &serde_json::Value, field: &str) -> Option<LiveHit> {
    let at = parse_iso(doc.get("timestamp")?.as_str()?)?;
    Some(LiveHit {
        kind,
        label: doc.get(field)?.as_str()?.chars().take(200).collect(),
        at,
        country: doc
            .get("country")
            .and_then(|c| c.as_str())
            .map(str::to_string),
    })
}

/// True once the project has stored anything at all (its dashboard then shows figures rather
/// than the first-run guide).
pub async fn has_data(stores: &Stores, project: DocId) -> StoreResult<bool> {
    for channel in Channel::ALL {
        if !stores.stats.recent(project, channel, 1).await?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// A project's visitors since the start of the UTC day, and per hour over the last 24 hours
/// (oldest first; the last hour is the current, partial one).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VisitorsToday {
    pub today: u64,
    pub hourly: Vec<u64>,
}

/// [`VisitorsToday`] of `project` at `now`, behind the dashboard cache for a minute (the
/// projects list reads it for every project of the organization; 25 counts each): the
/// project's cache generation ends it early when its data is cleared or it is deleted. A day
/// without visitors is not kept, so a new project's first visitor shows at once (the first
/// run leads from "receiving data" to this list).
pub async fn visitors_today_cached(
    stores: &Stores,
    cache: &DashboardCache,
    project: DocId,
    now: i64,
) -> StoreResult<VisitorsToday> {
    // The 1-hour timeframe's cache bucket is a minute long.
    let keep = |v: &VisitorsToday| v.today > 0;
    cache
        .get_or_compute_kept("visitors-today", project, Timeframe::H1, "-", keep, || {
            let stores = stores.clone();
            async move { visitors_today(&stores, project, now).await }
        })
        .await
}

/// [`VisitorsToday`] of `project` at `now`, from the `Pageviews` figures only: the 24 hours
/// and the day so far (whole hours of them, since UTC midnight is one) in one read of the
/// rollups, so a cold list builds each project's missing hours in one scan, not one per hour.
pub async fn visitors_today(
    stores: &Stores,
    project: DocId,
    now: i64,
) -> StoreResult<VisitorsToday> {
    let ranges = TimeRange::hours_and_today(now);
    let mut hourly = stores.stats.unique_visitors_each(project, &ranges).await?;
    let today = hourly.pop().unwrap_or(0);
    Ok(VisitorsToday { today, hourly })
}

/// The points of an SVG polyline drawing `values` in a `width`×`height` box: x evenly spaced,
/// y from 0 at the bottom to the largest value at the top (a flat line at the bottom when all
/// are zero). One decimal per coordinate.
pub fn sparkline_points(values: &[u64], width: f64, height: f64) -> String {
    let max = values.iter().copied().max().unwrap_or(0).max(1) as f64;
    let step = if values.len() > 1 {
        width / (values.len() - 1) as f64
    } else {
        0.0
    };
    let inset = 1.0;
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let y = height - inset - (*v as f64 / max) * (height - 2.0 * inset);
            format!("{:.1},{:.1}", i as f64 * step, y)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// "Right now" is the last five minutes up to the caller's clock: a visit counts until the
    /// clock is a window past it, with no real time passing.
    #[tokio::test]
    async fn a_visitor_counts_for_five_minutes_of_the_clock() {
        let dir = tempfile::tempdir().unwrap();
        let (stores, project) =
            crate::services::fixtures::sqlite_with_project(&dir, "now@test.example").await;
        let clock = crate::domain::clock::ManualClock::new();
        use crate::domain::clock::Clock;
        let seen = clock.now_ms();
        let mut v = crate::store::contract::pageview("/x", seen);
        v.client_id = Some("c1".into());
        stores
            .events
            .write(&[crate::store::contract::batch(
                project.id,
                crate::domain::model::Docs::Pageviews(vec![v]),
            )])
            .await
            .unwrap();
        assert_eq!(
            visitors_now(&stores, project.id, clock.now_ms())
                .await
                .unwrap(),
            1
        );
        clock.advance_ms(WINDOW_MS as u64 - 1);
        assert_eq!(
            visitors_now(&stores, project.id, clock.now_ms())
                .await
                .unwrap(),
            1,
            "still inside the window"
        );
        clock.advance_ms(1);
        assert_eq!(
            visitors_now(&stores, project.id, clock.now_ms())
                .await
                .unwrap(),
            0,
            "gone once the clock is a window past it"
        );
        let feed = recent_hits(&stores, project.id, clock.now_ms())
            .await
            .unwrap();
        assert_eq!(feed.len(), 1, "the feed reaches further back (30 minutes)");
        clock.advance_ms((FEED_SEED_MS - WINDOW_MS) as u64);
        assert!(
            recent_hits(&stores, project.id, clock.now_ms())
                .await
                .unwrap()
                .is_empty()
        );
    }

    #[tokio::test]
    async fn answers_that_must_not_stay_stale_are_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let (stores, project) =
            crate::services::fixtures::sqlite_with_project(&dir, "today@test.example").await;
        let project = project.id;
        let cache = DashboardCache::new(
            std::sync::Arc::new(crate::runtime::cache::memory::MemoryCache::default()),
            std::time::Duration::from_secs(300),
        );
        let today = async || {
            visitors_today_cached(&stores, &cache, project, crate::domain::timestamp::now_ms())
                .await
                .unwrap()
                .today
        };
        let visitor = async |client: &str| {
            let mut v = crate::store::contract::pageview("/x", crate::domain::timestamp::now_ms());
            v.client_id = Some(client.into());
            let docs = crate::domain::model::Docs::Pageviews(vec![v]);
            stores
                .events
                .write(&[crate::store::contract::batch(project, docs)])
                .await
                .unwrap();
        };
        loop {
            cache.invalidate(project).await;
            assert_eq!(today().await, 0);
            visitor("c1").await;
            let minute = crate::domain::timestamp::now_ms() / 60_000;
            assert_eq!(today().await, 1, "a day without visitors was not kept");
            visitor("c2").await;
            let cached = today().await;
            if crate::domain::timestamp::now_ms() / 60_000 != minute {
                // The minute's cache bucket ended meanwhile: once more from an empty project.
                stores.projects.clear_project_data(project).await.unwrap();
                continue;
            }
            assert_eq!(cached, 1, "then kept for its minute");
            cache.invalidate(project).await;
            assert_eq!(today().await, 2, "a new generation is read afresh");
            return;
        }
    }

    #[test]
    fn sparkline_spans_the_box_from_zero_to_the_peak() {
        let pts = sparkline_points(&[0, 5, 10], 100.0, 20.0);
        assert_eq!(pts, "0.0,19.0 50.0,10.0 100.0,1.0");
    }

    #[test]
    fn an_all_zero_sparkline_lies_flat_at_the_bottom() {
        assert_eq!(sparkline_points(&[0, 0], 10.0, 10.0), "0.0,9.0 10.0,9.0");
        assert_eq!(sparkline_points(&[], 10.0, 10.0), "");
    }
}
