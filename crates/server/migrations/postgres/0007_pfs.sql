-- The ratchet key service (`/pfs/v3/keys`, docs/pfs.md), PostgreSQL flavour. Keep in step with
-- ../sqlite/0007_pfs.sql. Like cards, these rows carry the app id without a foreign key.
-- Only public keys, their ids and signatures are stored: the private halves never leave the
-- devices.

-- One row per identity that uploaded: the card whose key signs the long-term key, and the
-- current long-term key (NULL until one is uploaded). Uploads lock the row (`FOR UPDATE`), so
-- concurrent uploads of one identity on any replica queue on it.
CREATE TABLE pfs_identities (
    app_id              TEXT   NOT NULL,
    identity            TEXT   NOT NULL,
    card_id             TEXT,
    long_term_key_id    BYTEA,
    long_term_key       BYTEA,
    long_term_signature BYTEA,
    updated_at          BIGINT NOT NULL,
    PRIMARY KEY (app_id, identity)
);

-- One-time keys not yet handed out. `id` is the upload order: the oldest key goes first. A
-- pick deletes the row it locked with `FOR UPDATE SKIP LOCKED`, so concurrent picks on any
-- replica each take a different key and never the same one twice.
CREATE TABLE pfs_one_time_keys (
    id         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id     TEXT   NOT NULL,
    identity   TEXT   NOT NULL,
    key_id     BYTEA  NOT NULL,
    public_key BYTEA  NOT NULL,
    CONSTRAINT pfs_one_time_keys_key UNIQUE (app_id, identity, key_id)
);
CREATE INDEX pfs_one_time_keys_by_identity ON pfs_one_time_keys (app_id, identity, id);

-- Ids of one-time keys that were handed out, so that an upload of the same key again is
-- refused: a one-time key is handed out at most once. Removed with the identity's keys.
CREATE TABLE pfs_used_one_time_keys (
    app_id   TEXT   NOT NULL,
    identity TEXT   NOT NULL,
    key_id   BYTEA  NOT NULL,
    used_at  BIGINT NOT NULL,
    PRIMARY KEY (app_id, identity, key_id)
);
