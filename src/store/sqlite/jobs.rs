//! Background jobs in SQLite (the `jobs` table): job state for the UI and the durable queue.
//! Every claim is one `UPDATE … RETURNING`, which SQLite runs under the database's write lock, so
//! several processes sharing the file never claim the same job twice.

use super::{SqliteStore, map_err};
use crate::domain::ids::DocId;
use crate::store::{
    Job, JobClaim, JobCounts, JobDispatch, JobState, JobStore, NewJobRecord, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use sqlx::{Row, sqlite::SqliteRow};

/// The condition under which a job may be claimed at `?now` (queued and due, or running with an
/// expired lease and attempts left). `?cutoff` replaces `?now` for jobs Redis is expected to
/// deliver, so the store sweep leaves them to Redis for a grace period.
const CLAIMABLE: &str = "((state = 'queued' AND run_after <= CASE dispatch WHEN 'redis' THEN :cutoff ELSE :now END) \
     OR (state = 'running' AND lease_until <= CASE dispatch WHEN 'redis' THEN :cutoff ELSE :now END \
         AND attempts < max_attempts))";

/// The columns set by a claim: a new attempt with a fresh lease.
const CLAIM_SET: &str = "state = 'running', attempts = attempts + 1, lease_token = :token, \
     lease_until = :lease_until, worker = :worker, started_at = :now, finished_at = NULL, \
     progress = 0, progress_message = NULL, updated_at = :now";

fn claim_sql(target: &str) -> String {
    // sqlx binds positionally; named markers are spelled out once here and replaced by `?N`.
    format!("UPDATE jobs SET {CLAIM_SET} WHERE {target} AND {CLAIMABLE} RETURNING *")
        .replace(":token", "?1")
        .replace(":lease_until", "?2")
        .replace(":worker", "?3")
        .replace(":now", "?4")
        .replace(":cutoff", "?5")
}

fn job_from_row(r: &SqliteRow) -> StoreResult<Job> {
    let bad = |field: &str| StoreError::other(format!("malformed jobs.{field}"));
    let id: String = r.try_get("id").map_err(map_err)?;
    let state: String = r.try_get("state").map_err(map_err)?;
    let dispatch: String = r.try_get("dispatch").map_err(map_err)?;
    let payload: String = r.try_get("payload").map_err(map_err)?;
    let result: Option<String> = r.try_get("result").map_err(map_err)?;
    let attempts: i64 = r.try_get("attempts").map_err(map_err)?;
    let max_attempts: i64 = r.try_get("max_attempts").map_err(map_err)?;
    let progress: i64 = r.try_get("progress").map_err(map_err)?;
    Ok(Job {
        id: DocId::parse(&id).ok_or_else(|| bad("id"))?,
        kind: r.try_get("kind").map_err(map_err)?,
        payload: serde_json::from_str(&payload).map_err(|_| bad("payload"))?,
        state: JobState::parse(&state).ok_or_else(|| bad("state"))?,
        dispatch: JobDispatch::parse(&dispatch).ok_or_else(|| bad("dispatch"))?,
        attempts: attempts.clamp(0, i64::from(u32::MAX)) as u32,
        max_attempts: max_attempts.clamp(0, i64::from(u32::MAX)) as u32,
        progress: progress.clamp(0, 100) as u8,
        progress_message: r.try_get("progress_message").map_err(map_err)?,
        queued_at: r.try_get("queued_at").map_err(map_err)?,
        run_after: r.try_get("run_after").map_err(map_err)?,
        started_at: r.try_get("started_at").map_err(map_err)?,
        finished_at: r.try_get("finished_at").map_err(map_err)?,
        lease_token: r.try_get("lease_token").map_err(map_err)?,
        lease_until: r.try_get("lease_until").map_err(map_err)?,
        worker: r.try_get("worker").map_err(map_err)?,
        last_error: r.try_get("last_error").map_err(map_err)?,
        result: result
            .map(|s| serde_json::from_str(&s).map_err(|_| bad("result")))
            .transpose()?,
    })
}

#[async_trait]
impl JobStore for SqliteStore {
    async fn insert_job(&self, job: &NewJobRecord) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO jobs (id, kind, payload, state, dispatch, attempts, max_attempts, \
             queued_at, run_after, updated_at) VALUES (?, ?, ?, 'queued', ?, 0, ?, ?, ?, ?)",
        )
        .bind(job.id.to_hex())
        .bind(&job.kind)
        .bind(job.payload.to_string())
        .bind(job.dispatch.as_str())
        .bind(i64::from(job.max_attempts))
        .bind(job.queued_at)
        .bind(job.run_after)
        .bind(job.queued_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn job(&self, id: DocId) -> StoreResult<Option<Job>> {
        self.find_by_id("SELECT * FROM jobs WHERE id = ?", id, job_from_row)
            .await
    }

    async fn claim_job(&self, id: DocId, claim: &JobClaim<'_>) -> StoreResult<Option<Job>> {
        let row = sqlx::query(&claim_sql("id = ?6"))
            .bind(claim.token)
            .bind(claim.lease_until)
            .bind(claim.worker)
            .bind(claim.now)
            .bind(claim.now)
            .bind(id.to_hex())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn claim_next_job(
        &self,
        kinds: &[String],
        claim: &JobClaim<'_>,
        redis_cutoff: i64,
    ) -> StoreResult<Option<Job>> {
        let kinds = serde_json::to_string(kinds).map_err(StoreError::other_from)?;
        // The inner SELECT picks the oldest claimable job; the outer WHERE repeats the condition
        // so the row is only taken if it is still claimable when written.
        let pick = format!(
            "id = (SELECT id FROM jobs WHERE kind IN (SELECT value FROM json_each(?6)) AND {CLAIMABLE} \
             ORDER BY run_after, queued_at LIMIT 1)"
        )
        .replace(":now", "?4")
        .replace(":cutoff", "?5");
        let row = sqlx::query(&claim_sql(&pick))
            .bind(claim.token)
            .bind(claim.lease_until)
            .bind(claim.worker)
            .bind(claim.now)
            .bind(redis_cutoff.min(claim.now))
            .bind(kinds)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(job_from_row).transpose()
    }

    async fn renew_job_lease(
        &self,
        id: DocId,
        token: &str,
        lease_until: i64,
        progress: Option<(u8, Option<&str>)>,
    ) -> StoreResult<bool> {
        let (percent, message) = match progress {
            Some((p, m)) => (Some(i64::from(p.min(100))), m),
            None => (None, None),
        };
        let changed = sqlx::query(
            "UPDATE jobs SET lease_until = ?, progress = COALESCE(?, progress), \
             progress_message = CASE WHEN ? IS NULL THEN progress_message ELSE ? END, updated_at = ? \
             WHERE id = ? AND state = 'running' AND lease_token = ?",
        )
        .bind(lease_until)
        .bind(percent)
        .bind(percent)
        .bind(message)
        .bind(crate::domain::timestamp::now_ms())
        .bind(id.to_hex())
        .bind(token)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn complete_job(
        &self,
        id: DocId,
        token: &str,
        result: &serde_json::Value,
        now: i64,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE jobs SET state = 'completed', progress = 100, result = ?, finished_at = ?, \
             lease_token = NULL, lease_until = NULL, updated_at = ? \
             WHERE id = ? AND state = 'running' AND lease_token = ?",
        )
        .bind(result.to_string())
        .bind(now)
        .bind(now)
        .bind(id.to_hex())
        .bind(token)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn fail_job(
        &self,
        id: DocId,
        token: &str,
        error: &str,
        retry_at: Option<i64>,
        dispatch: JobDispatch,
        now: i64,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE jobs SET state = CASE WHEN ?1 IS NULL THEN 'failed' ELSE 'queued' END, \
             run_after = COALESCE(?1, run_after), \
             finished_at = CASE WHEN ?1 IS NULL THEN ?2 ELSE NULL END, \
             last_error = ?3, dispatch = ?4, lease_token = NULL, lease_until = NULL, updated_at = ?2 \
             WHERE id = ?5 AND state = 'running' AND lease_token = ?6",
        )
        .bind(retry_at)
        .bind(now)
        .bind(error)
        .bind(dispatch.as_str())
        .bind(id.to_hex())
        .bind(token)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn release_job(
        &self,
        id: DocId,
        token: &str,
        dispatch: JobDispatch,
        now: i64,
    ) -> StoreResult<bool> {
        let changed = sqlx::query(
            "UPDATE jobs SET state = 'queued', attempts = MAX(attempts - 1, 0), run_after = ?1, \
             dispatch = ?2, lease_token = NULL, lease_until = NULL, started_at = NULL, \
             updated_at = ?1 WHERE id = ?3 AND state = 'running' AND lease_token = ?4",
        )
        .bind(now)
        .bind(dispatch.as_str())
        .bind(id.to_hex())
        .bind(token)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(changed == 1)
    }

    async fn set_job_dispatch(&self, id: DocId, dispatch: JobDispatch) -> StoreResult<()> {
        sqlx::query("UPDATE jobs SET dispatch = ? WHERE id = ? AND state = 'queued'")
            .bind(dispatch.as_str())
            .bind(id.to_hex())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn fail_abandoned_jobs(&self, now: i64, error: &str) -> StoreResult<Vec<DocId>> {
        let ids: Vec<String> = sqlx::query_scalar(
            "UPDATE jobs SET state = 'failed', last_error = ?1, finished_at = ?2, \
             lease_token = NULL, lease_until = NULL, updated_at = ?2 \
             WHERE state = 'running' AND lease_until <= ?2 AND attempts >= max_attempts RETURNING id",
        )
        .bind(error)
        .bind(now)
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(ids.iter().filter_map(|s| DocId::parse(s)).collect())
    }

    async fn job_counts(&self) -> StoreResult<JobCounts> {
        let rows = sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        let mut counts = JobCounts::default();
        for row in rows {
            let state: String = row.try_get("state").map_err(map_err)?;
            let n: i64 = row.try_get("n").map_err(map_err)?;
            if let Some(state) = JobState::parse(&state) {
                counts.add(state, n.max(0) as u64);
            }
        }
        counts.oldest_queued_ms =
            sqlx::query_scalar("SELECT MIN(queued_at) FROM jobs WHERE state = 'queued'")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteOptions;
    use std::collections::HashSet;
    use std::sync::Arc;

    /// Two stores (two pools, as two processes would have) on one file, eight claimers racing
    /// over 40 due jobs: every job is claimed exactly once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn two_processes_on_one_file_never_claim_the_same_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.db");
        let a = Arc::new(
            SqliteStore::open(&path, SqliteOptions::default())
                .await
                .unwrap(),
        );
        crate::store::StoreAdmin::migrate(&*a).await.unwrap();
        let b = Arc::new(
            SqliteStore::open(&path, SqliteOptions::default())
                .await
                .unwrap(),
        );
        let now = crate::domain::timestamp::now_ms();
        let mut ids = HashSet::new();
        for _ in 0..40 {
            let record = NewJobRecord {
                id: DocId::new(),
                kind: "race".into(),
                payload: serde_json::json!({}),
                max_attempts: 3,
                queued_at: now,
                run_after: now,
                dispatch: JobDispatch::Store,
            };
            ids.insert(record.id);
            a.insert_job(&record).await.unwrap();
        }
        let claimers: Vec<_> = (0..8)
            .map(|i| {
                let store: Arc<dyn JobStore> = if i % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move {
                    let token = format!("t{i}");
                    let mut mine = Vec::new();
                    let kinds = vec!["race".to_string()];
                    loop {
                        let now = crate::domain::timestamp::now_ms();
                        let claim = JobClaim {
                            token: &token,
                            worker: "w",
                            now,
                            lease_until: now + 60_000,
                        };
                        match store.claim_next_job(&kinds, &claim, now).await.unwrap() {
                            Some(job) => mine.push(job.id),
                            None => return mine,
                        }
                    }
                })
            })
            .collect();
        let mut claimed = Vec::new();
        for c in claimers {
            claimed.extend(c.await.unwrap());
        }
        assert_eq!(claimed.len(), 40, "no job claimed twice");
        assert_eq!(claimed.into_iter().collect::<HashSet<_>>(), ids);
        let counts = b.job_counts().await.unwrap();
        assert_eq!((counts.queued, counts.running), (0, 40));
    }
}
