//! Key transparency end to end, on SQLite and PostgreSQL: cards published through `/card/v5`
//! reach the directory in the next epoch; lookup, history and audit proofs served under
//! `/kt/v1` verify with `sealkit-kt` against the signed head; a swapped card, a tampered proof
//! or a forged head does not.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use crate::common::{assert_error, harness_on, harness_with, pg_url, token, Harness};
use axum::http::StatusCode;
use base64::Engine as _;
use rand_core::OsRng;
use sealkit_crypto::{KeyType, PrivateKey};
use sealkit_kt::{
    card_set_commitment, parse_card_id, verify_append_only, verify_history, verify_lookup, KtError,
    SignedHead,
};
use sealkit_proto::kt::{self as wire, paths};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::Store;
use sealkit_server::Config;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

fn fast_epochs() -> Config {
    let mut config = Config::default();
    config.kt_epoch_secs = 0.1;
    config
}

async fn get<T: serde::de::DeserializeOwned>(h: &Harness, path: &str, token: Option<&str>) -> T {
    let (status, body) = h.json("GET", path, token, None).await;
    assert_eq!(status, StatusCode::OK, "{path}: {body}");
    serde_json::from_value(body).unwrap()
}

/// Publishes a card for `identity` and returns its id as computed by the client.
async fn publish(h: &Harness, identity: &str, key: &PrivateKey, previous: Option<&str>) -> String {
    let card = common::card(identity, key, previous);
    let id = card.card_id().unwrap().to_string();
    let (status, body) = h
        .json(
            "POST",
            "/card/v5",
            Some(&token(&h.app, identity)),
            Some(serde_json::to_value(&card).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    id
}

/// Polls the lookup of `identity` until the directory commits to `card_ids` (at most 15 s).
async fn lookup_until(
    h: &Harness,
    pinned: &[u8; 32],
    identity: &str,
    card_ids: &[&str],
) -> (wire::LookupResponse, SignedHead, sealkit_kt::VerifiedEntry) {
    let tok = token(&h.app, "observer");
    for _ in 0..150 {
        let (status, body) = h
            .json("GET", &paths::lookup(identity), Some(&tok), None)
            .await;
        if status == StatusCode::OK {
            let response: wire::LookupResponse = serde_json::from_value(body).unwrap();
            let (head, entry) = verify_lookup(pinned, &h.app.app_id, identity, &response).unwrap();
            if entry.check_cards(card_ids.iter().copied()).is_ok() {
                return (response, head, entry);
            }
        } else {
            assert_error(status, &body, StatusCode::NOT_FOUND);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the directory never committed to {identity}'s cards {card_ids:?}");
}

async fn kt_end_to_end(h: &Harness) {
    let app_id = h.app.app_id.clone();
    let key: wire::KeyResponse = get(h, paths::KEY, None).await;
    let pinned = sealkit_kt::parse_signing_public_key(&key.signing_public_key).unwrap();
    // The epoch length, so clients know how long to wait for a new card (kt_epoch_secs = 0.1).
    assert_eq!(key.epoch_millis, Some(100));

    // Nothing published yet: no directory, answered with the KT codes.
    let (status, body) = h.json("GET", &paths::head(&app_id), None, None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], wire::codes::NO_DIRECTORY);
    let (status, body) = h.json("GET", &paths::lookup("alice"), None, None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);

    let alice_key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let bob_key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let alice_1 = publish(h, "alice", &alice_key, None).await;
    let bob_1 = publish(h, "bob", &bob_key, None).await;

    let (alice_lookup, head_1, entry) = lookup_until(h, &pinned, "alice", &[&alice_1]).await;
    assert_eq!(entry.version, 1);
    let (bob_lookup, _, _) = lookup_until(h, &pinned, "bob", &[&bob_1]).await;
    assert!(head_1.epoch >= 1);

    // The served head is the one the proofs are for (or newer), signed by the served key.
    let head: wire::SignedHead = get(h, &paths::head(&app_id), None).await;
    let head = SignedHead::verified_from_wire(&head, &pinned, &app_id).unwrap();
    assert!(head.epoch >= head_1.epoch);

    // A swapped card: the directory commits to alice's card, not to bob's.
    assert_eq!(
        entry.check_cards([bob_1.as_str()]),
        Err(KtError::CardsNotInDirectory)
    );
    // Bob's proof passed off as alice's fails (the VRF label is alice's, the proof bob's).
    let mut swapped = bob_lookup.clone();
    swapped.identity = "alice".into();
    assert!(matches!(
        verify_lookup(&pinned, &app_id, "alice", &swapped),
        Err(KtError::BadProof(_))
    ));
    // Any changed byte in the proof fails.
    let raw = B64.decode(&alice_lookup.proof).unwrap();
    for at in [raw.len() / 3, raw.len() / 2, raw.len() - 5] {
        let mut bad = raw.clone();
        bad[at] ^= 0x01;
        let mut tampered = alice_lookup.clone();
        tampered.proof = B64.encode(&bad);
        assert!(
            verify_lookup(&pinned, &app_id, "alice", &tampered).is_err(),
            "a proof changed at byte {at} verified"
        );
    }
    // A head with another root, or signed by another key, fails.
    let mut forged = alice_lookup.clone();
    let mut root = hex::decode(&forged.head.root_hash).unwrap();
    root[0] ^= 1;
    forged.head.root_hash = hex::encode(&root);
    assert_eq!(
        verify_lookup(&pinned, &app_id, "alice", &forged),
        Err(KtError::BadHeadSignature)
    );
    let impostor = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let mut resigned = alice_lookup.clone();
    resigned.head = SignedHead::sign(
        &impostor,
        &app_id,
        head_1.epoch,
        head_1.root_hash,
        head_1.vrf_public_key,
    )
    .to_wire();
    assert_eq!(
        verify_lookup(&pinned, &app_id, "alice", &resigned),
        Err(KtError::BadHeadSignature)
    );
    // Another application's id in the question fails.
    assert!(matches!(
        verify_lookup(&pinned, &h.other_app.app_id, "alice", &alice_lookup),
        Err(KtError::WrongSubject { .. })
    ));

    // Rotation: a second version; the old card is no longer the committed one.
    let alice_key_2 = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let alice_2 = publish(h, "alice", &alice_key_2, Some(&alice_1)).await;
    let (_, head_2, entry_2) = lookup_until(h, &pinned, "alice", &[&alice_2]).await;
    assert_eq!(entry_2.version, 2);
    assert!(head_2.epoch > head_1.epoch);
    assert_eq!(
        entry_2.check_cards([alice_1.as_str()]),
        Err(KtError::CardsNotInDirectory)
    );

    let history: wire::HistoryResponse =
        get(h, &paths::history("alice"), Some(&token(&h.app, "alice"))).await;
    let (_, versions) = verify_history(&pinned, &app_id, "alice", &history).unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions[0].version, 2);
    assert_eq!(
        versions[0].value,
        card_set_commitment([parse_card_id(&alice_2).unwrap()])
    );
    assert_eq!(
        versions[1].value,
        card_set_commitment([parse_card_id(&alice_1).unwrap()])
    );
    let recent: wire::HistoryResponse = get(
        h,
        &paths::history_recent("alice", 1),
        Some(&token(&h.app, "alice")),
    )
    .await;
    let (_, newest) = verify_history(&pinned, &app_id, "alice", &recent).unwrap();
    assert_eq!(newest.len(), 1);
    assert_eq!(newest[0].version, 2);
    // A partial history passed off as complete fails (the older version would be hidden).
    let mut partial = recent.clone();
    partial.most_recent = None;
    assert!(matches!(
        verify_history(&pinned, &app_id, "alice", &partial),
        Err(KtError::BadProof(_))
    ));
    // A history proof with a changed byte fails.
    let raw = B64.decode(&history.proof).unwrap();
    let mut bad = raw.clone();
    bad[raw.len() / 2] ^= 0x01;
    let mut tampered = history.clone();
    tampered.proof = B64.encode(&bad);
    assert!(verify_history(&pinned, &app_id, "alice", &tampered).is_err());

    // Audit: epoch 2's tree extends epoch 1's.
    let audit: wire::AuditResponse =
        get(h, &paths::audit(&app_id, head_1.epoch, head_2.epoch), None).await;
    assert_eq!(audit.heads.len() as u64, head_2.epoch - head_1.epoch + 1);
    let newest = verify_append_only(&pinned, &head_1, &audit).await.unwrap();
    assert_eq!(newest.epoch, head_2.epoch);
    assert_eq!(newest.root_hash, head_2.root_hash);
    // A trusted head the audit does not start from (a fork) fails.
    let other_fork = SignedHead::sign(
        &impostor,
        &app_id,
        head_1.epoch,
        [7; 32],
        head_1.vrf_public_key,
    );
    assert!(matches!(
        verify_append_only(&pinned, &other_fork, &audit).await,
        Err(KtError::NotAnExtension(_))
    ));
    // A tampered append-only proof fails.
    let raw = B64.decode(&audit.proof).unwrap();
    let mut bad = raw.clone();
    let at = raw.len() - 3;
    bad[at] ^= 0x01;
    let mut tampered = audit.clone();
    tampered.proof = B64.encode(&bad);
    assert!(verify_append_only(&pinned, &head_1, &tampered)
        .await
        .is_err());

    // Bad audit ranges.
    for (start, end) in [(3, 3), (4, 2)] {
        let (status, body) = h
            .json("GET", &paths::audit(&app_id, start, end), None, None)
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert_eq!(body["code"], wire::codes::INVALID);
    }
    let (status, body) = h
        .json("GET", &paths::audit(&app_id, 1, 1_000), None, None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], wire::codes::NO_SUCH_EPOCH);

    // Revocation: the entry commits to no card.
    let (status, _, _) = h
        .call(
            "POST",
            &format!("/card/v5/actions/revoke/{alice_2}"),
            Some(&token(&h.app, "alice")),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, _, entry_3) = lookup_until(h, &pinned, "alice", &[]).await;
    assert_eq!(entry_3.version, 3);

    // Unknown identity: 404 with the KT code; the other application has no directory.
    let (status, body) = h
        .json(
            "GET",
            &paths::lookup("carol"),
            Some(&token(&h.app, "bob")),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], wire::codes::NOT_IN_DIRECTORY);
    let (status, body) = h
        .json(
            "GET",
            &paths::lookup("alice"),
            Some(&token(&h.other_app, "bob")),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], wire::codes::NO_DIRECTORY);

    // No change, no epoch.
    let before: wire::SignedHead = get(h, &paths::head(&app_id), None).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let after: wire::SignedHead = get(h, &paths::head(&app_id), None).await;
    assert_eq!(before.epoch, after.epoch);

    // The card service answers as before.
    let (status, body) = h
        .json(
            "POST",
            "/card/v5/actions/search",
            Some(&token(&h.app, "bob")),
            Some(serde_json::json!({"identities": ["bob"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.as_array().map(Vec::len), Some(1), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kt_on_sqlite() {
    let h = harness_with(fast_epochs()).await;
    kt_end_to_end(&h).await;
    // The key file was created private in the data directory.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let meta = std::fs::metadata(h.dir.path().join("kt.key")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), 32);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kt_on_postgres() {
    let schema = common::schema_name("kt");
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_fresh_schema(&pg_url(), &schema)
            .await
            .expect("PostgreSQL reachable at DATABASE_URL"),
    );
    let h = harness_on(fast_epochs(), store).await;
    kt_end_to_end(&h).await;
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

/// `?pending=true`: a card waiting for the next epoch is announced as queued (code 80006 for
/// an identity's first card, `pending: true` for a rotation), and no longer once published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_says_when_a_change_is_queued() {
    // Long epochs, so the test acts well inside one (the first one publishes at start).
    let mut config = Config::default();
    config.kt_epoch_secs = 5.0;
    let h = harness_with(config).await;
    let key: wire::KeyResponse = get(&h, paths::KEY, None).await;
    let pinned = sealkit_kt::parse_signing_public_key(&key.signing_public_key).unwrap();
    let observer = token(&h.app, "observer");
    let queued_path = |identity: &str| format!("{}?pending=true", paths::lookup(identity));

    // No card at all: not queued, the plain answer.
    let (status, body) = h
        .json("GET", &queued_path("nobody"), Some(&observer), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_ne!(body["code"], wire::codes::ENTRY_PENDING, "{body}");

    let alice_key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let first = publish(&h, "alice", &alice_key, None).await;
    let (status, body) = h
        .json("GET", &queued_path("alice"), Some(&observer), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_eq!(body["code"], wire::codes::ENTRY_PENDING, "{body}");
    // Without the question, the answer is the one older clients know.
    let (status, body) = h
        .json("GET", &paths::lookup("alice"), Some(&observer), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    assert_ne!(body["code"], wire::codes::ENTRY_PENDING, "{body}");

    lookup_until(&h, &pinned, "alice", &[&first]).await;
    let settled: wire::LookupResponse = get(&h, &queued_path("alice"), Some(&observer)).await;
    assert_eq!(settled.pending, Some(false));
    let plain: wire::LookupResponse = get(&h, &paths::lookup("alice"), Some(&observer)).await;
    assert_eq!(plain.pending, None);

    let rotated_key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let second = publish(&h, "alice", &rotated_key, Some(&first)).await;
    let queued: wire::LookupResponse = get(&h, &queued_path("alice"), Some(&observer)).await;
    assert_eq!(queued.pending, Some(true));
    // The proof still shows the published card: the hint changes nothing it proves.
    let (_, entry) = verify_lookup(&pinned, &h.app.app_id, "alice", &queued).unwrap();
    assert!(entry.check_cards([first.as_str()]).is_ok());

    lookup_until(&h, &pinned, "alice", &[&second]).await;
    let settled: wire::LookupResponse = get(&h, &queued_path("alice"), Some(&observer)).await;
    assert_eq!(settled.pending, Some(false));
}
