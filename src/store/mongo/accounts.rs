//! Invitations (`invites` for organizations, `platforminvites` for the platform) and durable
//! session records (`sessions`) in MongoDB.

use super::{
    MongoStore,
    docs::{self, INVITES, PLATFORM_INVITES, SESSIONS, date, invites_collection, oid},
    errors::{CollectAll, map_err, only_id_duplicates},
};
use crate::domain::{ids::DocId, timestamp::now_ms};
use crate::store::{Invite, InviteStatus, InviteStore, SessionRecords, StoreError, StoreResult};
use async_trait::async_trait;
use mongodb::bson::{Document, doc};

#[async_trait]
impl InviteStore for MongoStore {
    async fn create_invite(&self, invite: &Invite) -> StoreResult<()> {
        self.coll(invites_collection(invite.org_id()))
            .insert_one(docs::invite_doc(invite))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    /// Looks in `invites`, then in `platforminvites` (tokens of the two kinds never share a
    /// hash: their prefixes differ).
    async fn invite_by_token_hash(&self, token_hash: &str) -> StoreResult<Option<Invite>> {
        for collection in [INVITES, PLATFORM_INVITES] {
            let found = self
                .coll(collection)
                .find_one(doc! {"tokenHash": token_hash})
                .await
                .map_err(map_err)?;
            if let Some(found) = found {
                return docs::invite_from_doc(&found, collection).map(Some);
            }
        }
        Ok(None)
    }

    /// The id names an organization invite or a platform invite; both collections are tried.
    async fn set_invite_status(&self, id: DocId, status: InviteStatus) -> StoreResult<()> {
        let update = doc! {"$set": {"status": status.as_str(), "updatedAt": date(now_ms())}};
        for collection in [INVITES, PLATFORM_INVITES] {
            let result = self
                .coll(collection)
                .update_one(doc! {"_id": oid(id)}, update.clone())
                .await
                .map_err(map_err)?;
            if result.matched_count > 0 {
                return Ok(());
            }
        }
        Err(StoreError::NotFound)
    }

    async fn pending_invites(&self, org: Option<DocId>) -> StoreResult<Vec<Invite>> {
        let collection = invites_collection(org);
        let mut filter = doc! {"status": InviteStatus::Pending.as_str()};
        if let Some(org) = org {
            filter.insert("orgId", oid(org));
        }
        let found: Vec<Document> = self
            .coll(collection)
            .find(filter)
            .sort(doc! {"createdAt": -1, "_id": -1})
            .collect_all()
            .await?;
        found
            .iter()
            .map(|d| docs::invite_from_doc(d, collection))
            .collect()
    }
}

#[async_trait]
impl SessionRecords for MongoStore {
    async fn create_session(&self, id: &str, data: &[u8], expires_at_ms: i64) -> StoreResult<bool> {
        match self
            .coll(SESSIONS)
            .insert_one(docs::session_doc(id, data, expires_at_ms))
            .await
        {
            Ok(_) => Ok(true),
            // `_id` is the session id: a duplicate means the id is taken.
            Err(e) if only_id_duplicates(&e) => Ok(false),
            Err(e) => Err(map_err(e)),
        }
    }

    async fn save_session(&self, id: &str, data: &[u8], expires_at_ms: i64) -> StoreResult<()> {
        self.coll(SESSIONS)
            .replace_one(doc! {"_id": id}, docs::session_doc(id, data, expires_at_ms))
            .upsert(true)
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn load_session(&self, id: &str, now_ms: i64) -> StoreResult<Option<Vec<u8>>> {
        // The TTL index removes expired records only when its monitor runs (about once a
        // minute), so the expiry is checked here too.
        let found = self
            .coll(SESSIONS)
            .find_one(doc! {"_id": id, "expireAt": {"$gt": date(now_ms)}})
            .projection(doc! {"data": 1})
            .await
            .map_err(map_err)?;
        found.as_ref().map(docs::session_data).transpose()
    }

    async fn delete_session(&self, id: &str) -> StoreResult<()> {
        self.coll(SESSIONS)
            .delete_one(doc! {"_id": id})
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn delete_expired_sessions(&self, now_ms: i64) -> StoreResult<u64> {
        Ok(self
            .coll(SESSIONS)
            .delete_many(doc! {"expireAt": {"$lte": date(now_ms)}})
            .await
            .map_err(map_err)?
            .deleted_count)
    }
}
