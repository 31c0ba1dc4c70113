//! The key schedule and the message cipher of libvsc_ratchet: HKDF-SHA512 and HMAC-SHA512 with
//! the library's labels, and AES-256-GCM over randomly padded plaintext.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha512;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::error::{Error, Result};

/// HKDF info of the session start (`vscr_ratchet_xxdh.c`, `ratchet_kdf_root_info`): ASCII, no NUL.
const ROOT_INFO: &[u8] = b"VIRGIL_RATCHET_KDF_ROOT_INFO";

/// HKDF info of each DH ratchet step (`vscr_ratchet_keys.c`, `ratchet_kdf_ratchet_info`). The
/// source labels it "VIRGIL_RATCHET_KDF_RATCHET_INFO", but the bytes are not that ASCII text (they
/// read as its hex digits shifted by one nibble: c·5 6·4 9·5 … for 0x56 0x49 …). They are copied
/// byte for byte, since they are what goes into the KDF.
const RATCHET_INFO: [u8; 31] = [
    0xc5, 0x64, 0x95, 0x24, 0x74, 0x94, 0xc5, 0xf5, 0x24, 0x15, 0x44, 0x34, 0x84, 0x55, 0x45, 0xf4,
    0xb4, 0x44, 0x65, 0xf5, 0x24, 0x15, 0x44, 0x34, 0x84, 0x55, 0x45, 0xf4, 0x94, 0xe4, 0x64,
];

/// HKDF info of the per-message cipher key and nonce (`vscr_ratchet_cipher.c`), with its NUL.
const CIPHER_INFO: &[u8] = b"VIRGIL_RATCHET_KDF_CIPHER_INFO\0";

/// HMAC input that advances a chain key.
const CHAIN_KEY_SEED: &[u8] = &[0x02];
/// HMAC input that derives a message key from a chain key.
const MESSAGE_KEY_SEED: &[u8] = &[0x01];

/// Bytes of the plaintext length at the end of the padded plaintext.
const PADDING_SIZE_LEN: usize = 4;
/// Padded plaintexts are a multiple of this many bytes (`vscf_message_padding`).
const PADDING_FACTOR: usize = 160;
/// The AES-GCM tag appended to every ciphertext.
#[cfg(test)]
const TAG_LEN: usize = 16;

/// A 32-byte symmetric key: root key, chain key or message key. Zeroized on drop.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub(crate) struct SymmetricKey(pub(crate) [u8; 32]);

/// A chain key and the index of the next message key it gives.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub(crate) struct ChainKey {
    pub(crate) index: u32,
    pub(crate) key: SymmetricKey,
}

/// A message key and the counter of the message it opens.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub(crate) struct MessageKey {
    pub(crate) index: u32,
    pub(crate) key: SymmetricKey,
}

/// The shared key of a session start: HKDF-SHA512 (no salt, [`ROOT_INFO`]) of the concatenated
/// agreements, 32 bytes.
pub(crate) fn session_key(agreements: &[u8]) -> SymmetricKey {
    let mut out = [0u8; 32];
    expand(None, agreements, ROOT_INFO, &mut out);
    SymmetricKey(out)
}

/// One DH ratchet step: HKDF-SHA512 (salt = root key, [`RATCHET_INFO`]) of the agreement gives
/// the new root key and a fresh chain key at index 0.
pub(crate) fn ratchet_step(root: &SymmetricKey, agreement: &[u8]) -> (SymmetricKey, ChainKey) {
    let mut out = Zeroizing::new([0u8; 64]);
    expand(Some(&root.0), agreement, &RATCHET_INFO, out.as_mut_slice());
    let mut new_root = [0u8; 32];
    let mut chain = [0u8; 32];
    new_root.copy_from_slice(&out[..32]);
    chain.copy_from_slice(&out[32..]);
    (
        SymmetricKey(new_root),
        ChainKey {
            index: 0,
            key: SymmetricKey(chain),
        },
    )
}

fn expand(salt: Option<&[u8]>, ikm: &[u8], info: &[u8], out: &mut [u8]) {
    // The output lengths used here (32, 44, 64) are far below HKDF-SHA512's limit of 255 × 64.
    if Hkdf::<Sha512>::new(salt, ikm).expand(info, out).is_err() {
        unreachable!("HKDF output length within limits");
    }
}

fn hmac(key: &[u8; 32], data: &[u8]) -> SymmetricKey {
    let mut mac = <Hmac<Sha512> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(data);
    let mut digest = mac.finalize().into_bytes();
    let mut key = [0u8; 32];
    key.copy_from_slice(&digest[..32]);
    digest.as_mut_slice().zeroize();
    SymmetricKey(key)
}

impl ChainKey {
    /// The message key at this chain position (HMAC-SHA512(chain key, 0x01), first 32 bytes).
    pub(crate) fn message_key(&self) -> MessageKey {
        MessageKey {
            index: self.index,
            key: hmac(&self.key.0, MESSAGE_KEY_SEED),
        }
    }

