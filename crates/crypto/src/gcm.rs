//! Streaming AES-256-GCM (NIST SP 800-38D) assembled from RustCrypto's primitives.
//!
//! Virgil's format puts one GCM tag after a body of any length, so the body has to be encrypted
//! and authenticated piece by piece. The RustCrypto `aes-gcm` crate only offers one-shot calls,
//! so this module composes the same pieces that crate uses — `aes` 0.9 for the block cipher (its
//! VAES backends encrypt many counter blocks per instruction), `ctr`'s 32-bit big-endian counter
//! mode for the keystream and `ghash` for the authenticator — and keeps their state between
//! calls. Nothing here implements a primitive: the only work of its own is the bookkeeping GCM
//! defines around them (J0, the length block, the tag mask) and a partial-block buffer.
//!
//! # Why pieces of [`FUSE`] bytes
//! `ctr` and `ghash` each make one pass over the data. Running them one after the other over a
//! large buffer would read it from memory twice; running them over pieces that fit the L1 cache
//! lets the GHASH pass read the bytes the CTR pass has just written.

use aes_vaes::cipher::{BlockCipherEncrypt, InnerIvInit, KeyInit, StreamCipher, StreamCipherCore};
use aes_vaes::Aes256;
use ghash::universal_hash::UniversalHash;
use ghash::GHash;

/// Bytes processed by CTR and then GHASH before moving on (half of a typical 32 KiB L1D cache).
pub const FUSE: usize = 16 << 10;

/// GCM's limit on the length of one message: 2^32 − 2 blocks.
pub const MAX_TEXT_LEN: u64 = ((1u64 << 32) - 2) * 16;

/// The authentication tag length Sealkit uses (the full 16 bytes).
pub const TAG_LEN: usize = 16;

/// The message exceeds what one AES-GCM key and nonce may protect, or associated data was given
/// after the text had started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GcmUsageError;

impl core::fmt::Display for GcmUsageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("AES-GCM used beyond its limits")
    }
}

impl std::error::Error for GcmUsageError {}

type CtrBlocks = ctr::Ctr32BE<Aes256>;

/// One AES-256-GCM encryption or decryption, fed in pieces of any size.
///
/// Call [`set_aad`](Self::set_aad) (at most once, first), then [`encrypt`](Self::encrypt) or
/// [`decrypt`](Self::decrypt) on consecutive pieces, then [`finish`](Self::finish) for the tag.
/// A decryptor must compare that tag with the received one in constant time before trusting
/// anything it decrypted.
pub struct AesGcmStream {
    ctr: CtrBlocks,
    ghash: GHash,
    /// E(K, J0), XORed into the GHASH result to make the tag.
    tag_mask: zeroize::Zeroizing<[u8; 16]>,
    /// Bytes of text not yet hashed because they do not fill a block.
    pending: [u8; 16],
    pending_len: usize,
    aad_len: u64,
    text_len: u64,
}

impl core::fmt::Debug for AesGcmStream {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AesGcmStream")
            .field("aad_len", &self.aad_len)
            .field("text_len", &self.text_len)
            .finish_non_exhaustive()
    }
}

impl AesGcmStream {
    /// Starts a message with `key` and `nonce`. A 12-byte nonce is used directly; other lengths
    /// are hashed into the initial counter as SP 800-38D §7.1 prescribes.
    pub fn new(key: &[u8; 32], nonce: &[u8]) -> Self {
        let cipher = Aes256::new(key.into());
        let mut h = ghash::Key::default();
        cipher.encrypt_block(&mut h);
        let ghash = GHash::new(&h);
        zeroize::Zeroize::zeroize(h.as_mut_slice());

        let mut j0 = ghash::Block::default();
        if nonce.len() == 12 {
            j0[..12].copy_from_slice(nonce);
            j0[15] = 1;
        } else {
            let mut nonce_hash = ghash.clone();
            nonce_hash.update_padded(nonce);
            let mut lengths = ghash::Block::default();
            lengths[8..].copy_from_slice(&(8 * nonce.len() as u64).to_be_bytes());
            nonce_hash.update(&[lengths]);
            j0 = nonce_hash.finalize();
        }
        let mut core = ctr::CtrCore::<Aes256, ctr::flavors::Ctr32BE>::inner_iv_init(cipher, &j0);
        let mut mask = ghash::Block::default();
        // The first counter block (J0) masks the tag; the text starts at inc32(J0).
        core.write_keystream_block(&mut mask);
        let mut tag_mask = zeroize::Zeroizing::new([0u8; 16]);
        tag_mask.copy_from_slice(&mask);
        zeroize::Zeroize::zeroize(mask.as_mut_slice());
        Self {
            ctr: CtrBlocks::from_core(core),
            ghash,
            tag_mask,
            pending: [0; 16],
            pending_len: 0,
            aad_len: 0,
            text_len: 0,
        }
    }

