//! Key transparency on SQLite: the shared statements (`store/sql/kt.rs`); writes in
//! `BEGIN IMMEDIATE` transactions. One process owns the database, so it always leads.

use async_trait::async_trait;

use super::sql::kt as sql;
use super::SqliteStore;
use crate::store::{KtPending, KtStore, KtValueRecord, StoreResult};

#[async_trait]
impl KtStore for SqliteStore {
    async fn kt_records(
        &self,
        app_id: &str,
        ids: &[Vec<u8>],
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        sql::records(&self.reader, app_id, ids).await
    }

    async fn kt_records_after(
        &self,
        app_id: &str,
        after: &[u8],
        limit: u32,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        sql::records_after(&self.reader, app_id, after, limit).await
    }

    async fn kt_values(&self, app_id: &str, label: &[u8]) -> StoreResult<Vec<KtValueRecord>> {
        sql::values(&self.reader, app_id, label).await
    }

    async fn kt_write(
        &self,
        app_id: &str,
        epoch: Option<i64>,
        records: &[(Vec<u8>, Vec<u8>)],
        values: &[KtValueRecord],
    ) -> StoreResult<()> {
        sql::write(self.begin().await?, app_id, epoch, records, values).await
    }

    async fn kt_changed_ids(
        &self,
        app_id: &str,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<Vec<u8>>> {
        sql::changed_ids(&self.reader, app_id, after, upto, limit).await
    }

    async fn kt_put_root(&self, app_id: &str, epoch: i64, root_hash: &[u8]) -> StoreResult<()> {
        sql::put_root(&self.writer, app_id, epoch, root_hash).await
    }

    async fn kt_roots(&self, app_id: &str, from: i64, to: i64) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        sql::roots(&self.reader, app_id, from, to).await
    }

    async fn kt_pending(&self, limit: u32) -> StoreResult<Vec<KtPending>> {
        sql::pending(&self.reader, limit).await
    }

    async fn kt_clear_pending(&self, done: &[KtPending]) -> StoreResult<()> {
        sql::clear_pending(self.begin().await?, done).await
    }

    async fn kt_current_card_ids(&self, app_id: &str, identity: &str) -> StoreResult<Vec<String>> {
        sql::current_card_ids(&self.reader, app_id, identity).await
    }

    async fn kt_try_lead(&self) -> StoreResult<bool> {
        Ok(true)
    }
}
