//! The card directory's rules (spec §3), callable without HTTP.

use super::auth::Caller;
use super::error::ServiceError;
use crate::store::{CardRecord, NewCard, Store};
use sealkit_crypto::PrivateKey;
use sealkit_proto::cards::{CardId, RawSignedModel};

/// The signer name of the service's own card signature.
pub const SERVICE_SIGNER: &str = "virgil";
/// Most identities accepted in one search (e3kit sends at most 50; `lookupPublicKeys` does not
/// chunk, hence the margin).
pub const MAX_SEARCH_IDENTITIES: usize = 1000;

/// Largest card accepted for publishing, in bytes of its compact JSON (before the service adds
/// its own signature). e3kit's cards are about 500 bytes.
pub const MAX_CARD_BYTES: usize = 16 << 10;
/// Most signatures a published card may carry (before the service adds its own). e3kit sends
/// one (`self`).
pub const MAX_CARD_SIGNATURES: usize = 8;

/// Validates a card sent by `identity` of `app_id`, adds the service signature and stores it.
/// Returns the stored card JSON, which is what clients receive from now on.
pub async fn publish(
    store: &dyn Store,
    service_key: &PrivateKey,
    caller: &Caller,
    mut card: RawSignedModel,
) -> Result<Vec<u8>, ServiceError> {
    let Caller { app_id, identity } = caller;
    if card.signatures.len() > MAX_CARD_SIGNATURES {
        return Err(ServiceError::InvalidCard(format!(
            "a card carries at most {MAX_CARD_SIGNATURES} signatures"
        )));
    }
    let size = serde_json::to_vec(&card)
        .map_err(ServiceError::internal)?
        .len();
    if size > MAX_CARD_BYTES {
        return Err(ServiceError::InvalidCard(format!(
            "the card is {size} bytes; at most {MAX_CARD_BYTES} are accepted"
        )));
    }
    let content = card
        .content()
        .map_err(|e| ServiceError::InvalidCard(e.to_string()))?;
    // Equal to the caller's identity, so valid: an `Identity` was checked when it was made.
    if content.identity != identity.as_str() {
        return Err(ServiceError::Forbidden(
            "a card can only be published for the token's own identity",
        ));
    }
    if card.signatures.iter().any(|s| s.signer == SERVICE_SIGNER) {
        return Err(ServiceError::InvalidCard(
            "the \"virgil\" signature is added by the service".into(),
        ));
    }
    card.public_key()
        .map_err(|e| ServiceError::InvalidCard(e.to_string()))?;
    card.verify_self_signature()
        .map_err(|_| ServiceError::BadSelfSignature)?;
    let previous_card_id = match &content.previous_card_id {
        Some(p) => Some(
            p.parse::<CardId>()
                .map_err(|_| ServiceError::InvalidCard("previous_card_id is not a card id".into()))?
                .to_string(),
        ),
        None => None,
    };
    let id = card
        .card_id()
        .map_err(|e| ServiceError::InvalidCard(e.to_string()))?;
    card.add_signature(SERVICE_SIGNER, service_key)
        .map_err(ServiceError::internal)?;
    let raw = serde_json::to_vec(&card).map_err(ServiceError::internal)?;
    store
        .publish_card(NewCard {
            id: id.to_string(),
            app_id: app_id.to_string(),
            identity: identity.clone(),
            previous_card_id,
            raw: raw.clone(),
            created_at: content.created_at,
        })
        .await?;
    Ok(raw)
}

/// Searches the cards of `identities` (deduplicated, validated) and returns the JSON array.
pub async fn search(
    store: &dyn Store,
    app_id: &str,
    identities: Vec<String>,
) -> Result<Vec<u8>, ServiceError> {
    if identities.len() > MAX_SEARCH_IDENTITIES {
        return Err(ServiceError::BadRequest(format!(
            "at most {MAX_SEARCH_IDENTITIES} identities per search"
        )));
    }
    let mut unique = identities;
    unique.sort();
    unique.dedup();
    for identity in &unique {
        sealkit_proto::jwt::validate_identity(identity)
            .map_err(|why| ServiceError::BadRequest(format!("invalid identity: {why}")))?;
    }
    let cards = if unique.is_empty() {
        Vec::new()
    } else {
        store.search_cards(app_id, &unique).await?
    };
    Ok(json_array(&cards))
}

/// Joins stored card JSON into an array without re-serializing any card.
fn json_array(cards: &[CardRecord]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + cards.iter().map(|c| c.raw.len() + 1).sum::<usize>());
    out.push(b'[');
    for (i, card) in cards.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&card.raw);
    }
    out.push(b']');
    out
}
