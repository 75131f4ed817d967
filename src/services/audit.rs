//! The audit trail as a side effect of the use cases (reference §5.9): services record what a
//! user did ([`action`]); the HTTP layer's error middleware records error answers ([`error`]).
//! Who did it and from where comes from the request being served ([`RequestContext`], a
//! task-local set by `http::audit_context`), so services hold no HTTP types.
//!
//! Recording never fails the action: the write is bounded in time, and a failure is counted
//! (`si_audit_log_writes_total{outcome="failed"}`) and logged, never returned. Every text is
//! scrubbed of secrets before it is stored (`domain::audit::scrub`), and every 50th write
//! prunes the log to its newest [`MAX_RAW_LOGS`] entries.

use crate::{
    domain::{
        audit::{LogKind, LogPage, LogQuery, MAX_RAW_LOGS, RawLog},
        ids::DocId,
        records::User,
        timestamp::now_ms,
    },
    store::{StoreResult, Stores},
};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};
use std::time::Duration;

/// The request an action or error happened in.
#[derive(Debug, Default)]
pub struct RequestContext {
    pub method: String,
    /// The path without its query.
    pub path: String,
    pub ip: Option<String>,
    /// Set once the session is resolved (`http::session::AuthUser`).
    user: Mutex<Option<(DocId, String)>>,
}

impl RequestContext {
    pub fn new(method: &str, path: &str, ip: Option<String>) -> Arc<Self> {
        Arc::new(Self {
            method: method.to_string(),
            path: path.to_string(),
            ip,
            user: Mutex::new(None),
        })
    }

    fn user(&self) -> Option<(DocId, String)> {
        self.user.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

tokio::task_local! {
    static REQUEST: Arc<RequestContext>;
}

/// Runs `fut` (a request) with `ctx` as its context.
pub async fn with_request<F: std::future::Future>(ctx: Arc<RequestContext>, fut: F) -> F::Output {
    REQUEST.scope(ctx, fut).await
}

/// The signed-in user of the current request (called when the session is resolved).
pub fn set_request_user(user: &User) {
    let _ = REQUEST.try_with(|ctx| {
        *ctx.user.lock().unwrap_or_else(|p| p.into_inner()) = Some((user.id, user.email.clone()));
    });
}

fn current() -> Option<Arc<RequestContext>> {
    REQUEST.try_with(Arc::clone).ok()
}

/// An action about to be recorded: `action(code).project(..).record(stores)`.
#[must_use = "an action is recorded only by `record`"]
pub struct Action {
    log: RawLog,
    user: Option<(DocId, String)>,
}

/// Starts an action entry with `code` (`domain::audit::codes`).
pub fn action(code: &str) -> Action {
    let mut log = RawLog::new(LogKind::Action, now_ms());
    log.action_code = Some(code.to_string());
    Action { log, user: None }
}

impl Action {
    /// The project it concerns.
    pub fn project(mut self, id: DocId) -> Self {
        self.log.project_id = Some(id.to_hex());
        self
    }

    /// The organization it concerns.
    pub fn org(mut self, id: DocId) -> Self {
        self.log.org_id = Some(id.to_hex());
        self
    }

    /// Who did it, when the request has no signed-in user yet (login, registration) or there
    /// is no request (background jobs).
    pub fn by(mut self, user: &User) -> Self {
        self.user = Some((user.id, user.email.clone()));
        self
    }

    /// Who did it, by stored id and email (a job acting for the user who asked).
    pub fn by_ref(mut self, user_id: &str, email: &str) -> Self {
        if let Some(id) = DocId::parse(user_id) {
            self.user = Some((id, email.to_string()));
        }
        self
    }

    /// A short note (e.g. the role given, the member concerned); scrubbed like every text.
    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.log.error_message = Some(text.into());
        self
    }

    /// Stores the entry; never fails (see the module doc).
    pub async fn record(mut self, stores: &Stores) {
        let ctx = current();
        let user = self
            .user
            .take()
            .or_else(|| ctx.as_ref().and_then(|c| c.user()));
        if let Some((id, email)) = user {
            self.log.user_id = Some(id.to_hex());
            self.log.email = Some(email);
        }
        if let Some(ctx) = ctx {
            self.log.method = Some(ctx.method.clone());
            self.log.path = Some(ctx.path.clone());
            self.log.ip = ctx.ip.clone();
        }
        write(stores, self.log).await;
    }
}

/// Records an error answer of the error handler: its status and the message shown (or, for a
/// 5xx, the hidden cause, scrubbed), in the current request's context.
pub async fn error(stores: &Stores, status: u16, message: &str) {
    let mut log = RawLog::new(LogKind::Error, now_ms());
    log.status = Some(status);
    log.error_message = Some(message.to_string());
    if let Some(ctx) = current() {
        if let Some((id, email)) = ctx.user() {
            log.user_id = Some(id.to_hex());
            log.email = Some(email);
        }
        log.method = Some(ctx.method.clone());
        log.path = Some(ctx.path.clone());
        log.ip = ctx.ip.clone();
        // A project's errors belong to its log.
        log.project_id = project_in_path(&ctx.path);
    }
    write(stores, log).await;
}

/// The project id of a `/projects/<id>/…` path.
fn project_in_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/projects/")?;
    let id = rest.split('/').next()?;
    DocId::parse(id).map(|d| d.to_hex())
}

