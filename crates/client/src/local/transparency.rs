//! Key-transparency state (see `crate::transparency`): the deployment's pinned KT signing key
//! and the newest signed head this storage directory accepted, per server and application; and
//! the public keys and cards this device made for its own identity, which self-monitoring
//! compares the identity's key history with. None of it can be fetched again (it is what the
//! server is checked against), so [`LocalStore::clear`] keeps it.

use super::LocalStore;
use crate::error::{Error, Result};
use sealkit_crypto::PublicKey;
use sealkit_proto::kt::SignedHead;
use sqlx::Row;

impl LocalStore {
    /// The KT signing key pinned for `server` (base64 of the 32 raw bytes), if any.
    pub(crate) async fn kt_signing_key(&self, server: &str) -> Result<Option<String>> {
        sqlx::query_scalar("SELECT signing_key FROM kt_servers WHERE server = ?1")
            .bind(server)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failed(e))
    }

    /// Pins `key` as `server`'s KT signing key; a key pinned before stays (first use wins).
    pub(crate) async fn pin_kt_signing_key(&self, server: &str, key: &str, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO kt_servers (server, signing_key, pinned_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (server) DO NOTHING",
        )
        .bind(server)
        .bind(key)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// The newest head accepted for `app_id` on `server`.
    pub(crate) async fn kt_head(&self, server: &str, app_id: &str) -> Result<Option<SignedHead>> {
        let row: Option<String> =
            sqlx::query_scalar("SELECT head FROM kt_heads WHERE server = ?1 AND app_id = ?2")
                .bind(server)
                .bind(app_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(|e| self.failed(e))?;
        row.map(|text| {
            serde_json::from_str(&text).map_err(|e| {
                Error::Storage(format!(
                    "the stored key-directory head of {server} in {} is damaged ({e}); without \
                     it, the server's directory cannot be checked for rollbacks",
                    self.path.display()
                ))
            })
        })
        .transpose()
    }

    /// Stores `head` as the newest accepted head, unless a newer one was stored meanwhile
    /// (another process sharing the directory).
    pub(crate) async fn put_kt_head(&self, server: &str, head: &SignedHead) -> Result<()> {
        let text = serde_json::to_string(head)
            .map_err(|e| Error::storage("cannot encode a signed head", e))?;
        let epoch = i64::try_from(head.epoch).unwrap_or(i64::MAX);
        sqlx::query(
            "INSERT INTO kt_heads (server, app_id, epoch, head) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (server, app_id) DO UPDATE SET epoch = excluded.epoch, head = excluded.head
             WHERE excluded.epoch >= kt_heads.epoch",
        )
        .bind(server)
        .bind(&head.app_id)
        .bind(epoch)
        .bind(text)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// Remembers `key` as a key this device holds or held for its identity.
    pub(crate) async fn add_own_key(&self, key: &PublicKey, now: i64) -> Result<()> {
        sqlx::query(
            "INSERT INTO own_keys (owner, public_key, first_seen) VALUES (?1, ?2, ?3)
             ON CONFLICT (owner, public_key) DO NOTHING",
        )
        .bind(&self.owner)
        .bind(key.to_base64())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// Every key this device holds or held for its identity.
    pub(crate) async fn own_keys(&self) -> Result<Vec<PublicKey>> {
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT public_key FROM own_keys WHERE owner = ?1 ORDER BY first_seen",
        )
        .bind(&self.owner)
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        rows.iter()
            .map(|k| {
                PublicKey::import(k.as_bytes()).map_err(|e| {
                    Error::Storage(format!(
                        "a stored own public key in {} is damaged: {e}",
                        self.path.display()
                    ))
                })
            })
            .collect()
    }

    /// Remembers the card `card_id` (64 hex characters) as one made by a key of this device.
    pub(crate) async fn add_own_card(&self, card_id: &str, key: &PublicKey) -> Result<()> {
        sqlx::query(
            "INSERT INTO own_cards (owner, card_id, public_key) VALUES (?1, ?2, ?3)
             ON CONFLICT (owner, card_id) DO NOTHING",
        )
        .bind(&self.owner)
        .bind(card_id)
        .bind(key.to_base64())
        .execute(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// The cards made by keys of this device: (card id, public key).
    pub(crate) async fn own_cards(&self) -> Result<Vec<(String, PublicKey)>> {
        let rows = sqlx::query("SELECT card_id, public_key FROM own_cards WHERE owner = ?1")
            .bind(&self.owner)
            .fetch_all(&self.pool)
            .await
            .map_err(|e| self.failed(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("card_id").map_err(|e| self.failed(e))?;
            let key: String = row.try_get("public_key").map_err(|e| self.failed(e))?;
            let key = PublicKey::import(key.as_bytes()).map_err(|e| {
                Error::Storage(format!(
                    "a stored own card key in {} is damaged: {e}",
                    self.path.display()
                ))
            })?;
            out.push((id, key));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sealkit_crypto::PrivateKey;

    fn head(app: &str, epoch: u64) -> SignedHead {
        SignedHead {
            app_id: app.into(),
            epoch,
            root_hash: format!("{epoch:02x}"),
            vrf_public_key: "00".into(),
            signature: "AA==".into(),
        }
    }

    #[tokio::test]
    async fn heads_only_move_forward_and_survive_clear() {
        let (_dir, alice, zoe) = super::super::tests::alice_and_zoe().await;
        let server = "http://s";
        assert!(alice.kt_head(server, "app").await.unwrap().is_none());
        alice.put_kt_head(server, &head("app", 5)).await.unwrap();
        // Shared by every identity of the directory: the head is the server's, not a user's.
        assert_eq!(
            zoe.kt_head(server, "app").await.unwrap(),
            Some(head("app", 5))
        );
        alice.put_kt_head(server, &head("app", 3)).await.unwrap();
        assert_eq!(
            alice.kt_head(server, "app").await.unwrap().unwrap().epoch,
            5
        );
        alice.put_kt_head(server, &head("app", 7)).await.unwrap();
        alice.clear().await.unwrap();
        assert_eq!(
            alice.kt_head(server, "app").await.unwrap().unwrap().epoch,
            7
        );
        assert!(alice.kt_head(server, "other").await.unwrap().is_none());
        assert!(alice.kt_head("http://t", "app").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn the_first_signing_key_stays_pinned() {
        let (_dir, alice, _zoe) = super::super::tests::alice_and_zoe().await;
        assert_eq!(alice.kt_signing_key("http://s").await.unwrap(), None);
        alice
            .pin_kt_signing_key("http://s", "AAAA", 1)
            .await
            .unwrap();
        alice
            .pin_kt_signing_key("http://s", "BBBB", 2)
            .await
            .unwrap();
        assert_eq!(
            alice.kt_signing_key("http://s").await.unwrap().as_deref(),
            Some("AAAA")
        );
    }

    #[tokio::test]
    async fn own_keys_and_cards_are_per_owner() {
        let (_dir, alice, zoe) = super::super::tests::alice_and_zoe().await;
        let k1 = PrivateKey::ed25519_from_seed(&[1; 32]).public_key().clone();
        let k2 = PrivateKey::ed25519_from_seed(&[2; 32]).public_key().clone();
        alice.add_own_key(&k1, 1).await.unwrap();
        alice.add_own_key(&k2, 2).await.unwrap();
        alice.add_own_key(&k1, 3).await.unwrap();
        assert_eq!(alice.own_keys().await.unwrap(), [k1.clone(), k2.clone()]);
        assert!(zoe.own_keys().await.unwrap().is_empty());
        alice.add_own_card(&"ab".repeat(32), &k1).await.unwrap();
        alice.clear().await.unwrap();
        assert_eq!(alice.own_cards().await.unwrap(), [("ab".repeat(32), k1)]);
        assert!(zoe.own_cards().await.unwrap().is_empty());
    }
}
