//! Sealkit's end-to-end encrypted chat (not a Virgil API; Sealkit's own, under `/chat/v1`).
//!
//! The server holds channels, their members and messages, and fans messages out over
//! WebSocket. It never sees plaintext: a message's `ciphertext` is whatever the sender's SDK
//! produced (an e3kit `authEncrypt` to every member's card, base64) and the only plaintext
//! metadata is the sender, the channel, the server's timestamp and the sender's `client_id`.
//!
//! Every request carries the same `Authorization: Virgil <jwt>` as the other services; the
//! WebSocket also accepts the token as `?token=<jwt>` (browsers cannot set headers there).
//!
//! Ordering and resume: each channel numbers its messages `seq = 1, 2, 3, ...` in the order the
//! database committed them. A client remembers the last `seq` it saw per channel and subscribes
//! with `after = seq`; the server first replays everything after it, then streams new messages,
//! never skipping or repeating a number.
//!
//! Membership: changes bump the channel's `member_version`. A post names the version the sender
//! encrypted for; a stale version is refused ([`codes::STALE_MEMBERS`], HTTP 409), so a sender
//! always encrypts to the current members: a removed member cannot read later messages and an
//! added one can.
//!
//! ```
//! use sealkit_proto::chat::{validate_channel_id, ClientFrame, ServerFrame};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! validate_channel_id("general")?;
//! assert!(validate_channel_id("no spaces").is_err());
//! let frame: ClientFrame = serde_json::from_str(r#"{"type":"subscribe","channel":"general","after":41}"#)?;
//! assert_eq!(frame, ClientFrame::Subscribe { channel: "general".into(), after: 41 });
//! let pong = serde_json::to_string(&ServerFrame::Pong)?;
//! assert_eq!(pong, r#"{"type":"pong"}"#);
//! # Ok(())
//! # }
//! ```

use serde::{Deserialize, Serialize};

/// Endpoint paths.
pub mod paths {
    /// `POST`: create a channel ([`super::NewChannel`] → 201 [`super::Channel`]);
    /// `GET ?after=ID&limit=N`: a page of the caller's channels by id, those after `ID`
    /// (`{"channels": [...], "more": bool}`, [`super::ChannelList`]; `limit` default and
    /// maximum [`super::MAX_CHANNELS_PAGE`]).
    pub const CHANNELS: &str = "/chat/v1/channels";
    /// `GET` (Upgrade: websocket): realtime delivery ([`super::ClientFrame`] /
    /// [`super::ServerFrame`] as JSON text frames).
    pub const WS: &str = "/chat/v1/ws";

    /// `GET`: one channel (members only).
    pub fn channel(id: &str) -> String {
        format!("{CHANNELS}/{id}")
    }

    /// `POST` [`super::AddMember`]: add a member (admins; anyone for themselves in an open
    /// channel). Answers the updated [`super::Channel`].
    pub fn members(id: &str) -> String {
        format!("{CHANNELS}/{id}/members")
    }

    /// `DELETE`: remove a member (admins; any member for themselves = leave). Answers the
    /// updated [`super::Channel`].
    pub fn member(id: &str, identity: &str) -> String {
        format!("{CHANNELS}/{id}/members/{identity}")
    }

    /// `POST` [`super::NewMessage`]: post (201 new, 200 when the `client_id` was already
    /// posted: the stored message). `GET ?after=N&before=N&limit=N`: history
    /// ([`super::MessagePage`]).
    pub fn messages(id: &str) -> String {
        format!("{CHANNELS}/{id}/messages")
    }

    /// `POST` [`super::MarkRead`]: move the caller's read horizon forward (members only).
    /// Answers [`super::ReadState`].
    pub fn read(id: &str) -> String {
        format!("{CHANNELS}/{id}/read")
    }

    /// `PUT` [`super::EditMessage`]: replace the message's ciphertext (its sender only);
    /// `DELETE`: delete it, leaving a tombstone (its sender, or an admin of the channel). Both
    /// answer the [`super::Message`] as stored after the change.
    pub fn message(id: &str, seq: i64) -> String {
        format!("{CHANNELS}/{id}/messages/{seq}")
    }

    /// `POST` (body: the encrypted file, `application/octet-stream`, streamed): upload an
    /// attachment's ciphertext (members only). Answers 201 [`super::BlobUploaded`]. A blob no
    /// message names ([`super::NewMessage::blobs`]) within the server's grace period is deleted.
    pub fn blobs(id: &str) -> String {
        format!("{CHANNELS}/{id}/blobs")
    }

