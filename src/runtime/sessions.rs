//! Server-side sessions for tower-sessions. The durable store (SQLite or MongoDB, through the
//! `SessionRecords` port) always holds every session; with `SESSION_STORE_REDIS=true` Redis
//! (tower-sessions-redis-store over fred) sits **in front** of it as a read cache.
//!
//! Redis going away costs speed only: reads fall through to the durable store, writes always
//! reach it first, and no request fails because of Redis. A Redis write or delete that fails
//! marks the session id "dirty": this instance stops reading that id from Redis and deletes the
//! stale copy as soon as Redis answers again. Copies in Redis live at most [`REDIS_COPY_TTL`], which
//! bounds staleness even when the instance that saw the failure dies before cleaning up.

use crate::domain::clock::SharedClock;
use crate::runtime::redis::{FallbackState, RedisHandle};
use crate::store::SessionRecords;
use async_trait::async_trait;
use std::{
    collections::HashSet,
    fmt,
    sync::{Arc, Mutex},
    time::Duration,
};
use time::OffsetDateTime;
use tower_sessions::{
    SessionStore,
    session::{Id, Record},
    session_store::{self, Error},
};
use tower_sessions_redis_store::RedisStore;

/// Longest a session copy lives in Redis (the durable store keeps the 14-day session).
pub const REDIS_COPY_TTL: Duration = Duration::from_secs(600);

/// Sessions in the primary store.
#[derive(Clone)]
pub struct DurableSessionStore {
    records: Arc<dyn SessionRecords>,
    /// Decides which records are expired (loading and sweeping).
    clock: SharedClock,
}

impl fmt::Debug for DurableSessionStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DurableSessionStore")
    }
}

fn expiry_ms(record: &Record) -> i64 {
    (record.expiry_date.unix_timestamp_nanos() / 1_000_000) as i64
}

fn backend(e: impl fmt::Display) -> Error {
    Error::Backend(e.to_string())
}

impl DurableSessionStore {
    pub fn new(records: Arc<dyn SessionRecords>, clock: SharedClock) -> Self {
        Self { records, clock }
    }

    /// Removes the sessions expired by the clock's "now" (run periodically).
    pub async fn sweep(&self) -> u64 {
        self.records
            .delete_expired_sessions(self.clock.now_ms())
            .await
            .unwrap_or(0)
    }

    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.clock.now_ms()) * 1_000_000)
            .unwrap_or_else(|_| OffsetDateTime::now_utc())
    }

    /// tower-sessions dates a record's expiry from the system clock (now + 14 days of
    /// inactivity); the same span from this store's clock, which decides expiry.
    fn on_clock(&self, expiry: OffsetDateTime) -> OffsetDateTime {
        self.now()
            .saturating_add(expiry - OffsetDateTime::now_utc())
    }
}

#[async_trait]
impl SessionStore for DurableSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        loop {
            let bytes = rmp_serde::to_vec(&*record).map_err(|e| Error::Encode(e.to_string()))?;
            if self
                .records
                .create_session(&record.id.to_string(), &bytes, expiry_ms(record))
                .await
                .map_err(backend)?
            {
                return Ok(());
            }
            record.id = Id::default();
        }
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let bytes = rmp_serde::to_vec(record).map_err(|e| Error::Encode(e.to_string()))?;
        self.records
            .save_session(&record.id.to_string(), &bytes, expiry_ms(record))
            .await
            .map_err(backend)
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self
            .records
            .load_session(&id.to_string(), self.clock.now_ms())
            .await
            .map_err(backend)?
        {
            Some(bytes) => {
                crate::telemetry::session_lookup("durable");
                Ok(Some(
                    rmp_serde::from_slice(&bytes).map_err(|e| Error::Decode(e.to_string()))?,
                ))
            }
            None => {
                crate::telemetry::session_lookup("none");
                Ok(None)
            }
        }
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.records
            .delete_session(&id.to_string())
            .await
            .map_err(backend)
    }
}

/// Redis in front of the durable store.
#[derive(Clone)]
pub struct RedisFrontedStore {
    durable: DurableSessionStore,
    redis: RedisStore<fred::clients::Client>,
    handle: RedisHandle,
    /// Ids whose Redis copy may be stale; never read from Redis until cleaned up.
    dirty: Arc<Mutex<HashSet<Id>>>,
    fallback: Arc<FallbackState>,
}

