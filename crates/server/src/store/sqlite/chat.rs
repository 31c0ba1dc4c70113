//! Chat on SQLite. Dialect: a write holds the (only) writer connection from `BEGIN IMMEDIATE`
//! until its event is sent, a new channel's members are inserted one statement each, and events
//! go to this process's broadcast channel after the commit.

use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::Connection;
use tokio::sync::broadcast;

use super::sql::backend;
use super::sql::chat::{self as sql, MembershipEdit};
use super::sql::chat_edits;
use super::{Db, SqliteStore};
use crate::store::{
    rules, ChannelRecord, ChatEvent, ChatEventStream, ChatMessageRecord, ChatStore, HistoryCursor,
    MessageEdit, NewChatMessage, Posted, ReadMark, StoreError, StoreResult,
};

impl SqliteStore {
    /// The writer connection, held by the caller until its event is sent (see
    /// [`SqliteStore::emit`]): start the transaction on it with `BEGIN IMMEDIATE`.
    async fn chat_writer(&self) -> StoreResult<PoolConnection<Db>> {
        self.writer.acquire().await.map_err(backend)
    }

    /// One membership change in one transaction on the writer, answered with the channel as
    /// committed and announced (when it changed something) before the writer is released.
    async fn change_membership(
        &self,
        app_id: &str,
        channel_id: &str,
        edit: MembershipEdit<'_>,
    ) -> StoreResult<ChannelRecord> {
        let mut writer = self.chat_writer().await?;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let changed = sql::edit_membership(&mut tx, app_id, channel_id, edit).await?;
        let channel = sql::load_channel(&mut *tx, app_id, channel_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(backend)?;
        if let Some(member_version) = changed {
            self.emit(ChatEvent::Members {
                app_id: app_id.to_owned(),
                channel_id: channel_id.to_owned(),
                member_version,
            });
        }
        Ok(channel)
    }
}

#[async_trait]
impl ChatStore for SqliteStore {
    async fn chat_create_channel(
        &self,
        channel: ChannelRecord,
        per_creator: u32,
    ) -> StoreResult<()> {
        let members = rules::initial_members(&channel).map_err(StoreError::Conflict)?;
        // `BEGIN IMMEDIATE`: creations queue on the write lock, so each counts the ones before.
        let mut tx = self.begin().await?;
        sql::check_creator_room(&mut tx, &channel.app_id, &channel.created_by, per_creator).await?;
        sql::insert_channel(&mut tx, &channel).await?;
        for (identity, admin) in members {
            sqlx::query(
                "INSERT INTO chat_members (app_id, channel_id, identity, admin) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(&channel.app_id)
            .bind(channel.id.as_str())
            .bind(identity)
            .bind(admin)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn chat_channel(
        &self,
        app_id: &str,
        channel_id: &str,
    ) -> StoreResult<Option<ChannelRecord>> {
        sql::load_channel(&self.reader, app_id, channel_id).await
    }

    async fn chat_channels_of(
        &self,
        app_id: &str,
        identity: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ChannelRecord>> {
        sql::channels_of(&self.reader, (app_id, identity), after, limit).await
    }

    async fn chat_add_member(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
        admin: bool,
    ) -> StoreResult<ChannelRecord> {
        let edit = MembershipEdit::Add { identity, admin };
        self.change_membership(app_id, channel_id, edit).await
    }

    async fn chat_remove_member(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
    ) -> StoreResult<ChannelRecord> {
        let edit = MembershipEdit::Remove { identity };
        self.change_membership(app_id, channel_id, edit).await
    }

    async fn chat_post(&self, message: NewChatMessage) -> StoreResult<Posted> {
        let mut writer = self.chat_writer().await?;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let current = sql::lock_channel(&mut tx, &message.app_id, &message.channel_id).await?;
        let app_id = message.app_id.clone();
        let posted = sql::post(&mut tx, message, current).await?;
        tx.commit().await.map_err(backend)?;
        if let Posted::New(stored) = &posted {
            self.emit(ChatEvent::Message {
                app_id,
                channel_id: stored.channel_id.to_string(),
                seq: stored.seq,
            });
        }
        Ok(posted)
    }

    async fn chat_history(
        &self,
        app_id: &str,
        channel_id: &str,
        cursor: HistoryCursor,
        limit: u32,
    ) -> StoreResult<Vec<ChatMessageRecord>> {
        sql::history(&self.reader, app_id, channel_id, cursor, limit).await
    }

    async fn chat_events(&self) -> StoreResult<ChatEventStream> {
        let receiver = self.events.subscribe();
        let stream = futures_util::stream::unfold(receiver, |mut receiver| async move {
            match receiver.recv().await {
                Ok(event) => Some((event, receiver)),
                // Missed events: subscribers must re-read, then carry on from here.
                Err(broadcast::error::RecvError::Lagged(_)) => Some((ChatEvent::Resync, receiver)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Ok(Box::pin(stream))
    }

    async fn chat_mark_read(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
        seq: i64,
    ) -> StoreResult<ReadMark> {
        let mut writer = self.chat_writer().await?;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let mark = sql::mark_read(&mut tx, (app_id, channel_id, identity), seq).await?;
        tx.commit().await.map_err(backend)?;
        if mark.moved {
            self.emit(ChatEvent::Read {
                app_id: app_id.to_owned(),
                channel_id: channel_id.to_owned(),
                identity: identity.to_owned(),
                seq: mark.seq,
            });
        }
        Ok(mark)
    }

    async fn chat_typing(&self, app_id: &str, channel_id: &str, identity: &str) -> StoreResult<()> {
        self.emit(ChatEvent::Typing {
            app_id: app_id.to_owned(),
            channel_id: channel_id.to_owned(),
            identity: identity.to_owned(),
        });
        Ok(())
    }

    async fn chat_edit_message(&self, edit: MessageEdit) -> StoreResult<ChatMessageRecord> {
        let mut writer = self.chat_writer().await?;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        let current = sql::lock_channel(&mut tx, &edit.app_id, &edit.channel_id).await?;
        let app_id = edit.app_id.clone();
        let stored = chat_edits::edit(&mut tx, edit, current).await?;
        tx.commit().await.map_err(backend)?;
        self.emit(ChatEvent::Revised {
            app_id,
            channel_id: stored.channel_id.to_string(),
            seq: stored.seq,
        });
        Ok(stored)
    }

    async fn chat_delete_message(
        &self,
        app_id: &str,
        channel_id: &str,
        seq: i64,
        deleter: &str,
        at_ms: i64,
    ) -> StoreResult<ChatMessageRecord> {
        let mut writer = self.chat_writer().await?;
        let mut tx = writer
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(backend)?;
        sql::lock_channel(&mut tx, app_id, channel_id).await?;
        let (tombstone, fresh) =
            chat_edits::delete(&mut tx, (app_id, channel_id, seq), deleter, at_ms).await?;
        tx.commit().await.map_err(backend)?;
        if fresh {
            self.emit(ChatEvent::Revised {
                app_id: app_id.to_owned(),
                channel_id: channel_id.to_owned(),
                seq,
            });
        }
        Ok(tombstone)
    }
}
