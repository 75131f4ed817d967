//! `/admin`: the platform admin's pages — users (roles, passwords, deletion, platform invites),
//! organizations (create, rename, disable, enable) and the system page (every piece's backend
//! and live state, recent fallbacks, version and uptime). Only platform admins get in
//! ([`AdminUser`]); everyone else gets the 403 page. The rules live in `services::orgs`.

use super::{
    org::{InviteRow, Notice, day, id_field, refusal, render_outcome},
    rate_limit::{RateLimitLayer, Style},
    session::{self, AuthUser, CsrfForm},
    views::Shell,
};
use crate::{config::Config, runtime::realtime::RealtimeHub};
use crate::{
    domain::records::{OrgStatus, PlatformRole},
    error::AppError,
    runtime::rate_limit::namespaces,
    services::orgs::{self as svc, MemberError},
    state::AppState,
    store::Stores,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Json, Router,
    extract::{FromRef, FromRequestParts, Query, State},
    http::{HeaderMap, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde_json::json;
use std::{collections::HashMap, sync::Arc};

pub fn router(state: &AppState) -> Router<AppState> {
    let invites = RateLimitLayer::per_client_ip(
        state,
        namespaces::PLATFORM_INVITES_IP,
        state.config.rate_limits.invites_ip,
        Style::Html,
    );
    Router::new()
        .route("/admin", get(hub))
        .route("/admin/registration", post(set_registration))
        .route("/admin/system", get(system))
        .route("/admin/users", get(list_users))
        .route("/admin/users/set-role", post(set_role))
        .route("/admin/users/set-password", post(set_password))
        .route("/admin/users/delete", post(delete_user))
        .route(
            "/admin/users/platform-invite",
            post(platform_invite).route_layer(invites),
        )
        .route("/admin/invites/revoke", post(revoke_invite))
        .route("/admin/orgs", get(list_orgs).post(create_org))
        .route("/admin/orgs/rename", post(rename_org))
        .route("/admin/orgs/disable", post(disable_org))
        .route("/admin/orgs/enable", post(enable_org))
        .route("/admin/public-links", get(list_public_links))
        .route("/admin/public-links/revoke", post(revoke_public_link))
        .route(
            "/admin/public-links/{project_id}/revoke",
            post(revoke_public_link_at),
        )
}

/// A signed-in platform admin; anyone else is refused with 403 (signed-out browsers go to the
/// login page first).
pub struct AdminUser(pub AuthUser);

impl<S> FromRequestParts<S> for AdminUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthUser::from_request_parts(parts, state).await?;
        if !auth.is_admin() {
            return Err(AppError::Forbidden(
                "This page is for platform administrators only.".into(),
            )
            .into_response());
        }
        Ok(AdminUser(auth))
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/hub.html")]
struct HubPage {
    shell: Shell,
    users: usize,
    admins: usize,
    orgs: usize,
    disabled_orgs: usize,
    invites: usize,
    /// Whether anyone may register now (the admin's choice, else `REGISTRATION_ENABLED`).
    registration_open: bool,
    /// What `REGISTRATION_ENABLED` says (the default until an admin chooses).
    registration_configured: bool,
}

struct UserRow {
    id: String,
    email: String,
    name: String,
    role: String,
    created: String,
    is_you: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/users.html")]
struct UsersPage {
    shell: Shell,
    users: Vec<UserRow>,
    invites: Vec<InviteRow>,
    notice: Notice,
}

struct OrgRow {
    id: String,
    name: String,
    slug: String,
    active: bool,
    members: usize,
    created: String,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/orgs.html")]
struct OrgsPage {
    shell: Shell,
    orgs: Vec<OrgRow>,
    notice: Notice,
}

async fn hub(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    AdminUser(auth): AdminUser,
) -> Result<Response, AppError> {
    let users = stores.accounts.list_users().await?;
    let orgs = stores.accounts.list_orgs().await?;
    let invites = stores.invites.pending_invites(None).await?;
    Ok(HubPage {
        shell: Shell::of(&auth),
        users: users.len(),
        admins: users
            .iter()
            .filter(|u| u.role == PlatformRole::Admin)
            .count(),
        orgs: orgs.len(),
        disabled_orgs: orgs
            .iter()
            .filter(|o| o.status != OrgStatus::Active)
            .count(),
        invites: invites.len(),
        registration_open: crate::services::accounts::registration_open(
            &stores,
            config.registration_enabled,
        )
        .await?,
        registration_configured: config.registration_enabled,
    }
    .into_response())
}

/// `POST /admin/registration` (`open=true|false`): opens or closes registration for every
/// instance (stored), then back to the hub.
async fn set_registration(
    State(stores): State<crate::store::Stores>,
    AdminUser(auth): AdminUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let open = match form.get("open") {
        Some("true") => true,
        Some("false") => false,
        _ => return Err(AppError::BadRequest("open must be true or false".into())),
    };
    stores.accounts.set_registration_setting(open).await?;
    tracing::info!(admin = %auth.user.id, open, "registration switched");
    Ok(axum::response::Redirect::to("/admin#registration").into_response())
}

/// One row of the system page: a piece, its backend and its live state.
struct PieceRow {
    piece: &'static str,
    backend: String,
    state: String,
    ok: bool,
}

struct FallbackRow {
    piece: &'static str,
    reason: &'static str,
    first: String,
    last: String,
    calls: u64,
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/system.html")]
struct SystemPage {
    shell: Shell,
    version: &'static str,
    uptime: String,
    pieces: Vec<PieceRow>,
    fallbacks: Vec<FallbackRow>,
}

/// `GET /admin/system`: the operator's first stop when something is slow. JSON clients get the
/// snapshot itself.
async fn system(
    State(state): State<AppState>,
    AdminUser(auth): AdminUser,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    let s = super::health::Snapshot::take(&state).await;
    let wants_json = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    if wants_json {
        return Ok(Json(json!({
            "version": env!("CARGO_PKG_VERSION"),
            "uptimeSeconds": s.uptime.as_secs(),
            "snapshot": s,
            "recentFallbacks": crate::telemetry::recent_fallbacks().iter().map(|r| json!({
                "piece": r.piece, "reason": r.reason, "firstMs": r.first_ms,
                "lastMs": r.last_ms, "calls": r.calls,
            })).collect::<Vec<_>>(),
        }))
        .into_response());
    }
    let redis_state = match (&s.redis.configured, &s.redis.breaker) {
        (false, _) => ("not configured".to_string(), true),
        (true, Some(b)) if b.open => (
            format!("not answering: breaker open ({} trips)", b.trips),
            false,
        ),
        (true, _) if s.redis.connected => ("connected".to_string(), true),
        (true, _) => ("down: every piece on its fallback".to_string(), false),
    };
    let cache_state = match s.cache.hit_ratio() {
        Some(r) => format!(
            "{:.1} % hits ({} hits, {} misses)",
            r * 100.0,
            s.cache.hits,
            s.cache.misses
        ),
        None => "no lookups yet".to_string(),
    };
    let (jobs_state, jobs_ok) = match s.jobs {
        Some(c) => (
            format!(
                "{} queued, {} running, {} failed",
                c.queued, c.running, c.failed
            ),
            true,
        ),
        None => ("counts unavailable".to_string(), false),
    };
    let ingest_state = if !s.ingest.writer_alive {
        "writer stopped".to_string()
    } else if !s.ingest.store_taking_writes {
        format!(
            "store refusing commits: spooling ({} bytes waiting)",
            s.ingest.spool_bytes
        )
    } else if s.ingest.spool_bytes > 0 {
        format!("storing; draining {} spooled bytes", s.ingest.spool_bytes)
    } else {
        "storing".to_string()
    };
    let pieces = vec![
        PieceRow {
            piece: "Store",
            backend: s.store_backend.to_string(),
            state: if s.store_ok {
                "answering"
            } else {
                "not answering"
            }
            .into(),
            ok: s.store_ok,
        },
        PieceRow {
            piece: "Redis",
            backend: if s.redis.configured { "redis" } else { "—" }.into(),
            state: redis_state.0,
            ok: redis_state.1,
        },
        PieceRow {
            piece: "Sessions",
            backend: s.sessions.to_string(),
            state: String::new(),
            ok: true,
        },
        PieceRow {
            piece: "Dashboard cache",
            backend: s.cache.backend.to_string(),
            state: cache_state,
            ok: true,
        },
        PieceRow {
            piece: "Rate limits",
            backend: s.rate_limits.to_string(),
            state: String::new(),
            ok: true,
        },
        PieceRow {
            piece: "Job queue",
            backend: s.job_backend.to_string(),
            state: jobs_state,
            ok: jobs_ok,
        },
        PieceRow {
            piece: "Ingestion",
            backend: "bounded queue, group commit, disk spool".into(),
            state: ingest_state,
            ok: s.ingest.ok,
        },
    ];
    let fallbacks = crate::telemetry::recent_fallbacks()
        .into_iter()
        .map(|r| FallbackRow {
            piece: r.piece,
            reason: r.reason,
            first: crate::domain::timestamp::to_iso(r.first_ms),
            last: crate::domain::timestamp::to_iso(r.last_ms),
            calls: r.calls,
        })
        .collect();
    let secs = s.uptime.as_secs();
    Ok(SystemPage {
        shell: Shell::of(&auth),
        version: env!("CARGO_PKG_VERSION"),
        uptime: format!(
            "{}d {}h {}m",
            secs / 86_400,
            secs % 86_400 / 3_600,
            secs % 3_600 / 60
        ),
        pieces,
        fallbacks,
    }
    .into_response())
}

async fn render_users(
    stores: &Stores,
    auth: &AuthUser,
    notice: Notice,
) -> Result<UsersPage, AppError> {
    let users = stores
        .accounts
        .list_users()
        .await?
        .into_iter()
        .map(|u| UserRow {
            id: u.id.to_hex(),
            is_you: u.id == auth.user.id,
            email: u.email,
            name: u.name.unwrap_or_default(),
            role: u.role.to_string(),
            created: day(u.created_at),
        })
        .collect();
    let invites = stores
        .invites
        .pending_invites(None)
        .await?
        .iter()
        .map(|i| InviteRow::of(i, crate::domain::timestamp::now_ms()))
        .collect();
    Ok(UsersPage {
        shell: Shell::of(auth),
        users,
        invites,
        notice,
    })
}

/// The users page after an action: the notice, or the refusal with its status.
async fn users_outcome(
    stores: &Stores,
    auth: &AuthUser,
    result: Result<Notice, MemberError>,
) -> Result<Response, AppError> {
    render_outcome(result, async |notice| {
        render_users(stores, auth, notice).await
    })
    .await
}

async fn list_users(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    // Only fixed texts: a query string must not put words on the page.
    let notice = match query.get("notice").map(String::as_str) {
        Some("deleted") => Notice {
            message: Some("User deleted.".into()),
            ..Default::default()
        },
        _ => Notice::default(),
    };
    Ok(render_users(&stores, &auth, notice).await?.into_response())
}

async fn set_role(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let user = id_field(&form, "userId")?;
    let role = svc::platform_role(form.get("role"))
        .ok_or_else(|| AppError::BadRequest("role must be user or admin".into()))?;
    let result = svc::set_platform_role(&stores, user, role).await;
    if result.is_ok() && user == auth.user.id {
        // Own privileges changed: new session id; a demoted admin leaves the admin area.
        session::rotate(&auth.session).await?;
        let to = if role == PlatformRole::Admin {
            "/admin/users"
        } else {
            "/projects"
        };
        return Ok(Redirect::to(to).into_response());
    }
    let result = result.map(|u| Notice::ok(format!("{} is now {role}.", u.email)));
    users_outcome(&stores, &auth, result).await
}

async fn set_password(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let user = id_field(&form, "userId")?;
    let result = svc::set_password(&stores, user, form.raw("password")).await;
    // The change ends every session of that user; an admin changing their own password stays
    // signed in on this one.
    if let Ok(updated) = &result
        && updated.id == auth.user.id
    {
        let org = auth.current_org.as_ref().map(|o| o.id);
        session::sign_in(&auth.session, updated, org).await?;
        // A new session id and CSRF token: load the page afresh.
        return Ok(axum::response::Redirect::to("/admin/users").into_response());
    }
    let result = result.map(|u| Notice::ok(format!("The password of {} was changed.", u.email)));
    users_outcome(&stores, &auth, result).await
}

fn wants_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"))
}

/// Deletes a user and their memberships. JSON clients get SuperInsights' `{success, message}`;
/// browsers go back to the list.
async fn delete_user(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let json = wants_json(&headers);
    let Some(user) = form
        .get("userId")
        .and_then(crate::domain::ids::DocId::parse)
    else {
        let message = "Invalid user id".to_string();
        if json {
            return Ok((
                StatusCode::BAD_REQUEST,
                Json(json!({"success": false, "message": message})),
            )
                .into_response());
        }
        return Err(AppError::BadRequest(message));
    };
    match svc::delete_user(&stores, auth.user.id, user).await {
        Ok(_) if json => Ok(
            Json(json!({"success": true, "message": "User deleted successfully"})).into_response(),
        ),
        Ok(_) => Ok(Redirect::to("/admin/users?notice=deleted").into_response()),
        Err(e) if json => {
            let (status, message) = refusal(e)?;
            Ok((status, Json(json!({"success": false, "message": message}))).into_response())
        }
        Err(e) => users_outcome(&stores, &auth, Err(e)).await,
    }
}

async fn platform_invite(
    State(stores): State<Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    State(config): State<Arc<Config>>,
    AdminUser(auth): AdminUser,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let role = svc::platform_role(form.get("role")).unwrap_or(PlatformRole::User);
    let email = form.get("email").unwrap_or_default();
    let result = svc::invite_to_platform(&stores, email, role, auth.user.id, clock.now_ms())
        .await
        .map(|token| Notice {
            message: Some(format!(
                "Invite created for {} as {role}. Send them this link; it is shown only once and is valid for 7 days.",
                email.trim().to_lowercase()
            )),
            invite_link: Some(super::links::link(
                &config,
                &headers,
                &format!("/accept-platform-invite?token={token}"),
            )),
            ..Default::default()
        });
    users_outcome(&stores, &auth, result).await
}

async fn revoke_invite(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let invite = id_field(&form, "inviteId")?;
    let result = svc::revoke_invite(&stores, None, invite)
        .await
        .map(|i| Notice::ok(format!("The invite for {} was revoked.", i.email)));
    users_outcome(&stores, &auth, result).await
}

async fn render_orgs(
    stores: &Stores,
    auth: &AuthUser,
    notice: Notice,
) -> Result<OrgsPage, AppError> {
    let mut orgs = Vec::new();
    for o in stores.accounts.list_orgs().await? {
        orgs.push(OrgRow {
            id: o.id.to_hex(),
            members: stores.accounts.members(o.id).await?.len(),
            active: o.status == OrgStatus::Active,
            created: day(o.created_at),
            name: o.name,
            slug: o.slug,
        });
    }
    Ok(OrgsPage {
        shell: Shell::of(auth),
        orgs,
        notice,
    })
}

async fn orgs_outcome(
    stores: &Stores,
    auth: &AuthUser,
    result: Result<String, MemberError>,
) -> Result<Response, AppError> {
    let result = result.map(|message| Notice {
        message: Some(message),
        ..Default::default()
    });
    render_outcome(result, async |notice| {
        render_orgs(stores, auth, notice).await
    })
    .await
}

async fn list_orgs(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
) -> Result<Response, AppError> {
    Ok(render_orgs(&stores, &auth, Notice::default())
        .await?
        .into_response())
}

async fn create_org(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let result = svc::create_org(&stores, form.get("name").unwrap_or_default(), auth.user.id).await;
    if result.is_ok() {
        // The creator became an owner of a new organization.
        session::rotate(&auth.session).await?;
    }
    let result = result.map(|o| format!("{} was created; you are its owner.", o.name));
    orgs_outcome(&stores, &auth, result).await
}

/// The organization named by `orgId`, or a `NotFound` refusal.
async fn org_of(
    stores: &Stores,
    form: &CsrfForm,
) -> Result<Result<crate::domain::records::Organization, MemberError>, AppError> {
    let id = id_field(form, "orgId")?;
    Ok(stores
        .accounts
        .org(id)
        .await?
        .ok_or_else(|| MemberError::NotFound("Organization not found.".into())))
}

async fn rename_org(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let result = match org_of(&stores, &form).await? {
        Ok(org) => {
            match svc::rename_org(&stores, org.id, form.get("name").unwrap_or_default(), true).await
            {
                Ok(name) => Ok(format!("{} is now called {name}.", org.name)),
                Err(MemberError::Store(e)) => return Err(e.into()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    };
    orgs_outcome(&stores, &auth, result).await
}

async fn set_org_status(
    stores: &Stores,
    auth: &AuthUser,
    form: &CsrfForm,
    status: OrgStatus,
) -> Result<Response, AppError> {
    let result = match org_of(stores, form).await? {
        Ok(org) => {
            if let Err(e) = svc::set_org_status(stores, org.id, status).await {
                return Err(match e {
                    MemberError::Store(e) => e.into(),
                    other => AppError::Internal(other.to_string()),
                });
            }
            if stores
                .accounts
                .member_role(org.id, auth.user.id)
                .await?
                .is_some()
            {
                // The admin's own organizations changed (lost one, or regained one).
                session::rotate(&auth.session).await?;
            }
            Ok(if status == OrgStatus::Active {
                format!("{} is enabled again.", org.name)
            } else {
                format!("{} is disabled; its members lost access.", org.name)
            })
        }
        Err(e) => Err(e),
    };
    orgs_outcome(stores, auth, result).await
}

async fn disable_org(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    set_org_status(&stores, &auth, &form, OrgStatus::Disabled).await
}

async fn enable_org(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    set_org_status(&stores, &auth, &form, OrgStatus::Active).await
}

#[derive(Template, WebTemplate)]
#[template(path = "admin/public_links.html")]
struct PublicLinksPage {
    shell: Shell,
    /// (link, organization name)
    links: Vec<(super::org::PublicLinkRow, String)>,
    notice: Notice,
}

async fn render_public_links(
    stores: &Stores,
    auth: &AuthUser,
    notice: Notice,
) -> Result<PublicLinksPage, AppError> {
    let orgs: HashMap<_, _> = stores
        .accounts
        .list_orgs()
        .await?
        .into_iter()
        .map(|o| (o.id, o.name))
        .collect();
    let links = crate::services::public_links::list(stores, None)
        .await?
        .iter()
        .map(|l| {
            let org = orgs.get(&l.project.org_id).cloned().unwrap_or_default();
            (super::org::PublicLinkRow::of(l), org)
        })
        .collect();
    Ok(PublicLinksPage {
        shell: Shell::of(auth),
        links,
        notice,
    })
}

/// Every enabled public link on the platform.
async fn list_public_links(
    State(stores): State<Stores>,
    AdminUser(auth): AdminUser,
) -> Result<Response, AppError> {
    Ok(render_public_links(&stores, &auth, Notice::default())
        .await?
        .into_response())
}

/// SuperInsights 1.x's form: `projectId` in the body.
async fn revoke_public_link(
    State(stores): State<Stores>,
    State(realtime): State<Arc<RealtimeHub>>,
    AdminUser(auth): AdminUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let project = id_field(&form, "projectId")?;
    revoke_any_link(&stores, &realtime, &auth, project).await
}

async fn revoke_public_link_at(
    State(stores): State<Stores>,
    State(realtime): State<Arc<RealtimeHub>>,
    AdminUser(auth): AdminUser,
    axum::extract::Path(project): axum::extract::Path<String>,
    _form: CsrfForm,
) -> Result<Response, AppError> {
    let project = crate::domain::ids::DocId::parse(&project).ok_or(AppError::NotFound)?;
    revoke_any_link(&stores, &realtime, &auth, project).await
}

async fn revoke_any_link(
    stores: &Stores,
    realtime: &RealtimeHub,
    auth: &AuthUser,
    project: crate::domain::ids::DocId,
) -> Result<Response, AppError> {
    let result = crate::services::public_links::revoke(stores, realtime, project, None)
        .await?
        .map(|p| Notice::ok(format!("The public link of {} was revoked.", p.name)))
        .ok_or_else(super::org::no_such_project);
    render_outcome(result, async |notice| {
        render_public_links(stores, auth, notice).await
    })
    .await
}
