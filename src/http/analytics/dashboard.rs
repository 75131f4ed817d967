//! The dashboard page and its data route, filtered by clicking any table row: every row is a
//! link to the same dashboard with one more filter in the query string (so filters are
//! shareable, survive reloads and the back button, and work on public links and without
//! JavaScript); active filters show as chips that link to the query without them. The errors
//! table lists error groups (by signature): a row filters the dashboard's errors by its group
//! (`signature=`) and links to the errors page filtered the same way. Every table
//! expands to [`BREAKDOWN_LIST`] rows with percentages and bars, and downloads as CSV
//! (`dashboard/data?format=csv&table=…`, [`crate::domain::csv`]). Thin: check and parse the query, call the
//! cached service, shape rows for the template.

use super::{
    AnalyticsAccess, PageContext, checked, csv_response, page_context, query_string, script_json,
    timeframe_of,
};
use crate::{
    domain::{
        analytics::{BreakdownRow, DayRange, Span, Timeframe, utc_day},
        csv,
        params::View,
    },
    error::AppError,
    services::dashboard::{Dashboard, DashboardFilters, FILTER_PARAMS},
    state::{AppState, ViewState},
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    extract::{Query, State},
    response::{IntoResponse, Response},
    routing::get,
};
use serde_json::json;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/dashboard", get(show_dashboard))
        .route("/dashboard/data", get(dashboard_data))
}

/// Rows a table shows before it is expanded.
const COLLAPSED_ROWS: usize = 5;

/// The dashboard's tables: (table name and filter parameter, title, first column's heading).
/// The table name is the key of its rows in `breakdowns` and the `table=` of its CSV.
const TABLES: [(&str, &str, &str, &str); 12] = [
    ("page", "urlPrefix", "Top pages", "Page"),
    ("event", "eventName", "Top events", "Event"),
    ("entryPage", "entryPage", "Entry pages", "Entry page"),
    ("exitPage", "exitPage", "Exit pages", "Exit page"),
    ("referrer", "referrer", "Referrers", "Referrer"),
    ("utmSource", "utmSource", "UTM source", "Source"),
    ("utmMedium", "utmMedium", "UTM medium", "Medium"),
    ("utmCampaign", "utmCampaign", "UTM campaign", "Campaign"),
    ("country", "country", "Countries", "Country"),
    ("browser", "browser", "Browsers", "Browser"),
    ("os", "os", "Operating systems", "OS"),
    ("deviceType", "deviceType", "Device types", "Device"),
];

/// The errors table: error groups by signature, filtered by `signature`.
const ERROR_TABLE: (&str, &str, &str, &str) = ("error", "signature", "Error groups", "Error");

/// The rows of table `name` in `data`.
fn rows_of<'a>(data: &'a Dashboard, name: &str) -> &'a [BreakdownRow] {
    let b = &data.breakdowns;
    match name {
        "page" => &b.page,
        "event" => &b.event,
        "entryPage" => &b.entry_page,
        "exitPage" => &b.exit_page,
        "referrer" => &b.referrer,
        "utmSource" => &b.utm_source,
        "utmMedium" => &b.utm_medium,
        "utmCampaign" => &b.utm_campaign,
        "country" => &b.country,
        "browser" => &b.browser,
        "os" => &b.os,
        _ => &b.device_type,
    }
}

/// The total a table's percentages are of: events for the events table, visits for the entry
/// and exit pages, page views otherwise.
fn total_of(data: &Dashboard, name: &str) -> u64 {
    match name {
        "event" => data.events.total_events,
        "entryPage" | "exitPage" => data.visits.visits,
        _ => data.page_views.total_views,
    }
}

/// The dashboard, its filters and timeframe, from a checked query, through the cache.
async fn dashboard_of(
    state: &ViewState,
    access: &AnalyticsAccess,
    query: &[(String, String)],
) -> Result<(Timeframe, DashboardFilters, Dashboard), AppError> {
    checked(View::Dashboard, query)?;
    let timeframe = timeframe_of(query);
    let mut filters = DashboardFilters::parse(query);
    filters.range = DayRange::parse(
        param(query, "from"),
        param(query, "to"),
        state.dashboards.now_ms(),
    )
    .map_err(crate::domain::params::BadParam::from)?;
    let data = crate::services::dashboard::cached(
        &state.dashboards,
        &state.stores,
        access.project.id,
        timeframe,
        &filters,
    )
    .await?;
    Ok((timeframe, filters, data))
}

