//! `interop/e3kit_peer.js`: e3kit-node users driven one JSON command per line, for the interop
//! tests (`SEALKIT_SKIP_INTEROP` is checked by each test, before it starts a peer).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `node interop/e3kit_peer.js`; asked to quit (then killed) when dropped.
pub struct NodePeer {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
    next_id: u64,
}

impl NodePeer {
    /// Starts a peer against `url` with the app credentials file `creds`, keeping its users'
    /// keys in `dir`, and waits for its "ready" line.
    pub fn start(url: &str, creds: &Path, dir: &Path) -> Self {
        let mut child = Command::new("node")
            .arg(super::repo_root().join("interop/e3kit_peer.js"))
            .args(["--api-url", url])
            .arg("--app-credentials")
            .arg(creds)
            .arg("--storage")
            .arg(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node must be installed");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rpc) = line.strip_prefix("@@ ") {
                    if tx.send(rpc.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let mut peer = Self {
            child,
            stdin,
            lines,
            next_id: 0,
        };
        let ready = peer.receive();
        assert_eq!(ready["result"]["e3kit"], "2.5.1", "{ready}");
        peer
    }

    fn receive(&mut self) -> Value {
        let line = self
            .lines
            .recv_timeout(Duration::from_secs(90))
            .expect("e3kit peer did not answer");
        serde_json::from_str(&line).unwrap()
    }

    /// Runs a command; `Err((error class, text))` when e3kit threw.
    pub fn try_call(&mut self, mut request: Value) -> Result<Value, (String, String)> {
        self.next_id += 1;
        request["id"] = json!(self.next_id);
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let answer = self.receive();
        assert_eq!(answer["id"], json!(self.next_id), "{answer}");
        if answer["ok"] == json!(true) {
            Ok(answer["result"].clone())
        } else {
            Err((
                answer["name"].as_str().unwrap_or_default().to_owned(),
                answer["error"].as_str().unwrap_or_default().to_owned(),
            ))
        }
    }

    /// Runs a command that must succeed; returns its result.
    pub fn call(&mut self, request: Value) -> Value {
        let shown = request.to_string();
        self.try_call(request)
            .unwrap_or_else(|(name, e)| panic!("e3kit {shown}: {name}: {e}"))
    }
}

impl Drop for NodePeer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit", "id": 0}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
