//! Errors of the card model (spec §3.1).

/// Why a card, or a card id, was rejected.
#[non_exhaustive]
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum CardError {
    /// `content_snapshot` is not standard, padded base64.
    #[error("content_snapshot is not valid base64")]
    Base64,
    /// The snapshot is not a JSON object with `identity`, `created_at` (integer), `version` and
    /// `public_key`; the text is serde's description.
    #[error("card content is not valid: {0}")]
    Json(String),
    /// The content's `version` is not `"5.0"`.
    #[error("card version is not \"5.0\"")]
    Version,
    /// There is no signature by `"self"`.
    #[error("the card has no \"self\" signature")]
    MissingSelfSignature,
    /// The `"self"` signature does not verify with the card's public key.
    #[error("the card's \"self\" signature is not valid")]
    SelfSignatureInvalid,
    /// `public_key` is not base64 of a supported public key DER, or does not belong to the key
    /// that signs a new card; the text says which.
    #[error("invalid public_key: {0}")]
    PublicKey(String),
    /// A signature entry is malformed (its `signature` or `snapshot` is not base64), or signing
    /// failed; the text says which.
    #[error("signature: {0}")]
    Signature(String),
    /// More than one signature by this signer (or [`RawSignedModel::add_signature`] was asked
    /// to add a second one).
    ///
    /// [`RawSignedModel::add_signature`]: super::RawSignedModel::add_signature
    #[error("more than one signature by \"{0}\"")]
    DuplicateSigner(String),
    /// There is no signature by this signer.
    #[error("no signature by \"{0}\"")]
    SignerNotFound(String),
    /// The signature by this signer does not verify with the given key.
    #[error("the signature by \"{0}\" is not valid")]
    SignatureInvalid(String),
    /// A card id is not 64 hexadecimal characters.
    #[error("a card id is 64 hexadecimal characters")]
    InvalidCardId,
}
