//! Background jobs in MongoDB (the `jobs` collection, ours: SuperInsights 1.x had no queue).
//! Claims are single-document `findOneAndUpdate`s, atomic on the server, so several instances
//! never claim one job twice; every later write of an attempt is conditional on its lease token.
//!
//! "Attempts left" is stored (`attemptsLeft` = `maxAttempts` − `attempts`, kept by every write
//! that changes `attempts`) rather than compared with `$expr`, which FerretDB lacks; `migrate`
//! fills it in for jobs written before it existed ([`MongoStore::backfill_job_fields`]).
//!
//! A claim is also decided by a unique insert, not only by `findOneAndUpdate`: FerretDB 1.24
//! runs `findAndModify` and `update` as a read followed by a write, so two workers can both
//! "claim" one job there. Every job counts its claims (`claims`, never decremented); claiming
//! takes the next number by inserting `<job id>:<n>` into `jobclaims`, whose `_id` only one
//! insert can win on any server, and only the winner moves the job (conditional on `claims`
//! still being `n − 1`). A job's markers are deleted when it finishes.

use super::{
    MongoStore,
    docs::{bson_to_json, date, json_to_bson, oid, read_id, read_int},
    errors::{CollectAll, map_err, only_id_duplicates},
};
use crate::domain::{ids::DocId, timestamp::now_ms};
use crate::store::{
    Job, JobClaim, JobCounts, JobDispatch, JobState, JobStore, NewJobRecord, StoreError,
    StoreResult,
};
use async_trait::async_trait;
use mongodb::{
    bson::{Bson, Document, doc},
    options::ReturnDocument,
};

/// The collection holding jobs.
pub(super) const JOBS: &str = "jobs";
/// One document per claim of a job (`_id` = `<job id>:<claim number>`): the claim's arbiter.
pub(super) const JOB_CLAIMS: &str = "jobclaims";
/// Claimable jobs tried per claim when racing workers take the first ones.
const CLAIM_CANDIDATES: i64 = 8;

fn opt_str(d: &Document, field: &str) -> Option<String> {
    d.get_str(field).ok().map(str::to_string)
}

fn opt_millis(d: &Document, field: &str) -> Option<i64> {
    match d.get(field)? {
        Bson::DateTime(t) => Some(t.timestamp_millis()),
        _ => read_int(d, field),
    }
}

fn job_from_doc(d: &Document) -> StoreResult<Job> {
    let bad = |field: &str| StoreError::other(format!("malformed or missing jobs.{field}"));
    let int = |field: &str| read_int(d, field).unwrap_or(0).max(0);
    Ok(Job {
        id: read_id(d, JOBS, "_id")?,
        kind: opt_str(d, "kind").ok_or_else(|| bad("kind"))?,
        payload: d.get("payload").map(bson_to_json).unwrap_or_default(),
        state: opt_str(d, "state")
            .as_deref()
            .and_then(JobState::parse)
            .ok_or_else(|| bad("state"))?,
        dispatch: opt_str(d, "dispatch")
            .as_deref()
            .and_then(JobDispatch::parse)
            .unwrap_or(JobDispatch::Store),
        attempts: int("attempts").min(i64::from(u32::MAX)) as u32,
        max_attempts: int("maxAttempts").min(i64::from(u32::MAX)) as u32,
        progress: int("progress").min(100) as u8,
        progress_message: opt_str(d, "progressMessage"),
        queued_at: opt_millis(d, "queuedAt").ok_or_else(|| bad("queuedAt"))?,
        run_after: opt_millis(d, "runAfter").ok_or_else(|| bad("runAfter"))?,
        started_at: opt_millis(d, "startedAt"),
        finished_at: opt_millis(d, "finishedAt"),
        lease_token: opt_str(d, "leaseToken"),
        lease_until: opt_millis(d, "leaseUntil"),
        worker: opt_str(d, "worker"),
        last_error: opt_str(d, "lastError"),
        result: d
            .get("result")
            .filter(|b| !matches!(b, Bson::Null))
            .map(bson_to_json),
    })
}

