//! Generated reports and filter templates in SQLite (`report_records`, `filter_templates`: the
//! record as JSON plus the columns queries use), and the ordered document scan behind raw CSV
//! exports. (The drill-down reads are in `reports.rs`; they are not these reports.)

use super::{SqliteStore, map_err, rows};
use crate::domain::{analytics::TimeRange, ids::DocId, model::Channel, segment::SegmentFilters};
use crate::reports::{FilterTemplate, Report};
use crate::store::{DocumentPages, ReportStore, StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite, sqlite::SqliteRow};

fn doc_of<T: serde::de::DeserializeOwned>(r: &SqliteRow, table: &str) -> StoreResult<T> {
    let text: String = r.try_get("doc").map_err(map_err)?;
    serde_json::from_str(&text)
        .map_err(|e| StoreError::other(format!("malformed {table}.doc: {e}")))
}

fn text<T: serde::Serialize>(v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::other(e.to_string()))
}

fn reports(found: &[SqliteRow]) -> StoreResult<Vec<Report>> {
    found.iter().map(|r| doc_of(r, "report_records")).collect()
}

#[async_trait]
impl ReportStore for SqliteStore {
    async fn insert_report(&self, r: &Report) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO report_records (id, project_id, status, dedup_hash, file_key, expires_at, deleted_at, created_at, doc) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.id.to_hex())
        .bind(r.project_id.to_hex())
        .bind(r.status.as_str())
        .bind(&r.dedup_hash)
        .bind(&r.file_key)
        .bind(r.expires_at)
        .bind(r.deleted_at)
        .bind(r.created_at)
        .bind(text(r)?)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn report(&self, id: DocId) -> StoreResult<Option<Report>> {
        let found = sqlx::query("SELECT doc FROM report_records WHERE id = ?")
            .bind(id.to_hex())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        found.map(|r| doc_of(&r, "report_records")).transpose()
    }

    async fn reports_of_project(&self, project_id: DocId, limit: u32) -> StoreResult<Vec<Report>> {
        let found = sqlx::query(
            "SELECT doc FROM report_records WHERE project_id = ? AND deleted_at IS NULL \
             ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(project_id.to_hex())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        reports(&found)
    }

    async fn save_report(&self, r: &Report) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE report_records SET status = ?, file_key = ?, expires_at = ?, doc = ? \
             WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(r.status.as_str())
        .bind(&r.file_key)
        .bind(r.expires_at)
        .bind(text(r)?)
        .bind(r.id.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn soft_delete_report(&self, id: DocId, at_ms: i64) -> StoreResult<bool> {
        let done = sqlx::query(
            "UPDATE report_records SET deleted_at = ?, doc = json_set(doc, '$.deletedAt', ?) \
             WHERE id = ? AND deleted_at IS NULL",
        )
        .bind(at_ms)
        .bind(at_ms)
        .bind(id.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn active_report_by_hash(
        &self,
        project_id: DocId,
        hash: &str,
    ) -> StoreResult<Option<Report>> {
        let found = sqlx::query(
            "SELECT doc FROM report_records WHERE project_id = ? AND dedup_hash = ? \
             AND status IN ('pending', 'generating') AND deleted_at IS NULL \
             ORDER BY created_at DESC LIMIT 1",
        )
        .bind(project_id.to_hex())
        .bind(hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        found.map(|r| doc_of(&r, "report_records")).transpose()
    }

    async fn count_download(&self, id: DocId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE report_records SET doc = json_set(doc, '$.downloadCount', \
             COALESCE(json_extract(doc, '$.downloadCount'), 0) + 1) WHERE id = ?",
        )
        .bind(id.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn reports_with_stale_files(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<Report>> {
        let found = sqlx::query(
            "SELECT doc FROM report_records WHERE file_key IS NOT NULL \
             AND (expires_at <= ? OR deleted_at IS NOT NULL) ORDER BY created_at LIMIT ?",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        reports(&found)
    }

    async fn clear_report_file(&self, id: DocId) -> StoreResult<()> {
        sqlx::query(
            "UPDATE report_records SET file_key = NULL, doc = json_set(doc, '$.fileKey', json('null')) \
             WHERE id = ?",
        )
        .bind(id.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn insert_filter_template(&self, t: &FilterTemplate) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO filter_templates (id, project_id, created_at, doc) VALUES (?, ?, ?, ?)",
        )
        .bind(t.id.to_hex())
        .bind(t.project_id.to_hex())
        .bind(t.created_at)
        .bind(text(t)?)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn filter_template(&self, id: DocId) -> StoreResult<Option<FilterTemplate>> {
        let found = sqlx::query("SELECT doc FROM filter_templates WHERE id = ?")
            .bind(id.to_hex())
            .fetch_optional(&self.pool)
            .await
            .map_err(map_err)?;
        found.map(|r| doc_of(&r, "filter_templates")).transpose()
    }

    async fn filter_templates(
        &self,
        project_id: DocId,
        limit: u32,
    ) -> StoreResult<Vec<FilterTemplate>> {
        let found = sqlx::query(
            "SELECT doc FROM filter_templates WHERE project_id = ? \
             ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(project_id.to_hex())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        found
            .iter()
            .map(|r| doc_of(r, "filter_templates"))
            .collect()
    }

    async fn delete_filter_template(&self, id: DocId) -> StoreResult<bool> {
        let done = sqlx::query("DELETE FROM filter_templates WHERE id = ?")
            .bind(id.to_hex())
            .execute(&self.pool)
            .await
            .map_err(map_err)?;
        Ok(done.rows_affected() == 1)
    }

    async fn document_pages(
        &self,
        project_id: DocId,
        channel: Channel,
        range: TimeRange,
        segment: &SegmentFilters,
        page: u32,
    ) -> StoreResult<DocumentPages> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(mut w) = self.report_scope(&mut conn, project_id, range).await? else {
            return Ok(Box::pin(futures::stream::empty()));
        };
        drop(conn);
        w.segment(channel, segment);
        let state = Scan {
            store: self.clone(),
            project_id,
            channel,
            w,
            after: None,
            page: page.max(1),
            done: false,
        };
        Ok(Box::pin(futures::stream::unfold(
            state,
            |mut st| async move {
                if st.done {
                    return None;
                }
                match st.next_page().await {
                    Ok(docs) if docs.is_empty() => None,
                    Ok(docs) => Some((Ok(docs), st)),
                    Err(e) => {
                        st.done = true;
                        Some((Err(e), st))
                    }
                }
            },
        )))
    }
}

/// A keyset scan in `(ts, rowid)` order: each page starts after the last row of the one
/// before, through the `(project, ts)` index.
struct Scan {
    store: SqliteStore,
    project_id: DocId,
    channel: Channel,
    w: super::filters::Where,
    after: Option<(i64, i64)>,
    page: u32,
    done: bool,
}

impl Scan {
    async fn next_page(&mut self) -> StoreResult<Vec<Value>> {
        let table = rows::table(self.channel);
        let mut q =
            QueryBuilder::<Sqlite>::new(format!("SELECT rowid AS scan_rowid, * FROM {table}"));
        self.w.push_to(&mut q);
        if let Some((ts, rowid)) = self.after {
            q.push(" AND (ts > ")
                .push_bind(ts)
                .push(" OR (ts = ")
                .push_bind(ts)
                .push(" AND rowid > ")
                .push_bind(rowid)
                .push("))");
        }
        q.push(" ORDER BY ts, rowid LIMIT ")
            .push_bind(i64::from(self.page));
        let found = q
            .build()
            .fetch_all(&self.store.pool)
            .await
            .map_err(map_err)?;
        if found.len() < self.page as usize {
            self.done = true;
        }
        let mut docs = Vec::with_capacity(found.len());
        for r in &found {
            let rowid: i64 = r.try_get("scan_rowid").map_err(map_err)?;
            let ts: i64 = r.try_get("ts").map_err(map_err)?;
            self.after = Some((ts, rowid));
            let mut doc = rows::to_json(r, self.project_id);
            if let Some(o) = doc.as_object_mut() {
                o.remove("scanRowid");
            }
            docs.push(doc);
        }
        Ok(docs)
    }
}
