//! The records the use cases handle — projects and their keys, users, organizations and their
//! members, invitations, public links, background jobs — with the roles and statuses they carry as
//! enums. Each enum's `as_str` is its stored (and wire) form, the same strings SuperInsights 1.x
//! writes, and its `FromStr` reads that form back. The store ports insert and read these records;
//! nothing here performs IO.

use crate::domain::ids::{DocId, api_key};
use serde::{Deserialize, Serialize};

/// A stored role or status that names no value of its enum (the stores report it as a
/// `StoreError`, keeping this as the cause).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownValue {
    /// What was read (`platform role`, `organization status`, …).
    pub what: &'static str,
    pub value: String,
}

/// A closed set of lower-case strings as an enum: `as_str` (the stored and wire form, also its
/// `Display`), `FromStr` (exactly those strings; anything else is an [`UnknownValue`]) and serde
/// through the same strings.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored (and wire) form.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(s: &str) -> Result<Self, UnknownValue> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownValue { what: $what, value: s.to_string() }),
                }
            }
        }
    };
}

string_enum!(
    /// A user's platform role (saasbackend's `User.role`, default `user`). Platform admins pass
    /// every organization check.
    PlatformRole, "platform role" {
        User = "user",
        Admin = "admin",
    }
);

string_enum!(
    /// A role in an organization (saasbackend's `OrganizationMember.role`, default `member`; also
    /// an organization invite's role). SuperInsights assigns `owner`, `admin` and `viewer`;
    /// `member` comes from saasbackend and passes only the any-member gates.
    OrgRole, "organization role" {
        Owner = "owner",
        Admin = "admin",
        Member = "member",
        Viewer = "viewer",
    }
);

string_enum!(
    /// An organization's status (saasbackend's `Organization.status`, default `active`): members
    /// of a disabled organization lose access.
    OrgStatus, "organization status" {
        Active = "active",
        Disabled = "disabled",
    }
);

string_enum!(
    /// Where an invitation stands (default `pending`).
    InviteStatus, "invite status" {
        Pending = "pending",
        Accepted = "accepted",
        Revoked = "revoked",
        Expired = "expired",
    }
);

/// A project as the rest of the application sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub id: DocId,
    pub name: String,
    pub icon: String,
    pub environment: String,
    pub public_api_key: String,
    pub secret_api_key: String,
    pub data_retention_days: u32,
    pub org_id: DocId,
    /// Epoch milliseconds.
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

impl Project {
    /// How long a new project keeps its analytics (SuperInsights 1.x's default).
    pub const DEFAULT_RETENTION_DAYS: u32 = 90;

    /// A new live project made at `now`: a fresh id and fresh keys, the name trimmed, the default
    /// retention.
    pub fn new(new: NewProject, now: i64) -> Self {
        let (public_api_key, secret_api_key) = fresh_api_keys();
        Self {
            id: DocId::new(),
            name: new.name.trim().to_string(),
            icon: new.icon,
            environment: new.environment,
            public_api_key,
            secret_api_key,
            data_retention_days: Self::DEFAULT_RETENTION_DAYS,
            org_id: new.org_id,
            created_at: now,
            deleted_at: None,
        }
    }
}

/// A fresh pair of project API keys: the public `pk_…` and the secret `sk_…` one.
pub fn fresh_api_keys() -> (String, String) {
    (api_key("pk_"), api_key("sk_"))
}

/// What creating a project needs; [`Project::new`] adds the id, keys and defaults.
#[derive(Clone, Debug)]
pub struct NewProject {
    pub name: String,
    pub icon: String,
    pub environment: String,
    pub org_id: DocId,
}

impl NewProject {
    /// A production project with SuperInsights 1.x's default icon.
    pub fn named(name: &str, org_id: DocId) -> Self {
        Self {
            name: name.to_string(),
            icon: "📊".into(),
            environment: "production".into(),
            org_id,
        }
    }
}

