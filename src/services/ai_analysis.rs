//! AI analysis use cases: validate a run request, record the run and hand it to the job queue;
//! the job handler that builds the payload, asks the model (or writes the offline digest) and
//! stores the outcome; and the preset operations behind the preset routes. No HTTP types here.
//!
//! Privacy: the payload is built from aggregates and from sample documents passed through
//! per-collection allowlists, so IP addresses and countries are never sent to a provider.

use crate::ai::{
    AiError, ChatClient, digest,
    model::{AiRun, RunOutcome, RunStatus},
    presets::{self, Invalid, Preset, PresetFields},
    prompt::{self, Payload, TopEvent, TopFingerprint, TopPage, WorstRecords},
};
use crate::domain::{
    analytics::{
        ErrorFilters, EventFilters, METRICS, PageViewFilters, PerformanceFilters, RecentPaging,
        TimeRange, Timeframe,
    },
    ids::DocId,
    segment::SegmentFilters,
    timestamp::{now_ms, parse_iso, to_iso},
};
use crate::runtime::jobs::{JobError, JobHandler, JobQueue, NewJob, Progress, kinds};
use crate::store::{Job, Project, SampleQuery, StoreError, Stores, User};
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;

/// Longest custom range (reference §6.1).
pub const MAX_RANGE_DAYS: i64 = 90;
const DAY_MS: i64 = 86_400_000;
/// History shown on the page and the default of `GET …/runs`.
pub const DEFAULT_RUNS: u32 = 30;

/// What a run is asked for, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    pub timeframe: Option<Timeframe>,
    pub range: TimeRange,
    pub preset_id: Option<String>,
    pub segment: SegmentFilters,
}

/// Reads the JSON body of `POST …/ai-analysis/run` (reference §6.1): `mode` (`preset` default,
/// or `custom` with `start`/`end` at most 90 days apart), `timeframe`, `presetId` and the segment
/// filters (§4.7). Errors carry the reference's messages.
pub fn parse_run_request(body: &Value, now: i64) -> Result<RunRequest, Invalid> {
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::trim);
    let custom = text("mode") == Some("custom");
    let (timeframe, range) = if custom {
        let start = text("start")
            .and_then(parse_iso)
            .ok_or_else(|| Invalid("Invalid start date".into()))?;
        let end = text("end")
            .and_then(parse_iso)
            .ok_or_else(|| Invalid("Invalid end date".into()))?;
        if start >= end {
            return Err(Invalid("Start date must be before end date".into()));
        }
        if end - start > MAX_RANGE_DAYS * DAY_MS {
            return Err(Invalid("Range too large (max 90 days)".into()));
        }
        (
            None,
            TimeRange {
                start_ms: start,
                end_ms: end,
            },
        )
    } else {
        let tf = Timeframe::parse(text("timeframe"));
        (Some(tf), tf.range(now))
    };
    let preset_id = text("presetId")
        .filter(|p| !p.is_empty())
        .map(str::to_string);
    // Segment filters from the body: strings (or a `meta` object) under their usual names.
    let mut pairs: Vec<(String, String)> = Vec::new();
    if let Some(map) = body.as_object() {
        for (k, v) in map {
            match v {
                Value::String(s) => pairs.push((k.clone(), s.clone())),
                Value::Object(_) if k == "meta" => pairs.push((k.clone(), v.to_string())),
                _ => {}
            }
        }
    }
    let mut segment =
        SegmentFilters::from_params(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    // A key with an empty path part (`a..b`) cannot name a field in either backend.
    segment
        .meta
        .retain(|k, _| k.split('.').all(|p| !p.is_empty()));
    Ok(RunRequest {
        timeframe,
        range,
        preset_id,
        segment,
    })
}

/// Why a run could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A 400 with the reference's message (`Preset not found`, `Forbidden preset`, range errors).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The AI-analysis service: the provider (when a key is configured) and the queue runs go to.
pub struct AiAnalysis {
    stores: Stores,
    client: Option<ChatClient>,
    model: String,
    queue: Option<Arc<dyn JobQueue>>,
}

