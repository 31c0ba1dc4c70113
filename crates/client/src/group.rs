//! Groups, e3kit-compatible (`createGroup`, `loadGroup`, `getGroup`, `deleteGroup`, `Group`).
//!
//! ## Format (what e3kit 2.5 writes; `@virgilsecurity/keyknox` `CloudGroupTicketStorage`)
//! * Session id = `SHA-512(group id)[0..32]`, written as lowercase hex; the group id has at least
//!   10 bytes.
//! * Each epoch ticket (virgil-crypto's group session message, which holds the epoch key) is a
//!   Keyknox v2 entry owned by the initiator at root `group-sessions`, path = session id hex,
//!   key = the epoch number in decimal, shared with every participant. Its plaintext is the raw
//!   ticket, encrypted with `signThenEncryptDetached` by the initiator's key for the initiator
//!   and the participants (as the backups, see `backup`).
//! * The participants of a group are the `identities` holding the newest epoch's entry.
//! * `remove` adds an epoch shared with the remaining participants only and deletes the removed
//!   participants' copies of every epoch; `add` shares every epoch with the new participants;
//!   `re_add` replaces a participant's copies (after they rotated their key).
//!
//! Locally, the tickets are kept in the SDK's local store (`crate::local`), each encrypted for
//! the user's own key.

use crate::backup::{open_with, seal};
use crate::card::Card;
use crate::error::{Error, GroupErrorCode, Result};
use crate::ethree::{decode_base64, utf8, EThree};
use crate::local::{SealedTicket, StoredGroup};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use rand_core::OsRng;
use sealkit_crypto::{GroupSession, PublicKey};
use sealkit_proto::keyknox::{V2Keys, V2Pull, V2Push, V2Reset};
use std::collections::BTreeSet;
use std::time::SystemTime;
use zeroize::Zeroizing;

/// Keyknox v2 root of group tickets.
const GROUP_ROOT: &str = "group-sessions";
/// A group has 1 to this many participants.
///
/// ```
/// use sealkit::MAX_GROUP_PARTICIPANTS;
///
/// // The initiator is a participant too, so at most 99 others fit in one group:
/// let team: Vec<String> = (0..150).map(|i| format!("member{i}")).collect();
/// let invited = &team[..team.len().min(MAX_GROUP_PARTICIPANTS - 1)];
/// assert_eq!(invited.len(), 99);
/// ```
pub const MAX_GROUP_PARTICIPANTS: usize = 100;
/// e3kit keeps this many epochs in a session; older messages need the stored tickets.
const MAX_EPOCHS: u32 = 50;

/// A group of up to 100 users sharing a symmetric key per epoch (e3kit `Group`). Get one from
/// [`EThree::create_group`], [`EThree::load_group`] or [`EThree::get_group`].
///
/// ```no_run
/// # async fn run(bob: sealkit::EThree, message: Vec<u8>) -> sealkit::Result<()> {
/// // Bob, a participant of the group Alice created with create_group:
/// let alice = bob.find_user("alice").await?;
/// let group = bob.load_group("chat-2026-team", &alice).await?;
/// let plaintext = group.decrypt(&message, &alice, None).await?;
/// let reply = group.encrypt(b"got it").await?;
/// # Ok(()) }
/// ```
pub struct Group {
    ethree: EThree,
    initiator: String,
    participants: Vec<String>,
    session: GroupSession,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("initiator", &self.initiator)
            .field("participants", &self.participants)
            .field("session_id", &hex(&self.session.session_id()))
            .field("epoch", &self.session.current_epoch())
            .finish()
    }
}

