//! Attachment throughput against a running Sealkit server (see the "Attachments" section of
//! `docs/chat.md`): a sender sends a file of `MIB` MiB with `Chat::send_file` (encrypted on
//! the device while it is uploaded) and a receiver fetches it with `Chat::download` (streamed,
//! decrypted, verified, then renamed into place), against a plain copy of the same file on the
//! same machine in the same run (read, write, fsync, as the download's commit does). Also in
//! the same run, the on-device part alone: the same file encrypted into a local file and
//! decrypted back with the SDK's file API (`auth_encrypt_file` / `auth_decrypt_file`), which is
//! what an attachment costs before any network or server. Prints each direction's throughput,
//! the ratios to the copy and to the local crypto, and this process's peak memory.
//!
//! ```text
//! cargo run --release -p sealkit --example attachment_bench -- API_URL APP_JSON [MIB] [ROUNDS] [PAUSE_MS]
//! ```
//!
//! Defaults: 64 MiB, 3 rounds (the median is reported). Start the server with a
//! `chat_blob_limit` above the file's size plus a few KiB (the default is 100 MiB).

use sealkit::chat::ChannelKind;
use sealkit::{EThree, EThreeOptions};
use sealkit_proto::{AppCredentials, JwtGenerator};
use std::io::{Read as _, Write as _};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

type BoxResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn user(
    url: &str,
    backend: &JwtGenerator,
    identity: String,
    dir: &Path,
) -> BoxResult<EThree> {
    let minter = backend.clone();
    let who = identity.clone();
    let provider =
        move || std::future::ready(minter.generate(&who, now_secs()).map(|j| j.to_string()));
    let ethree = EThree::initialize(provider, EThreeOptions::new(url, dir.join(&identity))).await?;
    ethree.register(None).await?;
    Ok(ethree)
}

/// A file of `len` bytes that does not compress (xorshift), written in 1 MiB pieces.
fn make_file(path: &Path, len: usize) -> BoxResult<()> {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut piece = vec![0u8; 1 << 20];
    let mut left = len;
    while left > 0 {
        for byte in piece.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        let n = left.min(piece.len());
        file.write_all(&piece[..n])?;
        left -= n;
    }
    file.into_inner()?.sync_all()?;
    Ok(())
}

/// The reference: read `from`, write `to` in 1 MiB pieces, fsync it.
fn plain_copy(from: &Path, to: &Path) -> BoxResult<Duration> {
    let start = Instant::now();
    let mut input = std::fs::File::open(from)?;
    let mut output = std::fs::File::create(to)?;
    let mut piece = vec![0u8; 1 << 20];
    loop {
        let n = input.read(&mut piece)?;
        if n == 0 {
            break;
        }
        output.write_all(&piece[..n])?;
    }
    output.sync_all()?;
    Ok(start.elapsed())
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// This process's peak resident memory (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main]
async fn main() -> BoxResult<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(url), Some(credentials)) = (args.first(), args.get(1)) else {
        return Err("usage: attachment_bench API_URL APP_JSON [MIB] [ROUNDS] [PAUSE_MS]".into());
    };
    let mib: usize = args.get(2).map(|s| s.parse()).transpose()?.unwrap_or(64);
    let rounds: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(3);
    // A pause between each upload and its download (milliseconds): with one, the download does
    // not share the disk with the server's WAL checkpoint of the upload.
    let pause = args
        .get(4)
        .map(|s| s.parse().map(Duration::from_millis))
        .transpose()?;
    let backend =
        AppCredentials::from_json(&std::fs::read_to_string(credentials)?)?.generator(3600)?;
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let dir = tempfile::tempdir()?;
    let sender = user(url, &backend, format!("attach-{run}-s"), dir.path()).await?;
    let receiver = user(url, &backend, format!("attach-{run}-r"), dir.path()).await?;
    let channel = format!("attach-{run}");
    let (send_chat, receive_chat) = (sender.chat(), receiver.chat());
    send_chat
        .create_channel(&channel, ChannelKind::Group, &[receiver.identity()], false)
        .await?;

    let len = mib << 20;
    let source = dir.path().join("source.bin");
    make_file(&source, len)?;
    // Warm-up: cards looked up, connections open, caches filled.
    let small = dir.path().join("small.bin");
    make_file(&small, 1000)?;
    let (warm, _) = send_chat.send_file(&channel, &small).await?;
    receive_chat
        .download(&channel, warm.seq, &dir.path().join("small.out"))
        .await?;

    let receiver_card = sender.find_user(receiver.identity()).await?;
    let sender_card = receiver.find_user(sender.identity()).await?;

    let (mut copies, mut uploads, mut downloads) = (Vec::new(), Vec::new(), Vec::new());
    let (mut local_encrypts, mut local_decrypts) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let copy = dir.path().join(format!("copy-{round}.bin"));
        copies.push(plain_copy(&source, &copy)?);
        std::fs::remove_file(&copy)?;

        let sealed = dir.path().join(format!("local-{round}.enc"));
        let opened = dir.path().join(format!("local-{round}.out"));
        let start = Instant::now();
        sender
            .auth_encrypt_file(&source, &sealed, &[&receiver_card], |_| ())
            .await?;
        local_encrypts.push(start.elapsed());
        let start = Instant::now();
        receiver
            .auth_decrypt_file(&sealed, &opened, &sender_card, None, |_| ())
            .await?;
        local_decrypts.push(start.elapsed());
        std::fs::remove_file(&sealed)?;
        std::fs::remove_file(&opened)?;

        let start = Instant::now();
        let (message, _) = send_chat.send_file(&channel, &source).await?;
        uploads.push(start.elapsed());

        let out = dir.path().join(format!("download-{round}.bin"));
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
        let start = Instant::now();
        receive_chat.download(&channel, message.seq, &out).await?;
        downloads.push(start.elapsed());
        if std::fs::metadata(&out)?.len() != len as u64 {
            return Err("the download has another size".into());
        }
        std::fs::remove_file(&out)?;
    }
    let rate = |d: Duration| len as f64 / (1 << 20) as f64 / d.as_secs_f64();
    let (copy, up, down) = (
        median(&mut copies),
        median(&mut uploads),
        median(&mut downloads),
    );
    let (local_up, local_down) = (median(&mut local_encrypts), median(&mut local_decrypts));
    println!("{mib} MiB, median of {rounds} rounds");
    println!("plain copy (read, write, fsync): {:8.1} MiB/s", rate(copy));
    println!(
        "local encrypt (file to file):    {:8.1} MiB/s  = {:.2}x the copy",
        rate(local_up),
        rate(local_up) / rate(copy)
    );
    println!(
        "local decrypt (file to file):    {:8.1} MiB/s  = {:.2}x the copy",
        rate(local_down),
        rate(local_down) / rate(copy)
    );
    println!(
        "send_file (encrypt + upload):    {:8.1} MiB/s  = {:.2}x the copy, {:.2}x local encrypt",
        rate(up),
        rate(up) / rate(copy),
        rate(up) / rate(local_up)
    );
    println!(
        "download (fetch + decrypt):      {:8.1} MiB/s  = {:.2}x the copy, {:.2}x local decrypt",
        rate(down),
        rate(down) / rate(copy),
        rate(down) / rate(local_down)
    );
    println!(
        "round trip (upload + download):  {:8.1} MiB/s  = {:.2}x the copy",
        rate(up + down),
        rate(up + down) / rate(copy)
    );
    if let Some(peak) = peak_rss_mib() {
        println!("peak memory of this process (both clients): {peak:.0} MiB");
    }
    Ok(())
}
