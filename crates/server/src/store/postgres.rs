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
//! * settings: `INSERT … ON CONFLICT DO NOTHING`, then read what won;
//! * Keyknox compare-and-swap (v1 blob, v2 entry) and rate-limit buckets: the writer locks the
//!   row (`SELECT … FOR UPDATE`) and compares against what the previous writer committed; a
//!   missing row is created with `INSERT … ON CONFLICT DO NOTHING`, and the loser of a creation
//!   race locks and compares the winner's row instead. A v2 reset locks the matching entries
//!   first, so no push adds a copy between its deletions.
//! * chat: every membership change and post first locks its channel's row
//!   (`SELECT … FOR UPDATE`), so they queue per channel across replicas (different channels do
//!   not contend) and see what the previous one committed: membership, `member_version`, the
//!   member limit, the last admin and idempotent `client_id`s are checked under the lock, and
//!   `seq` is `last_seq + 1` from the same row. Events are `NOTIFY`s sent in the writing
//!   transaction (delivered on commit only, in commit order); each event stream `LISTEN`s on a
//!   connection of its own and says [`ChatEvent::Resync`] after losing it.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Connection, Executor, PgConnection, Postgres, Row};

use super::rules::{self, Bucket, MemberChange};
use super::sql::{backend, key_insert_error, unique_or_backend};
use super::{
    AppKeyRecord, AppRecord, CardRecord, ChannelRecord, ChatEvent, ChatEventStream,
    ChatMessageRecord, ChatStore, HistoryCursor, KeyknoxAddress, KeyknoxStore, KeyknoxV1,
    KeyknoxV2Copy, KeyknoxV2Push, KeyknoxV2Reset, NewCard, NewChatMessage, Posted, RateLimitStore,
    Store, StoreError, StoreResult,
};
use super::{Conflict, Forbidden};

/// The PostgreSQL schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per pool (per server process).
/// Every statement here is prepared once per connection and executed with varying parameters;
/// PostgreSQL's default re-plans the card search on every execution (planning took 3–10x longer
/// than executing it in the load benchmark). A generic plan is made once per connection.
const GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

const MAX_CONNECTIONS: u32 = 10;

const CARD_COLUMNS: &str =
    "id, app_id, identity, previous_card_id, superseded_by, revoked, raw, created_at";

/// A [`Store`] on a PostgreSQL database, safe to share between server processes.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// The `NOTIFY` channel of chat events (one per schema: notifications are database-wide).
    events_channel: String,
}

impl PostgresStore {
    /// Connects a pool to `url` (`postgres://user:password@host:port/database`) and applies the
    /// migrations (concurrent replicas serialise on sqlx's migration lock).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .after_connect(|conn, _meta| {
                Box::pin(async move {
                    conn.execute(GENERIC_PLANS).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(backend)?;
        Self::migrated(pool, EVENTS_CHANNEL.to_owned()).await
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
                    conn.execute(GENERIC_PLANS).await?;
                    Ok(())
                })
            })
            .connect(url)
            .await
            .map_err(backend)?;
        Self::migrated(pool, schema_events_channel(schema)).await
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

    async fn migrated(pool: PgPool, events_channel: String) -> Result<Self, StoreError> {
        MIGRATOR
            .run(&pool)
            .await
            .map_err(|e| StoreError::Backend(format!("migrating the PostgreSQL schema: {e}")))?;
        Ok(Self {
            pool,
            events_channel,
        })
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

/// The kind and violated constraint of a database error, if it is one.
fn db_error(e: &sqlx::Error) -> Option<(ErrorKind, Option<&str>)> {
    match e {
        sqlx::Error::Database(d) => Some((d.kind(), d.constraint())),
        _ => None,
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
        rules::check_first_key(&app, &key).map_err(StoreError::Conflict)?;
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO apps (app_id, name, created_at) VALUES ($1, $2, $3)")
            .bind(&app.app_id)
            .bind(&app.name)
            .bind(app.created_at)
            .execute(&mut *tx)
            .await
            .map_err(|e| unique_or_backend(e, Conflict::AppExists))?;
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
            return Err(StoreError::Conflict(Conflict::CardIdExists));
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
                return Err(StoreError::Conflict(Conflict::NotCurrentCard));
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
                StoreError::Conflict(Conflict::CardIdExists)
            }
            Some((ErrorKind::UniqueViolation, Some("cards_one_successor"))) => {
                StoreError::Conflict(Conflict::NotCurrentCard)
            }
            Some((ErrorKind::UniqueViolation, _)) => {
                StoreError::Conflict(Conflict::IdentityHasCard)
            }
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
            Some(_) => Err(StoreError::Forbidden(Forbidden::CardOfAnotherIdentity)),
        }
    }
}

