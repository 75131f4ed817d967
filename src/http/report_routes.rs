//! Report and filter-template routes (reference §5.7, §5.8): the list, the new-report form,
//! `POST …/generate` (202, dedup), the detail page with live progress, `/status`, the
//! interactive `/view`, `/download` (409 not ready, 410 expired, 403 wrong namespace, rate
//! limited), soft delete; and `…/filter-templates`. JSON errors are `{error, code}` with 1.x's
//! codes; state-changing routes need the session's CSRF token in `X-CSRF-Token`. Handlers only
//! translate: `services::report_jobs` does the work.

use super::{
    analytics::TIMEFRAMES,
    projects::ProjectAccess,
    refused::{Refused, coded},
    session::AuthUser,
    views::Shell,
};
use crate::{
    domain::records::OrgRole,
    error::AppError,
    reports::{FilterTemplate, Report, ReportStatus, render_html, request::Rejected},
    runtime::rate_limit::namespaces,
    services::report_jobs::ReportJobs,
    services::report_jobs::{
        ESTIMATED_SECONDS, FORM_TEMPLATES, Generated, LIST_LIMIT, ReportError,
    },
    state::{AppState, Limiting},
    store::Project,
    store::Stores,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects/{id}/reports", get(list_reports))
        .route("/projects/{id}/reports/new", get(new_report_form))
        .route("/projects/{id}/reports/generate", post(generate_report))
        .route("/projects/{id}/reports/{report_id}", get(show_report))
        .route("/projects/{id}/reports/{report_id}/view", get(view_report))
        .route(
            "/projects/{id}/reports/{report_id}/status",
            get(report_status),
        )
        .route(
            "/projects/{id}/reports/{report_id}/download",
            get(download_report),
        )
        .route(
            "/projects/{id}/reports/{report_id}/delete",
            post(delete_report),
        )
        .route(
            "/projects/{id}/filter-templates",
            get(list_templates).post(create_template),
        )
        .route(
            "/projects/{id}/filter-templates/{template_id}/delete",
            post(delete_template),
        )
}

const EDITORS: &[OrgRole] = &[OrgRole::Owner, OrgRole::Admin];

impl From<Rejected> for Refused {
    fn from(r: Rejected) -> Self {
        Refused::Coded(StatusCode::BAD_REQUEST, r.message, r.code)
    }
}

impl From<ReportError> for Refused {
    fn from(e: ReportError) -> Self {
        match e {
            ReportError::Rejected(r) => r.into(),
            ReportError::Store(s) => s.into(),
        }
    }
}

type Answer = Result<Response, Refused>;

fn not_found() -> Refused {
    Refused::Coded(
        StatusCode::NOT_FOUND,
        "Report not found".into(),
        "NOT_FOUND",
    )
}

fn forbidden() -> Refused {
    Refused::Coded(StatusCode::FORBIDDEN, "Forbidden".into(), "FORBIDDEN")
}

/// The project, for JSON routes: 404/403 as `{error, code}`.
async fn access_json(stores: &Stores, auth: &AuthUser, id: &str) -> Result<ProjectAccess, Refused> {
    match ProjectAccess::check(stores, auth, id).await {
        Ok(a) => Ok(a),
        Err(AppError::NotFound) => Err(Refused::Coded(
            StatusCode::NOT_FOUND,
            "Project not found".into(),
            "NOT_FOUND",
        )),
        Err(AppError::Forbidden(_)) => Err(forbidden()),
        Err(e) => Err(e.into()),
    }
}

fn editor(access: &ProjectAccess) -> Result<(), Refused> {
    if EDITORS.contains(&access.role) {
        Ok(())
    } else {
        Err(forbidden())
    }
}

