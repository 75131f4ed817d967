//! `/projects`: list, create, settings, update, keys, drop rules, members, delete, clear data.
//! Access: organization members see projects; owner/admin edit; owner-only for keys, removing
//! members, deleting and clearing. Platform admins count as `admin` everywhere.

use super::{
    org::{minute, refusal},
    session::{AuthUser, CsrfForm},
    views::Shell,
};
use crate::{
    config::Config,
    domain::ids::DocId,
    domain::records::{OrgRole, Project},
    error::AppError,
    runtime::realtime::RealtimeHub,
    services::{
        orgs::{self, MemberError},
        projects::{self as svc, ProjectForm},
        public_links,
    },
    state::{AppState, ProjectCaches},
    store::Stores,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde_json::json;
use std::sync::Arc;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/projects", get(list_projects).post(create_project))
        .route("/projects/new", get(new_project))
        .route("/projects/{id}", get(project_home))
        .route("/projects/{id}/setup", get(show_setup))
        .route("/projects/{id}/settings", get(show_settings))
        .route("/projects/{id}/update", post(update_project))
        .route("/projects/{id}/regenerate-keys", post(regenerate_keys))
        .route("/projects/{id}/settings/drop-events", post(save_drop_rules))
        .route(
            "/projects/{id}/settings/drop-events/report",
            get(drop_report),
        )
        .route("/projects/{id}/users/add", post(add_user))
        .route("/projects/{id}/users/remove", post(remove_user))
        .route("/projects/{id}/delete", post(delete_project))
        .route("/projects/{id}/clear-data", post(clear_data))
        .route(
            "/projects/{id}/public-link/enable",
            post(enable_public_link),
        )
        .route(
            "/projects/{id}/public-link/regenerate",
            post(regenerate_public_link),
        )
        .route(
            "/projects/{id}/public-link/revoke",
            post(revoke_public_link),
        )
}

/// A project the signed-in user may open, with their role in it.
pub struct ProjectAccess {
    pub project: Project,
    pub role: OrgRole,
}

impl ProjectAccess {
    /// 404 for an unknown or deleted project; 403 for a non-member.
    pub async fn check(stores: &Stores, auth: &AuthUser, id: &str) -> Result<Self, AppError> {
        let id = DocId::parse(id).ok_or(AppError::NotFound)?;
        let project = stores
            .projects
            .project(id)
            .await?
            .filter(|p| p.deleted_at.is_none())
            .ok_or(AppError::NotFound)?;
        let role = auth
            .role_in(project.org_id)
            .ok_or_else(|| AppError::Forbidden("You do not have access to this project.".into()))?;
        Ok(Self { project, role })
    }

    /// 403 unless the role is one of `roles`.
    pub fn require(&self, roles: &[OrgRole]) -> Result<(), AppError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(AppError::Forbidden(format!(
                "Your role ({}) does not allow this.",
                self.role
            )))
        }
    }
}

const EDITORS: &[OrgRole] = &[OrgRole::Owner, OrgRole::Admin];
const OWNERS: &[OrgRole] = &[OrgRole::Owner];

#[derive(Template, WebTemplate)]
#[template(path = "projects/list.html")]
struct ListPage {
    shell: Shell,
    projects: Vec<ProjectRow>,
    can_create: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "projects/new.html")]
struct NewPage {
    shell: Shell,
    form: ProjectForm,
    error: Option<String>,
}

#[derive(Template, WebTemplate)]
#[template(path = "projects/settings.html")]
struct SettingsPage {
    shell: Shell,
    project: Project,
    role: OrgRole,
    is_owner: bool,
    form: ProjectForm,
    snippet: String,
    rules: crate::domain::drop_rules::DropRules,
    whitelist: bool,
    /// (key, op, value) rows, with empty rows to add more.
    filter_rows: Vec<(String, String, String)>,
    dropped: u64,
    /// (email, role, user id)
    members: Vec<(String, String, String)>,
    invite_link: Option<String>,
    message: Option<String>,
    error: Option<String>,
    /// The public link's state (never its token).
    public_link: PublicLinkView,
    /// The full public URL, right after a token was made: shown this once.
    public_link_url: Option<String>,
    /// For the project navigation (`projects/subnav.html`): the link prefix, this section,
    /// and the organization's other projects.
    base: String,
    section: &'static str,
    can_edit: bool,
    siblings: Vec<(String, String)>,
}

impl SettingsPage {
    /// Section links carry no filters from this page.
    fn query_for(&self, _slug: &str) -> String {
        String::new()
    }

    /// The project switcher's entries.
    fn siblings(&self) -> &[(String, String)] {
        &self.siblings
    }
}

