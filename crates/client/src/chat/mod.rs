//! End-to-end encrypted chat over a Sealkit server's `/chat/v1` API (Sealkit's own, not a
//! Virgil service): channels with members, ordered history, realtime delivery over WebSocket.
//!
//! # Security model
//!
//! * Every message is [`EThree::auth_encrypt`]ed (signed, then encrypted, e3kit's format) to
//!   the cards of the channel's members **at the moment it is sent**, the sender included so
//!   their other devices can read their own history. The server stores and forwards only that
//!   ciphertext; what it sees in clear is the channel, the sender (from the token), the time and
//!   the sender's random `client_id`, as well as the size rounded up by the padding.
//! * A member who is removed cannot read anything sent after the removal: the server refuses a
//!   post encrypted for an outdated member list (`member_version`), and the sender re-reads the
//!   members and encrypts again. Likewise a member who joins cannot read what was sent before
//!   (those messages come back as [`Verification::NotForMe`]).
//! * Each received message is decrypted and its signature checked against the sender's card
//!   that was valid when the server stored it (`sent_at`, with a small allowance for clock skew,
//!   [`CLOCK_SKEW`]), so messages sent before a key rotation still verify. Only a verified
//!   message has a [`ReceivedMessage::body`]; anything else carries its [`Verification`] and
//!   no plaintext.
//! * What the server is trusted with: the member list. A malicious server could list an extra
//!   (registered) identity as a member and senders would encrypt to it; it cannot read messages
//!   without such a key, forge a sender, or change a message unnoticed. Show members to users
//!   ([`Chat::channel`]) where that matters.
//!
//! Why not e3kit's group sessions ([`crate::Group`])? Those share one epoch key per group:
//! removing someone needs a new epoch and its tickets distributed before the next message, and a
//! device must fetch tickets before it can read. Encrypting each message to the members costs
//! one key agreement per member and about 250 bytes of header each, which is fine for
//! channels of up to a few hundred members and gives immediate removal with no shared state.
//!
//! # Example
//!
//! ```no_run
//! use sealkit::chat::{ChannelKind, ChatEvent, HistoryCursor};
//!
//! # async fn run(alice: sealkit::EThree) -> sealkit::Result<()> {
//! let chat = alice.chat(); // keep it: it caches members and cards between sends
//! chat.create_channel("team", ChannelKind::Group, &["bob", "carol"], false).await?;
//! chat.send_text("team", "hello both").await?;
//!
//! let page = chat.history("team", HistoryCursor::Latest, 50).await?;
//! for m in &page.messages {
//!     println!("{}: {}", m.message.sender, m.text().unwrap_or("(unreadable)"));
//! }
//!
//! let mut stream = chat.subscribe().await?;
//! stream.subscribe("team", page.messages.last().map_or(0, |m| m.message.seq)).await?;
//! while let Some(event) = stream.next().await {
//!     match event? {
//!         ChatEvent::Message(m) => println!("{}: {:?}", m.message.sender, m.text()),
//!         ChatEvent::Removed { channel } => println!("removed from {channel}"),
//!         _ => {}
//!     }
//! }
//! # Ok(()) }
//! ```

mod attachment;
pub mod search;
mod stream;

pub use attachment::Attachment;
pub use sealkit_proto::chat::{Channel, ChannelKind, Deletion, Message, ReadState};
pub use search::SearchHit;
pub use stream::{ChatEvent, ChatStream};

use crate::api::chat::{Page, Posted};
use crate::card::Card;
use crate::error::{Error, Result};
use crate::ethree::{EThree, MessageFormat};
use crate::transparency::KtFailure;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use sealkit_crypto::PublicKey;
use sealkit_proto::chat::{codes, validate_channel_id, EditMessage, NewMessage};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How far a message's `sent_at` (the server's clock) may be from the creation time of the
/// sender's card (the sender's clock) for that card to count as valid then. Around a key
/// rotation, a message is accepted if signed by either key within this window.
///
/// So a device whose clock is off by more than this may sign messages, right after rotating
/// its key, that others see as [`Verification::BadSignature`]. An application can warn about
/// it by comparing the `sent_at` of a message it just sent (the server's clock, plus the
/// request's round trip) with the device's clock:
///
/// ```
/// use sealkit::chat::CLOCK_SKEW;
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
///
/// fn clock_is_off(sent_at_ms: i64, now: SystemTime) -> bool {
///     let server = UNIX_EPOCH + Duration::from_millis(sent_at_ms.max(0).unsigned_abs());
///     let diff = now.duration_since(server).unwrap_or_else(|e| e.duration());
///     diff > CLOCK_SKEW
/// }
///
/// // The device's clock against a message stored 2 s, then 60 s, before it (server clock).
/// let now = UNIX_EPOCH + Duration::from_secs(1_700_000_002);
/// assert!(!clock_is_off(1_700_000_000_000, now));
/// assert!(clock_is_off(1_699_999_942_000, now));
/// ```
pub const CLOCK_SKEW: Duration = Duration::from_secs(5);

/// How many times [`Chat::send`] encrypts again when the members changed meanwhile.
const STALE_RETRIES: u32 = 5;

/// How many times a post is repeated (with the same `client_id`) after a network error or a
/// 5xx answer.
const POST_RETRIES: u32 = 2;

/// How long a card found on the server is used without asking again.
const CARD_TTL: Duration = Duration::from_secs(60);

/// What checking a received message found.
///
/// ```
/// use sealkit::chat::Verification;
///
/// // What to show instead of a message that did not verify.
/// fn placeholder(status: Verification) -> Option<&'static str> {
///     match status {
///         Verification::Verified => None,
///         Verification::NotForMe => Some("(sent before you joined)"),
///         Verification::BadSignature | Verification::UnknownSender => {
///             Some("(could not verify the sender: hidden)")
///         }
///         Verification::Malformed => Some("(damaged message)"),
///         // The enum is non_exhaustive: later versions may add reasons.
///         _ => Some("(unreadable)"),
///     }
/// }
///
/// assert_eq!(placeholder(Verification::Verified), None);
/// assert_eq!(placeholder(Verification::NotForMe), Some("(sent before you joined)"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verification {
    /// Decrypted, and signed by the sender's card valid when it was sent.
    Verified,
    /// Not encrypted for this user's key: the user was not a member when it was sent (joined
    /// later, or had been removed), or has replaced their key since.
    NotForMe,
    /// Decrypted, but not signed by the claimed sender: the plaintext is withheld.
    BadSignature,
    /// The sender has no card (not registered, or none that was valid when it was sent).
    UnknownSender,
    /// The sender is a verified contact whose key changed since (see
    /// [`crate::EThree::verify_safety_number`]): the plaintext is withheld until the user accepts
    /// the change ([`crate::EThree::accept_change`]) or verifies the new safety number, then
    /// [`Chat::open`]s the message again.
    SenderKeyChanged,
    /// The sender's card failed the key-transparency check (it is not the card the server's
    /// verifiable key directory holds, or the directory's head did not verify): the plaintext
    /// is withheld. The error itself comes from [`crate::EThree::find_user`] on the sender.
    KeyTransparencyFailed,
    /// The signed head of the key directory the sender gossiped with the message is not in one
    /// history with this client's: the server shows the two users different directories (a
    /// split view; [`crate::KtFailure::SplitView`]). The plaintext is withheld, since the
    /// sender's card may come from the other view. Call [`crate::EThree::find_user`] on the
    /// sender for the typed error; report the server.
    SplitView,
    /// Not a message this SDK can read (bad base64, not an e3kit `authEncrypt` envelope,
    /// damaged).
    Malformed,
    /// The message was deleted ([`Chat::delete`]): the server holds only its tombstone
    /// ([`ReceivedMessage::deletion`]), there is nothing to decrypt.
    Deleted,
}

