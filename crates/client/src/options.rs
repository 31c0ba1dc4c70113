//! [`EThreeOptions`]: where the server and the local storage are, and how keys are made.

use crate::transparency::{KeyHistory, KtMode};
use sealkit_crypto::KeyType;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Called with an identity whose card changed, see [`EThreeOptions::on_key_changed`].
///
/// ```
/// use sealkit::{EThreeOptions, KeyChangedCallback};
/// use std::sync::{Arc, Mutex};
///
/// // One callback shared by the instances of several identities:
/// let changed = Arc::new(Mutex::new(Vec::<String>::new()));
/// let callback: KeyChangedCallback = {
///     let changed = changed.clone();
///     Arc::new(move |identity: &str| {
///         if let Ok(mut list) = changed.lock() {
///             list.push(identity.to_owned());
///         }
///     })
/// };
/// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
///     .on_key_changed({
///         let callback = callback.clone();
///         move |identity| callback(identity)
///     });
/// callback("bob"); // what the SDK does when it notices that bob's card changed
/// assert_eq!(changed.lock().unwrap().as_slice(), ["bob"]);
/// ```
pub type KeyChangedCallback = Arc<dyn Fn(&str) + Send + Sync>;

/// Called with the user's own key history when an automatic check (on initialize, after the
/// user's own publish) finds a version this device did not make, see
/// [`EThreeOptions::on_foreign_key`].
pub type ForeignKeyCallback = Arc<dyn Fn(&KeyHistory) + Send + Sync>;

/// The default for [`EThreeOptions::request_timeout`].
///
/// ```
/// use sealkit::{EThreeOptions, DEFAULT_REQUEST_TIMEOUT};
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs(30));
/// // On a slow mobile link, allow more than the default:
/// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
///     .request_timeout(DEFAULT_REQUEST_TIMEOUT * 2);
/// assert!(format!("{options:?}").contains("request_timeout: 60s"));
/// ```
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The default for [`EThreeOptions::key_rotation_interval`]: an hour, e3kit-x's
/// `keyRotationInterval`.
///
/// ```
/// use sealkit::DEFAULT_KEY_ROTATION_INTERVAL;
/// use std::time::Duration;
///
/// assert_eq!(DEFAULT_KEY_ROTATION_INTERVAL, Duration::from_secs(3600));
/// ```
pub const DEFAULT_KEY_ROTATION_INTERVAL: Duration = Duration::from_secs(3600);

/// Where [`crate::EThree`] keeps the user's private key (see
/// [`EThreeOptions::key_storage`]).
///
/// ```
/// use sealkit::{EThreeOptions, KeyStorage};
///
/// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit");
/// assert_eq!(options.key_storage_kind(), &KeyStorage::Files);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyStorage {
    /// A file per identity in `<storage_dir>/keys/`, mode 0600, in e3kit-node's key entry
    /// format (the default).
    Files,
    /// The operating system's keyring (feature `os-keyring`): the Keychain on macOS and iOS,
    /// the Credential Manager on Windows, the Secret Service (GNOME Keyring, KWallet) on Linux
    /// and the BSDs. `service` names the application's entries; the account is the identity.
    #[cfg(feature = "os-keyring")]
    OsKeyring {
        /// The service name the entries are filed under, e.g. your app's name.
        service: String,
    },
    /// The Linux kernel's keyring (keyutils; feature `os-keyring`), for headless machines
    /// without a Secret Service. The kernel keeps keys in memory only: they survive logouts for
    /// a few days but not a reboot, so pair it with a key backup
    /// ([`crate::EThree::backup_private_key`]).
    #[cfg(all(feature = "os-keyring", target_os = "linux"))]
    LinuxKernelKeyring {
        /// The service name the entries are filed under.
        service: String,
    },
}

