// Unit tests of web/src/sealkit-chat.js that need no browser and no server: the rules it shares
// with the Rust SDK (direct channel ids, which card keys may have signed a message), and the
// client's handling of the REST answers, against a fake fetch and a fake EThree.
//   node --test web/test/unit.test.mjs
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SealkitChat, Verification, directChannelId, signersAt, ChatApiError } from '../src/sealkit-chat.js';

test('direct channel ids are the Rust SDK ones', async () => {
  // SHA-256 of 00000005 "alice" 00000003 "bob", first 16 bytes (also in crates/client's tests).
  assert.equal(await directChannelId('alice', 'bob'), 'dm:884a452152d3bf048cc051df8f708aff');
  assert.equal(await directChannelId('bob', 'alice'), await directChannelId('alice', 'bob'));
  assert.notEqual(await directChannelId('ab', 'c'), await directChannelId('a', 'bc'));
});

test('signers: the cards current within the skew of sent_at (the Rust SDK window)', () => {
  // A chain newest first: rotated at 2000 s, registered at 1000 s.
  const first = { createdAt: new Date(1000_000), publicKey: 'k1', previousCard: undefined };
  const second = { createdAt: new Date(2000_000), publicKey: 'k2', previousCard: first };
  const skew = 5000;
  assert.deepEqual(signersAt(second, 1_500_000, skew), ['k1']);
  assert.deepEqual(signersAt(second, 2_500_000, skew), ['k2']);
  assert.deepEqual(signersAt(second, 1_999_000, skew), ['k2', 'k1']);
  assert.deepEqual(signersAt(second, 2_004_000, skew), ['k2', 'k1']);
  assert.deepEqual(signersAt(second, 2_006_000, skew), ['k2']);
  assert.deepEqual(signersAt(second, 990_000, skew), []);
  assert.deepEqual(signersAt(second, 997_000, skew), ['k1']);
});

/** A fake server: answers from a list of [method, path prefix, status, body]. */
function fakeFetch(routes, seen) {
  return async (url, init) => {
    const path = url.replace('http://server', '');
    seen.push({ method: init.method, path, body: init.body ? JSON.parse(init.body) : undefined, auth: init.headers.Authorization });
    const i = routes.findIndex(([m, p]) => m === init.method && path.startsWith(p));
    assert.ok(i >= 0, `unexpected ${init.method} ${path}`);
    const [, , status, body] = routes.splice(i, 1)[0];
    return { status, ok: status >= 200 && status < 300, statusText: '', text: async () => JSON.stringify(body) };
  };
}

const jwt = (exp) => `h.${Buffer.from(JSON.stringify({ exp })).toString('base64url')}.s`;

function fakeEthree(calls) {
  return {
    identity: 'alice',
    async findUsers(ids) {
      calls.push(['findUsers', ids]);
      const card = (id) => ({ identity: id, publicKey: `pk-${id}`, createdAt: new Date(0) });
      return typeof ids === 'string' ? card(ids) : Object.fromEntries(ids.map((id) => [id, card(id)]));
    },
    async authEncrypt(data, cards) {
      calls.push(['authEncrypt', data, Object.keys(cards ?? {})]);
      return Buffer.from(`sealed:${data}`).toString('base64');
    },
    async authDecrypt() {
      const e = new Error('bad');
      e.name = 'VirgilCryptoError';
      e.status = 'INVALID_SIGNATURE';
      throw e;
    },
  };
}

const channel = (version, members) => ({ id: 'general', kind: 'group', open: true, created_by: 'alice', created_at: 0, admins: ['alice'], members, member_version: version, last_seq: 0 });

test('send encrypts again for the members a 409 names', async () => {
  const seen = [];
  const calls = [];
  const routes = [
    ['GET', '/chat/v1/channels/general', 200, channel(1, ['alice', 'bob'])],
    ['POST', '/chat/v1/channels/general/messages', 409, { code: 70005, message: 'stale', channel: channel(2, ['alice', 'bob', 'carol']) }],
    ['POST', '/chat/v1/channels/general/messages', 201, { seq: 1, channel: 'general', sender: 'alice', client_id: 'X', sent_at: 1, member_version: 2, ciphertext: '' }],
  ];
  const chat = new SealkitChat({ ethree: fakeEthree(calls), serverUrl: 'http://server/', getToken: async () => jwt(Date.now() / 1000 + 3600), fetch: fakeFetch(routes, seen) });
  // The server echoes the client_id it was sent.
  const realFetch = chat._fetch;
  chat._fetch = async (url, init) => {
    const r = await realFetch(url, init);
    if (init.method === 'POST' && r.status === 201) {
      const id = JSON.parse(init.body).client_id;
      return { ...r, text: async () => JSON.stringify({ seq: 1, channel: 'general', sender: 'alice', client_id: id, sent_at: 1, member_version: 2, ciphertext: '' }) };
    }
    return r;
  };
  const stored = await chat.send('general', 'hi');
  assert.equal(stored.seq, 1);
  const posts = seen.filter((s) => s.method === 'POST');
  assert.equal(posts.length, 2);
  assert.equal(posts[0].body.member_version, 1);
  assert.equal(posts[1].body.member_version, 2);
  assert.equal(posts[0].body.client_id, posts[1].body.client_id, 'one client_id for the retries');
  const encrypts = calls.filter((c) => c[0] === 'authEncrypt');
  assert.deepEqual(encrypts.map((c) => c[2]), [['bob'], ['bob', 'carol']]);
  assert.ok(seen.every((s) => s.auth.startsWith('Virgil h.')));
  assert.equal(routes.length, 0);
});

test('a 401 is retried once with a fresh token; other errors are typed', async () => {
  const seen = [];
  let tokens = 0;
  const routes = [
    ['GET', '/chat/v1/channels/x', 401, { code: 20304, message: 'expired' }],
    ['GET', '/chat/v1/channels/x', 404, { code: 70001, message: 'no such channel' }],
  ];
  const chat = new SealkitChat({ ethree: fakeEthree([]), serverUrl: 'http://server', getToken: async () => jwt(Date.now() / 1000 + 3600 + tokens++), fetch: fakeFetch(routes, seen) });
  await assert.rejects(chat.channel('x'), (e) => e instanceof ChatApiError && e.code === 70001 && e.status === 404);
  assert.equal(tokens, 2);
  assert.notEqual(seen[0].auth, seen[1].auth);
  await assert.rejects(chat.channel('a b'), TypeError);
});

test('a message whose signature fails is withheld, after one fresh card lookup', async () => {
  const calls = [];
  const chat = new SealkitChat({ ethree: fakeEthree(calls), serverUrl: 'http://server', getToken: async () => jwt(9e9), fetch: async () => assert.fail('no REST') });
  const received = await chat.open({ seq: 1, channel: 'general', sender: 'bob', client_id: 'c', sent_at: 1000, member_version: 1, ciphertext: 'AAAA' });
  assert.equal(received.status, Verification.BAD_SIGNATURE);
  assert.equal(received.text, null);
  assert.equal(calls.filter((c) => c[0] === 'findUsers').length, 2);
  const malformed = await chat.open({ seq: 2, channel: 'general', sender: 'bob', client_id: 'c', sent_at: 1000, member_version: 1, ciphertext: 'not base64!' });
  assert.equal(malformed.status, Verification.MALFORMED);
});
