-- Messages committed with a state change, published to JetStream by the relay
-- (libs/common/outbox.py) and deleted once JetStream acked them.
CREATE TABLE outbox (
    id         BIGSERIAL PRIMARY KEY,
    subject    TEXT NOT NULL,
    payload    BYTEA NOT NULL,
    msg_id     TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
