-- Commands to devices, their timestamped history, what the console knows of each device's
-- connectivity (from health's facts) and device configurations (desired / reported).

CREATE TABLE commands (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id     VARCHAR(32) NOT NULL,
    request_id    VARCHAR(64) UNIQUE NOT NULL,
    command       VARCHAR(32) NOT NULL,
    params        JSONB NOT NULL DEFAULT '{}'::jsonb,  -- secrets sealed (encrypted)
    status        VARCHAR(16) NOT NULL DEFAULT 'pending',
    progress      REAL,
    response      JSONB,
    error         TEXT,
    created_by    VARCHAR(128),
    batch_id      UUID,
    group_id      UUID,
    ttl_s         INTEGER NOT NULL,
    timeout_s     INTEGER NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at    TIMESTAMPTZ NOT NULL,
    sent_at       TIMESTAMPTZ,
    acked_at      TIMESTAMPTZ,
    -- sent/ack commands without a final answer by then time out (refreshed by progress)
    deadline_at   TIMESTAMPTZ,
    completed_at  TIMESTAMPTZ,
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT commands_status CHECK (status IN
        ('pending', 'sent', 'ack', 'success', 'error', 'timeout', 'expired', 'cancelled'))
);
CREATE INDEX commands_device ON commands (device_id, created_at DESC);
CREATE INDEX commands_queued ON commands (device_id, created_at) WHERE status = 'pending';
CREATE INDEX commands_open ON commands (deadline_at) WHERE status IN ('sent', 'ack');
CREATE INDEX commands_batch ON commands (batch_id) WHERE batch_id IS NOT NULL;

-- Every transition and every answer that changed nothing (duplicate, late, foreign).
CREATE TABLE command_events (
    id          BIGSERIAL PRIMARY KEY,
    request_id  VARCHAR(64) NOT NULL REFERENCES commands (request_id) ON DELETE CASCADE,
    status      VARCHAR(24) NOT NULL,
    at          TIMESTAMPTZ NOT NULL DEFAULT now(),
    detail      JSONB
);
CREATE INDEX command_events_request ON command_events (request_id, id);

CREATE TABLE device_connectivity (
    device_id   VARCHAR(32) PRIMARY KEY,
    online      BOOLEAN NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE TABLE device_configs (
    device_id     VARCHAR(32) PRIMARY KEY,
    desired       JSONB NOT NULL DEFAULT '{}'::jsonb,   -- secrets sealed
    reported      JSONB,                              -- secrets sealed
    desired_at    TIMESTAMPTZ,
    reported_at   TIMESTAMPTZ
);

CREATE TABLE device_config_history (
    id          BIGSERIAL PRIMARY KEY,
    device_id   VARCHAR(32) NOT NULL,
    kind        VARCHAR(16) NOT NULL,   -- desired | reported
    config      JSONB NOT NULL,         -- secrets masked
    request_id  VARCHAR(64),
    actor       VARCHAR(128),
    at          TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX device_config_history_device ON device_config_history (device_id, id DESC);
