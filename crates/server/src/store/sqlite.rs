//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so writers of one process queue in order
//! instead of spinning on the busy handler, and every writing transaction starts with
//! `BEGIN IMMEDIATE`: it takes the database's write lock before its first read, so its reads and
//! writes see one state even if another process writes the same file (waiting up to the busy
//! timeout). Reads use a separate pool and run concurrently with the writer (WAL).

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::{AppKeyRecord, AppRecord, CardRecord, NewCard, Store, StoreError, StoreResult};

/// The SQLite schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of the read pool.
const READERS: u32 = 4;

/// Identities bound per search statement (SQLite limits the number of bound parameters).
const SEARCH_CHUNK: usize = 500;

/// Rule texts of [`StoreError::Conflict`], shared with the PostgreSQL backend's wording.
const CARD_ID_EXISTS: &str = "card id exists";
const NOT_CURRENT: &str = "previous card is not the identity's current card";
const IDENTITY_HAS_CARD: &str = "identity already has a card";

const CARD_COLUMNS: &str =
    "id, app_id, identity, previous_card_id, superseded_by, revoked, raw, created_at";

/// A [`Store`] on one SQLite database file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Exactly one connection: every write, each in a `BEGIN IMMEDIATE` transaction.
    writer: SqlitePool,
    /// Read-only statements.
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating it and its parent directory if needed) the database at `path`, switches
    /// it to WAL mode with foreign keys on and a 5 s busy timeout, and applies the migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                tokio::fs::create_dir_all(parent).await.map_err(|e| {
                    StoreError::Backend(format!("creating {}: {e}", parent.display()))
                })?;
            }
        }
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let writer = SqlitePoolOptions::new()
            .min_connections(1)
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the SQLite schema: {e}")))?;
        let reader = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options)
            .await
            .map_err(backend)?;
        Ok(Self { writer, reader })
    }

    /// Closes both pools, waiting for the connections to finish (checkpointing the WAL).
    pub async fn close(&self) {
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Sqlite>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }
}

/// Any unexpected database error.
fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The kind and message of a database error, if it is one.
fn db_error(e: &sqlx::Error) -> Option<(ErrorKind, &str)> {
    match e {
        sqlx::Error::Database(d) => Some((d.kind(), d.message())),
        _ => None,
    }
}

/// Unique violations become `Conflict(rule)`, everything else `Backend`.
fn unique_or_backend(e: sqlx::Error, rule: &'static str) -> StoreError {
    match db_error(&e) {
        Some((ErrorKind::UniqueViolation, _)) => StoreError::Conflict(rule),
        _ => backend(e),
    }
}

