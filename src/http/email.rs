//! The email features' pages: `/auth/forgot` and `/auth/reset` (forgotten passwords, signed
//! out) and `/projects/{id}/email-reports` (a member's weekly/monthly email report
//! subscriptions). The rules live in `services::password_reset` and `services::email_reports`;
//! without SMTP configured the pages say why the feature is unavailable.

use super::{
    links,
    projects::ProjectAccess,
    rate_limit::{RateLimitLayer, Style},
    session::{self, AuthUser, CsrfForm},
    views::Shell,
};
use crate::{
    config::Config,
    config::Limit,
    domain::{
        email::{Cadence, Delivery},
        records::Project,
    },
    error::AppError,
    runtime::rate_limit::RateLimiter,
    runtime::rate_limit::namespaces,
    services::mail::Mailer,
    services::{email_reports, password_reset as reset},
    state::AppState,
    store::Stores,
};
use askama::Template;
use askama_web::WebTemplate;
use axum::{
    Router,
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
    routing::get,
};
use std::collections::HashMap;
use std::sync::Arc;
use tower_sessions::Session;

pub fn router(state: &AppState) -> Router<AppState> {
    let per_ip = RateLimitLayer::per_client_ip(
        state,
        namespaces::PASSWORD_RESET_IP,
        Limit {
            max: 5,
            window: std::time::Duration::from_secs(15 * 60),
        },
        Style::Html,
    );
    Router::new()
        .route(
            "/auth/forgot",
            get(forgot_form).post(forgot).route_layer(per_ip),
        )
        .route("/auth/reset", get(reset_form).post(reset_password))
        .route(
            "/projects/{id}/email-reports",
            get(show_email_reports).post(change_email_reports),
        )
}

