//! The behaviour every [`Store`] backend must show, as one `pub async fn` per behaviour taking
//! `&dyn Store` (each expects an empty store and panics on a violation), and the
//! [`store_conformance_tests!`](crate::store_conformance_tests) macro that turns them into one
//! `#[tokio::test]` each for a backend.
//!
//! A new backend adds one line to its tests: `crate::store_conformance_tests!(factory());`.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::StreamExt;
use sealkit_proto::chat::MAX_MEMBERS;

use super::{
    AppKeyRecord, AppRecord, CardRecord, ChannelRecord, ChatEvent, ChatEventStream,
    ChatMessageRecord, HistoryCursor, KeyknoxAddress, KeyknoxV1, KeyknoxV2Copy, KeyknoxV2Push,
    KeyknoxV2Reset, NewCard, NewChatMessage, Posted, Store, StoreError, StoreResult,
    KEYKNOX_EMPTY_HASH,
};

/// Expands to one `#[tokio::test]` per behaviour of [`crate::store::conformance`].
///
/// `$factory` is an expression, evaluated afresh in every test, whose value is a future of
/// `(store, guard)`: `store` implements [`Store`](crate::store::Store) and is empty; `guard` is
/// dropped after the store and the test (use it to delete a temporary file or schema). The
/// tests run on tokio's multi-threaded runtime, so a guard may use
/// `tokio::task::block_in_place`. The calling crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features.
///
/// ```ignore
/// async fn temp_store() -> (SqliteStore, tempfile::TempDir) { /* ... */ }
/// sealkit_server::store_conformance_tests!(temp_store());
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@each $factory;
            apps_and_keys,
            app_creation_is_atomic,
            settings_first_writer_wins,
            publish_get_search,
            publish_conflicts,
            rotation_chain,
            rotation_rules,
            revoking_head_hides_chain,
            revoking_predecessor_cuts_chain,
            revoke_card_rules,
            unregister_then_register_again,
            cross_app_isolation,
            non_ascii_identities,
            raw_bytes_verbatim,
            concurrent_first_publishes,
            concurrent_rotations,
            concurrent_duplicate_ids,
            search_fifty_identities,
            keyknox_v1_versions_and_hashes,
            keyknox_v1_compare_and_swap,
            keyknox_v1_identities_and_sizes,
            keyknox_v1_concurrent_puts,
            keyknox_v2_group_lifecycle,
            keyknox_v2_push_rules,
            keyknox_v2_reset_filters,
            keyknox_v2_isolation,
            keyknox_v2_non_ascii,
            keyknox_v2_hundred_identities,
            keyknox_v2_concurrent_pushes,
            rate_limit_burst_and_refill,
            rate_limit_concurrent_takes,
            chat_channels_create_and_list,
            chat_membership_rules,
            chat_full_channel,
            chat_post_rules,
            chat_concurrent_posts,
            chat_history_cursors,
            chat_events_delivered,
            chat_concurrent_membership,
        );
    };
    (@each $factory:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, guard) = $factory.await;
                $crate::store::conformance::$name(&store).await;
                drop(store);
                drop(guard);
            }
        )+
    };
}

/// Unwraps a store result, panicking with the step and the error.
fn ok<T>(step: &str, result: StoreResult<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{step}: unexpected error {e:?}"),
    }
}

/// Asserts that `result` is `Err(Conflict(_))`.
fn assert_conflict<T: Debug>(step: &str, result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{step}: expected Conflict, got {other:?}"),
    }
}

/// `n` hex characters derived from `label` (stable within a build).
fn hex_id(label: &str, n: usize) -> String {
    let mut out = String::with_capacity(n + 16);
    let mut round = 0u64;
    while out.len() < n {
        let mut hasher = DefaultHasher::new();
        (label, round).hash(&mut hasher);
        out.push_str(&format!("{:016x}", hasher.finish()));
        round += 1;
    }
    out.truncate(n);
    out
}

/// A 32-hex-character application id.
pub(crate) fn app_id(label: &str) -> String {
    hex_id(&format!("app {label}"), 32)
}

/// A 64-hex-character card id.
fn card_id(label: &str) -> String {
    hex_id(&format!("card {label}"), 64)
}

fn app(label: &str, created_at: i64) -> AppRecord {
    AppRecord {
        app_id: app_id(label),
        name: format!("App {label}"),
        created_at,
    }
}

fn key(key_id: &str, app_id: &str, created_at: i64) -> AppKeyRecord {
    AppKeyRecord {
        key_id: key_id.to_owned(),
        app_id: app_id.to_owned(),
        public_key: format!("public key {key_id}").into_bytes(),
        created_at,
        revoked_at: None,
    }
}

/// Creates an application (with key `key-<label>`) and returns its id.
async fn new_app(store: &dyn Store, label: &str) -> String {
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

/// A card of `identity` in `app_id` whose id derives from `label`.
fn new_card(app_id: &str, identity: &str, label: &str, previous: Option<&str>) -> NewCard {
    NewCard {
        id: card_id(&format!("{app_id} {label}")),
        app_id: app_id.to_owned(),
        identity: identity.to_owned(),
        previous_card_id: previous.map(str::to_owned),
        raw: format!(r#"{{"content_snapshot":"{label}","signatures":[]}}"#).into_bytes(),
        created_at: 1_795_801_646,
    }
}

/// Publishes a card and returns its id.
async fn publish(store: &dyn Store, card: NewCard) -> String {
    let id = card.id.clone();
    ok("publish card", store.publish_card(card).await);
    id
}

/// Searches and returns the ids found, checking that none is returned twice.
async fn search_ids(store: &dyn Store, app_id: &str, identities: &[&str]) -> BTreeSet<String> {
    let identities: Vec<String> = identities.iter().map(|s| (*s).to_owned()).collect();
    let cards = ok("search", store.search_cards(app_id, &identities).await);
    let mut ids = BTreeSet::new();
    for card in &cards {
        assert_eq!(card.app_id, app_id, "search returned another app's card");
        assert!(
            identities.contains(&card.identity),
            "search returned a card of an identity not asked for: {:?}",
            card.identity
        );
        assert!(!card.revoked, "search returned a revoked card");
        assert!(
            ids.insert(card.id.clone()),
            "search returned {} twice",
            card.id
        );
    }
    ids
}

fn set(ids: &[&String]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).clone()).collect()
}

