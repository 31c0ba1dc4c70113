//! Read state and typing indicators through the SDK (`Chat::mark_read`, `Channel::unread` and
//! `Channel::read`, `ChatEvent::Read`, `ChatStream::typing`, `ChatEvent::Typing`) against
//! `sealkit serve` as a process on SQLite, and across two PostgreSQL replicas.

use crate::common::*;

use sealkit::chat::{ChatEvent, ChatStream};
use sealkit::{Chat, EThree, EThreeOptions, Error};
use sealkit_proto::JwtGenerator;
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

const EVENT_TIMEOUT: Duration = Duration::from_secs(20);

async fn member(url: &str, backend: &JwtGenerator, identity: &str, dir: &Path) -> (EThree, Chat) {
    let backend = backend.clone();
    let who = identity.to_owned();
    let provider = move || std::future::ready(backend.generate(&who, now()).map(|j| j.to_string()));
    let ethree = EThree::initialize(provider, EThreeOptions::new(url, dir.join(identity)))
        .await
        .unwrap();
    ethree.register(None).await.unwrap();
    let chat = ethree.chat();
    (ethree, chat)
}

/// The next event that is not a message (messages are skipped).
async fn next_non_message(stream: &mut ChatStream) -> ChatEvent {
    loop {
        match tokio::time::timeout(EVENT_TIMEOUT, stream.next()).await {
            Ok(Some(Ok(ChatEvent::Message(_)))) => {}
            Ok(Some(Ok(event))) => return event,
            Ok(other) => panic!("stream: {other:?}"),
            Err(_) => panic!("no chat event within {EVENT_TIMEOUT:?}"),
        }
    }
}

/// Asserts that nothing but messages arrives for a while.
async fn nothing_else(stream: &mut ChatStream) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(700);
    loop {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return,
            Ok(Some(Ok(ChatEvent::Message(_)))) => {}
            Ok(other) => panic!("unexpected {other:?}"),
        }
    }
}

fn horizons(items: &[(&str, i64)]) -> BTreeMap<String, i64> {
    items.iter().map(|(m, s)| ((*m).to_owned(), *s)).collect()
}

/// alice and bob in a group: unread counts, receipts and typing through two servers (the same
/// one twice on SQLite, two replicas on PostgreSQL).
async fn read_and_typing(url_a: &str, url_b: &str, creds: &Path, dir: &Path) {
    let backend = backend(creds);
    let (_alice, a) = member(url_a, &backend, "alice", dir).await;
    let (_bob, b) = member(url_b, &backend, "bob", dir).await;
    let (_carol, c) = member(url_b, &backend, "carol", dir).await;
    let channel = a
        .create_channel("team", sealkit::chat::ChannelKind::Group, &["bob"], false)
        .await
        .unwrap();
    assert_eq!(channel.unread, Some(0));
    let mut a_stream = a.subscribe().await.unwrap();
    let mut b_stream = b.subscribe().await.unwrap();
    a_stream.subscribe("team", 0).await.unwrap();
    b_stream.subscribe("team", 0).await.unwrap();
    for text in ["one", "two", "three"] {
        a.send_text("team", text).await.unwrap();
    }

    let team = b.channel("team").await.unwrap();
    assert_eq!(team.last_seq, 3);
    assert_eq!(team.unread, Some(3));
    assert_eq!(team.read, horizons(&[("alice", 3), ("bob", 0)]));

    let state = b.mark_read("team", 2).await.unwrap();
    assert_eq!((state.seq, state.unread), (2, 1));
    let receipt = ChatEvent::Read {
        channel: "team".into(),
        identity: "bob".into(),
        seq: 2,
    };
    assert_eq!(next_non_message(&mut a_stream).await, receipt);
    assert_eq!(next_non_message(&mut b_stream).await, receipt);
    // Never back; beyond the end and outsiders are typed errors.
    assert_eq!(b.mark_read("team", 1).await.unwrap().seq, 2);
    assert!(matches!(
        b.mark_read("team", 9).await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        c.mark_read("team", 0).await,
        Err(Error::ChannelNotFound { .. })
    ));
    let listed = b.channels().await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].unread, Some(1));
    assert_eq!(listed[0].read, horizons(&[("alice", 3), ("bob", 2)]));

    // Typing reaches the others once per interval, never the typist.
    b_stream.typing("team").await.unwrap();
    assert_eq!(
        next_non_message(&mut a_stream).await,
        ChatEvent::Typing {
            channel: "team".into(),
            identity: "bob".into()
        }
    );
    b_stream.typing("team").await.unwrap();
    nothing_else(&mut a_stream).await;
    nothing_else(&mut b_stream).await;
    // An outsider typing is told the channel is not there for them.
    let mut c_stream = c.subscribe().await.unwrap();
    c_stream.typing("team").await.unwrap();
    match tokio::time::timeout(EVENT_TIMEOUT, c_stream.next()).await {
        Ok(Some(Err(Error::ChannelNotFound { channel }))) => assert_eq!(channel, "team"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    nothing_else(&mut a_stream).await;

    // Sending moves the sender's own horizon.
    b.send_text("team", "four").await.unwrap();
    let team = a.channel("team").await.unwrap();
    assert_eq!(team.read, horizons(&[("alice", 3), ("bob", 4)]));
    assert_eq!(team.unread, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_state_and_typing_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    read_and_typing(
        &server.url,
        &server.url,
        &creds,
        &dir.path().join("clients"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_state_and_typing_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, args) = pg_deployment("readtyping", dir.path());
    let a = Server::start(&as_strs(&args));
    let b = Server::start(&as_strs(&args));
    read_and_typing(&a.url, &b.url, &creds, &dir.path().join("clients")).await;
}
