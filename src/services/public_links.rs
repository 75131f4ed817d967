//! Public (shareable) read-only links `/p/{id}/{token}/…` (reference §2.9, §5.10): enabling,
//! regenerating and revoking a project's link, and checking a presented token. Only a peppered
//! SHA-256 of the token is stored; the raw token is shown once, when it is made.

use crate::{domain::ids::DocId, error::AppError, state::AppState, store::Project};

/// The project behind a public link, if the link is enabled and `token` matches its stored hash
/// (compared in constant time). Any failure is a plain 404, so links cannot be probed.
pub async fn verify(_state: &AppState, _id: DocId, _token: &str) -> Result<Project, AppError> {
    // Public links are not stored yet: every token is refused.
    Err(AppError::NotFound)
}
