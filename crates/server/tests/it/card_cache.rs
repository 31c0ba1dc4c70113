//! The in-process cache of card search answers (`card_cache_ms`): a publish or revoke is visible
//! in the next search on the replica that acknowledged it, and on another replica once the
//! cache period has passed, on SQLite and across two PostgreSQL replicas (which cache only when
//! configured to: the e3kit-node scenario across two replicas in `crates/cli/tests/it` expects
//! every change at once on both).

use crate::common::*;
use axum::http::StatusCode;
use rand_core::OsRng;
use sealkit_crypto::{KeyType, PrivateKey};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// The card ids a search for `identities` answers through `h`, sorted.
async fn search(h: &Harness, identities: &[&str]) -> Vec<String> {
    let (status, found) = h
        .json(
            "POST",
            "/card/v5/actions/search",
            Some(&token(&h.app, "searcher")),
            Some(json!({ "identities": identities })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    let mut ids: Vec<String> = found
        .as_array()
        .unwrap()
        .iter()
        .map(|card| {
            let model: sealkit_proto::cards::RawSignedModel =
                serde_json::from_value(card.clone()).unwrap();
            model.card_id().unwrap().to_string()
        })
        .collect();
    ids.sort();
    ids
}

/// Publishes a card for `identity` through `h` (a rotation when `previous` is set); its id.
async fn publish(h: &Harness, identity: &str, previous: Option<&str>) -> String {
    let model = card(
        identity,
        &PrivateKey::generate(KeyType::Ed25519, &mut OsRng),
        previous,
    );
    let (status, body) = h
        .json(
            "POST",
            "/card/v5",
            Some(&token(&h.app, identity)),
            Some(serde_json::to_value(&model).unwrap()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    model.card_id().unwrap().to_string()
}

async fn revoke(h: &Harness, identity: &str, id: &str) {
    let (status, body): (StatusCode, Value) = h
        .json(
            "POST",
            &format!("/card/v5/actions/revoke/{id}"),
            Some(&token(&h.app, identity)),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn a_change_shows_at_once_on_the_replica_that_took_it() {
    let mut config = Config::default();
    config.card_cache_ms = Some(1000);
    let h = harness_with(config).await;
    let a1 = publish(&h, "alice", None).await;
    // Cached: alice with one card, carol with none.
    assert_eq!(search(&h, &["alice", "carol"]).await, vec![a1.clone()]);
    let a2 = publish(&h, "alice", Some(&a1)).await;
    let c1 = publish(&h, "carol", None).await;
    assert_eq!(
        search(&h, &["alice", "carol"]).await,
        sorted(vec![a1.clone(), a2.clone(), c1.clone()])
    );
    // A search mixing cached (carol) and uncached (bob) identities answers both.
    let b1 = publish(&h, "bob", None).await;
    assert_eq!(
        search(&h, &["carol", "bob", "carol"]).await,
        sorted(vec![b1, c1.clone()])
    );
    revoke(&h, "alice", &a2).await;
    assert_eq!(search(&h, &["alice", "carol"]).await, vec![c1]);
}

#[tokio::test]
async fn other_replicas_see_a_change_within_the_cache_period() {
    let schema = schema_name("cardcache");
    let store_a: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_fresh_schema(&pg_url(), &schema)
            .await
            .expect("PostgreSQL reachable at DATABASE_URL"),
    );
    let mut config = Config::default();
    // Replicas cache nothing unless told to: here they are.
    config.card_cache_ms = Some(500);
    let a = harness_on(config.clone(), store_a).await;
    let store_b: Arc<dyn Store> = Arc::new(
        PostgresStore::connect_in_schema(&pg_url(), &schema)
            .await
            .unwrap(),
    );
    config.data_dir = a.dir.path().to_owned();
    let b = Harness {
        router: sealkit_server::app(config, store_b).await.unwrap(),
        dir: tempfile::tempdir().unwrap(),
        app: a.app.clone(),
        other_app: a.other_app.clone(),
    };
    let period = Duration::from_millis(500);

    let a1 = publish(&a, "alice", None).await;
    assert_eq!(search(&b, &["alice"]).await, vec![a1.clone()]);
    let a2 = publish(&a, "alice", Some(&a1)).await;
    assert_eq!(
        search(&a, &["alice"]).await,
        sorted(vec![a1.clone(), a2.clone()])
    );
    // B may still answer from its cache, but not once the period has passed.
    tokio::time::sleep(period).await;
    assert_eq!(search(&b, &["alice"]).await, sorted(vec![a1, a2.clone()]));

    revoke(&a, "alice", &a2).await;
    assert_eq!(search(&a, &["alice"]).await, Vec::<String>::new());
    tokio::time::sleep(period).await;
    assert_eq!(search(&b, &["alice"]).await, Vec::<String>::new());
    PostgresStore::drop_schema(&pg_url(), &schema)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_period_over_a_second_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn Store> = Arc::new(
        sealkit_server::store::sqlite::SqliteStore::open(&dir.path().join("db.sqlite"))
            .await
            .unwrap(),
    );
    let mut config = Config::default();
    config.data_dir = dir.path().to_owned();
    config.card_cache_ms = Some(1001);
    let error = sealkit_server::app(config, store).await.err().unwrap();
    assert!(error.to_string().contains("card_cache_ms"), "{error}");
}
