//! Summary queries as MongoDB aggregation pipelines (the same figures as the SQLite queries;
//! pinned by the shared contract suite). Days are `$dateToString` in UTC.

use super::{
    MongoStore,
    docs::{collection_of, date, oid, read_int},
    errors::{CollectAll, map_err},
};
use crate::domain::analytics::{Breakdowns, Dimension};
use crate::domain::{
    analytics::{
        DayCount, ErrorsSummary, EventCount, EventsSummary, METRICS, MetricsDay, PageCount,
        PageViewsSummary, Percentiles, PerformanceFigures, TimeRange,
    },
    ids::DocId,
    model::Channel,
};
use crate::store::StoreResult;
use mongodb::bson::{Bson, Document, doc};
use std::collections::HashMap;

fn in_range(project: DocId, range: TimeRange) -> Document {
    doc! {"projectId": oid(project), "timestamp": {"$gte": date(range.start_ms), "$lte": date(range.end_ms)}}
}

fn day_of_timestamp() -> Document {
    doc! {"$dateToString": {"format": "%Y-%m-%d", "date": "$timestamp", "timezone": "UTC"}}
}

fn count_of(d: &Document, field: &str) -> u64 {
    u64::try_from(read_int(d, field).unwrap_or(0)).unwrap_or(0)
}

fn float_of(d: &Document, field: &str) -> Option<f64> {
    match d.get(field) {
        Some(Bson::Double(f)) => Some(*f),
        Some(Bson::Int32(i)) => Some(f64::from(*i)),
        Some(Bson::Int64(i)) => Some(*i as f64),
        _ => None,
    }
}

impl MongoStore {
    async fn aggregate(
        &self,
        channel: Channel,
        pipeline: Vec<Document>,
    ) -> StoreResult<Vec<Document>> {
        self.coll(collection_of(channel))
            .aggregate(pipeline)
            .collect_all()
            .await
    }

