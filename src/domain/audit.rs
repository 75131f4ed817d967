//! The audit trail's records (reference §5.9): raw log entries (`kind` action or error), the
//! action codes, the viewers' query with its limits, and the scrubbing every recorded text goes
//! through so that no secret (password, token, API key, session id) is ever stored in a log.
//! Pure: recording is `services::audit`, storage the `LogStore` port.

use crate::domain::ids::DocId;

/// Raw log entries kept: the newest this many (1.x: pruned every 50 writes to 10,000).
pub const MAX_RAW_LOGS: u64 = 10_000;

/// Action codes. 1.x's own, the AI-run and report codes it defined, and the membership, admin
/// and email codes it never recorded.
pub mod codes {
    pub const AUTH_REGISTER_SUCCESS: &str = "AUTH_REGISTER_SUCCESS";
    pub const AUTH_LOGIN_SUCCESS: &str = "AUTH_LOGIN_SUCCESS";
    pub const AUTH_LOGOUT: &str = "AUTH_LOGOUT";
    pub const ADMIN_INVITE_USER: &str = "ADMIN_INVITE_USER";
    pub const PROJECT_CREATE: &str = "PROJECT_CREATE";
    pub const PROJECT_UPDATE: &str = "PROJECT_UPDATE";
    pub const PROJECT_REGENERATE_KEYS: &str = "PROJECT_REGENERATE_KEYS";
    pub const PROJECT_PUBLIC_LINK_ENABLE: &str = "PROJECT_PUBLIC_LINK_ENABLE";
    pub const PROJECT_PUBLIC_LINK_REGENERATE: &str = "PROJECT_PUBLIC_LINK_REGENERATE";
    pub const PROJECT_PUBLIC_LINK_REVOKE: &str = "PROJECT_PUBLIC_LINK_REVOKE";
    pub const ADMIN_PROJECT_PUBLIC_LINK_REVOKE: &str = "ADMIN_PROJECT_PUBLIC_LINK_REVOKE";
    pub const PROJECT_USER_ADD: &str = "PROJECT_USER_ADD";
    pub const PROJECT_USER_REMOVE: &str = "PROJECT_USER_REMOVE";
    pub const PROJECT_SOFT_DELETE: &str = "PROJECT_SOFT_DELETE";
    pub const PROJECT_CLEAR_DATA: &str = "PROJECT_CLEAR_DATA";
    pub const AI_ANALYSIS_RUN_STARTED: &str = "AI_ANALYSIS_RUN_STARTED";
    pub const AI_ANALYSIS_RUN_COMPLETED: &str = "AI_ANALYSIS_RUN_COMPLETED";
    pub const AI_ANALYSIS_RUN_FAILED: &str = "AI_ANALYSIS_RUN_FAILED";
    pub const AI_ANALYSIS_PRESET_CREATED: &str = "AI_ANALYSIS_PRESET_CREATED";
    pub const AI_ANALYSIS_PRESET_UPDATED: &str = "AI_ANALYSIS_PRESET_UPDATED";
    pub const AI_ANALYSIS_PRESET_DELETED: &str = "AI_ANALYSIS_PRESET_DELETED";
    pub const AI_ANALYSIS_PRESET_PUBLISHED: &str = "AI_ANALYSIS_PRESET_PUBLISHED";
    pub const AI_ANALYSIS_PRESET_UNPUBLISHED: &str = "AI_ANALYSIS_PRESET_UNPUBLISHED";
    pub const AI_ANALYSIS_PRESET_AI_GENERATED: &str = "AI_ANALYSIS_PRESET_AI_GENERATED";
    pub const AI_ANALYSIS_PRESET_AI_REFINED: &str = "AI_ANALYSIS_PRESET_AI_REFINED";
    pub const REPORT_GENERATED: &str = "REPORT_GENERATED";
    pub const REPORT_DOWNLOADED: &str = "REPORT_DOWNLOADED";
    pub const REPORT_DELETED: &str = "REPORT_DELETED";
    pub const REPORT_GENERATION_FAILED: &str = "REPORT_GENERATION_FAILED";
    // Not recorded by 1.x.
    pub const ORG_RENAME: &str = "ORG_RENAME";
    pub const ORG_USER_INVITE: &str = "ORG_USER_INVITE";
    pub const ORG_USER_SET_ROLE: &str = "ORG_USER_SET_ROLE";
    pub const ORG_INVITE_REVOKE: &str = "ORG_INVITE_REVOKE";
    pub const ORG_INVITE_ACCEPT: &str = "ORG_INVITE_ACCEPT";
    pub const ADMIN_PLATFORM_INVITE: &str = "ADMIN_PLATFORM_INVITE";
    pub const ADMIN_USER_SET_ROLE: &str = "ADMIN_USER_SET_ROLE";
    pub const ADMIN_USER_SET_PASSWORD: &str = "ADMIN_USER_SET_PASSWORD";
    pub const ADMIN_USER_DELETE: &str = "ADMIN_USER_DELETE";
    pub const ADMIN_ORG_CREATE: &str = "ADMIN_ORG_CREATE";
    pub const ADMIN_ORG_RENAME: &str = "ADMIN_ORG_RENAME";
    pub const ADMIN_ORG_DISABLE: &str = "ADMIN_ORG_DISABLE";
    pub const AUTH_PASSWORD_CHANGE: &str = "AUTH_PASSWORD_CHANGE";
    pub const AUTH_PASSWORD_RESET_REQUEST: &str = "AUTH_PASSWORD_RESET_REQUEST";
    pub const AUTH_PASSWORD_RESET: &str = "AUTH_PASSWORD_RESET";
    pub const EMAIL_REPORT_SUBSCRIBE: &str = "EMAIL_REPORT_SUBSCRIBE";
    pub const EMAIL_REPORT_UNSUBSCRIBE: &str = "EMAIL_REPORT_UNSUBSCRIBE";
    pub const EMAIL_REPORT_SENT: &str = "EMAIL_REPORT_SENT";
    pub const ERROR_GROUP_SET_STATE: &str = "ERROR_GROUP_SET_STATE";