/// One epoch ticket and who holds it.
struct Ticket {
    epoch: u32,
    data: Zeroizing<Vec<u8>>,
    identities: Vec<String>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn session_id_of(group_id: &[u8]) -> Result<String> {
    if group_id.len() < 10 {
        return Err(Error::group(
            GroupErrorCode::GroupIdTooShort,
            "the group id must have at least 10 bytes",
        ));
    }
    Ok(hex(&GroupSession::session_id_for(group_id)?))
}

fn check_count(count: usize, code: GroupErrorCode) -> Result<()> {
    if (1..=MAX_GROUP_PARTICIPANTS).contains(&count) {
        Ok(())
    } else {
        Err(Error::group(
            code,
            format!(
                "a group has 1 to {MAX_GROUP_PARTICIPANTS} participants, this would have {count}"
            ),
        ))
    }
}

fn session_of(tickets: &[Ticket]) -> Result<GroupSession> {
    let data: Vec<&[u8]> = tickets.iter().map(|t| &t.data[..]).collect();
    GroupSession::from_tickets(&data).map_err(|e| {
        Error::group(
            GroupErrorCode::InvalidGroup,
            format!("unusable group tickets: {e}"),
        )
    })
}

impl EThree {
    /// Creates a group with the users of `participants` and this user as its initiator (e3kit
    /// `createGroup`): a new group session whose first ticket is stored on the server for every
    /// participant. `group_id` (at least 10 bytes) must be unique for this initiator; the
    /// participants load the group with [`EThree::load_group`] and this user's card.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let users = ethree.find_users(&["bob", "carol"]).await?;
    /// let cards: Vec<_> = users.values().collect();
    /// let group = ethree.create_group("chat-2026-team", &cards).await?;
    /// let message = group.encrypt(b"hello team").await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_group(
        &self,
        group_id: impl AsRef<[u8]>,
        participants: &[&Card],
    ) -> Result<Group> {
        let session_id = session_id_of(group_id.as_ref())?;
        let cards = self.others(participants);
        check_count(cards.len() + 1, GroupErrorCode::InvalidParticipantsCount)?;
        let session = GroupSession::create(group_id.as_ref(), &mut OsRng)?;
        let ticket = session.ticket(session.current_epoch()).ok_or_else(|| {
            Error::group(GroupErrorCode::InvalidGroup, "new session without ticket")
        })?;
        self.push_ticket(&session_id, session.current_epoch(), &ticket, &cards)
            .await?;
        let mut identities = vec![self.inner.identity.clone()];
        identities.extend(cards.iter().map(|c| c.identity().to_owned()));
        let tickets = vec![Ticket {
            epoch: session.current_epoch(),
            data: ticket,
            identities: identities.clone(),
        }];
        self.store_group(
            &session_id,
            &self.inner.identity,
            &identities,
            &tickets,
            true,
        )
        .await?;
        Ok(Group {
            ethree: self.clone(),
            initiator: self.inner.identity.clone(),
            participants: identities,
            session,
        })
    }

    /// Downloads the group `group_id` created by the owner of `initiator` and stores it on this
    /// device (e3kit `loadGroup`). [`GroupErrorCode::NoAccess`] if this user is not a participant
    /// (or the group does not exist).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// use sealkit::{Error, GroupErrorCode};
    ///
    /// let alice = ethree.find_user("alice").await?;
    /// match ethree.load_group("chat-2026-team", &alice).await {
    ///     Ok(group) => println!("{} participants", group.participants().len()),
    ///     Err(Error::Group { code: GroupErrorCode::NoAccess, .. }) => println!("not invited"),
    ///     Err(e) => return Err(e),
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn load_group(&self, group_id: impl AsRef<[u8]>, initiator: &Card) -> Result<Group> {
        let session_id = session_id_of(group_id.as_ref())?;
        self.pull_group(&session_id, initiator).await
    }

    /// The group `group_id` as stored on this device by an earlier create or load, without the
    /// server (e3kit `getGroup`); `None` if it is not stored.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // From this device first, from the server only the first time:
    /// let group = match ethree.get_group("chat-2026-team").await? {
    ///     Some(group) => group,
    ///     None => {
    ///         let alice = ethree.find_user("alice").await?;
    ///         ethree.load_group("chat-2026-team", &alice).await?
    ///     }
    /// };
    /// # Ok(()) }
    /// ```
    pub async fn get_group(&self, group_id: impl AsRef<[u8]>) -> Result<Option<Group>> {
        let session_id = session_id_of(group_id.as_ref())?;
        let Some(StoredGroup {
            initiator,
            participants,
        }) = self.inner.local.group(&session_id).await?
        else {
            return Ok(None);
        };
        let tickets = self.local_tickets(&session_id, None).await?;
        if tickets.is_empty() {
            return Ok(None);
        }
        let session = session_of(&tickets)?;
        Ok(Some(Group {
            ethree: self.clone(),
            initiator,
            participants,
            session,
        }))
    }

