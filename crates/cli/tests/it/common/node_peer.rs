//! `interop/e3kit_peer.js`: e3kit-node users driven one JSON command per line, for the interop
//! tests (`SEALKIT_SKIP_INTEROP` is checked by each test, before it starts a peer).

use super::json_lines::JsonLinePeer;
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// A running `node interop/e3kit_peer.js`; asked to quit (then killed) when dropped.
pub struct NodePeer(JsonLinePeer);

impl NodePeer {
    /// Starts a peer against `url` with the app credentials file `creds`, keeping its users'
    /// keys in `dir`, and waits for its "ready" line.
    pub fn start(url: &str, creds: &Path, dir: &Path) -> Self {
        let mut command = Command::new("node");
        command
            .arg(super::repo_root().join("interop/e3kit_peer.js"))
            .args(["--api-url", url])
            .arg("--app-credentials")
            .arg(creds)
            .arg("--storage")
            .arg(dir);
        let (peer, ready) = JsonLinePeer::start(
            "e3kit",
            command,
            Duration::from_secs(90),
            Duration::from_secs(5),
        );
        assert_eq!(ready["result"]["e3kit"], "2.5.1", "{ready}");
        Self(peer)
    }

    /// Runs a command; `Err((error class, text))` when e3kit threw.
    pub fn try_call(&mut self, request: Value) -> Result<Value, (String, String)> {
        self.0.send(request).map_err(|answer| {
            (
                answer["name"].as_str().unwrap_or_default().to_owned(),
                answer["error"].as_str().unwrap_or_default().to_owned(),
            )
        })
    }

    /// Runs a command that must succeed; returns its result.
    pub fn call(&mut self, request: Value) -> Value {
        let shown = request.to_string();
        self.try_call(request)
            .unwrap_or_else(|(name, e)| panic!("e3kit {shown}: {name}: {e}"))
    }
}