/// What the settings page says about the public link.
struct PublicLinkView {
    enabled: bool,
    /// `2024-01-31 12:00 UTC` texts.
    since: Option<String>,
    token_made: Option<String>,
    revoked: Option<String>,
}

fn project_form(form: &CsrfForm) -> ProjectForm {
    ProjectForm {
        name: form.get("name").unwrap_or_default().to_string(),
        icon: form.get("icon").unwrap_or_default().to_string(),
        environment: form.get("environment").unwrap_or("production").to_string(),
        data_retention_days: form.get("dataRetentionDays").unwrap_or("90").to_string(),
    }
}

/// Page-level outcome shown on the settings page.
/// What a settings action says: `Ok` shows a message, `Err` re-renders with an error and status.
type Outcome = Result<Notice, (StatusCode, Notice)>;

fn done(message: impl Into<String>) -> Outcome {
    Ok(Notice {
        message: Some(message.into()),
        ..Default::default()
    })
}

fn refused(status: StatusCode, error: impl Into<String>) -> Outcome {
    Err((
        status,
        Notice {
            error: Some(error.into()),
            ..Default::default()
        },
    ))
}

#[derive(Default)]
struct Notice {
    message: Option<String>,
    error: Option<String>,
    invite_link: Option<String>,
    form: Option<Box<ProjectForm>>,
    public_link_url: Option<String>,
}

async fn render_settings(
    stores: &Stores,
    config: &Config,
    auth: &AuthUser,
    access: ProjectAccess,
    headers: &HeaderMap,
    notice: Notice,
) -> Result<SettingsPage, AppError> {
    let p = &access.project;
    let rules = stores.projects.drop_rules(p.id).await?;
    let mut filter_rows: Vec<(String, String, String)> = rules
        .filters
        .iter()
        .map(|f| {
            let op = serde_json::to_value(f.op)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            (f.key.clone(), op, f.value.clone())
        })
        .collect();
    filter_rows.extend((0..2).map(|_| (String::new(), "equals".to_string(), String::new())));
    let members = stores
        .accounts
        .members(p.org_id)
        .await?
        .into_iter()
        .map(|m| (m.user.email, m.role.to_string(), m.user.id.to_hex()))
        .collect();
    let snippet = snippet_of(config, headers, p);
    let link = public_links::state(stores, p.id).await?;
    let public_link = PublicLinkView {
        enabled: link.enabled,
        since: link.created_at.map(minute),
        token_made: link.last_regenerated_at.map(minute),
        revoked: link.revoked_at.map(minute),
    };
    let siblings = crate::http::analytics::sibling_projects(stores, &access.project).await?;
    Ok(SettingsPage {
        base: format!("/projects/{}", p.id),
        section: "settings",
        can_edit: true,
        siblings,
        public_link,
        public_link_url: notice.public_link_url,
        shell: Shell::of(auth),
        form: notice.form.map(|f| *f).unwrap_or_else(|| ProjectForm {
            name: p.name.clone(),
            icon: p.icon.clone(),
            environment: p.environment.clone(),
            data_retention_days: p.data_retention_days.to_string(),
        }),
        is_owner: access.role == OrgRole::Owner,
        role: access.role,
        snippet,
        whitelist: rules.mode == crate::domain::drop_rules::DropMode::Whitelist,
        rules,
        filter_rows,
        dropped: stores.stats.dropped_events(p.id).await?,
        members,
        invite_link: notice.invite_link,
        message: notice.message,
        error: notice.error,
        project: access.project,
    })
}

/// The SDK snippet for `project`, as the settings and setup pages show it.
fn snippet_of(config: &Config, headers: &HeaderMap, project: &Project) -> String {
    // Without a trusted address the snippet says so instead of guessing from the Host header.
    let base = super::links::base_url(config, headers)
        .unwrap_or_else(|| super::links::UNKNOWN_BASE.to_string());
    // In production the versioned URL is cached for a year; in development the plain one.
    let sdk = if config.production {
        super::sdk::sdk_versioned_path()
    } else {
        "/sdk/superinsights.js".to_string()
    };
    format!(
        "<script src=\"{base}{sdk}\" defer></script>\n<script>\n  window.addEventListener('load', function () {{\n    SuperInsights.init('{}', {{ apiUrl: '{base}' }});\n  }});\n</script>",
        project.public_api_key
    )
}

/// A project on the projects list, with its visitors today and their hourly sparkline.
struct ProjectRow {
    project: Project,
    today: u64,
    /// The sparkline's polyline points (96×24 box), last 24 hours by hour.
    points: String,
    /// The hourly figures in words, for screen readers.
    hourly_text: String,
}

