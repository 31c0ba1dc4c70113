//! The SDK's end-to-end encrypted chat (`sealkit::chat`) against `sealkit serve` as a process:
//! 1:1 and group channels on SQLite and on PostgreSQL (every message over the WebSocket exactly
//! once, in order, verified, and the same in history), non-members and removed members, key
//! rotation, no plaintext in the database, realtime across two replicas, resume after a replica
//! is killed, forced and abandoned reconnections, forged and malformed posts, open channels, and
//! an e3kit-node user reading a Sealkit chat message.
//!
//! PostgreSQL comes from `SEALKIT_TEST_PG` (default `postgres://postgres@127.0.0.1:5432/test`);
//! `SEALKIT_SKIP_INTEROP=1` skips the e3kit-node test.

use crate::common::node_peer::NodePeer;
use crate::common::*;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use sealkit::chat::{
    ChannelKind, ChatEvent, ChatStream, HistoryCursor, ReceivedMessage, Verification,
};
use sealkit::{Chat, EThree, EThreeOptions, Error};
use sealkit_proto::JwtGenerator;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

/// The longest wait for one event; a broken stream fails the test instead of hanging it.
const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

// ------------------------------------------------------------------------------------------ helpers

/// A user initialized against `url` (not registered).
async fn client(url: &str, backend: &JwtGenerator, identity: &str, dir: &Path) -> EThree {
    let backend = backend.clone();
    let who = identity.to_owned();
    let provider = move || std::future::ready(backend.generate(&who, now()).map(|j| j.to_string()));
    EThree::initialize(provider, EThreeOptions::new(url, dir.join(identity)))
        .await
        .unwrap()
}

/// A registered user and its chat client.
async fn member(url: &str, backend: &JwtGenerator, identity: &str, dir: &Path) -> (EThree, Chat) {
    let ethree = client(url, backend, identity, dir).await;
    ethree.register(None).await.unwrap();
    let chat = ethree.chat();
    (ethree, chat)
}

async fn next_event(stream: &mut ChatStream) -> ChatEvent {
    match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        Ok(other) => panic!("stream: {other:?}"),
        Err(_) => panic!("no chat event within {EVENT_TIMEOUT:?} ({stream:?})"),
    }
}

/// Reads until `n` messages arrived; returns them and the other events seen meanwhile.
async fn messages(stream: &mut ChatStream, n: usize) -> (Vec<ReceivedMessage>, Vec<ChatEvent>) {
    let mut got = Vec::new();
    let mut other = Vec::new();
    while got.len() < n {
        match next_event(stream).await {
            ChatEvent::Message(m) => got.push(m),
            e => other.push(e),
        }
    }
    (got, other)
}

/// Asserts that no message arrives within `quiet`; returns the other events seen.
async fn no_message(stream: &mut ChatStream, quiet: Duration) -> Vec<ChatEvent> {
    let deadline = tokio::time::Instant::now() + quiet;
    let mut other = Vec::new();
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return other,
            Ok(Some(Ok(ChatEvent::Message(m)))) => panic!("unexpected message {m:?}"),
            Ok(Some(Ok(e))) => other.push(e),
            Ok(other) => panic!("stream: {other:?}"),
        }
    }
}

/// Messages as (seq, sender, text), asserting each verified.
fn verified(messages: &[ReceivedMessage]) -> Vec<(i64, String, String)> {
    messages
        .iter()
        .map(|m| {
            assert_eq!(m.status, Verification::Verified, "{m:?}");
            let text = m.text().expect("verified text").to_owned();
            (m.message.seq, m.message.sender.clone(), text)
        })
        .collect()
}

/// The whole history of a channel, page by page from the start.
async fn full_history(chat: &Chat, channel: &str) -> Vec<ReceivedMessage> {
    let mut all: Vec<ReceivedMessage> = Vec::new();
    loop {
        let after = all.last().map_or(0, |m| m.message.seq);
        let page = chat
            .history(channel, HistoryCursor::After(after), 4)
            .await
            .unwrap();
        let more = page.more;
        all.extend(page.messages);
        if !more {
            return all;
        }
    }
}

