-- The per-sender limit counts recent automatic replies to one address,
-- compared case-insensitively; index exactly that expression.
DROP INDEX IF EXISTS outbox_recipient;
CREATE INDEX outbox_recipient_lower ON outbox (LOWER(recipient), created_at);
