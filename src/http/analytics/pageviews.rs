//! The page-views page (reference §4.3): totals, unique visitors, views per day and the top 10
//! pages with their own uniques, filtered by device, a literal URL (or path) prefix, country,
//! referrer host and the page-view segment fields (case-insensitive). HTML for browsers, JSON `{timeframe,totalViews,uniqueVisitors,topPages,
//! viewsByDay}` for clients that accept only JSON (the `si` CLI). Thin: parse, call
//! `services::drill_downs`, render.

use super::{
    AnalyticsAccess, PageContext, checked, csv_href, csv_table, json_if_wanted, page_context,
    query_string, script_json, span_of, wants_csv,
};
use crate::{
    domain::params::View,
    error::AppError,
    services::{
        dashboard::DashboardFilters,
        drill_downs::{self, PageViewsQuery, PageViewsView},
    },
    state::AppState,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Router,
    extract::{Query, State},
    http::HeaderMap,
    response::{IntoResponse, Response},
    routing::get,
};

pub fn routes() -> Router<AppState> {
    Router::new().route("/pageviews", get(show_pageviews))
}

/// The device selector's (value, label) pairs; `""` means all.
const DEVICES: [(&str, &str); 4] = [
    ("", "All devices"),
    ("desktop", "Desktop"),
    ("mobile", "Mobile"),
    ("tablet", "Tablet"),
];

#[derive(Template, WebTemplate)]
#[template(path = "analytics/pageviews.html")]
struct PageViewsPage {
    ctx: PageContext,
    devices: &'static [(&'static str, &'static str)],
    device: String,
    url_prefix: String,
    /// (query name, label, current value) of the segment fields offered.
    segment_fields: Vec<(&'static str, &'static str, String)>,
    /// Whether a segment field is set (the segment section starts open).
    segment_open: bool,
    avg_views_per_visitor: String,
    /// The top pages as CSV, with the page's query.
    csv_href: String,
    /// The page's query without its URL prefix, for the rows' links.
    row_query: Vec<(String, String)>,
    /// (query name, existing values) for the fields' datalists.
    suggestions: Vec<(&'static str, Vec<String>)>,
    view: PageViewsView,
    /// The view as JSON for the chart, escaped for a `<script type="application/json">` block.
    data_json: String,
}
page_context!(PageViewsPage);

impl PageViewsPage {
    /// The existing values of field `name` (none for fields without suggestions).
    fn suggestions_of(&self, name: &str) -> &[String] {
        (self.suggestions.iter())
            .find(|(n, _)| *n == name)
            .map_or(&[], |(_, v)| v.as_slice())
    }

    /// This page restricted to the URLs starting with `url` (a row's link).
    fn filter_href(&self, url: &str) -> String {
        let mut pairs: Vec<(&str, String)> = (self.row_query.iter())
            .map(|(k, v)| (k.as_str(), v.clone()))
            .collect();
        pairs.push(("urlPrefix", url.to_string()));
        format!("{}/pageviews{}", self.base, query_string(&pairs))
    }
}

/// `GET {base}/pageviews`.
async fn show_pageviews(
    State(state): State<crate::state::ViewState>,
    access: AnalyticsAccess,
    headers: HeaderMap,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    checked(View::Pageviews, &pairs)?;
    let mut query = PageViewsQuery::parse(&pairs);
    query.days = span_of(&pairs, state.dashboards.now_ms())?.days;
    let view =
        drill_downs::pageviews(&state.stores, &state.dashboards, access.project.id, &query).await?;
    if wants_csv(&pairs) {
        let rows = view.report.top_pages.iter().map(|p| {
            vec![
                p.url.clone(),
                p.views.to_string(),
                p.unique_visitors.to_string(),
            ]
        });
        let header = ["Page", "Views", "Unique visitors"];
        return Ok(csv_table(&access, query.span(), "pages", &header, rows));
    }
    if let Some(json) = json_if_wanted(&headers, &view) {
        return Ok(json);
    }
    let suggestions = drill_downs::pageview_suggestions(
        &state.stores,
        &state.dashboards,
        access.project.id,
        query.span(),
    )
    .await?;
    let segment = &query.filters.segment;
    let value = |v: &Option<String>| v.clone().unwrap_or_default();
    let mut ctx = access.page("pageviews", query.span()).with_query(&pairs);
    ctx.carried = DashboardFilters {
        pageviews: query.filters.clone(),
        ..Default::default()
    };
    let page = PageViewsPage {
        ctx,
        devices: &DEVICES,
        device: segment
            .device_type
            .clone()
            .unwrap_or_default()
            .to_lowercase(),
        url_prefix: query.filters.url_prefix.clone().unwrap_or_default(),
        segment_fields: vec![
            ("clientId", "Client id", value(&segment.client_id)),
            ("country", "Country", value(&query.filters.country)),
            ("referrer", "Referrer host", value(&query.filters.referrer)),
            ("browser", "Browser", value(&segment.browser)),
            ("os", "OS", value(&segment.os)),
            ("utmSource", "UTM source", value(&segment.utm_source)),
            ("utmMedium", "UTM medium", value(&segment.utm_medium)),
            ("utmCampaign", "UTM campaign", value(&segment.utm_campaign)),
        ],
        segment_open: !segment.is_empty()
            || query.filters.country.is_some()
            || query.filters.referrer.is_some(),
        avg_views_per_visitor: view.avg_views_per_visitor(),
        csv_href: csv_href(&access.base, "pageviews", &pairs),
        suggestions,
        row_query: pairs
            .iter()
            .filter(|(k, v)| k != "urlPrefix" && k != "format" && !v.trim().is_empty())
            .cloned()
            .collect(),
        data_json: script_json(&view),
        view,
    };
    Ok(page.into_response())
}
