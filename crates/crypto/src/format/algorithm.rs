//! `AlgorithmIdentifier` (spec §1 item 4).
//!
//! Kept generic (OID bytes plus the raw parameter element) so that every identifier, including
//! ones this crate does not interpret (RSA, compound keys), re-encodes byte for byte.

use super::der::{self, DerReader, TAG_NULL, TAG_SEQUENCE};
use super::oid;
use crate::error::FormatError;

/// `AlgorithmIdentifier ::= SEQUENCE { algorithm OID, parameters ANY OPTIONAL }`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AlgorithmId {
    pub oid: Vec<u8>,
    /// The complete DER element of the parameters, if present.
    pub params: Option<Vec<u8>>,
}

/// The parameter element `NULL`.
const NULL: &[u8] = &[TAG_NULL, 0x00];

impl AlgorithmId {
    /// An identifier whose parameters are absent (Ed25519, X25519, HKDF, RandomPadding).
    pub fn bare(oid: &[u8]) -> Self {
        Self {
            oid: oid.to_vec(),
            params: None,
        }
    }

    /// An identifier with NULL parameters (hashes, rsaEncryption).
    pub fn with_null(oid: &[u8]) -> Self {
        Self {
            oid: oid.to_vec(),
            params: Some(NULL.to_vec()),
        }
    }

    pub fn with_params(oid: &[u8], params: Vec<u8>) -> Self {
        Self {
            oid: oid.to_vec(),
            params: Some(params),
        }
    }

    /// SHA-512 written the way the library writes it, with NULL parameters.
    pub fn sha512() -> Self {
        Self::with_null(oid::SHA512)
    }

    pub fn sha384() -> Self {
        Self::with_null(oid::SHA384)
    }

    pub fn decode_from(r: &mut DerReader<'_>, field: &'static str) -> Result<Self, FormatError> {
        let mut seq = r.nested(TAG_SEQUENCE, field)?;
        let oid = seq.oid(field)?.to_vec();
        let params = if seq.is_empty() {
            None
        } else {
            Some(seq.read_any(field)?.raw.to_vec())
        };
        seq.finish(field)?;
        Ok(Self { oid, params })
    }

    pub fn encode(&self) -> Vec<u8> {
        let oid = der::oid(&self.oid);
        match &self.params {
            Some(p) => der::sequence(&[&oid, p]),
            None => der::sequence(&[&oid]),
        }
    }

    /// True when the parameters are absent or NULL: the two forms readers accept for hashes.
    pub fn params_absent_or_null(&self) -> bool {
        self.params.as_deref().is_none_or(|p| p == NULL)
    }

    /// Interprets the identifier as a hash algorithm (either parameter form is accepted).
    pub fn hash(&self) -> Option<HashAlg> {
        if !self.params_absent_or_null() {
            return None;
        }
        match self.oid.as_slice() {
            oid::SHA224 => Some(HashAlg::Sha224),
            oid::SHA256 => Some(HashAlg::Sha256),
            oid::SHA384 => Some(HashAlg::Sha384),
            oid::SHA512 => Some(HashAlg::Sha512),
            _ => None,
        }
    }
}

/// The SHA-2 hashes the formats may name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum HashAlg {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha512_with_null_matches_the_library() {
        assert_eq!(
            AlgorithmId::sha512().encode(),
            [
                0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
                0x00
            ]
        );
    }

    #[test]
    fn round_trip_with_and_without_params() {
        for alg in [
            AlgorithmId::bare(oid::ED25519),
            AlgorithmId::sha384(),
            AlgorithmId::with_params(oid::AES256_GCM, der::octet_string(&[1; 12])),
        ] {
            let enc = alg.encode();
            let mut r = DerReader::new(&enc);
            assert_eq!(AlgorithmId::decode_from(&mut r, "alg").ok(), Some(alg));
            assert!(r.finish("alg").is_ok());
        }
    }

    #[test]
    fn hash_accepts_absent_params_but_not_others() {
        assert_eq!(AlgorithmId::bare(oid::SHA512).hash(), Some(HashAlg::Sha512));
        assert_eq!(
            AlgorithmId::with_params(oid::SHA512, der::octet_string(&[])).hash(),
            None
        );
    }
}
