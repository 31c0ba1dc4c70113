//! Key transparency: one verifiable directory (AKD) per application, fed by the card directory,
//! published in signed epochs (docs/key-transparency.md).
//!
//! * Card changes queue their identity (`kt_pending`, in the card's transaction).
//! * One process (the [`KtStore::kt_try_lead`](crate::store::KtStore::kt_try_lead) winner)
//!   publishes, every `kt_epoch_secs`, all queued changes of an application as one epoch: the
//!   entry's value is `sealkit_kt::card_set_commitment` of the identity's current cards.
//! * Every process answers proofs from the shared store, signing the head of the epoch the proof
//!   was made for with the deployment KT key (Ed25519 signatures are deterministic, so every
//!   replica signs a head the same way).

pub mod storage;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use akd::ecvrf::{
    Proof, VRFExpandedPrivateKey, VRFKeyStorage, VRFPrivateKey, VRFPublicKey, VrfError,
};
use akd::storage::{Storable as _, StorageManager};
use akd::{AzksParallelismConfig, Directory, HistoryParams};
use ed25519_dalek::SigningKey;
use rand_core::RngCore as _;
use sealkit_kt::{card_set_commitment, identity_label, KtConfiguration, SignedHead};
use sealkit_proto::kt as wire;
use sha2::Digest as _;
use zeroize::Zeroizing;

use super::auth::Caller;
use super::error::ServiceError;
use crate::store::{KtPending, Store};
use crate::Config;
use storage::{KtDatabase, NodeCache};

/// The KT signing key file's name in the data directory (when `kt_key_file` is not set).
pub const KEY_FILE: &str = "kt.key";

/// Name of the setting holding the SHA-256 of the KT public key: replicas configured with
/// different key files are refused at start instead of signing conflicting heads.
const KEY_FINGERPRINT_SETTING: &str = "kt.signing_key_fingerprint";

/// Queued identities one epoch takes at most (the rest go into the next epoch).
const MAX_EPOCH_CHANGES: u32 = 10_000;

/// Why the KT key cannot be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KtKeyError {
    /// Reading or creating the file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a 32-byte Ed25519 seed.
    #[error("{0}: a KT key file holds exactly 32 bytes")]
    BadLength(PathBuf),
    /// Another replica of this database signs with another key.
    #[error("{0}: not the KT key this database's other replicas use")]
    Mismatch(PathBuf),
    /// The database failed.
    #[error("storage: {0}")]
    Store(#[from] crate::store::StoreError),
}

/// The deployment's KT keys: the Ed25519 head-signing key, from which each application's VRF
/// key is derived (HKDF-SHA-512, so one file to back up and share between replicas).
pub struct KtKeys {
    signing: SigningKey,
}

impl KtKeys {
    /// Keys from a 32-byte seed.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            signing: SigningKey::from_bytes(seed),
        }
    }

    /// The head-signing public key, 32 raw bytes.
    pub fn public_key(&self) -> [u8; 32] {
        self.signing.verifying_key().to_bytes()
    }

    /// The head-signing public key as served and printed (base64).
    pub fn public_key_base64(&self) -> String {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(self.public_key())
    }

    /// The VRF secret key of `app_id`'s directory.
    fn vrf_secret(&self, app_id: &str) -> Result<Zeroizing<Vec<u8>>, ServiceError> {
        let seed = Zeroizing::new(self.signing.to_bytes());
        let hkdf = hkdf::Hkdf::<sha2::Sha512>::new(Some(b"sealkit-kt/v1 vrf"), &seed[..]);
        let mut out = Zeroizing::new(vec![0u8; 32]);
        hkdf.expand(app_id.as_bytes(), &mut out)
            .map_err(ServiceError::internal)?;
        Ok(out)
    }
}

/// Reads the KT key (`kt_key_file`, default `kt.key` in the data directory), creating it
/// (random, mode 0600) on first start, and checks it against the key other replicas of the
/// database use.
pub async fn load_keys(config: &Config, store: &dyn Store) -> Result<KtKeys, KtKeyError> {
    let path = config
        .kt_key_file
        .clone()
        .unwrap_or_else(|| config.data_dir.join(KEY_FILE));
    let seed = read_or_create_key(&path)?;
    let keys = KtKeys::from_seed(&seed);
    let fingerprint = sha2::Sha256::digest(keys.public_key()).to_vec();
    let stored = store
        .setting_or_insert(KEY_FINGERPRINT_SETTING, &fingerprint)
        .await?;
    if stored != fingerprint {
        return Err(KtKeyError::Mismatch(path));
    }
    Ok(keys)
}

