//! Double-ratchet channels: e3kit's `createRatchetChannel`, `joinRatchetChannel`,
//! `getRatchetChannel`, `deleteRatchetChannel` and `RatchetChannel.encrypt/decrypt` (e3kit-x,
//! e3kit-kotlin with virgil-ratchet-x/-kotlin), on the sessions of `sealkit_ratchet` and the
//! key service `/pfs/v3/keys` (`docs/pfs.md`, `docs/forward-secrecy.md`).
//!
//! ## Keys
//! Each user publishes, at the key service, a long-term X25519 key signed by the card's Ed25519
//! key (Virgil signature over the key's `SubjectPublicKeyInfo` DER, as the mobile clients sign
//! it) and up to [`RATCHET_ONE_TIME_KEYS`] one-time X25519 keys. A peer that starts a channel
//! picks the long-term key and one one-time key, which the service hands out once. The private
//! halves stay on this device, sealed for the user's own key in the local store.
//!
//! A rotation ([`EThree::rotate_ratchet_keys`]) asks the service which of the local keys it
//! still holds (`validate`), marks the one-time keys it handed out as orphaned (their private
//! halves are kept [`ORPHANED_ONE_TIME_KEY_TTL`] for the channels that peers start with them),
//! replaces the long-term key when it is older than [`RATCHET_LONG_TERM_KEY_TTL`], when the
//! service lost it or the card changed (the old one is kept [`OUTDATED_LONG_TERM_KEY_TTL`]),
//! and tops the one-time keys up. These are virgil-ratchet's defaults.
//!
//! ## Channels
//! The creator starts a session from the picked keys and encrypts a random string: that first
//! (prekey) message is the invitation. It is pushed to Keyknox v2 as the mobile SDKs'
//! `CloudRatchetStorage` does: root `ratchet-peer-to-peer`, path = the receiver's identity, key
//! = the channel name (`"default"` without one), shared with [receiver, creator], signed by the
//! creator and encrypted for both. The receiver pulls it, starts its side of the session from
//! it, and decrypts it. The session of each side is stored locally after every message.

use crate::backup::{open_with, seal};
use crate::card::Card;
use crate::error::{Error, Result};
use crate::ethree::{decode_base64, utf8, EThree};
use crate::local::{KeyChanges, NewRatchetKey, RatchetKeyKind, RotationState};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use sealkit_crypto::{PrivateKey, PublicKey};
use sealkit_proto::keyknox::{V2Pull, V2Push, V2Reset, HASH_MISMATCH_CODE};
use sealkit_proto::pfs::{self, SignedPublicKey, UploadKeys, ValidateKeys, MAX_ONE_TIME_KEYS};
use sealkit_ratchet::x25519_dalek::{PublicKey as X25519Public, StaticSecret};
use sealkit_ratchet::{
    IdentityPrivateKey, IdentityPublicKey, KeyId, Message, ResponderKeys, Session,
};
use std::collections::HashSet;
use std::time::Duration;
use zeroize::{Zeroize, Zeroizing};

/// The Keyknox v2 root of the channel invitations (`CloudRatchetStorage`).
const RATCHET_ROOT: &str = "ratchet-peer-to-peer";

/// The channel name when none is given (`CloudRatchetStorage.defaultKey`).
pub const DEFAULT_RATCHET_CHANNEL: &str = "default";

/// How many one-time keys a rotation keeps at the key service (virgil-ratchet
/// `desiredNumberOfOneTimeKeys`; the service holds at most 150).
pub const RATCHET_ONE_TIME_KEYS: usize = 100;

/// How long a long-term key is used before a rotation replaces it (virgil-ratchet
/// `longTermKeyTtl`, 5 days).
pub const RATCHET_LONG_TERM_KEY_TTL: Duration = Duration::from_secs(5 * 24 * 3600);

/// How long a replaced long-term key's private half is kept for channels started with it
/// before the replacement (virgil-ratchet `outdatedLongTermKeyTtl`, a day).
pub const OUTDATED_LONG_TERM_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// How long a one-time key that the key service handed out is kept for the channel a peer
/// starts with it (virgil-ratchet `orphanedOneTimeKeyTtl`, a day).
pub const ORPHANED_ONE_TIME_KEY_TTL: Duration = Duration::from_secs(24 * 3600);

/// `SubjectPublicKeyInfo` DER of an X25519 key before its 32 raw bytes (RFC 8410).
const X25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
];

