//! WAL checkpoints off the write path.
//!
//! SQLite's automatic checkpoint runs inside the commit that pushes the WAL past 1000 pages, on
//! the committing connection: that commit copies the WAL into the database file and waits for
//! two `fsync`s. With one writer connection every write of the process queues behind it, and a
//! large upload (attachments are 1 MiB chunks, a checkpoint every 4 MiB) spent about half its
//! time in those stalls. So the automatic checkpoint is off on every connection of the store,
//! and a task of its own checkpoints on a connection of its own instead:
//!
//! * every [`CHECKPOINT_EVERY`], if any connection (of this process or another) committed
//!   since the last round (`PRAGMA data_version` tells), a `PASSIVE` checkpoint, which copies
//!   what it can without blocking the writer or any reader;
//! * when the WAL is still longer than [`WAL_LIMIT_PAGES`] afterwards (writes outpace the
//!   copying), a `RESTART` checkpoint, which waits for the writer between two transactions and
//!   lets the next writer start the WAL from its beginning: the WAL's size stays bounded, at the
//!   cost of a pause of the writes under that sustained load only.
//!
//! Durability is unchanged: in WAL mode with `synchronous = NORMAL` a commit is not synced
//! either way, and a checkpoint syncs the WAL before copying it; what a crash of the process
//! leaves in the WAL is recovered when the database is opened next. The last connection to
//! close checkpoints what is left, as before.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sqlx::SqlitePool;

/// How often the task looks for commits to copy.
pub(super) const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

/// WAL pages (4 KiB each by default) above which a checkpoint waits for the writer.
pub(super) const WAL_LIMIT_PAGES: i64 = 16_384;

/// Held by every handle of the store; the task ends once the last one is gone or the store is
/// closed.
#[derive(Debug)]
pub(super) struct Checkpoints {
    pool: SqlitePool,
}

impl Checkpoints {
    /// Starts the task on `pool` (one connection of its own). It holds only a weak handle, so
    /// dropping the store stops it.
    pub(super) fn start(pool: SqlitePool) -> Arc<Self> {
        let checkpoints = Arc::new(Self { pool: pool.clone() });
        tokio::spawn(run(Arc::downgrade(&checkpoints), pool));
        checkpoints
    }

    /// Stops the task and closes its connection.
    pub(super) async fn close(&self) {
        self.pool.close().await;
    }
}

async fn run(store: Weak<Checkpoints>, pool: SqlitePool) {
    let mut ticks = tokio::time::interval(CHECKPOINT_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = None;
    loop {
        ticks.tick().await;
        if store.strong_count() == 0 || pool.is_closed() {
            break;
        }
        // Changes when another connection commits; the checkpoint itself does not change it.
        let version: Result<i64, _> = sqlx::query_scalar("PRAGMA data_version")
            .fetch_one(&pool)
            .await;
        match version {
            Ok(version) if seen == Some(version) => continue,
            Ok(version) => seen = Some(version),
            Err(e) => tracing::warn!(error = %e, "reading the data version"),
        }
        if let Err(e) = checkpoint(&pool).await {
            tracing::warn!(error = %e, "WAL checkpoint");
        }
    }
    pool.close().await;
}

/// One round: a passive checkpoint, then a restarting one if the WAL stays long.
pub(super) async fn checkpoint(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let (_busy, wal_pages, _copied): (i64, i64, i64) =
        sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await?;
    if wal_pages > WAL_LIMIT_PAGES {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(pool)
            .await?;
    }
    Ok(())
}
