//! Conformance of chat blobs (attachments): chunks, the per-blob limit, the per-application
//! quota, membership, attaching to a post, deletion with a message and garbage collection.

use futures_util::future::join_all;

use super::chat::{chat_message, group, post_new};
use super::{app_id, id, ok};
use crate::store::{
    BlobLimits, BlobRecord, Conflict, Forbidden, NewBlob, Posted, Store, StoreError,
};

/// More blobs than one garbage-collection batch deletes.
const GC_MANY: u64 = 130;

/// No limit worth the name.
const ROOMY: BlobLimits = BlobLimits {
    max_blob_bytes: 1 << 40,
    app_quota_bytes: 1 << 40,
};

fn new_blob(app_id: &str, channel: &str, uploader: &str, label: &str, at: i64) -> NewBlob {
    NewBlob {
        app_id: app_id.to_owned(),
        id: super::hex_id(&format!("blob {app_id} {label}"), 32),
        channel_id: id(channel),
        uploader: id(uploader),
        created_at_ms: at,
    }
}

/// Creates a blob, appends `chunks`, finishes it; returns its id.
async fn uploaded(store: &dyn Store, blob: NewBlob, chunks: &[&[u8]]) -> String {
    let (app, blob_id) = (blob.app_id.clone(), blob.id.clone());
    ok("create blob", store.chat_blob_create(blob).await);
    for chunk in chunks {
        ok(
            "append",
            store.chat_blob_append(&app, &blob_id, chunk, ROOMY).await,
        );
    }
    ok("finish", store.chat_blob_finish(&app, &blob_id).await);
    blob_id
}

fn some<T>(what: &str, value: Option<T>) -> T {
    match value {
        Some(value) => value,
        None => panic!("{what}: missing"),
    }
}

async fn record(store: &dyn Store, app: &str, blob_id: &str) -> Option<BlobRecord> {
    ok("read blob", store.chat_blob(app, blob_id).await)
}

fn assert_refused<T: std::fmt::Debug>(step: &str, result: Result<T, StoreError>, want: StoreError) {
    match result {
        Err(e) if e == want => {}
        other => panic!("{step}: expected {want:?}, got {other:?}"),
    }
}

/// Chunks come back in order and byte for byte, the record tracks size, chunk count and
/// completion, a finished blob takes no more chunks, and deleting gives the bytes back.
/// Blobs start only in existing channels, by members.
pub async fn chat_blobs_chunks_and_membership(store: &dyn Store) {
    let app = app_id("blob chunks");
    ok(
        "create channel",
        store
            .chat_create_channel(group(&app, "team", "alice", &["bob"]), u32::MAX)
            .await,
    );
    assert_refused(
        "no such channel",
        store
            .chat_blob_create(new_blob(&app, "nowhere", "alice", "x", 1))
            .await,
        StoreError::NotFound,
    );
    assert_refused(
        "not a member",
        store
            .chat_blob_create(new_blob(&app, "team", "mallory", "m", 1))
            .await,
        StoreError::Forbidden(Forbidden::NotAMember),
    );
    let blob = new_blob(&app, "team", "bob", "b", 1_800_000_000_000);
    let blob_id = blob.id.clone();
    ok("create", store.chat_blob_create(blob.clone()).await);
    assert_refused(
        "same id again",
        store.chat_blob_create(blob).await,
        StoreError::Conflict(Conflict::BlobUnusable),
    );
    let chunks: [&[u8]; 3] = [b"\x00first\xff", b"", b"third \x00 chunk"];
    let mut size = 0;
    for chunk in chunks {
        size += chunk.len() as u64;
        assert_eq!(
            ok(
                "append",
                store.chat_blob_append(&app, &blob_id, chunk, ROOMY).await
            ),
            size
        );
    }
    let before = some("blob stored", record(store, &app, &blob_id).await);
    assert!(!before.complete);
    assert_eq!((before.size, before.chunks), (size as i64, 3));
    let done = ok("finish", store.chat_blob_finish(&app, &blob_id).await);
    assert!(done.complete);
    assert_eq!(done.uploader.as_str(), "bob");
    assert_eq!(done.channel_id.as_str(), "team");
    assert_eq!(done.message_seq, None);
    assert_eq!(done.created_at_ms, 1_800_000_000_000);
    ok("finish again", store.chat_blob_finish(&app, &blob_id).await);
    assert_refused(
        "append after finish",
        store.chat_blob_append(&app, &blob_id, b"more", ROOMY).await,
        StoreError::Conflict(Conflict::BlobComplete),
    );
    for (index, chunk) in chunks.iter().enumerate() {
        let stored = ok(
            "chunk",
            store.chat_blob_chunk(&app, &blob_id, index as i64).await,
        );
        assert_eq!(stored.as_deref(), Some(*chunk), "chunk {index}");
    }
    assert_eq!(
        ok(
            "past the end",
            store.chat_blob_chunk(&app, &blob_id, 3).await
        ),
        None
    );
    // Applications are isolated.
    let other = app_id("blob chunks other");
    assert_eq!(record(store, &other, &blob_id).await, None);
    assert_eq!(
        ok(
            "other app",
            store.chat_blob_chunk(&other, &blob_id, 0).await
        ),
        None
    );
    assert_eq!(ok("usage", store.chat_blob_usage(&app).await), size);
    assert!(ok("delete", store.chat_blob_delete(&app, &blob_id).await));
    assert!(!ok(
        "delete again",
        store.chat_blob_delete(&app, &blob_id).await
    ));
    assert_eq!(record(store, &app, &blob_id).await, None);
    assert_eq!(
        ok(
            "chunk of deleted",
            store.chat_blob_chunk(&app, &blob_id, 0).await
        ),
        None
    );
    assert_eq!(
        ok("usage after delete", store.chat_blob_usage(&app).await),
        0
    );
    assert_refused(
        "append to deleted",
        store.chat_blob_append(&app, &blob_id, b"x", ROOMY).await,
        StoreError::NotFound,
    );
}