impl fmt::Debug for RedisFrontedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RedisFrontedStore")
    }
}

impl RedisFrontedStore {
    pub fn new(durable: DurableSessionStore, handle: RedisHandle) -> Self {
        let store = Self {
            durable,
            redis: RedisStore::new(handle.client().clone()),
            handle,
            dirty: Arc::default(),
            fallback: Arc::new(FallbackState::new(
                crate::telemetry::Piece::Sessions,
                "sessions are read from and written to the durable store",
            )),
        };
        store.spawn_cleaner();
        store
    }

    /// Deletes stale copies once Redis answers again.
    fn spawn_cleaner(&self) {
        let store = self.clone();
        crate::tasks::spawn_loop::<()>("session_cleaner", async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                let ids: Vec<Id> = store
                    .dirty
                    .lock()
                    .expect("dirty set")
                    .iter()
                    .copied()
                    .collect();
                if ids.is_empty() || !store.handle.is_connected() {
                    continue;
                }
                for id in ids {
                    if store.redis_call(store.redis.delete(&id)).await.is_some() {
                        store.dirty.lock().expect("dirty set").remove(&id);
                    }
                }
            }
        });
    }

    /// Runs a Redis call through the breaker; `None` (counted, and logged on the switch) on
    /// any failure.
    async fn redis_call<T>(
        &self,
        call: impl Future<Output = session_store::Result<T>>,
    ) -> Option<T> {
        match self.handle.call(call).await {
            Ok(value) => {
                self.fallback.answered();
                Some(value)
            }
            Err(e) => {
                self.fallback.fell_back(e.reason(), &e);
                None
            }
        }
    }

    fn is_dirty(&self, id: &Id) -> bool {
        self.dirty.lock().expect("dirty set").contains(id)
    }

    fn mark_dirty(&self, id: Id) {
        self.dirty.lock().expect("dirty set").insert(id);
    }

    /// The record as cached in Redis: same data, expiry capped at [`REDIS_COPY_TTL`].
    fn redis_copy(&self, record: &Record) -> Record {
        let cap = self.durable.now() + REDIS_COPY_TTL;
        Record {
            id: record.id,
            data: record.data.clone(),
            expiry_date: record.expiry_date.min(cap),
        }
    }

    /// Best-effort: puts a copy into Redis when none is there.
    async fn populate(&self, record: &Record) {
        let mut copy = self.redis_copy(record);
        // NX create; if an entry appeared meanwhile, the store picks another id for the copy,
        // which then simply expires unused.
        let _ = self.redis_call(self.redis.create(&mut copy)).await;
    }
}

#[async_trait]
impl SessionStore for RedisFrontedStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        self.durable.create(record).await?;
        self.populate(record).await;
        Ok(())
    }

    async fn save(&self, record: &Record) -> session_store::Result<()> {
        self.durable.save(record).await?;
        if self.is_dirty(&record.id)
            || self
                .redis_call(self.redis.save(&self.redis_copy(record)))
                .await
                .is_none()
        {
            self.mark_dirty(record.id);
        }
        Ok(())
    }

    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        if !self.is_dirty(id)
            && let Some(Some(record)) = self.redis_call(self.redis.load(id)).await
            && record.expiry_date > self.durable.now()
        {
            crate::telemetry::session_lookup("redis");
            return Ok(Some(record));
        }
        let record = self.durable.load(id).await?;
        if let Some(record) = &record
            && !self.is_dirty(id)
        {
            self.populate(record).await;
        }
        Ok(record)
    }

    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        self.durable.delete(id).await?;
        if self.redis_call(self.redis.delete(id)).await.is_none() {
            self.mark_dirty(*id);
        }
        Ok(())
    }
}

/// The session store chosen at startup.
#[derive(Clone, Debug)]
pub enum AppSessionStore {
    Durable(DurableSessionStore),
    RedisFronted(RedisFrontedStore),
}

impl AppSessionStore {
    pub fn describe(&self) -> &'static str {
        match self {
            AppSessionStore::Durable(_) => "durable store",
            AppSessionStore::RedisFronted(_) => "redis in front of the durable store",
        }
    }

    /// The durable store (alone, or behind Redis): its clock decides expiry.
    fn durable(&self) -> &DurableSessionStore {
        match self {
            AppSessionStore::Durable(s) => s,
            AppSessionStore::RedisFronted(s) => &s.durable,
        }
    }
}