/// The first-run page of a project: the snippet, and a live status that turns from "waiting"
/// to "receiving data" when the first event arrives (`js/realtime.js`).
#[derive(Template, WebTemplate)]
#[template(path = "projects/setup.html")]
struct SetupPage {
    shell: Shell,
    project: Project,
    snippet: String,
    curl: String,
    has_data: bool,
    can_edit: bool,
    base: String,
}

/// `GET /projects/{id}/setup`: where sign-up and a new project lead.
async fn show_setup(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    let p = &access.project;
    let has_data = crate::services::realtime::has_data(&stores, p.id).await?;
    let base = super::links::base_url(&config, &headers)
        .unwrap_or_else(|| super::links::UNKNOWN_BASE.to_string());
    let curl = format!(
        "curl -X POST {base}/v1/pageviews \\\n  -H \"Authorization: Bearer {}\" -H \"Content-Type: application/json\" \\\n  -d '{{\"url\":\"/hello\"}}'",
        p.public_api_key
    );
    Ok(SetupPage {
        shell: Shell::of(&auth),
        snippet: snippet_of(&config, &headers, p),
        curl,
        has_data,
        can_edit: EDITORS.contains(&access.role),
        base: format!("/projects/{}", p.id),
        project: access.project,
    }
    .into_response())
}

async fn list_projects(
    State(view): State<crate::state::ViewState>,
    auth: AuthUser,
) -> Result<Response, AppError> {
    let org = auth.require_org()?;
    let now = view.dashboards.now_ms();
    let projects = view.stores.projects.projects_of_org(org.id).await?;
    let figures = futures::future::try_join_all((projects.iter()).map(|p| {
        crate::services::realtime::visitors_today_cached(&view.stores, &view.dashboards, p.id, now)
    }))
    .await?;
    let projects = projects
        .into_iter()
        .zip(figures)
        .map(|(project, v)| ProjectRow {
            points: crate::services::realtime::sparkline_points(&v.hourly, 96.0, 24.0),
            hourly_text: v
                .hourly
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            today: v.today,
            project,
        })
        .collect();
    let can_create = auth.role_in(org.id) == Some(OrgRole::Owner) || auth.is_admin();
    Ok(ListPage {
        shell: Shell::of(&auth),
        projects,
        can_create,
    }
    .into_response())
}

async fn new_project(auth: AuthUser) -> Result<Response, AppError> {
    auth.require_org_owner()?;
    Ok(NewPage {
        shell: Shell::of(&auth),
        form: ProjectForm::default(),
        error: None,
    }
    .into_response())
}

async fn create_project(
    State(stores): State<crate::store::Stores>,
    auth: AuthUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let org = auth.require_org_owner()?.id;
    let raw = project_form(&form);
    let update = match raw.validate() {
        Ok(u) => u,
        Err(error) => {
            let page = NewPage {
                shell: Shell::of(&auth),
                form: raw,
                error: Some(error),
            };
            return Ok((StatusCode::BAD_REQUEST, page).into_response());
        }
    };
    let created = svc::create(&stores, org, &update).await?;
    Ok(Redirect::to(&format!("/projects/{}/setup", created.id)).into_response())
}

/// The project's dashboard. The id is a decoded path segment, so the target goes through the
/// redirect parser like any other user input (a `%0a` in it must not become a 500).
async fn project_home(Path(id): Path<String>) -> Redirect {
    Redirect::to(&crate::domain::redirect::redirect_target(
        Some(&format!("/projects/{id}/dashboard")),
        "/projects",
    ))
}

async fn show_settings(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(EDITORS)?;
    let project = access.project.id;
    let Some((message, url)) = just_made_link(&stores, &config, project, &headers).await else {
        return Ok(
            render_settings(&stores, &config, &auth, access, &headers, Notice::default())
                .await?
                .into_response(),
        );
    };
    let notice = Notice {
        message: Some(message.to_string()),
        public_link_url: Some(url),
        ..Default::default()
    };
    let page = render_settings(&stores, &config, &auth, access, &headers, notice).await?;
    // Shown once: the cookie is cleared, so a reload shows the page without the link.
    let clear = new_link_cookie(&config, project, "", 0);
    Ok(([(axum::http::header::SET_COOKIE, clear)], page).into_response())
}

