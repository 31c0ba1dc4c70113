//! # sealkit-kt
//!
//! Key transparency for Sealkit: what the verifiable key directory holds and how a client checks
//! what the server shows it. Pure: no I/O, no clock; shared by the server (which builds the
//! directory with [AKD](akd)) and the SDK (which verifies).
//!
//! Each application has one directory. Its entries are:
//!
//! * **label**: the identity's UTF-8 bytes ([`identity_label`]). AKD hides labels behind a VRF
//!   keyed per application, so a proof for `alice` reveals nothing about other identities.
//! * **value**: a 32-byte commitment to the identity's *current* cards ([`card_set_commitment`]):
//!   SHA-256 over a domain tag and the sorted raw card ids. A card id is SHA-512 of the card's
//!   content snapshot (first 32 bytes), so a client that computed the id of the card it holds
//!   from its snapshot can check that the directory commits to exactly that card.
//!
//! Every publish, rotation or revocation appends a version of the entry. The server publishes
//! the changes in epochs and signs each epoch's root hash ([`SignedHead`]). A client:
//!
//! 1. pins the deployment's KT signing key (`GET /kt/v1/key`, or configured out of band);
//! 2. checks a card with [`verify_lookup`] then [`VerifiedEntry::check_cards`];
//! 3. checks that every new head extends the last one it saw with [`verify_append_only`];
//! 4. monitors its own identity with [`verify_history`].
//!
//! ```
//! use sealkit_kt::{card_set_commitment, parse_card_id, SignedHead};
//!
//! # fn main() -> Result<(), sealkit_kt::KtError> {
//! // What the directory holds for an identity whose current card has this id.
//! let id = parse_card_id(&"ab".repeat(32))?;
//! let value = card_set_commitment([id]);
//! assert_eq!(value.len(), 32);
//!
//! // A head signed by the deployment key verifies; changed, it does not.
//! let key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]);
//! let head = SignedHead::sign(&key, "my-app", 5, [1; 32], [2; 32]);
//! let pinned = key.verifying_key().to_bytes();
//! head.verify(&pinned)?;
//! let mut forged = head.clone();
//! forged.epoch = 6;
//! assert!(forged.verify(&pinned).is_err());
//! # Ok(())
//! # }
//! ```
//!
//! The complete client flow, against wire responses (see [`verify_lookup`] for an example with
//! a real directory) is in docs/key-transparency.md.

#![forbid(unsafe_code)]

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use protobuf::Message as _;
use sealkit_proto::kt as wire;
use sha2::{Digest as _, Sha256};

pub use akd;

/// The domain label of Sealkit's directories: every hash AKD computes is separated with it.
#[derive(Clone, Copy, Debug)]
pub struct SealkitDomain;

impl akd::DomainLabel for SealkitDomain {
    fn domain_label() -> &'static [u8] {
        b"sealkit-kt/v1"
    }
}

/// The AKD configuration of every Sealkit directory: AKD's "experimental" configuration (BLAKE3,
/// the current recommended one) under [`SealkitDomain`]. Server and clients must agree on it.
pub type KtConfiguration = akd::ExperimentalConfiguration<SealkitDomain>;

/// Length of a card id in bytes (64 hex characters on the wire).
pub const CARD_ID_LEN: usize = 32;

/// Domain tag hashed first into a [`card_set_commitment`].
pub const CARD_SET_TAG: &[u8] = b"sealkit-kt/v1 card-set\0";

/// Domain tag that starts the bytes a [`SignedHead`] signs.
pub const HEAD_TAG: &[u8] = b"sealkit-kt/v1 signed-head\0";

