//! Public (shareable) links in SQLite: the `public_link_*` columns of `projects`. Only the
//! token's hash is ever written; the `ProjectStore` methods delegate here.

use super::{SqliteStore, map_err, project_from_row};
use crate::domain::ids::DocId;
use crate::store::{PublicLink, StoreError, StoreResult};
use sqlx::{Row, sqlite::SqliteRow};

fn link_from_row(r: &SqliteRow) -> StoreResult<PublicLink> {
    Ok(PublicLink {
        project: project_from_row(r)?,
        enabled: r
            .try_get::<i64, _>("public_link_enabled")
            .map_err(map_err)?
            != 0,
        token_hash: r.try_get("public_link_token_hash").map_err(map_err)?,
        created_at: r.try_get("public_link_created_at").map_err(map_err)?,
        last_regenerated_at: r
            .try_get("public_link_last_regenerated_at")
            .map_err(map_err)?,
        revoked_at: r.try_get("public_link_revoked_at").map_err(map_err)?,
    })
}

impl SqliteStore {
    pub(super) async fn load_public_link(&self, id: DocId) -> StoreResult<Option<PublicLink>> {
        self.find_by_id("SELECT * FROM projects WHERE id = ?", id, link_from_row)
            .await
    }

    pub(super) async fn store_public_link(
        &self,
        id: DocId,
        token_hash: &str,
        at_ms: i64,
    ) -> StoreResult<PublicLink> {
        // One statement, so a concurrent enable and revoke cannot interleave half-way.
        let changed = sqlx::query(
            "UPDATE projects SET public_link_enabled = 1, public_link_token_hash = ?1, \
             public_link_created_at = CASE WHEN public_link_enabled = 1 AND public_link_created_at IS NOT NULL \
               THEN public_link_created_at ELSE ?2 END, \
             public_link_last_regenerated_at = ?2, public_link_revoked_at = NULL, updated_at = ?2 \
             WHERE id = ?3 AND deleted_at IS NULL",
        )
        .bind(token_hash)
        .bind(at_ms)
        .bind(id.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        if changed == 0 {
            return Err(StoreError::NotFound);
        }
        self.load_public_link(id).await?.ok_or(StoreError::NotFound)
    }

    pub(super) async fn clear_public_link(&self, id: DocId, at_ms: i64) -> StoreResult<()> {
        let changed = sqlx::query(
            "UPDATE projects SET public_link_enabled = 0, public_link_token_hash = NULL, \
             public_link_revoked_at = ?1, updated_at = ?1 WHERE id = ?2",
        )
        .bind(at_ms)
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

    pub(super) async fn list_public_links(
        &self,
        org_id: Option<DocId>,
    ) -> StoreResult<Vec<PublicLink>> {
        let rows = sqlx::query(
            "SELECT * FROM projects WHERE public_link_enabled = 1 AND deleted_at IS NULL \
             AND (?1 IS NULL OR org_id = ?1) \
             ORDER BY public_link_created_at DESC, pk DESC",
        )
        .bind(org_id.map(|o| o.to_hex()))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(link_from_row).collect()
    }
}
