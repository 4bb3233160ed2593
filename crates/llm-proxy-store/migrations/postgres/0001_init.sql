-- Virtual keys. Only the SHA-256 of a key is kept; names need not be unique.
CREATE TABLE api_keys (
    id          TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    key_hash    BYTEA   NOT NULL UNIQUE,
    display     TEXT    NOT NULL,
    -- JSON array of model names; empty means every model.
    models      TEXT    NOT NULL DEFAULT '[]',
    user_name   TEXT,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    expires_at  BIGINT,
    revoked_at  BIGINT
);
-- The key ring polls for rows changed since its last look.
CREATE INDEX api_keys_updated_at ON api_keys (updated_at);

-- No foreign key on key_id: log rows outlive the keys they mention.
-- request_id sorts bytewise ("C") so pages come out in the same order as on SQLite,
-- whatever the server's locale.
CREATE TABLE request_logs (
    request_id        TEXT COLLATE "C" PRIMARY KEY,
    created_at        BIGINT  NOT NULL,
    key_id            TEXT,
    endpoint          TEXT    NOT NULL,
    model             TEXT,
    provider          TEXT,
    upstream_model    TEXT,
    stream            BOOLEAN NOT NULL,
    status            INTEGER NOT NULL,
    latency_ms        BIGINT  NOT NULL,
    ttft_ms           BIGINT,
    prompt_tokens     BIGINT,
    completion_tokens BIGINT,
    cost_usd          DOUBLE PRECISION,
    error_kind        TEXT,
    error_message     TEXT
);
-- Keyset pagination walks these in exactly this order.
CREATE INDEX request_logs_newest ON request_logs (created_at DESC, request_id DESC);
CREATE INDEX request_logs_key ON request_logs (key_id, created_at DESC, request_id DESC);
