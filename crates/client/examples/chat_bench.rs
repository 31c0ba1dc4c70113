//! Chat benchmark against a running Sealkit server (see `docs/chat-benchmark.md`).
//!
//! 1. End to end through the SDK: one sender and 9 receivers in a 10-member channel; each
//!    message is encrypted for the 10, posted, delivered over the WebSocket and decrypted and
//!    verified by each receiver. Reports messages/s and the delivery latency (from the start of
//!    `send` to the end of the receiver's decryption), p50 and p99.
//! 2. Server fan-out: `FANOUT` raw WebSocket clients (no SDK, no decryption) subscribed to one
//!    channel; the sender posts messages over HTTP; reports deliveries/s and the latency from
//!    the start of the post to each client's receipt, p50 and p99.
//! 3. Idle sockets (when `IDLE` and `SERVER_PID` are given; run first, on the fresh server):
//!    `IDLE` raw WebSocket clients, each authenticated as its own identity and subscribed to a
//!    channel (channels of 100 members), then left idle. Reports the server process's resident
//!    memory (`VmRSS` of `/proc/SERVER_PID/status`, so the server must run in its own process)
//!    before and after, and the difference per socket.
//!
//! ```text
//! cargo run --release -p sealkit --example chat_bench -- [--in-flight N] API_URL APP_JSON [MESSAGES] [FANOUT] [FANOUT_MESSAGES] [IDLE SERVER_PID]
//! ```
//!
//! Defaults: 200 messages, 1000 fan-out clients, 20 fan-out messages, no idle part. The
//! clients need one file descriptor each in this process and the server one per socket: the
//! benchmark raises both processes' soft `RLIMIT_NOFILE` to the hard limit (with `prlimit`)
//! and stops early if that is still too low.

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
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
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

const USAGE: &str =
    "usage: chat_bench [--in-flight N] (--serve SEALKIT_BINARY | API_URL APP_JSON) \
     [MESSAGES] [FANOUT] [FANOUT_MESSAGES] [IDLE [SERVER_PID]]";

