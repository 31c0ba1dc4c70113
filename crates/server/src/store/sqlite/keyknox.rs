//! Keyknox on SQLite. Dialect: a push points its recipients at its blob from a JSON array
//! (`json_each`), a pull
//! reads the copy and its holders in one read transaction (one WAL snapshot), and a reset
//! filters with `?N IS NULL OR …`.

use async_trait::async_trait;

use super::sql::{backend, keyknox as sql};
use super::SqliteStore;
use crate::store::{
    rules, KeyknoxAddress, KeyknoxStore, KeyknoxV1, KeyknoxV2Copy, KeyknoxV2Push, KeyknoxV2Reset,
    StoreError, StoreResult,
};

#[async_trait]
impl KeyknoxStore for SqliteStore {
    async fn keyknox_v1_get(&self, app_id: &str, identity: &str) -> StoreResult<Option<KeyknoxV1>> {
        sql::v1_get(&self.reader, app_id, identity).await
    }

    async fn keyknox_v1_put(
        &self,
        app_id: &str,
        identity: &str,
        meta: &str,
        value: &str,
        previous_hash: Option<&str>,
        new_hash: &str,
    ) -> StoreResult<KeyknoxV1> {
        let tx = self.begin().await?;
        sql::v1_put(tx, (app_id, identity), meta, value, previous_hash, new_hash).await
    }

    async fn keyknox_v1_reset(
        &self,
        app_id: &str,
        identity: &str,
        new_hash: &str,
    ) -> StoreResult<KeyknoxV1> {
        sql::v1_reset(&self.writer, app_id, identity, new_hash).await
    }

    async fn keyknox_v2_push(&self, push: KeyknoxV2Push) -> StoreResult<KeyknoxV2Copy> {
        let mut tx = self.begin().await?;
        let entry_id = sql::v2_claim_entry(&mut tx, &push).await?;
        let blob_id = sql::v2_store_blob(&mut tx, entry_id, &push).await?;
        // One statement for all recipients (deduplicated). The `WHERE true` resolves SQLite's
        // parsing ambiguity of `SELECT … ON CONFLICT`.
        let recipients = serde_json::to_string(&rules::keyknox_v2_recipients(&push.identities))
            .map_err(|e| StoreError::Backend(format!("encoding identities: {e}")))?;
        sqlx::query(
            "INSERT INTO keyknox_recipients (entry_id, identity, blob_id) \
             SELECT ?, j.value, ? FROM json_each(?) AS j WHERE true \
             ON CONFLICT (entry_id, identity) DO UPDATE SET blob_id = excluded.blob_id",
        )
        .bind(entry_id)
        .bind(blob_id)
        .bind(&recipients)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        sql::v2_finish_push(tx, entry_id, push).await
    }

    async fn keyknox_v2_pull(
        &self,
        address: &KeyknoxAddress,
        reader: &str,
    ) -> StoreResult<Option<KeyknoxV2Copy>> {
        // A read transaction: the copy and the list of holders come from one snapshot.
        let mut tx = self.reader.begin().await.map_err(backend)?;
        let row: Option<(i64, String, String, String)> = sqlx::query_as(
            "SELECT e.id, e.hash, b.meta, b.value FROM keyknox_entries AS e \
             JOIN keyknox_recipients AS r ON r.entry_id = e.id AND r.identity = ? \
             JOIN keyknox_blobs AS b ON b.id = r.blob_id \
             WHERE e.app_id = ? AND e.owner = ? AND e.root = ? AND e.path = ? AND e.key = ?",
        )
        .bind(reader)
        .bind(&address.app_id)
        .bind(&address.owner)
        .bind(&address.root)
        .bind(&address.path)
        .bind(&address.key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let Some((entry_id, hash, meta, value)) = row else {
            return Ok(None);
        };
        let identities = sql::copy_holders(&mut tx, entry_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(Some(KeyknoxV2Copy {
            meta,
            value,
            identities,
            hash,
        }))
    }

    async fn keyknox_v2_keys(
        &self,
        app_id: &str,
        owner: &str,
        root: &str,
        path: &str,
        reader: &str,
    ) -> StoreResult<Vec<String>> {
        sql::v2_keys(&self.reader, (app_id, owner), (root, path), reader).await
    }

    async fn keyknox_v2_reset(&self, reset: KeyknoxV2Reset) -> StoreResult<()> {
        const MATCHING: &str = "app_id = ?1 AND owner = ?2 \
             AND (?3 IS NULL OR root = ?3) AND (?4 IS NULL OR path = ?4) \
             AND (?5 IS NULL OR key = ?5)";
        // Each statement with whether it takes the identity as `?6`.
        let statements = match &reset.identity {
            // Copies and blobs go with their entries (ON DELETE CASCADE).
            None => vec![(
                format!("DELETE FROM keyknox_entries WHERE {MATCHING}"),
                false,
            )],
            // Remove the copies, the blobs nobody holds any more, then the entries left
            // without copies; hashes stay.
            Some(_) => vec![
                (
                    format!(
                        "DELETE FROM keyknox_recipients WHERE identity = ?6 \
                         AND entry_id IN (SELECT id FROM keyknox_entries WHERE {MATCHING})"
                    ),
                    true,
                ),
                (
                    format!(
                        "DELETE FROM keyknox_blobs \
                         WHERE entry_id IN (SELECT id FROM keyknox_entries WHERE {MATCHING}) \
                           AND NOT EXISTS (SELECT 1 FROM keyknox_recipients AS r \
                                           WHERE r.blob_id = keyknox_blobs.id)"
                    ),
                    false,
                ),
                (
                    format!(
                        "DELETE FROM keyknox_entries WHERE {MATCHING} AND NOT EXISTS \
                         (SELECT 1 FROM keyknox_recipients WHERE entry_id = keyknox_entries.id)"
                    ),
                    false,
                ),
            ],
        };
        let mut tx = self.begin().await?;
        for (statement, with_identity) in &statements {
            let mut query = sqlx::query(statement)
                .bind(&reset.app_id)
                .bind(&reset.owner)
                .bind(&reset.root)
                .bind(&reset.path)
                .bind(&reset.key);
            if *with_identity {
                query = query.bind(&reset.identity);
            }
            query.execute(&mut *tx).await.map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }
}
