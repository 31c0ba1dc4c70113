//! Property round trips of the public API (STYLE §9): envelopes of every kind for any plaintext and
//! any mix of recipients, signatures (one-shot and streaming), key export/import, group sessions,
//! and the streaming `Encryptor`/`Decryptor` under arbitrary chunking.
//!
//! Every case draws a `u64` seed and derives all keys and all randomness from a `ChaCha20Rng`, so a
//! failure reproduces from the seed that proptest reports (and commits to
//! `roundtrip_props.proptest-regressions`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use sealkit_crypto::{
    sign, verify, Crypto, Decryptor, Error, GroupSession, KeyIdScheme, KeyType, MessageKind,
    PrivateKey, PublicKey, Signer, Signing, Verifier,
};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn any_key_type() -> impl Strategy<Value = KeyType> {
    prop_oneof![
        Just(KeyType::Ed25519),
        Just(KeyType::Curve25519),
        Just(KeyType::Secp256r1),
    ]
}

fn signing_key_type() -> impl Strategy<Value = KeyType> {
    prop_oneof![Just(KeyType::Ed25519), Just(KeyType::Secp256r1)]
}

fn any_scheme() -> impl Strategy<Value = KeyIdScheme> {
    prop_oneof![
        Just(KeyIdScheme::Sha512Truncated),
        Just(KeyIdScheme::Sha256)
    ]
}

fn crypto_for(scheme: KeyIdScheme) -> Crypto {
    match scheme {
        KeyIdScheme::Sha512Truncated => Crypto::new(),
        other => Crypto::with_key_ids(other),
    }
}

/// Splits `data` into consecutive pieces whose lengths cycle through `sizes` (a size of 0 yields an
/// empty piece, which every `update` must accept). All-zero `sizes` give one piece.
fn split<'a>(data: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    if sizes.iter().all(|&s| s == 0) {
        return vec![data];
    }
    let mut out = Vec::new();
    let mut rest = data;
    for &size in sizes.iter().cycle() {
        if rest.is_empty() {
            break;
        }
        let (piece, tail) = rest.split_at(size.min(rest.len()));
        out.push(piece);
        rest = tail;
    }
    out
}

