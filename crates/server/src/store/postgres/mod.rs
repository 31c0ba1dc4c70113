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
//! * ratchet keys: an upload locks its identity's row (`FOR UPDATE`) before it checks the order
//!   rules and counts one-time keys; a pick deletes the oldest one-time key it could lock
//!   (`FOR UPDATE SKIP LOCKED`), so concurrent picks take different keys, never one twice.
//! * chat: every membership change and post first locks its channel's row
//!   (`SELECT … FOR UPDATE`), so they queue per channel across replicas (different channels do
//!   not contend) and see what the previous one committed: membership, `member_version`, the
//!   member limit, the last admin and idempotent `client_id`s are checked under the lock, and
//!   `seq` is `last_seq + 1` from the same row. Events are `NOTIFY`s sent in the writing
//!   transaction (delivered on commit only, in commit order); each event stream `LISTEN`s on a
//!   connection of its own and says [`ChatEvent::Resync`](super::ChatEvent::Resync) after
//!   losing it.
//!
//! The shared SQL core (`store/sql/`) runs here with `ROW_LOCK` = `FOR UPDATE`. One file per
//! domain (`apps`, `cards`, `keyknox`, `pythia` for rate limits, `chat`) holds the domain's trait
//! implementation and its PostgreSQL dialect code; `listen` holds the `LISTEN`/`NOTIFY` event
//! path.

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Connection, Executor, PgConnection};

use super::{StoreError, StoreResult};

mod apps;
mod card_changes;
mod cards;
mod chat;
mod keyknox;
mod kt;
mod listen;
mod pfs;
mod pythia;
// The shared SQL core, compiled against this backend's `Db` (the other backend includes the
// same files for its own): loading its files as two modules each is the point here.
#[allow(clippy::duplicate_mod)]
#[path = "../sql/mod.rs"]
mod sql;

use listen::{schema_events_channel, EVENTS_CHANNEL};
use sql::backend;

/// The driver the shared SQL core (`store/sql/`) is compiled against here.
type Db = sqlx::Postgres;

/// The store the shared core's rooms that need nothing backend-specific implement directly
/// (`sql/blobs.rs`, `sql/hooks.rs`): each write one transaction from `PostgresStore::begin`,
/// each read on `PostgresStore::reads`.
type ThisStore = PostgresStore;

/// A connection of [`Db`].
type Conn = PgConnection;

/// Appended to the reads of a writing transaction that decide its writes: the row stays locked
/// until the transaction ends, so concurrent writers of one row (on any replica) queue and each
/// sees what the previous one committed.
const ROW_LOCK: &str = " FOR UPDATE";
/// Appended to the read that chooses a ratchet one-time key to hand out: concurrent picks (on
/// any replica) each lock and take a different key instead of waiting for one another.
const SKIP_LOCKED: &str = " FOR UPDATE SKIP LOCKED";
/// Orders text by bytes (see the shared core, `store/sql/mod.rs`).
const BYTE_ORDER: &str = " COLLATE \"C\"";

/// The PostgreSQL schema, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/postgres");

/// Every statement here is prepared once per connection and executed with varying parameters;
/// PostgreSQL's default re-plans the card search on every execution (planning took 3–10x longer
/// than executing it in the load benchmark). A generic plan is made once per connection.
const GENERIC_PLANS: &str = "SET plan_cache_mode = force_generic_plan";

/// Connections per pool (per server process).
const MAX_CONNECTIONS: u32 = 10;

/// A [`Store`](super::Store) on a PostgreSQL database, safe to share between server processes.
#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
    /// The `NOTIFY` channel of chat events (one per schema: notifications are database-wide).
    events_channel: String,
    /// The session that holds the key-transparency publisher lock, if this process won it
    /// (`kt.rs`).
    kt_leader: std::sync::Arc<tokio::sync::Mutex<Option<PgConnection>>>,
    /// Taken for writing by [`Self::hold_card_changes`]; each card change stream takes it for
    /// reading before it yields what it heard.
    card_changes_held: std::sync::Arc<tokio::sync::RwLock<()>>,
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
            kt_leader: std::sync::Arc::default(),
            card_changes_held: std::sync::Arc::default(),
        })
    }

    /// A test hook: until the guard is dropped, the card change streams of this store (and of
    /// its clones) hold back what they hear, as a replica whose announcements are late would.
    #[doc(hidden)]
    pub async fn hold_card_changes(&self) -> tokio::sync::OwnedRwLockWriteGuard<()> {
        self.card_changes_held.clone().write_owned().await
    }

    async fn begin(&self) -> StoreResult<sqlx::Transaction<'static, Db>> {
        self.pool.begin().await.map_err(backend)
    }

    /// The pool for reads (the same pool as for transactions).
    fn reads(&self) -> &sqlx::Pool<Db> {
        &self.pool
    }
}

