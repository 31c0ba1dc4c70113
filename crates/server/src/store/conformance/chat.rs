//! Conformance of chat: channels, membership rules, posts, history and events.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::StreamExt;
use sealkit_proto::chat::MAX_MEMBERS;
use sealkit_proto::Identity;

use super::{app_id, id, ok};

/// No cap on the channels one identity creates.
const NO_CHANNEL_LIMIT: u32 = u32::MAX;
/// A page size larger than any test's channel count.
const ALL_CHANNELS: u32 = 1000;
use crate::store::{
    ChannelRecord, ChatEvent, ChatEventStream, ChatMessageRecord, Conflict, Forbidden,
    HistoryCursor, NewChatMessage, Posted, ReadMark, Store, StoreError,
};

/// How long a test waits for a chat event before calling the event path broken.
const EVENT_TIMEOUT: Duration = Duration::from_secs(10);

fn identities(items: &[&str]) -> Vec<Identity> {
    items.iter().map(|s| id(s)).collect()
}

/// A group channel created by `creator` (its only admin) with `others` as further members.
pub(crate) fn group(app_id: &str, id: &str, creator: &str, others: &[&str]) -> ChannelRecord {
    ChannelRecord {
        app_id: app_id.to_owned(),
        id: self::id(id),
        kind: "group".to_owned(),
        open: false,
        created_by: self::id(creator),
        created_at_ms: 1_800_000_000_123,
        admins: identities(&[creator]),
        members: identities(others),
        member_version: 1,
        last_seq: 0,
        read: Vec::new(),
    }
}

pub(crate) fn chat_message(
    app_id: &str,
    channel_id: &str,
    sender: &str,
    client_id: &str,
    member_version: i64,
) -> NewChatMessage {
    NewChatMessage {
        app_id: app_id.to_owned(),
        channel_id: id(channel_id),
        sender: id(sender),
        client_id: client_id.to_owned(),
        ciphertext: format!("ciphertext {sender} {client_id}\0\u{ff}").into_bytes(),
        member_version,
        sent_at_ms: 1_800_000_000_000 + client_id.len() as i64,
        // Every other message gossips a head: both must read back as posted.
        kt_head: (client_id.len() % 2 == 0).then(|| format!("{{\"epoch\":\"{client_id}\"}}")),
        blobs: Vec::new(),
    }
}

/// Posts and expects a new message; returns it.
pub(crate) async fn post_new(store: &dyn Store, message: NewChatMessage) -> ChatMessageRecord {
    let step = format!("post {} by {}", message.client_id, message.sender);
    match ok(&step, store.chat_post(message).await) {
        Posted::New(stored) => stored,
        other => panic!("{step}: expected a new message, got {other:?}"),
    }
}

async fn channel_of(store: &dyn Store, app_id: &str, channel_id: &str) -> ChannelRecord {
    match ok("read channel", store.chat_channel(app_id, channel_id).await) {
        Some(channel) => channel,
        None => panic!("channel {channel_id} missing"),
    }
}

async fn seqs(
    store: &dyn Store,
    app_id: &str,
    channel_id: &str,
    cursor: HistoryCursor,
    limit: u32,
) -> Vec<i64> {
    ok(
        "history",
        store.chat_history(app_id, channel_id, cursor, limit).await,
    )
    .iter()
    .map(|m| m.seq)
    .collect()
}

/// The next event of `app_id` (others' are skipped), or a panic after [`EVENT_TIMEOUT`].
pub(crate) async fn next_event(events: &mut ChatEventStream, app_id: &str) -> ChatEvent {
    loop {
        let event = match tokio::time::timeout(EVENT_TIMEOUT, events.next()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the chat event stream ended"),
            Err(_) => panic!("no chat event within {EVENT_TIMEOUT:?}"),
        };
        match event.app_id() {
            Some(a) if a != app_id => {}
            _ => return event,
        }
    }
}

pub(crate) fn message_event(app_id: &str, channel_id: &str, seq: i64) -> ChatEvent {
    ChatEvent::Message {
        app_id: app_id.to_owned(),
        channel_id: channel_id.to_owned(),
        seq,
    }
}

fn members_event(app_id: &str, channel_id: &str, member_version: i64) -> ChatEvent {
    ChatEvent::Members {
        app_id: app_id.to_owned(),
        channel_id: channel_id.to_owned(),
        member_version,
    }
}

