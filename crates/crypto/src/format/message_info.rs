//! The message info that precedes every encrypted body (spec §4.2, §4.3, §5, §6):
//!
//! ```text
//! VirgilMessageInfo ::= SEQUENCE {
//!     version        INTEGER,                               -- 0..3, must match the fields
//!     cmsContent     ContentInfo,                           -- id-envelopedData, [0] EnvelopedData
//!     customParams   [0] EXPLICIT SET OF KeyValue           OPTIONAL,
//!     cipherKdf      [1] EXPLICIT AlgorithmIdentifier       OPTIONAL,   -- HKDF-SHA-512
//!     footerInfo     [2] EXPLICIT VirgilFooterInfo          OPTIONAL,
//!     cipherPadding  [3] EXPLICIT AlgorithmIdentifier       OPTIONAL    -- RandomPadding
//! }
//! EnvelopedData ::= SEQUENCE { version INTEGER (2, or 3 with a password recipient),
//!                              recipientInfos SET OF RecipientInfo,
//!                              encryptedContentInfo SEQUENCE { id-data,
//!                                  SEQUENCE { aes-256-gcm, OCTET STRING nonce(12) } } }
//! KeyTransRecipientInfo ::= SEQUENCE { version INTEGER (2), rid [0] EXPLICIT OCTET STRING,
//!                                      keyEncryptionAlgorithm AlgorithmIdentifier,
//!                                      encryptedKey OCTET STRING }
//! VirgilFooterInfo ::= SEQUENCE { version INTEGER (0), dataSize INTEGER,
//!                                 signedDataInfo [0] EXPLICIT SEQUENCE {
//!                                     version INTEGER (0), digestAlgorithm AlgorithmIdentifier }
//!                                 OPTIONAL }
//! ```
//!
//! `encode(decode(m)) == m` for every message the library writes; the decoder also accepts what
//! the library's reader accepts (unsorted SETs, the RFC 5084 GCM parameter form), which then
//! re-encodes canonically.

use super::algorithm::AlgorithmId;
use super::der::{
    self, context, DerReader, Tlv, TAG_INTEGER, TAG_OCTET_STRING, TAG_SEQUENCE, TAG_SET,
};
use super::oid;
use crate::error::{FormatError, FormatErrorKind};

/// Name of the custom parameter holding a sign-then-encrypt signature (spec §5).
pub(crate) const DATA_SIGNATURE: &str = "VIRGIL-DATA-SIGNATURE";
/// Name of the custom parameter holding the signer's key id (spec §5).
pub(crate) const DATA_SIGNER_ID: &str = "VIRGIL-DATA-SIGNER-ID";

/// One recipient entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum RecipientInfo {
    /// KeyTransRecipientInfo: a public-key recipient.
    KeyTrans {
        rid: Vec<u8>,
        algorithm: AlgorithmId,
        encrypted_key: Vec<u8>,
    },
    /// Any other choice (a `[3]` password recipient): kept verbatim, never used.
    Other(Vec<u8>),
}

impl RecipientInfo {
    fn decode(tlv: Tlv<'_>) -> Result<Self, FormatError> {
        if tlv.tag == context(3) {
            return Ok(Self::Other(tlv.raw.to_vec()));
        }
        if tlv.tag != TAG_SEQUENCE {
            return Err(FormatError::new(
                FormatErrorKind::UnexpectedTag {
                    field: "recipient_info",
                    expected: TAG_SEQUENCE,
                    actual: tlv.tag,
                },
                tlv.offset,
            ));
        }
        let mut seq = DerReader::at(tlv.value, tlv.value_offset);
        if seq.uint("recipient_info.version")? != 2 {
            return Err(FormatError::invalid(
                "recipient_info.version",
                tlv.value_offset,
            ));
        }
        let mut rid_wrapper = seq.nested(context(0), "recipient_info.rid")?;
        let rid = rid_wrapper.octet_string("recipient_info.rid")?.to_vec();
        rid_wrapper.finish("recipient_info.rid")?;
        let algorithm =
            AlgorithmId::decode_from(&mut seq, "recipient_info.key_encryption_algorithm")?;
        let encrypted_key = seq.octet_string("recipient_info.encrypted_key")?.to_vec();
        seq.finish("recipient_info")?;
        Ok(Self::KeyTrans {
            rid,
            algorithm,
            encrypted_key,
        })
    }