fn param<'a>(query: &'a [(String, String)], name: &str) -> Option<&'a str> {
    query
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One table as CSV (`value,count,percent`; the error groups with their signature too), named
/// after the project and table.
fn csv_download(access: &AnalyticsAccess, data: &Dashboard, table: &str) -> Response {
    let name = format!(
        "{}-{}-{table}.csv",
        access.project.name,
        data.timeframe.as_str()
    );
    if table == ERROR_TABLE.0 {
        let total = data.errors.summary.total_errors;
        let mut out = csv::Writer::new(&[ERROR_TABLE.3, "Signature", "Count", "Percent"]);
        for g in &data.errors.top_groups {
            let count = g.count.to_string();
            out.row(&[&g.message, &g.signature, &count, &percent(g.count, total)]);
        }
        return csv_response(&name, out.finish());
    }
    let (_, _, _, heading) = TABLES
        .iter()
        .find(|t| t.0 == table)
        .copied()
        .unwrap_or(TABLES[0]);
    let total = total_of(data, table);
    let mut out = csv::Writer::new(&[heading, "Count", "Percent"]);
    for r in rows_of(data, table) {
        out.row(&[&r.value, &r.count.to_string(), &percent(r.count, total)]);
    }
    csv_response(&name, out.finish())
}

/// SuperInsights 1.x `GET …/dashboard/data?timeframe=…`: JSON,
/// `{success: true, data: {timeframe, pageViews, events, errors, performance, …}}`, the
/// filters of the dashboard applied; with `format=csv&table=…` one table as CSV.
async fn dashboard_data(
    State(state): State<ViewState>,
    access: AnalyticsAccess,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let (_, _, data) = dashboard_of(&state, &access, &query).await?;
    if param(&query, "format") == Some("csv") {
        let table = param(&query, "table").unwrap_or("page");
        return Ok(csv_download(&access, &data, table));
    }
    Ok(Json(json!({"success": true, "data": data})).into_response())
}

/// An active filter: what it is, its value, and the link without it.
struct Chip {
    label: &'static str,
    value: String,
    remove_href: String,
}

/// One row of a table: its value links to the dashboard filtered by it.
struct RowView {
    value: String,
    count: u64,
    percent: String,
    /// The bar's width class (`w0` … `w100`, 5 % steps).
    bar: u8,
    href: String,
    /// The errors table's link to the errors page filtered by the row's group.
    detail_href: Option<String>,
    /// Shown only once the table is expanded.
    extra: bool,
}

impl RowView {
    /// Row `index` of a table whose rows add up to `total`, linking to `href`.
    fn new(index: usize, value: &str, count: u64, total: u64, href: String) -> Self {
        Self {
            value: value.to_string(),
            count,
            percent: percent(count, total),
            bar: bar_step(count, total),
            href,
            detail_href: None,
            extra: index >= COLLAPSED_ROWS,
        }
    }
}

/// One table of the dashboard.
struct TableView {
    name: &'static str,
    param: &'static str,
    title: &'static str,
    heading: &'static str,
    rows: Vec<RowView>,
    csv_href: String,
    /// The filter on this table's field is set (its rows are the filtered value only).
    active: bool,
}

/// How a key figure moved since the previous period: an arrow (hidden from screen readers) and
/// words that say the direction, so neither colour nor the arrow alone carries it.
struct Delta {
    arrow: &'static str,
    text: String,
    /// `up`, `down` or `flat`, plus `good`/`bad` where a direction is (errors up is bad).
    class: &'static str,
}

