//! The signed-in user, the current organization and CSRF protection, on top of tower-sessions.
//!
//! Session keys: `uid` (user id), `org` (current organization id), `csrf` (per-session token),
//! `seen` (when a request last extended the session, on the server's clock).
//! Every state-changing form goes through [`CsrfForm`], which rejects a missing or wrong token
//! with 403, so no handler can forget the check.

use crate::{
    domain::ids::{DocId, random_hex},
    domain::records::{OrgRole, Organization, PlatformRole, User},
    error::AppError,
    state::AppState,
    store::Stores,
};
use axum::{
    extract::{FromRef, FromRequest, FromRequestParts, Request},
    http::{StatusCode, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use http_body_util::BodyExt;
use subtle::ConstantTimeEq;
use tower_sessions::Session;

const UID: &str = "uid";
const ORG: &str = "org";
const CSRF: &str = "csrf";
/// A stamp of the password hash the session was signed in with: a password change (by the user,
/// an admin, or the bcrypt→argon2id upgrade) ends every other session of that user.
const PWD: &str = "pwd";
/// When a signed-in request last extended the session (epoch ms on the server's clock).
const SEEN: &str = "seen";
/// A signed-in request extends the session (14 more days from now) when the last extension is
/// at least this old: sliding expiry, as 1.x's store touch gave, at most one session write an
/// hour instead of one per request.
const EXTEND_EVERY_MS: i64 = 3_600_000;
/// Largest form body accepted.
const MAX_FORM_BYTES: usize = 256 * 1024;

fn session_error(e: impl std::fmt::Display) -> AppError {
    AppError::Internal(format!("session: {e}"))
}

/// The per-session CSRF token, created on first use.
pub async fn csrf_token(session: &Session) -> Result<String, AppError> {
    if let Some(token) = session.get::<String>(CSRF).await.map_err(session_error)? {
        return Ok(token);
    }
    let token = random_hex(32);
    session.insert(CSRF, &token).await.map_err(session_error)?;
    Ok(token)
}

fn password_stamp(password_hash: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(password_hash.as_bytes())[..8])
}

/// Whether a stored session still signs its user in, by the rule every request applies
/// ([`AuthUser`]): `Ok(user)` while it does; otherwise why not — `signed-out` (no user id, or
/// the account is gone) or `password-changed` (the password was changed since it signed in,
/// which ends every other session of the user). Store errors are `Err`.
pub(crate) async fn record_signs_in(
    stores: &Stores,
    record: &tower_sessions::session::Record,
) -> Result<Result<User, &'static str>, AppError> {
    let field = |name: &str| record.data.get(name).cloned();
    let Some(uid) = field(UID).and_then(|v| serde_json::from_value::<DocId>(v).ok()) else {
        return Ok(Err("signed-out"));
    };
    let Some(user) = stores.accounts.user(uid).await? else {
        return Ok(Err("signed-out"));
    };
    let stamp = field(PWD).and_then(|v| v.as_str().map(str::to_string));
    if stamp.as_deref() != Some(password_stamp(&user.password_hash).as_str()) {
        return Ok(Err("password-changed"));
    }
    Ok(Ok(user))
}

/// Signs the user in: a new session id (no fixation), the user id, the password stamp, a fresh
/// CSRF token.
pub async fn sign_in(session: &Session, user: &User, org: Option<DocId>) -> Result<(), AppError> {
    session.cycle_id().await.map_err(session_error)?;
    session.insert(UID, user.id).await.map_err(session_error)?;
    session
        .insert(PWD, password_stamp(&user.password_hash))
        .await
        .map_err(session_error)?;
    session
        .insert(CSRF, random_hex(32))
        .await
        .map_err(session_error)?;
    match org {
        Some(org) => session.insert(ORG, org).await.map_err(session_error)?,
        None => {
            session.remove_value(ORG).await.map_err(session_error)?;
        }
    }
    Ok(())
}

/// Marks the session used at `now` when its last extension is [`EXTEND_EVERY_MS`] old (or
/// from a later "now" than this one): the change saves it with a fresh 14-day expiry.
async fn extend(session: &Session, now: i64) -> Result<(), AppError> {
    let seen: Option<i64> = session.get(SEEN).await.map_err(session_error)?;
    if seen.is_none_or(|at| now - at >= EXTEND_EVERY_MS || at > now) {
        session.insert(SEEN, now).await.map_err(session_error)?;
    }
    Ok(())
}

/// Rotates the session id (after a privilege change), keeping its data.
pub async fn rotate(session: &Session) -> Result<(), AppError> {
    session.cycle_id().await.map_err(session_error)
}

/// Signs out: the session record is deleted and the cookie cleared.
pub async fn sign_out(session: &Session) -> Result<(), AppError> {
    session.flush().await.map_err(session_error)
}

/// The signed-in user with their organizations, the current one, and the CSRF token for forms.
#[derive(Clone, Debug)]
pub struct AuthUser {
    pub user: User,
    pub session: Session,
    /// Active memberships in active organizations, with the role.
    pub memberships: Vec<(Organization, OrgRole)>,
    pub current_org: Option<Organization>,
    pub csrf: String,
}

impl AuthUser {
    /// Platform admins pass every organization check.
    pub fn is_admin(&self) -> bool {
        self.user.role == PlatformRole::Admin
    }

    /// The user's role in `org`: the membership role, except that platform admins count as at
    /// least `admin` everywhere (an owner stays `owner`).
    pub fn role_in(&self, org: DocId) -> Option<OrgRole> {
        let member = self
            .memberships
            .iter()
            .find(|(o, _)| o.id == org)
            .map(|(_, r)| *r);
        match member {
            Some(OrgRole::Owner) => Some(OrgRole::Owner),
            _ if self.is_admin() => Some(OrgRole::Admin),
            other => other,
        }
    }

