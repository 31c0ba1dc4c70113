//! The Python oracles for Rust tests: Virgil's C library (PyPI `virgil-crypto-lib`, in the
//! virtualenv that `interop/python/setup.sh` makes) behind a script of `interop/python/` run as
//! `SCRIPT stdio`, one JSON request and one JSON answer per line (`brainkey_v3.py` by default,
//! `ratchet.py` for the double ratchet). Test crates include this file with
//! `#[path = ".../interop/python/oracle.rs"] mod oracle;`.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

/// One running oracle process.
pub struct Oracle {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    /// Starts the oracle, or `None` when `SEALKIT_SKIP_INTEROP` is set (`what` says what is
    /// skipped). `repo` is the repository's root. A missing virtualenv fails the test with the
    /// command that makes it.
    pub fn start(repo: &Path, what: &str) -> Option<Self> {
        Self::start_script(repo, "brainkey_v3.py", what)
    }

    /// Starts `interop/python/<script> stdio`, skipped and located like [`Oracle::start`].
    pub fn start_script(repo: &Path, script: &str, what: &str) -> Option<Self> {
        if std::env::var_os("SEALKIT_SKIP_INTEROP").is_some() {
            eprintln!("SEALKIT_SKIP_INTEROP is set: skipping {what}");
            return None;
        }
        let venv = std::env::var_os("SEALKIT_PY_VENV")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo.join("interop/python/.venv"));
        let python = venv.join("bin/python");
        assert!(
            python.is_file(),
            "{} is missing: run interop/python/setup.sh (or set SEALKIT_SKIP_INTEROP=1)",
            python.display()
        );
        let mut child = Command::new(python)
            .arg(repo.join("interop/python").join(script))
            .arg("stdio")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Some(Self {
            child,
            stdin,
            stdout,
        })
    }

    /// One request and its answer, whatever it says. Blocks until the oracle answers.
    pub fn exchange(&mut self, request: &Value) -> Value {
        writeln!(self.stdin, "{request}").unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// One request; its answer, which must not be an error. Blocks until the oracle answers.
    pub fn call(&mut self, request: Value) -> Value {
        let answer = self.exchange(&request);
        assert!(answer.get("error").is_none(), "{request} -> {answer}");
        answer
    }

    /// The hex field `key` of an answer, as bytes.
    pub fn bytes(answer: &Value, key: &str) -> Vec<u8> {
        hex::decode(answer[key].as_str().unwrap()).unwrap()
    }
}

impl Drop for Oracle {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
