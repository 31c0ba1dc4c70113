//! The chat side of the CLI against a real `sealkit serve`: the demo app written on first start,
//! `sealkit backend` (Virgil's sample backend endpoints), client options before the
//! subcommand, and `sealkit chat` driven through stdin/stdout by two users.

use crate::common;

use crate::common::{bin, free_port, Server};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Generous: debug builds, a shared two-core machine.
pub(crate) const WAIT: Duration = Duration::from_secs(90);

/// `sealkit ARGS` with a clean environment: no SEALKIT_* variables, HOME in the test's dir.
pub(crate) fn sealkit(dir: &Path) -> Command {
    let mut cmd = Command::new(bin());
    for var in common::SEALKIT_ENV {
        cmd.env_remove(var);
    }
    cmd.env("HOME", dir.join("home"))
        .env("SEALKIT_LOG", "warn")
        .current_dir(dir);
    cmd
}

/// A child process whose stdout and stderr are read line by line in threads.
pub(crate) struct Proc {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    pub(crate) fn spawn(name: &str, mut cmd: Command) -> Self {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let err = child.stderr.take().unwrap();
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let stdin = child.stdin.take();
        Self {
            name: name.to_owned(),
            child,
            stdin,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    pub(crate) fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    pub(crate) fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for a stdout line containing `needle` (after the lines already matched).
    pub(crate) fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "{}: no line with {needle:?}\nstdout:\n{}\nstderr:\n{}",
                    self.name,
                    self.seen.join("\n"),
                    self.stderr()
                ),
            }
        }
    }

    /// Closes stdin and waits for the exit.
    pub(crate) fn finish(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader threads drain.
                std::thread::sleep(Duration::from_millis(200));
                while let Ok(line) = self.lines.try_recv() {
                    self.seen.push(line);
                }
                return (status, self.seen.join("\n"));
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("{} did not exit after stdin closed", self.name);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16) {
    let deadline = Instant::now() + WAIT;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `sealkit serve` on a fresh port with its stderr captured (the harness's Server discards it).
pub(crate) fn serve(dir: &Path, args: &[&str]) -> (Proc, String) {
    let port = free_port();
    let mut cmd = sealkit(dir);
    cmd.arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args);
    let proc = Proc::spawn("serve", cmd);
    let url = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + WAIT;
    while ureq::get(&format!("{url}/healthz")).call().is_err() {
        assert!(
            Instant::now() < deadline,
            "serve did not start: {}",
            proc.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (proc, url)
}

fn app_count(data_dir: &Path) -> usize {
    let out = Command::new(bin())
        .args(["app", "list", "--json", "--data-dir"])
        .arg(data_dir)
        .env_remove("SEALKIT_DATABASE_URL")
        .output()
        .unwrap();
    assert!(out.status.success());
    let apps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    apps.as_array().unwrap().len()
}

#[test]
fn first_serve_writes_the_demo_app_once() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_arg = data.to_str().unwrap();
    let (server, url) = serve(dir.path(), &["--data-dir", data_arg]);
    let creds_path = data.join("demo-app.json");
    let creds = std::fs::read(&creds_path).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&creds_path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let json: serde_json::Value = serde_json::from_slice(&creds).unwrap();
    for field in ["app_id", "api_key_id", "api_private_key", "api_public_key"] {
        assert!(
            json[field].as_str().is_some_and(|v| !v.is_empty()),
            "{json}"
        );
    }
    // The printed next steps name this server and these credentials, ready to paste.
    std::thread::sleep(Duration::from_millis(300));
    let printed = server.stderr();
    let chat_line = format!(
        "chat --server {url} --app-credentials {} --identity alice --channel general",
        creds_path.display()
    );
    assert!(printed.contains(&chat_line), "{printed}");
    assert!(
        printed.contains("--identity bob --channel general"),
        "{printed}"
    );
    assert!(printed.contains("grep -r -a -l \"hello bob\""), "{printed}");
    drop(server);
    assert_eq!(app_count(&data), 1);

    // A second start keeps the file and creates nothing.
    let (second, _) = serve(dir.path(), &["--data-dir", data_arg]);
    std::thread::sleep(Duration::from_millis(300));
    let printed = second.stderr();
    assert!(!printed.contains("first start"), "{printed}");
    assert!(printed.contains("demo-app.json"), "{printed}");
    drop(second);
    assert_eq!(std::fs::read(&creds_path).unwrap(), creds);
    assert_eq!(app_count(&data), 1);

    // --no-demo-app, and a database that has apps already: nothing is created.
    let bare = dir.path().join("bare");
    let (third, _) = serve(
        dir.path(),
        &["--data-dir", bare.to_str().unwrap(), "--no-demo-app"],
    );
    drop(third);
    assert!(!bare.join("demo-app.json").exists());
    assert_eq!(app_count(&bare), 0);
    let mine = dir.path().join("mine");
    common::create_app(&["--data-dir", mine.to_str().unwrap()], dir.path());
    let (fourth, _) = serve(dir.path(), &["--data-dir", mine.to_str().unwrap()]);
    drop(fourth);
    assert!(!mine.join("demo-app.json").exists());
    assert_eq!(app_count(&mine), 1);
}

#[test]
fn client_options_before_the_subcommand() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let storage = ["--data-dir", data.to_str().unwrap(), "--no-demo-app"];
    let creds = common::create_app(&storage[..2], dir.path());
    let server = Server::start(&storage);
    let creds = creds.to_str().unwrap();
    let home = dir.path().join("alice");

    let out = sealkit(dir.path())
        .args(["--server", &server.url, "--identity", "alice"])
        .args(["--app-credentials", creds, "--home"])
        .arg(&home)
        .args(["user", "register"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap().trim().len(), 64);

    // Mixed: some before, some after.
    let out = sealkit(dir.path())
        .args(["--server", &server.url, "--app-credentials", creds])
        .args(["user", "--identity", "bob", "--home"])
        .arg(dir.path().join("bob"))
        .args(["find", "alice"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(found[0]["identity"], "alice");

    // `token` shares the same options, in either position.
    for args in [
        vec!["--identity", "carol", "--app-credentials", creds, "token"],
        vec!["token", "--identity", "carol", "--app-credentials", creds],
    ] {
        let out = sealkit(dir.path()).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let jwt = sealkit_proto::Jwt::parse(String::from_utf8(out.stdout).unwrap().trim()).unwrap();
        assert_eq!(jwt.identity().unwrap(), "carol");
    }
    // Two token sources for chat, in either position: refused, not silently picked.
    for args in [
        vec![
            "--app-credentials",
            creds,
            "chat",
            "--backend",
            "http://127.0.0.1:9",
        ],
        vec![
            "chat",
            "--backend",
            "http://127.0.0.1:9",
            "--app-credentials",
            creds,
        ],
    ] {
        let out = sealkit(dir.path())
            .args(&args)
            .args(["--identity", "dave"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains("pass only one"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = sealkit(dir.path())
        .args(["--app-credentials", creds, "token"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--identity"));
}

#[test]
fn backend_hands_out_virgil_jwts_the_server_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, url) = serve(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let port = free_port();
    let backend_url = format!("http://127.0.0.1:{port}");
    let mut cmd = sealkit(dir.path());
    cmd.args(["backend", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--app-credentials")
        .arg(data.join("demo-app.json"));
    let backend = Proc::spawn("backend", cmd);
    wait_for_port(port);
    assert!(
        backend.stderr().contains("DEMO LOGIN"),
        "{}",
        backend.stderr()
    );

    let login = |identity: &str| -> String {
        let resp: serde_json::Value = ureq::post(&format!("{backend_url}/authenticate"))
            .send_json(serde_json::json!({ "identity": identity }))
            .unwrap()
            .into_json()
            .unwrap();
        resp["authToken"].as_str().unwrap().to_owned()
    };
    let token = login("alice");
    assert_ne!(token, login("alice"), "each login gets its own token");

    let resp = ureq::get(&format!("{backend_url}/virgil-jwt"))
        .set("Authorization", &format!("Bearer {token}"))
        .call()
        .unwrap();
    assert_eq!(resp.header("access-control-allow-origin"), Some("*"));
    let body: serde_json::Value = resp.into_json().unwrap();
    let jwt = body["virgilToken"].as_str().unwrap();
    assert_eq!(
        sealkit_proto::Jwt::parse(jwt).unwrap().identity().unwrap(),
        "alice"
    );
    // The server takes it.
    let found: serde_json::Value = ureq::post(&format!("{url}/card/v5/actions/search"))
        .set("Authorization", &format!("Virgil {jwt}"))
        .send_json(serde_json::json!({ "identities": ["alice"] }))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(found, serde_json::json!([]));

    // No token, an unknown one, another scheme: 401 with the JSON error shape.
    for auth in [
        None,
        Some("Bearer nope".to_owned()),
        Some(format!("Virgil {token}")),
    ] {
        let mut req = ureq::get(&format!("{backend_url}/virgil-jwt"));
        if let Some(auth) = &auth {
            req = req.set("Authorization", auth);
        }
        match req.call() {
            Err(ureq::Error::Status(401, resp)) => {
                let body: serde_json::Value = resp.into_json().unwrap();
                assert!(body["code"].as_u64().is_some(), "{body}");
                assert!(body["message"].as_str().is_some(), "{body}");
            }
            other => panic!("{auth:?}: expected 401, got {other:?}"),
        }
    }
    // Bad logins: 400 with the JSON error shape.
    for body in [r#"{"identity":""}"#, r#"{"who":"alice"}"#, "not json"] {
        match ureq::post(&format!("{backend_url}/authenticate"))
            .set("Content-Type", "application/json")
            .send_string(body)
        {
            Err(ureq::Error::Status(400, resp)) => {
                let json: serde_json::Value = resp.into_json().unwrap();
                assert_eq!(json["code"], 40000, "{json}");
            }
            other => panic!("{body}: expected 400, got {other:?}"),
        }
    }

    // `sealkit chat --backend` logs in the tutorial's way.
    let mut cmd = sealkit(dir.path());
    cmd.args(["chat", "--server", &url, "--backend", &backend_url])
        .args(["--identity", "carol", "--channel", "lobby"]);
    let mut carol = Proc::spawn("carol", cmd);
    carol.expect("registered carol");
    carol.expect("carol is in: lobby");
    carol.send("via the backend");
    carol.expect("[lobby] carol ✔ via the backend (#1)");
    let (status, _) = carol.finish();
    assert!(status.success());

    // The e3kit tutorial's client code (fetch /authenticate, then /virgil-jwt in the token
    // callback) with the real e3kit-node: it registers, and finds carol.
    if !common::e3kit_node_enabled() {
        return;
    }
    let interop = common::repo_root().join("interop");
    let out = Command::new("node")
        .current_dir(&interop)
        .arg("-e")
        .arg(TUTORIAL_CLIENT)
        .args([&backend_url, &url])
        .arg(dir.path().join("erin"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "erin registered, found carol"
    );
}

/// The e3kit tutorial's client against `sealkit backend`, in e3kit-node. Arguments: the backend
/// URL, the server URL, a storage directory.
const TUTORIAL_CLIENT: &str = r#"
const fetchBackend = globalThis.fetch;
delete globalThis.fetch; // virgil-crypto's WebAssembly loader breaks when fetch exists
const { EThree } = require('@virgilsecurity/e3kit-node');
const [backend, apiUrl, dir] = process.argv.slice(1);
(async () => {
  const login = await fetchBackend(`${backend}/authenticate`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ identity: 'erin' }),
  });
  if (!login.ok) throw new Error(`authenticate: ${login.status}`);
  const { authToken } = await login.json();
  const getToken = async () => {
    const r = await fetchBackend(`${backend}/virgil-jwt`, {
      headers: { Authorization: `Bearer ${authToken}` },
    });
    if (!r.ok) throw new Error(`virgil-jwt: ${r.status}`);
    return (await r.json()).virgilToken;
  };
  const e3 = await EThree.initialize(getToken, {
    apiUrl,
    storageName: `${dir}/keys`,
    groupStorageName: `${dir}/groups`,
  });
  await e3.register();
  const cards = await e3.findUsers(['carol']);
  if (!cards.carol) throw new Error('carol not found');
  console.log(`${e3.identity} registered, found carol`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
"#;

/// Read receipts, typing and unread counts in the terminal: what bob's client shows is marked
/// read by itself, alice sees that as "seen by bob", `/typing` shows "bob is typing…" to
/// alice, and `/unread` counts what has not been shown.
#[test]
fn terminal_chat_shows_receipts_typing_and_unread_counts() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("sealkit-data");
    let (_server, url) = serve(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let chat = |identity: &str, extra: &[&str]| {
        let mut cmd = sealkit(dir.path());
        cmd.args(["--server", &url, "chat", "--identity", identity])
            .args(extra);
        Proc::spawn(identity, cmd)
    };
    let mut alice = chat("alice", &["--channel", "lounge"]);
    alice.expect("alice is in: lounge");
    let mut bob = chat("bob", &["--channel", "lounge"]);
    bob.expect("bob is in: lounge");

    alice.send("are you there?");
    alice.expect("[lounge] alice ✔ are you there? (#1)");
    bob.expect("[lounge] alice ✔ are you there?");
    alice.expect("* [lounge] seen by bob (#1)");

    bob.send("/typing");
    alice.expect("* [lounge] bob is typing…");
    bob.send("yes");
    alice.expect("[lounge] bob ✔ yes");

    // carol's client is not running: what alice sends stays unread for her.
    let mut carol = chat("carol", &["--channel", "lounge"]);
    carol.expect("carol is in: lounge");
    let (status, _) = carol.finish();
    assert!(status.success());
    alice.send("carol, two for you");
    alice.expect("(#3)");
    alice.send("and another");
    alice.expect("(#4)");
    let mut carol = chat("carol", &[]);
    carol.expect("carol is in: no channel yet");
    carol.send("/unread");
    carol.expect("* lounge: 2 unread");
    let (status, _) = carol.finish();
    assert!(status.success());

    alice.send("/unread");
    let line = alice.expect("* lounge: 0 unread");
    assert!(line.contains("read up to: "), "{line}");
    assert!(line.contains("bob #"), "{line}");
    let (status, _) = alice.finish();
    assert!(status.success());
    let (status, _) = bob.finish();
    assert!(status.success());
}

#[test]
fn two_users_chat_through_stdin_and_stdout() {
    let dir = tempfile::tempdir().unwrap();
    // `sealkit-data` in the working directory: `chat` finds the demo app by itself.
    let data: PathBuf = dir.path().join("sealkit-data");
    let (_server, url) = serve(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let chat = |identity: &str, extra: &[&str]| {
        let mut cmd = sealkit(dir.path());
        cmd.args(["--server", &url, "chat", "--identity", identity])
            .args(extra);
        Proc::spawn(identity, cmd)
    };

    let mut alice = chat("alice", &["--channel", "general"]);
    alice.expect("registered alice");
    alice.expect("created the open channel general");
    alice.expect("alice is in: general");
    let mut bob = chat("bob", &["--channel", "general"]);
    bob.expect("registered bob");
    bob.expect("bob is in: general");

    alice.send("hello bob, the secret word is heliotrope");
    alice.expect("[general] alice ✔ hello bob, the secret word is heliotrope (#1)");
    bob.expect("[general] alice ✔ hello bob, the secret word is heliotrope");
    bob.send("hi alice");
    alice.expect("[general] bob ✔ hi alice");

    alice.send("/members");
    alice.expect("* members of general: alice (admin), bob");
    bob.send("/history 5");
    bob.expect("* history of general (2 messages)");
    bob.expect("[general] alice ✔ hello bob, the secret word is heliotrope (#1)");
    bob.expect("[general] bob ✔ hi alice (#2)");

    // A closed channel: bob is not in it until alice adds him.
    alice.send("/create backroom");
    alice.expect("created backroom");
    alice.send("only for alice");
    alice.expect("[backroom] alice ✔ only for alice (#1)");
    alice.send("/add bob");
    alice.expect("* added bob to backroom");
    alice.send("bob can read this");
    alice.expect("[backroom] alice ✔ bob can read this (#2)");
    // bob's client notices the new channel and shows its messages: the one from before he
    // was added is not for him.
    bob.expect("* you are in backroom");
    let before = bob.expect("[backroom] alice");
    assert!(before.contains("⚠ UNVERIFIED"), "{before}");
    assert!(!before.contains("only for alice"), "{before}");
    bob.expect("[backroom] alice ✔ bob can read this");
    bob.send("/switch backroom");
    bob.expect("* now in backroom");
    bob.send("thanks");
    alice.expect("[backroom] bob ✔ thanks");

    // carol starts in no channel; a direct channel alice opens with her shows up by itself.
    let mut carol = chat("carol", &[]);
    carol.expect("carol is in: no channel yet");
    alice.send("/dm carol");
    alice.expect("* now in @carol");
    alice.send("psst carol");
    alice.expect("[@carol] alice ✔ psst carol (#1)");
    carol.expect("* you are in @alice");
    carol.expect("[@alice] alice ✔ psst carol");
    carol.send("/switch @alice");
    carol.send("hi, alice");
    alice.expect("[@carol] carol ✔ hi, alice");
    let (status, _) = carol.finish();
    assert!(status.success());

    // Bad commands are reported and the session goes on.
    bob.send("/add");
    bob.send("/frobnicate");
    bob.send("/history zero");
    bob.send("/switch nowhere");
    bob.send("/members");
    bob.expect("* members of backroom: alice (admin), bob");
    let errors = bob.stderr();
    assert!(errors.contains("! usage: /add ID"), "{errors}");
    assert!(errors.contains("! unknown command /frobnicate"), "{errors}");
    assert!(errors.contains("positive number"), "{errors}");
    assert!(errors.contains("not in \"nowhere\""), "{errors}");

    // Removal: bob is told, and what follows is not for him.
    alice.send("/remove bob");
    alice.send("/switch backroom");
    alice.expect("* now in backroom");
    alice.send("/remove bob");
    alice.expect("* removed bob from backroom");
    bob.expect("* you were removed from backroom");
    alice.send("after bob left");
    alice.expect("[backroom] alice ✔ after bob left");
    bob.send("/members");
    bob.send("/switch general");
    bob.expect("* now in general");

    // End of input: both exit 0.
    let alice_stderr = alice.stderr.clone();
    let (status, _) = alice.finish();
    assert!(status.success());
    let bob_errors = bob.stderr.clone();
    let (status, bob_out) = bob.finish();
    assert!(status.success());
    assert!(!bob_out.contains("after bob left"), "{bob_out}");
    let bob_errors = bob_errors.lock().unwrap().clone();
    assert!(bob_errors.contains("no current channel"), "{bob_errors}");
    let alice_errors = alice_stderr.lock().unwrap().clone();
    assert!(
        alice_errors.contains("a member of a direct channel can only remove itself"),
        "{alice_errors}"
    );

    // The server's files hold ciphertext only.
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(10).any(|w| w == b"heliotrope"),
            "plaintext in {}",
            path.display()
        );
    }

    // Coming back shows the channel's recent messages.
    let mut again = chat("alice", &["--channel", "general"]);
    again.expect("alice is in: general");
    again.expect("[general] alice ✔ hello bob, the secret word is heliotrope");
    again.expect("[general] bob ✔ hi alice");
    let (status, _) = again.finish();
    assert!(status.success());

    // A registered identity without its key here: a clear error, no second card.
    let out = sealkit(dir.path())
        .args(["chat", "--server", &url, "--identity", "alice", "--home"])
        .arg(dir.path().join("elsewhere"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("sealkit user restore"), "{err}");

    // No token source and no demo app in the working directory.
    let empty = tempfile::tempdir().unwrap();
    let out = sealkit(empty.path())
        .args(["chat", "--server", &url, "--identity", "dave"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--backend URL"), "{err}");
}

#[test]
fn a_key_from_another_server_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("zed");
    let run = |data: &Path, url: &str| {
        sealkit(dir.path())
            .args(["chat", "--server", url, "--identity", "zed", "--home"])
            .arg(&home)
            .arg("--app-credentials")
            .arg(data.join("demo-app.json"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let first = dir.path().join("first");
    let (server, url) = serve(dir.path(), &["--data-dir", first.to_str().unwrap()]);
    let out = run(&first, &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("registered zed"));
    // Again on the same server: the key is known, no new registration.
    let out = run(&first, &url);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("registered"));
    drop(server);

    let second = dir.path().join("second");
    let (_server, url) = serve(dir.path(), &["--data-dir", second.to_str().unwrap()]);
    let out = run(&second, &url);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("has no card on this server"), "{err}");
    assert!(err.contains("sealkit user cleanup"), "{err}");
}

// The Rust snippet of docs/chat.md ("Virgil JWTs in your backend"), verbatim: the test below
// checks that the page still shows this code and that its tokens work.
mod docs_snippet {
    use sealkit_proto::{AppCredentials, JwtGenerator};
    use std::time::{SystemTime, UNIX_EPOCH};

    /// Once at startup, from the app's credentials (the text `sealkit app create --json` printed).
    pub fn virgil_jwt_generator(
        credentials_json: &str,
    ) -> Result<JwtGenerator, Box<dyn std::error::Error>> {
        Ok(AppCredentials::from_json(credentials_json)?.generator(3600)?) // tokens live one hour
    }

    /// In your GET /virgil-jwt handler, after YOUR login check, for the logged-in user (never for
    /// an identity taken from the request).
    pub fn virgil_jwt_for(
        generator: &JwtGenerator,
        logged_in_user: &str,
    ) -> Result<String, Box<dyn std::error::Error>> {
        let now = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
        Ok(generator.generate(logged_in_user, now)?.to_string())
    }
}

#[test]
fn docs_backend_snippet_is_current_and_its_tokens_work() {
    let page = std::fs::read_to_string(common::repo_root().join("docs/chat.md")).unwrap();
    let start = page
        .find("```rust\n")
        .expect("docs/chat.md has a Rust snippet")
        + 8;
    let end = start + page[start..].find("```").unwrap();
    let this_file = include_str!("chat_cli.rs");
    for line in page[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        assert!(
            this_file.lines().any(|l| l.trim() == line),
            "docs/chat.md shows a line this test does not compile: {line}"
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_server, url) = serve(dir.path(), &["--data-dir", data.to_str().unwrap()]);
    let creds = std::fs::read_to_string(data.join("demo-app.json")).unwrap();
    let generator = docs_snippet::virgil_jwt_generator(&creds).unwrap();
    let jwt = docs_snippet::virgil_jwt_for(&generator, "alice").unwrap();
    let found: serde_json::Value = ureq::post(&format!("{url}/card/v5/actions/search"))
        .set("Authorization", &format!("Virgil {jwt}"))
        .send_json(serde_json::json!({ "identities": ["alice"] }))
        .unwrap()
        .into_json()
        .unwrap();
    assert_eq!(found, serde_json::json!([]));
    let bad_key = r#"{"app_id": "a", "api_key_id": "b", "api_private_key": "not a key"}"#;
    let err = docs_snippet::virgil_jwt_generator(bad_key).unwrap_err();
    assert!(err.to_string().contains("api_private_key"), "{err}");
    let err = docs_snippet::virgil_jwt_generator(r#"{"app_id": "a"}"#).unwrap_err();
    assert!(err.to_string().contains("api_key_id"), "{err}");
}
