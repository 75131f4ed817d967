-- Five-minute grain of the rollups (src/store/sqlite/rollups.rs): the parts of a range that are
-- not whole closed hours are read from 5-minute rollups (`rollups.grain` 2, `bucket` = epoch ms /
-- 300,000), leaving raw edges under five minutes.

-- One row per (project, 5-minute slot) that ever received analytics data; `ver` grows by one for
-- every write batch touching the slot (and on retention purges), alongside the hour's version in
-- `rollup_versions`. A 5-minute rollup is fresh iff its slot's version is still the one it was
-- built from.
CREATE TABLE rollup_slot_versions (
    project INTEGER NOT NULL,
    slot INTEGER NOT NULL, -- epoch ms / 300,000 (floor)
    ver INTEGER NOT NULL,
    PRIMARY KEY (project, slot)
) WITHOUT ROWID;

-- Data stored before this migration: every slot that holds a document starts at version 1.
INSERT INTO rollup_slot_versions (project, slot, ver)
SELECT project, slot, 1 FROM (
    SELECT project, (ts - ((ts % 300000) + 300000) % 300000) / 300000 AS slot FROM pageviews
    UNION
    SELECT project, (ts - ((ts % 300000) + 300000) % 300000) / 300000 FROM events
    UNION
    SELECT project, (ts - ((ts % 300000) + 300000) % 300000) / 300000 FROM errors
    UNION
    SELECT project, (ts - ((ts % 300000) + 300000) % 300000) / 300000 FROM performance_metrics
);
