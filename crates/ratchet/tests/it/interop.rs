//! Rust sessions against Virgil's libvsc_ratchet: sessions started by either library and
//! continued by the other, both directions of a conversation with out-of-order and skipped
//! messages, session state handed over between the libraries, the same limits and errors, and
//! messages parsed and re-encoded identically.

use serde_json::json;

use crate::common::oracle::{bytes, CParty, Oracle, Shared};
use crate::common::{converse, deliver, rng, send, start_and_converse, Party, RustParty, UserKeys};
use sealkit_ratchet::x25519_dalek::StaticSecret;
use sealkit_ratchet::{Message, MessageType, Session};

fn rust_initiator(alice: &UserKeys, bob: &UserKeys, one_time: bool, seed: u64) -> RustParty {
    let mut r = rng(seed);
    let session = Session::initiate(
        &mut r,
        &alice.identity_private(),
        alice.identity_key_id(),
        &bob.bundle(one_time),
    )
    .unwrap();
    RustParty { session, rng: r }
}

fn rust_responder(
    alice: &UserKeys,
    bob: &UserKeys,
    one_time: bool,
    first: &[u8],
    seed: u64,
) -> RustParty {
    let one_time_key = StaticSecret::from(bob.one_time);
    let session = Session::respond(
        &alice.identity_public_key(),
        &bob.identity_private(),
        &StaticSecret::from(bob.long_term),
        one_time.then_some(&one_time_key),
        &Message::decode(first).unwrap(),
    )
    .unwrap();
    RustParty {
        session,
        rng: rng(seed),
    }
}

#[test]
fn c_initiates_rust_responds() {
    let Some(oracle) = Oracle::start("ratchet interop (C initiates)") else {
        return;
    };
    let (alice, bob) = (UserKeys::new(11), UserKeys::new(12));
    for one_time in [true, false] {
        let mut initiator = CParty::initiate(&oracle, &alice, &bob, one_time);
        start_and_converse(&mut initiator, &mut |first| {
            Box::new(rust_responder(&alice, &bob, one_time, first, 5))
        });
    }
}

#[test]
fn rust_initiates_c_responds() {
    let Some(oracle) = Oracle::start("ratchet interop (Rust initiates)") else {
        return;
    };
    let (alice, bob) = (UserKeys::new(21), UserKeys::new(22));
    for one_time in [true, false] {
        let mut initiator = rust_initiator(&alice, &bob, one_time, 6);
        start_and_converse(&mut initiator, &mut |first| {
            Box::new(CParty::respond(&oracle, &alice, &bob, one_time, first).unwrap())
        });
    }
}

#[test]
fn c_to_c_runs_the_same_script() {
    // The script's expectations (which failures, which codes) hold for the reference itself.
    let Some(oracle) = Oracle::start("ratchet interop (C with C)") else {
        return;
    };
    let (alice, bob) = (UserKeys::new(31), UserKeys::new(32));
    let mut initiator = CParty::initiate(&oracle, &alice, &bob, true);
    start_and_converse(&mut initiator, &mut |first| {
        Box::new(CParty::respond(&oracle, &alice, &bob, true, first).unwrap())
    });
}

/// Moves a party's session to the other library through the serialized state, checking that
/// the state re-encodes to the same bytes on the way.
fn hand_over(oracle: &Shared, party: &mut dyn Party) -> Box<dyn Party> {
    let state = party.serialize();
    if party.name() == "C" {
        let session = Session::deserialize(&state).unwrap();
        assert_eq!(
            session.serialize().as_slice(),
            &state[..],
            "C state re-encoded by Rust"
        );
        Box::new(RustParty {
            session,
            rng: rng(state.len() as u64),
        })
    } else {
        let mut c = CParty::deserialize(oracle, &state).unwrap();
        assert_eq!(c.serialize(), state, "Rust state re-encoded by C");
        Box::new(c)
    }
}

