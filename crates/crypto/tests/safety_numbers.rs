//! Safety numbers against `tests/data/safety_numbers.json`, made by an independent Python
//! implementation (`tests/data/safety_numbers.py`) of the algorithm in docs/key-transparency.md.
//! Each vector is checked from both sides, and a failure names the vector.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use sealkit_crypto::{PublicKey, SafetyNumber, SAFETY_NUMBER_ITERATIONS, SAFETY_NUMBER_VERSION};
use serde_json::Value;

fn keys(list: &Value) -> Vec<PublicKey> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|hex_der| {
            PublicKey::from_der(&hex::decode(hex_der.as_str().unwrap()).unwrap()).unwrap()
        })
        .collect()
}

#[test]
fn vectors_match_the_python_oracle_from_both_sides() {
    let doc: Value = serde_json::from_str(include_str!("data/safety_numbers.json")).unwrap();
    assert_eq!(doc["version"], u64::from(SAFETY_NUMBER_VERSION));
    assert_eq!(doc["iterations"], SAFETY_NUMBER_ITERATIONS as u64);
    let vectors = doc["vectors"].as_array().unwrap();
    assert!(vectors.len() >= 5);
    for v in vectors {
        let name = v["name"].as_str().unwrap();
        let (li, ri) = (
            v["local_identity"].as_str().unwrap(),
            v["remote_identity"].as_str().unwrap(),
        );
        let (lk, rk) = (keys(&v["local_keys"]), keys(&v["remote_keys"]));
        let local = SafetyNumber::compute(li, &lk, ri, &rk).unwrap();
        let remote = SafetyNumber::compute(ri, &rk, li, &lk).unwrap();
        assert_eq!(
            local.as_str(),
            v["safety_number"].as_str().unwrap(),
            "vector {name:?}"
        );
        assert_eq!(remote, local, "vector {name:?}: the other side");
        assert_eq!(
            local.grouped(),
            v["grouped"].as_str().unwrap(),
            "vector {name:?}"
        );
        // Each side's half is its own 30 digits (the oracle gives them separately).
        for half in ["local_half", "remote_half"] {
            assert!(
                local.as_str().contains(v[half].as_str().unwrap()),
                "vector {name:?}: {half}"
            );
        }
        assert!(local.matches(v["grouped"].as_str().unwrap()));
        assert!(local.matches(v["safety_number"].as_str().unwrap()));
    }
}