/// A distinctive plaintext and the ciphertext the server stored for it.
struct Sent {
    plaintext: String,
    ciphertext: String,
}

// ------------------------------------------------------------------------------------------ scenario

/// 1:1 and group chat, non-members, removal, late joiners and key rotation against one server.
/// Returns every message sent, for the database check.
async fn scenario(url: &str, creds: &Path, dir: &Path) -> Vec<Sent> {
    let backend = backend(creds);
    let mut sent = Vec::new();
    let tag = format!("{:x}", rand_suffix());

    // ---- 1:1
    let (_alice, a) = member(url, &backend, "alice", dir).await;
    let (_bob, b) = member(url, &backend, "bob", dir).await;
    let dm = a.direct_channel("bob").await.unwrap();
    assert_eq!(dm.kind, ChannelKind::Direct);
    assert_eq!(dm.members, ["alice", "bob"]);
    assert_eq!(b.direct_channel("alice").await.unwrap().id, dm.id);
    assert_eq!(a.direct_channel("bob").await.unwrap().id, dm.id);
    let mut a_stream = a.subscribe().await.unwrap();
    let mut b_stream = b.subscribe().await.unwrap();
    a_stream.subscribe(&dm.id, 0).await.unwrap();
    b_stream.subscribe(&dm.id, 0).await.unwrap();
    let mut expected = Vec::new();
    for i in 0..6 {
        let (chat, from) = if i % 3 == 2 {
            (&b, "bob")
        } else {
            (&a, "alice")
        };
        let text = format!("dm {i} from {from} quokka-{tag}-{i}");
        let m = chat.send_text(&dm.id, &text).await.unwrap();
        assert_eq!(m.seq, i + 1);
        assert_eq!(m.sender, from);
        sent.push(Sent {
            plaintext: text.clone(),
            ciphertext: m.ciphertext.clone(),
        });
        expected.push((i + 1, from.to_owned(), text));
    }
    for stream in [&mut a_stream, &mut b_stream] {
        let (got, _) = messages(stream, 6).await;
        assert_eq!(verified(&got), expected);
        no_message(stream, Duration::from_millis(300)).await;
    }
    assert_eq!(verified(&full_history(&b, &dm.id).await), expected);
    assert_eq!(verified(&full_history(&a, &dm.id).await), expected);
    let latest = b.history(&dm.id, HistoryCursor::Latest, 2).await.unwrap();
    assert!(latest.more);
    assert_eq!(verified(&latest.messages), expected[4..]);
    let before = b
        .history(&dm.id, HistoryCursor::Before(5), 2)
        .await
        .unwrap();
    assert_eq!(verified(&before.messages), expected[2..4]);
    assert!(b.channels().await.unwrap().iter().any(|c| c.id == dm.id));

    // ---- a group of five
    let names = ["gina", "hal", "ivy", "jon", "kim"];
    let mut users = Vec::new();
    for name in names {
        users.push(member(url, &backend, name, dir).await);
    }
    let group = format!("team-{tag}");
    let created = users[0]
        .1
        .create_channel(&group, ChannelKind::Group, &names[1..], false)
        .await
        .unwrap();
    assert_eq!(created.members, names);
    assert_eq!(created.admins, ["gina"]);
    assert!(matches!(
        users[1]
            .1
            .create_channel(&group, ChannelKind::Group, &[], false)
            .await,
        Err(Error::ChannelExists { .. })
    ));
    let mut streams = Vec::new();
    for (_, chat) in &users {
        let mut stream = chat.subscribe().await.unwrap();
        stream.subscribe(&group, 0).await.unwrap();
        streams.push(stream);
    }
    // One round in a known order, then everyone at once.
    let mut expected = Vec::new();
    for (i, (_, chat)) in users.iter().enumerate() {
        let text = format!("hello from {} narwhal-{tag}-{i}", names[i]);
        let m = chat.send_text(&group, &text).await.unwrap();
        sent.push(Sent {
            plaintext: text.clone(),
            ciphertext: m.ciphertext,
        });
        expected.push((i as i64 + 1, names[i].to_owned(), text));
    }
    let mut tasks = Vec::new();
    for (i, (_, chat)) in users.iter().enumerate() {
        let chat = chat.clone();
        let group = group.clone();
        let tag = tag.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for k in 0..3 {
                let text = format!("burst {k} of {i} axolotl-{tag}-{i}-{k}");
                let m = chat.send_text(&group, &text).await.unwrap();
                out.push(Sent {
                    plaintext: text,
                    ciphertext: m.ciphertext,
                });
            }
            out
        }));
    }
    for task in tasks {
        sent.extend(task.await.unwrap());
    }
    let history = verified(&full_history(&users[3].1, &group).await);
    assert_eq!(history.len(), 5 + 15);
    assert_eq!(history[..5], expected[..]);
    for (k, (seq, _, _)) in history.iter().enumerate() {
        assert_eq!(*seq, k as i64 + 1);
    }
    for stream in &mut streams {
        let (got, _) = messages(stream, 20).await;
        assert_eq!(verified(&got), history);
    }

    // ---- outsiders
    let (_lou, lou) = member(url, &backend, "lou", dir).await;
    assert!(matches!(
        lou.history(&group, HistoryCursor::Latest, 10).await,
        Err(Error::ChannelNotFound { .. })
    ));
    assert!(matches!(
        lou.send_text(&group, "let me in").await,
        Err(Error::ChannelNotFound { .. })
    ));
    assert!(matches!(
        lou.channel(&group).await,
        Err(Error::ChannelNotFound { .. })
    ));
    assert!(matches!(
        lou.add_member(&group, "lou").await,
        Err(Error::ChannelNotFound { .. })
    ));
    let mut lou_stream = lou.subscribe().await.unwrap();
    assert!(matches!(
        lou_stream.subscribe(&group, 0).await,
        Err(Error::ChannelNotFound { .. })
    ));
    assert!(matches!(
        lou.history("no-such-channel", HistoryCursor::Latest, 10)
            .await,
        Err(Error::ChannelNotFound { .. })
    ));
    assert!(matches!(
        users[0].1.send(&group, &vec![7u8; 100 << 10]).await,
        Err(Error::MessageTooLarge { .. })
    ));
    assert!(matches!(
        lou.send_text("bad id!", "x").await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        users[1].1.remove_member(&group, "ivy").await,
        Err(Error::NotAnAdmin { .. })
    ));
    assert!(matches!(
        b.add_member(&dm.id, "lou").await,
        Err(Error::MembershipRule { .. } | Error::NotAnAdmin { .. })
    ));

    // ---- removal: kim is removed, misses what follows, is added back
    let removed = users[0].1.remove_member(&group, "kim").await.unwrap();
    assert!(!removed.members.contains(&"kim".to_owned()));
    let kim_events = no_message(&mut streams[4], Duration::from_millis(1500)).await;
    assert!(
        kim_events.contains(&ChatEvent::Removed {
            channel: group.clone()
        }),
        "{kim_events:?}"
    );
    let secret = format!("while kim is away okapi-{tag}");
    let m = users[1].1.send_text(&group, &secret).await.unwrap();
    sent.push(Sent {
        plaintext: secret.clone(),
        ciphertext: m.ciphertext,
    });
    let away_seq = m.seq;
    for stream in &mut streams[..4] {
        let (got, events) = messages(stream, 1).await;
        assert_eq!(got[0].text(), Some(secret.as_str()));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, ChatEvent::Members { channel, .. } if *channel == group)),
            "{events:?}"
        );
    }
    no_message(&mut streams[4], Duration::from_millis(1000)).await;
    let kim = &users[4].1;
    assert!(matches!(
        kim.history(&group, HistoryCursor::Latest, 10).await,
        Err(Error::ChannelNotFound { .. })
    ));
    assert!(matches!(
        kim.send_text(&group, "still here?").await,
        Err(Error::ChannelNotFound { .. })
    ));
    users[0].1.add_member(&group, "kim").await.unwrap();
    let back = format!("welcome back kim pangolin-{tag}");
    let m = users[0].1.send_text(&group, &back).await.unwrap();
    sent.push(Sent {
        plaintext: back.clone(),
        ciphertext: m.ciphertext,
    });
    let kim_history = full_history(kim, &group).await;
    let away = kim_history
        .iter()
        .find(|m| m.message.seq == away_seq)
        .unwrap();
    assert_eq!(away.status, Verification::NotForMe);
    assert_eq!(away.body, None);
    let last = kim_history.last().unwrap();
    assert_eq!(last.text(), Some(back.as_str()));
    assert!(kim_history[..20].iter().all(|m| m.is_verified()));

    // A late joiner reads nothing from before, everything after.
    let (_max, max) = member(url, &backend, "max", dir).await;
    users[0].1.add_member(&group, "max").await.unwrap();
    let hello = format!("hi max tapir-{tag}");
    let m = users[2].1.send_text(&group, &hello).await.unwrap();
    sent.push(Sent {
        plaintext: hello.clone(),
        ciphertext: m.ciphertext,
    });
    let max_history = full_history(&max, &group).await;
    let (old, new) = max_history.split_at(max_history.len() - 1);
    assert!(old
        .iter()
        .all(|m| m.status == Verification::NotForMe && m.body.is_none()));
    assert_eq!(new[0].text(), Some(hello.as_str()));

    // ---- key rotation: hal rotates between two messages; both verify for the others
    let group_len = users.len();
    let hal = &users[1].0;
    let before_rotation = format!("hal before rotation gecko-{tag}");
    let m1 = users[1]
        .1
        .send_text(&group, &before_rotation)
        .await
        .unwrap();
    hal.cleanup().await.unwrap();
    let new_card = hal.rotate_private_key().await.unwrap();
    assert!(new_card.previous_card_id().is_some());
    let after_rotation = format!("hal after rotation ibis-{tag}");
    let m2 = users[1].1.send_text(&group, &after_rotation).await.unwrap();
    for m in [&m1, &m2] {
        sent.push(Sent {
            plaintext: if m.seq == m1.seq {
                before_rotation.clone()
            } else {
                after_rotation.clone()
            },
            ciphertext: m.ciphertext.clone(),
        });
    }
    for i in [0, 2, 3] {
        let page = users[i]
            .1
            .history(&group, HistoryCursor::After(m1.seq - 1), 10)
            .await
            .unwrap();
        let texts: Vec<_> = page.messages.iter().map(|m| m.text()).collect();
        assert_eq!(
            texts,
            [
                Some(before_rotation.as_str()),
                Some(after_rotation.as_str())
            ],
            "{:?}",
            page.messages
        );
    }
    // And over the WebSocket (the streams still have the earlier messages queued).
    let stream = &mut streams[2];
    let mut seen = Vec::new();
    while seen.len() < 2 {
        if let ChatEvent::Message(m) = next_event(stream).await {
            if m.message.seq >= m1.seq {
                assert!(m.is_verified(), "{m:?}");
                seen.push(m.text().unwrap().to_owned());
            }
        }
    }
    assert_eq!(seen, [before_rotation, after_rotation]);
    assert_eq!(group_len, 5);
    sent
}

