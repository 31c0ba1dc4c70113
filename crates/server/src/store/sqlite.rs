//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so writers of one process queue in order
//! instead of spinning on the busy handler, and every writing transaction starts with
//! `BEGIN IMMEDIATE`: it takes the database's write lock before its first read, so its reads and
//! writes see one state even if another process writes the same file (waiting up to the busy
//! timeout). Reads use a separate pool and run concurrently with the writer (WAL).
//!
//! Keyknox compare-and-swap and rate-limit buckets rely on the same pattern: read the hash (or
//! the bucket), compare, write, all in one `BEGIN IMMEDIATE` transaction. A v2 pull reads the
//! copy and the list of holders in one read transaction (one WAL snapshot).
//!
//! Chat writes follow the same pattern (the post's seq is the channel's `last_seq + 1`, read and
//! written in one `BEGIN IMMEDIATE` transaction). Their events go to a broadcast channel of this
//! process only: two processes sharing one file do not hear each other's chat events.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::error::ErrorKind;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Connection, QueryBuilder, Row, Sqlite, SqliteConnection};

use tokio::sync::broadcast;

use super::rules::{self, Bucket, MemberChange};
use super::sql::{backend, key_insert_error, unique_or_backend};
use super::{
    AppKeyRecord, AppRecord, CardRecord, ChannelRecord, ChatEvent, ChatEventStream,
    ChatMessageRecord, ChatStore, HistoryCursor, KeyknoxAddress, KeyknoxStore, KeyknoxV1,
    KeyknoxV2Copy, KeyknoxV2Push, KeyknoxV2Reset, NewCard, NewChatMessage, Posted, RateLimitStore,
    Store, StoreError, StoreResult,
};
use super::{Conflict, Forbidden};

/// The SQLite schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections of the read pool.
const READERS: u32 = 4;

/// Chat events buffered per subscriber; one that falls further behind gets
/// [`ChatEvent::Resync`] and re-reads the store.
const EVENT_BUFFER: usize = 4096;

/// Identities bound per search statement (SQLite limits the number of bound parameters).
const SEARCH_CHUNK: usize = 500;

const CARD_COLUMNS: &str =
    "id, app_id, identity, previous_card_id, superseded_by, revoked, raw, created_at";

/// A [`Store`] on one SQLite database file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Exactly one connection: every write, each in a `BEGIN IMMEDIATE` transaction.
    writer: SqlitePool,
    /// Read-only statements.
    reader: SqlitePool,
    /// Chat events of this process (SQLite has no cross-process notification), sent after the
    /// writing transaction commits.
    events: broadcast::Sender<ChatEvent>,
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
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(Self {
            writer,
            reader,
            events,
        })
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

    /// Publishes a committed change. Nobody listening is not an error.
    ///
    /// Chat writes hold the (only) writer connection from `BEGIN` until after this call instead
    /// of letting the transaction return it on commit, so the next write of this process cannot
    /// commit and announce itself first: events come in commit order, as with PostgreSQL.
    fn emit(&self, event: ChatEvent) {
        let _ = self.events.send(event);
    }
}

