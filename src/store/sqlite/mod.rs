//! Embedded SQLite backend (sqlx). Owns the schema in `migrations/sqlite`, WAL mode and a busy
//! timeout so several server processes can share one file. Analytics rows point at the project's
//! compact integer key; everything above this module sees only [`DocId`]s.

mod ai;
mod audit;
mod diagnostics;
mod error_states;
mod filters;
mod invites;
mod jobs;
mod public_links;
mod report_records;
mod reports;
mod rollups;
mod rows;
mod sessions;
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
use sqlx::{
    Connection, Row, SqliteConnection,
    sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
        SqliteSynchronous,
    },
};
use std::{
    collections::{HashMap, HashSet},
    path::Path,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

/// Connection tuning taken from the configuration.
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    pub busy_timeout: Duration,
    /// How long an ingest commit waits for the write lock before it fails as unavailable (and
    /// its batch is spooled): short, so a locked store costs a request about this much.
    pub ingest_busy_timeout: Duration,
    pub synchronous_full: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        Self {
            busy_timeout: Duration::from_secs(5),
            ingest_busy_timeout: Duration::from_secs(1),
            // The production default (`SQLITE_SYNCHRONOUS=normal`), so tests run what users run.
            synchronous_full: false,
        }
    }
}

/// A cheap handle: clones share the pools, the key cache and the rollup builds.
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The single connection analytics writes go through (see `open`).
    ingest: SqlitePool,
    /// Project id → integer key; a project's key never changes, so this never goes stale.
    project_keys: Arc<RwLock<HashMap<DocId, i64>>>,
    /// Rollup builds in flight (one per bucket at a time).
    rollup_builds: Arc<rollups::BuildLocks<i64>>,
    /// Raised by the background checkpointer after a pass that left frames in the WAL; the
    /// ingest writer then finishes that checkpoint itself (see [`spawn_checkpointer`]).
    wal_tail_due: Arc<AtomicBool>,
    /// Whether the background checkpointer runs (see [`SqliteStore::start_checkpoints`]).
    checkpoints_started: Arc<AtomicBool>,
}

/// Maps driver errors onto the port's error type.
/// The driver error stays the port error's `source`.
pub(crate) fn map_err(e: sqlx::Error) -> StoreError {
    let unavailable = match &e {
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                return StoreError::Conflict(db.message().to_string());
            }
            let primary = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map(|c| c & 0xff);
            // BUSY, LOCKED, IOERR, FULL, CANTOPEN, PROTOCOL, READONLY
            matches!(primary, Some(5 | 6 | 10 | 13 | 14 | 15 | 8))
        }
        // `InvalidSavePointStatement` means a connection still thinks it is inside a failed
        // transaction; such connections are closed on release (see `open`), so this is passing.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::InvalidSavePointStatement => true,
        _ => false,
    };
    if unavailable {
        StoreError::unavailable_from(e)
    } else {
        StoreError::other_from(e)
    }
}

/// Pool settings shared by the read/write pool and the ingest connection.
///
/// A connection is closed instead of reused when it is still inside a transaction after its
/// owner let go of it. That happens when a `COMMIT` fails (a full disk, an I/O error): SQLite
/// has already rolled back, sqlx's `ROLLBACK` then fails, and sqlx would keep counting the
/// connection as inside a transaction, refusing every later `BEGIN` until a restart.
fn pool_options(connections: u32, busy_timeout: Duration) -> SqlitePoolOptions {
    SqlitePoolOptions::new()
        .max_connections(connections)
        .min_connections(1)
        .acquire_timeout(busy_timeout + Duration::from_secs(1))
        .after_release(|conn, _| {
            Box::pin(async move {
                // The round trip runs after any rollback queued by a dropped transaction.
                conn.ping().await?;
                if conn.is_in_transaction() {
                    tracing::warn!("sqlite: connection left inside a failed transaction; replaced");
                    return Ok(false);
                }
                Ok(true)
            })
        })
}

/// Ledger rows per `INSERT` of [`EventWriter::write_once_many`] (two parameters each).
const LEDGER_ROWS_PER_INSERT: usize = 500;