/// Every file of the SQLite data directory, as bytes: none may hold a plaintext, and the
/// ciphertexts must be found (so the search means something).
fn assert_no_plaintext(haystack: &[u8], sent: &[Sent]) {
    let contains = |needle: &[u8]| haystack.windows(needle.len()).any(|w| w == needle);
    for s in sent {
        assert!(
            !contains(s.plaintext.as_bytes()),
            "plaintext {:?} is in the database",
            s.plaintext
        );
        let raw = STANDARD.decode(&s.ciphertext).unwrap();
        let hex = hex_lower(&raw);
        assert!(
            contains(s.ciphertext.as_bytes()) || contains(&raw) || contains(hex.as_bytes()),
            "the ciphertext of {:?} is not in the database: the search is meaningless",
            s.plaintext
        );
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn read_dir_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap());
        } else if path.is_dir() {
            all.extend(read_dir_bytes(&path));
        }
    }
    all
}

// ------------------------------------------------------------------------------------------ tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, mut server) = sqlite_deployment(dir.path());
    let data = dir.path().join("data");
    let sent = scenario(&server.url, &creds, &dir.path().join("clients")).await;
    // Read the files as the server left them, the WAL included (it may not be checkpointed).
    let live = read_dir_bytes(&data);
    server.kill9();
    assert_no_plaintext(&[live, read_dir_bytes(&data)].concat(), &sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_on_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, serve) = pg_deployment("chat", dir.path());
    let server = Server::start(&as_strs(&serve));
    let sent = scenario(&server.url, &creds, &dir.path().join("clients")).await;
    let dump = Command::new("pg_dump").arg(&serve[1]).output().unwrap();
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    assert_no_plaintext(&dump.stdout, &sent);
}

