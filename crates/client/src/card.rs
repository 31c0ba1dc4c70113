//! Cards as the SDK hands them out (spec §3.1): a verified [`RawSignedModel`] with its parsed
//! content and the chain of the cards it replaced.

use crate::error::{Error, Result};
use sealkit_crypto::PublicKey;
use sealkit_proto::{CardId, RawSignedModel};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A user's card: identity, public key and, after key rotations, the cards it replaced.
///
/// Built only from a [`RawSignedModel`] whose self signature verifies (spec §3.1), so the public
/// key is the one its owner proved to hold. The raw model is kept byte for byte
/// ([`Card::raw`]); nothing is re-serialized.
///
/// Like e3kit's `ICard`, the card returned by [`crate::EThree::find_users`] is the user's
/// actual card, and [`Card::previous_card`] links to the card it replaced (marked
/// [`Card::is_outdated`]), and so on down the chain. The chain is what lets
/// [`crate::EThree::auth_decrypt`] verify messages signed before a rotation.
///
/// ```no_run
/// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
/// let bob = ethree.find_user("bob").await?;
/// println!("{}: card {} since {:?}", bob.identity(), bob.id(), bob.created_at());
/// // Encrypt to the actual card; auth_decrypt uses the older ones for older messages.
/// let message = ethree.auth_encrypt(b"hi Bob", &[&bob]).await?;
/// assert!(bob.chain().skip(1).all(|old| old.is_outdated()));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Card {
    raw: RawSignedModel,
    id: CardId,
    identity: String,
    public_key: PublicKey,
    created_at: i64,
    previous_card_id: Option<CardId>,
    previous_card: Option<Box<Card>>,
    is_outdated: bool,
}

