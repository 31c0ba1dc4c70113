//! The ratchet key service (`/pfs/v3/keys`, `sealkit_proto::pfs`), callable without HTTP.
//!
//! The service checks what a request carries (base64, X25519 keys, 8-byte ids, identities,
//! counts) and what needs the card directory: the identity card must be the caller's current
//! card with an Ed25519 key, and the long-term key's Virgil signature must verify with that key
//! over the key's bytes as uploaded. The store enforces what depends on the stored keys (the
//! order rules, the one-time key limit, handing each one-time key out once) inside its
//! transactions, so they hold across replicas.

use std::collections::HashSet;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sealkit_crypto::PublicKey;
use sealkit_proto::cards::{CardId, RawSignedModel};
use sealkit_proto::pfs::{
    self, IdentityPublicKeySet, PickBatch, PickOne, PublicKeySet, SignedPublicKey, UploadKeys,
    ValidateKeys, ValidateKeysResponse, MAX_ONE_TIME_KEYS, MAX_PICK_BATCH, MAX_VALIDATE_IDS,
};

use super::auth::Caller;
use super::error::ServiceError;
use crate::store::{
    Conflict, PfsKey, PfsKeyId, PfsKeySet, PfsLongTermKey, PfsUpload, Store, StoreError,
};

/// Longest signature accepted, in bytes (an Ed25519 Virgil signature is 83).
const MAX_SIGNATURE_BYTES: usize = 256;

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::PfsInvalid(message.into())
}

/// Standard base64 of `field`, decoded.
fn decode(field: &str, text: &str) -> Result<Vec<u8>, ServiceError> {
    STANDARD
        .decode(text)
        .map_err(|_| invalid(format!("{field} is not standard base64")))
}

/// A ratchet public key sent as base64 of raw bytes or SPKI DER, with its id.
fn decode_key(field: &str, text: &str) -> Result<PfsKey, ServiceError> {
    let public_key = decode(field, text)?;
    let raw = pfs::x25519_raw(&public_key).map_err(|e| invalid(format!("{field}: {e}")))?;
    Ok(PfsKey {
        key_id: pfs::key_id(&raw),
        public_key,
    })
}

/// A key id: base64 of 8 bytes.
fn decode_id(field: &str, text: &str) -> Result<PfsKeyId, ServiceError> {
    PfsKeyId::try_from(decode(field, text)?.as_slice())
        .map_err(|_| invalid(format!("{field} must be 8 bytes")))
}

fn check_identity(identity: &str) -> Result<(), ServiceError> {
    sealkit_proto::jwt::validate_identity(identity)
        .map_err(|why| invalid(format!("invalid identity: {why}")))
}

/// The caller's current card `card_id` and its Ed25519 key.
async fn current_card_key(
    store: &dyn Store,
    caller: &Caller,
    card_id: &str,
) -> Result<PublicKey, ServiceError> {
    let invalid_card = |why: &str| ServiceError::PfsInvalidCard(why.to_owned());
    let card = store
        .get_card(caller.app_id.as_str(), card_id)
        .await?
        .ok_or_else(|| invalid_card("no card with this id in the application"))?;
    if card.identity != caller.identity {
        return Err(invalid_card("the card belongs to another identity"));
    }
    if card.is_outdated() {
        return Err(invalid_card(
            "the card is superseded or revoked; use the identity's current card",
        ));
    }
    let model: RawSignedModel =
        serde_json::from_slice(&card.raw).map_err(ServiceError::internal)?;
    match model.public_key().map_err(ServiceError::internal)? {
        key @ PublicKey::Ed25519(_) => Ok(key),
        _ => Err(invalid_card("the card's key is not Ed25519")),
    }
}

