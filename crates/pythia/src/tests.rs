//! Unit tests: constant-time arithmetic against arkworks, decoder rejections, the protocol
//! round trip, and what `Debug` prints.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::codec::{bn_decode, bn_encode_be, g1_rhs, gt_to_relic, G1Point, G2Point, Gt};
use crate::ct;
use crate::field::{fq_srt, fq_to_be, mont_parity};
use crate::hash::{hash_to_g1, hash_to_g2};
use crate::server::{Generations, POINT_GENERATION, PREPARED_GENERATION};
use crate::{
    blind, brainkey_from_deblinded, brainkey_tweak, deblind, verify_proof, BlindingSecret,
    BrainkeyServer, DecodeErrorKind, Encoding, Error, Proof, TransformationKey,
};
use ark_bls12_381::{Bls12_381, Fq, Fr, G1Affine, G1Projective};
use ark_ec::pairing::Pairing;
use ark_ec::{AffineRepr, CurveGroup, PrimeGroup};
use ark_ff::{BigInteger, Field, One, PrimeField, UniformRand, Zero};
use rand_chacha::ChaCha20Rng;
use rand_core::SeedableRng;

fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

fn kind(r: Result<impl Sized, Error>) -> DecodeErrorKind {
    match r {
        Err(Error::Decode(e)) => e.kind,
        Err(e) => panic!("unexpected error {e}"),
        Ok(_) => panic!("decoded"),
    }
}

fn random_g1(rng: &mut ChaCha20Rng) -> G1Affine {
    (G1Projective::generator() * Fr::rand(rng)).into_affine()
}

// --- constant-time arithmetic ------------------------------------------------------------------

#[test]
fn ct_g1_mul_equals_arkworks() {
    let mut rng = rng(1);
    let mut scalars = vec![
        Fr::zero(),
        Fr::one(),
        Fr::from(2u64),
        Fr::from(3u64),
        Fr::from(16u64),
        Fr::from(17u64),
        -Fr::one(),
        -Fr::from(2u64),
        Fr::from(u64::MAX),
    ];
    scalars.extend((0..24).map(|_| Fr::rand(&mut rng)));
    let bases = [
        G1Affine::generator(),
        random_g1(&mut rng),
        hash_to_g1(b"pw"),
    ];
    for base in bases {
        for k in &scalars {
            let expected = (base * k).into_affine();
            assert_eq!(ct::g1_mul(&base, k), expected, "k = {k}");
        }
    }
    assert!(ct::g1_mul(&G1Affine::identity(), &Fr::from(5u64)).is_zero());
}

#[test]
fn ct_gt_pow_equals_arkworks() {
    let mut rng = rng(2);
    let a = Bls12_381::pairing(random_g1(&mut rng), hash_to_g2(b"t")).0;
    let mut scalars = vec![Fr::zero(), Fr::one(), Fr::from(15u64), -Fr::one()];
    scalars.extend((0..6).map(|_| Fr::rand(&mut rng)));
    for k in &scalars {
        assert_eq!(ct::gt_pow(&a, k), a.pow(k.into_bigint()), "k = {k}");
    }
}

// --- decoders ----------------------------------------------------------------------------------

#[test]
fn g1_parity_flag_selects_the_point() {
    let mut rng = rng(3);
    for _ in 0..16 {
        let p = G1Point::from_relic(&G1Point(random_g1(&mut rng)).to_relic_compressed()).unwrap();
        let mut flipped = p.to_relic_compressed();
        flipped[0] ^= 1;
        let q = G1Point::from_relic(&flipped).unwrap();
        assert_eq!(q.0, -p.0);
        assert_ne!(q, p);
        // the flag is the Montgomery parity, not the canonical one
        let y = p.0.y;
        assert_eq!(p.to_relic_compressed()[0], 0x02 | mont_parity(&y));
    }
}

#[test]
fn montgomery_parity_differs_from_canonical_parity_sometimes() {
    let mut rng = rng(4);
    let differs = (0..64)
        .map(|_| random_g1(&mut rng).y)
        .filter(|y| mont_parity(y) != (y.into_bigint().0[0] & 1) as u8)
        .count();
    assert!(differs > 8 && differs < 56, "{differs}");
}

