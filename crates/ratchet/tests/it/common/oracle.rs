//! The C oracle: Virgil's libvsc_ratchet behind `interop/python/ratchet.py stdio`, one JSON
//! request and one JSON answer per line, in the virtualenv of `interop/python/setup.sh` (located
//! and skipped like `interop/python/oracle.rs`: `SEALKIT_PY_VENV`, `SEALKIT_SKIP_INTEROP`).

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

use serde_json::{json, Value};

use super::{Party, UserKeys};

#[path = "../../../../../interop/python/oracle.rs"]
mod python;

pub struct Oracle(python::Oracle);

pub type Shared = Rc<RefCell<Oracle>>;

impl Oracle {
    /// The running oracle, or `None` when `SEALKIT_SKIP_INTEROP` is set. A missing virtualenv
    /// fails the test with the command that makes it.
    pub fn start(what: &str) -> Option<Shared> {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let oracle = python::Oracle::start_script(&repo, "ratchet.py", what)?;
        Some(Rc::new(RefCell::new(Self(oracle))))
    }

    /// One request; its answer or the C status code of its failure.
    pub fn try_call(&mut self, request: Value) -> Result<Value, i64> {
        let answer = self.0.exchange(&request);
        match answer.get("status") {
            Some(status) => Err(status.as_i64().unwrap()),
            None => Ok(answer),
        }
    }

    pub fn call(&mut self, request: Value) -> Value {
        let text = request.to_string();
        self.try_call(request)
            .unwrap_or_else(|status| panic!("{text} -> status {status}"))
    }
}

pub fn bytes(answer: &Value, key: &str) -> Vec<u8> {
    python::Oracle::bytes(answer, key)
}

/// A session held by the C library.
pub struct CParty {
    pub oracle: Shared,
    pub session: i64,
}

impl CParty {
    /// `sender` starts a session with `receiver`'s keys.
    pub fn initiate(
        oracle: &Shared,
        sender: &UserKeys,
        receiver: &UserKeys,
        one_time: bool,
    ) -> Self {
        let mut request = json!({
            "op": "initiate",
            "sender_identity_private": hex::encode(sender.identity_seed),
            "sender_identity_key_id": hex::encode(sender.identity_key_id().0),
            "receiver_identity_public": hex::encode(receiver.identity_public()),
            "receiver_identity_key_id": hex::encode(receiver.identity_key_id().0),
            "receiver_long_term_public": hex::encode(receiver.long_term_public()),
            "receiver_long_term_key_id": hex::encode(receiver.long_term_key_id().0),
        });
        if one_time {
            request["receiver_one_time_public"] = json!(hex::encode(receiver.one_time_public()));
            request["receiver_one_time_key_id"] = json!(hex::encode(receiver.one_time_key_id().0));
        }
        let answer = oracle.borrow_mut().call(request);
        Self {
            oracle: oracle.clone(),
            session: answer["session"].as_i64().unwrap(),
        }
    }

    /// `receiver` answers `sender`'s prekey message.
    pub fn respond(
        oracle: &Shared,
        sender: &UserKeys,
        receiver: &UserKeys,
        one_time: bool,
        message: &[u8],
    ) -> Result<Self, i64> {
        let mut request = json!({
            "op": "respond",
            "sender_identity_public": hex::encode(sender.identity_public()),
            "receiver_identity_private": hex::encode(receiver.identity_seed),
            "receiver_long_term_private": hex::encode(receiver.long_term),
            "message": hex::encode(message),
        });
        if one_time {
            request["receiver_one_time_private"] = json!(hex::encode(receiver.one_time));
        }
        let answer = oracle.borrow_mut().try_call(request)?;
        Ok(Self {
            oracle: oracle.clone(),
            session: answer["session"].as_i64().unwrap(),
        })
    }

    pub fn deserialize(oracle: &Shared, state: &[u8]) -> Result<Self, i64> {
        let answer = oracle
            .borrow_mut()
            .try_call(json!({"op": "deserialize", "state": hex::encode(state)}))?;
        Ok(Self {
            oracle: oracle.clone(),
            session: answer["session"].as_i64().unwrap(),
        })
    }
}

impl Party for CParty {
    fn encrypt(&mut self, plaintext: &[u8]) -> Vec<u8> {
        let answer = self.oracle.borrow_mut().call(json!({
            "op": "encrypt", "session": self.session, "plaintext": hex::encode(plaintext)
        }));
        bytes(&answer, "message")
    }

    fn decrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, i64> {
        self.oracle
            .borrow_mut()
            .try_call(json!({
                "op": "decrypt", "session": self.session, "message": hex::encode(message)
            }))
            .map(|answer| bytes(&answer, "plaintext"))
    }

    fn serialize(&mut self) -> Vec<u8> {
        let answer = self
            .oracle
            .borrow_mut()
            .call(json!({"op": "serialize", "session": self.session}));
        bytes(&answer, "state")
    }

    fn name(&self) -> &'static str {
        "C"
    }
}

impl Drop for CParty {
    fn drop(&mut self) {
        if let Ok(mut oracle) = self.oracle.try_borrow_mut() {
            let _ = oracle.try_call(json!({"op": "free", "session": self.session}));
        }
    }
}