/// Creating, reading and listing channels: versions start at 1 and 0 whatever the caller
/// passes, members and admins come back sorted by Rust's string order (not the database's
/// collation), ids are unique per application and applications are isolated.
pub async fn chat_channels_create_and_list(store: &dyn Store) {
    let app = app_id("chat channels");
    let other_app = app_id("chat channels other");
    assert_eq!(
        ok("unknown channel", store.chat_channel(&app, "general").await),
        None
    );
    let mut general = group(
        &app,
        "general",
        "alice",
        &["zed", "Zoe", "bob", "ärger", "alice"],
    );
    general.open = true;
    general.member_version = 7;
    general.last_seq = 9;
    ok(
        "create",
        store
            .chat_create_channel(general.clone(), NO_CHANNEL_LIMIT)
            .await,
    );
    let stored = channel_of(store, &app, "general").await;
    let mut expected = general.clone();
    expected.members = identities(&["Zoe", "alice", "bob", "zed", "ärger"]);
    expected.member_version = 1;
    expected.last_seq = 0;
    // Every member's read horizon starts at 0, sorted by identity like the members.
    expected.read = expected.members.iter().map(|m| (m.clone(), 0)).collect();
    assert_eq!(stored, expected);

    let mut clash = group(&app, "general", "mallory", &[]);
    clash.kind = "direct".to_owned();
    assert!(matches!(
        store.chat_create_channel(clash, NO_CHANNEL_LIMIT).await,
        Err(StoreError::Conflict(Conflict::ChannelExists))
    ));
    assert_eq!(channel_of(store, &app, "general").await, expected);

    let mut direct = group(&app, "dm:alice:bob", "alice", &["bob"]);
    direct.kind = "direct".to_owned();
    direct.admins = identities(&["alice", "bob"]);
    ok(
        "create direct",
        store.chat_create_channel(direct, NO_CHANNEL_LIMIT).await,
    );
    ok(
        "create empty-ish",
        store
            .chat_create_channel(group(&app, "a-solo", "carol", &[]), NO_CHANNEL_LIMIT)
            .await,
    );
    // The same id in another application is another channel.
    ok(
        "create in other app",
        store
            .chat_create_channel(
                group(&other_app, "general", "alice", &["dave"]),
                NO_CHANNEL_LIMIT,
            )
            .await,
    );

    let ids = |channels: Vec<ChannelRecord>| -> Vec<String> {
        channels.into_iter().map(|c| c.id.into_string()).collect()
    };
    assert_eq!(
        ids(ok(
            "alice's",
            store
                .chat_channels_of(&app, "alice", None, ALL_CHANNELS)
                .await
        )),
        ["dm:alice:bob", "general"]
    );
    let bobs = ok(
        "bob's",
        store
            .chat_channels_of(&app, "bob", None, ALL_CHANNELS)
            .await,
    );
    assert_eq!(bobs.len(), 2);
    assert_eq!(bobs[0].admins, identities(&["alice", "bob"]));
    assert_eq!(bobs[0].kind, "direct");
    assert_eq!(bobs[1], expected);
    assert_eq!(
        ids(ok(
            "carol's",
            store
                .chat_channels_of(&app, "carol", None, ALL_CHANNELS)
                .await
        )),
        ["a-solo"]
    );
    assert!(ok(
        "nobody's",
        store
            .chat_channels_of(&app, "nobody", None, ALL_CHANNELS)
            .await
    )
    .is_empty());
    assert!(ok(
        "dave here",
        store
            .chat_channels_of(&app, "dave", None, ALL_CHANNELS)
            .await
    )
    .is_empty());
    let elsewhere = ok(
        "alice elsewhere",
        store
            .chat_channels_of(&other_app, "alice", None, ALL_CHANNELS)
            .await,
    );
    assert_eq!(elsewhere.len(), 1);
    assert_eq!(elsewhere[0].members, identities(&["alice", "dave"]));
    assert_eq!(elsewhere[0].app_id, other_app);
    assert_eq!(
        ok(
            "missing app",
            store.chat_channel(&app_id("none"), "general").await
        ),
        None
    );
}

