//! The shared vectors (real virgil-crypto output) against this implementation: every vector
//! decrypts (or fails) for exactly the keys it should, signatures verify, and every structure the
//! spec calls deterministic re-encodes byte for byte.

use crate::format::group::GroupMessage;
use crate::format::message_info::MessageInfo;
use crate::{Crypto, Error, GroupSession, KeyIdScheme, PrivateKey, PublicKey};
use serde_json::Value;
use std::collections::BTreeMap;

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("bad vector file: {e}"))
}

fn hexs(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap_or_else(|| panic!("not a string: {v}")))
        .unwrap_or_else(|e| panic!("bad hex: {e}"))
}

/// The supported keys of keys.json by name (RSA and compound keys are not supported).
fn keys() -> BTreeMap<String, PrivateKey> {
    let doc = json(include_str!("../tests/data/keys.json"));
    let mut out = BTreeMap::new();
    for k in doc["keys"].as_array().into_iter().flatten() {
        let name = k["name"].as_str().unwrap_or_default().to_owned();
        match PrivateKey::from_der(&hexs(&k["private_key_der"])) {
            Ok(key) => {
                out.insert(name, key);
            }
            Err(e) => {
                let t = k["type"].as_str().unwrap_or_default();
                assert!(
                    matches!(t, "RSA_2048" | "CURVE25519_ED25519"),
                    "{name} ({t}) failed to import: {e}"
                );
                assert!(
                    matches!(e, Error::Format(_) | Error::Unsupported(_)),
                    "{name}: {e:?}"
                );
            }
        }
    }
    assert_eq!(out.len(), 5, "alice, bob, carol, dave, erin");
    out
}

#[test]
fn keys_export_and_ids_are_byte_identical() {
    let doc = json(include_str!("../tests/data/keys.json"));
    let keys = keys();
    for k in doc["keys"].as_array().into_iter().flatten() {
        let name = k["name"].as_str().unwrap_or_default();
        let Some(key) = keys.get(name) else {
            // The public half of unsupported types is rejected with a typed error too.
            assert!(PublicKey::from_der(&hexs(&k["public_key_der"])).is_err());
            continue;
        };
        assert_eq!(
            *key.to_der(),
            hexs(&k["private_key_der"]),
            "{name} private export"
        );
        assert_eq!(
            key.public_key().to_der(),
            hexs(&k["public_key_der"]),
            "{name} SPKI"
        );
        let public = PublicKey::from_der(&hexs(&k["public_key_der"]))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(&public, key.public_key());
        assert_eq!(public.key_id().as_bytes(), hexs(&k["key_id"]), "{name} id");
        assert_eq!(
            public.key_id_with(KeyIdScheme::Sha256).as_bytes(),
            hexs(&k["key_id_sha256"]),
            "{name} sha256 id"
        );
        let b64 = k["public_key_der_base64"].as_str().unwrap_or_default();
        assert_eq!(
            PublicKey::import(b64.as_bytes()).ok().as_ref(),
            Some(key.public_key())
        );
    }
}

#[test]
fn signatures_verify_and_ed25519_is_reproduced() {
    let doc = json(include_str!("../tests/data/signatures.json"));
    let keys = keys();
    let mut checked = 0;
    for s in doc["signatures"].as_array().into_iter().flatten() {
        let signer = s["signer"].as_str().unwrap_or_default();
        let Some(key) = keys.get(signer) else {
            continue;
        };
        let data = hexs(&s["data_hex"]);
        let sig = hexs(&s["signature_der"]);
        assert!(
            crate::verify(&data, &sig, key.public_key()).is_ok(),
            "{signer}"
        );
        let mut tampered = data.clone();
        tampered[0] ^= 1;
        assert!(matches!(
            crate::verify(&tampered, &sig, key.public_key()),
            Err(Error::SignatureInvalid)
        ));
        if s["deterministic"].as_bool() == Some(true) {
            let ours = crate::sign(&data, key, &mut rand_core::OsRng).unwrap_or_default();
            assert_eq!(
                ours, sig,
                "{signer}: Ed25519 signature must be reproduced exactly"
            );
        }
        checked += 1;
    }
    assert_eq!(checked, 2, "alice (Ed25519) and erin (P-256)");
}