/// Why a check failed. Every variant means "do not use this card / head".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KtError {
    /// A field is not in its wire encoding (hex, base64, protobuf, lengths).
    #[error("malformed {what}: {why}")]
    Malformed {
        /// Which field.
        what: &'static str,
        /// What is wrong.
        why: String,
    },
    /// The head's signature does not verify under the pinned KT key.
    #[error("the signed head's signature is invalid")]
    BadHeadSignature,
    /// The answer is about another application or identity than the one asked for.
    #[error("the answer is for {found:?}, expected {expected:?}")]
    WrongSubject {
        /// What the caller asked for.
        expected: String,
        /// What the answer names.
        found: String,
    },
    /// The proof does not verify against the head (the server showed something the directory
    /// does not hold).
    #[error("proof does not verify: {0}")]
    BadProof(String),
    /// The directory's entry does not commit to the cards the client holds.
    #[error("the directory does not commit to these cards")]
    CardsNotInDirectory,
    /// Heads that should extend each other do not (a fork, a rollback or a switched VRF key).
    #[error("the heads are not one append-only history: {0}")]
    NotAnExtension(String),
}

fn malformed(what: &'static str, why: impl ToString) -> KtError {
    KtError::Malformed {
        what,
        why: why.to_string(),
    }
}

/// The directory label of an identity: its UTF-8 bytes.
pub fn identity_label(identity: &str) -> akd::AkdLabel {
    akd::AkdLabel(identity.as_bytes().to_vec())
}

/// Parses a card id (64 hex characters, either case) into its raw bytes.
pub fn parse_card_id(card_id: &str) -> Result<[u8; CARD_ID_LEN], KtError> {
    let mut raw = [0u8; CARD_ID_LEN];
    hex::decode_to_slice(card_id, &mut raw).map_err(|e| malformed("card id", e))?;
    Ok(raw)
}

/// The value of an identity's directory entry: a commitment to its current cards.
///
/// `SHA-256(CARD_SET_TAG || u32_be(n) || id_1 || ... || id_n)` where `id_i` are the raw 32-byte
/// ids of the current (neither superseded nor revoked) cards, sorted ascending and without
/// duplicates. An identity whose cards were all revoked commits to the empty set (n = 0).
/// Order and duplicates of the input do not matter.
pub fn card_set_commitment(card_ids: impl IntoIterator<Item = [u8; CARD_ID_LEN]>) -> [u8; 32] {
    let mut ids: Vec<[u8; CARD_ID_LEN]> = card_ids.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    let mut hash = Sha256::new();
    hash.update(CARD_SET_TAG);
    hash.update((ids.len() as u32).to_be_bytes());
    for id in &ids {
        hash.update(id);
    }
    hash.finalize().into()
}

/// The signed head of one epoch of one application's directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedHead {
    /// The application.
    pub app_id: String,
    /// The epoch.
    pub epoch: u64,
    /// The directory's root hash at `epoch`.
    pub root_hash: [u8; 32],
    /// The application's VRF public key.
    pub vrf_public_key: [u8; 32],
    /// Ed25519 signature over [`SignedHead::signed_message`].
    pub signature: [u8; 64],
}

impl SignedHead {
    /// The bytes the deployment key signs:
    /// `HEAD_TAG || u16_be(len(app_id)) || app_id || u64_be(epoch) || root_hash ||
    /// vrf_public_key`. App ids are at most a few dozen bytes; a longer one is cut at
    /// `u16::MAX` (never happens with valid ids, and cannot collide: the length is prefixed).
    pub fn signed_message(
        app_id: &str,
        epoch: u64,
        root_hash: &[u8; 32],
        vrf_public_key: &[u8; 32],
    ) -> Vec<u8> {
        let app = &app_id.as_bytes()[..app_id.len().min(usize::from(u16::MAX))];
        let mut message = Vec::with_capacity(HEAD_TAG.len() + 2 + app.len() + 8 + 64);
        message.extend_from_slice(HEAD_TAG);
        message.extend_from_slice(&(app.len() as u16).to_be_bytes());
        message.extend_from_slice(app);
        message.extend_from_slice(&epoch.to_be_bytes());
        message.extend_from_slice(root_hash);
        message.extend_from_slice(vrf_public_key);
        message
    }

