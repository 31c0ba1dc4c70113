//! The hub that fans committed chat messages out to this process's WebSocket subscribers.
//!
//! The hub is what keeps delivery gap-free and duplicate-free across replicas without a message
//! broker: every replica consumes the store's events
//! ([`ChatStore::chat_events`](crate::store::ChatStore::chat_events): in-process for SQLite,
//! `LISTEN`/`NOTIFY` for PostgreSQL), and for every channel with local subscribers one feed
//! reads the new messages from the store once and broadcasts them, serialized once, to all of
//! them. Events only say "something after seq N exists"; the store stays the source of truth,
//! so a lost or coalesced event costs latency, never a message: a subscriber that sees a gap in
//! the numbers, or falls behind the broadcast, re-reads the store itself.
//!
//! Two events are the exception and carry their whole news: a member's read horizon
//! (`ChatEvent::Read`) and a member typing (`ChatEvent::Typing`). The feed relays them as they
//! come, without a store read; a lost one is not repeated (the channel answer has every
//! horizon, and typing is stale seconds later anyway). Typing is throttled twice: when a member
//! sends it on this replica, and when any replica's event reaches this one.
//!
//! The hub does not know the transport: it queues frames as any [`FrameText`] (the WebSocket's
//! shared-buffer text type in `http::chat`), and returns the failures that end a subscription
//! before it starts as [`ServiceError`]s for the transport to answer.

use super::{message_view, readable};
use crate::service::auth::Caller;
use crate::service::error::ServiceError;
use crate::store::{ChatEvent, ChatEventStream, HistoryCursor, Store};
use futures_util::StreamExt as _;
use sealkit_proto::chat::{ServerFrame, MAX_PAGE, TYPING_INTERVAL_MS};
use sealkit_proto::Identity;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch, Notify};

/// Pause before a feed retries a failed store read.
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// The text of one frame as the transport queues it: made once from the serialized JSON and
/// cloned for every subscriber, so it should share its buffer (the WebSocket's `Utf8Bytes` does).
pub trait FrameText: From<String> + Clone + std::fmt::Debug + Send + Sync + 'static {}

impl<T: From<String> + Clone + std::fmt::Debug + Send + Sync + 'static> FrameText for T {}

/// What a feed broadcasts to its channel's subscribers.
#[derive(Clone, Debug)]
enum FeedItem<F> {
    /// A message, with its `ServerFrame::Message` JSON, serialized once for every subscriber.
    Message { seq: i64, frame: F },
    /// The membership changed: the new version and members (sorted).
    Members {
        version: i64,
        members: Arc<Vec<Identity>>,
    },
    /// An edited message or a tombstone (`ServerFrame::Edited`/`Deleted`) for `seq`: only for
    /// subscribers that have delivered `seq` (a later one gets the message in its latest state).
    Revision { seq: i64, frame: F },
    /// A frame that carries its whole news (a read horizon, someone typing) and is not stored
    /// in order with the messages: relayed as it comes, to every subscriber except `from`
    /// when `skip_from`.
    Live {
        from: Arc<str>,
        skip_from: bool,
        frame: F,
    },
}

/// Events a feed has been told about and not yet handled. Only the highest values matter: a
/// feed reads everything after what it broadcast, however many events arrived.
#[derive(Default, Debug)]
struct Pending {
    seq: i64,
    member_version: i64,
    resync: bool,
    /// Messages edited or deleted since the last wake-up.
    revised: std::collections::BTreeSet<i64>,
}

type FeedKey = (String, String);

/// A feed with its number of subscribers.
type FeedEntry<F> = (Arc<Feed<F>>, usize);

/// One channel's fan-out in this process.
#[derive(Debug)]
struct Feed<F> {
    key: FeedKey,
    tx: broadcast::Sender<FeedItem<F>>,
    pending: Mutex<Pending>,
    wake: Notify,
    closed: AtomicBool,
    /// Becomes true once the feed knows the channel's last `seq`; subscribers read their
    /// backlog only after it, so every message is either in their backlog or broadcast to them.
    ready: watch::Sender<bool>,
}

impl<F> Feed<F> {
    fn note(&self, f: impl FnOnce(&mut Pending)) {
        if let Ok(mut pending) = self.pending.lock() {
            f(&mut pending);
        }
        self.wake.notify_one();
    }
}

