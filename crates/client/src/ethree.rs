//! [`EThree`]: e3kit's API. Each method is glue: look up keys and cards, call the crypto core or
//! one service endpoint, map the error.

use crate::api::{now_secs, ApiClient};
use crate::card::{self, Card};
use crate::error::{Error, Result};
use crate::keystore::{create_private_dir, KeyStore};
use crate::local::{self, LocalStore};
use crate::options::{EThreeOptions, ForeignKeyCallback, KeyChangedCallback};
use crate::token::{TokenCache, TokenProvider};
use crate::transparency::{self, Directory, KeyHistory, KtFailure, KtMode, Transparency};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::OsRng;
use sealkit_crypto::{Crypto, KeyIdScheme, KeyType, PrivateKey, PublicKey};
use sealkit_proto::{CardContent, RawSignedModel};
use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

/// e3kit searches at most this many identities per request (`MAX_IDENTITIES_TO_SEARCH`).
///
/// ```
/// use sealkit::MAX_IDENTITIES_PER_SEARCH;
///
/// // find_users splits long lists itself; splitting by hand allows progress reports in between
/// // (`for batch in &batches { ethree.find_users(batch).await?; ... }`):
/// let contacts: Vec<String> = (0..120).map(|i| format!("user{i}")).collect();
/// let batches: Vec<Vec<&str>> = contacts
///     .chunks(MAX_IDENTITIES_PER_SEARCH)
///     .map(|batch| batch.iter().map(String::as_str).collect())
///     .collect();
/// assert_eq!(batches.iter().map(Vec::len).collect::<Vec<_>>(), [50, 50, 20]);
/// ```
pub const MAX_IDENTITIES_PER_SEARCH: usize = 50;

/// One-shot inputs larger than this are encrypted and decrypted on the blocking thread pool
/// rather than on the async worker.
const INLINE_LIMIT: usize = 64 << 10;

/// An end-to-end encryption client for one identity: e3kit's `EThree`.
///
/// Cheap to clone (all clones share one token cache, key and card cache), `Send` and `Sync`.
/// See the [crate documentation](crate) for a walkthrough.
///
/// ```no_run
/// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
/// // Clones share the key, the tokens and the cache: give one to each task.
/// let background = ethree.clone();
/// let refresh = tokio::spawn(async move { background.update_cached_users().await });
/// let bob = ethree.find_user("bob").await?;
/// if let Ok(Ok(changed)) = refresh.await {
///     println!("keys changed: {changed:?}");
/// }
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct EThree {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) identity: String,
    pub(crate) api: ApiClient,
    pub(crate) crypto: Crypto,
    pub(crate) keys: KeyStore,
    /// Cards, groups and tickets on this device.
    pub(crate) local: LocalStore,
    key_type: KeyType,
    key_changed: Option<KeyChangedCallback>,
    /// Key transparency: the server's directory, the pinned key and the accepted head.
    pub(crate) kt: Transparency,
    foreign_key: Option<ForeignKeyCallback>,
    /// The brainkey protocol of key backups.
    pub(crate) brainkey_version: crate::BrainkeyVersion,
    /// The private key once loaded (e3kit's `cachedPrivateKey`).
    private_key: Mutex<Option<Arc<PrivateKey>>>,
    /// Counts the cache clearings of key deletions, so that a load that read the key file before
    /// a deletion removed it does not put the deleted key back into the cache.
    key_deletions: AtomicU64,
    /// Serializes register / rotate / unregister / cleanup (e3kit refuses overlapping calls;
    /// here they wait for each other).
    pub(crate) ops: tokio::sync::Mutex<()>,
    /// The ratchet key rotation interval; `None` when ratchet channels are disabled.
    pub(crate) ratchet_interval: Option<std::time::Duration>,
    /// Serializes the ratchet key rotations and every load-advance-store of a ratchet session.
    pub(crate) ratchet_lock: tokio::sync::Mutex<()>,
    /// The chat search index (opened at its first use).
    pub(crate) search: crate::chat::search::SearchSlot,
}

impl std::fmt::Debug for EThree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EThree")
            .field("identity", &self.inner.identity)
            .field("api", &self.inner.api)
            .finish_non_exhaustive()
    }
}

/// Runs blocking work (file I/O, bulk crypto) on tokio's blocking pool.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Task(e.to_string()))?
}

/// Runs `f` inline for small inputs, on the blocking pool for large ones.
pub(crate) async fn cpu<T: Send + 'static>(
    len: usize,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    if len <= INLINE_LIMIT {
        f()
    } else {
        blocking(f).await
    }
}

