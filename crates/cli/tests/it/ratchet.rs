//! Double-ratchet channels (e3kit's ratchet channels) through the SDK and the `sealkit ratchet`
//! command against `sealkit serve` as a process, on SQLite and PostgreSQL: keys published at
//! `/pfs/v3/keys` on register, create / join through the Keyknox invitation, both directions,
//! out-of-order messages, one-time keys consumed once, rotation, delete, and the typed errors;
//! and an SDK channel continued by Virgil's C library (libvsc_ratchet) in both directions.

use crate::cli_sdk;
use crate::common::*;

use sealkit::{Card, EThree, EThreeOptions, Error, RatchetChannel};
use sealkit_proto::JwtGenerator;
use sealkit_ratchet::{KeyId, Message};
use std::path::Path;

async fn user(
    url: &str,
    backend: &JwtGenerator,
    identity: &str,
    dir: &Path,
    ratchet: bool,
) -> EThree {
    let options = EThreeOptions::new(url, dir.join(identity)).enable_ratchet(ratchet);
    user_with(options, backend, identity).await
}

async fn user_with(options: EThreeOptions, backend: &JwtGenerator, identity: &str) -> EThree {
    let backend = backend.clone();
    let id = identity.to_owned();
    let provider = move || std::future::ready(backend.generate(&id, now()).map(|j| j.to_string()));
    EThree::initialize(provider, options).await.unwrap()
}

/// The one-time key id named by a channel's first (prekey) message.
fn one_time_key_of(message: &[u8]) -> Option<KeyId> {
    let message = Message::decode(message).unwrap();
    message
        .prekey()
        .expect("a prekey message")
        .receiver_one_time_key_id
}

async fn text(channel: &RatchetChannel, message: &[u8]) -> String {
    String::from_utf8(channel.decrypt(message).await.unwrap()).unwrap()
}

