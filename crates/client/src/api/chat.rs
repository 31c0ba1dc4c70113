//! The chat endpoints (`/chat/v1`, see `sealkit_proto::chat`), and what the WebSocket needs to
//! connect (its URL and a token).

use super::{now_secs, ApiClient, Method};
use crate::error::{Error, Result};
use sealkit_proto::chat::{
    codes, paths, AddMember, Channel, ChannelKind, ChannelList, EditMessage, MarkRead, Message,
    MessagePage, NewChannel, NewMessage, ReadState, StaleMembersBody,
};
use std::time::Duration;

/// What the server did with a post.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Posted {
    /// Stored (or stored before, for a repeated `client_id`).
    Stored(Message),
    /// Refused: the post named another membership version than this channel's current one.
    Stale(Channel),
}

/// Which page of history to ask for (the query of `GET .../messages`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Page {
    Latest,
    After(i64),
    Before(i64),
}

impl ApiClient {
    /// `POST /chat/v1/channels`.
    pub(crate) async fn chat_create(
        &self,
        id: &str,
        kind: ChannelKind,
        members: Vec<String>,
        open: bool,
    ) -> Result<Channel> {
        let body = NewChannel {
            id: id.to_owned(),
            kind,
            members,
            open,
        };
        self.send(Method::Post, paths::CHANNELS, Some(&body))
            .await?
            .json("chat channel")
    }

    /// `GET /chat/v1/channels`, every page.
    pub(crate) async fn chat_channels(&self) -> Result<Vec<Channel>> {
        let mut channels: Vec<Channel> = Vec::new();
        loop {
            // Channel ids are `[A-Za-z0-9._:@-]`: nothing to escape in a query.
            let path = match channels.last() {
                None => paths::CHANNELS.to_owned(),
                Some(last) => format!("{}?after={}", paths::CHANNELS, last.id),
            };
            let page: ChannelList = self
                .send::<()>(Method::Get, &path, None)
                .await?
                .json("chat channel list")?;
            let progressed = !page.channels.is_empty();
            channels.extend(page.channels);
            // A server that says "more" but sends nothing would loop forever.
            if !page.more || !progressed {
                return Ok(channels);
            }
        }
    }

    /// `GET /chat/v1/channels/{id}`.
    pub(crate) async fn chat_channel(&self, id: &str) -> Result<Channel> {
        self.send::<()>(Method::Get, &paths::channel(id), None)
            .await?
            .json("chat channel")
    }

    /// `POST /chat/v1/channels/{id}/members`.
    pub(crate) async fn chat_add_member(&self, id: &str, identity: &str) -> Result<Channel> {
        let body = AddMember {
            identity: identity.to_owned(),
        };
        self.send(Method::Post, &paths::members(id), Some(&body))
            .await?
            .json("chat channel")
    }

    /// `DELETE /chat/v1/channels/{id}/members/{identity}` (the identity percent-encoded: it may
    /// hold any character but controls).
    pub(crate) async fn chat_remove_member(&self, id: &str, identity: &str) -> Result<Channel> {
        self.send::<()>(Method::Delete, &paths::member(id, &encode(identity)), None)
            .await?
            .json("chat channel")
    }

    /// `POST /chat/v1/channels/{id}/messages`. A refusal for a stale membership that carries
    /// the channel as it is now is [`Posted::Stale`]; without the channel (a server older than
    /// the field) it stays an [`Error::Api`] with [`codes::STALE_MEMBERS`].
    pub(crate) async fn chat_post(&self, id: &str, message: &NewMessage) -> Result<Posted> {
        self.store_message(Method::Post, &paths::messages(id), message)
            .await
    }

    /// `PUT /chat/v1/channels/{id}/messages/{seq}`: a refusal for a stale membership with the
    /// channel is [`Posted::Stale`], like a post's.
    pub(crate) async fn chat_edit(&self, id: &str, seq: i64, edit: &EditMessage) -> Result<Posted> {
        self.store_message(Method::Put, &paths::message(id, seq), edit)
            .await
    }

    /// Sends a message or an edit: the stored message, or [`Posted::Stale`] for a stale
    /// membership refusal that carries the channel.
    async fn store_message<B: serde::Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<Posted> {
        let answer = self.exchange(method, path, Some(body), None).await?;
        if answer.status == reqwest::StatusCode::CONFLICT {
            if let Ok(stale) = serde_json::from_slice::<StaleMembersBody>(&answer.response.body) {
                if stale.error.code == codes::STALE_MEMBERS {
                    return Ok(Posted::Stale(stale.channel));
                }
            }
        }
        answer
            .into_result()?
            .json("chat message")
            .map(Posted::Stored)
    }

    /// `DELETE /chat/v1/channels/{id}/messages/{seq}`: the tombstone.
    pub(crate) async fn chat_delete(&self, id: &str, seq: i64) -> Result<Message> {
        self.send::<()>(Method::Delete, &paths::message(id, seq), None)
            .await?
            .json("chat message")
    }

    /// `POST /chat/v1/channels/{id}/read`.
    pub(crate) async fn chat_mark_read(&self, id: &str, seq: i64) -> Result<ReadState> {
        self.send(Method::Post, &paths::read(id), Some(&MarkRead { seq }))
            .await?
            .json("chat read state")
    }

    /// `GET /chat/v1/channels/{id}/messages?...`.
    pub(crate) async fn chat_history(
        &self,
        id: &str,
        page: Page,
        limit: u32,
    ) -> Result<MessagePage> {
        let query = match page {
            Page::Latest => format!("limit={limit}"),
            Page::After(seq) => format!("after={seq}&limit={limit}"),
            Page::Before(seq) => format!("before={seq}&limit={limit}"),
        };
        let path = format!("{}?{query}", paths::messages(id));
        self.send::<()>(Method::Get, &path, None)
            .await?
            .json("chat history")
    }

    /// The WebSocket URL (`ws://` or `wss://` for the API's `http://` or `https://`), the
    /// `Authorization` value (a fresh token with `force`) and the agent string.
    pub(crate) async fn chat_ws_target(&self, force: bool) -> Result<(String, String, String)> {
        let url = match self.base.split_once("://") {
            Some(("https", rest)) => format!("wss://{rest}{}", paths::WS),
            Some((_, rest)) => format!("ws://{rest}{}", paths::WS),
            None => {
                return Err(Error::InvalidInput(format!(
                    "api_url {:?} is not a URL",
                    self.base
                )))
            }
        };
        let token = self.tokens.get(now_secs(), force).await?;
        Ok((url, token.authorization(), self.agent.clone()))
    }

    /// The request timeout the client was configured with.
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for byte in segment.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::encode;

    #[test]
    fn identities_are_percent_encoded_in_paths() {
        assert_eq!(encode("alice"), "alice");
        assert_eq!(encode("a.b-c_d~e"), "a.b-c_d~e");
        assert_eq!(encode("bob@x.org/1 2"), "bob%40x.org%2F1%202");
        assert_eq!(encode("é"), "%C3%A9");
    }
}