impl EThree {
    /// Creates the client for the identity of `token_provider`'s tokens (e3kit
    /// `EThree.initialize`): calls the provider once and takes the identity from the token's
    /// `sub` (spec §2), opens (or creates) the storage directory and the card cache. Makes no
    /// HTTP request, so it works offline when the provider does; only with
    /// [`EThreeOptions::enable_ratchet`], a local key and a ratchet key rotation due, it rotates
    /// the ratchet keys (an unreachable server is not an error then).
    ///
    /// See [`TokenProvider`] for how tokens are cached and refreshed.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # fn now() -> i64 {
    /// #     let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    /// #     since.map_or(0, |d| d.as_secs() as i64)
    /// # }
    /// use sealkit::{EThree, EThreeOptions, PrivateKey};
    /// use sealkit_proto::JwtGenerator;
    ///
    /// // Normally the provider calls your backend; here an in-process "backend" mints the tokens,
    /// // as in tests.
    /// let api_key = PrivateKey::ed25519_from_seed(&[1; 32]);
    /// let backend = JwtGenerator::new("my-app-id", "my-api-key-id", api_key, 3600);
    /// let provider = move || {
    ///     let jwt = backend.generate("alice", now());
    ///     async move { jwt.map(|jwt| jwt.to_string()) }
    /// };
    /// let dir = tempfile::tempdir()?; // the app's data directory in real use
    /// let options = EThreeOptions::new("https://sealkit.example.com", dir.path());
    /// let alice = EThree::initialize(provider, options).await?;
    /// assert_eq!(alice.identity(), "alice");
    /// // No request was made; a new user has no key yet and must register.
    /// assert!(!alice.has_local_private_key().await?);
    /// # Ok(()) }
    /// ```
    ///
    /// When a private key is stored and key transparency is not off, a check of the user's own
    /// key history ([`EThree::monitor_key_history`]) starts in the background; a version this
    /// device did not make is reported to [`EThreeOptions::on_foreign_key`].
    pub async fn initialize(
        token_provider: impl TokenProvider,
        options: EThreeOptions,
    ) -> Result<Self> {
        let tokens = TokenCache::new(Arc::new(token_provider)).await?;
        let identity = tokens.identity().to_owned();
        let api = ApiClient::new(options.api_url(), options.timeout(), tokens)?;
        let dir = options.storage_dir().to_owned();
        {
            let dir = dir.clone();
            blocking(move || create_private_dir(&dir)).await?;
        }
        let local = LocalStore::open(&dir.join(local::FILE_NAME), &identity).await?;
        let crypto = if options.sha256_ids() {
            Crypto::with_key_ids(KeyIdScheme::Sha256)
        } else {
            Crypto::new()
        };
        let kt = Transparency::new(
            options.kt_mode(),
            options.kt_key(),
            options.api_url(),
            api.app_id(),
            options.kt_proof_reuse_window(),
        );
        let search = crate::chat::search::SearchSlot::new(&dir, &identity);
        let ethree = Self {
            inner: Arc::new(Inner {
                search,
                identity,
                kt,
                foreign_key: options.foreign_key().cloned(),
                api,
                crypto,
                keys: KeyStore::for_storage(dir.join("keys"), options.key_storage_kind()),
                local,
                key_type: options.new_key_type(),
                key_changed: options.key_changed().cloned(),
                brainkey_version: options.brainkey(),
                private_key: Mutex::new(None),
                key_deletions: AtomicU64::new(0),
                ops: tokio::sync::Mutex::new(()),
                ratchet_interval: options
                    .ratchet_enabled()
                    .then(|| options.rotation_interval()),
                ratchet_lock: tokio::sync::Mutex::new(()),
            }),
        };
        ethree.rotate_ratchet_keys_at_start().await?;
        ethree.spawn_self_check(false);
        Ok(ethree)
    }

    /// With ratchet channels enabled and a local key: rotates the ratchet keys if a rotation
    /// is due (e3kit rotates when it sets up ratchet at initialization). Not being registered
    /// yet, an unreachable server and a key that cannot sign ratchet keys (not Ed25519) are no
    /// errors here: `register` publishes the keys, and the next ratchet call rotates them (or
    /// reports the key type).
    async fn rotate_ratchet_keys_at_start(&self) -> Result<()> {
        if self.inner.ratchet_interval.is_none() || self.load_private_key().await?.is_none() {
            return Ok(());
        }
        match self.rotate_ratchet_keys_if_due().await {
            // Offline, not registered yet, or a key that is not Ed25519: the ratchet calls
            // report it when they are made; plain e3kit use keeps working.
            Err(Error::Network(_) | Error::RegisterRequired | Error::InvalidInput(_)) => Ok(()),
            other => other,
        }
    }

    /// The identity this client acts for (the tokens' `sub` without `identity-`).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // Taken from the token: use it to label local data, or to find the user's own card.
    /// println!("signed in as {}", ethree.identity());
    /// let own = ethree.find_user(ethree.identity()).await?;
    /// # Ok(()) }
    /// ```
    pub fn identity(&self) -> &str {
        &self.inner.identity
    }

    // ------------------------------------------------------------------------------ own key

    /// Registers the user (e3kit `register`): checks that the identity has no card
    /// ([`Error::IdentityAlreadyExists`], [`Error::MultipleCards`]), publishes a card for `key`
    /// (or a new key of the configured type) and stores the key locally, replacing a local key
    /// left from before. Returns the published card.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// match ethree.register(None).await {
    ///     Ok(card) => println!("registered, card {}", card.id()),
    ///     // Registered from another device: restore the key from a backup, or, if it is lost:
    ///     Err(sealkit::Error::IdentityAlreadyExists) => {
    ///         ethree.rotate_private_key().await?;
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn register(&self, key: Option<PrivateKey>) -> Result<Card> {
        let _op = self.inner.ops.lock().await;
        let cards = self.search_own().await?;
        match cards.len() {
            0 => {}
            1 => return Err(Error::IdentityAlreadyExists),
            _ => {
                return Err(Error::MultipleCards {
                    identity: self.inner.identity.clone(),
                })
            }
        }
        let key = key.unwrap_or_else(|| PrivateKey::generate(self.inner.key_type, &mut OsRng));
        let card = self.publish_then_save(key, None, true).await?;
        self.publish_ratchet_keys().await?;
        Ok(card)
    }

    /// Replaces the user's key (e3kit `rotatePrivateKey`), for when the private key is lost:
    /// requires exactly one card ([`Error::RegisterRequired`], [`Error::MultipleCards`]) and no
    /// local key ([`Error::PrivateKeyAlreadyExists`]; call [`EThree::cleanup`] first), then
    /// publishes a new card that replaces the old one and stores the new key. Returns the new
    /// card, with the old one as its [`Card::previous_card`].
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// ethree.cleanup().await?; // only if a (compromised) key is still stored
    /// let card = ethree.rotate_private_key().await?;
    /// assert!(card.previous_card_id().is_some());
    /// # Ok(()) }
    /// ```
    pub async fn rotate_private_key(&self) -> Result<Card> {
        let _op = self.inner.ops.lock().await;
        let mut cards = self.search_own().await?;
        let previous = match (cards.pop(), cards.is_empty()) {
            (None, _) => return Err(Error::RegisterRequired),
            (Some(card), true) => card,
            (Some(_), false) => {
                return Err(Error::MultipleCards {
                    identity: self.inner.identity.clone(),
                })
            }
        };
        if self.load_private_key().await?.is_some() {
            return Err(Error::PrivateKeyAlreadyExists);
        }
        let key = PrivateKey::generate(self.inner.key_type, &mut OsRng);
        let card = self.publish_then_save(key, Some(previous), false).await?;
        self.publish_ratchet_keys().await?;
        Ok(card)
    }