/// Claimable at `now`: queued and due, or running with an expired lease and attempts left. Jobs
/// Redis is expected to deliver use `cutoff` instead of `now` (see `JobStore::claim_next_job`).
fn claimable(now: i64, cutoff: i64) -> Document {
    doc! {"$or": [
        {"state": "queued", "dispatch": {"$ne": "redis"}, "runAfter": {"$lte": date(now)}},
        {"state": "queued", "dispatch": "redis", "runAfter": {"$lte": date(cutoff)}},
        {"state": "running", "dispatch": {"$ne": "redis"}, "leaseUntil": {"$lte": date(now)},
         "attemptsLeft": {"$gt": 0}},
        {"state": "running", "dispatch": "redis", "leaseUntil": {"$lte": date(cutoff)},
         "attemptsLeft": {"$gt": 0}},
    ]}
}

fn claim_update(claim: &JobClaim<'_>) -> Document {
    doc! {
        "$set": {
            "state": "running",
            "leaseToken": claim.token,
            "leaseUntil": date(claim.lease_until),
            "worker": claim.worker,
            "startedAt": date(claim.now),
            "progress": 0,
            "updatedAt": date(claim.now),
        },
        "$unset": {"finishedAt": "", "progressMessage": ""},
        "$inc": {"attempts": 1, "attemptsLeft": -1, "claims": 1},
    }
}

/// The filter for writes of the attempt holding `token`.
fn held(id: DocId, token: &str) -> Document {
    doc! {"_id": oid(id), "state": "running", "leaseToken": token}
}

