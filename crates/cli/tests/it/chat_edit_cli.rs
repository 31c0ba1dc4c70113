//! Editing and deleting messages in `sealkit chat` (`/edit SEQ TEXT`, `/delete SEQ`) and push
//! hooks set with `sealkit app hook ...`, against a real `sealkit serve`: receivers see
//! `#SEQ (edited)` and the deletion, the hook receiver gets signed metadata-only events, and no
//! server file holds any version of the text.

use crate::chat_cli::{sealkit, serve, Proc, WAIT};
use crate::common::free_port;
use sealkit_proto::hooks::{verify, HookKind};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// One request the receiver got: its signature header and body.
type Delivery = (String, Vec<u8>);

/// A minimal HTTP/1.1 webhook receiver on a free port: records each POST, answers 204.
fn receiver() -> (String, Arc<Mutex<Vec<Delivery>>>) {
    receiver_on(free_port())
}

/// [`receiver`] on `port`.
fn receiver_on(port: u16) -> (String, Arc<Mutex<Vec<Delivery>>>) {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let (mut signature, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
                if lower.starts_with("sealkit-signature:") {
                    signature = line["sealkit-signature:".len()..].trim().to_owned();
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok() {
                sink.lock().unwrap().push((signature, body));
            }
            let _ = stream.write_all(
                b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (format!("http://127.0.0.1:{port}/hook"), got)
}

/// `sealkit app ARGS --data-dir DATA`: stdout, stderr and success.
fn app(dir: &Path, data: &Path, args: &[&str]) -> (String, String, bool) {
    let out = sealkit(dir)
        .arg("app")
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        out.status.success(),
    )
}

#[test]
fn edit_delete_and_push_hooks_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("sealkit-data");
    let (_server, url) = serve(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let creds: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data.join("demo-app.json")).unwrap()).unwrap();
    let app_id = creds["app_id"].as_str().unwrap().to_owned();

    // The hook, set on the database the running server uses.
    let (hook_url, deliveries) = receiver();
    let (out, err, ok) = app(
        dir.path(),
        &data,
        &["hook", "set", &app_id, "--url", &hook_url],
    );
    assert!(ok, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap_or_else(|| panic!("no secret in {out}"))
        .trim()
        .to_owned();
    assert!(secret.starts_with("whsec_"), "{out}");
    let (out, err, ok) = app(dir.path(), &data, &["hook", "show", &app_id]);
    assert!(
        ok && out.contains(&hook_url) && !out.contains(&secret),
        "{out}{err}"
    );
    let (_, err, ok) = app(
        dir.path(),
        &data,
        &["hook", "set", &app_id, "--url", "ftp://x"],
    );
    assert!(!ok && err.contains("http"), "{err}");

    let chat = |identity: &str| {
        let mut cmd = sealkit(dir.path());
        cmd.args([
            "--server",
            &url,
            "chat",
            "--identity",
            identity,
            "--channel",
            "general",
        ]);
        Proc::spawn(identity, cmd)
    };
    let mut alice = chat("alice");
    alice.expect("alice is in: general");
    let mut bob = chat("bob");
    bob.expect("bob is in: general");

    alice.send("the password is marjoram");
    alice.expect("[general] alice ✔ the password is marjoram (#1)");
    bob.expect("[general] alice ✔ the password is marjoram");
    alice.send("/edit 1 the password is  tarragon");
    alice.expect("[general] alice ✔ the password is  tarragon (#1 (edited))");
    bob.expect("[general] alice ✔ the password is  tarragon (#1 (edited))");

    // bob may neither edit nor delete alice's message (alice created general: its admin).
    bob.send("/edit 1 hacked");
    bob.send("/delete 1");
    bob.send("/edit one x");
    bob.send("bob's herb is basil");
    bob.expect("[general] bob ✔ bob's herb is basil (#2)");
    alice.expect("[general] bob ✔ bob's herb is basil");
    let errors = bob.stderr();
    assert!(
        errors.contains("is not yours: only the sender may edit"),
        "{errors}"
    );
    assert!(errors.contains("only the sender or an admin"), "{errors}");
    assert!(errors.contains("usage: /edit SEQ TEXT"), "{errors}");

    // The admin deletes bob's message: bob sees the tombstone.
    alice.send("/delete 2");
    alice.expect("* [general] deleted #2");
    bob.expect("[general] bob ✖ deleted by alice (#2 (deleted))");
    bob.send("/history");
    bob.expect("* history of general (2 messages)");
    bob.expect("[general] alice ✔ the password is  tarragon (#1 (edited))");
    bob.expect("[general] bob ✖ deleted by alice (#2 (deleted))");
    alice.send("/help");
    alice.expect("/edit SEQ TEXT");
    alice.expect("/delete SEQ");

    let (status, _) = alice.finish();
    assert!(status.success());
    let (status, bob_out) = bob.finish();
    assert!(status.success());
    assert!(!bob_out.contains("hacked"), "{bob_out}");

    // Hook events: bob joining, two posts, the edit and the delete; signed, metadata only.
    let deadline = Instant::now() + WAIT;
    while deliveries.lock().unwrap().len() < 5 {
        assert!(
            Instant::now() < deadline,
            "hook events: {:?}",
            deliveries.lock().unwrap().len()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let mut kinds = Vec::new();
    for (signature, body) in deliveries.lock().unwrap().iter() {
        let text = String::from_utf8_lossy(body);
        for word in ["marjoram", "tarragon", "basil", "ciphertext", "password"] {
            assert!(!text.contains(word), "{word} in hook payload {text}");
        }
        let event = verify(&secret, signature, body, crate::common::now(), 300)
            .unwrap_or_else(|e| panic!("{e}: {signature} {text}"));
        assert_eq!(
            (event.app.as_str(), event.channel.as_str()),
            (app_id.as_str(), "general")
        );
        kinds.push(event.kind);
    }
    for kind in [
        HookKind::MemberAdded,
        HookKind::Message,
        HookKind::Edit,
        HookKind::Delete,
    ] {
        assert!(kinds.contains(&kind), "{kinds:?}");
    }

    // No server file holds any version of the texts: edited or deleted, only ciphertext ever
    // reached it, and the deleted message's ciphertext is gone.
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for word in [&b"marjoram"[..], b"tarragon", b"basil"] {
            assert!(
                !bytes.windows(word.len()).any(|w| w == word),
                "plaintext {} in {}",
                String::from_utf8_lossy(word),
                path.display()
            );
        }
    }

    let (_, err, ok) = app(dir.path(), &data, &["hook", "remove", &app_id]);
    assert!(ok, "{err}");
    let (_, err, ok) = app(dir.path(), &data, &["hook", "show", &app_id]);
    assert!(!ok && err.contains("has no push hook"), "{err}");
}

/// A registered SDK user of the deployment whose credentials are `creds`.
async fn sdk_member(
    url: &str,
    creds: &Path,
    identity: &str,
    dir: &Path,
) -> (sealkit::EThree, sealkit::Chat) {
    let backend = crate::common::backend(creds);
    let who = identity.to_owned();
    let provider = move || {
        let token = backend.generate(&who, crate::common::now());
        std::future::ready(token.map(|j| j.to_string()))
    };
    let options = sealkit::EThreeOptions::new(url, dir.join(identity));
    let ethree = sealkit::EThree::initialize(provider, options)
        .await
        .unwrap();
    ethree.register(None).await.unwrap();
    let chat = ethree.chat();
    (ethree, chat)
}

async fn next_event(stream: &mut sealkit::chat::ChatStream) -> sealkit::chat::ChatEvent {
    match tokio::time::timeout(std::time::Duration::from_secs(20), stream.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("no chat event: {other:?}"),
    }
}

/// The SDK: `Chat::edit` and `Chat::delete`, their typed refusals, `ChatEvent::Edited` and
/// `ChatEvent::Deleted`, history in the latest state, and an "edit" that the sender did not
/// sign (what a lying server could serve) withheld as a bad signature.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sdk_edits_and_deletes_are_verified() {
    use sealkit::chat::{ChannelKind, ChatEvent, HistoryCursor, Message, Verification};
    use sealkit::Error;

    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = crate::common::sqlite_deployment(dir.path());
    let clients = dir.path().join("clients");
    let (_a, alice) = sdk_member(&server.url, &creds, "alice", &clients).await;
    let (_b, bob) = sdk_member(&server.url, &creds, "bob", &clients).await;
    let (_c, carol) = sdk_member(&server.url, &creds, "carol", &clients).await;
    alice
        .create_channel("team", ChannelKind::Group, &["bob", "carol"], false)
        .await
        .unwrap();
    let mut stream = bob.subscribe().await.unwrap();
    stream.subscribe("team", 0).await.unwrap();

    let first = alice.send_text("team", "lunch at noon").await.unwrap();
    assert!(
        matches!(next_event(&mut stream).await, ChatEvent::Message(m) if m.text() == Some("lunch at noon"))
    );
    assert!(matches!(
        bob.edit_text("team", first.seq, "mine now").await,
        Err(Error::NotTheSender { seq: 1, .. })
    ));
    let edited = alice
        .edit_text("team", first.seq, "lunch at one")
        .await
        .unwrap();
    assert_eq!((edited.seq, edited.sent_at), (first.seq, first.sent_at));
    assert!(edited.edited_at.is_some());
    match next_event(&mut stream).await {
        ChatEvent::Edited(m) => {
            assert_eq!(m.text(), Some("lunch at one"));
            assert_eq!(m.status, Verification::Verified);
            assert!(m.edited_at().is_some());
        }
        other => panic!("expected an edit, got {other:?}"),
    }

    let by_bob = bob.send_text("team", "bob was here").await.unwrap();
    assert!(matches!(next_event(&mut stream).await, ChatEvent::Message(m) if m.message.seq == 2));
    // A server passing bob's ciphertext off as an edit of alice's message: not alice's
    // signature, so no text.
    let forged = Message {
        seq: first.seq,
        sender: "alice".into(),
        client_id: first.client_id.clone(),
        edited_at: Some(by_bob.sent_at),
        ..by_bob.clone()
    };
    let opened = bob.open(forged).await.unwrap();
    assert_eq!(
        (opened.status, opened.body),
        (Verification::BadSignature, None)
    );

    assert!(matches!(
        carol.delete("team", by_bob.seq).await,
        Err(Error::NotTheSender { seq: 2, .. })
    ));
    let tombstone = alice.delete("team", by_bob.seq).await.unwrap();
    assert_eq!(
        tombstone.deleted.as_ref().map(|d| d.by.as_str()),
        Some("alice")
    );
    match next_event(&mut stream).await {
        ChatEvent::Deleted(m) => {
            assert_eq!((m.status, m.body.as_ref()), (Verification::Deleted, None));
            assert_eq!(m.deletion().map(|(_, by)| by), Some("alice"));
        }
        other => panic!("expected a deletion, got {other:?}"),
    }
    assert!(matches!(
        bob.edit_text("team", by_bob.seq, "back").await,
        Err(Error::MessageDeleted { seq: 2, .. })
    ));
    assert!(matches!(
        alice.delete("team", 9).await,
        Err(Error::MessageNotFound { seq: 9, .. })
    ));

    let page = carol
        .history("team", HistoryCursor::After(0), 10)
        .await
        .unwrap();
    let states: Vec<(i64, Option<&str>, Verification, bool)> = page
        .messages
        .iter()
        .map(|m| (m.message.seq, m.text(), m.status, m.edited_at().is_some()))
        .collect();
    assert_eq!(
        states,
        [
            (1, Some("lunch at one"), Verification::Verified, true),
            (2, None, Verification::Deleted, false)
        ]
    );
}

/// Events queued while the receiver is down survive a `kill -9` of the server: the next server
/// on the database delivers them, signed, once the receiver is up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hook_events_survive_a_killed_server() {
    use crate::common::{create_app, Server};

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = dir.path().join("serve.toml");
    std::fs::write(
        &config,
        "hook_poll_ms = 100\nhook_retry_base_ms = 200\nhook_retry_max_ms = 1000\nhook_timeout_secs = 1\n",
    )
    .unwrap();
    let data_arg = data.to_str().unwrap();
    let storage = ["--data-dir", data_arg, "--config", config.to_str().unwrap()];
    let creds = create_app(&["--data-dir", data_arg], dir.path());
    let app_id = serde_json::from_slice::<serde_json::Value>(&std::fs::read(&creds).unwrap())
        .unwrap()["app_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // Nothing listens there yet: every delivery fails.
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let (out, err, ok) = app(dir.path(), &data, &["hook", "set", &app_id, "--url", &url]);
    assert!(ok, "{err}");
    let secret = out
        .lines()
        .find_map(|l| l.strip_prefix("secret: "))
        .unwrap()
        .trim()
        .to_owned();

    let mut server = Server::start(&storage);
    let clients = dir.path().join("clients");
    let (_a, alice) = sdk_member(&server.url, &creds, "alice", &clients).await;
    alice
        .create_channel("team", sealkit::chat::ChannelKind::Group, &[], false)
        .await
        .unwrap();
    for text in ["one", "two", "three"] {
        alice.send_text("team", text).await.unwrap();
    }
    // Wait until the server has tried and failed, then kill it.
    let deadline = Instant::now() + WAIT;
    loop {
        let (out, err, ok) = app(dir.path(), &data, &["hook", "show", &app_id, "--json"]);
        assert!(ok, "{err}");
        let shown: serde_json::Value = serde_json::from_str(&out).unwrap();
        if shown["queued"] == 3 && shown["last_error"].is_string() {
            break;
        }
        assert!(Instant::now() < deadline, "no failed delivery: {shown}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    server.kill9();

    let (_, deliveries) = receiver_on(port);
    let _server = Server::start(&storage);
    let deadline = Instant::now() + WAIT;
    let mut seqs = Vec::new();
    while seqs.len() < 3 {
        assert!(
            Instant::now() < deadline,
            "delivered after the restart: {seqs:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        seqs = deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|(signature, body)| {
                let event = verify(&secret, signature, body, crate::common::now(), 300).unwrap();
                assert_eq!(event.kind, HookKind::Message);
                event.seq.unwrap()
            })
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
    }
    assert_eq!(seqs, [1, 2, 3]);
}