/// Base64 of the DER (what `to_base64` returns) wrapped as PEM by hand, 64 characters a line.
fn pem(label: &str, base64: &str) -> String {
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in base64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn public_keys(keys: &[PrivateKey]) -> Vec<PublicKey> {
    keys.iter().map(|k| k.public_key().clone()).collect()
}

/// Decrypts `message` by pushing it into a `Decryptor` in pieces.
fn decrypt_chunked(
    message: &[u8],
    key: &PrivateKey,
    verify_with: Option<&[PublicKey]>,
    sizes: &[usize],
) -> Result<(Vec<u8>, MessageKind), Error> {
    let mut dec = Decryptor::new(key, verify_with, Vec::new())?;
    for piece in split(message, sizes) {
        dec.update(piece)?;
    }
    dec.finish().map(|(plain, info)| (plain, info.kind))
}

fn is_recipient_not_found<T>(r: &Result<T, Error>) -> bool {
    matches!(r, Err(Error::RecipientNotFound))
}

// ---------------------------------------------------------------------------------------------
// Envelopes: encrypt / sign-then-encrypt / sign-and-encrypt
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Every recipient of every kind of message gets the plaintext back; a non-recipient gets
    /// `RecipientNotFound`; a wrong signer is rejected; the same seed gives the same bytes.
    #[test]
    fn every_kind_opens_for_every_recipient_only(
        seed in any::<u64>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..4000),
        recipient_types in prop::collection::vec(any_key_type(), 1..=5),
        signer_type in signing_key_type(),
        wrong_signer_type in signing_key_type(),
        outsider_type in any_key_type(),
        padding in any::<bool>(),
        scheme in any_scheme(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let crypto = crypto_for(scheme);
        let recipients: Vec<PrivateKey> =
            recipient_types.iter().map(|&t| PrivateKey::generate(t, &mut rng)).collect();
        let to = public_keys(&recipients);
        let signer = PrivateKey::generate(signer_type, &mut rng);
        let signers = [signer.public_key().clone()];
        let wrong = [PrivateKey::generate(wrong_signer_type, &mut rng).public_key().clone()];
        let outsider = PrivateKey::generate(outsider_type, &mut rng);
        let pt = plaintext.as_slice();

        let mut msg_rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        let plain = crypto.encrypt(&mut msg_rng, pt, &to, padding).unwrap();
        let ste = crypto.sign_then_encrypt(&mut msg_rng, pt, &signer, &to, padding).unwrap();
        let sae = crypto.sign_and_encrypt(&mut msg_rng, pt, &signer, &to, padding).unwrap();

        // Randomness comes only from the rng parameter: the same seed gives the same bytes.
        let mut again = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
        prop_assert_eq!(&crypto.encrypt(&mut again, pt, &to, padding).unwrap(), &plain);
        prop_assert_eq!(
            &crypto.sign_then_encrypt(&mut again, pt, &signer, &to, padding).unwrap(),
            &ste
        );
        prop_assert_eq!(
            &crypto.sign_and_encrypt(&mut again, pt, &signer, &to, padding).unwrap(),
            &sae
        );

        for key in &recipients {
            // Plain.
            prop_assert_eq!(crypto.decrypt(&plain, key).unwrap(), pt);
            let (p, info) = crypto.decrypt_verified(&plain, key, None).unwrap();
            prop_assert_eq!(p, pt);
            prop_assert_eq!(info.kind, MessageKind::Plain);
            prop_assert_eq!(info.verified_by, None);
            prop_assert!(matches!(
                crypto.decrypt_verified(&plain, key, Some(&signers)),
                Err(Error::SignerNotFound)
            ));

            // Sign-then-encrypt.
            prop_assert_eq!(crypto.decrypt_then_verify(&ste, key, &signers).unwrap(), pt);
            prop_assert_eq!(crypto.decrypt(&ste, key).unwrap(), pt);
            let (p, info) = crypto.decrypt_verified(&ste, key, Some(&signers)).unwrap();
            prop_assert_eq!(p, pt);
            prop_assert_eq!(info.kind, MessageKind::SignThenEncrypt);
            prop_assert_eq!(info.verified_by, Some(0));
            // The message names its signer, and the wrong key is not it.
            let r = crypto.decrypt_then_verify(&ste, key, &wrong);
            prop_assert!(matches!(r, Err(Error::SignerNotFound)), "{:?}", r);
            let r = crypto.decrypt_and_verify(&ste, key, &signers);
            prop_assert!(matches!(r, Err(Error::SignerNotFound)), "{:?}", r);

            // Sign-and-encrypt.
            prop_assert_eq!(crypto.decrypt_and_verify(&sae, key, &signers).unwrap(), pt);
            prop_assert_eq!(crypto.decrypt(&sae, key).unwrap(), pt);
            let (p, info) = crypto.decrypt_verified(&sae, key, Some(&signers)).unwrap();
            prop_assert_eq!(p, pt);
            prop_assert_eq!(info.kind, MessageKind::SignAndEncrypt);
            prop_assert_eq!(info.verified_by, Some(0));
            let r = crypto.decrypt_and_verify(&sae, key, &wrong);
            prop_assert!(matches!(r, Err(Error::SignerNotFound)), "{:?}", r);
            let r = crypto.decrypt_then_verify(&sae, key, &signers);
            prop_assert!(matches!(r, Err(Error::SignerNotFound)), "{:?}", r);
            // A card chain (old key first) still verifies, and reports which key did.
            let chain = [wrong[0].clone(), signers[0].clone()];
            let (_, info) = crypto.decrypt_verified(&sae, key, Some(&chain)).unwrap();
            prop_assert_eq!(info.verified_by, Some(1));
        }

        // A key that is not a recipient, in every mode and both configurations.
        for msg in [&plain, &ste, &sae] {
            prop_assert!(is_recipient_not_found(&crypto.decrypt(msg, &outsider)));
            prop_assert!(is_recipient_not_found(&Crypto::new().decrypt(msg, &outsider)));
        }
        prop_assert!(is_recipient_not_found(&crypto.decrypt_then_verify(&ste, &outsider, &signers)));
        prop_assert!(is_recipient_not_found(&crypto.decrypt_and_verify(&sae, &outsider, &signers)));

        // Decryption matches either key id scheme, whichever the writer used.
        let other_config = crypto_for(match scheme {
            KeyIdScheme::Sha256 => KeyIdScheme::Sha512Truncated,
            _ => KeyIdScheme::Sha256,
        });
        prop_assert_eq!(other_config.decrypt_and_verify(&sae, &recipients[0], &signers).unwrap(), pt);
    }
}

