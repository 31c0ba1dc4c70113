//! Keys as the ratchet uses them: identity keys (Ed25519, converted to X25519 the way
//! libvsc_ratchet does, or X25519 directly), long-term and one-time X25519 keys, and 8-byte key
//! ids.

use core::fmt;
use curve25519_dalek::edwards::CompressedEdwardsY;
use sha2::{Digest, Sha512};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, Zeroizing};

use crate::error::{Error, Result};

/// An 8-byte key id as the ratchet messages carry them. The library never computes the ids of
/// the keys a session starts from (the caller passes them in, as in libvsc_ratchet);
/// [`KeyId::of_public_key`] is the convention of Virgil's key service and ratchet SDKs.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl KeyId {
    /// The first 8 bytes of SHA-512 of a raw public key (32 bytes for X25519 and Ed25519). The
    /// ratchet itself names its chain keys this way (`vscr_ratchet_key_utils_compute_public_key_id`).
    pub fn of_public_key(raw: &[u8]) -> Self {
        let digest = Sha512::digest(raw);
        let mut id = [0; 8];
        id.copy_from_slice(&digest[..8]);
        Self(id)
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// The private identity key of one side: the Ed25519 key of its card (what e3kit uses) or an
/// X25519 key. Held as the X25519 scalar bytes the key agreement uses; zeroized on drop.
pub struct IdentityPrivateKey {
    secret: StaticSecret,
}

impl IdentityPrivateKey {
    /// From an Ed25519 private key (its 32-byte seed). Like libvsc_ratchet
    /// (`ed25519_key_to_curve25519`), the X25519 scalar is the first half of SHA-512(seed).
    pub fn from_ed25519_seed(seed: &[u8; 32]) -> Self {
        let mut digest = Sha512::digest(seed);
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&digest[..32]);
        digest.as_mut_slice().zeroize();
        let secret = StaticSecret::from(scalar);
        scalar.zeroize();
        Self { secret }
    }

    /// From a raw X25519 private key.
    pub fn from_x25519_bytes(mut bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        bytes.zeroize();
        Self { secret }
    }

    /// The X25519 public key this private key agrees with (what the peer's
    /// [`IdentityPublicKey`] converts to).
    pub fn x25519_public_key(&self) -> PublicKey {
        PublicKey::from(&self.secret)
    }

    pub(crate) fn secret(&self) -> &StaticSecret {
        &self.secret
    }
}

// The only field, a `StaticSecret`, zeroizes itself on drop.
impl zeroize::ZeroizeOnDrop for IdentityPrivateKey {}

impl fmt::Debug for IdentityPrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdentityPrivateKey")
            .field(
                "public",
                &KeyId::of_public_key(self.x25519_public_key().as_bytes()),
            )
            .finish_non_exhaustive()
    }
}

/// The public identity key of the peer, as the X25519 key it agrees with.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdentityPublicKey(PublicKey);

impl IdentityPublicKey {
    /// From a raw Ed25519 public key, mapped to its Montgomery form u = (1 + y) / (1 − y) as
    /// libvsc_ratchet does (`ed25519_pubkey_to_curve25519`). Unlike the C library, which maps any
    /// 32 bytes, bytes that are not a point on the curve are rejected.
    pub fn from_ed25519_bytes(bytes: &[u8; 32]) -> Result<Self> {
        let point = CompressedEdwardsY(*bytes)
            .decompress()
            .ok_or(Error::InvalidKey)?;
        Ok(Self(PublicKey::from(point.to_montgomery().to_bytes())))
    }

    /// From a raw X25519 public key.
    pub fn from_x25519_bytes(bytes: [u8; 32]) -> Self {
        Self(PublicKey::from(bytes))
    }

    /// The X25519 key used in the key agreement.
    pub fn x25519(&self) -> &PublicKey {
        &self.0
    }
}

impl fmt::Debug for IdentityPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "IdentityPublicKey({:?})",
            KeyId::of_public_key(self.0.as_bytes())
        )
    }
}

/// X25519 agreement that rejects an all-zero result (a small-order peer key), as
/// `curve25519_key_exchange` of the C library does.
pub(crate) fn agree(secret: &StaticSecret, public: &PublicKey) -> Result<Zeroizing<[u8; 32]>> {
    let shared = secret.diffie_hellman(public);
    if !shared.was_contributory() {
        return Err(Error::InvalidKey);
    }
    Ok(Zeroizing::new(*shared.as_bytes()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn ed25519_identity_keys_agree_like_x25519() {
        let seed = [9u8; 32];
        let private = IdentityPrivateKey::from_ed25519_seed(&seed);
        // The Ed25519 public key of the seed, computed independently from the clamped scalar.
        let digest = Sha512::digest(seed);
        let mut scalar = [0u8; 32];
        scalar.copy_from_slice(&digest[..32]);
        let edwards = curve25519_dalek::EdwardsPoint::mul_base_clamped(scalar);
        let public = IdentityPublicKey::from_ed25519_bytes(&edwards.compress().to_bytes()).unwrap();
        assert_eq!(public.x25519(), &private.x25519_public_key());
    }

    #[test]
    fn small_order_keys_are_rejected() {
        let secret = StaticSecret::from([1u8; 32]);
        assert_eq!(
            agree(&secret, &PublicKey::from([0u8; 32])).unwrap_err(),
            Error::InvalidKey
        );
    }

    #[test]
    fn key_id_is_sha512_prefix() {
        assert_eq!(KeyId::of_public_key(b"").to_string(), "cf83e1357eefb8bd");
    }
}