/// The change from `before` to `now`, in percent (or in points for a score).
fn delta(now: Option<u64>, before: Option<u64>, points: bool, up_is_bad: bool) -> Delta {
    let (Some(now), Some(before)) = (now, before) else {
        return Delta {
            arrow: "",
            text: "nothing to compare with the previous period".into(),
            class: "flat",
        };
    };
    if now == before {
        return Delta {
            arrow: "→",
            text: "no change from the previous period".into(),
            class: "flat",
        };
    }
    let up = now > before;
    let diff = now.abs_diff(before);
    let word = if up { "up" } else { "down" };
    let text = if points {
        format!("{word} {diff} points from {before} in the previous period")
    } else if before == 0 {
        format!("{word} from 0 in the previous period")
    } else {
        let pct = (diff as f64 * 100.0 / before as f64).round();
        format!("{word} {pct}% from {before} in the previous period")
    };
    Delta {
        arrow: if up { "▲" } else { "▼" },
        text,
        class: match (up, up_is_bad) {
            (true, false) => "up good",
            (true, true) => "up bad",
            (false, false) => "down bad",
            (false, true) => "down good",
        },
    }
}

/// A figure that exists only with visits, or a dash.
fn shown(v: Option<f64>, text: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "—".into(), text)
}

/// A mean visit duration for people: `45 s`, `3 min 5 s`.
fn duration_text(ms: f64) -> String {
    let s = (ms / 1000.0).round() as u64;
    if s < 60 {
        format!("{s} s")
    } else {
        format!("{} min {} s", s / 60, s % 60)
    }
}

/// How a percentage moved, in points (rounded to whole points).
fn rate_delta(now: Option<f64>, before: Option<f64>, up_is_bad: bool) -> Delta {
    let round = |v: Option<f64>| v.map(|v| v.round() as u64);
    let mut d = delta(round(now), round(before), true, up_is_bad);
    if let (Some(b), true) = (round(before), d.class != "flat") {
        d.text = d
            .text
            .replace(&format!("from {b} "), &format!("from {b}% "));
    }
    d
}

/// How a ratio (duration, views per visit) moved, in percent, with the previous value as
/// `text` writes it.
fn ratio_delta(now: Option<f64>, before: Option<f64>, text: impl Fn(f64) -> String) -> Delta {
    let (Some(now), Some(before)) = (now, before) else {
        return delta(None, None, false, false);
    };
    if text(now) == text(before) {
        return delta(Some(0), Some(0), false, false);
    }
    let up = now > before;
    let word = if up { "up" } else { "down" };
    let text = if before == 0.0 {
        format!("{word} from {} in the previous period", text(before))
    } else {
        let pct = ((now - before).abs() * 100.0 / before).round();
        format!("{word} {pct}% from {} in the previous period", text(before))
    };
    Delta {
        arrow: if up { "▲" } else { "▼" },
        text,
        class: if up { "up good" } else { "down bad" },
    }
}

/// One key figure with its comparison.
struct KpiView {
    key: &'static str,
    label: &'static str,
    /// Where the value sits in the JSON (for the auto-refresh).
    field: &'static str,
    /// How the auto-refresh writes a ratio (`percent`, `duration`, `ratio`); empty for counts.
    format: &'static str,
    value: String,
    delta: Delta,
}

/// The dashboard's key figures beside the previous period's.
fn kpis(data: &Dashboard) -> Vec<KpiView> {
    let (now, before) = (data.kpis(), &data.previous);
    let count = |key, label, field, n: u64, b: u64, up_is_bad| KpiView {
        key,
        label,
        field,
        format: "",
        value: n.to_string(),
        delta: delta(Some(n), Some(b), false, up_is_bad),
    };
    vec![
        count(
            "views",
            "Page views",
            "pageViews.totalViews",
            now.total_views,
            before.total_views,
            false,
        ),
        count(
            "visitors",
            "Unique visitors",
            "pageViews.uniqueVisitors",
            now.unique_visitors,
            before.unique_visitors,
            false,
        ),
        count(
            "visits",
            "Visits",
            "visits.visits",
            now.visits,
            before.visits,
            false,
        ),
        KpiView {
            key: "bounce",
            label: "Bounce rate",
            field: "visits.bounceRate",
            format: "percent",
            value: shown(now.bounce_rate, |r| format!("{r:.0}%")),
            delta: rate_delta(now.bounce_rate, before.bounce_rate, true),
        },
        KpiView {
            key: "duration",
            label: "Visit duration",
            field: "visits.avgDurationMs",
            format: "duration",
            value: shown(now.avg_visit_duration_ms, duration_text),
            delta: ratio_delta(
                now.avg_visit_duration_ms,
                before.avg_visit_duration_ms,
                duration_text,
            ),
        },
        KpiView {
            key: "viewsPerVisit",
            label: "Views per visit",
            field: "visits.viewsPerVisit",
            format: "ratio",
            value: shown(now.views_per_visit, |v| format!("{v:.2}")),
            delta: ratio_delta(now.views_per_visit, before.views_per_visit, |v| {
                format!("{v:.2}")
            }),
        },
        count(
            "events",
            "Events",
            "events.totalEvents",
            now.total_events,
            before.total_events,
            false,
        ),
        count(
            "errors",
            "Errors",
            "errors.totalErrors",
            now.total_errors,
            before.total_errors,
            true,
        ),
        KpiView {
            key: "score",
            label: "Performance score (p75)",
            field: "performance.performanceScore.score",
            format: "",
            value: data.performance.performance_score.shown(),
            delta: delta(
                now.performance_score.map(u64::from),
                before.performance_score.map(u64::from),
                true,
                false,
            ),
        },
    ]
}

