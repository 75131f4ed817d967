//! The records of AI analysis: a run (`aianalysisruns`) and its outcome. Plain data; the stores
//! persist it and `services::ai_analysis` drives it through its states.

use crate::domain::{ids::DocId, segment::SegmentFilters, timestamp::to_iso};
use serde_json::{Value, json};

/// Where a run is: `queued` → `running` → `completed` | `failed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Queued, Self::Running, Self::Completed, Self::Failed]
            .into_iter()
            .find(|x| x.as_str() == s)
    }

    /// Completed or failed: nothing changes it any more.
    pub fn is_final(self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed)
    }
}

/// One analysis run.
#[derive(Clone, Debug, PartialEq)]
pub struct AiRun {
    pub id: DocId,
    pub project_id: DocId,
    /// A preset id (24 hex) or `builtin:*`; `None` for the general analysis.
    pub preset_id: Option<String>,
    /// The preset as it was when the run was asked for.
    pub preset_snapshot: Option<Value>,
    pub created_by_user_id: String,
    pub created_by_email: String,
    pub status: RunStatus,
    /// The current step while running (`building payload`, `calling model`, `saving`).
    pub progress: Option<String>,
    pub model: String,
    /// `7d`, `30d`, … or `None` for a custom range.
    pub timeframe_preset: Option<String>,
    /// Inclusive range, epoch ms.
    pub start: i64,
    pub end: i64,
    pub segment: SegmentFilters,
    pub result_markdown: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: Option<i64>,
    /// The provider's usage object (token counts).
    pub token_usage: Option<Value>,
    /// The queue's job id, once enqueued.
    pub job_id: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    /// `Completed` or `Failed`.
    pub status: RunStatus,
    pub model: String,
    pub result_markdown: Option<String>,
    pub error_message: Option<String>,
    pub duration_ms: i64,
    pub token_usage: Option<Value>,
}

impl AiRun {
    /// The JSON shape of the run routes (SuperInsights field names, dates as ISO strings).
    pub fn to_json(&self) -> Value {
        json!({
            "_id": self.id.to_hex(),
            "id": self.id.to_hex(),
            "projectId": self.project_id.to_hex(),
            "presetId": self.preset_id,
            "presetSnapshot": self.preset_snapshot,
            "createdByUserId": self.created_by_user_id,
            "createdByEmail": self.created_by_email,
            "status": self.status.as_str(),
            "progress": self.progress,
            "model": self.model,
            "timeframePreset": self.timeframe_preset,
            "start": to_iso(self.start),
            "end": to_iso(self.end),
            "segment": self.segment,
            "resultMarkdown": self.result_markdown,
            "errorMessage": self.error_message,
            "durationMs": self.duration_ms,
            "tokenUsage": self.token_usage,
            "jobId": self.job_id,
            "createdAt": to_iso(self.created_at),
            "updatedAt": to_iso(self.updated_at),
        })
    }
}

/// The segment as stored with a run (camelCase names; `meta` always present).
pub fn segment_to_json(segment: &SegmentFilters) -> Value {
    let mut v = serde_json::to_value(segment).unwrap_or_else(|_| json!({}));
    if let Some(o) = v.as_object_mut() {
        o.entry("meta").or_insert_with(|| json!({}));
    }
    v
}

/// Reads a stored segment back (lenient: anything unusable is "no filter").
pub fn segment_from_json(v: &Value) -> SegmentFilters {
    let mut v = v.clone();
    if let Some(o) = v.as_object_mut() {
        o.entry("meta").or_insert_with(|| json!({}));
    }
    serde_json::from_value(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_through_json() {
        let mut s = SegmentFilters {
            client_id: Some("c1".into()),
            ..Default::default()
        };
        assert_eq!(segment_from_json(&segment_to_json(&s)), s);
        s.meta.insert("plan".into(), "pro".into());
        assert_eq!(segment_from_json(&segment_to_json(&s)), s);
        assert_eq!(segment_from_json(&json!("junk")), SegmentFilters::default());
    }
}