    /// `GET`: the blob's bytes as uploaded, streamed (members only; a blob no message names yet
    /// only for its uploader).
    pub fn blob(id: &str, blob: &str) -> String {
        format!("{CHANNELS}/{id}/blobs/{blob}")
    }
}

/// Error codes of the chat API, in the `{"code", "message"}` body shared with the Virgil
/// services. Authentication and body errors use the common codes (2030x, 40000, 41300).
pub mod codes {
    /// 404: no such channel in this application, or the caller is not a member of it: the
    /// server answers both alike, so outsiders cannot learn which channels exist. A member
    /// who gets it was removed.
    pub const CHANNEL_NOT_FOUND: u32 = 70001;
    /// 403: the identity named in a removal is not a member of the channel. (Servers before
    /// 0.2 also answered it to callers who were not members.)
    pub const NOT_A_MEMBER: u32 = 70002;
    /// 403: only an admin of the channel may do this.
    pub const NOT_AN_ADMIN: u32 = 70003;
    /// 409: a channel with this id exists.
    pub const CHANNEL_EXISTS: u32 = 70004;
    /// 409: the post's `member_version` is not the channel's current one; re-read the channel
    /// and encrypt for its members again.
    pub const STALE_MEMBERS: u32 = 70005;
    /// 413: the ciphertext exceeds the server's message limit.
    pub const MESSAGE_TOO_LARGE: u32 = 70006;
    /// 400: invalid channel id, member list, client id, cursor or ciphertext encoding.
    pub const INVALID: u32 = 70007;
    /// 409: the membership change is not allowed (a direct channel has exactly two members,
    /// the last admin cannot leave, a channel is full).
    pub const MEMBERSHIP_RULE: u32 = 70008;
    /// 429: the identity has as many live WebSockets open as the server allows.
    pub const TOO_MANY_SOCKETS: u32 = 70009;
    /// 403: the caller created as many channels as the server allows one identity.
    pub const TOO_MANY_CHANNELS: u32 = 70010;
    /// 404: the channel has no message with this `seq` (it is 0, negative or beyond the
    /// channel's newest message).
    pub const MESSAGE_NOT_FOUND: u32 = 70020;
    /// 403: only the message's sender may edit it; only its sender or an admin of the channel
    /// may delete it.
    pub const NOT_THE_SENDER: u32 = 70021;
    /// 409: the message was deleted; a tombstone cannot be edited.
    pub const MESSAGE_DELETED: u32 = 70022;
    /// 413: the blob exceeds the server's per-blob limit (the upload was discarded).
    pub const BLOB_TOO_LARGE: u32 = 70011;
    /// 413: the application's blobs would exceed its storage quota (the upload was discarded).
    pub const BLOB_QUOTA_EXCEEDED: u32 = 70012;
    /// 404: no such blob in this channel, or not one the caller may read.
    pub const BLOB_NOT_FOUND: u32 = 70013;
    /// 409: a post names a blob that is not the sender's finished upload to this channel, or
    /// that another message names already.
    pub const BLOB_UNUSABLE: u32 = 70014;
}

/// Shortest interval, per member and channel, between two [`ServerFrame::Typing`] frames the
/// server relays: [`ClientFrame::Typing`] frames that come sooner are dropped without an answer.
pub const TYPING_INTERVAL_MS: u64 = 5_000;

/// Most members a channel may have.
pub const MAX_MEMBERS: usize = 1000;
/// Most messages one history page holds (`limit` is clamped to it).
pub const MAX_PAGE: u32 = 500;
/// Most channels one page of `GET /chat/v1/channels` holds, and its size when no `limit` is
/// given.
pub const MAX_CHANNELS_PAGE: u32 = 500;
/// Messages per history page when no `limit` is given.
pub const DEFAULT_PAGE: u32 = 100;
/// Longest `client_id`, in bytes.
pub const MAX_CLIENT_ID: usize = 64;
/// Most blobs one message may name ([`NewMessage::blobs`]).
pub const MAX_BLOBS_PER_MESSAGE: usize = 16;

/// Direct (exactly two members, fixed) or group (admins add and remove members).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum ChannelKind {
    /// A 1:1 conversation.
    Direct,
    /// A group conversation.
    Group,
}

