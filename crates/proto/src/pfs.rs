//! The ratchet key service `/pfs/v3/keys`: where the double-ratchet clients of the mobile e3kit
//! SDKs (virgil-ratchet-kotlin 0.3, virgil-ratchet-x 0.10) publish the X25519 keys others start
//! sessions with (`e3kit-mobile-v3.md`, "Ratchet key service").
//!
//! Every endpoint needs `Authorization: Virgil <jwt>`; keys are stored per application and
//! identity. All byte strings are standard base64 with padding.
//!
//! * `PUT` [`paths::KEYS`] with [`UploadKeys`]: record the identity's card id, replace the
//!   long-term key (signed by that card's Ed25519 key) and add one-time keys. The clients send
//!   all three in one body, in that order of dependence: a long-term key needs a card id (in the
//!   body or stored earlier), a one-time key needs a long-term key. Answer: 204.
//! * `POST` [`paths::VALIDATE`] with [`ValidateKeys`] → [`ValidateKeysResponse`]: which of the
//!   caller's key ids the service still holds.
//! * `POST` [`paths::PICK_ONE`] with [`PickOne`] → [`PublicKeySet`]: another identity's keys, with
//!   one of its one-time keys, which is thereby used up and never handed out again.
//! * `POST` [`paths::PICK_BATCH`] with [`PickBatch`] → a JSON array of [`IdentityPublicKeySet`].
//! * `DELETE` [`paths::KEYS`]: remove all of the caller's keys. Answer: 204.
//!
//! A key is either the 32 raw X25519 bytes or their `SubjectPublicKeyInfo` DER (44 bytes, what
//! virgil-crypto's `exportPublicKey` writes and current clients send); the service stores and
//! returns it as uploaded. Its id is [`key_id`]: the first 8 bytes of SHA-512 of the 32 raw
//! bytes, whichever form was uploaded (virgil-ratchet-kotlin `RatchetKeyIdCompat`).

use sealkit_crypto::{KeyType, PublicKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

/// Endpoint paths.
pub mod paths {
    /// `PUT` [`super::UploadKeys`] (204), `DELETE` (204).
    pub const KEYS: &str = "/pfs/v3/keys";
    /// `POST` [`super::ValidateKeys`] → [`super::ValidateKeysResponse`].
    pub const VALIDATE: &str = "/pfs/v3/keys/actions/validate";
    /// `POST` [`super::PickOne`] → [`super::PublicKeySet`].
    pub const PICK_ONE: &str = "/pfs/v3/keys/actions/pick-one";
    /// `POST` [`super::PickBatch`] → `[`[`super::IdentityPublicKeySet`]`]`.
    pub const PICK_BATCH: &str = "/pfs/v3/keys/actions/pick-batch";
}

/// Error codes of the ratchet key service, in the `{"code", "message"}` body shared with the
/// Virgil services. Virgil documents none for this service: these are Sealkit's. Authentication
/// and body errors use the common codes (2030x, 40000, 41300).
pub mod codes {
    /// 400: a malformed field: base64, a key that is not X25519, a key id that is not 8 bytes,
    /// an invalid identity, duplicates, or more items than allowed.
    pub const INVALID: u32 = 90001;
    /// 400: the long-term key's signature does not verify with the identity card's key.
    pub const BAD_SIGNATURE: u32 = 90002;
    /// 400: `identity_card_id` is not the caller's current card (unknown, of another identity,
    /// superseded or revoked), or its key is not Ed25519.
    pub const INVALID_CARD: u32 = 90003;
    /// 409: a long-term key before any identity card id (send `identity_card_id` with it).
    pub const NO_CARD: u32 = 90004;
    /// 409: one-time keys before any long-term key (send `long_term_key` with them).
    pub const NO_LONG_TERM_KEY: u32 = 90005;
    /// 409: the upload would leave more than [`super::MAX_ONE_TIME_KEYS`] unused one-time keys.
    pub const TOO_MANY_ONE_TIME_KEYS: u32 = 90006;
    /// 409: a one-time key that was already handed out once is uploaded again.
    pub const ONE_TIME_KEY_USED: u32 = 90007;
    /// 404: the identity has no long-term key, or its keys belong to a card that is no longer
    /// its current one.
    pub const KEYS_NOT_FOUND: u32 = 90008;
    /// 409: the identity card id changed while the upload was being checked; send it again.
    pub const CARD_CHANGED: u32 = 90009;
}

/// Most unused one-time keys the service holds per identity ("up to 150 keys in the cloud",
/// virgil-ratchet-kotlin `RatchetClient.uploadPublicKeys`).
pub const MAX_ONE_TIME_KEYS: usize = 150;

/// Most identities in one [`PickBatch`].
pub const MAX_PICK_BATCH: usize = 100;

/// Most key ids in one [`ValidateKeys`]: every one-time key a client can have in the cloud, and
/// as many again for keys it still holds locally after they were used.
pub const MAX_VALIDATE_IDS: usize = 2 * MAX_ONE_TIME_KEYS;

/// A public key with the identity key's Virgil signature over its bytes as sent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct SignedPublicKey {
    /// Base64 of the key (raw 32 bytes or SPKI DER).
    pub public_key: String,
    /// Base64 of the Virgil signature DER (SHA-512, Ed25519) over the decoded `public_key`.
    pub signature: String,
}

