"""Brainkey v3 oracle: Virgil's C library (virgil-crypto-lib 0.23.1, foundation BrainkeyClient and
BrainkeyServer) for Sealkit's tests. Run it with the virtualenv of interop/python/setup.sh:

    interop/python/.venv/bin/python interop/python/brainkey_v3.py vectors > crates/pythia/tests/data/brainkey_v3.json
    interop/python/.venv/bin/python interop/python/brainkey_v3.py stdio

`stdio` answers one JSON request per input line with one JSON line (bytes as lowercase hex):
  {"op": "blind", "password"}                                  -> {"deblind_factor", "blinded_point"}
  {"op": "verify", "blinded_point", "hardened_point", "server_public_key", "c", "s"} -> {"ok"}
  {"op": "deblind", "password", "hardened_point", "deblind_factor", "key_name"}     -> {"seed"}
  {"op": "generate_identity_secret"}                             -> {"identity_secret"}
  {"op": "harden", "identity_secret", "blinded_point"}          -> {"hardened_point"}
  {"op": "compute_public_key", "identity_secret"}                -> {"server_public_key"}
  {"op": "prove", "blinded_point", "hardened_point", "identity_secret", "server_public_key"} -> {"ok", "c", "s"}
  {"op": "flow", "url", "token", "password"}: the whole e3kit-kotlin BrainkeyHttpClient flow against
      POST {url}/brainkey/v3/harden -> {"status", "body"} and, on 200, {"verified", "seed",
      "server_public_key"}
Passwords and key names are UTF-8 strings. Failures answer {"error": "..."}.

Every verify uses a fresh BrainkeyClient: e3kit-mobile-v3.md reports that verify on the object that
did blind once raised "Brainkey internal error".
"""
import base64
import binascii
import json
import sys
import urllib.error
import urllib.request

from virgil_crypto_lib.foundation import BrainkeyClient, BrainkeyServer

KEY_NAME = b"e3kit-backup"


def unhex(value):
    return bytearray(binascii.unhexlify(value))


def tohex(value):
    return binascii.hexlify(bytes(value)).decode()


def client():
    c = BrainkeyClient()
    c.setup_defaults()
    return c


def server():
    s = BrainkeyServer()
    s.setup_defaults()
    return s


def blind(password):
    factor, blinded = client().blind(bytearray(password))
    return factor, blinded


def verify(blinded, hardened, public_key, c, s):
    try:
        return bool(client().verify(blinded, hardened, public_key, c, s))
    except Exception:  # the wrapper raises on a malformed or failing proof
        return False


def flow(url, token, password):
    password = bytearray(password.encode())
    factor, blinded = blind(password)
    body = json.dumps({"blinded_point": base64.b64encode(bytes(blinded)).decode()}).encode()
    request = urllib.request.Request(
        url.rstrip("/") + "/brainkey/v3/harden",
        data=body,
        method="POST",
        headers={"Content-Type": "application/json", "Authorization": "Virgil " + token},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return {"status": e.code, "body": e.read().decode()}
    answer = json.loads(text)
    fields = [
        bytearray(base64.b64decode(answer[k]))
        for k in ["hardened_point", "server_public_key", "proof_value_c", "proof_value_s"]
    ]
    hardened, public_key, c, s = fields
    verified = verify(blinded, hardened, public_key, c, s)
    out = {"status": status, "body": text, "verified": verified, "server_public_key": tohex(public_key)}
    if verified:
        out["seed"] = tohex(client().deblind(password, hardened, factor, bytearray(KEY_NAME)))
    return out


def handle(req):
    op = req["op"]
    if op == "blind":
        factor, blinded = blind(req["password"].encode())
        return {"deblind_factor": tohex(factor), "blinded_point": tohex(blinded)}
    if op == "verify":
        keys = ["blinded_point", "hardened_point", "server_public_key", "c", "s"]
        return {"ok": verify(*[unhex(req[k]) for k in keys])}
    if op == "deblind":
        seed = client().deblind(
            bytearray(req["password"].encode()),
            unhex(req["hardened_point"]),
            unhex(req["deblind_factor"]),
            bytearray(req["key_name"].encode()),
        )
        return {"seed": tohex(seed)}
    if op == "generate_identity_secret":
        return {"identity_secret": tohex(server().generate_identity_secret())}
    if op == "harden":
        return {"hardened_point": tohex(server().harden(unhex(req["identity_secret"]), unhex(req["blinded_point"])))}
    if op == "compute_public_key":
        return {"server_public_key": tohex(server().compute_public_key(unhex(req["identity_secret"])))}
    if op == "prove":
        keys = ["blinded_point", "hardened_point", "identity_secret", "server_public_key"]
        ok, c, s = server().prove(*[unhex(req[k]) for k in keys])
        return {"ok": bool(ok), "c": tohex(c), "s": tohex(s)}
    if op == "flow":
        return flow(req["url"], req["token"], req["password"])
    raise ValueError("unknown op " + op)


def stdio():
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            out = handle(json.loads(line))
        except Exception as e:  # reported to the caller, which decides what is expected
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


def vectors():
    passwords = ["password", "correct horse battery staple", "пароль🔑", "x", "p" * 128]
    key_names = ["e3kit-backup", "", "another key name"]
    cases = []
    for i, password in enumerate(passwords):
        pw = bytearray(password.encode())
        srv = server()
        secret = srv.generate_identity_secret()
        factor, blinded = blind(pw)
        hardened = srv.harden(secret, blinded)
        public_key = srv.compute_public_key(secret)
        ok, c, s = srv.prove(blinded, hardened, secret, public_key)
        assert ok and verify(blinded, hardened, public_key, c, s)
        key_name = key_names[i % len(key_names)]
        seed = client().deblind(pw, hardened, factor, bytearray(key_name.encode()))
        cases.append({
            "id": "c-%d" % i,
            "password": password,
            "key_name": key_name,
            "identity_secret": tohex(secret),
            "deblind_factor": tohex(factor),
            "blinded_point": tohex(blinded),
            "hardened_point": tohex(hardened),
            "server_public_key": tohex(public_key),
            "proof_value_c": tohex(c),
            "proof_value_s": tohex(s),
            "seed": tohex(seed),
        })
    json.dump({
        "provenance": "interop/python/brainkey_v3.py vectors, virgil-crypto-lib 0.23.1 (foundation "
                      "BrainkeyClient/BrainkeyServer); hex; passwords and key names UTF-8",
        "cases": cases,
    }, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    {"stdio": stdio, "vectors": vectors}[sys.argv[1]]()