/// `POST /chat/v1/channels`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NewChannel {
    /// The channel id, unique in the application (see [`validate_channel_id`]).
    pub id: String,
    /// Direct or group.
    pub kind: ChannelKind,
    /// The other members (the creator is always a member and the first admin). A direct
    /// channel names exactly one other identity.
    #[serde(default)]
    pub members: Vec<String>,
    /// Whether any user of the application may add themselves (group channels only).
    #[serde(default)]
    pub open: bool,
}

/// A channel as the API answers it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Channel {
    /// The channel id.
    pub id: String,
    /// Direct or group.
    pub kind: ChannelKind,
    /// Whether users may add themselves.
    pub open: bool,
    /// The identity that created it.
    pub created_by: String,
    /// Creation time, Unix milliseconds.
    pub created_at: i64,
    /// Identities allowed to add and remove members (sorted).
    pub admins: Vec<String>,
    /// Current members (sorted), admins included.
    pub members: Vec<String>,
    /// Bumped by every membership change; posts must name the current value.
    pub member_version: i64,
    /// The `seq` of the newest message (0 when there is none).
    pub last_seq: i64,
    /// Messages after the caller's read horizon: `last_seq` minus the caller's horizon (see
    /// [`MarkRead`]). Absent when the answer is not for a member (and from servers without
    /// read state).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unread: Option<i64>,
    /// Every member's read horizon (read receipts): the highest `seq` each has marked read,
    /// by identity. Only members see it; empty otherwise (and from servers without read state).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub read: std::collections::BTreeMap<String, i64>,
}

/// The body of a [`codes::STALE_MEMBERS`] refusal (HTTP 409): the common error body with the
/// channel as it is now, so the sender encrypts for its current members without reading it
/// again. A client that reads only `{code, message}` ([`ErrorBody`](crate::ErrorBody)) ignores
/// the extra field.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct StaleMembersBody {
    /// `code` and `message`.
    #[serde(flatten)]
    pub error: crate::ErrorBody,
    /// The channel, as `GET /chat/v1/channels/{id}` would answer it.
    pub channel: Channel,
}

/// `GET /chat/v1/channels`: one page of the caller's channels.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ChannelList {
    /// The caller's channels, by id (byte order).
    pub channels: Vec<Channel>,
    /// Whether more channels follow the last one (ask again with `after` = its id). Absent
    /// from servers that did not page, which sent every channel.
    #[serde(default)]
    pub more: bool,
}

/// `POST /chat/v1/channels/{id}/members`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct AddMember {
    /// The identity to add.
    pub identity: String,
}

/// `POST /chat/v1/channels/{id}/messages`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct NewMessage {
    /// The sender's id for this message (1 to [`MAX_CLIENT_ID`] bytes of `[A-Za-z0-9._-]`);
    /// posting the same id again returns the stored message instead of a second copy, so a
    /// retry after a lost answer is safe.
    pub client_id: String,
    /// Base64 (standard alphabet, padded) of the encrypted message.
    pub ciphertext: String,
    /// The channel's `member_version` the ciphertext was encrypted for.
    pub member_version: i64,
    /// Key-transparency gossip: the newest signed head of the application's key directory the
    /// sender accepted, in clear, so receivers can compare it with their own view and detect a
    /// server showing them different directories. Absent from clients without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kt_head: Option<crate::kt::SignedHead>,
    /// The blobs (attachments, [`paths::blobs`]) the message refers to, in clear: random ids
    /// that tell the server nothing but which blobs to delete with the message. Each must be a
    /// finished upload of the sender to this channel that no other message names (else
    /// [`codes::BLOB_UNUSABLE`]); at most [`MAX_BLOBS_PER_MESSAGE`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blobs: Vec<String>,
}

/// The answer to an upload ([`paths::blobs`]): the blob's id, to name in
/// [`NewMessage::blobs`] and to download it with ([`paths::blob`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct BlobUploaded {
    /// 32 lowercase hex digits, chosen by the server at random.
    pub id: String,
    /// Bytes stored.
    pub size: u64,
}

/// A blob id is 32 lowercase hex digits (16 random bytes).
pub fn validate_blob_id(id: &str) -> Result<(), InvalidChatInput> {
    let ok_char = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if id.len() != 32 || !id.chars().all(ok_char) {
        return Err(InvalidChatInput(format!(
            "blob id {id:?} must be 32 lowercase hex digits"
        )));
    }
    Ok(())
}

