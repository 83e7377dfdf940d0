-- Telemetry readings, partitioned by calendar month (UTC) of `timestamp`.
-- A reading is identified by (device_id, timestamp) and stored once. Monthly partitions are
-- created ahead of time by the service (current + next 2 months, at start and daily) and on
-- demand for older months (SD replays); retention drops whole partitions. No default partition:
-- it would have to be scanned (and emptied) each time a month partition is created.
CREATE TABLE telemetry_records (
    device_id      VARCHAR(32) NOT NULL,
    timestamp      TIMESTAMPTZ NOT NULL,
    data           JSONB NOT NULL,
    source         VARCHAR(8) NOT NULL DEFAULT 'live',
    connection     VARCHAR(8),
    received_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    clock_unsynced BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY (device_id, timestamp)
) PARTITION BY RANGE (timestamp);

-- The latest reading of each device, for GET /api/devices/{id}/telemetry without scanning
-- history; upserted only when a newer reading arrives.
CREATE TABLE latest_readings (
    device_id      VARCHAR(32) PRIMARY KEY,
    timestamp      TIMESTAMPTZ NOT NULL,
    data           JSONB NOT NULL,
    source         VARCHAR(8) NOT NULL,
    connection     VARCHAR(8),
    received_at    TIMESTAMPTZ NOT NULL,
    clock_unsynced BOOLEAN NOT NULL
);

-- Messages and readings stored per minute (all replicas), for the dashboard's ingest rate.
CREATE TABLE ingest_minutes (
    minute   TIMESTAMPTZ PRIMARY KEY,
    messages BIGINT NOT NULL DEFAULT 0,
    readings BIGINT NOT NULL DEFAULT 0
);
