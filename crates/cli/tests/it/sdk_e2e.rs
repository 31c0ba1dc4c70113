//! The Rust SDK (`sealkit` crate) against `sealkit serve` as a process: three and more Rust users
//! on SQLite and on PostgreSQL (register, find, auth/legacy encryption, streams, rotation with
//! `encrypted_at`, unregister, token refresh on 20304, offline use of the card cache), key
//! backup across devices (v1 and named), and interop with the official e3kit-node 2.5.1 through
//! one server (`interop/e3kit_peer.js`): messages, backups both ways, groups both ways.
//!
//! PostgreSQL comes from `SEALKIT_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! each run creates its own database there. `SEALKIT_SKIP_INTEROP=1` skips the e3kit-node test.

use crate::common::node_peer::NodePeer;
use crate::common::*;

use sealkit::{Card, EThree, EThreeOptions, Error, KeyType, PrivateKey};
use sealkit_proto::JwtGenerator;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ------------------------------------------------------------------------------------------ server

// ------------------------------------------------------------------------------------------ tokens

/// A token provider for `identity` that counts its calls and returns tokens that expired an
/// hour ago for the first `expired_calls` calls.
fn provider(
    backend: &JwtGenerator,
    identity: &str,
    expired_calls: usize,
) -> (
    impl Fn() -> std::future::Ready<Result<String, sealkit::JwtError>> + Send + Sync + 'static,
    Arc<AtomicUsize>,
) {
    let backend = backend.clone();
    let identity = identity.to_owned();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let f = move || {
        let n = counter.fetch_add(1, Ordering::SeqCst);
        let issued = if n < expired_calls {
            now() - 7200
        } else {
            now()
        };
        std::future::ready(backend.generate(&identity, issued).map(|j| j.to_string()))
    };
    (f, calls)
}

async fn user(url: &str, backend: &JwtGenerator, identity: &str, storage: &Path) -> EThree {
    user_with(EThreeOptions::new(url, storage), backend, identity).await
}

async fn user_with(options: EThreeOptions, backend: &JwtGenerator, identity: &str) -> EThree {
    let (p, _) = provider(backend, identity, 0);
    EThree::initialize(p, options).await.unwrap()
}

fn at_millis(ms: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms)
}

fn values(map: &BTreeMap<String, Card>) -> Vec<&Card> {
    map.values().collect()
}

fn is_crypto(e: &Error) -> bool {
    matches!(e, Error::Crypto(_))
}

// ------------------------------------------------------------------------------------------ scenario