    /// With ratchet channels enabled: publishes ratchet keys for the new card.
    async fn publish_ratchet_keys(&self) -> Result<()> {
        if self.inner.ratchet_interval.is_some() {
            self.rotate_ratchet_keys().await?;
        }
        Ok(())
    }

    /// Unregisters the user (e3kit `unregister`): revokes every card of the identity
    /// ([`Error::RegisterRequired`] when there is none), deletes the local private key and
    /// empties this identity's card cache.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // Deleting the account: the backup first (needs no card), then the card and the local key.
    /// ethree.reset_private_key_backup().await?;
    /// match ethree.unregister().await {
    ///     Ok(()) => println!("account deleted"),
    ///     // No card (already unregistered): only forget the local key.
    ///     Err(sealkit::Error::RegisterRequired) => ethree.cleanup().await?,
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn unregister(&self) -> Result<()> {
        let _op = self.inner.ops.lock().await;
        let cards = self.search_own().await?;
        if cards.is_empty() {
            return Err(Error::RegisterRequired);
        }
        if self.inner.ratchet_interval.is_some() {
            self.delete_ratchet_keys_remotely().await?;
        }
        for card in &cards {
            self.inner.api.revoke_card(card.id()).await?;
        }
        self.delete_private_key().await
    }

    /// Whether a private key for this identity is stored on this device (e3kit
    /// `hasLocalPrivateKey`). A corrupt or foreign key file is an [`Error::Storage`].
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, password: String) -> sealkit::Result<()> {
    /// // At start-up: register on first use, restore the backup on a new device.
    /// if !ethree.has_local_private_key().await? {
    ///     match ethree.register(None).await {
    ///         Err(sealkit::Error::IdentityAlreadyExists) => {
    ///             ethree.restore_private_key(&password, None).await?
    ///         }
    ///         other => {
    ///             other?;
    ///         }
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn has_local_private_key(&self) -> Result<bool> {
        Ok(self.load_private_key().await?.is_some())
    }

    /// Deletes the local private key (e3kit `cleanup`), and this identity's card cache as e3kit
    /// does when the key is deleted, and its chat search index ([`crate::chat::search`]). Without a backup, messages encrypted for the key can no
    /// longer be decrypted. Succeeds when there is no key.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // Signing out of a shared computer: keep a backup, forget the key here.
    /// match ethree.backup_private_key("a long passphrase", None).await {
    ///     Ok(()) | Err(sealkit::Error::CloudEntryExists { .. }) => {}
    ///     Err(e) => return Err(e),
    /// }
    /// ethree.cleanup().await?;
    /// assert!(!ethree.has_local_private_key().await?);
    /// # Ok(()) }
    /// ```
    pub async fn cleanup(&self) -> Result<()> {
        let _op = self.inner.ops.lock().await;
        self.delete_private_key().await
    }

    /// The local private key; [`Error::MissingPrivateKey`] when there is none.
    pub(crate) async fn private_key(&self) -> Result<Arc<PrivateKey>> {
        self.load_private_key()
            .await?
            .ok_or(Error::MissingPrivateKey)
    }

    pub(crate) async fn load_private_key(&self) -> Result<Option<Arc<PrivateKey>>> {
        let deletions = {
            let cached = self.cached_key();
            if let Some(key) = cached.as_ref() {
                return Ok(Some(key.clone()));
            }
            self.inner.key_deletions.load(Ordering::SeqCst)
        };
        let keys = self.inner.keys.clone();
        let identity = self.inner.identity.clone();
        let loaded = blocking(move || keys.load(&identity)).await?.map(Arc::new);
        if let Some(key) = &loaded {
            let mut cached = self.cached_key();
            // Cached only if no deletion ran meanwhile (the caller still gets what it read).
            if self.inner.key_deletions.load(Ordering::SeqCst) == deletions {
                *cached = Some(key.clone());
            }
        }
        Ok(loaded)
    }

    /// Stores `key` as this identity's local key ([`Error::PrivateKeyAlreadyExists`] if there is
    /// one) and caches it.
    pub(crate) async fn save_private_key(&self, key: PrivateKey) -> Result<()> {
        let key = Arc::new(key);
        {
            let keys = self.inner.keys.clone();
            let identity = self.inner.identity.clone();
            let key = key.clone();
            blocking(move || keys.store(&identity, &key, now_secs())).await?;
        }
        self.inner
            .local
            .add_own_key(key.public_key(), now_secs())
            .await?;
        *self.cached_key() = Some(key);
        Ok(())
    }

    fn cached_key(&self) -> std::sync::MutexGuard<'_, Option<Arc<PrivateKey>>> {
        self.inner
            .private_key
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Empties the key cache and makes loads that started before ignore what they read.
    fn forget_cached_key(&self) {
        let mut cached = self.cached_key();
        *cached = None;
        self.inner.key_deletions.fetch_add(1, Ordering::SeqCst);
    }

    async fn delete_private_key(&self) -> Result<()> {
        self.forget_cached_key();
        let keys = self.inner.keys.clone();
        let identity = self.inner.identity.clone();
        let deleted = blocking(move || keys.delete(&identity)).await;
        // Again once the file is gone: a load that read it in between may have cached it.
        self.forget_cached_key();
        deleted?;
        // The search index is sealed under the deleted key: nobody could open it any more.
        self.inner.search.wipe().await?;
        self.inner.local.clear().await
    }

    /// The identity's actual cards.
    pub(crate) async fn search_own(&self) -> Result<Vec<Card>> {
        let identity = self.inner.identity.clone();
        let raw = self
            .inner
            .api
            .search_cards(std::slice::from_ref(&identity))
            .await?;
        card::from_search(raw, &[identity.as_str()].into_iter().collect())
    }

    /// Publishes a card for `key` (replacing `previous`), then stores the key locally
    /// (e3kit `publishCardThenSavePrivateKeyLocal`).
    async fn publish_then_save(
        &self,
        key: PrivateKey,
        previous: Option<Card>,
        replace_local: bool,
    ) -> Result<Card> {
        if !matches!(key.key_type(), KeyType::Ed25519 | KeyType::Secp256r1) {
            return Err(Error::InvalidInput(format!(
                "a {} key cannot sign its card: use Ed25519 (the default) or P-256",
                key.key_type()
            )));
        }
        if self.inner.ratchet_interval.is_some() && key.key_type() != KeyType::Ed25519 {
            return Err(Error::InvalidInput(format!(
                "ratchet channels are enabled and need an Ed25519 key (as e3kit's), not {}",
                key.key_type()
            )));
        }
        let now = now_secs();
        let content = CardContent {
            identity: self.inner.identity.clone(),
            previous_card_id: previous.as_ref().map(|c| c.id().to_string()),
            created_at: now,
            version: sealkit_proto::cards::CARD_VERSION.to_owned(),
            public_key: key.public_key().to_base64(),
        };
        let invalid = |source| Error::InvalidCard {
            identity: self.inner.identity.clone(),
            source,
        };
        let raw = RawSignedModel::from_content(&content, &key).map_err(invalid)?;
        let stored = self.inner.api.publish_card(&raw).await?;
        let published = Card::from_raw(stored).map_err(invalid)?;
        let mut linked = card::link(previous.into_iter().chain([published]).collect());
        let Some(own) = linked.pop() else {
            return Err(Error::InvalidResponse(
                "the published card does not replace the previous one".to_owned(),
            ));
        };
        let key = Arc::new(key);
        {
            let keys = self.inner.keys.clone();
            let identity = self.inner.identity.clone();
            let key = key.clone();
            blocking(move || {
                if replace_local {
                    keys.delete(&identity)?;
                }
                keys.store(&identity, &key, now)
            })
            .await?;
        }
        let local = &self.inner.local;
        local.add_own_key(key.public_key(), now).await?;
        local
            .add_own_card(&own.id().to_string(), key.public_key())
            .await?;
        *self.cached_key() = Some(key);
        local.put_card(&own, now).await?;
        self.spawn_self_check(true);
        Ok(own)
    }

    // ------------------------------------------------------------------ key transparency

    /// The user's own key history in the server's verifiable key directory: every version of
    /// the identity's entry (each publish, rotation or revocation), newest first, each marked
    /// with whether it was made by a key this device holds or held
    /// ([`KeyVersionOrigin`](crate::KeyVersionOrigin)). A [`KeyVersionOrigin::Foreign`](crate::KeyVersionOrigin::Foreign)
    /// version is a card published for the user with a key this device never had: from another
    /// device of the user, or from someone holding a token for the user (a compromised
    /// backend, or the server itself).
    ///
    /// The device remembers the public key of every key it stores (register, rotation, backup
    /// restore) in the local store; a key from before this SDK version counts once it is seen
    /// here. The proof is checked like every lookup, and the head must extend the stored one.
    ///
    /// Errors: [`Error::KeyTransparency`] ([`KtFailure::NotServed`] when the server has no
    /// directory or KT is off, [`KtFailure::BadProof`], [`KtFailure::Fork`], ...), network
    /// errors.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let history = ethree.monitor_key_history().await?;
    /// for version in history.foreign() {
    ///     eprintln!("a key you do not hold was published for you in epoch {}", version.epoch);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn monitor_key_history(&self) -> Result<KeyHistory> {
        let inner = &self.inner;
        let Directory::Checked { key, .. } = inner.kt.directory(&inner.api, &inner.local).await?
        else {
            return Err(KtFailure::NotServed {
                reason: "key transparency is off for this client, or the server does not serve it"
                    .to_owned(),
            }
            .into());
        };
        let now = now_secs();
        if let Some(own) = self.load_private_key().await? {
            inner.local.add_own_key(own.public_key(), now).await?;
        }
        let own_keys = inner.local.own_keys().await?;
        let visible = self.search_own().await?;
        for card in visible.iter().flat_map(Card::chain) {
            if own_keys.contains(card.public_key()) {
                inner
                    .local
                    .add_own_card(&card.id().to_string(), card.public_key())
                    .await?;
            }
        }
        let own_cards = inner.local.own_cards().await?;
        let identity = inner.identity.as_str();
        let app_id = inner.kt.app_id();
        let mut retried = false;
        let (head, entries) = loop {
            let response = match inner.api.kt_history(identity).await {
                Ok(response) => response,
                Err(e) if crate::api::kt::is_not_in_directory(&e) => {
                    return Ok(KeyHistory {
                        identity: identity.to_owned(),
                        epoch: None,
                        versions: Vec::new(),
                    })
                }
                Err(e) => return Err(e),
            };
            let (head, entries) =
                transparency::verified_history(&key, app_id, identity, &response)?;
            match inner
                .kt
                .accept_head(&inner.api, &inner.local, &key, &head)
                .await
            {
                Err(Error::KeyTransparency(KtFailure::Rollback { .. })) if !retried => {
                    retried = true;
                }
                other => {
                    other?;
                    break (head, entries);
                }
            }
        };
        let visible: Vec<&Card> = visible.iter().flat_map(Card::chain).collect();
        Ok(KeyHistory {
            identity: identity.to_owned(),
            epoch: Some(head.epoch),
            versions: transparency::classify(&entries, &own_cards, &visible),
        })
    }

    /// Starts a background check of the own key history (see [`EThree::initialize`]): only
    /// with a stored key, never failing anything, reporting foreign versions to the callback.
    /// After an own publish it first waits two epochs, for the new card to be in the directory.
    fn spawn_self_check(&self, after_publish: bool) {
        if self.inner.kt.mode() == KtMode::Off {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = self.clone();
        runtime.spawn(async move {
            if after_publish {
                let Ok(Directory::Checked { epoch, .. }) = this
                    .inner
                    .kt
                    .directory(&this.inner.api, &this.inner.local)
                    .await
                else {
                    return;
                };
                tokio::time::sleep(epoch * 2 + std::time::Duration::from_millis(500)).await;
            }
            if !matches!(this.load_private_key().await, Ok(Some(_))) {
                return;
            }
            if let Ok(history) = this.monitor_key_history().await {
                if let (false, Some(callback)) = (history.is_clean(), &this.inner.foreign_key) {
                    callback(&history);
                }
            }
        });
    }

    // ------------------------------------------------------------------------------ users

    /// Finds the cards of `identities` on the server (e3kit `findUsers`), in searches of at most
    /// [`MAX_IDENTITIES_PER_SEARCH`] identities. Duplicates are looked up once.
    ///
    /// Every card is verified (self signature, identity) and comes with its predecessor chain.
    /// The cards found are stored in the local card cache; when a cached card is replaced by a
    /// different one, the [`EThreeOptions::on_key_changed`] callback is called.
    ///
    /// A contact whose safety number the user verified ([`EThree::verify_safety_number`]) must
    /// still have the pinned key: otherwise the call fails with [`Error::ContactKeyChanged`]
    /// (the new card is cached all the same, and the callback called).
    ///
    /// When the server serves key transparency (see [`crate::transparency`]), every card must be
    /// the one the server's verifiable key directory holds, proved against a signed head that
    /// extends the last one this storage directory accepted; otherwise the call fails with
    /// [`Error::KeyTransparency`] and nothing is cached. A card newer than the directory's
    /// latest epoch is waited for, up to two epochs.
    ///
    /// Errors: [`Error::UsersNotFound`] listing every identity without a card,
    /// [`Error::UsersFoundWithMultipleCards`], [`Error::ContactKeyChanged`],
    /// [`Error::KeyTransparency`], and network or server errors.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// match ethree.find_users(&["bob", "carol"]).await {
    ///     Ok(cards) => println!("bob's card: {}", cards["bob"].id()),
    ///     Err(sealkit::Error::UsersNotFound { identities }) => println!("not registered: {identities:?}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn find_users(&self, identities: &[&str]) -> Result<BTreeMap<String, Card>> {
        let found = self.fetch_users(identities).await?;
        self.check_pins(found.values()).await?;
        Ok(found)
    }

    /// [`EThree::find_users`] without the check of the pinned keys: what the server says now.
    pub(crate) async fn fetch_users(&self, identities: &[&str]) -> Result<BTreeMap<String, Card>> {
        let unique = dedup(identities)?;
        let mut found: BTreeMap<String, Card> = BTreeMap::new();
        let mut multiple = Vec::new();
        let search = async {
            let mut raws = Vec::new();
            for chunk in unique.chunks(MAX_IDENTITIES_PER_SEARCH) {
                raws.push((chunk, self.inner.api.search_cards(chunk).await?));
            }
            Ok::<_, Error>(raws)
        };
        // The lookups do not depend on the search's answer: one search's worth of them is
        // asked for alongside it (more would be too many requests at once).
        let (raws, prefetched) = if unique.len() <= MAX_IDENTITIES_PER_SEARCH {
            let prefetch = self
                .inner
                .kt
                .prefetch(&self.inner.api, &self.inner.local, &unique);
            let (raws, prefetched) = tokio::join!(search, prefetch);
            (raws?, prefetched)
        } else {
            (search.await?, Default::default())
        };
        for (chunk, raw) in raws {
            let requested: HashSet<&str> = chunk.iter().map(String::as_str).collect();
            for card in card::from_search(raw, &requested)? {
                let identity = card.identity().to_owned();
                if found.insert(identity.clone(), card).is_some() && !multiple.contains(&identity) {
                    multiple.push(identity);
                }
            }
        }
        let missing: Vec<String> = unique
            .iter()
            .filter(|i| !found.contains_key(i.as_str()))
            .cloned()
            .collect();
        if !missing.is_empty() {
            return Err(Error::UsersNotFound {
                identities: missing,
            });
        }
        if !multiple.is_empty() {
            return Err(Error::UsersFoundWithMultipleCards {
                identities: multiple,
            });
        }
        let cards: Vec<&Card> = found.values().collect();
        self.inner
            .kt
            .check_cards(&self.inner.api, &self.inner.local, &cards, prefetched)
            .await?;
        let before_ids = self.inner.local.put_cards(&cards, now_secs()).await?;
        for (card, before) in cards.iter().zip(before_ids) {
            if before.is_some_and(|id| id != card.id().to_string()) {
                self.notify(card.identity());
            }
        }
        Ok(found)
    }

    /// The card of one user, see [`EThree::find_users`].
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// match ethree.find_user("bob").await {
    ///     Ok(bob) => {
    ///         let message = ethree.auth_encrypt_text("hi Bob", &[&bob]).await?;
    ///     }
    ///     Err(sealkit::Error::UsersNotFound { .. }) => println!("bob has not registered yet"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn find_user(&self, identity: &str) -> Result<Card> {
        let mut found = self.find_users(&[identity]).await?;
        found.remove(identity).ok_or_else(|| Error::UsersNotFound {
            identities: vec![identity.to_owned()],
        })
    }

    /// The cards of `identities` from the local cache only (e3kit Swift/Kotlin
    /// `findCachedUsers`), without the server: what [`EThree::find_users`] found last.
    /// [`Error::UsersNotFound`] lists the identities that are not cached; a verified contact
    /// whose cached key is not the pinned one is an [`Error::ContactKeyChanged`].
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // Online first, offline later:
    /// let cards = match ethree.find_users(&["bob"]).await {
    ///     Err(sealkit::Error::Network(_)) => ethree.find_cached_users(&["bob"]).await?,
    ///     other => other?,
    /// };
    /// let message = ethree.auth_encrypt(b"works offline", &[&cards["bob"]]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn find_cached_users(&self, identities: &[&str]) -> Result<BTreeMap<String, Card>> {
        let unique = dedup(identities)?;
        let refs: Vec<&str> = unique.iter().map(String::as_str).collect();
        let found = self.inner.local.cards(&refs).await?;
        let missing: Vec<String> = unique
            .into_iter()
            .filter(|i| !found.contains_key(i))
            .collect();
        if missing.is_empty() {
            self.check_pins(found.values()).await?;
            Ok(found)
        } else {
            Err(Error::UsersNotFound {
                identities: missing,
            })
        }
    }

    /// The cached card of one user, see [`EThree::find_cached_users`].
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, message: String) -> sealkit::Result<()> {
    /// // No round trip when Alice's card is already cached:
    /// let alice = match ethree.find_cached_user("alice").await {
    ///     Ok(card) => card,
    ///     Err(sealkit::Error::UsersNotFound { .. }) => ethree.find_user("alice").await?,
    ///     Err(e) => return Err(e),
    /// };
    /// let text = ethree.auth_decrypt_text(&message, &alice, None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn find_cached_user(&self, identity: &str) -> Result<Card> {
        let mut found = self.find_cached_users(&[identity]).await?;
        found.remove(identity).ok_or_else(|| Error::UsersNotFound {
            identities: vec![identity.to_owned()],
        })
    }

    /// Fetches the current card of every cached user (e3kit Swift/Kotlin `updateCachedUsers`).
    /// A user whose card changed gets the new card in the cache; a user who unregistered is
    /// removed from it. For each of them the [`EThreeOptions::on_key_changed`] callback is
    /// called, and their identities are returned. Users that now have several cards are left
    /// as cached.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // E.g. at start-up, or once a day:
    /// for identity in ethree.update_cached_users().await? {
    ///     println!("{identity} has a new key (or left): ask the user to verify them again");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn update_cached_users(&self) -> Result<Vec<String>> {
        let cached = self.inner.local.cached_identities().await?;
        let mut changed = Vec::new();
        let now = now_secs();
        for chunk in cached.chunks(MAX_IDENTITIES_PER_SEARCH) {
            let requested: HashSet<&str> = chunk.iter().map(String::as_str).collect();
            let raw = self.inner.api.search_cards(chunk).await?;
            let mut by_identity: BTreeMap<String, Vec<Card>> = BTreeMap::new();
            let mut current = Vec::new();
            for card in card::from_search(raw, &requested)? {
                by_identity
                    .entry(card.identity().to_owned())
                    .or_default()
                    .push(card);
            }
            for identity in chunk {
                match by_identity.remove(identity) {
                    None => {
                        if self.inner.local.remove_card(identity).await? {
                            changed.push(identity.clone());
                        }
                    }
                    Some(mut cards) if cards.len() == 1 => {
                        if let Some(card) = cards.pop() {
                            current.push(card);
                        }
                    }
                    Some(_) => {}
                }
            }
            let refs: Vec<&Card> = current.iter().collect();
            self.inner
                .kt
                .check_cards(
                    &self.inner.api,
                    &self.inner.local,
                    &refs,
                    Default::default(),
                )
                .await?;
            let before_ids = self.inner.local.put_cards(&refs, now).await?;
            for (card, before) in current.iter().zip(before_ids) {
                if before.is_none_or(|id| id != card.id().to_string()) {
                    changed.push(card.identity().to_owned());
                }
            }
        }
        for identity in &changed {
            self.notify(identity);
        }
        Ok(changed)
    }

    fn notify(&self, identity: &str) {
        if let Some(callback) = &self.inner.key_changed {
            callback(identity);
        }
    }

    // ------------------------------------------------------------------------------ messages

    /// The public keys to encrypt for: the recipients' plus the user's own, added when missing,
    /// as e3kit does (so the sender can read what they sent).
    pub(crate) fn recipient_keys(&self, own: &PrivateKey, recipients: &[&Card]) -> Vec<PublicKey> {
        let mut keys: Vec<PublicKey> = recipients.iter().map(|c| c.public_key().clone()).collect();
        if !keys.contains(own.public_key()) {
            keys.push(own.public_key().clone());
        }
        keys
    }

    /// The key that must have signed a message from `sender`: the card's, or with
    /// `encrypted_at` the key of the card of the chain valid then (e3kit
    /// `getCardActiveAtMoment`).
    pub(crate) fn sender_key(sender: &Card, encrypted_at: Option<SystemTime>) -> Result<PublicKey> {
        Ok(match encrypted_at {
            None => sender.public_key().clone(),
            Some(moment) => sender.active_at(moment)?.public_key().clone(),
        })
    }

    /// Signs and encrypts `data` for `recipients` and the user (e3kit `authEncrypt`):
    /// sign-and-encrypt with the signature in the encrypted footer, padded (spec §6). An empty
    /// `recipients` encrypts for the user only. Works offline with cached cards. A recipient who
    /// is a verified contact whose key is no longer the pinned one is an
    /// [`Error::ContactKeyChanged`] (nothing is encrypted).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let users = ethree.find_users(&["bob", "carol"]).await?;
    /// let recipients: Vec<&sealkit::Card> = users.values().collect();
    /// let message = ethree.auth_encrypt(b"hello", &recipients).await?;
    /// # Ok(()) }
    /// ```
    pub async fn auth_encrypt(&self, data: &[u8], recipients: &[&Card]) -> Result<Vec<u8>> {
        self.seal(MessageFormat::SignAndEncrypt, data, recipients)
            .await
    }

    /// Decrypts `data` and verifies that `sender` signed it (e3kit `authDecrypt`). Without
    /// `encrypted_at` the signature must be by `sender`'s current key; with it, by the key of the
    /// card of `sender`'s chain that was valid at that moment, so a message sent before the
    /// sender rotated their key still verifies (pass the time the message was sent).
    ///
    /// A message that is not sign-and-encrypt, or not signed by that key, is an
    /// [`Error::Crypto`] (`SignerNotFound` / `SignatureInvalid`).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, message: Vec<u8>, sent_at: std::time::SystemTime)
    /// #     -> sealkit::Result<()> {
    /// let alice = ethree.find_user("alice").await?;
    /// // A message sent before Alice rotated her key needs the time it was sent:
    /// let plaintext = ethree.auth_decrypt(&message, &alice, Some(sent_at)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn auth_decrypt(
        &self,
        data: &[u8],
        sender: &Card,
        encrypted_at: Option<SystemTime>,
    ) -> Result<Vec<u8>> {
        self.open(MessageFormat::SignAndEncrypt, data, sender, encrypted_at)
            .await
    }

    /// [`EThree::auth_encrypt`] for text: encrypts the UTF-8 bytes and returns standard base64
    /// (what e3kit returns for a string).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let bob = ethree.find_user("bob").await?;
    /// let base64 = ethree.auth_encrypt_text("see you at 10", &[&bob]).await?;
    /// // Send `base64` to Bob through any text channel (JSON, a chat message, e-mail).
    /// # Ok(()) }
    /// ```
    pub async fn auth_encrypt_text(&self, text: &str, recipients: &[&Card]) -> Result<String> {
        self.seal_text(MessageFormat::SignAndEncrypt, text, recipients)
            .await
    }

    /// [`EThree::auth_decrypt`] for text: decodes base64, decrypts, and requires UTF-8.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, base64: String) -> sealkit::Result<()> {
    /// let alice = ethree.find_user("alice").await?;
    /// match ethree.auth_decrypt_text(&base64, &alice, None).await {
    ///     Ok(text) => println!("alice: {text}"),
    ///     // Not from Alice, or altered on the way:
    ///     Err(sealkit::Error::Crypto(e)) => eprintln!("rejected: {e}"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn auth_decrypt_text(
        &self,
        base64: &str,
        sender: &Card,
        encrypted_at: Option<SystemTime>,
    ) -> Result<String> {
        self.open_text(MessageFormat::SignAndEncrypt, base64, sender, encrypted_at)
            .await
    }

    /// e3kit's legacy `encrypt`: sign-then-encrypt, the signature in the (cleartext) message
    /// info, no padding (spec §5), for `recipients` and the user. Prefer
    /// [`EThree::auth_encrypt`], which hides the signature and the length.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // Only for peers whose app still calls e3kit's legacy `decrypt`:
    /// let bob = ethree.find_user("bob").await?;
    /// let message = ethree.encrypt(b"legacy format", &[&bob]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn encrypt(&self, data: &[u8], recipients: &[&Card]) -> Result<Vec<u8>> {
        self.seal(MessageFormat::SignThenEncrypt, data, recipients)
            .await
    }

    /// e3kit's legacy `decrypt`: decrypts a sign-then-encrypt message and verifies `sender`'s
    /// signature, choosing the key like [`EThree::auth_decrypt`].
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, message: Vec<u8>) -> sealkit::Result<()> {
    /// // A message from an app that still uses e3kit's legacy `encrypt`:
    /// let alice = ethree.find_user("alice").await?;
    /// let plaintext = ethree.decrypt(&message, &alice, None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn decrypt(
        &self,
        data: &[u8],
        sender: &Card,
        encrypted_at: Option<SystemTime>,
    ) -> Result<Vec<u8>> {
        self.open(MessageFormat::SignThenEncrypt, data, sender, encrypted_at)
            .await
    }

    /// [`EThree::encrypt`] for text, returning base64.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let bob = ethree.find_user("bob").await?;
    /// let base64 = ethree.encrypt_text("legacy format", &[&bob]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn encrypt_text(&self, text: &str, recipients: &[&Card]) -> Result<String> {
        self.seal_text(MessageFormat::SignThenEncrypt, text, recipients)
            .await
    }

    /// [`EThree::decrypt`] for base64 text.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, base64: String) -> sealkit::Result<()> {
    /// let alice = ethree.find_user("alice").await?;
    /// let text = ethree.decrypt_text(&base64, &alice, None).await?;
    /// # Ok(()) }
    /// ```
    pub async fn decrypt_text(
        &self,
        base64: &str,
        sender: &Card,
        encrypted_at: Option<SystemTime>,
    ) -> Result<String> {
        self.open_text(MessageFormat::SignThenEncrypt, base64, sender, encrypted_at)
            .await
    }

    // ------------------------------------------------- the one seal/open path behind them all

    /// The user's key and the public keys to encrypt for ([`EThree::recipient_keys`]), once
    /// every recipient that is a verified contact is known to have the pinned key.
    pub(crate) async fn sealing_keys(
        &self,
        recipients: &[&Card],
    ) -> Result<(Arc<PrivateKey>, Vec<PublicKey>)> {
        self.check_pins(recipients.iter().copied()).await?;
        let key = self.private_key().await?;
        let keys = self.recipient_keys(&key, recipients);
        Ok((key, keys))
    }

    /// The user's key and the key that must have signed a message from `sender`
    /// ([`EThree::sender_key`]).
    pub(crate) async fn opening_keys(
        &self,
        sender: &Card,
        encrypted_at: Option<SystemTime>,
    ) -> Result<(Arc<PrivateKey>, PublicKey)> {
        let key = self.private_key().await?;
        let signer = Self::sender_key(sender, encrypted_at)?;
        Ok((key, signer))
    }

    /// Signs and encrypts `data` in `format` for `recipients` and the user.
    async fn seal(
        &self,
        format: MessageFormat,
        data: &[u8],
        recipients: &[&Card],
    ) -> Result<Vec<u8>> {
        let (key, keys) = self.sealing_keys(recipients).await?;
        let crypto = self.inner.crypto;
        let data = data.to_vec();
        cpu(data.len(), move || {
            Ok(match format {
                MessageFormat::SignAndEncrypt => {
                    crypto.sign_and_encrypt(&mut OsRng, &data, &key, &keys, true)?
                }
                MessageFormat::SignThenEncrypt => {
                    crypto.sign_then_encrypt(&mut OsRng, &data, &key, &keys, false)?
                }
            })
        })
        .await
    }

    /// [`EThree::seal`] for text: the UTF-8 bytes in, standard base64 out.
    async fn seal_text(
        &self,
        format: MessageFormat,
        text: &str,
        recipients: &[&Card],
    ) -> Result<String> {
        let sealed = self.seal(format, text.as_bytes(), recipients).await?;
        Ok(STANDARD.encode(sealed))
    }

    /// Decrypts `data` in `format` and verifies `sender`'s signature.
    async fn open(
        &self,
        format: MessageFormat,
        data: &[u8],
        sender: &Card,
        encrypted_at: Option<SystemTime>,
    ) -> Result<Vec<u8>> {
        let (key, signer) = self.opening_keys(sender, encrypted_at).await?;
        self.open_with(format, key, data.to_vec(), vec![signer])
            .await
    }

    /// [`EThree::open`] for text: base64 in, UTF-8 text out.
    async fn open_text(
        &self,
        format: MessageFormat,
        base64: &str,
        sender: &Card,
        encrypted_at: Option<SystemTime>,
    ) -> Result<String> {
        let data = decode_base64(base64)?;
        let opened = self.open(format, &data, sender, encrypted_at).await?;
        utf8(opened, format.byte_decrypt_method())
    }

    /// Decrypts `data` in `format` with `key` and requires a signature by one of `signers`;
    /// every crypto failure is an [`Error::Crypto`] with the core's reason.
    pub(crate) async fn open_with(
        &self,
        format: MessageFormat,
        key: Arc<PrivateKey>,
        data: Vec<u8>,
        signers: Vec<PublicKey>,
    ) -> Result<Vec<u8>> {
        let crypto = self.inner.crypto;
        cpu(data.len(), move || {
            Ok(match format {
                MessageFormat::SignAndEncrypt => {
                    crypto.decrypt_and_verify(&data, &key, &signers)?
                }
                MessageFormat::SignThenEncrypt => {
                    crypto.decrypt_then_verify(&data, &key, &signers)?
                }
            })
        })
        .await
    }
}

