//! The chat rules as pure decisions: who may change a channel's membership, what a new channel
//! and a post must look like, how a history query reads. No store, no clock: the callers in
//! [`super`] read the records and pass the time.

use super::super::error::ServiceError;
use crate::store::{ChannelRecord, ChatMessageRecord, HistoryCursor};
use base64::Engine as _;
use sealkit_proto::chat::{
    direct_channel_id, validate_blob_id, validate_client_id, Channel, ChannelKind, Deletion,
    Message, NewChannel, NewMessage, DEFAULT_PAGE, DIRECT_PREFIX, MAX_BLOBS_PER_MESSAGE,
    MAX_CHANNELS_PAGE, MAX_MEMBERS, MAX_PAGE,
};
use sealkit_proto::{ChannelId, Identity};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The kind of a stored channel.
pub(super) fn kind_of(record: &ChannelRecord) -> ChannelKind {
    if record.kind == "direct" {
        ChannelKind::Direct
    } else {
        ChannelKind::Group
    }
}

/// Whether `identity` is a member of the channel.
pub(super) fn is_member(record: &ChannelRecord, identity: &str) -> bool {
    record.members.iter().any(|m| m == identity)
}

fn is_admin(record: &ChannelRecord, identity: &str) -> bool {
    record.admins.iter().any(|a| a == identity)
}

/// The API view of a stored channel.
pub fn channel_view(record: ChannelRecord) -> Channel {
    Channel {
        kind: kind_of(&record),
        id: record.id.into_string(),
        open: record.open,
        created_by: record.created_by.into_string(),
        created_at: record.created_at_ms,
        admins: record.admins.into_iter().map(String::from).collect(),
        members: record.members.into_iter().map(String::from).collect(),
        member_version: record.member_version,
        last_seq: record.last_seq,
        unread: None,
        read: Default::default(),
    }
}

/// The API view of a stored channel for `viewer`: with its unread count and every member's
/// read horizon when `viewer` is a member (read state is for members only).
pub fn member_view(record: ChannelRecord, viewer: &str) -> Channel {
    let read_state = record.read_seq(viewer).map(|horizon| {
        let horizons = record
            .read
            .iter()
            .map(|(member, seq)| (member.to_string(), *seq))
            .collect();
        ((record.last_seq - horizon).max(0), horizons)
    });
    let mut channel = channel_view(record);
    if let Some((unread, horizons)) = read_state {
        channel.unread = Some(unread);
        channel.read = horizons;
    }
    channel
}

/// The API view of a stored message.
pub fn message_view(record: &ChatMessageRecord) -> Message {
    Message {
        seq: record.seq,
        channel: record.channel_id.to_string(),
        sender: record.sender.to_string(),
        client_id: record.client_id.clone(),
        sent_at: record.sent_at_ms,
        member_version: record.member_version,
        ciphertext: B64.encode(&record.ciphertext),
        // Stored only after it parsed (post), so a row that does not parse is left out.
        kt_head: record
            .kt_head
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok())
            .map(Box::new),
        edited_at: record.edited_at_ms,
        deleted: record.deleted_at_ms.map(|at| Deletion {
            at,
            by: record.deleted_by.clone().unwrap_or_default(),
        }),
    }
}

/// Most bytes a gossiped head may take as JSON: its fields are an application id, a number,
/// two 64-character hex strings and an 88-character signature; this leaves room, and no more.
const MAX_GOSSIP_HEAD: usize = 1024;

/// The gossiped head of a post, as stored (JSON). The server does not verify it (receivers do,
/// against their pinned key); it only bounds its size.
pub(super) fn gossip_head(
    head: Option<&sealkit_proto::kt::SignedHead>,
) -> Result<Option<String>, ServiceError> {
    let Some(head) = head else {
        return Ok(None);
    };
    let text = serde_json::to_string(head).map_err(invalid)?;
    if text.len() > MAX_GOSSIP_HEAD {
        return Err(invalid(format!(
            "kt_head is {} bytes, at most {MAX_GOSSIP_HEAD} are allowed",
            text.len()
        )));
    }
    Ok(Some(text))
}