    /// Moves to the next position (HMAC-SHA512(chain key, 0x02), first 32 bytes).
    pub(crate) fn advance(&mut self) -> Result<()> {
        if self.index == u32::MAX {
            return Err(Error::ChainExhausted);
        }
        self.key = hmac(&self.key.0, CHAIN_KEY_SEED);
        self.index += 1;
        Ok(())
    }
}

/// Length of the padded plaintext for `len` bytes: the next multiple of 160 that leaves room for
/// at least one random byte and the 4-byte length.
pub(crate) fn padded_len(len: usize) -> usize {
    ((len + PADDING_SIZE_LEN) / PADDING_FACTOR + 1) * PADDING_FACTOR
}

fn cipher_for(key: &MessageKey) -> (Aes256Gcm, [u8; 12]) {
    let mut okm = Zeroizing::new([0u8; 44]);
    expand(None, &key.key.0, CIPHER_INFO, okm.as_mut_slice());
    let cipher = Aes256Gcm::new_from_slice(&okm[..32])
        .unwrap_or_else(|_| unreachable!("32-byte AES-256 key"));
    let mut nonce = [0u8; 12];
    nonce.copy_from_slice(&okm[32..]);
    (cipher, nonce)
}

/// Pads `plaintext` (plaintext ‖ random bytes ‖ length as little-endian u32) and encrypts it with
/// AES-256-GCM under the key and nonce derived from the message key; `header` is the associated
/// data. Returns ciphertext ‖ tag.
pub(crate) fn seal(
    rng: &mut dyn CryptoRngCore,
    key: &MessageKey,
    plaintext: &[u8],
    header: &[u8],
) -> Result<Vec<u8>> {
    let total = padded_len(plaintext.len());
    let mut padded = Zeroizing::new(vec![0u8; total]);
    padded[..plaintext.len()].copy_from_slice(plaintext);
    rng.fill_bytes(&mut padded[plaintext.len()..total - PADDING_SIZE_LEN]);
    let len = u32::try_from(plaintext.len()).map_err(|_| Error::PlaintextTooLong)?;
    padded[total - PADDING_SIZE_LEN..].copy_from_slice(&len.to_le_bytes());
    let (cipher, nonce) = cipher_for(key);
    cipher
        .encrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &padded,
                aad: header,
            },
        )
        .map_err(|_| Error::DecryptionFailed)
}

/// Decrypts and unpads. Any failure (tag, padding) is [`Error::DecryptionFailed`].
pub(crate) fn open(
    key: &MessageKey,
    ciphertext: &[u8],
    header: &[u8],
) -> Result<Zeroizing<Vec<u8>>> {
    let (cipher, nonce) = cipher_for(key);
    let padded = Zeroizing::new(
        cipher
            .decrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: ciphertext,
                    aad: header,
                },
            )
            .map_err(|_| Error::DecryptionFailed)?,
    );
    let body_len = padded
        .len()
        .checked_sub(PADDING_SIZE_LEN)
        .ok_or(Error::DecryptionFailed)?;
    let mut len = [0u8; PADDING_SIZE_LEN];
    len.copy_from_slice(&padded[body_len..]);
    let len = usize::try_from(u32::from_le_bytes(len)).map_err(|_| Error::DecryptionFailed)?;
    // The C library requires at least one padding byte: length < padded length − 4.
    if len >= body_len {
        return Err(Error::DecryptionFailed);
    }
    Ok(Zeroizing::new(padded[..len].to_vec()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn ratchet_info_is_the_library_bytes() {
        // Guard against an accidental "fix" to the readable label: it must stay byte-exact.
        assert_ne!(&RATCHET_INFO[..], b"VIRGIL_RATCHET_KDF_RATCHET_INFO");
        assert_eq!(RATCHET_INFO.len(), 31);
        assert_eq!(CIPHER_INFO.len(), 31);
        assert_eq!(ROOT_INFO.len(), 28);
    }

    #[test]
    fn padding_lengths() {
        assert_eq!(padded_len(0), 160);
        assert_eq!(padded_len(155), 160);
        assert_eq!(padded_len(156), 320);
        assert_eq!(padded_len(30_000), 30_080);
    }

    #[test]
    fn seal_open_round_trip_and_tamper() {
        let mut rng = rand_core::OsRng;
        let key = MessageKey {
            index: 3,
            key: SymmetricKey([5; 32]),
        };
        for len in [0usize, 1, 155, 156, 1000] {
            let plain = vec![0xab; len];
            let sealed = seal(&mut rng, &key, &plain, b"header").unwrap();
            assert_eq!(sealed.len(), padded_len(len) + TAG_LEN);
            assert_eq!(
                open(&key, &sealed, b"header").unwrap().as_slice(),
                &plain[..]
            );
            assert_eq!(
                open(&key, &sealed, b"other").unwrap_err(),
                Error::DecryptionFailed
            );
        }
    }
}
