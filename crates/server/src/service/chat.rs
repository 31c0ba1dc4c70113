//! Chat rules (`sealkit_proto::chat`): who may create, read, post to and change a channel, and
//! the hub that fans committed messages out to WebSocket subscribers.
//!
//! The hub is what keeps delivery gap-free and duplicate-free across replicas without a message
//! broker: every replica consumes the store's events
//! ([`ChatStore::chat_events`](crate::store::ChatStore::chat_events): in-process for SQLite,
//! `LISTEN`/`NOTIFY` for PostgreSQL), and for every channel with local subscribers one feed
//! reads the new messages from the store once and broadcasts them, serialized once, to all of
//! them. Events only say "something after seq N exists"; the store stays the source of truth,
//! so a lost or coalesced event costs latency, never a message: a subscriber that sees a gap in
//! the numbers, or falls behind the broadcast, re-reads the store itself.

use crate::http::error::ApiError;
use crate::store::{
    ChannelRecord, ChatEvent, ChatEventStream, ChatMessageRecord, Conflict, HistoryCursor,
    NewChatMessage, Posted, Store, StoreError,
};
use axum::extract::ws::Utf8Bytes;
use base64::Engine as _;
use futures_util::StreamExt as _;
use sealkit_proto::chat::{
    validate_channel_id, validate_client_id, Channel, ChannelKind, Message, MessagePage,
    NewChannel, NewMessage, ServerFrame, DEFAULT_PAGE, MAX_MEMBERS, MAX_PAGE,
};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tokio::sync::{broadcast, mpsc, watch, Notify};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Pause before a feed retries a failed store read.
const RETRY_DELAY: Duration = Duration::from_millis(500);

fn kind_of(record: &ChannelRecord) -> ChannelKind {
    if record.kind == "direct" {
        ChannelKind::Direct
    } else {
        ChannelKind::Group
    }
}

fn is_member(record: &ChannelRecord, identity: &str) -> bool {
    record.members.iter().any(|m| m == identity)
}

fn is_admin(record: &ChannelRecord, identity: &str) -> bool {
    record.admins.iter().any(|a| a == identity)
}

/// The API view of a stored channel.
pub fn channel_view(record: ChannelRecord) -> Channel {
    Channel {
        kind: kind_of(&record),
        id: record.id,
        open: record.open,
        created_by: record.created_by,
        created_at: record.created_at_ms,
        admins: record.admins,
        members: record.members,
        member_version: record.member_version,
        last_seq: record.last_seq,
    }
}

/// The API view of a stored message.
pub fn message_view(record: &ChatMessageRecord) -> Message {
    Message {
        seq: record.seq,
        channel: record.channel_id.clone(),
        sender: record.sender.clone(),
        client_id: record.client_id.clone(),
        sent_at: record.sent_at_ms,
        member_version: record.member_version,
        ciphertext: B64.encode(&record.ciphertext),
    }
}

fn invalid(e: impl std::fmt::Display) -> ApiError {
    ApiError::ChatInvalid(e.to_string())
}

fn check_identity(identity: &str) -> Result<(), ApiError> {
    sealkit_proto::validate_identity(identity)
        .map_err(|why| ApiError::ChatInvalid(format!("member {identity:?}: {why}")))
}

/// Chat store failures that no rule above anticipated: `NotFound` means the channel vanished.
fn store_error(e: StoreError) -> ApiError {
    match e {
        StoreError::NotFound => ApiError::ChannelNotFound,
        StoreError::Forbidden(_) => ApiError::NotAMember("not a member of the channel".into()),
        StoreError::Conflict(rule) => ApiError::MembershipRule(rule.message().to_owned()),
        other => ApiError::internal(other),
    }
}

/// The channel, if `identity` may read it: 404 when it does not exist, 403 for non-members.
async fn readable(
    store: &dyn Store,
    app_id: &str,
    identity: &str,
    channel_id: &str,
) -> Result<ChannelRecord, ApiError> {
    validate_channel_id(channel_id).map_err(invalid)?;
    let record = store
        .chat_channel(app_id, channel_id)
        .await
        .map_err(store_error)?
        .ok_or(ApiError::ChannelNotFound)?;
    if !is_member(&record, identity) {
        return Err(ApiError::NotAMember(
            "the caller is not a member of the channel".into(),
        ));
    }
    Ok(record)
}

