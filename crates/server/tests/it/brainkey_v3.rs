//! `POST /brainkey/v3/harden` (brainkey v3 of the mobile e3kit SDKs): the C library's client
//! (virgil-crypto-lib 0.23.1 through `interop/python/brainkey_v3.py`, venv from
//! `interop/python/setup.sh`; `SEALKIT_SKIP_INTEROP=1` skips those parts) runs e3kit-kotlin's
//! flow against a real server over HTTP: the proof verifies, seeds are deterministic per
//! identity and password (and across replicas, on SQLite and PostgreSQL) and differ otherwise;
//! malformed points are 400, throttling is 429 with code 60007.

use crate::common::*;
use axum::http::StatusCode;
use base64::Engine as _;
use rand_core::OsRng;
use sealkit_pythia::v3;
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::sqlite::SqliteStore;
use sealkit_server::store::Store;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::Arc;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const PATH: &str = "/brainkey/v3/harden";

use crate::oracle::Oracle;

fn start_oracle() -> Option<Oracle> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    Oracle::start(&repo, "the brainkey v3 oracle")
}

/// The oracle blocks on the server's answer: run it off the runtime serving that answer.
async fn call(mut oracle: Oracle, request: Value) -> (Oracle, Value) {
    tokio::task::spawn_blocking(move || {
        let answer = oracle.call(request);
        (oracle, answer)
    })
    .await
    .unwrap()
}

/// e3kit-kotlin's `BrainkeyHttpClient.deriveKeyPair` with the C client, through HTTP; returns
/// (seed, server public key), both hex.
async fn c_flow(
    oracle: Oracle,
    url: &str,
    token: &str,
    password: &str,
) -> (Oracle, String, String) {
    let (oracle, answer) = call(
        oracle,
        json!({"op": "flow", "url": url, "token": token, "password": password}),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    assert_eq!(
        answer["verified"], true,
        "the C client must accept our proof: {answer}"
    );
    let seed = answer["seed"].as_str().unwrap().to_owned();
    let public_key = answer["server_public_key"].as_str().unwrap().to_owned();
    (oracle, seed, public_key)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_client_backs_up_and_restores_through_us() {
    let Some(oracle) = start_oracle() else {
        return;
    };
    let h = harness().await;
    let url = format!("http://{}", listen(h.router.clone()).await);
    let alice = token(&h.app, "alice");
    let (oracle, seed1, pk_alice) = c_flow(oracle, &url, &alice, "correct horse").await;
    let (oracle, seed2, pk_again) = c_flow(oracle, &url, &alice, "correct horse").await;
    assert_eq!(seed1, seed2, "same identity and password: same seed");
    assert_eq!(pk_alice, pk_again, "one public key per identity");
    let (oracle, other_password, _) = c_flow(oracle, &url, &alice, "battery staple").await;
    assert_ne!(seed1, other_password, "another password: another seed");
    let (oracle, bob_seed, pk_bob) =
        c_flow(oracle, &url, &token(&h.app, "bob"), "correct horse").await;
    assert_ne!(seed1, bob_seed, "another identity: another seed");
    assert_ne!(pk_alice, pk_bob);
    let (oracle, other_app_seed, _) =
        c_flow(oracle, &url, &token(&h.other_app, "alice"), "correct horse").await;
    assert_ne!(
        seed1, other_app_seed,
        "the same identity in another app: another seed"
    );

    // A second replica over the same database and secret file answers the same.
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&h.dir.path().join("db.sqlite"))
            .await
            .unwrap(),
    );
    let mut config = sealkit_server::Config::default();
    config.data_dir = h.dir.path().to_owned();
    let replica = sealkit_server::app(config, store).await.unwrap();
    let replica_url = format!("http://{}", listen(replica).await);
    let (_oracle, replica_seed, replica_pk) =
        c_flow(oracle, &replica_url, &alice, "correct horse").await;
    assert_eq!(replica_seed, seed1);
    assert_eq!(replica_pk, pk_alice);
}

