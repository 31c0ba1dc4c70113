//! Conformance of Keyknox v1 blobs and v2 entries: versions, compare-and-swap, copies, resets.

use std::collections::BTreeSet;
use std::fmt::Debug;

use futures_util::future::join_all;

use super::{app_id, hex_id, ok, warm_up, RACE_ROUNDS};
use crate::store::{
    Conflict, KeyknoxAddress, KeyknoxV1, KeyknoxV2Copy, KeyknoxV2Push, KeyknoxV2Reset, Store,
    StoreError, StoreResult, KEYKNOX_EMPTY_HASH,
};

/// Asserts that `result` is the Keyknox compare-and-swap conflict.
fn assert_mismatch<T: Debug>(step: &str, result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(Conflict::KeyknoxHashMismatch)) => {}
        other => panic!("{step}: expected Conflict(KeyknoxHashMismatch), got {other:?}"),
    }
}

/// The indexes of the successful writes among concurrent compare-and-swap attempts; every
/// failure must be the hash mismatch.
fn cas_winners<T: Debug>(step: &str, results: &[StoreResult<T>]) -> Vec<usize> {
    let mut won = Vec::new();
    for (i, result) in results.iter().enumerate() {
        match result {
            Ok(_) => won.push(i),
            Err(StoreError::Conflict(Conflict::KeyknoxHashMismatch)) => {}
            Err(e) => panic!("{step} {i}: {e:?}"),
        }
    }
    won
}

/// A distinct, base64-looking hash derived from `label`.
fn hash(label: &str) -> String {
    format!("{}=", hex_id(&format!("hash {label}"), 43))
}

async fn v1_get(store: &dyn Store, app_id: &str, identity: &str) -> Option<KeyknoxV1> {
    ok(
        "keyknox v1 get",
        store.keyknox_v1_get(app_id, identity).await,
    )
}

async fn v1_put(
    store: &dyn Store,
    app_id: &str,
    identity: &str,
    label: &str,
    previous: Option<&str>,
) -> StoreResult<KeyknoxV1> {
    store
        .keyknox_v1_put(
            app_id,
            identity,
            &format!("meta {label}"),
            &format!("value {label}"),
            previous,
            &hash(label),
        )
        .await
}