/// The kind and message of a database error, if it is one.
fn db_error(e: &sqlx::Error) -> Option<(ErrorKind, &str)> {
    match e {
        sqlx::Error::Database(d) => Some((d.kind(), d.message())),
        _ => None,
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
        rules::check_first_key(&app, &key).map_err(StoreError::Conflict)?;
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO apps (app_id, name, created_at) VALUES (?, ?, ?)")
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
            return Err(StoreError::Conflict(Conflict::CardIdExists));
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
                return Err(StoreError::Conflict(Conflict::NotCurrentCard));
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
                return Err(StoreError::Forbidden(Forbidden::CardOfAnotherIdentity))
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

/// Every holder of a copy of an entry, sorted by Rust's string order.
async fn copy_holders(conn: &mut SqliteConnection, entry_id: i64) -> StoreResult<Vec<String>> {
    let mut identities: Vec<String> =
        sqlx::query_scalar("SELECT identity FROM keyknox_copies WHERE entry_id = ?")
            .bind(entry_id)
            .fetch_all(&mut *conn)
            .await
            .map_err(backend)?;
    identities.sort_unstable();
    Ok(identities)
}

#[async_trait]
impl KeyknoxStore for SqliteStore {
    async fn keyknox_v1_get(&self, app_id: &str, identity: &str) -> StoreResult<Option<KeyknoxV1>> {
        let row = sqlx::query(
            "SELECT meta, value, version, hash FROM keyknox_v1 WHERE app_id = ? AND identity = ?",
        )
        .bind(app_id)
        .bind(identity)
        .fetch_optional(&self.reader)
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
        let stored = sqlx::query(
            "SELECT meta, value, version, hash FROM keyknox_v1 WHERE app_id = ? AND identity = ?",
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
        let version = next_version;
        sqlx::query(
            "INSERT INTO keyknox_v1 (app_id, identity, meta, value, version, hash) \
             VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (app_id, identity) DO UPDATE SET \
               meta = excluded.meta, value = excluded.value, \
               version = excluded.version, hash = excluded.hash",
        )
        .bind(app_id)
        .bind(identity)
        .bind(meta)
        .bind(value)
        .bind(version)
        .bind(new_hash)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
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
            "UPDATE keyknox_v1 SET meta = '', value = '', version = version + 1, hash = ? \
             WHERE app_id = ? AND identity = ? RETURNING version",
        )
        .bind(new_hash)
        .bind(app_id)
        .bind(identity)
        .fetch_optional(&self.writer)
        .await
        .map_err(backend)?;
        Ok(rules::keyknox_v1_after_reset(version, new_hash))
    }

    async fn keyknox_v2_push(&self, push: KeyknoxV2Push) -> StoreResult<KeyknoxV2Copy> {
        let a = &push.address;
        let previous = push.previous_hash.as_deref();
        let mut tx = self.begin().await?;
        let stored: Option<(i64, String)> = sqlx::query_as(
            "SELECT id, hash FROM keyknox_entries \
             WHERE app_id = ? AND owner = ? AND root = ? AND path = ? AND key = ?",
        )
        .bind(&a.app_id)
        .bind(&a.owner)
        .bind(&a.root)
        .bind(&a.path)
        .bind(&a.key)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let entry_id = match stored {
            Some((id, hash)) => {
                rules::keyknox_v2_check_previous(Some(&hash), previous)
                    .map_err(StoreError::Conflict)?;
                sqlx::query("UPDATE keyknox_entries SET hash = ? WHERE id = ?")
                    .bind(&push.new_hash)
                    .bind(id)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
                id
            }
            None => {
                rules::keyknox_v2_check_previous(None, previous).map_err(StoreError::Conflict)?;
                sqlx::query_scalar(
                    "INSERT INTO keyknox_entries (app_id, owner, root, path, key, hash) \
                     VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
                )
                .bind(&a.app_id)
                .bind(&a.owner)
                .bind(&a.root)
                .bind(&a.path)
                .bind(&a.key)
                .bind(&push.new_hash)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?
            }
        };
        // One statement for all recipients (deduplicated), binding meta and value once. The
        // `WHERE true` resolves SQLite's parsing ambiguity of `SELECT … ON CONFLICT`.
        let recipients = serde_json::to_string(&rules::keyknox_v2_recipients(&push.identities))
            .map_err(|e| StoreError::Backend(format!("encoding identities: {e}")))?;
        sqlx::query(
            "INSERT INTO keyknox_copies (entry_id, identity, meta, value) \
             SELECT ?, j.value, ?, ? FROM json_each(?) AS j WHERE true \
             ON CONFLICT (entry_id, identity) DO UPDATE SET \
               meta = excluded.meta, value = excluded.value",
        )
        .bind(entry_id)
        .bind(&push.meta)
        .bind(&push.value)
        .bind(&recipients)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let identities = copy_holders(&mut tx, entry_id).await?;
        if identities.is_empty() {
            // A push for nobody: an entry exists only while someone holds a copy.
            sqlx::query("DELETE FROM keyknox_entries WHERE id = ?")
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
        // A read transaction: the copy and the list of holders come from one snapshot.
        let mut tx = self.reader.begin().await.map_err(backend)?;
        let row: Option<(i64, String, String, String)> = sqlx::query_as(
            "SELECT e.id, e.hash, c.meta, c.value FROM keyknox_entries AS e \
             JOIN keyknox_copies AS c ON c.entry_id = e.id AND c.identity = ? \
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
        let identities = copy_holders(&mut tx, entry_id).await?;
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
        let mut keys: Vec<String> = sqlx::query_scalar(
            "SELECT e.key FROM keyknox_entries AS e \
             WHERE e.app_id = ? AND e.owner = ? AND e.root = ? AND e.path = ? \
               AND EXISTS (SELECT 1 FROM keyknox_copies AS c \
                           WHERE c.entry_id = e.id AND c.identity = ?)",
        )
        .bind(app_id)
        .bind(owner)
        .bind(root)
        .bind(path)
        .bind(reader)
        .fetch_all(&self.reader)
        .await
        .map_err(backend)?;
        keys.sort_unstable();
        Ok(keys)
    }

    async fn keyknox_v2_reset(&self, reset: KeyknoxV2Reset) -> StoreResult<()> {
        const MATCHING: &str = "app_id = ?1 AND owner = ?2 \
             AND (?3 IS NULL OR root = ?3) AND (?4 IS NULL OR path = ?4) \
             AND (?5 IS NULL OR key = ?5)";
        let mut tx = self.begin().await?;
        match &reset.identity {
            None => {
                // The copies go with their entries (ON DELETE CASCADE).
                sqlx::query(&format!("DELETE FROM keyknox_entries WHERE {MATCHING}"))
                    .bind(&reset.app_id)
                    .bind(&reset.owner)
                    .bind(&reset.root)
                    .bind(&reset.path)
                    .bind(&reset.key)
                    .execute(&mut *tx)
                    .await
                    .map_err(backend)?;
            }
            Some(identity) => {
                // Remove the copies, then the entries left without any; hashes stay.
                sqlx::query(&format!(
                    "DELETE FROM keyknox_copies WHERE identity = ?6 \
                     AND entry_id IN (SELECT id FROM keyknox_entries WHERE {MATCHING})"
                ))
                .bind(&reset.app_id)
                .bind(&reset.owner)
                .bind(&reset.root)
                .bind(&reset.path)
                .bind(&reset.key)
                .bind(identity)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
                sqlx::query(&format!(
                    "DELETE FROM keyknox_entries WHERE {MATCHING} AND NOT EXISTS \
                     (SELECT 1 FROM keyknox_copies WHERE entry_id = keyknox_entries.id)"
                ))
                .bind(&reset.app_id)
                .bind(&reset.owner)
                .bind(&reset.root)
                .bind(&reset.path)
                .bind(&reset.key)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
            }
        }
        tx.commit().await.map_err(backend)
    }
}

#[async_trait]
impl RateLimitStore for SqliteStore {
    async fn rate_limit_take(
        &self,
        key: &str,
        now_ms: i64,
        burst: u32,
        per_second: f64,
    ) -> StoreResult<bool> {
        let mut tx = self.begin().await?;
        let stored: Option<(f64, i64)> =
            sqlx::query_as("SELECT tokens, updated_ms FROM rate_limits WHERE key = ?")
                .bind(key)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        // A new bucket starts full.
        let stored = stored.map(|(tokens, updated_ms)| Bucket { tokens, updated_ms });
        let (bucket, taken) = rules::take_token(stored, now_ms, burst, per_second);
        sqlx::query(
            "INSERT INTO rate_limits (key, tokens, updated_ms) VALUES (?, ?, ?) \
             ON CONFLICT (key) DO UPDATE SET tokens = excluded.tokens, updated_ms = excluded.updated_ms",
        )
        .bind(key)
        .bind(bucket.tokens)
        .bind(bucket.updated_ms)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(taken)
    }
}

const MESSAGE_COLUMNS: &str =
    "channel_id, seq, sender, client_id, ciphertext, member_version, sent_at_ms";

fn message_from_row(row: &SqliteRow) -> Result<ChatMessageRecord, sqlx::Error> {
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

/// A channel row without its members (filled in by [`rules::add_members`]).
fn channel_from_row(row: &SqliteRow) -> Result<ChannelRecord, sqlx::Error> {
    Ok(ChannelRecord {
        app_id: row.try_get("app_id")?,
        id: row.try_get("id")?,
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

const CHANNEL_COLUMNS: &str =
    "app_id, id, kind, open, created_by, created_at_ms, member_version, last_seq";

/// One channel with its members, read on `conn` (inside the caller's transaction, if any).
async fn load_channel(
    conn: &mut SqliteConnection,
    app_id: &str,
    channel_id: &str,
) -> StoreResult<Option<ChannelRecord>> {
    let row = sqlx::query(&format!(
        "SELECT {CHANNEL_COLUMNS} FROM chat_channels WHERE app_id = ? AND id = ?"
    ))
    .bind(app_id)
    .bind(channel_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let mut channel = channel_from_row(&row).map_err(backend)?;
    let members: Vec<(String, bool)> = sqlx::query_as(
        "SELECT identity, admin FROM chat_members WHERE app_id = ? AND channel_id = ?",
    )
    .bind(app_id)
    .bind(channel_id)
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    rules::add_members(&mut channel, members);
    Ok(Some(channel))
}

/// The channel's `member_version` and `last_seq`, `NotFound` if there is no such channel.
async fn channel_versions(
    conn: &mut SqliteConnection,
    app_id: &str,
    channel_id: &str,
) -> StoreResult<(i64, i64)> {
    sqlx::query_as("SELECT member_version, last_seq FROM chat_channels WHERE app_id = ? AND id = ?")
        .bind(app_id)
        .bind(channel_id)
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        .ok_or(StoreError::NotFound)
}

/// Whether `identity` is a member (`Some(admin)`) of the channel.
async fn membership(
    conn: &mut SqliteConnection,
    app_id: &str,
    channel_id: &str,
    identity: &str,
) -> StoreResult<Option<bool>> {
    sqlx::query_scalar(
        "SELECT admin FROM chat_members WHERE app_id = ? AND channel_id = ? AND identity = ?",
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
    conn: &mut SqliteConnection,
    app_id: &str,
    channel_id: &str,
) -> StoreResult<i64> {
    sqlx::query_scalar(
        "UPDATE chat_channels SET member_version = member_version + 1 \
         WHERE app_id = ? AND id = ? RETURNING member_version",
    )
    .bind(app_id)
    .bind(channel_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)
}

#[async_trait]
impl ChatStore for SqliteStore {
    async fn chat_create_channel(&self, channel: ChannelRecord) -> StoreResult<()> {
        let members = rules::initial_members(&channel).map_err(StoreError::Conflict)?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO chat_channels \
             (app_id, id, kind, open, created_by, created_at_ms, member_version, last_seq) \
             VALUES (?, ?, ?, ?, ?, ?, 1, 0)",
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
        for (identity, admin) in members {
            sqlx::query(
                "INSERT INTO chat_members (app_id, channel_id, identity, admin) \
                 VALUES (?, ?, ?, ?)",
            )
            .bind(&channel.app_id)
            .bind(&channel.id)
            .bind(identity)
            .bind(admin)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn chat_channel(
        &self,
        app_id: &str,
        channel_id: &str,
    ) -> StoreResult<Option<ChannelRecord>> {
        // One read transaction: the channel row and its members from one snapshot.
        let mut tx = self.reader.begin().await.map_err(backend)?;
        let channel = load_channel(&mut tx, app_id, channel_id).await?;
        tx.commit().await.map_err(backend)?;
        Ok(channel)
    }

    async fn chat_channels_of(
        &self,
        app_id: &str,
        identity: &str,
    ) -> StoreResult<Vec<ChannelRecord>> {
        let mut tx = self.reader.begin().await.map_err(backend)?;
        let rows = sqlx::query(&format!(
            "SELECT {CHANNEL_COLUMNS} FROM chat_channels WHERE app_id = ? AND id IN \
             (SELECT channel_id FROM chat_members WHERE app_id = ? AND identity = ?)"
        ))
        .bind(app_id)
        .bind(app_id)
        .bind(identity)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        let members: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT channel_id, identity, admin FROM chat_members WHERE app_id = ? AND channel_id IN \
             (SELECT channel_id FROM chat_members WHERE app_id = ? AND identity = ?)",
        )
        .bind(app_id)
        .bind(app_id)
        .bind(identity)
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        let mut by_id = BTreeMap::new();
        for row in &rows {
            let channel = channel_from_row(row).map_err(backend)?;
            by_id.insert(channel.id.clone(), (channel, Vec::new()));
        }
        for (channel_id, identity, admin) in members {
            if let Some((_, list)) = by_id.get_mut(&channel_id) {
                list.push((identity, admin));
            }
        }
        Ok(by_id
            .into_values()
            .map(|(mut channel, list)| {
                rules::add_members(&mut channel, list);
                channel
            })
            .collect())
    }

    async fn chat_add_member(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
        admin: bool,
    ) -> StoreResult<ChannelRecord> {
        let mut writer = self.writer.acquire().await.map_err(backend)?;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        channel_versions(&mut tx, app_id, channel_id).await?;
        let current = membership(&mut tx, app_id, channel_id, identity).await?;
        let changed = match rules::member_change(current, admin) {
            MemberChange::Unchanged => None,
            MemberChange::Promote => {
                sqlx::query(
                    "UPDATE chat_members SET admin = 1 \
                     WHERE app_id = ? AND channel_id = ? AND identity = ?",
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
                    "SELECT COUNT(*) FROM chat_members WHERE app_id = ? AND channel_id = ?",
                )
                .bind(app_id)
                .bind(channel_id)
                .fetch_one(&mut *tx)
                .await
                .map_err(backend)?;
                rules::check_room(count).map_err(StoreError::Conflict)?;
                sqlx::query(
                    "INSERT INTO chat_members (app_id, channel_id, identity, admin) \
                     VALUES (?, ?, ?, ?)",
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
        let channel = load_channel(&mut tx, app_id, channel_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(backend)?;
        if let Some(member_version) = changed {
            self.emit(ChatEvent::Members {
                app_id: app_id.to_owned(),
                channel_id: channel_id.to_owned(),
                member_version,
            });
        }
        Ok(channel)
    }

    async fn chat_remove_member(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
    ) -> StoreResult<ChannelRecord> {
        let mut writer = self.writer.acquire().await.map_err(backend)?;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        channel_versions(&mut tx, app_id, channel_id).await?;
        let Some(admin) = membership(&mut tx, app_id, channel_id, identity).await? else {
            return Err(StoreError::NotFound);
        };
        if admin {
            let (admins, members): (i64, i64) = sqlx::query_as(
                "SELECT COALESCE(SUM(admin), 0), COUNT(*) FROM chat_members \
                 WHERE app_id = ? AND channel_id = ?",
            )
            .bind(app_id)
            .bind(channel_id)
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
            rules::check_admin_may_leave(admins, members).map_err(StoreError::Conflict)?;
        }
        sqlx::query(
            "DELETE FROM chat_members WHERE app_id = ? AND channel_id = ? AND identity = ?",
        )
        .bind(app_id)
        .bind(channel_id)
        .bind(identity)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let member_version = bump_member_version(&mut tx, app_id, channel_id).await?;
        let channel = load_channel(&mut tx, app_id, channel_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(backend)?;
        self.emit(ChatEvent::Members {
            app_id: app_id.to_owned(),
            channel_id: channel_id.to_owned(),
            member_version,
        });
        Ok(channel)
    }

    async fn chat_post(&self, message: NewChatMessage) -> StoreResult<Posted> {
        let m = &message;
        let mut writer = self.writer.acquire().await.map_err(backend)?;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let (member_version, last_seq) =
            channel_versions(&mut tx, &m.app_id, &m.channel_id).await?;
        if membership(&mut tx, &m.app_id, &m.channel_id, &m.sender)
            .await?
            .is_none()
        {
            return Err(StoreError::Forbidden(Forbidden::NotAMember));
        }
        let stored = sqlx::query(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages \
             WHERE app_id = ? AND channel_id = ? AND sender = ? AND client_id = ?"
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
        let seq = last_seq + 1;
        sqlx::query("UPDATE chat_channels SET last_seq = ? WHERE app_id = ? AND id = ?")
            .bind(seq)
            .bind(&m.app_id)
            .bind(&m.channel_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO chat_messages (app_id, channel_id, seq, sender, client_id, ciphertext, \
             member_version, sent_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
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
        tx.commit().await.map_err(backend)?;
        self.emit(ChatEvent::Message {
            app_id: message.app_id.clone(),
            channel_id: message.channel_id.clone(),
            seq,
        });
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
            HistoryCursor::After(n) => ("AND seq > ?", false, Some(n)),
            HistoryCursor::Before(n) => ("AND seq < ?", true, Some(n)),
            HistoryCursor::Latest => ("", true, None),
        };
        let order = if descending { "DESC" } else { "ASC" };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE app_id = ? AND channel_id = ? \
             {condition} ORDER BY seq {order} LIMIT ?"
        );
        let mut query = sqlx::query(&sql).bind(app_id).bind(channel_id);
        if let Some(n) = bound {
            query = query.bind(n);
        }
        let rows = query
            .bind(i64::from(limit))
            .fetch_all(&self.reader)
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
        let receiver = self.events.subscribe();
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((event, receiver)),
                // Missed events: subscribers must re-read, then carry on from here.
                Err(broadcast::error::RecvError::Lagged(_)) => Some((ChatEvent::Resync, receiver)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Ok(Box::pin(stream))
    }
}

fn v1_from_row(row: &SqliteRow) -> Result<KeyknoxV1, sqlx::Error> {
    Ok(KeyknoxV1 {
        meta: row.try_get("meta")?,
        value: row.try_get("value")?,
        version: row.try_get("version")?,
        hash: row.try_get("hash")?,
    })
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
    .map_err(key_insert_error)?;
    Ok(())
}

/// Maps a failed card insert to the rule it broke. SQLite names the index columns in the
/// message: "UNIQUE constraint failed: cards.id" and so on.
fn publish_error(e: sqlx::Error) -> StoreError {
    match db_error(&e) {
        Some((ErrorKind::UniqueViolation, message)) => {
            if message.ends_with("cards.id") {
                StoreError::Conflict(Conflict::CardIdExists)
            } else if message.contains("previous_card_id") {
                StoreError::Conflict(Conflict::NotCurrentCard)
            } else {
                StoreError::Conflict(Conflict::IdentityHasCard)
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

    /// Two handles on one file number posts to one channel without gaps or repeats.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_handles_number_chat_posts_together() {
        let (a, dir) = temp_store().await;
        let b = SqliteStore::open(&dir.path().join("nested/dir/sealkit.db"))
            .await
            .expect("second handle");
        conformance::chat_replicas_agree(&a, &b).await;
        a.close().await;
        b.close().await;
    }

    /// A subscriber that falls behind the buffer gets `Resync`, then the newest events.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lagging_chat_subscriber_resyncs() {
        use crate::store::{ChatEvent, ChatStore};
        use conformance::{app_id, group, message_event, next_event, post_new};

        let (mut store, _dir) = temp_store().await;
        store.events = tokio::sync::broadcast::channel(4).0;
        let app = app_id("lagging");
        let mut events = store.chat_events().await.unwrap();
        store
            .chat_create_channel(group(&app, "g", "alice", &[]))
            .await
            .unwrap();
        for n in 1..=6 {
            let message = conformance::chat_message(&app, "g", "alice", &format!("c{n}"), 1);
            post_new(&store, message).await;
        }
        assert_eq!(next_event(&mut events, &app).await, ChatEvent::Resync);
        for seq in 3..=6 {
            assert_eq!(
                next_event(&mut events, &app).await,
                message_event(&app, "g", seq)
            );
        }
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
