//! Organization and platform membership use cases: adding, inviting, re-roling and removing
//! members (with last-owner protection), accepting invites (creating the account when needed) and
//! the platform-admin rules (last admin, not yourself). Holds no HTTP types: each refusal is a
//! [`MemberError`] whose kind the HTTP layer maps to a status.

use crate::{
    domain::audit::codes,
    domain::{
        ids::{DocId, random_hex},
        records::{
            Invite, InviteScope, InviteStatus, OrgRole, OrgStatus, Organization, PlatformRole, User,
        },
    },
    services::{
        accounts::{self, ProvisionError},
        audit, sentence_case,
    },
    store::{StoreError, Stores},
};

/// Why a membership change was refused; the text is shown to the user.
#[derive(Debug, thiserror::Error)]
pub enum MemberError {
    /// Bad input or a state the request cannot apply to (400).
    #[error("{0}")]
    Invalid(String),
    /// The rule forbids it (last owner, last admin; 403).
    #[error("{0}")]
    Forbidden(String),
    /// Collides with existing state (already a member, invite pending; 409).
    #[error("{0}")]
    Conflict(String),
    /// The user, invite or organization does not exist (404).
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<ProvisionError> for MemberError {
    fn from(e: ProvisionError) -> Self {
        match e {
            ProvisionError::Store(e) => MemberError::Store(e),
            ProvisionError::EmailTaken => {
                MemberError::Conflict("An account with this email already exists".into())
            }
            ProvisionError::Invalid(m) => MemberError::Invalid(sentence_case(&m)),
        }
    }
}

/// Invitations are valid this long (SuperInsights 1.x: 7 days).
pub const INVITE_TTL_MS: i64 = 7 * 24 * 3600 * 1000;

/// SHA-256 hex of an invite token: what is stored (the token itself never is).
pub fn token_hash(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Organization roles the UI assigns (`owner`, `admin`). Anything else becomes `viewer`, as in
/// SuperInsights 1.x.
pub fn org_role(input: Option<&str>) -> OrgRole {
    match input {
        Some("owner") => OrgRole::Owner,
        Some("admin") => OrgRole::Admin,
        _ => OrgRole::Viewer,
    }
}

/// Platform roles: `admin` or `user`; `None` for anything else.
pub fn platform_role(input: Option<&str>) -> Option<PlatformRole> {
    input.and_then(|r| r.parse().ok())
}

/// Token prefixes: organization invites `inv_`, platform invites `pinv_` (then 48 hex digits).
const ORG_TOKEN_PREFIX: &str = "inv_";
const PLATFORM_TOKEN_PREFIX: &str = "pinv_";

/// Adds an existing user to `org` (or reactivates a removed membership).
/// Errors: unknown email → `NotFound`; already an active member → `Conflict`.
pub async fn add_existing(
    stores: &Stores,
    org: DocId,
    email: &str,
    role: OrgRole,
) -> Result<User, MemberError> {
    let email = accounts::validate_email(email)?;
    let user = stores
        .accounts
        .user_by_email(&email)
        .await?
        .ok_or_else(|| MemberError::NotFound("User not found. Use invite instead.".into()))?;
    if stores.accounts.member_role(org, user.id).await?.is_some() {
        return Err(MemberError::Conflict(format!(
            "{email} is already a member of this organization"
        )));
    }
    stores.accounts.add_member(org, user.id, role).await?;
    audit::action(codes::PROJECT_USER_ADD)
        .org(org)
        .note(format!("{} as {role}", user.email))
        .record(stores)
        .await;
    Ok(user)
}

/// The pending invite for `email` in `org` (`None`: the platform) unexpired at `now`, if any.
/// Pending invites found expired are marked `expired` on the way.
async fn live_invite_for(
    stores: &Stores,
    org: Option<DocId>,
    email: &str,
    now: i64,
) -> Result<Option<Invite>, MemberError> {
    for invite in stores.invites.pending_invites(org).await? {
        if invite.email != email {
            continue;
        }
        if invite.expires_at <= now {
            stores
                .invites
                .set_invite_status(invite.id, InviteStatus::Expired)
                .await?;
            continue;
        }
        return Ok(Some(invite));
    }
    Ok(None)
}

async fn create_invite(
    stores: &Stores,
    scope: InviteScope,
    email: String,
    by: DocId,
    now: i64,
) -> Result<String, MemberError> {
    let prefix = match scope {
        InviteScope::Org { .. } => ORG_TOKEN_PREFIX,
        InviteScope::Platform { .. } => PLATFORM_TOKEN_PREFIX,
    };
    let token = format!("{prefix}{}", random_hex(24));
    let invite = Invite::new(scope, email, token_hash(&token), by, now, INVITE_TTL_MS);
    stores.invites.create_invite(&invite).await?;
    Ok(token)
}

/// Invites `email` to `org` with `role` for 7 days from `now` (epoch ms, the caller's clock);
/// returns the token (shown once, stored only as its SHA-256). Errors: already an active member
/// or an invite pending → `Conflict`.
pub async fn invite_to_org(
    stores: &Stores,
    org: DocId,
    email: &str,
    role: OrgRole,
    by: DocId,
    now: i64,
) -> Result<String, MemberError> {
    let email = accounts::validate_email(email)?;
    if let Some(user) = stores.accounts.user_by_email(&email).await?
        && stores.accounts.member_role(org, user.id).await?.is_some()
    {
        return Err(MemberError::Conflict(format!(
            "{email} is already a member of this organization"
        )));
    }
    if live_invite_for(stores, Some(org), &email, now)
        .await?
        .is_some()
    {
        return Err(MemberError::Conflict(format!(
            "An invite for {email} is already pending"
        )));
    }
    let token = create_invite(
        stores,
        InviteScope::Org { org_id: org, role },
        email.clone(),
        by,
        now,
    )
    .await?;
    audit::action(codes::ORG_USER_INVITE)
        .org(org)
        .note(format!("{email} as {role}"))
        .record(stores)
        .await;
    Ok(token)
}

/// Invites `email` to the platform with `role` (`user|admin`) for 7 days from `now`; returns the
/// token. Errors: the account exists or an invite is pending → `Conflict`.
pub async fn invite_to_platform(
    stores: &Stores,
    email: &str,
    role: PlatformRole,
    by: DocId,
    now: i64,
) -> Result<String, MemberError> {
    let email = accounts::validate_email(email)?;
    if stores.accounts.user_by_email(&email).await?.is_some() {
        return Err(MemberError::Conflict(format!(
            "An account for {email} already exists"
        )));
    }
    if live_invite_for(stores, None, &email, now).await?.is_some() {
        return Err(MemberError::Conflict(format!(
            "An invite for {email} is already pending"
        )));
    }
    let token = create_invite(
        stores,
        InviteScope::Platform { role },
        email.clone(),
        by,
        now,
    )
    .await?;
    audit::action(codes::ADMIN_PLATFORM_INVITE)
        .note(format!("{email} as {}", role.as_str()))
        .record(stores)
        .await;
    Ok(token)
}

/// Revokes a pending invite of `org` (`None`: the platform). Errors: no such pending invite there.
pub async fn revoke_invite(
    stores: &Stores,
    org: Option<DocId>,
    invite: DocId,
) -> Result<Invite, MemberError> {
    let found = stores
        .invites
        .pending_invites(org)
        .await?
        .into_iter()
        .find(|i| i.id == invite)
        .ok_or_else(|| MemberError::NotFound("No such pending invite.".into()))?;
    stores
        .invites
        .set_invite_status(found.id, InviteStatus::Revoked)
        .await?;
    let mut entry = audit::action(codes::ORG_INVITE_REVOKE).note(found.email.clone());
    if let Some(org) = org {
        entry = entry.org(org);
    }
    entry.record(stores).await;
    Ok(found)
}

/// Changes a member's role. Errors: not a member → `NotFound`; demoting the last owner →
/// `Forbidden`.
pub async fn set_member_role(
    stores: &Stores,
    org: DocId,
    user: DocId,
    role: OrgRole,
) -> Result<(), MemberError> {
    let members = stores.accounts.members(org).await?;
    let target = members
        .iter()
        .find(|m| m.user.id == user)
        .ok_or_else(|| MemberError::NotFound("That user is not a member.".into()))?;
    if target.role == OrgRole::Owner
        && role != OrgRole::Owner
        && members.iter().filter(|m| m.role == OrgRole::Owner).count() == 1
    {
        return Err(MemberError::Forbidden(
            "The last owner cannot be demoted. Make someone else an owner first.".into(),
        ));
    }
    stores.accounts.add_member(org, user, role).await?;
    audit::action(codes::ORG_USER_SET_ROLE)
        .org(org)
        .note(format!("{} to {role}", target.user.email))
        .record(stores)
        .await;
    Ok(())
}

/// Removes a member. Errors: yourself → `Invalid`; not a member → `NotFound`; the last owner →
/// `Forbidden`.
pub async fn remove_from_org(
    stores: &Stores,
    org: DocId,
    actor: DocId,
    user: DocId,
) -> Result<User, MemberError> {
    if actor == user {
        return Err(MemberError::Invalid(
            "You cannot remove yourself from the organization.".into(),
        ));
    }
    let members = stores.accounts.members(org).await?;
    let target = members
        .iter()
        .find(|m| m.user.id == user)
        .ok_or_else(|| MemberError::NotFound("That user is not a member.".into()))?;
    if target.role == OrgRole::Owner
        && members.iter().filter(|m| m.role == OrgRole::Owner).count() == 1
    {
        return Err(MemberError::Forbidden(
            "The last owner cannot be removed.".into(),
        ));
    }
    stores.accounts.remove_member(org, user).await?;
    audit::action(codes::PROJECT_USER_REMOVE)
        .org(org)
        .note(target.user.email.clone())
        .record(stores)
        .await;
    Ok(target.user.clone())
}

/// Which kind of invite a link is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteKind {
    Org,
    Platform,
}

/// The pending invite behind `token`. Errors: missing token → `Invalid`; unknown (or of the
/// other kind) → `NotFound`; accepted/revoked/expired → `Invalid`; past its expiry at `now` →
/// marked `expired`, then `Invalid`.
pub async fn open_invite(
    stores: &Stores,
    token: Option<&str>,
    kind: InviteKind,
    now: i64,
) -> Result<Invite, MemberError> {
    let token = token
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| MemberError::Invalid("The invite token is missing.".into()))?;
    let not_found = || MemberError::NotFound("This invite link is not valid.".into());
    let invite = stores
        .invites
        .invite_by_token_hash(&token_hash(token))
        .await?
        .ok_or_else(not_found)?;
    if (kind == InviteKind::Org) != invite.org_id().is_some() {
        return Err(not_found());
    }
    if invite.status != InviteStatus::Pending {
        return Err(MemberError::Invalid(format!(
            "This invite is no longer valid (it was {}).",
            invite.status
        )));
    }
    if invite.expires_at <= now {
        stores
            .invites
            .set_invite_status(invite.id, InviteStatus::Expired)
            .await?;
        return Err(MemberError::Invalid(
            "This invite has expired. Ask for a new one.".into(),
        ));
    }
    Ok(invite)
}