    async fn by_day(
        &self,
        channel: Channel,
        project: DocId,
        range: TimeRange,
    ) -> StoreResult<Vec<DayCount>> {
        let rows = self
            .aggregate(
                channel,
                vec![
                    doc! {"$match": in_range(project, range)},
                    doc! {"$group": {"_id": day_of_timestamp(), "count": {"$sum": 1}}},
                    doc! {"$sort": {"_id": 1}},
                ],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| DayCount {
                date: r.get_str("_id").unwrap_or_default().to_string(),
                count: count_of(r, "count"),
            })
            .collect())
    }

    pub(super) async fn stats_pageviews(
        &self,
        project: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<PageViewsSummary> {
        let totals = self
            .aggregate(
                Channel::Pageviews,
                vec![
                    doc! {"$match": in_range(project, range)},
                    // A missing clientId groups as null: one more "visitor", as SuperInsights 1.x counted.
                    doc! {"$group": {"_id": "$clientId"}},
                    doc! {"$count": "visitors"},
                ],
            )
            .await?;
        let total = self
            .coll(collection_of(Channel::Pageviews))
            .count_documents(in_range(project, range))
            .await
            .map_err(map_err)?;
        let top_pages = self
            .aggregate(
                Channel::Pageviews,
                vec![
                    doc! {"$match": in_range(project, range)},
                    doc! {"$group": {"_id": "$url", "views": {"$sum": 1}}},
                    doc! {"$sort": {"views": -1, "_id": 1}},
                    doc! {"$limit": i64::try_from(top).unwrap_or(i64::MAX)},
                ],
            )
            .await?
            .iter()
            .map(|r| PageCount {
                url: r.get_str("_id").unwrap_or_default().to_string(),
                views: count_of(r, "views"),
            })
            .collect();
        Ok(PageViewsSummary {
            total_views: total,
            unique_visitors: totals.first().map(|d| count_of(d, "visitors")).unwrap_or(0),
            views_by_day: self.by_day(Channel::Pageviews, project, range).await?,
            top_pages,
        })
    }

    pub(super) async fn stats_events(
        &self,
        project: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<EventsSummary> {
        let names = self
            .aggregate(
                Channel::Events,
                vec![
                    doc! {"$match": in_range(project, range)},
                    doc! {"$group": {"_id": "$eventName", "count": {"$sum": 1}}},
                    doc! {"$sort": {"count": -1, "_id": 1}},
                ],
            )
            .await?;
        let total = names.iter().map(|r| count_of(r, "count")).sum();
        let top_events = names
            .iter()
            .take(top)
            .map(|r| EventCount {
                event_name: r.get_str("_id").unwrap_or_default().to_string(),
                count: count_of(r, "count"),
            })
            .collect();
        Ok(EventsSummary {
            total_events: total,
            top_events,
            events_by_day: self.by_day(Channel::Events, project, range).await?,
        })
    }

    pub(super) async fn stats_errors(
        &self,
        project: DocId,
        range: TimeRange,
    ) -> StoreResult<ErrorsSummary> {
        let total = self
            .coll(collection_of(Channel::Errors))
            .count_documents(in_range(project, range))
            .await
            .map_err(map_err)?;
        let fingerprints = self
            .aggregate(
                Channel::Errors,
                vec![
                    doc! {"$match": in_range(project, range)},
                    doc! {"$group": {"_id": "$fingerprint"}},
                    doc! {"$count": "n"},
                ],
            )
            .await?;
        Ok(ErrorsSummary {
            total_errors: total,
            unique_fingerprints: fingerprints.first().map(|d| count_of(d, "n")).unwrap_or(0),
            errors_by_day: self.by_day(Channel::Errors, project, range).await?,
        })
    }

    pub(super) async fn stats_performance(
        &self,
        project: DocId,
        range: TimeRange,
    ) -> StoreResult<PerformanceFigures> {
        let coll = self.coll(collection_of(Channel::Performance));
        let total = coll
            .count_documents(in_range(project, range))
            .await
            .map_err(map_err)?;
        let mut percentiles = Vec::new();
        for metric in METRICS {
            let mut filter = in_range(project, range);
            filter.insert(metric, doc! {"$type": "number"});
            let n = coll
                .count_documents(filter.clone())
                .await
                .map_err(map_err)?;
            let mut at = Percentiles::default();
            for (p, slot) in [(0.5, &mut at.p50), (0.75, &mut at.p75), (0.95, &mut at.p95)] {
                if n == 0 {
                    continue;
                }
                let skip = (p * (n - 1) as f64).floor() as u64;
                let found = coll
                    .find_one(filter.clone())
                    .sort(doc! {metric: 1})
                    .skip(skip)
                    .projection(doc! {metric: 1})
                    .await
                    .map_err(map_err)?;
                *slot = found.as_ref().and_then(|d| float_of(d, metric));
            }
            percentiles.push((metric.to_string(), at));
        }
        let days = self
            .aggregate(
                Channel::Performance,
                vec![
                    doc! {"$match": in_range(project, range)},
                    doc! {"$group": {
                        "_id": day_of_timestamp(),
                        "lcp": {"$avg": "$lcp"}, "cls": {"$avg": "$cls"}, "fid": {"$avg": "$fid"},
                        "ttfb": {"$avg": "$ttfb"}, "inp": {"$avg": "$inp"},
                    }},
                    doc! {"$sort": {"_id": 1}},
                ],
            )
            .await?;
        let metrics_by_day = days
            .iter()
            .map(|r| MetricsDay {
                date: r.get_str("_id").unwrap_or_default().to_string(),
                lcp: float_of(r, "lcp"),
                cls: float_of(r, "cls"),
                fid: float_of(r, "fid"),
                ttfb: float_of(r, "ttfb"),
                inp: float_of(r, "inp"),
            })
            .collect();
        Ok(PerformanceFigures {
            percentiles,
            metrics_by_day,
            total_measurements: total,
            implausible_values: 0,
        })
    }
}

impl MongoStore {
    /// Page-view breakdowns: one `$facet` with a `$group` per stored field; the raw values are
    /// then mapped (referrer → host, missing → placeholder) and ranked by the shared domain code,
    /// so both backends label and order alike.
    pub(super) async fn stats_breakdowns(
        &self,
        project: DocId,
        range: TimeRange,
        top: usize,
    ) -> StoreResult<Breakdowns> {
        let fields = [
            (Dimension::Referrer, "$referrer"),
            (Dimension::UtmSource, "$utmSource"),
            (Dimension::UtmMedium, "$utmMedium"),
            (Dimension::UtmCampaign, "$utmCampaign"),
            (Dimension::Country, "$country"),
            (Dimension::Browser, "$browser"),
            (Dimension::Os, "$os"),
            (Dimension::DeviceType, "$deviceType"),
        ];
        let mut facets = Document::new();
        for (i, (_, field)) in fields.iter().enumerate() {
            facets.insert(
                format!("d{i}"),
                vec![doc! {"$group": {"_id": *field, "count": {"$sum": 1}}}],
            );
        }
        let rows = self
            .aggregate(
                Channel::Pageviews,
                vec![
                    doc! {"$match": in_range(project, range)},
                    doc! {"$facet": facets},
                ],
            )
            .await?;
        let mut out = Breakdowns::default();
        let Some(faceted) = rows.first() else {
            return Ok(out);
        };
        for (i, (dim, _)) in fields.iter().enumerate() {
            let mut counts: HashMap<String, u64> = HashMap::new();
            for group in faceted
                .get_array(format!("d{i}"))
                .map_err(|e| crate::store::StoreError::Other(format!("breakdown facet: {e}")))?
            {
                let Bson::Document(group) = group else {
                    continue;
                };
                let raw = match group.get("_id") {
                    Some(Bson::String(s)) => Some(s.as_str()),
                    _ => None,
                };
                *counts.entry(dim.value_of(raw)).or_default() += count_of(group, "count");
            }
            *out.of_mut(*dim) = Breakdowns::rank(counts, top);
        }
        Ok(out)
    }
}
