//! The behaviour every [`Store`] backend must show, as one `pub async fn` per behaviour taking
//! `&dyn Store` (each expects an empty store and panics on a violation), and the
//! [`store_conformance_tests!`](crate::store_conformance_tests) macro that turns them into one
//! `#[tokio::test]` each for a backend.
//!
//! A new backend adds one line to its tests: `crate::store_conformance_tests!(factory());`.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures_util::future::join_all;

use super::{AppKeyRecord, AppRecord, CardRecord, NewCard, Store, StoreError, StoreResult};

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
fn app_id(label: &str) -> String {
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

/// Two handles on one database (two server processes): concurrent first publishes, rotations
/// and settings split between them still have exactly one winner each. Backends call this with
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
}