/// The previous period's name, for the comparison's label.
fn period_of(timeframe: Timeframe) -> &'static str {
    match timeframe {
        Timeframe::M5 => "5 minutes",
        Timeframe::M30 => "30 minutes",
        Timeframe::H1 => "hour",
        Timeframe::H6 => "6 hours",
        Timeframe::H12 => "12 hours",
        Timeframe::H24 => "24 hours",
        Timeframe::D7 => "7 days",
        Timeframe::D30 => "30 days",
        Timeframe::M3 => "90 days",
        Timeframe::Y1 => "period of equal length",
    }
}

/// A field of the filter form, with its suggestions.
struct FilterField {
    param: &'static str,
    label: &'static str,
    value: String,
    /// Existing values (the table's rows) for the field's datalist.
    suggestions: Vec<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "projects/dashboard.html")]
struct DashboardPage {
    ctx: PageContext,
    data: Dashboard,
    /// The same data as JSON, escaped for a `<script type="application/json">` block.
    data_json: String,
    score_class: &'static str,
    chips: Vec<Chip>,
    clear_href: String,
    kpis: Vec<KpiView>,
    /// What the figures are compared with ("7 days": the previous 7 days).
    period: &'static str,
    /// The custom range's `from` and `to` (empty without one).
    range: (String, String),
    /// Today (UTC), the date pickers' latest day.
    today: String,
    /// The previous period is drawn over the page-view chart (`compare=1`).
    compare: bool,
    /// The page-view and event tables, the breakdowns, then the error groups.
    tables: Vec<TableView>,
    fields: Vec<FilterField>,
    /// Which blocks the set filters restrict (empty without filters).
    scope_note: &'static str,
    /// The project has never received anything: the page explains what to do instead of
    /// showing zeros (`projects/live.html`).
    first_run: bool,
}
page_context!(DashboardPage);

impl DashboardPage {
    /// The first two tables (pages, events), then the entry and exit pages, then the
    /// breakdowns.
    fn main_tables(&self) -> &[TableView] {
        &self.tables[..2]
    }
    fn visit_tables(&self) -> &[TableView] {
        &self.tables[2..4]
    }
    fn breakdown_tables(&self) -> &[TableView] {
        &self.tables[4..self.tables.len() - 1]
    }
    fn error_tables(&self) -> &[TableView] {
        &self.tables[self.tables.len() - 1..]
    }
}

/// `{n/total}` as a percentage with one decimal (`0.0%` of nothing).
fn percent(n: u64, total: u64) -> String {
    if total == 0 {
        return "0.0%".into();
    }
    format!("{:.1}%", n as f64 * 100.0 / total as f64)
}

/// A bar's width class: `n` of `total` rounded to 5 % steps (0 of nothing).
fn bar_step(n: u64, total: u64) -> u8 {
    ((n * 20 + total / 2).checked_div(total).unwrap_or(0) * 5).min(100) as u8
}

/// The dashboard's own URL with `timeframe`, the filters and `name=value` set (or removed when
/// `value` is `None`).
fn link(
    base: &str,
    timeframe: Timeframe,
    filters: &DashboardFilters,
    name: &str,
    value: Option<&str>,
) -> String {
    let mut pairs: Vec<(&str, String)> = vec![("timeframe", timeframe.as_str().to_string())];
    pairs.extend(range_params(filters));
    pairs.extend(filters.to_params().into_iter().filter(|(k, _)| *k != name));
    if let Some(v) = value {
        pairs.push((name, v.to_string()));
    }
    format!("{base}/dashboard{}", query_string(&pairs))
}