/// Adding and removing members: versions move only on real changes, admins are kept, the last
/// admin cannot leave others behind, but may leave an otherwise empty channel.
pub async fn chat_membership_rules(store: &dyn Store) {
    let app = app_id("chat membership");
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob"]), NO_CHANNEL_LIMIT)
            .await,
    );
    let add =
        |identity: &'static str, admin: bool| store.chat_add_member(&app, "g", identity, admin);

    let after = ok("add carol", add("carol", false).await);
    assert_eq!(after.member_version, 2);
    assert_eq!(after.members, identities(&["alice", "bob", "carol"]));
    assert_eq!(after.admins, identities(&["alice"]));
    assert_eq!(after, channel_of(store, &app, "g").await);

    let again = ok("add carol again", add("carol", false).await);
    assert_eq!(again, after, "re-adding a member changes nothing");
    let promoted = ok("promote carol", add("carol", true).await);
    assert_eq!(promoted.member_version, 3);
    assert_eq!(promoted.admins, identities(&["alice", "carol"]));
    let still = ok("add admin alice as member", add("alice", false).await);
    assert_eq!(
        still, promoted,
        "adding an admin as member neither demotes nor bumps"
    );
    let dave = ok("add dave as admin", add("dave", true).await);
    assert_eq!(dave.member_version, 4);
    assert_eq!(dave.admins, identities(&["alice", "carol", "dave"]));

    let missing = [
        store.chat_add_member(&app, "nope", "x", false).await,
        store
            .chat_add_member(&app_id("other"), "g", "x", false)
            .await,
        store.chat_remove_member(&app, "nope", "alice").await,
        store.chat_remove_member(&app, "g", "erin").await,
    ];
    for (i, result) in missing.into_iter().enumerate() {
        assert!(
            matches!(result, Err(StoreError::NotFound)),
            "{i}: {result:?}"
        );
    }

    // Admins may leave while another admin stays.
    let removed = ok(
        "remove carol",
        store.chat_remove_member(&app, "g", "carol").await,
    );
    assert_eq!(removed.member_version, 5);
    assert_eq!(removed.members, identities(&["alice", "bob", "dave"]));
    assert_eq!(removed.admins, identities(&["alice", "dave"]));
    let removed = ok(
        "remove dave",
        store.chat_remove_member(&app, "g", "dave").await,
    );
    assert_eq!(removed.member_version, 6);
    assert_eq!(removed.admins, identities(&["alice"]));

    assert!(matches!(
        store.chat_remove_member(&app, "g", "alice").await,
        Err(StoreError::Conflict(Conflict::LastAdmin))
    ));
    assert_eq!(channel_of(store, &app, "g").await, removed);

    let removed = ok(
        "remove bob",
        store.chat_remove_member(&app, "g", "bob").await,
    );
    assert_eq!(removed.member_version, 7);
    assert_eq!(removed.members, identities(&["alice"]));
    // The only admin and only member may leave; the channel stays, empty.
    let empty = ok(
        "alice leaves",
        store.chat_remove_member(&app, "g", "alice").await,
    );
    assert_eq!(empty.member_version, 8);
    assert!(empty.members.is_empty() && empty.admins.is_empty());
    assert_eq!(channel_of(store, &app, "g").await, empty);
    assert!(ok(
        "alice's",
        store
            .chat_channels_of(&app, "alice", None, ALL_CHANNELS)
            .await
    )
    .is_empty());
    assert!(matches!(
        store.chat_remove_member(&app, "g", "alice").await,
        Err(StoreError::NotFound)
    ));
}

/// A channel holds at most `MAX_MEMBERS`; existing members can still be re-added and promoted.
pub async fn chat_full_channel(store: &dyn Store) {
    let app = app_id("chat full");
    let others: Vec<String> = (1..MAX_MEMBERS).map(|i| format!("user{i:04}")).collect();
    let other_refs: Vec<&str> = others.iter().map(String::as_str).collect();
    let mut too_many = group(&app, "too-many", "alice", &other_refs);
    too_many.members.push(id("one-more"));
    assert!(matches!(
        store.chat_create_channel(too_many, NO_CHANNEL_LIMIT).await,
        Err(StoreError::Conflict(Conflict::ChannelFull))
    ));
    assert_eq!(
        ok("not created", store.chat_channel(&app, "too-many").await),
        None
    );

    ok(
        "create with the maximum",
        store
            .chat_create_channel(group(&app, "big", "alice", &other_refs), NO_CHANNEL_LIMIT)
            .await,
    );
    let big = channel_of(store, &app, "big").await;
    assert_eq!(big.members.len(), MAX_MEMBERS);
    assert!(matches!(
        store.chat_add_member(&app, "big", "latecomer", false).await,
        Err(StoreError::Conflict(Conflict::ChannelFull))
    ));
    let same = ok(
        "re-add",
        store.chat_add_member(&app, "big", "user0001", false).await,
    );
    assert_eq!(same.member_version, 1);
    let promoted = ok(
        "promote",
        store.chat_add_member(&app, "big", "user0001", true).await,
    );
    assert_eq!(promoted.member_version, 2);
    ok(
        "leave",
        store.chat_remove_member(&app, "big", "user0002").await,
    );
    let last = ok(
        "fill again",
        store.chat_add_member(&app, "big", "latecomer", false).await,
    );
    assert_eq!(last.members.len(), MAX_MEMBERS);
    assert_eq!(last.member_version, 4);
}

