#!/usr/bin/env python3
"""Benchmark Virgil's native C library (virgil-crypto-c "foundation") as shipped on PyPI.

The PyPI package `virgil-crypto` 5.0.1 (Virgil's Python SDK) depends on `virgil-crypto-lib`, whose wheel
contains the compiled C libraries (libvsc_foundation.so, libvsc_common.so) plus a ctypes wrapper.

What is measured, and why not through the SDK's high-level API:

* The SDK's high-level calls spend most of their time in Python, not in C: every wrapper object re-creates
  `LowLevelLibs()` (four `CDLL(...)` loads) and re-declares ctypes prototypes on every call, and input
  bytes are copied into C arrays element by element (`(c_byte * n)(*data)`). That costs ~0.5-0.9 ms per
  small operation and ~0.12 s per MiB of data, which would swamp the C code being compared.
* `VirgilCrypto.sign_and_encrypt` of the Python SDK 5.0.1 is *not* the JS `signAndEncrypt`: it produces
  the older signThenEncrypt format (signature in the message-info custom params) without padding.

So this script binds the foundation library's C functions directly with ctypes (prototypes declared once,
zero-copy input/output buffers) and performs exactly the call sequences that the JS SDK virgil-crypto
5.1.2 performs (`signAndEncrypt` with RandomPadding 160/160 + footer signer info, `decryptAndVerify`,
`encrypt`/`decrypt`, `generateKeys`, `calculateSignature`/`verifySignature`). The remaining ctypes call
overhead is ~0.3-1 us per C call (a few dozen calls per operation; ~200 for 100 recipients).

`--sdk` additionally measures a few operations through the SDK's high-level API (impl "virgil-py-sdk")
to show that wrapper overhead.

Output: JSON lines on stdout, {"impl":"virgil-c","op":...,"ns_per_op":...}; progress on stderr.
"""

import argparse
import ctypes
import json
import os
import statistics
import sys
import time
from ctypes import POINTER, Structure, byref, c_bool, c_char, c_int, c_size_t, c_void_p

IMPL = "virgil-c"
KIB = 1024
MIB = 1024 * 1024
ALG_ID_ED25519 = 8  # vscf_alg_id_ED25519 (virgil_crypto_lib.foundation.AlgId.ED25519)
PADDING_LEN = 160  # JS PADDING_LEN: PaddingParams.newWithConstraints(160, 160)


def log(msg):
    sys.stderr.write("[virgil-c] %s\n" % msg)
    sys.stderr.flush()


class VscData(Structure):
    """vsc_data_t, passed by value: { const byte *bytes; size_t len; }"""

    _fields_ = [("bytes", c_void_p), ("len", c_size_t)]


class VscfError(Structure):
    _fields_ = [("status", c_int)]


