//! The local card cache: the last known card chain of every user found, in SQLite, so that
//! encryption works without the server.
//!
//! ```text
//! <storage_dir>/cards.sqlite3, PRAGMA user_version = 2
//! cards(owner TEXT, identity TEXT, card_id TEXT, chain TEXT, cached_at INTEGER,
//!       PRIMARY KEY (owner, identity))
//! chain = JSON array of the RawSignedModels (spec §3.1), newest first
//! groups(owner, session_id TEXT (hex), initiator TEXT, participants TEXT (JSON array))
//! group_tickets(owner, session_id, epoch INTEGER, ticket BLOB)
//! ticket = the epoch ticket encrypted for the owner's key (it holds the epoch key)
//! ```
//!
//! `owner` is the identity of the [`crate::EThree`] instance, so several identities can share a
//! storage directory. Cards are verified again when read, so a damaged row is an error and never
//! a wrong key.

use crate::card::{self, Card};
use crate::error::{Error, Result};
use sealkit_proto::RawSignedModel;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::Row;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

const SCHEMA_VERSION: i64 = 2;

/// The card cache of one identity.
#[derive(Clone, Debug)]
pub(crate) struct CardCache {
    pub(crate) pool: SqlitePool,
    pub(crate) owner: String,
    pub(crate) path: PathBuf,
}

impl CardCache {
    /// Opens (creating if needed) the cache at `path` for `owner`.
    pub(crate) async fn open(path: &Path, owner: &str) -> Result<Self> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // The cache only holds what the server or Keyknox can give again (public cards,
            // group tickets), so a power cut may lose the last commits but never corrupts the
            // file (WAL); this saves an fsync per commit.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .map_err(|e| corrupt(path, e))?;
        let cache = Self {
            pool,
            owner: owner.to_owned(),
            path: path.to_owned(),
        };
        cache.migrate().await?;
        Ok(cache)
    }

    async fn migrate(&self) -> Result<()> {
        let version: i64 = sqlx::query_scalar("PRAGMA user_version")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| corrupt(&self.path, e))?;
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
        // One transaction for the whole schema: a new cache costs one commit, and a crash in
        // the middle leaves the old version, migrated again at the next open.
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| corrupt(&self.path, e))?;
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
        ] {
            sqlx::query(statement)
                .execute(&mut *tx)
                .await
                .map_err(|e| corrupt(&self.path, e))?;
        }
        sqlx::query(&format!("PRAGMA user_version = {SCHEMA_VERSION}"))
            .execute(&mut *tx)
            .await
            .map_err(|e| corrupt(&self.path, e))?;
        tx.commit().await.map_err(|e| corrupt(&self.path, e))?;
        Ok(())
    }

    /// The cached cards of `identities`; the ones not cached are absent from the map.
    pub(crate) async fn get(&self, identities: &[&str]) -> Result<BTreeMap<String, Card>> {
        let list = serde_json::to_string(identities)
            .map_err(|e| Error::storage("cannot encode identities", e))?;
        let rows = sqlx::query(
            "SELECT identity, chain FROM cards
             WHERE owner = ?1 AND identity IN (SELECT value FROM json_each(?2))",
        )
        .bind(&self.owner)
        .bind(list)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        let mut out = BTreeMap::new();
        for row in rows {
            let identity: String = row.try_get("identity").map_err(|e| self.failed(e))?;
            let chain: String = row.try_get("chain").map_err(|e| self.failed(e))?;
            let raw: Vec<RawSignedModel> = serde_json::from_str(&chain).map_err(|e| {
                Error::Storage(format!(
                    "the cached card of {identity:?} in {} is damaged ({e}); call \
                     update_cached_users() or find_users() to fetch it again",
                    self.path.display()
                ))
            })?;
            let card = card::from_chain(&identity, raw)?;
            out.insert(identity, card);
        }
        Ok(out)
    }

    /// Every cached identity.
    pub(crate) async fn identities(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT identity FROM cards WHERE owner = ?1 ORDER BY identity")
            .bind(&self.owner)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.failed(e))
    }

    /// Stores `card` (with its chain) as the card of its identity. Returns the card id that was
    /// cached before, if any.
    pub(crate) async fn put(&self, card: &Card, now: i64) -> Result<Option<String>> {
        Ok(self.put_many(&[card], now).await?.pop().flatten())
    }

    /// Stores every card as [`CardCache::put`] does, in one transaction: a find of 50 users is
    /// one commit (one fsync), not 50. Returns the previously cached card ids, in order.
    pub(crate) async fn put_many(&self, cards: &[&Card], now: i64) -> Result<Vec<Option<String>>> {
        let mut tx = self.pool.begin().await.map_err(|e| self.failed(e))?;
        let mut before_ids = Vec::with_capacity(cards.len());
        for card in cards {
            let chain = serde_json::to_string(&card.raw_chain())
                .map_err(|e| Error::storage("cannot encode a card", e))?;
            let before: Option<String> =
                sqlx::query_scalar("SELECT card_id FROM cards WHERE owner = ?1 AND identity = ?2")
                    .bind(&self.owner)
                    .bind(card.identity())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(|e| self.failed(e))?;
            sqlx::query(
                "INSERT INTO cards (owner, identity, card_id, chain, cached_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (owner, identity) DO UPDATE SET
                    card_id = excluded.card_id, chain = excluded.chain,
                    cached_at = excluded.cached_at",
            )
            .bind(&self.owner)
            .bind(card.identity())
            .bind(card.id().to_string())
            .bind(chain)
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.failed(e))?;
            before_ids.push(before);
        }
        tx.commit().await.map_err(|e| self.failed(e))?;
        Ok(before_ids)
    }

    /// Forgets `identity`'s card; `true` when one was cached.
    pub(crate) async fn remove(&self, identity: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM cards WHERE owner = ?1 AND identity = ?2")
            .bind(&self.owner)
            .bind(identity)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(done.rows_affected() > 0)
    }

    /// Forgets every card cached for this owner, and its groups (e3kit deletes local groups
    /// with the private key).
    pub(crate) async fn clear(&self) -> Result<()> {
        for table in ["cards", "groups", "group_tickets"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE owner = ?1"))
                .bind(&self.owner)
                .execute(&self.pool)
                .await
                .map_err(|e| self.failed(e))?;
        }
        Ok(())
    }

    pub(crate) fn failed(&self, e: sqlx::Error) -> Error {
        Error::storage(format!("card cache {}", self.path.display()), e)
    }
}

