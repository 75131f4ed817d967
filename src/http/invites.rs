//! Invite acceptance (public, under the session layer): `/accept-invite` for organization invites
//! and `/accept-platform-invite` for platform invites. Someone without an account picks a name
//! and password; an existing account joins when signed in as the invited email, or confirms with
//! its password. Accepting signs in (new session id) and lands on `/projects`.

use super::{
    org::refusal_page,
    session::{self, CsrfForm},
};
use crate::{
    domain::ids::DocId,
    domain::records::Invite,
    error::AppError,
    services::orgs::{self as svc, Acceptance, InviteKind, MemberError},
    state::AppState,
    store::Stores,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Router,
    extract::{Query, State},
    response::{IntoResponse, Redirect, Response},
    routing::get,
};
use std::collections::HashMap;
use tower_sessions::Session;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/accept-invite",
            get(org_invite_form).post(accept_org_invite),
        )
        .route(
            "/accept-platform-invite",
            get(platform_invite_form).post(accept_platform_invite),
        )
}

#[derive(Template, WebTemplate)]
#[template(path = "invite/accept.html")]
struct AcceptPage {
    csrf: String,
    action: &'static str,
    token: String,
    email: String,
    /// What the invite is to: the organization's name, or the platform.
    target: String,
    role: String,
    /// The email has no account yet: ask for a name and a password.
    new_account: bool,
    /// Signed in as the invited account: a button is enough.
    signed_in_as_invitee: bool,
    name: String,
    error: Option<String>,
}

fn action_of(kind: InviteKind) -> &'static str {
    match kind {
        InviteKind::Org => "/accept-invite",
        InviteKind::Platform => "/accept-platform-invite",
    }
}

async fn signed_in(session: &Session) -> Option<DocId> {
    session.get::<DocId>("uid").await.ok().flatten()
}

/// Token problems (missing, unknown, used, expired) and dead ends (already a member) end on an
/// error page with the reason; store failures are errors.
fn dead_end(e: MemberError) -> Response {
    match super::org::refusal(e) {
        Ok((status, message)) => refusal_page(status, message),
        Err(e) => e.into_response(),
    }
}

async fn render(
    stores: &Stores,
    session: &Session,
    invite: &Invite,
    kind: InviteKind,
    token: &str,
    name: &str,
    error: Option<String>,
) -> Result<AcceptPage, Response> {
    let target = match kind {
        InviteKind::Org => {
            svc::invite_org(stores, invite)
                .await
                .map_err(dead_end)?
                .name
        }
        InviteKind::Platform => "SuperInsights".to_string(),
    };
    let existing = stores
        .accounts
        .user_by_email(&invite.email)
        .await
        .map_err(|e| AppError::from(e).into_response())?;
    let me = signed_in(session).await;
    Ok(AcceptPage {
        csrf: session::csrf_token(session)
            .await
            .map_err(IntoResponse::into_response)?,
        action: action_of(kind),
        token: token.to_string(),
        email: invite.email.clone(),
        target,
        role: invite.scope.role_str().to_string(),
        new_account: existing.is_none(),
        signed_in_as_invitee: existing.is_some_and(|u| Some(u.id) == me),
        name: name.to_string(),
        error,
    })
}

async fn show_form(
    stores: &Stores,
    now: i64,
    session: &Session,
    query: &HashMap<String, String>,
    kind: InviteKind,
) -> Response {
    let token = query.get("token").map(String::as_str);
    let invite = match svc::open_invite(stores, token, kind, now).await {
        Ok(invite) => invite,
        Err(e) => return dead_end(e),
    };
    match render(
        stores,
        session,
        &invite,
        kind,
        token.unwrap_or_default(),
        "",
        None,
    )
    .await
    {
        Ok(page) => page.into_response(),
        Err(response) => response,
    }
}

async fn org_invite_form(
    State(stores): State<Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    show_form(&stores, clock.now_ms(), &session, &query, InviteKind::Org).await
}

async fn platform_invite_form(
    State(stores): State<Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    show_form(
        &stores,
        clock.now_ms(),
        &session,
        &query,
        InviteKind::Platform,
    )
    .await
}

async fn accept(
    stores: &Stores,
    now: i64,
    session: &Session,
    form: &CsrfForm,
    kind: InviteKind,
) -> Result<Response, Response> {
    let token = form.get("token");
    let invite = svc::open_invite(stores, token, kind, now)
        .await
        .map_err(dead_end)?;
    let who = Acceptance {
        signed_in: signed_in(session).await,
        name: form.get("name"),
        password: form.raw("password"),
    };
    let accepted = match kind {
        InviteKind::Org => svc::accept_org_invite(stores, &invite, who)
            .await
            .map(|(user, org)| (user, Some(org.id))),
        InviteKind::Platform => svc::accept_platform_invite(stores, &invite, who).await,
    };
    match accepted {
        Ok((user, org)) => {
            session::sign_in(session, &user, org)
                .await
                .map_err(IntoResponse::into_response)?;
            Ok(Redirect::to("/projects").into_response())
        }
        // Fixable on the form: a short password, a long name, a wrong password.
        Err(e @ (MemberError::Invalid(_) | MemberError::Forbidden(_))) => {
            let (status, error) = super::org::refusal(e).map_err(IntoResponse::into_response)?;
            let page = render(
                stores,
                session,
                &invite,
                kind,
                token.unwrap_or_default(),
                form.get("name").unwrap_or_default(),
                Some(error),
            )
            .await?;
            Ok((status, page).into_response())
        }
        Err(e) => Err(dead_end(e)),
    }
}

async fn accept_org_invite(
    State(stores): State<Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    session: Session,
    form: CsrfForm,
) -> Response {
    accept(&stores, clock.now_ms(), &session, &form, InviteKind::Org)
        .await
        .unwrap_or_else(|r| r)
}

async fn accept_platform_invite(
    State(stores): State<Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    session: Session,
    form: CsrfForm,
) -> Response {
    accept(
        &stores,
        clock.now_ms(),
        &session,
        &form,
        InviteKind::Platform,
    )
    .await
    .unwrap_or_else(|r| r)
}