/// The two message formats of e3kit's paired methods, which share one implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MessageFormat {
    /// `authEncrypt` / `authDecrypt`: sign-and-encrypt, the signature in the encrypted footer,
    /// padded (spec §6).
    SignAndEncrypt,
    /// The legacy `encrypt` / `decrypt`: sign-then-encrypt, the signature in the cleartext
    /// message info, no padding (spec §5).
    SignThenEncrypt,
}

impl MessageFormat {
    /// The byte method for this format, named when a text method meets binary content.
    fn byte_decrypt_method(self) -> &'static str {
        match self {
            Self::SignAndEncrypt => "EThree::auth_decrypt",
            Self::SignThenEncrypt => "EThree::decrypt",
        }
    }
}

/// The identities without duplicates, in order; an empty list is an error (as in e3kit).
fn dedup(identities: &[&str]) -> Result<Vec<String>> {
    if identities.is_empty() {
        return Err(Error::InvalidInput(
            "the list of identities is empty".to_owned(),
        ));
    }
    let mut seen = HashSet::new();
    Ok(identities
        .iter()
        .filter(|i| seen.insert(**i))
        .map(|i| (*i).to_owned())
        .collect())
}

/// Standard base64, as e3kit's text methods produce it.
pub(crate) fn decode_base64(text: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(text.trim())
        .map_err(|e| Error::InvalidInput(format!("the encrypted text is not base64: {e}")))
}

