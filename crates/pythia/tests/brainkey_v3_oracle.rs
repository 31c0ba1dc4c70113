//! Brainkey v3 live against Virgil's C library (virgil-crypto-lib 0.23.1 through
//! `interop/python/brainkey_v3.py stdio`, venv from `interop/python/setup.sh`): the C client with
//! our server side, and our client with the C server side. `SEALKIT_SKIP_INTEROP=1` skips it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use rand_core::OsRng;
use sealkit_pythia::v3::{self, DeblindFactor, IdentitySecret};
use serde_json::json;
use std::path::PathBuf;

#[path = "../../../interop/python/oracle.rs"]
mod oracle;

use oracle::Oracle;

fn start() -> Option<Oracle> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    Oracle::start(&repo, "the brainkey v3 oracle test")
}

/// The C client against our harden and prove: the proof verifies in C, and the C client's seed
/// is the one the C server gives with the same identity secret.
#[test]
fn c_client_with_rust_server() {
    let Some(mut oracle) = start() else {
        return;
    };
    for password in ["password", "pässwörd 🔐", "x"] {
        let secret = IdentitySecret::random(&mut OsRng);
        let secret_hex = hex::encode(*secret.to_bytes());
        let blind = oracle.call(json!({"op": "blind", "password": password}));
        let blinded = Oracle::bytes(&blind, "blinded_point");
        let hardened = v3::harden(&secret, &blinded).unwrap();
        let public_key = v3::compute_public_key(&secret);
        let proof = v3::prove(&blinded, &hardened, &secret, &public_key, &mut OsRng).unwrap();
        let request = |c: &[u8], s: &[u8]| {
            json!({"op": "verify", "blinded_point": hex::encode(&blinded),
                "hardened_point": hex::encode(hardened), "server_public_key": hex::encode(public_key),
                "c": hex::encode(c), "s": hex::encode(s)})
        };
        assert_eq!(
            oracle.call(request(&proof.c, &proof.s))["ok"],
            true,
            "{password}"
        );
        let mut bad_s = proof.s;
        bad_s[31] ^= 1;
        assert_eq!(oracle.call(request(&proof.c, &bad_s))["ok"], false);

        let c_hardened = oracle.call(json!({"op": "harden", "identity_secret": secret_hex,
            "blinded_point": hex::encode(&blinded)}));
        assert_eq!(
            Oracle::bytes(&c_hardened, "hardened_point"),
            hardened.to_vec()
        );
        let c_public =
            oracle.call(json!({"op": "compute_public_key", "identity_secret": secret_hex}));
        assert_eq!(
            Oracle::bytes(&c_public, "server_public_key"),
            public_key.to_vec()
        );

        let seed = oracle.call(json!({"op": "deblind", "password": password,
            "hardened_point": hex::encode(hardened), "deblind_factor": blind["deblind_factor"],
            "key_name": "e3kit-backup"}));
        let factor = DeblindFactor::from_bytes(&Oracle::bytes(&blind, "deblind_factor")).unwrap();
        let ours = v3::deblind(password.as_bytes(), &hardened, &factor, b"e3kit-backup").unwrap();
        assert_eq!(Oracle::bytes(&seed, "seed"), ours.to_vec());
    }
}

/// Our client against the C server: its proof verifies here and our seed is the C client's.
#[test]
fn rust_client_with_c_server() {
    let Some(mut oracle) = start() else {
        return;
    };
    let secret = oracle.call(json!({"op": "generate_identity_secret"}))["identity_secret"].clone();
    let mut seeds = Vec::new();
    for _ in 0..3 {
        let (factor, blinded) = v3::blind(b"correct horse", &mut OsRng).unwrap();
        let hardened = oracle.call(json!({"op": "harden", "identity_secret": secret,
            "blinded_point": hex::encode(blinded)}));
        let hardened = Oracle::bytes(&hardened, "hardened_point");
        let public_key =
            oracle.call(json!({"op": "compute_public_key", "identity_secret": secret}));
        let public_key = Oracle::bytes(&public_key, "server_public_key");
        let proof = oracle.call(json!({"op": "prove", "blinded_point": hex::encode(blinded),
            "hardened_point": hex::encode(&hardened), "identity_secret": secret,
            "server_public_key": hex::encode(&public_key)}));
        assert_eq!(proof["ok"], true);
        let (c, s) = (Oracle::bytes(&proof, "c"), Oracle::bytes(&proof, "s"));
        v3::verify(&blinded, &hardened, &public_key, &c, &s).unwrap();
        let seed = v3::deblind(b"correct horse", &hardened, &factor, b"e3kit-backup").unwrap();
        let c_seed = oracle.call(json!({"op": "deblind", "password": "correct horse",
            "hardened_point": hex::encode(&hardened), "deblind_factor": hex::encode(*factor.to_bytes()),
            "key_name": "e3kit-backup"}));
        assert_eq!(Oracle::bytes(&c_seed, "seed"), seed.to_vec());
        seeds.push(seed.to_vec());
    }
    assert!(
        seeds.iter().all(|s| s == &seeds[0]),
        "the seed must not depend on the blinding"
    );
}
