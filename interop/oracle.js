delete globalThis.fetch; // the emscripten loader of virgil-crypto breaks on Node >= 18 when fetch exists

// Sealkit interop oracle: makes and checks Virgil-format ciphertexts with the real
// virgil-crypto libraries (5.1.2, and 4.2.2 as bundled with @virgilsecurity/e3kit-node 2.5.1).
//
//   node oracle.js make  --lib 5|4 --out DIR   fresh keys + a matrix of ciphertexts -> DIR
//   node oracle.js check --lib 5|4 --dir DIR   decrypt/verify every case in DIR with the library
//
// See README.md for the case directory format.

const fs = require('fs');
const path = require('path');
const nodeCrypto = require('crypto');

const USAGE = 'usage: node oracle.js make --lib 5|4 --out DIR\n       node oracle.js check --lib 5|4 --dir DIR';
const EXPECTED = { 5: '5.1.2', 4: '4.2.2' };
const MODES = ['encrypt', 'sign_then_encrypt', 'sign_and_encrypt'];
const APIS = ['oneshot', 'stream'];
const KEY_TYPES = ['ED25519', 'CURVE25519', 'SECP256R1', 'RSA_2048'];
// Odd chunk sizes used to feed the streaming APIs (cycled).
const CHUNKS = [1, 2, 3, 5, 17, 333, 4099, 65521, 1048573, 7];

class UsageError extends Error {}

// ------------------------------------------------------------------------------------------ library

function readVersion(pkgJsonPath) {
  return JSON.parse(fs.readFileSync(pkgJsonPath, 'utf8')).version;
}

// Returns { vc, crypto, version, dir }.
async function loadLib(which) {
  let pkgJson;
  if (which === '5') {
    pkgJson = require.resolve('virgil-crypto/package.json', { paths: [__dirname] });
  } else {
    // The copy that @virgilsecurity/e3kit-node itself resolves.
    const e3kitPkg = require.resolve('@virgilsecurity/e3kit-node/package.json', { paths: [__dirname] });
    pkgJson = require.resolve('virgil-crypto/package.json', { paths: [path.dirname(e3kitPkg)] });
  }
  const dir = path.dirname(pkgJson);
  const version = readVersion(pkgJson);
  if (version !== EXPECTED[which]) {
    throw new Error(`--lib ${which}: expected virgil-crypto ${EXPECTED[which]} but ${pkgJson} is version ${version}`);
  }
  const vc = require(dir);
  await vc.initCrypto();
  return { vc, crypto: new vc.VirgilCrypto(), version, dir };
}

// ------------------------------------------------------------------------------------------ helpers

const b64 = (b) => Buffer.from(b).toString('base64');
const fromB64 = (s) => Buffer.from(s, 'base64');