/// The store's refusals of an upload, as service errors.
fn upload_refused(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict(Conflict::PfsNoCard) => ServiceError::PfsNoCard,
        StoreError::Conflict(Conflict::PfsNoLongTermKey) => ServiceError::PfsNoLongTermKey,
        StoreError::Conflict(Conflict::PfsTooManyOneTimeKeys { limit }) => {
            ServiceError::PfsTooManyOneTimeKeys { limit }
        }
        StoreError::Conflict(Conflict::PfsOneTimeKeyUsed) => ServiceError::PfsOneTimeKeyUsed,
        StoreError::Conflict(Conflict::PfsCardChanged) => ServiceError::PfsCardChanged,
        other => other.into(),
    }
}

/// `PUT /pfs/v3/keys`: records the caller's card id, replaces its long-term key (after checking
/// the signature with the card's key) and adds one-time keys, all or nothing. An upload that
/// carries nothing changes nothing.
pub async fn upload(
    store: &dyn Store,
    caller: &Caller,
    request: UploadKeys,
    now: i64,
) -> Result<(), ServiceError> {
    let card_id = request
        .identity_card_id
        .as_deref()
        .map(|id| {
            id.parse::<CardId>()
                .map(|id| id.to_string())
                .map_err(|_| invalid("identity_card_id must be 64 hexadecimal characters"))
        })
        .transpose()?;
    let long_term = request
        .long_term_key
        .as_ref()
        .map(
            |SignedPublicKey {
                 public_key,
                 signature,
             }| {
                let key = decode_key("long_term_key.public_key", public_key)?;
                let signature = decode("long_term_key.signature", signature)?;
                if signature.is_empty() || signature.len() > MAX_SIGNATURE_BYTES {
                    return Err(invalid(format!(
                        "long_term_key.signature must be 1 to {MAX_SIGNATURE_BYTES} bytes"
                    )));
                }
                Ok((key, signature))
            },
        )
        .transpose()?;
    let one_time_texts = request.one_time_keys.unwrap_or_default();
    if one_time_texts.len() > MAX_ONE_TIME_KEYS {
        return Err(invalid(format!(
            "at most {MAX_ONE_TIME_KEYS} one-time keys per upload"
        )));
    }
    let one_time_keys = one_time_texts
        .iter()
        .map(|text| decode_key("one_time_keys", text))
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen: HashSet<PfsKeyId> = long_term.iter().map(|(k, _)| k.key_id).collect();
    if one_time_keys.iter().any(|k| !seen.insert(k.key_id)) {
        return Err(invalid("one_time_keys repeat a key (or the long-term key)"));
    }
    if card_id.is_none() && long_term.is_none() && one_time_keys.is_empty() {
        return Ok(());
    }

    // The card that signs: the one sent, else the one recorded earlier.
    let signing_card = match &card_id {
        Some(id) => Some(id.clone()),
        None if long_term.is_some() => {
            store
                .pfs_card_id(caller.app_id.as_str(), caller.identity.as_str())
                .await?
        }
        None => None,
    };
    let long_term_key = match long_term {
        Some((key, signature)) => {
            let card = signing_card.ok_or(ServiceError::PfsNoCard)?;
            let card_key = current_card_key(store, caller, &card).await?;
            sealkit_crypto::verify(&key.public_key, &signature, &card_key)
                .map_err(|_| ServiceError::PfsBadSignature)?;
            Some(PfsLongTermKey {
                key,
                signature,
                verified_with_card: card,
            })
        }
        None => {
            if let Some(card) = &card_id {
                current_card_key(store, caller, card).await?;
            }
            None
        }
    };
    store
        .pfs_upload(PfsUpload {
            app_id: caller.app_id.to_string(),
            identity: caller.identity.to_string(),
            card_id,
            long_term_key,
            one_time_keys,
            max_one_time_keys: MAX_ONE_TIME_KEYS,
            now,
        })
        .await
        .map_err(upload_refused)
}

