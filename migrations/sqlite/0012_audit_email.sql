-- The raw audit log (reference §5.9) and the email features: password resets (token hashes
-- only), email-report subscriptions and once-per-period send claims.
CREATE TABLE raw_logs (
    id TEXT PRIMARY KEY,
    ts INTEGER NOT NULL,
    kind TEXT NOT NULL,
    action_code TEXT,
    error_message TEXT,
    error_stack TEXT,
    user_id TEXT,
    email TEXT,
    project_id TEXT,
    org_id TEXT,
    method TEXT,
    path TEXT,
    status INTEGER,
    ip TEXT
);
CREATE INDEX raw_logs_ts ON raw_logs (ts DESC, id DESC);
CREATE INDEX raw_logs_project ON raw_logs (project_id, ts DESC);
CREATE INDEX raw_logs_org ON raw_logs (org_id, ts DESC);
CREATE INDEX raw_logs_action ON raw_logs (action_code, ts DESC);

CREATE TABLE password_resets (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);

CREATE TABLE email_subscriptions (
    project_id TEXT NOT NULL,
    user_id TEXT NOT NULL,
    cadence TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, user_id, cadence)
);
CREATE INDEX email_subscriptions_cadence ON email_subscriptions (cadence, created_at);

CREATE TABLE email_sends (
    key TEXT PRIMARY KEY,
    claimed_at INTEGER NOT NULL
);
