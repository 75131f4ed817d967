//! AI analysis use cases: validate a run request, record the run and hand it to the job queue;
//! the job handler that builds the payload, asks the model (or writes the offline digest) and
//! stores the outcome; and the preset operations behind the preset routes. No HTTP types here.
//!
//! This module holds the service ([`AiAnalysis`]) and starting a run; `request` reads a run
//! request, `run` executes one (the queue handler), `payload` builds what the model sees, and
//! `user_presets` stores saved presets. The provider client, prompt and digest live in `crate::ai`.
//!
//! Privacy: the payload is built from aggregates and from sample documents passed through
//! per-collection allowlists, so IP addresses and countries are never sent to a provider.

use crate::ai::{
    ChatClient,
    model::{AiRun, RunStatus},
    presets::{self, PresetFields},
};
use crate::domain::{ids::DocId, timestamp::now_ms};
use crate::runtime::jobs::{JobQueue, NewJob, kinds};
use crate::store::{Project, StoreError, Stores, User};
use serde_json::{Value, json};
use std::sync::Arc;

mod payload;
mod request;
mod run;
mod user_presets;

pub use payload::build_payload;
pub use request::{MAX_RANGE_DAYS, RunRequest, parse_run_request};
pub use run::AiAnalysisHandler;
pub use user_presets::{
    create_preset, delete_preset, new_preset, set_preset_visibility, update_preset,
};

/// History shown on the page and the default of `GET …/runs`.
pub const DEFAULT_RUNS: u32 = 30;

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
