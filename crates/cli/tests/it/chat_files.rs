//! Encrypted attachments through the terminal client against a real `sealkit serve`:
//! `/send-file PATH` in `sealkit chat` (receivers see the name, size and `#SEQ`), and
//! `sealkit chat --channel C --download SEQ --out FILE`, which writes the file only once it is
//! complete and verified. A server that alters the blob (here a proxy in front of it) gets the
//! download refused with no file written, and the server's files hold no plaintext of the
//! attachment.

use crate::chat_cli::{sealkit, serve, Proc};
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What makes the attachment's plaintext recognisable in the server's files.
const MARKER: &str = "tangerine-quokka-7731 is the attachment's secret plaintext\n";

/// An HTTP proxy in front of the server, one request per connection, that can flip a byte in
/// the middle of every blob it serves, or serve another blob than the one asked for, and keeps
/// the last blob (as the server sent it) and its path.
struct Proxy {
    url: String,
    tamper: Arc<AtomicBool>,
    swap: Arc<Mutex<Option<String>>>,
    last_blob: Arc<Mutex<(String, Vec<u8>)>>,
}

impl Proxy {
    fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let tamper = Arc::new(AtomicBool::new(false));
        let swap = Arc::new(Mutex::new(None));
        let last_blob = Arc::new(Mutex::new((String::new(), Vec::new())));
        let lies = Lies {
            tamper: tamper.clone(),
            swap: swap.clone(),
            last_blob: last_blob.clone(),
        };
        let upstream = upstream.to_owned();
        std::thread::spawn(move || {
            for stream in listener.incoming().map_while(Result::ok) {
                let (upstream, lies) = (upstream.clone(), lies.clone());
                std::thread::spawn(move || {
                    let _ = relay(stream, &upstream, &lies);
                });
            }
        });
        Self {
            url,
            tamper,
            swap,
            last_blob,
        }
    }
}

/// What the proxy's relays share.
#[derive(Clone)]
struct Lies {
    tamper: Arc<AtomicBool>,
    swap: Arc<Mutex<Option<String>>>,
    last_blob: Arc<Mutex<(String, Vec<u8>)>>,
}

/// Relays one request and its answer (`Connection: close`).
fn relay(mut client: TcpStream, upstream: &str, lies: &Lies) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = String::new();
    reader.read_line(&mut head)?;
    let mut parts = head.split_whitespace();
    let (method, path) = (
        parts.next().unwrap_or("GET").to_owned(),
        parts.next().unwrap_or("/").to_owned(),
    );
    let mut headers = Vec::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                length = value.parse().unwrap_or(0);
            }
            if !matches!(
                name.as_str(),
                "host" | "connection" | "content-length" | "transfer-encoding"
            ) {
                headers.push((name, value));
            }
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let is_blob = method == "GET" && path.contains("/blobs/");
    let asked = match lies.swap.lock().unwrap().clone() {
        Some(other) if is_blob => other,
        _ => path.clone(),
    };
    let mut request = ureq::request(&method, &format!("{upstream}{asked}"));
    for (name, value) in &headers {
        request = request.set(name, value);
    }
    let response = match request.send_bytes(&body) {
        Ok(response) | Err(ureq::Error::Status(_, response)) => response,
        Err(e) => return Err(std::io::Error::other(e.to_string())),
    };
    let status = response.status();
    let names = response.headers_names();
    let kept: Vec<(String, String)> = names
        .iter()
        .filter(|n| {
            !matches!(
                n.to_ascii_lowercase().as_str(),
                "connection" | "content-length" | "transfer-encoding"
            )
        })
        .filter_map(|n| response.header(n).map(|v| (n.clone(), v.to_owned())))
        .collect();
    let mut answer = Vec::new();
    response.into_reader().read_to_end(&mut answer)?;
    if is_blob && status == 200 {
        *lies.last_blob.lock().unwrap() = (path.clone(), answer.clone());
        if lies.tamper.load(Ordering::SeqCst) {
            let middle = answer.len() / 2;
            if let Some(byte) = answer.get_mut(middle) {
                *byte ^= 0x01;
            }
        }
    }
    let mut out = format!("HTTP/1.1 {status} X\r\n");
    for (name, value) in kept {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str(&format!(
        "content-length: {}\r\nconnection: close\r\n\r\n",
        answer.len()
    ));
    client.write_all(out.as_bytes())?;
    client.write_all(&answer)?;
    client.flush()
}