class Foundation:
    """Direct ctypes bindings of the libvsc_foundation functions used by the JS SDK's operations."""

    def __init__(self):
        # Load the very library object the package uses (its own lookup also resolves the bundled
        # libvsc_common dependency); vsc_* symbols are resolved through the foundation handle, so they come
        # from the same libvsc_common copy that foundation itself links against.
        from virgil_crypto_lib._libs import LowLevelLibs

        self.lib = LowLevelLibs().foundation
        P = c_void_p  # every context / impl pointer is opaque here
        D = VscData
        sig = {
            # common
            "vsc_buffer_new": (P,),
            "vsc_buffer_use": (None, P, P, c_size_t),
            "vsc_buffer_len": (c_size_t, P),
            "vsc_buffer_delete": (None, P),
            # random, keys, hash
            "vscf_ctr_drbg_new": (P,),
            "vscf_ctr_drbg_setup_defaults": (c_int, P),
            "vscf_key_provider_new": (P,),
            "vscf_key_provider_use_random": (None, P, P),
            "vscf_key_provider_setup_defaults": (c_int, P),
            "vscf_key_provider_generate_private_key": (P, P, c_int, POINTER(VscfError)),
            "vscf_key_provider_exported_public_key_len": (c_size_t, P, P),
            "vscf_key_provider_export_public_key": (c_int, P, P, P),
            "vscf_private_key_extract_public_key": (P, P),
            "vscf_impl_delete": (None, P),
            "vscf_sha512_new": (P,),
            "vscf_sha512_delete": (None, P),
            "vscf_sha512_hash": (None, D, P),
            # signer / verifier
            "vscf_signer_new": (P,),
            "vscf_signer_delete": (None, P),
            "vscf_signer_use_hash": (None, P, P),
            "vscf_signer_use_random": (None, P, P),
            "vscf_signer_reset": (None, P),
            "vscf_signer_append_data": (None, P, D),
            "vscf_signer_signature_len": (c_size_t, P, P),
            "vscf_signer_sign": (c_int, P, P, P),
            "vscf_verifier_new": (P,),
            "vscf_verifier_delete": (None, P),
            "vscf_verifier_reset": (c_int, P, D),
            "vscf_verifier_append_data": (None, P, D),
            "vscf_verifier_verify": (c_bool, P, P),
            # recipient cipher and its helpers
            "vscf_aes256_gcm_new": (P,),
            "vscf_aes256_gcm_delete": (None, P),
            "vscf_random_padding_new": (P,),
            "vscf_random_padding_delete": (None, P),
            "vscf_random_padding_use_random": (None, P, P),
            "vscf_padding_params_new_with_constraints": (P, c_size_t, c_size_t),
            "vscf_padding_params_delete": (None, P),
            "vscf_recipient_cipher_new": (P,),
            "vscf_recipient_cipher_delete": (None, P),
            "vscf_recipient_cipher_use_random": (None, P, P),
            "vscf_recipient_cipher_use_encryption_cipher": (None, P, P),
            "vscf_recipient_cipher_use_encryption_padding": (None, P, P),
            "vscf_recipient_cipher_use_padding_params": (None, P, P),
            "vscf_recipient_cipher_release_padding_params": (None, P),
            "vscf_recipient_cipher_use_signer_hash": (None, P, P),
            "vscf_recipient_cipher_add_key_recipient": (None, P, D, P),
            "vscf_recipient_cipher_add_signer": (c_int, P, D, P),
            "vscf_recipient_cipher_start_encryption": (c_int, P),
            "vscf_recipient_cipher_start_signed_encryption": (c_int, P, c_size_t),
            "vscf_recipient_cipher_message_info_len": (c_size_t, P),
            "vscf_recipient_cipher_pack_message_info": (None, P, P),
            "vscf_recipient_cipher_encryption_out_len": (c_size_t, P, c_size_t),
            "vscf_recipient_cipher_process_encryption": (c_int, P, D, P),
            "vscf_recipient_cipher_finish_encryption": (c_int, P, P),
            "vscf_recipient_cipher_message_info_footer_len": (c_size_t, P),
            "vscf_recipient_cipher_pack_message_info_footer": (c_int, P, P),
            "vscf_recipient_cipher_start_decryption_with_key": (c_int, P, D, P, D),
            "vscf_recipient_cipher_decryption_out_len": (c_size_t, P, c_size_t),
            "vscf_recipient_cipher_process_decryption": (c_int, P, D, P),
            "vscf_recipient_cipher_finish_decryption": (c_int, P, P),
            "vscf_recipient_cipher_is_data_signed": (c_bool, P),
            "vscf_recipient_cipher_signer_infos": (P, P),
            "vscf_recipient_cipher_verify_signer_info": (c_bool, P, P, P),
            "vscf_signer_info_list_has_item": (c_bool, P),
            "vscf_signer_info_list_item": (P, P),
            "vscf_signer_info_signer_id": (D, P),
        }
        for name, (res, *args) in sig.items():
            f = getattr(self.lib, name)
            f.restype = res
            f.argtypes = list(args)
            setattr(self, name[4:] if name.startswith("vsc_") else name[5:], f)
        # Global instances, as in the JS SDK (getRandom() / getKeyProvider()).
        self.rng = self.ctr_drbg_new()
        ok(self.ctr_drbg_setup_defaults(self.rng), "ctr_drbg_setup_defaults")
        self.key_provider = self.key_provider_new()
        self.key_provider_use_random(self.key_provider, self.rng)
        ok(self.key_provider_setup_defaults(self.key_provider), "key_provider_setup_defaults")

    # ------------------------------------------------------------------------------------- helpers
    @staticmethod
    def data(buf):
        """vsc_data_t over a bytes / bytearray without copying (the caller keeps `buf` alive)."""
        n = len(buf)
        if n == 0:
            return VscData(None, 0)
        if isinstance(buf, bytes):
            return VscData(ctypes.cast(ctypes.c_char_p(buf), c_void_p).value, n)
        return VscData(ctypes.addressof((c_char * n).from_buffer(buf)), n)

    class Out:
        """An output area: consecutive vsc_buffer_t views into one preallocated bytearray."""

        def __init__(self, f, capacity):
            self.f = f
            self.buf = bytearray(capacity)
            self.used = 0
            self._export()

        def _export(self):
            self.cap = len(self.buf)
            self.arr = (c_char * self.cap).from_buffer(self.buf) if self.cap else None
            self.base = ctypes.addressof(self.arr) if self.cap else 0

        def write(self, call, want):
            """call(vsc_buffer_t*) may write up to `want` bytes at the current end (grows if needed)."""
            if self.used + want > self.cap:
                self.arr = None  # drop the export so that the bytearray may be resized
                self.buf.extend(bytes(self.used + want - self.cap))
                self._export()
            vb = self.f.buffer_new()
            try:
                self.f.buffer_use(vb, self.base + self.used, want)
                r = call(vb)
                self.used += self.f.buffer_len(vb)
            finally:
                self.f.buffer_delete(vb)
            return r

        def result(self):
            self.arr = None  # release the export so the bytearray can shrink
            del self.buf[self.used:]
            return self.buf

    # ---------------------------------------------------------------------------------- operations
    def set_padding_params(self, rc, params):
        # Like the JS property setter: release whatever is set (this C build installs default params in
        # vscf_recipient_cipher_new, and `use` asserts that none are set), then use ours.
        self.recipient_cipher_release_padding_params(rc)
        self.recipient_cipher_use_padding_params(rc, params)

    def key_id(self, public_key):
        """JS calculateKeyPairIdentifier: SHA-512(exported SPKI)[0..8]."""
        n = self.key_provider_exported_public_key_len(self.key_provider, public_key)
        spki = self.Out(self, n)
        spki.write(lambda vb: ok(self.key_provider_export_public_key(self.key_provider, public_key, vb),
                                 "export_public_key"), n)
        spki = spki.result()
        digest = self.Out(self, 64)
        digest.write(lambda vb: self.sha512_hash(self.data(spki), vb), 64)
        return bytes(digest.result()[:8])

    def generate_keys(self):
        """JS generateKeys() (Ed25519): returns (private impl, public impl, 8-byte id)."""
        err = VscfError(0)
        priv = self.key_provider_generate_private_key(self.key_provider, ALG_ID_ED25519, byref(err))
        ok(err.status, "generate_private_key")
        pub = self.private_key_extract_public_key(priv)
        return priv, pub, self.key_id(pub)

    def free_keys(self, keys):
        self.impl_delete(keys[0])
        self.impl_delete(keys[1])

    def sign(self, data, priv):
        """JS calculateSignature: Signer(SHA-512) -> VirgilSignature DER."""
        signer = self.signer_new()
        sha = self.sha512_new()
        try:
            self.signer_use_random(signer, self.rng)
            self.signer_use_hash(signer, sha)
            self.signer_reset(signer)
            self.signer_append_data(signer, self.data(data))
            n = self.signer_signature_len(signer, priv)
            out = self.Out(self, n)
            out.write(lambda vb: ok(self.signer_sign(signer, priv, vb), "signer_sign"), n)
            return out.result()
        finally:
            self.signer_delete(signer)
            self.sha512_delete(sha)

    def verify(self, data, signature, pub):
        verifier = self.verifier_new()
        try:
            ok(self.verifier_reset(verifier, self.data(signature)), "verifier_reset")
            self.verifier_append_data(verifier, self.data(data))
            return bool(self.verifier_verify(verifier, pub))
        finally:
            self.verifier_delete(verifier)

    def _encrypt(self, data, recipients, signer=None, padding=False):
        """JS encrypt (signer None) / _signAndEncrypt (signer = (priv, id)) with optional RandomPadding."""
        rc = self.recipient_cipher_new()
        aes = self.aes256_gcm_new()
        sha = self.sha512_new() if signer else None
        pad = params = None
        try:
            self.recipient_cipher_use_encryption_cipher(rc, aes)
            self.recipient_cipher_use_random(rc, self.rng)
            if sha:
                self.recipient_cipher_use_signer_hash(rc, sha)
            if padding:
                pad = self.random_padding_new()
                self.random_padding_use_random(pad, self.rng)
                self.recipient_cipher_use_encryption_padding(rc, pad)
                params = self.padding_params_new_with_constraints(PADDING_LEN, PADDING_LEN)
                self.set_padding_params(rc, params)
            for pub, rid in recipients:
                self.recipient_cipher_add_key_recipient(rc, self.data(rid), pub)
            if signer:
                ok(self.recipient_cipher_add_signer(rc, self.data(signer[1]), signer[0]), "add_signer")
                ok(self.recipient_cipher_start_signed_encryption(rc, len(data)), "start_signed_encryption")
            else:
                ok(self.recipient_cipher_start_encryption(rc), "start_encryption")
            info_len = self.recipient_cipher_message_info_len(rc)
            body_len = self.recipient_cipher_encryption_out_len(rc, len(data))
            # body_len is an upper bound that already covers the GCM tag / padding; the extra room is
            # for the footer, so the buffer normally never grows.
            out = self.Out(self, info_len + body_len + (512 if signer else 64))
            out.write(lambda vb: self.recipient_cipher_pack_message_info(rc, vb), info_len)
            out.write(lambda vb: ok(self.recipient_cipher_process_encryption(rc, self.data(data), vb),
                                    "process_encryption"), body_len)
            tail_len = self.recipient_cipher_encryption_out_len(rc, 0)
            out.write(lambda vb: ok(self.recipient_cipher_finish_encryption(rc, vb), "finish_encryption"), tail_len)
            if signer:
                footer_len = self.recipient_cipher_message_info_footer_len(rc)
                out.write(lambda vb: ok(self.recipient_cipher_pack_message_info_footer(rc, vb),
                                        "pack_message_info_footer"), footer_len)
            return out.result()
        finally:
            self.recipient_cipher_delete(rc)
            self.aes256_gcm_delete(aes)
            if sha:
                self.sha512_delete(sha)
            if pad:
                self.random_padding_delete(pad)
            if params:
                self.padding_params_delete(params)

    def encrypt(self, data, recipients):
        return self._encrypt(data, recipients)

    def sign_and_encrypt(self, data, signer, recipients, padding=True):
        return self._encrypt(data, recipients, signer=signer, padding=padding)

    def _decrypt(self, data, priv, rid, verify_with=None):
        """JS decrypt (verify_with None) / _decryptAndVerify (verify_with = (pub, id))."""
        rc = self.recipient_cipher_new()
        params = self.padding_params_new_with_constraints(PADDING_LEN, PADDING_LEN)
        try:
            self.recipient_cipher_use_random(rc, self.rng)
            self.set_padding_params(rc, params)
            ok(self.recipient_cipher_start_decryption_with_key(rc, self.data(rid), priv, VscData(None, 0)),
               "start_decryption_with_key")
            body_len = self.recipient_cipher_decryption_out_len(rc, len(data))
            out = self.Out(self, body_len + 64)
            out.write(lambda vb: ok(self.recipient_cipher_process_decryption(rc, self.data(data), vb),
                                    "process_decryption"), body_len)
            tail_len = self.recipient_cipher_decryption_out_len(rc, 0)
            out.write(lambda vb: ok(self.recipient_cipher_finish_decryption(rc, vb), "finish_decryption"), tail_len)
            plain = out.result()
            if verify_with is not None:
                if not self.recipient_cipher_is_data_signed(rc):
                    raise RuntimeError("data not signed")
                infos = self.recipient_cipher_signer_infos(rc)
                if not self.signer_info_list_has_item(infos):
                    raise RuntimeError("data not signed")
                info = self.signer_info_list_item(infos)
                sid = self.signer_info_signer_id(info)
                if ctypes.string_at(sid.bytes, sid.len) != verify_with[1]:
                    raise RuntimeError("signer not found")
                if not self.recipient_cipher_verify_signer_info(rc, info, verify_with[0]):
                    raise RuntimeError("invalid signature")
            return plain
        finally:
            self.recipient_cipher_delete(rc)
            self.padding_params_delete(params)

    def decrypt(self, data, priv, rid):
        return self._decrypt(data, priv, rid)

    def decrypt_and_verify(self, data, priv, rid, signer_pub, signer_id):
        return self._decrypt(data, priv, rid, verify_with=(signer_pub, signer_id))