/// Two servers on one PostgreSQL database: the sender posts to one, the receiver listens on
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, serve) = pg_deployment("chatrep", dir.path());
    let one = Server::start(&as_strs(&serve));
    let two = Server::start(&as_strs(&serve));
    let backend = backend(&creds);
    let clients = dir.path().join("clients");
    let (_s, sender) = member(&one.url, &backend, "sender", &clients).await;
    let (_r, receiver) = member(&two.url, &backend, "receiver", &clients).await;
    let dm = sender.direct_channel("receiver").await.unwrap();
    let mut stream = receiver.subscribe().await.unwrap();
    stream.subscribe(&dm.id, 0).await.unwrap();
    let started = Instant::now();
    for i in 0..10 {
        sender
            .send_text(&dm.id, &format!("across {i}"))
            .await
            .unwrap();
    }
    let (got, _) = messages(&mut stream, 10).await;
    let texts: Vec<String> = verified(&got).into_iter().map(|(_, _, t)| t).collect();
    assert_eq!(
        texts,
        (0..10).map(|i| format!("across {i}")).collect::<Vec<_>>()
    );
    eprintln!("10 messages across replicas in {:?}", started.elapsed());
    // Membership changes travel too.
    sender
        .create_channel("replicated", ChannelKind::Group, &["receiver"], false)
        .await
        .unwrap();
    stream.subscribe("replicated", 0).await.unwrap();
    sender
        .remove_member("replicated", "receiver")
        .await
        .unwrap();
    let events = no_message(&mut stream, Duration::from_millis(1500)).await;
    assert!(
        events.contains(&ChatEvent::Removed {
            channel: "replicated".into()
        }),
        "{events:?}"
    );
}

