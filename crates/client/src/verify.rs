//! Safety numbers and pinned contact keys: the user compares 60 digits with a contact (in
//! person, on a call), and from then on the SDK refuses to use another key for that contact
//! until the user accepts the change. This detects a server that hands out a key which is not
//! the contact's, which nothing else in e3kit's design can.
//!
//! The number is [`SafetyNumber::compute`] over the user's identity and own key (the local
//! private key's, never what the server says it is) and the contact's identity and current card
//! key. Pins are stored per local identity in the local store (`pins` table of
//! `cards.sqlite3`) and survive [`EThree::cleanup`]. See `docs/key-transparency.md`, section
//! "Safety numbers".

use crate::api::now_secs;
use crate::card::Card;
use crate::error::{Error, Result};
use crate::ethree::{blocking, EThree};
use sealkit_crypto::{PublicKey, SafetyNumber};

impl EThree {
    /// The safety number of the user and `identity`, from the user's local key and the
    /// contact's current card (from the server, or the card cache when the server is
    /// unreachable). Show it to the user, in [`SafetyNumber::grouped`] form (or as a QR code of
    /// [`SafetyNumber::as_str`]), to compare with what the contact's device shows.
    ///
    /// Works for verified contacts whose key changed too (that is when it is needed).
    /// Errors: [`Error::MissingPrivateKey`], [`Error::UsersNotFound`],
    /// [`Error::UsersFoundWithMultipleCards`], [`Error::InvalidInput`] for the user's own
    /// identity, and network errors with nothing cached.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let number = ethree.safety_number("alice").await?;
    /// println!("read this to Alice: {}", number.grouped());
    /// # Ok(()) }
    /// ```
    pub async fn safety_number(&self, identity: &str) -> Result<SafetyNumber> {
        Ok(self.current_safety_number(identity).await?.0)
    }