/// An x with no point: x³ + 4 is not a square.
fn x_off_curve() -> Fq {
    let mut x = Fq::from(1u64);
    while fq_srt(&g1_rhs(&x)).is_some() {
        x += Fq::one();
    }
    x
}

/// A curve point outside G1 (the try-and-increment point before cofactor clearing).
fn point_outside_subgroup() -> G1Affine {
    let mut x = Fq::from(1u64);
    loop {
        if let Some(y) = fq_srt(&g1_rhs(&x)) {
            let p = G1Affine::new_unchecked(x, y);
            if !p.is_in_correct_subgroup_assuming_on_curve() {
                return p;
            }
        }
        x += Fq::one();
    }
}

#[test]
fn g1_decoder_rejects_bad_points() {
    let good = G1Point(G1Affine::generator()).to_relic_compressed();
    assert!(G1Point::from_relic(&good).is_ok());

    let mut b = [0u8; 49];
    b[0] = 0x02;
    fq_to_be(&x_off_curve(), &mut b[1..]);
    assert_eq!(kind(G1Point::from_relic(&b)), DecodeErrorKind::NotOnCurve);

    let p = point_outside_subgroup();
    let mut b = [0u8; 49];
    b[0] = 0x02 | mont_parity(&p.y);
    fq_to_be(&p.x, &mut b[1..]);
    assert_eq!(
        kind(G1Point::from_relic(&b)),
        DecodeErrorKind::NotInSubgroup
    );
    let mut u = [0u8; 97];
    u[0] = 0x04;
    fq_to_be(&p.x, &mut u[1..49]);
    fq_to_be(&p.y, &mut u[49..]);
    assert_eq!(
        kind(G1Point::from_relic(&u)),
        DecodeErrorKind::NotInSubgroup
    );

    // uncompressed with a y that does not match x
    let mut u = G1Point(G1Affine::generator()).to_relic_uncompressed();
    u[96] ^= 1;
    assert_eq!(kind(G1Point::from_relic(&u)), DecodeErrorKind::NotOnCurve);

    // x = p (non-canonical zero)
    let mut b = [0xffu8; 49];
    b[0] = 0x02;
    assert_eq!(kind(G1Point::from_relic(&b)), DecodeErrorKind::NonCanonical);
    let mut b = good;
    let modulus = Fq::MODULUS.to_bytes_be();
    b[1..].copy_from_slice(&modulus);
    assert_eq!(kind(G1Point::from_relic(&b)), DecodeErrorKind::NonCanonical);

    for flag in [0x00, 0x01, 0x04, 0x06, 0x82] {
        let mut b = good;
        b[0] = flag;
        assert_eq!(
            kind(G1Point::from_relic(&b)),
            DecodeErrorKind::InvalidFlag(flag)
        );
    }
    assert_eq!(kind(G1Point::from_relic(&[0])), DecodeErrorKind::Identity);
    assert_eq!(
        kind(G1Point::from_relic(&[2])),
        DecodeErrorKind::InvalidFlag(2)
    );
    for len in [0, 2, 48, 50, 96, 98] {
        let mut b = vec![0u8; len];
        if let Some(f) = b.first_mut() {
            *f = 2;
        }
        assert_eq!(
            kind(G1Point::from_relic(&b)),
            DecodeErrorKind::InvalidLength { actual: len }
        );
    }
    match G1Point::from_relic(&[]) {
        Err(Error::Decode(e)) => assert_eq!(e.encoding, Encoding::G1),
        _ => panic!(),
    }
}