async fn update_project(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let mut access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(EDITORS)?;
    let raw = project_form(&form);
    let outcome = match raw.validate() {
        Ok(update) => {
            access.project = svc::update(&stores, access.project.id, &update).await?;
            done("Project updated successfully.")
        }
        Err(error) => Err((
            StatusCode::BAD_REQUEST,
            Notice {
                error: Some(error),
                form: Some(Box::new(raw)),
                ..Default::default()
            },
        )),
    };
    settings_outcome(&stores, &config, &auth, access, &headers, outcome).await
}

/// The project changes that invalidate cached keys and dashboards themselves.
fn changes<'a>(stores: &'a Stores, caches: &'a ProjectCaches) -> svc::ProjectChanges<'a> {
    svc::ProjectChanges::new(stores, caches.ingestor.keys(), &caches.dashboards)
}

async fn regenerate_keys(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    State(caches): State<ProjectCaches>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    _form: CsrfForm,
) -> Result<Response, AppError> {
    let mut access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(OWNERS)?;
    access.project = changes(&stores, &caches)
        .regenerate_keys(access.project.id)
        .await?;
    let outcome = done("New keys generated. The old keys no longer work.");
    settings_outcome(&stores, &config, &auth, access, &headers, outcome).await
}

async fn save_drop_rules(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    State(caches): State<ProjectCaches>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(EDITORS)?;
    let parsed = svc::drop_rules_from_form(
        form.get("dropEnabled"),
        form.get("dropMode"),
        &form.all("dropFilterKey[]"),
        &form.all("dropFilterOp[]"),
        &form.all("dropFilterValue[]"),
    );
    let outcome = match parsed {
        Ok(rules) => {
            changes(&stores, &caches)
                .set_drop_rules(access.project.id, &rules)
                .await?;
            done("Drop rules saved.")
        }
        Err(error) => refused(StatusCode::BAD_REQUEST, error),
    };
    settings_outcome(&stores, &config, &auth, access, &headers, outcome).await
}

async fn drop_report(
    State(stores): State<Stores>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(EDITORS)?;
    let dropped = stores.stats.dropped_events(access.project.id).await?;
    Ok(Json(json!({"dropped": dropped})).into_response())
}

async fn add_user(
    State(stores): State<Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    State(config): State<Arc<Config>>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(EDITORS)?;
    let role = match form.get("role") {
        Some("owner") if access.role == OrgRole::Owner => OrgRole::Owner,
        Some("admin") => OrgRole::Admin,
        _ => OrgRole::Viewer,
    };
    let email = form.get("email").unwrap_or_default();
    let org = access.project.org_id;
    // Access is organization-wide: an existing user joins the organization, anyone else is
    // invited to it.
    let result = match orgs::add_existing(&stores, org, email, role).await {
        Err(MemberError::NotFound(_)) => {
            orgs::invite_to_org(&stores, org, email, role, auth.user.id, clock.now_ms())
                .await
                .map(|token| Notice {
                    message: Some(format!(
                        "{email} has no account yet: send them this invite link."
                    )),
                    invite_link: Some(super::links::link(
                        &config,
                        &headers,
                        &format!("/accept-invite?token={token}"),
                    )),
                    ..Default::default()
                })
        }
        other => other.map(|_| Notice {
            message: Some(format!("{email} now has access as {role}.")),
            ..Default::default()
        }),
    };
    let outcome = member_outcome(result)?;
    settings_outcome(&stores, &config, &auth, access, &headers, outcome).await
}

async fn remove_user(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(OWNERS)?;
    let user = form
        .get("userId")
        .and_then(DocId::parse)
        .ok_or_else(|| AppError::BadRequest("userId is required".into()))?;
    let result = orgs::remove_from_org(&stores, access.project.org_id, auth.user.id, user)
        .await
        .map(|_| Notice {
            message: Some("Member removed.".into()),
            ..Default::default()
        });
    let outcome = member_outcome(result)?;
    settings_outcome(&stores, &config, &auth, access, &headers, outcome).await
}

/// The settings page after an action: its message, or its error with the refusal's status.
async fn settings_outcome(
    stores: &Stores,
    config: &Config,
    auth: &AuthUser,
    access: ProjectAccess,
    headers: &HeaderMap,
    outcome: Outcome,
) -> Result<Response, AppError> {
    match outcome {
        Ok(notice) => Ok(
            render_settings(stores, config, auth, access, headers, notice)
                .await?
                .into_response(),
        ),
        Err((status, notice)) => Ok((
            status,
            render_settings(stores, config, auth, access, headers, notice).await?,
        )
            .into_response()),
    }
}

/// A refused membership change as an [`Outcome`].
fn member_outcome(result: Result<Notice, MemberError>) -> Result<Outcome, AppError> {
    match result {
        Ok(notice) => Ok(Ok(notice)),
        Err(e) => {
            let (status, error) = refusal(e)?;
            Ok(refused(status, error))
        }
    }
}

