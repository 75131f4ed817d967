-- Generated reports (SuperInsights 1.x `reports`) and filter templates (`filtertemplates`).
-- The record is JSON in `doc` (camelCase, as `crate::reports::model` writes it); the columns
-- beside it are what the queries filter and sort on. Times are epoch ms.

CREATE TABLE report_records (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    status TEXT NOT NULL,
    dedup_hash TEXT NOT NULL,
    file_key TEXT,
    expires_at INTEGER,
    deleted_at INTEGER,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX report_records_project ON report_records (project_id, created_at);
CREATE INDEX report_records_dedup ON report_records (project_id, dedup_hash, status);
CREATE INDEX report_records_files ON report_records (file_key, expires_at);

CREATE TABLE filter_templates (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    doc TEXT NOT NULL
);
CREATE INDEX filter_templates_project ON filter_templates (project_id, created_at);
