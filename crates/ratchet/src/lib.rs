//! Double-ratchet sessions byte-compatible with Virgil's `libvsc_ratchet` (virgil-crypto-c
//! `library/ratchet`, as shipped in PyPI `virgil-crypto-lib` 0.23.1), the protocol of e3kit's
//! ratchet channels (e3kit-x, e3kit-kotlin with virgil-ratchet-x/-kotlin).
//!
//! Pure and synchronous: no I/O, no clock, the random generator is a parameter.
//!
//! # What is compatible
//!
//! * **Session start** ([`Session::initiate`], [`Session::respond`]): the library's X3DH variant.
//!   The shared key is HKDF-SHA512 (no salt, info `VIRGIL_RATCHET_KDF_ROOT_INFO`) of
//!   DH(IKa, LTb) ‖ DH(EKa, IKb) ‖ DH(EKa, LTb) [‖ DH(EKa, OTb)]. Identity keys are Ed25519 card
//!   keys converted to X25519 as the library converts them (private: first half of
//!   SHA-512(seed); public: Montgomery u of the Edwards point), or X25519 keys. Long-term and
//!   one-time keys are X25519.
//! * **Ratchet**: DH ratchet steps with HKDF-SHA512 (salt = root key, the library's 31-byte
//!   ratchet info), chain and message keys by HMAC-SHA512 with seeds 0x02 and 0x01, message
//!   cipher AES-256-GCM with key and nonce from HKDF-SHA512 (info
//!   `VIRGIL_RATCHET_KDF_CIPHER_INFO\0`) of the message key, the serialized header as associated
//!   data, and the library's padding (to a multiple of 160 bytes, random filler, length as a
//!   little-endian u32 at the end).
//! * **Messages** ([`Message`]): the `vscr_Message` protobuf (version 2), regular and prekey,
//!   byte for byte. [`Message::decode`] never panics.
//! * **Limits**: plaintext ≤ [`MAX_PLAIN_TEXT_LEN`] (30000) bytes; a message at most
//!   [`MAX_MESSAGE_GAP`] (2000) positions ahead of its chain, else
//!   [`Error::TooManyLostMessages`]; at most [`MAX_SKIPPED_MESSAGES`] (200) skipped-message keys
//!   per chain and [`MAX_SKIPPED_CHAINS`] (5) chains, the oldest evicted first, as in the C
//!   library (an evicted message fails with [`Error::SkippedMessageMissing`]).
//! * **Session state** ([`Session::serialize`], [`Session::deserialize`]): the library's own
//!   `vscr_Session` protobuf (version 2), so a session saved by either side can be continued by
//!   the other. The interop tests do exactly that in both directions.
//!
//! # What is not
//!
//! * The post-quantum variant (Round5 + Falcon, `enable_post_quantum`): messages and sessions
//!   that carry post-quantum fields are refused with [`Error::PostQuantumUnsupported`]. e3kit's
//!   `enableRatchetPqc` defaults to false.
//! * Group ratchet sessions (`vscr_ratchet_group_session`).
//! * Key ids are not computed or checked by the session (as in the C library, the caller passes
//!   them in); [`KeyId::of_public_key`] gives the usual first 8 bytes of SHA-512.
//! * Deliberate differences in failure handling: a failed [`Session::decrypt`] leaves the
//!   session unchanged (the C library may keep part of the update); Ed25519 public keys that
//!   are not curve points are refused ([`Error::InvalidKey`]) where the C library maps any 32
//!   bytes; when a new chain of the peer announces that its previous chain was more than
//!   [`MAX_MESSAGE_GAP`] messages longer than what arrived, no skipped keys are stored for that
//!   previous chain (the C library computes them all, which an attacker can make take hours); a
//!   peer that reuses an old ratchet key gets [`Error::InvalidKey`] (the C library aborts).
//!
//! # Example
//!
//! ```
//! use sealkit_ratchet::{IdentityPrivateKey, IdentityPublicKey, KeyId, ResponderKeys, Session};
//! use x25519_dalek::{PublicKey, StaticSecret};
//! let mut rng = rand_core::OsRng;
//!
//! let alice_identity = IdentityPrivateKey::from_x25519_bytes([1; 32]);
//! let bob_identity = IdentityPrivateKey::from_x25519_bytes([2; 32]);
//! let bob_long_term = StaticSecret::from([3; 32]);
//!
//! let bundle = ResponderKeys {
//!     identity: IdentityPublicKey::from_x25519_bytes(bob_identity.x25519_public_key().to_bytes()),
//!     identity_key_id: KeyId([2; 8]),
//!     long_term: PublicKey::from(&bob_long_term),
//!     long_term_key_id: KeyId([3; 8]),
//!     one_time: None,
//! };
//! let mut alice = Session::initiate(&mut rng, &alice_identity, KeyId([1; 8]), &bundle)?;
//! let first = alice.encrypt(&mut rng, b"hello")?;
//!
//! let wire = first.encode();
//! let received = sealkit_ratchet::Message::decode(&wire)?;
//! let alice_public = IdentityPublicKey::from_x25519_bytes(alice_identity.x25519_public_key().to_bytes());
//! let mut bob = Session::respond(&alice_public, &bob_identity, &bob_long_term, None, &received)?;
//! assert_eq!(bob.decrypt(&received)?.as_slice(), b"hello");
//! let reply = bob.encrypt(&mut rng, b"hi")?;
//! assert_eq!(alice.decrypt(&reply)?.as_slice(), b"hi");
//! # Ok::<(), sealkit_ratchet::Error>(())
//! ```

mod error;
mod kdf;
mod keys;
mod message;
mod proto;
mod session;
mod skipped;

#[cfg(feature = "fuzzing")]
pub mod fuzzing;

pub use error::{Error, Result};
pub use keys::{IdentityPrivateKey, IdentityPublicKey, KeyId};
pub use message::{
    Header, Message, MessageType, PrekeyInfo, MAX_CIPHER_TEXT_LEN, MAX_MESSAGE_LEN, MESSAGE_VERSION,
};
pub use session::{
    ResponderKeys, Session, MAX_MESSAGE_GAP, MAX_PLAIN_TEXT_LEN, MAX_SESSION_LEN, SESSION_VERSION,
};
pub use skipped::{MAX_SKIPPED_CHAINS, MAX_SKIPPED_MESSAGES};
/// The X25519 types of the long-term and one-time keys.
pub use x25519_dalek;
