"""Side by side: Sealkit's Rust and Virgil's C library (virgil-crypto-lib 0.23.1) on the two
protocols of today's mobile e3kit, in one run on one machine. Prints a Markdown table with the
time per operation of each and the ratio (C time / Rust time: above 1 means Rust is faster).

    cargo build --release -p sealkit-ratchet --example bench_ratchet \\
        -p sealkit-pythia --example bench_brainkey_v3
    interop/python/.venv/bin/python interop/python/bench_mobile_v3.py [--target-dir DIR]

* brainkey v3: the server's transform once the identity secret is known (harden, public key,
  DLEQ proof) and the client's blind, then verify + deblind;
* double ratchet: encrypt and decrypt of a 100-byte message in one direction, and with
  alternating senders (a DH ratchet step each message).

The C library is called through Python (its own wrapper for brainkey, ctypes for the ratchet), so
its times include the Python call overhead: a few microseconds per call, which matters for the
ratchet's short operations and not for the brainkey's. The Rust binaries run one after the other,
never beside the C measurements.
"""
import argparse
import json
import os
import subprocess
import sys
import time

from virgil_crypto_lib.foundation import BrainkeyClient, BrainkeyServer

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def per_op(fn, seconds):
    """Microseconds per call of fn, run for about `seconds` after one warm-up call."""
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    return round((time.perf_counter() - start) / n * 1e6, 1)


def c_brainkey(seconds):
    server = BrainkeyServer()
    server.setup_defaults()
    client = BrainkeyClient()
    client.setup_defaults()
    password = bytearray(b"correct horse battery staple")
    secret = server.generate_identity_secret()
    factor, blinded = client.blind(password)

    def transform():
        hardened = server.harden(secret, blinded)
        public_key = server.compute_public_key(secret)
        return server.prove(blinded, hardened, secret, public_key)

    result = {"server_transform_us": per_op(transform, seconds),
              "client_blind_us": per_op(lambda: client.blind(password), seconds)}
    hardened = server.harden(secret, blinded)
    public_key = server.compute_public_key(secret)
    _, c, s = server.prove(blinded, hardened, secret, public_key)
    # A fresh client verifies: see ../shared/spec/e3kit-mobile-v3.md on verify after blind.
    verifier = BrainkeyClient()
    verifier.setup_defaults()

    def finish():
        verifier.verify(blinded, hardened, public_key, c, s)
        return client.deblind(password, hardened, factor, bytearray(b"e3kit-backup"))

    result["client_verify_deblind_us"] = per_op(finish, seconds)
    return result


def c_ratchet(messages):
    """The C library's per-message times, from ratchet.py's own benchmark."""
    out = subprocess.run([sys.executable, os.path.join(REPO, "interop/python/ratchet.py"),
                          "bench", str(messages)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def rust(target_dir, example, *args):
    binary = os.path.join(target_dir, "release", "examples", example)
    if not os.path.exists(binary):
        sys.exit("%s is missing: build it first (see this script's docs)" % binary)
    out = subprocess.run([binary, *args], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--target-dir",
                        default=os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")))
    parser.add_argument("--seconds", type=float, default=2.0, help="per brainkey operation")
    parser.add_argument("--messages", type=int, default=5000, help="per ratchet mode")
    args = parser.parse_args()

    rows = []
    rust_bk = rust(args.target_dir, "bench_brainkey_v3", str(args.seconds))
    c_bk = c_brainkey(args.seconds)
    for key, label in (("server_transform_us", "brainkey v3 server: harden + public key + prove"),
                       ("client_blind_us", "brainkey v3 client: blind"),
                       ("client_verify_deblind_us", "brainkey v3 client: verify + deblind")):
        rows.append((label, rust_bk[key], c_bk[key]))
    rust_r = rust(args.target_dir, "bench_ratchet", str(args.messages))
    c_r = c_ratchet(args.messages)
    for mode, text in (("same_chain", "one direction"), ("alternating", "alternating senders")):
        for op in ("encrypt", "decrypt"):
            rows.append(("ratchet %s, 100 B, %s" % (op, text),
                         rust_r[mode][op + "_us"], c_r[mode][op + "_us"]))

    print("| operation | Sealkit (Rust) µs | Virgil C (via Python) µs | C / Rust |")
    print("|---|---:|---:|---:|")
    for label, rust_us, c_us in rows:
        print("| %s | %.1f | %.1f | %.2fx |" % (label, rust_us, c_us, c_us / rust_us))


if __name__ == "__main__":
    main()