    /// Signs a head (server side).
    pub fn sign(
        key: &SigningKey,
        app_id: &str,
        epoch: u64,
        root_hash: [u8; 32],
        vrf_public_key: [u8; 32],
    ) -> Self {
        let signature = key
            .sign(&Self::signed_message(
                app_id,
                epoch,
                &root_hash,
                &vrf_public_key,
            ))
            .to_bytes();
        Self {
            app_id: app_id.to_owned(),
            epoch,
            root_hash,
            vrf_public_key,
            signature,
        }
    }

    /// Checks the signature under the pinned deployment KT key (32 raw bytes), strictly
    /// (no malleable or small-order signatures).
    pub fn verify(&self, signing_public_key: &[u8; 32]) -> Result<(), KtError> {
        let key = VerifyingKey::from_bytes(signing_public_key)
            .map_err(|e| malformed("KT signing key", e))?;
        let message = Self::signed_message(
            &self.app_id,
            self.epoch,
            &self.root_hash,
            &self.vrf_public_key,
        );
        key.verify_strict(&message, &Signature::from_bytes(&self.signature))
            .map_err(|_| KtError::BadHeadSignature)
    }

    /// Decodes the wire form (does not verify; see [`SignedHead::verify`]).
    pub fn from_wire(head: &wire::SignedHead) -> Result<Self, KtError> {
        Ok(Self {
            app_id: head.app_id.clone(),
            epoch: head.epoch,
            root_hash: hex32("root_hash", &head.root_hash)?,
            vrf_public_key: hex32("vrf_public_key", &head.vrf_public_key)?,
            signature: BASE64
                .decode(&head.signature)
                .map_err(|e| malformed("signature", e))?
                .try_into()
                .map_err(|_| malformed("signature", "not 64 bytes"))?,
        })
    }

    /// The wire form.
    pub fn to_wire(&self) -> wire::SignedHead {
        wire::SignedHead {
            app_id: self.app_id.clone(),
            epoch: self.epoch,
            root_hash: hex::encode(self.root_hash),
            vrf_public_key: hex::encode(self.vrf_public_key),
            signature: BASE64.encode(self.signature),
        }
    }

    /// Decodes `head`, checks its signature and that it is `app_id`'s.
    pub fn verified_from_wire(
        head: &wire::SignedHead,
        signing_public_key: &[u8; 32],
        app_id: &str,
    ) -> Result<Self, KtError> {
        let head = Self::from_wire(head)?;
        if head.app_id != app_id {
            return Err(KtError::WrongSubject {
                expected: app_id.to_owned(),
                found: head.app_id,
            });
        }
        head.verify(signing_public_key)?;
        Ok(head)
    }
}

fn hex32(what: &'static str, text: &str) -> Result<[u8; 32], KtError> {
    let mut raw = [0u8; 32];
    hex::decode_to_slice(text, &mut raw).map_err(|e| malformed(what, e))?;
    Ok(raw)
}

/// Parses the deployment's KT signing key as served by `GET /kt/v1/key` (base64 of 32 bytes).
pub fn parse_signing_public_key(base64_key: &str) -> Result<[u8; 32], KtError> {
    let raw = BASE64
        .decode(base64_key)
        .map_err(|e| malformed("KT signing key", e))?;
    let key: [u8; 32] = raw
        .try_into()
        .map_err(|_| malformed("KT signing key", "not 32 bytes"))?;
    VerifyingKey::from_bytes(&key).map_err(|e| malformed("KT signing key", e))?;
    Ok(key)
}

/// One verified version of an identity's entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedEntry {
    /// The entry's version (1 for the identity's first card, +1 per change).
    pub version: u64,
    /// The epoch in which this version was published.
    pub epoch: u64,
    /// The committed value ([`card_set_commitment`] of the cards current then).
    pub value: Vec<u8>,
}

impl VerifiedEntry {
    fn from_akd(result: akd::VerifyResult) -> Self {
        Self {
            version: result.version,
            epoch: result.epoch,
            value: result.value.0,
        }
    }

