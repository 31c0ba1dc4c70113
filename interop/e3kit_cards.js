delete globalThis.fetch; // the emscripten loader of virgil-crypto breaks on Node >= 18 when fetch exists

// Cards scenario for Sealkit's end-to-end tests: drives the REAL @virgilsecurity/e3kit-node 2.5.1 against a
// running server (register / findUsers / lookupPublicKeys / authEncrypt / rotatePrivateKey / unregister /
// cleanup / token expiry), one named check per line.
//
//   node interop/e3kit_cards.js --api-url URL [--api-url URL2] --app-credentials FILE --storage DIR [--prefix STR]
//
// FILE: {"app_id","api_key_id","api_private_key"(base64 PKCS#8 DER),"api_public_key"}. Tokens are minted here
// with virgil-sdk's JwtGenerator. With several --api-url values the users are spread over the servers
// round-robin (alice -> URL1, bob -> URL2, charles -> URL1, ...). Output: `ok <name>` / `FAIL <name>: <error>`
// lines (plus `# ` notes), then `N passed, M failed`. Exit 0 / 1 (failures) / 2 (usage). See README.md.

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const {
  UsageError, parseArgs, loadE3kit, loadCredentials, makeTokenFactory, Checks,
  assert, need, expectError, expectThrow, sleep, rawRequest,
} = require('./e3kit_common');

const USAGE = 'usage: node e3kit_cards.js --api-url URL [--api-url URL2] --app-credentials FILE --storage DIR [--prefix STR]';
const TOTAL_TIMEOUT_MS = 120000;
let checks = null; // the running Checks, for the crash/timeout summary

function parse(argv) {
  const a = parseArgs(argv, {
    '--api-url': 'list', '--app-credentials': 'string', '--storage': 'string', '--prefix': 'string', '--help': 'flag',
  });
  if (a.help) throw new UsageError('');
  if (a.apiUrl.length === 0) throw new UsageError('--api-url is required');
  if (!a.appCredentials) throw new UsageError('--app-credentials is required');
  if (!a.storage) throw new UsageError('--storage is required');
  for (const u of a.apiUrl) {
    let p;
    try {
      p = new URL(u);
    } catch (_) {
      throw new UsageError(`bad --api-url: ${u}`);
    }
    if (p.protocol !== 'http:' && p.protocol !== 'https:') throw new UsageError(`bad --api-url: ${u}`);
  }
  a.apiUrl = a.apiUrl.map((u) => u.replace(/\/+$/, ''));
  a.creds = loadCredentials(a.appCredentials);
  if (a.prefix !== undefined && !/^[A-Za-z0-9._-]*$/.test(a.prefix)) {
    throw new UsageError('--prefix: ASCII letters, digits, ".", "_", "-" only');
  }
  return a;
}

