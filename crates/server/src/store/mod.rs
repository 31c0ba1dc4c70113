//! Storage: one object-safe trait, [`Store`], for everything the service keeps (one sub-trait
//! per domain: [`AppStore`], [`CardStore`], [`KeyknoxStore`], [`RateLimitStore`],
//! [`ChatStore`], [`KtStore`], [`PfsStore`], [`HookStore`]), implemented by SQLite (embedded, the default) and PostgreSQL (for several
//! replicas), and checked by one conformance suite that runs against both.
//!
//! Methods are domain verbs. Every write that must be atomic across replicas (card supersession,
//! Keyknox compare-and-swap) is one method, implemented as one database transaction, so several
//! server processes on one PostgreSQL behave as one service. No backend type crosses the trait.
//!
//! # Rooms
//!
//! * `mod.rs` (here): the traits, the records they exchange and the typed errors
//!   ([`Conflict`] names the rule a write broke, [`Forbidden`] why the caller may not).
//! * `rules.rs`: the decisions both backends make the same way, as pure functions over records
//!   and over what a backend read inside its transaction (token bucket, Keyknox
//!   compare-and-swap, membership rules, limits), unit-tested without a database.
//! * `sql/`: the shared SQL core, one file per domain: error mapping and every statement whose
//!   text is the same on both databases (sqlx's SQLite driver binds `$N` parameters too). It is
//!   compiled once per backend, against that backend's driver and its `ROW_LOCK` (empty on
//!   SQLite, whose `BEGIN IMMEDIATE` already holds the write lock; `FOR UPDATE` on PostgreSQL).
//! * `sqlite/` and `postgres/`: one file per domain (`apps`, `cards`, `keyknox`, `pythia` for
//!   the rate limits, `chat`, `hooks`; PostgreSQL adds `listen` for `LISTEN`/`NOTIFY`), each holding the
//!   domain's trait implementation and the code that really differs between the databases
//!   (transaction start, `json_each` against arrays, chunked against `= ANY` searches, how a
//!   violated index is named, how chat events travel). That code stays duplicated on purpose,
//!   side by side per domain: each half reads as plain SQL for its database, and a change to one
//!   domain's dialect code is one pair of files.
//! * `conformance/`: the behaviour every backend must show, one file per domain, with the
//!   `store_conformance_tests!` macro. Compiled for this crate's tests and, for stores outside
//!   it, with the `conformance` feature.

use async_trait::async_trait;
use sealkit_proto::{ChannelId, Identity};

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod postgres;
mod rules;
pub mod sqlite;

/// Errors of a [`Store`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The record does not exist.
    #[error("not found")]
    NotFound,
    /// The write conflicts with the current state; the variant says which rule.
    #[error("conflict: {0}")]
    Conflict(Conflict),
    /// The caller may not do this; the variant says why.
    #[error("forbidden: {0}")]
    Forbidden(Forbidden),
    /// The database failed; the text is for logs, never for clients.
    #[error("storage backend: {0}")]
    Backend(String),
}

/// The rule a write broke ([`StoreError::Conflict`]). [`Conflict::message`] (also the `Display`
/// text) is what clients of the card directory read in error bodies, so it keeps its wording.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Conflict {
    /// [`AppStore::create_app`] with an application id that exists.
    AppExists,
    /// An API key id that exists (key ids are unique across applications).
    KeyExists,
    /// [`AppStore::create_app`] with a first key of another application.
    KeyOfAnotherApp,
    /// A card id that exists.
    CardIdExists,
    /// A rotation whose previous card is not the identity's current card.
    NotCurrentCard,
    /// A first publish for an identity that has a current card.
    IdentityHasCard,
    /// A Keyknox write whose previous hash is not the stored one.
    KeyknoxHashMismatch,
    /// A Keyknox v2 push that would take the owner's entries over its storage quota.
    KeyknoxQuotaExceeded {
        /// Bytes the owner's entries would hold with the push.
        used: u64,
        /// The owner's quota, in bytes.
        quota: u64,
    },
    /// A chat channel id that is taken in the application.
    ChannelExists,
    /// More members than `sealkit_proto::chat::MAX_MEMBERS`.
    ChannelFull,
    /// The only admin leaving a group channel while other members remain.
    LastAdmin,
    /// A creator that already created the most channels it may.
    TooManyChannels {
        /// The most channels one identity may create in an application.
        limit: u32,
    },
    /// A post encrypted for another membership than the channel's current one.
    StaleMemberVersion {
        /// The channel's `member_version` when the post was refused.
        current: i64,
    },
    /// A ratchet long-term key for an identity with no card id recorded.
    PfsNoCard,
    /// Ratchet one-time keys for an identity with no long-term key.
    PfsNoLongTermKey,
    /// An upload that would leave more unused one-time keys than allowed.
    PfsTooManyOneTimeKeys {
        /// The most unused one-time keys one identity may have.
        limit: usize,
    },
    /// A one-time key that was already handed out, uploaded again.
    PfsOneTimeKeyUsed,
    /// A long-term key checked against another card than the one the upload records.
    PfsCardChanged,
    /// A read horizon beyond the channel's newest message.
    ReadBeyondLastSeq {
        /// The channel's `last_seq` when the mark was refused.
        last_seq: i64,
    },
    /// An edit or delete of a `seq` the channel has no message for (0, negative, or beyond
    /// its `last_seq`).
    NoSuchMessage,
    /// An edit of a deleted message (a tombstone).
    MessageDeleted,
    /// A chunk that would take a blob over the per-blob limit.
    BlobTooLarge {
        /// The most bytes one blob may hold.
        limit: u64,
    },
    /// A chunk that would take the application's blobs over its quota.
    BlobQuotaExceeded {
        /// The application's quota, in bytes.
        quota: u64,
    },
    /// A chunk for a blob that is already complete.
    BlobComplete,
    /// A post naming a blob that is not a complete upload of the sender to the channel, or
    /// that another message names.
    BlobUnusable,
}

