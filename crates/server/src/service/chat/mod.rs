//! Chat (`sealkit_proto::chat`): who may create, read, post to and change a channel.
//!
//! Three parts: `rules` decides (pure functions over records and requests), this module reads
//! and writes the store around those decisions, and [`hub`] fans committed messages out to the
//! WebSocket subscribers of this process. Every operation takes the [`Caller`] it acts for and
//! answers [`ServiceError`]s; none knows about HTTP.

pub mod blobs;
pub mod hub;
mod rules;

pub use hub::{ChatHub, FrameText};
pub use rules::{channel_view, member_view, message_view, ChannelsQuery, HistoryQuery};

use super::auth::Caller;
use super::error::ServiceError;
use crate::store::{
    ChannelRecord, Conflict, Forbidden, MessageEdit, NewChatMessage, Posted, Store, StoreError,
};
use rules::{invalid, is_member};
use sealkit_proto::chat::{
    Channel, EditMessage, Message, MessagePage, NewChannel, NewMessage, ReadState,
};
use sealkit_proto::ChannelId;

/// Chat store failures that no rule above anticipated: `NotFound` means the channel vanished.
fn store_error(e: StoreError) -> ServiceError {
    match e {
        StoreError::NotFound => ServiceError::ChannelNotFound,
        StoreError::Forbidden(_) => rules::hidden_from_outsider(),
        StoreError::Conflict(rule) => ServiceError::MembershipRule(rule.message().to_owned()),
        other => ServiceError::internal(other),
    }
}

/// The channel, or 404 when it does not exist.
async fn existing(
    store: &dyn Store,
    app_id: &str,
    channel_id: &str,
) -> Result<ChannelRecord, ServiceError> {
    store
        .chat_channel(app_id, channel_id)
        .await
        .map_err(store_error)?
        .ok_or(ServiceError::ChannelNotFound)
}

/// A channel id from a request, validated once here.
fn parse_channel_id(id: &str) -> Result<ChannelId, ServiceError> {
    ChannelId::new(id).map_err(invalid)
}

/// The channel, if `identity` may read it: 404 when it does not exist and, alike, for
/// non-members.
async fn readable(
    store: &dyn Store,
    app_id: &str,
    identity: &str,
    channel_id: &ChannelId,
) -> Result<ChannelRecord, ServiceError> {
    let record = existing(store, app_id, channel_id).await?;
    if !is_member(&record, identity) {
        return Err(rules::hidden_from_outsider());
    }
    Ok(record)
}

/// Creates a channel with the caller as its first admin.
/// At most `per_creator` channels per creator and application.
pub async fn create_channel(
    store: &dyn Store,
    caller: &Caller,
    new: NewChannel,
    now_ms: i64,
    per_creator: u32,
) -> Result<Channel, ServiceError> {
    let id = parse_channel_id(&new.id)?;
    let record = rules::new_channel(&caller.app_id, &caller.identity, id, new, now_ms)?;
    match store.chat_create_channel(record.clone(), per_creator).await {
        // A new channel has no messages: every member's horizon is 0.
        Ok(()) => {
            let mut record = record;
            record.read = record.members.iter().map(|m| (m.clone(), 0)).collect();
            Ok(member_view(record, &caller.identity))
        }
        Err(StoreError::Conflict(Conflict::ChannelExists)) => Err(ServiceError::ChannelExists),
        Err(StoreError::Conflict(Conflict::TooManyChannels { limit })) => {
            Err(ServiceError::TooManyChannels { limit })
        }
        Err(e) => Err(store_error(e)),
    }
}

/// A page of the caller's channels, by id (see [`ChannelsQuery`]), and whether more follow.
pub async fn channels_of(
    store: &dyn Store,
    caller: &Caller,
    query: &ChannelsQuery,
) -> Result<(Vec<Channel>, bool), ServiceError> {
    let (after, limit) = query.parse()?;
    let mut records = store
        .chat_channels_of(
            &caller.app_id,
            &caller.identity,
            after.as_ref().map(ChannelId::as_str),
            limit + 1,
        )
        .await
        .map_err(store_error)?;
    let more = records.len() > limit as usize;
    records.truncate(limit as usize);
    let view = |record| member_view(record, &caller.identity);
    Ok((records.into_iter().map(view).collect(), more))
}

