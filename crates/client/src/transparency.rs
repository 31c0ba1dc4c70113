//! Key transparency in the SDK: every card the SDK uses is checked against the server's
//! verifiable key directory (docs/key-transparency.md), and the user's own key history can be
//! monitored for cards this device did not make.
//!
//! **Cards.** Before [`crate::EThree::find_users`] (and everything built on it: the cache
//! refresh, chat members and senders, group participants, safety numbers) returns or caches a
//! card, the SDK asks `GET /kt/v1/lookup/{identity}` and checks, with `sealkit-kt`, that the
//! answer is signed by the deployment's KT key, that its proof verifies, and that the directory
//! commits to exactly the card it received (the id computed from the card's own snapshot). A
//! card whose identity is not in the directory yet, or whose entry still commits to other
//! cards, is asked for again for up to two epochs (the server says how long an epoch is), then
//! refused; while the server says the change is queued for the next epoch (`?pending=true`, a
//! hint that proves nothing) for up to ten epochs, at least 10 s. Cards read back from the
//! local cache were checked when they were fetched.
//!
//! The lookups of a search are asked for at the same time as the search itself (they do not
//! depend on its answer), so a checked search costs the slower of the two round trips, not
//! their sum. A card that passed its check is not checked again for a short while
//! ([`crate::EThreeOptions::kt_proof_reuse`], one second by default) if the server returns the
//! very same card: within that window an identity's rotation is noticed only when the server
//! returns the new card, as with the card cache.
//!
//! **Heads.** Per server and application, the storage directory keeps the newest signed head it
//! accepted. A newer head is accepted only with an append-only proof from the stored one
//! (`GET /kt/v1/apps/{app}/audit`); the same epoch must have the same root; an older epoch is
//! refused. So a server cannot roll its directory back or show this client a forked one
//! without the check failing.
//!
//! **Policy** ([`KtMode`], [`crate::EThreeOptions::key_transparency`]): by default the SDK
//! checks whenever the server serves `GET /kt/v1/key`, pins that key on first use, and from
//! then on refuses a different key or a server that stops serving key transparency. Servers
//! without it (Virgil's own, older Sealkit) keep working unchecked, unless [`KtMode::Required`].
//!
//! **Self-monitoring** ([`crate::EThree::monitor_key_history`]): every version of the user's
//! own directory entry, each marked as made by a key this device holds or held (the SDK
//! remembers the public keys of its own keys), or not.

use crate::api::kt::{is_entry_pending, is_not_in_directory, KeyAnswer};
use crate::api::{now_secs, ApiClient};
use crate::card::Card;
use crate::error::{Error, Result};
use crate::local::LocalStore;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sealkit_crypto::PublicKey;
use sealkit_kt::{
    card_set_commitment, check_same_view, parse_card_id, parse_signing_public_key,
    verify_append_only, verify_history, verify_lookup, KtError, SignedHead,
};
use sealkit_proto::kt as wire;
use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

/// Whether the SDK checks cards against the server's key directory
/// ([`crate::EThreeOptions::key_transparency`]).
///
/// ```
/// use sealkit::{EThreeOptions, KtMode};
///
/// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit");
/// assert_eq!(options.kt_mode(), KtMode::Auto);
/// let strict = options.key_transparency(KtMode::Required);
/// assert_eq!(strict.kt_mode(), KtMode::Required);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KtMode {
    /// Check when the server serves `GET /kt/v1/key` (the default). The key is pinned on first
    /// use; afterwards a different key, or the server no longer serving key transparency, is an
    /// error. A server that never served it (Virgil's own) is used without checks.
    #[default]
    Auto,
    /// Always check: a server without key transparency is an error
    /// ([`KtFailure::NotServed`]).
    Required,
    /// Never check (no request to `/kt/v1`). Cards are trusted as the server sends them, as
    /// e3kit does.
    Off,
}

/// Why a key-transparency check failed ([`Error::KeyTransparency`]). In every case the card
/// or head in question is not used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KtFailure {
    /// The directory commits to other cards than the one the server handed out for
    /// `identity`, even after waiting two epochs: the card was swapped, or the server hides
    /// it from the directory.
    CardNotInDirectory {
        /// Whose card.
        identity: String,
        /// The epoch of the last answer.
        epoch: u64,
    },
    /// `identity` has a card but no entry in the directory, even after waiting two epochs.
    IdentityNotInDirectory {
        /// Whose card.
        identity: String,
    },
    /// A proof or a signed head did not verify (bad signature, wrong subject, malformed).
    BadProof {
        /// What was being checked (an identity, or "audit").
        subject: String,
        /// The verifier's reason.
        reason: String,
    },
    /// The server's newest head is not an append-only extension of the head this client
    /// accepted before: its directory was rewritten, forked, or shows this client a different
    /// history than others.
    Fork {
        /// The epoch this client trusted.
        trusted_epoch: u64,
        /// The epoch the server showed.
        served_epoch: u64,
        /// The verifier's reason.
        reason: String,
    },
    /// The server showed an older epoch than the one this client already accepted (a
    /// rollback).
    Rollback {
        /// The epoch this client trusted.
        trusted_epoch: u64,
        /// The older epoch the server showed.
        served_epoch: u64,
    },
    /// The server's KT signing key is not the one pinned for it.
    SigningKeyChanged {
        /// The pinned key (base64).
        pinned: String,
        /// The key the server serves now (base64).
        served: String,
    },
    /// The server does not serve key transparency, but it did before (its key is pinned), or
    /// [`KtMode::Required`] asks for it.
    NotServed {
        /// What the server answered.
        reason: String,
    },
    /// A peer's signed head for an epoch differs from this client's view of the same epoch
    /// (or is not in one history with it): the server shows different directories to
    /// different users.
    SplitView {
        /// Whose head disagreed.
        peer: String,
        /// The epoch compared.
        epoch: u64,
        /// The verifier's reason.
        reason: String,
    },
}