/// A message as received: the server's metadata, and the plaintext if it verified.
///
/// Returned by [`Chat::history`], [`Chat::open`] and [`ChatEvent::Message`]. Its fields are
/// public, so tests of an application's own display code can build one:
///
/// ```
/// use sealkit::chat::{Message, ReceivedMessage, Verification};
///
/// let message = Message {
///     seq: 7,
///     channel: "team".into(),
///     sender: "bob".into(),
///     client_id: "9f2c".into(),
///     sent_at: 1_700_000_000_000,
///     member_version: 1,
///     ciphertext: String::new(), // not looked at by the helpers
///     kt_head: None,
///     edited_at: None,
///     deleted: None,
/// };
/// let joined_later = ReceivedMessage {
///     message,
///     body: None,
///     status: Verification::NotForMe,
/// };
/// assert!(!joined_later.is_verified());
/// assert_eq!(joined_later.text(), None);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The stored message (seq, channel, sender, time, client id, ciphertext).
    pub message: Message,
    /// The plaintext, present only when [`ReceivedMessage::status`] is
    /// [`Verification::Verified`]: unverified bytes are never handed out.
    pub body: Option<Vec<u8>>,
    /// Whether, and why not, the message could be read.
    pub status: Verification,
}

impl ReceivedMessage {
    /// The verified body as UTF-8 text (`None` when unverified, not UTF-8, or a file: see
    /// [`ReceivedMessage::attachment`]).
    ///
    /// ```
    /// # use sealkit::chat::{Message, ReceivedMessage, Verification};
    /// # let message = Message { seq: 7, channel: "team".into(), sender: "bob".into(),
    /// #     client_id: "9f2c".into(), sent_at: 1_700_000_000_000, member_version: 1,
    /// #     ciphertext: String::new(), kt_head: None, edited_at: None, deleted: None };
    /// let verified = ReceivedMessage {
    ///     message,
    ///     body: Some(b"lunch at 1?".to_vec()),
    ///     status: Verification::Verified,
    /// };
    /// let text = verified.text().unwrap_or("(unreadable)");
    /// assert_eq!(format!("{}: {text}", verified.message.sender), "bob: lunch at 1?");
    ///
    /// // A verified body that is not text (e.g. an application's own binary format):
    /// let binary = ReceivedMessage { body: Some(vec![0xff, 0x00]), ..verified };
    /// assert!(binary.is_verified());
    /// assert_eq!(binary.text(), None);
    /// ```
    pub fn text(&self) -> Option<&str> {
        self.body
            .as_deref()
            .filter(|b| Attachment::from_body(b).is_none())
            .and_then(|b| std::str::from_utf8(b).ok())
    }

    /// Whether the message decrypted and verified.
    ///
    /// ```
    /// # use sealkit::chat::{Message, ReceivedMessage, Verification};
    /// # let message = Message { seq: 7, channel: "team".into(), sender: "bob".into(),
    /// #     client_id: "9f2c".into(), sent_at: 1_700_000_000_000, member_version: 1,
    /// #     ciphertext: String::new(), kt_head: None, edited_at: None, deleted: None };
    /// # let verified = ReceivedMessage { message: message.clone(), body: Some(b"hi".to_vec()),
    /// #     status: Verification::Verified };
    /// # let forged = ReceivedMessage { message, body: None, status: Verification::BadSignature };
    /// // Count only what is known to come from its sender, e.g. for an unread badge:
    /// let page = vec![verified, forged];
    /// assert_eq!(page.iter().filter(|m| m.is_verified()).count(), 1);
    /// ```
    pub fn is_verified(&self) -> bool {
        self.status == Verification::Verified
    }

    /// When the sender last edited it ([`Chat::edit`]), if ever: the body is then the latest
    /// version, checked against the sender's key at the time of the edit.
    ///
    /// ```
    /// # use sealkit::chat::{Message, ReceivedMessage, Verification};
    /// # let message = Message { seq: 7, channel: "team".into(), sender: "bob".into(),
    /// #     client_id: "9f2c".into(), sent_at: 1_700_000_000_000, member_version: 1,
    /// #     ciphertext: String::new(), kt_head: None, edited_at: Some(1_700_000_060_000),
    /// #     deleted: None };
    /// # let m = ReceivedMessage { message, body: Some(b"lunch at 2?".to_vec()),
    /// #     status: Verification::Verified };
    /// let mark = if m.edited_at().is_some() { " (edited)" } else { "" };
    /// assert_eq!(format!("#{}{mark} {}", m.message.seq, m.text().unwrap_or("-")), "#7 (edited) lunch at 2?");
    /// ```
    pub fn edited_at(&self) -> Option<SystemTime> {
        self.message.edited_at.map(millis_to_time)
    }

    /// When and by whom the message was deleted ([`Chat::delete`]), for a tombstone: the
    /// time, and the sender or the channel admin who deleted it.
    ///
    /// ```
    /// # use sealkit::chat::{Deletion, Message, ReceivedMessage, Verification};
    /// # let message = Message { seq: 7, channel: "team".into(), sender: "bob".into(),
    /// #     client_id: "9f2c".into(), sent_at: 1_700_000_000_000, member_version: 1,
    /// #     ciphertext: String::new(), kt_head: None, edited_at: None,
    /// #     deleted: Some(Deletion { at: 1_700_000_060_000, by: "alice".into() }) };
    /// # let m = ReceivedMessage { message, body: None, status: Verification::Deleted };
    /// if let Some((_, by)) = m.deletion() {
    ///     println!("#{} (deleted by {by})", m.message.seq);
    /// }
    /// assert_eq!(m.text(), None);
    /// ```
    pub fn deletion(&self) -> Option<(SystemTime, &str)> {
        self.message
            .deleted
            .as_ref()
            .map(|d| (millis_to_time(d.at), d.by.as_str()))
    }

    /// When the server stored it.
    ///
    /// ```
    /// # use sealkit::chat::{Message, ReceivedMessage, Verification};
    /// # let message = Message { seq: 7, channel: "team".into(), sender: "bob".into(),
    /// #     client_id: "9f2c".into(), sent_at: 1_700_000_000_000, member_version: 1,
    /// #     ciphertext: String::new(), kt_head: None, edited_at: None, deleted: None };
    /// # let received = ReceivedMessage { message, body: None, status: Verification::NotForMe };
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// // The server's time (Unix milliseconds in `message.sent_at`) as a SystemTime:
    /// let at = received.sent_at();
    /// assert_eq!(at, UNIX_EPOCH + Duration::from_millis(1_700_000_000_000));
    /// let age = std::time::SystemTime::now().duration_since(at).unwrap_or_default();
    /// println!("sent {} min ago", age.as_secs() / 60);
    /// ```
    pub fn sent_at(&self) -> SystemTime {
        millis_to_time(self.message.sent_at)
    }
}

/// Which page of a channel's history [`Chat::history`] returns.
///
/// ```
/// use sealkit::chat::HistoryCursor;
///
/// // Opening a channel: catch up from the last message seen, or show the newest page.
/// fn on_open(last_seen: Option<i64>) -> HistoryCursor {
///     last_seen.map_or(HistoryCursor::Latest, HistoryCursor::After)
/// }
/// // Scrolling back: the page before the oldest message on screen.
/// fn on_scroll_up(oldest_shown: i64) -> HistoryCursor {
///     HistoryCursor::Before(oldest_shown)
/// }
///
/// assert_eq!(on_open(None), HistoryCursor::Latest);
/// assert_eq!(on_open(Some(57)), HistoryCursor::After(57));
/// assert_eq!(on_scroll_up(41), HistoryCursor::Before(41));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryCursor {
    /// The newest messages.
    Latest,
    /// The oldest messages with `seq` greater than this (0 for the start of the channel).
    After(i64),
    /// The newest messages with `seq` less than this (scrolling back).
    Before(i64),
}

/// One page of history, oldest first.
///
/// ```no_run
/// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
/// use sealkit::chat::HistoryCursor;
///
/// // Export a whole channel, oldest first, page by page.
/// let mut after = 0;
/// loop {
///     let page = chat.history("team", HistoryCursor::After(after), 500).await?;
///     for m in &page.messages {
///         println!("#{} {}: {}", m.message.seq, m.message.sender, m.text().unwrap_or("-"));
///     }
///     match page.messages.last() {
///         Some(last) if page.more => after = last.message.seq,
///         _ => break,
///     }
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryPage {
    /// The messages, ascending by `seq`.
    pub messages: Vec<ReceivedMessage>,
    /// Whether more messages exist in the direction asked (after the last one for
    /// [`HistoryCursor::After`], before the first one otherwise).
    pub more: bool,
}

