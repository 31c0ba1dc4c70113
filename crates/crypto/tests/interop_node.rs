//! Live round trips with the official npm packages, through `interop/oracle.js`:
//! virgil-crypto 5.1.2 and the 4.2.2 copy that `@virgilsecurity/e3kit-node` 2.5.1 bundles.
//!
//! Direction 1: the oracle makes fresh keys and a matrix of messages (every mode, 1/3/20
//! recipients of mixed types, empty and 3 MiB payloads, streamed messages, padding edges, a group
//! across two epochs); Sealkit must open every one for every supported recipient and verify it.
//! Direction 2: Sealkit makes the same matrix; the oracle must open every message with both
//! library versions.
//!
//! Needs `npm ci --prefix interop` (the README's test command does it). Without the packages the
//! test fails rather than pass silently; set `SEALKIT_SKIP_INTEROP=1` to skip it deliberately.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use base64::Engine as _;
use rand_core::{OsRng, RngCore};
use sealkit_crypto::{Crypto, GroupSession, KeyType, PrivateKey, PublicKey, Signing};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Runs the oracle; `None` when interop is deliberately skipped.
fn oracle(args: &[&str]) -> Option<(bool, String)> {
    if std::env::var_os("SEALKIT_SKIP_INTEROP").is_some() {
        eprintln!("SEALKIT_SKIP_INTEROP is set: skipping the npm interop test");
        return None;
    }
    let root = repo_root();
    assert!(
        root.join("interop/node_modules/virgil-crypto").is_dir(),
        "interop/node_modules is missing: run `npm ci --prefix interop` (or set SEALKIT_SKIP_INTEROP=1)"
    );
    let out = Command::new("node")
        .arg(root.join("interop/oracle.js"))
        .args(args)
        .output()
        .expect("node must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        eprintln!(
            "oracle {args:?} stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Some((out.status.success(), stdout))
}

fn b64(s: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(s.as_str().unwrap())
        .unwrap()
}

/// Opens every case of an oracle-made directory. Returns the number of decryptions checked.
fn open_all(dir: &Path) -> usize {
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    let mut keys = BTreeMap::new();
    for (name, k) in manifest["keys"].as_object().unwrap() {
        let der = b64(&k["private_key_der_b64"]);
        match PrivateKey::from_der(&der) {
            Ok(key) => {
                assert_eq!(
                    key.public_key().to_der(),
                    b64(&k["public_key_der_b64"]),
                    "{name}"
                );
                assert_eq!(
                    *key.to_der(),
                    der,
                    "{name}: private export is byte-identical"
                );
                keys.insert(name.clone(), key);
            }
            Err(e) => assert_eq!(k["type"], "RSA_2048", "{name} failed to import: {e}"),
        }
    }
    let crypto = Crypto::new();
    let mut checked = 0;
    for case in manifest["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let message = std::fs::read(dir.join(case["ciphertext_file"].as_str().unwrap())).unwrap();
        let plaintext = std::fs::read(dir.join(case["plaintext_file"].as_str().unwrap())).unwrap();
        let signer = case["signer"]
            .as_str()
            .map(|s| vec![keys[s].public_key().clone()]);
        let mode = case["mode"].as_str().unwrap();
        let mut opened = 0;
        for r in case["recipients"].as_array().unwrap() {
            let Some(key) = keys.get(r.as_str().unwrap()) else {
                continue;
            };
            let result = match (mode, &signer) {
                ("sign_and_encrypt", Some(s)) => crypto.decrypt_and_verify(&message, key, s),
                ("sign_then_encrypt", Some(s)) => crypto.decrypt_then_verify(&message, key, s),
                _ => crypto.decrypt(&message, key),
            };
            let result = result.unwrap_or_else(|e| panic!("{name} for {r}: {e}"));
            assert!(result == plaintext, "{name} for {r}: wrong plaintext");
            // The same through the streaming decryptor, in odd pieces.
            let mut dec =
                sealkit_crypto::Decryptor::new(key, signer.as_deref(), Vec::new()).unwrap();
            for piece in message.chunks(65_521) {
                dec.update(piece).unwrap();
            }
            assert!(
                dec.finish().unwrap().0 == plaintext,
                "{name} streamed for {r}"
            );
            opened += 1;
            checked += 1;
        }
        assert!(opened > 0, "{name}: no recipient Sealkit can use");
        // A key that is not a recipient fails.
        let outsider = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
        assert!(
            crypto.decrypt(&message, &outsider).is_err(),
            "{name}: outsider"
        );
        // A wrong signer fails.
        if let Some(s) = &signer {
            let recipient = case["recipients"]
                .as_array()
                .unwrap()
                .iter()
                .find_map(|r| keys.get(r.as_str().unwrap()))
                .unwrap();
            let wrong = vec![outsider.public_key().clone()];
            assert!(
                crypto
                    .decrypt_verified(&message, recipient, Some(&wrong))
                    .is_err(),
                "{name}"
            );
            assert!(
                crypto
                    .decrypt_verified(&message, recipient, Some(s))
                    .is_ok(),
                "{name}"
            );
        }
    }
    for group in manifest["groups"].as_array().unwrap() {
        let tickets: Vec<Vec<u8>> = group["tickets_b64"]
            .as_array()
            .unwrap()
            .iter()
            .map(b64)
            .collect();
        let session = GroupSession::from_tickets(&tickets).unwrap();
        let id = group["group_id_utf8"].as_str().unwrap().as_bytes();
        assert_eq!(
            session.session_id(),
            GroupSession::session_id_for(id).unwrap()
        );
        for m in group["messages"].as_array().unwrap() {
            let message = std::fs::read(dir.join(m["message_file"].as_str().unwrap())).unwrap();
            let plaintext = std::fs::read(dir.join(m["plaintext_file"].as_str().unwrap())).unwrap();
            let sender = keys[m["sender"].as_str().unwrap()].public_key();
            assert_eq!(session.decrypt(&message, sender).unwrap(), plaintext);
            assert_eq!(
                GroupSession::message_info(&message).unwrap().epoch as u64,
                m["epoch"].as_u64().unwrap()
            );
            checked += 1;
        }
    }
    checked
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut v: Vec<u8> = (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect();
    if len > 64 {
        OsRng.fill_bytes(&mut v[len / 2..]);
    }
    v
}

/// Writes Sealkit's own matrix in the oracle's case format.
fn make_all(dir: &Path) -> usize {
    let mut rng = OsRng;
    let mut keys: BTreeMap<String, PrivateKey> = BTreeMap::new();
    keys.insert(
        "alice".into(),
        PrivateKey::generate(KeyType::Ed25519, &mut rng),
    );
    keys.insert(
        "bob".into(),
        PrivateKey::generate(KeyType::Ed25519, &mut rng),
    );
    keys.insert(
        "dave".into(),
        PrivateKey::generate(KeyType::Curve25519, &mut rng),
    );
    keys.insert(
        "erin".into(),
        PrivateKey::generate(KeyType::Secp256r1, &mut rng),
    );
    for i in 0..20 {
        keys.insert(
            format!("r{i:02}"),
            PrivateKey::generate(KeyType::Ed25519, &mut rng),
        );
    }
    let pubs = |names: &[&str]| -> Vec<PublicKey> {
        names
            .iter()
            .map(|n| keys[*n].public_key().clone())
            .collect()
    };
    let sets: Vec<(&str, Vec<String>)> = vec![
        ("r1", vec!["bob".into()]),
        ("r3", vec!["bob".into(), "dave".into(), "erin".into()]),
        (
            "r20",
            (0..18)
                .map(|i| format!("r{i:02}"))
                .chain(["dave".to_string(), "erin".to_string()])
                .collect(),
        ),
    ];
    let crypto = Crypto::new();
    let mut cases = Vec::new();
    let mut add = |name: String,
                   mode: &str,
                   api: &str,
                   padding: bool,
                   signer: Option<&str>,
                   recipients: &[String],
                   plaintext: &[u8]| {
        let to = pubs(&recipients.iter().map(String::as_str).collect::<Vec<_>>());
        let signer_key = signer.map(|s| &keys[s]);
        let message = match (mode, api) {
            ("encrypt", "oneshot") => crypto.encrypt(&mut OsRng, plaintext, &to, padding),
            ("sign_then_encrypt", "oneshot") => {
                crypto.sign_then_encrypt(&mut OsRng, plaintext, signer_key.unwrap(), &to, padding)
            }
            ("sign_and_encrypt", "oneshot") => {
                crypto.sign_and_encrypt(&mut OsRng, plaintext, signer_key.unwrap(), &to, padding)
            }
            (_, "stream") => {
                let sig;
                let signing = match mode {
                    "encrypt" => Signing::None,
                    "sign_then_encrypt" => {
                        sig = sealkit_crypto::sign(plaintext, signer_key.unwrap(), &mut OsRng)
                            .unwrap();
                        Signing::SignThenEncrypt {
                            signer: signer_key.unwrap(),
                            signature: &sig,
                        }
                    }
                    _ => Signing::SignAndEncrypt {
                        signer: signer_key.unwrap(),
                        plaintext_len: plaintext.len() as u64,
                    },
                };
                let mut enc = crypto.encryptor(&mut OsRng, &to, signing, padding).unwrap();
                let mut out = enc.header().to_vec();
                for piece in plaintext.chunks(4099) {
                    enc.update(piece, &mut out).unwrap();
                }
                enc.finish(&mut OsRng, &mut out).unwrap();
                Ok(out)
            }
            _ => unreachable!(),
        }
        .unwrap();
        std::fs::write(dir.join(format!("{name}.pt")), plaintext).unwrap();
        std::fs::write(dir.join(format!("{name}.ct")), &message).unwrap();
        cases.push(json!({
            "name": name, "mode": mode, "api": api, "padding": padding, "signer": signer,
            "recipients": recipients, "plaintext_file": format!("{name}.pt"),
            "ciphertext_file": format!("{name}.ct"),
        }));
    };
    for (mode, signer) in [
        ("encrypt", None),
        ("sign_then_encrypt", Some("alice")),
        ("sign_and_encrypt", Some("alice")),
    ] {
        for padding in [false, true] {
            let p = if padding { "pad" } else { "nopad" };
            for (set_name, set) in &sets {
                add(
                    format!("{mode}_{p}_{set_name}"),
                    mode,
                    "oneshot",
                    padding,
                    signer,
                    set,
                    &pattern(1000, 3),
                );
            }
            add(
                format!("{mode}_{p}_empty"),
                mode,
                "oneshot",
                padding,
                signer,
                &sets[0].1,
                &[],
            );
            add(
                format!("{mode}_{p}_3mib_stream"),
                mode,
                "stream",
                padding,
                signer,
                &sets[1].1,
                &pattern(3 << 20, 9),
            );
            for len in [0usize, 1, 156, 157, 159, 160, 161] {
                add(
                    format!("{mode}_{p}_edge{len}"),
                    mode,
                    "oneshot",
                    padding,
                    signer,
                    &sets[0].1,
                    &pattern(len, 5),
                );
            }
        }
        add(
            format!("{mode}_3mib_oneshot"),
            mode,
            "oneshot",
            true,
            signer,
            &sets[1].1,
            &pattern(3 << 20, 1),
        );
    }
    add(
        "ste_p256_signer".into(),
        "sign_then_encrypt",
        "oneshot",
        false,
        Some("erin"),
        &sets[0].1,
        b"signed with P-256",
    );
    add(
        "sae_p256_signer".into(),
        "sign_and_encrypt",
        "oneshot",
        true,
        Some("erin"),
        &sets[0].1,
        b"signed with P-256",
    );

    // A group across two epochs, two senders, one empty message.
    let group_id = format!("sealkit-rust-group-{}", OsRng.next_u64());
    let mut session = GroupSession::create(group_id.as_bytes(), &mut OsRng).unwrap();
    let mut messages = Vec::new();
    let mut group_msg = |session: &GroupSession, i: usize, sender: &str, text: &[u8]| {
        let m = session.encrypt(&mut OsRng, text, &keys[sender]).unwrap();
        std::fs::write(dir.join(format!("g{i}.pt")), text).unwrap();
        std::fs::write(dir.join(format!("g{i}.gm")), &m).unwrap();
        messages.push(
            json!({"name": format!("g{i}"), "sender": sender, "epoch": session.current_epoch(),
            "plaintext_file": format!("g{i}.pt"), "message_file": format!("g{i}.gm")}),
        );
    };
    group_msg(&session, 0, "alice", b"epoch 0 from Sealkit");
    group_msg(&session, 1, "alice", b"");
    session.add_epoch(&mut OsRng).unwrap();
    group_msg(&session, 2, "alice", b"epoch 1 from alice");
    group_msg(&session, 3, "bob", &pattern(5000, 2));
    let tickets: Vec<String> = session
        .tickets()
        .iter()
        .map(|t| base64::engine::general_purpose::STANDARD.encode(t.as_slice()))
        .collect();

    let key_types = |k: &PrivateKey| match k.key_type() {
        KeyType::Ed25519 => "ED25519",
        KeyType::Curve25519 => "CURVE25519",
        _ => "SECP256R1",
    };
    let key_json: serde_json::Map<String, Value> = keys
        .iter()
        .map(|(n, k)| {
            (
                n.clone(),
                json!({
                    "type": key_types(k),
                    "private_key_der_b64": k.to_base64().as_str(),
                    "public_key_der_b64": k.public_key().to_base64(),
                }),
            )
        })
        .collect();
    let count = cases.len();
    let manifest = json!({
        "producer": "sealkit",
        "keys": key_json,
        "cases": cases,
        "groups": [{"name": "g", "group_id_utf8": group_id, "tickets_b64": tickets, "messages": messages}],
    });
    std::fs::write(
        dir.join("manifest.json"),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    )
    .unwrap();
    count
}

#[test]
fn virgil_crypto_messages_open_in_sealkit() {
    for lib in ["5", "4"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().to_str().unwrap();
        let Some((ok, _)) = oracle(&["make", "--lib", lib, "--out", out]) else {
            return;
        };
        assert!(ok, "oracle make --lib {lib} failed");
        let checked = open_all(dir.path());
        eprintln!("virgil-crypto {lib}: {checked} decryptions checked");
        assert!(
            checked > 100,
            "the matrix is smaller than expected: {checked}"
        );
    }
}

#[test]
fn sealkit_messages_open_in_virgil_crypto() {
    let dir = tempfile::tempdir().unwrap();
    let cases = make_all(dir.path());
    assert!(cases >= 50, "{cases}");
    for lib in ["5", "4"] {
        let Some((ok, summary)) =
            oracle(&["check", "--lib", lib, "--dir", dir.path().to_str().unwrap()])
        else {
            return;
        };
        eprintln!("virgil-crypto {lib}: {summary}");
        let summary: Value = serde_json::from_str(summary.trim()).unwrap();
        assert!(
            ok && summary["failed"] == 0,
            "virgil-crypto {lib} rejected Sealkit output: {summary}"
        );
        assert!(summary["passed"].as_u64().unwrap() > 300);
    }
}