#[test]
fn sessions_move_between_the_libraries_mid_conversation() {
    let Some(oracle) = Oracle::start("ratchet interop (state handover)") else {
        return;
    };
    let (alice, bob) = (UserKeys::new(41), UserKeys::new(42));
    // C initiator saves its state before any answer; Rust continues it (prekey messages with the
    // same ephemeral key), and the C responder accepts both.
    let mut c_alice = CParty::initiate(&oracle, &alice, &bob, true);
    let m0 = send(&mut c_alice, "from C");
    let mut alice_side = hand_over(&oracle, &mut c_alice);
    let m1 = send(alice_side.as_mut(), "from Rust, same session");
    let mut bob_side: Box<dyn Party> =
        Box::new(CParty::respond(&oracle, &alice, &bob, true, &m1.0).unwrap());
    deliver(bob_side.as_mut(), &m1);
    deliver(bob_side.as_mut(), &m0);
    // Now swap both sides between the libraries after every exchange, with messages in flight.
    let mut in_flight = Vec::new();
    for round in 0..6 {
        let a = send(alice_side.as_mut(), &format!("a{round}"));
        in_flight.push(send(alice_side.as_mut(), &format!("a{round}-late")));
        deliver(bob_side.as_mut(), &a);
        let b = send(bob_side.as_mut(), &format!("b{round}"));
        deliver(alice_side.as_mut(), &b);
        alice_side = hand_over(&oracle, alice_side.as_mut());
        bob_side = hand_over(&oracle, bob_side.as_mut());
        if round % 2 == 1 {
            for late in in_flight.drain(..) {
                deliver(bob_side.as_mut(), &late);
            }
        }
    }
    converse(alice_side.as_mut(), bob_side.as_mut());
}

/// Decrypts `order` (indices into `messages`) in both libraries from the same serialized state;
/// the outcomes and the states after each step must be identical (decryption uses no
/// randomness, so the states are comparable byte for byte).
fn same_outcomes(
    oracle: &Shared,
    state: &[u8],
    messages: &[Vec<u8>],
    order: &[usize],
) -> Vec<Result<(), i64>> {
    let mut rust = RustParty {
        session: Session::deserialize(state).unwrap(),
        rng: rng(0),
    };
    let mut c = CParty::deserialize(oracle, state).unwrap();
    let mut outcomes = Vec::new();
    for &i in order {
        let r = rust.decrypt(&messages[i]).map(|_| ());
        let cr = c.decrypt(&messages[i]).map(|_| ());
        assert_eq!(r, cr, "message {i} of {order:?}");
        assert_eq!(
            rust.serialize(),
            c.serialize(),
            "state after message {i} of {order:?}"
        );
        outcomes.push(r);
    }
    outcomes
}

#[test]
fn limits_and_skipped_keys_match_the_c_library() {
    let Some(oracle) = Oracle::start("ratchet interop (limits)") else {
        return;
    };
    let (alice, bob) = (UserKeys::new(51), UserKeys::new(52));
    let mut a = rust_initiator(&alice, &bob, false, 7);
    let first = send(&mut a, "first");
    let mut b = rust_responder(&alice, &bob, false, &first.0, 8);
    deliver(&mut b, &first);
    let reply = send(&mut b, "reply");
    deliver(&mut a, &reply);
    let messages: Vec<Vec<u8>> = (0..2003).map(|_| a.encrypt(b"m")).collect();
    let state = b.serialize();

    let ok = Ok(());
    let gap = Err(-11);
    let missing = Err(-13);
    assert_eq!(
        same_outcomes(&oracle, &state, &messages, &[2001, 2000]),
        [gap, ok]
    );
    assert_eq!(
        same_outcomes(&oracle, &state, &messages, &[0, 2002, 2001, 1]),
        [ok, gap, ok, missing]
    );
    assert_eq!(
        same_outcomes(
            &oracle,
            &state,
            &messages,
            &[0, 250, 49, 50, 249, 250, 10, 251]
        ),
        [ok, ok, missing, ok, ok, missing, missing, ok]
    );
}

#[test]
fn skipped_keys_of_at_most_five_chains_are_kept() {
    let Some(oracle) = Oracle::start("ratchet interop (five chains)") else {
        return;
    };
    let (alice, bob) = (UserKeys::new(61), UserKeys::new(62));
    // Rust alice, and bob in each library in turn; one message of each of alice's chains is
    // held back and delivered at the end.
    for bob_in_c in [false, true] {
        let mut a = rust_initiator(&alice, &bob, true, 9);
        let first = send(&mut a, "first");
        let mut b: Box<dyn Party> = if bob_in_c {
            Box::new(CParty::respond(&oracle, &alice, &bob, true, &first.0).unwrap())
        } else {
            Box::new(rust_responder(&alice, &bob, true, &first.0, 10))
        };
        deliver(b.as_mut(), &first);
        let mut held = Vec::new();
        for chain in 0..7 {
            let reply = send(b.as_mut(), &format!("reply {chain}"));
            deliver(&mut a, &reply);
            held.push(send(&mut a, &format!("held {chain}")));
            let next = send(&mut a, &format!("next {chain}"));
            deliver(b.as_mut(), &next);
        }
        // Chains 0 and 1 are beyond the five most recent (2..=6) of bob's receiving chains: their
        // ratchet keys are unknown again, so the messages look like a new chain of alice's, and
        // bob, who has just received and not sent since, has no sending chain to ratchet from
        // (vscr_status_ERROR_SENDER_CHAIN_MISSING).
        let outcomes: Vec<_> = held.iter().map(|m| b.decrypt(&m.0).map(|_| ())).collect();
        assert_eq!(
            outcomes,
            [Err(-12), Err(-12), Ok(()), Ok(()), Ok(()), Ok(()), Ok(())],
            "bob in {}",
            b.name()
        );
    }
}

