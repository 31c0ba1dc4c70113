-- Keyknox v2 stores each pushed (meta, value) once, however many identities it is pushed for:
-- a push for 1000 identities used to write 1000 copies of up to 4 MiB. Recipients now point at
-- the blob they hold. `size` (bytes of meta and value) feeds the per-owner quota.
-- Keep in step with ../postgres/0004_hardening.sql.

CREATE TABLE keyknox_blobs (
    id       INTEGER PRIMARY KEY,
    entry_id INTEGER NOT NULL REFERENCES keyknox_entries (id) ON DELETE CASCADE,
    meta     TEXT    NOT NULL,
    value    TEXT    NOT NULL,
    size     INTEGER NOT NULL
);

-- Identical copies of one entry become one blob.
INSERT INTO keyknox_blobs (entry_id, meta, value, size)
SELECT DISTINCT entry_id, meta, value,
       length(CAST(meta AS BLOB)) + length(CAST(value AS BLOB))
FROM keyknox_copies;

CREATE TABLE keyknox_recipients (
    entry_id INTEGER NOT NULL REFERENCES keyknox_entries (id) ON DELETE CASCADE,
    identity TEXT    NOT NULL,
    blob_id  INTEGER NOT NULL REFERENCES keyknox_blobs (id) ON DELETE CASCADE,
    PRIMARY KEY (entry_id, identity)
);

INSERT INTO keyknox_recipients (entry_id, identity, blob_id)
SELECT c.entry_id, c.identity, b.id
FROM keyknox_copies AS c
JOIN keyknox_blobs AS b ON b.entry_id = c.entry_id AND b.meta = c.meta AND b.value = c.value;

DROP TABLE keyknox_copies;

CREATE INDEX keyknox_blobs_entry ON keyknox_blobs (entry_id);
CREATE INDEX keyknox_recipients_blob ON keyknox_recipients (blob_id);
-- The quota sums an owner's blobs: entries are found by (app_id, owner), a prefix of their
-- unique address.

-- Chat: creating a channel counts its creator's channels (a cap per creator).
CREATE INDEX chat_channels_creator ON chat_channels (app_id, created_by);
