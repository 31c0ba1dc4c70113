//! Rate-limit buckets on SQLite: the shared algorithm (`store/sql/pythia.rs`) in a
//! `BEGIN IMMEDIATE` transaction.

use async_trait::async_trait;

use super::sql::pythia as sql;
use super::SqliteStore;
use crate::store::{RateLimitStore, StoreResult};

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn rate_limit_take(
        &self,
        key: &str,
        now_ms: i64,
        burst: u32,
        per_second: f64,
    ) -> StoreResult<bool> {
        sql::take(self.begin().await?, key, now_ms, burst, per_second).await
    }

    async fn rate_limit_prune(&self, before_ms: i64) -> StoreResult<u64> {
        sql::prune(self.begin().await?, before_ms).await
    }
}
