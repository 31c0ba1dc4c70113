//! # sealkit
//!
//! The Sealkit client SDK: e3kit's end-to-end encryption API in async Rust. It talks to a
//! Sealkit server (`sealkit serve`) or any server that speaks the Virgil cards API, and its
//! messages are byte-compatible with e3kit's, so a Rust program and e3kit users (JS, Swift,
//! Kotlin) can exchange them through the same server.
//!
//! The flow is e3kit's: [`EThree::initialize`] with a token provider (your backend mints Virgil
//! JWTs), [`EThree::register`] once per user and device, [`EThree::find_users`] to get the
//! recipients' cards, then [`EThree::auth_encrypt`] / [`EThree::auth_decrypt`].
//!
//! ```no_run
//! use sealkit::{EThree, EThreeOptions};
//!
//! # async fn get_jwt_from_backend() -> Result<String, std::io::Error> { todo!() }
//! # async fn run() -> Result<(), sealkit::Error> {
//! let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit");
//! let alice = EThree::initialize(|| get_jwt_from_backend(), options).await?;
//! if !alice.has_local_private_key().await? {
//!     alice.register(None).await?;
//! }
//! let users = alice.find_users(&["bob", "carol"]).await?;
//! let recipients: Vec<_> = users.values().collect();
//! let message = alice.auth_encrypt_text("hello", &recipients).await?;
//!
//! // On Bob's side, with Alice's card from bob.find_user("alice"):
//! # let bob = alice.clone(); let alice_card = bob.find_user("alice").await?;
//! let text = bob.auth_decrypt_text(&message, &alice_card, None).await?;
//! # Ok(()) }
//! ```
//!
//! ## What is where
//! * [`EThree`]: the client. Own key: [`EThree::register`], [`EThree::rotate_private_key`],
//!   [`EThree::unregister`], [`EThree::cleanup`]. Users: [`EThree::find_users`] (server),
//!   [`EThree::find_cached_users`] (local), [`EThree::update_cached_users`]. Messages:
//!   [`EThree::auth_encrypt`] / [`EThree::auth_decrypt`] (bytes, `_text`, `_stream`, `_file`)
//!   and the legacy [`EThree::encrypt`] / [`EThree::decrypt`].
//! * Key backup (Keyknox + Pythia brainkey, e3kit's format): [`EThree::backup_private_key`],
//!   [`EThree::restore_private_key`], [`EThree::change_password`],
//!   [`EThree::reset_private_key_backup`], [`EThree::reset_private_key_backup_with_key_name`],
//!   [`EThree::derive_passwords`] (read its warning).
//! * Groups (e3kit's tickets in Keyknox v2): [`EThree::create_group`], [`EThree::load_group`],
//!   [`EThree::get_group`], [`EThree::delete_group`], and [`Group`] with `encrypt`, `decrypt`,
//!   `add`, `remove`, `re_add`, `update`.
//! * Ratchet channels (e3kit's double-ratchet channels, forward secrecy for 1:1 messages;
//!   [`EThreeOptions::enable_ratchet`]): [`EThree::create_ratchet_channel`],
//!   [`EThree::join_ratchet_channel`], [`EThree::get_ratchet_channel`],
//!   [`EThree::delete_ratchet_channel`], [`EThree::rotate_ratchet_keys`], and
//!   [`RatchetChannel`] with `encrypt` and `decrypt` (see `docs/forward-secrecy.md`).
//! * Chat (Sealkit's `/chat/v1`, not in e3kit): [`EThree::chat`] gives a [`Chat`] for channels,
//!   [`Chat::send`], [`Chat::history`] and the realtime [`chat::ChatStream`]; each message is
//!   encrypted for the channel's members of the moment (see [`chat`] for the security model).
//! * Safety numbers (Signal-style, not in e3kit): [`EThree::safety_number`],
//!   [`EThree::verify_safety_number`] pins a contact's key, after which a changed key is an
//!   [`Error::ContactKeyChanged`] on lookup and encryption until [`EThree::accept_change`];
//!   [`EThree::is_verified`], [`EThree::forget_verification`].
//! * Key transparency (not in e3kit; [`transparency`]): every card is checked against the
//!   server's verifiable key directory when the server serves one ([`KtMode`]); a failure is
//!   [`Error::KeyTransparency`]. [`EThree::monitor_key_history`] lists the user's own key
//!   versions and which of them this device did not make; [`audit_directory`] checks that a
//!   directory only grows.
//! * [`Card`]: a verified user card with its predecessor chain (spec §3.1).
//! * [`TokenProvider`]: where tokens come from; cached until 5 s before expiry and refreshed on
//!   HTTP 401 / code 20304 (spec §1.2).
//! * [`Error`]: e3kit's errors as one `#[non_exhaustive]` enum.
//!
//! ## Local storage
//! The storage directory ([`EThreeOptions::new`]) holds `keys/`, one private key file per
//! identity (mode 0600, e3kit-node's key entry format: JSON with the base64 DER key), and
//! `cards.sqlite3`, the card cache that lets encryption work while the server is unreachable,
//! and the group tickets (each encrypted for the user's key), and the pinned keys of verified
//! contacts (kept by [`EThree::cleanup`], as they cannot be fetched again), the
//! key-transparency state: the pinned KT signing key and the last accepted directory head per
//! server and application, and the public keys and cards of the user's own keys (also kept),
//! and with ratchet channels enabled their long-term and one-time private keys and sessions
//! (each encrypted for the user's key, deleted with it).
//!
//! ## Differences from e3kit
//! * Server requests have a timeout ([`EThreeOptions::request_timeout`]) and fail with
//!   [`Error::Network`] rather than hanging.
//! * On an expired-token answer the provider is asked for a new token; e3kit's caching provider
//!   re-sends the cached one unless it expires within 5 s.
//! * Cards are always verified (self signature), also with a custom API URL, where e3kit
//!   verifies none.
//! * Overlapping `register`/`rotate_private_key`/`unregister` calls wait for each other instead
//!   of failing.
//! * `auth_decrypt_stream` never releases unverified plaintext (see [`FileStage`]).
//! * `change_password` reports [`Error::PrivateKeyNoBackup`] when there is nothing to
//!   re-encrypt (e3kit does nothing), and a wrong password for a named backup is
//!   [`Error::WrongKeyknoxPassword`] everywhere (e3kit throws a raw crypto error in
//!   `backupPrivateKey(pwd, keyName)` and `restorePrivateKey(pwd, keyName)`).
//! * Group errors are one variant, [`Error::Group`], with e3kit's [`GroupErrorCode`]s; e3kit's
//!   swapped `NoAccess` / `RemoteGroupNotFound` messages are not reproduced (no copy of the
//!   tickets for this user is always `NoAccess`).
//!
//! Section numbers (spec §N) refer to `virgil-services-api.md`.

