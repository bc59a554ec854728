-- An attachment's data in parts of at most 256 KiB (attachments.data stays
-- NULL for new rows): writing a 9 MB attachment in one value made the
-- driver and the database hold more copies of it, the bulk of klachtd's
-- peak memory on large mail. Rows written before keep their data in
-- attachments.data.
CREATE TABLE attachment_parts (
    attachment_id BIGINT NOT NULL REFERENCES attachments (id),
    seq           INTEGER NOT NULL,
    data          BYTEA NOT NULL,
    PRIMARY KEY (attachment_id, seq)
);