/// PKCS#8 DER of an Ed25519 private key before its 32-byte seed (RFC 8410), as
/// `PrivateKey::to_der` writes it.
const ED25519_PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// What one [`EThree::rotate_ratchet_keys`] did.
///
/// ```no_run
/// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
/// let rotation = ethree.rotate_ratchet_keys().await?;
/// println!(
///     "{} one-time keys were handed out, {} new ones published",
///     rotation.one_time_keys_used, rotation.one_time_keys_added
/// );
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RatchetRotation {
    /// A new long-term key was published.
    pub long_term_key_rotated: bool,
    /// One-time keys the key service no longer holds (handed out), now marked orphaned.
    pub one_time_keys_used: usize,
    /// New one-time keys published.
    pub one_time_keys_added: usize,
    /// Private halves of orphaned one-time keys and outdated long-term keys deleted after
    /// their time.
    pub keys_deleted: usize,
}

/// A double-ratchet channel with one user (e3kit `RatchetChannel`). Each message advances the
/// session stored on this device, so a message key is used once and forgotten after use:
/// decrypting a message a second time fails. Cheap to clone; clones and other handles of the
/// same channel share the stored session.
///
/// ```no_run
/// # async fn run(alice: sealkit::EThree, bob: sealkit::EThree) -> sealkit::Result<()> {
/// let bob_card = alice.find_user("bob").await?;
/// let channel = alice.create_ratchet_channel(&bob_card, None).await?;
/// let message = channel.encrypt_text("hello").await?;
///
/// let alice_card = bob.find_user("alice").await?;
/// let channel = bob.join_ratchet_channel(&alice_card, None).await?;
/// assert_eq!(channel.decrypt_text(&message).await?, "hello");
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RatchetChannel {
    ethree: EThree,
    participant: String,
    name: String,
}

impl std::fmt::Debug for RatchetChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RatchetChannel")
            .field("participant", &self.participant)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

fn channel_name(name: Option<&str>) -> Result<String> {
    match name {
        None => Ok(DEFAULT_RATCHET_CHANNEL.to_owned()),
        Some("") => Err(Error::InvalidInput(
            "a ratchet channel name is not empty (pass None for the default channel)".to_owned(),
        )),
        Some(name) => Ok(name.to_owned()),
    }
}

/// The 32 raw bytes of an Ed25519 public key.
fn ed25519_raw(key: &PublicKey, whose: &str) -> Result<[u8; 32]> {
    match key {
        PublicKey::Ed25519(key) => Ok(key.to_bytes()),
        other => Err(Error::InvalidInput(format!(
            "ratchet channels need Ed25519 card keys; {whose} has a {} key",
            other.key_type()
        ))),
    }
}

/// The 32-byte seed of an Ed25519 private key.
fn ed25519_seed(key: &PrivateKey) -> Result<Zeroizing<[u8; 32]>> {
    let der = key.to_der();
    let not_ed25519 = || {
        Error::InvalidInput(format!(
            "ratchet channels need an Ed25519 key; this user's key is {}",
            key.key_type()
        ))
    };
    let seed = der
        .strip_prefix(ED25519_PKCS8_PREFIX.as_slice())
        .ok_or_else(not_ed25519)?;
    let seed: [u8; 32] = seed.try_into().map_err(|_| not_ed25519())?;
    Ok(Zeroizing::new(seed))
}

/// A new X25519 key: its secret, its SPKI DER and its id.
fn new_x25519_key() -> (StaticSecret, Vec<u8>, [u8; 8]) {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    let secret = StaticSecret::from(bytes);
    bytes.zeroize();
    let public = X25519Public::from(&secret).to_bytes();
    let mut der = X25519_SPKI_PREFIX.to_vec();
    der.extend_from_slice(&public);
    (secret, der, pfs::key_id(&public))
}

