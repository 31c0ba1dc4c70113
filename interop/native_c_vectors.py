"""Makes messages with Virgil's native C library (PyPI virgil-crypto 5.0.1 on virgil-crypto-lib
0.23.x) for Sealkit's tests: crates/crypto/tests/data/native_c_0_23.json.

That build wraps the content key with AES-256-GCM inside the ECIES envelope where the JS builds use
AES-256-CBC, so its messages exercise the second envelope form.

Run with the benchmark's virtualenv (bench/compare creates it):
    bench/.venv/bin/python interop/native_c_vectors.py
"""
import binascii
import json
import os
import sys

from virgil_crypto import VirgilCrypto

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "crates", "crypto", "tests", "data")


def main():
    crypto = VirgilCrypto()
    keys = {k["name"]: k for k in json.load(open(os.path.join(DATA, "keys.json")))["keys"]}

    def pair(name):
        return crypto.import_private_key(bytearray(binascii.unhexlify(keys[name]["private_key_der"])))

    alice = pair("alice")
    vectors = []
    for name in ["bob", "dave", "erin"]:
        kp = pair(name)
        plaintext = ("native virgil-crypto-c message for %s" % name).encode()
        ct = bytes(crypto.encrypt(bytearray(plaintext), kp.public_key))
        assert bytes(crypto.decrypt(bytearray(ct), kp.private_key)) == plaintext
        vectors.append({"name": "native_encrypt_" + name, "mode": "encrypt", "recipients": [name],
                        "plaintext_hex": plaintext.hex(), "ciphertext_hex": ct.hex()})
    bob = pair("bob")
    plaintext = b"native sign_and_encrypt (sign-then-encrypt format) alice -> bob"
    ct = bytes(crypto.sign_and_encrypt(bytearray(plaintext), alice.private_key, bob.public_key))
    vectors.append({"name": "native_ste_alice_to_bob", "mode": "ste", "signer": "alice",
                    "recipients": ["bob"], "padding": False,
                    "plaintext_hex": plaintext.hex(), "ciphertext_hex": ct.hex()})
    import importlib.metadata as md
    doc = {
        "description": "Messages made by Virgil's native C library through its Python SDK. The ECIES key "
                       "wrap uses AES-256-GCM (222-byte envelope) instead of AES-256-CBC.",
        "library": {"virgil-crypto": md.version("virgil-crypto"),
                    "virgil-crypto-lib": md.version("virgil-crypto-lib")},
        "generated_by": "interop/native_c_vectors.py",
        "vectors": vectors,
    }
    with open(os.path.join(DATA, "native_c_0_23.json"), "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    print("wrote", len(vectors), "vectors", file=sys.stderr)


if __name__ == "__main__":
    main()