/// A chunk that would pass the per-blob limit is refused and changes nothing; exactly the
/// limit is allowed.
pub async fn chat_blobs_size_limit(store: &dyn Store) {
    let app = app_id("blob size");
    ok(
        "create channel",
        store
            .chat_create_channel(group(&app, "team", "alice", &[]), u32::MAX)
            .await,
    );
    let limits = BlobLimits {
        max_blob_bytes: 10,
        app_quota_bytes: 1000,
    };
    let blob = new_blob(&app, "team", "alice", "a", 1);
    let blob_id = blob.id.clone();
    ok("create", store.chat_blob_create(blob).await);
    ok(
        "6 bytes",
        store
            .chat_blob_append(&app, &blob_id, b"123456", limits)
            .await,
    );
    assert_refused(
        "5 more",
        store
            .chat_blob_append(&app, &blob_id, b"12345", limits)
            .await,
        StoreError::Conflict(Conflict::BlobTooLarge { limit: 10 }),
    );
    let after = some("blob stored", record(store, &app, &blob_id).await);
    assert_eq!((after.size, after.chunks), (6, 1));
    assert_eq!(ok("usage", store.chat_blob_usage(&app).await), 6);
    assert_eq!(
        ok(
            "exactly the limit",
            store
                .chat_blob_append(&app, &blob_id, b"1234", limits)
                .await
        ),
        10
    );
}

/// The application's blobs never hold more than its quota, however many uploads run at once;
/// deleting makes room again; other applications have their own quota.
pub async fn chat_blobs_quota(store: &dyn Store) {
    let app = app_id("blob quota");
    let other = app_id("blob quota other");
    for a in [&app, &other] {
        ok(
            "create channel",
            store
                .chat_create_channel(group(a, "team", "alice", &[]), u32::MAX)
                .await,
        );
    }
    let limits = BlobLimits {
        max_blob_bytes: 1000,
        app_quota_bytes: 100,
    };
    // Twelve uploads of 10-byte chunks race for 100 bytes: exactly ten chunks fit.
    let blobs: Vec<NewBlob> = (0..12)
        .map(|n| new_blob(&app, "team", "alice", &format!("q{n}"), 1))
        .collect();
    for blob in &blobs {
        ok("create", store.chat_blob_create(blob.clone()).await);
    }
    let results = join_all(
        blobs
            .iter()
            .map(|b| store.chat_blob_append(&app, &b.id, &[7u8; 10], limits)),
    )
    .await;
    let mut stored = 0;
    for result in results {
        match result {
            Ok(_) => stored += 1,
            Err(StoreError::Conflict(Conflict::BlobQuotaExceeded { quota: 100 })) => {}
            other => panic!("racing append: {other:?}"),
        }
    }
    assert_eq!(stored, 10);
    assert_eq!(ok("usage", store.chat_blob_usage(&app).await), 100);
    let mut sizes = 0;
    for blob in &blobs {
        sizes += some("blob", record(store, &app, &blob.id).await).size;
    }
    assert_eq!(sizes, 100, "refused chunks were not stored");
    // Another application is not affected.
    let theirs = new_blob(&other, "team", "alice", "o", 1);
    let theirs_id = theirs.id.clone();
    ok("create other", store.chat_blob_create(theirs).await);
    ok(
        "other app",
        store
            .chat_blob_append(&other, &theirs_id, &[1u8; 100], limits)
            .await,
    );
    // Deleting a blob that holds a chunk gives its bytes back, and makes room again.
    let mut full = None;
    let mut empty = None;
    for blob in &blobs {
        match some("blob", record(store, &app, &blob.id).await).size {
            0 => empty = Some(blob.id.clone()),
            _ => full = Some(blob.id.clone()),
        }
    }
    let (full, empty) = (some("a stored chunk", full), some("a refused one", empty));
    ok("delete", store.chat_blob_delete(&app, &full).await);
    assert_eq!(
        ok("usage after delete", store.chat_blob_usage(&app).await),
        90
    );
    assert_eq!(
        ok(
            "room again",
            store
                .chat_blob_append(&app, &empty, &[7u8; 10], limits)
                .await
        ),
        10
    );
    assert_refused(
        "full again",
        store
            .chat_blob_append(&app, &empty, &[7u8; 1], limits)
            .await,
        StoreError::Conflict(Conflict::BlobQuotaExceeded { quota: 100 }),
    );
}

