//! Tests of the card model (spec §3.1) against the JS SDK's captured cards and for every rejection.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use proptest::prelude::*;
use rand_core::OsRng;
use sealkit_crypto::{KeyType, PrivateKey};
use sha2::{Digest, Sha512};

/// Alice's first card, `shared/captures/capture.txt` #2 (publish request, made by e3kit-node).
const ALICE_SNAPSHOT: &str = "eyJpZGVudGl0eSI6ImFsaWNlLW13ejl4bHp2IiwiY3JlYXRlZF9hdCI6MTc5NTgwMTY0NiwidmVyc2lvbiI6IjUuMCIsInB1YmxpY19rZXkiOiJNQ293QlFZREsyVndBeUVBVmkrMWYyNUI5ajQ3Y216N0lyckgzQ3dyaXJZK2E2cVZTa3ZRUnVxR050MD0ifQ==";
const ALICE_SELF: &str = "MFEwDQYJYIZIAWUDBAIDBQAEQNDaKTDH4fYnkwsLNDnF0uQPgQE8mgiQchcpbxj1PyPwNHf51hCcf7D1ZgGtvh0ZGiTncOpH794gEWSUMFvUgQk=";
const ALICE_VIRGIL: &str = "MFEwDQYJYIZIAWUDBAIDBQAEQH+Q7fA4iRQxJQZSxRSDejC3IfP9xUhTwT/b6BpitKffmBk+y7839ymux85/KwZLAlstNpvElfIe/slpI/Mi0wU=";
/// Its id, as the rotation request (#42) carries it in `previous_card_id`.
const ALICE_ID: &str = "8539e2b012bfb84cefd90c1de32542eb3b29446d6c1f93d0216d72898bb6cb26";

/// Alice's rotated card, capture #42.
const ROTATED_SNAPSHOT: &str = "eyJpZGVudGl0eSI6ImFsaWNlLW13ejl4bHp2IiwicHJldmlvdXNfY2FyZF9pZCI6Ijg1MzllMmIwMTJiZmI4NGNlZmQ5MGMxZGUzMjU0MmViM2IyOTQ0NmQ2YzFmOTNkMDIxNmQ3Mjg5OGJiNmNiMjYiLCJjcmVhdGVkX2F0IjoxNzk1ODAxNjQ3LCJ2ZXJzaW9uIjoiNS4wIiwicHVibGljX2tleSI6Ik1Db3dCUVlESzJWd0F5RUE0Um9Nb0ZLQy9zblIxSFZnYzZ5WnNjblhNNjlvNk8wZlBmTUgrMEdxTGlnPSJ9";
const ROTATED_SELF: &str = "MFEwDQYJYIZIAWUDBAIDBQAEQDbqQhXlyR66zS5hXPwXUY996rzViKzR+/FfWluFHrdsu9qNnRSG2vqfCgfcdICY8aMyNs7EBAzUv7glYlh5vA8=";

/// `shared/captures/capture-nonascii.txt` #2: identity `jörg-…`, snapshot in Latin-1.
const JOERG_SNAPSHOT: &str = "eyJpZGVudGl0eSI6Imr2cmctMTc5NTgwMTY2MzQzOSIsImNyZWF0ZWRfYXQiOjE3OTU4MDE2NjMsInZlcnNpb24iOiI1LjAiLCJwdWJsaWNfa2V5IjoiTUNvd0JRWURLMlZ3QXlFQXZITXhCU0hKOWdyelpicWV0aThmd1Q1ZTJWQkVrYThnWmhGVTkwYTlhdGs9In0=";
const JOERG_SELF: &str = "MFEwDQYJYIZIAWUDBAIDBQAEQBd4dtRZx6LjUhDmV3lnOmZj9yK/2QNPiJCEZvwG5Vo9dhsL191/dElcbFW28KRJ+YzJ7OPiaeWMUBfeqQp8mgA=";

fn sig(signer: &str, signature: &str) -> RawSignature {
    RawSignature {
        signer: signer.to_owned(),
        signature: signature.to_owned(),
        snapshot: None,
    }
}

