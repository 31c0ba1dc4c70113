//! Key pairs, their import/export and key identifiers (spec §2).

use crate::error::{Error, Result};
use crate::format::algorithm::AlgorithmId;
use crate::format::key::{self as keyfmt, RawPrivateKey, RawPublicKey};
use crate::format::oid;
use base64::Engine as _;
use core::fmt;
use core::str::FromStr;
use rand_core::CryptoRngCore;
use sha2::Digest;
use zeroize::Zeroizing;

/// The key algorithms this crate generates and uses (spec §2.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// Ed25519: signs, and encrypts through its X25519 form. Virgil's and e3kit's default.
    #[default]
    Ed25519,
    /// X25519 (Virgil's `CURVE25519`): encryption only.
    Curve25519,
    /// NIST P-256 (Virgil's `SECP256R1`): ECDSA and ECIES.
    Secp256r1,
}

impl KeyType {
    /// The lowercase name used on the command line (`ed25519`, `curve25519`, `secp256r1`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Ed25519 => "ed25519",
            Self::Curve25519 => "curve25519",
            Self::Secp256r1 => "secp256r1",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for KeyType {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "ed25519" | "default" => Ok(Self::Ed25519),
            "curve25519" | "x25519" => Ok(Self::Curve25519),
            "secp256r1" | "p256" | "p-256" => Ok(Self::Secp256r1),
            _ => Err(Error::InvalidArgument(
                "unknown key type (expected ed25519, curve25519 or secp256r1)",
            )),
        }
    }
}

/// How key identifiers are computed (spec §2.4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyIdScheme {
    /// `SHA-512(SPKI DER)[0..8]`, the library default.
    #[default]
    Sha512Truncated,
    /// `SHA-256(SPKI DER)`, Virgil's `useSha256Identifiers`.
    Sha256,
}

/// A key identifier: what recipients are matched by, and what names a signer (spec §2.4).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyId {
    /// The default 8-byte identifier.
    Short([u8; 8]),
    /// The 32-byte SHA-256 identifier.
    Sha256([u8; 32]),
}

impl KeyId {
    /// The identifier's bytes, as stored in messages.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Short(b) => b,
            Self::Sha256(b) => b,
        }
    }

    /// Interprets stored bytes as an identifier (8 or 32 bytes).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if let Ok(b) = <[u8; 8]>::try_from(bytes) {
            Some(Self::Short(b))
        } else {
            <[u8; 32]>::try_from(bytes).ok().map(Self::Sha256)
        }
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.as_bytes() {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidArgument("a key id is 16 or 64 hex characters");
        if !s.is_ascii() || !s.len().is_multiple_of(2) {
            return Err(invalid());
        }
        let bytes = (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| invalid())?;
        Self::from_bytes(&bytes).ok_or_else(invalid)
    }
}

/// A public key of one of the supported algorithms.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublicKey {
    /// Ed25519 verifying key.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// X25519 public key.
    X25519(x25519_dalek::PublicKey),
    /// NIST P-256 public key.
    P256(p256::PublicKey),
}

impl PublicKey {
    /// The key's algorithm.
    pub fn key_type(&self) -> KeyType {
        match self {
            Self::Ed25519(_) => KeyType::Ed25519,
            Self::X25519(_) => KeyType::Curve25519,
            Self::P256(_) => KeyType::Secp256r1,
        }
    }

    /// Decodes a `SubjectPublicKeyInfo` DER (spec §2.3). Trailing bytes, unsupported algorithms and
    /// points off the curve are errors.
    pub fn from_der(der: &[u8]) -> Result<Self> {
        Self::from_raw(keyfmt::decode_public(der)?)
    }

    pub(crate) fn from_raw(raw: RawPublicKey) -> Result<Self> {
        match raw {
            RawPublicKey::Ed25519(b) => ed25519_dalek::VerifyingKey::from_bytes(&b)
                .map(Self::Ed25519)
                .map_err(|_| Error::InvalidKey("Ed25519 public key is not a curve point")),
            RawPublicKey::X25519(b) => Ok(Self::X25519(x25519_dalek::PublicKey::from(b))),
            RawPublicKey::P256(point) => p256::PublicKey::from_sec1_bytes(&point)
                .map(Self::P256)
                .map_err(|_| Error::InvalidKey("P-256 public key is not a curve point")),
            RawPublicKey::Unsupported(what) => Err(Error::Unsupported(what)),
        }
    }

    /// Imports a public key given as DER, base64 of DER (what virgil-crypto exports) or PEM.
    pub fn import(data: &[u8]) -> Result<Self> {
        Self::from_der(&decode_armor(data)?)
    }

    /// The `SubjectPublicKeyInfo` DER, exactly as virgil-crypto's `exportPublicKey`.
    pub fn to_der(&self) -> Vec<u8> {
        keyfmt::encode_public(&self.algorithm(), &self.raw_bytes())
    }