/// `from` and `to` of a custom range, and `compare=1` with the chart's overlay: what every
/// link of the page keeps besides the timeframe and the filters.
fn range_params(filters: &DashboardFilters) -> Vec<(&'static str, String)> {
    let mut out = match filters.range.map(DayRange::dates) {
        Some((from, to)) => vec![("from", from), ("to", to)],
        None => Vec::new(),
    };
    if filters.compare {
        out.push(("compare", "1".into()));
    }
    out
}

/// The error groups table: a row's value is its earliest message; it filters the dashboard by
/// its group, and its detail link opens the errors page filtered the same way (span kept).
fn error_table(
    base: &str,
    timeframe: Timeframe,
    filters: &DashboardFilters,
    data: &Dashboard,
    csv_href: String,
) -> TableView {
    let (name, param, title, heading) = ERROR_TABLE;
    let total = data.errors.summary.total_errors;
    let span = Span {
        timeframe,
        days: filters.range,
    };
    let rows = (data.errors.top_groups.iter().enumerate())
        .map(|(i, g)| {
            let mut pairs = span.to_params();
            pairs.push(("signature", g.signature.clone()));
            RowView {
                detail_href: Some(format!("{base}/errors{}", query_string(&pairs))),
                ..RowView::new(
                    i,
                    &g.message,
                    g.count,
                    total,
                    link(base, timeframe, filters, param, Some(&g.signature)),
                )
            }
        })
        .collect();
    TableView {
        name,
        param,
        title,
        heading,
        rows,
        csv_href,
        active: filters.signature.is_some(),
    }
}

/// What the set filters restrict, for the line under the chips: page-view and event filters
/// do not reach errors, an error group reaches nothing else, and web vitals are never filtered.
fn scope_note(filters: &DashboardFilters) -> &'static str {
    let group = filters.signature.is_some();
    let others = !filters.pageviews.is_empty() || filters.event_name.is_some();
    match (others, group) {
        (false, false) => "",
        (true, false) => {
            "Filters apply to page views and events; errors and web vitals are not filtered."
        }
        (false, true) => {
            "The error group filter applies to errors only; page views, events and web vitals are not filtered."
        }
        (true, true) => {
            "Page and event filters apply to page views and events, the error group to errors; web vitals are not filtered."
        }
    }
}

