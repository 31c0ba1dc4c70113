//! Conformance of chat edits and deletes: who may, what the history shows, what a tombstone
//! keeps, and the events they emit.

use super::chat::{chat_message, group, next_event, post_new};
use super::{app_id, id, ok};
use crate::store::{
    ChatEvent, ChatMessageRecord, Conflict, Forbidden, HistoryCursor, MessageEdit, Posted, Store,
    StoreError,
};

fn edit_of(app_id: &str, seq: i64, editor: &str, text: &str, member_version: i64) -> MessageEdit {
    MessageEdit {
        app_id: app_id.to_owned(),
        channel_id: id("g"),
        seq,
        editor: id(editor),
        ciphertext: format!("edited ciphertext {text}").into_bytes(),
        member_version,
        edited_at_ms: 1_800_000_100_000,
        kt_head: Some(format!("{{\"epoch\":\"{text}\"}}")),
    }
}

async fn history(store: &dyn Store, app_id: &str) -> Vec<ChatMessageRecord> {
    ok(
        "history",
        store
            .chat_history(app_id, "g", HistoryCursor::After(0), 100)
            .await,
    )
}

fn revised(app_id: &str, seq: i64) -> ChatEvent {
    ChatEvent::Revised {
        app_id: app_id.to_owned(),
        channel_id: "g".to_owned(),
        seq,
    }
}

fn expect_err<T: std::fmt::Debug>(step: &str, result: Result<T, StoreError>, expected: StoreError) {
    match result {
        Err(e) if e == expected => {}
        other => panic!("{step}: expected {expected:?}, got {other:?}"),
    }
}

/// Edits: only the sender, only for a current membership, never for a missing seq or a
/// tombstone; the history then shows the latest version, when it was edited, and the
/// message's original seq, time and client id; each edit emits `Revised`.
pub async fn chat_edit_rules(store: &dyn Store) {
    let app = app_id("edits");
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob"]), u32::MAX)
            .await,
    );
    let mut events = ok("events", store.chat_events().await);
    let first = post_new(store, chat_message(&app, "g", "alice", "c1", 1)).await;
    post_new(store, chat_message(&app, "g", "bob", "c2", 1)).await;
    for seq in [1, 2] {
        assert_eq!(
            next_event(&mut events, &app).await,
            super::chat::message_event(&app, "g", seq)
        );
    }

    expect_err(
        "bob edits alice's message",
        store
            .chat_edit_message(edit_of(&app, 1, "bob", "x", 1))
            .await,
        StoreError::Forbidden(Forbidden::NotTheSender),
    );
    expect_err(
        "an outsider edits",
        store
            .chat_edit_message(edit_of(&app, 1, "mallory", "x", 1))
            .await,
        StoreError::Forbidden(Forbidden::NotAMember),
    );
    for seq in [0, -1, 3] {
        expect_err(
            &format!("edit of seq {seq}"),
            store
                .chat_edit_message(edit_of(&app, seq, "alice", "x", 1))
                .await,
            StoreError::Conflict(Conflict::NoSuchMessage),
        );
    }
    let mut elsewhere = edit_of(&app, 1, "alice", "x", 1);
    elsewhere.channel_id = id("nowhere");
    expect_err(
        "edit in no channel",
        store.chat_edit_message(elsewhere).await,
        StoreError::NotFound,
    );
    ok(
        "add carol",
        store.chat_add_member(&app, "g", "carol", false).await,
    );
    assert!(matches!(
        next_event(&mut events, &app).await,
        ChatEvent::Members { .. }
    ));
    expect_err(
        "edit for the old membership",
        store
            .chat_edit_message(edit_of(&app, 1, "alice", "x", 1))
            .await,
        StoreError::Conflict(Conflict::StaleMemberVersion { current: 2 }),
    );
    // Nothing was changed by the refusals.
    assert_eq!(history(store, &app).await.first(), Some(&first));

    let edited = ok(
        "alice edits",
        store
            .chat_edit_message(edit_of(&app, 1, "alice", "v2", 2))
            .await,
    );
    let expected = ChatMessageRecord {
        ciphertext: b"edited ciphertext v2".to_vec(),
        member_version: 2,
        edited_at_ms: Some(1_800_000_100_000),
        kt_head: Some(r#"{"epoch":"v2"}"#.to_owned()),
        ..first.clone()
    };
    assert_eq!(edited, expected);
    assert_eq!(next_event(&mut events, &app).await, revised(&app, 1));
    let mut again = edit_of(&app, 1, "alice", "v3", 2);
    again.edited_at_ms += 1;
    ok("alice edits again", store.chat_edit_message(again).await);
    assert_eq!(next_event(&mut events, &app).await, revised(&app, 1));
    let page = history(store, &app).await;
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2]);
    let latest = &page[0];
    assert_eq!(latest.ciphertext, b"edited ciphertext v3");
    assert_eq!(latest.edited_at_ms, Some(1_800_000_100_001));
    assert_eq!(
        (latest.sent_at_ms, &latest.client_id, &latest.sender),
        (first.sent_at_ms, &first.client_id, &first.sender)
    );
    assert_eq!(latest.deleted_at_ms, None);
    // An edit is no new message: the channel's newest seq did not move.
    let channel = ok("channel", store.chat_channel(&app, "g").await);
    assert_eq!(channel.map(|c| c.last_seq), Some(2));
}