/// The per-process chat fan-out: one feed per channel with local subscribers.
#[derive(Debug)]
pub struct ChatHub<F: FrameText> {
    store: Arc<dyn Store>,
    /// Items a feed holds per subscriber before that subscriber lags.
    capacity: usize,
    /// Each feed with its number of subscribers.
    feeds: Mutex<HashMap<FeedKey, FeedEntry<F>>>,
    /// When this process last published a typing event per (app, channel, identity).
    typing_sent: Throttle,
    /// When this process last relayed a typing event per (app, channel, identity), whichever
    /// replica published it: several sockets of one member on several replicas still give at
    /// most one per interval.
    typing_relayed: Throttle,
}

/// At most one event per key and interval.
#[derive(Debug, Default)]
struct Throttle {
    last: Mutex<HashMap<(String, String, String), std::time::Instant>>,
}

/// Keys a [`Throttle`] holds before it forgets the expired ones.
const THROTTLE_PRUNE_AT: usize = 4096;

impl Throttle {
    fn interval() -> Duration {
        Duration::from_millis(TYPING_INTERVAL_MS)
    }

    /// Whether an event for `key` may pass now (and then records it); `record` false only
    /// checks.
    fn pass(&self, key: (&str, &str, &str), record: bool) -> bool {
        let Ok(mut last) = self.last.lock() else {
            return false;
        };
        let now = std::time::Instant::now();
        let key = (key.0.to_owned(), key.1.to_owned(), key.2.to_owned());
        if last
            .get(&key)
            .is_some_and(|at| now.duration_since(*at) < Self::interval())
        {
            return false;
        }
        if record {
            if last.len() >= THROTTLE_PRUNE_AT {
                last.retain(|_, at| now.duration_since(*at) < Self::interval());
            }
            last.insert(key, now);
        }
        true
    }
}

impl<F: FrameText> ChatHub<F> {
    /// Starts the hub: consumes `events` (the store's [`ChatStore::chat_events`]) until the
    /// stream ends or the hub is dropped. A feed holds up to `capacity` messages per subscriber;
    /// a subscriber further behind catches up from the store.
    ///
    /// [`ChatStore::chat_events`]: crate::store::ChatStore::chat_events
    pub fn start(store: Arc<dyn Store>, events: ChatEventStream, capacity: usize) -> Arc<Self> {
        let hub = Arc::new(Self {
            store,
            capacity: capacity.max(1),
            feeds: Mutex::new(HashMap::new()),
            typing_sent: Throttle::default(),
            typing_relayed: Throttle::default(),
        });
        tokio::spawn(dispatch(Arc::downgrade(&hub), events));
        hub
    }

    fn feed(&self, app_id: &str, channel_id: &str) -> Option<Arc<Feed<F>>> {
        let feeds = self.feeds.lock().ok()?;
        feeds
            .get(&(app_id.to_owned(), channel_id.to_owned()))
            .map(|(feed, _)| feed.clone())
    }

    fn all_feeds(&self) -> Vec<Arc<Feed<F>>> {
        self.feeds
            .lock()
            .map(|feeds| feeds.values().map(|(feed, _)| feed.clone()).collect())
            .unwrap_or_default()
    }

    /// Joins (or starts) the feed of a channel.
    fn join(&self, app_id: &str, channel_id: &str) -> Result<FeedHandle<F>, ServiceError> {
        let key = (app_id.to_owned(), channel_id.to_owned());
        let mut feeds = self
            .feeds
            .lock()
            .map_err(|_| ServiceError::internal("chat hub lock poisoned"))?;
        let (feed, count) = feeds.entry(key.clone()).or_insert_with(|| {
            let (tx, _) = broadcast::channel(self.capacity);
            let feed = Arc::new(Feed {
                key,
                tx,
                pending: Mutex::new(Pending::default()),
                wake: Notify::new(),
                closed: AtomicBool::new(false),
                ready: watch::channel(false).0,
            });
            tokio::spawn(run_feed(self.store.clone(), feed.clone()));
            (feed, 0)
        });
        *count += 1;
        Ok(FeedHandle {
            rx: feed.tx.subscribe(),
            ready: feed.ready.subscribe(),
            feed: feed.clone(),
        })
    }

