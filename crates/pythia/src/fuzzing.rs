//! `cargo fuzz` entry points (feature `fuzzing`). Each takes arbitrary bytes, decodes them, and
//! when decoding succeeds checks that re-encoding and decoding again gives the same value.
//! A panic is a bug.

use crate::{G1Point, G2Point, Gt, Proof};

/// Relic G1 decoding (49- or 97-byte forms) and both re-encodings.
pub fn fuzz_g1(data: &[u8]) {
    if let Ok(p) = G1Point::from_relic(data) {
        let c = p.to_relic_compressed();
        assert_eq!(G1Point::from_relic(&c).ok(), Some(p));
        let u = p.to_relic_uncompressed();
        assert_eq!(G1Point::from_relic(&u).ok(), Some(p));
    }
}

/// Relic G2 decoding (97-byte compressed form) and re-encoding.
pub fn fuzz_g2(data: &[u8]) {
    if let Ok(p) = G2Point::from_relic(data) {
        let c = p.to_relic_compressed();
        assert_eq!(G2Point::from_relic(&c).ok(), Some(p));
    }
}

/// Packed GT decoding and re-encoding (byte-exact: the packed form has no redundancy).
pub fn fuzz_gt(data: &[u8]) {
    if let Ok(g) = Gt::from_relic(data) {
        assert_eq!(g.to_relic().as_slice(), data);
    }
}

/// Proof decoding: the input is split in two at its first byte's value.
pub fn fuzz_proof(data: &[u8]) {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let (c, u) = rest.split_at((split as usize).min(rest.len()));
    if let Ok(p) = Proof::from_relic(c, u) {
        assert_eq!(Proof::from_relic(&p.value_c(), &p.value_u()).ok(), Some(p));
    }
}