/// Settings of an [`crate::EThree`] instance (e3kit's `EThreeInitializeOptions`).
///
/// ```
/// use sealkit::EThreeOptions;
/// use std::time::Duration;
///
/// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
///     .request_timeout(Duration::from_secs(10))
///     .on_key_changed(|identity| eprintln!("{identity} has a new key"));
/// assert_eq!(options.api_url(), "https://sealkit.example.com");
/// ```
#[derive(Clone)]
pub struct EThreeOptions {
    api_url: String,
    storage_dir: PathBuf,
    key_type: KeyType,
    sha256_identifiers: bool,
    request_timeout: Duration,
    key_changed: Option<KeyChangedCallback>,
    key_storage: KeyStorage,
    kt_mode: KtMode,
    kt_signing_key: Option<[u8; 32]>,
    kt_proof_reuse: Duration,
    foreign_key: Option<ForeignKeyCallback>,
    brainkey_version: BrainkeyVersion,
    enable_ratchet: bool,
    key_rotation_interval: Duration,
}

/// Which brainkey protocol turns the backup password into the backup key pair
/// (`docs/backup-and-brainkey.md`, "Brainkey v2 and v3"). A backup restores only with the
/// version that made it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BrainkeyVersion {
    /// Pythia on BLS12-381 (`POST /pythia/v1/brainkey`): e3kit-js and e3kit-node 2.x, and
    /// e3kit-kotlin / e3kit-x before 3.0. The default, so existing backups keep restoring.
    #[default]
    V2,
    /// The P-256 OPRF with a DLEQ proof (`POST /brainkey/v3/harden`): e3kit-kotlin 3.x and
    /// e3kit-x. The server's proof is checked before the key is derived.
    V3,
}

impl EThreeOptions {
    /// Options for the server at `api_url` (e3kit's `apiUrl`; request paths are appended to it,
    /// spec §1) and the local storage directory `storage_dir` (e3kit's `storageName`), which
    /// holds the private key files (`keys/`) and the card cache (`cards.sqlite3`). Several
    /// identities may share one directory.
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    /// use std::path::Path;
    ///
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit");
    /// assert_eq!(options.api_url(), "https://sealkit.example.com");
    /// assert_eq!(options.storage_dir(), Path::new("/var/lib/myapp/e3kit"));
    /// ```
    pub fn new(api_url: impl Into<String>, storage_dir: impl Into<PathBuf>) -> Self {
        Self {
            api_url: api_url.into(),
            storage_dir: storage_dir.into(),
            key_type: KeyType::Ed25519,
            sha256_identifiers: false,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            key_changed: None,
            key_storage: KeyStorage::Files,
            kt_mode: KtMode::Auto,
            kt_signing_key: None,
            kt_proof_reuse: crate::transparency::DEFAULT_KT_PROOF_REUSE,
            foreign_key: None,
            brainkey_version: BrainkeyVersion::V2,
            enable_ratchet: false,
            key_rotation_interval: DEFAULT_KEY_ROTATION_INTERVAL,
        }
    }

    /// Enables the double-ratchet channels ([`crate::EThree::create_ratchet_channel`] and the
    /// rest; e3kit's `enableRatchet`, default `false`). With it, the SDK publishes this user's
    /// ratchet keys at the key service `/pfs/v3/keys` and rotates them (see
    /// [`EThreeOptions::key_rotation_interval`]); without it, the ratchet methods fail with
    /// [`crate::Error::RatchetDisabled`]. `docs/forward-secrecy.md` says what the channels
    /// protect.
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    ///
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .enable_ratchet(true);
    /// assert!(options.ratchet_enabled());
    /// ```
    pub fn enable_ratchet(mut self, enabled: bool) -> Self {
        self.enable_ratchet = enabled;
        self
    }

    /// Whether the ratchet channels are enabled.
    pub fn ratchet_enabled(&self) -> bool {
        self.enable_ratchet
    }