/// Reads the key file, or creates it: written under a temporary name, then hard-linked to
/// `path`, so replicas starting together on one shared file all read the first complete one.
fn read_or_create_key(path: &Path) -> Result<Zeroizing<[u8; 32]>, KtKeyError> {
    let io = |source| KtKeyError::Io {
        path: path.to_owned(),
        source,
    };
    let from_bytes = |bytes: Zeroizing<Vec<u8>>| -> Result<Zeroizing<[u8; 32]>, KtKeyError> {
        let mut seed = Zeroizing::new([0u8; 32]);
        if bytes.len() != 32 {
            return Err(KtKeyError::BadLength(path.to_owned()));
        }
        seed.copy_from_slice(&bytes);
        Ok(seed)
    };
    match std::fs::read(path) {
        Ok(bytes) => return from_bytes(Zeroizing::new(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut seed = Zeroizing::new([0u8; 32]);
    rand_core::OsRng.fill_bytes(&mut seed[..]);
    let temp = dir.join(format!(
        ".kt-key-{}-{:016x}",
        std::process::id(),
        rand_core::OsRng.next_u64()
    ));
    let published = super::pythia::write_new_file(&temp, &seed[..])
        .and_then(|()| std::fs::hard_link(&temp, path));
    let _ = std::fs::remove_file(&temp);
    match published {
        Ok(()) => {
            tracing::warn!(path = %path.display(), "created the key-transparency signing key: back it up and give every replica the same file");
            Ok(seed)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => std::fs::read(path)
            .map(Zeroizing::new)
            .map_err(io)
            .and_then(from_bytes),
        Err(e) => Err(io(e)),
    }
}

/// An application's VRF key, as AKD asks for it, with the expanded secret and the public key
/// computed once: AKD's default methods would derive both again (SHA-512 and a base-point
/// multiplication) for each of the six VRF evaluations of every lookup.
///
/// It also remembers the VRF proofs it made (`VrfMemo`): a lookup asks for the node label
/// and then the proof of the same three inputs, and a later epoch asks for the same ones again
/// until the identity's entry changes.
#[derive(Clone)]
pub struct AppVrf {
    secret: Arc<Zeroizing<Vec<u8>>>,
    expanded: Arc<VRFExpandedPrivateKey>,
    public: VRFPublicKey,
    memo: Arc<VrfMemo>,
}

impl AppVrf {
    fn new(secret: Zeroizing<Vec<u8>>, memo_capacity: usize) -> Result<Self, ServiceError> {
        let private = VRFPrivateKey::try_from(&secret[..])
            .map_err(|e| ServiceError::internal(e.to_string()))?;
        Ok(Self {
            expanded: Arc::new(VRFExpandedPrivateKey::from(&private)),
            public: VRFPublicKey::from(&private),
            secret: Arc::new(secret),
            memo: Arc::new(VrfMemo::new(memo_capacity)),
        })
    }

    /// The proof and node label of VRF input `alpha`, from the memo or made now (and then
    /// remembered).
    async fn proof_and_label(&self, alpha: &[u8]) -> (Proof, akd::NodeLabel) {
        let key: Option<[u8; 32]> = alpha.try_into().ok();
        if let Some(found) = key.and_then(|key| self.memo.get(&key)) {
            return found;
        }
        let proof = self.expanded.prove(&self.public, alpha);
        self.memo
            .made
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // The label is the VRF output, which the proof carries (its Gamma point): the same
        // bytes an evaluation gives, without a second hash to the curve and multiplication.
        let label = self.get_node_label_from_vrf_proof(proof).await;
        if let Some(key) = key {
            self.memo.put(key, proof, label);
        }
        (proof, label)
    }
}

/// VRF proofs and node labels an [`AppVrf`] made, by VRF input: the 32-byte hash of (label,
/// freshness, version) that AKD's configuration feeds the VRF, so an entry can only answer for
/// exactly the input it was made from. A VRF is deterministic, so a remembered proof is the
/// one a new evaluation would give; proofs and labels are public (every lookup answer carries
/// them), so nothing secret is kept here.
///
/// A lookup evaluates the VRF three times for the node labels (`get_node_label`: existence,
/// marker, freshness) and then proves the same three inputs (`get_label_proof`). With the
/// memo, it makes three proofs, derives the labels from them, and answers the proofs from the
/// memo; a later lookup of an unchanged entry makes none.
///
/// Bounded to `capacity` entries. A slot of the map is 297 bytes: the 32-byte key, the proof
/// as akd keeps it (a point and two scalars, 224 bytes), the 36-byte label, padding and the
/// map's control byte; the map keeps at least 1/8 of its slots free. When full, an eighth of
/// the entries goes (any eighth: a proof made again is the same proof).
struct VrfMemo {
    entries: std::sync::Mutex<HashMap<[u8; 32], (Proof, akd::NodeLabel)>>,
    capacity: usize,
    /// Proofs made because the memo had none (for tests).
    made: std::sync::atomic::AtomicU64,
}

impl VrfMemo {
    fn new(capacity: usize) -> Self {
        Self {
            entries: std::sync::Mutex::default(),
            capacity,
            made: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Proof, akd::NodeLabel)>> {
        // Every statement leaves the map consistent, so a panic elsewhere leaves it usable.
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, alpha: &[u8; 32]) -> Option<(Proof, akd::NodeLabel)> {
        if self.capacity == 0 {
            return None;
        }
        self.entries().get(alpha).copied()
    }

    fn put(&self, alpha: [u8; 32], proof: Proof, label: akd::NodeLabel) {
        if self.capacity == 0 {
            return;
        }
        let mut entries = self.entries();
        if entries.len() >= self.capacity && !entries.contains_key(&alpha) {
            let victims: Vec<[u8; 32]> = entries
                .keys()
                .take((self.capacity / 8).max(1))
                .copied()
                .collect();
            for victim in victims {
                entries.remove(&victim);
            }
        }
        entries.insert(alpha, (proof, label));
    }

    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[async_trait::async_trait]
impl VRFKeyStorage for AppVrf {
    async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
        Ok(self.secret.to_vec())
    }

    async fn get_vrf_public_key(&self) -> Result<VRFPublicKey, VrfError> {
        Ok(self.public.clone())
    }

    /// Lookups and history proofs: from a (remembered) proof, since the proof of the same input
    /// is asked for next. With the memo off, an evaluation (what AKD's default does).
    async fn get_node_label<TC: akd::Configuration>(
        &self,
        label: &akd::AkdLabel,
        freshness: akd::VersionFreshness,
        version: u64,
    ) -> Result<akd::NodeLabel, VrfError> {
        if self.memo.capacity == 0 {
            return Ok(Self::get_node_label_with_expanded_key::<TC>(
                &self.expanded,
                &self.public,
                label,
                freshness,
                version,
            ));
        }
        let input = TC::get_hash_from_label_input(label, freshness, version);
        Ok(self.proof_and_label(&input).await.1)
    }

    /// Publishing: labels of the entries an epoch changes. A remembered proof answers for free
    /// (the stale label of an identity's current version is one a lookup proved); otherwise an
    /// evaluation, not a proof, and nothing is remembered: a proof costs about twice an
    /// evaluation, and of the two labels an update needs only the new version's is ever asked
    /// for by a lookup, of only the identities someone looks up, in the publishing process only.
    async fn get_node_labels<TC: akd::Configuration>(
        &self,
        labels: &[(akd::AkdLabel, akd::VersionFreshness, u64, akd::AkdValue)],
    ) -> Result<
        Vec<(
            (akd::AkdLabel, akd::VersionFreshness, u64, akd::AkdValue),
            akd::NodeLabel,
        )>,
        VrfError,
    > {
        let mut out = Vec::with_capacity(labels.len());
        for (label, freshness, version, value) in labels {
            let input = TC::get_hash_from_label_input(label, *freshness, *version);
            let remembered = <[u8; 32]>::try_from(&input[..])
                .ok()
                .and_then(|key| self.memo.get(&key));
            let node_label = match remembered {
                Some((_, node_label)) => node_label,
                None => Self::get_node_label_with_expanded_key::<TC>(
                    &self.expanded,
                    &self.public,
                    label,
                    *freshness,
                    *version,
                ),
            };
            out.push((
                (label.clone(), *freshness, *version, value.clone()),
                node_label,
            ));
        }
        Ok(out)
    }

    async fn get_label_proof<TC: akd::Configuration>(
        &self,
        label: &akd::AkdLabel,
        freshness: akd::VersionFreshness,
        version: u64,
    ) -> Result<Proof, VrfError> {
        let input = TC::get_hash_from_label_input(label, freshness, version);
        if self.memo.capacity == 0 {
            return Ok(self.expanded.prove(&self.public, &input));
        }
        Ok(self.proof_and_label(&input).await.0)
    }
}

/// One application's directory.
pub type AppDirectory = Directory<KtConfiguration, KtDatabase, AppVrf>;

/// Tree nodes cached per application and process unless configured (`kt_node_cache_nodes`):
/// about 400 bytes each, so about 80 MB at most per application. A directory of 1M identities
/// has about 2M nodes, of which the top 17 levels, read by every lookup, are 131k; a full
/// cache drops the deepest nodes first, so it keeps those.
pub const NODE_CACHE_CAPACITY: usize = 200_000;

/// VRF proofs remembered per application and process (`VrfMemo`): a lookup needs two or
/// three, so this covers the entries of 20,000 to 28,000 identities. 7/8 of a power of two,
/// the most a hash map of 65,536 slots holds: about 19.5 MB per application when full.
pub const VRF_MEMO_CAPACITY: usize = 57_344;

/// Lookup answers kept for repeated lookups of an identity within one epoch (about 5 KB each).
const PROOF_CACHE_CAPACITY: usize = 4_096;

/// An application's directory as this process opened it.
#[derive(Clone)]
struct AppHandle {
    /// The storage, with the application's node cache; shared by every request.
    database: KtDatabase,
    vrf: AppVrf,
    vrf_public: [u8; 32],
    /// The publisher's directory. It reads through the node cache but keeps no AKD cache of
    /// its own: an AKD cache would keep the AZKS record of the epoch it first read forever.
    publisher: AppDirectory,
}

impl AppHandle {
    /// A directory for one request: AKD's cache lives as long as the request, so the request
    /// reads the AZKS record once and every node it needs in one batch per tree level (AKD's
    /// lookup preload, which it skips without a cache), below which the shared node cache
    /// answers most of them.
    async fn for_request(
        &self,
    ) -> Result<(AppDirectory, StorageManager<KtDatabase>), ServiceError> {
        let storage = StorageManager::new(self.database.clone(), None, None, None);
        let directory = AppDirectory::new(
            storage.clone(),
            self.vrf.clone(),
            AzksParallelismConfig::disabled(),
        )
        .await
        .map_err(akd_error)?;
        Ok((directory, storage))
    }
}

/// Lookup answers by (application, identity), all of the newest epoch seen: an answer is the
/// proof for that epoch, so it stays right for as long as the epoch is the newest.
#[derive(Default)]
struct ProofCache {
    epochs: HashMap<String, u64>,
    answers: HashMap<(String, String), (u64, wire::LookupResponse)>,
}

impl ProofCache {
    fn get(&self, app_id: &str, identity: &str, epoch: u64) -> Option<wire::LookupResponse> {
        self.answers
            .get(&(app_id.to_owned(), identity.to_owned()))
            .filter(|(cached, _)| *cached == epoch)
            .map(|(_, answer)| answer.clone())
    }

    fn put(&mut self, app_id: &str, epoch: u64, answer: &wire::LookupResponse) {
        let newest = self.epochs.entry(app_id.to_owned()).or_insert(epoch);
        if epoch < *newest {
            return;
        }
        if epoch > *newest {
            *newest = epoch;
            self.answers
                .retain(|(app, _), (cached, _)| app != app_id || *cached >= epoch);
        }
        if self.answers.len() >= PROOF_CACHE_CAPACITY {
            let victims: Vec<_> = self
                .answers
                .keys()
                .take(PROOF_CACHE_CAPACITY / 8)
                .cloned()
                .collect();
            for victim in victims {
                self.answers.remove(&victim);
            }
        }
        self.answers.insert(
            (app_id.to_owned(), answer.identity.clone()),
            (epoch, answer.clone()),
        );
    }
}

/// The key-transparency service: directories, publisher and proofs.
pub struct KtService {
    store: Arc<dyn Store>,
    keys: KtKeys,
    /// Directories opened so far.
    directories: tokio::sync::Mutex<HashMap<String, AppHandle>>,
    proofs: std::sync::Mutex<ProofCache>,
    /// Entries of each application's [`VrfMemo`].
    vrf_memo_capacity: usize,
    /// Tree nodes in each application's [`NodeCache`].
    node_cache_capacity: usize,
}

impl std::fmt::Debug for KtService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KtService")
            .field("signing_public_key", &self.keys.public_key_base64())
            .finish_non_exhaustive()
    }
}

/// Akd's errors are for logs; clients get typed errors.
fn akd_error(e: akd::errors::AkdError) -> ServiceError {
    ServiceError::internal(format!("key transparency: {e}"))
}

fn epoch_i64(epoch: u64) -> Result<i64, ServiceError> {
    i64::try_from(epoch).map_err(|_| ServiceError::KtInvalid("epoch out of range".into()))
}

impl KtService {
    /// The service over `store`, signing with `keys`.
    pub fn new(store: Arc<dyn Store>, keys: KtKeys) -> Self {
        Self {
            store,
            keys,
            directories: tokio::sync::Mutex::default(),
            proofs: std::sync::Mutex::default(),
            vrf_memo_capacity: VRF_MEMO_CAPACITY,
            node_cache_capacity: NODE_CACHE_CAPACITY,
        }
    }

    /// The same service caching at most `capacity` tree nodes per application instead of
    /// [`NODE_CACHE_CAPACITY`] (about 400 bytes each; twice the number of identities holds a
    /// whole directory). 0 turns the cache off. Call before the first use.
    pub fn with_node_cache_capacity(mut self, capacity: usize) -> Self {
        self.node_cache_capacity = capacity;
        self
    }

    /// The same service remembering at most `capacity` VRF proofs per application instead of
    /// [`VRF_MEMO_CAPACITY`]; 0 turns the memo off, so every label and proof is computed when
    /// AKD asks, as AKD's own key handling does (for measurements). Call before the first use.
    pub fn with_vrf_memo_capacity(mut self, capacity: usize) -> Self {
        self.vrf_memo_capacity = capacity;
        self
    }

    /// The deployment's head-signing key.
    pub fn keys(&self) -> &KtKeys {
        &self.keys
    }

    /// `app_id`'s directory; `create` makes it when the application has none (publisher only:
    /// readers must not write a directory for any app id a request names).
    async fn directory(&self, app_id: &str, create: bool) -> Result<AppHandle, ServiceError> {
        if let Some(found) = self.directories.lock().await.get(app_id) {
            return Ok(found.clone());
        }
        if !create {
            let azks_id =
                akd::Azks::get_full_binary_key_id(&akd::append_only_zks::DEFAULT_AZKS_KEY);
            if self.store.kt_records(app_id, &[azks_id]).await?.is_empty() {
                return Err(ServiceError::KtNoDirectory);
            }
        }
        let vrf = AppVrf::new(self.keys.vrf_secret(app_id)?, self.vrf_memo_capacity)?;
        let database = KtDatabase::new(
            self.store.clone(),
            app_id,
            Arc::new(NodeCache::new(self.node_cache_capacity)),
        );
        let publisher = AppDirectory::new(
            StorageManager::new_no_cache(database.clone()),
            vrf.clone(),
            AzksParallelismConfig::default(),
        )
        .await
        .map_err(akd_error)?;
        let vrf_public: [u8; 32] = publisher
            .get_public_key()
            .await
            .map_err(akd_error)?
            .to_bytes();
        let handle = AppHandle {
            database,
            vrf,
            vrf_public,
            publisher,
        };
        Ok(self
            .directories
            .lock()
            .await
            .entry(app_id.to_owned())
            .or_insert(handle)
            .clone())
    }

    /// The node cache of `app_id`'s directory in this process, once opened (for tests and
    /// measurements).
    pub async fn node_cache(&self, app_id: &str) -> Option<Arc<NodeCache>> {
        self.directories
            .lock()
            .await
            .get(app_id)
            .map(|handle| handle.database.cache().clone())
    }

    /// Fills the node cache of `app_id`'s directory from the database, nearest the root first,
    /// until it is full or holds the whole tree ([`KtDatabase::fill_cache`]); the number of
    /// nodes cached then. [`ServiceError::KtNoDirectory`] when the application has none yet.
    pub async fn fill_node_cache(&self, app_id: &str) -> Result<usize, ServiceError> {
        let handle = self.directory(app_id, false).await?;
        handle
            .database
            .fill_cache()
            .await
            .map_err(|e| akd_error(e.into()))
    }

    /// Fills every application's node cache in the background, one after the other, so the
    /// first lookups after a start do not each read the top of the tree from the database.
    pub fn spawn_cache_filling(self: Arc<Self>) {
        if self.node_cache_capacity == 0 {
            return;
        }
        tokio::spawn(async move {
            let apps = match self.store.list_apps().await {
                Ok(apps) => apps,
                Err(e) => {
                    tracing::warn!(error = %e, "listing applications to fill the KT node cache");
                    return;
                }
            };
            for app in apps {
                let started = std::time::Instant::now();
                match self.fill_node_cache(&app.app_id).await {
                    Ok(nodes) => tracing::info!(
                        app_id = app.app_id,
                        nodes,
                        seconds = started.elapsed().as_secs_f64(),
                        "key-transparency node cache filled"
                    ),
                    Err(ServiceError::KtNoDirectory) => {}
                    Err(e) => tracing::warn!(
                        app_id = app.app_id,
                        error = %e,
                        "filling the key-transparency node cache"
                    ),
                }
            }
        });
    }

    /// The number of VRF proofs `app_id`'s directory remembers in this process, once opened
    /// (for tests and measurements).
    pub async fn vrf_memo_len(&self, app_id: &str) -> Option<usize> {
        self.directories
            .lock()
            .await
            .get(app_id)
            .map(|handle| handle.vrf.memo.len())
    }

    fn sign(&self, app_id: &str, epoch: u64, root: [u8; 32], vrf: [u8; 32]) -> wire::SignedHead {
        SignedHead::sign(&self.keys.signing, app_id, epoch, root, vrf).to_wire()
    }

    /// The newest signed head of `app_id`'s directory.
    pub async fn head(&self, app_id: &str) -> Result<wire::SignedHead, ServiceError> {
        let handle = self.directory(app_id, false).await?;
        let (directory, _) = handle.for_request().await?;
        let akd::EpochHash(epoch, root) = directory.get_epoch_hash().await.map_err(akd_error)?;
        Ok(self.sign(app_id, epoch, root, handle.vrf_public))
    }

    /// Fails with [`ServiceError::KtNotInDirectory`] when `identity` has no entry yet.
    async fn require_entry(&self, app_id: &str, identity: &str) -> Result<(), ServiceError> {
        if self
            .store
            .kt_values(app_id, identity.as_bytes())
            .await?
            .is_empty()
        {
            return Err(ServiceError::KtNotInDirectory);
        }
        Ok(())
    }

    /// The lookup proof of `identity`'s current entry in the caller's application.
    pub async fn lookup(
        &self,
        caller: &Caller,
        identity: &str,
    ) -> Result<wire::LookupResponse, ServiceError> {
        let app_id = caller.app_id.as_str();
        let identity = valid_identity(identity)?;
        let handle = self.directory(app_id, false).await?;
        self.require_entry(app_id, identity).await?;
        for _ in 0..PROOF_ATTEMPTS {
            let (directory, storage) = handle.for_request().await?;
            // The request's epoch: AKD read the AZKS record into the request's cache when the
            // directory was made, and the lookup below reads the same record.
            let epoch = azks_epoch(&storage).await?;
            if let Some(answer) = self.proof_cache().get(app_id, identity, epoch) {
                return Ok(answer);
            }
            let generated = directory.lookup(identity_label(identity)).await;
            if !still_consistent(&handle.database, epoch).await? {
                continue;
            }
            let (proof, akd::EpochHash(epoch, root)) = generated.map_err(akd_error)?;
            let answer = wire::LookupResponse {
                head: self.sign(app_id, epoch, root, handle.vrf_public),
                identity: identity.to_owned(),
                proof: sealkit_kt::encode_lookup_proof(&proof),
                pending: None,
            };
            self.proof_cache().put(app_id, epoch, &answer);
            return Ok(answer);
        }
        Err(ServiceError::internal(
            "the directory moved on by two epochs during each of several lookups",
        ))
    }

    fn proof_cache(&self) -> std::sync::MutexGuard<'_, ProofCache> {
        self.proofs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether `identity`'s current cards in the caller's application differ from its newest
    /// published entry: a change the next epoch will publish. Clients wait longer for a card
    /// the directory does not show yet while this is true; it proves nothing by itself.
    pub async fn pending_change(
        &self,
        caller: &Caller,
        identity: &str,
    ) -> Result<bool, ServiceError> {
        let app_id = caller.app_id.as_str();
        let identity = valid_identity(identity)?;
        let ids = self.store.kt_current_card_ids(app_id, identity).await?;
        let published = self.store.kt_values(app_id, identity.as_bytes()).await?;
        Ok(match published.last() {
            // Cards, but no entry yet: the first one is queued.
            None => !ids.is_empty(),
            Some(newest) => newest.value != commitment(&ids)?,
        })
    }

    /// The directory value `identity`'s current cards commit to.
    async fn current_commitment(
        &self,
        app_id: &str,
        identity: &str,
    ) -> Result<Vec<u8>, ServiceError> {
        commitment(&self.store.kt_current_card_ids(app_id, identity).await?)
    }

    /// The key-history proof of `identity` in the caller's application: every version, or the
    /// newest `most_recent`.
    pub async fn history(
        &self,
        caller: &Caller,
        identity: &str,
        most_recent: Option<u64>,
    ) -> Result<wire::HistoryResponse, ServiceError> {
        let app_id = caller.app_id.as_str();
        let identity = valid_identity(identity)?;
        let params = match most_recent {
            None => HistoryParams::Complete,
            Some(0) => {
                return Err(ServiceError::KtInvalid(
                    "most_recent must be at least 1".into(),
                ))
            }
            Some(n) => HistoryParams::MostRecent(
                usize::try_from(n).map_err(|_| ServiceError::KtInvalid("most_recent".into()))?,
            ),
        };
        let handle = self.directory(app_id, false).await?;
        self.require_entry(app_id, identity).await?;
        for _ in 0..PROOF_ATTEMPTS {
            let (directory, storage) = handle.for_request().await?;
            let epoch = azks_epoch(&storage).await?;
            let generated = directory
                .key_history(&identity_label(identity), params)
                .await;
            if !still_consistent(&handle.database, epoch).await? {
                continue;
            }
            let (proof, akd::EpochHash(epoch, root)) = generated.map_err(akd_error)?;
            return Ok(wire::HistoryResponse {
                head: self.sign(app_id, epoch, root, handle.vrf_public),
                identity: identity.to_owned(),
                most_recent,
                proof: sealkit_kt::encode_history_proof(&proof),
            });
        }
        Err(ServiceError::internal(
            "the directory moved on by two epochs during each of several history proofs",
        ))
    }

    /// The append-only proof of `app_id`'s directory from epoch `start` to `end`, with the
    /// signed heads of every epoch in between.
    pub async fn audit(
        &self,
        app_id: &str,
        start: u64,
        end: u64,
    ) -> Result<wire::AuditResponse, ServiceError> {
        if start >= end || end - start > wire::MAX_AUDIT_EPOCHS {
            return Err(ServiceError::KtInvalid(format!(
                "an audit needs start < end, at most {} epochs apart",
                wire::MAX_AUDIT_EPOCHS
            )));
        }
        let handle = self.directory(app_id, false).await?;
        let (directory, _) = handle.for_request().await?;
        let vrf = handle.vrf_public;
        let expected = (end - start + 1) as usize;
        let mut roots = self
            .store
            .kt_roots(app_id, epoch_i64(start)?, epoch_i64(end)?)
            .await?;
        if roots.len() + 1 == expected && self.record_newest_root(&directory, app_id).await? == end
        {
            roots = self
                .store
                .kt_roots(app_id, epoch_i64(start)?, epoch_i64(end)?)
                .await?;
        }
        if roots.len() != expected {
            return Err(ServiceError::KtNoSuchEpoch);
        }
        let mut heads = Vec::with_capacity(expected);
        for (epoch, root) in roots {
            let root: [u8; 32] = root.try_into().map_err(|_| {
                ServiceError::internal("a stored key-transparency root is not 32 bytes")
            })?;
            heads.push(self.sign(app_id, epoch as u64, root, vrf));
        }
        let proof = directory.audit(start, end).await.map_err(akd_error)?;
        Ok(wire::AuditResponse {
            heads,
            proof: sealkit_kt::encode_append_only_proof(&proof),
        })
    }

    /// Records the root of the directory's newest epoch (a no-op when it is recorded already:
    /// the first write wins); the newest epoch.
    ///
    /// A publisher that dies between committing an epoch and recording its root (killed, or its
    /// database connection lost) leaves the newest epoch without one. The next publisher round
    /// records it before its own epoch, but only once some card changes; until then, clients
    /// that saw the new head in a lookup could not audit up to it, so an audit records it too.
    /// The root is the database's (akd computes it from the committed tree), so any process may
    /// record it.
    async fn record_newest_root(
        &self,
        directory: &AppDirectory,
        app_id: &str,
    ) -> Result<u64, ServiceError> {
        let akd::EpochHash(newest, root) = directory.get_epoch_hash().await.map_err(akd_error)?;
        self.store
            .kt_put_root(app_id, epoch_i64(newest)?, &root)
            .await?;
        Ok(newest)
    }

    /// One publisher round: if this process leads, publishes every queued change as one epoch
    /// per application (applications without a real change get no epoch). Returns the epochs
    /// published.
    pub async fn publish_pending(&self) -> Result<Vec<(String, u64)>, ServiceError> {
        if !self.store.kt_try_lead().await? {
            return Ok(Vec::new());
        }
        let pending = self.store.kt_pending(MAX_EPOCH_CHANGES).await?;
        let mut by_app: BTreeMap<String, Vec<KtPending>> = BTreeMap::new();
        for item in pending {
            by_app.entry(item.app_id.clone()).or_default().push(item);
        }
        let mut published = Vec::new();
        for (app_id, items) in by_app {
            let directory = self.directory(&app_id, true).await?.publisher;
            // A crash between an epoch and its root leaves the root unwritten: write it now,
            // before the next epoch. Epoch 0 (the empty directory) is recorded the same way.
            self.record_newest_root(&directory, &app_id).await?;
            let mut updates = Vec::with_capacity(items.len());
            for item in &items {
                let value = self.current_commitment(&app_id, &item.identity).await?;
                let latest = self
                    .store
                    .kt_values(&app_id, item.identity.as_bytes())
                    .await?;
                if latest.last().is_some_and(|v| v.value == value) {
                    continue;
                }
                updates.push((identity_label(&item.identity), akd::AkdValue(value)));
            }
            if !updates.is_empty() {
                let akd::EpochHash(epoch, root) =
                    directory.publish(updates).await.map_err(akd_error)?;
                self.store
                    .kt_put_root(&app_id, epoch_i64(epoch)?, &root)
                    .await?;
                published.push((app_id.clone(), epoch));
            }
            self.store.kt_clear_pending(&items).await?;
        }
        Ok(published)
    }

    /// Runs [`KtService::publish_pending`] every `every` until the process ends.
    pub fn spawn_publisher(self: Arc<Self>, every: Duration) {
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                match self.publish_pending().await {
                    Ok(epochs) => {
                        for (app_id, epoch) in epochs {
                            tracing::debug!(app_id, epoch, "published a key-transparency epoch");
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "publishing a key-transparency epoch failed")
                    }
                }
            }
        });
    }
}

