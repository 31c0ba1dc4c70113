//! The ratchet key service's keys (`/pfs/v3/keys`): one algorithm for both backends.
//!
//! * An upload creates the identity's row if needed, reads it under the row lock, decides with
//!   [`rules::pfs_plan_upload`] and writes; the one-time key limit is counted under the same
//!   lock, so concurrent uploads of one identity (any replica) cannot pass it together.
//! * A pick hands a one-time key out by deleting its row with `DELETE … RETURNING`, choosing the
//!   oldest row that no other transaction holds (`SKIP_LOCKED`: `FOR UPDATE SKIP LOCKED` on
//!   PostgreSQL, so concurrent picks take different keys instead of queueing; nothing on SQLite,
//!   whose `BEGIN IMMEDIATE` runs picks one after another). A deleted row cannot be deleted
//!   twice, so no key is handed out twice; its id is kept as handed out in the same
//!   transaction.

use std::collections::HashSet;

use sqlx::{Executor, QueryBuilder};

use super::{backend, locked, Db, CREATE_ATTEMPTS, SKIP_LOCKED};
use crate::store::rules::{self, PfsStoredIdentity};
use crate::store::{
    Conflict, PfsKey, PfsKeyId, PfsKeySet, PfsUpload, PfsValidation, StoreError, StoreResult,
};

/// The card id recorded for an identity.
pub(crate) async fn card_id<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    identity: &str,
) -> StoreResult<Option<String>> {
    let card: Option<Option<String>> = sqlx::query_scalar(
        "SELECT card_id FROM pfs_identities WHERE app_id = $1 AND identity = $2",
    )
    .bind(app_id)
    .bind(identity)
    .fetch_optional(db)
    .await
    .map_err(backend)?;
    Ok(card.flatten())
}

/// A key id read back from the database.
fn key_id(bytes: Vec<u8>) -> StoreResult<PfsKeyId> {
    PfsKeyId::try_from(bytes.as_slice())
        .map_err(|_| StoreError::Backend(format!("a stored key id has {} bytes", bytes.len())))
}

/// The identity's row, created (empty) if missing, read under the row lock.
async fn lock_identity(
    tx: &mut sqlx::Transaction<'static, Db>,
    app_id: &str,
    identity: &str,
    now: i64,
) -> StoreResult<PfsStoredIdentity> {
    for _ in 0..CREATE_ATTEMPTS {
        sqlx::query(
            "INSERT INTO pfs_identities (app_id, identity, updated_at) VALUES ($1, $2, $3) \
             ON CONFLICT (app_id, identity) DO NOTHING",
        )
        .bind(app_id)
        .bind(identity)
        .bind(now)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
        let row: Option<(Option<String>, Option<Vec<u8>>)> = sqlx::query_as(&locked(
            "SELECT card_id, long_term_key_id FROM pfs_identities \
             WHERE app_id = $1 AND identity = $2",
        ))
        .bind(app_id)
        .bind(identity)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
        // Missing only if a concurrent delete removed the row just created: create it again.
        if let Some((card_id, long_term_key_id)) = row {
            return Ok(PfsStoredIdentity {
                card_id,
                has_long_term_key: long_term_key_id.is_some(),
            });
        }
    }
    Err(StoreError::Backend(format!(
        "ratchet keys of {identity:?} could neither be created nor locked"
    )))
}

/// The ids among `ids` that `table` holds for the identity.
async fn present_ids(
    tx: &mut sqlx::Transaction<'static, Db>,
    table: &str,
    (app_id, identity): (&str, &str),
    ids: &[PfsKeyId],
) -> StoreResult<HashSet<PfsKeyId>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut query = QueryBuilder::<Db>::new(format!("SELECT key_id FROM {table} WHERE app_id = "));
    query.push_bind(app_id);
    query.push(" AND identity = ");
    query.push_bind(identity);
    query.push(" AND key_id IN (");
    let mut list = query.separated(", ");
    for id in ids {
        list.push_bind(id.as_slice());
    }
    query.push(")");
    let found: Vec<Vec<u8>> = query
        .build_query_scalar()
        .fetch_all(&mut **tx)
        .await
        .map_err(backend)?;
    found.into_iter().map(key_id).collect()
}

