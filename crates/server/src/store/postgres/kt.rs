//! Key transparency on PostgreSQL: the shared statements (`store/sql/kt.rs`), and the election
//! of the one replica that publishes epochs: a session advisory lock held on a dedicated
//! connection. The lock key is per schema, so deployments (and tests) sharing one database in
//! different schemas each elect their own publisher.

use async_trait::async_trait;
use sqlx::Connection as _;

use super::sql::{backend, kt as sql};
use super::PostgresStore;
use crate::store::{KtPending, KtStore, KtValueRecord, StoreResult};

/// First half of the advisory lock key ("KT" in ASCII); the second is the schema's hash.
const LOCK_CLASS: i32 = 0x4b54;

#[async_trait]
impl KtStore for PostgresStore {
    async fn kt_records(
        &self,
        app_id: &str,
        ids: &[Vec<u8>],
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        sql::records(&self.pool, app_id, ids).await
    }

    async fn kt_records_after(
        &self,
        app_id: &str,
        after: &[u8],
        limit: u32,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        sql::records_after(&self.pool, app_id, after, limit).await
    }

    async fn kt_values(&self, app_id: &str, label: &[u8]) -> StoreResult<Vec<KtValueRecord>> {
        sql::values(&self.pool, app_id, label).await
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
        sql::changed_ids(&self.pool, app_id, after, upto, limit).await
    }

    async fn kt_put_root(&self, app_id: &str, epoch: i64, root_hash: &[u8]) -> StoreResult<()> {
        sql::put_root(&self.pool, app_id, epoch, root_hash).await
    }

    async fn kt_roots(&self, app_id: &str, from: i64, to: i64) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        sql::roots(&self.pool, app_id, from, to).await
    }

    async fn kt_pending(&self, limit: u32) -> StoreResult<Vec<KtPending>> {
        sql::pending(&self.pool, limit).await
    }

    async fn kt_clear_pending(&self, done: &[KtPending]) -> StoreResult<()> {
        sql::clear_pending(self.begin().await?, done).await
    }

    async fn kt_current_card_ids(&self, app_id: &str, identity: &str) -> StoreResult<Vec<String>> {
        sql::current_card_ids(&self.pool, app_id, identity).await
    }

    async fn kt_try_lead(&self) -> StoreResult<bool> {
        let mut held = self.kt_leader.lock().await;
        if let Some(conn) = held.as_mut() {
            // Still ours while the session lives.
            if conn.ping().await.is_ok() {
                return Ok(true);
            }
            *held = None;
        }
        // Out of the pool for good: the lock lives as long as this session.
        let mut conn = self.pool.acquire().await.map_err(backend)?.detach();
        let won: bool =
            sqlx::query_scalar("SELECT pg_try_advisory_lock($1, hashtext(current_schema()))")
                .bind(LOCK_CLASS)
                .fetch_one(&mut conn)
                .await
                .map_err(backend)?;
        if won {
            *held = Some(conn);
        }
        Ok(won)
    }
}
