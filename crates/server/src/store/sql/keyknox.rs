//! Keyknox: the compare-and-swap writes and the reads that are the same on both backends. How a
//! push writes its copies, how a pull reads holders in one snapshot and how a reset deletes
//! stay with each backend.

use sqlx::Executor;

use super::{backend, locked, Conn, Db, CREATE_ATTEMPTS};
use crate::store::{
    rules, Conflict, KeyknoxV1, KeyknoxV2Copy, KeyknoxV2Push, StoreError, StoreResult,
};

const V1_SELECT: &str =
    "SELECT meta, value, version, hash FROM keyknox_v1 WHERE app_id = $1 AND identity = $2";

/// The v1 blob of an identity.
pub(crate) async fn v1_get<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    identity: &str,
) -> StoreResult<Option<KeyknoxV1>> {
    sqlx::query_as(V1_SELECT)
        .bind(app_id)
        .bind(identity)
        .fetch_optional(db)
        .await
        .map_err(backend)
}

/// Writes the v1 blob in `tx` and commits: the stored blob is read under the row lock and
/// compared ([`rules::keyknox_v1_next_version`]) before it is replaced or created.
pub(crate) async fn v1_put(
    mut tx: sqlx::Transaction<'static, Db>,
    address: (&str, &str),
    meta: &str,
    value: &str,
    previous_hash: Option<&str>,
    new_hash: &str,
) -> StoreResult<KeyknoxV1> {
    let (app_id, identity) = address;
    for _ in 0..CREATE_ATTEMPTS {
        let stored: Option<KeyknoxV1> = sqlx::query_as(&locked(V1_SELECT))
            .bind(app_id)
            .bind(identity)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        let version = rules::keyknox_v1_next_version(stored.as_ref(), previous_hash)
            .map_err(StoreError::Conflict)?;
        // Both statements take the same parameters: the row's address, then its new content.
        let statement = if stored.is_some() {
            "UPDATE keyknox_v1 SET meta = $3, value = $4, version = $5, hash = $6 \
             WHERE app_id = $1 AND identity = $2"
        } else {
            "INSERT INTO keyknox_v1 (app_id, identity, meta, value, version, hash) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (app_id, identity) DO NOTHING"
        };
        let written = sqlx::query(statement)
            .bind(app_id)
            .bind(identity)
            .bind(meta)
            .bind(value)
            .bind(version)
            .bind(new_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        // The locked row is updated; a creation race lost (only on PostgreSQL) inserts nothing.
        if written.rows_affected() == 1 {
            tx.commit().await.map_err(backend)?;
            return Ok(KeyknoxV1 {
                meta: meta.to_owned(),
                value: value.to_owned(),
                version,
                hash: new_hash.to_owned(),
            });
        }
    }
    Err(StoreError::Conflict(Conflict::KeyknoxHashMismatch))
}

/// Empties the v1 blob (one statement, atomic on both backends).
pub(crate) async fn v1_reset<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    identity: &str,
    new_hash: &str,
) -> StoreResult<KeyknoxV1> {
    let version: Option<i64> = sqlx::query_scalar(
        "UPDATE keyknox_v1 SET meta = '', value = '', version = version + 1, hash = $3 \
         WHERE app_id = $1 AND identity = $2 RETURNING version",
    )
    .bind(app_id)
    .bind(identity)
    .bind(new_hash)
    .fetch_optional(db)
    .await
    .map_err(backend)?;
    Ok(rules::keyknox_v1_after_reset(version, new_hash))
}

/// The first half of a v2 push: the entry at the push's address, read under the row lock and
/// compared ([`rules::keyknox_v2_check_previous`]), gets the new hash, or is created. Returns
/// its id.
pub(crate) async fn v2_claim_entry(conn: &mut Conn, push: &KeyknoxV2Push) -> StoreResult<i64> {
    let a = &push.address;
    let previous = push.previous_hash.as_deref();
    for _ in 0..CREATE_ATTEMPTS {
        let stored: Option<(i64, String)> = sqlx::query_as(&locked(
            "SELECT id, hash FROM keyknox_entries \
             WHERE app_id = $1 AND owner = $2 AND root = $3 AND path = $4 AND key = $5",
        ))
        .bind(&a.app_id)
        .bind(&a.owner)
        .bind(&a.root)
        .bind(&a.path)
        .bind(&a.key)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
        rules::keyknox_v2_check_previous(stored.as_ref().map(|(_, hash)| hash.as_str()), previous)
            .map_err(StoreError::Conflict)?;
        if let Some((id, _)) = stored {
            sqlx::query("UPDATE keyknox_entries SET hash = $2 WHERE id = $1")
                .bind(id)
                .bind(&push.new_hash)
                .execute(&mut *conn)
                .await
                .map_err(backend)?;
            return Ok(id);
        }
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO keyknox_entries (app_id, owner, root, path, key, hash) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (app_id, owner, root, path, key) DO NOTHING RETURNING id",
        )
        .bind(&a.app_id)
        .bind(&a.owner)
        .bind(&a.root)
        .bind(&a.path)
        .bind(&a.key)
        .bind(&push.new_hash)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
        if let Some(id) = created {
            return Ok(id);
        }
    }
    Err(StoreError::Conflict(Conflict::KeyknoxHashMismatch))
}

/// The second half of a v2 push, after the backend wrote the copies: an entry exists only while
/// someone holds a copy. Commits and returns the pusher's view.
pub(crate) async fn v2_finish_push(
    mut tx: sqlx::Transaction<'static, Db>,
    entry_id: i64,
    push: KeyknoxV2Push,
) -> StoreResult<KeyknoxV2Copy> {
    let identities = copy_holders(&mut tx, entry_id).await?;
    if identities.is_empty() {
        // A push for nobody.
        sqlx::query("DELETE FROM keyknox_entries WHERE id = $1")
            .bind(entry_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)?;
    Ok(KeyknoxV2Copy {
        meta: push.meta,
        value: push.value,
        identities,
        hash: push.new_hash,
    })
}

/// Every holder of a copy of an entry, sorted by Rust's string order (not the database
/// collation's).
pub(crate) async fn copy_holders(conn: &mut Conn, entry_id: i64) -> StoreResult<Vec<String>> {
    let mut identities: Vec<String> =
        sqlx::query_scalar("SELECT identity FROM keyknox_copies WHERE entry_id = $1")
            .bind(entry_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    identities.sort_unstable();
    Ok(identities)
}

/// Keys of the entries of `owner` under (root, path) in which `reader` holds a copy, sorted.
pub(crate) async fn v2_keys<'c>(
    db: impl Executor<'c, Database = Db>,
    (app_id, owner): (&str, &str),
    (root, path): (&str, &str),
    reader: &str,
) -> StoreResult<Vec<String>> {
    let mut keys: Vec<String> = sqlx::query_scalar(
        "SELECT e.key FROM keyknox_entries AS e \
         WHERE e.app_id = $1 AND e.owner = $2 AND e.root = $3 AND e.path = $4 \
           AND EXISTS (SELECT 1 FROM keyknox_copies AS c \
                       WHERE c.entry_id = e.id AND c.identity = $5)",
    )
    .bind(app_id)
    .bind(owner)
    .bind(root)
    .bind(path)
    .bind(reader)
    .fetch_all(db)
    .await
    .map_err(backend)?;
    keys.sort_unstable();
    Ok(keys)
}