/// The organization an org invite is for, if it is still active.
pub async fn invite_org(stores: &Stores, invite: &Invite) -> Result<Organization, MemberError> {
    let org = match invite.org_id() {
        Some(id) => stores.accounts.org(id).await?,
        None => None,
    };
    org.filter(|o| o.status == OrgStatus::Active)
        .ok_or_else(|| {
            MemberError::Invalid("The organization of this invite is no longer active.".into())
        })
}

/// Who is accepting: the signed-in user (if any) and what the form sent.
pub struct Acceptance<'a> {
    pub signed_in: Option<DocId>,
    pub name: Option<&'a str>,
    pub password: &'a str,
}

/// Resolves the invited account: the existing user, who must be signed in as themselves or give
/// their password (`Forbidden` otherwise), or `None` when the email has no account yet.
async fn confirm_existing(
    stores: &Stores,
    invite: &Invite,
    who: &Acceptance<'_>,
) -> Result<Option<User>, MemberError> {
    let Some(user) = stores.accounts.user_by_email(&invite.email).await? else {
        return Ok(None);
    };
    if who.signed_in == Some(user.id) {
        return Ok(Some(user));
    }
    if who.password.is_empty()
        || !accounts::verify_password(who.password, &user.password_hash).await
    {
        return Err(MemberError::Forbidden(format!(
            "Sign in as {} or enter that account's password to accept this invite.",
            invite.email
        )));
    }
    Ok(Some(user))
}

