//! The card directory's rules (spec §3), callable without HTTP.

use super::auth::Caller;
use super::error::ServiceError;
use crate::store::{CardChange, CardChangeStream, NewCard, Store, StoreResult};
use futures_util::future::BoxFuture;
use futures_util::StreamExt as _;
use sealkit_crypto::PrivateKey;
use sealkit_proto::cards::{CardId, RawSignedModel};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

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
/// Identities the [`SearchCache`] may answer come from memory; the others from the store in one
/// query.
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
    let answer_from_cache = cache.may_answer(app_id, &unique).await;
    let now = Instant::now();
    let missing: Vec<String> = unique
        .into_iter()
        .filter(|identity| {
            !answer_from_cache
                || match cache.get(app_id, identity, now) {
                    Some(cards) => {
                        found.extend(cards.iter().cloned());
                        false
                    }
                    None => true,
                }
        })
        .collect();
    if !missing.is_empty() {
        // Taken before the read: an answer older than a change this process made or heard of
        // is not kept.
        let generation = cache.generation();
        let read_at = Instant::now();
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
        cache.put_all(generation, read_at, app_id, by_identity);
    }
    Ok(json_array(&found))
}

/// One identity's answer: its cards' JSON, shared by every search that uses it.
type CachedCards = Arc<[Arc<[u8]>]>;

/// Where a [`SearchCache`] learns of card changes, which decides how long it may trust an
/// answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChangeSource {
    /// Every change goes through this process (SQLite: one process owns the database), which
    /// forgets the identity before acknowledging it. An answer is good until then.
    ThisProcess,
    /// Other processes change cards too (PostgreSQL replicas). Their changes reach the cache
    /// through [`SearchCache::forget`] from an announcement stream
    /// ([`CardStore::card_changes`](crate::store::CardStore::card_changes)), which also says how
    /// far it is caught up ([`SearchCache::caught_up`]). An answer is served only while no
    /// change committed more than the cache's period ago can be missing from it: either it was
    /// read within the period, or the stream confirmed it was caught up within the period.
    /// Without a stream, that makes each answer last the period after it was read.
    ///
    /// With a stream that numbers the changes, a search also passes a read barrier before the
    /// cache may answer it: it reads the number of the last change committed
    /// ([`CardStore::last_card_change`](crate::store::CardStore::last_card_change)), and the
    /// cache answers only once the stream has applied that number, within [`BARRIER_WAIT`];
    /// otherwise the store answers. So a change acknowledged by any replica before a search
    /// began is never missing from its answer. Searches that arrive while a read of the number
    /// is under way share the next one, so under load one read serves many searches.
    Announced,
}

/// Most identities a [`SearchCache`] holds unless configured (`card_cache_entries`); it is
/// emptied when full.
pub const DEFAULT_CACHE_ENTRIES: usize = 100_000;

/// The longest a search waits at the read barrier (see [`ChangeSource::Announced`]) before it
/// asks the store instead: announcements normally arrive within milliseconds, and a replica
/// whose announcements are late must not stall its searches.
pub const BARRIER_WAIT: Duration = Duration::from_millis(100);

/// Reads the number of the last card change committed
/// ([`CardStore::last_card_change`](crate::store::CardStore::last_card_change)).
pub type ReadLastChange = Arc<dyn Fn() -> BoxFuture<'static, StoreResult<u64>> + Send + Sync>;

/// The read barrier of a cache that follows numbered changes.
#[derive(Debug)]
struct Barrier {
    /// The highest change number applied: every change up to it has been forgotten.
    applied: watch::Sender<u64>,
    /// Tickets handed out to searches waiting for a read of the committed number.
    asked: AtomicU64,
    /// Wakes the reading task (one pending wake is enough: it reads `asked` when it wakes).
    wake: mpsc::Sender<()>,
    /// The last read: the highest ticket taken before it started, and the number it read
    /// (`None` if it failed).
    reads: watch::Sender<(u64, Option<u64>)>,
}