    fn encode(&self) -> Vec<u8> {
        match self {
            Self::KeyTrans {
                rid,
                algorithm,
                encrypted_key,
            } => der::sequence(&[
                &der::int(2),
                &der::constructed(context(0), &[&der::octet_string(rid)]),
                &algorithm.encode(),
                &der::octet_string(encrypted_key),
            ]),
            Self::Other(raw) => raw.clone(),
        }
    }
}

/// A custom parameter value (spec §4.2 `KeyValue`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ParamValue {
    Int(i64),
    Str(String),
    Data(Vec<u8>),
}

/// `footerInfo`: present in sign-and-encrypt messages (spec §6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct FooterInfo {
    /// Length of the (padded) body plaintext.
    pub data_size: u64,
    /// The digest algorithm of `signedDataInfo`, when present.
    pub signed_data_digest: Option<AlgorithmId>,
}

impl FooterInfo {
    /// DER of `VirgilSignedDataInfo`, the body's GCM AAD (spec §6 step 4).
    pub fn signed_data_info_der(digest: &AlgorithmId) -> Vec<u8> {
        der::sequence(&[&der::int(0), &digest.encode()])
    }
}

/// The whole message info.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MessageInfo {
    pub recipients: Vec<RecipientInfo>,
    /// The AES-256-GCM AlgorithmIdentifier as found (its parameter form is kept for re-encoding).
    pub content_algorithm: AlgorithmId,
    pub nonce: [u8; 12],
    pub custom_params: Option<Vec<(String, ParamValue)>>,
    pub cipher_kdf: Option<AlgorithmId>,
    pub footer_info: Option<FooterInfo>,
    pub padding: Option<AlgorithmId>,
}

impl MessageInfo {
    /// A message info for AES-256-GCM with the library's nonce form.
    pub fn new(recipients: Vec<RecipientInfo>, nonce: [u8; 12]) -> Self {
        Self {
            recipients,
            content_algorithm: AlgorithmId::with_params(oid::AES256_GCM, der::octet_string(&nonce)),
            nonce,
            custom_params: None,
            cipher_kdf: None,
            footer_info: None,
            padding: None,
        }
    }

    /// The version the writer derives from the fields present (spec §4.3).
    pub fn version(&self) -> u64 {
        if self.padding.is_some() {
            3
        } else if self.cipher_kdf.is_some() && self.footer_info.is_some() {
            2
        } else if self.cipher_kdf.is_some() {
            1
        } else {
            0
        }
    }

