//! Conformance of the key-transparency storage: the change queue fed by the card directory,
//! AKD's records and value versions, epoch roots, and the publisher election.

use std::collections::BTreeMap;

use super::apps::new_app;
use super::{hex_id, ok};
use crate::store::{KtPending, KtValueRecord, NewCard, Store};

fn card(app_id: &str, identity: &str, label: &str, previous: Option<&str>) -> NewCard {
    NewCard {
        id: hex_id(&format!("kt card {app_id} {label}"), 64),
        app_id: app_id.to_owned(),
        identity: super::id(identity),
        previous_card_id: previous.map(str::to_owned),
        raw: format!(r#"{{"content_snapshot":"{label}","signatures":[]}}"#).into_bytes(),
        created_at: 1_795_801_646,
    }
}

/// The queue as `identity -> seq` for one application.
async fn queued(store: &dyn Store, app_id: &str) -> BTreeMap<String, i64> {
    ok("kt_pending", store.kt_pending(1000).await)
        .into_iter()
        .filter(|p| p.app_id == app_id)
        .map(|p| (p.identity, p.seq))
        .collect()
}

/// Every card change queues its identity in the same transaction; a queued identity that
/// changed again after it was read survives `kt_clear_pending`; the current card ids follow
/// rotation and revocation.
pub async fn kt_card_changes_are_queued(store: &dyn Store) {
    let app = new_app(store, "kt-queue").await;
    let other = new_app(store, "kt-queue-other").await;
    assert!(queued(store, &app).await.is_empty());

    let first = card(&app, "alice", "a1", None);
    let first_id = first.id.clone();
    ok("publish", store.publish_card(first).await);
    let q = queued(store, &app).await;
    assert_eq!(q.keys().collect::<Vec<_>>(), ["alice"]);
    let seq_after_publish = q["alice"];
    assert_eq!(
        ok("ids", store.kt_current_card_ids(&app, "alice").await),
        std::slice::from_ref(&first_id)
    );

    // A failed publish (conflict) queues nothing new.
    let conflict = store.publish_card(card(&app, "alice", "a-dup", None)).await;
    assert!(conflict.is_err());
    assert_eq!(queued(store, &app).await["alice"], seq_after_publish);

    // Read, then the identity changes again: clearing with the old seq keeps it queued.
    let read: Vec<KtPending> = ok("kt_pending", store.kt_pending(1000).await)
        .into_iter()
        .filter(|p| p.app_id == app)
        .collect();
    let second = card(&app, "alice", "a2", Some(&first_id));
    let second_id = second.id.clone();
    ok("rotate", store.publish_card(second).await);
    assert!(queued(store, &app).await["alice"] > seq_after_publish);
    ok("clear stale", store.kt_clear_pending(&read).await);
    assert!(queued(store, &app).await.contains_key("alice"));
    assert_eq!(
        ok("ids", store.kt_current_card_ids(&app, "alice").await),
        std::slice::from_ref(&second_id)
    );

    // Cleared with the current seq: gone.
    let read: Vec<KtPending> = ok("kt_pending", store.kt_pending(1000).await)
        .into_iter()
        .filter(|p| p.app_id == app)
        .collect();
    ok("clear", store.kt_clear_pending(&read).await);
    assert!(queued(store, &app).await.is_empty());

    // Revocation queues again; a refused revocation does not.
    assert!(store.revoke_card(&app, &second_id, "bob").await.is_err());
    assert!(queued(store, &app).await.is_empty());
    ok("revoke", store.revoke_card(&app, &second_id, "alice").await);
    assert_eq!(
        queued(store, &app).await.keys().collect::<Vec<_>>(),
        ["alice"]
    );
    assert!(ok("ids", store.kt_current_card_ids(&app, "alice").await).is_empty());

    // Isolation: nothing of the other application moved.
    assert!(queued(store, &other).await.is_empty());
    assert!(ok("ids", store.kt_current_card_ids(&other, "alice").await).is_empty());

    // The limit is honoured.
    for i in 0..3 {
        ok(
            "publish",
            store
                .publish_card(card(&other, &format!("user{i}"), &format!("u{i}"), None))
                .await,
        );
    }
    assert_eq!(ok("kt_pending", store.kt_pending(2).await).len(), 2);
}

fn value(label: &str, epoch: i64, version: i64, byte: u8) -> KtValueRecord {
    KtValueRecord {
        label: label.as_bytes().to_vec(),
        epoch,
        version,
        node_label: vec![byte; 36],
        value: vec![byte; 32],
    }
}

/// Records are key-value rows per application (replaced by id, missing ids left out, many ids
/// at once); value versions come back per label, oldest epoch first.
pub async fn kt_records_and_values(store: &dyn Store) {
    let app = "0123456789abcdef0123456789abcdef";
    let other = "fedcba9876543210fedcba9876543210";
    let records: Vec<(Vec<u8>, Vec<u8>)> = (0..700u32)
        .map(|i| (i.to_be_bytes().to_vec(), format!("data {i}").into_bytes()))
        .collect();
    ok(
        "write",
        store
            .kt_write(
                app,
                Some(1),
                &records,
                &[
                    value("alice", 2, 2, 2),
                    value("alice", 1, 1, 1),
                    value("bob", 1, 1, 9),
                ],
            )
            .await,
    );
    let ids: Vec<Vec<u8>> = (0..800u32).map(|i| i.to_be_bytes().to_vec()).collect();
    let mut found = ok("read", store.kt_records(app, &ids).await);
    found.sort();
    let mut expected = records.clone();
    expected.sort();
    assert_eq!(found, expected);
    assert!(ok("other app", store.kt_records(other, &ids).await).is_empty());
    assert!(ok("none", store.kt_records(app, &[]).await).is_empty());

    // Paging: ascending bytewise id order (a shorter id before its extensions), after the given
    // id, at most `limit`, this application only.
    let mut paged = Vec::new();
    let mut after = Vec::new();
    loop {
        let page = ok("page", store.kt_records_after(app, &after, 256).await);
        assert!(page.len() <= 256);
        let Some((last, _)) = page.last() else { break };
        after = last.clone();
        paged.extend(page);
    }
    assert_eq!(paged, expected, "pages out of order or incomplete");
    let from_middle = ok(
        "page",
        store.kt_records_after(app, &[0, 0, 2, 0x80], 3).await,
    );
    let page_ids: Vec<u32> = from_middle
        .iter()
        .map(|(id, _)| u32::from_be_bytes(id.as_slice().try_into().unwrap_or_default()))
        .collect();
    assert_eq!(page_ids, [0x281, 0x282, 0x283]);
    assert!(ok("page", store.kt_records_after(other, &[], 10).await).is_empty());
    assert!(ok("page", store.kt_records_after(app, &[0xff], 10).await).is_empty());

    // Replace one record and one version, in one write.
    ok(
        "rewrite",
        store
            .kt_write(
                app,
                Some(3),
                &[(0u32.to_be_bytes().to_vec(), b"new".to_vec())],
                &[value("alice", 2, 2, 7)],
            )
            .await,
    );
    // Which epoch last wrote each record: epoch 3 took record 0 from epoch 1.
    let changed = |after, upto, limit| store.kt_changed_ids(app, after, upto, limit);
    let mut by_first = ok("changed", changed(0, 1, 1000).await);
    by_first.sort();
    assert_eq!(by_first, ids[1..700].to_vec());
    assert_eq!(ok("changed", changed(1, 3, 1000).await), [ids[0].clone()]);
    assert_eq!(ok("changed", changed(0, 3, 10).await).len(), 10);
    assert!(ok("changed", changed(3, 9, 1000).await).is_empty());
    assert!(ok("changed", store.kt_changed_ids(other, 0, 9, 1000).await).is_empty());
    // A write outside an epoch is nobody's change.
    ok(
        "write without epoch",
        store
            .kt_write(app, None, &[(ids[1].clone(), b"loose".to_vec())], &[])
            .await,
    );
    assert_eq!(ok("changed", changed(0, 9, 1000).await).len(), 699);
    assert_eq!(
        ok(
            "read",
            store.kt_records(app, &[0u32.to_be_bytes().to_vec()]).await
        ),
        [(0u32.to_be_bytes().to_vec(), b"new".to_vec())]
    );
    let alice = ok("values", store.kt_values(app, b"alice").await);
    assert_eq!(alice, [value("alice", 1, 1, 1), value("alice", 2, 2, 7)]);
    assert_eq!(
        ok("values", store.kt_values(app, b"bob").await),
        [value("bob", 1, 1, 9)]
    );
    assert!(ok("values", store.kt_values(other, b"alice").await).is_empty());
    assert!(ok("values", store.kt_values(app, b"carol").await).is_empty());
}

/// Roots: the first write of an epoch wins; ranges come back in order.
pub async fn kt_roots_first_write_wins(store: &dyn Store) {
    let app = "0123456789abcdef0123456789abcdef";
    for epoch in [2i64, 0, 1, 3] {
        ok(
            "put root",
            store.kt_put_root(app, epoch, &[epoch as u8; 32]).await,
        );
    }
    ok("put again", store.kt_put_root(app, 1, &[99; 32]).await);
    let roots = ok("roots", store.kt_roots(app, 1, 2).await);
    assert_eq!(roots, [(1, vec![1; 32]), (2, vec![2; 32])]);
    assert_eq!(ok("roots", store.kt_roots(app, 0, 10).await).len(), 4);
    assert!(ok(
        "roots",
        store
            .kt_roots("fedcba9876543210fedcba9876543210", 0, 10)
            .await
    )
    .is_empty());
    // A lone process always leads, and keeps leading.
    assert!(ok("lead", store.kt_try_lead().await));
    assert!(ok("lead", store.kt_try_lead().await));
}

/// Two processes on one database (PostgreSQL): exactly one leads; when the leader goes away,
/// the other takes over.
pub async fn kt_one_publisher_among_replicas(a: Box<dyn Store>, b: &dyn Store) {
    assert!(ok("a leads", a.kt_try_lead().await));
    assert!(ok("a keeps leading", a.kt_try_lead().await));
    assert!(!ok("b follows", b.kt_try_lead().await));
    drop(a);
    for _ in 0..100 {
        if ok("b takes over", b.kt_try_lead().await) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the second replica never took over after the leader went away");
}