impl AiAnalysis {
    /// With `queue` = `None`, runs execute on a spawned task in this process (not durable); the
    /// application passes the job queue.
    pub fn new(
        stores: Stores,
        config: &crate::config::AiConfig,
        queue: Option<Arc<dyn JobQueue>>,
    ) -> Self {
        Self {
            stores,
            client: ChatClient::from_config(config),
            model: config.model.clone(),
            queue,
        }
    }

    /// Whether runs use a model (a key is configured) or write the offline digest.
    pub fn uses_model(&self) -> bool {
        self.client.is_some()
    }

    /// The model name runs record (`statistical-digest` without a provider).
    pub fn model_name(&self) -> &str {
        if self.client.is_some() {
            &self.model
        } else {
            "statistical-digest"
        }
    }

    /// The preset snapshot of `preset_id` for `user`: a builtin, or a preset they own or that is
    /// public. Errors: `Preset not found`, `Forbidden preset`.
    pub async fn preset_snapshot(&self, preset_id: &str, user: DocId) -> Result<Value, StartError> {
        if let Some(b) = presets::builtin(preset_id) {
            return Ok(b.to_json());
        }
        let id = DocId::parse(preset_id)
            .ok_or_else(|| StartError::Invalid("Preset not found".into()))?;
        let preset = self
            .stores
            .ai
            .preset(id)
            .await?
            .ok_or_else(|| StartError::Invalid("Preset not found".into()))?;
        if !preset.readable_by(user) {
            return Err(StartError::Invalid("Forbidden preset".into()));
        }
        Ok(preset.to_json())
    }

    /// Records a queued run and hands it to the queue (job id = run id). Returns the run id.
    pub async fn start_run(
        self: &Arc<Self>,
        project: &Project,
        user: &User,
        request: RunRequest,
    ) -> Result<DocId, StartError> {
        let snapshot = match &request.preset_id {
            Some(id) => Some(self.preset_snapshot(id, user.id).await?),
            None => None,
        };
        let now = now_ms();
        let run = AiRun {
            id: DocId::new(),
            project_id: project.id,
            preset_id: request.preset_id.clone(),
            preset_snapshot: snapshot,
            created_by_user_id: user.id.to_hex(),
            created_by_email: user.email.clone(),
            status: RunStatus::Queued,
            progress: Some("queued".into()),
            model: self.model_name().to_string(),
            timeframe_preset: request.timeframe.map(|t| t.as_str().to_string()),
            start: request.range.start_ms,
            end: request.range.end_ms,
            segment: request.segment,
            result_markdown: None,
            error_message: None,
            duration_ms: None,
            token_usage: None,
            job_id: None,
            created_at: now,
            updated_at: now,
        };
        self.stores.ai.create_run(&run).await?;
        super::audit::action(crate::domain::audit::codes::AI_ANALYSIS_RUN_STARTED)
            .by(user)
            .project(run.project_id)
            .record(&self.stores)
            .await;
        match &self.queue {
            Some(queue) => {
                let job = NewJob {
                    id: run.id,
                    kind: kinds::AI_ANALYSIS.into(),
                    payload: json!({"runId": run.id.to_hex()}),
                };
                let job_id = queue.enqueue(job).await?;
                self.stores.ai.set_run_job(run.id, &job_id.to_hex()).await?;
            }
            None => {
                let this = self.clone();
                let id = run.id;
                crate::tasks::spawn("ai_analysis_fallback", async move {
                    if let Err(e) = this.run_analysis(id, &|_, _| async { Ok(()) }).await {
                        tracing::warn!(run = %id, error = %e, "AI analysis run failed");
                    }
                });
            }
        }
        Ok(run.id)
    }