fn duration_secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// A random invitation text, like e3kit's `UUID().uuidString` (the receiver discards it).
fn random_invitation() -> String {
    let mut bytes = [0u8; 16];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

impl EThree {
    /// The rotation interval; [`Error::RatchetDisabled`] without `enable_ratchet`.
    fn ratchet_interval(&self) -> Result<Duration> {
        self.inner.ratchet_interval.ok_or(Error::RatchetDisabled)
    }

    /// Encrypts a ratchet secret for the user's own key, for the local store.
    fn seal_local(&self, key: &PrivateKey, secret: &[u8]) -> Result<Vec<u8>> {
        let own = [key.public_key().clone()];
        Ok(self.inner.crypto.encrypt(&mut OsRng, secret, &own, false)?)
    }

    /// Decrypts a ratchet secret of the local store.
    fn unseal_local(
        &self,
        key: &PrivateKey,
        sealed: &[u8],
        what: &str,
    ) -> Result<Zeroizing<Vec<u8>>> {
        self.inner
            .crypto
            .decrypt(sealed, key)
            .map(Zeroizing::new)
            .map_err(|e| {
                Error::Storage(format!(
                    "a stored ratchet {what} does not decrypt with this user's key ({e}); delete \
                     the channel and create it again"
                ))
            })
    }

    /// A stored X25519 private key of `kind`, if held.
    async fn ratchet_secret(
        &self,
        key: &PrivateKey,
        kind: RatchetKeyKind,
        id: &KeyId,
    ) -> Result<Option<StaticSecret>> {
        let Some(sealed) = self.inner.local.sealed_ratchet_key(kind, &id.0).await? else {
            return Ok(None);
        };
        let bytes = self.unseal_local(key, &sealed, "key")?;
        let mut raw: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
            Error::Storage("a stored ratchet key is not 32 bytes; delete the card cache".to_owned())
        })?;
        let secret = StaticSecret::from(raw);
        raw.zeroize();
        Ok(Some(secret))
    }

    /// Rotates the ratchet keys when the last rotation is older than the rotation interval
    /// (or there was none).
    pub(crate) async fn rotate_ratchet_keys_if_due(&self) -> Result<()> {
        let interval = self.ratchet_interval()?;
        let due = match self.inner.local.rotation_state().await? {
            None => true,
            Some(state) => {
                crate::api::now_secs().saturating_sub(state.rotated_at) >= duration_secs(interval)
            }
        };
        if due {
            self.rotate_ratchet_keys().await?;
        }
        Ok(())
    }

    /// Checks this user's ratchet keys with the key service and rotates them (virgil-ratchet
    /// `rotateKeys`): publishes the long-term key (signed by the card's key) and one-time keys
    /// on first use; later replaces the one-time keys that were handed out, deletes private
    /// halves kept past their time, and replaces the long-term key when it is older than
    /// [`RATCHET_LONG_TERM_KEY_TTL`], when the key service no longer holds it, or when the
    /// user's card changed. The SDK calls it itself when a rotation is due (see
    /// [`crate::EThreeOptions::key_rotation_interval`]); call it to rotate now.
    ///
    /// Needs [`crate::EThreeOptions::enable_ratchet`] ([`Error::RatchetDisabled`]), the local
    /// private key ([`Error::MissingPrivateKey`]), which must be Ed25519, and exactly one card
    /// ([`Error::RegisterRequired`], [`Error::MultipleCards`]).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let rotation = ethree.rotate_ratchet_keys().await?;
    /// assert!(rotation.one_time_keys_added <= sealkit::RATCHET_ONE_TIME_KEYS);
    /// # Ok(()) }
    /// ```
    pub async fn rotate_ratchet_keys(&self) -> Result<RatchetRotation> {
        self.ratchet_interval()?;
        let _lock = self.inner.ratchet_lock.lock().await;
        let key = self.private_key().await?;
        ed25519_seed(&key)?;
        let mut cards = self.search_own().await?;
        let card = match (cards.pop(), cards.is_empty()) {
            (None, _) => return Err(Error::RegisterRequired),
            (Some(card), true) => card,
            (Some(_), false) => {
                return Err(Error::MultipleCards {
                    identity: self.inner.identity.clone(),
                })
            }
        };
        let card_id = card.id().to_string();
        let now = crate::api::now_secs();
        let local = &self.inner.local;
        let previous = local.rotation_state().await?;
        let card_changed = previous.as_ref().is_none_or(|s| s.card_id != card_id);
        let mut log = RatchetRotation::default();
        let mut changes = KeyChanges::default();

        // Expired private halves go; the rest is current or still waits for late channels.
        let long_term = local.ratchet_keys(RatchetKeyKind::LongTerm).await?;
        let one_time = local.ratchet_keys(RatchetKeyKind::OneTime).await?;
        let expired = |retired: Option<i64>, ttl: Duration| {
            retired.is_some_and(|at| now.saturating_sub(at) >= duration_secs(ttl))
        };
        for k in &long_term {
            if expired(k.retired_at, OUTDATED_LONG_TERM_KEY_TTL) {
                changes.delete.push(k.id);
            }
        }
        for k in &one_time {
            if expired(k.retired_at, ORPHANED_ONE_TIME_KEY_TTL) {
                changes.delete.push(k.id);
            }
        }
        log.keys_deleted = changes.delete.len();
        let current_long_term = long_term.iter().rev().find(|k| k.retired_at.is_none());
        let active_one_time: Vec<[u8; 8]> = one_time
            .iter()
            .filter(|k| k.retired_at.is_none())
            .map(|k| k.id)
            .collect();

        // Which of them the key service still holds.
        let (long_term_held, held_one_time) =
            if active_one_time.is_empty() && current_long_term.is_none() {
                (false, HashSet::new())
            } else {
                let ids = ValidateKeys {
                    long_term_key_id: current_long_term.map(|k| STANDARD.encode(k.id)),
                    one_time_keys_ids: (!active_one_time.is_empty()).then(|| {
                        active_one_time
                            .iter()
                            .map(|id| STANDARD.encode(id))
                            .collect()
                    }),
                };
                let answer = self.inner.api.pfs_validate(&ids).await?;
                let long_term_held = current_long_term.is_some_and(|k| {
                    answer.used_long_term_key_id.as_deref() == Some(STANDARD.encode(k.id).as_str())
                });
                let held: HashSet<String> = answer.used_one_time_keys_ids.into_iter().collect();
                (long_term_held, held)
            };
        let mut in_cloud = 0usize;
        for id in &active_one_time {
            if !card_changed && held_one_time.contains(&STANDARD.encode(id)) {
                in_cloud += 1;
            } else {
                changes.retire.push(*id);
                log.one_time_keys_used += 1;
            }
        }

        let mut upload = UploadKeys {
            identity_card_id: Some(card_id.clone()),
            ..UploadKeys::default()
        };
        let replace_long_term = match current_long_term {
            None => true,
            Some(k) => {
                card_changed
                    || !long_term_held
                    || now.saturating_sub(k.created_at) >= duration_secs(RATCHET_LONG_TERM_KEY_TTL)
            }
        };
        if replace_long_term {
            if let Some(k) = current_long_term {
                changes.retire.push(k.id);
            }
            let (secret, der, id) = new_x25519_key();
            let signature = sealkit_crypto::sign(&der, &key, &mut OsRng)?;
            changes.add.push(NewRatchetKey {
                id,
                kind: RatchetKeyKind::LongTerm,
                sealed: self.seal_local(&key, secret.as_bytes())?,
            });
            upload.long_term_key = Some(SignedPublicKey {
                public_key: STANDARD.encode(&der),
                signature: STANDARD.encode(signature),
            });
            log.long_term_key_rotated = true;
        }
        let wanted = RATCHET_ONE_TIME_KEYS
            .min(MAX_ONE_TIME_KEYS)
            .saturating_sub(in_cloud);
        let mut new_one_time = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            let (secret, der, id) = new_x25519_key();
            changes.add.push(NewRatchetKey {
                id,
                kind: RatchetKeyKind::OneTime,
                sealed: self.seal_local(&key, secret.as_bytes())?,
            });
            new_one_time.push(STANDARD.encode(&der));
        }
        log.one_time_keys_added = new_one_time.len();
        if !new_one_time.is_empty() {
            upload.one_time_keys = Some(new_one_time);
        }

        // The private halves are stored before the public ones are published: a key the
        // service hands out is always one this device can answer with. Keys of a failed upload
        // are missing at the next validate and are retired then.
        let state = RotationState {
            card_id,
            rotated_at: now,
        };
        local.apply_key_changes(&changes, now, &state).await?;
        if card_changed || upload.long_term_key.is_some() || upload.one_time_keys.is_some() {
            self.inner.api.pfs_upload(&upload).await?;
        }
        Ok(log)
    }

    /// Creates a double-ratchet channel with the user of `card` (e3kit `createRatchetChannel`)
    /// and stores it on this device. `name` tells apart several channels with the same user
    /// (`None`: [`DEFAULT_RATCHET_CHANNEL`]).
    ///
    /// Picks the user's keys at the key service (using up one of their one-time keys), checks
    /// them against the card, starts the session and leaves its first message in Keyknox as the
    /// invitation the user reads with [`EThree::join_ratchet_channel`].
    ///
    /// Errors: [`Error::RatchetDisabled`], [`Error::SelfRatchetChannel`],
    /// [`Error::RatchetChannelExists`] (here, or an invitation with that name is still in
    /// Keyknox), [`Error::UserNotUsingRatchet`], [`Error::InvalidRatchetKeys`],
    /// [`Error::ContactKeyChanged`] for a verified contact, and network errors.
    ///
    /// ```no_run
    /// # async fn run(alice: sealkit::EThree) -> sealkit::Result<()> {
    /// let bob = alice.find_user("bob").await?;
    /// let channel = alice.create_ratchet_channel(&bob, Some("work")).await?;
    /// let message = channel.encrypt(b"the first message").await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_ratchet_channel(
        &self,
        card: &Card,
        name: Option<&str>,
    ) -> Result<RatchetChannel> {
        let new = self.begin_new_channel(card, name).await?;
        let (participant, name) = (new.participant.clone(), new.name.clone());
        let key = self.private_key().await?;
        let seed = ed25519_seed(&key)?;
        let own_raw = ed25519_raw(key.public_key(), "this user")?;
        let peer_raw = ed25519_raw(card.public_key(), &participant)?;

        let set = self
            .inner
            .api
            .pfs_pick_one(&participant)
            .await?
            .ok_or_else(|| Error::UserNotUsingRatchet {
                identity: participant.clone(),
            })?;
        let invalid = |reason: String| Error::InvalidRatchetKeys {
            identity: participant.clone(),
            reason,
        };
        let decode = |field: &str, text: &str| {
            STANDARD
                .decode(text)
                .map_err(|e| invalid(format!("{field} is not base64 ({e})")))
        };
        if decode("identity_key", &set.identity_key)? != card.public_key().to_der() {
            return Err(invalid(
                "the identity key is not the key of the card".to_owned(),
            ));
        }
        let long_term = decode("long_term_key", &set.long_term_key.public_key)?;
        let signature = decode("signature", &set.long_term_key.signature)?;
        sealkit_crypto::verify(&long_term, &signature, card.public_key()).map_err(|_| {
            invalid("the long-term key's signature does not verify with the card's key".to_owned())
        })?;
        let long_term =
            pfs::x25519_raw(&long_term).map_err(|e| invalid(format!("long-term key: {e}")))?;
        let one_time = match &set.one_time_key {
            None => None,
            Some(text) => {
                let raw = pfs::x25519_raw(&decode("one_time_key", text)?)
                    .map_err(|e| invalid(format!("one-time key: {e}")))?;
                Some((X25519Public::from(raw), KeyId(pfs::key_id(&raw))))
            }
        };
        let responder = ResponderKeys {
            identity: IdentityPublicKey::from_ed25519_bytes(&peer_raw)?,
            identity_key_id: KeyId::of_public_key(&peer_raw),
            long_term: X25519Public::from(long_term),
            long_term_key_id: KeyId(pfs::key_id(&long_term)),
            one_time,
        };
        let own_identity = IdentityPrivateKey::from_ed25519_seed(&seed);
        let mut session = Session::initiate(
            &mut OsRng,
            &own_identity,
            KeyId::of_public_key(&own_raw),
            &responder,
        )?;
        let invitation = session.encrypt(&mut OsRng, random_invitation().as_bytes())?;

        let recipients = [card.public_key().clone(), key.public_key().clone()];
        let (meta, value) = seal(self.inner.crypto, &invitation.encode(), &key, &recipients)?;
        let push = V2Push {
            root: RATCHET_ROOT.to_owned(),
            path: participant.clone(),
            key: name.clone(),
            identities: vec![participant.clone(), self.inner.identity.clone()],
            meta,
            value,
        };
        match self.inner.api.keyknox_v2_push(&push, None).await {
            Ok(_) => {}
            Err(Error::Api {
                status: 409,
                code: HASH_MISMATCH_CODE,
                ..
            }) => return Err(new.exists()),
            Err(e) => return Err(e),
        }
        self.store_new_channel(new, &key, &session, None).await
    }

    /// Joins the double-ratchet channel that the user of `card` created with this user (e3kit
    /// `joinRatchetChannel`) and stores it on this device: reads the invitation from Keyknox,
    /// starts this side of the session with the private halves of the keys it names (the
    /// one-time key is then deleted: it serves one channel) and decrypts it.
    ///
    /// Errors: [`Error::RatchetDisabled`], [`Error::SelfRatchetChannel`],
    /// [`Error::RatchetChannelExists`], [`Error::NoRatchetInvite`],
    /// [`Error::RatchetKeyMissing`], [`Error::Crypto`] (the invitation is not signed by the
    /// card's key or not encrypted for this user), [`Error::Ratchet`], and network errors.
    ///
    /// ```no_run
    /// # async fn run(bob: sealkit::EThree, message: Vec<u8>) -> sealkit::Result<()> {
    /// let alice = bob.find_user("alice").await?;
    /// let channel = bob.join_ratchet_channel(&alice, Some("work")).await?;
    /// let text = channel.decrypt(&message).await?;
    /// # Ok(()) }
    /// ```
    pub async fn join_ratchet_channel(
        &self,
        card: &Card,
        name: Option<&str>,
    ) -> Result<RatchetChannel> {
        let new = self.begin_new_channel(card, name).await?;
        let (participant, name) = (new.participant.clone(), new.name.clone());
        let no_invite = || Error::NoRatchetInvite {
            identity: participant.clone(),
            name: name.clone(),
        };
        let key = self.private_key().await?;
        let seed = ed25519_seed(&key)?;
        let peer_raw = ed25519_raw(card.public_key(), &participant)?;

        let pulled = match self
            .inner
            .api
            .keyknox_v2_pull(&V2Pull {
                root: RATCHET_ROOT.to_owned(),
                path: self.inner.identity.clone(),
                key: name.clone(),
                identity: Some(participant.clone()),
            })
            .await
        {
            Ok(pulled) => pulled.value,
            Err(Error::Api { status: 404, .. }) => return Err(no_invite()),
            Err(e) => return Err(e),
        };
        let signer = [card.public_key().clone()];
        let invitation = open_with(&pulled.meta, &pulled.value, &key, &signer)
            .map_err(|e| match e {
                Ok(e) => Error::Crypto(e),
                Err(e) => e,
            })?
            .ok_or_else(no_invite)?;
        let message = Message::decode(&invitation)?;
        let prekey = *message
            .prekey()
            .ok_or(sealkit_ratchet::Error::WrongMessageType)?;
        let missing = |which| Error::RatchetKeyMissing {
            identity: participant.clone(),
            which,
        };
        let long_term = self
            .ratchet_secret(
                &key,
                RatchetKeyKind::LongTerm,
                &prekey.receiver_long_term_key_id,
            )
            .await?
            .ok_or_else(|| missing("long-term"))?;
        let one_time = match &prekey.receiver_one_time_key_id {
            None => None,
            Some(id) => Some(
                self.ratchet_secret(&key, RatchetKeyKind::OneTime, id)
                    .await?
                    .ok_or_else(|| missing("one-time"))?,
            ),
        };
        let own_identity = IdentityPrivateKey::from_ed25519_seed(&seed);
        let sender = IdentityPublicKey::from_ed25519_bytes(&peer_raw)?;
        let mut session = Session::respond(
            &sender,
            &own_identity,
            &long_term,
            one_time.as_ref(),
            &message,
        )?;
        session.decrypt(&message)?;
        let used = prekey.receiver_one_time_key_id.map(|id| id.0);
        self.store_new_channel(new, &key, &session, used.as_ref())
            .await
    }

    /// The checks that creating and joining a channel share: ratchet enabled, a valid name,
    /// another user, pinned keys unchanged, ratchet keys rotated when due, and no channel of
    /// that name yet. The result holds the ratchet lock until the new channel is stored.
    async fn begin_new_channel(&self, card: &Card, name: Option<&str>) -> Result<NewChannel<'_>> {
        self.ratchet_interval()?;
        let name = channel_name(name)?;
        let participant = card.identity().to_owned();
        if participant == self.inner.identity {
            return Err(Error::SelfRatchetChannel);
        }
        self.check_pins([card]).await?;
        self.rotate_ratchet_keys_if_due().await?;
        let lock = self.inner.ratchet_lock.lock().await;
        let new = NewChannel {
            participant,
            name,
            _lock: lock,
        };
        if self
            .inner
            .local
            .sealed_session(&new.participant, &new.name)
            .await?
            .is_some()
        {
            return Err(new.exists());
        }
        Ok(new)
    }

    /// Seals `session` under this device's key and stores it as the new channel, consuming the
    /// one-time key the peer's invitation used (if any) in the same transaction.
    async fn store_new_channel(
        &self,
        new: NewChannel<'_>,
        key: &PrivateKey,
        session: &Session,
        used_one_time_key: Option<&[u8; 8]>,
    ) -> Result<RatchetChannel> {
        let sealed = self.seal_local(key, &session.serialize())?;
        if !self
            .inner
            .local
            .save_session(
                &new.participant,
                &new.name,
                &sealed,
                true,
                used_one_time_key,
            )
            .await?
        {
            return Err(new.exists());
        }
        let NewChannel {
            participant, name, ..
        } = new;
        Ok(self.channel(participant, name))
    }

    /// The channel with `identity` named `name` (`None`: [`DEFAULT_RATCHET_CHANNEL`]) stored on
    /// this device, if any (e3kit `getRatchetChannel`). Makes no request.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, message: Vec<u8>) -> sealkit::Result<()> {
    /// match ethree.get_ratchet_channel("bob", None).await? {
    ///     Some(channel) => println!("{:?}", channel.decrypt(&message).await?),
    ///     None => println!("join the channel first"),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn get_ratchet_channel(
        &self,
        identity: &str,
        name: Option<&str>,
    ) -> Result<Option<RatchetChannel>> {
        self.ratchet_interval()?;
        let name = channel_name(name)?;
        Ok(self
            .inner
            .local
            .sealed_session(identity, &name)
            .await?
            .map(|_| self.channel(identity.to_owned(), name)))
    }

    /// Deletes the channel with `identity` named `name` (e3kit `deleteRatchetChannel`): this
    /// user's invitation for it in Keyknox (when this user created it) and the session on this
    /// device. Succeeds when there is neither. To start over, both sides delete the channel.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// ethree.delete_ratchet_channel("bob", None).await?;
    /// assert!(ethree.get_ratchet_channel("bob", None).await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn delete_ratchet_channel(&self, identity: &str, name: Option<&str>) -> Result<()> {
        self.ratchet_interval()?;
        let name = channel_name(name)?;
        self.inner
            .api
            .keyknox_v2_reset(&V2Reset {
                root: Some(RATCHET_ROOT.to_owned()),
                path: Some(identity.to_owned()),
                key: Some(name.clone()),
                identity: None,
            })
            .await?;
        let _lock = self.inner.ratchet_lock.lock().await;
        self.inner.local.delete_session(identity, &name).await?;
        Ok(())
    }

    /// `unregister` with ratchet enabled: deletes this user's keys at the key service and the
    /// invitations this user left in Keyknox (e3kit resets its secure chat and cloud ratchet
    /// storage). The local ones go with the private key.
    pub(crate) async fn delete_ratchet_keys_remotely(&self) -> Result<()> {
        self.inner.api.pfs_delete().await?;
        self.inner
            .api
            .keyknox_v2_reset(&V2Reset {
                root: Some(RATCHET_ROOT.to_owned()),
                path: None,
                key: None,
                identity: None,
            })
            .await
    }

    fn channel(&self, participant: String, name: String) -> RatchetChannel {
        RatchetChannel {
            ethree: self.clone(),
            participant,
            name,
        }
    }
}