/// `POST /pfs/v3/keys/actions/validate`: which of the asked ids of the caller's keys the
/// service still holds.
pub async fn validate(
    store: &dyn Store,
    caller: &Caller,
    request: ValidateKeys,
) -> Result<ValidateKeysResponse, ServiceError> {
    let one_time_texts = request.one_time_keys_ids.unwrap_or_default();
    if one_time_texts.len() > MAX_VALIDATE_IDS {
        return Err(invalid(format!(
            "at most {MAX_VALIDATE_IDS} one_time_keys_ids per request"
        )));
    }
    let long_term = request
        .long_term_key_id
        .as_deref()
        .map(|text| decode_id("long_term_key_id", text))
        .transpose()?;
    let one_time = one_time_texts
        .iter()
        .map(|text| decode_id("one_time_keys_ids", text))
        .collect::<Result<Vec<_>, _>>()?;
    let found = store
        .pfs_validate(
            caller.app_id.as_str(),
            caller.identity.as_str(),
            long_term,
            &one_time,
        )
        .await?;
    Ok(ValidateKeysResponse {
        used_long_term_key_id: found.long_term_key_id.map(|id| STANDARD.encode(id)),
        used_one_time_keys_ids: found
            .one_time_key_ids
            .iter()
            .map(|id| STANDARD.encode(id))
            .collect(),
    })
}

/// What a client needs of a picked set: the card's key and the keys as uploaded.
fn public_key_set(set: &PfsKeySet) -> Result<PublicKeySet, ServiceError> {
    let card: RawSignedModel =
        serde_json::from_slice(&set.card_raw).map_err(ServiceError::internal)?;
    let identity_key = card.public_key().map_err(ServiceError::internal)?;
    Ok(PublicKeySet {
        identity_key: identity_key.to_base64(),
        long_term_key: SignedPublicKey {
            public_key: STANDARD.encode(&set.long_term_key),
            signature: STANDARD.encode(&set.long_term_signature),
        },
        one_time_key: set.one_time_key.as_ref().map(|k| STANDARD.encode(k)),
    })
}

/// `POST /pfs/v3/keys/actions/pick-one`: another identity's keys with one of its one-time
/// keys, which is never handed out again. `PfsKeysNotFound` when it has no keys (or its card
/// changed since it uploaded them).
pub async fn pick_one(
    store: &dyn Store,
    caller: &Caller,
    request: PickOne,
    now: i64,
) -> Result<PublicKeySet, ServiceError> {
    check_identity(&request.identity)?;
    let sets = store
        .pfs_pick(caller.app_id.as_str(), &[request.identity], now)
        .await?;
    let set = sets.first().ok_or(ServiceError::PfsKeysNotFound)?;
    public_key_set(set)
}

/// `POST /pfs/v3/keys/actions/pick-batch`: the keys of several identities, in the order asked;
/// identities without keys are left out (the clients then report the set as missing).
pub async fn pick_batch(
    store: &dyn Store,
    caller: &Caller,
    request: PickBatch,
    now: i64,
) -> Result<Vec<IdentityPublicKeySet>, ServiceError> {
    if request.identities.len() > MAX_PICK_BATCH {
        return Err(invalid(format!(
            "at most {MAX_PICK_BATCH} identities per batch"
        )));
    }
    let mut seen = HashSet::new();
    for identity in &request.identities {
        check_identity(identity)?;
        if !seen.insert(identity.as_str()) {
            return Err(invalid("identities repeat an identity"));
        }
    }
    if request.identities.is_empty() {
        return Ok(Vec::new());
    }
    let sets = store
        .pfs_pick(caller.app_id.as_str(), &request.identities, now)
        .await?;
    sets.iter()
        .map(|set| {
            let PublicKeySet {
                identity_key,
                long_term_key,
                one_time_key,
            } = public_key_set(set)?;
            Ok(IdentityPublicKeySet {
                identity: set.identity.clone(),
                identity_key,
                long_term_key,
                one_time_key,
            })
        })
        .collect()
}

/// `DELETE /pfs/v3/keys`: removes all of the caller's keys.
pub async fn delete(store: &dyn Store, caller: &Caller) -> Result<(), ServiceError> {
    Ok(store
        .pfs_delete(caller.app_id.as_str(), caller.identity.as_str())
        .await?)
}
