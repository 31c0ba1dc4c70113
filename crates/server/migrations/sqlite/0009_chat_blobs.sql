-- Chat attachments (sealkit_proto::chat::paths::blobs), SQLite flavour. Keep in step with
-- ../postgres/0009_chat_blobs.sql. A blob is the ciphertext of one encrypted file, opaque to the
-- server, stored as numbered chunks so that neither an upload nor a download holds it whole in
-- memory, and so that every replica of a PostgreSQL deployment sees it (no local files).
CREATE TABLE chat_blobs (
    app_id        TEXT    NOT NULL,
    -- 32 lowercase hex digits, random, chosen by the server.
    id            TEXT    NOT NULL,
    channel_id    TEXT    NOT NULL,
    uploader      TEXT    NOT NULL,
    -- Bytes in its chunks so far (all of it once complete).
    size          INTEGER NOT NULL DEFAULT 0,
    -- Chunks so far; the next chunk's index.
    chunks        INTEGER NOT NULL DEFAULT 0,
    complete      INTEGER NOT NULL DEFAULT 0 CHECK (complete IN (0, 1)),
    -- The message that names it; NULL until one does (then garbage after a grace period).
    message_seq   INTEGER,
    created_at_ms INTEGER NOT NULL,
    PRIMARY KEY (app_id, id),
    FOREIGN KEY (app_id, channel_id) REFERENCES chat_channels (app_id, id) ON DELETE CASCADE
);
CREATE INDEX chat_blobs_of_message ON chat_blobs (app_id, channel_id, message_seq);
CREATE INDEX chat_blobs_unreferenced ON chat_blobs (created_at_ms) WHERE message_seq IS NULL;

CREATE TABLE chat_blob_chunks (
    app_id  TEXT    NOT NULL,
    blob_id TEXT    NOT NULL,
    idx     INTEGER NOT NULL,
    data    BLOB    NOT NULL,
    PRIMARY KEY (app_id, blob_id, idx),
    FOREIGN KEY (app_id, blob_id) REFERENCES chat_blobs (app_id, id) ON DELETE CASCADE
);

-- Bytes of blobs (complete or not) per application, against its quota: one row per
-- application, changed by one conditional UPDATE per chunk, so concurrent uploads on any
-- replica never take it over the quota together.
CREATE TABLE chat_blob_usage (
    app_id TEXT    NOT NULL PRIMARY KEY,
    used   INTEGER NOT NULL
);
