//! # sealkit-pythia
//!
//! Virgil's Pythia / BrainKey, byte-compatible with the official clients (e3kit 2.5.1 →
//! virgil-pythia 1.0.2 → the WASM build of virgil-crypto-c with relic 0.4.1), in pure Rust over
//! arkworks' BLS12-381. Section numbers refer to `pythia-brainkey.md` and to §6 of
//! `virgil-services-api.md`.
//!
//! * [`BrainkeyServer`] and [`TransformationKey`]: the server's transform
//!   `seed = e(kw·X, H2(tweak))`, with the fixed derivation of `kw` and of the tweak, and the
//!   Chaum–Pedersen proof of `/pythia/v1/password` ([`verify_proof`] is the client's check).
//! * [`blind`], [`deblind`], [`brainkey_from_deblinded`]: e3kit's `BrainKey.generateKeyPair`
//!   (blind → server → deblind → `generateKeysFromKeyMaterial`), ending in an Ed25519
//!   [`sealkit_crypto::PrivateKey`].
//! * [`v3`]: brainkey v3 of the mobile e3kit SDKs (e3kit-kotlin 3.x, e3kit-x), a P-256 OPRF with a
//!   DLEQ proof, byte-compatible with virgil-crypto-c's foundation `brainkey_client`/`brainkey_server`.
//! * [`G1Point`], [`G2Point`], [`Gt`]: relic's wire encodings (Montgomery-parity point
//!   compression, packed GT), with strict decoders that take `&[u8]`.
//!
//! The crate does no I/O, reads no clock and takes its random number generator as a parameter.
//!
//! ```
//! use rand_core::OsRng;
//! use sealkit_pythia::{blind, brainkey_from_deblinded, deblind, BrainkeyServer};
//!
//! # fn main() -> Result<(), sealkit_pythia::Error> {
//! let server = BrainkeyServer::new(&[0x5a; 32])?; // the deployment's master secret
//!
//! // The client blinds the password; only the blinded point goes to the server.
//! let (blinded, secret) = blind(b"correct horse battery staple", &mut OsRng)?;
//! let seed = server.transform(&blinded, "app-id", "alice@example.com")?;
//! let deblinded = deblind(&seed, &secret)?; // zeroized on drop
//! let key = brainkey_from_deblinded(&deblinded);
//!
//! // Another blinding of the same password gives the same brain key.
//! let (blinded, secret) = blind(b"correct horse battery staple", &mut OsRng)?;
//! let seed = server.transform(&blinded, "app-id", "alice@example.com")?;
//! let deblinded = deblind(&seed, &secret)?;
//! let again = brainkey_from_deblinded(&deblinded);
//! assert_eq!(key.public_key(), again.public_key());
//! # Ok(())
//! # }
//! ```

#![forbid(unsafe_code)]

mod client;
mod codec;
mod ct;
mod error;
mod field;
mod hash;
mod key_material;
pub mod manual;
mod server;
#[cfg(test)]
mod tests;
pub mod v3;
#[cfg(test)]
mod vector_tests;

pub use client::{blind, deblind, BlindingSecret, PASSWORD_MAX_LEN, PASSWORD_MIN_LEN};
pub use codec::{
    G1Point, G2Point, Gt, BN_MAX_LEN, G1_COMPRESSED_LEN, G1_UNCOMPRESSED_LEN, G2_COMPRESSED_LEN,
    GT_LEN,
};
pub use error::{DecodeError, DecodeErrorKind, Encoding, Error, Result};
pub use key_material::{
    brainkey_from_deblinded, private_key_from_key_material, KEY_MATERIAL_MAX_LEN,
    KEY_MATERIAL_MIN_LEN,
};
pub use server::{
    brainkey_tweak, transformed_tweak, verify_proof, BrainkeyServer, Proof, TransformationKey,
    MASTER_SECRET_MAX_LEN, MASTER_SECRET_MIN_LEN,
};

/// Entry points for `cargo fuzz`: each decodes untrusted bytes and, when that succeeds, checks
/// that encoding and decoding again gives the same value.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