impl Conflict {
    /// The rule as text, for error bodies and logs.
    pub fn message(&self) -> &'static str {
        match self {
            Self::AppExists => "app id exists",
            Self::KeyExists => "key id exists",
            Self::KeyOfAnotherApp => "key belongs to another application",
            Self::CardIdExists => "card id exists",
            Self::NotCurrentCard => "previous card is not the identity's current card",
            Self::IdentityHasCard => "identity already has a card",
            Self::KeyknoxHashMismatch => "keyknox hash mismatch",
            Self::KeyknoxQuotaExceeded { .. } => "keyknox storage quota exceeded",
            Self::ChannelExists => "channel exists",
            Self::ChannelFull => "channel is full",
            Self::LastAdmin => "the last admin cannot leave",
            Self::TooManyChannels { .. } => "too many channels created by this identity",
            Self::StaleMemberVersion { .. } => "stale member version",
            Self::PfsNoCard => "no identity card id is recorded; send identity_card_id first",
            Self::PfsNoLongTermKey => "no long-term key is stored; send long_term_key first",
            Self::PfsTooManyOneTimeKeys { .. } => "too many unused one-time keys",
            Self::PfsOneTimeKeyUsed => "a one-time key of the upload was already handed out",
            Self::PfsCardChanged => "the identity card id changed during the upload",
            Self::ReadBeyondLastSeq { .. } => "read horizon beyond the channel's last message",
            Self::NoSuchMessage => "no message with this seq",
            Self::MessageDeleted => "the message was deleted",
            Self::BlobTooLarge { .. } => "the blob exceeds the per-blob limit",
            Self::BlobQuotaExceeded { .. } => "the application's blob storage quota is exceeded",
            Self::BlobComplete => "the blob is complete",
            Self::BlobUnusable => {
                "a named blob is not a complete upload of the sender to this channel, or \
                 another message names it"
            }
        }
    }
}

/// Why the caller may not do something ([`StoreError::Forbidden`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Forbidden {
    /// Revoking a card of another identity.
    CardOfAnotherIdentity,
    /// Posting to a chat channel without being a member.
    NotAMember,
    /// Editing a chat message of another sender.
    NotTheSender,
    /// Deleting a chat message of another sender without being an admin of the channel.
    NotTheSenderOrAdmin,
}

impl Forbidden {
    /// The reason as text, for error bodies and logs.
    pub fn message(&self) -> &'static str {
        match self {
            Self::CardOfAnotherIdentity => "card belongs to another identity",
            Self::NotAMember => "not a member",
            Self::NotTheSender => "only the sender may edit a message",
            Self::NotTheSenderOrAdmin => {
                "only the sender or an admin of the channel may delete a message"
            }
        }
    }
}

/// Both typed reasons display as their text: the messages clients and logs have always seen.
macro_rules! display_as_message {
    ($($reason:ty),+) => {$(
        impl std::fmt::Display for $reason {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.message())
            }
        }

        impl std::error::Error for $reason {}
    )+};
}
display_as_message!(Conflict, Forbidden);

/// Shorthand for store results.
pub type StoreResult<T> = Result<T, StoreError>;

/// An application (tenant): its data is isolated from every other application's.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AppRecord {
    /// Application id (32 lowercase hex characters), `iss = "virgil-" + app_id` in its JWTs.
    pub app_id: String,
    /// Human-readable name.
    pub name: String,
    /// Creation time, Unix seconds.
    pub created_at: i64,
}

/// An application's API key: verifies the JWTs the application's backend mints.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct AppKeyRecord {
    /// Key id, the JWT header's `kid`. Unique across all applications.
    pub key_id: String,
    /// The application the key belongs to.
    pub app_id: String,
    /// The public key, SubjectPublicKeyInfo DER (the private key is never stored).
    pub public_key: Vec<u8>,
    /// Creation time, Unix seconds.
    pub created_at: i64,
    /// When the key was revoked, Unix seconds; tokens signed by it are then rejected.
    pub revoked_at: Option<i64>,
}

/// A card to publish.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewCard {
    /// Card id: 64 lowercase hex characters (SHA-512 of the snapshot, first 32 bytes).
    pub id: String,
    /// Owning application.
    pub app_id: String,
    /// The card's identity (equals the publisher's JWT identity).
    pub identity: Identity,
    /// The card this one replaces (key rotation), if any.
    pub previous_card_id: Option<String>,
    /// The complete card as served to clients (RawSignedModel JSON, the service signature
    /// included); stored and returned byte for byte.
    pub raw: Vec<u8>,
    /// `created_at` from the snapshot, Unix seconds.
    pub created_at: i64,
}

/// A stored card.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct CardRecord {
    /// Card id (64 lowercase hex characters).
    pub id: String,
    /// Owning application.
    pub app_id: String,
    /// The card's identity.
    #[sqlx(try_from = "String")]
    pub identity: Identity,
    /// The card it replaced, if any.
    pub previous_card_id: Option<String>,
    /// The card that replaced this one, if any.
    pub superseded_by: Option<String>,
    /// Whether the owner revoked it.
    pub revoked: bool,
    /// The RawSignedModel JSON exactly as published (plus the service signature).
    pub raw: Vec<u8>,
    /// `created_at` from the snapshot.
    pub created_at: i64,
}

impl CardRecord {
    /// Superseded or revoked: `X-Virgil-Is-Superseeded: true` on `GET /card/v5/{id}`.
    pub fn is_outdated(&self) -> bool {
        self.revoked || self.superseded_by.is_some()
    }
}

/// Everything the service stores, one sub-trait per domain. Implementations must be safe to
/// share between tasks and, for PostgreSQL, between processes: all invariants are enforced
/// inside the database transaction of the method that writes. Every type that implements the
/// five domain traits is a `Store`.
pub trait Store:
    AppStore
    + CardStore
    + KeyknoxStore
    + RateLimitStore
    + ChatStore
    + ChatBlobStore
    + KtStore
    + PfsStore
    + HookStore
    + Send
    + Sync
    + 'static
{
}

impl<T> Store for T where
    T: AppStore
        + CardStore
        + KeyknoxStore
        + RateLimitStore
        + ChatStore
        + ChatBlobStore
        + KtStore
        + PfsStore
        + HookStore
        + Send
        + Sync
        + 'static
{
}

/// Most cards a search returns per identity: the current card and up to seven predecessors.
/// e3kit walks a card's `previousCard` chain to verify messages signed before a rotation, so
/// the chain is kept, but bounded: a client rotating in a loop cannot make every search of its
/// identity return thousands of cards. Messages signed by an older key than this no longer
/// verify through the search (documented in docs/security.md).
pub const MAX_CHAIN_CARDS: usize = 8;

/// Applications, their API keys and per-deployment settings, part of [`Store`].
#[async_trait]
pub trait AppStore: Send + Sync {
    /// Creates an application with its first API key. `Conflict` if the app id or key id exists.
    async fn create_app(&self, app: AppRecord, key: AppKeyRecord) -> StoreResult<()>;

    /// All applications, oldest first.
    async fn list_apps(&self) -> StoreResult<Vec<AppRecord>>;

    /// The API keys of one application, oldest first (revoked ones included).
    async fn app_keys(&self, app_id: &str) -> StoreResult<Vec<AppKeyRecord>>;

    /// Looks up an API key by its id (the JWT `kid`), revoked or not.
    async fn app_key(&self, key_id: &str) -> StoreResult<Option<AppKeyRecord>>;

    /// Adds another API key to an existing application (`NotFound` if the app does not exist,
    /// `Conflict` if the key id exists).
    async fn add_app_key(&self, key: AppKeyRecord) -> StoreResult<()>;

