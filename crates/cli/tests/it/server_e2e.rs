//! `sealkit serve` as a process, with the official e3kit-node 2.5.1 as the client
//! (`interop/e3kit_cards.js`: cards and auth; `interop/e3kit_backup_groups.js`: key backup with
//! Keyknox and brainkey, groups, throttling): on SQLite, on PostgreSQL, and as two servers sharing
//! one PostgreSQL. Plus durability: kill -9 during a burst of publishes loses no acknowledged card.
//!
//! PostgreSQL comes from `SEALKIT_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each run creates its own database there. `SEALKIT_SKIP_INTEROP=1` skips the e3kit runs.

use crate::common::*;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn run_e3kit(urls: &[&str], creds: &Path, dir: &Path) {
    for script in ["e3kit_cards.js", "e3kit_backup_groups.js"] {
        run_scenario(script, urls, creds, dir);
    }
}

fn run_scenario(script: &str, urls: &[&str], creds: &Path, dir: &Path) {
    if !e3kit_node_enabled() {
        return;
    }
    let root = repo_root();
    let mut cmd = Command::new("node");
    cmd.arg(root.join("interop").join(script));
    for url in urls {
        cmd.args(["--api-url", url]);
    }
    let out = cmd
        .arg("--app-credentials")
        .arg(creds)
        .arg("--storage")
        .arg(dir.join(script))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "e3kit-node scenario failed against {urls:?}"
    );
    assert!(
        stdout
            .lines()
            .last()
            .is_some_and(|l| l.ends_with(" 0 failed")),
        "{stdout}"
    );
}

#[test]
fn e3kit_node_against_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    run_e3kit(&[&server.url], &creds, dir.path());
}

#[test]
fn e3kit_node_against_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, serve) = pg_deployment("single", dir.path());
    let serve = as_strs(&serve);
    let server = Server::start(&serve);
    run_e3kit(&[&server.url], &creds, dir.path());
}

#[test]
fn e3kit_node_against_two_servers_on_one_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, serve) = pg_deployment("pair", dir.path());
    let serve = as_strs(&serve);
    // Both start at once: the service key and schema must come out the same on both.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Server::start(&serve));
        let b = s.spawn(|| Server::start(&serve));
        (a.join().unwrap(), b.join().unwrap())
    });
    run_e3kit(&[&a.url, &b.url], &creds, dir.path());
}

/// Publishes a fresh card for `identity`; true when the server acknowledged it.
fn publish(url: &str, token: &str, identity: &str) -> bool {
    use base64::Engine as _;
    let key = sealkit_crypto::PrivateKey::generate(
        sealkit_crypto::KeyType::Ed25519,
        &mut rand_core::OsRng,
    );
    let snapshot = serde_json::json!({
        "identity": identity, "created_at": 1_800_000_000, "version": "5.0", "public_key": key.public_key().to_base64(),
    })
    .to_string();
    let sig = sealkit_crypto::sign(snapshot.as_bytes(), &key, &mut rand_core::OsRng).unwrap();
    let body = serde_json::json!({
        "content_snapshot": base64::engine::general_purpose::STANDARD.encode(&snapshot),
        "signatures": [{"signer": "self", "signature": base64::engine::general_purpose::STANDARD.encode(sig)}],
    });
    ureq::post(&format!("{url}/card/v5"))
        .set("Authorization", &format!("Virgil {token}"))
        .timeout(Duration::from_secs(5))
        .send_json(body)
        .is_ok_and(|r| r.status() == 200)
}

#[test]
fn kill_9_during_publishes_loses_no_acknowledged_card() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let storage = ["--data-dir", data.to_str().unwrap()];
    let creds = create_app(&storage, dir.path());
    let mut server = Server::start(&storage);
    // One identity per card, so every publish is a first publish. Workers publish until the
    // server is gone; the kill lands in the middle of the burst.
    let acknowledged = std::sync::Mutex::new(Vec::new());
    let attempted = std::sync::atomic::AtomicUsize::new(0);
    let url = server.url.clone();
    std::thread::scope(|s| {
        for worker in 0..8 {
            let (url, creds, acknowledged, attempted) = (&url, &creds, &acknowledged, &attempted);
            s.spawn(move || {
                let mut failures = 0;
                for i in 0..100_000 {
                    let id = format!("durable-{worker}-{i}");
                    let token = mint_fast(creds, &id);
                    attempted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if publish(url, &token, &id) {
                        acknowledged.lock().unwrap().push(id);
                        failures = 0;
                    } else {
                        failures += 1;
                        if failures >= 3 {
                            break;
                        }
                    }
                }
            });
        }
        std::thread::sleep(Duration::from_millis(1500));
        server.kill9();
    });
    let acknowledged = acknowledged.into_inner().unwrap();
    assert!(
        !acknowledged.is_empty(),
        "nothing was published before the kill"
    );
    let server = Server::start(&storage);
    let reader = mint_fast(&creds, "reader");
    for chunk in acknowledged.chunks(200) {
        let found: serde_json::Value =
            ureq::post(&format!("{}/card/v5/actions/search", server.url))
                .set("Authorization", &format!("Virgil {reader}"))
                .send_json(serde_json::json!({"identities": chunk}))
                .unwrap()
                .into_json()
                .unwrap();
        assert_eq!(
            found.as_array().unwrap().len(),
            chunk.len(),
            "an acknowledged card was lost"
        );
    }
    let attempted = attempted.into_inner();
    eprintln!(
        "{} of {attempted} publishes were acknowledged before kill -9; all survived",
        acknowledged.len()
    );
    assert!(
        acknowledged.len() < attempted,
        "the kill did not interrupt the burst"
    );
}

/// Mints in-process (spawning the CLI for every publish would dominate the test).
fn mint_fast(creds: &Path, identity: &str) -> String {
    backend(creds)
        .generate(identity, now())
        .unwrap()
        .to_string()
}
