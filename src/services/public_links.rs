//! Public (shareable) read-only links `/p/{id}/{token}/…` (reference §2.9, §5.10): enabling,
//! regenerating and revoking a project's link, listing enabled links, and checking a presented
//! token. Only a peppered SHA-256 of the token is stored (SuperInsights 1.x also kept the raw
//! token); the raw token is returned once, when it is made, and never again.

use crate::{
    domain::audit::codes,
    domain::records::{Project, PublicLink},
    domain::{
        ids::{DocId, random_hex},
        timestamp::now_ms,
    },
    services::audit,
    store::{StoreError, Stores},
};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Random bytes in a token (64 hex characters), as SuperInsights 1.x.
const TOKEN_BYTES: usize = 32;

/// Tokens longer than this are refused before hashing (ours are 64 characters).
const MAX_TOKEN_LEN: usize = 256;

/// The stored form of a token: SHA-256 hex of `pepper + ":" + token` (SuperInsights 1.x's
/// scheme, so links made by 1.x keep working with the same `PUBLIC_LINK_PEPPER`).
pub fn token_hash(pepper: &str, token: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(pepper.as_bytes());
    hasher.update(b":");
    hasher.update(token.as_bytes());
    hex::encode(hasher.finalize())
}

/// Whether two hashes are equal, in time independent of where they differ.
fn same_hash(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// A link just made: its stored state and the raw token, which exists only here.
pub struct NewLink {
    pub link: PublicLink,
    pub token: String,
}

/// Enables the project's link with a fresh token (or replaces the token of an enabled link: the
/// old one stops working at once). Returns the raw token, to show once.
/// Errors: `NotFound` for an unknown or deleted project.
pub async fn enable(stores: &Stores, pepper: &str, project: DocId) -> Result<NewLink, StoreError> {
    make(stores, pepper, project, codes::PROJECT_PUBLIC_LINK_ENABLE).await
}

async fn make(
    stores: &Stores,
    pepper: &str,
    project: DocId,
    code: &str,
) -> Result<NewLink, StoreError> {
    let token = random_hex(TOKEN_BYTES);
    let link = stores
        .projects
        .set_public_link(project, &token_hash(pepper, &token), now_ms())
        .await?;
    audit::action(code)
        .project(project)
        .org(link.project.org_id)
        .record(stores)
        .await;
    Ok(NewLink { link, token })
}

/// Regenerating is enabling again: a new token, the old one refused from now on.
pub async fn regenerate(
    stores: &Stores,
    pepper: &str,
    project: DocId,
) -> Result<NewLink, StoreError> {
    make(
        stores,
        pepper,
        project,
        codes::PROJECT_PUBLIC_LINK_REGENERATE,
    )
    .await
}

/// Disables the project's link, but only when the project belongs to `org` (`None`: any
/// organization, for platform admins), and ends the link's realtime streams on every instance.
/// `Ok(None)` when there is no such project.
pub async fn revoke(
    stores: &Stores,
    live: &crate::runtime::realtime::RealtimeHub,
    project: DocId,
    org: Option<DocId>,
) -> Result<Option<Project>, StoreError> {
    let Some(found) = stores.projects.project(project).await? else {
        return Ok(None);
    };
    if org.is_some_and(|org| org != found.org_id) {
        return Ok(None);
    }
    match stores.projects.revoke_public_link(project, now_ms()).await {
        Ok(()) => {
            live.link_changed(project);
            let code = if org.is_some() {
                codes::PROJECT_PUBLIC_LINK_REVOKE
            } else {
                codes::ADMIN_PROJECT_PUBLIC_LINK_REVOKE
            };
            audit::action(code)
                .project(project)
                .org(found.org_id)
                .record(stores)
                .await;
            Ok(Some(found))
        }
        Err(StoreError::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The project's link state; `NotFound` for an unknown project.
pub async fn state(stores: &Stores, project: DocId) -> Result<PublicLink, StoreError> {
    stores
        .projects
        .public_link(project)
        .await?
        .ok_or(StoreError::NotFound)
}

/// Enabled links of live projects, of one organization or (`None`) of all.
pub async fn list(stores: &Stores, org: Option<DocId>) -> Result<Vec<PublicLink>, StoreError> {
    stores.projects.public_links(org).await
}

/// The project behind a public link, if the project is live, its link enabled and `token`
/// matches the stored hash (compared in constant time). Any failure is a plain 404, so links
/// cannot be probed (`StoreError::NotFound`); a store outage stays a 503.
pub async fn verify(
    stores: &Stores,
    pepper: &str,
    id: DocId,
    token: &str,
) -> Result<Project, StoreError> {
    if token.is_empty() || token.len() > MAX_TOKEN_LEN {
        return Err(StoreError::NotFound);
    }
    let link = stores
        .projects
        .public_link(id)
        .await?
        .ok_or(StoreError::NotFound)?;
    let presented = token_hash(pepper, token);
    let matches = link
        .token_hash
        .as_deref()
        .is_some_and(|stored| same_hash(&presented, stored));
    if link.enabled && link.project.deleted_at.is_none() && matches {
        Ok(link.project)
    } else {
        Err(StoreError::NotFound)
    }
}

/// The URL to share: `{base}/p/{id}/{token}/dashboard`.
pub fn dashboard_url(base: &str, project: DocId, token: &str) -> String {
    format!(
        "{}/p/{project}/{token}/dashboard",
        base.trim_end_matches('/')
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_of_pepper_colon_token() {
        // printf 'pep:abc' | sha256sum ; printf ':abc' | sha256sum
        assert_eq!(
            token_hash("pep", "abc"),
            "50529ba81e3caa7e4f526636cb169669cf5913b8a0fbba3d0df554eb154cde1a"
        );
        assert_eq!(
            token_hash("", "abc"),
            "6e850a0e91c14c7de98b0266362362c7c465aeff1df5c073d8976f81a333a874",
            "SuperInsights 1.x's default empty pepper still has the colon"
        );
    }

    #[test]
    fn hashes_compare_exactly() {
        let h = token_hash("p", "t");
        assert!(same_hash(&h, &token_hash("p", "t")));
        assert!(!same_hash(&h, &token_hash("p", "u")));
        assert!(!same_hash(&h, &h[..63]));
        assert!(!same_hash(&h, ""));
    }

    #[test]
    fn the_shared_url_points_at_the_dashboard() {
        let id = DocId::parse("0123456789abcdef01234567").unwrap();
        assert_eq!(
            dashboard_url("https://a.example/", id, "tok"),
            "https://a.example/p/0123456789abcdef01234567/tok/dashboard"
        );
    }
}
