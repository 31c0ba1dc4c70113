//! The card cache: the last known card chain of every user found, so that encryption works
//! without the server. Cards are verified again when read, so a damaged row is an error and
//! never a wrong key.

use super::LocalStore;
use crate::card::{self, Card};
use crate::error::{Error, Result};
use sealkit_proto::RawSignedModel;
use sqlx::Row;
use std::collections::BTreeMap;

impl LocalStore {
    /// The cached cards of `identities`; the ones not cached are absent from the map.
    pub(crate) async fn cards(&self, identities: &[&str]) -> Result<BTreeMap<String, Card>> {
        self.card_memo
            .get_or_read(identities, |unread| async move {
                let unread: Vec<&str> = unread.iter().map(String::as_str).collect();
                self.read_cards(&unread).await
            })
            .await
    }

    /// [`LocalStore::cards`] from the file.
    async fn read_cards(&self, identities: &[&str]) -> Result<BTreeMap<String, Card>> {
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

    /// Every identity with a cached card.
    pub(crate) async fn cached_identities(&self) -> Result<Vec<String>> {
        sqlx::query_scalar("SELECT identity FROM cards WHERE owner = ?1 ORDER BY identity")
            .bind(&self.owner)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.failed(e))
    }

    /// Stores `card` (with its chain) as the card of its identity. Returns the card id that was
    /// cached before, if any.
    pub(crate) async fn put_card(&self, card: &Card, now: i64) -> Result<Option<String>> {
        Ok(self.put_cards(&[card], now).await?.pop().flatten())
    }

    /// Stores every card as [`LocalStore::put_card`] does, in one transaction: a find of 50
    /// users is one commit (one fsync), not 50. Returns the previously cached card ids, in order.
    pub(crate) async fn put_cards(&self, cards: &[&Card], now: i64) -> Result<Vec<Option<String>>> {
        let _written = self.card_memo.writing();
        let mut tx = self.pool.begin().await.map_err(|e| self.failed(e))?;
        // Take the write lock first (waiting for it, with the busy timeout): a transaction that
        // reads first and then writes fails at once with SQLITE_BUSY, without waiting, when
        // another connection wrote in between. (Not `BEGIN IMMEDIATE` through sqlx 0.8's
        // `begin_with`: cancelled after its BEGIN, it leaves the pooled connection inside the
        // transaction, where `begin` rolls a cancelled BEGIN back.)
        sqlx::query("UPDATE cards SET cached_at = cached_at WHERE 0")
            .execute(&mut *tx)
            .await
            .map_err(|e| self.failed(e))?;
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
    pub(crate) async fn remove_card(&self, identity: &str) -> Result<bool> {
        let _written = self.card_memo.writing();
        let done = sqlx::query("DELETE FROM cards WHERE owner = ?1 AND identity = ?2")
            .bind(&self.owner)
            .bind(identity)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(done.rows_affected() > 0)
    }
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
        let (_dir, alice, zoe) = super::super::tests::alice_and_zoe().await;
        let b1 = card("bob", 1, None);
        let b2 = crate::card::link(vec![card("bob", 2, Some(&b1)), b1.clone()])
            .pop()
            .unwrap();
        assert_eq!(alice.put_card(&b1, 1).await.unwrap(), None);
        assert_eq!(
            alice.put_card(&b2, 2).await.unwrap(),
            Some(b1.id().to_string())
        );
        let got = alice.cards(&["bob", "carol"]).await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got["bob"], b2);
        assert!(got["bob"].previous_card().unwrap().is_outdated());
        assert!(zoe.cards(&["bob"]).await.unwrap().is_empty());
        assert_eq!(alice.cached_identities().await.unwrap(), ["bob"]);
        assert!(alice.remove_card("bob").await.unwrap());
        assert!(!alice.remove_card("bob").await.unwrap());
        alice.put_card(&b1, 3).await.unwrap();
        let c1 = card("carol", 3, None);
        assert_eq!(
            alice.put_cards(&[&b2, &c1], 4).await.unwrap(),
            [Some(b1.id().to_string()), None]
        );
        let got = alice.cards(&["bob", "carol"]).await.unwrap();
        assert_eq!((&got["bob"], &got["carol"]), (&b2, &c1));
        alice.clear().await.unwrap();
        assert!(alice.cached_identities().await.unwrap().is_empty());
    }

    /// Concurrent finds of the same user (e.g. a chat stream checking a sender while the app
    /// looks the sender up) each read the cached id, then write: neither may fail with
    /// "database is locked" (SQLITE_BUSY, found by `examples/soak.rs`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_puts_of_one_card_do_not_fail() {
        let (_dir, alice, _zoe) = super::super::tests::alice_and_zoe().await;
        let b1 = card("bob", 1, None);
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let (alice, b1) = (alice.clone(), b1.clone());
                tokio::spawn(async move {
                    for now in 0..50 {
                        alice.put_card(&b1, now).await.unwrap();
                    }
                })
            })
            .collect();
        for writer in writers {
            writer.await.unwrap();
        }
        assert_eq!(alice.cards(&["bob"]).await.unwrap()["bob"], b1);
    }

    #[tokio::test]
    async fn damaged_rows_and_files_are_storage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cards.sqlite3");
        let store = LocalStore::open(&path, "alice").await.unwrap();
        sqlx::query("INSERT INTO cards VALUES ('alice', 'bob', 'x', '[{\"bad\":1}]', 0)")
            .execute(&store.pool)
            .await
            .unwrap();
        let err = store.cards(&["bob"]).await.unwrap_err().to_string();
        assert!(err.contains("damaged"), "{err}");
        let garbage = dir.path().join("garbage.sqlite3");
        std::fs::write(&garbage, vec![0x42u8; 8192]).unwrap();
        let err = LocalStore::open(&garbage, "alice").await.unwrap_err();
        assert!(matches!(err, Error::Storage(_)), "{err}");
    }
}