    /// Every code, for the viewers' filter list.
    pub const ALL: &[&str] = &[
        AUTH_REGISTER_SUCCESS,
        AUTH_LOGIN_SUCCESS,
        AUTH_LOGOUT,
        AUTH_PASSWORD_CHANGE,
        AUTH_PASSWORD_RESET_REQUEST,
        AUTH_PASSWORD_RESET,
        ADMIN_INVITE_USER,
        ADMIN_PLATFORM_INVITE,
        ADMIN_USER_SET_ROLE,
        ADMIN_USER_SET_PASSWORD,
        ADMIN_USER_DELETE,
        ADMIN_ORG_CREATE,
        ADMIN_ORG_RENAME,
        ADMIN_ORG_DISABLE,
        ADMIN_PROJECT_PUBLIC_LINK_REVOKE,
        ORG_RENAME,
        ORG_USER_INVITE,
        ORG_USER_SET_ROLE,
        ORG_INVITE_REVOKE,
        ORG_INVITE_ACCEPT,
        PROJECT_CREATE,
        PROJECT_UPDATE,
        PROJECT_REGENERATE_KEYS,
        PROJECT_PUBLIC_LINK_ENABLE,
        PROJECT_PUBLIC_LINK_REGENERATE,
        PROJECT_PUBLIC_LINK_REVOKE,
        PROJECT_USER_ADD,
        PROJECT_USER_REMOVE,
        PROJECT_SOFT_DELETE,
        PROJECT_CLEAR_DATA,
        AI_ANALYSIS_RUN_STARTED,
        AI_ANALYSIS_RUN_COMPLETED,
        AI_ANALYSIS_RUN_FAILED,
        AI_ANALYSIS_PRESET_CREATED,
        AI_ANALYSIS_PRESET_UPDATED,
        AI_ANALYSIS_PRESET_DELETED,
        AI_ANALYSIS_PRESET_PUBLISHED,
        AI_ANALYSIS_PRESET_UNPUBLISHED,
        AI_ANALYSIS_PRESET_AI_GENERATED,
        AI_ANALYSIS_PRESET_AI_REFINED,
        REPORT_GENERATED,
        REPORT_DOWNLOADED,
        REPORT_DELETED,
        REPORT_GENERATION_FAILED,
        EMAIL_REPORT_SUBSCRIBE,
        EMAIL_REPORT_UNSUBSCRIBE,
        ERROR_GROUP_SET_STATE,
        EMAIL_REPORT_SENT,
    ];
}