impl RatchetChannel {
    /// The other participant's identity.
    ///
    /// ```no_run
    /// # fn run(channel: sealkit::RatchetChannel) {
    /// println!("channel {} with {}", channel.name(), channel.participant());
    /// # }
    /// ```
    pub fn participant(&self) -> &str {
        &self.participant
    }

    /// The channel's name ([`DEFAULT_RATCHET_CHANNEL`] when created without one).
    ///
    /// ```no_run
    /// # fn run(channel: sealkit::RatchetChannel) {
    /// assert!(!channel.name().is_empty());
    /// # }
    /// ```
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Loads the stored session, runs `step` on it and stores it again before returning the
    /// result, under the channel lock (a message key must never serve two messages).
    async fn with_session<T>(&self, step: impl FnOnce(&mut Session) -> Result<T>) -> Result<T> {
        let ethree = &self.ethree;
        let _lock = ethree.inner.ratchet_lock.lock().await;
        let local = &ethree.inner.local;
        let sealed = local
            .sealed_session(&self.participant, &self.name)
            .await?
            .ok_or_else(|| Error::RatchetChannelNotFound {
                identity: self.participant.clone(),
                name: self.name.clone(),
            })?;
        let key = ethree.private_key().await?;
        let bytes = ethree.unseal_local(&key, &sealed, "session")?;
        let mut session = Session::deserialize(&bytes)?;
        let out = step(&mut session)?;
        let sealed = ethree.seal_local(&key, &session.serialize())?;
        local
            .save_session(&self.participant, &self.name, &sealed, false, None)
            .await?;
        Ok(out)
    }