// ---------------------------------------------------------------------------------------------
// Signatures
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// `sign`/`verify` round trip for Ed25519 and P-256, and `Signer`/`Verifier` fed in arbitrary
    /// pieces are the one-shot functions (same bytes for the same rng state).
    #[test]
    fn signatures_round_trip_and_streaming_equals_one_shot(
        seed in any::<u64>(),
        key_type in signing_key_type(),
        data in prop::collection::vec(any::<u8>(), 0..4000),
        sizes in prop::collection::vec(0usize..700, 1..8),
        flip in any::<prop::sample::Index>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = PrivateKey::generate(key_type, &mut rng);
        let other = PrivateKey::generate(key_type, &mut rng);
        let x25519 = PrivateKey::generate(KeyType::Curve25519, &mut rng);

        let sig = sign(&data, &key, &mut rng.clone()).unwrap();
        let mut signer = Signer::new();
        for piece in split(&data, &sizes) {
            signer.update(piece);
        }
        prop_assert_eq!(&signer.finish(&key, &mut rng.clone()).unwrap(), &sig);
        if key_type == KeyType::Ed25519 {
            // Ed25519 is deterministic whatever the rng, and the DER is 83 bytes.
            let mut unrelated = ChaCha20Rng::seed_from_u64(!seed);
            prop_assert_eq!(&sign(&data, &key, &mut unrelated).unwrap(), &sig);
            prop_assert_eq!(sig.len(), 83);
        }

        prop_assert!(verify(&data, &sig, key.public_key()).is_ok());
        let mut verifier = Verifier::new();
        for piece in split(&data, &sizes) {
            verifier.update(piece);
        }
        prop_assert!(verifier.finish(&sig, key.public_key()).is_ok());

        let r = verify(&data, &sig, other.public_key());
        prop_assert!(matches!(r, Err(Error::SignatureInvalid)), "{:?}", r);
        let r = verify(&data, &sig, x25519.public_key());
        prop_assert!(matches!(r, Err(Error::Unsupported(_))), "{:?}", r);
        prop_assert!(matches!(sign(&data, &x25519, &mut rng), Err(Error::Unsupported(_))));

        let mut tampered = data.clone();
        if tampered.is_empty() {
            tampered.push(0);
        } else {
            tampered[flip.index(data.len())] ^= 0x80;
        }
        let r = verify(&tampered, &sig, key.public_key());
        prop_assert!(matches!(r, Err(Error::SignatureInvalid)), "{:?}", r);
        let mut verifier = Verifier::new();
        for piece in split(&tampered, &sizes) {
            verifier.update(piece);
        }
        let r = verifier.finish(&sig, key.public_key());
        prop_assert!(matches!(r, Err(Error::SignatureInvalid)), "{:?}", r);
    }
}

