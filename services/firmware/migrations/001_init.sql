-- Firmware versions (the seed's firmware_versions, plus what the image says about itself).
CREATE TABLE firmware_versions (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    version TEXT UNIQUE NOT NULL CHECK (length(version) <= 64),
    sort_key TEXT COLLATE "C" NOT NULL,      -- semantic-version precedence (semver.py)
    filename TEXT NOT NULL,
    file_size BIGINT NOT NULL,
    checksum TEXT NOT NULL,                  -- SHA-256 hex, also the storage key
    file_path TEXT NOT NULL,
    release_notes TEXT,
    hardware TEXT,                           -- null: every hardware
    mandatory BOOLEAN NOT NULL DEFAULT FALSE,
    active BOOLEAN NOT NULL DEFAULT TRUE,
    project_name TEXT,
    idf_version TEXT,
    build_time TEXT,
    app_version TEXT,                        -- the version inside the image
    uploaded_by TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX firmware_versions_order ON firmware_versions (sort_key DESC) WHERE active;
CREATE INDEX firmware_versions_checksum ON firmware_versions (checksum);

-- What firmware knows of devices, kept from facts (DeviceRegistered, HeartbeatReceived, ...).
CREATE TABLE known_devices (
    device_id TEXT PRIMARY KEY,
    hardware TEXT,
    firmware_version TEXT,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE rollouts (
    id UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    version TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('running', 'paused', 'completed', 'cancelled')),
    stages JSONB NOT NULL,                   -- cumulative targets, e.g. [5, 25, 100]
    stage_unit TEXT NOT NULL CHECK (stage_unit IN ('percent', 'count')),
    current_stage INTEGER NOT NULL DEFAULT 0,
    max_concurrent INTEGER NOT NULL,
    failure_threshold DOUBLE PRECISION NOT NULL,
    failure_baseline INTEGER NOT NULL DEFAULT 0,  -- failures accepted by a resume
    device_timeout_s DOUBLE PRECISION NOT NULL,
    reason TEXT,
    group_id TEXT,
    created_by TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX rollouts_active ON rollouts (state) WHERE state IN ('running', 'paused');
CREATE INDEX rollouts_version ON rollouts (version);

CREATE TABLE rollout_devices (
    rollout_id UUID NOT NULL REFERENCES rollouts (id) ON DELETE CASCADE,
    device_id TEXT NOT NULL,
    position INTEGER NOT NULL,
    stage INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('queued', 'sent', 'downloading', 'rebooting',
        'succeeded', 'failed', 'rolled_back', 'timed_out')),
    request_id TEXT,
    progress DOUBLE PRECISION,
    bytes_downloaded BIGINT NOT NULL DEFAULT 0,
    old_version TEXT,
    error TEXT,
    sent_at TIMESTAMPTZ,
    rebooting_at TIMESTAMPTZ,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    PRIMARY KEY (rollout_id, device_id)
);
CREATE INDEX rollout_devices_device ON rollout_devices (device_id)
    WHERE state IN ('queued', 'sent', 'downloading', 'rebooting');
CREATE INDEX rollout_devices_request ON rollout_devices (request_id);

CREATE TABLE downloads (
    id BIGSERIAL PRIMARY KEY,
    device_id TEXT,
    version TEXT NOT NULL,
    range_start BIGINT NOT NULL,
    range_end BIGINT NOT NULL,
    bytes BIGINT NOT NULL,
    at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX downloads_device ON downloads (device_id, at DESC);
