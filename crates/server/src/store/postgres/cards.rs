//! Cards on PostgreSQL. Dialect: the search binds all identities as one array (`= ANY($2)`),
//! a failed insert names the violated constraint, and every change is announced to the other
//! replicas (`card_changes`).

use std::collections::HashSet;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::FromRow;

use super::card_changes;
use super::sql::backend;
use super::sql::cards::{self as sql, CARD_COLUMNS};
use super::PostgresStore;
use crate::store::{
    CardChangeStream, CardRecord, CardStore, Conflict, NewCard, StoreError, StoreResult,
    MAX_CHAIN_CARDS,
};

#[async_trait]
impl CardStore for PostgresStore {
    fn shared_with_other_processes(&self) -> bool {
        true
    }

    async fn publish_card(&self, card: NewCard) -> StoreResult<()> {
        let (app_id, identity) = (card.app_id.clone(), card.identity.clone());
        let mut tx = sql::publish_card(self.begin().await?, card, publish_error).await?;
        // Delivered on commit only: the other replicas' search caches forget the identity.
        // Last, so the change counter's row is locked only for the commit.
        card_changes::notify_change(&mut tx, self, &app_id, identity.as_str()).await?;
        tx.commit().await.map_err(backend)
    }

    async fn search_cards(
        &self,
        app_id: &str,
        identities: &[String],
    ) -> StoreResult<Vec<CardRecord>> {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        // The current cards of the identities, then their predecessors while not revoked. UNION
        // (not UNION ALL) returns each card once.
        // At most MAX_CHAIN_CARDS per identity.
        let rows = sqlx::query(&format!(
            "WITH RECURSIVE chain (id, previous_card_id, depth) AS ( \
               SELECT id, previous_card_id, 0 FROM cards \
               WHERE app_id = $1 AND identity = ANY($2) \
                 AND superseded_by IS NULL AND NOT revoked \
               UNION \
               SELECT p.id, p.previous_card_id, chain.depth + 1 FROM chain \
               JOIN cards AS p ON p.id = chain.previous_card_id \
               WHERE NOT p.revoked AND p.app_id = $1 AND chain.depth + 1 < {MAX_CHAIN_CARDS} \
             ) \
             SELECT {CARD_COLUMNS} FROM cards WHERE id IN (SELECT id FROM chain)"
        ))
        .bind(app_id)
        .bind(identities)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut seen = HashSet::new();
        let mut cards = Vec::with_capacity(rows.len());
        for row in &rows {
            let card = CardRecord::from_row(row).map_err(backend)?;
            if seen.insert(card.id.clone()) {
                cards.push(card);
            }
        }
        Ok(cards)
    }

    async fn get_card(&self, app_id: &str, card_id: &str) -> StoreResult<Option<CardRecord>> {
        sql::get_card(&self.pool, app_id, card_id).await
    }

    async fn revoke_card(&self, app_id: &str, card_id: &str, identity: &str) -> StoreResult<()> {
        let mut tx = sql::revoke_card(self.begin().await?, app_id, card_id, identity).await?;
        card_changes::notify_change(&mut tx, self, app_id, identity).await?;
        tx.commit().await.map_err(backend)
    }

    async fn card_changes(&self, confirm_every: Duration) -> StoreResult<Option<CardChangeStream>> {
        card_changes::changes(self, confirm_every).await.map(Some)
    }

    async fn last_card_change(&self) -> StoreResult<u64> {
        card_changes::committed(&self.pool).await
    }
}

/// Maps a failed card insert to the rule it broke, by the violated constraint: the primary key,
/// the unique index on `previous_card_id` or the one current card per identity.
fn publish_error(e: sqlx::Error) -> StoreError {
    let unique_violation = match &e {
        sqlx::Error::Database(d) if d.kind() == ErrorKind::UniqueViolation => Some(d.constraint()),
        _ => None,
    };
    match unique_violation {
        Some(Some("cards_pkey")) => StoreError::Conflict(Conflict::CardIdExists),
        Some(Some("cards_one_successor")) => StoreError::Conflict(Conflict::NotCurrentCard),
        Some(_) => StoreError::Conflict(Conflict::IdentityHasCard),
        None => backend(e),
    }
}
