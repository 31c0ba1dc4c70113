//! From a deblinded password to the brain key: virgil-crypto's
//! `generateKeysFromKeyMaterial(material, DEFAULT)` (`pythia-brainkey.md` §1, "From the
//! deblinded result to the Ed25519 brain key").
//!
//! virgil-crypto-c's `vscf_key_material_rng` seeds mbedTLS 2.28's CTR_DRBG from a
//! `vscf_seed_entropy_source` over the key material, and the Ed25519 key generator draws its
//! 32-byte RFC 8032 seed from that generator:
//!
//! 1. entropy = KDF2-SHA-512(material)[0..48] = SHA-512(material ‖ 00 00 00 01)[0..48];
//! 2. CTR_DRBG with AES-256 and the block-cipher derivation function, key = 0, V = 0, seeded
//!    with those 48 bytes, no nonce (mbedTLS picks none for a 48-byte entropy length) and no
//!    personalization;
//! 3. Ed25519 seed = the first 32 output bytes (generate with no additional input).
//!
//! Key material must be 32 to 512 bytes (`vscf_key_material_rng_KEY_MATERIAL_LEN_MIN/MAX`).

use crate::error::{Error, Result};
use aes::cipher::{BlockEncrypt, KeyInit};
use aes::Aes256;
use sealkit_crypto::PrivateKey;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

/// Shortest key material virgil-crypto accepts.
pub const KEY_MATERIAL_MIN_LEN: usize = 32;
/// Longest key material virgil-crypto accepts.
pub const KEY_MATERIAL_MAX_LEN: usize = 512;

const KEY_LEN: usize = 32;
const BLOCK: usize = 16;
const SEED_LEN: usize = KEY_LEN + BLOCK;

/// The brain key pair of a deblinded password: exactly what e3kit's
/// `BrainKey.generateKeyPair` returns for the same 384-byte value (Ed25519, virgil-crypto's
/// default key type).
pub fn brainkey_from_deblinded(deblinded: &[u8; crate::GT_LEN]) -> PrivateKey {
    let seed = ed25519_seed_from_material(deblinded);
    PrivateKey::ed25519_from_seed(&seed)
}

/// virgil-crypto's `generateKeysFromKeyMaterial(key_material)` with the default (Ed25519) key
/// type, for any key material of 32 to 512 bytes.
pub fn private_key_from_key_material(key_material: &[u8]) -> Result<PrivateKey> {
    if !(KEY_MATERIAL_MIN_LEN..=KEY_MATERIAL_MAX_LEN).contains(&key_material.len()) {
        return Err(Error::InvalidArgument(
            "key material must be 32 to 512 bytes long",
        ));
    }
    let seed = ed25519_seed_from_material(key_material);
    Ok(PrivateKey::ed25519_from_seed(&seed))
}

fn ed25519_seed_from_material(material: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut entropy = Zeroizing::new([0u8; SEED_LEN]);
    let digest = Zeroizing::new(
        Sha512::new()
            .chain_update(material)
            .chain_update(1u32.to_be_bytes())
            .finalize(),
    );
    entropy.copy_from_slice(&digest[..SEED_LEN]);
    let mut drbg = CtrDrbg::seeded(&entropy);
    let mut seed = Zeroizing::new([0u8; 32]);
    drbg.generate(seed.as_mut());
    seed
}

/// mbedTLS 2.28 `mbedtls_ctr_drbg_context` restricted to what key-material generation uses:
/// AES-256, derivation function on, prediction resistance off, no additional input.
struct CtrDrbg {
    key: [u8; KEY_LEN],
    v: [u8; BLOCK],
}

impl Drop for CtrDrbg {
    fn drop(&mut self) {
        self.key.zeroize();
        self.v.zeroize();
    }
}

fn aes_encrypt(key: &[u8; KEY_LEN], block: &[u8; BLOCK]) -> [u8; BLOCK] {
    let cipher = Aes256::new(key.into());
    let mut b = (*block).into();
    cipher.encrypt_block(&mut b);
    b.into()
}

fn increment(v: &mut [u8; BLOCK]) {
    for byte in v.iter_mut().rev() {
        *byte = byte.wrapping_add(1);
        if *byte != 0 {
            break;
        }
    }
}

impl CtrDrbg {
    /// `mbedtls_ctr_drbg_seed` with `entropy_len = 48`, nonce length 0, no custom data.
    fn seeded(entropy: &[u8; SEED_LEN]) -> Self {
        let mut drbg = Self {
            key: [0; KEY_LEN],
            v: [0; BLOCK],
        };
        let seed = block_cipher_df(entropy);
        drbg.update(&seed);
        drbg
    }