    /// Base64 of [`Self::to_der`].
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(self.to_der())
    }

    pub(crate) fn raw_bytes(&self) -> Vec<u8> {
        match self {
            Self::Ed25519(k) => k.to_bytes().to_vec(),
            Self::X25519(k) => k.to_bytes().to_vec(),
            Self::P256(k) => {
                use p256::elliptic_curve::sec1::ToEncodedPoint;
                k.to_encoded_point(false).as_bytes().to_vec()
            }
        }
    }

    /// The AlgorithmIdentifier that names this key in SPKI and in recipient infos (spec §4.4).
    pub(crate) fn algorithm(&self) -> AlgorithmId {
        match self {
            Self::Ed25519(_) => AlgorithmId::bare(oid::ED25519),
            Self::X25519(_) => AlgorithmId::bare(oid::X25519),
            Self::P256(_) => keyfmt::p256_algorithm(),
        }
    }

    /// The key identifier under the given scheme (spec §2.4).
    pub fn key_id_with(&self, scheme: KeyIdScheme) -> KeyId {
        let der = self.to_der();
        match scheme {
            KeyIdScheme::Sha512Truncated => {
                let digest = sha2::Sha512::digest(&der);
                let mut id = [0u8; 8];
                id.copy_from_slice(&digest[..8]);
                KeyId::Short(id)
            }
            KeyIdScheme::Sha256 => KeyId::Sha256(sha2::Sha256::digest(&der).into()),
        }
    }

    /// The default 8-byte key identifier.
    pub fn key_id(&self) -> KeyId {
        self.key_id_with(KeyIdScheme::Sha512Truncated)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({}, {})", self.key_type(), self.key_id())
    }
}

/// A private key. Its secret material is zeroized on drop; `Debug` shows only the type and key id.
///
/// There is deliberately no `Clone`: copies of secrets are made explicitly with
/// [`PrivateKey::to_der`] and re-import.
pub struct PrivateKey {
    secret: Secret,
    public: PublicKey,
}

enum Secret {
    // Boxed so the secret does not get copied around the stack when the key moves.
    Ed25519(Box<ed25519_dalek::SigningKey>),
    X25519(Box<x25519_dalek::StaticSecret>),
    P256(Box<p256::SecretKey>),
}

impl PrivateKey {
    /// Generates a new key pair.
    pub fn generate(key_type: KeyType, rng: &mut impl CryptoRngCore) -> Self {
        match key_type {
            KeyType::Ed25519 => {
                Self::from_ed25519(Box::new(ed25519_dalek::SigningKey::generate(rng)))
            }
            KeyType::Curve25519 => {
                let mut bytes = Zeroizing::new([0u8; 32]);
                rng.fill_bytes(bytes.as_mut());
                Self::from_x25519(Box::new(x25519_dalek::StaticSecret::from(*bytes)))
            }
            KeyType::Secp256r1 => Self::from_p256(Box::new(p256::SecretKey::random(rng))),
        }
    }

    fn from_ed25519(key: Box<ed25519_dalek::SigningKey>) -> Self {
        let public = PublicKey::Ed25519(key.verifying_key());
        Self {
            secret: Secret::Ed25519(key),
            public,
        }
    }

    fn from_x25519(key: Box<x25519_dalek::StaticSecret>) -> Self {
        let public = PublicKey::X25519(x25519_dalek::PublicKey::from(key.as_ref()));
        Self {
            secret: Secret::X25519(key),
            public,
        }
    }

    fn from_p256(key: Box<p256::SecretKey>) -> Self {
        let public = PublicKey::P256(key.public_key());
        Self {
            secret: Secret::P256(key),
            public,
        }
    }

    /// Builds an Ed25519 key from its 32-byte seed (RFC 8032 private key).
    pub fn ed25519_from_seed(seed: &[u8; 32]) -> Self {
        Self::from_ed25519(Box::new(ed25519_dalek::SigningKey::from_bytes(seed)))
    }

    /// Decodes the library's private key DER (spec §2.2): PKCS#8 for Ed25519/X25519, SEC1 (or
    /// PKCS#8-wrapped SEC1) for P-256. RSA and compound keys are [`Error::Unsupported`].
    pub fn from_der(der: &[u8]) -> Result<Self> {
        match keyfmt::decode_private(der)? {
            RawPrivateKey::Ed25519(seed) => Ok(Self::ed25519_from_seed(&seed)),
            RawPrivateKey::X25519(bytes) => Ok(Self::from_x25519(Box::new(
                x25519_dalek::StaticSecret::from(*bytes),
            ))),
            RawPrivateKey::P256 { d, public } => {
                let key = p256::SecretKey::from_slice(d.as_ref())
                    .map_err(|_| Error::InvalidKey("P-256 private scalar out of range"))?;
                let key = Self::from_p256(Box::new(key));
                if let Some(point) = public {
                    let stated = p256::PublicKey::from_sec1_bytes(&point)
                        .map_err(|_| Error::InvalidKey("P-256 public key is not a curve point"))?;
                    if PublicKey::P256(stated) != key.public {
                        return Err(Error::InvalidKey(
                            "P-256 public key does not belong to the private key",
                        ));
                    }
                }
                Ok(key)
            }
        }
    }