/// How often the background checkpointer moves committed WAL pages into the database file.
/// Short passes keep the part left for the ingest writer (see below) small.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// Keeps the WAL short without ever making an ingest commit wait for a checkpoint.
///
/// A checkpoint copies WAL pages into the database file and syncs both files: 15–45 ms on this
/// project's test machine at 2,000 commits a second. SQLite's own autocheckpoint runs inside the
/// COMMIT that crosses its threshold, so about once a second one commit, and every request
/// queued behind it, waited that long (the ingest p99, issue 14). So the ingest connection has
/// autocheckpoint off, and:
/// - this task runs a PASSIVE checkpoint (never blocks writers or readers) every
///   [`CHECKPOINT_INTERVAL`] from a pool connection: the heavy part, off the commit path;
/// - a WAL only starts over from its beginning once every frame in it is checkpointed, which a
///   pass made beside a busy writer never achieves. So after a pass this task raises
///   `tail_due`, and the ingest writer checkpoints the few frames committed during the pass
///   before its next transaction (a few ms, once per interval); its next commit then restarts
///   the WAL. Other connections keep the autocheckpoint as a backstop for idle ingest.
fn spawn_checkpointer(pool: SqlitePool, tail_due: Arc<AtomicBool>) {
    crate::tasks::spawn_loop("sqlite_checkpointer", async move {
        let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if pool.is_closed() {
                return;
            }
            // (busy, frames in the WAL, frames checkpointed)
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
                .fetch_one(&pool)
                .await
            {
                Ok((_, frames, _)) if frames > 0 => tail_due.store(true, Ordering::Relaxed),
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "background WAL checkpoint skipped"),
            }
        }
    });
}

impl SqliteStore {
    /// Opens (creating when missing) the database file.
    pub async fn open(path: &Path, options: SqliteOptions) -> StoreResult<Self> {
        crate::fsutil::prepare_sqlite_file(path)
            .map_err(|e| StoreError::unavailable_with(format!("{}: {e}", path.display()), e))?;
        let connect = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(if options.synchronous_full {
                SqliteSynchronous::Full
            } else {
                SqliteSynchronous::Normal
            })
            .busy_timeout(options.busy_timeout)
            .pragma("temp_store", "memory")
            .pragma("cache_size", "-16000")
            // A backstop only: checkpoints run from a background task (`spawn_checkpointer`).
            .pragma("wal_autocheckpoint", "10000");
        let pool = pool_options(4, options.busy_timeout)
            .connect_with(connect.clone())
            .await
            .map_err(map_err)?;
        // The ingest writer gets a connection of its own: its page cache stays warm between
        // commits, and it never waits behind the pool's readers. Its busy timeout is short, so
        // a locked store sends batches to the spool promptly instead of holding requests.
        let ingest = pool_options(1, options.ingest_busy_timeout)
            .connect_with(
                connect
                    .busy_timeout(options.ingest_busy_timeout)
                    .pragma("wal_autocheckpoint", "0"),
            )
            .await
            .map_err(map_err)?;
        Ok(Self {
            pool,
            ingest,
            project_keys: Arc::default(),
            rollup_builds: Arc::default(),
            wal_tail_due: Arc::default(),
            checkpoints_started: Arc::default(),
        })
    }

    /// Starts the background checkpointer, once, when the schema is current: after `migrate`,
    /// or at the first ingest write of a process that did not migrate. Not at `open`: a pool
    /// connection that ran a checkpoint between two migrations would keep the older schema in
    /// memory, SQLite would prepare its next `SELECT *` with the old column count and re-prepare
    /// it at the first step, and sqlx, which counted the columns at prepare time, panics on the
    /// extra column (`index out of bounds: the len is 10 but the index is 10`, seen in tests).
    fn start_checkpoints(&self) {
        if !self.checkpoints_started.swap(true, Ordering::Relaxed) {
            spawn_checkpointer(self.pool.clone(), self.wal_tail_due.clone());
        }
    }

    /// The integer key of a project, `NotFound` when it does not exist.
    async fn project_key(&self, conn: &mut SqliteConnection, id: DocId) -> StoreResult<i64> {
        if let Some(pk) = self.project_keys.read().expect("lock").get(&id) {
            return Ok(*pk);
        }
        let pk: Option<i64> = sqlx::query_scalar("SELECT pk FROM projects WHERE id = ?")
            .bind(id.to_hex())
            .fetch_optional(&mut *conn)
            .await
            .map_err(map_err)?;
        let pk = pk.ok_or(StoreError::NotFound)?;
        self.project_keys.write().expect("lock").insert(id, pk);
        Ok(pk)
    }

