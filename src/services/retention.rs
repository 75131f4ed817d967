//! Data retention: analytics older than a project's `dataRetentionDays` are deleted (SuperInsights
//! 1.x stored the setting but never enforced it). Runs daily from startup; safe to run anywhere,
//! any number of times. Report files past their expiry (or of deleted reports) are removed here
//! too ([`purge_report_files`], hourly).

use crate::store::Stores;

const DAY_MS: i64 = 24 * 3600 * 1000;

/// Purges every live project of what is older than its retention at `now` (epoch ms, from the
/// caller's clock), then the ingest ledger of its old entries (`StoreAdmin::sweep_batch_ledger`);
/// returns the number of analytics documents removed. Errors are logged per project and do not
/// stop the others.
pub async fn purge_all(stores: &Stores, now: i64) -> u64 {
    let projects = match stores.projects.live_projects().await {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(error = %e, "retention purge skipped: cannot list projects");
            return 0;
        }
    };
    let mut total = 0;
    for project in projects {
        let cutoff = now - i64::from(project.data_retention_days) * DAY_MS;
        match stores.projects.purge_before(project.id, cutoff).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::info!(project = %project.id, removed = n, days = project.data_retention_days, "retention purge");
                total += n;
            }
            Err(e) => tracing::warn!(project = %project.id, error = %e, "retention purge failed"),
        }
    }
    match stores.admin.sweep_batch_ledger(now).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(forgotten = n, "old ingest ledger entries removed"),
        Err(e) => tracing::warn!(error = %e, "ingest ledger sweep failed"),
    }
    total
}

/// Removes the files of reports past their 30-day expiry and of deleted reports (the records
/// stay, without a file: a download then answers 410), as of `now` (epoch ms). Returns how many
/// files went.
pub async fn purge_report_files(
    reports: &crate::services::report_jobs::ReportJobs,
    now: i64,
) -> u64 {
    let removed = reports.sweep_files(now).await;
    if removed > 0 {
        tracing::info!(removed, "expired or deleted report files removed");
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::{Channel, Docs};
    use crate::domain::timestamp::now_ms;
    use crate::store::{ProjectUpdate, contract};

    #[tokio::test]
    async fn old_data_goes_recent_data_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (stores, p) =
            crate::services::fixtures::sqlite_with_project(&dir, "r@example.com").await;
        let update = ProjectUpdate {
            name: "P".into(),
            icon: "📊".into(),
            environment: "production".into(),
            data_retention_days: 7,
        };
        stores.projects.update_project(p.id, &update).await.unwrap();
        let now = now_ms();
        let docs = Docs::Pageviews(vec![
            contract::pageview("/old", now - 8 * DAY_MS),
            contract::pageview("/new", now - 6 * DAY_MS),
        ]);
        stores
            .events
            .write(&[contract::batch(p.id, docs)])
            .await
            .unwrap();
        assert_eq!(purge_all(&stores, now).await, 1);
        let left = stores
            .stats
            .recent(p.id, Channel::Pageviews, 10)
            .await
            .unwrap();
        assert_eq!(left.len(), 1);
        assert_eq!(left[0]["url"], "/new");
        assert_eq!(purge_all(&stores, now).await, 0, "idempotent");
        // A day later the page view of 6 days ago is 7 days old: past the retention too.
        assert_eq!(purge_all(&stores, now + DAY_MS - 1).await, 0);
        assert_eq!(purge_all(&stores, now + DAY_MS + 1).await, 1);
    }

    /// The daily purge also forgets ingest-ledger entries older than 30 days at its "now":
    /// until then a replayed batch is refused as already stored, afterwards it is new again.
    #[tokio::test]
    async fn the_purge_forgets_ledger_entries_after_thirty_days() {
        let dir = tempfile::tempdir().unwrap();
        let (stores, p) =
            crate::services::fixtures::sqlite_with_project(&dir, "l@example.com").await;
        let now = now_ms();
        let batch = contract::batch(
            p.id,
            Docs::Pageviews(vec![contract::pageview("/x", now - DAY_MS)]),
        );
        assert!(stores.events.write_once(&batch).await.unwrap());
        purge_all(&stores, now + 29 * DAY_MS).await;
        assert!(
            !stores.events.write_once(&batch).await.unwrap(),
            "remembered for 30 days"
        );
        purge_all(&stores, now + 31 * DAY_MS).await;
        assert!(
            stores.events.write_once(&batch).await.unwrap(),
            "forgotten after them"
        );
    }
}
