-- SuperInsights (Rust) embedded schema. Ids are 24-hex ObjectId-shaped strings so that data can
-- move to and from MongoDB unchanged. Times are UTC epoch milliseconds.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    name TEXT,
    role TEXT NOT NULL DEFAULT 'user',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE organizations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    slug TEXT NOT NULL UNIQUE,
    owner_user_id TEXT NOT NULL,
    allow_public_join INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'active',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

CREATE TABLE organization_members (
    org_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'member',
    status TEXT NOT NULL DEFAULT 'active',
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX organization_members_user ON organization_members (user_id);

-- `pk` is the compact key analytics rows point at; `id` is the public id.
CREATE TABLE projects (
    pk INTEGER PRIMARY KEY,
    id TEXT NOT NULL UNIQUE,
    name TEXT NOT NULL,
    icon TEXT NOT NULL DEFAULT '📊',
    environment TEXT NOT NULL DEFAULT 'production',
    public_api_key TEXT NOT NULL UNIQUE,
    secret_api_key TEXT NOT NULL UNIQUE,
    data_retention_days INTEGER NOT NULL DEFAULT 90,
    org_id TEXT NOT NULL,
    public_link_enabled INTEGER NOT NULL DEFAULT 0,
    public_link_token_hash TEXT,
    public_link_created_at INTEGER,
    public_link_revoked_at INTEGER,
    public_link_last_regenerated_at INTEGER,
    dropped_events INTEGER NOT NULL DEFAULT 0,
    deleted_at INTEGER,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX projects_org ON projects (org_id, created_at);

-- Key/value settings, as saasbackend's GlobalSetting (e.g. PROJECT:<id>:INGESTION_DROP_EVENTS_V1).
CREATE TABLE global_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    type TEXT NOT NULL DEFAULT 'string',
    description TEXT NOT NULL DEFAULT '',
    updated_at INTEGER NOT NULL
);

CREATE TABLE pageviews (
    project INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    url TEXT NOT NULL,
    title TEXT,
    referrer TEXT,
    session_id TEXT,
    client_id TEXT,
    utm_source TEXT,
    utm_medium TEXT,
    utm_campaign TEXT,
    utm_term TEXT,
    utm_content TEXT,
    device_type TEXT,
    browser TEXT,
    os TEXT,
    ip TEXT,
    country TEXT,
    is_bot INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX pageviews_project_ts ON pageviews (project, ts);

CREATE TABLE events (
    project INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    event_name TEXT NOT NULL,
    properties TEXT NOT NULL DEFAULT '{}',
    duration_ms REAL,
    session_id TEXT,
    client_id TEXT,
    ip TEXT,
    country TEXT,
    is_bot INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX events_project_ts ON events (project, ts);
CREATE INDEX events_project_name_ts ON events (project, event_name, ts);

CREATE TABLE errors (
    project INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    message TEXT NOT NULL,
    error_type TEXT,
    stack_trace TEXT,
    source_file TEXT,
    line_number REAL,
    column_number REAL,
    browser TEXT,
    browser_version TEXT,
    os TEXT,
    os_version TEXT,
    device_type TEXT,
    context TEXT,
    fingerprint TEXT NOT NULL,
    ip TEXT,
    country TEXT,
    is_bot INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX errors_project_ts ON errors (project, ts);
CREATE INDEX errors_project_fingerprint_ts ON errors (project, fingerprint, ts);

CREATE TABLE performance_metrics (
    project INTEGER NOT NULL,
    ts INTEGER NOT NULL,
    metric_type TEXT NOT NULL DEFAULT 'web_vitals_aggregate',
    lcp REAL,
    cls REAL,
    fid REAL,
    ttfb REAL,
    inp REAL,
    url TEXT,
    client_id TEXT,
    device_type TEXT,
    browser TEXT,
    connection_type TEXT,
    properties TEXT NOT NULL DEFAULT '{}',
    ip TEXT,
    country TEXT,
    is_bot INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX performance_metrics_project_ts ON performance_metrics (project, ts);

-- Spool replays already applied (makes replays idempotent after a crash mid-drain).
CREATE TABLE ingest_batches (
    batch_id TEXT PRIMARY KEY,
    applied_at INTEGER NOT NULL
) WITHOUT ROWID;