    /// Revokes an API key at time `at`. `NotFound` if it does not exist; revoking twice keeps the
    /// first time.
    async fn revoke_app_key(&self, key_id: &str, at: i64) -> StoreResult<()>;

    /// Returns the value stored under `name`, storing `value` first if there is none. Used for
    /// per-deployment secrets (the service's card-signing key) that every replica must share:
    /// concurrent callers all get the same, first-written value.
    async fn setting_or_insert(&self, name: &str, value: &[u8]) -> StoreResult<Vec<u8>>;
}

/// The card directory, part of [`Store`].
#[async_trait]
pub trait CardStore: Send + Sync {
    /// Whether other server processes may change cards in this store while this one runs (the
    /// replicas of a PostgreSQL deployment). Answers cached by one process are then not told of
    /// changes made through another.
    fn shared_with_other_processes(&self) -> bool;

    /// Publishes a card, atomically:
    /// * the id must be new (`Conflict(CardIdExists)`);
    /// * with `previous_card_id`: that card must be of the same app and identity, not revoked and
    ///   not yet superseded (else `Conflict(NotCurrentCard)`);
    ///   it becomes superseded by the new card;
    /// * without: the identity must have no current (non-superseded, non-revoked) card in this app
    ///   (`Conflict(IdentityHasCard)`), so concurrent first publishes have exactly
    ///   one winner.
    async fn publish_card(&self, card: NewCard) -> StoreResult<()>;

    /// The cards of the given identities in `app_id`: every current card (neither superseded nor
    /// revoked) plus its chain of predecessors, following `previous_card_id` while the predecessor
    /// exists and is not revoked. Unknown identities contribute nothing. Order is unspecified.
    async fn search_cards(
        &self,
        app_id: &str,
        identities: &[String],
    ) -> StoreResult<Vec<CardRecord>>;

    /// One card by id, in `app_id` only.
    async fn get_card(&self, app_id: &str, card_id: &str) -> StoreResult<Option<CardRecord>>;

    /// Revokes a card. `NotFound` if it is not a card of `app_id`; `Forbidden` if its identity is
    /// not `identity`. Revoking a revoked card succeeds again.
    async fn revoke_card(&self, app_id: &str, card_id: &str, identity: &str) -> StoreResult<()>;

    /// The card changes committed through every process on this database, for a store that is
    /// [shared with other processes](Self::shared_with_other_processes); `None` when this
    /// backend cannot announce them (the default) or need not (SQLite: every change goes
    /// through this process).
    ///
    /// The stream never ends. It yields [`CardChange::Resync`] first and again whenever changes
    /// may have been lost (a lost connection, once listening again), and about every
    /// `confirm_every` a [`CardChange::CaughtUp`] that bounds how far behind it is. Changes
    /// are numbered in commit order (see [`Self::last_card_change`]).
    async fn card_changes(
        &self,
        confirm_every: std::time::Duration,
    ) -> StoreResult<Option<CardChangeStream>> {
        let _ = confirm_every;
        Ok(None)
    }

    /// The number of the last card change committed through any process, where
    /// [`Self::card_changes`] numbers them (0 otherwise). A stream that yielded a change (or a
    /// [`CardChange::Resync`]) numbered at least this has yielded every change committed before
    /// this read began.
    async fn last_card_change(&self) -> StoreResult<u64> {
        Ok(0)
    }
}

/// What [`CardStore::card_changes`] yields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CardChange {
    /// A publish or revoke of `identity` in `app_id` committed (through any process).
    Changed {
        /// The application.
        app_id: String,
        /// The identity whose cards changed.
        identity: String,
        /// The change's number ([`CardStore::last_card_change`]); `None` from a process that
        /// does not number its changes.
        seq: Option<u64>,
    },
    /// Changes may have been missed until now (the stream is listening again): whatever was
    /// read from the store before this may be out of date. Every change numbered above `seq`
    /// will be yielded.
    Resync {
        /// [`CardStore::last_card_change`] read after listening again.
        seq: u64,
    },
    /// Every change committed before this instant has been yielded already.
    CaughtUp(std::time::Instant),
}

/// A stream of [`CardChange`]s.
pub type CardChangeStream = futures_util::stream::BoxStream<'static, CardChange>;

/// The hash of Keyknox storage that was never written (spec §4: a fixed "empty hash", here the
/// base64 of SHA-256 of nothing). Clients echo it back as the previous hash of a first push.
pub const KEYKNOX_EMPTY_HASH: &str = "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";

/// A Keyknox v1 blob (spec §4): one per (app, identity).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct KeyknoxV1 {
    /// Base64 text, opaque to the server (empty after a reset).
    pub meta: String,
    /// Base64 text, opaque to the server (empty after a reset).
    pub value: String,
    /// 1 for the first write, +1 for every write or reset.
    pub version: i64,
    /// Changes on every write; clients send it back as the previous hash.
    pub hash: String,
}

/// The address of a Keyknox v2 entry (spec §5.1); `owner` is the identity that pushed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyknoxAddress {
    /// Owning application.
    pub app_id: String,
    /// Identity of the entry's owner.
    pub owner: String,
    /// First path component (e.g. `e3kit`, `group-sessions`).
    pub root: String,
    /// Second path component.
    pub path: String,
    /// Entry key.
    pub key: String,
}

/// One recipient's copy of a Keyknox v2 entry, with the entry's recipients and hash.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyknoxV2Copy {
    /// Base64 text, opaque to the server.
    pub meta: String,
    /// Base64 text, opaque to the server.
    pub value: String,
    /// Every identity that holds a copy of the entry (sorted).
    pub identities: Vec<String>,
    /// The entry's hash.
    pub hash: String,
}

/// A Keyknox v2 push (spec §5.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyknoxV2Push {
    /// The entry, owned by the caller.
    pub address: KeyknoxAddress,
    /// The identities that receive this (meta, value) as their copy; others keep theirs. The
    /// blob is stored once however many identities receive it.
    pub identities: Vec<String>,
    /// Base64 text.
    pub meta: String,
    /// Base64 text.
    pub value: String,
    /// The hash the client last saw (`Virgil-Keyknox-Previous-Hash`).
    pub previous_hash: Option<String>,
    /// The entry's hash after this push.
    pub new_hash: String,
    /// Bytes of meta and value all entries of the owner may hold together, this push included
    /// (a push over it is refused with `Conflict(KeyknoxQuotaExceeded)` and changes nothing).
    pub owner_quota_bytes: u64,
}

/// What a Keyknox v2 reset removes (spec §5.5): the caller's entries, filtered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyknoxV2Reset {
    /// Owning application.
    pub app_id: String,
    /// The caller; only its own entries are touched.
    pub owner: String,
    /// Only entries under this root, if given.
    pub root: Option<String>,
    /// Only entries under this path, if given.
    pub path: Option<String>,
    /// Only this key, if given.
    pub key: Option<String>,
    /// Remove only this recipient's copy (entries left without copies disappear; hashes do not
    /// change); without it, whole entries are deleted.
    pub identity: Option<String>,
}

