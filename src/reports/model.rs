//! The records of reports and filter templates, as stored (camelCase JSON, SuperInsights 1.x
//! field names where 1.x had them) and as the routes show them. Plain data and small pure rules
//! (stage progress, expiry); the stores persist them, `services::report_jobs` moves them along.

use crate::domain::{ids::DocId, segment::SegmentFilters, timestamp::to_iso};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Days a finished report's file is kept (reference §5.7: `expiresAt = +30 days`).
pub const EXPIRY_DAYS: i64 = 30;
/// A generation that has not finished this long after it was asked for is failed (1.x's
/// 5-minute timeout), naming the stage it was in.
pub const GENERATION_TIMEOUT_MS: i64 = 5 * 60_000;

/// What a report covers: one data type, or `all` four.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    Pageviews,
    Events,
    Errors,
    Performance,
    All,
}

impl DataType {
    pub const VALUES: [DataType; 5] = [
        DataType::Pageviews,
        DataType::Events,
        DataType::Errors,
        DataType::Performance,
        DataType::All,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Pageviews => "pageviews",
            DataType::Events => "events",
            DataType::Errors => "errors",
            DataType::Performance => "performance",
            DataType::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::VALUES.into_iter().find(|d| d.as_str() == s)
    }

    /// The single data types this one stands for (`all` = the four).
    pub fn parts(self) -> Vec<DataType> {
        match self {
            DataType::All => Self::VALUES[..4].to_vec(),
            one => vec![one],
        }
    }
}

/// The file a report produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportFormat {
    Pdf,
    Csv,
    Json,
    Html,
}

impl ReportFormat {
    pub const VALUES: [ReportFormat; 4] = [
        ReportFormat::Pdf,
        ReportFormat::Csv,
        ReportFormat::Json,
        ReportFormat::Html,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportFormat::Pdf => "pdf",
            ReportFormat::Csv => "csv",
            ReportFormat::Json => "json",
            ReportFormat::Html => "html",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::VALUES.into_iter().find(|f| f.as_str() == s)
    }

    /// The `Content-Type` of the file.
    pub fn content_type(self) -> &'static str {
        match self {
            ReportFormat::Pdf => "application/pdf",
            ReportFormat::Csv => "text/csv; charset=utf-8",
            ReportFormat::Json => "application/json",
            ReportFormat::Html => "text/html; charset=utf-8",
        }
    }
}

/// CSV flavour: 1.x's `metric,value,dataType,timeframe` rows, or every document in range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CsvMode {
    Aggregated,
    Raw,
}

impl CsvMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CsvMode::Aggregated => "aggregated",
            CsvMode::Raw => "raw",
        }
    }
}

/// `pending` → `generating` → `completed` | `failed` (1.x's statuses).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportStatus {
    Pending,
    Generating,
    Completed,
    Failed,
}

impl ReportStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Pending => "pending",
            ReportStatus::Generating => "generating",
            ReportStatus::Completed => "completed",
            ReportStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Generating,
            Self::Completed,
            Self::Failed,
        ]
        .into_iter()
        .find(|x| x.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(self, ReportStatus::Completed | ReportStatus::Failed)
    }
}

/// The generation stages, in order, with the progress each starts at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Queued,
    Aggregating,
    Rendering,
    Storing,
    Completed,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Queued => "queued",
            Stage::Aggregating => "aggregating",
            Stage::Rendering => "rendering",
            Stage::Storing => "storing",
            Stage::Completed => "completed",
        }
    }

    /// Progress (percent) when the stage starts (1.x: 0, 15, 55, 80, 100).
    pub fn progress(self) -> u8 {
        match self {
            Stage::Queued => 0,
            Stage::Aggregating => 15,
            Stage::Rendering => 55,
            Stage::Storing => 80,
            Stage::Completed => 100,
        }
    }
}

/// One stage as it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StageRecord {
    pub stage: Stage,
    pub started_at: i64,
    #[serde(default)]
    pub completed_at: Option<i64>,
    #[serde(default)]
    pub error_message: Option<String>,
}