/// The chat client of one [`EThree`] user; see the [module documentation](self).
///
/// Cheap to clone; clones share what was looked up (channel members, cards), so keep one `Chat`
/// (or clones of it) rather than calling [`EThree::chat`] for every message.
///
/// ```no_run
/// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
/// let chat = ethree.chat();
/// // A clone for a background task: it shares what `chat` has already looked up.
/// let notifier = chat.clone();
/// let task = tokio::spawn(async move { notifier.send_text("alerts", "backup done").await });
/// chat.send_text("team", "hello").await?;
/// if let Ok(Err(e)) = task.await {
///     eprintln!("alert not sent: {e}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Chat {
    ethree: EThree,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Chat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chat")
            .field("identity", &self.ethree.identity())
            .finish_non_exhaustive()
    }
}

#[derive(Default)]
struct Shared {
    /// Channels as last read, for their members and `member_version`.
    channels: Mutex<HashMap<String, Channel>>,
    /// What the server last said about each user's card, and when. The cards themselves are
    /// in the user's card cache (the SDK's local store), where `find_users` put them.
    card_lookups: Mutex<HashMap<String, CardLookup>>,
}

/// One look-up of a user's card on the server.
#[derive(Clone, Copy, Debug)]
struct CardLookup {
    at: Instant,
    /// `false`: the user had no card (not registered); remembered too, so that a channel
    /// with unregistered members does not cost a search per message.
    found: bool,
}

impl Shared {
    /// Whether the user had a card, if the server was asked less than [`CARD_TTL`] ago.
    fn fresh_lookup(&self, identity: &str) -> Option<bool> {
        lock(&self.card_lookups)
            .get(identity)
            .filter(|lookup| lookup.at.elapsed() < CARD_TTL)
            .map(|lookup| lookup.found)
    }

