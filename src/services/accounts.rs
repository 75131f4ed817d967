//! Account provisioning and password hashing. Registration (web) and `create-admin` (CLI) share
//! [`provision`]: a user, a workspace named after the email, an owner membership and a first
//! project. New passwords use argon2id; bcrypt hashes written by SuperInsights 1.x still verify.

use crate::domain::records::{NewProject, OrgRole, Organization, PlatformRole, Project, User};
use crate::store::{StoreError, Stores};
use argon2::{
    Argon2, PasswordHash, PasswordHasher, PasswordVerifier,
    password_hash::{SaltString, rand_core::OsRng},
};

/// Shortest password accepted (SuperInsights 1.x: 8).
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("{0}")]
    Invalid(String),
    #[error("an account with this email already exists")]
    EmailTaken,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for ProvisionError {
    fn from(e: StoreError) -> Self {
        ProvisionError::Store(e)
    }
}

/// What [`provision`] created.
#[derive(Debug, Clone)]
pub struct Provisioned {
    pub user: User,
    pub org: Organization,
    pub project: Project,
}

/// Hashes a password with argon2id (off the async runtime).
pub async fn hash_password(password: &str) -> Result<String, ProvisionError> {
    let password = password.to_string();
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ProvisionError::Invalid(e.to_string()))?
    .map_err(|e| ProvisionError::Invalid(format!("could not hash password: {e}")))
}

/// Checks a password against an argon2 PHC string or a bcrypt hash (`$2a$`/`$2b$`/`$2y$`, as
/// SuperInsights 1.x wrote them); `false` for a mismatch or an unknown format.
pub async fn verify_password(password: &str, stored_hash: &str) -> bool {
    let (password, stored) = (password.to_string(), stored_hash.to_string());
    tokio::task::spawn_blocking(move || {
        if is_bcrypt(&stored) {
            return bcrypt::verify(&password, &stored).unwrap_or(false);
        }
        PasswordHash::new(&stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

fn is_bcrypt(hash: &str) -> bool {
    ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p))
}

/// The user with this email and password, or `None`. On SQLite a bcrypt hash from SuperInsights
/// 1.x is replaced by an argon2id hash on success; on MongoDB it is kept, because the database
/// may be SuperInsights 1.x's own, which verifies only bcrypt (docs/mongodb.md). Unknown emails
/// cost the same time as wrong passwords.
pub async fn check_login(
    stores: &Stores,
    email: &str,
    password: &str,
) -> Result<Option<User>, ProvisionError> {
    let user = stores.accounts.user_by_email(email).await?;
    let Some(user) = user else {
        // Spend the same effort as a real check so response times do not reveal accounts.
        let _ = verify_password(password, dummy_hash()).await;
        return Ok(None);
    };
    if !verify_password(password, &user.password_hash).await {
        return Ok(None);
    }
    let mut user = user;
    if is_bcrypt(&user.password_hash) && stores.name != "mongodb" {
        let upgraded = hash_password(password).await?;
        stores
            .accounts
            .set_password_hash(user.id, &upgraded)
            .await?;
        tracing::info!(user = %user.id, "password hash upgraded from bcrypt to argon2id");
        // The caller signs in with the hash now stored.
        user.password_hash = upgraded;
    }
    super::audit::action(crate::domain::audit::codes::AUTH_LOGIN_SUCCESS)
        .by(&user)
        .record(stores)
        .await;
    Ok(Some(user))
}

/// Records a sign-out of `user` (the session itself is ended by the caller).
pub async fn signed_out(stores: &Stores, user: Option<crate::domain::ids::DocId>) {
    let user = match user {
        Some(id) => stores.accounts.user(id).await.ok().flatten(),
        None => None,
    };
    let mut entry = super::audit::action(crate::domain::audit::codes::AUTH_LOGOUT);
    if let Some(user) = &user {
        entry = entry.by(user);
    }
    entry.record(stores).await;
}

/// Changes a signed-in user's own password: the current one must match, the new one must
/// follow the password rule; stored as argon2id. Returns the user with the new hash (the caller
/// signs the session in again with it: every other session of the user ends). The message of
/// an `Invalid` error is shown.
pub async fn change_password(
    stores: &Stores,
    user: &User,
    current: &str,
    new: &str,
) -> Result<User, ProvisionError> {
    if !verify_password(current, &user.password_hash).await {
        return Err(ProvisionError::Invalid(
            "the current password is not correct".into(),
        ));
    }
    check_new_password(new)?;
    let hash = hash_password(new).await?;
    stores.accounts.set_password_hash(user.id, &hash).await?;
    tracing::info!(user = %user.id, "password changed by its user");
    super::audit::action(crate::domain::audit::codes::AUTH_PASSWORD_CHANGE)
        .by(user)
        .record(stores)
        .await;
    let mut user = user.clone();
    user.password_hash = hash;
    Ok(user)
}

/// Whether anyone may register: the platform admin's choice when made, else `configured`
/// (`REGISTRATION_ENABLED`, default on as in SuperInsights 1.x).
pub async fn registration_open(stores: &Stores, configured: bool) -> Result<bool, StoreError> {
    Ok(stores
        .accounts
        .registration_setting()
        .await?
        .unwrap_or(configured))
}

/// Changes a signed-in user's own email: the password confirms it, the address is validated
/// and lowercased, and must not be another account's. Returns the user as updated.
pub async fn change_email(
    stores: &Stores,
    user: &User,
    password: &str,
    email: &str,
) -> Result<User, ProvisionError> {
    let email = validate_email(email)?;
    if !verify_password(password, &user.password_hash).await {
        return Err(ProvisionError::Invalid(
            "the password is not correct".into(),
        ));
    }
    match stores.accounts.set_user_email(user.id, &email).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => return Err(ProvisionError::EmailTaken),
        Err(e) => return Err(e.into()),
    }
    tracing::info!(user = %user.id, "email changed by its user");
    let mut user = user.clone();
    user.email = email;
    Ok(user)
}

/// An argon2id hash of a random secret, checked against when the email is unknown.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(crate::domain::ids::random_hex(16).as_bytes(), &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Checks the password rule; the message is shown to the user.
pub fn check_new_password(password: &str) -> Result<(), ProvisionError> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ProvisionError::Invalid(format!(
            "the password needs at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    Ok(())
}

pub fn validate_email(email: &str) -> Result<String, ProvisionError> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && domain.contains('.') && !domain.starts_with('.')
        })
        && !email.chars().any(char::is_whitespace);
    if valid {
        Ok(email)
    } else {
        Err(ProvisionError::Invalid(
            "a valid email address is required".into(),
        ))
    }
}

