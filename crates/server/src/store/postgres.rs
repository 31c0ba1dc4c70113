//! The shared backend: PostgreSQL, for several server replicas on one database.
//!
//! Every rule that must hold across processes is enforced by the database inside the writing
//! transaction (READ COMMITTED), never by read-then-write in the application:
//! * one current card per identity: the partial unique index `cards_one_current` on
//!   `(app_id, identity) WHERE superseded_by IS NULL AND NOT revoked` — a concurrent first publish
//!   waits for the other transaction and then fails with a unique violation (`Conflict`);
//! * one successor per card: rotation supersedes the previous card with a conditional
//!   `UPDATE … WHERE superseded_by IS NULL AND NOT revoked` and requires exactly one row; the
//!   loser of two concurrent rotations blocks on the row lock, re-checks the condition after the
//!   winner commits, updates nothing and gets `Conflict` (the unique index on `previous_card_id`
//!   backs this up);
//! * settings: `INSERT … ON CONFLICT DO NOTHING`, then read what won.

use std::collections::HashSet;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Executor, PgConnection, Postgres, Row};

use super::{AppKeyRecord, AppRecord, CardRecord, NewCard, Store, StoreError, StoreResult};

/// The PostgreSQL schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per pool (per server process).
const MAX_CONNECTIONS: u32 = 10;

/// Rule texts of [`StoreError::Conflict`], worded as in the SQLite backend.
const CARD_ID_EXISTS: &str = "card id exists";
const NOT_CURRENT: &str = "previous card is not the identity's current card";
const IDENTITY_HAS_CARD: &str = "identity already has a card";

const CARD_COLUMNS: &str =
    "id, app_id, identity, previous_card_id, superseded_by, revoked, raw, created_at";