/// One channel, for its members.
pub async fn channel(
    store: &dyn Store,
    caller: &Caller,
    channel_id: &str,
) -> Result<Channel, ServiceError> {
    let channel_id = parse_channel_id(channel_id)?;
    readable(store, &caller.app_id, &caller.identity, &channel_id)
        .await
        .map(|record| member_view(record, &caller.identity))
}

/// The channel whose membership changes by `identity`: validated ids, 404 for no channel.
async fn changed_channel(
    store: &dyn Store,
    app_id: &str,
    channel_id: &str,
    identity: &str,
) -> Result<ChannelRecord, ServiceError> {
    let channel_id = parse_channel_id(channel_id)?;
    rules::check_identity(identity)?;
    existing(store, app_id, &channel_id).await
}

/// Adds `identity` to a channel (see `rules::may_add`).
pub async fn add_member(
    store: &dyn Store,
    caller: &Caller,
    channel_id: &str,
    identity: &str,
) -> Result<Channel, ServiceError> {
    let record = changed_channel(store, &caller.app_id, channel_id, identity).await?;
    rules::may_add(&record, &caller.identity, identity)?;
    store
        .chat_add_member(&caller.app_id, channel_id, identity, false)
        .await
        .map(|record| member_view(record, &caller.identity))
        .map_err(store_error)
}

/// Removes `identity` from a channel (see `rules::may_remove`).
pub async fn remove_member(
    store: &dyn Store,
    caller: &Caller,
    channel_id: &str,
    identity: &str,
) -> Result<Channel, ServiceError> {
    let record = changed_channel(store, &caller.app_id, channel_id, identity).await?;
    rules::may_remove(&record, &caller.identity, identity)?;
    match store
        .chat_remove_member(&caller.app_id, channel_id, identity)
        .await
    {
        Ok(record) => Ok(member_view(record, &caller.identity)),
        // The channel exists (read above), so the member left concurrently.
        Err(StoreError::NotFound) => Err(rules::not_a_member(identity)),
        Err(e) => Err(store_error(e)),
    }
}

/// Posts a message for the caller. Returns it and whether it is new (false: the `client_id`
/// was posted before and this is the stored message). A post for a stale membership is refused
/// with the channel as it is now ([`ServiceError::StaleMembers`]).
pub async fn post(
    store: &dyn Store,
    caller: &Caller,
    channel_id: &str,
    new: NewMessage,
    limit: usize,
    now_ms: i64,
) -> Result<(Message, bool), ServiceError> {
    let channel_id = parse_channel_id(channel_id)?;
    let ciphertext = rules::post_ciphertext(&new, limit)?;
    let kt_head = rules::gossip_head(new.kt_head.as_ref())?;
    rules::check_post_blobs(&new.blobs)?;
    let posted = store
        .chat_post(NewChatMessage {
            app_id: caller.app_id.to_string(),
            channel_id: channel_id.clone(),
            sender: caller.identity.clone(),
            client_id: new.client_id,
            ciphertext,
            member_version: new.member_version,
            sent_at_ms: now_ms,
            kt_head,
            blobs: new.blobs.clone(),
        })
        .await;
    match posted {
        Ok(Posted::New(record)) => Ok((message_view(&record), true)),
        Ok(Posted::Duplicate(record)) => Ok((message_view(&record), false)),
        Err(StoreError::Forbidden(_)) => Err(rules::hidden_from_outsider()),
        Err(StoreError::Conflict(Conflict::BlobUnusable)) => Err(ServiceError::BlobUnusable),
        // The sender needs the current members to encrypt again: read them once here, so
        // the refusal carries them and the client does not ask for the channel itself.
        Err(StoreError::Conflict(Conflict::StaleMemberVersion { .. })) => {
            let record = readable(store, &caller.app_id, &caller.identity, &channel_id).await?;
            Err(ServiceError::StaleMembers {
                sent: new.member_version,
                channel: Box::new(member_view(record, &caller.identity)),
            })
        }
        Err(e) => Err(store_error(e)),
    }
}

/// A page of a channel's history, for its members.
pub async fn history(
    store: &dyn Store,
    caller: &Caller,
    channel_id: &str,
    query: &HistoryQuery,
) -> Result<MessagePage, ServiceError> {
    let (cursor, limit) = query.parse()?;
    let channel_id = parse_channel_id(channel_id)?;
    readable(store, &caller.app_id, &caller.identity, &channel_id).await?;
    let mut records = store
        .chat_history(&caller.app_id, &channel_id, cursor, limit + 1)
        .await
        .map_err(store_error)?;
    let more = rules::trim_page(&mut records, cursor, limit);
    Ok(MessagePage {
        messages: records.iter().map(message_view).collect(),
        more,
    })
}

