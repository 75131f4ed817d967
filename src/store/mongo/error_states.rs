//! Error group states in MongoDB (`errorgroupstates`, ours: one document per project and
//! signature, `_id` `<projectId>:<signature>`; no document means open). Queries only.

use super::{
    MongoStore,
    docs::{date, oid},
    errors::{CollectAll, map_err},
};
use crate::domain::{
    error_groups::{ErrorGroupState, GroupState},
    ids::DocId,
};
use crate::store::{ErrorStateStore, StoreError, StoreResult};
use async_trait::async_trait;
use mongodb::bson::{Bson, doc};

pub(super) const ERROR_GROUP_STATES: &str = "errorgroupstates";

impl MongoStore {
    /// Deletes the project's group states.
    pub(super) async fn forget_error_states(&self, id: DocId) -> StoreResult<()> {
        self.coll(ERROR_GROUP_STATES)
            .delete_many(doc! {"projectId": oid(id)})
            .await
            .map_err(map_err)?;
        Ok(())
    }
}

#[async_trait]
impl ErrorStateStore for MongoStore {
    async fn error_group_states(&self, project: DocId) -> StoreResult<Vec<ErrorGroupState>> {
        let docs = self
            .coll(ERROR_GROUP_STATES)
            .find(doc! {"projectId": oid(project)})
            .sort(doc! {"signature": 1})
            .collect_all()
            .await?;
        docs.iter()
            .map(|d| {
                let bad = |field: &str| {
                    StoreError::other(format!("malformed {ERROR_GROUP_STATES}.{field}"))
                };
                let state = d.get_str("state").map_err(|_| bad("state"))?;
                Ok(ErrorGroupState {
                    project_id: project,
                    signature: d
                        .get_str("signature")
                        .map_err(|_| bad("signature"))?
                        .to_string(),
                    state: GroupState::parse(state).ok_or_else(|| bad("state"))?,
                    updated_at: d
                        .get_datetime("updatedAt")
                        .map_err(|_| bad("updatedAt"))?
                        .timestamp_millis(),
                    updated_by: d.get_object_id("updatedBy").ok().map(|o| DocId(o.bytes())),
                })
            })
            .collect()
    }

    async fn set_error_group_state(&self, s: &ErrorGroupState) -> StoreResult<()> {
        self.coll(ERROR_GROUP_STATES)
            .update_one(
                doc! {"_id": format!("{}:{}", s.project_id.to_hex(), s.signature)},
                doc! {"$set": {
                    "projectId": oid(s.project_id),
                    "signature": &s.signature,
                    "state": s.state.as_str(),
                    "updatedAt": date(s.updated_at),
                    "updatedBy": s.updated_by.map_or(Bson::Null, |d| Bson::ObjectId(oid(d))),
                }},
            )
            .upsert(true)
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