/// Creates a channel with `creator` as its first admin.
pub async fn create_channel(
    store: &dyn Store,
    app_id: &str,
    creator: &str,
    new: NewChannel,
    now_ms: i64,
) -> Result<Channel, ApiError> {
    validate_channel_id(&new.id).map_err(invalid)?;
    for member in &new.members {
        check_identity(member)?;
    }
    let mut members: Vec<String> = new.members;
    match new.kind {
        ChannelKind::Direct => {
            if new.open {
                return Err(invalid("a direct channel cannot be open"));
            }
            members.sort();
            members.dedup();
            if members.len() != 1 || members[0] == creator {
                return Err(invalid(
                    "a direct channel names exactly one member other than its creator",
                ));
            }
        }
        ChannelKind::Group => {}
    }
    members.push(creator.to_owned());
    members.sort();
    members.dedup();
    if members.len() > MAX_MEMBERS {
        return Err(invalid(format!(
            "a channel has at most {MAX_MEMBERS} members, its creator included"
        )));
    }
    let record = ChannelRecord {
        app_id: app_id.to_owned(),
        id: new.id,
        kind: match new.kind {
            ChannelKind::Direct => "direct",
            ChannelKind::Group => "group",
        }
        .to_owned(),
        open: new.open,
        created_by: creator.to_owned(),
        created_at_ms: now_ms,
        admins: vec![creator.to_owned()],
        members,
        member_version: 1,
        last_seq: 0,
    };
    match store.chat_create_channel(record.clone()).await {
        Ok(()) => Ok(channel_view(record)),
        Err(StoreError::Conflict(Conflict::ChannelExists)) => Err(ApiError::ChannelExists),
        Err(e) => Err(store_error(e)),
    }
}

/// The caller's channels.
pub async fn channels_of(
    store: &dyn Store,
    app_id: &str,
    identity: &str,
) -> Result<Vec<Channel>, ApiError> {
    let records = store
        .chat_channels_of(app_id, identity)
        .await
        .map_err(store_error)?;
    Ok(records.into_iter().map(channel_view).collect())
}

/// One channel, for its members.
pub async fn channel(
    store: &dyn Store,
    app_id: &str,
    identity: &str,
    channel_id: &str,
) -> Result<Channel, ApiError> {
    readable(store, app_id, identity, channel_id)
        .await
        .map(channel_view)
}

/// The group channel whose membership changes by `identity`: validated ids, 404 for no
/// channel, 409 for a direct channel (its two members are fixed).
async fn group_channel(
    store: &dyn Store,
    app_id: &str,
    channel_id: &str,
    identity: &str,
) -> Result<ChannelRecord, ApiError> {
    validate_channel_id(channel_id).map_err(invalid)?;
    check_identity(identity)?;
    let record = store
        .chat_channel(app_id, channel_id)
        .await
        .map_err(store_error)?
        .ok_or(ApiError::ChannelNotFound)?;
    if kind_of(&record) == ChannelKind::Direct {
        return Err(ApiError::MembershipRule(
            "a direct channel keeps its two members".into(),
        ));
    }
    Ok(record)
}

/// Adds `identity` to a group channel: admins add anyone; anyone adds themselves to an open
/// channel.
pub async fn add_member(
    store: &dyn Store,
    app_id: &str,
    caller: &str,
    channel_id: &str,
    identity: &str,
) -> Result<Channel, ApiError> {
    let record = group_channel(store, app_id, channel_id, identity).await?;
    let joins_open = identity == caller && record.open;
    if !is_admin(&record, caller) && !joins_open {
        return Err(ApiError::NotAnAdmin);
    }
    store
        .chat_add_member(app_id, channel_id, identity, false)
        .await
        .map(channel_view)
        .map_err(store_error)
}

/// Removes `identity` from a group channel: admins remove anyone; members remove themselves.
pub async fn remove_member(
    store: &dyn Store,
    app_id: &str,
    caller: &str,
    channel_id: &str,
    identity: &str,
) -> Result<Channel, ApiError> {
    let record = group_channel(store, app_id, channel_id, identity).await?;
    if identity != caller && !is_admin(&record, caller) {
        return Err(ApiError::NotAnAdmin);
    }
    if !is_member(&record, identity) {
        return Err(ApiError::NotAMember(format!(
            "{identity:?} is not a member of the channel"
        )));
    }
    match store.chat_remove_member(app_id, channel_id, identity).await {
        Ok(record) => Ok(channel_view(record)),
        // The channel exists (read above), so the member left concurrently.
        Err(StoreError::NotFound) => Err(ApiError::NotAMember(format!(
            "{identity:?} is not a member of the channel"
        ))),
        Err(e) => Err(store_error(e)),
    }
}

