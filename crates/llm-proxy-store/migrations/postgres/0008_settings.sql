-- Settings stored in the database: the layer of the configuration's precedence edited through the
-- admin API (below flags, environment and the config file). One row per setting, its value as text.
CREATE TABLE settings (
    name        TEXT    PRIMARY KEY NOT NULL,
    value       TEXT    NOT NULL,
    updated_at  BIGINT  NOT NULL
);