    /// Total length of the message info at the start of `data`, once enough of it is present to
    /// tell: `Ok(None)` means "need more bytes".
    pub fn encoded_len(data: &[u8]) -> Result<Option<usize>, FormatError> {
        match data.first() {
            None => return Ok(None),
            Some(&TAG_SEQUENCE) => {}
            Some(&actual) => {
                return Err(FormatError::new(
                    FormatErrorKind::UnexpectedTag {
                        field: "message_info",
                        expected: TAG_SEQUENCE,
                        actual,
                    },
                    0,
                ))
            }
        }
        match der::parse_header(data, "message_info") {
            Ok((_, header, len)) => Ok(header.checked_add(len)),
            Err(FormatError {
                kind: FormatErrorKind::Truncated { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Decodes a message info that must span all of `data`.
    pub fn decode(data: &[u8]) -> Result<Self, FormatError> {
        let mut outer = DerReader::new(data);
        let mut seq = outer.nested(TAG_SEQUENCE, "message_info")?;
        outer.finish("message_info")?;
        let version_tlv = seq.clone().read(TAG_INTEGER, "message_info.version")?;
        let version = seq.uint("message_info.version")?;

        let mut content_info = seq.nested(TAG_SEQUENCE, "content_info")?;
        if content_info.oid("content_info.content_type")? != oid::CMS_ENVELOPED_DATA {
            return Err(FormatError::new(
                FormatErrorKind::UnknownOid {
                    field: "content_info.content_type",
                },
                version_tlv.offset,
            ));
        }
        let mut explicit = content_info.nested(context(0), "content_info.content")?;
        let mut enveloped = explicit.nested(TAG_SEQUENCE, "enveloped_data")?;
        explicit.finish("content_info.content")?;
        content_info.finish("content_info")?;

        let enveloped_version = enveloped
            .clone()
            .read(TAG_INTEGER, "enveloped_data.version")?;
        let ev = enveloped.uint("enveloped_data.version")?;
        let mut set = enveloped.nested(TAG_SET, "enveloped_data.recipient_infos")?;
        let mut recipients = Vec::new();
        while !set.is_empty() {
            recipients.push(RecipientInfo::decode(set.read_any("recipient_info")?)?);
        }
        let has_password = recipients
            .iter()
            .any(|r| matches!(r, RecipientInfo::Other(_)));
        if ev != if has_password { 3 } else { 2 } {
            return Err(FormatError::invalid(
                "enveloped_data.version",
                enveloped_version.offset,
            ));
        }
        let mut eci = enveloped.nested(TAG_SEQUENCE, "encrypted_content_info")?;
        let eci_type_offset = eci.clone().read_any("encrypted_content_info")?.offset;
        if eci.oid("encrypted_content_info.content_type")? != oid::CMS_DATA {
            return Err(FormatError::new(
                FormatErrorKind::UnknownOid {
                    field: "encrypted_content_info.content_type",
                },
                eci_type_offset,
            ));
        }
        let content_algorithm =
            AlgorithmId::decode_from(&mut eci, "encrypted_content_info.algorithm")?;
        let nonce = gcm_nonce(&content_algorithm).ok_or_else(|| {
            FormatError::new(
                FormatErrorKind::UnknownOid {
                    field: "encrypted_content_info.algorithm",
                },
                eci_type_offset,
            )
        })?;
        eci.finish("encrypted_content_info")?;
        enveloped.finish("enveloped_data")?;

        let mut info = Self {
            recipients,
            content_algorithm,
            nonce,
            custom_params: None,
            cipher_kdf: None,
            footer_info: None,
            padding: None,
        };
        if let Some(tlv) = seq.optional(context(0), "custom_params")? {
            info.custom_params = Some(decode_custom_params(tlv)?);
        }
        if let Some(tlv) = seq.optional(context(1), "cipher_kdf")? {
            let mut r = DerReader::at(tlv.value, tlv.value_offset);
            let kdf = AlgorithmId::decode_from(&mut r, "cipher_kdf")?;
            r.finish("cipher_kdf")?;
            if kdf != AlgorithmId::bare(oid::HKDF_SHA512) {
                return Err(FormatError::new(
                    FormatErrorKind::UnknownOid {
                        field: "cipher_kdf",
                    },
                    tlv.offset,
                ));
            }
            info.cipher_kdf = Some(kdf);
        }
        if let Some(tlv) = seq.optional(context(2), "footer_info")? {
            info.footer_info = Some(decode_footer_info(tlv)?);
        }
        if let Some(tlv) = seq.optional(context(3), "cipher_padding")? {
            let mut r = DerReader::at(tlv.value, tlv.value_offset);
            let padding = AlgorithmId::decode_from(&mut r, "cipher_padding")?;
            r.finish("cipher_padding")?;
            if padding.oid != oid::RANDOM_PADDING {
                return Err(FormatError::new(
                    FormatErrorKind::UnknownOid {
                        field: "cipher_padding",
                    },
                    tlv.offset,
                ));
            }
            info.padding = Some(padding);
        }
        seq.finish("message_info")?;
        if version != info.version() {
            return Err(FormatError::invalid(
                "message_info.version",
                version_tlv.offset,
            ));
        }
        // A footer without the HKDF (or the reverse) cannot be decrypted as either mode.
        if info.cipher_kdf.is_some() != info.footer_info.is_some() {
            return Err(FormatError::invalid("footer_info", version_tlv.offset));
        }
        Ok(info)
    }

    pub fn encode(&self) -> Vec<u8> {
        let recipients = der::set_of(self.recipients.iter().map(RecipientInfo::encode).collect());
        let has_password = self
            .recipients
            .iter()
            .any(|r| matches!(r, RecipientInfo::Other(_)));
        let eci = der::sequence(&[&der::oid(oid::CMS_DATA), &self.content_algorithm.encode()]);
        let enveloped = der::sequence(&[
            &der::int(if has_password { 3 } else { 2 }),
            &recipients,
            &eci,
        ]);
        let content_info = der::sequence(&[
            &der::oid(oid::CMS_ENVELOPED_DATA),
            &der::constructed(context(0), &[&enveloped]),
        ]);
        let mut parts = vec![der::uint(self.version()), content_info];
        if let Some(params) = &self.custom_params {
            parts.push(der::constructed(
                context(0),
                &[&encode_custom_params(params)],
            ));
        }
        if let Some(kdf) = &self.cipher_kdf {
            parts.push(der::constructed(context(1), &[&kdf.encode()]));
        }
        if let Some(footer) = &self.footer_info {
            let mut fields = vec![der::int(0), der::uint(footer.data_size)];
            if let Some(digest) = &footer.signed_data_digest {
                fields.push(der::constructed(
                    context(0),
                    &[&FooterInfo::signed_data_info_der(digest)],
                ));
            }
            let refs: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
            parts.push(der::constructed(context(2), &[&der::sequence(&refs)]));
        }
        if let Some(padding) = &self.padding {
            parts.push(der::constructed(context(3), &[&padding.encode()]));
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        der::sequence(&refs)
    }

    /// Looks up a custom parameter holding bytes.
    pub fn param_data(&self, name: &str) -> Option<&[u8]> {
        self.custom_params
            .as_ref()?
            .iter()
            .find_map(|(k, v)| match v {
                ParamValue::Data(d) if k == name => Some(d.as_slice()),
                _ => None,
            })
    }
}

/// The 12-byte nonce from the AES-256-GCM identifier: a bare OCTET STRING (what the library
/// writes) or RFC 5084's `SEQUENCE { nonce, INTEGER 12 }` (what its reader also accepts).
fn gcm_nonce(alg: &AlgorithmId) -> Option<[u8; 12]> {
    if alg.oid != oid::AES256_GCM {
        return None;
    }
    let params = alg.params.as_deref()?;
    let mut r = DerReader::new(params);
    let nonce = match r.peek_tag()? {
        TAG_OCTET_STRING => r.octet_string("nonce").ok()?,
        TAG_SEQUENCE => {
            let mut seq = r.nested(TAG_SEQUENCE, "nonce").ok()?;
            let nonce = seq.octet_string("nonce").ok()?;
            if !seq.is_empty() && seq.uint("icv_len").ok()? != 12 {
                return None;
            }
            seq.finish("nonce").ok()?;
            nonce
        }
        _ => return None,
    };
    r.finish("nonce").ok()?;
    nonce.try_into().ok()
}

fn decode_custom_params(tlv: Tlv<'_>) -> Result<Vec<(String, ParamValue)>, FormatError> {
    let mut wrapper = DerReader::at(tlv.value, tlv.value_offset);
    let mut set = wrapper.nested(TAG_SET, "custom_params")?;
    wrapper.finish("custom_params")?;
    let mut params = Vec::new();
    while !set.is_empty() {
        let mut kv = set.nested(TAG_SEQUENCE, "custom_params.entry")?;
        let key = kv.utf8_string("custom_params.key")?.to_owned();
        let value_tlv = kv.read_any("custom_params.value")?;
        kv.finish("custom_params.entry")?;
        let mut inner = DerReader::at(value_tlv.value, value_tlv.value_offset);
        let value = match value_tlv.tag {
            t if t == context(0) => ParamValue::Int(inner.int("custom_params.int")?),
            t if t == context(1) => {
                ParamValue::Str(inner.utf8_string("custom_params.str")?.to_owned())
            }
            t if t == context(2) => {
                ParamValue::Data(inner.octet_string("custom_params.data")?.to_vec())
            }
            actual => {
                return Err(FormatError::new(
                    FormatErrorKind::UnexpectedTag {
                        field: "custom_params.value",
                        expected: context(2),
                        actual,
                    },
                    value_tlv.offset,
                ))
            }
        };
        inner.finish("custom_params.value")?;
        if params.iter().any(|(k, _)| *k == key) {
            return Err(FormatError::invalid("custom_params.key", value_tlv.offset));
        }
        params.push((key, value));
    }
    Ok(params)
}

fn encode_custom_params(params: &[(String, ParamValue)]) -> Vec<u8> {
    der::set_of(
        params
            .iter()
            .map(|(key, value)| {
                let value = match value {
                    ParamValue::Int(i) => der::constructed(context(0), &[&der::int(*i)]),
                    ParamValue::Str(s) => der::constructed(context(1), &[&der::utf8_string(s)]),
                    ParamValue::Data(d) => der::constructed(context(2), &[&der::octet_string(d)]),
                };
                der::sequence(&[&der::utf8_string(key), &value])
            })
            .collect(),
    )
}

fn decode_footer_info(tlv: Tlv<'_>) -> Result<FooterInfo, FormatError> {
    let mut wrapper = DerReader::at(tlv.value, tlv.value_offset);
    let mut seq = wrapper.nested(TAG_SEQUENCE, "footer_info")?;
    wrapper.finish("footer_info")?;
    if seq.uint("footer_info.version")? != 0 {
        return Err(FormatError::invalid(
            "footer_info.version",
            tlv.value_offset,
        ));
    }
    let data_size = seq.uint("footer_info.data_size")?;
    let signed_data_digest = match seq.optional(context(0), "signed_data_info")? {
        Some(sdi) => {
            let mut w = DerReader::at(sdi.value, sdi.value_offset);
            let mut s = w.nested(TAG_SEQUENCE, "signed_data_info")?;
            w.finish("signed_data_info")?;
            if s.uint("signed_data_info.version")? != 0 {
                return Err(FormatError::invalid("signed_data_info.version", sdi.offset));
            }
            let digest = AlgorithmId::decode_from(&mut s, "signed_data_info.digest")?;
            s.finish("signed_data_info")?;
            if digest.hash().is_none() {
                return Err(FormatError::new(
                    FormatErrorKind::UnknownOid {
                        field: "signed_data_info.digest",
                    },
                    sdi.offset,
                ));
            }
            Some(digest)
        }
        None => None,
    };
    seq.finish("footer_info")?;
    Ok(FooterInfo {
        data_size,
        signed_data_digest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> MessageInfo {
        let mut info = MessageInfo::new(
            vec![
                RecipientInfo::KeyTrans {
                    rid: vec![2; 8],
                    algorithm: AlgorithmId::bare(oid::ED25519),
                    encrypted_key: vec![1; 226],
                },
                RecipientInfo::KeyTrans {
                    rid: vec![1; 8],
                    algorithm: AlgorithmId::bare(oid::X25519),
                    encrypted_key: vec![1; 226],
                },
            ],
            [7; 12],
        );
        info.custom_params = Some(vec![
            (DATA_SIGNATURE.into(), ParamValue::Data(vec![3; 83])),
            (DATA_SIGNER_ID.into(), ParamValue::Data(vec![4; 8])),
            ("n".into(), ParamValue::Int(-5)),
            ("s".into(), ParamValue::Str("é".into())),
        ]);
        info.cipher_kdf = Some(AlgorithmId::bare(oid::HKDF_SHA512));
        info.footer_info = Some(FooterInfo {
            data_size: 1000,
            signed_data_digest: Some(AlgorithmId::sha512()),
        });
        info.padding = Some(AlgorithmId::bare(oid::RANDOM_PADDING));
        info
    }

    #[test]
    fn round_trip_and_canonical_order() {
        let info = sample();
        let enc = info.encode();
        let dec = MessageInfo::decode(&enc);
        let dec = dec.ok();
        assert_eq!(dec.as_ref().map(MessageInfo::encode), Some(enc.clone()));
        assert_eq!(
            MessageInfo::encoded_len(&enc).ok().flatten(),
            Some(enc.len())
        );
        assert_eq!(MessageInfo::encoded_len(&enc[..1]).ok().flatten(), None);
        // SET OF sorted: the rid 0101.. entry is written before the 0202.. one.
        if let Some(RecipientInfo::KeyTrans { rid, .. }) =
            dec.and_then(|d| d.recipients.first().cloned())
        {
            assert_eq!(rid, vec![1; 8]);
        } else {
            panic!("no recipients");
        }
    }

    #[test]
    fn every_truncation_and_extension_is_rejected() {
        let enc = sample().encode();
        for cut in 0..enc.len() {
            assert!(MessageInfo::decode(&enc[..cut]).is_err(), "cut {cut}");
        }
        let mut longer = enc.clone();
        longer.push(0);
        assert!(MessageInfo::decode(&longer).is_err());
    }

    #[test]
    fn version_mismatch_is_rejected() {
        let mut info = sample();
        info.padding = None;
        let mut enc = info.encode();
        // The version INTEGER is the first element: 30 82 LL LL 02 01 <v>.
        assert_eq!(enc[6], 2);
        enc[6] = 3;
        assert!(matches!(
            MessageInfo::decode(&enc).map_err(|e| e.kind),
            Err(FormatErrorKind::InvalidValue {
                field: "message_info.version"
            })
        ));
    }
}
