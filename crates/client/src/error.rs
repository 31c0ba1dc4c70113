//! The SDK's error type, mirroring e3kit's error classes.

use sealkit_proto::{CardError, JwtError};

/// An error raised by a user's token provider (see [`crate::TokenProvider`]).
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use sealkit::{EThree, EThreeOptions, Error};
///
/// let backend_down = || async { Err::<String, _>(std::io::Error::other("backend down")) };
/// # let dir = tempfile::tempdir()?;
/// let options = EThreeOptions::new("https://sealkit.example.com", dir.path());
/// match EThree::initialize(backend_down, options).await {
///     // The provider's own error, boxed: downcast it to tell its causes apart.
///     Err(Error::TokenProvider(e)) => {
///         let io = e.downcast_ref::<std::io::Error>();
///         assert_eq!(io.map(|e| e.to_string()).as_deref(), Some("backend down"));
///     }
///     other => panic!("expected a provider error, got {other:?}"),
/// }
/// # Ok(()) }
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in the SDK.
///
/// The variants that exist in e3kit keep e3kit's names (`UsersNotFoundError` is
/// [`Error::UsersNotFound`], `IdentityAlreadyExistsError` is [`Error::IdentityAlreadyExists`],
/// ...), so code ported from e3kit can match on the same cases. Each message says what to do next.
///
/// ```no_run
/// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
/// use sealkit::Error;
///
/// match ethree.find_users(&["bob"]).await {
///     Ok(cards) => println!("bob's card: {}", cards["bob"].id()),
///     Err(Error::UsersNotFound { identities }) => println!("invite {identities:?} first"),
///     // Offline: the cache still has whoever was found before.
///     Err(Error::Network(_)) => {
///         ethree.find_cached_users(&["bob"]).await?;
///     }
///     Err(Error::Api { status, code, .. }) => eprintln!("server error {status}, code {code}"),
///     // The enum is non_exhaustive: there is always a catch-all arm.
///     Err(e) => return Err(e),
/// }
/// # Ok(()) }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `find_users`: no card was found for these identities (e3kit `UsersNotFoundError`). They are
    /// not registered, or unregistered; for `find_cached_users`, they are not in the local cache.
    #[error(
        "no card found for {}: the user(s) must register first (or, for cached lookups, be found \
         with find_users while online)",
        identities.join(", ")
    )]
    UsersNotFound {
        /// The identities without a card, in the order they were asked for.
        identities: Vec<String>,
    },
    /// `find_users`: these identities have more than one actual card, which e3kit does not
    /// support (e3kit `UsersFoundWithMultipleCardsError`).
    #[error(
        "several cards are registered for {}: e3kit-compatible clients need exactly one per \
         identity; the user should unregister and register again",
        identities.join(", ")
    )]
    UsersFoundWithMultipleCards {
        /// The identities with several cards.
        identities: Vec<String>,
    },
    /// `register`: the identity already has a card (e3kit `IdentityAlreadyExistsError`).
    #[error(
        "this identity is already registered: restore the private key from a backup, or call \
         rotate_private_key() if it is lost"
    )]
    IdentityAlreadyExists,
    /// `rotate_private_key`: a private key is stored locally (e3kit `PrivateKeyAlreadyExistsError`).
    #[error(
        "a private key is already stored on this device: call cleanup() first if you really want \
         to replace it (messages encrypted for it can then no longer be decrypted here)"
    )]
    PrivateKeyAlreadyExists,
    /// No private key is stored locally for this identity (e3kit `MissingPrivateKeyError`).
    #[error("no private key found on this device: call register() (or restore a backup) first")]
    MissingPrivateKey,
    /// `unregister` / `rotate_private_key`: the identity has no card (e3kit `RegisterRequiredError`).
    #[error("this identity is not registered: call register() first")]
    RegisterRequired,
    /// `register` / `rotate_private_key`: the identity has several cards (e3kit `MultipleCardsError`).
    #[error(
        "several cards are registered for {identity}, which is not supported: call unregister() \
         and register again"
    )]
    MultipleCards {
        /// The identity with several cards.
        identity: String,
    },
    /// A contact whose safety number the user verified now has another key than the one
    /// pinned then: returned by `find_users`, `find_cached_users` and every encryption for them
    /// (also chat sends) until the user accepts the change ([`crate::EThree::accept_change`]) or
    /// verifies the new safety number ([`crate::EThree::verify_safety_number`]). The key changes
    /// when the contact rotates it, and also when the server hands out a key that is not theirs:
    /// only comparing safety numbers again tells the two apart.
    #[error(
        "the key of {} changed since you verified it: compare safety numbers again, then call \
         verify_safety_number() (or accept_change() to trust the new key without checking)",
        identities.join(", ")
    )]
    ContactKeyChanged {
        /// The verified contacts whose key changed, in the order they were asked for.
        identities: Vec<String>,
    },
    /// `verify_safety_number`: the digits are not the safety number of the user and the
    /// contact's current key. Nothing was pinned.
    #[error(
        "the safety number does not match the one computed for {identity}'s current key: the key \
         the server gives for {identity} (or your own) is not the one the other side sees, or the \
         digits were mistyped; nothing was pinned"
    )]
    SafetyNumberMismatch {
        /// The contact.
        identity: String,
    },
    /// `accept_change`: the contact was never verified, so there is no change to accept.
    #[error(
        "{identity} is not a verified contact: compare safety numbers and call \
         verify_safety_number() first"
    )]
    ContactNotVerified {
        /// The contact.
        identity: String,
    },
    /// Decryption with `encrypted_at`: every card of the sender's chain is newer than that moment
    /// (e3kit throws a plain `Error` here).
    #[error(
        "the sender's card is newer than the encrypted data: the sender may have unregistered and \
         registered again since; fetch the card that was valid then"
    )]
    SenderCardNewerThanMessage,
    /// `backup_private_key` (without a key name): the backup storage already holds a backup of
    /// this identity (e3kit `CloudEntryExistsError`).
    #[error(
        "a backup of {name:?} already exists: call reset_private_key_backup() first to replace it, or change_password() to re-encrypt it"
    )]
    CloudEntryExists {
        /// The name of the existing entry (the identity).
        name: String,
    },
    /// The backup password is wrong: the backup cannot be decrypted with the key derived from it
    /// (e3kit `WrongKeyknoxPasswordError`).
    #[error(
        "the backup password is wrong (the stored backup does not decrypt with it): retry with the password used for backup_private_key(), or reset the backup if it is lost"
    )]
    WrongKeyknoxPassword,
    /// `restore_private_key` / `change_password`: there is no backup (with that key name)
    /// (e3kit `PrivateKeyNoBackupError`).
    #[error(
        "no backup of the private key exists (under this key name): call backup_private_key() on a device that has the key"
    )]
    PrivateKeyNoBackup,
    /// A group operation failed (e3kit `GroupError`, with the same codes).
    #[error("group: {message}")]
    Group {
        /// What went wrong (e3kit's `GroupErrorCode`).
        code: GroupErrorCode,
        /// What to do about it.
        message: String,
    },
    /// Chat: no channel with this id exists, or this user is not a member of it (code 70001;
    /// the server answers both alike, so outsiders cannot learn which channels exist). A
    /// member who gets it was removed.
    #[error(
        "chat channel {channel:?} does not exist or you are not a member: check the id, join it \
         if it is open, or ask one of its admins to add you"
    )]
    ChannelNotFound {
        /// The channel id.
        channel: String,
    },
    /// Chat: the identity named in a removal is not a member of the channel (code 70002;
    /// servers before Sealkit 0.2 also answered it to a user who was not a member).
    #[error("not a member of chat channel {channel:?}")]
    NotAMember {
        /// The channel id.
        channel: String,
    },
    /// Chat: only an admin of the channel may do this (code 70003).
    #[error("only an admin of chat channel {channel:?} may change its members")]
    NotAnAdmin {
        /// The channel id.
        channel: String,
    },
    /// Chat: this user created as many channels as the server allows one identity (code 70010).
    #[error("you created as many chat channels as the server allows ({message})")]
    TooManyChannels {
        /// The server's message (it names the limit).
        message: String,
    },
    /// Chat: a channel with this id exists already (code 70004).
    #[error("chat channel {channel:?} exists already: pick another id, or join it")]
    ChannelExists {
        /// The channel id.
        channel: String,
    },
    /// Chat: the membership change breaks a rule (code 70008): a direct channel keeps its two
    /// members, the last admin cannot leave, a channel holds at most 1000 members.
    #[error("chat channel {channel:?}: {message}")]
    MembershipRule {
        /// The channel id.
        channel: String,
        /// The server's explanation.
        message: String,
    },
    /// Chat: the encrypted message is larger than the server accepts (code 70006, HTTP 413).
    #[error(
        "the message for chat channel {channel:?} is too large for the server ({message}): send \
         large content as an encrypted file and post a reference to it"
    )]
    MessageTooLarge {
        /// The channel id.
        channel: String,
        /// The server's explanation.
        message: String,
    },
    /// Chat: the channel has no message with this seq (code 70020).
    #[error("chat channel {channel:?} has no message #{seq}")]
    MessageNotFound {
        /// The channel id.
        channel: String,
        /// The seq asked for.
        seq: i64,
    },
    /// Chat: only the sender may edit a message, and only the sender or an admin of the
    /// channel may delete it (code 70021).
    #[error("message #{seq} of chat channel {channel:?} is not yours: {message}")]
    NotTheSender {
        /// The channel id.
        channel: String,
        /// The message's seq.
        seq: i64,
        /// The server's explanation.
        message: String,
    },
    /// Chat: the message was deleted, so it cannot be edited (code 70022).
    #[error("message #{seq} of chat channel {channel:?} was deleted")]
    MessageDeleted {
        /// The channel id.
        channel: String,
        /// The message's seq.
        seq: i64,
    },
    /// Chat: the encrypted file exceeds the server's attachment limit (code 70011); nothing
    /// was posted.
    #[error("the file is too large for chat channel {channel:?}: {message}")]
    AttachmentTooLarge {
        /// The channel id.
        channel: String,
        /// The server's explanation (with its limit).
        message: String,
    },
    /// Chat: the application's attachment storage is full (code 70012); nothing was posted.
    #[error("no room for the file in chat channel {channel:?}: {message}")]
    AttachmentQuotaExceeded {
        /// The channel id.
        channel: String,
        /// The server's explanation (with the quota).
        message: String,
    },
    /// Chat: message `seq` of the channel does not exist, carries no attachment, or its blob is
    /// gone (code 70013: the message was deleted).
    #[error("message #{seq} of chat channel {channel:?} has no file to download")]
    AttachmentNotFound {
        /// The channel id.
        channel: String,
        /// The message.
        seq: i64,
    },
    /// Chat: the message naming the file did not verify, so its file is not fetched.
    #[error("message #{seq} of chat channel {channel:?} did not verify ({status:?}): its file is not downloaded")]
    AttachmentUnverified {
        /// The channel id.
        channel: String,
        /// The message.
        seq: i64,
        /// Why it did not verify.
        status: crate::chat::Verification,
    },
    /// Chat: the downloaded file decrypted and carries the sender's signature, but it is not
    /// the file the message names (another size or SHA-256): the server served other bytes.
    /// Nothing was written.
    #[error("the file of message #{seq} of chat channel {channel:?} is not the one the message names; nothing was written")]
    AttachmentAltered {
        /// The channel id.
        channel: String,
        /// The message.
        seq: i64,
    },
    /// Chat: the channel's members kept changing while the message was being encrypted for
    /// them (code 70005 after several re-reads); nothing was posted, so sending again is safe.
    #[error(
        "the members of chat channel {channel:?} changed {attempts} times while sending: nothing \
         was posted; send again"
    )]
    MembersChanging {
        /// The channel id.
        channel: String,
        /// How many times the message was encrypted.
        attempts: u32,
    },
    /// A key-transparency check failed (see [`crate::transparency`]): the card or the server's
    /// directory head is not used. [`KtFailure`](crate::KtFailure) names the failure.
    #[error("key transparency: {0}")]
    KeyTransparency(crate::transparency::KtFailure),
    /// A ratchet method was called without [`crate::EThreeOptions::enable_ratchet`] (e3kit
    /// `ratchetIsDisabled`).
    #[error("ratchet channels are disabled: set EThreeOptions::enable_ratchet(true)")]
    RatchetDisabled,
    /// A ratchet channel with oneself was asked for (e3kit `selfChannelIsForbidden`).
    #[error("a ratchet channel with yourself is not possible: use auth_encrypt for your own data")]
    SelfRatchetChannel,
    /// `create_ratchet_channel` / `join_ratchet_channel`: a channel with this user and name
    /// exists already, on this device or (for create) in the cloud (e3kit
    /// `channelAlreadyExists`).
    #[error(
        "a ratchet channel {name:?} with {identity} exists already: use get_ratchet_channel(), \
         or delete_ratchet_channel() on both sides first to start over"
    )]
    RatchetChannelExists {
        /// The other participant.
        identity: String,
        /// The channel name (`"default"` when none was given).
        name: String,
    },
    /// No ratchet channel with this user and name is stored on this device (e3kit
    /// `missingLocalChannel`).
    #[error("no ratchet channel {name:?} with {identity} on this device: create or join it first")]
    RatchetChannelNotFound {
        /// The other participant.
        identity: String,
        /// The channel name.
        name: String,
    },
    /// The user has published no ratchet keys: they never used an SDK with ratchet enabled, or
    /// their keys belong to an older card (e3kit `userIsNotUsingRatchet`; key service code
    /// 90008).
    #[error(
        "{identity} has published no ratchet keys: they must enable ratchet channels and sign in \
         once (or again after a key rotation)"
    )]
    UserNotUsingRatchet {
        /// The user.
        identity: String,
    },
    /// `join_ratchet_channel`: the user has not created a channel with this name for this
    /// user (e3kit `noInvite`).
    #[error(
        "{identity} has not created a ratchet channel {name:?} with you (or deleted it): ask them \
         to create it"
    )]
    NoRatchetInvite {
        /// Who should have created the channel.
        identity: String,
        /// The channel name.
        name: String,
    },
    /// The key service's keys for this user do not belong to their card: the identity key is
    /// another one, or the long-term key's signature does not verify with the card's key
    /// (virgil-ratchet `identityKeyDoesntMatch`, `invalidLongTermKeySignature`). Either the user
    /// changed keys meanwhile (fetch the card again) or the server is lying.
    #[error(
        "the ratchet keys the server gave for {identity} are not valid for their card: {reason}"
    )]
    InvalidRatchetKeys {
        /// The user.
        identity: String,
        /// What does not match.
        reason: String,
    },
    /// `join_ratchet_channel`: the invitation names a long-term or one-time key whose private
    /// half is not on this device (any more): it was used already (a one-time key serves one
    /// channel), deleted after its rotation, or made on another device.
    #[error(
        "the ratchet channel from {identity} was started with a {which} key this device does not \
         hold (used already, rotated away, or made on another device): ask them to delete the \
         channel and create it again"
    )]
    RatchetKeyMissing {
        /// Who started the channel.
        identity: String,
        /// `"long-term"` or `"one-time"`.
        which: &'static str,
    },
    /// A ratchet message could not be encrypted or decrypted: malformed, tampered, for another
    /// channel, already decrypted, too far ahead; see [`sealkit_ratchet::Error`].
    #[error("ratchet: {0}")]
    Ratchet(#[from] sealkit_ratchet::Error),
    /// The server answered with an error (`{"code", "message"}` body, spec §1).
    #[error("the server answered HTTP {status}, code {code}: {message}")]
    Api {
        /// HTTP status.
        status: u16,
        /// Virgil error code (0 when the body had none, e.g. on a 5xx).
        code: u32,
        /// The server's message (or the HTTP reason phrase).
        message: String,
    },
    /// The server could not be reached, or did not answer within the request timeout.
    #[error("cannot reach the server: {0} (check the API URL and the network; the timeout is EThreeOptions::request_timeout)")]
    Network(String),
    /// The server's answer is not what the protocol prescribes.
    #[error("unexpected answer from the server: {0}")]
    InvalidResponse(String),
    /// A card from the server or the local cache does not verify (bad self signature,
    /// malformed content, unexpected identity).
    #[error("invalid card for {identity}: {source}")]
    InvalidCard {
        /// The identity the card claims or was requested for.
        identity: String,
        /// Why it was rejected.
        #[source]
        source: CardError,
    },
    /// The token provider failed.
    #[error("the token provider failed: {0}")]
    TokenProvider(#[source] BoxError),
    /// The token provider returned something that is not a Virgil JWT.
    #[error("the token provider returned an invalid JWT: {0}")]
    InvalidToken(#[source] JwtError),
    /// The token provider returned a token for another identity than the one this instance was
    /// initialized with.
    #[error(
        "the token provider returned a token for {actual:?}, but this EThree instance belongs to \
         {expected:?}: create a new instance for the other identity"
    )]
    TokenIdentityChanged {
        /// The identity of the instance.
        expected: String,
        /// The identity in the new token.
        actual: String,
    },
    /// Encryption, decryption or verification failed; see [`sealkit_crypto::Error`]. A message
    /// that is not signed by the given sender gives `SignatureInvalid` or `SignerNotFound`.
    #[error("crypto: {0}")]
    Crypto(#[from] sealkit_crypto::Error),
    /// The local key file or card cache cannot be read or written, or is corrupt.
    #[error("local storage: {0}")]
    Storage(String),

    /// The chat search index in `path` was sealed under another private key (the user's key
    /// was replaced since). [`crate::Chat`] replaces such an index by itself.
    #[error(
        "the chat search index {path} was sealed under another private key: delete it (it is \
         rebuilt as messages are read)"
    )]
    SearchIndexKey {
        /// The index folder.
        path: String,
    },
    /// An argument is not acceptable (not base64, not UTF-8, a key that cannot sign, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A background task (streaming encryption or decryption) was cancelled or panicked.
    #[error("background task failed: {0}")]
    Task(String),
}