#[test]
fn g2_decoder_rejects_bad_points() {
    let t = G2Point::new(hash_to_g2(b"tweak")).unwrap();
    let good = t.to_relic_compressed();
    assert_eq!(G2Point::from_relic(&good).unwrap(), t);
    let mut flipped = good;
    flipped[0] ^= 1;
    assert_eq!(G2Point::from_relic(&flipped).unwrap().0, -t.0);

    // off curve: bump x.c0 until there is no root
    let mut b = good;
    loop {
        b[48] = b[48].wrapping_add(1);
        match G2Point::from_relic(&b) {
            Err(Error::Decode(e)) if e.kind == DecodeErrorKind::NotOnCurve => break,
            Err(Error::Decode(e)) => assert_eq!(e.kind, DecodeErrorKind::NotInSubgroup),
            other => panic!("{other:?}"),
        }
    }
    // on the curve but not in G2: the hash's point before cofactor clearing is almost surely so
    let mut b = good;
    loop {
        b[48] = b[48].wrapping_add(1);
        if let Err(Error::Decode(e)) = G2Point::from_relic(&b) {
            if e.kind == DecodeErrorKind::NotInSubgroup {
                break;
            }
        }
    }
    let mut b = [0xffu8; 97];
    b[0] = 2;
    assert_eq!(kind(G2Point::from_relic(&b)), DecodeErrorKind::NonCanonical);
    let mut b = good;
    b[0] = 4;
    assert_eq!(
        kind(G2Point::from_relic(&b)),
        DecodeErrorKind::InvalidFlag(4)
    );
    assert_eq!(kind(G2Point::from_relic(&[0])), DecodeErrorKind::Identity);
    assert_eq!(
        kind(G2Point::from_relic(&good[..49])),
        DecodeErrorKind::InvalidLength { actual: 49 }
    );
}

#[test]
fn gt_decoder_rejects_bad_values() {
    let y = Bls12_381::pairing(G1Affine::generator(), hash_to_g2(b"t")).0;
    let good = gt_to_relic(&y);
    assert_eq!(Gt::from_relic(&good).unwrap().0, y);
    assert_eq!(
        kind(Gt::from_relic(&good[..383])),
        DecodeErrorKind::InvalidLength { actual: 383 }
    );
    let mut full = good.to_vec();
    full.extend_from_slice(&[0; 192]);
    assert_eq!(
        kind(Gt::from_relic(&full)),
        DecodeErrorKind::InvalidLength { actual: 576 }
    );
    // one bit changed: decompresses to something outside GT
    let mut b = good;
    b[383] ^= 1;
    assert_eq!(kind(Gt::from_relic(&b)), DecodeErrorKind::NotInSubgroup);
    // a coefficient >= p
    let mut b = good;
    b[..48].copy_from_slice(&[0xff; 48]);
    assert_eq!(kind(Gt::from_relic(&b)), DecodeErrorKind::NonCanonical);
    // the identity (all zero) cannot be decompressed
    assert_eq!(
        kind(Gt::from_relic(&[0; 384])),
        DecodeErrorKind::NotInSubgroup
    );
    // y⁻¹ = conjugate is fine
    let inv = gt_to_relic(&y.inverse().unwrap());
    assert!(Gt::from_relic(&inv).is_ok());
}

#[test]
fn integer_codec_is_relic_minimal() {
    assert_eq!(bn_encode_be(&[0, 0, 1, 2]), vec![0, 1, 2]);
    assert_eq!(bn_encode_be(&[0, 0]), vec![0]);
    assert!(bn_decode(&[0]).is_ok());
    for bad in [&[][..], &[1], &[0, 0], &[1, 0, 5], &[2, 1], &[0, 0, 1]] {
        assert!(bn_decode(bad).is_err(), "{bad:?}");
    }
    assert!(bn_decode(&[0; 51]).is_err());
    let mut long = vec![0u8; 50];
    long[1] = 1;
    assert!(bn_decode(&long).is_ok());
    assert!(BlindingSecret::from_relic_bn(&[0]).is_err());
    assert!(TransformationKey::from_relic_bn(&[0]).is_err());
    // -1 and r - 1 are the same key
    let a = TransformationKey::from_relic_bn(&[1, 1]).unwrap();
    let r1 = bn_encode_be(&crate::field::fr_to_be(&-Fr::one()));
    let b = TransformationKey::from_relic_bn(&r1).unwrap();
    assert_eq!(a.public_key(), b.public_key());
    assert_eq!(*a.to_relic_bn(), r1);
    // a proof's c must be non-negative and at most 256 bits
    assert!(Proof::from_relic(&[1, 5], &[0, 1]).is_err());
    let mut c = vec![0u8, 1];
    c.extend_from_slice(&[0; 32]);
    assert!(Proof::from_relic(&c, &[0, 1]).is_err());
}

