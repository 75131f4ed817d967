//! AI analysis in MongoDB, with SuperInsights 1.x's collections and field names
//! (`aianalysispresets`, `aianalysisruns`) plus ours (`progress`, `jobId`, `segment`). Run
//! transitions are conditional `update_one`s on `status`, so a finished run never changes again.

use super::{
    MongoStore,
    docs::{
        AI_RUNS, bson_to_json, collection_of, date, json_to_bson, oid, read_id, read_int, to_json,
    },
    errors::{CollectAll, map_err},
    filters::Match,
};
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
use mongodb::{
    bson::{Bson, Document, doc},
    options::ReturnDocument,
};
use serde_json::Value;

/// SuperInsights 1.x's preset collection.
pub(super) const AI_PRESETS: &str = "aianalysispresets";

fn millis(d: &Document, field: &str) -> i64 {
    match d.get(field) {
        Some(Bson::DateTime(t)) => t.timestamp_millis(),
        _ => read_int(d, field).unwrap_or(0),
    }
}

fn opt_str(d: &Document, field: &str) -> Option<String> {
    d.get_str(field).ok().map(str::to_string)
}

fn opt_json(d: &Document, field: &str) -> Option<Value> {
    d.get(field)
        .filter(|b| !matches!(b, Bson::Null))
        .map(bson_to_json)
}

fn preset_doc(p: &Preset) -> Document {
    doc! {
        "_id": oid(p.id),
        "ownerUserId": oid(p.owner_user_id),
        "ownerEmail": &p.owner_email,
        "visibility": &p.visibility,
        "name": &p.fields.name,
        "description": &p.fields.description,
        "tags": p.fields.tags.clone(),
        "version": i64::from(p.version),
        "definition": json_to_bson(&p.fields.definition),
        "createdAt": date(p.created_at),
        "updatedAt": date(p.updated_at),
    }
}

