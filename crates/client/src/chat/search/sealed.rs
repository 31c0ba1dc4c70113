//! The key of the search index and the format of its files on disk.
//!
//! ```text
//! index key = HKDF-SHA-512(ikm = the private key's PKCS#8 DER, salt = none,
//!                          info = "sealkit chat search index v1" || identity)[..32]
//! file      = "SKSI" || 0x01 || nonce (12 random bytes) || AES-256-GCM(index key, nonce,
//!             plaintext, aad = "SKSI" || 0x01 || file name)
//! check     = the file `sealkit-index.check`, a sealed constant: opening it tells a wrong key
//!             (another identity's, or the user's key before a rotation) from a damaged file
//! ```
//!
//! Every file tantivy writes (segment files, `meta.json`, `.managed.json`) is sealed whole, so
//! the disk holds neither a term, nor a stored message, nor the schema. The file name is bound
//! into the tag, so a file cannot be swapped for another under a different name. Random nonces
//! are safe here: an index writes far fewer than 2^32 files under one key.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

const MAGIC: &[u8; 4] = b"SKSI";
const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const HEADER_LEN: usize = MAGIC.len() + 1 + NONCE_LEN;
const INFO: &[u8] = b"sealkit chat search index v1";

/// The name of the file that proves which key sealed an index.
pub(crate) const CHECK_FILE: &str = "sealkit-index.check";
const CHECK_PLAINTEXT: &[u8] = b"sealkit chat search index";

/// A sealed file did not open: wrong key, damaged or truncated file, or a file renamed. The
/// causes are not told apart (no oracle on the key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Unsealable;

/// The key the search index of one identity is sealed under. No `Clone` (it is shared behind
/// an `Arc`), no `Debug` of its bytes; zeroized on drop.
pub(crate) struct IndexKey {
    cipher: Aes256Gcm,
}

impl std::fmt::Debug for IndexKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexKey").finish_non_exhaustive()
    }
}

impl IndexKey {
    /// Derives the index key of `identity` from its private key (PKCS#8 DER). A distinct
    /// `info` keeps it apart from every other use of the private key.
    pub(crate) fn derive(private_key_der: &[u8], identity: &str) -> Self {
        let hkdf = hkdf::Hkdf::<sha2::Sha512>::new(None, private_key_der);
        let mut info = Vec::with_capacity(INFO.len() + 1 + identity.len());
        info.extend_from_slice(INFO);
        info.push(0);
        info.extend_from_slice(identity.as_bytes());
        let mut key = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF-SHA-512's limit of 255 * 64: this cannot fail.
        if hkdf.expand(&info, &mut key[..]).is_err() {
            key.fill(0);
        }
        Self::from_bytes(&key)
    }

    /// A key from raw bytes (tests and the benchmark).
    pub(crate) fn from_bytes(key: &[u8; 32]) -> Self {
        Self {
            cipher: Aes256Gcm::new(key.into()),
        }
    }

    /// Seals the contents of the file `name`.
    pub(crate) fn seal(&self, name: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        OsRng.fill_bytes(&mut nonce);
        let aad = aad(name);
        let mut out = Vec::with_capacity(HEADER_LEN + plaintext.len() + 16);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        // AES-GCM encryption fails only for inputs over 64 GiB, which tantivy does not write
        // in one file; an empty result then makes the file unreadable rather than plain.
        let sealed = self
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .unwrap_or_default();
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens what [`IndexKey::seal`] sealed for `name`.
    pub(crate) fn open(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, Unsealable> {
        let (header, body) = sealed.split_at_checked(HEADER_LEN).ok_or(Unsealable)?;
        let (magic, rest) = header.split_at(MAGIC.len());
        let (version, nonce) = rest.split_at(1);
        if magic != MAGIC || version != [VERSION] {
            return Err(Unsealable);
        }
        self.cipher
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: body,
                    aad: &aad(name),
                },
            )
            .map_err(|_| Unsealable)
    }

    /// The contents of the key check file.
    pub(crate) fn check_file(&self) -> Vec<u8> {
        self.seal(CHECK_FILE, CHECK_PLAINTEXT)
    }

    /// Whether `sealed` is the check file of this key.
    pub(crate) fn matches_check_file(&self, sealed: &[u8]) -> bool {
        self.open(CHECK_FILE, sealed)
            .is_ok_and(|plain| plain == CHECK_PLAINTEXT)
    }
}

fn aad(name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(HEADER_LEN + name.len());
    aad.extend_from_slice(MAGIC);
    aad.push(VERSION);
    aad.extend_from_slice(name.as_bytes());
    aad
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn seal_round_trips_and_binds_key_name_and_bytes() {
        let key = IndexKey::derive(b"private key der", "alice");
        for size in [0usize, 1, 15, 16, 17, 4096] {
            let plain: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let sealed = key.seal("a.idx", &plain);
            assert_eq!(sealed.len(), HEADER_LEN + size + 16);
            assert_eq!(key.open("a.idx", &sealed).unwrap(), plain);
            // Another name, another identity's key, another private key: refused.
            assert_eq!(key.open("b.idx", &sealed), Err(Unsealable));
            let bob = IndexKey::derive(b"private key der", "bob");
            assert_eq!(bob.open("a.idx", &sealed), Err(Unsealable));
            let other = IndexKey::derive(b"other private key der", "alice");
            assert_eq!(other.open("a.idx", &sealed), Err(Unsealable));
            // Any flipped byte (magic, version, nonce, body, tag) and any truncation: refused.
            for i in 0..sealed.len() {
                let mut damaged = sealed.clone();
                damaged[i] ^= 0x01;
                assert_eq!(key.open("a.idx", &damaged), Err(Unsealable), "byte {i}");
            }
            for cut in 0..sealed.len() {
                assert_eq!(
                    key.open("a.idx", &sealed[..cut]),
                    Err(Unsealable),
                    "cut {cut}"
                );
            }
        }
    }

    #[test]
    fn derivation_is_deterministic_and_separated() {
        let a = IndexKey::derive(b"k", "alice");
        let again = IndexKey::derive(b"k", "alice");
        let sealed = a.seal("x", b"hello");
        assert_eq!(again.open("x", &sealed).unwrap(), b"hello");
        assert!(again.matches_check_file(&a.check_file()));
        assert!(!IndexKey::derive(b"k2", "alice").matches_check_file(&a.check_file()));
        // Independent of this implementation: HKDF-SHA-512 with the documented info string.
        let hkdf = hkdf::Hkdf::<sha2::Sha512>::new(None, b"k");
        let mut raw = [0u8; 32];
        hkdf.expand(b"sealkit chat search index v1\0alice", &mut raw)
            .unwrap();
        assert_eq!(
            IndexKey::from_bytes(&raw).open("x", &sealed).unwrap(),
            b"hello"
        );
    }

    #[test]
    fn debug_shows_no_key() {
        assert_eq!(
            format!("{:?}", IndexKey::from_bytes(&[7; 32])),
            "IndexKey { .. }"
        );
    }
}
