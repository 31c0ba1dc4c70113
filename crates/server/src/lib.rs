//! # sealkit-server
//!
//! The cloud side of Sealkit, wire-compatible with the Virgil services e3kit uses (Cards v5 and
//! Virgil-JWT application auth so far), on embedded SQLite or PostgreSQL. `sealkit serve` runs it;
//! [`serve`] is the same as a library call. The HTTP contract is
//! `shared/spec/virgil-services-api.md`; section numbers in this documentation refer to it.
//!
//! Layout, in three rooms; each depends only on the ones after it:
//!
//! * [`http`]: the axum surface, and the only module that knows axum. One router per resource;
//!   the extractor that turns a verified `Authorization: Virgil <jwt>` into a
//!   [`Caller`](service::Caller); and [`http::error`], the one place where a failure becomes an
//!   HTTP status and a Virgil `{code, message}` body.
//! * [`service`]: the rules, callable without HTTP. Every call takes the
//!   [`Caller`](service::Caller) it acts for and answers a [`ServiceError`](service::ServiceError)
//!   that says what went wrong, never how it is answered.
//! * [`store`]: the storage traits per domain with their SQLite and PostgreSQL implementations;
//!   records name identities and channels with the validated ids of `sealkit_proto::ids`.

pub mod admin;
mod config;
pub mod http;
pub mod metrics;
pub mod net;
pub mod service;
pub mod store;

pub use config::Config;

use http::{AppState, ServiceKeys};
use sealkit_crypto::{KeyType, PrivateKey};
use std::sync::Arc;
use store::{Store, StoreError};

/// Errors that stop the server from starting or running.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// Opening or migrating the database failed.
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    /// Binding or serving the socket failed.
    #[error("network: {0}")]
    Io(#[from] std::io::Error),
    /// A stored service key cannot be read.
    #[error("service key: {0}")]
    Key(#[from] sealkit_crypto::Error),
    /// The brainkey secret cannot be loaded.
    #[error("brainkey secret: {0}")]
    Secret(#[from] service::pythia::SecretError),
    /// The brainkey secret cannot be used.
    #[error("brainkey: {0}")]
    Pythia(#[from] sealkit_pythia::Error),
    /// The TLS certificate or key cannot be used.
    #[error("TLS: {0}")]
    Tls(#[from] net::TlsError),
    /// The key-transparency signing key cannot be used.
    #[error("key transparency: {0}")]
    KtKey(#[from] service::kt::KtKeyError),
    /// The configuration contradicts itself.
    #[error("configuration: {0}")]
    Config(&'static str),
    /// Another `sealkit serve` serves this SQLite data directory.
    #[error(
        "another sealkit serve is using the data directory {0}: one server per SQLite database \
         (its caches assume no other writer); run several replicas on PostgreSQL"
    )]
    DataDirInUse(std::path::PathBuf),
}

/// The current time, Unix seconds. The only clock read of the server; cores take time as input.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// The current time, Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Opens the configured store: PostgreSQL when `database_url` is set, else SQLite in `data_dir`.
/// Runs the schema migrations.
pub async fn open_store(config: &Config) -> Result<Arc<dyn Store>, ServerError> {
    Ok(open_store_as(config, false).await?.0)
}

/// [`open_store`]; for a server (`serving`) on SQLite, also the data directory's lock
/// ([`lock_data_dir`]), taken before the database is opened: a refused second server must not
/// even migrate the database under the running one.
async fn open_store_as(
    config: &Config,
    serving: bool,
) -> Result<(Arc<dyn Store>, Option<std::fs::File>), ServerError> {
    Ok(match &config.database_url {
        Some(url) => (
            Arc::new(store::postgres::PostgresStore::connect(url).await?),
            None,
        ),
        None => {
            let path = config.data_dir.join(SQLITE_FILE);
            private_data_dir(&config.data_dir, &path)?;
            let lock = match serving {
                true => Some(lock_data_dir(&config.data_dir)?),
                false => None,
            };
            (
                Arc::new(store::sqlite::SqliteStore::open(&path).await?),
                lock,
            )
        }
    })
}

/// The embedded database's file name inside the data directory.
const SQLITE_FILE: &str = "sealkit.db";

/// The file a server on SQLite keeps locked in the data directory while it serves.
const SERVE_LOCK_FILE: &str = "sealkit-serve.lock";

/// Locks `dir` for this server until the returned file is closed. On SQLite, the card search
/// cache and the key-transparency publisher assume that no other server writes the database,
/// so a second `serve` on the same directory is refused rather than left to serve stale cards.
/// The lock goes with the process (a server killed with SIGKILL leaves none behind); other
/// commands (`sealkit app ...`) do not take it.
/// Elsewhere the file is created but not locked (README.md says on which systems it is).
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, ServerError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(SERVE_LOCK_FILE))?;
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "ios"
    ))]
    {
        use rustix::fs::{flock, FlockOperation};
        match flock(&file, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(rustix::io::Errno::WOULDBLOCK) => {
                return Err(ServerError::DataDirInUse(dir.to_owned()))
            }
            Err(e) => return Err(std::io::Error::from(e).into()),
        }
    }
    Ok(file)
}