    fn leave(&self, key: &FeedKey) {
        let Ok(mut feeds) = self.feeds.lock() else {
            return;
        };
        if let Some((feed, count)) = feeds.get_mut(key) {
            *count -= 1;
            if *count == 0 {
                feed.closed.store(true, Ordering::SeqCst);
                feed.wake.notify_one();
                feeds.remove(key);
            }
        }
    }

    /// Announces that `caller` is typing in `channel_id`, to the channel's subscribers on every
    /// replica. At most one per caller and channel every [`TYPING_INTERVAL_MS`]: the others
    /// are dropped (`Ok`). A non-member, or no such channel, is refused like everywhere else.
    pub async fn typing(&self, caller: &Caller, channel_id: &str) -> Result<(), ServiceError> {
        let channel = super::parse_channel_id(channel_id)?;
        let key = (
            caller.app_id.as_str(),
            channel.as_str(),
            caller.identity.as_str(),
        );
        if !self.typing_sent.pass(key, false) {
            return Ok(());
        }
        readable(
            self.store.as_ref(),
            &caller.app_id,
            &caller.identity,
            &channel,
        )
        .await?;
        if !self.typing_sent.pass(key, true) {
            return Ok(());
        }
        self.store
            .chat_typing(&caller.app_id, &channel, &caller.identity)
            .await
            .map_err(ServiceError::internal)
    }

    /// Relays a frame that carries its whole news to a channel's local subscribers.
    fn relay(
        &self,
        app_id: &str,
        channel_id: &str,
        from: &str,
        skip_from: bool,
        frame: &ServerFrame,
    ) {
        let Some(feed) = self.feed(app_id, channel_id) else {
            return;
        };
        match serde_json::to_string(frame) {
            Ok(text) => {
                let _ = feed.tx.send(FeedItem::Live {
                    from: Arc::from(from),
                    skip_from,
                    frame: F::from(text),
                });
            }
            Err(e) => tracing::error!(error = %e, "chat: serializing a frame failed"),
        }
    }

