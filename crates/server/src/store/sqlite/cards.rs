//! Cards on SQLite. Dialect: the search binds the identities in chunks (SQLite limits the number
//! of bound parameters), and a failed insert names the violated index in its message.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::{FromRow, QueryBuilder};

use super::sql::backend;
use super::sql::cards::{self as sql, CARD_COLUMNS};
use super::{Db, SqliteStore};
use crate::store::{
    CardRecord, CardStore, Conflict, NewCard, StoreError, StoreResult, MAX_CHAIN_CARDS,
};

/// Identities bound per search statement (SQLite limits the number of bound parameters).
const SEARCH_CHUNK: usize = 500;

#[async_trait]
impl CardStore for SqliteStore {
    fn shared_with_other_processes(&self) -> bool {
        false
    }

    async fn publish_card(&self, card: NewCard) -> StoreResult<()> {
        let tx = sql::publish_card(self.begin().await?, card, publish_error).await?;
        tx.commit().await.map_err(backend)
    }

    async fn search_cards(
        &self,
        app_id: &str,
        identities: &[String],
    ) -> StoreResult<Vec<CardRecord>> {
        let mut seen = HashSet::new();
        let mut cards = Vec::new();
        for chunk in identities.chunks(SEARCH_CHUNK) {
            // The current cards of the identities, then their predecessors while not revoked.
            let mut query = QueryBuilder::<Db>::new(
                "WITH RECURSIVE chain (id, previous_card_id, depth) AS ( \
                   SELECT id, previous_card_id, 0 FROM cards \
                   WHERE app_id = ",
            );
            query.push_bind(app_id);
            query.push(" AND superseded_by IS NULL AND revoked = 0 AND identity IN (");
            let mut list = query.separated(", ");
            for identity in chunk {
                list.push_bind(identity);
            }
            query.push(
                ") UNION \
                   SELECT p.id, p.previous_card_id, chain.depth + 1 FROM chain \
                   JOIN cards AS p ON p.id = chain.previous_card_id \
                   WHERE p.revoked = 0 AND p.app_id = ",
            );
            query.push_bind(app_id);
            // At most MAX_CHAIN_CARDS per identity.
            query.push(format!(
                " AND chain.depth + 1 < {MAX_CHAIN_CARDS}) \
                 SELECT {CARD_COLUMNS} FROM cards WHERE id IN (SELECT id FROM chain)"
            ));
            let rows = query
                .build()
                .fetch_all(&self.reader)
                .await
                .map_err(backend)?;
            for row in &rows {
                let card = CardRecord::from_row(row).map_err(backend)?;
                if seen.insert(card.id.clone()) {
                    cards.push(card);
                }
            }
        }
        Ok(cards)
    }

    async fn get_card(&self, app_id: &str, card_id: &str) -> StoreResult<Option<CardRecord>> {
        sql::get_card(&self.reader, app_id, card_id).await
    }

    async fn revoke_card(&self, app_id: &str, card_id: &str, identity: &str) -> StoreResult<()> {
        let tx = sql::revoke_card(self.begin().await?, app_id, card_id, identity).await?;
        tx.commit().await.map_err(backend)
    }
}

/// Maps a failed card insert to the rule it broke. SQLite names the index columns in the
/// message: "UNIQUE constraint failed: cards.id" and so on.
fn publish_error(e: sqlx::Error) -> StoreError {
    let unique_violation = match &e {
        sqlx::Error::Database(d) if d.kind() == ErrorKind::UniqueViolation => Some(d.message()),
        _ => None,
    };
    match unique_violation {
        Some(message) if message.ends_with("cards.id") => {
            StoreError::Conflict(Conflict::CardIdExists)
        }
        Some(message) if message.contains("previous_card_id") => {
            StoreError::Conflict(Conflict::NotCurrentCard)
        }
        Some(_) => StoreError::Conflict(Conflict::IdentityHasCard),
        None => backend(e),
    }
}
