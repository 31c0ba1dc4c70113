//! Keyknox on PostgreSQL. Dialect: a push holds the owner's advisory lock (the quota is a sum
//! over the owner's entries) and points its recipients at its blob from an array (`UNNEST`), a pull
//! reads the copy and its holders in one statement (one snapshot), and a reset locks the
//! matching entries first and then deletes by id (`= ANY($1)`).

use async_trait::async_trait;

use super::sql::{backend, keyknox as sql};
use super::{lock_pair, LockClass, PostgresStore};
use crate::store::{
    rules, KeyknoxAddress, KeyknoxStore, KeyknoxV1, KeyknoxV2Copy, KeyknoxV2Push, KeyknoxV2Reset,
    StoreResult,
};

#[async_trait]
impl KeyknoxStore for PostgresStore {
    async fn keyknox_v1_get(&self, app_id: &str, identity: &str) -> StoreResult<Option<KeyknoxV1>> {
        sql::v1_get(&self.pool, app_id, identity).await
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
        sql::v1_reset(&self.pool, app_id, identity, new_hash).await
    }

    async fn keyknox_v2_push(&self, push: KeyknoxV2Push) -> StoreResult<KeyknoxV2Copy> {
        let mut tx = self.begin().await?;
        // Pushes of one owner to different entries lock different rows; without this lock two
        // of them could each pass the quota check that counts the other's blob as absent.
        lock_pair(
            &mut tx,
            LockClass::KeyknoxOwner,
            &push.address.app_id,
            &push.address.owner,
        )
        .await?;
        let entry_id = sql::v2_claim_entry(&mut tx, &push).await?;
        let blob_id = sql::v2_store_blob(&mut tx, entry_id, &push).await?;
        // Deduplicated first: one upsert may not touch a row twice.
        let recipients = rules::keyknox_v2_recipients(&push.identities);
        sqlx::query(
            "INSERT INTO keyknox_recipients (entry_id, identity, blob_id) \
             SELECT $1, recipient, $3 FROM UNNEST($2::text[]) AS recipient \
             ON CONFLICT (entry_id, identity) DO UPDATE SET blob_id = EXCLUDED.blob_id",
        )
        .bind(entry_id)
        .bind(&recipients)
        .bind(blob_id)
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
        // One statement, so the copy and the list of holders come from one snapshot.
        let row: Option<(String, String, String, Vec<String>)> = sqlx::query_as(
            "SELECT e.hash, b.meta, b.value, \
               ARRAY(SELECT h.identity FROM keyknox_recipients AS h WHERE h.entry_id = e.id) \
             FROM keyknox_entries AS e \
             JOIN keyknox_recipients AS r ON r.entry_id = e.id AND r.identity = $6 \
             JOIN keyknox_blobs AS b ON b.id = r.blob_id \
             WHERE e.app_id = $1 AND e.owner = $2 AND e.root = $3 AND e.path = $4 AND e.key = $5",
        )
        .bind(&address.app_id)
        .bind(&address.owner)
        .bind(&address.root)
        .bind(&address.path)
        .bind(&address.key)
        .bind(reader)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(row.map(|(hash, meta, value, mut identities)| {
            identities.sort_unstable();
            KeyknoxV2Copy {
                meta,
                value,
                identities,
                hash,
            }
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
        sql::v2_keys(&self.pool, (app_id, owner), (root, path), reader).await
    }

    async fn keyknox_v2_reset(&self, reset: KeyknoxV2Reset) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // Lock the matching entries (in id order, so concurrent resets cannot deadlock): a push
        // to one of them waits for this transaction, and none can add a copy between the
        // deletion of copies and the check for entries left without any.
        let ids: Vec<i64> = sqlx::query_scalar(
            "SELECT id FROM keyknox_entries \
             WHERE app_id = $1 AND owner = $2 \
               AND ($3::text IS NULL OR root = $3) AND ($4::text IS NULL OR path = $4) \
               AND ($5::text IS NULL OR key = $5) \
             ORDER BY id FOR UPDATE",
        )
        .bind(&reset.app_id)
        .bind(&reset.owner)
        .bind(&reset.root)
        .bind(&reset.path)
        .bind(&reset.key)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        if ids.is_empty() {
            return tx.commit().await.map_err(backend);
        }
        match &reset.identity {
            None => {
                // Copies and blobs go with their entries (ON DELETE CASCADE).
                sqlx::query("DELETE FROM keyknox_entries WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            Some(identity) => {
                // Remove the copies, the blobs nobody holds any more, then the entries left
                // without copies; hashes stay.
                sqlx::query(
                    "DELETE FROM keyknox_recipients WHERE entry_id = ANY($1) AND identity = $2",
                )
                .bind(&ids)
                .bind(identity)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                sqlx::query(
                    "DELETE FROM keyknox_blobs AS b WHERE b.entry_id = ANY($1) AND NOT EXISTS \
                     (SELECT 1 FROM keyknox_recipients AS r WHERE r.blob_id = b.id)",
                )
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                sqlx::query(
                    "DELETE FROM keyknox_entries AS e WHERE e.id = ANY($1) AND NOT EXISTS \
                     (SELECT 1 FROM keyknox_recipients AS r WHERE r.entry_id = e.id)",
                )
                .bind(&ids)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)
    }
}
