//! Key encodings (spec §2.2, §2.3).
//!
//! Private keys: PKCS#8 `PrivateKeyInfo` for Ed25519 and X25519 (RFC 8410 style, no optional
//! fields), SEC1 `ECPrivateKey` for P-256 (the library does not use PKCS#8 for it):
//!
//! ```text
//! 30 2e 02 01 00 30 05 06 03 2b 65 70 04 22 04 20 <32-byte seed>           Ed25519 (X25519: 2b 65 6e)
//! 30 77 02 01 01 04 20 <d> a0 0a 06 08 <secp256r1> a1 44 03 42 00 04 <X> <Y>  P-256
//! ```
//!
//! Public keys: X.509 `SubjectPublicKeyInfo`:
//!
//! ```text
//! 30 2a 30 05 06 03 2b 65 70 03 21 00 <32>                                   Ed25519 (X25519: 2b 65 6e)
//! 30 59 30 13 06 07 <ecPublicKey> 06 08 <secp256r1> 03 42 00 04 <X> <Y>      P-256
//! ```
//!
//! The decoder also reads P-256 keys wrapped in PKCS#8 (what OpenSSL writes) and PKCS#8 version 1
//! with a trailing public key, but always encodes the library's forms.

use super::algorithm::AlgorithmId;
use super::der::{self, context, DerReader, TAG_BIT_STRING, TAG_SEQUENCE};
use super::oid;
use crate::error::{FormatError, FormatErrorKind};
use zeroize::Zeroizing;

/// Raw key material of a private key, as found in its encoding.
pub(crate) enum RawPrivateKey {
    Ed25519(Zeroizing<[u8; 32]>),
    X25519(Zeroizing<[u8; 32]>),
    /// The scalar and, when the encoding carried it, the uncompressed public point.
    P256 {
        d: Zeroizing<[u8; 32]>,
        public: Option<Vec<u8>>,
    },
}

/// Raw key material of a public key.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RawPublicKey {
    Ed25519([u8; 32]),
    X25519([u8; 32]),
    /// A SEC1 point (the decoder of the key type decides which forms it accepts).
    P256(Vec<u8>),
    /// A key type that can appear in messages but that this crate does not use (RSA, compound).
    Unsupported(&'static str),
}

fn array32(bytes: &[u8], field: &'static str, offset: usize) -> Result<[u8; 32], FormatError> {
    bytes
        .try_into()
        .map_err(|_| FormatError::invalid(field, offset))
}

pub(crate) fn decode_private(data: &[u8]) -> Result<RawPrivateKey, FormatError> {
    let mut outer = DerReader::new(data);
    let mut seq = outer.nested(TAG_SEQUENCE, "private_key")?;
    outer.finish("private_key")?;
    let version = seq.uint("private_key.version")?;
    if version == 1 && seq.peek_tag() == Some(der::TAG_OCTET_STRING) {
        let key = decode_sec1_body(&mut seq)?;
        seq.finish("ec_private_key")?;
        return Ok(key);
    }
    if version > 1 {
        return Err(FormatError::invalid("private_key.version", 0));
    }
    let alg = AlgorithmId::decode_from(&mut seq, "private_key.algorithm")?;
    let inner = seq.read(der::TAG_OCTET_STRING, "private_key.private_key")?;
    // Optional attributes [0] and (version 1) publicKey [1] IMPLICIT BIT STRING are skipped.
    seq.optional(context(0), "private_key.attributes")?;
    if version == 1 {
        seq.optional(0x81, "private_key.public_key")?;
    }
    seq.finish("private_key")?;
    let mut inner_reader = DerReader::at(inner.value, inner.value_offset);
    let key = match (alg.oid.as_slice(), alg.params.as_deref()) {
        (oid::ED25519, None) | (oid::X25519, None) => {
            let seed = inner_reader.read(der::TAG_OCTET_STRING, "curve_private_key")?;
            let bytes = Zeroizing::new(array32(seed.value, "curve_private_key", seed.offset)?);
            if alg.oid == oid::ED25519 {
                RawPrivateKey::Ed25519(bytes)
            } else {
                RawPrivateKey::X25519(bytes)
            }
        }
        (oid::EC_PUBLIC_KEY, Some(params)) if params == der::oid(oid::SECP256R1).as_slice() => {
            let mut sec1 = inner_reader.nested(TAG_SEQUENCE, "ec_private_key")?;
            if sec1.uint("ec_private_key.version")? != 1 {
                return Err(FormatError::invalid(
                    "ec_private_key.version",
                    inner.value_offset,
                ));
            }
            let key = decode_sec1_body(&mut sec1)?;
            sec1.finish("ec_private_key")?;
            key
        }
        (oid::RSA, _) => return Err(unsupported("private_key.algorithm (RSA)")),
        _ => return Err(unsupported("private_key.algorithm")),
    };
    inner_reader.finish("private_key.private_key")?;
    Ok(key)
}

fn unsupported(field: &'static str) -> FormatError {
    FormatError::new(FormatErrorKind::UnknownOid { field }, 0)
}

