//! Conformance of the rate-limit buckets (brainkey requests, Pythia).

use futures_util::future::join_all;

use super::{app_id, ok, warm_up, RACE_ROUNDS};
use crate::store::Store;

/// Token buckets: a full bucket serves `burst` takes, then refuses; tokens come back with time
/// (fractions add up, the bucket never holds more than `burst`, a clock running backwards adds
/// nothing); buckets are independent.
pub async fn rate_limit_burst_and_refill(store: &dyn Store) {
    let take = |key: &'static str, now_ms: i64| store.rate_limit_take(key, now_ms, 3, 0.5);
    let t0: i64 = 1_800_000_000_000;
    for i in 0..3 {
        assert!(ok("take", take("alice", t0).await), "take {i} of the burst");
    }
    assert!(!ok("take", take("alice", t0).await), "burst exhausted");
    assert!(
        !ok("take", take("alice", t0 + 1_000).await),
        "half a token is not enough"
    );
    assert!(
        ok("take", take("alice", t0 + 2_000).await),
        "two halves make a token"
    );
    assert!(!ok("take", take("alice", t0 + 2_000).await));
    // A clock running backwards (another replica) neither refills nor breaks the bucket.
    assert!(!ok("take", take("alice", t0 - 60_000).await));
    assert!(!ok("take", take("alice", t0 + 3_000).await));
    assert!(ok("take", take("alice", t0 + 4_000).await));
    // Other keys have their own bucket.
    assert!(ok("take", take("bob", t0 + 4_000).await));
    // A long pause refills up to the burst, not beyond.
    let later = t0 + 3_600_000;
    for i in 0..3 {
        assert!(
            ok("take", take("alice", later).await),
            "take {i} after a pause"
        );
    }
    assert!(!ok("take", take("alice", later).await));
    // Other rates and bursts; a burst of 0 never serves.
    assert!(ok(
        "fast",
        store.rate_limit_take("carol", t0, 1, 10.0).await
    ));
    assert!(!ok(
        "fast",
        store.rate_limit_take("carol", t0 + 50, 1, 10.0).await
    ));
    assert!(ok(
        "fast",
        store.rate_limit_take("carol", t0 + 100, 1, 10.0).await
    ));
    assert!(!ok(
        "zero",
        store.rate_limit_take("dave", t0, 0, 10.0).await
    ));
    assert!(!ok(
        "zero",
        store.rate_limit_take("dave", later, 0, 10.0).await
    ));
    // Non-ASCII keys are keys like any other.
    assert!(ok(
        "unicode",
        store.rate_limit_take("用户 😀", t0, 1, 0.001).await
    ));
    assert!(!ok(
        "unicode",
        store.rate_limit_take("用户 😀", t0 + 1, 1, 0.001).await
    ));
    assert!(ok(
        "unicode",
        store.rate_limit_take("用户", t0, 1, 0.001).await
    ));
}

/// 20 concurrent takes on a bucket of 5 (no refill in between): exactly 5 succeed, on a new
/// bucket and on an existing one.
pub async fn rate_limit_concurrent_takes(store: &dyn Store) {
    warm_up(store, &app_id("none")).await;
    let t0: i64 = 1_800_000_000_000;
    for round in 0..RACE_ROUNDS {
        let key = format!("bucket {round}");
        // The second step comes late enough for the bucket to be full again.
        for (step, now_ms) in [(0, t0), (1, t0 + 10_000_000)] {
            let results =
                join_all((0..20).map(|_| store.rate_limit_take(&key, now_ms, 5, 0.001))).await;
            let taken = results
                .into_iter()
                .map(|r| ok("concurrent take", r))
                .filter(|taken| *taken)
                .count();
            assert_eq!(
                taken, 5,
                "round {round} step {step}: exactly the burst is served"
            );
        }
    }
}

/// Pruning deletes the buckets untouched since the cut-off, and only those: a pruned caller
/// starts again with a full bucket, a recent one keeps its debt.
pub async fn rate_limit_prune_forgets_only_idle_buckets(store: &dyn Store) {
    let t0: i64 = 1_800_000_000_000;
    for key in ["idle 1", "idle 2"] {
        assert!(ok("take", store.rate_limit_take(key, t0, 1, 0.001).await));
    }
    assert!(ok(
        "take",
        store.rate_limit_take("recent", t0 + 5_000, 1, 0.001).await
    ));
    assert!(!ok(
        "take",
        store.rate_limit_take("recent", t0 + 5_000, 1, 0.001).await
    ));
    assert_eq!(ok("prune", store.rate_limit_prune(t0 + 1).await), 2);
    assert_eq!(ok("prune again", store.rate_limit_prune(t0 + 1).await), 0);
    // "idle 1" was forgotten: a full bucket again although almost no time passed.
    assert!(ok(
        "take",
        store.rate_limit_take("idle 1", t0 + 6_000, 1, 0.001).await
    ));
    // "recent" was kept: still empty.
    assert!(!ok(
        "take",
        store.rate_limit_take("recent", t0 + 6_000, 1, 0.001).await
    ));
}

/// One bucket is shared by two replicas.
pub(super) async fn replicas_share_buckets(a: &dyn Store, b: &dyn Store) {
    let handles = [a, b];
    let results = join_all(
        (0..20).map(|i| handles[i % 2].rate_limit_take("replicas", 1_800_000_000_000, 5, 0.001)),
    )
    .await;
    let taken = results
        .into_iter()
        .map(|r| ok("take on two replicas", r))
        .filter(|t| *t)
        .count();
    assert_eq!(taken, 5);
}
