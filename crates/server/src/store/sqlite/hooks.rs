//! Push hooks on SQLite: every write in a `BEGIN IMMEDIATE` transaction on the writer, so claims
//! of one file run one after another.

use async_trait::async_trait;

use super::sql::backend;
use super::sql::hooks as sql;
use super::SqliteStore;
use crate::store::{HookBacklog, HookDelivery, HookRecord, HookStore, StoreResult};

#[async_trait]
impl HookStore for SqliteStore {
    async fn hook_set(&self, hook: HookRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::set(&mut tx, &hook).await?;
        tx.commit().await.map_err(backend)
    }

    async fn hook_get(&self, app_id: &str) -> StoreResult<Option<HookRecord>> {
        sql::get(&self.reader, app_id).await
    }

    async fn hook_remove(&self, app_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let removed = sql::remove(&mut tx, app_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    async fn hook_backlog(&self, app_id: &str) -> StoreResult<HookBacklog> {
        sql::backlog(&self.reader, app_id).await
    }

    async fn hook_claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<HookDelivery>> {
        if !sql::any_due(&self.reader, now_ms).await? {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let claimed = sql::claim(&mut tx, now_ms, lease_ms, limit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(claimed)
    }

    async fn hook_ack(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::ack(&mut tx, id).await?;
        tx.commit().await.map_err(backend)
    }

    async fn hook_retry(
        &self,
        id: i64,
        next_attempt_ms: Option<i64>,
        error: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::retry(&mut tx, id, next_attempt_ms, error).await?;
        tx.commit().await.map_err(backend)
    }
}