// --- protocol ----------------------------------------------------------------------------------

#[test]
fn round_trip_is_independent_of_the_blinding() {
    let mut rng = rng(5);
    let server = BrainkeyServer::new(&[9; 32]).unwrap();
    let run = |pw: &[u8], identity: &str, rng: &mut ChaCha20Rng| {
        let (blinded, secret) = blind(pw, rng).unwrap();
        let seed = server.transform(&blinded, "app", identity).unwrap();
        (blinded, deblind(&seed, &secret).unwrap())
    };
    let (b1, u1) = run(b"password", "alice", &mut rng);
    let (b2, u2) = run(b"password", "alice", &mut rng);
    assert_ne!(b1, b2);
    assert_eq!(*u1, *u2);

    // the deblinded value is e(H1(pw), H2(tweak))^kw
    let key = server.brainkey_key("app", "alice", None).unwrap();
    let tweak = brainkey_tweak("app", "alice", None).unwrap();
    let direct = Bls12_381::pairing(hash_to_g1(b"password"), hash_to_g2(&tweak))
        .0
        .pow(key.scalar().into_bigint());
    assert_eq!(*u1, gt_to_relic(&direct));

    let (_, other_pw) = run(b"passwore", "alice", &mut rng);
    let (_, other_id) = run(b"password", "bob", &mut rng);
    assert_ne!(*u1, *other_pw);
    assert_ne!(*u1, *other_id);
    assert_ne!(*other_pw, *other_id);

    let k1 = brainkey_from_deblinded(&u1);
    let k2 = brainkey_from_deblinded(&u2);
    assert_eq!(k1.public_key(), k2.public_key());
    assert_ne!(
        k1.public_key(),
        brainkey_from_deblinded(&other_id).public_key()
    );
}

/// The transform through the tweak cache (prepared lines, affine points, evictions) equals the
/// uncached `e(kw·X, H2(tweak))` for every user, and users that differ in any field never get
/// each other's answer.
#[test]
fn cached_tweaks_give_the_uncached_transform() {
    let mut rng = rng(11);
    let (blinded, _) = blind(b"password", &mut rng).unwrap();
    let users: Vec<(String, String, Option<String>)> = (0..12)
        .map(|i| {
            let app = if i % 2 == 0 { "app-a" } else { "app-b" };
            let brainkey_id = (i % 3 == 1).then(|| "backup".to_owned());
            (app.to_owned(), format!("user-{}", i / 2), brainkey_id)
        })
        .chain([
            ("app-ida".to_owned(), "lice".to_owned(), None),
            ("app-id".to_owned(), "alice".to_owned(), None),
        ])
        .collect();
    let uncached = |server: &BrainkeyServer, (app, id, bid): &(String, String, Option<String>)| {
        let key = server.brainkey_key(app, id, bid.as_deref()).unwrap();
        let tweak = brainkey_tweak(app, id, bid.as_deref()).unwrap();
        key.transform(&blinded, &tweak).unwrap()
    };
    // Tiny generations: most lookups miss or hit the previous generation and entries are
    // evicted all the time; the default sizes: everything stays.
    for (prepared, points) in [(1, 2), (2, 5), (PREPARED_GENERATION, POINT_GENERATION)] {
        let server = BrainkeyServer::with_cache_generations(&[5; 32], prepared, points).unwrap();
        let expected: Vec<_> = users.iter().map(|u| uncached(&server, u)).collect();
        for round in 0..3 {
            for (i, user) in users.iter().enumerate() {
                // repeat users and a scan in a different order
                let j = if round == 1 { users.len() - 1 - i } else { i };
                let (app, id, bid) = &users[j];
                let got = server
                    .transform_with_brainkey_id(&blinded, app, id, bid.as_deref())
                    .unwrap();
                assert_eq!(
                    got, expected[j],
                    "user {user:?}, generations {prepared}/{points}"
                );
            }
            let (hot, all) = server.cached_tweaks();
            assert!(hot <= 2 * prepared && all <= 2 * points);
        }
        let mut distinct = expected.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), users.len());
    }
}

