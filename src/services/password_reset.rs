//! Forgotten passwords (beyond 1.x): a reset is asked for by email address and always answers
//! the same, whether an account exists or not (the work happens in the background, so the
//! answer's timing says nothing either); an account gets an email with a single-use link valid
//! for an hour, whose token is stored only as its SHA-256. Using it sets the new password
//! (argon2id), which ends every session of the account (sessions carry a stamp of the password
//! hash). Holds no HTTP types.

use crate::{
    domain::{
        audit::codes,
        email::{PasswordReset, RESET_TOKEN_PREFIX, RESET_TTL_MS},
        ids::{DocId, random_hex},
        records::User,
    },
    services::{
        accounts, audit,
        mail::{Email, Mailer},
    },
    store::{StoreError, Stores},
};
use std::sync::Arc;

/// Why a reset link or form was refused; the text is shown.
#[derive(Debug, thiserror::Error)]
pub enum ResetError {
    #[error("This reset link is invalid or was already used. Ask for a new one.")]
    Invalid,
    #[error("This reset link has expired. Ask for a new one.")]
    Expired,
    /// The new password breaks the password rule (the token is kept).
    #[error("{0}")]
    Password(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// SHA-256 hex of a reset token: what is stored.
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Starts a reset for `email` in the background and returns at once: when the address has an
/// account, a token is stored (valid for an hour from `now`, epoch ms on the caller's clock)
/// and the link `<base>/auth/reset?token=…` is emailed. Unknown addresses and failures change
/// nothing the requester can see (failures are logged).
pub async fn request(
    stores: Stores,
    mailer: Arc<Mailer>,
    limiter: &dyn crate::runtime::rate_limit::RateLimiter,
    email: String,
    base: String,
    now: i64,
) {
    // At most 3 emails an hour to one address, whoever asks.
    let key = email.trim().to_lowercase();
    let decision = limiter
        .check(
            crate::runtime::rate_limit::namespaces::PASSWORD_RESET_EMAIL,
            &key,
            3,
            std::time::Duration::from_secs(3600),
        )
        .await;
    if !decision.allowed {
        tracing::info!("password reset email not sent: too many for this address");
        return;
    }
    crate::tasks::spawn("password_reset_mail", async move {
        if let Err(e) = send_reset(&stores, &mailer, &email, &base, now).await {
            tracing::warn!(error = %e, "password reset email not sent");
        }
    });
}

async fn send_reset(
    stores: &Stores,
    mailer: &Mailer,
    email: &str,
    base: &str,
    now: i64,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let Ok(email) = accounts::validate_email(email) else {
        return Ok(());
    };
    let Some(user) = stores.accounts.user_by_email(&email).await? else {
        return Ok(());
    };
    let token = format!("{RESET_TOKEN_PREFIX}{}", random_hex(24));
    stores
        .mail
        .insert_password_reset(&PasswordReset {
            id: DocId::new(),
            user_id: user.id,
            token_hash: token_hash(&token),
            created_at: now,
            expires_at: now + RESET_TTL_MS,
            used_at: None,
        })
        .await?;
    audit::action(codes::AUTH_PASSWORD_RESET_REQUEST)
        .by(&user)
        .record(stores)
        .await;
    let link = format!("{base}/auth/reset?token={token}");
    mailer
        .send(
            "password_reset",
            Email {
                to: user.email.clone(),
                subject: "Reset your SuperInsights password".into(),
                text: format!(
                    "Someone (hopefully you) asked to reset the password of {} on SuperInsights.\n\n\
                     Set a new password here (the link works once, for one hour):\n{link}\n\n\
                     If you did not ask for this, ignore this email: your password stays as it is.\n",
                    user.email
                ),
                html: None,
                attachments: Vec::new(),
            },
        )
        .await?;
    Ok(())
}

/// Whether `token` can still be used at `now` (epoch ms, the caller's clock; for showing the
/// form).
pub async fn check(stores: &Stores, token: &str, now: i64) -> Result<(), ResetError> {
    match stores.mail.password_reset(&token_hash(token)).await? {
        None => Err(ResetError::Invalid),
        Some(r) if r.used_at.is_some() => Err(ResetError::Invalid),
        Some(r) if r.expires_at <= now => Err(ResetError::Expired),
        Some(_) => Ok(()),
    }
}

/// Uses `token` to set `password`: the token is spent (once, even under concurrent use), the
/// password stored as argon2id, every session of the account ends. A password that breaks the
/// rule is refused before the token is spent. `now`: the caller's clock (expiry, `usedAt`).
pub async fn reset(
    stores: &Stores,
    token: &str,
    password: &str,
    now: i64,
) -> Result<User, ResetError> {
    accounts::check_new_password(password)
        .map_err(|e| ResetError::Password(crate::services::sentence_case(&e.to_string())))?;
    check(stores, token, now).await?;
    let hash = accounts::hash_password(password)
        .await
        .map_err(|e| ResetError::Password(e.to_string()))?;
    let Some(reset) = stores
        .mail
        .use_password_reset(&token_hash(token), now)
        .await?
    else {
        return Err(ResetError::Invalid);
    };
    let Some(mut user) = stores.accounts.user(reset.user_id).await? else {
        return Err(ResetError::Invalid);
    };
    stores.accounts.set_password_hash(user.id, &hash).await?;
    user.password_hash = hash;
    audit::action(codes::AUTH_PASSWORD_RESET)
        .by(&user)
        .record(stores)
        .await;
    Ok(user)
}