/// How many times a proof is made again when the directory moved on by two epochs while it
/// was being made (see [`still_consistent`]).
const PROOF_ATTEMPTS: usize = 4;

/// The epoch of the AZKS record as `storage` reads it (for a request: the one it works on).
async fn azks_epoch(storage: &StorageManager<KtDatabase>) -> Result<u64, ServiceError> {
    latest_epoch(
        storage
            .get::<akd::Azks>(&akd::append_only_zks::DEFAULT_AZKS_KEY)
            .await,
    )
}

/// The epoch of an AZKS record read by [`azks_epoch`] or [`still_consistent`].
fn latest_epoch(
    read: Result<akd::storage::types::DbRecord, akd::errors::StorageError>,
) -> Result<u64, ServiceError> {
    match read.map_err(|e| akd_error(e.into()))? {
        akd::storage::types::DbRecord::Azks(azks) => Ok(azks.latest_epoch),
        _ => Err(ServiceError::internal("the AZKS record is not an AZKS")),
    }
}

/// Whether a proof made for `epoch` read a consistent tree. A proof reads tree nodes level
/// by level while epochs may be published (by this process or another replica). AKD keeps
/// each node's state before its last change, so reads for epoch E stay right while E + 1 is
/// written, but not once E + 2 is: a node changed in both then holds no state of E any more,
/// and the proof would not verify (seen under load with two PostgreSQL replicas). So the
/// database's epoch is read again after the proof: at most E + 1, and every node read was
/// right for E.
async fn still_consistent(database: &KtDatabase, epoch: u64) -> Result<bool, ServiceError> {
    use akd::storage::Database as _;
    let now = latest_epoch(
        database
            .get::<akd::Azks>(&akd::append_only_zks::DEFAULT_AZKS_KEY)
            .await,
    )?;
    Ok(now <= epoch + 1)
}

