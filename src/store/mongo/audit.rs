//! The raw audit log (1.x's `rawlogevents`, plus `orgId`) and the email features' records in
//! MongoDB: `passwordresets` (token hashes only; a unique insert into `passwordresetuses`
//! arbitrates single use, since FerretDB runs updates as a read then a write),
//! `emailreportsubscriptions` and `emailsends` (the once-per-period claims). Queries only.

use super::{
    MongoStore,
    docs::{date, oid, read_id, read_int},
    errors::{CollectAll, map_err},
};
use crate::domain::{
    audit::{LogKind, LogPage, LogQuery, RawLog},
    email::{Cadence, Delivery, PasswordReset, Subscription},
    ids::DocId,
};
use crate::store::{LogStore, MailStore, StoreError, StoreResult};
use async_trait::async_trait;
use mongodb::bson::{Bson, Document, doc};

pub(super) const RAW_LOGS: &str = "rawlogevents";
pub(super) const PASSWORD_RESETS: &str = "passwordresets";
pub(super) const PASSWORD_RESET_USES: &str = "passwordresetuses";
pub(super) const EMAIL_SUBSCRIPTIONS: &str = "emailreportsubscriptions";
pub(super) const EMAIL_SENDS: &str = "emailsends";

fn opt(v: &Option<String>) -> Bson {
    v.as_ref().map_or(Bson::Null, |s| Bson::String(s.clone()))
}

fn log_doc(l: &RawLog) -> Document {
    doc! {
        "_id": oid(l.id),
        "ts": date(l.ts),
        "kind": l.kind.as_str(),
        "actionCode": opt(&l.action_code),
        "errorMessage": opt(&l.error_message),
        "errorStack": opt(&l.error_stack),
        "userId": opt(&l.user_id),
        "email": opt(&l.email),
        "projectId": opt(&l.project_id),
        "orgId": opt(&l.org_id),
        "method": opt(&l.method),
        "path": opt(&l.path),
        "status": l.status.map_or(Bson::Null, |s| Bson::Int32(i32::from(s))),
        "ip": opt(&l.ip),
    }
}

fn millis(d: &Document, field: &str) -> Option<i64> {
    match d.get(field)? {
        Bson::DateTime(t) => Some(t.timestamp_millis()),
        _ => read_int(d, field),
    }
}

fn text(d: &Document, field: &str) -> Option<String> {
    d.get_str(field).ok().map(str::to_string)
}

fn log_from_doc(d: &Document) -> StoreResult<RawLog> {
    let kind = d.get_str("kind").unwrap_or_default();
    Ok(RawLog {
        id: read_id(d, RAW_LOGS, "_id")?,
        ts: millis(d, "ts").unwrap_or_default(),
        kind: LogKind::parse(kind)
            .ok_or_else(|| StoreError::other(format!("bad kind in {RAW_LOGS}: {kind}")))?,
        action_code: text(d, "actionCode"),
        error_message: text(d, "errorMessage"),
        error_stack: text(d, "errorStack"),
        user_id: text(d, "userId"),
        email: text(d, "email"),
        project_id: text(d, "projectId"),
        org_id: text(d, "orgId"),
        method: text(d, "method"),
        path: text(d, "path"),
        status: read_int(d, "status").and_then(|s| u16::try_from(s).ok()),
        ip: text(d, "ip"),
    })
}