/// `POST /chat/v1/channels/{id}/read`: the caller has read every message up to `seq`.
///
/// A member's read horizon only moves forward: a `seq` at or below it changes nothing. A `seq`
/// above the channel's `last_seq`, or below 0, is refused ([`codes::INVALID`], HTTP 400).
/// Posting a message also moves the sender's horizon to the message's `seq`, and a member
/// added to a channel starts with the horizon at its `last_seq` then (what was sent before is
/// not encrypted for them). Hence a member's unread count is `last_seq - horizon`: every message
/// after the horizon was sent by someone else.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MarkRead {
    /// The newest `seq` read.
    pub seq: i64,
}

/// The answer to [`MarkRead`]: the caller's horizon as stored (possibly higher than asked).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The channel id.
    pub channel: String,
    /// The caller's read horizon.
    pub seq: i64,
    /// Messages after it (`last_seq - seq`).
    pub unread: i64,
}

/// A stored message.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Message {
    /// Position in the channel: 1, 2, 3, ... without gaps.
    pub seq: i64,
    /// The channel id.
    pub channel: String,
    /// The sender's identity (from its token; not forgeable by other users).
    pub sender: String,
    /// The sender's `client_id`.
    pub client_id: String,
    /// When the server stored it, Unix milliseconds.
    pub sent_at: i64,
    /// The membership version it was encrypted for.
    pub member_version: i64,
    /// Base64 of the encrypted message, as posted.
    pub ciphertext: String,
    /// The sender's signed directory head, as posted ([`NewMessage::kt_head`]). Boxed: most
    /// messages are moved around without looking at it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kt_head: Option<Box<crate::kt::SignedHead>>,
    /// When the sender last edited it, Unix milliseconds (server time); `ciphertext` is then
    /// the latest version, signed by the same sender. Absent for a message never edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<i64>,
    /// Present once the message was deleted: `ciphertext` is then empty (a tombstone that
    /// keeps the `seq`, so history has no gaps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Deletion>,
}

/// `PUT /chat/v1/channels/{id}/messages/{seq}`: the sender replaces a message's ciphertext.
///
/// The new ciphertext is encrypted (and signed, by the same sender) for the channel's current
/// members, like a post: a stale `member_version` is refused ([`codes::STALE_MEMBERS`]). The
/// message keeps its `seq`, `sent_at` and `client_id`; [`Message::edited_at`] says when it was
/// last edited. A deleted message cannot be edited ([`codes::MESSAGE_DELETED`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct EditMessage {
    /// Base64 (standard alphabet, padded) of the new encrypted message.
    pub ciphertext: String,
    /// The channel's `member_version` the new ciphertext was encrypted for.
    pub member_version: i64,
    /// Key-transparency gossip, as in [`NewMessage::kt_head`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kt_head: Option<crate::kt::SignedHead>,
}

/// How a message was deleted ([`Message::deleted`]): its ciphertext is gone from the server.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Deletion {
    /// When, Unix milliseconds (server time).
    pub at: i64,
    /// Who deleted it: the sender, or an admin of the channel.
    pub by: String,
}

/// `GET /chat/v1/channels/{id}/messages` answer, oldest first.
///
/// Query: `after=N` (messages with `seq > N`, the oldest first), or `before=N` (the newest
/// messages with `seq < N`), or neither (the newest messages); `limit` (default
/// [`DEFAULT_PAGE`], at most [`MAX_PAGE`]).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct MessagePage {
    /// The messages, ascending by `seq`.
    pub messages: Vec<Message>,
    /// Whether more messages exist in the direction asked (after the last one for `after`,
    /// before the first one otherwise).
    pub more: bool,
}

/// A frame from client to server on the WebSocket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientFrame {
    /// Start (or restart) delivery of a channel's messages with `seq > after`.
    Subscribe {
        /// The channel id.
        channel: String,
        /// The last `seq` the client has (0 for everything).
        after: i64,
    },
    /// Stop delivery of a channel.
    Unsubscribe {
        /// The channel id.
        channel: String,
    },
    /// Keep-alive; answered with [`ServerFrame::Pong`].
    Ping,
    /// The user is typing in `channel` (members only; a non-member gets a
    /// [`ServerFrame::Error`] with [`codes::CHANNEL_NOT_FOUND`]). Relayed as
    /// [`ServerFrame::Typing`] to the channel's other members' subscriptions, never stored; at
    /// most one per member and channel every [`TYPING_INTERVAL_MS`], the others are dropped
    /// without an answer.
    Typing {
        /// The channel id.
        channel: String,
    },
}

