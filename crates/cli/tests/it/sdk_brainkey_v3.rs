//! The Rust SDK's brainkey v3 backups (`BrainkeyVersion::V3`, the protocol of e3kit-kotlin 3.x
//! and e3kit-x) against `sealkit serve`: a v3 backup restores on another v3 device, not with v2
//! (the keys differ, reported as a wrong password), for the Keyknox v1 entry and a named v2
//! entry; and the backup is encrypted for the key the C library's client derives from the same
//! password and server (`interop/python/brainkey_v3.py`, skipped with `SEALKIT_SKIP_INTEROP=1`).

use crate::common::*;
use crate::oracle::Oracle;
use sealkit::{BrainkeyVersion, EThree, EThreeOptions, Error};
use sealkit_proto::JwtGenerator;
use std::path::Path;

async fn device(
    url: &str,
    backend: &JwtGenerator,
    identity: &str,
    dir: &Path,
    version: BrainkeyVersion,
) -> EThree {
    let backend = backend.clone();
    let id = identity.to_owned();
    let provider = move || std::future::ready(backend.generate(&id, now()).map(|j| j.to_string()));
    let options = EThreeOptions::new(url, dir).brainkey_version(version);
    EThree::initialize(provider, options).await.unwrap()
}

async fn assert_same_key(device: &EThree, original: &EThree) {
    let own = original.find_user(original.identity()).await.unwrap();
    let msg = device.auth_encrypt_text("mine", &[&own]).await.unwrap();
    assert_eq!(
        original.auth_decrypt_text(&msg, &own, None).await.unwrap(),
        "mine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v3_backups_restore_with_v3_only() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let backend = backend(&creds);
    let url = server.url.clone();
    let path = |n: &str| dir.path().join(n);

    let alice = device(&url, &backend, "alice", &path("a0"), BrainkeyVersion::V3).await;
    alice.register(None).await.unwrap();
    alice.backup_private_key("pw1", None).await.unwrap();
    alice
        .backup_private_key("pw1", Some("phone"))
        .await
        .unwrap();

    let v2 = device(&url, &backend, "alice", &path("a1"), BrainkeyVersion::V2).await;
    assert!(matches!(
        v2.restore_private_key("pw1", None).await,
        Err(Error::WrongKeyknoxPassword)
    ));
    assert!(matches!(
        v2.restore_private_key("pw1", Some("phone")).await,
        Err(Error::WrongKeyknoxPassword)
    ));
    let v3 = device(&url, &backend, "alice", &path("a2"), BrainkeyVersion::V3).await;
    assert!(matches!(
        v3.restore_private_key("pw2", None).await,
        Err(Error::WrongKeyknoxPassword)
    ));
    v3.restore_private_key("pw1", None).await.unwrap();
    assert_same_key(&v3, &alice).await;
    let named = device(&url, &backend, "alice", &path("a3"), BrainkeyVersion::V3).await;
    named
        .restore_private_key("pw1", Some("phone"))
        .await
        .unwrap();
    assert_same_key(&named, &alice).await;

    // The C library's client, through the same server, derives the key the backup is for.
    let Some(seed) = c_client_seed(
        &url,
        &backend.generate("alice", now()).unwrap().to_string(),
        "pw1",
    ) else {
        return;
    };
    let key = sealkit_pythia::private_key_from_key_material(&seed).unwrap();
    let blob = keyknox_v1_message(&url, &backend.generate("alice", now()).unwrap().to_string());
    let plain = sealkit_crypto::Crypto::new().decrypt(&blob, &key);
    assert!(
        plain.is_ok(),
        "the v3 backup must open with the C client's key: {plain:?}"
    );
    let wrong = sealkit_pythia::private_key_from_key_material(&[7u8; 32]).unwrap();
    assert!(sealkit_crypto::Crypto::new()
        .decrypt(&blob, &wrong)
        .is_err());
}

/// The caller's Keyknox v1 entry as one message: `meta` (the message info) then `value`.
fn keyknox_v1_message(url: &str, token: &str) -> Vec<u8> {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let answer: serde_json::Value = ureq::get(&format!("{url}/keyknox/v1"))
        .set("Authorization", &format!("Virgil {token}"))
        .call()
        .unwrap()
        .into_json()
        .unwrap();
    let mut message = b64.decode(answer["meta"].as_str().unwrap()).unwrap();
    message.extend(b64.decode(answer["value"].as_str().unwrap()).unwrap());
    message
}

/// The seed of e3kit-kotlin's flow run by the C library against `url`, or `None` when interop
/// is skipped.
fn c_client_seed(url: &str, token: &str, password: &str) -> Option<Vec<u8>> {
    let mut oracle = Oracle::start(&repo_root(), "the C client part")?;
    let answer = oracle
        .call(serde_json::json!({"op": "flow", "url": url, "token": token, "password": password}));
    assert_eq!(answer["verified"], true, "{answer}");
    Some(Oracle::bytes(&answer, "seed"))
}
