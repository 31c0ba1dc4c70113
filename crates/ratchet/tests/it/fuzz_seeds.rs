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

fn seed(target: &str, name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target)
            .join(name),
    )
    .unwrap()
}

/// The committed seeds are C-made (see `interop/python/ratchet.py seeds`): they also serve as
/// offline interop vectors, and the message seeds must open with the fixed keys of
/// `fuzzing::decrypt`, or that target would never get past the session start.
#[test]
fn c_made_seeds_are_real_vectors() {
    use sealkit_ratchet::x25519_dalek::StaticSecret;
    use sealkit_ratchet::{IdentityPrivateKey, IdentityPublicKey, Message, Session};

    let alice = IdentityPrivateKey::from_ed25519_seed(&[1; 32]);
    let alice_public = IdentityPublicKey::from_x25519_bytes(alice.x25519_public_key().to_bytes());
    let bob = IdentityPrivateKey::from_ed25519_seed(&[2; 32]);
    let (long_term, one_time) = (StaticSecret::from([3; 32]), StaticSecret::from([4; 32]));
    for (name, uses_one_time, plaintext) in [
        ("c-prekey-one-time.bin", true, b"first".to_vec()),
        ("c-prekey-second.bin", true, b"second".repeat(40)),
        (
            "c-prekey-no-one-time.bin",
            false,
            b"no one-time key".to_vec(),
        ),
    ] {
        let bytes = seed("ratchet_message", name);
        let message = Message::decode(&bytes).unwrap();
        assert_eq!(message.encode(), bytes, "{name}");
        let mut session = Session::respond(
            &alice_public,
            &bob,
            &long_term,
            uses_one_time.then_some(&one_time),
            &message,
        )
        .unwrap();
        assert_eq!(
            session.decrypt(&message).unwrap().as_slice(),
            &plaintext[..],
            "{name}"
        );
    }
    // The C responder's state after the second prekey message continues in Rust.
    let mut bob_session =
        Session::deserialize(&seed("ratchet_session", "c-responder-new.bin")).unwrap();
    let second = Message::decode(&seed("ratchet_message", "c-prekey-second.bin")).unwrap();
    assert_eq!(
        bob_session.decrypt(&second).unwrap().as_slice(),
        &b"second".repeat(40)[..]
    );
    let first = Message::decode(&seed("ratchet_message", "c-prekey-one-time.bin")).unwrap();
    assert_eq!(bob_session.decrypt(&first).unwrap().as_slice(), b"first");
    // C states re-encode byte for byte.
    for name in [
        "c-initiator-pending.bin",
        "c-responder-new.bin",
        "c-responder-with-skipped-keys.bin",
        "c-initiator-established.bin",
    ] {
        let bytes = seed("ratchet_session", name);
        let session = Session::deserialize(&bytes).unwrap();
        assert_eq!(session.serialize().as_slice(), &bytes[..], "{name}");
    }
    let with_skipped = Session::deserialize(&seed(
        "ratchet_session",
        "c-responder-with-skipped-keys.bin",
    ))
    .unwrap();
    // Bob skipped the first prekey message (position 0 of alice's first chain) and positions 0
    // and 1 of her second chain.
    assert_eq!(with_skipped.skipped_key_count(), 3);
}

/// Every seed with each byte changed (and cut at each position) through the parsers, and a
/// sample of those through the decrypt entry point: a small, deterministic fuzz run on every
/// test run, on top of the committed seeds.
#[test]
fn mutated_seeds_do_not_panic() {
    for (target, entry) in [
        ("ratchet_message", fuzzing::message as fn(&[u8])),
        ("ratchet_session", fuzzing::session),
    ] {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../fuzz/seeds")
            .join(target);
        for file in std::fs::read_dir(&dir).unwrap().flatten() {
            let original = std::fs::read(file.path()).unwrap();
            for i in 0..original.len() {
                let mut mutated = original.clone();
                mutated[i] ^= 0x55;
                entry(&mutated);
                mutated[i] = 0xff;
                entry(&mutated);
                entry(&original[..i]);
                if target == "ratchet_message" && i % 16 == 0 {
                    fuzzing::decrypt(&mutated);
                }
            }
        }
    }
}