    /// Authenticates `aad` without encrypting it; only before any text, and only once.
    pub fn set_aad(&mut self, aad: &[u8]) -> Result<(), GcmUsageError> {
        if self.text_len != 0 || self.aad_len != 0 {
            return Err(GcmUsageError);
        }
        self.ghash.update_padded(aad);
        self.aad_len = aad.len() as u64;
        Ok(())
    }

    /// Encrypts the next piece of plaintext in place.
    pub fn encrypt(&mut self, data: &mut [u8]) -> Result<(), GcmUsageError> {
        self.count(data.len())?;
        for piece in data.chunks_mut(FUSE) {
            self.ctr
                .try_apply_keystream(piece)
                .map_err(|_| GcmUsageError)?;
            self.hash_text(piece);
        }
        Ok(())
    }

    /// Decrypts the next piece of ciphertext in place. The result is not authentic until
    /// [`finish`](Self::finish)'s tag has been checked.
    pub fn decrypt(&mut self, data: &mut [u8]) -> Result<(), GcmUsageError> {
        self.count(data.len())?;
        for piece in data.chunks_mut(FUSE) {
            self.hash_text(piece);
            self.ctr
                .try_apply_keystream(piece)
                .map_err(|_| GcmUsageError)?;
        }
        Ok(())
    }

    /// The authentication tag over the associated data and all text fed so far.
    pub fn finish(self) -> [u8; TAG_LEN] {
        let Self {
            mut ghash,
            tag_mask,
            pending,
            pending_len,
            aad_len,
            text_len,
            ..
        } = self;
        if pending_len > 0 {
            ghash.update_padded(&pending[..pending_len]);
        }
        let mut lengths = ghash::Block::default();
        lengths[..8].copy_from_slice(&(8 * aad_len).to_be_bytes());
        lengths[8..].copy_from_slice(&(8 * text_len).to_be_bytes());
        ghash.update(&[lengths]);
        let mut s = ghash.finalize();
        let mut tag = [0u8; TAG_LEN];
        for ((t, s), m) in tag.iter_mut().zip(s.iter()).zip(tag_mask.iter()) {
            *t = s ^ m;
        }
        zeroize::Zeroize::zeroize(s.as_mut_slice());
        tag
    }

    fn count(&mut self, len: usize) -> Result<(), GcmUsageError> {
        self.text_len = self
            .text_len
            .checked_add(len as u64)
            .filter(|&n| n <= MAX_TEXT_LEN)
            .ok_or(GcmUsageError)?;
        Ok(())
    }