    /// Role in the current organization.
    pub fn current_role(&self) -> Option<OrgRole> {
        self.current_org.as_ref().and_then(|o| self.role_in(o.id))
    }

    /// The current organization, or 403 when the user belongs to none.
    pub fn require_org(&self) -> Result<&Organization, AppError> {
        self.current_org.as_ref().ok_or_else(|| {
            AppError::Forbidden(
                "You must belong to an organization to use this page. Ask an owner for an invite."
                    .into(),
            )
        })
    }

    /// 403 unless the user owns the current organization (or is a platform admin).
    pub fn require_org_owner(&self) -> Result<&Organization, AppError> {
        let org = self.require_org()?;
        if self.is_admin() || self.role_in(org.id) == Some(OrgRole::Owner) {
            Ok(org)
        } else {
            Err(AppError::Forbidden(
                "Only an owner of this organization can do that.".into(),
            ))
        }
    }
}

/// Rejection of [`AuthUser`]: browsers go to the login page, other clients get 401 JSON.
pub struct LoginRequired {
    next: String,
    wants_html: bool,
}

impl IntoResponse for LoginRequired {
    fn into_response(self) -> Response {
        if self.wants_html {
            let next: String = form_urlencoded::byte_serialize(self.next.as_bytes()).collect();
            Redirect::to(&format!("/auth/login?next={next}")).into_response()
        } else {
            (
                StatusCode::UNAUTHORIZED,
                axum::Json(serde_json::json!({"error": "Login required"})),
            )
                .into_response()
        }
    }
}

fn accepts_html(parts: &Parts) -> bool {
    parts
        .headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|a| a.contains("text/html") || a.contains("*/*") || a.is_empty())
}

impl<S> FromRequestParts<S> for AuthUser
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let state = AppState::from_ref(state);
        let session = Session::from_request_parts(parts, &state)
            .await
            .map_err(IntoResponse::into_response)?;
        let required = || {
            LoginRequired {
                next: parts.uri.path().to_string(),
                wants_html: accepts_html(parts),
            }
            .into_response()
        };
        let uid: Option<DocId> = session
            .get(UID)
            .await
            .map_err(|e| session_error(e).into_response())?;
        let Some(uid) = uid else {
            return Err(required());
        };
        let user = state
            .stores
            .accounts
            .user(uid)
            .await
            .map_err(|e| AppError::from(e).into_response())?;
        let stamp: Option<String> = session
            .get(PWD)
            .await
            .map_err(|e| session_error(e).into_response())?;
        let Some(user) =
            user.filter(|u| stamp.as_deref() == Some(password_stamp(&u.password_hash).as_str()))
        else {
            // The account was deleted or its password changed since this session signed in.
            let _ = session.flush().await;
            return Err(required());
        };
        crate::services::audit::set_request_user(&user);
        let memberships = state
            .stores
            .accounts
            .memberships(uid)
            .await
            .map_err(|e| AppError::from(e).into_response())?;
        let wanted: Option<DocId> = session
            .get(ORG)
            .await
            .map_err(|e| session_error(e).into_response())?;
        let current_org = wanted
            .and_then(|id| memberships.iter().find(|(o, _)| o.id == id))
            .or_else(|| memberships.first())
            .map(|(o, _)| o.clone());
        if current_org.as_ref().map(|o| o.id) != wanted {
            let stored = match &current_org {
                Some(o) => session.insert(ORG, o.id).await,
                None => session.remove_value(ORG).await.map(|_| ()),
            };
            stored.map_err(|e| session_error(e).into_response())?;
        }
        let csrf = csrf_token(&session)
            .await
            .map_err(IntoResponse::into_response)?;
        extend(&session, state.clock.now_ms())
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(AuthUser {
            user,
            session,
            memberships,
            current_org,
            csrf,
        })
    }
}

/// A url-encoded form whose `_csrf` field matched the session's token. Repeated fields
/// (`dropFilterKey[]`) are kept in order.
#[derive(Debug, Clone)]
pub struct CsrfForm {
    pairs: Vec<(String, String)>,
}

impl CsrfForm {
    /// The first value of a field, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// The first value of a field without trimming (passwords).
    pub fn raw(&self, name: &str) -> &str {
        self.pairs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    /// Every value of a repeated field, in order (empty strings kept, so columns line up).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.pairs
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl<S> FromRequest<S> for CsrfForm
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = Response;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let session = Session::from_request_parts(&mut parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let bytes = http_body_util::Limited::new(body, MAX_FORM_BYTES)
            .collect()
            .await
            .map_err(|_| AppError::BadRequest("The form is too large.".into()).into_response())?
            .to_bytes();
        let pairs: Vec<(String, String)> = form_urlencoded::parse(&bytes).into_owned().collect();
        let sent = pairs
            .iter()
            .find(|(k, _)| k == "_csrf")
            .map(|(_, v)| v.as_str())
            .unwrap_or("");
        let expected: Option<String> = session
            .get(CSRF)
            .await
            .map_err(|e| session_error(e).into_response())?;
        let valid = expected
            .is_some_and(|t| !sent.is_empty() && bool::from(t.as_bytes().ct_eq(sent.as_bytes())));
        if !valid {
            return Err(AppError::Forbidden(
                "This form has expired or did not come from this site. Reload the page and try again.".into(),
            )
            .into_response());
        }
        Ok(CsrfForm { pairs })
    }
}