#![forbid(unsafe_code)]

mod api;
mod backup;
mod card;
pub mod chat;
mod error;
mod ethree;
mod group;
mod keystore;
mod local;
mod options;
mod ratchet;
mod stream;
mod token;
pub mod transparency;
mod verify;

pub use backup::DerivedPasswords;
pub use card::Card;
pub use chat::Chat;
pub use error::{BoxError, Error, GroupErrorCode, Result};
pub use ethree::{EThree, MAX_IDENTITIES_PER_SEARCH};
pub use group::{Group, MAX_GROUP_PARTICIPANTS};
pub use options::{
    BrainkeyVersion, EThreeOptions, ForeignKeyCallback, KeyChangedCallback, KeyStorage,
    DEFAULT_KEY_ROTATION_INTERVAL, DEFAULT_REQUEST_TIMEOUT,
};
pub use ratchet::{
    RatchetChannel, RatchetRotation, DEFAULT_RATCHET_CHANNEL, ORPHANED_ONE_TIME_KEY_TTL,
    OUTDATED_LONG_TERM_KEY_TTL, RATCHET_LONG_TERM_KEY_TTL, RATCHET_ONE_TIME_KEYS,
};
/// The double-ratchet sessions under [`RatchetChannel`] (its errors are [`Error::Ratchet`]).
pub use sealkit_ratchet;
pub use stream::FileStage;
pub use token::{BoxFuture, TokenProvider, TOKEN_EXPIRATION_MARGIN_SECS};
pub use transparency::{
    audit_directory, AuditReport, AuditState, KeyHistory, KeyVersion, KeyVersionOrigin, KtFailure,
    KtMode, VersionCard,
};

pub use sealkit_crypto::{KeyType, PrivateKey, PublicKey, SafetyNumber, Stage};
pub use sealkit_proto::{CardError, CardId, JwtError, RawSignedModel};