/// Checks one message vector: decrypts for exactly the listed keys, verifies the signer when
/// there is one, and re-encodes its message info byte for byte.
fn check_message(file: &str, v: &Value, keys: &BTreeMap<String, PrivateKey>) {
    let name = format!("{file}/{}", v["name"].as_str().unwrap_or_default());
    let message = match (v.get("ciphertext_hex"), v.get("metadata_hex")) {
        (Some(ct), _) => hexs(ct),
        (None, Some(meta)) => [hexs(meta), hexs(&v["encrypted_data_hex"])].concat(),
        _ => panic!("{name}: no ciphertext"),
    };
    let plaintext = hexs(&v["plaintext_hex"]);
    let crypto = Crypto::new();

    let info_len = MessageInfo::encoded_len(&message)
        .ok()
        .flatten()
        .unwrap_or_else(|| panic!("{name}: no message info"));
    let info = MessageInfo::decode(&message[..info_len]).unwrap_or_else(|e| panic!("{name}: {e}"));
    assert_eq!(
        info.encode(),
        message[..info_len],
        "{name}: message info re-encoding"
    );
    assert_eq!(
        info.padding.is_some(),
        v["padding"].as_bool().unwrap_or(false),
        "{name}"
    );

    let mut expected: BTreeMap<String, bool> = BTreeMap::new();
    if let Some(map) = v["decrypts_for"].as_object() {
        for (k, ok) in map {
            expected.insert(k.clone(), ok.as_bool().unwrap_or(false));
        }
    } else {
        for r in v["recipients"].as_array().into_iter().flatten() {
            expected.insert(r.as_str().unwrap_or_default().to_owned(), true);
        }
    }
    let signer = v["signer"].as_str().and_then(|s| keys.get(s));
    let mode =
        v["mode"]
            .as_str()
            .unwrap_or(if v["name"].as_str().unwrap_or("").starts_with("sae") {
                "sae"
            } else if v["name"].as_str().unwrap_or("").starts_with("ste") {
                "ste"
            } else {
                "encrypt"
            });
    let mut opened = 0;
    for (key_name, should) in expected {
        let Some(key) = keys.get(&key_name) else {
            continue;
        };
        let result = crypto.decrypt(&message, key);
        if should {
            assert_eq!(
                result.as_deref().ok(),
                Some(&plaintext[..]),
                "{name}: {key_name}"
            );
            opened += 1;
        } else {
            assert!(
                matches!(result, Err(Error::RecipientNotFound)),
                "{name}: {key_name}"
            );
            continue;
        }
        if let Some(signer) = signer {
            let signers = [signer.public_key().clone()];
            let verified = match mode {
                "sae" => crypto.decrypt_and_verify(&message, key, &signers),
                "ste" => crypto.decrypt_then_verify(&message, key, &signers),
                _ => continue,
            };
            assert_eq!(
                verified.as_deref().ok(),
                Some(&plaintext[..]),
                "{name}: verify"
            );
            let wrong = keys
                .get("carol")
                .filter(|c| c.public_key() != signer.public_key());
            if let Some(wrong) = wrong {
                let bad = [wrong.public_key().clone()];
                assert!(
                    crypto.decrypt_verified(&message, key, Some(&bad)).is_err(),
                    "{name}: wrong signer accepted"
                );
            }
        }
    }
    assert!(opened > 0, "{name}: no supported recipient");
}

fn check_file(file: &str, text: &str) -> usize {
    let keys = keys();
    let doc = json(text);
    let vectors = doc["vectors"].as_array().cloned().unwrap_or_default();
    for v in &vectors {
        check_message(file, v, &keys);
    }
    vectors.len()
}

#[test]
fn encrypt_vectors() {
    assert_eq!(
        check_file("encrypt", include_str!("../tests/data/encrypt.json")),
        8
    );
}

