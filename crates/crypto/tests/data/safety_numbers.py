#!/usr/bin/env python3
"""Independent implementation of Sealkit's safety numbers (docs/key-transparency.md, section
"Safety numbers"), used as the oracle for safety_numbers.json. Only the standard library: the keys
come from keys.json (real virgil-crypto 5.1.2 keys) as SubjectPublicKeyInfo DER, and the raw key
is the content of the SPKI's BIT STRING.

Run from this directory: python3 safety_numbers.py > safety_numbers.json
"""
import hashlib
import json

VERSION = 1
ITERATIONS = 5200
# The algorithm OID at the start of each supported SPKI, and the type byte and raw length.
TYPES = [
    (bytes.fromhex("300506032b6570"), 1, 32),  # Ed25519
    (bytes.fromhex("300506032b656e"), 2, 32),  # X25519
    (bytes.fromhex("301306072a8648ce3d020106082a8648ce3d030107"), 3, 65),  # P-256
]


def raw_key(spki: bytes):
    for algorithm, tag, length in TYPES:
        # SEQUENCE(len) || AlgorithmIdentifier || BIT STRING(len, 0 unused bits) || raw
        if spki[2 : 2 + len(algorithm)] == algorithm:
            raw = spki[-length:]
            assert spki[-length - 1] == 0 and len(spki) == 2 + len(algorithm) + 3 + length
            return tag, raw
    raise ValueError("unsupported key")


def encode_keys(spkis):
    encoded = sorted({bytes([t]) + len(r).to_bytes(2, "big") + r for t, r in map(raw_key, spkis)})
    return len(encoded).to_bytes(2, "big") + b"".join(encoded)


def half(identity: str, spkis) -> str:
    keys = encode_keys(spkis)
    ident = identity.encode("utf-8")
    h = VERSION.to_bytes(2, "big") + len(ident).to_bytes(2, "big") + ident + keys
    for _ in range(ITERATIONS):
        h = hashlib.sha512(h + keys).digest()
    return "".join("%05d" % (int.from_bytes(h[i : i + 5], "big") % 100000) for i in range(0, 30, 5))


def main():
    with open("keys.json") as f:
        keys = {k["name"]: k["public_key_der"] for k in json.load(f)["keys"]}
    cases = [
        ("two Ed25519 users", "alice", ["alice"], "bob", ["bob"]),
        ("Ed25519 and P-256", "alice", ["alice"], "erin", ["erin"]),
        ("X25519, unicode identity", "zoë@example.com", ["dave"], "carol", ["carol"]),
        # Two current cards (e.g. during a rotation by another client): both keys count, sorted.
        ("two keys on one side, given unsorted", "bob", ["carol", "bob"], "alice", ["alice"]),
        ("same keys, other identity", "mallory", ["alice"], "bob", ["bob"]),
    ]
    vectors = []
    for name, li, lk, ri, rk in cases:
        local = half(li, [bytes.fromhex(keys[k]) for k in lk])
        remote = half(ri, [bytes.fromhex(keys[k]) for k in rk])
        number = min(local, remote) + max(local, remote)
        vectors.append(
            {
                "name": name,
                "local_identity": li,
                "local_keys": [keys[k] for k in lk],
                "remote_identity": ri,
                "remote_keys": [keys[k] for k in rk],
                "local_half": local,
                "remote_half": remote,
                "safety_number": number,
                "grouped": " ".join(number[i : i + 5] for i in range(0, 60, 5)),
            }
        )
    doc = {
        "description": "Sealkit safety numbers (docs/key-transparency.md, 'Safety numbers'), made by "
        "safety_numbers.py (Python hashlib, independent of the Rust code) from the keys of keys.json. "
        "Keys are SubjectPublicKeyInfo DER in hex.",
        "version": VERSION,
        "iterations": ITERATIONS,
        "vectors": vectors,
    }
    print(json.dumps(doc, indent=1, ensure_ascii=False))


if __name__ == "__main__":
    main()