fn captured_alice() -> RawSignedModel {
    RawSignedModel {
        content_snapshot: ALICE_SNAPSHOT.to_owned(),
        signatures: vec![sig("self", ALICE_SELF), sig("virgil", ALICE_VIRGIL)],
    }
}

fn user_key() -> PrivateKey {
    PrivateKey::ed25519_from_seed(&[3; 32])
}

fn content_for(key: &PrivateKey) -> CardContent {
    CardContent {
        identity: "alice".to_owned(),
        previous_card_id: None,
        created_at: 1_795_801_646,
        version: "5.0".to_owned(),
        public_key: key.public_key().to_base64(),
    }
}

fn sha512_prefix(bytes: &[u8]) -> [u8; 32] {
    Sha512::digest(bytes)[..32].try_into().unwrap()
}

#[test]
fn from_content_verifies_and_hashes() {
    let key = user_key();
    let content = content_for(&key);
    let card = RawSignedModel::from_content(&content, &key).unwrap();
    card.verify_self_signature().unwrap();
    let snapshot = card.snapshot_bytes().unwrap();
    assert_eq!(
        snapshot,
        format!(
            r#"{{"identity":"alice","created_at":1795801646,"version":"5.0","public_key":"{}"}}"#,
            key.public_key().to_base64()
        )
        .as_bytes()
    );
    assert_eq!(
        card.card_id().unwrap().as_bytes(),
        &sha512_prefix(&snapshot)
    );
    assert_eq!(card.content().unwrap(), content);
    assert_eq!(card.public_key().unwrap(), *key.public_key());
    assert_eq!(card.signatures.len(), 1);
    assert_eq!(card.signatures[0].signer, "self");
    assert_eq!(
        STANDARD
            .decode(&card.signatures[0].signature)
            .unwrap()
            .len(),
        83
    );
}

#[test]
fn snapshot_layout_with_previous_card_id() {
    let key = user_key();
    let content = CardContent {
        previous_card_id: Some(ALICE_ID.to_owned()),
        ..content_for(&key)
    };
    let card = RawSignedModel::from_content(&content, &key).unwrap();
    assert_eq!(
        card.snapshot_bytes().unwrap(),
        format!(
            r#"{{"identity":"alice","previous_card_id":"{ALICE_ID}","created_at":1795801646,"version":"5.0","public_key":"{}"}}"#,
            key.public_key().to_base64()
        )
        .as_bytes()
    );
    card.verify_self_signature().unwrap();
}

#[test]
fn captured_card_verifies_and_has_the_captured_id() {
    let card = captured_alice();
    card.verify_self_signature().unwrap();
    let id = card.card_id().unwrap();
    assert_eq!(id.to_string(), ALICE_ID);
    let content = card.content().unwrap();
    assert_eq!(content.identity, "alice-mwz9xlzv");
    assert_eq!(content.created_at, 1_795_801_646);
    assert_eq!(content.previous_card_id, None);
    assert_eq!(
        content.public_key,
        "MCowBQYDK2VwAyEAVi+1f25B9j47cmz7IrrH3CwrirY+a6qVSkvQRuqGNt0="
    );
    // Re-encoding this content gives the JS SDK's bytes.
    assert_eq!(
        STANDARD.encode(content.to_snapshot().unwrap()),
        ALICE_SNAPSHOT
    );
    // The "virgil" signature is by the stub's service key, not by the card's key.
    assert_eq!(
        card.verify_signature("virgil", &card.public_key().unwrap()),
        Err(CardError::SignatureInvalid("virgil".to_owned()))
    );
    assert_eq!(
        card.verify_signature("self", &card.public_key().unwrap()),
        Ok(())
    );
}

