-- Key transparency (docs/key-transparency.md), SQLite flavour. Keep in step with
-- ../postgres/0005_kt.sql. Every table is per application (app_id first in every key).

-- AKD's tree nodes and its AZKS header, by AKD's binary record id; `data` is Sealkit's fixed
-- binary encoding of the record (crates/server/src/service/kt/storage.rs).
CREATE TABLE kt_records (
    app_id TEXT NOT NULL,
    id     BLOB NOT NULL,
    data   BLOB NOT NULL,
    PRIMARY KEY (app_id, id)
);

-- AKD's value states: one row per version of an identity's entry. `label` is the identity's
-- directory label, `node_label` the VRF-derived tree label (32 bytes value, 4 bytes length).
CREATE TABLE kt_values (
    app_id     TEXT    NOT NULL,
    label      BLOB    NOT NULL,
    epoch      INTEGER NOT NULL,
    version    INTEGER NOT NULL,
    node_label BLOB    NOT NULL,
    value      BLOB    NOT NULL,
    PRIMARY KEY (app_id, label, epoch)
);

-- The root hash of every published epoch, for signed heads and audits.
CREATE TABLE kt_roots (
    app_id    TEXT    NOT NULL,
    epoch     INTEGER NOT NULL,
    root_hash BLOB    NOT NULL,
    PRIMARY KEY (app_id, epoch)
);

-- Identities whose cards changed since their entry was last published. Written in the same
-- transaction as the card change; `seq` grows with every change, so the publisher deletes a row
-- only if no change came after it read the row.
CREATE TABLE kt_pending (
    app_id   TEXT    NOT NULL,
    identity TEXT    NOT NULL,
    seq      INTEGER NOT NULL DEFAULT 1,
    PRIMARY KEY (app_id, identity)
);

-- Cards published before key transparency existed enter the directory at the first epoch.
INSERT INTO kt_pending (app_id, identity) SELECT DISTINCT app_id, identity FROM cards;