    /// Encrypts `data` (at most [`sealkit_ratchet::MAX_PLAIN_TEXT_LEN`] bytes) for the other
    /// participant (e3kit `RatchetChannel.encrypt`): the next message of the session, in
    /// Virgil's ratchet message format.
    ///
    /// ```no_run
    /// # async fn run(channel: sealkit::RatchetChannel) -> sealkit::Result<()> {
    /// let message = channel.encrypt(b"see you at 5").await?;
    /// # Ok(()) }
    /// ```
    pub async fn encrypt(&self, data: &[u8]) -> Result<Vec<u8>> {
        self.with_session(|session| Ok(session.encrypt(&mut OsRng, data)?.encode()))
            .await
    }

    /// Decrypts a message of the other participant (e3kit `RatchetChannel.decrypt`). Messages
    /// may arrive out of order (within the limits of `sealkit_ratchet`); each decrypts once.
    /// A failed decryption leaves the session as it was.
    ///
    /// ```no_run
    /// # async fn run(channel: sealkit::RatchetChannel, message: Vec<u8>) -> sealkit::Result<()> {
    /// let data = channel.decrypt(&message).await?;
    /// # Ok(()) }
    /// ```
    pub async fn decrypt(&self, message: &[u8]) -> Result<Vec<u8>> {
        let message = Message::decode(message)?;
        self.with_session(|session| Ok(session.decrypt(&message)?.to_vec()))
            .await
    }