/// The dashboard page: KPIs, charts, filterable tables; refreshes itself.
async fn show_dashboard(
    State(state): State<ViewState>,
    access: AnalyticsAccess,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let (timeframe, filters, data) = dashboard_of(&state, &access, &query).await?;
    if param(&query, "format") == Some("csv") {
        let table = param(&query, "table").unwrap_or("page");
        return Ok(csv_download(&access, &data, table));
    }
    let base = access.base.clone();
    let set: Vec<(&'static str, String)> = filters.to_params();
    let chips = set
        .iter()
        .map(|(name, value)| Chip {
            label: FILTER_PARAMS
                .iter()
                .find(|(n, _)| n == name)
                .map_or("Filter", |(_, l)| l),
            // A group reads as its message shape; its key only when no error is in range.
            value: match *name {
                "signature" => (data.errors.top_groups.iter())
                    .find(|g| g.signature == *value)
                    .map_or_else(|| value.clone(), |g| g.pattern.clone()),
                _ => value.clone(),
            },
            remove_href: link(&base, timeframe, &filters, name, None),
        })
        .collect();
    let csv_href = |name: &str| {
        let mut pairs: Vec<(&str, String)> = vec![("timeframe", timeframe.as_str().to_string())];
        pairs.extend(range_params(&filters));
        pairs.extend(set.iter().cloned());
        pairs.push(("format", "csv".into()));
        pairs.push(("table", name.into()));
        format!("{base}/dashboard/data{}", query_string(&pairs))
    };
    let mut tables: Vec<TableView> = TABLES
        .iter()
        .map(|&(name, param, title, heading)| {
            let total = total_of(&data, name);
            let rows = rows_of(&data, name)
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let href = link(&base, timeframe, &filters, param, Some(&r.value));
                    RowView::new(i, &r.value, r.count, total, href)
                })
                .collect();
            TableView {
                name,
                param,
                title,
                heading,
                rows,
                csv_href: csv_href(name),
                active: set.iter().any(|(n, _)| *n == param),
            }
        })
        .collect();
    tables.push(error_table(
        &base,
        timeframe,
        &filters,
        &data,
        csv_href(ERROR_TABLE.0),
    ));
    let fields = FILTER_PARAMS
        .iter()
        .map(|&(param, label)| {
            let table = TABLES.iter().find(|t| t.1 == param).map(|t| t.0);
            FilterField {
                param,
                label,
                value: set
                    .iter()
                    .find(|(n, _)| *n == param)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default(),
                // A group is picked from its table, not typed (no field, no suggestions).
                suggestions: table.map_or_else(Vec::new, |t| {
                    rows_of(&data, t).iter().map(|r| r.value.clone()).collect()
                }),
            }
        })
        .collect();
    let mut ctx = access.page(
        "dashboard",
        Span {
            timeframe,
            days: filters.range,
        },
    );
    ctx.carried = filters.clone();
    // Only a dashboard with nothing in its timeframe asks whether there was ever anything.
    let nothing = data.kpis() == crate::services::dashboard::Kpis::default();
    let first_run =
        nothing && !crate::services::realtime::has_data(&state.stores, access.project.id).await?;
    let page = DashboardPage {
        first_run,
        ctx,
        data_json: script_json(&data),
        score_class: data
            .performance
            .performance_score
            .badge_class(data.performance.total_measurements),
        chips,
        clear_href: {
            let mut pairs = vec![("timeframe", timeframe.as_str().to_string())];
            pairs.extend(range_params(&filters));
            format!("{base}/dashboard{}", query_string(&pairs))
        },
        kpis: kpis(&data),
        period: if filters.range.is_some() {
            "period of equal length"
        } else {
            period_of(timeframe)
        },
        range: filters.range.map(DayRange::dates).unwrap_or_default(),
        today: utc_day(state.dashboards.now_ms()),
        compare: filters.compare,
        tables,
        fields,
        scope_note: scope_note(&filters),
        data,
    };
    Ok(page.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_and_bars_round_to_their_steps() {
        assert_eq!(percent(1, 3), "33.3%");
        assert_eq!(percent(0, 0), "0.0%");
        assert_eq!(bar_step(1, 3), 35);
        assert_eq!(bar_step(3, 3), 100);
        assert_eq!(bar_step(1, 1000), 0);
        assert_eq!(bar_step(0, 0), 0);
    }

    #[test]
    fn deltas_say_the_direction_in_words_and_grade_errors_the_other_way() {
        let d = delta(Some(15), Some(10), false, false);
        assert_eq!((d.arrow, d.class), ("▲", "up good"));
        assert_eq!(d.text, "up 50% from 10 in the previous period");
        let d = delta(Some(5), Some(10), false, true);
        assert_eq!((d.arrow, d.class), ("▼", "down good"));
        assert_eq!(d.text, "down 50% from 10 in the previous period");
        assert_eq!(
            delta(Some(3), Some(0), false, false).text,
            "up from 0 in the previous period"
        );
        assert_eq!(delta(Some(7), Some(7), false, false).class, "flat");
        assert_eq!(
            delta(Some(80), Some(90), true, false).text,
            "down 10 points from 90 in the previous period"
        );
        assert_eq!(delta(Some(80), None, true, false).arrow, "");
    }

    #[test]
    fn row_links_replace_their_own_filter_and_keep_the_others() {
        let filters = DashboardFilters::parse(&[
            ("country".into(), "DE".into()),
            ("browser".into(), "Firefox".into()),
        ]);
        let href = link(
            "/p/x/t",
            Timeframe::D7,
            &filters,
            "browser",
            Some("Chrome & <Co>"),
        );
        assert_eq!(
            href,
            "/p/x/t/dashboard?timeframe=7d&country=DE&browser=Chrome+%26+%3CCo%3E"
        );
        assert_eq!(
            link("/p/x/t", Timeframe::D7, &filters, "country", None),
            "/p/x/t/dashboard?timeframe=7d&browser=Firefox"
        );
    }
}
