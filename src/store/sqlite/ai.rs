//! AI analysis in SQLite: presets (`ai_analysis_presets`), runs (`ai_analysis_runs`) and the
//! sample documents an analysis quotes. Run transitions are single conditional `UPDATE`s, so a
//! finished run never changes again (idempotent completion across processes).

use super::{SqliteStore, map_err, rows};
use crate::ai::{
    model::{AiRun, RunOutcome, RunStatus, segment_from_json, segment_to_json},
    presets::{Preset, PresetFields},
};
use crate::domain::{
    analytics::{METRICS, TimeRange},
    ids::DocId,
    model::Channel,
    segment::SegmentFilters,
    timestamp::now_ms,
};
use crate::store::{AiStore, SampleQuery, StoreError, StoreResult};
use async_trait::async_trait;
use serde_json::Value;
use sqlx::{QueryBuilder, Row, Sqlite, sqlite::SqliteRow};

fn bad(table: &str, field: &str) -> StoreError {
    StoreError::other(format!("malformed {table}.{field}"))
}

fn json_col(r: &SqliteRow, col: &str) -> StoreResult<Option<Value>> {
    let text: Option<String> = r.try_get(col).map_err(map_err)?;
    text.map(|t| serde_json::from_str(&t).map_err(|_| bad("ai", col)))
        .transpose()
}

fn preset_from_row(r: &SqliteRow) -> StoreResult<Preset> {
    let id = |col: &str| -> StoreResult<DocId> {
        let s: String = r.try_get(col).map_err(map_err)?;
        DocId::parse(&s).ok_or_else(|| bad("ai_analysis_presets", col))
    };
    let tags = json_col(r, "tags")?
        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
        .unwrap_or_default();
    Ok(Preset {
        id: id("id")?,
        owner_user_id: id("owner_user_id")?,
        owner_email: r.try_get("owner_email").map_err(map_err)?,
        visibility: r.try_get("visibility").map_err(map_err)?,
        fields: PresetFields {
            name: r.try_get("name").map_err(map_err)?,
            description: r.try_get("description").map_err(map_err)?,
            tags,
            definition: json_col(r, "definition")?
                .unwrap_or_else(|| Value::Object(Default::default())),
        },
        version: r.try_get::<i64, _>("version").map_err(map_err)? as u32,
        created_at: r.try_get("created_at").map_err(map_err)?,
        updated_at: r.try_get("updated_at").map_err(map_err)?,
    })
}

fn run_from_row(r: &SqliteRow) -> StoreResult<AiRun> {
    let id = |col: &str| -> StoreResult<DocId> {
        let s: String = r.try_get(col).map_err(map_err)?;
        DocId::parse(&s).ok_or_else(|| bad("ai_analysis_runs", col))
    };
    let status: String = r.try_get("status").map_err(map_err)?;
    Ok(AiRun {
        id: id("id")?,
        project_id: id("project_id")?,
        preset_id: r.try_get("preset_id").map_err(map_err)?,
        preset_snapshot: json_col(r, "preset_snapshot")?,
        created_by_user_id: r.try_get("created_by_user_id").map_err(map_err)?,
        created_by_email: r.try_get("created_by_email").map_err(map_err)?,
        status: RunStatus::parse(&status).ok_or_else(|| bad("ai_analysis_runs", "status"))?,
        progress: r.try_get("progress").map_err(map_err)?,
        model: r.try_get("model").map_err(map_err)?,
        timeframe_preset: r.try_get("timeframe_preset").map_err(map_err)?,
        start: r.try_get("start_ms").map_err(map_err)?,
        end: r.try_get("end_ms").map_err(map_err)?,
        segment: json_col(r, "segment")?
            .map(|v| segment_from_json(&v))
            .unwrap_or_default(),
        result_markdown: r.try_get("result_markdown").map_err(map_err)?,
        error_message: r.try_get("error_message").map_err(map_err)?,
        duration_ms: r.try_get("duration_ms").map_err(map_err)?,
        token_usage: json_col(r, "token_usage")?,
        job_id: r.try_get("job_id").map_err(map_err)?,
        created_at: r.try_get("created_at").map_err(map_err)?,
        updated_at: r.try_get("updated_at").map_err(map_err)?,
    })
}

fn text(v: &Value) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "null".into())
}