impl fmt::Display for KtFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CardNotInDirectory { identity, epoch } => write!(
                f,
                "card not in directory: the card the server sent for {identity} is not the one \
                 its verifiable key directory holds (epoch {epoch}); it may have been swapped, \
                 do not use it"
            ),
            Self::IdentityNotInDirectory { identity } => write!(
                f,
                "identity not in directory: the server sent a card for {identity}, but its \
                 verifiable key directory has no entry for it, even after waiting two epochs"
            ),
            Self::BadProof { subject, reason } => {
                write!(f, "bad proof for {subject}: {reason}")
            }
            Self::Fork {
                trusted_epoch,
                served_epoch,
                reason,
            } => write!(
                f,
                "fork: the server's directory at epoch {served_epoch} does not extend the one \
                 this client accepted at epoch {trusted_epoch} ({reason})"
            ),
            Self::Rollback {
                trusted_epoch,
                served_epoch,
            } => write!(
                f,
                "rollback: the server showed epoch {served_epoch}, older than epoch \
                 {trusted_epoch} this client already accepted"
            ),
            Self::SigningKeyChanged { pinned, served } => write!(
                f,
                "signing key changed: the server signs its directory with {served}, but {pinned} \
                 is pinned for it"
            ),
            Self::NotServed { reason } => write!(
                f,
                "not served: the server does not serve key transparency ({reason}), but this \
                 client requires it (pinned key or KtMode::Required)"
            ),
            Self::SplitView {
                peer,
                epoch,
                reason,
            } => write!(
                f,
                "split view: the directory head {peer} saw for epoch {epoch} is not in this \
                 client's history ({reason})"
            ),
        }
    }
}

impl From<KtFailure> for Error {
    fn from(failure: KtFailure) -> Self {
        Error::KeyTransparency(failure)
    }
}

/// Epoch length assumed for a server that does not say (it waits for a new card up to two of
/// these).
const DEFAULT_EPOCH: Duration = Duration::from_secs(2);
/// Bounds on the epoch length a server may announce: a lying server cannot make the SDK wait
/// for minutes.
const MIN_EPOCH: Duration = Duration::from_millis(50);
const MAX_EPOCH: Duration = Duration::from_secs(10);
/// Extra time over two epochs, for the publish itself and the network.
const EPOCH_SLACK: Duration = Duration::from_millis(500);
/// How long a card the server says is queued for the next epoch is waited for: this many
/// epochs, and at least [`MIN_QUEUED_WAIT`] (a publisher that is slow under load, or a replica
/// taking over from one that died).
const QUEUED_WAIT_EPOCHS: u32 = 10;
const MIN_QUEUED_WAIT: Duration = Duration::from_secs(10);

/// How long a card that passed its check is taken as checked by default
/// ([`crate::EThreeOptions::kt_proof_reuse`]).
pub const DEFAULT_KT_PROOF_REUSE: Duration = Duration::from_secs(1);
/// The longest [`crate::EThreeOptions::kt_proof_reuse`] honoured.
pub const MAX_KT_PROOF_REUSE: Duration = Duration::from_secs(60);
/// Identities whose last successful check is remembered.
const VERIFIED_CAPACITY: usize = 1024;

/// Most gossiped heads remembered as checked (each set is emptied when full: forgetting only
/// costs a check again). With an epoch a second, this is over an hour of heads.
const GOSSIP_REMEMBERED: usize = 4096;

/// How long [`Transparency::gossip_head`] reuses the head it read from the store.
const GOSSIP_HEAD_REREAD: Duration = Duration::from_secs(1);

fn lock_std<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Lookup answers asked for before the cards they are for arrived, by identity.
pub(crate) type Prefetched = std::collections::HashMap<String, Result<wire::LookupResponse>>;

/// The last successful check of an identity's card.
#[derive(Clone, Debug)]
struct Verified {
    card_id: String,
    at: Instant,
}

/// What the server's key directory is for this client, once found out.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Directory {
    /// No checks (KtMode::Off, or Auto against a server that never served KT).
    Unchecked,
    /// Checked against heads signed with `key`; epochs last `epoch`.
    Checked { key: [u8; 32], epoch: Duration },
}