impl MongoStore {
    /// Gives every job written before `attemptsLeft` and `claims` existed its values, one
    /// conditional update per job so that a concurrent claim is never overwritten. Repeatable.
    pub(super) async fn backfill_job_fields(&self) -> StoreResult<()> {
        let missing = self
            .coll(JOBS)
            .find(doc! {"attemptsLeft": {"$exists": false}})
            .projection(doc! {"attempts": 1, "maxAttempts": 1})
            .collect_all()
            .await?;
        for job in missing {
            let attempts = read_int(&job, "attempts").unwrap_or(0);
            let max_attempts = read_int(&job, "maxAttempts").unwrap_or(0);
            self.coll(JOBS)
                .update_one(
                    doc! {
                        "_id": job.get("_id").cloned().unwrap_or(Bson::Null),
                        "attempts": attempts,
                        "attemptsLeft": {"$exists": false},
                    },
                    doc! {"$set": {"attemptsLeft": max_attempts - attempts}},
                )
                .await
                .map_err(map_err)?;
        }
        // Numbering starts after the attempts already made, so no marker is reused.
        let unnumbered = self
            .coll(JOBS)
            .find(doc! {"claims": {"$exists": false}})
            .projection(doc! {"attempts": 1})
            .collect_all()
            .await?;
        for job in unnumbered {
            let attempts = read_int(&job, "attempts").unwrap_or(0);
            self.coll(JOBS)
                .update_one(
                    doc! {
                        "_id": job.get("_id").cloned().unwrap_or(Bson::Null),
                        "claims": {"$exists": false},
                    },
                    doc! {"$set": {"claims": attempts}},
                )
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    /// Claims the first job matching `filter` (due order) that no other worker claims first.
    async fn claim_where(
        &self,
        filter: Document,
        claim: &JobClaim<'_>,
    ) -> StoreResult<Option<Job>> {
        let candidates = self
            .coll(JOBS)
            .find(filter.clone())
            .sort(doc! {"runAfter": 1, "queuedAt": 1})
            .limit(CLAIM_CANDIDATES)
            .projection(doc! {"_id": 1, "claims": 1})
            .collect_all()
            .await?;
        for candidate in candidates {
            let id = read_id(&candidate, JOBS, "_id")?;
            let claims = read_int(&candidate, "claims").unwrap_or(0);
            let marker = doc! {
                "_id": format!("{}:{}", id.to_hex(), claims + 1),
                "job": oid(id),
                "createdAt": date(claim.now),
            };
            match self.coll(JOB_CLAIMS).insert_one(marker).await {
                Ok(_) => {}
                // Another worker took this claim number: the job is theirs.
                Err(e) if only_id_duplicates(&e) => continue,
                Err(e) => return Err(map_err(e)),
            }
            let mut ours = filter.clone();
            ours.insert("_id", oid(id));
            ours.insert("claims", claims);
            let claimed = self
                .coll(JOBS)
                .find_one_and_update(ours, claim_update(claim))
                .return_document(ReturnDocument::After)
                .await
                .map_err(map_err)?;
            // `None`: the job changed since it was read (finished, or no longer due).
            if let Some(claimed) = claimed {
                return job_from_doc(&claimed).map(Some);
            }
        }
        Ok(None)
    }

    /// Deletes the claim markers of a job that will not be claimed again.
    async fn forget_claims(&self, id: DocId) -> StoreResult<()> {
        self.coll(JOB_CLAIMS)
            .delete_many(doc! {"job": oid(id)})
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn update_held(&self, filter: Document, update: Document) -> StoreResult<bool> {
        let result = self
            .coll(JOBS)
            .update_one(filter, update)
            .await
            .map_err(map_err)?;
        Ok(result.modified_count == 1)
    }
}

#[async_trait]
impl JobStore for MongoStore {
    async fn insert_job(&self, job: &NewJobRecord) -> StoreResult<()> {
        self.coll(JOBS)
            .insert_one(doc! {
                "_id": oid(job.id),
                "kind": &job.kind,
                "payload": json_to_bson(&job.payload),
                "state": "queued",
                "dispatch": job.dispatch.as_str(),
                "attempts": 0,
                "maxAttempts": i64::from(job.max_attempts),
                "attemptsLeft": i64::from(job.max_attempts),
                "claims": 0,
                "progress": 0,
                "queuedAt": date(job.queued_at),
                "runAfter": date(job.run_after),
                "updatedAt": date(job.queued_at),
            })
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn job(&self, id: DocId) -> StoreResult<Option<Job>> {
        self.coll(JOBS)
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?
            .as_ref()
            .map(job_from_doc)
            .transpose()
    }

    async fn claim_job(&self, id: DocId, claim: &JobClaim<'_>) -> StoreResult<Option<Job>> {
        let mut filter = claimable(claim.now, claim.now);
        filter.insert("_id", oid(id));
        self.claim_where(filter, claim).await
    }

    async fn claim_next_job(
        &self,
        kinds: &[String],
        claim: &JobClaim<'_>,
        redis_cutoff: i64,
    ) -> StoreResult<Option<Job>> {
        let mut filter = claimable(claim.now, redis_cutoff.min(claim.now));
        filter.insert("kind", doc! {"$in": kinds});
        self.claim_where(filter, claim).await
    }

    async fn renew_job_lease(
        &self,
        id: DocId,
        token: &str,
        lease_until: i64,
        progress: Option<(u8, Option<&str>)>,
    ) -> StoreResult<bool> {
        let mut set = doc! {"leaseUntil": date(lease_until), "updatedAt": date(now_ms())};
        if let Some((percent, message)) = progress {
            set.insert("progress", i32::from(percent.min(100)));
            set.insert(
                "progressMessage",
                message.map_or(Bson::Null, |m| Bson::String(m.to_string())),
            );
        }
        // `modified_count` would be 0 for a renewal within the same millisecond; match instead.
        let result = self
            .coll(JOBS)
            .update_one(held(id, token), doc! {"$set": set})
            .await
            .map_err(map_err)?;
        Ok(result.matched_count == 1)
    }

    async fn complete_job(
        &self,
        id: DocId,
        token: &str,
        result: &serde_json::Value,
        now: i64,
    ) -> StoreResult<bool> {
        let done = self
            .update_held(
                held(id, token),
                doc! {
                    "$set": {"state": "completed", "progress": 100, "result": json_to_bson(result),
                             "finishedAt": date(now), "updatedAt": date(now)},
                    "$unset": {"leaseToken": "", "leaseUntil": ""},
                },
            )
            .await?;
        if done {
            self.forget_claims(id).await?;
        }
        Ok(done)
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
        let mut set =
            doc! {"lastError": error, "dispatch": dispatch.as_str(), "updatedAt": date(now)};
        let mut unset = doc! {"leaseToken": "", "leaseUntil": ""};
        match retry_at {
            Some(at) => {
                set.insert("state", "queued");
                set.insert("runAfter", date(at));
                unset.insert("finishedAt", "");
            }
            None => {
                set.insert("state", "failed");
                set.insert("finishedAt", date(now));
            }
        }
        let finished = retry_at.is_none();
        let done = self
            .update_held(held(id, token), doc! {"$set": set, "$unset": unset})
            .await?;
        if done && finished {
            self.forget_claims(id).await?;
        }
        Ok(done)
    }

    async fn release_job(
        &self,
        id: DocId,
        token: &str,
        dispatch: JobDispatch,
        now: i64,
    ) -> StoreResult<bool> {
        // A running job has attempts >= 1 (its claim counted one), so this never goes negative.
        self.update_held(
            held(id, token),
            doc! {
                "$set": {"state": "queued", "runAfter": date(now), "dispatch": dispatch.as_str(),
                         "updatedAt": date(now)},
                "$unset": {"leaseToken": "", "leaseUntil": "", "startedAt": ""},
                "$inc": {"attempts": -1, "attemptsLeft": 1},
            },
        )
        .await
    }

    async fn set_job_dispatch(&self, id: DocId, dispatch: JobDispatch) -> StoreResult<()> {
        self.coll(JOBS)
            .update_one(
                doc! {"_id": oid(id), "state": "queued"},
                doc! {"$set": {"dispatch": dispatch.as_str()}},
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn fail_abandoned_jobs(&self, now: i64, error: &str) -> StoreResult<Vec<DocId>> {
        let filter = doc! {
            "state": "running",
            "leaseUntil": {"$lte": date(now)},
            "attemptsLeft": {"$lte": 0},
        };
        // Standalone MongoDB has no multi-document transactions: fail them one by one, each
        // conditional on still being abandoned, and report only those this call changed.
        let candidates = self
            .coll(JOBS)
            .find(filter.clone())
            .projection(doc! {"_id": 1})
            .collect_all()
            .await?;
        let mut failed = Vec::new();
        for candidate in candidates {
            let id = read_id(&candidate, JOBS, "_id")?;
            let mut one = filter.clone();
            one.insert("_id", oid(id));
            let changed = self
                .update_held(
                    one,
                    doc! {
                        "$set": {"state": "failed", "lastError": error, "finishedAt": date(now),
                                 "updatedAt": date(now)},
                        "$unset": {"leaseToken": "", "leaseUntil": ""},
                    },
                )
                .await?;
            if changed {
                self.forget_claims(id).await?;
                failed.push(id);
            }
        }
        Ok(failed)
    }

    async fn job_counts(&self) -> StoreResult<JobCounts> {
        let groups = self
            .coll(JOBS)
            .aggregate(vec![doc! {"$group": {"_id": "$state", "n": {"$sum": 1}}}])
            .collect_all()
            .await?;
        let mut counts = JobCounts::default();
        for group in groups {
            let state = group.get_str("_id").ok().and_then(JobState::parse);
            if let Some(state) = state {
                counts.add(state, read_int(&group, "n").unwrap_or(0).max(0) as u64);
            }
        }
        counts.oldest_queued_ms = self
            .coll(JOBS)
            .find_one(doc! {"state": "queued"})
            .sort(doc! {"queuedAt": 1})
            .projection(doc! {"queuedAt": 1})
            .await
            .map_err(map_err)?
            .and_then(|d| opt_millis(&d, "queuedAt"));
        Ok(counts)
    }
}
