//! Virgil's signature wrapper (spec §3):
//!
//! ```text
//! VirgilSignature ::= SEQUENCE {
//!     hashAlgorithm  AlgorithmIdentifier,   -- SHA-512 with NULL parameters
//!     signature      OCTET STRING           -- raw signature over the digest
//! }
//! ```
//! An Ed25519 signature is 83 bytes: `30 51 30 0d 06 09 <sha512> 05 00 04 40 <64>`.

use super::algorithm::{AlgorithmId, HashAlg};
use super::der::{self, DerReader, TAG_SEQUENCE};
use crate::error::{FormatError, FormatErrorKind};

/// A decoded signature wrapper.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VirgilSignature {
    pub hash_alg: AlgorithmId,
    pub raw: Vec<u8>,
}

impl VirgilSignature {
    pub fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let mut outer = DerReader::new(data);
        let mut seq = outer.nested(TAG_SEQUENCE, "signature")?;
        outer.finish("signature")?;
        let hash_alg = AlgorithmId::decode_from(&mut seq, "signature.hash_algorithm")?;
        if hash_alg.hash().is_none() {
            return Err(FormatError::new(
                FormatErrorKind::UnknownOid {
                    field: "signature.hash_algorithm",
                },
                2,
            ));
        }
        let raw = seq.octet_string("signature.signature")?.to_vec();
        seq.finish("signature")?;
        Ok(Self { hash_alg, raw })
    }

    pub fn encode(&self) -> Vec<u8> {
        der::sequence(&[&self.hash_alg.encode(), &der::octet_string(&self.raw)])
    }

    /// The hash named by the wrapper (checked at decode time).
    pub fn hash(&self) -> HashAlg {
        self.hash_alg.hash().unwrap_or(HashAlg::Sha512)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_wrapper_is_83_bytes() {
        let sig = VirgilSignature {
            hash_alg: AlgorithmId::sha512(),
            raw: vec![9; 64],
        };
        let enc = sig.encode();
        assert_eq!(enc.len(), 83);
        assert_eq!(&enc[..2], &[0x30, 0x51]);
        assert_eq!(VirgilSignature::decode(&enc).ok(), Some(sig));
        assert!(VirgilSignature::decode(&enc[..82]).is_err());
    }
}
