//! Durable session records in SQLite (the `sessions` table).

use super::{SqliteStore, map_err};
use crate::store::{SessionRecords, StoreResult};
use async_trait::async_trait;

#[async_trait]
impl SessionRecords for SqliteStore {
    async fn create_session(&self, id: &str, data: &[u8], expires_at_ms: i64) -> StoreResult<bool> {
        let inserted = sqlx::query(
            "INSERT INTO sessions (id, data, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(data)
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(inserted == 1)
    }

    async fn save_session(&self, id: &str, data: &[u8], expires_at_ms: i64) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO sessions (id, data, expires_at) VALUES (?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET data = excluded.data, expires_at = excluded.expires_at",
        )
        .bind(id)
        .bind(data)
        .bind(expires_at_ms)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn load_session(&self, id: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>> {
        sqlx::query_scalar("SELECT data FROM sessions WHERE id = ? AND expires_at > ?")
            .bind(id)
            .bind(now_ms)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)
    }

    async fn delete_session(&self, id: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<u64> {
        Ok(sqlx::query("DELETE FROM sessions WHERE expires_at <= ?")
            .bind(now_ms)
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected())
    }
}
