-- The ratchet key service (`/pfs/v3/keys`, docs/pfs.md), SQLite flavour. Keep in step with
-- ../postgres/0007_pfs.sql. Like cards, these rows carry the app id without a foreign key.
-- Only public keys, their ids and signatures are stored: the private halves never leave the
-- devices.

-- One row per identity that uploaded: the card whose key signs the long-term key, and the
-- current long-term key (NULL until one is uploaded). Writers hold the database's write lock
-- (`BEGIN IMMEDIATE`) while they read it and decide.
CREATE TABLE pfs_identities (
    app_id              TEXT    NOT NULL,
    identity            TEXT    NOT NULL,
    card_id             TEXT,
    long_term_key_id    BLOB,
    long_term_key       BLOB,
    long_term_signature BLOB,
    updated_at          INTEGER NOT NULL,
    PRIMARY KEY (app_id, identity)
);

-- One-time keys not yet handed out. `id` is the upload order: the oldest key goes first. A key
-- is handed out by deleting its row (and recording its id below) in one transaction.
CREATE TABLE pfs_one_time_keys (
    id         INTEGER PRIMARY KEY,
    app_id     TEXT    NOT NULL,
    identity   TEXT    NOT NULL,
    key_id     BLOB    NOT NULL,
    public_key BLOB    NOT NULL,
    UNIQUE (app_id, identity, key_id)
);
CREATE INDEX pfs_one_time_keys_by_identity ON pfs_one_time_keys (app_id, identity, id);

-- Ids of one-time keys that were handed out, so that an upload of the same key again is
-- refused: a one-time key is handed out at most once. Removed with the identity's keys.
CREATE TABLE pfs_used_one_time_keys (
    app_id   TEXT    NOT NULL,
    identity TEXT    NOT NULL,
    key_id   BLOB    NOT NULL,
    used_at  INTEGER NOT NULL,
    PRIMARY KEY (app_id, identity, key_id)
);