/// Keyknox storage, part of [`Store`] (spec §4, §5). Every write is one transaction with a
/// compare-and-swap on the hash, so concurrent writers on any replica: one wins, the others get
/// `Conflict(KeyknoxHashMismatch)`, and nothing is lost or torn.
#[async_trait]
pub trait KeyknoxStore: Send + Sync {
    /// The v1 blob of an identity, if it was ever written (a reset blob has empty meta/value).
    async fn keyknox_v1_get(&self, app_id: &str, identity: &str) -> StoreResult<Option<KeyknoxV1>>;

    /// Writes the v1 blob. When the stored value is non-empty, `previous_hash` must equal the
    /// stored hash; when it is empty or missing, `previous_hash` may be absent or equal to the
    /// current hash ([`KEYKNOX_EMPTY_HASH`] when missing). Otherwise
    /// `Conflict(KeyknoxHashMismatch)`. Version: 1 on first write, else +1.
    async fn keyknox_v1_put(
        &self,
        app_id: &str,
        identity: &str,
        meta: &str,
        value: &str,
        previous_hash: Option<&str>,
        new_hash: &str,
    ) -> StoreResult<KeyknoxV1>;

    /// Empties the v1 blob (version +1, hash `new_hash`). A never-written blob is not created:
    /// the result is version 1 with the empty hash.
    async fn keyknox_v1_reset(
        &self,
        app_id: &str,
        identity: &str,
        new_hash: &str,
    ) -> StoreResult<KeyknoxV1>;

    /// Pushes a v2 entry: if it exists, `previous_hash` must equal its hash (a missing header is a
    /// mismatch); if not, `previous_hash` may be absent or [`KEYKNOX_EMPTY_HASH`]. Writes the copy of
    /// every listed identity (others untouched) and sets the hash. Returns the pusher's view: the
    /// pushed meta/value, all copy holders, the new hash.
    async fn keyknox_v2_push(&self, push: KeyknoxV2Push) -> StoreResult<KeyknoxV2Copy>;

    /// The copy of `reader` in the entry at `address`, if both exist.
    async fn keyknox_v2_pull(
        &self,
        address: &KeyknoxAddress,
        reader: &str,
    ) -> StoreResult<Option<KeyknoxV2Copy>>;

    /// Keys of the entries of `owner` under (root, path) in which `reader` holds a copy.
    async fn keyknox_v2_keys(
        &self,
        app_id: &str,
        owner: &str,
        root: &str,
        path: &str,
        reader: &str,
    ) -> StoreResult<Vec<String>>;

    /// Removes entries or copies of the caller (see [`KeyknoxV2Reset`]).
    async fn keyknox_v2_reset(&self, reset: KeyknoxV2Reset) -> StoreResult<()>;
}

/// Limits the rate of an action per key (brainkey requests per identity), with a token bucket
/// kept in the database so that every replica shares it.
#[async_trait]
pub trait RateLimitStore: Send + Sync {
    /// Takes one token from the bucket `key` (capacity `burst`, refilled at `per_second`) at time
    /// `now_ms` (Unix milliseconds). True when a token was available.
    async fn rate_limit_take(
        &self,
        key: &str,
        now_ms: i64,
        burst: u32,
        per_second: f64,
    ) -> StoreResult<bool>;

    /// Deletes the buckets last touched before `before_ms`; returns how many. A bucket left
    /// alone long enough to be full again means the same as no bucket, so the server prunes
    /// those and the table holds only recently active callers.
    async fn rate_limit_prune(&self, before_ms: i64) -> StoreResult<u64>;
}

/// A chat channel (see `sealkit_proto::chat`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRecord {
    /// Owning application.
    pub app_id: String,
    /// Channel id, unique per application.
    pub id: ChannelId,
    /// `"direct"` or `"group"`.
    pub kind: String,
    /// Whether users may add themselves.
    pub open: bool,
    /// Creator's identity.
    pub created_by: Identity,
    /// Creation time, Unix milliseconds.
    pub created_at_ms: i64,
    /// Admins, sorted.
    pub admins: Vec<Identity>,
    /// Members, sorted (admins included).
    pub members: Vec<Identity>,
    /// Bumped (+1) by every membership change that changes something; 1 at creation.
    pub member_version: i64,
    /// Newest message's `seq`, 0 when none.
    pub last_seq: i64,
    /// Each member's read horizon (the highest `seq` it marked read, see
    /// [`ChatStore::chat_mark_read`]), sorted by identity. Empty in records that are not read
    /// from the store (a channel about to be created).
    pub read: Vec<(Identity, i64)>,
}

impl ChannelRecord {
    /// `identity`'s read horizon, when it is a member the store reported horizons for.
    pub fn read_seq(&self, identity: &str) -> Option<i64> {
        self.read
            .iter()
            .find(|(member, _)| member.as_str() == identity)
            .map(|(_, seq)| *seq)
    }
}

/// The outcome of [`ChatStore::chat_mark_read`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadMark {
    /// The member's horizon after the call (the asked `seq`, or a higher one stored before).
    pub seq: i64,
    /// The channel's `last_seq` when it was read.
    pub last_seq: i64,
    /// Whether the horizon moved (and [`ChatEvent::Read`] was emitted).
    pub moved: bool,
}

/// A message to store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewChatMessage {
    /// Owning application.
    pub app_id: String,
    /// Channel id.
    pub channel_id: ChannelId,
    /// Sender identity (from the JWT).
    pub sender: Identity,
    /// The sender's idempotency id.
    pub client_id: String,
    /// The encrypted message bytes (opaque).
    pub ciphertext: Vec<u8>,
    /// The membership version the sender encrypted for.
    pub member_version: i64,
    /// Server time, Unix milliseconds.
    pub sent_at_ms: i64,
    /// The sender's key-directory head (JSON), stored as posted (gossip).
    pub kt_head: Option<String>,
    /// Blob ids the message names ([`ChatBlobStore`]): each becomes the message's in the
    /// posting transaction, or the post fails with `Conflict(BlobUnusable)`.
    pub blobs: Vec<String>,
}