// Split a buffer into odd-sized chunks; `offset` rotates the chunk-size sequence.
function oddChunks(buf, offset = 0) {
  const out = [];
  let pos = 0;
  let i = offset;
  while (pos < buf.length) {
    const n = CHUNKS[i++ % CHUNKS.length];
    out.push(buf.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}

// 1000 bytes (or n) of "varied" data: a text prefix, a byte ramp, runs of zeros/0xff, random tail.
function variedData(n, label) {
  const parts = [
    Buffer.from(`sealkit interop plaintext ${label} \u00e9\u4e2d\ud83d\udd11\n`, 'utf8'),
    Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
    Buffer.alloc(37, 0),
    Buffer.alloc(41, 0xff),
  ];
  let b = Buffer.concat(parts);
  if (b.length < n) b = Buffer.concat([b, nodeCrypto.randomBytes(n - b.length)]);
  return b.subarray(0, n);
}

function cleanError(e) {
  if (e === null || e === undefined) return String(e);
  const msg = e.message || String(e);
  return (e.status ? `${e.status}: ` : '') + msg;
}

// ------------------------------------------------------------------------------------------ make

async function make(lib, outDir) {
  const c = lib.crypto;
  fs.mkdirSync(outDir, { recursive: true });

  // Keys.
  const keySpecs = [
    ['alice', 'ED25519'], ['bob', 'ED25519'], ['dave', 'CURVE25519'], ['erin', 'SECP256R1'], ['frank', 'RSA_2048'],
  ];
  for (let i = 0; i < 20; i++) keySpecs.push([`r${String(i).padStart(2, '0')}`, 'ED25519']);
  const K = {};
  const keysOut = {};
  for (const [name, type] of keySpecs) {
    const kp = c.generateKeys(type); // frank (RSA-2048) is generated exactly once per run
    K[name] = kp;
    keysOut[name] = {
      type,
      private_key_der_b64: b64(c.exportPrivateKey(kp.privateKey)),
      public_key_der_b64: b64(c.exportPublicKey(kp.publicKey)),
    };
  }
  const pubs = (names) => names.map((n) => K[n].publicKey);

  const R1 = ['bob'];
  const R3 = ['bob', 'dave', 'erin'];
  const R20 = [];
  for (let i = 0; i <= 16; i++) R20.push(`r${String(i).padStart(2, '0')}`);
  R20.push('dave', 'erin', 'frank');

  const cases = [];
  const names = new Set();
  function addCase({ name, mode, api = 'oneshot', padding, signer = null, recipients, pt, ct }) {
    if (names.has(name)) throw new Error('duplicate case name ' + name);
    names.add(name);
    fs.writeFileSync(path.join(outDir, name + '.pt'), pt);
    fs.writeFileSync(path.join(outDir, name + '.ct'), ct);
    cases.push({ name, mode, api, padding, signer, recipients, plaintext_file: name + '.pt', ciphertext_file: name + '.ct' });
  }
  function oneshot(mode, pt, signer, recipients, padding) {
    if (mode === 'encrypt') return c.encrypt(pt, pubs(recipients), padding);
    if (mode === 'sign_then_encrypt') return c.signThenEncrypt(pt, K[signer].privateKey, pubs(recipients), padding);
    return c.signAndEncrypt(pt, K[signer].privateKey, pubs(recipients), padding);
  }
  const short = { encrypt: 'enc', sign_then_encrypt: 'ste', sign_and_encrypt: 'sae' };
  const oneshotCase = (name, mode, pt, recipients, padding, signer) => {
    signer = mode === 'encrypt' ? null : signer || 'alice';
    addCase({ name, mode, padding, signer, recipients, pt, ct: oneshot(mode, pt, signer, recipients, padding) });
  };

  // Matrix: mode x padding x recipient set, 1000-byte plaintexts.
  for (const mode of MODES) {
    for (const padding of [false, true]) {
      for (const [rn, rs] of [['r1', R1], ['r3', R3], ['r20', R20]]) {
        const name = `${short[mode]}_${padding ? 'pad' : 'nopad'}_${rn}`;
        oneshotCase(name, mode, variedData(1000, name), rs, padding);
      }
    }
  }
  // Empty plaintext.
  for (const mode of MODES) {
    for (const padding of [false, true]) {
      oneshotCase(`${short[mode]}_${padding ? 'pad' : 'nopad'}_empty`, mode, Buffer.alloc(0), R1, padding);
    }
  }
  // 3 MiB, one-shot API.
  const BIG = 3 * 1024 * 1024;
  oneshotCase('enc_nopad_3mib', 'encrypt', nodeCrypto.randomBytes(BIG), R3, false);
  oneshotCase('ste_nopad_3mib', 'sign_then_encrypt', nodeCrypto.randomBytes(BIG), R3, false);
  oneshotCase('sae_pad_3mib', 'sign_and_encrypt', nodeCrypto.randomBytes(BIG), R3, true);
  // 3 MiB, streaming APIs fed with odd chunk sizes.
  {
    const pt = nodeCrypto.randomBytes(BIG);
    const s = c.createStreamCipher(pubs(R3));
    const parts = [s.start()];
    for (const ch of oddChunks(pt)) parts.push(s.update(ch));
    parts.push(s.final());
    addCase({ name: 'enc_stream_3mib', mode: 'encrypt', api: 'stream', padding: false, recipients: R3, pt, ct: Buffer.concat(parts) });
  }
  for (const padding of [false, true]) {
    const pt = nodeCrypto.randomBytes(BIG);
    const s = c.createStreamSignAndEncrypt(K.alice.privateKey, pubs(R3), padding);
    const parts = [s.start(pt.length)];
    for (const ch of oddChunks(pt, 3)) parts.push(s.update(ch));
    parts.push(s.final());
    addCase({ name: `sae_stream_${padding ? 'pad' : 'nopad'}_3mib`, mode: 'sign_and_encrypt', api: 'stream', padding, signer: 'alice', recipients: R3, pt, ct: Buffer.concat(parts) });
  }
  // Padding edges (frame = 160, trailer = 4 bytes).
  for (const len of [0, 1, 159, 160, 161, 156, 157]) {
    oneshotCase(`sae_pad_len${len}`, 'sign_and_encrypt', nodeCrypto.randomBytes(len), R1, true);
    oneshotCase(`enc_pad_len${len}`, 'encrypt', nodeCrypto.randomBytes(len), R1, true);
  }
  // P-256 signer.
  oneshotCase('ste_nopad_signer_erin', 'sign_then_encrypt', variedData(1000, 'erin'), R1, false, 'erin');

  // Group session.
  const groupId = 'sealkit-interop-group-' + nodeCrypto.randomBytes(8).toString('hex');
  const g = c.generateGroupSession(Buffer.from(groupId, 'utf8'));
  const messages = [];
  function groupMsg(name, sender, epoch, pt) {
    const m = g.encrypt(pt, K[sender].privateKey);
    fs.writeFileSync(path.join(outDir, name + '.pt'), pt);
    fs.writeFileSync(path.join(outDir, name + '.gm'), m);
    messages.push({ name, sender, epoch, plaintext_file: name + '.pt', message_file: name + '.gm' });
  }
  groupMsg('group_e0_alice', 'alice', 0, Buffer.from('hello group, epoch 0 (from alice)', 'utf8'));
  groupMsg('group_e0_alice_empty', 'alice', 0, Buffer.alloc(0));
  g.addNewEpoch();
  groupMsg('group_e1_alice', 'alice', 1, Buffer.from('epoch 1 message from alice', 'utf8'));
  groupMsg('group_e1_bob', 'bob', 1, variedData(500, 'group bob'));
  const groups = [{
    name: 'group',
    group_id_utf8: groupId,
    tickets_b64: g.export().map(b64),
    messages,
  }];

  const manifest = { producer: `virgil-crypto ${lib.version}`, keys: keysOut, cases, groups };
  fs.writeFileSync(path.join(outDir, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  process.stdout.write(JSON.stringify({ lib: lib.version, out: outDir, keys: Object.keys(keysOut).length, cases: cases.length, groups: groups.length, group_messages: messages.length }) + '\n');
}

// ------------------------------------------------------------------------------------------ check

async function check(lib, dir) {
  const c = lib.crypto;
  let passed = 0;
  const failures = [];
  const fail = (caseName, error) => failures.push({ case: caseName, error: String(error) });
  // Runs fn; a thrown error (or returned string) is a failure of `caseName`.
  const step = (caseName, what, fn) => {
    try {
      const r = fn();
      if (typeof r === 'string') { fail(caseName, `${what}: ${r}`); return false; }
      passed++;
      return true;
    } catch (e) {
      fail(caseName, `${what}: ${cleanError(e)}`);
      return false;
    }
  };
  // fn must throw (or return false) for the step to pass.
  const mustFail = (caseName, what, fn) => {
    let threw = false;
    let ok;
    try { ok = fn(); } catch (e) { threw = true; }
    if (threw || ok === false) { passed++; return true; }
    fail(caseName, `${what}: expected a failure, but it succeeded`);
    return false;
  };

  const summary = () => ({ lib: lib.version, passed, failed: failures.length, failures });

  // ---- manifest
  let manifest;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(dir, 'manifest.json'), 'utf8'));
    if (!manifest || typeof manifest !== 'object') throw new Error('not a JSON object');
    for (const f of ['producer', 'keys', 'cases', 'groups']) if (!(f in manifest)) throw new Error(`missing field "${f}"`);
    if (typeof manifest.keys !== 'object' || Array.isArray(manifest.keys)) throw new Error('"keys" must be an object');
    if (!Array.isArray(manifest.cases)) throw new Error('"cases" must be an array');
    if (!Array.isArray(manifest.groups)) throw new Error('"groups" must be an array');
  } catch (e) {
    fail('manifest', cleanError(e));
    return summary();
  }

  const readFile = (name, field, value) => {
    if (typeof value !== 'string' || value === '') throw new Error(`field "${field}" missing or not a string`);
    if (value.includes('/') || value.includes('\\') || value === '.' || value === '..') throw new Error(`field "${field}" is not a plain file name: ${value}`);
    return fs.readFileSync(path.join(dir, value));
  };

  // ---- keys
  const K = {}; // name -> { type, priv, pub }
  for (const [name, k] of Object.entries(manifest.keys)) {
    const caseName = `key:${name}`;
    step(caseName, 'import', () => {
      for (const f of ['type', 'private_key_der_b64', 'public_key_der_b64']) {
        if (typeof k[f] !== 'string') throw new Error(`missing or non-string field "${f}"`);
      }
      if (!KEY_TYPES.includes(k.type)) throw new Error(`unknown key type ${k.type}`);
      const privDer = fromB64(k.private_key_der_b64);
      const pubDer = fromB64(k.public_key_der_b64);
      const priv = c.importPrivateKey(privDer);
      const pub = c.importPublicKey(pubDer);
      const derived = c.exportPublicKey(c.extractPublicKey(priv));
      if (!derived.equals(pubDer)) throw new Error('public key derived from the private key differs from public_key_der_b64');
      if (!Buffer.from(priv.identifier).equals(Buffer.from(pub.identifier))) throw new Error('key identifiers of private and public key differ');
      const reexported = c.exportPrivateKey(priv);
      if (!reexported.equals(privDer)) throw new Error('library re-export of the private key is not byte-identical to private_key_der_b64');
      K[name] = { type: k.type, priv, pub };
    });
  }
  const keyNames = Object.keys(K);
  const needKey = (n, field) => {
    if (typeof n !== 'string') throw new Error(`field "${field}" missing or not a key name`);
    if (!K[n]) throw new Error(`${field}: unknown or unusable key "${n}"`);
    return K[n];
  };

  // ---- decrypt helpers
  function decryptOneshot(mode, ct, priv, signerPub) {
    if (mode === 'encrypt') return c.decrypt(ct, priv);
    if (mode === 'sign_then_encrypt') return c.decryptThenVerify(ct, priv, signerPub);
    return c.decryptAndVerify(ct, priv, signerPub);
  }
  function decryptStream(mode, ct, priv, signerPub, chunkOffset) {
    const chunks = oddChunks(ct, chunkOffset);
    if (mode === 'sign_and_encrypt') {
      const d = c.createStreamDecryptAndVerify();
      let finished = false;
      try {
        d.start(priv);
        const out = [];
        for (const ch of chunks) out.push(d.update(ch));
        out.push(d.final());
        finished = true;
        d.verify(signerPub); // throws on a bad/unknown signer; disposes
        return Buffer.concat(out);
      } finally {
        if (!finished && !d._isDisposed) d.dispose();
      }
    }
    // encrypt (and sign_then_encrypt: the signature sits in the message-info custom params)
    const d = c.createStreamDecipher(priv);
    try {
      const out = [];
      for (const ch of chunks) out.push(d.update(ch));
      out.push(d.final(false));
      const pt = Buffer.concat(out);
      if (mode === 'sign_then_encrypt') {
        const sig = d.getSignature();
        if (!c.verifySignature(pt, sig, signerPub)) throw new Error('signature from message info does not verify');
      }
      return pt;
    } finally {
      d.dispose(); // final(false) above leaves it undisposed so getSignature() works
    }
  }
  // The message info (outer DER SEQUENCE in front of the body) is in clear; padded messages carry the
  // RandomPadding AlgorithmIdentifier (OID 1.3.6.1.4.1.54811.1.3) in it, unpadded ones do not.
  const RANDOM_PADDING_OID = Buffer.from('060a2b0601040183ac1b0103', 'hex');
  function messageInfoLength(ct) {
    if (ct.length < 2 || ct[0] !== 0x30) throw new Error('ciphertext does not start with a DER SEQUENCE');
    const l = ct[1];
    if (l < 0x80) return 2 + l;
    const n = l & 0x7f;
    if (n === 0 || n > 4 || ct.length < 2 + n) throw new Error('bad DER length in message info');
    let len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + ct[2 + i];
    return 2 + n + len;
  }
  const same = (out, pt) => (Buffer.from(out).equals(pt) ? true : `plaintext mismatch (got ${out.length} bytes, expected ${pt.length})`);

  // ---- cases
  const seen = new Set();
  manifest.cases.forEach((cs, idx) => {
    const caseName = cs && typeof cs.name === 'string' ? cs.name : `cases[${idx}]`;
    let pt, ct, recipients, signer;
    const ok = step(caseName, 'manifest entry', () => {
      if (typeof cs.name !== 'string' || cs.name === '') throw new Error('field "name" missing');
      if (seen.has(cs.name)) throw new Error('duplicate case name');
      seen.add(cs.name);
      if (!MODES.includes(cs.mode)) throw new Error(`field "mode" missing or invalid: ${cs.mode}`);
      if (!APIS.includes(cs.api)) throw new Error(`field "api" missing or invalid: ${cs.api}`);
      if (typeof cs.padding !== 'boolean') throw new Error('field "padding" missing or not a boolean');
      if (!('signer' in cs)) throw new Error('field "signer" missing');
      if (cs.mode === 'encrypt') {
        if (cs.signer !== null) needKey(cs.signer, 'signer'); // tolerated, not used
      } else {
        signer = needKey(cs.signer, 'signer');
      }
      if (!Array.isArray(cs.recipients) || cs.recipients.length === 0) throw new Error('field "recipients" missing or empty');
      recipients = cs.recipients.map((r) => { needKey(r, 'recipients'); return r; });
      pt = readFile(cs.name, 'plaintext_file', cs.plaintext_file);
      ct = readFile(cs.name, 'ciphertext_file', cs.ciphertext_file);
    });
    if (!ok) return;
    const signerPub = signer ? signer.pub : undefined;

    step(caseName, 'padding flag matches the message info', () => {
      const has = ct.subarray(0, messageInfoLength(ct)).includes(RANDOM_PADDING_OID);
      return has === cs.padding ? true : `manifest says padding=${cs.padding} but the RandomPadding OID is ${has ? 'present' : 'absent'}`;
    });

    // Every recipient decrypts (one-shot; and streaming for api "stream").
    recipients.forEach((r, i) => {
      step(caseName, `${r}: oneshot ${cs.mode}`, () => same(decryptOneshot(cs.mode, ct, K[r].priv, signerPub), pt));
      if (cs.api === 'stream') {
        step(caseName, `${r}: stream ${cs.mode}`, () => same(decryptStream(cs.mode, ct, K[r].priv, signerPub, i), pt));
      }
    });

    // Non-recipients must fail: one key of each key type that is not a recipient.
    const typesDone = new Set();
    for (const n of keyNames) {
      if (recipients.includes(n) || typesDone.has(K[n].type)) continue;
      typesDone.add(K[n].type);
      mustFail(caseName, `non-recipient ${n} (${K[n].type}) must not decrypt`, () => c.decrypt(ct, K[n].priv));
      if (cs.api === 'stream') {
        mustFail(caseName, `non-recipient ${n} (${K[n].type}) must not stream-decrypt`, () => decryptStream('encrypt', ct, K[n].priv, undefined, 0));
      }
    }

    // Signed modes: a wrong signer key must be rejected (prefer one of the same key type).
    if (signer) {
      const others = keyNames.filter((n) => n !== cs.signer);
      const wrong = others.find((n) => K[n].type === signer.type) || others[0];
      if (wrong) {
        const r = recipients[0];
        mustFail(caseName, `verify with wrong signer ${wrong} must fail`, () => decryptOneshot(cs.mode, ct, K[r].priv, K[wrong].pub));
        if (cs.api === 'stream') {
          mustFail(caseName, `stream verify with wrong signer ${wrong} must fail`, () => decryptStream(cs.mode, ct, K[r].priv, K[wrong].pub, 1));
        }
      }
    }
  });

  // ---- groups
  manifest.groups.forEach((gr, gi) => {
    const groupName = gr && typeof gr.name === 'string' ? `group:${gr.name}` : `groups[${gi}]`;
    let session;
    const ok = step(groupName, 'import tickets', () => {
      if (typeof gr.name !== 'string') throw new Error('field "name" missing');
      if (typeof gr.group_id_utf8 !== 'string') throw new Error('field "group_id_utf8" missing');
      if (!Array.isArray(gr.tickets_b64) || gr.tickets_b64.length === 0) throw new Error('field "tickets_b64" missing or empty');
      if (!Array.isArray(gr.messages)) throw new Error('field "messages" missing');
      session = c.importGroupSession(gr.tickets_b64.map((t) => {
        if (typeof t !== 'string') throw new Error('tickets_b64 entries must be strings');
        return fromB64(t);
      }));
      const expectId = c.calculateGroupSessionId(Buffer.from(gr.group_id_utf8, 'utf8'));
      if (session.getSessionId() !== expectId) throw new Error(`session id ${session.getSessionId()} != SHA-512(group_id)[0..32] ${expectId}`);
    });
    if (!ok) return;
    gr.messages.forEach((m, mi) => {
      const msgName = `${groupName}/${m && typeof m.name === 'string' ? m.name : `messages[${mi}]`}`;
      let pt, msg, sender;
      const ok2 = step(msgName, 'manifest entry', () => {
        if (typeof m.name !== 'string') throw new Error('field "name" missing');
        sender = needKey(m.sender, 'sender');
        if (!Number.isInteger(m.epoch) || m.epoch < 0) throw new Error('field "epoch" missing or not a non-negative integer');
        pt = readFile(msgName, 'plaintext_file', m.plaintext_file);
        msg = readFile(msgName, 'message_file', m.message_file);
      });
      if (!ok2) return;
      step(msgName, 'epoch', () => {
        const info = session.parseMessage(msg);
        return info.epochNumber === m.epoch ? true : `message epoch ${info.epochNumber} != manifest epoch ${m.epoch}`;
      });
      step(msgName, `decrypt with sender ${m.sender}`, () => same(session.decrypt(msg, sender.pub), pt));
      const wrong = keyNames.find((n) => n !== m.sender && K[n].type === 'ED25519') || keyNames.find((n) => n !== m.sender);
      if (wrong) mustFail(msgName, `decrypt with wrong sender ${wrong} must fail`, () => session.decrypt(msg, K[wrong].pub));
    });
  });

  return summary();
}

// ------------------------------------------------------------------------------------------ main

function parseArgs(argv) {
  const [cmd, ...rest] = argv;
  if (cmd !== 'make' && cmd !== 'check') throw new UsageError(cmd ? `unknown command "${cmd}"` : 'missing command');
  const opts = {};
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i];
    if (a === '--lib' || a === '--out' || a === '--dir') {
      if (i + 1 >= rest.length) throw new UsageError(`${a} needs a value`);
      opts[a.slice(2)] = rest[++i];
    } else {
      throw new UsageError(`unknown argument "${a}"`);
    }
  }
  if (opts.lib !== '5' && opts.lib !== '4') throw new UsageError('--lib must be 5 or 4');
  if (cmd === 'make' && !opts.out) throw new UsageError('make needs --out DIR');
  if (cmd === 'check' && !opts.dir) throw new UsageError('check needs --dir DIR');
  if (cmd === 'make' && opts.dir) throw new UsageError('make takes --out, not --dir');
  if (cmd === 'check' && opts.out) throw new UsageError('check takes --dir, not --out');
  return { cmd, ...opts };
}

async function main() {
  let args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`oracle.js: ${e.message}\n${USAGE}\n`);
      process.exit(2);
    }
    throw e;
  }
  const lib = await loadLib(args.lib);
  if (args.cmd === 'make') {
    await make(lib, path.resolve(args.out));
    return 0;
  }
  const s = await check(lib, path.resolve(args.dir));
  process.stdout.write(JSON.stringify(s) + '\n');
  return s.failed > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    process.stderr.write(`oracle.js: FATAL: ${e && e.stack ? e.stack : e}\n`);
    process.exit(1);
  },
);