fn display_name(name: Option<&str>) -> Result<Option<String>, MemberError> {
    let name = name.map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 120) {
        return Err(MemberError::Invalid(
            "Name must be at most 120 characters".into(),
        ));
    }
    Ok(name.map(str::to_string))
}

/// Accepts an organization invite: creates the account when the email has none (the first user
/// ever becomes platform admin), adds or reactivates the membership with the invite's role and
/// marks the invite accepted. Returns the user and the organization to make current.
/// Errors: already an active member → `Conflict`; bad password/name → `Invalid`.
pub async fn accept_org_invite(
    stores: &Stores,
    invite: &Invite,
    who: Acceptance<'_>,
) -> Result<(User, Organization), MemberError> {
    let org = invite_org(stores, invite).await?;
    // `invite_org` found the organization, so this is an organization invite.
    let InviteScope::Org { role, .. } = invite.scope else {
        return Err(MemberError::Invalid(
            "The organization of this invite is no longer active.".into(),
        ));
    };
    let user = match confirm_existing(stores, invite, &who).await? {
        Some(user) => {
            if stores
                .accounts
                .member_role(org.id, user.id)
                .await?
                .is_some()
            {
                return Err(MemberError::Conflict(
                    "You are already a member of this organization.".into(),
                ));
            }
            user
        }
        None => {
            let name = display_name(who.name)?;
            accounts::check_new_password(who.password)?;
            let platform_role = if stores.accounts.count_users().await? == 0 {
                PlatformRole::Admin
            } else {
                PlatformRole::User
            };
            let hash = accounts::hash_password(who.password).await?;
            match stores
                .accounts
                .create_user(&invite.email, &hash, name.as_deref(), platform_role)
                .await
            {
                Err(StoreError::Conflict(_)) => return Err(ProvisionError::EmailTaken.into()),
                other => other?,
            }
        }
    };
    stores.accounts.add_member(org.id, user.id, role).await?;
    stores
        .invites
        .set_invite_status(invite.id, InviteStatus::Accepted)
        .await?;
    audit::action(codes::ORG_INVITE_ACCEPT)
        .org(org.id)
        .by(&user)
        .record(stores)
        .await;
    Ok((user, org))
}

