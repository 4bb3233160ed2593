-- Files and batches made through the gateway at an OpenAI-protocol provider (core's
-- UpstreamObject): which provider holds each and which key owns it. Only the owning key_id can
-- read, list or delete one; the provider is where every later call about it goes.
CREATE TABLE upstream_objects (
    id          TEXT    PRIMARY KEY NOT NULL,
    kind        TEXT    NOT NULL,
    provider    TEXT    NOT NULL,
    key_id      TEXT    NOT NULL,
    purpose     TEXT,
    created_at  INTEGER  NOT NULL,
    -- The object as the provider last described it (JSON), for lists.
    object      TEXT    NOT NULL
);
-- A key's list of one kind, newest first.
CREATE INDEX upstream_objects_owner ON upstream_objects (key_id, kind, created_at, id);