    /// Runs one subscription for `caller`: checks membership, sends `Subscribed`, every message
    /// after `after`, then live messages and membership changes, until the caller is removed,
    /// the connection's queue closes, or the task is aborted. A failure before `Subscribed`
    /// (invalid id or cursor, no channel, not a member) is returned for the transport to answer.
    pub async fn subscribe(
        self: Arc<Self>,
        caller: Caller,
        channel_id: String,
        after: i64,
        out: mpsc::Sender<F>,
    ) -> Result<(), ServiceError> {
        let channel = super::parse_channel_id(&channel_id)?;
        if after < 0 {
            return Err(super::rules::invalid("after must not be negative"));
        }
        let Caller { app_id, identity } = caller;
        let mut handle = self.join(&app_id, &channel_id)?;
        let _leave = Leave {
            hub: self.clone(),
            key: handle.feed.key.clone(),
        };
        if handle.ready.wait_for(|ready| *ready).await.is_err() {
            return Ok(());
        }
        let record = readable(self.store.as_ref(), &app_id, &identity, &channel).await?;
        let subscribed = ServerFrame::Subscribed {
            channel: channel_id.clone(),
            last_seq: record.last_seq,
        };
        if !send(&out, &subscribed).await {
            return Ok(());
        }
        let mut sub = Subscriber {
            store: self.store.as_ref(),
            app_id: &app_id,
            identity: &identity,
            channel_id: &channel_id,
            out: &out,
            sent: after,
            member_version: record.member_version,
        };
        // The membership was read just above: the backlog needs no second read of it.
        if !sub.catch_up(false).await {
            return Ok(());
        }
        loop {
            let alive = match handle.rx.recv().await {
                Ok(FeedItem::Message { seq, frame }) => {
                    if seq <= sub.sent {
                        true
                    } else if seq == sub.sent + 1 {
                        sub.sent = seq;
                        out.send(frame).await.is_ok()
                    } else {
                        sub.catch_up(true).await
                    }
                }
                Ok(FeedItem::Members { version, members }) => {
                    if version <= sub.member_version {
                        true
                    } else if members.binary_search(&identity).is_err() {
                        let removed = ServerFrame::Removed {
                            channel: channel_id.clone(),
                        };
                        send(&out, &removed).await;
                        false
                    } else {
                        sub.member_version = version;
                        let frame = ServerFrame::Members {
                            channel: channel_id.clone(),
                            member_version: version,
                        };
                        send(&out, &frame).await
                    }
                }
                Ok(FeedItem::Revision { seq, frame }) => {
                    // Not delivered yet: it will come from the store in its latest state.
                    seq > sub.sent || out.send(frame).await.is_ok()
                }
                Ok(FeedItem::Live {
                    from,
                    skip_from,
                    frame,
                }) => {
                    if skip_from && *from == *identity.as_str() {
                        true
                    } else {
                        out.send(frame).await.is_ok()
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => sub.catch_up(true).await,
                Err(broadcast::error::RecvError::Closed) => false,
            };
            if !alive {
                return Ok(());
            }
        }
    }
}

/// Leaves the feed when a subscription ends, however it ends (aborted tasks included).
struct Leave<F: FrameText> {
    hub: Arc<ChatHub<F>>,
    key: FeedKey,
}

impl<F: FrameText> Drop for Leave<F> {
    fn drop(&mut self) {
        self.hub.leave(&self.key);
    }
}

/// A subscriber's end of a feed.
#[derive(Debug)]
struct FeedHandle<F> {
    feed: Arc<Feed<F>>,
    rx: broadcast::Receiver<FeedItem<F>>,
    ready: watch::Receiver<bool>,
}

/// One subscription's position.
struct Subscriber<'a, F> {
    store: &'a dyn Store,
    app_id: &'a str,
    identity: &'a str,
    channel_id: &'a str,
    out: &'a mpsc::Sender<F>,
    /// The last `seq` delivered.
    sent: i64,
    /// The membership version last announced (or read at subscription).
    member_version: i64,
}

impl<F: FrameText> Subscriber<'_, F> {
    /// Sends every stored message after `sent`. False when the subscription is over: the
    /// connection is gone, or the subscriber was removed (then `Removed` was sent).
    ///
    /// This path serves subscribers that fell behind the live feed, whose membership events may
    /// have been dropped with the messages: so it checks the membership itself, first and again
    /// before any message posted for a newer membership than the subscriber was last told of. A
    /// removed member is told so and gets nothing posted after its removal.
    ///
    /// `check_membership` false skips the first check, for a subscription whose membership
    /// was read at `member_version` just before (a channel of 1000 members is 1000 rows).
    async fn catch_up(&mut self, check_membership: bool) -> bool {
        if check_membership && !self.still_member().await {
            return false;
        }
        loop {
            let page = loop {
                match self
                    .store
                    .chat_history(
                        self.app_id,
                        self.channel_id,
                        HistoryCursor::After(self.sent),
                        MAX_PAGE,
                    )
                    .await
                {
                    Ok(page) => break page,
                    Err(e) => {
                        tracing::warn!(error = %e, "chat: reading a backlog failed; retrying");
                        if self.out.is_closed() {
                            return false;
                        }
                        tokio::time::sleep(RETRY_DELAY).await;
                    }
                }
            };
            let full = page.len() >= MAX_PAGE as usize;
            for record in &page {
                if record.seq != self.sent + 1 {
                    // Seqs have no gaps by contract; a hole means a read raced a commit
                    // in a way the store should not allow. Stop here and read again later.
                    tracing::warn!(
                        seq = record.seq,
                        expected = self.sent + 1,
                        "chat: history has a hole"
                    );
                    return true;
                }
                if record.member_version > self.member_version && !self.still_member().await {
                    return false;
                }
                let frame = ServerFrame::Message {
                    message: message_view(record),
                };
                if !send(self.out, &frame).await {
                    return false;
                }
                self.sent = record.seq;
            }
            if !full {
                return true;
            }
        }
    }
}

