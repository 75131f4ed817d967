//! Report use cases (reference §5.7, §5.8): validate and record a generation, dedup it, hand it
//! to the durable job queue (kind `report`); the job handler that runs the stages (aggregating →
//! rendering → storing → completed) with progress, under the generation timeout; reading a
//! report with its true state (a timed-out or dead job shows as `failed`, never as stuck
//! `pending`); downloads, soft delete, the expiry sweep that removes files; filter templates.
//! No HTTP types here. (The drill-downs are `services::drill_downs`.)

use crate::config::ReportsConfig;
use crate::domain::audit::codes;
use crate::domain::{clock::SharedClock, ids::DocId};
use crate::reports::{
    CsvMode, FilterTemplate, Report, ReportFormat, ReportStatus, Stage,
    context::{self, Scope},
    files::{FileStore, OpenFile},
    model::EXPIRY_DAYS,
    render_csv::{self, RawCsv},
    render_html, render_pdf,
    request::{self, Period, Rejected},
};
use crate::runtime::jobs::{JobError, JobHandler, JobQueue, NewJob, Progress, kinds};
use crate::services::audit;
use crate::store::{Job, JobState, Project, StoreError, Stores, User};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::{path::PathBuf, sync::Arc, time::Duration};
use tokio::io::AsyncWriteExt;

const DAY_MS: i64 = 86_400_000;
/// Reports listed (1.x: ≤ 100) and templates offered on the form (≤ 50) or listed (≤ 100).
pub const LIST_LIMIT: u32 = 100;
pub const FORM_TEMPLATES: u32 = 50;
/// Documents per page of a raw export scan (memory stays bounded by this).
pub const RAW_PAGE: u32 = 2_000;
/// What 1.x told clients to expect.
pub const ESTIMATED_SECONDS: u64 = 15;

