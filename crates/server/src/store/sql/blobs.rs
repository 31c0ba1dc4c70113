//! Chat blobs (attachments): every statement, the same on both backends. Each writing function
//! runs inside the caller's transaction; the backends only start and commit it.
//!
//! Rows: `chat_blobs` (one per blob, its size and chunk count), `chat_blob_chunks` (the bytes,
//! numbered from 0, deleted with their blob by the foreign key's cascade) and
//! `chat_blob_usage` (bytes per application, against its quota).

use async_trait::async_trait;
use sqlx::Executor;

use super::super::ThisStore;
use super::{backend, locked, Conn, Db, BYTE_ORDER};
use crate::store::rules;
use crate::store::{
    BlobLimits, BlobRecord, ChatBlobStore, Conflict, Forbidden, NewBlob, StoreError, StoreResult,
};

/// The columns of a [`BlobRecord`].
const BLOB_COLUMNS: &str =
    "id, channel_id, uploader, size, chunks, complete, message_seq, created_at_ms";

/// Inserts an empty, incomplete blob; `NotFound` when the channel does not exist,
/// `Forbidden(NotAMember)` unless the uploader is a member.
pub(crate) async fn create(conn: &mut Conn, blob: &NewBlob) -> StoreResult<()> {
    let (channel, member): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM chat_channels WHERE app_id = $1 AND id = $2), \
           (SELECT COUNT(*) FROM chat_members \
            WHERE app_id = $1 AND channel_id = $2 AND identity = $3)",
    )
    .bind(&blob.app_id)
    .bind(blob.channel_id.as_str())
    .bind(blob.uploader.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    if channel == 0 {
        return Err(StoreError::NotFound);
    }
    if member == 0 {
        return Err(StoreError::Forbidden(Forbidden::NotAMember));
    }
    sqlx::query(
        "INSERT INTO chat_blobs (app_id, id, channel_id, uploader, created_at_ms) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&blob.app_id)
    .bind(&blob.id)
    .bind(blob.channel_id.as_str())
    .bind(blob.uploader.as_str())
    .bind(blob.created_at_ms)
    .execute(&mut *conn)
    .await
    .map_err(|e| super::unique_or_backend(e, Conflict::BlobUnusable))?;
    Ok(())
}

/// Appends one chunk under the blob's lock (see `ChatBlobStore::chat_blob_append`); the size
/// after it.
pub(crate) async fn append(
    conn: &mut Conn,
    app_id: &str,
    blob_id: &str,
    data: &[u8],
    limits: BlobLimits,
) -> StoreResult<u64> {
    let row: Option<(i64, i64, bool)> = sqlx::query_as(&locked(
        "SELECT size, chunks, complete FROM chat_blobs WHERE app_id = $1 AND id = $2",
    ))
    .bind(app_id)
    .bind(blob_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    let Some((size, chunks, complete)) = row else {
        return Err(StoreError::NotFound);
    };
    if complete {
        return Err(StoreError::Conflict(Conflict::BlobComplete));
    }
    let after = rules::blob_size_after(size, data.len(), limits.max_blob_bytes)
        .map_err(StoreError::Conflict)?;
    let len = i64::try_from(data.len()).map_err(|_| {
        StoreError::Conflict(Conflict::BlobTooLarge {
            limit: limits.max_blob_bytes,
        })
    })?;
    take_quota(conn, app_id, len, limits.app_quota_bytes).await?;
    sqlx::query(
        "INSERT INTO chat_blob_chunks (app_id, blob_id, idx, data) VALUES ($1, $2, $3, $4)",
    )
    .bind(app_id)
    .bind(blob_id)
    .bind(chunks)
    .bind(data)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    sqlx::query(
        "UPDATE chat_blobs SET size = $3, chunks = chunks + 1 WHERE app_id = $1 AND id = $2",
    )
    .bind(app_id)
    .bind(blob_id)
    .bind(after)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(after.unsigned_abs())
}

/// Counts `len` more bytes against the application's quota, or `Conflict(BlobQuotaExceeded)`.
/// One conditional statement: on PostgreSQL a concurrent writer of the same row waits and then
/// re-checks the condition against what the first committed, so two uploads never pass the
/// quota together.
async fn take_quota(conn: &mut Conn, app_id: &str, len: i64, quota: u64) -> StoreResult<()> {
    sqlx::query("INSERT INTO chat_blob_usage (app_id, used) VALUES ($1, 0) ON CONFLICT DO NOTHING")
        .bind(app_id)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    let quota = i64::try_from(quota).unwrap_or(i64::MAX);
    let taken = sqlx::query(
        "UPDATE chat_blob_usage SET used = used + $2 WHERE app_id = $1 AND used <= $3 - $2",
    )
    .bind(app_id)
    .bind(len)
    .bind(quota)
    .execute(&mut *conn)
    .await
    .map_err(backend)?
    .rows_affected();
    if taken == 0 {
        return Err(StoreError::Conflict(Conflict::BlobQuotaExceeded {
            quota: quota.unsigned_abs(),
        }));
    }
    Ok(())
}

/// Gives `bytes` back to the application's quota.
async fn give_back(conn: &mut Conn, app_id: &str, bytes: i64) -> StoreResult<()> {
    if bytes == 0 {
        return Ok(());
    }
    sqlx::query(
        "UPDATE chat_blob_usage SET used = CASE WHEN used > $2 THEN used - $2 ELSE 0 END \
         WHERE app_id = $1",
    )
    .bind(app_id)
    .bind(bytes)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Marks a blob complete and returns it; `NotFound` when it does not exist.
pub(crate) async fn finish(
    conn: &mut Conn,
    app_id: &str,
    blob_id: &str,
) -> StoreResult<BlobRecord> {
    sqlx::query_as(&format!(
        "UPDATE chat_blobs SET complete = TRUE WHERE app_id = $1 AND id = $2 \
         RETURNING {BLOB_COLUMNS}"
    ))
    .bind(app_id)
    .bind(blob_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?
    .ok_or(StoreError::NotFound)
}

/// One blob, if it exists.
pub(crate) async fn get<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    blob_id: &str,
) -> StoreResult<Option<BlobRecord>> {
    sqlx::query_as(&format!(
        "SELECT {BLOB_COLUMNS} FROM chat_blobs WHERE app_id = $1 AND id = $2"
    ))
    .bind(app_id)
    .bind(blob_id)
    .fetch_optional(db)
    .await
    .map_err(backend)
}

/// One chunk's bytes, if it exists.
pub(crate) async fn chunk<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    blob_id: &str,
    index: i64,
) -> StoreResult<Option<Vec<u8>>> {
    sqlx::query_scalar(
        "SELECT data FROM chat_blob_chunks WHERE app_id = $1 AND blob_id = $2 AND idx = $3",
    )
    .bind(app_id)
    .bind(blob_id)
    .bind(index)
    .fetch_optional(db)
    .await
    .map_err(backend)
}

/// Deletes one blob (its chunks go with it) and gives its bytes back; whether it existed.
pub(crate) async fn delete(conn: &mut Conn, app_id: &str, blob_id: &str) -> StoreResult<bool> {
    let size: Option<i64> =
        sqlx::query_scalar("DELETE FROM chat_blobs WHERE app_id = $1 AND id = $2 RETURNING size")
            .bind(app_id)
            .bind(blob_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?;
    match size {
        Some(size) => {
            give_back(conn, app_id, size).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Deletes the blobs a message names and gives their bytes back; how many.
pub(crate) async fn delete_of_message(
    conn: &mut Conn,
    app_id: &str,
    channel_id: &str,
    seq: i64,
) -> StoreResult<u64> {
    let sizes: Vec<i64> = sqlx::query_scalar(
        "DELETE FROM chat_blobs WHERE app_id = $1 AND channel_id = $2 AND message_seq = $3 \
         RETURNING size",
    )
    .bind(app_id)
    .bind(channel_id)
    .bind(seq)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    give_back(conn, app_id, sizes.iter().sum()).await?;
    Ok(sizes.len() as u64)
}

/// Most blobs one garbage-collection transaction deletes; the caller repeats until fewer go.
pub(crate) const GC_BATCH: i64 = 100;

/// Deletes up to [`GC_BATCH`] blobs that no message names, started before `created_before_ms`,
/// giving their bytes back; how many. The condition is checked again by the deleting statement,
/// so a blob a post named meanwhile stays. Locks are taken in one order, blob rows by id first
/// and usage rows by application last, as appends and message deletions take them (blob, then
/// usage), so concurrent collectors and uploads on PostgreSQL cannot deadlock.
pub(crate) async fn gc_batch(conn: &mut Conn, created_before_ms: i64) -> StoreResult<u64> {
    let candidates: Vec<(String, String)> = sqlx::query_as(&format!(
        "SELECT app_id, id FROM chat_blobs \
         WHERE message_seq IS NULL AND created_at_ms < $1 \
         ORDER BY app_id{BYTE_ORDER}, id{BYTE_ORDER} LIMIT $2"
    ))
    .bind(created_before_ms)
    .bind(GC_BATCH)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let mut freed: std::collections::BTreeMap<String, i64> = std::collections::BTreeMap::new();
    let mut deleted = 0;
    for (app_id, blob_id) in candidates {
        let size: Option<i64> = sqlx::query_scalar(
            "DELETE FROM chat_blobs WHERE app_id = $1 AND id = $2 AND message_seq IS NULL \
             RETURNING size",
        )
        .bind(&app_id)
        .bind(&blob_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
        if let Some(size) = size {
            *freed.entry(app_id).or_default() += size;
            deleted += 1;
        }
    }
    for (app_id, bytes) in freed {
        give_back(conn, &app_id, bytes).await?;
    }
    Ok(deleted)
}

/// The bytes the application's blobs hold.
pub(crate) async fn usage<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
) -> StoreResult<u64> {
    let used: Option<i64> =
        sqlx::query_scalar("SELECT used FROM chat_blob_usage WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(db)
            .await
            .map_err(backend)?;
    Ok(used.unwrap_or(0).max(0).unsigned_abs())
}

/// Makes the blobs a new message names its own, inside the post's transaction: each must be a
/// complete upload of `sender` to the channel that no message names, else
/// `Conflict(BlobUnusable)` (and the caller's transaction, the post with it, rolls back).
pub(crate) async fn attach(
    conn: &mut Conn,
    (app_id, channel_id, sender): (&str, &str, &str),
    seq: i64,
    blobs: &[String],
) -> StoreResult<()> {
    for blob_id in blobs {
        let attached = sqlx::query(
            "UPDATE chat_blobs SET message_seq = $5 \
             WHERE app_id = $1 AND id = $2 AND channel_id = $3 AND uploader = $4 \
               AND complete AND message_seq IS NULL",
        )
        .bind(app_id)
        .bind(blob_id)
        .bind(channel_id)
        .bind(sender)
        .bind(seq)
        .execute(&mut *conn)
        .await
        .map_err(backend)?
        .rows_affected();
        if attached != 1 {
            return Err(StoreError::Conflict(Conflict::BlobUnusable));
        }
    }
    Ok(())
}

/// Each write is one transaction: on SQLite a `BEGIN IMMEDIATE` on the writer; on PostgreSQL an
/// append locks its blob's row (`FOR UPDATE`), so chunks of one blob are numbered in order
/// across replicas, and takes quota with one conditional update of the application's usage row.
#[async_trait]
impl ChatBlobStore for ThisStore {
    async fn chat_blob_create(&self, blob: NewBlob) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        create(&mut tx, &blob).await?;
        tx.commit().await.map_err(backend)
    }

    async fn chat_blob_append(
        &self,
        app_id: &str,
        blob_id: &str,
        data: &[u8],
        limits: BlobLimits,
    ) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let size = append(&mut tx, app_id, blob_id, data, limits).await?;
        tx.commit().await.map_err(backend)?;
        Ok(size)
    }

    async fn chat_blob_finish(&self, app_id: &str, blob_id: &str) -> StoreResult<BlobRecord> {
        let mut tx = self.begin().await?;
        let record = finish(&mut tx, app_id, blob_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(record)
    }

    async fn chat_blob(&self, app_id: &str, blob_id: &str) -> StoreResult<Option<BlobRecord>> {
        get(self.reads(), app_id, blob_id).await
    }

    async fn chat_blob_chunk(
        &self,
        app_id: &str,
        blob_id: &str,
        index: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        chunk(self.reads(), app_id, blob_id, index).await
    }

    async fn chat_blob_delete(&self, app_id: &str, blob_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let deleted = delete(&mut tx, app_id, blob_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(deleted)
    }

    async fn chat_delete_message_blobs(
        &self,
        app_id: &str,
        channel_id: &str,
        seq: i64,
    ) -> StoreResult<u64> {
        let mut tx = self.begin().await?;
        let deleted = delete_of_message(&mut tx, app_id, channel_id, seq).await?;
        tx.commit().await.map_err(backend)?;
        Ok(deleted)
    }

    async fn chat_blob_gc(&self, created_before_ms: i64) -> StoreResult<u64> {
        // Batches, each its own transaction, so other writers get SQLite's lock in between and
        // no PostgreSQL transaction holds many row locks for long.
        let mut total = 0;
        loop {
            let mut tx = self.begin().await?;
            let deleted = gc_batch(&mut tx, created_before_ms).await?;
            tx.commit().await.map_err(backend)?;
            total += deleted;
            if deleted < GC_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    async fn chat_blob_usage(&self, app_id: &str) -> StoreResult<u64> {
        usage(self.reads(), app_id).await
    }
}
