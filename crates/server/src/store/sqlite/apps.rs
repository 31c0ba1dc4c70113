//! Applications, API keys and settings on SQLite: all statements are shared (`store/sql/apps.rs`).

use async_trait::async_trait;

use super::sql::{apps as sql, backend};
use super::SqliteStore;
use crate::store::{rules, AppKeyRecord, AppRecord, AppStore, StoreError, StoreResult};

#[async_trait]
impl AppStore for SqliteStore {
    async fn create_app(&self, app: AppRecord, key: AppKeyRecord) -> StoreResult<()> {
        rules::check_first_key(&app, &key).map_err(StoreError::Conflict)?;
        let mut tx = self.begin().await?;
        sql::insert_app(&mut tx, &app).await?;
        sql::insert_key(&mut tx, &key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn list_apps(&self) -> StoreResult<Vec<AppRecord>> {
        sql::list_apps(&self.reader).await
    }

    async fn app_keys(&self, app_id: &str) -> StoreResult<Vec<AppKeyRecord>> {
        sql::app_keys(&self.reader, app_id).await
    }

    async fn app_key(&self, key_id: &str) -> StoreResult<Option<AppKeyRecord>> {
        sql::app_key(&self.reader, key_id).await
    }

    async fn add_app_key(&self, key: AppKeyRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        sql::insert_key(&mut tx, &key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn revoke_app_key(&self, key_id: &str, at: i64) -> StoreResult<()> {
        sql::revoke_app_key(&self.writer, key_id, at).await
    }

    async fn setting_or_insert(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        // Insert and read in one `BEGIN IMMEDIATE` transaction: another process's insert of the
        // same name cannot come between them.
        let mut tx = self.begin().await?;
        sql::insert_setting(&mut *tx, name, value).await?;
        let stored = sql::read_setting(&mut *tx, name).await?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }
}
