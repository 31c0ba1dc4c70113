//! Chat: the reads and the writes inside a channel's transaction that are the same on both
//! backends. Taking the channel's lock, inserting a new channel's members and delivering events
//! stay with each backend.

use std::collections::BTreeMap;

use sealkit_proto::{Identity, InvalidId};
use sqlx::{Executor, Row};

use super::{backend, hooks, locked, unique_or_backend, Conn, Db, BYTE_ORDER};
use crate::store::rules::{self, MemberChange};
use crate::store::{
    ChannelRecord, ChatMessageRecord, Conflict, Forbidden, HistoryCursor, NewChatMessage, Posted,
    ReadMark, StoreError, StoreResult,
};
use sealkit_proto::hooks::{HookEvent, HookKind};

/// The columns of a [`ChatMessageRecord`].
pub(super) const MESSAGE_COLUMNS: &str = "channel_id, seq, sender, client_id, ciphertext, \
     member_version, sent_at_ms, kt_head, edited_at_ms, deleted_at_ms, deleted_by";

/// Channels with their members, one row per member (`identity` NULL for a channel without
/// members), from one statement, hence one snapshot. Filters follow in the caller's query.
const CHANNEL_WITH_MEMBERS: &str = "SELECT c.app_id, c.id, c.kind, c.open, c.created_by, \
     c.created_at_ms, c.member_version, c.last_seq, m.identity, m.admin, m.read_seq \
     FROM chat_channels AS c \
     LEFT JOIN chat_members AS m ON m.app_id = c.app_id AND m.channel_id = c.id";

/// A stored id as its type; one that does not parse is a corrupt row.
fn decode_id<T: TryFrom<String, Error = InvalidId>>(text: String) -> Result<T, sqlx::Error> {
    T::try_from(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Groups the rows of a [`CHANNEL_WITH_MEMBERS`] query into channels, by id.
fn channels_from_rows(
    rows: &[<Db as sqlx::Database>::Row],
) -> Result<Vec<ChannelRecord>, sqlx::Error> {
    let mut by_id: BTreeMap<String, (ChannelRecord, Vec<(Identity, bool)>)> = BTreeMap::new();
    // Sorted below by identity with Rust's order, like the members.
    for row in rows {
        let id: String = row.try_get("id")?;
        if !by_id.contains_key(&id) {
            let channel = ChannelRecord {
                app_id: row.try_get("app_id")?,
                id: decode_id(id.clone())?,
                kind: row.try_get("kind")?,
                open: row.try_get("open")?,
                created_by: decode_id(row.try_get("created_by")?)?,
                created_at_ms: row.try_get("created_at_ms")?,
                admins: Vec::new(),
                members: Vec::new(),
                member_version: row.try_get("member_version")?,
                last_seq: row.try_get("last_seq")?,
                read: Vec::new(),
            };
            by_id.insert(id.clone(), (channel, Vec::new()));
        }
        let identity: Option<String> = row.try_get("identity")?;
        if let (Some(identity), Some((channel, members))) = (identity, by_id.get_mut(&id)) {
            let identity: Identity = decode_id(identity)?;
            channel
                .read
                .push((identity.clone(), row.try_get("read_seq")?));
            members.push((identity, row.try_get("admin")?));
        }
    }
    Ok(by_id
        .into_values()
        .map(|(mut channel, members)| {
            channel.read.sort_unstable();
            rules::add_members(&mut channel, members);
            channel
        })
        .collect())
}

/// One channel with its members.
pub(crate) async fn load_channel<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    channel_id: &str,
) -> StoreResult<Option<ChannelRecord>> {
    let rows = sqlx::query(&format!(
        "{CHANNEL_WITH_MEMBERS} WHERE c.app_id = $1 AND c.id = $2"
    ))
    .bind(app_id)
    .bind(channel_id)
    .fetch_all(db)
    .await
    .map_err(backend)?;
    Ok(channels_from_rows(&rows).map_err(backend)?.pop())
}

/// A page of the channels `identity` is a member of, by id in byte order (see
/// [`ChatStore::chat_channels_of`]).
///
/// [`ChatStore::chat_channels_of`]: crate::store::ChatStore::chat_channels_of
pub(crate) async fn channels_of<'c>(
    db: impl Executor<'c, Database = Db>,
    (app_id, identity): (&str, &str),
    after: Option<&str>,
    limit: u32,
) -> StoreResult<Vec<ChannelRecord>> {
    // The page is chosen on the member rows (one per channel), then joined with every member.
    let rows = sqlx::query(&format!(
        "{CHANNEL_WITH_MEMBERS} WHERE c.app_id = $1 AND c.id IN \
           (SELECT me.channel_id FROM chat_members AS me \
            WHERE me.app_id = $1 AND me.identity = $2 \
              AND ($3 IS NULL OR me.channel_id{BYTE_ORDER} > $3) \
            ORDER BY me.channel_id{BYTE_ORDER} LIMIT $4)"
    ))
    .bind(app_id)
    .bind(identity)
    .bind(after)
    .bind(i64::from(limit))
    .fetch_all(db)
    .await
    .map_err(backend)?;
    channels_from_rows(&rows).map_err(backend)
}