#[test]
fn generations_are_bounded_and_keep_what_is_used() {
    let mut cache = Generations::new(3);
    let key = |i: u8| [i; 32];
    cache.insert(key(0), 0u32);
    for i in 1..50u8 {
        cache.insert(key(i), u32::from(i));
        // used once per insertion: never dropped
        assert_eq!(cache.get(&key(0)), Some(0));
        assert!(cache.len() <= 6);
    }
    assert_eq!(cache.get(&key(49)), Some(49));
    assert_eq!(cache.get(&key(1)), None);
}

/// The permanent derivation. The expected `kw` values were computed independently with Python's
/// `hmac`/`hashlib` from the layout documented on [`BrainkeyServer`]; the tweak bytes are that
/// layout written out. If this test fails, every user's brain key has changed.
#[test]
fn derivation_is_pinned() {
    let server = BrainkeyServer::new(&[0x11; 32]).unwrap();
    let key = server.brainkey_key("app-id", "alice", None).unwrap();
    assert_eq!(
        hex::encode(key.to_relic_bn().as_slice()),
        "00316c86ec4280c27e05313eda345334402a98ed0ce12dba71cd35d7bac8a3977e"
    );
    let same = server.brainkey_key("app-id", "alice", Some("")).unwrap();
    assert_eq!(same.public_key(), key.public_key());
    let other = server.brainkey_key("app-id", "alice", Some("x")).unwrap();
    assert_ne!(other.public_key(), key.public_key());
    // the field boundaries are unambiguous
    let shifted = server.brainkey_key("app-ida", "lice", None).unwrap();
    assert_ne!(shifted.public_key(), key.public_key());

    let tweak = brainkey_tweak("app-id", "alice", None).unwrap();
    assert_eq!(
        tweak,
        b"sealkit-pythia/brainkey/tweak/v1\x00\x06app-id\x00\x05alice\x00\x00".to_vec()
    );
    let pw = server.password_key("app-id", 1).unwrap();
    assert_eq!(
        hex::encode(pw.to_relic_bn().as_slice()),
        "00248f2d7064f961497c8ebe0c74f36a695efe6bf2bdd3e765526d48919299ae7e"
    );
    assert_ne!(
        server.password_key("app-id", 2).unwrap().public_key(),
        pw.public_key()
    );
}

/// End to end: master secret, app, identity and password → brain key. A change detector (the
/// value comes from this implementation, whose parts are checked against the WASM vectors and
/// the Python-computed `kw` above), so that no refactoring silently changes users' keys.
#[test]
fn brainkey_end_to_end_is_pinned() {
    let server = BrainkeyServer::new(&[0x11; 32]).unwrap();
    let (blinded, secret) = blind(b"correct horse battery staple", &mut rng(9)).unwrap();
    let seed = server.transform(&blinded, "app-id", "alice").unwrap();
    let key = brainkey_from_deblinded(&deblind(&seed, &secret).unwrap());
    assert_eq!(hex::encode(key.public_key().to_der()), PINNED_BRAINKEY_SPKI);
}

const PINNED_BRAINKEY_SPKI: &str =
    "302a300506032b6570032100ac698e22384bd0541becda14e741fb80f77ccf5fde8bac75fd3c47099f52779d";

#[test]
fn kw_is_relic_compute_kw() {
    use hmac::{Hmac, Mac};
    let server = BrainkeyServer::new(&[0x22; 40]).unwrap();
    let key = server.password_key("app", 7).unwrap();
    let mut mac = <Hmac<sha2::Sha384> as Mac>::new_from_slice(&[0x22; 40]).unwrap();
    mac.update(b"sealkit-pythia/password/kw/v1\x00\x03app");
    mac.update(&7u32.to_be_bytes());
    let kw = Fr::from_be_bytes_mod_order(&mac.finalize().into_bytes());
    assert_eq!(key.scalar(), kw);
}

