//! Which library runs the bulk of a message: the AES-256-GCM of its body and the SHA-512 its
//! signature covers.
//!
//! The default build has one backend, RustCrypto (pure Rust, [`crate::gcm::AesGcmStream`] and
//! `sha2`). The `openssl` cargo feature adds a second one, the system's libcrypto through the
//! `openssl` crate, and makes it the default: OpenSSL's AES-GCM interleaves AES and GHASH in one
//! assembly loop and its SHA-512 is faster than `sha2`'s, which is what a 256 MiB stream waits for
//! (docs/benchmarks.md, "Streams"). Both backends produce identical bytes; a
//! [`Crypto`](crate::Crypto) or [`Decryptor`](crate::Decryptor) picks one at run time, so a single
//! build can check each against the other.
//!
//! Only message bodies go through the backend. Key wraps, the encrypted footer of
//! sign-and-encrypt and group messages are short and always use RustCrypto.

use crate::gcm::{AesGcmStream, MAX_TEXT_LEN, TAG_LEN};
use subtle::ConstantTimeEq;

/// The library that encrypts and hashes message bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// RustCrypto's crates: `aes` 0.9 + `ctr` + `ghash` composed in [`crate::gcm`], and `sha2`.
    RustCrypto,
    /// The system's libcrypto through the `openssl` crate (EVP AES-256-GCM, `SHA512_*`).
    #[cfg(feature = "openssl")]
    OpenSsl,
}

impl Backend {
    /// Every backend compiled into this build, the default first.
    #[cfg(feature = "openssl")]
    pub const ALL: &'static [Backend] = &[Backend::OpenSsl, Backend::RustCrypto];
    /// Every backend compiled into this build, the default first.
    #[cfg(not(feature = "openssl"))]
    pub const ALL: &'static [Backend] = &[Backend::RustCrypto];
}

impl Default for Backend {
    /// OpenSSL when the `openssl` feature is on (it is the reason to turn it on), else RustCrypto.
    fn default() -> Self {
        Backend::ALL[0]
    }
}

/// Whether a [`BodyCipher`] encrypts or decrypts. OpenSSL fixes this when its context is made
/// (and only lets an encryptor read its tag), so it is chosen up front for both backends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Plaintext in, ciphertext out; [`BodyCipher::tag`] ends it.
    Encrypt,
    /// Ciphertext in, plaintext out; [`BodyCipher::verify`] ends it.
    Decrypt,
}

/// Why a [`BodyCipher`] call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum BodyCipherError {
    /// Used against GCM's rules: more than [`MAX_TEXT_LEN`] bytes of text, associated data after
    /// the text or twice, or [`BodyCipher::tag`] on a decryptor.
    Usage,
    /// The library refused (OpenSSL only: out of memory, or a parameter it does not support).
    Library,
}

impl core::fmt::Display for BodyCipherError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::Usage => "AES-GCM used beyond its limits",
            Self::Library => "the AES-GCM library failed",
        })
    }
}

impl std::error::Error for BodyCipherError {}

// One per message body and never in a collection: boxing the RustCrypto state (AES round keys,
// GHASH powers) would only add an allocation to every message.
#[allow(clippy::large_enum_variant)]
enum Engine {
    RustCrypto(AesGcmStream),
    #[cfg(feature = "openssl")]
    OpenSsl(crate::gcm_openssl::OpenSslGcm),
}

/// Streaming AES-256-GCM of one message body on a chosen [`Backend`].
///
/// Call [`set_aad`](Self::set_aad) (at most once, first), then [`update`](Self::update) on
/// consecutive pieces of any size, then [`tag`](Self::tag) (encrypting) or
/// [`verify`](Self::verify) (decrypting). Decrypted bytes are not authentic until `verify` has
/// returned `true`; callers hold them back until then.
pub struct BodyCipher {
    engine: Engine,
    direction: Direction,
    aad_set: bool,
    text_len: u64,
}

impl core::fmt::Debug for BodyCipher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BodyCipher")
            .field("backend", &self.backend())
            .field("direction", &self.direction)
            .field("text_len", &self.text_len)
            .finish_non_exhaustive()
    }
}

