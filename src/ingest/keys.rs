//! API-key authentication with a small in-process cache, so the hot path does not hit the store
//! on every request. Entries live [`KEY_TTL`]; during a store outage a stale entry keeps serving
//! (a known project keeps ingesting into the spool). A key change on another instance takes
//! effect within the TTL; on this instance `invalidate_project` makes it immediate.

use crate::domain::{drop_rules::DropRules, ids::DocId};
use crate::store::{KeyKind, ProjectStore, StoreResult};
use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

/// How long a looked-up key (valid or not) is trusted without asking the store again.
pub const KEY_TTL: Duration = Duration::from_secs(5);
const MAX_ENTRIES: usize = 10_000;

/// An authenticated project, with what ingestion needs to know about it.
#[derive(Clone, Debug)]
pub struct ProjectAuth {
    pub project_id: DocId,
    pub kind: KeyKind,
    pub drop_rules: Arc<DropRules>,
}

struct Entry {
    auth: Option<ProjectAuth>,
    fetched: Instant,
}

pub struct KeyCache {
    store: Arc<dyn ProjectStore>,
    entries: RwLock<HashMap<String, Entry>>,
}

impl KeyCache {
    pub fn new(store: Arc<dyn ProjectStore>) -> Self {
        Self {
            store,
            entries: RwLock::new(HashMap::new()),
        }
    }

    /// The project this key belongs to, `None` for an unknown key.
    pub async fn authenticate(&self, key: &str) -> StoreResult<Option<ProjectAuth>> {
        let stale = {
            let entries = self.entries.read().expect("key cache");
            match entries.get(key) {
                Some(e) if e.fetched.elapsed() < KEY_TTL => return Ok(e.auth.clone()),
                Some(e) => Some(e.auth.clone()),
                None => None,
            }
        };
        match self.lookup(key).await {
            Ok(auth) => {
                self.remember(key, auth.clone());
                Ok(auth)
            }
            Err(e) if e.is_unavailable() => match stale {
                Some(auth) => Ok(auth),
                None => Err(e),
            },
            Err(e) => Err(e),
        }
    }

    async fn lookup(&self, key: &str) -> StoreResult<Option<ProjectAuth>> {
        let Some(found) = self.store.find_by_api_key(key).await? else {
            return Ok(None);
        };
        let drop_rules = self.store.drop_rules(found.project_id).await?;
        Ok(Some(ProjectAuth {
            project_id: found.project_id,
            kind: found.kind,
            drop_rules: Arc::new(drop_rules),
        }))
    }

    fn remember(&self, key: &str, auth: Option<ProjectAuth>) {
        let mut entries = self.entries.write().expect("key cache");
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.fetched.elapsed() < KEY_TTL);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key.to_string(),
            Entry {
                auth,
                fetched: Instant::now(),
            },
        );
    }

    /// Forgets every cached key of a project (after key regeneration, deletion, new drop rules).
    pub fn invalidate_project(&self, project_id: DocId) {
        self.entries
            .write()
            .expect("key cache")
            .retain(|_, e| e.auth.as_ref().is_none_or(|a| a.project_id != project_id));
    }
}
