//! The sample vectors of the official WASM build (`tests/data/pythia_brainkey.json`) and
//! virgil-crypto's `generateKeysFromKeyMaterial` example (`tests/data/key_material_example.json`).
//! Every assertion names the vector it failed on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::codec::{gt_to_relic, G1Point, G2Point, Gt};
use crate::hash::{hash_to_g1, hash_to_g2};
use crate::{
    deblind, private_key_from_key_material, verify_proof, BlindingSecret, Error, Proof,
    TransformationKey,
};
use ark_bls12_381::{Bls12_381, G1Affine};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup};
use ark_ff::{Field, PrimeField};
use serde_json::Value;

const VECTORS: &str = include_str!("../tests/data/pythia_brainkey.json");
const KEY_MATERIAL: &str = include_str!("../tests/data/key_material_example.json");

struct Vector {
    id: usize,
    v: Value,
}

impl Vector {
    fn bytes(&self, field: &str) -> Vec<u8> {
        let s = self.v[field]
            .as_str()
            .unwrap_or_else(|| panic!("vector {}: no field {field}", self.id));
        hex::decode(s).unwrap()
    }
}

fn vectors() -> Vec<Vector> {
    let all: Vec<Value> = serde_json::from_str(VECTORS).unwrap();
    assert_eq!(all.len(), 4);
    all.into_iter()
        .enumerate()
        .map(|(id, v)| Vector { id, v })
        .collect()
}

/// relic G1/G2/GT encodings decode and re-encode byte-exactly.
#[test]
fn encodings_round_trip() {
    for t in vectors() {
        let id = t.id;
        for field in ["blinded", "pk"] {
            let b = t.bytes(field);
            let p = G1Point::from_relic(&b).unwrap_or_else(|e| panic!("vector {id} {field}: {e}"));
            assert_eq!(p.to_relic_compressed().as_slice(), b, "vector {id} {field}");
            let u = p.to_relic_uncompressed();
            assert_eq!(G1Point::from_relic(&u).unwrap(), p, "vector {id} {field}");
        }
        let b = t.bytes("t_tilde");
        let p = G2Point::from_relic(&b).unwrap_or_else(|e| panic!("vector {id} t_tilde: {e}"));
        assert_eq!(p.to_relic_compressed().as_slice(), b, "vector {id} t_tilde");
        for field in ["y", "y_kw1", "deblinded", "deblinded_kw1"] {
            let b = t.bytes(field);
            let g = Gt::from_relic(&b).unwrap_or_else(|e| panic!("vector {id} {field}: {e}"));
            assert_eq!(g.to_relic().as_slice(), b, "vector {id} {field}");
        }
    }
}

/// H1(password) = blinding_secret · blinded, and H2(tweak) = t_tilde.
#[test]
fn hash_maps_match_relic() {
    for t in vectors() {
        let id = t.id;
        let x = G1Point::from_relic(&t.bytes("blinded")).unwrap();
        let s = BlindingSecret::from_relic_bn(&t.bytes("blinding_secret")).unwrap();
        let h = (x.0 * s.scalar()).into_affine();
        assert_eq!(hash_to_g1(&t.bytes("password")), h, "vector {id}: H1");
        let t2 = G2Point::new(hash_to_g2(&t.bytes("tweak"))).unwrap();
        assert_eq!(
            t2.to_relic_compressed().to_vec(),
            t.bytes("t_tilde"),
            "vector {id}: H2"
        );
    }
}

/// The transform with kw = 1 (y_kw1 = e(X, T̃)) and with the vector's key pair; the pk; the
/// exported kw.
#[test]
fn transform_matches_wasm() {
    let one = TransformationKey::from_relic_bn(&[0, 1]).unwrap();
    assert_eq!(
        one.public_key().0,
        G1Affine::generator(),
        "kw = 1 has pk = G"
    );
    for t in vectors() {
        let id = t.id;
        let (blinded, tweak) = (t.bytes("blinded"), t.bytes("tweak"));
        let y1 = one.transform(&blinded, &tweak).unwrap();
        assert_eq!(y1.to_vec(), t.bytes("y_kw1"), "vector {id}: y with kw = 1");

        let key = TransformationKey::from_relic_bn(&t.bytes("kw")).unwrap();
        assert_eq!(
            *key.to_relic_bn(),
            t.bytes("kw"),
            "vector {id}: kw re-export"
        );
        assert_eq!(
            key.public_key().to_relic_compressed().to_vec(),
            t.bytes("pk"),
            "vector {id}: pk"
        );
        let y = key.transform(&blinded, &tweak).unwrap();
        assert_eq!(y.to_vec(), t.bytes("y"), "vector {id}: y");
    }
}

