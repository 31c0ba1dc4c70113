//! The ECIES envelope that wraps the content key for one recipient (spec §4.4):
//!
//! ```text
//! ECIES-Envelope ::= SEQUENCE {
//!     version           INTEGER,                 -- 0
//!     originator        SubjectPublicKeyInfo,    -- ephemeral public key
//!     kdf               SEQUENCE { OID id-kdf-kdf2, AlgorithmIdentifier(SHA-384, NULL) },
//!     hmac              SEQUENCE { AlgorithmIdentifier(SHA-384, NULL), OCTET STRING mac(48) },
//!     encryptedContent  SEQUENCE { SEQUENCE { OID aes-256-cbc, OCTET STRING iv(16) }, OCTET STRING ct }
//! }
//! ```
//! 226 bytes for an Ed25519 or X25519 recipient, 274 for P-256.
//!
//! The native virgil-crypto-c 0.23 (PyPI `virgil-crypto-lib`) writes AES-256-GCM instead of CBC
//! here: `SEQUENCE { OID aes-256-gcm, OCTET STRING nonce(12) }` and a 48-byte `ct` (the 32-byte
//! secret and the GCM tag), a 222-byte envelope. Both forms are read; CBC is written, as by the
//! JS libraries (not in the spec; found by testing against that package).

use super::algorithm::AlgorithmId;
use super::der::{self, DerReader, TAG_SEQUENCE};
use super::key::{self as keyfmt, RawPublicKey};
use super::oid;
use crate::error::{FormatError, FormatErrorKind};

/// A decoded ECIES envelope. Only the algorithms the library produces are accepted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EciesEnvelope {
    /// The ephemeral public key, as SPKI DER.
    pub originator: Vec<u8>,
    pub mac: [u8; 48],
    pub cipher: KeyCipher,
    pub ciphertext: Vec<u8>,
}

/// The symmetric cipher of the envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum KeyCipher {
    /// AES-256-CBC with PKCS#7 (the JS libraries).
    Cbc { iv: [u8; 16] },
    /// AES-256-GCM, tag appended to the ciphertext (native virgil-crypto-c 0.23).
    Gcm { nonce: [u8; 12] },
}

fn unsupported(field: &'static str, offset: usize) -> FormatError {
    FormatError::new(FormatErrorKind::UnknownOid { field }, offset)
}

impl EciesEnvelope {
    pub fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let mut outer = DerReader::new(data);
        let mut seq = outer.nested(TAG_SEQUENCE, "ecies")?;
        outer.finish("ecies")?;
        if seq.uint("ecies.version")? != 0 {
            return Err(FormatError::invalid("ecies.version", 3));
        }
        let originator_tlv = seq.clone().read(TAG_SEQUENCE, "ecies.originator")?;
        keyfmt::decode_public_from(&mut seq, "ecies.originator")?;

        let mut kdf = seq.nested(TAG_SEQUENCE, "ecies.kdf")?;
        let kdf_offset = originator_tlv.offset + originator_tlv.raw.len();
        if kdf.oid("ecies.kdf")? != oid::KDF2 {
            return Err(unsupported("ecies.kdf", kdf_offset));
        }
        if AlgorithmId::decode_from(&mut kdf, "ecies.kdf.hash")? != AlgorithmId::sha384() {
            return Err(unsupported("ecies.kdf.hash", kdf_offset));
        }
        kdf.finish("ecies.kdf")?;

        let mut hmac = seq.nested(TAG_SEQUENCE, "ecies.hmac")?;
        if AlgorithmId::decode_from(&mut hmac, "ecies.hmac.hash")?.hash()
            != AlgorithmId::sha384().hash()
        {
            return Err(unsupported("ecies.hmac.hash", kdf_offset));
        }
        let mac_tlv = hmac.read(der::TAG_OCTET_STRING, "ecies.hmac.mac")?;
        let mac = mac_tlv
            .value
            .try_into()
            .map_err(|_| FormatError::invalid("ecies.hmac.mac", mac_tlv.offset))?;
        hmac.finish("ecies.hmac")?;

        let mut content = seq.nested(TAG_SEQUENCE, "ecies.encrypted_content")?;
        let mut cipher_seq = content.nested(TAG_SEQUENCE, "ecies.cipher")?;
        let cipher_oid = cipher_seq.oid("ecies.cipher")?;
        let iv_tlv = cipher_seq.read(der::TAG_OCTET_STRING, "ecies.cipher.iv")?;
        let bad_iv = || FormatError::invalid("ecies.cipher.iv", iv_tlv.offset);
        let cipher = match cipher_oid {
            oid::AES256_CBC => KeyCipher::Cbc {
                iv: iv_tlv.value.try_into().map_err(|_| bad_iv())?,
            },
            oid::AES256_GCM => KeyCipher::Gcm {
                nonce: iv_tlv.value.try_into().map_err(|_| bad_iv())?,
            },
            _ => return Err(unsupported("ecies.cipher", mac_tlv.offset)),
        };
        cipher_seq.finish("ecies.cipher")?;
        let ciphertext = content.octet_string("ecies.ciphertext")?.to_vec();
        content.finish("ecies.encrypted_content")?;
        seq.finish("ecies")?;
        Ok(Self {
            originator: originator_tlv.raw.to_vec(),
            mac,
            cipher,
            ciphertext,
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let kdf = der::sequence(&[&der::oid(oid::KDF2), &AlgorithmId::sha384().encode()]);
        let hmac = der::sequence(&[
            &AlgorithmId::sha384().encode(),
            &der::octet_string(&self.mac),
        ]);
        let cipher = match &self.cipher {
            KeyCipher::Cbc { iv } => {
                der::sequence(&[&der::oid(oid::AES256_CBC), &der::octet_string(iv)])
            }
            KeyCipher::Gcm { nonce } => {
                der::sequence(&[&der::oid(oid::AES256_GCM), &der::octet_string(nonce)])
            }
        };
        let content = der::sequence(&[&cipher, &der::octet_string(&self.ciphertext)]);
        der::sequence(&[&der::int(0), &self.originator, &kdf, &hmac, &content])
    }

    /// The ephemeral key's raw material.
    pub fn originator_key(&self) -> Result<RawPublicKey, FormatError> {
        keyfmt::decode_public(&self.originator)
    }
}