/// A stored message.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct ChatMessageRecord {
    /// Channel id.
    #[sqlx(try_from = "String")]
    pub channel_id: ChannelId,
    /// 1, 2, 3, ... per channel, in commit order, without gaps.
    pub seq: i64,
    /// Sender identity.
    #[sqlx(try_from = "String")]
    pub sender: Identity,
    /// The sender's idempotency id.
    pub client_id: String,
    /// The encrypted bytes.
    pub ciphertext: Vec<u8>,
    /// Membership version it was encrypted for.
    pub member_version: i64,
    /// Server time, Unix milliseconds.
    pub sent_at_ms: i64,
    /// The sender's key-directory head (JSON), as posted (or as sent with the latest edit).
    pub kt_head: Option<String>,
    /// When the sender last edited it, Unix milliseconds.
    pub edited_at_ms: Option<i64>,
    /// When it was deleted, Unix milliseconds; `ciphertext` is then empty.
    pub deleted_at_ms: Option<i64>,
    /// Who deleted it (the sender or an admin of the channel).
    pub deleted_by: Option<String>,
}

/// A sender's new version of a stored message ([`ChatStore::chat_edit_message`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageEdit {
    /// Owning application.
    pub app_id: String,
    /// Channel id.
    pub channel_id: ChannelId,
    /// The message's `seq`.
    pub seq: i64,
    /// Who edits (from the JWT): must be the message's sender.
    pub editor: Identity,
    /// The new encrypted bytes (opaque), replacing the stored ones.
    pub ciphertext: Vec<u8>,
    /// The membership version the new ciphertext was encrypted for: must be current.
    pub member_version: i64,
    /// Server time, Unix milliseconds.
    pub edited_at_ms: i64,
    /// The editor's key-directory head (JSON), replacing the stored one.
    pub kt_head: Option<String>,
}

/// The outcome of [`ChatStore::chat_post`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Posted {
    /// Stored now with a new `seq`.
    New(ChatMessageRecord),
    /// The sender had already posted this `client_id` to the channel: the stored message.
    Duplicate(ChatMessageRecord),
}

/// Which history page [`ChatStore::chat_history`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HistoryCursor {
    /// The oldest `limit` messages with `seq > n`, ascending.
    After(i64),
    /// The newest `limit` messages with `seq < n`, ascending.
    Before(i64),
    /// The newest `limit` messages, ascending.
    Latest,
}

/// A change other replicas must hear about, delivered by [`ChatStore::chat_events`] to every
/// server process on the database (the one that made the change included).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChatEvent {
    /// A message with this `seq` was committed.
    Message {
        /// Application.
        app_id: String,
        /// Channel id.
        channel_id: String,
        /// Its `seq`.
        seq: i64,
    },
    /// Membership changed (now at `member_version`).
    Members {
        /// Application.
        app_id: String,
        /// Channel id.
        channel_id: String,
        /// The new version.
        member_version: i64,
    },
    /// A member's read horizon moved forward (now at `seq`).
    Read {
        /// Application.
        app_id: String,
        /// Channel id.
        channel_id: String,
        /// The member.
        identity: String,
        /// The new horizon.
        seq: i64,
    },
    /// The message with this `seq` was edited or deleted (its stored state is the news).
    Revised {
        /// Application.
        app_id: String,
        /// Channel id.
        channel_id: String,
        /// Its `seq`.
        seq: i64,
    },
    /// A member is typing: ephemeral, never stored, only relayed to live subscribers.
    Typing {
        /// Application.
        app_id: String,
        /// Channel id.
        channel_id: String,
        /// The member.
        identity: String,
    },
    /// Events may have been missed (the listener reconnected): every subscriber must re-read
    /// its channels from the store.
    Resync,
}

impl ChatEvent {
    /// The application the event belongs to (`None` for [`ChatEvent::Resync`]).
    pub fn app_id(&self) -> Option<&str> {
        match self {
            Self::Message { app_id, .. }
            | Self::Members { app_id, .. }
            | Self::Read { app_id, .. }
            | Self::Revised { app_id, .. }
            | Self::Typing { app_id, .. } => Some(app_id),
            Self::Resync => None,
        }
    }
}

/// A stream of [`ChatEvent`]s.
pub type ChatEventStream = futures_util::stream::BoxStream<'static, ChatEvent>;

/// Chat storage, part of [`Store`]. Every write is one transaction; membership rules that need
/// the channel's current state (sender is a member, `member_version` is current, direct channels
/// stay two) are checked inside it so concurrent replicas cannot break them.
#[async_trait]
pub trait ChatStore: Send + Sync {
    /// Creates a channel (`member_version` 1, `last_seq` 0). `Conflict(ChannelExists)` if the
    /// id is taken in the app; `Conflict(TooManyChannels)` if its creator already created
    /// `per_creator` channels in the app (checked in the creating transaction, so concurrent
    /// creations on any replica never exceed it).
    async fn chat_create_channel(
        &self,
        channel: ChannelRecord,
        per_creator: u32,
    ) -> StoreResult<()>;

    /// One channel.
    async fn chat_channel(
        &self,
        app_id: &str,
        channel_id: &str,
    ) -> StoreResult<Option<ChannelRecord>>;

