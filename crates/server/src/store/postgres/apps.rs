//! Applications, API keys and settings on PostgreSQL: all statements are shared
//! (`store/sql/apps.rs`).

use async_trait::async_trait;

use super::sql::{apps as sql, backend};
use super::PostgresStore;
use crate::store::{rules, AppKeyRecord, AppRecord, AppStore, StoreError, StoreResult};

#[async_trait]
impl AppStore for PostgresStore {
    async fn create_app(&self, app: AppRecord, key: AppKeyRecord) -> StoreResult<()> {
        rules::check_first_key(&app, &key).map_err(StoreError::Conflict)?;
        let mut tx = self.begin().await?;
        sql::insert_app(&mut tx, &app).await?;
        sql::insert_key(&mut tx, &key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn list_apps(&self) -> StoreResult<Vec<AppRecord>> {
        sql::list_apps(&self.pool).await
    }

    async fn app_keys(&self, app_id: &str) -> StoreResult<Vec<AppKeyRecord>> {
        sql::app_keys(&self.pool, app_id).await
    }

    async fn app_key(&self, key_id: &str) -> StoreResult<Option<AppKeyRecord>> {
        sql::app_key(&self.pool, key_id).await
    }

    async fn add_app_key(&self, key: AppKeyRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::insert_key(&mut tx, &key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn revoke_app_key(&self, key_id: &str, at: i64) -> StoreResult<()> {
        sql::revoke_app_key(&self.pool, key_id, at).await
    }

    async fn setting_or_insert(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        // Two statements, each in its own snapshot: a concurrent inserter of the same name makes
        // the INSERT wait for its commit and then do nothing, and the SELECT sees its value.
        sql::insert_setting(&self.pool, name, value).await?;
        sql::read_setting(&self.pool, name).await
    }
}