/// The address of entry `key` of `owner` under `root`/`path`.
fn address(app_id: &str, owner: &str, root: &str, path: &str, key: &str) -> KeyknoxAddress {
    KeyknoxAddress {
        app_id: app_id.to_owned(),
        owner: owner.to_owned(),
        root: root.to_owned(),
        path: path.to_owned(),
        key: key.to_owned(),
    }
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A push of `(meta <label>, value <label>)` for `identities`, new hash `hash(label)`.
fn v2_push(
    at: &KeyknoxAddress,
    identities: &[&str],
    label: &str,
    previous: Option<&str>,
) -> KeyknoxV2Push {
    KeyknoxV2Push {
        address: at.clone(),
        identities: strings(identities),
        meta: format!("meta {label}"),
        value: format!("value {label}"),
        previous_hash: previous.map(str::to_owned),
        new_hash: hash(label),
        owner_quota_bytes: u64::MAX,
    }
}

/// A push of `bytes` bytes of meta and value together (labelled `label`), within `quota`.
fn sized_push(
    at: &KeyknoxAddress,
    identities: &[&str],
    label: &str,
    previous: Option<&str>,
    (bytes, quota): (usize, u64),
) -> KeyknoxV2Push {
    let meta = format!("meta {label}");
    let value = format!(
        "{label}:{}",
        "v".repeat(bytes - meta.len() - label.len() - 1)
    );
    KeyknoxV2Push {
        meta,
        value,
        owner_quota_bytes: quota,
        ..v2_push(at, identities, label, previous)
    }
}

/// Asserts that `result` is the quota refusal with the given usage.
fn assert_over_quota<T: Debug>(step: &str, result: StoreResult<T>, used: u64, quota: u64) {
    match result {
        Err(StoreError::Conflict(Conflict::KeyknoxQuotaExceeded { used: u, quota: q }))
            if (u, q) == (used, quota) => {}
        other => panic!(
            "{step}: expected Conflict(KeyknoxQuotaExceeded {{ used: {used}, quota: {quota} }}), \
             got {other:?}"
        ),
    }
}

/// Pushes and checks the pusher's view (pushed meta/value, the new hash).
async fn push_ok(store: &dyn Store, push: KeyknoxV2Push) -> KeyknoxV2Copy {
    let (meta, value, new_hash) = (push.meta.clone(), push.value.clone(), push.new_hash.clone());
    let copy = ok("keyknox v2 push", store.keyknox_v2_push(push).await);
    assert_eq!(
        (&copy.meta, &copy.value, &copy.hash),
        (&meta, &value, &new_hash),
        "a push returns what was pushed and the new hash"
    );
    copy
}

async fn pull(store: &dyn Store, at: &KeyknoxAddress, reader: &str) -> Option<KeyknoxV2Copy> {
    ok("keyknox v2 pull", store.keyknox_v2_pull(at, reader).await)
}

/// Pulls a copy that must exist and checks its content (label) and holders.
async fn pull_copy(
    store: &dyn Store,
    at: &KeyknoxAddress,
    reader: &str,
    label: &str,
    holders: &[&str],
) -> KeyknoxV2Copy {
    let Some(copy) = pull(store, at, reader).await else {
        panic!("{reader} has no copy of {at:?}");
    };
    assert_eq!(
        (copy.meta.as_str(), copy.value.as_str()),
        (
            format!("meta {label}").as_str(),
            format!("value {label}").as_str()
        ),
        "{reader}'s copy of {at:?}"
    );
    assert_eq!(copy.identities, strings(holders), "holders of {at:?}");
    copy
}

async fn keys(store: &dyn Store, at: &KeyknoxAddress, reader: &str) -> Vec<String> {
    ok(
        "keyknox v2 keys",
        store
            .keyknox_v2_keys(&at.app_id, &at.owner, &at.root, &at.path, reader)
            .await,
    )
}

fn reset(
    app_id: &str,
    owner: &str,
    root: Option<&str>,
    path: Option<&str>,
    key: Option<&str>,
    identity: Option<&str>,
) -> KeyknoxV2Reset {
    KeyknoxV2Reset {
        app_id: app_id.to_owned(),
        owner: owner.to_owned(),
        root: root.map(str::to_owned),
        path: path.map(str::to_owned),
        key: key.map(str::to_owned),
        identity: identity.map(str::to_owned),
    }
}

/// Keyknox v1 versions and hashes (spec §4, KTC-1..5): nothing stored until the first put
/// (version 1); every put and reset adds 1; resetting never-written storage creates nothing and
/// answers version 1 with the empty hash; the hash changes on every write and a get returns the
/// hash the write returned; a reset blob reads back empty.
pub async fn keyknox_v1_versions_and_hashes(store: &dyn Store) {
    let app = app_id("a");
    assert_eq!(v1_get(store, &app, "alice").await, None);

    let reset_empty = ok(
        "reset never written",
        store.keyknox_v1_reset(&app, "alice", &hash("unused")).await,
    );
    assert_eq!(
        reset_empty,
        KeyknoxV1 {
            meta: String::new(),
            value: String::new(),
            version: 1,
            hash: KEYKNOX_EMPTY_HASH.to_owned(),
        }
    );
    assert_eq!(
        v1_get(store, &app, "alice").await,
        None,
        "a reset creates nothing"
    );

    let first = ok("first put", v1_put(store, &app, "alice", "1", None).await);
    assert_eq!(
        first,
        KeyknoxV1 {
            meta: "meta 1".to_owned(),
            value: "value 1".to_owned(),
            version: 1,
            hash: hash("1"),
        }
    );
    assert_ne!(first.hash, KEYKNOX_EMPTY_HASH);
    assert_eq!(v1_get(store, &app, "alice").await, Some(first.clone()));

    let second = ok(
        "second put",
        v1_put(store, &app, "alice", "2", Some(&first.hash)).await,
    );
    assert_eq!((second.version, &second.hash), (2, &hash("2")));
    assert_eq!(v1_get(store, &app, "alice").await, Some(second.clone()));

    let emptied = ok(
        "reset",
        store.keyknox_v1_reset(&app, "alice", &hash("r1")).await,
    );
    assert_eq!(
        emptied,
        KeyknoxV1 {
            meta: String::new(),
            value: String::new(),
            version: 3,
            hash: hash("r1"),
        }
    );
    assert_eq!(v1_get(store, &app, "alice").await, Some(emptied.clone()));
    let emptied_again = ok(
        "reset again",
        store.keyknox_v1_reset(&app, "alice", &hash("r2")).await,
    );
    assert_eq!(
        (emptied_again.version, &emptied_again.hash),
        (4, &hash("r2"))
    );

    let third = ok(
        "put after reset",
        v1_put(store, &app, "alice", "3", Some(&emptied_again.hash)).await,
    );
    assert_eq!((third.version, &third.hash), (5, &hash("3")));
    assert_eq!(v1_get(store, &app, "alice").await, Some(third));

    // Other identities and applications are untouched and start at version 1.
    assert_eq!(v1_get(store, &app, "bob").await, None);
    assert_eq!(v1_get(store, &app_id("b"), "alice").await, None);
    let bob = ok("bob's put", v1_put(store, &app, "bob", "b1", None).await);
    assert_eq!(bob.version, 1);
    let other = ok(
        "put in another app",
        v1_put(store, &app_id("b"), "alice", "o1", None).await,
    );
    assert_eq!(other.version, 1);
    assert_eq!(
        v1_get(store, &app, "alice").await.map(|b| b.version),
        Some(5)
    );
}

/// Keyknox v1 compare-and-swap: a non-empty blob needs its current hash (missing, stale, empty
/// and made-up hashes are refused and change nothing); empty or missing storage accepts no hash
/// or its current one (the empty hash when never written, the reset's hash after a reset).
pub async fn keyknox_v1_compare_and_swap(store: &dyn Store) {
    let app = app_id("a");
    // Never written: a made-up hash is refused, the empty hash accepted.
    assert_mismatch(
        "made-up hash on missing storage",
        v1_put(store, &app, "alice", "x", Some(&hash("made up"))).await,
    );
    assert_eq!(v1_get(store, &app, "alice").await, None);
    let first = ok(
        "put with the empty hash",
        v1_put(store, &app, "alice", "1", Some(KEYKNOX_EMPTY_HASH)).await,
    );
    assert_eq!(first.version, 1);

    for (step, previous) in [
        ("no hash on a non-empty blob", None),
        (
            "the empty hash on a non-empty blob",
            Some(KEYKNOX_EMPTY_HASH),
        ),
        ("a made-up hash", Some("bm9wZQ==")),
    ] {
        assert_mismatch(step, v1_put(store, &app, "alice", "bad", previous).await);
    }
    let second = ok(
        "put with the current hash",
        v1_put(store, &app, "alice", "2", Some(&first.hash)).await,
    );
    assert_mismatch(
        "a stale hash",
        v1_put(store, &app, "alice", "bad", Some(&first.hash)).await,
    );
    assert_eq!(v1_get(store, &app, "alice").await, Some(second.clone()));

    // After a reset: no hash, or the reset's hash; not the hash before it, not a made-up one.
    let emptied = ok(
        "reset",
        store.keyknox_v1_reset(&app, "alice", &hash("r")).await,
    );
    assert_mismatch(
        "the hash before the reset",
        v1_put(store, &app, "alice", "bad", Some(&second.hash)).await,
    );
    assert_mismatch(
        "made-up hash after reset",
        v1_put(store, &app, "alice", "bad", Some("bm9wZQ==")).await,
    );
    assert_eq!(v1_get(store, &app, "alice").await, Some(emptied.clone()));
    let third = ok(
        "put with the reset's hash",
        v1_put(store, &app, "alice", "3", Some(&emptied.hash)).await,
    );
    assert_eq!(third.version, emptied.version + 1);
    let emptied = ok(
        "reset again",
        store.keyknox_v1_reset(&app, "alice", &hash("r2")).await,
    );
    let fourth = ok(
        "put without hash after reset",
        v1_put(store, &app, "alice", "4", None).await,
    );
    assert_eq!(fourth.version, emptied.version + 1);
    assert_eq!(v1_get(store, &app, "alice").await, Some(fourth));
}

/// Keyknox v1 stores meta/value of any size and content verbatim, per identity exactly
/// (non-ASCII included).
pub async fn keyknox_v1_identities_and_sizes(store: &dyn Store) {
    let app = app_id("a");
    let big_meta = "TUlJQzRBSUI=".repeat(30_000);
    let big_value = "S3FFVXo4eXg+/w==".repeat(70_000);
    let big = ok(
        "big put",
        store
            .keyknox_v1_put(&app, "alice", &big_meta, &big_value, None, &hash("big"))
            .await,
    );
    let stored = v1_get(store, &app, "alice").await;
    assert_eq!(stored.as_ref(), Some(&big));
    assert_eq!(
        stored.map(|b| (b.meta.len(), b.value.len())),
        Some((big_meta.len(), big_value.len()))
    );

    let identities = ["Jürgen-ö", "用户", "😀 emoji", "a'b\"c;--", "Jurgen-o"];
    for (i, identity) in identities.iter().enumerate() {
        ok(
            "put",
            v1_put(store, &app, identity, &format!("id {i}"), None).await,
        );
    }
    for (i, identity) in identities.iter().enumerate() {
        let blob = v1_get(store, &app, identity).await;
        assert_eq!(
            blob.map(|b| b.value),
            Some(format!("value id {i}")),
            "{identity}"
        );
    }
    assert_eq!(v1_get(store, &app, "Ju\u{308}rgen-ö").await, None);
    assert_eq!(v1_get(store, &app, "jürgen-ö").await, None);
}

/// 20 concurrent v1 puts with the same previous hash (also on empty storage, with and without
/// the empty hash): exactly one wins, the others get the hash mismatch, and the stored blob is
/// entirely the winner's.
pub async fn keyknox_v1_concurrent_puts(store: &dyn Store) {
    let app = app_id("a");
    warm_up(store, &app).await;
    for round in 0..RACE_ROUNDS {
        let identity = format!("alice-{round}");
        let mut previous: Option<String> = match round % 3 {
            0 => None,
            1 => Some(KEYKNOX_EMPTY_HASH.to_owned()),
            _ => {
                let first = ok(
                    "initial put",
                    v1_put(store, &app, &identity, &format!("{round} initial"), None).await,
                );
                Some(first.hash)
            }
        };
        for step in 0..2 {
            let labels: Vec<String> = (0..20).map(|i| format!("{round} {step} {i}")).collect();
            let results = join_all(
                labels
                    .iter()
                    .map(|label| v1_put(store, &app, &identity, label, previous.as_deref())),
            )
            .await;
            let won = cas_winners("concurrent v1 put", &results);
            assert_eq!(won.len(), 1, "exactly one concurrent v1 put wins: {won:?}");
            let label = &labels[won[0]];
            let stored = v1_get(store, &app, &identity).await;
            let Some(stored) = stored else {
                panic!("nothing stored after the race");
            };
            assert_eq!(
                (
                    stored.meta.as_str(),
                    stored.value.as_str(),
                    stored.hash.as_str()
                ),
                (
                    format!("meta {label}").as_str(),
                    format!("value {label}").as_str(),
                    hash(label).as_str()
                ),
                "the stored blob is the winner's"
            );
            if let Ok(winner) = &results[won[0]] {
                assert_eq!(&stored, winner);
            }
            previous = Some(stored.hash);
        }
    }
}

/// An e3kit group's lifecycle on Keyknox v2 (spec §5, root `group-sessions`): create for
/// `[alice, bob]`; "group exists" detection; add charles (a push for `[charles]` with the previous
/// hash) — everyone reads their own copy and sees all three; a second epoch; remove bob (reset
/// of his copy: no keys, no pull, hash unchanged so the old hash still pushes); reAdd; and
/// deleteGroup.
pub async fn keyknox_v2_group_lifecycle(store: &dyn Store) {
    let app = app_id("a");
    let session = hex_id("session", 64);
    let epoch0 = address(&app, "alice", "group-sessions", &session, "0");
    let epoch1 = address(&app, "alice", "group-sessions", &session, "1");

    // Nothing yet.
    assert_eq!(pull(store, &epoch0, "alice").await, None);
    assert!(keys(store, &epoch0, "alice").await.is_empty());

    // Create: initiator + participants.
    let created = push_ok(store, v2_push(&epoch0, &["alice", "bob"], "t0", None)).await;
    assert_eq!(created.identities, strings(&["alice", "bob"]));
    // Creating again (no previous hash) is how e3kit detects an existing group.
    assert_mismatch(
        "create existing group",
        store
            .keyknox_v2_push(v2_push(&epoch0, &["alice", "bob"], "again", None))
            .await,
    );
    for reader in ["alice", "bob"] {
        let copy = pull_copy(store, &epoch0, reader, "t0", &["alice", "bob"]).await;
        assert_eq!(copy.hash, created.hash);
        assert_eq!(keys(store, &epoch0, reader).await, strings(&["0"]));
    }
    assert_eq!(pull(store, &epoch0, "charles").await, None);
    assert!(keys(store, &epoch0, "charles").await.is_empty());

    // group.add(charles): a ticket re-encrypted for the new member only.
    let added = push_ok(
        store,
        v2_push(&epoch0, &["charles"], "t0 charles", Some(&created.hash)),
    )
    .await;
    let all = ["alice", "bob", "charles"];
    assert_eq!(added.identities, strings(&all));
    assert_ne!(added.hash, created.hash);
    // Older copies stay readable; everyone sees three participants and the new hash.
    for (reader, label) in [("alice", "t0"), ("bob", "t0"), ("charles", "t0 charles")] {
        let copy = pull_copy(store, &epoch0, reader, label, &all).await;
        assert_eq!(copy.hash, added.hash, "{reader}");
        assert_eq!(keys(store, &epoch0, reader).await, strings(&["0"]));
    }
    assert_mismatch(
        "push with the hash before the add",
        store
            .keyknox_v2_push(v2_push(&epoch0, &["dave"], "late", Some(&created.hash)))
            .await,
    );

    // A new epoch for everyone.
    let next = push_ok(store, v2_push(&epoch1, &all, "t1", None)).await;
    assert_eq!(next.identities, strings(&all));
    for reader in all {
        assert_eq!(keys(store, &epoch0, reader).await, strings(&["0", "1"]));
        pull_copy(store, &epoch1, reader, "t1", &all).await;
    }

    // group.remove(bob): his copies of every epoch go; hashes stay.
    ok(
        "remove bob",
        store
            .keyknox_v2_reset(reset(
                &app,
                "alice",
                Some("group-sessions"),
                Some(&session),
                None,
                Some("bob"),
            ))
            .await,
    );
    assert!(
        keys(store, &epoch0, "bob").await.is_empty(),
        "removed members get no keys"
    );
    assert_eq!(pull(store, &epoch0, "bob").await, None);
    assert_eq!(pull(store, &epoch1, "bob").await, None);
    let alice0 = pull_copy(store, &epoch0, "alice", "t0", &["alice", "charles"]).await;
    assert_eq!(alice0.hash, added.hash, "removing a copy keeps the hash");
    let alice1 = pull_copy(store, &epoch1, "alice", "t1", &["alice", "charles"]).await;
    assert_eq!(alice1.hash, next.hash);
    assert_eq!(keys(store, &epoch0, "charles").await, strings(&["0", "1"]));

    // The hash pulled before the removal still pushes (here: a new ticket for alice + charles).
    let rekeyed = push_ok(
        store,
        v2_push(&epoch1, &["alice", "charles"], "t1b", Some(&next.hash)),
    )
    .await;
    assert_eq!(rekeyed.identities, strings(&["alice", "charles"]));

    // group.reAdd(charles): pull (hash H), reset his copy of the epoch, push for him with H.
    let h = pull_copy(store, &epoch1, "alice", "t1b", &["alice", "charles"])
        .await
        .hash;
    ok(
        "reAdd: reset charles's copy",
        store
            .keyknox_v2_reset(reset(
                &app,
                "alice",
                Some("group-sessions"),
                Some(&session),
                Some("1"),
                Some("charles"),
            ))
            .await,
    );
    assert_eq!(pull(store, &epoch1, "charles").await, None);
    assert_eq!(
        keys(store, &epoch0, "charles").await,
        strings(&["0"]),
        "only epoch 1 lost charles's copy"
    );
    let readded = push_ok(
        store,
        v2_push(&epoch1, &["charles"], "t1 charles", Some(&h)),
    )
    .await;
    assert_eq!(readded.identities, strings(&["alice", "charles"]));
    pull_copy(
        store,
        &epoch1,
        "charles",
        "t1 charles",
        &["alice", "charles"],
    )
    .await;
    pull_copy(store, &epoch1, "alice", "t1b", &["alice", "charles"]).await;

    // Removing every copy of an entry removes the entry: it can be created afresh.
    for member in ["alice", "charles"] {
        ok(
            "remove copy",
            store
                .keyknox_v2_reset(reset(
                    &app,
                    "alice",
                    Some("group-sessions"),
                    Some(&session),
                    Some("1"),
                    Some(member),
                ))
                .await,
        );
    }
    assert_eq!(pull(store, &epoch1, "alice").await, None);
    assert_eq!(keys(store, &epoch0, "alice").await, strings(&["0"]));
    assert_mismatch(
        "push to a vanished entry with its old hash",
        store
            .keyknox_v2_push(v2_push(&epoch1, &["alice"], "x", Some(&readded.hash)))
            .await,
    );
    push_ok(store, v2_push(&epoch1, &["alice"], "t1 new", None)).await;

    // group.delete: every entry of the session, whoever holds copies.
    ok(
        "delete group",
        store
            .keyknox_v2_reset(reset(
                &app,
                "alice",
                Some("group-sessions"),
                Some(&session),
                None,
                None,
            ))
            .await,
    );
    for reader in ["alice", "bob", "charles"] {
        assert!(keys(store, &epoch0, reader).await.is_empty());
        assert_eq!(pull(store, &epoch0, reader).await, None);
        assert_eq!(pull(store, &epoch1, reader).await, None);
    }
    // And it can be created again without a previous hash (or with the empty hash).
    push_ok(
        store,
        v2_push(&epoch0, &["alice"], "reborn", Some(KEYKNOX_EMPTY_HASH)),
    )
    .await;
}

/// Keyknox v2 push rules and missing data: pulls of missing entries or copies are `None`; an
/// existing entry needs its hash (missing, empty, stale or made-up hashes are refused and change
/// nothing); a new entry accepts no hash or the empty hash only. Identities are deduplicated and
/// returned sorted; a re-push replaces only the listed copies.
pub async fn keyknox_v2_push_rules(store: &dyn Store) {
    let app = app_id("a");
    let at = address(&app, "alice", "e3kit", "backup", "my key");
    assert_eq!(pull(store, &at, "alice").await, None);
    assert_mismatch(
        "made-up hash on a new entry",
        store
            .keyknox_v2_push(v2_push(&at, &["alice"], "x", Some(&hash("made up"))))
            .await,
    );
    assert_eq!(pull(store, &at, "alice").await, None);

    // e3kit `backupPrivateKey(pwd, keyName)`: identities [self].
    let first = push_ok(store, v2_push(&at, &["alice"], "b1", None)).await;
    assert_eq!(first.identities, strings(&["alice"]));
    assert_eq!(pull(store, &at, "bob").await, None, "no copy for bob");

    for (step, previous) in [
        ("no hash on an existing entry", None),
        (
            "the empty hash on an existing entry",
            Some(KEYKNOX_EMPTY_HASH),
        ),
        ("a made-up hash", Some("bm9wZQ==")),
    ] {
        assert_mismatch(
            step,
            store
                .keyknox_v2_push(v2_push(&at, &["alice", "bob"], "bad", previous))
                .await,
        );
    }
    let copy = pull_copy(store, &at, "alice", "b1", &["alice"]).await;
    assert_eq!(copy.hash, first.hash, "refused pushes change nothing");
    assert_eq!(pull(store, &at, "bob").await, None);

    // Duplicates (group.remove sends the owner twice) and unsorted input.
    let second = push_ok(
        store,
        v2_push(
            &at,
            &["zoe", "alice", "bob", "alice", "zoe"],
            "b2",
            Some(&first.hash),
        ),
    )
    .await;
    assert_eq!(second.identities, strings(&["alice", "bob", "zoe"]));
    assert_mismatch(
        "stale hash",
        store
            .keyknox_v2_push(v2_push(&at, &["alice"], "bad", Some(&first.hash)))
            .await,
    );
    // Only the listed copies change.
    let third = push_ok(store, v2_push(&at, &["bob"], "b3", Some(&second.hash))).await;
    assert_eq!(third.identities, strings(&["alice", "bob", "zoe"]));
    pull_copy(store, &at, "alice", "b2", &["alice", "bob", "zoe"]).await;
    pull_copy(store, &at, "bob", "b3", &["alice", "bob", "zoe"]).await;
    pull_copy(store, &at, "zoe", "b2", &["alice", "bob", "zoe"]).await;

    // Delete the own named backup: {root, path, key, identity: self}.
    ok(
        "delete backup",
        store
            .keyknox_v2_reset(reset(
                &app,
                "alice",
                Some("e3kit"),
                Some("backup"),
                Some("my key"),
                Some("alice"),
            ))
            .await,
    );
    assert_eq!(pull(store, &at, "alice").await, None);
    let bob = pull_copy(store, &at, "bob", "b3", &["bob", "zoe"]).await;
    assert_eq!(bob.hash, third.hash);

    // Big meta/value round-trip verbatim.
    let big = address(&app, "alice", "e3kit", "backup", "big");
    let mut push = v2_push(&big, &["alice", "bob"], "big", None);
    push.meta = "TUlJQzRBSUI=".repeat(20_000);
    push.value = "S3FFVXo4eXg+/w==".repeat(50_000);
    let pushed = push_ok(store, push.clone()).await;
    let Some(copy) = pull(store, &big, "bob").await else {
        panic!("no copy of the big entry");
    };
    assert_eq!((copy.meta, copy.value), (push.meta, push.value));
    assert_eq!(copy.hash, pushed.hash);
}

/// Keyknox v2 reset filters: only the caller's entries in the application, narrowed by root,
/// path and key; with an identity only that copy goes; without filters every entry of the
/// caller goes.
pub async fn keyknox_v2_reset_filters(store: &dyn Store) {
    let app = app_id("a");
    let layout = [
        ("e3kit", "backup", "k1"),
        ("e3kit", "backup", "k2"),
        ("e3kit", "other", "k1"),
        ("group-sessions", "s1", "0"),
        ("group-sessions", "s1", "1"),
        ("group-sessions", "s2", "0"),
    ];
    for owner in ["alice", "bob"] {
        for (root, path, key) in layout {
            let at = address(&app, owner, root, path, key);
            push_ok(
                store,
                v2_push(
                    &at,
                    &["alice", "bob"],
                    &format!("{owner} {root} {path} {key}"),
                    None,
                ),
            )
            .await;
        }
    }
    // Same addresses in another application.
    let other_app = app_id("b");
    for (root, path, key) in layout {
        push_ok(
            store,
            v2_push(
                &address(&other_app, "alice", root, path, key),
                &["alice"],
                "other",
                None,
            ),
        )
        .await;
    }

    // Which (owner, root, path, key) entries each reader can still pull in `app`.
    async fn readable(store: &dyn Store, app: &str, reader: &str) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        for owner in ["alice", "bob"] {
            for (root, path) in [
                ("e3kit", "backup"),
                ("e3kit", "other"),
                ("group-sessions", "s1"),
                ("group-sessions", "s2"),
            ] {
                let at = address(app, owner, root, path, "");
                for key in keys(store, &at, reader).await {
                    let at = address(app, owner, root, path, &key);
                    assert!(
                        pull(store, &at, reader).await.is_some(),
                        "keys lists {at:?} but pull finds no copy for {reader}"
                    );
                    found.insert(format!("{owner} {root} {path} {key}"));
                }
            }
        }
        found
    }
    let everything: BTreeSet<String> = ["alice", "bob"]
        .iter()
        .flat_map(|owner| {
            layout
                .iter()
                .map(move |(root, path, key)| format!("{owner} {root} {path} {key}"))
        })
        .collect();
    assert_eq!(readable(store, &app, "alice").await, everything);

    // bob removes alice's copy from bob's group s1 (not from alice's entries).
    ok(
        "remove alice from bob's s1",
        store
            .keyknox_v2_reset(reset(
                &app,
                "bob",
                Some("group-sessions"),
                Some("s1"),
                None,
                Some("alice"),
            ))
            .await,
    );
    let mut expected = everything.clone();
    expected.remove("bob group-sessions s1 0");
    expected.remove("bob group-sessions s1 1");
    assert_eq!(readable(store, &app, "alice").await, expected);
    assert_eq!(readable(store, &app, "bob").await, everything);

    // alice deletes her entries with key k1 under e3kit/backup only.
    ok(
        "delete one key",
        store
            .keyknox_v2_reset(reset(
                &app,
                "alice",
                Some("e3kit"),
                Some("backup"),
                Some("k1"),
                None,
            ))
            .await,
    );
    expected.remove("alice e3kit backup k1");
    let mut bob_expected = everything.clone();
    bob_expected.remove("alice e3kit backup k1");
    assert_eq!(readable(store, &app, "alice").await, expected);
    assert_eq!(readable(store, &app, "bob").await, bob_expected);

    // A path filter without a root, and a key filter alone.
    ok(
        "delete by path",
        store
            .keyknox_v2_reset(reset(&app, "alice", None, Some("s2"), None, None))
            .await,
    );
    expected.remove("alice group-sessions s2 0");
    bob_expected.remove("alice group-sessions s2 0");
    ok(
        "remove bob's copies of key 1",
        store
            .keyknox_v2_reset(reset(&app, "alice", None, None, Some("1"), Some("bob")))
            .await,
    );
    bob_expected.remove("alice group-sessions s1 1");
    assert_eq!(readable(store, &app, "alice").await, expected);
    assert_eq!(readable(store, &app, "bob").await, bob_expected);

    // A whole root.
    ok(
        "delete root",
        store
            .keyknox_v2_reset(reset(&app, "alice", Some("e3kit"), None, None, None))
            .await,
    );
    expected.remove("alice e3kit backup k2");
    expected.remove("alice e3kit other k1");
    bob_expected.remove("alice e3kit backup k2");
    bob_expected.remove("alice e3kit other k1");
    assert_eq!(readable(store, &app, "alice").await, expected);
    assert_eq!(readable(store, &app, "bob").await, bob_expected);

    // Filters that match nothing are fine.
    ok(
        "reset nothing",
        store
            .keyknox_v2_reset(reset(&app, "alice", Some("none"), None, None, Some("bob")))
            .await,
    );
    ok(
        "reset for an unknown owner",
        store
            .keyknox_v2_reset(reset(&app, "nobody", None, None, None, None))
            .await,
    );

    // Everything of alice, no filter.
    ok(
        "delete all of alice",
        store
            .keyknox_v2_reset(reset(&app, "alice", None, None, None, None))
            .await,
    );
    let bob_left: BTreeSet<String> = bob_expected
        .iter()
        .filter(|e| e.starts_with("bob "))
        .cloned()
        .collect();
    assert_eq!(readable(store, &app, "bob").await, bob_left);
    let alice_left: BTreeSet<String> = expected
        .iter()
        .filter(|e| e.starts_with("bob "))
        .cloned()
        .collect();
    assert_eq!(readable(store, &app, "alice").await, alice_left);

    // The other application was never touched.
    for (root, path, key) in layout {
        let at = address(&other_app, "alice", root, path, key);
        pull_copy(store, &at, "alice", "other", &["alice"]).await;
    }
}