/// The key-transparency state of one [`crate::EThree`].
pub(crate) struct Transparency {
    mode: KtMode,
    configured_key: Option<[u8; 32]>,
    /// The server as the local store names it (the API URL without a trailing slash).
    server: String,
    app_id: String,
    directory: tokio::sync::Mutex<Option<Directory>>,
    /// Serializes head acceptance, so concurrent lookups extend the stored head one at a time.
    heads: tokio::sync::Mutex<()>,
    /// Gossiped heads (epoch, root) already found to be in this client's history.
    gossip_seen: std::sync::Mutex<std::collections::HashSet<(u64, [u8; 32])>>,
    /// The exact gossiped heads (every field as received) that passed
    /// [`Transparency::check_gossip`]: the same bytes again would verify and compare the same
    /// way, so they are not checked again. Every chat message carries its sender's head, and
    /// in a busy channel that is one and the same head for a second or more.
    gossip_passed: std::sync::Mutex<std::collections::HashSet<wire::SignedHead>>,
    /// The head [`Transparency::gossip_head`] read from the store, and when: a chat sender
    /// gossips with every post, and a head at most [`GOSSIP_HEAD_REREAD`] older than the
    /// stored one is as good (a receiver compares it with its own history either way).
    gossip_head: std::sync::Mutex<Option<(Instant, Option<wire::SignedHead>)>>,
    /// How long a successful card check is reused.
    proof_reuse: Duration,
    /// The last successful check per identity, for [`Transparency::proof_reuse`].
    verified: std::sync::Mutex<std::collections::HashMap<String, Verified>>,
}

impl fmt::Debug for Transparency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transparency")
            .field("mode", &self.mode)
            .field("server", &self.server)
            .field("app_id", &self.app_id)
            .finish_non_exhaustive()
    }
}

fn bad_proof(subject: &str, e: KtError) -> Error {
    KtFailure::BadProof {
        subject: subject.to_owned(),
        reason: e.to_string(),
    }
    .into()
}