/// Deletes: the sender or an admin, nobody else; the tombstone keeps seq, sender and time but
/// no ciphertext (also for a retried post of its client id), cannot be edited, and deleting it
/// again changes nothing and emits nothing.
pub async fn chat_delete_rules(store: &dyn Store) {
    let app = app_id("deletes");
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &["bob", "carol"]), u32::MAX)
            .await,
    );
    let mut events = ok("events", store.chat_events().await);
    let by_bob = post_new(store, chat_message(&app, "g", "bob", "b1", 1)).await;
    post_new(store, chat_message(&app, "g", "carol", "c1", 1)).await;
    post_new(store, chat_message(&app, "g", "alice", "a1", 1)).await;
    for seq in 1..=3 {
        assert_eq!(
            next_event(&mut events, &app).await,
            super::chat::message_event(&app, "g", seq)
        );
    }

    expect_err(
        "carol deletes bob's message",
        store
            .chat_delete_message(&app, "g", 1, "carol", 1_800_000_200_000)
            .await,
        StoreError::Forbidden(Forbidden::NotTheSenderOrAdmin),
    );
    expect_err(
        "an outsider deletes",
        store
            .chat_delete_message(&app, "g", 1, "mallory", 1_800_000_200_000)
            .await,
        StoreError::Forbidden(Forbidden::NotAMember),
    );
    expect_err(
        "delete beyond the last seq",
        store
            .chat_delete_message(&app, "g", 4, "alice", 1_800_000_200_000)
            .await,
        StoreError::Conflict(Conflict::NoSuchMessage),
    );
    expect_err(
        "delete in no channel",
        store
            .chat_delete_message(&app, "nowhere", 1, "alice", 1_800_000_200_000)
            .await,
        StoreError::NotFound,
    );

    let tombstone = ok(
        "bob deletes his message",
        store
            .chat_delete_message(&app, "g", 1, "bob", 1_800_000_200_000)
            .await,
    );
    let expected = ChatMessageRecord {
        ciphertext: Vec::new(),
        kt_head: None,
        deleted_at_ms: Some(1_800_000_200_000),
        deleted_by: Some("bob".to_owned()),
        ..by_bob.clone()
    };
    assert_eq!(tombstone, expected);
    assert_eq!(next_event(&mut events, &app).await, revised(&app, 1));
    let admin_deleted = ok(
        "alice (admin) deletes carol's message",
        store
            .chat_delete_message(&app, "g", 2, "alice", 1_800_000_200_001)
            .await,
    );
    assert_eq!(admin_deleted.deleted_by.as_deref(), Some("alice"));
    assert!(admin_deleted.ciphertext.is_empty());
    assert_eq!(next_event(&mut events, &app).await, revised(&app, 2));

    // Again: the same tombstone, no event (the next event is the post below).
    assert_eq!(
        ok(
            "delete again",
            store
                .chat_delete_message(&app, "g", 1, "bob", 1_800_000_300_000)
                .await
        ),
        expected
    );
    expect_err(
        "edit a tombstone",
        store
            .chat_edit_message(edit_of(&app, 1, "bob", "back", 1))
            .await,
        StoreError::Conflict(Conflict::MessageDeleted),
    );
    // The row itself holds no ciphertext: a retried post of its client id gets the tombstone.
    assert_eq!(
        ok(
            "retry of the deleted post",
            store
                .chat_post(chat_message(&app, "g", "bob", "b1", 1))
                .await
        ),
        Posted::Duplicate(expected.clone())
    );
    post_new(store, chat_message(&app, "g", "bob", "b2", 1)).await;
    assert_eq!(
        next_event(&mut events, &app).await,
        super::chat::message_event(&app, "g", 4)
    );

    // History keeps every seq; the tombstones come without ciphertext.
    let page = history(store, &app).await;
    assert_eq!(page.iter().map(|m| m.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    assert_eq!(page[0], expected);
    assert!(page[1].ciphertext.is_empty() && page[1].deleted_at_ms.is_some());
    assert!(!page[2].ciphertext.is_empty() && page[2].deleted_at_ms.is_none());
}
