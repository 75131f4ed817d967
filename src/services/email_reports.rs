//! Email reports (beyond 1.x): project members subscribe to a weekly or monthly summary of a
//! project (page views, visitors, events and errors of the period against the previous one, the
//! top pages, a link to the dashboard). Each instance's scheduler enqueues one job per period
//! per subscriber on the durable job queue, with an id derived from both, so however many
//! instances schedule it the queue holds one; the job claims the period's send key before
//! sending (released again when the server refuses it, so a retry can send), so a subscriber
//! gets one email per period. The PDF report is not attached (reports are built elsewhere).

use crate::{
    domain::{
        analytics::TimeRange,
        audit::codes,
        email::{Cadence, Period, Subscription},
        ids::DocId,
        records::{PlatformRole, Project, User},
        timestamp::now_ms,
    },
    runtime::jobs::{JobError, JobHandler, JobQueue, NewJob, Progress},
    services::{
        audit,
        mail::{Email, MailError, Mailer},
    },
    store::{StoreError, StoreResult, Stores},
};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::{sync::Arc, time::Duration};

/// The job kind of one email report to one subscriber.
pub const KIND: &str = "email_report";

/// Why email reports cannot be offered here, or `None` when they can.
pub fn unavailable_reason(mailer: &Mailer, public_url: Option<&str>) -> Option<&'static str> {
    if !mailer.is_configured() {
        Some(
            "Email reports are not available: this server has no outgoing email configured \
             (SMTP_URL or SMTP_HOST, and SMTP_FROM). Ask your administrator.",
        )
    } else if public_url.is_none() {
        Some(
            "Email reports are not available: this server does not know its public address \
             (PUBLIC_URL), which the emails link to. Ask your administrator.",
        )
    } else {
        None
    }
}

/// The cadences `user` is subscribed to for `project`.
pub async fn subscriptions(
    stores: &Stores,
    project: DocId,
    user: DocId,
) -> StoreResult<Vec<Cadence>> {
    Ok(stores
        .mail
        .subscriptions_of(project, user)
        .await?
        .into_iter()
        .map(|s| s.cadence)
        .collect())
}

/// Subscribes (`on`) or unsubscribes `user` to `project`'s report of `cadence`.
pub async fn set_subscription(
    stores: &Stores,
    project: &Project,
    user: &User,
    cadence: Cadence,
    on: bool,
) -> StoreResult<()> {
    let code = if on {
        stores
            .mail
            .subscribe(&Subscription {
                project_id: project.id,
                user_id: user.id,
                cadence,
                created_at: now_ms(),
            })
            .await?;
        codes::EMAIL_REPORT_SUBSCRIBE
    } else {
        stores
            .mail
            .unsubscribe(project.id, user.id, cadence)
            .await?;
        codes::EMAIL_REPORT_UNSUBSCRIBE
    };
    audit::action(code)
        .project(project.id)
        .org(project.org_id)
        .note(cadence.as_str())
        .record(stores)
        .await;
    Ok(())
}

/// Enqueues the email of the last complete period of every subscription (idempotent: a job id
/// per period and subscriber). Returns how many were new.
pub async fn schedule_due(stores: &Stores, jobs: &dyn JobQueue, now: i64) -> StoreResult<usize> {
    let mut queued = 0;
    for cadence in Cadence::ALL {
        let period = cadence.last_complete(now);
        for sub in stores.mail.subscribers(cadence).await? {
            let job = NewJob {
                id: period.job_id(sub.project_id, sub.user_id),
                kind: KIND.to_string(),
                payload: json!({
                    "cadence": cadence.as_str(),
                    "start": period.start,
                    "end": period.end,
                    "projectId": sub.project_id.to_hex(),
                    "userId": sub.user_id.to_hex(),
                }),
            };
            match jobs.enqueue(job).await {
                Ok(_) => queued += 1,
                Err(StoreError::Conflict(_)) => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(queued)
}

/// Every `every`, on each instance: [`schedule_due`] (only when email reports are available).
pub fn spawn_scheduler(stores: Stores, jobs: Arc<dyn JobQueue>, every: Duration) {
    crate::tasks::spawn_loop::<()>("email_report_scheduler", async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match schedule_due(&stores, &*jobs, now_ms()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(queued = n, "email reports queued"),
                Err(e) => tracing::warn!(error = %e, "email reports not scheduled"),
            }
        }
    });
}

/// Sends one email report (a job of kind [`KIND`]).
pub struct EmailReportHandler {
    pub stores: Stores,
    pub mailer: Arc<Mailer>,
    pub public_url: String,
}

fn field<'a>(v: &'a Value, name: &str) -> Result<&'a Value, JobError> {
    v.get(name)
        .ok_or_else(|| JobError::Permanent(format!("payload without {name}")))
}

