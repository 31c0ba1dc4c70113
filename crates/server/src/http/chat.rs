//! Chat (`sealkit_proto::chat`): channels, members and history over REST, live delivery over a
//! WebSocket. The rules are in `service::chat`; this file parses, authenticates and answers.

use super::error::{ApiError, Json, Path, Query};
use super::AppState;
use crate::service::auth::Caller;
use crate::service::chat::{self, ChannelsQuery, HistoryQuery};
use crate::service::error::ServiceError;
use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use axum::Router;
use futures_util::SinkExt as _;
use sealkit_proto::chat::{
    codes, paths, AddMember, ChannelList, ClientFrame, EditMessage, MarkRead, NewChannel,
    NewMessage, ServerFrame,
};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

/// How often the server pings an idle WebSocket, so proxies keep it open.
const PING_INTERVAL: Duration = Duration::from_secs(20);
/// Most channels one WebSocket may follow at once.
pub const MAX_SUBSCRIPTIONS: usize = 1024;
/// Frames queued for a slow WebSocket before its subscriptions wait (and, if the broadcast
/// runs ahead of them, catch up from the store).
const OUT_QUEUE: usize = 256;
/// Largest frame or message a client may send (its frames are small JSON objects); a larger
/// one closes the socket with 1009 instead of being buffered (axum's default is 64 MiB).
pub const MAX_CLIENT_FRAME: usize = 64 << 10;
/// How long one write may take before the client counts as gone: a client that stops reading
/// must not keep its socket (and its subscriptions) past its token's expiry.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes a WebSocket reads from the network at a time. tungstenite zero-fills this much of its
/// read buffer before every read attempt, including the ones that find nothing (every time the
/// connection's loop wakes to write), and the filled pages stay resident: at its default of
/// 128 KiB that was 128 KiB of memory per idle socket and a 128 KiB memset per frame sent.
/// Client frames are small JSON objects; a larger one (up to [`MAX_CLIENT_FRAME`]) still
/// arrives, in several reads.
const READ_CHUNK: usize = 4 << 10;
/// Most frames written to a socket before one flush: a burst queued for a socket goes out in
/// one system call instead of one per frame.
const WRITE_BATCH: usize = 64;

/// Live WebSockets per (application, identity) on this process.
#[derive(Debug, Default)]
pub struct SocketCounter {
    open: std::sync::Mutex<HashMap<(sealkit_proto::AppId, sealkit_proto::Identity), usize>>,
}

impl SocketCounter {
    /// Takes a slot for `caller` when fewer than `limit` are taken; the slot frees on drop.
    fn acquire(self: &std::sync::Arc<Self>, caller: &Caller, limit: usize) -> Option<SocketSlot> {
        let key = (caller.app_id.clone(), caller.identity.clone());
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let count = open.entry(key.clone()).or_default();
        if *count >= limit {
            return None;
        }
        *count += 1;
        Some(SocketSlot {
            counter: self.clone(),
            key,
        })
    }
}

/// One live socket's place in its identity's count.
struct SocketSlot {
    counter: std::sync::Arc<SocketCounter>,
    key: (sealkit_proto::AppId, sealkit_proto::Identity),
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        let mut open = self.counter.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// The chat routes. `body_limit` is the global request limit; the post route allows at least
/// what a message of `message_limit` bytes needs once base64-encoded in JSON.
pub fn routes(body_limit: usize, message_limit: usize) -> Router<AppState> {
    let post_limit = body_limit.max(message_limit.div_ceil(3) * 4 + 4096);
    Router::new()
        .route(paths::CHANNELS, get(list_channels).post(create_channel))
        .route("/chat/v1/channels/{id}", get(get_channel))
        .route("/chat/v1/channels/{id}/members", post(add_member))
        .route(
            "/chat/v1/channels/{id}/members/{identity}",
            delete(remove_member),
        )
        .route(
            "/chat/v1/channels/{id}/messages",
            get(history)
                .post(post_message)
                .layer(DefaultBodyLimit::max(post_limit)),
        )
        .route(
            "/chat/v1/channels/{id}/messages/{seq}",
            put(edit_message)
                .delete(delete_message)
                .layer(DefaultBodyLimit::max(post_limit)),
        )
        .route("/chat/v1/channels/{id}/read", post(mark_read))
        .route(paths::WS, get(websocket))
}

async fn create_channel(
    State(state): State<AppState>,
    caller: Caller,
    Json(new): Json<NewChannel>,
) -> Result<Response, ApiError> {
    let channel = chat::create_channel(
        state.store.as_ref(),
        &caller,
        new,
        crate::now_ms(),
        state.config.chat_channels_per_creator,
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(channel)).into_response())
}

