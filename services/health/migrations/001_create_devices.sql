-- The fleet as the health service knows it: groups, devices (the seed's columns plus health
-- details), alerts, and heartbeat counts per minute for the dashboard.

CREATE TABLE device_groups (
    id          UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name        VARCHAR(64) UNIQUE NOT NULL,
    description TEXT,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT NOW()
);

CREATE TABLE devices (
    id                UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id         VARCHAR(32) UNIQUE NOT NULL,
    name              VARCHAR(128),
    description       TEXT,
    mac_address       VARCHAR(17),
    imei              VARCHAR(15),
    iccid             VARCHAR(20),
    hardware          VARCHAR(64),
    firmware_version  VARCHAR(16),
    capabilities      JSONB,
    status            VARCHAR(16) NOT NULL DEFAULT 'offline'
                      CHECK (status IN ('online', 'offline', 'degraded')),
    status_changed_at TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    previous_status   VARCHAR(16),  -- before the last change (the sweep reports it)
    last_heartbeat    TIMESTAMPTZ,
    last_telemetry    TIMESTAMPTZ,
    connection_type   VARCHAR(8),
    signal_strength   INTEGER,
    ip_address        VARCHAR(45),
    boot_count        INTEGER DEFAULT 0,
    group_id          UUID REFERENCES device_groups(id) ON DELETE SET NULL,
    tags              JSONB NOT NULL DEFAULT '[]',
    created_at        TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    heartbeat_interval INTEGER NOT NULL DEFAULT 60 CHECK (heartbeat_interval > 0),
    meter             JSONB,
    -- health details of the newest heartbeat
    free_heap         INTEGER,
    min_free_heap     INTEGER,
    reset_reason      VARCHAR(16),
    modbus_ok         BOOLEAN,
    modbus_errors     INTEGER,
    sd_buffered       INTEGER,
    uptime_s          DOUBLE PRECISION,
    clock_unsynced    BOOLEAN NOT NULL DEFAULT FALSE,
    -- console receive time of the newest sign of life (heartbeat or status "online"): the
    -- sweep measures silence with it, since device clocks may be off by minutes.
    last_seen         TIMESTAMPTZ
) WITH (fillfactor = 80);
-- No index on status (the seed has one): the status and heartbeat columns change all the time,
-- and leaving them unindexed, with room in each page (fillfactor), makes those updates HOT
-- (no index writes), which is what keeps the sweep under a second for 100,000 devices. The
-- status filters and counts read most of the table anyway.
CREATE INDEX idx_devices_group ON devices(group_id) WHERE group_id IS NOT NULL;
CREATE INDEX idx_devices_firmware ON devices(firmware_version);
CREATE INDEX idx_devices_tags ON devices USING GIN (tags jsonb_path_ops);

CREATE TABLE alerts (
    id               BIGSERIAL PRIMARY KEY,
    device_id        VARCHAR(32) NOT NULL REFERENCES devices(device_id) ON DELETE CASCADE,
    alert_type       VARCHAR(32) NOT NULL,
    severity         VARCHAR(16) NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    message          TEXT NOT NULL,
    value            DOUBLE PRECISION,
    threshold        DOUBLE PRECISION,
    metadata         JSONB,
    acknowledged     BOOLEAN NOT NULL DEFAULT FALSE,
    acknowledged_by  VARCHAR(128),
    acknowledged_at  TIMESTAMPTZ,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    resolved_at      TIMESTAMPTZ,
    occurrence_count INTEGER NOT NULL DEFAULT 1,
    last_seen_at     TIMESTAMPTZ NOT NULL DEFAULT NOW(),
    last_value       DOUBLE PRECISION,
    source           VARCHAR(8) NOT NULL DEFAULT 'device' CHECK (source IN ('device', 'console'))
);
CREATE INDEX idx_alerts_device ON alerts(device_id, created_at DESC);
CREATE INDEX idx_alerts_created ON alerts(created_at DESC);
-- At most one open alert per device and type, whatever replicas race: upserts target this.
CREATE UNIQUE INDEX uq_alerts_open ON alerts(device_id, alert_type) WHERE resolved_at IS NULL;
CREATE INDEX idx_alerts_open_severity ON alerts(severity) WHERE resolved_at IS NULL;

-- Heartbeats counted per minute (replicas add their tallies), for the dashboard's rate.
CREATE TABLE heartbeat_minutes (
    minute     TIMESTAMPTZ PRIMARY KEY,
    heartbeats BIGINT NOT NULL
);

-- Alerts opened per UTC day, kept by a statement trigger (one upsert per statement, not per
-- row: the sweep may open thousands at once), so the dashboard never scans a month of alerts.
CREATE TABLE alert_days (
    day    DATE PRIMARY KEY,
    alerts BIGINT NOT NULL
);

CREATE FUNCTION count_alert_days() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO alert_days (day, alerts)
    SELECT (created_at AT TIME ZONE 'UTC')::date, count(*) FROM added GROUP BY 1
    ON CONFLICT (day) DO UPDATE SET alerts = alert_days.alerts + EXCLUDED.alerts;
    RETURN NULL;
END $$;

CREATE TRIGGER alerts_count_days AFTER INSERT ON alerts
    REFERENCING NEW TABLE AS added FOR EACH STATEMENT EXECUTE FUNCTION count_alert_days();