fn id(v: &Value, name: &str) -> Result<DocId, JobError> {
    field(v, name)?
        .as_str()
        .and_then(DocId::parse)
        .ok_or_else(|| JobError::Permanent(format!("bad {name}")))
}

/// One period's figures.
#[derive(Clone, Copy, Default)]
struct Figures {
    views: u64,
    visitors: u64,
    events: u64,
    errors: u64,
}

fn range(p: &Period) -> TimeRange {
    TimeRange {
        start_ms: p.start,
        end_ms: p.end - 1,
    }
}

/// `+12%`, `−5%`, `no change`, or `new` when the previous period had none.
fn change(now: u64, before: u64) -> String {
    if before == 0 {
        return if now == 0 {
            "no change".into()
        } else {
            "new".into()
        };
    }
    let pct = (now as f64 - before as f64) / before as f64 * 100.0;
    match pct.round() as i64 {
        0 => "no change".into(),
        p if p > 0 => format!("+{p}%"),
        p => format!("−{}%", -p),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

impl EmailReportHandler {
    async fn figures(
        &self,
        project: DocId,
        p: &Period,
    ) -> StoreResult<(Figures, Vec<(String, u64)>)> {
        let r = range(p);
        let views = self.stores.stats.pageviews_summary(project, r, 5).await?;
        let events = self.stores.stats.events_summary(project, r, 0).await?;
        let errors = self.stores.stats.errors_summary(project, r).await?;
        Ok((
            Figures {
                views: views.total_views,
                visitors: views.unique_visitors,
                events: events.total_events,
                errors: errors.total_errors,
            },
            views
                .top_pages
                .into_iter()
                .map(|p| (p.url, p.views))
                .collect(),
        ))
    }

    fn compose(
        &self,
        project: &Project,
        period: &Period,
        now: Figures,
        before: Figures,
        top: &[(String, u64)],
        to: &str,
    ) -> Email {
        let last_day = crate::domain::timestamp::to_iso(period.end - 1)[..10].to_string();
        let what = match period.cadence {
            Cadence::Weekly => "Weekly",
            Cadence::Monthly => "Monthly",
        };
        let link = format!("{}/projects/{}/dashboard", self.public_url, project.id);
        let settings = format!("{}/projects/{}/email-reports", self.public_url, project.id);
        let rows = [
            ("Page views", now.views, before.views),
            ("Visitors", now.visitors, before.visitors),
            ("Events", now.events, before.events),
            ("Errors", now.errors, before.errors),
        ];
        let mut text = format!(
            "{what} report for {} — {} to {last_day} (UTC)\n\n",
            project.name,
            period.label()
        );
        for (label, a, b) in rows {
            text.push_str(&format!(
                "{label}: {a} ({} vs the previous period: {b})\n",
                change(a, b)
            ));
        }
        text.push_str("\nTop pages:\n");
        if top.is_empty() {
            text.push_str("  (no page views in this period)\n");
        }
        for (url, views) in top {
            text.push_str(&format!("  {views}  {url}\n"));
        }
        text.push_str(&format!(
            "\nOpen the dashboard: {link}\nStop these emails: {settings}\n"
        ));
        let mut html = format!(
            "<h1>{what} report for {}</h1><p>{} to {last_day} (UTC)</p><table>",
            escape(&project.name),
            period.label()
        );
        for (label, a, b) in rows {
            html.push_str(&format!(
                "<tr><th align=\"left\">{label}</th><td>{a}</td><td>{}</td><td>previous: {b}</td></tr>",
                change(a, b)
            ));
        }
        html.push_str("</table><h2>Top pages</h2><ol>");
        for (url, views) in top {
            html.push_str(&format!("<li>{} — {views}</li>", escape(url)));
        }
        html.push_str(&format!(
            "</ol><p><a href=\"{}\">Open the dashboard</a></p><p><a href=\"{}\">Stop these emails</a></p>",
            escape(&link),
            escape(&settings)
        ));
        Email {
            to: to.to_string(),
            subject: format!(
                "{what} report: {} ({} to {last_day})",
                project.name,
                period.label()
            ),
            text,
            html: Some(html),
        }
    }
}

#[async_trait]
impl JobHandler for EmailReportHandler {
    async fn run(
        &self,
        job: &crate::domain::records::Job,
        _progress: &Progress<'_>,
    ) -> Result<Value, JobError> {
        let p = &job.payload;
        let cadence = field(p, "cadence")?
            .as_str()
            .and_then(Cadence::parse)
            .ok_or_else(|| JobError::Permanent("bad cadence".into()))?;
        let period = Period {
            cadence,
            start: field(p, "start")?.as_i64().unwrap_or_default(),
            end: field(p, "end")?.as_i64().unwrap_or_default(),
        };
        let (project_id, user_id) = (id(p, "projectId")?, id(p, "userId")?);
        let skipped = |why: &str| Ok(json!({"skipped": why}));
        // Still subscribed, still a member, the project still there.
        if !subscriptions(&self.stores, project_id, user_id)
            .await?
            .contains(&cadence)
        {
            return skipped("unsubscribed");
        }
        let Some(user) = self.stores.accounts.user(user_id).await? else {
            return skipped("no such user");
        };
        let Some(project) = self
            .stores
            .projects
            .project(project_id)
            .await?
            .filter(|p| p.deleted_at.is_none())
        else {
            return skipped("no such project");
        };
        let member = user.role == PlatformRole::Admin
            || self
                .stores
                .accounts
                .member_role(project.org_id, user.id)
                .await?
                .is_some();
        if !member {
            return skipped("no longer a member");
        }
        let key = period.send_key(project.id, user.id);
        if !self.stores.mail.claim_send(&key, now_ms()).await? {
            return skipped("already sent");
        }
        let sent = async {
            let (now, top) = self.figures(project.id, &period).await?;
            let (before, _) = self.figures(project.id, &period.previous()).await?;
            let email = self.compose(&project, &period, now, before, &top, &user.email);
            self.mailer
                .send("report", email)
                .await
                .map_err(|e| match e {
                    MailError::Send(m) => JobError::Retry(m),
                    other => JobError::Permanent(other.to_string()),
                })
        }
        .await;
        if let Err(e) = sent {
            // Not sent: the next attempt may claim the period again.
            let _ = self.stores.mail.release_send(&key).await;
            return Err(e);
        }
        audit::action(codes::EMAIL_REPORT_SENT)
            .by(&user)
            .project(project.id)
            .org(project.org_id)
            .note(key.clone())
            .record(&self.stores)
            .await;
        Ok(json!({"sent": key}))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_read_as_a_person_would_say_them() {
        assert_eq!(change(112, 100), "+12%");
        assert_eq!(change(95, 100), "−5%");
        assert_eq!(change(100, 100), "no change");
        assert_eq!(change(3, 0), "new");
        assert_eq!(change(0, 0), "no change");
    }
}
