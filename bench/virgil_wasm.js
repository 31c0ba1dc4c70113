#!/usr/bin/env node
// Benchmarks Virgil's JavaScript SDK `virgil-crypto` 5.1.2 (virgil-crypto-c "foundation" compiled to
// WebAssembly) on the operations that bench/compare puts side by side with Sealkit.
//
// Usage:  node bench/virgil_wasm.js [--quick] [--ops op1,op2] [--target-seconds S]
//                                   [--bulk-mode auto|oneshot|stream] [--node-modules DIR]
// Output: one JSON object per line on stdout:
//   {"impl":"virgil-wasm","op":"<op>","ns_per_op":<float>,"iters":<n>, ...}
// Progress and diagnostics go to stderr.
//
// The package is loaded from --node-modules, else $VIRGIL_NODE_MODULES, else <repo>/interop/node_modules.

delete globalThis.fetch; // the emscripten loader breaks on Node >= 18 when a global fetch exists

const path = require('path');
const nodeCrypto = require('crypto');

// ------------------------------------------------------------------------------------------ arguments
const argv = process.argv.slice(2);
const opt = { quick: false, ops: null, target: null, bulkMode: 'auto', nodeModules: null };
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  const val = () => {
    if (i + 1 >= argv.length) usage(`${a} needs a value`);
    return argv[++i];
  };
  if (a === '--quick') opt.quick = true;
  else if (a === '--ops') opt.ops = val().split(',').filter(Boolean);
  else if (a === '--target-seconds') opt.target = Number(val());
  else if (a === '--bulk-mode') opt.bulkMode = val();
  else if (a === '--node-modules') opt.nodeModules = val();
  else if (a === '-h' || a === '--help') usage();
  else usage(`unknown argument ${a}`);
}
if (!['auto', 'oneshot', 'stream'].includes(opt.bulkMode)) usage(`bad --bulk-mode ${opt.bulkMode}`);

function usage(msg) {
  if (msg) process.stderr.write(`virgil_wasm.js: ${msg}\n`);
  process.stderr.write('usage: node virgil_wasm.js [--quick] [--ops a,b] [--target-seconds S] ' +
    '[--bulk-mode auto|oneshot|stream] [--node-modules DIR]\n');
  process.exit(msg ? 2 : 0);
}

const NM = opt.nodeModules || process.env.VIRGIL_NODE_MODULES || path.join(__dirname, '..', 'interop', 'node_modules');
const IMPL = 'virgil-wasm';
const KIB = 1024;
const MIB = 1024 * 1024;
const BULK_BYTES = opt.quick ? 4 * MIB : 64 * MIB;
const STREAM_CHUNK = MIB;
// Time spent measuring one op (after warm-up). Bulk ops always get at least MIN_ITERS_BULK runs.
const TARGET_S = opt.target || (opt.quick ? 0.15 : 1.0);
const WARMUP_S = Math.min(0.25, TARGET_S / 4);
const MAX_ITERS = 1000000;
const MIN_ITERS = opt.quick ? 3 : 5;
const MIN_ITERS_BULK = opt.quick ? 2 : 3;
const SAMPLES = 5;

const log = (s) => process.stderr.write(`[virgil-wasm] ${s}\n`);
const now = () => process.hrtime.bigint();
const secs = (t0, t1) => Number(t1 - t0) / 1e9;

// Warm up, size the run from the warm-up estimate, time SAMPLES batches and report the median batch.
function bench(op, fn, { minIters = MIN_ITERS, extra = {} } = {}) {
  if (opt.ops && !opt.ops.includes(op)) return;
  let n = 0;
  const w0 = now();
  let el = 0;
  do {
    fn();
    n++;
    el = secs(w0, now());
  } while (el < WARMUP_S && n < MAX_ITERS);
  const est = el / n;
  const iters = Math.max(minIters, Math.min(MAX_ITERS, Math.ceil(TARGET_S / est)));
  const batches = Math.min(SAMPLES, iters);
  const per = [];
  let done = 0;
  for (let b = 0; b < batches; b++) {
    const k = Math.floor(iters / batches) + (b < iters % batches ? 1 : 0);
    const t0 = now();
    for (let i = 0; i < k; i++) fn();
    per.push(Number(now() - t0) / k);
    done += k;
  }
  per.sort((x, y) => x - y);
  const median = per.length % 2 ? per[(per.length - 1) / 2] : (per[per.length / 2 - 1] + per[per.length / 2]) / 2;
  const line = { impl: IMPL, op, ns_per_op: Number(median.toFixed(1)), iters: done, ns_min: Number(per[0].toFixed(1)), ...extra };
  process.stdout.write(JSON.stringify(line) + '\n');
  log(`${op}: ${(median / 1e3).toFixed(1)} us/op (${done} iters)`);
}

function check(cond, what) {
  if (!cond) throw new Error(`self-check failed: ${what}`);
}

