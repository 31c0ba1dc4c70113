"""Double-ratchet oracle: Virgil's libvsc_ratchet (virgil-crypto-lib 0.23.1) through ctypes, for
crates/ratchet/tests/it. The package ships the library but no Python wrapper for it; the
signatures below are those of library/ratchet/include/virgil/crypto/ratchet/vscr_ratchet_session.h
and vscr_ratchet_message.h of virgil-crypto-c. Run it with the virtualenv of interop/python/setup.sh:

    interop/python/.venv/bin/python interop/python/ratchet.py stdio
    interop/python/.venv/bin/python interop/python/ratchet.py bench [MESSAGES]

`stdio` answers one JSON request per input line with one JSON line (bytes as lowercase hex).
Identity keys are Ed25519 (private: the 32-byte seed; public: 32 bytes), long-term and one-time
keys X25519 (32 bytes each), as e3kit uses them. Sessions live in the process, named by an integer.
  {"op": "initiate", "sender_identity_private", "sender_identity_key_id",
   "receiver_identity_public", "receiver_identity_key_id", "receiver_long_term_public",
   "receiver_long_term_key_id", "receiver_one_time_public"?, "receiver_one_time_key_id"?}
                                                                -> {"session"}
  {"op": "respond", "sender_identity_public", "receiver_identity_private",
   "receiver_long_term_private", "receiver_one_time_private"?, "message"}   -> {"session"}
  {"op": "encrypt", "session", "plaintext"}                     -> {"message"}
  {"op": "decrypt", "session", "message"}                       -> {"plaintext"}
  {"op": "serialize", "session"}                                -> {"state"}
  {"op": "deserialize", "state"}                                -> {"session"}
  {"op": "free", "session"}                                     -> {}
  {"op": "message_info", "message"}: vscr_ratchet_message_deserialize, then the getters and the
      re-serialization -> {"type": "regular"|"prekey", "counter", "sender_identity_key_id"?,
      "receiver_identity_key_id"?, "receiver_long_term_key_id"?, "receiver_one_time_key_id"?,
      "serialized"}
Failures answer {"error": "...", "status": vscr_status_t code} (e.g. -13 for a missing skipped
message key), so tests can match them with sealkit_ratchet::Error.

`seeds DIR` writes the committed fuzz seeds (DIR is fuzz/seeds): C-made messages to
DIR/ratchet_message (for the keys that crates/ratchet/src/fuzzing.rs `decrypt` uses, so that they
get past the session start) and C-made session states to DIR/ratchet_session.

`bench [MESSAGES]` times encrypt and decrypt per 100-byte message in the C library, in one
direction and with alternating senders, for comparison with `cargo bench -p sealkit-ratchet`
on the same machine.
"""
import binascii
import ctypes
import json
import os
import sys
import time
from ctypes import POINTER, Structure, byref, c_bool, c_byte, c_int, c_size_t, c_uint32, c_void_p

from virgil_crypto_lib.foundation import KeyProvider

LIBS = os.path.join(os.path.dirname(os.path.abspath(sys.modules["virgil_crypto_lib"].__file__)), "_libs")
common = ctypes.CDLL(os.path.join(LIBS, "libvsc_common.so"))
ratchet = ctypes.CDLL(os.path.join(LIBS, "libvsc_ratchet.so"))


class vsc_data_t(Structure):
    _fields_ = [("bytes", POINTER(c_byte)), ("len", c_size_t)]


class vscr_error_t(Structure):
    _fields_ = [("status", c_int)]