/// Makes the data directory 0700 and the database files 0600 (Unix), creating the directory
/// if needed: the database holds the service's card-signing key and the brainkey secret lives
/// beside it, so the umask's usual 0755/0644 would let every local user read them. Files of an
/// older install are tightened too. SQLite gives its `-wal`/`-shm` files the database's mode.
fn private_data_dir(dir: &std::path::Path, database: &std::path::Path) -> Result<(), ServerError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
        let tighten = |path: &std::path::Path, mode: u32| -> std::io::Result<()> {
            match std::fs::metadata(path) {
                Ok(meta) if meta.permissions().mode() & 0o777 != mode => {
                    tracing::warn!(path = %path.display(), "restricting permissions to {mode:o}");
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
                }
                Ok(_) => Ok(()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(e) => Err(e),
            }
        };
        tighten(dir, 0o700)?;
        // Created here, before SQLite opens it, so it never exists with the umask's mode.
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(database)
        {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e.into()),
        }
        for suffix in ["", "-wal", "-shm"] {
            let mut name = database.as_os_str().to_owned();
            name.push(suffix);
            tighten(std::path::Path::new(&name), 0o600)?;
        }
    }
    #[cfg(not(unix))]
    {
        let _ = database;
        std::fs::create_dir_all(dir)?;
    }
    Ok(())
}

/// Name of the setting holding the service's card-signing key (PKCS#8 DER).
const CARD_SIGNER_SETTING: &str = "service.card_signer";

/// Loads the service keys, creating them on first start. Every replica on one database gets the
/// same keys.
pub async fn service_keys(store: &dyn Store) -> Result<ServiceKeys, ServerError> {
    let fresh = PrivateKey::generate(KeyType::Ed25519, &mut rand_core::OsRng);
    let der = store
        .setting_or_insert(CARD_SIGNER_SETTING, &fresh.to_der())
        .await?;
    let der = zeroize::Zeroizing::new(der);
    Ok(ServiceKeys {
        card_signer: PrivateKey::from_der(&der)?,
    })
}