impl Transparency {
    pub(crate) fn new(
        mode: KtMode,
        configured_key: Option<[u8; 32]>,
        server: &str,
        app_id: &str,
        proof_reuse: Duration,
    ) -> Self {
        Self {
            mode,
            configured_key,
            server: server.trim_end_matches('/').to_owned(),
            app_id: app_id.to_owned(),
            directory: tokio::sync::Mutex::new(None),
            heads: tokio::sync::Mutex::new(()),
            gossip_seen: std::sync::Mutex::new(std::collections::HashSet::new()),
            gossip_passed: std::sync::Mutex::new(std::collections::HashSet::new()),
            gossip_head: std::sync::Mutex::new(None),
            proof_reuse: proof_reuse.min(MAX_KT_PROOF_REUSE),
            verified: std::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn verified(&self) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, Verified>> {
        self.verified
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `identity`'s card was checked less than the reuse window ago (any card).
    fn recently_checked(&self, identity: &str) -> bool {
        self.verified()
            .get(identity)
            .is_some_and(|v| v.at.elapsed() < self.proof_reuse)
    }

    /// Whether exactly this card of `identity` was checked less than the reuse window ago.
    fn checked_card(&self, identity: &str, card_id: &str) -> bool {
        self.verified()
            .get(identity)
            .is_some_and(|v| v.card_id == card_id && v.at.elapsed() < self.proof_reuse)
    }

    fn remember_checked(&self, identity: &str, card_id: &str) {
        if self.proof_reuse.is_zero() {
            return;
        }
        let mut verified = self.verified();
        if verified.len() >= VERIFIED_CAPACITY {
            let window = self.proof_reuse;
            verified.retain(|_, v| v.at.elapsed() < window);
            if verified.len() >= VERIFIED_CAPACITY {
                verified.clear();
            }
        }
        verified.insert(
            identity.to_owned(),
            Verified {
                card_id: card_id.to_owned(),
                at: Instant::now(),
            },
        );
    }

    /// Asks for the lookups of `identities` (those without a recent successful check), to run
    /// alongside the card search; answers and errors are kept for [`Transparency::check_cards`].
    /// Nothing for an unchecked server; a failure to find out is left for `check_cards`.
    pub(crate) async fn prefetch(
        &self,
        api: &ApiClient,
        local: &LocalStore,
        identities: &[String],
    ) -> Prefetched {
        // Only on a fresh token: finding out the directory (`GET /kt/v1/key`) must not ask the
        // token provider on behalf of a search that may fail anyway.
        if !api.has_fresh_token().await {
            return Prefetched::new();
        }
        let Ok(Directory::Checked { .. }) = self.directory(api, local).await else {
            return Prefetched::new();
        };
        let wanted: Vec<&String> = identities
            .iter()
            .filter(|identity| !self.recently_checked(identity))
            .collect();
        let answers = futures_util::future::join_all(
            wanted.iter().map(|identity| api.kt_lookup_ahead(identity)),
        )
        .await;
        wanted
            .into_iter()
            .cloned()
            .zip(answers)
            .filter_map(|(identity, answer)| answer.map(|a| (identity, a)))
            .collect()
    }

    /// The head to gossip in a chat post: the newest one this storage directory accepted
    /// (none with [`KtMode::Off`], before the first lookup, or when the store cannot be read:
    /// gossip is best effort).
    pub(crate) async fn gossip_head(&self, local: &LocalStore) -> Option<wire::SignedHead> {
        if self.mode == KtMode::Off {
            return None;
        }
        if let Some((read_at, head)) = lock_std(&self.gossip_head).as_ref() {
            if read_at.elapsed() < GOSSIP_HEAD_REREAD {
                return head.clone();
            }
        }
        let head = local
            .kt_head(&self.server, &self.app_id)
            .await
            .ok()
            .flatten();
        *lock_std(&self.gossip_head) = Some((Instant::now(), head.clone()));
        head
    }

    /// Compares a head gossiped by `peer` (in a chat message) with this client's view: the
    /// same epoch must have the same root; a newer one must extend the stored head (it is then
    /// accepted); an older one must be extended by the stored head. A head that is not in one
    /// history with this client's is a [`KtFailure::SplitView`]. A head that does not verify
    /// under the pinned key (not the deployment's, or altered on the way) proves nothing and
    /// is ignored, as is everything on a server without key transparency.
    pub(crate) async fn check_gossip(
        &self,
        api: &ApiClient,
        local: &LocalStore,
        peer: &str,
        gossiped: &wire::SignedHead,
    ) -> Result<()> {
        if lock_std(&self.gossip_passed).contains(gossiped) {
            return Ok(());
        }
        self.compare_gossip(api, local, peer, gossiped).await?;
        let mut passed = lock_std(&self.gossip_passed);
        if passed.len() >= GOSSIP_REMEMBERED {
            passed.clear();
        }
        passed.insert(gossiped.clone());
        Ok(())
    }

    /// [`Transparency::check_gossip`] without its memory of heads that passed.
    async fn compare_gossip(
        &self,
        api: &ApiClient,
        local: &LocalStore,
        peer: &str,
        gossiped: &wire::SignedHead,
    ) -> Result<()> {
        let Directory::Checked { key, .. } = self.directory(api, local).await? else {
            return Ok(());
        };
        let Ok(head) = SignedHead::verified_from_wire(gossiped, &key, &self.app_id) else {
            return Ok(());
        };
        let seen = (head.epoch, head.root_hash);
        if self.seen_gossip().contains(&seen) {
            return Ok(());
        }
        let split = |reason: String| -> Error {
            KtFailure::SplitView {
                peer: peer.to_owned(),
                epoch: head.epoch,
                reason,
            }
            .into()
        };
        let as_split = |e: Error| match e {
            Error::KeyTransparency(KtFailure::Fork { reason, .. }) => split(reason),
            // The server denies having published an epoch the peer holds a signed head of.
            Error::Api {
                status: 404,
                code,
                message,
            } if code == wire::codes::NO_SUCH_EPOCH => split(message),
            other => other,
        };
        let stored = match local.kt_head(&self.server, &self.app_id).await? {
            Some(stored) => {
                SignedHead::verified_from_wire(&stored, &key, &self.app_id).map_err(|e| {
                    Error::Storage(format!(
                        "the stored key-directory head does not verify: {e}"
                    ))
                })?
            }
            None => {
                self.accept_head(api, local, &key, &head).await?;
                self.seen_gossip().insert(seen);
                return Ok(());
            }
        };
        if head.epoch > stored.epoch {
            match self.accept_head(api, local, &key, &head).await {
                Ok(()) => {}
                // The stored head moved past the gossiped one meanwhile: compare backwards.
                Err(Error::KeyTransparency(KtFailure::Rollback { .. })) => {
                    return Box::pin(self.compare_gossip(api, local, peer, gossiped)).await;
                }
                Err(e) => return Err(as_split(e)),
            }
        } else {
            extend(&key, &head, &stored, |start, end| {
                api.kt_audit(&self.app_id, start, end)
            })
            .await
            .map_err(as_split)?;
        }
        self.seen_gossip().insert(seen);
        Ok(())
    }

    fn seen_gossip(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<(u64, [u8; 32])>> {
        let mut seen = lock_std(&self.gossip_seen);
        if seen.len() >= GOSSIP_REMEMBERED {
            seen.clear();
        }
        seen
    }

    pub(crate) fn app_id(&self) -> &str {
        &self.app_id
    }

    pub(crate) fn mode(&self) -> KtMode {
        self.mode
    }

    /// Finds out (once per instance) whether and how the server's directory is checked:
    /// `GET /kt/v1/key`, compared with the pinned or configured key. Network errors are not
    /// remembered, so the next call asks again.
    pub(crate) async fn directory(&self, api: &ApiClient, local: &LocalStore) -> Result<Directory> {
        let mut known = self.directory.lock().await;
        if let Some(directory) = *known {
            return Ok(directory);
        }
        if self.mode == KtMode::Off {
            *known = Some(Directory::Unchecked);
            return Ok(Directory::Unchecked);
        }
        let pinned = local.kt_signing_key(&self.server).await?;
        let directory = match api.kt_key().await? {
            KeyAnswer::NotServed(reason) => {
                if pinned.is_some()
                    || self.mode == KtMode::Required
                    || self.configured_key.is_some()
                {
                    return Err(KtFailure::NotServed { reason }.into());
                }
                Directory::Unchecked
            }
            KeyAnswer::Served(response) => {
                let served = parse_signing_public_key(&response.signing_public_key)
                    .map_err(|e| bad_proof("the KT signing key", e))?;
                let expected = match (self.configured_key, &pinned) {
                    (Some(key), _) => Some(key),
                    (None, Some(text)) => Some(parse_signing_public_key(text).map_err(|e| {
                        Error::Storage(format!("the pinned KT signing key is damaged: {e}"))
                    })?),
                    (None, None) => None,
                };
                if let Some(expected) = expected {
                    if expected != served {
                        return Err(KtFailure::SigningKeyChanged {
                            pinned: STANDARD.encode(expected),
                            served: STANDARD.encode(served),
                        }
                        .into());
                    }
                }
                if pinned.is_none() {
                    local
                        .pin_kt_signing_key(&self.server, &STANDARD.encode(served), now_secs())
                        .await?;
                }
                let epoch = response
                    .epoch_millis
                    .map_or(DEFAULT_EPOCH, Duration::from_millis)
                    .clamp(MIN_EPOCH, MAX_EPOCH);
                Directory::Checked { key: served, epoch }
            }
        };
        *known = Some(directory);
        Ok(directory)
    }

    /// Checks every card against the directory (see the module documentation); the first
    /// failure is the error. Does nothing for an unchecked server.
    /// `prefetched` holds lookups already asked for ([`Transparency::prefetch`]): each is used
    /// once, in place of the first request for its identity.
    pub(crate) async fn check_cards(
        &self,
        api: &ApiClient,
        local: &LocalStore,
        cards: &[&Card],
        mut prefetched: Prefetched,
    ) -> Result<()> {
        if cards.is_empty() {
            return Ok(());
        }
        let Directory::Checked { key, epoch } = self.directory(api, local).await? else {
            return Ok(());
        };
        let checks = cards.iter().map(|card| {
            let first = prefetched.remove(card.identity());
            self.check_card(api, local, &key, epoch, card, first)
        });
        for outcome in futures_util::future::join_all(checks).await {
            outcome?;
        }
        Ok(())
    }

    async fn check_card(
        &self,
        api: &ApiClient,
        local: &LocalStore,
        key: &[u8; 32],
        epoch: Duration,
        card: &Card,
        mut prefetched: Option<Result<wire::LookupResponse>>,
    ) -> Result<()> {
        let identity = card.identity();
        let card_id = card.id().to_string();
        if self.checked_card(identity, &card_id) {
            return Ok(());
        }
        let started = Instant::now();
        let deadline = started + epoch * 2 + EPOCH_SLACK;
        let queued_deadline = started + (epoch * QUEUED_WAIT_EPOCHS).max(MIN_QUEUED_WAIT);
        let mut rollback_retried = false;
        // The first lookup is the plain one (the common case: the card is in the directory);
        // the ones after it also ask whether a change is queued.
        let mut ask_queued = false;
        loop {
            let answer = match prefetched.take() {
                Some(answer) => answer,
                None if ask_queued => api.kt_lookup_pending(identity).await,
                None => api.kt_lookup(identity).await,
            };
            let queued;
            let pending = match answer {
                Ok(response) => {
                    queued = response.pending == Some(true);
                    let (head, entry) = verify_lookup(key, &self.app_id, identity, &response)
                        .map_err(|e| bad_proof(identity, e))?;
                    match self.accept_head(api, local, key, &head).await {
                        // Concurrent lookups may see consecutive epochs; a head older than the
                        // stored one is asked for once more before it counts as a rollback.
                        Err(Error::KeyTransparency(KtFailure::Rollback { .. }))
                            if !rollback_retried =>
                        {
                            rollback_retried = true;
                            continue;
                        }
                        other => other?,
                    }
                    match entry.check_cards([card_id.as_str()]) {
                        Ok(()) => {
                            self.remember_checked(identity, &card_id);
                            return Ok(());
                        }
                        Err(KtError::CardsNotInDirectory) => KtFailure::CardNotInDirectory {
                            identity: identity.to_owned(),
                            epoch: head.epoch,
                        },
                        Err(e) => return Err(bad_proof(identity, e)),
                    }
                }
                Err(e) if is_not_in_directory(&e) || is_entry_pending(&e) => {
                    queued = is_entry_pending(&e);
                    KtFailure::IdentityNotInDirectory {
                        identity: identity.to_owned(),
                    }
                }
                Err(e) => return Err(e),
            };
            // Possibly a card newer than the latest epoch: wait for the next ones, longer while
            // the server says the change is queued (a slow or failed-over publisher). The card
            // is used only once a proof shows it.
            let now = Instant::now();
            let until = if queued { queued_deadline } else { deadline };
            if now >= until {
                return Err(pending.into());
            }
            ask_queued = true;
            let pause = (epoch / 2).max(Duration::from_millis(100));
            tokio::time::sleep(pause.min(until - now)).await;
        }
    }

    /// Accepts `head` (already signature-checked) as the server's current directory: the
    /// first head is trusted and stored; a newer one must be proved an append-only extension of
    /// the stored one; the same epoch must be the same head; an older one is a rollback.
    pub(crate) async fn accept_head(
        &self,
        api: &ApiClient,
        local: &LocalStore,
        key: &[u8; 32],
        head: &SignedHead,
    ) -> Result<()> {
        let _serial = self.heads.lock().await;
        let Some(stored) = local.kt_head(&self.server, &self.app_id).await? else {
            return self.store_head(local, head).await;
        };
        let trusted = SignedHead::verified_from_wire(&stored, key, &self.app_id).map_err(|e| {
            Error::Storage(format!(
                "the stored key-directory head does not verify under the pinned key: {e}"
            ))
        })?;
        let newest = extend(key, &trusted, head, |start, end| {
            api.kt_audit(&self.app_id, start, end)
        })
        .await?;
        if newest.epoch > trusted.epoch {
            self.store_head(local, &newest).await?;
        }
        Ok(())
    }

    /// Stores `head` as the newest accepted one, and gossips it from now on.
    async fn store_head(&self, local: &LocalStore, head: &SignedHead) -> Result<()> {
        let wire = head.to_wire();
        local.put_kt_head(&self.server, &wire).await?;
        *lock_std(&self.gossip_head) = Some((Instant::now(), Some(wire)));
        Ok(())
    }
}

/// Checks that `head` is `trusted` or an append-only extension of it, fetching audit proofs
/// with `audit(start, end)` in steps of at most [`wire::MAX_AUDIT_EPOCHS`]. Returns the newer
/// of the two.
pub(crate) async fn extend<F, Fut>(
    key: &[u8; 32],
    trusted: &SignedHead,
    head: &SignedHead,
    audit: F,
) -> Result<SignedHead>
where
    F: Fn(u64, u64) -> Fut,
    Fut: std::future::Future<Output = Result<wire::AuditResponse>>,
{
    let fork = |reason: String| KtFailure::Fork {
        trusted_epoch: trusted.epoch,
        served_epoch: head.epoch,
        reason,
    };
    if head.epoch < trusted.epoch {
        return Err(KtFailure::Rollback {
            trusted_epoch: trusted.epoch,
            served_epoch: head.epoch,
        }
        .into());
    }
    if head.epoch == trusted.epoch {
        check_same_view(trusted, head).map_err(|e| fork(e.to_string()))?;
        if head.vrf_public_key != trusted.vrf_public_key {
            return Err(fork("the VRF key changed".to_owned()).into());
        }
        return Ok(trusted.clone());
    }
    let mut current = trusted.clone();
    while current.epoch < head.epoch {
        let end = head
            .epoch
            .min(current.epoch.saturating_add(wire::MAX_AUDIT_EPOCHS));
        let response = audit(current.epoch, end).await?;
        current = verify_append_only(key, &current, &response)
            .await
            .map_err(|e| fork(e.to_string()))?;
        if current.epoch != end {
            return Err(fork(format!(
                "the audit proof ends at epoch {}, not {end}",
                current.epoch
            ))
            .into());
        }
    }
    check_same_view(&current, head).map_err(|e| fork(e.to_string()))?;
    Ok(current)
}

// ------------------------------------------------------------------------------ monitoring

/// The user's own key history in the directory ([`crate::EThree::monitor_key_history`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHistory {
    /// The identity.
    pub identity: String,
    /// The epoch of the head the history was proved against (`None` when the identity has no
    /// entry yet).
    pub epoch: Option<u64>,
    /// Every version of the entry, newest first.
    pub versions: Vec<KeyVersion>,
}

impl KeyHistory {
    /// The versions this device did not make: cards published for the identity with a key
    /// this device never held.
    ///
    /// ```
    /// use sealkit::{KeyHistory, KeyVersion, KeyVersionOrigin};
    ///
    /// let history = KeyHistory {
    ///     identity: "alice".into(),
    ///     epoch: Some(9),
    ///     versions: vec![
    ///         KeyVersion { version: 2, epoch: 9, origin: KeyVersionOrigin::Foreign, cards: vec![] },
    ///         KeyVersion { version: 1, epoch: 3, origin: KeyVersionOrigin::ThisDevice, cards: vec![] },
    ///     ],
    /// };
    /// assert!(!history.is_clean());
    /// assert_eq!(history.foreign().map(|v| v.version).collect::<Vec<_>>(), [2]);
    /// ```
    pub fn foreign(&self) -> impl Iterator<Item = &KeyVersion> {
        self.versions
            .iter()
            .filter(|v| v.origin == KeyVersionOrigin::Foreign)
    }

    /// `true` when no version is [`KeyVersionOrigin::Foreign`].
    pub fn is_clean(&self) -> bool {
        self.foreign().next().is_none()
    }
}

/// One version of the user's directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyVersion {
    /// The version (1 for the first card, +1 per publish, rotation or revocation).
    pub version: u64,
    /// The epoch in which it was published.
    pub epoch: u64,
    /// Who made it.
    pub origin: KeyVersionOrigin,
    /// The cards of this version, when the SDK knows them (its own, or the ones the server
    /// shows now); empty otherwise.
    pub cards: Vec<VersionCard>,
}

/// Who made a [`KeyVersion`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyVersionOrigin {
    /// Every card of the version was made by a key this device holds or held.
    ThisDevice,
    /// The version commits to no card: every card was revoked (`unregister`). It brings in no
    /// key, so it is not counted as foreign.
    NoCards,
    /// Not made by this device: a card published with a key this device never held (from
    /// another device, or by someone else holding a token for the identity).
    Foreign,
}

/// A card of a [`KeyVersion`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionCard {
    /// The card id (64 hex characters).
    pub card_id: String,
    /// The card's public key.
    pub public_key: PublicKey,
    /// When the card says it was created (Unix seconds), when the SDK has the card.
    pub created_at: Option<i64>,
    /// Whether its key is one this device holds or held.
    pub own: bool,
}