fn corrupt(path: &Path, e: sqlx::Error) -> Error {
    Error::Storage(format!(
        "cannot open the card cache {} ({e}); if it is damaged, delete it (it only holds public \
         cards, which find_users fetches again)",
        path.display()
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sealkit_crypto::PrivateKey;
    use sealkit_proto::CardContent;

    fn card(identity: &str, seed: u8, previous: Option<&Card>) -> Card {
        let key = PrivateKey::ed25519_from_seed(&[seed; 32]);
        let content = CardContent {
            identity: identity.to_owned(),
            previous_card_id: previous.map(|p| p.id().to_string()),
            created_at: 100 + i64::from(seed),
            version: "5.0".to_owned(),
            public_key: key.public_key().to_base64(),
        };
        Card::from_raw(RawSignedModel::from_content(&content, &key).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn put_get_replace_remove_per_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cards.sqlite3");
        let alice = CardCache::open(&path, "alice").await.unwrap();
        let zoe = CardCache::open(&path, "zoe").await.unwrap();
        let b1 = card("bob", 1, None);
        let b2 = crate::card::link(vec![card("bob", 2, Some(&b1)), b1.clone()])
            .pop()
            .unwrap();
        assert_eq!(alice.put(&b1, 1).await.unwrap(), None);
        assert_eq!(alice.put(&b2, 2).await.unwrap(), Some(b1.id().to_string()));
        let got = alice.get(&["bob", "carol"]).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got["bob"], b2);
        assert!(got["bob"].previous_card().unwrap().is_outdated());
        assert!(zoe.get(&["bob"]).await.unwrap().is_empty());
        assert_eq!(alice.identities().await.unwrap(), ["bob"]);
        assert!(alice.remove("bob").await.unwrap());
        assert!(!alice.remove("bob").await.unwrap());
        alice.put(&b1, 3).await.unwrap();
        let c1 = card("carol", 3, None);
        assert_eq!(
            alice.put_many(&[&b2, &c1], 4).await.unwrap(),
            [Some(b1.id().to_string()), None]
        );
        let got = alice.get(&["bob", "carol"]).await.unwrap();
        assert_eq!((&got["bob"], &got["carol"]), (&b2, &c1));
        alice.clear().await.unwrap();
        assert!(alice.identities().await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn damaged_rows_and_files_are_storage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cards.sqlite3");
        let cache = CardCache::open(&path, "alice").await.unwrap();
        sqlx::query("INSERT INTO cards VALUES ('alice', 'bob', 'x', '[{\"bad\":1}]', 0)")
            .execute(&cache.pool)
            .await
            .unwrap();
        let err = cache.get(&["bob"]).await.unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
        let garbage = dir.path().join("garbage.sqlite3");
        std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
        let err = CardCache::open(&garbage, "alice").await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err}");
    }
}
