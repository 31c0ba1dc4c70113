//! Push hooks and their outbox: every statement is the same on both backends. Claims read the
//! due rows with the backend's `SKIP_LOCKED` inside the caller's transaction, so concurrent
//! claimers on PostgreSQL pass over each other's rows, then lease them.

use async_trait::async_trait;
use sealkit_proto::hooks::{HookEvent, HookKind};
use sqlx::error::ErrorKind;
use sqlx::Executor;

use super::super::ThisStore;
use super::{backend, error_kind, Conn, Db, SKIP_LOCKED};
use crate::store::{HookBacklog, HookDelivery, HookRecord, HookStore, StoreError, StoreResult};

/// An event of `kind` without its kind's fields (the caller adds them) and without an id (the
/// outbox row's id becomes it at delivery).
pub(crate) fn event(app_id: &str, channel_id: &str, kind: HookKind, at_ms: i64) -> HookEvent {
    HookEvent {
        id: String::new(),
        app: app_id.to_owned(),
        channel: channel_id.to_owned(),
        kind,
        seq: None,
        sender: None,
        deleted_by: None,
        identity: None,
        member_version: None,
        at: at_ms,
    }
}

/// Queues `event` in the caller's transaction when its application has a hook (else inserts
/// nothing): it commits, or rolls back, with the change it reports. Due at once.
pub(crate) async fn enqueue(conn: &mut Conn, event: &HookEvent) -> StoreResult<()> {
    let payload = serde_json::to_string(event)
        .map_err(|e| StoreError::Backend(format!("encoding a hook event: {e}")))?;
    sqlx::query(
        "INSERT INTO hook_outbox (app_id, payload, next_attempt_ms) \
         SELECT app_id, $2, $3 FROM app_hooks WHERE app_id = $1",
    )
    .bind(&event.app)
    .bind(payload)
    .bind(event.at)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Sets or replaces a hook; `NotFound` for an application that does not exist.
pub(crate) async fn set(conn: &mut Conn, hook: &HookRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO app_hooks (app_id, url, secret, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (app_id) DO UPDATE SET url = excluded.url, secret = excluded.secret, \
         created_at = excluded.created_at",
    )
    .bind(&hook.app_id)
    .bind(&hook.url)
    .bind(&hook.secret)
    .bind(hook.created_at)
    .execute(&mut *conn)
    .await
    .map_err(|e| match error_kind(&e) {
        Some(ErrorKind::ForeignKeyViolation) => StoreError::NotFound,
        _ => backend(e),
    })?;
    Ok(())
}

/// An application's hook.
pub(crate) async fn get<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
) -> StoreResult<Option<HookRecord>> {
    let row: Option<(String, String, String, i64)> =
        sqlx::query_as("SELECT app_id, url, secret, created_at FROM app_hooks WHERE app_id = $1")
            .bind(app_id)
            .fetch_optional(db)
            .await
            .map_err(backend)?;
    Ok(row.map(|(app_id, url, secret, created_at)| HookRecord {
        app_id,
        url,
        secret,
        created_at,
    }))
}

/// Removes a hook and its queued events; whether there was one.
pub(crate) async fn remove(conn: &mut Conn, app_id: &str) -> StoreResult<bool> {
    // Explicitly, not only by the foreign key's cascade: SQLite enforces it only with
    // `foreign_keys` on, which a tool opening the file may not set.
    sqlx::query("DELETE FROM hook_outbox WHERE app_id = $1")
        .bind(app_id)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    let removed = sqlx::query("DELETE FROM app_hooks WHERE app_id = $1")
        .bind(app_id)
        .execute(&mut *conn)
        .await
        .map_err(backend)?
        .rows_affected();
    Ok(removed > 0)
}

/// The application's undelivered events.
pub(crate) async fn backlog<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
) -> StoreResult<HookBacklog> {
    let (queued, last_error): (i64, Option<String>) = sqlx::query_as(
        "SELECT COUNT(*), \
           (SELECT last_error FROM hook_outbox WHERE app_id = $1 AND last_error IS NOT NULL \
            ORDER BY id DESC LIMIT 1) \
         FROM hook_outbox WHERE app_id = $1",
    )
    .bind(app_id)
    .fetch_one(db)
    .await
    .map_err(backend)?;
    Ok(HookBacklog {
        queued: u64::try_from(queued).unwrap_or(0),
        last_error,
    })
}

