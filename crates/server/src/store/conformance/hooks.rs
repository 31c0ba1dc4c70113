//! Conformance of push hooks and their outbox: which chat writes queue an event, what it holds
//! (never a ciphertext), and the claim, lease, retry and acknowledgement schedule.

use std::collections::HashSet;

use futures_util::future::join_all;
use sealkit_proto::hooks::{HookEvent, HookKind};

use super::apps::new_app;
use super::chat::{chat_message, group, post_new};
use super::{app_id, id, ok, warm_up};
use crate::store::{HookBacklog, HookDelivery, HookRecord, MessageEdit, Store, StoreError};

/// Later than every event the tests queue: everything is due.
const LATER: i64 = 1_900_000_000_000;
const LEASE: i64 = 60_000;

fn hook(app_id: &str, url: &str) -> HookRecord {
    HookRecord {
        app_id: app_id.to_owned(),
        url: url.to_owned(),
        secret: format!("whsec_{url}"),
        created_at: 1_700_000_000,
    }
}

fn event(delivery: &HookDelivery) -> HookEvent {
    match serde_json::from_str(&delivery.payload) {
        Ok(event) => event,
        Err(e) => panic!("queued payload {:?}: {e}", delivery.payload),
    }
}

async fn backlog(store: &dyn Store, app_id: &str) -> HookBacklog {
    ok("backlog", store.hook_backlog(app_id).await)
}

/// Setting, replacing and removing a hook; which chat writes queue events (posts, edits,
/// deletes and membership changes of an application with a hook, and nothing else) and what
/// the events say, in commit order, without ciphertext.
pub async fn hooks_queue_metadata_events(store: &dyn Store) {
    assert_eq!(
        store
            .hook_set(hook(&app_id("no such app"), "http://x"))
            .await,
        Err(StoreError::NotFound)
    );
    let app = new_app(store, "hooked").await;
    let quiet = new_app(store, "no hook").await;
    assert_eq!(ok("no hook yet", store.hook_get(&app).await), None);
    ok("set", store.hook_set(hook(&app, "http://first")).await);
    ok("replace", store.hook_set(hook(&app, "http://second")).await);
    assert_eq!(
        ok("get", store.hook_get(&app).await),
        Some(hook(&app, "http://second"))
    );

    for a in [&app, &quiet] {
        let channel = group(a, "g", "alice", &["bob"]);
        ok("create", store.chat_create_channel(channel, u32::MAX).await);
        let message = chat_message(a, "g", "alice", "c1", 1);
        post_new(store, message).await;
        ok("add", store.chat_add_member(a, "g", "carol", false).await);
        let edit = MessageEdit {
            app_id: a.to_string(),
            channel_id: id("g"),
            seq: 1,
            editor: id("alice"),
            ciphertext: b"edited secret bytes".to_vec(),
            member_version: 2,
            edited_at_ms: 1_800_000_500_000,
            kt_head: None,
        };
        ok("edit", store.chat_edit_message(edit).await);
        ok(
            "delete",
            store
                .chat_delete_message(a, "g", 1, "alice", 1_800_000_600_000)
                .await,
        );
        ok("remove", store.chat_remove_member(a, "g", "bob").await);
        // Refused writes queue nothing.
        assert!(store
            .chat_delete_message(a, "g", 1, "mallory", 1_800_000_700_000)
            .await
            .is_err());
    }
    assert_eq!(backlog(store, &quiet).await.queued, 0);
    assert_eq!(backlog(store, &app).await.queued, 5);

    let claimed = ok("claim", store.hook_claim(LATER, LEASE, 100).await);
    assert!(claimed.iter().all(|d| d.app_id == app
        && d.url == "http://second"
        && d.secret == "whsec_http://second"
        && d.attempts == 0));
    let ids: Vec<i64> = claimed.iter().map(|d| d.id).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "oldest first");
    let events: Vec<HookEvent> = claimed.iter().map(event).collect();
    let kinds: Vec<HookKind> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            HookKind::Message,
            HookKind::MemberAdded,
            HookKind::Edit,
            HookKind::Delete,
            HookKind::MemberRemoved
        ]
    );
    let message = &events[0];
    assert_eq!(
        (
            message.app.as_str(),
            message.channel.as_str(),
            message.seq,
            message.sender.as_deref()
        ),
        (app.as_str(), "g", Some(1), Some("alice"))
    );
    assert_eq!(
        (events[1].identity.as_deref(), events[1].member_version),
        (Some("carol"), Some(2))
    );
    assert_eq!((events[2].seq, events[2].at), (Some(1), 1_800_000_500_000));
    assert_eq!(events[3].deleted_by.as_deref(), Some("alice"));
    assert_eq!(
        (events[4].identity.as_deref(), events[4].member_version),
        (Some("bob"), Some(3))
    );
    for delivery in &claimed {
        assert!(
            !delivery.payload.contains("ciphertext") && !delivery.payload.contains("secret bytes"),
            "{}",
            delivery.payload
        );
    }

    // Removing the hook drops what was queued for it; later writes queue nothing.
    assert!(ok("remove hook", store.hook_remove(&app).await));
    assert!(!ok("remove again", store.hook_remove(&app).await));
    assert_eq!(backlog(store, &app).await, HookBacklog::default());
    assert_eq!(ok("gone", store.hook_get(&app).await), None);
    post_new(store, chat_message(&app, "g", "alice", "c2", 3)).await;
    assert_eq!(backlog(store, &app).await.queued, 0);
}