/// `action` (a user did something) or `error` (the error handler answered ≥ 400).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogKind {
    Action,
    Error,
}

impl LogKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LogKind::Action => "action",
            LogKind::Error => "error",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "action" => Some(LogKind::Action),
            "error" => Some(LogKind::Error),
            _ => None,
        }
    }
}

/// One raw log entry (1.x's `RawLogEvent`, plus the organization it concerns, so an
/// organization's membership changes reach its own viewer).
#[derive(Clone, Debug, PartialEq)]
pub struct RawLog {
    pub id: DocId,
    /// Epoch milliseconds.
    pub ts: i64,
    pub kind: LogKind,
    pub action_code: Option<String>,
    pub error_message: Option<String>,
    pub error_stack: Option<String>,
    pub user_id: Option<String>,
    /// Lower-cased.
    pub email: Option<String>,
    pub project_id: Option<String>,
    pub org_id: Option<String>,
    pub method: Option<String>,
    /// The path only (never the query string, which can carry tokens), scrubbed.
    pub path: Option<String>,
    pub status: Option<u16>,
    pub ip: Option<String>,
}

impl RawLog {
    /// An empty entry of `kind` at `ts`.
    pub fn new(kind: LogKind, ts: i64) -> Self {
        Self {
            id: DocId::new(),
            ts,
            kind,
            action_code: None,
            error_message: None,
            error_stack: None,
            user_id: None,
            email: None,
            project_id: None,
            org_id: None,
            method: None,
            path: None,
            status: None,
            ip: None,
        }
    }

    /// Every free text scrubbed ([`scrub`]) and cut to a bounded length, the email lower-cased.
    pub fn scrubbed(mut self) -> Self {
        let clean = |s: Option<String>, max: usize| s.map(|s| cut(&scrub(&s), max));
        self.error_message = clean(self.error_message, 2000);
        self.error_stack = clean(self.error_stack, 8000);
        self.path = self.path.map(|p| cut(&scrub_path(&p), 1000));
        self.email = self.email.map(|e| cut(&e.trim().to_lowercase(), 320));
        self
    }
}

fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

const REDACTED: &str = "[redacted]";

