//! Keyknox rules (spec §4, §5): validation, empty answers for missing data, fresh hashes.

use super::auth::Caller;
use super::error::ServiceError;
use crate::store::{
    Conflict, KeyknoxAddress, KeyknoxV1, KeyknoxV2Copy, KeyknoxV2Push, KeyknoxV2Reset, Store,
    StoreError, KEYKNOX_EMPTY_HASH,
};
use base64::Engine as _;
use rand_core::RngCore;
use sealkit_proto::keyknox::{V1Value, V2Keys, V2Pull, V2Push, V2Reset, V2Value};

/// Most identities in one v2 push (e3kit groups have at most 100 participants).
pub const MAX_IDENTITIES: usize = 1000;
/// Longest root, path or key.
pub const MAX_NAME_LEN: usize = 256;

/// A fresh entry hash: random, so it changes on every write (clients treat it as opaque; the
/// Swift/C clients base64-decode it, so it is standard base64).
fn new_hash() -> String {
    let mut bytes = [0u8; 32];
    rand_core::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn mismatch(e: StoreError) -> ServiceError {
    match e {
        StoreError::Conflict(Conflict::KeyknoxHashMismatch) => ServiceError::KeyknoxMismatch,
        StoreError::Conflict(Conflict::KeyknoxQuotaExceeded { used, quota }) => {
            ServiceError::KeyknoxQuotaExceeded { used, quota }
        }
        other => other.into(),
    }
}

fn v1_value(blob: &KeyknoxV1) -> V1Value {
    V1Value {
        meta: blob.meta.clone(),
        value: blob.value.clone(),
        version: format!("{}.0", blob.version),
    }
}

fn check_name(what: &'static str, value: &str) -> Result<(), ServiceError> {
    if value.is_empty() || value.len() > MAX_NAME_LEN || value.chars().any(char::is_control) {
        return Err(ServiceError::BadRequest(format!(
            "{what} must be 1 to {MAX_NAME_LEN} bytes without control characters"
        )));
    }
    Ok(())
}

fn check_blob(meta: &str, value: &str) -> Result<(), ServiceError> {
    if meta.is_empty() || value.is_empty() {
        return Err(ServiceError::BadRequest(
            "meta and value must not be empty".into(),
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    if b64.decode(meta).is_err() || b64.decode(value).is_err() {
        return Err(ServiceError::BadRequest(
            "meta and value must be base64".into(),
        ));
    }
    Ok(())
}

fn check_identity(identity: &str) -> Result<(), ServiceError> {
    sealkit_proto::jwt::validate_identity(identity)
        .map_err(|why| ServiceError::BadRequest(format!("invalid identity: {why}")))
}

/// `GET /keyknox/v1`: the blob and its hash (empty, version 1, for never-written storage).
pub async fn v1_get(store: &dyn Store, caller: &Caller) -> Result<(V1Value, String), ServiceError> {
    let Caller { app_id, identity } = caller;
    Ok(match store.keyknox_v1_get(app_id, identity).await? {
        Some(blob) => (v1_value(&blob), blob.hash),
        None => (
            V1Value {
                meta: String::new(),
                value: String::new(),
                version: "1.0".into(),
            },
            KEYKNOX_EMPTY_HASH.into(),
        ),
    })
}

/// `PUT /keyknox/v1`.
pub async fn v1_put(
    store: &dyn Store,
    caller: &Caller,
    meta: &str,
    value: &str,
    previous_hash: Option<&str>,
) -> Result<(V1Value, String), ServiceError> {
    let Caller { app_id, identity } = caller;
    check_blob(meta, value)?;
    let blob = store
        .keyknox_v1_put(app_id, identity, meta, value, previous_hash, &new_hash())
        .await
        .map_err(mismatch)?;
    Ok((v1_value(&blob), blob.hash))
}

/// `POST /keyknox/v1/reset`.
pub async fn v1_reset(
    store: &dyn Store,
    caller: &Caller,
) -> Result<(V1Value, String), ServiceError> {
    let Caller { app_id, identity } = caller;
    let blob = store
        .keyknox_v1_reset(app_id, identity, &new_hash())
        .await?;
    Ok((v1_value(&blob), blob.hash))
}

fn v2_value(
    owner: &str,
    root: &str,
    path: &str,
    key: &str,
    copy: Option<KeyknoxV2Copy>,
) -> (V2Value, String) {
    let (identities, meta, value, hash) = match copy {
        Some(c) => (c.identities, c.meta, c.value, c.hash),
        None => (
            Vec::new(),
            String::new(),
            String::new(),
            KEYKNOX_EMPTY_HASH.to_owned(),
        ),
    };
    let answer = V2Value {
        owner: owner.to_owned(),
        root: root.to_owned(),
        path: path.to_owned(),
        key: key.to_owned(),
        identities,
        meta,
        value,
    };
    (answer, hash)
}

/// `POST /keyknox/v2/push`: the caller writes its entry for the listed identities, within
/// `owner_quota_bytes` for all of its entries together.
pub async fn v2_push(
    store: &dyn Store,
    caller: &Caller,
    request: V2Push,
    previous_hash: Option<&str>,
    owner_quota_bytes: u64,
) -> Result<(V2Value, String), ServiceError> {
    check_name("root", &request.root)?;
    check_name("path", &request.path)?;
    check_name("key", &request.key)?;
    check_blob(&request.meta, &request.value)?;
    let mut identities = request.identities;
    identities.sort();
    identities.dedup();
    if identities.is_empty() || identities.len() > MAX_IDENTITIES {
        return Err(ServiceError::BadRequest(format!(
            "identities must list 1 to {MAX_IDENTITIES} identities"
        )));
    }
    for identity in &identities {
        check_identity(identity)?;
    }
    let copy = store
        .keyknox_v2_push(KeyknoxV2Push {
            address: KeyknoxAddress {
                app_id: caller.app_id.to_string(),
                owner: caller.identity.to_string(),
                root: request.root.clone(),
                path: request.path.clone(),
                key: request.key.clone(),
            },
            identities,
            meta: request.meta,
            value: request.value,
            previous_hash: previous_hash.map(str::to_owned),
            new_hash: new_hash(),
            owner_quota_bytes,
        })
        .await
        .map_err(mismatch)?;
    Ok(v2_value(
        &caller.identity,
        &request.root,
        &request.path,
        &request.key,
        Some(copy),
    ))
}

/// The identity whose entries a v2 request names: the one asked for, else the caller's own.
fn owner_or_caller(requested: Option<String>, caller: &Caller) -> Result<String, ServiceError> {
    let owner = requested.unwrap_or_else(|| caller.identity.to_string());
    check_identity(&owner)?;
    Ok(owner)
}

/// `POST /keyknox/v2/pull`: the caller's copy of `identity`'s entry (empty when there is none).
pub async fn v2_pull(
    store: &dyn Store,
    caller: &Caller,
    request: V2Pull,
) -> Result<(V2Value, String), ServiceError> {
    let owner = owner_or_caller(request.identity, caller)?;
    check_name("root", &request.root)?;
    check_name("path", &request.path)?;
    check_name("key", &request.key)?;
    let address = KeyknoxAddress {
        app_id: caller.app_id.to_string(),
        owner: owner.clone(),
        root: request.root.clone(),
        path: request.path.clone(),
        key: request.key.clone(),
    };
    let copy = store.keyknox_v2_pull(&address, &caller.identity).await?;
    Ok(v2_value(
        &owner,
        &request.root,
        &request.path,
        &request.key,
        copy,
    ))
}

/// `POST /keyknox/v2/keys`: keys of `identity`'s entries the caller can read.
pub async fn v2_keys(
    store: &dyn Store,
    caller: &Caller,
    request: V2Keys,
) -> Result<Vec<String>, ServiceError> {
    let owner = owner_or_caller(request.identity, caller)?;
    check_name("root", &request.root)?;
    check_name("path", &request.path)?;
    Ok(store
        .keyknox_v2_keys(
            &caller.app_id,
            &owner,
            &request.root,
            &request.path,
            &caller.identity,
        )
        .await?)
}

/// `POST /keyknox/v2/reset`: deletes the caller's entries or one recipient's copies.
pub async fn v2_reset(
    store: &dyn Store,
    caller: &Caller,
    request: V2Reset,
) -> Result<(V2Value, String), ServiceError> {
    // Every name that is given is checked like a pushed one: a name that can never have been
    // stored would reach the database only to fail there (PostgreSQL refuses NUL in text).
    for (what, name) in [
        ("root", &request.root),
        ("path", &request.path),
        ("key", &request.key),
    ] {
        if let Some(name) = name {
            check_name(what, name)?;
        }
    }
    if let Some(identity) = &request.identity {
        check_identity(identity)?;
    }
    store
        .keyknox_v2_reset(KeyknoxV2Reset {
            app_id: caller.app_id.to_string(),
            owner: caller.identity.to_string(),
            root: request.root.clone(),
            path: request.path.clone(),
            key: request.key.clone(),
            identity: request.identity.clone(),
        })
        .await?;
    Ok(v2_value(
        &caller.identity,
        request.root.as_deref().unwrap_or_default(),
        request.path.as_deref().unwrap_or_default(),
        request.key.as_deref().unwrap_or_default(),
        None,
    ))
}