    /// Runs one analysis to its end: `running` with progress steps, payload, model or digest,
    /// then `completed` or `failed` (recorded once; a re-delivered job finds the run final and
    /// stops). `report` is told each step (percent, label). Returns the job result.
    /// Errors: `Retry` when the store cannot be read or written (the run stays `running` and is
    /// picked up again), `Permanent` when the run is unknown or the provider failed (the run is
    /// then already `failed` with the reason).
    pub async fn run_analysis<F, Fut>(&self, run_id: DocId, report: &F) -> Result<Value, JobError>
    where
        F: Fn(u8, &'static str) -> Fut + Sync,
        Fut: std::future::Future<Output = Result<(), JobError>> + Send,
    {
        let started = std::time::Instant::now();
        let run = self
            .stores
            .ai
            .run(run_id)
            .await?
            .ok_or_else(|| JobError::Permanent(format!("AI run {run_id} not found")))?;
        if run.status.is_final() {
            return Ok(json!({"runId": run_id.to_hex(), "status": run.status.as_str()}));
        }
        let step = |percent: u8, label: &'static str| async move {
            if !self.stores.ai.set_run_running(run_id, label).await? {
                return Err(JobError::Permanent("the run already ended".into()));
            }
            report(percent, label).await
        };
        step(10, "building payload").await?;
        let project = self
            .stores
            .projects
            .project(run.project_id)
            .await?
            .ok_or_else(|| JobError::Permanent("project not found".into()))?;
        let range = TimeRange {
            start_ms: run.start,
            end_ms: run.end,
        };
        let payload = build_payload(&self.stores, &project, range, &run.segment).await?;
        let focus = run
            .preset_snapshot
            .as_ref()
            .and_then(|s| s.get("definition"))
            .and_then(presets::prompt_template)
            .map(str::to_string);
        let outcome = match &self.client {
            Some(client) => {
                step(40, "calling model").await?;
                match client
                    .complete(&prompt::messages(&payload, focus.as_deref()))
                    .await
                {
                    Ok(answer) => RunOutcome {
                        status: RunStatus::Completed,
                        model: answer.model,
                        result_markdown: Some(answer.content),
                        error_message: None,
                        duration_ms: 0,
                        token_usage: answer.usage,
                    },
                    Err(e) => failed(client.model(), &e),
                }
            }
            None => {
                step(40, "computing digest").await?;
                let length = range.end_ms - range.start_ms;
                let previous_range = TimeRange {
                    start_ms: range.start_ms - length - 1,
                    end_ms: range.start_ms - 1,
                };
                let previous =
                    build_payload(&self.stores, &project, previous_range, &run.segment).await?;
                RunOutcome {
                    status: RunStatus::Completed,
                    model: "statistical-digest".into(),
                    result_markdown: Some(digest::digest(&payload, &previous)),
                    error_message: None,
                    duration_ms: 0,
                    token_usage: None,
                }
            }
        };
        step(90, "saving").await?;
        let outcome = RunOutcome {
            duration_ms: started.elapsed().as_millis() as i64,
            ..outcome
        };
        if self.stores.ai.finish_run(run_id, &outcome).await? {
            let code = match outcome.status {
                RunStatus::Failed => crate::domain::audit::codes::AI_ANALYSIS_RUN_FAILED,
                _ => crate::domain::audit::codes::AI_ANALYSIS_RUN_COMPLETED,
            };
            super::audit::action(code)
                .by_ref(&run.created_by_user_id, &run.created_by_email)
                .project(run.project_id)
                .org(project.org_id)
                .record(&self.stores)
                .await;
        }
        match outcome.status {
            RunStatus::Failed => Err(JobError::Permanent(
                outcome
                    .error_message
                    .unwrap_or_else(|| "AI analysis failed".into()),
            )),
            _ => Ok(json!({"runId": run_id.to_hex(), "status": "completed"})),
        }
    }

    /// Asks the model for a preset (generate) or a rewrite of one (refine); `None` without a
    /// provider. Errors: the provider's, or the answer's validation.
    pub async fn ask_for_preset(
        &self,
        messages: &[crate::ai::ChatMessage],
    ) -> Option<Result<(PresetFields, String), String>> {
        let client = self.client.as_ref()?;
        Some(match client.complete(messages).await {
            Ok(answer) => presets::from_model_answer(&answer.content).map_err(|e| e.0),
            Err(e) => Err(e.to_string()),
        })
    }

    /// The stores (for the preset routes).
    pub fn stores(&self) -> &Stores {
        &self.stores
    }
}

