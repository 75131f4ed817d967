//! The MongoDB index definitions `migrate()` creates: SuperInsights 1.x's compound and unique
//! indexes (same keys, so the default names match the ones Mongoose made in an existing
//! database and re-creating them is a no-op), plus the few this port's queries need.
//!
//! TTL indexes (sessions, ingest-batch markers) are a bonus, never the expiry itself: servers
//! without them (FerretDB 1.x) refuse the option, `migrate` then goes on without them, and the
//! sweepers (`delete_expired_sessions`, the marker sweep in `purge_before`) do the work.
//!
//! Deliberately left out: SuperInsights' single-field indexes on `timestamp`, `sessionId`,
//! `clientId`, `eventName`, … Every query here is scoped by `projectId`, so they would only cost
//! ingest throughput.

use super::docs::{
    ERRORS, EVENTS, INGEST_BATCHES, INVITES, MEMBERS, ORGANIZATIONS, PAGEVIEWS, PERFORMANCE,
    PLATFORM_INVITES, PROJECTS, SESSIONS, SETTINGS, USERS,
};
use mongodb::{
    IndexModel,
    bson::{Document, doc},
    options::IndexOptions,
};
use std::time::Duration;

/// How long `write_once` markers are kept (the sweep, `sweep_batch_ledger`, is what removes
/// them on a server without TTL indexes).
pub(super) const BATCH_MARKER_TTL: Duration = crate::store::BATCH_LEDGER_TTL;

fn plain(keys: Document) -> IndexModel {
    IndexModel::builder().keys(keys).build()
}

fn unique(keys: Document) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().unique(true).build())
        .build()
}

fn expiring(keys: Document, after: Duration) -> IndexModel {
    IndexModel::builder()
        .keys(keys)
        .options(IndexOptions::builder().expire_after(after).build())
        .build()
}

/// True for a TTL index (one with `expireAfterSeconds`).
pub(super) fn is_ttl(model: &IndexModel) -> bool {
    model
        .options
        .as_ref()
        .is_some_and(|o| o.expire_after.is_some())
}