/// Posts a message. Returns it and whether it is new (false: the `client_id` was posted before
/// and this is the stored message).
pub async fn post(
    store: &dyn Store,
    app_id: &str,
    sender: &str,
    channel_id: &str,
    new: NewMessage,
    limit: usize,
    now_ms: i64,
) -> Result<(Message, bool), ApiError> {
    validate_channel_id(channel_id).map_err(invalid)?;
    validate_client_id(&new.client_id).map_err(invalid)?;
    // Decoding allocates, so refuse what cannot fit before decoding it.
    if new.ciphertext.len() / 4 * 3 > limit + 2 {
        return Err(ApiError::MessageTooLarge { limit });
    }
    let ciphertext = B64
        .decode(&new.ciphertext)
        .map_err(|_| invalid("ciphertext must be standard, padded base64"))?;
    if ciphertext.is_empty() {
        return Err(invalid("ciphertext is empty"));
    }
    if ciphertext.len() > limit {
        return Err(ApiError::MessageTooLarge { limit });
    }
    let posted = store
        .chat_post(NewChatMessage {
            app_id: app_id.to_owned(),
            channel_id: channel_id.to_owned(),
            sender: sender.to_owned(),
            client_id: new.client_id,
            ciphertext,
            member_version: new.member_version,
            sent_at_ms: now_ms,
        })
        .await;
    match posted {
        Ok(Posted::New(record)) => Ok((message_view(&record), true)),
        Ok(Posted::Duplicate(record)) => Ok((message_view(&record), false)),
        Err(StoreError::Forbidden(_)) => Err(ApiError::NotAMember(
            "the caller is not a member of the channel".into(),
        )),
        // Name the current version so the client knows what to re-read.
        Err(StoreError::Conflict(Conflict::StaleMemberVersion { current })) => {
            Err(ApiError::StaleMembers {
                sent: new.member_version,
                current,
            })
        }
        Err(e) => Err(store_error(e)),
    }
}

/// The history query, as received (parsed here so every bad value gets the chat error).
#[derive(Debug, Default, serde::Deserialize)]
pub struct HistoryQuery {
    /// Messages with `seq` greater than this.
    pub after: Option<String>,
    /// Messages with `seq` less than this.
    pub before: Option<String>,
    /// Page size.
    pub limit: Option<String>,
}

fn parse_number(name: &str, value: &str) -> Result<i64, ApiError> {
    match value.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(invalid(format!(
            "{name} must be a non-negative integer, not {value:?}"
        ))),
    }
}

/// A page of a channel's history, for its members.
pub async fn history(
    store: &dyn Store,
    app_id: &str,
    identity: &str,
    channel_id: &str,
    query: &HistoryQuery,
) -> Result<MessagePage, ApiError> {
    let after = query
        .after
        .as_deref()
        .map(|v| parse_number("after", v))
        .transpose()?;
    let before = query
        .before
        .as_deref()
        .map(|v| parse_number("before", v))
        .transpose()?;
    let limit = match query.limit.as_deref() {
        None => DEFAULT_PAGE,
        Some(v) => match parse_number("limit", v)? {
            0 => return Err(invalid("limit must be at least 1")),
            n => u32::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE),
        },
    };
    let cursor = match (after, before) {
        (Some(_), Some(_)) => return Err(invalid("give after or before, not both")),
        (Some(n), None) => HistoryCursor::After(n),
        (None, Some(n)) => HistoryCursor::Before(n),
        (None, None) => HistoryCursor::Latest,
    };
    readable(store, app_id, identity, channel_id).await?;
    // One more than asked tells whether there is more, without a count query.
    let mut records = store
        .chat_history(app_id, channel_id, cursor, limit + 1)
        .await
        .map_err(store_error)?;
    let more = records.len() > limit as usize;
    if more {
        match cursor {
            HistoryCursor::After(_) => records.truncate(limit as usize),
            // Backwards pages are the newest ones: the extra one is the oldest.
            HistoryCursor::Before(_) | HistoryCursor::Latest => {
                records.remove(0);
            }
        }
    }
    Ok(MessagePage {
        messages: records.iter().map(message_view).collect(),
        more,
    })
}

