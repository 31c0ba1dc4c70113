"""The brainkey v3 server transform (harden + compute_public_key + prove) and the client's
blind / verify + deblind in Virgil's C library (virgil-crypto-lib 0.23.1), to set beside
`cargo bench -p sealkit-pythia --bench brainkey_v3` on the same machine:

    interop/python/.venv/bin/python interop/python/bench_brainkey_v3.py
"""
import time

from virgil_crypto_lib.foundation import BrainkeyClient, BrainkeyServer


def rate(label, fn, seconds=2.0):
    fn()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        fn()
        n += 1
    per_op = (time.perf_counter() - start) / n
    print("%-48s %9.1f us/op" % (label, per_op * 1e6))


def main():
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

    rate("C v3 server: harden + public key + prove", transform)
    rate("C v3 client: blind", lambda: client.blind(password))
    hardened = server.harden(secret, blinded)
    public_key = server.compute_public_key(secret)
    _, c, s = server.prove(blinded, hardened, secret, public_key)
    verifier = BrainkeyClient()
    verifier.setup_defaults()

    def finish():
        verifier.verify(blinded, hardened, public_key, c, s)
        return client.deblind(password, hardened, factor, bytearray(b"e3kit-backup"))

    rate("C v3 client: verify + deblind", finish)


if __name__ == "__main__":
    main()