/// Two replicas on one PostgreSQL database (sharing the deployment's secret file, as replicas
/// must): the C client gets one seed through either, and the throttle is one budget for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_c_client_gets_one_seed_from_two_postgresql_replicas() {
    let Some(oracle) = start_oracle() else {
        return;
    };
    let schema = schema_name("bk3");
    let store: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_fresh_schema(&pg_url(), &schema)
            .await
            .expect("PostgreSQL reachable at DATABASE_URL"),
    );
    let mut config = sealkit_server::Config::default();
    config.brainkey_burst = 3;
    config.brainkey_per_second = 0.001;
    let a = harness_on(config.clone(), store).await;
    config.data_dir = a.dir.path().to_owned();
    let store_b: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&pg_url(), &schema)
            .await
            .unwrap(),
    );
    let b = sealkit_server::app(config, store_b).await.unwrap();
    let (url_a, url_b) = (
        format!("http://{}", listen(a.router.clone()).await),
        format!("http://{}", listen(b).await),
    );
    let alice = token(&a.app, "alice");
    let (oracle, seed_a, pk_a) = c_flow(oracle, &url_a, &alice, "correct horse").await;
    let (oracle, seed_b, pk_b) = c_flow(oracle, &url_b, &alice, "correct horse").await;
    assert_eq!(seed_a, seed_b, "both replicas derive alice's secret alike");
    assert_eq!(pk_a, pk_b);
    let (_oracle, other, _) = c_flow(oracle, &url_b, &alice, "battery staple").await;
    assert_ne!(seed_a, other);

    // The burst of 3 is spent across both replicas: the next request is throttled on either.
    let (_, blinded) = v3::blind(b"pw", &mut OsRng).unwrap();
    let request = json!({"blinded_point": B64.encode(blinded)});
    let (status, body) = a.json("POST", PATH, Some(&alice), Some(request)).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], 60007);
    PostgresStore::drop_schema(&pg_url(), &schema)
        .await
        .unwrap();
}

/// The Rust client against the server in-process: the proof verifies, the seed does not depend
/// on the blinding. Runs without the oracle too.
#[tokio::test]
async fn rust_client_round_trip() {
    let h = harness().await;
    let alice = token(&h.app, "alice");
    let mut seeds = Vec::new();
    for _ in 0..2 {
        let (factor, blinded) = v3::blind(b"pw", &mut OsRng).unwrap();
        let (status, body) = h
            .json(
                "POST",
                PATH,
                Some(&alice),
                Some(json!({"blinded_point": B64.encode(blinded)})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let field = |k: &str| B64.decode(body[k].as_str().unwrap()).unwrap();
        let hardened = field("hardened_point");
        let public_key = field("server_public_key");
        assert_eq!((hardened.len(), public_key.len()), (65, 65));
        let (c, s) = (field("proof_value_c"), field("proof_value_s"));
        assert_eq!((c.len(), s.len()), (32, 32));
        v3::verify(&blinded, &hardened, &public_key, &c, &s).unwrap();
        let seed = v3::deblind(b"pw", &hardened, &factor, v3::E3KIT_BACKUP_KEY_NAME).unwrap();
        seeds.push(seed.to_vec());
    }
    assert_eq!(seeds[0], seeds[1]);
}

#[tokio::test]
async fn malformed_points_are_400_and_cost_no_token() {
    let mut config = sealkit_server::Config::default();
    config.brainkey_burst = 1;
    config.brainkey_per_second = 0.001;
    let h = harness_with(config).await;
    let alice = token(&h.app, "alice");
    let (_, good) = v3::blind(b"pw", &mut OsRng).unwrap();
    let mut off_curve = good;
    off_curve[64] ^= 1;
    let mut compressed = good;
    compressed[0] = 0x02;
    let bad_points: Vec<Vec<u8>> = vec![
        vec![],
        vec![0],
        good[..33].to_vec(),
        [good.as_slice(), &[0]].concat(),
        off_curve.to_vec(),
        compressed.to_vec(),
        [[4u8].as_slice(), &[0u8; 64]].concat(),
    ];
    for point in bad_points {
        let (status, body) = h
            .json(
                "POST",
                PATH,
                Some(&alice),
                Some(json!({"blinded_point": B64.encode(&point)})),
            )
            .await;
        assert_error(status, &body, StatusCode::BAD_REQUEST);
        assert!(
            body["message"].as_str().unwrap().contains("blinded_point"),
            "{body}"
        );
    }
    for body in [
        json!({"blinded_point": "not base64!"}),
        json!({"blinded_point": 5}),
        json!({}),
    ] {
        let (status, answer) = h.json("POST", PATH, Some(&alice), Some(body)).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST);
    }
    let request = json!({"blinded_point": B64.encode(good)});
    let (status, body) = h.json("POST", PATH, None, Some(request.clone())).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);

    // None of the refusals took alice's only token; the next request takes it, the one after
    // is throttled with the code of /pythia/v1/brainkey.
    let (status, body) = h
        .json("POST", PATH, Some(&alice), Some(request.clone()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = h
        .json("POST", PATH, Some(&alice), Some(request.clone()))
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], 60007);
    // v1 and v3 draw on one budget per identity.
    let (blinded, _) = sealkit_pythia::blind(b"pw", &mut OsRng).unwrap();
    let (status, body) = h
        .json(
            "POST",
            "/pythia/v1/brainkey",
            Some(&alice),
            Some(json!({"blinded_password": B64.encode(blinded)})),
        )
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
    // Another identity has its own bucket.
    let (status, body) = h
        .json("POST", PATH, Some(&token(&h.app, "bob")), Some(request))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
