//! The ratchet key service `/pfs/v3/keys` over HTTP, as the Kotlin and Swift ratchet clients
//! use it: keys made and signed the way virgil-crypto does (SPKI DER, Virgil signatures), on
//! SQLite and PostgreSQL, and picks racing across two replicas of one database.

use std::collections::HashSet;
use std::sync::Arc;

use axum::http::StatusCode;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::future::join_all;
use rand_core::OsRng;
use sealkit_crypto::{KeyType, PrivateKey, PublicKey};
use sealkit_proto::pfs::{codes, key_id, paths, x25519_raw};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use serde_json::{json, Value};

use crate::common::{self, assert_error, card, harness, harness_on, pg_url, token, Harness};

fn b64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// A harness on a fresh PostgreSQL schema, with the schema's name for a second replica.
async fn pg_harness() -> (Harness, String) {
    let schema = common::schema_name("pfs");
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_fresh_schema(&pg_url(), &schema)
            .await
            .expect("PostgreSQL reachable at DATABASE_URL"),
    );
    (harness_on(Config::default(), store).await, schema)
}

/// A user with a published card.
struct User {
    token: String,
    key: PrivateKey,
    card_id: String,
}

async fn register(h: &Harness, identity: &str) -> User {
    let key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let token = token(&h.app, identity);
    let model = card(identity, &key, None);
    let (status, body) = h
        .json(
            "POST",
            "/card/v5",
            Some(&token),
            Some(serde_json::to_value(&model).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    User {
        token,
        card_id: model.card_id().unwrap().to_string(),
        key,
    }
}

/// A new X25519 public key as virgil-crypto's `exportPublicKey` writes it (SPKI DER).
fn x25519_der() -> Vec<u8> {
    PrivateKey::generate(KeyType::Curve25519, &mut OsRng)
        .public_key()
        .to_der()
}

/// The `long_term_key` object: `der` signed by `signer` the way the clients sign it.
fn signed(der: &[u8], signer: &PrivateKey) -> Value {
    let signature = sealkit_crypto::sign(der, signer, &mut OsRng).unwrap();
    json!({"public_key": b64(der), "signature": b64(&signature)})
}

fn id_of(key: &[u8]) -> String {
    b64(&key_id(&x25519_raw(key).unwrap()))
}

async fn upload(h: &Harness, user: &User, body: Value) -> (StatusCode, Value) {
    h.json("PUT", paths::KEYS, Some(&user.token), Some(body))
        .await
}

fn assert_code(status: StatusCode, body: &Value, expected: StatusCode, code: u32) {
    assert_error(status, body, expected);
    assert_eq!(body["code"], json!(code), "{body}");
}

/// Upload, validate, pick until the one-time keys run out, batch, delete.
async fn full_cycle(h: &Harness) {
    let alice = register(h, "alice").await;
    let bob = register(h, "bob").await;
    let long_term = x25519_der();
    let one_time_der = x25519_der();
    // Older clients send the 32 raw bytes; both forms are accepted and returned as sent.
    let one_time_raw = x25519_raw(&x25519_der()).unwrap().to_vec();
    let long_term_signed = signed(&long_term, &alice.key);
    let (status, body) = upload(
        h,
        &alice,
        json!({
            "identity_card_id": alice.card_id,
            "long_term_key": long_term_signed,
            "one_time_keys": [b64(&one_time_der), b64(&one_time_raw)],
        }),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    let asked = json!({
        "long_term_key_id": id_of(&long_term),
        "one_time_keys_ids": [id_of(&one_time_der), id_of(&one_time_raw), b64(&[9; 8])],
    });
    let (status, body) = h
        .json(
            "POST",
            paths::VALIDATE,
            Some(&alice.token),
            Some(asked.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({
            "used_long_term_key_id": id_of(&long_term),
            "used_one_time_keys_ids": [id_of(&one_time_der), id_of(&one_time_raw)],
        }),
        "the ids the service holds"
    );

    let mut handed_out = Vec::new();
    for _ in 0..2 {
        let (status, set) = h
            .json(
                "POST",
                paths::PICK_ONE,
                Some(&bob.token),
                Some(json!({"identity": "alice"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{set}");
        assert_eq!(
            set["identity_key"],
            json!(alice.key.public_key().to_base64())
        );
        assert_eq!(set["long_term_key"]["public_key"], json!(b64(&long_term)));
        // Bob checks the long-term key as the clients do: with the key of alice's card.
        let identity_key = PublicKey::from_der(
            &STANDARD
                .decode(set["identity_key"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        let signature = STANDARD
            .decode(set["long_term_key"]["signature"].as_str().unwrap())
            .unwrap();
        sealkit_crypto::verify(&long_term, &signature, &identity_key).unwrap();
        handed_out.push(
            STANDARD
                .decode(set["one_time_key"].as_str().unwrap())
                .unwrap(),
        );
    }
    assert_eq!(
        handed_out,
        vec![one_time_der.clone(), one_time_raw.clone()],
        "each key once, oldest first"
    );
    let (status, set) = h
        .json(
            "POST",
            paths::PICK_ONE,
            Some(&bob.token),
            Some(json!({"identity": "alice"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert!(set.get("one_time_key").is_none(), "none left: {set}");
    let (_, body) = h
        .json("POST", paths::VALIDATE, Some(&alice.token), Some(asked))
        .await;
    assert_eq!(
        body,
        json!({"used_long_term_key_id": id_of(&long_term), "used_one_time_keys_ids": []}),
        "handed-out keys are no longer held"
    );

    // A rotation as the clients run it: card id again, no new long-term key, fresh keys.
    let fresh = x25519_der();
    let (status, body) = upload(
        h,
        &alice,
        json!({"identity_card_id": alice.card_id, "one_time_keys": [b64(&fresh)]}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, batch) = h
        .json(
            "POST",
            paths::PICK_BATCH,
            Some(&bob.token),
            Some(json!({"identities": ["carol", "alice"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");
    assert_eq!(
        batch,
        json!([{
            "identity": "alice",
            "identity_key": alice.key.public_key().to_base64(),
            "long_term_key": long_term_signed,
            "one_time_key": b64(&fresh),
        }]),
        "identities without keys are left out"
    );

    let (status, _, body) = h
        .call("DELETE", paths::KEYS, Some(&alice.token), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body:?}");
    let (status, body) = h
        .json(
            "POST",
            paths::PICK_ONE,
            Some(&bob.token),
            Some(json!({"identity": "alice"})),
        )
        .await;
    assert_code(status, &body, StatusCode::NOT_FOUND, codes::KEYS_NOT_FOUND);
    // Keys of another application are not visible.
    let stranger = token(&h.other_app, "bob");
    let (status, body) = h
        .json(
            "POST",
            paths::PICK_ONE,
            Some(&stranger),
            Some(json!({"identity": "bob"})),
        )
        .await;
    assert_code(status, &body, StatusCode::NOT_FOUND, codes::KEYS_NOT_FOUND);
}

/// Every refusal answers its status and code.
async fn refusals(h: &Harness) {
    let alice = register(h, "alice").await;
    let bob = register(h, "bob").await;
    let long_term = x25519_der();

    let (status, body) = h.json("PUT", paths::KEYS, None, Some(json!({}))).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let (status, _, body) = h
        .call("PUT", paths::KEYS, Some(&alice.token), Some(b"{".to_vec()))
        .await;
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_code(status, &body, StatusCode::BAD_REQUEST, 40000);

    // Order: a long-term key needs a card id, one-time keys need a long-term key.
    let (status, body) = upload(
        h,
        &alice,
        json!({"long_term_key": signed(&long_term, &alice.key)}),
    )
    .await;
    assert_code(status, &body, StatusCode::CONFLICT, codes::NO_CARD);
    let (status, body) = upload(
        h,
        &alice,
        json!({"identity_card_id": alice.card_id, "one_time_keys": [b64(&x25519_der())]}),
    )
    .await;
    assert_code(status, &body, StatusCode::CONFLICT, codes::NO_LONG_TERM_KEY);

    // The signature must be by the card's key, over the key as sent.
    let (status, body) = upload(
        h,
        &alice,
        json!({"identity_card_id": alice.card_id, "long_term_key": signed(&long_term, &bob.key)}),
    )
    .await;
    assert_code(status, &body, StatusCode::BAD_REQUEST, codes::BAD_SIGNATURE);
    let mut tampered = signed(&long_term, &alice.key);
    tampered["public_key"] = json!(b64(&x25519_der()));
    let (status, body) = upload(
        h,
        &alice,
        json!({"identity_card_id": alice.card_id, "long_term_key": tampered}),
    )
    .await;
    assert_code(status, &body, StatusCode::BAD_REQUEST, codes::BAD_SIGNATURE);

    // The card must be the caller's current card.
    for (card_id, code) in [
        (bob.card_id.clone(), codes::INVALID_CARD),
        ("ab".repeat(32), codes::INVALID_CARD),
        ("not hex".to_owned(), codes::INVALID),
    ] {
        let (status, body) = upload(
            h,
            &alice,
            json!({"identity_card_id": card_id, "long_term_key": signed(&long_term, &alice.key)}),
        )
        .await;
        assert_code(status, &body, StatusCode::BAD_REQUEST, code);
    }

    // Malformed keys.
    let ed25519 = alice.key.public_key().to_der();
    for bad in [
        json!({"identity_card_id": alice.card_id, "long_term_key": signed(&ed25519, &alice.key)}),
        json!({"identity_card_id": alice.card_id, "long_term_key": {"public_key": "***", "signature": "AA=="}}),
        json!({"identity_card_id": alice.card_id, "long_term_key": {"public_key": b64(&long_term), "signature": ""}}),
        json!({"identity_card_id": alice.card_id, "one_time_keys": [b64(&[1; 31])]}),
        json!({"identity_card_id": alice.card_id, "one_time_keys": ["not base64"]}),
    ] {
        let (status, body) = upload(h, &alice, bad.clone()).await;
        assert_code(status, &body, StatusCode::BAD_REQUEST, codes::INVALID);
    }
    let repeated = b64(&x25519_der());
    let (status, body) = upload(
        h,
        &alice,
        json!({"identity_card_id": alice.card_id, "long_term_key": signed(&long_term, &alice.key),
               "one_time_keys": [repeated, repeated]}),
    )
    .await;
    assert_code(status, &body, StatusCode::BAD_REQUEST, codes::INVALID);

    // The limit: 150 per upload and in the cloud.
    let too_many: Vec<String> = (0..151).map(|_| b64(&x25519_der())).collect();
    let (status, body) = upload(
        h,
        &alice,
        json!({"identity_card_id": alice.card_id, "long_term_key": signed(&long_term, &alice.key),
               "one_time_keys": too_many}),
    )
    .await;
    assert_code(status, &body, StatusCode::BAD_REQUEST, codes::INVALID);
    let full: Vec<String> = (0..150).map(|_| b64(&x25519_der())).collect();
    let (status, body) = upload(
        h,
        &alice,
        json!({"identity_card_id": alice.card_id, "long_term_key": signed(&long_term, &alice.key),
               "one_time_keys": full}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, body) = upload(h, &alice, json!({"one_time_keys": [b64(&x25519_der())]})).await;
    assert_code(
        status,
        &body,
        StatusCode::CONFLICT,
        codes::TOO_MANY_ONE_TIME_KEYS,
    );

    // A handed-out key cannot come back.
    let (status, set) = h
        .json(
            "POST",
            paths::PICK_ONE,
            Some(&bob.token),
            Some(json!({"identity": "alice"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    let (status, body) = upload(h, &alice, json!({"one_time_keys": [set["one_time_key"]]})).await;
    assert_code(
        status,
        &body,
        StatusCode::CONFLICT,
        codes::ONE_TIME_KEY_USED,
    );

    // Validate and pick arguments.
    for bad in [
        json!({"long_term_key_id": b64(&[1; 7])}),
        json!({"one_time_keys_ids": ["***"]}),
        json!({"one_time_keys_ids": vec![b64(&[1; 8]); 301]}),
    ] {
        let (status, body) = h
            .json("POST", paths::VALIDATE, Some(&alice.token), Some(bad))
            .await;
        assert_code(status, &body, StatusCode::BAD_REQUEST, codes::INVALID);
    }
    let (status, body) = h
        .json("POST", paths::VALIDATE, Some(&alice.token), Some(json!({})))
        .await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"used_one_time_keys_ids": []}))
    );
    let many: Vec<String> = (0..101).map(|i| format!("user-{i}")).collect();
    for (path, bad) in [
        (paths::PICK_ONE, json!({"identity": ""})),
        (paths::PICK_ONE, json!({"identities": ["alice"]})),
        (paths::PICK_BATCH, json!({"identities": ["alice", "alice"]})),
        (paths::PICK_BATCH, json!({"identities": many})),
    ] {
        let (status, body) = h.json("POST", path, Some(&bob.token), Some(bad)).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
    }
    let (status, body) = h
        .json(
            "POST",
            paths::PICK_BATCH,
            Some(&bob.token),
            Some(json!({"identities": []})),
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!([])));

    // After alice rotates her card, her old keys are not handed out and her old card is refused.
    let new_key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let rotated = card("alice", &new_key, Some(&alice.card_id));
    let (status, body) = h
        .json(
            "POST",
            "/card/v5",
            Some(&alice.token),
            Some(serde_json::to_value(&rotated).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .json(
            "POST",
            paths::PICK_ONE,
            Some(&bob.token),
            Some(json!({"identity": "alice"})),
        )
        .await;
    assert_code(status, &body, StatusCode::NOT_FOUND, codes::KEYS_NOT_FOUND);
    let (status, body) = upload(
        h,
        &alice,
        json!({"long_term_key": signed(&long_term, &alice.key)}),
    )
    .await;
    assert_code(status, &body, StatusCode::BAD_REQUEST, codes::INVALID_CARD);
    let new_card = rotated.card_id().unwrap().to_string();
    let (status, body) = upload(
        h,
        &alice,
        json!({"identity_card_id": new_card, "long_term_key": signed(&long_term, &new_key),
               "one_time_keys": [b64(&x25519_der())]}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, set) = h
        .json(
            "POST",
            paths::PICK_ONE,
            Some(&bob.token),
            Some(json!({"identity": "alice"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{set}");
    assert_eq!(set["identity_key"], json!(new_key.public_key().to_base64()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cycle_sqlite() {
    full_cycle(&harness().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_cycle_postgres() {
    let (h, schema) = pg_harness().await;
    full_cycle(&h).await;
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_sqlite() {
    refusals(&harness().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_postgres() {
    let (h, schema) = pg_harness().await;
    refusals(&h).await;
    drop(h);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}

/// Two server processes on one PostgreSQL database: picks racing through both hand out every
/// one-time key exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_picks_across_replicas() {
    let (h, schema) = pg_harness().await;
    let second: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&pg_url(), &schema)
            .await
            .unwrap(),
    );
    // The second server shares the first one's data directory (its brainkey secret), as
    // replicas do.
    let mut config = Config::default();
    config.data_dir = h.dir.path().to_owned();
    let replica = Harness {
        router: sealkit_server::app(config, second).await.unwrap(),
        dir: tempfile::tempdir().unwrap(),
        app: h.app.clone(),
        other_app: h.other_app.clone(),
    };
    let alice = register(&h, "alice").await;
    let keys: Vec<Vec<u8>> = (0..40).map(|_| x25519_der()).collect();
    let (status, body) = upload(
        &h,
        &alice,
        json!({"identity_card_id": alice.card_id, "long_term_key": signed(&x25519_der(), &alice.key),
               "one_time_keys": keys.iter().map(|k| b64(k)).collect::<Vec<_>>()}),
    )
    .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let bob = token(&h.app, "bob");
    let picks = join_all((0..50).map(|i| {
        let router = if i % 2 == 0 { &h } else { &replica };
        router.json(
            "POST",
            paths::PICK_ONE,
            Some(&bob),
            Some(json!({"identity": "alice"})),
        )
    }))
    .await;
    let mut handed_out = HashSet::new();
    let mut without = 0;
    for (status, set) in picks {
        assert_eq!(status, StatusCode::OK, "{set}");
        match set["one_time_key"].as_str() {
            Some(key) => assert!(handed_out.insert(key.to_owned()), "handed out twice"),
            None => without += 1,
        }
    }
    let expected: HashSet<String> = keys.iter().map(|k| b64(k)).collect();
    assert_eq!(handed_out, expected);
    assert_eq!(without, 10);
    drop(h);
    drop(replica);
    let _ = PostgresStore::drop_schema(&pg_url(), &schema).await;
}
