//! Tests of the Virgil JWT (spec §2): round trips, byte layout against the spec and the captures,
//! and every rejection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use base64::engine::general_purpose::URL_SAFE;
use proptest::prelude::*;
use rand_core::OsRng;
use sealkit_crypto::PrivateKey;

const APP: &str = "e3kit-selfhost-test-app";
const KID: &str = "test-api-key-id-0001";
const NOW: i64 = 1_795_801_646;

/// The token of `alice-mwz9xlzv` in `shared/captures/capture.txt` (made by the JS SDK).
const CAPTURED_ALICE: &str = "eyJhbGciOiJWRURTNTEyIiwia2lkIjoidGVzdC1hcGkta2V5LWlkLTAwMDEiLCJ0eXAiOiJKV1QiLCJjdHkiOiJ2aXJnaWwtand0O3Y9MSJ9.eyJpc3MiOiJ2aXJnaWwtZTNraXQtc2VsZmhvc3QtdGVzdC1hcHAiLCJzdWIiOiJpZGVudGl0eS1hbGljZS1td3o5eGx6diIsImlhdCI6MTc5NTgwMTY0NiwiZXhwIjoxNzk1ODA1MjQ2fQ.MFEwDQYJYIZIAWUDBAIDBQAEQD6Jb_WrpDP_p8pOzqLo_SdnbTbav8bA5QLlQvFv7WL6yGVLGSkwtxc9UB9ueIhWFtYmCngNcQ19h7BMlwZDBA8";

/// The token of `jörg-1795801663439` in `shared/captures/capture-nonascii.txt`: the payload holds
/// the Latin-1 byte 0xF6.
const CAPTURED_JOERG: &str = "eyJhbGciOiJWRURTNTEyIiwia2lkIjoidGVzdC1hcGkta2V5LWlkLTAwMDEiLCJ0eXAiOiJKV1QiLCJjdHkiOiJ2aXJnaWwtand0O3Y9MSJ9.eyJpc3MiOiJ2aXJnaWwtZTNraXQtc2VsZmhvc3QtdGVzdC1hcHAiLCJzdWIiOiJpZGVudGl0eS1q9nJnLTE3OTU4MDE2NjM0MzkiLCJpYXQiOjE3OTU4MDE2NjMsImV4cCI6MTc5NTgwNTI2M30.MFEwDQYJYIZIAWUDBAIDBQAEQGkIR0IH9XjhDloi7ZR0Ilgox9d2VPxYSn9HDnZER_4uFE_2VkytXW8E_ERoJqo-BRVsJVfgxJ6TwwIOwEwh-A0";

fn app_key() -> PrivateKey {
    PrivateKey::ed25519_from_seed(&[7; 32])
}

fn generator() -> JwtGenerator {
    JwtGenerator::new(APP, KID, app_key(), 3600)
}

/// Builds a token from arbitrary header and payload text, signed by `key`.
fn sign_raw(header: &[u8], payload: &[u8], key: &PrivateKey) -> String {
    let signed = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = sealkit_crypto::sign(signed.as_bytes(), key, &mut OsRng).unwrap();
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig))
}

const GOOD_HEADER: &str =
    r#"{"alg":"VEDS512","kid":"test-api-key-id-0001","typ":"JWT","cty":"virgil-jwt;v=1"}"#;

fn payload(iss: &str, sub: &str, iat: i64, exp: i64) -> String {
    format!(r#"{{"iss":"{iss}","sub":"{sub}","iat":{iat},"exp":{exp}}}"#)
}

fn good_payload() -> String {
    payload(
        "virgil-e3kit-selfhost-test-app",
        "identity-alice",
        NOW,
        NOW + 3600,
    )
}

/// Parses and verifies a token at `NOW` with no leeway.
fn check(token: &str) -> Result<(), JwtError> {
    Jwt::parse(token)?.verify(app_key().public_key(), APP, NOW, 0)
}

fn decode_segment(token: &str, index: usize) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(token.split('.').nth(index).unwrap())
        .unwrap()
}

