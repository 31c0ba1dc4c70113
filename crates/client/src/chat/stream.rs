//! [`ChatStream`]: realtime delivery over the chat WebSocket, with reconnection and resume.

use super::{chat_error, check_id, Chat, ReceivedMessage};
use crate::error::{Error, Result};
use futures_util::{SinkExt, StreamExt};
use sealkit_proto::chat::{codes, ClientFrame, Message, ServerFrame, TYPING_INTERVAL_MS};
use sealkit_proto::ErrorBody;
use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message as Frame};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// How often the stream pings the server when nothing else is sent.
const PING_EVERY: Duration = Duration::from_secs(10);
/// Silence after which the connection is taken for dead and replaced.
const DEAD_AFTER: Duration = Duration::from_secs(30);
/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Pause before retrying a message whose check failed (e.g. its sender's card could not be
/// fetched), so that a caller looping on errors does not spin.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What a [`ChatStream`] delivers.
///
/// ```no_run
/// # async fn run(mut stream: sealkit::chat::ChatStream) -> sealkit::Result<()> {
/// use sealkit::chat::ChatEvent;
///
/// while let Some(event) = stream.next().await {
///     match event? {
///         ChatEvent::Message(m) => match m.text() {
///             Some(text) => println!("[{}] {}: {text}", m.message.channel, m.message.sender),
///             None => println!("[{}] ({:?})", m.message.channel, m.status),
///         },
///         ChatEvent::Members { channel, .. } => println!("[{channel}] the members changed"),
///         ChatEvent::Removed { channel } => println!("[{channel}] you were removed"),
///         ChatEvent::Reconnected => println!("(back online)"),
///         // The enum is non_exhaustive: later versions may add events.
///         _ => {}
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChatEvent {
    /// A message of a subscribed channel, decrypted and checked. Each `seq` of a channel comes
    /// once, in ascending order, also across reconnections.
    Message(ReceivedMessage),
    /// The members of a channel changed (the next send encrypts for the new ones).
    Members {
        /// The channel id.
        channel: String,
        /// The new membership version.
        member_version: i64,
    },
    /// The user was removed from the channel (now, or while the connection was down); its
    /// subscription ended and nothing more comes. Subscribe again if the user is added back.
    Removed {
        /// The channel id.
        channel: String,
    },
    /// The connection was lost and is back; the subscriptions resumed where they stopped
    /// (what was sent meanwhile follows).
    Reconnected,
    /// A member of a subscribed channel (the user too, from another device) marked messages
    /// read up to `seq` ([`Chat::mark_read`]): a read receipt. A member's own messages need no
    /// receipt: sending one moves the sender's horizon to it without this event. Receipts
    /// sent while the connection was down are not repeated; [`Chat::channel`] has them all.
    Read {
        /// The channel id.
        channel: String,
        /// Who read.
        identity: String,
        /// Their read horizon now.
        seq: i64,
    },
    /// Another member is typing in a subscribed channel ([`ChatStream::typing`]). Show it for
    /// a few seconds (a member who goes on typing says so again every
    /// [`TYPING_INTERVAL_MS`] or so).
    Typing {
        /// The channel id.
        channel: String,
        /// Who is typing.
        identity: String,
    },
    /// A message already handed out was edited by its sender ([`Chat::edit`]): its latest
    /// version, decrypted and checked like a new message (against the sender's key at the
    /// time of the edit; [`ReceivedMessage::edited_at`] says when). Edits made while the
    /// connection was down are not repeated; [`Chat::history`] shows the latest versions.
    Edited(ReceivedMessage),
    /// A message already handed out was deleted ([`Chat::delete`]): its tombstone, with no
    /// body ([`ReceivedMessage::deletion`] says when and by whom). Like [`ChatEvent::Edited`],
    /// not repeated after a reconnection.
    Deleted(ReceivedMessage),
}

/// What is waiting to be handed out, in the order the server sent it.
enum Item {
    /// A message to decrypt before it is handed out.
    Message(Message),
    /// A new version (or the tombstone) of a message handed out before.
    Revision(Message),
    Event(ChatEvent),
    Error(Error),
}

struct Conn {
    socket: Socket,
    last_heard: Instant,
    next_ping: Instant,
}

/// A realtime chat connection (from [`Chat::subscribe`]): subscribe to channels, then read
/// [`ChatStream::next`].
///
/// The stream remembers the last `seq` it handed out per channel. Whenever the connection
/// drops (server restart, network change, a dead connection found by its pings), it connects
/// again with growing pauses (at most 2 s apart, with a fresh token), subscribes again from
/// those positions and drops anything already delivered: no message is lost or repeated.
/// Messages are decrypted in order, inside `next`. Dropping the stream closes the connection.
///
/// ```no_run
/// # async fn run(chat: sealkit::Chat, mut shutdown: tokio::sync::oneshot::Receiver<()>)
/// #     -> sealkit::Result<()> {
/// use sealkit::chat::ChatEvent;
///
/// let mut stream = chat.subscribe().await?;
/// stream.subscribe("team", 0).await?;
/// loop {
///     tokio::select! {
///         event = stream.next() => match event {
///             Some(Ok(ChatEvent::Message(m))) => println!("{}: {:?}", m.message.sender, m.text()),
///             Some(Ok(_)) => {}
///             // A refused subscription, or a message to check again: the stream goes on.
///             Some(Err(e)) => eprintln!("chat: {e}"),
///             None => break,
///         },
///         _ = &mut shutdown => break,
///     }
/// }
/// stream.close().await;
/// # Ok(()) }
/// ```
pub struct ChatStream {
    chat: Chat,
    conn: Option<Conn>,
    /// Subscribed channels and the last `seq` queued for each.
    subs: BTreeMap<String, i64>,
    queue: VecDeque<Item>,
    /// Consecutive failed connection attempts.
    failures: u32,
    /// No connection attempt before this (the growing pause after failures).
    retry_at: Option<Instant>,
    /// Ask the token provider for a new token at the next connection.
    fresh_token: bool,
    /// The last `next` failed to check the message at the head of the queue: the next check
    /// waits until then.
    retry_open_at: Option<Instant>,
    /// [`PING_EVERY`] and [`DEAD_AFTER`] (shorter in tests).
    ping_every: Duration,
    dead_after: Duration,
    /// When [`ChatStream::typing`] last sent a frame, per channel.
    typing_sent: BTreeMap<String, Instant>,
}

impl std::fmt::Debug for ChatStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatStream")
            .field("identity", &self.chat.identity())
            .field("connected", &self.conn.is_some())
            .field("subscriptions", &self.subs)
            .finish_non_exhaustive()
    }
}

