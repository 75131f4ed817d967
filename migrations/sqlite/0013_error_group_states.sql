-- The state members give an error group (src/domain/error_groups.rs): one row per project and
-- error signature (src/domain/error_signature.rs); no row means open. Removed with the
-- project's data (soft delete, clear data).
CREATE TABLE error_group_states (
    project_id TEXT NOT NULL,
    signature TEXT NOT NULL,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    updated_by TEXT,
    PRIMARY KEY (project_id, signature)
) WITHOUT ROWID;