async fn get(store: &dyn Store, app_id: &str, card_id: &str) -> CardRecord {
    match ok("get card", store.get_card(app_id, card_id).await) {
        Some(card) => card,
        None => panic!("card {card_id} not found"),
    }
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

/// Publish, then get and search: fields are stored as given, unknown ids and identities give
/// nothing.
pub async fn publish_get_search(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let card = new_card(&app, "alice", "alice-1", None);
    ok("publish", store.publish_card(card.clone()).await);

    let stored = get(store, &app, &card.id).await;
    assert_eq!(
        stored,
        CardRecord {
            id: card.id.clone(),
            app_id: app.clone(),
            identity: "alice".to_owned(),
            previous_card_id: None,
            superseded_by: None,
            revoked: false,
            raw: card.raw.clone(),
            created_at: card.created_at,
        }
    );
    assert!(!stored.is_outdated());
    assert_eq!(
        ok("get unknown", store.get_card(&app, &card_id("nope")).await),
        None
    );

    let found = ok(
        "search",
        store.search_cards(&app, &["alice".to_owned()]).await,
    );
    assert_eq!(found, vec![stored]);
    assert!(search_ids(store, &app, &["bob"]).await.is_empty());
    assert!(search_ids(store, &app, &[]).await.is_empty());
    // Identities are compared exactly.
    assert!(search_ids(store, &app, &["Alice", "alice "])
        .await
        .is_empty());
    // Asking twice for one identity returns its cards once.
    assert_eq!(
        search_ids(store, &app, &["alice", "bob", "alice"]).await,
        set(&[&card.id])
    );
}

/// Publishing an existing id, or a first card for an identity that has one, is a conflict and
/// changes nothing.
pub async fn publish_conflicts(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let first = publish(store, new_card(&app, "alice", "alice-1", None)).await;

    // Same id again (also when claiming to rotate, and for another identity).
    assert_conflict(
        "same id",
        store
            .publish_card(new_card(&app, "alice", "alice-1", None))
            .await,
    );
    let mut same_id_other_identity = new_card(&app, "bob", "bob-1", None);
    same_id_other_identity.id = first.clone();
    assert_conflict(
        "same id, other identity",
        store.publish_card(same_id_other_identity).await,
    );
    let mut same_id_rotation = new_card(&app, "alice", "alice-2", Some(&first));
    same_id_rotation.id = first.clone();
    assert_conflict(
        "same id as rotation",
        store.publish_card(same_id_rotation).await,
    );

    // A second first card.
    let second = new_card(&app, "alice", "alice-2", None);
    assert_conflict(
        "second first card",
        store.publish_card(second.clone()).await,
    );
    assert_eq!(ok("get", store.get_card(&app, &second.id).await), None);

    let head = get(store, &app, &first).await;
    assert!(
        !head.is_outdated(),
        "failed publishes leave the card current"
    );
    assert_eq!(search_ids(store, &app, &["alice"]).await, set(&[&first]));
}

/// Rotations build a chain; search returns the head and every predecessor, get shows the links.
pub async fn rotation_chain(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let c1 = publish(store, new_card(&app, "alice", "c1", None)).await;
    let c2 = publish(store, new_card(&app, "alice", "c2", Some(&c1))).await;
    let c3 = publish(store, new_card(&app, "alice", "c3", Some(&c2))).await;
    let bob = publish(store, new_card(&app, "bob", "b1", None)).await;

    assert_eq!(
        search_ids(store, &app, &["alice"]).await,
        set(&[&c1, &c2, &c3])
    );
    assert_eq!(
        search_ids(store, &app, &["alice", "bob"]).await,
        set(&[&c1, &c2, &c3, &bob])
    );

    let r1 = get(store, &app, &c1).await;
    let r2 = get(store, &app, &c2).await;
    let r3 = get(store, &app, &c3).await;
    assert_eq!(
        (r1.previous_card_id.as_deref(), r1.superseded_by.as_deref()),
        (None, Some(c2.as_str()))
    );
    assert_eq!(
        (r2.previous_card_id.as_deref(), r2.superseded_by.as_deref()),
        (Some(c1.as_str()), Some(c3.as_str()))
    );
    assert_eq!(
        (r3.previous_card_id.as_deref(), r3.superseded_by.as_deref()),
        (Some(c2.as_str()), None)
    );
    assert!(r1.is_outdated() && r2.is_outdated() && !r3.is_outdated());
    assert!(!r1.revoked && !r2.revoked && !r3.revoked);

    // The search result carries the same records as get.
    let found = ok(
        "search",
        store.search_cards(&app, &["alice".to_owned()]).await,
    );
    for record in [&r1, &r2, &r3] {
        assert!(found.contains(record), "search lacks {record:?}");
    }
}

/// A rotation must name the identity's current card, of the same app and identity.
pub async fn rotation_rules(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let other_app = new_app(store, "b").await;
    let c1 = publish(store, new_card(&app, "alice", "c1", None)).await;
    let c2 = publish(store, new_card(&app, "alice", "c2", Some(&c1))).await;
    let bob = publish(store, new_card(&app, "bob", "b1", None)).await;
    let elsewhere = publish(store, new_card(&other_app, "alice", "x1", None)).await;

    let cases = [
        (
            "superseded previous",
            new_card(&app, "alice", "r1", Some(&c1)),
        ),
        (
            "unknown previous",
            new_card(&app, "alice", "r2", Some(&card_id("nope"))),
        ),
        (
            "another identity's card",
            new_card(&app, "alice", "r3", Some(&bob)),
        ),
        (
            "another app's card",
            new_card(&app, "alice", "r4", Some(&elsewhere)),
        ),
        (
            "previous of another identity, published as it",
            new_card(&app, "bob", "r5", Some(&c2)),
        ),
    ];
    for (step, card) in cases {
        let id = card.id.clone();
        assert_conflict(step, store.publish_card(card).await);
        assert_eq!(
            ok("get rejected", store.get_card(&app, &id).await),
            None,
            "{step}"
        );
    }
    // Nothing changed.
    assert!(!get(store, &app, &c2).await.is_outdated());
    assert!(!get(store, &app, &bob).await.is_outdated());
    assert!(!get(store, &other_app, &elsewhere).await.is_outdated());

    // A revoked card cannot be rotated.
    ok("revoke", store.revoke_card(&app, &bob, "bob").await);
    assert_conflict(
        "revoked previous",
        store
            .publish_card(new_card(&app, "bob", "b2", Some(&bob)))
            .await,
    );
    assert!(search_ids(store, &app, &["bob"]).await.is_empty());
}

/// Revoking the head of a chain hides the whole chain from search; get still shows every card.
pub async fn revoking_head_hides_chain(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let c1 = publish(store, new_card(&app, "alice", "c1", None)).await;
    let c2 = publish(store, new_card(&app, "alice", "c2", Some(&c1))).await;
    let c3 = publish(store, new_card(&app, "alice", "c3", Some(&c2))).await;
    let bob = publish(store, new_card(&app, "bob", "b1", None)).await;

    ok("revoke head", store.revoke_card(&app, &c3, "alice").await);
    assert!(search_ids(store, &app, &["alice"]).await.is_empty());
    assert_eq!(
        search_ids(store, &app, &["alice", "bob"]).await,
        set(&[&bob])
    );
    let head = get(store, &app, &c3).await;
    assert!(head.revoked && head.is_outdated());
    let older = get(store, &app, &c1).await;
    assert!(!older.revoked && older.is_outdated());
}

/// A revoked predecessor ends the chain: it and everything older are not returned.
pub async fn revoking_predecessor_cuts_chain(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let c1 = publish(store, new_card(&app, "alice", "c1", None)).await;
    let c2 = publish(store, new_card(&app, "alice", "c2", Some(&c1))).await;
    let c3 = publish(store, new_card(&app, "alice", "c3", Some(&c2))).await;
    let c4 = publish(store, new_card(&app, "alice", "c4", Some(&c3))).await;

    ok("revoke c2", store.revoke_card(&app, &c2, "alice").await);
    assert_eq!(search_ids(store, &app, &["alice"]).await, set(&[&c3, &c4]));
    // The head is still current and can still rotate.
    let c5 = publish(store, new_card(&app, "alice", "c5", Some(&c4))).await;
    assert_eq!(
        search_ids(store, &app, &["alice"]).await,
        set(&[&c3, &c4, &c5])
    );
}

/// `revoke_card`: only the owner, only in the card's app, and again succeeds.
pub async fn revoke_card_rules(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let other_app = new_app(store, "b").await;
    let c1 = publish(store, new_card(&app, "alice", "c1", None)).await;

    match store.revoke_card(&app, &c1, "bob").await {
        Err(StoreError::Forbidden(_)) => {}
        other => panic!("revoking another identity's card: expected Forbidden, got {other:?}"),
    }
    match store.revoke_card(&other_app, &c1, "alice").await {
        Err(StoreError::NotFound) => {}
        other => panic!("revoking through another app: expected NotFound, got {other:?}"),
    }
    match store.revoke_card(&app, &card_id("nope"), "alice").await {
        Err(StoreError::NotFound) => {}
        other => panic!("revoking an unknown card: expected NotFound, got {other:?}"),
    }
    assert!(
        !get(store, &app, &c1).await.revoked,
        "failed revocations change nothing"
    );

    ok("revoke", store.revoke_card(&app, &c1, "alice").await);
    ok("revoke again", store.revoke_card(&app, &c1, "alice").await);
    assert!(get(store, &app, &c1).await.revoked);
    match store.revoke_card(&app, &c1, "bob").await {
        Err(StoreError::Forbidden(_)) => {}
        other => panic!("revoked card, wrong identity: expected Forbidden, got {other:?}"),
    }
}

/// e3kit `unregister` revokes the head; `register` then publishes a new first card, which
/// search returns alone. This can repeat.
pub async fn unregister_then_register_again(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let c1 = publish(store, new_card(&app, "alice", "c1", None)).await;
    let c2 = publish(store, new_card(&app, "alice", "c2", Some(&c1))).await;

    ok("unregister", store.revoke_card(&app, &c2, "alice").await);
    assert!(search_ids(store, &app, &["alice"]).await.is_empty());
    let n1 = publish(store, new_card(&app, "alice", "n1", None)).await;
    assert_eq!(search_ids(store, &app, &["alice"]).await, set(&[&n1]));
    assert_conflict(
        "another first card",
        store
            .publish_card(new_card(&app, "alice", "n1b", None))
            .await,
    );

    ok(
        "unregister again",
        store.revoke_card(&app, &n1, "alice").await,
    );
    let m1 = publish(store, new_card(&app, "alice", "m1", None)).await;
    let m2 = publish(store, new_card(&app, "alice", "m2", Some(&m1))).await;
    assert_eq!(search_ids(store, &app, &["alice"]).await, set(&[&m1, &m2]));
}

/// One identity in two applications: separate cards, searches, rotations and revocations.
pub async fn cross_app_isolation(store: &dyn Store) {
    let a = new_app(store, "a").await;
    let b = new_app(store, "b").await;
    let a1 = publish(store, new_card(&a, "alice", "1", None)).await;
    let b1 = publish(store, new_card(&b, "alice", "1", None)).await;
    assert_ne!(a1, b1);
    let a2 = publish(store, new_card(&a, "alice", "2", Some(&a1))).await;

    assert_eq!(search_ids(store, &a, &["alice"]).await, set(&[&a1, &a2]));
    assert_eq!(search_ids(store, &b, &["alice"]).await, set(&[&b1]));
    assert_eq!(ok("get across apps", store.get_card(&b, &a1).await), None);
    assert_eq!(ok("get across apps", store.get_card(&a, &b1).await), None);

    ok("revoke in b", store.revoke_card(&b, &b1, "alice").await);
    assert!(search_ids(store, &b, &["alice"]).await.is_empty());
    assert_eq!(search_ids(store, &a, &["alice"]).await, set(&[&a1, &a2]));
    // A first publish in b is allowed again; a's chain is unaffected.
    let b2 = publish(store, new_card(&b, "alice", "2", None)).await;
    assert_eq!(search_ids(store, &b, &["alice"]).await, set(&[&b2]));
    assert!(search_ids(store, &new_app(store, "c").await, &["alice"])
        .await
        .is_empty());
}

/// Identities are arbitrary Unicode, stored and compared exactly.
pub async fn non_ascii_identities(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let identities = ["Jürgen-ö", "用户", "😀 emoji", "Ωmega", "a'b\"c;--"];
    let mut ids = Vec::new();
    for (i, identity) in identities.iter().enumerate() {
        let first = publish(store, new_card(&app, identity, &format!("{i}-1"), None)).await;
        let second = publish(
            store,
            new_card(&app, identity, &format!("{i}-2"), Some(&first)),
        )
        .await;
        assert_eq!(
            search_ids(store, &app, &[identity]).await,
            set(&[&first, &second])
        );
        assert_eq!(get(store, &app, &second).await.identity, *identity);
        ids.push(first);
        ids.push(second);
    }
    let all: Vec<&String> = ids.iter().collect();
    assert_eq!(search_ids(store, &app, &identities).await, set(&all));
    // Other normalisations and cases are other identities.
    assert!(
        search_ids(store, &app, &["Ju\u{308}rgen-ö", "jürgen-ö", "JÜRGEN-Ö"])
            .await
            .is_empty()
    );
    ok("revoke", store.revoke_card(&app, &ids[3], "用户").await);
    assert!(search_ids(store, &app, &["用户"]).await.is_empty());
    match store.revoke_card(&app, &ids[1], "Jurgen-o").await {
        Err(StoreError::Forbidden(_)) => {}
        other => panic!("near-miss identity: expected Forbidden, got {other:?}"),
    }
}

/// The stored card body comes back byte for byte, whatever it contains.
pub async fn raw_bytes_verbatim(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let mut card = new_card(&app, "alice", "raw", None);
    card.raw = (0..=255u8).chain([0, 0, 255]).collect();
    let id = publish(store, card.clone()).await;
    assert_eq!(get(store, &app, &id).await.raw, card.raw);
    let mut big = new_card(&app, "bob", "big", None);
    big.raw = "{\"x\":\"ü\"}".repeat(20_000).into_bytes();
    let big_id = publish(store, big.clone()).await;
    let found = ok(
        "search",
        store.search_cards(&app, &["bob".to_owned()]).await,
    );
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].id, big_id);
    assert_eq!(found[0].raw, big.raw);
}