impl Error {
    pub(crate) fn storage(what: impl std::fmt::Display, cause: impl std::fmt::Display) -> Self {
        Self::Storage(format!("{what}: {cause}"))
    }
}

/// e3kit's `GroupErrorCode`, with the same numbers.
///
/// ```no_run
/// # async fn run(ethree: sealkit::EThree, mut group: sealkit::Group, message: Vec<u8>)
/// #     -> sealkit::Result<()> {
/// use sealkit::{Error, GroupErrorCode};
///
/// let alice = ethree.find_user("alice").await?;
/// let plaintext = match group.decrypt(&message, &alice, None).await {
///     // Alice started a new epoch (removed someone) since this device last looked:
///     Err(Error::Group { code: GroupErrorCode::GroupIsOutdated, .. }) => {
///         group.update().await?;
///         group.decrypt(&message, &alice, None).await?
///     }
///     other => other?,
/// };
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GroupErrorCode {
    /// The group is not stored on this device: load it with `load_group` first.
    LocalGroupNotFound = 1,
    /// Only the group's initiator can change its participants.
    PermissionDenied = 2,
    /// No group with this id and initiator on the server.
    RemoteGroupNotFound = 3,
    /// The group's tickets are unusable.
    InvalidGroup = 4,
    /// The change would leave fewer than 1 or more than 100 participants, or removes nobody.
    InvalidChangeParticipants = 5,
    /// A group has 1 to 100 participants.
    InvalidParticipantsCount = 6,
    /// The message is not signed by the given sender.
    DataVerificationFailed = 7,
    /// A group id has at least 10 bytes.
    GroupIdTooShort = 8,
    /// The message belongs to another group.
    MessageNotFromThisGroup = 9,
    /// The message uses an epoch newer than this device knows: call `Group::update`.
    GroupIsOutdated = 10,
    /// The user has no copy of the group's tickets (not a participant, or removed).
    NoAccess = 11,
    /// Every card given to `add` is already a participant.
    ParticipantAlreadyAdded = 12,
}

