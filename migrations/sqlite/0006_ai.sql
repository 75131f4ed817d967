-- AI analysis (SuperInsights 1.x `aianalysispresets` and `aianalysisruns`). Times are epoch ms;
-- JSON columns hold the Mixed fields as text.

CREATE TABLE ai_analysis_presets (
    id TEXT PRIMARY KEY,
    owner_user_id TEXT NOT NULL,
    owner_email TEXT NOT NULL DEFAULT '',
    visibility TEXT NOT NULL DEFAULT 'private',
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    version INTEGER NOT NULL DEFAULT 1,
    definition TEXT NOT NULL DEFAULT '{}',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX ai_analysis_presets_owner ON ai_analysis_presets (owner_user_id, created_at);
CREATE INDEX ai_analysis_presets_visibility ON ai_analysis_presets (visibility, updated_at);

CREATE TABLE ai_analysis_runs (
    id TEXT PRIMARY KEY,
    project_id TEXT NOT NULL,
    preset_id TEXT,
    preset_snapshot TEXT,
    created_by_user_id TEXT NOT NULL DEFAULT '',
    created_by_email TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'queued',
    progress TEXT,
    model TEXT NOT NULL,
    timeframe_preset TEXT,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    segment TEXT NOT NULL DEFAULT '{}',
    result_markdown TEXT,
    error_message TEXT,
    duration_ms INTEGER,
    token_usage TEXT,
    job_id TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX ai_analysis_runs_project ON ai_analysis_runs (project_id, created_at);