/// Opens as many pooled connections as the store will use, so that the racing calls that
/// follow really overlap instead of queueing behind connection set-up.
async fn warm_up(store: &dyn Store, app_id: &str) {
    let results = join_all((0..20).map(|_| store.get_card(app_id, "warm-up"))).await;
    for result in results {
        ok("warm-up", result);
    }
}

/// Counts successes and checks that every failure is a `Conflict`.
fn winners(step: &str, results: Vec<StoreResult<()>>) -> Vec<usize> {
    let mut won = Vec::new();
    for (i, result) in results.into_iter().enumerate() {
        match result {
            Ok(()) => won.push(i),
            Err(StoreError::Conflict(_)) => {}
            Err(e) => panic!("{step}: attempt {i} failed with {e:?}, expected Ok or Conflict"),
        }
    }
    won
}

/// Rounds of each race in the concurrency tests: a lost race shows only sometimes.
const RACE_ROUNDS: usize = 5;

/// 20 concurrent first publishes (different cards) for one identity: exactly one wins, the
/// others get `Conflict`, and search returns the winner only (repeated for several identities).
pub async fn concurrent_first_publishes(store: &dyn Store) {
    let app = new_app(store, "a").await;
    warm_up(store, &app).await;
    for round in 0..RACE_ROUNDS {
        let identity = format!("alice-{round}");
        let cards: Vec<NewCard> = (0..20)
            .map(|i| new_card(&app, &identity, &format!("{round} first {i}"), None))
            .collect();
        let results = join_all(cards.iter().map(|c| store.publish_card(c.clone()))).await;
        let won = winners("first publish", results);
        assert_eq!(won.len(), 1, "exactly one first publish wins: {won:?}");
        let winner = &cards[won[0]].id;
        assert_eq!(search_ids(store, &app, &[&identity]).await, set(&[winner]));
        for (i, card) in cards.iter().enumerate() {
            let stored = ok("get", store.get_card(&app, &card.id).await);
            assert_eq!(stored.is_some(), i == won[0], "only the winner is stored");
        }
    }
}