/// How often a writer that lost a creation race (`INSERT … ON CONFLICT DO NOTHING` inserted
/// nothing) looks at the row again before giving up with a conflict.
const CREATE_ATTEMPTS: usize = 3;

/// Every holder of a copy of an entry, sorted by Rust's string order (not the database
/// collation's).
async fn copy_holders(conn: &mut PgConnection, entry_id: i64) -> StoreResult<Vec<String>> {
    let mut identities: Vec<String> =
        sqlx::query_scalar("SELECT identity FROM keyknox_copies WHERE entry_id = $1")
            .bind(entry_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    identities.sort_unstable();
    Ok(identities)
}

/// Compare-and-swap, PostgreSQL style: each writer locks the row it is about to change
/// (`SELECT … FOR UPDATE`), so concurrent writers of one blob or entry queue on the row lock and
/// each compares the hash the previous one committed. A missing row is created with
/// `INSERT … ON CONFLICT DO NOTHING`; if a concurrent transaction created it first, the insert
/// waits for that commit, inserts nothing, and the loop locks and compares the winner's row.
#[async_trait]
impl KeyknoxStore for PostgresStore {
    async fn keyknox_v1_get(&self, app_id: &str, identity: &str) -> StoreResult<Option<KeyknoxV1>> {
        let row = sqlx::query(
            "SELECT meta, value, version, hash FROM keyknox_v1 \
             WHERE app_id = $1 AND identity = $2",
        )
        .bind(app_id)
        .bind(identity)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        row.as_ref().map(v1_from_row).transpose().map_err(backend)
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
        let mut tx = self.begin().await?;
        let mut version = None;
        for _ in 0..CREATE_ATTEMPTS {
            let stored = sqlx::query(
                "SELECT meta, value, version, hash FROM keyknox_v1 \
                 WHERE app_id = $1 AND identity = $2 FOR UPDATE",
            )
            .bind(app_id)
            .bind(identity)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?
            .as_ref()
            .map(v1_from_row)
            .transpose()
            .map_err(backend)?;
            let next_version = rules::keyknox_v1_next_version(stored.as_ref(), previous_hash)
                .map_err(StoreError::Conflict)?;
            if stored.is_some() {
                sqlx::query(
                    "UPDATE keyknox_v1 SET meta = $3, value = $4, version = $5, hash = $6 \
                     WHERE app_id = $1 AND identity = $2",
                )
                .bind(app_id)
                .bind(identity)
                .bind(meta)
                .bind(value)
                .bind(next_version)
                .bind(new_hash)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                version = Some(next_version);
                break;
            }
            let created = sqlx::query(
                "INSERT INTO keyknox_v1 (app_id, identity, meta, value, version, hash) \
                 VALUES ($1, $2, $3, $4, 1, $5) ON CONFLICT (app_id, identity) DO NOTHING",
            )
            .bind(app_id)
            .bind(identity)
            .bind(meta)
            .bind(value)
            .bind(new_hash)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if created.rows_affected() == 1 {
                version = Some(1);
                break;
            }
        }
        let Some(version) = version else {
            return Err(StoreError::Conflict(Conflict::KeyknoxHashMismatch));
        };
        tx.commit().await.map_err(backend)?;
        Ok(KeyknoxV1 {
            meta: meta.to_owned(),
            value: value.to_owned(),
            version,
            hash: new_hash.to_owned(),
        })
    }

    async fn keyknox_v1_reset(
        &self,
        app_id: &str,
        identity: &str,
        new_hash: &str,
    ) -> StoreResult<KeyknoxV1> {
        let version: Option<i64> = sqlx::query_scalar(
            "UPDATE keyknox_v1 SET meta = '', value = '', version = version + 1, hash = $3 \
             WHERE app_id = $1 AND identity = $2 RETURNING version",
        )
        .bind(app_id)
        .bind(identity)
        .bind(new_hash)
        .fetch_optional(&self.pool)
        .await
        .map_err(backend)?;
        Ok(rules::keyknox_v1_after_reset(version, new_hash))
    }

    async fn keyknox_v2_push(&self, push: KeyknoxV2Push) -> StoreResult<KeyknoxV2Copy> {
        let a = &push.address;
        let previous = push.previous_hash.as_deref();
        let mut tx = self.begin().await?;
        let mut entry_id = None;
        for _ in 0..CREATE_ATTEMPTS {
            let stored: Option<(i64, String)> = sqlx::query_as(
                "SELECT id, hash FROM keyknox_entries \
                 WHERE app_id = $1 AND owner = $2 AND root = $3 AND path = $4 AND key = $5 \
                 FOR UPDATE",
            )
            .bind(&a.app_id)
            .bind(&a.owner)
            .bind(&a.root)
            .bind(&a.path)
            .bind(&a.key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if let Some((id, hash)) = stored {
                rules::keyknox_v2_check_previous(Some(&hash), previous)
                    .map_err(StoreError::Conflict)?;
                sqlx::query("UPDATE keyknox_entries SET hash = $2 WHERE id = $1")
                    .bind(id)
                    .bind(&push.new_hash)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                entry_id = Some(id);
                break;
            }
            rules::keyknox_v2_check_previous(None, previous).map_err(StoreError::Conflict)?;
            entry_id = sqlx::query_scalar(
                "INSERT INTO keyknox_entries (app_id, owner, root, path, key, hash) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT ON CONSTRAINT keyknox_entries_address DO NOTHING RETURNING id",
            )
            .bind(&a.app_id)
            .bind(&a.owner)
            .bind(&a.root)
            .bind(&a.path)
            .bind(&a.key)
            .bind(&push.new_hash)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            if entry_id.is_some() {
                break;
            }
        }
        let Some(entry_id) = entry_id else {
            return Err(StoreError::Conflict(Conflict::KeyknoxHashMismatch));
        };
        // Deduplicated first: one upsert may not touch a row twice.
        let recipients = rules::keyknox_v2_recipients(&push.identities);
        sqlx::query(
            "INSERT INTO keyknox_copies (entry_id, identity, meta, value) \
             SELECT $1, recipient, $3, $4 FROM UNNEST($2::text[]) AS recipient \
             ON CONFLICT (entry_id, identity) DO UPDATE SET \
               meta = EXCLUDED.meta, value = EXCLUDED.value",
        )
        .bind(entry_id)
        .bind(&recipients)
        .bind(&push.meta)
        .bind(&push.value)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let identities = copy_holders(&mut tx, entry_id).await?;
        if identities.is_empty() {
            // A push for nobody: an entry exists only while someone holds a copy.
            sqlx::query("DELETE FROM keyknox_entries WHERE id = $1")
                .bind(entry_id)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(KeyknoxV2Copy {
            meta: push.meta,
            value: push.value,
            identities,
            hash: push.new_hash,
        })
    }

    async fn keyknox_v2_pull(
        &self,
        address: &KeyknoxAddress,
        reader: &str,
    ) -> StoreResult<Option<KeyknoxV2Copy>> {
        // One statement, so the copy and the list of holders come from one snapshot.
        let row: Option<(String, String, String, Vec<String>)> = sqlx::query_as(
            "SELECT e.hash, c.meta, c.value, \
               ARRAY(SELECT h.identity FROM keyknox_copies AS h WHERE h.entry_id = e.id) \
             FROM keyknox_entries AS e \
             JOIN keyknox_copies AS c ON c.entry_id = e.id AND c.identity = $6 \
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
        let mut keys: Vec<String> = sqlx::query_scalar(
            "SELECT e.key FROM keyknox_entries AS e \
             WHERE e.app_id = $1 AND e.owner = $2 AND e.root = $3 AND e.path = $4 \
               AND EXISTS (SELECT 1 FROM keyknox_copies AS c \
                           WHERE c.entry_id = e.id AND c.identity = $5)",
        )
        .bind(app_id)
        .bind(owner)
        .bind(root)
        .bind(path)
        .bind(reader)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        keys.sort_unstable();
        Ok(keys)
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
                // The copies go with their entries (ON DELETE CASCADE).
                sqlx::query("DELETE FROM keyknox_entries WHERE id = ANY($1)")
                    .bind(&ids)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            Some(identity) => {
                // Remove the copies, then the entries left without any; hashes stay.
                sqlx::query(
                    "DELETE FROM keyknox_copies WHERE entry_id = ANY($1) AND identity = $2",
                )
                .bind(&ids)
                .bind(identity)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                sqlx::query(
                    "DELETE FROM keyknox_entries AS e WHERE e.id = ANY($1) AND NOT EXISTS \
                     (SELECT 1 FROM keyknox_copies AS c WHERE c.entry_id = e.id)",
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

/// One transaction per take: the bucket's row is locked (`SELECT … FOR UPDATE`), refilled and
/// debited, so concurrent takes on any replica queue on the row; a new bucket is created with
/// `INSERT … ON CONFLICT DO NOTHING`, and a loser of that race locks the winner's row instead.
#[async_trait]
impl RateLimitStore for PostgresStore {
    async fn rate_limit_take(
        &self,
        key: &str,
        now_ms: i64,
        burst: u32,
        per_second: f64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        for _ in 0..CREATE_ATTEMPTS {
            let stored: Option<(f64, i64)> = sqlx::query_as(
                "SELECT tokens, updated_ms FROM rate_limits WHERE key = $1 FOR UPDATE",
            )
            .bind(key)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
            let stored = stored.map(|(tokens, updated_ms)| Bucket { tokens, updated_ms });
            let (bucket, taken) = rules::take_token(stored, now_ms, burst, per_second);
            if stored.is_some() {
                sqlx::query("UPDATE rate_limits SET tokens = $2, updated_ms = $3 WHERE key = $1")
                    .bind(key)
                    .bind(bucket.tokens)
                    .bind(bucket.updated_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                tx.commit().await.map_err(backend)?;
                return Ok(taken);
            }
            let created = sqlx::query(
                "INSERT INTO rate_limits (key, tokens, updated_ms) VALUES ($1, $2, $3) \
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(bucket.tokens)
            .bind(bucket.updated_ms)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
            if created.rows_affected() == 1 {
                tx.commit().await.map_err(backend)?;
                return Ok(taken);
            }
        }
        Err(StoreError::Backend(format!(
            "rate limit bucket {key:?} could neither be created nor locked"
        )))
    }
}

/// The `NOTIFY` channel of a deployment in the connection's default schema.
const EVENTS_CHANNEL: &str = "sealkit_chat";

/// Waits between attempts to re-establish a lost `LISTEN` connection.
const LISTEN_RETRY_FIRST: Duration = Duration::from_millis(100);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

const MESSAGE_COLUMNS: &str =
    "channel_id, seq, sender, client_id, ciphertext, member_version, sent_at_ms";

/// The `NOTIFY` channel of a deployment in schema `schema`: notifications are database-wide,
/// so deployments (and tests) in different schemas of one database must not hear each other.
/// Hashed because channel names are identifiers of at most 63 bytes.
fn schema_events_channel(schema: &str) -> String {
    let digest = Sha256::digest(schema.as_bytes());
    format!("{EVENTS_CHANNEL}_{}", hex::encode(&digest[..8]))
}

/// A [`ChatEvent`] as a `NOTIFY` payload: short JSON (ids are at most 128 + 32 bytes, far
/// below PostgreSQL's 8000-byte payload limit).
#[derive(Serialize, Deserialize)]
struct Notice {
    app: String,
    channel: String,
    /// `"message"` (then `n` is the seq) or `"members"` (then `n` is the member version).
    kind: String,
    n: i64,
}

impl Notice {
    fn into_event(self) -> Option<ChatEvent> {
        match self.kind.as_str() {
            "message" => Some(ChatEvent::Message {
                app_id: self.app,
                channel_id: self.channel,
                seq: self.n,
            }),
            "members" => Some(ChatEvent::Members {
                app_id: self.app,
                channel_id: self.channel,
                member_version: self.n,
            }),
            _ => None,
        }
    }
}

/// Queues a notification in the caller's transaction: PostgreSQL delivers it on commit only.
async fn notify(
    conn: &mut PgConnection,
    events_channel: &str,
    app_id: &str,
    channel_id: &str,
    kind: &str,
    n: i64,
) -> StoreResult<()> {
    let payload = serde_json::to_string(&Notice {
        app: app_id.to_owned(),
        channel: channel_id.to_owned(),
        kind: kind.to_owned(),
        n,
    })
    .map_err(|e| StoreError::Backend(format!("encoding a chat notice: {e}")))?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(events_channel)
        .bind(payload)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

fn message_from_row(row: &PgRow) -> Result<ChatMessageRecord, sqlx::Error> {
    Ok(ChatMessageRecord {
        channel_id: row.try_get("channel_id")?,
        seq: row.try_get("seq")?,
        sender: row.try_get("sender")?,
        client_id: row.try_get("client_id")?,
        ciphertext: row.try_get("ciphertext")?,
        member_version: row.try_get("member_version")?,
        sent_at_ms: row.try_get("sent_at_ms")?,
    })
}

/// Channels with their members, one row per member (`identity` NULL for a channel without
/// members), from one statement, hence one snapshot. Filters follow in the caller's query.
const CHANNEL_WITH_MEMBERS: &str = "SELECT c.app_id, c.id, c.kind, c.open, c.created_by, \
     c.created_at_ms, c.member_version, c.last_seq, m.identity, m.admin \
     FROM chat_channels AS c \
     LEFT JOIN chat_members AS m ON m.app_id = c.app_id AND m.channel_id = c.id";

/// Groups the rows of a [`CHANNEL_WITH_MEMBERS`] query into channels, by id, with members and
/// admins sorted by Rust's string order (as in the SQLite backend, whatever the collation).
fn channels_from_rows(rows: &[PgRow]) -> Result<Vec<ChannelRecord>, sqlx::Error> {
    let mut by_id: BTreeMap<String, ChannelRecord> = BTreeMap::new();
    for row in rows {
        let id: String = row.try_get("id")?;
        let channel = match by_id.entry(id) {
            std::collections::btree_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::btree_map::Entry::Vacant(entry) => {
                let id = entry.key().clone();
                entry.insert(ChannelRecord {
                    app_id: row.try_get("app_id")?,
                    id,
                    kind: row.try_get("kind")?,
                    open: row.try_get("open")?,
                    created_by: row.try_get("created_by")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                    admins: Vec::new(),
                    members: Vec::new(),
                    member_version: row.try_get("member_version")?,
                    last_seq: row.try_get("last_seq")?,
                })
            }
        };
        let identity: Option<String> = row.try_get("identity")?;
        if let Some(identity) = identity {
            let admin: bool = row.try_get("admin")?;
            if admin {
                channel.admins.push(identity.clone());
            }
            channel.members.push(identity);
        }
    }
    Ok(by_id
        .into_values()
        .map(|mut channel| {
            channel.admins.sort_unstable();
            channel.members.sort_unstable();
            channel
        })
        .collect())
}

/// One channel with its members, read on `conn`.
async fn load_channel(
    conn: &mut PgConnection,
    app_id: &str,
    channel_id: &str,
) -> StoreResult<Option<ChannelRecord>> {
    let rows = sqlx::query(&format!(
        "{CHANNEL_WITH_MEMBERS} WHERE c.app_id = $1 AND c.id = $2"
    ))
    .bind(app_id)
    .bind(channel_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(channels_from_rows(&rows).map_err(backend)?.pop())
}

/// Locks the channel row for the rest of the transaction (membership changes and posts to one
/// channel queue here, across replicas) and returns its `member_version`; `NotFound` if there
/// is no such channel.
async fn lock_channel(conn: &mut PgConnection, app_id: &str, channel_id: &str) -> StoreResult<i64> {
    sqlx::query_scalar(
        "SELECT member_version FROM chat_channels WHERE app_id = $1 AND id = $2 FOR UPDATE",
    )
    .bind(app_id)
    .bind(channel_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?
    .ok_or(StoreError::NotFound)
}

/// Whether `identity` is a member (`Some(admin)`) of the channel.
async fn membership(
    conn: &mut PgConnection,
    app_id: &str,
    channel_id: &str,
    identity: &str,
) -> StoreResult<Option<bool>> {
    sqlx::query_scalar(
        "SELECT admin FROM chat_members \
         WHERE app_id = $1 AND channel_id = $2 AND identity = $3",
    )
    .bind(app_id)
    .bind(channel_id)
    .bind(identity)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)
}

/// Bumps the channel's `member_version` and returns the new one.
async fn bump_member_version(
    conn: &mut PgConnection,
    app_id: &str,
    channel_id: &str,
) -> StoreResult<i64> {
    sqlx::query_scalar(
        "UPDATE chat_channels SET member_version = member_version + 1 \
         WHERE app_id = $1 AND id = $2 RETURNING member_version",
    )
    .bind(app_id)
    .bind(channel_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)
}

/// A listener on its own one-connection pool: it must not hold one of the store's connections
/// (closing the store waits for those) and it lives as long as the event stream.
async fn listen(
    options: &PgConnectOptions,
    events_channel: &str,
) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(events_channel).await?;
    Ok(listener)
}

/// The state of a [`ChatStore::chat_events`] stream.
struct Listening {
    options: PgConnectOptions,
    events_channel: String,
    /// `None` after an error: the next event is a reconnection, then [`ChatEvent::Resync`].
    listener: Option<PgListener>,
}

/// The next event of a `LISTEN` stream; never ends.
async fn next_event(mut state: Listening) -> Option<(ChatEvent, Listening)> {
    loop {
        let Some(listener) = state.listener.as_mut() else {
            let mut delay = LISTEN_RETRY_FIRST;
            loop {
                tokio::time::sleep(delay).await;
                match listen(&state.options, &state.events_channel).await {
                    Ok(listener) => {
                        state.listener = Some(listener);
                        // Whatever was notified while disconnected is lost.
                        return Some((ChatEvent::Resync, state));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "chat events: reconnecting LISTEN failed");
                        delay = (delay * 2).min(LISTEN_RETRY_MAX);
                    }
                }
            }
        };
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                match serde_json::from_str::<Notice>(notification.payload())
                    .ok()
                    .and_then(Notice::into_event)
                {
                    Some(event) => return Some((event, state)),
                    None => tracing::warn!(
                        payload = notification.payload(),
                        "chat events: ignoring an unknown notification"
                    ),
                }
            }
            // The listener lost its connection and has already listened again on a new one.
            Ok(None) => return Some((ChatEvent::Resync, state)),
            Err(e) => {
                tracing::warn!(error = %e, "chat events: LISTEN connection failed");
                state.listener = None;
            }
        }
    }
}

#[async_trait]
impl ChatStore for PostgresStore {
    async fn chat_create_channel(&self, channel: ChannelRecord) -> StoreResult<()> {
        let members = rules::initial_members(&channel).map_err(StoreError::Conflict)?;
        let (members, is_admin): (Vec<&str>, Vec<bool>) = members.into_iter().unzip();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO chat_channels \
             (app_id, id, kind, open, created_by, created_at_ms, member_version, last_seq) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, 0)",
        )
        .bind(&channel.app_id)
        .bind(&channel.id)
        .bind(&channel.kind)
        .bind(channel.open)
        .bind(&channel.created_by)
        .bind(channel.created_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(|e| unique_or_backend(e, Conflict::ChannelExists))?;
        sqlx::query(
            "INSERT INTO chat_members (app_id, channel_id, identity, admin) \
             SELECT $1, $2, m.identity, m.admin \
             FROM UNNEST($3::text[], $4::boolean[]) AS m (identity, admin)",
        )
        .bind(&channel.app_id)
        .bind(&channel.id)
        .bind(&members)
        .bind(&is_admin)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn chat_channel(
        &self,
        app_id: &str,
        channel_id: &str,
    ) -> StoreResult<Option<ChannelRecord>> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        load_channel(&mut conn, app_id, channel_id).await
    }

    async fn chat_channels_of(
        &self,
        app_id: &str,
        identity: &str,
    ) -> StoreResult<Vec<ChannelRecord>> {
        let rows = sqlx::query(&format!(
            "{CHANNEL_WITH_MEMBERS} WHERE c.app_id = $1 AND EXISTS (SELECT 1 FROM chat_members \
             AS me WHERE me.app_id = c.app_id AND me.channel_id = c.id AND me.identity = $2)"
        ))
        .bind(app_id)
        .bind(identity)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        channels_from_rows(&rows).map_err(backend)
    }

    async fn chat_add_member(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
        admin: bool,
    ) -> StoreResult<ChannelRecord> {
        let mut tx = self.begin().await?;
        lock_channel(&mut tx, app_id, channel_id).await?;
        let current = membership(&mut tx, app_id, channel_id, identity).await?;
        let changed = match rules::member_change(current, admin) {
            MemberChange::Unchanged => None,
            MemberChange::Promote => {
                sqlx::query(
                    "UPDATE chat_members SET admin = TRUE \
                     WHERE app_id = $1 AND channel_id = $2 AND identity = $3",
                )
                .bind(app_id)
                .bind(channel_id)
                .bind(identity)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                Some(bump_member_version(&mut tx, app_id, channel_id).await?)
            }
            MemberChange::Insert => {
                let count: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM chat_members WHERE app_id = $1 AND channel_id = $2",
                )
                .bind(app_id)
                .bind(channel_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
                rules::check_room(count).map_err(StoreError::Conflict)?;
                sqlx::query(
                    "INSERT INTO chat_members (app_id, channel_id, identity, admin) \
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(app_id)
                .bind(channel_id)
                .bind(identity)
                .bind(admin)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                Some(bump_member_version(&mut tx, app_id, channel_id).await?)
            }
        };
        if let Some(version) = changed {
            notify(
                &mut tx,
                &self.events_channel,
                app_id,
                channel_id,
                "members",
                version,
            )
            .await?;
        }
        let channel = load_channel(&mut tx, app_id, channel_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(backend)?;
        Ok(channel)
    }

    async fn chat_remove_member(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
    ) -> StoreResult<ChannelRecord> {
        let mut tx = self.begin().await?;
        lock_channel(&mut tx, app_id, channel_id).await?;
        let Some(admin) = membership(&mut tx, app_id, channel_id, identity).await? else {
            return Err(StoreError::NotFound);
        };
        if admin {
            let (admins, members): (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*) FILTER (WHERE admin), COUNT(*) FROM chat_members \
                 WHERE app_id = $1 AND channel_id = $2",
            )
            .bind(app_id)
            .bind(channel_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
            rules::check_admin_may_leave(admins, members).map_err(StoreError::Conflict)?;
        }
        sqlx::query(
            "DELETE FROM chat_members WHERE app_id = $1 AND channel_id = $2 AND identity = $3",
        )
        .bind(app_id)
        .bind(channel_id)
        .bind(identity)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let version = bump_member_version(&mut tx, app_id, channel_id).await?;
        notify(
            &mut tx,
            &self.events_channel,
            app_id,
            channel_id,
            "members",
            version,
        )
        .await?;
        let channel = load_channel(&mut tx, app_id, channel_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(backend)?;
        Ok(channel)
    }

    async fn chat_post(&self, message: NewChatMessage) -> StoreResult<Posted> {
        let m = &message;
        let mut tx = self.begin().await?;
        // The row lock orders the posts to this channel (and membership changes) across
        // replicas; every read below sees what the previous holder committed.
        let member_version = lock_channel(&mut tx, &m.app_id, &m.channel_id).await?;
        if membership(&mut tx, &m.app_id, &m.channel_id, &m.sender)
            .await?
            .is_none()
        {
            return Err(StoreError::Forbidden(Forbidden::NotAMember));
        }
        let stored = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages \
             WHERE app_id = $1 AND channel_id = $2 AND sender = $3 AND client_id = $4"
        ))
        .bind(&m.app_id)
        .bind(&m.channel_id)
        .bind(&m.sender)
        .bind(&m.client_id)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        if let Some(row) = stored {
            return Ok(Posted::Duplicate(message_from_row(&row).map_err(backend)?));
        }
        rules::check_member_version(member_version, m.member_version)
            .map_err(StoreError::Conflict)?;
        let seq: i64 = sqlx::query_scalar(
            "UPDATE chat_channels SET last_seq = last_seq + 1 \
             WHERE app_id = $1 AND id = $2 RETURNING last_seq",
        )
        .bind(&m.app_id)
        .bind(&m.channel_id)
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        sqlx::query(
            "INSERT INTO chat_messages (app_id, channel_id, seq, sender, client_id, ciphertext, \
             member_version, sent_at_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&m.app_id)
        .bind(&m.channel_id)
        .bind(seq)
        .bind(&m.sender)
        .bind(&m.client_id)
        .bind(&m.ciphertext)
        .bind(m.member_version)
        .bind(m.sent_at_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        notify(
            &mut tx,
            &self.events_channel,
            &m.app_id,
            &m.channel_id,
            "message",
            seq,
        )
        .await?;
        tx.commit().await.map_err(backend)?;
        Ok(Posted::New(rules::stored_message(message, seq)))
    }

    async fn chat_history(
        &self,
        app_id: &str,
        channel_id: &str,
        cursor: HistoryCursor,
        limit: u32,
    ) -> StoreResult<Vec<ChatMessageRecord>> {
        // Newest-first pages are read descending (to stop at `limit`) and turned around.
        let (condition, descending, bound) = match cursor {
            HistoryCursor::After(n) => ("seq > $4", false, n),
            HistoryCursor::Before(n) => ("seq < $4", true, n),
            // One statement shape for both newest-first pages (no seq reaches i64::MAX).
            HistoryCursor::Latest => ("seq < $4", true, i64::MAX),
        };
        let order = if descending { "DESC" } else { "ASC" };
        let rows = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE app_id = $1 AND channel_id = $2 \
             AND {condition} ORDER BY seq {order} LIMIT $3"
        ))
        .bind(app_id)
        .bind(channel_id)
        .bind(i64::from(limit))
        .bind(bound)
        .fetch_all(&self.pool)
        .await
        .map_err(backend)?;
        let mut messages = rows
            .iter()
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(backend)?;
        if descending {
            messages.reverse();
        }
        Ok(messages)
    }

    async fn chat_events(&self) -> StoreResult<ChatEventStream> {
        let options = (*self.pool.connect_options()).clone();
        let listener = listen(&options, &self.events_channel)
            .await
            .map_err(backend)?;
        let state = Listening {
            options,
            events_channel: self.events_channel.clone(),
            listener: Some(listener),
        };
        Ok(Box::pin(futures_util::stream::unfold(state, next_event)))
    }
}

fn v1_from_row(row: &PgRow) -> Result<KeyknoxV1, sqlx::Error> {
    Ok(KeyknoxV1 {
        meta: row.try_get("meta")?,
        value: row.try_get("value")?,
        version: row.try_get("version")?,
        hash: row.try_get("hash")?,
    })
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
    .map_err(key_insert_error)?;
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

    /// Two replicas number posts to one channel together and hear each other's events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_share_chat() {
        let (a, guard) = fresh_store().await;
        let b = PostgresStore::connect_in_schema(&guard.url, &guard.schema)
            .await
            .expect("second replica");
        conformance::chat_replicas_agree(&a, &b).await;
        conformance::chat_events_cross_replicas(&a, &b).await;
        a.close().await;
        b.close().await;
    }

    /// When the `LISTEN` connection dies, the stream reconnects, says `Resync` and goes on
    /// delivering.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn chat_events_survive_a_lost_connection() {
        use crate::store::{ChatEvent, ChatStore};
        use conformance::{app_id, group, message_event, next_event, post_new};

        let (store, _guard) = fresh_store().await;
        let app = app_id("lost listener");
        let mut events = store.chat_events().await.unwrap();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
        )
        .bind(format!(r#"LISTEN "{}""#, store.events_channel))
        .fetch_all(&store.pool)
        .await
        .unwrap();
        assert_eq!(killed, vec![true], "exactly the listener's backend");
        assert_eq!(next_event(&mut events, &app).await, ChatEvent::Resync);
        store
            .chat_create_channel(group(&app, "g", "alice", &[]))
            .await
            .unwrap();
        post_new(
            &store,
            conformance::chat_message(&app, "g", "alice", "c1", 1),
        )
        .await;
        assert_eq!(
            next_event(&mut events, &app).await,
            message_event(&app, "g", 1)
        );
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