/// The session layer's store. Expiry dates arrive counted from the system clock and are
/// re-dated on the server's clock here, once, before either store sees them.
#[async_trait]
impl SessionStore for AppSessionStore {
    async fn create(&self, record: &mut Record) -> session_store::Result<()> {
        record.expiry_date = self.durable().on_clock(record.expiry_date);
        match self {
            AppSessionStore::Durable(s) => s.create(record).await,
            AppSessionStore::RedisFronted(s) => s.create(record).await,
        }
    }
    async fn save(&self, record: &Record) -> session_store::Result<()> {
        let record = &Record {
            id: record.id,
            data: record.data.clone(),
            expiry_date: self.durable().on_clock(record.expiry_date),
        };
        match self {
            AppSessionStore::Durable(s) => s.save(record).await,
            AppSessionStore::RedisFronted(s) => s.save(record).await,
        }
    }
    async fn load(&self, id: &Id) -> session_store::Result<Option<Record>> {
        match self {
            AppSessionStore::Durable(s) => s.load(id).await,
            AppSessionStore::RedisFronted(s) => s.load(id).await,
        }
    }
    async fn delete(&self, id: &Id) -> session_store::Result<()> {
        match self {
            AppSessionStore::Durable(s) => s.delete(id).await,
            AppSessionStore::RedisFronted(s) => s.delete(id).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::clock::ManualClock;
    use crate::store::sqlite::temp_stores;

    /// Expiry is decided on the injected clock: a session loads until the clock passes its
    /// expiry date, then neither loads nor survives the sweep, with no real time passing.
    #[tokio::test]
    async fn sessions_expire_and_are_swept_by_the_clock() {
        let (_dir, stores) = temp_stores().await;
        let clock = Arc::new(ManualClock::new());
        let sessions = DurableSessionStore::new(stores.sessions.clone(), clock.clone());
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: sessions.now() + Duration::from_secs(3600),
        };
        sessions.create(&mut record).await.unwrap();
        let other_id = Id::default();
        let mut other = Record {
            id: other_id,
            data: Default::default(),
            expiry_date: sessions.now() + Duration::from_secs(7200),
        };
        sessions.create(&mut other).await.unwrap();
        assert!(sessions.load(&record.id).await.unwrap().is_some());
        clock.advance(Duration::from_secs(3599));
        assert!(sessions.load(&record.id).await.unwrap().is_some(), "live");
        assert_eq!(sessions.sweep().await, 0, "nothing expired yet");
        clock.advance(Duration::from_secs(1));
        assert!(
            sessions.load(&record.id).await.unwrap().is_none(),
            "expired at its expiry date"
        );
        assert_eq!(sessions.sweep().await, 1, "only the expired one is deleted");
        assert!(sessions.load(&other.id).await.unwrap().is_some());
        clock.advance(Duration::from_secs(3600));
        assert_eq!(sessions.sweep().await, 1);
        assert!(sessions.load(&other.id).await.unwrap().is_none());
    }

    /// tower-sessions dates a record from the system clock; the session layer's store re-dates
    /// it on the server's clock, so a server whose clock stands 10 days ahead keeps a record
    /// saved "for an hour" for that hour of its own time.
    #[tokio::test]
    async fn the_layers_store_dates_expiry_on_the_servers_clock() {
        let (_dir, stores) = temp_stores().await;
        let clock = Arc::new(ManualClock::new());
        clock.advance(Duration::from_secs(10 * 86_400));
        let layer = AppSessionStore::Durable(DurableSessionStore::new(
            stores.sessions.clone(),
            clock.clone(),
        ));
        let mut record = Record {
            id: Id::default(),
            data: Default::default(),
            expiry_date: OffsetDateTime::now_utc() + Duration::from_secs(3600),
        };
        layer.create(&mut record).await.unwrap();
        assert!(layer.load(&record.id).await.unwrap().is_some(), "created");
        clock.advance(Duration::from_secs(3590));
        record.expiry_date = OffsetDateTime::now_utc() + Duration::from_secs(3600);
        layer.save(&record).await.unwrap();
        clock.advance(Duration::from_secs(3590));
        assert!(
            layer.load(&record.id).await.unwrap().is_some(),
            "the save extended it by an hour of the server's time"
        );
        clock.advance(Duration::from_secs(20));
        assert!(layer.load(&record.id).await.unwrap().is_none(), "expired");
    }
}