impl ChatStream {
    pub(crate) async fn connect(chat: Chat) -> Result<Self> {
        let mut stream = Self {
            chat,
            conn: None,
            subs: BTreeMap::new(),
            queue: VecDeque::new(),
            failures: 0,
            retry_at: None,
            fresh_token: false,
            retry_open_at: None,
            ping_every: PING_EVERY,
            dead_after: DEAD_AFTER,
            typing_sent: BTreeMap::new(),
        };
        let socket = match stream.open_socket().await {
            Err(Error::Api { status: 401, .. }) => {
                stream.fresh_token = true;
                stream.open_socket().await?
            }
            other => other?,
        };
        stream.conn = Some(Conn::new(socket, stream.ping_every));
        Ok(stream)
    }

    /// Subscribes to `channel`, delivering its messages with `seq > after` (0 for all, or the
    /// last `seq` the application has, e.g. from [`Chat::history`]); subscribing again moves
    /// the position. Waits for the server's answer: [`Error::ChannelNotFound`] when refused
    /// (no such channel, or the user is not a member). When the connection is down, the
    /// subscription is made once it is back (and a refusal comes out of [`ChatStream::next`]
    /// as [`ChatEvent::Removed`]).
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::chat::HistoryCursor;
    /// use sealkit::Error;
    ///
    /// // Show the latest page, then follow what comes after it, with nothing lost in between.
    /// let page = chat.history("team", HistoryCursor::Latest, 50).await?;
    /// let last = page.messages.last().map_or(0, |m| m.message.seq);
    /// let mut stream = chat.subscribe().await?;
    /// match stream.subscribe("team", last).await {
    ///     Ok(()) => {}
    ///     // Removed since the history was read:
    ///     Err(Error::ChannelNotFound { .. }) => return Ok(()),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&mut self, channel: &str, after: i64) -> Result<()> {
        check_id(channel)?;
        self.reposition(channel, after);
        let frame = ClientFrame::Subscribe {
            channel: channel.to_owned(),
            after,
        };
        if !self.send_frame(&frame).await {
            return Ok(());
        }
        let deadline = Instant::now() + self.chat.api().timeout();
        loop {
            let Some(conn) = self.conn.as_mut() else {
                return Ok(());
            };
            let frame = match tokio::time::timeout_at(deadline, conn.socket.next()).await {
                Err(_) => {
                    return Err(Error::Network(format!(
                        "no answer to the subscription of {channel:?}"
                    )))
                }
                Ok(frame) => frame,
            };
            let Some(frame) = self.receive(frame) else {
                continue;
            };
            match frame {
                ServerFrame::Subscribed { channel: c, .. } if c == channel => return Ok(()),
                ServerFrame::Error {
                    channel: Some(c),
                    code,
                    message,
                } if c == channel => {
                    self.subs.remove(channel);
                    return Err(frame_error(code, message, channel));
                }
                other => self.handle(other),
            }
        }
    }

    /// Delivery of `channel` restarts after `after`: queued messages past it are dropped, as
    /// the server sends them again.
    fn reposition(&mut self, channel: &str, after: i64) {
        self.subs.insert(channel.to_owned(), after);
        self.queue
            .retain(|i| !matches!(i, Item::Message(m) | Item::Revision(m) if m.channel == channel && m.seq > after));
    }

    /// Stops delivery of `channel` (messages of it still queued are dropped).
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// # let mut stream = chat.subscribe().await?;
    /// # stream.subscribe("team", 0).await?;
    /// // The user closed the channel's window:
    /// stream.unsubscribe("team").await?;
    /// assert!(!stream.subscriptions().contains_key("team"));
    /// # Ok(()) }
    /// ```
    pub async fn unsubscribe(&mut self, channel: &str) -> Result<()> {
        check_id(channel)?;
        self.subs.remove(channel);
        self.queue
            .retain(|i| !matches!(i, Item::Message(m) | Item::Revision(m) if m.channel == channel));
        let frame = ClientFrame::Unsubscribe {
            channel: channel.to_owned(),
        };
        self.send_frame(&frame).await;
        Ok(())
    }

    /// The channels subscribed to, with the last `seq` received of each.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// # let mut stream = chat.subscribe().await?;
    /// # fn save_position(_: &str, _: i64) {}
    /// // Before quitting: store where each channel was read up to, to subscribe from there next
    /// // time (or to read the gap with `Chat::history` and `HistoryCursor::After`).
    /// for (channel, seq) in stream.subscriptions() {
    ///     save_position(channel, *seq);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn subscriptions(&self) -> &BTreeMap<String, i64> {
        &self.subs
    }

    /// Drops the connection as if the network had failed; the next [`ChatStream::next`]
    /// reconnects and resumes. For tests, and for applications that know the network changed.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// # let mut stream = chat.subscribe().await?;
    /// use sealkit::chat::ChatEvent;
    ///
    /// // The OS reports a new network (Wi-Fi to mobile): no need to wait for the pings to fail.
    /// stream.disconnect();
    /// // Reconnects and resumes; what was sent meanwhile follows this event.
    /// if let Some(Ok(ChatEvent::Reconnected)) = stream.next().await {
    ///     println!("back online");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn disconnect(&mut self) {
        self.conn = None;
    }

    /// Tells the other members of `channel` that the user is typing (they get
    /// [`ChatEvent::Typing`]). Call it on every keystroke: it sends at most one frame per
    /// channel every [`TYPING_INTERVAL_MS`] (the server relays no more than that) and nothing
    /// while the connection is down; nothing is stored. A channel the user is not a member of
    /// comes back from [`ChatStream::next`] as an error.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// # let mut stream = chat.subscribe().await?;
    /// // In the input field's change handler:
    /// stream.typing("team").await?;
    /// # Ok(()) }
    /// ```
    pub async fn typing(&mut self, channel: &str) -> Result<()> {
        check_id(channel)?;
        let now = Instant::now();
        let interval = Duration::from_millis(TYPING_INTERVAL_MS);
        if self
            .typing_sent
            .get(channel)
            .is_some_and(|at| now.duration_since(*at) < interval)
        {
            return Ok(());
        }
        let frame = ClientFrame::Typing {
            channel: channel.to_owned(),
        };
        if self.send_frame(&frame).await {
            self.typing_sent.insert(channel.to_owned(), now);
        }
        Ok(())
    }

    /// Closes the connection politely (a WebSocket close frame) and ends the stream.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// # let mut stream = chat.subscribe().await?;
    /// // On sign-out: the server sees a clean close rather than a connection that went silent.
    /// stream.close().await;
    /// # Ok(()) }
    /// ```
    pub async fn close(mut self) {
        if let Some(mut conn) = self.conn.take() {
            let _ = tokio::time::timeout(Duration::from_secs(1), conn.socket.close(None)).await;
        }
    }

    /// The next event. Waits as long as it takes (reconnecting as needed), so wrap it in a
    /// timeout where that matters. An error is either a subscription the server refused (the
    /// subscription is dropped) or a message that could not be checked yet (its sender's card
    /// could not be fetched): the next call tries that message again. Never returns `None`
    /// (the `Option` is for symmetry with streams).
    ///
    /// Cancel safe: it may lose the race in a `tokio::select!` at any point without losing an
    /// event (a message being decrypted stays queued, a half-made connection is made again).
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// # let mut stream = chat.subscribe().await?;
    /// use std::time::Duration;
    ///
    /// // Wait at most 30 s, e.g. in a job that checks for new messages now and then.
    /// match tokio::time::timeout(Duration::from_secs(30), stream.next()).await {
    ///     Ok(Some(Ok(event))) => println!("{event:?}"),
    ///     Ok(Some(Err(e))) => eprintln!("chat: {e}"), // call next() again: it retries
    ///     Ok(None) | Err(_) => println!("nothing new"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn next(&mut self) -> Option<Result<ChatEvent>> {
        loop {
            match self.queue.front() {
                Some(Item::Message(message) | Item::Revision(message)) => {
                    let revision = matches!(self.queue.front(), Some(Item::Revision(_)));
                    // A deadline, not a fresh sleep (see `reconnect`).
                    if let Some(at) = self.retry_open_at {
                        tokio::time::sleep_until(at).await;
                    }
                    let message = message.clone();
                    match self.chat.open(message).await {
                        Ok(received) => {
                            self.retry_open_at = None;
                            self.queue.pop_front();
                            return Some(Ok(match revision {
                                false => ChatEvent::Message(received),
                                true if received.message.deleted.is_some() => {
                                    ChatEvent::Deleted(received)
                                }
                                true => ChatEvent::Edited(received),
                            }));
                        }
                        Err(e) => {
                            self.retry_open_at = Some(Instant::now() + RETRY_PAUSE);
                            return Some(Err(e));
                        }
                    }
                }
                Some(_) => {
                    return match self.queue.pop_front() {
                        Some(Item::Event(event)) => Some(Ok(event)),
                        Some(Item::Error(e)) => Some(Err(e)),
                        _ => continue,
                    }
                }
                None => {}
            }
            if self.conn.is_none() {
                self.reconnect().await;
                continue;
            }
            self.pump().await;
        }
    }

    /// Waits for one frame (or the ping timer) and handles it.
    async fn pump(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        let next_ping = conn.next_ping;
        tokio::select! {
            frame = conn.socket.next() => {
                if let Some(frame) = self.receive(frame) {
                    self.handle(frame);
                }
            }
            _ = tokio::time::sleep_until(next_ping) => {
                if conn.last_heard.elapsed() >= self.dead_after {
                    self.conn = None;
                } else {
                    conn.next_ping = Instant::now() + self.ping_every;
                    self.send_frame(&ClientFrame::Ping).await;
                }
            }
        }
    }

    /// One attempt to connect again, after a pause that grows with the failures; on success
    /// subscribes to every channel again from its last `seq`.
    async fn reconnect(&mut self) {
        // A deadline kept in the stream rather than a fresh sleep: a caller that abandons `next`
        // more often than the pause (a `select!` with a short timer) would otherwise restart
        // the pause every time and never connect again (the same for `retry_open_at`).
        if let Some(retry_at) = self.retry_at {
            tokio::time::sleep_until(retry_at).await;
        }
        // Reset by the first frame received: a server that accepts and then drops connections
        // is retried with the same growing pauses as one that refuses them.
        self.failures = self.failures.saturating_add(1);
        let exp = self.failures.saturating_sub(1).min(5);
        let pause = (Duration::from_millis(100) * (1u32 << exp)).min(MAX_BACKOFF);
        self.retry_at = Some(Instant::now() + pause);
        match self.open_socket().await {
            Ok(mut socket) => {
                // The connection becomes the stream's only once every subscription is sent,
                // so a `next` cancelled in between (in a `select!`) leaves no channel behind.
                for (channel, after) in &self.subs {
                    let frame = ClientFrame::Subscribe {
                        channel: channel.clone(),
                        after: *after,
                    };
                    let Ok(text) = serde_json::to_string(&frame) else {
                        return;
                    };
                    let sent = socket.send(Frame::Text(text.into()));
                    if !matches!(
                        tokio::time::timeout(self.ping_every, sent).await,
                        Ok(Ok(()))
                    ) {
                        return;
                    }
                }
                self.conn = Some(Conn::new(socket, self.ping_every));
                self.queue.push_back(Item::Event(ChatEvent::Reconnected));
            }
            Err(e) => {
                match e {
                    Error::Api { status: 401, .. } => self.fresh_token = true,
                    // Refusals other than an expired token will not go away by themselves:
                    // let the application see them (still retrying).
                    Error::Api { .. } | Error::TokenProvider(_) | Error::InvalidToken(_) => {
                        self.queue.push_back(Item::Error(e));
                    }
                    _ => {}
                }
            }
        }
    }

    async fn open_socket(&mut self) -> Result<Socket> {
        let (url, authorization, agent) = self.chat.api().chat_ws_target(self.fresh_token).await?;
        self.fresh_token = false;
        let mut request = url
            .as_str()
            .into_client_request()
            .map_err(|e| Error::InvalidInput(format!("chat WebSocket URL {url:?}: {e}")))?;
        let header = |v: &str| {
            HeaderValue::from_str(v)
                .map_err(|_| Error::InvalidInput("a header value is not ASCII".to_owned()))
        };
        request
            .headers_mut()
            .insert("Authorization", header(&authorization)?);
        request
            .headers_mut()
            .insert("Virgil-Agent", header(&agent)?);
        let timeout = self.chat.api().timeout();
        match tokio::time::timeout(timeout, tokio_tungstenite::connect_async(request)).await {
            Err(_) => Err(Error::Network(format!(
                "{url}: no answer within {} s",
                timeout.as_secs_f32()
            ))),
            Ok(Err(e)) => Err(handshake_error(&url, e)),
            Ok(Ok((socket, _))) => Ok(socket),
        }
    }

    /// Sends a frame; a failure drops the connection (to be replaced) and returns `false`.
    async fn send_frame(&mut self, frame: &ClientFrame) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return false;
        };
        let Ok(text) = serde_json::to_string(frame) else {
            return false;
        };
        let sent =
            tokio::time::timeout(self.ping_every, conn.socket.send(Frame::Text(text.into()))).await;
        if matches!(sent, Ok(Ok(()))) {
            true
        } else {
            self.conn = None;
            false
        }
    }

    /// Turns what the socket gave into a server frame; ends the connection on errors, close
    /// and end of stream. Unparseable text is queued as an error.
    fn receive(
        &mut self,
        frame: Option<std::result::Result<Frame, tungstenite::Error>>,
    ) -> Option<ServerFrame> {
        let Some(Ok(frame)) = frame else {
            self.conn = None;
            return None;
        };
        if let Some(conn) = self.conn.as_mut() {
            conn.last_heard = Instant::now();
        }
        self.failures = 0;
        self.retry_at = None;
        match frame {
            Frame::Text(text) => match serde_json::from_str::<ServerFrame>(text.as_str()) {
                Ok(frame) => Some(frame),
                // A kind of frame a newer server sends and this version does not know: skipped,
                // as the protocol asks of clients (older SDKs failed on `read` and `typing`).
                Err(_) if is_unknown_frame_type(text.as_str()) => None,
                Err(e) => {
                    self.queue
                        .push_back(Item::Error(Error::InvalidResponse(format!(
                            "chat WebSocket frame: {e}"
                        ))));
                    None
                }
            },
            Frame::Close(_) => {
                self.conn = None;
                None
            }
            _ => None,
        }
    }

    fn handle(&mut self, frame: ServerFrame) {
        match frame {
            ServerFrame::Message { message } => {
                let Some(last) = self.subs.get_mut(&message.channel) else {
                    return;
                };
                if message.seq > *last {
                    *last = message.seq;
                    self.queue.push_back(Item::Message(message));
                }
            }
            ServerFrame::Members {
                channel,
                member_version,
            } => {
                self.chat.members_changed(&channel, member_version);
                self.queue.push_back(Item::Event(ChatEvent::Members {
                    channel,
                    member_version,
                }));
            }
            ServerFrame::Removed { channel } => {
                self.chat.members_changed(&channel, i64::MAX);
                if self.subs.remove(&channel).is_some() {
                    self.queue
                        .push_back(Item::Event(ChatEvent::Removed { channel }));
                }
            }
            ServerFrame::Error {
                channel,
                code,
                message,
            } => {
                let error = match channel {
                    // Refused when subscribing again after a reconnection: the user was
                    // removed while the connection was down (servers before 0.2 said
                    // "not a member", newer ones answer as for a channel that does not exist).
                    Some(channel)
                        if (code == codes::CHANNEL_NOT_FOUND || code == codes::NOT_A_MEMBER)
                            && self.subs.contains_key(&channel) =>
                    {
                        self.subs.remove(&channel);
                        self.chat.members_changed(&channel, i64::MAX);
                        self.queue
                            .push_back(Item::Event(ChatEvent::Removed { channel }));
                        return;
                    }
                    Some(channel) => {
                        self.subs.remove(&channel);
                        frame_error(code, message, &channel)
                    }
                    None => Error::Api {
                        status: 0,
                        code,
                        message,
                    },
                };
                self.queue.push_back(Item::Error(error));
            }
            ServerFrame::Read {
                channel,
                identity,
                seq,
            } => {
                if self.subs.contains_key(&channel) {
                    self.queue.push_back(Item::Event(ChatEvent::Read {
                        channel,
                        identity,
                        seq,
                    }));
                }
            }
            ServerFrame::Typing { channel, identity } => {
                if self.subs.contains_key(&channel) {
                    self.queue
                        .push_back(Item::Event(ChatEvent::Typing { channel, identity }));
                }
            }
            ServerFrame::Edited { message } | ServerFrame::Deleted { message } => {
                // Only for what was handed out (or is queued): a later seq comes as a message
                // in its latest state.
                if self
                    .subs
                    .get(&message.channel)
                    .is_some_and(|last| message.seq <= *last)
                {
                    self.queue.push_back(Item::Revision(message));
                }
            }
            ServerFrame::Subscribed { .. } | ServerFrame::Pong => {}
        }
    }
}

