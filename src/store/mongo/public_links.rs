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
        // One update with a pipeline, so `publicLinkCreatedAt` is kept only when the link was
        // already enabled, decided atomically on the server.
        let result = self
            .coll(PROJECTS)
            .update_one(
                doc! {"_id": oid(id), "deletedAt": Bson::Null},
                vec![
                    doc! {"$set": {
                        "publicLinkCreatedAt": {"$cond": [
                            {"$and": [
                                {"$eq": ["$publicLinkEnabled", true]},
                                {"$ne": [{"$ifNull": ["$publicLinkCreatedAt", Bson::Null]}, Bson::Null]},
                            ]},
                            "$publicLinkCreatedAt",
                            at,
                        ]},
                    }},
                    doc! {"$set": {
                        "publicLinkEnabled": true,
                        "publicLinkTokenHash": token_hash,
                        "publicLinkLastRegeneratedAt": at,
                        "publicLinkRevokedAt": Bson::Null,
                        "updatedAt": at,
                    }},
                    doc! {"$unset": "publicLinkToken"},
                ],
            )
            .await
            .map_err(map_err)?;
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
