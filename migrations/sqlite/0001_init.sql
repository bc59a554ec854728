-- klachtd schema v1 (SQLite). Timestamps are UTC text "YYYY-MM-DDTHH:MM:SSZ",
-- dates "YYYY-MM-DD": both sort as text. Flags are integers 0/1.
CREATE TABLE cases (
    id              INTEGER PRIMARY KEY,
    reference       TEXT NOT NULL UNIQUE,
    year            INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    status          TEXT NOT NULL,
    category        TEXT NOT NULL,
    language        TEXT NOT NULL,
    source          TEXT NOT NULL,
    client_name     TEXT NOT NULL,
    client_email    TEXT,
    client_phone    TEXT,
    subject         TEXT NOT NULL,
    body            TEXT NOT NULL,
    nature          TEXT,
    dates           TEXT,
    desired_outcome TEXT,
    missing         TEXT NOT NULL,
    concerns        TEXT NOT NULL,
    handler_email   TEXT,
    received_at     TEXT NOT NULL,
    ack_sent_at     TEXT,
    ack_due         TEXT NOT NULL,
    response_due    TEXT NOT NULL,
    triage_reason   TEXT,
    created_at      TEXT NOT NULL,
    closed_at       TEXT,
    UNIQUE (year, seq)
);
CREATE INDEX cases_status ON cases (status);
CREATE INDEX cases_client ON cases (client_email);

CREATE TABLE case_counters (
    year INTEGER PRIMARY KEY,
    last INTEGER NOT NULL
);

CREATE TABLE events (
    id      INTEGER PRIMARY KEY,
    case_id INTEGER NOT NULL REFERENCES cases (id),
    at      TEXT NOT NULL,
    kind    TEXT NOT NULL,
    actor   TEXT NOT NULL,
    detail  TEXT NOT NULL DEFAULT ''
);
CREATE INDEX events_case ON events (case_id, id);

-- Every message intake has looked at, complaint or not. No content here:
-- only what is needed to never process a message twice.
CREATE TABLE inbound (
    id          INTEGER PRIMARY KEY,
    message_id  TEXT NOT NULL UNIQUE,
    folder      TEXT NOT NULL,
    uidvalidity INTEGER NOT NULL,
    uid         INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    case_id     INTEGER REFERENCES cases (id),
    at          TEXT NOT NULL
);

-- Mail that belongs to a case (the complaint itself, later replies).
CREATE TABLE case_messages (
    id          INTEGER PRIMARY KEY,
    case_id     INTEGER NOT NULL REFERENCES cases (id),
    message_id  TEXT NOT NULL UNIQUE,
    sender      TEXT NOT NULL,
    subject     TEXT NOT NULL,
    at          TEXT NOT NULL,
    body        TEXT NOT NULL,
    refs        TEXT NOT NULL DEFAULT ''
);

CREATE TABLE attachments (
    id              INTEGER PRIMARY KEY,
    case_message_id INTEGER NOT NULL REFERENCES case_messages (id),
    filename        TEXT NOT NULL,
    content_type    TEXT NOT NULL,
    size            INTEGER NOT NULL,
    data            BLOB
);

CREATE TABLE mailbox_state (
    folder      TEXT PRIMARY KEY,
    uidvalidity INTEGER NOT NULL,
    last_uid    INTEGER NOT NULL
);

-- The only way out. One recipient per row; written in the transaction that
-- changed the case, sent by the outbox worker.
CREATE TABLE outbox (
    id              INTEGER PRIMARY KEY,
    message_id      TEXT NOT NULL UNIQUE,
    case_id         INTEGER REFERENCES cases (id),
    kind            TEXT NOT NULL,
    recipient       TEXT NOT NULL,
    raw             BLOB NOT NULL,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TEXT NOT NULL,
    lease_until     TEXT,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    sent_at         TEXT,
    copied_to_sent  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX outbox_due ON outbox (status, next_attempt_at);
CREATE INDEX outbox_recipient ON outbox (recipient, created_at);
-- Exactly one acknowledgement per complaint, enforced by the database.
CREATE UNIQUE INDEX outbox_one_ack ON outbox (case_id) WHERE kind = 'ack';
