//! HTML: a self-contained document (inline CSS, inline SVG charts, no script, no external
//! asset) for the `html` format, and the same body as a fragment for the interactive view page
//! (which takes its CSS and script from `/static`, so the site's CSP holds). Every value is
//! escaped; the AI insights are Markdown rendered and sanitised.

use super::charts::{esc, svg_bar_chart};
use super::context::{self, kpis, s, short_time, table, title};
use super::model::DataType;
use serde_json::Value;

/// The report body: header, summary KPIs, one section per data type (chart and table), the AI
/// insights when present, and an explicit note for an empty period.
pub fn body(ctx: &Value) -> String {
    let meta = &ctx["meta"];
    let mut h = String::new();
    h.push_str("<header class=\"report-head\">");
    h.push_str(&format!(
        "<h1>{} {}</h1>",
        esc(s(meta, "projectIcon")),
        esc(s(meta, "projectName"))
    ));
    h.push_str(&format!(
        "<p class=\"report-period\">{} → {} ({}) · {} · generated {}</p>",
        esc(&short_time(s(meta, "start"))),
        esc(&short_time(s(meta, "end"))),
        esc(s(meta, "timeframe")),
        esc(s(meta, "environment")),
        esc(&short_time(s(meta, "generatedAt")))
    ));
    if let Some(f) = meta.get("filters").and_then(Value::as_object)
        && !f.is_empty()
    {
        h.push_str(&format!(
            "<p class=\"report-filters\">Filters: {}</p>",
            esc(&Value::Object(f.clone()).to_string())
        ));
    }
    h.push_str("</header>");
    let sections = context::sections(ctx);
    h.push_str("<section class=\"report-summary\"><h2>Summary</h2><dl class=\"kpis\">");
    for d in &sections {
        for (label, value) in kpis(*d, &ctx[d.as_str()]) {
            h.push_str(&format!(
                "<div><dt>{}</dt><dd>{}</dd></div>",
                esc(&label),
                esc(&value)
            ));
        }
    }
    h.push_str("</dl>");
    if ctx.pointer("/summary/empty").and_then(Value::as_bool) == Some(true) {
        h.push_str("<p class=\"report-empty\">No data was recorded in this period.</p>");
    }
    h.push_str("</section>");
    if sections.len() > 1 {
        h.push_str("<nav class=\"report-tabs\">");
        for d in &sections {
            h.push_str(&format!(
                "<a href=\"#section-{0}\" data-section=\"{0}\">{1}</a>",
                d.as_str(),
                title(*d)
            ));
        }
        h.push_str("</nav>");
    }
    for d in &sections {
        h.push_str(&section(*d, &ctx[d.as_str()]));
    }
    if let Some(ai) = ctx.get("aiInsights").and_then(Value::as_str) {
        h.push_str("<section class=\"report-section\" id=\"section-ai\"><h2>AI insights</h2>");
        h.push_str(&crate::ai::render::markdown_to_safe_html(ai));
        h.push_str("</section>");
    }
    h
}

fn section(d: DataType, sec: &Value) -> String {
    let mut h = format!(
        "<section class=\"report-section\" id=\"section-{}\" data-section=\"{}\"><h2>{}</h2>",
        d.as_str(),
        d.as_str(),
        title(d)
    );
    let chart_title = match d {
        DataType::Performance | DataType::All => "p75 per metric (ms)".to_string(),
        _ => format!("{} per day", title(d)),
    };
    h.push_str(&format!("<h3>{}</h3>", esc(&chart_title)));
    h.push_str(&svg_bar_chart(&chart_title, &context::chart_series(d, sec)));
    let (headers, rows) = table(d, sec);
    h.push_str("<table class=\"report-table\"><thead><tr>");
    for c in &headers {
        h.push_str(&format!("<th>{}</th>", esc(c)));
    }
    h.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        h.push_str(&format!(
            "<tr><td colspan=\"{}\">No data in this period.</td></tr>",
            headers.len()
        ));
    }
    for r in rows {
        h.push_str("<tr>");
        for c in r {
            h.push_str(&format!("<td>{}</td>", esc(&c)));
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></section>");
    h
}

const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:2rem auto;max-width:960px;color:#0f172a;padding:0 1rem}\
h1{margin:0 0 .25rem}h2{border-bottom:1px solid #e2e8f0;padding-bottom:.25rem;margin-top:2rem}h3{font-size:1rem;color:#475569}\
.report-period,.report-filters{color:#475569;margin:.25rem 0}.kpis{display:flex;flex-wrap:wrap;gap:1rem;margin:0}\
.kpis div{border:1px solid #e2e8f0;border-radius:8px;padding:.75rem 1rem;min-width:9rem}.kpis dt{color:#64748b;font-size:.85rem}\
.kpis dd{margin:0;font-size:1.5rem;font-weight:600}.report-chart{width:100%;height:auto}\
.report-table{border-collapse:collapse;width:100%;margin-top:1rem}.report-table th,.report-table td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e2e8f0;word-break:break-all}\
.report-empty{background:#fef9c3;padding:.5rem .75rem;border-radius:6px}.report-tabs a{margin-right:1rem}";

/// The self-contained HTML file.
pub fn document(ctx: &Value, report_name: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{}</title><style>{STYLE}</style></head><body>{}</body></html>",
        esc(report_name),
        body(ctx)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_document_is_self_contained_escaped_and_says_when_empty() {
        let ctx = json!({
            "meta": {"projectName": "<b>Shop</b>", "projectIcon": "🛒", "timeframe": "7d"},
            "summary": {"totalCount": 0, "empty": true},
            "pageviews": {"total": 0, "uniqueVisitors": 0, "byDay": [], "topPages": []},
            "aiInsights": "## Hi\n<script>alert(1)</script>",
        });
        let html = document(&ctx, "R");
        assert!(html.contains("&lt;b&gt;Shop&lt;/b&gt;"));
        assert!(!html.contains("<script"), "{html}");
        assert!(!html.contains("http://") || html.contains("http://www.w3.org/2000/svg"));
        assert!(!html.contains("src="), "no external assets");
        assert!(html.contains("No data was recorded in this period."));
        assert!(html.contains("<svg"));
    }
}
