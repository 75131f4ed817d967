//! The raw audit log and the email features' records in SQLite (`raw_logs`, `password_resets`,
//! `email_subscriptions`, `email_sends`; migration 0012). Queries only.

use super::{SqliteStore, map_err};
use crate::domain::{
    audit::{LogKind, LogPage, LogQuery, RawLog},
    email::{Cadence, Delivery, PasswordReset, Subscription},
    ids::DocId,
};
use crate::store::{LogStore, MailStore, StoreError, StoreResult};
use async_trait::async_trait;
use sqlx::{QueryBuilder, Row, Sqlite, sqlite::SqliteRow};

fn id(s: String, table: &str) -> StoreResult<DocId> {
    DocId::parse(&s).ok_or_else(|| StoreError::other(format!("bad id in {table}: {s}")))
}

fn log_from_row(r: &SqliteRow) -> StoreResult<RawLog> {
    let kind: String = r.try_get("kind").map_err(map_err)?;
    let status: Option<i64> = r.try_get("status").map_err(map_err)?;
    Ok(RawLog {
        id: id(r.try_get("id").map_err(map_err)?, "raw_logs")?,
        ts: r.try_get("ts").map_err(map_err)?,
        kind: LogKind::parse(&kind)
            .ok_or_else(|| StoreError::other(format!("bad kind in raw_logs: {kind}")))?,
        action_code: r.try_get("action_code").map_err(map_err)?,
        error_message: r.try_get("error_message").map_err(map_err)?,
        error_stack: r.try_get("error_stack").map_err(map_err)?,
        user_id: r.try_get("user_id").map_err(map_err)?,
        email: r.try_get("email").map_err(map_err)?,
        project_id: r.try_get("project_id").map_err(map_err)?,
        org_id: r.try_get("org_id").map_err(map_err)?,
        method: r.try_get("method").map_err(map_err)?,
        path: r.try_get("path").map_err(map_err)?,
        status: status.and_then(|s| u16::try_from(s).ok()),
        ip: r.try_get("ip").map_err(map_err)?,
    })
}

/// `%`, `_` and `\` taken literally in a LIKE pattern (with `ESCAPE '\'`).
fn like_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('%');
    for c in s.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// The WHERE clause of `q` (always starts with ` WHERE 1`).
fn push_filters<'a>(b: &mut QueryBuilder<'a, Sqlite>, q: &'a LogQuery) {
    b.push(" WHERE 1");
    if let Some(kind) = q.kind {
        b.push(" AND kind = ").push_bind(kind.as_str());
    }
    let exact = [
        ("action_code", &q.action_code),
        ("user_id", &q.user_id),
        ("project_id", &q.project_id),
    ];
    for (col, value) in exact {
        if let Some(v) = value {
            b.push(format!(" AND {col} = ")).push_bind(v.as_str());
        }
    }
    if let Some(email) = &q.email {
        b.push(" AND email = ").push_bind(email.to_lowercase());
    }
    if let Some(from) = q.from {
        b.push(" AND ts >= ").push_bind(from);
    }
    if let Some(to) = q.to {
        b.push(" AND ts <= ").push_bind(to);
    }
    if let Some(needle) = &q.contains {
        let pattern = like_literal(needle);
        b.push(" AND (");
        for (i, col) in ["error_message", "error_stack", "path"].iter().enumerate() {
            if i > 0 {
                b.push(" OR ");
            }
            // SQLite's lower() folds ASCII only; the needle is folded the same way above for
            // ASCII, and LIKE itself ignores ASCII case.
            b.push(format!("lower({col}) LIKE "))
                .push_bind(pattern.clone())
                .push(" ESCAPE '\\'");
        }
        b.push(")");
    }
    if let Some(scope) = &q.scope {
        b.push(" AND (org_id = ").push_bind(scope.org_id.as_str());
        if !scope.project_ids.is_empty() {
            b.push(" OR project_id IN (");
            let mut list = b.separated(", ");
            for p in &scope.project_ids {
                list.push_bind(p.as_str());
            }
            list.push_unseparated(")");
        }
        b.push(")");
    }
}

#[async_trait]
impl LogStore for SqliteStore {
    async fn insert_log(&self, log: &RawLog) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO raw_logs (id, ts, kind, action_code, error_message, error_stack, user_id, \
             email, project_id, org_id, method, path, status, ip) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(log.id.to_hex())
        .bind(log.ts)
        .bind(log.kind.as_str())
        .bind(&log.action_code)
        .bind(&log.error_message)
        .bind(&log.error_stack)
        .bind(&log.user_id)
        .bind(&log.email)
        .bind(&log.project_id)
        .bind(&log.org_id)
        .bind(&log.method)
        .bind(&log.path)
        .bind(log.status.map(i64::from))
        .bind(&log.ip)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn prune_logs(&self, keep: u64) -> StoreResult<u64> {
        let done = sqlx::query(
            "DELETE FROM raw_logs WHERE id IN (SELECT id FROM raw_logs \
             ORDER BY ts DESC, id DESC LIMIT -1 OFFSET ?)",
        )
        .bind(keep as i64)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected())
    }

    async fn query_logs(&self, q: &LogQuery) -> StoreResult<LogPage> {
        let mut count = QueryBuilder::new("SELECT COUNT(*) FROM raw_logs");
        push_filters(&mut count, q);
        let total: i64 = count
            .build()
            .fetch_one(&self.pool)
            .await
            .map_err(map_err)?
            .try_get(0)
            .map_err(map_err)?;
        let mut select = QueryBuilder::new("SELECT * FROM raw_logs");
        push_filters(&mut select, q);
        select
            .push(" ORDER BY ts DESC, id DESC LIMIT ")
            .push_bind(i64::from(q.limit))
            .push(" OFFSET ")
            .push_bind(q.skip() as i64);
        let rows = select
            .build()
            .fetch_all(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(LogPage {
            entries: rows.iter().map(log_from_row).collect::<StoreResult<_>>()?,
            total: total as u64,
        })
    }
}