    /// [`RatchetChannel::encrypt`] for text: returns the message in standard base64, as e3kit's
    /// `encrypt(text:)`.
    ///
    /// ```no_run
    /// # async fn run(channel: sealkit::RatchetChannel) -> sealkit::Result<()> {
    /// let message: String = channel.encrypt_text("see you at 5").await?;
    /// # Ok(()) }
    /// ```
    pub async fn encrypt_text(&self, text: &str) -> Result<String> {
        Ok(STANDARD.encode(self.encrypt(text.as_bytes()).await?))
    }

    /// [`RatchetChannel::decrypt`] for text: decodes base64, decrypts, and requires UTF-8.
    ///
    /// ```no_run
    /// # async fn run(channel: sealkit::RatchetChannel, message: String) -> sealkit::Result<()> {
    /// let text = channel.decrypt_text(&message).await?;
    /// # Ok(()) }
    /// ```
    pub async fn decrypt_text(&self, message: &str) -> Result<String> {
        let data = decode_base64(message)?;
        utf8(self.decrypt(&data).await?, "RatchetChannel::decrypt")
    }
}

/// A channel being created or joined: who with, its name, and the ratchet lock held until it
/// is stored (see `EThree::begin_new_channel`).
struct NewChannel<'a> {
    participant: String,
    name: String,
    _lock: tokio::sync::MutexGuard<'a, ()>,
}