// ---------------------------------------------------------------------------------------------
// Key export / import
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Private and public keys survive DER, base64 (also line-wrapped) and hand-made PEM, byte for
    /// byte, and the re-imported key still works.
    #[test]
    fn keys_round_trip_through_der_base64_and_pem(
        seed in any::<u64>(),
        key_type in any_key_type(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = PrivateKey::generate(key_type, &mut rng);
        let public = key.public_key();
        let der = key.to_der();
        let b64 = key.to_base64();
        prop_assert_eq!(der.first(), Some(&0x30));

        let wrapped: String = b64
            .as_bytes()
            .chunks(64)
            .map(|l| format!("{}\r\n", std::str::from_utf8(l).unwrap()))
            .collect();
        let inputs: [Vec<u8>; 4] = [
            der.to_vec(),
            b64.as_bytes().to_vec(),
            wrapped.into_bytes(),
            pem("PRIVATE KEY", &b64).into_bytes(),
        ];
        for input in &inputs {
            let again = PrivateKey::import(input).unwrap();
            prop_assert_eq!(&*again.to_der(), &*der);
            prop_assert_eq!(&*again.to_base64(), &*b64);
            prop_assert_eq!(again.public_key(), public);
            prop_assert_eq!(again.key_type(), key_type);
        }
        let again = PrivateKey::from_der(&der).unwrap();
        prop_assert_eq!(&*again.to_der(), &*der);

        let pub_der = public.to_der();
        let pub_b64 = public.to_base64();
        for input in [
            pub_der.clone(),
            pub_b64.as_bytes().to_vec(),
            pem("PUBLIC KEY", &pub_b64).into_bytes(),
        ] {
            let p = PublicKey::import(&input).unwrap();
            prop_assert_eq!(&p, public);
            prop_assert_eq!(p.to_der(), pub_der.clone());
            prop_assert_eq!(p.key_type(), key_type);
            for scheme in [KeyIdScheme::Sha512Truncated, KeyIdScheme::Sha256] {
                prop_assert_eq!(p.key_id_with(scheme), public.key_id_with(scheme));
            }
        }
        prop_assert_eq!(&PublicKey::from_der(&pub_der).unwrap(), public);
        prop_assert_eq!(public.key_id().as_bytes().len(), 8);
        prop_assert_eq!(public.key_id_with(KeyIdScheme::Sha256).as_bytes().len(), 32);

        // The re-imported key is the same key: it opens a message sent to the original.
        let imported = PrivateKey::import(pem("PRIVATE KEY", &b64).as_bytes()).unwrap();
        let msg = Crypto::new()
            .encrypt(&mut rng, b"key round trip", std::slice::from_ref(public), false)
            .unwrap();
        prop_assert_eq!(Crypto::new().decrypt(&msg, &imported).unwrap(), b"key round trip");
    }
}