/// Schema names are spliced into SQL, so only a safe subset is accepted.
/// What a transaction-scoped advisory lock of [`lock_pair`] serialises; the number keeps the
/// classes apart when two of them lock the same pair of strings.
#[derive(Clone, Copy)]
enum LockClass {
    /// Keyknox v2 pushes of one owner (the quota is a sum over the owner's entries).
    KeyknoxOwner = 7,
    /// Channel creations of one identity (the per-creator cap counts the ones before).
    ChannelCreator = 11,
    /// Card changes of one schema, numbered in commit order (`card_changes.rs`).
    CardChanges = 13,
}

/// Takes the transaction-scoped advisory lock of `(class, a, b)`: concurrent transactions on
/// every replica that ask for the same triple queue here until the holder commits or rolls back.
async fn lock_pair(
    tx: &mut sqlx::Transaction<'static, Db>,
    class: LockClass,
    a: &str,
    b: &str,
) -> StoreResult<()> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(1) || $2, $3))")
        .bind(a)
        .bind(b)
        .bind(class as i64)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

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

    /// Exactly one of two replicas publishes key-transparency epochs; the other takes over
    /// when the first goes away.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_replicas_elect_one_kt_publisher() {
        let (a, guard) = fresh_store().await;
        let b = PostgresStore::connect_in_schema(&guard.url, &guard.schema)
            .await
            .expect("second replica");
        conformance::kt_one_publisher_among_replicas(Box::new(a), &b).await;
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
        conformance::chat_read_and_typing_cross_replicas(&a, &b).await;
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
            .chat_create_channel(group(&app, "g", "alice", &[]), u32::MAX)
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

    /// Card changes through one replica are announced to the other's stream, numbered in commit
    /// order, which confirms it is caught up, and says `Resync` with the committed number after
    /// losing its connection and goes on.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn card_changes_reach_every_replica() {
        use crate::store::{CardChange, CardChangeStream, CardStore, NewCard};
        use futures_util::StreamExt as _;
        use std::time::{Duration, Instant};

        /// The next change or resync, passing confirmations (each must be recent).
        async fn next_change(changes: &mut CardChangeStream) -> CardChange {
            loop {
                let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
                    .await
                    .expect("an announcement within 10 s")
                    .expect("the stream never ends");
                match change {
                    CardChange::CaughtUp(at) => assert!(at <= Instant::now()),
                    other => return other,
                }
            }
        }

        fn new_card(app_id: &str, identity: &str, n: u32, previous: Option<&str>) -> NewCard {
            NewCard {
                id: format!("{n:064x}"),
                app_id: app_id.to_owned(),
                identity: sealkit_proto::Identity::new(identity).unwrap(),
                previous_card_id: previous.map(str::to_owned),
                raw: br#"{"content_snapshot":"","signatures":[]}"#.to_vec(),
                created_at: 1_795_801_646,
            }
        }

        let (a, guard) = fresh_store().await;
        let b = PostgresStore::connect_in_schema(&guard.url, &guard.schema)
            .await
            .expect("second replica");
        let app = conformance::app_id("announced");
        let mut changes = b
            .card_changes(Duration::from_millis(20))
            .await
            .unwrap()
            .expect("PostgreSQL announces");
        assert_eq!(
            next_change(&mut changes).await,
            CardChange::Resync { seq: 0 }
        );
        let card = new_card(&app, "alice", 1, None);
        let id = card.id.clone();
        a.publish_card(card).await.unwrap();
        let alice = |seq| CardChange::Changed {
            app_id: app.clone(),
            identity: "alice".to_owned(),
            seq: Some(seq),
        };
        assert_eq!(next_change(&mut changes).await, alice(1));
        // A failed write announces nothing and takes no number: the next announcement is the
        // revocation.
        assert!(a
            .publish_card(new_card(&app, "alice", 2, None))
            .await
            .is_err());
        assert!(a.revoke_card(&app, &"f".repeat(64), "alice").await.is_err());
        a.revoke_card(&app, &id, "alice").await.unwrap();
        assert_eq!(next_change(&mut changes).await, alice(2));
        assert_eq!(b.last_card_change().await.unwrap(), 2);
        // Confirmations keep coming, each later than the last write.
        let written = Instant::now();
        loop {
            let change = tokio::time::timeout(Duration::from_secs(10), changes.next())
                .await
                .unwrap()
                .unwrap();
            if matches!(change, CardChange::CaughtUp(at) if at > written) {
                break;
            }
        }

        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
        )
        .bind(format!(
            r#"LISTEN "{}""#,
            super::card_changes::cards_channel(&b)
        ))
        .fetch_all(&b.pool)
        .await
        .unwrap();
        assert_eq!(ended, vec![true], "exactly the listener's backend");
        // A change made while nobody listens is covered by the resync's number.
        let carol = new_card(&app, "carol", 4, None);
        a.publish_card(carol).await.unwrap();
        assert_eq!(
            next_change(&mut changes).await,
            CardChange::Resync { seq: 3 }
        );
        let bob = new_card(&app, "bob", 3, None);
        a.publish_card(bob).await.unwrap();
        assert_eq!(
            next_change(&mut changes).await,
            CardChange::Changed {
                app_id: app.clone(),
                identity: "bob".to_owned(),
                seq: Some(4),
            }
        );
        drop(changes);
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
