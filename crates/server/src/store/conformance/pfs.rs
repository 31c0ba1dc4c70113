//! Conformance of the ratchet key service's keys: the upload order rules, the one-time key
//! limit, validation, picks that hand each one-time key out once (also when racing, and across
//! replicas), and deletion.

use std::collections::HashSet;

use futures_util::future::join_all;

use super::{app_id, hex_id, ok, warm_up, RACE_ROUNDS};
use crate::store::{
    Conflict, NewCard, PfsKey, PfsKeyId, PfsKeySet, PfsLongTermKey, PfsUpload, PfsValidation,
    Store, StoreError, StoreResult,
};

/// A ratchet key whose id and bytes derive from `label` (the store checks neither).
fn key(label: &str) -> PfsKey {
    let hex = hex_id(&format!("pfs key {label}"), 16);
    let mut key_id = [0u8; 8];
    for (i, byte) in key_id.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0);
    }
    PfsKey {
        key_id,
        public_key: format!("public key {label}").into_bytes(),
    }
}

fn long_term(label: &str, card: &str) -> PfsLongTermKey {
    PfsLongTermKey {
        key: key(label),
        signature: format!("signature {label}").into_bytes(),
        verified_with_card: card.to_owned(),
    }
}

fn upload(
    app: &str,
    identity: &str,
    card: Option<&str>,
    long_term_key: Option<PfsLongTermKey>,
    one_time_keys: Vec<PfsKey>,
) -> PfsUpload {
    PfsUpload {
        app_id: app.to_owned(),
        identity: identity.to_owned(),
        card_id: card.map(str::to_owned),
        long_term_key,
        one_time_keys,
        max_one_time_keys: 150,
        now: 1_795_801_646,
    }
}