fn failed(model: &str, e: &AiError) -> RunOutcome {
    RunOutcome {
        status: RunStatus::Failed,
        model: model.to_string(),
        result_markdown: None,
        error_message: Some(e.to_string()),
        duration_ms: 0,
        token_usage: None,
    }
}

/// The queue handler of kind `ai_analysis`: the job payload is `{runId}`.
pub struct AiAnalysisHandler(pub Arc<AiAnalysis>);

#[async_trait]
impl JobHandler for AiAnalysisHandler {
    async fn run(&self, job: &Job, progress: &Progress<'_>) -> Result<Value, JobError> {
        let run_id = job
            .payload
            .get("runId")
            .and_then(Value::as_str)
            .and_then(DocId::parse)
            .unwrap_or(job.id);
        let report = |percent: u8, label: &'static str| progress.report(percent, Some(label));
        let result = self.0.run_analysis(run_id, &report).await;
        if let Err(JobError::Retry(reason)) = &result
            && job.attempts >= job.max_attempts
        {
            // The last attempt: the job fails for good, so the run must not stay `running`.
            let outcome = RunOutcome {
                status: RunStatus::Failed,
                model: self.0.model_name().to_string(),
                result_markdown: None,
                error_message: Some(format!("AI analysis failed: {reason}")),
                duration_ms: 0,
                token_usage: None,
            };
            if let Ok(true) = self.0.stores.ai.finish_run(run_id, &outcome).await
                && let Ok(Some(run)) = self.0.stores.ai.run(run_id).await
            {
                super::audit::action(crate::domain::audit::codes::AI_ANALYSIS_RUN_FAILED)
                    .by_ref(&run.created_by_user_id, &run.created_by_email)
                    .project(run.project_id)
                    .note(format!("AI analysis failed: {reason}"))
                    .record(&self.0.stores)
                    .await;
            }
        }
        result
    }
}

/// Only the segment fields that apply to errors and performance documents.
fn document_segment(s: &SegmentFilters) -> SegmentFilters {
    SegmentFilters {
        client_id: s.client_id.clone(),
        user_id: s.user_id.clone(),
        meta: s.meta.clone(),
        ..SegmentFilters::default()
    }
}

fn pick(doc: &Value, fields: &[&str]) -> Value {
    let mut out = serde_json::Map::new();
    for f in fields {
        if let Some(v) = doc.get(*f).filter(|v| !v.is_null()) {
            out.insert((*f).to_string(), v.clone());
        }
    }
    let mut v = Value::Object(out);
    prompt::truncate_strings(&mut v);
    v
}

/// Fields of each collection a sample may carry. IP, country and bot flags are not among them.
const ERROR_FIELDS: &[&str] = &[
    "timestamp",
    "message",
    "errorType",
    "stackTrace",
    "sourceFile",
    "lineNumber",
    "columnNumber",
    "browser",
    "browserVersion",
    "os",
    "osVersion",
    "deviceType",
    "context",
];
const EVENT_FIELDS: &[&str] = &[
    "timestamp",
    "eventName",
    "durationMs",
    "properties",
    "sessionId",
    "clientId",
];
const PAGEVIEW_FIELDS: &[&str] = &[
    "timestamp",
    "url",
    "title",
    "referrer",
    "utmSource",
    "utmMedium",
    "utmCampaign",
    "utmTerm",
    "utmContent",
    "deviceType",
    "browser",
    "os",
    "sessionId",
    "clientId",
];
const METRIC_FIELDS: &[&str] = &[
    "timestamp",
    "url",
    "lcp",
    "cls",
    "fid",
    "ttfb",
    "inp",
    "deviceType",
    "browser",
    "connectionType",
    "clientId",
];

