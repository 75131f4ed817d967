//! Error group states in SQLite (`error_group_states`, migration 0013). Queries only.

use super::{SqliteStore, map_err};
use crate::domain::{
    error_groups::{ErrorGroupState, GroupState},
    ids::DocId,
};
use crate::store::{ErrorStateStore, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::Row;

impl SqliteStore {
    /// Deletes the project's group states (inside the caller's transaction or not).
    pub(super) async fn forget_error_states<'e, E>(executor: E, id: DocId) -> StoreResult<()>
    where
        E: sqlx::Executor<'e, Database = sqlx::Sqlite>,
    {
        sqlx::query("DELETE FROM error_group_states WHERE project_id = ?")
            .bind(id.to_hex())
            .execute(executor)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl ErrorStateStore for SqliteStore {
    async fn error_group_states(&self, project: DocId) -> StoreResult<Vec<ErrorGroupState>> {
        let rows = sqlx::query(
            "SELECT signature, state, updated_at, updated_by FROM error_group_states \
             WHERE project_id = ? ORDER BY signature",
        )
        .bind(project.to_hex())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get(1).map_err(map_err)?;
                let by: Option<String> = r.try_get(3).map_err(map_err)?;
                Ok(ErrorGroupState {
                    project_id: project,
                    signature: r.try_get(0).map_err(map_err)?,
                    state: GroupState::parse(&state).ok_or_else(|| {
                        StoreError::other(format!("bad state in error_group_states: {state}"))
                    })?,
                    updated_at: r.try_get(2).map_err(map_err)?,
                    updated_by: by.as_deref().and_then(DocId::parse),
                })
            })
            .collect()
    }

    async fn set_error_group_state(&self, s: &ErrorGroupState) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO error_group_states (project_id, signature, state, updated_at, updated_by) \
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (project_id, signature) DO UPDATE SET \
             state = excluded.state, updated_at = excluded.updated_at, \
             updated_by = excluded.updated_by",
        )
        .bind(s.project_id.to_hex())
        .bind(&s.signature)
        .bind(s.state.as_str())
        .bind(s.updated_at)
        .bind(s.updated_by.map(|d| d.to_hex()))
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }
}