/// A post names blobs: only complete uploads of the sender to that channel that no other
/// message names; a refused post stores nothing (no message, no `seq`, no blob taken).
pub async fn chat_blobs_attach_rules(store: &dyn Store) {
    let app = app_id("blob attach");
    for channel in ["team", "other"] {
        ok(
            "create channel",
            store
                .chat_create_channel(group(&app, channel, "alice", &["bob"]), u32::MAX)
                .await,
        );
    }
    let mine = uploaded(
        store,
        new_blob(&app, "team", "alice", "mine", 1),
        &[&b"a"[..]],
    )
    .await;
    let bobs = uploaded(
        store,
        new_blob(&app, "team", "bob", "bobs", 1),
        &[&b"b"[..]],
    )
    .await;
    let elsewhere = uploaded(
        store,
        new_blob(&app, "other", "alice", "else", 1),
        &[&b"c"[..]],
    )
    .await;
    let unfinished = new_blob(&app, "team", "alice", "unfinished", 1);
    let unfinished_id = unfinished.id.clone();
    ok("create", store.chat_blob_create(unfinished).await);
    let unknown = super::hex_id("no such blob", 32);
    for (n, (label, blobs)) in [
        ("another sender's", vec![bobs.clone()]),
        ("another channel's", vec![elsewhere.clone()]),
        ("unfinished", vec![unfinished_id.clone()]),
        ("unknown", vec![unknown]),
        ("one good, one bad", vec![mine.clone(), bobs.clone()]),
        ("the same twice", vec![mine.clone(), mine.clone()]),
    ]
    .into_iter()
    .enumerate()
    {
        let mut message = chat_message(&app, "team", "alice", &format!("refused-{n}"), 1);
        message.blobs = blobs;
        assert_refused(
            label,
            store.chat_post(message).await,
            StoreError::Conflict(Conflict::BlobUnusable),
        );
    }
    let channel = some(
        "channel",
        ok("channel", store.chat_channel(&app, "team").await),
    );
    assert_eq!(channel.last_seq, 0, "refused posts took no seq");
    assert_eq!(
        some("blob", record(store, &app, &mine).await).message_seq,
        None
    );

    let mut message = chat_message(&app, "team", "alice", "with-file", 1);
    message.blobs = vec![mine.clone()];
    let stored = post_new(store, message.clone()).await;
    assert_eq!(stored.seq, 1);
    assert_eq!(
        some("blob", record(store, &app, &mine).await).message_seq,
        Some(1)
    );
    // A retry of the same post is the stored message, not a second claim on the blob.
    match ok("retry", store.chat_post(message).await) {
        Posted::Duplicate(again) => assert_eq!(again.seq, 1),
        other => panic!("retry: {other:?}"),
    }
    let mut second = chat_message(&app, "team", "alice", "again", 1);
    second.blobs = vec![mine.clone()];
    assert_refused(
        "named by another message",
        store.chat_post(second).await,
        StoreError::Conflict(Conflict::BlobUnusable),
    );
    let mut bob_post = chat_message(&app, "team", "bob", "bob-file", 1);
    bob_post.blobs = vec![bobs.clone()];
    assert_eq!(post_new(store, bob_post).await.seq, 2);
}