impl Card {
    /// Parses and verifies one card: its content (spec §3.1), its id (SHA-512 of the snapshot)
    /// and its self signature. The result has no previous card linked and is not outdated.
    ///
    /// ```
    /// use sealkit::{Card, CardError, PrivateKey, RawSignedModel};
    /// use sealkit_proto::CardContent;
    ///
    /// // What register() publishes: a card signed by its own key.
    /// let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// let content = CardContent {
    ///     identity: "alice".to_owned(),
    ///     previous_card_id: None,
    ///     created_at: 1_700_000_000,
    ///     version: "5.0".to_owned(),
    ///     public_key: key.public_key().to_base64(),
    /// };
    /// let raw = RawSignedModel::from_content(&content, &key)?;
    ///
    /// // A card received as JSON (from a server, or forwarded by a user) is verified before use:
    /// let json = serde_json::to_string(&raw)?;
    /// let card = Card::from_raw(serde_json::from_str(&json)?)?;
    /// assert_eq!(card.identity(), "alice");
    ///
    /// // The same content with another key's signature is rejected.
    /// let mallory = PrivateKey::ed25519_from_seed(&[8; 32]);
    /// let other = CardContent { public_key: mallory.public_key().to_base64(), ..content };
    /// let mut forged = raw.clone();
    /// forged.signatures = RawSignedModel::from_content(&other, &mallory)?.signatures;
    /// assert_eq!(Card::from_raw(forged), Err(CardError::SelfSignatureInvalid));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_raw(raw: RawSignedModel) -> Result<Self, sealkit_proto::CardError> {
        let content = raw.content()?;
        raw.verify_self_signature()?;
        let public_key = content.decode_public_key()?;
        let previous_card_id = content
            .previous_card_id
            .as_deref()
            .map(str::parse::<CardId>)
            .transpose()?;
        Ok(Self {
            id: raw.card_id()?,
            identity: content.identity,
            public_key,
            created_at: content.created_at,
            previous_card_id,
            previous_card: None,
            is_outdated: false,
            raw,
        })
    }

    /// The card id (64 lowercase hex characters when printed).
    ///
    /// ```
    /// # use sealkit::{Card, PrivateKey, RawSignedModel};
    /// # let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// # let content = sealkit_proto::CardContent {
    /// #     identity: "alice".to_owned(),
    /// #     previous_card_id: None,
    /// #     created_at: 1700000000,
    /// #     version: "5.0".to_owned(),
    /// #     public_key: key.public_key().to_base64(),
    /// # };
    /// # let card = Card::from_raw(RawSignedModel::from_content(&content, &key)?)?;
    /// use sealkit::CardId;
    ///
    /// // Remember which card a contact had, to notice later that it changed:
    /// let known = card.id().to_string();
    /// assert_eq!(known.len(), 64);
    /// let parsed: CardId = known.parse()?;
    /// assert_eq!(&parsed, card.id());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn id(&self) -> &CardId {
        &self.id
    }

    /// The owner's identity.
    ///
    /// ```
    /// # use sealkit::{Card, PrivateKey, RawSignedModel};
    /// # let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// # let content = sealkit_proto::CardContent {
    /// #     identity: "alice".to_owned(),
    /// #     previous_card_id: None,
    /// #     created_at: 1700000000,
    /// #     version: "5.0".to_owned(),
    /// #     public_key: key.public_key().to_base64(),
    /// # };
    /// # let card = Card::from_raw(RawSignedModel::from_content(&content, &key)?)?;
    /// // A card only ever speaks for its own identity: check it before trusting it for someone.
    /// assert_eq!(card.identity(), "alice");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn identity(&self) -> &str {
        &self.identity
    }

    /// The owner's public key: encrypt to it, verify signatures with it.
    ///
    /// ```
    /// # use sealkit::{Card, PrivateKey, RawSignedModel};
    /// # let alice_key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// # let content = sealkit_proto::CardContent {
    /// #     identity: "alice".to_owned(),
    /// #     previous_card_id: None,
    /// #     created_at: 1700000000,
    /// #     version: "5.0".to_owned(),
    /// #     public_key: alice_key.public_key().to_base64(),
    /// # };
    /// # let card = Card::from_raw(RawSignedModel::from_content(&content, &alice_key)?)?;
    /// use sealkit::KeyType;
    ///
    /// // The key Alice proved to hold when publishing (alice_key stays on her device):
    /// assert_eq!(card.public_key(), alice_key.public_key());
    /// assert_eq!(card.public_key().key_type(), KeyType::Ed25519);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn public_key(&self) -> &PublicKey {
        &self.public_key
    }

    /// When the card was created, as written in it (Unix seconds).
    ///
    /// ```
    /// # use sealkit::{Card, PrivateKey, RawSignedModel};
    /// # let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// # let content = sealkit_proto::CardContent {
    /// #     identity: "alice".to_owned(),
    /// #     previous_card_id: None,
    /// #     created_at: 1700000000,
    /// #     version: "5.0".to_owned(),
    /// #     public_key: key.public_key().to_base64(),
    /// # };
    /// # let card = Card::from_raw(RawSignedModel::from_content(&content, &key)?)?;
    /// // Unix seconds, e.g. to store next to a message in a database column:
    /// assert_eq!(card.created_at_secs(), 1_700_000_000);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn created_at_secs(&self) -> i64 {
        self.created_at
    }

    /// When the card was created, as written in it.
    ///
    /// ```
    /// # use sealkit::{Card, PrivateKey, RawSignedModel};
    /// # let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// # let content = sealkit_proto::CardContent {
    /// #     identity: "alice".to_owned(),
    /// #     previous_card_id: None,
    /// #     created_at: 1700000000,
    /// #     version: "5.0".to_owned(),
    /// #     public_key: key.public_key().to_base64(),
    /// # };
    /// # let card = Card::from_raw(RawSignedModel::from_content(&content, &key)?)?;
    /// use std::time::{Duration, SystemTime, UNIX_EPOCH};
    ///
    /// assert_eq!(card.created_at(), UNIX_EPOCH + Duration::from_secs(1_700_000_000));
    /// let age = SystemTime::now().duration_since(card.created_at())?;
    /// println!("key in use for {} days", age.as_secs() / 86_400);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn created_at(&self) -> SystemTime {
        match u64::try_from(self.created_at) {
            Ok(secs) => UNIX_EPOCH + Duration::from_secs(secs),
            Err(_) => UNIX_EPOCH - Duration::from_secs(self.created_at.unsigned_abs()),
        }
    }

    /// The id of the card this one replaced, when it was made by a key rotation.
    ///
    /// ```
    /// # use sealkit::{Card, PrivateKey, RawSignedModel};
    /// # let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// # let content = sealkit_proto::CardContent {
    /// #     identity: "alice".to_owned(),
    /// #     previous_card_id: None,
    /// #     created_at: 1700000000,
    /// #     version: "5.0".to_owned(),
    /// #     public_key: key.public_key().to_base64(),
    /// # };
    /// # let first = Card::from_raw(RawSignedModel::from_content(&content, &key)?)?;
    /// use sealkit_proto::CardContent;
    ///
    /// // What rotate_private_key publishes: a card naming the one it replaces.
    /// let new_key = PrivateKey::ed25519_from_seed(&[8; 32]);
    /// let content = CardContent {
    ///     identity: "alice".to_owned(),
    ///     previous_card_id: Some(first.id().to_string()),
    ///     created_at: 1_800_000_000,
    ///     version: "5.0".to_owned(),
    ///     public_key: new_key.public_key().to_base64(),
    /// };
    /// let second = Card::from_raw(RawSignedModel::from_content(&content, &new_key)?)?;
    /// assert_eq!(second.previous_card_id(), Some(first.id()));
    /// assert_eq!(first.previous_card_id(), None);
    /// // Card::from_raw links nothing: the card itself comes with find_users (see previous_card).
    /// assert!(second.previous_card().is_none());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn previous_card_id(&self) -> Option<&CardId> {
        self.previous_card_id.as_ref()
    }

    /// The card this one replaced, when the server returned it (it does while that card is not
    /// revoked).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let bob = ethree.find_user("bob").await?;
    /// if let Some(old) = bob.previous_card() {
    ///     assert!(old.is_outdated());
    ///     assert_eq!(bob.previous_card_id(), Some(old.id()));
    ///     println!("bob replaced key {} on {:?}", old.id(), bob.created_at());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn previous_card(&self) -> Option<&Card> {
        self.previous_card.as_deref()
    }

    /// `true` for a card that was replaced by a newer one (every card reached through
    /// [`Card::previous_card`]).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let bob = ethree.find_user("bob").await?;
    /// assert!(!bob.is_outdated()); // find_users returns actual cards
    /// let replaced = bob.chain().filter(|c| c.is_outdated()).count();
    /// println!("bob replaced his key {replaced} time(s)");
    /// # Ok(()) }
    /// ```
    pub fn is_outdated(&self) -> bool {
        self.is_outdated
    }

    /// The card as received from the server (spec §3.1), with every signature.
    ///
    /// ```
    /// # use sealkit::{Card, PrivateKey, RawSignedModel};
    /// # let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// # let content = sealkit_proto::CardContent {
    /// #     identity: "alice".to_owned(),
    /// #     previous_card_id: None,
    /// #     created_at: 1700000000,
    /// #     version: "5.0".to_owned(),
    /// #     public_key: key.public_key().to_base64(),
    /// # };
    /// # let card = Card::from_raw(RawSignedModel::from_content(&content, &key)?)?;
    /// // Store or forward a card as the server sent it; it is verified again when read back.
    /// let json = serde_json::to_string(card.raw())?;
    /// let back = Card::from_raw(serde_json::from_str(&json)?)?;
    /// assert_eq!(back, card);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn raw(&self) -> &RawSignedModel {
        &self.raw
    }

    /// This card followed by its predecessors, newest first.
    ///
    /// ```
    /// # use sealkit::{Card, PrivateKey, RawSignedModel};
    /// # let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// # let content = sealkit_proto::CardContent {
    /// #     identity: "alice".to_owned(),
    /// #     previous_card_id: None,
    /// #     created_at: 1700000000,
    /// #     version: "5.0".to_owned(),
    /// #     public_key: key.public_key().to_base64(),
    /// # };
    /// # let card = Card::from_raw(RawSignedModel::from_content(&content, &key)?)?;
    /// // The ids of every key the user had, newest first. A card parsed on its own is a chain of
    /// // one; cards from find_users bring their predecessors.
    /// let history: Vec<String> = card.chain().map(|c| c.id().to_string()).collect();
    /// assert_eq!(history, [card.id().to_string()]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn chain(&self) -> impl Iterator<Item = &Card> {
        std::iter::successors(Some(self), |c| c.previous_card())
    }

    /// The card of this chain that was valid at `moment`, exactly like e3kit's
    /// `getCardActiveAtMoment`: starting from this card, steps back while the card was created
    /// after `moment` (compared in milliseconds, card times being whole seconds).
    ///
    /// [`Error::SenderCardNewerThanMessage`] when every card of the chain is newer.
    ///
    /// ```
    /// # use sealkit::{Card, PrivateKey, RawSignedModel};
    /// # let key = PrivateKey::ed25519_from_seed(&[7; 32]);
    /// # let content = sealkit_proto::CardContent {
    /// #     identity: "alice".to_owned(),
    /// #     previous_card_id: None,
    /// #     created_at: 1700000000,
    /// #     version: "5.0".to_owned(),
    /// #     public_key: key.public_key().to_base64(),
    /// # };
    /// # let card = Card::from_raw(RawSignedModel::from_content(&content, &key)?)?;
    /// use sealkit::Error;
    /// use std::time::{Duration, UNIX_EPOCH};
    ///
    /// // The card was created at 1_700_000_000: a message sent after that was signed with it...
    /// let sent_at = UNIX_EPOCH + Duration::from_secs(1_700_000_100);
    /// assert_eq!(card.active_at(sent_at)?.id(), card.id());
    /// // ...while one dated before it cannot have been.
    /// let too_early = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    /// assert!(matches!(card.active_at(too_early), Err(Error::SenderCardNewerThanMessage)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn active_at(&self, moment: SystemTime) -> Result<&Card> {
        let moment_ms = unix_millis(moment);
        self.chain()
            .find(|c| i128::from(c.created_at) * 1000 <= moment_ms)
            .ok_or(Error::SenderCardNewerThanMessage)
    }

    /// The raw models of this card and its predecessors, newest first (what the cache stores).
    pub(crate) fn raw_chain(&self) -> Vec<RawSignedModel> {
        self.chain().map(|c| c.raw.clone()).collect()
    }
}

