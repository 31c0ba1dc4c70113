delete globalThis.fetch; // the emscripten loader of virgil-crypto breaks on Node >= 18 when fetch exists

// End-to-end SDK benchmark (issue 5), the e3kit-node side: the same steps as
// crates/client/examples/bench_e2e.rs, with the REAL @virgilsecurity/e3kit-node 2.5.1 against a running
// Sealkit server: initialize + register one user, register 50 more users (setup, timed as a whole), one
// findUsers call for the 50, authEncrypt of 1 KiB for the 50, authDecrypt of it by one of them.
//
//   node interop/bench_e2e.js API_URL APP_JSON STORAGE_DIR [PREFIX] [REPS]
//
// Prints one line `RESULT {json}` with the milliseconds of every step (the median over REPS repetitions
// where a step repeats; register_50 is one run). e3kit's own console noise goes to stdout too; only the
// RESULT line matters. Exit 1 on any error.

const fs = require('fs');
const path = require('path');
const { loadE3kit, loadCredentials, makeTokenFactory, errText } = require('./e3kit_common');

const USERS = 50;
const PAYLOAD = 1024;

const now = () => Number(process.hrtime.bigint()) / 1e6;

function median(samples) {
  const s = [...samples].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

async function main() {
  const argv = process.argv.slice(2);
  if (argv.length < 3) {
    process.stderr.write('usage: node bench_e2e.js API_URL APP_CREDENTIALS_JSON STORAGE_DIR [PREFIX] [REPS]\n');
    process.exit(2);
  }
  const apiUrl = argv[0].replace(/\/+$/, '');
  const creds = loadCredentials(argv[1]);
  const root = path.resolve(argv[2]);
  const prefix = argv[3] || 'js';
  const reps = Math.max(1, Number(argv[4] || 5));
  fs.mkdirSync(root, { recursive: true });

  const lib = await loadE3kit();
  const { EThree } = lib.e3kit;
  const tokens = makeTokenFactory(lib, creds);

  // EThree.initialize + register for a fresh identity with its own storage.
  const initRegister = async (identity, split) => {
    const dir = path.join(root, identity);
    const t0 = now();
    const ethree = await EThree.initialize(() => tokens.mint(identity).toString(), {
      apiUrl,
      storageName: path.join(dir, 'keys'),
      groupStorageName: path.join(dir, 'groups'),
    });
    const t1 = now();
    await ethree.register();
    if (split) {
      split.init.push(t1 - t0);
      split.register.push(now() - t1);
    }
    return ethree;
  };

  // 1. initialize + register one user: `reps` fresh users, the median; the first is the sender.
  let samples = [];
  const split = { init: [], register: [] };
  let sender;
  for (let i = 0; i < reps; i++) {
    const t = now();
    const e = await initRegister(`${prefix}-sender-${i}`, split);
    samples.push(now() - t);
    if (!sender) sender = e;
  }
  const initRegisterMs = median(samples);

  // 2. register 50 other users, one after the other (setup; timed as a whole).
  const identities = Array.from({ length: USERS }, (_, i) => `${prefix}-user-${i}`);
  let t = now();
  let recipient;
  for (const identity of identities) {
    const e = await initRegister(identity);
    if (!recipient) recipient = e;
  }
  const register50Ms = now() - t;

  // 3. find the 50 users, one call.
  samples = [];
  let cards;
  for (let i = 0; i < reps; i++) {
    t = now();
    cards = await sender.findUsers(identities);
    samples.push(now() - t);
  }
  const find50Ms = median(samples);
  if (Object.keys(cards).length !== USERS) throw new Error(`found ${Object.keys(cards).length} cards`);

  // 4. authEncrypt 1 KiB for the 50 (a Buffer in, a Buffer out).
  const payload = Buffer.alloc(PAYLOAD);
  for (let i = 0; i < PAYLOAD; i++) payload[i] = i % 251;
  samples = [];
  let message;
  for (let i = 0; i < reps * 4; i++) {
    t = now();
    message = await sender.authEncrypt(payload, cards);
    samples.push(now() - t);
  }
  const encrypt50Ms = median(samples);

  // 5. authDecrypt by one recipient (the sender's card looked up first, untimed).
  const senderCard = await recipient.findUsers(sender.identity);
  samples = [];
  for (let i = 0; i < reps * 4; i++) {
    t = now();
    const plain = await recipient.authDecrypt(message, senderCard);
    samples.push(now() - t);
    if (!Buffer.from(plain).equals(payload)) throw new Error('decrypted data differs');
  }
  const decryptMs = median(samples);

  const result = {
    side: 'e3kit-node',
    e3kit: lib.versions.e3kit,
    reps,
    init_register: initRegisterMs,
    initialize: median(split.init),
    register: median(split.register),
    register_50: register50Ms,
    find_50: find50Ms,
    auth_encrypt_50: encrypt50Ms,
    auth_decrypt: decryptMs,
    ciphertext_bytes: message.length,
  };
  process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

main().then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`bench_e2e.js: ${errText(e)}\n${(e && e.stack) || ''}\n`);
    process.exit(1);
  },
);
