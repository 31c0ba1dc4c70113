//! The crate's one error type.

/// Everything that can go wrong in this crate. The variants mirror the `vscr_status_t` codes of
/// libvsc_ratchet where there is one (named in each variant's docs), so a failure seen on one side
/// of an interop test can be matched with the other.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A message or a serialized session could not be parsed: truncated or invalid protobuf, a
    /// required field missing, a key or key id of the wrong length, an input over the size limit.
    /// `field` names what was wrong (`vscr_status_ERROR_PROTOBUF_DECODE`).
    #[error("malformed {what}: {field}")]
    Malformed {
        /// `"message"` or `"session"`.
        what: &'static str,
        /// The offending field, e.g. `"regular_message.header.public_key"`.
        field: &'static str,
    },
    /// The message or session uses the post-quantum (Round5/Falcon) variant, which this crate
    /// does not implement.
    #[error("post-quantum ratchet messages and sessions are not supported")]
    PostQuantumUnsupported,
    /// More than [`crate::MAX_PLAIN_TEXT_LEN`] bytes to encrypt
    /// (`vscr_status_ERROR_EXCEEDED_MAX_PLAIN_TEXT_LEN`).
    #[error("plaintext longer than {} bytes", crate::MAX_PLAIN_TEXT_LEN)]
    PlaintextTooLong,
    /// The responder tried to encrypt before it decrypted the initiator's first message
    /// (`vscr_status_ERROR_SESSION_IS_NOT_INITIALIZED`).
    #[error("the session cannot encrypt before it has decrypted the first message")]
    SessionNotReady,
    /// A prekey message was expected and a regular one was given, or a prekey message reached
    /// the session's initiator (`vscr_status_ERROR_BAD_MESSAGE_TYPE`).
    #[error("wrong message type for this session")]
    WrongMessageType,
    /// Authentication failed or the padding inside was invalid: wrong key, tampered message,
    /// message for another session (`vscr_status_ERROR_AES`, `_INVALID_PADDING`).
    #[error("decryption failed")]
    DecryptionFailed,
    /// The message's key was already used: it was decrypted before
    /// (`vscr_status_ERROR_MESSAGE_ALREADY_DECRYPTED`).
    #[error("message already decrypted")]
    MessageAlreadyDecrypted,
    /// The message is older than the current chain position and its skipped-message key is not
    /// stored: decrypted before, or evicted by the limits [`crate::MAX_SKIPPED_MESSAGES`] and
    /// [`crate::MAX_SKIPPED_CHAINS`] (`vscr_status_ERROR_SKIPPED_MESSAGE_MISSING`).
    #[error("skipped message key missing (already decrypted or evicted)")]
    SkippedMessageMissing,
    /// The message is more than [`crate::MAX_MESSAGE_GAP`] messages ahead of the chain
    /// (`vscr_status_ERROR_TOO_MANY_LOST_MESSAGES`).
    #[error("too many lost messages (gap over {})", crate::MAX_MESSAGE_GAP)]
    TooManyLostMessages,
    /// A message started a new receiving chain while this side had no sending chain to ratchet
    /// from (`vscr_status_ERROR_SENDER_CHAIN_MISSING`).
    #[error("sender chain missing")]
    SenderChainMissing,
    /// A chain counter reached `u32::MAX`
    /// (`vscr_status_ERROR_TOO_MANY_MESSAGES_FOR_{SENDER,RECEIVER}_CHAIN`).
    #[error("chain counter exhausted")]
    ChainExhausted,
    /// A public key is not a valid point, or a Diffie-Hellman result was all zero (a small-order
    /// key) (`vscr_status_ERROR_CURVE25519`).
    #[error("invalid key")]
    InvalidKey,
}

/// Shorthand for results of this crate.
pub type Result<T> = core::result::Result<T, Error>;

pub(crate) fn malformed_message(field: &'static str) -> Error {
    Error::Malformed {
        what: "message",
        field,
    }
}

pub(crate) fn malformed_session(field: &'static str) -> Error {
    Error::Malformed {
        what: "session",
        field,
    }
}
