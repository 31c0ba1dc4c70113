//! `/search` in `sealkit chat`: two users chat, one searches the messages its device decrypted.
//! The hits come from the local sealed index; neither the server's files nor the client's
//! index hold the words.

use crate::chat_cli::{sealkit, Proc};
use crate::common::free_port;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_owned()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

fn assert_absent(dir: &Path, words: &[&str]) -> usize {
    let all = files(dir);
    for path in &all {
        let bytes = std::fs::read(path).unwrap();
        for word in words {
            assert!(
                !bytes.windows(word.len()).any(|w| w == word.as_bytes()),
                "{word:?} in {}",
                path.display()
            );
        }
    }
    all.len()
}

#[test]
fn search_in_the_terminal_finds_decrypted_messages_locally() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("sealkit-data");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut cmd = sealkit(dir.path());
    cmd.args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data);
    let server = Proc::spawn("serve", cmd);
    let deadline = Instant::now() + Duration::from_secs(90);
    while ureq::get(&format!("{url}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "serve: {}", server.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    let chat = |identity: &str| {
        let mut cmd = sealkit(dir.path());
        cmd.args(["--server", &url, "chat", "--identity", identity])
            .args(["--channel", "garden"]);
        Proc::spawn(identity, cmd)
    };
    let mut alice = chat("alice");
    alice.expect("alice is in: garden");
    let mut bob = chat("bob");
    bob.expect("bob is in: garden");

    alice.send("the marigold seeds arrive tuesday");
    alice.expect("(#1)");
    bob.expect("[garden] alice ✔ the marigold seeds arrive tuesday");
    bob.send("bring the watering can");
    bob.expect("(#2)");
    bob.send("marigold or tulip?");
    bob.expect("(#3)");

    // Ranked: both say it once; the shorter message ranks higher (BM25).
    bob.send("/search Marigold");
    bob.expect("* 2 hits for Marigold");
    bob.expect("[garden] #3 bob: marigold or tulip?");
    bob.expect("[garden] #1 alice: the marigold seeds arrive tuesday");
    // All words count.
    bob.send("/search marigold tuesday");
    bob.expect("* 1 hit for marigold tuesday");
    bob.expect("[garden] #1 alice: the marigold seeds arrive tuesday");
    bob.send("/search");
    bob.send("/search giraffe");
    bob.expect("* 0 hits for giraffe");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bob.stderr().contains("! usage: /search TERM") {
        assert!(Instant::now() < deadline, "{}", bob.stderr());
        std::thread::sleep(Duration::from_millis(50));
    }
    // alice's index has what her device decrypted and sent too.
    alice.expect("[garden] bob ✔ marigold or tulip?");
    alice.send("/search watering");
    alice.expect("* 1 hit for watering");
    alice.expect("[garden] #2 bob: bring the watering can");

    let (status, _) = bob.finish();
    assert!(status.success());
    // A new process opens the sealed index from disk.
    let mut bob = chat("bob");
    bob.expect("bob is in: garden");
    bob.send("/search tulip");
    bob.expect("* 1 hit for tulip");
    bob.expect("[garden] #3 bob: marigold or tulip?");
    let errors = bob.stderr();
    let (status, _) = bob.finish();
    assert!(status.success());
    let (status, _) = alice.finish();
    assert!(status.success());
    assert!(!errors.contains("! "), "{errors}");

    // Neither the server nor the index on the clients' disks holds the words.
    let words = ["marigold", "tulip", "watering", "giraffe", "tuesday"];
    assert!(assert_absent(&data, &words) > 0);
    drop(server);
    let homes = dir.path().join("home");
    let index_files = files(&homes)
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "search"))
        .count();
    assert!(
        index_files >= 4,
        "no search index under {}",
        homes.display()
    );
    assert_absent(&homes, &words);
}
