//! Cards: the statements that are the same on both backends. Search and the reading of a failed
//! insert's constraint stay with each backend.

use sqlx::Executor;

use super::{backend, Db};
use crate::store::{CardRecord, Conflict, Forbidden, NewCard, StoreError, StoreResult};

/// The columns of a [`CardRecord`].
pub(crate) const CARD_COLUMNS: &str =
    "id, app_id, identity, previous_card_id, superseded_by, revoked, raw, created_at";

/// One card by id, in `app_id` only.
pub(crate) async fn get_card<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    card_id: &str,
) -> StoreResult<Option<CardRecord>> {
    sqlx::query_as(&format!(
        "SELECT {CARD_COLUMNS} FROM cards WHERE id = $1 AND app_id = $2"
    ))
    .bind(card_id)
    .bind(app_id)
    .fetch_optional(db)
    .await
    .map_err(backend)
}

/// Publishes a card in `tx` (see [`CardStore::publish_card`]) and hands the transaction back
/// for the caller to commit (PostgreSQL announces the change last, just before the commit).
/// The unique indexes back the checks up against concurrent publishes; `insert_error` says
/// which rule a failed insert broke (each database names the violated index its own way).
///
/// [`CardStore::publish_card`]: crate::store::CardStore::publish_card
pub(crate) async fn publish_card(
    mut tx: sqlx::Transaction<'static, Db>,
    card: NewCard,
    insert_error: fn(sqlx::Error) -> StoreError,
) -> StoreResult<sqlx::Transaction<'static, Db>> {
    // Only for the precise message: a concurrent publish of the same id is still caught by the
    // primary key below.
    let taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM cards WHERE id = $1")
        .bind(&card.id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
    if taken.is_some() {
        return Err(StoreError::Conflict(Conflict::CardIdExists));
    }
    if let Some(previous) = &card.previous_card_id {
        // Supersede first: the new card may only become current once the old one is not. The
        // loser of two concurrent rotations updates nothing (PostgreSQL re-checks the condition
        // after the winner's commit).
        let done = sqlx::query(
            "UPDATE cards SET superseded_by = $1 \
             WHERE id = $2 AND app_id = $3 AND identity = $4 \
               AND superseded_by IS NULL AND NOT revoked",
        )
        .bind(&card.id)
        .bind(previous)
        .bind(&card.app_id)
        .bind(card.identity.as_str())
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        if done.rows_affected() != 1 {
            return Err(StoreError::Conflict(Conflict::NotCurrentCard));
        }
    }
    sqlx::query(
        "INSERT INTO cards (id, app_id, identity, previous_card_id, raw, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(&card.id)
    .bind(&card.app_id)
    .bind(card.identity.as_str())
    .bind(&card.previous_card_id)
    .bind(&card.raw)
    .bind(card.created_at)
    .execute(&mut *tx)
    .await
    .map_err(insert_error)?;
    // In the same transaction: the key-transparency directory learns of every card change.
    super::kt::mark_pending(&mut *tx, &card.app_id, card.identity.as_str()).await?;
    Ok(tx)
}

/// Revokes a card in `tx` (see [`CardStore::revoke_card`]) and hands the transaction back for
/// the caller to commit. Identity and app of a
/// card never change and revocation is final, so one conditional `UPDATE` decides; the `SELECT`
/// after a miss only tells which error it is.
///
/// [`CardStore::revoke_card`]: crate::store::CardStore::revoke_card
pub(crate) async fn revoke_card(
    mut tx: sqlx::Transaction<'static, Db>,
    app_id: &str,
    card_id: &str,
    identity: &str,
) -> StoreResult<sqlx::Transaction<'static, Db>> {
    let done = sqlx::query(
        "UPDATE cards SET revoked = TRUE WHERE id = $1 AND app_id = $2 AND identity = $3",
    )
    .bind(card_id)
    .bind(app_id)
    .bind(identity)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    if done.rows_affected() == 1 {
        // In the same transaction: the key-transparency directory learns of every card change.
        super::kt::mark_pending(&mut *tx, app_id, identity).await?;
        return Ok(tx);
    }
    let exists: Option<i32> =
        sqlx::query_scalar("SELECT 1 FROM cards WHERE id = $1 AND app_id = $2")
            .bind(card_id)
            .bind(app_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
    match exists {
        None => Err(StoreError::NotFound),
        Some(_) => Err(StoreError::Forbidden(Forbidden::CardOfAnotherIdentity)),
    }
}