async fn delete_project(
    State(stores): State<Stores>,
    State(caches): State<ProjectCaches>,
    auth: AuthUser,
    Path(id): Path<String>,
    _form: CsrfForm,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(OWNERS)?;
    changes(&stores, &caches).delete(access.project.id).await?;
    Ok(Redirect::to("/projects").into_response())
}

async fn clear_data(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    State(caches): State<ProjectCaches>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    _form: CsrfForm,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(OWNERS)?;
    changes(&stores, &caches)
        .clear_data(access.project.id)
        .await?;
    let outcome = done("All analytics data of this project was deleted.");
    settings_outcome(&stores, &config, &auth, access, &headers, outcome).await
}

/// Enables the public link (owner only); the settings page it redirects to shows its URL once.
async fn enable_public_link(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    State(realtime): State<Arc<RealtimeHub>>,
    auth: AuthUser,
    Path(id): Path<String>,
    _form: CsrfForm,
) -> Result<Response, AppError> {
    new_public_link(&stores, &config, &realtime, &auth, &id, "enabled").await
}

/// Replaces the public link's token (owner only): the old URL stops working at once.
async fn regenerate_public_link(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    State(realtime): State<Arc<RealtimeHub>>,
    auth: AuthUser,
    Path(id): Path<String>,
    _form: CsrfForm,
) -> Result<Response, AppError> {
    new_public_link(&stores, &config, &realtime, &auth, &id, "regenerated").await
}

/// The cookie that carries a just-made public link's token from the POST to the settings page
/// it redirects to (POST-redirect-GET: a reload never makes another link). Only the browser
/// ever holds the raw token: the server stores its hash alone, so it cannot be put in the
/// session. Scoped to that one settings page, HttpOnly, SameSite=Strict, 5 minutes; cleared by
/// the page that shows it.
const NEW_LINK_COOKIE: &str = "si_new_link";

/// What the POST did, as the cookie says it: `enabled` or `regenerated`.
fn new_link_message(kind: &str) -> Option<&'static str> {
    match kind {
        "enabled" => Some("Public link enabled."),
        "regenerated" => Some("New public link made. The previous link no longer works."),
        _ => None,
    }
}

fn new_link_cookie(config: &Config, project: DocId, value: &str, max_age: u32) -> String {
    let secure = if config.production { "; Secure" } else { "" };
    format!(
        "{NEW_LINK_COOKIE}={value}; Path=/projects/{project}/settings; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    )
}

/// Makes a new token and redirects to the settings page, which shows the link once.
async fn new_public_link(
    stores: &Stores,
    config: &Config,
    realtime: &RealtimeHub,
    auth: &AuthUser,
    id: &str,
    kind: &str,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(stores, auth, id).await?;
    access.require(OWNERS)?;
    let project = access.project.id;
    let made =
        public_links::regenerate(stores, config.public_link_pepper.expose(), project).await?;
    // The old token stopped working: its open streams end.
    realtime.link_changed(project);
    let cookie = new_link_cookie(config, project, &format!("{kind}.{}", made.token), 300);
    Ok((
        [(axum::http::header::SET_COOKIE, cookie)],
        Redirect::to(&format!("/projects/{project}/settings#public-link")),
    )
        .into_response())
}

/// The link made just before (from [`NEW_LINK_COOKIE`]) when it is still the project's
/// current one: its message and URL, to show once.
async fn just_made_link(
    stores: &Stores,
    config: &Config,
    project: DocId,
    headers: &HeaderMap,
) -> Option<(&'static str, String)> {
    let value = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(name, _)| *name == NEW_LINK_COOKIE)
        .map(|(_, value)| value.to_string())?;
    let (kind, token) = value.split_once('.')?;
    let message = new_link_message(kind)?;
    public_links::verify(stores, config.public_link_pepper.expose(), project, token)
        .await
        .ok()?;
    let url = public_links::dashboard_url(&super::links::link(config, headers, ""), project, token);
    Some((message, url))
}

/// Disables the public link (owner only).
async fn revoke_public_link(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    State(realtime): State<Arc<RealtimeHub>>,
    auth: AuthUser,
    Path(id): Path<String>,
    headers: HeaderMap,
    _form: CsrfForm,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    access.require(OWNERS)?;
    public_links::revoke(
        &stores,
        &realtime,
        access.project.id,
        Some(access.project.org_id),
    )
    .await?;
    let outcome = done("Public link revoked. It no longer works.");
    settings_outcome(&stores, &config, &auth, access, &headers, outcome).await
}