#[tokio::main]
async fn main() -> BoxResult<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    // `--in-flight N`: the end-to-end sender keeps up to N sends going at once (default 1).
    let in_flight = match args.iter().position(|a| a == "--in-flight") {
        Some(at) => {
            let n: usize = args.get(at + 1).ok_or(USAGE)?.parse()?;
            args.drain(at..at + 2);
            n.max(1)
        }
        None => 1,
    };
    let (Some(first), Some(second)) = (args.first(), args.get(1)) else {
        return Err(USAGE.into());
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
    let idle = number(5, 0)?;
    let dir = tempfile::tempdir()?;
    // Either a server of its own (a child process, stopped at the end) or the one given.
    let (server, url, credentials) = if first == "--serve" {
        let server = Server::start(std::path::Path::new(second), dir.path()).await?;
        let (url, credentials) = (server.url.clone(), server.credentials.clone());
        (Some(server), url, credentials)
    } else {
        (None, first.clone(), std::fs::read_to_string(second)?)
    };
    let server_pid = match &server {
        Some(server) => server.child.id() as usize,
        None => number(6, 0)?,
    };
    let url = url.as_str();
    let backend = AppCredentials::from_json(&credentials)?.generator(3600)?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();

    println!(
        "load average at the start: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    // The idle part first, on a server that has served nothing else yet.
    if idle > 0 {
        if server_pid == 0 {
            return Err("the idle part needs the server's process id (SERVER_PID)".into());
        }
        idle_sockets(url, &backend, run, idle, server_pid).await?;
    }
    if messages > 0 {
        end_to_end(
            url,
            &backend,
            (run, server_pid),
            dir.path(),
            (messages, in_flight),
        )
        .await?;
    }
    if fanout > 0 {
        fan_out(url, &backend, (run, server_pid), fanout, fanout_messages).await?;
    }
    println!(
        "load average at the end: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    // Stops the server, if it is ours.
    drop(server);
    Ok(())
}

/// A `sealkit serve` of the benchmark's own on a free loopback port, with a new application,
/// in its own process (so its memory is its own) on SQLite in a temporary directory.
struct Server {
    child: std::process::Child,
    url: String,
    credentials: String,
}

impl Server {
    async fn start(binary: &std::path::Path, dir: &std::path::Path) -> BoxResult<Self> {
        let data = dir.join("server");
        let created = std::process::Command::new(binary)
            .args(["app", "create", "--name", "bench", "--json", "--data-dir"])
            .arg(&data)
            .output()?;
        if !created.status.success() {
            return Err(format!(
                "sealkit app create failed: {}",
                String::from_utf8_lossy(&created.stderr)
            )
            .into());
        }
        let credentials = String::from_utf8(created.stdout)?;
        // A free port: bound by the OS, released, then taken by the server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let log = std::fs::File::create(dir.join("server.log"))?;
        let mut child = std::process::Command::new(binary)
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(log)
            .spawn()?;
        let url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let began = Instant::now();
        while !http
            .get(format!("{url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            if began.elapsed() > Duration::from_secs(30) {
                let _ = child.kill();
                let _ = child.wait();
                return Err("the server did not start within 30 s".into());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            url,
            credentials,
        })
    }
}

impl Drop for Server {
    /// Stops the server, also when the benchmark fails half way.
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time (user + system) of a process, from `/proc/PID/stat`.
fn cpu_time(pid: usize) -> BoxResult<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The fields after the command name (which may hold spaces): state is field 3, utime and
    // stime fields 14 and 15, in clock ticks (USER_HZ, 100 on Linux).
    let after_name = stat.rsplit_once(')').ok_or("no ')' in /proc/PID/stat")?.1;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks =
        |i: usize| -> BoxResult<u64> { Ok(fields.get(i).ok_or("short /proc/PID/stat")?.parse()?) };
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// The CPU time the server and this process spend on a part: on a shared machine the wall
/// clock says how long a part waited for the cores, the CPU time what it cost.
struct CpuMeter {
    server: Option<(usize, Duration)>,
    own: Duration,
}

impl CpuMeter {
    fn start(server_pid: usize) -> Self {
        let server = (server_pid != 0)
            .then(|| cpu_time(server_pid).ok().map(|t| (server_pid, t)))
            .flatten();
        Self {
            server,
            own: cpu_time(std::process::id() as usize).unwrap_or_default(),
        }
    }

    fn report(&self, part: &str, units: f64, unit: &str) -> BoxResult<()> {
        let own = cpu_time(std::process::id() as usize)?.saturating_sub(self.own);
        let per = |t: Duration| t.as_secs_f64() * 1e6 / units.max(1.0);
        let server = match self.server {
            Some((pid, start)) => {
                let used = cpu_time(pid)?.saturating_sub(start);
                format!(
                    "server {:.2} s ({:.1} µs per {unit}), ",
                    used.as_secs_f64(),
                    per(used)
                )
            }
            None => String::new(),
        };
        println!(
            "{part}: CPU time: {server}benchmark process {:.2} s ({:.1} µs per {unit})",
            own.as_secs_f64(),
            per(own)
        );
        Ok(())
    }
}

/// Part 1: SDK to SDK, 10 members.
async fn end_to_end(
    url: &str,
    backend: &JwtGenerator,
    (run, server_pid): (u128, usize),
    dir: &std::path::Path,
    (messages, in_flight): (usize, usize),
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
    let cpu = CpuMeter::start(server_pid);
    let began = Instant::now();
    // Up to `in_flight` sends at once; each notes its start when it begins.
    let mut sends = futures_util::stream::iter(1..messages)
        .map(|i| {
            let (chat, channel, padding, started) = (&chat, &channel, &padding, &started);
            async move {
                let at = Instant::now();
                if let Some(slot) = started.lock().map_err(|_| "poisoned")?.get_mut(i) {
                    *slot = Some(at);
                }
                chat.send_text(channel, &format!("{i} {padding}")).await?;
                BoxResult::Ok(())
            }
        })
        .buffer_unordered(in_flight);
    while let Some(sent) = sends.next().await {
        sent?;
    }
    drop(sends);
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
        "end-to-end: {timed} messages of {PAYLOAD} bytes to {RECEIVERS} receivers (10 members), \
         {in_flight} in flight: sent in {:.2} s ({:.0} msg/s), all decrypted after {:.2} s: {:.0} msg/s, {:.0} \
         deliveries/s; latency p50 {p50:.1} ms, p99 {p99:.1} ms ({} samples)",
        sent_in.as_secs_f64(),
        timed as f64 / sent_in.as_secs_f64(),
        total.as_secs_f64(),
        timed as f64 / total.as_secs_f64(),
        latencies.len() as f64 / total.as_secs_f64(),
        latencies.len()
    );
    cpu.report("end-to-end", timed as f64, "message")?;
    Ok(())
}

/// Part 2: raw WebSocket clients, no crypto.
async fn fan_out(
    url: &str,
    backend: &JwtGenerator,
    (run, server_pid): (u128, usize),
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
    let cpu = CpuMeter::start(server_pid);
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
    cpu.report("fan-out", latencies.len() as f64, "delivery")?;
    Ok(())
}

/// Opens a raw client socket. tungstenite zero-fills its whole read buffer before every read
/// (128 KiB by default); with a thousand clients on the server's two cores that memset alone
/// took a good share of the CPU, so the raw clients read 16 KiB at a time (a frame is 1.5 KiB).
async fn connect(
    request: tokio_tungstenite::tungstenite::handshake::client::Request,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let config = WebSocketConfig::default().read_buffer_size(16 << 10);
    tokio_tungstenite::connect_async_with_config(request, Some(config), true).await
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
    let (mut socket, _) = tokio::time::timeout(TIMEOUT, connect(request))
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

/// Members per channel in the idle part: each socket is one member, subscribed to its channel.
const IDLE_CHANNEL: usize = 100;

/// A process's resident memory in bytes (`VmRSS`).
fn resident(pid: usize) -> BoxResult<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().strip_suffix("kB"))
        .ok_or("no VmRSS in /proc/PID/status")?
        .trim()
        .parse()?;
    Ok(kib * 1024)
}

/// The soft and hard `RLIMIT_NOFILE` of a process, from `/proc/PID/limits`.
fn open_files_limit(pid: u32) -> BoxResult<(u64, u64)> {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits"))?;
    let line = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .ok_or("no open files limit in /proc/PID/limits")?;
    let mut values = line["Max open files".len()..].split_whitespace();
    let mut next = || -> BoxResult<u64> {
        let value = values.next().ok_or("short limits line")?;
        Ok(if value == "unlimited" {
            u64::MAX
        } else {
            value.parse()?
        })
    };
    Ok((next()?, next()?))
}

/// Raises a process's soft open-files limit to its hard limit when it is below `needed`
/// (`prlimit` from util-linux: unprivileged, and it works on another process of the same
/// user); an error when even the hard limit is too low.
fn ensure_open_files(pid: u32, needed: u64, who: &str) -> BoxResult<()> {
    let (soft, hard) = open_files_limit(pid)?;
    if soft >= needed {
        return Ok(());
    }
    if hard < needed {
        return Err(format!(
            "{who} may open {hard} files at most (hard limit) but needs about {needed}"
        )
        .into());
    }
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--nofile={hard}:{hard}"))
        .status()?;
    if !status.success() || open_files_limit(pid)?.0 < needed {
        return Err(format!(
            "could not raise the open files limit of {who}: run `ulimit -n {hard}` first"
        )
        .into());
    }
    println!("idle: raised the open files limit of {who} from {soft} to {hard}");
    Ok(())
}

/// Part 3: server memory per idle, authenticated and subscribed WebSocket.
async fn idle_sockets(
    url: &str,
    backend: &JwtGenerator,
    run: u128,
    sockets: usize,
    server_pid: usize,
) -> BoxResult<()> {
    let needed = sockets as u64 + 256;
    ensure_open_files(std::process::id(), needed, "this benchmark")?;
    ensure_open_files(u32::try_from(server_pid)?, needed, "the server")?;
    let http = reqwest::Client::builder().timeout(TIMEOUT).build()?;
    // (identity, channel) of every socket: channels of IDLE_CHANNEL members, the creator first.
    let mut plan: Vec<(String, String)> = Vec::with_capacity(sockets);
    for (c, start) in (0..sockets).step_by(IDLE_CHANNEL).enumerate() {
        let channel = format!("idle-{run}-{c}");
        let count = IDLE_CHANNEL.min(sockets - start);
        let members: Vec<String> = (0..count).map(|i| format!("idle-{run}-{c}-{i}")).collect();
        let body = serde_json::json!({
            "id": channel, "kind": "group", "members": &members[1..], "open": false
        });
        let response = http
            .post(format!("{url}{}", paths::CHANNELS))
            .header("Authorization", authorization(backend, &members[0])?)
            .json(&body)
            .send()
            .await?;
        if !response.status().is_success() {
            return Err(format!("creating an idle channel: {}", response.text().await?).into());
        }
        plan.extend(members.into_iter().map(|m| (m, channel.clone())));
    }
    // Let the server settle after the creations before the baseline.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let before = resident(server_pid)?;

    let ws_url = format!(
        "{}{}",
        url.replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1),
        paths::WS
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(sockets);
    let mut tasks = Vec::with_capacity(sockets);
    let began = Instant::now();
    for batch in plan.chunks(100) {
        for (identity, channel) in batch {
            let auth = authorization(backend, identity)?;
            tasks.push(tokio::spawn(idle_client(
                ws_url.clone(),
                auth,
                channel.clone(),
                ready_tx.clone(),
                stop_rx.clone(),
            )));
        }
        for _ in 0..batch.len() {
            tokio::time::timeout(TIMEOUT, ready_rx.recv())
                .await
                .map_err(|_| "idle clients did not subscribe in time")?
                .ok_or("an idle client failed before subscribing")?;
        }
    }
    let connected_in = began.elapsed();
    // Whatever the connections left to do (the feeds' first reads, freed handshake buffers)
    // is done before the measurement.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = resident(server_pid)?;
    let _ = stop_tx.send(true);
    for task in tasks {
        task.await??;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let closed = resident(server_pid)?;
    let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
    println!(
        "idle: {sockets} sockets authenticated and subscribed ({} channels) in {:.2} s; server \
         RSS {:.1} MiB before, {:.1} MiB with them open = {:.1} KiB per socket; {:.1} MiB after \
         they closed",
        sockets.div_ceil(IDLE_CHANNEL),
        connected_in.as_secs_f64(),
        mib(before),
        mib(after),
        after.saturating_sub(before) as f64 / 1024.0 / sockets as f64,
        mib(closed)
    );
    Ok(())
}

/// One idle client: connects, subscribes, reports ready, then reads (answering the server's
/// pings) until told to stop, and closes.
async fn idle_client(
    url: String,
    auth: String,
    channel: String,
    ready: tokio::sync::mpsc::Sender<()>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> BoxResult<()> {
    let mut request = url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("Authorization", HeaderValue::from_str(&auth)?);
    let (mut socket, _) = tokio::time::timeout(TIMEOUT, connect(request))
        .await
        .map_err(|_| "connect timed out")??;
    let subscribe = serde_json::to_string(&ClientFrame::Subscribe { channel, after: 0 })?;
    socket.send(Frame::Text(subscribe.into())).await?;
    let mut subscribed = false;
    loop {
        tokio::select! {
            frame = socket.next() => {
                let frame = frame.ok_or("connection closed")??;
                let Frame::Text(text) = frame else { continue };
                match serde_json::from_str::<ServerFrame>(text.as_str())? {
                    ServerFrame::Subscribed { .. } if !subscribed => {
                        subscribed = true;
                        ready.send(()).await?;
                    }
                    ServerFrame::Error { message, .. } => return Err(message.into()),
                    _ => {}
                }
            }
            _ = stop.changed() => break,
        }
    }
    socket.close(None).await?;
    Ok(())
}