#[test]
fn generate_parse_verify_round_trip() {
    let jwt = generator().generate("alice", NOW).unwrap();
    let parsed = Jwt::parse(jwt.as_str()).unwrap();
    assert_eq!(parsed, jwt);
    let via_from_str: Jwt = jwt.to_string().parse().unwrap();
    assert_eq!(via_from_str, jwt);
    assert_eq!(parsed.identity(), Ok("alice"));
    assert_eq!(parsed.app_id(), Ok(APP));
    assert_eq!(parsed.header().kid, KID);
    assert_eq!(parsed.header().alg, "VEDS512");
    assert_eq!(parsed.claims().iat, NOW);
    assert_eq!(parsed.claims().exp, NOW + 3600);
    assert_eq!(parsed.claims().ada, None);
    // An Ed25519 Virgil signature is 83 bytes of DER (spec §2).
    assert_eq!(parsed.signature().len(), 83);
    assert_eq!(
        parsed.signed_part(),
        jwt.as_str().rsplit_once('.').unwrap().0.as_bytes()
    );
    parsed.verify(app_key().public_key(), APP, NOW, 0).unwrap();
    parsed
        .verify(generator().public_key(), APP, NOW + 3600, 0)
        .unwrap();
}

#[test]
fn generate_with_data_round_trip() {
    let ada = serde_json::json!({"roles": ["admin", "ops"]});
    let jwt = generator()
        .generate_with_data("alice", NOW, ada.clone())
        .unwrap();
    assert_eq!(jwt.claims().ada.as_ref(), Some(&ada));
    let payload = String::from_utf8(decode_segment(jwt.as_str(), 1)).unwrap();
    assert_eq!(
        payload,
        format!(
            r#"{{"iss":"virgil-{APP}","sub":"identity-alice","iat":{NOW},"exp":{},"ada":{{"roles":["admin","ops"]}}}}"#,
            NOW + 3600
        )
    );
    jwt.verify(app_key().public_key(), APP, NOW, 0).unwrap();
    // `null` is the same as no data.
    let jwt = generator()
        .generate_with_data("alice", NOW, serde_json::Value::Null)
        .unwrap();
    assert!(!String::from_utf8(decode_segment(jwt.as_str(), 1))
        .unwrap()
        .contains("ada"));
}

#[test]
fn layout_matches_spec_example() {
    // spec §2: the decoded header and payload of a captured token.
    let spec_header =
        r#"{"alg":"VEDS512","kid":"test-api-key-id-0001","typ":"JWT","cty":"virgil-jwt;v=1"}"#;
    let spec_payload = r#"{"iss":"virgil-e3kit-selfhost-test-app","sub":"identity-alice-mwz9ts0l","iat":1795801467,"exp":1795805067}"#;
    let jwt = generator()
        .generate("alice-mwz9ts0l", 1_795_801_467)
        .unwrap();
    assert_eq!(decode_segment(jwt.as_str(), 0), spec_header.as_bytes());
    assert_eq!(decode_segment(jwt.as_str(), 1), spec_payload.as_bytes());
    assert_eq!(
        serde_json::to_string(jwt.header()).unwrap(),
        spec_header,
        "JwtHeader serializes in the JS key order"
    );
    assert_eq!(serde_json::to_string(jwt.claims()).unwrap(), spec_payload);
}

