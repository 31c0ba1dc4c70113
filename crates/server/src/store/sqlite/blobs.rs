//! Chat blobs on SQLite: every statement is the shared core's (`sql/blobs.rs`); each write is
//! one `BEGIN IMMEDIATE` transaction on the writer, reads go to the read pool.

use async_trait::async_trait;

use super::sql::backend;
use super::sql::blobs as sql;
use super::SqliteStore;
use crate::store::{BlobLimits, BlobRecord, ChatBlobStore, NewBlob, StoreResult};

#[async_trait]
impl ChatBlobStore for SqliteStore {
    async fn chat_blob_create(&self, blob: NewBlob) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::create(&mut tx, &blob).await?;
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
        let size = sql::append(&mut tx, app_id, blob_id, data, limits).await?;
        tx.commit().await.map_err(backend)?;
        Ok(size)
    }

    async fn chat_blob_finish(&self, app_id: &str, blob_id: &str) -> StoreResult<BlobRecord> {
        let mut tx = self.begin().await?;
        let record = sql::finish(&mut tx, app_id, blob_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(record)
    }

    async fn chat_blob(&self, app_id: &str, blob_id: &str) -> StoreResult<Option<BlobRecord>> {
        sql::get(&self.reader, app_id, blob_id).await
    }

    async fn chat_blob_chunk(
        &self,
        app_id: &str,
        blob_id: &str,
        index: i64,
    ) -> StoreResult<Option<Vec<u8>>> {
        sql::chunk(&self.reader, app_id, blob_id, index).await
    }

    async fn chat_blob_delete(&self, app_id: &str, blob_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let deleted = sql::delete(&mut tx, app_id, blob_id).await?;
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
        let deleted = sql::delete_of_message(&mut tx, app_id, channel_id, seq).await?;
        tx.commit().await.map_err(backend)?;
        Ok(deleted)
    }

    async fn chat_blob_gc(&self, created_before_ms: i64) -> StoreResult<u64> {
        // Batches, each its own transaction, so other writers get the lock in between.
        let mut total = 0;
        loop {
            let mut tx = self.begin().await?;
            let deleted = sql::gc_batch(&mut tx, created_before_ms).await?;
            tx.commit().await.map_err(backend)?;
            total += deleted;
            if deleted < sql::GC_BATCH.unsigned_abs() {
                return Ok(total);
            }
        }
    }

    async fn chat_blob_usage(&self, app_id: &str) -> StoreResult<u64> {
        sql::usage(&self.reader, app_id).await
    }
}
