//! The ratchet channels' secrets on this device (see `crate::ratchet`): the private halves of
//! the published long-term and one-time keys, the double-ratchet sessions, and when the keys
//! were last rotated. The store keeps every secret sealed: the caller encrypts it for the
//! user's own key before saving it and decrypts it after reading it.
//!
//! Writes of keys and sessions are synced to disk before they return (`synchronous = FULL` for
//! that transaction): a session that went back to an older state after a power cut would
//! encrypt the next messages with message keys it already used.

use super::LocalStore;
use crate::error::Result;
use sqlx::Row;

/// Whether a ratchet key is the long-term key or a one-time key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RatchetKeyKind {
    LongTerm,
    OneTime,
}

impl RatchetKeyKind {
    fn as_str(self) -> &'static str {
        match self {
            Self::LongTerm => "long_term",
            Self::OneTime => "one_time",
        }
    }
}

/// A stored ratchet key without its private half.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RatchetKeyInfo {
    /// The key id (`sealkit_proto::pfs::key_id`).
    pub(crate) id: [u8; 8],
    /// When it was made (Unix seconds).
    pub(crate) created_at: i64,
    /// When a long-term key was replaced, or a one-time key was seen handed out by the key
    /// service; `None` while the key is current.
    pub(crate) retired_at: Option<i64>,
}

/// A new key to store: its id and its sealed private half.
pub(crate) struct NewRatchetKey {
    pub(crate) id: [u8; 8],
    pub(crate) kind: RatchetKeyKind,
    pub(crate) sealed: Vec<u8>,
}

/// When the keys were last rotated, and for which card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct RotationState {
    pub(crate) card_id: String,
    pub(crate) rotated_at: i64,
}

/// What one rotation changes in the store, applied in one transaction.
#[derive(Default)]
pub(crate) struct KeyChanges {
    /// Keys to forget.
    pub(crate) delete: Vec<[u8; 8]>,
    /// Keys to mark retired now.
    pub(crate) retire: Vec<[u8; 8]>,
    /// Keys to add.
    pub(crate) add: Vec<NewRatchetKey>,
}

fn hex_id(id: &[u8; 8]) -> String {
    hex::encode(id)
}

fn parse_id(text: &str) -> Option<[u8; 8]> {
    hex::decode(text).ok()?.try_into().ok()
}