/// The part of `ECPrivateKey` after `version 1`.
fn decode_sec1_body(seq: &mut DerReader<'_>) -> Result<RawPrivateKey, FormatError> {
    let d = seq.read(der::TAG_OCTET_STRING, "ec_private_key.private_key")?;
    let d_bytes = Zeroizing::new(array32(d.value, "ec_private_key.private_key", d.offset)?);
    if let Some(params) = seq.optional(context(0), "ec_private_key.parameters")? {
        if params.value != der::oid(oid::SECP256R1).as_slice() {
            return Err(FormatError::new(
                FormatErrorKind::UnknownOid {
                    field: "ec_private_key.parameters",
                },
                params.offset,
            ));
        }
    }
    let public = match seq.optional(context(1), "ec_private_key.public_key")? {
        Some(tlv) => {
            let mut r = DerReader::at(tlv.value, tlv.value_offset);
            let point = bit_string_bytes(&mut r, "ec_private_key.public_key")?;
            r.finish("ec_private_key.public_key")?;
            Some(point.to_vec())
        }
        None => None,
    };
    Ok(RawPrivateKey::P256 { d: d_bytes, public })
}

/// Reads a BIT STRING with no unused bits and returns its bytes.
fn bit_string_bytes<'a>(
    r: &mut DerReader<'a>,
    field: &'static str,
) -> Result<&'a [u8], FormatError> {
    let tlv = r.read(TAG_BIT_STRING, field)?;
    match tlv.value.split_first() {
        Some((0, bytes)) => Ok(bytes),
        _ => Err(FormatError::invalid(field, tlv.offset)),
    }
}

pub(crate) fn encode_curve_private(alg_oid: &[u8], seed: &[u8; 32]) -> Zeroizing<Vec<u8>> {
    let inner = Zeroizing::new(der::octet_string(seed));
    let outer = Zeroizing::new(der::octet_string(&inner));
    Zeroizing::new(der::sequence(&[
        &der::int(0),
        &AlgorithmId::bare(alg_oid).encode(),
        &outer,
    ]))
}

pub(crate) fn encode_p256_private(d: &[u8; 32], public_uncompressed: &[u8]) -> Zeroizing<Vec<u8>> {
    let d_field = Zeroizing::new(der::octet_string(d));
    let mut bits = vec![0u8];
    bits.extend_from_slice(public_uncompressed);
    Zeroizing::new(der::sequence(&[
        &der::int(1),
        &d_field,
        &der::constructed(context(0), &[&der::oid(oid::SECP256R1)]),
        &der::constructed(context(1), &[&der::tlv(TAG_BIT_STRING, &bits)]),
    ]))
}

/// Decodes a `SubjectPublicKeyInfo` from a reader (used inside ECIES envelopes too).
pub(crate) fn decode_public_from(
    r: &mut DerReader<'_>,
    field: &'static str,
) -> Result<RawPublicKey, FormatError> {
    let mut seq = r.nested(TAG_SEQUENCE, field)?;
    let alg = AlgorithmId::decode_from(&mut seq, field)?;
    let key = bit_string_bytes(&mut seq, field)?;
    seq.finish(field)?;
    Ok(match (alg.oid.as_slice(), alg.params.as_deref()) {
        (oid::ED25519, None) => RawPublicKey::Ed25519(array32(key, field, 0)?),
        (oid::X25519, None) => RawPublicKey::X25519(array32(key, field, 0)?),
        (oid::EC_PUBLIC_KEY, Some(p)) if p == der::oid(oid::SECP256R1).as_slice() => {
            RawPublicKey::P256(key.to_vec())
        }
        (oid::RSA, _) => RawPublicKey::Unsupported("RSA"),
        _ => RawPublicKey::Unsupported("unknown key algorithm"),
    })
}

pub(crate) fn decode_public(data: &[u8]) -> Result<RawPublicKey, FormatError> {
    let mut r = DerReader::new(data);
    let key = decode_public_from(&mut r, "public_key")?;
    r.finish("public_key")?;
    Ok(key)
}

pub(crate) fn encode_public(alg: &AlgorithmId, key: &[u8]) -> Vec<u8> {
    let mut bits = Vec::with_capacity(key.len() + 1);
    bits.push(0);
    bits.extend_from_slice(key);
    der::sequence(&[&alg.encode(), &der::tlv(TAG_BIT_STRING, &bits)])
}

/// The AlgorithmIdentifier of a P-256 public key.
pub(crate) fn p256_algorithm() -> AlgorithmId {
    AlgorithmId::with_params(oid::EC_PUBLIC_KEY, der::oid(oid::SECP256R1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ed25519_private_template() {
        let enc = encode_curve_private(oid::ED25519, &[7; 32]);
        assert_eq!(enc.len(), 48);
        assert_eq!(
            enc[..16],
            [
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20
            ]
        );
        match decode_private(&enc) {
            Ok(RawPrivateKey::Ed25519(seed)) => assert_eq!(*seed, [7; 32]),
            _ => panic!("wrong decode"),
        }
    }

    #[test]
    fn rejects_trailing_bytes_and_truncation() {
        let mut enc = encode_curve_private(oid::X25519, &[1; 32]).to_vec();
        for cut in 0..enc.len() {
            assert!(decode_private(&enc[..cut]).is_err());
        }
        enc.push(0);
        assert!(decode_private(&enc).is_err());
    }
}