/// 403 unless `X-CSRF-Token` is the session's; then the body as a JSON object.
fn csrf_json(auth: &AuthUser, headers: &HeaderMap, body: &Bytes) -> Result<Value, Refused> {
    super::refused::csrf_json(&auth.csrf, headers, body).map_err(|(status, error)| {
        let code = if status == StatusCode::FORBIDDEN {
            "CSRF"
        } else {
            "INVALID_PARAMS"
        };
        Refused::Coded(status, error.into(), code)
    })
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

fn base_of(project: &Project) -> String {
    format!("/projects/{}", project.id)
}

/// The `/status` JSON of a report at `now` (the server's clock, which stamps reports).
fn status_json(report: &Report, base: &str, now: i64) -> Value {
    let end = if report.status.is_final() {
        report.updated_at
    } else {
        now
    };
    let elapsed = ((end - report.created_at).max(0) as f64 / 1000.0).round() as i64;
    let remaining = if report.status.is_final() {
        0
    } else {
        let estimate = report.estimated_duration_ms.max(1000) as f64;
        // From progress when there is some, else from the estimate.
        let by_progress = if report.progress > 0 {
            elapsed as f64 * (100.0 - f64::from(report.progress)) / f64::from(report.progress)
        } else {
            estimate / 1000.0 - elapsed as f64
        };
        by_progress.max(1.0).round() as i64
    };
    let mut v = json!({
        "reportId": report.id.to_hex(),
        "status": report.status.as_str(),
        "progress": report.progress,
        "message": report.status_message.clone().unwrap_or_else(|| match report.status {
            ReportStatus::Pending => "Queued".into(),
            ReportStatus::Generating => format!("{}…", crate::services::sentence_case(report.current_stage.as_str())),
            ReportStatus::Completed => "Report ready".into(),
            ReportStatus::Failed => "Generation failed".into(),
        }),
        "currentStage": report.current_stage.as_str(),
        "stages": report.stages_json(),
        "elapsedSeconds": elapsed,
        "estimatedSecondsRemaining": remaining,
        "fileSize": report.file_size,
        "generatedAt": report.generated_at.map(crate::domain::timestamp::to_iso),
    });
    if report.status == ReportStatus::Completed {
        v["downloadUrl"] = json!(format!("{base}/reports/{}/download", report.id));
        v["viewUrl"] = json!(format!("{base}/reports/{}/view", report.id));
    }
    v
}

// ------------------------------------------------------------------------------------------
// Pages
// ------------------------------------------------------------------------------------------

#[derive(Template, WebTemplate)]
#[template(path = "reports/list.html")]
struct ListPage {
    shell: Shell,
    project: Project,
    base: String,
    section: &'static str,
    can_edit: bool,
    siblings: Vec<(String, String)>,
    reports: Vec<Report>,
    status: String,
    sort: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "reports/new.html")]
struct NewPage {
    shell: Shell,
    project: Project,
    base: String,
    section: &'static str,
    can_edit: bool,
    siblings: Vec<(String, String)>,
    timeframes: &'static [(&'static str, &'static str)],
    templates_json: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "reports/detail.html")]
struct DetailPage {
    shell: Shell,
    project: Project,
    base: String,
    section: &'static str,
    can_edit: bool,
    siblings: Vec<(String, String)>,
    report: Report,
    status_json: String,
    retry_json: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "reports/view.html")]
struct ViewPage {
    shell: Shell,
    project: Project,
    base: String,
    section: &'static str,
    can_edit: bool,
    siblings: Vec<(String, String)>,
    report: Report,
    body_html: String,
}

macro_rules! page_helpers {
    ($($t:ty),*) => {$(
        impl $t {
            fn query_for(&self, _slug: &str) -> String {
                String::new()
            }
            fn siblings(&self) -> &[(String, String)] {
                &self.siblings
            }
        }
    )*};
}
page_helpers!(ListPage, NewPage, DetailPage, ViewPage);

/// `GET …/reports` (`?status=`, `?sort=`): the list page, or `{success, data}` for JSON.
async fn list_reports(
    State(stores): State<Stores>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    let status = q.get("status").map(String::as_str).unwrap_or("all");
    let sort = q.get("sort").map(String::as_str).unwrap_or("created_desc");
    let reports = reports
        .list(access.project.id, ReportStatus::parse(status), sort)
        .await?;
    if wants_json(&headers) {
        let data: Vec<Value> = reports.iter().map(Report::to_json).collect();
        return Ok(Json(json!({"success": true, "data": data})).into_response());
    }
    let siblings = crate::http::analytics::sibling_projects(&stores, &access.project).await?;
    Ok(ListPage {
        shell: Shell::of(&auth),
        base: base_of(&access.project),
        section: "reports",
        can_edit: EDITORS.contains(&access.role),
        project: access.project,
        siblings,
        reports,
        status: status.to_string(),
        sort: sort.to_string(),
    }
    .into_response())
}

/// `GET …/reports/new`: the form with up to 50 templates (owner/admin).
async fn new_report_form(
    State(stores): State<Stores>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(EDITORS)?;
    let templates = reports.templates(access.project.id, FORM_TEMPLATES).await?;
    let siblings = crate::http::analytics::sibling_projects(&stores, &access.project).await?;
    Ok(NewPage {
        shell: Shell::of(&auth),
        base: base_of(&access.project),
        section: "reports",
        can_edit: true,
        project: access.project,
        siblings,
        timeframes: &TIMEFRAMES,
        templates_json: script_json(&Value::Array(
            templates.iter().map(FilterTemplate::to_json).collect(),
        )),
    }
    .into_response())
}

