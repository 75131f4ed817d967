//! AI analysis routes (reference §2.7, §6): the project page, runs (`POST …/run` answers 202 and
//! queues the run), run history and detail, and the user's presets (`/ai-analysis/presets*`).
//! JSON routes answer `{success, …}`; state-changing ones need the session's CSRF token in an
//! `X-CSRF-Token` header. Model output reaches pages only as sanitised HTML (`resultHtml`).

use super::{
    analytics::TIMEFRAMES,
    projects::ProjectAccess,
    rate_limit::{RateLimitLayer, Style},
    refused::{Refused, fail},
    session::AuthUser,
    views::Shell,
};
use crate::runtime::rate_limit::namespaces;
use crate::{
    ai::{
        model::AiRun,
        presets::{self, BUILTINS, Invalid, Preset},
        render::markdown_to_safe_html,
    },
    domain::{audit::codes, ids::DocId, timestamp::now_ms},
    error::AppError,
    services::ai_analysis::AiAnalysis,
    services::ai_analysis::{self as svc, DEFAULT_RUNS, StartError},
    state::AppState,
    store::Stores,
    store::{Project, StoreError},
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub fn router(state: &AppState) -> Router<AppState> {
    // Only the requests that may call the model are limited (model calls cost money).
    let model_calls = RateLimitLayer::per_client_ip(
        state,
        namespaces::AI,
        state.config.rate_limits.ai,
        Style::Json,
    );
    Router::new()
        .route("/projects/{id}/ai-analysis", get(show_page))
        .route(
            "/projects/{id}/ai-analysis/run",
            post(start_run).route_layer(model_calls.clone()),
        )
        .route("/projects/{id}/ai-analysis/runs", get(list_runs))
        .route("/projects/{id}/ai-analysis/runs/{run_id}", get(show_run))
        .route(
            "/ai-analysis/presets",
            get(list_presets).post(create_preset),
        )
        .route(
            "/ai-analysis/presets/ai-generate",
            post(generate_preset).route_layer(model_calls.clone()),
        )
        .route(
            "/ai-analysis/presets/{preset_id}",
            get(show_preset).put(update_preset).delete(delete_preset),
        )
        .route(
            "/ai-analysis/presets/{preset_id}/publish",
            post(publish_preset),
        )
        .route(
            "/ai-analysis/presets/{preset_id}/unpublish",
            post(unpublish_preset),
        )
        .route(
            "/ai-analysis/presets/{preset_id}/ai-refine",
            post(refine_preset).route_layer(model_calls),
        )
}

/// 201 `{success: true, data}` for a newly saved preset.
fn created(preset: &Preset) -> Response {
    (
        StatusCode::CREATED,
        Json(json!({"success": true, "data": preset.to_json()})),
    )
        .into_response()
}

fn ok(data: Value) -> Response {
    Json(json!({"success": true, "data": data})).into_response()
}

/// An early `{success: false, error}` answer.
fn refuse(status: StatusCode, error: impl Into<String>) -> Refused {
    Refused::Fail(status, error.into())
}

/// A 400 answer for a validation failure.
fn invalid(e: Invalid) -> Refused {
    refuse(StatusCode::BAD_REQUEST, e.0)
}

type Answer = Result<Response, Refused>;

/// 403 unless `X-CSRF-Token` equals the session's token; then the body as a JSON object.
fn csrf_json(auth: &AuthUser, headers: &HeaderMap, body: &Bytes) -> Result<Value, Refused> {
    super::refused::csrf_json(&auth.csrf, headers, body)
        .map_err(|(status, error)| refuse(status, error))
}

/// A run as the routes show it: SuperInsights fields plus `resultHtml`, the sanitised rendering.
fn run_json(run: &AiRun) -> Value {
    let mut v = run.to_json();
    if let Some(md) = &run.result_markdown {
        v["resultHtml"] = Value::String(markdown_to_safe_html(md));
    }
    v
}

#[derive(Template, WebTemplate)]
#[template(path = "ai/analysis.html")]
struct AnalysisPage {
    shell: Shell,
    project: Project,
    base: String,
    section: &'static str,
    can_edit: bool,
    timeframes: &'static [(&'static str, &'static str)],
    uses_model: bool,
    model: String,
    /// (id, name) of the organization's other projects.
    siblings: Vec<(String, String)>,
}

impl AnalysisPage {
    /// Section links carry no filters from this page.
    fn query_for(&self, _slug: &str) -> String {
        String::new()
    }

    /// The project switcher's entries.
    fn siblings(&self) -> &[(String, String)] {
        &self.siblings
    }
}

/// The AI Analysis page: controls, progress, result, history (filled in by `static/js/ai.js`).
async fn show_page(
    State(stores): State<Stores>,
    State(ai): State<Arc<AiAnalysis>>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    let siblings = crate::http::analytics::sibling_projects(&stores, &access.project).await?;
    Ok(AnalysisPage {
        siblings,
        shell: Shell::of(&auth),
        base: format!("/projects/{}", access.project.id),
        section: "ai-analysis",
        can_edit: matches!(
            access.role,
            crate::domain::records::OrgRole::Owner | crate::domain::records::OrgRole::Admin
        ),
        project: access.project,
        timeframes: &TIMEFRAMES,
        uses_model: ai.uses_model(),
        model: ai.model_name().to_string(),
    }
    .into_response())
}

/// `POST …/ai-analysis/run`: validates, records a queued run, enqueues it; 202 `{success, runId}`.
async fn start_run(
    State(stores): State<Stores>,
    State(ai): State<Arc<AiAnalysis>>,
    State(clock): State<crate::domain::clock::SharedClock>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    let body = csrf_json(&auth, &headers, &body)?;
    let request = svc::parse_run_request(&body, clock.now_ms()).map_err(invalid)?;
    match ai.start_run(&access.project, &auth.user, request).await {
        Ok(run_id) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"success": true, "runId": run_id.to_hex()})),
        )
            .into_response()),
        Err(StartError::Invalid(m)) => Ok(fail(StatusCode::BAD_REQUEST, m)),
        Err(StartError::Store(e)) => Err(e.into()),
    }
}

