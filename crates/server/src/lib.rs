//! # sealkit-server
//!
//! The cloud side of Sealkit, wire-compatible with the Virgil services e3kit uses (Cards v5 and
//! Virgil-JWT application auth so far), on embedded SQLite or PostgreSQL. `sealkit serve` runs it;
//! [`serve`] is the same as a library call. The HTTP contract is
//! `shared/spec/virgil-services-api.md`; section numbers in this documentation refer to it.
//!
//! Layout: `http/` is the axum surface (one router per resource), `service/` the rules behind
//! it, `store/` the storage trait with its SQLite and PostgreSQL implementations.

pub mod admin;
mod config;
pub mod http;
pub mod metrics;
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
    Ok(match &config.database_url {
        Some(url) => Arc::new(store::postgres::PostgresStore::connect(url).await?),
        None => {
            Arc::new(store::sqlite::SqliteStore::open(&config.data_dir.join("sealkit.db")).await?)
        }
    })
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
    let events = store.chat_events().await?;
    let chat = service::chat::ChatHub::start(store.clone(), events, config.chat_feed_capacity);
    let state = AppState {
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
    };
    Ok(http::router(state))
}

/// Runs the server until `shutdown` completes (for example Ctrl-C), finishing requests in flight.
pub async fn serve(
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    let backend = if config.database_url.is_some() {
        "postgresql"
    } else {
        "sqlite"
    };
    tracing::info!(listen = %listener.local_addr()?, backend, "sealkit server listening");
    let router = app(config, store).await?;
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
