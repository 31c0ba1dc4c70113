//! The key-transparency caches across epochs, on SQLite and PostgreSQL: two services over one
//! database (the publisher, and a replica that never publishes) answer lookups between
//! publishes, and every answer is the proof of the newest epoch, signed with the root the
//! publisher recorded for it, committing to the identity's current card. A replica serving tree
//! nodes or proofs of an older epoch would sign a stale root or a stale value.

use std::sync::Arc;

use rand_core::OsRng;
use sealkit_crypto::{KeyType, PrivateKey};
use sealkit_kt::{card_set_commitment, parse_card_id, verify_lookup};
use sealkit_proto::{AppId, Identity};
use sealkit_server::service::kt::{KtKeys, KtService};
use sealkit_server::service::Caller;
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::sqlite::SqliteStore;
use sealkit_server::store::{NewCard, Store};

use crate::common;

const SEED: [u8; 32] = [42; 32];
const IDENTITIES: usize = 24;

fn who(i: usize) -> String {
    format!("kt-cache-{i}")
}

/// Publishes a new card for `identity` (replacing `previous`) straight into the store, which
/// queues the identity for the next epoch; returns the card id.
async fn publish(
    store: &dyn Store,
    app_id: &str,
    identity: &str,
    previous: Option<&str>,
) -> String {
    let key = PrivateKey::generate(KeyType::Ed25519, &mut OsRng);
    let card = common::card(identity, &key, previous);
    let id = card.card_id().unwrap().to_string();
    store
        .publish_card(NewCard {
            id: id.clone(),
            app_id: app_id.to_owned(),
            identity: Identity::new(identity).unwrap(),
            previous_card_id: previous.map(str::to_owned),
            raw: serde_json::to_vec(&card).unwrap(),
            created_at: sealkit_server::now(),
        })
        .await
        .unwrap();
    id
}

/// Looks up every identity through `kt` and checks each answer against what the store holds
/// now: the epoch, its recorded root, and the current card of each identity.
async fn check_all(
    kt: &KtService,
    store: &dyn Store,
    app_id: &str,
    cards: &[String],
    epoch: u64,
    rounds: usize,
) {
    let pinned = KtKeys::from_seed(&SEED).public_key();
    let roots = store
        .kt_roots(app_id, epoch as i64, epoch as i64)
        .await
        .unwrap();
    assert_eq!(roots.len(), 1, "no root recorded for epoch {epoch}");
    let root = &roots[0].1;
    // Twice over: the second round is answered from the caches.
    for _ in 0..rounds {
        for (i, card) in cards.iter().enumerate() {
            let identity = who(i);
            let caller = Caller {
                app_id: AppId::new(app_id).unwrap(),
                identity: Identity::new(identity.as_str()).unwrap(),
            };
            let answer = kt.lookup(&caller, &identity).await.unwrap();
            let (head, entry) = verify_lookup(&pinned, app_id, &identity, &answer).unwrap();
            assert_eq!(head.epoch, epoch, "{identity}: stale epoch");
            assert_eq!(&head.root_hash[..], &root[..], "{identity}: stale root");
            assert_eq!(
                entry.value,
                card_set_commitment([parse_card_id(card).unwrap()]),
                "{identity}: stale value"
            );
            entry.check_cards([card.as_str()]).unwrap();
        }
    }
}

async fn caches_follow_epochs(store: Arc<dyn Store>) {
    let app = sealkit_server::admin::create_app(store.as_ref(), "kt-cache", sealkit_server::now())
        .await
        .unwrap();
    let app_id = app.app_id.as_str();
    let publisher = KtService::new(store.clone(), KtKeys::from_seed(&SEED));
    let replica = KtService::new(store.clone(), KtKeys::from_seed(&SEED));

    let mut cards = Vec::new();
    for i in 0..IDENTITIES {
        cards.push(publish(store.as_ref(), app_id, &who(i), None).await);
    }
    assert_eq!(publisher.publish_pending().await.unwrap().len(), 1);
    check_all(&publisher, store.as_ref(), app_id, &cards, 1, 2).await;
    check_all(&replica, store.as_ref(), app_id, &cards, 1, 2).await;
    let replica_cache = replica.node_cache(app_id).await.unwrap();
    assert!(!replica_cache.is_empty(), "the replica caches no node");
    assert_eq!(replica_cache.epoch(), Some(1));

    // Rotations change nodes both caches hold; a new identity adds nodes.
    for round in 0..3 {
        for i in [round, IDENTITIES / 2 + round] {
            cards[i] = publish(store.as_ref(), app_id, &who(i), Some(&cards[i])).await;
        }
        cards.push(publish(store.as_ref(), app_id, &who(cards.len()), None).await);
        let published = publisher.publish_pending().await.unwrap();
        let epoch = 2 + round as u64;
        assert_eq!(published, vec![(app_id.to_owned(), epoch)]);
        // The publisher wrote its epoch through (its cache survives); the replica sees the
        // epoch move on its next request and drops the nodes the epoch wrote, and only those.
        assert_eq!(
            publisher.node_cache(app_id).await.unwrap().epoch(),
            Some(epoch)
        );
        replica.head(app_id).await.unwrap();
        assert_eq!(replica_cache.epoch(), Some(epoch));
        let mut kept = replica_cache.encoded_nodes();
        assert!(!kept.is_empty(), "the replica dropped every node");
        let ids: Vec<Vec<u8>> = kept.iter().map(|(id, _)| id.clone()).collect();
        let mut stored = store.kt_records(app_id, &ids).await.unwrap();
        kept.sort();
        stored.sort();
        assert_eq!(kept, stored, "the replica kept a node the epoch changed");
        check_all(&replica, store.as_ref(), app_id, &cards, epoch, 2).await;
        check_all(&publisher, store.as_ref(), app_id, &cards, epoch, 1).await;
        assert_eq!(replica_cache.epoch(), Some(epoch));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kt_caches_follow_epochs_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap(),
    );
    caches_follow_epochs(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kt_caches_follow_epochs_on_postgres() {
    let schema = common::schema_name("ktcache");
    let store = Arc::new(
        PostgresStore::connect_fresh_schema(&common::pg_url(), &schema)
            .await
            .expect("PostgreSQL reachable at DATABASE_URL"),
    );
    caches_follow_epochs(store.clone()).await;
    store.close().await;
    let _ = PostgresStore::drop_schema(&common::pg_url(), &schema).await;
}
