//! The committed seeds of the ratchet fuzz targets (`fuzz/seeds/ratchet_*`), replayed through
//! the same entry points, so the parsers are checked on every test run.

use sealkit_ratchet::fuzzing;
use std::path::Path;

fn replay(target: &str, entry: fn(&[u8])) -> usize {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/seeds")
        .join(target);
    let mut count = 0;
    for entry_path in std::fs::read_dir(&dir).unwrap().flatten() {
        entry(&std::fs::read(entry_path.path()).unwrap());
        count += 1;
    }
    count
}

#[test]
fn ratchet_seeds_replay_without_panics() {
    assert!(replay("ratchet_message", fuzzing::message) >= 4);
    assert!(replay("ratchet_session", fuzzing::session) >= 3);
    assert!(replay("ratchet_message", fuzzing::decrypt) >= 4);
}

#[test]
fn hostile_inputs_do_not_panic() {
    let inputs: [&[u8]; 6] = [
        b"",
        &[0xff; 64],
        // version, then a regular_message whose length runs past the end
        &[0x08, 0x02, 0x12, 0x7f, 0x0a],
        // deep nesting attempt
        &[0x12, 0x02, 0x12, 0x00],
        // varint overflow
        &[
            0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
        ],
        // session with ratchet field of wrong wire type
        &[
            0x08, 0x02, 0x10, 0x00, 0x18, 0x01, 0x20, 0x00, 0x28, 0x00, 0x60, 0x01,
        ],
    ];
    for input in inputs {
        fuzzing::message(input);
        fuzzing::session(input);
        fuzzing::decrypt(input);
    }
}