/// Milliseconds since the Unix epoch (negative before it).
fn unix_millis(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i128,
        Err(e) => -(e.duration().as_millis() as i128),
    }
}

/// Turns a search result into top-level cards with their predecessor chains, like virgil-sdk's
/// `linkedCardList`: a card that another card names as `previous_card_id` is removed from the
/// top level, marked outdated and linked under it.
pub(crate) fn link(cards: Vec<Card>) -> Vec<Card> {
    // Only a card of the same identity can be a predecessor (virgil-sdk does not check this).
    let referenced: std::collections::HashSet<(String, CardId)> = cards
        .iter()
        .filter_map(|c| c.previous_card_id.map(|id| (c.identity.clone(), id)))
        .collect();
    let mut by_id: HashMap<CardId, Card> = HashMap::with_capacity(cards.len());
    let mut heads = Vec::new();
    for card in cards {
        if referenced.contains(&(card.identity.clone(), card.id)) {
            by_id.insert(card.id, card);
        } else {
            heads.push(card);
        }
    }
    for head in &mut heads {
        let mut slot = head;
        // Each predecessor is taken out of the map once, so this ends even on a cycle.
        while let Some(mut previous) = slot.previous_card_id.and_then(|id| by_id.remove(&id)) {
            previous.is_outdated = true;
            slot.previous_card = Some(Box::new(previous));
            let Some(next) = slot.previous_card.as_deref_mut() else {
                break;
            };
            slot = next;
        }
    }
    heads
}

