delete globalThis.fetch; // the emscripten loader of virgil-crypto breaks on Node >= 18 when fetch exists

// A line-based JSON-RPC peer around the REAL @virgilsecurity/e3kit-node 2.5.1, driven by the Rust SDK's
// interop test (crates/cli/tests/sdk_e2e.rs): one process hosts any number of e3kit users, each an EThree
// instance with its own storage, and executes one command per input line.
//
//   node interop/e3kit_peer.js --api-url URL --app-credentials FILE --storage DIR
//
// stdin:  one JSON object per line: {"id": <any>, "cmd": "<name>", ...arguments}
// stdout: one line per command, prefixed with "@@ " (anything else on stdout is e3kit noise to ignore):
//         @@ {"id": <same>, "ok": true, "result": {...}}
//         @@ {"id": <same>, "ok": false, "name": "<e3kit error class>", "error": "<text>"}
// The first line, before any command, is  @@ {"id": null, "ok": true, "result": {"ready": true, ...versions}}.
//
// Commands (user = a local name for an EThree instance):
//   init        {user, identity, keys_dir?}               EThree.initialize, tokens minted from FILE; the key
//                                                         entries live in keys_dir (default DIR/<user>/keys)
//   register    {user}                                    register()
//   rotate      {user}                                    cleanup() then rotatePrivateKey()
//   unregister  {user}                                    unregister()
//   find        {user, identities: [..]}                  findUsers(identities); the cards are kept for the
//                                                         commands below -> {cards: {identity: card id}}
//   encrypt     {user, mode: "auth"|"legacy", to: [..], text}
//                                                         authEncrypt / encrypt of the text for the cards of
//                                                         `to` (found before) -> {data: base64, at: ms}
//   decrypt     {user, mode, from, data: base64, at?: ms} authDecrypt / decrypt with the card of `from`
//                                                         (found before), optionally at Date(at) -> {text}
//   backup      {user, password, key_name?}               backupPrivateKey(password, key_name)
//   restore     {user, password, key_name?}               restorePrivateKey(password, key_name)
//   change_password {user, old, new, key_name?}           changePassword(old, new, key_name)
//   reset_backup {user, key_name?}                        resetPrivateKeyBackup() or
//                                                         resetPrivateKeyBackupWithKeyName(key_name)
//   derive_passwords {password}                           EThree.derivePasswords -> {login, backup} (base64)
//   (a password given as {"base64": "..."} is passed as a Buffer of those bytes, as derivePasswords
//   returns it; a string is passed as is)
//   create_group {user, group_id, with: [..]}             createGroup(group_id, cards of `with` found before)
//                                                         -> {participants}
//   load_group  {user, group_id, initiator}               loadGroup(group_id, card of initiator) -> {participants}
//   group_encrypt {user, group_id, text}                  group.encrypt(text) -> {data: base64}
//   group_decrypt {user, group_id, from, data, at?: ms}   group.decrypt(data, card of from) -> {text}
//   group_add / group_remove {user, group_id, members: [..]}  group.add / group.remove(cards of members)
//   group_readd {user, group_id, member}                  group.reAdd(card of member)
//   group_update {user, group_id}                         group.update() -> {participants}
//   delete_group {user, group_id}                         deleteGroup(group_id)
//   quit        {}                                        exits 0 after answering
// Exit codes: 0 after quit or end of input, 2 on a usage error.

const fs = require('fs');
const path = require('path');
const readline = require('readline');
const { UsageError, parseArgs, loadE3kit, loadCredentials, makeTokenFactory, errText } = require('./e3kit_common');

const USAGE = 'usage: node e3kit_peer.js --api-url URL --app-credentials FILE --storage DIR';
const COMMAND_TIMEOUT_MS = 60000;

function reply(obj) {
  process.stdout.write(`@@ ${JSON.stringify(obj)}\n`);
}

function parse(argv) {
  const a = parseArgs(argv, { '--api-url': 'string', '--app-credentials': 'string', '--storage': 'string' });
  if (!a.apiUrl || !a.appCredentials || !a.storage) throw new UsageError('all three options are required');
  a.apiUrl = a.apiUrl.replace(/\/+$/, '');
  a.creds = loadCredentials(a.appCredentials);
  return a;
}

