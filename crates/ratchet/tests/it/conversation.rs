//! Rust-only sessions: the scripted conversation, session state round trips, and the errors.

use crate::common::{
    converse, deliver, rng, send, start_and_converse, status_of, Party, RustParty, UserKeys,
};
use sealkit_ratchet::x25519_dalek::StaticSecret;
use sealkit_ratchet::{Error, KeyId, Message, MessageType, Session, MAX_PLAIN_TEXT_LEN};

fn pair(one_time: bool) -> (RustParty, RustParty) {
    let (alice, bob) = (UserKeys::new(1), UserKeys::new(2));
    let mut a_rng = rng(1);
    let mut alice_session = Session::initiate(
        &mut a_rng,
        &alice.identity_private(),
        alice.identity_key_id(),
        &bob.bundle(one_time),
    )
    .unwrap();
    let first = alice_session.encrypt(&mut a_rng, b"hello").unwrap();
    assert_eq!(first.message_type(), MessageType::Prekey);
    let first = Message::decode(&first.encode()).unwrap();
    let one_time_key = StaticSecret::from(bob.one_time);
    let mut bob_session = Session::respond(
        &alice.identity_public_key(),
        &bob.identity_private(),
        &StaticSecret::from(bob.long_term),
        one_time.then_some(&one_time_key),
        &first,
    )
    .unwrap();
    assert_eq!(bob_session.decrypt(&first).unwrap().as_slice(), b"hello");
    (
        RustParty {
            session: alice_session,
            rng: a_rng,
        },
        RustParty {
            session: bob_session,
            rng: rng(2),
        },
    )
}

#[test]
fn rust_to_rust_conversation() {
    for one_time in [false, true] {
        let (alice, bob) = (UserKeys::new(1), UserKeys::new(2));
        let mut a_rng = rng(3);
        let session = Session::initiate(
            &mut a_rng,
            &alice.identity_private(),
            alice.identity_key_id(),
            &bob.bundle(one_time),
        )
        .unwrap();
        let mut initiator = RustParty {
            session,
            rng: a_rng,
        };
        start_and_converse(&mut initiator, &mut |first| {
            let one_time_key = StaticSecret::from(bob.one_time);
            let session = Session::respond(
                &alice.identity_public_key(),
                &bob.identity_private(),
                &StaticSecret::from(bob.long_term),
                one_time.then_some(&one_time_key),
                &Message::decode(first).unwrap(),
            )
            .unwrap();
            Box::new(RustParty {
                session,
                rng: rng(4),
            })
        });
    }
}

#[test]
fn prekey_messages_until_the_first_answer() {
    let (mut alice, mut bob) = pair(true);
    let again = alice.session.encrypt(&mut alice.rng, b"again").unwrap();
    let prekey = *again.prekey().unwrap();
    assert_eq!(
        prekey.receiver_one_time_key_id,
        Some(UserKeys::new(2).one_time_key_id())
    );
    assert_eq!(
        prekey.sender_identity_key_id,
        UserKeys::new(1).identity_key_id()
    );
    assert_eq!(bob.session.decrypt(&again).unwrap().as_slice(), b"again");
    let reply = bob.session.encrypt(&mut bob.rng, b"reply").unwrap();
    assert_eq!(reply.message_type(), MessageType::Regular);
    alice.session.decrypt(&reply).unwrap();
    assert!(alice.session.received_first_response());
    let after = alice.session.encrypt(&mut alice.rng, b"after").unwrap();
    assert_eq!(after.message_type(), MessageType::Regular);
    // A prekey message never goes to the initiator.
    assert_eq!(
        alice.session.decrypt(&again).unwrap_err(),
        Error::WrongMessageType
    );
}

#[test]
fn serialized_sessions_continue_and_reencode_identically() {
    let (alice, bob) = pair(false);
    let (mut alice, mut bob) = (alice, bob);
    for step in 0..4 {
        let a_state = alice.serialize();
        let b_state = bob.serialize();
        alice.session = Session::deserialize(&a_state).unwrap();
        bob.session = Session::deserialize(&b_state).unwrap();
        assert_eq!(alice.serialize(), a_state);
        assert_eq!(bob.serialize(), b_state);
        let m = send(&mut alice, &format!("m{step}"));
        let held = send(&mut alice, "held");
        deliver(&mut bob, &m);
        let bob_state = bob.serialize();
        bob.session = Session::deserialize(&bob_state).unwrap();
        deliver(&mut bob, &held);
        let r = send(&mut bob, &format!("r{step}"));
        deliver(&mut alice, &r);
    }
    converse(&mut alice, &mut bob);
}