/// The receiver's replica is killed with SIGKILL; messages posted meanwhile on the other
/// replica arrive once the killed one is back, each once and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_resumes_after_a_replica_dies() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, serve) = pg_deployment("chatkill", dir.path());
    let mut a = Server::start(&as_strs(&serve));
    let b = Server::start(&as_strs(&serve));
    let port: u16 = a.url.rsplit(':').next().unwrap().parse().unwrap();
    let backend = backend(&creds);
    let clients = dir.path().join("clients");
    let (_s, sender) = member(&b.url, &backend, "sender", &clients).await;
    let (_r, receiver) = member(&a.url, &backend, "receiver", &clients).await;
    let dm = sender.direct_channel("receiver").await.unwrap();
    let mut stream = receiver.subscribe().await.unwrap();
    stream.subscribe(&dm.id, 0).await.unwrap();
    for i in 0..3 {
        sender.send_text(&dm.id, &format!("m{i}")).await.unwrap();
    }
    let (got, _) = messages(&mut stream, 3).await;
    assert_eq!(got.last().unwrap().text(), Some("m2"));

    a.kill9();
    for i in 3..13 {
        sender.send_text(&dm.id, &format!("m{i}")).await.unwrap();
    }
    // Let the stream notice and fail a few reconnections before the replica is back.
    let reader = tokio::spawn(async move {
        let mut texts = Vec::new();
        let mut reconnected = false;
        while texts.len() < 10 {
            match next_event(&mut stream).await {
                ChatEvent::Message(m) => {
                    assert!(m.is_verified(), "{m:?}");
                    texts.push(m.text().unwrap().to_owned());
                }
                ChatEvent::Reconnected => reconnected = true,
                _ => {}
            }
        }
        no_message(&mut stream, Duration::from_millis(500)).await;
        (texts, reconnected)
    });
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _a = Server::start_at(port, &as_strs(&serve));
    let (texts, reconnected) = reader.await.unwrap();
    assert_eq!(texts, (3..13).map(|i| format!("m{i}")).collect::<Vec<_>>());
    assert!(reconnected);
}