/// Builds the payload of reference §6.2 for `project` over `range` within `segment`, from the
/// report ports and the sample port.
pub async fn build_payload(
    stores: &Stores,
    project: &Project,
    range: TimeRange,
    segment: &SegmentFilters,
) -> Result<Payload, StoreError> {
    let stats = &stores.stats;
    let doc_segment = document_segment(segment);
    let pageviews = stats
        .pageviews_report(
            project.id,
            range,
            &PageViewFilters {
                segment: segment.clone(),
                ..Default::default()
            },
        )
        .await?;
    let events = stats
        .events_report(
            project.id,
            range,
            &EventFilters {
                event_name: None,
                segment: doc_segment.clone(),
            },
            RecentPaging { page: 1, limit: 1 },
        )
        .await?;
    let errors = stats
        .errors_report(
            project.id,
            range,
            &ErrorFilters {
                segment: doc_segment.clone(),
                ..Default::default()
            },
            prompt::MAX_TOP,
        )
        .await?;
    let performance = stats
        .performance_report(
            project.id,
            range,
            &PerformanceFilters {
                segment: doc_segment.clone(),
                ..Default::default()
            },
        )
        .await?
        .figures;

    let mut p = Payload {
        meta: prompt::Meta {
            project_id: project.id.to_hex(),
            project_name: prompt::truncate(&project.name, prompt::MAX_PROJECT_NAME),
            environment: project.environment.clone(),
            start: to_iso(range.start_ms),
            end: to_iso(range.end_ms),
            segment: segment
                .to_params()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        },
        ..Default::default()
    };
    let last_days = |mut days: Vec<crate::domain::analytics::DayCount>| {
        let cut = days.len().saturating_sub(prompt::MAX_DAYS);
        days.drain(..cut);
        days
    };
    p.pageviews = prompt::PageviewsBlock {
        total_views: pageviews.total_views,
        unique_visitors: pageviews.unique_visitors,
        views_by_day: last_days(pageviews.views_by_day),
        top_pages: pageviews
            .top_pages
            .iter()
            .take(prompt::MAX_TOP)
            .map(|t| TopPage {
                url: prompt::truncate(&t.url, prompt::MAX_URL),
                views: t.views,
                unique_visitors: Some(t.unique_visitors),
            })
            .collect(),
    };
    p.events = prompt::EventsBlock {
        total_events: events.total_events,
        events_by_day: last_days(events.events_by_day),
        top_events: events
            .top_events
            .iter()
            .take(prompt::MAX_TOP)
            .map(|e| TopEvent {
                event_name: prompt::truncate(&e.event_name, prompt::MAX_EVENT_NAME),
                count: e.count,
            })
            .collect(),
    };
    p.timed_events = events
        .timed_events
        .iter()
        .take(prompt::MAX_TOP)
        .map(|t| prompt::TimedEvent {
            event_name: prompt::truncate(&t.event_name, prompt::MAX_EVENT_NAME),
            count: t.count,
            avg_ms: Some(t.avg_ms.round()),
            p50_ms: t.p50_ms.map(f64::round),
            p95_ms: t.p95_ms.map(f64::round),
            max_ms: Some(t.max_ms.round()),
        })
        .collect();
    p.performance = prompt::PerformanceBlock {
        total_measurements: performance.total_measurements,
        percentiles: METRICS
            .iter()
            .flat_map(|m| {
                let pc = performance.of(m);
                [("p50", pc.p50), ("p75", pc.p75), ("p95", pc.p95)]
                    .into_iter()
                    .filter_map(move |(name, v)| {
                        v.map(|v| (format!("{m}_{name}"), prompt::round(v)))
                    })
            })
            .collect(),
        metrics_by_day: {
            let mut days = performance.metrics_by_day.clone();
            let cut = days.len().saturating_sub(prompt::MAX_DAYS);
            days.drain(..cut);
            days
        },
    };

    // Samples, each document through its collection's allowlist.
    let limit = prompt::MAX_SAMPLES as u32;
    let sample = |query: SampleQuery, seg: &SegmentFilters| {
        let seg = seg.clone();
        async move {
            stores
                .ai
                .sample_documents(project.id, range, &seg, &query, limit)
                .await
        }
    };
    let mut top_fingerprints = Vec::new();
    for g in errors.grouped_errors.iter().take(prompt::MAX_PATTERNS) {
        let docs = sample(
            SampleQuery::ErrorsWithFingerprint(g.fingerprint.clone()),
            &doc_segment,
        )
        .await?;
        let newest = docs.first();
        top_fingerprints.push(TopFingerprint {
            fingerprint: g.fingerprint.clone(),
            count: g.count,
            message: prompt::truncate(&g.message, prompt::MAX_ERROR_MESSAGE),
            error_type: newest
                .and_then(|d| d.get("errorType"))
                .and_then(Value::as_str)
                .map(str::to_string),
            first_seen: Some(g.first_seen.clone()),
            last_seen: newest
                .and_then(|d| d.get("timestamp"))
                .and_then(Value::as_str)
                .map(str::to_string),
        });
        p.samples.errors.insert(
            g.fingerprint.clone(),
            docs.iter().map(|d| pick(d, ERROR_FIELDS)).collect(),
        );
    }
    p.errors = prompt::ErrorsBlock {
        total_errors: errors.total_errors,
        unique_fingerprints: errors.unique_fingerprints,
        errors_by_day: last_days(errors.errors_by_day),
        top_fingerprints,
    };
    for t in events.timed_events.iter().take(prompt::MAX_PATTERNS) {
        let docs = sample(
            SampleQuery::SlowestEvents(t.event_name.clone()),
            &doc_segment,
        )
        .await?;
        p.samples.timed_events.insert(
            t.event_name.clone(),
            docs.iter().map(|d| pick(d, EVENT_FIELDS)).collect(),
        );
    }
    for e in events.top_events.iter().take(prompt::MAX_PATTERNS) {
        let docs = sample(
            SampleQuery::NewestEvents(e.event_name.clone()),
            &doc_segment,
        )
        .await?;
        p.samples.events.insert(
            e.event_name.clone(),
            docs.iter().map(|d| pick(d, EVENT_FIELDS)).collect(),
        );
    }
    for page in pageviews.top_pages.iter().take(prompt::MAX_PATTERNS) {
        let docs = sample(SampleQuery::NewestPageviews(page.url.clone()), segment).await?;
        p.samples.pageviews.insert(
            prompt::truncate(&page.url, prompt::MAX_URL),
            docs.iter().map(|d| pick(d, PAGEVIEW_FIELDS)).collect(),
        );
    }
    for metric in METRICS {
        let Some(threshold) = performance.of(metric).p95 else {
            continue;
        };
        let docs = sample(
            SampleQuery::WorstMetric {
                metric: metric.into(),
                threshold,
            },
            &doc_segment,
        )
        .await?;
        p.samples.web_vitals.insert(
            format!("{metric}_gte_p95"),
            WorstRecords {
                threshold: prompt::round(threshold),
                records: docs.iter().map(|d| pick(d, METRIC_FIELDS)).collect(),
            },
        );
    }
    Ok(p)
}