(async () => {
  let vc;
  try {
    vc = require(require.resolve('virgil-crypto', { paths: [NM] }));
  } catch (e) {
    log(`cannot load virgil-crypto from ${NM}: ${e.message}`);
    process.exit(1);
  }
  let version = null;
  try {
    version = require(require.resolve('virgil-crypto/package.json', { paths: [NM] })).version;
  } catch (e) { /* older layouts */ }
  if (version && version !== '5.1.2') log(`WARNING: expected virgil-crypto 5.1.2, found ${version}`);
  log(`virgil-crypto ${version} from ${NM}; node ${process.version}; bulk ${BULK_BYTES} bytes${opt.quick ? ' (quick)' : ''}`);

  await vc.initCrypto();
  const crypto = new vc.VirgilCrypto(); // default key type: Ed25519

  const alice = crypto.generateKeys();
  const bob = crypto.generateKeys();
  const many = Array.from({ length: 100 }, () => crypto.generateKeys());
  const manyPubs = many.map((k) => k.publicKey);
  const last = many[many.length - 1];
  const msg1k = nodeCrypto.randomBytes(KIB);

  // keygen: generateKeys() returns WASM-backed objects; free them so a long loop does not grow the heap.
  bench('keygen_ed25519', () => {
    const kp = crypto.generateKeys();
    kp.privateKey.dispose();
    kp.publicKey.dispose();
  });

  // sign / verify 1 KiB (VirgilSignature DER: Ed25519 over SHA-512(data))
  const sig = crypto.calculateSignature(msg1k, alice.privateKey);
  check(crypto.verifySignature(msg1k, sig, alice.publicKey), 'verifySignature');
  bench('sign_1k', () => crypto.calculateSignature(msg1k, alice.privateKey));
  bench('verify_1k', () => {
    if (!crypto.verifySignature(msg1k, sig, alice.publicKey)) throw new Error('bad signature');
  });

  // e3kit authEncrypt / authDecrypt = signAndEncrypt(..., padding = true) / decryptAndVerify
  const ct1 = crypto.signAndEncrypt(msg1k, alice.privateKey, [bob.publicKey], true);
  check(crypto.decryptAndVerify(ct1, bob.privateKey, alice.publicKey).equals(msg1k), 'decryptAndVerify 1r');
  bench('auth_encrypt_1k_1r', () => crypto.signAndEncrypt(msg1k, alice.privateKey, [bob.publicKey], true),
    { extra: { bytes: KIB, recipients: 1 } });
  bench('auth_decrypt_1k_1r', () => crypto.decryptAndVerify(ct1, bob.privateKey, alice.publicKey),
    { extra: { bytes: KIB, recipients: 1 } });

  const ct100 = crypto.signAndEncrypt(msg1k, alice.privateKey, manyPubs, true);
  check(crypto.decryptAndVerify(ct100, last.privateKey, alice.publicKey).equals(msg1k), 'decryptAndVerify 100r');
  bench('auth_encrypt_1k_100r', () => crypto.signAndEncrypt(msg1k, alice.privateKey, manyPubs, true),
    { extra: { bytes: KIB, recipients: 100 } });
  bench('auth_decrypt_1k_100r', () => crypto.decryptAndVerify(ct100, last.privateKey, alice.publicKey),
    { extra: { bytes: KIB, recipients: 100, note: 'decrypting as the last of the 100 recipients' } });

  // Bulk: plain encrypt(data, [bob]) / decrypt. One-shot needs input + output (+ message info) inside the
  // WASM heap at once; if that fails we fall back to the stream API with 1 MiB chunks (same format).
  const wantBulk = !opt.ops || opt.ops.includes('bulk_encrypt_64m') || opt.ops.includes('bulk_decrypt_64m');
  if (wantBulk) {
    const big = nodeCrypto.randomBytes(BULK_BYTES);
    const streamEncrypt = (data) => {
      const c = crypto.createStreamCipher([bob.publicKey]);
      const parts = [c.start()];
      for (let off = 0; off < data.length; off += STREAM_CHUNK) parts.push(c.update(data.subarray(off, off + STREAM_CHUNK)));
      parts.push(c.final());
      return Buffer.concat(parts);
    };
    const streamDecrypt = (data) => {
      const d = crypto.createStreamDecipher(bob.privateKey);
      const parts = [];
      for (let off = 0; off < data.length; off += STREAM_CHUNK) parts.push(d.update(data.subarray(off, off + STREAM_CHUNK)));
      parts.push(d.final());
      return Buffer.concat(parts);
    };
    const oneshotEncrypt = (data) => crypto.encrypt(data, [bob.publicKey]);
    const oneshotDecrypt = (data) => crypto.decrypt(data, bob.privateKey);

    let mode = opt.bulkMode;
    let bigCt = null;
    if (mode !== 'stream') {
      try {
        bigCt = oneshotEncrypt(big);
        check(oneshotDecrypt(bigCt).equals(big), 'one-shot bulk round trip');
        mode = 'oneshot';
      } catch (e) {
        if (mode === 'oneshot') throw e;
        log(`one-shot ${BULK_BYTES}-byte encrypt/decrypt failed (${e.message}); using the stream API`);
        mode = 'stream';
        bigCt = null;
      }
    }
    if (mode === 'stream') {
      bigCt = streamEncrypt(big);
      check(streamDecrypt(bigCt).equals(big), 'stream bulk round trip');
    }
    const notes = [];
    if (mode === 'stream') notes.push('stream API (createStreamCipher/createStreamDecipher), 1 MiB chunks');
    else notes.push('one-shot encrypt()/decrypt()');
    if (opt.quick) notes.push(`quick: ${BULK_BYTES / MIB} MiB instead of 64 MiB`);
    const extra = { bytes: BULK_BYTES, note: notes.join('; ') };
    const enc = mode === 'stream' ? streamEncrypt : oneshotEncrypt;
    const dec = mode === 'stream' ? streamDecrypt : oneshotDecrypt;
    bench('bulk_encrypt_64m', () => enc(big), { minIters: MIN_ITERS_BULK, extra });
    bench('bulk_decrypt_64m', () => dec(bigCt), { minIters: MIN_ITERS_BULK, extra });
  }
})().catch((e) => {
  log(`FAILED: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
