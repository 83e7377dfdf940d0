-- E-mails are stored lower-cased (the service normalises them), so UNIQUE is case-insensitive.
CREATE TABLE users (
    id            UUID PRIMARY KEY DEFAULT gen_random_uuid(),
    email         VARCHAR(254) UNIQUE NOT NULL CHECK (email = lower(email)),
    password_hash TEXT NOT NULL,
    role          VARCHAR(16) NOT NULL CHECK (role IN ('admin', 'operator', 'viewer')),
    active        BOOLEAN NOT NULL DEFAULT TRUE,
    created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at    TIMESTAMPTZ NOT NULL DEFAULT now()
);