/// Builds the application state and router for `store`.
pub async fn app(config: Config, store: Arc<dyn Store>) -> Result<axum::Router, ServerError> {
    let keys = service_keys(store.as_ref()).await?;
    let secret = service::pythia::load_secret(&config, store.as_ref()).await?;
    let brainkey =
        service::pythia::Brainkey::new(&secret, config.brainkey_burst, config.brainkey_per_second)?;
    tracing::info!(
        card_signer = %keys.card_signer.public_key().to_base64(),
        "service card-signing key (signer \"virgil\")"
    );
    prune_idle_rate_limits(
        store.clone(),
        config.brainkey_burst,
        config.brainkey_per_second,
    );
    collect_unposted_blobs(store.clone(), config.chat_blob_grace_secs);
    if !(config.kt_epoch_secs.is_finite() && config.kt_epoch_secs > 0.0) {
        return Err(ServerError::Config(
            "kt_epoch_secs must be a positive number",
        ));
    }
    if config
        .card_cache_ms
        .is_some_and(|ms| ms > config::MAX_CARD_CACHE_MS)
    {
        return Err(ServerError::Config(
            "card_cache_ms must be at most 1000 (a card change must show on every replica within a second)",
        ));
    }
    let kt_keys = service::kt::load_keys(&config, store.as_ref()).await?;
    tracing::info!(
        kt_signing_key = %kt_keys.public_key_base64(),
        "key-transparency signing key (served at /kt/v1/key)"
    );
    let kt = Arc::new(
        service::kt::KtService::new(store.clone(), kt_keys)
            .with_node_cache_capacity(config.kt_node_cache_nodes),
    );
    kt.clone()
        .spawn_publisher(std::time::Duration::from_secs_f64(config.kt_epoch_secs));
    kt.clone().spawn_cache_filling();
    service::hooks::spawn_delivery(
        store.clone(),
        service::hooks::HookSettings::from_config(&config),
    );
    let events = store.chat_events().await?;
    let chat = service::chat::ChatHub::start(store.clone(), events, config.chat_feed_capacity);
    let card_cache = card_cache(&config, &store).await?;
    let state = AppState {
        card_cache,
        chat_sockets: Arc::default(),
        chat,
        auth: Arc::new(service::auth::Authenticator::new(
            store.clone(),
            config.jwt_leeway_secs,
        )),
        store,
        keys: Arc::new(keys),
        config: Arc::new(config),
        metrics: Arc::new(metrics::Metrics::default()),
        brainkey: Arc::new(brainkey),
        kt,
    };
    Ok(http::router(state))
}

/// The card search cache, following the other replicas' card changes when the store is
/// shared (see [`service::cards::ChangeSource`]).
async fn card_cache(
    config: &Config,
    store: &Arc<dyn Store>,
) -> Result<Arc<service::cards::SearchCache>, ServerError> {
    use service::cards::{ChangeSource, SearchCache};
    let source = if store.shared_with_other_processes() {
        ChangeSource::Announced
    } else {
        ChangeSource::ThisProcess
    };
    let period = std::time::Duration::from_millis(
        config
            .card_cache_ms
            .unwrap_or(config::DEFAULT_CARD_CACHE_MS),
    );
    let cache = Arc::new(SearchCache::new(period, source, config.card_cache_entries));
    if cache.enabled() && source == ChangeSource::Announced {
        // Confirmed a few times per period, so a healthy stream vouches for every answer.
        if let Some(changes) = store
            .card_changes(period / CARD_CONFIRMATIONS_PER_PERIOD)
            .await?
        {
            // The read barrier: a search answers from the cache only once this replica has
            // heard every change committed before the search began.
            let store = store.clone();
            let read: service::cards::ReadLastChange = Arc::new(move || {
                let store = store.clone();
                Box::pin(async move { store.last_card_change().await })
            });
            cache.follow(changes, Some(read));
        }
    }
    Ok(cache)
}

/// How many times per `card_cache_ms` a replica confirms that it has heard every card change.
const CARD_CONFIRMATIONS_PER_PERIOD: u32 = 4;

/// How often idle rate-limit buckets are deleted.
const RATE_LIMIT_PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

/// Deletes, once a minute, the rate-limit buckets idle long enough to be full again (they mean
/// the same as no row), so the table holds only callers active in the last refill period
/// instead of every identity that ever asked. Harmless when several replicas do it.
fn prune_idle_rate_limits(store: Arc<dyn Store>, burst: u32, per_second: f64) {
    // Never refilling buckets stay; so does everything when the arithmetic makes no sense.
    let Some(refill_ms) = (per_second > 0.0)
        .then(|| (f64::from(burst) / per_second * 1000.0).ceil())
        .filter(|ms| ms.is_finite() && *ms < i64::MAX as f64)
        .map(|ms| ms as i64)
    else {
        return;
    };
    tokio::spawn(async move {
        let mut every = tokio::time::interval(RATE_LIMIT_PRUNE_EVERY);
        loop {
            every.tick().await;
            let before = now_ms().saturating_sub(refill_ms);
            match store.rate_limit_prune(before).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(buckets = n, "pruned idle rate-limit buckets"),
                Err(e) => tracing::warn!(error = %e, "pruning rate-limit buckets failed"),
            }
        }
    });
}