/// The blob ids a post names: valid ids, none twice, at most [`MAX_BLOBS_PER_MESSAGE`].
pub(super) fn check_post_blobs(blobs: &[String]) -> Result<(), ServiceError> {
    if blobs.len() > MAX_BLOBS_PER_MESSAGE {
        return Err(invalid(format!(
            "a message may name at most {MAX_BLOBS_PER_MESSAGE} blobs"
        )));
    }
    for (n, blob) in blobs.iter().enumerate() {
        validate_blob_id(blob).map_err(invalid)?;
        if blobs.iter().take(n).any(|earlier| earlier == blob) {
            return Err(invalid(format!("blob {blob} is named twice")));
        }
    }
    Ok(())
}

/// The chat error for invalid input.
pub(super) fn invalid(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::ChatInvalid(e.to_string())
}

/// A member named in a request, validated.
pub(super) fn check_identity(identity: &str) -> Result<Identity, ServiceError> {
    Identity::new(identity)
        .map_err(|why| ServiceError::ChatInvalid(format!("member {identity:?}: {why}")))
}

/// The answer to a caller who is not a member: the same as for a channel that does not
/// exist, so outsiders cannot learn which channels (and which direct channels) exist. Open
/// channels are public by nature (anyone may join), and a taken id shows when creating it.
pub(super) fn hidden_from_outsider() -> ServiceError {
    ServiceError::ChannelNotFound
}

/// Whether `identity` is one of the two identities a direct channel's id derives from (its
/// creator or the other one): only they may leave it and come back.
fn belongs_to_direct(record: &ChannelRecord, identity: &str) -> bool {
    identity == record.created_by.as_str()
        || direct_channel_id(record.created_by.as_str(), identity) == record.id.as_str()
}

/// The record of channel `id` as `creator` asks for it: the creator is its first admin and a
/// member; a direct channel has exactly one other member and is never open.
pub(super) fn new_channel(
    app_id: &str,
    creator: &Identity,
    id: ChannelId,
    new: NewChannel,
    now_ms: i64,
) -> Result<ChannelRecord, ServiceError> {
    let mut members = new
        .members
        .iter()
        .map(|member| check_identity(member))
        .collect::<Result<Vec<Identity>, _>>()?;
    // `dm:` ids belong to the direct channel of the two identities they derive from: nobody
    // can squat another pair's id with a group channel, or with a direct channel of a third.
    if id.as_str().starts_with(DIRECT_PREFIX) {
        let mut others: Vec<&Identity> = members.iter().filter(|m| *m != creator).collect();
        others.sort();
        others.dedup();
        let pair_id = match (new.kind, others.as_slice()) {
            (ChannelKind::Direct, [other]) => {
                Some(direct_channel_id(creator.as_str(), other.as_str()))
            }
            _ => None,
        };
        if pair_id.as_deref() != Some(id.as_str()) {
            return Err(invalid(format!(
                "channel ids starting with {DIRECT_PREFIX} are reserved for the direct channel of \
                 the two identities they derive from"
            )));
        }
    }
    match new.kind {
        ChannelKind::Direct => {
            if new.open {
                return Err(invalid("a direct channel cannot be open"));
            }
            members.sort();
            members.dedup();
            if members.len() != 1 || members[0] == *creator {
                return Err(invalid(
                    "a direct channel names exactly one member other than its creator",
                ));
            }
        }
        ChannelKind::Group => {}
    }
    members.push(creator.clone());
    members.sort();
    members.dedup();
    if members.len() > MAX_MEMBERS {
        return Err(invalid(format!(
            "a channel has at most {MAX_MEMBERS} members, its creator included"
        )));
    }
    Ok(ChannelRecord {
        app_id: app_id.to_owned(),
        id,
        kind: match new.kind {
            ChannelKind::Direct => "direct",
            ChannelKind::Group => "group",
        }
        .to_owned(),
        open: new.open,
        created_by: creator.clone(),
        created_at_ms: now_ms,
        admins: vec![creator.clone()],
        members,
        member_version: 1,
        last_seq: 0,
        read: Vec::new(),
    })
}