/// Every index, grouped by collection.
pub(super) fn all() -> Vec<(&'static str, Vec<IndexModel>)> {
    vec![
        (
            PAGEVIEWS,
            vec![
                plain(doc! {"projectId": 1, "timestamp": 1}),
                plain(doc! {"projectId": 1, "deviceType": 1, "timestamp": 1}),
                plain(doc! {"projectId": 1, "url": 1}),
            ],
        ),
        (
            EVENTS,
            vec![
                plain(doc! {"projectId": 1, "eventName": 1, "timestamp": 1}),
                plain(doc! {"projectId": 1, "eventName": 1, "durationMs": 1, "timestamp": 1}),
                // Not in SuperInsights 1.x: the newest events of a project (live feed, `recent`).
                plain(doc! {"projectId": 1, "timestamp": 1}),
            ],
        ),
        (
            ERRORS,
            vec![
                plain(doc! {"projectId": 1, "fingerprint": 1, "timestamp": 1}),
                // Not in SuperInsights 1.x (it scanned a project's errors for
                // a time range).
                plain(doc! {"projectId": 1, "timestamp": 1}),
            ],
        ),
        (
            PERFORMANCE,
            vec![
                plain(doc! {"projectId": 1, "timestamp": 1}),
                plain(doc! {"projectId": 1, "deviceType": 1, "timestamp": 1}),
                plain(doc! {"projectId": 1, "browser": 1, "timestamp": 1}),
                plain(doc! {"projectId": 1, "clientId": 1, "timestamp": 1}),
            ],
        ),
        (
            PROJECTS,
            vec![
                unique(doc! {"publicApiKey": 1}),
                unique(doc! {"secretApiKey": 1}),
                plain(doc! {"saasOrgId": 1}),
                // SuperInsights 1.x's index, for the organization and admin public-link lists.
                plain(doc! {"publicLinkEnabled": 1}),
            ],
        ),
        (USERS, vec![unique(doc! {"email": 1})]),
        // SuperInsights 1.x's AI analysis indexes.
        (
            super::ai::AI_PRESETS,
            vec![
                plain(doc! {"ownerUserId": 1, "createdAt": -1}),
                plain(doc! {"visibility": 1, "createdAt": -1}),
                plain(doc! {"name": 1, "visibility": 1}),
            ],
        ),
        (
            super::docs::AI_RUNS,
            vec![
                plain(doc! {"projectId": 1, "createdAt": -1}),
                plain(doc! {"projectId": 1, "start": 1, "end": 1, "createdAt": -1}),
            ],
        ),
        // SuperInsights 1.x's report indexes (ours store `projectId` as a hex string).
        (
            super::report_records::REPORTS,
            vec![
                plain(doc! {"projectId": 1, "status": 1, "createdAt": -1}),
                plain(doc! {"projectId": 1, "dedupHash": 1, "status": 1}),
                plain(doc! {"fileKey": 1, "expiresAt": 1}),
            ],
        ),
        (
            super::report_records::FILTER_TEMPLATES,
            vec![plain(doc! {"projectId": 1, "createdAt": -1})],
        ),
        (ORGANIZATIONS, vec![unique(doc! {"slug": 1})]),
        (
            MEMBERS,
            vec![
                unique(doc! {"orgId": 1, "userId": 1}),
                plain(doc! {"userId": 1}),
            ],
        ),
        (SETTINGS, vec![unique(doc! {"key": 1})]),
        (
            INVITES,
            vec![
                unique(doc! {"tokenHash": 1}),
                plain(doc! {"orgId": 1, "status": 1}),
                plain(doc! {"email": 1, "status": 1}),
            ],
        ),
        (
            PLATFORM_INVITES,
            vec![
                unique(doc! {"tokenHash": 1}),
                plain(doc! {"email": 1, "status": 1}),
            ],
        ),
        // Expired records go at the TTL monitor's next pass (about once a minute); until then
        // `load_session` filters them out itself.
        (
            SESSIONS,
            vec![expiring(doc! {"expireAt": 1}, Duration::ZERO)],
        ),
        (
            INGEST_BATCHES,
            vec![expiring(doc! {"createdAt": 1}, BATCH_MARKER_TTL)],
        ),
        // Ours: the job queue's claims (due queued jobs, expired leases).
        (
            super::jobs::JOBS,
            vec![
                plain(doc! {"state": 1, "runAfter": 1}),
                plain(doc! {"state": 1, "leaseUntil": 1}),
            ],
        ),
        // Ours: claim markers, deleted per job when it finishes.
        (super::jobs::JOB_CLAIMS, vec![plain(doc! {"job": 1})]),
        // The raw audit log (1.x indexed each filter field; the viewers sort by `ts`).
        (
            super::audit::RAW_LOGS,
            vec![
                plain(doc! {"ts": -1}),
                plain(doc! {"projectId": 1, "ts": -1}),
                plain(doc! {"orgId": 1, "ts": -1}),
                plain(doc! {"actionCode": 1, "ts": -1}),
            ],
        ),
        // Ours: error group states, read per project.
        (
            super::error_states::ERROR_GROUP_STATES,
            vec![plain(doc! {"projectId": 1})],
        ),
        // Ours: password resets by token hash; subscriptions by cadence.
        (
            super::audit::PASSWORD_RESETS,
            vec![unique(doc! {"tokenHash": 1})],
        ),
        (
            super::audit::EMAIL_SUBSCRIPTIONS,
            vec![plain(doc! {"cadence": 1, "createdAt": 1})],
        ),
        // Ours: the rollup engine's versions and blobs, read by bucket range.
        (
            super::rollups::ROLLUP_DAYS,
            vec![plain(doc! {"project": 1, "day": 1})],
        ),
        (
            super::rollups::ROLLUPS,
            vec![plain(doc! {"project": 1, "grain": 1, "bucket": 1})],
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_emails_slugs_memberships_and_settings_are_unique() {
        let all = all();
        let unique_keys: Vec<(&str, Vec<String>)> = all
            .iter()
            .flat_map(|(coll, models)| {
                models
                    .iter()
                    .filter(|m| m.options.as_ref().and_then(|o| o.unique) == Some(true))
                    .map(move |m| (*coll, m.keys.keys().cloned().collect()))
            })
            .collect();
        for expected in [
            (PROJECTS, vec!["publicApiKey"]),
            (PROJECTS, vec!["secretApiKey"]),
            (USERS, vec!["email"]),
            (ORGANIZATIONS, vec!["slug"]),
            (MEMBERS, vec!["orgId", "userId"]),
            (SETTINGS, vec!["key"]),
            (INVITES, vec!["tokenHash"]),
            (PLATFORM_INVITES, vec!["tokenHash"]),
        ] {
            let expected = (
                expected.0,
                expected.1.into_iter().map(String::from).collect::<Vec<_>>(),
            );
            assert!(
                unique_keys.contains(&expected),
                "missing unique index {expected:?}"
            );
        }
        assert!(
            all.iter()
                .filter(|(c, _)| [PAGEVIEWS, EVENTS, ERRORS, PERFORMANCE].contains(c))
                .all(|(_, models)| {
                    models.iter().all(|m| {
                        m.options.is_none()
                            && m.keys.keys().next().map(String::as_str) == Some("projectId")
                    })
                }),
            "analytics indexes are non-unique and scoped by projectId"
        );
    }

    #[test]
    fn sessions_expire_at_their_own_date() {
        let all = all();
        let (_, models) = all
            .iter()
            .find(|(c, _)| *c == SESSIONS)
            .expect("sessions are indexed");
        let ttl = models
            .iter()
            .find(|m| m.keys == doc! {"expireAt": 1})
            .expect("TTL index on expireAt");
        assert_eq!(
            ttl.options.as_ref().and_then(|o| o.expire_after),
            Some(Duration::ZERO)
        );
    }
}