/// Keyknox v2 isolation: one address in two applications and under two owners are four entries,
/// with separate hashes, copies, keys and resets.
pub async fn keyknox_v2_isolation(store: &dyn Store) {
    let (a, b) = (app_id("a"), app_id("b"));
    let entries = [
        address(&a, "alice", "group-sessions", "s", "0"),
        address(&a, "bob", "group-sessions", "s", "0"),
        address(&b, "alice", "group-sessions", "s", "0"),
        address(&b, "bob", "group-sessions", "s", "0"),
    ];
    let mut hashes = Vec::new();
    for (i, at) in entries.iter().enumerate() {
        let copy = push_ok(
            store,
            v2_push(at, &["alice", "bob"], &format!("entry {i}"), None),
        )
        .await;
        hashes.push(copy.hash);
    }
    for (i, at) in entries.iter().enumerate() {
        let copy = pull_copy(store, at, "bob", &format!("entry {i}"), &["alice", "bob"]).await;
        assert_eq!(copy.hash, hashes[i]);
        // Another entry's hash does not unlock this one.
        assert_mismatch(
            "another entry's hash",
            store
                .keyknox_v2_push(v2_push(at, &["carol"], "x", Some(&hashes[(i + 1) % 4])))
                .await,
        );
    }
    // alice removes bob from her entry in app a only.
    ok(
        "remove bob",
        store
            .keyknox_v2_reset(reset(&a, "alice", None, None, None, Some("bob")))
            .await,
    );
    assert!(keys(store, &entries[0], "bob").await.is_empty());
    for at in &entries[1..] {
        assert_eq!(keys(store, at, "bob").await, strings(&["0"]), "{at:?}");
    }
    // bob deletes everything he owns in app b.
    ok(
        "bob deletes his entries in b",
        store
            .keyknox_v2_reset(reset(&b, "bob", None, None, None, None))
            .await,
    );
    assert_eq!(pull(store, &entries[3], "bob").await, None);
    pull_copy(store, &entries[0], "alice", "entry 0", &["alice"]).await;
    pull_copy(store, &entries[1], "alice", "entry 1", &["alice", "bob"]).await;
    pull_copy(store, &entries[2], "alice", "entry 2", &["alice", "bob"]).await;
    // keys filters by owner, root and path exactly.
    let alice_a = &entries[0];
    let wrong_root = address(&a, "alice", "group-session", "s", "");
    let wrong_path = address(&a, "alice", "group-sessions", "S", "");
    assert_eq!(keys(store, alice_a, "alice").await, strings(&["0"]));
    assert!(keys(store, &wrong_root, "alice").await.is_empty());
    assert!(keys(store, &wrong_path, "alice").await.is_empty());
}