/// Moves the caller's read horizon in a channel forward to `seq` (members only; never back).
/// A `seq` below 0 or above the channel's `last_seq` is invalid.
pub async fn mark_read(
    store: &dyn Store,
    caller: &Caller,
    channel_id: &str,
    seq: i64,
) -> Result<ReadState, ServiceError> {
    let channel_id = parse_channel_id(channel_id)?;
    if seq < 0 {
        return Err(invalid("seq must not be negative"));
    }
    match store
        .chat_mark_read(&caller.app_id, &channel_id, &caller.identity, seq)
        .await
    {
        Ok(mark) => Ok(ReadState {
            channel: channel_id.into_string(),
            seq: mark.seq,
            unread: (mark.last_seq - mark.seq).max(0),
        }),
        Err(StoreError::Conflict(Conflict::ReadBeyondLastSeq { last_seq })) => Err(invalid(
            format!("seq {seq} is beyond the channel's newest message ({last_seq})"),
        )),
        Err(StoreError::NotFound) => Err(ServiceError::ChannelNotFound),
        Err(e) => Err(store_error(e)),
    }
}

/// The refusals an edit and a delete share, in the service's words.
fn revision_error(e: StoreError, seq: i64) -> ServiceError {
    match e {
        StoreError::Conflict(Conflict::NoSuchMessage) => ServiceError::MessageNotFound { seq },
        StoreError::Conflict(Conflict::MessageDeleted) => ServiceError::MessageDeleted { seq },
        StoreError::Forbidden(why @ (Forbidden::NotTheSender | Forbidden::NotTheSenderOrAdmin)) => {
            ServiceError::NotTheSender(why.message())
        }
        // Not a member, like everywhere else: as if the channel did not exist.
        StoreError::Forbidden(_) => rules::hidden_from_outsider(),
        e => store_error(e),
    }
}

/// A message seq from a path: 1 or more (a channel numbers its messages from 1).
fn check_seq(seq: i64) -> Result<(), ServiceError> {
    if seq < 1 {
        return Err(ServiceError::MessageNotFound { seq });
    }
    Ok(())
}

/// Replaces the caller's message `seq` with a new ciphertext (its sender only). Like a post, it
/// must be encrypted for the current members: a stale `member_version` is refused with the
/// channel as it is now ([`ServiceError::StaleMembers`]).
pub async fn edit(
    store: &dyn Store,
    caller: &Caller,
    (channel_id, seq): (&str, i64),
    edit: EditMessage,
    limit: usize,
    now_ms: i64,
) -> Result<Message, ServiceError> {
    let channel_id = parse_channel_id(channel_id)?;
    check_seq(seq)?;
    let ciphertext = rules::ciphertext(&edit.ciphertext, limit)?;
    let kt_head = rules::gossip_head(edit.kt_head.as_ref())?;
    let edited = store
        .chat_edit_message(MessageEdit {
            app_id: caller.app_id.to_string(),
            channel_id: channel_id.clone(),
            seq,
            editor: caller.identity.clone(),
            ciphertext,
            member_version: edit.member_version,
            edited_at_ms: now_ms,
            kt_head,
        })
        .await;
    match edited {
        Ok(record) => Ok(message_view(&record)),
        Err(StoreError::Conflict(Conflict::StaleMemberVersion { .. })) => {
            let record = readable(store, &caller.app_id, &caller.identity, &channel_id).await?;
            Err(ServiceError::StaleMembers {
                sent: edit.member_version,
                channel: Box::new(member_view(record, &caller.identity)),
            })
        }
        Err(e) => Err(revision_error(e, seq)),
    }
}

/// Deletes message `seq` (its sender, or an admin of the channel): the ciphertext is removed
/// from the store and a tombstone stays. Deleting a tombstone again answers it unchanged.
pub async fn delete(
    store: &dyn Store,
    caller: &Caller,
    (channel_id, seq): (&str, i64),
    now_ms: i64,
) -> Result<Message, ServiceError> {
    let channel_id = parse_channel_id(channel_id)?;
    check_seq(seq)?;
    store
        .chat_delete_message(&caller.app_id, &channel_id, seq, &caller.identity, now_ms)
        .await
        .map(|record| message_view(&record))
        .map_err(|e| revision_error(e, seq))
}
