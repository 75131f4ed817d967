//! Public (shareable) links in MongoDB: SuperInsights 1.x's `publicLink*` fields of `projects`.
//! Only the token's hash is written; a raw `publicLinkToken` left by SuperInsights 1.x is
//! removed whenever a link is set or revoked. The `ProjectStore` methods delegate here.

use super::{
    MongoStore,
    docs::{self, PROJECTS, date, oid},
    errors::{CollectAll, map_err},
    matched,
};
use crate::domain::ids::DocId;
use crate::store::{PublicLink, StoreError, StoreResult};
use mongodb::bson::{Bson, Document, doc};

/// A date field (BSON date, or leniently epoch milliseconds).
fn millis(d: &Document, field: &str) -> Option<i64> {
    match d.get(field)? {
        Bson::DateTime(t) => Some(t.timestamp_millis()),
        _ => docs::read_int(d, field),
    }
}

fn link_from_doc(d: &Document) -> StoreResult<PublicLink> {
    Ok(PublicLink {
        project: docs::project_from_doc(d)?,
        enabled: d.get_bool("publicLinkEnabled").unwrap_or(false),
        token_hash: d
            .get_str("publicLinkTokenHash")
            .ok()
            .filter(|h| !h.is_empty())
            .map(str::to_string),
        created_at: millis(d, "publicLinkCreatedAt"),
        last_regenerated_at: millis(d, "publicLinkLastRegeneratedAt"),
        revoked_at: millis(d, "publicLinkRevokedAt"),
    })
}

impl MongoStore {
    pub(super) async fn load_public_link(&self, id: DocId) -> StoreResult<Option<PublicLink>> {
        let found = self
            .coll(PROJECTS)
            .find_one(doc! {"_id": oid(id)})
            .await
            .map_err(map_err)?;
        found.as_ref().map(link_from_doc).transpose()
    }

    pub(super) async fn store_public_link(
        &self,
        id: DocId,
        token_hash: &str,
        at_ms: i64,
    ) -> StoreResult<PublicLink> {
        let at = date(at_ms);
        let set = doc! {
            "publicLinkEnabled": true,
            "publicLinkTokenHash": token_hash,
            "publicLinkLastRegeneratedAt": at,
            "publicLinkRevokedAt": Bson::Null,
            "updatedAt": at,
        };
        let unset = doc! {"publicLinkToken": ""};
        // `publicLinkCreatedAt` is kept only when the link was already enabled. Without pipeline
        // updates (FerretDB has none) that is two conditional updates whose filters exclude each
        // other, so whichever matches decides atomically; when neither does, the link changed
        // state in between (or the project is gone), and the next round sees the new state.
        let live = doc! {"_id": oid(id), "deletedAt": Bson::Null};
        let mut was_enabled = live.clone();
        was_enabled.insert("publicLinkEnabled", true);
        was_enabled.insert("publicLinkCreatedAt", doc! {"$ne": Bson::Null});
        let mut was_not = live.clone();
        was_not.insert(
            "$or",
            vec![
                doc! {"publicLinkEnabled": {"$ne": true}},
                doc! {"publicLinkCreatedAt": Bson::Null},
            ],
        );
        let mut set_created = set.clone();
        set_created.insert("publicLinkCreatedAt", at);
        let mut result = None;
        for _ in 0..3 {
            let kept = self
                .coll(PROJECTS)
                .update_one(
                    was_enabled.clone(),
                    doc! {"$set": set.clone(), "$unset": unset.clone()},
                )
                .await
                .map_err(map_err)?;
            if kept.matched_count == 1 {
                result = Some(kept);
                break;
            }
            let fresh = self
                .coll(PROJECTS)
                .update_one(
                    was_not.clone(),
                    doc! {"$set": set_created.clone(), "$unset": unset.clone()},
                )
                .await
                .map_err(map_err)?;
            if fresh.matched_count == 1 {
                result = Some(fresh);
                break;
            }
        }
        let Some(result) = result else {
            return Err(StoreError::NotFound);
        };
        matched(&result)?;
        self.load_public_link(id).await?.ok_or(StoreError::NotFound)
    }

    pub(super) async fn clear_public_link(&self, id: DocId, at_ms: i64) -> StoreResult<()> {
        let at = date(at_ms);
        let result = self
            .coll(PROJECTS)
            .update_one(
                doc! {"_id": oid(id)},
                doc! {
                    "$set": {
                        "publicLinkEnabled": false,
                        "publicLinkTokenHash": Bson::Null,
                        "publicLinkRevokedAt": at,
                        "updatedAt": at,
                    },
                    "$unset": {"publicLinkToken": ""},
                },
            )
            .await
            .map_err(map_err)?;
        matched(&result)
    }

    pub(super) async fn list_public_links(
        &self,
        org_id: Option<DocId>,
    ) -> StoreResult<Vec<PublicLink>> {
        // `deletedAt: null` also matches SuperInsights documents that lack the field.
        let mut filter = doc! {"publicLinkEnabled": true, "deletedAt": Bson::Null};
        if let Some(org) = org_id {
            filter.insert("saasOrgId", oid(org));
        }
        let found: Vec<Document> = self
            .coll(PROJECTS)
            .find(filter)
            .sort(doc! {"publicLinkCreatedAt": -1, "_id": -1})
            .collect_all()
            .await?;
        found.iter().map(link_from_doc).collect()
    }
}