/// Why a request was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// A 400 with its code.
    #[error(transparent)]
    Rejected(#[from] Rejected),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A generate request's answer.
pub enum Generated {
    Created(Report),
    /// A pending or generating report with the same dedup hash.
    Deduplicated(Report),
}

/// The report service.
pub struct ReportJobs {
    stores: Stores,
    files: Arc<dyn FileStore>,
    queue: Arc<dyn JobQueue>,
    font: Option<Arc<Vec<u8>>>,
    timeout_ms: i64,
    /// Decides generation timeouts, preset periods and the 30-day expiry.
    clock: SharedClock,
}

impl ReportJobs {
    /// Reads the PDF font once (a missing or unreadable font is logged; PDFs then use the
    /// built-in font).
    pub fn new(
        stores: Stores,
        files: Arc<dyn FileStore>,
        queue: Arc<dyn JobQueue>,
        config: &ReportsConfig,
        clock: SharedClock,
    ) -> Self {
        let font = config.pdf_font.as_ref().and_then(|p| match std::fs::read(p) {
            Ok(bytes) => Some(Arc::new(bytes)),
            Err(e) => {
                tracing::warn!(font = %p.display(), error = %e, "report PDF font unreadable; PDFs use the built-in Latin-1 font");
                None
            }
        });
        tracing::info!(
            "report files: {}; PDF font: {}",
            files.describe(),
            config
                .pdf_font
                .as_ref()
                .filter(|_| font.is_some())
                .map_or("built-in Helvetica (Latin-1 only)".to_string(), |p| p
                    .display()
                    .to_string())
        );
        Self {
            stores,
            files,
            queue,
            font,
            timeout_ms: config.timeout_ms as i64,
            clock,
        }
    }

    /// The server's clock now, on which reports are stamped and expire.
    pub fn now(&self) -> i64 {
        self.clock.now_ms()
    }

    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// Validates `body`, applies its filter template, dedups, records the report (`pending`,
    /// stage `queued`) and enqueues its job (job id = report id).
    pub async fn generate(
        &self,
        project: &Project,
        user: &User,
        body: &Value,
    ) -> Result<Generated, ReportError> {
        let now = self.now();
        let mut req = request::parse_generate(body)?;
        let mut period = req.period.clone();
        if let Some(tid) = &req.filter_template_id {
            let template = self.template_of(project.id, tid).await?.ok_or_else(|| {
                Rejected::params(format!("Filter template {tid:?} not found in this project"))
            })?;
            req.filters = merge(&template.filters, &req.filters);
            if period.is_none() {
                period = template_period(&template);
            }
        }
        let period = period.unwrap_or(Period::Preset(crate::domain::analytics::Timeframe::D7));
        let range = period.range(now);
        let hash = request::dedup_hash(&project.id.to_hex(), &req, period.name(), range);
        if let Some(existing) = self
            .stores
            .reports
            .active_report_by_hash(project.id, &hash)
            .await?
        {
            return Ok(Generated::Deduplicated(existing));
        }
        let mut report = Report {
            id: DocId::new(),
            project_id: project.id,
            org_id: project.org_id,
            created_by: user.id,
            name: req.name,
            data_type: req.data_type,
            timeframe: period.name().to_string(),
            start: range.start_ms,
            end: range.end_ms,
            filters: req.filters,
            format: req.format,
            csv_mode: req.csv_mode,
            include_ai_insights: req.include_ai_insights,
            status: ReportStatus::Pending,
            status_message: None,
            stages: Vec::new(),
            current_stage: Stage::Queued,
            progress: 0,
            estimated_duration_ms: ESTIMATED_SECONDS as i64 * 1000,
            job_timeout_at: now + self.timeout_ms,
            dedup_hash: hash,
            filter_template_id: req.filter_template_id,
            file_key: None,
            file_size: None,
            expires_at: None,
            generated_at: None,
            download_count: 0,
            deleted_at: None,
            context_snapshot: None,
            created_at: now,
            updated_at: now,
        };
        report.enter(Stage::Queued, now);
        self.stores.reports.insert_report(&report).await?;
        let job = NewJob {
            id: report.id,
            kind: kinds::REPORT.into(),
            payload: json!({"reportId": report.id.to_hex()}),
        };
        if let Err(e) = self.queue.enqueue(job).await {
            report.fail(&format!("Could not queue the generation: {e}"), self.now());
            let _ = self.stores.reports.save_report(&report).await;
            return Err(e.into());
        }
        audit::action(codes::REPORT_GENERATED)
            .project(report.project_id)
            .org(report.org_id)
            .by(user)
            .note(format!(
                "{} {}",
                report.data_type.as_str(),
                report.format.as_str()
            ))
            .record(&self.stores)
            .await;
        Ok(Generated::Created(report))
    }

    /// The project's report `id` (not deleted), with its true state: a generation past its
    /// timeout, or whose job failed for good, is recorded as failed here.
    pub async fn report(&self, project_id: DocId, id: &str) -> Result<Option<Report>, StoreError> {
        let Some(id) = DocId::parse(id) else {
            return Ok(None);
        };
        let Some(report) = self
            .stores
            .reports
            .report(id)
            .await?
            .filter(|r| r.project_id == project_id && r.deleted_at.is_none())
        else {
            return Ok(None);
        };
        self.reconcile(report).await.map(Some)
    }

    async fn reconcile(&self, mut report: Report) -> Result<Report, StoreError> {
        if report.status.is_final() {
            return Ok(report);
        }
        let now = self.now();
        let message = if report.timed_out(now) {
            Some(timeout_message(&report))
        } else {
            match self.queue.job(report.id).await? {
                Some(Job {
                    state: JobState::Failed,
                    last_error,
                    ..
                }) => Some(format!(
                    "Generation failed during {}: {}",
                    report.current_stage.as_str(),
                    last_error.unwrap_or_else(|| "the job failed".into())
                )),
                None if now - report.created_at > 60_000 => {
                    Some("Generation failed: its job is missing".to_string())
                }
                _ => None,
            }
        };
        if let Some(m) = message {
            report.fail(&m, now);
            self.stores.reports.save_report(&report).await?;
            self.record_failure(&report, &m).await;
        }
        Ok(report)
    }

    /// The project's reports for the list: `status` (`all` or one status) and `sort`
    /// (`created_desc` default, `created_asc`, `name_asc`, `status_asc`).
    pub async fn list(
        &self,
        project_id: DocId,
        status: Option<ReportStatus>,
        sort: &str,
    ) -> Result<Vec<Report>, StoreError> {
        let mut out = Vec::new();
        for r in self
            .stores
            .reports
            .reports_of_project(project_id, LIST_LIMIT)
            .await?
        {
            out.push(self.reconcile(r).await?);
        }
        out.retain(|r| status.is_none_or(|s| r.status == s));
        match sort {
            "created_asc" => out.sort_by_key(|r| r.created_at),
            "name_asc" => out.sort_by_key(|r| r.name.to_lowercase()),
            "status_asc" => out.sort_by_key(|r| r.status.as_str()),
            _ => {}
        }
        Ok(out)
    }

    /// Soft-deletes the project's report and removes its file; `false` when there is none. A
    /// file the store cannot remove now goes with the next sweep.
    pub async fn delete(&self, project_id: DocId, id: &str) -> Result<bool, StoreError> {
        let Some(r) = self.report(project_id, id).await? else {
            return Ok(false);
        };
        let deleted = self
            .stores
            .reports
            .soft_delete_report(r.id, self.now())
            .await?;
        if deleted && let Some(key) = &r.file_key {
            // The report is deleted either way; what is left here, the sweep finishes.
            let removed = match self.files.remove(key).await {
                Ok(()) => self
                    .stores
                    .reports
                    .clear_report_file(r.id)
                    .await
                    .err()
                    .map(|e| e.to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(e) = removed {
                tracing::warn!(report = %r.id, error = %e, "report file not removed; the sweep will retry");
            }
        }
        if deleted {
            audit::action(codes::REPORT_DELETED)
                .project(r.project_id)
                .org(r.org_id)
                .record(&self.stores)
                .await;
        }
        Ok(deleted)
    }

    /// Opens a completed report's file and counts the download; `None` when the file is gone.
    pub async fn open_file(&self, report: &Report) -> Result<Option<OpenFile>, StoreError> {
        let Some(key) = &report.file_key else {
            return Ok(None);
        };
        let file = self
            .files
            .open(key)
            .await
            .map_err(|e| StoreError::unavailable_with("report file store", e))?;
        if file.is_some() {
            self.stores.reports.count_download(report.id).await?;
            audit::action(codes::REPORT_DOWNLOADED)
                .project(report.project_id)
                .org(report.org_id)
                .record(&self.stores)
                .await;
        }
        Ok(file)
    }

    /// Removes the files of expired and deleted reports (the retention sweep); returns how many.
    pub async fn sweep_files(&self, now: i64) -> u64 {
        let mut removed = 0;
        loop {
            let batch = match self.stores.reports.reports_with_stale_files(now, 100).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::warn!(error = %e, "report file sweep: cannot list reports");
                    return removed;
                }
            };
            if batch.is_empty() {
                return removed;
            }
            for r in batch {
                let Some(key) = &r.file_key else { continue };
                if let Err(e) = self.files.remove(key).await {
                    tracing::warn!(report = %r.id, error = %e, "report file sweep: cannot remove the file");
                    return removed;
                }
                if let Err(e) = self.stores.reports.clear_report_file(r.id).await {
                    tracing::warn!(report = %r.id, error = %e, "report file sweep: cannot record the removal");
                    return removed;
                }
                removed += 1;
            }
        }
    }

    /// The PDF report of the whole project (every data type, no filters) over `range`, titled
    /// `name`, rendered in memory without a report record (what email reports attach).
    pub async fn period_pdf(
        &self,
        project: &Project,
        range: crate::domain::analytics::TimeRange,
        name: &str,
    ) -> Result<Vec<u8>, JobError> {
        let filters = crate::domain::segment::SegmentFilters::default();
        let scope = Scope {
            project,
            data_type: crate::reports::DataType::All,
            timeframe: "custom",
            range,
            filters: &filters,
            include_ai_insights: false,
            now: self.now(),
        };
        let ctx = context::build(&self.stores, &scope).await?;
        let name = name.to_string();
        let font = self.font.clone();
        tokio::task::spawn_blocking(move || {
            render_pdf::render(&ctx, &name, font.as_deref().map(Vec::as_slice))
        })
        .await
        .map_err(|e| JobError::Permanent(format!("PDF writer stopped: {e}")))?
        .map_err(JobError::Permanent)
    }

    // -- filter templates ------------------------------------------------------------------

    async fn template_of(
        &self,
        project_id: DocId,
        id: &str,
    ) -> Result<Option<FilterTemplate>, StoreError> {
        let Some(id) = DocId::parse(id) else {
            return Ok(None);
        };
        Ok(self
            .stores
            .reports
            .filter_template(id)
            .await?
            .filter(|t| t.project_id == project_id))
    }

    /// Validates and saves a template of the project.
    pub async fn create_template(
        &self,
        project: &Project,
        user: &User,
        body: &Value,
    ) -> Result<FilterTemplate, ReportError> {
        let req = request::parse_template(body)?;
        let now = self.now();
        let (timeframe, start_date, end_date) = match req.period {
            None => (None, None, None),
            Some(Period::Custom(r)) => (Some("custom".into()), Some(r.start_ms), Some(r.end_ms)),
            Some(p @ Period::Preset(_)) => (Some(p.name().to_string()), None, None),
        };
        let template = FilterTemplate {
            id: DocId::new(),
            project_id: project.id,
            name: req.name,
            description: req.description,
            filters: req.filters,
            timeframe,
            start_date,
            end_date,
            created_by: user.id,
            created_at: now,
            updated_at: now,
        };
        self.stores
            .reports
            .insert_filter_template(&template)
            .await?;
        Ok(template)
    }

    /// The project's newest templates.
    pub async fn templates(
        &self,
        project_id: DocId,
        limit: u32,
    ) -> Result<Vec<FilterTemplate>, StoreError> {
        self.stores
            .reports
            .filter_templates(project_id, limit)
            .await
    }

    /// Deletes the project's template; `false` when there is none.
    pub async fn delete_template(&self, project_id: DocId, id: &str) -> Result<bool, StoreError> {
        match self.template_of(project_id, id).await? {
            Some(t) => self.stores.reports.delete_filter_template(t.id).await,
            None => Ok(false),
        }
    }

    // -- generation --------------------------------------------------------------------------

    /// Runs one generation to its end. A re-delivered job finds a final or deleted report and
    /// stops. Errors: `Retry` when the store or file store failed (the report stays where it
    /// was, the job is retried), `Permanent` when the report cannot be generated (it is then
    /// already `failed`, naming the stage), `LeaseLost` when another attempt owns the job.
    pub async fn run(&self, id: DocId, progress: &Progress<'_>) -> Result<Value, JobError> {
        let Some(mut report) = self.stores.reports.report(id).await? else {
            return Err(JobError::Permanent(format!("report {id} not found")));
        };
        if report.deleted_at.is_some() || report.status.is_final() {
            return Ok(json!({"reportId": id.to_hex(), "status": report.status.as_str()}));
        }
        let now = self.now();
        if report.timed_out(now) {
            let m = timeout_message(&report);
            report.fail(&m, now);
            self.stores.reports.save_report(&report).await?;
            return Err(JobError::Permanent(m));
        }
        let left = Duration::from_millis((report.job_timeout_at - now).max(0) as u64);
        let outcome = tokio::time::timeout(left, self.stages(&mut report, progress)).await;
        let error = match outcome {
            Ok(Ok(())) => {
                return Ok(json!({"reportId": id.to_hex(), "status": "completed"}));
            }
            Ok(Err(JobError::LeaseLost)) => return Err(JobError::LeaseLost),
            Ok(Err(e)) => e,
            Err(_) => JobError::Permanent(timeout_message(&report)),
        };
        let last_attempt = progress.job().attempts >= progress.job().max_attempts;
        if let JobError::Permanent(m) = &error {
            report.fail(m, self.now());
            self.stores.reports.save_report(&report).await?;
            self.record_failure(&report, m).await;
        } else if let JobError::Retry(m) = &error
            && last_attempt
        {
            let m = format!(
                "Generation failed during {}: {m}",
                report.current_stage.as_str()
            );
            report.fail(&m, self.now());
            let _ = self.stores.reports.save_report(&report).await;
            self.record_failure(&report, &m).await;
        }
        Err(error)
    }

    /// The audit trail's entry for a generation that failed for good.
    async fn record_failure(&self, report: &Report, message: &str) {
        audit::action(codes::REPORT_GENERATION_FAILED)
            .project(report.project_id)
            .org(report.org_id)
            .note(message.to_string())
            .record(&self.stores)
            .await;
    }

    /// Moves to `stage`, saves, and tells the queue. A deleted report stops the job.
    async fn enter(
        &self,
        report: &mut Report,
        stage: Stage,
        progress: &Progress<'_>,
    ) -> Result<(), JobError> {
        report.enter(stage, self.now());
        if !self.stores.reports.save_report(report).await? {
            return Err(JobError::Permanent("the report was deleted".into()));
        }
        progress
            .report(stage.progress(), Some(stage.as_str()))
            .await
    }

    async fn stages(&self, report: &mut Report, progress: &Progress<'_>) -> Result<(), JobError> {
        let started = std::time::Instant::now();
        self.enter(report, Stage::Aggregating, progress).await?;
        let now = self.now();
        // Presets are re-resolved when the job runs.
        let range = Period::stored(&report.timeframe, report.start, report.end).range(now);
        report.start = range.start_ms;
        report.end = range.end_ms;
        let project = self
            .stores
            .projects
            .project(report.project_id)
            .await?
            .ok_or_else(|| JobError::Permanent("the project no longer exists".into()))?;
        let scope = Scope {
            project: &project,
            data_type: report.data_type,
            timeframe: &report.timeframe,
            range,
            filters: &report.filters,
            include_ai_insights: report.include_ai_insights,
            now,
        };
        let ctx = context::build(&self.stores, &scope).await?;
        report.context_snapshot = Some(ctx.clone());
        self.enter(report, Stage::Rendering, progress).await?;
        let scratch = self.files.scratch_dir();
        tokio::fs::create_dir_all(&scratch)
            .await
            .map_err(|e| JobError::Retry(format!("scratch directory: {e}")))?;
        let tmp = scratch.join(format!(
            "{}-{}.part",
            report.id,
            crate::domain::ids::random_hex(6)
        ));
        let written = self.render(report, &project, &ctx, &tmp, progress).await;
        if let Err(e) = written {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(e);
        }
        self.enter(report, Stage::Storing, progress).await?;
        let key = format!("{}/{}", report.namespace(), report.file_name());
        let size = match self.files.put_file(&key, &tmp).await {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(JobError::Retry(format!("storing the file: {e}")));
            }
        };
        let now = self.now();
        report.file_key = Some(key.clone());
        report.file_size = Some(size);
        report.generated_at = Some(now);
        report.expires_at = Some(now + EXPIRY_DAYS * DAY_MS);
        report.estimated_duration_ms = started.elapsed().as_millis() as i64;
        report.enter(Stage::Completed, now);
        if !self.stores.reports.save_report(report).await? {
            // Deleted while it ran: the file must not outlive it.
            let _ = self.files.remove(&key).await;
            return Err(JobError::Permanent("the report was deleted".into()));
        }
        Ok(())
    }

    /// Writes the report's file to `tmp`.
    async fn render(
        &self,
        report: &Report,
        project: &Project,
        ctx: &Value,
        tmp: &PathBuf,
        progress: &Progress<'_>,
    ) -> Result<(), JobError> {
        let io = |e: std::io::Error| JobError::Retry(format!("writing the file: {e}"));
        let bytes: Vec<u8> = match (report.format, report.csv_mode) {
            (ReportFormat::Csv, Some(CsvMode::Raw)) => {
                return self.raw_csv(report, project, tmp, progress).await;
            }
            (ReportFormat::Csv, _) => render_csv::aggregated(ctx).into_bytes(),
            (ReportFormat::Json, _) => serde_json::to_vec_pretty(ctx)
                .map_err(|e| JobError::Permanent(format!("JSON: {e}")))?,
            (ReportFormat::Html, _) => render_html::document(ctx, &report.name).into_bytes(),
            (ReportFormat::Pdf, _) => {
                let ctx = ctx.clone();
                let name = report.name.clone();
                let font = self.font.clone();
                tokio::task::spawn_blocking(move || {
                    render_pdf::render(&ctx, &name, font.as_deref().map(Vec::as_slice))
                })
                .await
                .map_err(|e| JobError::Permanent(format!("PDF writer stopped: {e}")))?
                .map_err(JobError::Permanent)?
            }
        };
        tokio::fs::write(tmp, bytes).await.map_err(io)
    }

    /// Every document in range within the filters, page by page, straight to the file.
    async fn raw_csv(
        &self,
        report: &Report,
        project: &Project,
        tmp: &PathBuf,
        progress: &Progress<'_>,
    ) -> Result<(), JobError> {
        let io = |e: std::io::Error| JobError::Retry(format!("writing the file: {e}"));
        let channels = render_csv::raw_channels(report.data_type);
        let raw = RawCsv::new(&channels);
        let file = tokio::fs::File::create(tmp).await.map_err(io)?;
        let mut out = tokio::io::BufWriter::with_capacity(256 * 1024, file);
        out.write_all(raw.header().as_bytes()).await.map_err(io)?;
        let range = crate::domain::analytics::TimeRange {
            start_ms: report.start,
            end_ms: report.end,
        };
        let mut rows: u64 = 0;
        let mut buf = String::new();
        for channel in channels {
            use futures::StreamExt;
            let mut pages = self
                .stores
                .reports
                .document_pages(project.id, channel, range, &report.filters, RAW_PAGE)
                .await?;
            while let Some(page) = pages.next().await {
                let page = page?;
                buf.clear();
                for doc in &page {
                    raw.row(channel, doc, &mut buf);
                }
                out.write_all(buf.as_bytes()).await.map_err(io)?;
                rows += page.len() as u64;
                // Renews the lease on long exports; progress creeps through the render stage.
                let pct = 55 + (rows / u64::from(RAW_PAGE)).min(24) as u8;
                progress.report(pct, Some("rendering")).await?;
            }
        }
        out.flush().await.map_err(io)?;
        Ok(())
    }
}