    /// Checks that this entry commits to exactly these current cards (ids as 64 hex
    /// characters, in any order). The caller must have computed each id from the card's
    /// snapshot itself; an id taken from the server's word proves nothing.
    pub fn check_cards<'a>(
        &self,
        current_card_ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<(), KtError> {
        let ids = current_card_ids
            .into_iter()
            .map(parse_card_id)
            .collect::<Result<Vec<_>, _>>()?;
        if self.value.as_slice() == card_set_commitment(ids).as_slice() {
            Ok(())
        } else {
            Err(KtError::CardsNotInDirectory)
        }
    }
}

fn decode_proof<P: protobuf::Message>(what: &'static str, text: &str) -> Result<P, KtError> {
    let bytes = BASE64.decode(text).map_err(|e| malformed(what, e))?;
    P::parse_from_bytes(&bytes).map_err(|e| malformed(what, e))
}

/// Encodes a lookup proof for the wire (server side): base64 of AKD's protobuf message.
pub fn encode_lookup_proof(proof: &akd::LookupProof) -> String {
    let message = akd::proto::specs::types::LookupProof::from(proof);
    BASE64.encode(message.write_to_bytes().unwrap_or_default())
}

/// Encodes a key-history proof for the wire (server side).
pub fn encode_history_proof(proof: &akd::HistoryProof) -> String {
    let message = akd::proto::specs::types::HistoryProof::from(proof);
    BASE64.encode(message.write_to_bytes().unwrap_or_default())
}

/// Encodes an append-only proof for the wire (server side).
pub fn encode_append_only_proof(proof: &akd::AppendOnlyProof) -> String {
    let message = akd::proto::specs::types::AppendOnlyProof::from(proof);
    BASE64.encode(message.write_to_bytes().unwrap_or_default())
}

fn check_identity(expected: &str, found: &str) -> Result<(), KtError> {
    if expected == found {
        Ok(())
    } else {
        Err(KtError::WrongSubject {
            expected: expected.to_owned(),
            found: found.to_owned(),
        })
    }
}

/// Verifies a `GET /kt/v1/lookup/{identity}` answer: the head is signed by the pinned key and is
/// `app_id`'s, and the proof shows `identity`'s newest entry in that head's tree (membership of
/// the version, its marker, and non-membership of the next stale version: the server cannot show
/// an old version as the current one).
///
/// Returns the verified head (to compare with or store as the client's newest, after
/// [`verify_append_only`]) and the entry; then call [`VerifiedEntry::check_cards`] with the
/// cards the client is about to use.
///
/// ```
/// # use sealkit_kt::*;
/// # fn example(signing_key: [u8; 32], response: &sealkit_proto::kt::LookupResponse,
/// #            card_id_from_snapshot: &str) -> Result<(), KtError> {
/// let (head, entry) = verify_lookup(&signing_key, "my-app-id", "alice", response)?;
/// entry.check_cards([card_id_from_snapshot])?;
/// # let _ = head; Ok(()) }
/// ```
pub fn verify_lookup(
    signing_public_key: &[u8; 32],
    app_id: &str,
    identity: &str,
    response: &wire::LookupResponse,
) -> Result<(SignedHead, VerifiedEntry), KtError> {
    check_identity(identity, &response.identity)?;
    let head = SignedHead::verified_from_wire(&response.head, signing_public_key, app_id)?;
    let message: akd::proto::specs::types::LookupProof =
        decode_proof("lookup proof", &response.proof)?;
    let proof = akd::LookupProof::try_from(&message).map_err(|e| malformed("lookup proof", e))?;
    let result = akd::client::lookup_verify::<KtConfiguration>(
        &head.vrf_public_key,
        head.root_hash,
        head.epoch,
        identity_label(identity),
        proof,
    )
    .map_err(|e| KtError::BadProof(e.to_string()))?;
    Ok((head, VerifiedEntry::from_akd(result)))
}

