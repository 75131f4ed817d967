//! Generated reports (`reports`) and filter templates (`filtertemplates`) in MongoDB: the record
//! as `crate::reports::model` serialises it, under an ObjectId `_id`; and the ordered document
//! scan behind raw CSV exports. Writes are `$set` updates and conditional updates only (what
//! FerretDB shares). (The drill-down reads are in `reports.rs`; they are not these reports.)

use super::{
    MongoStore,
    docs::{bson_to_json, collection_of, json_to_bson, oid},
    errors::{CollectAll, map_err},
    filters::Match,
};
use crate::domain::{analytics::TimeRange, ids::DocId, model::Channel, segment::SegmentFilters};
use crate::reports::{FilterTemplate, Report};
use crate::store::{DocumentPages, ReportStore, StoreError, StoreResult};
use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};

/// SuperInsights 1.x's collection names.
pub(super) const REPORTS: &str = "reports";
pub(super) const FILTER_TEMPLATES: &str = "filtertemplates";

fn to_doc<T: serde::Serialize>(id: DocId, record: &T) -> StoreResult<Document> {
    let json = serde_json::to_value(record).map_err(|e| StoreError::other(e.to_string()))?;
    let Bson::Document(mut d) = json_to_bson(&json) else {
        return Err(StoreError::other("a record must be an object".into()));
    };
    d.insert("_id", oid(id));
    Ok(d)
}

fn from_doc<T: serde::de::DeserializeOwned>(d: &Document, collection: &str) -> StoreResult<T> {
    let mut json = bson_to_json(&Bson::Document(d.clone()));
    if let Some(o) = json.as_object_mut() {
        o.remove("_id");
    }
    serde_json::from_value(json)
        .map_err(|e| StoreError::other(format!("malformed {collection} document: {e}")))
}

fn all<T: serde::de::DeserializeOwned>(
    found: &[Document],
    collection: &str,
) -> StoreResult<Vec<T>> {
    found.iter().map(|d| from_doc(d, collection)).collect()
}