/// Forcing reconnects while messages flow, and abandoning `next` half-way, loses and repeats
/// nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_stream_survives_forced_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let backend = backend(&creds);
    let clients = dir.path().join("clients");
    let (_s, sender) = member(&server.url, &backend, "sender", &clients).await;
    let (_r, receiver) = member(&server.url, &backend, "receiver", &clients).await;
    let dm = sender.direct_channel("receiver").await.unwrap();
    let mut stream = receiver.subscribe().await.unwrap();
    stream.subscribe(&dm.id, 0).await.unwrap();
    let posting = {
        let sender = sender.clone();
        let id = dm.id.clone();
        tokio::spawn(async move {
            for i in 0..40 {
                sender.send_text(&id, &format!("n{i}")).await.unwrap();
            }
        })
    };
    let mut texts = Vec::new();
    let mut reconnects = 0;
    let mut dropped_at = None;
    let mut cancelled = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    for attempt in 0.. {
        if texts.len() == 40 {
            break;
        }
        assert!(Instant::now() < deadline, "stuck after {texts:?}");
        if texts.len() % 7 == 3 && dropped_at != Some(texts.len()) {
            dropped_at = Some(texts.len());
            stream.disconnect();
        }
        // Every other call is abandoned almost at once, wherever it is (reconnecting,
        // re-subscribing, decrypting), as a `select!` would: nothing may get lost.
        let patience = if attempt % 2 == 0 {
            Duration::from_micros(300)
        } else {
            EVENT_TIMEOUT
        };
        match tokio::time::timeout(patience, stream.next()).await {
            Err(_) => cancelled += 1,
            Ok(Some(Ok(ChatEvent::Message(m)))) => texts.push(m.text().unwrap().to_owned()),
            Ok(Some(Ok(ChatEvent::Reconnected))) => reconnects += 1,
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("stream: {other:?}"),
        }
    }
    assert!(cancelled > 0);
    posting.await.unwrap();
    assert_eq!(texts, (0..40).map(|i| format!("n{i}")).collect::<Vec<_>>());
    assert!(reconnects > 0);
    no_message(&mut stream, Duration::from_millis(500)).await;
}

// ------------------------------------------------------------------------------------------ e3kit-node

/// A Sealkit user posts to a channel with an e3kit-node member; the e3kit user fetches the
/// message over the chat API with its own token and authDecrypts it with the sender's card.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e3kit_node_reads_a_chat_message() {
    if !e3kit_node_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let backend = backend(&creds);
    let mut js = NodePeer::start(&server.url, &creds, &dir.path().join("js"));
    js.call(json!({"cmd": "init", "user": "j", "identity": "js-reader"}));
    js.call(json!({"cmd": "register", "user": "j"}));

    let (_rust, chat) = member(
        &server.url,
        &backend,
        "rust-writer",
        &dir.path().join("rust"),
    )
    .await;
    chat.create_channel("mixed", ChannelKind::Group, &["js-reader"], false)
        .await
        .unwrap();
    let text = "from Sealkit chat to e3kit-node, ünïcödé";
    let posted = chat.send_text("mixed", text).await.unwrap();

    // The e3kit user's app fetches the message over plain HTTP with its own token.
    let url = format!("{}/chat/v1/channels/mixed/messages?after=0", server.url);
    let token = backend.generate("js-reader", now()).unwrap();
    let page: Value = tokio::task::spawn_blocking(move || {
        ureq::get(&url)
            .set("Authorization", &token.authorization())
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    })
    .await
    .unwrap();
    let message = &page["messages"][0];
    assert_eq!(message["seq"], 1);
    assert_eq!(message["sender"], "rust-writer");
    assert_eq!(
        message["ciphertext"].as_str(),
        Some(posted.ciphertext.as_str())
    );

    js.call(json!({"cmd": "find", "user": "j", "identities": ["rust-writer"]}));
    let result = js.call(json!({
        "cmd": "decrypt", "user": "j", "mode": "auth", "from": "rust-writer",
        "data": message["ciphertext"], "at": message["sent_at"],
    }));
    assert_eq!(result["text"], text);
}

