-- Responses API answers the gateway keeps for `previous_response_id` and `GET /v1/responses/{id}`
-- (core's StoredResponse): one row per answer with its own turn only; a conversation is the chain
-- of previous_id. Readable by key_id alone. No foreign keys: a chain may outlive a deleted turn,
-- and then ends there.
CREATE TABLE responses (
    id          TEXT    PRIMARY KEY NOT NULL,
    key_id      TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    previous_id TEXT,
    upstream    TEXT,
    -- This turn's input items (a JSON array) and the response object (a JSON object), as text.
    input       TEXT    NOT NULL,
    response    TEXT    NOT NULL
);
-- Retention deletes the expired ones, oldest first.
CREATE INDEX responses_expires_at ON responses (expires_at);
