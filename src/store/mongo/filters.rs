//! One builder for the `$match` documents of the drill-down reports, the diagnostics and the AI
//! sample documents: the project and time bounds, exact filters and the
//! segment fields of reference §4.7 per collection. Conditions on distinct fields stay
//! top-level (so the documents read as before and indexes apply); a second condition on a field
//! already constrained goes into `$and`, so both apply, as in the SQL builder.

use super::docs::{date, oid};
use crate::domain::{analytics::TimeRange, ids::DocId, model::Channel, segment::SegmentFilters};
use mongodb::bson::{Bson, Document, doc};

/// A `$match` (or `find`) filter under construction.
#[derive(Clone, Debug)]
pub(super) struct Match {
    doc: Document,
    and: Vec<Document>,
}

impl Match {
    /// `projectId` and `timestamp` within the range (both ends included).
    pub(super) fn scope(project: DocId, range: TimeRange) -> Self {
        Self {
            doc: doc! {
                "projectId": oid(project),
                "timestamp": {"$gte": date(range.start_ms), "$lte": date(range.end_ms)},
            },
            and: Vec::new(),
        }
    }

    /// `field` satisfies `condition` (a value for equality, or an operator document).
    pub(super) fn field(
        &mut self,
        field: impl Into<String>,
        condition: impl Into<Bson>,
    ) -> &mut Self {
        let field = field.into();
        let condition = condition.into();
        if self.doc.contains_key(&field) {
            self.and.push(doc! {field: condition});
        } else {
            self.doc.insert(field, condition);
        }
        self
    }

    /// `field` equals `value` when a value is given.
    pub(super) fn eq(&mut self, field: &str, value: Option<&str>) -> &mut Self {
        if let Some(value) = value {
            self.field(field, value);
        }
        self
    }

    /// The segment fields that apply to the collection of `channel` (reference §4.7).
    pub(super) fn segment(&mut self, channel: Channel, s: &SegmentFilters) -> &mut Self {
        let object = match channel {
            Channel::Pageviews => {
                for (field, value) in [
                    ("clientId", &s.client_id),
                    ("deviceType", &s.device_type),
                    ("browser", &s.browser),
                    ("os", &s.os),
                    ("utmSource", &s.utm_source),
                    ("utmMedium", &s.utm_medium),
                    ("utmCampaign", &s.utm_campaign),
                ] {
                    self.eq(field, value.as_deref());
                }
                return self;
            }
            Channel::Errors => {
                // The error's own id fields (what the SDK sends), or the same key in `context`
                // (where 1.x looked, and where server-side senders may have put it).
                for (field, value) in [("clientId", &s.client_id), ("userId", &s.user_id)] {
                    if let Some(value) = value {
                        self.and.push(doc! {"$or": [
                            {field: value.as_str()},
                            {format!("context.{field}"): value.as_str()},
                        ]});
                    }
                }
                for (key, value) in &s.meta {
                    self.field(format!("context.{key}"), value.as_str());
                }
                return self;
            }
            Channel::Events | Channel::Performance => {
                self.eq("clientId", s.client_id.as_deref());
                "properties"
            }
        };
        self.eq(&format!("{object}.userId"), s.user_id.as_deref());
        for (key, value) in &s.meta {
            self.field(format!("{object}.{key}"), value.as_str());
        }
        self
    }

    /// The finished filter document.
    pub(super) fn build(&self) -> Document {
        let mut doc = self.doc.clone();
        if !self.and.is_empty() {
            doc.insert("$and", self.and.clone());
        }
        doc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope() -> Match {
        Match::scope(
            DocId::new(),
            TimeRange {
                start_ms: 0,
                end_ms: 1,
            },
        )
    }

    #[test]
    fn segments_map_onto_each_collection() {
        let s = SegmentFilters {
            client_id: Some("c1".into()),
            user_id: Some("u1".into()),
            browser: Some("Safari".into()),
            meta: [("plan".to_string(), "pro".to_string())].into(),
            ..Default::default()
        };
        let e = scope().segment(Channel::Errors, &s).build();
        assert_eq!(
            e.get_array("$and").unwrap(),
            &vec![
                Bson::Document(doc! {"$or": [{"clientId": "c1"}, {"context.clientId": "c1"}]}),
                Bson::Document(doc! {"$or": [{"userId": "u1"}, {"context.userId": "u1"}]}),
            ]
        );
        assert_eq!(e.get_str("context.plan").unwrap(), "pro");
        assert!(e.get("browser").is_none());
        let p = scope().segment(Channel::Performance, &s).build();
        assert_eq!(p, scope_with(&p, Channel::Events, &s));
        assert_eq!(p.get_str("clientId").unwrap(), "c1");
        assert_eq!(p.get_str("properties.userId").unwrap(), "u1");
        let v = scope().segment(Channel::Pageviews, &s).build();
        assert_eq!(v.get_str("browser").unwrap(), "Safari");
        assert!(v.get("properties.userId").is_none() && v.get("properties.plan").is_none());
    }

    /// The same segment on another channel, under the bounds of `like`.
    fn scope_with(like: &Document, channel: Channel, s: &SegmentFilters) -> Document {
        let mut m = scope();
        m.doc
            .insert("projectId", like.get("projectId").unwrap().clone());
        m.segment(channel, s).build()
    }

    #[test]
    fn a_second_condition_on_a_field_is_anded() {
        let mut m = scope();
        m.eq("deviceType", Some("mobile"))
            .eq("deviceType", Some("desktop"))
            .eq("os", None);
        let d = m.build();
        assert_eq!(d.get_str("deviceType").unwrap(), "mobile");
        assert_eq!(
            d.get_array("$and").unwrap(),
            &vec![Bson::Document(doc! {"deviceType": "desktop"})]
        );
        assert!(d.get("os").is_none());
    }
}
