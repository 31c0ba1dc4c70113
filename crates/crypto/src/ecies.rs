//! Wrapping the content key for one recipient with ECIES (spec §4.4).
//!
//! Ephemeral key of the recipient's type; X25519 (Ed25519 keys converted to their Montgomery
//! form) or P-256 ECDH; KDF2-SHA-384 to 80 bytes; AES-256-CBC with PKCS#7 of the 32-byte secret;
//! HMAC-SHA-384 over the CBC ciphertext.

use crate::error::{Error, Result};
use crate::format::ecies::{EciesEnvelope, KeyCipher};
use crate::keys::{KeyType, PrivateKey, PublicKey};
use aes::cipher::{block_padding::Pkcs7, BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use hmac::Mac;
use rand_core::CryptoRngCore;
use sha2::Digest;
use zeroize::{Zeroize, Zeroizing};

type HmacSha384 = hmac::Hmac<sha2::Sha384>;

/// KDF2 (ISO 18033-2) over SHA-384 with empty "otherinfo" — the same construction as the
/// ANSI X9.63 KDF. Spelled out here because it is two hash calls and the RustCrypto crate for it is
/// still a pre-release on a newer `digest`.
fn kdf2_sha384(z: &[u8]) -> Zeroizing<[u8; 80]> {
    let mut out = Zeroizing::new([0u8; 80]);
    for (counter, chunk) in (1u32..).zip(out.chunks_mut(48)) {
        let mut h = sha2::Sha384::new();
        h.update(z);
        h.update(counter.to_be_bytes());
        let block = Zeroizing::new(h.finalize());
        chunk.copy_from_slice(&block[..chunk.len()]);
    }
    out
}

/// The Montgomery-form public key used for X25519 agreement with this key.
fn montgomery(key: &PublicKey) -> Option<x25519_dalek::PublicKey> {
    match key {
        PublicKey::Ed25519(k) => Some(x25519_dalek::PublicKey::from(k.to_montgomery().to_bytes())),
        PublicKey::X25519(k) => Some(*k),
        PublicKey::P256(_) => None,
    }
}

fn x25519_agree(
    secret: &x25519_dalek::StaticSecret,
    public: &x25519_dalek::PublicKey,
) -> Result<Zeroizing<[u8; 32]>> {
    let shared = secret.diffie_hellman(public);
    if !shared.was_contributory() {
        return Err(Error::InvalidKey(
            "key agreement produced the all-zero secret",
        ));
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

fn p256_agree(secret: &p256::SecretKey, public: &p256::PublicKey) -> Zeroizing<[u8; 32]> {
    let shared = p256::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine());
    let mut z = Zeroizing::new([0u8; 32]);
    z.copy_from_slice(shared.raw_secret_bytes());
    z
}

/// Wraps `secret` (32 bytes) for `recipient`. Returns the envelope DER.
pub(crate) fn wrap(
    recipient: &PublicKey,
    secret: &[u8; 32],
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>> {
    // The ephemeral key has the recipient's type (an Ed25519 recipient gets an Ed25519 one).
    let ephemeral = PrivateKey::generate(recipient.key_type(), rng);
    let z = agree(&ephemeral, recipient)?;
    let k = kdf2_sha384(z.as_ref());
    let mut iv = [0u8; 16];
    rng.fill_bytes(&mut iv);
    let ciphertext = cbc::Encryptor::<aes::Aes256>::new_from_slices(&k[..32], &iv)
        .map_err(|_| Error::InvalidArgument("key wrap key length"))?
        .encrypt_padded_vec_mut::<Pkcs7>(secret);
    let mut mac = HmacSha384::new_from_slice(&k[32..80])
        .map_err(|_| Error::InvalidArgument("key wrap MAC key length"))?;
    mac.update(&ciphertext);
    Ok(EciesEnvelope {
        originator: ephemeral.public_key().to_der(),
        mac: mac.finalize().into_bytes().into(),
        cipher: KeyCipher::Cbc { iv },
        ciphertext,
    }
    .encode())
}

fn agree(private: &PrivateKey, public: &PublicKey) -> Result<Zeroizing<[u8; 32]>> {
    match (private.key_type(), public) {
        (KeyType::Secp256r1, PublicKey::P256(p)) => {
            let secret = private.p256().ok_or(Error::InvalidKey("not a P-256 key"))?;
            Ok(p256_agree(secret, p))
        }
        (KeyType::Ed25519 | KeyType::Curve25519, PublicKey::Ed25519(edwards)) => {
            // X25519(k, u(P)) is the u-coordinate of clamp(k)·P. Computing it on the Edwards form
            // uses curve25519-dalek's vectorised (and still constant-time) variable-base
            // multiplication, about twice as fast as the Montgomery ladder, with the same result.
            let secret = private
                .x25519_secret()
                .ok_or(Error::InvalidKey("key cannot agree over Curve25519"))?;
            let scalar = Zeroizing::new(secret.to_bytes());
            let shared = Zeroizing::new(
                edwards
                    .to_edwards()
                    .mul_clamped(*scalar)
                    .to_montgomery()
                    .to_bytes(),
            );
            if bool::from(subtle::ConstantTimeEq::ct_eq(&shared[..], &[0u8; 32][..])) {
                return Err(Error::InvalidKey(
                    "key agreement produced the all-zero secret",
                ));
            }
            Ok(shared)
        }
        (KeyType::Ed25519 | KeyType::Curve25519, _) => {
            let secret = private
                .x25519_secret()
                .ok_or(Error::InvalidKey("key cannot agree over Curve25519"))?;
            let peer = montgomery(public).ok_or(Error::InvalidKey("key types do not match"))?;
            x25519_agree(&secret, &peer)
        }
        _ => Err(Error::InvalidKey("key types do not match")),
    }
}

/// Unwraps the 32-byte secret from an envelope with the recipient's private key. Every failure
/// after parsing is [`Error::DecryptionFailed`].
pub(crate) fn unwrap(envelope: &[u8], key: &PrivateKey) -> Result<Zeroizing<[u8; 32]>> {
    let env = EciesEnvelope::decode(envelope)?;
    let originator = PublicKey::from_raw(env.originator_key()?).map_err(|e| match e {
        Error::Unsupported(_) => Error::DecryptionFailed,
        other => other,
    })?;
    let z = agree(key, &originator).map_err(|_| Error::DecryptionFailed)?;
    let k = kdf2_sha384(z.as_ref());
    let mut mac = HmacSha384::new_from_slice(&k[32..80]).map_err(|_| Error::DecryptionFailed)?;
    mac.update(&env.ciphertext);
    // Constant-time comparison inside `verify_slice`.
    mac.verify_slice(&env.mac)
        .map_err(|_| Error::DecryptionFailed)?;
    let plain = Zeroizing::new(match &env.cipher {
        KeyCipher::Cbc { iv } => cbc::Decryptor::<aes::Aes256>::new_from_slices(&k[..32], iv)
            .map_err(|_| Error::DecryptionFailed)?
            .decrypt_padded_vec_mut::<Pkcs7>(&env.ciphertext)
            .map_err(|_| Error::DecryptionFailed)?,
        KeyCipher::Gcm { nonce } => {
            let split = env
                .ciphertext
                .len()
                .checked_sub(16)
                .ok_or(Error::DecryptionFailed)?;
            let (ct, tag) = env.ciphertext.split_at(split);
            let mut plain = ct.to_vec();
            let mut key = Zeroizing::new([0u8; 32]);
            key.copy_from_slice(&k[..32]);
            let mut gcm = crate::gcm::AesGcmStream::new(&key, nonce);
            gcm.decrypt(&mut plain)
                .map_err(|_| Error::DecryptionFailed)?;
            if !bool::from(subtle::ConstantTimeEq::ct_eq(gcm.finish().as_slice(), tag)) {
                plain.zeroize();
                return Err(Error::DecryptionFailed);
            }
            plain
        }
    });
    let mut secret = Zeroizing::new([0u8; 32]);
    if plain.len() != 32 {
        return Err(Error::DecryptionFailed);
    }
    secret.copy_from_slice(&plain);
    Ok(secret)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn kdf2_matches_two_hash_blocks() {
        let k = kdf2_sha384(b"z");
        let mut first = sha2::Sha384::new();
        first.update(b"z\x00\x00\x00\x01");
        assert_eq!(&k[..48], first.finalize().as_slice());
    }

    #[test]
    fn wrap_unwrap_every_type_and_reject_others() {
        for t in [KeyType::Ed25519, KeyType::Curve25519, KeyType::Secp256r1] {
            let key = PrivateKey::generate(t, &mut OsRng);
            let other = PrivateKey::generate(t, &mut OsRng);
            let env = wrap(key.public_key(), &[5; 32], &mut OsRng).unwrap_or_default();
            let expected_len = if t == KeyType::Secp256r1 { 274 } else { 226 };
            assert_eq!(env.len(), expected_len);
            assert_eq!(unwrap(&env, &key).map(|s| *s).ok(), Some([5; 32]));
            assert!(matches!(unwrap(&env, &other), Err(Error::DecryptionFailed)));
        }
    }
}