/// Publishes a first card of `identity` and returns its id.
async fn publish_card(store: &dyn Store, app: &str, identity: &str, label: &str) -> String {
    let id = hex_id(&format!("pfs card {app} {identity} {label}"), 64);
    ok(
        "publish card",
        store
            .publish_card(NewCard {
                id: id.clone(),
                app_id: app.to_owned(),
                identity: super::id(identity),
                previous_card_id: None,
                raw: format!(r#"{{"content_snapshot":"{label}","signatures":[]}}"#).into_bytes(),
                created_at: 1_795_801_646,
            })
            .await,
    );
    id
}

/// Publishes `identity`'s card, its long-term key `lt` and the one-time keys `ots`.
async fn keys_of(store: &dyn Store, app: &str, identity: &str, lt: &str, ots: &[String]) -> String {
    let card = publish_card(store, app, identity, "card").await;
    ok(
        "upload",
        store
            .pfs_upload(upload(
                app,
                identity,
                Some(&card),
                Some(long_term(lt, &card)),
                ots.iter().map(|l| key(l)).collect(),
            ))
            .await,
    );
    card
}

fn assert_rule<T: std::fmt::Debug>(step: &str, result: StoreResult<T>, rule: Conflict) {
    match result {
        Err(StoreError::Conflict(got)) if got == rule => {}
        other => panic!("{step}: expected Conflict({rule:?}), got {other:?}"),
    }
}

fn ids(labels: &[&str]) -> Vec<PfsKeyId> {
    labels.iter().map(|l| key(l).key_id).collect()
}

async fn validate(
    store: &dyn Store,
    app: &str,
    identity: &str,
    long_term: Option<&str>,
    one_time: &[&str],
) -> PfsValidation {
    ok(
        "validate",
        store
            .pfs_validate(
                app,
                identity,
                long_term.map(|l| key(l).key_id),
                &ids(one_time),
            )
            .await,
    )
}

async fn pick_one(store: &dyn Store, app: &str, identity: &str) -> Option<PfsKeySet> {
    let mut sets = ok(
        "pick",
        store
            .pfs_pick(app, &[identity.to_owned()], 1_795_801_700)
            .await,
    );
    assert!(sets.len() <= 1, "one identity, at most one set: {sets:?}");
    sets.pop()
}

/// The order rules (card id, then long-term key, then one-time keys), all-or-nothing uploads,
/// idempotent re-uploads, the one-time key limit, validation, and a new card id clearing keys.
pub async fn pfs_upload_rules(store: &dyn Store) {
    let app = app_id("pfs rules");
    let card = publish_card(store, &app, "alice", "first").await;

    assert_rule(
        "long-term key before any card id",
        store
            .pfs_upload(upload(
                &app,
                "alice",
                None,
                Some(long_term("lt", &card)),
                vec![],
            ))
            .await,
        Conflict::PfsNoCard,
    );
    assert_rule(
        "one-time keys before any long-term key",
        store
            .pfs_upload(upload(&app, "alice", Some(&card), None, vec![key("a")]))
            .await,
        Conflict::PfsNoLongTermKey,
    );
    assert_eq!(
        ok("card id", store.pfs_card_id(&app, "alice").await),
        None,
        "a refused upload writes nothing, not even its card id"
    );
    assert_rule(
        "long-term key checked against another card",
        store
            .pfs_upload(upload(
                &app,
                "alice",
                Some(&card),
                Some(long_term("lt", "another card")),
                vec![],
            ))
            .await,
        Conflict::PfsCardChanged,
    );

    // Card id alone, then the long-term key, then one-time keys: each step may come alone.
    ok(
        "card id",
        store
            .pfs_upload(upload(&app, "alice", Some(&card), None, vec![]))
            .await,
    );
    assert_eq!(
        ok("card id", store.pfs_card_id(&app, "alice").await),
        Some(card.clone())
    );
    ok(
        "long-term key",
        store
            .pfs_upload(upload(
                &app,
                "alice",
                None,
                Some(long_term("lt", &card)),
                vec![],
            ))
            .await,
    );
    ok(
        "one-time keys",
        store
            .pfs_upload(upload(
                &app,
                "alice",
                None,
                None,
                vec![key("a"), key("b"), key("c")],
            ))
            .await,
    );
    let v = validate(store, &app, "alice", Some("lt"), &["c", "x", "a", "b", "a"]).await;
    assert_eq!(v.long_term_key_id, Some(key("lt").key_id));
    assert_eq!(
        v.one_time_key_ids,
        ids(&["c", "a", "b"]),
        "the held ids, in the order asked, once each"
    );
    let v = validate(store, &app, "alice", Some("old lt"), &[]).await;
    assert_eq!(v, PfsValidation::default(), "another long-term key id");
    let v = validate(store, &app, "bob", Some("lt"), &["a"]).await;
    assert_eq!(v, PfsValidation::default(), "another identity's keys");
    let v = validate(store, &app_id("pfs other"), "alice", Some("lt"), &["a"]).await;
    assert_eq!(v, PfsValidation::default(), "another application's keys");

    // A retried upload keeps one copy of each key.
    ok(
        "retried upload",
        store
            .pfs_upload(upload(
                &app,
                "alice",
                Some(&card),
                None,
                vec![key("a"), key("d")],
            ))
            .await,
    );
    let v = validate(store, &app, "alice", None, &["a", "b", "c", "d"]).await;
    assert_eq!(v.one_time_key_ids, ids(&["a", "b", "c", "d"]));

    // The limit counts unused keys after the upload; exactly the limit is allowed, beyond it
    // nothing of the upload is written.
    let mut limited = upload(
        &app,
        "alice",
        None,
        Some(long_term("lt 2", &card)),
        vec![key("a"), key("e"), key("f")],
    );
    limited.max_one_time_keys = 5;
    assert_rule(
        "over the limit",
        store.pfs_upload(limited.clone()).await,
        Conflict::PfsTooManyOneTimeKeys { limit: 5 },
    );
    let v = validate(store, &app, "alice", Some("lt"), &["e", "f"]).await;
    assert_eq!(
        v.long_term_key_id,
        Some(key("lt").key_id),
        "long-term key kept"
    );
    assert!(
        v.one_time_key_ids.is_empty(),
        "no key of the refused upload"
    );
    limited.one_time_keys.pop();
    ok("exactly the limit", store.pfs_upload(limited).await);
    let v = validate(
        store,
        &app,
        "alice",
        Some("lt 2"),
        &["a", "b", "c", "d", "e"],
    )
    .await;
    assert_eq!(v.long_term_key_id, Some(key("lt 2").key_id), "replaced");
    assert_eq!(v.one_time_key_ids.len(), 5);

    // A new card id clears the keys made for the old card.
    let rotated = hex_id(&format!("pfs rotated {app}"), 64);
    ok(
        "new card id",
        store
            .pfs_upload(upload(&app, "alice", Some(&rotated), None, vec![]))
            .await,
    );
    let v = validate(
        store,
        &app,
        "alice",
        Some("lt 2"),
        &["a", "b", "c", "d", "e"],
    )
    .await;
    assert_eq!(v, PfsValidation::default(), "keys of the old card are gone");
    assert_eq!(
        ok("card id", store.pfs_card_id(&app, "alice").await),
        Some(rotated.clone())
    );
    assert_rule(
        "one-time keys after the card changed",
        store
            .pfs_upload(upload(&app, "alice", None, None, vec![key("g")]))
            .await,
        Conflict::PfsNoLongTermKey,
    );
    ok(
        "keys for the new card",
        store
            .pfs_upload(upload(
                &app,
                "alice",
                Some(&rotated),
                Some(long_term("lt 3", &rotated)),
                vec![key("g")],
            ))
            .await,
    );
    let v = validate(store, &app, "alice", Some("lt 3"), &["g"]).await;
    assert_eq!(v.one_time_key_ids, ids(&["g"]));
}

/// Picks: each one-time key once, oldest first, then none (the long-term key stays); a
/// handed-out key cannot be uploaded again; batches keep their order and leave out identities
/// without keys; keys of a superseded or revoked card are not handed out.
pub async fn pfs_pick_hands_out_each_key_once(store: &dyn Store) {
    let app = app_id("pfs pick");
    let ots: Vec<String> = ["1", "2", "3"].iter().map(|s| s.to_string()).collect();
    let card = keys_of(store, &app, "alice", "lt", &ots).await;
    for label in &ots {
        let Some(set) = pick_one(store, &app, "alice").await else {
            panic!("no keys for alice");
        };
        assert_eq!(set.identity, "alice");
        assert_eq!(set.long_term_key, key("lt").public_key);
        assert_eq!(set.long_term_signature, long_term("lt", &card).signature);
        assert_eq!(
            set.card_raw,
            br#"{"content_snapshot":"card","signatures":[]}"#.to_vec()
        );
        assert_eq!(
            set.one_time_key,
            Some(key(label).public_key),
            "the oldest unused key"
        );
    }
    let Some(set) = pick_one(store, &app, "alice").await else {
        panic!("the long-term key outlives the one-time keys");
    };
    assert_eq!(set.one_time_key, None);
    let v = validate(store, &app, "alice", Some("lt"), &["1", "2", "3"]).await;
    assert!(v.one_time_key_ids.is_empty(), "handed out keys are gone");
    assert_eq!(v.long_term_key_id, Some(key("lt").key_id));

    assert_rule(
        "a handed-out key again",
        store
            .pfs_upload(upload(&app, "alice", None, None, vec![key("4"), key("2")]))
            .await,
        Conflict::PfsOneTimeKeyUsed,
    );
    let v = validate(store, &app, "alice", None, &["4"]).await;
    assert!(
        v.one_time_key_ids.is_empty(),
        "nothing of the refused upload"
    );

    // Nobody's keys, then a batch.
    assert_eq!(pick_one(store, &app, "nobody").await, None);
    let bob_ots = vec!["b1".to_owned()];
    keys_of(store, &app, "bob", "bob lt", &bob_ots).await;
    keys_of(store, &app, "用户 😀", "unicode lt", &["u1".to_owned()]).await;
    let batch = ok(
        "batch",
        store
            .pfs_pick(
                &app,
                &[
                    "bob".to_owned(),
                    "nobody".to_owned(),
                    "用户 😀".to_owned(),
                    "alice".to_owned(),
                ],
                1_795_801_700,
            )
            .await,
    );
    let got: Vec<(&str, Option<Vec<u8>>)> = batch
        .iter()
        .map(|s| (s.identity.as_str(), s.one_time_key.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("bob", Some(key("b1").public_key)),
            ("用户 😀", Some(key("u1").public_key)),
            ("alice", None),
        ]
    );
    assert_eq!(
        ok(
            "other app",
            store
                .pfs_pick(&app_id("pfs other"), &["bob".to_owned()], 0)
                .await
        ),
        vec![],
        "keys are per application"
    );

    // Keys of a card that is no longer current are not handed out, and keep their keys.
    let carol = keys_of(store, &app, "carol", "carol lt", &["c1".to_owned()]).await;
    ok(
        "rotate carol's card",
        store
            .publish_card(NewCard {
                id: hex_id(&format!("pfs carol rotated {app}"), 64),
                app_id: app.clone(),
                identity: super::id("carol"),
                previous_card_id: Some(carol),
                raw: b"{}".to_vec(),
                created_at: 1_795_801_647,
            })
            .await,
    );
    assert_eq!(
        pick_one(store, &app, "carol").await,
        None,
        "superseded card"
    );
    let v = validate(store, &app, "carol", None, &["c1"]).await;
    assert_eq!(v.one_time_key_ids, ids(&["c1"]), "not handed out");
    let dave = keys_of(store, &app, "dave", "dave lt", &["d1".to_owned()]).await;
    ok("revoke", store.revoke_card(&app, &dave, "dave").await);
    assert_eq!(pick_one(store, &app, "dave").await, None, "revoked card");
}

/// Deleting removes the card id, the keys and the record of handed-out keys; other identities
/// keep theirs; deleting nothing succeeds.
pub async fn pfs_delete_removes_everything(store: &dyn Store) {
    let app = app_id("pfs delete");
    keys_of(
        store,
        &app,
        "alice",
        "lt",
        &["1".to_owned(), "2".to_owned()],
    )
    .await;
    keys_of(store, &app, "bob", "bob lt", &["b1".to_owned()]).await;
    assert!(pick_one(store, &app, "alice").await.is_some());
    ok("delete", store.pfs_delete(&app, "alice").await);
    assert_eq!(ok("card id", store.pfs_card_id(&app, "alice").await), None);
    assert_eq!(pick_one(store, &app, "alice").await, None);
    assert_eq!(
        validate(store, &app, "alice", Some("lt"), &["1", "2"]).await,
        PfsValidation::default()
    );
    ok("delete again", store.pfs_delete(&app, "alice").await);
    ok("delete nobody", store.pfs_delete(&app, "nobody").await);
    let v = validate(store, &app, "bob", Some("bob lt"), &["b1"]).await;
    assert_eq!(v.one_time_key_ids, ids(&["b1"]), "bob keeps his keys");

    // After a delete the identity starts afresh: even the key handed out before is new.
    let alice_card = hex_id(&format!("pfs card {app} alice card"), 64);
    ok(
        "upload after delete",
        store
            .pfs_upload(upload(
                &app,
                "alice",
                Some(&alice_card),
                Some(long_term("lt", &alice_card)),
                vec![key("1"), key("2")],
            ))
            .await,
    );
    let v = validate(store, &app, "alice", Some("lt"), &["1", "2"]).await;
    assert_eq!(v.one_time_key_ids, ids(&["1", "2"]));
}

/// Picks that race for one identity's one-time keys: every key is handed out exactly once,
/// the picks beyond the stock get none.
pub async fn pfs_concurrent_picks(store: &dyn Store) {
    let app = app_id("pfs race");
    warm_up(store, &app).await;
    for round in 0..RACE_ROUNDS {
        let identity = format!("alice-{round}");
        let labels: Vec<String> = (0..30).map(|i| format!("{round} {i}")).collect();
        keys_of(store, &app, &identity, &format!("{round} lt"), &labels).await;
        let picks = join_all((0..40).map(|_| pick_one(store, &app, &identity))).await;
        assert_one_each(&picks, &labels, &format!("round {round}"));
    }
}

/// Every key of `labels` handed out once by `picks`; the other picks got the long-term key only.
fn assert_one_each(picks: &[Option<PfsKeySet>], labels: &[String], step: &str) {
    let mut handed_out = HashSet::new();
    let mut without = 0;
    for set in picks {
        let Some(set) = set else {
            panic!("{step}: a pick found no keys");
        };
        match &set.one_time_key {
            Some(one_time) => assert!(
                handed_out.insert(one_time.clone()),
                "{step}: a one-time key was handed out twice"
            ),
            None => without += 1,
        }
    }
    let expected: HashSet<Vec<u8>> = labels.iter().map(|l| key(l).public_key).collect();
    assert_eq!(handed_out, expected, "{step}: every key once");
    assert_eq!(without, picks.len() - labels.len(), "{step}");
}

/// Uploads that race for the one-time key limit: together they never pass it, and each is
/// all-or-nothing.
pub async fn pfs_concurrent_uploads_keep_the_limit(store: &dyn Store) {
    let app = app_id("pfs upload race");
    warm_up(store, &app).await;
    let card = keys_of(store, &app, "alice", "lt", &[]).await;
    let batches: Vec<Vec<PfsKey>> = (0..10)
        .map(|b| (0..20).map(|i| key(&format!("{b} {i}"))).collect())
        .collect();
    let results =
        join_all(batches.iter().map(|batch| {
            store.pfs_upload(upload(&app, "alice", Some(&card), None, batch.clone()))
        }))
        .await;
    let mut accepted = 0;
    for result in &results {
        match result {
            Ok(()) => accepted += 1,
            Err(StoreError::Conflict(Conflict::PfsTooManyOneTimeKeys { limit: 150 })) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(accepted, 7, "150 keys hold seven batches of 20");
    for (batch, result) in batches.iter().zip(&results) {
        let asked: Vec<PfsKeyId> = batch.iter().map(|k| k.key_id).collect();
        let v = ok(
            "validate",
            store.pfs_validate(&app, "alice", None, &asked).await,
        );
        let expected = if result.is_ok() { asked.len() } else { 0 };
        assert_eq!(v.one_time_key_ids.len(), expected, "all or nothing");
    }
}

/// Two handles on one database: picks split between them still hand out every key once.
pub(super) async fn replicas_never_share_a_key(a: &dyn Store, b: &dyn Store) {
    let app = app_id("pfs replicas");
    warm_up(a, &app).await;
    warm_up(b, &app).await;
    let labels: Vec<String> = (0..20).map(|i| format!("replica {i}")).collect();
    keys_of(a, &app, "alice", "lt", &labels).await;
    let picks = join_all((0..30).map(|i| {
        let store = if i % 2 == 0 { a } else { b };
        pick_one(store, &app, "alice")
    }))
    .await;
    assert_one_each(&picks, &labels, "two replicas");
}