/// Keyknox v2 with non-ASCII owners, recipients and addresses: stored and compared exactly;
/// holders come back sorted in Rust's (byte) order whatever the database collation.
pub async fn keyknox_v2_non_ascii(store: &dyn Store) {
    let app = app_id("a");
    let at = address(&app, "Jürgen-ö", "группа", "路径", "ключ 😀");
    let recipients = [
        "用户",
        "😀 emoji",
        "Jürgen-ö",
        "a'b\"c;--",
        "Ωmega",
        "zeta",
        "Zeta",
    ];
    let copy = push_ok(store, v2_push(&at, &recipients, "u", None)).await;
    let mut sorted: Vec<String> = strings(&recipients);
    sorted.sort();
    assert_eq!(copy.identities, sorted);
    for reader in recipients {
        let pulled = pull_copy(
            store,
            &at,
            reader,
            "u",
            &sorted.iter().map(String::as_str).collect::<Vec<_>>(),
        )
        .await;
        assert_eq!(pulled.hash, copy.hash);
        assert_eq!(keys(store, &at, reader).await, strings(&["ключ 😀"]));
    }
    for near_miss in ["Ju\u{308}rgen-ö", "jürgen-ö", "zeta "] {
        assert_eq!(pull(store, &at, near_miss).await, None, "{near_miss:?}");
    }
    let other_owner = address(&app, "Jurgen-o", "группа", "路径", "ключ 😀");
    assert_eq!(pull(store, &other_owner, "用户").await, None);
    ok(
        "remove 用户",
        store
            .keyknox_v2_reset(reset(
                &app,
                "Jürgen-ö",
                Some("группа"),
                None,
                None,
                Some("用户"),
            ))
            .await,
    );
    assert_eq!(pull(store, &at, "用户").await, None);
    assert!(keys(store, &at, "用户").await.is_empty());
    let left = pull(store, &at, "Ωmega").await;
    assert_eq!(left.map(|c| c.identities.len()), Some(recipients.len() - 1));
}