/// Inserts a channel's row (`member_version` 1, `last_seq` 0); `Conflict(ChannelExists)` if the
/// id is taken in the app.
pub(crate) async fn insert_channel(conn: &mut Conn, channel: &ChannelRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO chat_channels \
         (app_id, id, kind, open, created_by, created_at_ms, member_version, last_seq) \
         VALUES ($1, $2, $3, $4, $5, $6, 1, 0)",
    )
    .bind(&channel.app_id)
    .bind(channel.id.as_str())
    .bind(&channel.kind)
    .bind(channel.open)
    .bind(channel.created_by.as_str())
    .bind(channel.created_at_ms)
    .execute(conn)
    .await
    .map_err(|e| unique_or_backend(e, Conflict::ChannelExists))?;
    Ok(())
}

/// `Conflict(TooManyChannels)` when `creator` already created `per_creator` channels in the
/// app. The caller holds the creator's lock (SQLite: the write lock; PostgreSQL: an advisory
/// lock), so concurrent creations count each other.
pub(crate) async fn check_creator_room(
    conn: &mut Conn,
    app_id: &str,
    creator: &str,
    per_creator: u32,
) -> StoreResult<()> {
    if per_creator == u32::MAX {
        return Ok(());
    }
    let created: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM chat_channels WHERE app_id = $1 AND created_by = $2",
    )
    .bind(app_id)
    .bind(creator)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    rules::check_channels_per_creator(created, per_creator).map_err(StoreError::Conflict)
}

/// Takes the channel's lock for the rest of the transaction (on PostgreSQL its row lock, so
/// membership changes and posts to one channel queue across replicas; on SQLite the
/// transaction's `BEGIN IMMEDIATE` holds the database's) and returns its `member_version`;
/// `NotFound` if there is no such channel.
pub(crate) async fn lock_channel(
    conn: &mut Conn,
    app_id: &str,
    channel_id: &str,
) -> StoreResult<i64> {
    sqlx::query_scalar(&locked(
        "SELECT member_version FROM chat_channels WHERE app_id = $1 AND id = $2",
    ))
    .bind(app_id)
    .bind(channel_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?
    .ok_or(StoreError::NotFound)
}

/// Whether `identity` is a member (`Some(admin)`) of the channel.
pub(super) async fn membership(
    conn: &mut Conn,
    app_id: &str,
    channel_id: &str,
    identity: &str,
) -> StoreResult<Option<bool>> {
    sqlx::query_scalar(
        "SELECT admin FROM chat_members WHERE app_id = $1 AND channel_id = $2 AND identity = $3",
    )
    .bind(app_id)
    .bind(channel_id)
    .bind(identity)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)
}