/// Accepts a platform invite: creates the account with the invite's role (the first user ever is
/// admin) together with a workspace and a first project of its own (SuperInsights 1.x left such
/// users without any organization), or, for an existing account, promotes it to admin when the
/// invite says so. Marks the invite accepted. Returns the user and the organization to make
/// current (`None` when an existing user has none).
pub async fn accept_platform_invite(
    stores: &Stores,
    invite: &Invite,
    who: Acceptance<'_>,
) -> Result<(User, Option<DocId>), MemberError> {
    let invited = match invite.scope {
        InviteScope::Platform { role } => role,
        InviteScope::Org { .. } => PlatformRole::User,
    };
    let result = match confirm_existing(stores, invite, &who).await? {
        Some(mut user) => {
            if invited == PlatformRole::Admin && user.role != PlatformRole::Admin {
                stores
                    .accounts
                    .set_user_role(user.id, PlatformRole::Admin)
                    .await?;
                user.role = PlatformRole::Admin;
            }
            let org = stores
                .accounts
                .memberships(user.id)
                .await?
                .first()
                .map(|(o, _)| o.id);
            (user, org)
        }
        None => {
            let name = display_name(who.name)?;
            let role = if stores.accounts.count_users().await? == 0 {
                PlatformRole::Admin
            } else {
                invited
            };
            let created = accounts::provision_named(
                stores,
                &invite.email,
                who.password,
                name.as_deref(),
                role,
                "My First Project",
            )
            .await?;
            (created.user, Some(created.org.id))
        }
    };
    stores
        .invites
        .set_invite_status(invite.id, InviteStatus::Accepted)
        .await?;
    audit::action(codes::ORG_INVITE_ACCEPT)
        .note("platform invite")
        .record(stores)
        .await;
    Ok(result)
}

