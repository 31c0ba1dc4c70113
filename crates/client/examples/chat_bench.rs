//! Chat benchmark against a running Sealkit server (see `docs/chat-benchmark.md`).
//!
//! 1. End to end through the SDK: one sender and 9 receivers in a 10-member channel; each
//!    message is encrypted for the 10, posted, delivered over the WebSocket and decrypted and
//!    verified by each receiver. Reports messages/s and the delivery latency (from the start of
//!    `send` to the end of the receiver's decryption), p50 and p99.
//! 2. Server fan-out: `FANOUT` raw WebSocket clients (no SDK, no decryption) subscribed to one
//!    channel; the sender posts messages over HTTP; reports deliveries/s and the latency from
//!    the start of the post to each client's receipt, p50 and p99.
//!
//! ```text
//! cargo run --release -p sealkit --example chat_bench -- API_URL APP_JSON [MESSAGES] [FANOUT] [FANOUT_MESSAGES]
//! ```
//!
//! Defaults: 200 messages, 1000 fan-out clients, 20 fan-out messages. The fan-out needs about
//! two file descriptors per client in this process and in the server (`ulimit -n`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use sealkit::chat::{ChannelKind, ChatEvent};
use sealkit::{EThree, EThreeOptions};
use sealkit_proto::chat::{paths, Channel, ClientFrame, Message, NewMessage, ServerFrame};
use sealkit_proto::{AppCredentials, JwtGenerator};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as Frame;

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const RECEIVERS: usize = 9;
const PAYLOAD: usize = 200;
const TIMEOUT: Duration = Duration::from_secs(120);

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn authorization(backend: &JwtGenerator, identity: &str) -> BoxResult<String> {
    Ok(backend.generate(identity, now_secs())?.authorization())
}

async fn user(
    url: &str,
    backend: &JwtGenerator,
    identity: String,
    dir: &std::path::Path,
) -> BoxResult<EThree> {
    let minter = backend.clone();
    let who = identity.clone();
    let provider =
        move || std::future::ready(minter.generate(&who, now_secs()).map(|j| j.to_string()));
    let ethree = EThree::initialize(provider, EThreeOptions::new(url, dir.join(&identity))).await?;
    ethree.register(None).await?;
    Ok(ethree)
}

/// (p50, p99) of `samples`, in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| {
        let i = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples
            .get(i)
            .map_or(f64::NAN, |d| d.as_secs_f64() * 1000.0)
    };
    (at(0.50), at(0.99))
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(credentials)) = (args.first(), args.get(1)) else {
        return Err(
            "usage: chat_bench API_URL APP_JSON [MESSAGES] [FANOUT] [FANOUT_MESSAGES]".into(),
        );
    };
    let number = |i: usize, default: usize| -> BoxResult<usize> {
        Ok(args
            .get(i)
            .map(|s| s.parse())
            .transpose()?
            .unwrap_or(default))
    };
    let messages = number(2, 200)?;
    let fanout = number(3, 1000)?;
    let fanout_messages = number(4, 20)?;
    let backend =
        AppCredentials::from_json(&std::fs::read_to_string(credentials)?)?.generator(3600)?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let dir = tempfile::tempdir()?;

    end_to_end(url, &backend, run, dir.path(), messages).await?;
    if fanout > 0 {
        fan_out(url, &backend, run, fanout, fanout_messages).await?;
    }
    Ok(())
}