def ok(status, what):
    if status != 0:
        raise RuntimeError("%s failed with vscf status %d" % (what, status))
    return status


# ------------------------------------------------------------------------------------------- timing
class Bencher:
    def __init__(self, impl, target_s, quick, only):
        self.impl = impl
        self.target_s = target_s
        self.warmup_s = min(0.25, target_s / 4)
        self.min_iters = 3 if quick else 5
        self.max_iters = 1_000_000
        self.only = only

    def wanted(self, op):
        return not self.only or op in self.only

    def run(self, op, fn, min_iters=None, **extra):
        if not self.wanted(op):
            return
        now = time.perf_counter_ns
        n = 0
        t0 = now()
        while True:
            fn()
            n += 1
            el = (now() - t0) / 1e9
            if el >= self.warmup_s or n >= self.max_iters:
                break
        est = el / n
        iters = max(min_iters or self.min_iters, min(self.max_iters, int(self.target_s / est + 0.999)))
        batches = min(5, iters)
        per = []
        done = 0
        for b in range(batches):
            k = iters // batches + (1 if b < iters % batches else 0)
            t = now()
            for _ in range(k):
                fn()
            per.append((now() - t) / k)
            done += k
        line = {"impl": self.impl, "op": op, "ns_per_op": round(statistics.median(per), 1),
                "iters": done, "ns_min": round(min(per), 1)}
        line.update(extra)
        print(json.dumps(line), flush=True)
        log("%s%s: %.1f us/op (%d iters)" % ("" if self.impl == IMPL else self.impl + " ", op,
                                            line["ns_per_op"] / 1e3, done))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="short run, 4 MiB bulk payload")
    ap.add_argument("--ops", help="comma-separated subset of ops")
    ap.add_argument("--target-seconds", type=float, help="measuring time per op (default 1.0, quick 0.15)")
    ap.add_argument("--sdk", action="store_true",
                    help="also time a few ops through the SDK's high-level API (impl virgil-py-sdk)")
    args = ap.parse_args()
    only = set(args.ops.split(",")) if args.ops else None
    target = args.target_seconds or (0.15 if args.quick else 1.0)
    bulk_bytes = 4 * MIB if args.quick else 64 * MIB

    try:
        import importlib
        from importlib.metadata import version

        importlib.import_module("virgil_crypto")  # the SDK itself must be importable too

        versions = "virgil-crypto %s, virgil-crypto-lib %s" % (version("virgil-crypto"), version("virgil-crypto-lib"))
        f = Foundation()
    except Exception as e:  # noqa: BLE001
        log("cannot load the Virgil C library: %s" % e)
        return 1
    log("%s; python %s; bulk %d bytes%s" % (versions, sys.version.split()[0], bulk_bytes,
                                            " (quick)" if args.quick else ""))
    b = Bencher(IMPL, target, args.quick, only)

    alice = f.generate_keys()
    bob = f.generate_keys()
    many = [f.generate_keys() for _ in range(100)]
    last = many[-1]
    msg = os.urandom(KIB)

    b.run("keygen_ed25519", lambda: f.free_keys(f.generate_keys()))

    sig = f.sign(msg, alice[0])
    assert f.verify(msg, sig, alice[1]), "verify self-check"

    def verify_once():
        if not f.verify(msg, sig, alice[1]):
            raise RuntimeError("bad signature")

    b.run("sign_1k", lambda: f.sign(msg, alice[0]))
    b.run("verify_1k", verify_once)

    signer = (alice[0], alice[2])
    bob_r = [(bob[1], bob[2])]
    many_r = [(k[1], k[2]) for k in many]
    ct1 = f.sign_and_encrypt(msg, signer, bob_r, padding=True)
    assert f.decrypt_and_verify(ct1, bob[0], bob[2], alice[1], alice[2]) == msg, "auth 1r self-check"
    b.run("auth_encrypt_1k_1r", lambda: f.sign_and_encrypt(msg, signer, bob_r, padding=True),
          bytes=KIB, recipients=1)
    b.run("auth_decrypt_1k_1r", lambda: f.decrypt_and_verify(ct1, bob[0], bob[2], alice[1], alice[2]),
          bytes=KIB, recipients=1)

    ct100 = f.sign_and_encrypt(msg, signer, many_r, padding=True)
    assert f.decrypt_and_verify(ct100, last[0], last[2], alice[1], alice[2]) == msg, "auth 100r self-check"
    b.run("auth_encrypt_1k_100r", lambda: f.sign_and_encrypt(msg, signer, many_r, padding=True),
          bytes=KIB, recipients=100)
    b.run("auth_decrypt_1k_100r", lambda: f.decrypt_and_verify(ct100, last[0], last[2], alice[1], alice[2]),
          bytes=KIB, recipients=100, note="decrypting as the last of the 100 recipients")

    if b.wanted("bulk_encrypt_64m") or b.wanted("bulk_decrypt_64m"):
        big = os.urandom(bulk_bytes)
        big_ct = f.encrypt(big, bob_r)
        assert f.decrypt(big_ct, bob[0], bob[2]) == big, "bulk self-check"
        note = "one-shot encrypt/decrypt, zero-copy buffers"
        if args.quick:
            note += "; quick: %d MiB instead of 64 MiB" % (bulk_bytes // MIB)
        b.run("bulk_encrypt_64m", lambda: f.encrypt(big, bob_r), min_iters=2 if args.quick else 3,
              bytes=bulk_bytes, note=note)
        b.run("bulk_decrypt_64m", lambda: f.decrypt(big_ct, bob[0], bob[2]), min_iters=2 if args.quick else 3,
              bytes=bulk_bytes, note=note)
        del big, big_ct

    if args.sdk:
        sdk_bench(target, args.quick, only)
    return 0


def sdk_bench(target, quick, only):
    """The same kinds of ops through virgil_crypto.VirgilCrypto (high-level Python SDK 5.0.1)."""
    from virgil_crypto import VirgilCrypto

    c = VirgilCrypto()
    b = Bencher("virgil-py-sdk", target, quick, only)
    a = c.generate_key_pair()
    bob = c.generate_key_pair()
    msg = os.urandom(KIB)
    b.run("keygen_ed25519", lambda: c.generate_key_pair())
    sig = c.generate_signature(msg, a.private_key)
    b.run("sign_1k", lambda: c.generate_signature(msg, a.private_key))
    b.run("verify_1k", lambda: c.verify_signature(msg, sig, a.public_key))
    ct = c.encrypt(msg, bob.public_key)
    b.run("encrypt_1k_1r", lambda: c.encrypt(msg, bob.public_key), note="plain encrypt, no padding")
    b.run("decrypt_1k_1r", lambda: c.decrypt(ct, bob.private_key), note="plain decrypt")
    ste = c.sign_and_encrypt(msg, a.private_key, bob.public_key)
    b.run("sign_then_encrypt_1k_1r", lambda: c.sign_and_encrypt(msg, a.private_key, bob.public_key),
          note="SDK 5.0.1 sign_and_encrypt = signThenEncrypt format, no padding")
    b.run("decrypt_then_verify_1k_1r", lambda: c.decrypt_and_verify(ste, bob.private_key, a.public_key),
          note="SDK 5.0.1 decrypt_and_verify (signThenEncrypt format)")
    big = os.urandom(MIB)
    big_ct = c.encrypt(big, bob.public_key)
    b.run("bulk_encrypt_1m", lambda: c.encrypt(big, bob.public_key), min_iters=2, bytes=MIB,
          note="1 MiB: the SDK copies input byte by byte into ctypes arrays")
    b.run("bulk_decrypt_1m", lambda: c.decrypt(big_ct, bob.private_key), min_iters=2, bytes=MIB,
          note="1 MiB: the SDK copies input byte by byte into ctypes arrays")


if __name__ == "__main__":
    sys.exit(main())