// ---------------------------------------------------------------------------------------------
// Group sessions
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Messages of any epoch open in a session rebuilt from the exported tickets (in any order);
    /// a session that lacks the message's epoch fails with `Error::Group`.
    #[test]
    fn group_messages_open_in_sessions_rebuilt_from_tickets(
        seed in any::<u64>(),
        group_id in prop::collection::vec(any::<u8>(), 10..40),
        epochs in 1usize..=5,
        messages in prop::collection::vec(
            (0usize..5, prop::collection::vec(any::<u8>(), 0..2000)),
            0..8,
        ),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let sender = PrivateKey::generate(KeyType::Ed25519, &mut rng);
        let stranger = PrivateKey::generate(KeyType::Ed25519, &mut rng);
        let mut session = GroupSession::create(&group_id, &mut rng).unwrap();
        prop_assert_eq!(session.session_id(), GroupSession::session_id_for(&group_id).unwrap());
        // A snapshot taken at epoch 0, before any later epoch was added.
        let epoch0_only = GroupSession::from_tickets(&session.tickets()).unwrap();

        let mut sent: Vec<(u32, Vec<u8>, Vec<u8>)> = Vec::new();
        for epoch in 0..epochs {
            if epoch > 0 {
                let ticket = session.add_epoch(&mut rng).unwrap();
                let stored = session.ticket(epoch as u32).unwrap();
                prop_assert_eq!(ticket.as_slice(), stored.as_slice());
            }
            prop_assert_eq!(session.current_epoch(), epoch as u32);
            for (e, pt) in &messages {
                if e % epochs == epoch {
                    let msg = session.encrypt(&mut rng, pt, &sender).unwrap();
                    let info = GroupSession::message_info(&msg).unwrap();
                    prop_assert_eq!(info.epoch, epoch as u32);
                    prop_assert_eq!(info.session_id, session.session_id());
                    sent.push((epoch as u32, pt.clone(), msg));
                }
            }
        }

        let tickets = session.tickets();
        prop_assert_eq!(tickets.len(), epochs);
        let mut reversed = tickets.clone();
        reversed.reverse();
        let rebuilt = GroupSession::from_tickets(&reversed).unwrap();
        prop_assert_eq!(rebuilt.session_id(), session.session_id());
        prop_assert_eq!(rebuilt.current_epoch(), session.current_epoch());
        for (_, pt, msg) in &sent {
            prop_assert_eq!(&rebuilt.decrypt(msg, sender.public_key()).unwrap(), pt);
            prop_assert_eq!(&session.decrypt(msg, sender.public_key()).unwrap(), pt);
            let r = rebuilt.decrypt(msg, stranger.public_key());
            prop_assert!(matches!(r, Err(Error::SignatureInvalid)), "{:?}", r);
        }

        // Drop each epoch in turn: exactly that epoch's messages fail, with `Error::Group`.
        if epochs > 1 {
            for missing in 0..epochs {
                let partial: Vec<_> = tickets
                    .iter()
                    .enumerate()
                    .filter(|&(i, _)| i != missing)
                    .map(|(_, t)| t.clone())
                    .collect();
                let partial = GroupSession::from_tickets(&partial).unwrap();
                for (epoch, pt, msg) in &sent {
                    let r = partial.decrypt(msg, sender.public_key());
                    if *epoch as usize == missing {
                        prop_assert!(matches!(r, Err(Error::Group(_))), "{:?}", r);
                    } else {
                        prop_assert_eq!(&r.unwrap(), pt);
                    }
                }
            }
        }
        // The epoch-0 snapshot reads epoch 0 only.
        for (epoch, pt, msg) in &sent {
            let r = epoch0_only.decrypt(msg, sender.public_key());
            if *epoch == 0 {
                prop_assert_eq!(&r.unwrap(), pt);
            } else {
                prop_assert!(matches!(r, Err(Error::Group(_))), "{:?}", r);
            }
        }
        // Another group's session knows none of them.
        let mut other_id = group_id.clone();
        other_id.push(0);
        let other = GroupSession::create(&other_id, &mut rng).unwrap();
        for (_, _, msg) in &sent {
            let r = other.decrypt(msg, sender.public_key());
            prop_assert!(matches!(r, Err(Error::Group(_))), "{:?}", r);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming Encryptor / Decryptor under arbitrary chunking
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
enum Kind {
    Plain,
    SignThenEncrypt,
    SignAndEncrypt,
}

fn any_kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        Just(Kind::Plain),
        Just(Kind::SignThenEncrypt),
        Just(Kind::SignAndEncrypt),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// The header followed by the `Encryptor`'s outputs, for any chunking, is byte for byte the
    /// one-shot message (same rng state), opens with `Crypto::decrypt` and with a `Decryptor`
    /// fed in arbitrary pieces.
    #[test]
    fn encryptor_output_is_the_one_shot_message_for_any_chunking(
        seed in any::<u64>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..4000),
        enc_sizes in prop::collection::vec(0usize..600, 1..8),
        dec_sizes in prop::collection::vec(0usize..600, 1..8),
        kind in any_kind(),
        recipient_types in prop::collection::vec(any_key_type(), 1..=3),
        signer_type in signing_key_type(),
        padding in any::<bool>(),
        scheme in any_scheme(),
    ) {
        let mut key_rng = ChaCha20Rng::seed_from_u64(seed);
        let recipients: Vec<PrivateKey> =
            recipient_types.iter().map(|&t| PrivateKey::generate(t, &mut key_rng)).collect();
        let to = public_keys(&recipients);
        let signer = PrivateKey::generate(signer_type, &mut key_rng);
        let signers = [signer.public_key().clone()];
        let crypto = crypto_for(scheme);
        let pt = plaintext.as_slice();
        let msg_rng = ChaCha20Rng::seed_from_u64(seed.rotate_left(17) ^ 1);

        // Streaming, exactly in the order the one-shot functions use the rng.
        let mut rng = msg_rng.clone();
        let signature;
        let signing = match kind {
            Kind::Plain => Signing::None,
            Kind::SignThenEncrypt => {
                signature = sign(pt, &signer, &mut rng).unwrap();
                Signing::SignThenEncrypt { signer: &signer, signature: &signature }
            }
            Kind::SignAndEncrypt => Signing::SignAndEncrypt {
                signer: &signer,
                plaintext_len: pt.len() as u64,
            },
        };
        let mut enc = crypto.encryptor(&mut rng, &to, signing, padding).unwrap();
        let mut streamed = enc.header().to_vec();
        for piece in split(pt, &enc_sizes) {
            let mut out = Vec::new();
            enc.update(piece, &mut out).unwrap();
            prop_assert_eq!(out.len(), piece.len());
            streamed.extend_from_slice(&out);
        }
        let mut tail = Vec::new();
        enc.finish(&mut rng, &mut tail).unwrap();
        streamed.extend_from_slice(&tail);

        let mut rng = msg_rng.clone();
        let one_shot = match kind {
            Kind::Plain => crypto.encrypt(&mut rng, pt, &to, padding),
            Kind::SignThenEncrypt => crypto.sign_then_encrypt(&mut rng, pt, &signer, &to, padding),
            Kind::SignAndEncrypt => crypto.sign_and_encrypt(&mut rng, pt, &signer, &to, padding),
        }
        .unwrap();
        prop_assert_eq!(&streamed, &one_shot);

        let expected_kind = match kind {
            Kind::Plain => MessageKind::Plain,
            Kind::SignThenEncrypt => MessageKind::SignThenEncrypt,
            Kind::SignAndEncrypt => MessageKind::SignAndEncrypt,
        };
        let verify_with = match kind {
            Kind::Plain => None,
            _ => Some(&signers[..]),
        };
        for key in &recipients {
            prop_assert_eq!(Crypto::new().decrypt(&streamed, key).unwrap(), pt);
            let (p, k) = decrypt_chunked(&streamed, key, verify_with, &dec_sizes).unwrap();
            prop_assert_eq!(p, pt);
            prop_assert_eq!(k, expected_kind);
        }
    }

    /// Sign-and-encrypt records the plaintext length up front: feeding more fails in `update`,
    /// feeding less fails in `finish`, both with `InvalidArgument`.
    #[test]
    fn sign_and_encrypt_enforces_the_declared_length(
        seed in any::<u64>(),
        plaintext in prop::collection::vec(any::<u8>(), 0..2000),
        sizes in prop::collection::vec(0usize..600, 1..6),
        extra in 1u64..1000,
        padding in any::<bool>(),
    ) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let signer = PrivateKey::generate(KeyType::Ed25519, &mut rng);
        let to = [PrivateKey::generate(KeyType::Curve25519, &mut rng).public_key().clone()];
        let crypto = Crypto::new();
        let len = plaintext.len() as u64;

        // Declared longer than fed: every update succeeds, finish fails.
        let signing = Signing::SignAndEncrypt { signer: &signer, plaintext_len: len + extra };
        let mut enc = crypto.encryptor(&mut rng, &to, signing, padding).unwrap();
        let mut out = Vec::new();
        for piece in split(&plaintext, &sizes) {
            enc.update(piece, &mut out).unwrap();
        }
        let r = enc.finish(&mut rng, &mut out);
        prop_assert!(matches!(r, Err(Error::InvalidArgument(_))), "{:?}", r);

        // Declared shorter than fed: the update that crosses the declared length fails.
        if len > 0 {
            let declared = len.saturating_sub(extra);
            let signing = Signing::SignAndEncrypt { signer: &signer, plaintext_len: declared };
            let mut enc = crypto.encryptor(&mut rng, &to, signing, padding).unwrap();
            let mut fed = 0u64;
            let mut failed = false;
            for piece in split(&plaintext, &sizes) {
                let r = enc.update(piece, &mut out);
                fed += piece.len() as u64;
                if fed > declared {
                    prop_assert!(matches!(r, Err(Error::InvalidArgument(_))), "{:?}", r);
                    failed = true;
                    break;
                }
                prop_assert!(r.is_ok());
            }
            prop_assert!(failed);
        }
    }
}