impl Error {
    pub(crate) fn group(code: GroupErrorCode, message: impl Into<String>) -> Self {
        Self::Group {
            code,
            message: message.into(),
        }
    }
}

/// Shorthand for results of this crate.
///
/// ```no_run
/// use sealkit::{Card, EThree, Error};
///
/// // A contact's card, from the local cache when the server is unreachable.
/// async fn contact_card(ethree: &EThree, who: &str) -> sealkit::Result<Card> {
///     match ethree.find_user(who).await {
///         Err(Error::Network(_)) => ethree.find_cached_user(who).await,
///         other => other,
///     }
/// }
/// ```
pub type Result<T, E = Error> = core::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_identities_and_the_next_step() {
        let e = Error::UsersNotFound {
            identities: vec!["bob".into(), "carol".into()],
        };
        assert!(e.to_string().contains("bob, carol"));
        assert!(Error::MissingPrivateKey.to_string().contains("register()"));
        let api = Error::Api {
            status: 401,
            code: 20304,
            message: "JWT is expired".into(),
        };
        assert_eq!(
            api.to_string(),
            "the server answered HTTP 401, code 20304: JWT is expired"
        );
        let changed = Error::ContactKeyChanged {
            identities: vec!["alice".into()],
        };
        assert!(changed.to_string().starts_with("the key of alice changed"));
    }
}