    /// Pins `identity`'s current key when `digits` (60 digits, spaces allowed) are the safety
    /// number of the user and that key ([`EThree::safety_number`]). From then on
    /// [`EThree::find_users`], [`EThree::find_cached_users`] and every encryption for them fail
    /// with [`Error::ContactKeyChanged`] when their key is no longer the pinned one. Verifying
    /// again after a change pins the new key. Returns the verified card.
    ///
    /// Errors: [`Error::SafetyNumberMismatch`] (nothing pinned), [`Error::InvalidInput`] when
    /// `digits` are not 60 digits, and those of [`EThree::safety_number`].
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, typed_by_user: String) -> sealkit::Result<()> {
    /// match ethree.verify_safety_number("alice", &typed_by_user).await {
    ///     Ok(card) => println!("alice verified (key {:?})", card.public_key()),
    ///     Err(sealkit::Error::SafetyNumberMismatch { .. }) => {
    ///         println!("the numbers differ: do not trust this connection to alice")
    ///     }
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn verify_safety_number(&self, identity: &str, digits: &str) -> Result<Card> {
        let typed: SafetyNumber = digits
            .parse()
            .map_err(|e| Error::InvalidInput(format!("not a safety number: {e}")))?;
        let (number, card) = self.current_safety_number(identity).await?;
        if number != typed {
            return Err(Error::SafetyNumberMismatch {
                identity: identity.to_owned(),
            });
        }
        self.pin(&card).await?;
        Ok(card)
    }

    /// Accepts the current key of a verified contact whose key changed (after
    /// [`Error::ContactKeyChanged`]): pins it without comparing safety numbers, so lookups and
    /// encryption work again. Prefer showing the new [`EThree::safety_number`] and calling
    /// [`EThree::verify_safety_number`]: a key accepted here is whatever the server gives.
    /// Returns the card now pinned; a contact whose key did not change stays as it is.
    ///
    /// Errors: [`Error::ContactNotVerified`] when `identity` was never verified, and those of
    /// [`EThree::find_users`] other than [`Error::ContactKeyChanged`].
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let alice = match ethree.find_user("alice").await {
    ///     Err(sealkit::Error::ContactKeyChanged { .. }) => {
    ///         // Alice says she got a new phone: the user accepts the change.
    ///         ethree.accept_change("alice").await?
    ///     }
    ///     other => other?,
    /// };
    /// # Ok(()) }
    /// ```
    pub async fn accept_change(&self, identity: &str) -> Result<Card> {
        if !self.is_verified(identity).await? {
            return Err(Error::ContactNotVerified {
                identity: identity.to_owned(),
            });
        }
        let card = self.current_card(identity).await?;
        self.pin(&card).await?;
        Ok(card)
    }

    /// Whether `identity` is a verified contact (a key is pinned for them, by
    /// [`EThree::verify_safety_number`] or [`EThree::accept_change`]), whether or not their key
    /// changed since. Reads only the local store.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let badge = if ethree.is_verified("alice").await? { "verified" } else { "not verified" };
    /// # Ok(()) }
    /// ```
    pub async fn is_verified(&self, identity: &str) -> Result<bool> {
        Ok(!self.inner.local.pins(&[identity]).await?.is_empty())
    }

    /// Removes `identity`'s pin: they become an unverified contact again, whose key is used
    /// whatever it is (as before verification). `true` when there was a pin.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // The user marks Alice as "not verified" in the contact's settings.
    /// ethree.forget_verification("alice").await?;
    /// assert!(!ethree.is_verified("alice").await?);
    /// # Ok(()) }
    /// ```
    pub async fn forget_verification(&self, identity: &str) -> Result<bool> {
        self.inner.local.remove_pin(identity).await
    }

    /// Fails with [`Error::ContactKeyChanged`] when one of `cards` belongs to a verified contact
    /// and carries another key than the pinned one. One query; none for an empty list.
    pub(crate) async fn check_pins<'a>(
        &self,
        cards: impl IntoIterator<Item = &'a Card>,
    ) -> Result<()> {
        let cards: Vec<&Card> = cards.into_iter().collect();
        let identities: Vec<&str> = cards
            .iter()
            .map(|c| c.identity())
            .filter(|i| *i != self.inner.identity)
            .collect();
        if identities.is_empty() {
            return Ok(());
        }
        let pins = self.inner.local.pins(&identities).await?;
        let mut changed: Vec<String> = Vec::new();
        for card in cards {
            let Some(pinned) = pins.get(card.identity()) else {
                continue;
            };
            if !pinned.contains(card.public_key()) && !changed.iter().any(|c| c == card.identity())
            {
                changed.push(card.identity().to_owned());
            }
        }
        if changed.is_empty() {
            Ok(())
        } else {
            Err(Error::ContactKeyChanged {
                identities: changed,
            })
        }
    }

    /// Pins `card`'s key as its identity's.
    async fn pin(&self, card: &Card) -> Result<()> {
        self.inner
            .local
            .put_pin(card.identity(), &[card.public_key().clone()], now_secs())
            .await
    }

    /// `identity`'s current card whatever is pinned: from the server, or from the card cache
    /// when the server is unreachable.
    async fn current_card(&self, identity: &str) -> Result<Card> {
        let found = match self.fetch_users(&[identity]).await {
            Err(Error::Network(reason)) => {
                let mut cached = self.inner.local.cards(&[identity]).await?;
                cached.remove(identity).ok_or(Error::Network(reason))?
            }
            other => {
                let mut found = other?;
                found.remove(identity).ok_or_else(|| Error::UsersNotFound {
                    identities: vec![identity.to_owned()],
                })?
            }
        };
        Ok(found)
    }

    /// The safety number with `identity`'s current card, and that card.
    async fn current_safety_number(&self, identity: &str) -> Result<(SafetyNumber, Card)> {
        if identity == self.inner.identity {
            return Err(Error::InvalidInput(
                "a safety number is computed with a contact, not with yourself".to_owned(),
            ));
        }
        let key = self.private_key().await?;
        let card = self.current_card(identity).await?;
        let own: Vec<PublicKey> = vec![key.public_key().clone()];
        let theirs: Vec<PublicKey> = vec![card.public_key().clone()];
        let me = self.inner.identity.clone();
        let them = identity.to_owned();
        // 2 × 5200 SHA-512: milliseconds, off the async workers.
        let number =
            blocking(move || Ok(SafetyNumber::compute(&me, &own, &them, &theirs)?)).await?;
        Ok((number, card))
    }
}
