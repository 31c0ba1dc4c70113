//! # sealkit-proto
//!
//! The wire formats of the Virgil services that e3kit talks to, defined once for Sealkit's
//! server, SDK and CLI. Section numbers refer to `virgil-services-api.md`.
//!
//! * [`jwt`]: the Virgil JWT that authenticates every request (spec §2): strict parsing that
//!   keeps the received bytes, verification, and a generator byte-compatible with the JS SDK's.
//! * [`cards`]: Cards v5 (spec §3): [`RawSignedModel`], [`CardContent`], [`CardId`], search
//!   bodies and the endpoints' paths.
//! * [`error`]: the `{"code", "message"}` error body (spec §1).
//! * [`brainkey`]: brainkey v3 (`/brainkey/v3/harden`) of the mobile e3kit SDKs.
//! * [`chat`]: Sealkit's own end-to-end encrypted chat API (`/chat/v1`, not a Virgil service).
//! * [`kt`]: Sealkit's key transparency API (`/kt/v1`): signed heads and proof envelopes.
//! * [`pfs`]: the ratchet key service (`/pfs/v3/keys`) of the mobile e3kit SDKs' double-ratchet
//!   channels.
//!
//! Like the crypto core it builds on, this crate does no I/O and reads no clock: times are
//! arguments. Signed data (JWT segments, card snapshots) is verified as received, never
//! re-serialized (spec §8.1).
//!
//! ```
//! use rand_core::OsRng;
//! use sealkit_crypto::{KeyType, PrivateKey};
//! use sealkit_proto::{CardContent, Jwt, JwtGenerator, RawSignedModel};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = 1_795_801_646;
//! let app_key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
//! let app_public = app_key.public_key().clone();
//! let tokens = JwtGenerator::new("my-app", "key-1", app_key, 3600);
//! let jwt: Jwt = tokens.generate("alice", now)?.to_string().parse()?;
//! jwt.verify(&app_public, "my-app", now, 30)?;
//!
//! let user_key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
//! let content = CardContent { identity: jwt.identity()?.to_owned(), previous_card_id: None,
//!     created_at: now, version: "5.0".into(), public_key: user_key.public_key().to_base64() };
//! let card = RawSignedModel::from_content(&content, &user_key)?;
//! card.verify_self_signature()?;
//! assert_eq!(card.card_id()?.to_string().len(), 64);
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

pub mod brainkey;
pub mod cards;
pub mod chat;
pub mod error;
/// Entry points for `cargo fuzz`: each parses what a client sends the server and, when that
/// succeeds, checks that serializing and parsing again gives the same value.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod hooks;
pub mod ids;
pub mod jwt;
pub mod keyknox;
pub mod kt;
pub mod pfs;
pub mod pythia;
mod text;

pub use cards::{CardContent, CardError, CardId, RawSignature, RawSignedModel, SearchRequest};
pub use error::ErrorBody;
pub use ids::{AppId, ChannelId, Identity, InvalidId};
pub use jwt::{
    validate_identity, AppCredentials, CredentialsError, Jwt, JwtClaims, JwtError, JwtGenerator,
    JwtHeader,
};