#[test]
fn messages_parse_and_reencode_identically() {
    let Some(oracle) = Oracle::start("ratchet interop (message format)") else {
        return;
    };
    let (alice, bob) = (UserKeys::new(71), UserKeys::new(72));
    for one_time in [true, false] {
        let mut c_alice = CParty::initiate(&oracle, &alice, &bob, one_time);
        let mut messages = vec![c_alice.encrypt(b"c prekey"), c_alice.encrypt(&[7; 400])];
        let mut b = rust_responder(&alice, &bob, one_time, &messages[0], 11);
        b.decrypt(&messages[0]).unwrap();
        messages.push(b.encrypt(b"rust regular"));
        c_alice.decrypt(messages.last().unwrap()).unwrap();
        messages.push(c_alice.encrypt(b"c regular"));
        let mut r_alice = rust_initiator(&alice, &bob, one_time, 12);
        messages.push(r_alice.encrypt(b"rust prekey"));

        for wire in &messages {
            let rust = Message::decode(wire).unwrap();
            assert_eq!(&rust.encode(), wire);
            let info = oracle
                .borrow_mut()
                .call(json!({"op": "message_info", "message": hex::encode(wire)}));
            assert_eq!(&bytes(&info, "serialized"), wire);
            match rust.message_type() {
                MessageType::Prekey => {
                    let prekey = rust.prekey().unwrap();
                    assert_eq!(info["type"], "prekey");
                    assert_eq!(
                        info["counter"], 0,
                        "the C getter reports 0 for prekey messages"
                    );
                    assert_eq!(
                        bytes(&info, "sender_identity_key_id"),
                        alice.identity_key_id().0
                    );
                    assert_eq!(prekey.sender_identity_key_id, alice.identity_key_id());
                    assert_eq!(
                        bytes(&info, "receiver_identity_key_id"),
                        prekey.receiver_identity_key_id.0
                    );
                    assert_eq!(
                        bytes(&info, "receiver_long_term_key_id"),
                        prekey.receiver_long_term_key_id.0
                    );
                    assert_eq!(
                        info.get("receiver_one_time_key_id")
                            .map(|_| bytes(&info, "receiver_one_time_key_id")),
                        prekey.receiver_one_time_key_id.map(|id| id.0.to_vec())
                    );
                }
                MessageType::Regular => {
                    assert_eq!(info["type"], "regular");
                    assert_eq!(info["counter"], rust.header().counter);
                }
            }
        }
    }
}

#[test]
fn malformed_input_is_refused_by_both() {
    let Some(oracle) = Oracle::start("ratchet interop (malformed)") else {
        return;
    };
    let (alice, bob) = (UserKeys::new(81), UserKeys::new(82));
    let mut a = rust_initiator(&alice, &bob, false, 13);
    let wire = a.encrypt(b"x");
    for cut in [1, 5, wire.len() / 2, wire.len() - 1] {
        let truncated = &wire[..cut];
        let c = oracle
            .borrow_mut()
            .try_call(json!({"op": "message_info", "message": hex::encode(truncated)}));
        assert_eq!(c.map(|_| ()), Err(-1), "C on cut {cut}");
        assert!(Message::decode(truncated).is_err(), "Rust on cut {cut}");
    }
    let state = a.serialize();
    for cut in [3, state.len() / 2, state.len() - 1] {
        assert_eq!(
            CParty::deserialize(&oracle, &state[..cut]).map(|_| ()),
            Err(-1),
            "C on cut {cut}"
        );
        assert!(
            Session::deserialize(&state[..cut]).is_err(),
            "Rust on cut {cut}"
        );
    }
}
