-- Hourly statistics of a device's readings, computed on first demand for complete hours and
-- reused by 1h/1d history queries. `readings` is the hour's row count when computed: rows are
-- only ever added (or dropped with their device or partition), so a count that differs now
-- means the rollup is stale and is computed again. No invalidation on the ingest path.
CREATE TABLE hourly_rollups (
    device_id VARCHAR(32) NOT NULL,
    hour      TIMESTAMPTZ NOT NULL,
    readings  INTEGER NOT NULL,
    stats     JSONB NOT NULL,  -- {field: [count, min, max, sum]}
    PRIMARY KEY (device_id, hour)
);
