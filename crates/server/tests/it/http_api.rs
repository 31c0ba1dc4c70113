//! The HTTP API in-process (router + SQLite in a temp dir): the card directory's rules, the JWT
//! attack suite and bad input. Every rejection must be a 4xx with a `{code, message}` body.

use crate::common::*;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine as _;
use rand_core::OsRng;
use sealkit_crypto::{KeyType, PrivateKey};
use serde_json::{json, Value};
use tower::ServiceExt;

#[tokio::test]
async fn publish_search_rotate_revoke() {
    let h = harness().await;
    let alice_token = token(&h.app, "alice");
    let k1 = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let c1 = card("alice", &k1, None);
    let (status, stored) = h
        .json(
            "POST",
            "/card/v5",
            Some(&alice_token),
            Some(serde_json::to_value(&c1).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{stored}");
    assert_eq!(
        stored["content_snapshot"],
        json!(c1.content_snapshot),
        "snapshot echoed verbatim"
    );
    let signers: Vec<&str> = stored["signatures"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["signer"].as_str().unwrap())
        .collect();
    assert_eq!(signers, ["self", "virgil"]);
    let id1 = c1.card_id().unwrap().to_string();

    // A second first card for the same identity is refused.
    let other = card(
        "alice",
        &PrivateKey::generate(KeyType::Ed25519, &mut OsRng),
        None,
    );
    let (status, body) = h
        .json(
            "POST",
            "/card/v5",
            Some(&alice_token),
            Some(serde_json::to_value(&other).unwrap()),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT);

    // Rotation: the chain comes back in search.
    let k2 = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let c2 = card("alice", &k2, Some(&id1));
    let (status, _) = h
        .json(
            "POST",
            "/card/v5",
            Some(&alice_token),
            Some(serde_json::to_value(&c2).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let bob_token = token(&h.app, "bob");
    let (status, found) = h
        .json(
            "POST",
            "/card/v5/actions/search",
            Some(&bob_token),
            Some(json!({"identities": ["alice", "nobody"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        found.as_array().unwrap().len(),
        2,
        "current card + predecessor"
    );

    // GET marks the old one as superseded (sic).
    let (status, headers, _) = h
        .call("GET", &format!("/card/v5/{id1}"), Some(&bob_token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers["x-virgil-is-superseeded"], "true");
    let id2 = c2.card_id().unwrap().to_string();
    let (_, headers, _) = h
        .call("GET", &format!("/card/v5/{id2}"), Some(&bob_token), None)
        .await;
    assert_eq!(headers["x-virgil-is-superseeded"], "false");

    // Another app sees nothing.
    let stranger = token(&h.other_app, "bob");
    let (_, found) = h
        .json(
            "POST",
            "/card/v5/actions/search",
            Some(&stranger),
            Some(json!({"identities": ["alice"]})),
        )
        .await;
    assert_eq!(found, json!([]));
    let (status, body) = h
        .json("GET", &format!("/card/v5/{id2}"), Some(&stranger), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);

    // Only the owner revokes; revoking the head hides the chain; a new first card is then fine.
    let (status, body) = h
        .json(
            "POST",
            &format!("/card/v5/actions/revoke/{id2}"),
            Some(&bob_token),
            Some(json!({})),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
    let (status, _) = h
        .json(
            "POST",
            &format!("/card/v5/actions/revoke/{id2}"),
            Some(&alice_token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, found) = h
        .json(
            "POST",
            "/card/v5/actions/search",
            Some(&bob_token),
            Some(json!({"identities": ["alice"]})),
        )
        .await;
    assert_eq!(found, json!([]));
    let (status, _) = h
        .json(
            "POST",
            "/card/v5",
            Some(&alice_token),
            Some(serde_json::to_value(&other).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn jwt_attacks_are_rejected_with_401() {
    let h = harness().await;
    let app_key = PrivateKey::import(h.app.api_private_key.as_bytes()).unwrap();
    let other_key = PrivateKey::import(h.other_app.api_private_key.as_bytes()).unwrap();
    let now = sealkit_server::now();
    let header =
        json!({"alg": "VEDS512", "kid": h.app.api_key_id, "typ": "JWT", "cty": "virgil-jwt;v=1"});
    let payload = json!({"iss": format!("virgil-{}", h.app.app_id), "sub": "identity-alice", "iat": now, "exp": now + 600});
    let good = craft(&header, &payload, &app_key);
    let search = Some(json!({"identities": ["alice"]}));
    let (status, _) = h
        .json(
            "POST",
            "/card/v5/actions/search",
            Some(&good),
            search.clone(),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the crafted baseline token must work"
    );

    let with = |field: &str, value: Value, in_header: bool| {
        let (mut hd, mut pl) = (header.clone(), payload.clone());
        if in_header {
            hd[field] = value
        } else {
            pl[field] = value
        }
        craft(&hd, &pl, &app_key)
    };
    let (signed_part, _) = good.rsplit_once('.').unwrap();
    let tampered_payload = {
        let mut pl = payload.clone();
        pl["sub"] = json!("identity-mallory");
        let parts: Vec<&str> = good.split('.').collect();
        format!(
            "{}.{}.{}",
            parts[0],
            b64url(pl.to_string().as_bytes()),
            parts[2]
        )
    };
    let cases: Vec<(&str, String, u64)> = vec![
        ("wrong alg", with("alg", json!("HS256"), true), 20301),
        ("wrong typ", with("typ", json!("JWS"), true), 20301),
        (
            "wrong cty",
            with("cty", json!("virgil-jwt;v=2"), true),
            20301,
        ),
        (
            "unknown kid",
            with("kid", json!("00112233445566778899aabbccddeeff"), true),
            20302,
        ),
        (
            "missing kid",
            {
                let mut hd = header.clone();
                hd.as_object_mut().unwrap().remove("kid");
                craft(&hd, &payload, &app_key)
            },
            20301,
        ),
        (
            "wrong iss",
            with(
                "iss",
                json!(format!("virgil-{}", h.other_app.app_id)),
                false,
            ),
            20303,
        ),
        (
            "signed by another app's key",
            craft(&header, &payload, &other_key),
            20303,
        ),
        ("tampered payload", tampered_payload, 20303),
        (
            "expired",
            {
                let mut pl = payload.clone();
                pl["iat"] = json!(now - 7200);
                pl["exp"] = json!(now - 3600);
                craft(&header, &pl, &app_key)
            },
            20304,
        ),
        (
            "not yet valid",
            with("iat", json!(now + 3600), false),
            20305,
        ),
        (
            "sub without identity-",
            with("sub", json!("alice"), false),
            20301,
        ),
        ("garbage", "not.a.token!".to_owned(), 20301),
        ("two segments", signed_part.to_owned(), 20301),
        ("empty", String::new(), 20300),
    ];
    for (name, token, code) in cases {
        let (status, body) = h
            .json(
                "POST",
                "/card/v5/actions/search",
                Some(&token),
                search.clone(),
            )
            .await;
        assert_error(status, &body, StatusCode::UNAUTHORIZED);
        assert_eq!(body["code"], json!(code), "{name}: {body}");
    }
    // No Authorization header, or another scheme.
    let (status, body) = h
        .json("POST", "/card/v5/actions/search", None, search.clone())
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED);
    let (status, _, _) = h
        .call(
            "POST",
            "/card/v5/actions/search",
            None,
            Some(b"{}".to_vec()),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn publishing_for_another_identity_is_forbidden() {
    let h = harness().await;
    let mallory = token(&h.app, "mallory");
    let key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let c = card("alice", &key, None);
    let (status, body) = h
        .json(
            "POST",
            "/card/v5",
            Some(&mallory),
            Some(serde_json::to_value(&c).unwrap()),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn bad_input_gets_4xx_json() {
    let h = harness().await;
    let t = token(&h.app, "alice");
    let key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let good = card("alice", &key, None);

    let mut bad_sig = good.clone();
    let other = card(
        "alice",
        &PrivateKey::generate(KeyType::Ed25519, &mut OsRng),
        None,
    );
    bad_sig.signatures = other.signatures.clone();
    let mut no_self = good.clone();
    no_self.signatures.clear();
    let mut forged_service = good.clone();
    forged_service
        .signatures
        .push(sealkit_proto::cards::RawSignature {
            signer: "virgil".into(),
            signature: good.signatures[0].signature.clone(),
            snapshot: None,
        });
    let p256 = PrivateKey::generate(KeyType::Secp256r1, &mut OsRng);
    let p256_card = card("alice", &p256, None);
    let mut mismatched_p256 = p256_card.clone();
    mismatched_p256.signatures = card(
        "alice",
        &PrivateKey::generate(KeyType::Secp256r1, &mut OsRng),
        None,
    )
    .signatures;
    let snapshot = |text: &str| base64::engine::general_purpose::STANDARD.encode(text);
    let bodies: Vec<(&str, Vec<u8>, StatusCode)> = vec![
        ("malformed JSON", b"{\"content_snapshot\": ".to_vec(), StatusCode::BAD_REQUEST),
        ("not an object", b"[1,2]".to_vec(), StatusCode::BAD_REQUEST),
        ("snapshot not base64", json!({"content_snapshot": "%%%", "signatures": []}).to_string().into_bytes(), StatusCode::BAD_REQUEST),
        ("snapshot not JSON", json!({"content_snapshot": snapshot("hello"), "signatures": []}).to_string().into_bytes(), StatusCode::BAD_REQUEST),
        ("wrong version", json!({"content_snapshot": snapshot(r#"{"identity":"alice","created_at":1,"version":"4.0","public_key":"MCowBQYDK2VwAyEAv5tSlHoZUheB6Qa4y4hXoWTXwzPgQXO8yHyXjE8/L2M="}"#), "signatures": []}).to_string().into_bytes(), StatusCode::BAD_REQUEST),
        ("bad public key", json!({"content_snapshot": snapshot(r#"{"identity":"alice","created_at":1,"version":"5.0","public_key":"AAAA"}"#), "signatures": []}).to_string().into_bytes(), StatusCode::BAD_REQUEST),
        ("self signature by another key", serde_json::to_vec(&bad_sig).unwrap(), StatusCode::BAD_REQUEST),
        ("no self signature", serde_json::to_vec(&no_self).unwrap(), StatusCode::BAD_REQUEST),
        ("forged service signature", serde_json::to_vec(&forged_service).unwrap(), StatusCode::BAD_REQUEST),
        ("P-256 self signature mismatch", serde_json::to_vec(&mismatched_p256).unwrap(), StatusCode::BAD_REQUEST),
        ("huge body", vec![b' '; 5 << 20], StatusCode::PAYLOAD_TOO_LARGE),
    ];
    for (name, body, expected) in bodies {
        let (status, _, bytes) = h.call("POST", "/card/v5", Some(&t), Some(body)).await;
        let value: Value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| panic!("{name}: not JSON: {}", String::from_utf8_lossy(&bytes)));
        assert_error(status, &value, expected);
    }
    // A valid P-256 card is accepted.
    let (status, body) = h
        .json(
            "POST",
            "/card/v5",
            Some(&t),
            Some(serde_json::to_value(&p256_card).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = h
        .json(
            "POST",
            "/card/v5/actions/search",
            Some(&t),
            Some(json!({"identities": "alice"})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let many: Vec<String> = (0..1001).map(|i| format!("user{i}")).collect();
    let (status, body) = h
        .json(
            "POST",
            "/card/v5/actions/search",
            Some(&t),
            Some(json!({"identities": many})),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST);
    let (status, body) = h
        .json("GET", "/card/v5/not-a-card-id", Some(&t), None)
        .await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = h.json("GET", "/no/such/route", Some(&t), None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND);
    let (status, body) = h.json("DELETE", "/card/v5", Some(&t), None).await;
    assert_error(status, &body, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn health_metrics_and_cors() {
    let h = harness().await;
    let (status, body) = h.json("GET", "/healthz", None, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    let t = token(&h.app, "alice");
    h.json(
        "POST",
        "/card/v5/actions/search",
        Some(&t),
        Some(json!({"identities": ["x"]})),
    )
    .await;
    let (status, _, text) = h.call("GET", "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains(r#"sealkit_http_requests_total{route="/card/v5/actions/search",method="POST",status="200"} 1"#), "{text}");
    assert!(
        text.contains("sealkit_http_request_duration_seconds_bucket"),
        "{text}"
    );

    let req = Request::builder()
        .method("OPTIONS")
        .uri("/keyknox/v1")
        .header("Origin", "https://app.example")
        .header("Access-Control-Request-Method", "PUT")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type,virgil-keyknox-previous-hash",
        )
        .body(Body::empty())
        .unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    assert!(resp.status().is_success());
    let allow = resp.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allow.contains("virgil-keyknox-previous-hash") && allow.contains("authorization"),
        "{allow}"
    );
    let (_, headers, _) = h.call("GET", "/healthz", None, None).await;
    let _ = headers;
    let req = Request::builder()
        .method("GET")
        .uri("/healthz")
        .header("Origin", "https://app.example")
        .body(Body::empty())
        .unwrap();
    let resp = h.router.clone().oneshot(req).await.unwrap();
    let expose = resp.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        expose.contains("virgil-keyknox-hash") && expose.contains("x-virgil-is-superseeded"),
        "{expose}"
    );
}