/// What a feed broadcasts to its channel's subscribers.
#[derive(Clone, Debug)]
enum FeedItem {
    /// A message, with its `ServerFrame::Message` JSON, serialized once for every subscriber.
    Message { seq: i64, frame: Utf8Bytes },
    /// The membership changed: the new version and members (sorted).
    Members {
        version: i64,
        members: Arc<Vec<String>>,
    },
}

/// Events a feed has been told about and not yet handled. Only the highest values matter: a
/// feed reads everything after what it broadcast, however many events arrived.
#[derive(Default, Debug)]
struct Pending {
    seq: i64,
    member_version: i64,
    resync: bool,
}

type FeedKey = (String, String);

/// One channel's fan-out in this process.
#[derive(Debug)]
struct Feed {
    key: FeedKey,
    tx: broadcast::Sender<FeedItem>,
    pending: Mutex<Pending>,
    wake: Notify,
    closed: AtomicBool,
    /// Becomes true once the feed knows the channel's last `seq`; subscribers read their
    /// backlog only after it, so every message is either in their backlog or broadcast to them.
    ready: watch::Sender<bool>,
}

impl Feed {
    fn note(&self, f: impl FnOnce(&mut Pending)) {
        if let Ok(mut pending) = self.pending.lock() {
            f(&mut pending);
        }
        self.wake.notify_one();
    }
}

/// The per-process chat fan-out: one feed per channel with local subscribers.
#[derive(Debug)]
pub struct ChatHub {
    store: Arc<dyn Store>,
    /// Items a feed holds per subscriber before that subscriber lags.
    capacity: usize,
    /// Each feed with its number of subscribers.
    feeds: Mutex<HashMap<FeedKey, (Arc<Feed>, usize)>>,
}

impl ChatHub {
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
        });
        tokio::spawn(dispatch(Arc::downgrade(&hub), events));
        hub
    }

    fn feed(&self, app_id: &str, channel_id: &str) -> Option<Arc<Feed>> {
        let feeds = self.feeds.lock().ok()?;
        feeds
            .get(&(app_id.to_owned(), channel_id.to_owned()))
            .map(|(feed, _)| feed.clone())
    }

    fn all_feeds(&self) -> Vec<Arc<Feed>> {
        self.feeds
            .lock()
            .map(|feeds| feeds.values().map(|(feed, _)| feed.clone()).collect())
            .unwrap_or_default()
    }

    /// Joins (or starts) the feed of a channel.
    fn join(&self, app_id: &str, channel_id: &str) -> Result<FeedHandle, ApiError> {
        let key = (app_id.to_owned(), channel_id.to_owned());
        let mut feeds = self
            .feeds
            .lock()
            .map_err(|_| ApiError::internal("chat hub lock poisoned"))?;
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

    /// Runs one subscription: checks membership, sends `Subscribed`, every message after
    /// `after`, then live messages and membership changes, until the caller is removed, the
    /// connection's queue closes, or the task is aborted.
    pub async fn subscribe(
        self: Arc<Self>,
        app_id: String,
        identity: String,
        channel_id: String,
        after: i64,
        out: mpsc::Sender<Utf8Bytes>,
    ) {
        let error = |code: u32, message: String| ServerFrame::Error {
            channel: Some(channel_id.clone()),
            code,
            message,
        };
        if let Err(e) = validate_channel_id(&channel_id) {
            send(&out, &error(sealkit_proto::chat::codes::INVALID, e.0)).await;
            return;
        }
        if after < 0 {
            let frame = error(
                sealkit_proto::chat::codes::INVALID,
                "after must not be negative".into(),
            );
            send(&out, &frame).await;
            return;
        }
        let mut handle = match self.join(&app_id, &channel_id) {
            Ok(handle) => handle,
            Err(e) => {
                send(&out, &error(e.status_and_code().1, e.to_string())).await;
                return;
            }
        };
        let _leave = Leave {
            hub: self.clone(),
            key: handle.feed.key.clone(),
        };
        if handle.ready.wait_for(|ready| *ready).await.is_err() {
            return;
        }
        let record = match readable(self.store.as_ref(), &app_id, &identity, &channel_id).await {
            Ok(record) => record,
            Err(e) => {
                let (_, code) = e.status_and_code();
                send(&out, &error(code, e.to_string())).await;
                return;
            }
        };
        let subscribed = ServerFrame::Subscribed {
            channel: channel_id.clone(),
            last_seq: record.last_seq,
        };
        if !send(&out, &subscribed).await {
            return;
        }
        let mut sub = Subscriber {
            store: self.store.as_ref(),
            app_id: &app_id,
            channel_id: &channel_id,
            out: &out,
            sent: after,
            member_version: record.member_version,
        };
        if !sub.catch_up().await {
            return;
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
                        sub.catch_up().await
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
                Err(broadcast::error::RecvError::Lagged(_)) => sub.catch_up().await,
                Err(broadcast::error::RecvError::Closed) => false,
            };
            if !alive {
                return;
            }
        }
    }
}