    /// Feeds ciphertext to GHASH, whole blocks at once and the remainder into `pending`.
    fn hash_text(&mut self, mut ct: &[u8]) {
        if self.pending_len > 0 {
            let take = (16 - self.pending_len).min(ct.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&ct[..take]);
            self.pending_len += take;
            ct = &ct[take..];
            if self.pending_len < 16 {
                return;
            }
            let block = ghash::Block::from(self.pending);
            self.ghash.update(&[block]);
            self.pending_len = 0;
        }
        let (blocks, rest) = ghash::Block::slice_as_chunks(ct);
        if !blocks.is_empty() {
            self.ghash.update(blocks);
        }
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn unhex(v: &serde_json::Value) -> Vec<u8> {
        hex::decode(v.as_str().unwrap_or_default()).unwrap_or_default()
    }

    /// Encrypts `plaintext` fed in pieces of `piece` bytes.
    fn seal(key: &[u8; 32], nonce: &[u8], aad: &[u8], plaintext: &[u8], piece: usize) -> Vec<u8> {
        let mut gcm = AesGcmStream::new(key, nonce);
        assert_eq!(gcm.set_aad(aad), Ok(()));
        let mut out = plaintext.to_vec();
        for c in out.chunks_mut(piece.max(1)) {
            assert_eq!(gcm.encrypt(c), Ok(()));
        }
        out.extend_from_slice(&gcm.finish());
        out
    }

    #[test]
    fn nist_vectors_encrypt_and_decrypt_in_any_pieces() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../tests/data/nist_gcm256.json"))
                .unwrap_or_default();
        let vectors = doc["vectors"].as_array().cloned().unwrap_or_default();
        assert_eq!(vectors.len(), 50);
        for (i, v) in vectors.iter().enumerate() {
            let key: [u8; 32] = unhex(&v["key"]).try_into().unwrap_or([0; 32]);
            let (nonce, aad, pt) = (unhex(&v["nonce"]), unhex(&v["aad"]), unhex(&v["plaintext"]));
            let mut expected = unhex(&v["ciphertext"]);
            expected.extend_from_slice(&unhex(&v["tag"]));
            for piece in [1, 7, 16, 17, 1000] {
                assert_eq!(
                    seal(&key, &nonce, &aad, &pt, piece),
                    expected,
                    "vector {i}, piece {piece}"
                );
                let mut gcm = AesGcmStream::new(&key, &nonce);
                assert_eq!(gcm.set_aad(&aad), Ok(()));
                let mut back = expected[..pt.len()].to_vec();
                for c in back.chunks_mut(piece) {
                    assert_eq!(gcm.decrypt(c), Ok(()));
                }
                assert_eq!(gcm.finish()[..], expected[pt.len()..], "vector {i}");
                assert_eq!(back, pt, "vector {i}");
            }
        }
    }

    #[test]
    fn associated_data_only_first_and_once() {
        let mut gcm = AesGcmStream::new(&[1; 32], &[2; 12]);
        assert_eq!(gcm.set_aad(b"a"), Ok(()));
        assert_eq!(gcm.set_aad(b"b"), Err(GcmUsageError));
        let mut gcm = AesGcmStream::new(&[1; 32], &[2; 12]);
        assert_eq!(gcm.encrypt(&mut [0; 3]), Ok(()));
        assert_eq!(gcm.set_aad(b"late"), Err(GcmUsageError));
    }

    #[test]
    fn the_length_limit_is_enforced_before_any_work() {
        let mut gcm = AesGcmStream::new(&[1; 32], &[2; 12]);
        gcm.text_len = MAX_TEXT_LEN - 3;
        let mut data = [7u8; 4];
        assert_eq!(gcm.encrypt(&mut data), Err(GcmUsageError));
        assert_eq!(data, [7; 4]);
        assert_eq!(gcm.encrypt(&mut data[..3]), Ok(()));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The previous implementation (`aead-gcm-stream` over `aes` 0.8 and `ghash` 0.5) as the
        /// reference: same output for any lengths, splits and nonce lengths (including the
        /// hashed, non-96-bit nonces that ECIES key wraps may carry).
        #[test]
        fn matches_the_previous_implementation(
            key in any::<[u8; 32]>(),
            nonce in proptest::collection::vec(any::<u8>(), 1..40),
            aad in proptest::collection::vec(any::<u8>(), 0..70),
            plaintext in proptest::collection::vec(any::<u8>(), 0..(3 * FUSE + 100)),
            piece in 1usize..(2 * FUSE),
        ) {
            let mut reference =
                aead_gcm_stream::AesGcm::<aes::Aes256>::new(&key.into(), &nonce);
            reference.set_aad(&aad);
            let mut expected = plaintext.clone();
            reference.encrypt(&mut expected);
            expected.extend_from_slice(&reference.finish());
            prop_assert_eq!(seal(&key, &nonce, &aad, &plaintext, piece), expected);
        }
    }
}
