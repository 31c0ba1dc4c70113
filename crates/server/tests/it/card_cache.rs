//! The in-process cache of card search answers (`card_cache_ms`): a publish or revoke is visible
//! in the next search on the replica that acknowledged it (SQLite and PostgreSQL), and on the
//! other PostgreSQL replicas in the next search too (the read barrier), also when their
//! announcements are late; and within a second when the announcement connections are lost.

use crate::common::*;
use axum::http::StatusCode;
use rand_core::OsRng;
use sealkit_crypto::{KeyType, PrivateKey};
use sealkit_server::store::postgres::PostgresStore;
use sealkit_server::store::Store;
use sealkit_server::Config;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Two replicas (routers with stores of their own) on one fresh PostgreSQL schema, both
/// caching with `card_cache_ms`; the schema is dropped by [`Replicas::drop`].
struct Replicas {
    a: Harness,
    b: Harness,
    /// B's store, for holding back its announcements.
    b_store: PostgresStore,
    schema: String,
}

impl Replicas {
    async fn start(card_cache_ms: Option<u64>) -> Self {
        let schema = schema_name("cardcache");
        let store_a: Arc<dyn Store> = Arc::new(
            PostgresStore::connect_fresh_schema(&pg_url(), &schema)
                .await
                .expect("PostgreSQL reachable at DATABASE_URL"),
        );
        let mut config = Config::default();
        config.card_cache_ms = card_cache_ms;
        let a = harness_on(config.clone(), store_a).await;
        let b_store = PostgresStore::connect_in_schema(&pg_url(), &schema)
            .await
            .unwrap();
        let store_b: Arc<dyn Store> = Arc::new(b_store.clone());
        config.data_dir = a.dir.path().to_owned();
        let b = Harness {
            router: sealkit_server::app(config, store_b).await.unwrap(),
            dir: tempfile::tempdir().unwrap(),
            app: a.app.clone(),
            other_app: a.other_app.clone(),
        };
        Self {
            a,
            b,
            b_store,
            schema,
        }
    }

    /// Revokes every card of `identity` straight in the database, announcing nothing: what a
    /// replica's cache answers afterwards shows whether it read the store.
    async fn revoke_unannounced(&self, identity: &str) {
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&pg_url())
            .await
            .unwrap();
        let revoked = sqlx::query(&format!(
            r#"UPDATE "{}".cards SET revoked = TRUE WHERE identity = $1"#,
            self.schema
        ))
        .bind(identity)
        .execute(&mut conn)
        .await
        .unwrap();
        assert!(revoked.rows_affected() > 0);
    }

    /// Ends every `LISTEN` connection of this schema's card announcements (both replicas'),
    /// as a network failure or a database restart would; the number ended.
    async fn cut_announcements(&self) -> usize {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(self.schema.as_bytes());
        let listen = format!(r#"LISTEN "sealkit_cards_{}""#, hex::encode(&digest[..8]));
        let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&pg_url())
            .await
            .unwrap();
        let ended: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = $1",
        )
        .bind(listen)
        .fetch_all(&mut conn)
        .await
        .unwrap();
        ended.into_iter().filter(|ended| *ended).count()
    }

    async fn drop(self) {
        drop(self.a);
        drop(self.b);
        PostgresStore::drop_schema(&pg_url(), &self.schema)
            .await
            .unwrap();
    }
}

/// The longest a replica may show a change made through another one.
const OTHERS_WITHIN: Duration = Duration::from_secs(1);