/// Changes a user's platform role. Errors: unknown user → `NotFound`; demoting the last admin →
/// `Forbidden`.
pub async fn set_platform_role(
    stores: &Stores,
    user: DocId,
    role: PlatformRole,
) -> Result<User, MemberError> {
    let target = stores
        .accounts
        .user(user)
        .await?
        .ok_or_else(|| MemberError::NotFound("User not found.".into()))?;
    if target.role == PlatformRole::Admin
        && role != PlatformRole::Admin
        && admin_count(stores).await? == 1
    {
        return Err(MemberError::Forbidden(
            "The last platform admin cannot be demoted.".into(),
        ));
    }
    stores.accounts.set_user_role(user, role).await?;
    audit::action(codes::ADMIN_USER_SET_ROLE)
        .note(format!("{} to {}", target.email, role.as_str()))
        .record(stores)
        .await;
    Ok(target)
}

async fn admin_count(stores: &Stores) -> Result<usize, MemberError> {
    Ok(stores
        .accounts
        .list_users()
        .await?
        .iter()
        .filter(|u| u.role == PlatformRole::Admin)
        .count())
}

/// Sets a user's password (argon2id), which ends that user's sessions; returns the updated user.
/// Errors: too short → `Invalid`; unknown user → `NotFound`.
pub async fn set_password(
    stores: &Stores,
    user: DocId,
    password: &str,
) -> Result<User, MemberError> {
    accounts::check_new_password(password)?;
    let mut target = stores
        .accounts
        .user(user)
        .await?
        .ok_or_else(|| MemberError::NotFound("User not found.".into()))?;
    let hash = accounts::hash_password(password).await?;
    stores.accounts.set_password_hash(user, &hash).await?;
    target.password_hash = hash;
    audit::action(codes::ADMIN_USER_SET_PASSWORD)
        .note(target.email.clone())
        .record(stores)
        .await;
    Ok(target)
}

/// Deletes a user and all their memberships. Errors: yourself or the last admin → `Invalid`
/// (SuperInsights 1.x answers 400 for both); unknown user → `NotFound`.
pub async fn delete_user(stores: &Stores, actor: DocId, user: DocId) -> Result<User, MemberError> {
    if actor == user {
        return Err(MemberError::Invalid(
            "You cannot delete your own account.".into(),
        ));
    }
    let target = stores
        .accounts
        .user(user)
        .await?
        .ok_or_else(|| MemberError::NotFound("User not found.".into()))?;
    if target.role == PlatformRole::Admin && admin_count(stores).await? == 1 {
        return Err(MemberError::Invalid(
            "The last platform admin cannot be deleted.".into(),
        ));
    }
    stores.accounts.delete_user(user).await?;
    audit::action(codes::ADMIN_USER_DELETE)
        .note(target.email.clone())
        .record(stores)
        .await;
    Ok(target)
}

