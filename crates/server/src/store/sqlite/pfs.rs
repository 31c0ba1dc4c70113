//! Ratchet keys on SQLite: the shared algorithm (`store/sql/pfs.rs`). Uploads, picks and
//! deletes are `BEGIN IMMEDIATE` transactions, so they run one after another; validation reads
//! one WAL snapshot of the read pool.

use async_trait::async_trait;

use super::sql::{backend, pfs as sql};
use super::SqliteStore;
use crate::store::{PfsKeyId, PfsKeySet, PfsStore, PfsUpload, PfsValidation, StoreResult};

#[async_trait]
impl PfsStore for SqliteStore {
    async fn pfs_card_id(&self, app_id: &str, identity: &str) -> StoreResult<Option<String>> {
        sql::card_id(&self.reader, app_id, identity).await
    }

    async fn pfs_upload(&self, upload: PfsUpload) -> StoreResult<()> {
        sql::upload(self.begin().await?, upload).await
    }

    async fn pfs_validate(
        &self,
        app_id: &str,
        identity: &str,
        long_term_key_id: Option<PfsKeyId>,
        one_time_key_ids: &[PfsKeyId],
    ) -> StoreResult<PfsValidation> {
        let tx = self.reader.begin().await.map_err(backend)?;
        sql::validate(tx, (app_id, identity), long_term_key_id, one_time_key_ids).await
    }

    async fn pfs_pick(
        &self,
        app_id: &str,
        identities: &[String],
        now: i64,
    ) -> StoreResult<Vec<PfsKeySet>> {
        sql::pick(self.begin().await?, app_id, identities, now).await
    }

    async fn pfs_delete(&self, app_id: &str, identity: &str) -> StoreResult<()> {
        sql::delete(self.begin().await?, app_id, identity).await
    }
}