/// Replaces what could be a secret in free text: API keys (`pk_…`, `sk_…`), invite and reset
/// tokens (`inv_…`, `pinv_…`, `prt_…`), credentials in URLs (`scheme://user:pass@`),
/// `password=`/`token=`/`secret=`/`key=`/`sid=` pairs, `Bearer …`, and long hex runs (tokens,
/// session ids, hashes). Idempotent.
pub fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        // Credentials inside a URL: keep the scheme and host.
        if let Some(after) = rest.strip_prefix("://")
            && let Some(at) = after.find('@')
            && !after[..at].contains(['/', ' ', '\n'])
            && after[..at].contains(':')
        {
            out.push_str("://");
            out.push_str(REDACTED);
            out.push('@');
            rest = &after[at + 1..];
            continue;
        }
        let word_start = out
            .chars()
            .last()
            .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        if word_start {
            // Prefixed tokens and keys.
            if let Some(p) = ["pk_", "sk_", "inv_", "pinv_", "prt_"]
                .iter()
                .find(|p| rest.starts_with(**p))
            {
                let body = &rest[p.len()..];
                let n = body
                    .bytes()
                    .take_while(|b| b.is_ascii_alphanumeric())
                    .count();
                if n >= 8 {
                    out.push_str(p);
                    out.push_str(REDACTED);
                    rest = &body[n..];
                    continue;
                }
            }
            // `name=value` / `name: value` pairs whose name says secret.
            let lower: String = rest
                .chars()
                .take(24)
                .collect::<String>()
                .to_ascii_lowercase();
            if let Some(name) = SECRET_NAMES.iter().find(|n| {
                lower.starts_with(**n)
                    && lower[n.len()..]
                        .trim_start_matches(['"', '\''])
                        .trim_start()
                        .starts_with(['=', ':'])
            }) {
                let after_name = &rest[name.len()..];
                let sep = after_name.find(['=', ':']).unwrap_or(0) + 1;
                let value = &after_name[sep..];
                let lead = value.len() - value.trim_start_matches([' ', '"', '\'']).len();
                let v = &value[lead..];
                // A header's value runs to the end of the line (`Bearer …`, cookie lists).
                let n = if matches!(*name, "authorization" | "cookie") {
                    v.find(['\n', '\r']).unwrap_or(v.len())
                } else {
                    v.find(|c: char| c.is_whitespace() || matches!(c, '&' | ',' | ';' | '"' | '\''))
                        .unwrap_or(v.len())
                };
                out.push_str(&rest[..name.len() + sep + lead]);
                if n > 0 {
                    out.push_str(REDACTED);
                }
                rest = &v[n..];
                continue;
            }
            if lower.starts_with("bearer ") {
                out.push_str(&rest[..7]);
                let v = &rest[7..];
                let n = v.find(char::is_whitespace).unwrap_or(v.len());
                out.push_str(REDACTED);
                rest = &v[n..];
                continue;
            }
            // Long hex runs: tokens, session ids, digests.
            let hex = rest.bytes().take_while(|b| b.is_ascii_hexdigit()).count();
            let ends_word = rest[hex..]
                .chars()
                .next()
                .is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
            if hex >= 32 && ends_word {
                out.push_str(REDACTED);
                rest = &rest[hex..];
                continue;
            }
        }
        let c = rest.chars().next().unwrap();
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

const SECRET_NAMES: &[&str] = &[
    "password",
    "passwd",
    "newpassword",
    "new_password",
    "currentpassword",
    "token",
    "secret",
    "apikey",
    "api_key",
    "authorization",
    "sid",
    "cookie",
    "_csrf",
];

/// A request path without its query, with the token of a public link (`/p/<id>/<token>/…`,
/// `/docs/<id>/<token>/…`) replaced, then [`scrub`]bed.
pub fn scrub_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or_default();
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 3 && matches!(parts[1], "p" | "docs") {
        parts[3] = REDACTED;
    }
    scrub(&parts.join("/"))
}

/// What a log viewer asks for (reference §5.9). Texts are already trimmed; `None` is no filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogQuery {
    pub kind: Option<LogKind>,
    pub action_code: Option<String>,
    pub user_id: Option<String>,
    /// Matched case-insensitively (emails are stored lower-cased).
    pub email: Option<String>,
    pub project_id: Option<String>,
    /// At most [`MAX_CONTAINS`] characters; matched literally and case-insensitively in the error
    /// message, the stack and the path.
    pub contains: Option<String>,
    /// Inclusive bounds, epoch ms.
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// The organization viewer's restriction: entries of these projects or of this organization
    /// only.
    pub scope: Option<OrgScope>,
    /// 1-based.
    pub page: u32,
    /// 10–200.
    pub limit: u32,
}

/// An organization's part of the log: its projects' entries and its own.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OrgScope {
    pub org_id: String,
    pub project_ids: Vec<String>,
}

/// Longest `contains` filter.
pub const MAX_CONTAINS: usize = 200;

impl LogQuery {
    /// Entries to skip for this page.
    pub fn skip(&self) -> u64 {
        u64::from(self.page.max(1) - 1) * u64::from(self.limit)
    }

