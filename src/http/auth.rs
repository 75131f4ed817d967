//! `/auth`: registration, login and logout (server-rendered forms, CSRF-protected, session id
//! rotated on login), and `/account`, where signed-in users change their own password and email.
//! The first account ever becomes the platform admin.

use super::{
    rate_limit::{RateLimitLayer, Style},
    session::{self, AuthUser, CsrfForm},
    views::Shell,
};
use crate::{
    config::Config,
    domain::{records::PlatformRole, redirect::redirect_target},
    error::AppError,
    runtime::rate_limit::namespaces,
    runtime::realtime::RealtimeHub,
    services::{
        accounts::{self, ProvisionError},
        sentence_case,
    },
    state::AppState,
    store::Stores,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Router,
    extract::{Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};
use std::collections::HashMap;
use std::sync::Arc;
use tower_sessions::Session;

pub fn router(state: &AppState) -> Router<AppState> {
    // Login and registration attempts are limited per client IP (one budget for both, in its own
    // namespace); the forms themselves are not.
    let attempts = RateLimitLayer::per_client_ip(
        state,
        namespaces::AUTH_IP,
        state.config.rate_limits.auth_ip,
        Style::Html,
    );
    Router::new()
        .route(
            "/auth/login",
            get(login_form).merge(post(login).route_layer(attempts.clone())),
        )
        .route(
            "/auth/register",
            get(register_form).merge(post(register).route_layer(attempts)),
        )
        .route("/auth/logout", post(logout))
        .route("/account", get(show_account))
        .route("/account/password", post(change_password))
        .route("/account/email", post(change_email))
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/login.html")]
struct LoginPage {
    csrf: String,
    next: String,
    email: String,
    error: Option<String>,
    registration_enabled: bool,
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/register.html")]
struct RegisterPage {
    csrf: String,
    email: String,
    error: Option<String>,
}

async fn signed_in(session: &Session) -> bool {
    session
        .get::<crate::domain::ids::DocId>("uid")
        .await
        .ok()
        .flatten()
        .is_some()
}

async fn login_form(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    if signed_in(&session).await {
        return Ok(Redirect::to("/").into_response());
    }
    Ok(LoginPage {
        csrf: session::csrf_token(&session).await?,
        next: redirect_target(query.get("next").map(String::as_str), "/projects"),
        email: String::new(),
        error: None,
        registration_enabled: registration_open(&stores, &config).await?,
    }
    .into_response())
}

async fn login(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    session: Session,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let email = form.get("email").unwrap_or_default().to_string();
    let next = redirect_target(form.get("next"), "/projects");
    let user = accounts::check_login(&stores, &email, form.raw("password"))
        .await
        .map_err(provision_error)?;
    let Some(user) = user else {
        let page = LoginPage {
            csrf: session::csrf_token(&session).await?,
            next,
            email,
            error: Some("Invalid email or password".into()),
            registration_enabled: registration_open(&stores, &config).await?,
        };
        return Ok((StatusCode::BAD_REQUEST, page).into_response());
    };
    let first_org = stores
        .accounts
        .memberships(user.id)
        .await?
        .first()
        .map(|(o, _)| o.id);
    session::sign_in(&session, &user, first_org).await?;
    Ok(Redirect::to(&next).into_response())
}

/// Whether anyone may register now (the admin's choice, else the configuration).
async fn registration_open(stores: &Stores, config: &Config) -> Result<bool, AppError> {
    Ok(accounts::registration_open(stores, config.registration_enabled).await?)
}

async fn register_form(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    session: Session,
) -> Result<Response, AppError> {
    if !registration_open(&stores, &config).await? {
        return Ok(Redirect::to("/auth/login").into_response());
    }
    if signed_in(&session).await {
        return Ok(Redirect::to("/").into_response());
    }
    Ok(RegisterPage {
        csrf: session::csrf_token(&session).await?,
        email: String::new(),
        error: None,
    }
    .into_response())
}

async fn register(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    session: Session,
    form: CsrfForm,
) -> Result<Response, AppError> {
    if !registration_open(&stores, &config).await? {
        return Err(AppError::Forbidden("Registration is disabled".into()));
    }
    let email = form.get("email").unwrap_or_default().to_string();
    // The first account ever becomes the platform admin.
    let role = if stores.accounts.count_users().await? == 0 {
        PlatformRole::Admin
    } else {
        PlatformRole::User
    };
    match accounts::provision(
        &stores,
        &email,
        form.raw("password"),
        role,
        "My First Project",
    )
    .await
    {
        Ok(created) => {
            session::sign_in(&session, &created.user, Some(created.org.id)).await?;
            Ok(Redirect::to(&format!("/projects/{}/setup", created.project.id)).into_response())
        }
        Err(ProvisionError::Store(e)) => Err(e.into()),
        Err(e) => {
            let page = RegisterPage {
                csrf: session::csrf_token(&session).await?,
                email,
                error: Some(sentence_case(&e.to_string())),
            };
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
    }
}

async fn logout(
    State(stores): State<Stores>,
    State(realtime): State<Arc<RealtimeHub>>,
    session: Session,
    _form: CsrfForm,
) -> Result<Response, AppError> {
    let user = session
        .get::<crate::domain::ids::DocId>("uid")
        .await
        .ok()
        .flatten();
    let ended = session.id();
    session::sign_out(&session).await?;
    // The session's realtime streams end with it, on every instance.
    if let Some(id) = ended {
        realtime.session_ended(&crate::runtime::realtime::session_key(&id.to_string()));
    }
    accounts::signed_out(&stores, user).await;
    Ok(Redirect::to("/auth/login").into_response())
}

pub(crate) fn provision_error(e: ProvisionError) -> AppError {
    match e {
        ProvisionError::Store(e) => e.into(),
        ProvisionError::EmailTaken => AppError::Conflict(sentence_case(&e.to_string())),
        ProvisionError::Invalid(m) => AppError::BadRequest(sentence_case(&m)),
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/account.html")]
struct AccountPage {
    shell: Shell,
    email: String,
    message: Option<String>,
    error: Option<String>,
}

/// `GET /account`: the signed-in user's own account (email, password change).
async fn show_account(auth: AuthUser) -> Response {
    account_page(&auth, None, None).into_response()
}

fn account_page(auth: &AuthUser, message: Option<&str>, error: Option<String>) -> AccountPage {
    AccountPage {
        shell: Shell::of(auth),
        email: auth.user.email.clone(),
        message: message.map(str::to_string),
        error,
    }
}

/// `POST /account/password`: the current password, then the new one twice. On success the
/// session is signed in again (new id, new CSRF token) and the user's other sessions end.
async fn change_password(
    State(stores): State<crate::store::Stores>,
    auth: AuthUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let new = form.raw("newPassword");
    if new != form.raw("confirmPassword") {
        let error = Some("The new passwords do not match.".to_string());
        return Ok((StatusCode::BAD_REQUEST, account_page(&auth, None, error)).into_response());
    }
    match accounts::change_password(&stores, &auth.user, form.raw("currentPassword"), new).await {
        Ok(updated) => {
            // Signed in again with the new password's stamp: this session goes on (with a new
            // id), every other session of the user ends.
            let org = auth.current_org.as_ref().map(|o| o.id);
            session::sign_in(&auth.session, &updated, org).await?;
            let csrf = session::csrf_token(&auth.session).await?;
            let mut page = account_page(&auth, Some("Your password was changed."), None);
            page.shell.csrf = csrf;
            Ok(page.into_response())
        }
        Err(ProvisionError::Store(e)) => Err(e.into()),
        Err(e) => {
            let error = Some(format!("{}.", sentence_case(&e.to_string())));
            Ok((StatusCode::BAD_REQUEST, account_page(&auth, None, error)).into_response())
        }
    }
}

/// `POST /account/email`: the new address and the password to confirm it.
async fn change_email(
    State(stores): State<crate::store::Stores>,
    auth: AuthUser,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let email = form.get("email").unwrap_or_default();
    match accounts::change_email(&stores, &auth.user, form.raw("password"), email).await {
        Ok(updated) => {
            let mut page = account_page(&auth, Some("Your email was changed."), None);
            page.email = updated.email.clone();
            page.shell.email = updated.email;
            Ok(page.into_response())
        }
        Err(ProvisionError::Store(e)) => Err(e.into()),
        Err(e) => {
            let error = Some(format!("{}.", sentence_case(&e.to_string())));
            Ok((StatusCode::BAD_REQUEST, account_page(&auth, None, error)).into_response())
        }
    }
}
