delete globalThis.fetch; // the emscripten loader of virgil-crypto breaks on Node >= 18 when fetch exists

// TEST DOUBLE ONLY. A minimal in-memory Cards v5 server, written to develop e3kit_cards.js before the real
// Sealkit server existed. It is not Sealkit, not a reference implementation, and keeps nothing on disk.
// Implements just what the cards scenario needs, per ../shared/spec/virgil-services-api.md:
//   JWT check (VEDS512, spec §2; expired -> 401 + 20304), POST /card/v5, POST /card/v5/actions/search
//   (actual cards + predecessor chains; a revoked head hides its chain), GET /card/v5/{id}
//   (X-Virgil-Is-Superseeded), POST /card/v5/actions/revoke/{id}; errors are {code,message}.
//
//   node interop/stub_cards_server.js --app-credentials FILE [--app-credentials FILE2] [--port P]
//        [--listeners N] [--no-chain] [--accept-expired] [--revoke-keeps-chain]
//
// Prints one line `listening http://127.0.0.1:PORT` per listener (N listeners share one in-memory store,
// like several servers on one database). Fault switches for checking that the scenario fails sensibly:
//   --no-chain        search returns only actual cards (no predecessors)  -> step 4 must fail
//   --accept-expired  expired tokens are accepted                         -> step 7b/7c must fail
//   --revoke-keeps-chain  revoking a head leaves its predecessor visible  -> step 5 (rotated alice) must fail

const fs = require('fs');
const http = require('http');
const nodeCrypto = require('crypto');

const USAGE = 'usage: node stub_cards_server.js --app-credentials FILE [...] [--port P] [--listeners N] [--no-chain] [--accept-expired] [--revoke-keeps-chain]';