/// Which of a project's two keys matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Public,
    Secret,
}

/// The result of an API-key lookup.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyMatch {
    pub project_id: DocId,
    pub kind: KeyKind,
}

/// An account (saasbackend's `User`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: DocId,
    pub email: String,
    /// PHC string (argon2id) or a bcrypt hash written by SuperInsights 1.x.
    pub password_hash: String,
    pub name: Option<String>,
    pub role: PlatformRole,
    pub created_at: i64,
}

impl User {
    /// A new account made at `now`: a fresh id, the email trimmed and lower-cased (emails are
    /// unique in that form).
    pub fn new(
        email: &str,
        password_hash: &str,
        name: Option<&str>,
        role: PlatformRole,
        now: i64,
    ) -> Self {
        Self {
            id: DocId::new(),
            email: email.trim().to_lowercase(),
            password_hash: password_hash.to_string(),
            name: name.map(str::to_string),
            role,
            created_at: now,
        }
    }
}

/// An organization (saasbackend's `Organization`): projects and memberships belong to one.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Organization {
    pub id: DocId,
    pub name: String,
    /// Unique.
    pub slug: String,
    pub owner_user_id: DocId,
    pub status: OrgStatus,
    pub created_at: i64,
}

impl Organization {
    /// A new active organization made at `now` with a fresh id, the name trimmed.
    pub fn new(name: &str, slug: String, owner: DocId, now: i64) -> Self {
        Self {
            id: DocId::new(),
            name: name.trim().to_string(),
            slug,
            owner_user_id: owner,
            status: OrgStatus::Active,
            created_at: now,
        }
    }
}

/// A URL-safe slug from an organization name (`My Team!` → `my-team`).
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.trim().chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug = slug.trim_end_matches('-').to_string();
    if slug.is_empty() {
        "workspace".into()
    } else {
        slug
    }
}

/// A project's public (shareable) read-only link as stored: only a hash of the token
/// (SHA-256 hex of `PUBLIC_LINK_PEPPER + ":" + token`), never the token itself.
#[derive(Clone, Debug, PartialEq)]
pub struct PublicLink {
    pub project: Project,
    pub enabled: bool,
    /// `None` when no link is active.
    pub token_hash: Option<String>,
    /// When the current link was first enabled (epoch ms).
    pub created_at: Option<i64>,
    /// When the current token was made (enable or regenerate).
    pub last_regenerated_at: Option<i64>,
    /// When the link was last revoked.
    pub revoked_at: Option<i64>,
}

/// Editable project fields (validated by the caller).
#[derive(Clone, Debug, PartialEq)]
pub struct ProjectUpdate {
    pub name: String,
    pub icon: String,
    pub environment: String,
    pub data_retention_days: u32,
}

/// An active organization membership, with the member.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub user: User,
    pub role: OrgRole,
}

/// Whom an invitation is for, and the role accepting it grants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteScope {
    /// Membership of an organization (saasbackend's `invites`, role default `member`).
    Org { org_id: DocId, role: OrgRole },
    /// An account on the platform (SuperInsights' `platforminvites`, role default `user`).
    Platform { role: PlatformRole },
}

impl InviteScope {
    /// The organization, `None` for a platform invite.
    pub fn org_id(&self) -> Option<DocId> {
        match self {
            InviteScope::Org { org_id, .. } => Some(*org_id),
            InviteScope::Platform { .. } => None,
        }
    }

    /// The role's stored form (`owner`, `viewer`, `user`, …).
    pub fn role_str(&self) -> &'static str {
        match self {
            InviteScope::Org { role, .. } => role.as_str(),
            InviteScope::Platform { role } => role.as_str(),
        }
    }
}

/// An invitation to an organization or to the platform (see [`InviteScope`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Invite {
    pub id: DocId,
    pub email: String,
    /// SHA-256 hex of the token; the token itself is never stored.
    pub token_hash: String,
    pub scope: InviteScope,
    pub status: InviteStatus,
    pub created_by: DocId,
    pub expires_at: i64,
    pub created_at: i64,
}