#[async_trait]
impl AiStore for SqliteStore {
    async fn create_preset(&self, p: &Preset) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO ai_analysis_presets (id, owner_user_id, owner_email, visibility, name, description, tags, version, definition, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(p.id.to_hex())
        .bind(p.owner_user_id.to_hex())
        .bind(&p.owner_email)
        .bind(&p.visibility)
        .bind(&p.fields.name)
        .bind(&p.fields.description)
        .bind(text(&serde_json::json!(p.fields.tags)))
        .bind(i64::from(p.version))
        .bind(text(&p.fields.definition))
        .bind(p.created_at)
        .bind(p.updated_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn preset(&self, id: DocId) -> StoreResult<Option<Preset>> {
        self.find_by_id(
            "SELECT * FROM ai_analysis_presets WHERE id = ?",
            id,
            preset_from_row,
        )
        .await
    }

    async fn presets_of_owner(&self, owner: DocId) -> StoreResult<Vec<Preset>> {
        let rows = sqlx::query(
            "SELECT * FROM ai_analysis_presets WHERE owner_user_id = ? ORDER BY created_at DESC, id DESC",
        )
        .bind(owner.to_hex())
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(preset_from_row).collect()
    }

    async fn public_presets(&self, except_owner: DocId, limit: u32) -> StoreResult<Vec<Preset>> {
        let rows = sqlx::query(
            "SELECT * FROM ai_analysis_presets WHERE visibility = 'public' AND owner_user_id <> ? \
             ORDER BY updated_at DESC, id DESC LIMIT ?",
        )
        .bind(except_owner.to_hex())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(preset_from_row).collect()
    }

    async fn update_preset(&self, id: DocId, f: &PresetFields) -> StoreResult<Preset> {
        let row = sqlx::query(
            "UPDATE ai_analysis_presets SET name = ?, description = ?, tags = ?, definition = ?, \
             version = version + 1, updated_at = ? WHERE id = ? RETURNING *",
        )
        .bind(&f.name)
        .bind(&f.description)
        .bind(text(&serde_json::json!(f.tags)))
        .bind(text(&f.definition))
        .bind(now_ms())
        .bind(id.to_hex())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref()
            .map(preset_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn set_preset_visibility(&self, id: DocId, visibility: &str) -> StoreResult<Preset> {
        let row = sqlx::query(
            "UPDATE ai_analysis_presets SET visibility = ?, version = version + 1, updated_at = ? \
             WHERE id = ? RETURNING *",
        )
        .bind(visibility)
        .bind(now_ms())
        .bind(id.to_hex())
        .fetch_optional(&self.pool)
        .await
        .map_err(map_err)?;
        row.as_ref()
            .map(preset_from_row)
            .transpose()?
            .ok_or(StoreError::NotFound)
    }

    async fn delete_preset(&self, id: DocId) -> StoreResult<()> {
        let n = sqlx::query("DELETE FROM ai_analysis_presets WHERE id = ?")
            .bind(id.to_hex())
            .execute(&self.pool)
            .await
            .map_err(map_err)?
            .rows_affected();
        if n == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn create_run(&self, r: &AiRun) -> StoreResult<()> {
        sqlx::query(
            "INSERT INTO ai_analysis_runs (id, project_id, preset_id, preset_snapshot, created_by_user_id, created_by_email, \
             status, progress, model, timeframe_preset, start_ms, end_ms, segment, result_markdown, error_message, duration_ms, \
             token_usage, job_id, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(r.id.to_hex())
        .bind(r.project_id.to_hex())
        .bind(&r.preset_id)
        .bind(r.preset_snapshot.as_ref().map(text))
        .bind(&r.created_by_user_id)
        .bind(&r.created_by_email)
        .bind(r.status.as_str())
        .bind(&r.progress)
        .bind(&r.model)
        .bind(&r.timeframe_preset)
        .bind(r.start)
        .bind(r.end)
        .bind(text(&segment_to_json(&r.segment)))
        .bind(&r.result_markdown)
        .bind(&r.error_message)
        .bind(r.duration_ms)
        .bind(r.token_usage.as_ref().map(text))
        .bind(&r.job_id)
        .bind(r.created_at)
        .bind(r.updated_at)
        .execute(&self.pool)
        .await
        .map_err(map_err)?;
        Ok(())
    }

    async fn run(&self, id: DocId) -> StoreResult<Option<AiRun>> {
        self.find_by_id(
            "SELECT * FROM ai_analysis_runs WHERE id = ?",
            id,
            run_from_row,
        )
        .await
    }

    async fn runs_of_project(&self, project_id: DocId, limit: u32) -> StoreResult<Vec<AiRun>> {
        let rows = sqlx::query(
            "SELECT * FROM ai_analysis_runs WHERE project_id = ? ORDER BY created_at DESC, id DESC LIMIT ?",
        )
        .bind(project_id.to_hex())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(map_err)?;
        rows.iter().map(run_from_row).collect()
    }

    async fn set_run_job(&self, id: DocId, job_id: &str) -> StoreResult<()> {
        self.update_one(
            "UPDATE ai_analysis_runs SET job_id = ?, updated_at = ? WHERE id = ?",
            job_id,
            id,
        )
        .await
    }

    async fn set_run_running(&self, id: DocId, progress: &str) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE ai_analysis_runs SET status = 'running', progress = ?, updated_at = ? \
             WHERE id = ? AND status IN ('queued', 'running')",
        )
        .bind(progress)
        .bind(now_ms())
        .bind(id.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn finish_run(&self, id: DocId, o: &RunOutcome) -> StoreResult<bool> {
        let n = sqlx::query(
            "UPDATE ai_analysis_runs SET status = ?, progress = NULL, model = ?, result_markdown = ?, error_message = ?, \
             duration_ms = ?, token_usage = ?, updated_at = ? WHERE id = ? AND status IN ('queued', 'running')",
        )
        .bind(o.status.as_str())
        .bind(&o.model)
        .bind(&o.result_markdown)
        .bind(&o.error_message)
        .bind(o.duration_ms)
        .bind(o.token_usage.as_ref().map(text))
        .bind(now_ms())
        .bind(id.to_hex())
        .execute(&self.pool)
        .await
        .map_err(map_err)?
        .rows_affected();
        Ok(n == 1)
    }

    async fn sample_documents(
        &self,
        project_id: DocId,
        range: TimeRange,
        segment: &SegmentFilters,
        query: &SampleQuery,
        limit: u32,
    ) -> StoreResult<Vec<Value>> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let Some(mut w) = self.report_scope(&mut conn, project_id, range).await? else {
            return Ok(Vec::new());
        };
        let channel = match query {
            SampleQuery::ErrorsWithFingerprint(_) => Channel::Errors,
            SampleQuery::SlowestEvents(_) | SampleQuery::NewestEvents(_) => Channel::Events,
            SampleQuery::NewestPageviews(_) => Channel::Pageviews,
            SampleQuery::WorstMetric { .. } => Channel::Performance,
        };
        w.segment(channel, segment);
        let table = rows::table(channel);
        let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT * FROM {table}"));
        w.push_to(&mut q);
        match query {
            SampleQuery::ErrorsWithFingerprint(fp) => {
                q.push(" AND fingerprint = ").push_bind(fp.clone());
                q.push(" ORDER BY ts DESC, rowid DESC");
            }
            SampleQuery::SlowestEvents(name) => {
                q.push(" AND duration_ms IS NOT NULL AND event_name = ")
                    .push_bind(name.clone());
                q.push(" ORDER BY duration_ms DESC, ts DESC");
            }
            SampleQuery::NewestEvents(name) => {
                q.push(" AND event_name = ").push_bind(name.clone());
                q.push(" ORDER BY ts DESC, rowid DESC");
            }
            SampleQuery::NewestPageviews(url) => {
                q.push(" AND url = ").push_bind(url.clone());
                q.push(" ORDER BY ts DESC, rowid DESC");
            }
            SampleQuery::WorstMetric { metric, threshold } => {
                let column = METRICS
                    .iter()
                    .find(|m| *m == metric)
                    .ok_or_else(|| StoreError::other(format!("unknown metric {metric}")))?;
                q.push(format_args!(" AND {column} >= "))
                    .push_bind(*threshold)
                    .push(format_args!(" ORDER BY {column} DESC, ts DESC"));
            }
        }
        q.push(" LIMIT ").push_bind(i64::from(limit));
        let found = q.build().fetch_all(&mut *conn).await.map_err(map_err)?;
        Ok(found.iter().map(|r| rows::to_json(r, project_id)).collect())
    }
}

#[cfg(test)]
mod tests {
    use crate::store::{contract, sqlite::temp_stores};

    /// The AI part of the store contract on its own (the full suite runs it too).
    #[tokio::test]
    async fn sqlite_ai_store_meets_the_contract() {
        let (_dir, stores) = temp_stores().await;
        contract::ai_presets_and_runs(&stores).await;
        contract::ai_sample_documents(&stores).await;
    }
}
