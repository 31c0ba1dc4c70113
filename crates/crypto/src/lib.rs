//! # sealkit-crypto
//!
//! A pure-Rust, byte-compatible implementation of the formats of Virgil Security's
//! `virgil-crypto` (the foundation library behind e3kit): key pairs and key ids, signatures,
//! multi-recipient envelopes, sign-then-encrypt, sign-and-encrypt with an encrypted signature
//! footer, streams and group sessions. Messages made here open in virgil-crypto 4.2.2 and 5.1.2,
//! and the reverse. The section numbers in this documentation refer to the format specification,
//! `virgil-crypto-format.md`.
//!
//! The crate does no I/O beyond `std::io::Read`/`Write` in the streaming helpers, reads no clock,
//! and takes its random number generator as a parameter.
//!
//! The cargo feature `openssl` (off by default) links the system's libcrypto and runs the
//! AES-256-GCM and SHA-512 of message bodies on it, which makes large messages and streams
//! faster; see [`backend`].
//!
//! ```
//! use sealkit_crypto::{Crypto, KeyType, PrivateKey};
//! use rand_core::OsRng;
//!
//! # fn main() -> Result<(), sealkit_crypto::Error> {
//! let alice = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
//! let bob = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
//! let carol = PrivateKey::generate(KeyType::Curve25519, &mut OsRng);
//! let crypto = Crypto::new();
//!
//! // e3kit's authEncrypt: signed by Alice, for Bob and Carol, padded.
//! let recipients = [bob.public_key().clone(), carol.public_key().clone()];
//! let message = crypto.sign_and_encrypt(&mut OsRng, b"hello", &alice, &recipients, true)?;
//!
//! // e3kit's authDecrypt: Bob decrypts and checks that Alice signed it.
//! let plaintext = crypto.decrypt_and_verify(&message, &bob, &[alice.public_key().clone()])?;
//! assert_eq!(plaintext, b"hello");
//! # Ok(())
//! # }
//! ```
//!
//! Deliberate differences from virgil-crypto are listed in [`manual::differences`].

#![forbid(unsafe_code)]

pub mod backend;
mod ecies;
mod envelope;
mod error;
mod format;
pub mod gcm;
#[cfg(feature = "openssl")]
mod gcm_openssl;
mod group;
mod hash_pipe;
mod keys;
pub mod manual;
mod padding;
mod safety_number;
mod signature;
#[cfg(test)]
mod vector_tests;

pub use backend::Backend;
pub use envelope::{Crypto, DecryptInfo, Decryptor, Encryptor, MessageKind, Signing, Stage};
pub use error::{Error, FormatError, FormatErrorKind, Result};
pub use group::{GroupMessageInfo, GroupSession, MAX_EPOCHS, MAX_PLAINTEXT as MAX_GROUP_PLAINTEXT};
pub use keys::{KeyId, KeyIdScheme, KeyType, PrivateKey, PublicKey};
pub use safety_number::{
    SafetyNumber, SAFETY_NUMBER_DIGITS, SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_VERSION,
};
pub use signature::{sign, verify, Signer, Verifier};

/// Entry points for `cargo fuzz`: each decodes untrusted bytes and, when that succeeds, checks
/// that re-encoding and decoding again gives the same structure.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