/// Posting: existence, membership, idempotency (before the version check), version check,
/// gapless seqs, bytes stored verbatim.
pub async fn chat_post_rules(store: &dyn Store) {
    let app = app_id("chat post");
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob"]), NO_CHANNEL_LIMIT)
            .await,
    );
    let stale = StoreError::Conflict(Conflict::StaleMemberVersion { current: 1 });
    for (message, expected) in [
        (
            chat_message(&app, "nope", "alice", "c1", 1),
            StoreError::NotFound,
        ),
        (
            chat_message(&app, "g", "mallory", "c1", 1),
            StoreError::Forbidden(Forbidden::NotAMember),
        ),
        (chat_message(&app, "g", "alice", "c1", 2), stale.clone()),
        (chat_message(&app, "g", "alice", "c1", 0), stale),
    ] {
        let step = format!("post {message:?}");
        assert_eq!(
            store.chat_post(message).await.err(),
            Some(expected),
            "{step}"
        );
    }
    assert_eq!(channel_of(store, &app, "g").await.last_seq, 0);

    let first = chat_message(&app, "g", "alice", "c1", 1);
    let stored = post_new(store, first.clone()).await;
    assert_eq!(
        stored,
        ChatMessageRecord {
            channel_id: id("g"),
            seq: 1,
            sender: id("alice"),
            client_id: "c1".to_owned(),
            ciphertext: first.ciphertext.clone(),
            member_version: 1,
            sent_at_ms: first.sent_at_ms,
            kt_head: Some(r#"{"epoch":"c1"}"#.to_owned()),
            edited_at_ms: None,
            deleted_at_ms: None,
            deleted_by: None,
        }
    );
    // A retry: other bytes and even a stale version still get the stored message.
    let mut retry = chat_message(&app, "g", "alice", "c1", 99);
    retry.ciphertext = b"different".to_vec();
    retry.sent_at_ms += 5;
    assert_eq!(
        ok("retry", store.chat_post(retry).await),
        Posted::Duplicate(stored.clone())
    );
    assert_eq!(channel_of(store, &app, "g").await.last_seq, 1);

    // Client ids are per sender.
    assert_eq!(
        post_new(store, chat_message(&app, "g", "bob", "c1", 1))
            .await
            .seq,
        2
    );
    assert_eq!(
        post_new(store, chat_message(&app, "g", "alice", "c2", 1))
            .await
            .seq,
        3
    );
    let history = ok(
        "history",
        store
            .chat_history(&app, "g", HistoryCursor::After(0), 100)
            .await,
    );
    assert_eq!(history.len(), 3);
    assert_eq!(history[0], stored);
    assert_eq!(
        history
            .iter()
            .map(|m| (m.seq, m.sender.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "alice"), (2, "bob"), (3, "alice")]
    );

    // A membership change makes version 1 stale for new messages, not for retries.
    ok(
        "add carol",
        store.chat_add_member(&app, "g", "carol", false).await,
    );
    assert!(matches!(
        store
            .chat_post(chat_message(&app, "g", "alice", "c3", 1))
            .await,
        Err(StoreError::Conflict(Conflict::StaleMemberVersion {
            current: 2
        }))
    ));
    assert!(matches!(
        ok(
            "retry after change",
            store
                .chat_post(chat_message(&app, "g", "bob", "c1", 1))
                .await
        ),
        Posted::Duplicate(ChatMessageRecord { seq: 2, .. })
    ));
    assert_eq!(
        post_new(store, chat_message(&app, "g", "carol", "c1", 2))
            .await
            .seq,
        4
    );
    ok(
        "remove bob",
        store.chat_remove_member(&app, "g", "bob").await,
    );
    assert!(matches!(
        store
            .chat_post(chat_message(&app, "g", "bob", "c9", 3))
            .await,
        Err(StoreError::Forbidden(Forbidden::NotAMember))
    ));
    assert_eq!(
        post_new(store, chat_message(&app, "g", "alice", "c3", 3))
            .await
            .seq,
        5
    );
    let channel = channel_of(store, &app, "g").await;
    assert_eq!((channel.last_seq, channel.member_version), (5, 3));
    // Another channel counts on its own.
    ok(
        "create h",
        store
            .chat_create_channel(group(&app, "h", "alice", &[]), NO_CHANNEL_LIMIT)
            .await,
    );
    assert_eq!(
        post_new(store, chat_message(&app, "h", "alice", "c1", 1))
            .await
            .seq,
        1
    );
}

