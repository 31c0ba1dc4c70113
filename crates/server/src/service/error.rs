//! `ServiceError`: every way a service call can fail, in the service's own words.
//!
//! The variants say what went wrong, never how it is answered: `http::error` is the one place
//! that turns them into an HTTP status and a Virgil `{code, message}` body (and the WebSocket
//! handler into an error frame). The display texts are the messages clients see, so they are
//! part of the contract the HTTP tests pin.

use crate::store::StoreError;
use sealkit_proto::chat::Channel;

/// A failure of a service call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServiceError {
    /// The token cannot be parsed, or its algorithm, type or subject is wrong.
    #[error("invalid token: {0}")]
    InvalidToken(String),
    /// The token's key id is unknown or revoked.
    #[error("unknown or revoked API key id")]
    UnknownKey,
    /// Wrong issuer or signature.
    #[error("token signature or issuer is not valid")]
    BadSignature,
    /// The token has expired (the client refreshes on this).
    #[error("token expired")]
    Expired,
    /// The token's `iat` lies in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// A card failed validation.
    #[error("invalid card: {0}")]
    InvalidCard(String),
    /// The card's self signature does not verify.
    #[error("the card's self signature is not valid")]
    BadSelfSignature,
    /// Publishing or revoking for another identity.
    #[error("{0}")]
    Forbidden(&'static str),
    /// A rule of the directory forbids this write (duplicate, stale previous card, ...).
    #[error("{0}")]
    Conflict(&'static str),
    /// An invalid argument (identity, card id, too many identities).
    #[error("{0}")]
    BadRequest(String),
    /// The card does not exist.
    #[error("card not found")]
    CardNotFound,
    /// The Keyknox previous hash does not match the stored one (or is missing).
    #[error("the Keyknox entry changed since it was read (previous hash mismatch)")]
    KeyknoxMismatch,
    /// The Keyknox v2 push would take the owner's entries over its storage quota.
    #[error(
        "the push would store {used} bytes of Keyknox entries for this identity, over its \
         quota of {quota} bytes; reset entries that are no longer needed"
    )]
    KeyknoxQuotaExceeded {
        /// Bytes the owner's entries would hold with the push.
        used: u64,
        /// The quota, in bytes.
        quota: u64,
    },
    /// Too many brainkey requests for this identity.
    #[error("too many requests; try again later")]
    Throttled,
    /// Something failed on our side; the cause was logged by [`ServiceError::internal`].
    #[error("internal server error")]
    Internal,
    /// Chat: no such channel in the caller's application.
    #[error("no such channel")]
    ChannelNotFound,
    /// Chat: the caller is not a member of the channel (or the named identity is not).
    #[error("{0}")]
    NotAMember(String),
    /// Chat: only an admin of the channel may do this.
    #[error("only an admin of the channel may do this")]
    NotAnAdmin,
    /// Chat: the channel id is taken.
    #[error("a channel with this id exists")]
    ChannelExists,
    /// Chat: the post names a membership version that is not the channel's current one. The
    /// channel as it is now travels with the refusal, so the sender encrypts again without
    /// reading it.
    #[error(
        "member_version {sent} is not current (the channel is at {}); \
         re-read the channel and encrypt for its members",
        channel.member_version
    )]
    StaleMembers {
        /// The version the post named.
        sent: i64,
        /// The channel as read after the refusal (its members and current version).
        channel: Box<Channel>,
    },
    /// Chat: the decoded ciphertext exceeds the server's limit.
    #[error("the ciphertext is larger than the limit of {limit} bytes")]
    MessageTooLarge {
        /// The limit, in bytes of decoded ciphertext.
        limit: usize,
    },
    /// Chat: an invalid channel id, member list, client id, cursor or ciphertext encoding.
    #[error("{0}")]
    ChatInvalid(String),
    /// Chat: the caller created as many channels as one identity may.
    #[error("this identity created {limit} channels, the most the server allows")]
    TooManyChannels {
        /// The most channels one identity may create in an application.
        limit: u32,
    },
    /// Chat: the upload exceeds the per-blob limit.
    #[error("the blob is larger than the limit of {limit} bytes")]
    BlobTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// Chat: the upload would take the application's blobs over its quota.
    #[error(
        "the application's attachments would exceed its storage quota of {quota} bytes; \
         delete messages with attachments that are no longer needed"
    )]
    BlobQuotaExceeded {
        /// The quota, in bytes.
        quota: u64,
    },
    /// Chat: no such blob in the channel (or not one the caller may read yet).
    #[error("no such blob")]
    BlobNotFound,
    /// Chat: a post names a blob it may not name.
    #[error(
        "a named blob is not a finished upload of the sender to this channel, or another \
         message names it"
    )]
    BlobUnusable,
    /// Chat: the membership change breaks a rule of the channel.
    #[error("{0}")]
    MembershipRule(String),
    /// Chat: the channel has no message with this seq.
    #[error("the channel has no message #{seq}")]
    MessageNotFound {
        /// The seq asked for.
        seq: i64,
    },
    /// Chat: only the sender may edit a message (and only the sender or an admin delete it).
    #[error("{0}")]
    NotTheSender(&'static str),
    /// Chat: a deleted message cannot be edited.
    #[error("message #{seq} was deleted")]
    MessageDeleted {
        /// The seq of the tombstone.
        seq: i64,
    },
    /// Key transparency: the application has no directory yet.
    #[error("this application has no key-transparency directory yet")]
    KtNoDirectory,
    /// Key transparency: the identity has no entry (yet).
    #[error("the identity has no entry in the key-transparency directory (yet)")]
    KtNotInDirectory,
    /// Key transparency: the identity has cards but no entry yet; the first one is queued for
    /// the next epoch (only said when the client asked, `?pending=true`).
    #[error("the identity's first key-transparency entry is queued for the next epoch")]
    KtEntryPending,
    /// Key transparency: an invalid parameter.
    #[error("{0}")]
    KtInvalid(String),
    /// Key transparency: an epoch of the requested range is not published.
    #[error("an epoch of the requested range is not published")]
    KtNoSuchEpoch,
    /// Ratchet keys: a malformed field (base64, key type, key id, identity, counts).
    #[error("{0}")]
    PfsInvalid(String),
    /// Ratchet keys: the long-term key's signature does not verify with the card's key.
    #[error("the long-term key's signature does not verify with the identity card's key")]
    PfsBadSignature,
    /// Ratchet keys: the identity card is not the caller's current Ed25519 card.
    #[error("identity card: {0}")]
    PfsInvalidCard(String),
    /// Ratchet keys: a long-term key before any identity card id.
    #[error("no identity card id is recorded; send identity_card_id with the long-term key")]
    PfsNoCard,
    /// Ratchet keys: one-time keys before any long-term key.
    #[error("no long-term key is stored; send long_term_key with the one-time keys")]
    PfsNoLongTermKey,
    /// Ratchet keys: the upload would leave too many unused one-time keys.
    #[error("the upload would leave more than {limit} unused one-time keys")]
    PfsTooManyOneTimeKeys {
        /// The most unused one-time keys one identity may have.
        limit: usize,
    },
    /// Ratchet keys: a one-time key that was handed out before, uploaded again.
    #[error("a one-time key of the upload was already handed out; generate new keys")]
    PfsOneTimeKeyUsed,
    /// Ratchet keys: the card id changed while the upload was checked.
    #[error("the identity card id changed during the upload; send it again")]
    PfsCardChanged,
    /// Ratchet keys: the identity has no keys (or they belong to a card it no longer uses).
    #[error("the identity has no ratchet keys")]
    PfsKeysNotFound,
}

impl ServiceError {
    /// Logs a server-side failure and returns the generic error, so its cause never reaches
    /// the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(%cause, "internal error");
        Self::Internal
    }
}

/// The card and application store's failures that no service rule anticipated.
impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::CardNotFound,
            StoreError::Conflict(rule) => Self::Conflict(rule.message()),
            StoreError::Forbidden(why) => Self::Forbidden(why.message()),
            other => Self::internal(other),
        }
    }
}