#[test]
fn signed_part_matches_captured_js_token() {
    // Same inputs as the JS SDK's token: the signed segments are byte-identical.
    let jwt = generator().generate("alice-mwz9xlzv", NOW).unwrap();
    let (captured_signed, _) = CAPTURED_ALICE.rsplit_once('.').unwrap();
    assert_eq!(jwt.signed_part(), captured_signed.as_bytes());
    // The captured token parses (its app key is not available, so only the structure is checked).
    let captured = Jwt::parse(CAPTURED_ALICE).unwrap();
    assert_eq!(captured.identity(), Ok("alice-mwz9xlzv"));
    assert_eq!(captured.app_id(), Ok(APP));
    assert_eq!(captured.header().kid, KID);
    assert_eq!(captured.signature().len(), 83);
    assert_eq!(captured.as_str(), CAPTURED_ALICE);
    assert_eq!(
        captured.verify(app_key().public_key(), APP, NOW, 0),
        Err(JwtError::SignatureInvalid)
    );
}

#[test]
fn latin1_payload_from_js_sdk() {
    let captured = Jwt::parse(CAPTURED_JOERG).unwrap();
    assert_eq!(captured.identity(), Ok("j\u{f6}rg-1795801663439"));
    // The generator encodes this identity as the JS SDK does: the payload segments are identical.
    let jwt = generator()
        .generate("j\u{f6}rg-1795801663439", 1_795_801_663)
        .unwrap();
    assert_eq!(
        jwt.signed_part(),
        CAPTURED_JOERG.rsplit_once('.').unwrap().0.as_bytes()
    );
    jwt.verify(app_key().public_key(), APP, 1_795_801_663, 0)
        .unwrap();
    // A UTF-8 payload (other SDKs) parses too.
    let token = sign_raw(
        GOOD_HEADER.as_bytes(),
        payload(&format!("virgil-{APP}"), "identity-j\u{f6}rg", NOW, NOW + 1).as_bytes(),
        &app_key(),
    );
    assert_eq!(Jwt::parse(&token).unwrap().identity(), Ok("j\u{f6}rg"));
    check(&token).unwrap();
}

#[test]
fn identities_always_read_back() {
    for identity in [
        "\u{c3}\u{b6}",
        "\u{20ac}uro",
        "\u{ff}",
        "a b",
        "x@example.com",
    ] {
        let jwt = generator().generate(identity, NOW).unwrap();
        assert_eq!(Jwt::parse(jwt.as_str()).unwrap().identity(), Ok(identity));
        jwt.verify(app_key().public_key(), APP, NOW, 0).unwrap();
    }
}

#[test]
fn rejects_wrong_alg_typ_cty() {
    let p = good_payload();
    let cases = [
        (
            r#"{"alg":"EdDSA","kid":"k","typ":"JWT","cty":"virgil-jwt;v=1"}"#,
            JwtError::UnsupportedAlgorithm,
        ),
        (
            r#"{"alg":"VEDS512","kid":"k","typ":"JWS","cty":"virgil-jwt;v=1"}"#,
            JwtError::WrongType,
        ),
        (
            r#"{"alg":"VEDS512","kid":"k","typ":"JWT","cty":"virgil-jwt;v=2"}"#,
            JwtError::WrongType,
        ),
    ];
    for (header, expected) in cases {
        let token = sign_raw(header.as_bytes(), p.as_bytes(), &app_key());
        assert_eq!(check(&token), Err(expected), "{header}");
    }
}

#[test]
fn rejects_wrong_issuer() {
    let other_app = payload("virgil-another-app", "identity-alice", NOW, NOW + 60);
    let no_prefix = payload(APP, "identity-alice", NOW, NOW + 60);
    for p in [other_app, no_prefix] {
        let token = sign_raw(GOOD_HEADER.as_bytes(), p.as_bytes(), &app_key());
        assert_eq!(check(&token), Err(JwtError::WrongIssuer), "{p}");
    }
    let token = sign_raw(
        GOOD_HEADER.as_bytes(),
        payload(APP, "identity-alice", NOW, NOW + 60).as_bytes(),
        &app_key(),
    );
    assert_eq!(
        Jwt::parse(&token).unwrap().app_id(),
        Err(JwtError::WrongIssuer)
    );
}