/// Who may add `identity` to the channel. Group channels: admins add anyone, anyone adds
/// themselves to an open channel. Direct channels: one of their two identities adds itself
/// back after leaving; nobody else is ever added. Outsiders of a closed channel are answered
/// as if it did not exist.
pub(super) fn may_add(
    record: &ChannelRecord,
    caller: &str,
    identity: &str,
) -> Result<(), ServiceError> {
    let member = is_member(record, caller);
    match kind_of(record) {
        ChannelKind::Direct if identity == caller && belongs_to_direct(record, caller) => Ok(()),
        ChannelKind::Direct if member => Err(ServiceError::MembershipRule(
            "a direct channel keeps its two members".into(),
        )),
        ChannelKind::Direct => Err(hidden_from_outsider()),
        ChannelKind::Group if is_admin(record, caller) || (identity == caller && record.open) => {
            Ok(())
        }
        ChannelKind::Group if member || record.open => Err(ServiceError::NotAnAdmin),
        ChannelKind::Group => Err(hidden_from_outsider()),
    }
}

/// Who may remove `identity`: members remove themselves (leave, from a direct channel too);
/// admins of a group channel remove anyone; only members are removed. Outsiders are answered
/// as if the channel did not exist.
pub(super) fn may_remove(
    record: &ChannelRecord,
    caller: &str,
    identity: &str,
) -> Result<(), ServiceError> {
    if !is_member(record, caller) {
        return Err(hidden_from_outsider());
    }
    if identity != caller {
        match kind_of(record) {
            ChannelKind::Direct => {
                return Err(ServiceError::MembershipRule(
                    "a member of a direct channel can only remove itself (leave)".into(),
                ))
            }
            ChannelKind::Group if !is_admin(record, caller) => {
                return Err(ServiceError::NotAnAdmin)
            }
            ChannelKind::Group => {}
        }
    }
    if !is_member(record, identity) {
        return Err(not_a_member(identity));
    }
    Ok(())
}

/// The refusal for removing someone who is not a member.
pub(super) fn not_a_member(identity: &str) -> ServiceError {
    ServiceError::NotAMember(format!("{identity:?} is not a member of the channel"))
}

/// The ciphertext of a post, decoded: a valid client id, standard padded base64, not empty,
/// at most `limit` bytes.
pub(super) fn post_ciphertext(new: &NewMessage, limit: usize) -> Result<Vec<u8>, ServiceError> {
    validate_client_id(&new.client_id).map_err(invalid)?;
    ciphertext(&new.ciphertext, limit)
}

/// The decoded ciphertext of a post or an edit: standard padded base64, not empty, at most
/// `limit` bytes.
pub(super) fn ciphertext(text: &str, limit: usize) -> Result<Vec<u8>, ServiceError> {
    // Decoding allocates, so refuse what cannot fit before decoding it.
    if text.len() / 4 * 3 > limit + 2 {
        return Err(ServiceError::MessageTooLarge { limit });
    }
    let ciphertext = B64
        .decode(text)
        .map_err(|_| invalid("ciphertext must be standard, padded base64"))?;
    if ciphertext.is_empty() {
        return Err(invalid("ciphertext is empty"));
    }
    if ciphertext.len() > limit {
        return Err(ServiceError::MessageTooLarge { limit });
    }
    Ok(ciphertext)
}

/// The history query, as received (parsed here so every bad value gets the chat error).
#[derive(Debug, Default, serde::Deserialize)]
pub struct HistoryQuery {
    /// Messages with `seq` greater than this.
    pub after: Option<String>,
    /// Messages with `seq` less than this.
    pub before: Option<String>,
    /// Page size.
    pub limit: Option<String>,
}

fn parse_number(name: &str, value: &str) -> Result<i64, ServiceError> {
    match value.parse::<i64>() {
        Ok(n) if n >= 0 => Ok(n),
        _ => Err(invalid(format!(
            "{name} must be a non-negative integer, not {value:?}"
        ))),
    }
}

