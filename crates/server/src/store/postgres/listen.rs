//! Chat events on PostgreSQL: `NOTIFY` in the writing transaction (delivered on commit only, in
//! commit order) and one `LISTEN` connection per event stream, reconnecting after a loss and
//! then saying [`ChatEvent::Resync`].

use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::PgConnection;

use super::sql::backend;
use super::PostgresStore;
use crate::store::{ChatEvent, ChatEventStream, StoreError, StoreResult};

/// The `NOTIFY` channel of a deployment in the connection's default schema.
pub(super) const EVENTS_CHANNEL: &str = "sealkit_chat";

/// Waits between attempts to re-establish a lost `LISTEN` connection.
const LISTEN_RETRY_FIRST: Duration = Duration::from_millis(100);
const LISTEN_RETRY_MAX: Duration = Duration::from_secs(5);

/// The `NOTIFY` channel of a deployment in schema `schema`: notifications are database-wide,
/// so deployments (and tests) in different schemas of one database must not hear each other.
/// Hashed because channel names are identifiers of at most 63 bytes.
pub(super) fn schema_events_channel(schema: &str) -> String {
    let digest = Sha256::digest(schema.as_bytes());
    format!("{EVENTS_CHANNEL}_{}", hex::encode(&digest[..8]))
}

/// A [`ChatEvent`] as a `NOTIFY` payload: short JSON (ids are at most 128 + 32 bytes, far
/// below PostgreSQL's 8000-byte payload limit).
#[derive(Serialize, Deserialize)]
pub(super) struct Notice {
    app: String,
    channel: String,
    /// `"message"` (then `n` is the seq), `"revised"` (an edit or delete of message `n`),
    /// `"members"` (then `n` is the member version),
    /// `"read"` (then `n` is `who`'s new read horizon) or `"typing"` (`n` is 0).
    kind: String,
    n: i64,
    /// The member who read or is typing (absent for the other kinds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    who: Option<String>,
}

impl Notice {
    /// A read horizon that moved.
    pub(super) fn read(app_id: &str, channel_id: &str, identity: &str, seq: i64) -> Self {
        Self {
            app: app_id.to_owned(),
            channel: channel_id.to_owned(),
            kind: "read".to_owned(),
            n: seq,
            who: Some(identity.to_owned()),
        }
    }

    /// A member typing.
    pub(super) fn typing(app_id: &str, channel_id: &str, identity: &str) -> Self {
        Self {
            app: app_id.to_owned(),
            channel: channel_id.to_owned(),
            kind: "typing".to_owned(),
            n: 0,
            who: Some(identity.to_owned()),
        }
    }

    fn into_event(self) -> Option<ChatEvent> {
        match self.kind.as_str() {
            "read" => Some(ChatEvent::Read {
                app_id: self.app,
                channel_id: self.channel,
                identity: self.who?,
                seq: self.n,
            }),
            "typing" => Some(ChatEvent::Typing {
                app_id: self.app,
                channel_id: self.channel,
                identity: self.who?,
            }),
            "message" => Some(ChatEvent::Message {
                app_id: self.app,
                channel_id: self.channel,
                seq: self.n,
            }),
            "revised" => Some(ChatEvent::Revised {
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
pub(super) async fn notify(
    conn: &mut PgConnection,
    events_channel: &str,
    app_id: &str,
    channel_id: &str,
    kind: &str,
    n: i64,
) -> StoreResult<()> {
    let notice = Notice {
        app: app_id.to_owned(),
        channel: channel_id.to_owned(),
        kind: kind.to_owned(),
        n,
        who: None,
    };
    notify_event(conn, events_channel, &notice).await
}

/// Sends `notice`: in the caller's transaction (delivered on commit), or at once on a
/// connection outside one.
pub(super) async fn notify_event(
    conn: &mut PgConnection,
    events_channel: &str,
    notice: &Notice,
) -> StoreResult<()> {
    let payload = serde_json::to_string(notice)
        .map_err(|e| StoreError::Backend(format!("encoding a chat notice: {e}")))?;
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(events_channel)
        .bind(payload)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(())
}

/// A listener on `channel` on its own one-connection pool: it must not hold one of the store's
/// connections (closing the store waits for those) and it lives as long as its stream (the
/// chat event stream here, the card change stream of `card_changes`).
pub(super) async fn listen(
    options: &PgConnectOptions,
    channel: &str,
) -> Result<PgListener, sqlx::Error> {
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .max_lifetime(None)
        .idle_timeout(None)
        .connect_lazy_with(options.clone());
    let mut listener = PgListener::connect_with(&pool).await?;
    listener.listen(channel).await?;
    Ok(listener)
}

/// The state of a [`events`] stream.
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

/// Subscribes to the `NOTIFY`s of every replica (see [`ChatStore::chat_events`]).
///
/// [`ChatStore::chat_events`]: crate::store::ChatStore::chat_events
pub(super) async fn events(store: &PostgresStore) -> StoreResult<ChatEventStream> {
    let options = (*store.pool.connect_options()).clone();
    let listener = listen(&options, &store.events_channel)
        .await
        .map_err(backend)?;
    let state = Listening {
        options,
        events_channel: store.events_channel.clone(),
        listener: Some(listener),
    };
    Ok(Box::pin(futures_util::stream::unfold(state, next_event)))
}
