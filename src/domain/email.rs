//! Records and pure rules of the email features: password-reset tokens (single use, expiring,
//! stored as a hash) and email-report subscriptions with their periods (weekly: Monday to
//! Monday, monthly: calendar months, UTC). No IO: storage is the `MailStore` port, sending is
//! `services::mail`.

use crate::domain::ids::DocId;
use time::{Date, Duration, Month, OffsetDateTime, Time};

/// A password-reset token lives this long.
pub const RESET_TTL_MS: i64 = 60 * 60 * 1000;

/// Reset tokens start with this (then 48 hex digits), so the log scrubber recognises them.
pub const RESET_TOKEN_PREFIX: &str = "prt_";

/// A stored password-reset request: only the token's SHA-256 is kept.
#[derive(Clone, Debug, PartialEq)]
pub struct PasswordReset {
    pub id: DocId,
    pub user_id: DocId,
    pub token_hash: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Set once, when the token is used.
    pub used_at: Option<i64>,
}

/// How often a subscriber receives a project's email report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Cadence {
    Weekly,
    Monthly,
}

impl Cadence {
    pub const ALL: [Cadence; 2] = [Cadence::Weekly, Cadence::Monthly];

    pub fn as_str(self) -> &'static str {
        match self {
            Cadence::Weekly => "weekly",
            Cadence::Monthly => "monthly",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "weekly" => Some(Cadence::Weekly),
            "monthly" => Some(Cadence::Monthly),
            _ => None,
        }
    }

    /// The last period of this cadence that has ended at `now_ms`: `[start, end)` in epoch ms.
    pub fn last_complete(self, now_ms: i64) -> Period {
        let now = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH);
        let today = now.date();
        let end = match self {
            Cadence::Weekly => {
                today - Duration::days(i64::from(today.weekday().number_days_from_monday()))
            }
            Cadence::Monthly => {
                Date::from_calendar_date(today.year(), today.month(), 1).unwrap_or(today)
            }
        };
        let start = self.before(end);
        Period {
            cadence: self,
            start: ms(start),
            end: ms(end),
        }
    }

    /// The start of the period that ends on `end`.
    fn before(self, end: Date) -> Date {
        match self {
            Cadence::Weekly => end - Duration::days(7),
            Cadence::Monthly => {
                let (year, month) = match end.month() {
                    Month::January => (end.year() - 1, Month::December),
                    m => (end.year(), m.previous()),
                };
                Date::from_calendar_date(year, month, 1).unwrap_or(end)
            }
        }
    }
}

fn ms(d: Date) -> i64 {
    (d.with_time(Time::MIDNIGHT)
        .assume_utc()
        .unix_timestamp_nanos()
        / 1_000_000) as i64
}

/// One reporting period: `[start, end)`, epoch ms, UTC midnights.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Period {
    pub cadence: Cadence,
    pub start: i64,
    pub end: i64,
}

impl Period {
    /// The period just before this one (what the figures are compared with).
    pub fn previous(&self) -> Period {
        let end = OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.start) * 1_000_000)
            .map(|t| t.date())
            .unwrap_or(Date::MIN);
        Period {
            cadence: self.cadence,
            start: ms(self.cadence.before(end)),
            end: self.start,
        }
    }

    /// `2026-11-30` (the first day), for keys and subjects.
    pub fn label(&self) -> String {
        crate::domain::timestamp::to_iso(self.start)[..10].to_string()
    }

    /// The key that makes one email per period per subscriber: sending claims it first.
    pub fn send_key(&self, project: DocId, user: DocId) -> String {
        format!(
            "{}:{}:{}:{}",
            self.cadence.as_str(),
            self.label(),
            project.to_hex(),
            user.to_hex()
        )
    }

    /// The job id of this period's email to one subscriber: the same on every instance, so the
    /// queue holds one job per email however many instances schedule it.
    pub fn job_id(&self, project: DocId, user: DocId) -> DocId {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(format!("email_report:{}", self.send_key(project, user)));
        let mut id = [0u8; 12];
        id.copy_from_slice(&digest[..12]);
        DocId(id)
    }
}

/// How a subscriber gets the period's report: the summary with a link to the dashboard, or
/// the same with the period's PDF report attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Delivery {
    #[default]
    Link,
    Pdf,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Link => "link",
            Delivery::Pdf => "pdf",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "link" => Some(Delivery::Link),
            "pdf" => Some(Delivery::Pdf),
            _ => None,
        }
    }
}

/// A member's subscription to a project's email report.
#[derive(Clone, Debug, PartialEq)]
pub struct Subscription {
    pub project_id: DocId,
    pub user_id: DocId,
    pub cadence: Cadence,
    /// Link only, or the PDF attached.
    pub delivery: Delivery,
    pub created_at: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(iso: &str) -> i64 {
        crate::domain::timestamp::parse_iso(iso).unwrap()
    }

    #[test]
    fn weeks_run_monday_to_monday_and_months_are_calendar_months() {
        // Wednesday 2026-12-09.
        let now = at("2026-12-09T15:00:00Z");
        let w = Cadence::Weekly.last_complete(now);
        assert_eq!(
            (w.start, w.end),
            (at("2026-11-30T00:00:00Z"), at("2026-12-07T00:00:00Z"))
        );
        assert_eq!(w.previous().start, at("2026-11-23T00:00:00Z"));
        assert_eq!(w.previous().end, w.start);
        let m = Cadence::Monthly.last_complete(now);
        assert_eq!(
            (m.start, m.end),
            (at("2026-11-01T00:00:00Z"), at("2026-12-01T00:00:00Z"))
        );
        assert_eq!(m.previous().start, at("2026-10-01T00:00:00Z"));
        let jan = Cadence::Monthly.last_complete(at("2027-01-01T00:00:00Z"));
        assert_eq!(jan.start, at("2026-12-01T00:00:00Z"));
        assert_eq!(jan.previous().start, at("2026-11-01T00:00:00Z"));
        // A Monday: the week that just ended.
        let monday = Cadence::Weekly.last_complete(at("2026-12-07T00:00:00Z"));
        assert_eq!(monday.end, at("2026-12-07T00:00:00Z"));
    }

    #[test]
    fn one_job_and_one_key_per_period_and_subscriber() {
        let p = Cadence::Weekly.last_complete(at("2026-12-09T00:00:00Z"));
        let (a, b) = (DocId::new(), DocId::new());
        assert_eq!(p.job_id(a, b), p.job_id(a, b));
        assert_ne!(p.job_id(a, b), p.job_id(b, a));
        assert_ne!(p.job_id(a, b), p.previous().job_id(a, b));
        assert!(p.send_key(a, b).starts_with("weekly:2026-11-30:"));
    }
}