    /// Deletes the group's tickets on the server (for everyone, when called by the initiator)
    /// and on this device (e3kit `deleteGroup`).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// ethree.delete_group("chat-2026-team").await?;
    /// assert!(ethree.get_group("chat-2026-team").await?.is_none());
    /// # Ok(()) }
    /// ```
    pub async fn delete_group(&self, group_id: impl AsRef<[u8]>) -> Result<()> {
        let session_id = session_id_of(group_id.as_ref())?;
        self.inner
            .api
            .keyknox_v2_reset(&V2Reset {
                root: Some(GROUP_ROOT.to_owned()),
                path: Some(session_id.clone()),
                key: None,
                identity: None,
            })
            .await?;
        self.inner.local.delete_group(&session_id).await
    }

    /// The cards that are not this user's, without duplicates.
    fn others<'a>(&self, cards: &[&'a Card]) -> Vec<&'a Card> {
        let mut seen = BTreeSet::new();
        cards
            .iter()
            .filter(|c| c.identity() != self.inner.identity && seen.insert(c.identity().to_owned()))
            .copied()
            .collect()
    }

    /// Stores one epoch ticket on the server for this user and `cards`
    /// (`CloudGroupTicketStorage.store`).
    async fn push_ticket(
        &self,
        session_id: &str,
        epoch: u32,
        ticket: &[u8],
        cards: &[&Card],
    ) -> Result<()> {
        self.check_pins(cards.iter().copied()).await?;
        let key = self.private_key().await?;
        let mut identities = vec![self.inner.identity.clone()];
        identities.extend(cards.iter().map(|c| c.identity().to_owned()));
        let recipients = self.recipient_keys(&key, cards);
        let (meta, value) = seal(self.inner.crypto, ticket, &key, &recipients)?;
        let push = V2Push {
            root: GROUP_ROOT.to_owned(),
            path: session_id.to_owned(),
            key: epoch.to_string(),
            identities,
            meta,
            value,
        };
        self.inner.api.keyknox_v2_push(&push, None).await?;
        Ok(())
    }

    /// Every epoch ticket of `owner`'s group that this user can read, checked against
    /// `owner_key` (`CloudGroupTicketStorage.retrieve`), oldest first.
    async fn pull_tickets(
        &self,
        session_id: &str,
        owner: &str,
        owner_key: &PublicKey,
    ) -> Result<Vec<(Ticket, Option<String>)>> {
        let key = self.private_key().await?;
        let api = &self.inner.api;
        let keys = api
            .keyknox_v2_keys(&V2Keys {
                root: GROUP_ROOT.to_owned(),
                path: session_id.to_owned(),
                identity: Some(owner.to_owned()),
            })
            .await?;
        if keys.is_empty() {
            return Err(Error::group(
                GroupErrorCode::NoAccess,
                format!(
                    "no group with this id by {owner} is shared with this user: ask the \
                     initiator to add you (or check the group id and the initiator)"
                ),
            ));
        }
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            let epoch: u32 = k.parse().map_err(|_| {
                Error::group(
                    GroupErrorCode::InvalidGroup,
                    format!("epoch key {k:?} is not a number"),
                )
            })?;
            let pulled = api
                .keyknox_v2_pull(&V2Pull {
                    root: GROUP_ROOT.to_owned(),
                    path: session_id.to_owned(),
                    key: k,
                    identity: Some(owner.to_owned()),
                })
                .await?;
            let data = open_with(
                &pulled.value.meta,
                &pulled.value.value,
                &key,
                std::slice::from_ref(owner_key),
            )
            .map_err(|e| match e {
                Ok(e) => Error::group(
                    GroupErrorCode::NoAccess,
                    format!(
                        "a group ticket does not decrypt with this user's key or is not signed \
                         by {owner}'s key ({e}): ask the initiator to re-add you"
                    ),
                ),
                Err(e) => e,
            })?
            .ok_or_else(|| Error::group(GroupErrorCode::NoAccess, "a group ticket is empty"))?;
            out.push((
                Ticket {
                    epoch,
                    data,
                    identities: pulled.value.identities,
                },
                pulled.hash,
            ));
        }
        out.sort_by_key(|(t, _)| t.epoch);
        Ok(out)
    }

    async fn pull_group(&self, session_id: &str, initiator: &Card) -> Result<Group> {
        let pulled = match self
            .pull_tickets(session_id, initiator.identity(), initiator.public_key())
            .await
        {
            Err(
                e @ Error::Group {
                    code: GroupErrorCode::NoAccess,
                    ..
                },
            ) => {
                self.inner.local.delete_group(session_id).await?;
                return Err(e);
            }
            other => other?,
        };
        let tickets: Vec<Ticket> = pulled.into_iter().map(|(t, _)| t).collect();
        let participants = tickets
            .last()
            .map(|t| t.identities.clone())
            .unwrap_or_default();
        check_count(participants.len(), GroupErrorCode::InvalidParticipantsCount)?;
        let session = session_of(&tickets)?;
        self.store_group(
            session_id,
            initiator.identity(),
            &participants,
            &tickets,
            true,
        )
        .await?;
        Ok(Group {
            ethree: self.clone(),
            initiator: initiator.identity().to_owned(),
            participants,
            session,
        })
    }

    // ---------------------------------------------------------------------- local storage

    /// Stores the group on this device with `tickets`, each sealed for the user's own key;
    /// with `replace_tickets`, the tickets stored before are dropped.
    async fn store_group(
        &self,
        session_id: &str,
        initiator: &str,
        participants: &[String],
        tickets: &[Ticket],
        replace_tickets: bool,
    ) -> Result<()> {
        let key = self.private_key().await?;
        let crypto = self.inner.crypto;
        let own = [key.public_key().clone()];
        let mut sealed = Vec::with_capacity(tickets.len());
        for t in tickets {
            sealed.push(SealedTicket {
                epoch: t.epoch,
                sealed: crypto.encrypt(&mut OsRng, &t.data, &own, false)?,
            });
        }
        let group = StoredGroup {
            initiator: initiator.to_owned(),
            participants: participants.to_vec(),
        };
        self.inner
            .local
            .save_group(session_id, &group, &sealed, replace_tickets)
            .await
    }

    /// The stored tickets (the newest [`MAX_EPOCHS`], or only `epoch`), oldest first.
    async fn local_tickets(&self, session_id: &str, epoch: Option<u32>) -> Result<Vec<Ticket>> {
        let key = self.private_key().await?;
        let stored = self
            .inner
            .local
            .sealed_tickets(session_id, epoch, MAX_EPOCHS)
            .await?;
        let mut out = Vec::with_capacity(stored.len());
        for ticket in stored {
            let data = self
                .inner
                .crypto
                .decrypt(&ticket.sealed, &key)
                .map_err(|e| {
                    Error::Storage(format!(
                        "a stored group ticket does not decrypt with this user's key ({e}); load \
                     the group again"
                    ))
                })?;
            out.push(Ticket {
                epoch: ticket.epoch,
                data: Zeroizing::new(data),
                identities: Vec::new(),
            });
        }
        Ok(out)
    }
}