/// `PUT /pfs/v3/keys` request. Absent fields leave what is stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct UploadKeys {
    /// The identity's current card (64 hex characters); its key signs the long-term key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity_card_id: Option<String>,
    /// A new long-term key; it replaces the stored one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_term_key: Option<SignedPublicKey>,
    /// One-time keys to add (base64 each).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_keys: Option<Vec<String>>,
}

/// `POST /pfs/v3/keys/actions/validate` request: ids ([`key_id`], base64) of the caller's keys.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ValidateKeys {
    /// The long-term key the client uses now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_term_key_id: Option<String>,
    /// The one-time keys the client holds private keys of (virgil-ratchet-x leaves the field
    /// out when it holds none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_keys_ids: Option<Vec<String>>,
}

/// `POST /pfs/v3/keys/actions/validate` response: of the ids asked about, those the service
/// still holds. The names are the clients': virgil-ratchet-kotlin 0.3 reads the lists as "still
/// in the cloud" (a local one-time key missing from it was handed out), which is what Sealkit
/// answers; see `docs/pfs.md` for the older reading of virgil-ratchet-x.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
pub struct ValidateKeysResponse {
    /// The asked long-term key id when it is the stored long-term key; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub used_long_term_key_id: Option<String>,
    /// The asked one-time key ids that are stored and not yet handed out, in the order asked.
    /// Always present (virgil-ratchet-x requires the field).
    pub used_one_time_keys_ids: Vec<String>,
}

/// `POST /pfs/v3/keys/actions/pick-one` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PickOne {
    /// Whose keys.
    pub identity: String,
}

/// `POST /pfs/v3/keys/actions/pick-batch` request.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PickBatch {
    /// Whose keys: distinct identities, at most [`MAX_PICK_BATCH`].
    pub identities: Vec<String>,
}

/// `POST /pfs/v3/keys/actions/pick-one` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct PublicKeySet {
    /// Base64 SPKI DER of the Ed25519 key of the card that signed the long-term key.
    pub identity_key: String,
    /// The long-term key and its signature, as uploaded.
    pub long_term_key: SignedPublicKey,
    /// One one-time key (as uploaded), now used up; absent when none is left (the client then
    /// starts a session without one, which it logs as weak).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_key: Option<String>,
}

/// One element of the `POST /pfs/v3/keys/actions/pick-batch` response.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct IdentityPublicKeySet {
    /// Whose keys.
    pub identity: String,
    /// As [`PublicKeySet::identity_key`].
    pub identity_key: String,
    /// As [`PublicKeySet::long_term_key`].
    pub long_term_key: SignedPublicKey,
    /// As [`PublicKeySet::one_time_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_key: Option<String>,
}

/// Why bytes are not a ratchet public key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// Neither 32 raw bytes nor a `SubjectPublicKeyInfo` DER.
    #[error("a ratchet key is 32 raw X25519 bytes or their SubjectPublicKeyInfo DER")]
    Malformed,
    /// A valid key of another algorithm (post-quantum compound keys included).
    #[error("a ratchet key must be X25519")]
    NotX25519,
}