#[test]
fn captured_rotation_links_to_the_first_card() {
    let rotated = RawSignedModel {
        content_snapshot: ROTATED_SNAPSHOT.to_owned(),
        signatures: vec![sig("self", ROTATED_SELF)],
    };
    rotated.verify_self_signature().unwrap();
    let content = rotated.content().unwrap();
    let previous: CardId = content.previous_card_id.unwrap().parse().unwrap();
    assert_eq!(previous, captured_alice().card_id().unwrap());
    assert_ne!(rotated.card_id().unwrap(), previous);
    // The first card's self signature does not verify over the rotated card.
    let swapped = RawSignedModel {
        content_snapshot: ROTATED_SNAPSHOT.to_owned(),
        signatures: vec![sig("self", ALICE_SELF)],
    };
    assert_eq!(
        swapped.verify_self_signature(),
        Err(CardError::SelfSignatureInvalid)
    );
}

#[test]
fn wire_json_is_compact_and_ordered() {
    // The publish response of capture #2, compacted.
    let expected = format!(
        r#"{{"content_snapshot":"{ALICE_SNAPSHOT}","signatures":[{{"signer":"self","signature":"{ALICE_SELF}"}},{{"signer":"virgil","signature":"{ALICE_VIRGIL}"}}]}}"#
    );
    assert_eq!(serde_json::to_string(&captured_alice()).unwrap(), expected);
    let pretty = serde_json::to_string_pretty(&captured_alice()).unwrap();
    let parsed: RawSignedModel = serde_json::from_str(&pretty).unwrap();
    assert_eq!(parsed, captured_alice());
    assert_eq!(serde_json::to_string(&parsed).unwrap(), expected);
}

#[test]
fn unknown_fields_are_accepted_and_snapshot_kept() {
    let json = format!(
        r#"{{"signatures":[{{"snapshot":"e30=","signer":"app","signature":"AA==","x":1}}],"content_snapshot":"{ALICE_SNAPSHOT}","meta":{{}}}}"#
    );
    let card: RawSignedModel = serde_json::from_str(&json).unwrap();
    assert_eq!(card.signatures[0].snapshot.as_deref(), Some("e30="));
    assert_eq!(
        serde_json::to_string(&card).unwrap(),
        format!(
            r#"{{"content_snapshot":"{ALICE_SNAPSHOT}","signatures":[{{"signer":"app","signature":"AA==","snapshot":"e30="}}]}}"#
        )
    );
    let content = CardContent::from_snapshot(
        br#"{"identity":"a","created_at":1,"version":"5.0","public_key":"x","extra":[1]}"#,
    )
    .unwrap();
    assert_eq!(content.identity, "a");
}

#[test]
fn tampered_snapshot_is_rejected() {
    let mut bytes = STANDARD.decode(ALICE_SNAPSHOT).unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let at = text.find("1795801646").unwrap();
    bytes[at + 9] = b'7'; // created_at 1795801647
    let tampered = RawSignedModel {
        content_snapshot: STANDARD.encode(&bytes),
        ..captured_alice()
    };
    assert_eq!(tampered.content().unwrap().created_at, 1_795_801_647);
    assert_eq!(
        tampered.verify_self_signature(),
        Err(CardError::SelfSignatureInvalid)
    );
    // Same content, other whitespace: the signature covers bytes, not the JSON value.
    let respaced = RawSignedModel {
        content_snapshot: STANDARD.encode(text.replace(",\"created_at\"", ", \"created_at\"")),
        ..captured_alice()
    };
    assert_eq!(
        respaced.content().unwrap(),
        captured_alice().content().unwrap()
    );
    assert_eq!(
        respaced.verify_self_signature(),
        Err(CardError::SelfSignatureInvalid)
    );
}

#[test]
fn self_signature_must_exist_once_and_be_by_the_card_key() {
    let mut card = captured_alice();
    card.signatures.retain(|s| s.signer != "self");
    assert_eq!(
        card.verify_self_signature(),
        Err(CardError::MissingSelfSignature)
    );
    let mut twice = captured_alice();
    twice.signatures.push(sig("self", ALICE_SELF));
    assert_eq!(
        twice.verify_self_signature(),
        Err(CardError::DuplicateSigner("self".to_owned()))
    );
    // A self signature by another key.
    let key = user_key();
    let mut forged = RawSignedModel {
        content_snapshot: ALICE_SNAPSHOT.to_owned(),
        signatures: vec![],
    };
    forged.add_signature("self", &key).unwrap();
    assert_eq!(
        forged.verify_self_signature(),
        Err(CardError::SelfSignatureInvalid)
    );
    // A signature that is not base64 or not a signature.
    let mut garbage = captured_alice();
    garbage.signatures[0].signature = "not base64!".to_owned();
    assert!(matches!(
        garbage.verify_self_signature(),
        Err(CardError::Signature(_))
    ));
    garbage.signatures[0].signature = "AAAA".to_owned();
    assert_eq!(
        garbage.verify_self_signature(),
        Err(CardError::SelfSignatureInvalid)
    );
}