/// 20 concurrent rotations of one card: exactly one wins; the chain is previous → winner
/// (repeated along the chain).
pub async fn concurrent_rotations(store: &dyn Store) {
    let app = new_app(store, "a").await;
    warm_up(store, &app).await;
    let first = publish(store, new_card(&app, "alice", "c1", None)).await;
    let mut chain = vec![first];
    for round in 0..RACE_ROUNDS {
        let previous = chain[chain.len() - 1].clone();
        let cards: Vec<NewCard> = (0..20)
            .map(|i| {
                new_card(
                    &app,
                    "alice",
                    &format!("{round} rotation {i}"),
                    Some(&previous),
                )
            })
            .collect();
        let results = join_all(cards.iter().map(|c| store.publish_card(c.clone()))).await;
        let won = winners("rotation", results);
        assert_eq!(won.len(), 1, "exactly one rotation wins: {won:?}");
        let winner = cards[won[0]].id.clone();
        assert_eq!(
            get(store, &app, &previous).await.superseded_by.as_ref(),
            Some(&winner)
        );
        for (i, card) in cards.iter().enumerate() {
            let stored = ok("get", store.get_card(&app, &card.id).await);
            assert_eq!(stored.is_some(), i == won[0], "only the winner is stored");
        }
        chain.push(winner);
        let expected: Vec<&String> = chain.iter().collect();
        assert_eq!(search_ids(store, &app, &["alice"]).await, set(&expected));
    }
}

/// The same card published by 10 concurrent requests (identical retries): one `Ok`, the others
/// `Conflict`.
pub async fn concurrent_duplicate_ids(store: &dyn Store) {
    let app = new_app(store, "a").await;
    warm_up(store, &app).await;
    let c1 = publish(store, new_card(&app, "alice", "c1", None)).await;
    let rotation = new_card(&app, "alice", "c2", Some(&c1));
    let first = new_card(&app, "bob", "b1", None);
    let results = join_all((0..10).map(|_| store.publish_card(rotation.clone()))).await;
    assert_eq!(winners("duplicate rotation", results).len(), 1);
    let results = join_all((0..10).map(|_| store.publish_card(first.clone()))).await;
    assert_eq!(winners("duplicate first publish", results).len(), 1);
    assert_eq!(
        search_ids(store, &app, &["alice", "bob"]).await,
        set(&[&c1, &rotation.id, &first.id])
    );
}

/// A search for 50 identities (e3kit's `findUsers` chunk), mixing unknown, rotated, revoked
/// and other-app identities, returns exactly the expected cards; single-identity searches agree.
pub async fn search_fifty_identities(store: &dyn Store) {
    let app = new_app(store, "a").await;
    let other = new_app(store, "b").await;
    let mut expected: Vec<(String, BTreeSet<String>)> = Vec::new();
    for i in 0..50 {
        let identity = format!("user-{i:02}");
        let mut ids = BTreeSet::new();
        if i % 10 == 9 {
            // Unknown here, known in the other app.
            publish(store, new_card(&other, &identity, &format!("{i} o"), None)).await;
            expected.push((identity, ids));
            continue;
        }
        let c1 = publish(store, new_card(&app, &identity, &format!("{i} 1"), None)).await;
        ids.insert(c1.clone());
        let mut head = c1;
        if i % 2 == 0 {
            let c2 = publish(
                store,
                new_card(&app, &identity, &format!("{i} 2"), Some(&head)),
            )
            .await;
            ids.insert(c2.clone());
            head = c2;
            if i % 4 == 0 {
                let c3 = publish(
                    store,
                    new_card(&app, &identity, &format!("{i} 3"), Some(&head)),
                )
                .await;
                ids.insert(c3.clone());
                head = c3;
            }
        }
        if i % 7 == 3 {
            // Unregistered: the head revoked, nothing returned.
            ok(
                "revoke head",
                store.revoke_card(&app, &head, &identity).await,
            );
            ids.clear();
        }
        expected.push((identity, ids));
    }

    let identities: Vec<&str> = expected.iter().map(|(id, _)| id.as_str()).collect();
    let all: BTreeSet<String> = expected.iter().flat_map(|(_, ids)| ids.clone()).collect();
    assert_eq!(search_ids(store, &app, &identities).await, all);
    assert!(all.len() > 50, "the fixture has chains: {}", all.len());

    let found = ok(
        "search all",
        store
            .search_cards(
                &app,
                &identities
                    .iter()
                    .map(|s| (*s).to_owned())
                    .collect::<Vec<_>>(),
            )
            .await,
    );
    let seen: HashSet<&str> = found.iter().map(|c| c.identity.as_str()).collect();
    for (identity, ids) in &expected {
        assert_eq!(
            seen.contains(identity.as_str()),
            !ids.is_empty(),
            "{identity}"
        );
        assert_eq!(
            &search_ids(store, &app, &[identity]).await,
            ids,
            "{identity}"
        );
    }

    // More identities than e3kit's chunk (lookupPublicKeys does not chunk), with unknown ones.
    let many: Vec<String> = (0..1200).map(|i| format!("user-{i:02}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    assert_eq!(search_ids(store, &app, &many).await, all);
}

/// Two handles on one database (two server processes): concurrent first publishes, rotations,
/// settings, Keyknox v1 puts and v2 pushes split between them still have exactly one winner
/// each, and a rate-limit bucket is shared. Backends call this with
/// two independently opened stores on the same, empty database.
pub async fn replicas_agree(a: &dyn Store, b: &dyn Store) {
    let app = new_app(a, "a").await;
    let handles = [a, b];
    warm_up(a, &app).await;
    warm_up(b, &app).await;

    let cards: Vec<NewCard> = (0..20)
        .map(|i| new_card(&app, "alice", &format!("first {i}"), None))
        .collect();
    let results = join_all(
        cards
            .iter()
            .enumerate()
            .map(|(i, c)| handles[i % 2].publish_card(c.clone())),
    )
    .await;
    let won = winners("first publish on two replicas", results);
    assert_eq!(won.len(), 1, "{won:?}");
    let head = cards[won[0]].id.clone();

    let rotations: Vec<NewCard> = (0..20)
        .map(|i| new_card(&app, "alice", &format!("rotation {i}"), Some(&head)))
        .collect();
    let results = join_all(
        rotations
            .iter()
            .enumerate()
            .map(|(i, c)| handles[i % 2].publish_card(c.clone())),
    )
    .await;
    let won = winners("rotation on two replicas", results);
    assert_eq!(won.len(), 1, "{won:?}");
    let new_head = &rotations[won[0]].id;
    for handle in handles {
        assert_eq!(
            search_ids(handle, &app, &["alice"]).await,
            set(&[&head, new_head])
        );
    }

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
    let won: Vec<usize> = results
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Ok(_) => Some(i),
            Err(StoreError::Conflict("keyknox hash mismatch")) => None,
            Err(e) => panic!("v1 put on two replicas: {e:?}"),
        })
        .collect();
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
        let won: Vec<usize> = results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| match r {
                Ok(_) => Some(i),
                Err(StoreError::Conflict("keyknox hash mismatch")) => None,
                Err(e) => panic!("v2 push on two replicas: {e:?}"),
            })
            .collect();
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

    // Rate limits: one bucket shared by both replicas.
    let results = join_all(
        (0..20).map(|i| handles[i % 2].rate_limit_take("replicas", 1_800_000_000_000, 5, 0.001)),
    )
    .await;
    let taken = results
        .into_iter()
        .map(|r| ok("take on two replicas", r))
        .filter(|t| *t)
        .count();
    assert_eq!(taken, 5);
}

// ---------------------------------------------------------------------------------------------
// Keyknox and rate limits
// ---------------------------------------------------------------------------------------------