impl Barrier {
    /// Whether every change committed before this call has been applied: waits for a read of
    /// the committed number that starts after this call, then for the stream to apply it.
    async fn pass(&self) -> bool {
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        // Full means a wake is pending, and the read it starts covers this ticket too.
        let _ = self.wake.try_send(());
        let mut reads = self.reads.subscribe();
        let committed = match reads.wait_for(|(covers, _)| *covers >= ticket).await {
            Ok(read) => read.1,
            Err(_) => None,
        };
        let Some(committed) = committed else {
            return false;
        };
        let mut applied = self.applied.subscribe();
        let passed = applied
            .wait_for(|applied| *applied >= committed)
            .await
            .is_ok();
        passed
    }

    /// Notes that every change up to `seq` has been applied.
    fn applied(&self, seq: u64) {
        self.applied.send_if_modified(|applied| {
            let later = seq > *applied;
            *applied = (*applied).max(seq);
            later
        });
    }
}

/// The search answers of identities asked before (their cards' JSON, or "no cards"), in this
/// process's memory. Correctness rests on three rules:
/// * a publish or revoke through this process forgets its identity once the store has it and
///   before it is acknowledged, and an answer read while any change was being forgotten is
///   never stored (the generation), so this process never serves cards older than a change
///   it acknowledged;
/// * with [`ChangeSource::ThisProcess`], nothing else changes cards, so an answer stays good
///   until forgotten;
/// * with [`ChangeSource::Announced`], other processes' changes are forgotten as they are
///   announced, and an answer is served only while every change committed more than the
///   period ago is known to be either in it or forgotten: so every replica shows a change
///   within the period (at most a second, see `Config::card_cache_ms`), even when
///   announcements stall or are lost. After a loss the announcing stream says so and
///   everything is forgotten ([`SearchCache::forget_all`]).
///
/// Unknown identities are cached too (as no cards), so probing for absent users is as cheap as
/// finding present ones.
#[derive(Debug)]
pub struct SearchCache {
    period: Duration,
    source: ChangeSource,
    max_entries: usize,
    /// The origin of `caught_up`.
    created: Instant,
    /// Nanoseconds after `created` before which every announced change has been forgotten; 0
    /// until the first confirmation.
    caught_up: AtomicU64,
    generation: AtomicU64,
    entries: Mutex<Entries>,
    /// Set by [`Self::follow`] when the changes are numbered.
    barrier: OnceLock<Barrier>,
}

/// The answers, per application and identity (two levels, so a lookup borrows its keys).
#[derive(Debug, Default)]
struct Entries {
    by_app: HashMap<String, HashMap<String, Entry>>,
    len: usize,
}

#[derive(Debug)]
struct Entry {
    read_at: Instant,
    cards: CachedCards,
}

impl SearchCache {
    /// A cache serving answers as `source` allows, for at most `period` beyond what it can
    /// vouch for (see [`ChangeSource`]); a zero `period` keeps nothing. Holds at most
    /// `max_entries` identities, and is emptied when full.
    pub fn new(period: Duration, source: ChangeSource, max_entries: usize) -> Self {
        Self {
            period,
            source,
            max_entries: max_entries.max(1),
            created: Instant::now(),
            caught_up: AtomicU64::new(0),
            generation: AtomicU64::new(0),
            entries: Mutex::new(Entries::default()),
            barrier: OnceLock::new(),
        }
    }

    /// Whether a search of `identities` may take answers from this cache (the read barrier of
    /// [`ChangeSource::Announced`]). A search holding none of them skips the barrier: the
    /// store answers it anyway.
    async fn may_answer(&self, app_id: &str, identities: &[String]) -> bool {
        if !self.enabled() {
            return false;
        }
        let Some(barrier) = self.barrier.get() else {
            return true;
        };
        if !self.holds_any(app_id, identities) {
            return false;
        }
        tokio::time::timeout(BARRIER_WAIT, barrier.pass())
            .await
            .unwrap_or(false)
    }