/// A frame from server to client on the WebSocket.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The subscription is active; every message after `after` follows, in order.
    Subscribed {
        /// The channel id.
        channel: String,
        /// The channel's newest `seq` when the subscription started.
        last_seq: i64,
    },
    /// A message (each `seq` of a subscription exactly once, ascending).
    Message {
        /// The message.
        message: Message,
    },
    /// The channel's membership changed (re-read it before the next post).
    Members {
        /// The channel id.
        channel: String,
        /// The new version.
        member_version: i64,
    },
    /// The client is no longer a member; the subscription ended.
    Removed {
        /// The channel id.
        channel: String,
    },
    /// A request failed (subscription to a channel the caller is not a member of, bad frame).
    Error {
        /// The channel concerned, if any.
        channel: Option<String>,
        /// One of [`codes`] or a common code.
        code: u32,
        /// What went wrong.
        message: String,
    },
    /// Answer to [`ClientFrame::Ping`].
    Pong,
    /// A member's read horizon moved (a [`MarkRead`]); sent to every subscription of the
    /// channel, the reader's own included (its other devices). Posting moves the sender's
    /// horizon without this frame: the message itself says so.
    Read {
        /// The channel id.
        channel: String,
        /// The member who read.
        identity: String,
        /// Their new horizon.
        seq: i64,
    },
    /// Another member is typing in the channel (see [`ClientFrame::Typing`]). Show it for a
    /// few seconds; a member who keeps typing sends it again.
    Typing {
        /// The channel id.
        channel: String,
        /// Who is typing.
        identity: String,
    },
    /// A message the subscription already delivered was edited: `message` is its latest
    /// version ([`Message::edited_at`] set). Sent only for a `seq` the subscription has
    /// delivered; a later one arrives as [`ServerFrame::Message`] already in its latest state.
    Edited {
        /// The message as stored now.
        message: Message,
    },
    /// A message the subscription already delivered was deleted: `message` is its tombstone
    /// ([`Message::deleted`] set, empty `ciphertext`). Delivered like [`ServerFrame::Edited`].
    Deleted {
        /// The tombstone.
        message: Message,
    },
}

/// The prefix of direct channel ids ([`direct_channel_id`]); the server reserves ids with it
/// for the direct channel of exactly the two identities they derive from.
pub const DIRECT_PREFIX: &str = "dm:";

/// The id of the direct channel of two identities, the same in either order: `dm:` and the
/// first 32 hex digits of SHA-256 over both identities, sorted, each preceded by its length
/// (4 bytes, big endian) so that no two pairs collide by concatenation.
///
/// ```
/// use sealkit_proto::chat::direct_channel_id;
///
/// let id = direct_channel_id("alice", "bob");
/// assert_eq!(id, direct_channel_id("bob", "alice"));
/// assert_eq!(id, "dm:884a452152d3bf048cc051df8f708aff");
/// ```
pub fn direct_channel_id(a: &str, b: &str) -> String {
    use sha2::Digest as _;
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    let mut hash = sha2::Sha256::new();
    for identity in [first, second] {
        hash.update(
            u32::try_from(identity.len())
                .unwrap_or(u32::MAX)
                .to_be_bytes(),
        );
        hash.update(identity.as_bytes());
    }
    let digest = hash.finalize();
    let hex: String = digest
        .iter()
        .take(16)
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("{DIRECT_PREFIX}{hex}")
}

/// Why a channel id, client id or member list is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidChatInput(pub String);

/// A channel id is 1 to 128 bytes of `[A-Za-z0-9._:@-]` (safe in a URL path without escaping).
pub fn validate_channel_id(id: &str) -> Result<(), InvalidChatInput> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '@' | '-');
    if id.is_empty() || id.len() > 128 || !id.chars().all(ok_char) {
        return Err(InvalidChatInput(format!(
            "channel id {id:?} must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -"
        )));
    }
    Ok(())
}

