//! Card changes on PostgreSQL, for the replicas' search caches: a `NOTIFY` in every card-writing
//! transaction (delivered on commit only, in commit order) and one `LISTEN` connection per
//! stream, which says [`CardChange::Resync`] whenever it is listening anew.
//!
//! Every change is numbered: just before it commits, the transaction takes the schema's
//! advisory lock [`LockClass::CardChanges`] (held until the commit), takes the next number of
//! the sequence `card_changes_seq` and announces it. The lock orders the numbers of committed
//! changes as the commits, so a stream that yielded number n has yielded every change up to n,
//! and a reader of the last number taken ([`committed`]) learns how far a stream must have got
//! to have yielded every change committed before the read (the search cache's read barrier).
//! That number may belong to a change still committing or rolled back: a barrier then waits
//! for more than it needs, never for less.
//!
//! How far behind a stream is in time cannot be read off the notifications themselves: a
//! replica that hears nothing may simply have nothing to hear. So the stream also confirms
//! itself: a task of its own sends a *ping*, a notification on the same channel, every
//! `confirm_every`, noting when it sent it. PostgreSQL delivers the notifications of different
//! transactions in the order they committed, so once the ping comes back, every change
//! committed before it was sent has come back too: [`CardChange::CaughtUp`] with the ping's
//! sending time. A stalled or dead connection stops the pings coming back, and the caches
//! relying on it stop trusting what they hold (see `service::cards::SearchCache`).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool};
use sqlx::PgConnection;

use super::listen::{listen, EVENTS_CHANNEL};
use super::sql::backend;
use super::{LockClass, PostgresStore};
use crate::store::{CardChange, CardChangeStream, StoreError, StoreResult};

/// Prefix of the card channel's name; the rest is the chat channel's per-schema suffix.
const CARDS_CHANNEL: &str = "sealkit_cards";

/// Waits between attempts to re-establish a lost `LISTEN` connection.
const LISTEN_RETRY_FIRST: Duration = Duration::from_millis(100);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

/// Pings sent and not yet back, kept at most: a stalled connection must not grow the list.
const PINGS_IN_FLIGHT: usize = 64;

/// The `NOTIFY` channel of card changes, per schema like the chat channel (notifications are
/// database-wide, so deployments in different schemas must not hear each other).
pub(super) fn cards_channel(store: &PostgresStore) -> String {
    let suffix = store
        .events_channel
        .strip_prefix(EVENTS_CHANNEL)
        .unwrap_or_default();
    format!("{CARDS_CHANNEL}{suffix}")
}

/// A notification's payload: a numbered change, or a stream's ping (`"<stream>:<n>"`).
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum Notice {
    Changed {
        app: String,
        identity: String,
        /// Absent from the notices of replicas that did not number changes yet.
        #[serde(default)]
        seq: Option<u64>,
    },
    Ping {
        ping: String,
    },
}

/// Takes the schema's card change lock (`$1`: the card channel, `$2`: the lock class); the
/// lock is released when the transaction ends.
const LOCK_CARD_CHANGES: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(1), $2))";

/// Numbers the change to `identity`'s cards and queues its notice in the caller's transaction,
/// which the caller commits next. PostgreSQL delivers the notice on commit only, so a write
/// that fails announces nothing; the lock is held until the commit, so numbers are taken in
/// commit order (and called last, it is held only for the commit).
pub(super) async fn notify_change(
    conn: &mut PgConnection,
    store: &PostgresStore,
    app_id: &str,
    identity: &str,
) -> StoreResult<()> {
    // One round trip: the lock (in FROM, so first) and then the number and the notice.
    sqlx::query(&format!(
        "SELECT pg_notify($1, json_build_object('app', $3::text, 'identity', $4::text, \
                                               'seq', nextval('card_changes_seq'))::text) \
         FROM ({LOCK_CARD_CHANGES}) AS locked"
    ))
    .bind(cards_channel(store))
    .bind(LockClass::CardChanges as i64)
    .bind(app_id)
    .bind(identity)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    Ok(())
}

/// The last card change number taken; every change committed before this read has a number
/// up to it (see the module's documentation).
pub(super) async fn committed(pool: &PgPool) -> StoreResult<u64> {
    let seq: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM card_changes_seq",
    )
    .fetch_one(pool)
    .await
    .map_err(backend)?;
    u64::try_from(seq).map_err(|_| StoreError::Backend(format!("card change number {seq}")))
}

/// The last card change number taken once every change that took one has committed or rolled
/// back: read under the lock, so no change is between its number and its commit. A stream
/// that listens anew vouches for this number, so it must not be one still committing.
async fn settled(pool: &PgPool, channel: &str) -> StoreResult<u64> {
    let mut tx = pool.begin().await.map_err(backend)?;
    sqlx::query(LOCK_CARD_CHANGES)
        .bind(channel)
        .bind(LockClass::CardChanges as i64)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let seq: i64 = sqlx::query_scalar(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM card_changes_seq",
    )
    .fetch_one(&mut *tx)
    .await
    .map_err(backend)?;
    tx.commit().await.map_err(backend)?;
    u64::try_from(seq).map_err(|_| StoreError::Backend(format!("card change number {seq}")))
}

/// The pings of one stream that were sent and have not come back: number and sending time.
type InFlight = Mutex<VecDeque<(u64, Instant)>>;

/// The state of a [`changes`] stream.
struct Listening {
    options: PgConnectOptions,
    /// For reading the committed number when listening anew.
    pool: PgPool,
    /// Taken for reading before an item is yielded (`PostgresStore::hold_card_changes`).
    held: Arc<tokio::sync::RwLock<()>>,
    channel: String,
    /// Tells this stream's pings from other replicas' streams' pings.
    stream_id: String,
    /// `None` after an error: the next item is a reconnection, then [`CardChange::Resync`].
    listener: Option<PgListener>,
    /// Shared with the ping task, which ends once this is dropped.
    in_flight: Arc<InFlight>,
    /// The first item is [`CardChange::Resync`]: nothing read before listening can be trusted.
    started: bool,
}

