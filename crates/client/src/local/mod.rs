//! The SDK's local store: one SQLite file per storage directory that owns the schema and every
//! query. Other modules call its typed methods ([`cards`] for the card cache, [`groups`] for the
//! group tickets) and never see SQL.
//!
//! ```text
//! <storage_dir>/cards.sqlite3, PRAGMA user_version = 5
//! cards(owner TEXT, identity TEXT, card_id TEXT, chain TEXT, cached_at INTEGER,
//!       PRIMARY KEY (owner, identity))
//! chain = JSON array of the RawSignedModels (spec §3.1), newest first
//! groups(owner, session_id TEXT (hex), initiator TEXT, participants TEXT (JSON array))
//! group_tickets(owner, session_id, epoch INTEGER, ticket BLOB)
//! ticket = the epoch ticket encrypted for the owner's key (it holds the epoch key)
//! pins(owner, identity TEXT, keys TEXT, pinned_at INTEGER, PRIMARY KEY (owner, identity))
//! keys = JSON array of base64 SubjectPublicKeyInfo DER: the contact's verified key(s)
//! kt_servers(server TEXT PRIMARY KEY, signing_key TEXT, pinned_at INTEGER)
//! kt_heads(server TEXT, app_id TEXT, epoch INTEGER, head TEXT (JSON SignedHead),
//!          PRIMARY KEY (server, app_id))
//! own_keys(owner, public_key TEXT (base64 SPKI DER), first_seen INTEGER)
//! own_cards(owner, card_id TEXT (hex), public_key TEXT)
//! ratchet_keys(owner, key_id TEXT (hex), kind TEXT ('long_term' | 'one_time'), sealed BLOB,
//!              created_at INTEGER, retired_at INTEGER NULL, PRIMARY KEY (owner, key_id))
//! ratchet_sessions(owner, participant TEXT, name TEXT, sealed BLOB,
//!                  PRIMARY KEY (owner, participant, name))
//! ratchet_state(owner TEXT PRIMARY KEY, card_id TEXT, rotated_at INTEGER)
//! sealed = the private key DER / the serialized session, encrypted for the owner's key
//! ```
//!
//! `owner` is the identity of the [`crate::EThree`] instance, so several identities can share a
//! storage directory. The key-transparency state ([`transparency`]) belongs to the server and
//! application, not to one owner. Apart from the pins ([`pins`]), that state and the ratchet
//! channels' keys and sessions ([`ratchet`], which cannot be fetched again either), the store
//! only holds what the server or
//! Keyknox can give again (public cards, group tickets), which is why its error messages suggest
//! deleting a damaged file (at the price of verifying contacts again).

mod cards;
mod groups;
mod memo;
mod pins;
mod ratchet;
mod transparency;

pub(crate) use groups::{SealedTicket, StoredGroup};
pub(crate) use ratchet::{KeyChanges, NewRatchetKey, RatchetKeyKind, RotationState};

use crate::card::Card;
use crate::error::{Error, Result};
use sealkit_crypto::PublicKey;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// The file name of the store in the storage directory (the name predates the group tables).
pub(crate) const FILE_NAME: &str = "cards.sqlite3";

const SCHEMA_VERSION: i64 = 5;

/// The tables [`LocalStore::clear`] empties, each with an `owner` column. `pins` is not among
/// them: a verification cannot be fetched again, and outlives the key it was made with; nor are
/// the key-transparency tables (what the server is checked against, and the own past keys).
/// The ratchet tables are: their secrets are sealed for the private key being deleted.
const TABLES: [&str; 6] = [
    "cards",
    "groups",
    "group_tickets",
    "ratchet_keys",
    "ratchet_sessions",
    "ratchet_state",
];

/// The local store of one identity.
#[derive(Clone, Debug)]
pub(crate) struct LocalStore {
    pool: SqlitePool,
    owner: String,
    path: PathBuf,
    /// Cards read recently (see [`memo`]).
    card_memo: Arc<memo::ReadMemo<Card>>,
    /// Pins read recently, and the identities without one.
    pin_memo: Arc<memo::ReadMemo<Vec<PublicKey>>>,
}

