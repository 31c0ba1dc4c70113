//! Signatures: Virgil's DER-wrapped hash-then-sign (spec §3).
//!
//! The data is hashed with SHA-512 and the 64-byte digest is signed as the message: pure Ed25519
//! (not Ed25519ph), or ECDSA P-256 over the digest (truncated to the curve order's size as ECDSA
//! requires).

use crate::backend::Backend;
use crate::error::{Error, Result};
use crate::format::algorithm::{AlgorithmId, HashAlg};
use crate::format::signature::VirgilSignature;
use crate::keys::{PrivateKey, PublicKey};
use rand_core::CryptoRngCore;
use sha2::Digest;

/// Signs `data`, returning the Virgil signature DER (83 bytes for Ed25519).
///
/// Ed25519 signatures are deterministic; P-256 ones are randomized with `rng` (as the library's).
pub fn sign(data: &[u8], key: &PrivateKey, rng: &mut impl CryptoRngCore) -> Result<Vec<u8>> {
    let mut signer = Signer::new();
    signer.update(data);
    signer.finish(key, rng)
}

/// Verifies a Virgil signature DER over `data`.
pub fn verify(data: &[u8], signature: &[u8], key: &PublicKey) -> Result<()> {
    let sig = VirgilSignature::decode(signature)?;
    let mut verifier = Verifier::for_hash(sig.hash());
    verifier.update(data);
    verifier.finish_decoded(&sig, key)
}

/// Streaming signer: feed the data in pieces, then sign. Produces the same bytes as [`sign`].
#[derive(Clone, Debug, Default)]
pub struct Signer {
    hasher: sha2::Sha512,
}

impl Signer {
    /// A signer over an empty message.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds more data.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Signs everything fed so far.
    pub fn finish(self, key: &PrivateKey, rng: &mut impl CryptoRngCore) -> Result<Vec<u8>> {
        let digest = self.hasher.finalize();
        let raw = sign_digest(&digest, key, rng)?;
        Ok(VirgilSignature {
            hash_alg: AlgorithmId::sha512(),
            raw,
        }
        .encode())
    }
}

/// Streaming verifier: feed the data in pieces, then verify a signature over it.
#[derive(Clone, Debug)]
pub struct Verifier {
    hasher: Hasher,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// A verifier for signatures over SHA-512 (the only hash Virgil's SDKs sign with).
    pub fn new() -> Self {
        Self::for_hash(HashAlg::Sha512)
    }

    pub(crate) fn for_hash(hash: HashAlg) -> Self {
        Self {
            hasher: Hasher::new(hash),
        }
    }

    /// Feeds more data.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// Verifies a Virgil signature DER over everything fed so far. A signature over another hash
    /// than this verifier computed is rejected as [`Error::SignatureInvalid`].
    pub fn finish(self, signature: &[u8], key: &PublicKey) -> Result<()> {
        let sig = VirgilSignature::decode(signature)?;
        self.finish_decoded(&sig, key)
    }

    pub(crate) fn finish_decoded(self, sig: &VirgilSignature, key: &PublicKey) -> Result<()> {
        if sig.hash() != self.hasher.alg() {
            return Err(Error::SignatureInvalid);
        }
        verify_digest(&self.hasher.finish(), &sig.raw, key)
    }
}

/// The SHA-2 family behind one type, for hashes named by messages.
#[derive(Clone)]
pub(crate) enum Hasher {
    Sha224(sha2::Sha224),
    Sha256(sha2::Sha256),
    Sha384(sha2::Sha384),
    Sha512(sha2::Sha512),
    /// SHA-512 from the system's libcrypto ([`Backend::OpenSsl`]).
    #[cfg(feature = "openssl")]
    OpenSslSha512(openssl::sha::Sha512),
}

impl core::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Hasher")
            .field("alg", &self.alg())
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl Hasher {
    pub fn new(alg: HashAlg) -> Self {
        match alg {
            HashAlg::Sha224 => Self::Sha224(Default::default()),
            HashAlg::Sha256 => Self::Sha256(Default::default()),
            HashAlg::Sha384 => Self::Sha384(Default::default()),
            HashAlg::Sha512 => Self::Sha512(Default::default()),
        }
    }

    /// A hasher for `alg` on `backend`. Only SHA-512, the hash every Virgil SDK signs with, has
    /// an OpenSSL variant; the others stay on RustCrypto.
    pub fn on(backend: Backend, alg: HashAlg) -> Self {
        match (backend, alg) {
            #[cfg(feature = "openssl")]
            (Backend::OpenSsl, HashAlg::Sha512) => Self::OpenSslSha512(openssl::sha::Sha512::new()),
            #[cfg(feature = "openssl")]
            (Backend::OpenSsl, _) => Self::new(alg),
            (Backend::RustCrypto, _) => Self::new(alg),
        }
    }

    pub fn alg(&self) -> HashAlg {
        match self {
            Self::Sha224(_) => HashAlg::Sha224,
            Self::Sha256(_) => HashAlg::Sha256,
            Self::Sha384(_) => HashAlg::Sha384,
            Self::Sha512(_) => HashAlg::Sha512,
            #[cfg(feature = "openssl")]
            Self::OpenSslSha512(_) => HashAlg::Sha512,
        }
    }

    pub fn backend(&self) -> Backend {
        #[cfg(feature = "openssl")]
        if matches!(self, Self::OpenSslSha512(_)) {
            return Backend::OpenSsl;
        }
        Backend::RustCrypto
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Self::Sha224(h) => h.update(data),
            Self::Sha256(h) => h.update(data),
            Self::Sha384(h) => h.update(data),
            Self::Sha512(h) => h.update(data),
            #[cfg(feature = "openssl")]
            Self::OpenSslSha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha224(h) => h.finalize().to_vec(),
            Self::Sha256(h) => h.finalize().to_vec(),
            Self::Sha384(h) => h.finalize().to_vec(),
            Self::Sha512(h) => h.finalize().to_vec(),
            #[cfg(feature = "openssl")]
            Self::OpenSslSha512(h) => h.finish().to_vec(),
        }
    }
}