async fn list_channels(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ChannelsQuery>,
) -> Result<Response, ApiError> {
    let (channels, more) = chat::channels_of(state.store.as_ref(), &caller, &query).await?;
    Ok(axum::Json(ChannelList { channels, more }).into_response())
}

async fn get_channel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let channel = chat::channel(state.store.as_ref(), &caller, &id).await?;
    Ok(axum::Json(channel).into_response())
}

async fn add_member(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(add): Json<AddMember>,
) -> Result<Response, ApiError> {
    let channel = chat::add_member(state.store.as_ref(), &caller, &id, &add.identity).await?;
    Ok(axum::Json(channel).into_response())
}

async fn remove_member(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, identity)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let channel = chat::remove_member(state.store.as_ref(), &caller, &id, &identity).await?;
    Ok(axum::Json(channel).into_response())
}

async fn post_message(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(new): Json<NewMessage>,
) -> Result<Response, ApiError> {
    let (message, fresh) = chat::post(
        state.store.as_ref(),
        &caller,
        &id,
        new,
        state.config.chat_message_limit,
        crate::now_ms(),
    )
    .await?;
    let status = if fresh {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(message)).into_response())
}

async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response, ApiError> {
    let page = chat::history(state.store.as_ref(), &caller, &id, &query).await?;
    Ok(axum::Json(page).into_response())
}

/// `PUT /chat/v1/channels/{id}/messages/{seq}` ([`EditMessage`]): the sender's new version;
/// answers the message as stored.
async fn edit_message(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, seq)): Path<(String, i64)>,
    Json(edit): Json<EditMessage>,
) -> Result<Response, ApiError> {
    let limit = state.config.chat_message_limit;
    let message = chat::edit(
        state.store.as_ref(),
        &caller,
        (&id, seq),
        edit,
        limit,
        crate::now_ms(),
    )
    .await?;
    Ok(axum::Json(message).into_response())
}

/// `DELETE /chat/v1/channels/{id}/messages/{seq}`: the sender or an admin deletes a message;
/// answers its tombstone.
async fn delete_message(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, seq)): Path<(String, i64)>,
) -> Result<Response, ApiError> {
    let message = chat::delete(state.store.as_ref(), &caller, (&id, seq), crate::now_ms()).await?;
    Ok(axum::Json(message).into_response())
}

/// The WebSocket's query string: browsers cannot set `Authorization` on a WebSocket.
/// `POST /chat/v1/channels/{id}/read` ([`MarkRead`]): moves the caller's read horizon forward;
/// answers the horizon as stored ([`sealkit_proto::chat::ReadState`]).
async fn mark_read(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Json(mark): Json<MarkRead>,
) -> Result<Response, ApiError> {
    let read = chat::mark_read(state.store.as_ref(), &caller, &id, mark.seq).await?;
    Ok(axum::Json(read).into_response())
}

#[derive(Debug, Default, serde::Deserialize)]
struct WsQuery {
    token: Option<String>,
}

/// Authenticates before upgrading, so a bad token is an ordinary 401 JSON answer.
async fn websocket(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<WsQuery>,
    upgrade: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let from_header = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| h.strip_prefix("Virgil "))
        .map(str::trim);
    let token = from_header
        .or(query.token.as_deref())
        .filter(|t| !t.is_empty())
        .ok_or(ApiError::MissingToken)?;
    let now = crate::now();
    // The connection lives no longer than its token would be accepted, so an application that
    // stops issuing tokens to a user also stops that user's live delivery.
    let (caller, accepted_until) = state.auth.verify_with_expiry(token, now).await?;
    let upgrade = upgrade.map_err(|e| ServiceError::ChatInvalid(e.body_text()))?;
    let valid_for = accepted_until.saturating_sub(now).clamp(0, 365 * 24 * 3600);
    let expires = tokio::time::Instant::now() + Duration::from_secs(valid_for as u64);
    let slot = state
        .chat_sockets
        .acquire(&caller, state.config.chat_sockets_per_identity)
        .ok_or(ApiError::TooManySockets {
            limit: state.config.chat_sockets_per_identity,
        })?;
    let live = Live {
        hub: state.chat.clone(),
        auth: state.auth.clone(),
        token: token.to_owned(),
        caller,
        expires,
        recheck_every: Duration::from_secs(state.config.chat_token_recheck_secs.max(1)),
        _slot: slot,
    };
    Ok(upgrade
        .read_buffer_size(READ_CHUNK)
        .max_message_size(MAX_CLIENT_FRAME)
        .max_frame_size(MAX_CLIENT_FRAME)
        .on_upgrade(move |socket| connection(socket, live)))
}

