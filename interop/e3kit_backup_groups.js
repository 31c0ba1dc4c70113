delete globalThis.fetch; // the emscripten loader of virgil-crypto breaks on Node >= 18 when fetch exists

// Key backup (Keyknox v1 / v2 + Pythia brainkey) and groups scenario for Sealkit's end-to-end tests: drives the
// REAL @virgilsecurity/e3kit-node 2.5.1 against a running server, one named check per line.
//
//   node interop/e3kit_backup_groups.js --api-url URL [--api-url URL2] --app-credentials FILE --storage DIR [--prefix STR]
//
// Same conventions as e3kit_cards.js: tokens minted here from FILE, users spread over the URLs round-robin,
// output `ok <name>` / `FAIL <name>: <error>` / `# note`, last line `N passed, M failed`, exit 0 / 1 / 2.
// Every device (one EThree instance) has its own DIR/<identity>/<device>/{keys,groups}. See README.md.

const fs = require('fs');
const path = require('path');
const crypto = require('crypto');
const {
  loadE3kit, makeTokenFactory, assert, fail, need, expectError, expectThrow, errText, sleep, rawRequest,
  requireAsE3kit, runScenario, mapLimit,
} = require('./e3kit_common');

const USAGE = 'usage: node e3kit_backup_groups.js --api-url URL [--api-url URL2] --app-credentials FILE --storage DIR [--prefix STR]';
const TOTAL_TIMEOUT_MS = 180000;
const GROUP_USERS = 100; // u00..u99; u00 creates every group
const REGISTER_PARALLEL = 16;
const BRAINKEY_RETRY_DELAY_MS = 2000; // e3kit-base BRAIN_KEY_RATE_LIMIT_DELAY
const THROTTLED = 60007;