    /// Imports a private key given as DER, base64 of DER (what virgil-crypto exports) or PEM.
    pub fn import(data: &[u8]) -> Result<Self> {
        let der = Zeroizing::new(decode_armor(data)?);
        Self::from_der(&der)
    }

    /// The private key DER, exactly as virgil-crypto's `exportPrivateKey`.
    pub fn to_der(&self) -> Zeroizing<Vec<u8>> {
        match &self.secret {
            Secret::Ed25519(k) => keyfmt::encode_curve_private(oid::ED25519, k.as_bytes()),
            Secret::X25519(k) => {
                keyfmt::encode_curve_private(oid::X25519, &Zeroizing::new(k.to_bytes()))
            }
            Secret::P256(k) => {
                let d: Zeroizing<[u8; 32]> = Zeroizing::new(k.to_bytes().into());
                keyfmt::encode_p256_private(&d, &self.public.raw_bytes())
            }
        }
    }

    /// Base64 of [`Self::to_der`].
    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(self.to_der().as_slice()))
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The key's algorithm.
    pub fn key_type(&self) -> KeyType {
        self.public.key_type()
    }

    pub(crate) fn ed25519(&self) -> Option<&ed25519_dalek::SigningKey> {
        match &self.secret {
            Secret::Ed25519(k) => Some(k),
            _ => None,
        }
    }

    pub(crate) fn p256(&self) -> Option<&p256::SecretKey> {
        match &self.secret {
            Secret::P256(k) => Some(k),
            _ => None,
        }
    }

    /// The X25519 scalar input for key agreement: X25519 keys as stored; Ed25519 keys converted
    /// as the library does (first half of SHA-512(seed), clamped inside X25519) (spec §4.4).
    pub(crate) fn x25519_secret(&self) -> Option<x25519_dalek::StaticSecret> {
        match &self.secret {
            Secret::Ed25519(k) => Some(x25519_dalek::StaticSecret::from(*Zeroizing::new(
                k.to_scalar_bytes(),
            ))),
            Secret::X25519(k) => Some(x25519_dalek::StaticSecret::from(*Zeroizing::new(
                k.to_bytes(),
            ))),
            Secret::P256(_) => None,
        }
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("type", &self.key_type())
            .field("key_id", &self.public.key_id())
            .finish_non_exhaustive()
    }
}

/// Turns DER, base64-of-DER or PEM input into DER.
fn decode_armor(data: &[u8]) -> Result<Vec<u8>> {
    let invalid = Error::InvalidArgument("key is neither DER, base64 of DER, nor PEM");
    if data.first() == Some(&0x30) {
        return Ok(data.to_vec());
    }
    let text = core::str::from_utf8(data).map_err(|_| invalid)?;
    let trimmed = text.trim();
    if trimmed.starts_with("-----BEGIN") {
        let (_label, der) = pem_rfc7468::decode_vec(trimmed.as_bytes())
            .map_err(|_| Error::InvalidArgument("malformed PEM"))?;
        return Ok(der);
    }
    let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| Error::InvalidArgument("key is neither DER, base64 of DER, nor PEM"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::OsRng;

    #[test]
    fn key_id_round_trips_as_hex() {
        let key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
        for scheme in [KeyIdScheme::Sha512Truncated, KeyIdScheme::Sha256] {
            let id = key.public_key().key_id_with(scheme);
            assert_eq!(id.to_string().parse::<KeyId>().ok(), Some(id));
        }
        assert!("abc".parse::<KeyId>().is_err());
        assert!("zz00000000000000".parse::<KeyId>().is_err());
    }

    #[test]
    fn every_type_round_trips_through_der_base64_and_pem() {
        for t in [KeyType::Ed25519, KeyType::Curve25519, KeyType::Secp256r1] {
            let key = PrivateKey::generate(t, &mut OsRng);
            let der = key.to_der();
            let again = PrivateKey::import(&der).map(|k| k.to_der());
            assert_eq!(again.ok().as_deref(), Some(&*der));
            let b64 = key.to_base64();
            assert_eq!(
                PrivateKey::import(b64.as_bytes())
                    .map(|k| k.to_der())
                    .ok()
                    .as_deref(),
                Some(&*der)
            );
            let pem = pem_rfc7468::encode_string("PRIVATE KEY", pem_rfc7468::LineEnding::LF, &der)
                .unwrap_or_default();
            assert_eq!(
                PrivateKey::import(pem.as_bytes())
                    .map(|k| k.to_der())
                    .ok()
                    .as_deref(),
                Some(&*der)
            );
            let public = key.public_key();
            assert_eq!(
                PublicKey::import(public.to_base64().as_bytes())
                    .ok()
                    .as_ref(),
                Some(public)
            );
        }
    }

    #[test]
    fn debug_shows_no_secret() {
        let key = PrivateKey::ed25519_from_seed(&[1; 32]);
        let shown = format!("{key:?}");
        assert_eq!(
            shown,
            format!(
                "PrivateKey {{ type: Ed25519, key_id: {:?}, .. }}",
                key.public_key().key_id()
            )
        );
    }
}