/// What a live socket needs besides the socket.
struct Live {
    hub: std::sync::Arc<chat::ChatHub<Utf8Bytes>>,
    auth: std::sync::Arc<crate::service::auth::Authenticator>,
    token: String,
    caller: Caller,
    expires: tokio::time::Instant,
    /// How often the token is verified again, skipping the cache, so a revoked API key closes
    /// its sockets within this time.
    recheck_every: Duration,
    _slot: SocketSlot,
}

/// Sends one frame within [`WRITE_TIMEOUT`]. False when the client is gone or too slow.
async fn send_bounded(socket: &mut WebSocket, message: WsMessage) -> bool {
    matches!(
        tokio::time::timeout(WRITE_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// Writes `first` and the frames queued behind it (up to [`WRITE_BATCH`] in all), then flushes
/// once, within [`WRITE_TIMEOUT`]. False when the client is gone or too slow.
async fn send_queued(
    socket: &mut WebSocket,
    first: Utf8Bytes,
    queue: &mut mpsc::Receiver<Utf8Bytes>,
) -> bool {
    let write = async {
        socket.feed(WsMessage::Text(first)).await?;
        for _ in 1..WRITE_BATCH {
            let Ok(next) = queue.try_recv() else { break };
            socket.feed(WsMessage::Text(next)).await?;
        }
        socket.flush().await
    };
    matches!(tokio::time::timeout(WRITE_TIMEOUT, write).await, Ok(Ok(())))
}

/// Closes with `code` and `reason` (bounded in time like every write).
async fn close(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from_static(reason),
    };
    let _ = send_bounded(socket, WsMessage::Close(Some(frame))).await;
}

/// Whether a read failed because the client sent more than [`MAX_CLIENT_FRAME`].
fn too_big(error: axum::Error) -> bool {
    matches!(
        error
            .into_inner()
            .downcast::<tungstenite::Error>()
            .map(|e| *e),
        Ok(tungstenite::Error::Capacity(_))
    )
}

/// One WebSocket: reads client frames, runs one task per subscribed channel, and writes what
/// they queue. Ends when the client closes or the socket fails; the subscriptions end with it.
async fn connection(mut socket: WebSocket, live: Live) {
    let Live {
        hub,
        auth,
        token,
        caller,
        expires,
        recheck_every,
        _slot,
    } = live;
    let (out_tx, mut out_rx) = mpsc::channel::<Utf8Bytes>(OUT_QUEUE);
    let mut tasks = JoinSet::new();
    let mut subscriptions: HashMap<String, AbortHandle> = HashMap::new();
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.reset();
    let mut recheck = tokio::time::interval(recheck_every);
    recheck.reset();
    let expiry = tokio::time::sleep_until(expires);
    tokio::pin!(expiry);
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let incoming = match incoming {
                    Some(Ok(incoming)) => incoming,
                    Some(Err(e)) => {
                        if too_big(e) {
                            // 1009: message too big.
                            close(&mut socket, 1009, "frame too large").await;
                        }
                        break;
                    }
                    None => break,
                };
                let reply = match incoming {
                    WsMessage::Text(text) => handle_frame(
                        text.as_str(),
                        &hub,
                        &caller,
                        &out_tx,
                        &mut tasks,
                        &mut subscriptions,
                    ),
                    WsMessage::Binary(_) => {
                        Some(error_frame(None, codes::INVALID, "frames are JSON text".into()))
                    }
                    WsMessage::Close(_) => {
                        // tungstenite queued the close reply; reading once more writes it and
                        // ends the stream, completing the closing handshake.
                        let _ = socket.recv().await;
                        break;
                    }
                    // tungstenite answers pings itself.
                    WsMessage::Ping(_) | WsMessage::Pong(_) => None,
                };
                if let Some(reply) = reply {
                    if !send_bounded(&mut socket, WsMessage::Text(reply)).await {
                        break;
                    }
                }
            }
            Some(frame) = out_rx.recv() => {
                if !send_queued(&mut socket, frame, &mut out_rx).await {
                    break;
                }
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {
                subscriptions.retain(|_, handle| !handle.is_finished());
            }
            () = &mut expiry => {
                // Policy violation (1008): the client reconnects with a fresh token.
                close(&mut socket, 1008, "token expired").await;
                break;
            }
            _ = recheck.tick() => {
                // A storage failure is not a verdict on the token: the socket stays.
                match auth.recheck(&token, crate::now()).await {
                    Ok(_) | Err(ServiceError::Internal) => {}
                    Err(_) => {
                        close(&mut socket, 1008, "token no longer valid").await;
                        break;
                    }
                }
            }
            _ = ping.tick() => {
                if !send_bounded(&mut socket, WsMessage::Ping(Default::default())).await {
                    break;
                }
            }
        }
    }
    // Dropping the JoinSet aborts every subscription, which leaves its feed.
    tasks.shutdown().await;
}

