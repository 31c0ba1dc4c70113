//! Ratchet keys on PostgreSQL: the shared algorithm (`store/sql/pfs.rs`) with `ROW_LOCK` =
//! `FOR UPDATE` (an upload locks its identity's row) and `SKIP_LOCKED` = `FOR UPDATE SKIP
//! LOCKED` (concurrent picks on any replica take different one-time keys without queueing).

use async_trait::async_trait;

use super::sql::pfs as sql;
use super::PostgresStore;
use crate::store::{PfsKeyId, PfsKeySet, PfsStore, PfsUpload, PfsValidation, StoreResult};

#[async_trait]
impl PfsStore for PostgresStore {
    async fn pfs_card_id(&self, app_id: &str, identity: &str) -> StoreResult<Option<String>> {
        sql::card_id(&self.pool, app_id, identity).await
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
        let tx = self.begin().await?;
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
