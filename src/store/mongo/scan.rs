//! Reading raw documents for the analytics engine: a streamed `find` with a projection
//! ([`MongoStore::each`]) and typed field readers. MongoDB and FerretDB 1.24 share `$match` and
//! `$group` with `$sum`, but not `$dateToString`, `$first`/`$min`/`$max`/`$avg`/`$push`,
//! `$ifNull`, `$cond`, `$objectToArray` or `$facet`, so every figure is folded in Rust by the
//! engine (`analytics`), the same code as SQLite's.

use super::{MongoStore, docs::collection_of};
use crate::domain::{analytics::Dimension, model::Channel};
use crate::store::StoreResult;
use mongodb::bson::{Bson, Document};

impl MongoStore {
    /// The `fields` (and `_id`) of every document of `channel` matching `filter`, unordered,
    /// streamed: each document is handed to `visit` as its batch arrives, so a scan of millions
    /// of documents never holds them all.
    pub(super) async fn each(
        &self,
        channel: Channel,
        filter: Document,
        fields: &[&str],
        mut visit: impl FnMut(&Document) + Send,
    ) -> StoreResult<()> {
        use futures::TryStreamExt;
        let mut projection = Document::new();
        for field in fields {
            projection.insert(*field, 1);
        }
        let mut cursor = self
            .coll(collection_of(channel))
            .find(filter)
            .projection(projection)
            .await
            .map_err(super::errors::map_err)?;
        while let Some(d) = cursor.try_next().await.map_err(super::errors::map_err)? {
            visit(&d);
        }
        Ok(())
    }
}

/// A date field as epoch milliseconds.
pub(super) fn millis(d: &Document, field: &str) -> Option<i64> {
    match d.get(field)? {
        Bson::DateTime(t) => Some(t.timestamp_millis()),
        _ => None,
    }
}

/// A string field (`None` when missing, null or another type).
pub(super) fn text<'a>(d: &'a Document, field: &str) -> Option<&'a str> {
    match d.get(field)? {
        Bson::String(s) => Some(s),
        _ => None,
    }
}

/// A numeric field whatever its BSON number type (Mongoose stores Int32 or Double).
pub(super) fn number(d: &Document, field: &str) -> Option<f64> {
    match d.get(field)? {
        Bson::Double(f) => Some(*f),
        Bson::Int32(i) => Some(f64::from(*i)),
        Bson::Int64(i) => Some(*i as f64),
        _ => None,
    }
}

/// The stored page-view field behind each breakdown dimension.
pub(super) const BREAKDOWN_FIELDS: [(Dimension, &str); 8] = [
    (Dimension::Referrer, "referrer"),
    (Dimension::UtmSource, "utmSource"),
    (Dimension::UtmMedium, "utmMedium"),
    (Dimension::UtmCampaign, "utmCampaign"),
    (Dimension::Country, "country"),
    (Dimension::Browser, "browser"),
    (Dimension::Os, "os"),
    (Dimension::DeviceType, "deviceType"),
];