#[test]
fn server_input_checks() {
    assert!(BrainkeyServer::new(&[0; 31]).is_err());
    assert!(BrainkeyServer::new(&[0; 129]).is_err());
    let server = BrainkeyServer::new(&[1; 128]).unwrap();
    let id = "x".repeat(65_536);
    assert!(server.transform(&[0; 49], "app", &id).is_err());
    let blinded = G1Point(G1Affine::generator()).to_relic_compressed();
    assert!(server.transform(&blinded, "app", "alice").is_ok());
    assert_eq!(
        kind(server.transform(&[0], "app", "alice")),
        DecodeErrorKind::Identity
    );
    let mut rng = rng(6);
    assert!(blind(b"", &mut rng).is_err());
    assert!(blind(&[b'a'; 129], &mut rng).is_err());
    assert!(blind(&[b'a'; 128], &mut rng).is_ok());
}

#[test]
fn proofs_round_trip() {
    let mut rng = rng(8);
    let server = BrainkeyServer::new(&[3; 32]).unwrap();
    let key = server.password_key("app", 1).unwrap();
    let pk = key.public_key().to_relic_compressed();
    let (blinded, secret) = blind(b"hunter2", &mut rng).unwrap();
    let (y, proof) = key
        .transform_with_proof(&blinded, b"salt", &mut rng)
        .unwrap();
    assert_eq!(y, key.transform(&blinded, b"salt").unwrap());
    verify_proof(&pk, &blinded, b"salt", &y, &proof).unwrap();
    let decoded = Proof::from_relic(&proof.value_c(), &proof.value_u()).unwrap();
    assert_eq!(decoded, proof);
    assert!(matches!(
        verify_proof(&pk, &blinded, b"pepper", &y, &proof),
        Err(Error::ProofInvalid)
    ));
    let other = server.password_key("app", 2).unwrap().public_key();
    assert!(matches!(
        verify_proof(&other.to_relic_compressed(), &blinded, b"salt", &y, &proof),
        Err(Error::ProofInvalid)
    ));
    assert!(deblind(&y, &secret).is_ok());
}

#[test]
fn secrets_do_not_print() {
    let server = BrainkeyServer::new(&[0x33; 32]).unwrap();
    assert_eq!(format!("{server:?}"), "BrainkeyServer { .. }");
    let key = TransformationKey::from_relic_bn(&[0, 1]).unwrap();
    assert_eq!(
        format!("{key:?}"),
        format!(
            "TransformationKey {{ public_key: G1Point({}), .. }}",
            hex::encode(G1Point(G1Affine::generator()).to_relic_compressed())
        )
    );
    let y = Bls12_381::pairing(G1Affine::generator(), hash_to_g2(b"t")).0;
    assert_eq!(format!("{:?}", Gt(y)), "Gt(..)");
}

/// The `cargo fuzz` entry points survive the vectors' encodings, bit flips of them and random
/// bytes (run with `--features fuzzing`).
#[cfg(feature = "fuzzing")]
#[test]
fn fuzz_entry_points_do_not_panic() {
    use crate::fuzzing::{fuzz_g1, fuzz_g2, fuzz_gt, fuzz_proof};
    use rand_core::RngCore;
    let mut rng = rng(10);
    let g1 = G1Point(random_g1(&mut rng));
    let g2 = G2Point::new(hash_to_g2(b"t")).unwrap();
    let gt = gt_to_relic(&Bls12_381::pairing(g1.0, g2.0).0);
    let seeds: Vec<Vec<u8>> = vec![
        g1.to_relic_compressed().to_vec(),
        g1.to_relic_uncompressed().to_vec(),
        g2.to_relic_compressed().to_vec(),
        gt.to_vec(),
        vec![33, 0, 1, 2, 3, 0, 4, 5],
        vec![0],
        vec![],
    ];
    let all = |b: &[u8]| {
        fuzz_g1(b);
        fuzz_g2(b);
        fuzz_gt(b);
        fuzz_proof(b);
    };
    for seed in &seeds {
        all(seed);
        for _ in 0..24 {
            let mut m = seed.clone();
            if let Some(len) = core::num::NonZeroUsize::new(m.len()) {
                let i = rng.next_u32() as usize % len.get();
                m[i] ^= 1 << (rng.next_u32() % 8);
            }
            all(&m);
        }
    }
    for len in [1, 2, 49, 50, 97, 384] {
        for _ in 0..8 {
            let mut b = vec![0u8; len];
            rng.fill_bytes(&mut b);
            all(&b);
        }
    }
}