/// Regular-expression metacharacters escaped: the needle matches literally.
fn regex_literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for c in s.chars() {
        if "\\^$.|?*+()[]{}/-".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn filter_of(q: &LogQuery) -> Document {
    let mut f = Document::new();
    let mut and: Vec<Bson> = Vec::new();
    if let Some(kind) = q.kind {
        f.insert("kind", kind.as_str());
    }
    for (field, value) in [
        ("actionCode", &q.action_code),
        ("userId", &q.user_id),
        ("projectId", &q.project_id),
    ] {
        if let Some(v) = value {
            f.insert(field, v.as_str());
        }
    }
    if let Some(email) = &q.email {
        f.insert("email", email.to_lowercase());
    }
    let mut ts = Document::new();
    if let Some(from) = q.from {
        ts.insert("$gte", date(from));
    }
    if let Some(to) = q.to {
        ts.insert("$lte", date(to));
    }
    if !ts.is_empty() {
        f.insert("ts", ts);
    }
    if let Some(needle) = &q.contains {
        let pattern = regex_literal(needle);
        let any: Vec<Bson> = ["errorMessage", "errorStack", "path"]
            .iter()
            .map(|field| Bson::Document(doc! {*field: {"$regex": &pattern, "$options": "i"}}))
            .collect();
        and.push(Bson::Document(doc! {"$or": any}));
    }
    if let Some(scope) = &q.scope {
        let mut any = vec![Bson::Document(doc! {"orgId": &scope.org_id})];
        if !scope.project_ids.is_empty() {
            any.push(Bson::Document(
                doc! {"projectId": {"$in": scope.project_ids.clone()}},
            ));
        }
        and.push(Bson::Document(doc! {"$or": any}));
    }
    if !and.is_empty() {
        f.insert("$and", and);
    }
    f
}

#[async_trait]
impl LogStore for MongoStore {
    async fn insert_log(&self, log: &RawLog) -> StoreResult<()> {
        self.coll(RAW_LOGS)
            .insert_one(log_doc(log))
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn prune_logs(&self, keep: u64) -> StoreResult<u64> {
        // The newest entry that goes; it and everything older are deleted.
        let boundary = self
            .coll(RAW_LOGS)
            .find(doc! {})
            .sort(doc! {"ts": -1, "_id": -1})
            .skip(keep)
            .limit(1)
            .projection(doc! {"ts": 1})
            .collect_all()
            .await?;
        let Some(b) = boundary.first() else {
            return Ok(0);
        };
        let ts = b.get("ts").cloned().unwrap_or(Bson::Null);
        let id = b.get("_id").cloned().unwrap_or(Bson::Null);
        let done = self
            .coll(RAW_LOGS)
            .delete_many(doc! {"$or": [
                {"ts": {"$lt": ts.clone()}},
                {"ts": ts, "_id": {"$lte": id}},
            ]})
            .await
            .map_err(map_err)?;
        Ok(done.deleted_count)
    }

    async fn query_logs(&self, q: &LogQuery) -> StoreResult<LogPage> {
        let filter = filter_of(q);
        let total = self
            .coll(RAW_LOGS)
            .count_documents(filter.clone())
            .await
            .map_err(map_err)?;
        let docs = self
            .coll(RAW_LOGS)
            .find(filter)
            .sort(doc! {"ts": -1, "_id": -1})
            .skip(q.skip())
            .limit(i64::from(q.limit))
            .collect_all()
            .await?;
        Ok(LogPage {
            entries: docs.iter().map(log_from_doc).collect::<StoreResult<_>>()?,
            total,
        })
    }
}

fn reset_from_doc(d: &Document) -> StoreResult<PasswordReset> {
    Ok(PasswordReset {
        id: read_id(d, PASSWORD_RESETS, "_id")?,
        user_id: read_id(d, PASSWORD_RESETS, "userId")?,
        token_hash: d.get_str("tokenHash").unwrap_or_default().to_string(),
        created_at: millis(d, "createdAt").unwrap_or_default(),
        expires_at: millis(d, "expiresAt").unwrap_or_default(),
        used_at: millis(d, "usedAt"),
    })
}

fn sub_key(project: DocId, user: DocId, cadence: Cadence) -> String {
    format!(
        "{}:{}:{}",
        project.to_hex(),
        user.to_hex(),
        cadence.as_str()
    )
}

fn sub_from_doc(d: &Document) -> StoreResult<Subscription> {
    let cadence = d.get_str("cadence").unwrap_or_default();
    Ok(Subscription {
        project_id: read_id(d, EMAIL_SUBSCRIPTIONS, "projectId")?,
        user_id: read_id(d, EMAIL_SUBSCRIPTIONS, "userId")?,
        cadence: Cadence::parse(cadence).ok_or_else(|| {
            StoreError::other(format!("bad cadence in {EMAIL_SUBSCRIPTIONS}: {cadence}"))
        })?,
        // Subscriptions made before the choice existed are links.
        delivery: d
            .get_str("delivery")
            .ok()
            .and_then(Delivery::parse)
            .unwrap_or_default(),
        created_at: millis(d, "createdAt").unwrap_or_default(),
    })
}

/// `Ok(false)` for a duplicate key, `Ok(true)` when inserted.
async fn insert_unique(store: &MongoStore, coll: &str, d: Document) -> StoreResult<bool> {
    match store.coll(coll).insert_one(d).await.map_err(map_err) {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

#[async_trait]
impl MailStore for MongoStore {
    async fn insert_password_reset(&self, r: &PasswordReset) -> StoreResult<()> {
        self.coll(PASSWORD_RESETS)
            .insert_one(doc! {
                "_id": oid(r.id),
                "userId": oid(r.user_id),
                "tokenHash": &r.token_hash,
                "createdAt": date(r.created_at),
                "expiresAt": date(r.expires_at),
                "usedAt": r.used_at.map_or(Bson::Null, |t| Bson::DateTime(date(t))),
            })
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn password_reset(&self, token_hash: &str) -> StoreResult<Option<PasswordReset>> {
        self.coll(PASSWORD_RESETS)
            .find_one(doc! {"tokenHash": token_hash})
            .await
            .map_err(map_err)?
            .as_ref()
            .map(reset_from_doc)
            .transpose()
    }

    async fn use_password_reset(
        &self,
        token_hash: &str,
        now: i64,
    ) -> StoreResult<Option<PasswordReset>> {
        let Some(mut reset) = self.password_reset(token_hash).await? else {
            return Ok(None);
        };
        if reset.used_at.is_some() || reset.expires_at <= now {
            return Ok(None);
        }
        // The unique `_id` decides which of two concurrent uses wins.
        let first = insert_unique(
            self,
            PASSWORD_RESET_USES,
            doc! {"_id": token_hash, "usedAt": date(now)},
        )
        .await?;
        if !first {
            return Ok(None);
        }
        self.coll(PASSWORD_RESETS)
            .update_one(
                doc! {"_id": oid(reset.id)},
                doc! {"$set": {"usedAt": date(now)}},
            )
            .await
            .map_err(map_err)?;
        reset.used_at = Some(now);
        Ok(Some(reset))
    }

    async fn subscribe(&self, sub: &Subscription) -> StoreResult<()> {
        let key = sub_key(sub.project_id, sub.user_id, sub.cadence);
        let inserted = insert_unique(
            self,
            EMAIL_SUBSCRIPTIONS,
            doc! {
                "_id": key.clone(),
                "projectId": oid(sub.project_id),
                "userId": oid(sub.user_id),
                "cadence": sub.cadence.as_str(),
                "delivery": sub.delivery.as_str(),
                "createdAt": date(sub.created_at),
            },
        )
        .await?;
        if !inserted {
            // Already subscribed: only the delivery changes.
            self.coll(EMAIL_SUBSCRIPTIONS)
                .update_one(
                    doc! {"_id": key},
                    doc! {"$set": {"delivery": sub.delivery.as_str()}},
                )
                .await
                .map_err(map_err)?;
        }
        Ok(())
    }

    async fn unsubscribe(&self, project: DocId, user: DocId, cadence: Cadence) -> StoreResult<()> {
        self.coll(EMAIL_SUBSCRIPTIONS)
            .delete_one(doc! {"_id": sub_key(project, user, cadence)})
            .await
            .map_err(map_err)?;
        Ok(())
    }

    async fn subscriptions_of(
        &self,
        project: DocId,
        user: DocId,
    ) -> StoreResult<Vec<Subscription>> {
        let docs = self
            .coll(EMAIL_SUBSCRIPTIONS)
            .find(doc! {"projectId": oid(project), "userId": oid(user)})
            .collect_all()
            .await?;
        let mut subs = docs
            .iter()
            .map(sub_from_doc)
            .collect::<StoreResult<Vec<_>>>()?;
        subs.sort_by_key(|s| s.cadence);
        Ok(subs)
    }

    async fn subscribers(&self, cadence: Cadence) -> StoreResult<Vec<Subscription>> {
        let docs = self
            .coll(EMAIL_SUBSCRIPTIONS)
            .find(doc! {"cadence": cadence.as_str()})
            .sort(doc! {"createdAt": 1, "_id": 1})
            .collect_all()
            .await?;
        docs.iter().map(sub_from_doc).collect()
    }

    async fn claim_send(&self, key: &str, now: i64) -> StoreResult<bool> {
        insert_unique(self, EMAIL_SENDS, doc! {"_id": key, "claimedAt": date(now)}).await
    }

    async fn release_send(&self, key: &str) -> StoreResult<()> {
        self.coll(EMAIL_SENDS)
            .delete_one(doc! {"_id": key})
            .await
            .map_err(map_err)?;
        Ok(())
    }
}
