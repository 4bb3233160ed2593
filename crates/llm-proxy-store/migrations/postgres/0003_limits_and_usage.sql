-- A key's own limits: the JSON of core's KeyLimits. NULL when it has none. TEXT rather than
-- JSONB, as for attempts: written and read whole, bytes as on SQLite.
ALTER TABLE api_keys ADD COLUMN limits TEXT;

-- Usage detail and who asked. The token counts are NULL where the upstream did not say;
-- cost_estimated is true when the gateway counted the tokens itself. user_name is the key's user
-- at the time of the request.
ALTER TABLE request_logs ADD COLUMN cached_tokens BIGINT;
ALTER TABLE request_logs ADD COLUMN cache_write_tokens BIGINT;
ALTER TABLE request_logs ADD COLUMN reasoning_tokens BIGINT;
ALTER TABLE request_logs ADD COLUMN cost_estimated BOOLEAN NOT NULL DEFAULT false;
ALTER TABLE request_logs ADD COLUMN user_name TEXT;

-- Usage per hour, key, user, model and provider, kept by insert_logs in the transaction that
-- inserts the log rows, so that statistics never scan the log. hour_start is the hour's first
-- millisecond (UTC). The dimensions are '' rather than NULL where the request had none: NULLs are
-- never equal, so they could not be part of the key an upsert conflicts on. They sort bytewise
-- ("C"), so groups come out in the same order as on SQLite.
CREATE TABLE usage_hourly (
    hour_start        BIGINT  NOT NULL,
    key_id            TEXT COLLATE "C" NOT NULL,
    user_name         TEXT COLLATE "C" NOT NULL,
    model             TEXT COLLATE "C" NOT NULL,
    provider          TEXT COLLATE "C" NOT NULL,
    requests          BIGINT  NOT NULL,
    -- Requests answered with status >= 400 (client disconnects, 499, included).
    errors            BIGINT  NOT NULL,
    prompt_tokens     BIGINT  NOT NULL,
    completion_tokens BIGINT  NOT NULL,
    cached_tokens     BIGINT  NOT NULL,
    cost_usd          DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (hour_start, key_id, user_name, model, provider)
);
-- Statistics of one key.
CREATE INDEX usage_hourly_key ON usage_hourly (key_id, hour_start);

-- The log written before this migration, summed once (floor division, as in the store).
INSERT INTO usage_hourly
SELECT created_at - ((created_at % 3600000) + 3600000) % 3600000,
       COALESCE(key_id, ''), '', COALESCE(model, ''), COALESCE(provider, ''),
       COUNT(*), COUNT(*) FILTER (WHERE status >= 400),
       COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), 0,
       COALESCE(SUM(cost_usd), 0.0)
FROM request_logs
GROUP BY 1, 2, 3, 4, 5;
