//! The card model (spec §3.1): `RawSignedModel`, its signatures and its content.
//!
//! ```text
//! RawSignedModel = {"content_snapshot":"<base64 of the content JSON bytes>",
//!                   "signatures":[{"signer":"self","signature":"<base64>"[,"snapshot":"<base64>"]}, ...]}
//! content        = {"identity":"alice"[,"previous_card_id":"<64 hex>"],"created_at":<secs>,
//!                   "version":"5.0","public_key":"<base64 of SPKI DER>"}      (JS field order)
//! signature      = Virgil signature over  snapshot bytes || extra snapshot bytes (when present)
//! ```

use super::{CardError, CardId, CARD_VERSION, SELF_SIGNER};
use crate::text::{decode_js_text, encode_js_text, json_object, JsonObjectError};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::OsRng;
use sealkit_crypto::{PrivateKey, PublicKey};
use serde::{Deserialize, Serialize};

/// One entry of `signatures` (spec §3.1): `{"signer":"self","signature":"<base64>"}`, with an
/// optional `snapshot` (base64 of extra JSON signed together with the content; e3kit never sends
/// one, and it is preserved when present).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RawSignature {
    /// Who signed: `"self"`, `"virgil"` or an application-chosen name.
    pub signer: String,
    /// Standard base64 of a Virgil signature DER over the snapshot bytes, followed by the
    /// `snapshot` bytes when present.
    pub signature: String,
    /// Standard base64 of extra signed bytes, left out when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<String>,
}

/// A card on the wire (spec §3.1): publish request and response, search result element, `GET`
/// body. The snapshot string is kept exactly as received.
///
/// Serializes compactly in field order (`content_snapshot`, `signatures`; in each signature
/// `signer`, `signature`, `snapshot`), so the same value always gives the same JSON. Unknown
/// fields are ignored when parsing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct RawSignedModel {
    /// Standard base64 (with padding) of the content JSON bytes, as received.
    pub content_snapshot: String,
    /// The signatures over the snapshot.
    pub signatures: Vec<RawSignature>,
}

/// The content of a card (spec §3.1), the JSON inside `content_snapshot`.
///
/// Serializes compactly in the JS SDK's field order: `identity`, `previous_card_id` (left out
/// when `None`), `created_at`, `version`, `public_key`. Unknown fields are ignored when parsing.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CardContent {
    /// The owner's identity.
    pub identity: String,
    /// The id (64 lowercase hex) of the card this one replaces, when rotating.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_card_id: Option<String>,
    /// Creation time, Unix seconds (an integer on the wire).
    pub created_at: i64,
    /// Always `"5.0"` ([`CARD_VERSION`]).
    pub version: String,
    /// Standard base64 of the public key's SubjectPublicKeyInfo DER.
    pub public_key: String,
}

impl CardContent {
    /// Parses snapshot bytes: a JSON object (decoded as UTF-8, or as Latin-1 when not valid UTF-8,
    /// the JS SDK's encoding, spec §2 "Encoding caveat") with all required fields, an integer
    /// `created_at`, no duplicate keys, and `version == "5.0"` ([`CardError::Version`]).
    pub fn from_snapshot(snapshot: &[u8]) -> Result<Self, CardError> {
        let content: CardContent = json_object(&decode_js_text(snapshot)).map_err(|e| match e {
            JsonObjectError::NotObject => {
                CardError::Json("the snapshot is not a JSON object".to_owned())
            }
            JsonObjectError::Invalid(e) => CardError::Json(e.to_string()),
        })?;
        if content.version != CARD_VERSION {
            return Err(CardError::Version);
        }
        Ok(content)
    }

    /// The snapshot bytes the JS SDK would produce for this content: compact JSON in JS field
    /// order, Latin-1 encoded when it contains characters U+0080..U+00FF (UTF-8 when that would
    /// be ambiguous or impossible), see [`crate::jwt::validate_identity`] for the caveats.
    pub fn to_snapshot(&self) -> Result<Vec<u8>, CardError> {
        let json = serde_json::to_string(self).map_err(|e| CardError::Json(e.to_string()))?;
        Ok(encode_js_text(&json))
    }

    /// The card's public key: `public_key` decoded from base64 and then from DER.
    pub fn decode_public_key(&self) -> Result<PublicKey, CardError> {
        let der = STANDARD
            .decode(&self.public_key)
            .map_err(|_| CardError::PublicKey("not valid base64".to_owned()))?;
        PublicKey::from_der(&der).map_err(|e| CardError::PublicKey(e.to_string()))
    }
}

impl RawSignedModel {
    /// The decoded `content_snapshot` (standard base64 with canonical padding), the bytes that
    /// the card id and every signature cover.
    pub fn snapshot_bytes(&self) -> Result<Vec<u8>, CardError> {
        STANDARD
            .decode(&self.content_snapshot)
            .map_err(|_| CardError::Base64)
    }

    /// The parsed content, see [`CardContent::from_snapshot`].
    pub fn content(&self) -> Result<CardContent, CardError> {
        CardContent::from_snapshot(&self.snapshot_bytes()?)
    }

