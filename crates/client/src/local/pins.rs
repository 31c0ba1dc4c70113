//! Pinned contact keys: the public keys of a contact that the user verified by comparing
//! safety numbers (or accepted after a change). Unlike the cards, a pin cannot be fetched
//! again, so it survives [`LocalStore::clear`].

use super::LocalStore;
use crate::error::{Error, Result};
use sealkit_crypto::PublicKey;
use sqlx::Row;
use std::collections::BTreeMap;

impl LocalStore {
    /// The pinned keys of those of `identities` that have a pin.
    pub(crate) async fn pins(
        &self,
        identities: &[&str],
    ) -> Result<BTreeMap<String, Vec<PublicKey>>> {
        self.pin_memo
            .get_or_read(identities, |unread| async move {
                let unread: Vec<&str> = unread.iter().map(String::as_str).collect();
                self.read_pins(&unread).await
            })
            .await
    }

    /// [`LocalStore::pins`] from the file.
    async fn read_pins(&self, identities: &[&str]) -> Result<BTreeMap<String, Vec<PublicKey>>> {
        let list = serde_json::to_string(identities)
            .map_err(|e| Error::storage("cannot encode identities", e))?;
        let rows = sqlx::query(
            "SELECT identity, keys FROM pins
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
            let keys: String = row.try_get("keys").map_err(|e| self.failed(e))?;
            let keys = decode_keys(&keys).ok_or_else(|| {
                Error::Storage(format!(
                    "the pinned key of {identity:?} in {} is damaged: verify the safety number \
                     again (verify_safety_number)",
                    self.path.display()
                ))
            })?;
            out.insert(identity, keys);
        }
        Ok(out)
    }

    /// Pins `keys` as `identity`'s, replacing an earlier pin.
    pub(crate) async fn put_pin(&self, identity: &str, keys: &[PublicKey], now: i64) -> Result<()> {
        let _written = self.pin_memo.writing();
        let encoded: Vec<String> = keys.iter().map(PublicKey::to_base64).collect();
        let encoded = serde_json::to_string(&encoded)
            .map_err(|e| Error::storage("cannot encode a pin", e))?;
        sqlx::query(
            "INSERT INTO pins (owner, identity, keys, pinned_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (owner, identity) DO UPDATE SET
                keys = excluded.keys, pinned_at = excluded.pinned_at",
        )
        .bind(&self.owner)
        .bind(identity)
        .bind(encoded)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(())
    }

    /// Removes `identity`'s pin; `true` when there was one.
    pub(crate) async fn remove_pin(&self, identity: &str) -> Result<bool> {
        let _written = self.pin_memo.writing();
        let done = sqlx::query("DELETE FROM pins WHERE owner = ?1 AND identity = ?2")
            .bind(&self.owner)
            .bind(identity)
            .execute(&self.pool)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(done.rows_affected() > 0)
    }
}

/// The JSON array of base64 SPKI keys; `None` when any part is not one.
fn decode_keys(json: &str) -> Option<Vec<PublicKey>> {
    let encoded: Vec<String> = serde_json::from_str(json).ok()?;
    let keys = encoded
        .iter()
        .map(|k| PublicKey::import(k.as_bytes()).ok())
        .collect::<Option<Vec<_>>>()?;
    (!keys.is_empty()).then_some(keys)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sealkit_crypto::PrivateKey;

    fn key(seed: u8) -> PublicKey {
        PrivateKey::ed25519_from_seed(&[seed; 32])
            .public_key()
            .clone()
    }

    #[tokio::test]
    async fn pins_are_per_owner_replaced_and_survive_clear() {
        let (_dir, alice, zoe) = super::super::tests::alice_and_zoe().await;
        assert!(alice.pins(&["bob"]).await.unwrap().is_empty());
        alice.put_pin("bob", &[key(1)], 1).await.unwrap();
        alice.put_pin("carol", &[key(2), key(3)], 1).await.unwrap();
        let got = alice.pins(&["bob", "carol", "dave"]).await.unwrap();
        assert_eq!(got["bob"], [key(1)]);
        assert_eq!(got["carol"], [key(2), key(3)]);
        assert_eq!(got.len(), 2);
        assert!(zoe.pins(&["bob"]).await.unwrap().is_empty());
        alice.put_pin("bob", &[key(4)], 2).await.unwrap();
        assert_eq!(alice.pins(&["bob"]).await.unwrap()["bob"], [key(4)]);
        // cleanup() empties the card cache, but a verification cannot be fetched again.
        alice.clear().await.unwrap();
        assert_eq!(alice.pins(&["bob"]).await.unwrap()["bob"], [key(4)]);
        assert!(alice.remove_pin("bob").await.unwrap());
        assert!(!alice.remove_pin("bob").await.unwrap());
        assert!(alice.pins(&["bob"]).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_damaged_pin_is_a_storage_error_not_an_empty_pin() {
        let (_dir, alice, _zoe) = super::super::tests::alice_and_zoe().await;
        for bad in ["[\"not a key\"]", "[]", "{"] {
            sqlx::query("INSERT OR REPLACE INTO pins VALUES ('alice', 'bob', ?1, 0)")
                .bind(bad)
                .execute(&alice.pool)
                .await
                .unwrap();
            let err = alice.pins(&["bob"]).await.unwrap_err();
            assert!(
                matches!(&err, Error::Storage(m) if m.contains("damaged")),
                "{err}"
            );
        }
    }
}