/// `GET …/ai-analysis/runs?limit=` (1–100, default 30), newest first.
async fn list_runs(
    State(stores): State<Stores>,
    auth: AuthUser,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    let limit = query
        .get("limit")
        .and_then(|l| l.trim().parse::<i64>().ok())
        .map_or(DEFAULT_RUNS, |l| l.clamp(1, 100) as u32);
    let runs = stores.ai.runs_of_project(access.project.id, limit).await?;
    // The list leaves the (long) results out; the detail route has them.
    let data: Vec<Value> = runs
        .iter()
        .map(|r| {
            let mut v = r.to_json();
            if let Some(o) = v.as_object_mut() {
                o.remove("resultMarkdown");
                o.remove("presetSnapshot");
            }
            v
        })
        .collect();
    Ok(ok(Value::Array(data)))
}

/// `GET …/ai-analysis/runs/{runId}`: the run, or 404 `Run not found`.
async fn show_run(
    State(stores): State<Stores>,
    auth: AuthUser,
    Path((id, run_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    let run = match DocId::parse(&run_id) {
        Some(run_id) => stores.ai.run(run_id).await?,
        None => None,
    };
    match run.filter(|r| r.project_id == access.project.id) {
        Some(run) => Ok(ok(run_json(&run))),
        None => Ok(fail(StatusCode::NOT_FOUND, "Run not found")),
    }
}

// ------------------------------------------------------------------------------------------
// Presets
// ------------------------------------------------------------------------------------------

/// `GET /ai-analysis/presets`: `{builtins, mine, public}` (public = others', ≤ 200).
async fn list_presets(State(stores): State<Stores>, auth: AuthUser) -> Result<Response, AppError> {
    let mine = stores.ai.presets_of_owner(auth.user.id).await?;
    let public = stores
        .ai
        .public_presets(auth.user.id, presets::MAX_PUBLIC_LISTED)
        .await?;
    Ok(ok(json!({
        "builtins": BUILTINS.iter().map(|b| b.to_json()).collect::<Vec<_>>(),
        "mine": mine.iter().map(Preset::to_json).collect::<Vec<_>>(),
        "public": public.iter().map(Preset::to_json).collect::<Vec<_>>(),
    })))
}

async fn create_preset(
    State(stores): State<crate::store::Stores>,
    auth: AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = csrf_json(&auth, &headers, &body)?;
    let preset = svc::new_preset(&auth.user, &body).map_err(invalid)?;
    svc::create_preset(&stores, &preset, codes::AI_ANALYSIS_PRESET_CREATED).await?;
    Ok(created(&preset))
}

/// A stored preset the user may read, or the answer to give instead (404, 403).
async fn readable(stores: &Stores, auth: &AuthUser, id: &str) -> Result<Preset, Refused> {
    let not_found = || refuse(StatusCode::NOT_FOUND, "Preset not found");
    let id = DocId::parse(id).ok_or_else(not_found)?;
    match stores.ai.preset(id).await? {
        None => Err(not_found()),
        Some(p) if !p.readable_by(auth.user.id) => Err(refuse(StatusCode::FORBIDDEN, "Forbidden")),
        Some(p) => Ok(p),
    }
}

/// A preset the user owns (builtins: 403 read-only), or the answer to give instead.
async fn owned(stores: &Stores, auth: &AuthUser, id: &str) -> Result<Preset, Refused> {
    if presets::is_builtin_id(id) {
        return Err(refuse(
            StatusCode::FORBIDDEN,
            "Builtin presets are read-only",
        ));
    }
    match readable(stores, auth, id).await? {
        p if p.owner_user_id != auth.user.id => Err(refuse(StatusCode::FORBIDDEN, "Forbidden")),
        p => Ok(p),
    }
}

async fn show_preset(
    State(stores): State<Stores>,
    auth: AuthUser,
    Path(preset_id): Path<String>,
) -> Answer {
    if let Some(b) = presets::builtin(&preset_id) {
        return Ok(ok(b.to_json()));
    }
    Ok(ok(readable(&stores, &auth, &preset_id).await?.to_json()))
}

fn stored(result: Result<Preset, StoreError>) -> Answer {
    match result {
        Ok(p) => Ok(ok(p.to_json())),
        Err(StoreError::NotFound) => Ok(fail(StatusCode::NOT_FOUND, "Preset not found")),
        Err(e) => Err(e.into()),
    }
}

async fn update_preset(
    State(stores): State<Stores>,
    auth: AuthUser,
    Path(preset_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = csrf_json(&auth, &headers, &body)?;
    let preset = owned(&stores, &auth, &preset_id).await?;
    let fields = presets::validate(&body, Some(&preset.fields)).map_err(invalid)?;
    stored(
        svc::update_preset(
            &stores,
            preset.id,
            &fields,
            codes::AI_ANALYSIS_PRESET_UPDATED,
        )
        .await,
    )
}

async fn delete_preset(
    State(stores): State<Stores>,
    auth: AuthUser,
    Path(preset_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    csrf_json(&auth, &headers, &body)?;
    let preset = owned(&stores, &auth, &preset_id).await?;
    match svc::delete_preset(&stores, preset.id).await {
        Ok(()) | Err(StoreError::NotFound) => Ok(Json(json!({"success": true})).into_response()),
        Err(e) => Err(e.into()),
    }
}

async fn set_visibility(
    stores: Stores,
    auth: AuthUser,
    preset_id: String,
    headers: HeaderMap,
    body: Bytes,
    visibility: &str,
) -> Answer {
    csrf_json(&auth, &headers, &body)?;
    let preset = owned(&stores, &auth, &preset_id).await?;
    stored(svc::set_preset_visibility(&stores, preset.id, visibility).await)
}

async fn publish_preset(
    State(stores): State<Stores>,
    auth: AuthUser,
    Path(preset_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    set_visibility(stores, auth, preset_id, headers, body, "public").await
}

async fn unpublish_preset(
    State(stores): State<Stores>,
    auth: AuthUser,
    Path(preset_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    set_visibility(stores, auth, preset_id, headers, body, "private").await
}

fn no_provider() -> Refused {
    refuse(
        StatusCode::SERVICE_UNAVAILABLE,
        "No AI provider is configured (set OPENROUTER_API_KEY or OPENAI_API_KEY)",
    )
}

/// `POST /ai-analysis/presets/ai-generate` `{goal, visibility}`: the model writes a preset, which
/// is validated and saved as a new preset of the user.
async fn generate_preset(
    State(stores): State<Stores>,
    State(ai): State<Arc<AiAnalysis>>,
    auth: AuthUser,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = csrf_json(&auth, &headers, &body)?;
    let goal = presets::goal(&body).map_err(invalid)?;
    let requested = presets::visibility(body.get("visibility")).map_err(invalid)?;
    let Some(answer) = ai.ask_for_preset(&presets::generate_messages(&goal)).await else {
        return Err(no_provider());
    };
    let (fields, _) = answer.map_err(|e| refuse(StatusCode::BAD_GATEWAY, e))?;
    let now = now_ms();
    let preset = Preset {
        id: DocId::new(),
        owner_user_id: auth.user.id,
        owner_email: auth.user.email.clone(),
        visibility: requested,
        fields,
        version: 1,
        created_at: now,
        updated_at: now,
    };
    svc::create_preset(&stores, &preset, codes::AI_ANALYSIS_PRESET_AI_GENERATED).await?;
    Ok(created(&preset))
}

/// `POST /ai-analysis/presets/{id}/ai-refine` `{goal}`: owner only; the model rewrites the
/// preset, which is validated and saved (version + 1; visibility unchanged).
async fn refine_preset(
    State(stores): State<Stores>,
    State(ai): State<Arc<AiAnalysis>>,
    auth: AuthUser,
    Path(preset_id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Answer {
    let body = csrf_json(&auth, &headers, &body)?;
    let preset = owned(&stores, &auth, &preset_id).await?;
    let goal = presets::goal(&body).map_err(invalid)?;
    let current = json!({
        "name": preset.fields.name,
        "description": preset.fields.description,
        "visibility": preset.visibility,
        "definition": preset.fields.definition,
    });
    let Some(answer) = ai
        .ask_for_preset(&presets::refine_messages(&goal, &current))
        .await
    else {
        return Err(no_provider());
    };
    let (mut fields, _) = answer.map_err(|e| refuse(StatusCode::BAD_GATEWAY, e))?;
    fields.tags = preset.fields.tags.clone();
    stored(
        svc::update_preset(
            &stores,
            preset.id,
            &fields,
            codes::AI_ANALYSIS_PRESET_AI_REFINED,
        )
        .await,
    )
}