/// Leaves the feed when a subscription ends, however it ends (aborted tasks included).
struct Leave {
    hub: Arc<ChatHub>,
    key: FeedKey,
}

impl Drop for Leave {
    fn drop(&mut self) {
        self.hub.leave(&self.key);
    }
}

/// A subscriber's end of a feed.
#[derive(Debug)]
struct FeedHandle {
    feed: Arc<Feed>,
    rx: broadcast::Receiver<FeedItem>,
    ready: watch::Receiver<bool>,
}

/// One subscription's position.
struct Subscriber<'a> {
    store: &'a dyn Store,
    app_id: &'a str,
    channel_id: &'a str,
    out: &'a mpsc::Sender<Utf8Bytes>,
    /// The last `seq` delivered.
    sent: i64,
    /// The membership version last announced (or read at subscription).
    member_version: i64,
}

impl Subscriber<'_> {
    /// Sends every stored message after `sent`. False when the connection is gone.
    async fn catch_up(&mut self) -> bool {
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

/// Queues one frame for the connection. False when the connection is gone.
async fn send(out: &mpsc::Sender<Utf8Bytes>, frame: &ServerFrame) -> bool {
    match serde_json::to_string(frame) {
        Ok(text) => out.send(Utf8Bytes::from(text)).await.is_ok(),
        Err(e) => {
            tracing::error!(error = %e, "chat: serializing a frame failed");
            false
        }
    }
}

/// Routes store events to the feeds of this process.
async fn dispatch(hub: Weak<ChatHub>, mut events: ChatEventStream) {
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
async fn run_feed(store: Arc<dyn Store>, feed: Arc<Feed>) {
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
        if !ok {
            tokio::time::sleep(RETRY_DELAY).await;
            feed.note(|p| p.resync = true);
        }
    }
}

/// Reads the channel and, when its membership version moved, broadcasts the new members.
async fn refresh_members(store: &dyn Store, feed: &Feed, state: &mut FeedState) -> bool {
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
async fn refresh_messages(store: &dyn Store, feed: &Feed, state: &mut FeedState) -> bool {
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
                frame: Utf8Bytes::from(text),
            });
        }
        if !full {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::sqlite::SqliteStore;
    use sealkit_proto::chat::ChannelKind;

    /// A hub whose events come from the test, not from the store: the test decides which
    /// events are "lost".
    struct Rig {
        store: Arc<dyn Store>,
        hub: Arc<ChatHub>,
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
        create_channel(store.as_ref(), &app.app_id, "alice", new, 0)
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

    async fn frame(out: &mut mpsc::Receiver<Utf8Bytes>) -> ServerFrame {
        let text = tokio::time::timeout(Duration::from_secs(5), out.recv())
            .await
            .expect("a frame within 5 s")
            .expect("subscription alive");
        serde_json::from_str(text.as_str()).unwrap()
    }

    async fn quiet(out: &mut mpsc::Receiver<Utf8Bytes>) {
        let got = tokio::time::timeout(Duration::from_millis(300), out.recv()).await;
        assert!(got.is_err(), "unexpected frame: {got:?}");
    }

    async fn post_as(rig: &Rig, sender: &str, client_id: &str, version: i64) -> i64 {
        let new = NewMessage {
            client_id: client_id.into(),
            ciphertext: B64.encode(client_id),
            member_version: version,
        };
        let (message, fresh) = post(rig.store.as_ref(), &rig.app_id, sender, "c", new, 1024, 0)
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

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn events_drive_delivery_and_resync_recovers_lost_ones() {
        let rig = rig().await;
        let (out, mut rx) = mpsc::channel(64);
        let sub = tokio::spawn(rig.hub.clone().subscribe(
            rig.app_id.clone(),
            "bob".into(),
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
            .unwrap();
        assert!(rx.recv().await.is_none(), "nothing after Removed");
        // The feed is gone with its last subscriber.
        assert!(rig.hub.feed(&rig.app_id, "c").is_none());
    }
}