/// The 32 raw X25519 bytes of a ratchet key sent as raw bytes or as SPKI DER.
pub fn x25519_raw(key: &[u8]) -> Result<[u8; 32], KeyError> {
    if let Ok(raw) = <[u8; 32]>::try_from(key) {
        return Ok(raw);
    }
    match PublicKey::from_der(key) {
        Ok(PublicKey::X25519(k)) => Ok(k.to_bytes()),
        Ok(other) if other.key_type() != KeyType::Curve25519 => Err(KeyError::NotX25519),
        _ => Err(KeyError::Malformed),
    }
}

/// The id of a ratchet key: SHA-512 of its 32 raw X25519 bytes, first 8 bytes.
pub fn key_id(raw: &[u8; 32]) -> [u8; 8] {
    let digest = Sha512::digest(raw);
    let mut id = [0u8; 8];
    id.copy_from_slice(&digest[..8]);
    id
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use rand_core::OsRng;
    use sealkit_crypto::PrivateKey;

    /// Field names and optional fields as the Kotlin and Swift clients write and read them.
    #[test]
    fn json_shapes() {
        let upload: UploadKeys = serde_json::from_str(
            r#"{"identity_card_id":"ab","long_term_key":{"public_key":"AA==","signature":"AQ=="},
                "one_time_keys":["Ag=="],"extra":true}"#,
        )
        .unwrap();
        assert_eq!(upload.identity_card_id.as_deref(), Some("ab"));
        assert_eq!(upload.long_term_key.unwrap().signature, "AQ==");
        assert_eq!(upload.one_time_keys, Some(vec!["Ag==".to_owned()]));
        // Gson leaves null fields out; an explicit null is accepted too.
        let empty: UploadKeys = serde_json::from_str(r#"{"long_term_key":null}"#).unwrap();
        assert_eq!(empty, UploadKeys::default());

        let validate: ValidateKeys =
            serde_json::from_str(r#"{"long_term_key_id":"AA=="}"#).unwrap();
        assert_eq!(validate.one_time_keys_ids, None);
        let answer = ValidateKeysResponse::default();
        assert_eq!(
            serde_json::to_string(&answer).unwrap(),
            r#"{"used_one_time_keys_ids":[]}"#
        );

        let set = PublicKeySet {
            identity_key: "a".into(),
            long_term_key: SignedPublicKey {
                public_key: "b".into(),
                signature: "c".into(),
            },
            one_time_key: None,
        };
        assert_eq!(
            serde_json::to_string(&set).unwrap(),
            r#"{"identity_key":"a","long_term_key":{"public_key":"b","signature":"c"}}"#
        );
        let batch: Vec<IdentityPublicKeySet> = serde_json::from_str(
            r#"[{"identity":"x","identity_key":"a","long_term_key":{"public_key":"b","signature":"c"},"one_time_key":"d"}]"#,
        )
        .unwrap();
        assert_eq!(batch[0].one_time_key.as_deref(), Some("d"));
    }

    /// Raw and DER forms of one key give the same raw bytes and id; other keys are refused.
    #[test]
    fn key_forms_and_ids() {
        let key = PrivateKey::generate(KeyType::Curve25519, &mut OsRng);
        let der = key.public_key().to_der();
        assert_eq!(der.len(), 44);
        let raw = x25519_raw(&der).unwrap();
        assert_eq!(&der[12..], &raw);
        assert_eq!(x25519_raw(&raw).unwrap(), raw);
        let digest = Sha512::digest(raw);
        assert_eq!(key_id(&raw), digest[..8]);

        let ed = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
        assert_eq!(
            x25519_raw(&ed.public_key().to_der()),
            Err(KeyError::NotX25519)
        );
        assert_eq!(x25519_raw(&[0u8; 31]), Err(KeyError::Malformed));
        assert_eq!(x25519_raw(&der[..43]), Err(KeyError::Malformed));
        let mut trailing = der.clone();
        trailing.push(0);
        assert_eq!(x25519_raw(&trailing), Err(KeyError::Malformed));
    }

    /// A known vector: the id of the all-zero key is SHA-512 of 32 zero bytes, cut to 8.
    #[test]
    fn key_id_vector() {
        // SHA-512 of 32 zero bytes starts with 5046adc1dba838867b2bbbfdd0c3423e.
        assert_eq!(
            key_id(&[0u8; 32]),
            [0x50, 0x46, 0xad, 0xc1, 0xdb, 0xa8, 0x38, 0x86]
        );
    }
}