/// A group of 100 identities (e3kit's maximum): everyone reads their own copy and sees all
/// 100; half are removed one by one; the rest still see the right list.
pub async fn keyknox_v2_hundred_identities(store: &dyn Store) {
    let app = app_id("a");
    let at = address(
        &app,
        "user-000",
        "group-sessions",
        &hex_id("big group", 64),
        "0",
    );
    let members: Vec<String> = (0..100).map(|i| format!("user-{i:03}")).collect();
    let mut push = v2_push(&at, &[], "g", None);
    push.identities = members.iter().rev().cloned().collect();
    let created = push_ok(store, push).await;
    assert_eq!(created.identities, members);
    for member in &members {
        let copy = pull(store, &at, member).await;
        assert_eq!(
            copy.as_ref()
                .map(|c| (&c.identities, &c.hash, c.value.as_str())),
            Some((&members, &created.hash, "value g")),
            "{member}"
        );
        assert_eq!(keys(store, &at, member).await, strings(&["0"]));
    }
    for member in members.iter().skip(1).step_by(2) {
        ok(
            "remove member",
            store
                .keyknox_v2_reset(reset(&app, "user-000", None, None, None, Some(member)))
                .await,
        );
    }
    let kept: Vec<String> = members.iter().step_by(2).cloned().collect();
    for (i, member) in members.iter().enumerate() {
        let copy = pull(store, &at, member).await;
        if i % 2 == 0 {
            assert_eq!(
                copy.map(|c| (c.identities, c.hash)),
                Some((kept.clone(), created.hash.clone()))
            );
        } else {
            assert_eq!(copy, None, "{member}");
            assert!(keys(store, &at, member).await.is_empty());
        }
    }
}

