//! Rate-limit buckets (brainkey requests): one algorithm for both backends. The bucket's row is
//! read under the row lock, refilled and debited ([`rules::take_token`]) and written back, so
//! concurrent takes on any replica queue on it.

use super::{backend, locked, Db, CREATE_ATTEMPTS};
use crate::store::rules::{self, Bucket};
use crate::store::{StoreError, StoreResult};

/// Deletes the buckets last updated before `before_ms` in `tx` and commits.
pub(crate) async fn prune(
    mut tx: sqlx::Transaction<'static, Db>,
    before_ms: i64,
) -> StoreResult<u64> {
    let deleted = sqlx::query("DELETE FROM rate_limits WHERE updated_ms < $1")
        .bind(before_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?
        .rows_affected();
    tx.commit().await.map_err(backend)?;
    Ok(deleted)
}

/// Takes one token from the bucket `key` in `tx` and commits; true when one was available.
pub(crate) async fn take(
    mut tx: sqlx::Transaction<'static, Db>,
    key: &str,
    now_ms: i64,
    burst: u32,
    per_second: f64,
) -> StoreResult<bool> {
    for _ in 0..CREATE_ATTEMPTS {
        let stored: Option<(f64, i64)> = sqlx::query_as(&locked(
            "SELECT tokens, updated_ms FROM rate_limits WHERE key = $1",
        ))
        .bind(key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let stored = stored.map(|(tokens, updated_ms)| Bucket { tokens, updated_ms });
        let (bucket, taken) = rules::take_token(stored, now_ms, burst, per_second);
        let statement = if stored.is_some() {
            "UPDATE rate_limits SET tokens = $2, updated_ms = $3 WHERE key = $1"
        } else {
            "INSERT INTO rate_limits (key, tokens, updated_ms) VALUES ($1, $2, $3) \
             ON CONFLICT (key) DO NOTHING"
        };
        let written = sqlx::query(statement)
            .bind(key)
            .bind(bucket.tokens)
            .bind(bucket.updated_ms)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        if written.rows_affected() == 1 {
            tx.commit().await.map_err(backend)?;
            return Ok(taken);
        }
    }
    Err(StoreError::Backend(format!(
        "rate limit bucket {key:?} could neither be created nor locked"
    )))
}
