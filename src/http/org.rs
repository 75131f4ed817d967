//! `/org`: the current organization (switching between the user's organizations).

use super::session::{AuthUser, CsrfForm, safe_redirect};
use crate::{domain::ids::DocId, error::AppError, state::AppState};
use axum::{
    Router,
    response::{IntoResponse, Redirect, Response},
    routing::post,
};

pub fn router() -> Router<AppState> {
    Router::new().route("/org/switch", post(switch_org))
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
    Ok(Redirect::to(&safe_redirect(form.get("redirectTo"), "/projects")).into_response())
}
