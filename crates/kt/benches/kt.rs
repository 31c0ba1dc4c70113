//! Key-transparency costs on an in-memory AKD directory (the library's own memory store, so
//! these are the algorithm's costs, not the database's): lookup proof generation and
//! verification, proof sizes, history verification, and one epoch's publish, at a few directory
//! sizes. `KT_BENCH_SIZES=1000,10000` picks the sizes (default 1000 and 10000).
//!
//! Run: `cargo bench -p sealkit-kt --bench kt`.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use akd::ecvrf::{VRFKeyStorage, VrfError};
use akd::storage::memory::AsyncInMemoryDatabase;
use akd::storage::StorageManager;
use akd::{AkdValue, AzksParallelismConfig, Directory, HistoryParams};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use ed25519_dalek::SigningKey;
use sealkit_kt::{
    card_set_commitment, encode_history_proof, encode_lookup_proof, identity_label, verify_history,
    verify_lookup, KtConfiguration, SignedHead,
};
use sealkit_proto::kt as wire;

#[derive(Clone)]
struct FixedVrf;

#[async_trait::async_trait]
impl VRFKeyStorage for FixedVrf {
    async fn retrieve(&self) -> Result<Vec<u8>, VrfError> {
        Ok(vec![3; 32])
    }
}

type Dir = Directory<KtConfiguration, AsyncInMemoryDatabase, FixedVrf>;

fn value(i: u64, round: u64) -> AkdValue {
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&i.to_be_bytes());
    id[8..16].copy_from_slice(&round.to_be_bytes());
    AkdValue(card_set_commitment([id]).to_vec())
}

fn sizes() -> Vec<u64> {
    // `cargo test --all-targets` runs benches once in test mode: keep that quick.
    if !std::env::args().any(|a| a == "--bench") {
        return vec![200];
    }
    std::env::var("KT_BENCH_SIZES")
        .ok()
        .map(|s| s.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000])
}

async fn directory(n: u64) -> Dir {
    let db = AsyncInMemoryDatabase::new();
    let dir = Dir::new(
        StorageManager::new_no_cache(db),
        FixedVrf,
        AzksParallelismConfig::default(),
    )
    .await
    .unwrap();
    // Built in epochs of 10,000, like a server catching up.
    let mut start = 0;
    while start < n {
        let end = (start + 10_000).min(n);
        let updates = (start..end)
            .map(|i| (identity_label(&format!("user{i}")), value(i, 0)))
            .collect();
        dir.publish(updates).await.unwrap();
        start = end;
    }
    // A second version for user0, so history has two.
    dir.publish(vec![(identity_label("user0"), value(0, 1))])
        .await
        .unwrap();
    dir
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let key = SigningKey::from_bytes(&[5; 32]);
    let pinned = key.verifying_key().to_bytes();
    let mut group = c.benchmark_group("kt");
    group.sample_size(20);
    for n in sizes() {
        let dir = rt.block_on(directory(n));
        let vrf: [u8; 32] = rt.block_on(dir.get_public_key()).unwrap().to_bytes();
        let sign = |epoch: u64, root: [u8; 32]| SignedHead::sign(&key, "app", epoch, root, vrf);

        group.bench_with_input(BenchmarkId::new("lookup_generate", n), &n, |b, _| {
            b.iter(|| rt.block_on(dir.lookup(identity_label("user7"))).unwrap())
        });
        let (proof, akd::EpochHash(epoch, root)) =
            rt.block_on(dir.lookup(identity_label("user7"))).unwrap();
        let response = wire::LookupResponse {
            head: sign(epoch, root).to_wire(),
            identity: "user7".into(),
            proof: encode_lookup_proof(&proof),
            pending: None,
        };
        let json = serde_json::to_vec(&response).unwrap();
        eprintln!(
            "n={n}: lookup proof {} bytes protobuf, {} bytes JSON response",
            response.proof.len() * 3 / 4,
            json.len()
        );
        group.bench_with_input(BenchmarkId::new("lookup_verify", n), &n, |b, _| {
            b.iter(|| verify_lookup(&pinned, "app", "user7", &response).unwrap())
        });

        let (history, akd::EpochHash(epoch, root)) = rt
            .block_on(dir.key_history(&identity_label("user0"), HistoryParams::Complete))
            .unwrap();
        let history = wire::HistoryResponse {
            head: sign(epoch, root).to_wire(),
            identity: "user0".into(),
            most_recent: None,
            proof: encode_history_proof(&history),
        };
        eprintln!(
            "n={n}: history proof (2 versions) {} bytes protobuf",
            history.proof.len() * 3 / 4
        );
        group.bench_with_input(BenchmarkId::new("history_verify", n), &n, |b, _| {
            b.iter(|| verify_history(&pinned, "app", "user0", &history).unwrap())
        });

        // One epoch updating 1% of the identities (at least one).
        let mut round = 1;
        group.bench_with_input(BenchmarkId::new("publish_1pct", n), &n, |b, _| {
            b.iter(|| {
                round += 1;
                let updates = (0..(n / 100).max(1))
                    .map(|i| (identity_label(&format!("user{}", i * 100)), value(i, round)))
                    .collect();
                rt.block_on(dir.publish(updates)).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
