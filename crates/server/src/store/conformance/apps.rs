//! Conformance of applications, API keys and settings.

use futures_util::future::join_all;

use super::{app_id, assert_conflict, ok, warm_up};
use crate::store::{AppKeyRecord, AppRecord, Store, StoreError};

pub(super) fn app(label: &str, created_at: i64) -> AppRecord {
    AppRecord {
        app_id: app_id(label),
        name: format!("App {label}"),
        created_at,
    }
}

pub(super) fn key(key_id: &str, app_id: &str, created_at: i64) -> AppKeyRecord {
    AppKeyRecord {
        key_id: key_id.to_owned(),
        app_id: app_id.to_owned(),
        public_key: format!("public key {key_id}").into_bytes(),
        created_at,
        revoked_at: None,
    }
}

/// Creates an application (with key `key-<label>`) and returns its id.
pub(super) async fn new_app(store: &dyn Store, label: &str) -> String {
    let record = app(label, 1_700_000_000);
    let id = record.app_id.clone();
    ok(
        "create app",
        store
            .create_app(record, key(&format!("key-{label}"), &id, 1_700_000_000))
            .await,
    );
    id
}

/// Applications and API keys: creation, listing oldest first, duplicate ids, extra keys,
/// lookups and revocation (idempotent, keeping the first time).
pub async fn apps_and_keys(store: &dyn Store) {
    assert!(ok("list empty", store.list_apps().await).is_empty());
    let first = app("first", 1_700_000_100);
    let second = app("second", 1_700_000_000);
    let third = app("third", 1_700_000_100);
    for (record, kid) in [(&first, "kid-1"), (&second, "kid-2"), (&third, "kid-3")] {
        ok(
            "create app",
            store
                .create_app(record.clone(), key(kid, &record.app_id, record.created_at))
                .await,
        );
    }
    // Oldest first; equal times in insertion order.
    assert_eq!(
        ok("list apps", store.list_apps().await),
        vec![second.clone(), first.clone(), third.clone()]
    );

    // Duplicate app id (with a fresh key id) and duplicate key id (with a fresh app id).
    assert_conflict(
        "duplicate app id",
        store
            .create_app(first.clone(), key("kid-new", &first.app_id, 1))
            .await,
    );
    let fourth = app("fourth", 1_700_000_200);
    assert_conflict(
        "duplicate key id",
        store
            .create_app(fourth.clone(), key("kid-1", &fourth.app_id, 1))
            .await,
    );

    // Extra keys.
    ok(
        "add key",
        store
            .add_app_key(key("kid-1b", &first.app_id, 1_700_000_300))
            .await,
    );
    ok(
        "add older key",
        store
            .add_app_key(key("kid-1a", &first.app_id, 1_600_000_000))
            .await,
    );
    assert_conflict(
        "add duplicate key",
        store
            .add_app_key(key("kid-2", &first.app_id, 1_700_000_400))
            .await,
    );
    match store
        .add_app_key(key("kid-x", &app_id("missing"), 1_700_000_400))
        .await
    {
        Err(StoreError::NotFound) => {}
        other => panic!("key for a missing app: expected NotFound, got {other:?}"),
    }
    let keys = ok("app keys", store.app_keys(&first.app_id).await);
    let kids: Vec<&str> = keys.iter().map(|k| k.key_id.as_str()).collect();
    assert_eq!(kids, ["kid-1a", "kid-1", "kid-1b"]);
    assert_eq!(keys[1], key("kid-1", &first.app_id, first.created_at));
    assert!(ok("keys of unknown app", store.app_keys(&app_id("none")).await).is_empty());

    // Lookup by kid.
    let found = ok("app key", store.app_key("kid-2").await);
    assert_eq!(found, Some(key("kid-2", &second.app_id, second.created_at)));
    assert_eq!(ok("unknown kid", store.app_key("kid-none").await), None);

    // Revocation.
    ok(
        "revoke key",
        store.revoke_app_key("kid-1", 1_800_000_000).await,
    );
    ok(
        "revoke key again",
        store.revoke_app_key("kid-1", 1_900_000_000).await,
    );
    let revoked = ok("revoked key", store.app_key("kid-1").await);
    assert_eq!(revoked.and_then(|k| k.revoked_at), Some(1_800_000_000));
    let keys = ok("app keys after revoke", store.app_keys(&first.app_id).await);
    assert_eq!(keys.len(), 3, "revoked keys are still listed");
    assert_eq!(
        ok("other key", store.app_key("kid-1b").await).and_then(|k| k.revoked_at),
        None
    );
    match store.revoke_app_key("kid-none", 1).await {
        Err(StoreError::NotFound) => {}
        other => panic!("revoking an unknown key: expected NotFound, got {other:?}"),
    }
}

/// A failed `create_app` (its key id is taken) leaves no application behind.
pub async fn app_creation_is_atomic(store: &dyn Store) {
    let first = app("first", 1);
    ok(
        "create app",
        store
            .create_app(first.clone(), key("kid", &first.app_id, 1))
            .await,
    );
    let second = app("second", 2);
    assert_conflict(
        "key id taken",
        store
            .create_app(second.clone(), key("kid", &second.app_id, 2))
            .await,
    );
    assert_eq!(ok("list apps", store.list_apps().await), vec![first]);
    // The app id is still free.
    ok(
        "create app after failure",
        store
            .create_app(second.clone(), key("kid-2", &second.app_id, 2))
            .await,
    );
}

/// `setting_or_insert`: the first value written wins, also among 20 concurrent callers.
pub async fn settings_first_writer_wins(store: &dyn Store) {
    assert_eq!(
        ok(
            "first insert",
            store.setting_or_insert("plain", b"one").await
        ),
        b"one"
    );
    assert_eq!(
        ok(
            "second insert",
            store.setting_or_insert("plain", b"two").await
        ),
        b"one"
    );
    // Binary values round-trip.
    let binary: Vec<u8> = (0..=255u8).collect();
    assert_eq!(
        ok("binary", store.setting_or_insert("binary", &binary).await),
        binary
    );

    warm_up(store, &app_id("none")).await;
    let values: Vec<Vec<u8>> = (0..20).map(|i| format!("value {i}").into_bytes()).collect();
    let results = join_all(
        values
            .iter()
            .map(|value| store.setting_or_insert("contended", value)),
    )
    .await;
    let results: Vec<Vec<u8>> = results
        .into_iter()
        .map(|r| ok("concurrent insert", r))
        .collect();
    let winner = results[0].clone();
    assert!(
        values.contains(&winner),
        "the stored value is one of those offered"
    );
    assert!(
        results.iter().all(|r| *r == winner),
        "every concurrent caller gets the same value: {results:?}"
    );
    assert_eq!(
        ok(
            "after the race",
            store.setting_or_insert("contended", b"late").await
        ),
        winner
    );
}

/// Concurrent first writes of one setting, split between two replicas, all read the first value.
pub(super) async fn replicas_share_settings(a: &dyn Store, b: &dyn Store) {
    let handles = [a, b];
    let values: Vec<Vec<u8>> = (0..20).map(|i| vec![i; 32]).collect();
    let results = join_all(
        values
            .iter()
            .enumerate()
            .map(|(i, v)| handles[i % 2].setting_or_insert("signing key", v)),
    )
    .await;
    let results: Vec<Vec<u8>> = results
        .into_iter()
        .map(|r| ok("setting on two replicas", r))
        .collect();
    assert!(results.iter().all(|r| *r == results[0]), "{results:?}");
}