#[test]
fn add_and_verify_other_signatures() {
    let key = user_key();
    let service = PrivateKey::ed25519_from_seed(&[9; 32]);
    let mut card = RawSignedModel::from_content(&content_for(&key), &key).unwrap();
    card.add_signature("virgil", &service).unwrap();
    assert_eq!(card.signatures[1].signer, "virgil");
    assert_eq!(card.signatures[1].snapshot, None);
    card.verify_signature("virgil", service.public_key())
        .unwrap();
    card.verify_self_signature().unwrap();
    assert_eq!(
        card.verify_signature("virgil", key.public_key()),
        Err(CardError::SignatureInvalid("virgil".to_owned()))
    );
    assert_eq!(
        card.add_signature("virgil", &service),
        Err(CardError::DuplicateSigner("virgil".to_owned()))
    );
    assert_eq!(
        card.add_signature("self", &key),
        Err(CardError::DuplicateSigner("self".to_owned()))
    );
    assert_eq!(
        card.verify_signature("app", service.public_key()),
        Err(CardError::SignerNotFound("app".to_owned()))
    );
    // P-256 keys sign too.
    let p256 = PrivateKey::generate(KeyType::Secp256r1, &mut OsRng);
    card.add_signature("app", &p256).unwrap();
    card.verify_signature("app", p256.public_key()).unwrap();
    // X25519 keys cannot.
    let x25519 = PrivateKey::generate(KeyType::Curve25519, &mut OsRng);
    assert!(matches!(
        card.add_signature("x", &x25519),
        Err(CardError::Signature(_))
    ));
}

#[test]
fn extra_snapshot_is_signed_too() {
    let key = user_key();
    let mut card = RawSignedModel::from_content(&content_for(&key), &key).unwrap();
    let extra = br#"{"device":"phone"}"#;
    let mut data = card.snapshot_bytes().unwrap();
    data.extend_from_slice(extra);
    let signature = sealkit_crypto::sign(&data, &key, &mut OsRng).unwrap();
    card.signatures[0] = RawSignature {
        signer: "self".to_owned(),
        signature: STANDARD.encode(signature),
        snapshot: Some(STANDARD.encode(extra)),
    };
    card.verify_self_signature().unwrap();
    card.signatures[0].snapshot = Some(STANDARD.encode(b"{}"));
    assert_eq!(
        card.verify_self_signature(),
        Err(CardError::SelfSignatureInvalid)
    );
    card.signatures[0].snapshot = None;
    assert_eq!(
        card.verify_self_signature(),
        Err(CardError::SelfSignatureInvalid)
    );
    card.signatures[0].snapshot = Some("%%".to_owned());
    assert!(matches!(
        card.verify_self_signature(),
        Err(CardError::Signature(_))
    ));
}

fn card_with_snapshot(snapshot: &[u8]) -> RawSignedModel {
    RawSignedModel {
        content_snapshot: STANDARD.encode(snapshot),
        signatures: vec![sig("self", ALICE_SELF)],
    }
}