def fn(lib, name, restype, *argtypes):
    f = getattr(lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


vsc_buffer_new_with_capacity = fn(common, "vsc_buffer_new_with_capacity", c_void_p, c_size_t)
vsc_buffer_bytes = fn(common, "vsc_buffer_bytes", POINTER(c_byte), c_void_p)
vsc_buffer_len = fn(common, "vsc_buffer_len", c_size_t, c_void_p)
vsc_buffer_delete = fn(common, "vsc_buffer_delete", None, c_void_p)

session_new = fn(ratchet, "vscr_ratchet_session_new", c_void_p)
session_delete = fn(ratchet, "vscr_ratchet_session_delete", None, c_void_p)
session_setup_defaults = fn(ratchet, "vscr_ratchet_session_setup_defaults", c_int, c_void_p)
session_initiate = fn(
    ratchet, "vscr_ratchet_session_initiate", c_int,
    c_void_p, c_void_p, vsc_data_t, c_void_p, vsc_data_t, c_void_p, vsc_data_t, c_void_p, vsc_data_t, c_bool)
session_respond = fn(
    ratchet, "vscr_ratchet_session_respond", c_int,
    c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_void_p, c_bool)
session_encrypt = fn(ratchet, "vscr_ratchet_session_encrypt", c_void_p, c_void_p, vsc_data_t, POINTER(vscr_error_t))
session_decrypt_len = fn(ratchet, "vscr_ratchet_session_decrypt_len", c_size_t, c_void_p, c_void_p)
session_decrypt = fn(ratchet, "vscr_ratchet_session_decrypt", c_int, c_void_p, c_void_p, c_void_p)
session_serialize = fn(ratchet, "vscr_ratchet_session_serialize", c_void_p, c_void_p)
session_deserialize = fn(ratchet, "vscr_ratchet_session_deserialize", c_void_p, vsc_data_t, POINTER(vscr_error_t))

message_delete = fn(ratchet, "vscr_ratchet_message_delete", None, c_void_p)
message_serialize_len = fn(ratchet, "vscr_ratchet_message_serialize_len", c_size_t, c_void_p)
message_serialize = fn(ratchet, "vscr_ratchet_message_serialize", None, c_void_p, c_void_p)
message_deserialize = fn(ratchet, "vscr_ratchet_message_deserialize", c_void_p, vsc_data_t, POINTER(vscr_error_t))
message_get_type = fn(ratchet, "vscr_ratchet_message_get_type", c_int, c_void_p)
message_get_counter = fn(ratchet, "vscr_ratchet_message_get_counter", c_uint32, c_void_p)
MESSAGE_KEY_IDS = {
    name: fn(ratchet, "vscr_ratchet_message_get_" + name, vsc_data_t, c_void_p)
    for name in ("sender_identity_key_id", "receiver_identity_key_id", "receiver_long_term_key_id",
                 "receiver_one_time_key_id")
}
MSG_TYPE_PREKEY = 2  # vscr_msg_type_PREKEY (REGULAR is 1)

# PKCS#8 / SubjectPublicKeyInfo prefixes of raw 32-byte keys (RFC 8410), which the foundation
# KeyProvider imports as vscf_raw_private_key / vscf_raw_public_key, what the ratchet expects.
PKCS8 = {"ed25519": "302e020100300506032b657004220420", "x25519": "302e020100300506032b656e04220420"}
SPKI = {"ed25519": "302a300506032b6570032100", "x25519": "302a300506032b656e032100"}


class RatchetError(Exception):
    def __init__(self, what, status):
        super().__init__(what)
        self.status = status


def data(raw):
    """A vsc_data_t over `raw` (bytes); keeps the backing array alive on the struct."""
    array = (c_byte * len(raw)).from_buffer_copy(raw)
    d = vsc_data_t(ctypes.cast(array, POINTER(c_byte)), len(raw))
    d._keep = array
    return d


def data_bytes(d):
    return ctypes.string_at(d.bytes, d.len) if d.len else b""


def take_buffer(buf):
    """The bytes of a vsc_buffer_t*, which is then freed."""
    try:
        return ctypes.string_at(vsc_buffer_bytes(buf), vsc_buffer_len(buf))
    finally:
        vsc_buffer_delete(buf)


def check(status, what):
    if status != 0:
        raise RatchetError(what, status)


_provider = KeyProvider()
_provider.setup_defaults()


def private_key(alg, raw):
    return _provider.import_private_key(bytearray(binascii.unhexlify(PKCS8[alg]) + raw))


def public_key(alg, raw):
    return _provider.import_public_key(bytearray(binascii.unhexlify(SPKI[alg]) + raw))


def impl(key):
    return ctypes.cast(key.c_impl, c_void_p) if key is not None else None


def new_session():
    s = session_new()
    check(session_setup_defaults(s), "setup_defaults")
    return s


def initiate(sender_identity_private, sender_identity_key_id, receiver_identity_public,
             receiver_identity_key_id, receiver_long_term_public, receiver_long_term_key_id,
             receiver_one_time_public=None, receiver_one_time_key_id=None):
    keys = [
        private_key("ed25519", sender_identity_private),
        public_key("ed25519", receiver_identity_public),
        public_key("x25519", receiver_long_term_public),
        public_key("x25519", receiver_one_time_public) if receiver_one_time_public else None,
    ]
    s = new_session()
    status = session_initiate(
        s, impl(keys[0]), data(sender_identity_key_id), impl(keys[1]), data(receiver_identity_key_id),
        impl(keys[2]), data(receiver_long_term_key_id), impl(keys[3]), data(receiver_one_time_key_id or b""),
        False)
    if status != 0:
        session_delete(s)
    check(status, "initiate")
    return s


def parse_message(raw):
    err = vscr_error_t(0)
    m = message_deserialize(data(raw), byref(err))
    if not m:
        raise RatchetError("message_deserialize", err.status)
    return m


def respond(sender_identity_public, receiver_identity_private, receiver_long_term_private,
            receiver_one_time_private, message):
    keys = [
        public_key("ed25519", sender_identity_public),
        private_key("ed25519", receiver_identity_private),
        private_key("x25519", receiver_long_term_private),
        private_key("x25519", receiver_one_time_private) if receiver_one_time_private else None,
    ]
    m = parse_message(message)
    s = new_session()
    try:
        status = session_respond(s, impl(keys[0]), impl(keys[1]), impl(keys[2]), impl(keys[3]), m, False)
    finally:
        message_delete(m)
    if status != 0:
        session_delete(s)
    check(status, "respond")
    return s


def encrypt(s, plaintext):
    err = vscr_error_t(0)
    m = session_encrypt(s, data(plaintext), byref(err))
    if not m:
        raise RatchetError("encrypt", err.status)
    try:
        out = vsc_buffer_new_with_capacity(message_serialize_len(m))
        message_serialize(m, out)
        return take_buffer(out)
    finally:
        message_delete(m)


def decrypt(s, message):
    m = parse_message(message)
    try:
        out = vsc_buffer_new_with_capacity(session_decrypt_len(s, m))
        status = session_decrypt(s, m, out)
        plaintext = take_buffer(out)
    finally:
        message_delete(m)
    check(status, "decrypt")
    return plaintext


def serialize(s):
    return take_buffer(session_serialize(s))


def deserialize(state):
    err = vscr_error_t(0)
    s = session_deserialize(data(state), byref(err))
    if not s:
        raise RatchetError("session_deserialize", err.status)
    # A deserialized session has no random generator yet.
    status = session_setup_defaults(s)
    if status != 0:
        session_delete(s)
    check(status, "setup_defaults")
    return s


def message_info(raw):
    m = parse_message(raw)
    try:
        prekey = message_get_type(m) == MSG_TYPE_PREKEY
        info = {"type": "prekey" if prekey else "regular", "counter": message_get_counter(m)}
        if prekey:
            for name, getter in MESSAGE_KEY_IDS.items():
                value = data_bytes(getter(m))
                if value:
                    info[name] = value.hex()
        out = vsc_buffer_new_with_capacity(message_serialize_len(m))
        message_serialize(m, out)
        info["serialized"] = take_buffer(out).hex()
        return info
    finally:
        message_delete(m)


def unhex(request, key):
    value = request.get(key)
    return binascii.unhexlify(value) if value is not None else None


def serve():
    sessions = {}
    next_id = [0]

    def keep(s):
        next_id[0] += 1
        sessions[next_id[0]] = s
        return next_id[0]

    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        op = request.get("op")
        try:
            if op == "initiate":
                answer = {"session": keep(initiate(*(unhex(request, k) for k in (
                    "sender_identity_private", "sender_identity_key_id", "receiver_identity_public",
                    "receiver_identity_key_id", "receiver_long_term_public", "receiver_long_term_key_id",
                    "receiver_one_time_public", "receiver_one_time_key_id"))))}
            elif op == "respond":
                answer = {"session": keep(respond(*(unhex(request, k) for k in (
                    "sender_identity_public", "receiver_identity_private", "receiver_long_term_private",
                    "receiver_one_time_private", "message"))))}
            elif op == "encrypt":
                answer = {"message": encrypt(sessions[request["session"]], unhex(request, "plaintext")).hex()}
            elif op == "decrypt":
                answer = {"plaintext": decrypt(sessions[request["session"]], unhex(request, "message")).hex()}
            elif op == "serialize":
                answer = {"state": serialize(sessions[request["session"]]).hex()}
            elif op == "deserialize":
                answer = {"session": keep(deserialize(unhex(request, "state")))}
            elif op == "free":
                session_delete(sessions.pop(request["session"]))
                answer = {}
            elif op == "message_info":
                answer = message_info(unhex(request, "message"))
            else:
                answer = {"error": "unknown op %r" % op, "status": 0}
        except RatchetError as e:
            answer = {"error": str(e), "status": e.status}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


def bench(messages):
    """Per-message encrypt and decrypt times of the C library, in microseconds: one direction
    (same chain) and alternating directions (a DH ratchet step each message)."""
    seeds = [bytes([i]) * 32 for i in (1, 2, 3)]
    export = _provider.export_public_key
    alice_pub = bytes(export(private_key("ed25519", seeds[0]).extract_public_key())[-32:])
    bob_pub = bytes(export(private_key("ed25519", seeds[1]).extract_public_key())[-32:])
    long_term_pub = bytes(export(private_key("x25519", seeds[2]).extract_public_key())[-32:])
    alice = initiate(seeds[0], b"a" * 8, bob_pub, b"b" * 8, long_term_pub, b"l" * 8)
    first = encrypt(alice, b"hello")
    bob = respond(alice_pub, seeds[1], seeds[2], None, first)
    decrypt(bob, first)
    decrypt(alice, encrypt(bob, b"hi"))
    plaintext = os.urandom(100)
    result = {"library": "libvsc_ratchet 0.23.1 via ctypes (includes Python call overhead)",
              "messages": messages}
    for mode in ("same_chain", "alternating"):
        enc = dec = 0.0
        for i in range(messages):
            sender, receiver = (alice, bob) if mode == "same_chain" or i % 2 == 0 else (bob, alice)
            t0 = time.perf_counter()
            message = encrypt(sender, plaintext)
            t1 = time.perf_counter()
            decrypt(receiver, message)
            t2 = time.perf_counter()
            enc += t1 - t0
            dec += t2 - t1
        result[mode] = {"encrypt_us": round(enc / messages * 1e6, 1), "decrypt_us": round(dec / messages * 1e6, 1)}
    print(json.dumps(result))


def write_seeds(root):
    """Fuzz seeds made by the C library (see the module docs)."""
    def ed25519_public(seed):
        return bytes(_provider.export_public_key(private_key("ed25519", seed).extract_public_key())[-32:])

    def x25519_public(raw):
        return bytes(_provider.export_public_key(private_key("x25519", raw).extract_public_key())[-32:])

    # The fixed keys of sealkit_ratchet::fuzzing::decrypt.
    alice_seed, bob_seed, long_term, one_time = (bytes([i]) * 32 for i in (1, 2, 3, 4))
    alice_pub, bob_pub = ed25519_public(alice_seed), ed25519_public(bob_seed)
    ids = [bytes([i]) * 8 for i in (1, 2, 3, 4)]
    messages, sessions = {}, {}
    alice = initiate(alice_seed, ids[0], bob_pub, ids[1], x25519_public(long_term), ids[2],
                     x25519_public(one_time), ids[3])
    messages["c-prekey-one-time"] = encrypt(alice, b"first")
    messages["c-prekey-second"] = encrypt(alice, b"second" * 40)
    sessions["c-initiator-pending"] = serialize(alice)
    bob = respond(alice_pub, bob_seed, long_term, one_time, messages["c-prekey-second"])
    sessions["c-responder-new"] = serialize(bob)
    decrypt(bob, messages["c-prekey-second"])
    messages["c-regular-reply"] = encrypt(bob, b"reply")
    decrypt(alice, messages["c-regular-reply"])
    messages["c-regular-second-chain"] = encrypt(alice, b"")
    encrypt(alice, b"skipped")
    messages["c-regular-after-gap"] = encrypt(alice, b"x" * 300)
    decrypt(bob, messages["c-regular-after-gap"])
    sessions["c-responder-with-skipped-keys"] = serialize(bob)
    sessions["c-initiator-established"] = serialize(alice)
    no_one_time = initiate(alice_seed, ids[0], bob_pub, ids[1], x25519_public(long_term), ids[2])
    messages["c-prekey-no-one-time"] = encrypt(no_one_time, b"no one-time key")
    for sub, items in (("ratchet_message", messages), ("ratchet_session", sessions)):
        os.makedirs(os.path.join(root, sub), exist_ok=True)
        for name, value in items.items():
            with open(os.path.join(root, sub, name + ".bin"), "wb") as fh:
                fh.write(value)


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "stdio":
        serve()
    elif len(sys.argv) == 3 and sys.argv[1] == "seeds":
        write_seeds(sys.argv[2])
    elif len(sys.argv) >= 2 and sys.argv[1] == "bench":
        bench(int(sys.argv[2]) if len(sys.argv) > 2 else 2000)
    else:
        sys.exit(__doc__)