/// Validates a new preset body into a stored preset owned by `user`.
pub fn new_preset(user: &User, body: &Value) -> Result<Preset, Invalid> {
    let fields = presets::validate(body, None)?;
    let visibility = presets::visibility(body.get("visibility"))?;
    let now = now_ms();
    Ok(Preset {
        id: DocId::new(),
        owner_user_id: user.id,
        owner_email: user.email.clone(),
        visibility,
        fields,
        version: 1,
        created_at: now,
        updated_at: now,
    })
}

/// Stores a new preset of its owner (`code`: `AI_ANALYSIS_PRESET_CREATED`, or
/// `AI_ANALYSIS_PRESET_AI_GENERATED` when the model wrote it) and records it in the audit log.
pub async fn create_preset(stores: &Stores, preset: &Preset, code: &str) -> Result<(), StoreError> {
    stores.ai.create_preset(preset).await?;
    super::audit::action(code)
        .note(preset.id.to_hex())
        .record(stores)
        .await;
    Ok(())
}

/// Replaces a preset's fields (`code`: `AI_ANALYSIS_PRESET_UPDATED` or `…_AI_REFINED`).
pub async fn update_preset(
    stores: &Stores,
    id: DocId,
    fields: &crate::ai::presets::PresetFields,
    code: &str,
) -> Result<Preset, StoreError> {
    let preset = stores.ai.update_preset(id, fields).await?;
    super::audit::action(code)
        .note(id.to_hex())
        .record(stores)
        .await;
    Ok(preset)
}