/// Parses, verifies and links the cards of a search for `requested` identities. Every card must
/// belong to a requested identity (virgil-sdk rejects the whole answer otherwise).
pub(crate) fn from_search(
    raw: Vec<RawSignedModel>,
    requested: &std::collections::HashSet<&str>,
) -> Result<Vec<Card>> {
    let mut cards = Vec::with_capacity(raw.len());
    for model in raw {
        let claimed = model.content().map(|c| c.identity);
        let card = Card::from_raw(model).map_err(|source| Error::InvalidCard {
            identity: claimed.unwrap_or_else(|_| "(unreadable card)".to_owned()),
            source,
        })?;
        if !requested.contains(card.identity()) {
            return Err(Error::InvalidResponse(format!(
                "the search returned a card of {:?}, which was not asked for",
                card.identity()
            )));
        }
        cards.push(card);
    }
    Ok(link(cards))
}

/// Rebuilds a chain stored newest first (see [`Card::raw_chain`]).
/// Cards read from the local store that were parsed and checked before, by a digest of their
/// exact signed bytes. A card never changes, so the same bytes always give the same card and the
/// same verdict; without this, every received chat message parsed its sender's cards and
/// checked their self-signatures again. Only cards that passed are kept; bounded, and emptied
/// when full.
static CHECKED_CARDS: Mutex<Option<HashMap<[u8; 32], Card>>> = Mutex::new(None);