/// A log write may take this long before it is given up (the action goes on).
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// Prune every this many writes of a process (1.x: 50).
const PRUNE_EVERY: u64 = 50;

static WRITES: AtomicU64 = AtomicU64::new(0);

async fn write(stores: &Stores, log: RawLog) {
    let log = log.scrubbed();
    let outcome = tokio::time::timeout(WRITE_TIMEOUT, stores.logs.insert_log(&log)).await;
    match outcome {
        Ok(Ok(())) => crate::telemetry::audit_log_write("written"),
        Ok(Err(e)) => {
            crate::telemetry::audit_log_write("failed");
            tracing::warn!(error = %e, kind = log.kind.as_str(), "audit log entry not written");
            return;
        }
        Err(_) => {
            crate::telemetry::audit_log_write("failed");
            tracing::warn!(
                kind = log.kind.as_str(),
                "audit log entry not written: timed out"
            );
            return;
        }
    }
    if WRITES.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
        let logs = stores.logs.clone();
        crate::tasks::spawn("audit_prune", async move {
            if let Err(e) = logs.prune_logs(MAX_RAW_LOGS).await {
                tracing::warn!(error = %e, "audit log not pruned");
            }
        });
    }
}

/// A viewer's page of the log (reference §5.9): the query as the viewer parsed it.
pub async fn query(stores: &Stores, query: &LogQuery) -> StoreResult<LogPage> {
    stores.logs.query_logs(query).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::temp_stores;
    use crate::store::{LogStore, StoreError};

    /// A log that cannot be written.
    struct BrokenLog;

    #[async_trait::async_trait]
    impl LogStore for BrokenLog {
        async fn insert_log(&self, _: &RawLog) -> StoreResult<()> {
            Err(StoreError::unavailable("disk full".into()))
        }
        async fn prune_logs(&self, _: u64) -> StoreResult<u64> {
            Err(StoreError::unavailable("disk full".into()))
        }
        async fn query_logs(&self, _: &LogQuery) -> StoreResult<LogPage> {
            Err(StoreError::unavailable("disk full".into()))
        }
    }

    #[tokio::test]
    async fn a_failing_log_write_never_fails_the_action() {
        let (_dir, mut stores) = temp_stores().await;
        stores.logs = Arc::new(BrokenLog);
        // Registration records AUTH_REGISTER_SUCCESS: the write fails, the account exists.
        let made = crate::services::accounts::provision(
            &stores,
            "ok@example.com",
            "password-123",
            crate::domain::records::PlatformRole::User,
            "First",
        )
        .await
        .expect("the action succeeds without its log entry");
        assert!(stores.accounts.user(made.user.id).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn actions_carry_the_request_context_and_are_scrubbed() {
        let (_dir, stores) = temp_stores().await;
        let ctx = RequestContext::new(
            "POST",
            "/p/65a1b2c3d4e5f60718293a4b/tok/x",
            Some("10.0.0.1".into()),
        );
        let project = DocId::new();
        with_request(ctx, async {
            action("PROJECT_UPDATE")
                .project(project)
                .note("password=hunter22 sk_0123456789abcdef")
                .record(&stores)
                .await;
        })
        .await;
        let page = stores
            .logs
            .query_logs(&LogQuery {
                page: 1,
                limit: 10,
                ..LogQuery::default()
            })
            .await
            .unwrap();
        let log = &page.entries[0];
        assert_eq!(log.action_code.as_deref(), Some("PROJECT_UPDATE"));
        assert_eq!(log.project_id, Some(project.to_hex()));
        assert_eq!(log.method.as_deref(), Some("POST"));
        assert_eq!(
            log.path.as_deref(),
            Some("/p/65a1b2c3d4e5f60718293a4b/[redacted]/x")
        );
        assert_eq!(log.ip.as_deref(), Some("10.0.0.1"));
        assert_eq!(
            log.error_message.as_deref(),
            Some("password=[redacted] sk_[redacted]")
        );
    }

    #[test]
    fn project_ids_come_from_project_paths_only() {
        let id = DocId::new();
        assert_eq!(
            project_in_path(&format!("/projects/{}/settings", id.to_hex())),
            Some(id.to_hex())
        );
        assert_eq!(project_in_path("/projects/new"), None);
        assert_eq!(project_in_path("/org/users"), None);
    }
}