    /// `ctr_drbg_update_internal`: 3 counter blocks XOR `data` become the new key and V.
    fn update(&mut self, data: &[u8; SEED_LEN]) {
        let mut tmp = Zeroizing::new([0u8; SEED_LEN]);
        for chunk in tmp.chunks_exact_mut(BLOCK) {
            increment(&mut self.v);
            chunk.copy_from_slice(&aes_encrypt(&self.key, &self.v));
        }
        for (t, d) in tmp.iter_mut().zip(data) {
            *t ^= d;
        }
        self.key.copy_from_slice(&tmp[..KEY_LEN]);
        self.v.copy_from_slice(&tmp[KEY_LEN..]);
    }

    /// `mbedtls_ctr_drbg_random_with_add` without additional input (the caller asks for at most
    /// `MBEDTLS_CTR_DRBG_MAX_REQUEST` bytes, and the reseed interval is never reached).
    fn generate(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(BLOCK) {
            increment(&mut self.v);
            let block = Zeroizing::new(aes_encrypt(&self.key, &self.v));
            chunk.copy_from_slice(&block[..chunk.len()]);
        }
        self.update(&[0; SEED_LEN]);
    }
}

/// mbedTLS `block_cipher_df` (NIST SP 800-90A BCC-based derivation function) for a 48-byte input:
/// CBC-MAC under the key `00 01 … 1f` of `IV ‖ L ‖ N ‖ input ‖ 0x80 ‖ zero padding`, three times
/// with the IV counter 0, 1, 2; then encrypt the last 16 bytes three times under the first 32.
fn block_cipher_df(input: &[u8; SEED_LEN]) -> Zeroizing<[u8; SEED_LEN]> {
    // IV (16) ‖ L (4) ‖ N (4) ‖ input (48) ‖ 0x80, padded to a multiple of 16: 80 bytes.
    let mut buf = Zeroizing::new([0u8; 80]);
    buf[BLOCK..BLOCK + 4].copy_from_slice(&(SEED_LEN as u32).to_be_bytes());
    buf[BLOCK + 4..BLOCK + 8].copy_from_slice(&(SEED_LEN as u32).to_be_bytes());
    buf[BLOCK + 8..BLOCK + 8 + SEED_LEN].copy_from_slice(input);
    buf[BLOCK + 8 + SEED_LEN] = 0x80;

    let mut df_key = [0u8; KEY_LEN];
    for (i, b) in df_key.iter_mut().enumerate() {
        *b = i as u8;
    }
    let mut tmp = Zeroizing::new([0u8; SEED_LEN]);
    for (counter, out) in tmp.chunks_exact_mut(BLOCK).enumerate() {
        buf[3] = counter as u8;
        let mut chain = [0u8; BLOCK];
        for block in buf.chunks_exact(BLOCK) {
            for (c, b) in chain.iter_mut().zip(block) {
                *c ^= b;
            }
            chain = aes_encrypt(&df_key, &chain);
        }
        out.copy_from_slice(&chain);
        chain.zeroize();
    }

    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    key.copy_from_slice(&tmp[..KEY_LEN]);
    let mut x = Zeroizing::new([0u8; BLOCK]);
    x.copy_from_slice(&tmp[KEY_LEN..]);
    let mut out = Zeroizing::new([0u8; SEED_LEN]);
    for chunk in out.chunks_exact_mut(BLOCK) {
        *x = aes_encrypt(&key, &x);
        chunk.copy_from_slice(x.as_ref());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// virgil-crypto's limits: 32 to 512 bytes.
    #[test]
    fn key_material_length_limits() {
        assert!(private_key_from_key_material(&[0; 31]).is_err());
        assert!(private_key_from_key_material(&[0; 32]).is_ok());
        assert!(private_key_from_key_material(&[0; 512]).is_ok());
        assert!(private_key_from_key_material(&[0; 513]).is_err());
    }

    /// The generator itself is pinned by virgil-crypto's `key_material_example` in
    /// `vector_tests`; here: it is deterministic and its state advances.
    #[test]
    fn drbg_is_deterministic_and_advances() {
        let entropy = [0x42u8; SEED_LEN];
        let mut a = CtrDrbg::seeded(&entropy);
        let mut b = CtrDrbg::seeded(&entropy);
        let (mut x1, mut x2, mut y1) = ([0u8; 32], [0u8; 32], [0u8; 32]);
        a.generate(&mut x1);
        a.generate(&mut x2);
        b.generate(&mut y1);
        assert_eq!(x1, y1);
        assert_ne!(x1, x2);
    }
}
