#!/usr/bin/env python3
"""Builds the seed corpora of the cargo-fuzz targets from the crates' test vectors and captures.

    python3 fuzz/seed.py [--vectors DIR] [--captures DIR] [--out DIR]

Reads every JSON file in crates/crypto/tests/data/ (hex strings, see its README.md) and writes one
file per seed into fuzz/corpus/<target>/, named after the SHA-1 of its content, the way libFuzzer
names corpus entries (so re-running is idempotent and does not clash with entries the fuzzer adds).

    decrypt        whole ciphertexts (every `ciphertext_hex`), plus messages made here for the
                   target's own key (Ed25519 seed [7; 32]) so that it gets past the recipient
                   lookup and the ECIES MAC: encrypt, signThenEncrypt and signAndEncrypt, each
                   with and without padding (seed_crypto.py: pure-Python Ed25519/X25519/AES)
    message_info   the message-info prefix of each ciphertext (outer DER SEQUENCE, spec §4.1)
    ecies          the encryptedKey OCTET STRING of every recipient info that holds a DER
                   ECIES envelope (spec §4.4), plus a few hand-made ones
    key_der        private_key_der / public_key_der
    key_text       those keys as base64, wrapped base64 and PEM
    signature      signature_der / signature_of_plaintext_der and the VIRGIL-DATA-SIGNATURE
                   custom params of signThenEncrypt messages (spec §3, §5)
    footer         hand-made sign-and-encrypt footers (spec §6 step 6)
    group_message  epoch tickets and regular group messages (spec §8.1)

The sealkit-proto targets are seeded from real e3kit HTTP traffic, the captures/*.txt files of the
shared specs (../shared/captures from the repository root; skipped when absent), plus hand-made
inputs for what the captures lack:

    jwt            the token of every `authorization: Virgil <jwt>` header
    card           every card of a request or response body (RawSignedModel JSON), and the
                   decoded content snapshot of each
    request_body   one selector byte (crates/proto/src/fuzzing.rs) + the JSON body of every
                   search, keyknox and brainkey request, as captured and compact; hand-made
                   Pythia password and chat bodies
    chat_frame     hand-made WebSocket frames, client and server

Every proto corpus also gets the committed seeds of fuzz/seeds/<target>/ (replayed by
crates/proto/tests/fuzz_regressions.rs). The ratchet targets get only committed seeds, made by
Virgil's C library (interop/python/ratchet.py seeds fuzz/seeds; replayed by
crates/ratchet/tests/it/fuzz_seeds.rs):

    ratchet_message   messages, prekey and regular
    ratchet_session   serialized sessions
    ratchet_decrypt   the message seeds again (made for that target's fixed keys)

Standard library only. Deterministic: the same vectors give the same files.
"""
import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import struct
import textwrap

sys.dont_write_bytecode = True   # no fuzz/__pycache__ in the work tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import seed_crypto as sc  # noqa: E402  (next to this file)

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_VECTORS = os.path.join(HERE, '..', 'crates', 'crypto', 'tests', 'data')
DEFAULT_OUT = os.path.join(HERE, 'corpus')
DEFAULT_CAPTURES = os.path.join(HERE, '..', '..', 'shared', 'captures')
COMMITTED_SEEDS = os.path.join(HERE, 'seeds')
PROTO_TARGETS = ['jwt', 'card', 'request_body', 'chat_frame']
# sealkit-ratchet targets: seeded only from committed files made by Virgil's C library
# (interop/python/ratchet.py seeds fuzz/seeds); ratchet_decrypt reads the message seeds.
RATCHET_SEEDS = {'ratchet_message': 'ratchet_message', 'ratchet_session': 'ratchet_session',
                 'ratchet_decrypt': 'ratchet_message'}
TARGETS = ['message_info', 'decrypt', 'key_der', 'key_text', 'signature', 'footer', 'ecies',
           'group_message', 'pythia_g1', 'pythia_g2', 'pythia_gt', 'pythia_proof'] + PROTO_TARGETS \
    + list(RATCHET_SEEDS)