impl<F: FrameText> Subscriber<'_, F> {
    /// Reads the channel: announces a newer membership version to a member, sends `Removed` to
    /// one who is no longer a member. False when the subscription is over.
    async fn still_member(&mut self) -> bool {
        let record = loop {
            match self.store.chat_channel(self.app_id, self.channel_id).await {
                Ok(record) => break record,
                Err(e) => {
                    tracing::warn!(error = %e, "chat: reading a channel's members failed; retrying");
                    if self.out.is_closed() {
                        return false;
                    }
                    tokio::time::sleep(RETRY_DELAY).await;
                }
            }
        };
        match record {
            Some(record) if record.members.iter().any(|m| m == self.identity) => {
                if record.member_version > self.member_version {
                    self.member_version = record.member_version;
                    let frame = ServerFrame::Members {
                        channel: self.channel_id.to_owned(),
                        member_version: record.member_version,
                    };
                    return send(self.out, &frame).await;
                }
                true
            }
            _ => {
                let removed = ServerFrame::Removed {
                    channel: self.channel_id.to_owned(),
                };
                send(self.out, &removed).await;
                false
            }
        }
    }
}

/// Queues one frame for the connection. False when the connection is gone.
async fn send<F: FrameText>(out: &mpsc::Sender<F>, frame: &ServerFrame) -> bool {
    match serde_json::to_string(frame) {
        Ok(text) => out.send(F::from(text)).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "chat: serializing a frame failed");
            false
        }
    }
}

/// Routes store events to the feeds of this process.
async fn dispatch<F: FrameText>(hub: Weak<ChatHub<F>>, mut events: ChatEventStream) {
    while let Some(event) = events.next().await {
        let Some(hub) = hub.upgrade() else {
            return;
        };
        match event {
            ChatEvent::Message {
                app_id,
                channel_id,
                seq,
            } => {
                if let Some(feed) = hub.feed(&app_id, &channel_id) {
                    feed.note(|p| p.seq = p.seq.max(seq));
                }
            }
            ChatEvent::Members {
                app_id,
                channel_id,
                member_version,
            } => {
                if let Some(feed) = hub.feed(&app_id, &channel_id) {
                    feed.note(|p| p.member_version = p.member_version.max(member_version));
                }
            }
            ChatEvent::Revised {
                app_id,
                channel_id,
                seq,
            } => {
                if let Some(feed) = hub.feed(&app_id, &channel_id) {
                    feed.note(|p| {
                        p.revised.insert(seq);
                    });
                }
            }
            ChatEvent::Read {
                app_id,
                channel_id,
                identity,
                seq,
            } => {
                let frame = ServerFrame::Read {
                    channel: channel_id.clone(),
                    identity: identity.clone(),
                    seq,
                };
                // The reader's other devices want it too.
                hub.relay(&app_id, &channel_id, &identity, false, &frame);
            }
            ChatEvent::Typing {
                app_id,
                channel_id,
                identity,
            } => {
                if hub.feed(&app_id, &channel_id).is_some()
                    && hub
                        .typing_relayed
                        .pass((&app_id, &channel_id, &identity), true)
                {
                    let frame = ServerFrame::Typing {
                        channel: channel_id.clone(),
                        identity: identity.clone(),
                    };
                    hub.relay(&app_id, &channel_id, &identity, true, &frame);
                }
            }
            ChatEvent::Resync => {
                for feed in hub.all_feeds() {
                    feed.note(|p| p.resync = true);
                }
            }
        }
    }
    tracing::warn!("chat: the store's event stream ended; live delivery stops");
}

/// What a feed has broadcast.
struct FeedState {
    last_seq: i64,
    member_version: i64,
}

