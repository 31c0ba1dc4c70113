//! Inputs the fuzzers once choked on (`fuzz/regressions/`), replayed through the same entry
//! points on every test run.

#![cfg(feature = "fuzzing")]
#![allow(missing_docs)]

use sealkit_crypto::fuzzing;

fn replay(prefix: &str, target: fn(&[u8])) -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/regressions");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            target(&std::fs::read(entry.path()).unwrap_or_default());
            count += 1;
        }
    }
    count
}

#[test]
fn regressions_no_longer_fail() {
    assert!(replay("decrypt-", fuzzing::decrypt) >= 1);
    assert!(replay("message_info-", fuzzing::message_info) >= 1);
    assert!(replay("footer-", fuzzing::footer) >= 1);
}
