//! Storage ports: the traits every backend implements, the types they speak, and [`Stores`], the
//! bundle chosen once at startup. No SQL or BSON lives outside this module's backends.
//!
//! Backends: `sqlite` (embedded default) and `mongo` (when `MONGODB_URI` is set). Both pass the
//! same contract suite (`contract`).

#[cfg(test)]
pub mod contract;
pub mod mongo;
pub mod sqlite;

use crate::domain::{
    analytics::{ErrorsSummary, EventsSummary, PageViewsSummary, PerformanceFigures, TimeRange},
    analytics::{
        EventDetail, EventFilters, EventsReport, PageViewFilters, PageViewsReport, RecentPaging,
    },
    drop_rules::DropRules,
    ids::{DocId, random_hex},
    model::{Channel, WriteBatch},
    records::{fresh_api_keys, slugify},
    segment::SegmentFilters,
    timestamp::now_ms,
};
use async_trait::async_trait;
use std::sync::Arc;

/// The records the ports speak live in the domain layer; re-exported here so that every
/// `store::Project`-style path keeps working.
pub use crate::domain::records::{
    Invite, InviteScope, InviteStatus, Job, JobCounts, JobDispatch, JobState, KeyKind, KeyMatch,
    Member, NewJobRecord, NewProject, OrgRole, OrgStatus, Organization, PlatformRole, Project,
    ProjectUpdate, PublicLink, User,
};

/// What a port error keeps of the driver error (or other error) behind it: shared, so that
/// [`StoreError`] stays `Clone`.
pub type ErrorCause = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// The one error type at the port boundary; driver types never cross it, but the driver error
/// behind `Unavailable` or `Other` is kept as its `source` (for logs). Two errors are equal when
/// their variant and message are: causes are not compared.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// A uniqueness rule was violated (e.g. an email already registered); the message is the
    /// backend's description of the duplicate (or a rewording of it).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The backend cannot be reached or is busy; retrying later may succeed.
    #[error("store unavailable: {message}")]
    Unavailable {
        message: String,
        #[source]
        source: Option<ErrorCause>,
    },
    #[error("store error: {message}")]
    Other {
        message: String,
        #[source]
        source: Option<ErrorCause>,
    },
}

