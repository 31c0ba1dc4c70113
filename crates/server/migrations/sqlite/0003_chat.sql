-- Chat (sealkit_proto::chat), SQLite flavour. Keep in step with ../postgres/0003_chat.sql. Like
-- cards, these rows carry the app id without a foreign key to `apps`.

-- Channels. `member_version` is bumped by every membership change, `last_seq` is the newest
-- message's seq: a post reads and bumps it in its write transaction, so seqs have no gaps.
CREATE TABLE chat_channels (
    app_id         TEXT    NOT NULL,
    id             TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    open           INTEGER NOT NULL CHECK (open IN (0, 1)),
    created_by     TEXT    NOT NULL,
    created_at_ms  INTEGER NOT NULL,
    member_version INTEGER NOT NULL,
    last_seq       INTEGER NOT NULL,
    PRIMARY KEY (app_id, id)
);

-- Members (admins included, flagged).
CREATE TABLE chat_members (
    app_id     TEXT    NOT NULL,
    channel_id TEXT    NOT NULL,
    identity   TEXT    NOT NULL,
    admin      INTEGER NOT NULL CHECK (admin IN (0, 1)),
    PRIMARY KEY (app_id, channel_id, identity),
    FOREIGN KEY (app_id, channel_id) REFERENCES chat_channels (app_id, id) ON DELETE CASCADE
);
-- "The channels of an identity".
CREATE INDEX chat_members_by_identity ON chat_members (app_id, identity);

-- Messages. The unique (sender, client_id) per channel makes a retried post find its stored row.
CREATE TABLE chat_messages (
    app_id         TEXT    NOT NULL,
    channel_id     TEXT    NOT NULL,
    seq            INTEGER NOT NULL,
    sender         TEXT    NOT NULL,
    client_id      TEXT    NOT NULL,
    ciphertext     BLOB    NOT NULL,
    member_version INTEGER NOT NULL,
    sent_at_ms     INTEGER NOT NULL,
    PRIMARY KEY (app_id, channel_id, seq),
    UNIQUE (app_id, channel_id, sender, client_id),
    FOREIGN KEY (app_id, channel_id) REFERENCES chat_channels (app_id, id) ON DELETE CASCADE
);