impl Invite {
    /// A new pending invitation for `email`, made by `created_by` at `now` and valid for
    /// `ttl_ms`; only `token_hash` (never the token) is kept.
    pub fn new(
        scope: InviteScope,
        email: String,
        token_hash: String,
        created_by: DocId,
        now: i64,
        ttl_ms: i64,
    ) -> Self {
        Self {
            id: DocId::new(),
            email,
            token_hash,
            scope,
            status: InviteStatus::Pending,
            created_by,
            expires_at: now + ttl_ms,
            created_at: now,
        }
    }

    /// The organization, `None` for a platform invite.
    pub fn org_id(&self) -> Option<DocId> {
        self.scope.org_id()
    }
}

/// A background job's lifecycle state (`queued → running → completed | failed`; a failed attempt
/// with attempts left goes back to `queued` with a later `run_after`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobState {
    Queued,
    Running,
    Completed,
    Failed,
}

impl JobState {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobState::Queued => "queued",
            JobState::Running => "running",
            JobState::Completed => "completed",
            JobState::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => JobState::Queued,
            "running" => JobState::Running,
            "completed" => JobState::Completed,
            "failed" => JobState::Failed,
            _ => return None,
        })
    }
}

/// Which path is expected to deliver a queued job: the store sweep (`Store`), or a Redis stream
/// entry (`Redis`), in which case store sweeps leave it alone for a grace period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobDispatch {
    Store,
    Redis,
}

impl JobDispatch {
    pub fn as_str(&self) -> &'static str {
        match self {
            JobDispatch::Store => "store",
            JobDispatch::Redis => "redis",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "store" => Some(JobDispatch::Store),
            "redis" => Some(JobDispatch::Redis),
            _ => None,
        }
    }
}

/// A background job as stored (the UI reads this). Times are epoch milliseconds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    pub id: DocId,
    /// What runs it (`ai_analysis`, `report`, …): the handler registered for this kind.
    pub kind: String,
    pub payload: serde_json::Value,
    pub state: JobState,
    pub dispatch: JobDispatch,
    /// Attempts started so far, the current one included (a released attempt is not counted).
    pub attempts: u32,
    pub max_attempts: u32,
    /// 0–100, reset when an attempt starts.
    pub progress: u8,
    pub progress_message: Option<String>,
    pub queued_at: i64,
    /// Not claimable before this (retry backoff).
    pub run_after: i64,
    /// When the current (or last) attempt started.
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// The current attempt's lease: only its holder may write the job; expired = claimable again.
    pub lease_token: Option<String>,
    pub lease_until: Option<i64>,
    pub worker: Option<String>,
    pub last_error: Option<String>,
    pub result: Option<serde_json::Value>,
}

/// A job to insert (state `queued`, no attempts yet).
#[derive(Clone, Debug)]
pub struct NewJobRecord {
    pub id: DocId,
    pub kind: String,
    pub payload: serde_json::Value,
    pub max_attempts: u32,
    pub queued_at: i64,
    pub run_after: i64,
    pub dispatch: JobDispatch,
}

/// How many jobs are in each state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct JobCounts {
    pub queued: u64,
    pub running: u64,
    pub completed: u64,
    pub failed: u64,
    /// When the oldest job still `queued` was enqueued (epoch ms); `None` with none queued.
    pub oldest_queued_ms: Option<i64>,
}

