//! Account provisioning and password hashing. Registration (web) and `create-admin` (CLI) share
//! [`provision`]: a user, a workspace named after the email, an owner membership and a first
//! project. New passwords use argon2id; bcrypt hashes written by SuperInsights 1.x still verify.

use crate::store::{NewProject, Organization, Project, StoreError, Stores, User};
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

/// Checks a password against an argon2 PHC string; `false` for a mismatch or an unknown format.
pub async fn verify_password(password: &str, stored_hash: &str) -> bool {
    let (password, stored) = (password.to_string(), stored_hash.to_string());
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
    })
    .await
    .unwrap_or(false)
}

fn validate_email(email: &str) -> Result<String, ProvisionError> {
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

/// Creates a user with `role` (`admin` or `user`), the workspace `<local part>'s Workspace`, an
/// owner membership and the project `project_name`.
pub async fn provision(
    stores: &Stores,
    email: &str,
    password: &str,
    role: &str,
    project_name: &str,
) -> Result<Provisioned, ProvisionError> {
    let email = validate_email(email)?;
    if password.chars().count() < MIN_PASSWORD_LEN {
        return Err(ProvisionError::Invalid(format!(
            "the password needs at least {MIN_PASSWORD_LEN} characters"
        )));
    }
    if stores.accounts.user_by_email(&email).await?.is_some() {
        return Err(ProvisionError::EmailTaken);
    }
    let hash = hash_password(password).await?;
    let user = match stores.accounts.create_user(&email, &hash, None, role).await {
        Err(StoreError::Conflict(_)) => return Err(ProvisionError::EmailTaken),
        other => other?,
    };
    let local = email.split('@').next().unwrap_or("my");
    let org = stores
        .accounts
        .create_org(&format!("{local}'s Workspace"), user.id)
        .await?;
    stores.accounts.add_member(org.id, user.id, "owner").await?;
    let project = stores
        .projects
        .create_project(NewProject::named(project_name, org.id))
        .await?;
    Ok(Provisioned { user, org, project })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::{SqliteOptions, SqliteStore};

    async fn stores() -> (tempfile::TempDir, Stores) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("a.db"), SqliteOptions::default())
            .await
            .unwrap();
        let stores = Stores::new("sqlite", store);
        stores.admin.migrate().await.unwrap();
        (dir, stores)
    }

    #[tokio::test]
    async fn provision_creates_user_workspace_membership_and_project() {
        let (_dir, stores) = stores().await;
        let p = provision(
            &stores,
            " Ada@Example.com ",
            "correct horse",
            "admin",
            "My First Project",
        )
        .await
        .unwrap();
        assert_eq!(p.user.email, "ada@example.com");
        assert_eq!(p.user.role, "admin");
        assert_eq!(p.org.name, "ada's Workspace");
        assert_eq!(
            stores
                .accounts
                .member_role(p.org.id, p.user.id)
                .await
                .unwrap()
                .as_deref(),
            Some("owner")
        );
        assert_eq!(p.project.org_id, p.org.id);
        assert!(verify_password("correct horse", &p.user.password_hash).await);
        assert!(!verify_password("wrong horse", &p.user.password_hash).await);
        assert!(p.user.password_hash.starts_with("$argon2id$"));
    }

    #[tokio::test]
    async fn provision_rejects_bad_input_and_duplicates() {
        let (_dir, stores) = stores().await;
        assert!(matches!(
            provision(&stores, "nope", "longenough", "user", "P").await,
            Err(ProvisionError::Invalid(_))
        ));
        assert!(matches!(
            provision(&stores, "a@b.co", "short", "user", "P").await,
            Err(ProvisionError::Invalid(_))
        ));
        provision(&stores, "a@b.co", "longenough", "user", "P")
            .await
            .unwrap();
        assert!(matches!(
            provision(&stores, "A@B.co", "longenough", "user", "P").await,
            Err(ProvisionError::EmailTaken)
        ));
        assert_eq!(stores.accounts.count_users().await.unwrap(), 1);
    }
}