/// Why password resets by email cannot work here (no SMTP, or no trusted address to link to).
fn reset_unavailable(
    config: &Config,
    mailer: &Mailer,
    headers: &HeaderMap,
) -> Option<&'static str> {
    if !mailer.is_configured() {
        Some(
            "Password reset by email is not available: this server has no outgoing email \
             configured (SMTP_URL or SMTP_HOST, and SMTP_FROM). Ask your administrator to set \
             a new password for you.",
        )
    } else if links::base_url(config, headers).is_none() {
        Some(
            "Password reset by email is not available: this server does not know its public \
             address (PUBLIC_URL or ALLOWED_HOSTS) to link to. Ask your administrator.",
        )
    } else {
        None
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/forgot.html")]
struct ForgotPage {
    csrf: String,
    unavailable: Option<&'static str>,
    sent: bool,
}

async fn forgot_form(
    State(config): State<Arc<Config>>,
    State(mailer): State<Arc<Mailer>>,
    session: Session,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    Ok(ForgotPage {
        csrf: session::csrf_token(&session).await?,
        unavailable: reset_unavailable(&config, &mailer, &headers),
        sent: false,
    }
    .into_response())
}

// One extractor per piece it uses (the clock dates the token's expiry).
#[allow(clippy::too_many_arguments)]
async fn forgot(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    State(mailer): State<Arc<Mailer>>,
    State(rate_limiter): State<Arc<dyn RateLimiter>>,
    State(clock): State<crate::domain::clock::SharedClock>,
    session: Session,
    headers: HeaderMap,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let csrf = session::csrf_token(&session).await?;
    if let Some(why) = reset_unavailable(&config, &mailer, &headers) {
        let page = ForgotPage {
            csrf,
            unavailable: Some(why),
            sent: false,
        };
        return Ok((StatusCode::SERVICE_UNAVAILABLE, page).into_response());
    }
    let base = links::base_url(&config, &headers).unwrap_or_default();
    reset::request(
        stores,
        mailer,
        &*rate_limiter,
        form.get("email").unwrap_or_default().to_string(),
        base,
        clock.now_ms(),
    )
    .await;
    // The same answer whether or not the address has an account.
    Ok(ForgotPage {
        csrf,
        unavailable: None,
        sent: true,
    }
    .into_response())
}

#[derive(Template, WebTemplate)]
#[template(path = "auth/reset.html")]
struct ResetPage {
    csrf: String,
    token: String,
    error: Option<String>,
    /// The link cannot be used: show the error and a way to ask again, no form.
    dead: bool,
    done: bool,
}

async fn reset_form(
    State(stores): State<crate::store::Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    session: Session,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, AppError> {
    let token = query.get("token").cloned().unwrap_or_default();
    let csrf = session::csrf_token(&session).await?;
    let page = |error: Option<String>, dead| ResetPage {
        csrf: csrf.clone(),
        token: token.clone(),
        error,
        dead,
        done: false,
    };
    if token.is_empty() {
        return Ok((
            StatusCode::BAD_REQUEST,
            page(Some("This reset link is incomplete.".into()), true),
        )
            .into_response());
    }
    match reset::check(&stores, &token, clock.now_ms()).await {
        Ok(()) => Ok(page(None, false).into_response()),
        Err(reset::ResetError::Store(e)) => Err(e.into()),
        Err(e) => Ok((StatusCode::BAD_REQUEST, page(Some(e.to_string()), true)).into_response()),
    }
}

async fn reset_password(
    State(stores): State<crate::store::Stores>,
    State(clock): State<crate::domain::clock::SharedClock>,
    session: Session,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let token = form.get("token").unwrap_or_default().to_string();
    let result = reset::reset(&stores, &token, form.raw("password"), clock.now_ms()).await;
    let csrf = session::csrf_token(&session).await?;
    match result {
        Ok(_) => {
            // Whoever was signed in on this browser is signed out too.
            session::sign_out(&session).await?;
            Ok(ResetPage {
                csrf: String::new(),
                token: String::new(),
                error: None,
                dead: false,
                done: true,
            }
            .into_response())
        }
        Err(reset::ResetError::Store(e)) => Err(e.into()),
        Err(e) => {
            let dead = !matches!(e, reset::ResetError::Password(_));
            let page = ResetPage {
                csrf,
                token,
                error: Some(e.to_string()),
                dead,
                done: false,
            };
            Ok((StatusCode::BAD_REQUEST, page).into_response())
        }
    }
}

#[derive(Template, WebTemplate)]
#[template(path = "projects/email_reports.html")]
struct EmailReportsPage {
    shell: Shell,
    project: Project,
    unavailable: Option<&'static str>,
    toggles: Vec<Toggle>,
    message: Option<String>,
    /// `EMAIL_REPORT_ATTACHMENT_MAX_BYTES`, readable.
    attachment_limit: String,
}

struct Toggle {
    cadence: &'static str,
    label: &'static str,
    on: bool,
    /// `link` or `pdf` (the current choice when subscribed).
    delivery: &'static str,
}

async fn render(
    stores: &Stores,
    config: &Config,
    mailer: &Mailer,
    auth: &AuthUser,
    project: Project,
    message: Option<String>,
) -> Result<EmailReportsPage, AppError> {
    let subs = email_reports::subscriptions(stores, project.id, auth.user.id).await?;
    Ok(EmailReportsPage {
        shell: Shell::of(auth),
        unavailable: email_reports::unavailable_reason(mailer, config.public_url.as_deref()),
        toggles: Cadence::ALL
            .iter()
            .map(|c| {
                let sub = subs.iter().find(|s| s.cadence == *c);
                Toggle {
                    cadence: c.as_str(),
                    label: match c {
                        Cadence::Weekly => "Weekly report",
                        Cadence::Monthly => "Monthly report",
                    },
                    on: sub.is_some(),
                    delivery: sub.map_or(Delivery::Link, |s| s.delivery).as_str(),
                }
            })
            .collect(),
        project,
        message,
        attachment_limit: email_reports::human_size(config.email_report_attachment_max_bytes),
    })
}

async fn show_email_reports(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    State(mailer): State<Arc<Mailer>>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    Ok(
        render(&stores, &config, &mailer, &auth, access.project, None)
            .await?
            .into_response(),
    )
}

/// Form: `cadence` (`weekly`, `monthly`), `subscribe` (`true`/`false`) and, when subscribing,
/// `delivery` (`link` default, `pdf`: the PDF report attached; subscribing again changes it);
/// any member may change their own subscriptions.
async fn change_email_reports(
    State(stores): State<Stores>,
    State(config): State<Arc<Config>>,
    State(mailer): State<Arc<Mailer>>,
    auth: AuthUser,
    Path(id): Path<String>,
    form: CsrfForm,
) -> Result<Response, AppError> {
    let access = ProjectAccess::check(&stores, &auth, &id).await?;
    let cadence = form
        .get("cadence")
        .and_then(Cadence::parse)
        .ok_or_else(|| AppError::BadRequest("cadence must be weekly or monthly".into()))?;
    let on = match form.get("subscribe") {
        Some("true") => true,
        Some("false") => false,
        _ => {
            return Err(AppError::BadRequest(
                "subscribe must be true or false".into(),
            ));
        }
    };
    let delivery = match form.get("delivery").unwrap_or("link") {
        d if on => Some(
            Delivery::parse(d)
                .ok_or_else(|| AppError::BadRequest("delivery must be link or pdf".into()))?,
        ),
        _ => None,
    };
    if on
        && let Some(why) = email_reports::unavailable_reason(&mailer, config.public_url.as_deref())
    {
        return Err(AppError::Conflict(why.into()));
    }
    email_reports::set_subscription(&stores, &access.project, &auth.user, cadence, delivery)
        .await?;
    let message = if let Some(delivery) = delivery {
        format!(
            "You will get the {} report by email at {}{}. The first one covers the last complete period.",
            cadence.as_str(),
            auth.user.email,
            match delivery {
                Delivery::Link => ", with a link to the dashboard",
                Delivery::Pdf => ", with the PDF report attached",
            }
        )
    } else {
        format!("You will no longer get the {} report.", cadence.as_str())
    };
    Ok(render(
        &stores,
        &config,
        &mailer,
        &auth,
        access.project,
        Some(message),
    )
    .await?
    .into_response())
}