impl LocalStore {
    /// The stored keys of one kind, oldest first.
    pub(crate) async fn ratchet_keys(&self, kind: RatchetKeyKind) -> Result<Vec<RatchetKeyInfo>> {
        let rows = sqlx::query(
            "SELECT key_id, created_at, retired_at FROM ratchet_keys
             WHERE owner = ?1 AND kind = ?2 ORDER BY created_at, key_id",
        )
        .bind(&self.owner)
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let id: String = row.try_get("key_id").map_err(|e| self.failed(e))?;
            let Some(id) = parse_id(&id) else {
                return Err(self.damaged("a ratchet key id is not 16 hex characters"));
            };
            out.push(RatchetKeyInfo {
                id,
                created_at: row.try_get("created_at").map_err(|e| self.failed(e))?,
                retired_at: row.try_get("retired_at").map_err(|e| self.failed(e))?,
            });
        }
        Ok(out)
    }

    /// The sealed private half of the key `id` of `kind`, if stored.
    pub(crate) async fn sealed_ratchet_key(
        &self,
        kind: RatchetKeyKind,
        id: &[u8; 8],
    ) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT sealed FROM ratchet_keys WHERE owner = ?1 AND kind = ?2 AND key_id = ?3",
        )
        .bind(&self.owner)
        .bind(kind.as_str())
        .bind(hex_id(id))
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.failed(e))
    }

    /// Applies one rotation's changes and records it, in one synced transaction.
    pub(crate) async fn apply_key_changes(
        &self,
        changes: &KeyChanges,
        now: i64,
        state: &RotationState,
    ) -> Result<()> {
        let mut conn = self.durable().await?;
        let result = async {
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(|e| self.failed(e))?;
            for id in &changes.delete {
                sqlx::query("DELETE FROM ratchet_keys WHERE owner = ?1 AND key_id = ?2")
                    .bind(&self.owner)
                    .bind(hex_id(id))
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| self.failed(e))?;
            }
            for id in &changes.retire {
                sqlx::query(
                    "UPDATE ratchet_keys SET retired_at = ?3
                     WHERE owner = ?1 AND key_id = ?2 AND retired_at IS NULL",
                )
                .bind(&self.owner)
                .bind(hex_id(id))
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed(e))?;
            }
            for key in &changes.add {
                sqlx::query(
                    "INSERT OR REPLACE INTO ratchet_keys
                     (owner, key_id, kind, sealed, created_at, retired_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, NULL)",
                )
                .bind(&self.owner)
                .bind(hex_id(&key.id))
                .bind(key.kind.as_str())
                .bind(&key.sealed)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed(e))?;
            }
            sqlx::query(
                "INSERT INTO ratchet_state (owner, card_id, rotated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (owner) DO UPDATE SET
                    card_id = excluded.card_id, rotated_at = excluded.rotated_at",
            )
            .bind(&self.owner)
            .bind(&state.card_id)
            .bind(state.rotated_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.failed(e))?;
            tx.commit().await.map_err(|e| self.failed(e))
        }
        .await;
        self.relax(&mut conn).await;
        result
    }

    /// When the keys were last rotated; `None` before the first rotation.
    pub(crate) async fn rotation_state(&self) -> Result<Option<RotationState>> {
        let row = sqlx::query("SELECT card_id, rotated_at FROM ratchet_state WHERE owner = ?1")
            .bind(&self.owner)
            .fetch_optional(&self.pool)
            .await
            .map_err(|e| self.failed(e))?;
        let Some(row) = row else { return Ok(None) };
        Ok(Some(RotationState {
            card_id: row.try_get("card_id").map_err(|e| self.failed(e))?,
            rotated_at: row.try_get("rotated_at").map_err(|e| self.failed(e))?,
        }))
    }

    /// The sealed session of the channel with `participant` named `name`, if stored.
    pub(crate) async fn sealed_session(
        &self,
        participant: &str,
        name: &str,
    ) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar(
            "SELECT sealed FROM ratchet_sessions
             WHERE owner = ?1 AND participant = ?2 AND name = ?3",
        )
        .bind(&self.owner)
        .bind(participant)
        .bind(name)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.failed(e))
    }

    /// Stores a session. With `create`, an existing session of the channel is an error
    /// (`Ok(false)`) and nothing is written; otherwise it is replaced. `used_one_time_key` is
    /// deleted in the same synced transaction (the key a joined session consumed).
    pub(crate) async fn save_session(
        &self,
        participant: &str,
        name: &str,
        sealed: &[u8],
        create: bool,
        used_one_time_key: Option<&[u8; 8]>,
    ) -> Result<bool> {
        let mut conn = self.durable().await?;
        let result = async {
            let mut tx = sqlx::Connection::begin(&mut *conn)
                .await
                .map_err(|e| self.failed(e))?;
            let statement = if create {
                "INSERT INTO ratchet_sessions (owner, participant, name, sealed)
                 VALUES (?1, ?2, ?3, ?4) ON CONFLICT (owner, participant, name) DO NOTHING"
            } else {
                "INSERT OR REPLACE INTO ratchet_sessions (owner, participant, name, sealed)
                 VALUES (?1, ?2, ?3, ?4)"
            };
            let written = sqlx::query(statement)
                .bind(&self.owner)
                .bind(participant)
                .bind(name)
                .bind(sealed)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed(e))?
                .rows_affected();
            if written == 0 {
                return Ok(false);
            }
            if let Some(id) = used_one_time_key {
                sqlx::query(
                    "DELETE FROM ratchet_keys WHERE owner = ?1 AND key_id = ?2 AND kind = ?3",
                )
                .bind(&self.owner)
                .bind(hex_id(id))
                .bind(RatchetKeyKind::OneTime.as_str())
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed(e))?;
            }
            tx.commit().await.map_err(|e| self.failed(e))?;
            Ok(true)
        }
        .await;
        self.relax(&mut conn).await;
        result
    }

    /// Forgets the session of one channel; `false` when there was none.
    pub(crate) async fn delete_session(&self, participant: &str, name: &str) -> Result<bool> {
        let done = sqlx::query(
            "DELETE FROM ratchet_sessions WHERE owner = ?1 AND participant = ?2 AND name = ?3",
        )
        .bind(&self.owner)
        .bind(participant)
        .bind(name)
        .execute(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        Ok(done.rows_affected() > 0)
    }

    /// A connection whose commits are synced to disk before they return.
    async fn durable(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Sqlite>> {
        let mut conn = self.pool.acquire().await.map_err(|e| self.failed(e))?;
        sqlx::query("PRAGMA synchronous = FULL")
            .execute(&mut *conn)
            .await
            .map_err(|e| self.failed(e))?;
        Ok(conn)
    }

    /// Back to the pool's setting (see `LocalStore::open`). If that fails the connection stays
    /// at FULL, which is only slower.
    async fn relax(&self, conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>) {
        let _slower_only = sqlx::query("PRAGMA synchronous = NORMAL")
            .execute(&mut **conn)
            .await;
    }

    fn damaged(&self, what: &str) -> crate::error::Error {
        crate::error::Error::storage(format!("card cache {}", self.path.display()), what)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::super::tests::alice_and_zoe;
    use super::*;

    #[tokio::test]
    async fn keys_sessions_and_state_per_owner() {
        let (_dir, alice, zoe) = alice_and_zoe().await;
        assert_eq!(alice.rotation_state().await.unwrap(), None);
        let changes = KeyChanges {
            add: vec![
                NewRatchetKey {
                    id: [1; 8],
                    kind: RatchetKeyKind::LongTerm,
                    sealed: vec![1],
                },
                NewRatchetKey {
                    id: [2; 8],
                    kind: RatchetKeyKind::OneTime,
                    sealed: vec![2],
                },
            ],
            ..KeyChanges::default()
        };
        let state = RotationState {
            card_id: "c".into(),
            rotated_at: 10,
        };
        alice.apply_key_changes(&changes, 10, &state).await.unwrap();
        assert_eq!(alice.rotation_state().await.unwrap(), Some(state.clone()));
        let lt = alice.ratchet_keys(RatchetKeyKind::LongTerm).await.unwrap();
        assert_eq!(
            lt,
            [RatchetKeyInfo {
                id: [1; 8],
                created_at: 10,
                retired_at: None
            }]
        );
        assert!(zoe
            .ratchet_keys(RatchetKeyKind::OneTime)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(
            alice
                .sealed_ratchet_key(RatchetKeyKind::OneTime, &[2; 8])
                .await
                .unwrap(),
            Some(vec![2])
        );
        // The wrong kind is not found.
        assert_eq!(
            alice
                .sealed_ratchet_key(RatchetKeyKind::LongTerm, &[2; 8])
                .await
                .unwrap(),
            None
        );

        let retire = KeyChanges {
            retire: vec![[1; 8]],
            delete: vec![[9; 8]],
            ..KeyChanges::default()
        };
        alice.apply_key_changes(&retire, 20, &state).await.unwrap();
        let lt = alice.ratchet_keys(RatchetKeyKind::LongTerm).await.unwrap();
        assert_eq!(lt[0].retired_at, Some(20));

        // A new session is written once; the one-time key it used goes with it.
        assert!(alice
            .save_session("bob", "default", b"s1", true, Some(&[2; 8]))
            .await
            .unwrap());
        assert!(!alice
            .save_session("bob", "default", b"s2", true, None)
            .await
            .unwrap());
        assert_eq!(
            alice.sealed_session("bob", "default").await.unwrap(),
            Some(b"s1".to_vec())
        );
        assert!(alice
            .ratchet_keys(RatchetKeyKind::OneTime)
            .await
            .unwrap()
            .is_empty());
        assert!(alice
            .save_session("bob", "default", b"s3", false, None)
            .await
            .unwrap());
        assert_eq!(
            alice.sealed_session("bob", "default").await.unwrap(),
            Some(b"s3".to_vec())
        );
        assert_eq!(zoe.sealed_session("bob", "default").await.unwrap(), None);
        assert!(alice.delete_session("bob", "default").await.unwrap());
        assert!(!alice.delete_session("bob", "default").await.unwrap());

        // clear() forgets the ratchet state too (it is sealed for the deleted key).
        alice.apply_key_changes(&changes, 30, &state).await.unwrap();
        alice.clear().await.unwrap();
        assert!(alice
            .ratchet_keys(RatchetKeyKind::LongTerm)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(alice.rotation_state().await.unwrap(), None);
    }
}