#[test]
fn sign_then_encrypt_vectors() {
    assert_eq!(
        check_file("ste", include_str!("../tests/data/sign_then_encrypt.json")),
        4
    );
}

#[test]
fn sign_and_encrypt_vectors() {
    assert_eq!(
        check_file("sae", include_str!("../tests/data/sign_and_encrypt.json")),
        5
    );
}

#[test]
fn e3kit_4_2_2_vectors() {
    assert_eq!(
        check_file("e3kit", include_str!("../tests/data/e3kit_4_2_2.json")),
        3
    );
}

#[test]
fn python_made_vectors() {
    assert_eq!(
        check_file("python", include_str!("../tests/data/python_made.json")),
        7
    );
}

#[test]
fn native_c_vectors_with_gcm_key_wrap() {
    assert_eq!(
        check_file("native", include_str!("../tests/data/native_c_0_23.json")),
        4
    );
}

#[test]
fn stream_vectors_decrypt_in_their_original_chunks_and_bytewise() {
    let keys = keys();
    let doc = json(include_str!("../tests/data/stream.json"));
    let bob = &keys["bob"];
    let alice = [keys["alice"].public_key().clone()];
    for v in doc["vectors"].as_array().into_iter().flatten() {
        let name = v["name"].as_str().unwrap_or_default();
        check_message("stream", v, &keys);
        let message = hexs(&v["ciphertext_hex"]);
        let plaintext = hexs(&v["plaintext_hex"]);
        if let Some(parts) = v["output_part_lengths"].as_array() {
            let total: u64 = parts.iter().filter_map(Value::as_u64).sum();
            assert_eq!(
                total as usize,
                message.len(),
                "{name}: parts cover the message"
            );
        }
        let verify = v["signer"].as_str().map(|_| &alice[..]);
        for chunk in [1usize, 7, 16, 17, 4096] {
            let mut dec =
                crate::Decryptor::new(bob, verify, Vec::new()).unwrap_or_else(|e| panic!("{e}"));
            for piece in message.chunks(chunk) {
                dec.update(piece)
                    .unwrap_or_else(|e| panic!("{name}/{chunk}: {e}"));
            }
            let (out, _) = dec
                .finish()
                .unwrap_or_else(|e| panic!("{name}/{chunk}: {e}"));
            assert_eq!(out, plaintext, "{name} in chunks of {chunk}");
        }
    }
}

#[test]
fn stream_cipher_signature_param_verifies() {
    let keys = keys();
    let doc = json(include_str!("../tests/data/stream.json"));
    let v = doc["vectors"]
        .as_array()
        .and_then(|a| {
            a.iter()
                .find(|v| v["name"] == "stream_cipher_with_signature_param")
        })
        .cloned()
        .unwrap_or_else(|| panic!("vector missing"));
    let message = hexs(&v["ciphertext_hex"]);
    let alice = [keys["alice"].public_key().clone()];
    // The signature travels without a signer id; one verification key is used directly.
    let out = Crypto::new().decrypt_then_verify(&message, &keys["bob"], &alice);
    assert_eq!(out.ok(), Some(hexs(&v["plaintext_hex"])));
}

fn check_group(
    name: &str,
    tickets: &[Vec<u8>],
    sender: &PublicKey,
    message: &[u8],
    plaintext: &[u8],
) {
    let session = GroupSession::from_tickets(tickets).unwrap_or_else(|e| panic!("{name}: {e}"));
    let exported: Vec<Vec<u8>> = session.tickets().iter().map(|t| t.to_vec()).collect();
    assert_eq!(exported, tickets, "{name}: tickets re-encode");
    assert_eq!(
        session.decrypt(message, sender).ok().as_deref(),
        Some(plaintext),
        "{name}"
    );
    match GroupMessage::decode(message) {
        Ok(m) => assert_eq!(m.encode(), message, "{name}: message re-encodes"),
        Err(e) => panic!("{name}: {e}"),
    }
}

