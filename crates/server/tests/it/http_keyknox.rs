//! Keyknox v1/v2 and the brainkey endpoint in-process: hash headers, compare-and-swap with code
//! 50010, empty answers for missing data, copies per recipient, brainkey determinism across
//! blindings and throttling with code 60007.

use crate::common::*;
use axum::http::StatusCode;
use base64::Engine as _;
use rand_core::OsRng;
use serde_json::{json, Value};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

impl Harness {
    /// A request with extra headers; returns status, the Keyknox hash header and the JSON body.
    async fn keyknox(
        &self,
        method: &str,
        path: &str,
        token: &str,
        previous: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Option<String>, Value) {
        use axum::body::Body;
        use http_body_util::BodyExt;
        use tower::ServiceExt;
        let mut req = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("Authorization", format!("Virgil {token}"));
        if let Some(p) = previous {
            req = req.header("Virgil-Keyknox-Previous-Hash", p);
        }
        let req = match body {
            Some(b) => req
                .header("Content-Type", "application/json")
                .body(Body::from(b.to_string()))
                .unwrap(),
            // e3kit's v1 reset: empty body, form content type.
            None => req
                .header("Content-Type", "application/x-www-form-urlencoded")
                .body(Body::empty())
                .unwrap(),
        };
        let resp = self.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let hash = resp
            .headers()
            .get("virgil-keyknox-hash")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (
            status,
            hash,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        )
    }
}