/// Creates an organization owned by `creator` (who becomes its owner member).
pub async fn create_org(
    stores: &Stores,
    name: &str,
    creator: DocId,
) -> Result<Organization, MemberError> {
    let name = org_name(name)?;
    let org = stores.accounts.create_org(&name, creator).await?;
    stores
        .accounts
        .add_member(org.id, creator, OrgRole::Owner)
        .await?;
    audit::action(codes::ADMIN_ORG_CREATE)
        .org(org.id)
        .note(org.name.clone())
        .record(stores)
        .await;
    Ok(org)
}

/// Renames an organization (`by_admin`: from the platform admin's pages); returns the name.
pub async fn rename_org(
    stores: &Stores,
    org: DocId,
    name: &str,
    by_admin: bool,
) -> Result<String, MemberError> {
    let name = org_name(name)?;
    stores.accounts.rename_org(org, &name).await?;
    let code = if by_admin {
        codes::ADMIN_ORG_RENAME
    } else {
        codes::ORG_RENAME
    };
    audit::action(code)
        .org(org)
        .note(name.clone())
        .record(stores)
        .await;
    Ok(name)
}

/// Sets an organization's status from the platform admin's pages (disabled: members lose access).
pub async fn set_org_status(
    stores: &Stores,
    org: DocId,
    status: OrgStatus,
) -> Result<(), MemberError> {
    stores.accounts.set_org_status(org, status).await?;
    audit::action(codes::ADMIN_ORG_DISABLE)
        .org(org)
        .note(status.as_str())
        .record(stores)
        .await;
    Ok(())
}