/// 8 concurrent posters × 25 messages to one channel: seqs 1..=200, each exactly once, and
/// each poster's messages in its own order.
pub async fn chat_concurrent_posts(store: &dyn Store) {
    let app = app_id("chat concurrent");
    let mut events = ok("subscribe", store.chat_events().await);
    chat_concurrent_posts_on(&[store], "chat concurrent").await;
    // Events come in commit order, which is seq order.
    for seq in 1..=200 {
        assert_eq!(
            next_event(&mut events, &app).await,
            message_event(&app, "busy", seq)
        );
    }
}

async fn chat_concurrent_posts_on(handles: &[&dyn Store], label: &str) {
    const POSTERS: usize = 8;
    const EACH: usize = 25;
    let app = app_id(label);
    let posters: Vec<String> = (0..POSTERS).map(|i| format!("poster{i}")).collect();
    let refs: Vec<&str> = posters.iter().map(String::as_str).collect();
    ok(
        "create",
        handles[0]
            .chat_create_channel(group(&app, "busy", "admin", &refs), NO_CHANNEL_LIMIT)
            .await,
    );
    let results = join_all(posters.iter().enumerate().map(|(i, poster)| {
        let store = handles[i % handles.len()];
        let app = app.clone();
        async move {
            let mut seqs = Vec::new();
            for n in 0..EACH {
                let client_id = format!("m{n:02}");
                seqs.push(
                    post_new(store, chat_message(&app, "busy", poster, &client_id, 1))
                        .await
                        .seq,
                );
            }
            seqs
        }
    }))
    .await;
    let mut all: Vec<i64> = results.iter().flatten().copied().collect();
    for seqs in &results {
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
    all.sort_unstable();
    let expected: Vec<i64> = (1..=(POSTERS * EACH) as i64).collect();
    assert_eq!(all, expected);
    for store in handles {
        let history = ok(
            "history",
            store
                .chat_history(&app, "busy", HistoryCursor::After(0), 500)
                .await,
        );
        assert_eq!(history.iter().map(|m| m.seq).collect::<Vec<_>>(), expected);
        let distinct: HashSet<(&str, &str)> = history
            .iter()
            .map(|m| (m.sender.as_str(), m.client_id.as_str()))
            .collect();
        assert_eq!(distinct.len(), POSTERS * EACH);
        assert_eq!(
            channel_of(*store, &app, "busy").await.last_seq,
            (POSTERS * EACH) as i64
        );
    }
}

/// History pages: after (oldest first), before and latest (newest, returned ascending),
/// limits, the ends, an empty channel, and no mixing of channels.
pub async fn chat_history_cursors(store: &dyn Store) {
    let app = app_id("chat history");
    for id in ["g", "other", "empty"] {
        ok(
            "create",
            store
                .chat_create_channel(group(&app, id, "alice", &[]), NO_CHANNEL_LIMIT)
                .await,
        );
    }
    for cursor in [
        HistoryCursor::Latest,
        HistoryCursor::After(0),
        HistoryCursor::Before(10),
    ] {
        assert!(seqs(store, &app, "empty", cursor, 100).await.is_empty());
        assert!(seqs(store, &app, "missing", cursor, 100).await.is_empty());
    }
    for n in 1..=10 {
        post_new(store, chat_message(&app, "g", "alice", &format!("g{n}"), 1)).await;
        if n <= 3 {
            post_new(
                store,
                chat_message(&app, "other", "alice", &format!("o{n}"), 1),
            )
            .await;
        }
    }
    use HistoryCursor::{After, Before, Latest};
    let cases: Vec<(HistoryCursor, u32, Vec<i64>)> = vec![
        (After(0), 3, vec![1, 2, 3]),
        (After(3), 3, vec![4, 5, 6]),
        (After(9), 5, vec![10]),
        (After(10), 5, vec![]),
        (After(-5), 2, vec![1, 2]),
        (After(0), 100, (1..=10).collect()),
        (Before(5), 2, vec![3, 4]),
        (Before(3), 10, vec![1, 2]),
        (Before(1), 10, vec![]),
        (Before(11), 3, vec![8, 9, 10]),
        (Before(i64::MAX), 2, vec![9, 10]),
        (Latest, 4, vec![7, 8, 9, 10]),
        (Latest, 100, (1..=10).collect()),
        (Latest, 0, vec![]),
        (After(0), 0, vec![]),
    ];
    for (cursor, limit, expected) in cases {
        assert_eq!(
            seqs(store, &app, "g", cursor, limit).await,
            expected,
            "{cursor:?} limit {limit}"
        );
    }
    let other = ok(
        "other history",
        store.chat_history(&app, "other", Latest, 100).await,
    );
    assert_eq!(
        other
            .iter()
            .map(|m| (m.seq, m.client_id.as_str()))
            .collect::<Vec<_>>(),
        vec![(1, "o1"), (2, "o2"), (3, "o3")]
    );
    assert!(other.iter().all(|m| m.channel_id == "other"));
    assert!(seqs(store, &app_id("elsewhere"), "g", Latest, 100)
        .await
        .is_empty());
}

/// Events: a committed post gives `Message`, a membership change that changed something gives
/// `Members`, failed and no-op writes give nothing; every subscriber gets every event.
pub async fn chat_events_delivered(store: &dyn Store) {
    let app = app_id("chat events");
    let mut events = ok("subscribe", store.chat_events().await);
    let mut second = ok("subscribe again", store.chat_events().await);
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob"]), NO_CHANNEL_LIMIT)
            .await,
    );
    post_new(store, chat_message(&app, "g", "alice", "c1", 1)).await;
    assert_eq!(
        next_event(&mut events, &app).await,
        message_event(&app, "g", 1)
    );

    // Failed writes and no-ops commit nothing, so they announce nothing.
    let _ = store
        .chat_post(chat_message(&app, "g", "alice", "c2", 5))
        .await;
    let _ = store
        .chat_post(chat_message(&app, "g", "mallory", "c2", 1))
        .await;
    let _ = store
        .chat_post(chat_message(&app, "g", "alice", "c1", 1))
        .await;
    let _ = store.chat_remove_member(&app, "g", "nobody").await;
    ok(
        "no-op add",
        store.chat_add_member(&app, "g", "bob", false).await,
    );
    ok(
        "add carol",
        store.chat_add_member(&app, "g", "carol", false).await,
    );
    assert_eq!(
        next_event(&mut events, &app).await,
        members_event(&app, "g", 2)
    );
    ok(
        "remove carol",
        store.chat_remove_member(&app, "g", "carol").await,
    );
    assert_eq!(
        next_event(&mut events, &app).await,
        members_event(&app, "g", 3)
    );
    post_new(store, chat_message(&app, "g", "bob", "c1", 3)).await;
    assert_eq!(
        next_event(&mut events, &app).await,
        message_event(&app, "g", 2)
    );

    for expected in [
        message_event(&app, "g", 1),
        members_event(&app, "g", 2),
        members_event(&app, "g", 3),
        message_event(&app, "g", 2),
    ] {
        assert_eq!(next_event(&mut second, &app).await, expected);
    }
    // A subscription starts now: nothing of the past is replayed.
    let mut late = ok("late subscriber", store.chat_events().await);
    post_new(store, chat_message(&app, "g", "alice", "c9", 3)).await;
    assert_eq!(
        next_event(&mut late, &app).await,
        message_event(&app, "g", 3)
    );
    assert_eq!(
        next_event(&mut events, &app).await,
        message_event(&app, "g", 3)
    );
}

