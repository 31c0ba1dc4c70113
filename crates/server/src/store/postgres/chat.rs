//! Chat on PostgreSQL. Dialect: a new channel's members are inserted from arrays (`UNNEST`) in
//! one statement, and every change queues its `NOTIFY` in its transaction (see `listen.rs`).

use async_trait::async_trait;

use super::listen::{self, notify};
use super::sql::backend;
use super::sql::chat::{self as sql, MembershipEdit};
use super::sql::chat_edits;
use super::{lock_pair, LockClass, PostgresStore};
use crate::store::{
    rules, ChannelRecord, ChatEventStream, ChatMessageRecord, ChatStore, HistoryCursor,
    MessageEdit, NewChatMessage, Posted, ReadMark, StoreError, StoreResult,
};

impl PostgresStore {
    /// One membership change in one transaction, its `NOTIFY` queued inside it (when it changed
    /// something), answered with the channel as committed.
    async fn change_membership(
        &self,
        app_id: &str,
        channel_id: &str,
        edit: MembershipEdit<'_>,
    ) -> StoreResult<ChannelRecord> {
        let mut tx = self.begin().await?;
        if let Some(version) = sql::edit_membership(&mut tx, app_id, channel_id, edit).await? {
            notify(
                &mut tx,
                &self.events_channel,
                app_id,
                channel_id,
                "members",
                version,
            )
            .await?;
        }
        let channel = sql::load_channel(&mut *tx, app_id, channel_id)
            .await?
            .ok_or(StoreError::NotFound)?;
        tx.commit().await.map_err(backend)?;
        Ok(channel)
    }
}

#[async_trait]
impl ChatStore for PostgresStore {
    async fn chat_create_channel(
        &self,
        channel: ChannelRecord,
        per_creator: u32,
    ) -> StoreResult<()> {
        let members = rules::initial_members(&channel).map_err(StoreError::Conflict)?;
        let (members, is_admin): (Vec<&str>, Vec<bool>) = members.into_iter().unzip();
        let mut tx = self.begin().await?;
        // Creations by one identity queue here, so each counts the ones before it.
        lock_pair(
            &mut tx,
            LockClass::ChannelCreator,
            &channel.app_id,
            channel.created_by.as_str(),
        )
        .await?;
        sql::check_creator_room(&mut tx, &channel.app_id, &channel.created_by, per_creator).await?;
        sql::insert_channel(&mut tx, &channel).await?;
        sqlx::query(
            "INSERT INTO chat_members (app_id, channel_id, identity, admin) \
             SELECT $1, $2, m.identity, m.admin \
             FROM UNNEST($3::text[], $4::boolean[]) AS m (identity, admin)",
        )
        .bind(&channel.app_id)
        .bind(channel.id.as_str())
        .bind(&members)
        .bind(&is_admin)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn chat_channel(
        &self,
        app_id: &str,
        channel_id: &str,
    ) -> StoreResult<Option<ChannelRecord>> {
        sql::load_channel(&self.pool, app_id, channel_id).await
    }

    async fn chat_channels_of(
        &self,
        app_id: &str,
        identity: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<ChannelRecord>> {
        sql::channels_of(&self.pool, (app_id, identity), after, limit).await
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
        let mut tx = self.begin().await?;
        // The row lock orders the posts to this channel (and membership changes) across
        // replicas; every read below sees what the previous holder committed.
        let current = sql::lock_channel(&mut tx, &message.app_id, &message.channel_id).await?;
        let app_id = message.app_id.clone();
        let posted = sql::post(&mut tx, message, current).await?;
        if let Posted::New(stored) = &posted {
            let (channel_id, seq) = (&stored.channel_id, stored.seq);
            notify(
                &mut tx,
                &self.events_channel,
                &app_id,
                channel_id,
                "message",
                seq,
            )
            .await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(posted)
    }

    async fn chat_history(
        &self,
        app_id: &str,
        channel_id: &str,
        cursor: HistoryCursor,
        limit: u32,
    ) -> StoreResult<Vec<ChatMessageRecord>> {
        sql::history(&self.pool, app_id, channel_id, cursor, limit).await
    }

    async fn chat_events(&self) -> StoreResult<ChatEventStream> {
        listen::events(self).await
    }

    async fn chat_mark_read(
        &self,
        app_id: &str,
        channel_id: &str,
        identity: &str,
        seq: i64,
    ) -> StoreResult<ReadMark> {
        let mut tx = self.begin().await?;
        let mark = sql::mark_read(&mut tx, (app_id, channel_id, identity), seq).await?;
        if mark.moved {
            let event = listen::Notice::read(app_id, channel_id, identity, mark.seq);
            listen::notify_event(&mut tx, &self.events_channel, &event).await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(mark)
    }

    async fn chat_typing(&self, app_id: &str, channel_id: &str, identity: &str) -> StoreResult<()> {
        // A NOTIFY outside any transaction: nothing is written, every replica hears it.
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        let event = listen::Notice::typing(app_id, channel_id, identity);
        listen::notify_event(&mut conn, &self.events_channel, &event).await
    }

    async fn chat_edit_message(&self, edit: MessageEdit) -> StoreResult<ChatMessageRecord> {
        let mut tx = self.begin().await?;
        let current = sql::lock_channel(&mut tx, &edit.app_id, &edit.channel_id).await?;
        let app_id = edit.app_id.clone();
        let stored = chat_edits::edit(&mut tx, edit, current).await?;
        let channel_id = stored.channel_id.to_string();
        notify(
            &mut tx,
            &self.events_channel,
            &app_id,
            &channel_id,
            "revised",
            stored.seq,
        )
        .await?;
        tx.commit().await.map_err(backend)?;
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
        let mut tx = self.begin().await?;
        sql::lock_channel(&mut tx, app_id, channel_id).await?;
        let (tombstone, fresh) =
            chat_edits::delete(&mut tx, (app_id, channel_id, seq), deleter, at_ms).await?;
        if fresh {
            notify(
                &mut tx,
                &self.events_channel,
                app_id,
                channel_id,
                "revised",
                seq,
            )
            .await?;
        }
        tx.commit().await.map_err(backend)?;
        Ok(tombstone)
    }
}