#[test]
fn rejects_bad_subject() {
    let iss = format!("virgil-{APP}");
    for sub in ["alice", "identity-", "Identity-alice", "identity-a\\u0007b"] {
        let token = sign_raw(
            GOOD_HEADER.as_bytes(),
            payload(&iss, sub, NOW, NOW + 60).as_bytes(),
            &app_key(),
        );
        assert_eq!(check(&token), Err(JwtError::BadSubject), "{sub}");
    }
    let long = format!("identity-{}", "a".repeat(257));
    let token = sign_raw(
        GOOD_HEADER.as_bytes(),
        payload(&iss, &long, NOW, NOW + 60).as_bytes(),
        &app_key(),
    );
    assert_eq!(check(&token), Err(JwtError::BadSubject));
    assert_eq!(
        Jwt::parse(&sign_raw(
            GOOD_HEADER.as_bytes(),
            payload(&iss, "alice", NOW, NOW + 60).as_bytes(),
            &app_key()
        ))
        .unwrap()
        .identity(),
        Err(JwtError::BadSubject)
    );
}

#[test]
fn rejects_tampered_payload() {
    let jwt = generator().generate("alice", NOW).unwrap();
    let other = generator().generate("mallory", NOW).unwrap();
    let parts: Vec<&str> = jwt.as_str().split('.').collect();
    let other_payload = other.as_str().split('.').nth(1).unwrap();
    let swapped = format!("{}.{}.{}", parts[0], other_payload, parts[2]);
    assert_eq!(check(&swapped), Err(JwtError::SignatureInvalid));
    // Another iat, same signature.
    let later = generator().generate("alice", NOW - 1).unwrap();
    let later_payload = later.as_str().split('.').nth(1).unwrap();
    let retimed = format!("{}.{}.{}", parts[0], later_payload, parts[2]);
    assert_eq!(check(&retimed), Err(JwtError::SignatureInvalid));
    // A flipped bit in the signature.
    let mut sig = decode_segment(jwt.as_str(), 2);
    let last = sig.len() - 1;
    sig[last] ^= 1;
    let flipped = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&sig));
    assert_eq!(check(&flipped), Err(JwtError::SignatureInvalid));
    // Not a Virgil signature at all.
    let junk = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        URL_SAFE_NO_PAD.encode(b"junk")
    );
    assert_eq!(check(&junk), Err(JwtError::SignatureInvalid));
}

#[test]
fn rejects_signature_by_another_key() {
    let other = PrivateKey::ed25519_from_seed(&[8; 32]);
    let jwt = JwtGenerator::new(APP, KID, other, 3600)
        .generate("alice", NOW)
        .unwrap();
    assert_eq!(check(jwt.as_str()), Err(JwtError::SignatureInvalid));
}

#[test]
fn expiry_and_leeway() {
    let jwt = generator().generate("alice", NOW).unwrap(); // exp = NOW + 3600
    let key = app_key();
    let exp = NOW + 3600;
    assert_eq!(jwt.verify(key.public_key(), APP, exp, 0), Ok(()));
    assert_eq!(
        jwt.verify(key.public_key(), APP, exp + 1, 0),
        Err(JwtError::Expired)
    );
    assert_eq!(jwt.verify(key.public_key(), APP, exp + 30, 30), Ok(()));
    assert_eq!(
        jwt.verify(key.public_key(), APP, exp + 31, 30),
        Err(JwtError::Expired)
    );
    // A negative leeway counts as zero.
    assert_eq!(jwt.verify(key.public_key(), APP, exp, -100), Ok(()));
    // No overflow at the extremes.
    assert_eq!(
        jwt.verify(key.public_key(), APP, i64::MAX, i64::MAX),
        Ok(())
    );
    assert_eq!(
        jwt.verify(key.public_key(), APP, i64::MIN, i64::MAX),
        Err(JwtError::NotYetValid)
    );
}