/// Deletes the chat blobs no message named within `grace_secs` of their upload (uploads never
/// posted, abandoned uploads), checking a quarter of the grace period apart (between a second
/// and ten minutes). Harmless when several replicas do it: each deletion re-checks that no
/// message names the blob.
fn collect_unposted_blobs(store: Arc<dyn Store>, grace_secs: u64) {
    let grace_ms = i64::try_from(grace_secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    let every = std::time::Duration::from_secs((grace_secs / 4).clamp(1, 600));
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(every);
        loop {
            ticks.tick().await;
            match service::chat::blobs::collect_garbage(store.as_ref(), now_ms(), grace_ms).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(blobs = n, "deleted blobs no message names"),
                Err(e) => tracing::warn!(error = %e, "collecting chat blobs failed"),
            }
        }
    });
}

/// Runs the server until `shutdown` completes (for example Ctrl-C), finishing requests in flight.
///
/// With `tls_cert` and `tls_key` set it serves HTTPS only, and re-reads both files on SIGHUP
/// (Unix): new connections get the new certificate, established ones are not dropped.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let tls = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(net::TlsFiles::load(cert, key)?)),
        (None, None) => None,
        _ => return Err(ServerError::Config("tls_cert and tls_key go together")),
    };
    let (store, _only_server) = open_store_as(&config, true).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let backend = if config.database_url.is_some() {
        "postgresql"
    } else {
        "sqlite"
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %listener.local_addr()?, backend, scheme, "sealkit server listening");
    if let Some(tls) = &tls {
        reload_on_sighup(tls.clone())?;
    }
    let router = app(config.clone(), store).await?;
    net::serve_on(listener, router, &config, tls, shutdown).await?;
    Ok(())
}

#[cfg(unix)]
fn reload_on_sighup(tls: Arc<net::TlsFiles>) -> Result<(), ServerError> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut hangups = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        while hangups.recv().await.is_some() {
            match tls.reload() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                Err(e) => {
                    tracing::error!(error = %e, "SIGHUP: TLS reload failed; the previous certificate stays in use")
                }
            }
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn reload_on_sighup(_tls: Arc<net::TlsFiles>) -> Result<(), ServerError> {
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    fn mode(path: &std::path::Path) -> u32 {
        std::fs::metadata(path).map_or(0, |m| m.permissions().mode() & 0o777)
    }

    #[tokio::test]
    async fn the_data_directory_and_database_are_private() -> Result<(), Box<dyn std::error::Error>>
    {
        let root = tempfile::tempdir()?;
        let fresh = Config {
            data_dir: root.path().join("fresh"),
            ..Config::default()
        };
        let store = open_store(&fresh).await?;
        store.list_apps().await?;
        assert_eq!(mode(&fresh.data_dir), 0o700);
        assert_eq!(mode(&fresh.data_dir.join(SQLITE_FILE)), 0o600);
        drop(store);

        // An install made before: world-readable directory and database.
        let old = Config {
            data_dir: root.path().join("old"),
            ..Config::default()
        };
        std::fs::create_dir(&old.data_dir)?;
        std::fs::set_permissions(&old.data_dir, std::fs::Permissions::from_mode(0o755))?;
        let database = old.data_dir.join(SQLITE_FILE);
        drop(open_store(&old).await?);
        std::fs::set_permissions(&database, std::fs::Permissions::from_mode(0o644))?;
        std::fs::set_permissions(&old.data_dir, std::fs::Permissions::from_mode(0o755))?;
        let store = open_store(&old).await?;
        store.list_apps().await?;
        assert_eq!(mode(&old.data_dir), 0o700);
        assert_eq!(mode(&database), 0o600);
        Ok(())
    }
}
