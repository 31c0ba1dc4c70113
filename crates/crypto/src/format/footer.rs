//! The encrypted footer of sign-and-encrypt messages (spec §6 step 6):
//!
//! ```text
//! VirgilMessageInfoFooter ::= SEQUENCE {
//!     version      INTEGER,                                  -- 0
//!     signerInfos  [0] EXPLICIT SET OF VirgilSignerInfo      -- DER-sorted
//! }
//! VirgilSignerInfo ::= SEQUENCE {
//!     version           INTEGER,                             -- 0
//!     signerIdentifier  OCTET STRING,                        -- signer key id
//!     signerAlgorithm   AlgorithmIdentifier,                 -- e.g. { Ed25519 }
//!     signature         OCTET STRING                         -- raw signature over the digest
//! }
//! ```
//! One Ed25519 signer: 97 bytes, `30 5f 02 01 00 a0 5a 31 58 30 56 02 01 00 04 08 <id> ...`.

use super::algorithm::AlgorithmId;
use super::der::{self, context, DerReader, TAG_SEQUENCE, TAG_SET};
use crate::error::FormatError;

/// One signer of a sign-and-encrypt message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SignerInfo {
    pub signer_id: Vec<u8>,
    pub algorithm: AlgorithmId,
    pub signature: Vec<u8>,
}

/// The decrypted footer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Footer {
    pub signers: Vec<SignerInfo>,
}

impl Footer {
    pub fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let mut outer = DerReader::new(data);
        let mut seq = outer.nested(TAG_SEQUENCE, "footer")?;
        outer.finish("footer")?;
        if seq.uint("footer.version")? != 0 {
            return Err(FormatError::invalid("footer.version", 2));
        }
        let mut explicit = seq.nested(context(0), "footer.signer_infos")?;
        let mut set = explicit.nested(TAG_SET, "footer.signer_infos")?;
        explicit.finish("footer.signer_infos")?;
        seq.finish("footer")?;
        let mut signers = Vec::new();
        while !set.is_empty() {
            let mut si = set.nested(TAG_SEQUENCE, "signer_info")?;
            if si.uint("signer_info.version")? != 0 {
                return Err(FormatError::invalid("signer_info.version", 0));
            }
            let signer_id = si.octet_string("signer_info.signer_id")?.to_vec();
            let algorithm = AlgorithmId::decode_from(&mut si, "signer_info.algorithm")?;
            let signature = si.octet_string("signer_info.signature")?.to_vec();
            si.finish("signer_info")?;
            signers.push(SignerInfo {
                signer_id,
                algorithm,
                signature,
            });
        }
        Ok(Self { signers })
    }

    pub fn encode(&self) -> Vec<u8> {
        let set = der::set_of(
            self.signers
                .iter()
                .map(|s| {
                    der::sequence(&[
                        &der::int(0),
                        &der::octet_string(&s.signer_id),
                        &s.algorithm.encode(),
                        &der::octet_string(&s.signature),
                    ])
                })
                .collect(),
        );
        der::sequence(&[&der::int(0), &der::constructed(context(0), &[&set])])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::oid;

    #[test]
    fn one_ed25519_signer_is_97_bytes_and_round_trips() {
        let footer = Footer {
            signers: vec![SignerInfo {
                signer_id: vec![1; 8],
                algorithm: AlgorithmId::bare(oid::ED25519),
                signature: vec![2; 64],
            }],
        };
        let enc = footer.encode();
        assert_eq!(enc.len(), 97);
        assert_eq!(&enc[..8], &[0x30, 0x5f, 0x02, 0x01, 0x00, 0xa0, 0x5a, 0x31]);
        assert_eq!(Footer::decode(&enc).ok(), Some(footer));
        for cut in 0..enc.len() {
            assert!(Footer::decode(&enc[..cut]).is_err());
        }
    }
}
