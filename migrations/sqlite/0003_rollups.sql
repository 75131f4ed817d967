-- Rollups for the unfiltered analytics summaries (src/store/sqlite/rollups.rs).

-- One row per (project, UTC hour) that ever received analytics data; `ver` grows by one for every
-- write batch touching the hour (and on retention purges). A rollup is fresh iff it was built
-- from the versions that are current now.
CREATE TABLE rollup_versions (
    project INTEGER NOT NULL,
    hour INTEGER NOT NULL, -- epoch ms / 3,600,000 (floor)
    ver INTEGER NOT NULL,
    PRIMARY KEY (project, hour)
) WITHOUT ROWID;

-- Pre-aggregated figures of one closed UTC hour (grain 0) or day (grain 1), one row per part
-- (0 page views, 1 events, 2 errors, 3 web vitals, 4 breakdowns). `ver` is the hour's version
-- (for a day: the sum of its 24 hour versions) the row was built from; `fmt` the encoding.
CREATE TABLE rollups (
    project INTEGER NOT NULL,
    grain INTEGER NOT NULL,
    bucket INTEGER NOT NULL,
    part INTEGER NOT NULL,
    ver INTEGER NOT NULL,
    fmt INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (project, part, grain, bucket)
);

-- Dense integer ids for client ids, so unique visitors can be unioned exactly as bitmaps.
CREATE TABLE rollup_clients (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    project INTEGER NOT NULL,
    client TEXT NOT NULL,
    UNIQUE (project, client)
);

-- Data stored before this migration: every hour that holds a document starts at version 1.
INSERT INTO rollup_versions (project, hour, ver)
SELECT project, hour, 1 FROM (
    SELECT project, (ts - ((ts % 3600000) + 3600000) % 3600000) / 3600000 AS hour FROM pageviews
    UNION
    SELECT project, (ts - ((ts % 3600000) + 3600000) % 3600000) / 3600000 FROM events
    UNION
    SELECT project, (ts - ((ts % 3600000) + 3600000) % 3600000) / 3600000 FROM errors
    UNION
    SELECT project, (ts - ((ts % 3600000) + 3600000) % 3600000) / 3600000 FROM performance_metrics
);