/// One report (1.x `reports`). Times are epoch ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub id: DocId,
    pub project_id: DocId,
    /// The project's organization: files live under `<orgId>_<projectId>/`.
    pub org_id: DocId,
    pub created_by: DocId,
    pub name: String,
    pub data_type: DataType,
    /// A preset (`7d`, …) re-resolved when the job runs, or `custom`.
    pub timeframe: String,
    pub start: i64,
    pub end: i64,
    #[serde(default)]
    pub filters: SegmentFilters,
    pub format: ReportFormat,
    #[serde(default)]
    pub csv_mode: Option<CsvMode>,
    #[serde(default)]
    pub include_ai_insights: bool,
    pub status: ReportStatus,
    #[serde(default)]
    pub status_message: Option<String>,
    #[serde(default)]
    pub stages: Vec<StageRecord>,
    pub current_stage: Stage,
    pub progress: u8,
    pub estimated_duration_ms: i64,
    pub job_timeout_at: i64,
    pub dedup_hash: String,
    #[serde(default)]
    pub filter_template_id: Option<String>,
    /// Where the file is in the file store (`<orgId>_<projectId>/<reportId>.<ext>`).
    #[serde(default)]
    pub file_key: Option<String>,
    #[serde(default)]
    pub file_size: Option<u64>,
    #[serde(default)]
    pub expires_at: Option<i64>,
    #[serde(default)]
    pub generated_at: Option<i64>,
    #[serde(default)]
    pub download_count: u64,
    #[serde(default)]
    pub deleted_at: Option<i64>,
    /// The computed context, reused by the interactive view (1.x `contextSnapshot`).
    #[serde(default)]
    pub context_snapshot: Option<Value>,
    pub created_at: i64,
    pub updated_at: i64,
}

impl Report {
    /// The file-store namespace of the report's project: `<orgId>_<projectId>`.
    pub fn namespace(&self) -> String {
        format!("{}_{}", self.org_id, self.project_id)
    }

    /// The file's name in the store and in `Content-Disposition`.
    pub fn file_name(&self) -> String {
        let ext = self.format.as_str();
        let stem: String = self
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .take(60)
            .collect();
        format!("{stem}-{}.{ext}", self.id)
    }

    /// Moves to `stage`: the previous stage is completed at `now`, progress jumps to the stage's.
    pub fn enter(&mut self, stage: Stage, now: i64) {
        if let Some(last) = self.stages.last_mut()
            && last.completed_at.is_none()
        {
            last.completed_at = Some(now);
        }
        if stage != Stage::Completed {
            self.stages.push(StageRecord {
                stage,
                started_at: now,
                completed_at: None,
                error_message: None,
            });
        }
        self.current_stage = stage;
        self.progress = stage.progress();
        self.status = match stage {
            Stage::Queued => ReportStatus::Pending,
            Stage::Completed => ReportStatus::Completed,
            _ => ReportStatus::Generating,
        };
        self.updated_at = now;
    }

    /// Fails the report in its current stage with `message` (the stage keeps the error).
    pub fn fail(&mut self, message: &str, now: i64) {
        if let Some(last) = self.stages.last_mut()
            && last.completed_at.is_none()
        {
            last.error_message = Some(message.to_string());
            last.completed_at = Some(now);
        }
        self.status = ReportStatus::Failed;
        self.status_message = Some(message.to_string());
        self.updated_at = now;
    }

    /// Creation time as ISO (for pages).
    pub fn created_iso(&self) -> String {
        to_iso(self.created_at)
    }

    /// The period's start and end as ISO (for pages).
    pub fn start_iso(&self) -> String {
        to_iso(self.start)
    }

    pub fn end_iso(&self) -> String {
        to_iso(self.end)
    }

    /// Whether the generation ran past its deadline without finishing.
    pub fn timed_out(&self, now: i64) -> bool {
        !self.status.is_final() && now >= self.job_timeout_at
    }