/// Verifies a `GET /kt/v1/history/{identity}` answer: every version of `identity`'s entry,
/// newest first, proved against the signed head, including that no later version exists (the
/// server cannot hide a newer card from the identity's owner).
///
/// Self-monitoring compares each returned value with the card sets this device published: a
/// version it did not make is a card someone else published for the identity.
pub fn verify_history(
    signing_public_key: &[u8; 32],
    app_id: &str,
    identity: &str,
    response: &wire::HistoryResponse,
) -> Result<(SignedHead, Vec<VerifiedEntry>), KtError> {
    check_identity(identity, &response.identity)?;
    let head = SignedHead::verified_from_wire(&response.head, signing_public_key, app_id)?;
    let message: akd::proto::specs::types::HistoryProof =
        decode_proof("history proof", &response.proof)?;
    let proof = akd::HistoryProof::try_from(&message).map_err(|e| malformed("history proof", e))?;
    let history_params = match response.most_recent {
        None => akd::HistoryParams::Complete,
        Some(n) => akd::HistoryParams::MostRecent(
            usize::try_from(n).map_err(|_| malformed("most_recent", "too large"))?,
        ),
    };
    let results = akd::client::key_history_verify::<KtConfiguration>(
        &head.vrf_public_key,
        head.root_hash,
        head.epoch,
        identity_label(identity),
        proof,
        akd::HistoryVerificationParams::Default { history_params },
    )
    .map_err(|e| KtError::BadProof(e.to_string()))?;
    Ok((
        head,
        results.into_iter().map(VerifiedEntry::from_akd).collect(),
    ))
}

/// Verifies a `GET /kt/v1/apps/{app_id}/audit?start=S&end=E` answer against the newest head
/// the client trusts (`trusted`, epoch `S`): every head is signed by the pinned key, is
/// `app_id`'s, carries the same VRF key, the epochs run `S..=E` one by one, the first root hash
/// is the trusted one, and AKD's append-only proof shows that each epoch's tree only added
/// entries to the previous one. Returns the head of epoch `E`, which the client may then trust.
///
/// Async because AKD's auditor is; it must run inside a tokio runtime (it may spawn tasks).
pub async fn verify_append_only(
    signing_public_key: &[u8; 32],
    trusted: &SignedHead,
    response: &wire::AuditResponse,
) -> Result<SignedHead, KtError> {
    let heads = response
        .heads
        .iter()
        .map(|h| SignedHead::verified_from_wire(h, signing_public_key, &trusted.app_id))
        .collect::<Result<Vec<_>, _>>()?;
    let (Some(first), Some(last)) = (heads.first(), heads.last()) else {
        return Err(malformed("audit heads", "none"));
    };
    if heads.len() < 2 {
        return Err(malformed(
            "audit heads",
            "an audit spans at least two epochs",
        ));
    }
    if first.epoch != trusted.epoch || first.root_hash != trusted.root_hash {
        return Err(KtError::NotAnExtension(format!(
            "the audit starts at epoch {} with another root than the trusted head of epoch {}",
            first.epoch, trusted.epoch
        )));
    }
    for pair in heads.windows(2) {
        if pair[1].epoch != pair[0].epoch.saturating_add(1) {
            return Err(malformed("audit heads", "epochs are not consecutive"));
        }
    }
    if heads
        .iter()
        .any(|h| h.vrf_public_key != trusted.vrf_public_key)
    {
        return Err(KtError::NotAnExtension("the VRF key changed".into()));
    }
    let message: akd::proto::specs::types::AppendOnlyProof =
        decode_proof("append-only proof", &response.proof)?;
    let proof =
        akd::AppendOnlyProof::try_from(&message).map_err(|e| malformed("append-only proof", e))?;
    if proof.epochs.first() != Some(&first.epoch) {
        return Err(KtError::NotAnExtension(
            "the proof starts at another epoch than the heads".into(),
        ));
    }
    let hashes = heads.iter().map(|h| h.root_hash).collect();
    akd::auditor::audit_verify::<KtConfiguration>(hashes, proof)
        .await
        .map_err(|e| KtError::NotAnExtension(e.to_string()))?;
    Ok(last.clone())
}