# The first byte of a `request_body` input selects the type (crates/proto/src/fuzzing.rs).
BODY_SEARCH, BODY_V1_PUSH, BODY_V2_PUSH, BODY_V2_PULL, BODY_V2_KEYS, BODY_V2_RESET = range(6)
BODY_BRAINKEY, BODY_PASSWORD, BODY_NEW_CHANNEL, BODY_ADD_MEMBER, BODY_NEW_MESSAGE = range(6, 11)
BODY_PFS_UPLOAD, BODY_PFS_VALIDATE, BODY_PFS_PICK_ONE, BODY_PFS_PICK_BATCH = range(11, 15)
# Request (method, path) of the captures -> selector.
CAPTURED_BODIES = {
    ('POST', '/card/v5/actions/search'): BODY_SEARCH,
    ('PUT', '/keyknox/v1'): BODY_V1_PUSH,
    ('POST', '/keyknox/v2/push'): BODY_V2_PUSH,
    ('POST', '/keyknox/v2/pull'): BODY_V2_PULL,
    ('POST', '/keyknox/v2/keys'): BODY_V2_KEYS,
    ('POST', '/keyknox/v2/reset'): BODY_V2_RESET,
    ('POST', '/pythia/v1/brainkey'): BODY_BRAINKEY,
}

# OID content bytes (spec §1).
OID_ED25519 = bytes.fromhex('2b6570')
OID_EC_PUBLIC_KEY = bytes.fromhex('2a8648ce3d0201')
OID_SECP256R1 = bytes.fromhex('2a8648ce3d030107')
OID_KDF2 = bytes.fromhex('28818c71020502')
OID_SHA384 = bytes.fromhex('608648016503040202')
OID_AES256_CBC = bytes.fromhex('60864801650304012a')
OID_AES256_GCM = bytes.fromhex('60864801650304012e')
OID_SHA512 = bytes.fromhex('608648016503040203')
OID_CMS_DATA = bytes.fromhex('2a864886f70d010701')
OID_CMS_ENVELOPED = bytes.fromhex('2a864886f70d010703')
OID_HKDF_SHA512 = bytes.fromhex('2a864886f70d010910031e')
OID_RANDOM_PADDING = bytes.fromhex('2b0601040183ac1b0103')

# Ratchet keys of the `request_body` seeds: the X25519 base point as SPKI DER and raw, an id,
# and a Virgil signature's shape (not a valid signature: the target does not verify).
PFS_KEY_RAW = base64.b64encode(bytes([9]) + bytes(31)).decode()
PFS_KEY_DER = base64.b64encode(bytes.fromhex('302a300506032b656e032100') + bytes([9]) + bytes(31)).decode()
PFS_KEY_ID = base64.b64encode(bytes(range(8))).decode()
PFS_SIGNATURE = base64.b64encode(bytes.fromhex('3051300d060960864801650304020305000440') + bytes(64)).decode()

# The private key of the `decrypt` target (crates/crypto/src/fuzzing.rs): Ed25519 seed [7; 32].
FUZZ_KEY_SEED = bytes([7]) * 32


# ----------------------------------------------------------------------------- minimal DER