/// The delivery schedule: a claim leases its events (a second claim skips them until the
/// lease ends, as after a crash), a failed attempt is due again at the time given and counts,
/// an acknowledged one is gone, and one given up on is dropped.
pub async fn hooks_claim_lease_retry_ack(store: &dyn Store) {
    let app = new_app(store, "schedule").await;
    ok("set", store.hook_set(hook(&app, "http://r")).await);
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &[]), u32::MAX)
            .await,
    );
    for n in 1..=3 {
        post_new(store, chat_message(&app, "g", "alice", &format!("c{n}"), 1)).await;
    }
    // Not due before it was queued.
    assert!(ok("too early", store.hook_claim(1_000, LEASE, 10).await).is_empty());

    let first = ok("claim two", store.hook_claim(LATER, LEASE, 2).await);
    assert_eq!(first.len(), 2);
    let rest = ok("claim the rest", store.hook_claim(LATER, LEASE, 10).await);
    assert_eq!(rest.len(), 1, "leased events are skipped");
    assert!(ok(
        "all leased",
        store.hook_claim(LATER + LEASE - 1, LEASE, 10).await
    )
    .is_empty());
    // The claimer died: once the lease ends, the events are claimed again, attempts unchanged.
    let again = ok(
        "after the lease",
        store.hook_claim(LATER + LEASE, LEASE, 10).await,
    );
    assert_eq!(
        again.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(),
        first
            .iter()
            .chain(&rest)
            .map(|d| (d.id, 0))
            .collect::<Vec<_>>()
    );
    let (a, b, c) = (first[0].id, first[1].id, rest[0].id);

    let now = LATER + 2 * LEASE;
    ok("a delivered", store.hook_ack(a).await);
    ok("ack twice", store.hook_ack(a).await);
    ok(
        "b failed",
        store
            .hook_retry(b, Some(now + 5_000), "HTTP 500: down")
            .await,
    );
    ok("c given up", store.hook_retry(c, None, "HTTP 410").await);
    assert_eq!(
        backlog(store, &app).await,
        HookBacklog {
            queued: 1,
            last_error: Some("HTTP 500: down".to_owned()),
        }
    );
    assert!(ok(
        "b not yet due",
        store.hook_claim(now + 4_999, LEASE, 10).await
    )
    .is_empty());
    let due = ok("b due", store.hook_claim(now + 5_000, LEASE, 10).await);
    assert_eq!(
        due.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(),
        [(b, 1)]
    );
    // A failure releases the lease: due again at its new time, not at the lease's end.
    ok(
        "b failed again",
        store.hook_retry(b, Some(now + 6_000), "timeout").await,
    );
    let due = ok(
        "b due again",
        store.hook_claim(now + 6_000, LEASE, 10).await,
    );
    assert_eq!(
        due.iter().map(|d| (d.id, d.attempts)).collect::<Vec<_>>(),
        [(b, 2)]
    );
    ok("b delivered", store.hook_ack(b).await);
    assert_eq!(backlog(store, &app).await, HookBacklog::default());
}

/// Concurrent claims (several replicas' delivery tasks) never hand out one event twice, and
/// together take every due event.
pub async fn hooks_concurrent_claims_are_disjoint(store: &dyn Store) {
    let app = new_app(store, "claims").await;
    warm_up(store, &app).await;
    ok("set", store.hook_set(hook(&app, "http://r")).await);
    ok(
        "create",
        store
            .chat_create_channel(group(&app, "g", "alice", &[]), u32::MAX)
            .await,
    );
    for n in 0..40 {
        post_new(store, chat_message(&app, "g", "alice", &format!("c{n}"), 1)).await;
    }
    let claims = join_all((0..8).map(|_| store.hook_claim(LATER, LEASE, 5))).await;
    let mut seen = HashSet::new();
    for claim in claims {
        for delivery in ok("claim", claim) {
            assert!(
                seen.insert(delivery.id),
                "event {} claimed twice",
                delivery.id
            );
        }
    }
    // Whatever a claim passed over (a row another was locking) is still due.
    for delivery in ok("leftovers", store.hook_claim(LATER, LEASE, 100).await) {
        assert!(
            seen.insert(delivery.id),
            "event {} claimed twice",
            delivery.id
        );
    }
    assert_eq!(seen.len(), 40);
}
