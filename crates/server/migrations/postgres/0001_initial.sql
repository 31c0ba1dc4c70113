-- Sealkit storage, PostgreSQL flavour. Keep in step with ../sqlite/0001_initial.sql: both
-- backends implement the same `Store` trait and pass the same conformance suite.
-- Tables are created unqualified, in the first schema of the connection's search_path.

-- Applications (tenants). `seq` only orders rows by insertion ("oldest first" with equal
-- `created_at`).
CREATE TABLE apps (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    app_id     TEXT   NOT NULL UNIQUE,
    name       TEXT   NOT NULL,
    created_at BIGINT NOT NULL
);

-- API keys (JWT `kid`), unique across all applications.
CREATE TABLE app_keys (
    seq        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key_id     TEXT   NOT NULL UNIQUE,
    app_id     TEXT   NOT NULL REFERENCES apps (app_id),
    public_key BYTEA  NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX app_keys_by_app ON app_keys (app_id, created_at);

-- Per-deployment values shared by every replica (the service's card-signing key, ...).
CREATE TABLE settings (
    name  TEXT  NOT NULL PRIMARY KEY,
    value BYTEA NOT NULL
);

-- Cards v5. `raw` is the RawSignedModel JSON exactly as served.
CREATE TABLE cards (
    id               TEXT    NOT NULL PRIMARY KEY,
    app_id           TEXT    NOT NULL,
    identity         TEXT    NOT NULL,
    previous_card_id TEXT    REFERENCES cards (id),
    superseded_by    TEXT,
    revoked          BOOLEAN NOT NULL DEFAULT FALSE,
    raw              BYTEA   NOT NULL,
    created_at       BIGINT  NOT NULL
);
-- Search by identity (any state).
CREATE INDEX cards_by_identity ON cards (app_id, identity);
-- At most one current (neither superseded nor revoked) card per identity and application: the
-- database itself decides concurrent first publishes, across processes. Revoked cards leave the
-- index, so after `unregister` (revoking the head) the identity can publish a new first card.
CREATE UNIQUE INDEX cards_one_current ON cards (app_id, identity)
    WHERE superseded_by IS NULL AND NOT revoked;
-- A card is replaced at most once (NULLs are distinct): second line of defence for concurrent
-- rotations, and the index for the predecessor foreign key.
CREATE UNIQUE INDEX cards_one_successor ON cards (previous_card_id);