#[tokio::test]
async fn keyknox_v1_versions_hashes_and_compare_and_swap() {
    let h = harness().await;
    let t = token(&h.app, "alice");
    let (status, empty_hash, body) = h.keyknox("GET", "/keyknox/v1", &t, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"meta": "", "value": "", "version": "1.0"}));
    let empty_hash = empty_hash.unwrap();
    assert_eq!(empty_hash, "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");

    let blob = json!({"meta": B64.encode("meta-1"), "value": B64.encode("value-1")});
    let (status, h1, body) = h
        .keyknox(
            "PUT",
            "/keyknox/v1",
            &t,
            Some(&empty_hash),
            Some(blob.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["version"], "1.0");
    assert_eq!(body["meta"], blob["meta"]);
    let h1 = h1.unwrap();
    assert_ne!(h1, empty_hash);
    let (_, pulled, _) = h.keyknox("GET", "/keyknox/v1", &t, None, None).await;
    assert_eq!(pulled.as_deref(), Some(h1.as_str()));

    // A stale or missing previous hash on non-empty storage: 50010.
    let blob2 = json!({"meta": B64.encode("meta-2"), "value": B64.encode("value-2")});
    for previous in [Some(empty_hash.as_str()), None] {
        let (status, _, body) = h
            .keyknox("PUT", "/keyknox/v1", &t, previous, Some(blob2.clone()))
            .await;
        assert_error(status, &body, StatusCode::CONFLICT);
        assert_eq!(body["code"], 50010);
    }
    let (status, _, body) = h
        .keyknox("PUT", "/keyknox/v1", &t, Some(&h1), Some(blob2.clone()))
        .await;
    assert_eq!((status, &body["version"]), (StatusCode::OK, &json!("2.0")));

    // Reset keeps a version count and empties the blob; other identities are untouched.
    let (status, _, body) = h.keyknox("POST", "/keyknox/v1/reset", &t, None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"meta": "", "value": "", "version": "3.0"}));
    let bob = token(&h.app, "bob");
    let (_, _, body) = h.keyknox("GET", "/keyknox/v1", &bob, None, None).await;
    assert_eq!(body["version"], "1.0");
    // After a reset the storage is empty again: a push without a previous hash is fine.
    let (status, _, body) = h.keyknox("PUT", "/keyknox/v1", &t, None, Some(blob)).await;
    assert_eq!((status, &body["version"]), (StatusCode::OK, &json!("4.0")));
    // Bad input.
    let (status, _, body) = h
        .keyknox(
            "PUT",
            "/keyknox/v1",
            &t,
            None,
            Some(json!({"meta": "", "value": "x"})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn keyknox_v2_copies_per_recipient() {
    let h = harness().await;
    let (alice, bob, charles) = (
        token(&h.app, "alice"),
        token(&h.app, "bob"),
        token(&h.app, "charles"),
    );
    let push = |ids: Vec<&str>, v: &str| json!({"root": "group-sessions", "path": "s1", "key": "0", "identities": ids, "meta": B64.encode(format!("m-{v}")), "value": B64.encode(format!("v-{v}"))});
    // createGroup: no previous hash.
    let (status, hash, body) = h
        .keyknox(
            "POST",
            "/keyknox/v2/push",
            &alice,
            None,
            Some(push(vec!["alice", "bob", "alice"], "1")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identities"], json!(["alice", "bob"]));
    assert_eq!(body["owner"], "alice");
    let h1 = hash.unwrap();
    // Creating it again without the hash: 50010 ("group already exists").
    let (status, _, body) = h
        .keyknox(
            "POST",
            "/keyknox/v2/push",
            &alice,
            None,
            Some(push(vec!["alice"], "x")),
        )
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::CONFLICT, &json!(50010))
    );
    // add charles: only charles gets the new copy; bob keeps his.
    let (status, h2, body) = h
        .keyknox(
            "POST",
            "/keyknox/v2/push",
            &alice,
            Some(&h1),
            Some(push(vec!["charles"], "2")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["identities"], json!(["alice", "bob", "charles"]));
    let pull = json!({"root": "group-sessions", "path": "s1", "key": "0", "identity": "alice"});
    let (_, pulled_hash, b) = h
        .keyknox("POST", "/keyknox/v2/pull", &bob, None, Some(pull.clone()))
        .await;
    assert_eq!(b["meta"], json!(B64.encode("m-1")));
    assert_eq!(pulled_hash, h2);
    let (_, _, c) = h
        .keyknox(
            "POST",
            "/keyknox/v2/pull",
            &charles,
            None,
            Some(pull.clone()),
        )
        .await;
    assert_eq!(c["value"], json!(B64.encode("v-2")));
    let keys = json!({"root": "group-sessions", "path": "s1", "identity": "alice"});
    let (_, _, k) = h
        .keyknox(
            "POST",
            "/keyknox/v2/keys",
            &charles,
            None,
            Some(keys.clone()),
        )
        .await;
    assert_eq!(k, json!(["0"]));
    // remove bob's copy: bob sees nothing, the hash is unchanged.
    let (status, _, body) = h
        .keyknox(
            "POST",
            "/keyknox/v2/reset",
            &alice,
            None,
            Some(json!({"root": "group-sessions", "path": "s1", "identity": "bob"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"owner": "alice", "root": "group-sessions", "path": "s1", "key": "", "identities": [], "meta": "", "value": ""})
    );
    let (_, _, k) = h
        .keyknox("POST", "/keyknox/v2/keys", &bob, None, Some(keys.clone()))
        .await;
    assert_eq!(k, json!([]));
    let (status, _, b) = h
        .keyknox("POST", "/keyknox/v2/pull", &bob, None, Some(pull.clone()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (b["meta"].as_str(), b["identities"].as_array().map(Vec::len)),
        (Some(""), Some(0))
    );
    let (_, same, _) = h
        .keyknox("POST", "/keyknox/v2/pull", &alice, None, Some(pull.clone()))
        .await;
    assert_eq!(same, h2, "a copy removal keeps the entry hash");
    // Bob cannot reset alice's entry: resets only touch the caller's own entries.
    h.keyknox(
        "POST",
        "/keyknox/v2/reset",
        &bob,
        None,
        Some(json!({"root": "group-sessions"})),
    )
    .await;
    let (_, _, k) = h
        .keyknox(
            "POST",
            "/keyknox/v2/keys",
            &charles,
            None,
            Some(keys.clone()),
        )
        .await;
    assert_eq!(k, json!(["0"]));
    // deleteGroup.
    h.keyknox(
        "POST",
        "/keyknox/v2/reset",
        &alice,
        None,
        Some(json!({"root": "group-sessions", "path": "s1"})),
    )
    .await;
    let (_, _, k) = h
        .keyknox("POST", "/keyknox/v2/keys", &charles, None, Some(keys))
        .await;
    assert_eq!(k, json!([]));
}

#[tokio::test]
async fn keyknox_v2_group_of_100() {
    let h = harness().await;
    let alice = token(&h.app, "alice");
    let members: Vec<String> = (0..100).map(|i| format!("member-{i:03}")).collect();
    // A ticket encrypted for 100 members: about 25 KiB of message info.
    let meta = B64.encode(vec![7u8; 26_000]);
    let body = json!({"root": "group-sessions", "path": "big", "key": "0", "identities": members, "meta": meta, "value": B64.encode("ticket")});
    let (status, _, answer) = h
        .keyknox("POST", "/keyknox/v2/push", &alice, None, Some(body))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["identities"].as_array().unwrap().len(), 100);
    let last = token(&h.app, "member-099");
    let (_, _, pulled) = h
        .keyknox(
            "POST",
            "/keyknox/v2/pull",
            &last,
            None,
            Some(json!({"root": "group-sessions", "path": "big", "key": "0", "identity": "alice"})),
        )
        .await;
    assert_eq!(pulled["meta"], json!(meta));
}

#[tokio::test]
async fn brainkey_is_deterministic_per_identity_and_throttled() {
    let mut config = sealkit_server::Config::default();
    config.brainkey_burst = 3;
    config.brainkey_per_second = 0.001;
    let h = harness_with(config).await;
    let alice = token(&h.app, "alice");
    let bob = token(&h.app, "bob");
    let mut deblinded = Vec::new();
    for t in [&alice, &alice, &bob] {
        let (blinded, secret) = sealkit_pythia::blind(b"correct horse", &mut OsRng).unwrap();
        let (status, body) = h
            .json(
                "POST",
                "/pythia/v1/brainkey",
                Some(t),
                Some(json!({"blinded_password": B64.encode(blinded)})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let seed = B64.decode(body["seed"].as_str().unwrap()).unwrap();
        assert_eq!(seed.len(), 384);
        deblinded.push(sealkit_pythia::deblind(&seed, &secret).unwrap().to_vec());
    }
    assert_eq!(
        deblinded[0], deblinded[1],
        "same password and identity: same result whatever the blinding"
    );
    assert_ne!(
        deblinded[0], deblinded[2],
        "another identity: another result"
    );

    // alice has used 2 of 3 tokens.
    let (blinded, _) = sealkit_pythia::blind(b"x", &mut OsRng).unwrap();
    let req = json!({"blinded_password": B64.encode(blinded)});
    let (status, _) = h
        .json(
            "POST",
            "/pythia/v1/brainkey",
            Some(&alice),
            Some(req.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = h
        .json(
            "POST",
            "/pythia/v1/brainkey",
            Some(&alice),
            Some(req.clone()),
        )
        .await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(body["code"], 60007);

    // Malformed points are 400, not 500.
    let mut flipped = blinded;
    flipped[10] ^= 1;
    for bad in [
        json!({"blinded_password": "%%"}),
        json!({"blinded_password": B64.encode([2u8; 49])}),
        json!({"blinded_password": B64.encode(&flipped[..48])}),
    ] {
        let (status, body) = h
            .json("POST", "/pythia/v1/brainkey", Some(&bob), Some(bad))
            .await;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::TOO_MANY_REQUESTS,
            "{status} {body}"
        );
        assert!(body["code"].as_u64().is_some());
    }
    // The secret file was created with mode 0600.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.dir.path().join("pythia.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// A 64 KB `brainkey_id` used to be hashed and cached as is; it is refused before any work
/// (and before the caller's rate-limit bucket is touched), while 128 bytes still work.
#[tokio::test]
async fn an_oversized_brainkey_id_is_400() {
    let h = harness().await;
    let alice = token(&h.app, "alice");
    let (blinded, _) = sealkit_pythia::blind(b"pw", &mut OsRng).unwrap();
    for (id_len, expected) in [
        (64 * 1024, StatusCode::BAD_REQUEST),
        (129, StatusCode::BAD_REQUEST),
        (128, StatusCode::OK),
    ] {
        let (status, body) = h
            .json(
                "POST",
                "/pythia/v1/brainkey",
                Some(&alice),
                Some(json!({"blinded_password": B64.encode(blinded), "brainkey_id": "k".repeat(id_len)})),
            )
            .await;
        if expected == StatusCode::OK {
            assert_eq!(status, expected, "{body}");
        } else {
            assert_error(status, &body, expected);
            assert!(
                body["message"].as_str().unwrap().contains("brainkey_id"),
                "{body}"
            );
        }
    }
}
