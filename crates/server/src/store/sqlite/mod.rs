//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go through a pool of exactly one connection, so writers of one process queue in order
//! instead of spinning on the busy handler, and every writing transaction starts with
//! `BEGIN IMMEDIATE`: it takes the database's write lock before its first read, so its reads and
//! writes see one state even if another process writes the same file (waiting up to the busy
//! timeout). Reads use a separate pool and run concurrently with the writer (WAL).
//!
//! Keyknox compare-and-swap, rate-limit buckets and chat writes rely on that lock: the shared
//! SQL core (`store/sql/`) reads, decides and writes in one `BEGIN IMMEDIATE` transaction, with
//! `ROW_LOCK` empty. A v2 pull reads the copy and the list of holders in one read transaction
//! (one WAL snapshot).
//!
//! Chat events go to a broadcast channel of this process only: two processes sharing one file
//! do not hear each other's chat events.
//!
//! One file per domain (`apps`, `cards`, `keyknox`, `pythia` for rate limits, `chat`, `kt`,
//! `pfs` for ratchet keys) holds the
//! domain's trait implementation and its SQLite dialect code.

use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::broadcast;

use super::{ChatEvent, StoreError, StoreResult};

mod apps;
mod cards;
mod chat;
mod checkpoint;
mod keyknox;
mod kt;
mod pfs;
mod pythia;
// The shared SQL core, compiled against this backend's `Db` (the other backend includes the
// same files for its own): loading its files as two modules each is the point here.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

use sql::backend;

/// The driver the shared SQL core (`store/sql/`) is compiled against here.
type Db = sqlx::Sqlite;

/// The store the shared core's rooms that need nothing backend-specific implement directly
/// (`sql/blobs.rs`, `sql/hooks.rs`): each write one transaction from `SqliteStore::begin`,
/// each read on `SqliteStore::reads`.
type ThisStore = SqliteStore;

/// A connection of [`Db`].
type Conn = sqlx::SqliteConnection;

/// Nothing: a writing transaction's `BEGIN IMMEDIATE` already holds the database's write lock
/// when it reads what decides its writes.
const ROW_LOCK: &str = "";
/// Nothing: ratchet key picks run one after another in `BEGIN IMMEDIATE` transactions.
const SKIP_LOCKED: &str = "";
/// Orders text by bytes (see the shared core, `store/sql/mod.rs`).
const BYTE_ORDER: &str = "";

/// The SQLite schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/sqlite");

/// How long a statement waits for another connection's (or process's) write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The WAL file's size kept after a checkpoint reset it (64 MiB), as the pragma's text.
const WAL_KEEP_BYTES: &str = "67108864";

/// Connections of the read pool.
const READERS: u32 = 4;

/// Chat events buffered per subscriber; one that falls further behind gets
/// [`ChatEvent::Resync`] and re-reads the store.
const EVENT_BUFFER: usize = 4096;

/// A [`Store`](super::Store) on one SQLite database file.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Exactly one connection: every write, each in a `BEGIN IMMEDIATE` transaction.
    writer: SqlitePool,
    /// Read-only statements.
    reader: SqlitePool,
    /// Chat events of this process (SQLite has no cross-process notification), sent after the
    /// writing transaction commits.
    events: broadcast::Sender<ChatEvent>,
    /// Keeps the WAL checkpoint task running while any handle of the store lives.
    checkpoints: std::sync::Arc<checkpoint::Checkpoints>,
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
            // Deleted chat messages: freed bytes are zeroed, not left in free pages.
            .pragma("secure_delete", "ON")
            // Checkpoints run on a task of their own (`checkpoint.rs`), not inside commits.
            .pragma("wal_autocheckpoint", "0")
            // A WAL that grew under a burst of writes is cut back to this once it is reset.
            .pragma("journal_size_limit", WAL_KEEP_BYTES)
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
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(backend)?;
        let checkpoints = checkpoint::Checkpoints::start(checkpointer);
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        Ok(Self {
            writer,
            reader,
            events,
            checkpoints,
        })
    }

    /// Closes both pools, waiting for the connections to finish (checkpointing the WAL).
    pub async fn close(&self) {
        self.checkpoints.close().await;
        self.reader.close().await;
        self.writer.close().await;
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Db>> {
        self.writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)
    }

    /// The pool for reads: the reader connections (the writer is for transactions only).
    fn reads(&self) -> &sqlx::Pool<Db> {
        &self.reader
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

    /// Commits never checkpoint (that stalled the one writer); the checkpoint task copies the
    /// WAL into the database file soon after, and a closed store leaves no WAL behind.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_is_checkpointed_off_the_write_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sealkit.db");
        let store = SqliteStore::open(&path).await.unwrap();
        let auto: i64 = sqlx::query_scalar("PRAGMA wal_autocheckpoint")
            .fetch_one(&store.writer)
            .await
            .unwrap();
        assert_eq!(auto, 0);
        sqlx::query("CREATE TABLE filler (data BLOB)")
            .execute(&store.writer)
            .await
            .unwrap();
        let before = std::fs::metadata(&path).unwrap().len();
        for _ in 0..8 {
            sqlx::query("INSERT INTO filler VALUES (zeroblob(1048576))")
                .execute(&store.writer)
                .await
                .unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::metadata(&path).unwrap().len() < before + (8 << 20) {
            assert!(
                std::time::Instant::now() < deadline,
                "the WAL was not copied into the database file"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        store.close().await;
        let wal = dir.path().join("sealkit.db-wal");
        assert!(!wal.exists() || std::fs::metadata(&wal).unwrap().len() == 0);
    }

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
            .chat_create_channel(group(&app, "g", "alice", &[]), u32::MAX)
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
        let value = crate::store::AppStore::setting_or_insert(&store, "k", b"v1")
            .await
            .unwrap();
        assert_eq!(value, b"v1");
        store.close().await;
        let store = SqliteStore::open(&dir.path().join("nested/dir/sealkit.db"))
            .await
            .unwrap();
        let value = crate::store::AppStore::setting_or_insert(&store, "k", b"v2")
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