fn preset_from_doc(d: &Document) -> StoreResult<Preset> {
    let tags = d
        .get_array("tags")
        .map(|a| {
            a.iter()
                .filter_map(|t| t.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    Ok(Preset {
        id: read_id(d, AI_PRESETS, "_id")?,
        owner_user_id: read_id(d, AI_PRESETS, "ownerUserId")?,
        owner_email: opt_str(d, "ownerEmail").unwrap_or_default(),
        visibility: opt_str(d, "visibility").unwrap_or_else(|| "private".into()),
        fields: PresetFields {
            name: opt_str(d, "name").unwrap_or_default(),
            description: opt_str(d, "description").unwrap_or_default(),
            tags,
            definition: opt_json(d, "definition")
                .unwrap_or_else(|| Value::Object(Default::default())),
        },
        version: read_int(d, "version").unwrap_or(1).max(1) as u32,
        created_at: millis(d, "createdAt"),
        updated_at: millis(d, "updatedAt"),
    })
}

fn opt_bson_str(v: &Option<String>) -> Bson {
    v.as_ref().map_or(Bson::Null, |s| Bson::String(s.clone()))
}

fn opt_bson_json(v: &Option<Value>) -> Bson {
    v.as_ref().map_or(Bson::Null, json_to_bson)
}

fn run_doc(r: &AiRun) -> Document {
    doc! {
        "_id": oid(r.id),
        "projectId": oid(r.project_id),
        "presetId": opt_bson_str(&r.preset_id),
        "presetSnapshot": opt_bson_json(&r.preset_snapshot),
        "createdByUserId": &r.created_by_user_id,
        "createdByEmail": &r.created_by_email,
        "status": r.status.as_str(),
        "progress": opt_bson_str(&r.progress),
        "model": &r.model,
        "timeframePreset": opt_bson_str(&r.timeframe_preset),
        "start": date(r.start),
        "end": date(r.end),
        "segment": json_to_bson(&segment_to_json(&r.segment)),
        "resultMarkdown": opt_bson_str(&r.result_markdown),
        "errorMessage": opt_bson_str(&r.error_message),
        "durationMs": r.duration_ms.map_or(Bson::Null, Bson::Int64),
        "tokenUsage": opt_bson_json(&r.token_usage),
        "jobId": opt_bson_str(&r.job_id),
        "createdAt": date(r.created_at),
        "updatedAt": date(r.updated_at),
    }
}

fn run_from_doc(d: &Document) -> StoreResult<AiRun> {
    // SuperInsights 1.x runs have no `queued` state and no `status` default other than running.
    let status = opt_str(d, "status")
        .and_then(|s| RunStatus::parse(&s))
        .unwrap_or(RunStatus::Running);
    Ok(AiRun {
        id: read_id(d, AI_RUNS, "_id")?,
        project_id: read_id(d, AI_RUNS, "projectId")?,
        preset_id: opt_str(d, "presetId"),
        preset_snapshot: opt_json(d, "presetSnapshot"),
        created_by_user_id: opt_str(d, "createdByUserId").unwrap_or_default(),
        created_by_email: opt_str(d, "createdByEmail").unwrap_or_default(),
        status,
        progress: opt_str(d, "progress"),
        model: opt_str(d, "model").unwrap_or_default(),
        timeframe_preset: opt_str(d, "timeframePreset"),
        start: millis(d, "start"),
        end: millis(d, "end"),
        segment: opt_json(d, "segment")
            .map(|v| segment_from_json(&v))
            .unwrap_or_default(),
        result_markdown: opt_str(d, "resultMarkdown"),
        error_message: opt_str(d, "errorMessage"),
        duration_ms: read_int(d, "durationMs"),
        token_usage: opt_json(d, "tokenUsage"),
        job_id: opt_str(d, "jobId"),
        created_at: millis(d, "createdAt"),
        updated_at: millis(d, "updatedAt"),
    })
}

const OPEN: [&str; 2] = ["queued", "running"];

#[async_trait]
impl AiStore for MongoStore {
    async fn create_preset(&self, p: &Preset) -> StoreResult<()> {
        self.coll(AI_PRESETS)
            .insert_one(preset_doc(p))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn preset(&self, id: DocId) -> StoreResult<Option<Preset>> {
        self.coll(AI_PRESETS)
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?
            .as_ref()
            .map(preset_from_doc)
            .transpose()
    }

    async fn presets_of_owner(&self, owner: DocId) -> StoreResult<Vec<Preset>> {
        let found = self
            .coll(AI_PRESETS)
            .find(doc! {"ownerUserId": oid(owner)})
            .sort(doc! {"createdAt": -1, "_id": -1})
            .collect_all()
            .await?;
        found.iter().map(preset_from_doc).collect()
    }

    async fn public_presets(&self, except_owner: DocId, limit: u32) -> StoreResult<Vec<Preset>> {
        // MongoDB reads `limit(0)` as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let found = self
            .coll(AI_PRESETS)
            .find(doc! {"visibility": "public", "ownerUserId": {"$ne": oid(except_owner)}})
            .sort(doc! {"updatedAt": -1, "_id": -1})
            .limit(i64::from(limit))
            .collect_all()
            .await?;
        found.iter().map(preset_from_doc).collect()
    }

    async fn update_preset(&self, id: DocId, f: &PresetFields) -> StoreResult<Preset> {
        let update = doc! {
            "$set": {
                "name": &f.name,
                "description": &f.description,
                "tags": f.tags.clone(),
                "definition": json_to_bson(&f.definition),
                "updatedAt": date(now_ms()),
            },
            "$inc": {"version": 1},
        };
        let found = self
            .coll(AI_PRESETS)
            .find_one_and_update(doc! {"_id": oid(id)}, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        preset_from_doc(&found)
    }

    async fn set_preset_visibility(&self, id: DocId, visibility: &str) -> StoreResult<Preset> {
        let update = doc! {
            "$set": {"visibility": visibility, "updatedAt": date(now_ms())},
            "$inc": {"version": 1},
        };
        let found = self
            .coll(AI_PRESETS)
            .find_one_and_update(doc! {"_id": oid(id)}, update)
            .return_document(ReturnDocument::After)
            .await
            .map_err(map_err)?
            .ok_or(StoreError::NotFound)?;
        preset_from_doc(&found)
    }

    async fn delete_preset(&self, id: DocId) -> StoreResult<()> {
        let result = self
            .coll(AI_PRESETS)
            .delete_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?;
        if result.deleted_count == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn create_run(&self, r: &AiRun) -> StoreResult<()> {
        self.coll(AI_RUNS)
            .insert_one(run_doc(r))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn run(&self, id: DocId) -> StoreResult<Option<AiRun>> {
        self.coll(AI_RUNS)
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?
            .as_ref()
            .map(run_from_doc)
            .transpose()
    }

    async fn runs_of_project(&self, project_id: DocId, limit: u32) -> StoreResult<Vec<AiRun>> {
        // MongoDB reads `limit(0)` as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let found = self
            .coll(AI_RUNS)
            .find(doc! {"projectId": oid(project_id)})
            .sort(doc! {"createdAt": -1, "_id": -1})
            .limit(i64::from(limit))
            .collect_all()
            .await?;
        found.iter().map(run_from_doc).collect()
    }

    async fn set_run_job(&self, id: DocId, job_id: &str) -> StoreResult<()> {
        let result = self
            .coll(AI_RUNS)
            .update_one(
                doc! {"_id": oid(id)},
                doc! {"$set": {"jobId": job_id, "updatedAt": date(now_ms())}},
            )
            .await
            .map_err(map_err)?;
        if result.matched_count == 0 {
            Err(StoreError::NotFound)
        } else {
            Ok(())
        }
    }

    async fn set_run_running(&self, id: DocId, progress: &str) -> StoreResult<bool> {
        let result = self
            .coll(AI_RUNS)
            .update_one(
                doc! {"_id": oid(id), "status": {"$in": OPEN.to_vec()}},
                doc! {"$set": {"status": "running", "progress": progress, "updatedAt": date(now_ms())}},
            )
            .await
            .map_err(map_err)?;
        Ok(result.matched_count == 1)
    }

    async fn finish_run(&self, id: DocId, o: &RunOutcome) -> StoreResult<bool> {
        let result = self
            .coll(AI_RUNS)
            .update_one(
                doc! {"_id": oid(id), "status": {"$in": OPEN.to_vec()}},
                doc! {"$set": {
                    "status": o.status.as_str(),
                    "progress": Bson::Null,
                    "model": &o.model,
                    "resultMarkdown": opt_bson_str(&o.result_markdown),
                    "errorMessage": opt_bson_str(&o.error_message),
                    "durationMs": o.duration_ms,
                    "tokenUsage": opt_bson_json(&o.token_usage),
                    "updatedAt": date(now_ms()),
                }},
            )
            .await
            .map_err(map_err)?;
        Ok(result.matched_count == 1)
    }

    async fn sample_documents(
        &self,
        project_id: DocId,
        range: TimeRange,
        segment: &SegmentFilters,
        query: &SampleQuery,
        limit: u32,
    ) -> StoreResult<Vec<Value>> {
        let mut filter = Match::scope(project_id, range);
        let (channel, sort) = match query {
            SampleQuery::ErrorsWithFingerprint(fp) => {
                filter.field("fingerprint", fp.as_str());
                (Channel::Errors, doc! {"timestamp": -1, "_id": -1})
            }
            SampleQuery::SlowestEvents(name) => {
                filter.field("eventName", name.as_str());
                filter.field("durationMs", doc! {"$ne": Bson::Null, "$exists": true});
                (Channel::Events, doc! {"durationMs": -1, "timestamp": -1})
            }
            SampleQuery::NewestEvents(name) => {
                filter.field("eventName", name.as_str());
                (Channel::Events, doc! {"timestamp": -1, "_id": -1})
            }
            SampleQuery::NewestPageviews(url) => {
                filter.field("url", url.as_str());
                (Channel::Pageviews, doc! {"timestamp": -1, "_id": -1})
            }
            SampleQuery::WorstMetric { metric, threshold } => {
                let field = METRICS
                    .iter()
                    .find(|m| *m == metric)
                    .ok_or_else(|| StoreError::other(format!("unknown metric {metric}")))?;
                filter.field(*field, doc! {"$gte": *threshold});
                let mut sort = Document::new();
                sort.insert(*field, -1);
                sort.insert("timestamp", -1);
                (Channel::Performance, sort)
            }
        };
        filter.segment(channel, segment);
        // MongoDB reads `limit(0)` as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let found = self
            .coll(collection_of(channel))
            .find(filter.build())
            .sort(sort)
            .limit(i64::from(limit))
            .collect_all()
            .await?;
        Ok(found.iter().map(to_json).collect())
    }
}