#[test]
fn failed_decryption_leaves_the_session_unchanged() {
    let (mut alice, mut bob) = pair(false);
    let reply = bob.session.encrypt(&mut bob.rng, b"reply").unwrap();
    alice.session.decrypt(&reply).unwrap();
    // A regular message: its cipher text is the last field, so the last byte is the tag's.
    let m = alice.session.encrypt(&mut alice.rng, b"one").unwrap();
    let before = bob.session.serialize();
    let mut bytes = m.encode();
    let last = bytes.len() - 1;
    bytes[last] ^= 0x80;
    let tampered = Message::decode(&bytes).unwrap();
    assert_eq!(
        bob.session.decrypt(&tampered).unwrap_err(),
        Error::DecryptionFailed
    );
    assert_eq!(bob.session.serialize(), before);
    assert_eq!(bob.session.decrypt(&m).unwrap().as_slice(), b"one");
}

#[test]
fn gap_and_skipped_key_limits() {
    let (mut alice, mut bob) = pair(false);
    let reply = bob.session.encrypt(&mut bob.rng, b"r").unwrap();
    alice.session.decrypt(&reply).unwrap();
    let messages: Vec<_> = (0..2003)
        .map(|_| alice.session.encrypt(&mut alice.rng, b"m").unwrap())
        .collect();
    let state = bob.session.serialize();

    // A new chain: at most MAX_MESSAGE_GAP (2000) ahead of position 0.
    let mut probe = Session::deserialize(&state).unwrap();
    assert_eq!(
        probe.decrypt(&messages[2001]).unwrap_err(),
        Error::TooManyLostMessages
    );
    assert_eq!(probe.serialize(), state);
    probe.decrypt(&messages[2000]).unwrap();
    assert_eq!(probe.skipped_key_count(), 200);

    // 249 skipped keys: only the newest 200 (positions 50..=249) are kept.
    let mut probe = Session::deserialize(&state).unwrap();
    probe.decrypt(&messages[0]).unwrap();
    probe.decrypt(&messages[250]).unwrap();
    assert_eq!(probe.skipped_key_count(), 200);
    assert_eq!(
        probe.decrypt(&messages[49]).unwrap_err(),
        Error::SkippedMessageMissing
    );
    probe.decrypt(&messages[50]).unwrap();
    probe.decrypt(&messages[249]).unwrap();
    assert_eq!(probe.skipped_key_count(), 198);
    assert_eq!(
        probe.decrypt(&messages[250]).unwrap_err(),
        Error::SkippedMessageMissing
    );

    // Within a chain the gap counts from the next expected position (here 1).
    let mut probe = Session::deserialize(&state).unwrap();
    probe.decrypt(&messages[0]).unwrap();
    assert_eq!(
        probe.decrypt(&messages[2002]).unwrap_err(),
        Error::TooManyLostMessages
    );
    probe.decrypt(&messages[2001]).unwrap();
}

#[test]
fn encrypt_errors() {
    let (alice, bob) = (UserKeys::new(1), UserKeys::new(2));
    let (mut a, mut b) = pair(false);
    assert_eq!(
        a.session
            .encrypt(&mut a.rng, &vec![0; MAX_PLAIN_TEXT_LEN + 1])
            .unwrap_err(),
        Error::PlaintextTooLong
    );
    assert!(a
        .session
        .encrypt(&mut a.rng, &vec![0; MAX_PLAIN_TEXT_LEN])
        .is_ok());
    // The responder cannot encrypt before it decrypted a message.
    let mut r = rng(9);
    let mut fresh = Session::initiate(
        &mut r,
        &alice.identity_private(),
        KeyId([0; 8]),
        &bob.bundle(false),
    )
    .unwrap();
    let first = fresh.encrypt(&mut r, b"x").unwrap();
    let mut responder = Session::respond(
        &alice.identity_public_key(),
        &bob.identity_private(),
        &StaticSecret::from(bob.long_term),
        None,
        &first,
    )
    .unwrap();
    assert_eq!(
        responder.encrypt(&mut r, b"y").unwrap_err(),
        Error::SessionNotReady
    );
    // Respond needs a prekey message.
    let regular = b.session.encrypt(&mut b.rng, b"z").unwrap();
    assert_eq!(
        Session::respond(
            &alice.identity_public_key(),
            &bob.identity_private(),
            &StaticSecret::from(bob.long_term),
            None,
            &regular
        )
        .unwrap_err(),
        Error::WrongMessageType
    );
    // The wrong one-time key: the session keys differ and the first message does not open.
    let wrong = StaticSecret::from([77; 32]);
    let err = Session::respond(
        &alice.identity_public_key(),
        &bob.identity_private(),
        &StaticSecret::from(bob.long_term),
        Some(&wrong),
        &first,
    )
    .unwrap_err();
    assert_eq!(status_of(&err), -3);
}