/// 20 concurrent v2 pushes with the same previous hash (creations without a hash, then updates
/// with the current hash): exactly one wins, and every holder reads the winner's copy and hash.
pub async fn keyknox_v2_concurrent_pushes(store: &dyn Store) {
    let app = app_id("a");
    warm_up(store, &app).await;
    for round in 0..RACE_ROUNDS {
        let at = address(
            &app,
            "alice",
            "group-sessions",
            &format!("race {round}"),
            "0",
        );
        let mut previous: Option<String> = (round % 2 == 1).then(|| KEYKNOX_EMPTY_HASH.to_owned());
        let mut holders = BTreeSet::from(["alice".to_owned()]);
        for step in 0..3 {
            let labels: Vec<String> = (0..20).map(|i| format!("{round} {step} {i}")).collect();
            let pushes: Vec<KeyknoxV2Push> = labels
                .iter()
                .enumerate()
                .map(|(i, label)| {
                    let member = format!("member-{i}");
                    v2_push(&at, &["alice", &member], label, previous.as_deref())
                })
                .collect();
            let results = join_all(pushes.iter().map(|p| store.keyknox_v2_push(p.clone()))).await;
            let won = cas_winners("concurrent v2 push", &results);
            assert_eq!(won.len(), 1, "exactly one concurrent v2 push wins: {won:?}");
            let winner = won[0];
            let label = &labels[winner];
            let Some(copy) = pull(store, &at, "alice").await else {
                panic!("alice has no copy after the race");
            };
            assert_eq!(copy.value, format!("value {label}"));
            assert_eq!(copy.meta, format!("meta {label}"));
            assert_eq!(copy.hash, hash(label), "the winner's hash");
            // Losers wrote no copies: the holders are alice and the winners so far.
            holders.insert(format!("member-{winner}"));
            let expected: Vec<String> = holders.iter().cloned().collect();
            assert_eq!(copy.identities, expected, "round {round} step {step}");
            if let Ok(pushed) = &results[winner] {
                assert_eq!(pushed.identities, expected);
            }
            previous = Some(copy.hash);
        }
    }
}

