//! Application management, used by `sealkit app ...` directly on the database.

use crate::store::{AppKeyRecord, AppRecord, Store, StoreError};
use rand_core::RngCore;
use sealkit_crypto::{KeyType, PrivateKey};

// Push hooks are set, shown and removed by `sealkit app hook ...` through these.
pub use crate::service::hooks::{set_hook, HookAdminError};

// What `sealkit app create --json` prints: defined in sealkit-proto because app backends (the
// SDK's examples, `sealkit token`) parse it.
pub use sealkit_proto::AppCredentials;

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
        api_public_key: Some(key.public_key().to_base64()),
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