function parse(argv) {
  const o = { creds: [], port: 0, listeners: 1, chain: true, acceptExpired: false, revokeKeepsChain: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--app-credentials') o.creds.push(argv[++i]);
    else if (a === '--port') o.port = Number(argv[++i]);
    else if (a === '--listeners') o.listeners = Number(argv[++i]);
    else if (a === '--no-chain') o.chain = false;
    else if (a === '--accept-expired') o.acceptExpired = true;
    else if (a === '--revoke-keeps-chain') o.revokeKeepsChain = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (o.creds.length === 0 || o.creds.includes(undefined) || !(o.listeners >= 1) || !(o.port >= 0)) throw new Error('bad arguments');
  return o;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function main() {
  let opts;
  try {
    opts = parse(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${e.message}\n${USAGE}\n`);
    process.exit(2);
  }
  const vc = require(require.resolve('virgil-crypto', { paths: [__dirname] }));
  await vc.initCrypto();
  const crypto = new vc.VirgilCrypto();
  const serviceKey = crypto.generateKeys().privateKey; // signs the "virgil" card signature

  const apps = new Map(); // kid -> { appId, publicKey }
  for (const f of opts.creds) {
    const c = JSON.parse(fs.readFileSync(f, 'utf8'));
    apps.set(c.api_key_id, { appId: c.app_id, publicKey: crypto.importPublicKey(c.api_public_key) });
  }
  const cards = new Map(); // id -> { id, appId, identity, prev, supersededBy, revoked, raw }

  const b64url = (s) => Buffer.from(s.replace(/-/g, '+').replace(/_/g, '/'), 'base64');

  function auth(req) {
    const h = req.headers.authorization || '';
    if (!h.startsWith('Virgil ')) throw new ApiError(401, 20300, 'Missing or malformed Authorization header');
    const parts = h.slice(7).split('.');
    if (parts.length !== 3) throw new ApiError(401, 20301, 'Malformed JWT');
    let header;
    let body;
    try {
      header = JSON.parse(b64url(parts[0]).toString('latin1'));
      body = JSON.parse(b64url(parts[1]).toString('latin1'));
    } catch (_) {
      throw new ApiError(401, 20301, 'Malformed JWT');
    }
    if (header.alg !== 'VEDS512' || header.typ !== 'JWT' || header.cty !== 'virgil-jwt;v=1') throw new ApiError(401, 20301, 'Unsupported JWT header');
    const app = apps.get(header.kid);
    if (!app || body.iss !== `virgil-${app.appId}`) throw new ApiError(401, 20302, 'Unknown API key or issuer');
    let ok = false;
    try {
      ok = crypto.verifySignature(Buffer.from(`${parts[0]}.${parts[1]}`, 'ascii'), b64url(parts[2]), app.publicKey);
    } catch (_) {
      ok = false;
    }
    if (!ok) throw new ApiError(401, 20303, 'JWT signature is invalid');
    if (typeof body.sub !== 'string' || !body.sub.startsWith('identity-')) throw new ApiError(401, 20301, 'Bad JWT subject');
    if (!opts.acceptExpired && !(Number.isInteger(body.exp) && body.exp >= Math.floor(Date.now() / 1000))) {
      throw new ApiError(401, 20304, 'JWT is expired');
    }
    return { appId: app.appId, identity: body.sub.slice(9) };
  }

  function publish(who, model) {
    if (!model || typeof model.content_snapshot !== 'string' || !Array.isArray(model.signatures)) throw new ApiError(400, 40000, 'Bad card model');
    const snap = Buffer.from(model.content_snapshot, 'base64');
    let content;
    try {
      content = JSON.parse(snap.toString('utf8'));
    } catch (_) {
      throw new ApiError(400, 40001, 'content_snapshot is not JSON');
    }
    if (content.version !== '5.0') throw new ApiError(400, 40002, 'Unsupported card version');
    if (content.identity !== who.identity) throw new ApiError(400, 40003, 'Card identity differs from the token identity');
    if (typeof content.public_key !== 'string' || !Number.isInteger(content.created_at)) throw new ApiError(400, 40004, 'public_key/created_at missing');
    const self = model.signatures.find((s) => s && s.signer === 'self');
    if (!self) throw new ApiError(400, 40005, 'Self signature missing');
    try {
      const data = self.snapshot ? Buffer.concat([snap, Buffer.from(self.snapshot, 'base64')]) : snap;
      if (!crypto.verifySignature(data, Buffer.from(self.signature, 'base64'), crypto.importPublicKey(content.public_key))) throw new Error('x');
    } catch (_) {
      throw new ApiError(400, 40006, 'Self signature is invalid');
    }
    const id = nodeCrypto.createHash('sha512').update(snap).digest().subarray(0, 32).toString('hex');
    if (cards.has(id)) throw new ApiError(409, 40007, 'Card already exists');
    let prev = null;
    if (content.previous_card_id !== undefined) {
      prev = cards.get(content.previous_card_id);
      if (!prev || prev.appId !== who.appId || prev.identity !== who.identity || prev.revoked || prev.supersededBy) {
        throw new ApiError(400, 40008, 'previous_card_id is not an actual card of this identity');
      }
    }
    const raw = {
      content_snapshot: model.content_snapshot,
      signatures: [...model.signatures, { signer: 'virgil', signature: crypto.calculateSignature(snap, serviceKey).toString('base64') }],
    };
    cards.set(id, { id, appId: who.appId, identity: who.identity, prev: prev ? prev.id : null, supersededBy: null, revoked: false, raw });
    if (prev) prev.supersededBy = id;
    return raw;
  }

  function search(who, body) {
    if (!body || !Array.isArray(body.identities) || body.identities.some((i) => typeof i !== 'string')) throw new ApiError(400, 40009, 'identities must be an array of strings');
    const want = new Set(body.identities);
    const out = [];
    for (const c of cards.values()) {
      const head = !c.supersededBy || (opts.revokeKeepsChain && cards.get(c.supersededBy).revoked);
      if (c.appId !== who.appId || !want.has(c.identity) || c.revoked || !head) continue;
      out.push(c.raw);
      for (let p = c.prev && cards.get(c.prev); opts.chain && p && !p.revoked; p = p.prev && cards.get(p.prev)) out.push(p.raw);
    }
    return out;
  }

  async function handle(req, res) {
    const chunks = [];
    for await (const c of req) chunks.push(c);
    const text = Buffer.concat(chunks).toString('utf8');
    const json = () => {
      try {
        return JSON.parse(text);
      } catch (_) {
        throw new ApiError(400, 40010, 'Body is not JSON');
      }
    };
    const send = (status, body, headers = {}) => {
      const data = body === undefined ? '' : JSON.stringify(body);
      res.writeHead(status, { ...(data ? { 'Content-Type': 'application/json' } : {}), ...headers });
      res.end(data);
    };
    try {
      const url = new URL(req.url, 'http://x');
      const p = url.pathname;
      let m;
      if (req.method === 'POST' && p === '/card/v5') return send(200, publish(auth(req), json()));
      if (req.method === 'POST' && p === '/card/v5/actions/search') return send(200, search(auth(req), json()));
      if (req.method === 'POST' && (m = /^\/card\/v5\/actions\/revoke\/([0-9a-f]{64})$/.exec(p))) {
        const who = auth(req);
        const c = cards.get(m[1]);
        if (!c || c.appId !== who.appId) throw new ApiError(404, 10001, 'Card not found');
        if (c.identity !== who.identity) throw new ApiError(403, 20500, 'Only the card owner may revoke it');
        c.revoked = true;
        return send(200);
      }
      if (req.method === 'GET' && (m = /^\/card\/v5\/([0-9a-f]{64})$/.exec(p))) {
        const who = auth(req);
        const c = cards.get(m[1]);
        if (!c || c.appId !== who.appId) throw new ApiError(404, 10001, 'Card not found');
        return send(200, c.raw, { 'X-Virgil-Is-Superseeded': c.revoked || c.supersededBy ? 'true' : 'false' });
      }
      throw new ApiError(404, 10000, `No route ${req.method} ${p}`);
    } catch (e) {
      if (e instanceof ApiError) return send(e.status, { code: e.code, message: e.message });
      process.stderr.write(`stub: ${e.stack}\n`);
      return send(500, { code: 1, message: 'internal error' });
    }
  }

  for (let i = 0; i < opts.listeners; i++) {
    const server = http.createServer((req, res) => { handle(req, res); });
    await new Promise((r) => server.listen(opts.port ? opts.port + i : 0, '127.0.0.1', r));
    process.stdout.write(`listening http://127.0.0.1:${server.address().port}\n`);
  }
}

main();
