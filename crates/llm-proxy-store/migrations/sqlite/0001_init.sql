-- Virtual keys. Only the SHA-256 of a key is kept; names need not be unique.
CREATE TABLE api_keys (
    id          TEXT    PRIMARY KEY NOT NULL,
    name        TEXT    NOT NULL,
    key_hash    BLOB    NOT NULL UNIQUE,
    display     TEXT    NOT NULL,
    -- JSON array of model names; empty means every model.
    models      TEXT    NOT NULL DEFAULT '[]',
    user_name   TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    expires_at  INTEGER,
    revoked_at  INTEGER
);
-- The key ring polls for rows changed since its last look.
CREATE INDEX api_keys_updated_at ON api_keys (updated_at);

-- No foreign key on key_id: log rows outlive the keys they mention.
CREATE TABLE request_logs (
    request_id        TEXT    PRIMARY KEY NOT NULL,
    created_at        INTEGER NOT NULL,
    key_id            TEXT,
    endpoint          TEXT    NOT NULL,
    model             TEXT,
    provider          TEXT,
    upstream_model    TEXT,
    stream            INTEGER NOT NULL CHECK (stream IN (0, 1)),
    status            INTEGER NOT NULL,
    latency_ms        INTEGER NOT NULL,
    ttft_ms           INTEGER,
    prompt_tokens     INTEGER,
    completion_tokens INTEGER,
    cost_usd          REAL,
    error_kind        TEXT,
    error_message     TEXT
);
-- Keyset pagination walks these in exactly this order.
CREATE INDEX request_logs_newest ON request_logs (created_at DESC, request_id DESC);
CREATE INDEX request_logs_key ON request_logs (key_id, created_at DESC, request_id DESC);