/// JSON safe inside `<script type="application/json">` (no `</script>` breakout).
fn script_json(v: &Value) -> String {
    v.to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// `POST …/reports/generate`: 202 `{reportId, status, pollingUrl, viewUrl, estimatedSeconds}`
/// (or `deduplicated: true`); 400 `INVALID_*`, 403 `FORBIDDEN`, 429 `RATE_LIMIT`.
async fn generate_report(
    State(stores): State<Stores>,
    State(limiting): State<Limiting>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let access = access_json(&stores, &auth, &id).await?;
    editor(&access)?;
    let body = csrf_json(&auth, &headers, &body)?;
    let key = format!("{}:{}", auth.user.id, access.project.id);
    let decision = limiting
        .limiter
        .check_limit(
            namespaces::REPORT_GENERATION,
            &key,
            limiting.limits.report_generation,
        )
        .await;
    if let Some(wait) = decision.retry_after() {
        let mut r = (
            StatusCode::TOO_MANY_REQUESTS,
            Json(json!({"error": "Rate limited", "code": "RATE_LIMIT",
                "details": {"retryAfterSeconds": wait.as_secs().max(1)}})),
        )
            .into_response();
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(decision.reset_after_secs()),
        );
        return Ok(r);
    }
    let base = base_of(&access.project);
    let urls = |r: &Report| {
        (
            format!("{base}/reports/{}/status", r.id),
            format!("{base}/reports/{}/view", r.id),
        )
    };
    let answer = match reports.generate(&access.project, &auth.user, &body).await? {
        Generated::Created(r) => {
            let (polling, view) = urls(&r);
            json!({"reportId": r.id.to_hex(), "status": r.status.as_str(), "pollingUrl": polling,
                "viewUrl": view, "detailUrl": format!("{base}/reports/{}", r.id),
                "estimatedSeconds": ESTIMATED_SECONDS})
        }
        Generated::Deduplicated(r) => {
            let (polling, view) = urls(&r);
            json!({"reportId": r.id.to_hex(), "status": r.status.as_str(), "pollingUrl": polling,
                "viewUrl": view, "detailUrl": format!("{base}/reports/{}", r.id),
                "deduplicated": true})
        }
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

/// What a report's pages show around it: the project (access checked), the report (404 when
/// it is not the project's), the project's base path and the project switcher's siblings.
type ReportPage = (ProjectAccess, Report, String, Vec<(String, String)>);

async fn report_page(
    stores: &Stores,
    reports: &ReportJobs,
    auth: &AuthUser,
    id: &str,
    report_id: &str,
) -> Result<ReportPage, AppError> {
    let access = ProjectAccess::check(stores, auth, id).await?;
    let report = reports
        .report(access.project.id, report_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let siblings = crate::http::analytics::sibling_projects(stores, &access.project).await?;
    let base = base_of(&access.project);
    Ok((access, report, base, siblings))
}

/// `GET …/reports/{reportId}`: the detail page (progress polled from `/status`).
async fn show_report(
    State(stores): State<Stores>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path((id, report_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let (access, report, base, siblings) =
        report_page(&stores, &reports, &auth, &id, &report_id).await?;
    let retry = json!({
        "name": report.name, "dataType": report.data_type.as_str(),
        "timeframe": report.timeframe,
        "startDate": crate::domain::timestamp::to_iso(report.start),
        "endDate": crate::domain::timestamp::to_iso(report.end),
        "format": report.format.as_str(),
        "csvMode": report.csv_mode.map(|m| m.as_str()),
        "includeAiInsights": report.include_ai_insights,
        "filters": report.filters,
    });
    Ok(DetailPage {
        shell: Shell::of(&auth),
        status_json: script_json(&status_json(&report, &base, reports.now())),
        retry_json: script_json(&retry),
        base,
        section: "reports",
        can_edit: EDITORS.contains(&access.role),
        project: access.project,
        siblings,
        report,
    }
    .into_response())
}

/// `GET …/reports/{reportId}/view`: the report as an interactive page; the detail page until
/// it is completed.
async fn view_report(
    State(stores): State<Stores>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path((id, report_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let (access, report, base, siblings) =
        report_page(&stores, &reports, &auth, &id, &report_id).await?;
    let Some(ctx) = report
        .context_snapshot
        .as_ref()
        .filter(|_| report.status == ReportStatus::Completed)
    else {
        return Ok(Redirect::to(&format!("{base}/reports/{}", report.id)).into_response());
    };
    let body_html = render_html::body(ctx);
    Ok(ViewPage {
        shell: Shell::of(&auth),
        base,
        section: "reports",
        can_edit: EDITORS.contains(&access.role),
        project: access.project,
        siblings,
        report,
        body_html,
    }
    .into_response())
}

/// `GET …/reports/{reportId}/status`: progress JSON; 404 `{error, code: "NOT_FOUND"}`.
async fn report_status(
    State(stores): State<Stores>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path((id, report_id)): Path<(String, String)>,
) -> Answer {
    let access = access_json(&stores, &auth, &id).await?;
    let report = reports
        .report(access.project.id, &report_id)
        .await?
        .ok_or_else(not_found)?;
    let base = base_of(&access.project);
    Ok(Json(status_json(&report, &base, reports.now())).into_response())
}

/// `GET …/reports/{reportId}/download`: the file as an attachment. 409 not ready, 410 expired,
/// 403 outside the project's namespace, 429 past 10 a minute per user and project.
async fn download_report(
    State(stores): State<Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    State(limiting): State<Limiting>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path((id, report_id)): Path<(String, String)>,
) -> Answer {
    let access = access_json(&stores, &auth, &id).await?;
    let report = reports
        .report(access.project.id, &report_id)
        .await?
        .ok_or_else(not_found)?;
    let key = format!("{}:{}", auth.user.id, access.project.id);
    let decision = limiting
        .limiter
        .check_limit(
            namespaces::REPORT_DOWNLOADS,
            &key,
            limiting.limits.report_downloads,
        )
        .await;
    if decision.retry_after().is_some() {
        let mut r = coded(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many downloads; try again in a minute",
            "RATE_LIMIT",
        );
        r.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(decision.reset_after_secs()),
        );
        return Ok(r);
    }
    if report.status != ReportStatus::Completed {
        return Ok(coded(
            StatusCode::CONFLICT,
            "The report is not ready",
            "NOT_READY",
        ));
    }
    // Expired, or its file already swept.
    if report.expires_at.is_some_and(|e| e <= clock.now_ms()) || report.file_key.is_none() {
        return Ok(coded(StatusCode::GONE, "The report has expired", "EXPIRED"));
    }
    let namespace = format!("{}_{}/", access.project.org_id, access.project.id);
    if !report
        .file_key
        .as_deref()
        .is_some_and(|k| k.starts_with(&namespace))
    {
        return Err(forbidden());
    }
    let Some(file) = reports.open_file(&report).await? else {
        return Ok(coded(
            StatusCode::GONE,
            "The report file is gone",
            "EXPIRED",
        ));
    };
    // Fused: the compression layer polls the body once more after its end (tower-http 0.7's
    // `BodyIntoStream`), and a file stream built with `unfold` panics when polled past its end.
    let mut r = Response::new(Body::from_stream(futures::StreamExt::fuse(file.chunks)));
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(report.format.content_type()),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(file.size));
    if let Ok(v) =
        HeaderValue::from_str(&format!("attachment; filename=\"{}\"", report.file_name()))
    {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-store"),
    );
    Ok(r)
}

/// `POST …/reports/{reportId}/delete`: soft delete → `{success: true}` (owner/admin).
async fn delete_report(
    State(stores): State<Stores>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path((id, report_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let access = access_json(&stores, &auth, &id).await?;
    editor(&access)?;
    csrf_json(&auth, &headers, &body)?;
    if reports.delete(access.project.id, &report_id).await? {
        Ok(Json(json!({"success": true})).into_response())
    } else {
        Err(not_found())
    }
}

// ------------------------------------------------------------------------------------------
// Filter templates
// ------------------------------------------------------------------------------------------

/// `GET …/filter-templates` → `{success, data: [≤ 100 newest]}`.
async fn list_templates(
    State(stores): State<Stores>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Answer {
    let access = access_json(&stores, &auth, &id).await?;
    let templates = reports.templates(access.project.id, LIST_LIMIT).await?;
    let data: Vec<Value> = templates.iter().map(FilterTemplate::to_json).collect();
    Ok(Json(json!({"success": true, "data": data})).into_response())
}

/// `POST …/filter-templates` → 201 `{success, data}`; 400 `INVALID_PARAMS` / `INVALID_RANGE`.
async fn create_template(
    State(stores): State<Stores>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let access = access_json(&stores, &auth, &id).await?;
    editor(&access)?;
    let body = csrf_json(&auth, &headers, &body)?;
    let template = reports
        .create_template(&access.project, &auth.user, &body)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"success": true, "data": template.to_json()})),
    )
        .into_response())
}

/// `POST …/filter-templates/{templateId}/delete` → `{success: true}`.
async fn delete_template(
    State(stores): State<Stores>,
    State(reports): State<Arc<ReportJobs>>,
    auth: AuthUser,
    Path((id, template_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let access = access_json(&stores, &auth, &id).await?;
    editor(&access)?;
    csrf_json(&auth, &headers, &body)?;
    if reports
        .delete_template(access.project.id, &template_id)
        .await?
    {
        Ok(Json(json!({"success": true})).into_response())
    } else {
        Err(Refused::Coded(
            StatusCode::NOT_FOUND,
            "Template not found".into(),
            "NOT_FOUND",
        ))
    }
}