/// Part 1: SDK to SDK, 10 members.
async fn end_to_end(
    url: &str,
    backend: &JwtGenerator,
    run: u128,
    dir: &std::path::Path,
    messages: usize,
) -> BoxResult<()> {
    let sender = user(url, backend, format!("bench-{run}-sender"), dir).await?;
    let mut receivers = Vec::new();
    for i in 0..RECEIVERS {
        receivers.push(user(url, backend, format!("bench-{run}-r{i}"), dir).await?);
    }
    let names: Vec<String> = receivers.iter().map(|r| r.identity().to_owned()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let channel = format!("bench-{run}");
    let chat = sender.chat();
    chat.create_channel(&channel, ChannelKind::Group, &refs, false)
        .await?;

    let started: Arc<Mutex<Vec<Option<Instant>>>> = Arc::new(Mutex::new(vec![None; messages]));
    let mut tasks = Vec::new();
    for receiver in &receivers {
        let mut stream = receiver.chat().subscribe().await?;
        stream.subscribe(&channel, 0).await?;
        tasks.push(tokio::spawn(async move {
            let mut arrivals: Vec<(usize, Instant)> = Vec::with_capacity(messages);
            while arrivals.len() < messages {
                let event = tokio::time::timeout(TIMEOUT, stream.next())
                    .await
                    .map_err(|_| "a receiver timed out")?
                    .ok_or("stream ended")??;
                if let ChatEvent::Message(m) = event {
                    let text = m.text().ok_or("a message did not verify")?;
                    let index: usize = text
                        .split_once(' ')
                        .map_or(text, |(n, _)| n)
                        .parse()
                        .map_err(|_| "unexpected message")?;
                    arrivals.push((index, Instant::now()));
                }
            }
            BoxResult::Ok(arrivals)
        }));
    }
    // Warm the member and card caches, as a chat that is already going would have them.
    chat.send_text(&channel, "0 warm-up").await?;
    let padding = "x".repeat(PAYLOAD);
    let began = Instant::now();
    for i in 1..messages {
        let at = Instant::now();
        if let Some(slot) = started.lock().map_err(|_| "poisoned")?.get_mut(i) {
            *slot = Some(at);
        }
        chat.send_text(&channel, &format!("{i} {padding}")).await?;
    }
    let sent_in = began.elapsed();
    let mut latencies = Vec::new();
    let mut last = began;
    for task in tasks {
        for (index, arrived) in task.await?? {
            let start = started
                .lock()
                .map_err(|_| "poisoned")?
                .get(index)
                .copied()
                .flatten();
            if let Some(start) = start {
                latencies.push(arrived.duration_since(start));
                last = last.max(arrived);
            }
        }
    }
    let total = last.duration_since(began);
    let timed = messages.saturating_sub(1);
    let (p50, p99) = percentiles(&mut latencies);
    println!(
        "end-to-end: {timed} messages of {PAYLOAD} bytes to {RECEIVERS} receivers (10 members): \
         sent in {:.2} s ({:.0} msg/s), all decrypted after {:.2} s: {:.0} msg/s, {:.0} \
         deliveries/s; latency p50 {p50:.1} ms, p99 {p99:.1} ms ({} samples)",
        sent_in.as_secs_f64(),
        timed as f64 / sent_in.as_secs_f64(),
        total.as_secs_f64(),
        timed as f64 / total.as_secs_f64(),
        latencies.len() as f64 / total.as_secs_f64(),
        latencies.len()
    );
    Ok(())
}

/// Part 2: raw WebSocket clients, no crypto.
async fn fan_out(
    url: &str,
    backend: &JwtGenerator,
    run: u128,
    clients: usize,
    messages: usize,
) -> BoxResult<()> {
    let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    let sender = format!("fan-{run}-sender");
    let members: Vec<String> = (1..clients).map(|i| format!("fan-{run}-{i}")).collect();
    let channel_id = format!("fan-{run}");
    let body =
        serde_json::json!({"id": channel_id, "kind": "group", "members": members, "open": false});
    let response = http
        .post(format!("{url}{}", paths::CHANNELS))
        .header("Authorization", authorization(backend, &sender)?)
        .json(&body)
        .send()
        .await?;
    if !response.status().is_success() {
        return Err(format!("creating the channel: {}", response.text().await?).into());
    }
    let channel: Channel = response.json().await?;

    let ws_url = format!(
        "{}{}",
        url.replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1),
        paths::WS
    );
    let identities: Vec<String> = std::iter::once(sender.clone()).chain(members).collect();
    let connect_began = Instant::now();
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(clients);
    let mut tasks = Vec::with_capacity(clients);
    // Connect in batches so the listen backlog does not overflow.
    for batch in identities.chunks(50) {
        let mut pending = Vec::new();
        for identity in batch {
            let auth = authorization(backend, identity)?;
            let ws_url = ws_url.clone();
            let channel = channel_id.clone();
            let ready = ready_tx.clone();
            pending.push(tokio::spawn(async move {
                fan_client(ws_url, auth, channel, messages, ready).await
            }));
        }
        for _ in 0..batch.len() {
            tokio::time::timeout(TIMEOUT, ready_rx.recv())
                .await
                .map_err(|_| "clients did not subscribe in time")?
                .ok_or("a client failed before subscribing")?;
        }
        tasks.extend(pending);
    }
    println!(
        "fan-out: {clients} clients connected and subscribed in {:.2} s",
        connect_began.elapsed().as_secs_f64()
    );

    let sender_auth = authorization(backend, &sender)?;
    let ciphertext = STANDARD.encode(vec![0x5a; 1024]);
    let mut posted: Vec<(i64, Instant)> = Vec::with_capacity(messages);
    let began = Instant::now();
    for i in 0..messages {
        let post = NewMessage {
            client_id: format!("fan-{i}"),
            ciphertext: ciphertext.clone(),
            member_version: channel.member_version,
            kt_head: None,
            blobs: Vec::new(),
        };
        let at = Instant::now();
        let response = http
            .post(format!("{url}{}", paths::messages(&channel_id)))
            .header("Authorization", &sender_auth)
            .json(&post)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("posting: {}", response.text().await?).into());
        }
        let message: Message = response.json().await?;
        posted.push((message.seq, at));
    }
    let mut latencies = Vec::with_capacity(clients * messages);
    let mut last = began;
    for task in tasks {
        for (seq, arrived) in task.await?? {
            if let Some((_, at)) = posted.iter().find(|(s, _)| *s == seq) {
                latencies.push(arrived.duration_since(*at));
                last = last.max(arrived);
            }
        }
    }
    let total = last.duration_since(began);
    let (p50, p99) = percentiles(&mut latencies);
    println!(
        "fan-out: {messages} messages of 1 KiB to {clients} clients: {} deliveries in {:.2} s = \
         {:.0} deliveries/s; latency p50 {p50:.1} ms, p99 {p99:.1} ms",
        latencies.len(),
        total.as_secs_f64(),
        latencies.len() as f64 / total.as_secs_f64()
    );
    Ok(())
}