impl JobCounts {
    pub fn add(&mut self, state: JobState, n: u64) {
        match state {
            JobState::Queued => self.queued += n,
            JobState::Running => self.running += n,
            JobState::Completed => self.completed += n,
            JobState::Failed => self.failed += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value reads back from its stored form, and serde speaks the same strings.
    fn round_trips<T>(all: &[T], stored: &[&str])
    where
        T: std::str::FromStr<Err = UnknownValue>
            + Serialize
            + for<'de> Deserialize<'de>
            + std::fmt::Display
            + std::fmt::Debug
            + PartialEq
            + Copy,
    {
        let texts: Vec<String> = all.iter().map(ToString::to_string).collect();
        assert_eq!(texts, stored);
        for (value, text) in all.iter().zip(stored) {
            assert_eq!(text.parse::<T>().unwrap(), *value);
            let json = serde_json::to_value(value).unwrap();
            assert_eq!(json, serde_json::json!(text));
            assert_eq!(serde_json::from_value::<T>(json).unwrap(), *value);
        }
    }

    #[test]
    fn roles_and_statuses_keep_their_superinsights_1x_strings() {
        round_trips(PlatformRole::ALL, &["user", "admin"]);
        round_trips(OrgRole::ALL, &["owner", "admin", "member", "viewer"]);
        round_trips(OrgStatus::ALL, &["active", "disabled"]);
        round_trips(
            InviteStatus::ALL,
            &["pending", "accepted", "revoked", "expired"],
        );
    }

    #[test]
    fn unknown_values_are_refused_and_named() {
        let e = "viewer".parse::<PlatformRole>().unwrap_err();
        assert_eq!(e.to_string(), "unknown platform role \"viewer\"");
        assert!("Owner".parse::<OrgRole>().is_err(), "case matters");
        assert!("removed".parse::<OrgStatus>().is_err());
        assert!("".parse::<InviteStatus>().is_err());
    }

    #[test]
    fn new_records_get_fresh_ids_keys_and_defaults() {
        let org = DocId::new();
        let p = Project::new(NewProject::named("  Shop ", org), 7);
        let q = Project::new(NewProject::named("Shop", org), 7);
        assert_eq!((p.name.as_str(), p.icon.as_str()), ("Shop", "📊"));
        assert_eq!(p.environment, "production");
        assert_eq!((p.org_id, p.created_at, p.deleted_at), (org, 7, None));
        assert_eq!(p.data_retention_days, 90);
        assert!(p.public_api_key.starts_with("pk_") && p.secret_api_key.starts_with("sk_"));
        assert_ne!(p.id, q.id);
        assert_ne!(p.public_api_key, q.public_api_key);

        let u = User::new(
            " Ada@Example.COM ",
            "h",
            Some("Ada"),
            PlatformRole::Admin,
            9,
        );
        assert_eq!(
            (u.email.as_str(), u.name.as_deref(), u.role, u.created_at),
            ("ada@example.com", Some("Ada"), PlatformRole::Admin, 9)
        );

        let o = Organization::new(" Acme ", "acme".into(), u.id, 11);
        assert_eq!((o.name.as_str(), o.slug.as_str()), ("Acme", "acme"));
        assert_eq!(
            (o.owner_user_id, o.status, o.created_at),
            (u.id, OrgStatus::Active, 11)
        );
    }

    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(slugify("My Team!"), "my-team");
        assert_eq!(slugify("  Ünïcode  Ørg "), "n-code-rg");
        assert_eq!(slugify("!!!"), "workspace");
    }

    #[test]
    fn a_new_invite_is_pending_for_its_ttl() {
        let org_id = DocId::new();
        let by = DocId::new();
        let scope = InviteScope::Org {
            org_id,
            role: OrgRole::Viewer,
        };
        let i = Invite::new(scope, "a@b.co".into(), "h".into(), by, 1_000, 500);
        assert_eq!(i.status, InviteStatus::Pending);
        assert_eq!((i.created_at, i.expires_at), (1_000, 1_500));
        assert_eq!((i.org_id(), i.scope.role_str()), (Some(org_id), "viewer"));
        let platform = InviteScope::Platform {
            role: PlatformRole::Admin,
        };
        assert_eq!((platform.org_id(), platform.role_str()), (None, "admin"));
    }
}
