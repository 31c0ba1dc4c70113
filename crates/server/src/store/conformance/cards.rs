//! Conformance of the card directory: publishing, rotation chains, revocation, search, races.

use std::collections::{BTreeSet, HashSet};

use futures_util::future::join_all;

use super::apps::new_app;
use super::{assert_conflict, hex_id, ok, warm_up, RACE_ROUNDS};
use crate::store::{CardRecord, NewCard, Store, StoreError, StoreResult};

/// A 64-hex-character card id.
fn card_id(label: &str) -> String {
    hex_id(&format!("card {label}"), 64)
}

/// A card of `identity` in `app_id` whose id derives from `label`.
fn new_card(app_id: &str, identity: &str, label: &str, previous: Option<&str>) -> NewCard {
    NewCard {
        id: card_id(&format!("{app_id} {label}")),
        app_id: app_id.to_owned(),
        identity: super::id(identity),
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
            identities.iter().any(|i| card.identity == i.as_str()),
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
            identity: super::id("alice"),
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

/// A long rotation chain: search returns the head and its nearest predecessors, at most
/// `MAX_CHAIN_CARDS` cards.
pub async fn search_bounds_the_chain(store: &dyn Store) {
    use crate::store::MAX_CHAIN_CARDS;
    let app = new_app(store, "chain").await;
    let mut ids: Vec<String> = Vec::new();
    for i in 0..MAX_CHAIN_CARDS + 4 {
        let previous = ids.last().cloned();
        let name = format!("c{i}");
        ids.push(publish(store, new_card(&app, "alice", &name, previous.as_deref())).await);
    }
    let newest: Vec<&String> = ids[ids.len() - MAX_CHAIN_CARDS..].iter().collect();
    assert_eq!(
        search_ids(store, &app, &["alice"]).await,
        set(&newest),
        "the head and its nearest predecessors, no more"
    );
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

/// Concurrent first publishes and rotations of one identity, split between two replicas, have
/// exactly one winner each, and both replicas then find the same chain.
pub(super) async fn replicas_agree_on_cards(a: &dyn Store, b: &dyn Store) {
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
}