    /// Whether `log` passes every filter (the definition both backends' queries follow; the
    /// contract suite compares them with it).
    pub fn matches(&self, log: &RawLog) -> bool {
        let eq = |want: &Option<String>, have: &Option<String>| {
            want.as_ref().is_none_or(|w| have.as_deref() == Some(w))
        };
        let contains = self.contains.as_ref().is_none_or(|needle| {
            let needle = needle.to_lowercase();
            [&log.error_message, &log.error_stack, &log.path]
                .iter()
                .any(|f| {
                    f.as_ref()
                        .is_some_and(|t| t.to_lowercase().contains(&needle))
                })
        });
        let scope = self.scope.as_ref().is_none_or(|s| {
            log.org_id.as_deref() == Some(&s.org_id)
                || log
                    .project_id
                    .as_ref()
                    .is_some_and(|p| s.project_ids.contains(p))
        });
        self.kind.is_none_or(|k| k == log.kind)
            && eq(&self.action_code, &log.action_code)
            && eq(&self.user_id, &log.user_id)
            && eq(&self.email.as_ref().map(|e| e.to_lowercase()), &log.email)
            && eq(&self.project_id, &log.project_id)
            && self.from.is_none_or(|f| log.ts >= f)
            && self.to.is_none_or(|t| log.ts <= t)
            && contains
            && scope
    }
}

impl LogQuery {
    /// The viewers' query string (reference §5.9): `kind` (`action`, `error`; empty for both),
    /// `actionCode`, `userId`, `email`, `projectId`, `contains` (at most 200 characters),
    /// `from`/`to` (a date `YYYY-MM-DD` — `to` then means the end of that day — or an ISO time),
    /// `page` (from 1, default 1), `limit` (10–200, default 50; clamped). Empty values are no
    /// filter. Errors name the parameter.
    pub fn from_params(
        pairs: &[(String, String)],
    ) -> Result<Self, crate::domain::params::BadParam> {
        use crate::domain::params::BadParam;
        let bad = |name: &str, problem: &str| BadParam {
            name: name.to_string(),
            problem: problem.to_string(),
            code: "BAD_PARAMETER",
        };
        let get = |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        let kind = match get("kind").as_deref() {
            None | Some("all") => None,
            Some(k) => {
                Some(LogKind::parse(k).ok_or_else(|| bad("kind", "must be action or error"))?)
            }
        };
        let contains = get("contains");
        if contains
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_CONTAINS)
        {
            return Err(bad("contains", "must be at most 200 characters"));
        }
        let time = |name: &str, end_of_day: bool| -> Result<Option<i64>, BadParam> {
            let Some(v) = get(name) else {
                return Ok(None);
            };
            let day = v.len() == 10 && v.as_bytes()[4] == b'-';
            let parsed = if day {
                crate::domain::timestamp::parse_iso(&format!("{v}T00:00:00Z"))
                    .map(|t| if end_of_day { t + 86_400_000 - 1 } else { t })
            } else {
                crate::domain::timestamp::parse_iso(&v)
            };
            parsed
                .map(Some)
                .ok_or_else(|| bad(name, "must be a date (YYYY-MM-DD) or an ISO time"))
        };
        let number = |name: &str, default: u32| -> Result<u32, BadParam> {
            match get(name) {
                None => Ok(default),
                Some(v) => v
                    .parse::<u32>()
                    .map_err(|_| bad(name, "must be a whole number")),
            }
        };
        let page = number("page", 1)?;
        if page == 0 {
            return Err(bad("page", "starts at 1"));
        }
        Ok(LogQuery {
            kind,
            action_code: get("actionCode"),
            user_id: get("userId"),
            email: get("email").map(|e| e.to_lowercase()),
            project_id: get("projectId"),
            contains,
            from: time("from", false)?,
            to: time("to", true)?,
            scope: None,
            page,
            limit: number("limit", 50)?.clamp(10, 200),
        })
    }
}

