-- Notification rules, what this service knows of devices (from health's facts, for scopes),
-- and the delivery log, which is also the outbox the delivery worker sends from.

CREATE TABLE rules (
    id                    UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    name                  VARCHAR(128) NOT NULL,
    events                TEXT[] NOT NULL,
    min_severity          VARCHAR(16) NOT NULL DEFAULT 'warning',
    scope_kind            VARCHAR(8) NOT NULL DEFAULT 'all',
    group_id              TEXT,
    tag                   VARCHAR(32),
    target_kind           VARCHAR(8) NOT NULL,
    url                   TEXT,
    secret                TEXT,
    addresses             TEXT[],
    digest_minutes        INTEGER NOT NULL DEFAULT 0,
    state                 VARCHAR(8) NOT NULL DEFAULT 'active',
    paused_reason         TEXT,
    consecutive_failures  INTEGER NOT NULL DEFAULT 0,
    last_digest_at        TIMESTAMPTZ,
    created_by            VARCHAR(128),
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    CONSTRAINT rules_scope CHECK (scope_kind IN ('all', 'group', 'tag')),
    CONSTRAINT rules_target CHECK (target_kind IN ('webhook', 'email')),
    CONSTRAINT rules_state CHECK (state IN ('active', 'paused'))
);

CREATE TABLE devices (
    device_id   VARCHAR(32) PRIMARY KEY,
    group_id    TEXT,
    tags        TEXT[] NOT NULL DEFAULT '{}',
    updated_at  TIMESTAMPTZ NOT NULL
);

-- status: pending (due at next_attempt_at), sending (claimed until lease_until), delivered,
-- failed (gave up), cancelled (flapping: the device came back in time), bundled (in a digest).
CREATE TABLE deliveries (
    id               UUID PRIMARY KEY,
    rule_id          UUID NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    fact_seq         BIGINT,
    event            VARCHAR(32) NOT NULL,
    device_id        VARCHAR(32),
    occurred_at      TIMESTAMPTZ NOT NULL,
    data             JSONB NOT NULL,
    status           VARCHAR(16) NOT NULL DEFAULT 'pending',
    attempts         INTEGER NOT NULL DEFAULT 0,
    last_error       TEXT,
    next_attempt_at  TIMESTAMPTZ NOT NULL,
    lease_until      TIMESTAMPTZ,
    digest_id        UUID,
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    delivered_at     TIMESTAMPTZ,
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- One delivery per rule and fact: a redelivered fact inserts nothing.
    CONSTRAINT deliveries_once UNIQUE (rule_id, fact_seq),
    CONSTRAINT deliveries_status CHECK (status IN
        ('pending', 'sending', 'delivered', 'failed', 'cancelled', 'bundled'))
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX deliveries_rule ON deliveries (rule_id, created_at DESC);
CREATE INDEX deliveries_device ON deliveries (device_id, rule_id, created_at DESC)
    WHERE event IN ('device_offline', 'device_online');