#[cfg(test)]
impl ChatStream {
    /// A stream that never connected, to feed frames to by hand.
    fn offline(chat: Chat) -> Self {
        Self {
            chat,
            conn: None,
            subs: BTreeMap::new(),
            queue: VecDeque::new(),
            failures: 0,
            retry_at: None,
            fresh_token: false,
            retry_open_at: None,
            ping_every: PING_EVERY,
            dead_after: DEAD_AFTER,
            typing_sent: BTreeMap::new(),
        }
    }
}

impl Conn {
    fn new(socket: Socket, ping_every: Duration) -> Self {
        let now = Instant::now();
        Self {
            socket,
            last_heard: now,
            next_ping: now + ping_every,
        }
    }
}

/// The `type`s of the server frames this version knows (`ServerFrame`'s tags).
const KNOWN_FRAME_TYPES: [&str; 8] = [
    "subscribed",
    "message",
    "members",
    "removed",
    "error",
    "pong",
    "read",
    "typing",
];

/// Whether `text` is a JSON object whose `type` is not one of [`KNOWN_FRAME_TYPES`].
fn is_unknown_frame_type(text: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Tagged {
        #[serde(rename = "type")]
        kind: String,
    }
    serde_json::from_str::<Tagged>(text)
        .is_ok_and(|frame| !KNOWN_FRAME_TYPES.contains(&frame.kind.as_str()))
}

