//! Brainkey v3 against vectors from Virgil's C library (`tests/data/brainkey_v3.json`, made by
//! `interop/python/brainkey_v3.py vectors` with virgil-crypto-lib 0.23.1): the hash to the curve,
//! harden, the public key, the C proofs and the C seeds, byte for byte.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use p256::elliptic_curve::PrimeField;
use p256::{FieldBytes, Scalar};
use sealkit_pythia::v3::{self, DeblindFactor, IdentitySecret};
use sealkit_pythia::{DecodeErrorKind, Error};

struct Case {
    id: String,
    password: Vec<u8>,
    key_name: Vec<u8>,
    secret: Vec<u8>,
    factor: Vec<u8>,
    blinded: Vec<u8>,
    hardened: Vec<u8>,
    public_key: Vec<u8>,
    c: Vec<u8>,
    s: Vec<u8>,
    seed: Vec<u8>,
}

fn cases() -> Vec<Case> {
    let text = include_str!("data/brainkey_v3.json");
    let json: serde_json::Value = serde_json::from_str(text).unwrap();
    let bytes = |c: &serde_json::Value, k: &str| hex::decode(c[k].as_str().unwrap()).unwrap();
    let cases: Vec<Case> = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| Case {
            id: c["id"].as_str().unwrap().to_owned(),
            password: c["password"].as_str().unwrap().as_bytes().to_vec(),
            key_name: c["key_name"].as_str().unwrap().as_bytes().to_vec(),
            secret: bytes(c, "identity_secret"),
            factor: bytes(c, "deblind_factor"),
            blinded: bytes(c, "blinded_point"),
            hardened: bytes(c, "hardened_point"),
            public_key: bytes(c, "server_public_key"),
            c: bytes(c, "proof_value_c"),
            s: bytes(c, "proof_value_s"),
            seed: bytes(c, "seed"),
        })
        .collect();
    assert!(cases.len() >= 5);
    cases
}

/// The C client's blinded point times its deblind factor is the password's point: our hash to
/// the curve is the C library's.
#[test]
fn hash_to_curve_matches_the_c_client() {
    for case in cases() {
        let factor = Scalar::from_repr(FieldBytes::clone_from_slice(&case.factor)).unwrap();
        let unblinded = v3::decode_point(&case.blinded).unwrap() * factor;
        assert_eq!(
            unblinded,
            v3::hash_to_point(&case.password).unwrap(),
            "{}",
            case.id
        );
    }
}

#[test]
fn harden_and_public_key_match_the_c_server() {
    for case in cases() {
        let secret = IdentitySecret::from_bytes(&case.secret).unwrap();
        assert_eq!(
            v3::harden(&secret, &case.blinded).unwrap().to_vec(),
            case.hardened,
            "{}",
            case.id
        );
        assert_eq!(
            v3::compute_public_key(&secret).to_vec(),
            case.public_key,
            "{}",
            case.id
        );
        assert_eq!(secret.to_bytes().to_vec(), case.secret);
    }
}

#[test]
fn c_proofs_verify_and_tampered_ones_do_not() {
    for case in cases() {
        v3::verify(
            &case.blinded,
            &case.hardened,
            &case.public_key,
            &case.c,
            &case.s,
        )
        .unwrap_or_else(|e| panic!("{}: {e}", case.id));
        for (i, j) in [(0usize, 0usize), (31, 1), (15, 0x80)] {
            let mut c = case.c.clone();
            c[i] ^= j.max(1) as u8;
            let mut s = case.s.clone();
            s[i] ^= j.max(1) as u8;
            for (c, s) in [(&c, &case.s), (&case.c, &s)] {
                assert!(
                    matches!(
                        v3::verify(&case.blinded, &case.hardened, &case.public_key, c, s),
                        Err(Error::ProofInvalid)
                    ),
                    "{}",
                    case.id
                );
            }
        }
        // The proof is bound to the blinded point and to the public key.
        let other = cases().into_iter().find(|o| o.id != case.id).unwrap();
        for (a, y, pk) in [
            (&other.blinded, &case.hardened, &case.public_key),
            (&case.blinded, &case.hardened, &other.public_key),
            (&case.blinded, &other.hardened, &case.public_key),
        ] {
            assert!(matches!(
                v3::verify(a, y, pk, &case.c, &case.s),
                Err(Error::ProofInvalid)
            ));
        }
    }
}

#[test]
fn deblind_gives_the_c_seed() {
    for case in cases() {
        let factor = DeblindFactor::from_bytes(&case.factor).unwrap();
        let seed = v3::deblind(&case.password, &case.hardened, &factor, &case.key_name).unwrap();
        assert_eq!(seed.to_vec(), case.seed, "{}", case.id);
        assert_eq!(factor.to_bytes().to_vec(), case.factor);
        let wrong = v3::deblind(b"wrong", &case.hardened, &factor, &case.key_name).unwrap();
        assert_ne!(wrong.to_vec(), case.seed);
    }
}

#[test]
fn malformed_points_are_typed_errors() {
    let case = &cases()[0];
    let secret = IdentitySecret::from_bytes(&case.secret).unwrap();
    let kind = |bytes: &[u8]| match v3::harden(&secret, bytes) {
        Err(Error::Decode(e)) => e.kind,
        other => panic!("{other:?}"),
    };
    assert_eq!(kind(&[]), DecodeErrorKind::InvalidLength { actual: 0 });
    assert_eq!(kind(&[0]), DecodeErrorKind::InvalidLength { actual: 1 });
    assert_eq!(
        kind(&case.blinded[..33]),
        DecodeErrorKind::InvalidLength { actual: 33 }
    );
    let mut compressed_flag = case.blinded.clone();
    compressed_flag[0] = 0x02;
    assert_eq!(kind(&compressed_flag), DecodeErrorKind::InvalidFlag(0x02));
    let mut off_curve = case.blinded.clone();
    off_curve[64] ^= 1;
    assert_eq!(kind(&off_curve), DecodeErrorKind::NotOnCurve);
    // x = p (non-canonical) with any y.
    let mut big_x = vec![0x04];
    big_x.extend(
        hex::decode("ffffffff00000001000000000000000000000000ffffffffffffffffffffffff").unwrap(),
    );
    big_x.extend(&case.blinded[33..]);
    assert_eq!(kind(&big_x), DecodeErrorKind::NotOnCurve);
    let zeros = [0x04u8; 1]
        .iter()
        .chain([0u8; 64].iter())
        .copied()
        .collect::<Vec<_>>();
    assert_eq!(kind(&zeros), DecodeErrorKind::NotOnCurve);
}

#[test]
fn rust_proofs_verify_in_rust() {
    let mut rng = rand_core::OsRng;
    for case in cases() {
        let secret = IdentitySecret::from_bytes(&case.secret).unwrap();
        let proof = v3::prove(
            &case.blinded,
            &case.hardened,
            &secret,
            &case.public_key,
            &mut rng,
        )
        .unwrap();
        v3::verify(
            &case.blinded,
            &case.hardened,
            &case.public_key,
            &proof.c,
            &proof.s,
        )
        .unwrap();
    }
}
