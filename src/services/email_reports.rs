//! Email reports (beyond 1.x): project members subscribe to a weekly or monthly summary of a
//! project (page views, visitors, events and errors of the period against the previous one, the
//! top pages, a link to the dashboard). Each instance's scheduler enqueues one job per period
//! per subscriber on the durable job queue, with an id derived from both, so however many
//! instances schedule it the queue holds one; the job claims the period's send key before
//! sending (released again when the server refuses it, so a retry can send), so a subscriber
//! gets one email per period. A subscriber who chose the PDF gets the period's PDF report
//! (rendered by `services::report_jobs`) attached, unless it is larger than
//! `EMAIL_REPORT_ATTACHMENT_MAX_BYTES`: then the email links to the dashboard and says why.

use crate::{
    domain::{
        analytics::TimeRange,
        audit::codes,
        email::{Cadence, Delivery, Period, Subscription},
        ids::DocId,
        records::{PlatformRole, Project, User},
        timestamp::now_ms,
    },
    runtime::jobs::{JobError, JobHandler, JobQueue, NewJob, Progress},
    services::{
        audit,
        mail::{Attachment, Email, MailError, Mailer},
        report_jobs::ReportJobs,
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

/// The subscriptions of `user` to `project`'s email reports, by cadence.
pub async fn subscriptions(
    stores: &Stores,
    project: DocId,
    user: DocId,
) -> StoreResult<Vec<Subscription>> {
    stores.mail.subscriptions_of(project, user).await
}

/// Subscribes (`Some(delivery)`; again: changes the delivery) or unsubscribes (`None`) `user`
/// to `project`'s report of `cadence`.
pub async fn set_subscription(
    stores: &Stores,
    project: &Project,
    user: &User,
    cadence: Cadence,
    delivery: Option<Delivery>,
) -> StoreResult<()> {
    let code = if let Some(delivery) = delivery {
        stores
            .mail
            .subscribe(&Subscription {
                project_id: project.id,
                user_id: user.id,
                cadence,
                delivery,
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
        .note(match delivery {
            Some(d) => format!("{} {}", cadence.as_str(), d.as_str()),
            None => cadence.as_str().to_string(),
        })
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

/// Every `every`, on each instance: [`schedule_due`] at the clock's "now" (only when email
/// reports are available).
pub fn spawn_scheduler(
    stores: Stores,
    jobs: Arc<dyn JobQueue>,
    every: Duration,
    clock: crate::domain::clock::SharedClock,
) {
    crate::tasks::spawn_loop::<()>("email_report_scheduler", async move {
        let mut tick = tokio::time::interval(every);
        loop {
            tick.tick().await;
            match schedule_due(&stores, &*jobs, clock.now_ms()).await {
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
    /// Renders the PDF of subscribers who chose it.
    pub reports: Arc<ReportJobs>,
    /// The largest PDF attached; a larger one is linked instead.
    pub attachment_max_bytes: u64,
}

/// What the email carries besides the summary.
enum Extra {
    Nothing,
    Pdf(Vec<u8>),
    /// The PDF was this many bytes, over the cap.
    TooLarge(u64),
}

/// `1.4 MB`, `900 KB`.
pub fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
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
        (now, before): (Figures, Figures),
        top: &[(String, u64)],
        to: &str,
        extra: Extra,
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
        let note = match &extra {
            Extra::Nothing => None,
            Extra::Pdf(_) => Some("The full PDF report of this period is attached.".to_string()),
            Extra::TooLarge(size) => Some(format!(
                "The PDF report of this period ({}) is larger than this server attaches to an \
                 email ({}), so it is not attached: open the dashboard instead.",
                human_size(*size),
                human_size(self.attachment_max_bytes)
            )),
        };
        if let Some(note) = &note {
            text.push_str(&format!("\n{note}\n"));
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
        html.push_str("</ol>");
        if let Some(note) = &note {
            html.push_str(&format!("<p>{}</p>", escape(note)));
        }
        html.push_str(&format!(
            "<p><a href=\"{}\">Open the dashboard</a></p><p><a href=\"{}\">Stop these emails</a></p>",
            escape(&link),
            escape(&settings)
        ));
        let attachments = match extra {
            Extra::Pdf(bytes) => vec![Attachment {
                filename: format!(
                    "{}-{}-{}.pdf",
                    period.cadence.as_str(),
                    period.label(),
                    last_day
                ),
                content_type: "application/pdf",
                bytes,
            }],
            _ => Vec::new(),
        };
        Email {
            to: to.to_string(),
            subject: format!(
                "{what} report: {} ({} to {last_day})",
                project.name,
                period.label()
            ),
            text,
            html: Some(html),
            attachments,
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
        let Some(subscription) = subscriptions(&self.stores, project_id, user_id)
            .await?
            .into_iter()
            .find(|s| s.cadence == cadence)
        else {
            return skipped("unsubscribed");
        };
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
            let extra = match subscription.delivery {
                Delivery::Link => Extra::Nothing,
                Delivery::Pdf => {
                    let name = format!("{} report", period.cadence.as_str());
                    let pdf = self
                        .reports
                        .period_pdf(&project, range(&period), &name)
                        .await?;
                    if pdf.len() as u64 > self.attachment_max_bytes {
                        Extra::TooLarge(pdf.len() as u64)
                    } else {
                        Extra::Pdf(pdf)
                    }
                }
            };
            let email = self.compose(&project, &period, (now, before), &top, &user.email, extra);
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

    #[test]
    fn sizes_read_as_a_person_would_say_them() {
        assert_eq!(human_size(900), "1 KB");
        assert_eq!(human_size(10 * 1024 * 1024), "10.0 MB");
        assert_eq!(human_size(1_500_000), "1.4 MB");
    }
}