/// Posts `ciphertext` (base64) as `identity` over plain HTTP, as any client holding a token can.
async fn raw_post(
    url: &str,
    backend: &JwtGenerator,
    identity: &str,
    channel: &str,
    ciphertext: String,
    member_version: i64,
) {
    let url = format!("{url}/chat/v1/channels/{channel}/messages");
    let token = backend.generate(identity, now()).unwrap();
    let body = json!({
        "client_id": format!("raw-{}", rand_suffix()),
        "ciphertext": ciphertext,
        "member_version": member_version,
    });
    tokio::task::spawn_blocking(move || {
        ureq::post(&url)
            .set("Authorization", &token.authorization())
            .send_json(body)
            .unwrap();
    })
    .await
    .unwrap();
}

/// What members could try: re-posting another member's ciphertext as their own, posting without
/// a card, posting garbage. None of it reads as a verified message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_flags_forgeries() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let url = server.url.clone();
    let backend = backend(&creds);
    let clients = dir.path().join("clients");
    let (_a, alice) = member(&url, &backend, "alice", &clients).await;
    let (_b, bob) = member(&url, &backend, "bob", &clients).await;
    let (_m, mallory) = member(&url, &backend, "mallory", &clients).await;
    // "ghost" has a token but never registered a card.
    let channel = alice
        .create_channel(
            "room",
            ChannelKind::Group,
            &["bob", "mallory", "ghost"],
            false,
        )
        .await
        .unwrap();
    let mut stream = bob.subscribe().await.unwrap();
    stream.subscribe("room", 0).await.unwrap();

    let genuine = alice
        .send_text("room", "genuine, from alice")
        .await
        .unwrap();
    let version = channel.member_version;
    raw_post(
        &url,
        &backend,
        "mallory",
        "room",
        genuine.ciphertext.clone(),
        version,
    )
    .await;
    raw_post(
        &url,
        &backend,
        "ghost",
        "room",
        genuine.ciphertext.clone(),
        version,
    )
    .await;
    raw_post(
        &url,
        &backend,
        "mallory",
        "room",
        STANDARD.encode(b"not an envelope at all"),
        version,
    )
    .await;
    mallory.send_text("room", "mallory's own").await.unwrap();

    let expected = [
        ("alice", Verification::Verified),
        ("mallory", Verification::BadSignature),
        ("ghost", Verification::UnknownSender),
        ("mallory", Verification::Malformed),
        ("mallory", Verification::Verified),
    ];
    let check = |got: &[ReceivedMessage]| {
        let statuses: Vec<(&str, Verification)> = got
            .iter()
            .map(|m| (m.message.sender.as_str(), m.status))
            .collect();
        assert_eq!(statuses, expected);
        for m in got {
            assert_eq!(m.body.is_some(), m.is_verified(), "{m:?}");
        }
        assert_eq!(got[0].text(), Some("genuine, from alice"));
        assert_eq!(got[4].text(), Some("mallory's own"));
    };
    let (live, _) = messages(&mut stream, 5).await;
    check(&live);
    check(&full_history(&bob, "room").await);

    // Nobody could read a direct message to someone without a card: refused, not posted.
    let dm = alice.direct_channel("ghost").await.unwrap();
    match alice.send_text(&dm.id, "anyone there?").await {
        Err(Error::UsersNotFound { identities }) => assert_eq!(identities, ["ghost"]),
        other => panic!("{other:?}"),
    }
    let page = alice
        .history(&dm.id, HistoryCursor::Latest, 10)
        .await
        .unwrap();
    assert!(page.messages.is_empty());
}

/// A SQLite deployment with two registered users, `host` and `guest`.
struct Duo {
    dir: tempfile::TempDir,
    server: Server,
    backend: JwtGenerator,
    clients: std::path::PathBuf,
    host: Chat,
    guest: Chat,
}

async fn host_and_guest() -> Duo {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let backend = backend(&creds);
    let clients = dir.path().join("clients");
    let (_, host) = member(&server.url, &backend, "host", &clients).await;
    let (_, guest) = member(&server.url, &backend, "guest", &clients).await;
    Duo {
        dir,
        server,
        backend,
        clients,
        host,
        guest,
    }
}