/// A client message id is 1 to [`MAX_CLIENT_ID`] bytes of `[A-Za-z0-9._-]`.
pub fn validate_client_id(id: &str) -> Result<(), InvalidChatInput> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if id.is_empty() || id.len() > MAX_CLIENT_ID || !id.chars().all(ok_char) {
        return Err(InvalidChatInput(format!(
            "client_id must be 1 to {MAX_CLIENT_ID} characters of A-Z a-z 0-9 . _ -"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_ids() {
        for ok in ["general", "dm:alice@x.org:bob", "a", &"x".repeat(128)] {
            assert!(validate_channel_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a/b", "é", &"x".repeat(129), "a?b", "a%2Fb"] {
            assert!(validate_channel_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn blob_ids() {
        assert!(validate_blob_id("0123456789abcdef0123456789abcdef").is_ok());
        for bad in [
            "",
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef0123456789abcde",
            "0123456789abcdef0123456789abcdef0",
            "0123456789abcdef0123456789abcdeg",
            "../3456789abcdef0123456789abcdef",
        ] {
            assert!(validate_blob_id(bad).is_err(), "{bad}");
        }
        let old: NewMessage =
            serde_json::from_str(r#"{"client_id":"c","ciphertext":"AA==","member_version":1}"#)
                .unwrap_or_else(|e| panic!("{e}"));
        assert!(old.blobs.is_empty());
        assert!(!serde_json::to_string(&old)
            .unwrap_or_default()
            .contains("blobs"));
    }

    #[test]
    fn client_ids() {
        assert!(validate_client_id("0190f3a2-7c1e").is_ok());
        assert!(validate_client_id(&"x".repeat(MAX_CLIENT_ID)).is_ok());
        for bad in ["", "a:b", &"x".repeat(MAX_CLIENT_ID + 1)] {
            assert!(validate_client_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn frames_wire_form() -> Result<(), serde_json::Error> {
        let message = Message {
            seq: 3,
            channel: "general".into(),
            sender: "alice".into(),
            client_id: "c1".into(),
            sent_at: 1_795_801_646_000,
            member_version: 2,
            ciphertext: "AAEC".into(),
            kt_head: None,
            edited_at: None,
            deleted: None,
        };
        let json = serde_json::to_string(&ServerFrame::Message {
            message: message.clone(),
        })?;
        assert_eq!(
            json,
            r#"{"type":"message","message":{"seq":3,"channel":"general","sender":"alice","client_id":"c1","sent_at":1795801646000,"member_version":2,"ciphertext":"AAEC"}}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerFrame>(&json)?,
            ServerFrame::Message {
                message: message.clone()
            }
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"subscribe"}"#).is_err());
        assert_eq!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"typing","channel":"g"}"#)?,
            ClientFrame::Typing {
                channel: "g".into()
            }
        );
        assert_eq!(
            serde_json::to_string(&ServerFrame::Read {
                channel: "g".into(),
                identity: "bob".into(),
                seq: 4
            })?,
            r#"{"type":"read","channel":"g","identity":"bob","seq":4}"#
        );
        assert_eq!(
            serde_json::to_string(&ServerFrame::Typing {
                channel: "g".into(),
                identity: "bob".into()
            })?,
            r#"{"type":"typing","channel":"g","identity":"bob"}"#
        );
        // Edits and tombstones carry their state; messages from servers without edits read
        // as never edited.
        let tombstone = Message {
            ciphertext: String::new(),
            deleted: Some(Deletion {
                at: 5,
                by: "bob".into(),
            }),
            ..message.clone()
        };
        assert_eq!(
            serde_json::to_string(&ServerFrame::Deleted { message: tombstone })?,
            r#"{"type":"deleted","message":{"seq":3,"channel":"general","sender":"alice","client_id":"c1","sent_at":1795801646000,"member_version":2,"ciphertext":"","deleted":{"at":5,"by":"bob"}}}"#
        );
        let edited: Message = serde_json::from_str(
            r#"{"seq":3,"channel":"g","sender":"a","client_id":"c","sent_at":1,"member_version":2,"ciphertext":"AA==","edited_at":9}"#,
        )?;
        assert_eq!((edited.edited_at, edited.deleted), (Some(9), None));
        // Channels from servers without read state read as before.
        let old: Channel = serde_json::from_str(
            r#"{"id":"g","kind":"group","open":false,"created_by":"a","created_at":1,"admins":["a"],"members":["a"],"member_version":1,"last_seq":3}"#,
        )?;
        assert_eq!(old.unread, None);
        assert!(old.read.is_empty());
        assert!(!serde_json::to_string(&old)?.contains("unread"));
        assert!(serde_json::from_str::<NewChannel>(r#"{"id":"g","kind":"guild"}"#).is_err());
        let channel: NewChannel = serde_json::from_str(r#"{"id":"g","kind":"direct"}"#)?;
        assert_eq!(channel.kind, ChannelKind::Direct);
        assert!(!channel.open && channel.members.is_empty());
        Ok(())
    }
}