/// Asserts that `result` is the Keyknox compare-and-swap conflict.
fn assert_mismatch<T: Debug>(step: &str, result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict("keyknox hash mismatch")) => {}
        other => panic!("{step}: expected Conflict(\"keyknox hash mismatch\"), got {other:?}"),
    }
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
            let mut won = Vec::new();
            for (i, result) in results.iter().enumerate() {
                match result {
                    Ok(_) => won.push(i),
                    Err(StoreError::Conflict("keyknox hash mismatch")) => {}
                    Err(e) => panic!("concurrent v1 put {i}: {e:?}"),
                }
            }
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
            let mut won = Vec::new();
            for (i, result) in results.iter().enumerate() {
                match result {
                    Ok(_) => won.push(i),
                    Err(StoreError::Conflict("keyknox hash mismatch")) => {}
                    Err(e) => panic!("concurrent v2 push {i}: {e:?}"),
                }
            }
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

/// Token buckets: a full bucket serves `burst` takes, then refuses; tokens come back with time
/// (fractions add up, the bucket never holds more than `burst`, a clock running backwards adds
/// nothing); buckets are independent.
pub async fn rate_limit_burst_and_refill(store: &dyn Store) {
    let take = |key: &'static str, now_ms: i64| store.rate_limit_take(key, now_ms, 3, 0.5);
    let t0: i64 = 1_800_000_000_000;
    for i in 0..3 {
        assert!(ok("take", take("alice", t0).await), "take {i} of the burst");
    }
    assert!(!ok("take", take("alice", t0).await), "burst exhausted");
    assert!(
        !ok("take", take("alice", t0 + 1_000).await),
        "half a token is not enough"
    );
    assert!(
        ok("take", take("alice", t0 + 2_000).await),
        "two halves make a token"
    );
    assert!(!ok("take", take("alice", t0 + 2_000).await));
    // A clock running backwards (another replica) neither refills nor breaks the bucket.
    assert!(!ok("take", take("alice", t0 - 60_000).await));
    assert!(!ok("take", take("alice", t0 + 3_000).await));
    assert!(ok("take", take("alice", t0 + 4_000).await));
    // Other keys have their own bucket.
    assert!(ok("take", take("bob", t0 + 4_000).await));
    // A long pause refills up to the burst, not beyond.
    let later = t0 + 3_600_000;
    for i in 0..3 {
        assert!(
            ok("take", take("alice", later).await),
            "take {i} after a pause"
        );
    }
    assert!(!ok("take", take("alice", later).await));
    // Other rates and bursts; a burst of 0 never serves.
    assert!(ok(
        "fast",
        store.rate_limit_take("carol", t0, 1, 10.0).await
    ));
    assert!(!ok(
        "fast",
        store.rate_limit_take("carol", t0 + 50, 1, 10.0).await
    ));
    assert!(ok(
        "fast",
        store.rate_limit_take("carol", t0 + 100, 1, 10.0).await
    ));
    assert!(!ok(
        "zero",
        store.rate_limit_take("dave", t0, 0, 10.0).await
    ));
    assert!(!ok(
        "zero",
        store.rate_limit_take("dave", later, 0, 10.0).await
    ));
    // Non-ASCII keys are keys like any other.
    assert!(ok(
        "unicode",
        store.rate_limit_take("用户 😀", t0, 1, 0.001).await
    ));
    assert!(!ok(
        "unicode",
        store.rate_limit_take("用户 😀", t0 + 1, 1, 0.001).await
    ));
    assert!(ok(
        "unicode",
        store.rate_limit_take("用户", t0, 1, 0.001).await
    ));
}