fn frame_error(code: u32, message: String, channel: &str) -> Error {
    chat_error(
        Error::Api {
            status: 0,
            code,
            message,
        },
        channel,
    )
}

/// A failed WebSocket handshake: an HTTP refusal (with the server's `{code, message}` body
/// when there is one) or a network error.
fn handshake_error(url: &str, e: tungstenite::Error) -> Error {
    match e {
        tungstenite::Error::Http(response) => {
            let status = response.status();
            let body = response
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<ErrorBody>(b).ok());
            let (code, message) = match body {
                Some(b) => (b.code, b.message),
                None => (0, status.canonical_reason().unwrap_or("error").to_owned()),
            };
            Error::Api {
                status: status.as_u16(),
                code,
                message,
            }
        }
        other => Error::Network(format!("{url}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    // result_large_err: tungstenite's handshake callback type, not ours.
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::result_large_err)]
    use super::*;
    use crate::{EThree, EThreeOptions};
    use sealkit_crypto::PrivateKey;
    use sealkit_proto::JwtGenerator;

    async fn offline_stream(dir: &std::path::Path) -> ChatStream {
        let generator =
            JwtGenerator::new("app", "kid", PrivateKey::ed25519_from_seed(&[7; 32]), 3600);
        let provider =
            move || std::future::ready(generator.generate("alice", 1000).map(|j| j.to_string()));
        // Nothing is sent: initialize makes no request.
        let options = EThreeOptions::new("http://127.0.0.1:9", dir);
        let ethree = EThree::initialize(provider, options).await.unwrap();
        ChatStream::offline(ethree.chat())
    }

    /// A stand-in server: the first handshake is refused as expired (401, 20304), the second
    /// accepted but then silent (no pongs), the third accepted; returns the `Authorization`
    /// headers and the first client frame of each accepted connection.
    async fn flaky_server(listener: tokio::net::TcpListener) -> (Vec<String>, Vec<String>) {
        use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
        let mut auths = Vec::new();
        let mut frames = Vec::new();
        let mut sockets = Vec::new();
        for attempt in 0..3 {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut auth = String::new();
            let callback = |request: &Request, response: Response| {
                auth = request
                    .headers()
                    .get("Authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                if attempt == 0 {
                    let mut refusal = ErrorResponse::new(Some(
                        r#"{"code":20304,"message":"JWT is expired"}"#.to_owned(),
                    ));
                    *refusal.status_mut() =
                        tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
                    Err(refusal)
                } else {
                    Ok(response)
                }
            };
            let accepted = tokio_tungstenite::accept_hdr_async(tcp, callback).await;
            auths.push(auth);
            let Ok(mut socket) = accepted else { continue };
            let Some(Ok(Frame::Text(first))) = socket.next().await else {
                panic!("no subscribe frame");
            };
            frames.push(first.as_str().to_owned());
            let subscribed = serde_json::to_string(&ServerFrame::Subscribed {
                channel: "a".into(),
                last_seq: 0,
            })
            .unwrap();
            socket.send(Frame::Text(subscribed.into())).await.unwrap();
            // Kept open, never read again: pings go unanswered.
            sockets.push(socket);
        }
        (auths, frames)
    }

    #[tokio::test]
    async fn refreshes_the_token_and_replaces_a_silent_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(flaky_server(listener));
        let dir = tempfile::tempdir().unwrap();
        let generator =
            JwtGenerator::new("app", "kid", PrivateKey::ed25519_from_seed(&[7; 32]), 3600);
        let calls = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(0));
        let counter = calls.clone();
        let provider = move || {
            // Each token is distinct (issued a second later than the one before).
            let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let now = i64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_secs(),
            )
            .unwrap();
            std::future::ready(generator.generate("alice", now + n).map(|j| j.to_string()))
        };
        let options = EThreeOptions::new(format!("http://127.0.0.1:{port}"), dir.path());
        let ethree = EThree::initialize(provider, options).await.unwrap();
        let mut stream = ethree.chat().subscribe().await.unwrap();
        stream.subscribe("a", 7).await.unwrap();
        stream.ping_every = Duration::from_millis(100);
        stream.dead_after = Duration::from_millis(300);
        if let Some(conn) = stream.conn.as_mut() {
            conn.next_ping = Instant::now();
        }
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("the silent connection was not replaced")
            .unwrap()
            .unwrap();
        assert_eq!(event, ChatEvent::Reconnected);
        let (auths, frames) = server.await.unwrap();
        // Refused token, then a fresh one from the provider (used for both connections).
        assert_eq!(auths.len(), 3);
        assert!(auths.iter().all(|a| a.starts_with("Virgil ")));
        assert_ne!(auths[0], auths[1]);
        assert_eq!(auths[1], auths[2]);
        assert!(calls.load(std::sync::atomic::Ordering::SeqCst) >= 2);
        // The subscription resumed from the same position.
        let subscribe = r#"{"type":"subscribe","channel":"a","after":7}"#;
        assert_eq!(frames, [subscribe, subscribe]);
    }

    /// A caller that abandons `next` every 300 ms (a `select!` with a short timer) while the
    /// server is down long enough for the pause to grow past that: once the server is back the
    /// stream must connect (it restarted the pause at each call and never did, found by
    /// `examples/soak.rs`).
    #[tokio::test]
    async fn reconnects_although_next_is_abandoned_more_often_than_the_pause() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let generator =
            JwtGenerator::new("app", "kid", PrivateKey::ed25519_from_seed(&[7; 32]), 3600);
        let provider =
            move || std::future::ready(generator.generate("alice", 1000).map(|j| j.to_string()));
        let options = EThreeOptions::new(format!("http://127.0.0.1:{port}"), dir.path());
        let ethree = EThree::initialize(provider, options).await.unwrap();
        let mut stream = ChatStream::offline(ethree.chat());
        let patience = Duration::from_millis(300);
        // Nothing listens: the attempts are refused and the pause grows to 2 s.
        for _ in 0..15 {
            let _ = tokio::time::timeout(patience, stream.next()).await;
        }
        assert!(stream.failures >= 4, "{}", stream.failures);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut socket = tokio_tungstenite::accept_async(tcp).await.unwrap();
            while socket.next().await.is_some() {}
        });
        let mut reconnected = false;
        for _ in 0..20 {
            if let Ok(Some(Ok(event))) = tokio::time::timeout(patience, stream.next()).await {
                assert_eq!(event, ChatEvent::Reconnected);
                reconnected = true;
                break;
            }
        }
        assert!(
            reconnected,
            "not connected within 6 s of the server's return"
        );
        stream.close().await;
        server.await.unwrap();
    }

    fn message(channel: &str, seq: i64) -> ServerFrame {
        ServerFrame::Message {
            message: Message {
                seq,
                channel: channel.into(),
                sender: "bob".into(),
                client_id: format!("c{seq}"),
                sent_at: 1_795_801_646_000,
                member_version: 1,
                ciphertext: "AAEC".into(),
                kt_head: None,
                edited_at: None,
                deleted: None,
            },
        }
    }

    fn queued(stream: &ChatStream) -> Vec<String> {
        stream
            .queue
            .iter()
            .map(|i| match i {
                Item::Message(m) => format!("{}#{}", m.channel, m.seq),
                Item::Revision(m) => format!("revision {}#{}", m.channel, m.seq),
                Item::Event(e) => format!("{e:?}"),
                Item::Error(e) => format!("error: {e}"),
            })
            .collect()
    }

    /// Frames of kinds this version does not know are skipped; malformed known ones are errors.
    #[test]
    fn unknown_frame_types_are_skipped() {
        assert!(is_unknown_frame_type(
            r#"{"type":"reaction","channel":"a"}"#
        ));
        for known in KNOWN_FRAME_TYPES {
            assert!(!is_unknown_frame_type(&format!(r#"{{"type":"{known}"}}"#)));
        }
        assert!(!is_unknown_frame_type("not json"));
        // Every known type parses as a ServerFrame (the list matches the enum).
        let samples = [
            r#"{"type":"subscribed","channel":"a","last_seq":1}"#,
            r#"{"type":"members","channel":"a","member_version":2}"#,
            r#"{"type":"removed","channel":"a"}"#,
            r#"{"type":"error","channel":null,"code":1,"message":"m"}"#,
            r#"{"type":"pong"}"#,
            r#"{"type":"read","channel":"a","identity":"b","seq":1}"#,
            r#"{"type":"typing","channel":"a","identity":"b"}"#,
        ];
        for sample in samples {
            assert!(
                serde_json::from_str::<ServerFrame>(sample).is_ok(),
                "{sample}"
            );
        }
    }

    /// Read receipts and typing of subscribed channels become events, in order; those of other
    /// channels are dropped. Typing without a connection sends nothing and is no error.
    #[tokio::test]
    async fn read_and_typing_only_for_subscribed_channels() {
        let dir = tempfile::tempdir().unwrap();
        let mut stream = offline_stream(dir.path()).await;
        stream.subs.insert("a".into(), 0);
        for channel in ["a", "b"] {
            stream.handle(ServerFrame::Read {
                channel: channel.into(),
                identity: "bob".into(),
                seq: 3,
            });
            stream.handle(ServerFrame::Typing {
                channel: channel.into(),
                identity: "carol".into(),
            });
        }
        assert_eq!(
            queued(&stream),
            [
                r#"Read { channel: "a", identity: "bob", seq: 3 }"#,
                r#"Typing { channel: "a", identity: "carol" }"#,
            ]
        );
        stream.typing("a").await.unwrap();
        assert!(stream.typing_sent.is_empty(), "nothing was sent offline");
        assert!(matches!(
            stream.typing("not a channel").await,
            Err(Error::InvalidInput(_))
        ));
    }

    /// A message that cannot be checked yet (here: no private key) is checked again every
    /// `RETRY_PAUSE`, also when the caller abandons `next` sooner than that (found by
    /// `examples/soak.rs`: the pause restarted at each call and the stream stood still).
    #[tokio::test]
    async fn retries_a_message_although_next_is_abandoned_more_often_than_the_pause() {
        let dir = tempfile::tempdir().unwrap();
        let mut stream = offline_stream(dir.path()).await;
        stream.subs.insert("a".into(), 0);
        stream.handle(message("a", 1));
        assert!(matches!(
            stream.next().await,
            Some(Err(Error::MissingPrivateKey))
        ));
        let mut checks = 0;
        for _ in 0..10 {
            let patience = RETRY_PAUSE / 2;
            if let Ok(outcome) = tokio::time::timeout(patience, stream.next()).await {
                assert!(matches!(outcome, Some(Err(Error::MissingPrivateKey))));
                checks += 1;
            }
        }
        // 10 calls of RETRY_PAUSE / 2: about 4 more checks.
        assert!(checks >= 2, "{checks}");
        assert_eq!(queued(&stream), ["a#1"]);
    }

    #[tokio::test]
    async fn each_seq_once_and_only_for_subscribed_channels() {
        let dir = tempfile::tempdir().unwrap();
        let mut stream = offline_stream(dir.path()).await;
        stream.subs.insert("a".into(), 2);
        stream.subs.insert("b".into(), 0);
        // A replay after a reconnect overlaps what was delivered: 1 and 2 are dropped, and
        // so is anything repeated or for a channel not subscribed.
        for frame in [
            message("a", 1),
            message("a", 2),
            message("a", 3),
            message("b", 1),
            message("a", 3),
            message("c", 1),
            message("a", 4),
            message("b", 1),
        ] {
            stream.handle(frame);
        }
        assert_eq!(queued(&stream), ["a#3", "b#1", "a#4"]);
        assert_eq!(stream.subs["a"], 4);
        assert_eq!(stream.subs["b"], 1);
        // Subscribing again from an earlier point drops the queued copies (they come again).
        stream.reposition("a", 2);
        assert_eq!(queued(&stream), ["b#1"]);
        stream.handle(message("a", 3));
        assert_eq!(queued(&stream), ["b#1", "a#3"]);
    }

    #[tokio::test]
    async fn removal_and_refusals_end_subscriptions() {
        let dir = tempfile::tempdir().unwrap();
        let mut stream = offline_stream(dir.path()).await;
        for channel in ["a", "b", "c"] {
            stream.subs.insert(channel.into(), 0);
        }
        stream.handle(ServerFrame::Removed {
            channel: "a".into(),
        });
        stream.handle(message("a", 1));
        // Refused on re-subscription: removed while disconnected (an older server's code,
        // then today's, which answers outsiders as for no channel).
        stream.handle(ServerFrame::Error {
            channel: Some("b".into()),
            code: codes::NOT_A_MEMBER,
            message: "not a member".into(),
        });
        stream.handle(ServerFrame::Error {
            channel: Some("c".into()),
            code: codes::CHANNEL_NOT_FOUND,
            message: "gone".into(),
        });
        // Any other refusal of a subscribed channel is an error.
        stream.subs.insert("d".into(), 0);
        stream.handle(ServerFrame::Error {
            channel: Some("d".into()),
            code: codes::INVALID,
            message: "bad cursor".into(),
        });
        stream.handle(ServerFrame::Members {
            channel: "x".into(),
            member_version: 3,
        });
        assert!(stream.subs.is_empty());
        let q = queued(&stream);
        assert_eq!(q.len(), 5, "{q:?}");
        assert!(q[0].contains("Removed") && q[0].contains("\"a\""));
        assert!(q[1].contains("Removed") && q[1].contains("\"b\""));
        assert!(q[2].contains("Removed") && q[2].contains("\"c\""));
        assert!(q[3].starts_with("error: "), "{q:?}");
        assert!(q[4].contains("Members"));
        let first = stream.next().await.unwrap().unwrap();
        assert_eq!(
            first,
            ChatEvent::Removed {
                channel: "a".into()
            }
        );
    }
}