/// Applies an upload in `tx` and commits (see [`PfsStore::pfs_upload`]).
///
/// [`PfsStore::pfs_upload`]: crate::store::PfsStore::pfs_upload
pub(crate) async fn upload(
    mut tx: sqlx::Transaction<'static, Db>,
    upload: PfsUpload,
) -> StoreResult<()> {
    let (app_id, identity) = (upload.app_id.as_str(), upload.identity.as_str());
    let stored = lock_identity(&mut tx, app_id, identity, upload.now).await?;
    let plan = rules::pfs_plan_upload(&stored, &upload).map_err(StoreError::Conflict)?;
    if plan.clear_keys {
        sqlx::query("DELETE FROM pfs_one_time_keys WHERE app_id = $1 AND identity = $2")
            .bind(app_id)
            .bind(identity)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "UPDATE pfs_identities SET long_term_key_id = NULL, long_term_key = NULL, \
             long_term_signature = NULL WHERE app_id = $1 AND identity = $2",
        )
        .bind(app_id)
        .bind(identity)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    sqlx::query(
        "UPDATE pfs_identities SET card_id = $3, updated_at = $4 \
         WHERE app_id = $1 AND identity = $2",
    )
    .bind(app_id)
    .bind(identity)
    .bind(&plan.card_id)
    .bind(upload.now)
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    if let Some(long_term) = &upload.long_term_key {
        sqlx::query(
            "UPDATE pfs_identities SET long_term_key_id = $3, long_term_key = $4, \
             long_term_signature = $5 WHERE app_id = $1 AND identity = $2",
        )
        .bind(app_id)
        .bind(identity)
        .bind(long_term.key.key_id.as_slice())
        .bind(&long_term.key.public_key)
        .bind(&long_term.signature)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    add_one_time_keys(&mut tx, &upload).await?;
    tx.commit().await.map_err(backend)
}

/// Adds the upload's one-time keys not stored yet, within the limit; refuses handed-out ones.
async fn add_one_time_keys(
    tx: &mut sqlx::Transaction<'static, Db>,
    upload: &PfsUpload,
) -> StoreResult<()> {
    if upload.one_time_keys.is_empty() {
        return Ok(());
    }
    let owner = (upload.app_id.as_str(), upload.identity.as_str());
    let ids: Vec<PfsKeyId> = upload.one_time_keys.iter().map(|k| k.key_id).collect();
    if !present_ids(tx, "pfs_used_one_time_keys", owner, &ids)
        .await?
        .is_empty()
    {
        return Err(StoreError::Conflict(Conflict::PfsOneTimeKeyUsed));
    }
    let stored = present_ids(tx, "pfs_one_time_keys", owner, &ids).await?;
    let new: Vec<&PfsKey> = upload
        .one_time_keys
        .iter()
        .filter(|k| !stored.contains(&k.key_id))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let unused: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM pfs_one_time_keys WHERE app_id = $1 AND identity = $2",
    )
    .bind(owner.0)
    .bind(owner.1)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    let unused = usize::try_from(unused).unwrap_or(usize::MAX);
    rules::pfs_check_one_time_count(unused.saturating_add(new.len()), upload.max_one_time_keys)
        .map_err(StoreError::Conflict)?;
    // In upload order, so the oldest key is handed out first.
    let mut query = QueryBuilder::<Db>::new(
        "INSERT INTO pfs_one_time_keys (app_id, identity, key_id, public_key) ",
    );
    query.push_values(new, |mut row, key| {
        row.push_bind(owner.0)
            .push_bind(owner.1)
            .push_bind(key.key_id.as_slice())
            .push_bind(key.public_key.as_slice());
    });
    query.build().execute(&mut **tx).await.map_err(backend)?;
    Ok(())
}