async function main() {
  let args;
  try {
    args = parse(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      if (e.message) process.stderr.write(`${e.message}\n`);
      process.stderr.write(`${USAGE}\n`);
      return 2;
    }
    throw e;
  }

  const started = Date.now();
  const lib = await loadE3kit();
  const { EThree } = lib.e3kit;
  const tokens = makeTokenFactory(lib, args.creds);
  const run = `${args.prefix === undefined ? 'e3kit-cards-' : args.prefix}${crypto.randomBytes(4).toString('hex')}`;
  const storageRoot = path.resolve(args.storage);
  fs.mkdirSync(storageRoot, { recursive: true });
  const t = new Checks();
  checks = t;
  t.note(`e3kit-node ${lib.versions.e3kit} (virgil-crypto ${lib.versions.crypto}), run ${run}, api ${args.apiUrl.join(' ')}`);

  // lookupPublicKeys prints a deprecation warning on every call; keep stderr clean.
  const origWarn = console.warn;
  console.warn = (...m) => {
    if (typeof m[0] === 'string' && /deprecated/i.test(m[0])) return;
    origWarn(...m);
  };

  // ---------------------------------------------------------------------------------- users
  let userCount = 0;
  const users = {};
  // A user = identity + its own server URL, storage dirs and token callback (which records its calls).
  const makeUser = (name, { ttlMs = 20 * 60 * 1000 } = {}) => {
    const identity = `${run}-${name}`;
    const apiUrl = args.apiUrl[userCount++ % args.apiUrl.length];
    const dir = path.join(storageRoot, identity);
    const u = { name, identity, apiUrl, dir, ttlMs, calls: [], queue: [], lastToken: null };
    u.tokenCallback = (ctx) => {
      u.calls.push({ ...(ctx || {}), at: Date.now() });
      const jwt = u.queue.length > 0 ? u.queue.shift() : tokens.mint(identity, u.ttlMs);
      u.lastToken = jwt;
      return jwt.toString();
    };
    users[name] = u;
    return u;
  };
  const initialize = async (u) => {
    u.e3 = await EThree.initialize(u.tokenCallback, {
      apiUrl: u.apiUrl,
      storageName: path.join(u.dir, 'keys'), // virgil-sdk KeyEntryStorage directory (local private key)
      groupStorageName: path.join(u.dir, 'groups'), // leveldown directory for group sessions
    });
    assert(u.e3.identity === u.identity, `identity ${u.e3.identity} != ${u.identity}`);
    return u.e3;
  };
  // A CardManager built like e3kit's (no signature verification for a custom apiUrl), for GET /card/v5/{id}
  // which e3kit itself never calls.
  const cardCrypto = new lib.vc.VirgilCardCrypto(lib.crypto);
  const sdkCardManager = (u) => new lib.sdk.CardManager({
    cardCrypto,
    cardVerifier: new lib.sdk.VirgilCardVerifier(cardCrypto, { verifySelfSignature: false, verifyVirgilSignature: false }),
    accessTokenProvider: new lib.sdk.CachingJwtProvider(u.tokenCallback),
    retryOnUnauthorized: true,
    apiUrl: u.apiUrl,
  });
  const selfSigVerifier = new lib.sdk.VirgilCardVerifier(cardCrypto, { verifySelfSignature: true, verifyVirgilSignature: false });
  const pubB64 = (k) => lib.crypto.exportPublicKey(k).toString('base64');

  const alice = makeUser('alice');
  const bob = makeUser('bob');
  const charles = makeUser('charles');
  const nobody = `${run}-nobody`;

  // ---------------------------------------------------------------------------------- 1. register
  for (const u of [alice, bob, charles]) {
    await t.check(`1 initialize ${u.name}`, () => initialize(u));
  }
  for (const u of [alice, bob, charles]) {
    await t.check(`1 register ${u.name}`, async () => {
      await need(u.e3, u.name).register();
      assert(await u.e3.hasLocalPrivateKey(), 'no local private key after register');
    });
  }
  for (const u of [alice, bob]) {
    await t.check(`1 register ${u.name} again -> IdentityAlreadyExistsError`, () =>
      expectError(() => need(u.e3, u.name).register(), 'IdentityAlreadyExistsError'));
  }

  // ---------------------------------------------------------------------------------- 2. find users
  const cards = {}; // as seen by alice
  cards.bob = await t.check('2 findUsers(bob) -> one card', async () => {
    const c = await need(alice.e3, 'alice').findUsers(bob.identity);
    assert(c && c.identity === bob.identity, `expected a card of ${bob.identity}, got ${c && c.identity}`);
    assert(/^[0-9a-f]{64}$/.test(c.id), `card id ${c.id}`);
    assert(!c.previousCard && !c.isOutdated, 'fresh card has previousCard/isOutdated');
    return c;
  });
  const many = await t.check('2 findUsers([bob, charles, alice]) -> 3 cards', async () => {
    const r = await need(alice.e3, 'alice').findUsers([bob.identity, charles.identity, alice.identity]);
    const keys = Object.keys(r).sort();
    const want = [alice.identity, bob.identity, charles.identity].sort();
    assert(JSON.stringify(keys) === JSON.stringify(want), `identities ${JSON.stringify(keys)}`);
    for (const [id, c] of Object.entries(r)) assert(c.identity === id, `card under ${id} is of ${c.identity}`);
    if (cards.bob) assert(r[bob.identity].id === cards.bob.id, 'bob card id differs between searches');
    return r;
  });
  if (many) {
    cards.alice = many[alice.identity];
    cards.charles = many[charles.identity];
    cards.bob = cards.bob || many[bob.identity];
  }
  await t.check('2 cards carry a valid self signature (snapshot stored verbatim)', () => {
    const all = Object.values(need(many, 'findUsers result'));
    for (const c of all) assert(selfSigVerifier.verifyCard(c), `self signature of ${c.identity} does not verify`);
    const virgil = all.filter((c) => c.signatures.some((s) => s.signer === 'virgil')).length;
    t.note(`${virgil}/${all.length} cards carry a "virgil" service signature (recommended, not required)`);
  });
  await t.check('2 findUsers([bob, nobody]) -> UsersNotFoundError [nobody]', async () => {
    const e = await expectError(() => need(alice.e3, 'alice').findUsers([bob.identity, nobody]), 'UsersNotFoundError');
    assert(JSON.stringify(e.identities) === JSON.stringify([nobody]), `identities ${JSON.stringify(e.identities)}`);
  });
  await t.check('2 lookupPublicKeys(bob) -> public key', async () => {
    const k = await need(alice.e3, 'alice').lookupPublicKeys(bob.identity);
    assert(pubB64(k) === pubB64(need(cards.bob, 'bob card').publicKey), 'key differs from the card key');
  });
  await t.check('2 lookupPublicKeys([bob, charles]) -> 2 public keys', async () => {
    const r = await need(alice.e3, 'alice').lookupPublicKeys([bob.identity, charles.identity]);
    assert(Object.keys(r).length === 2, `got ${Object.keys(r).length} keys`);
    assert(pubB64(r[bob.identity]) === pubB64(need(cards.bob, 'bob card').publicKey), 'bob key differs');
    assert(pubB64(r[charles.identity]) === pubB64(need(cards.charles, 'charles card').publicKey), 'charles key differs');
  });
  await t.check('2 lookupPublicKeys([bob, nobody]) -> LookupError', async () => {
    const e = await expectError(() => need(alice.e3, 'alice').lookupPublicKeys([bob.identity, nobody]), 'LookupError');
    assert(e.lookupResult[nobody] && e.lookupResult[nobody].name === 'LookupNotFoundError', 'nobody not LookupNotFoundError');
  });

  // ---------------------------------------------------------------------------------- 3. encrypt/decrypt
  const text3 = `hello from alice ${run} \u00e9\u4e2d`;
  const aliceCardForBob = await t.check('3 findUsers(alice) by bob and by charles', async () => {
    const c = await need(bob.e3, 'bob').findUsers(alice.identity);
    const c2 = await need(charles.e3, 'charles').findUsers(alice.identity);
    assert(c.id === c2.id, 'bob and charles see different alice cards');
    if (cards.alice) assert(c.id === cards.alice.id, 'alice card id differs between searches');
    return c;
  });
  const ct3 = await t.check('3 authEncrypt by alice for [bob, charles]', async () => {
    const recipients = await need(alice.e3, 'alice').findUsers([bob.identity, charles.identity]);
    return alice.e3.authEncrypt(text3, recipients);
  });
  for (const u of [bob, charles]) {
    await t.check(`3 authDecrypt by ${u.name} with alice card`, async () => {
      const p = await need(u.e3, u.name).authDecrypt(need(ct3, 'ciphertext'), need(aliceCardForBob, 'alice card'));
      assert(p === text3, 'plaintext mismatch');
    });
  }
  await t.check('3 authDecrypt with the wrong sender card fails', () =>
    expectThrow(() => need(bob.e3, 'bob').authDecrypt(need(ct3, 'ciphertext'), need(cards.charles, 'charles card')), 'decrypt with wrong sender'));
  await t.check('3 tampered ciphertext fails', async () => {
    const buf = Buffer.from(need(ct3, 'ciphertext'), 'base64');
    // authEncrypt output = message info | AES-GCM body (padded to >= 160 bytes) | signature footer (< 120
    // bytes for one Ed25519 signer): flip one bit inside the encrypted body.
    buf[buf.length - 200] ^= 0x01;
    const e = await expectThrow(() => bob.e3.authDecrypt(buf.toString('base64'), need(aliceCardForBob, 'alice card')), 'tampered decrypt');
    assert(/authentication failed|corrupted|signature/i.test(e.message), `unexpected error: ${e.message}`);
  });
  await t.check('3 encrypt (legacy) by alice -> decrypt by bob', async () => {
    const ct = await need(alice.e3, 'alice').encrypt(text3, need(cards.bob, 'bob card'));
    const p = await need(bob.e3, 'bob').decrypt(ct, need(aliceCardForBob, 'alice card'));
    assert(p === text3, 'plaintext mismatch');
  });

  // ---------------------------------------------------------------------------------- 4. rotation
  const m1Text = `M1 before rotation ${run}`;
  const m2Text = `M2 after rotation ${run}`;
  const oldAliceCard = aliceCardForBob;
  await t.check('4 rotatePrivateKey with local key -> PrivateKeyAlreadyExistsError', () =>
    expectError(() => need(alice.e3, 'alice').rotatePrivateKey(), 'PrivateKeyAlreadyExistsError'));
  let m1SentAt;
  const m1 = await t.check('4 authEncrypt M1 by alice for bob (before rotation)', async () => {
    const ct = await need(alice.e3, 'alice').authEncrypt(m1Text, need(cards.bob, 'bob card'));
    m1SentAt = new Date();
    return ct;
  });
  // Card created_at has 1 s resolution: publish the new card in a later second than M1's send time, so
  // that getCardActiveAtMoment(newCard, sentAt) selects the previous card.
  await sleep(1000 - (Date.now() % 1000) + 50);
  await t.check('4 cleanup + rotatePrivateKey alice', async () => {
    await need(alice.e3, 'alice').cleanup();
    assert(!(await alice.e3.hasLocalPrivateKey()), 'local key still present after cleanup');
    await alice.e3.rotatePrivateKey();
    assert(await alice.e3.hasLocalPrivateKey(), 'no local key after rotatePrivateKey');
  });
  const newAliceCard = await t.check('4 findUsers(alice) by bob -> new card', async () => {
    const c = await need(bob.e3, 'bob').findUsers(alice.identity);
    const old = need(oldAliceCard, 'old alice card');
    assert(c.id !== old.id, 'search still returns the old card as the current one');
    assert(c.previousCardId === old.id, `previousCardId ${c.previousCardId} != ${old.id}`);
    assert(!c.isOutdated, 'new card marked outdated');
    return c;
  });
  await t.check('4 new alice card has previousCard (search returns the predecessor chain)', () => {
    const c = need(newAliceCard, 'new alice card');
    assert(c.previousCard, 'previousCard not set: search did not return the superseded predecessor');
    assert(c.previousCard.id === oldAliceCard.id && c.previousCard.isOutdated === true, 'previousCard wrong or not outdated');
  });
  await t.check('4 bob authDecrypt M1 with new alice card + encryptedAt', async () => {
    const p = await need(bob.e3, 'bob').authDecrypt(need(m1, 'M1'), need(newAliceCard, 'new alice card'), need(m1SentAt, 'M1 time'));
    assert(p === m1Text, 'plaintext mismatch');
  });
  await t.check('4 bob authDecrypt M1 with new alice card, no encryptedAt -> fails', () =>
    expectThrow(() => need(bob.e3, 'bob').authDecrypt(need(m1, 'M1'), need(newAliceCard, 'new alice card')), 'M1 verification with the new key'));
  await t.check('4 authEncrypt M2 by rotated alice -> bob authDecrypt with new card', async () => {
    const ct = await need(alice.e3, 'alice').authEncrypt(m2Text, need(cards.bob, 'bob card'));
    const p = await bob.e3.authDecrypt(ct, need(newAliceCard, 'new alice card'));
    assert(p === m2Text, 'plaintext mismatch');
  });
  await t.check('4 sdk getCard(old alice card) -> superseded; getCard(new) -> current', async () => {
    const cm = sdkCardManager(bob);
    const o = await cm.getCard(need(oldAliceCard, 'old alice card').id);
    assert(o.isOutdated === true, 'old card: X-Virgil-Is-Superseeded is not "true"');
    const n = await cm.getCard(need(newAliceCard, 'new alice card').id);
    assert(n.isOutdated === false, 'new card: X-Virgil-Is-Superseeded is "true"');
    assert(n.previousCardId === oldAliceCard.id, 'new card previousCardId');
  });
  await t.check('4 sdk getCard(unknown id) -> 404', async () => {
    const e = await expectError(() => sdkCardManager(bob).getCard('0'.repeat(64)), 'VirgilHttpError');
    assert(e.httpStatus === 404, `http ${e.httpStatus}`);
  });

  // ---------------------------------------------------------------------------------- 5. unregister
  const oldCharlesCard = cards.charles;
  await t.check('5 unregister charles', async () => {
    await need(charles.e3, 'charles').unregister();
    assert(!(await charles.e3.hasLocalPrivateKey()), 'local key still present after unregister');
  });
  await t.check('5 findUsers(charles) -> UsersNotFoundError', async () => {
    const e = await expectError(() => need(bob.e3, 'bob').findUsers(charles.identity), 'UsersNotFoundError');
    assert(JSON.stringify(e.identities) === JSON.stringify([charles.identity]), `identities ${JSON.stringify(e.identities)}`);
  });
  await t.check('5 unregister charles again -> RegisterRequiredError', () =>
    expectError(() => need(charles.e3, 'charles').unregister(), 'RegisterRequiredError'));
  await t.check('5 sdk getCard(revoked charles card) -> superseded', async () => {
    const o = await sdkCardManager(bob).getCard(need(oldCharlesCard, 'old charles card').id);
    assert(o.isOutdated === true, 'revoked card: X-Virgil-Is-Superseeded is not "true"');
  });
  await t.check('5 register charles again', () => need(charles.e3, 'charles').register());
  const newCharlesCard = await t.check('5 findUsers(charles) by bob -> new card', async () => {
    const c = await need(bob.e3, 'bob').findUsers(charles.identity);
    assert(c.id !== need(oldCharlesCard, 'old charles card').id, 'still the revoked card');
    assert(!c.previousCardId && !c.previousCard, 're-registered card has a predecessor');
    return c;
  });
  await t.check('5 bob authEncrypt to new charles -> charles authDecrypt', async () => {
    const text = `to the new charles ${run}`;
    const ct = await need(bob.e3, 'bob').authEncrypt(text, need(newCharlesCard, 'new charles card'));
    const bobCard = await need(charles.e3, 'charles').findUsers(bob.identity);
    const p = await charles.e3.authDecrypt(ct, bobCard);
    assert(p === text, 'plaintext mismatch');
  });

  // A rotated identity: unregister revokes only the head card; the superseded predecessor must vanish too.
  await t.check('5 unregister alice (rotated chain) -> findUsers(alice) -> UsersNotFoundError', async () => {
    await need(alice.e3, 'alice').unregister();
    await expectError(() => need(bob.e3, 'bob').findUsers(alice.identity), 'UsersNotFoundError');
  });
  await t.check('5 register alice again after unregistering a rotated chain', async () => {
    await need(alice.e3, 'alice').register();
    const c = await need(bob.e3, 'bob').findUsers(alice.identity);
    assert(!c.previousCardId && !c.previousCard, 're-registered card has a predecessor');
    assert(![oldAliceCard && oldAliceCard.id, newAliceCard && newAliceCard.id].includes(c.id), 'an old card came back');
  });

  // ---------------------------------------------------------------------------------- 6. cleanup
  await t.check('6 hasLocalPrivateKey bob true -> cleanup -> false', async () => {
    assert((await need(bob.e3, 'bob').hasLocalPrivateKey()) === true, 'hasLocalPrivateKey not true before cleanup');
    await bob.e3.cleanup();
    assert((await bob.e3.hasLocalPrivateKey()) === false, 'hasLocalPrivateKey not false after cleanup');
  });
  await t.check('6 authDecrypt after cleanup -> MissingPrivateKeyError', () =>
    expectError(() => need(bob.e3, 'bob').authDecrypt(need(ct3, 'ciphertext'), need(aliceCardForBob, 'alice card')), 'MissingPrivateKeyError'));

  // ---------------------------------------------------------------------------------- 7. token expiry
  // e3kit's CachingJwtProvider asks the callback again whenever the cached JWT expires within 5 s, so
  // with short-lived tokens the app is simply asked for a new one (7a). The server's 401 + 20304 path
  // and CardManager's single retry (forceReload) are exercised by handing e3kit one expired token (7b).
  const dave = makeUser('dave', { ttlMs: 2000 });
  await t.check('7 initialize + register dave with 2 s tokens', async () => {
    await initialize(dave);
    await dave.e3.register();
  });
  await t.check('7a findUsers after the short-lived token expired', async () => {
    need(dave.e3, 'dave');
    const exp = dave.lastToken.body.exp;
    await sleep(Math.max(0, (exp + 1) * 1000 - Date.now() + 50));
    assert(dave.lastToken.isExpired(), 'last token not expired yet');
    const before = dave.calls.length;
    const c = await dave.e3.findUsers(alice.identity);
    assert(c.identity === alice.identity, 'wrong card');
    const calls = dave.calls.slice(before);
    assert(calls.length >= 1, 'token callback not called again although the cached token had expired');
    t.note(`7a: token callback called ${calls.length}x during findUsers (forceReload: ${calls.some((x) => x.forceReload)}); ` +
      'CachingJwtProvider re-mints tokens that expire within 5 s, so no expired token was sent');
  });
  await t.check('7b expired token -> server 401/20304 -> e3kit retries with a fresh token', async () => {
    need(dave.e3, 'dave');
    dave.ttlMs = 20 * 60 * 1000;
    const now = Math.floor(Date.now() / 1000);
    dave.queue.push(tokens.mintAt(dave.identity, now - 7200, now - 3600)); // expired an hour ago
    const before = dave.calls.length;
    let c;
    try {
      c = await dave.e3.findUsers(alice.identity);
    } finally {
      dave.queue.length = 0;
    }
    const calls = dave.calls.slice(before);
    assert(c.identity === alice.identity, 'wrong card');
    assert(calls.length === 2 && !calls[0].forceReload && calls[1].forceReload === true,
      `expected 2 token requests (2nd with forceReload): got ${JSON.stringify(calls.map((x) => ({ forceReload: !!x.forceReload })))}` +
      ' - the server accepted an expired token');
  });
  for (const url of args.apiUrl) {
    const where = args.apiUrl.length > 1 ? ` @${url}` : '';
    await t.check(`7c raw search with expired token -> 401 {code:20304}${where}`, async () => {
      const now = Math.floor(Date.now() / 1000);
      const jwt = tokens.mintAt(dave.identity, now - 7200, now - 3600);
      const r = await rawRequest('POST', `${url}/card/v5/actions/search`, {
        headers: { Authorization: `Virgil ${jwt.toString()}` }, body: { identities: [alice.identity] },
      });
      assert(r.status === 401 && r.json && r.json.code === 20304 && typeof r.json.message === 'string',
        `got HTTP ${r.status} ${r.text.slice(0, 200)}`);
    });
    await t.check(`7d raw search with a forged token -> 401 {code,message}${where}`, async () => {
      const r = await rawRequest('POST', `${url}/card/v5/actions/search`, {
        headers: { Authorization: `Virgil ${tokens.mintForged(dave.identity).toString()}` }, body: { identities: [alice.identity] },
      });
      assert(r.status === 401 && r.json && Number.isInteger(r.json.code) && typeof r.json.message === 'string',
        `got HTTP ${r.status} ${r.text.slice(0, 200)}`);
    });
  }

  t.note(`run time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.warn = origWarn;
  return t.summary();
}

function abort(message) {
  const t = checks || new Checks();
  t.failed++;
  process.stdout.write(`FAIL scenario: ${message.replace(/\s*\n\s*/g, ' | ')}\n`);
  t.summary();
  process.exit(1);
}

setTimeout(() => abort(`timed out after ${TOTAL_TIMEOUT_MS / 1000} s`), TOTAL_TIMEOUT_MS).unref();

main().then(
  (code) => process.exit(code),
  (e) => abort(String((e && e.stack) || e)),
);