/// Marks each verified version of the own entry. `own_cards` are the cards made by keys of
/// this device; `visible` the cards the server shows now (with their predecessors), to name
/// foreign cards.
pub(crate) fn classify(
    entries: &[sealkit_kt::VerifiedEntry],
    own_cards: &[(String, PublicKey)],
    visible: &[&Card],
) -> Vec<KeyVersion> {
    // Each value the device itself could have produced: one of its cards alone.
    let mut known: BTreeMap<[u8; 32], Vec<VersionCard>> = BTreeMap::new();
    let own_ids: Vec<&str> = own_cards.iter().map(|(id, _)| id.as_str()).collect();
    for card in visible {
        if let Ok(raw) = parse_card_id(&card.id().to_string()) {
            known.insert(
                card_set_commitment([raw]),
                vec![VersionCard {
                    card_id: card.id().to_string(),
                    public_key: card.public_key().clone(),
                    created_at: Some(card.created_at_secs()),
                    own: own_ids.contains(&card.id().to_string().as_str()),
                }],
            );
        }
    }
    // The current set as the server shows it (several cards at once).
    let current: Vec<&&Card> = visible.iter().filter(|c| !c.is_outdated()).collect();
    if current.len() > 1 {
        let ids: Vec<[u8; 32]> = current
            .iter()
            .filter_map(|c| parse_card_id(&c.id().to_string()).ok())
            .collect();
        known.insert(
            card_set_commitment(ids),
            current
                .iter()
                .map(|c| VersionCard {
                    card_id: c.id().to_string(),
                    public_key: c.public_key().clone(),
                    created_at: Some(c.created_at_secs()),
                    own: own_ids.contains(&c.id().to_string().as_str()),
                })
                .collect(),
        );
    }
    for (id, key) in own_cards {
        if let Ok(raw) = parse_card_id(id) {
            known.entry(card_set_commitment([raw])).or_insert_with(|| {
                vec![VersionCard {
                    card_id: id.clone(),
                    public_key: key.clone(),
                    created_at: None,
                    own: true,
                }]
            });
        }
    }
    let empty = card_set_commitment([]);
    entries
        .iter()
        .map(|entry| {
            let value: Option<[u8; 32]> = entry.value.as_slice().try_into().ok();
            let cards = value
                .and_then(|v| known.get(&v).cloned())
                .unwrap_or_default();
            let origin = if value == Some(empty) {
                KeyVersionOrigin::NoCards
            } else if !cards.is_empty() && cards.iter().all(|c| c.own) {
                KeyVersionOrigin::ThisDevice
            } else {
                KeyVersionOrigin::Foreign
            };
            KeyVersion {
                version: entry.version,
                epoch: entry.epoch,
                origin,
                cards,
            }
        })
        .collect()
}

