-- Sealkit storage, SQLite flavour. Keep in step with ../postgres/0001_initial.sql: both backends
-- implement the same `Store` trait and pass the same conformance suite.

-- Applications (tenants). `seq` only orders rows by insertion ("oldest first" with equal
-- `created_at`); it is an alias of the rowid, so VACUUM keeps it stable.
CREATE TABLE apps (
    seq        INTEGER PRIMARY KEY,
    app_id     TEXT    NOT NULL UNIQUE,
    name       TEXT    NOT NULL,
    created_at INTEGER NOT NULL
);

-- API keys (JWT `kid`), unique across all applications.
CREATE TABLE app_keys (
    seq        INTEGER PRIMARY KEY,
    key_id     TEXT    NOT NULL UNIQUE,
    app_id     TEXT    NOT NULL REFERENCES apps (app_id),
    public_key BLOB    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
CREATE INDEX app_keys_by_app ON app_keys (app_id, created_at);

-- Per-deployment values shared by every replica (the service's card-signing key, ...).
CREATE TABLE settings (
    name  TEXT NOT NULL PRIMARY KEY,
    value BLOB NOT NULL
);

-- Cards v5. `raw` is the RawSignedModel JSON exactly as served.
CREATE TABLE cards (
    id               TEXT    NOT NULL PRIMARY KEY,
    app_id           TEXT    NOT NULL,
    identity         TEXT    NOT NULL,
    previous_card_id TEXT    REFERENCES cards (id),
    superseded_by    TEXT,
    revoked          INTEGER NOT NULL DEFAULT 0 CHECK (revoked IN (0, 1)),
    raw              BLOB    NOT NULL,
    created_at       INTEGER NOT NULL
);
-- Search by identity (any state).
CREATE INDEX cards_by_identity ON cards (app_id, identity);
-- At most one current (neither superseded nor revoked) card per identity and application: the
-- database itself decides concurrent first publishes. Revoked cards leave the index, so after
-- `unregister` (revoking the head) the identity can publish a new first card.
CREATE UNIQUE INDEX cards_one_current ON cards (app_id, identity)
    WHERE superseded_by IS NULL AND revoked = 0;
-- A card is replaced at most once (NULLs are distinct): second line of defence for concurrent
-- rotations, and the index for the predecessor foreign key.
CREATE UNIQUE INDEX cards_one_successor ON cards (previous_card_id);