    /// How often the ratchet keys are checked and rotated (e3kit's `keyRotationInterval`,
    /// default [`DEFAULT_KEY_ROTATION_INTERVAL`]). e3kit runs a timer with this period; this SDK
    /// has no background task and instead rotates when a rotation is due at
    /// [`crate::EThree::initialize`], [`crate::EThree::register`] and before creating or
    /// joining a channel, and whenever [`crate::EThree::rotate_ratchet_keys`] is called. A
    /// rotation replaces the one-time keys that were handed out and, when it is older than
    /// [`crate::RATCHET_LONG_TERM_KEY_TTL`], the long-term key.
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    /// use std::time::Duration;
    ///
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .enable_ratchet(true)
    ///     .key_rotation_interval(Duration::from_secs(600));
    /// assert_eq!(options.rotation_interval(), Duration::from_secs(600));
    /// ```
    pub fn key_rotation_interval(mut self, interval: Duration) -> Self {
        self.key_rotation_interval = interval;
        self
    }

    /// The configured ratchet key rotation interval.
    pub fn rotation_interval(&self) -> Duration {
        self.key_rotation_interval
    }

    /// The brainkey protocol of key backups; default [`BrainkeyVersion::V2`] (e3kit-js).
    /// Choose [`BrainkeyVersion::V3`] to share backups with the mobile e3kit SDKs 3.x.
    ///
    /// ```
    /// use sealkit::{BrainkeyVersion, EThreeOptions};
    ///
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .brainkey_version(BrainkeyVersion::V3);
    /// assert_eq!(options.brainkey(), BrainkeyVersion::V3);
    /// ```
    pub fn brainkey_version(mut self, version: BrainkeyVersion) -> Self {
        self.brainkey_version = version;
        self
    }

    /// The configured [`BrainkeyVersion`].
    pub fn brainkey(&self) -> BrainkeyVersion {
        self.brainkey_version
    }

    /// Where the private key is kept; default [`KeyStorage::Files`]. The card cache and group
    /// tickets stay in `storage_dir` either way (they are not secret on their own).
    ///
    /// ```no_run
    /// # #[cfg(feature = "os-keyring")]
    /// # fn options() -> sealkit::EThreeOptions {
    /// use sealkit::{EThreeOptions, KeyStorage};
    ///
    /// // In the macOS Keychain / Windows Credential Manager / GNOME Keyring:
    /// EThreeOptions::new("https://sealkit.example.com", "/home/me/.local/share/myapp")
    ///     .key_storage(KeyStorage::OsKeyring { service: "myapp".into() })
    /// # }
    /// ```
    pub fn key_storage(mut self, storage: KeyStorage) -> Self {
        self.key_storage = storage;
        self
    }

    /// The configured [`KeyStorage`].
    ///
    /// ```
    /// use sealkit::{EThreeOptions, KeyStorage};
    ///
    /// let options = EThreeOptions::new("http://127.0.0.1:8080", "/tmp/e3kit")
    ///     .key_storage(KeyStorage::Files);
    /// assert_eq!(options.key_storage_kind(), &KeyStorage::Files);
    /// ```
    pub fn key_storage_kind(&self) -> &KeyStorage {
        &self.key_storage
    }