async function main() {
  let args;
  try {
    args = parse(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`${e.message}\n${USAGE}\n`);
      process.exit(2);
    }
    throw e;
  }
  const lib = await loadE3kit();
  const { EThree } = lib.e3kit;
  const tokens = makeTokenFactory(lib, args.creds);
  const root = path.resolve(args.storage);
  fs.mkdirSync(root, { recursive: true });

  // user -> { ethree, identity, cards: {identity: card} }
  const users = new Map();
  const user = (name) => {
    const u = users.get(name);
    if (!u) throw new Error(`unknown user ${name}: send "init" first`);
    return u;
  };
  const cardsOf = (u, identities) => {
    const out = {};
    for (const id of identities) {
      if (!u.cards[id]) throw new Error(`no card of ${id} known to ${u.identity}: send "find" first`);
      out[id] = u.cards[id];
    }
    return out;
  };

  const groupOf = async (name, gid) => {
    const group = await user(name).ethree.getGroup(gid);
    if (!group) throw new Error(`group ${gid} is not stored for ${name}: create or load it first`);
    return group;
  };
  // e3kit's GroupManager does not await its local store in createGroup / loadGroup / update, so a
  // getGroup right after them can miss the group: wait until the write has landed.
  const settle = async (name, gid, epoch) => {
    for (let i = 0; i < 100; i += 1) {
      const group = await user(name).ethree.getGroup(gid);
      if (group && (epoch === undefined || group._session.getCurrentEpochNumber() >= epoch)) return;
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new Error(`group ${gid} did not reach the local storage of ${name}`);
  };
  const pwd = (p) => (p && typeof p === 'object' ? Buffer.from(p.base64, 'base64') : p);
  const keyName = (k) => (k === undefined || k === null ? undefined : k);

  const commands = {
    async init({ user: name, identity, keys_dir: keysDir }) {
      if (users.has(name)) throw new Error(`user ${name} exists`);
      const dir = path.join(root, name);
      const ethree = await EThree.initialize(() => tokens.mint(identity).toString(), {
        apiUrl: args.apiUrl,
        storageName: keysDir || path.join(dir, 'keys'),
        groupStorageName: path.join(dir, 'groups'),
      });
      users.set(name, { ethree, identity, cards: {} });
      return { identity: ethree.identity, has_local_private_key: await ethree.hasLocalPrivateKey() };
    },
    async register({ user: name }) {
      await user(name).ethree.register();
      return {};
    },
    async rotate({ user: name }) {
      const u = user(name);
      await u.ethree.cleanup();
      await u.ethree.rotatePrivateKey();
      return {};
    },
    async unregister({ user: name }) {
      await user(name).ethree.unregister();
      return {};
    },
    async find({ user: name, identities }) {
      const u = user(name);
      const found = await u.ethree.findUsers(identities);
      const ids = {};
      for (const [identity, card] of Object.entries(found)) {
        u.cards[identity] = card;
        ids[identity] = card.id;
      }
      return { cards: ids };
    },
    async encrypt({ user: name, mode, to, text }) {
      const u = user(name);
      const cards = cardsOf(u, to);
      const at = Date.now();
      let data;
      if (mode === 'auth') data = await u.ethree.authEncrypt(text, cards);
      else if (mode === 'legacy') data = await u.ethree.encrypt(text, cards);
      else throw new Error(`bad mode ${mode}`);
      return { data, at };
    },
    async backup({ user: name, password, key_name: k }) {
      await user(name).ethree.backupPrivateKey(pwd(password), keyName(k));
      return {};
    },
    async restore({ user: name, password, key_name: k }) {
      const u = user(name);
      await u.ethree.restorePrivateKey(pwd(password), keyName(k));
      return { has_local_private_key: await u.ethree.hasLocalPrivateKey() };
    },
    async change_password({ user: name, old, new: newPassword, key_name: k }) {
      await user(name).ethree.changePassword(pwd(old), pwd(newPassword), keyName(k));
      return {};
    },
    async reset_backup({ user: name, key_name: k }) {
      const u = user(name);
      if (keyName(k) === undefined) await u.ethree.resetPrivateKeyBackup();
      else await u.ethree.resetPrivateKeyBackupWithKeyName(k);
      return {};
    },
    async derive_passwords({ password }) {
      const { loginPassword, backupPassword } = await EThree.derivePasswords(password);
      return { login: loginPassword.toString('base64'), backup: backupPassword.toString('base64') };
    },
    async create_group({ user: name, group_id: gid, with: members }) {
      const u = user(name);
      const group = await u.ethree.createGroup(gid, cardsOf(u, members || []));
      await settle(name, gid);
      return { participants: group.participants };
    },
    async load_group({ user: name, group_id: gid, initiator }) {
      const u = user(name);
      const group = await u.ethree.loadGroup(gid, cardsOf(u, [initiator])[initiator]);
      await settle(name, gid, group._session.getCurrentEpochNumber());
      return { participants: group.participants };
    },
    async group_encrypt({ user: name, group_id: gid, text }) {
      const group = await groupOf(name, gid);
      return { data: await group.encrypt(text) };
    },
    async group_decrypt({ user: name, group_id: gid, from, data, at }) {
      const u = user(name);
      const group = await groupOf(name, gid);
      const date = at === undefined || at === null ? undefined : new Date(at);
      return { text: await group.decrypt(data, cardsOf(u, [from])[from], date) };
    },
    async group_add({ user: name, group_id: gid, members }) {
      const group = await groupOf(name, gid);
      await group.add(cardsOf(user(name), members));
      return { participants: group.participants };
    },
    async group_remove({ user: name, group_id: gid, members }) {
      const group = await groupOf(name, gid);
      await group.remove(cardsOf(user(name), members));
      await settle(name, gid, group._session.getCurrentEpochNumber());
      return { participants: group.participants };
    },
    async group_readd({ user: name, group_id: gid, member }) {
      const group = await groupOf(name, gid);
      await group.reAdd(cardsOf(user(name), [member])[member]);
      return {};
    },
    async group_update({ user: name, group_id: gid }) {
      const group = await groupOf(name, gid);
      await group.update();
      await settle(name, gid, group._session.getCurrentEpochNumber());
      return { participants: group.participants };
    },
    async delete_group({ user: name, group_id: gid }) {
      await user(name).ethree.deleteGroup(gid);
      return {};
    },
    async decrypt({ user: name, mode, from, data, at }) {
      const u = user(name);
      const card = cardsOf(u, [from])[from];
      const date = at === undefined || at === null ? undefined : new Date(at);
      let text;
      if (mode === 'auth') text = await u.ethree.authDecrypt(data, card, date);
      else if (mode === 'legacy') text = await u.ethree.decrypt(data, card, date);
      else throw new Error(`bad mode ${mode}`);
      return { text };
    },
  };

  reply({ id: null, ok: true, result: { ready: true, e3kit: lib.versions.e3kit, crypto: lib.versions.crypto } });

  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  // Commands run one at a time, in order.
  let queue = Promise.resolve();
  rl.on('line', (line) => {
    if (!line.trim()) return;
    queue = queue.then(async () => {
      let request;
      try {
        request = JSON.parse(line);
      } catch (e) {
        reply({ id: null, ok: false, name: 'SyntaxError', error: `not JSON: ${e.message}` });
        return;
      }
      const { id, cmd } = request;
      if (cmd === 'quit') {
        reply({ id, ok: true, result: {} });
        process.exit(0);
      }
      const handler = Object.prototype.hasOwnProperty.call(commands, cmd) ? commands[cmd] : undefined;
      if (!handler) {
        reply({ id, ok: false, name: 'UsageError', error: `unknown command ${cmd}` });
        return;
      }
      let timer;
      try {
        const timeout = new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`${cmd} timed out after ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
        });
        const result = await Promise.race([handler(request), timeout]);
        reply({ id, ok: true, result });
      } catch (e) {
        reply({ id, ok: false, name: (e && e.name) || 'Error', error: errText(e) });
      } finally {
        clearTimeout(timer);
      }
    });
  });
  rl.on('close', () => {
    queue.then(() => process.exit(0));
  });
}

main().catch((e) => {
  process.stderr.write(`${(e && e.stack) || e}\n`);
  process.exit(1);
});