/// Two handles on one database: concurrent posts split between them still get seqs 1..=200
/// exactly once.
pub async fn chat_replicas_agree(a: &dyn Store, b: &dyn Store) {
    chat_concurrent_posts_on(&[a, b], "chat replicas").await;
}

/// Two replicas (backends whose events cross processes): what one writes, the other hears,
/// and so does the writer.
pub async fn chat_events_cross_replicas(a: &dyn Store, b: &dyn Store) {
    let app = app_id("chat events replicas");
    let mut at_a = ok("subscribe a", a.chat_events().await);
    let mut at_b = ok("subscribe b", b.chat_events().await);
    ok(
        "create",
        a.chat_create_channel(group(&app, "g", "alice", &["bob"]), NO_CHANNEL_LIMIT)
            .await,
    );
    post_new(a, chat_message(&app, "g", "alice", "c1", 1)).await;
    assert_eq!(
        next_event(&mut at_b, &app).await,
        message_event(&app, "g", 1)
    );
    assert_eq!(
        next_event(&mut at_a, &app).await,
        message_event(&app, "g", 1)
    );
    ok(
        "add on b",
        b.chat_add_member(&app, "g", "carol", false).await,
    );
    assert_eq!(
        next_event(&mut at_a, &app).await,
        members_event(&app, "g", 2)
    );
    assert_eq!(
        next_event(&mut at_b, &app).await,
        members_event(&app, "g", 2)
    );
    // A rolled-back post on a notifies nobody; the next committed one arrives next.
    let _ = a.chat_post(chat_message(&app, "g", "alice", "c2", 1)).await;
    post_new(b, chat_message(&app, "g", "bob", "c1", 2)).await;
    assert_eq!(
        next_event(&mut at_a, &app).await,
        message_event(&app, "g", 2)
    );
    assert_eq!(
        next_event(&mut at_b, &app).await,
        message_event(&app, "g", 2)
    );
}