    /// The list and detail JSON (1.x field names; the context snapshot left out).
    pub fn to_json(&self) -> Value {
        let iso = |ms: Option<i64>| ms.map(to_iso);
        json!({
            "_id": self.id.to_hex(),
            "projectId": self.project_id.to_hex(),
            "name": self.name,
            "dataType": self.data_type.as_str(),
            "timeframe": self.timeframe,
            "startDate": to_iso(self.start),
            "endDate": to_iso(self.end),
            "filters": self.filters,
            "format": self.format.as_str(),
            "csvMode": self.csv_mode.map(CsvMode::as_str),
            "includeAiInsights": self.include_ai_insights,
            "status": self.status.as_str(),
            "statusMessage": self.status_message,
            "currentStage": self.current_stage.as_str(),
            "progress": self.progress,
            "fileSize": self.file_size,
            "expiresAt": iso(self.expires_at),
            "generatedAt": iso(self.generated_at),
            "downloadCount": self.download_count,
            "filterTemplateId": self.filter_template_id,
            "createdAt": to_iso(self.created_at),
            "updatedAt": to_iso(self.updated_at),
        })
    }

    /// The stages as `/status` shows them.
    pub fn stages_json(&self) -> Value {
        Value::Array(
            self.stages
                .iter()
                .map(|s| {
                    json!({
                        "stage": s.stage.as_str(),
                        "startedAt": to_iso(s.started_at),
                        "completedAt": s.completed_at.map(to_iso),
                        "errorMessage": s.error_message,
                    })
                })
                .collect(),
        )
    }
}

/// A saved set of filters and a timeframe (1.x `filtertemplates`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FilterTemplate {
    pub id: DocId,
    pub project_id: DocId,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub filters: SegmentFilters,
    #[serde(default)]
    pub timeframe: Option<String>,
    #[serde(default)]
    pub start_date: Option<i64>,
    #[serde(default)]
    pub end_date: Option<i64>,
    pub created_by: DocId,
    pub created_at: i64,
    pub updated_at: i64,
}

impl FilterTemplate {
    pub fn to_json(&self) -> Value {
        json!({
            "_id": self.id.to_hex(),
            "projectId": self.project_id.to_hex(),
            "name": self.name,
            "description": self.description,
            "filters": self.filters,
            "timeframe": self.timeframe,
            "startDate": self.start_date.map(to_iso),
            "endDate": self.end_date.map(to_iso),
            "createdBy": self.created_by.to_hex(),
            "createdAt": to_iso(self.created_at),
            "updatedAt": to_iso(self.updated_at),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(now: i64) -> Report {
        Report {
            id: DocId::new(),
            project_id: DocId::new(),
            org_id: DocId::new(),
            created_by: DocId::new(),
            name: "Weekly / client".into(),
            data_type: DataType::All,
            timeframe: "7d".into(),
            start: now - 7 * 86_400_000,
            end: now,
            filters: SegmentFilters::default(),
            format: ReportFormat::Pdf,
            csv_mode: None,
            include_ai_insights: false,
            status: ReportStatus::Pending,
            status_message: None,
            stages: Vec::new(),
            current_stage: Stage::Queued,
            progress: 0,
            estimated_duration_ms: 15_000,
            job_timeout_at: now + GENERATION_TIMEOUT_MS,
            dedup_hash: "h".into(),
            filter_template_id: None,
            file_key: None,
            file_size: None,
            expires_at: None,
            generated_at: None,
            download_count: 0,
            deleted_at: None,
            context_snapshot: None,
            created_at: now,
            updated_at: now,
        }
    }

    #[test]
    fn stages_advance_with_progress_and_a_failure_names_its_stage() {
        let mut r = sample(1_000);
        r.enter(Stage::Queued, 1_000);
        r.enter(Stage::Aggregating, 2_000);
        assert_eq!((r.status, r.progress), (ReportStatus::Generating, 15));
        assert_eq!(r.stages[0].completed_at, Some(2_000));
        r.enter(Stage::Rendering, 3_000);
        r.fail("boom", 4_000);
        assert_eq!(r.status, ReportStatus::Failed);
        assert_eq!(r.stages[2].stage, Stage::Rendering);
        assert_eq!(r.stages[2].error_message.as_deref(), Some("boom"));
        assert!(!r.timed_out(i64::MAX), "a failed report never times out");
    }

    #[test]
    fn a_report_round_trips_through_json_and_names_its_file_safely() {
        let r = sample(5_000);
        let back: Report = serde_json::from_value(serde_json::to_value(&r).unwrap()).unwrap();
        assert_eq!(back, r);
        assert!(r.file_name().starts_with("Weekly___client-"));
        assert!(r.file_name().ends_with(".pdf"));
        assert_eq!(r.namespace(), format!("{}_{}", r.org_id, r.project_id));
    }
}