/// Bumps the channel's `member_version` and returns the new one.
async fn bump_member_version(conn: &mut Conn, app_id: &str, channel_id: &str) -> StoreResult<i64> {
    sqlx::query_scalar(
        "UPDATE chat_channels SET member_version = member_version + 1 \
         WHERE app_id = $1 AND id = $2 RETURNING member_version",
    )
    .bind(app_id)
    .bind(channel_id)
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)
}

/// Adds a member under the channel's lock (see [`ChatStore::chat_add_member`]); returns the new
/// `member_version` when something changed.
///
/// [`ChatStore::chat_add_member`]: crate::store::ChatStore::chat_add_member
/// One change to one member, as the store's add and remove methods ask for it.
#[derive(Clone, Copy, Debug)]
pub(crate) enum MembershipEdit<'a> {
    /// Add `identity` (or change its admin flag).
    Add { identity: &'a str, admin: bool },
    /// Remove `identity`.
    Remove { identity: &'a str },
}

/// Locks the channel and applies `edit`; the new membership version when something changed.
pub(crate) async fn edit_membership(
    conn: &mut Conn,
    app_id: &str,
    channel_id: &str,
    edit: MembershipEdit<'_>,
) -> StoreResult<Option<i64>> {
    lock_channel(conn, app_id, channel_id).await?;
    let (changed, kind, identity) = match edit {
        MembershipEdit::Add { identity, admin } => (
            add_member(conn, app_id, channel_id, identity, admin).await?,
            HookKind::MemberAdded,
            identity,
        ),
        MembershipEdit::Remove { identity } => (
            Some(remove_member(conn, app_id, channel_id, identity).await?),
            HookKind::MemberRemoved,
            identity,
        ),
    };
    if let Some(member_version) = changed {
        let event = HookEvent {
            identity: Some(identity.to_owned()),
            member_version: Some(member_version),
            ..hooks::event(app_id, channel_id, kind, crate::now_ms())
        };
        hooks::enqueue(conn, &event).await?;
    }
    Ok(changed)
}

pub(crate) async fn add_member(
    conn: &mut Conn,
    app_id: &str,
    channel_id: &str,
    identity: &str,
    admin: bool,
) -> StoreResult<Option<i64>> {
    let current = membership(conn, app_id, channel_id, identity).await?;
    match rules::member_change(current, admin) {
        MemberChange::Unchanged => return Ok(None),
        MemberChange::Promote => {
            sqlx::query(
                "UPDATE chat_members SET admin = TRUE \
                 WHERE app_id = $1 AND channel_id = $2 AND identity = $3",
            )
            .bind(app_id)
            .bind(channel_id)
            .bind(identity)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        }
        MemberChange::Insert => {
            let count: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM chat_members WHERE app_id = $1 AND channel_id = $2",
            )
            .bind(app_id)
            .bind(channel_id)
            .fetch_one(&mut *conn)
            .await
            .map_err(backend)?;
            rules::check_room(count).map_err(StoreError::Conflict)?;
            // A new member's horizon starts at the newest message: nothing sent before was
            // encrypted for it, so nothing of that is unread.
            sqlx::query(
                "INSERT INTO chat_members (app_id, channel_id, identity, admin, read_seq) \
                 VALUES ($1, $2, $3, $4, \
                   (SELECT last_seq FROM chat_channels WHERE app_id = $1 AND id = $2))",
            )
            .bind(app_id)
            .bind(channel_id)
            .bind(identity)
            .bind(admin)
            .execute(&mut *conn)
            .await
            .map_err(backend)?;
        }
    }
    bump_member_version(conn, app_id, channel_id)
        .await
        .map(Some)
}

