-- Background jobs (AI analysis runs, reports): the state the UI reads and the durable queue.
-- A job is claimed by one conditional UPDATE that sets a fresh lease token; every later write of
-- that attempt (progress, completion, failure, release) is conditional on the token, so a worker
-- whose lease was taken over can no longer change the job.

CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued',
    dispatch TEXT NOT NULL DEFAULT 'store',
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL,
    progress INTEGER NOT NULL DEFAULT 0,
    progress_message TEXT,
    queued_at INTEGER NOT NULL,
    run_after INTEGER NOT NULL,
    started_at INTEGER,
    finished_at INTEGER,
    lease_token TEXT,
    lease_until INTEGER,
    worker TEXT,
    last_error TEXT,
    result TEXT,
    updated_at INTEGER NOT NULL
);
CREATE INDEX jobs_state_due ON jobs (state, run_after);
CREATE INDEX jobs_state_lease ON jobs (state, lease_until);