/// The raw signature over a digest: 64-byte Ed25519, or DER ECDSA for P-256.
pub(crate) fn sign_digest(
    digest: &[u8],
    key: &PrivateKey,
    rng: &mut impl CryptoRngCore,
) -> Result<Vec<u8>> {
    if let Some(k) = key.ed25519() {
        use ed25519_dalek::Signer as _;
        return Ok(k.sign(digest).to_bytes().to_vec());
    }
    if let Some(k) = key.p256() {
        use p256::ecdsa::signature::hazmat::RandomizedPrehashSigner;
        let signing = p256::ecdsa::SigningKey::from(k);
        let sig: p256::ecdsa::Signature = signing
            .sign_prehash_with_rng(rng, digest)
            .map_err(|_| Error::InvalidArgument("digest cannot be signed"))?;
        return Ok(sig.to_der().as_bytes().to_vec());
    }
    Err(Error::Unsupported("this key type cannot sign"))
}

/// Verifies a raw signature over a digest.
pub(crate) fn verify_digest(digest: &[u8], raw: &[u8], key: &PublicKey) -> Result<()> {
    match key {
        PublicKey::Ed25519(k) => {
            let sig =
                ed25519_dalek::Signature::from_slice(raw).map_err(|_| Error::SignatureInvalid)?;
            // `verify`, not `verify_strict`: the reference (ref10) accepts what `verify` accepts
            // for honest signatures, and strictness could reject data the reference made.
            use ed25519_dalek::Verifier as _;
            k.verify(digest, &sig).map_err(|_| Error::SignatureInvalid)
        }
        PublicKey::P256(k) => {
            use p256::ecdsa::signature::hazmat::PrehashVerifier;
            let sig = p256::ecdsa::Signature::from_der(raw).map_err(|_| Error::SignatureInvalid)?;
            p256::ecdsa::VerifyingKey::from(k)
                .verify_prehash(digest, &sig)
                .map_err(|_| Error::SignatureInvalid)
        }
        PublicKey::X25519(_) => Err(Error::Unsupported("X25519 keys cannot verify signatures")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyType;
    use rand_core::OsRng;

    #[test]
    fn only_sha512_moves_to_openssl_and_every_hasher_agrees() {
        const ABC_SHA512: &str = "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a\
                                  2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f";
        let algs = [
            HashAlg::Sha224,
            HashAlg::Sha256,
            HashAlg::Sha384,
            HashAlg::Sha512,
        ];
        for &backend in Backend::ALL {
            for alg in algs {
                let mut h = Hasher::on(backend, alg);
                let expected_backend = if alg == HashAlg::Sha512 {
                    backend
                } else {
                    Backend::RustCrypto
                };
                assert_eq!((h.alg(), h.backend()), (alg, expected_backend));
                let mut reference = Hasher::new(alg);
                let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
                for piece in data.chunks(999) {
                    h.update(piece);
                }
                reference.update(&data);
                assert_eq!(h.finish(), reference.finish(), "{alg:?} on {backend:?}");
            }
            let mut h = Hasher::on(backend, HashAlg::Sha512);
            h.update(b"abc");
            assert_eq!(hex::encode(h.finish()), ABC_SHA512, "{backend:?}");
        }
    }

    #[test]
    fn sign_verify_every_signing_type() {
        for t in [KeyType::Ed25519, KeyType::Secp256r1] {
            let key = PrivateKey::generate(t, &mut OsRng);
            let sig = sign(b"data", &key, &mut OsRng).unwrap_or_default();
            assert!(verify(b"data", &sig, key.public_key()).is_ok());
            assert!(matches!(
                verify(b"datA", &sig, key.public_key()),
                Err(Error::SignatureInvalid)
            ));
        }
    }

    #[test]
    fn x25519_cannot_sign() {
        let key = PrivateKey::generate(KeyType::Curve25519, &mut OsRng);
        assert!(matches!(
            sign(b"x", &key, &mut OsRng),
            Err(Error::Unsupported(_))
        ));
    }
}