#[test]
fn issued_in_the_future() {
    let jwt = generator().generate("alice", NOW + 100).unwrap();
    let key = app_key();
    assert_eq!(
        jwt.verify(key.public_key(), APP, NOW, 0),
        Err(JwtError::NotYetValid)
    );
    assert_eq!(
        jwt.verify(key.public_key(), APP, NOW, 99),
        Err(JwtError::NotYetValid)
    );
    assert_eq!(jwt.verify(key.public_key(), APP, NOW, 100), Ok(()));
    assert_eq!(jwt.verify(key.public_key(), APP, NOW + 100, 0), Ok(()));
}

#[test]
fn times_are_checked_after_the_signature() {
    let other = PrivateKey::ed25519_from_seed(&[8; 32]);
    let expired = JwtGenerator::new(APP, KID, other, 1)
        .generate("alice", NOW - 1000)
        .unwrap();
    assert_eq!(check(expired.as_str()), Err(JwtError::SignatureInvalid));
}

fn assert_malformed(token: &str) {
    assert!(
        matches!(Jwt::parse(token), Err(JwtError::Malformed(_))),
        "{token:?} parsed as {:?}",
        Jwt::parse(token)
    );
}

#[test]
fn rejects_wrong_segment_count() {
    let jwt = generator().generate("alice", NOW).unwrap();
    let parts: Vec<&str> = jwt.as_str().split('.').collect();
    assert_malformed(&format!("{}.{}", parts[0], parts[1]));
    assert_malformed(&format!(
        "{}.{}.{}.{}",
        parts[0], parts[1], parts[2], parts[2]
    ));
    assert_malformed(&format!("{}.{}.{}.", parts[0], parts[1], parts[2]));
    assert_malformed(parts[0]);
    assert_malformed("");
    assert_malformed("..");
    assert_malformed(&format!("{}.{}.", parts[0], parts[1]));
}

#[test]
fn rejects_garbage_base64() {
    let jwt = generator().generate("alice", NOW).unwrap();
    let parts: Vec<&str> = jwt.as_str().split('.').collect();
    for garbage in ["!!!", "a", "ab$d", "ey J"] {
        assert_malformed(&format!("{garbage}.{}.{}", parts[1], parts[2]));
        assert_malformed(&format!("{}.{garbage}.{}", parts[0], parts[2]));
        assert_malformed(&format!("{}.{}.{garbage}", parts[0], parts[1]));
    }
    // Standard-alphabet characters are not base64url.
    let std_sig = parts[2].replace('_', "/").replace('-', "+");
    if std_sig != parts[2] {
        assert_malformed(&format!("{}.{}.{std_sig}", parts[0], parts[1]));
    }
    assert_malformed(&format!("{}.{}.ab+/", parts[0], parts[1]));
    // Non-canonical trailing bits ("MFF" vs "MFE").
    assert_malformed(&format!("{}.{}.MFF", parts[0], parts[1]));
    assert_malformed(&format!(" {}", jwt.as_str()));
    assert_malformed(&format!("{}\n", jwt.as_str()));
}

#[test]
fn rejects_padding() {
    let jwt = generator().generate("alice", NOW).unwrap();
    let parts: Vec<&str> = jwt.as_str().split('.').collect();
    // An 83-byte signature needs one padding character in padded base64.
    let padded_sig = URL_SAFE.encode(decode_segment(jwt.as_str(), 2));
    assert!(padded_sig.ends_with('='));
    assert_malformed(&format!("{}.{}.{padded_sig}", parts[0], parts[1]));
    // A header whose length is not a multiple of 3, padded.
    let header = ["k", "k1"]
        .map(|kid| {
            format!(r#"{{"alg":"VEDS512","kid":"{kid}","typ":"JWT","cty":"virgil-jwt;v=1"}}"#)
        })
        .into_iter()
        .find(|h| h.len() % 3 != 0)
        .unwrap();
    let padded_header = URL_SAFE.encode(&header);
    assert!(padded_header.ends_with('='));
    assert_malformed(&format!("{padded_header}.{}.{}", parts[1], parts[2]));
    // The same header unpadded is fine.
    Jwt::parse(&format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(&header),
        parts[1],
        parts[2]
    ))
    .unwrap();
}