fn error_frame(channel: Option<String>, code: u32, message: String) -> Utf8Bytes {
    let frame = ServerFrame::Error {
        channel,
        code,
        message,
    };
    Utf8Bytes::from(serde_json::to_string(&frame).unwrap_or_default())
}

/// Acts on one client frame; returns the immediate reply, if any.
fn handle_frame(
    text: &str,
    hub: &std::sync::Arc<chat::ChatHub<Utf8Bytes>>,
    caller: &Caller,
    out: &mpsc::Sender<Utf8Bytes>,
    tasks: &mut JoinSet<()>,
    subscriptions: &mut HashMap<String, AbortHandle>,
) -> Option<Utf8Bytes> {
    let frame = match serde_json::from_str::<ClientFrame>(text) {
        Ok(frame) => frame,
        Err(e) => {
            return Some(error_frame(
                None,
                codes::INVALID,
                format!("not a client frame: {e}"),
            ))
        }
    };
    match frame {
        ClientFrame::Ping => Some(Utf8Bytes::from(
            serde_json::to_string(&ServerFrame::Pong).unwrap_or_default(),
        )),
        ClientFrame::Unsubscribe { channel } => {
            if let Some(handle) = subscriptions.remove(&channel) {
                handle.abort();
            }
            None
        }
        ClientFrame::Typing { channel } => {
            let hub = hub.clone();
            let caller = caller.clone();
            let out = out.clone();
            tasks.spawn(async move {
                // Relayed, throttled or refused; only a refusal is answered.
                if let Err(e) = hub.typing(&caller, &channel).await {
                    let e = ApiError::from(e);
                    let (_, code) = e.status_and_code();
                    let _ = out
                        .send(error_frame(Some(channel), code, e.to_string()))
                        .await;
                }
            });
            None
        }
        ClientFrame::Subscribe { channel, after } => {
            if let Some(previous) = subscriptions.remove(&channel) {
                previous.abort();
            }
            if subscriptions.len() >= MAX_SUBSCRIPTIONS {
                return Some(error_frame(
                    Some(channel),
                    codes::INVALID,
                    format!("at most {MAX_SUBSCRIPTIONS} subscriptions per connection"),
                ));
            }
            let subscription =
                hub.clone()
                    .subscribe(caller.clone(), channel.clone(), after, out.clone());
            let out = out.clone();
            let answered = channel.clone();
            let task = async move {
                // A subscription refused before it started is answered on the socket.
                if let Err(e) = subscription.await {
                    let e = ApiError::from(e);
                    let (_, code) = e.status_and_code();
                    let _ = out
                        .send(error_frame(Some(answered), code, e.to_string()))
                        .await;
                }
            };
            subscriptions.insert(channel, tasks.spawn(task));
            None
        }
    }
}
