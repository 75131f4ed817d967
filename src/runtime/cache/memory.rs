//! The in-process cache: a bounded map with expiry (one instance's own; generations are local).

use super::Cache;
use crate::domain::ids::DocId;
use async_trait::async_trait;
use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Entries kept at most; expired ones are dropped first, then everything when still full.
const MAX_ENTRIES: usize = 2_000;

#[derive(Default)]
pub struct MemoryCache {
    entries: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    generations: Mutex<HashMap<DocId, u64>>,
}

#[async_trait]
impl Cache for MemoryCache {
    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let entries = self.entries.lock().expect("cache");
        entries
            .get(key)
            .filter(|(_, expires)| *expires > Instant::now())
            .map(|(v, _)| v.clone())
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        let mut entries = self.entries.lock().expect("cache");
        if entries.len() >= MAX_ENTRIES {
            let now = Instant::now();
            entries.retain(|_, (_, expires)| *expires > now);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(key.to_string(), (value.to_vec(), Instant::now() + ttl));
    }

    async fn generation(&self, project: DocId) -> Option<u64> {
        Some(
            *self
                .generations
                .lock()
                .expect("generations")
                .get(&project)
                .unwrap_or(&0),
        )
    }

    async fn bump_generation(&self, project: DocId) {
        *self
            .generations
            .lock()
            .expect("generations")
            .entry(project)
            .or_insert(0) += 1;
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}