    /// The channels `identity` is a member of, by id in byte order: at most `limit`, those
    /// whose id is greater than `after` when it is given (the next page).
    async fn chat_channels_of(
        &self,
        app_id: &str,
        identity: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ChannelRecord>>;

    /// Adds `identity` (as admin when `admin`); `NotFound` for no channel,
    /// `Conflict(ChannelFull)` beyond `sealkit_proto::chat::MAX_MEMBERS`. Adding a member
    /// again changes nothing (version unchanged) unless it promotes to admin. Emits
    /// [`ChatEvent::Members`] when the version changed. Returns the channel after the change.
    async fn chat_add_member(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
        admin: bool,
    ) -> StoreResult<ChannelRecord>;

    /// Removes `identity` (member and admin rights). `NotFound` for no channel or no such
    /// member; `Conflict(LastAdmin)` when it is the only admin of a group channel and other
    /// members remain (either member of a direct channel may leave it). Emits [`ChatEvent::Members`]. Returns the channel after the change.
    async fn chat_remove_member(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
    ) -> StoreResult<ChannelRecord>;

    /// Stores a message, atomically: `NotFound` for no channel; `Forbidden(NotAMember)`
    /// unless the sender is a member; a (channel, sender, client_id) already stored returns
    /// [`Posted::Duplicate`] with the stored message (before the version check, so a retry of
    /// a stored message succeeds); `Conflict(StaleMemberVersion)` (with the current version) unless `member_version`
    /// is current; else `seq = last_seq + 1`, emitting [`ChatEvent::Message`] on commit. A new
    /// message also moves the sender's read horizon to its `seq`.
    async fn chat_post(&self, message: NewChatMessage) -> StoreResult<Posted>;

    /// A page of a channel's messages (see [`HistoryCursor`]), ascending by `seq`.
    async fn chat_history(
        &self,
        app_id: &str,
        channel_id: &str,
        cursor: HistoryCursor,
        limit: u32,
    ) -> StoreResult<Vec<ChatMessageRecord>>;

    /// Subscribes to the events of every replica, from now on. SQLite: in-process; PostgreSQL:
    /// `LISTEN`/`NOTIFY` (the notification is sent in the writing transaction, so it arrives only
    /// if the write committed), reconnecting after a connection loss and then yielding
    /// [`ChatEvent::Resync`].
    async fn chat_events(&self) -> StoreResult<ChatEventStream>;

    /// Moves `identity`'s read horizon in the channel forward to `seq` (never back: a lower or
    /// equal `seq` changes nothing), emitting [`ChatEvent::Read`] on commit when it moved.
    /// `NotFound` for no channel; `Forbidden(NotAMember)` unless `identity` is a member;
    /// `Conflict(ReadBeyondLastSeq)` when `seq` is above the channel's `last_seq`. (Posting
    /// moves the sender's horizon to the new `seq` by itself, without an event; a member added
    /// later starts at the channel's `last_seq` then.)
    async fn chat_mark_read(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
        seq: i64,
    ) -> StoreResult<ReadMark>;

    /// Announces that `identity` is typing in the channel: emits [`ChatEvent::Typing`] to every
    /// replica and writes nothing. The caller checked the membership and the rate.
    async fn chat_typing(&self, app_id: &str, channel_id: &str, identity: &str) -> StoreResult<()>;

    /// Replaces a message's ciphertext (and gossiped head) with its sender's new version, in
    /// the channel's transaction: `NotFound` for no channel; `Forbidden(NotAMember)` unless
    /// the editor is a member; `Conflict(NoSuchMessage)` for a `seq` the channel has no message
    /// for; `Forbidden(NotTheSender)` unless the editor sent it; `Conflict(MessageDeleted)`
    /// for a tombstone; `Conflict(StaleMemberVersion)` unless `member_version` is current.
    /// Records the edit time and the new `member_version`, emits [`ChatEvent::Revised`] on
    /// commit and returns the message as stored.
    async fn chat_edit_message(&self, edit: MessageEdit) -> StoreResult<ChatMessageRecord>;

    /// Deletes a message: its ciphertext and gossiped head are removed from the row (not
    /// hidden), which stays as a tombstone with the time and who deleted it, so the channel's
    /// seqs keep no gaps. `NotFound` for no channel; `Forbidden(NotAMember)` unless `deleter`
    /// is a member; `Conflict(NoSuchMessage)` for a `seq` the channel has no message for;
    /// `Forbidden(NotTheSenderOrAdmin)` unless `deleter` sent it or is an admin. Deleting a
    /// tombstone again changes nothing and returns it; otherwise emits [`ChatEvent::Revised`]
    /// on commit. Returns the tombstone.
    async fn chat_delete_message(
        &self,
        app_id: &str,
        channel_id: &str,
        seq: i64,
        deleter: &str,
        at_ms: i64,
    ) -> StoreResult<ChatMessageRecord>;
}

/// A blob to create ([`ChatBlobStore::chat_blob_create`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewBlob {
    /// Owning application.
    pub app_id: String,
    /// Blob id (32 lowercase hex digits, random).
    pub id: String,
    /// The channel it was uploaded to.
    pub channel_id: ChannelId,
    /// Who uploads it; only they may name it in a message.
    pub uploader: Identity,
    /// Server time, Unix milliseconds.
    pub created_at_ms: i64,
}

/// A stored blob (without its bytes).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct BlobRecord {
    /// Blob id.
    pub id: String,
    /// The channel it was uploaded to.
    #[sqlx(try_from = "String")]
    pub channel_id: ChannelId,
    /// Who uploaded it.
    #[sqlx(try_from = "String")]
    pub uploader: Identity,
    /// Bytes stored so far (all of it once complete).
    pub size: i64,
    /// Chunks stored so far, numbered `0..chunks`.
    pub chunks: i64,
    /// Whether the upload finished ([`ChatBlobStore::chat_blob_finish`]).
    pub complete: bool,
    /// The message that names it, once one does.
    pub message_seq: Option<i64>,
    /// Server time of the upload's start, Unix milliseconds.
    pub created_at_ms: i64,
}

/// The limits a chunk is checked against ([`ChatBlobStore::chat_blob_append`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlobLimits {
    /// Most bytes one blob may hold.
    pub max_blob_bytes: u64,
    /// Most bytes the application's blobs may hold together (complete or not).
    pub app_quota_bytes: u64,
}

/// Chat attachments, part of [`Store`]: encrypted files (opaque bytes) uploaded to a channel
/// in numbered chunks, named by at most one message, deleted with it or, when no message names
/// them, after a grace period. The bytes live in the database, so every replica of a
/// PostgreSQL deployment serves every blob, and neither an upload nor a download holds a whole
/// blob in memory. Each application's blobs count against its quota in one usage row that
/// every chunk changes with one conditional update, so concurrent uploads on any replica
/// never exceed it together.
#[async_trait]
pub trait ChatBlobStore: Send + Sync {
    /// Starts an empty, incomplete blob. `NotFound` for no such channel;
    /// `Forbidden(NotAMember)` unless the uploader is a member; `Conflict(BlobUnusable)` for
    /// an id that exists (random ids do not collide).
    async fn chat_blob_create(&self, blob: NewBlob) -> StoreResult<()>;

    /// Appends the next chunk, atomically: `NotFound` for no such blob;
    /// `Conflict(BlobComplete)` once finished; `Conflict(BlobTooLarge)` when the blob would
    /// exceed `limits.max_blob_bytes`; `Conflict(BlobQuotaExceeded)` when the application's
    /// blobs would exceed `limits.app_quota_bytes`. Nothing is written on a refusal. Returns
    /// the blob's size after the chunk.
    async fn chat_blob_append(
        &self,
        app_id: &str,
        blob_id: &str,
        data: &[u8],
        limits: BlobLimits,
    ) -> StoreResult<u64>;

    /// Marks the blob complete (finishing twice is not an error) and returns it. `NotFound`
    /// for no such blob.
    async fn chat_blob_finish(&self, app_id: &str, blob_id: &str) -> StoreResult<BlobRecord>;

    /// One blob of the application, if it exists (complete or not).
    async fn chat_blob(&self, app_id: &str, blob_id: &str) -> StoreResult<Option<BlobRecord>>;

    /// Chunk `index` of a blob, if both exist.
    async fn chat_blob_chunk(
        &self,
        app_id: &str,
        blob_id: &str,
        index: i64,
    ) -> StoreResult<Option<Vec<u8>>>;

    /// Deletes one blob with its chunks, giving its bytes back to the quota (an upload that
    /// failed). Deleting nothing succeeds; returns whether a blob was deleted.
    async fn chat_blob_delete(&self, app_id: &str, blob_id: &str) -> StoreResult<bool>;