#[async_trait]
impl ReportStore for MongoStore {
    async fn insert_report(&self, r: &Report) -> StoreResult<()> {
        self.coll(REPORTS)
            .insert_one(to_doc(r.id, r)?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn report(&self, id: DocId) -> StoreResult<Option<Report>> {
        self.coll(REPORTS)
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?
            .as_ref()
            .map(|d| from_doc(d, REPORTS))
            .transpose()
    }

    async fn reports_of_project(&self, project_id: DocId, limit: u32) -> StoreResult<Vec<Report>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let found = self
            .coll(REPORTS)
            .find(doc! {"projectId": project_id.to_hex(), "deletedAt": Bson::Null})
            .sort(doc! {"createdAt": -1, "_id": -1})
            .limit(i64::from(limit))
            .collect_all()
            .await?;
        all(&found, REPORTS)
    }

    async fn save_report(&self, r: &Report) -> StoreResult<bool> {
        let mut set = to_doc(r.id, r)?;
        set.remove("_id");
        // The count is only ever incremented by downloads.
        set.remove("downloadCount");
        set.remove("deletedAt");
        let done = self
            .coll(REPORTS)
            .update_one(
                doc! {"_id": oid(r.id), "deletedAt": Bson::Null},
                doc! {"$set": set},
            )
            .await
            .map_err(map_err)?;
        Ok(done.matched_count == 1)
    }

    async fn soft_delete_report(&self, id: DocId, at_ms: i64) -> StoreResult<bool> {
        let done = self
            .coll(REPORTS)
            .update_one(
                doc! {"_id": oid(id), "deletedAt": Bson::Null},
                doc! {"$set": {"deletedAt": at_ms}},
            )
            .await
            .map_err(map_err)?;
        Ok(done.matched_count == 1)
    }

    async fn active_report_by_hash(
        &self,
        project_id: DocId,
        hash: &str,
    ) -> StoreResult<Option<Report>> {
        let found = self
            .coll(REPORTS)
            .find(doc! {
                "projectId": project_id.to_hex(),
                "dedupHash": hash,
                "status": {"$in": ["pending", "generating"]},
                "deletedAt": Bson::Null,
            })
            .sort(doc! {"createdAt": -1})
            .limit(1)
            .collect_all()
            .await?;
        found.first().map(|d| from_doc(d, REPORTS)).transpose()
    }

    async fn count_download(&self, id: DocId) -> StoreResult<()> {
        self.coll(REPORTS)
            .update_one(doc! {"_id": oid(id)}, doc! {"$inc": {"downloadCount": 1}})
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn reports_with_stale_files(&self, now_ms: i64, limit: u32) -> StoreResult<Vec<Report>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let found = self
            .coll(REPORTS)
            .find(doc! {
                "fileKey": {"$ne": Bson::Null},
                "$or": [
                    {"expiresAt": {"$lte": now_ms}},
                    {"deletedAt": {"$ne": Bson::Null}},
                ],
            })
            .sort(doc! {"createdAt": 1})
            .limit(i64::from(limit))
            .collect_all()
            .await?;
        all(&found, REPORTS)
    }

    async fn clear_report_file(&self, id: DocId) -> StoreResult<()> {
        self.coll(REPORTS)
            .update_one(
                doc! {"_id": oid(id)},
                doc! {"$set": {"fileKey": Bson::Null}},
            )
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn insert_filter_template(&self, t: &FilterTemplate) -> StoreResult<()> {
        self.coll(FILTER_TEMPLATES)
            .insert_one(to_doc(t.id, t)?)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn filter_template(&self, id: DocId) -> StoreResult<Option<FilterTemplate>> {
        self.coll(FILTER_TEMPLATES)
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?
            .as_ref()
            .map(|d| from_doc(d, FILTER_TEMPLATES))
            .transpose()
    }

    async fn filter_templates(
        &self,
        project_id: DocId,
        limit: u32,
    ) -> StoreResult<Vec<FilterTemplate>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let found = self
            .coll(FILTER_TEMPLATES)
            .find(doc! {"projectId": project_id.to_hex()})
            .sort(doc! {"createdAt": -1, "_id": -1})
            .limit(i64::from(limit))
            .collect_all()
            .await?;
        all(&found, FILTER_TEMPLATES)
    }

    async fn delete_filter_template(&self, id: DocId) -> StoreResult<bool> {
        let done = self
            .coll(FILTER_TEMPLATES)
            .delete_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?;
        Ok(done.deleted_count == 1)
    }

    async fn document_pages(
        &self,
        project_id: DocId,
        channel: Channel,
        range: TimeRange,
        segment: &SegmentFilters,
        page: u32,
    ) -> StoreResult<DocumentPages> {
        let page = page.max(1);
        let mut filter = Match::scope(project_id, range);
        filter.segment(channel, segment);
        // One query whose cursor is read a batch at a time (a keyset query per page would make
        // servers without range pushdown, FerretDB among them, scan the range once per page).
        let cursor = self
            .coll(collection_of(channel))
            .find(filter.build())
            .sort(doc! {"timestamp": 1, "_id": 1})
            .batch_size(page)
            .await
            .map_err(map_err)?;
        let page = page as usize;
        Ok(Box::pin(futures::stream::unfold(
            Some(cursor),
            move |cursor| async move {
                use futures::TryStreamExt;
                let mut cursor = cursor?;
                let mut docs = Vec::with_capacity(page);
                while docs.len() < page {
                    match cursor.try_next().await {
                        Ok(Some(d)) => docs.push(super::docs::to_json(&d)),
                        Ok(None) => break,
                        Err(e) => return Some((Err(map_err(e)), None)),
                    }
                }
                if docs.is_empty() {
                    return None;
                }
                let more = docs.len() == page;
                Some((Ok(docs), more.then_some(cursor)))
            },
        )))
    }
}