/// 20 concurrent takes on a bucket of 5 (no refill in between): exactly 5 succeed, on a new
/// bucket and on an existing one.
pub async fn rate_limit_concurrent_takes(store: &dyn Store) {
    warm_up(store, &app_id("none")).await;
    let t0: i64 = 1_800_000_000_000;
    for round in 0..RACE_ROUNDS {
        let key = format!("bucket {round}");
        // The second step comes late enough for the bucket to be full again.
        for (step, now_ms) in [(0, t0), (1, t0 + 10_000_000)] {
            let results =
                join_all((0..20).map(|_| store.rate_limit_take(&key, now_ms, 5, 0.001))).await;
            let taken = results
                .into_iter()
                .map(|r| ok("concurrent take", r))
                .filter(|taken| *taken)
                .count();
            assert_eq!(
                taken, 5,
                "round {round} step {step}: exactly the burst is served"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Chat
// ---------------------------------------------------------------------------------------------

/// How long a test waits for a chat event before calling the event path broken.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn strings_of(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// A group channel created by `creator` (its only admin) with `others` as further members.
pub(crate) fn group(app_id: &str, id: &str, creator: &str, others: &[&str]) -> ChannelRecord {
    ChannelRecord {
        app_id: app_id.to_owned(),
        id: id.to_owned(),
        kind: "group".to_owned(),
        open: false,
        created_by: creator.to_owned(),
        created_at_ms: 1_800_000_000_123,
        admins: strings_of(&[creator]),
        members: strings_of(others),
        member_version: 1,
        last_seq: 0,
    }
}

pub(crate) fn chat_message(
    app_id: &str,
    channel_id: &str,
    sender: &str,
    client_id: &str,
    member_version: i64,
) -> NewChatMessage {
    NewChatMessage {
        app_id: app_id.to_owned(),
        channel_id: channel_id.to_owned(),
        sender: sender.to_owned(),
        client_id: client_id.to_owned(),
        ciphertext: format!("ciphertext {sender} {client_id}\0\u{ff}").into_bytes(),
        member_version,
        sent_at_ms: 1_800_000_000_000 + client_id.len() as i64,
    }
}

/// Posts and expects a new message; returns it.
pub(crate) async fn post_new(store: &dyn Store, message: NewChatMessage) -> ChatMessageRecord {
    let step = format!("post {} by {}", message.client_id, message.sender);
    match ok(&step, store.chat_post(message).await) {
        Posted::New(stored) => stored,
        other => panic!("{step}: expected a new message, got {other:?}"),
    }
}

async fn channel_of(store: &dyn Store, app_id: &str, channel_id: &str) -> ChannelRecord {
    match ok("read channel", store.chat_channel(app_id, channel_id).await) {
        Some(channel) => channel,
        None => panic!("channel {channel_id} missing"),
    }
}

async fn seqs(
    store: &dyn Store,
    app_id: &str,
    channel_id: &str,
    cursor: HistoryCursor,
    limit: u32,
) -> Vec<i64> {
    ok(
        "history",
        store.chat_history(app_id, channel_id, cursor, limit).await,
    )
    .iter()
    .map(|m| m.seq)
    .collect()
}

/// The next event of `app_id` (others' are skipped), or a panic after [`EVENT_TIMEOUT`].
pub(crate) async fn next_event(events: &mut ChatEventStream, app_id: &str) -> ChatEvent {
    loop {
        let event = match tokio::time::timeout(EVENT_TIMEOUT, events.next()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the chat event stream ended"),
            Err(_) => panic!("no chat event within {EVENT_TIMEOUT:?}"),
        };
        match &event {
            ChatEvent::Message { app_id: a, .. } | ChatEvent::Members { app_id: a, .. }
                if a != app_id => {}
            _ => return event,
        }
    }
}

pub(crate) fn message_event(app_id: &str, channel_id: &str, seq: i64) -> ChatEvent {
    ChatEvent::Message {
        app_id: app_id.to_owned(),
        channel_id: channel_id.to_owned(),
        seq,
    }
}

fn members_event(app_id: &str, channel_id: &str, member_version: i64) -> ChatEvent {
    ChatEvent::Members {
        app_id: app_id.to_owned(),
        channel_id: channel_id.to_owned(),
        member_version,
    }
}

/// Creating, reading and listing channels: versions start at 1 and 0 whatever the caller
/// passes, members and admins come back sorted by Rust's string order (not the database's
/// collation), ids are unique per application and applications are isolated.
pub async fn chat_channels_create_and_list(store: &dyn Store) {
    let app = app_id("chat channels");
    let other_app = app_id("chat channels other");
    assert_eq!(
        ok("unknown channel", store.chat_channel(&app, "general").await),
        None
    );
    let mut general = group(
        &app,
        "general",
        "alice",
        &["zed", "Zoe", "bob", "ärger", "alice"],
    );
    general.open = true;
    general.member_version = 7;
    general.last_seq = 9;
    ok("create", store.chat_create_channel(general.clone()).await);
    let stored = channel_of(store, &app, "general").await;
    let mut expected = general.clone();
    expected.members = strings_of(&["Zoe", "alice", "bob", "zed", "ärger"]);
    expected.member_version = 1;
    expected.last_seq = 0;
    assert_eq!(stored, expected);

    let mut clash = group(&app, "general", "mallory", &[]);
    clash.kind = "direct".to_owned();
    assert!(matches!(
        store.chat_create_channel(clash).await,
        Err(StoreError::Conflict("channel exists"))
    ));
    assert_eq!(channel_of(store, &app, "general").await, expected);

    let mut direct = group(&app, "dm:alice:bob", "alice", &["bob"]);
    direct.kind = "direct".to_owned();
    direct.admins = strings_of(&["alice", "bob"]);
    ok("create direct", store.chat_create_channel(direct).await);
    ok(
        "create empty-ish",
        store
            .chat_create_channel(group(&app, "a-solo", "carol", &[]))
            .await,
    );
    // The same id in another application is another channel.
    ok(
        "create in other app",
        store
            .chat_create_channel(group(&other_app, "general", "alice", &["dave"]))
            .await,
    );

    let ids = |channels: Vec<ChannelRecord>| -> Vec<String> {
        channels.into_iter().map(|c| c.id).collect()
    };
    assert_eq!(
        ids(ok("alice's", store.chat_channels_of(&app, "alice").await)),
        strings_of(&["dm:alice:bob", "general"])
    );
    let bobs = ok("bob's", store.chat_channels_of(&app, "bob").await);
    assert_eq!(bobs.len(), 2);
    assert_eq!(bobs[0].admins, strings_of(&["alice", "bob"]));
    assert_eq!(bobs[0].kind, "direct");
    assert_eq!(bobs[1], expected);
    assert_eq!(
        ids(ok("carol's", store.chat_channels_of(&app, "carol").await)),
        strings_of(&["a-solo"])
    );
    assert!(ok("nobody's", store.chat_channels_of(&app, "nobody").await).is_empty());
    assert!(ok("dave here", store.chat_channels_of(&app, "dave").await).is_empty());
    let elsewhere = ok(
        "alice elsewhere",
        store.chat_channels_of(&other_app, "alice").await,
    );
    assert_eq!(elsewhere.len(), 1);
    assert_eq!(elsewhere[0].members, strings_of(&["alice", "dave"]));
    assert_eq!(elsewhere[0].app_id, other_app);
    assert_eq!(
        ok(
            "missing app",
            store.chat_channel(&app_id("none"), "general").await
        ),
        None
    );
}

/// Adding and removing members: versions move only on real changes, admins are kept, the last
/// admin cannot leave others behind, but may leave an otherwise empty channel.
pub async fn chat_membership_rules(store: &dyn Store) {
    let app = app_id("chat membership");
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob"]))
            .await,
    );
    let add =
        |identity: &'static str, admin: bool| store.chat_add_member(&app, "g", identity, admin);

    let after = ok("add carol", add("carol", false).await);
    assert_eq!(after.member_version, 2);
    assert_eq!(after.members, strings_of(&["alice", "bob", "carol"]));
    assert_eq!(after.admins, strings_of(&["alice"]));
    assert_eq!(after, channel_of(store, &app, "g").await);

    let again = ok("add carol again", add("carol", false).await);
    assert_eq!(again, after, "re-adding a member changes nothing");
    let promoted = ok("promote carol", add("carol", true).await);
    assert_eq!(promoted.member_version, 3);
    assert_eq!(promoted.admins, strings_of(&["alice", "carol"]));
    let still = ok("add admin alice as member", add("alice", false).await);
    assert_eq!(
        still, promoted,
        "adding an admin as member neither demotes nor bumps"
    );
    let dave = ok("add dave as admin", add("dave", true).await);
    assert_eq!(dave.member_version, 4);
    assert_eq!(dave.admins, strings_of(&["alice", "carol", "dave"]));

    assert!(matches!(
        store.chat_add_member(&app, "nope", "x", false).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .chat_add_member(&app_id("other"), "g", "x", false)
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.chat_remove_member(&app, "nope", "alice").await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.chat_remove_member(&app, "g", "erin").await,
        Err(StoreError::NotFound)
    ));

    // Admins may leave while another admin stays.
    let removed = ok(
        "remove carol",
        store.chat_remove_member(&app, "g", "carol").await,
    );
    assert_eq!(removed.member_version, 5);
    assert_eq!(removed.members, strings_of(&["alice", "bob", "dave"]));
    assert_eq!(removed.admins, strings_of(&["alice", "dave"]));
    let removed = ok(
        "remove dave",
        store.chat_remove_member(&app, "g", "dave").await,
    );
    assert_eq!(removed.member_version, 6);
    assert_eq!(removed.admins, strings_of(&["alice"]));

    assert!(matches!(
        store.chat_remove_member(&app, "g", "alice").await,
        Err(StoreError::Conflict("the last admin cannot leave"))
    ));
    assert_eq!(channel_of(store, &app, "g").await, removed);

    let removed = ok(
        "remove bob",
        store.chat_remove_member(&app, "g", "bob").await,
    );
    assert_eq!(removed.member_version, 7);
    assert_eq!(removed.members, strings_of(&["alice"]));
    // The only admin and only member may leave; the channel stays, empty.
    let empty = ok(
        "alice leaves",
        store.chat_remove_member(&app, "g", "alice").await,
    );
    assert_eq!(empty.member_version, 8);
    assert!(empty.members.is_empty() && empty.admins.is_empty());
    assert_eq!(channel_of(store, &app, "g").await, empty);
    assert!(ok("alice's", store.chat_channels_of(&app, "alice").await).is_empty());
    assert!(matches!(
        store.chat_remove_member(&app, "g", "alice").await,
        Err(StoreError::NotFound)
    ));
}

/// A channel holds at most `MAX_MEMBERS`; existing members can still be re-added and promoted.
pub async fn chat_full_channel(store: &dyn Store) {
    let app = app_id("chat full");
    let others: Vec<String> = (1..MAX_MEMBERS).map(|i| format!("user{i:04}")).collect();
    let other_refs: Vec<&str> = others.iter().map(String::as_str).collect();
    let mut too_many = group(&app, "too-many", "alice", &other_refs);
    too_many.members.push("one-more".to_owned());
    assert!(matches!(
        store.chat_create_channel(too_many).await,
        Err(StoreError::Conflict("channel is full"))
    ));
    assert_eq!(
        ok("not created", store.chat_channel(&app, "too-many").await),
        None
    );

    ok(
        "create with the maximum",
        store
            .chat_create_channel(group(&app, "big", "alice", &other_refs))
            .await,
    );
    let big = channel_of(store, &app, "big").await;
    assert_eq!(big.members.len(), MAX_MEMBERS);
    assert!(matches!(
        store.chat_add_member(&app, "big", "latecomer", false).await,
        Err(StoreError::Conflict("channel is full"))
    ));
    let same = ok(
        "re-add",
        store.chat_add_member(&app, "big", "user0001", false).await,
    );
    assert_eq!(same.member_version, 1);
    let promoted = ok(
        "promote",
        store.chat_add_member(&app, "big", "user0001", true).await,
    );
    assert_eq!(promoted.member_version, 2);
    ok(
        "leave",
        store.chat_remove_member(&app, "big", "user0002").await,
    );
    let last = ok(
        "fill again",
        store.chat_add_member(&app, "big", "latecomer", false).await,
    );
    assert_eq!(last.members.len(), MAX_MEMBERS);
    assert_eq!(last.member_version, 4);
}

/// Posting: existence, membership, idempotency (before the version check), version check,
/// gapless seqs, bytes stored verbatim.
pub async fn chat_post_rules(store: &dyn Store) {
    let app = app_id("chat post");
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob"]))
            .await,
    );
    assert!(matches!(
        store
            .chat_post(chat_message(&app, "nope", "alice", "c1", 1))
            .await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store
            .chat_post(chat_message(&app, "g", "mallory", "c1", 1))
            .await,
        Err(StoreError::Forbidden("not a member"))
    ));
    assert!(matches!(
        store
            .chat_post(chat_message(&app, "g", "alice", "c1", 2))
            .await,
        Err(StoreError::Conflict("stale member version"))
    ));
    assert!(matches!(
        store
            .chat_post(chat_message(&app, "g", "alice", "c1", 0))
            .await,
        Err(StoreError::Conflict("stale member version"))
    ));
    assert_eq!(channel_of(store, &app, "g").await.last_seq, 0);

    let first = chat_message(&app, "g", "alice", "c1", 1);
    let stored = post_new(store, first.clone()).await;
    assert_eq!(
        stored,
        ChatMessageRecord {
            channel_id: "g".to_owned(),
            seq: 1,
            sender: "alice".to_owned(),
            client_id: "c1".to_owned(),
            ciphertext: first.ciphertext.clone(),
            member_version: 1,
            sent_at_ms: first.sent_at_ms,
        }
    );
    // A retry: other bytes and even a stale version still get the stored message.
    let mut retry = chat_message(&app, "g", "alice", "c1", 99);
    retry.ciphertext = b"different".to_vec();
    retry.sent_at_ms += 5;
    assert_eq!(
        ok("retry", store.chat_post(retry).await),
        Posted::Duplicate(stored.clone())
    );
    assert_eq!(channel_of(store, &app, "g").await.last_seq, 1);

    // Client ids are per sender.
    assert_eq!(
        post_new(store, chat_message(&app, "g", "bob", "c1", 1))
            .await
            .seq,
        2
    );
    assert_eq!(
        post_new(store, chat_message(&app, "g", "alice", "c2", 1))
            .await
            .seq,
        3
    );
    let history = ok(
        "history",
        store
            .chat_history(&app, "g", HistoryCursor::After(0), 100)
            .await,
    );
    assert_eq!(history.len(), 3);
    assert_eq!(history[0], stored);
    assert_eq!(
        history
            .iter()
            .map(|m| (m.seq, m.sender.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "alice"), (2, "bob"), (3, "alice")]
    );

    // A membership change makes version 1 stale for new messages, not for retries.
    ok(
        "add carol",
        store.chat_add_member(&app, "g", "carol", false).await,
    );
    assert!(matches!(
        store
            .chat_post(chat_message(&app, "g", "alice", "c3", 1))
            .await,
        Err(StoreError::Conflict("stale member version"))
    ));
    assert!(matches!(
        ok(
            "retry after change",
            store
                .chat_post(chat_message(&app, "g", "bob", "c1", 1))
                .await
        ),
        Posted::Duplicate(ChatMessageRecord { seq: 2, .. })
    ));
    assert_eq!(
        post_new(store, chat_message(&app, "g", "carol", "c1", 2))
            .await
            .seq,
        4
    );
    ok(
        "remove bob",
        store.chat_remove_member(&app, "g", "bob").await,
    );
    assert!(matches!(
        store
            .chat_post(chat_message(&app, "g", "bob", "c9", 3))
            .await,
        Err(StoreError::Forbidden("not a member"))
    ));
    assert_eq!(
        post_new(store, chat_message(&app, "g", "alice", "c3", 3))
            .await
            .seq,
        5
    );
    let channel = channel_of(store, &app, "g").await;
    assert_eq!((channel.last_seq, channel.member_version), (5, 3));
    // Another channel counts on its own.
    ok(
        "create h",
        store
            .chat_create_channel(group(&app, "h", "alice", &[]))
            .await,
    );
    assert_eq!(
        post_new(store, chat_message(&app, "h", "alice", "c1", 1))
            .await
            .seq,
        1
    );
}

/// 8 concurrent posters × 25 messages to one channel: seqs 1..=200, each exactly once, and
/// each poster's messages in its own order.
pub async fn chat_concurrent_posts(store: &dyn Store) {
    let app = app_id("chat concurrent");
    let mut events = ok("subscribe", store.chat_events().await);
    chat_concurrent_posts_on(&[store], "chat concurrent").await;
    // Events come in commit order, which is seq order.
    for seq in 1..=200 {
        assert_eq!(
            next_event(&mut events, &app).await,
            message_event(&app, "busy", seq)
        );
    }
}

async fn chat_concurrent_posts_on(handles: &[&dyn Store], label: &str) {
    const POSTERS: usize = 8;
    const EACH: usize = 25;
    let app = app_id(label);
    let posters: Vec<String> = (0..POSTERS).map(|i| format!("poster{i}")).collect();
    let refs: Vec<&str> = posters.iter().map(String::as_str).collect();
    ok(
        "create",
        handles[0]
            .chat_create_channel(group(&app, "busy", "admin", &refs))
            .await,
    );
    let results = join_all(posters.iter().enumerate().map(|(i, poster)| {
        let store = handles[i % handles.len()];
        let app = app.clone();
        async move {
            let mut seqs = Vec::new();
            for n in 0..EACH {
                let client_id = format!("m{n:02}");
                seqs.push(
                    post_new(store, chat_message(&app, "busy", poster, &client_id, 1))
                        .await
                        .seq,
                );
            }
            seqs
        }
    }))
    .await;
    let mut all: Vec<i64> = results.iter().flatten().copied().collect();
    for seqs in &results {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
    all.sort_unstable();
    let expected: Vec<i64> = (1..=(POSTERS * EACH) as i64).collect();
    assert_eq!(all, expected);
    for store in handles {
        let history = ok(
            "history",
            store
                .chat_history(&app, "busy", HistoryCursor::After(0), 500)
                .await,
        );
        assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), expected);
        let distinct: HashSet<(&str, &str)> = history
            .iter()
            .map(|m| (m.sender.as_str(), m.client_id.as_str()))
            .collect();
        assert_eq!(distinct.len(), POSTERS * EACH);
        assert_eq!(
            channel_of(*store, &app, "busy").await.last_seq,
            (POSTERS * EACH) as i64
        );
    }
}

/// History pages: after (oldest first), before and latest (newest, returned ascending),
/// limits, the ends, an empty channel, and no mixing of channels.
pub async fn chat_history_cursors(store: &dyn Store) {
    let app = app_id("chat history");
    for id in ["g", "other", "empty"] {
        ok(
            "create",
            store
                .chat_create_channel(group(&app, id, "alice", &[]))
                .await,
        );
    }
    for cursor in [
        HistoryCursor::Latest,
        HistoryCursor::After(0),
        HistoryCursor::Before(10),
    ] {
        assert!(seqs(store, &app, "empty", cursor, 100).await.is_empty());
        assert!(seqs(store, &app, "missing", cursor, 100).await.is_empty());
    }
    for n in 1..=10 {
        post_new(store, chat_message(&app, "g", "alice", &format!("g{n}"), 1)).await;
        if n <= 3 {
            post_new(
                store,
                chat_message(&app, "other", "alice", &format!("o{n}"), 1),
            )
            .await;
        }
    }
    use HistoryCursor::{After, Before, Latest};
    let cases: Vec<(HistoryCursor, u32, Vec<i64>)> = vec![
        (After(0), 3, vec![1, 2, 3]),
        (After(3), 3, vec![4, 5, 6]),
        (After(9), 5, vec![10]),
        (After(10), 5, vec![]),
        (After(-5), 2, vec![1, 2]),
        (After(0), 100, (1..=10).collect()),
        (Before(5), 2, vec![3, 4]),
        (Before(3), 10, vec![1, 2]),
        (Before(1), 10, vec![]),
        (Before(11), 3, vec![8, 9, 10]),
        (Before(i64::MAX), 2, vec![9, 10]),
        (Latest, 4, vec![7, 8, 9, 10]),
        (Latest, 100, (1..=10).collect()),
        (Latest, 0, vec![]),
        (After(0), 0, vec![]),
    ];
    for (cursor, limit, expected) in cases {
        assert_eq!(
            seqs(store, &app, "g", cursor, limit).await,
            expected,
            "{cursor:?} limit {limit}"
        );
    }
    let other = ok(
        "other history",
        store.chat_history(&app, "other", Latest, 100).await,
    );
    assert_eq!(
        other
            .iter()
            .map(|m| (m.seq, m.client_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "o1"), (2, "o2"), (3, "o3")]
    );
    assert!(other.iter().all(|m| m.channel_id == "other"));
    assert!(seqs(store, &app_id("elsewhere"), "g", Latest, 100)
        .await
        .is_empty());
}

/// Events: a committed post gives `Message`, a membership change that changed something gives
/// `Members`, failed and no-op writes give nothing; every subscriber gets every event.
pub async fn chat_events_delivered(store: &dyn Store) {
    let app = app_id("chat events");
    let mut events = ok("subscribe", store.chat_events().await);
    let mut second = ok("subscribe again", store.chat_events().await);
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob"]))
            .await,
    );
    post_new(store, chat_message(&app, "g", "alice", "c1", 1)).await;
    assert_eq!(
        next_event(&mut events, &app).await,
        message_event(&app, "g", 1)
    );

    // Failed writes and no-ops commit nothing, so they announce nothing.
    let _ = store
        .chat_post(chat_message(&app, "g", "alice", "c2", 5))
        .await;
    let _ = store
        .chat_post(chat_message(&app, "g", "mallory", "c2", 1))
        .await;
    let _ = store
        .chat_post(chat_message(&app, "g", "alice", "c1", 1))
        .await;
    let _ = store.chat_remove_member(&app, "g", "nobody").await;
    ok(
        "no-op add",
        store.chat_add_member(&app, "g", "bob", false).await,
    );
    ok(
        "add carol",
        store.chat_add_member(&app, "g", "carol", false).await,
    );
    assert_eq!(
        next_event(&mut events, &app).await,
        members_event(&app, "g", 2)
    );
    ok(
        "remove carol",
        store.chat_remove_member(&app, "g", "carol").await,
    );
    assert_eq!(
        next_event(&mut events, &app).await,
        members_event(&app, "g", 3)
    );
    post_new(store, chat_message(&app, "g", "bob", "c1", 3)).await;
    assert_eq!(
        next_event(&mut events, &app).await,
        message_event(&app, "g", 2)
    );

    for expected in [
        message_event(&app, "g", 1),
        members_event(&app, "g", 2),
        members_event(&app, "g", 3),
        message_event(&app, "g", 2),
    ] {
        assert_eq!(next_event(&mut second, &app).await, expected);
    }
    // A subscription starts now: nothing of the past is replayed.
    let mut late = ok("late subscriber", store.chat_events().await);
    post_new(store, chat_message(&app, "g", "alice", "c9", 3)).await;
    assert_eq!(
        next_event(&mut late, &app).await,
        message_event(&app, "g", 3)
    );
    assert_eq!(
        next_event(&mut events, &app).await,
        message_event(&app, "g", 3)
    );
}

