-- One counter per project, raised by every clear-data and retention purge (src/store/sqlite/rollups.rs).
-- A rollup build reads it in its snapshot and stores its result only if it has not moved, so a
-- build that overlaps a purge or a clear can never store figures of deleted documents, even when
-- the bucket's version happens to come back to the value the build read.
CREATE TABLE rollup_epochs (
    project INTEGER PRIMARY KEY,
    epoch INTEGER NOT NULL
);