/// Searches `identities` through `h` until the answer is `expected`, and fails if a search
/// that started `OTHERS_WITHIN` or more after `acknowledged` still answers something else.
async fn shows_within_a_second(
    h: &Harness,
    identities: &[&str],
    expected: &[String],
    acknowledged: Instant,
) {
    loop {
        let started = Instant::now();
        let found = search(h, identities).await;
        if found == expected {
            return;
        }
        assert!(
            started.duration_since(acknowledged) < OTHERS_WITHIN,
            "a search started {:?} after the change was acknowledged answered {found:?}, \
             not {expected:?}",
            started.duration_since(acknowledged)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_replicas_see_a_change_within_a_second() {
    // The longest period: a replica relying on it alone would be late.
    let r = Replicas::start(Some(1000)).await;
    let (a, b) = (&r.a, &r.b);

    // B caches "no cards" for alice, then alice registers through A.
    assert_eq!(search(b, &["alice"]).await, Vec::<String>::new());
    let a1 = publish(a, "alice", None).await;
    let acknowledged = Instant::now();
    assert_eq!(search(a, &["alice"]).await, vec![a1.clone()]);
    shows_within_a_second(b, &["alice"], std::slice::from_ref(&a1), acknowledged).await;

    // A rotation, with B holding the old answer.
    assert_eq!(search(b, &["alice"]).await, vec![a1.clone()]);
    let a2 = publish(a, "alice", Some(&a1)).await;
    let acknowledged = Instant::now();
    let both = sorted(vec![a1.clone(), a2.clone()]);
    assert_eq!(search(a, &["alice"]).await, both);
    shows_within_a_second(b, &["alice"], &both, acknowledged).await;

    // A revocation through B, seen by A.
    assert_eq!(search(a, &["alice"]).await, both);
    revoke(b, "alice", &a2).await;
    let acknowledged = Instant::now();
    assert_eq!(search(b, &["alice"]).await, Vec::<String>::new());
    shows_within_a_second(a, &["alice"], &[], acknowledged).await;
    r.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_announcement_connection_leaves_no_stale_answer() {
    let r = Replicas::start(Some(1000)).await;
    let (a, b) = (&r.a, &r.b);
    let a1 = publish(a, "alice", None).await;
    let c1 = publish(a, "carol", None).await;
    shows_within_a_second(
        b,
        &["alice", "carol"],
        &sorted(vec![a1.clone(), c1.clone()]),
        Instant::now(),
    )
    .await;
    // Announcements heard from now on are confirmed; both replicas hold alice and carol.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(search(a, &["alice"]).await, vec![a1.clone()]);

    // The announcement connections die; changes made meanwhile are never announced.
    assert!(r.cut_announcements().await >= 2, "both replicas listen");
    let a2 = publish(a, "alice", Some(&a1)).await;
    let acknowledged = Instant::now();
    revoke(a, "carol", &c1).await;
    let both = sorted(vec![a1.clone(), a2.clone()]);
    assert_eq!(search(a, &["alice", "carol"]).await, both);
    shows_within_a_second(b, &["alice", "carol"], &both, acknowledged).await;

    // Listening again, later changes are announced as before, and nothing old comes back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(search(b, &["alice", "carol"]).await, both);
    let a3 = publish(a, "alice", Some(&a2)).await;
    let acknowledged = Instant::now();
    let three = sorted(vec![a1, a2, a3]);
    shows_within_a_second(b, &["alice", "carol"], &three, acknowledged).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(search(b, &["alice", "carol"]).await, three);
    r.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_taking_changes_in_turn_answer_at_once_after_their_own() {
    let r = Replicas::start(Some(1000)).await;
    let (a, b) = (&r.a, &r.b);
    // Both replicas take changes in turn, as a client alternating between them would.
    let mut previous: Option<String> = None;
    let mut chain = Vec::new();
    for round in 0..6 {
        let (took, other) = if round % 2 == 0 { (a, b) } else { (b, a) };
        let id = publish(took, "alice", previous.as_deref()).await;
        let acknowledged = Instant::now();
        chain.insert(0, id.clone());
        chain.truncate(sealkit_server::store::MAX_CHAIN_CARDS);
        let expected = sorted(chain.clone());
        assert_eq!(search(took, &["alice"]).await, expected);
        shows_within_a_second(other, &["alice"], &expected, acknowledged).await;
        previous = Some(id);
    }
    r.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_search_on_another_replica_shows_a_change() {
    // The default settings: the cache is on.
    let r = Replicas::start(None).await;
    let (a, b) = (&r.a, &r.b);
    // B holds "no cards" for alice; she registers, rotates and revokes through A, and B's
    // first search after each acknowledgement shows it.
    assert_eq!(search(b, &["alice", "bob"]).await, Vec::<String>::new());
    let a1 = publish(a, "alice", None).await;
    assert_eq!(search(b, &["alice", "bob"]).await, vec![a1.clone()]);
    let a2 = publish(a, "alice", Some(&a1)).await;
    let both = sorted(vec![a1.clone(), a2.clone()]);
    assert_eq!(search(b, &["alice", "bob"]).await, both);
    revoke(a, "alice", &a2).await;
    assert_eq!(search(b, &["alice", "bob"]).await, Vec::<String>::new());
    // And the other way round, with A holding bob's answer.
    assert_eq!(search(a, &["bob"]).await, Vec::<String>::new());
    let b1 = publish(b, "bob", None).await;
    assert_eq!(search(a, &["bob"]).await, vec![b1]);
    r.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_whose_announcements_are_late_asks_the_store() {
    let r = Replicas::start(None).await;
    let (a, b) = (&r.a, &r.b);
    let a1 = publish(a, "alice", None).await;
    assert_eq!(search(b, &["alice"]).await, vec![a1.clone()]);
    // B hears nothing from now on, while holding alice's answer.
    let held = r.b_store.hold_card_changes().await;
    let a2 = publish(a, "alice", Some(&a1)).await;
    let both = sorted(vec![a1.clone(), a2.clone()]);
    assert_eq!(search(b, &["alice"]).await, both);
    assert_eq!(search(b, &["alice"]).await, both);
    revoke(a, "alice", &a2).await;
    assert_eq!(search(b, &["alice"]).await, Vec::<String>::new());
    // Caught up again, B answers from its cache: a change made behind every replica's back
    // (announcing nothing) does not show.
    drop(held);
    let c1 = publish(a, "carol", None).await;
    // Settled first: an answer read while B applies what it held back is not kept.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(search(b, &["carol"]).await, vec![c1.clone()]);
    r.revoke_unannounced("carol").await;
    assert_eq!(search(b, &["carol"]).await, vec![c1]);
    r.drop().await;
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
