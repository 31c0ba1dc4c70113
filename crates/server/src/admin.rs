//! Application management, used by `sealkit app ...` directly on the database.

use crate::store::{AppKeyRecord, AppRecord, Store, StoreError};
use rand_core::RngCore;
use sealkit_crypto::{KeyType, PrivateKey};
use serde::Serialize;

/// What `sealkit app create --json` prints: everything an app backend needs to mint tokens.
/// `api_private_key` is base64 of PKCS#8 DER, importable by virgil-sdk's `JwtGenerator`; the
/// server keeps only the public key.
#[derive(Serialize)]
pub struct AppCredentials {
    /// The application id (`iss = "virgil-" + app_id`).
    pub app_id: String,
    /// The API key id (the JWT `kid`).
    pub api_key_id: String,
    /// The API private key, base64 of PKCS#8 DER. Secret.
    pub api_private_key: String,
    /// The API public key, base64 of SubjectPublicKeyInfo DER.
    pub api_public_key: String,
}

impl std::fmt::Debug for AppCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCredentials")
            .field("app_id", &self.app_id)
            .field("api_key_id", &self.api_key_id)
            .finish_non_exhaustive()
    }
}

fn random_hex() -> String {
    let mut bytes = [0u8; 16];
    rand_core::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn new_key(app_id: &str, now: i64) -> (AppKeyRecord, PrivateKey) {
    let key = PrivateKey::generate(KeyType::Ed25519, &mut rand_core::OsRng);
    let record = AppKeyRecord {
        key_id: random_hex(),
        app_id: app_id.to_owned(),
        public_key: key.public_key().to_der(),
        created_at: now,
        revoked_at: None,
    };
    (record, key)
}

fn credentials(record: &AppKeyRecord, key: &PrivateKey) -> AppCredentials {
    AppCredentials {
        app_id: record.app_id.clone(),
        api_key_id: record.key_id.clone(),
        api_private_key: key.to_base64().to_string(),
        api_public_key: key.public_key().to_base64(),
    }
}

/// Creates an application with a fresh API key.
pub async fn create_app(
    store: &dyn Store,
    name: &str,
    now: i64,
) -> Result<AppCredentials, StoreError> {
    let app = AppRecord {
        app_id: random_hex(),
        name: name.to_owned(),
        created_at: now,
    };
    let (record, key) = new_key(&app.app_id, now);
    store.create_app(app, record.clone()).await?;
    Ok(credentials(&record, &key))
}

/// Adds an API key to an application (for key rotation without downtime).
pub async fn add_key(
    store: &dyn Store,
    app_id: &str,
    now: i64,
) -> Result<AppCredentials, StoreError> {
    let (record, key) = new_key(app_id, now);
    store.add_app_key(record.clone()).await?;
    Ok(credentials(&record, &key))
}