/// A feed's worker: turns events into store reads and broadcasts, one read per wake-up however
/// many subscribers listen.
async fn run_feed<F: FrameText>(store: Arc<dyn Store>, feed: Arc<Feed<F>>) {
    let (app_id, channel_id) = feed.key.clone();
    let mut state = loop {
        if feed.closed.load(Ordering::SeqCst) {
            return;
        }
        match store.chat_channel(&app_id, &channel_id).await {
            Ok(record) => {
                break FeedState {
                    last_seq: record.as_ref().map_or(0, |r| r.last_seq),
                    member_version: record.as_ref().map_or(0, |r| r.member_version),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "chat: starting a feed failed; retrying");
                tokio::time::sleep(RETRY_DELAY).await;
            }
        }
    };
    feed.ready.send_replace(true);
    loop {
        feed.wake.notified().await;
        if feed.closed.load(Ordering::SeqCst) {
            return;
        }
        let pending = match feed.pending.lock() {
            Ok(mut pending) => std::mem::take(&mut *pending),
            Err(_) => return,
        };
        // Membership first: a removal committed before a message must reach subscribers
        // before that message does, so a removed member is dropped before it is sent anything
        // encrypted for the others.
        let mut ok = true;
        if pending.resync || pending.member_version > state.member_version {
            ok &= refresh_members(store.as_ref(), &feed, &mut state).await;
        }
        if ok && (pending.resync || pending.seq > state.last_seq) {
            ok &= refresh_messages(store.as_ref(), &feed, &mut state).await;
        }
        // After the new messages: a subscriber then has every seq up to the revised one, so
        // the revision reaches all who were sent the old version.
        for seq in &pending.revised {
            if !ok {
                // Lost with the retry below, like the other events of a failed round; the
                // history still has the latest version.
                break;
            }
            ok &= broadcast_revision(store.as_ref(), &feed, *seq).await;
        }
        if !ok {
            tokio::time::sleep(RETRY_DELAY).await;
            feed.note(|p| p.resync = true);
        }
    }
}

/// Reads the channel and, when its membership version moved, broadcasts the new members.
async fn refresh_members<F: FrameText>(
    store: &dyn Store,
    feed: &Feed<F>,
    state: &mut FeedState,
) -> bool {
    let (app_id, channel_id) = &feed.key;
    match store.chat_channel(app_id, channel_id).await {
        Ok(record) => {
            let (version, members) = match record {
                Some(r) => (r.member_version, r.members),
                // Gone: nobody is a member any more.
                None => (state.member_version + 1, Vec::new()),
            };
            if version > state.member_version {
                state.member_version = version;
                let mut members = members;
                members.sort();
                let _ = feed.tx.send(FeedItem::Members {
                    version,
                    members: Arc::new(members),
                });
            }
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "chat: reading a channel's members failed");
            false
        }
    }
}

/// Reads and broadcasts every message after the last one broadcast.
async fn refresh_messages<F: FrameText>(
    store: &dyn Store,
    feed: &Feed<F>,
    state: &mut FeedState,
) -> bool {
    let (app_id, channel_id) = &feed.key;
    loop {
        let page = match store
            .chat_history(
                app_id,
                channel_id,
                HistoryCursor::After(state.last_seq),
                MAX_PAGE,
            )
            .await
        {
            Ok(page) => page,
            Err(e) => {
                tracing::warn!(error = %e, "chat: reading new messages failed");
                return false;
            }
        };
        let full = page.len() >= MAX_PAGE as usize;
        for record in &page {
            // A message encrypted for a newer membership than announced means a change whose
            // event has not arrived yet: announce it first (see run_feed).
            if record.member_version > state.member_version
                && !refresh_members(store, feed, state).await
            {
                return false;
            }
            let frame = ServerFrame::Message {
                message: message_view(record),
            };
            let text = match serde_json::to_string(&frame) {
                Ok(text) => text,
                Err(e) => {
                    tracing::error!(error = %e, "chat: serializing a message failed");
                    return false;
                }
            };
            state.last_seq = state.last_seq.max(record.seq);
            // No receivers is fine: subscribers come and go.
            let _ = feed.tx.send(FeedItem::Message {
                seq: record.seq,
                frame: F::from(text),
            });
        }
        if !full {
            return true;
        }
    }
}