/// Checks two heads of one application that the client got on different paths (its stored head
/// and one gossiped by a peer): same epoch must mean same root and VRF key. A difference is a
/// split view: proof that the server shows different directories to different clients (both are
/// signed, so the pair is evidence). Heads of different epochs need [`verify_append_only`].
pub fn check_same_view(a: &SignedHead, b: &SignedHead) -> Result<(), KtError> {
    if a.app_id == b.app_id
        && a.epoch == b.epoch
        && (a.root_hash != b.root_hash || a.vrf_public_key != b.vrf_public_key)
    {
        return Err(KtError::NotAnExtension(format!(
            "two different signed heads for epoch {}",
            a.epoch
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn card_set_commitment_ignores_order_and_duplicates() {
        let a = [1u8; 32];
        let b = [2u8; 32];
        assert_eq!(card_set_commitment([a, b]), card_set_commitment([b, a, b]));
        assert_ne!(card_set_commitment([a]), card_set_commitment([b]));
        assert_ne!(card_set_commitment([a]), card_set_commitment([]));
    }

    #[test]
    fn card_set_commitment_vector() {
        // Fixed vector (docs/key-transparency.md): one card id 00 01 .. 1f.
        let id: [u8; 32] = core::array::from_fn(|i| i as u8);
        let mut manual = Sha256::new();
        manual.update(b"sealkit-kt/v1 card-set\0");
        manual.update([0, 0, 0, 1]);
        manual.update(id);
        let expected: [u8; 32] = manual.finalize().into();
        assert_eq!(card_set_commitment([id]), expected);
    }

    #[test]
    fn head_round_trips_and_binds_every_field() -> Result<(), KtError> {
        let key = SigningKey::from_bytes(&[9; 32]);
        let pinned = key.verifying_key().to_bytes();
        let head = SignedHead::sign(&key, "app", 3, [4; 32], [5; 32]);
        let back = SignedHead::verified_from_wire(&head.to_wire(), &pinned, "app")?;
        assert_eq!(back, head);
        let mut changed = head.clone();
        changed.root_hash[0] ^= 1;
        assert_eq!(changed.verify(&pinned), Err(KtError::BadHeadSignature));
        let mut changed = head.clone();
        changed.vrf_public_key[31] ^= 1;
        assert_eq!(changed.verify(&pinned), Err(KtError::BadHeadSignature));
        let mut changed = head.clone();
        changed.app_id = "app2".into();
        assert_eq!(changed.verify(&pinned), Err(KtError::BadHeadSignature));
        assert!(matches!(
            SignedHead::verified_from_wire(&head.to_wire(), &pinned, "other"),
            Err(KtError::WrongSubject { .. })
        ));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key().to_bytes();
        assert_eq!(head.verify(&other), Err(KtError::BadHeadSignature));
        Ok(())
    }

    #[test]
    fn check_cards_matches_only_the_committed_set() -> Result<(), KtError> {
        let one = "11".repeat(32);
        let two = "22".repeat(32);
        let entry = VerifiedEntry {
            version: 1,
            epoch: 1,
            value: card_set_commitment([parse_card_id(&one)?]).to_vec(),
        };
        entry.check_cards([one.as_str()])?;
        assert_eq!(
            entry.check_cards([two.as_str()]),
            Err(KtError::CardsNotInDirectory)
        );
        assert_eq!(
            entry.check_cards([one.as_str(), two.as_str()]),
            Err(KtError::CardsNotInDirectory)
        );
        assert!(entry.check_cards(["zz"]).is_err());
        Ok(())
    }

    #[test]
    fn same_epoch_different_roots_is_a_split_view() {
        let key = SigningKey::from_bytes(&[9; 32]);
        let a = SignedHead::sign(&key, "app", 3, [4; 32], [5; 32]);
        let b = SignedHead::sign(&key, "app", 3, [6; 32], [5; 32]);
        let c = SignedHead::sign(&key, "app", 4, [6; 32], [5; 32]);
        assert!(check_same_view(&a, &a).is_ok());
        assert!(check_same_view(&a, &b).is_err());
        assert!(check_same_view(&a, &c).is_ok());
    }
}