    fn holds_any(&self, app_id: &str, identities: &[String]) -> bool {
        let Ok(entries) = self.entries.lock() else {
            return false;
        };
        entries
            .by_app
            .get(app_id)
            .is_some_and(|app| identities.iter().any(|i| app.contains_key(i)))
    }

    /// Whether this cache keeps anything.
    pub fn enabled(&self) -> bool {
        !self.period.is_zero()
    }

    /// The number of identities held.
    pub fn len(&self) -> usize {
        self.entries.lock().map_or(0, |e| e.len)
    }

    /// Whether no identity is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn get(&self, app_id: &str, identity: &str, now: Instant) -> Option<CachedCards> {
        if !self.enabled() {
            return None;
        }
        let entries = self.entries.lock().ok()?;
        let entry = entries.by_app.get(app_id)?.get(identity)?;
        let good = match self.source {
            ChangeSource::ThisProcess => true,
            ChangeSource::Announced => {
                let vouched_from = entry.read_at.max(self.caught_up_at());
                now.saturating_duration_since(vouched_from) < self.period
            }
        };
        good.then(|| entry.cards.clone())
    }

    fn caught_up_at(&self) -> Instant {
        self.created + Duration::from_nanos(self.caught_up.load(Ordering::SeqCst))
    }

    /// The number of changes forgotten so far; [`Self::put_all`] keeps answers only when none
    /// happened since this was taken.
    fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// Keeps the answers read from the store at `read_at`, unless a change was forgotten since
    /// `generation` was taken.
    fn put_all<'a>(
        &self,
        generation: u64,
        read_at: Instant,
        app_id: &str,
        answers: impl IntoIterator<Item = (&'a str, Vec<Arc<[u8]>>)>,
    ) {
        if !self.enabled() {
            return;
        }
        let Ok(mut guard) = self.entries.lock() else {
            return;
        };
        // Checked under the lock that `forget` bumps it under, so no change slips in between.
        if self.generation.load(Ordering::SeqCst) != generation {
            return;
        }
        let entries = &mut *guard;
        for (identity, cards) in answers {
            let held = entries
                .by_app
                .get(app_id)
                .is_some_and(|app| app.contains_key(identity));
            if !held && entries.len >= self.max_entries {
                entries.by_app.clear();
                entries.len = 0;
            }
            if !entries.by_app.contains_key(app_id) {
                entries.by_app.insert(app_id.to_owned(), HashMap::new());
            }
            let Some(app) = entries.by_app.get_mut(app_id) else {
                continue;
            };
            let entry = Entry {
                read_at,
                cards: cards.into(),
            };
            if app.insert(identity.to_owned(), entry).is_none() {
                entries.len += 1;
            }
        }
    }

    /// Forgets `identity`'s answer, and every answer being read right now.
    pub fn forget(&self, app_id: &str, identity: &str) {
        if let Ok(mut guard) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            let entries = &mut *guard;
            let removed = entries
                .by_app
                .get_mut(app_id)
                .and_then(|app| app.remove(identity));
            if removed.is_some() {
                entries.len -= 1;
            }
        }
    }

    /// Forgets every answer, and every answer being read right now: changes may have been
    /// missed.
    pub fn forget_all(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            self.generation.fetch_add(1, Ordering::SeqCst);
            entries.by_app.clear();
            entries.len = 0;
        }
    }

    /// Every change committed through another process before `at` has been forgotten (see
    /// [`ChangeSource::Announced`]).
    pub fn caught_up(&self, at: Instant) {
        let nanos = at.saturating_duration_since(self.created).as_nanos();
        let nanos = u64::try_from(nanos).unwrap_or(u64::MAX);
        self.caught_up.fetch_max(nanos, Ordering::SeqCst);
    }

    /// Applies `changes` (from [`CardStore::card_changes`](crate::store::CardStore::card_changes))
    /// to this cache in a task of its own, which ends when the cache is dropped. With
    /// `read_last_change`, the changes are numbered and searches pass the read barrier (see
    /// [`ChangeSource::Announced`]); call this once.
    pub fn follow(
        self: &Arc<Self>,
        mut changes: CardChangeStream,
        read_last_change: Option<ReadLastChange>,
    ) {
        if let Some(read) = read_last_change {
            let (wake, woken) = mpsc::channel(1);
            let barrier = Barrier {
                applied: watch::Sender::new(0),
                asked: AtomicU64::new(0),
                wake,
                reads: watch::Sender::new((0, None)),
            };
            if self.barrier.set(barrier).is_ok() {
                spawn_barrier_reads(Arc::downgrade(self), woken, read);
            }
        }
        let cache = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(change) = changes.next().await {
                let Some(cache) = cache.upgrade() else {
                    return;
                };
                // Forgotten first, then noted as applied: a search that passes the barrier
                // finds the identity gone.
                let applied = match change {
                    CardChange::Changed {
                        app_id,
                        identity,
                        seq,
                    } => {
                        cache.forget(&app_id, &identity);
                        seq
                    }
                    CardChange::Resync { seq } => {
                        cache.forget_all();
                        Some(seq)
                    }
                    CardChange::CaughtUp(at) => {
                        cache.caught_up(at);
                        None
                    }
                };
                if let (Some(seq), Some(barrier)) = (applied, cache.barrier.get()) {
                    barrier.applied(seq);
                }
            }
        });
    }
}

