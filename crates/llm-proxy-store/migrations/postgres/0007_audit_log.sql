-- Every change made through the admin API and every login (core's AuditEntry): who, what, when,
-- from where, and the object before and after (secrets masked before they get here). Append-only:
-- the store has no statement that updates or deletes a row.
CREATE TABLE audit_log (
    id          TEXT    PRIMARY KEY NOT NULL,
    at          BIGINT  NOT NULL,
    actor       TEXT    NOT NULL,
    actor_role  TEXT    NOT NULL,
    ip          TEXT,
    action      TEXT    NOT NULL,
    target      TEXT,
    before      TEXT,
    after       TEXT
);
-- Read newest first, by cursor.
CREATE INDEX audit_log_at ON audit_log (at, id);