/// One page of entries, newest first, and how many match in all.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LogPage {
    pub entries: Vec<RawLog>,
    pub total: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed_from_text() {
        let cases = [
            (
                "key pk_0123456789abcdef0123 and sk_abcdefabcdef01234567",
                "key pk_[redacted] and sk_[redacted]",
            ),
            (
                "mongodb://admin:hunter22@db.example:27017/x",
                "mongodb://[redacted]@db.example:27017/x",
            ),
            ("password=hunter22&next=/", "password=[redacted]&next=/"),
            (
                "{\"newPassword\": \"s3cret!\"}",
                "{\"newPassword\": \"[redacted]\"}",
            ),
            ("Authorization: Bearer abc.def", "Authorization: [redacted]"),
            ("token prt_00112233445566778899", "token prt_[redacted]"),
            ("sid 0123456789abcdef0123456789abcdef0123", "sid [redacted]"),
            ("plain text stays", "plain text stays"),
            (
                "project 65a1b2c3d4e5f60718293a4b",
                "project 65a1b2c3d4e5f60718293a4b",
            ),
        ];
        for (input, want) in cases {
            assert_eq!(scrub(input), want, "{input}");
            assert_eq!(scrub(want), want, "idempotent: {want}");
        }
    }

    #[test]
    fn paths_lose_their_query_and_public_link_tokens() {
        assert_eq!(
            scrub_path("/p/65a1b2c3d4e5f60718293a4b/abcdef/dashboard?x=1"),
            "/p/65a1b2c3d4e5f60718293a4b/[redacted]/dashboard"
        );
        assert_eq!(scrub_path("/auth/reset?token=prt_1"), "/auth/reset");
        assert_eq!(scrub_path("/projects/new"), "/projects/new");
    }

    #[test]
    fn viewer_parameters_parse_with_1x_defaults_and_limits() {
        let p = |pairs: &[(&str, &str)]| {
            let pairs: Vec<(String, String)> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            LogQuery::from_params(&pairs)
        };
        let q = p(&[]).unwrap();
        assert_eq!((q.page, q.limit, q.kind), (1, 50, None));
        let q = p(&[
            ("kind", "error"),
            ("limit", "5000"),
            ("page", "3"),
            ("to", "2026-12-01"),
        ])
        .unwrap();
        assert_eq!((q.kind, q.limit, q.page), (Some(LogKind::Error), 200, 3));
        assert_eq!(
            q.to,
            crate::domain::timestamp::parse_iso("2026-12-01T23:59:59.999Z")
        );
        assert_eq!(p(&[("limit", "1")]).unwrap().limit, 10);
        for bad in [
            ("kind", "warn"),
            ("page", "0"),
            ("page", "x"),
            ("from", "yesterday"),
        ] {
            assert_eq!(p(&[bad]).unwrap_err().name, bad.0);
        }
        let long = "x".repeat(201);
        assert_eq!(p(&[("contains", &long)]).unwrap_err().name, "contains");
    }

    #[test]
    fn queries_match_by_every_filter() {
        let mut log = RawLog::new(LogKind::Error, 1000);
        log.error_message = Some("Boom in Checkout".into());
        log.project_id = Some("p1".into());
        log.email = Some("a@x.example".into());
        let q = |f: &dyn Fn(&mut LogQuery)| {
            let mut q = LogQuery::default();
            f(&mut q);
            q.matches(&log)
        };
        assert!(q(&|_| {}));
        assert!(q(&|q| q.contains = Some("checkout".into())));
        assert!(!q(&|q| q.contains = Some("payment".into())));
        assert!(q(&|q| q.email = Some("A@X.example".into())));
        assert!(!q(&|q| q.kind = Some(LogKind::Action)));
        assert!(q(&|q| {
            q.from = Some(1000);
            q.to = Some(1000)
        }));
        assert!(!q(&|q| q.to = Some(999)));
        assert!(q(&|q| q.scope = Some(OrgScope {
            org_id: "o".into(),
            project_ids: vec!["p1".into()]
        })));
        assert!(!q(&|q| q.scope = Some(OrgScope {
            org_id: "o".into(),
            project_ids: vec!["p2".into()]
        })));
    }
}