impl LocalStore {
    /// Opens (creating if needed) the store at `path` for `owner`.
    pub(crate) async fn open(path: &Path, owner: &str) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The store only holds what the server or Keyknox can give again (public cards,
            // group tickets), so a power cut may lose the last commits but never corrupts the
            // file (WAL); this saves an fsync per commit.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            // A local file has no connection to lose: sqlx's ping before every query was a
            // round trip to the connection's thread for nothing.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| unopenable(path, e))?;
        let store = Self {
            pool,
            owner: owner.to_owned(),
            path: path.to_owned(),
            card_memo: Arc::new(memo::ReadMemo::new()),
            pin_memo: Arc::new(memo::ReadMemo::new()),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<()> {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| unopenable(&self.path, e))?;
        if version > SCHEMA_VERSION {
            return Err(Error::Storage(format!(
                "{} was written by a newer Sealkit (schema {version}); upgrade, or delete the file \
                 (it only holds public cards, which find_users fetches again)",
                self.path.display()
            )));
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        // One transaction for the whole schema: a new store costs one commit, and a crash in
        // the middle leaves the old version, migrated again at the next open.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| unopenable(&self.path, e))?;
        for statement in [
            "CREATE TABLE IF NOT EXISTS cards (
                owner TEXT NOT NULL,
                identity TEXT NOT NULL,
                card_id TEXT NOT NULL,
                chain TEXT NOT NULL,
                cached_at INTEGER NOT NULL,
                PRIMARY KEY (owner, identity)
            )",
            // Schema 2: group tickets (see crate::group).
            "CREATE TABLE IF NOT EXISTS groups (
                owner TEXT NOT NULL,
                session_id TEXT NOT NULL,
                initiator TEXT NOT NULL,
                participants TEXT NOT NULL,
                PRIMARY KEY (owner, session_id)
            )",
            "CREATE TABLE IF NOT EXISTS group_tickets (
                owner TEXT NOT NULL,
                session_id TEXT NOT NULL,
                epoch INTEGER NOT NULL,
                ticket BLOB NOT NULL,
                PRIMARY KEY (owner, session_id, epoch)
            )",
            // Schema 3: pinned contact keys (see crate::verify).
            "CREATE TABLE IF NOT EXISTS pins (
                owner TEXT NOT NULL,
                identity TEXT NOT NULL,
                keys TEXT NOT NULL,
                pinned_at INTEGER NOT NULL,
                PRIMARY KEY (owner, identity)
            )",
            // Schema 4: key transparency (see crate::transparency).
            "CREATE TABLE IF NOT EXISTS kt_servers (
                server TEXT NOT NULL PRIMARY KEY,
                signing_key TEXT NOT NULL,
                pinned_at INTEGER NOT NULL
            )",
            "CREATE TABLE IF NOT EXISTS kt_heads (
                server TEXT NOT NULL,
                app_id TEXT NOT NULL,
                epoch INTEGER NOT NULL,
                head TEXT NOT NULL,
                PRIMARY KEY (server, app_id)
            )",
            "CREATE TABLE IF NOT EXISTS own_keys (
                owner TEXT NOT NULL,
                public_key TEXT NOT NULL,
                first_seen INTEGER NOT NULL,
                PRIMARY KEY (owner, public_key)
            )",
            "CREATE TABLE IF NOT EXISTS own_cards (
                owner TEXT NOT NULL,
                card_id TEXT NOT NULL,
                public_key TEXT NOT NULL,
                PRIMARY KEY (owner, card_id)
            )",
            // Schema 5: ratchet channels (see crate::ratchet).
            "CREATE TABLE IF NOT EXISTS ratchet_keys (
                owner TEXT NOT NULL,
                key_id TEXT NOT NULL,
                kind TEXT NOT NULL,
                sealed BLOB NOT NULL,
                created_at INTEGER NOT NULL,
                retired_at INTEGER,
                PRIMARY KEY (owner, key_id)
            )",
            "CREATE TABLE IF NOT EXISTS ratchet_sessions (
                owner TEXT NOT NULL,
                participant TEXT NOT NULL,
                name TEXT NOT NULL,
                sealed BLOB NOT NULL,
                PRIMARY KEY (owner, participant, name)
            )",
            "CREATE TABLE IF NOT EXISTS ratchet_state (
                owner TEXT NOT NULL PRIMARY KEY,
                card_id TEXT NOT NULL,
                rotated_at INTEGER NOT NULL
            )",
        ] {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(|e| unopenable(&self.path, e))?;
        }
        sqlx::query(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .execute(&mut *tx)
            .await
            .map_err(|e| unopenable(&self.path, e))?;
        tx.commit().await.map_err(|e| unopenable(&self.path, e))?;
        Ok(())
    }

    /// Forgets what is stored for this owner with the private key: cards, groups and tickets
    /// (e3kit deletes local groups with the private key), and the ratchet keys and sessions
    /// (sealed for that key). Pins stay.
    pub(crate) async fn clear(&self) -> Result<()> {
        let _written = self.card_memo.writing();
        let mut tx = self.pool.begin().await.map_err(|e| self.failed(e))?;
        for table in TABLES {
            sqlx::query(&format!("DELETE FROM {table} WHERE owner = ?1"))
                .bind(&self.owner)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed(e))?;
        }
        tx.commit().await.map_err(|e| self.failed(e))
    }

    /// A query on an open store failed.
    fn failed(&self, e: sqlx::Error) -> Error {
        Error::storage(format!("card cache {}", self.path.display()), e)
    }
}

/// The store cannot be opened or migrated.
fn unopenable(path: &Path, e: sqlx::Error) -> Error {
    Error::Storage(format!(
        "cannot open the card cache {} ({e}); if it is damaged, delete it (it only holds public \
         cards, which find_users fetches again, and the verified contacts, which must then be \
         verified again)",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// Two owners, alice and zoe, sharing one new store file (kept while the directory lives).
    pub(super) async fn alice_and_zoe() -> (tempfile::TempDir, LocalStore, LocalStore) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let alice = LocalStore::open(&path, "alice").await.unwrap();
        let zoe = LocalStore::open(&path, "zoe").await.unwrap();
        (dir, alice, zoe)
    }
}