/// Most cards [`CHECKED_CARDS`] holds.
const CHECKED_CARDS_MAX: usize = 4096;

/// SHA-256 over every byte of `raw` that its checks read, each field length-prefixed so no
/// two different models share an input.
fn signed_bytes_digest(raw: &RawSignedModel) -> [u8; 32] {
    let mut hash = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hash.update((bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    field(raw.content_snapshot.as_bytes());
    for signature in &raw.signatures {
        field(signature.signer.as_bytes());
        field(signature.signature.as_bytes());
        match &signature.snapshot {
            Some(snapshot) => {
                field(b"some");
                field(snapshot.as_bytes());
            }
            None => field(b"none"),
        }
    }
    hash.finalize().into()
}

/// [`Card::from_raw`], answered from [`CHECKED_CARDS`] when these exact bytes passed before.
fn from_raw_checked(raw: RawSignedModel) -> std::result::Result<Card, sealkit_proto::CardError> {
    let digest = signed_bytes_digest(&raw);
    {
        let cache = CHECKED_CARDS.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(card) = cache.as_ref().and_then(|cards| cards.get(&digest)) {
            return Ok(card.clone());
        }
    }
    let card = Card::from_raw(raw)?;
    let mut cache = CHECKED_CARDS.lock().unwrap_or_else(PoisonError::into_inner);
    let cards = cache.get_or_insert_with(HashMap::new);
    if cards.len() >= CHECKED_CARDS_MAX {
        cards.clear();
    }
    cards.insert(digest, card.clone());
    Ok(card)
}

pub(crate) fn from_chain(identity: &str, raw: Vec<RawSignedModel>) -> Result<Card> {
    let mut cards = Vec::with_capacity(raw.len());
    for model in raw {
        let card = from_raw_checked(model).map_err(|source| Error::InvalidCard {
            identity: identity.to_owned(),
            source,
        })?;
        if card.identity() != identity {
            return Err(Error::Storage(format!(
                "the cached card of {identity:?} belongs to {:?}",
                card.identity()
            )));
        }
        cards.push(card);
    }
    let mut heads = link(cards);
    match (heads.pop(), heads.is_empty()) {
        (Some(head), true) => Ok(head),
        _ => Err(Error::Storage(format!(
            "the cached cards of {identity:?} do not form one chain"
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sealkit_crypto::PrivateKey;
    use sealkit_proto::CardContent;

    fn card(identity: &str, seed: u8, created_at: i64, previous: Option<&Card>) -> Card {
        let key = PrivateKey::ed25519_from_seed(&[seed; 32]);
        let content = CardContent {
            identity: identity.to_owned(),
            previous_card_id: previous.map(|p| p.id().to_string()),
            created_at,
            version: "5.0".to_owned(),
            public_key: key.public_key().to_base64(),
        };
        Card::from_raw(RawSignedModel::from_content(&content, &key).unwrap()).unwrap()
    }

    #[test]
    fn links_chains_like_virgil_sdk() {
        let a1 = card("alice", 1, 100, None);
        let a2 = card("alice", 2, 200, Some(&a1));
        let a3 = card("alice", 3, 300, Some(&a2));
        let b1 = card("bob", 4, 150, None);
        let linked = link(vec![a1.clone(), b1.clone(), a3.clone(), a2.clone()]);
        assert_eq!(linked.len(), 2);
        let alice = linked.iter().find(|c| c.identity() == "alice").unwrap();
        assert_eq!(alice.id(), a3.id());
        assert!(!alice.is_outdated());
        let ids: Vec<_> = alice.chain().map(|c| *c.id()).collect();
        assert_eq!(ids, [*a3.id(), *a2.id(), *a1.id()]);
        assert!(alice.chain().skip(1).all(Card::is_outdated));
        let bob = linked.iter().find(|c| c.identity() == "bob").unwrap();
        assert!(bob.previous_card().is_none());
        // A predecessor missing from the answer (revoked) just ends the chain.
        let partial = link(vec![a3.clone()]);
        assert_eq!(partial.len(), 1);
        assert_eq!(partial[0].previous_card_id(), Some(a2.id()));
        assert!(partial[0].previous_card().is_none());
        // A card of another identity is never linked as a predecessor.
        let key = PrivateKey::ed25519_from_seed(&[9; 32]);
        let content = CardContent {
            identity: "mallory".to_owned(),
            previous_card_id: Some(b1.id().to_string()),
            created_at: 300,
            version: "5.0".to_owned(),
            public_key: key.public_key().to_base64(),
        };
        let mallory =
            Card::from_raw(RawSignedModel::from_content(&content, &key).unwrap()).unwrap();
        let linked = link(vec![mallory, b1.clone()]);
        assert_eq!(linked.len(), 2);
        assert!(linked.iter().all(|c| c.previous_card().is_none()));
        // Round trip through the cache form.
        let back = from_chain("alice", alice.raw_chain()).unwrap();
        assert_eq!(&back, alice);
        assert!(matches!(
            from_chain("bob", alice.raw_chain()),
            Err(Error::Storage(_))
        ));
    }

    /// Cards read back from the local store are checked once per exact bytes: the same bytes
    /// again give the same card, and any change of them (content or signature) is checked anew
    /// and refused, even after the genuine card was remembered.
    #[test]
    fn checked_cards_are_remembered_by_their_exact_bytes() {
        let key = PrivateKey::ed25519_from_seed(&[21; 32]);
        let content = CardContent {
            identity: "remembered".to_owned(),
            previous_card_id: None,
            created_at: 500,
            version: "5.0".to_owned(),
            public_key: key.public_key().to_base64(),
        };
        let raw = RawSignedModel::from_content(&content, &key).unwrap();
        let first = from_chain("remembered", vec![raw.clone()]).unwrap();
        let digest = signed_bytes_digest(&raw);
        assert!(CHECKED_CARDS
            .lock()
            .unwrap()
            .as_ref()
            .is_some_and(|cards| cards.contains_key(&digest)));
        assert_eq!(from_chain("remembered", vec![raw.clone()]).unwrap(), first);

        let mut forged_signature = raw.clone();
        let signature = &mut forged_signature.signatures[0].signature;
        let last = signature.pop().unwrap();
        signature.push(if last == 'A' { 'B' } else { 'A' });
        assert_ne!(signed_bytes_digest(&forged_signature), digest);
        assert!(from_chain("remembered", vec![forged_signature]).is_err());

        let other = CardContent {
            created_at: 501,
            ..content
        };
        let mut forged_content = raw.clone();
        forged_content.content_snapshot = RawSignedModel::from_content(&other, &key)
            .unwrap()
            .content_snapshot;
        assert!(from_chain("remembered", vec![forged_content]).is_err());
        // Moving bytes between fields changes the digest too.
        let mut shifted = raw;
        shifted.signatures[0].snapshot = Some(String::new());
        assert_ne!(signed_bytes_digest(&shifted), digest);
    }

    #[test]
    fn active_at_matches_get_card_active_at_moment() {
        let a1 = card("alice", 1, 100, None);
        let a2 = card("alice", 2, 200, Some(&a1));
        let head = link(vec![a2, a1]).pop().unwrap();
        let at = |ms: u64| UNIX_EPOCH + Duration::from_millis(ms);
        assert_eq!(head.active_at(at(200_000)).unwrap().created_at_secs(), 200);
        assert_eq!(head.active_at(at(199_999)).unwrap().created_at_secs(), 100);
        assert_eq!(head.active_at(at(100_000)).unwrap().created_at_secs(), 100);
        assert!(matches!(
            head.active_at(at(99_999)),
            Err(Error::SenderCardNewerThanMessage)
        ));
        assert!(matches!(
            head.active_at(UNIX_EPOCH - Duration::from_secs(5)),
            Err(Error::SenderCardNewerThanMessage)
        ));
        assert_eq!(head.created_at(), at(200_000));
    }

    #[test]
    fn search_results_must_be_requested_and_valid() {
        let a1 = card("alice", 1, 100, None);
        let requested = ["bob"].into_iter().collect();
        assert!(matches!(
            from_search(vec![a1.raw().clone()], &requested),
            Err(Error::InvalidResponse(_))
        ));
        let mut forged = a1.raw().clone();
        forged.signatures.clear();
        let requested = ["alice"].into_iter().collect();
        assert!(matches!(
            from_search(vec![forged], &requested),
            Err(Error::InvalidCard { .. })
        ));
    }
}
