//! The SDK's safety numbers and pins against `sealkit serve`: the number is the one computed from
//! both users' keys, verification pins, and after the contact's key changes every path that
//! uses their card (find_users, find_cached_users, encryption, chat send) fails with
//! `ContactKeyChanged`, a received chat message is `SenderKeyChanged`, until accepted.

use crate::common::*;
use sealkit::chat::{HistoryCursor, Verification};
use sealkit::{EThree, EThreeOptions, Error, SafetyNumber};
use sealkit_proto::JwtGenerator;
use std::path::Path;
use std::time::Duration;

async fn user(url: &str, backend: &JwtGenerator, identity: &str, storage: &Path) -> EThree {
    let backend = backend.clone();
    let who = identity.to_owned();
    let provider = move || std::future::ready(backend.generate(&who, now()).map(|j| j.to_string()));
    EThree::initialize(provider, EThreeOptions::new(url, storage))
        .await
        .unwrap()
}

fn changed(result: Result<impl std::fmt::Debug, Error>) -> Vec<String> {
    match result {
        Err(Error::ContactKeyChanged { identities }) => identities,
        other => panic!("expected ContactKeyChanged, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pins_refuse_a_changed_key_everywhere_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let (creds, server) = sqlite_deployment(dir.path());
    let backend = backend(&creds);
    let alice = user(&server.url, &backend, "alice", &dir.path().join("alice")).await;
    let bob = user(&server.url, &backend, "bob", &dir.path().join("bob")).await;
    let carol = user(&server.url, &backend, "carol", &dir.path().join("carol")).await;
    let alice_card = alice.register(None).await.unwrap();
    let bob_card = bob.register(None).await.unwrap();
    carol.register(None).await.unwrap();

    // The number is the one of both identities and their keys, the same on both sides.
    let number = bob.safety_number("alice").await.unwrap();
    assert_eq!(alice.safety_number("bob").await.unwrap(), number);
    let expected = SafetyNumber::compute(
        "alice",
        &[alice_card.public_key().clone()],
        "bob",
        &[bob_card.public_key().clone()],
    )
    .unwrap();
    assert_eq!(number, expected);
    assert!(matches!(
        bob.safety_number("bob").await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        bob.safety_number("nobody").await,
        Err(Error::UsersNotFound { .. })
    ));

    // A wrong number pins nothing.
    let wrong = carol.safety_number("alice").await.unwrap();
    assert!(matches!(
        bob.verify_safety_number("alice", wrong.as_str()).await,
        Err(Error::SafetyNumberMismatch { identity }) if identity == "alice"
    ));
    assert!(!bob.is_verified("alice").await.unwrap());
    assert!(matches!(
        bob.verify_safety_number("alice", "not digits").await,
        Err(Error::InvalidInput(_))
    ));
    assert!(matches!(
        bob.accept_change("alice").await,
        Err(Error::ContactNotVerified { .. })
    ));
    let verified = bob
        .verify_safety_number("alice", &number.grouped())
        .await
        .unwrap();
    assert_eq!(verified.id(), alice_card.id());
    assert!(bob.is_verified("alice").await.unwrap());
    assert!(!bob.is_verified("carol").await.unwrap());

    // A direct channel works while the key is the pinned one.
    let channel = bob.chat().direct_channel("alice").await.unwrap().id;
    bob.chat().send_text(&channel, "before").await.unwrap();

    // Alice replaces her key.
    alice.cleanup().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await; // the new card is a second newer
    let rotated = alice.rotate_private_key().await.unwrap();
    alice.chat().send_text(&channel, "new key").await.unwrap();

    assert_eq!(changed(bob.find_user("alice").await), ["alice"]);
    assert_eq!(
        changed(bob.find_users(&["carol", "alice"]).await),
        ["alice"]
    );
    // find_users cached the new card: the cache refuses it too.
    assert_eq!(changed(bob.find_cached_users(&["alice"]).await), ["alice"]);
    // Encryption checks the card it is given: the new key is refused, the pinned one is not.
    changed(bob.auth_encrypt(b"x", &[&rotated]).await);
    changed(bob.encrypt_text("x", &[&rotated]).await);
    bob.auth_encrypt(b"x", &[&alice_card]).await.unwrap();
    // Unverified contacts are unaffected.
    let carol_sees = carol.find_user("alice").await.unwrap();
    assert_eq!(carol_sees.id(), rotated.id());
    carol.auth_encrypt(b"x", &[&carol_sees]).await.unwrap();
    // Chat: nothing is sent to her, and what she sent with the new key is withheld.
    changed(bob.chat().send_text(&channel, "refused").await);
    let page = bob
        .chat()
        .history(&channel, HistoryCursor::After(0), 50)
        .await
        .unwrap();
    let statuses: Vec<_> = page.messages.iter().map(|m| m.status).collect();
    assert_eq!(
        statuses,
        [Verification::Verified, Verification::SenderKeyChanged]
    );
    assert_eq!(page.messages[1].text(), None);

    // The number changed with the key; the old one no longer verifies.
    let new_number = bob.safety_number("alice").await.unwrap();
    assert_ne!(new_number, number);
    assert_eq!(alice.safety_number("bob").await.unwrap(), new_number);
    assert!(matches!(
        bob.verify_safety_number("alice", number.as_str()).await,
        Err(Error::SafetyNumberMismatch { .. })
    ));

    // Accepting pins the current key: everything works again.
    assert_eq!(bob.accept_change("alice").await.unwrap().id(), rotated.id());
    assert_eq!(bob.find_user("alice").await.unwrap().id(), rotated.id());
    bob.auth_encrypt(b"x", &[&rotated]).await.unwrap();
    bob.chat().send_text(&channel, "accepted").await.unwrap();
    let page = bob
        .chat()
        .history(&channel, HistoryCursor::After(0), 50)
        .await
        .unwrap();
    assert_eq!(page.messages[1].text(), Some("new key"));
    // ... and now the old key is the changed one.
    changed(bob.auth_encrypt(b"x", &[&alice_card]).await);

    // Forgetting makes alice an unverified contact again.
    assert!(bob.forget_verification("alice").await.unwrap());
    assert!(!bob.forget_verification("alice").await.unwrap());
    assert!(!bob.is_verified("alice").await.unwrap());
    bob.auth_encrypt(b"x", &[&alice_card]).await.unwrap();
}