fn reset_from_row(r: &SqliteRow) -> StoreResult<PasswordReset> {
    Ok(PasswordReset {
        id: id(r.try_get("id").map_err(map_err)?, "password_resets")?,
        user_id: id(r.try_get("user_id").map_err(map_err)?, "password_resets")?,
        token_hash: r.try_get("token_hash").map_err(map_err)?,
        created_at: r.try_get("created_at").map_err(map_err)?,
        expires_at: r.try_get("expires_at").map_err(map_err)?,
        used_at: r.try_get("used_at").map_err(map_err)?,
    })
}

fn sub_from_row(r: &SqliteRow) -> StoreResult<Subscription> {
    let cadence: String = r.try_get("cadence").map_err(map_err)?;
    Ok(Subscription {
        project_id: id(
            r.try_get("project_id").map_err(map_err)?,
            "email_subscriptions",
        )?,
        user_id: id(
            r.try_get("user_id").map_err(map_err)?,
            "email_subscriptions",
        )?,
        cadence: Cadence::parse(&cadence).ok_or_else(|| {
            StoreError::other(format!("bad cadence in email_subscriptions: {cadence}"))
        })?,
        delivery: {
            let d: String = r.try_get("delivery").map_err(map_err)?;
            Delivery::parse(&d).ok_or_else(|| {
                StoreError::other(format!("bad delivery in email_subscriptions: {d}"))
            })?
        },
        created_at: r.try_get("created_at").map_err(map_err)?,
    })
}

#[async_trait]
impl MailStore for SqliteStore {
    async fn insert_password_reset(&self, reset: &PasswordReset) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO password_resets (id, user_id, token_hash, created_at, expires_at, used_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(reset.id.to_hex())
        .bind(reset.user_id.to_hex())
        .bind(&reset.token_hash)
        .bind(reset.created_at)
        .bind(reset.expires_at)
        .bind(reset.used_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn password_reset(&self, token_hash: &str) -> StoreResult<Option<PasswordReset>> {
        sqlx::query("SELECT * FROM password_resets WHERE token_hash = ?")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?
            .as_ref()
            .map(reset_from_row)
            .transpose()
    }

    async fn use_password_reset(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<PasswordReset>> {
        sqlx::query(
            "UPDATE password_resets SET used_at = ? \
             WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING *",
        )
        .bind(now)
        .bind(token_hash)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?
        .as_ref()
        .map(reset_from_row)
        .transpose()
    }

    async fn subscribe(&self, sub: &Subscription) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO email_subscriptions (project_id, user_id, cadence, delivery, created_at) \
             VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (project_id, user_id, cadence) DO UPDATE SET delivery = excluded.delivery",
        )
        .bind(sub.project_id.to_hex())
        .bind(sub.user_id.to_hex())
        .bind(sub.cadence.as_str())
        .bind(sub.delivery.as_str())
        .bind(sub.created_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn unsubscribe(&self, project: DocId, user: DocId, cadence: Cadence) -> StoreResult<()> {
        sqlx::query(
            "DELETE FROM email_subscriptions WHERE project_id = ? AND user_id = ? AND cadence = ?",
        )
        .bind(project.to_hex())
        .bind(user.to_hex())
        .bind(cadence.as_str())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn subscriptions_of(
        &self,
        project: DocId,
        user: DocId,
    ) -> StoreResult<Vec<Subscription>> {
        let rows = sqlx::query(
            "SELECT * FROM email_subscriptions WHERE project_id = ? AND user_id = ? ORDER BY cadence",
        )
        .bind(project.to_hex())
        .bind(user.to_hex())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        let mut subs = rows
            .iter()
            .map(sub_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        subs.sort_by_key(|s| s.cadence);
        Ok(subs)
    }

    async fn subscribers(&self, cadence: Cadence) -> StoreResult<Vec<Subscription>> {
        let rows = sqlx::query(
            "SELECT * FROM email_subscriptions WHERE cadence = ? \
             ORDER BY created_at, project_id, user_id",
        )
        .bind(cadence.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(sub_from_row).collect()
    }

    async fn claim_send(&self, key: &str, now: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "INSERT INTO email_sends (key, claimed_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(key)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_send(&self, key: &str) -> StoreResult<()> {
        sqlx::query("DELETE FROM email_sends WHERE key = ?")
            .bind(key)
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
