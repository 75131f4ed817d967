//! MongoDB backend (mongodb 3.x driver): a thin adapter speaking SuperInsights 1.x's collections
//! and field names, so an existing SuperInsights database can be served as is. Queries only; the
//! behaviour lives in the ports' callers and is pinned by the shared contract suite.
//!
//! MongoDB standalone has no multi-document transactions, so writes are made safe to repeat
//! instead of atomic: every analytics document carries a deterministic `_id` (its [`DocId`]) and
//! duplicate-`_id` errors mean "already stored".

mod accounts;
mod ai;
mod audit;
mod diagnostics;
mod docs;
mod error_states;
mod errors;
mod filters;
mod indexes;
mod jobs;
mod public_links;
mod report_records;
mod reports;
mod rollups;
mod scan;
mod stats;

use super::{
    AccountStore, EventWriter, KeyKind, KeyMatch, Member, OrgRole, OrgStatus, Organization,
    PlatformRole, Project, ProjectStore, ProjectUpdate, StatsReader, StoreAdmin, StoreError,
    StoreResult, User, drop_rules_key,
};
use crate::domain::{
    analytics::{ErrorsSummary, EventsSummary, PageViewsSummary, PerformanceFigures, TimeRange},
    drop_rules::DropRules,
    ids::DocId,
    model::{Channel, WriteBatch},
    timestamp::now_ms,
};
use async_trait::async_trait;
use docs::{
    AI_RUNS, INGEST_BATCHES, MEMBERS, ORGANIZATIONS, PROJECTS, SETTINGS, USERS, collection_of,
    date, oid,
};
use errors::{CollectAll, id_duplicate_indexes, map_err, only_id_duplicates};
use futures::{StreamExt, TryStreamExt};
use mongodb::{
    Client, Collection, Database,
    bson::{Bson, Document, doc},
    options::{ClientOptions, ReturnDocument},
    results::UpdateResult,
};
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, RwLock},
    time::Duration,
};

/// Server selection timeout used when the URI sets none: the driver's default (30 s) would make
/// a down MongoDB hang startup instead of failing it.
pub const DEFAULT_SERVER_SELECTION_TIMEOUT: Duration = Duration::from_secs(3);

/// Database used when neither the configuration nor the URI names one.
pub const DEFAULT_DATABASE: &str = "superinsights";

/// Description SuperInsights 1.x gives the drop-rules GlobalSetting.
const DROP_RULES_DESCRIPTION: &str = "Ingestion drop rules for events";

/// Ledger point reads one [`EventWriter::write_once_many`] keeps in flight (below the driver's
/// default pool of 10 connections, so reads of other requests still find one).
const LEDGER_LOOKUPS_IN_FLIGHT: usize = 8;

/// Bound on the cache of known project ids (cleared when full; it only saves a round trip).
const KNOWN_PROJECTS_MAX: usize = 10_000;

/// The MongoDB implementation of every storage port. A cheap handle: clones share the client,
/// the known projects and the rollup builds.
#[derive(Clone)]
pub struct MongoStore {
    db: Database,
    /// Projects known to exist. Projects are soft-deleted, never removed, so an entry never goes
    /// stale; it spares the ingest path one `find` per write.
    known_projects: Arc<RwLock<HashSet<DocId>>>,
    /// Single-flight gates of rollup builds (`analytics::engine`).
    rollup_builds: Arc<crate::analytics::engine::BuildLocks<DocId>>,
}

/// Applies our defaults to parsed client options and returns the database name to use: the
/// explicit `database`, else the URI's default database, else [`DEFAULT_DATABASE`].
pub(crate) fn configure(options: &mut ClientOptions, database: Option<&str>) -> String {
    if options.server_selection_timeout.is_none() {
        options.server_selection_timeout = Some(DEFAULT_SERVER_SELECTION_TIMEOUT);
    }
    if options.app_name.is_none() {
        options.app_name = Some("superinsights".into());
    }
    database
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .or(options.default_database.as_deref())
        .unwrap_or(DEFAULT_DATABASE)
        .to_string()
}

impl MongoStore {
    /// Builds a client for `uri` without contacting the server (the driver connects lazily;
    /// `migrate` and `ping` make the first round trips). The one exception is a `mongodb+srv`
    /// URI, whose DNS records the driver resolves while parsing.
    /// Errors: `Other` for a malformed URI, `Unavailable` when the SRV lookup fails.
    pub async fn connect(uri: &str, database: Option<&str>) -> StoreResult<Self> {
        let mut options = ClientOptions::parse(uri).await.map_err(map_err)?;
        let database = configure(&mut options, database);
        let client = Client::with_options(options).map_err(map_err)?;
        Ok(Self {
            db: client.database(&database),
            known_projects: Arc::default(),
            rollup_builds: Arc::default(),
        })
    }

    fn coll(&self, name: &str) -> Collection<Document> {
        self.db.collection(name)
    }

    fn remember_project(&self, id: DocId) {
        let mut known = self
            .known_projects
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if known.len() >= KNOWN_PROJECTS_MAX {
            known.clear();
        }
        known.insert(id);
    }

    /// `NotFound` unless the project exists (deleted or not).
    async fn ensure_project_exists(&self, id: DocId) -> StoreResult<()> {
        let known = self
            .known_projects
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .contains(&id);
        if known {
            return Ok(());
        }
        self.coll(PROJECTS)
            .find_one(doc! {"_id": oid(id)})
            .projection(doc! {"_id": 1})
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        self.remember_project(id);
        Ok(())
    }

    /// `$set`s `fields` (plus `updatedAt`) on the document matching `filter`; `NotFound` when
    /// none matches.
    async fn set_fields(
        &self,
        name: &str,
        filter: Document,
        mut fields: Document,
    ) -> StoreResult<()> {
        fields.insert("updatedAt", date(now_ms()));
        let result = self
            .coll(name)
            .update_one(filter, doc! {"$set": fields})
            .await
            .map_err(map_err)?;
        matched(&result)
    }