fn timeout_message(report: &Report) -> String {
    let secs = (report.job_timeout_at - report.created_at) / 1000;
    format!(
        "Generation timed out after {secs} s during the {} stage",
        report.current_stage.as_str()
    )
}

/// The template's timeframe as a period.
fn template_period(t: &FilterTemplate) -> Option<Period> {
    match (t.timeframe.as_deref(), t.start_date, t.end_date) {
        (Some("custom"), Some(s), Some(e)) => {
            Some(Period::Custom(crate::domain::analytics::TimeRange {
                start_ms: s,
                end_ms: e,
            }))
        }
        (Some(name), _, _) if request::PRESETS.contains(&name) => Some(Period::stored(name, 0, 0)),
        _ => None,
    }
}

/// The template's filters with the request's own values on top.
fn merge(
    base: &crate::domain::segment::SegmentFilters,
    over: &crate::domain::segment::SegmentFilters,
) -> crate::domain::segment::SegmentFilters {
    let pick = |a: &Option<String>, b: &Option<String>| b.clone().or_else(|| a.clone());
    let mut meta = base.meta.clone();
    meta.extend(over.meta.clone());
    crate::domain::segment::SegmentFilters {
        client_id: pick(&base.client_id, &over.client_id),
        user_id: pick(&base.user_id, &over.user_id),
        device_type: pick(&base.device_type, &over.device_type),
        browser: pick(&base.browser, &over.browser),
        os: pick(&base.os, &over.os),
        utm_source: pick(&base.utm_source, &over.utm_source),
        utm_medium: pick(&base.utm_medium, &over.utm_medium),
        utm_campaign: pick(&base.utm_campaign, &over.utm_campaign),
        meta,
    }
}

/// The queue handler of kind `report`: the job payload is `{reportId}`.
pub struct ReportJobHandler(pub Arc<ReportJobs>);

#[async_trait]
impl JobHandler for ReportJobHandler {
    async fn run(&self, job: &Job, progress: &Progress<'_>) -> Result<Value, JobError> {
        let id = job
            .payload
            .get("reportId")
            .and_then(Value::as_str)
            .and_then(DocId::parse)
            .unwrap_or(job.id);
        self.0.run(id, progress).await
    }
}