/// Deblinding the WASM's answers with its blinding secret (negative ones included), and the
/// deblinded value equals `e(H1(pw), H2(tweak))^kw` computed directly.
#[test]
fn deblind_matches_wasm() {
    for t in vectors() {
        let id = t.id;
        let s = BlindingSecret::from_relic_bn(&t.bytes("blinding_secret")).unwrap();
        let u = deblind(&t.bytes("y"), &s).unwrap();
        assert_eq!(u.to_vec(), t.bytes("deblinded"), "vector {id}: deblinded");
        let u1 = deblind(&t.bytes("y_kw1"), &s).unwrap();
        assert_eq!(
            u1.to_vec(),
            t.bytes("deblinded_kw1"),
            "vector {id}: deblinded_kw1"
        );

        let key = TransformationKey::from_relic_bn(&t.bytes("kw")).unwrap();
        let base = Bls12_381::pairing(
            hash_to_g1(&t.bytes("password")),
            hash_to_g2(&t.bytes("tweak")),
        )
        .0;
        assert_eq!(
            gt_to_relic(&base).to_vec(),
            t.bytes("deblinded_kw1"),
            "vector {id}: e(H1, H2)"
        );
        let direct = base.pow(key.scalar().into_bigint());
        assert_eq!(
            gt_to_relic(&direct).to_vec(),
            t.bytes("deblinded"),
            "vector {id}: e(H1, H2)^kw"
        );
    }
}

/// The WASM's proofs verify here, re-encode byte-exactly, and fail when anything is changed.
#[test]
fn wasm_proofs_verify() {
    for t in vectors() {
        let id = t.id;
        assert_eq!(t.v["verified"], Value::Bool(true));
        let (pk, blinded, tweak, y) = (
            t.bytes("pk"),
            t.bytes("blinded"),
            t.bytes("tweak"),
            t.bytes("y"),
        );
        let proof = Proof::from_relic(&t.bytes("proof_c"), &t.bytes("proof_u")).unwrap();
        assert_eq!(proof.value_c(), t.bytes("proof_c"), "vector {id}: value_c");
        assert_eq!(proof.value_u(), t.bytes("proof_u"), "vector {id}: value_u");
        verify_proof(&pk, &blinded, &tweak, &y, &proof)
            .unwrap_or_else(|e| panic!("vector {id}: {e}"));

        let mut other_tweak = tweak.clone();
        other_tweak.push(b'!');
        assert!(matches!(
            verify_proof(&pk, &blinded, &other_tweak, &y, &proof),
            Err(Error::ProofInvalid)
        ));
        assert!(matches!(
            verify_proof(&pk, &blinded, &tweak, &t.bytes("y_kw1"), &proof),
            Err(Error::ProofInvalid)
        ));
        let mut u = t.bytes("proof_u");
        *u.last_mut().unwrap() ^= 1;
        let bad = Proof::from_relic(&t.bytes("proof_c"), &u).unwrap();
        assert!(matches!(
            verify_proof(&pk, &blinded, &tweak, &y, &bad),
            Err(Error::ProofInvalid)
        ));
    }
}

/// Our own proofs, with the vectors' keys and inputs, verify.
#[test]
fn own_proofs_verify_on_vectors() {
    let mut rng = <rand_chacha::ChaCha20Rng as rand_core::SeedableRng>::seed_from_u64(7);
    for t in vectors().into_iter().take(2) {
        let id = t.id;
        let key = TransformationKey::from_relic_bn(&t.bytes("kw")).unwrap();
        let (y, proof) = key
            .transform_with_proof(&t.bytes("blinded"), &t.bytes("tweak"), &mut rng)
            .unwrap();
        assert_eq!(y.to_vec(), t.bytes("y"), "vector {id}");
        verify_proof(
            &t.bytes("pk"),
            &t.bytes("blinded"),
            &t.bytes("tweak"),
            &y,
            &proof,
        )
        .unwrap_or_else(|e| panic!("vector {id}: {e}"));
    }
}

/// virgil-crypto's `generateKeysFromKeyMaterial` (KDF2-SHA-512 → CTR_DRBG → Ed25519).
#[test]
fn key_material_matches_virgil_crypto() {
    let v: Value = serde_json::from_str(KEY_MATERIAL).unwrap();
    let material = v["key_material_utf8"].as_str().unwrap().as_bytes();
    let key = private_key_from_key_material(material).unwrap();
    assert_eq!(
        hex::encode(key.to_der().as_slice()),
        v["private_key_der"].as_str().unwrap()
    );
    assert_eq!(
        hex::encode(key.public_key().to_der()),
        v["public_key_der"].as_str().unwrap()
    );
}