    /// Remembers that the server was just asked about `identities`.
    fn record_lookups<'a>(&self, identities: impl IntoIterator<Item = &'a str>, found: bool) {
        let at = Instant::now();
        let mut lookups = lock(&self.card_lookups);
        for identity in identities {
            lookups.insert(identity.to_owned(), CardLookup { at, found });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Chat {
    pub(crate) fn new(ethree: EThree) -> Self {
        Self {
            ethree,
            shared: Arc::default(),
        }
    }

    /// The user this client acts for.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// # let page = chat.history("team", sealkit::chat::HistoryCursor::Latest, 50).await?;
    /// // Tell the user's own messages (from any of their devices) from the others':
    /// for m in &page.messages {
    ///     let mine = m.message.sender == chat.identity();
    ///     let who = if mine { "me" } else { m.message.sender.as_str() };
    ///     println!("{who}: {}", m.text().unwrap_or("(unreadable)"));
    /// }
    /// # Ok(()) }
    /// ```
    pub fn identity(&self) -> &str {
        self.ethree.identity()
    }

    fn api(&self) -> &crate::api::ApiClient {
        &self.ethree.inner.api
    }

    // ------------------------------------------------------------------------------ channels

    /// Creates a channel with `members` besides the user (who becomes its first admin).
    /// `open` lets any user of the application [`Chat::join`] it (group channels only).
    ///
    /// Errors: [`Error::ChannelExists`], [`Error::InvalidInput`] (bad id or member list),
    /// [`Error::MembershipRule`].
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// use sealkit::chat::ChannelKind;
    /// use sealkit::Error;
    ///
    /// let chat = ethree.chat();
    /// match chat.create_channel("team", ChannelKind::Group, &["bob", "carol"], false).await {
    ///     Ok(channel) => println!("created; admins {:?}", channel.admins),
    ///     Err(Error::ChannelExists { channel }) => println!("{channel} exists: pick another id"),
    ///     Err(Error::InvalidInput(why)) => println!("cannot create it: {why}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn create_channel(
        &self,
        id: &str,
        kind: ChannelKind,
        members: &[&str],
        open: bool,
    ) -> Result<Channel> {
        check_id(id)?;
        let members = members.iter().map(|m| (*m).to_owned()).collect();
        let channel = self
            .api()
            .chat_create(id, kind, members, open)
            .await
            .map_err(|e| chat_error(e, id))?;
        Ok(self.remember(channel))
    }

    /// The direct (1:1) channel with `other`: created on first use, the existing one after.
    /// Its id is [`direct_channel_id`], the same whoever of the two asks first.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// use sealkit::Error;
    ///
    /// let chat = ethree.chat();
    /// let dm = chat.direct_channel("bob").await?; // the same channel on Bob's side
    /// match chat.send_text(&dm.id, "hi Bob").await {
    ///     Ok(_) => {}
    ///     // Bob has no card yet: nobody but the sender could read it, so nothing was posted.
    ///     Err(Error::UsersNotFound { .. }) => println!("Bob has not registered yet"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn direct_channel(&self, other: &str) -> Result<Channel> {
        let id = direct_channel_id(self.identity(), other);
        let channel = match self
            .create_channel(&id, ChannelKind::Direct, &[other], false)
            .await
        {
            Err(Error::ChannelExists { .. }) => match self.channel(&id).await {
                // The user left it earlier: come back.
                Err(Error::ChannelNotFound { .. }) => self.join(&id).await?,
                other => other?,
            },
            other => other?,
        };
        // Servers before Sealkit 0.2 let anyone take a `dm:` id for another channel; the
        // other side may have left (then only the user is a member).
        let pair = [self.identity(), other];
        let members_ok = channel.members.iter().any(|m| m == self.identity())
            && channel.members.iter().all(|m| pair.contains(&m.as_str()));
        if channel.kind != ChannelKind::Direct || !members_ok {
            return Err(Error::InvalidResponse(format!(
                "channel {id:?} is not the direct channel of {} and {other}",
                self.identity()
            )));
        }
        Ok(channel)
    }

    /// The channels the user is a member of.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// // A channel list with unread counts (kept by the server, see `Chat::mark_read`):
    /// for channel in chat.channels().await? {
    ///     let unread = channel.unread.unwrap_or(0);
    ///     println!("{} ({} members): {unread} new", channel.id, channel.members.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn channels(&self) -> Result<Vec<Channel>> {
        let list = self.api().chat_channels().await?;
        Ok(list.into_iter().map(|c| self.remember(c)).collect())
    }

    /// One channel, read from the server (members only: [`Error::ChannelNotFound`] for a
    /// channel that does not exist or of which the user is not a member).
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::Error;
    ///
    /// // Show who a message will be encrypted for (the server chooses the member list).
    /// match chat.channel("team").await {
    ///     Ok(channel) => println!("members: {}", channel.members.join(", ")),
    ///     Err(Error::ChannelNotFound { .. }) => println!("no such channel, or no access"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn channel(&self, id: &str) -> Result<Channel> {
        check_id(id)?;
        match self.api().chat_channel(id).await {
            Ok(channel) => Ok(self.remember(channel)),
            Err(e) => {
                self.forget(id);
                Err(chat_error(e, id))
            }
        }
    }

    /// Marks every message of `channel` up to `seq` read (the user's read horizon, kept by the
    /// server for all the user's devices). The horizon never moves back: a lower `seq` changes
    /// nothing, and the answer is the horizon as stored. A `seq` beyond the channel's newest
    /// message is [`Error::InvalidInput`]; a channel the user is not in is
    /// [`Error::ChannelNotFound`]. The other members' subscriptions get
    /// [`ChatEvent::Read`]; [`Channel::read`] has every member's horizon and
    /// [`Channel::unread`] the user's unread count. Sending a message moves the user's
    /// horizon to it by itself.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// let page = chat.history("team", sealkit::chat::HistoryCursor::Latest, 50).await?;
    /// // Shown on screen: mark them read.
    /// if let Some(last) = page.messages.last() {
    ///     let state = chat.mark_read("team", last.message.seq).await?;
    ///     println!("{} unread in team", state.unread);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn mark_read(&self, channel: &str, seq: i64) -> Result<ReadState> {
        check_id(channel)?;
        if seq < 0 {
            return Err(Error::InvalidInput("seq must not be negative".into()));
        }
        self.api()
            .chat_mark_read(channel, seq)
            .await
            .map_err(|e| chat_error(e, channel))
    }

    /// Adds the user to an open channel ([`Error::ChannelNotFound`] if it does not exist or
    /// is not open: the server does not tell outsiders which), or back to a direct channel of
    /// theirs that they left.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::Error;
    ///
    /// match chat.join("lobby").await {
    ///     // Only what is sent from now on is encrypted for the user: start reading there.
    ///     Ok(channel) => {
    ///         let mut stream = chat.subscribe().await?;
    ///         stream.subscribe(&channel.id, channel.last_seq).await?;
    ///     }
    ///     Err(Error::ChannelNotFound { .. }) => println!("no lobby, or it is invite-only"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn join(&self, id: &str) -> Result<Channel> {
        let me = self.identity().to_owned();
        self.add_member(id, &me).await
    }

    /// Removes the user from a channel ([`Error::MembershipRule`] for the last admin of a
    /// group channel). Messages sent afterwards are not encrypted for them. Leaving a direct
    /// channel is allowed too: the other side can no longer reach the user there, until the
    /// user comes back ([`Chat::direct_channel`] or [`Chat::join`]).
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::Error;
    ///
    /// match chat.leave("team").await {
    ///     Ok(()) => {}
    ///     // The last admin of a group channel:
    ///     Err(Error::MembershipRule { message, .. }) => println!("cannot leave: {message}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn leave(&self, id: &str) -> Result<()> {
        let me = self.identity().to_owned();
        self.remove_member(id, &me).await?;
        self.forget(id);
        Ok(())
    }

    /// Adds `identity` to a channel (admins only, [`Error::NotAnAdmin`]).
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::Error;
    ///
    /// match chat.add_member("team", "dave").await {
    ///     // Dave reads what is sent from now on; earlier messages stay unreadable to him.
    ///     Ok(channel) => println!("now {} members", channel.members.len()),
    ///     Err(Error::NotAnAdmin { .. }) => println!("ask an admin to add dave"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn add_member(&self, id: &str, identity: &str) -> Result<Channel> {
        check_id(id)?;
        let channel = self
            .api()
            .chat_add_member(id, identity)
            .await
            .map_err(|e| chat_error(e, id))?;
        Ok(self.remember(channel))
    }

    /// Removes `identity` from a channel (admins; anyone for themselves).
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// let channel = chat.remove_member("team", "bob").await?;
    /// assert!(!channel.members.iter().any(|m| m == "bob"));
    /// // Encrypted for the remaining members only:
    /// chat.send_text("team", "bob has left the project").await?;
    /// # Ok(()) }
    /// ```
    pub async fn remove_member(&self, id: &str, identity: &str) -> Result<Channel> {
        check_id(id)?;
        let channel = self
            .api()
            .chat_remove_member(id, identity)
            .await
            .map_err(|e| chat_error(e, id))?;
        Ok(self.remember(channel))
    }

    fn remember(&self, channel: Channel) -> Channel {
        lock(&self.shared.channels).insert(channel.id.clone(), channel.clone());
        channel
    }

    fn forget(&self, id: &str) {
        lock(&self.shared.channels).remove(id);
    }

    /// Drops the cached members of `id` unless they are at least `member_version`.
    pub(crate) fn members_changed(&self, id: &str, member_version: i64) {
        let mut channels = lock(&self.shared.channels);
        if channels
            .get(id)
            .is_some_and(|c| c.member_version < member_version)
        {
            channels.remove(id);
        }
    }

    // ------------------------------------------------------------------------------ sending

    /// Encrypts `data` for the channel's members (and the user) and posts it. Returns the
    /// stored message (its `seq` and `sent_at`).
    ///
    /// Uses the members and cards cached from earlier calls, so a send is usually a single
    /// request. When the members changed, the server refuses the post and the message is
    /// encrypted again for the new members ([`Error::MembersChanging`] after several tries).
    /// After a network error the same post is repeated: the server stores it at most once.
    /// Members who have no card yet (not registered) are left out: they cannot read it; when
    /// no member but the user has a card, nothing is posted ([`Error::UsersNotFound`]).
    /// Cards are reused for a minute (and refreshed when a message from that user does not
    /// verify with the cached one), so a member who replaced their key within the last minute
    /// may get a message for their old key, which they see as [`Verification::NotForMe`].
    ///
    /// Errors: [`Error::ChannelNotFound`] (no such channel, or not a member),
    /// [`Error::MessageTooLarge`], [`Error::UsersNotFound`], [`Error::ContactKeyChanged`] (a
    /// member is a verified contact whose key changed: nothing was posted), [`Error::Network`].
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::Error;
    ///
    /// let data = br#"{"type":"location","lat":52.52,"lon":13.40}"#;
    /// match chat.send("team", data).await {
    ///     Ok(message) => println!("stored as #{}", message.seq),
    ///     // Nothing was posted in these cases:
    ///     Err(Error::MessageTooLarge { .. }) => println!("send it as an encrypted file instead"),
    ///     Err(Error::MembersChanging { .. }) => println!("members kept changing: try again"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, channel: &str, data: &[u8]) -> Result<Message> {
        check_id(channel)?;
        let (message, _) = self.send_payload(channel, Payload::Data(data)).await?;
        Ok(message)
    }

    /// Encrypts the payload for the channel's current members and posts it (see
    /// [`Chat::send`]); a file is uploaded first, for the same members, and the message names
    /// it. Returns the stored message and, for a file, its attachment.
    async fn send_payload(
        &self,
        channel: &str,
        payload: Payload<'_>,
    ) -> Result<(Message, Option<Attachment>)> {
        let client_id = hex::encode(random_bytes::<16>());
        let cached = lock(&self.shared.channels).get(channel).cloned();
        let mut info = match cached {
            Some(c) => c,
            None => self.channel(channel).await?,
        };
        for _ in 0..STALE_RETRIES {
            let cards = self.member_cards(&info.members).await?;
            let recipients: Vec<&Card> = cards.iter().collect();
            let (data, attachment) = match payload {
                Payload::Data(data) => (std::borrow::Cow::Borrowed(data), None),
                Payload::File(file) => {
                    let attachment = self.upload_file(channel, file, &recipients).await?;
                    (
                        std::borrow::Cow::Owned(attachment.to_body()?),
                        Some(attachment),
                    )
                }
            };
            let blobs = attachment.iter().map(|a| a.blob.clone()).collect();
            let (ciphertext, kt_head) = self.encrypt_to(&recipients, &data).await?;
            let post = NewMessage {
                client_id: client_id.clone(),
                ciphertext,
                member_version: info.member_version,
                kt_head,
                blobs,
            };
            match self.post(channel, &post).await {
                Ok(Posted::Stored(message)) => {
                    if message.client_id != client_id || message.sender != self.identity() {
                        return Err(Error::InvalidResponse(
                            "the posted message came back with another sender or client_id"
                                .to_owned(),
                        ));
                    }
                    if attachment.is_none() {
                        self.index_sent(&message, &data).await;
                    }
                    return Ok((message, attachment));
                }
                // The refusal names the current members: encrypt for them straight away.
                Ok(Posted::Stale(current)) => info = self.remember(current),
                // A server that does not send them: read the channel.
                Err(Error::Api {
                    code: codes::STALE_MEMBERS,
                    ..
                }) => info = self.channel(channel).await?,
                Err(e) => {
                    self.forget(channel);
                    return Err(chat_error(e, channel));
                }
            }
        }
        Err(Error::MembersChanging {
            channel: channel.to_owned(),
            attempts: STALE_RETRIES,
        })
    }

    /// [`Chat::send`] for text.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// let message = chat.send_text("team", "standup in 5").await?;
    /// // Remember its position, e.g. to mark everything up to it as read:
    /// println!("sent #{} at {} ms", message.seq, message.sent_at);
    /// # Ok(()) }
    /// ```
    pub async fn send_text(&self, channel: &str, text: &str) -> Result<Message> {
        self.send(channel, text.as_bytes()).await
    }

    /// `data` signed by the user and encrypted for the members of `info` (base64), with the
    /// key-directory head to gossip.
    async fn encrypt_for(
        &self,
        info: &Channel,
        data: &[u8],
    ) -> Result<(String, Option<sealkit_proto::kt::SignedHead>)> {
        let cards = self.member_cards(&info.members).await?;
        let recipients: Vec<&Card> = cards.iter().collect();
        self.encrypt_to(&recipients, data).await
    }

    /// `data` signed by the user and encrypted for `recipients` (base64), with the
    /// key-directory head to gossip.
    async fn encrypt_to(
        &self,
        recipients: &[&Card],
        data: &[u8],
    ) -> Result<(String, Option<sealkit_proto::kt::SignedHead>)> {
        let ciphertext = self.ethree.auth_encrypt(data, recipients).await?;
        let inner = &self.ethree.inner;
        let kt_head = inner.kt.gossip_head(&inner.local).await;
        Ok((STANDARD.encode(ciphertext), kt_head))
    }

    /// Replaces the user's message `seq` in `channel` with `data`: a new ciphertext, signed by
    /// the user and encrypted for the channel's members now (like [`Chat::send`], encrypting
    /// again when they changed meanwhile). Members see the latest version with its
    /// [`ReceivedMessage::edited_at`]; subscriptions that had the message get
    /// [`ChatEvent::Edited`]. A member added since the message was sent can read the edit
    /// (it is sent now), not the original.
    ///
    /// Errors: [`Error::NotTheSender`] (someone else's message), [`Error::MessageDeleted`],
    /// [`Error::MessageNotFound`], [`Error::ChannelNotFound`], [`Error::MembersChanging`].
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// let sent = chat.send_text("team", "standup at 9").await?;
    /// let fixed = chat.edit_text("team", sent.seq, "standup at 10").await?;
    /// assert_eq!(fixed.seq, sent.seq);
    /// assert!(fixed.edited_at.is_some());
    /// # Ok(()) }
    /// ```
    pub async fn edit(&self, channel: &str, seq: i64, data: &[u8]) -> Result<Message> {
        check_id(channel)?;
        let cached = lock(&self.shared.channels).get(channel).cloned();
        let mut info = match cached {
            Some(c) => c,
            None => self.channel(channel).await?,
        };
        for _ in 0..STALE_RETRIES {
            let (ciphertext, kt_head) = self.encrypt_for(&info, data).await?;
            let edit = EditMessage {
                ciphertext,
                member_version: info.member_version,
                kt_head,
            };
            match self.api().chat_edit(channel, seq, &edit).await {
                Ok(Posted::Stored(message)) => {
                    if message.seq != seq || message.sender != self.identity() {
                        return Err(Error::InvalidResponse(
                            "the edited message came back with another seq or sender".to_owned(),
                        ));
                    }
                    self.index_sent(&message, data).await;
                    return Ok(message);
                }
                Ok(Posted::Stale(current)) => info = self.remember(current),
                Err(Error::Api {
                    code: codes::STALE_MEMBERS,
                    ..
                }) => info = self.channel(channel).await?,
                Err(e) => return Err(message_error(e, channel, seq)),
            }
        }
        Err(Error::MembersChanging {
            channel: channel.to_owned(),
            attempts: STALE_RETRIES,
        })
    }

    /// [`Chat::edit`] for text.
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::Error;
    ///
    /// match chat.edit_text("team", 3, "corrected").await {
    ///     Ok(m) => println!("#{} edited", m.seq),
    ///     Err(Error::NotTheSender { .. }) => println!("only its sender can edit #3"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn edit_text(&self, channel: &str, seq: i64, text: &str) -> Result<Message> {
        self.edit(channel, seq, text.as_bytes()).await
    }

    /// Deletes message `seq` of `channel`: the user's own, or anyone's when the user is an
    /// admin of the channel. The server removes the ciphertext and keeps a tombstone (the seq,
    /// sender and times), so history keeps no gaps; members see it as
    /// [`Verification::Deleted`] and subscriptions that had it get [`ChatEvent::Deleted`].
    /// Deleting a deleted message again is not an error. Returns the tombstone.
    ///
    /// Errors: [`Error::NotTheSender`] (someone else's message, and the user is no admin),
    /// [`Error::MessageNotFound`], [`Error::ChannelNotFound`].
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// let sent = chat.send_text("team", "wrong channel, sorry").await?;
    /// let tombstone = chat.delete("team", sent.seq).await?;
    /// assert!(tombstone.deleted.is_some() && tombstone.ciphertext.is_empty());
    /// # Ok(()) }
    /// ```
    pub async fn delete(&self, channel: &str, seq: i64) -> Result<Message> {
        check_id(channel)?;
        let tombstone = self
            .api()
            .chat_delete(channel, seq)
            .await
            .map_err(|e| message_error(e, channel, seq))?;
        if tombstone.seq != seq || tombstone.deleted.is_none() {
            return Err(Error::InvalidResponse(
                "the deleted message came back without its tombstone".to_owned(),
            ));
        }
        self.unindex_quietly(channel, seq).await;
        Ok(tombstone)
    }

    /// Posts, repeating the same post after network errors and 5xx answers.
    async fn post(&self, channel: &str, post: &NewMessage) -> Result<Posted> {
        let mut delay = Duration::from_millis(200);
        for _ in 0..POST_RETRIES {
            match self.api().chat_post(channel, post).await {
                Err(Error::Network(_)) => {}
                Err(Error::Api { status, .. }) if status >= 500 => {}
                other => return other,
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        self.api().chat_post(channel, post).await
    }

    /// The cards to encrypt for: every member's but the user's own (which `auth_encrypt`
    /// adds), from the card cache while looked up less than [`CARD_TTL`] ago, else from the
    /// server, else from the card cache when the server is unreachable. Members without a card
    /// are skipped.
    async fn member_cards(&self, members: &[String]) -> Result<Vec<Card>> {
        let me = self.identity();
        let mut fresh: Vec<&str> = Vec::new();
        let mut missing: Vec<&str> = Vec::new();
        let mut cardless: Vec<String> = Vec::new();
        for member in members.iter().filter(|m| *m != me) {
            match self.shared.fresh_lookup(member) {
                Some(true) => fresh.push(member),
                Some(false) => cardless.push(member.clone()),
                None => missing.push(member),
            }
        }
        let mut cards = Vec::with_capacity(members.len());
        if !fresh.is_empty() {
            // A card the cache no longer holds (update_cached_users removed it) or cannot read
            // is simply looked up on the server again, which also rewrites it.
            let mut cached = self
                .ethree
                .inner
                .local
                .cards(&fresh)
                .await
                .unwrap_or_default();
            for member in fresh {
                match cached.remove(member) {
                    Some(card) => cards.push(card),
                    None => missing.push(member),
                }
            }
        }
        while !missing.is_empty() {
            match self.ethree.find_users(&missing).await {
                Ok(found) => {
                    self.shared
                        .record_lookups(found.keys().map(String::as_str), true);
                    cards.extend(found.into_values());
                    break;
                }
                Err(Error::UsersNotFound { identities }) => {
                    self.shared
                        .record_lookups(identities.iter().map(String::as_str), false);
                    missing.retain(|m| !identities.iter().any(|i| i == m));
                    cardless.extend(identities);
                }
                Err(Error::Network(e)) => {
                    let found = self
                        .ethree
                        .find_cached_users(&missing)
                        .await
                        .map_err(|_| Error::Network(e))?;
                    cards.extend(found.into_values());
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        // Nobody but the sender could read it: in a direct channel with someone who has not
        // registered yet, say so rather than post a message for the sender alone.
        if cards.is_empty() && !cardless.is_empty() {
            return Err(Error::UsersNotFound {
                identities: cardless,
            });
        }
        Ok(cards)
    }

    // ------------------------------------------------------------------------------ reading

    /// A page of a channel's history, decrypted and verified, oldest first. `limit` is at most
    /// 500 (the server clamps it).
    ///
    /// Errors: [`Error::ChannelNotFound`] (no such channel, or not a member), [`Error::Network`].
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::chat::HistoryCursor;
    /// use sealkit::Error;
    ///
    /// // The newest 50 messages, then the 50 before them.
    /// let latest = match chat.history("team", HistoryCursor::Latest, 50).await {
    ///     Ok(page) => page,
    ///     Err(Error::ChannelNotFound { .. }) => return Ok(()), // removed meanwhile
    ///     Err(e) => return Err(e),
    /// };
    /// for m in &latest.messages {
    ///     match m.text() {
    ///         Some(text) => println!("{}: {text}", m.message.sender),
    ///         None => println!("{}: ({:?})", m.message.sender, m.status),
    ///     }
    /// }
    /// if let (true, Some(first)) = (latest.more, latest.messages.first()) {
    ///     let older = chat.history("team", HistoryCursor::Before(first.message.seq), 50).await?;
    ///     println!("{} older messages", older.messages.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn history(
        &self,
        channel: &str,
        cursor: HistoryCursor,
        limit: u32,
    ) -> Result<HistoryPage> {
        check_id(channel)?;
        let page = match cursor {
            HistoryCursor::Latest => Page::Latest,
            HistoryCursor::After(seq) => Page::After(seq),
            HistoryCursor::Before(seq) => Page::Before(seq),
        };
        let page = self
            .api()
            .chat_history(channel, page, limit)
            .await
            .map_err(|e| chat_error(e, channel))?;
        let mut messages = Vec::with_capacity(page.messages.len());
        for message in page.messages {
            messages.push(self.open_unindexed(message).await?);
        }
        self.index_received(&messages).await;
        Ok(HistoryPage {
            messages,
            more: page.more,
        })
    }

    /// Decrypts and verifies one message. Errors only when the check could not be made
    /// (network, no local key); a message that fails the check is a [`Verification`].
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::chat::{HistoryCursor, Verification};
    ///
    /// // Messages from a sender who had not registered yet: check them again later.
    /// let page = chat.history("team", HistoryCursor::Latest, 50).await?;
    /// for m in page.messages.iter().filter(|m| m.status == Verification::UnknownSender) {
    ///     let again = chat.open(m.message.clone()).await?;
    ///     if let Some(text) = again.text() {
    ///         println!("{}: {text}", again.message.sender);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn open(&self, message: Message) -> Result<ReceivedMessage> {
        let received = self.open_unindexed(message).await?;
        self.index_received(std::slice::from_ref(&received)).await;
        Ok(received)
    }

    /// [`Chat::open`] without adding the message to the search index.
    async fn open_unindexed(&self, message: Message) -> Result<ReceivedMessage> {
        let verdict = |message: Message, status| ReceivedMessage {
            message,
            body: None,
            status,
        };
        if message.deleted.is_some() {
            return Ok(verdict(message, Verification::Deleted));
        }
        let Ok(data) = STANDARD.decode(message.ciphertext.as_bytes()) else {
            return Ok(verdict(message, Verification::Malformed));
        };
        if let Some(head) = &message.kt_head {
            let inner = &self.ethree.inner;
            // Gossip is a second line of defence: a failure to compare (offline, or a problem
            // the card check reports anyway) does not stop reading; only a split view does.
            if let Err(Error::KeyTransparency(KtFailure::SplitView { .. })) = inner
                .kt
                .check_gossip(&inner.api, &inner.local, &message.sender, head)
                .await
            {
                return Ok(verdict(message, Verification::SplitView));
            }
        }
        let key = self.ethree.private_key().await?;
        let mut fetched = false;
        loop {
            let card = match self.sender_card(&message.sender, fetched).await {
                Ok(card) => card,
                Err(Error::UsersNotFound { .. } | Error::UsersFoundWithMultipleCards { .. }) => {
                    return Ok(verdict(message, Verification::UnknownSender))
                }
                Err(Error::ContactKeyChanged { .. }) => {
                    return Ok(verdict(message, Verification::SenderKeyChanged))
                }
                Err(Error::KeyTransparency(_)) => {
                    return Ok(verdict(message, Verification::KeyTransparencyFailed))
                }
                Err(e) => return Err(e),
            };
            // An edit is signed when it is made: by the sender's key of that time. (The server
            // lets only the sender edit, and the check is against `sender`'s card either way.)
            let signers = signers_at(&card, message.edited_at.unwrap_or(message.sent_at));
            if signers.is_empty() {
                if !fetched {
                    fetched = true;
                    continue;
                }
                return Ok(verdict(message, Verification::UnknownSender));
            }
            let outcome = self
                .ethree
                .open_with(
                    MessageFormat::SignAndEncrypt,
                    key.clone(),
                    data.clone(),
                    signers,
                )
                .await;
            use sealkit_crypto::Error as C;
            return Ok(match outcome {
                Ok(body) => ReceivedMessage {
                    message,
                    body: Some(body),
                    status: Verification::Verified,
                },
                Err(Error::Crypto(C::RecipientNotFound)) => {
                    verdict(message, Verification::NotForMe)
                }
                Err(Error::Crypto(C::SignatureInvalid | C::SignerNotFound)) if !fetched => {
                    // The cached card may predate a rotation: ask the server once.
                    fetched = true;
                    continue;
                }
                Err(Error::Crypto(C::SignatureInvalid | C::SignerNotFound)) => {
                    verdict(message, Verification::BadSignature)
                }
                Err(Error::Crypto(_)) => verdict(message, Verification::Malformed),
                Err(e) => return Err(e),
            });
        }
    }

    /// The sender's card: from the card cache while looked up less than [`CARD_TTL`] ago
    /// (unless `refresh`), else from the server, else (unless `refresh`) from the card cache
    /// when the server is unreachable. A `refresh` is asked because the cached card did not
    /// verify: checking it again would turn a network error into a false `BadSignature`.
    async fn sender_card(&self, identity: &str, refresh: bool) -> Result<Card> {
        if !refresh && self.shared.fresh_lookup(identity) == Some(true) {
            if let Ok(card) = self.ethree.find_cached_user(identity).await {
                return Ok(card);
            }
        }
        let card = match self.ethree.find_user(identity).await {
            Err(Error::Network(e)) if !refresh => self
                .ethree
                .find_cached_user(identity)
                .await
                .map_err(|_| Error::Network(e))?,
            other => other?,
        };
        self.shared.record_lookups([identity], true);
        Ok(card)
    }

    /// Opens a realtime stream (connects the WebSocket now, so a wrong URL or token fails
    /// here); then [`ChatStream::subscribe`] to channels and read [`ChatStream::next`].
    ///
    /// ```no_run
    /// # async fn run(chat: sealkit::Chat) -> sealkit::Result<()> {
    /// use sealkit::Error;
    ///
    /// let mut stream = match chat.subscribe().await {
    ///     Ok(stream) => stream,
    ///     Err(Error::Network(why)) => {
    ///         println!("offline ({why}): try again when the network is back");
    ///         return Ok(());
    ///     }
    ///     Err(e) => return Err(e),
    /// };
    /// // Only what comes after the messages already shown:
    /// let shown = chat.channel("team").await?.last_seq;
    /// stream.subscribe("team", shown).await?;
    /// # Ok(()) }
    /// ```
    pub async fn subscribe(&self) -> Result<ChatStream> {
        ChatStream::connect(self.clone()).await
    }
}

impl EThree {
    /// The chat client of this user (see [`Chat`]); keep it, it caches members and cards.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let chat = ethree.chat();
    /// assert_eq!(chat.identity(), ethree.identity());
    /// # Ok(()) }
    /// ```
    pub fn chat(&self) -> Chat {
        Chat::new(self.clone())
    }
}

/// The id of the direct channel of two identities (defined in `sealkit_proto`, where the
/// server checks it too).
///
/// ```
/// use sealkit::chat::direct_channel_id;
///
/// assert_eq!(direct_channel_id("alice", "bob"), direct_channel_id("bob", "alice"));
/// ```
pub use sealkit_proto::chat::direct_channel_id;

/// What [`Chat::send_payload`] sends.
#[derive(Clone, Copy)]
enum Payload<'a> {
    /// Bytes, as the message body.
    Data(&'a [u8]),
    /// A file, uploaded as a blob and announced by the message body.
    File(&'a attachment::FileToSend),
}

/// The keys that may have signed a message stored at `sent_at_ms`: those of the sender's cards
/// that were current at some moment within [`CLOCK_SKEW`] of it.
fn signers_at(card: &Card, sent_at_ms: i64) -> Vec<PublicKey> {
    let created: Vec<i64> = card.chain().map(Card::created_at_secs).collect();
    let keys: Vec<&PublicKey> = card.chain().map(Card::public_key).collect();
    active_within(&created, sent_at_ms, skew_ms())
        .into_iter()
        .filter_map(|i| keys.get(i).map(|k| (*k).clone()))
        .collect()
}

fn skew_ms() -> i64 {
    i64::try_from(CLOCK_SKEW.as_millis()).unwrap_or(i64::MAX)
}

/// Indexes into a chain (newest first, creation times in seconds) of the cards current at
/// some moment of `[at - skew, at + skew]` (milliseconds): created before its end, and not
/// replaced before its start.
fn active_within(created_secs: &[i64], at_ms: i64, skew_ms: i64) -> Vec<usize> {
    let mut out = Vec::new();
    let mut replaced_at: Option<i64> = None;
    for (i, &created) in created_secs.iter().enumerate() {
        let created_ms = created.saturating_mul(1000);
        let started = created_ms <= at_ms.saturating_add(skew_ms);
        let not_yet_replaced = replaced_at.is_none_or(|r| r > at_ms.saturating_sub(skew_ms));
        if started && not_yet_replaced {
            out.push(i);
        }
        replaced_at = Some(created_ms);
    }
    out
}

fn check_id(id: &str) -> Result<()> {
    validate_channel_id(id).map_err(|e| Error::InvalidInput(e.to_string()))
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

fn millis_to_time(ms: i64) -> SystemTime {
    match u64::try_from(ms) {
        Ok(ms) => UNIX_EPOCH + Duration::from_millis(ms),
        Err(_) => UNIX_EPOCH,
    }
}

/// The server's chat codes for one message (edits and deletes) as the SDK's errors.
fn message_error(e: Error, channel: &str, seq: i64) -> Error {
    let channel = channel.to_owned();
    match e {
        Error::Api {
            code: codes::MESSAGE_NOT_FOUND,
            ..
        } => Error::MessageNotFound { channel, seq },
        Error::Api {
            code: codes::NOT_THE_SENDER,
            message,
            ..
        } => Error::NotTheSender {
            channel,
            seq,
            message,
        },
        Error::Api {
            code: codes::MESSAGE_DELETED,
            ..
        } => Error::MessageDeleted { channel, seq },
        other => chat_error(other, &channel),
    }
}

/// The server's chat codes as the SDK's errors.
pub(crate) fn chat_error(e: Error, channel: &str) -> Error {
    let channel = channel.to_owned();
    match e {
        Error::Api {
            status,
            code,
            message,
        } => match code {
            codes::CHANNEL_NOT_FOUND => Error::ChannelNotFound { channel },
            codes::NOT_A_MEMBER => Error::NotAMember { channel },
            codes::NOT_AN_ADMIN => Error::NotAnAdmin { channel },
            codes::CHANNEL_EXISTS => Error::ChannelExists { channel },
            codes::TOO_MANY_CHANNELS => Error::TooManyChannels { message },
            codes::MEMBERSHIP_RULE => Error::MembershipRule { channel, message },
            codes::BLOB_TOO_LARGE => Error::AttachmentTooLarge { channel, message },
            codes::BLOB_QUOTA_EXCEEDED => Error::AttachmentQuotaExceeded { channel, message },
            // 413 without the chat code: the server's overall body limit came first.
            _ if code == codes::MESSAGE_TOO_LARGE || status == 413 => {
                Error::MessageTooLarge { channel, message }
            }
            codes::INVALID => Error::InvalidInput(message),
            _ => Error::Api {
                status,
                code,
                message,
            },
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn direct_ids_are_symmetric_and_unambiguous() {
        let ab = direct_channel_id("alice", "bob");
        assert_eq!(ab, direct_channel_id("bob", "alice"));
        assert!(ab.starts_with("dm:"));
        assert_eq!(ab.len(), 3 + 32);
        assert!(validate_channel_id(&ab).is_ok());
        // Length prefixes: "ab"+"c" and "a"+"bc" differ.
        assert_ne!(direct_channel_id("ab", "c"), direct_channel_id("a", "bc"));
        assert_ne!(ab, direct_channel_id("alice", "carol"));
        // Independent of this implementation: SHA-256 of 00000005 "alice" 00000003 "bob".
        let mut input = vec![0, 0, 0, 5];
        input.extend_from_slice(b"alice");
        input.extend_from_slice(&[0, 0, 0, 3]);
        input.extend_from_slice(b"bob");
        let digest = <sha2::Sha256 as sha2::Digest>::digest(&input);
        assert_eq!(ab, format!("dm:{}", hex::encode(&digest[..16])));
    }

    /// An offline user (its server at a closed port) with a stored key, and the card of that
    /// key (not published).
    async fn offline_user(
        dir: &std::path::Path,
        identity: &'static str,
        seed: u8,
    ) -> (EThree, Card) {
        use sealkit_crypto::PrivateKey;
        use sealkit_proto::{CardContent, JwtGenerator, RawSignedModel};
        let generator =
            JwtGenerator::new("app", "kid", PrivateKey::ed25519_from_seed(&[7; 32]), 3600);
        let provider =
            move || std::future::ready(generator.generate(identity, 1000).map(|j| j.to_string()));
        let options = crate::EThreeOptions::new("http://127.0.0.1:9", dir.join(identity));
        let ethree = EThree::initialize(provider, options).await.unwrap();
        let key = PrivateKey::ed25519_from_seed(&[seed; 32]);
        let content = CardContent {
            identity: identity.to_owned(),
            previous_card_id: None,
            created_at: 1000,
            version: "5.0".to_owned(),
            public_key: key.public_key().to_base64(),
        };
        let card = Card::from_raw(RawSignedModel::from_content(&content, &key).unwrap()).unwrap();
        ethree.save_private_key(key).await.unwrap();
        (ethree, card)
    }

    /// A message whose signature does not match the cached sender card while the server cannot
    /// be reached (a replica restarting just after the sender replaced its key): an error the
    /// stream retries, not a final `BadSignature` from checking the same stale card twice
    /// (found by `examples/soak.rs`).
    #[tokio::test]
    async fn a_stale_card_and_no_server_is_not_a_bad_signature() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, alice_card) = offline_user(dir.path(), "alice", 1).await;
        let (bob, _bob_card) = offline_user(dir.path(), "bob", 2).await;
        // Alice's cache has bob's card of another key (before bob replaced it).
        let (_old_bob, stale_bob_card) = offline_user(&dir.path().join("old"), "bob", 3).await;
        alice
            .inner
            .local
            .put_card(&stale_bob_card, 1000)
            .await
            .unwrap();
        let ciphertext = bob.auth_encrypt(b"hi", &[&alice_card]).await.unwrap();
        let message = Message {
            seq: 1,
            channel: "team".into(),
            sender: "bob".into(),
            client_id: "c1".into(),
            sent_at: 1_000_000,
            member_version: 1,
            ciphertext: STANDARD.encode(ciphertext),
            kt_head: None,
            edited_at: None,
            deleted: None,
        };
        let outcome = alice.chat().open(message).await;
        assert!(matches!(outcome, Err(Error::Network(_))), "{outcome:?}");
    }

    /// A caller cancelled while the search index opens (the terminal chat drops a message
    /// being opened when a command is typed) leaves the index open for the next caller; before,
    /// the next caller could find it still locked by the opening nobody waited for.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_caller_leaves_the_index_opening() {
        let dir = tempfile::tempdir().unwrap();
        for attempt in 0..40u64 {
            let identity: &'static str = Box::leak(format!("user{attempt}").into_boxed_str());
            let (user, _) = offline_user(dir.path(), identity, 1).await;
            let chat = user.chat();
            let cut = Duration::from_micros(attempt * 100);
            let _ = tokio::time::timeout(cut, chat.indexed_count()).await;
            assert_eq!(chat.indexed_count().await.unwrap(), 0, "cut after {cut:?}");
        }
    }

    /// What `open` hands out verified is searchable at once, once; edits and deletions reach
    /// the index; another key replaces the index; `cleanup` deletes it.
    #[tokio::test]
    async fn opened_messages_are_searchable_until_cleanup() {
        let dir = tempfile::tempdir().unwrap();
        let (alice, alice_card) = offline_user(dir.path(), "alice", 1).await;
        let (bob, bob_card) = offline_user(dir.path(), "bob", 2).await;
        // Offline: alice checks bob's signature against her cached copy of his card.
        alice.inner.local.put_card(&bob_card, 1000).await.unwrap();
        let ciphertext = bob
            .auth_encrypt(b"the marigold seeds arrive", &[&alice_card])
            .await
            .unwrap();
        let message = Message {
            seq: 4,
            channel: "garden".into(),
            sender: "bob".into(),
            client_id: "c4".into(),
            sent_at: 1_000_000,
            member_version: 1,
            ciphertext: STANDARD.encode(ciphertext),
            kt_head: None,
            edited_at: None,
            deleted: None,
        };
        let chat = alice.chat();
        let opened = chat.open(message.clone()).await.unwrap();
        assert!(opened.is_verified());
        let hits = chat.search("MARIGOLD").await.unwrap();
        assert_eq!(hits.len(), 1);
        assert_eq!(
            (
                hits[0].channel.as_str(),
                hits[0].seq,
                hits[0].sender.as_str()
            ),
            ("garden", 4, "bob")
        );
        assert_eq!(hits[0].text, "the marigold seeds arrive");
        chat.open(message.clone()).await.unwrap();
        assert_eq!(chat.indexed_count().await.unwrap(), 1);
        // Another Chat of the same client shares the index.
        assert_eq!(alice.chat().search("seeds").await.unwrap().len(), 1);
        // An unverified message is not indexed.
        let forged = ReceivedMessage {
            status: Verification::BadSignature,
            body: None,
            ..opened.clone()
        };
        chat.index_message(&forged).await.unwrap();
        assert!(chat.search("marigold").await.unwrap().is_empty());
        // An edit, then a deletion.
        let edited = ReceivedMessage {
            body: Some(b"the tulip seeds arrive".to_vec()),
            ..opened
        };
        chat.index_message(&edited).await.unwrap();
        assert!(chat.search("marigold").await.unwrap().is_empty());
        assert_eq!(chat.search("tulip").await.unwrap()[0].seq, 4);
        assert!(chat.unindex_message("garden", 4).await.unwrap());
        assert!(!chat.unindex_message("garden", 4).await.unwrap());
        chat.index_message(&edited).await.unwrap();
        // Its tombstone, read from history or a stream, takes it out of the index.
        let tombstone = Message {
            ciphertext: String::new(),
            deleted: Some(Deletion {
                at: 2_000_000,
                by: "bob".into(),
            }),
            ..message
        };
        chat.open(tombstone).await.unwrap();
        assert!(chat.search("tulip").await.unwrap().is_empty());
        chat.index_message(&edited).await.unwrap();

        // The key is replaced (as by a restore of another key): the old index cannot be opened
        // and is replaced by an empty one.
        alice.inner.keys.delete("alice").unwrap();
        drop((chat, alice));
        let (alice, _) = offline_user(dir.path(), "alice", 5).await;
        let chat = alice.chat();
        assert!(chat.search("tulip").await.unwrap().is_empty());
        assert_eq!(chat.indexed_count().await.unwrap(), 0);
        chat.index_message(&edited).await.unwrap();
        assert_eq!(chat.search("tulip").await.unwrap().len(), 1);

        // Cleanup (sign-out) deletes it with the key.
        let search_dir = dir.path().join("alice").join("search");
        assert_eq!(std::fs::read_dir(&search_dir).unwrap().count(), 1);
        alice.cleanup().await.unwrap();
        assert_eq!(std::fs::read_dir(&search_dir).unwrap().count(), 0);
        assert!(matches!(
            chat.search("tulip").await,
            Err(Error::MissingPrivateKey)
        ));
    }

    #[test]
    fn signer_window_around_rotations() {
        // Chain newest first: rotated at 2000 s, registered at 1000 s.
        let chain = [2000, 1000];
        let skew = 5000;
        assert_eq!(active_within(&chain, 1_500_000, skew), [1]);
        assert_eq!(active_within(&chain, 2_500_000, skew), [0]);
        // Within the skew of the rotation, either key.
        assert_eq!(active_within(&chain, 1_999_000, skew), [0, 1]);
        assert_eq!(active_within(&chain, 2_004_000, skew), [0, 1]);
        assert_eq!(active_within(&chain, 2_006_000, skew), [0]);
        // Before the first card (beyond the skew): nobody.
        assert!(active_within(&chain, 990_000, skew).is_empty());
        // A sender clock slightly ahead of the server's: still the first card.
        assert_eq!(active_within(&chain, 997_000, skew), [1]);
    }

    #[test]
    fn server_codes_become_typed_errors() {
        let api = |code| Error::Api {
            status: 403,
            code,
            message: "m".into(),
        };
        assert!(matches!(
            chat_error(api(codes::NOT_A_MEMBER), "c"),
            Error::NotAMember { channel } if channel == "c"
        ));
        assert!(matches!(
            chat_error(api(codes::CHANNEL_NOT_FOUND), "c"),
            Error::ChannelNotFound { .. }
        ));
        assert!(matches!(
            chat_error(api(codes::NOT_AN_ADMIN), "c"),
            Error::NotAnAdmin { .. }
        ));
        assert!(matches!(
            chat_error(api(codes::CHANNEL_EXISTS), "c"),
            Error::ChannelExists { .. }
        ));
        assert!(matches!(
            chat_error(api(codes::MEMBERSHIP_RULE), "c"),
            Error::MembershipRule { .. }
        ));
        assert!(matches!(
            chat_error(api(codes::MESSAGE_TOO_LARGE), "c"),
            Error::MessageTooLarge { .. }
        ));
        let too_large = Error::Api {
            status: 413,
            code: 41300,
            message: "body too large".into(),
        };
        assert!(matches!(
            chat_error(too_large, "c"),
            Error::MessageTooLarge { .. }
        ));
        assert!(matches!(
            chat_error(api(codes::INVALID), "c"),
            Error::InvalidInput(_)
        ));
        assert!(matches!(
            chat_error(Error::Network("x".into()), "c"),
            Error::Network(_)
        ));
        assert!(matches!(
            message_error(api(codes::MESSAGE_NOT_FOUND), "c", 4),
            Error::MessageNotFound { seq: 4, .. }
        ));
        assert!(matches!(
            message_error(api(codes::NOT_THE_SENDER), "c", 4),
            Error::NotTheSender { seq: 4, .. }
        ));
        assert!(matches!(
            message_error(api(codes::MESSAGE_DELETED), "c", 4),
            Error::MessageDeleted { seq: 4, .. }
        ));
        assert!(matches!(
            message_error(api(codes::CHANNEL_NOT_FOUND), "c", 4),
            Error::ChannelNotFound { .. }
        ));
    }
}