    /// The row with this id mapped by `map`, or `None`.
    async fn find_by_id<T>(
        &self,
        sql: &str,
        id: DocId,
        map: fn(&SqliteRow) -> StoreResult<T>,
    ) -> StoreResult<Option<T>> {
        let row = sqlx::query(sql)
            .bind(id.to_hex())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(map).transpose()
    }

    /// Every row of a parameterless query, mapped by `map`.
    async fn list<T>(
        &self,
        sql: &str,
        map: fn(&SqliteRow) -> StoreResult<T>,
    ) -> StoreResult<Vec<T>> {
        let rows = sqlx::query(sql)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        rows.iter().map(map).collect()
    }

    /// Runs `UPDATE … SET x = ?, updated_at = ? WHERE id = ?`; `NotFound` when no row matched.
    async fn update_one(&self, sql: &str, value: &str, id: DocId) -> StoreResult<()> {
        let changed = sqlx::query(sql)
            .bind(value)
            .bind(now_ms())
            .bind(id.to_hex())
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        if changed == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    /// The ingest connection, after the background checkpoint's tail when one is due.
    async fn ingest_connection(&self) -> StoreResult<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        self.start_checkpoints();
        let mut conn = self.ingest.acquire().await.map_err(map_err)?;
        if self.wal_tail_due.swap(false, Ordering::Relaxed) {
            // The end of the background checkpoint's pass (see `spawn_checkpointer`). Failing
            // (another process holds the checkpoint lock) costs nothing: the next pass retries.
            if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&mut *conn)
                .await
            {
                tracing::debug!(error = %e, "ingest WAL checkpoint skipped");
            }
        }
        Ok(conn)
    }

    async fn insert_batches(
        &self,
        conn: &mut SqliteConnection,
        batches: &[&WriteBatch],
    ) -> StoreResult<()> {
        let mut keyed = Vec::with_capacity(batches.len());
        for &batch in batches {
            let pk = self.project_key(conn, batch.project_id).await?;
            keyed.push((pk, batch));
            if batch.dropped > 0 {
                sqlx::query("UPDATE projects SET dropped_events = dropped_events + ? WHERE pk = ?")
                    .bind(batch.dropped as i64)
                    .bind(pk)
                    .execute(&mut *conn)
                    .await
                    .map_err(map_err)?;
            }
        }
        rows::insert_all(conn, &keyed).await?;
        // The only rollup work on the ingest path: one upsert of the touched hours' versions.
        rollups::bump_versions(conn, &keyed).await
    }
}

fn project_from_row(r: &SqliteRow) -> StoreResult<Project> {
    let id = |col: &str| -> StoreResult<DocId> {
        let s: String = r.try_get(col).map_err(map_err)?;
        DocId::parse(&s).ok_or_else(|| StoreError::other(format!("bad id in projects.{col}: {s}")))
    };
    Ok(Project {
        id: id("id")?,
        name: r.try_get("name").map_err(map_err)?,
        icon: r.try_get("icon").map_err(map_err)?,
        environment: r.try_get("environment").map_err(map_err)?,
        public_api_key: r.try_get("public_api_key").map_err(map_err)?,
        secret_api_key: r.try_get("secret_api_key").map_err(map_err)?,
        data_retention_days: r
            .try_get::<i64, _>("data_retention_days")
            .map_err(map_err)? as u32,
        org_id: id("org_id")?,
        created_at: r.try_get("created_at").map_err(map_err)?,
        deleted_at: r.try_get("deleted_at").map_err(map_err)?,
    })
}

/// A role or status read from column `col` into its enum; a value outside it is an error that
/// names where it is stored (`stored_in`, e.g. `users.role`).
pub(super) fn enum_col<T>(r: &SqliteRow, col: &str, stored_in: &str) -> StoreResult<T>
where
    T: std::str::FromStr<Err = crate::domain::records::UnknownValue>,
{
    let s: String = r.try_get(col).map_err(map_err)?;
    s.parse()
        .map_err(|e| StoreError::other_with(format!("{stored_in}: {e}"), e))
}