/// A [`Store`] on a PostgreSQL database, safe to share between server processes.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    /// Connects a pool to `url` (`postgres://user:password@host:port/database`) and applies the
    /// migrations (concurrent replicas serialise on sqlx's migration lock).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .connect(url)
            .await
            .map_err(backend)?;
        Self::migrated(pool).await
    }

    /// Creates the schema `schema` (lowercase ASCII letters, digits and `_`, not starting with
    /// a digit; it must not exist yet) and connects to it as [`Self::connect_in_schema`] does.
    /// Meant for tests: each gets an empty database of its own inside one PostgreSQL database.
    /// Remove it with [`Self::drop_schema`].
    pub async fn connect_fresh_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        check_schema_name(schema)?;
        let mut conn = PgConnection::connect(url).await.map_err(backend)?;
        conn.execute(format!("CREATE SCHEMA \"{schema}\"").as_str())
            .await
            .map_err(backend)?;
        conn.close().await.map_err(backend)?;
        Self::connect_in_schema(url, schema).await
    }

    /// Like [`Self::connect`], but every pooled connection uses the existing schema `schema`
    /// (same naming rules as [`Self::connect_fresh_schema`]) as its `search_path`, so Sealkit's
    /// tables and migration history live there.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        check_schema_name(schema)?;
        let search_path = format!("SET search_path TO \"{schema}\"");
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .after_connect(move |conn, _meta| {
                let search_path = search_path.clone();
                Box::pin(async move {
                    conn.execute(search_path.as_str()).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(backend)?;
        Self::migrated(pool).await
    }

    /// Drops a schema made by [`Self::connect_fresh_schema`] with everything in it. Close the
    /// stores using it first.
    pub async fn drop_schema(url: &str, schema: &str) -> Result<(), StoreError> {
        check_schema_name(schema)?;
        let mut conn = PgConnection::connect(url).await.map_err(backend)?;
        conn.execute(format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE").as_str())
            .await
            .map_err(backend)?;
        conn.close().await.map_err(backend)
    }

    /// Closes the pool, waiting for checked-out connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    async fn migrated(pool: PgPool) -> Result<Self, StoreError> {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the PostgreSQL schema: {e}")))?;
        Ok(Self { pool })
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Postgres>> {
        self.pool.begin().await.map_err(backend)
    }
}

/// Schema names are spliced into SQL, so only a safe subset is accepted.
fn check_schema_name(schema: &str) -> StoreResult<()> {
    let mut chars = schema.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && schema.len() <= 63;
    if valid {
        Ok(())
    } else {
        Err(StoreError::Backend(format!(
            "invalid schema name {schema:?}"
        )))
    }
}

/// Any unexpected database error.
fn backend(e: sqlx::Error) -> StoreError {
    StoreError::Backend(e.to_string())
}

/// The kind and violated constraint of a database error, if it is one.
fn db_error(e: &sqlx::Error) -> Option<(ErrorKind, Option<&str>)> {
    match e {
        sqlx::Error::Database(d) => Some((d.kind(), d.constraint())),
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

fn app_from_row(row: &PgRow) -> Result<AppRecord, sqlx::Error> {
    Ok(AppRecord {
        app_id: row.try_get("app_id")?,
        name: row.try_get("name")?,
        created_at: row.try_get("created_at")?,
    })
}

fn key_from_row(row: &PgRow) -> Result<AppKeyRecord, sqlx::Error> {
    Ok(AppKeyRecord {
        key_id: row.try_get("key_id")?,
        app_id: row.try_get("app_id")?,
        public_key: row.try_get("public_key")?,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

fn card_from_row(row: &PgRow) -> Result<CardRecord, sqlx::Error> {
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
impl Store for PostgresStore {
    async fn create_app(&self, app: AppRecord, key: AppKeyRecord) -> StoreResult<()> {
        if key.app_id != app.app_id {
            return Err(StoreError::Conflict("key belongs to another application"));
        }
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO apps (app_id, name, created_at) VALUES ($1, $2, $3)")
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
                .fetch_all(&self.pool)
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
             WHERE app_id = $1 ORDER BY created_at, seq",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
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
             WHERE key_id = $1",
        )
        .bind(key_id)
        .fetch_optional(&self.pool)
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
            "UPDATE app_keys SET revoked_at = COALESCE(revoked_at, $1) WHERE key_id = $2",
        )
        .bind(at)
        .bind(key_id)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn setting_or_insert(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>> {
        // Two statements, each in its own snapshot: a concurrent inserter of the same name makes
        // the INSERT wait for its commit and then do nothing, and the SELECT sees its value.
        sqlx::query(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        sqlx::query_scalar("SELECT value FROM settings WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }

    async fn publish_card(&self, card: NewCard) -> StoreResult<()> {
        let mut tx = self.begin().await?;
        // Only for the precise message: a concurrent publish of the same id is still caught by
        // the primary key below.
        let taken: Option<i32> = sqlx::query_scalar("SELECT 1 FROM cards WHERE id = $1")
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
                "UPDATE cards SET superseded_by = $1 \
                 WHERE id = $2 AND app_id = $3 AND identity = $4 \
                   AND superseded_by IS NULL AND NOT revoked",
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
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&card.id)
        .bind(&card.app_id)
        .bind(&card.identity)
        .bind(&card.previous_card_id)
        .bind(&card.raw)
        .bind(card.created_at)
        .execute(&mut *tx)
        .await
        .map_err(|e| match db_error(&e) {
            Some((ErrorKind::UniqueViolation, Some("cards_pkey"))) => {
                StoreError::Conflict(CARD_ID_EXISTS)
            }
            Some((ErrorKind::UniqueViolation, Some("cards_one_successor"))) => {
                StoreError::Conflict(NOT_CURRENT)
            }
            Some((ErrorKind::UniqueViolation, _)) => StoreError::Conflict(IDENTITY_HAS_CARD),
            _ => backend(e),
        })?;
        tx.commit().await.map_err(backend)
    }

    async fn search_cards(
        &self,
        app_id: &str,
        identities: &[String],
    ) -> StoreResult<Vec<CardRecord>> {
        if identities.is_empty() {
            return Ok(Vec::new());
        }
        // The current cards of the identities, then their predecessors while not revoked. UNION
        // (not UNION ALL) returns each card once.
        let rows = sqlx::query(&format!(
            "WITH RECURSIVE chain (id, previous_card_id) AS ( \
               SELECT id, previous_card_id FROM cards \
               WHERE app_id = $1 AND identity = ANY($2) \
                 AND superseded_by IS NULL AND NOT revoked \
               UNION \
               SELECT p.id, p.previous_card_id FROM chain \
               JOIN cards AS p ON p.id = chain.previous_card_id \
               WHERE NOT p.revoked AND p.app_id = $1 \
             ) \
             SELECT {CARD_COLUMNS} FROM cards WHERE id IN (SELECT id FROM chain)"
        ))
        .bind(app_id)
        .bind(identities)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut seen = HashSet::new();
        let mut cards = Vec::with_capacity(rows.len());
        for row in &rows {
            let card = card_from_row(row).map_err(backend)?;
            if seen.insert(card.id.clone()) {
                cards.push(card);
            }
        }
        Ok(cards)
    }

    async fn get_card(&self, app_id: &str, card_id: &str) -> StoreResult<Option<CardRecord>> {
        let row = sqlx::query(&format!(
            "SELECT {CARD_COLUMNS} FROM cards WHERE id = $1 AND app_id = $2"
        ))
        .bind(card_id)
        .bind(app_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(card_from_row).transpose().map_err(backend)
    }

    async fn revoke_card(&self, app_id: &str, card_id: &str, identity: &str) -> StoreResult<()> {
        // Identity and app of a card never change and revocation is final, so one conditional
        // UPDATE decides; the SELECT after a miss only tells which error it is.
        let done = sqlx::query(
            "UPDATE cards SET revoked = TRUE WHERE id = $1 AND app_id = $2 AND identity = $3",
        )
        .bind(card_id)
        .bind(app_id)
        .bind(identity)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let exists: Option<i32> =
            sqlx::query_scalar("SELECT 1 FROM cards WHERE id = $1 AND app_id = $2")
                .bind(card_id)
                .bind(app_id)
                .fetch_optional(&self.pool)
                .await
                .map_err(backend)?;
        match exists {
            None => Err(StoreError::NotFound),
            Some(_) => Err(StoreError::Forbidden("card belongs to another identity")),
        }
    }
}

/// Inserts an API key inside a transaction.
async fn insert_key(
    tx: &mut sqlx::Transaction<'static, Postgres>,
    key: &AppKeyRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO app_keys (key_id, app_id, public_key, created_at, revoked_at) \
         VALUES ($1, $2, $3, $4, $5)",
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    use super::PostgresStore;
    use crate::store::conformance;

    const DEFAULT_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

    fn database_url() -> String {
        std::env::var("DATABASE_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned())
    }

    /// Drops the test's schema when the test ends (passed or failed).
    struct SchemaGuard {
        url: String,
        schema: String,
    }

    impl Drop for SchemaGuard {
        fn drop(&mut self) {
            // Tests run on the multi-threaded runtime, where blocking a worker is allowed.
            let (url, schema) = (self.url.clone(), self.schema.clone());
            tokio::task::block_in_place(move || {
                tokio::runtime::Handle::current().block_on(async move {
                    // A leftover schema is harmless; never turn a result into a double panic.
                    let _ = PostgresStore::drop_schema(&url, &schema).await;
                });
            });
        }
    }

    /// A unique schema name: process id, counter and time, so parallel test binaries and
    /// leftovers of earlier runs never collide.
    fn schema_name() -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!(
            "sealkit_test_{}_{}_{nanos}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        )
    }

    /// A store on a fresh schema, dropped with the returned guard.
    async fn fresh_store() -> (PostgresStore, SchemaGuard) {
        let url = database_url();
        let schema = schema_name();
        let store = PostgresStore::connect_fresh_schema(&url, &schema)
            .await
            .expect("PostgreSQL reachable at DATABASE_URL");
        (store, SchemaGuard { url, schema })
    }

    crate::store_conformance_tests!(fresh_store());

    /// Two pools on one schema behave like two server processes on one database.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_on_one_database_agree() {
        let (a, guard) = fresh_store().await;
        let b = PostgresStore::connect_in_schema(&guard.url, &guard.schema)
            .await
            .expect("second replica");
        conformance::replicas_agree(&a, &b).await;
        a.close().await;
        b.close().await;
    }

    #[tokio::test]
    async fn schema_names_are_checked() {
        for bad in ["", "1abc", "a\"b", "Abc", "a;drop", &"x".repeat(64)] {
            assert!(
                PostgresStore::connect_fresh_schema(&database_url(), bad)
                    .await
                    .is_err(),
                "{bad:?}"
            );
        }
    }
}