async function main(args, t) {
  const started = Date.now();
  const lib = await loadE3kit();
  const { EThree } = lib.e3kit;
  const GEC = lib.e3kit.GroupErrorCode; // { NoAccess: 11, ... } and reverse (11 -> 'NoAccess')
  const tokens = makeTokenFactory(lib, args.creds);
  const run = `${args.prefix === undefined ? 'e3kit-bg-' : args.prefix}${crypto.randomBytes(4).toString('hex')}`;
  const storageRoot = path.resolve(args.storage);
  fs.mkdirSync(storageRoot, { recursive: true });
  t.note(`e3kit-node ${lib.versions.e3kit} (virgil-crypto ${lib.versions.crypto}), run ${run}, api ${args.apiUrl.join(' ')}`);

  const origWarn = console.warn;
  console.warn = (...m) => {
    if (typeof m[0] === 'string' && /deprecated/i.test(m[0])) return;
    origWarn(...m);
  };

  // ---------------------------------------------------------------------------------- helpers
  // errText plus the fields e3kit's other error classes carry: GroupError {errorCode}, PythiaClientError
  // {httpStatus, code}, KeyknoxClientError {status, code}.
  const describe = (e) => {
    if (e && e.__plain) return e.message;
    if (!e || (e.errorCode !== undefined && e.name !== 'GroupError')) return errText(e); // e.g. VirgilHttpError
    let s = `${e.name || 'Error'}: ${e.message}`.replace(/\s*\n\s*/g, ' ');
    if (e.name === 'GroupError') s += ` [GroupErrorCode.${GEC[e.errorCode]}]`;
    else if (e.code !== undefined || e.httpStatus !== undefined || e.status !== undefined) {
      s += ` (http ${e.httpStatus !== undefined ? e.httpStatus : e.status}, code ${e.code})`;
    }
    return s;
  };
  // t.check with the richer error text above.
  const check = (name, fn) => t.check(name, async () => {
    try {
      return await fn();
    } catch (e) {
      if (e && e.__plain) throw e;
      throw fail(describe(e));
    }
  });
  const expectGroupError = async (fn, codeName) => {
    const e = await expectError(fn, 'GroupError');
    assert(e.errorCode === GEC[codeName], `GroupError with code ${GEC[e.errorCode]}, expected ${codeName}`);
    return e;
  };
  const stepTimes = [];
  let stepStart = Date.now();
  const endStep = (label) => {
    stepTimes.push(`${label} ${((Date.now() - stepStart) / 1000).toFixed(1)} s`);
    stepStart = Date.now();
  };

  // Every brainkey request e3kit makes, observed at virgil-pythia's PythiaClient.generateSeed (the instance
  // e3kit-base uses): { identity, at, end, ok, code, status }.
  const pythiaLib = requireAsE3kit('virgil-pythia', '@virgilsecurity/e3kit-base');
  const brainkeyLog = [];
  {
    const proto = pythiaLib.PythiaClient.prototype;
    const generateSeed = proto.generateSeed;
    proto.generateSeed = async function (...a) {
      const jwt = await this.accessTokenProvider.getToken({ service: 'pythia', operation: 'seed' });
      const rec = { identity: jwt.identity(), at: Date.now() };
      brainkeyLog.push(rec);
      try {
        const seed = await generateSeed.apply(this, a);
        rec.ok = true;
        return seed;
      } catch (e) {
        rec.ok = false;
        rec.code = e && e.code;
        rec.status = e && e.httpStatus;
        throw e;
      } finally {
        rec.end = Date.now();
      }
    };
  }
  const brainkeyCalls = (identity, from = 0) => brainkeyLog.slice(from).filter((c) => c.identity === identity);
  const pythiaCrypto = requireAsE3kit('@virgilsecurity/pythia-crypto/dist/node.cjs.js');
  await pythiaCrypto.initPythia();
  const brainKeyCrypto = new pythiaCrypto.VirgilBrainKeyCrypto();

  // ---------------------------------------------------------------------------------- users and devices
  let userCount = 0;
  // A user = identity + its own server URL and token callback; each device = one EThree instance with its
  // own storage dirs.
  const makeUser = (name) => {
    const identity = `${run}-${name}`;
    const apiUrl = args.apiUrl[userCount++ % args.apiUrl.length];
    const u = { name, identity, apiUrl, dir: path.join(storageRoot, identity), devices: {}, e3: null };
    u.tokenCallback = () => tokens.mint(identity).toString();
    return u;
  };
  const device = async (u, label) => {
    const e3 = await EThree.initialize(u.tokenCallback, {
      apiUrl: u.apiUrl,
      storageName: path.join(u.dir, label, 'keys'), // virgil-sdk KeyEntryStorage directory (local private key)
      groupStorageName: path.join(u.dir, label, 'groups'), // leveldown directory for group sessions
    });
    assert(e3.identity === u.identity, `identity ${e3.identity} != ${u.identity}`);
    u.devices[label] = e3;
    if (!u.e3) u.e3 = e3;
    return e3;
  };
  const dev = (u, label) => need(u.devices[label], `${u.name} device ${label}`);
  // A fresh device restores; the key must then decrypt `ct` (encrypted by the same user, to itself).
  const restoreAndDecrypt = async (u, label, pwd, keyName, ct, text) => {
    const e3 = await device(u, label);
    assert(!(await e3.hasLocalPrivateKey()), 'fresh device already has a local key');
    await e3.restorePrivateKey(pwd, keyName);
    assert(await e3.hasLocalPrivateKey(), 'no local key after restorePrivateKey');
    const p = await e3.authDecrypt(need(ct, 'ciphertext'));
    assert(p === text, 'restored key decrypts to a different plaintext');
  };
  const freshDeviceRestoreFails = async (u, label, pwd, keyName) => {
    const e3 = await device(u, label);
    const e = await expectThrow(() => e3.restorePrivateKey(pwd, keyName), 'restorePrivateKey');
    assert(!(await e3.hasLocalPrivateKey()), 'a local key was saved although restorePrivateKey failed');
    return e;
  };

  // ================================================================================== 1. backup v1
  const alice = makeUser('alice');
  const bob = makeUser('bob');
  const pwd1 = `pwd1-${run}`;
  const pwd2 = `pwd2-${run}`;
  const mText = `M for alice and bob, before the backup ${run} \u00e9`;
  await check('1 initialize + register alice (device A) and bob', async () => {
    await Promise.all([alice, bob].map(async (u) => {
      await device(u, 'A');
      await u.e3.register();
    }));
  });
  let bobCard;
  const ctM = await check('1 alice authEncrypts M to [alice, bob] before the backup', async () => {
    bobCard = await dev(alice, 'A').findUsers(bob.identity);
    return alice.e3.authEncrypt(mText, bobCard);
  });
  await check('1 backupPrivateKey(pwd) alice (brainkey + GET/PUT /keyknox/v1)', async () => {
    const mark = brainkeyLog.length;
    await dev(alice, 'A').backupPrivateKey(pwd1);
    assert(brainkeyCalls(alice.identity, mark).length >= 1,
      'no brainkey request observed: the PythiaClient patch is not on the instance e3kit uses');
  });
  await check('1 backupPrivateKey(pwd) again -> CloudEntryExistsError', () =>
    expectError(() => dev(alice, 'A').backupPrivateKey(pwd1), 'CloudEntryExistsError'));
  await check('1 cleanup alice device A', async () => {
    await dev(alice, 'A').cleanup();
    assert(!(await alice.e3.hasLocalPrivateKey()), 'local key still present after cleanup');
  });
  await check('1 fresh device B: restorePrivateKey(wrong pwd) -> WrongKeyknoxPasswordError', async () => {
    const b = await device(alice, 'B');
    await expectError(() => b.restorePrivateKey(`wrong-${run}`), 'WrongKeyknoxPasswordError');
    assert(!(await b.hasLocalPrivateKey()), 'a local key was saved with the wrong password');
  });
  await check('1 device B: restorePrivateKey(pwd) -> M decrypts', async () => {
    const b = dev(alice, 'B');
    await b.restorePrivateKey(pwd1);
    assert(await b.hasLocalPrivateKey(), 'no local key after restorePrivateKey');
    assert((await b.authDecrypt(need(ctM, 'M'))) === mText, 'M decrypts to a different plaintext');
    const aliceCard = await dev(bob, 'A').findUsers(alice.identity);
    assert((await bob.e3.authDecrypt(ctM, aliceCard)) === mText, 'bob: M decrypts to a different plaintext');
  });
  await check('1 device B: restorePrivateKey with the local key present -> PrivateKeyAlreadyExistsError', () =>
    expectError(() => dev(alice, 'B').restorePrivateKey(pwd1), 'PrivateKeyAlreadyExistsError'));
  await check('1 device B: changePassword(pwd, pwd2)', () => dev(alice, 'B').changePassword(pwd1, pwd2));
  await check('1 fresh device C: restorePrivateKey(old pwd) -> WrongKeyknoxPasswordError', async () => {
    const e = await freshDeviceRestoreFails(alice, 'C', pwd1);
    assert(e.name === 'WrongKeyknoxPasswordError', `expected WrongKeyknoxPasswordError, got ${describe(e)}`);
  });
  await check('1 device C: restorePrivateKey(pwd2) -> M decrypts', async () => {
    const c = dev(alice, 'C');
    await c.restorePrivateKey(pwd2);
    assert((await c.authDecrypt(need(ctM, 'M'))) === mText, 'M decrypts to a different plaintext');
  });
  await check('1 device C: resetPrivateKeyBackup() (POST /keyknox/v1/reset)', () => dev(alice, 'C').resetPrivateKeyBackup());
  await check('1 fresh device D: restorePrivateKey(pwd2) after the reset -> PrivateKeyNoBackupError', async () => {
    const e = await freshDeviceRestoreFails(alice, 'D', pwd2);
    assert(e.name === 'PrivateKeyNoBackupError', `expected PrivateKeyNoBackupError, got ${describe(e)}`);
  });
  endStep('1');

  // ================================================================================== 2. named backups (keyknox v2)
  const carol = makeUser('carol');
  const dave = makeUser('dave');
  const pwdA = `pwdA-${run}`;
  const pwdA2 = `pwdA2-${run}`;
  const pwdB = `pwdB-${run}`;
  const cText = `carol to herself ${run}`;
  let ctC;
  await check('2 initialize + register carol; carol authEncrypts a message to herself', async () => {
    await device(carol, 'A');
    await carol.e3.register();
    ctC = await carol.e3.authEncrypt(cText);
  });
  await check('2 backupPrivateKey(pwdA, "name-a") (brainkey + v2 pull/push)', () => dev(carol, 'A').backupPrivateKey(pwdA, 'name-a'));
  await check('2 backupPrivateKey(pwdB, "name-b")', () => dev(carol, 'A').backupPrivateKey(pwdB, 'name-b'));
  await check('2 fresh device B: restorePrivateKey(pwdA, "name-a") -> decrypts', () =>
    restoreAndDecrypt(carol, 'B', pwdA, 'name-a', ctC, cText));
  await check('2 fresh device C: restorePrivateKey(pwdB, "name-b") -> decrypts', () =>
    restoreAndDecrypt(carol, 'C', pwdB, 'name-b', ctC, cText));
  await check('2 changePassword(pwdA, pwdA2, "name-a")', () => dev(carol, 'A').changePassword(pwdA, pwdA2, 'name-a'));
  await check('2 fresh device D: restorePrivateKey(old pwdA, "name-a") fails', async () => {
    const e = await freshDeviceRestoreFails(carol, 'D', pwdA, 'name-a');
    // e3kit 2.5.1 maps a wrong password to WrongKeyknoxPasswordError only for v1; the named restore lets the
    // decryption error through.
    assert(['WrongKeyknoxPasswordError', 'FoundationError'].includes(e.name), `unexpected ${describe(e)}`);
    t.note(`2: restore of "name-a" with the old password -> ${describe(e)}`);
  });
  await check('2 device D: restorePrivateKey(pwdA2, "name-a") -> decrypts', async () => {
    const d = dev(carol, 'D');
    await d.restorePrivateKey(pwdA2, 'name-a');
    assert((await d.authDecrypt(need(ctC, 'message'))) === cText, 'wrong key restored');
  });
  await check('2 resetPrivateKeyBackupWithKeyName("name-b") (v2 reset)', () =>
    dev(carol, 'A').resetPrivateKeyBackupWithKeyName('name-b'));
  await check('2 fresh device E: restorePrivateKey(pwdB, "name-b") after the reset fails', async () => {
    const e = await freshDeviceRestoreFails(carol, 'E', pwdB, 'name-b');
    // e3kit 2.5.1 reads the empty pull ({meta:"",value:""}) as an empty map and then dereferences the
    // missing entry: TypeError, not PrivateKeyNoBackupError.
    assert(['PrivateKeyNoBackupError', 'TypeError'].includes(e.name), `unexpected ${describe(e)}`);
    t.note(`2: restore of the reset "name-b" -> ${describe(e)}`);
  });

  // A named backup made twice: e3kit pulls the entry (decrypting it with the brainkey key) and pushes with
  // the pulled hash, so the same password overwrites and another password fails in the client.
  const dText = `dave to himself ${run}`;
  let ctD;
  await check('2 initialize + register dave; backupPrivateKey(pwd, "dup")', async () => {
    await device(dave, 'A');
    await dave.e3.register();
    ctD = await dave.e3.authEncrypt(dText);
    await dave.e3.backupPrivateKey(pwdA, 'dup');
  });
  await check('2 backupPrivateKey(same pwd, "dup") again -> overwrites (no error in e3kit 2.5.1)', async () => {
    let err;
    try {
      await dev(dave, 'A').backupPrivateKey(pwdA, 'dup');
    } catch (e) {
      err = e;
    }
    if (err) throw fail(`second named backup with the same password failed: ${describe(err)}`);
  });
  await check('2 backupPrivateKey(other pwd, "dup") -> error', async () => {
    const e = await expectThrow(() => dev(dave, 'A').backupPrivateKey(pwdB, 'dup'), 'named backup over an entry of another password');
    t.note(`2: named backup over an existing entry with another password -> ${describe(e)}`);
  });
  await check('2 fresh device B: restorePrivateKey(pwd, "dup") -> decrypts', () =>
    restoreAndDecrypt(dave, 'B', pwdA, 'dup', ctD, dText));
  endStep('2');

  // ================================================================================== 3. groups
  const U = Array.from({ length: GROUP_USERS }, (_, i) => makeUser(`u${String(i).padStart(2, '0')}`));
  const u = (i) => U[i];
  const regStarted = Date.now();
  await check(`3 initialize + register ${GROUP_USERS} users (u00..u${GROUP_USERS - 1}), ${REGISTER_PARALLEL} in parallel`, async () => {
    const res = await mapLimit(U, REGISTER_PARALLEL, async (x) => {
      await device(x, 'A');
      await x.e3.register();
    });
    const bad = res.map((r, i) => (r && r.error ? `${U[i].name}: ${describe(r.error)}` : null)).filter(Boolean);
    assert(bad.length === 0, `${bad.length} failed: ${bad.slice(0, 3).join('; ')}`);
  });
  const regSeconds = (Date.now() - regStarted) / 1000;
  t.note(`3: ${GROUP_USERS} users initialised + registered in ${regSeconds.toFixed(1)} s`);
  const cards = await check(`3 findUsers(u01..u${GROUP_USERS - 1}) by u00 (chunks of 50)`, async () => {
    const r = await need(u(0).e3, 'u00').findUsers(U.slice(1).map((x) => x.identity));
    assert(Object.keys(r).length === GROUP_USERS - 1, `${Object.keys(r).length} cards`);
    return r;
  });
  const card = (i) => need(cards, 'participant cards')[u(i).identity];
  const pick = (idx) => Object.fromEntries(idx.map((i) => [u(i).identity, card(i)]));
  const range = (a, b) => Array.from({ length: b - a + 1 }, (_, i) => a + i);
  // u00's card, as every participant sees it
  const initiatorCard = await check('3 findUsers(u00) by u01', () => need(u(1).e3, 'u01').findUsers(u(0).identity));
  const ownCard = (i) => (i === 0 ? need(initiatorCard, 'u00 card') : card(i));
  const sameSet = (a, b) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());
  const ids = (idx) => idx.map((i) => u(i).identity);

  // loads group `gid` on the devices of `idx`, checking the participant list
  const loadOn = async (gid, idx, want) => {
    const out = {};
    await Promise.all(idx.map(async (i) => {
      const g = await need(u(i).e3, u(i).name).loadGroup(gid, need(initiatorCard, 'u00 card'));
      assert(sameSet(g.participants, ids(want)), `${u(i).name}: ${g.participants.length} participants, expected ${want.length}`);
      out[i] = g;
    }));
    return out;
  };
  // sender encrypts with its group object; every reader decrypts with the sender's card
  const roundTrip = async (groups, sender, readers, text) => {
    const ct = await need(groups[sender], `${u(sender).name} group`).encrypt(text);
    for (const r of readers) {
      const p = await need(groups[r], `${u(r).name} group`).decrypt(ct, ownCard(sender));
      assert(p === text, `${u(r).name} decrypts to a different plaintext`);
    }
    return ct;
  };

  // ---- 2 participants
  const g2id = `${run}-group-2`;
  const g2 = {};
  await check('3 createGroup(2 participants) by u00', async () => {
    g2[0] = await need(u(0).e3, 'u00').createGroup(g2id, pick([1]));
    assert(sameSet(g2[0].participants, ids([0, 1])), `participants ${g2[0].participants.length}`);
  });
  await check('3 loadGroup(2) by u01', async () => Object.assign(g2, await loadOn(g2id, [1], [0, 1])));
  await check('3 group(2): u00 -> u01 and u01 -> u00 encrypt/decrypt', async () => {
    await roundTrip(g2, 0, [1], `g2 from u00 ${run}`);
    await roundTrip(g2, 1, [0], `g2 from u01 ${run}`);
  });
  await check('3 createGroup with an existing id -> GroupTicketAlreadyExistsError', () =>
    expectError(() => need(u(0).e3, 'u00').createGroup(g2id, pick([1, 2])), 'GroupTicketAlreadyExistsError'));
  await check('3 loadGroup of an unknown group id -> GroupError NoAccess', () =>
    expectGroupError(() => need(u(1).e3, 'u01').loadGroup(`${run}-no-such-group`, need(initiatorCard, 'u00 card')), 'NoAccess'));

  // ---- 100 participants (the e3kit maximum, initiator included)
  const gBig = GROUP_USERS;
  const g100id = `${run}-group-${gBig}`;
  const g100 = {};
  const last = gBig - 1;
  const mid = Math.floor(gBig / 2);
  await check(`3 createGroup(${gBig} participants) by u00`, async () => {
    g100[0] = await need(u(0).e3, 'u00').createGroup(g100id, pick(range(1, last)));
    assert(g100[0].participants.length === gBig, `participants ${g100[0].participants.length}`);
  });
  await check(`3 loadGroup(${gBig}) by u01, u${mid}, u${last}`, async () =>
    Object.assign(g100, await loadOn(g100id, [1, mid, last], range(0, last))));
  for (const s of [0, mid, last]) {
    const readers = [0, 1, mid, last].filter((r) => r !== s);
    await check(`3 group(${gBig}): message from ${u(s).name} decrypts for ${readers.map((r) => u(r).name).join(', ')}`, () =>
      roundTrip(g100, s, readers, `g100 from ${u(s).name} ${run}`));
  }
  await check(`3 group(${gBig}).remove(u${last - 1}) (one search of ${gBig - 1} identities) -> u${last} update() sees ${gBig - 1}`, async () => {
    await need(g100[0], 'u00 group').remove(card(last - 1));
    await need(g100[last], `u${last} group`).update();
    assert(sameSet(g100[last].participants, ids(range(0, last).filter((i) => i !== last - 1))), `${g100[last].participants.length} participants`);
    await roundTrip(g100, 0, [last], `g100 epoch 1 ${run}`);
  });
  await check(`3 removed u${last - 1}: loadGroup(${gBig}) -> GroupError NoAccess`, () =>
    expectGroupError(() => need(u(last - 1).e3, `u${last - 1}`).loadGroup(g100id, need(initiatorCard, 'u00 card')), 'NoAccess'));

  // ---- 30 participants: add / remove / rotation + reAdd / delete
  const g30id = `${run}-group-30`;
  const g30 = {};
  let members = range(0, 29);
  await check('3 createGroup(30 participants) by u00', async () => {
    g30[0] = await need(u(0).e3, 'u00').createGroup(g30id, pick(range(1, 29)));
    assert(g30[0].participants.length === 30, `participants ${g30[0].participants.length}`);
  });
  await check('3 loadGroup(30) by u01, u15, u29', async () => Object.assign(g30, await loadOn(g30id, [1, 15, 29], members)));
  for (const s of [0, 15, 29]) {
    const readers = [0, 1, 15, 29].filter((r) => r !== s);
    await check(`3 group(30): message from ${u(s).name} decrypts for ${readers.map((r) => u(r).name).join(', ')}`, () =>
      roundTrip(g30, s, readers, `g30 from ${u(s).name} ${run}`));
  }
  const preAddText = `g30 before add ${run}`;
  const preAdd = await check('3 group(30): u00 encrypts M_pre before the add', () => need(g30[0], 'u00 group').encrypt(preAddText));
  await check('3 group(30).add(u30) by u00', async () => {
    await need(g30[0], 'u00 group').add(card(30));
    members = [...members, 30];
    assert(sameSet(g30[0].participants, ids(members)), `initiator sees ${g30[0].participants.length} participants`);
  });
  await check('3 new member u30: loadGroup -> 31 participants, decrypts M_pre (sent before the add)', async () => {
    Object.assign(g30, await loadOn(g30id, [30], members));
    assert((await g30[30].decrypt(need(preAdd, 'M_pre'), ownCard(0))) === preAddText, 'M_pre differs');
  });
  await check('3 existing member u01: update() after the add -> 31 participants (its own copy still readable)', async () => {
    await need(g30[1], 'u01 group').update();
    assert(sameSet(g30[1].participants, ids(members)), `${g30[1].participants.length} participants`);
  });
  await check('3 group(30).remove(u15) by u00', async () => {
    await need(g30[0], 'u00 group').remove(card(15));
    members = members.filter((i) => i !== 15);
    assert(sameSet(g30[0].participants, ids(members)), `initiator sees ${g30[0].participants.length} participants`);
  });
  const postText = `g30 after removing u15 ${run}`;
  const post = await check('3 group(30): u00 encrypts M_post after the removal', () => need(g30[0], 'u00 group').encrypt(postText));
  await check('3 remaining u01, u29, u30: update() -> u15 gone, M_post decrypts', async () => {
    for (const i of [1, 29, 30]) {
      await need(g30[i], `u${i} group`).update();
      assert(sameSet(g30[i].participants, ids(members)), `u${i}: ${g30[i].participants.length} participants`);
      assert((await g30[i].decrypt(need(post, 'M_post'), ownCard(0))) === postText, `u${i}: M_post differs`);
    }
  });
  await check('3 removed u15: update() -> GroupError NoAccess', () =>
    expectGroupError(() => need(g30[15], 'u15 group').update(), 'NoAccess'));
  await check('3 removed u15: loadGroup -> GroupError NoAccess; getGroup -> null', async () => {
    await expectGroupError(() => need(u(15).e3, 'u15').loadGroup(g30id, need(initiatorCard, 'u00 card')), 'NoAccess');
    assert((await u(15).e3.getGroup(g30id)) === null, 'the local copy of the group survived');
  });
  await check('3 removed u15: its old group object cannot decrypt M_post -> GroupError GroupIsOutdated', () =>
    expectGroupError(() => need(g30[15], 'u15 group').decrypt(need(post, 'M_post'), ownCard(0)), 'GroupIsOutdated'));

  // rotation + reAdd: a current member (u29, e3kit's documented use) and the removed member (u15)
  const rotatedCard = {};
  for (const [i, removed] of [[29, false], [15, true]]) {
    const who = `${removed ? 'removed' : 'member'} u${i}`;
    await check(`3 ${who}: cleanup() + rotatePrivateKey()`, async () => {
      await need(u(i).e3, `u${i}`).cleanup();
      await u(i).e3.rotatePrivateKey();
      rotatedCard[i] = await need(u(0).e3, 'u00').findUsers(u(i).identity);
      assert(rotatedCard[i].id !== card(i).id && rotatedCard[i].previousCardId === card(i).id, 'not a rotated card');
    });
    if (!removed) {
      await check(`3 ${who}: loadGroup before reAdd fails (copies are encrypted to the old key)`, async () => {
        const e = await expectThrow(() => need(u(i).e3, `u${i}`).loadGroup(g30id, need(initiatorCard, 'u00 card')), 'loadGroup with a rotated key');
        assert(e.name === 'GroupError' || e.name === 'FoundationError', `unexpected ${describe(e)}`);
        t.note(`3: loadGroup by a rotated member before reAdd -> ${describe(e)}`);
      });
    }
    await check(`3 group(30).reAdd(new card of ${who}) by u00`, () =>
      need(g30[0], 'u00 group').reAdd(need(rotatedCard[i], `rotated u${i} card`)));
    const newText = `g30 after reAdd of u${i} ${run}`;
    await check(`3 ${who}: loadGroup after reAdd -> decrypts a new message from u00 and M_post`, async () => {
      const ct = await need(g30[0], 'u00 group').encrypt(newText);
      const g = await need(u(i).e3, `u${i}`).loadGroup(g30id, need(initiatorCard, 'u00 card'));
      g30[i] = g;
      assert((await g.decrypt(ct, ownCard(0))) === newText, 'new message differs');
      assert((await g.decrypt(need(post, 'M_post'), ownCard(0))) === postText, 'M_post differs');
      if (removed) {
        // reAdd pushed a copy of every epoch to u15: the server's identity list includes it again
        t.note(`3: after reAdd of the removed u15 the group lists ${g.participants.length} participants (u15 ${g.participants.includes(u(i).identity) ? 'included' : 'not included'})`);
      } else {
        assert(sameSet(g.participants, ids(members)), `${g.participants.length} participants`);
      }
    });
  }
  await check('3 rotated u29 encrypts with its new key -> u01 decrypts with the new card', async () => {
    const text = `g30 from rotated u29 ${run}`;
    const ct = await need(g30[29], 'u29 group').encrypt(text);
    assert((await need(g30[1], 'u01 group').decrypt(ct, need(rotatedCard[29], 'rotated u29 card'))) === text, 'differs');
  });
  await check('3 deleteGroup(30) by u00 -> getGroup null on u00', async () => {
    await need(u(0).e3, 'u00').deleteGroup(g30id);
    assert((await u(0).e3.getGroup(g30id)) === null, 'initiator still has the group locally');
  });
  await check('3 after deleteGroup: loadGroup by u01 and u30 -> GroupError NoAccess; u29 update() -> NoAccess', async () => {
    for (const i of [1, 30]) {
      await expectGroupError(() => need(u(i).e3, `u${i}`).loadGroup(g30id, need(initiatorCard, 'u00 card')), 'NoAccess');
    }
    await expectGroupError(() => need(g30[29], 'u29 group').update(), 'NoAccess');
  });
  endStep(`3 (registration ${regSeconds.toFixed(1)} s)`);

  {
    const limitedBy = brainkeyLog.filter((c) => c.code === THROTTLED).map((c) => c.identity.slice(run.length + 1));
    t.note(`steps 1-3: ${brainkeyLog.length} brainkey requests by e3kit, ${limitedBy.length} answered 60007` +
      `${limitedBy.length ? ` (${limitedBy.join(', ')}; e3kit retried after 2 s)` : ''}`);
  }

  // ================================================================================== 4. brainkey throttling
  const source = readThrottleDefaults();
  if (source) t.note(`server source ${source.file}: defaults brainkey_burst ${source.burst}, brainkey_per_second ${source.perSecond} (a config file may override)`);
  else t.note('server source not found: burst and refill are measured only');

  // 4a. raw POST /pythia/v1/brainkey with a valid token and a blinded point made by e3kit's pythia-crypto
  const raw = makeUser('throttle-raw');
  const rawJwt = tokens.mint(raw.identity).toString();
  const rawBrainkey = async (url, password) => {
    const { blindedPassword, blindingSecret } = brainKeyCrypto.blind(password);
    const at = Date.now();
    const r = await rawRequest('POST', `${url}/pythia/v1/brainkey`, {
      headers: { Authorization: `Virgil ${rawJwt}` }, body: { blinded_password: blindedPassword.toString('base64') },
    });
    return { ...r, at, end: Date.now(), blindingSecret };
  };
  const url1 = raw.apiUrl;
  const urlOther = args.apiUrl.find((x) => x !== url1) || url1;
  let accepted = 0;
  let firstAt = null;
  const isThrottled = (r) => r.json && r.json.code === THROTTLED;
  await check(`4 raw brainkey -> 200 {seed: 384 bytes}; the deblinded seed does not depend on the blinding${urlOther !== url1 ? ' (same on both servers)' : ''}`, async () => {
    const pw = `raw-${run}`;
    const rs = [await rawBrainkey(url1, pw), await rawBrainkey(urlOther, pw), await rawBrainkey(url1, `${pw}-other`)];
    firstAt = rs[0].at;
    for (const r of rs) {
      assert(r.status === 200, `HTTP ${r.status} ${r.text.slice(0, 200)}`);
      accepted++;
      assert(r.json && typeof r.json.seed === 'string' && Buffer.from(r.json.seed, 'base64').length === 384,
        `bad seed: ${r.text.slice(0, 120)}`);
    }
    const [a, b, c] = rs.map((r) => brainKeyCrypto.deblind({ blindingSecret: r.blindingSecret, transformedPassword: r.json.seed }));
    assert(a.equals(b), 'the same password with two blindings deblinds to different values');
    assert(!a.equals(c), 'two passwords deblind to the same value');
  });
  let limited = null;
  await check('4 raw brainkey over the limit -> HTTP 4xx {"code":60007,"message"}', async () => {
    for (let i = 0; i < 200 && !limited; i++) {
      const r = await rawBrainkey(url1, `raw-${run}-${i}`);
      if (firstAt === null) firstAt = r.at;
      if (r.status === 200) accepted++;
      else if (isThrottled(r)) limited = r;
      else throw fail(`HTTP ${r.status} ${r.text.slice(0, 200)} (neither 200 nor 60007)`);
    }
    assert(limited, `no 60007 after ${accepted} brainkey requests`);
    assert(limited.status >= 400 && limited.status < 500, `HTTP ${limited.status} (expected 4xx)`);
    assert(typeof limited.json.message === 'string' && limited.json.message.length > 0, 'no message');
    t.note(`4a: ${accepted} brainkey requests accepted in ${((limited.at - firstAt) / 1000).toFixed(2)} s before the first 60007 (HTTP ${limited.status}, "${limited.json.message}")`);
  });
  if (urlOther !== url1) {
    await check('4 the bucket is shared: the other server answers 60007 right away', async () => {
      need(limited, 'throttled state');
      const r = await rawBrainkey(urlOther, `raw-${run}-shared`);
      assert(isThrottled(r), `HTTP ${r.status} ${r.text.slice(0, 120)}`);
    });
  }
  let refillMs = null;
  await check('4 raw brainkey: the bucket refills (polling every 100 ms)', async () => {
    need(limited, 'throttled state');
    // Two successes in a row: the time between them is one token's refill time (the first only ends the
    // partially refilled interval that started at the burst).
    const waitOne = async () => {
      const t0 = Date.now();
      for (;;) {
        const r = await rawBrainkey(url1, `raw-${run}-poll`);
        if (r.status === 200) return r.end;
        if (!isThrottled(r)) throw fail(`HTTP ${r.status} ${r.text.slice(0, 200)}`);
        if (Date.now() - t0 > 12000) throw fail('no token within 12 s of polling (do rejected requests drain the bucket?)');
        await sleep(100);
      }
    };
    const a = await waitOne();
    const b = await waitOne();
    refillMs = b - a;
    const perSec = 1000 / refillMs;
    const burst = accepted - ((limited.at - firstAt) / 1000) * perSec;
    t.note(`4a measured: one token every ${(refillMs / 1000).toFixed(2)} s (~${perSec.toFixed(2)}/s), burst ~${burst.toFixed(1)} ` +
      `(= ${accepted} accepted - refill during the burst)`);
    if (refillMs > BRAINKEY_RETRY_DELAY_MS + 150) {
      t.note(`4a WARNING: refill slower than e3kit's single retry after ${BRAINKEY_RETRY_DELAY_MS} ms: a throttled e3kit operation would fail`);
    }
  });

  // 4b. e3kit: changePassword in a row until the server answers 60007 (without a key name it makes 2 brainkey
  // requests: old and new password; with a key name 3)
  const tess = makeUser('throttle-e3kit');
  const pwdT0 = `t0-${run}`;
  let pwdT = pwdT0;
  const tText = `tess to herself ${run}`;
  let ctT;
  await check('4 initialize + register tess; backupPrivateKey(p0)', async () => {
    await device(tess, 'A');
    await tess.e3.register();
    ctT = await tess.e3.authEncrypt(tText);
    await tess.e3.backupPrivateKey(pwdT0);
  });
  await check('4 changePassword repeatedly until 60007: e3kit waits 2 s, retries once, and every call succeeds', async () => {
    const e3 = dev(tess, 'A');
    const mark = brainkeyLog.length;
    const per = [];
    let hit = false;
    for (let i = 1; i <= 10 && !hit; i++) {
      const before = brainkeyLog.length;
      const t0 = Date.now();
      const next = `t${i}-${run}`;
      try {
        await e3.changePassword(pwdT, next);
      } catch (e) {
        throw fail(`changePassword #${i} failed: ${describe(e)} (brainkey calls: ${JSON.stringify(brainkeyCalls(tess.identity, before).map((c) => c.ok ? 'ok' : c.code))})`);
      }
      pwdT = next;
      const calls = brainkeyCalls(tess.identity, before);
      const n = calls.filter((c) => c.code === THROTTLED).length;
      per.push(`#${i} ${calls.length} requests/${n}x60007/${((Date.now() - t0) / 1000).toFixed(1)} s`);
      hit = n > 0;
    }
    t.note(`4b changePassword: ${per.join(', ')}`);
    assert(hit, 'no 60007 after 10 changePassword calls (30+ brainkey requests): brainkey is not rate-limited');
    const calls = brainkeyCalls(tess.identity, mark);
    const other = calls.filter((c) => !c.ok && c.code !== THROTTLED);
    assert(other.length === 0, `brainkey failures other than 60007: ${JSON.stringify(other)}`);
    calls.forEach((c, k) => {
      if (c.code !== THROTTLED) return;
      const retry = calls[k + 1];
      assert(retry && retry.ok, 'the retry after a 60007 did not succeed');
      assert(retry.at - c.end >= BRAINKEY_RETRY_DELAY_MS - 50, `retry after only ${retry.at - c.end} ms`);
    });
    assert(typeof calls.find((c) => c.code === THROTTLED).status === 'number' &&
      calls.find((c) => c.code === THROTTLED).status >= 400, 'the 60007 answer was not an HTTP error status');
  });
  await check('4 fresh device B: restorePrivateKey(last password) -> decrypts (password chain consistent)', () =>
    restoreAndDecrypt(tess, 'B', pwdT, undefined, ctT, tText));
  endStep('4');

  // ---- late part of step 1 (alice's brainkey bucket has refilled meanwhile): a v1 backup after the reset
  const pwd3 = `pwd3-${run}`;
  await check('1 backupPrivateKey(pwd3) after the reset (device C) -> fresh device E restores it', async () => {
    await dev(alice, 'C').backupPrivateKey(pwd3);
    await restoreAndDecrypt(alice, 'E', pwd3, undefined, ctM, mText);
  });
  endStep('1 late');

  t.note(`step times: ${stepTimes.join(', ')}`);
  t.note(`run time ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.warn = origWarn;
  return t.summary();
}

// The brainkey rate-limit defaults from the server source next to this script, if present.
function readThrottleDefaults() {
  const file = path.join(__dirname, '..', 'crates', 'server', 'src', 'config.rs');
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (_) {
    return null;
  }
  const burst = /brainkey_burst:\s*([0-9_]+)\s*,/.exec(text);
  const perSecond = /brainkey_per_second:\s*([0-9_.]+)\s*,/.exec(text);
  if (!burst || !perSecond) return null;
  return { file: path.relative(path.join(__dirname, '..'), file), burst: burst[1], perSecond: perSecond[1] };
}

runScenario(main, { usage: USAGE, timeoutMs: TOTAL_TIMEOUT_MS });