/// The per-owner quota counts each pushed blob once, whatever the number of its recipients;
/// replaced and reset blobs stop counting; a refused push changes nothing; other owners and
/// applications have quotas of their own.
pub async fn keyknox_v2_quota(store: &dyn Store) {
    const KIB: usize = 1024;
    let quota = 10 * KIB as u64;
    let app = app_id("keyknox-quota");
    let recipients: Vec<String> = (0..200).map(|i| format!("member-{i}")).collect();
    let mut listed: Vec<&str> = recipients.iter().map(String::as_str).collect();
    listed.push("alice");
    let first = address(&app, "alice", "group-sessions", "quota", "0");
    let second = address(&app, "alice", "group-sessions", "quota", "1");
    // 4 KiB for 201 recipients: 4 KiB of the quota, not 804 KiB.
    let pushed = push_ok(
        store,
        sized_push(&first, &listed, "q0", None, (4 * KIB, quota)),
    )
    .await;
    assert_eq!(pushed.identities.len(), 201);
    let pushed = push_ok(
        store,
        sized_push(&second, &listed, "q1", None, (4 * KIB, quota)),
    )
    .await;
    // A third 4 KiB blob would make 12 KiB: refused, and nothing of it is stored.
    let third = address(&app, "alice", "group-sessions", "quota", "2");
    assert_over_quota(
        "push over the quota",
        store
            .keyknox_v2_push(sized_push(&third, &["alice"], "q2", None, (4 * KIB, quota)))
            .await,
        12 * KIB as u64,
        quota,
    );
    assert!(pull(store, &third, "alice").await.is_none());
    // A refused update keeps the entry as it was (content and hash).
    assert_over_quota(
        "update over the quota",
        store
            .keyknox_v2_push(sized_push(
                &second,
                &["bob"],
                "q1 bigger",
                Some(&pushed.hash),
                (7 * KIB, quota),
            ))
            .await,
        (4 + 4 + 7) as u64 * KIB as u64,
        quota,
    );
    let Some(kept) = pull(store, &second, "member-7").await else {
        panic!("the refused update removed member-7's copy");
    };
    assert_eq!(
        (kept.meta.as_str(), &kept.hash, &kept.identities),
        ("meta q1", &pushed.hash, &listed_sorted(&listed)),
        "a refused update keeps the entry as it was"
    );
    assert!(pull(store, &second, "bob").await.is_none());
    // Replacing a blob for every recipient frees the old one: many rewrites fit.
    let mut previous = pushed.hash;
    for round in 0..5 {
        let label = format!("q1 round {round}");
        previous = push_ok(
            store,
            sized_push(&second, &listed, &label, Some(&previous), (4 * KIB, quota)),
        )
        .await
        .hash;
    }
    // Exactly the quota is allowed.
    push_ok(
        store,
        sized_push(&third, &["alice"], "q2 fits", None, (2 * KIB, quota)),
    )
    .await;
    // Other owners and applications do not share alice's quota.
    let bobs = address(&app, "bob", "group-sessions", "quota", "0");
    push_ok(
        store,
        sized_push(&bobs, &["bob"], "bob", None, (8 * KIB, quota)),
    )
    .await;
    let elsewhere = address(&app_id("keyknox-quota-2"), "alice", "e3kit", "backup", "k");
    push_ok(
        store,
        sized_push(&elsewhere, &["alice"], "other app", None, (8 * KIB, quota)),
    )
    .await;
    // Removing every copy of an entry (a reset by identity) frees its blob.
    for identity in &listed {
        ok(
            "reset a copy",
            store
                .keyknox_v2_reset(KeyknoxV2Reset {
                    app_id: app.clone(),
                    owner: "alice".to_owned(),
                    root: Some("group-sessions".to_owned()),
                    path: Some("quota".to_owned()),
                    key: Some("0".to_owned()),
                    identity: Some((*identity).to_owned()),
                })
                .await,
        );
    }
    assert!(pull(store, &first, "alice").await.is_none());
    push_ok(
        store,
        sized_push(&first, &["alice"], "q0 again", None, (4 * KIB, quota)),
    )
    .await;
}

