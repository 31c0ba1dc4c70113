"""Just enough pure-Python cryptography for seed.py to build messages that the `decrypt` target's
fixed key can open (standard library only; slow, not constant-time: never use it for real data).

Ed25519 (RFC 8032 reference arithmetic), X25519 (RFC 7748), AES-256 in CBC and GCM modes, KDF2
with SHA-384 and HKDF-SHA-512, assembled into the Virgil message formats of
shared/spec/virgil-crypto-format.md §4-§6.
"""
import hashlib
import hmac

# ----------------------------------------------------------------------------- Ed25519 / X25519

P = 2 ** 255 - 19
L = 2 ** 252 + 27742317777372353535851937790883648493
D = -121665 * pow(121666, P - 2, P) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _recover_x(y, sign):
    x2 = (y * y - 1) * pow(D * y * y + 1, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P:
        x = x * SQRT_M1 % P
    if x & 1 != sign:
        x = P - x
    return x


_BY = 4 * pow(5, P - 2, P) % P
BASE = (_recover_x(_BY, 0), _BY, 1, _recover_x(_BY, 0) * _BY % P)


def _add(a, b):
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    aa = (y1 - x1) * (y2 - x2) % P
    bb = (y1 + x1) * (y2 + x2) % P
    cc = 2 * t1 * t2 * D % P
    dd = 2 * z1 * z2 % P
    e, f, g, h = bb - aa, dd - cc, dd + cc, bb + aa
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _mul(s, point):
    q = (0, 1, 1, 0)
    while s:
        if s & 1:
            q = _add(q, point)
        point = _add(point, point)
        s >>= 1
    return q


def _encode(point):
    x, y, z, _ = point
    zi = pow(z, P - 2, P)
    x, y = x * zi % P, y * zi % P
    return (y | ((x & 1) << 255)).to_bytes(32, 'little')


def _clamp(h32):
    a = int.from_bytes(h32, 'little')
    a &= (1 << 254) - 8
    a |= 1 << 254
    return a


def ed25519_public(seed):
    return _encode(_mul(_clamp(hashlib.sha512(seed).digest()[:32]), BASE))


def ed25519_sign(seed, msg):
    h = hashlib.sha512(seed).digest()
    a = _clamp(h[:32])
    pub = _encode(_mul(a, BASE))
    r = int.from_bytes(hashlib.sha512(h[32:] + msg).digest(), 'little') % L
    rr = _encode(_mul(r, BASE))
    k = int.from_bytes(hashlib.sha512(rr + pub + msg).digest(), 'little') % L
    return rr + ((r + k * a) % L).to_bytes(32, 'little')


def x25519(k32, u32):
    k = _clamp(k32)
    u = int.from_bytes(u32, 'little') & ((1 << 255) - 1)
    x1, x2, z2, x3, z3, swap = u, 1, 0, u, 1, 0
    for t in reversed(range(255)):
        bit = (k >> t) & 1
        swap ^= bit
        if swap:
            x2, x3, z2, z3 = x3, x2, z3, z2
        swap = bit
        a, b = x2 + z2, x2 - z2
        aa, bb = a * a % P, b * b % P
        e = aa - bb
        c, d = x3 + z3, x3 - z3
        da, cb = d * a % P, c * b % P
        x3, z3 = (da + cb) ** 2 % P, x1 * (da - cb) ** 2 % P
        x2, z2 = aa * bb % P, e * (aa + 121665 * e) % P
    if swap:
        x2, z2 = x3, z3
    return (x2 * pow(z2, P - 2, P) % P).to_bytes(32, 'little')


def ed25519_shared(seed, peer_ed_pub):
    """X25519 of the converted keys (spec §4.4 step 2)."""
    y = int.from_bytes(peer_ed_pub, 'little') & ((1 << 255) - 1)
    u = (1 + y) * pow(1 - y, P - 2, P) % P
    return x25519(hashlib.sha512(seed).digest()[:32], u.to_bytes(32, 'little'))


# ----------------------------------------------------------------------------- AES-256

def _xtime(a):
    a <<= 1
    return (a ^ 0x11b) if a & 0x100 else a


def _gmul(a, b):
    r = 0
    while b:
        if b & 1:
            r ^= a
        a = _xtime(a)
        b >>= 1
    return r


def _sbox():
    inv = [0] * 256
    for a in range(1, 256):
        for b in range(1, 256):
            if _gmul(a, b) == 1:
                inv[a] = b
                break
    box = []
    for a in range(256):
        x = inv[a]
        s = x
        for _ in range(4):
            x = ((x << 1) | (x >> 7)) & 0xff
            s ^= x
        box.append(s ^ 0x63)
    return box


SBOX = _sbox()


class Aes256:
    def __init__(self, key):
        assert len(key) == 32
        w = [list(key[i:i + 4]) for i in range(0, 32, 4)]
        rcon = 1
        for i in range(8, 60):
            t = list(w[i - 1])
            if i % 8 == 0:
                t = [SBOX[b] for b in t[1:] + t[:1]]
                t[0] ^= rcon
                rcon = _xtime(rcon)
            elif i % 8 == 4:
                t = [SBOX[b] for b in t]
            w.append([a ^ b for a, b in zip(w[i - 8], t)])
        self.round_keys = [sum(w[4 * r:4 * r + 4], []) for r in range(15)]

    def encrypt_block(self, block):
        s = [a ^ b for a, b in zip(block, self.round_keys[0])]
        for r in range(1, 15):
            s = [SBOX[b] for b in s]
            s = [s[(i + 4 * (i % 4)) % 16] for i in range(16)]            # ShiftRows
            if r != 14:
                m = []
                for c in range(4):
                    a = s[4 * c:4 * c + 4]
                    m += [_gmul(a[0], 2) ^ _gmul(a[1], 3) ^ a[2] ^ a[3],
                          a[0] ^ _gmul(a[1], 2) ^ _gmul(a[2], 3) ^ a[3],
                          a[0] ^ a[1] ^ _gmul(a[2], 2) ^ _gmul(a[3], 3),
                          _gmul(a[0], 3) ^ a[1] ^ a[2] ^ _gmul(a[3], 2)]
                s = m
            s = [a ^ b for a, b in zip(s, self.round_keys[r])]
        return bytes(s)


def aes256_cbc_encrypt(key, iv, data):
    n = 16 - len(data) % 16
    data += bytes([n]) * n
    aes, prev, out = Aes256(key), iv, b''
    for i in range(0, len(data), 16):
        prev = aes.encrypt_block(bytes(a ^ b for a, b in zip(data[i:i + 16], prev)))
        out += prev
    return out


def _ghash_mul(x, y):
    r = 0xe1 << 120
    z = 0
    for i in range(127, -1, -1):
        if (y >> i) & 1:
            z ^= x
        x = (x >> 1) ^ r if x & 1 else x >> 1
    return z


def aes256_gcm_encrypt(key, nonce, data, aad=b''):
    """Ciphertext || 16-byte tag (96-bit nonce)."""
    aes = Aes256(key)
    h = int.from_bytes(aes.encrypt_block(bytes(16)), 'big')
    j0 = nonce + b'\x00\x00\x00\x01'
    ct = b''
    for i in range(0, len(data), 16):
        ctr = nonce + (2 + i // 16).to_bytes(4, 'big')
        ks = aes.encrypt_block(ctr)
        ct += bytes(a ^ b for a, b in zip(data[i:i + 16], ks))

    def blocks(b):
        b += bytes(-len(b) % 16)
        return [int.from_bytes(b[i:i + 16], 'big') for i in range(0, len(b), 16)]

    y = 0
    for blk in blocks(aad) + blocks(ct) + [(len(aad) * 8) << 64 | len(ct) * 8]:
        y = _ghash_mul(y ^ blk, h)
    tag = (y ^ int.from_bytes(aes.encrypt_block(j0), 'big')).to_bytes(16, 'big')
    return ct + tag


# ----------------------------------------------------------------------------- KDFs

def kdf2_sha384(z, n=80):
    out = b''
    counter = 1
    while len(out) < n:
        out += hashlib.sha384(z + counter.to_bytes(4, 'big')).digest()
        counter += 1
    return out[:n]


def hkdf_sha512(ikm, n):
    prk = hmac.new(b'', ikm, hashlib.sha512).digest()
    out, t, i = b'', b'', 1
    while len(out) < n:
        t = hmac.new(prk, t + bytes([i]), hashlib.sha512).digest()
        out += t
        i += 1
    return out[:n]
