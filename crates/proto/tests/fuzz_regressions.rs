//! Replays, through the fuzz entry points of `sealkit_proto::fuzzing`, every input a proto fuzz
//! target once failed on (`fuzz/regressions/<target>-*`) and the committed seeds
//! (`fuzz/seeds/<target>/`: real e3kit traffic, hand-made chat bodies and frames), so the test
//! replays real inputs even while no regression exists.

#![cfg(feature = "fuzzing")]
#![allow(missing_docs)]

use sealkit_proto::chat::{ClientFrame, ServerFrame};
use sealkit_proto::{fuzzing, CardContent, Jwt, RawSignedModel};
use std::path::{Path, PathBuf};

/// A fuzz entry point.
type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 4] = [
    ("jwt", fuzzing::jwt),
    ("card", fuzzing::card),
    ("request_body", fuzzing::request_body),
    ("chat_frame", fuzzing::chat_frame),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz")
}

/// The files of `dir` whose names start with `prefix`, sorted.
fn inputs(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|entry| entry.file_name().to_string_lossy().starts_with(prefix))
        .map(|entry| entry.path())
        .collect();
    files.sort();
    files
}

fn replay(files: &[PathBuf], target: Target) {
    for file in files {
        let data = std::fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        target(&data);
    }
}

#[test]
fn regressions_no_longer_fail() {
    for (name, target) in TARGETS {
        replay(
            &inputs(&fuzz_dir().join("regressions"), &format!("{name}-")),
            target,
        );
    }
}

#[test]
fn committed_seeds_pass() {
    for (name, target) in TARGETS {
        let seeds = inputs(&fuzz_dir().join("seeds").join(name), "");
        assert!(seeds.len() >= 2, "fuzz/seeds/{name}/ holds too few seeds");
        replay(&seeds, target);
    }
}

/// The seeds reach past parsing, where the round-trip checks are: each parses as what its target
/// reads.
#[test]
fn committed_seeds_parse() {
    let seeds = |name: &str| -> Vec<Vec<u8>> {
        inputs(&fuzz_dir().join("seeds").join(name), "")
            .iter()
            .map(|file| std::fs::read(file).unwrap_or_default())
            .collect()
    };
    for token in seeds("jwt") {
        let text = String::from_utf8_lossy(&token);
        assert!(Jwt::parse(&text).is_ok(), "{text}");
    }
    for card in seeds("card") {
        assert!(
            serde_json::from_slice::<RawSignedModel>(&card).is_ok()
                || CardContent::from_snapshot(&card).is_ok()
        );
    }
    let mut selectors: Vec<u8> = seeds("request_body")
        .iter()
        .filter_map(|body| {
            let (&selector, json) = body.split_first()?;
            let object = serde_json::from_slice::<serde_json::Value>(json).ok()?;
            object
                .is_object()
                .then_some(selector % fuzzing::REQUEST_BODY_KINDS)
        })
        .collect();
    selectors.dedup();
    assert_eq!(
        selectors,
        (0..fuzzing::REQUEST_BODY_KINDS).collect::<Vec<_>>()
    );
    for frame in seeds("chat_frame") {
        assert!(
            serde_json::from_slice::<ClientFrame>(&frame).is_ok()
                || serde_json::from_slice::<ServerFrame>(&frame).is_ok()
        );
    }
}
