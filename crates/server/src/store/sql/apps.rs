//! Applications, API keys and settings: every statement is the same on both backends.

use sqlx::Executor;

use super::{backend, error_kind, unique_or_backend, Conn, Db};
use crate::store::{AppKeyRecord, AppRecord, Conflict, StoreError, StoreResult};

/// Inserts an application (`Conflict(AppExists)` if its id is taken).
pub(crate) async fn insert_app(conn: &mut Conn, app: &AppRecord) -> StoreResult<()> {
    sqlx::query("INSERT INTO apps (app_id, name, created_at) VALUES ($1, $2, $3)")
        .bind(&app.app_id)
        .bind(&app.name)
        .bind(app.created_at)
        .execute(conn)
        .await
        .map_err(|e| unique_or_backend(e, Conflict::AppExists))?;
    Ok(())
}

/// Inserts an API key: a taken key id is `Conflict(KeyExists)`, a missing application
/// `NotFound` (the foreign key).
pub(crate) async fn insert_key(conn: &mut Conn, key: &AppKeyRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO app_keys (key_id, app_id, public_key, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(&key.key_id)
    .bind(&key.app_id)
    .bind(&key.public_key)
    .bind(key.created_at)
    .bind(key.revoked_at)
    .execute(conn)
    .await
    .map_err(|e| match error_kind(&e) {
        Some(sqlx::error::ErrorKind::UniqueViolation) => StoreError::Conflict(Conflict::KeyExists),
        Some(sqlx::error::ErrorKind::ForeignKeyViolation) => StoreError::NotFound,
        _ => backend(e),
    })?;
    Ok(())
}

/// All applications, oldest first.
pub(crate) async fn list_apps<'c>(
    db: impl Executor<'c, Database = Db>,
) -> StoreResult<Vec<AppRecord>> {
    sqlx::query_as("SELECT app_id, name, created_at FROM apps ORDER BY created_at, seq")
        .fetch_all(db)
        .await
        .map_err(backend)
}

/// The keys of one application, oldest first.
pub(crate) async fn app_keys<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
) -> StoreResult<Vec<AppKeyRecord>> {
    sqlx::query_as(
        "SELECT key_id, app_id, public_key, created_at, revoked_at FROM app_keys \
         WHERE app_id = $1 ORDER BY created_at, seq",
    )
    .bind(app_id)
    .fetch_all(db)
    .await
    .map_err(backend)
}

/// One key by id.
pub(crate) async fn app_key<'c>(
    db: impl Executor<'c, Database = Db>,
    key_id: &str,
) -> StoreResult<Option<AppKeyRecord>> {
    sqlx::query_as(
        "SELECT key_id, app_id, public_key, created_at, revoked_at FROM app_keys \
         WHERE key_id = $1",
    )
    .bind(key_id)
    .fetch_optional(db)
    .await
    .map_err(backend)
}

/// Revokes a key, keeping the first revocation time; `NotFound` if there is no such key.
pub(crate) async fn revoke_app_key<'c>(
    db: impl Executor<'c, Database = Db>,
    key_id: &str,
    at: i64,
) -> StoreResult<()> {
    let done =
        sqlx::query("UPDATE app_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE key_id = $2")
            .bind(at)
            .bind(key_id)
            .execute(db)
            .await
            .map_err(backend)?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// Stores `value` under `name` unless a value is stored there already.
pub(crate) async fn insert_setting<'c>(
    db: impl Executor<'c, Database = Db>,
    name: &str,
    value: &[u8],
) -> StoreResult<()> {
    sqlx::query("INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING")
        .bind(name)
        .bind(value)
        .execute(db)
        .await
        .map_err(backend)?;
    Ok(())
}

/// The value stored under `name` (which must exist).
pub(crate) async fn read_setting<'c>(
    db: impl Executor<'c, Database = Db>,
    name: &str,
) -> StoreResult<Vec<u8>> {
    sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
        .bind(name)
        .fetch_one(db)
        .await
        .map_err(backend)
}