impl NewChannel<'_> {
    fn exists(&self) -> Error {
        Error::RatchetChannelExists {
            identity: self.participant.clone(),
            name: self.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sealkit_crypto::KeyType;

    #[test]
    fn ed25519_seed_and_raw_key() {
        let key = PrivateKey::ed25519_from_seed(&[7; 32]);
        assert_eq!(*ed25519_seed(&key).unwrap(), [7; 32]);
        let raw = ed25519_raw(key.public_key(), "x").unwrap();
        assert_eq!(&key.public_key().to_der()[12..], &raw);
        let p256 = PrivateKey::generate(KeyType::Secp256r1, &mut OsRng);
        assert!(matches!(ed25519_seed(&p256), Err(Error::InvalidInput(_))));
        assert!(matches!(
            ed25519_raw(p256.public_key(), "x"),
            Err(Error::InvalidInput(_))
        ));
    }

    /// The DER of a new key is what virgil-crypto exports and what the key service reads, and
    /// its id is the service's.
    #[test]
    fn new_x25519_key_forms() {
        let (secret, der, id) = new_x25519_key();
        let public = X25519Public::from(&secret).to_bytes();
        assert_eq!(der.len(), 44);
        assert_eq!(pfs::x25519_raw(&der).unwrap(), public);
        match PublicKey::from_der(&der).unwrap() {
            PublicKey::X25519(k) => assert_eq!(k.to_bytes(), public),
            other => panic!("not X25519: {other:?}"),
        }
        assert_eq!(id, pfs::key_id(&public));
        assert_eq!(KeyId(id), KeyId::of_public_key(&public));
    }

    #[test]
    fn channel_names() {
        assert_eq!(channel_name(None).unwrap(), "default");
        assert_eq!(channel_name(Some("work")).unwrap(), "work");
        assert!(matches!(
            channel_name(Some("")),
            Err(Error::InvalidInput(_))
        ));
    }
}