/// Validates an organization name (required, at most 120 characters); returns it trimmed.
pub fn org_name(name: &str) -> Result<String, MemberError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(MemberError::Invalid("Name is required".into()));
    }
    if name.chars().count() > 120 {
        return Err(MemberError::Invalid(
            "Name must be at most 120 characters".into(),
        ));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::timestamp::now_ms;
    use crate::store::sqlite::temp_stores;

    #[test]
    fn roles_are_normalised() {
        assert_eq!(org_role(Some("owner")), OrgRole::Owner);
        assert_eq!(org_role(Some("admin")), OrgRole::Admin);
        assert_eq!(org_role(Some("member")), OrgRole::Viewer);
        assert_eq!(org_role(None), OrgRole::Viewer);
        assert_eq!(platform_role(Some("admin")), Some(PlatformRole::Admin));
        assert_eq!(platform_role(Some("user")), Some(PlatformRole::User));
        assert_eq!(platform_role(Some("viewer")), None);
        assert_eq!(platform_role(None), None);
    }

    #[tokio::test]
    async fn invites_are_hashed_unique_per_email_and_expire_lazily() {
        let (_dir, stores) = temp_stores().await;
        let owner = accounts::provision(&stores, "o@x.io", "password-1", PlatformRole::User, "P")
            .await
            .unwrap();
        let token = invite_to_org(
            &stores,
            owner.org.id,
            "New@X.io",
            OrgRole::Viewer,
            owner.user.id,
            now_ms(),
        )
        .await
        .unwrap();
        assert!(
            token.starts_with("inv_") && token.len() == 4 + 48,
            "{token}"
        );
        assert!(matches!(
            invite_to_org(
                &stores,
                owner.org.id,
                "new@x.io",
                OrgRole::Viewer,
                owner.user.id,
                now_ms(),
            )
            .await,
            Err(MemberError::Conflict(_))
        ));
        let invite = open_invite(&stores, Some(&token), InviteKind::Org, now_ms())
            .await
            .unwrap();
        assert_eq!(invite.email, "new@x.io");
        assert_eq!(invite.token_hash, token_hash(&token));
        assert!(matches!(
            open_invite(&stores, Some(&token), InviteKind::Platform, now_ms()).await,
            Err(MemberError::NotFound(_))
        ));
        assert!(matches!(
            open_invite(&stores, None, InviteKind::Org, now_ms()).await,
            Err(MemberError::Invalid(_))
        ));

        // An invite past its expiry is marked expired when opened, and no longer blocks a new one.
        let stale = "inv_stale";
        stores
            .invites
            .create_invite(&Invite {
                id: DocId::new(),
                email: "late@x.io".into(),
                token_hash: token_hash(stale),
                scope: InviteScope::Org {
                    org_id: owner.org.id,
                    role: OrgRole::Viewer,
                },
                status: InviteStatus::Pending,
                created_by: owner.user.id,
                expires_at: now_ms() - 1,
                created_at: now_ms() - INVITE_TTL_MS,
            })
            .await
            .unwrap();
        assert!(matches!(
            open_invite(&stores, Some(stale), InviteKind::Org, now_ms()).await,
            Err(MemberError::Invalid(_))
        ));
        let marked = stores
            .invites
            .invite_by_token_hash(&token_hash(stale))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(marked.status, InviteStatus::Expired);
        invite_to_org(
            &stores,
            owner.org.id,
            "late@x.io",
            OrgRole::Viewer,
            owner.user.id,
            now_ms(),
        )
        .await
        .unwrap();

        // Expiry is decided at the caller's "now": the first invite is live until 7 days after
        // it was made, and expired from then on.
        let made = invite.created_at;
        let opened = open_invite(
            &stores,
            Some(&token),
            InviteKind::Org,
            made + INVITE_TTL_MS - 1,
        );
        assert!(opened.await.is_ok(), "live until its expiry");
        assert!(matches!(
            open_invite(&stores, Some(&token), InviteKind::Org, made + INVITE_TTL_MS).await,
            Err(MemberError::Invalid(_))
        ));
    }

    #[tokio::test]
    async fn last_owner_and_last_admin_are_protected() {
        let (_dir, stores) = temp_stores().await;
        let a = accounts::provision(&stores, "a@x.io", "password-1", PlatformRole::Admin, "P")
            .await
            .unwrap();
        let b = accounts::provision(&stores, "b@x.io", "password-1", PlatformRole::User, "P")
            .await
            .unwrap();
        let org = a.org.id;
        assert!(matches!(
            set_member_role(&stores, org, a.user.id, OrgRole::Viewer).await,
            Err(MemberError::Forbidden(_))
        ));
        assert!(matches!(
            remove_from_org(&stores, org, a.user.id, a.user.id).await,
            Err(MemberError::Invalid(_))
        ));
        assert!(matches!(
            remove_from_org(&stores, org, b.user.id, a.user.id).await,
            Err(MemberError::Forbidden(_))
        ));
        add_existing(&stores, org, "b@x.io", OrgRole::Owner)
            .await
            .unwrap();
        assert!(matches!(
            add_existing(&stores, org, "b@x.io", OrgRole::Owner).await,
            Err(MemberError::Conflict(_))
        ));
        assert!(matches!(
            add_existing(&stores, org, "nobody@x.io", OrgRole::Owner).await,
            Err(MemberError::NotFound(_))
        ));
        set_member_role(&stores, org, a.user.id, OrgRole::Viewer)
            .await
            .unwrap();

        assert!(matches!(
            set_platform_role(&stores, a.user.id, PlatformRole::User).await,
            Err(MemberError::Forbidden(_))
        ));
        assert!(matches!(
            delete_user(&stores, a.user.id, a.user.id).await,
            Err(MemberError::Invalid(_))
        ));
        assert!(matches!(
            delete_user(&stores, b.user.id, a.user.id).await,
            Err(MemberError::Invalid(_))
        ));
        delete_user(&stores, a.user.id, b.user.id).await.unwrap();
        assert!(stores.accounts.user(b.user.id).await.unwrap().is_none());
    }
}