/// Concurrent membership changes keep the rules: 20 joins racing for the last 5 places give
/// exactly 5 members more and one version per change; two admins leaving at once while others
/// stay: one of them must remain.
pub async fn chat_concurrent_membership(store: &dyn Store) {
    let app = app_id("chat concurrent membership");
    let others: Vec<String> = (1..MAX_MEMBERS - 5)
        .map(|i| format!("user{i:04}"))
        .collect();
    let refs: Vec<&str> = others.iter().map(String::as_str).collect();
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "almost-full", "alice", &refs), NO_CHANNEL_LIMIT)
            .await,
    );
    let joiners: Vec<String> = (0..20).map(|i| format!("joiner{i:02}")).collect();
    let results = join_all(
        joiners
            .iter()
            .map(|j| store.chat_add_member(&app, "almost-full", j, false)),
    )
    .await;
    let mut versions = Vec::new();
    for result in results {
        match result {
            Ok(channel) => versions.push(channel.member_version),
            Err(StoreError::Conflict(Conflict::ChannelFull)) => {}
            Err(e) => panic!("concurrent join: {e:?}"),
        }
    }
    versions.sort_unstable();
    assert_eq!(versions, vec![2, 3, 4, 5, 6]);
    let channel = channel_of(store, &app, "almost-full").await;
    assert_eq!(channel.members.len(), MAX_MEMBERS);
    assert_eq!(channel.member_version, 6);

    let mut two_admins = group(&app, "two-admins", "alice", &["carol"]);
    two_admins.admins.push(id("bob"));
    ok(
        "create",
        store
            .chat_create_channel(two_admins, NO_CHANNEL_LIMIT)
            .await,
    );
    let results =
        join_all(["alice", "bob"].map(|admin| store.chat_remove_member(&app, "two-admins", admin)))
            .await;
    let left = results
        .iter()
        .filter(|r| match r {
            Ok(_) => true,
            Err(StoreError::Conflict(Conflict::LastAdmin)) => false,
            Err(e) => panic!("concurrent leave: {e:?}"),
        })
        .count();
    assert_eq!(left, 1, "{results:?}");
    let channel = channel_of(store, &app, "two-admins").await;
    assert_eq!(channel.admins.len(), 1);
    assert_eq!(channel.members.len(), 2);
}

fn read_event(app_id: &str, channel_id: &str, identity: &str, seq: i64) -> ChatEvent {
    ChatEvent::Read {
        app_id: app_id.to_owned(),
        channel_id: channel_id.to_owned(),
        identity: identity.to_owned(),
        seq,
    }
}

fn typing_event(app_id: &str, channel_id: &str, identity: &str) -> ChatEvent {
    ChatEvent::Typing {
        app_id: app_id.to_owned(),
        channel_id: channel_id.to_owned(),
        identity: identity.to_owned(),
    }
}

/// Every member's horizon, by identity, as the store reports the channel.
async fn horizons(store: &dyn Store, app_id: &str, channel_id: &str) -> Vec<(String, i64)> {
    channel_of(store, app_id, channel_id)
        .await
        .read
        .into_iter()
        .map(|(member, seq)| (member.into_string(), seq))
        .collect()
}

fn pairs(items: &[(&str, i64)]) -> Vec<(String, i64)> {
    items.iter().map(|(m, s)| ((*m).to_owned(), *s)).collect()
}

