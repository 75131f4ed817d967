//! `/org`: the current organization — switching, renaming, members (add, invite, set role,
//! remove) and pending invites. Every member sees the page; only owners (and platform admins)
//! change anything. The rules themselves live in `services::orgs`.

use super::{
    rate_limit::{RateLimitLayer, Style},
    session::{self, AuthUser, CsrfForm},
    views::Shell,
};
use crate::{
    config::Config,
    domain::records::Organization,
    domain::{ids::DocId, redirect::redirect_target},
    error::{AppError, ErrorPageInfo},
    runtime::rate_limit::namespaces,
    runtime::realtime::RealtimeHub,
    services::orgs::{self as svc, MemberError},
    state::AppState,
    store::Stores,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use std::sync::Arc;

pub fn router(state: &AppState) -> Router<AppState> {
    let invites = RateLimitLayer::per_client_ip(
        state,
        namespaces::ORG_INVITES_IP,
        state.config.rate_limits.invites_ip,
        Style::Html,
    );
    Router::new()
        .route("/org/switch", post(switch_org))
        .route("/org/users", get(show_users))
        .route("/org/rename", post(rename_org))
        .route("/org/users/add", post(add_user))
        .route("/org/users/invite", post(invite_user).route_layer(invites))
        .route("/org/users/set-role", post(set_role))
        .route("/org/users/remove", post(remove_user))
        .route("/org/invites/revoke", post(revoke_invite))
        .route("/org/public-links", get(list_public_links))
        .route("/org/public-links/revoke", post(revoke_public_link))
        .route(
            "/org/public-links/{project_id}/revoke",
            post(revoke_public_link_at),
        )
}

/// `2024-01-31` (UTC) for tables.
pub(super) fn day(ms: i64) -> String {
    crate::domain::timestamp::to_iso(ms)
        .chars()
        .take(10)
        .collect()
}

/// `2024-01-31 12:00 UTC`.
pub(super) fn minute(ms: i64) -> String {
    let iso = crate::domain::timestamp::to_iso(ms);
    format!("{} {} UTC", &iso[..10], &iso[11..16])
}

/// A refusal the user may read: a JSON `{"error"}` body for API clients, and the HTML error
/// page with `message` for browsers (through `pages::html_errors`).
pub(super) fn refusal_page(status: StatusCode, message: String) -> Response {
    let mut response = (status, Json(serde_json::json!({ "error": message }))).into_response();
    response
        .extensions_mut()
        .insert(ErrorPageInfo::new(message));
    response
}

/// Splits a service refusal into (status, text) to show on the page; store failures stay errors.
pub(super) fn refusal(e: MemberError) -> Result<(StatusCode, String), AppError> {
    match e {
        MemberError::Invalid(m) => Ok((StatusCode::BAD_REQUEST, m)),
        MemberError::Forbidden(m) => Ok((StatusCode::FORBIDDEN, m)),
        MemberError::Conflict(m) => Ok((StatusCode::CONFLICT, m)),
        MemberError::NotFound(m) => Ok((StatusCode::NOT_FOUND, m)),
        MemberError::Store(e) => Err(e.into()),
    }
}

/// A required id field: 400 when missing or malformed.
pub(super) fn id_field(form: &CsrfForm, name: &str) -> Result<DocId, AppError> {
    form.get(name)
        .and_then(DocId::parse)
        .ok_or_else(|| AppError::BadRequest(format!("{name} is required")))
}

pub(super) struct MemberRow {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    pub is_you: bool,
}

pub(super) struct InviteRow {
    pub id: String,
    pub email: String,
    pub role: String,
    pub expires: String,
    pub expired: bool,
}

impl InviteRow {
    /// The row as of `now` (epoch ms): whether the invite has expired by then.
    pub(super) fn of(i: &crate::domain::records::Invite, now: i64) -> Self {
        Self {
            id: i.id.to_hex(),
            email: i.email.clone(),
            role: i.scope.role_str().to_string(),
            expires: minute(i.expires_at),
            expired: i.expires_at <= now,
        }
    }
}

/// What an action reports on the re-rendered page.
#[derive(Default)]
pub(super) struct Notice {
    pub message: Option<String>,
    pub error: Option<String>,
    /// An invite link, shown once.
    pub invite_link: Option<String>,
}

impl Notice {
    pub(super) fn ok(message: String) -> Self {
        Self {
            message: Some(message),
            ..Default::default()
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "org/users.html")]
struct UsersPage {
    shell: Shell,
    org: Organization,
    role: String,
    can_manage: bool,
    members: Vec<MemberRow>,
    invites: Vec<InviteRow>,
    notice: Notice,
}

async fn render_users(
    stores: &Stores,
    auth: &AuthUser,
    notice: Notice,
) -> Result<UsersPage, AppError> {
    let org = auth.require_org()?.clone();
    let can_manage = auth.require_org_owner().is_ok();
    let members = stores
        .accounts
        .members(org.id)
        .await?
        .into_iter()
        .map(|m| MemberRow {
            id: m.user.id.to_hex(),
            is_you: m.user.id == auth.user.id,
            email: m.user.email,
            name: m.user.name.unwrap_or_default(),
            role: m.role.to_string(),
        })
        .collect();
    // Invitees' addresses are for the people who manage the organization.
    let invites = if can_manage {
        stores
            .invites
            .pending_invites(Some(org.id))
            .await?
            .iter()
            .map(|i| InviteRow::of(i, crate::domain::timestamp::now_ms()))
            .collect()
    } else {
        Vec::new()
    };
    Ok(UsersPage {
        shell: Shell::of(auth),
        role: auth
            .role_in(org.id)
            .map(|r| r.to_string())
            .unwrap_or_default(),
        org,
        can_manage,
        members,
        invites,
        notice,
    })
}

/// A page after a membership action: `render` with the notice, or with the refusal's message
/// and its status. Serves the organization, admin users and admin organizations pages.
pub(super) async fn render_outcome<P: IntoResponse>(
    result: Result<Notice, MemberError>,
    render: impl AsyncFnOnce(Notice) -> Result<P, AppError>,
) -> Result<Response, AppError> {
    let (status, notice) = match result {
        Ok(notice) => (StatusCode::OK, notice),
        Err(e) => {
            let (status, error) = refusal(e)?;
            (
                status,
                Notice {
                    error: Some(error),
                    ..Default::default()
                },
            )
        }
    };
    Ok((status, render(notice).await?).into_response())
}

/// The organization page after an action.
async fn outcome(
    stores: &Stores,
    auth: &AuthUser,
    result: Result<Notice, MemberError>,
) -> Result<Response, AppError> {
    render_outcome(result, async |notice| {
        render_users(stores, auth, notice).await
    })
    .await
}

/// Makes another of the user's organizations current; redirects only within this site.
async fn switch_org(auth: AuthUser, form: CsrfForm) -> Result<Response, AppError> {
    let org = form
        .get("orgId")
        .and_then(DocId::parse)
        .ok_or_else(|| AppError::BadRequest("orgId is required".into()))?;
    if auth.role_in(org).is_none()
        || !(auth.is_admin() || auth.memberships.iter().any(|(o, _)| o.id == org))
    {
        return Err(AppError::Forbidden(
            "You are not a member of that organization.".into(),
        ));
    }
    auth.session
        .insert("org", org)
        .await
        .map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Redirect::to(&redirect_target(form.get("redirectTo"), "/projects")).into_response())
}

async fn show_users(State(stores): State<Stores>, auth: AuthUser) -> Result<Response, AppError> {
    Ok(render_users(&stores, &auth, Notice::default())
        .await?
        .into_response())
}

async fn rename_org(
    State(stores): State<Stores>,
    mut auth: AuthUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let org = auth.require_org_owner()?.id;
    let result =
        match svc::rename_org(&stores, org, form.get("name").unwrap_or_default(), false).await {
            Err(MemberError::Store(e)) => return Err(e.into()),
            Ok(name) => {
                if let Some(current) = auth.current_org.as_mut() {
                    current.name = name.clone();
                }
                for (o, _) in auth.memberships.iter_mut().filter(|(o, _)| o.id == org) {
                    o.name = name.clone();
                }
                Ok(Notice::ok(format!(
                    "The organization is now called {name}."
                )))
            }
            Err(e) => Err(e),
        };
    outcome(&stores, &auth, result).await
}

async fn add_user(
    State(stores): State<Stores>,
    auth: AuthUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let org = auth.require_org_owner()?.id;
    let role = svc::org_role(form.get("role"));
    let email = form.get("email").unwrap_or_default();
    let result = svc::add_existing(&stores, org, email, role).await;
    if let Ok(user) = &result
        && user.id == auth.user.id
    {
        // A platform admin added themselves: their privileges changed.
        session::rotate(&auth.session).await?;
        return Ok(Redirect::to("/org/users").into_response());
    }
    let result = result.map(|user| Notice::ok(format!("{} now has access as {role}.", user.email)));
    outcome(&stores, &auth, result).await
}

async fn invite_user(
    State(stores): State<Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    State(config): State<Arc<Config>>,
    auth: AuthUser,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let org = auth.require_org_owner()?.id;
    let role = svc::org_role(form.get("role"));
    let email = form.get("email").unwrap_or_default();
    let result = svc::invite_to_org(&stores, org, email, role, auth.user.id, clock.now_ms())
        .await
        .map(|token| Notice {
            message: Some(format!(
                "Invite created for {} as {role}. Send them this link; it is shown only once and is valid for 7 days.",
                email.trim().to_lowercase()
            )),
            invite_link: Some(super::links::link(
                &config,
                &headers,
                &format!("/accept-invite?token={token}"),
            )),
            ..Default::default()
        });
    outcome(&stores, &auth, result).await
}

async fn set_role(
    State(stores): State<Stores>,
    auth: AuthUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let org = auth.require_org_owner()?.id;
    let user = id_field(&form, "userId")?;
    let role = svc::org_role(form.get("role"));
    let result = svc::set_member_role(&stores, org, user, role).await;
    if result.is_ok() && user == auth.user.id {
        // The signed-in user changed their own privileges: new session id, fresh page.
        session::rotate(&auth.session).await?;
        return Ok(Redirect::to("/org/users").into_response());
    }
    let result = result.map(|()| Notice::ok(format!("Role changed to {role}.")));
    outcome(&stores, &auth, result).await
}

async fn remove_user(
    State(stores): State<Stores>,
    auth: AuthUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let org = auth.require_org_owner()?.id;
    let user = id_field(&form, "userId")?;
    let result = svc::remove_from_org(&stores, org, auth.user.id, user)
        .await
        .map(|removed| Notice::ok(format!("{} was removed.", removed.email)));
    outcome(&stores, &auth, result).await
}

async fn revoke_invite(
    State(stores): State<Stores>,
    auth: AuthUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let org = auth.require_org_owner()?.id;
    let invite = id_field(&form, "inviteId")?;
    let result = svc::revoke_invite(&stores, Some(org), invite)
        .await
        .map(|i| Notice::ok(format!("The invite for {} was revoked.", i.email)));
    outcome(&stores, &auth, result).await
}

/// One enabled public link in the organization and admin lists (never the token).
pub(super) struct PublicLinkRow {
    pub project_id: String,
    pub project: String,
    pub icon: String,
    pub since: String,
    pub token_made: String,
}

impl PublicLinkRow {
    pub(super) fn of(link: &crate::domain::records::PublicLink) -> Self {
        let when = |ms: Option<i64>| ms.map(minute).unwrap_or_default();
        Self {
            project_id: link.project.id.to_hex(),
            project: link.project.name.clone(),
            icon: link.project.icon.clone(),
            since: when(link.created_at),
            token_made: when(link.last_regenerated_at),
        }
    }
}

/// The refusal for revoking a link of a project that is not there (or not in the organization).
pub(super) fn no_such_project() -> MemberError {
    MemberError::NotFound("Project not found.".into())
}

#[derive(Template, WebTemplate)]
#[template(path = "org/public_links.html")]
struct PublicLinksPage {
    shell: Shell,
    org: Organization,
    links: Vec<PublicLinkRow>,
    notice: Notice,
}

async fn render_public_links(
    stores: &Stores,
    auth: &AuthUser,
    notice: Notice,
) -> Result<PublicLinksPage, AppError> {
    let org = auth.require_org_owner()?.clone();
    let links = crate::services::public_links::list(stores, Some(org.id))
        .await?
        .iter()
        .map(PublicLinkRow::of)
        .collect();
    Ok(PublicLinksPage {
        shell: Shell::of(auth),
        org,
        links,
        notice,
    })
}

/// The organization's enabled public links (owners and platform admins).
async fn list_public_links(
    State(stores): State<Stores>,
    auth: AuthUser,
) -> Result<Response, AppError> {
    Ok(render_public_links(&stores, &auth, Notice::default())
        .await?
        .into_response())
}

/// SuperInsights 1.x's form: `projectId` in the body.
async fn revoke_public_link(
    State(stores): State<Stores>,
    State(realtime): State<Arc<RealtimeHub>>,
    auth: AuthUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let project = id_field(&form, "projectId")?;
    revoke_link_of_org(&stores, &realtime, &auth, project).await
}

async fn revoke_public_link_at(
    State(stores): State<Stores>,
    State(realtime): State<Arc<RealtimeHub>>,
    auth: AuthUser,
    axum::extract::Path(project): axum::extract::Path<String>,
    _form: CsrfForm,
) -> Result<Response, AppError> {
    let project = DocId::parse(&project).ok_or(AppError::NotFound)?;
    revoke_link_of_org(&stores, &realtime, &auth, project).await
}

async fn revoke_link_of_org(
    stores: &Stores,
    realtime: &RealtimeHub,
    auth: &AuthUser,
    project: DocId,
) -> Result<Response, AppError> {
    let org = auth.require_org_owner()?.id;
    let result = crate::services::public_links::revoke(stores, realtime, project, Some(org))
        .await?
        .map(|p| Notice::ok(format!("The public link of {} was revoked.", p.name)))
        .ok_or_else(no_such_project);
    render_outcome(result, async |notice| {
        render_public_links(stores, auth, notice).await
    })
    .await
}
