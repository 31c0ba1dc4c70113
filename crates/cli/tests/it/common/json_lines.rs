//! A child process driven one JSON command per line: the e3kit-node peer
//! (`interop/e3kit_peer.js`) and the browser peer (`web/test/browser_peer.mjs`) both answer on
//! stdout with lines starting `@@ ` (everything else they print is their own log).

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running peer; asked to quit (then killed after `quit_grace`) when dropped.
pub struct JsonLinePeer {
    child: Child,
    stdin: ChildStdin,
    answers: mpsc::Receiver<String>,
    next_id: u64,
    answer_timeout: Duration,
    quit_grace: Duration,
    name: &'static str,
}

impl JsonLinePeer {
    /// Spawns `command` (stdin and stdout piped, stderr inherited) and returns the peer with its
    /// first answer, the "ready" line.
    pub fn start(
        name: &'static str,
        mut command: Command,
        answer_timeout: Duration,
        quit_grace: Duration,
    ) -> (Self, Value) {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node must be installed");
        let stdout = child.stdout.take().unwrap();
        let stdin = child.stdin.take().unwrap();
        let (tx, answers) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(answer) = line.strip_prefix("@@ ") {
                    if tx.send(answer.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let mut peer = Self {
            child,
            stdin,
            answers,
            next_id: 0,
            answer_timeout,
            quit_grace,
            name,
        };
        let ready = peer.receive();
        (peer, ready)
    }

    fn receive(&mut self) -> Value {
        let line = self
            .answers
            .recv_timeout(self.answer_timeout)
            .unwrap_or_else(|_| panic!("the {} peer did not answer", self.name));
        serde_json::from_str(&line).unwrap()
    }

    /// Sends `request` with a fresh id and waits for its answer: `Ok(result)`, or `Err(answer)`
    /// when the peer reports a failure.
    pub fn send(&mut self, mut request: Value) -> Result<Value, Value> {
        self.next_id += 1;
        request["id"] = json!(self.next_id);
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let answer = self.receive();
        assert_eq!(answer["id"], json!(self.next_id), "{answer}");
        if answer["ok"] == json!(true) {
            Ok(answer["result"].clone())
        } else {
            Err(answer)
        }
    }
}

impl Drop for JsonLinePeer {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit", "id": 0}));
        let deadline = Instant::now() + self.quit_grace;
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