/// Two handles on one database: concurrent posts split between them still get seqs 1..=200
/// exactly once.
pub async fn chat_replicas_agree(a: &dyn Store, b: &dyn Store) {
    chat_concurrent_posts_on(&[a, b], "chat replicas").await;
}

/// Two replicas (backends whose events cross processes): what one writes, the other hears,
/// and so does the writer.
pub async fn chat_events_cross_replicas(a: &dyn Store, b: &dyn Store) {
    let app = app_id("chat events replicas");
    let mut at_a = ok("subscribe a", a.chat_events().await);
    let mut at_b = ok("subscribe b", b.chat_events().await);
    ok(
        "create",
        a.chat_create_channel(group(&app, "g", "alice", &["bob"]))
            .await,
    );
    post_new(a, chat_message(&app, "g", "alice", "c1", 1)).await;
    assert_eq!(
        next_event(&mut at_b, &app).await,
        message_event(&app, "g", 1)
    );
    assert_eq!(
        next_event(&mut at_a, &app).await,
        message_event(&app, "g", 1)
    );
    ok(
        "add on b",
        b.chat_add_member(&app, "g", "carol", false).await,
    );
    assert_eq!(
        next_event(&mut at_a, &app).await,
        members_event(&app, "g", 2)
    );
    assert_eq!(
        next_event(&mut at_b, &app).await,
        members_event(&app, "g", 2)
    );
    // A rolled-back post on a notifies nobody; the next committed one arrives next.
    let _ = a.chat_post(chat_message(&app, "g", "alice", "c2", 1)).await;
    post_new(b, chat_message(&app, "g", "bob", "c1", 2)).await;
    assert_eq!(
        next_event(&mut at_a, &app).await,
        message_event(&app, "g", 2)
    );
    assert_eq!(
        next_event(&mut at_b, &app).await,
        message_event(&app, "g", 2)
    );
}

