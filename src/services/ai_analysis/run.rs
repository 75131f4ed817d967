//! Running one analysis (the job of kind `ai_analysis`): build the payload, ask the model or
//! write the offline digest, record the outcome and its audit entry.

use super::{AiAnalysis, payload::build_payload};
use crate::ai::{
    AiError, digest,
    model::{RunOutcome, RunStatus},
    presets, prompt,
};
use crate::domain::{analytics::TimeRange, ids::DocId};
use crate::runtime::jobs::{JobError, JobHandler, Progress};
use crate::services::audit;
use crate::store::Job;
use async_trait::async_trait;
use serde_json::{Value, json};
use std::sync::Arc;

impl AiAnalysis {
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
            audit::action(code)
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
                audit::action(crate::domain::audit::codes::AI_ANALYSIS_RUN_FAILED)
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