    /// The card id: `SHA-512(snapshot bytes)[0..32]` (spec §3.1).
    pub fn card_id(&self) -> Result<CardId, CardError> {
        Ok(CardId::from_snapshot(&self.snapshot_bytes()?))
    }

    /// The card's public key: the content's `public_key`, base64 of a SubjectPublicKeyInfo DER.
    pub fn public_key(&self) -> Result<PublicKey, CardError> {
        self.content()?.decode_public_key()
    }

    /// Verifies the owner's proof of possession (spec §3.1): there is exactly one `"self"`
    /// signature ([`CardError::MissingSelfSignature`], [`CardError::DuplicateSigner`]) and it
    /// verifies with the card's own public key over the snapshot bytes followed by the
    /// signature's extra `snapshot` bytes, if any ([`CardError::SelfSignatureInvalid`]).
    pub fn verify_self_signature(&self) -> Result<(), CardError> {
        let entry = match self.unique_signature(SELF_SIGNER) {
            Err(CardError::SignerNotFound(_)) => return Err(CardError::MissingSelfSignature),
            other => other?,
        };
        let key = self.public_key()?;
        let (data, signature) = self.signed_data(entry)?;
        sealkit_crypto::verify(&data, &signature, &key).map_err(|_| CardError::SelfSignatureInvalid)
    }

    /// Verifies the signature by `signer` with `key`, over the snapshot bytes followed by the
    /// signature's extra `snapshot` bytes, if any. There must be exactly one signature by
    /// `signer` ([`CardError::SignerNotFound`], [`CardError::DuplicateSigner`]); one that does
    /// not verify is [`CardError::SignatureInvalid`].
    pub fn verify_signature(&self, signer: &str, key: &PublicKey) -> Result<(), CardError> {
        let entry = self.unique_signature(signer)?;
        let (data, signature) = self.signed_data(entry)?;
        sealkit_crypto::verify(&data, &signature, key)
            .map_err(|_| CardError::SignatureInvalid(signer.to_owned()))
    }

    /// Appends `{"signer": signer, "signature": <base64>}` with a Virgil signature by `key` over
    /// the snapshot bytes, as the service does with `"virgil"` on publish (spec §3.1). Refuses a
    /// signer that already signed ([`CardError::DuplicateSigner`]).
    pub fn add_signature(&mut self, signer: &str, key: &PrivateKey) -> Result<(), CardError> {
        if self.signatures.iter().any(|s| s.signer == signer) {
            return Err(CardError::DuplicateSigner(signer.to_owned()));
        }
        let snapshot = self.snapshot_bytes()?;
        let signature = sealkit_crypto::sign(&snapshot, key, &mut OsRng)
            .map_err(|e| CardError::Signature(format!("signing failed: {e}")))?;
        self.signatures.push(RawSignature {
            signer: signer.to_owned(),
            signature: STANDARD.encode(signature),
            snapshot: None,
        });
        Ok(())
    }

    /// Builds a card the way the JS SDK does (client side): `content` as compact JSON in JS field
    /// order ([`CardContent::to_snapshot`]), standard base64, and a `"self"` signature by
    /// `self_key`. `content.version` must be `"5.0"` and `content.public_key` must be the public
    /// key of `self_key` ([`CardError::PublicKey`] otherwise).
    pub fn from_content(content: &CardContent, self_key: &PrivateKey) -> Result<Self, CardError> {
        if content.version != CARD_VERSION {
            return Err(CardError::Version);
        }
        if content.decode_public_key()? != *self_key.public_key() {
            return Err(CardError::PublicKey(
                "public_key does not belong to the signing key".to_owned(),
            ));
        }
        let mut card = RawSignedModel {
            content_snapshot: STANDARD.encode(content.to_snapshot()?),
            signatures: Vec::new(),
        };
        card.add_signature(SELF_SIGNER, self_key)?;
        Ok(card)
    }

    /// The one signature by `signer`.
    fn unique_signature(&self, signer: &str) -> Result<&RawSignature, CardError> {
        let mut matching = self.signatures.iter().filter(|s| s.signer == signer);
        match (matching.next(), matching.next()) {
            (Some(entry), None) => Ok(entry),
            (None, _) => Err(CardError::SignerNotFound(signer.to_owned())),
            (Some(_), Some(_)) => Err(CardError::DuplicateSigner(signer.to_owned())),
        }
    }

    /// The bytes `entry` signs (snapshot || extra snapshot) and its decoded signature.
    fn signed_data(&self, entry: &RawSignature) -> Result<(Vec<u8>, Vec<u8>), CardError> {
        let mut data = self.snapshot_bytes()?;
        if let Some(extra) = &entry.snapshot {
            let extra = STANDARD.decode(extra).map_err(|_| {
                CardError::Signature(format!(
                    "the snapshot of the \"{}\" signature is not base64",
                    entry.signer
                ))
            })?;
            data.extend_from_slice(&extra);
        }
        let signature = STANDARD.decode(&entry.signature).map_err(|_| {
            CardError::Signature(format!("the \"{}\" signature is not base64", entry.signer))
        })?;
        Ok((data, signature))
    }
}