#[test]
fn malformed_content_is_rejected() {
    let base64_errors = ["not base64!", "eyJ", "eyJ9=", "e30"];
    for snapshot in base64_errors {
        let card = RawSignedModel {
            content_snapshot: snapshot.to_owned(),
            signatures: vec![sig("self", ALICE_SELF)],
        };
        assert_eq!(card.content(), Err(CardError::Base64), "{snapshot}");
        assert_eq!(card.card_id(), Err(CardError::Base64));
        assert_eq!(card.verify_self_signature(), Err(CardError::Base64));
    }
    let json_errors: [&[u8]; 8] = [
        b"",
        b"[]",
        b"\"x\"",
        b"{",
        br#"{"identity":"a","version":"5.0","public_key":"x"}"#,
        br#"{"identity":"a","created_at":"1","version":"5.0","public_key":"x"}"#,
        br#"{"identity":"a","created_at":1.5,"version":"5.0","public_key":"x"}"#,
        br#"{"identity":"a","identity":"b","created_at":1,"version":"5.0","public_key":"x"}"#,
    ];
    for snapshot in json_errors {
        assert!(
            matches!(
                card_with_snapshot(snapshot).content(),
                Err(CardError::Json(_))
            ),
            "{:?}",
            String::from_utf8_lossy(snapshot)
        );
    }
    let v4 =
        card_with_snapshot(br#"{"identity":"a","created_at":1,"version":"4.0","public_key":"x"}"#);
    assert_eq!(v4.content(), Err(CardError::Version));
    assert_eq!(v4.verify_self_signature(), Err(CardError::Version));
    for public_key in ["%%", "AAAA", "MCowBQYDK2VwAyEA"] {
        let card = card_with_snapshot(
            format!(
                r#"{{"identity":"a","created_at":1,"version":"5.0","public_key":"{public_key}"}}"#
            )
            .as_bytes(),
        );
        assert!(
            matches!(card.public_key(), Err(CardError::PublicKey(_))),
            "{public_key}"
        );
        assert!(matches!(
            card.verify_self_signature(),
            Err(CardError::PublicKey(_))
        ));
    }
}

#[test]
fn from_content_checks_version_and_key() {
    let key = user_key();
    let other = PrivateKey::ed25519_from_seed(&[4; 32]);
    let content = content_for(&key);
    assert!(matches!(
        RawSignedModel::from_content(&content, &other),
        Err(CardError::PublicKey(_))
    ));
    let v4 = CardContent {
        version: "4.0".to_owned(),
        ..content
    };
    assert_eq!(
        RawSignedModel::from_content(&v4, &key),
        Err(CardError::Version)
    );
}

#[test]
fn latin1_snapshot_from_js_sdk() {
    let card = RawSignedModel {
        content_snapshot: JOERG_SNAPSHOT.to_owned(),
        signatures: vec![sig("self", JOERG_SELF)],
    };
    let content = card.content().unwrap();
    assert_eq!(content.identity, "j\u{f6}rg-1795801663439");
    assert_eq!(
        STANDARD.encode(content.to_snapshot().unwrap()),
        JOERG_SNAPSHOT,
        "to_snapshot writes Latin-1 like the JS SDK"
    );
    // The stub answered 400 "Self signature is invalid": over the bytes sent it does not verify…
    assert_eq!(
        card.verify_self_signature(),
        Err(CardError::SelfSignatureInvalid)
    );
    // …because the JS SDK signs the UTF-8 of the snapshot string, not the Latin-1 bytes it sends
    // (spec §3.1, the same is true of its card id).
    let utf8 = serde_json::to_string(&content).unwrap();
    let signature = STANDARD.decode(JOERG_SELF).unwrap();
    sealkit_crypto::verify(utf8.as_bytes(), &signature, &card.public_key().unwrap()).unwrap();
}

#[test]
fn card_id_text_round_trip() {
    let id: CardId = ALICE_ID.parse().unwrap();
    assert_eq!(id.to_string(), ALICE_ID);
    assert_eq!(format!("{id:?}"), format!("CardId({ALICE_ID})"));
    let upper: CardId = ALICE_ID.to_uppercase().parse().unwrap();
    assert_eq!(upper, id);
    assert_eq!(upper.to_string(), ALICE_ID);
    assert_eq!(CardId::from_bytes(*id.as_bytes()), id);
    assert_eq!(CardId::from(*id.as_bytes()), id);
    assert_eq!(
        CardId::from_snapshot(&STANDARD.decode(ALICE_SNAPSHOT).unwrap()),
        id
    );
    for bad in [
        "",
        &ALICE_ID[..63],
        &format!("{ALICE_ID}0"),
        &format!("{ALICE_ID}00"),
        &format!("{}g", &ALICE_ID[..63]),
        &format!(" {}", &ALICE_ID[..63]),
        &format!("+{}", &ALICE_ID[..63]),
        &format!("{}\u{e9}", &ALICE_ID[..62]),
    ] {
        assert_eq!(
            bad.parse::<CardId>(),
            Err(CardError::InvalidCardId),
            "{bad:?}"
        );
    }
}

#[test]
fn card_id_serde_is_the_string() {
    let id: CardId = ALICE_ID.parse().unwrap();
    assert_eq!(
        serde_json::to_string(&id).unwrap(),
        format!("\"{ALICE_ID}\"")
    );
    let back: CardId = serde_json::from_str(&format!("\"{}\"", ALICE_ID.to_uppercase())).unwrap();
    assert_eq!(back, id);
    assert!(serde_json::from_str::<CardId>("\"abc\"").is_err());
    assert!(serde_json::from_str::<CardId>("42").is_err());
}

#[test]
fn search_body_and_paths() {
    let request = SearchRequest {
        identities: vec!["bob".to_owned(), "charles".to_owned()],
    };
    assert_eq!(
        serde_json::to_string(&request).unwrap(),
        r#"{"identities":["bob","charles"]}"#
    );
    let parsed: SearchRequest =
        serde_json::from_str("{\n  \"identities\": [\n    \"alice-mwz9xlzv\"\n  ]\n}").unwrap();
    assert_eq!(parsed.identities, ["alice-mwz9xlzv"]);
    let response: SearchResponse = serde_json::from_str(&format!(
        "[{}]",
        serde_json::to_string(&captured_alice()).unwrap()
    ))
    .unwrap();
    assert_eq!(response, [captured_alice()]);
    let id: CardId = ALICE_ID.parse().unwrap();
    assert_eq!(paths::card(&id), format!("/card/v5/{ALICE_ID}"));
    assert_eq!(
        paths::revoke(&id),
        format!("/card/v5/actions/revoke/{ALICE_ID}")
    );
    assert_eq!(paths::SEARCH, "/card/v5/actions/search");
    assert_eq!(paths::SUPERSEDED_HEADER, "X-Virgil-Is-Superseeded");
}

proptest! {
    #[test]
    fn prop_card_id_round_trip(bytes in any::<[u8; 32]>()) {
        let id = CardId::from_bytes(bytes);
        let text = id.to_string();
        prop_assert_eq!(text.len(), 64);
        prop_assert_eq!(text.parse::<CardId>(), Ok(id));
        prop_assert_eq!(text.to_uppercase().parse::<CardId>(), Ok(id));
    }

    #[test]
    fn prop_card_id_parse_never_panics(text in any::<String>()) {
        let _ = text.parse::<CardId>();
    }

    #[test]
    fn prop_snapshot_parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = CardContent::from_snapshot(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn prop_card_round_trip(
        identity in "\\PC{1,40}",
        created_at in any::<i64>(),
        rotated in any::<bool>(),
        seed in any::<[u8; 32]>(),
    ) {
        let key = PrivateKey::ed25519_from_seed(&seed);
        let content = CardContent {
            identity,
            previous_card_id: rotated.then(|| ALICE_ID.to_owned()),
            created_at,
            version: "5.0".to_owned(),
            public_key: key.public_key().to_base64(),
        };
        let card = RawSignedModel::from_content(&content, &key).unwrap();
        prop_assert_eq!(card.content(), Ok(content));
        prop_assert_eq!(card.verify_self_signature(), Ok(()));
        let snapshot = card.snapshot_bytes().unwrap();
        prop_assert_eq!(*card.card_id().unwrap().as_bytes(), sha512_prefix(&snapshot));
        let json = serde_json::to_string(&card).unwrap();
        let back: RawSignedModel = serde_json::from_str(&json).unwrap();
        prop_assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }
}