impl BodyCipher {
    /// Starts a message with `key` and `nonce`. A 12-byte nonce is used directly; other lengths
    /// are hashed into the initial counter (SP 800-38D §7.1). OpenSSL takes nonces of 1 to 128
    /// bytes; a message with any other nonce length runs on RustCrypto whatever `backend` says.
    pub fn new(
        backend: Backend,
        direction: Direction,
        key: &[u8; 32],
        nonce: &[u8],
    ) -> Result<Self, BodyCipherError> {
        let engine = match backend {
            Backend::RustCrypto => Engine::RustCrypto(AesGcmStream::new(key, nonce)),
            #[cfg(feature = "openssl")]
            Backend::OpenSsl => match crate::gcm_openssl::OpenSslGcm::new(direction, key, nonce)? {
                Some(gcm) => Engine::OpenSsl(gcm),
                None => Engine::RustCrypto(AesGcmStream::new(key, nonce)),
            },
        };
        Ok(Self {
            engine,
            direction,
            aad_set: false,
            text_len: 0,
        })
    }

    /// The backend actually running this message (see [`new`](Self::new) for the exception).
    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::RustCrypto(_) => Backend::RustCrypto,
            #[cfg(feature = "openssl")]
            Engine::OpenSsl(_) => Backend::OpenSsl,
        }
    }

    /// Authenticates `aad` without encrypting it; only before any text, and only once.
    pub fn set_aad(&mut self, aad: &[u8]) -> Result<(), BodyCipherError> {
        if self.aad_set || self.text_len != 0 {
            return Err(BodyCipherError::Usage);
        }
        self.aad_set = true;
        match &mut self.engine {
            Engine::RustCrypto(gcm) => gcm.set_aad(aad).map_err(|_| BodyCipherError::Usage),
            #[cfg(feature = "openssl")]
            Engine::OpenSsl(gcm) => gcm.set_aad(aad),
        }
    }

    /// Encrypts or decrypts (by the [`Direction`]) the next piece of text in place. Nothing is
    /// changed when the piece would take the message past GCM's length limit.
    pub fn update(&mut self, data: &mut [u8]) -> Result<(), BodyCipherError> {
        self.text_len = self
            .text_len
            .checked_add(data.len() as u64)
            .filter(|&n| n <= MAX_TEXT_LEN)
            .ok_or(BodyCipherError::Usage)?;
        match (&mut self.engine, self.direction) {
            (Engine::RustCrypto(gcm), Direction::Encrypt) => gcm.encrypt(data),
            (Engine::RustCrypto(gcm), Direction::Decrypt) => gcm.decrypt(data),
            #[cfg(feature = "openssl")]
            (Engine::OpenSsl(gcm), _) => return gcm.update(data),
        }
        .map_err(|_| BodyCipherError::Usage)
    }

    /// Ends an encryption: the tag over the associated data and the whole text.
    pub fn tag(self) -> Result<[u8; TAG_LEN], BodyCipherError> {
        if self.direction != Direction::Encrypt {
            return Err(BodyCipherError::Usage);
        }
        match self.engine {
            Engine::RustCrypto(gcm) => Ok(gcm.finish()),
            #[cfg(feature = "openssl")]
            Engine::OpenSsl(gcm) => gcm.tag(),
        }
    }

    /// Ends a decryption: whether `tag` is the message's tag, compared in constant time (by
    /// `subtle` on RustCrypto; OpenSSL compares inside `EVP_DecryptFinal_ex` with
    /// `CRYPTO_memcmp` and offers no way to read the tag of a decryption). Always `false` for an
    /// encryptor.
    pub fn verify(self, tag: &[u8]) -> bool {
        if self.direction != Direction::Decrypt {
            return false;
        }
        match self.engine {
            Engine::RustCrypto(gcm) => bool::from(gcm.finish().as_slice().ct_eq(tag)),
            #[cfg(feature = "openssl")]
            Engine::OpenSsl(gcm) => gcm.verify(tag),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use proptest::prelude::*;

    /// Seals `plaintext` in pieces of `piece` bytes on `backend`; ciphertext then tag.
    fn seal(
        backend: Backend,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        pt: &[u8],
        piece: usize,
    ) -> Vec<u8> {
        let mut gcm = BodyCipher::new(backend, Direction::Encrypt, key, nonce).unwrap();
        gcm.set_aad(aad).unwrap();
        let mut out = pt.to_vec();
        for c in out.chunks_mut(piece.max(1)) {
            gcm.update(c).unwrap();
        }
        out.extend_from_slice(&gcm.tag().unwrap());
        out
    }

    /// Opens ciphertext-then-tag in pieces; the plaintext only if the tag verifies.
    fn open(
        backend: Backend,
        key: &[u8; 32],
        nonce: &[u8],
        aad: &[u8],
        sealed: &[u8],
        piece: usize,
    ) -> Option<Vec<u8>> {
        let (ct, tag) = sealed.split_at(sealed.len() - TAG_LEN);
        let mut gcm = BodyCipher::new(backend, Direction::Decrypt, key, nonce).unwrap();
        gcm.set_aad(aad).unwrap();
        let mut out = ct.to_vec();
        for c in out.chunks_mut(piece.max(1)) {
            gcm.update(c).unwrap();
        }
        gcm.verify(tag).then_some(out)
    }

    fn unhex(v: &serde_json::Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap_or_default()).unwrap_or_default()
    }

    #[test]
    fn every_backend_passes_the_nist_vectors_in_any_pieces() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/nist_gcm256.json")).unwrap();
        let vectors = doc["vectors"].as_array().unwrap();
        assert_eq!(vectors.len(), 50);
        for &backend in Backend::ALL {
            for (i, v) in vectors.iter().enumerate() {
                let key: [u8; 32] = unhex(&v["key"]).try_into().unwrap();
                let (nonce, aad, pt) =
                    (unhex(&v["nonce"]), unhex(&v["aad"]), unhex(&v["plaintext"]));
                let mut expected = unhex(&v["ciphertext"]);
                expected.extend_from_slice(&unhex(&v["tag"]));
                for piece in [1, 7, 16, 17, 1000] {
                    let sealed = seal(backend, &key, &nonce, &aad, &pt, piece);
                    assert_eq!(sealed, expected, "{backend:?}, vector {i}, piece {piece}");
                    let opened = open(backend, &key, &nonce, &aad, &expected, piece);
                    assert_eq!(opened.as_deref(), Some(&pt[..]), "{backend:?}, vector {i}");
                }
            }
        }
    }

    #[test]
    fn the_openssl_backend_is_the_default_when_compiled_in() {
        let expected = if cfg!(feature = "openssl") {
            "OpenSsl"
        } else {
            "RustCrypto"
        };
        assert_eq!(format!("{:?}", Backend::default()), expected);
        let gcm =
            BodyCipher::new(Backend::default(), Direction::Encrypt, &[1; 32], &[2; 12]).unwrap();
        assert_eq!(gcm.backend(), Backend::default());
    }

    #[test]
    fn a_wrong_tag_or_a_flipped_bit_fails_on_every_backend() {
        for &backend in Backend::ALL {
            for nonce_len in [12, 1, 16, 128] {
                let nonce = vec![9u8; nonce_len];
                let sealed = seal(backend, &[3; 32], &nonce, b"aad", &[5; 100], 33);
                assert!(open(backend, &[3; 32], &nonce, b"aad", &sealed, 33).is_some());
                for at in [0, 50, 99, 100, 115] {
                    let mut bad = sealed.clone();
                    bad[at] ^= 1;
                    assert_eq!(
                        open(backend, &[3; 32], &nonce, b"aad", &bad, 33),
                        None,
                        "{backend:?} byte {at}"
                    );
                }
                assert_eq!(open(backend, &[3; 32], &nonce, b"aaD", &sealed, 33), None);
                // A short tag is no tag (OpenSSL would accept a truncated one if asked to).
                let mut gcm =
                    BodyCipher::new(backend, Direction::Decrypt, &[3; 32], &nonce).unwrap();
                gcm.set_aad(b"aad").unwrap();
                let mut ct = sealed[..100].to_vec();
                gcm.update(&mut ct).unwrap();
                assert!(!gcm.verify(&sealed[100..112]), "{backend:?}");
            }
        }
    }

    #[test]
    fn usage_rules_hold_on_every_backend() {
        for &backend in Backend::ALL {
            let mut gcm = BodyCipher::new(backend, Direction::Encrypt, &[1; 32], &[2; 12]).unwrap();
            assert_eq!(gcm.set_aad(b"a"), Ok(()));
            assert_eq!(gcm.set_aad(b"b"), Err(BodyCipherError::Usage));
            let mut gcm = BodyCipher::new(backend, Direction::Encrypt, &[1; 32], &[2; 12]).unwrap();
            assert_eq!(gcm.update(&mut [0; 3]), Ok(()));
            assert_eq!(gcm.set_aad(b"late"), Err(BodyCipherError::Usage));
            gcm.text_len = MAX_TEXT_LEN - 3;
            let mut data = [7u8; 4];
            assert_eq!(gcm.update(&mut data), Err(BodyCipherError::Usage));
            assert_eq!(data, [7; 4]);
            // Directions are not interchangeable.
            let enc = BodyCipher::new(backend, Direction::Encrypt, &[1; 32], &[2; 12]).unwrap();
            let tag = BodyCipher::new(backend, Direction::Encrypt, &[1; 32], &[2; 12])
                .unwrap()
                .tag()
                .unwrap();
            assert!(!enc.verify(&tag));
            let dec = BodyCipher::new(backend, Direction::Decrypt, &[1; 32], &[2; 12]).unwrap();
            assert_eq!(dec.tag(), Err(BodyCipherError::Usage));
        }
    }

    #[test]
    fn nonces_openssl_cannot_take_fall_back_to_rustcrypto() {
        for &backend in Backend::ALL {
            for len in [0, 129, 300] {
                let nonce = vec![4u8; len];
                let gcm = BodyCipher::new(backend, Direction::Encrypt, &[1; 32], &nonce).unwrap();
                assert_eq!(
                    gcm.backend(),
                    Backend::RustCrypto,
                    "{backend:?}, {len}-byte nonce"
                );
                let sealed = seal(backend, &[1; 32], &nonce, b"", b"hello", 2);
                assert_eq!(
                    sealed,
                    seal(Backend::RustCrypto, &[1; 32], &nonce, b"", b"hello", 5)
                );
                assert_eq!(
                    open(backend, &[1; 32], &nonce, b"", &sealed, 3).as_deref(),
                    Some(&b"hello"[..])
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Every backend against RustCrypto (itself checked against NIST and the previous
        /// implementation in `gcm.rs`): same ciphertext and tag, and each opens the other's
        /// message, for any lengths, splits and nonce lengths (the hashed, non-96-bit nonces
        /// included, up to OpenSSL's 128 bytes and past them).
        #[test]
        fn backends_agree_for_any_lengths_splits_and_nonces(
            key in any::<[u8; 32]>(),
            nonce in proptest::collection::vec(any::<u8>(), 1..140),
            aad in proptest::collection::vec(any::<u8>(), 0..70),
            plaintext in proptest::collection::vec(any::<u8>(), 0..(3 * crate::gcm::FUSE + 100)),
            piece in 1usize..(2 * crate::gcm::FUSE),
            other_piece in 1usize..300,
        ) {
            let reference = seal(Backend::RustCrypto, &key, &nonce, &aad, &plaintext, other_piece);
            for &backend in Backend::ALL {
                let sealed = seal(backend, &key, &nonce, &aad, &plaintext, piece);
                prop_assert_eq!(&sealed, &reference, "{:?}", backend);
                let opened = open(backend, &key, &nonce, &aad, &reference, other_piece);
                prop_assert_eq!(opened.as_deref(), Some(&plaintext[..]), "{:?}", backend);
            }
        }
    }
}