/// Decrypted bytes as text; `byte_api` names the method to use for binary content.
pub(crate) fn utf8(bytes: Vec<u8>, byte_api: &str) -> Result<String> {
    String::from_utf8(bytes).map_err(|_| {
        Error::InvalidInput(format!(
            "the decrypted message is not UTF-8 text: use the byte API ({byte_api})"
        ))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    /// `cleanup` while other calls load the key (e.g. a chat stream decrypting): the deleted key
    /// must not come back into the in-memory cache (it did, found by `examples/soak.rs`: the
    /// next `rotate_private_key` then failed with `PrivateKeyAlreadyExists`).
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn cleanup_is_not_undone_by_a_concurrent_load() {
        let dir = tempfile::tempdir().unwrap();
        let generator = sealkit_proto::JwtGenerator::new(
            "app",
            "kid",
            PrivateKey::ed25519_from_seed(&[7; 32]),
            3600,
        );
        let provider =
            move || std::future::ready(generator.generate("alice", 1000).map(|j| j.to_string()));
        // Nothing is sent: initialize, saving and loading keys make no request.
        let options = EThreeOptions::new("http://127.0.0.1:9", dir.path());
        let ethree = EThree::initialize(provider, options).await.unwrap();
        for round in 0..200 {
            ethree
                .save_private_key(PrivateKey::generate(KeyType::Ed25519, &mut OsRng))
                .await
                .unwrap();
            let loaders: Vec<_> = (0..3)
                .map(|_| {
                    let ethree = ethree.clone();
                    tokio::spawn(async move {
                        for _ in 0..20 {
                            ethree.load_private_key().await.unwrap();
                            tokio::task::yield_now().await;
                        }
                    })
                })
                .collect();
            ethree.cleanup().await.unwrap();
            for loader in loaders {
                loader.await.unwrap();
            }
            assert!(
                !ethree.has_local_private_key().await.unwrap(),
                "round {round}: the key came back after cleanup"
            );
        }
    }

    #[test]
    fn dedup_keeps_order_and_rejects_empty() {
        assert_eq!(dedup(&["b", "a", "b", "c", "a"]).unwrap(), ["b", "a", "c"]);
        assert!(matches!(dedup(&[]), Err(Error::InvalidInput(_))));
    }
}
