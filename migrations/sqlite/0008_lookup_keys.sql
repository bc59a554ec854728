-- Issue 17: the lookups intake and the outbox make per message, indexed,
-- so their cost does not grow with the register.
-- The mailbox behind an address (lower case, no +tag, no Gmail dots:
-- EmailAddress::mailbox_key), for the limits per sender; filled by
-- klachtd for rows written before (Store::migrate), cleared with the
-- address when a case is anonymised or a mail emptied.
ALTER TABLE outbox ADD COLUMN recipient_key TEXT;
ALTER TABLE cases ADD COLUMN client_key TEXT;
CREATE INDEX outbox_recipient_key ON outbox (recipient_key, created_at);
CREATE INDEX cases_client_key ON cases (client_key, created_at);
-- The hourly count of automatic replies.
CREATE INDEX outbox_created ON outbox (created_at, kind);
-- A client's earlier token, and the handlers' open cases.
CREATE INDEX cases_client_lower ON cases (LOWER(client_email));
CREATE INDEX cases_load ON cases (status, handler_email);
-- A case's messages and mail.
CREATE INDEX case_messages_case ON case_messages (case_id);
CREATE INDEX outbox_case ON outbox (case_id);