impl Group {
    /// The identity of the user who created the group.
    ///
    /// ```no_run
    /// # fn run(ethree: sealkit::EThree, group: sealkit::Group) {
    /// // Only the initiator may add or remove participants:
    /// if group.initiator() == ethree.identity() {
    ///     println!("you manage this group");
    /// }
    /// # }
    /// ```
    pub fn initiator(&self) -> &str {
        &self.initiator
    }

    /// The participants' identities (the initiator included).
    ///
    /// ```no_run
    /// # fn run(group: sealkit::Group) {
    /// assert!(group.participants().iter().any(|p| p == group.initiator()));
    /// println!("members: {}", group.participants().join(", "));
    /// # }
    /// ```
    pub fn participants(&self) -> &[String] {
        &self.participants
    }

    /// The session id (lowercase hex, as e3kit shows it).
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// // The same for every participant and every SDK: a key for local data about the group.
    /// if let Some(group) = ethree.get_group("chat-2026-team").await? {
    ///     println!("session {}", group.session_id());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn session_id(&self) -> String {
        hex(&self.session.session_id())
    }

    /// The current epoch number (0 at creation, +1 per `remove`).
    ///
    /// ```no_run
    /// # async fn run(mut group: sealkit::Group, bob: sealkit::Card) -> sealkit::Result<()> {
    /// let before = group.epoch();
    /// group.remove(&[&bob]).await?;
    /// // Messages from now on use a key that Bob never gets:
    /// assert_eq!(group.epoch(), before + 1);
    /// # Ok(()) }
    /// ```
    pub fn epoch(&self) -> u32 {
        self.session.current_epoch()
    }

    fn session_hex(&self) -> String {
        self.session_id()
    }

    /// Encrypts `data` for the group and signs it with this user's key (e3kit `group.encrypt`).
    /// At most 29915 bytes; the user's key must be Ed25519.
    ///
    /// ```no_run
    /// # async fn run(group: sealkit::Group) -> sealkit::Result<()> {
    /// let message = group.encrypt(b"meeting moved to 3pm").await?;
    /// // Store or send `message`; every participant reads it with Group::decrypt.
    /// # Ok(()) }
    /// ```
    pub async fn encrypt(&self, data: &[u8]) -> Result<Vec<u8>> {
        let key = self.ethree.private_key().await?;
        Ok(self.session.encrypt(&mut OsRng, data, &key)?)
    }

    /// Decrypts a group message from the owner of `sender` (e3kit `group.decrypt`); with
    /// `encrypted_at`, verified with the sender's card valid at that moment.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, group: sealkit::Group, message: Vec<u8>,
    /// #     sent_at: std::time::SystemTime) -> sealkit::Result<()> {
    /// let carol = ethree.find_user("carol").await?;
    /// // With the time it was sent, in case Carol has rotated her key since:
    /// let plaintext = group.decrypt(&message, &carol, Some(sent_at)).await?;
    /// # Ok(()) }
    /// ```
    pub async fn decrypt(
        &self,
        data: &[u8],
        sender: &Card,
        encrypted_at: Option<SystemTime>,
    ) -> Result<Vec<u8>> {
        let info = GroupSession::message_info(data)?;
        let signer = EThree::sender_key(sender, encrypted_at)?;
        if info.session_id != self.session.session_id() {
            return Err(Error::group(
                GroupErrorCode::MessageNotFromThisGroup,
                "the message was encrypted for another group",
            ));
        }
        let current = self.session.current_epoch();
        if info.epoch > current {
            return Err(Error::group(
                GroupErrorCode::GroupIsOutdated,
                "this group is out of date: call update() (or load_group) to decrypt this message",
            ));
        }
        let result = if current - info.epoch < MAX_EPOCHS {
            self.session.decrypt(data, &signer)
        } else {
            let tickets = self
                .ethree
                .local_tickets(&self.session_hex(), Some(info.epoch))
                .await?;
            if tickets.is_empty() {
                return Err(Error::group(
                    GroupErrorCode::LocalGroupNotFound,
                    "the message's epoch is not stored on this device: load the group first",
                ));
            }
            session_of(&tickets)?.decrypt(data, &signer)
        };
        result.map_err(|e| match e {
            sealkit_crypto::Error::SignatureInvalid => Error::group(
                GroupErrorCode::DataVerificationFailed,
                "the message is not signed by this sender's key: the sender may have rotated \
                 their key; find_users() again, or pass the time the message was sent",
            ),
            e => Error::Crypto(e),
        })
    }

    /// [`Group::encrypt`] for text: encrypts the UTF-8 bytes and returns standard base64, what
    /// e3kit's `group.encrypt(string)` returns.
    ///
    /// ```no_run
    /// # async fn run(group: sealkit::Group, ethree: sealkit::EThree) -> sealkit::Result<()> {
    /// let message = group.encrypt_text("meeting moved to 3pm").await?;
    /// // ... sent through any channel; each participant decrypts with the sender's card:
    /// let sender = ethree.find_user("alice").await?;
    /// assert_eq!(group.decrypt_text(&message, &sender, None).await?, "meeting moved to 3pm");
    /// # Ok(()) }
    /// ```
    pub async fn encrypt_text(&self, text: &str) -> Result<String> {
        Ok(STANDARD.encode(self.encrypt(text.as_bytes()).await?))
    }

    /// [`Group::decrypt`] for text: decodes base64 (what e3kit's `group.encrypt(string)`
    /// returns), decrypts, verifies, and requires UTF-8.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, mut group: sealkit::Group, message: String)
    /// #     -> sealkit::Result<()> {
    /// use sealkit::{Error, GroupErrorCode};
    ///
    /// let alice = ethree.find_user("alice").await?;
    /// let text = match group.decrypt_text(&message, &alice, None).await {
    ///     Ok(text) => text,
    ///     // Alice removed someone since this device last looked: fetch the new epoch.
    ///     Err(Error::Group { code: GroupErrorCode::GroupIsOutdated, .. }) => {
    ///         group.update().await?;
    ///         group.decrypt_text(&message, &alice, None).await?
    ///     }
    ///     // Not base64, or binary content: not something to show as text.
    ///     Err(Error::InvalidInput(why)) => format!("(unreadable: {why})"),
    ///     Err(e) => return Err(e),
    /// };
    /// println!("alice: {text}");
    /// # Ok(()) }
    /// ```
    pub async fn decrypt_text(
        &self,
        base64: &str,
        sender: &Card,
        encrypted_at: Option<SystemTime>,
    ) -> Result<String> {
        let data = decode_base64(base64)?;
        utf8(
            self.decrypt(&data, sender, encrypted_at).await?,
            "Group::decrypt",
        )
    }

    /// Fetches the group's newest tickets and participants from the server (e3kit
    /// `group.update`), e.g. after a message was [`GroupErrorCode::GroupIsOutdated`].
    ///
    /// ```no_run
    /// # async fn run(mut group: sealkit::Group) -> sealkit::Result<()> {
    /// // Before showing the member list, pick up the initiator's latest changes:
    /// group.update().await?;
    /// println!("epoch {}, members {:?}", group.epoch(), group.participants());
    /// # Ok(()) }
    /// ```
    pub async fn update(&mut self) -> Result<()> {
        let initiator = self.ethree.find_user(&self.initiator).await?;
        let group = self
            .ethree
            .pull_group(&self.session_hex(), &initiator)
            .await?;
        self.session = group.session;
        self.participants = group.participants;
        Ok(())
    }

    fn editable(&self, what: &str) -> Result<()> {
        if self.initiator == self.ethree.inner.identity {
            Ok(())
        } else {
            Err(Error::group(
                GroupErrorCode::PermissionDenied,
                format!("only the group's initiator ({}) can {what}", self.initiator),
            ))
        }
    }

    /// Shares the group with the owners of `cards` (e3kit `group.add`): every epoch ticket is
    /// stored for them too, so they can read past and future messages. Initiator only.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, mut group: sealkit::Group) -> sealkit::Result<()> {
    /// use sealkit::{Error, GroupErrorCode};
    ///
    /// let dave = ethree.find_user("dave").await?;
    /// match group.add(&[&dave]).await {
    ///     Ok(()) | Err(Error::Group { code: GroupErrorCode::ParticipantAlreadyAdded, .. }) => {}
    ///     Err(e) => return Err(e),
    /// }
    /// // Dave now calls load_group with the group id and the initiator's card.
    /// # Ok(()) }
    /// ```
    pub async fn add(&mut self, cards: &[&Card]) -> Result<()> {
        self.editable("add participants")?;
        let new: Vec<&Card> = self
            .ethree
            .others(cards)
            .into_iter()
            .filter(|c| !self.participants.iter().any(|p| p == c.identity()))
            .collect();
        check_count(
            self.participants.len() + new.len(),
            GroupErrorCode::InvalidChangeParticipants,
        )?;
        if new.is_empty() {
            return Err(Error::group(
                GroupErrorCode::ParticipantAlreadyAdded,
                "every one of them is already a participant",
            ));
        }
        self.share_epochs(&new, false).await?;
        self.participants
            .extend(new.iter().map(|c| c.identity().to_owned()));
        self.save_participants().await
    }

    /// Stores every epoch ticket again for `cards` (pull own copy, optionally reset theirs, push
    /// with the pulled hash).
    async fn share_epochs(&self, cards: &[&Card], reset_first: bool) -> Result<()> {
        let ethree = &self.ethree;
        ethree.check_pins(cards.iter().copied()).await?;
        let key = ethree.private_key().await?;
        let session_id = self.session_hex();
        let own = ethree.inner.identity.clone();
        let pulled = ethree
            .pull_tickets(&session_id, &own, key.public_key())
            .await?;
        let recipients = ethree.recipient_keys(&key, cards);
        for (ticket, hash) in pulled {
            if reset_first {
                for card in cards {
                    ethree
                        .inner
                        .api
                        .keyknox_v2_reset(&V2Reset {
                            root: Some(GROUP_ROOT.to_owned()),
                            path: Some(session_id.clone()),
                            key: Some(ticket.epoch.to_string()),
                            identity: Some(card.identity().to_owned()),
                        })
                        .await?;
                }
            }
            let (meta, value) = seal(ethree.inner.crypto, &ticket.data, &key, &recipients)?;
            let push = V2Push {
                root: GROUP_ROOT.to_owned(),
                path: session_id.clone(),
                key: ticket.epoch.to_string(),
                identities: cards.iter().map(|c| c.identity().to_owned()).collect(),
                meta,
                value,
            };
            ethree
                .inner
                .api
                .keyknox_v2_push(&push, hash.as_deref())
                .await?;
        }
        Ok(())
    }

    async fn save_participants(&self) -> Result<()> {
        self.ethree
            .store_group(
                &self.session_hex(),
                &self.initiator,
                &self.participants,
                &[],
                false,
            )
            .await
    }

    /// Removes the owners of `cards` (e3kit `group.remove`): starts a new epoch shared with the
    /// remaining participants only and deletes the removed ones' copies of every ticket, so they
    /// cannot read later messages. Initiator only.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, mut group: sealkit::Group) -> sealkit::Result<()> {
    /// let bob = ethree.find_user("bob").await?;
    /// group.remove(&[&bob]).await?;
    /// assert!(!group.participants().iter().any(|p| p == "bob"));
    /// # Ok(()) }
    /// ```
    pub async fn remove(&mut self, cards: &[&Card]) -> Result<()> {
        self.editable("remove participants")?;
        let removed: BTreeSet<&str> = cards.iter().map(|c| c.identity()).collect();
        let remaining: Vec<String> = self
            .participants
            .iter()
            .filter(|p| !removed.contains(p.as_str()))
            .cloned()
            .collect();
        check_count(remaining.len(), GroupErrorCode::InvalidChangeParticipants)?;
        if remaining.len() == self.participants.len() {
            return Err(Error::group(
                GroupErrorCode::InvalidChangeParticipants,
                "none of them is a participant",
            ));
        }
        let ethree = self.ethree.clone();
        let others: Vec<&str> = remaining
            .iter()
            .map(String::as_str)
            .filter(|p| *p != ethree.inner.identity)
            .collect();
        let found = if others.is_empty() {
            Default::default()
        } else {
            ethree.find_users(&others).await?
        };
        let cards: Vec<&Card> = found.values().collect();
        let session_id = self.session_hex();
        let ticket = self.session.add_epoch(&mut OsRng)?;
        let epoch = self.session.current_epoch();
        ethree
            .push_ticket(&session_id, epoch, &ticket, &cards)
            .await?;
        let gone: Vec<String> = self
            .participants
            .iter()
            .filter(|p| removed.contains(p.as_str()))
            .cloned()
            .collect();
        let mut participants = remaining;
        if !participants.contains(&self.initiator) {
            participants.push(self.initiator.clone());
        }
        self.participants = participants;
        let tickets = [Ticket {
            epoch,
            data: ticket,
            identities: Vec::new(),
        }];
        ethree
            .store_group(
                &session_id,
                &self.initiator,
                &self.participants,
                &tickets,
                false,
            )
            .await?;
        for identity in gone {
            ethree
                .inner
                .api
                .keyknox_v2_reset(&V2Reset {
                    root: Some(GROUP_ROOT.to_owned()),
                    path: Some(session_id.clone()),
                    key: None,
                    identity: Some(identity),
                })
                .await?;
        }
        Ok(())
    }

    /// Shares every ticket again with the owner of `card`, replacing their copies (e3kit
    /// `group.reAdd`): for a participant who rotated their key. Initiator only.
    ///
    /// ```no_run
    /// # async fn run(ethree: sealkit::EThree, group: sealkit::Group) -> sealkit::Result<()> {
    /// // Bob lost his key and rotated it: his copies of the tickets are for the old one.
    /// let changed = ethree.update_cached_users().await?;
    /// if changed.iter().any(|who| who == "bob") {
    ///     let bob = ethree.find_user("bob").await?;
    ///     group.re_add(&bob).await?;
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn re_add(&self, card: &Card) -> Result<()> {
        self.editable("re-add participants")?;
        self.share_epochs(&[card], true).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn session_ids_are_e3kits_hex() {
        assert!(matches!(
            session_id_of(b"short"),
            Err(Error::Group {
                code: GroupErrorCode::GroupIdTooShort,
                ..
            })
        ));
        let id = session_id_of(b"0123456789").unwrap();
        assert_eq!(id.len(), 64);
        assert_eq!(id, id.to_lowercase());
    }
}
