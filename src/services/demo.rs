//! Demo data: realistic-looking analytics for trying the dashboards and benchmarking them —
//! Zipf-distributed paths and event names, referrers, UTM campaigns, devices, browsers, countries,
//! returning visitors, web vitals and a few recurring errors, spread over the last `days` days.

use crate::{
    domain::{demo::DemoData, ids::DocId, timestamp::now_ms},
    store::{StoreResult, Stores},
};

pub use crate::domain::demo::Seeded;

/// Writes about `total` documents into `project` (70 % page views, 22 % events, 3 % errors, 5 %
/// web-vitals records) spread evenly over the last `days` days in time order, deterministic for
/// a given `seed` ([`DemoData`]).
pub async fn seed(
    stores: &Stores,
    project: DocId,
    total: u64,
    days: u32,
    seed: u64,
) -> StoreResult<Seeded> {
    let mut data = DemoData::new(project, total, days, seed, now_ms());
    for batches in data.by_ref() {
        stores.events.write(&batches).await?;
    }
    Ok(data.seeded())
}

/// Computes the project's dashboards once (30 days and 90 days), which materialises the store's
/// rollups for the seeded days, so the first real view after seeding is as fast as the next.
pub async fn warm_up(stores: &Stores, project: DocId) -> StoreResult<()> {
    for timeframe in [
        crate::domain::analytics::Timeframe::D30,
        crate::domain::analytics::Timeframe::M3,
    ] {
        crate::services::dashboard::dashboard(stores, project, timeframe).await?;
    }
    stores.stats.rollups_settled().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Channel;

    #[tokio::test]
    async fn seeds_the_requested_volume_across_channels_and_days() {
        let dir = tempfile::tempdir().unwrap();
        let (stores, p) =
            crate::services::fixtures::sqlite_with_project(&dir, "d@example.com").await;
        let s = seed(&stores, p.id, 12_000, 30, 7).await.unwrap();
        assert_eq!(s.pageviews + s.events + s.errors + s.performance, 12_000);
        assert!(
            s.pageviews > 7_000 && s.events > 2_000 && s.errors > 100 && s.performance > 300,
            "{s:?}"
        );
        assert_eq!(
            stores.stats.count(p.id, Channel::Pageviews).await.unwrap(),
            s.pageviews
        );
        let d = crate::services::dashboard::dashboard(
            &stores,
            p.id,
            crate::domain::analytics::Timeframe::D30,
        )
        .await
        .unwrap();
        assert!(
            d.page_views.views_by_day.len() >= 28,
            "spread over the days"
        );
        assert!(
            d.page_views.top_pages[0].views > d.page_views.top_pages[4].views,
            "Zipf: a head and a tail"
        );
    }
}
