//! The behaviour every [`Store`] backend must show, as one `pub async fn` per behaviour taking
//! `&dyn Store` (each expects an empty store and panics on a violation), and the
//! [`store_conformance_tests!`](crate::store_conformance_tests) macro that turns them into one
//! `#[tokio::test]` each for a backend. One file per domain (`apps`, `cards`, `keyknox`,
//! `pythia` for rate limits, `chat`, `blobs` for chat attachments, `kt`, `pfs` for ratchet
//! keys); this one holds the helpers they share and
//! [`replicas_agree`], which runs each domain's two-replica check.
//!
//! A new backend adds one line to its tests: `crate::store_conformance_tests!(factory());`.
//! Compiled for this crate's tests and, for other crates' stores, with the `conformance`
//! feature.

use std::fmt::Debug;
use std::hash::{DefaultHasher, Hash, Hasher};

use futures_util::future::join_all;

use super::{Store, StoreError, StoreResult};

mod apps;
mod blobs;
mod cards;
mod chat;
mod chat_edits;
mod hooks;
mod keyknox;
mod kt;
mod pfs;
mod pythia;

pub use apps::*;
pub use blobs::*;
pub use cards::*;
pub use chat::*;
pub use chat_edits::*;
pub use hooks::*;
pub use keyknox::*;
pub use kt::*;
pub use pfs::*;
pub use pythia::*;

/// Expands to one `#[tokio::test]` per behaviour of [`crate::store::conformance`].
///
/// `$factory` is an expression, evaluated afresh in every test, whose value is a future of
/// `(store, guard)`: `store` implements [`Store`](crate::store::Store) and is empty; `guard` is
/// dropped after the store and the test (use it to delete a temporary file or schema). The
/// tests run on tokio's multi-threaded runtime, so a guard may use
/// `tokio::task::block_in_place`. The calling crate needs `tokio` with the `macros` and
/// `rt-multi-thread` features.
///
/// ```ignore
/// async fn temp_store() -> (SqliteStore, tempfile::TempDir) { /* ... */ }
/// sealkit_server::store_conformance_tests!(temp_store());
/// ```
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@each $factory;
            apps_and_keys,
            app_creation_is_atomic,
            settings_first_writer_wins,
            publish_get_search,
            publish_conflicts,
            rotation_chain,
            rotation_rules,
            revoking_head_hides_chain,
            revoking_predecessor_cuts_chain,
            revoke_card_rules,
            unregister_then_register_again,
            cross_app_isolation,
            non_ascii_identities,
            raw_bytes_verbatim,
            concurrent_first_publishes,
            concurrent_rotations,
            concurrent_duplicate_ids,
            search_fifty_identities,
            keyknox_v1_versions_and_hashes,
            keyknox_v1_compare_and_swap,
            keyknox_v1_identities_and_sizes,
            keyknox_v1_concurrent_puts,
            keyknox_v2_group_lifecycle,
            keyknox_v2_push_rules,
            keyknox_v2_reset_filters,
            keyknox_v2_isolation,
            keyknox_v2_non_ascii,
            keyknox_v2_hundred_identities,
            keyknox_v2_concurrent_pushes,
            keyknox_v2_quota,
            keyknox_v2_concurrent_quota,
            search_bounds_the_chain,
            rate_limit_burst_and_refill,
            rate_limit_concurrent_takes,
            rate_limit_prune_forgets_only_idle_buckets,
            chat_channels_create_and_list,
            chat_membership_rules,
            chat_full_channel,
            chat_post_rules,
            chat_concurrent_posts,
            chat_history_cursors,
            chat_events_delivered,
            chat_concurrent_membership,
            chat_read_state,
            chat_typing_is_announced_not_stored,
            chat_edit_rules,
            chat_delete_rules,
            hooks_queue_metadata_events,
            hooks_claim_lease_retry_ack,
            hooks_concurrent_claims_are_disjoint,
            chat_blobs_chunks_and_membership,
            chat_blobs_size_limit,
            chat_blobs_quota,
            chat_blobs_attach_rules,
            chat_blobs_deleted_with_message,
            chat_blobs_garbage_collected,
            kt_card_changes_are_queued,
            kt_records_and_values,
            kt_roots_first_write_wins,
            pfs_upload_rules,
            pfs_pick_hands_out_each_key_once,
            pfs_delete_removes_everything,
            pfs_concurrent_picks,
            pfs_concurrent_uploads_keep_the_limit,
        );
    };
    (@each $factory:expr; $($name:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let (store, guard) = $factory.await;
                $crate::store::conformance::$name(&store).await;
                drop(store);
                drop(guard);
            }
        )+
    };
}

/// A test id (a channel id or an identity); the suite only writes valid ones.
pub(super) fn id<T: TryFrom<String, Error = sealkit_proto::InvalidId>>(text: &str) -> T {
    match T::try_from(text.to_owned()) {
        Ok(id) => id,
        Err(e) => panic!("test id {text:?}: {e}"),
    }
}

/// Unwraps a store result, panicking with the step and the error.
pub(super) fn ok<T>(step: &str, result: StoreResult<T>) -> T {
    match result {
        Ok(value) => value,
        Err(e) => panic!("{step}: unexpected error {e:?}"),
    }
}

/// Asserts that `result` is `Err(Conflict(_))`.
pub(super) fn assert_conflict<T: Debug>(step: &str, result: StoreResult<T>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("{step}: expected Conflict, got {other:?}"),
    }
}

/// `n` hex characters derived from `label` (stable within a build).
pub(super) fn hex_id(label: &str, n: usize) -> String {
    let mut out = String::with_capacity(n + 16);
    let mut round = 0u64;
    while out.len() < n {
        let mut hasher = DefaultHasher::new();
        (label, round).hash(&mut hasher);
        out.push_str(&format!("{:016x}", hasher.finish()));
        round += 1;
    }
    out.truncate(n);
    out
}

/// A 32-hex-character application id.
pub(crate) fn app_id(label: &str) -> String {
    hex_id(&format!("app {label}"), 32)
}

/// Opens as many pooled connections as the store will use, so that the racing calls that
/// follow really overlap instead of queueing behind connection set-up.
pub(super) async fn warm_up(store: &dyn Store, app_id: &str) {
    let results = join_all((0..20).map(|_| store.get_card(app_id, "warm-up"))).await;
    for result in results {
        ok("warm-up", result);
    }
}

/// Rounds of each race in the concurrency tests: a lost race shows only sometimes.
pub(super) const RACE_ROUNDS: usize = 5;

/// Two handles on one database (two server processes): concurrent first publishes, rotations,
/// settings, Keyknox v1 puts and v2 pushes split between them still have exactly one winner
/// each, a rate-limit bucket is shared, and ratchet one-time keys are handed out once. Backends call this with
/// two independently opened stores on the same, empty database.
pub async fn replicas_agree(a: &dyn Store, b: &dyn Store) {
    cards::replicas_agree_on_cards(a, b).await;
    apps::replicas_share_settings(a, b).await;
    keyknox::replicas_agree_on_keyknox(a, b).await;
    pythia::replicas_share_buckets(a, b).await;
    pfs::replicas_never_share_a_key(a, b).await;
}