async fn scenario(url: &str, creds: &Path, dir: &Path) {
    let backend = backend(creds);
    let alice = user(url, &backend, "alice", dir, true).await;
    let bob = user(url, &backend, "bob", dir, true).await;
    let carol = user(url, &backend, "carol", dir, true).await;
    let dave = user(url, &backend, "dave", dir, false).await;
    for u in [&alice, &bob, &carol, &dave] {
        u.register(None).await.unwrap();
    }
    // register published the keys: a rotation right after has nothing to do.
    let rotation = bob.rotate_ratchet_keys().await.unwrap();
    assert!(!rotation.long_term_key_rotated, "{rotation:?}");
    assert_eq!(rotation.one_time_keys_added, 0);
    assert_eq!(rotation.one_time_keys_used, 0);

    // Ratchet needs Ed25519 card keys: a P-256 user is refused before a card is published.
    let p256 = EThreeOptions::new(url, dir.join("erin"))
        .enable_ratchet(true)
        .key_type(sealkit::KeyType::Secp256r1);
    let erin = user_with(p256, &backend, "erin").await;
    assert!(matches!(
        erin.register(None).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        alice.find_user("erin").await,
        Err(Error::UsersNotFound { .. })
    ));

    let users = alice.find_users(&["bob", "carol", "dave"]).await.unwrap();
    let (bob_card, carol_card, dave_card) = (&users["bob"], &users["carol"], &users["dave"]);
    let alice_card: Card = bob.find_user("alice").await.unwrap();
    let carol_for_bob = bob.find_user("carol").await.unwrap();

    // Typed refusals before anything exists.
    assert!(matches!(
        dave.create_ratchet_channel(bob_card, None).await,
        Err(Error::RatchetDisabled)
    ));
    assert!(matches!(
        alice.create_ratchet_channel(dave_card, None).await,
        Err(Error::UserNotUsingRatchet { identity }) if identity == "dave"
    ));
    let own = alice.find_user("alice").await.unwrap();
    assert!(matches!(
        alice.create_ratchet_channel(&own, None).await,
        Err(Error::SelfRatchetChannel)
    ));
    assert!(matches!(
        bob.join_ratchet_channel(&alice_card, None).await,
        Err(Error::NoRatchetInvite { .. })
    ));
    assert!(alice
        .get_ratchet_channel("bob", None)
        .await
        .unwrap()
        .is_none());

    // Alice creates, writes three messages before Bob joins.
    let to_bob = alice.create_ratchet_channel(bob_card, None).await.unwrap();
    assert_eq!((to_bob.participant(), to_bob.name()), ("bob", "default"));
    assert!(matches!(
        alice.create_ratchet_channel(bob_card, None).await,
        Err(Error::RatchetChannelExists { .. })
    ));
    let m1 = to_bob.encrypt(b"one").await.unwrap();
    let m2 = to_bob.encrypt_text("two").await.unwrap();
    let m3 = to_bob.encrypt(b"three").await.unwrap();
    let alice_used = one_time_key_of(&m1).expect("bob had one-time keys");

    let from_alice = bob.join_ratchet_channel(&alice_card, None).await.unwrap();
    assert!(matches!(
        bob.join_ratchet_channel(&alice_card, None).await,
        Err(Error::RatchetChannelExists { .. })
    ));
    // Out of order, each once.
    assert_eq!(text(&from_alice, &m3).await, "three");
    assert_eq!(text(&from_alice, &m1).await, "one");
    assert_eq!(from_alice.decrypt_text(&m2).await.unwrap(), "two");
    assert!(matches!(
        from_alice.decrypt(&m1).await,
        Err(Error::Ratchet(_))
    ));
    assert!(matches!(
        from_alice.decrypt(b"not a message").await,
        Err(Error::Ratchet(_))
    ));

    // Both directions, several turns.
    for round in 0..3 {
        let reply = from_alice
            .encrypt(format!("bob {round}").as_bytes())
            .await
            .unwrap();
        assert_eq!(text(&to_bob, &reply).await, format!("bob {round}"));
        let next = to_bob
            .encrypt(format!("alice {round}").as_bytes())
            .await
            .unwrap();
        assert_eq!(text(&from_alice, &next).await, format!("alice {round}"));
    }
    // A message of one channel does not open in another.
    let to_carol = alice
        .create_ratchet_channel(carol_card, Some("work"))
        .await
        .unwrap();
    let for_carol = to_carol.encrypt(b"for carol").await.unwrap();
    assert!(matches!(
        from_alice.decrypt(&for_carol).await,
        Err(Error::Ratchet(_))
    ));

    // Carol starts a channel with Bob: another of Bob's one-time keys.
    let carol_to_bob = carol
        .create_ratchet_channel(&users["bob"], None)
        .await
        .unwrap();
    let c1 = carol_to_bob.encrypt(b"hi bob").await.unwrap();
    let carol_used = one_time_key_of(&c1).expect("bob had one-time keys");
    assert_ne!(alice_used, carol_used);
    let bob_from_carol = bob
        .join_ratchet_channel(&carol_for_bob, None)
        .await
        .unwrap();
    assert_eq!(text(&bob_from_carol, &c1).await, "hi bob");

    // Bob's two joins deleted the two one-time keys used; a rotation replaces them.
    let rotation = bob.rotate_ratchet_keys().await.unwrap();
    assert_eq!(rotation.one_time_keys_added, 2, "{rotation:?}");
    assert_eq!(rotation.one_time_keys_used, 0);
    assert!(!rotation.long_term_key_rotated);

    // The one-time key served one channel: joining Carol's invitation again cannot work.
    bob.delete_ratchet_channel("carol", None).await.unwrap();
    assert!(bob
        .get_ratchet_channel("carol", None)
        .await
        .unwrap()
        .is_none());
    assert!(matches!(
        bob.join_ratchet_channel(&carol_for_bob, None).await,
        Err(Error::RatchetKeyMissing {
            which: "one-time",
            ..
        })
    ));
    // A handle of a deleted channel says so.
    assert!(matches!(
        bob_from_carol.encrypt(b"x").await,
        Err(Error::RatchetChannelNotFound { .. })
    ));

    // The sessions live on disk: a new instance continues them.
    let bob_again = user(url, &backend, "bob", dir, true).await;
    let stored = bob_again
        .get_ratchet_channel("alice", None)
        .await
        .unwrap()
        .unwrap();
    let later = to_bob.encrypt(b"after restart").await.unwrap();
    assert_eq!(text(&stored, &later).await, "after restart");

    // Delete on both sides, then start over.
    alice.delete_ratchet_channel("bob", None).await.unwrap();
    assert!(alice
        .get_ratchet_channel("bob", None)
        .await
        .unwrap()
        .is_none());
    bob.delete_ratchet_channel("alice", None).await.unwrap();
    assert!(matches!(
        bob.join_ratchet_channel(&alice_card, None).await,
        Err(Error::NoRatchetInvite { .. })
    ));
    let again = alice.create_ratchet_channel(bob_card, None).await.unwrap();
    let first = again.encrypt(b"new start").await.unwrap();
    assert_ne!(one_time_key_of(&first), Some(alice_used));
    let joined = bob.join_ratchet_channel(&alice_card, None).await.unwrap();
    assert_eq!(text(&joined, &first).await, "new start");
    // Deleting what does not exist is no error.
    alice
        .delete_ratchet_channel("nobody", Some("none"))
        .await
        .unwrap();

    // Bob loses his key and rotates it: his channels go with the old key, and ratchet keys for
    // the new card replace the old ones at the key service.
    bob.cleanup().await.unwrap();
    assert!(bob
        .get_ratchet_channel("alice", None)
        .await
        .unwrap()
        .is_none());
    let new_card = bob.rotate_private_key().await.unwrap();
    // A peer with Bob's old card gets keys signed for the new one, and refuses them.
    assert!(matches!(
        alice.create_ratchet_channel(bob_card, Some("stale")).await,
        Err(Error::InvalidRatchetKeys { .. })
    ));
    let bob_now = alice.find_user("bob").await.unwrap();
    assert_eq!(bob_now.id(), new_card.id());
    let fresh = alice
        .create_ratchet_channel(&bob_now, Some("after rotation"))
        .await
        .unwrap();
    let m = fresh.encrypt(b"to the new key").await.unwrap();
    let joined = bob
        .join_ratchet_channel(&alice_card, Some("after rotation"))
        .await
        .unwrap();
    assert_eq!(text(&joined, &m).await, "to the new key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_channels_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    scenario(&server.url, &creds, dir.path()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_channels_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, serve) = pg_deployment("ratchet", dir.path());
    let server = Server::start(&as_strs(&serve));
    scenario(&server.url, &creds, dir.path()).await;
}

/// `sealkit ratchet` end to end: keys, create, join, base64 lines both ways, each message once,
/// delete, one-line errors.
#[test]
fn cli_round_trip() {
    let server = cli_sdk::Server::start();
    let alice = server.user("alice");
    let bob = server.user("bob");
    alice.ok(&["user", "register"], b"");
    bob.ok(&["user", "register"], b"");
    // Bob has not published ratchet keys yet (plain `user register`).
    let err = alice.fails(&["ratchet", "create", "--with", "bob"], b"");
    assert!(err.contains("published no ratchet keys"), "{err}");
    bob.ok(&["ratchet", "rotate"], b"");

    alice.ok(&["ratchet", "create", "--with", "bob"], b"");
    let err = alice.fails(&["ratchet", "create", "--with", "bob"], b"");
    assert!(err.contains("exists already"), "{err}");
    let sent = alice.ok_text(&["ratchet", "encrypt", "--with", "bob"], "hello\nworld\n");
    assert_eq!(sent.lines().count(), 2, "{sent}");

    let err = bob.fails(&["ratchet", "decrypt", "--with", "alice"], sent.as_bytes());
    assert!(err.contains("no ratchet channel"), "{err}");
    bob.ok(&["ratchet", "join", "--with", "alice"], b"");
    let read = bob.ok_text(&["ratchet", "decrypt", "--with", "alice"], &sent);
    assert_eq!(read, "hello\nworld\n");
    // Each message decrypts once.
    let err = bob.fails(&["ratchet", "decrypt", "--with", "alice"], sent.as_bytes());
    assert!(err.contains("line 1"), "{err}");

    let reply = bob.ok_text(&["ratchet", "encrypt", "--with", "alice"], "hi alice\n");
    assert_eq!(
        alice.ok_text(&["ratchet", "decrypt", "--with", "bob"], &reply),
        "hi alice\n"
    );

    // Named channels are separate.
    alice.ok(
        &["ratchet", "create", "--with", "bob", "--name", "work"],
        b"",
    );
    bob.ok(
        &["ratchet", "join", "--with", "alice", "--name", "work"],
        b"",
    );
    let work = alice.ok_text(
        &["ratchet", "encrypt", "--with", "bob", "--name", "work"],
        "w\n",
    );
    let err = bob.fails(&["ratchet", "decrypt", "--with", "alice"], work.as_bytes());
    assert!(err.contains("line 1"), "{err}");
    assert_eq!(
        bob.ok_text(
            &["ratchet", "decrypt", "--with", "alice", "--name", "work"],
            &work
        ),
        "w\n"
    );

    alice.ok(&["ratchet", "delete", "--with", "bob"], b"");
    let err = alice.fails(&["ratchet", "encrypt", "--with", "bob"], b"x\n");
    assert!(err.contains("no ratchet channel"), "{err}");
}

/// Virgil's C library (`interop/python/ratchet.py stdio`, libvsc_ratchet of virgil-crypto-lib
/// 0.23.1) as Bob: Bob's ratchet keys are published by hand, the SDK's Alice starts a channel,
/// and the C library answers from Bob's private keys. Sessions of the SDK continue with the C
/// library in both directions. `None` when `SEALKIT_SKIP_INTEROP` is set.
struct CRatchet {
    child: std::process::Child,
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
}

impl CRatchet {
    fn start() -> Option<Self> {
        use std::process::{Command, Stdio};
        if std::env::var_os("SEALKIT_SKIP_INTEROP").is_some() {
            eprintln!("SEALKIT_SKIP_INTEROP is set: skipping the C ratchet oracle");
            return None;
        }
        let repo = repo_root();
        let venv = std::env::var_os("SEALKIT_PY_VENV")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| repo.join("interop/python/.venv"));
        let python = venv.join("bin/python");
        assert!(
            python.is_file(),
            "{} is missing: run interop/python/setup.sh (or set SEALKIT_SKIP_INTEROP=1)",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(repo.join("interop/python/ratchet.py"))
            .arg("stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = std::io::BufReader::new(child.stdout.take().unwrap());
        Some(Self {
            child,
            stdin,
            stdout,
        })
    }

    fn call(&mut self, request: serde_json::Value) -> serde_json::Value {
        use std::io::{BufRead, Write};
        writeln!(self.stdin, "{request}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let answer: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert!(answer.get("error").is_none(), "{request} -> {answer}");
        answer
    }

    fn bytes(answer: &serde_json::Value, key: &str) -> Vec<u8> {
        hex::decode(answer[key].as_str().unwrap()).unwrap()
    }
}

impl Drop for CRatchet {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_channel_with_the_c_library() {
    use sealkit::PrivateKey;
    use sealkit_ratchet::x25519_dalek::{PublicKey as X25519Public, StaticSecret};
    use serde_json::json;

    let Some(mut c) = CRatchet::start() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let backend = backend(&creds);
    let alice = user(&server.url, &backend, "alice", dir.path(), true).await;
    alice.register(None).await.unwrap();
    // Bob's card key is known to the test; his SDK does not publish ratchet keys.
    let bob_seed = [0x42u8; 32];
    let bob = user(&server.url, &backend, "bob", dir.path(), false).await;
    let bob_card = bob
        .register(Some(PrivateKey::ed25519_from_seed(&bob_seed)))
        .await
        .unwrap();
    let bob_key = PrivateKey::ed25519_from_seed(&bob_seed);

    // Bob's long-term and one-time keys, published as the mobile clients publish them.
    let (long_term, one_time) = ([0x21u8; 32], [0x22u8; 32]);
    let spki = |secret: [u8; 32]| {
        let mut der = vec![
            0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00,
        ];
        der.extend_from_slice(X25519Public::from(&StaticSecret::from(secret)).as_bytes());
        der
    };
    let b64 = |bytes: &[u8]| {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.encode(bytes)
    };
    let signature =
        sealkit_crypto::sign(&spki(long_term), &bob_key, &mut rand_core::OsRng).unwrap();
    let token = backend.generate("bob", now()).unwrap().to_string();
    let upload = json!({
        "identity_card_id": bob_card.id().to_string(),
        "long_term_key": {"public_key": b64(&spki(long_term)), "signature": b64(&signature)},
        "one_time_keys": [b64(&spki(one_time))],
    });
    let answer = ureq::put(&format!("{}/pfs/v3/keys", server.url))
        .set("Authorization", &format!("Virgil {token}"))
        .send_json(upload)
        .unwrap();
    assert_eq!(answer.status(), 204);

    // The SDK's Alice starts the channel; the C library answers as Bob.
    let bob_found = alice.find_user("bob").await.unwrap();
    let channel = alice
        .create_ratchet_channel(&bob_found, None)
        .await
        .unwrap();
    let first = channel.encrypt(b"from the sdk").await.unwrap();
    let second = channel.encrypt(b"and again").await.unwrap();
    let alice_public = match alice.find_user("alice").await.unwrap().public_key() {
        sealkit::PublicKey::Ed25519(k) => k.to_bytes(),
        other => panic!("alice's key is {other:?}"),
    };
    let session = c.call(json!({
        "op": "respond",
        "sender_identity_public": hex::encode(alice_public),
        "receiver_identity_private": hex::encode(bob_seed),
        "receiver_long_term_private": hex::encode(long_term),
        "receiver_one_time_private": hex::encode(one_time),
        "message": hex::encode(&first),
    }))["session"]
        .clone();
    for (message, text) in [(&second, "and again"), (&first, "from the sdk")] {
        let answer =
            c.call(json!({"op": "decrypt", "session": session, "message": hex::encode(message)}));
        assert_eq!(CRatchet::bytes(&answer, "plaintext"), text.as_bytes());
    }
    for round in 0..3 {
        let reply = format!("from C {round}");
        let answer =
            c.call(json!({"op": "encrypt", "session": session, "plaintext": hex::encode(&reply)}));
        let message = CRatchet::bytes(&answer, "message");
        assert_eq!(channel.decrypt(&message).await.unwrap(), reply.as_bytes());
        let next = format!("from the sdk {round}");
        let message = channel.encrypt(next.as_bytes()).await.unwrap();
        let answer =
            c.call(json!({"op": "decrypt", "session": session, "message": hex::encode(message)}));
        assert_eq!(CRatchet::bytes(&answer, "plaintext"), next.as_bytes());
    }
}
