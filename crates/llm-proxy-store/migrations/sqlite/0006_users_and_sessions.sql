-- People who manage the gateway (core's UserRecord) and their logins (SessionRecord). Passwords
-- are argon2id PHC strings. A session made before its user's sessions_after (a password change)
-- is void; logout sets revoked_at.
CREATE TABLE users (
    id             TEXT    PRIMARY KEY NOT NULL,
    username       TEXT    NOT NULL UNIQUE,
    role           TEXT    NOT NULL,
    password_hash  TEXT    NOT NULL,
    created_at     INTEGER  NOT NULL,
    updated_at     INTEGER  NOT NULL,
    sessions_after INTEGER  NOT NULL
);

CREATE TABLE sessions (
    id          TEXT    PRIMARY KEY NOT NULL,
    user_id     TEXT    NOT NULL,
    created_at  INTEGER  NOT NULL,
    expires_at  INTEGER  NOT NULL,
    revoked_at  INTEGER
);
-- Expired sessions are deleted oldest first.
CREATE INDEX sessions_expires_at ON sessions (expires_at);