/// Whether any event is due at `now_ms`: a plain read, so a delivery task that finds nothing
/// to do never takes a write lock (on SQLite, the one writer chat posts queue on).
pub(crate) async fn any_due<'c>(
    db: impl Executor<'c, Database = Db>,
    now_ms: i64,
) -> StoreResult<bool> {
    let due: Option<i64> = sqlx::query_scalar(
        "SELECT id FROM hook_outbox WHERE next_attempt_ms <= $1 AND lease_until_ms <= $1 LIMIT 1",
    )
    .bind(now_ms)
    .fetch_optional(db)
    .await
    .map_err(backend)?;
    Ok(due.is_some())
}

/// Claims due events in the caller's transaction (see [`HookStore::hook_claim`]).
///
/// [`HookStore::hook_claim`]: crate::store::HookStore::hook_claim
pub(crate) async fn claim(
    conn: &mut Conn,
    now_ms: i64,
    lease_ms: i64,
    limit: u32,
) -> StoreResult<Vec<HookDelivery>> {
    let ids: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT id FROM hook_outbox WHERE next_attempt_ms <= $1 AND lease_until_ms <= $1 \
         ORDER BY id LIMIT $2{SKIP_LOCKED}"
    ))
    .bind(now_ms)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        sqlx::query("UPDATE hook_outbox SET lease_until_ms = $2 WHERE id = $1")
            .bind(id)
            .bind(now_ms.saturating_add(lease_ms))
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        let row: Option<(String, String, String, String, i64)> = sqlx::query_as(
            "SELECT o.app_id, h.url, h.secret, o.payload, CAST(o.attempts AS BIGINT) \
             FROM hook_outbox AS o JOIN app_hooks AS h ON h.app_id = o.app_id WHERE o.id = $1",
        )
        .bind(id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
        if let Some((app_id, url, secret, payload, attempts)) = row {
            claimed.push(HookDelivery {
                id,
                app_id,
                url,
                secret,
                payload,
                attempts,
            });
        }
    }
    Ok(claimed)
}

/// Removes a delivered event.
pub(crate) async fn ack(conn: &mut Conn, id: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM hook_outbox WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Records a failed attempt (see [`HookStore::hook_retry`]).
///
/// [`HookStore::hook_retry`]: crate::store::HookStore::hook_retry
pub(crate) async fn retry(
    conn: &mut Conn,
    id: i64,
    next_attempt_ms: Option<i64>,
    error: &str,
) -> StoreResult<()> {
    let Some(next) = next_attempt_ms else {
        return ack(conn, id).await;
    };
    sqlx::query(
        "UPDATE hook_outbox SET attempts = attempts + 1, next_attempt_ms = $2, \
         lease_until_ms = 0, last_error = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(next)
    .bind(error)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// Each write is one transaction: on SQLite a `BEGIN IMMEDIATE` on the writer, so claims of one
/// file run one after another; on PostgreSQL claims read with `FOR UPDATE SKIP LOCKED`, so
/// replicas claiming at once take different rows.
#[async_trait]
impl HookStore for ThisStore {
    async fn hook_set(&self, hook: HookRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        set(&mut tx, &hook).await?;
        tx.commit().await.map_err(backend)
    }

    async fn hook_get(&self, app_id: &str) -> StoreResult<Option<HookRecord>> {
        get(self.reads(), app_id).await
    }

    async fn hook_remove(&self, app_id: &str) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let removed = remove(&mut tx, app_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(removed)
    }

    async fn hook_backlog(&self, app_id: &str) -> StoreResult<HookBacklog> {
        backlog(self.reads(), app_id).await
    }

    async fn hook_claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<HookDelivery>> {
        if !any_due(self.reads(), now_ms).await? {
            return Ok(Vec::new());
        }
        let mut tx = self.begin().await?;
        let claimed = claim(&mut tx, now_ms, lease_ms, limit).await?;
        tx.commit().await.map_err(backend)?;
        Ok(claimed)
    }

    async fn hook_ack(&self, id: i64) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        ack(&mut tx, id).await?;
        tx.commit().await.map_err(backend)
    }

    async fn hook_retry(
        &self,
        id: i64,
        next_attempt_ms: Option<i64>,
        error: &str,
    ) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        retry(&mut tx, id, next_attempt_ms, error).await?;
        tx.commit().await.map_err(backend)
    }
}