    /// Deletes every blob the message `seq` of the channel names, with their chunks, giving
    /// their bytes back to the quota; returns how many. [`ChatStore::chat_delete_message`]
    /// does the same in the transaction of the deletion.
    async fn chat_delete_message_blobs(
        &self,
        app_id: &str,
        channel_id: &str,
        seq: i64,
    ) -> StoreResult<u64>;

    /// Deletes the blobs, of every application, that no message names and whose upload started
    /// before `created_before_ms` (abandoned uploads, uploads never posted); returns how many.
    /// A blob a message names meanwhile is kept.
    async fn chat_blob_gc(&self, created_before_ms: i64) -> StoreResult<u64>;

    /// Bytes the application's blobs hold (complete or not), as counted against its quota.
    async fn chat_blob_usage(&self, app_id: &str) -> StoreResult<u64>;
}

impl std::fmt::Debug for dyn Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Store")
    }
}

/// One version of an identity's entry in an application's key-transparency directory (AKD's
/// value state).
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct KtValueRecord {
    /// The identity's directory label.
    pub label: Vec<u8>,
    /// The epoch the version was published in.
    pub epoch: i64,
    /// The version (1, 2, ...).
    pub version: i64,
    /// The VRF-derived tree label of this version (AKD's `NodeLabel`: 32 bytes, then the bit
    /// length as 4 bytes big-endian).
    pub node_label: Vec<u8>,
    /// The committed value.
    pub value: Vec<u8>,
}

/// An identity whose cards changed since its directory entry was last published.
#[derive(Clone, Debug, PartialEq, Eq, sqlx::FromRow)]
pub struct KtPending {
    /// The application.
    pub app_id: String,
    /// The identity.
    pub identity: String,
    /// Grows with every change; [`KtStore::kt_clear_pending`] removes the row only if it has not
    /// changed since it was read.
    pub seq: i64,
}

/// The key-transparency directories (one per application), part of [`Store`]: AKD's records as
/// opaque key-value rows, the versions of each identity's entry, each epoch's root hash, and the
/// queue of identities whose cards changed. [`CardStore::publish_card`] and
/// [`CardStore::revoke_card`] enqueue the identity themselves (in the card's transaction), so no
/// change can be missed.
#[async_trait]
pub trait KtStore: Send + Sync {
    /// The records with these ids (AKD binary ids) in `app_id`'s directory, as `(id, data)`;
    /// ids without a record are left out. Order is unspecified.
    async fn kt_records(
        &self,
        app_id: &str,
        ids: &[Vec<u8>],
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Up to `limit` records of `app_id`'s directory whose ids sort after `after` (bytewise),
    /// as `(id, data)` in ascending id order: paging through the whole directory (the server
    /// fills its node cache this way, near the root first, since AKD's node ids begin with the
    /// label's length).
    async fn kt_records_after(
        &self,
        app_id: &str,
        after: &[u8],
        limit: u32,
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>>;

    /// Every version of one label's entry in `app_id`'s directory, oldest epoch first.
    async fn kt_values(&self, app_id: &str, label: &[u8]) -> StoreResult<Vec<KtValueRecord>>;

    /// Writes records (inserted or replaced by id) and value versions (inserted or replaced by
    /// label and epoch) of `app_id`'s directory, all in one transaction: readers on any replica
    /// see all of an epoch's writes or none. `epoch` is the epoch the write publishes (`None`
    /// for a write that is not a whole epoch); each record remembers it, for
    /// [`KtStore::kt_changed_ids`].
    async fn kt_write(
        &self,
        app_id: &str,
        epoch: Option<i64>,
        records: &[(Vec<u8>, Vec<u8>)],
        values: &[KtValueRecord],
    ) -> StoreResult<()>;

    /// The ids of `app_id`'s records last written by one of the epochs `after + 1 ..= upto`,
    /// at most `limit` of them, in no particular order. A record rewritten by an epoch after
    /// `upto` is left out, and so is one written without an epoch.
    async fn kt_changed_ids(
        &self,
        app_id: &str,
        after: i64,
        upto: i64,
        limit: u32,
    ) -> StoreResult<Vec<Vec<u8>>>;

    /// Stores the root hash of a published epoch. The first write of an epoch wins; writing
    /// the same epoch again is not an error.
    async fn kt_put_root(&self, app_id: &str, epoch: i64, root_hash: &[u8]) -> StoreResult<()>;

    /// The stored root hashes of `app_id`'s epochs `from..=to`, ascending, as `(epoch, root)`.
    async fn kt_roots(&self, app_id: &str, from: i64, to: i64) -> StoreResult<Vec<(i64, Vec<u8>)>>;

    /// Up to `limit` queued identities, of any application, oldest application first.
    async fn kt_pending(&self, limit: u32) -> StoreResult<Vec<KtPending>>;

    /// Removes queued identities that did not change again since they were read.
    async fn kt_clear_pending(&self, done: &[KtPending]) -> StoreResult<()>;

    /// The ids of an identity's current (neither superseded nor revoked) cards in `app_id`.
    async fn kt_current_card_ids(&self, app_id: &str, identity: &str) -> StoreResult<Vec<String>>;

    /// Whether this process may publish epochs: exactly one of the processes sharing a database
    /// gets `true` (PostgreSQL: a session advisory lock kept on a dedicated connection, retaken
    /// by someone else if that connection dies; SQLite: one process, always `true`). Asked
    /// again before every epoch.
    async fn kt_try_lead(&self) -> StoreResult<bool>;
}

/// The id of a ratchet key: SHA-512 of its 32 raw X25519 bytes, first 8 bytes
/// (`sealkit_proto::pfs::key_id`).
pub type PfsKeyId = [u8; 8];

/// A ratchet public key: its id and its bytes exactly as uploaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfsKey {
    /// The key's id.
    pub key_id: PfsKeyId,
    /// The key as uploaded (raw 32 bytes or SPKI DER), returned as is.
    pub public_key: Vec<u8>,
}

/// A long-term key whose signature the service verified against a card.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfsLongTermKey {
    /// The key.
    pub key: PfsKey,
    /// The Virgil signature over `key.public_key`, as uploaded.
    pub signature: Vec<u8>,
    /// The card whose key verified the signature. The upload is refused
    /// (`Conflict(PfsCardChanged)`) unless it is the card the identity's keys belong to after
    /// the upload.
    pub verified_with_card: String,
}

/// What [`PfsStore::pfs_upload`] writes for one identity, in this order of dependence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfsUpload {
    /// Owning application.
    pub app_id: String,
    /// The uploading identity.
    pub identity: String,
    /// The identity's card to record. A card id other than the recorded one removes the stored
    /// long-term and one-time keys first (they were made for the other card).
    pub card_id: Option<String>,
    /// A long-term key to replace the stored one; needs a card id (given or recorded), else
    /// `Conflict(PfsNoCard)`.
    pub long_term_key: Option<PfsLongTermKey>,
    /// One-time keys to add (distinct ids); need a long-term key (given or stored), else
    /// `Conflict(PfsNoLongTermKey)`. A key stored and unused already is kept as it is (a
    /// retried upload); one handed out before is refused (`Conflict(PfsOneTimeKeyUsed)`).
    pub one_time_keys: Vec<PfsKey>,
    /// The most unused one-time keys the identity may have after the upload, else
    /// `Conflict(PfsTooManyOneTimeKeys)` and nothing is written.
    pub max_one_time_keys: usize,
    /// Server time, Unix seconds.
    pub now: i64,
}