/// Concurrent pushes of one owner to different entries never take it over its quota together.
pub async fn keyknox_v2_concurrent_quota(store: &dyn Store) {
    const BLOB: usize = 1000;
    let quota = 5 * BLOB as u64;
    let app = app_id("keyknox-quota-race");
    warm_up(store, &app).await;
    for round in 0..RACE_ROUNDS {
        let owner = format!("owner-{round}");
        let pushes: Vec<KeyknoxV2Push> = (0..12)
            .map(|i| {
                let at = address(&app, &owner, "race", "quota", &i.to_string());
                sized_push(&at, &[&owner], &format!("r{i}"), None, (BLOB, quota))
            })
            .collect();
        let results = join_all(pushes.iter().map(|p| store.keyknox_v2_push(p.clone()))).await;
        let mut accepted = 0;
        for (i, result) in results.iter().enumerate() {
            match result {
                Ok(_) => accepted += 1,
                Err(StoreError::Conflict(Conflict::KeyknoxQuotaExceeded { used, quota: q })) => {
                    assert_eq!((*used, *q), (6 * BLOB as u64, quota), "push {i}");
                }
                Err(e) => panic!("round {round} push {i}: {e:?}"),
            }
        }
        assert_eq!(
            accepted, 5,
            "round {round}: exactly the quota's worth is accepted"
        );
        let mut stored = 0;
        for i in 0..12 {
            let at = address(&app, &owner, "race", "quota", &i.to_string());
            stored += usize::from(pull(store, &at, &owner).await.is_some());
        }
        assert_eq!(stored, 5, "round {round}: refused pushes left nothing");
    }
}

fn listed_sorted(listed: &[&str]) -> Vec<String> {
    let mut sorted = strings(listed);
    sorted.sort_unstable();
    sorted
}

/// Concurrent Keyknox v1 puts and v2 pushes, split between two replicas, have exactly one
/// winner each, which both replicas then read.
pub(super) async fn replicas_agree_on_keyknox(a: &dyn Store, b: &dyn Store) {
    let handles = [a, b];
    // Keyknox v1: concurrent puts with one previous hash, split between the replicas.
    let keyknox_app = app_id("keyknox");
    let first = ok(
        "v1 put",
        v1_put(a, &keyknox_app, "alice", "replicas initial", None).await,
    );
    let labels: Vec<String> = (0..20).map(|i| format!("replicas v1 {i}")).collect();
    let results = join_all(labels.iter().enumerate().map(|(i, label)| {
        v1_put(
            handles[i % 2],
            &keyknox_app,
            "alice",
            label,
            Some(&first.hash),
        )
    }))
    .await;
    let won = cas_winners("v1 put on two replicas", &results);
    assert_eq!(won.len(), 1, "{won:?}");
    for handle in handles {
        let stored = v1_get(handle, &keyknox_app, "alice").await;
        assert_eq!(
            stored.map(|b| (b.value, b.hash, b.version)),
            Some((
                format!("value {}", labels[won[0]]),
                hash(&labels[won[0]]),
                2
            ))
        );
    }

    // Keyknox v2: concurrent creations, then concurrent updates, split between the replicas.
    let at = address(&keyknox_app, "alice", "group-sessions", "replicas", "0");
    let mut previous: Option<String> = None;
    for step in 0..2 {
        let pushes: Vec<KeyknoxV2Push> = (0..20)
            .map(|i| {
                v2_push(
                    &at,
                    &["alice"],
                    &format!("replicas v2 {step} {i}"),
                    previous.as_deref(),
                )
            })
            .collect();
        let results = join_all(
            pushes
                .iter()
                .enumerate()
                .map(|(i, p)| handles[i % 2].keyknox_v2_push(p.clone())),
        )
        .await;
        let won = cas_winners("v2 push on two replicas", &results);
        assert_eq!(won.len(), 1, "step {step}: {won:?}");
        let winner = &pushes[won[0]];
        for handle in handles {
            let copy = pull(handle, &at, "alice").await;
            assert_eq!(
                copy.map(|c| (c.value, c.hash)),
                Some((winner.value.clone(), winner.new_hash.clone()))
            );
        }
        previous = Some(winner.new_hash.clone());
    }
}