    /// The type of the key pairs `register` and `rotate_private_key` generate (e3kit's
    /// `keyPairType`). Default: Ed25519. Cards are signed with the key, so it must be able to sign
    /// (Ed25519 or P-256).
    ///
    /// ```no_run
    /// # async fn get_jwt() -> Result<String, std::io::Error> { todo!() }
    /// # async fn run() -> sealkit::Result<()> {
    /// use sealkit::{EThree, EThreeOptions, KeyType};
    ///
    /// // P-256 (ECDSA) instead of Ed25519, e.g. where policy requires NIST curves (groups need
    /// // Ed25519, though):
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .key_type(KeyType::Secp256r1);
    /// let ethree = EThree::initialize(get_jwt, options).await?;
    /// let card = ethree.register(None).await?;
    /// assert_eq!(card.public_key().key_type(), KeyType::Secp256r1);
    /// # Ok(()) }
    /// ```
    pub fn key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self
    }

    /// Writes 32-byte SHA-256 key identifiers into messages instead of the default 8-byte ones
    /// (e3kit's `useSha256Identifiers`). Decryption accepts both either way; recipients running
    /// old virgil-crypto versions may need the default.
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    ///
    /// // When every recipient runs a recent e3kit (or this SDK):
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .sha256_identifiers(true);
    /// assert!(format!("{options:?}").contains("sha256_identifiers: true"));
    /// ```
    pub fn sha256_identifiers(mut self, enabled: bool) -> Self {
        self.sha256_identifiers = enabled;
        self
    }

    /// How long one HTTP request (connection included) may take before it fails with
    /// [`crate::Error::Network`]. Default: [`DEFAULT_REQUEST_TIMEOUT`].
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    /// use std::time::Duration;
    ///
    /// // Fail fast in an interactive app (then fall back to find_cached_users on Error::Network):
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .request_timeout(Duration::from_secs(5));
    /// assert!(format!("{options:?}").contains("request_timeout: 5s"));
    /// ```
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Calls `callback` with the identity of each user whose cached card changed (a rotation,
    /// or an unregistration) when [`crate::EThree::update_cached_users`] or
    /// [`crate::EThree::find_users`] notices it (e3kit Swift/Kotlin `keyChangedCallback`).
    /// The cache already holds the new card (or none) when it is called.
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    /// use std::sync::mpsc;
    ///
    /// // Hand the identities to the UI thread, which asks the user to verify them again:
    /// let (changed, to_verify) = mpsc::channel::<String>();
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .on_key_changed(move |identity| {
    ///         // An error means the UI is gone: nobody left to tell.
    ///         let _ = changed.send(identity.to_owned());
    ///     });
    /// assert!(format!("{options:?}").contains("on_key_changed: true"));
    /// ```
    pub fn on_key_changed(mut self, callback: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.key_changed = Some(Arc::new(callback));
        self
    }

    /// The server URL.
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    ///
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit");
    /// assert_eq!(options.api_url(), "https://sealkit.example.com");
    /// ```
    pub fn api_url(&self) -> &str {
        &self.api_url
    }

    /// The local storage directory.
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    /// use std::path::Path;
    ///
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit");
    /// // The card cache lives there, next to the keys/ directory:
    /// let cache = options.storage_dir().join("cards.sqlite3");
    /// assert_eq!(cache, Path::new("/var/lib/myapp/e3kit/cards.sqlite3"));
    /// ```
    pub fn storage_dir(&self) -> &std::path::Path {
        &self.storage_dir
    }

    pub(crate) fn new_key_type(&self) -> KeyType {
        self.key_type
    }

    pub(crate) fn sha256_ids(&self) -> bool {
        self.sha256_identifiers
    }

    pub(crate) fn timeout(&self) -> Duration {
        self.request_timeout
    }

    pub(crate) fn key_changed(&self) -> Option<&KeyChangedCallback> {
        self.key_changed.as_ref()
    }

    pub(crate) fn foreign_key(&self) -> Option<&ForeignKeyCallback> {
        self.foreign_key.as_ref()
    }

    pub(crate) fn kt_key(&self) -> Option<[u8; 32]> {
        self.kt_signing_key
    }

    /// Whether cards are checked against the server's key directory; default [`KtMode::Auto`]
    /// (checked when the server serves key transparency; its key is pinned on first use). See
    /// [`crate::transparency`].
    ///
    /// ```
    /// use sealkit::{EThreeOptions, KtMode};
    ///
    /// // A client that must never talk to a directory-less server:
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .key_transparency(KtMode::Required);
    /// assert_eq!(options.kt_mode(), KtMode::Required);
    /// ```
    pub fn key_transparency(mut self, mode: KtMode) -> Self {
        self.kt_mode = mode;
        self
    }

    /// The configured [`KtMode`].
    pub fn kt_mode(&self) -> KtMode {
        self.kt_mode
    }

    /// The deployment's KT signing key, known out of band (the server prints it at start as
    /// `kt_signing_key=...`; 32 raw Ed25519 bytes). Without it the key the server serves is
    /// pinned on first use. With it, key transparency is required and a server serving another
    /// key is refused.
    ///
    /// ```
    /// use sealkit::{EThreeOptions, KtMode};
    ///
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .kt_signing_key([7; 32]);
    /// assert!(format!("{options:?}").contains("kt_signing_key: true"));
    /// ```
    pub fn kt_signing_key(mut self, key: [u8; 32]) -> Self {
        self.kt_signing_key = Some(key);
        self
    }

    /// How long a card that passed its key-transparency check is taken as checked when the
    /// server returns the very same card again (default
    /// [`DEFAULT_KT_PROOF_REUSE`](crate::transparency::DEFAULT_KT_PROOF_REUSE), one second; at
    /// most [`MAX_KT_PROOF_REUSE`](crate::transparency::MAX_KT_PROOF_REUSE)). Repeated
    /// searches of an unchanged card then need no lookup proof. Within the window a card the
    /// identity has since replaced is accepted if the server still returns it, as from the card
    /// cache; `Duration::ZERO` checks every time.
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    /// use std::time::Duration;
    ///
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .kt_proof_reuse(Duration::ZERO);
    /// assert_eq!(options.kt_proof_reuse_window(), Duration::ZERO);
    /// ```
    pub fn kt_proof_reuse(mut self, window: Duration) -> Self {
        self.kt_proof_reuse = window.min(crate::transparency::MAX_KT_PROOF_REUSE);
        self
    }

    /// The configured [`EThreeOptions::kt_proof_reuse`] window.
    pub fn kt_proof_reuse_window(&self) -> Duration {
        self.kt_proof_reuse
    }

    /// Called when an automatic check of the user's own key history (after
    /// [`crate::EThree::initialize`] when a local key exists, and after the user's own
    /// `register` / `rotate_private_key`) finds a version this device did not make: someone
    /// published a card for the user. The checks run in the background and never fail the
    /// call that started them; [`crate::EThree::monitor_key_history`] runs one on demand.
    ///
    /// ```
    /// use sealkit::EThreeOptions;
    ///
    /// let options = EThreeOptions::new("https://sealkit.example.com", "/var/lib/myapp/e3kit")
    ///     .on_foreign_key(|history| {
    ///         for version in history.foreign() {
    ///             eprintln!("someone else published a key for you (epoch {})", version.epoch);
    ///         }
    ///     });
    /// assert!(format!("{options:?}").contains("on_foreign_key: true"));
    /// ```
    pub fn on_foreign_key(
        mut self,
        callback: impl Fn(&KeyHistory) + Send + Sync + 'static,
    ) -> Self {
        self.foreign_key = Some(Arc::new(callback));
        self
    }
}

impl fmt::Debug for EThreeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EThreeOptions")
            .field("api_url", &self.api_url)
            .field("storage_dir", &self.storage_dir)
            .field("key_type", &self.key_type)
            .field("sha256_identifiers", &self.sha256_identifiers)
            .field("request_timeout", &self.request_timeout)
            .field("on_key_changed", &self.key_changed.is_some())
            .field("key_storage", &self.key_storage)
            .field("brainkey_version", &self.brainkey_version)
            .field("kt_mode", &self.kt_mode)
            .field("kt_signing_key", &self.kt_signing_key.is_some())
            .field("kt_proof_reuse", &self.kt_proof_reuse)
            .field("on_foreign_key", &self.foreign_key.is_some())
            .field("enable_ratchet", &self.enable_ratchet)
            .field("key_rotation_interval", &self.key_rotation_interval)
            .finish()
    }
}