impl HistoryQuery {
    /// The cursor and page size the query asks for (the size capped at [`MAX_PAGE`]).
    pub(super) fn parse(&self) -> Result<(HistoryCursor, u32), ServiceError> {
        let after = self
            .after
            .as_deref()
            .map(|v| parse_number("after", v))
            .transpose()?;
        let before = self
            .before
            .as_deref()
            .map(|v| parse_number("before", v))
            .transpose()?;
        let limit = parse_limit(self.limit.as_deref(), DEFAULT_PAGE, MAX_PAGE)?;
        let cursor = match (after, before) {
            (Some(_), Some(_)) => return Err(invalid("give after or before, not both")),
            (Some(n), None) => HistoryCursor::After(n),
            (None, Some(n)) => HistoryCursor::Before(n),
            (None, None) => HistoryCursor::Latest,
        };
        Ok((cursor, limit))
    }
}

/// The channel-list query, as received (parsed here so every bad value gets the chat error).
#[derive(Debug, Default, serde::Deserialize)]
pub struct ChannelsQuery {
    /// Channels whose id is greater than this one.
    pub after: Option<String>,
    /// Page size.
    pub limit: Option<String>,
}

impl ChannelsQuery {
    /// The channel to start after and the page size (at most [`MAX_CHANNELS_PAGE`], the
    /// default).
    pub(super) fn parse(&self) -> Result<(Option<ChannelId>, u32), ServiceError> {
        let after = self
            .after
            .as_deref()
            .map(|id| ChannelId::new(id).map_err(invalid))
            .transpose()?;
        let limit = parse_limit(self.limit.as_deref(), MAX_CHANNELS_PAGE, MAX_CHANNELS_PAGE)?;
        Ok((after, limit))
    }
}

/// A page size as received: absent means `default`, zero is refused, anything above `max` is
/// served as `max` (a client asking for more than a page gets a full page, not an error).
fn parse_limit(value: Option<&str>, default: u32, max: u32) -> Result<u32, ServiceError> {
    match value {
        None => Ok(default),
        Some(v) => match parse_number("limit", v)? {
            0 => Err(invalid("limit must be at least 1")),
            n => Ok(u32::try_from(n).unwrap_or(max).min(max)),
        },
    }
}

/// Trims a page read with one record more than `limit` (which tells whether there is more,
/// without a count query) to `limit`; returns whether there was more.
pub(super) fn trim_page(
    records: &mut Vec<ChatMessageRecord>,
    cursor: HistoryCursor,
    limit: u32,
) -> bool {
    let more = records.len() > limit as usize;
    if more {
        match cursor {
            HistoryCursor::After(_) => records.truncate(limit as usize),
            // Backwards pages are the newest ones: the extra one is the oldest.
            HistoryCursor::Before(_) | HistoryCursor::Latest => {
                records.remove(0);
            }
        }
    }
    more
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use sealkit_proto::kt::SignedHead;

    #[test]
    fn post_blobs_are_valid_distinct_and_few() {
        let id = |n: usize| format!("{n:032x}");
        assert!(check_post_blobs(&[]).is_ok());
        let most: Vec<String> = (0..MAX_BLOBS_PER_MESSAGE).map(id).collect();
        assert!(check_post_blobs(&most).is_ok());
        let too_many: Vec<String> = (0..=MAX_BLOBS_PER_MESSAGE).map(id).collect();
        assert!(check_post_blobs(&too_many).is_err());
        assert!(check_post_blobs(&[id(1), id(2), id(1)]).is_err());
        assert!(check_post_blobs(&["../etc/passwd".into()]).is_err());
    }

    fn head(app_id: &str) -> SignedHead {
        SignedHead {
            app_id: app_id.into(),
            epoch: 7,
            root_hash: "ab".repeat(32),
            vrf_public_key: "cd".repeat(32),
            signature: "A".repeat(88),
        }
    }

    #[test]
    fn gossip_heads_are_stored_as_posted_within_a_bound() {
        assert_eq!(gossip_head(None).unwrap(), None);
        let stored = gossip_head(Some(&head("app"))).unwrap().unwrap();
        assert_eq!(
            serde_json::from_str::<SignedHead>(&stored).unwrap(),
            head("app")
        );
        assert!(matches!(
            gossip_head(Some(&head(&"x".repeat(MAX_GOSSIP_HEAD)))),
            Err(ServiceError::ChatInvalid(_))
        ));
    }
}