/// Removes a member under the channel's lock (see [`ChatStore::chat_remove_member`]); returns
/// the new `member_version`.
///
/// [`ChatStore::chat_remove_member`]: crate::store::ChatStore::chat_remove_member
pub(crate) async fn remove_member(
    conn: &mut Conn,
    app_id: &str,
    channel_id: &str,
    identity: &str,
) -> StoreResult<i64> {
    let Some(admin) = membership(conn, app_id, channel_id, identity).await? else {
        return Err(StoreError::NotFound);
    };
    if admin {
        let (kind, admins, members): (String, i64, i64) = sqlx::query_as(
            "SELECT c.kind, \
               (SELECT COUNT(*) FROM chat_members AS m \
                WHERE m.app_id = c.app_id AND m.channel_id = c.id AND m.admin), \
               (SELECT COUNT(*) FROM chat_members AS m \
                WHERE m.app_id = c.app_id AND m.channel_id = c.id) \
             FROM chat_channels AS c WHERE c.app_id = $1 AND c.id = $2",
        )
        .bind(app_id)
        .bind(channel_id)
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)?;
        rules::check_admin_may_leave(kind == "direct", admins, members)
            .map_err(StoreError::Conflict)?;
    }
    sqlx::query("DELETE FROM chat_members WHERE app_id = $1 AND channel_id = $2 AND identity = $3")
        .bind(app_id)
        .bind(channel_id)
        .bind(identity)
        .execute(&mut *conn)
        .await
        .map_err(backend)?;
    bump_member_version(conn, app_id, channel_id).await
}

/// Stores a message under the channel's lock, whose `member_version` is `current` (see
/// [`ChatStore::chat_post`]): the next `seq` comes from the locked row.
///
/// [`ChatStore::chat_post`]: crate::store::ChatStore::chat_post
pub(crate) async fn post(
    conn: &mut Conn,
    message: NewChatMessage,
    current: i64,
) -> StoreResult<Posted> {
    let m = &message;
    if membership(conn, &m.app_id, &m.channel_id, &m.sender)
        .await?
        .is_none()
    {
        return Err(StoreError::Forbidden(Forbidden::NotAMember));
    }
    let stored: Option<ChatMessageRecord> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages \
         WHERE app_id = $1 AND channel_id = $2 AND sender = $3 AND client_id = $4"
    ))
    .bind(&m.app_id)
    .bind(m.channel_id.as_str())
    .bind(m.sender.as_str())
    .bind(&m.client_id)
    .fetch_optional(&mut *conn)
    .await
    .map_err(backend)?;
    if let Some(stored) = stored {
        return Ok(Posted::Duplicate(stored));
    }
    rules::check_member_version(current, m.member_version).map_err(StoreError::Conflict)?;
    let seq: i64 = sqlx::query_scalar(
        "UPDATE chat_channels SET last_seq = last_seq + 1 \
         WHERE app_id = $1 AND id = $2 RETURNING last_seq",
    )
    .bind(&m.app_id)
    .bind(m.channel_id.as_str())
    .fetch_one(&mut *conn)
    .await
    .map_err(backend)?;
    sqlx::query(
        "INSERT INTO chat_messages (app_id, channel_id, seq, sender, client_id, ciphertext, \
         member_version, sent_at_ms, kt_head) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(&m.app_id)
    .bind(m.channel_id.as_str())
    .bind(seq)
    .bind(m.sender.as_str())
    .bind(&m.client_id)
    .bind(&m.ciphertext)
    .bind(m.member_version)
    .bind(m.sent_at_ms)
    .bind(&m.kt_head)
    .execute(&mut *conn)
    .await
    .map_err(backend)?;
    super::blobs::attach(
        conn,
        (&m.app_id, m.channel_id.as_str(), m.sender.as_str()),
        seq,
        &m.blobs,
    )
    .await?;
    // The sender has read what it sends (and, by then, everything before it).
    advance_read_seq(conn, &m.app_id, &m.channel_id, &m.sender, seq).await?;
    let event = HookEvent {
        seq: Some(seq),
        sender: Some(m.sender.to_string()),
        ..hooks::event(&m.app_id, &m.channel_id, HookKind::Message, m.sent_at_ms)
    };
    hooks::enqueue(conn, &event).await?;
    Ok(Posted::New(rules::stored_message(message, seq)))
}

