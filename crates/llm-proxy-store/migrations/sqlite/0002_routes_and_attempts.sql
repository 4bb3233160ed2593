-- Every upstream call a request made (retries and fallbacks): a JSON array of core's
-- AttemptRecord, oldest first. NULL when no upstream was called (and on rows older than this).
ALTER TABLE request_logs ADD COLUMN attempts TEXT;

-- Routes edited through the admin API. `config` is the JSON of core's RouteConfig, whose `name`
-- is this row's. Rows are never removed: a delete sets deleted_at (and updated_at), so every
-- instance polling by updated_at sees the removal.
CREATE TABLE routes (
    name        TEXT    PRIMARY KEY NOT NULL,
    config      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    deleted_at  INTEGER
);
-- The route table polls for rows changed since its last look.
CREATE INDEX routes_updated_at ON routes (updated_at);