/// Open channels: anyone joins, reads what follows, leaves; the last admin cannot leave.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_channels_join_and_leave() {
    let Duo {
        dir: _dir,
        server: _server,
        host,
        guest,
        ..
    } = host_and_guest().await;
    host.create_channel("lobby", ChannelKind::Group, &[], true)
        .await
        .unwrap();
    host.create_channel("closed", ChannelKind::Group, &[], false)
        .await
        .unwrap();
    host.send_text("lobby", "before the guest").await.unwrap();
    assert!(matches!(
        guest.join("closed").await,
        Err(Error::ChannelNotFound { .. })
    ));
    let joined = guest.join("lobby").await.unwrap();
    assert_eq!(joined.members, ["guest", "host"]);
    assert!(guest
        .channels()
        .await
        .unwrap()
        .iter()
        .any(|c| c.id == "lobby"));
    host.send_text("lobby", "after the guest").await.unwrap();
    guest.send_text("lobby", "hi host").await.unwrap();
    let history = full_history(&guest, "lobby").await;
    let seen: Vec<_> = history.iter().map(|m| (m.status, m.text())).collect();
    assert_eq!(
        seen,
        [
            (Verification::NotForMe, None),
            (Verification::Verified, Some("after the guest")),
            (Verification::Verified, Some("hi host")),
        ]
    );
    assert!(matches!(
        host.leave("lobby").await,
        Err(Error::MembershipRule { .. })
    ));
    guest.leave("lobby").await.unwrap();
    assert!(matches!(
        guest.send_text("lobby", "still here").await,
        Err(Error::ChannelNotFound { .. })
    ));
    assert!(!guest
        .channels()
        .await
        .unwrap()
        .iter()
        .any(|c| c.id == "lobby"));
    let page = host
        .history("lobby", HistoryCursor::Latest, 10)
        .await
        .unwrap();
    assert_eq!(page.messages.len(), 3);
}

/// A send for a stale membership is refused with the channel as it is now, and the SDK
/// encrypts for the new members from that refusal instead of reading the channel again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_send_reencrypts_from_the_refusal() {
    let Duo {
        dir: _dir,
        server,
        backend,
        clients,
        host,
        guest,
    } = host_and_guest().await;
    host.create_channel("team", ChannelKind::Group, &[], false)
        .await
        .unwrap();
    host.send_text("team", "before the guest").await.unwrap();
    // The host's second device adds the guest: the first one's cached members are now stale.
    let second_device = client(&server.url, &backend, "host", &clients.join("second")).await;
    second_device
        .chat()
        .add_member("team", "guest")
        .await
        .unwrap();

    let channel_reads = || requests(&server.url, "/chat/v1/channels/{id}", "GET", None);
    let stale_posts = || {
        requests(
            &server.url,
            "/chat/v1/channels/{id}/messages",
            "POST",
            Some(409),
        )
    };
    let (reads, refusals) = (channel_reads(), stale_posts());
    host.send_text("team", "after the guest").await.unwrap();
    assert_eq!(
        stale_posts(),
        refusals + 1,
        "the first post was not refused"
    );
    assert_eq!(
        channel_reads(),
        reads,
        "the SDK read the channel after the refusal"
    );

    let history = full_history(&guest, "team").await;
    let seen: Vec<_> = history.iter().map(|m| (m.status, m.text())).collect();
    assert_eq!(
        seen,
        [
            (Verification::NotForMe, None),
            (Verification::Verified, Some("after the guest")),
        ]
    );
}

/// How many requests the server counted for a route and method (and status, if given), from
/// its `/metrics`.
fn requests(url: &str, route: &str, method: &str, status: Option<u16>) -> u64 {
    let text = ureq::get(&format!("{url}/metrics"))
        .call()
        .unwrap()
        .into_string()
        .unwrap();
    let prefix = format!("sealkit_http_requests_total{{route=\"{route}\",method=\"{method}\",");
    text.lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter(|rest| status.is_none_or(|s| rest.starts_with(&format!("status=\"{s}\""))))
        .map(|rest| rest.rsplit(' ').next().unwrap().parse::<u64>().unwrap())
        .sum()
}