/// Which of the ids the identity's keys have, read in `tx` (one snapshot).
pub(crate) async fn validate(
    mut tx: sqlx::Transaction<'static, Db>,
    (app_id, identity): (&str, &str),
    long_term_key_id: Option<PfsKeyId>,
    one_time_key_ids: &[PfsKeyId],
) -> StoreResult<PfsValidation> {
    let stored_long_term: Option<Option<Vec<u8>>> = sqlx::query_scalar(
        "SELECT long_term_key_id FROM pfs_identities WHERE app_id = $1 AND identity = $2",
    )
    .bind(app_id)
    .bind(identity)
    .fetch_optional(&mut *tx)
    .await
    .map_err(backend)?;
    let stored_long_term = stored_long_term.flatten().map(key_id).transpose()?;
    let present = present_ids(
        &mut tx,
        "pfs_one_time_keys",
        (app_id, identity),
        one_time_key_ids,
    )
    .await?;
    tx.commit().await.map_err(backend)?;
    let mut seen = HashSet::new();
    Ok(PfsValidation {
        long_term_key_id: long_term_key_id.filter(|id| stored_long_term.as_ref() == Some(id)),
        one_time_key_ids: one_time_key_ids
            .iter()
            .filter(|id| present.contains(*id) && seen.insert(**id))
            .copied()
            .collect(),
    })
}

/// Hands out the keys of each identity in `tx` and commits (see [`PfsStore::pfs_pick`]).
///
/// [`PfsStore::pfs_pick`]: crate::store::PfsStore::pfs_pick
pub(crate) async fn pick(
    mut tx: sqlx::Transaction<'static, Db>,
    app_id: &str,
    identities: &[String],
    now: i64,
) -> StoreResult<Vec<PfsKeySet>> {
    let mut sets = Vec::with_capacity(identities.len());
    for identity in identities {
        // The keys count only while the card that signed them is the identity's current one.
        let keys: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = sqlx::query_as(
            "SELECT p.long_term_key, p.long_term_signature, c.raw \
             FROM pfs_identities AS p \
             JOIN cards AS c ON c.id = p.card_id AND c.app_id = p.app_id \
                            AND c.identity = p.identity \
             WHERE p.app_id = $1 AND p.identity = $2 AND p.long_term_key IS NOT NULL \
               AND p.long_term_signature IS NOT NULL \
               AND c.superseded_by IS NULL AND NOT c.revoked",
        )
        .bind(app_id)
        .bind(identity)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some((long_term_key, long_term_signature, card_raw)) = keys else {
            continue;
        };
        let one_time: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(&format!(
            "DELETE FROM pfs_one_time_keys WHERE id = \
               (SELECT id FROM pfs_one_time_keys WHERE app_id = $1 AND identity = $2 \
                ORDER BY id LIMIT 1{SKIP_LOCKED}) \
             RETURNING key_id, public_key"
        ))
        .bind(app_id)
        .bind(identity)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let one_time_key = match one_time {
            Some((id, public_key)) => {
                sqlx::query(
                    "INSERT INTO pfs_used_one_time_keys (app_id, identity, key_id, used_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                )
                .bind(app_id)
                .bind(identity)
                .bind(&id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                Some(public_key)
            }
            None => None,
        };
        sets.push(PfsKeySet {
            identity: identity.clone(),
            card_raw,
            long_term_key,
            long_term_signature,
            one_time_key,
        });
    }
    tx.commit().await.map_err(backend)?;
    Ok(sets)
}

/// Removes everything stored for the identity in `tx` and commits.
pub(crate) async fn delete(
    mut tx: sqlx::Transaction<'static, Db>,
    app_id: &str,
    identity: &str,
) -> StoreResult<()> {
    // The identity's row first, as an upload takes it: an upload that clears one-time keys
    // holds it while it deletes them, so taking the key rows first could deadlock with it.
    sqlx::query(&locked(
        "SELECT card_id FROM pfs_identities WHERE app_id = $1 AND identity = $2",
    ))
    .bind(app_id)
    .bind(identity)
    .fetch_optional(&mut *tx)
    .await
    .map_err(backend)?;
    for table in [
        "pfs_one_time_keys",
        "pfs_used_one_time_keys",
        "pfs_identities",
    ] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE app_id = $1 AND identity = $2"
        ))
        .bind(app_id)
        .bind(identity)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}