/// Reads message `seq` as stored now and broadcasts it as an edit or a tombstone.
async fn broadcast_revision<F: FrameText>(store: &dyn Store, feed: &Feed<F>, seq: i64) -> bool {
    let (app_id, channel_id) = &feed.key;
    let page = match store
        .chat_history(app_id, channel_id, HistoryCursor::After(seq - 1), 1)
        .await
    {
        Ok(page) => page,
        Err(e) => {
            tracing::warn!(error = %e, "chat: reading a revised message failed");
            return false;
        }
    };
    let Some(record) = page.first().filter(|record| record.seq == seq) else {
        return true;
    };
    let message = message_view(record);
    let frame = if message.deleted.is_some() {
        ServerFrame::Deleted { message }
    } else {
        ServerFrame::Edited { message }
    };
    match serde_json::to_string(&frame) {
        Ok(text) => {
            let _ = feed.tx.send(FeedItem::Revision {
                seq,
                frame: F::from(text),
            });
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "chat: serializing a revision failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::super::{create_channel, post};
    use super::*;
    use crate::store::sqlite::SqliteStore;
    use base64::Engine as _;
    use sealkit_proto::chat::{ChannelKind, NewChannel, NewMessage};

    fn caller(app_id: &str, identity: &str) -> Caller {
        Caller {
            app_id: app_id.parse().unwrap(),
            identity: identity.parse().unwrap(),
        }
    }

    /// A hub whose events come from the test, not from the store: the test decides which
    /// events are "lost".
    struct Rig {
        store: Arc<dyn Store>,
        hub: Arc<ChatHub<String>>,
        events: mpsc::UnboundedSender<ChatEvent>,
        app_id: String,
        _dir: tempfile::TempDir,
    }

    async fn rig() -> Rig {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open(&dir.path().join("db.sqlite"))
                .await
                .unwrap(),
        );
        let app = crate::admin::create_app(store.as_ref(), "t", 0)
            .await
            .unwrap();
        let (tx, rx) = mpsc::unbounded_channel();
        let events = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|event| (event, rx))
        })
        .boxed();
        let hub = ChatHub::start(store.clone(), events, 16);
        let new = NewChannel {
            id: "c".into(),
            kind: ChannelKind::Group,
            members: vec!["bob".into()],
            open: false,
        };
        create_channel(
            store.as_ref(),
            &caller(&app.app_id, "alice"),
            new,
            0,
            u32::MAX,
        )
        .await
        .unwrap();
        Rig {
            store,
            hub,
            events: tx,
            app_id: app.app_id,
            _dir: dir,
        }
    }

    async fn frame(out: &mut mpsc::Receiver<String>) -> ServerFrame {
        let text = tokio::time::timeout(Duration::from_secs(5), out.recv())
            .await
            .expect("a frame within 5 s")
            .expect("subscription alive");
        serde_json::from_str(text.as_str()).unwrap()
    }

    async fn quiet(out: &mut mpsc::Receiver<String>) {
        let got = tokio::time::timeout(Duration::from_millis(300), out.recv()).await;
        assert!(got.is_err(), "unexpected frame: {got:?}");
    }

    async fn post_as(rig: &Rig, sender: &str, client_id: &str, version: i64) -> i64 {
        let new = NewMessage {
            client_id: client_id.into(),
            ciphertext: base64::engine::general_purpose::STANDARD.encode(client_id),
            member_version: version,
            kt_head: None,
            blobs: Vec::new(),
        };
        let (message, fresh) = post(
            rig.store.as_ref(),
            &caller(&rig.app_id, sender),
            "c",
            new,
            1024,
            0,
        )
        .await
        .unwrap();
        assert!(fresh);
        message.seq
    }

    fn seq_of(frame: ServerFrame) -> i64 {
        match frame {
            ServerFrame::Message { message } => message.seq,
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn throttle_passes_one_per_key_and_interval() {
        let throttle = Throttle::default();
        let bob = ("app", "c", "bob");
        assert!(throttle.pass(bob, false), "a check records nothing");
        assert!(throttle.pass(bob, true));
        assert!(!throttle.pass(bob, false));
        assert!(!throttle.pass(bob, true));
        assert!(throttle.pass(("app", "c", "carol"), true), "per member");
        assert!(throttle.pass(("app", "d", "bob"), true), "per channel");
        assert!(
            throttle.pass(("other", "c", "bob"), true),
            "per application"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_drive_delivery_and_resync_recovers_lost_ones() {
        let rig = rig().await;
        let (out, mut rx) = mpsc::channel(64);
        let sub = tokio::spawn(rig.hub.clone().subscribe(
            caller(&rig.app_id, "bob"),
            "c".into(),
            0,
            out,
        ));
        assert_eq!(
            frame(&mut rx).await,
            ServerFrame::Subscribed {
                channel: "c".into(),
                last_seq: 0
            }
        );

        // (The backlog read that follows `Subscribed` is done once nothing came for a while.)
        quiet(&mut rx).await;
        // Without an event the hub does not know about a message ...
        let seq = post_as(&rig, "alice", "m1", 1).await;
        quiet(&mut rx).await;
        // ... the event brings it ...
        let event = |seq| ChatEvent::Message {
            app_id: rig.app_id.clone(),
            channel_id: "c".into(),
            seq,
        };
        rig.events.send(event(seq)).unwrap();
        assert_eq!(seq_of(frame(&mut rx).await), 1);
        // ... a repeated or stale event repeats nothing ...
        rig.events.send(event(seq)).unwrap();
        quiet(&mut rx).await;
        // ... and lost events are made good by a resync.
        post_as(&rig, "alice", "m2", 1).await;
        post_as(&rig, "bob", "m3", 1).await;
        quiet(&mut rx).await;
        rig.events.send(ChatEvent::Resync).unwrap();
        assert_eq!(seq_of(frame(&mut rx).await), 2);
        assert_eq!(seq_of(frame(&mut rx).await), 3);
        quiet(&mut rx).await;

        // Membership: an event for another channel or app changes nothing; the channel's own
        // announces the version, and removal ends the subscription.
        rig.store
            .chat_add_member(&rig.app_id, "c", "carol", false)
            .await
            .unwrap();
        rig.events
            .send(ChatEvent::Members {
                app_id: "other".into(),
                channel_id: "c".into(),
                member_version: 2,
            })
            .unwrap();
        quiet(&mut rx).await;
        rig.events
            .send(ChatEvent::Members {
                app_id: rig.app_id.clone(),
                channel_id: "c".into(),
                member_version: 2,
            })
            .unwrap();
        assert_eq!(
            frame(&mut rx).await,
            ServerFrame::Members {
                channel: "c".into(),
                member_version: 2
            }
        );
        rig.store
            .chat_remove_member(&rig.app_id, "c", "bob")
            .await
            .unwrap();
        // A message encrypted for the new membership arrives before the membership event:
        // the feed announces the change first, so bob never receives it.
        let seq = post_as(&rig, "alice", "m4", 3).await;
        rig.events.send(event(seq)).unwrap();
        assert_eq!(
            frame(&mut rx).await,
            ServerFrame::Removed {
                channel: "c".into()
            }
        );
        tokio::time::timeout(Duration::from_secs(5), sub)
            .await
            .expect("the subscription ends")
            .unwrap()
            .expect("it ends without an error");
        assert!(rx.recv().await.is_none(), "nothing after Removed");
        // The feed is gone with its last subscriber.
        assert!(rig.hub.feed(&rig.app_id, "c").is_none());
    }

    /// A subscriber that fell behind (its socket did not read) and was removed meanwhile: the
    /// catch-up from the store ends with `Removed` and sends nothing posted after the removal,
    /// although the membership event was lost with the rest of the lagging feed.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_lagging_removed_member_gets_nothing_posted_after_its_removal() {
        let rig = rig().await;
        let (out, mut rx) = mpsc::channel(1);
        let sub = tokio::spawn(rig.hub.clone().subscribe(
            caller(&rig.app_id, "bob"),
            "c".into(),
            0,
            out,
        ));
        assert!(matches!(
            frame(&mut rx).await,
            ServerFrame::Subscribed { .. }
        ));
        quiet(&mut rx).await;
        let event = |seq| ChatEvent::Message {
            app_id: rig.app_id.clone(),
            channel_id: "c".into(),
            seq,
        };
        // Far more than the feed holds (16) while bob reads nothing.
        let mut last_before_removal = 0;
        for i in 0..40 {
            last_before_removal = post_as(&rig, "alice", &format!("before{i}"), 1).await;
            rig.events.send(event(last_before_removal)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        rig.store
            .chat_remove_member(&rig.app_id, "c", "bob")
            .await
            .unwrap();
        for i in 0..10 {
            let seq = post_as(&rig, "alice", &format!("after{i}"), 2).await;
            rig.events.send(event(seq)).unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut seen = Vec::new();
        loop {
            match frame(&mut rx).await {
                ServerFrame::Message { message } => seen.push(message.seq),
                ServerFrame::Removed { .. } => break,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(
            seen.iter().all(|seq| *seq <= last_before_removal),
            "messages posted after the removal reached the removed member: {seen:?}"
        );
        tokio::time::timeout(Duration::from_secs(5), sub)
            .await
            .expect("the subscription ends")
            .unwrap()
            .expect("without an error");
    }
}