/// Creates a user with the platform `role`, the workspace `<local part>'s Workspace`, an
/// owner membership and the project `project_name`.
pub async fn provision(
    stores: &Stores,
    email: &str,
    password: &str,
    role: PlatformRole,
    project_name: &str,
) -> Result<Provisioned, ProvisionError> {
    provision_named(stores, email, password, None, role, project_name).await
}

/// [`provision`] with the user's display name (accepted platform invites ask for one).
pub async fn provision_named(
    stores: &Stores,
    email: &str,
    password: &str,
    name: Option<&str>,
    role: PlatformRole,
    project_name: &str,
) -> Result<Provisioned, ProvisionError> {
    let email = validate_email(email)?;
    check_new_password(password)?;
    if stores.accounts.user_by_email(&email).await?.is_some() {
        return Err(ProvisionError::EmailTaken);
    }
    let hash = hash_password(password).await?;
    let user = match stores.accounts.create_user(&email, &hash, name, role).await {
        Err(StoreError::Conflict(_)) => return Err(ProvisionError::EmailTaken),
        other => other?,
    };
    let local = email.split('@').next().unwrap_or("my");
    let org = stores
        .accounts
        .create_org(&format!("{local}'s Workspace"), user.id)
        .await?;
    stores
        .accounts
        .add_member(org.id, user.id, OrgRole::Owner)
        .await?;
    let project = stores
        .projects
        .create_project(NewProject::named(project_name, org.id))
        .await?;
    super::audit::action(crate::domain::audit::codes::AUTH_REGISTER_SUCCESS)
        .by(&user)
        .org(org.id)
        .project(project.id)
        .record(stores)
        .await;
    Ok(Provisioned { user, org, project })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::temp_stores;

    #[tokio::test]
    async fn provision_creates_user_workspace_membership_and_project() {
        let (_dir, stores) = temp_stores().await;
        let p = provision(
            &stores,
            " Ada@Example.com ",
            "correct horse",
            PlatformRole::Admin,
            "My First Project",
        )
        .await
        .unwrap();
        assert_eq!(p.user.email, "ada@example.com");
        assert_eq!(p.user.role, PlatformRole::Admin);
        assert_eq!(p.org.name, "ada's Workspace");
        assert_eq!(
            stores
                .accounts
                .member_role(p.org.id, p.user.id)
                .await
                .unwrap(),
            Some(OrgRole::Owner)
        );
        assert_eq!(p.project.org_id, p.org.id);
        assert!(verify_password("correct horse", &p.user.password_hash).await);
        assert!(!verify_password("wrong horse", &p.user.password_hash).await);
        assert!(p.user.password_hash.starts_with("$argon2id$"));
    }

    #[tokio::test]
    async fn bcrypt_hashes_from_superinsights_verify_and_are_upgraded() {
        let (_dir, stores) = temp_stores().await;
        let legacy = bcrypt::hash("old-password", 4).unwrap();
        let user = stores
            .accounts
            .create_user("legacy@example.com", &legacy, None, PlatformRole::User)
            .await
            .unwrap();
        assert!(
            check_login(&stores, "legacy@example.com", "wrong-password")
                .await
                .unwrap()
                .is_none()
        );
        assert_eq!(
            stores
                .accounts
                .user(user.id)
                .await
                .unwrap()
                .unwrap()
                .password_hash,
            legacy,
            "no upgrade on failure"
        );
        assert!(
            check_login(&stores, "LEGACY@example.com", "old-password")
                .await
                .unwrap()
                .is_some()
        );
        let stored = stores
            .accounts
            .user(user.id)
            .await
            .unwrap()
            .unwrap()
            .password_hash;
        assert!(stored.starts_with("$argon2id$"), "upgraded: {stored}");
        assert!(
            check_login(&stores, "legacy@example.com", "old-password")
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            check_login(&stores, "nobody@example.com", "old-password")
                .await
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn provision_rejects_bad_input_and_duplicates() {
        let (_dir, stores) = temp_stores().await;
        assert!(matches!(
            provision(&stores, "nope", "longenough", PlatformRole::User, "P").await,
            Err(ProvisionError::Invalid(_))
        ));
        assert!(matches!(
            provision(&stores, "a@b.co", "short", PlatformRole::User, "P").await,
            Err(ProvisionError::Invalid(_))
        ));
        provision(&stores, "a@b.co", "longenough", PlatformRole::User, "P")
            .await
            .unwrap();
        assert!(matches!(
            provision(&stores, "A@B.co", "longenough", PlatformRole::User, "P").await,
            Err(ProvisionError::EmailTaken)
        ));
        assert_eq!(stores.accounts.count_users().await.unwrap(), 1);
    }
}
