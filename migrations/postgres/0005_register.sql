-- The register's privacy (art. 9) and audit trail.
--
-- client_token: a random token shared by the cases of one client, so the
-- analysis still counts repeat complainants after names and addresses are
-- gone. anonymised_at: when personal data was removed (retention or an
-- erasure request).
ALTER TABLE cases ADD COLUMN client_token TEXT;
ALTER TABLE cases ADD COLUMN anonymised_at TEXT;
CREATE INDEX cases_client_token ON cases (client_token);

-- Who did what to the register outside a case's own timeline: access
-- requests, erasures, retention runs. Never personal data: case references
-- and counts only.
CREATE TABLE audit (
    id      BIGSERIAL PRIMARY KEY,
    at      TEXT NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL,
    cases   TEXT NOT NULL DEFAULT ''
);