/// Makes a preset `public` (published) or `private` (unpublished).
pub async fn set_preset_visibility(
    stores: &Stores,
    id: DocId,
    visibility: &str,
) -> Result<Preset, StoreError> {
    let preset = stores.ai.set_preset_visibility(id, visibility).await?;
    let code = if visibility == "public" {
        crate::domain::audit::codes::AI_ANALYSIS_PRESET_PUBLISHED
    } else {
        crate::domain::audit::codes::AI_ANALYSIS_PRESET_UNPUBLISHED
    };
    super::audit::action(code)
        .note(id.to_hex())
        .record(stores)
        .await;
    Ok(preset)
}

/// Deletes a preset (`NotFound` when it is already gone).
pub async fn delete_preset(stores: &Stores, id: DocId) -> Result<(), StoreError> {
    stores.ai.delete_preset(id).await?;
    super::audit::action(crate::domain::audit::codes::AI_ANALYSIS_PRESET_DELETED)
        .note(id.to_hex())
        .record(stores)
        .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_706_702_400_000;

    #[test]
    fn run_requests_validate_ranges_with_the_reference_messages() {
        let err = |body: Value| parse_run_request(&body, NOW).unwrap_err().0;
        assert_eq!(
            err(json!({"mode": "custom", "start": "nope", "end": "2024-01-02"})),
            "Invalid start date"
        );
        assert_eq!(
            err(json!({"mode": "custom", "start": "2024-01-02"})),
            "Invalid end date"
        );
        assert_eq!(
            err(json!({"mode": "custom", "start": "2024-01-02", "end": "2024-01-01"})),
            "Start date must be before end date"
        );
        assert_eq!(
            err(json!({"mode": "custom", "start": "2024-01-01", "end": "2024-04-01"})),
            "Range too large (max 90 days)"
        );
        let ok = parse_run_request(
            &json!({"mode": "custom", "start": "2024-01-01", "end": "2024-03-31"}),
            NOW,
        )
        .unwrap();
        assert_eq!(ok.timeframe, None);
        assert_eq!(ok.range.end_ms - ok.range.start_ms, 90 * DAY_MS);
        let preset = parse_run_request(
            &json!({"timeframe": "24h", "presetId": "builtin:errors", "clientId": "c1", "meta": {"plan": "pro", "a..b": "x"}, "deviceType": "mobile"}),
            NOW,
        )
        .unwrap();
        assert_eq!(preset.timeframe, Some(Timeframe::H24));
        assert_eq!(
            preset.range,
            TimeRange {
                start_ms: NOW - DAY_MS,
                end_ms: NOW
            }
        );
        assert_eq!(preset.preset_id.as_deref(), Some("builtin:errors"));
        assert_eq!(preset.segment.client_id.as_deref(), Some("c1"));
        assert_eq!(preset.segment.device_type.as_deref(), Some("mobile"));
        assert_eq!(
            preset.segment.meta.len(),
            1,
            "keys with empty path parts are dropped"
        );
        assert_eq!(
            parse_run_request(&json!({}), NOW).unwrap().timeframe,
            Some(Timeframe::D7)
        );
    }

    #[test]
    fn samples_keep_only_allowlisted_fields_and_truncate_long_strings() {
        let doc = json!({"url": "/a", "ip": "203.0.113.9", "country": "FR", "isBot": false, "title": "x".repeat(3000), "projectId": "p"});
        let picked = pick(&doc, PAGEVIEW_FIELDS);
        assert_eq!(picked.as_object().unwrap().len(), 2);
        assert_eq!(picked["url"], "/a");
        assert_eq!(
            picked["title"].as_str().unwrap().chars().count(),
            prompt::MAX_SAMPLE_STRING
        );
        for fields in [ERROR_FIELDS, EVENT_FIELDS, PAGEVIEW_FIELDS, METRIC_FIELDS] {
            assert!(!fields.iter().any(|f| matches!(*f, "ip" | "country")));
        }
    }
}