/// One raw client: connects, subscribes from the channel's end, reports ready, then records
/// when each message arrives.
async fn fan_client(
    url: String,
    auth: String,
    channel: String,
    messages: usize,
    ready: tokio::sync::mpsc::Sender<()>,
) -> BoxResult<Vec<(i64, Instant)>> {
    let mut request = url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("Authorization", HeaderValue::from_str(&auth)?);
    let (mut socket, _) = tokio::time::timeout(TIMEOUT, tokio_tungstenite::connect_async(request))
        .await
        .map_err(|_| "connect timed out")??;
    let subscribe = serde_json::to_string(&ClientFrame::Subscribe {
        channel: channel.clone(),
        after: 0,
    })?;
    socket.send(Frame::Text(subscribe.into())).await?;
    let mut arrivals = Vec::with_capacity(messages);
    let mut subscribed = false;
    while arrivals.len() < messages {
        let frame = tokio::time::timeout(TIMEOUT, socket.next())
            .await
            .map_err(|_| "no frame in time")?
            .ok_or("connection closed")??;
        let Frame::Text(text) = frame else { continue };
        let at = Instant::now();
        match serde_json::from_str::<ServerFrame>(text.as_str())? {
            ServerFrame::Subscribed { .. } if !subscribed => {
                subscribed = true;
                ready.send(()).await?;
            }
            ServerFrame::Message { message } => arrivals.push((message.seq, at)),
            ServerFrame::Error { message, .. } => return Err(message.into()),
            _ => {}
        }
    }
    Ok(arrivals)
}
