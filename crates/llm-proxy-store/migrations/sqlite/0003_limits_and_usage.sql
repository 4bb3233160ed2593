-- A key's own limits: the JSON of core's KeyLimits. NULL when it has none.
ALTER TABLE api_keys ADD COLUMN limits TEXT;

-- Usage detail and who asked. The token counts are NULL where the upstream did not say;
-- cost_estimated is 1 when the gateway counted the tokens itself. user_name is the key's user at
-- the time of the request.
ALTER TABLE request_logs ADD COLUMN cached_tokens INTEGER;
ALTER TABLE request_logs ADD COLUMN cache_write_tokens INTEGER;
ALTER TABLE request_logs ADD COLUMN reasoning_tokens INTEGER;
ALTER TABLE request_logs ADD COLUMN cost_estimated INTEGER NOT NULL DEFAULT 0 CHECK (cost_estimated IN (0, 1));
ALTER TABLE request_logs ADD COLUMN user_name TEXT;

-- Usage per hour, key, user, model and provider, kept by insert_logs in the transaction that
-- inserts the log rows, so that statistics never scan the log. hour_start is the hour's first
-- millisecond (UTC). The dimensions are '' rather than NULL where the request had none: NULLs are
-- never equal, so they could not be part of the key an upsert conflicts on.
CREATE TABLE usage_hourly (
    hour_start        INTEGER NOT NULL,
    key_id            TEXT    NOT NULL,
    user_name         TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    requests          INTEGER NOT NULL,
    -- Requests answered with status >= 400 (client disconnects, 499, included).
    errors            INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cached_tokens     INTEGER NOT NULL,
    cost_usd          REAL    NOT NULL,
    PRIMARY KEY (hour_start, key_id, user_name, model, provider)
) WITHOUT ROWID;
-- Statistics of one key.
CREATE INDEX usage_hourly_key ON usage_hourly (key_id, hour_start);

-- The log written before this migration, summed once (floor division, as in the store).
INSERT INTO usage_hourly
SELECT created_at - ((created_at % 3600000) + 3600000) % 3600000,
       COALESCE(key_id, ''), '', COALESCE(model, ''), COALESCE(provider, ''),
       COUNT(*), SUM(CASE WHEN status >= 400 THEN 1 ELSE 0 END),
       COALESCE(SUM(prompt_tokens), 0), COALESCE(SUM(completion_tokens), 0), 0,
       COALESCE(SUM(cost_usd), 0.0)
FROM request_logs
GROUP BY 1, 2, 3, 4, 5;
