//! Invitations in SQLite.

use super::{SqliteStore, enum_col, map_err};
use crate::domain::ids::DocId;
use crate::store::{Invite, InviteScope, InviteStatus, InviteStore, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::{Row, sqlite::SqliteRow};

fn invite_from_row(r: &SqliteRow) -> StoreResult<Invite> {
    let id = |s: String| {
        DocId::parse(&s).ok_or_else(|| StoreError::other(format!("bad id in invites: {s}")))
    };
    let org: Option<String> = r.try_get("org_id").map_err(map_err)?;
    let scope = match org {
        Some(org) => InviteScope::Org {
            org_id: id(org)?,
            role: enum_col(r, "role", "invites.role")?,
        },
        None => InviteScope::Platform {
            role: enum_col(r, "role", "invites.role")?,
        },
    };
    Ok(Invite {
        id: id(r.try_get("id").map_err(map_err)?)?,
        email: r.try_get("email").map_err(map_err)?,
        token_hash: r.try_get("token_hash").map_err(map_err)?,
        scope,
        status: enum_col(r, "status", "invites.status")?,
        created_by: id(r.try_get("created_by").map_err(map_err)?)?,
        expires_at: r.try_get("expires_at").map_err(map_err)?,
        created_at: r.try_get("created_at").map_err(map_err)?,
    })
}

#[async_trait]
impl InviteStore for SqliteStore {
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO invites (id, email, token_hash, org_id, role, status, created_by, expires_at, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(invite.id.to_hex())
        .bind(invite.email.trim().to_lowercase())
        .bind(&invite.token_hash)
        .bind(invite.org_id().map(|o| o.to_hex()))
        .bind(invite.scope.role_str())
        .bind(invite.status.as_str())
        .bind(invite.created_by.to_hex())
        .bind(invite.expires_at)
        .bind(invite.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn invite_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Invite>> {
        let row = sqlx::query("SELECT * FROM invites WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        row.as_ref().map(invite_from_row).transpose()
    }

    async fn set_invite_status(&self, id: DocId, status: InviteStatus) -> StoreResult<()> {
        let changed = sqlx::query("UPDATE invites SET status = ? WHERE id = ?")
            .bind(status.as_str())
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

    async fn pending_invites(&self, org: Option<DocId>) -> StoreResult<Vec<Invite>> {
        let rows = match org {
            Some(org) => sqlx::query("SELECT * FROM invites WHERE org_id = ? AND status = 'pending' ORDER BY created_at DESC")
                .bind(org.to_hex())
                .fetch_all(&self.pool)
                .await,
            None => sqlx::query("SELECT * FROM invites WHERE org_id IS NULL AND status = 'pending' ORDER BY created_at DESC")
                .fetch_all(&self.pool)
                .await,
        }
        .map_err(map_err)?;
        rows.iter().map(invite_from_row).collect()
    }
}