/// `sealkit chat --download` as bob, through `server`; exit status and stderr.
fn download(dir: &Path, server: &str, seq: &str, out: &Path) -> (bool, String, String) {
    let output = sealkit(dir)
        .args(["--server", server, "chat", "--identity", "bob"])
        .args(["--channel", "files", "--download", seq, "--out"])
        .arg(out)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn read_dir_bytes(dir: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            all.extend(std::fs::read(&path).unwrap());
        } else if path.is_dir() {
            all.extend(read_dir_bytes(&path));
        }
    }
    all
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn files_are_sent_downloaded_verified_and_never_stored_in_clear() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("sealkit-data");
    let (_server, url) = serve(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let chat = |identity: &str| {
        let mut cmd = sealkit(dir.path());
        cmd.args(["--server", &url, "chat", "--identity", identity])
            .args(["--channel", "files"]);
        Proc::spawn(identity, cmd)
    };
    // A few MiB (several chunks on the server, many pieces in the pipes), not a round size.
    let original: Vec<u8> = MARKER
        .as_bytes()
        .iter()
        .copied()
        .cycle()
        .take((3 << 20) + 4321)
        .collect();
    let size = original.len();
    let outbox = dir.path().join("outbox");
    std::fs::create_dir(&outbox).unwrap();
    let source = outbox.join("quarterly report.txt");
    std::fs::write(&source, &original).unwrap();

    let mut alice = chat("alice");
    alice.expect("alice is in: files");
    let mut bob = chat("bob");
    bob.expect("bob is in: files");
    alice.send("a file follows");
    alice.expect("[files] alice ✔ a file follows (#1)");
    alice.send(&format!("/send-file {}", source.display()));
    let line = format!("[files] alice ✔ file quarterly report.txt ({size} bytes) #2");
    alice.expect(&line);
    bob.expect(&line);
    // A second file, for the swap below.
    let other = outbox.join("other.txt");
    std::fs::write(&other, b"another file from alice").unwrap();
    alice.send(&format!("/send-file {}", other.display()));
    alice.expect("[files] alice ✔ file other.txt (23 bytes) #3");
    alice.send("/send-file");
    alice.send(&format!(
        "/send-file {}",
        outbox.join("missing.bin").display()
    ));
    alice.send("/history 3");
    alice.expect(&format!(
        "[files] alice ✔ file quarterly report.txt ({size} bytes) #2 (#2)"
    ));
    // stderr is read by another thread: give it a moment to catch up with stdout.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let errors = alice.stderr();
    assert!(errors.contains("! /send-file PATH"), "{errors}");
    assert!(errors.contains("missing.bin"), "{errors}");
    assert!(alice.finish().0.success());
    assert!(bob.finish().0.success());

    // Downloads go through a proxy that can play a lying server.
    let proxy = Proxy::start(&url);
    let inbox = dir.path().join("inbox");
    std::fs::create_dir(&inbox).unwrap();
    let got = inbox.join("report.txt");
    let (ok, stdout, stderr) = download(dir.path(), &proxy.url, "2", &got);
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains(&format!(
            "saved quarterly report.txt ({size} bytes, #2 of files)"
        )),
        "{stdout}"
    );
    assert!(std::fs::read(&got).unwrap() == original, "other bytes");

    // A message without a file, and one that does not exist: refused, nothing written.
    for seq in ["1", "9"] {
        let out = inbox.join(format!("not-a-file-{seq}"));
        let (ok, _, stderr) = download(dir.path(), &proxy.url, seq, &out);
        assert!(!ok);
        assert!(stderr.contains("has no file"), "{stderr}");
        assert!(!out.exists());
    }

    // The server answers with another authentic file of alice's: refused too (it is not the
    // file the message names), nothing written.
    let (ok, _, stderr) = download(dir.path(), &proxy.url, "3", &inbox.join("other.txt"));
    assert!(ok, "{stderr}");
    let other_path = proxy.last_blob.lock().unwrap().0.clone();
    *proxy.swap.lock().unwrap() = Some(other_path);
    let swapped = inbox.join("swapped.txt");
    let (ok, _, stderr) = download(dir.path(), &proxy.url, "2", &swapped);
    assert!(!ok, "another blob was accepted");
    assert!(
        stderr.contains("is not the one the message names"),
        "{stderr}"
    );
    assert!(!swapped.exists());
    *proxy.swap.lock().unwrap() = None;
    std::fs::remove_file(inbox.join("other.txt")).unwrap();

    // The server alters one byte of the blob: refused, and neither the file nor a temporary
    // file is left; an existing file of that name is not replaced.
    proxy.tamper.store(true, Ordering::SeqCst);
    let tampered = inbox.join("tampered.txt");
    let (ok, _, stderr) = download(dir.path(), &proxy.url, "2", &tampered);
    assert!(!ok, "a tampered blob was accepted");
    assert!(!stderr.is_empty());
    assert!(!tampered.exists());
    let (ok, _, _) = download(dir.path(), &proxy.url, "2", &got);
    assert!(!ok);
    assert!(std::fs::read(&got).unwrap() == original, "replaced");
    assert_eq!(files_in(&inbox), ["report.txt"]);

    // The server's files: the ciphertext is there, the plaintext is not.
    let blob = proxy.last_blob.lock().unwrap().1.clone();
    assert!(blob.len() > size, "the blob is the padded ciphertext");
    let stored = read_dir_bytes(&data);
    // Stored pages split the blob every few KiB, so look for several short pieces of it.
    let found = (1..=8)
        .map(|i| i * blob.len() / 10)
        .filter(|&at| contains(&stored, &blob[at..at + 32]))
        .count();
    assert!(
        found >= 6,
        "the blob is not in the server's files: the search below means nothing"
    );
    assert!(
        !contains(&stored, MARKER.as_bytes()),
        "plaintext of the attachment in the server's files"
    );
    assert!(
        !contains(&stored, b"quarterly report"),
        "the file name is in clear"
    );
}