/// Everything a Rust app does against one server. Stops the server at the end (offline part).
async fn sdk_scenario(server: &mut Server, creds: &Path, dir: &Path) {
    let url = server.url.clone();
    let backend = backend(creds);
    let started = Instant::now();
    let storage = dir.join("storage");
    let changed = Arc::new(Mutex::new(Vec::<String>::new()));

    // --- initialize, errors before registration
    let alice = {
        let changed = changed.clone();
        let options = EThreeOptions::new(&url, &storage).on_key_changed(move |identity| {
            changed.lock().unwrap().push(identity.to_owned());
        });
        user_with(options, &backend, "alice").await
    };
    let bob = user(&url, &backend, "bob", &storage).await;
    let carol = user(&url, &backend, "carol", &dir.join("carol-device")).await;
    assert_eq!(alice.identity(), "alice");
    assert!(!alice.has_local_private_key().await.unwrap());
    assert!(matches!(
        alice.auth_encrypt(b"x", &[]).await,
        Err(Error::MissingPrivateKey)
    ));
    match alice.find_users(&["bob"]).await {
        Err(Error::UsersNotFound { identities }) => assert_eq!(identities, ["bob"]),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        alice.rotate_private_key().await,
        Err(Error::RegisterRequired)
    ));
    assert!(matches!(
        alice.unregister().await,
        Err(Error::RegisterRequired)
    ));

    // --- register
    let alice_card = alice.register(None).await.unwrap();
    let bob_card = bob.register(None).await.unwrap();
    let carol_key = PrivateKey::generate(KeyType::Ed25519, &mut rand_core::OsRng);
    let carol_public = carol_key.public_key().clone();
    let carol_card = carol.register(Some(carol_key)).await.unwrap();
    assert_eq!(carol_card.public_key(), &carol_public);
    assert!(alice.has_local_private_key().await.unwrap());
    assert!(matches!(
        alice.register(None).await,
        Err(Error::IdentityAlreadyExists)
    ));
    assert!(matches!(
        alice.rotate_private_key().await,
        Err(Error::PrivateKeyAlreadyExists)
    ));
    // Only signing keys make cards.
    let dave = user(&url, &backend, "dave", &storage).await;
    let x25519 = PrivateKey::generate(KeyType::Curve25519, &mut rand_core::OsRng);
    assert!(matches!(
        dave.register(Some(x25519)).await,
        Err(Error::InvalidInput(_))
    ));

    // --- find users
    let found = alice.find_users(&["bob", "carol", "bob"]).await.unwrap();
    assert_eq!(found.len(), 2);
    assert_eq!(found["bob"].id(), bob_card.id());
    assert_eq!(found["carol"].public_key(), &carol_public);
    assert!(found["bob"].previous_card().is_none() && !found["bob"].is_outdated());
    match alice
        .find_users(&["bob", "nobody-1", "carol", "nobody-2"])
        .await
    {
        Err(Error::UsersNotFound { identities }) => {
            assert_eq!(identities, ["nobody-1", "nobody-2"])
        }
        other => panic!("{other:?}"),
    }
    let bob_found = bob.find_users(&["alice", "carol"]).await.unwrap();
    let carol_found = carol.find_users(&["alice", "bob"]).await.unwrap();
    let alice_seen_by_bob = &bob_found["alice"];
    assert_eq!(alice_seen_by_bob.id(), alice_card.id());

    // --- auth encryption: one recipient, three, text, own messages, wrong sender / recipient
    let msg = alice
        .auth_encrypt(b"to bob", &[&found["bob"]])
        .await
        .unwrap();
    assert_eq!(
        bob.auth_decrypt(&msg, alice_seen_by_bob, None)
            .await
            .unwrap(),
        b"to bob"
    );
    assert!(is_crypto(
        &carol
            .auth_decrypt(&msg, &carol_found["alice"], None)
            .await
            .unwrap_err()
    ));
    // The sender is always a recipient too (e3kit adds the own key).
    let own = alice.find_cached_user("alice").await.unwrap();
    assert_eq!(own.id(), alice_card.id());
    assert_eq!(
        alice.auth_decrypt(&msg, &own, None).await.unwrap(),
        b"to bob"
    );
    // Checked against the wrong sender.
    assert!(is_crypto(
        &bob.auth_decrypt(&msg, &bob_found["carol"], None)
            .await
            .unwrap_err()
    ));

    let text = "to bob and carol, ünïcødé ✓";
    let msg3 = alice
        .auth_encrypt_text(text, &values(&found))
        .await
        .unwrap();
    assert_eq!(
        bob.auth_decrypt_text(&msg3, alice_seen_by_bob, None)
            .await
            .unwrap(),
        text
    );
    assert_eq!(
        carol
            .auth_decrypt_text(&msg3, &carol_found["alice"], None)
            .await
            .unwrap(),
        text
    );
    assert!(matches!(
        bob.auth_decrypt_text("not base64!", alice_seen_by_bob, None)
            .await,
        Err(Error::InvalidInput(_))
    ));
    // Large one-shot input (runs on the blocking pool).
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    let big_msg = bob
        .auth_encrypt(&big, &[&bob_found["carol"]])
        .await
        .unwrap();
    assert_eq!(
        carol
            .auth_decrypt(&big_msg, &carol_found["bob"], None)
            .await
            .unwrap(),
        big
    );

    // --- legacy encrypt / decrypt
    let legacy = alice.encrypt_text("legacy", &values(&found)).await.unwrap();
    assert_eq!(
        carol
            .decrypt_text(&legacy, &carol_found["alice"], None)
            .await
            .unwrap(),
        "legacy"
    );
    // Modes are not interchangeable in the one-shot API.
    assert!(is_crypto(
        &carol
            .auth_decrypt_text(&legacy, &carol_found["alice"], None)
            .await
            .unwrap_err()
    ));
    assert!(is_crypto(
        &carol
            .decrypt_text(&msg3, &carol_found["alice"], None)
            .await
            .unwrap_err()
    ));

    // --- streams and files
    let plain_path = dir.join("plain.bin");
    let data: Vec<u8> = (0..3_000_017u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&plain_path, &data).unwrap();
    let enc_path = dir.join("plain.bin.enc");
    let seen = Arc::new(AtomicUsize::new(0));
    let seen2 = seen.clone();
    alice
        .auth_encrypt_file(&plain_path, &enc_path, &[&found["bob"]], move |n| {
            seen2.store(n as usize, Ordering::SeqCst)
        })
        .await
        .unwrap();
    assert_eq!(seen.load(Ordering::SeqCst), data.len());
    let out_path = dir.join("plain.bin.out");
    bob.auth_decrypt_file(&enc_path, &out_path, alice_seen_by_bob, None, |_| ())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&out_path).unwrap(), data);
    // The stream output opens with the one-shot API, and the reverse.
    let ct = std::fs::read(&enc_path).unwrap();
    assert_eq!(
        bob.auth_decrypt(&ct, alice_seen_by_bob, None)
            .await
            .unwrap(),
        data
    );
    let one_shot = alice.auth_encrypt(&data, &[&found["bob"]]).await.unwrap();
    let staged: Vec<u8> = bob
        .auth_decrypt_stream(
            std::io::Cursor::new(one_shot),
            Vec::new(),
            alice_seen_by_bob,
            None,
            |_| (),
        )
        .await
        .unwrap();
    assert_eq!(staged, data);
    // Tampered: an error and no output file at all.
    let mut bad = ct.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    let bad_path = dir.join("bad.enc");
    std::fs::write(&bad_path, &bad).unwrap();
    let none_path = dir.join("never.out");
    assert!(is_crypto(
        &bob.auth_decrypt_file(&bad_path, &none_path, alice_seen_by_bob, None, |_| ())
            .await
            .unwrap_err()
    ));
    assert!(!none_path.exists());
    let leftovers: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".sealkit-"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    // A wrong declared length is an error.
    assert!(alice
        .auth_encrypt_stream(
            std::io::Cursor::new(vec![1u8; 10]),
            11,
            Vec::new(),
            &[],
            |_| ()
        )
        .await
        .is_err());

    // --- find_users in batches of 50
    let crowd: Vec<String> = (0..55).map(|i| format!("crowd-{i:02}")).collect();
    for identity in &crowd {
        let u = user(&url, &backend, identity, &dir.join("crowd")).await;
        u.register(None).await.unwrap();
    }
    let mut wanted: Vec<&str> = crowd.iter().map(String::as_str).collect();
    wanted.push("bob");
    let many = alice.find_users(&wanted).await.unwrap();
    assert_eq!(many.len(), 56);
    wanted.insert(3, "ghost-a");
    wanted.push("ghost-b");
    match alice.find_users(&wanted).await {
        Err(Error::UsersNotFound { identities }) => assert_eq!(identities, ["ghost-a", "ghost-b"]),
        other => panic!("{other:?}"),
    }
    let many_msg = alice
        .auth_encrypt(b"to 56 users", &values(&many))
        .await
        .unwrap();
    assert_eq!(
        bob.auth_decrypt(&many_msg, alice_seen_by_bob, None)
            .await
            .unwrap(),
        b"to 56 users"
    );

    // --- rotation: a message sent before, decrypted after with encrypted_at
    let before_first_card = UNIX_EPOCH + Duration::from_secs(carol_card.created_at_secs() as u64)
        - Duration::from_millis(1);
    let sent_at = SystemTime::now();
    let old_auth = carol
        .auth_encrypt(b"before rotation", &[&carol_found["alice"]])
        .await
        .unwrap();
    let old_legacy = carol
        .encrypt(b"legacy before rotation", &[&carol_found["alice"]])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        carol.rotate_private_key().await,
        Err(Error::PrivateKeyAlreadyExists)
    ));
    carol.cleanup().await.unwrap();
    assert!(!carol.has_local_private_key().await.unwrap());
    assert!(matches!(
        carol.auth_encrypt(b"x", &[]).await,
        Err(Error::MissingPrivateKey)
    ));
    let carol_rotated = carol.rotate_private_key().await.unwrap();
    assert_eq!(carol_rotated.previous_card_id(), Some(carol_card.id()));
    assert_eq!(carol_rotated.previous_card().unwrap().id(), carol_card.id());
    assert!(carol_rotated.previous_card().unwrap().is_outdated());

    assert!(changed.lock().unwrap().is_empty());
    let carol_now = alice.find_user("carol").await.unwrap();
    assert_eq!(carol_now.id(), carol_rotated.id());
    assert_eq!(carol_now.previous_card().unwrap().id(), carol_card.id());
    assert_eq!(*changed.lock().unwrap(), ["carol"], "key-changed callback");
    assert!(is_crypto(
        &alice
            .auth_decrypt(&old_auth, &carol_now, None)
            .await
            .unwrap_err()
    ));
    assert_eq!(
        alice
            .auth_decrypt(&old_auth, &carol_now, Some(sent_at))
            .await
            .unwrap(),
        b"before rotation"
    );
    assert_eq!(
        alice
            .decrypt(&old_legacy, &carol_now, Some(sent_at))
            .await
            .unwrap(),
        b"legacy before rotation"
    );
    assert!(matches!(
        alice
            .auth_decrypt(&old_auth, &carol_now, Some(before_first_card))
            .await,
        Err(Error::SenderCardNewerThanMessage)
    ));
    let new_msg = carol
        .auth_encrypt(b"after rotation", &[&carol_found["alice"]])
        .await
        .unwrap();
    assert_eq!(
        alice
            .auth_decrypt(&new_msg, &carol_now, Some(SystemTime::now()))
            .await
            .unwrap(),
        b"after rotation"
    );
    // Bob's cache still has carol's old card until it is updated.
    assert_eq!(
        bob.find_cached_user("carol").await.unwrap().id(),
        carol_card.id()
    );
    let updated = bob.update_cached_users().await.unwrap();
    assert_eq!(updated, ["carol"]);
    assert_eq!(
        bob.find_cached_user("carol").await.unwrap().id(),
        carol_rotated.id()
    );
    assert!(bob.update_cached_users().await.unwrap().is_empty());

    // --- unregister, register again
    bob.unregister().await.unwrap();
    assert!(!bob.has_local_private_key().await.unwrap());
    assert!(matches!(
        alice.find_user("bob").await,
        Err(Error::UsersNotFound { .. })
    ));
    assert!(matches!(
        bob.unregister().await,
        Err(Error::RegisterRequired)
    ));
    assert!(matches!(
        bob.rotate_private_key().await,
        Err(Error::RegisterRequired)
    ));
    let bob_again = bob.register(None).await.unwrap();
    assert!(bob_again.previous_card().is_none());
    let bob_now = alice.find_user("bob").await.unwrap();
    assert_eq!(bob_now.id(), bob_again.id());
    assert!(bob_now.previous_card().is_none());
    let msg = alice
        .auth_encrypt(b"welcome back", &[&bob_now])
        .await
        .unwrap();
    let alice_for_bob = bob.find_user("alice").await.unwrap();
    assert_eq!(
        bob.auth_decrypt(&msg, &alice_for_bob, None).await.unwrap(),
        b"welcome back"
    );
    // P-256 keys; an unregistered user leaves the caches of those who update.
    let erin = user_with(
        EThreeOptions::new(&url, dir.join("erin")).key_type(KeyType::Secp256r1),
        &backend,
        "erin",
    )
    .await;
    let erin_card = erin.register(None).await.unwrap();
    assert_eq!(erin_card.public_key().key_type(), KeyType::Secp256r1);
    let for_erin = alice.find_user("erin").await.unwrap();
    let to_erin = alice
        .auth_encrypt_text("p-256", &[&for_erin])
        .await
        .unwrap();
    let alice_for_erin = erin.find_user("alice").await.unwrap();
    assert_eq!(
        erin.auth_decrypt_text(&to_erin, &alice_for_erin, None)
            .await
            .unwrap(),
        "p-256"
    );
    let from_erin = erin
        .auth_encrypt_text("from p-256", &[&alice_for_erin])
        .await
        .unwrap();
    assert_eq!(
        alice
            .auth_decrypt_text(&from_erin, &for_erin, None)
            .await
            .unwrap(),
        "from p-256"
    );
    erin.unregister().await.unwrap();
    let gone = alice.update_cached_users().await.unwrap();
    assert!(gone.contains(&"erin".to_owned()), "{gone:?}");
    assert!(matches!(
        alice.find_cached_user("erin").await,
        Err(Error::UsersNotFound { .. })
    ));
    // SHA-256 key ids in messages are read by everyone.
    let sha = user_with(
        EThreeOptions::new(&url, &storage).sha256_identifiers(true),
        &backend,
        "alice",
    )
    .await;
    let sha_msg = sha.auth_encrypt(b"sha256 ids", &[&bob_now]).await.unwrap();
    let long_id = bob_now
        .public_key()
        .key_id_with(sealkit_crypto::KeyIdScheme::Sha256);
    assert!(sha_msg.windows(32).any(|w| w == long_id.as_bytes()));
    assert_eq!(
        bob.auth_decrypt(&sha_msg, &alice_for_bob, None)
            .await
            .unwrap(),
        b"sha256 ids"
    );

    // --- token refresh on 401 / 20304
    // Calls 1 (initialize) and 2 (the cached token is stale, so a new one is asked for) return
    // expired tokens: the server answers 20304, the provider is asked once more, the request is
    // repeated and succeeds.
    let (p, calls) = provider(&backend, "tom", 2);
    let tom = EThree::initialize(p, EThreeOptions::new(&url, dir.join("tom")))
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    tom.register(None).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    tom.find_user("alice").await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3, "the fresh token is cached");
    // A provider that only has expired tokens: exactly one retry, then the server's error.
    let (p, calls) = provider(&backend, "tim", usize::MAX);
    let tim = EThree::initialize(p, EThreeOptions::new(&url, dir.join("tim")))
        .await
        .unwrap();
    match tim.find_user("alice").await {
        Err(Error::Api {
            status: 401,
            code: 20304,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(calls.load(Ordering::SeqCst), 3);

    // --- offline: the server is gone
    let frank = user(&url, &backend, "frank", &dir.join("frank")).await;
    let grace = user(&url, &backend, "grace", &dir.join("grace")).await;
    frank.register(None).await.unwrap();
    grace.register(None).await.unwrap();
    frank.find_users(&["grace", "alice"]).await.unwrap();
    grace.find_users(&["frank"]).await.unwrap();
    drop((frank, grace));
    server.kill9();
    eprintln!("online part: {:.1} s", started.elapsed().as_secs_f64());

    // New instances (as after an app restart), no server.
    let short = |name: &str| {
        EThreeOptions::new(&url, dir.join(name)).request_timeout(Duration::from_secs(2))
    };
    let frank = user_with(short("frank"), &backend, "frank").await;
    let grace = user_with(short("grace"), &backend, "grace").await;
    let cached = frank.find_cached_users(&["grace", "alice"]).await.unwrap();
    match frank.find_cached_users(&["grace", "bob"]).await {
        Err(Error::UsersNotFound { identities }) => assert_eq!(identities, ["bob"]),
        other => panic!("{other:?}"),
    }
    let offline_msg = frank
        .auth_encrypt_text("sent offline", &values(&cached))
        .await
        .unwrap();
    let frank_for_grace = grace.find_cached_user("frank").await.unwrap();
    assert_eq!(
        grace
            .auth_decrypt_text(&offline_msg, &frank_for_grace, None)
            .await
            .unwrap(),
        "sent offline"
    );
    let t = Instant::now();
    match frank.find_users(&["grace"]).await {
        Err(Error::Network(text)) => eprintln!("offline find_users: {text}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(frank.unregister().await, Err(Error::Network(_))));
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "took {:?}",
        t.elapsed()
    );
    // A server that accepts connections but never answers: the request timeout applies.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_url = format!("http://{}", silent.local_addr().unwrap());
    let stuck = user_with(
        EThreeOptions::new(&silent_url, dir.join("frank")).request_timeout(Duration::from_secs(1)),
        &backend,
        "frank",
    )
    .await;
    let t = Instant::now();
    match stuck.find_users(&["grace"]).await {
        Err(Error::Network(text)) => assert!(text.contains("no answer within"), "{text}"),
        other => panic!("{other:?}"),
    }
    let waited = t.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(4),
        "{waited:?}"
    );
    drop(silent);
    eprintln!("whole scenario: {:.1} s", started.elapsed().as_secs_f64());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_against_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, mut server) = sqlite_deployment(dir.path());
    sdk_scenario(&mut server, &creds, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_against_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, serve) = pg_deployment("sdk", dir.path());
    let serve = as_strs(&serve);
    let mut server = Server::start(&serve);
    sdk_scenario(&mut server, &creds, dir.path()).await;
}

// ------------------------------------------------------------------------------------------ e3kit-node

/// The commands the interop tests below send most.
impl NodePeer {
    /// Encrypts `text` from `user` to `to`; returns (base64, time in ms).
    fn encrypt(&mut self, user: &str, mode: &str, to: &[&str], text: &str) -> (String, u64) {
        let r = self
            .call(json!({"cmd": "encrypt", "user": user, "mode": mode, "to": to, "text": text}));
        (
            r["data"].as_str().unwrap().to_owned(),
            r["at"].as_u64().unwrap(),
        )
    }

    fn decrypt(
        &mut self,
        user: &str,
        mode: &str,
        from: &str,
        data: &str,
        at: Option<u64>,
    ) -> Result<String, (String, String)> {
        self.try_call(json!({"cmd": "decrypt", "user": user, "mode": mode, "from": from, "data": data, "at": at}))
            .map(|r| r["text"].as_str().unwrap().to_owned())
    }
}

async fn rust_decrypt(
    user: &EThree,
    mode: &str,
    data: &str,
    sender: &Card,
    at: Option<SystemTime>,
) -> sealkit::Result<String> {
    match mode {
        "auth" => user.auth_decrypt_text(data, sender, at).await,
        _ => user.decrypt_text(data, sender, at).await,
    }
}

async fn rust_encrypt(user: &EThree, mode: &str, text: &str, to: &[&Card]) -> String {
    match mode {
        "auth" => user.auth_encrypt_text(text, to).await.unwrap(),
        _ => user.encrypt_text(text, to).await.unwrap(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_interop_with_e3kit_node() {
    if !e3kit_node_enabled() {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let url = server.url.clone();
    let backend = backend(&creds);
    let mut js = NodePeer::start(&url, &creds, &dir.path().join("js"));
    eprintln!("e3kit peer ready: {:.1} s", started.elapsed().as_secs_f64());

    // j1, j2 in e3kit-node; r1, r2 in Rust.
    for (name, identity) in [("j1", "js-one"), ("j2", "js-two")] {
        js.call(json!({"cmd": "init", "user": name, "identity": identity}));
        js.call(json!({"cmd": "register", "user": name}));
    }
    let r1 = user(&url, &backend, "rust-one", &dir.path().join("r1")).await;
    let r2 = user(&url, &backend, "rust-two", &dir.path().join("r2")).await;
    r1.register(None).await.unwrap();
    r2.register(None).await.unwrap();
    let everyone = ["js-one", "js-two", "rust-one", "rust-two"];
    js.call(json!({"cmd": "find", "user": "j1", "identities": everyone}));
    js.call(json!({"cmd": "find", "user": "j2", "identities": everyone}));
    let mut r1_cards = r1.find_users(&everyone).await.unwrap();
    let r2_cards = r2.find_users(&everyone).await.unwrap();

    for mode in ["auth", "legacy"] {
        // JS -> Rust, one recipient.
        let text = format!("{mode}: js-one to rust-one");
        let (msg, _) = js.encrypt("j1", mode, &["rust-one"], &text);
        assert_eq!(
            rust_decrypt(&r1, mode, &msg, &r1_cards["js-one"], None)
                .await
                .unwrap(),
            text
        );
        // JS -> Rust, three recipients (two Rust, one JS).
        let text = format!("{mode}: js-one to three ✓");
        let (msg, _) = js.encrypt("j1", mode, &["rust-one", "rust-two", "js-two"], &text);
        assert_eq!(
            rust_decrypt(&r1, mode, &msg, &r1_cards["js-one"], None)
                .await
                .unwrap(),
            text
        );
        assert_eq!(
            rust_decrypt(&r2, mode, &msg, &r2_cards["js-one"], None)
                .await
                .unwrap(),
            text
        );
        assert_eq!(js.decrypt("j2", mode, "js-one", &msg, None).unwrap(), text);
        // Rust -> JS, one recipient.
        let text = format!("{mode}: rust-one to js-one");
        let msg = rust_encrypt(&r1, mode, &text, &[&r1_cards["js-one"]]).await;
        assert_eq!(
            js.decrypt("j1", mode, "rust-one", &msg, None).unwrap(),
            text
        );
        // Rust -> JS, three recipients (two JS, one Rust).
        let text = format!("{mode}: rust-one to three ✓");
        let to = [
            &r1_cards["js-one"],
            &r1_cards["js-two"],
            &r1_cards["rust-two"],
        ];
        let msg = rust_encrypt(&r1, mode, &text, &to).await;
        assert_eq!(
            js.decrypt("j1", mode, "rust-one", &msg, None).unwrap(),
            text
        );
        assert_eq!(
            js.decrypt("j2", mode, "rust-one", &msg, None).unwrap(),
            text
        );
        assert_eq!(
            rust_decrypt(&r2, mode, &msg, &r2_cards["rust-one"], None)
                .await
                .unwrap(),
            text
        );
        // e3kit rejects a Rust message checked against the wrong sender, and the reverse.
        let (name, _) = js.decrypt("j1", mode, "rust-two", &msg, None).unwrap_err();
        assert!(!name.is_empty());
        let (msg, _) = js.encrypt("j1", mode, &["rust-one"], "x");
        assert!(rust_decrypt(&r1, mode, &msg, &r1_cards["js-two"], None)
            .await
            .is_err());
    }

    // A JS message sent before the JS user rotated their key, decrypted by Rust afterwards.
    let (old_auth, at_auth) = js.encrypt("j1", "auth", &["rust-one"], "js before rotation");
    let (old_legacy, at_legacy) = js.encrypt("j1", "legacy", &["rust-one"], "js legacy before");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    js.call(json!({"cmd": "rotate", "user": "j1"}));
    r1_cards = r1.find_users(&everyone).await.unwrap();
    let j1_now = &r1_cards["js-one"];
    assert!(j1_now.previous_card().is_some());
    assert!(rust_decrypt(&r1, "auth", &old_auth, j1_now, None)
        .await
        .is_err());
    assert_eq!(
        rust_decrypt(&r1, "auth", &old_auth, j1_now, Some(at_millis(at_auth)))
            .await
            .unwrap(),
        "js before rotation"
    );
    assert_eq!(
        rust_decrypt(
            &r1,
            "legacy",
            &old_legacy,
            j1_now,
            Some(at_millis(at_legacy))
        )
        .await
        .unwrap(),
        "js legacy before"
    );
    // And after the rotation, with the new key.
    let (new_msg, at_new) = js.encrypt("j1", "auth", &["rust-one"], "js after rotation");
    assert_eq!(
        rust_decrypt(&r1, "auth", &new_msg, j1_now, Some(at_millis(at_new)))
            .await
            .unwrap(),
        "js after rotation"
    );

    // The reverse: a Rust message from before a Rust rotation, decrypted by e3kit with a date.
    let j1_for_r2 = r2.find_user("js-one").await.unwrap();
    let sent = SystemTime::now();
    let old_rust = r2
        .auth_encrypt_text("rust before rotation", &[&j1_for_r2])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    r2.cleanup().await.unwrap();
    r2.rotate_private_key().await.unwrap();
    js.call(json!({"cmd": "find", "user": "j1", "identities": ["rust-two"]}));
    let sent_ms = sent.duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    assert!(js
        .decrypt("j1", "auth", "rust-two", &old_rust, None)
        .is_err());
    assert_eq!(
        js.decrypt("j1", "auth", "rust-two", &old_rust, Some(sent_ms))
            .unwrap(),
        "rust before rotation"
    );

    // Key files are e3kit-node key entries: e3kit-node uses the key Rust stored, and the reverse.
    let r2_keys = dir.path().join("r2/keys");
    let loaded = js.call(
        json!({"cmd": "init", "user": "r2-in-js", "identity": "rust-two",
        "keys_dir": r2_keys.to_str().unwrap()}),
    );
    assert_eq!(loaded["has_local_private_key"], json!(true), "{loaded}");
    js.call(json!({"cmd": "find", "user": "r2-in-js", "identities": ["js-one"]}));
    let (msg, _) = js.encrypt("j1", "auth", &["rust-two"], "read with the Rust key file");
    assert_eq!(
        js.decrypt("r2-in-js", "auth", "js-one", &msg, None)
            .unwrap(),
        "read with the Rust key file"
    );
    let j1_in_rust = user(&url, &backend, "js-one", &dir.path().join("js/j1")).await;
    assert!(j1_in_rust.has_local_private_key().await.unwrap());
    let msg = r2
        .auth_encrypt_text("read with the e3kit key file", &[&j1_for_r2])
        .await
        .unwrap();
    let r2_for_j1 = j1_in_rust.find_user("rust-two").await.unwrap();
    assert_eq!(
        j1_in_rust
            .auth_decrypt_text(&msg, &r2_for_j1, None)
            .await
            .unwrap(),
        "read with the e3kit key file"
    );

    // Unregister on either side is seen by the other.
    js.call(json!({"cmd": "unregister", "user": "j2"}));
    match r1.find_user("js-two").await {
        Err(Error::UsersNotFound { identities }) => assert_eq!(identities, ["js-two"]),
        other => panic!("{other:?}"),
    }
    r1.unregister().await.unwrap();
    let (name, _) = js
        .try_call(json!({"cmd": "find", "user": "j1", "identities": ["rust-one"]}))
        .unwrap_err();
    assert_eq!(name, "UsersNotFoundError");
    drop(js);
    drop(server);
    eprintln!("interop: {:.1} s", started.elapsed().as_secs_f64());
}

// ------------------------------------------------------------------------------------------ backup

/// A user's own card must verify what the device's key signs: proves the key is the user's.
async fn assert_holds_key_of(device: &EThree, original: &EThree) {
    let own = original.find_user(original.identity()).await.unwrap();
    let msg = device.auth_encrypt_text("mine", &[&own]).await.unwrap();
    assert_eq!(
        original.auth_decrypt_text(&msg, &own, None).await.unwrap(),
        "mine"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_key_backup_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    backup_scenario(&server.url, &creds, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_key_backup_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, serve) = pg_deployment("backup", dir.path());
    let serve = as_strs(&serve);
    let server = Server::start(&serve);
    backup_scenario(&server.url, &creds, dir.path()).await;
}

/// Backup, restore on other devices, wrong passwords, password change, reset; v1 and named.
async fn backup_scenario(url: &str, creds: &Path, dir: &Path) {
    let started = Instant::now();
    let url = url.to_owned();
    let backend = backend(creds);
    let devices = AtomicUsize::new(0);
    let device = |identity: &'static str| {
        let n = devices.fetch_add(1, Ordering::SeqCst);
        let path = dir.join(format!("device-{n}"));
        let url = url.clone();
        let backend = backend.clone();
        async move { user(&url, &backend, identity, &path).await }
    };

    // --- v1 (no key name), Alice. At most 10 brainkey requests (the server's burst).
    let alice = device("alice").await;
    assert!(matches!(
        alice.backup_private_key("pw1", None).await,
        Err(Error::MissingPrivateKey)
    ));
    alice.register(None).await.unwrap();
    alice.backup_private_key("pw1", None).await.unwrap();
    match alice.backup_private_key("pw1", None).await {
        Err(Error::CloudEntryExists { name }) => assert_eq!(name, "alice"),
        other => panic!("{other:?}"),
    }
    let b = device("alice").await;
    assert!(matches!(
        b.restore_private_key("wrong", None).await,
        Err(Error::WrongKeyknoxPassword)
    ));
    assert!(!b.has_local_private_key().await.unwrap());
    b.restore_private_key("pw1", None).await.unwrap();
    assert!(b.has_local_private_key().await.unwrap());
    assert_holds_key_of(&b, &alice).await;
    assert!(matches!(
        b.restore_private_key("pw1", None).await,
        Err(Error::PrivateKeyAlreadyExists)
    ));
    assert!(matches!(
        alice.change_password("wrong", "pw2", None).await,
        Err(Error::WrongKeyknoxPassword)
    ));
    alice.change_password("pw1", "pw2", None).await.unwrap();
    let c = device("alice").await;
    assert!(matches!(
        c.restore_private_key("pw1", None).await,
        Err(Error::WrongKeyknoxPassword)
    ));
    c.restore_private_key("pw2", None).await.unwrap();
    assert_holds_key_of(&c, &alice).await;
    alice.reset_private_key_backup().await.unwrap();
    alice.reset_private_key_backup().await.unwrap();
    let d = device("alice").await;
    assert!(matches!(
        d.restore_private_key("pw2", None).await,
        Err(Error::PrivateKeyNoBackup)
    ));
    eprintln!("v1 backup: {:.1} s", started.elapsed().as_secs_f64());

    // --- v2 (named backups), Bob, with derived passwords.
    let bob = device("bob").await;
    bob.register(None).await.unwrap();
    let p1 = EThree::derive_passwords("bob's password");
    let p2 = EThree::derive_passwords("bob's new password");
    bob.backup_private_key(&*p1.backup_password, Some("laptop"))
        .await
        .unwrap();
    // Same name, same password: replaced (as in e3kit); another password: refused.
    bob.backup_private_key(&*p1.backup_password, Some("laptop"))
        .await
        .unwrap();
    assert!(matches!(
        bob.backup_private_key("other", Some("laptop")).await,
        Err(Error::WrongKeyknoxPassword)
    ));
    let b = device("bob").await;
    assert!(matches!(
        b.restore_private_key(&*p1.backup_password, Some("phone"))
            .await,
        Err(Error::PrivateKeyNoBackup)
    ));
    // No v1 backup for Bob.
    assert!(matches!(
        b.restore_private_key(&*p1.backup_password, None).await,
        Err(Error::PrivateKeyNoBackup)
    ));
    assert!(matches!(
        b.restore_private_key(&*p2.backup_password, Some("laptop"))
            .await,
        Err(Error::WrongKeyknoxPassword)
    ));
    b.restore_private_key(&*p1.backup_password, Some("laptop"))
        .await
        .unwrap();
    assert_holds_key_of(&b, &bob).await;
    bob.change_password(&*p1.backup_password, &*p2.backup_password, Some("laptop"))
        .await
        .unwrap();
    eprintln!("v2 backup (part): {:.1} s", started.elapsed().as_secs_f64());

    // Bob's third device, after the password change (past the burst of 10 brainkey requests:
    // the throttled one is retried after 2 s), then reset.
    let c = device("bob").await;
    assert!(matches!(
        c.restore_private_key(&*p1.backup_password, Some("laptop"))
            .await,
        Err(Error::WrongKeyknoxPassword)
    ));
    c.restore_private_key(&*p2.backup_password, Some("laptop"))
        .await
        .unwrap();
    assert_holds_key_of(&c, &bob).await;
    bob.reset_private_key_backup_with_key_name("laptop")
        .await
        .unwrap();
    let d = device("bob").await;
    assert!(matches!(
        d.restore_private_key(&*p2.backup_password, Some("laptop"))
            .await,
        Err(Error::PrivateKeyNoBackup)
    ));
    eprintln!("key backup: {:.1} s", started.elapsed().as_secs_f64());
}

/// The JS user `user` (who knows `identity`'s card) decrypts a message that `device` (holding a
/// restored key of `identity`) encrypted for itself: proves the restored key is the registered
/// one.
async fn assert_js_reads_from(js: &mut NodePeer, user: &str, device: &EThree) {
    let identity = device.identity().to_owned();
    let own = device.find_user(&identity).await.unwrap();
    let msg = device.auth_encrypt_text("restored", &[&own]).await.unwrap();
    js.call(json!({"cmd": "find", "user": user, "identities": [identity]}));
    assert_eq!(
        js.decrypt(user, "auth", &identity, &msg, None).unwrap(),
        "restored"
    );
}

/// The reverse: a JS user holding a restored key of `original`'s identity encrypts for itself,
/// and `original` (Rust) decrypts with its own card.
async fn assert_rust_reads_from(js: &mut NodePeer, user: &str, original: &EThree) {
    let identity = original.identity().to_owned();
    js.call(json!({"cmd": "find", "user": user, "identities": [identity]}));
    let (msg, _) = js.encrypt(user, "auth", &[&identity], "restored in js");
    let own = original.find_user(&identity).await.unwrap();
    assert_eq!(
        original.auth_decrypt_text(&msg, &own, None).await.unwrap(),
        "restored in js"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_backup_interop_with_e3kit_node() {
    if !e3kit_node_enabled() {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let url = server.url.clone();
    let backend = backend(&creds);
    let mut js = NodePeer::start(&url, &creds, &dir.path().join("js"));
    let devices = AtomicUsize::new(0);
    let device = |identity: &'static str| {
        let n = devices.fetch_add(1, Ordering::SeqCst);
        let path = dir.path().join(format!("device-{n}"));
        let url = url.clone();
        let backend = backend.clone();
        async move { user(&url, &backend, identity, &path).await }
    };

    // derivePasswords gives the same bytes.
    let derived = js.call(json!({"cmd": "derive_passwords", "password": "pässword ✓"}));
    let p = EThree::derive_passwords("pässword ✓");
    use base64::Engine as _;
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    assert_eq!(derived["login"], json!(b64(&p.login_password)));
    assert_eq!(derived["backup"], json!(b64(&p.backup_password)));

    // --- e3kit-node backs up, Rust restores: v1, named (v2), after changePassword.
    js.call(json!({"cmd": "init", "user": "jb", "identity": "js-b"}));
    js.call(json!({"cmd": "register", "user": "jb"}));
    js.call(json!({"cmd": "backup", "user": "jb", "password": "js pw"}));
    js.call(json!({"cmd": "backup", "user": "jb", "password": "js named", "key_name": "phone"}));
    let r = device("js-b").await;
    assert!(matches!(
        r.restore_private_key("not it", None).await,
        Err(Error::WrongKeyknoxPassword)
    ));
    r.restore_private_key("js pw", None).await.unwrap();
    assert_js_reads_from(&mut js, "jb", &r).await;
    let r = device("js-b").await;
    r.restore_private_key("js named", Some("phone"))
        .await
        .unwrap();
    assert_js_reads_from(&mut js, "jb", &r).await;
    js.call(json!({"cmd": "change_password", "user": "jb", "old": "js pw", "new": "js pw2"}));
    let r = device("js-b").await;
    r.restore_private_key("js pw2", None).await.unwrap();
    assert_js_reads_from(&mut js, "jb", &r).await;
    // A Rust backup next to e3kit's in the same v1 storage is refused like e3kit refuses it.
    assert!(matches!(
        r.backup_private_key("js pw2", None).await,
        Err(Error::CloudEntryExists { .. })
    ));
    eprintln!("e3kit -> rust: {:.1} s", started.elapsed().as_secs_f64());

    // With derived (binary) backup passwords, passed as e3kit-node passes the Buffer.
    js.call(json!({"cmd": "init", "user": "jd", "identity": "js-d"}));
    js.call(json!({"cmd": "register", "user": "jd"}));
    js.call(json!({"cmd": "backup", "user": "jd", "password": {"base64": derived["backup"]}}));
    let r = device("js-d").await;
    r.restore_private_key(&*p.backup_password, None)
        .await
        .unwrap();
    assert_js_reads_from(&mut js, "jd", &r).await;

    // --- Rust backs up, e3kit-node restores.
    let rb = device("rust-b").await;
    rb.register(None).await.unwrap();
    rb.backup_private_key("rust pw", None).await.unwrap();
    rb.backup_private_key("rust named", Some("tablet"))
        .await
        .unwrap();
    let r1 = dir.path().join("rb1-keys");
    js.call(json!({"cmd": "init", "user": "rb1", "identity": "rust-b", "keys_dir": r1.to_str().unwrap()}));
    let (name, _) = js
        .try_call(json!({"cmd": "restore", "user": "rb1", "password": "wrong"}))
        .unwrap_err();
    assert_eq!(name, "WrongKeyknoxPasswordError");
    let restored = js.call(json!({"cmd": "restore", "user": "rb1", "password": "rust pw"}));
    assert_eq!(restored["has_local_private_key"], json!(true));
    assert_rust_reads_from(&mut js, "rb1", &rb).await;
    let r2 = dir.path().join("rb2-keys");
    js.call(json!({"cmd": "init", "user": "rb2", "identity": "rust-b", "keys_dir": r2.to_str().unwrap()}));
    js.call(
        json!({"cmd": "restore", "user": "rb2", "password": "rust named", "key_name": "tablet"}),
    );
    assert_rust_reads_from(&mut js, "rb2", &rb).await;
    // After Rust changes both passwords.
    rb.change_password("rust pw", "rust pw2", None)
        .await
        .unwrap();
    rb.change_password("rust named", "rust named2", Some("tablet"))
        .await
        .unwrap();
    let r3 = dir.path().join("rb3-keys");
    js.call(json!({"cmd": "init", "user": "rb3", "identity": "rust-b", "keys_dir": r3.to_str().unwrap()}));
    js.call(
        json!({"cmd": "restore", "user": "rb3", "password": "rust named2", "key_name": "tablet"}),
    );
    assert_rust_reads_from(&mut js, "rb3", &rb).await;
    // e3kit changes the named backup's password again; Rust reads it.
    js.call(json!({"cmd": "change_password", "user": "rb3", "old": "rust named2", "new": "js named3", "key_name": "tablet"}));
    let r = device("rust-b").await;
    r.restore_private_key("js named3", Some("tablet"))
        .await
        .unwrap();
    assert_holds_key_of(&r, &rb).await;
    // e3kit's reset empties what Rust wrote.
    js.call(json!({"cmd": "reset_backup", "user": "rb3"}));
    let r = device("rust-b").await;
    assert!(matches!(
        r.restore_private_key("rust pw2", None).await,
        Err(Error::PrivateKeyNoBackup)
    ));
    drop(js);
    drop(server);
    eprintln!("backup interop: {:.1} s", started.elapsed().as_secs_f64());
}

// ------------------------------------------------------------------------------------------ groups

fn group_code(e: &Error) -> Option<sealkit::GroupErrorCode> {
    match e {
        Error::Group { code, .. } => Some(*code),
        _ => None,
    }
}

fn sorted(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

fn sorted_strs(v: &[String]) -> Vec<String> {
    let mut out = v.to_vec();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_groups_with_e3kit_node() {
    use sealkit::GroupErrorCode as Code;
    if !e3kit_node_enabled() {
        return;
    }
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let url = server.url.clone();
    let backend = backend(&creds);
    let mut js = NodePeer::start(&url, &creds, &dir.path().join("js"));
    for (name, identity) in [("ja", "js-a"), ("jb", "js-b")] {
        js.call(json!({"cmd": "init", "user": name, "identity": identity}));
        js.call(json!({"cmd": "register", "user": name}));
    }
    let ra = user(&url, &backend, "rust-a", &dir.path().join("ra")).await;
    let rb = user(&url, &backend, "rust-b", &dir.path().join("rb")).await;
    ra.register(None).await.unwrap();
    rb.register(None).await.unwrap();
    let everyone = ["js-a", "js-b", "rust-a", "rust-b"];
    js.call(json!({"cmd": "find", "user": "ja", "identities": everyone}));
    js.call(json!({"cmd": "find", "user": "jb", "identities": everyone}));
    let ra_cards = ra.find_users(&everyone).await.unwrap();
    let rb_cards = rb.find_users(&everyone).await.unwrap();
    let b64 = |b: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(b)
    };
    let unb64 = |s: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(s.as_str().unwrap())
            .unwrap()
    };
    let group_encrypt = |js: &mut NodePeer, user: &str, gid: &str, text: &str| {
        unb64(
            &js.call(json!({"cmd": "group_encrypt", "user": user, "group_id": gid, "text": text}))
                ["data"],
        )
    };
    let group_decrypt = |js: &mut NodePeer, user: &str, gid: &str, from: &str, data: &[u8]| {
        js.try_call(json!({"cmd": "group_decrypt", "user": user, "group_id": gid, "from": from, "data": b64(data)}))
            .map(|r| r["text"].as_str().unwrap().to_owned())
    };

    // --- A group created by e3kit-node, used by Rust members.
    let g1 = "group-created-by-js";
    let created = js.call(
        json!({"cmd": "create_group", "user": "ja", "group_id": g1, "with": ["rust-a", "js-b"]}),
    );
    assert_eq!(sorted(&created["participants"]), ["js-a", "js-b", "rust-a"]);
    let mut ra_g1 = ra.load_group(g1, &ra_cards["js-a"]).await.unwrap();
    assert_eq!(ra_g1.initiator(), "js-a");
    assert_eq!(
        sorted_strs(ra_g1.participants()),
        ["js-a", "js-b", "rust-a"]
    );
    let m0 = group_encrypt(&mut js, "ja", g1, "from js, epoch 0");
    assert_eq!(
        ra_g1.decrypt(&m0, &ra_cards["js-a"], None).await.unwrap(),
        b"from js, epoch 0"
    );
    let r0 = ra_g1.encrypt(b"from rust in a js group").await.unwrap();
    assert_eq!(
        group_decrypt(&mut js, "ja", g1, "rust-a", &r0).unwrap(),
        "from rust in a js group"
    );
    js.call(json!({"cmd": "load_group", "user": "jb", "group_id": g1, "initiator": "js-a"}));
    assert_eq!(
        group_decrypt(&mut js, "jb", g1, "rust-a", &r0).unwrap(),
        "from rust in a js group"
    );
    // Text variants speak e3kit's base64 strings both ways.
    let text = ra_g1.encrypt_text("text from rust").await.unwrap();
    assert_eq!(
        group_decrypt(&mut js, "ja", g1, "rust-a", &unb64(&json!(text))).unwrap(),
        "text from rust"
    );
    assert_eq!(
        ra_g1
            .decrypt_text(&b64(&m0), &ra_cards["js-a"], None)
            .await
            .unwrap(),
        "from js, epoch 0"
    );
    assert!(ra_g1
        .decrypt_text("not base64!", &ra_cards["js-a"], None)
        .await
        .is_err());
    // Wrong sender: verification fails.
    let err = ra_g1
        .decrypt(&m0, &ra_cards["js-b"], None)
        .await
        .unwrap_err();
    assert_eq!(
        group_code(&err),
        Some(Code::DataVerificationFailed),
        "{err}"
    );
    // Only the initiator edits.
    let err = ra_g1.add(&[&ra_cards["rust-b"]]).await.unwrap_err();
    assert_eq!(group_code(&err), Some(Code::PermissionDenied), "{err}");
    // Rust-b is not a participant yet.
    let err = rb.load_group(g1, &rb_cards["js-a"]).await.unwrap_err();
    assert_eq!(group_code(&err), Some(Code::NoAccess), "{err}");
    // JS adds Rust-b (who reads the epoch-0 message), then removes Rust-a.
    js.call(json!({"cmd": "group_add", "user": "ja", "group_id": g1, "members": ["rust-b"]}));
    let mut rb_g1 = rb.load_group(g1, &rb_cards["js-a"]).await.unwrap();
    assert_eq!(
        rb_g1.decrypt(&m0, &rb_cards["js-a"], None).await.unwrap(),
        b"from js, epoch 0"
    );
    js.call(json!({"cmd": "group_remove", "user": "ja", "group_id": g1, "members": ["rust-a"]}));
    let m1 = group_encrypt(&mut js, "ja", g1, "epoch 1, without rust-a");
    let err = rb_g1
        .decrypt(&m1, &rb_cards["js-a"], None)
        .await
        .unwrap_err();
    assert_eq!(group_code(&err), Some(Code::GroupIsOutdated), "{err}");
    rb_g1.update().await.unwrap();
    assert_eq!(rb_g1.epoch(), 1);
    assert_eq!(
        sorted_strs(rb_g1.participants()),
        ["js-a", "js-b", "rust-b"]
    );
    assert_eq!(
        rb_g1.decrypt(&m1, &rb_cards["js-a"], None).await.unwrap(),
        b"epoch 1, without rust-a"
    );
    let err = ra_g1.update().await.unwrap_err();
    assert_eq!(group_code(&err), Some(Code::NoAccess), "{err}");
    assert!(ra.get_group(g1).await.unwrap().is_none());
    eprintln!("js-created group: {:.1} s", started.elapsed().as_secs_f64());

    // --- A group created by Rust, used by e3kit-node members.
    let g2 = "group-created-by-rust";
    let mut ra_g2 = ra
        .create_group(
            g2,
            &[&ra_cards["js-a"], &ra_cards["rust-b"], &ra_cards["rust-a"]],
        )
        .await
        .unwrap();
    assert_eq!(
        sorted_strs(ra_g2.participants()),
        ["js-a", "rust-a", "rust-b"]
    );
    let loaded =
        js.call(json!({"cmd": "load_group", "user": "ja", "group_id": g2, "initiator": "rust-a"}));
    assert_eq!(
        sorted(&loaded["participants"]),
        ["js-a", "rust-a", "rust-b"]
    );
    let r0 = ra_g2.encrypt(b"from rust, epoch 0").await.unwrap();
    assert_eq!(
        group_decrypt(&mut js, "ja", g2, "rust-a", &r0).unwrap(),
        "from rust, epoch 0"
    );
    let j0 = group_encrypt(&mut js, "ja", g2, "from js in a rust group");
    assert_eq!(
        ra_g2.decrypt(&j0, &ra_cards["js-a"], None).await.unwrap(),
        b"from js in a rust group"
    );
    let rb_g2 = rb.load_group(g2, &rb_cards["rust-a"]).await.unwrap();
    assert_eq!(
        rb_g2.decrypt(&j0, &rb_cards["js-a"], None).await.unwrap(),
        b"from js in a rust group"
    );
    // Rust adds js-b, who reads the epoch-0 message.
    let err = ra_g2.add(&[&ra_cards["js-a"]]).await.unwrap_err();
    assert_eq!(
        group_code(&err),
        Some(Code::ParticipantAlreadyAdded),
        "{err}"
    );
    ra_g2.add(&[&ra_cards["js-b"]]).await.unwrap();
    assert_eq!(ra_g2.participants().len(), 4);
    js.call(json!({"cmd": "load_group", "user": "jb", "group_id": g2, "initiator": "rust-a"}));
    assert_eq!(
        group_decrypt(&mut js, "jb", g2, "rust-a", &r0).unwrap(),
        "from rust, epoch 0"
    );
    // Rust removes js-a: js-a loses access, js-b updates and reads epoch 1.
    ra_g2.remove(&[&ra_cards["js-a"]]).await.unwrap();
    assert_eq!(ra_g2.epoch(), 1);
    assert_eq!(
        sorted_strs(ra_g2.participants()),
        ["js-b", "rust-a", "rust-b"]
    );
    let r1 = ra_g2.encrypt(b"epoch 1, without js-a").await.unwrap();
    let (name, text) = js
        .try_call(json!({"cmd": "group_update", "user": "ja", "group_id": g2}))
        .unwrap_err();
    assert_eq!(name, "GroupError", "{text}");
    let updated = js.call(json!({"cmd": "group_update", "user": "jb", "group_id": g2}));
    assert_eq!(
        sorted(&updated["participants"]),
        ["js-b", "rust-a", "rust-b"]
    );
    assert_eq!(
        group_decrypt(&mut js, "jb", g2, "rust-a", &r1).unwrap(),
        "epoch 1, without js-a"
    );
    // js-b rotates their key; Rust re-adds them, and they load the group again.
    js.call(json!({"cmd": "rotate", "user": "jb"}));
    let jb_new = ra.find_user("js-b").await.unwrap();
    ra_g2.re_add(&jb_new).await.unwrap();
    js.call(json!({"cmd": "load_group", "user": "jb", "group_id": g2, "initiator": "rust-a"}));
    assert_eq!(
        group_decrypt(&mut js, "jb", g2, "rust-a", &r1).unwrap(),
        "epoch 1, without js-a"
    );
    // Stored locally: get_group works without the server round trip; delete removes it.
    let again = ra.get_group(g2).await.unwrap().unwrap();
    assert_eq!(again.epoch(), 1);
    assert_eq!(
        again.decrypt(&r0, &ra_cards["rust-a"], None).await.unwrap(),
        b"from rust, epoch 0"
    );
    ra.delete_group(g2).await.unwrap();
    assert!(ra.get_group(g2).await.unwrap().is_none());
    let err = rb.load_group(g2, &rb_cards["rust-a"]).await.unwrap_err();
    assert_eq!(group_code(&err), Some(Code::NoAccess), "{err}");
    drop(js);
    drop(server);
    eprintln!("groups interop: {:.1} s", started.elapsed().as_secs_f64());
}

/// Rust-only groups: a member reads a message from more than 50 epochs ago through the tickets
/// stored on the device (e3kit keeps 50 epochs in a session), errors for wrong groups and ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_groups_many_epochs() {
    use sealkit::GroupErrorCode as Code;
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let backend = backend(&creds);
    let alice = user(&server.url, &backend, "alice", &dir.path().join("a")).await;
    let bob = user(&server.url, &backend, "bob", &dir.path().join("b")).await;
    let carol = user(&server.url, &backend, "carol", &dir.path().join("c")).await;
    for u in [&alice, &bob, &carol] {
        u.register(None).await.unwrap();
    }
    let cards = alice.find_users(&["bob", "carol"]).await.unwrap();
    let alice_card = bob.find_user("alice").await.unwrap();
    let err = alice
        .create_group("short", &[&cards["bob"]])
        .await
        .unwrap_err();
    assert_eq!(group_code(&err), Some(Code::GroupIdTooShort), "{err}");
    let mut group = alice
        .create_group("many-epochs-group", &[&cards["bob"], &cards["carol"]])
        .await
        .unwrap();
    let old = group.encrypt(b"epoch 0").await.unwrap();
    // Bob loads now (epoch 0), so his device stores the epoch-0 ticket.
    let mut bobs = bob
        .load_group("many-epochs-group", &alice_card)
        .await
        .unwrap();
    for _ in 0..26 {
        group.remove(&[&cards["carol"]]).await.unwrap();
        group.add(&[&cards["carol"]]).await.unwrap();
    }
    assert_eq!(group.epoch(), 26);
    for _ in 0..26 {
        group.remove(&[&cards["carol"]]).await.unwrap();
        group.add(&[&cards["carol"]]).await.unwrap();
    }
    assert_eq!(group.epoch(), 52);
    eprintln!("52 epochs: {:.1} s", started.elapsed().as_secs_f64());
    let new = group.encrypt(b"epoch 52").await.unwrap();
    bobs.update().await.unwrap();
    assert_eq!(bobs.epoch(), 52);
    assert_eq!(
        bobs.decrypt(&new, &alice_card, None).await.unwrap(),
        b"epoch 52"
    );
    assert_eq!(
        bobs.decrypt(&old, &alice_card, None).await.unwrap(),
        b"epoch 0"
    );
    // The same from storage only.
    let stored = bob.get_group("many-epochs-group").await.unwrap().unwrap();
    assert_eq!(
        stored.decrypt(&old, &alice_card, None).await.unwrap(),
        b"epoch 0"
    );
    // Carol was re-added each time: she reads both too.
    let carols = carol
        .load_group("many-epochs-group", &alice_card)
        .await
        .unwrap();
    assert_eq!(
        carols.decrypt(&old, &alice_card, None).await.unwrap(),
        b"epoch 0"
    );
    // A message of another group.
    let other = alice
        .create_group("another-group-id", &[&cards["bob"]])
        .await
        .unwrap();
    let foreign = other.encrypt(b"x").await.unwrap();
    let err = bobs.decrypt(&foreign, &alice_card, None).await.unwrap_err();
    assert_eq!(
        group_code(&err),
        Some(Code::MessageNotFromThisGroup),
        "{err}"
    );
    // cleanup() forgets local groups.
    bob.cleanup().await.unwrap();
    assert!(bob.get_group("many-epochs-group").await.unwrap().is_none());
    drop(server);
    eprintln!("many epochs: {:.1} s", started.elapsed().as_secs_f64());
}
