//! `sealkit serve` as operations run it: HTTPS from PEM files reloaded on SIGHUP (checked with
//! curl), a clean exit on SIGTERM, and logs that suit files and log shippers (no colour escapes
//! when stderr is not a terminal; `--log-format json`).

use crate::common;

use crate::common::{bin, free_port, repo_root, SEALKIT_ENV};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn tls_file(name: &str) -> PathBuf {
    repo_root().join("crates/server/tests/data/tls").join(name)
}

fn serve(data: &Path, port: u16, extra: &[&str]) -> Child {
    let mut command = Command::new(bin());
    for var in SEALKIT_ENV {
        command.env_remove(var);
    }
    command
        .args(["serve", "--no-demo-app", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data)
        .args(extra)
        .env("SEALKIT_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// `curl` trusting only `ca`; true when /healthz answered 200 over TLS.
fn curl_https(port: u16, ca: &str) -> bool {
    Command::new("curl")
        .args([
            "-sS",
            "-f",
            "-o",
            "/dev/null",
            "--max-time",
            "5",
            "--cacert",
        ])
        .arg(tls_file(ca))
        .arg("--resolve")
        .arg(format!("localhost:{port}:127.0.0.1"))
        .arg(format!("https://localhost:{port}/healthz"))
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for: {what}");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit after SIGTERM and returns its stderr.
fn terminate(mut child: Child) -> String {
    signal(&child, "TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut err)
                .unwrap();
            assert!(status.success(), "exit {status} after SIGTERM: {err}");
            return err;
        }
        assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serves_https_and_reloads_the_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::copy(tls_file("server-a.pem"), &cert).unwrap();
    std::fs::copy(tls_file("server-a.key"), &key).unwrap();
    let port = free_port();
    let child = serve(
        &dir.path().join("data"),
        port,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    eventually("HTTPS with certificate A", || curl_https(port, "ca-a.pem"));
    assert!(!curl_https(port, "ca-b.pem"));
    let plain = ureq::get(&format!("http://127.0.0.1:{port}/healthz")).call();
    assert!(plain.is_err(), "plain HTTP answered on the TLS port");

    std::fs::copy(tls_file("server-b.pem"), &cert).unwrap();
    std::fs::copy(tls_file("server-b.key"), &key).unwrap();
    signal(&child, "HUP");
    eventually("certificate B after SIGHUP", || {
        curl_https(port, "ca-b.pem")
    });
    assert!(!curl_https(port, "ca-a.pem"));

    let log = terminate(child);
    assert!(log.contains("TLS certificate and key reloaded"), "{log}");
}

/// One server per SQLite data directory: a second `serve` is refused with a clear error
/// while the first runs, and starts once the first was killed (the lock goes with it).
#[test]
fn a_second_server_on_one_sqlite_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut first = serve(dir.path(), port, &[]);
    let health = format!("http://127.0.0.1:{port}/healthz");
    eventually("the first server", || ureq::get(&health).call().is_ok());

    let mut second = serve(dir.path(), free_port(), &[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            second.kill().unwrap();
            panic!("a second server on the same directory kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success());
    let mut stderr = String::new();
    second
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(
        stderr.contains("another sealkit serve is using the data directory"),
        "{stderr}"
    );
    assert!(
        ureq::get(&health).call().is_ok(),
        "the first one still serves"
    );

    first.kill().unwrap();
    first.wait().unwrap();
    let third = serve(dir.path(), port, &[]);
    eventually("a server after the first was killed", || {
        ureq::get(&health).call().is_ok()
    });
    terminate(third);
}

#[test]
fn tls_options_go_together() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["serve", "--tls-cert"])
        .arg(tls_file("server-a.pem"))
        .arg("--data-dir")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--tls-key"));
}

#[test]
fn logs_to_a_pipe_have_no_colour_and_json_is_one_object_per_line() {
    for format in ["text", "json"] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = serve(dir.path(), port, &["--log-format", format]);
        eventually("the server to answer", || {
            ureq::get(&format!("http://127.0.0.1:{port}/healthz"))
                .call()
                .is_ok()
        });
        let log = terminate(child);
        assert!(
            !log.contains('\u{1b}'),
            "{format}: colour escapes in a piped log: {log:?}"
        );
        assert!(log.contains("sealkit server listening"), "{format}: {log}");
        if format == "json" {
            for line in log.lines().filter(|l| !l.trim().is_empty()) {
                let value: serde_json::Value = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                assert!(
                    value["level"].is_string() && value["fields"].is_object(),
                    "{line}"
                );
            }
        }
    }
}

/// The official e3kit-node client over HTTPS: only its `apiUrl` and the CA it trusts change.
#[test]
fn e3kit_node_works_over_https() {
    if !common::e3kit_node_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let creds = common::create_app(&["--data-dir", data.to_str().unwrap()], dir.path());
    let port = free_port();
    let child = serve(
        &data,
        port,
        &[
            "--tls-cert",
            tls_file("server-a.pem").to_str().unwrap(),
            "--tls-key",
            tls_file("server-a.key").to_str().unwrap(),
        ],
    );
    eventually("HTTPS to answer", || curl_https(port, "ca-a.pem"));
    let out = Command::new("node")
        .arg(repo_root().join("interop/e3kit_cards.js"))
        .args(["--api-url", &format!("https://127.0.0.1:{port}")])
        .arg("--app-credentials")
        .arg(&creds)
        .arg("--storage")
        .arg(dir.path().join("e3kit"))
        .env("NODE_EXTRA_CA_CERTS", tls_file("ca-a.pem"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success()
            && stdout
                .lines()
                .last()
                .is_some_and(|l| l.ends_with(" 0 failed")),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    terminate(child);
}

/// Resident memory of a process, from `/proc`, in bytes.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// One raw request on a fresh connection; the status code, or 0 when the server closed the
/// connection without an answer.
fn raw_request(port: u16, head: &str, body: &[u8]) -> u16 {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    // The server may answer (413) and close before the body is all sent.
    let _ = stream.write_all(body);
    let mut reply = Vec::new();
    let _ = stream.read_to_end(&mut reply);
    String::from_utf8_lossy(&reply)
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// The attacks of the hostile suite that cost the server memory, against the real process:
/// thousands of distinct long methods (they used to become `/metrics` labels), hundreds of
/// connections holding half a request head, and bodies over the limit. The server's resident
/// memory must stop growing: a second identical round adds (almost) nothing to the first.
#[test]
fn resident_memory_stays_bounded_under_attack() {
    use std::io::Write as _;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut command = Command::new(bin());
    for var in SEALKIT_ENV {
        command.env_remove(var);
    }
    let mut child = command
        .args(["serve", "--no-demo-app", "--listen"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(data.path())
        .env("SEALKIT_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    eventually("the server answers", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            && raw_request(port, healthz, b"") == 200
    });
    let attack = |round: usize| {
        for i in 0..1500 {
            let method = format!("ATTACK{round}X{i}{}", "M".repeat(200));
            let head = format!(
                "{method} /card/v5/actions/search HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            );
            let status = raw_request(port, &head, b"");
            assert!(matches!(status, 400 | 404 | 405), "{status}");
        }
        let held: Vec<std::net::TcpStream> = (0..300)
            .map(|_| {
                let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
                s.write_all(b"GET /healthz HTTP/1.1\r\nX-Slow: ").unwrap();
                s
            })
            .collect();
        let too_big = vec![b'a'; (4 << 20) + 1];
        for _ in 0..20 {
            let head = format!(
                "POST /keyknox/v2/push HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n",
                too_big.len()
            );
            let status = raw_request(port, &head, &too_big);
            assert!(matches!(status, 0 | 401 | 413), "{status}");
        }
        assert_eq!(
            raw_request(port, healthz, b""),
            200,
            "served during the attack"
        );
        drop(held);
    };
    let pid = child.id();
    attack(0);
    let first = resident_bytes(pid);
    attack(1);
    let second = resident_bytes(pid);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        second <= first + (16 << 20),
        "resident memory grew from {first} to {second} bytes in a second identical round"
    );
    assert!(
        first <= 256 << 20,
        "resident memory reached {first} bytes after one round"
    );
}