/// Verifies a history answer and returns the head and the entries.
pub(crate) fn verified_history(
    key: &[u8; 32],
    app_id: &str,
    identity: &str,
    response: &wire::HistoryResponse,
) -> Result<(SignedHead, Vec<sealkit_kt::VerifiedEntry>)> {
    verify_history(key, app_id, identity, response).map_err(|e| bad_proof(identity, e))
}

// ------------------------------------------------------------------------------ auditing

/// The state an auditor keeps between runs ([`audit_directory`]): the deployment key and the
/// newest head it accepted. Its JSON form is what `sealkit kt audit --state FILE` stores.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AuditState {
    /// The deployment's KT signing key (base64), pinned on the first run.
    pub signing_public_key: String,
    /// The newest head accepted.
    pub head: wire::SignedHead,
}

/// The outcome of one [`audit_directory`] run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditReport {
    /// The epoch accepted before this run (`None` on the first run).
    pub previous_epoch: Option<u64>,
    /// The state to store: the newest head, now accepted.
    pub state: AuditState,
}

/// Audits an application's directory without a user token: fetches the server's KT key and
/// newest head, checks the head's signature, and (when `state` holds a previous run) that the
/// new head is an append-only extension of the stored one. Returns the new state to store.
///
/// The first run (no `state`) trusts the key and the head it is shown. Failures are
/// [`Error::KeyTransparency`]: [`KtFailure::SigningKeyChanged`], [`KtFailure::BadProof`] (a bad
/// signature), [`KtFailure::Fork`], [`KtFailure::Rollback`].
///
/// ```no_run
/// # async fn run() -> sealkit::Result<()> {
/// use std::time::Duration;
///
/// let first = sealkit::audit_directory("https://sealkit.example.com", "my-app-id", None,
///     Duration::from_secs(30)).await?;
/// // ... later, with the state stored in between:
/// let next = sealkit::audit_directory("https://sealkit.example.com", "my-app-id",
///     Some(&first.state), Duration::from_secs(30)).await?;
/// println!("epoch {:?} -> {}", next.previous_epoch, next.state.head.epoch);
/// # Ok(()) }
/// ```
pub async fn audit_directory(
    server_url: &str,
    app_id: &str,
    state: Option<&AuditState>,
    timeout: Duration,
) -> Result<AuditReport> {
    let auditor = crate::api::PublicClient::new(server_url, timeout)?;
    let served_key: wire::KeyResponse = auditor.get(wire::paths::KEY, "KT key").await?;
    let key = parse_signing_public_key(&served_key.signing_public_key)
        .map_err(|e| bad_proof("the KT signing key", e))?;
    if let Some(state) = state {
        if state.signing_public_key != served_key.signing_public_key {
            return Err(KtFailure::SigningKeyChanged {
                pinned: state.signing_public_key.clone(),
                served: served_key.signing_public_key,
            }
            .into());
        }
    }
    let app_segment = crate::api::kt::path_segment(app_id);
    let served: wire::SignedHead = auditor
        .get(&wire::paths::head(&app_segment), "signed head")
        .await?;
    let head = SignedHead::verified_from_wire(&served, &key, app_id)
        .map_err(|e| bad_proof("the signed head", e))?;
    let Some(state) = state else {
        return Ok(AuditReport {
            previous_epoch: None,
            state: AuditState {
                signing_public_key: served_key.signing_public_key,
                head: head.to_wire(),
            },
        });
    };
    let trusted = SignedHead::verified_from_wire(&state.head, &key, app_id)
        .map_err(|e| bad_proof("the stored head", e))?;
    let newest = extend(&key, &trusted, &head, |start, end| {
        let path = wire::paths::audit(&app_segment, start, end);
        let auditor = &auditor;
        async move { auditor.get(&path, "audit proof").await }
    })
    .await?;
    Ok(AuditReport {
        previous_epoch: Some(trusted.epoch),
        state: AuditState {
            signing_public_key: served_key.signing_public_key,
            head: newest.to_wire(),
        },
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use sealkit_kt::VerifiedEntry;

    fn entry(version: u64, ids: &[[u8; 32]]) -> VerifiedEntry {
        VerifiedEntry {
            version,
            epoch: version * 10,
            value: card_set_commitment(ids.iter().copied()).to_vec(),
        }
    }

    #[test]
    fn versions_are_classified_by_who_holds_the_key() {
        let own_key = sealkit_crypto::PrivateKey::ed25519_from_seed(&[1; 32])
            .public_key()
            .clone();
        let own_id = [0x11; 32];
        let foreign_id = [0x22; 32];
        let own_cards = vec![(hex::encode(own_id), own_key)];
        let entries = [
            entry(3, &[own_id, foreign_id]),
            entry(2, &[]),
            entry(1, &[own_id]),
            entry(4, &[foreign_id]),
        ];
        let versions = classify(&entries, &own_cards, &[]);
        let origins: Vec<_> = versions.iter().map(|v| v.origin).collect();
        assert_eq!(
            origins,
            [
                KeyVersionOrigin::Foreign,
                KeyVersionOrigin::NoCards,
                KeyVersionOrigin::ThisDevice,
                KeyVersionOrigin::Foreign
            ]
        );
        assert_eq!(versions[2].cards[0].card_id, hex::encode(own_id));
        assert!(versions[3].cards.is_empty());
        assert_eq!(versions[0].epoch, 30);
    }

    #[tokio::test]
    async fn extend_refuses_rollbacks_and_forks_without_asking() {
        let key = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
        let pinned = key.verifying_key().to_bytes();
        let trusted = SignedHead::sign(&key, "app", 5, [1; 32], [9; 32]);
        let never = |_: u64, _: u64| async {
            Err::<wire::AuditResponse, _>(Error::InvalidInput("no audit needed".into()))
        };
        let same = extend(&pinned, &trusted, &trusted, never).await.unwrap();
        assert_eq!(same, trusted);
        let older = SignedHead::sign(&key, "app", 4, [1; 32], [9; 32]);
        assert!(matches!(
            extend(&pinned, &trusted, &older, never).await,
            Err(Error::KeyTransparency(KtFailure::Rollback {
                trusted_epoch: 5,
                served_epoch: 4
            }))
        ));
        let forked = SignedHead::sign(&key, "app", 5, [2; 32], [9; 32]);
        assert!(matches!(
            extend(&pinned, &trusted, &forked, never).await,
            Err(Error::KeyTransparency(KtFailure::Fork { .. }))
        ));
        // A newer head with an audit whose first head is not the trusted one: a fork.
        let newer = SignedHead::sign(&key, "app", 6, [3; 32], [9; 32]);
        let other_start = SignedHead::sign(&key, "app", 5, [7; 32], [9; 32]);
        let audit = |_, _| {
            let heads = vec![other_start.to_wire(), newer.to_wire()];
            async move {
                Ok(wire::AuditResponse {
                    heads,
                    proof: String::new(),
                })
            }
        };
        assert!(matches!(
            extend(&pinned, &trusted, &newer, audit).await,
            Err(Error::KeyTransparency(KtFailure::Fork { .. }))
        ));
    }
}
