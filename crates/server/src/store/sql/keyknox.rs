//! Keyknox: the compare-and-swap writes and the reads that are the same on both backends. A v2
//! push writes its blob once and points each recipient at it. How the recipients are written,
//! how a pull reads holders in one snapshot and how a reset deletes stay with each backend.

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

/// The blob a push writes once, whatever the number of its recipients. Returns its id.
pub(crate) async fn v2_store_blob(
    conn: &mut Conn,
    entry_id: i64,
    push: &KeyknoxV2Push,
) -> StoreResult<i64> {
    let size = i64::try_from(push.meta.len() + push.value.len()).unwrap_or(i64::MAX);
    sqlx::query_scalar(
        "INSERT INTO keyknox_blobs (entry_id, meta, value, size) \
         VALUES ($1, $2, $3, $4) RETURNING id",
    )
    .bind(entry_id)
    .bind(&push.meta)
    .bind(&push.value)
    .bind(size)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)
}

/// Blobs of `entry_id` that no recipient holds any more.
pub(crate) async fn drop_unheld_blobs(conn: &mut Conn, entry_id: i64) -> StoreResult<()> {
    sqlx::query(
        "DELETE FROM keyknox_blobs WHERE entry_id = $1 AND NOT EXISTS \
         (SELECT 1 FROM keyknox_recipients AS r WHERE r.blob_id = keyknox_blobs.id)",
    )
    .bind(entry_id)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Bytes of every blob of the entries `owner` owns in `app_id`.
pub(crate) async fn owner_usage(conn: &mut Conn, app_id: &str, owner: &str) -> StoreResult<u64> {
    let used: Option<i64> = sqlx::query_scalar(
        "SELECT CAST(SUM(b.size) AS BIGINT) FROM keyknox_blobs AS b \
         JOIN keyknox_entries AS e ON e.id = b.entry_id \
         WHERE e.app_id = $1 AND e.owner = $2",
    )
    .bind(app_id)
    .bind(owner)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(u64::try_from(used.unwrap_or(0)).unwrap_or(0))
}

/// The second half of a v2 push, after the backend pointed the recipients at the new blob:
/// blobs nobody holds go, the owner's usage is checked against its quota (over it, nothing of
/// the push stays), and the pusher's view is returned.
pub(crate) async fn v2_finish_push(
    mut tx: sqlx::Transaction<'static, Db>,
    entry_id: i64,
    push: KeyknoxV2Push,
) -> StoreResult<KeyknoxV2Copy> {
    drop_unheld_blobs(&mut tx, entry_id).await?;
    let identities = copy_holders(&mut tx, entry_id).await?;
    if identities.is_empty() {
        // A push for nobody.
        sqlx::query("DELETE FROM keyknox_entries WHERE id = $1")
            .bind(entry_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
    }
    let used = owner_usage(&mut tx, &push.address.app_id, &push.address.owner).await?;
    // Dropping `tx` rolls the whole push back.
    rules::check_keyknox_quota(used, push.owner_quota_bytes).map_err(StoreError::Conflict)?;
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
        sqlx::query_scalar("SELECT identity FROM keyknox_recipients WHERE entry_id = $1")
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
           AND EXISTS (SELECT 1 FROM keyknox_recipients AS r \
                       WHERE r.entry_id = e.id AND r.identity = $5)",
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