#[test]
fn rejects_non_object_json() {
    let p = good_payload();
    for bad in [
        "[\"VEDS512\",\"k\",\"JWT\",\"virgil-jwt;v=1\"]",
        "\"VEDS512\"",
        "42",
        "null",
        "",
        "{",
        "not json",
    ] {
        assert_malformed(&sign_raw(bad.as_bytes(), p.as_bytes(), &app_key()));
        assert_malformed(&sign_raw(
            GOOD_HEADER.as_bytes(),
            bad.as_bytes(),
            &app_key(),
        ));
    }
    let iss = format!("virgil-{APP}");
    let array_payload = format!(r#"["{iss}","identity-alice",{NOW},{}]"#, NOW + 1);
    assert_malformed(&sign_raw(
        GOOD_HEADER.as_bytes(),
        array_payload.as_bytes(),
        &app_key(),
    ));
}

#[test]
fn rejects_missing_or_mistyped_fields() {
    let iss = format!("virgil-{APP}");
    let bad_payloads = [
        format!(r#"{{"iss":"{iss}","sub":"identity-a","iat":{NOW}}}"#),
        format!(r#"{{"iss":"{iss}","iat":{NOW},"exp":{NOW}}}"#),
        format!(r#"{{"iss":"{iss}","sub":"identity-a","iat":1.5,"exp":{NOW}}}"#),
        format!(r#"{{"iss":"{iss}","sub":"identity-a","iat":"{NOW}","exp":{NOW}}}"#),
        format!(r#"{{"iss":"{iss}","sub":"identity-a","iat":1e9,"exp":{NOW}}}"#),
        format!(r#"{{"iss":"{iss}","sub":"identity-a","iat":{NOW},"exp":18446744073709551615}}"#),
        format!(r#"{{"iss":1,"sub":"identity-a","iat":{NOW},"exp":{NOW}}}"#),
        format!(r#"{{"iss":"{iss}","sub":"identity-a","iat":{NOW},"exp":{NOW},"exp":{NOW}}}"#),
        format!(r#"{{"iss":"{iss}","sub":"identity-a","iat":{NOW},"exp":{NOW}}} x"#),
    ];
    for p in &bad_payloads {
        assert_malformed(&sign_raw(GOOD_HEADER.as_bytes(), p.as_bytes(), &app_key()));
    }
    let bad_headers = [
        r#"{"alg":"VEDS512","typ":"JWT","cty":"virgil-jwt;v=1"}"#,
        r#"{"alg":"VEDS512","kid":7,"typ":"JWT","cty":"virgil-jwt;v=1"}"#,
        r#"{"alg":"VEDS512","kid":"k","typ":"JWT"}"#,
    ];
    for h in bad_headers {
        assert_malformed(&sign_raw(
            h.as_bytes(),
            good_payload().as_bytes(),
            &app_key(),
        ));
    }
}

#[test]
fn accepts_unknown_fields_and_other_key_orders() {
    let header = r#"{"typ":"JWT","cty":"virgil-jwt;v=1","alg":"VEDS512","kid":"k","x5u":"?"}"#;
    let p = format!(
        r#"{{"exp":{},"sub":"identity-alice","nbf":0,"iat":{NOW},"iss":"virgil-{APP}"}}"#,
        NOW + 5
    );
    let token = sign_raw(header.as_bytes(), p.as_bytes(), &app_key());
    check(&token).unwrap();
    let jwt = Jwt::parse(&token).unwrap();
    // The signed bytes are the received ones, not a re-serialization.
    assert_eq!(
        decode_segment(std::str::from_utf8(jwt.signed_part()).unwrap(), 1),
        p.as_bytes()
    );
}

#[test]
fn empty_signature_is_malformed() {
    let token = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(GOOD_HEADER),
        URL_SAFE_NO_PAD.encode(good_payload())
    );
    assert_eq!(
        Jwt::parse(&token),
        Err(JwtError::Malformed("signature segment is empty"))
    );
}

#[test]
fn authorization_header() {
    let jwt = generator().generate("alice", NOW).unwrap();
    let value = jwt.authorization();
    assert_eq!(value, format!("Virgil {}", jwt.as_str()));
    assert_eq!(Jwt::from_authorization(&value).unwrap(), jwt);
    assert_eq!(
        Jwt::from_authorization(&format!("virgil {jwt}")).unwrap(),
        jwt
    );
    for bad in [
        format!("Bearer {jwt}"),
        format!("Virgil  {jwt}"),
        format!("Virgil{jwt}"),
        jwt.to_string(),
        "Virgil".to_owned(),
        "Vi".to_owned(),
        "Virgi\u{e9} x".to_owned(),
    ] {
        assert!(
            matches!(Jwt::from_authorization(&bad), Err(JwtError::Malformed(_))),
            "{bad}"
        );
    }
}

#[test]
fn debug_hides_the_signature() {
    let jwt = generator().generate("alice", NOW).unwrap();
    let debug = format!("{jwt:?}");
    assert!(debug.contains("alice"));
    assert!(!debug.contains(jwt.as_str().split('.').nth(2).unwrap()));
    let generator_debug = format!("{:?}", generator());
    assert!(generator_debug.contains("key_id"));
    assert!(!generator_debug.contains(app_key().to_base64().as_str()));
}

#[test]
fn identity_validation() {
    assert_eq!(validate_identity("alice"), Ok(()));
    assert_eq!(validate_identity("j\u{f6}rg"), Ok(()));
    assert_eq!(validate_identity(&"a".repeat(256)), Ok(()));
    assert!(validate_identity("").is_err());
    assert!(validate_identity(&"a".repeat(257)).is_err());
    assert!(validate_identity(&"\u{f6}".repeat(129)).is_err());
    for c in ['\0', '\n', '\t', '\u{7f}', '\u{85}'] {
        assert!(validate_identity(&format!("a{c}b")).is_err(), "{c:?}");
    }
    assert_eq!(
        generator().generate("", NOW).unwrap_err(),
        JwtError::BadSubject
    );
    assert_eq!(
        generator().generate("a\nb", NOW).unwrap_err(),
        JwtError::BadSubject
    );
}

#[test]
fn x25519_key_cannot_sign() {
    let key = PrivateKey::generate(sealkit_crypto::KeyType::Curve25519, &mut OsRng);
    assert_eq!(
        JwtGenerator::new(APP, KID, key, 60)
            .generate("alice", NOW)
            .unwrap_err(),
        JwtError::Signing
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn prop_round_trip(identity in "\\PC{1,40}", now in 0i64..4_000_000_000, ttl in 1u64..100_000) {
        prop_assume!(validate_identity(&identity).is_ok());
        let jwt = JwtGenerator::new(APP, KID, app_key(), ttl).generate(&identity, now).unwrap();
        let parsed = Jwt::parse(jwt.as_str()).unwrap();
        prop_assert_eq!(parsed.identity(), Ok(identity.as_str()));
        prop_assert_eq!(parsed.claims().exp, now + ttl as i64);
        prop_assert_eq!(parsed.verify(app_key().public_key(), APP, now, 0), Ok(()));
    }
}

proptest! {
    #[test]
    fn prop_parse_never_panics(token in any::<String>()) {
        let _ = Jwt::parse(&token);
        let _ = Jwt::from_authorization(&token);
    }

    #[test]
    fn prop_parse_never_panics_on_base64ish(token in "[A-Za-z0-9_=.-]{0,300}") {
        let _ = Jwt::parse(&token);
    }
}