impl StoreError {
    pub fn is_unavailable(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    /// `Unavailable` with only a message.
    pub fn unavailable(message: String) -> Self {
        StoreError::Unavailable {
            message,
            source: None,
        }
    }

    /// `Unavailable` because of `source`, whose text is the message.
    pub fn unavailable_from(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::unavailable_with(source.to_string(), source)
    }

    /// `Unavailable` with `message`, because of `source`.
    pub fn unavailable_with(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Unavailable {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }

    /// `Other` with only a message.
    pub fn other(message: String) -> Self {
        StoreError::Other {
            message,
            source: None,
        }
    }

    /// `Other` because of `source`, whose text is the message.
    pub fn other_from(source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::other_with(source.to_string(), source)
    }

    /// `Other` with `message`, because of `source`.
    pub fn other_with(
        message: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        StoreError::Other {
            message: message.into(),
            source: Some(Arc::new(source)),
        }
    }
}

impl PartialEq for StoreError {
    fn eq(&self, other: &Self) -> bool {
        use StoreError::*;
        match (self, other) {
            (NotFound, NotFound) => true,
            (Conflict(a), Conflict(b)) => a == b,
            (Unavailable { message: a, .. }, Unavailable { message: b, .. })
            | (Other { message: a, .. }, Other { message: b, .. }) => a == b,
            _ => false,
        }
    }
}

impl Eq for StoreError {}

#[cfg(test)]
mod error_tests {
    use super::StoreError;
    use std::error::Error;

    #[test]
    fn driver_errors_stay_the_source_and_the_text_is_unchanged() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = StoreError::unavailable_from(io);
        assert_eq!(e.to_string(), "store unavailable: refused");
        assert!(e.is_unavailable());
        assert_eq!(e.source().map(ToString::to_string), Some("refused".into()));
        let e = StoreError::other_with("migration failed: boom", std::fmt::Error);
        assert_eq!(e.to_string(), "store error: migration failed: boom");
        assert!(e.source().is_some());
        assert!(StoreError::other("bad id".into()).source().is_none());
        assert_eq!(
            StoreError::Conflict("dup".into()).to_string(),
            "conflict: dup"
        );
    }

    #[test]
    fn equality_compares_the_variant_and_message_not_the_cause() {
        let refused = || std::io::Error::other("refused");
        assert_eq!(
            StoreError::unavailable_from(refused()),
            StoreError::unavailable("refused".into())
        );
        assert_ne!(
            StoreError::unavailable_from(refused()),
            StoreError::other_from(refused())
        );
        assert_ne!(StoreError::other("a".into()), StoreError::other("b".into()));
        let cloned = StoreError::other_from(refused()).clone();
        assert!(cloned.source().is_some(), "a clone keeps the cause");
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Projects, their keys and their per-project settings.
#[async_trait]
pub trait ProjectStore: Send + Sync {
    /// Inserts a project built by [`Project::new`]. Errors: `Conflict` if a key collides.
    async fn insert_project(&self, project: &Project) -> StoreResult<()>;
    /// Builds a project with fresh `pk_`/`sk_` keys ([`Project::new`]) and inserts it.
    async fn create_project(&self, new: NewProject) -> StoreResult<Project> {
        let project = Project::new(new, now_ms());
        self.insert_project(&project).await?;
        Ok(project)
    }
    /// The project with this id, including soft-deleted ones (check `deleted_at`).
    async fn project(&self, id: DocId) -> StoreResult<Option<Project>>;
    /// Live (not soft-deleted) projects of an organization, newest first.
    async fn projects_of_org(&self, org_id: DocId) -> StoreResult<Vec<Project>>;
    /// The live project whose public **or** secret key equals `key` exactly.
    async fn find_by_api_key(&self, key: &str) -> StoreResult<Option<KeyMatch>>;
    /// The project's event drop rules; defaults (disabled) when none are stored.
    async fn drop_rules(&self, project_id: DocId) -> StoreResult<DropRules>;
    /// Replaces the project's event drop rules.
    async fn set_drop_rules(&self, project_id: DocId, rules: &DropRules) -> StoreResult<()>;
    /// Changes the editable fields. Errors: `NotFound` for an unknown or deleted project.
    async fn update_project(&self, id: DocId, update: &ProjectUpdate) -> StoreResult<Project>;
    /// Replaces both keys of a live project; the old keys stop matching at once.
    /// Errors: `NotFound` for an unknown or deleted project.
    async fn set_api_keys(
        &self,
        id: DocId,
        public_api_key: &str,
        secret_api_key: &str,
    ) -> StoreResult<Project>;
    /// Replaces both keys with fresh ones ([`fresh_api_keys`]).
    async fn regenerate_keys(&self, id: DocId) -> StoreResult<Project> {
        let (public, secret) = fresh_api_keys();
        self.set_api_keys(id, &public, &secret).await
    }
    /// Marks the project deleted (keys stop authenticating; data is kept).
    async fn soft_delete_project(&self, id: DocId) -> StoreResult<()>;
    /// Deletes the project's analytics documents and drop rules and resets its dropped counter.
    async fn clear_project_data(&self, id: DocId) -> StoreResult<()>;
    /// Every live project (for background jobs such as the retention purge).
    async fn live_projects(&self) -> StoreResult<Vec<Project>>;
    /// Deletes the project's analytics documents older than `cutoff_ms`; returns how many.
    async fn purge_before(&self, id: DocId, cutoff_ms: i64) -> StoreResult<u64>;
    /// The project (deleted or not) with its public-link state; `None` for an unknown project.
    async fn public_link(&self, id: DocId) -> StoreResult<Option<PublicLink>>;
    /// Enables the project's public link with a new token hash (`token_hash` is what is stored;
    /// never the token): clears `revoked_at`, sets `last_regenerated_at` to `at_ms`, and
    /// `created_at` to `at_ms` unless the link was already enabled. The previous hash stops
    /// matching at once. Errors: `NotFound` for an unknown or deleted project.
    async fn set_public_link(
        &self,
        id: DocId,
        token_hash: &str,
        at_ms: i64,
    ) -> StoreResult<PublicLink>;
    /// Disables the project's public link: clears the hash, sets `revoked_at` to `at_ms`.
    /// Errors: `NotFound` for an unknown project.
    async fn revoke_public_link(&self, id: DocId, at_ms: i64) -> StoreResult<()>;
    /// Enabled public links of live projects, of one organization (`Some`) or of all (`None`),
    /// most recently enabled first.
    async fn public_links(&self, org_id: Option<DocId>) -> StoreResult<Vec<PublicLink>>;
}

/// Users, organizations and memberships (the part of saasbackend SuperInsights relied on).
/// The global setting holding the platform admin's choice of open registration.
pub const REGISTRATION_KEY: &str = "PLATFORM:REGISTRATION_ENABLED";
/// Its description, stored beside it (as saasbackend's GlobalSetting has one).
pub const REGISTRATION_DESCRIPTION: &str = "Open registration, as the platform admin set it";

#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Inserts a user built by [`User::new`]. Errors: `Conflict` when the email is taken.
    async fn insert_user(&self, user: &User) -> StoreResult<()>;
    /// Builds a user ([`User::new`]: the email lower-cased) and inserts it.
    /// Errors: `Conflict("email already registered")` when the email is taken.
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        name: Option<&str>,
        role: PlatformRole,
    ) -> StoreResult<User> {
        let user = User::new(email, password_hash, name, role, now_ms());
        match self.insert_user(&user).await {
            Err(StoreError::Conflict(_)) => {
                Err(StoreError::Conflict("email already registered".into()))
            }
            inserted => inserted.map(|()| user),
        }
    }
    /// Looks the email up case-insensitively.
    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>>;
    async fn count_users(&self) -> StoreResult<u64>;
    /// Inserts an organization built by [`Organization::new`]. Errors: `Conflict` when the slug
    /// is taken.
    async fn insert_org(&self, org: &Organization) -> StoreResult<()>;
    /// Creates an active organization owned by `owner`; a unique slug is derived from the name
    /// (the name's slug, else with a random suffix).
    async fn create_org(&self, name: &str, owner: DocId) -> StoreResult<Organization> {
        let base = slugify(name);
        for attempt in 0..8 {
            let slug = if attempt == 0 {
                base.clone()
            } else {
                format!("{base}-{}", random_hex(3))
            };
            let org = Organization::new(name, slug, owner, now_ms());
            match self.insert_org(&org).await {
                Ok(()) => return Ok(org),
                // The id is fresh, so a duplicate can only be the slug: try another.
                Err(StoreError::Conflict(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(StoreError::Conflict(format!("no free slug for {name:?}")))
    }
    /// Adds (or reactivates) `user` in `org` with `role`.
    async fn add_member(&self, org: DocId, user: DocId, role: OrgRole) -> StoreResult<()>;
    /// The role of an active member, `None` when not a member.
    async fn member_role(&self, org: DocId, user: DocId) -> StoreResult<Option<OrgRole>>;
    /// The user's active memberships in active organizations with their role, oldest first.
    async fn memberships(&self, user: DocId) -> StoreResult<Vec<(Organization, OrgRole)>>;
    async fn user(&self, id: DocId) -> StoreResult<Option<User>>;
    /// Every user, oldest first.
    async fn list_users(&self) -> StoreResult<Vec<User>>;
    async fn set_password_hash(&self, user: DocId, hash: &str) -> StoreResult<()>;
    /// Whether open registration is on, as the platform admin last set it (`None`: never set,
    /// the configuration decides).
    async fn registration_setting(&self) -> StoreResult<Option<bool>>;
    /// Stores the platform admin's choice of open registration (shared by every instance).
    async fn set_registration_setting(&self, open: bool) -> StoreResult<()>;
    /// Sets a user's email (already validated and lowercased). Errors: `Conflict` when another
    /// user has it, `NotFound` for an unknown user.
    async fn set_user_email(&self, user: DocId, email: &str) -> StoreResult<()>;
    /// Sets the platform role. Errors: `NotFound`.
    async fn set_user_role(&self, user: DocId, role: PlatformRole) -> StoreResult<()>;
    /// Deletes the user and all their memberships. Errors: `NotFound`.
    async fn delete_user(&self, user: DocId) -> StoreResult<()>;
    async fn org(&self, id: DocId) -> StoreResult<Option<Organization>>;
    /// Every organization, oldest first.
    async fn list_orgs(&self) -> StoreResult<Vec<Organization>>;
    async fn rename_org(&self, id: DocId, name: &str) -> StoreResult<()>;
    /// Members of a disabled organization lose access.
    async fn set_org_status(&self, id: DocId, status: OrgStatus) -> StoreResult<()>;
    /// Active members of an organization, oldest membership first.
    async fn members(&self, org: DocId) -> StoreResult<Vec<Member>>;
    /// Marks a membership removed. Errors: `NotFound` when not an active member.
    async fn remove_member(&self, org: DocId, user: DocId) -> StoreResult<()>;
}

/// Organization and platform invitations.
#[async_trait]
pub trait InviteStore: Send + Sync {
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()>;
    async fn invite_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Invite>>;
    async fn set_invite_status(&self, id: DocId, status: InviteStatus) -> StoreResult<()>;
    /// Pending invites of an organization (`Some`) or of the platform (`None`), newest first.
    async fn pending_invites(&self, org: Option<DocId>) -> StoreResult<Vec<Invite>>;
}

/// Durable server-side session records (opaque bytes; the session layer encodes them).
#[async_trait]
pub trait SessionRecords: Send + Sync {
    /// Inserts a new record; `false` (and nothing written) when the id already exists.
    async fn create_session(&self, id: &str, data: &[u8], expires_at_ms: i64) -> StoreResult<bool>;
    /// Inserts or replaces a record.
    async fn save_session(&self, id: &str, data: &[u8], expires_at_ms: i64) -> StoreResult<()>;
    /// The record's bytes, `None` when missing or expired at `now_ms` (the caller's clock).
    async fn load_session(&self, id: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>>;
    async fn delete_session(&self, id: &str) -> StoreResult<()>;
    /// Removes the records expired at `now_ms`; returns how many.
    async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<u64>;
}

/// The ingestion sink.
#[async_trait]
pub trait EventWriter: Send + Sync {
    /// Stores every document of every batch, all or nothing, and adds each batch's `dropped`
    /// count to its project. Durable when it returns `Ok`.
    async fn write(&self, batches: &[WriteBatch]) -> StoreResult<()>;
    /// Stores one batch at most once, keyed by `batch_id`: returns `false` (and writes nothing)
    /// when that batch was already stored. Used to replay the disk spool safely.
    async fn write_once(&self, batch: &WriteBatch) -> StoreResult<bool>;
    /// [`EventWriter::write_once`] for several batches in one store transaction (SQLite) or a
    /// few round trips (MongoDB): element `i` is `true` when `batches[i]` was stored now,
    /// `false` when it was already in the ledger (or appears earlier in `batches`). On `Err` no
    /// batch of the group is recorded in the ledger, so each can be replayed. Used by the Redis
    /// ingest buffer's writer to commit a whole read of the stream at once.
    async fn write_once_many(&self, batches: &[WriteBatch]) -> StoreResult<Vec<bool>>;
}

/// Read side of the analytics data. Issue-by-issue this grows summary queries (dashboards);
/// today it answers counts and the newest documents.
#[async_trait]
pub trait StatsReader: Send + Sync {
    /// Number of stored documents of `channel` for the project.
    async fn count(&self, project_id: DocId, channel: Channel) -> StoreResult<u64>;
    /// Waits until the rollups earlier reads built are stored (reads store them in the
    /// background, so that no read waits for a write lock): for a command that exits after
    /// building them, and for tests that look at what is stored.
    async fn rollups_settled(&self);
    /// The newest `limit` documents of `channel`, newest first, as JSON with SuperInsights field
    /// names (`timestamp` as an ISO string).
    async fn recent(
        &self,
        project_id: DocId,
        channel: Channel,
        limit: u32,
    ) -> StoreResult<Vec<serde_json::Value>>;
    /// Events dropped by the project's drop rules since it was created or last cleared.
    async fn dropped_events(&self, project_id: DocId) -> StoreResult<u64>;
    /// Page views in `range` (inclusive): total, unique visitors (distinct `clientId`, documents
    /// without one counting as one more), views per UTC day, and the `top` most viewed URLs
    /// (ties broken by URL).
    async fn pageviews_summary(
        &self,
        project_id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<PageViewsSummary>;
    /// Unique visitors (as in [`pageviews_summary`](Self::pageviews_summary)) of each of
    /// `ranges`, read together: adjacent hours and a day made of some of them, say. Each range
    /// begins at a whole hour or at the earliest range's start and ends just before a whole hour
    /// or at the latest range's end (else an error); the union should span a day or two.
    async fn unique_visitors_each(
        &self,
        project_id: DocId,
        ranges: &[TimeRange],
    ) -> StoreResult<Vec<u64>>;
    /// Events in `range`: total, per UTC day, and the `top` event names by count (ties by name).
    async fn events_summary(
        &self,
        project_id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<EventsSummary>;
    /// Errors in `range`: total, distinct fingerprints, per UTC day.
    async fn errors_summary(
        &self,
        project_id: DocId,
        range: TimeRange,
    ) -> StoreResult<ErrorsSummary>;
    /// The dashboard's errors in `range` (inclusive): the [`StatsReader::errors_summary`]
    /// figures, the number of error groups (distinct signatures, `domain::error_signature`) and
    /// the `list` most frequent groups (ties by key), each with its earliest message in the
    /// range and its newest time; with `signature`, restricted to that group's errors (a well
    /// formed key of no error in range gives zeros). An unknown project has no errors.
    async fn error_figures(
        &self,
        project_id: DocId,
        range: TimeRange,
        signature: Option<&str>,
        list: usize,
    ) -> StoreResult<crate::domain::error_groups::ErrorFigures>;
    /// Web vitals in `range`: p50/p75/p95 per metric (lower nearest rank, nulls excluded), daily
    /// averages, and the number of measurements.
    async fn performance_summary(
        &self,
        project_id: DocId,
        range: TimeRange,
    ) -> StoreResult<PerformanceFigures>;
    /// Page views in `range` (inclusive) broken down by referrer host, UTM source / medium /
    /// campaign, country, browser, OS and device type: per dimension the `top` values by count
    /// (ties by value), missing values as `(direct)` / `(none)` / `(unknown)` (see
    /// [`crate::domain::analytics::Dimension::value_of`]). An unknown project has empty lists.
    async fn breakdowns(
        &self,
        project_id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<crate::domain::analytics::Breakdowns>;
    /// The dashboard's page views in `range` (inclusive) restricted by `filters`
    /// ([`PageViewFilters::matches`], and by visit for the entry and exit page): the summary
    /// with its `top` pages, the visits (by `sessionId`), and the breakdowns with up to `list`
    /// rows per dimension, the pages by views (`page`) and the entry and exit pages by visits;
    /// with `previous`, that range's summary and visits under the same filters. An unknown
    /// project has empty figures.
    async fn pageview_figures(
        &self,
        project_id: DocId,
        range: TimeRange,
        previous: Option<TimeRange>,
        filters: &PageViewFilters,
        top: usize,
        list: usize,
    ) -> StoreResult<crate::domain::analytics::PageViewFigures>;
    /// The dashboard's events in `range`, of every name or of `name` only (exact): the summary
    /// with its `top` names, and up to `list` names by count (ties by name).
    async fn event_figures(
        &self,
        project_id: DocId,
        range: TimeRange,
        name: Option<&str>,
        top: usize,
        list: usize,
    ) -> StoreResult<(EventsSummary, Vec<crate::domain::analytics::BreakdownRow>)>;
    /// The page-views drill-down (reference §4.3) over `range` (inclusive) restricted by
    /// `filters` ([`PageViewFilters::matches`]): device type, a literal anchored prefix of the
    /// URL or of its path (`%`, `_`, regex characters match themselves), country, referrer host
    /// and the page-view segment fields (case-insensitively). Top pages: [`REPORT_TOP`] by views, ties by
    /// URL, each with its own unique visitors. An unknown project has an empty report.
    ///
    /// [`REPORT_TOP`]: crate::domain::analytics::REPORT_TOP
    async fn pageviews_report(
        &self,
        project_id: DocId,
        range: TimeRange,
        filters: &PageViewFilters,
    ) -> StoreResult<PageViewsReport>;
    /// The events drill-down (reference §4.4) over `range` restricted by `filters` (exact event
    /// name; segment: `clientId`, `properties.userId`, `properties.<key>`, exact string
    /// matches), with the `paging` page of recent occurrences (newest first; a page past the
    /// end is empty). Unique names ignore the event-name filter. An unknown project has an
    /// empty report.
    async fn events_report(
        &self,
        project_id: DocId,
        range: TimeRange,
        filters: &EventFilters,
        paging: RecentPaging,
    ) -> StoreResult<EventsReport>;
    /// One event name over `range` within `segment`: its latest 100 occurrences as full
    /// documents, the schema of its top-level properties (keys sorted, ≤ 5 distinct samples
    /// each, most recently seen first), per-day counts and its duration summary.
    async fn event_detail(
        &self,
        project_id: DocId,
        range: TimeRange,
        event_name: &str,
        segment: &SegmentFilters,
    ) -> StoreResult<EventDetail>;
    /// The errors drill-down (reference §4.5) over `range` (inclusive) restricted by `filters`
    /// (exact browser and error type; segment on `context.clientId`, `context.userId`,
    /// `context.<key>`, exact string matches): total, per UTC day, distinct fingerprints (under
    /// the same filters), and the `top` fingerprints by count (ties by fingerprint), each
    /// described by its earliest occurrence in the range (the first stored on equal times).
    /// An unknown project has an empty report.
    async fn errors_report(
        &self,
        project_id: DocId,
        range: TimeRange,
        filters: &crate::domain::analytics::ErrorFilters,
        top: usize,
    ) -> StoreResult<crate::domain::analytics::ErrorsReport>;
    /// One error fingerprint over `range`: the true number of occurrences, first and last seen
    /// over all of them, per-day counts, and the newest `limit` occurrences (newest first; on
    /// equal times the last stored first). Unknown projects and fingerprints give zero
    /// occurrences.
    async fn error_detail(
        &self,
        project_id: DocId,
        fingerprint: &str,
        range: TimeRange,
        limit: usize,
    ) -> StoreResult<crate::domain::analytics::ErrorDetail>;
    /// The performance drill-down (reference §4.6) over `range` restricted by `filters` (exact
    /// device type and browser; segment on `clientId`, `properties.userId`,
    /// `properties.<key>`): p50/p75/p95 per metric of `METRICS` (lower nearest rank, nulls
    /// excluded), daily averages, the number of measurements and of those carrying all four of
    /// lcp, cls, fid and ttfb. An unknown project has no measurements.
    async fn performance_report(
        &self,
        project_id: DocId,
        range: TimeRange,
        filters: &crate::domain::analytics::PerformanceFilters,
    ) -> StoreResult<crate::domain::analytics::PerformanceReport>;

    /// The figures of `range` per `unit` ms (a minute or an hour) of the documents `source`
    /// names, under its filters: what a chart's minute and hour buckets are summed from
    /// (`analytics::series`). One raw scan of the range, so only for short ranges (≤ 48 h).
    /// An unknown project has no figures.
    async fn unit_counts(
        &self,
        project_id: DocId,
        range: TimeRange,
        unit: i64,
        source: crate::analytics::series::SeriesSource<'_>,
    ) -> StoreResult<crate::analytics::series::UnitCounts>;
}

/// Who claims a job, when, and until when the lease holds.
#[derive(Clone, Copy, Debug)]
pub struct JobClaim<'a> {
    /// Fresh per attempt; every later write of the attempt must present it.
    pub token: &'a str,
    pub worker: &'a str,
    pub now: i64,
    pub lease_until: i64,
}

/// Background jobs: their state (read by the UI) and the durable queue. A job is *claimable*
/// when it is queued with `run_after <= now`, or running with `lease_until <= now` and attempts
/// left (its worker died). Claims are atomic: one job is never held by two claims at once.
/// Every write of an attempt is conditional on its lease token and answers `false` when the
/// token no longer holds (the lease was taken over or the job finished): completion is
/// idempotent.
#[async_trait]
pub trait JobStore: Send + Sync {
    /// Inserts a queued job. Errors: `Conflict` when the id exists (enqueueing is idempotent).
    async fn insert_job(&self, job: &NewJobRecord) -> StoreResult<()>;
    /// The job with this id.
    async fn job(&self, id: DocId) -> StoreResult<Option<Job>>;
    /// Claims this job if it is claimable at `claim.now` (whatever its dispatch): state
    /// `running`, attempts + 1, progress reset, the claim's lease. `None` when not claimable.
    async fn claim_job(&self, id: DocId, claim: &JobClaim<'_>) -> StoreResult<Option<Job>>;
    /// Claims the claimable job of one of `kinds` with the earliest `run_after`. Jobs dispatched
    /// to Redis count as claimable only when due (or expired) at `redis_cutoff` (≤ now), so a
    /// sweep leaves them to Redis for a grace period.
    async fn claim_next_job(
        &self,
        kinds: &[String],
        claim: &JobClaim<'_>,
        redis_cutoff: i64,
    ) -> StoreResult<Option<Job>>;
    /// Extends the lease of the attempt holding `token` to `lease_until`, and sets progress
    /// (percent clamped to 100, message) when given. `false` when the token no longer holds.
    async fn renew_job_lease(
        &self,
        id: DocId,
        token: &str,
        lease_until: i64,
        progress: Option<(u8, Option<&str>)>,
    ) -> StoreResult<bool>;
    /// Marks the attempt holding `token` completed with `result` (progress 100). `false` when
    /// the token no longer holds: the result is discarded.
    async fn complete_job(
        &self,
        id: DocId,
        token: &str,
        result: &serde_json::Value,
        now: i64,
    ) -> StoreResult<bool>;
    /// Ends the attempt holding `token` with `error`: back to `queued` at `retry_at` (with that
    /// dispatch) when given, else `failed` for good. `false` when the token no longer holds.
    async fn fail_job(
        &self,
        id: DocId,
        token: &str,
        error: &str,
        retry_at: Option<i64>,
        dispatch: JobDispatch,
        now: i64,
    ) -> StoreResult<bool>;
    /// Gives the attempt holding `token` back without counting it (shutdown): `queued`, due
    /// now, attempts − 1. `false` when the token no longer holds.
    async fn release_job(
        &self,
        id: DocId,
        token: &str,
        dispatch: JobDispatch,
        now: i64,
    ) -> StoreResult<bool>;
    /// Changes who delivers a job that is still queued (no-op otherwise).
    async fn set_job_dispatch(&self, id: DocId, dispatch: JobDispatch) -> StoreResult<()>;
    /// Marks `failed` (with `error`) every running job whose lease expired with no attempts
    /// left (its worker died on the last attempt); returns their ids.
    async fn fail_abandoned_jobs(&self, now: i64, error: &str) -> StoreResult<Vec<DocId>>;
    /// Jobs per state, and when the oldest queued one was enqueued.
    async fn job_counts(&self) -> StoreResult<JobCounts>;
}

/// Which example documents an AI analysis samples (reference §6.2), within a range and a
/// segment. Every query answers at most `limit` documents as SuperInsights JSON.
#[derive(Clone, Debug, PartialEq)]
pub enum SampleQuery {
    /// The newest errors with this fingerprint.
    ErrorsWithFingerprint(String),
    /// The occurrences of this event with the longest `durationMs`, longest first.
    SlowestEvents(String),
    /// The newest occurrences of this event.
    NewestEvents(String),
    /// The newest page views of this exact URL.
    NewestPageviews(String),
    /// Web-vital records whose `metric` (`lcp`, `cls`, `fid`, `ttfb`, `inp`) is at or above
    /// `threshold`, worst first.
    WorstMetric { metric: String, threshold: f64 },
}

/// AI analysis presets (`aianalysispresets`) and runs (`aianalysisruns`).
#[async_trait]
pub trait AiStore: Send + Sync {
    /// Inserts a preset. Errors: `Conflict` when the id exists.
    async fn create_preset(&self, preset: &crate::ai::presets::Preset) -> StoreResult<()>;
    /// The preset with this id.
    async fn preset(&self, id: DocId) -> StoreResult<Option<crate::ai::presets::Preset>>;
    /// The presets `owner` owns, newest created first.
    async fn presets_of_owner(&self, owner: DocId) -> StoreResult<Vec<crate::ai::presets::Preset>>;
    /// Public presets of owners other than `except_owner`, most recently updated first, at most
    /// `limit`.
    async fn public_presets(
        &self,
        except_owner: DocId,
        limit: u32,
    ) -> StoreResult<Vec<crate::ai::presets::Preset>>;
    /// Replaces the editable fields and adds one to the version. Errors: `NotFound`.
    async fn update_preset(
        &self,
        id: DocId,
        fields: &crate::ai::presets::PresetFields,
    ) -> StoreResult<crate::ai::presets::Preset>;
    /// Sets the visibility (`private`/`public`) and adds one to the version. Errors: `NotFound`.
    async fn set_preset_visibility(
        &self,
        id: DocId,
        visibility: &str,
    ) -> StoreResult<crate::ai::presets::Preset>;
    /// Deletes a preset. Errors: `NotFound`.
    async fn delete_preset(&self, id: DocId) -> StoreResult<()>;
    /// Inserts a run. Errors: `Conflict` when the id exists.
    async fn create_run(&self, run: &crate::ai::model::AiRun) -> StoreResult<()>;
    /// The run with this id (any project; callers check the project).
    async fn run(&self, id: DocId) -> StoreResult<Option<crate::ai::model::AiRun>>;
    /// The project's newest `limit` runs, newest created first.
    async fn runs_of_project(
        &self,
        project_id: DocId,
        limit: u32,
    ) -> StoreResult<Vec<crate::ai::model::AiRun>>;
    /// Records the queue's job id of a run.
    async fn set_run_job(&self, id: DocId, job_id: &str) -> StoreResult<()>;
    /// Moves a queued or running run to `running` with `progress` (a re-delivered job may start
    /// a running run again). `false`, changing nothing, when the run is already final or missing.
    async fn set_run_running(&self, id: DocId, progress: &str) -> StoreResult<bool>;
    /// Ends a run that is not final yet with `outcome` (idempotent completion: `false`, changing
    /// nothing, when it already ended or is missing).
    async fn finish_run(
        &self,
        id: DocId,
        outcome: &crate::ai::model::RunOutcome,
    ) -> StoreResult<bool>;
    /// Example documents for an analysis (see [`SampleQuery`]) in `range` (inclusive), within
    /// `segment` mapped per collection as in reference §4.7, as SuperInsights JSON. An unknown
    /// project has none.
    async fn sample_documents(
        &self,
        project_id: DocId,
        range: TimeRange,
        segment: &crate::domain::segment::SegmentFilters,
        query: &SampleQuery,
        limit: u32,
    ) -> StoreResult<Vec<serde_json::Value>>;
}

/// Documents of one channel in time order, a page (a `Vec` of at most the page size asked for)
/// at a time: what raw exports write out without holding the whole range in memory.
pub type DocumentPages = futures::stream::BoxStream<'static, StoreResult<Vec<serde_json::Value>>>;

/// Generated reports (`reports`) and filter templates (`filtertemplates`), plus the ordered
/// document pages behind raw CSV exports.
#[async_trait]
pub trait ReportStore: Send + Sync {
    /// Inserts a report. Errors: `Conflict` when the id exists.
    async fn insert_report(&self, report: &crate::reports::Report) -> StoreResult<()>;
    /// The report with this id (deleted ones too; callers check `deleted_at` and the project).
    async fn report(&self, id: DocId) -> StoreResult<Option<crate::reports::Report>>;
    /// The project's reports that are not deleted, newest created first, at most `limit`.
    async fn reports_of_project(
        &self,
        project_id: DocId,
        limit: u32,
    ) -> StoreResult<Vec<crate::reports::Report>>;
    /// Replaces a report that is not deleted; `false` (nothing written) when it is deleted or
    /// missing.
    async fn save_report(&self, report: &crate::reports::Report) -> StoreResult<bool>;
    /// Marks a report deleted at `at_ms`; `false` when it is missing or already deleted.
    async fn soft_delete_report(&self, id: DocId, at_ms: i64) -> StoreResult<bool>;
    /// A pending or generating, not deleted report of the project with this dedup hash.
    async fn active_report_by_hash(
        &self,
        project_id: DocId,
        hash: &str,
    ) -> StoreResult<Option<crate::reports::Report>>;
    /// Adds one to a report's download count.
    async fn count_download(&self, id: DocId) -> StoreResult<()>;
    /// Reports that still have a file and are expired (`expires_at <= now_ms`) or deleted, at
    /// most `limit`, oldest created first (what the retention sweep removes).
    async fn reports_with_stale_files(
        &self,
        now_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<crate::reports::Report>>;
    /// Forgets a report's file (`file_key` unset) after it was removed, deleted or not.
    async fn clear_report_file(&self, id: DocId) -> StoreResult<()>;
    /// Inserts a filter template. Errors: `Conflict` when the id exists.
    async fn insert_filter_template(
        &self,
        template: &crate::reports::FilterTemplate,
    ) -> StoreResult<()>;
    /// The template with this id (any project; callers check).
    async fn filter_template(
        &self,
        id: DocId,
    ) -> StoreResult<Option<crate::reports::FilterTemplate>>;
    /// The project's newest `limit` templates, newest created first.
    async fn filter_templates(
        &self,
        project_id: DocId,
        limit: u32,
    ) -> StoreResult<Vec<crate::reports::FilterTemplate>>;
    /// Deletes a template; `false` when it did not exist.
    async fn delete_filter_template(&self, id: DocId) -> StoreResult<bool>;
    /// Every document of `channel` in `range` (inclusive) within `segment` (mapped per
    /// collection as in reference §4.7), in time order (ties in storage order), as
    /// SuperInsights JSON, in pages of at most `page` documents (`page` ≥ 1). The stream reads
    /// the store as it is consumed: memory holds about one page. An unknown project has none.
    async fn document_pages(
        &self,
        project_id: DocId,
        channel: Channel,
        range: TimeRange,
        segment: &SegmentFilters,
        page: u32,
    ) -> StoreResult<DocumentPages>;
}

/// The raw audit log (reference §5.9): action and error entries, newest kept.
#[async_trait]
pub trait LogStore: Send + Sync {
    /// Inserts one entry (already scrubbed by the caller).
    async fn insert_log(&self, log: &crate::domain::audit::RawLog) -> StoreResult<()>;
    /// Deletes all but the newest `keep` entries (by `ts`, then id); returns how many went.
    async fn prune_logs(&self, keep: u64) -> StoreResult<u64>;
    /// The `query.page` page of entries passing every filter of `query`
    /// ([`LogQuery::matches`](crate::domain::audit::LogQuery::matches)), newest first (ties by
    /// id, newest first), with the number of matching entries.
    async fn query_logs(
        &self,
        query: &crate::domain::audit::LogQuery,
    ) -> StoreResult<crate::domain::audit::LogPage>;
}

/// Password-reset tokens, email-report subscriptions and the once-per-period send claims.
#[async_trait]
pub trait MailStore: Send + Sync {
    /// Inserts a reset request. Errors: `Conflict` when the token hash exists.
    async fn insert_password_reset(
        &self,
        reset: &crate::domain::email::PasswordReset,
    ) -> StoreResult<()>;
    /// The reset request with this token hash, used or not, expired or not.
    async fn password_reset(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<crate::domain::email::PasswordReset>>;
    /// Marks the request used at `now` if it is unused and `expires_at > now`, atomically: of
    /// two concurrent calls one gets the request, the other `None` (as for an unknown, used or
    /// expired token).
    async fn use_password_reset(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<crate::domain::email::PasswordReset>>;
    /// Subscribes `user` to `project`'s report of `cadence` (idempotent).
    async fn subscribe(&self, sub: &crate::domain::email::Subscription) -> StoreResult<()>;
    /// Ends that subscription (no-op when there is none).
    async fn unsubscribe(
        &self,
        project: DocId,
        user: DocId,
        cadence: crate::domain::email::Cadence,
    ) -> StoreResult<()>;
    /// The user's subscriptions to the project, by cadence.
    async fn subscriptions_of(
        &self,
        project: DocId,
        user: DocId,
    ) -> StoreResult<Vec<crate::domain::email::Subscription>>;
    /// Every subscription of `cadence`, oldest first.
    async fn subscribers(
        &self,
        cadence: crate::domain::email::Cadence,
    ) -> StoreResult<Vec<crate::domain::email::Subscription>>;
    /// Claims `key` (one email of one period to one subscriber): `true` for the first caller
    /// ever, `false` afterwards, across instances.
    async fn claim_send(&self, key: &str, now: i64) -> StoreResult<bool>;
    /// Gives a claim back (the email could not be sent), so a retry may claim it again.
    async fn release_send(&self, key: &str) -> StoreResult<()>;
}

/// The states members give error groups (per project and signature). Soft-deleting a project
/// or clearing its data removes its states.
#[async_trait]
pub trait ErrorStateStore: Send + Sync {
    /// Every stored state of the project's groups, by signature.
    async fn error_group_states(
        &self,
        project: DocId,
    ) -> StoreResult<Vec<crate::domain::error_groups::ErrorGroupState>>;
    /// Sets one group's state (inserts or replaces the row of its project and signature).
    async fn set_error_group_state(
        &self,
        state: &crate::domain::error_groups::ErrorGroupState,
    ) -> StoreResult<()>;
}

/// Backend-level operations.
#[async_trait]
pub trait StoreAdmin: Send + Sync {
    /// Creates tables / indexes; safe to run repeatedly.
    async fn migrate(&self) -> StoreResult<()>;
    /// A cheap round trip proving the backend answers.
    async fn ping(&self) -> StoreResult<()>;
}

/// Everything a backend implements.
pub trait Backend:
    ProjectStore
    + AccountStore
    + InviteStore
    + SessionRecords
    + EventWriter
    + StatsReader
    + StoreAdmin
    + JobStore
    + AiStore
    + ReportStore
    + LogStore
    + MailStore
    + ErrorStateStore
    + 'static
{
}
impl<T> Backend for T where
    T: ProjectStore
        + AccountStore
        + InviteStore
        + SessionRecords
        + EventWriter
        + StatsReader
        + StoreAdmin
        + JobStore
        + AiStore
        + ReportStore
        + LogStore
        + MailStore
        + ErrorStateStore
        + 'static
{
}

/// The ports of the chosen backend, each as a trait object, chosen once at startup.
#[derive(Clone)]
pub struct Stores {
    pub name: &'static str,
    pub projects: Arc<dyn ProjectStore>,
    pub accounts: Arc<dyn AccountStore>,
    pub invites: Arc<dyn InviteStore>,
    pub sessions: Arc<dyn SessionRecords>,
    pub events: Arc<dyn EventWriter>,
    pub stats: Arc<dyn StatsReader>,
    pub admin: Arc<dyn StoreAdmin>,
    /// Background jobs (state and the durable queue).
    pub jobs: Arc<dyn JobStore>,
    /// AI analysis presets and runs.
    pub ai: Arc<dyn AiStore>,
    /// Generated reports, filter templates and raw document scans.
    pub reports: Arc<dyn ReportStore>,
    /// The raw audit log.
    pub logs: Arc<dyn LogStore>,
    /// Password resets, email-report subscriptions and send claims.
    pub mail: Arc<dyn MailStore>,
    /// Error group states (open, resolved, ignored).
    pub error_states: Arc<dyn ErrorStateStore>,
}

impl Stores {
    pub fn new<B: Backend>(name: &'static str, backend: B) -> Self {
        let b = Arc::new(backend);
        Self {
            name,
            projects: b.clone(),
            accounts: b.clone(),
            invites: b.clone(),
            sessions: b.clone(),
            events: b.clone(),
            stats: b.clone(),
            jobs: b.clone(),
            ai: b.clone(),
            reports: b.clone(),
            logs: b.clone(),
            mail: b.clone(),
            error_states: b.clone(),
            admin: b,
        }
    }

    /// Opens the backend the configuration names (SQLite file or MongoDB) and migrates it.
    pub async fn open(config: &crate::config::Config) -> StoreResult<Self> {
        let stores = match &config.store {
            crate::config::StoreConfig::Sqlite {
                path,
                busy_timeout_ms,
                synchronous,
            } => {
                let options = sqlite::SqliteOptions {
                    busy_timeout: std::time::Duration::from_millis(*busy_timeout_ms),
                    ingest_busy_timeout: std::time::Duration::from_millis(
                        config.ingest.commit_wait_ms,
                    ),
                    synchronous_full: synchronous == "FULL",
                };
                Self::new("sqlite", sqlite::SqliteStore::open(path, options).await?)
            }
            crate::config::StoreConfig::Mongo { uri, database } => Self::new(
                "mongodb",
                mongo::MongoStore::connect(uri.expose(), database.as_deref()).await?,
            ),
        };
        stores.admin.migrate().await?;
        Ok(stores)
    }
}

/// The GlobalSetting key SuperInsights 1.x uses for a project's event drop rules.
pub(crate) fn drop_rules_key(project_id: DocId) -> String {
    format!("PROJECT:{project_id}:INGESTION_DROP_EVENTS_V1")
}
