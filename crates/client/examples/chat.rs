//! End-to-end encrypted chat against a Sealkit server: two users, a direct channel, a message
//! over the WebSocket, the history.
//!
//! ```text
//! sealkit app create --name demo --json --data-dir ./data > app.json
//! sealkit serve --data-dir ./data &
//! cargo run -p sealkit --example chat -- http://127.0.0.1:8080 app.json
//! ```
//!
//! Tokens are minted from the app credentials file in-process (a real app asks its backend).

use sealkit::chat::{ChatEvent, HistoryCursor};
use sealkit::{EThree, EThreeOptions};
use sealkit_proto::{AppCredentials, JwtGenerator};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A registered user whose keys live in a temporary directory.
async fn user(
    url: &str,
    backend: &JwtGenerator,
    identity: String,
    dir: &std::path::Path,
) -> Result<EThree, Box<dyn std::error::Error>> {
    let minter = backend.clone();
    let who = identity.clone();
    let provider = move || {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        std::future::ready(minter.generate(&who, now).map(|jwt| jwt.to_string()))
    };
    let ethree = EThree::initialize(provider, EThreeOptions::new(url, dir.join(&identity))).await?;
    ethree.register(None).await?;
    Ok(ethree)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(url), Some(credentials)) = (args.next(), args.next()) else {
        return Err("usage: chat <server URL> <app credentials file>".into());
    };
    let backend =
        AppCredentials::from_json(&std::fs::read_to_string(&credentials)?)?.generator(3600)?;
    let dir = tempfile::tempdir()?;
    // Fresh names each run: identities stay registered on the server.
    let run = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    let alice = user(&url, &backend, format!("alice-{run}"), dir.path()).await?;
    let bob = user(&url, &backend, format!("bob-{run}"), dir.path()).await?;

    let (alice_chat, bob_chat) = (alice.chat(), bob.chat());
    let channel = alice_chat.direct_channel(bob.identity()).await?;
    println!("channel {} with {:?}", channel.id, channel.members);

    let mut stream = bob_chat.subscribe().await?;
    stream.subscribe(&channel.id, 0).await?;
    let sent = alice_chat.send_text(&channel.id, "hello Bob").await?;
    println!("alice sent seq {}", sent.seq);

    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await?
            .ok_or("stream ended")??;
        if let ChatEvent::Message(m) = event {
            println!(
                "bob received seq {} from {} ({:?}): {}",
                m.message.seq,
                m.message.sender,
                m.status,
                m.text().unwrap_or("(unreadable)")
            );
            break;
        }
    }

    let page = bob_chat
        .history(&channel.id, HistoryCursor::Latest, 20)
        .await?;
    println!("history: {} message(s)", page.messages.len());
    stream.close().await;
    Ok(())
}