def read_tlv(buf, pos=0):
    """Parses one DER element at `pos`: (tag, content start, end). Raises ValueError."""
    if pos + 2 > len(buf):
        raise ValueError('truncated header')
    tag, first = buf[pos], buf[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        count = first & 0x7f
        if count == 0 or count > 4 or pos + count > len(buf):
            raise ValueError('bad length')
        length = int.from_bytes(buf[pos:pos + count], 'big')
        pos += count
    end = pos + length
    if end > len(buf):
        raise ValueError('truncated content')
    return tag, pos, end


def children(buf, start, end):
    """The (tag, content start, end, element start) of every element in buf[start:end]."""
    out = []
    pos = start
    while pos < end:
        tag, cstart, cend = read_tlv(buf[:end], pos)
        out.append((tag, cstart, cend, pos))
        pos = cend
    return out


def der_len(n):
    if n < 0x80:
        return bytes([n])
    b = n.to_bytes((n.bit_length() + 7) // 8, 'big')
    return bytes([0x80 | len(b)]) + b


def tlv(tag, content):
    return bytes([tag]) + der_len(len(content)) + content


def seq(*items):
    return tlv(0x30, b''.join(items))


def set_of(*items):
    return tlv(0x31, b''.join(sorted(items)))


def octets(b):
    return tlv(0x04, b)


def oid(b):
    return tlv(0x06, b)


def integer(v):
    return tlv(0x02, v.to_bytes(max(1, (v.bit_length() + 8) // 8), 'big'))


# ----------------------------------------------------------------------------- extraction

def message_info_prefix(ct):
    """The outer SEQUENCE of a message (tag 0x30 + DER length), or None."""
    if not ct or ct[0] != 0x30:
        return None
    try:
        _, _, end = read_tlv(ct)
    except ValueError:
        return None
    return ct[:end]


def recipient_infos(mi):
    """Yields the children (tag, start, end, element start) of every KeyTransRecipientInfo."""
    _, s, e = read_tlv(mi)                                   # VirgilMessageInfo
    top = children(mi, s, e)
    content_info = top[1]                                    # version, ContentInfo, ...
    ci = children(mi, content_info[1], content_info[2])      # OID, [0]
    explicit = ci[1]
    enveloped = children(mi, explicit[1], explicit[2])[0]    # EnvelopedData
    ed = children(mi, enveloped[1], enveloped[2])            # version, SET, EncryptedContentInfo
    rset = ed[1]
    if rset[0] != 0x31:
        raise ValueError('no recipient SET')
    for ri in children(mi, rset[1], rset[2]):
        if ri[0] == 0x30:
            yield children(mi, ri[1], ri[2])


def ecies_envelopes(mi):
    """The encryptedKey contents that are DER SEQUENCEs (ECIES; RSA-OAEP blocks are skipped)."""
    out = []
    try:
        for fields in recipient_infos(mi):
            tag, s, e, _ = fields[-1]
            if tag == 0x04 and e > s and mi[s] == 0x30:
                out.append(mi[s:e])
    except (ValueError, IndexError):
        pass
    return out


def custom_param_signatures(mi):
    """The `data` values of the VIRGIL-DATA-SIGNATURE custom params (spec §5)."""
    out = []
    try:
        _, s, e = read_tlv(mi)
        for tag, cs, ce, _ in children(mi, s, e):
            if tag != 0xa0:
                continue
            params = children(mi, cs, ce)[0]                 # SET OF KeyValue
            for kv in children(mi, params[1], params[2]):
                key, val = children(mi, kv[1], kv[2])[:2]
                if mi[key[1]:key[2]] == b'VIRGIL-DATA-SIGNATURE' and val[0] == 0xa2:
                    inner = children(mi, val[1], val[2])[0]
                    out.append(mi[inner[1]:inner[2]])
    except (ValueError, IndexError):
        pass
    return out


def walk(node, path=()):
    """Yields (key path, value) for every scalar in a JSON document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from walk(v, path + (k,))
    elif isinstance(node, list):
        for v in node:
            yield from walk(v, path)
    else:
        yield path, node


def unhex(v):
    try:
        return bytes.fromhex(v) if isinstance(v, str) else None
    except ValueError:
        return None


# ----------------------------------------------------------------------------- hand-made seeds

def pem(label, der):
    body = '\n'.join(textwrap.wrap(base64.b64encode(der).decode(), 64))
    return f'-----BEGIN {label}-----\n{body}\n-----END {label}-----\n'.encode()


def signer_info(signer_id, alg, sig):
    return seq(integer(0), octets(signer_id), alg, octets(sig))


def footer(*signers):
    return seq(integer(0), tlv(0xa0, set_of(*signers)))


def ecies_envelope(originator_spki, mac, iv, ct):
    sha384 = seq(oid(OID_SHA384), b'\x05\x00')
    return seq(integer(0), originator_spki,
               seq(oid(OID_KDF2), sha384),
               seq(sha384, octets(mac)),
               seq(seq(oid(OID_AES256_CBC), octets(iv)), octets(ct)))


def group_ticket(session_id, epoch, key):
    info = b'\x0a\x20' + session_id + b'\x10' + bytes([epoch]) + b'\x1a\x20' + key
    return b'\x08\x00\x12' + bytes([len(info)]) + info


# ----------------------------------------------------------------------------- messages for the fuzz key

def _det(label, n):
    """Deterministic stand-in for random bytes."""
    out = b''
    i = 0
    while len(out) < n:
        out += hashlib.sha256(b'sealkit-fuzz-seed/%s/%d' % (label.encode(), i)).digest()
        i += 1
    return out[:n]


def ed25519_spki(pub):
    return seq(seq(oid(OID_ED25519)), tlv(0x03, b'\x00' + pub))


def ecies_wrap_ed25519(recipient_pub, secret, label):
    """ECIES envelope of `secret` for an Ed25519 recipient (spec §4.4)."""
    eph = _det(label + '/eph', 32)
    z = sc.ed25519_shared(eph, recipient_pub)
    k = sc.kdf2_sha384(z)
    iv = _det(label + '/iv', 16)
    ct = sc.aes256_cbc_encrypt(k[:32], iv, secret)
    mac = hmac.new(k[32:80], ct, hashlib.sha384).digest()
    return ecies_envelope(ed25519_spki(sc.ed25519_public(eph)), mac, iv, ct)


def virgil_signature(seed, data):
    """The 83-byte VirgilSignature of spec §3."""
    digest = hashlib.sha512(data).digest()
    return seq(seq(oid(OID_SHA512), b'\x05\x00'), octets(sc.ed25519_sign(seed, digest)))


def message_info(recipients, nonce, custom=(), kdf=False, footer_size=None, padding=False):
    """VirgilMessageInfo (spec §4.2); recipients: (rid, alg DER, encrypted key)."""
    ktri = [seq(integer(2), tlv(0xa0, octets(rid)), alg, octets(ek)) for rid, alg, ek in recipients]
    eci = seq(oid(OID_CMS_DATA), seq(oid(OID_AES256_GCM), octets(nonce)))
    content_info = seq(oid(OID_CMS_ENVELOPED), tlv(0xa0, seq(integer(2), set_of(*ktri), eci)))
    version = 3 if padding else 2 if kdf and footer_size is not None else 1 if kdf else 0
    parts = [integer(version), content_info]
    if custom:
        kvs = [seq(tlv(0x0c, k.encode()), tlv(0xa2, octets(v))) for k, v in custom]
        parts.append(tlv(0xa0, set_of(*kvs)))
    if kdf:
        parts.append(tlv(0xa1, seq(oid(OID_HKDF_SHA512))))
    if footer_size is not None:
        sdi = seq(integer(0), seq(oid(OID_SHA512), b'\x05\x00'))
        parts.append(tlv(0xa2, seq(integer(0), integer(footer_size), tlv(0xa0, sdi))))
    if padding:
        parts.append(tlv(0xa3, seq(oid(OID_RANDOM_PADDING))))
    return seq(*parts)


def random_padding(data, label):
    n = 160 - (len(data) + 4) % 160
    return data + _det(label + '/pad', n) + struct.pack('<I', n)


def fuzz_key_messages(extra_recipient=None):
    """Messages the `decrypt` target's key can open, signed by that same key where signed."""
    seed = FUZZ_KEY_SEED
    pub = sc.ed25519_public(seed)
    key_id = hashlib.sha512(ed25519_spki(pub)).digest()[:8]
    ed_alg = seq(oid(OID_ED25519))
    out = []
    for mode in ('encrypt', 'ste', 'sae'):
        for padded in (False, True):
            for size in ((0, 45) if mode == 'encrypt' and not padded else (45,)):
                label = f'{mode}/{padded}/{size}'
                pt = _det(label + '/pt', size)
                body = random_padding(pt, label) if padded else pt
                secret = _det(label + '/secret', 32)
                recipients = [(key_id, ed_alg, ecies_wrap_ed25519(pub, secret, label))]
                if extra_recipient is not None and size:
                    rid, rpub = extra_recipient
                    recipients.append((rid, ed_alg, ecies_wrap_ed25519(rpub, secret, label + '/2')))
                if mode == 'sae':
                    okm = sc.hkdf_sha512(secret, 88)
                    data_key, nonce = okm[:32], okm[32:44]
                    footer_key, footer_nonce = okm[44:76], okm[76:88]
                    mi = message_info(recipients, nonce, kdf=True, footer_size=len(body),
                                      padding=padded)
                    sdi = seq(integer(0), seq(oid(OID_SHA512), b'\x05\x00'))
                    raw_sig = sc.ed25519_sign(seed, hashlib.sha512(pt).digest())
                    foot = footer(signer_info(key_id, ed_alg, raw_sig))
                    out.append(mi + sc.aes256_gcm_encrypt(data_key, nonce, body, sdi)
                               + sc.aes256_gcm_encrypt(footer_key, footer_nonce, foot))
                else:
                    nonce = _det(label + '/nonce', 12)
                    custom = ()
                    if mode == 'ste':
                        custom = (('VIRGIL-DATA-SIGNATURE', virgil_signature(seed, pt)),
                                  ('VIRGIL-DATA-SIGNER-ID', key_id))
                    mi = message_info(recipients, nonce, custom=custom, padding=padded)
                    out.append(mi + sc.aes256_gcm_encrypt(secret, nonce, body))
    return out


# ----------------------------------------------------------------------------- main

def collect(vectors_dir):
    seeds = {t: [] for t in TARGETS}
    keys = {}            # name -> dict from keys.json
    raw_ed_sigs = []
    files = sorted(f for f in os.listdir(vectors_dir) if f.endswith('.json'))
    if not files:
        sys.exit(f'seed.py: no JSON vectors in {vectors_dir}')
    for name in files:
        with open(os.path.join(vectors_dir, name), encoding='utf-8') as fh:
            doc = json.load(fh)
        if name == 'keys.json':
            keys = {k['name']: k for k in doc.get('keys', [])}
        for path, value in walk(doc):
            field = path[-1] if path else ''
            data = unhex(value)
            if data is None:
                if field == 'data' and 'add_new_epoch_result' in path:     # base64 ticket
                    try:
                        seeds['group_message'].append(base64.b64decode(value))
                    except ValueError:
                        pass
                continue
            if field == 'ciphertext_hex':
                seeds['decrypt'].append(data)
                mi = message_info_prefix(data)
                if mi is not None:
                    seeds['message_info'].append(mi)
                    seeds['ecies'].extend(ecies_envelopes(mi))
                    seeds['signature'].extend(custom_param_signatures(mi))
            elif field in ('private_key_der', 'public_key_der'):
                seeds['key_der'].append(data)
                b64 = base64.b64encode(data)
                seeds['key_text'].append(b64)
                seeds['key_text'].append(b64 + b'\n')
                wrapped = '\n'.join(textwrap.wrap(b64.decode(), 20)).encode()
                seeds['key_text'].append(wrapped)
                label = 'PRIVATE KEY' if field == 'private_key_der' else 'PUBLIC KEY'
                seeds['key_text'].append(pem(label, data))
            elif field in ('signature_der', 'signature_of_plaintext_der'):
                seeds['signature'].append(data)
                # Ed25519 VirgilSignature: SEQUENCE { DigestInfo, OCTET STRING(64) } (spec §3).
                if len(data) == 83 and data[-66:-64] == b'\x04\x40':
                    raw_ed_sigs.append(data[-64:])
            elif field in ('epoch_messages_hex', 'message_hex'):
                seeds['group_message'].append(data)

    # Messages that the `decrypt` target's own key opens (one also to bob, from the vectors).
    bob = keys.get('bob', {})
    bob_spki = unhex(bob.get('public_key_der')) or b''
    extra = (unhex(bob['key_id']), bob_spki[-32:]) if len(bob_spki) == 44 else None
    made = fuzz_key_messages(extra)
    seeds['decrypt'].extend(made)
    for m in made:
        seeds['message_info'].append(message_info_prefix(m))
        seeds['ecies'].extend(ecies_envelopes(message_info_prefix(m))[:1])

    # Footers (spec §6 step 6): one Ed25519 signer (97 bytes), two signers, one P-256 signer.
    ed_alg = seq(oid(OID_ED25519))
    p256_alg = seq(oid(OID_EC_PUBLIC_KEY), oid(OID_SECP256R1))
    alice_id = unhex(keys.get('alice', {}).get('key_id')) or bytes(range(1, 9))
    bob_id = unhex(keys.get('bob', {}).get('key_id')) or bytes(range(9, 17))
    erin_id = unhex(keys.get('erin', {}).get('key_id')) or bytes(range(17, 25))
    sig = raw_ed_sigs[0] if raw_ed_sigs else bytes(range(64))
    one = footer(signer_info(alice_id, ed_alg, sig))
    assert len(one) == 97 and one[:8] == bytes.fromhex('305f020100a05a31'), one.hex()
    seeds['footer'].append(one)
    seeds['footer'].append(footer(signer_info(alice_id, ed_alg, sig),
                                  signer_info(bob_id, ed_alg, bytes(reversed(sig)))))
    ecdsa = seq(integer(int.from_bytes(sig[:32], 'big')), integer(int.from_bytes(sig[32:], 'big')))
    seeds['footer'].append(footer(signer_info(erin_id, p256_alg, ecdsa)))

    # ECIES: if no envelope could be extracted, hand-made ones with the library's layout.
    envelopes = seeds['ecies']
    if not envelopes:
        ed_spki = seq(seq(oid(OID_ED25519)), tlv(0x03, b'\x00' + bytes(range(32))))
        envelopes.append(ecies_envelope(ed_spki, bytes(48), bytes(16), bytes(48)))
    if not any(len(e) == 274 for e in envelopes):        # a P-256 originator, if none was seen
        point = b'\x04' + bytes(range(1, 65))
        p256_spki = seq(p256_alg, tlv(0x03, b'\x00' + point))
        envelopes.append(ecies_envelope(p256_spki, bytes(48), bytes(16), bytes(48)))

    # Group: a ticket for epoch 1 and a minimal one, in case the vectors change.
    seeds['group_message'].append(group_ticket(bytes(32), 1, bytes(range(32))))

    # Pythia: relic encodings from the official WASM build's sample vectors.
    pythia = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'crates', 'pythia', 'tests', 'data', 'pythia_brainkey.json')
    if os.path.exists(pythia):
        for v in json.load(open(pythia)):
            seeds['pythia_g1'] += [unhex(v['blinded']), unhex(v['pk'])]
            seeds['pythia_g2'].append(unhex(v['t_tilde']))
            seeds['pythia_gt'] += [unhex(v[k]) for k in ('y', 'y_kw1', 'deblinded', 'deblinded_kw1')]
            c, u = unhex(v['proof_c']), unhex(v['proof_u'])
            seeds['pythia_proof'].append(bytes([len(c)]) + c + u)

    # Each target also gets the empty input and the single byte 0x30.
    for t in TARGETS:
        seeds[t].extend([b'', b'\x30'])
    return seeds


# ----------------------------------------------------------------------------- sealkit-proto

def capture_exchanges(text):
    """Yields (method, path, request headers, request body, response body) of a capture file:
    blocks starting `--- #N METHOD PATH`, request lines `> name: value`, response lines `< ...`,
    a body continuing over the following lines of the same prefix."""
    method = path = None
    headers, bodies, current = {}, {'>': [], '<': []}, None
    for line in text.splitlines() + ['--- #0 END']:
        if line.startswith('--- #'):
            if method:
                yield method, path, headers, '\n'.join(bodies['>']), '\n'.join(bodies['<'])
            parts = line.split()
            method, path = (parts[2], parts[3]) if len(parts) >= 4 else (None, None)
            headers, bodies, current = {}, {'>': [], '<': []}, None
        elif line[:2] in ('> ', '< '):
            side, rest = line[0], line[2:]
            if rest.startswith('body: '):
                current = side
                bodies[side].append(rest[len('body: '):])
            elif current == side and rest.startswith(' '):
                bodies[side].append(rest)
            else:
                current = None
                name, _, value = rest.partition(': ')
                if side == '>':
                    headers[name.lower()] = value
        else:
            current = None


def json_forms(body):
    """The body as captured and as compact JSON (what the JS SDK sends), UTF-8."""
    forms = [body.encode()]
    try:
        forms.append(json.dumps(json.loads(body), separators=(',', ':'), ensure_ascii=False).encode())
    except ValueError:
        pass
    return forms


def card_seeds(value):
    """Every RawSignedModel in a parsed body (a card or a search result array), as compact JSON,
    followed by its decoded content snapshot."""
    cards = value if isinstance(value, list) else [value]
    for card in cards:
        if isinstance(card, dict) and 'content_snapshot' in card:
            yield json.dumps(card, separators=(',', ':')).encode()
            try:
                yield base64.b64decode(card['content_snapshot'], validate=True)
            except (ValueError, TypeError):
                pass


def collect_proto(captures_dir, seeds):
    """Seeds of the sealkit-proto targets: captures (if present), hand-made inputs, committed seeds."""
    files = sorted(os.listdir(captures_dir)) if os.path.isdir(captures_dir) else []
    if not files:
        print(f'seed.py: no captures in {os.path.relpath(captures_dir)}, proto seeds are hand-made only')
    for name in files:
        if not name.endswith('.txt'):
            continue
        with open(os.path.join(captures_dir, name), encoding='utf-8') as fh:
            text = fh.read()
        for method, path, headers, request, response in capture_exchanges(text):
            auth = headers.get('authorization', '')
            if auth.startswith('Virgil '):
                seeds['jwt'].append(auth[len('Virgil '):].encode())
            selector = CAPTURED_BODIES.get((method, path))
            if selector is not None and request:
                seeds['request_body'].extend(bytes([selector]) + b for b in json_forms(request))
            for body in (request, response):
                try:
                    seeds['card'].extend(card_seeds(json.loads(body)))
                except ValueError:
                    pass

    blinded = base64.b64encode(bytes([0x02]) + bytes(range(48))).decode()
    hand_made = {
        BODY_PASSWORD: [{'blinded_password': blinded, 'user_id': 'alice', 'version': 1,
                         'include_proof': True},
                        {'blinded_password': blinded, 'user_id': 'bob'}],
        BODY_NEW_CHANNEL: [{'id': 'general', 'kind': 'group', 'members': ['bob', 'charles'],
                            'open': True},
                           {'id': 'dm:alice@x.org:bob', 'kind': 'direct', 'members': ['bob']}],
        BODY_ADD_MEMBER: [{'identity': 'charles'}],
        BODY_NEW_MESSAGE: [{'client_id': '0190f3a2-7c1e', 'ciphertext': 'MFEwDQYJYIZIAWUDBAIDBQAE',
                            'member_version': 2}],
        # Ratchet keys: an X25519 SPKI DER, its 32 raw bytes, an 8-byte id.
        BODY_PFS_UPLOAD: [{'identity_card_id': '0f' * 32,
                           'long_term_key': {'public_key': PFS_KEY_DER, 'signature': PFS_SIGNATURE},
                           'one_time_keys': [PFS_KEY_DER, PFS_KEY_RAW]},
                          {'one_time_keys': []}],
        BODY_PFS_VALIDATE: [{'long_term_key_id': PFS_KEY_ID, 'one_time_keys_ids': [PFS_KEY_ID]},
                            {'long_term_key_id': PFS_KEY_ID}],
        BODY_PFS_PICK_ONE: [{'identity': 'alice'}],
        BODY_PFS_PICK_BATCH: [{'identities': ['alice', 'bob']}],
    }
    for selector, bodies in hand_made.items():
        for body in bodies:
            seeds['request_body'].append(bytes([selector]) + json.dumps(body, separators=(',', ':')).encode())

    message = {'seq': 3, 'channel': 'general', 'sender': 'alice', 'client_id': 'c1',
               'sent_at': 1795801646000, 'member_version': 2, 'ciphertext': 'AAEC'}
    frames = [
        {'type': 'subscribe', 'channel': 'general', 'after': 41},
        {'type': 'unsubscribe', 'channel': 'dm:alice:bob'},
        {'type': 'ping'},
        {'type': 'subscribed', 'channel': 'general', 'last_seq': 41},
        {'type': 'message', 'message': message},
        {'type': 'members', 'channel': 'general', 'member_version': 3},
        {'type': 'removed', 'channel': 'general'},
        {'type': 'error', 'channel': 'general', 'code': 70002, 'message': 'not a member'},
        {'type': 'error', 'channel': None, 'code': 40000, 'message': 'bad frame'},
        {'type': 'pong'},
    ]
    seeds['chat_frame'].extend(json.dumps(f, separators=(',', ':')).encode() for f in frames)

    for target, source in [(t, t) for t in PROTO_TARGETS] + list(RATCHET_SEEDS.items()):
        committed = os.path.join(COMMITTED_SEEDS, source)
        for name in sorted(os.listdir(committed)) if os.path.isdir(committed) else []:
            with open(os.path.join(committed, name), 'rb') as fh:
                seeds[target].append(fh.read())


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--vectors', default=DEFAULT_VECTORS, help='directory of JSON test vectors')
    ap.add_argument('--captures', default=DEFAULT_CAPTURES,
                    help='directory of e3kit HTTP captures (*.txt); skipped when absent')
    ap.add_argument('--out', default=DEFAULT_OUT, help='corpus root (one directory per target)')
    args = ap.parse_args()
    seeds = collect(args.vectors)
    collect_proto(args.captures, seeds)
    for target in TARGETS:
        d = os.path.join(args.out, target)
        os.makedirs(d, exist_ok=True)
        unique = {hashlib.sha1(s).hexdigest(): s for s in seeds[target]}
        for digest, data in unique.items():
            path = os.path.join(d, digest)
            if not os.path.exists(path):
                with open(path, 'wb') as fh:
                    fh.write(data)
        print(f'seed.py: {target:14} {len(unique):3} seeds -> {os.path.relpath(d)}')


if __name__ == '__main__':
    main()