fn user_from_row(r: &SqliteRow) -> StoreResult<User> {
    let id: String = r.try_get("id").map_err(map_err)?;
    Ok(User {
        id: DocId::parse(&id).ok_or_else(|| StoreError::other(format!("bad user id {id}")))?,
        email: r.try_get("email").map_err(map_err)?,
        password_hash: r.try_get("password_hash").map_err(map_err)?,
        name: r.try_get("name").map_err(map_err)?,
        role: enum_col(r, "role", "users.role")?,
        created_at: r.try_get("created_at").map_err(map_err)?,
    })
}

#[async_trait]
impl ProjectStore for SqliteStore {
    async fn insert_project(&self, project: &Project) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO projects (id, name, icon, environment, public_api_key, secret_api_key, \
             data_retention_days, org_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(project.id.to_hex())
        .bind(&project.name)
        .bind(&project.icon)
        .bind(&project.environment)
        .bind(&project.public_api_key)
        .bind(&project.secret_api_key)
        .bind(project.data_retention_days as i64)
        .bind(project.org_id.to_hex())
        .bind(project.created_at)
        .bind(project.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn project(&self, id: DocId) -> StoreResult<Option<Project>> {
        self.find_by_id("SELECT * FROM projects WHERE id = ?", id, project_from_row)
            .await
    }

    async fn projects_of_org(&self, org_id: DocId) -> StoreResult<Vec<Project>> {
        let rows = sqlx::query(
            "SELECT * FROM projects WHERE org_id = ? AND deleted_at IS NULL ORDER BY created_at DESC, pk DESC",
        )
        .bind(org_id.to_hex())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(project_from_row).collect()
    }

    async fn find_by_api_key(&self, key: &str) -> StoreResult<Option<KeyMatch>> {
        let row = sqlx::query(
            "SELECT id, public_api_key = ?1 AS is_public FROM projects \
             WHERE (public_api_key = ?1 OR secret_api_key = ?1) AND deleted_at IS NULL LIMIT 1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        let Some(row) = row else { return Ok(None) };
        let id: String = row.try_get("id").map_err(map_err)?;
        let is_public: bool = row.try_get("is_public").map_err(map_err)?;
        Ok(DocId::parse(&id).map(|project_id| KeyMatch {
            project_id,
            kind: if is_public {
                KeyKind::Public
            } else {
                KeyKind::Secret
            },
        }))
    }

    async fn drop_rules(&self, project_id: DocId) -> StoreResult<DropRules> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM global_settings WHERE key = ?")
                .bind(drop_rules_key(project_id))
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(value
            .and_then(|v| serde_json::from_str(&v).ok())
            .unwrap_or_default())
    }

    async fn set_drop_rules(&self, project_id: DocId, rules: &DropRules) -> StoreResult<()> {
        let value = serde_json::to_string(rules).map_err(StoreError::other_from)?;
        sqlx::query(
            "INSERT INTO global_settings (key, value, type, description, updated_at) VALUES (?, ?, 'json', ?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(drop_rules_key(project_id))
        .bind(value)
        .bind("Ingestion drop rules for events")
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn update_project(&self, id: DocId, update: &ProjectUpdate) -> StoreResult<Project> {
        let changed = sqlx::query(
            "UPDATE projects SET name = ?, icon = ?, environment = ?, data_retention_days = ?, updated_at = ? \
             WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(update.name.trim())
        .bind(&update.icon)
        .bind(&update.environment)
        .bind(update.data_retention_days as i64)
        .bind(now_ms())
        .bind(id.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        self.project(id).await?.ok_or(StoreError::NotFound)
    }

    async fn set_api_keys(
        &self,
        id: DocId,
        public_api_key: &str,
        secret_api_key: &str,
    ) -> StoreResult<Project> {
        let changed = sqlx::query(
            "UPDATE projects SET public_api_key = ?, secret_api_key = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(public_api_key)
        .bind(secret_api_key)
        .bind(now_ms())
        .bind(id.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        self.project(id).await?.ok_or(StoreError::NotFound)
    }

    async fn soft_delete_project(&self, id: DocId) -> StoreResult<()> {
        let now = now_ms();
        let changed = sqlx::query("UPDATE projects SET deleted_at = ?, updated_at = ? WHERE id = ? AND deleted_at IS NULL")
            .bind(now)
            .bind(now)
            .bind(id.to_hex())
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        Self::forget_error_states(&self.pool, id).await
    }

    async fn clear_project_data(&self, id: DocId) -> StoreResult<()> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let pk = self.project_key(&mut tx, id).await?;
        for channel in Channel::ALL {
            sqlx::query(&format!(
                "DELETE FROM {} WHERE project = ?",
                rows::table(channel)
            ))
            .bind(pk)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        }
        rollups::forget_project(&mut tx, pk).await?;
        Self::forget_error_states(&mut *tx, id).await?;
        sqlx::query("DELETE FROM ai_analysis_runs WHERE project_id = ?")
            .bind(id.to_hex())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM global_settings WHERE key = ?")
            .bind(drop_rules_key(id))
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        sqlx::query("UPDATE projects SET dropped_events = 0, updated_at = ? WHERE pk = ?")
            .bind(now_ms())
            .bind(pk)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        tx.commit().await.map_err(map_err)
    }

    async fn live_projects(&self) -> StoreResult<Vec<Project>> {
        self.list(
            "SELECT * FROM projects WHERE deleted_at IS NULL ORDER BY created_at, pk",
            project_from_row,
        )
        .await
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
        // One transaction: no reader ever sees the documents gone but their rollups still fresh,
        // and a failure leaves both as they were.
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        let pk = self.project_key(&mut tx, id).await?;
        let mut removed = 0;
        for channel in Channel::ALL {
            removed += sqlx::query(&format!(
                "DELETE FROM {} WHERE project = ? AND ts < ?",
                rows::table(channel)
            ))
            .bind(pk)
            .bind(cutoff_ms)
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        }
        rollups::purged_before(&mut tx, pk, cutoff_ms).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(removed)
    }
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn insert_user(&self, user: &User) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO users (id, email, password_hash, name, role, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(user.id.to_hex())
        .bind(&user.email)
        .bind(&user.password_hash)
        .bind(&user.name)
        .bind(user.role.as_str())
        .bind(user.created_at)
        .bind(user.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> StoreResult<Option<User>> {
        let row = sqlx::query("SELECT * FROM users WHERE email = ?")
            .bind(email.trim().to_lowercase())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(user_from_row).transpose()
    }

    async fn count_users(&self) -> StoreResult<u64> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn insert_org(&self, org: &Organization) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO organizations (id, name, slug, owner_user_id, status, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(org.id.to_hex())
        .bind(&org.name)
        .bind(&org.slug)
        .bind(org.owner_user_id.to_hex())
        .bind(org.status.as_str())
        .bind(org.created_at)
        .bind(org.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn add_member(&self, org: DocId, user: DocId, role: OrgRole) -> StoreResult<()> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO organization_members (org_id, user_id, role, status, created_at, updated_at) \
             VALUES (?, ?, ?, 'active', ?, ?) ON CONFLICT (org_id, user_id) \
             DO UPDATE SET role = excluded.role, status = 'active', updated_at = excluded.updated_at",
        )
        .bind(org.to_hex())
        .bind(user.to_hex())
        .bind(role.as_str())
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn member_role(&self, org: DocId, user: DocId) -> StoreResult<Option<OrgRole>> {
        let row = sqlx::query(
            "SELECT role FROM organization_members WHERE org_id = ? AND user_id = ? AND status = 'active'",
        )
        .bind(org.to_hex())
        .bind(user.to_hex())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref()
            .map(|r| enum_col(r, "role", "organization_members.role"))
            .transpose()
    }

    async fn memberships(&self, user: DocId) -> StoreResult<Vec<(Organization, OrgRole)>> {
        let rows = sqlx::query(
            "SELECT o.*, m.role AS member_role FROM organization_members m JOIN organizations o ON o.id = m.org_id \
             WHERE m.user_id = ? AND m.status = 'active' AND o.status = 'active' ORDER BY m.created_at, o.id",
        )
        .bind(user.to_hex())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok((
                    org_from_row(r)?,
                    enum_col(r, "member_role", "organization_members.role")?,
                ))
            })
            .collect()
    }

    async fn user(&self, id: DocId) -> StoreResult<Option<User>> {
        self.find_by_id("SELECT * FROM users WHERE id = ?", id, user_from_row)
            .await
    }

    async fn list_users(&self) -> StoreResult<Vec<User>> {
        self.list("SELECT * FROM users ORDER BY created_at, id", user_from_row)
            .await
    }

    async fn set_password_hash(&self, user: DocId, hash: &str) -> StoreResult<()> {
        self.update_one(
            "UPDATE users SET password_hash = ?, updated_at = ? WHERE id = ?",
            hash,
            user,
        )
        .await
    }

    async fn registration_setting(&self) -> StoreResult<Option<bool>> {
        let value: Option<String> =
            sqlx::query_scalar("SELECT value FROM global_settings WHERE key = ?")
                .bind(crate::store::REGISTRATION_KEY)
                .fetch_optional(&self.pool)
                .await
                .map_err(map_err)?;
        Ok(value.map(|v| v == "true"))
    }

    async fn set_registration_setting(&self, open: bool) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO global_settings (key, value, type, description, updated_at) VALUES (?, ?, 'boolean', ?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
        )
        .bind(crate::store::REGISTRATION_KEY)
        .bind(open.to_string())
        .bind(crate::store::REGISTRATION_DESCRIPTION)
        .bind(now_ms())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn set_user_email(&self, user: DocId, email: &str) -> StoreResult<()> {
        self.update_one(
            "UPDATE users SET email = ?, updated_at = ? WHERE id = ?",
            email,
            user,
        )
        .await
    }

    async fn set_user_role(&self, user: DocId, role: PlatformRole) -> StoreResult<()> {
        self.update_one(
            "UPDATE users SET role = ?, updated_at = ? WHERE id = ?",
            role.as_str(),
            user,
        )
        .await
    }

    async fn delete_user(&self, user: DocId) -> StoreResult<()> {
        let mut tx = self
            .pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(map_err)?;
        sqlx::query("DELETE FROM organization_members WHERE user_id = ?")
            .bind(user.to_hex())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?;
        let gone = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(user.to_hex())
            .execute(&mut *tx)
            .await
            .map_err(map_err)?
            .rows_affected();
        if gone == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await.map_err(map_err)
    }

    async fn org(&self, id: DocId) -> StoreResult<Option<Organization>> {
        self.find_by_id("SELECT * FROM organizations WHERE id = ?", id, org_from_row)
            .await
    }

    async fn list_orgs(&self) -> StoreResult<Vec<Organization>> {
        self.list(
            "SELECT * FROM organizations ORDER BY created_at, id",
            org_from_row,
        )
        .await
    }

    async fn rename_org(&self, id: DocId, name: &str) -> StoreResult<()> {
        self.update_one(
            "UPDATE organizations SET name = ?, updated_at = ? WHERE id = ?",
            name.trim(),
            id,
        )
        .await
    }

    async fn set_org_status(&self, id: DocId, status: OrgStatus) -> StoreResult<()> {
        self.update_one(
            "UPDATE organizations SET status = ?, updated_at = ? WHERE id = ?",
            status.as_str(),
            id,
        )
        .await
    }

    async fn members(&self, org: DocId) -> StoreResult<Vec<Member>> {
        let rows = sqlx::query(
            "SELECT u.*, m.role AS member_role FROM organization_members m JOIN users u ON u.id = m.user_id \
             WHERE m.org_id = ? AND m.status = 'active' ORDER BY m.created_at, u.id",
        )
        .bind(org.to_hex())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                Ok(Member {
                    user: user_from_row(r)?,
                    role: enum_col(r, "member_role", "organization_members.role")?,
                })
            })
            .collect()
    }

    async fn remove_member(&self, org: DocId, user: DocId) -> StoreResult<()> {
        let changed = sqlx::query(
            "UPDATE organization_members SET status = 'removed', updated_at = ? \
             WHERE org_id = ? AND user_id = ? AND status = 'active'",
        )
        .bind(now_ms())
        .bind(org.to_hex())
        .bind(user.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        if changed == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }
}

fn org_from_row(r: &SqliteRow) -> StoreResult<Organization> {
    let id = |col: &str| -> StoreResult<DocId> {
        let s: String = r.try_get(col).map_err(map_err)?;
        DocId::parse(&s)
            .ok_or_else(|| StoreError::other(format!("bad id in organizations.{col}: {s}")))
    };
    Ok(Organization {
        id: id("id")?,
        name: r.try_get("name").map_err(map_err)?,
        slug: r.try_get("slug").map_err(map_err)?,
        owner_user_id: id("owner_user_id")?,
        status: enum_col(r, "status", "organizations.status")?,
        created_at: r.try_get("created_at").map_err(map_err)?,
    })
}

#[async_trait]
impl EventWriter for SqliteStore {
    async fn write(&self, batches: &[WriteBatch]) -> StoreResult<()> {
        let mut conn = self.ingest_connection().await?;
        // IMMEDIATE takes the write lock up front, so the busy timeout covers the whole wait.
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let all: Vec<&WriteBatch> = batches.iter().collect();
        self.insert_batches(&mut tx, &all).await?;
        tx.commit().await.map_err(map_err)
    }

    async fn write_once(&self, batch: &WriteBatch) -> StoreResult<bool> {
        let fresh = self.write_once_many(std::slice::from_ref(batch)).await?;
        Ok(fresh.first().copied().unwrap_or(false))
    }

    /// One `BEGIN IMMEDIATE` transaction for the whole group: one multi-row ledger insert
    /// (`ON CONFLICT DO NOTHING RETURNING` names the batches that are new), then the new
    /// batches' rows. Any error rolls the transaction back, ledger rows included.
    async fn write_once_many(&self, batches: &[WriteBatch]) -> StoreResult<Vec<bool>> {
        if batches.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.ingest_connection().await?;
        let mut tx = conn.begin_with("BEGIN IMMEDIATE").await.map_err(map_err)?;
        let applied_at = now_ms();
        let mut new_ids: HashSet<String> = HashSet::with_capacity(batches.len());
        // 2 parameters a row; far below SQLite's 32,766 bound per statement.
        for chunk in batches.chunks(LEDGER_ROWS_PER_INSERT) {
            let sql = format!(
                "INSERT INTO ingest_batches (batch_id, applied_at) VALUES {} ON CONFLICT DO NOTHING RETURNING batch_id",
                vec!["(?, ?)"; chunk.len()].join(", ")
            );
            let mut q = sqlx::query_scalar::<_, String>(&sql);
            for batch in chunk {
                q = q.bind(batch.batch_id.to_hex()).bind(applied_at);
            }
            new_ids.extend(q.fetch_all(&mut *tx).await.map_err(map_err)?);
        }
        // A batch id twice in one group: the first occurrence is the one stored.
        let fresh: Vec<bool> = batches
            .iter()
            .map(|b| new_ids.remove(&b.batch_id.to_hex()))
            .collect();
        let to_store: Vec<&WriteBatch> = batches
            .iter()
            .zip(&fresh)
            .filter_map(|(b, new)| new.then_some(b))
            .collect();
        if to_store.is_empty() {
            return Ok(fresh);
        }
        self.insert_batches(&mut tx, &to_store).await?;
        tx.commit().await.map_err(map_err)?;
        Ok(fresh)
    }
}

#[async_trait]
impl StatsReader for SqliteStore {
    async fn rollups_settled(&self) {
        self.rollup_builds.settled().await;
    }

    async fn count(&self, project_id: DocId, channel: Channel) -> StoreResult<u64> {
        let sql = format!(
            "SELECT COUNT(*) FROM {} WHERE project = (SELECT pk FROM projects WHERE id = ?)",
            rows::table(channel)
        );
        let n: i64 = sqlx::query_scalar(&sql)
            .bind(project_id.to_hex())
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n as u64)
    }

    async fn recent(
        &self,
        project_id: DocId,
        channel: Channel,
        limit: u32,
    ) -> StoreResult<Vec<serde_json::Value>> {
        let sql = format!(
            "SELECT * FROM {} WHERE project = (SELECT pk FROM projects WHERE id = ?) ORDER BY ts DESC, rowid DESC LIMIT ?",
            rows::table(channel)
        );
        let found = sqlx::query(&sql)
            .bind(project_id.to_hex())
            .bind(limit as i64)
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(found.iter().map(|r| rows::to_json(r, project_id)).collect())
    }

    async fn dropped_events(&self, project_id: DocId) -> StoreResult<u64> {
        let n: Option<i64> = sqlx::query_scalar("SELECT dropped_events FROM projects WHERE id = ?")
            .bind(project_id.to_hex())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(n.unwrap_or(0) as u64)
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
        match self.pk_for_stats(project_id).await? {
            Some(pk) => crate::analytics::engine::unique_visitors_each(self, pk, ranges).await,
            None => Ok(vec![0; ranges.len()]),
        }
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

    async fn breakdowns(
        &self,
        project_id: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<crate::domain::analytics::Breakdowns> {
        self.stats_breakdowns(project_id, range, top).await
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
        match self.pk_for_stats(project_id).await? {
            Some(pk) => {
                crate::analytics::engine::pageview_figures(
                    self, pk, range, previous, filters, top, list,
                )
                .await
            }
            None => Ok(Default::default()),
        }
    }

    async fn error_figures(
        &self,
        project_id: DocId,
        range: TimeRange,
        signature: Option<&str>,
        list: usize,
    ) -> StoreResult<crate::domain::error_groups::ErrorFigures> {
        match self.pk_for_stats(project_id).await? {
            Some(pk) => {
                crate::analytics::engine::error_figures(self, pk, range, signature, list).await
            }
            None => Ok(Default::default()),
        }
    }

    async fn event_figures(
        &self,
        project_id: DocId,
        range: TimeRange,
        name: Option<&str>,
        top: usize,
        list: usize,
    ) -> StoreResult<(EventsSummary, Vec<crate::domain::analytics::BreakdownRow>)> {
        match self.pk_for_stats(project_id).await? {
            Some(pk) => {
                crate::analytics::engine::event_figures(self, pk, range, name, top, list).await
            }
            None => Ok(Default::default()),
        }
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
        match self.pk_for_stats(project_id).await? {
            Some(pk) => crate::analytics::engine::fine_counts(self, pk, range, unit, source).await,
            None => Ok(crate::analytics::series::UnitCounts {
                unit,
                ..Default::default()
            }),
        }
    }
}

#[async_trait]
impl StoreAdmin for SqliteStore {
    async fn sweep_batch_ledger(&self, now_ms: i64) -> StoreResult<u64> {
        let ttl = i64::try_from(crate::store::BATCH_LEDGER_TTL.as_millis()).unwrap_or(i64::MAX);
        Ok(
            sqlx::query("DELETE FROM ingest_batches WHERE applied_at < ?")
                .bind(now_ms.saturating_sub(ttl))
                .execute(&self.pool)
                .await
                .map_err(map_err)?
                .rows_affected(),
        )
    }

    async fn migrate(&self) -> StoreResult<()> {
        sqlx::migrate!("./migrations/sqlite")
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::other_with(format!("migration failed: {e}"), e))?;
        self.start_checkpoints();
        Ok(())
    }

    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

/// A migrated store on a fresh database file in `dir`, behind the ports (for tests).
#[cfg(test)]
pub(crate) async fn migrated_stores(dir: &Path) -> crate::store::Stores {
    let store = SqliteStore::open(&dir.join("test.db"), SqliteOptions::default())
        .await
        .unwrap();
    let stores = crate::store::Stores::new("sqlite", store);
    stores.admin.migrate().await.unwrap();
    stores
}

/// [`migrated_stores`] in a temporary folder of its own, which lives as long as the returned
/// `TempDir` (for tests).
#[cfg(test)]
pub(crate) async fn temp_stores() -> (tempfile::TempDir, crate::store::Stores) {
    let dir = tempfile::tempdir().unwrap();
    let stores = migrated_stores(dir.path()).await;
    (dir, stores)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A migrated store on a fresh database file.
    async fn fresh_store() -> (tempfile::TempDir, crate::store::Stores) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("t.db"), SqliteOptions::default())
            .await
            .unwrap();
        let stores = crate::store::Stores::new("sqlite", store);
        crate::store::contract::prepare(&stores).await;
        (dir, stores)
    }

    #[tokio::test]
    async fn a_stored_role_outside_its_enum_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("r.db"), SqliteOptions::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        let user = store
            .create_user("a@b.co", "h", None, PlatformRole::User)
            .await
            .unwrap();
        sqlx::query("UPDATE users SET role = 'root' WHERE id = ?")
            .bind(user.id.to_hex())
            .execute(&store.pool)
            .await
            .unwrap();
        let e = store.user(user.id).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "store error: users.role: unknown platform role \"root\""
        );
    }

    /// One test per behaviour of the store contract (as on MongoDB), each on its own file, so a
    /// failure names its behaviour and each can run alone.
    mod contract {
        macro_rules! one_test_per_behaviour {
            ($($behaviour:ident),* $(,)?) => {$(
                #[tokio::test]
                async fn $behaviour() {
                    let (_dir, stores) = super::fresh_store().await;
                    crate::store::contract::$behaviour(&stores).await;
                }
            )*};
        }
        crate::store::contract::contract_behaviours!(one_test_per_behaviour);
    }
}