/// The directory value of a set of card ids.
fn commitment(card_ids: &[String]) -> Result<Vec<u8>, ServiceError> {
    let raw_ids = card_ids
        .iter()
        .map(|id| sealkit_kt::parse_card_id(id))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServiceError::internal)?;
    Ok(card_set_commitment(raw_ids).to_vec())
}

fn valid_identity(identity: &str) -> Result<&str, ServiceError> {
    sealkit_proto::jwt::validate_identity(identity)
        .map_err(|why| ServiceError::KtInvalid(format!("invalid identity: {why}")))?;
    Ok(identity)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;
    use akd::{AkdLabel, VersionFreshness};
    use sealkit_kt::KtConfiguration as Tc;

    /// AKD's own handling of the key: its default methods, from the secret bytes alone.
    #[derive(Clone)]
    struct DefaultVrf(Vec<u8>);

    #[async_trait::async_trait]
    impl VRFKeyStorage for DefaultVrf {
        async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
            Ok(self.0.clone())
        }
    }

    /// (label, freshness, version) triples a lookup and a publish ask about.
    fn vrf_inputs() -> Vec<(AkdLabel, VersionFreshness, u64)> {
        let mut inputs = Vec::new();
        for name in ["alice", "bob", ""] {
            for (freshness, version) in [
                (VersionFreshness::Fresh, 1),
                (VersionFreshness::Stale, 1),
                (VersionFreshness::Fresh, 2),
                (VersionFreshness::Stale, 7),
                (VersionFreshness::Fresh, 8),
            ] {
                inputs.push((AkdLabel::from(name), freshness, version));
            }
        }
        inputs
    }

    fn test_vrf(memo_capacity: usize) -> Result<(DefaultVrf, AppVrf), VrfError> {
        let secret = KtKeys::from_seed(&[5; 32])
            .vrf_secret("app")
            .map_err(|e| VrfError::SigningKey(e.to_string()))?;
        let reference = DefaultVrf(secret.to_vec());
        let ours =
            AppVrf::new(secret, memo_capacity).map_err(|e| VrfError::SigningKey(e.to_string()))?;
        Ok((reference, ours))
    }

    /// The precomputed keys and the memo give exactly what AKD's own key handling gives, in
    /// either order of asking (label first, as a lookup does, or proof first), the first time
    /// and from the memo, with the memo off, and with a memo too small to hold them all.
    #[tokio::test]
    async fn app_vrf_matches_akds_default_derivation() -> Result<(), VrfError> {
        for capacity in [VRF_MEMO_CAPACITY, 0, 4] {
            let (reference, ours) = test_vrf(capacity)?;
            assert_eq!(
                ours.get_vrf_public_key().await?,
                reference.get_vrf_public_key().await?
            );
            for round in 0..3 {
                for (i, (label, freshness, version)) in vrf_inputs().into_iter().enumerate() {
                    let expected_label = reference
                        .get_node_label::<Tc>(&label, freshness, version)
                        .await?;
                    let expected_proof = reference
                        .get_label_proof::<Tc>(&label, freshness, version)
                        .await?
                        .to_bytes();
                    let label_first = (i + round) % 2 == 0;
                    let (node_label, proof) = if label_first {
                        let node_label = ours.get_node_label::<Tc>(&label, freshness, version);
                        let node_label = node_label.await?;
                        let proof = ours.get_label_proof::<Tc>(&label, freshness, version);
                        (node_label, proof.await?)
                    } else {
                        let proof = ours.get_label_proof::<Tc>(&label, freshness, version);
                        let proof = proof.await?;
                        let node_label = ours.get_node_label::<Tc>(&label, freshness, version);
                        (node_label.await?, proof)
                    };
                    assert_eq!(node_label, expected_label, "{capacity} {round} {i}");
                    assert_eq!(proof.to_bytes(), expected_proof, "{capacity} {round} {i}");
                    assert!(ours.memo.len() <= capacity);
                }
            }
            if capacity == VRF_MEMO_CAPACITY {
                // One proof per input, made in the first round; later rounds only read.
                assert_eq!(
                    ours.memo.made.load(std::sync::atomic::Ordering::Relaxed),
                    vrf_inputs().len() as u64
                );
            }
            // Publishing's batch: the same labels, remembered or evaluated.
            let batch: Vec<_> = vrf_inputs()
                .into_iter()
                .map(|(l, f, v)| (l, f, v, akd::AkdValue::from("value")))
                .collect();
            assert_eq!(
                ours.get_node_labels::<Tc>(&batch).await?,
                reference.get_node_labels::<Tc>(&batch).await?
            );
            // A full-size memo holds one entry per input asked about; a small one stays in
            // bounds; an empty one holds nothing.
            match capacity {
                VRF_MEMO_CAPACITY => assert_eq!(ours.memo.len(), vrf_inputs().len()),
                0 => assert_eq!(ours.memo.len(), 0),
                _ => assert!((1..=capacity).contains(&ours.memo.len())),
            }
        }
        Ok(())
    }

    /// The memo's slot is the size its documentation (and `VRF_MEMO_CAPACITY`'s) states.
    #[test]
    fn a_memo_slot_is_296_bytes_plus_a_control_byte() {
        assert_eq!(
            std::mem::size_of::<([u8; 32], (Proof, akd::NodeLabel))>(),
            296
        );
    }

    /// Publishing neither makes proofs nor fills the memo, but takes remembered labels.
    #[tokio::test]
    async fn publishing_labels_read_the_memo_without_filling_it() -> Result<(), VrfError> {
        let (reference, ours) = test_vrf(VRF_MEMO_CAPACITY)?;
        let value = akd::AkdValue::from("value");
        let stale = (
            AkdLabel::from("alice"),
            VersionFreshness::Stale,
            1,
            value.clone(),
        );
        let fresh = (AkdLabel::from("alice"), VersionFreshness::Fresh, 2, value);
        let batch = [stale.clone(), fresh];
        assert_eq!(
            ours.get_node_labels::<Tc>(&batch).await?,
            reference.get_node_labels::<Tc>(&batch).await?
        );
        assert_eq!(ours.memo.len(), 0);
        // A lookup of version 1 proved the stale label of version 1 ...
        ours.get_label_proof::<Tc>(&stale.0, stale.1, stale.2)
            .await?;
        assert_eq!(ours.memo.len(), 1);
        // ... which the next publish takes from the memo (the same bytes), adding nothing.
        assert_eq!(
            ours.get_node_labels::<Tc>(&batch).await?,
            reference.get_node_labels::<Tc>(&batch).await?
        );
        assert_eq!(ours.memo.len(), 1);
        Ok(())
    }

    /// A card for `identity` straight into the store (which queues it for the next epoch).
    async fn publish_card(
        store: &dyn Store,
        app_id: &str,
        identity: &str,
        n: u32,
        previous: Option<&str>,
    ) -> String {
        let id = hex::encode(sha2::Sha256::digest(format!("{app_id} {identity} {n}")));
        store
            .publish_card(crate::store::NewCard {
                id: id.clone(),
                app_id: app_id.to_owned(),
                identity: sealkit_proto::Identity::new(identity).expect("identity"),
                previous_card_id: previous.map(str::to_owned),
                raw: br#"{"content_snapshot":"","signatures":[]}"#.to_vec(),
                created_at: 1_795_801_646,
            })
            .await
            .expect("publish");
        id
    }

    /// A SQLite store in a temporary directory (kept while the first value lives) with one
    /// application named `name`, and that application's id.
    async fn sqlite_app(name: &str) -> (tempfile::TempDir, Arc<dyn Store>, String) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store: Arc<dyn Store> = Arc::new(
            crate::store::sqlite::SqliteStore::open(&dir.path().join("kt.db"))
                .await
                .expect("sqlite"),
        );
        let app = crate::admin::create_app(store.as_ref(), name, 1_795_801_646)
            .await
            .expect("app");
        (dir, store, app.app_id.to_string())
    }

    /// Lookups answered with the VRF memo verify and are byte for byte the answers of a
    /// service without it; a repeated identity in a later epoch needs no new VRF proof.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn lookups_with_the_vrf_memo_verify_and_match_lookups_without_it() {
        let (_dir, store, app_id) = sqlite_app("kt-memo").await;
        let app_id = app_id.as_str();
        let kt = KtService::new(store.clone(), KtKeys::from_seed(&[9; 32]));
        let plain =
            KtService::new(store.clone(), KtKeys::from_seed(&[9; 32])).with_vrf_memo_capacity(0);
        let mut cards = Vec::new();
        for i in 0..16 {
            cards.push(publish_card(store.as_ref(), app_id, &format!("u{i}"), 0, None).await);
        }
        assert_eq!(kt.publish_pending().await.expect("epoch 1").len(), 1);
        // Publishing evaluated labels and remembered no proof.
        assert_eq!(kt.vrf_memo_len(app_id).await, Some(0));

        let pinned = kt.keys().public_key();
        let caller = Caller {
            app_id: sealkit_proto::AppId::new(app_id).expect("app id"),
            identity: sealkit_proto::Identity::new("u15").expect("identity"),
        };
        let lookup = |identity: &'static str, epoch: u64, card: String| {
            let (kt, plain, caller) = (&kt, &plain, &caller);
            async move {
                let answer = kt.lookup(caller, identity).await.expect("lookup");
                assert_eq!(
                    answer,
                    plain.lookup(caller, identity).await.expect("lookup"),
                    "{identity} in epoch {epoch}"
                );
                let (head, entry) = sealkit_kt::verify_lookup(&pinned, app_id, identity, &answer)
                    .expect("verifies");
                assert_eq!(head.epoch, epoch);
                entry.check_cards([card.as_str()]).expect("current card");
            }
        };
        let made = || async {
            let handle = kt.directory(app_id, false).await.expect("directory");
            handle
                .vrf
                .memo
                .made
                .load(std::sync::atomic::Ordering::Relaxed)
        };
        // Version 1: its marker is version 1 itself, so two VRF inputs (fresh 1, stale 1),
        // each proved once although akd asks for its label and its proof.
        lookup("u0", 1, cards[0].clone()).await;
        assert_eq!(kt.vrf_memo_len(app_id).await, Some(2));
        assert_eq!(made().await, 2);
        assert_eq!(plain.vrf_memo_len(app_id).await, Some(0));

        // Another identity changes: a new epoch, so the proof cache cannot answer, but u0's
        // entry is the same and its VRF proofs come from the memo.
        cards[1] = publish_card(store.as_ref(), app_id, "u1", 1, Some(&cards[1])).await;
        assert_eq!(kt.publish_pending().await.expect("epoch 2").len(), 1);
        lookup("u0", 2, cards[0].clone()).await;
        assert_eq!(kt.vrf_memo_len(app_id).await, Some(2));
        assert_eq!(made().await, 2);
        // u1 is at version 2 (marker 2): fresh 2 and stale 2 are new inputs.
        lookup("u1", 2, cards[1].clone()).await;
        assert_eq!(kt.vrf_memo_len(app_id).await, Some(4));
        assert_eq!(made().await, 4);
    }

    /// A publisher that died between an epoch and its root: an audit up to that epoch records
    /// the root from the directory instead of failing until the next card change.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_audit_records_the_root_a_dead_publisher_left_out() {
        let (_dir, store, app_id) = sqlite_app("kt-root-gap").await;
        let app_id = app_id.as_str();
        let kt = KtService::new(store.clone(), KtKeys::from_seed(&[7; 32]));
        let card = publish_card(store.as_ref(), app_id, "u0", 0, None).await;
        assert_eq!(kt.publish_pending().await.expect("epoch 1").len(), 1);
        // Epoch 2 committed the way `publish_pending` does, but the process stops before
        // recording its root.
        publish_card(store.as_ref(), app_id, "u0", 1, Some(&card)).await;
        let handle = kt.directory(app_id, false).await.expect("directory");
        let value = kt.current_commitment(app_id, "u0").await.expect("value");
        let akd::EpochHash(epoch, root) = handle
            .publisher
            .publish(vec![(identity_label("u0"), akd::AkdValue(value))])
            .await
            .expect("epoch 2");
        assert_eq!(epoch, 2);
        assert_eq!(store.kt_roots(app_id, 2, 2).await.expect("roots"), []);

        let audit = kt.audit(app_id, 1, 2).await.expect("audit across the gap");
        let pinned = kt.keys().public_key();
        let trusted = SignedHead::verified_from_wire(&audit.heads[0], &pinned, app_id)
            .expect("head of epoch 1");
        let newest = sealkit_kt::verify_append_only(&pinned, &trusted, &audit)
            .await
            .expect("the append-only proof verifies");
        assert_eq!((newest.epoch, newest.root_hash), (2, root));
        let recorded = store.kt_roots(app_id, 2, 2).await.expect("roots");
        assert_eq!(recorded, [(2, root.to_vec())]);

        // An epoch that is not the newest is not invented.
        assert!(matches!(
            kt.audit(app_id, 1, 3).await,
            Err(ServiceError::KtNoSuchEpoch)
        ));
    }

    /// A proof made for epoch E while E + 1 and E + 2 were published reads nodes that hold no
    /// state of E any more: `still_consistent` says so, and a lookup made now is right.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_proof_read_across_two_publishes_is_made_again() {
        let (_dir, store, app_id) = sqlite_app("kt-race").await;
        let app_id = app_id.as_str();
        let kt = KtService::new(store.clone(), KtKeys::from_seed(&[7; 32]));
        let mut cards = Vec::new();
        for i in 0..16 {
            cards.push(publish_card(store.as_ref(), app_id, &format!("u{i}"), 0, None).await);
        }
        assert_eq!(kt.publish_pending().await.expect("epoch 1").len(), 1);

        // A request starts on epoch 1 ...
        let handle = kt.directory(app_id, false).await.expect("directory");
        let (stale_directory, storage) = handle.for_request().await.expect("request");
        let epoch = azks_epoch(&storage).await.expect("epoch");
        assert_eq!(epoch, 1);
        assert!(still_consistent(&handle.database, epoch)
            .await
            .expect("read"));
        // ... one epoch later its reads are still right ...
        cards[0] = publish_card(store.as_ref(), app_id, "u0", 1, Some(&cards[0])).await;
        kt.publish_pending().await.expect("epoch 2");
        assert!(still_consistent(&handle.database, epoch)
            .await
            .expect("read"));
        // ... two epochs later they are not.
        cards[0] = publish_card(store.as_ref(), app_id, "u0", 2, Some(&cards[0])).await;
        kt.publish_pending().await.expect("epoch 3");
        assert!(!still_consistent(&handle.database, epoch)
            .await
            .expect("read"));

        // What the stale request would answer either does not verify, or proves against a
        // root that is not the one recorded for its epoch: a client would see a fork.
        let pinned = kt.keys().public_key();
        if let Ok((proof, akd::EpochHash(e, root))) =
            stale_directory.lookup(identity_label("u0")).await
        {
            let stale = wire::LookupResponse {
                head: kt.sign(app_id, e, root, handle.vrf_public),
                identity: "u0".into(),
                proof: sealkit_kt::encode_lookup_proof(&proof),
                pending: None,
            };
            let recorded = store
                .kt_roots(
                    app_id,
                    epoch_i64(e).expect("epoch"),
                    epoch_i64(e).expect("epoch"),
                )
                .await
                .expect("roots");
            let verifies = sealkit_kt::verify_lookup(&pinned, app_id, "u0", &stale).is_ok();
            assert!(
                !verifies || recorded.first().map(|(_, r)| &r[..]) != Some(&root[..]),
                "a proof for epoch {e} read across two publishes verified against its root"
            );
        }
        // The service's lookup answers epoch 3, and it verifies with the newest card.
        let caller = Caller {
            app_id: sealkit_proto::AppId::new(app_id).expect("app id"),
            identity: sealkit_proto::Identity::new("u1").expect("identity"),
        };
        let answer = kt.lookup(&caller, "u0").await.expect("lookup");
        let (head, entry) =
            sealkit_kt::verify_lookup(&pinned, app_id, "u0", &answer).expect("verifies");
        assert_eq!(head.epoch, 3);
        entry.check_cards([cards[0].as_str()]).expect("newest card");
    }
}