/// Deleting a message's blobs removes exactly those (chunks and quota included).
pub async fn chat_blobs_deleted_with_message(store: &dyn Store) {
    let app = app_id("blob delete");
    ok(
        "create channel",
        store
            .chat_create_channel(group(&app, "team", "alice", &[]), u32::MAX)
            .await,
    );
    let first = uploaded(
        store,
        new_blob(&app, "team", "alice", "1a", 1),
        &[&b"12"[..], &b"34"[..]],
    )
    .await;
    let second = uploaded(
        store,
        new_blob(&app, "team", "alice", "1b", 1),
        &[&b"5"[..]],
    )
    .await;
    let kept = uploaded(
        store,
        new_blob(&app, "team", "alice", "2", 1),
        &[&b"678"[..]],
    )
    .await;
    let mut one = chat_message(&app, "team", "alice", "m1", 1);
    one.blobs = vec![first.clone(), second.clone()];
    let one = post_new(store, one).await;
    let mut two = chat_message(&app, "team", "alice", "m2", 1);
    two.blobs = vec![kept.clone()];
    let two = post_new(store, two).await;
    assert_eq!(ok("usage", store.chat_blob_usage(&app).await), 8);
    assert_eq!(
        ok(
            "delete message blobs",
            store.chat_delete_message_blobs(&app, "team", one.seq).await
        ),
        2
    );
    for gone in [&first, &second] {
        assert_eq!(record(store, &app, gone).await, None);
        assert_eq!(
            ok("chunk", store.chat_blob_chunk(&app, gone, 0).await),
            None
        );
    }
    assert!(record(store, &app, &kept).await.is_some());
    assert_eq!(
        ok("kept chunk", store.chat_blob_chunk(&app, &kept, 0).await).as_deref(),
        Some(&b"678"[..])
    );
    assert_eq!(ok("usage after", store.chat_blob_usage(&app).await), 3);
    assert_eq!(
        ok(
            "again",
            store.chat_delete_message_blobs(&app, "team", one.seq).await
        ),
        0
    );
    assert_eq!(
        ok(
            "another app",
            store
                .chat_delete_message_blobs(&app_id("blob delete other"), "team", 2)
                .await
        ),
        0
    );
    assert!(record(store, &app, &kept).await.is_some());

    // Deleting the message itself (the one path every deletion takes) takes its files along.
    ok(
        "delete message",
        store
            .chat_delete_message(&app, "team", two.seq, "alice", 1_000)
            .await,
    );
    assert_eq!(record(store, &app, &kept).await, None);
    assert_eq!(
        ok("deleted chunk", store.chat_blob_chunk(&app, &kept, 0).await),
        None
    );
    assert_eq!(ok("usage at the end", store.chat_blob_usage(&app).await), 0);
}

/// Garbage collection deletes blobs no message names once they are older than the cutoff,
/// whether finished or abandoned, in every application, and keeps the rest.
pub async fn chat_blobs_garbage_collected(store: &dyn Store) {
    let app = app_id("blob gc");
    let other = app_id("blob gc other");
    for a in [&app, &other] {
        ok(
            "create channel",
            store
                .chat_create_channel(group(a, "team", "alice", &[]), u32::MAX)
                .await,
        );
    }
    let old_unposted = uploaded(
        store,
        new_blob(&app, "team", "alice", "old", 100),
        &[&b"aa"[..]],
    )
    .await;
    let abandoned = new_blob(&other, "team", "alice", "abandoned", 100);
    let abandoned_id = abandoned.id.clone();
    ok("create", store.chat_blob_create(abandoned).await);
    ok(
        "append",
        store
            .chat_blob_append(&other, &abandoned_id, b"bbb", ROOMY)
            .await,
    );
    let old_posted = uploaded(
        store,
        new_blob(&app, "team", "alice", "posted", 100),
        &[&b"c"[..]],
    )
    .await;
    let recent = uploaded(
        store,
        new_blob(&app, "team", "alice", "recent", 900),
        &[&b"d"[..]],
    )
    .await;
    let mut message = chat_message(&app, "team", "alice", "m", 1);
    message.blobs = vec![old_posted.clone()];
    post_new(store, message).await;

    assert_eq!(ok("gc", store.chat_blob_gc(500).await), 2);
    assert_eq!(record(store, &app, &old_unposted).await, None);
    assert_eq!(record(store, &other, &abandoned_id).await, None);
    assert!(record(store, &app, &old_posted).await.is_some());
    assert!(record(store, &app, &recent).await.is_some());
    assert_eq!(ok("usage", store.chat_blob_usage(&app).await), 2);
    assert_eq!(ok("other usage", store.chat_blob_usage(&other).await), 0);
    assert_eq!(ok("gc again", store.chat_blob_gc(500).await), 0);
    // More than one batch.
    for n in 0..(GC_MANY) {
        uploaded(
            store,
            new_blob(&app, "team", "alice", &format!("many {n}"), 200),
            &[&b"x"[..]],
        )
        .await;
    }
    assert_eq!(ok("gc many", store.chat_blob_gc(500).await), GC_MANY);
    assert!(record(store, &app, &recent).await.is_some());
}