/// Reads the committed change number for the searches waiting at `cache`'s barrier, one read at
/// a time, each covering every search that asked before it started; ends with the cache.
fn spawn_barrier_reads(
    cache: Weak<SearchCache>,
    mut woken: mpsc::Receiver<()>,
    read: ReadLastChange,
) {
    tokio::spawn(async move {
        let mut covered = 0;
        while woken.recv().await.is_some() {
            let Some(cache) = cache.upgrade() else {
                return;
            };
            let Some(barrier) = cache.barrier.get() else {
                return;
            };
            // Every ticket up to this one was taken before the read starts.
            let asked = barrier.asked.load(Ordering::SeqCst);
            if asked <= covered {
                continue;
            }
            let committed = match read().await {
                Ok(seq) => Some(seq),
                Err(e) => {
                    tracing::warn!(error = %e, "card search: reading the change number failed");
                    None
                }
            };
            covered = asked;
            barrier.reads.send_replace((asked, committed));
        }
    });
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
    #![allow(clippy::unwrap_used)]
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

    fn put(cache: &SearchCache, generation: u64, read_at: Instant, identity: &str, c: &[&str]) {
        cache.put_all(generation, read_at, "app", [(identity, cards(c))]);
    }

    fn get(cache: &SearchCache, identity: &str, now: Instant) -> Option<Vec<String>> {
        texts(cache.get("app", identity, now))
    }

    #[test]
    fn answers_are_kept_per_app_and_identity_until_forgotten() {
        let cache = SearchCache::new(Duration::from_millis(1), ChangeSource::ThisProcess, 10);
        let t0 = Instant::now();
        let generation = cache.generation();
        put(&cache, generation, t0, "alice", &["a1", "a0"]);
        put(&cache, generation, t0, "nobody", &[]);
        // Owned by this process: good however old.
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(
            get(&cache, "alice", later),
            Some(vec!["a1".into(), "a0".into()])
        );
        assert_eq!(get(&cache, "nobody", later), Some(Vec::new()));
        assert_eq!(texts(cache.get("other", "alice", later)), None);
        cache.forget("app", "alice");
        assert_eq!(get(&cache, "alice", later), None);
        assert_eq!(get(&cache, "nobody", later), Some(Vec::new()));
        assert_eq!(cache.len(), 1);
        cache.forget_all();
        assert!(cache.is_empty());
    }

    #[test]
    fn an_answer_read_before_a_change_is_not_kept() {
        let cache = SearchCache::new(Duration::from_secs(1), ChangeSource::ThisProcess, 10);
        let before = cache.generation();
        // A publish of someone else completes while this search reads the store.
        cache.forget("app", "bob");
        put(&cache, before, Instant::now(), "alice", &["stale"]);
        assert_eq!(get(&cache, "alice", Instant::now()), None);
        let after = cache.generation();
        put(&cache, after, Instant::now(), "alice", &["fresh"]);
        assert_eq!(
            get(&cache, "alice", Instant::now()),
            Some(vec!["fresh".into()])
        );
        // A lost announcement stream forgets everything, including answers being read.
        let reading = cache.generation();
        cache.forget_all();
        put(&cache, reading, Instant::now(), "carol", &["c"]);
        assert_eq!(get(&cache, "alice", Instant::now()), None);
        assert_eq!(get(&cache, "carol", Instant::now()), None);
    }

    #[test]
    fn announced_answers_last_the_period_beyond_the_last_confirmation() {
        let period = Duration::from_millis(500);
        let cache = SearchCache::new(period, ChangeSource::Announced, 10);
        let t0 = Instant::now();
        put(&cache, cache.generation(), t0, "alice", &["a"]);
        let just_before = t0 + period - Duration::from_millis(1);
        assert!(get(&cache, "alice", just_before).is_some());
        // Never confirmed: the answer lasts the period after it was read.
        assert!(get(&cache, "alice", t0 + period).is_none());
        // Confirmed caught up at t0 + 2 s: good until t0 + 2.5 s.
        cache.caught_up(t0 + Duration::from_secs(2));
        assert!(get(&cache, "alice", t0 + Duration::from_millis(2499)).is_some());
        assert!(get(&cache, "alice", t0 + Duration::from_millis(2500)).is_none());
        // A confirmation never moves back.
        cache.caught_up(t0 + Duration::from_secs(1));
        assert!(get(&cache, "alice", t0 + Duration::from_millis(2499)).is_some());
    }

    #[test]
    fn a_zero_period_keeps_nothing_and_a_full_cache_starts_over() {
        let off = SearchCache::new(Duration::ZERO, ChangeSource::ThisProcess, 10);
        put(&off, off.generation(), Instant::now(), "alice", &["a"]);
        assert!(get(&off, "alice", Instant::now()).is_none());
        let small = SearchCache::new(Duration::from_secs(1), ChangeSource::ThisProcess, 2);
        let g = small.generation();
        put(&small, g, Instant::now(), "a", &["a"]);
        put(&small, g, Instant::now(), "b", &["b"]);
        put(&small, g, Instant::now(), "a", &["a2"]);
        assert_eq!(small.len(), 2);
        put(&small, g, Instant::now(), "c", &["c"]);
        assert_eq!(small.len(), 1);
        assert!(get(&small, "a", Instant::now()).is_none());
        assert!(get(&small, "c", Instant::now()).is_some());
    }

    /// A stand-in for the database's change counter: its reads wait for a permit each.
    struct Counter {
        committed: AtomicU64,
        reads: AtomicU64,
        permits: tokio::sync::Semaphore,
    }

    impl Default for Counter {
        fn default() -> Self {
            Self {
                committed: AtomicU64::new(0),
                reads: AtomicU64::new(0),
                permits: tokio::sync::Semaphore::new(0),
            }
        }
    }

    /// A cache following numbered changes sent through the returned channel.
    fn following(counter: &Arc<Counter>) -> (Arc<SearchCache>, mpsc::UnboundedSender<CardChange>) {
        let cache = Arc::new(SearchCache::new(
            Duration::from_secs(1),
            ChangeSource::Announced,
            10,
        ));
        let (send, receive) = mpsc::unbounded_channel();
        let changes = futures_util::stream::unfold(receive, |mut receive| async move {
            receive.recv().await.map(|change| (change, receive))
        })
        .boxed();
        let counter = counter.clone();
        let read: ReadLastChange = Arc::new(move || {
            let counter = counter.clone();
            Box::pin(async move {
                counter.reads.fetch_add(1, Ordering::SeqCst);
                counter.permits.acquire().await.unwrap().forget();
                Ok(counter.committed.load(Ordering::SeqCst))
            })
        });
        cache.follow(changes, Some(read));
        (cache, send)
    }

    async fn applied(cache: &SearchCache, seq: u64) {
        let barrier = cache.barrier.get().unwrap();
        barrier
            .applied
            .subscribe()
            .wait_for(|a| *a >= seq)
            .await
            .unwrap();
    }

    fn alice() -> Vec<String> {
        vec!["alice".to_owned()]
    }

    #[tokio::test]
    async fn the_cache_answers_only_once_every_committed_change_was_applied() {
        let counter = Arc::new(Counter::default());
        counter.permits.add_permits(1000);
        let (cache, changes) = following(&counter);
        counter.committed.store(5, Ordering::SeqCst);
        changes.send(CardChange::Resync { seq: 5 }).unwrap();
        applied(&cache, 5).await;
        put(&cache, cache.generation(), Instant::now(), "alice", &["a1"]);
        assert!(cache.may_answer("app", &alice()).await);
        // Another replica committed change 6, not heard yet: the store must answer.
        counter.committed.store(6, Ordering::SeqCst);
        let started = Instant::now();
        assert!(!cache.may_answer("app", &alice()).await);
        assert!(started.elapsed() >= BARRIER_WAIT, "{:?}", started.elapsed());
        // Heard: alice is forgotten, and the next answer read is served again.
        changes
            .send(CardChange::Changed {
                app_id: "app".into(),
                identity: "alice".into(),
                seq: Some(6),
            })
            .unwrap();
        applied(&cache, 6).await;
        assert_eq!(get(&cache, "alice", Instant::now()), None);
        put(&cache, cache.generation(), Instant::now(), "alice", &["a2"]);
        assert!(cache.may_answer("app", &alice()).await);
        // A search holding none of its identities needs no read.
        let reads = counter.reads.load(Ordering::SeqCst);
        assert!(!cache.may_answer("app", &["bob".to_owned()]).await);
        assert!(!cache.may_answer("other", &alice()).await);
        assert_eq!(counter.reads.load(Ordering::SeqCst), reads);
        // Changes 7 and 8 were lost with a connection; the resync forgets everything and
        // vouches for them.
        counter.committed.store(8, Ordering::SeqCst);
        assert!(!cache.may_answer("app", &alice()).await);
        changes.send(CardChange::Resync { seq: 8 }).unwrap();
        applied(&cache, 8).await;
        assert!(cache.is_empty());
        put(&cache, cache.generation(), Instant::now(), "alice", &["a3"]);
        assert!(cache.may_answer("app", &alice()).await);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn searches_arriving_during_a_read_share_the_next_one() {
        let counter = Arc::new(Counter::default());
        let (cache, changes) = following(&counter);
        changes.send(CardChange::Resync { seq: 1 }).unwrap();
        applied(&cache, 1).await;
        put(&cache, cache.generation(), Instant::now(), "alice", &["a1"]);
        let search = |cache: &Arc<SearchCache>| {
            let cache = cache.clone();
            tokio::spawn(async move { cache.may_answer("app", &alice()).await })
        };
        let first = search(&cache);
        while counter.reads.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // The first read has started; these arrive while it is under way.
        let later: Vec<_> = (0..20).map(|_| search(&cache)).collect();
        let barrier = cache.barrier.get().unwrap();
        while barrier.asked.load(Ordering::SeqCst) < 21 {
            tokio::task::yield_now().await;
        }
        counter.permits.add_permits(1);
        assert!(first.await.unwrap());
        // The first read started before they arrived, so it does not let them through.
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(later.iter().all(|search| !search.is_finished()));
        counter.permits.add_permits(1);
        for search in later {
            assert!(search.await.unwrap());
        }
        assert_eq!(counter.reads.load(Ordering::SeqCst), 2);
    }
}