#[test]
fn group_vectors() {
    let keys = keys();
    let doc = json(include_str!("../tests/data/group_session.json"));
    let group_id = hexs(&doc["group_id_hex"]);
    assert_eq!(
        GroupSession::session_id_for(&group_id)
            .ok()
            .map(|s| s.to_vec()),
        Some(hexs(&doc["session_id_hex"]))
    );
    let tickets: Vec<Vec<u8>> = doc["epoch_messages_hex"]
        .as_array()
        .into_iter()
        .flatten()
        .map(hexs)
        .collect();
    assert_eq!(tickets.len(), 2);
    let only_epoch1 = GroupSession::from_tickets(&tickets[1..]).unwrap_or_else(|e| panic!("{e}"));
    let mut count = 0;
    for m in doc["messages"].as_array().into_iter().flatten() {
        let sender = &keys[m["sender"].as_str().unwrap_or_default()];
        let message = hexs(&m["message_hex"]);
        let pt = hexs(&m["plaintext_hex"]);
        check_group(
            "group_session",
            &tickets,
            sender.public_key(),
            &message,
            &pt,
        );
        let session = GroupSession::from_tickets(&tickets).unwrap_or_else(|e| panic!("{e}"));
        let other = if sender.public_key() == keys["alice"].public_key() {
            "bob"
        } else {
            "alice"
        };
        assert!(matches!(
            session.decrypt(&message, keys[other].public_key()),
            Err(Error::SignatureInvalid)
        ));
        let epoch = m["epoch"].as_u64().unwrap_or(99);
        assert_eq!(
            only_epoch1.decrypt(&message, sender.public_key()).is_ok(),
            epoch == 1
        );
        count += 1;
    }
    assert_eq!(count, 4);
    for file in [
        include_str!("../tests/data/e3kit_4_2_2.json"),
        include_str!("../tests/data/python_made.json"),
    ] {
        let g = &json(file)["group"];
        let tickets: Vec<Vec<u8>> = g["epoch_messages_hex"]
            .as_array()
            .into_iter()
            .flatten()
            .map(hexs)
            .collect();
        let sender = &keys[g["sender"].as_str().unwrap_or_default()];
        check_group(
            "group",
            &tickets,
            sender.public_key(),
            &hexs(&g["message_hex"]),
            &hexs(&g["plaintext_hex"]),
        );
    }
}

#[test]
fn sha256_identifier_vector_and_encryption() {
    let keys = keys();
    let doc = json(include_str!("../tests/data/encrypt.json"));
    let v = doc["vectors"]
        .as_array()
        .and_then(|a| a.iter().find(|v| v["name"] == "enc_sha256_identifier"))
        .cloned()
        .unwrap_or_else(|| panic!("vector missing"));
    let message = hexs(&v["ciphertext_hex"]);
    let info_len = MessageInfo::encoded_len(&message)
        .ok()
        .flatten()
        .unwrap_or(0);
    let info = MessageInfo::decode(&message[..info_len]).unwrap_or_else(|e| panic!("{e}"));
    let crypto = Crypto::with_key_ids(KeyIdScheme::Sha256);
    let bob = &keys["bob"];
    let ours = crypto
        .encrypt(
            &mut rand_core::OsRng,
            b"x",
            &[bob.public_key().clone()],
            false,
        )
        .unwrap_or_default();
    let len = MessageInfo::encoded_len(&ours).ok().flatten().unwrap_or(0);
    let ours_info = MessageInfo::decode(&ours[..len]).unwrap_or_else(|e| panic!("{e}"));
    let sha256_id = bob.public_key().key_id_with(KeyIdScheme::Sha256);
    for recipients in [&info.recipients, &ours_info.recipients] {
        match &recipients[..] {
            [crate::format::message_info::RecipientInfo::KeyTrans { rid, .. }] => {
                assert_eq!(rid.as_slice(), sha256_id.as_bytes())
            }
            _ => panic!("one recipient expected"),
        }
    }
    assert_eq!(crypto.decrypt(&ours, bob).ok(), Some(b"x".to_vec()));
}