fn app_from_row(row: &SqliteRow) -> Result<AppRecord, sqlx::Error> {
    Ok(AppRecord {
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn key_from_row(row: &SqliteRow) -> Result<AppKeyRecord, sqlx::Error> {
    Ok(AppKeyRecord {
        key_id: row.try_get("key_id")?,
        app_id: row.try_get("app_id")?,
        public_key: row.try_get("public_key")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn card_from_row(row: &SqliteRow) -> Result<CardRecord, sqlx::Error> {
    Ok(CardRecord {
        id: row.try_get("id")?,
        app_id: row.try_get("app_id")?,
        identity: row.try_get("identity")?,
        previous_card_id: row.try_get("previous_card_id")?,
        superseded_by: row.try_get("superseded_by")?,
        revoked: row.try_get("revoked")?,
        raw: row.try_get("raw")?,
        created_at: row.try_get("created_at")?,
    })
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_app(&self, app: AppRecord, key: AppKeyRecord) -> StoreResult<()> {
        if key.app_id != app.app_id {
            return Err(StoreError::Conflict("key belongs to another application"));
        }
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO apps (app_id, name, created_at) VALUES (?, ?, ?)")
            .bind(&app.app_id)
            .bind(&app.name)
            .bind(app.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_or_backend(e, "app id exists"))?;
        insert_key(&mut tx, &key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn list_apps(&self) -> StoreResult<Vec<AppRecord>> {
        let rows =
            sqlx::query("SELECT app_id, name, created_at FROM apps ORDER BY created_at, seq")
                .fetch_all(&self.reader)
                .await
                .map_err(backend)?;
        rows.iter()
            .map(app_from_row)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn app_keys(&self, app_id: &str) -> StoreResult<Vec<AppKeyRecord>> {
        let rows = sqlx::query(
            "SELECT key_id, app_id, public_key, created_at, revoked_at FROM app_keys \
             WHERE app_id = ? ORDER BY created_at, seq",
        )
        .bind(app_id)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        rows.iter()
            .map(key_from_row)
            .collect::<Result<_, _>>()
            .map_err(backend)
    }

    async fn app_key(&self, key_id: &str) -> StoreResult<Option<AppKeyRecord>> {
        let row = sqlx::query(
            "SELECT key_id, app_id, public_key, created_at, revoked_at FROM app_keys \
             WHERE key_id = ?",
        )
        .bind(key_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        row.as_ref().map(key_from_row).transpose().map_err(backend)
    }

    async fn add_app_key(&self, key: AppKeyRecord) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        insert_key(&mut tx, &key).await?;
        tx.commit().await.map_err(backend)
    }

    async fn revoke_app_key(&self, key_id: &str, at: i64) -> StoreResult<()> {
        let done = sqlx::query(
            "UPDATE app_keys SET revoked_at = COALESCE(revoked_at, ?) WHERE key_id = ?",
        )
        .bind(at)
        .bind(key_id)
        .execute(&self.writer)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn setting_or_insert(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let stored: Vec<u8> = sqlx::query_scalar("SELECT value FROM settings WHERE name = ?")
            .bind(name)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(stored)
    }

    async fn publish_card(&self, card: NewCard) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let taken: Option<i64> = sqlx::query_scalar("SELECT 1 FROM cards WHERE id = ?")
            .bind(&card.id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        if taken.is_some() {
            return Err(StoreError::Conflict(CARD_ID_EXISTS));
        }
        if let Some(previous) = &card.previous_card_id {
            // Supersede first: the new card may only become current once the old one is not.
            let done = sqlx::query(
                "UPDATE cards SET superseded_by = ? \
                 WHERE id = ? AND app_id = ? AND identity = ? \
                   AND superseded_by IS NULL AND revoked = 0",
            )
            .bind(&card.id)
            .bind(previous)
            .bind(&card.app_id)
            .bind(&card.identity)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if done.rows_affected() != 1 {
                return Err(StoreError::Conflict(NOT_CURRENT));
            }
        }
        sqlx::query(
            "INSERT INTO cards (id, app_id, identity, previous_card_id, raw, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(&card.id)
        .bind(&card.app_id)
        .bind(&card.identity)
        .bind(&card.previous_card_id)
        .bind(&card.raw)
        .bind(card.created_at)
        .execute(&mut *tx)
        .await
        .map_err(publish_error)?;
        tx.commit().await.map_err(backend)
    }

    async fn search_cards(
        &self,
        app_id: &str,
        identities: &[String],
    ) -> StoreResult<Vec<CardRecord>> {
        let mut seen = HashSet::new();
        let mut cards = Vec::new();
        for chunk in identities.chunks(SEARCH_CHUNK) {
            // The current cards of the identities, then their predecessors while not revoked.
            let mut query = QueryBuilder::<Sqlite>::new(
                "WITH RECURSIVE chain (id, previous_card_id) AS ( \
                   SELECT id, previous_card_id FROM cards \
                   WHERE app_id = ",
            );
            query.push_bind(app_id);
            query.push(" AND superseded_by IS NULL AND revoked = 0 AND identity IN (");
            let mut list = query.separated(", ");
            for identity in chunk {
                list.push_bind(identity);
            }
            query.push(
                ") UNION \
                   SELECT p.id, p.previous_card_id FROM chain \
                   JOIN cards AS p ON p.id = chain.previous_card_id \
                   WHERE p.revoked = 0 AND p.app_id = ",
            );
            query.push_bind(app_id);
            query.push(format!(
                ") SELECT {CARD_COLUMNS} FROM cards WHERE id IN (SELECT id FROM chain)"
            ));
            let rows = query
                .build()
                .fetch_all(&self.reader)
                .await
                .map_err(backend)?;
            for row in &rows {
                let card = card_from_row(row).map_err(backend)?;
                if seen.insert(card.id.clone()) {
                    cards.push(card);
                }
            }
        }
        Ok(cards)
    }

    async fn get_card(&self, app_id: &str, card_id: &str) -> StoreResult<Option<CardRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CARD_COLUMNS} FROM cards WHERE id = ? AND app_id = ?"
        ))
        .bind(card_id)
        .bind(app_id)
        .fetch_optional(&self.reader)
        .await
        .map_err(backend)?;
        row.as_ref().map(card_from_row).transpose().map_err(backend)
    }

    async fn revoke_card(&self, app_id: &str, card_id: &str, identity: &str) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        let owner: Option<String> =
            sqlx::query_scalar("SELECT identity FROM cards WHERE id = ? AND app_id = ?")
                .bind(card_id)
                .bind(app_id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        match owner {
            None => return Err(StoreError::NotFound),
            Some(owner) if owner != identity => {
                return Err(StoreError::Forbidden("card belongs to another identity"))
            }
            Some(_) => {}
        }
        sqlx::query("UPDATE cards SET revoked = 1 WHERE id = ?")
            .bind(card_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }
}

/// Inserts an API key inside a write transaction.
async fn insert_key(
    tx: &mut sqlx::Transaction<'static, Sqlite>,
    key: &AppKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO app_keys (key_id, app_id, public_key, created_at, revoked_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(&key.key_id)
    .bind(&key.app_id)
    .bind(&key.public_key)
    .bind(key.created_at)
    .bind(key.revoked_at)
    .execute(&mut **tx)
    .await
    .map_err(|e| match db_error(&e) {
        Some((ErrorKind::UniqueViolation, _)) => StoreError::Conflict("key id exists"),
        Some((ErrorKind::ForeignKeyViolation, _)) => StoreError::NotFound,
        _ => backend(e),
    })?;
    Ok(())
}

/// Maps a failed card insert to the rule it broke. SQLite names the index columns in the
/// message: "UNIQUE constraint failed: cards.id" and so on.
fn publish_error(e: sqlx::Error) -> StoreError {
    match db_error(&e) {
        Some((ErrorKind::UniqueViolation, message)) => {
            if message.ends_with("cards.id") {
                StoreError::Conflict(CARD_ID_EXISTS)
            } else if message.contains("previous_card_id") {
                StoreError::Conflict(NOT_CURRENT)
            } else {
                StoreError::Conflict(IDENTITY_HAS_CARD)
            }
        }
        _ => backend(e),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::SqliteStore;
    use crate::store::conformance;
    use tempfile::TempDir;

    /// A store on a fresh database file; the directory lives as long as the returned guard.
    async fn temp_store() -> (SqliteStore, TempDir) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = SqliteStore::open(&dir.path().join("nested/dir/sealkit.db"))
            .await
            .expect("open SQLite store");
        (store, dir)
    }

    crate::store_conformance_tests!(temp_store());

    /// Two stores on one file behave like two server processes sharing it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_on_one_file_agree() {
        let (a, dir) = temp_store().await;
        let b = SqliteStore::open(&dir.path().join("nested/dir/sealkit.db"))
            .await
            .expect("second handle");
        conformance::replicas_agree(&a, &b).await;
        a.close().await;
        b.close().await;
    }

    #[tokio::test]
    async fn reopening_keeps_data_and_migrations_are_idempotent() {
        let (store, dir) = temp_store().await;
        let value = crate::store::Store::setting_or_insert(&store, "k", b"v1")
            .await
            .unwrap();
        assert_eq!(value, b"v1");
        store.close().await;
        let store = SqliteStore::open(&dir.path().join("nested/dir/sealkit.db"))
            .await
            .unwrap();
        let value = crate::store::Store::setting_or_insert(&store, "k", b"v2")
            .await
            .unwrap();
        assert_eq!(value, b"v1");
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&store.reader)
            .await
            .unwrap();
        assert_eq!(mode, "wal");
    }
}