/// Which of the asked key ids [`PfsStore::pfs_validate`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PfsValidation {
    /// The asked long-term key id, when it is the stored long-term key.
    pub long_term_key_id: Option<PfsKeyId>,
    /// The asked one-time key ids that are stored and not handed out, in the order asked.
    pub one_time_key_ids: Vec<PfsKeyId>,
}

/// One identity's keys as [`PfsStore::pfs_pick`] hands them out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PfsKeySet {
    /// Whose keys.
    pub identity: String,
    /// The stored card (RawSignedModel JSON) whose key signed the long-term key: the
    /// identity's current card at the time of the pick.
    pub card_raw: Vec<u8>,
    /// The long-term key as uploaded.
    pub long_term_key: Vec<u8>,
    /// Its signature as uploaded.
    pub long_term_signature: Vec<u8>,
    /// One one-time key, removed from the store by this pick; `None` when none was left.
    pub one_time_key: Option<Vec<u8>>,
}

/// The ratchet key service's keys (`/pfs/v3/keys`), part of [`Store`]. Uploads of one identity
/// are serialized (SQLite: the write lock; PostgreSQL: its `pfs_identities` row lock), so the
/// order rules and the one-time key limit hold across replicas; a one-time key is handed out by
/// deleting it, so no two picks, on any replica, get the same key.
#[async_trait]
pub trait PfsStore: Send + Sync {
    /// The card id recorded for an identity, if any.
    async fn pfs_card_id(&self, app_id: &str, identity: &str) -> StoreResult<Option<String>>;

    /// Applies an upload atomically (see [`PfsUpload`]): all of it or, on a `Conflict`,
    /// nothing.
    async fn pfs_upload(&self, upload: PfsUpload) -> StoreResult<()>;

    /// Which of the given ids of `identity`'s keys are stored (see [`PfsValidation`]).
    async fn pfs_validate(
        &self,
        app_id: &str,
        identity: &str,
        long_term_key_id: Option<PfsKeyId>,
        one_time_key_ids: &[PfsKeyId],
    ) -> StoreResult<PfsValidation>;

    /// The keys of each identity, in the order given, each with its oldest unused one-time key,
    /// which is removed (its id kept as handed out) in the same transaction. Identities without
    /// a long-term key, or whose recorded card is no longer their current card (superseded,
    /// revoked), are left out and lose no one-time key.
    async fn pfs_pick(
        &self,
        app_id: &str,
        identities: &[String],
        now: i64,
    ) -> StoreResult<Vec<PfsKeySet>>;

    /// Removes everything stored for the identity: card id, long-term key, one-time keys and
    /// the ids of handed-out ones. Removing nothing succeeds.
    async fn pfs_delete(&self, app_id: &str, identity: &str) -> StoreResult<()>;
}

/// An application's push hook: where its events go and the secret that signs them.
#[derive(Clone, PartialEq, Eq)]
pub struct HookRecord {
    /// The application.
    pub app_id: String,
    /// The webhook URL (`http` or `https`).
    pub url: String,
    /// The HMAC-SHA256 secret (see `sealkit_proto::hooks`); stored in clear because the server
    /// signs with it.
    pub secret: String,
    /// When the hook was set, Unix seconds.
    pub created_at: i64,
}

impl std::fmt::Debug for HookRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookRecord")
            .field("app_id", &self.app_id)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// What [`HookStore::hook_backlog`] reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HookBacklog {
    /// Events queued and not yet delivered.
    pub queued: u64,
    /// The error of the most recent failed attempt among them, if any.
    pub last_error: Option<String>,
}

/// One claimed event of the outbox, with where and how to deliver it.
#[derive(Clone, PartialEq, Eq)]
pub struct HookDelivery {
    /// The outbox row id: the event's id, the same on every attempt.
    pub id: i64,
    /// The application.
    pub app_id: String,
    /// The hook's URL now (it may have changed since the event was queued).
    pub url: String,
    /// The hook's secret now.
    pub secret: String,
    /// The event as queued (`sealkit_proto::hooks::HookEvent` JSON, its `id` empty).
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: i64,
}

impl std::fmt::Debug for HookDelivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HookDelivery")
            .field("id", &self.id)
            .field("app_id", &self.app_id)
            .field("url", &self.url)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// Push hooks and their durable outbox, part of [`Store`]. Chat writes queue their event in
/// their own transaction (only for applications with a hook), so an event exists exactly when
/// its change committed. Delivery claims rows with a lease: a row claimed by a process that
/// dies is claimed again once the lease ends, and on PostgreSQL concurrent claimers skip each
/// other's rows (`FOR UPDATE SKIP LOCKED`), so each event goes to one replica at a time.
#[async_trait]
pub trait HookStore: Send + Sync {
    /// Sets (or replaces) the application's hook; `NotFound` if the application does not
    /// exist. Events queued before keep waiting and go to the new URL, signed with the new
    /// secret.
    async fn hook_set(&self, hook: HookRecord) -> StoreResult<()>;

    /// The application's hook, if any.
    async fn hook_get(&self, app_id: &str) -> StoreResult<Option<HookRecord>>;

    /// Removes the application's hook and every event still queued for it; whether there was
    /// one.
    async fn hook_remove(&self, app_id: &str) -> StoreResult<bool>;

    /// The application's events not yet delivered.
    async fn hook_backlog(&self, app_id: &str) -> StoreResult<HookBacklog>;

    /// Claims up to `limit` due events (next attempt at or before `now_ms`, not leased by
    /// another claim), oldest first, leasing them until `now_ms + lease_ms`: until then no
    /// other claim, on any replica, returns them.
    async fn hook_claim(
        &self,
        now_ms: i64,
        lease_ms: i64,
        limit: u32,
    ) -> StoreResult<Vec<HookDelivery>>;

    /// Removes a delivered event. Removing one that is gone is not an error.
    async fn hook_ack(&self, id: i64) -> StoreResult<()>;

    /// Records a failed attempt: the event is due again at `next_attempt_ms` (its lease
    /// released), or, with `None`, dropped for good. `error` is kept for `sealkit app hook
    /// show`.
    async fn hook_retry(
        &self,
        id: i64,
        next_attempt_ms: Option<i64>,
        error: &str,
    ) -> StoreResult<()>;
}