/// Concurrent membership changes keep the rules: 20 joins racing for the last 5 places give
/// exactly 5 members more and one version per change; two admins leaving at once while others
/// stay: one of them must remain.
pub async fn chat_concurrent_membership(store: &dyn Store) {
    let app = app_id("chat concurrent membership");
    let others: Vec<String> = (1..MAX_MEMBERS - 5)
        .map(|i| format!("user{i:04}"))
        .collect();
    let refs: Vec<&str> = others.iter().map(String::as_str).collect();
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "almost-full", "alice", &refs))
            .await,
    );
    let joiners: Vec<String> = (0..20).map(|i| format!("joiner{i:02}")).collect();
    let results = join_all(
        joiners
            .iter()
            .map(|j| store.chat_add_member(&app, "almost-full", j, false)),
    )
    .await;
    let mut versions = Vec::new();
    for result in results {
        match result {
            Ok(channel) => versions.push(channel.member_version),
            Err(StoreError::Conflict("channel is full")) => {}
            Err(e) => panic!("concurrent join: {e:?}"),
        }
    }
    versions.sort_unstable();
    assert_eq!(versions, vec![2, 3, 4, 5, 6]);
    let channel = channel_of(store, &app, "almost-full").await;
    assert_eq!(channel.members.len(), MAX_MEMBERS);
    assert_eq!(channel.member_version, 6);

    let mut two_admins = group(&app, "two-admins", "alice", &["carol"]);
    two_admins.admins.push("bob".to_owned());
    ok("create", store.chat_create_channel(two_admins).await);
    let results =
        join_all(["alice", "bob"].map(|admin| store.chat_remove_member(&app, "two-admins", admin)))
            .await;
    let left = results
        .iter()
        .filter(|r| match r {
            Ok(_) => true,
            Err(StoreError::Conflict("the last admin cannot leave")) => false,
            Err(e) => panic!("concurrent leave: {e:?}"),
        })
        .count();
    assert_eq!(left, 1, "{results:?}");
    let channel = channel_of(store, &app, "two-admins").await;
    assert_eq!(channel.admins.len(), 1);
    assert_eq!(channel.members.len(), 2);
}
