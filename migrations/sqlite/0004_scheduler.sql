-- The scheduler's memory. One row per reminder, escalation or digest that
-- was queued, under a key that names exactly one piece of work (case, kind,
-- level, anchor date; or recipient and day): written in the transaction that
-- queues the mail, so a second pass, a restart or a second daemon finds the
-- key taken and sends nothing.
CREATE TABLE notices (
    key        TEXT PRIMARY KEY,
    case_id    INTEGER REFERENCES cases (id),
    kind       TEXT NOT NULL,
    level      INTEGER NOT NULL,
    day        TEXT NOT NULL,
    recipients TEXT NOT NULL,
    at         TEXT NOT NULL
);
CREATE INDEX notices_case ON notices (case_id);
CREATE INDEX notices_kind_day ON notices (kind, day);

-- Health of the intake and the outbox: the last success, since when it has
-- been failing, and whether the supervisors were alarmed (and when).
CREATE TABLE health (
    name          TEXT PRIMARY KEY,
    ok_at         TEXT,
    failing_since TEXT,
    last_error    TEXT,
    alarm_at      TEXT
);
