//! The card directory's rules (spec §3), callable without HTTP.

use super::auth::Caller;
use super::error::ServiceError;
use crate::store::{NewCard, Store};
use sealkit_crypto::PrivateKey;
use sealkit_proto::cards::{CardId, RawSignedModel};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    cache: &SearchCache,
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
    let result = store
        .publish_card(NewCard {
            id: id.to_string(),
            app_id: app_id.to_string(),
            identity: identity.clone(),
            previous_card_id,
            raw: raw.clone(),
            created_at: content.created_at,
        })
        .await;
    // Also after a failure: a commit whose answer was lost must not leave the old cards cached.
    cache.forget(app_id, identity);
    result?;
    Ok(raw)
}

/// Revokes `card_id`, which must be a card of the caller's identity.
pub async fn revoke(
    store: &dyn Store,
    cache: &SearchCache,
    caller: &Caller,
    card_id: &CardId,
) -> Result<(), ServiceError> {
    let result = store
        .revoke_card(&caller.app_id, &card_id.to_string(), &caller.identity)
        .await;
    // Also after a failure: a commit whose answer was lost must not leave the old cards cached.
    cache.forget(&caller.app_id, &caller.identity);
    result?;
    Ok(())
}

/// Searches the cards of `identities` (deduplicated, validated) and returns the JSON array.
/// Identities answered in the last [`SearchCache`] period come from memory; the others from
/// the store in one query.
pub async fn search(
    store: &dyn Store,
    cache: &SearchCache,
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
    let mut found: Vec<Arc<[u8]>> = Vec::new();
    let missing: Vec<String> = unique
        .into_iter()
        .filter(|identity| match cache.get(app_id, identity) {
            Some(cards) => {
                found.extend(cards.iter().cloned());
                false
            }
            None => true,
        })
        .collect();
    if !missing.is_empty() {
        // Taken before the read: an answer older than a change this process made is not kept.
        let generation = cache.generation();
        let records = store.search_cards(app_id, &missing).await?;
        let mut by_identity: HashMap<&str, Vec<Arc<[u8]>>> =
            missing.iter().map(|m| (m.as_str(), Vec::new())).collect();
        for record in records {
            let raw: Arc<[u8]> = record.raw.into();
            if let Some(cards) = by_identity.get_mut(record.identity.as_str()) {
                cards.push(raw.clone());
            }
            found.push(raw);
        }
        for (identity, cards) in by_identity {
            cache.put(generation, app_id, identity, cards);
        }
    }
    Ok(json_array(&found))
}

/// One identity's answer: its cards' JSON, shared by every search that uses it.
type CachedCards = Arc<[Arc<[u8]>]>;

/// Most identities a [`SearchCache`] holds; it is emptied when full.
const SEARCH_CACHE_MAX: usize = 100_000;

/// The search answers of recently asked identities (their cards' JSON), each kept for a short
/// period. Correctness rests on two rules:
/// * a publish or revoke through this process forgets its identity once the store has it, and
///   an answer read while such a change was in progress is never stored, so this
///   process never serves a card older than a change it acknowledged;
/// * other replicas' changes are not announced here: an entry is served for at most the
///   period (at most one second, see `Config::card_cache_ms`) after it was read.
///
/// Unknown identities are cached too (as no cards), so probing for absent users is as cheap as
/// finding present ones.
#[derive(Debug)]
pub struct SearchCache {
    ttl: Duration,
    generation: AtomicU64,
    /// Per (application, identity): when the answer was read, and the answer.
    entries: Mutex<HashMap<(String, String), (Instant, CachedCards)>>,
}

impl SearchCache {
    /// A cache keeping each answer for `ttl`; a zero `ttl` keeps nothing.
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            generation: AtomicU64::new(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn get(&self, app_id: &str, identity: &str) -> Option<CachedCards> {
        if self.ttl.is_zero() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let (read_at, cards) = entries.get(&(app_id.to_owned(), identity.to_owned()))?;
        (read_at.elapsed() < self.ttl).then(|| cards.clone())
    }

    /// The number of changes forgotten so far; [`Self::put`] keeps an answer only when none
    /// happened since this was taken.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    fn put(&self, generation: u64, app_id: &str, identity: &str, cards: Vec<Arc<[u8]>>) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        // Checked under the lock that `forget` bumps it under, so no change slips in between.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        if entries.len() >= SEARCH_CACHE_MAX {
            entries.clear();
        }
        entries.insert(
            (app_id.to_owned(), identity.to_owned()),
            (Instant::now(), cards.into()),
        );
    }

    /// Forgets `identity`'s answer, and every answer being read right now.
    pub fn forget(&self, app_id: &str, identity: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.remove(&(app_id.to_owned(), identity.to_owned()));
        }
    }
}

/// Joins stored card JSON into an array without re-serializing any card.
fn json_array(cards: &[Arc<[u8]>]) -> Vec<u8> {
    let mut out = Vec::with_capacity(2 + cards.iter().map(|c| c.len() + 1).sum::<usize>());
    out.push(b'[');
    for (i, card) in cards.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(card);
    }
    out.push(b']');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cards(texts: &[&str]) -> Vec<Arc<[u8]>> {
        texts.iter().map(|t| Arc::from(t.as_bytes())).collect()
    }

    fn texts(found: Option<CachedCards>) -> Option<Vec<String>> {
        found.map(|cards| {
            cards
                .iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect()
        })
    }

    #[test]
    fn answers_are_kept_per_app_and_identity_until_forgotten() {
        let cache = SearchCache::new(Duration::from_secs(3600));
        let generation = cache.generation();
        cache.put(generation, "app", "alice", cards(&["a1", "a0"]));
        cache.put(generation, "app", "nobody", Vec::new());
        assert_eq!(
            texts(cache.get("app", "alice")),
            Some(vec!["a1".into(), "a0".into()])
        );
        assert_eq!(texts(cache.get("app", "nobody")), Some(Vec::new()));
        assert_eq!(texts(cache.get("other", "alice")), None);
        cache.forget("app", "alice");
        assert_eq!(texts(cache.get("app", "alice")), None);
        assert_eq!(texts(cache.get("app", "nobody")), Some(Vec::new()));
    }

    #[test]
    fn an_answer_read_before_a_change_is_not_kept() {
        let cache = SearchCache::new(Duration::from_secs(3600));
        let before = cache.generation();
        // A publish of someone else completes while this search reads the store.
        cache.forget("app", "bob");
        cache.put(before, "app", "alice", cards(&["stale"]));
        assert_eq!(texts(cache.get("app", "alice")), None);
        let after = cache.generation();
        cache.put(after, "app", "alice", cards(&["fresh"]));
        assert_eq!(texts(cache.get("app", "alice")), Some(vec!["fresh".into()]));
    }

    #[test]
    fn answers_expire_and_a_zero_period_keeps_nothing() {
        let cache = SearchCache::new(Duration::from_millis(30));
        cache.put(cache.generation(), "app", "alice", cards(&["a"]));
        assert!(cache.get("app", "alice").is_some());
        std::thread::sleep(Duration::from_millis(40));
        assert!(cache.get("app", "alice").is_none());
        let off = SearchCache::new(Duration::ZERO);
        off.put(off.generation(), "app", "alice", cards(&["a"]));
        assert!(off.get("app", "alice").is_none());
    }
}