/// A page of a channel's messages (see [`HistoryCursor`]), ascending by `seq`.
pub(crate) async fn history<'c>(
    db: impl Executor<'c, Database = Db>,
    app_id: &str,
    channel_id: &str,
    cursor: HistoryCursor,
    limit: u32,
) -> StoreResult<Vec<ChatMessageRecord>> {
    // Newest-first pages are read descending (to stop at `limit`) and turned around.
    let (condition, descending, bound) = match cursor {
        HistoryCursor::After(n) => ("seq > $4", false, n),
        HistoryCursor::Before(n) => ("seq < $4", true, n),
        // One statement shape for both newest-first pages (no seq reaches i64::MAX).
        HistoryCursor::Latest => ("seq < $4", true, i64::MAX),
    };
    let order = if descending { "DESC" } else { "ASC" };
    let mut messages: Vec<ChatMessageRecord> = sqlx::query_as(&format!(
        "SELECT {MESSAGE_COLUMNS} FROM chat_messages WHERE app_id = $1 AND channel_id = $2 \
         AND {condition} ORDER BY seq {order} LIMIT $3"
    ))
    .bind(app_id)
    .bind(channel_id)
    .bind(i64::from(limit))
    .bind(bound)
    .fetch_all(db)
    .await
    .map_err(backend)?;
    if descending {
        messages.reverse();
    }
    Ok(messages)
}

/// Moves a member's horizon to `seq` if that is higher; whether it moved. One statement, so
/// concurrent marks of one member never move it back.
async fn advance_read_seq(
    conn: &mut Conn,
    app_id: &str,
    channel_id: &str,
    identity: &str,
    seq: i64,
) -> StoreResult<bool> {
    let moved = sqlx::query(
        "UPDATE chat_members SET read_seq = $4 \
         WHERE app_id = $1 AND channel_id = $2 AND identity = $3 AND read_seq < $4",
    )
    .bind(app_id)
    .bind(channel_id)
    .bind(identity)
    .bind(seq)
    .execute(&mut *conn)
    .await
    .map_err(backend)?
    .rows_affected();
    Ok(moved > 0)
}

/// Moves a member's read horizon forward (see [`ChatStore::chat_mark_read`]); the caller emits
/// the event when it moved.
///
/// [`ChatStore::chat_mark_read`]: crate::store::ChatStore::chat_mark_read
pub(crate) async fn mark_read(
    conn: &mut Conn,
    (app_id, channel_id, identity): (&str, &str, &str),
    seq: i64,
) -> StoreResult<ReadMark> {
    let last_seq: i64 =
        sqlx::query_scalar("SELECT last_seq FROM chat_channels WHERE app_id = $1 AND id = $2")
            .bind(app_id)
            .bind(channel_id)
            .fetch_optional(&mut *conn)
            .await
            .map_err(backend)?
            .ok_or(StoreError::NotFound)?;
    let read_seq = || {
        sqlx::query_scalar::<_, i64>(
            "SELECT read_seq FROM chat_members \
             WHERE app_id = $1 AND channel_id = $2 AND identity = $3",
        )
        .bind(app_id)
        .bind(channel_id)
        .bind(identity)
    };
    if read_seq()
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        .is_none()
    {
        return Err(StoreError::Forbidden(Forbidden::NotAMember));
    }
    if seq > last_seq {
        return Err(StoreError::Conflict(Conflict::ReadBeyondLastSeq {
            last_seq,
        }));
    }
    let moved = advance_read_seq(conn, app_id, channel_id, identity, seq).await?;
    // Read again: a concurrent mark may have moved it further.
    let seq = read_seq()
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?
        .ok_or(StoreError::Forbidden(Forbidden::NotAMember))?;
    Ok(ReadMark {
        seq,
        last_seq,
        moved,
    })
}
