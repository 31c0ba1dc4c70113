//! Chat edits and deletes: the writes inside a channel's transaction, the same on both
//! backends. The caller holds the channel's lock (`chat::lock_channel`) and delivers the event.

use sealkit_proto::hooks::{HookEvent, HookKind};

use super::chat::{membership, MESSAGE_COLUMNS};
use super::{backend, blobs, hooks, Conn};
use crate::store::rules;
use crate::store::{ChatMessageRecord, Conflict, Forbidden, MessageEdit, StoreError, StoreResult};

/// The stored message `seq` of a channel, read inside the caller's transaction.
async fn message(
    conn: &mut Conn,
    app_id: &str,
    channel_id: &str,
    seq: i64,
) -> StoreResult<ChatMessageRecord> {
    sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages \
         WHERE app_id = $1 AND channel_id = $2 AND seq = $3"
    ))
    .bind(app_id)
    .bind(channel_id)
    .bind(seq)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?
    .ok_or(StoreError::Conflict(Conflict::NoSuchMessage))
}

/// Replaces a message's ciphertext under the channel's lock, whose `member_version` is
/// `current` (see [`ChatStore::chat_edit_message`]); returns the message as stored.
///
/// [`ChatStore::chat_edit_message`]: crate::store::ChatStore::chat_edit_message
pub(crate) async fn edit(
    conn: &mut Conn,
    edit: MessageEdit,
    current: i64,
) -> StoreResult<ChatMessageRecord> {
    let (app_id, channel_id) = (edit.app_id.as_str(), edit.channel_id.as_str());
    if membership(conn, app_id, channel_id, &edit.editor)
        .await?
        .is_none()
    {
        return Err(StoreError::Forbidden(Forbidden::NotAMember));
    }
    let stored = message(conn, app_id, channel_id, edit.seq).await?;
    rules::check_edit(&stored, &edit.editor)?;
    rules::check_member_version(current, edit.member_version).map_err(StoreError::Conflict)?;
    sqlx::query(
        "UPDATE chat_messages SET ciphertext = $4, member_version = $5, edited_at_ms = $6, \
         kt_head = $7 WHERE app_id = $1 AND channel_id = $2 AND seq = $3",
    )
    .bind(app_id)
    .bind(channel_id)
    .bind(edit.seq)
    .bind(&edit.ciphertext)
    .bind(edit.member_version)
    .bind(edit.edited_at_ms)
    .bind(&edit.kt_head)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    let event = HookEvent {
        seq: Some(edit.seq),
        sender: Some(stored.sender.to_string()),
        ..hooks::event(app_id, channel_id, HookKind::Edit, edit.edited_at_ms)
    };
    hooks::enqueue(conn, &event).await?;
    Ok(ChatMessageRecord {
        ciphertext: edit.ciphertext,
        member_version: edit.member_version,
        edited_at_ms: Some(edit.edited_at_ms),
        kt_head: edit.kt_head,
        ..stored
    })
}

/// Deletes a message under the channel's lock (see [`ChatStore::chat_delete_message`]): the
/// one path every deletion takes. Returns the tombstone and whether it is new (false: it was
/// deleted before, nothing changed).
///
/// [`ChatStore::chat_delete_message`]: crate::store::ChatStore::chat_delete_message
pub(crate) async fn delete(
    conn: &mut Conn,
    (app_id, channel_id, seq): (&str, &str, i64),
    deleter: &str,
    at_ms: i64,
) -> StoreResult<(ChatMessageRecord, bool)> {
    let Some(admin) = membership(conn, app_id, channel_id, deleter).await? else {
        return Err(StoreError::Forbidden(Forbidden::NotAMember));
    };
    let stored = message(conn, app_id, channel_id, seq).await?;
    rules::check_delete(&stored, deleter, admin)?;
    if stored.deleted_at_ms.is_some() {
        return Ok((stored, false));
    }
    // The files the message named go with it, in the same transaction (their bytes go back
    // to the application's quota).
    blobs::delete_of_message(conn, app_id, channel_id, seq).await?;
    // The bytes are overwritten in the row, not flagged: the ciphertext is gone from the
    // database (SQLite runs with `secure_delete`, so freed pages are zeroed as well).
    sqlx::query(
        "UPDATE chat_messages SET ciphertext = $4, kt_head = NULL, deleted_at_ms = $5, \
         deleted_by = $6 WHERE app_id = $1 AND channel_id = $2 AND seq = $3",
    )
    .bind(app_id)
    .bind(channel_id)
    .bind(seq)
    .bind(Vec::<u8>::new())
    .bind(at_ms)
    .bind(deleter)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    let event = HookEvent {
        seq: Some(seq),
        sender: Some(stored.sender.to_string()),
        deleted_by: Some(deleter.to_owned()),
        ..hooks::event(app_id, channel_id, HookKind::Delete, at_ms)
    };
    hooks::enqueue(conn, &event).await?;
    let tombstone = ChatMessageRecord {
        ciphertext: Vec::new(),
        kt_head: None,
        deleted_at_ms: Some(at_ms),
        deleted_by: Some(deleter.to_owned()),
        ..stored
    };
    Ok((tombstone, true))
}
