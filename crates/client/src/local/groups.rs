//! Groups and their epoch tickets as stored on this device (see `crate::group`). The store
//! keeps the tickets sealed: the caller encrypts each one for the user's own key before
//! saving it and decrypts it after reading it.

use super::LocalStore;
use crate::error::{Error, Result};
use sqlx::Row;

/// A group's initiator and participants as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct StoredGroup {
    pub(crate) initiator: String,
    pub(crate) participants: Vec<String>,
}

/// One epoch ticket, encrypted for the owner's key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SealedTicket {
    pub(crate) epoch: u32,
    pub(crate) sealed: Vec<u8>,
}

impl LocalStore {
    /// Stores `group` under `session_id` with `tickets`, in one transaction. With
    /// `replace_tickets` the group's stored tickets are deleted first; otherwise `tickets` are
    /// added to them (replacing those of the same epochs).
    pub(crate) async fn save_group(
        &self,
        session_id: &str,
        group: &StoredGroup,
        tickets: &[SealedTicket],
        replace_tickets: bool,
    ) -> Result<()> {
        let participants = serde_json::to_string(&group.participants)
            .map_err(|e| Error::storage("cannot encode participants", e))?;
        let mut tx = self.pool.begin().await.map_err(|e| self.failed(e))?;
        if replace_tickets {
            sqlx::query("DELETE FROM group_tickets WHERE owner = ?1 AND session_id = ?2")
                .bind(&self.owner)
                .bind(session_id)
                .execute(&mut *tx)
                .await
                .map_err(|e| self.failed(e))?;
        }
        sqlx::query(
            "INSERT INTO groups (owner, session_id, initiator, participants) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (owner, session_id) DO UPDATE SET
                initiator = excluded.initiator, participants = excluded.participants",
        )
        .bind(&self.owner)
        .bind(session_id)
        .bind(&group.initiator)
        .bind(participants)
        .execute(&mut *tx)
        .await
        .map_err(|e| self.failed(e))?;
        for ticket in tickets {
            sqlx::query(
                "INSERT OR REPLACE INTO group_tickets (owner, session_id, epoch, ticket)
                 VALUES (?1, ?2, ?3, ?4)",
            )
            .bind(&self.owner)
            .bind(session_id)
            .bind(i64::from(ticket.epoch))
            .bind(&ticket.sealed)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.failed(e))?;
        }
        tx.commit().await.map_err(|e| self.failed(e))
    }

    /// The group stored under `session_id`, if any.
    pub(crate) async fn group(&self, session_id: &str) -> Result<Option<StoredGroup>> {
        let row = sqlx::query(
            "SELECT initiator, participants FROM groups WHERE owner = ?1 AND session_id = ?2",
        )
        .bind(&self.owner)
        .bind(session_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        let Some(row) = row else { return Ok(None) };
        let initiator: String = row.try_get("initiator").map_err(|e| self.failed(e))?;
        let participants: String = row.try_get("participants").map_err(|e| self.failed(e))?;
        let participants = serde_json::from_str(&participants)
            .map_err(|e| Error::storage("a stored group is damaged", e))?;
        Ok(Some(StoredGroup {
            initiator,
            participants,
        }))
    }

    /// The stored tickets of a group, oldest first: the newest `newest` of them, or with
    /// `epoch` only that one.
    pub(crate) async fn sealed_tickets(
        &self,
        session_id: &str,
        epoch: Option<u32>,
        newest: u32,
    ) -> Result<Vec<SealedTicket>> {
        let rows = sqlx::query(
            "SELECT epoch, ticket FROM group_tickets
             WHERE owner = ?1 AND session_id = ?2 AND (?3 IS NULL OR epoch = ?3)
             ORDER BY epoch DESC LIMIT ?4",
        )
        .bind(&self.owner)
        .bind(session_id)
        .bind(epoch.map(i64::from))
        .bind(i64::from(newest))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| self.failed(e))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows.into_iter().rev() {
            let epoch: i64 = row.try_get("epoch").map_err(|e| self.failed(e))?;
            out.push(SealedTicket {
                epoch: u32::try_from(epoch).unwrap_or(u32::MAX),
                sealed: row.try_get("ticket").map_err(|e| self.failed(e))?,
            });
        }
        Ok(out)
    }

    /// Forgets the group stored under `session_id` and its tickets.
    pub(crate) async fn delete_group(&self, session_id: &str) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(|e| self.failed(e))?;
        for table in ["groups", "group_tickets"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE owner = ?1 AND session_id = ?2"
            ))
            .bind(&self.owner)
            .bind(session_id)
            .execute(&mut *tx)
            .await
            .map_err(|e| self.failed(e))?;
        }
        tx.commit().await.map_err(|e| self.failed(e))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn ticket(epoch: u32) -> SealedTicket {
        SealedTicket {
            epoch,
            sealed: vec![u8::try_from(epoch).unwrap(); 4],
        }
    }

    async fn all_tickets(store: &LocalStore, session_id: &str) -> Vec<SealedTicket> {
        store.sealed_tickets(session_id, None, 50).await.unwrap()
    }

    #[tokio::test]
    async fn groups_and_tickets_per_owner() {
        let (_dir, alice, zoe) = super::super::tests::alice_and_zoe().await;
        let group = StoredGroup {
            initiator: "alice".to_owned(),
            participants: vec!["alice".to_owned(), "bob".to_owned()],
        };
        let tickets: Vec<SealedTicket> = (0..4).map(ticket).collect();
        alice
            .save_group("s1", &group, &tickets, true)
            .await
            .unwrap();
        assert_eq!(alice.group("s1").await.unwrap(), Some(group.clone()));
        assert_eq!(zoe.group("s1").await.unwrap(), None);
        // The newest two, oldest first; or one epoch.
        assert_eq!(
            alice.sealed_tickets("s1", None, 2).await.unwrap(),
            [ticket(2), ticket(3)]
        );
        assert_eq!(
            alice.sealed_tickets("s1", Some(1), 50).await.unwrap(),
            [ticket(1)]
        );
        // Adding keeps the others; replacing drops them.
        alice
            .save_group("s1", &group, &[ticket(4)], false)
            .await
            .unwrap();
        assert_eq!(all_tickets(&alice, "s1").await.len(), 5);
        alice
            .save_group("s1", &group, &[ticket(7)], true)
            .await
            .unwrap();
        assert_eq!(all_tickets(&alice, "s1").await, [ticket(7)]);
        alice.delete_group("s1").await.unwrap();
        assert_eq!(alice.group("s1").await.unwrap(), None);
        assert!(all_tickets(&alice, "s1").await.is_empty());
        // clear() forgets groups too.
        alice
            .save_group("s2", &group, &tickets, true)
            .await
            .unwrap();
        alice.clear().await.unwrap();
        assert_eq!(alice.group("s2").await.unwrap(), None);
        assert!(all_tickets(&alice, "s2").await.is_empty());
    }
}