/// Read horizons: 0 at creation, moved by posts (the sender's) and by marks, never back; a mark
/// beyond the newest message, by a non-member or in no channel is refused; members added later
/// start at the newest message; only moves are announced; the horizons come with the channel
/// and the channel list.
pub async fn chat_read_state(store: &dyn Store) {
    let app = app_id("chat read state");
    let mut events = ok("subscribe", store.chat_events().await);
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob"]), NO_CHANNEL_LIMIT)
            .await,
    );
    assert_eq!(
        horizons(store, &app, "g").await,
        pairs(&[("alice", 0), ("bob", 0)])
    );
    assert_eq!(
        ok("mark 0", store.chat_mark_read(&app, "g", "bob", 0).await),
        ReadMark {
            seq: 0,
            last_seq: 0,
            moved: false
        }
    );
    match store.chat_mark_read(&app, "g", "bob", 1).await {
        Err(StoreError::Conflict(Conflict::ReadBeyondLastSeq { last_seq: 0 })) => {}
        other => panic!("mark beyond the last seq: {other:?}"),
    }
    for client_id in ["c1", "c2", "c3"] {
        post_new(store, chat_message(&app, "g", "alice", client_id, 1)).await;
    }
    assert_eq!(
        horizons(store, &app, "g").await,
        pairs(&[("alice", 3), ("bob", 0)]),
        "posting moves the sender's horizon"
    );
    assert_eq!(
        ok("mark 2", store.chat_mark_read(&app, "g", "bob", 2).await),
        ReadMark {
            seq: 2,
            last_seq: 3,
            moved: true
        }
    );
    assert_eq!(
        ok("mark 1", store.chat_mark_read(&app, "g", "bob", 1).await),
        ReadMark {
            seq: 2,
            last_seq: 3,
            moved: false
        },
        "a horizon never moves back"
    );
    assert_eq!(
        horizons(store, &app, "g").await,
        pairs(&[("alice", 3), ("bob", 2)])
    );
    match store.chat_mark_read(&app, "g", "mallory", 1).await {
        Err(StoreError::Forbidden(Forbidden::NotAMember)) => {}
        other => panic!("mark by a non-member: {other:?}"),
    }
    match store.chat_mark_read(&app, "nowhere", "bob", 0).await {
        Err(StoreError::NotFound) => {}
        other => panic!("mark in no channel: {other:?}"),
    }
    match store
        .chat_mark_read(&app_id("chat read other app"), "g", "bob", 0)
        .await
    {
        Err(StoreError::NotFound) => {}
        other => panic!("mark in another app: {other:?}"),
    }
    // Three posts, then exactly one move: the no-op and refused marks announced nothing.
    for seq in 1..=3 {
        assert_eq!(
            next_event(&mut events, &app).await,
            message_event(&app, "g", seq)
        );
    }
    assert_eq!(
        next_event(&mut events, &app).await,
        read_event(&app, "g", "bob", 2)
    );

    // A member added later starts at the newest message; one who leaves and comes back too.
    ok(
        "add carol",
        store.chat_add_member(&app, "g", "carol", false).await,
    );
    ok(
        "bob leaves",
        store.chat_remove_member(&app, "g", "bob").await,
    );
    post_new(store, chat_message(&app, "g", "alice", "c4", 3)).await;
    ok(
        "bob back",
        store.chat_add_member(&app, "g", "bob", false).await,
    );
    assert_eq!(
        horizons(store, &app, "g").await,
        pairs(&[("alice", 4), ("bob", 4), ("carol", 3)])
    );
    let listed = ok(
        "channels of carol",
        store
            .chat_channels_of(&app, "carol", None, ALL_CHANNELS)
            .await,
    );
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].read_seq("carol"), Some(3));
    assert_eq!(listed[0].read_seq("alice"), Some(4));
    assert_eq!(listed[0].read_seq("mallory"), None);
    assert_eq!(listed[0].last_seq - 3, 1, "carol has one unread message");
}

/// Typing: announced to every subscriber, and nothing is written.
pub async fn chat_typing_is_announced_not_stored(store: &dyn Store) {
    let app = app_id("chat typing");
    let mut events = ok("subscribe", store.chat_events().await);
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob"]), NO_CHANNEL_LIMIT)
            .await,
    );
    let before = channel_of(store, &app, "g").await;
    ok("typing", store.chat_typing(&app, "g", "bob").await);
    assert_eq!(
        next_event(&mut events, &app).await,
        typing_event(&app, "g", "bob")
    );
    assert_eq!(channel_of(store, &app, "g").await, before);
    assert!(seqs(store, &app, "g", HistoryCursor::Latest, 10)
        .await
        .is_empty());
}

/// Two replicas: read horizons and typing written on one are heard on both.
pub async fn chat_read_and_typing_cross_replicas(a: &dyn Store, b: &dyn Store) {
    let app = app_id("chat read replicas");
    let mut at_a = ok("subscribe a", a.chat_events().await);
    ok(
        "create",
        a.chat_create_channel(group(&app, "g", "alice", &["bob"]), NO_CHANNEL_LIMIT)
            .await,
    );
    post_new(a, chat_message(&app, "g", "alice", "c1", 1)).await;
    assert_eq!(
        next_event(&mut at_a, &app).await,
        message_event(&app, "g", 1)
    );
    ok("mark on b", b.chat_mark_read(&app, "g", "bob", 1).await);
    assert_eq!(
        next_event(&mut at_a, &app).await,
        read_event(&app, "g", "bob", 1)
    );
    ok("typing on b", b.chat_typing(&app, "g", "bob").await);
    assert_eq!(
        next_event(&mut at_a, &app).await,
        typing_event(&app, "g", "bob")
    );
    assert_eq!(
        horizons(a, &app, "g").await,
        pairs(&[("alice", 1), ("bob", 1)])
    );
}