    /// Applies `update` to the live project `id` and returns it as updated; `NotFound` for an
    /// unknown or deleted project.
    async fn update_live_project(&self, id: DocId, update: Document) -> StoreResult<Project> {
        let found = self
            .coll(PROJECTS)
            .find_one_and_update(doc! {"_id": oid(id), "deletedAt": Bson::Null}, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        docs::project_from_doc(&found)
    }

    /// Every document of `name` matching `filter`, in `sort` order.
    async fn find_all(
        &self,
        name: &str,
        filter: Document,
        sort: Document,
    ) -> StoreResult<Vec<Document>> {
        self.coll(name).find(filter).sort(sort).collect_all().await
    }

    /// `NotFound` unless every project the batches name exists (one `$in` query for the ones
    /// not yet known).
    async fn ensure_projects_exist(&self, batches: &[WriteBatch]) -> StoreResult<()> {
        let unknown: HashSet<DocId> = {
            let known = self
                .known_projects
                .read()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            batches
                .iter()
                .map(|b| b.project_id)
                .filter(|id| !known.contains(id))
                .collect()
        };
        if unknown.is_empty() {
            return Ok(());
        }
        let ids: Vec<Bson> = unknown.iter().map(|id| Bson::ObjectId(oid(*id))).collect();
        let found: Vec<Document> = self
            .coll(PROJECTS)
            .find(doc! {"_id": {"$in": ids}})
            .projection(doc! {"_id": 1})
            .collect_all()
            .await?;
        if found.len() < unknown.len() {
            return Err(StoreError::NotFound);
        }
        for id in unknown {
            self.remember_project(id);
        }
        Ok(())
    }

    /// Inserts every document of the batches, one unordered `insert_many` per collection.
    /// Documents already stored (same `_id`) count as inserted.
    async fn insert_docs(&self, batches: &[WriteBatch]) -> StoreResult<()> {
        let mut by_collection: BTreeMap<&'static str, Vec<Document>> = BTreeMap::new();
        for batch in batches {
            by_collection
                .entry(collection_of(batch.docs.channel()))
                .or_default()
                .extend(docs::analytics_docs(&batch.docs, batch.project_id));
        }
        for (name, documents) in by_collection {
            if documents.is_empty() {
                continue;
            }
            match self.coll(name).insert_many(documents).ordered(false).await {
                Ok(_) => {}
                Err(e) if only_id_duplicates(&e) => {}
                Err(e) => return Err(map_err(e)),
            }
        }
        Ok(())
    }

    /// Adds each project's dropped-event count (`$inc`, so concurrent writers add up).
    async fn add_dropped(&self, batches: &[WriteBatch]) -> StoreResult<()> {
        let mut per_project: BTreeMap<DocId, i64> = BTreeMap::new();
        for batch in batches.iter().filter(|b| b.dropped > 0) {
            *per_project.entry(batch.project_id).or_default() += i64::from(batch.dropped);
        }
        for (project_id, dropped) in per_project {
            self.coll(PROJECTS)
                .update_one(
                    doc! {"_id": oid(project_id)},
                    doc! {"$inc": {"droppedEventsCount": dropped}},
                )
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }
}

/// `NotFound` when an update matched no document.
fn matched(result: &UpdateResult) -> StoreResult<()> {
    if result.matched_count == 0 {
        Err(StoreError::NotFound)
    } else {
        Ok(())
    }
}

#[async_trait]
impl ProjectStore for MongoStore {
    async fn insert_project(&self, project: &Project) -> StoreResult<()> {
        self.coll(PROJECTS)
            .insert_one(docs::project_doc(project))
            .await
            .map_err(map_err)?;
        self.remember_project(project.id);
        Ok(())
    }

    async fn project(&self, id: DocId) -> StoreResult<Option<Project>> {
        let found = self
            .coll(PROJECTS)
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?;
        found.as_ref().map(docs::project_from_doc).transpose()
    }

    async fn projects_of_org(&self, org_id: DocId) -> StoreResult<Vec<Project>> {
        // `deletedAt: null` also matches SuperInsights documents that lack the field.
        let found: Vec<Document> = self
            .coll(PROJECTS)
            .find(doc! {"saasOrgId": oid(org_id), "deletedAt": Bson::Null})
            .sort(doc! {"createdAt": -1, "_id": -1})
            .collect_all()
            .await?;
        found.iter().map(docs::project_from_doc).collect()
    }

    async fn find_by_api_key(&self, key: &str) -> StoreResult<Option<KeyMatch>> {
        let found = self
            .coll(PROJECTS)
            .find_one(doc! {
                "$or": [{"publicApiKey": key}, {"secretApiKey": key}],
                "deletedAt": Bson::Null,
            })
            .projection(doc! {"_id": 1, "publicApiKey": 1})
            .await
            .map_err(map_err)?;
        let Some(found) = found else { return Ok(None) };
        let project_id = docs::read_id(&found, PROJECTS, "_id")?;
        let kind = if found.get_str("publicApiKey").ok() == Some(key) {
            KeyKind::Public
        } else {
            KeyKind::Secret
        };
        Ok(Some(KeyMatch { project_id, kind }))
    }

    async fn drop_rules(&self, project_id: DocId) -> StoreResult<DropRules> {
        let found = self
            .coll(SETTINGS)
            .find_one(doc! {"key": drop_rules_key(project_id)})
            .projection(doc! {"value": 1})
            .await
            .map_err(map_err)?;
        // Unreadable rules count as none, as in SuperInsights 1.x (and the SQLite backend).
        Ok(found
            .as_ref()
            .and_then(|d| d.get_str("value").ok())
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default())
    }

    async fn set_drop_rules(&self, project_id: DocId, rules: &DropRules) -> StoreResult<()> {
        let value = serde_json::to_string(rules).map_err(StoreError::other_from)?;
        let now = date(now_ms());
        // An upsert on the unique `key` (the server retries the duplicate-key race itself).
        self.coll(SETTINGS)
            .update_one(
                doc! {"key": drop_rules_key(project_id)},
                doc! {
                    "$set": {
                        "value": value,
                        "type": "json",
                        "description": DROP_RULES_DESCRIPTION,
                        "updatedAt": now,
                    },
                    "$setOnInsert": {"createdAt": now},
                },
            )
            .upsert(true)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn update_project(&self, id: DocId, update: &ProjectUpdate) -> StoreResult<Project> {
        self.update_live_project(
            id,
            doc! {"$set": docs::project_update_set(update, now_ms())},
        )
        .await
    }

    async fn set_api_keys(
        &self,
        id: DocId,
        public_api_key: &str,
        secret_api_key: &str,
    ) -> StoreResult<Project> {
        self.update_live_project(
            id,
            doc! {"$set": {
                "publicApiKey": public_api_key,
                "secretApiKey": secret_api_key,
                "updatedAt": date(now_ms()),
            }},
        )
        .await
    }

    async fn soft_delete_project(&self, id: DocId) -> StoreResult<()> {
        let now = date(now_ms());
        let result = self
            .coll(PROJECTS)
            .update_one(
                doc! {"_id": oid(id), "deletedAt": Bson::Null},
                doc! {"$set": {"deletedAt": now, "updatedAt": now}},
            )
            .await
            .map_err(map_err)?;
        matched(&result)?;
        self.forget_error_states(id).await
    }

    /// Not atomic (no transactions): the counter reset comes first and doubles as the existence
    /// check, so an unknown project is `NotFound` with nothing deleted. Every step is safe to
    /// repeat, so a call that failed part-way is completed by calling it again.
    async fn clear_project_data(&self, id: DocId) -> StoreResult<()> {
        let result = self
            .coll(PROJECTS)
            .update_one(
                doc! {"_id": oid(id)},
                doc! {"$set": {"droppedEventsCount": 0_i64, "updatedAt": date(now_ms())}},
            )
            .await
            .map_err(map_err)?;
        matched(&result)?;
        let project = oid(id);
        // SuperInsights 1.x also deletes the project's AI analysis runs (reports are kept).
        let collections = Channel::ALL.map(collection_of);
        for name in collections.into_iter().chain([AI_RUNS]) {
            self.coll(name)
                .delete_many(doc! {"projectId": project})
                .await
                .map_err(map_err)?;
        }
        self.forget_rollups(id).await?;
        self.forget_error_states(id).await?;
        self.coll(SETTINGS)
            .delete_one(doc! {"key": drop_rules_key(id)})
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn live_projects(&self) -> StoreResult<Vec<Project>> {
        let found = self
            .find_all(
                PROJECTS,
                doc! {"deletedAt": Bson::Null},
                doc! {"createdAt": 1, "_id": 1},
            )
            .await?;
        found.iter().map(docs::project_from_doc).collect()
    }

    async fn public_link(&self, id: DocId) -> StoreResult<Option<super::PublicLink>> {
        self.load_public_link(id).await
    }

    async fn set_public_link(
        &self,
        id: DocId,
        token_hash: &str,
        at_ms: i64,
    ) -> StoreResult<super::PublicLink> {
        self.store_public_link(id, token_hash, at_ms).await
    }

    async fn revoke_public_link(&self, id: DocId, at_ms: i64) -> StoreResult<()> {
        self.clear_public_link(id, at_ms).await
    }

    async fn public_links(&self, org_id: Option<DocId>) -> StoreResult<Vec<super::PublicLink>> {
        self.list_public_links(org_id).await
    }

    async fn purge_before(&self, id: DocId, cutoff_ms: i64) -> StoreResult<u64> {
        self.ensure_project_exists(id).await?;
        let filter = doc! {"projectId": oid(id), "timestamp": {"$lt": date(cutoff_ms)}};
        let mut removed = 0;
        for channel in Channel::ALL {
            removed += self
                .coll(collection_of(channel))
                .delete_many(filter.clone())
                .await
                .map_err(map_err)?
                .deleted_count;
        }
        self.purged_rollups(id, cutoff_ms).await?;
        // The project's old `write_once` markers, whether or not a TTL index also removes them
        // (this runs daily from the retention purge). Not counted: they are not analytics.
        let marker_cutoff = now_ms().saturating_sub(
            i64::try_from(indexes::BATCH_MARKER_TTL.as_millis()).unwrap_or(i64::MAX),
        );
        self.coll(INGEST_BATCHES)
            .delete_many(doc! {"projectId": oid(id), "createdAt": {"$lt": date(marker_cutoff)}})
            .await
            .map_err(map_err)?;
        Ok(removed)
    }
}

/// A membership's role (saasbackend's default `member` when the field is missing).
fn member_role_of(member: &Document) -> StoreResult<OrgRole> {
    docs::read_enum(member, MEMBERS, "role", OrgRole::Member)
}

#[async_trait]
impl AccountStore for MongoStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        self.coll(USERS)
            .insert_one(docs::user_doc(user))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        // Emails are stored lower-cased (as saasbackend's schema does), so equality is enough.
        let found = self
            .coll(USERS)
            .find_one(doc! {"email": email.trim().to_lowercase()})
            .await
            .map_err(map_err)?;
        found.as_ref().map(docs::user_from_doc).transpose()
    }

    async fn count_users(&self) -> StoreResult<u64> {
        self.coll(USERS)
            .count_documents(doc! {})
            .await
            .map_err(map_err)
    }

    async fn insert_org(&self, org: &Organization) -> StoreResult<()> {
        self.coll(ORGANIZATIONS)
            .insert_one(docs::org_doc(org))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn add_member(&self, org: DocId, user: DocId, role: OrgRole) -> StoreResult<()> {
        let now = date(now_ms());
        self.coll(MEMBERS)
            .update_one(
                doc! {"orgId": oid(org), "userId": oid(user)},
                doc! {
                    "$set": {"role": role.as_str(), "status": "active", "updatedAt": now},
                    "$setOnInsert": {"createdAt": now},
                },
            )
            .upsert(true)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn member_role(&self, org: DocId, user: DocId) -> StoreResult<Option<OrgRole>> {
        let found = self
            .coll(MEMBERS)
            .find_one(doc! {"orgId": oid(org), "userId": oid(user), "status": "active"})
            .projection(doc! {"role": 1})
            .await
            .map_err(map_err)?;
        found.as_ref().map(member_role_of).transpose()
    }

    async fn memberships(&self, user: DocId) -> StoreResult<Vec<(Organization, OrgRole)>> {
        // Two queries (memberships, then their organizations) rather than a `$lookup`: both are
        // index hits, and the order and join stay readable here.
        let members: Vec<Document> = self
            .coll(MEMBERS)
            .find(doc! {"userId": oid(user), "status": "active"})
            .sort(doc! {"createdAt": 1, "orgId": 1})
            .projection(doc! {"orgId": 1, "role": 1})
            .collect_all()
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let org_ids: Vec<Bson> = members
            .iter()
            .filter_map(|m| m.get("orgId").cloned())
            .collect();
        // Only active organizations; `status: null` also matches documents lacking the field,
        // which read as active.
        let orgs: Vec<Document> = self
            .coll(ORGANIZATIONS)
            .find(doc! {"_id": {"$in": org_ids}, "status": {"$in": ["active", Bson::Null]}})
            .collect_all()
            .await?;
        let mut orgs: HashMap<DocId, Organization> = orgs
            .iter()
            .map(|d| docs::org_from_doc(d).map(|o| (o.id, o)))
            .collect::<StoreResult<_>>()?;
        // Memberships of organizations that no longer exist (or are disabled) are skipped, as an
        // inner join would.
        let mut out = Vec::with_capacity(members.len());
        for member in &members {
            let org_id = docs::read_id(member, MEMBERS, "orgId")?;
            if let Some(org) = orgs.remove(&org_id) {
                out.push((org, member_role_of(member)?));
            }
        }
        Ok(out)
    }

    async fn user(&self, id: DocId) -> StoreResult<Option<User>> {
        let found = self
            .coll(USERS)
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?;
        found.as_ref().map(docs::user_from_doc).transpose()
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        let found = self
            .find_all(USERS, doc! {}, doc! {"createdAt": 1, "_id": 1})
            .await?;
        found.iter().map(docs::user_from_doc).collect()
    }

    async fn set_password_hash(&self, user: DocId, hash: &str) -> StoreResult<()> {
        self.set_fields(USERS, doc! {"_id": oid(user)}, doc! {"passwordHash": hash})
            .await
    }

    async fn registration_setting(&self) -> StoreResult<Option<bool>> {
        let found = self
            .coll(SETTINGS)
            .find_one(doc! {"key": crate::store::REGISTRATION_KEY})
            .projection(doc! {"value": 1})
            .await
            .map_err(map_err)?;
        Ok(found
            .as_ref()
            .and_then(|d| d.get_str("value").ok())
            .map(|v| v == "true"))
    }

    async fn set_registration_setting(&self, open: bool) -> StoreResult<()> {
        let now = date(now_ms());
        self.coll(SETTINGS)
            .update_one(
                doc! {"key": crate::store::REGISTRATION_KEY},
                doc! {
                    "$set": {
                        "value": open.to_string(),
                        "type": "boolean",
                        "description": crate::store::REGISTRATION_DESCRIPTION,
                        "updatedAt": now,
                    },
                    "$setOnInsert": {"createdAt": now},
                },
            )
            .upsert(true)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Looks for another user with the email first: the unique index refuses a duplicate on
    /// MongoDB, but FerretDB does not check unique indexes on updates (the index still closes
    /// the race on MongoDB).
    async fn set_user_email(&self, user: DocId, email: &str) -> StoreResult<()> {
        let taken = self
            .coll(USERS)
            .find_one(doc! {"email": email, "_id": {"$ne": oid(user)}})
            .await
            .map_err(map_err)?;
        if taken.is_some() {
            return Err(StoreError::Conflict("email already in use".into()));
        }
        self.set_fields(USERS, doc! {"_id": oid(user)}, doc! {"email": email})
            .await
    }

    async fn set_user_role(&self, user: DocId, role: PlatformRole) -> StoreResult<()> {
        self.set_fields(USERS, doc! {"_id": oid(user)}, doc! {"role": role.as_str()})
            .await
    }

    /// Memberships first, then the user (no transactions): a call that fails between the two
    /// leaves the user without memberships, and repeating it completes the delete.
    async fn delete_user(&self, user: DocId) -> StoreResult<()> {
        self.coll(MEMBERS)
            .delete_many(doc! {"userId": oid(user)})
            .await
            .map_err(map_err)?;
        let deleted = self
            .coll(USERS)
            .delete_one(doc! {"_id": oid(user)})
            .await
            .map_err(map_err)?
            .deleted_count;
        if deleted == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn org(&self, id: DocId) -> StoreResult<Option<Organization>> {
        let found = self
            .coll(ORGANIZATIONS)
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?;
        found.as_ref().map(docs::org_from_doc).transpose()
    }

    async fn list_orgs(&self) -> StoreResult<Vec<Organization>> {
        let found = self
            .find_all(ORGANIZATIONS, doc! {}, doc! {"createdAt": 1, "_id": 1})
            .await?;
        found.iter().map(docs::org_from_doc).collect()
    }

    async fn rename_org(&self, id: DocId, name: &str) -> StoreResult<()> {
        self.set_fields(
            ORGANIZATIONS,
            doc! {"_id": oid(id)},
            doc! {"name": name.trim()},
        )
        .await
    }

    async fn set_org_status(&self, id: DocId, status: OrgStatus) -> StoreResult<()> {
        self.set_fields(
            ORGANIZATIONS,
            doc! {"_id": oid(id)},
            doc! {"status": status.as_str()},
        )
        .await
    }

    async fn members(&self, org: DocId) -> StoreResult<Vec<Member>> {
        // Memberships, then their users (the same two-query join as `memberships`).
        let members: Vec<Document> = self
            .coll(MEMBERS)
            .find(doc! {"orgId": oid(org), "status": "active"})
            .sort(doc! {"createdAt": 1, "userId": 1})
            .projection(doc! {"userId": 1, "role": 1})
            .collect_all()
            .await?;
        if members.is_empty() {
            return Ok(Vec::new());
        }
        let user_ids: Vec<Bson> = members
            .iter()
            .filter_map(|m| m.get("userId").cloned())
            .collect();
        let users: Vec<Document> = self
            .coll(USERS)
            .find(doc! {"_id": {"$in": user_ids}})
            .collect_all()
            .await?;
        let mut users: HashMap<DocId, User> = users
            .iter()
            .map(|d| docs::user_from_doc(d).map(|u| (u.id, u)))
            .collect::<StoreResult<_>>()?;
        // Memberships of users that no longer exist are skipped, as an inner join would.
        let mut out = Vec::with_capacity(members.len());
        for member in &members {
            let user_id = docs::read_id(member, MEMBERS, "userId")?;
            if let Some(user) = users.remove(&user_id) {
                out.push(Member {
                    user,
                    role: member_role_of(member)?,
                });
            }
        }
        Ok(out)
    }

    async fn remove_member(&self, org: DocId, user: DocId) -> StoreResult<()> {
        self.set_fields(
            MEMBERS,
            doc! {"orgId": oid(org), "userId": oid(user), "status": "active"},
            doc! {"status": "removed"},
        )
        .await
    }
}

#[async_trait]
impl EventWriter for MongoStore {
    /// All or nothing as far as the contract can observe: an unknown project fails the call
    /// before anything is written. A failure part-way through (server gone) may leave some
    /// documents stored; retrying the same batches then completes the write without
    /// duplicates, because every document's `_id` is fixed. Only the dropped-events counter is
    /// not idempotent: it is added last, so a retry repeats it only if that last step failed
    /// after the server applied it.
    async fn write(&self, batches: &[WriteBatch]) -> StoreResult<()> {
        if batches.is_empty() {
            return Ok(());
        }
        self.ensure_projects_exist(batches).await?;
        self.insert_docs(batches).await?;
        self.bump_versions(batches).await?;
        self.add_dropped(batches).await
    }

    async fn write_once(&self, batch: &WriteBatch) -> StoreResult<bool> {
        let fresh = self.write_once_many(std::slice::from_ref(batch)).await?;
        Ok(fresh.first().copied().unwrap_or(false))
    }

    /// Exactly once in effect, without transactions. Order: look for the batches' markers
    /// (`ingestbatches`, `_id` = batch id; one point read per batch, sent concurrently) → insert
    /// the new batches' documents (duplicates tolerated) → add their dropped counts → insert
    /// their markers (one unordered `insert_many`).
    /// - A failure before the markers are written leaves none, so the whole group is replayed;
    ///   the documents it re-inserts are recognised by their `_id` and not duplicated. (The
    ///   dropped-events counter is the exception: it may be added twice in that window.)
    /// - Once a batch's marker exists, every later replay skips it.
    /// - Two writers racing on one batch both write the same documents; only the one whose
    ///   marker insert wins reports it as stored.
    async fn write_once_many(&self, batches: &[WriteBatch]) -> StoreResult<Vec<bool>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let ledger = self.coll(INGEST_BATCHES);
        let mut first_of: HashMap<DocId, usize> = HashMap::with_capacity(batches.len());
        for (i, b) in batches.iter().enumerate() {
            first_of.entry(b.batch_id).or_insert(i);
        }
        // Point reads by `_id` (the one filter every MongoDB-compatible server serves from its
        // index), concurrently: one round trip's wait for the group instead of one per batch.
        let ids: Vec<DocId> = first_of.keys().copied().collect();
        let lookups = ids.into_iter().map(|id| {
            let ledger = ledger.clone();
            async move {
                let seen = ledger
                    .find_one(doc! {"_id": oid(id)})
                    .projection(doc! {"_id": 1})
                    .await
                    .map_err(map_err)?;
                Ok::<_, StoreError>((id, seen.is_some()))
            }
        });
        let seen: HashSet<DocId> = futures::stream::iter(lookups)
            .buffer_unordered(LEDGER_LOOKUPS_IN_FLIGHT)
            .try_collect::<Vec<_>>()
            .await?
            .into_iter()
            .filter_map(|(id, seen)| seen.then_some(id))
            .collect();
        let mut fresh: Vec<bool> = batches
            .iter()
            .enumerate()
            .map(|(i, b)| first_of[&b.batch_id] == i && !seen.contains(&b.batch_id))
            .collect();
        let to_store: Vec<WriteBatch> = batches
            .iter()
            .zip(&fresh)
            .filter(|&(_, new)| *new)
            .map(|(b, _)| b.clone())
            .collect();
        if to_store.is_empty() {
            return Ok(fresh);
        }
        self.ensure_projects_exist(&to_store).await?;
        self.insert_docs(&to_store).await?;
        self.bump_versions(&to_store).await?;
        self.add_dropped(&to_store).await?;
        let markers: Vec<Document> = to_store
            .iter()
            .map(|batch| {
                doc! {
                    "_id": oid(batch.batch_id),
                    "projectId": oid(batch.project_id),
                    "channel": batch.docs.channel().as_str(),
                    "docs": i64::try_from(batch.docs.len()).unwrap_or(i64::MAX),
                    "createdAt": date(now_ms()),
                }
            })
            .collect();
        match ledger.insert_many(markers).ordered(false).await {
            Ok(_) => Ok(fresh),
            Err(e) => {
                // Markers another writer inserted first: those batches are its, not ours.
                let lost = id_duplicate_indexes(&e).ok_or_else(|| map_err(e))?;
                let stored_at: Vec<usize> = (0..batches.len()).filter(|&i| fresh[i]).collect();
                for j in lost {
                    if let Some(&i) = stored_at.get(j) {
                        fresh[i] = false;
                    }
                }
                Ok(fresh)
            }
        }
    }
}

#[async_trait]
impl StatsReader for MongoStore {
    async fn rollups_settled(&self) {
        self.rollup_builds.settled().await;
    }

    async fn count(&self, project_id: DocId, channel: Channel) -> StoreResult<u64> {
        self.coll(collection_of(channel))
            .count_documents(doc! {"projectId": oid(project_id)})
            .await
            .map_err(map_err)
    }

    async fn recent(
        &self,
        project_id: DocId,
        channel: Channel,
        limit: u32,
    ) -> StoreResult<Vec<serde_json::Value>> {
        // MongoDB reads `limit(0)` as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        // Sorted on `timestamp` alone so the {projectId, timestamp} index serves it; a second
        // sort key would force an in-memory sort of the project's whole collection.
        let found = self
            .coll(collection_of(channel))
            .find(doc! {"projectId": oid(project_id)})
            .sort(doc! {"timestamp": -1})
            .limit(i64::from(limit))
            .collect_all()
            .await?;
        Ok(found.iter().map(docs::to_json).collect())
    }

    async fn dropped_events(&self, project_id: DocId) -> StoreResult<u64> {
        let found = self
            .coll(PROJECTS)
            .find_one(doc! {"_id": oid(project_id)})
            .projection(doc! {"droppedEventsCount": 1})
            .await
            .map_err(map_err)?;
        let n = found
            .as_ref()
            .and_then(|d| docs::read_int(d, "droppedEventsCount"))
            .unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn pageviews_summary(
        &self,
        project_id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<PageViewsSummary> {
        self.stats_pageviews(project_id, range, top).await
    }

    async fn unique_visitors_each(
        &self,
        project_id: DocId,
        ranges: &[TimeRange],
    ) -> StoreResult<Vec<u64>> {
        crate::analytics::engine::unique_visitors_each(self, project_id, ranges).await
    }

    async fn events_summary(
        &self,
        project_id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<EventsSummary> {
        self.stats_events(project_id, range, top).await
    }

    async fn errors_summary(
        &self,
        project_id: DocId,
        range: TimeRange,
    ) -> StoreResult<ErrorsSummary> {
        self.stats_errors(project_id, range).await
    }

    async fn performance_summary(
        &self,
        project_id: DocId,
        range: TimeRange,
    ) -> StoreResult<PerformanceFigures> {
        self.stats_performance(project_id, range).await
    }

    async fn pageview_figures(
        &self,
        project_id: DocId,
        range: TimeRange,
        previous: Option<TimeRange>,
        filters: &crate::domain::analytics::PageViewFilters,
        top: usize,
        list: usize,
    ) -> StoreResult<crate::domain::analytics::PageViewFigures> {
        crate::analytics::engine::pageview_figures(
            self, project_id, range, previous, filters, top, list,
        )
        .await
    }

    async fn error_figures(
        &self,
        project_id: DocId,
        range: TimeRange,
        signature: Option<&str>,
        list: usize,
    ) -> StoreResult<crate::domain::error_groups::ErrorFigures> {
        crate::analytics::engine::error_figures(self, project_id, range, signature, list).await
    }

    async fn event_figures(
        &self,
        project_id: DocId,
        range: TimeRange,
        name: Option<&str>,
        top: usize,
        list: usize,
    ) -> StoreResult<(EventsSummary, Vec<crate::domain::analytics::BreakdownRow>)> {
        crate::analytics::engine::event_figures(self, project_id, range, name, top, list).await
    }

    async fn pageviews_report(
        &self,
        project_id: DocId,
        range: TimeRange,
        filters: &crate::domain::analytics::PageViewFilters,
    ) -> StoreResult<crate::domain::analytics::PageViewsReport> {
        self.report_pageviews(project_id, range, filters).await
    }

    async fn events_report(
        &self,
        project_id: DocId,
        range: TimeRange,
        filters: &crate::domain::analytics::EventFilters,
        paging: crate::domain::analytics::RecentPaging,
    ) -> StoreResult<crate::domain::analytics::EventsReport> {
        self.report_events(project_id, range, filters, paging).await
    }

    async fn event_detail(
        &self,
        project_id: DocId,
        range: TimeRange,
        event_name: &str,
        segment: &crate::domain::segment::SegmentFilters,
    ) -> StoreResult<crate::domain::analytics::EventDetail> {
        self.report_event_detail(project_id, range, event_name, segment)
            .await
    }

    async fn breakdowns(
        &self,
        project_id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<crate::domain::analytics::Breakdowns> {
        self.stats_breakdowns(project_id, range, top).await
    }

    async fn errors_report(
        &self,
        project_id: DocId,
        range: TimeRange,
        filters: &crate::domain::analytics::ErrorFilters,
        top: usize,
    ) -> StoreResult<crate::domain::analytics::ErrorsReport> {
        self.report_errors(project_id, range, filters, top).await
    }

    async fn error_detail(
        &self,
        project_id: DocId,
        fingerprint: &str,
        range: TimeRange,
        limit: usize,
    ) -> StoreResult<crate::domain::analytics::ErrorDetail> {
        self.report_error_detail(project_id, fingerprint, range, limit)
            .await
    }

    async fn performance_report(
        &self,
        project_id: DocId,
        range: TimeRange,
        filters: &crate::domain::analytics::PerformanceFilters,
    ) -> StoreResult<crate::domain::analytics::PerformanceReport> {
        self.report_performance(project_id, range, filters).await
    }

    async fn unit_counts(
        &self,
        project_id: DocId,
        range: TimeRange,
        unit: i64,
        source: crate::analytics::series::SeriesSource<'_>,
    ) -> StoreResult<crate::analytics::series::UnitCounts> {
        crate::analytics::engine::fine_counts(self, project_id, range, unit, source).await
    }
}

#[async_trait]
impl StoreAdmin for MongoStore {
    async fn migrate(&self) -> StoreResult<()> {
        // createIndexes with an identical definition is a no-op, which makes this repeatable.
        // One index per command: FerretDB 1.24 panics on a createIndexes listing two or more
        // indexes that already exist (it deletes from the list by stale positions), and one at
        // a time also lets a server without TTL indexes skip only those.
        for (name, models) in indexes::all() {
            for model in models {
                let ttl = indexes::is_ttl(&model);
                match self.coll(name).create_index(model).await {
                    Ok(_) => {}
                    // The sweepers expire these records either way.
                    Err(e) if ttl && errors::is_not_implemented(&e) => {
                        tracing::info!(
                            collection = name,
                            "the server has no TTL indexes; expired records are swept instead"
                        );
                    }
                    Err(e) => return Err(map_err(e)),
                }
            }
        }
        self.backfill_job_fields().await?;
        self.drop_old_rollup_versions().await?;
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        self.db
            .run_command(doc! {"ping": 1})
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::{domain::ids::random_hex, store::NewProject};

    async fn parsed(uri: &str) -> ClientOptions {
        ClientOptions::parse(uri).await.expect("valid test URI")
    }

    #[tokio::test]
    async fn a_uri_without_selection_timeout_gets_three_seconds() {
        let mut options = parsed("mongodb://127.0.0.1:27017/analytics").await;
        let db = configure(&mut options, None);
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_secs(3))
        );
        assert_eq!(db, "analytics", "the URI's default database");
        assert_eq!(options.app_name.as_deref(), Some("superinsights"));
    }

    #[tokio::test]
    async fn an_explicit_selection_timeout_and_database_win() {
        let mut options =
            parsed("mongodb://127.0.0.1:27017/analytics?serverSelectionTimeoutMS=500").await;
        let db = configure(&mut options, Some("other"));
        assert_eq!(
            options.server_selection_timeout,
            Some(Duration::from_millis(500))
        );
        assert_eq!(db, "other");
    }

    #[tokio::test]
    async fn the_database_defaults_to_superinsights() {
        let mut options = parsed("mongodb://127.0.0.1:27017").await;
        assert_eq!(configure(&mut options, Some("  ")), DEFAULT_DATABASE);
    }

    #[tokio::test]
    async fn a_malformed_uri_is_an_error_not_a_panic() {
        assert!(matches!(
            MongoStore::connect("http://nope", None).await,
            Err(StoreError::Other { .. })
        ));
    }

    #[tokio::test]
    async fn a_down_server_is_unavailable_quickly() {
        // Port 1 on loopback refuses connections; connect itself must not touch the network.
        let store =
            MongoStore::connect("mongodb://127.0.0.1:1/?serverSelectionTimeoutMS=300", None)
                .await
                .expect("connect is lazy");
        let started = std::time::Instant::now();
        let err = store.ping().await.expect_err("nothing listens on port 1");
        assert!(err.is_unavailable(), "{err:?}");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            store
                .count(DocId::new(), Channel::Events)
                .await
                .unwrap_err()
                .is_unavailable()
        );
    }

    #[test]
    fn drop_rules_use_the_superinsights_setting_key() {
        let id = DocId::parse("65ba3b00aaaaaaaaaaaaaaaa").unwrap();
        assert_eq!(
            drop_rules_key(id),
            "PROJECT:65ba3b00aaaaaaaaaaaaaaaa:INGESTION_DROP_EVENTS_V1"
        );
    }

    /// The MongoDB leg of the store contract: one test per behaviour, each on a throwaway
    /// database of the server `SUPERINSIGHTS_TEST_MONGODB_URI` names (scripts/test starts
    /// FerretDB 1.24 and sets it; a real MongoDB works too).
    pub(crate) mod contract {
        use super::*;

        const URI_VAR: &str = "SUPERINSIGHTS_TEST_MONGODB_URI";
        /// Set (to anything but empty/0/false) where a missing URI must fail, not skip: CI.
        const REQUIRED_VAR: &str = "SUPERINSIGHTS_TEST_MONGODB_REQUIRED";

        /// The MongoDB tests share one server; timing-sensitive ones (lease expiry measured in
        /// milliseconds) take this exclusively, so a busy server cannot stretch a claim past
        /// their tolerance. The others share it.
        static SERVER: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

        fn uri() -> Option<String> {
            let uri = std::env::var(URI_VAR).unwrap_or_default();
            if !uri.trim().is_empty() {
                return Some(uri);
            }
            let required = std::env::var(REQUIRED_VAR).unwrap_or_default();
            assert!(
                matches!(required.trim(), "" | "0" | "false"),
                "{REQUIRED_VAR} is set but {URI_VAR} is not: the MongoDB leg must run here"
            );
            None
        }

        /// Says a behaviour was skipped on the real stderr (the test harness captures only
        /// `eprintln!`), so a run without a server never looks like a MongoDB pass.
        fn report_skipped(behaviour: &str) {
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED mongodb contract `{behaviour}`: {URI_VAR} is not set \
                 (scripts/test sets it when Go can build FerretDB)"
            );
        }

        /// Runs one behaviour on a fresh database, dropped afterwards even when it fails.
        async fn fresh_database_run(
            behaviour: &str,
            run: fn(
                crate::store::Stores,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        ) {
            let Some(uri) = uri() else {
                report_skipped(behaviour);
                return;
            };
            let database = format!("si_contract_{}", random_hex(6));
            let store = MongoStore::connect(&uri, Some(&database))
                .await
                .expect("connect");
            let cleanup = store.db.clone();
            let stores = crate::store::Stores::new("mongodb", store);
            let outcome = tokio::spawn(async move {
                crate::store::contract::prepare(&stores).await;
                run(stores).await;
            })
            .await;
            cleanup.drop().await.expect("drop the throwaway database");
            if let Err(failure) = outcome {
                std::panic::resume_unwind(failure.into_panic());
            }
        }

        /// [`fresh_database_run`] beside the other MongoDB tests.
        async fn on_fresh_database(
            behaviour: &str,
            run: fn(
                crate::store::Stores,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        ) {
            let _shared = SERVER.read().await;
            fresh_database_run(behaviour, run).await;
        }

        /// [`fresh_database_run`] with the server to itself (timing-sensitive behaviours).
        pub(crate) async fn alone_on_fresh_database(
            behaviour: &str,
            run: fn(
                crate::store::Stores,
            ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        ) {
            let _alone = SERVER.write().await;
            fresh_database_run(behaviour, run).await;
        }

        macro_rules! one_test_per_behaviour {
            ($($behaviour:ident),* $(,)?) => {$(
                #[tokio::test]
                async fn $behaviour() {
                    on_fresh_database(stringify!($behaviour), |stores| {
                        Box::pin(async move {
                            crate::store::contract::$behaviour(&stores).await;
                        })
                    })
                    .await;
                }
            )*};
        }
        crate::store::contract::contract_behaviours!(one_test_per_behaviour);

        /// Runs `check` on a migrated store over a fresh database (dropped afterwards), for the
        /// MongoDB-only duties below: what a TTL index would do on MongoDB, and `migrate`'s
        /// backfills.
        async fn on_fresh_store(
            behaviour: &str,
            check: fn(
                MongoStore,
            )
                -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
        ) {
            let Some(uri) = uri() else {
                report_skipped(behaviour);
                return;
            };
            let _shared = SERVER.read().await;
            let database = format!("si_contract_{}", random_hex(6));
            let store = MongoStore::connect(&uri, Some(&database))
                .await
                .expect("connect");
            let cleanup = store.db.clone();
            store.migrate().await.expect("migrate");
            let outcome = tokio::spawn(check(store)).await;
            cleanup.drop().await.expect("drop the throwaway database");
            if let Err(failure) = outcome {
                std::panic::resume_unwind(failure.into_panic());
            }
        }

        /// Found by the views benchmark on FerretDB: first uses of a project's rollup state and
        /// of a bucket's version, racing, made one upsert fail with a duplicate `_id`. Every
        /// racer must succeed. (How many increments count is the server's: MongoDB's `$inc` is
        /// atomic, FerretDB 1.24's is a read then a write and loses some; `docs/mongodb.md` says
        /// what that costs.)
        #[tokio::test]
        async fn racing_first_upserts_of_rollup_state_and_versions_all_count() {
            on_fresh_store(
                "racing_first_upserts_of_rollup_state_and_versions_all_count",
                |store| {
                    Box::pin(async move {
                        let store = std::sync::Arc::new(store);
                        let project = store
                            .create_project(NewProject::named("P", DocId::new()))
                            .await
                            .unwrap();
                        let batch = crate::store::contract::batch(
                            project.id,
                            crate::domain::model::Docs::Pageviews(vec![
                                crate::store::contract::pageview("/", now_ms()),
                            ]),
                        );
                        let racers: Vec<_> = (0..8)
                            .map(|_| {
                                let (store, batch) = (store.clone(), batch.clone());
                                tokio::spawn(async move {
                                    store.state_inc(project.id, "clients", 1).await.unwrap();
                                    store
                                        .bump_versions(std::slice::from_ref(&batch))
                                        .await
                                        .unwrap();
                                })
                            })
                            .collect();
                        for r in racers {
                            r.await.unwrap();
                        }
                        let state = store.state_inc(project.id, "clients", 0).await.unwrap();
                        assert!((1..=8).contains(&state.get_i64("clients").unwrap()));
                        let hour = now_ms().div_euclid(crate::analytics::plan::HOUR);
                        let vers = crate::analytics::engine::RollupPort::versions(
                            store.as_ref(),
                            project.id,
                            crate::analytics::engine::HOUR_GRAIN,
                            hour - 1,
                            hour,
                        )
                        .await
                        .unwrap();
                        assert!((1..=8).contains(&vers.values().sum::<i64>()), "{vers:?}");
                    })
                },
            )
            .await;
        }

        /// Without TTL indexes (FerretDB) the ingest-batch markers still go: the retention
        /// purge deletes a project's markers older than their 30 days, and only those.
        #[tokio::test]
        async fn old_ingest_markers_are_swept_by_the_purge() {
            on_fresh_store("old_ingest_markers_are_swept_by_the_purge", |store| {
                Box::pin(async move {
                    let project = store
                        .create_project(NewProject::named("P", DocId::new()))
                        .await
                        .unwrap();
                    let ttl = i64::try_from(indexes::BATCH_MARKER_TTL.as_millis()).unwrap();
                    let (old, new) = (DocId::new(), DocId::new());
                    for (id, age) in [(old, ttl + 60_000), (new, 60_000)] {
                        store
                            .coll(INGEST_BATCHES)
                            .insert_one(doc! {
                                "_id": oid(id),
                                "projectId": oid(project.id),
                                "createdAt": date(now_ms() - age),
                            })
                            .await
                            .unwrap();
                    }
                    store.purge_before(project.id, 0).await.unwrap();
                    let left: Vec<Document> = store
                        .coll(INGEST_BATCHES)
                        .find(doc! {})
                        .collect_all()
                        .await
                        .unwrap();
                    let left: Vec<DocId> = left
                        .iter()
                        .map(|d| docs::read_id(d, INGEST_BATCHES, "_id").unwrap())
                        .collect();
                    assert_eq!(left, vec![new]);
                })
            })
            .await;
        }

        /// Jobs written before `attemptsLeft` and `claims` existed are given both by `migrate`
        /// and can then be claimed, retried and failed for good as before.
        /// Versions were one document per bucket before `rollupdays`: `migrate` drops them and
        /// every rollup built from them (they would be compared with the new counters).
        #[tokio::test]
        async fn migrate_drops_per_bucket_versions_and_their_rollups() {
            on_fresh_store(
                "migrate_drops_per_bucket_versions_and_their_rollups",
                |store| {
                    Box::pin(async move {
                        for (name, d) in [
                            (
                                rollups::OLD_ROLLUP_VERSIONS,
                                doc! {"_id": "p:0:1", "ver": 3_i64},
                            ),
                            (rollups::ROLLUPS, doc! {"_id": "p:0:1", "ver": 3_i64}),
                        ] {
                            store.coll(name).insert_one(d).await.unwrap();
                        }
                        store.migrate().await.unwrap();
                        let names = store.db.list_collection_names().await.unwrap();
                        assert!(!names.iter().any(|n| n == rollups::OLD_ROLLUP_VERSIONS));
                        let left = store
                            .coll(rollups::ROLLUPS)
                            .count_documents(doc! {})
                            .await
                            .unwrap();
                        assert_eq!(left, 0);
                        store.migrate().await.unwrap();
                    })
                },
            )
            .await;
        }

        #[tokio::test]
        async fn migrate_backfills_job_fields() {
            use crate::store::{JobClaim, JobStore};
            on_fresh_store("migrate_backfills_job_fields", |store| {
                Box::pin(async move {
                    let id = DocId::new();
                    store
                        .coll(jobs::JOBS)
                        .insert_one(doc! {
                            "_id": oid(id), "kind": "k", "payload": {}, "state": "running",
                            "dispatch": "store", "attempts": 1, "maxAttempts": 2, "progress": 0,
                            "queuedAt": date(0), "runAfter": date(0), "leaseToken": "old",
                            "leaseUntil": date(10), "updatedAt": date(0),
                        })
                        .await
                        .unwrap();
                    store.migrate().await.unwrap();
                    let found = store
                        .coll(jobs::JOBS)
                        .find_one(doc! {"_id": oid(id)})
                        .await
                        .unwrap()
                        .unwrap();
                    assert_eq!(docs::read_int(&found, "attemptsLeft"), Some(1));
                    assert_eq!(docs::read_int(&found, "claims"), Some(1));
                    let claim = |token| JobClaim {
                        token,
                        worker: "w",
                        now: 100,
                        lease_until: 200,
                    };
                    let job = store
                        .claim_next_job(&["k".to_string()], &claim("new"), 100)
                        .await
                        .unwrap()
                        .expect("the expired lease is claimable: one attempt left");
                    assert_eq!((job.id, job.attempts), (id, 2));
                    assert!(
                        store
                            .claim_job(id, &claim("again"))
                            .await
                            .unwrap()
                            .is_none()
                    );
                    assert!(
                        store
                            .fail_job(
                                id,
                                "new",
                                "boom",
                                None,
                                crate::store::JobDispatch::Store,
                                150
                            )
                            .await
                            .unwrap()
                    );
                    assert!(
                        store
                            .fail_abandoned_jobs(1_000, "gone")
                            .await
                            .unwrap()
                            .is_empty(),
                        "failed for good, nothing left to abandon"
                    );
                })
            })
            .await;
        }
    }
}