impl Listening {
    /// The sending time of ping `n` of this stream, forgetting it and every earlier ping.
    fn ping_back(&self, payload: &str) -> Option<Instant> {
        let n: u64 = payload
            .strip_prefix(self.stream_id.as_str())?
            .strip_prefix(':')?
            .parse()
            .ok()?;
        let mut in_flight = self.in_flight.lock().ok()?;
        let mut sent = None;
        while in_flight.front().is_some_and(|(m, _)| *m <= n) {
            sent = in_flight
                .pop_front()
                .filter(|(m, _)| *m == n)
                .map(|(_, at)| at);
        }
        sent
    }
}

/// The next item of a card change stream; never ends.
async fn next_change(state: Listening) -> Option<(CardChange, Listening)> {
    let (change, state) = hear(state).await;
    let held = state.held.clone();
    let _held = held.read().await;
    Some((change, state))
}

/// What a stream that listens anew yields: nothing it heard before is a gap any more, and every
/// change up to the number committed now (read after listening) will not be heard again.
async fn resync(state: &mut Listening) -> Option<CardChange> {
    match settled(&state.pool, &state.channel).await {
        Ok(seq) => Some(CardChange::Resync { seq }),
        Err(e) => {
            // Without the number the stream cannot vouch for anything: listen anew, later.
            tracing::warn!(error = %e, "card changes: reading the change number failed");
            state.listener = None;
            None
        }
    }
}

/// The next thing the stream hears.
async fn hear(mut state: Listening) -> (CardChange, Listening) {
    if !state.started {
        state.started = true;
        if let Some(change) = resync(&mut state).await {
            return (change, state);
        }
    }
    loop {
        let Some(listener) = state.listener.as_mut() else {
            let mut delay = LISTEN_RETRY_FIRST;
            loop {
                tokio::time::sleep(delay).await;
                match listen(&state.options, &state.channel).await {
                    Ok(listener) => {
                        state.listener = Some(listener);
                        // Whatever was notified while disconnected is lost.
                        match resync(&mut state).await {
                            Some(change) => return (change, state),
                            None => delay = (delay * 2).min(LISTEN_RETRY_MAX),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "card changes: reconnecting LISTEN failed");
                        delay = (delay * 2).min(LISTEN_RETRY_MAX);
                    }
                }
            }
        };
        match listener.try_recv().await {
            Ok(Some(notification)) => match serde_json::from_str(notification.payload()) {
                Ok(Notice::Changed { app, identity, seq }) => {
                    return (
                        CardChange::Changed {
                            app_id: app,
                            identity,
                            seq,
                        },
                        state,
                    )
                }
                Ok(Notice::Ping { ping }) => {
                    if let Some(sent) = state.ping_back(&ping) {
                        return (CardChange::CaughtUp(sent), state);
                    }
                    // Another replica's ping, or one of ours overtaken by a later one.
                }
                Err(_) => tracing::warn!(
                    payload = notification.payload(),
                    "card changes: ignoring an unknown notification"
                ),
            },
            // The listener lost its connection and has already listened again on a new one.
            Ok(None) => {
                if let Some(change) = resync(&mut state).await {
                    return (change, state);
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "card changes: LISTEN connection failed");
                state.listener = None;
            }
        }
    }
}

/// Sends a ping of stream `stream_id` every `every` until the stream is dropped.
fn spawn_pings(
    pool: PgPool,
    channel: String,
    stream_id: String,
    in_flight: Weak<InFlight>,
    every: Duration,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut n = 0u64;
        loop {
            ticks.tick().await;
            let Some(in_flight) = in_flight.upgrade() else {
                return;
            };
            n += 1;
            if let Ok(mut in_flight) = in_flight.lock() {
                if in_flight.len() >= PINGS_IN_FLIGHT {
                    in_flight.pop_front();
                }
                // Taken before sending: what committed before this instant commits before
                // the ping, so it is delivered before the ping.
                in_flight.push_back((n, Instant::now()));
            }
            let payload = serde_json::to_string(&Notice::Ping {
                ping: format!("{stream_id}:{n}"),
            });
            let Ok(payload) = payload else { continue };
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(&channel)
                .bind(payload)
                .execute(&pool)
                .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "card changes: sending a ping failed");
            }
        }
    });
}

/// Listens to the card changes of every replica (see [`CardStore::card_changes`]).
///
/// [`CardStore::card_changes`]: crate::store::CardStore::card_changes
pub(super) async fn changes(
    store: &PostgresStore,
    confirm_every: Duration,
) -> StoreResult<CardChangeStream> {
    let options = (*store.pool.connect_options()).clone();
    let channel = cards_channel(store);
    let listener = listen(&options, &channel).await.map_err(backend)?;
    let stream_id = {
        use rand_core::RngCore as _;
        format!("{:016x}", rand_core::OsRng.next_u64())
    };
    let in_flight = Arc::new(InFlight::default());
    spawn_pings(
        store.pool.clone(),
        channel.clone(),
        stream_id.clone(),
        Arc::downgrade(&in_flight),
        confirm_every.max(Duration::from_millis(1)),
    );
    let state = Listening {
        options,
        pool: store.pool.clone(),
        held: store.card_changes_held.clone(),
        channel,
        stream_id,
        listener: Some(listener),
        in_flight,
        started: false,
    };
    Ok(Box::pin(futures_util::stream::unfold(state, next_change)))
}
