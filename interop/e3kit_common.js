// Shared helpers for the e3kit scenario runners (e3kit_cards.js): loading the real e3kit-node 2.5.1 and
// the virgil-sdk / virgil-crypto copies it uses, minting Virgil JWTs from app credentials, a named-check
// runner and a tiny raw HTTP client.
//
// Node >= 18: the caller must run `delete globalThis.fetch;` before requiring this file (the emscripten
// loader of virgil-crypto breaks when fetch exists).

const fs = require('fs');
const path = require('path');
const http = require('http');
const https = require('https');

class UsageError extends Error {}

// ------------------------------------------------------------------------------------------ arguments

// spec: { '--name': 'string' | 'list' | 'flag' }. Returns { name: value }; throws UsageError.
function parseArgs(argv, spec) {
  const out = {};
  for (const [k, kind] of Object.entries(spec)) {
    const key = k.replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    out[key] = kind === 'list' ? [] : kind === 'flag' ? false : undefined;
  }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const kind = spec[a];
    if (!kind) throw new UsageError(`unknown argument: ${a}`);
    const key = a.replace(/^--/, '').replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (kind === 'flag') {
      out[key] = true;
      continue;
    }
    const v = argv[++i];
    if (v === undefined) throw new UsageError(`${a} needs a value`);
    if (kind === 'list') out[key].push(v);
    else out[key] = v;
  }
  return out;
}

// ------------------------------------------------------------------------------------------ libraries

// The real e3kit-node plus the exact virgil-sdk and virgil-crypto copies e3kit-node itself resolves.
async function loadE3kit() {
  const e3kitPkg = require.resolve('@virgilsecurity/e3kit-node/package.json', { paths: [__dirname] });
  const e3kitDir = path.dirname(e3kitPkg);
  const version = JSON.parse(fs.readFileSync(e3kitPkg, 'utf8')).version;
  const e3kit = require(e3kitDir);
  const sdk = require(require.resolve('virgil-sdk', { paths: [e3kitDir] }));
  const vcPkg = require.resolve('virgil-crypto/package.json', { paths: [e3kitDir] });
  // e3kit-node requires 'virgil-crypto/dist/node.cjs.js'; resolve the same file so the module (and its
  // initialised wasm) is shared.
  const vc = require(require.resolve('virgil-crypto/dist/node.cjs.js', { paths: [e3kitDir] }));
  await vc.initCrypto();
  return {
    e3kit,
    sdk,
    vc,
    crypto: new vc.VirgilCrypto(),
    versions: { e3kit: version, crypto: JSON.parse(fs.readFileSync(vcPkg, 'utf8')).version },
  };
}

// ------------------------------------------------------------------------------------------ tokens

function loadCredentials(file) {
  let c;
  try {
    c = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`cannot read app credentials ${file}: ${e.message}`);
  }
  for (const f of ['app_id', 'api_key_id', 'api_private_key']) {
    if (typeof c[f] !== 'string' || !c[f]) throw new UsageError(`app credentials ${file}: missing "${f}"`);
  }
  return c;
}

// Token minting the way an app backend does it: virgil-sdk JwtGenerator + VirgilAccessTokenSigner.
function makeTokenFactory(lib, creds) {
  const apiKey = lib.crypto.importPrivateKey(creds.api_private_key);
  const signer = new lib.vc.VirgilAccessTokenSigner(lib.crypto);
  const generators = new Map();
  const generator = (ttlMs) => {
    if (!generators.has(ttlMs)) {
      generators.set(ttlMs, new lib.sdk.JwtGenerator({
        appId: creds.app_id,
        apiKeyId: creds.api_key_id,
        apiKey,
        accessTokenSigner: signer,
        millisecondsToLive: ttlMs,
      }));
    }
    return generators.get(ttlMs);
  };
  return {
    // -> virgil-sdk Jwt
    mint: (identity, ttlMs = 20 * 60 * 1000) => generator(ttlMs).generateToken(identity),
    // A well-formed, correctly signed token with explicit iat/exp (Unix seconds), e.g. long expired.
    mintAt: (identity, iat, exp) => {
      const header = { alg: signer.getAlgorithm(), kid: creds.api_key_id, typ: 'JWT', cty: 'virgil-jwt;v=1' };
      const body = { iss: `virgil-${creds.app_id}`, sub: `identity-${identity}`, iat, exp };
      const unsigned = new lib.sdk.Jwt(header, body);
      const sig = signer.generateTokenSignature({ value: unsigned.unsignedData, encoding: 'utf8' }, apiKey);
      return new lib.sdk.Jwt(header, body, sig.toString('base64'));
    },
    // Same claims, signed with an unrelated key (must be rejected by the server).
    mintForged: (identity, ttlSec = 600) => {
      const other = lib.crypto.generateKeys().privateKey;
      const header = { alg: signer.getAlgorithm(), kid: creds.api_key_id, typ: 'JWT', cty: 'virgil-jwt;v=1' };
      const now = Math.floor(Date.now() / 1000);
      const body = { iss: `virgil-${creds.app_id}`, sub: `identity-${identity}`, iat: now, exp: now + ttlSec };
      const unsigned = new lib.sdk.Jwt(header, body);
      const sig = signer.generateTokenSignature({ value: unsigned.unsignedData, encoding: 'utf8' }, other);
      return new lib.sdk.Jwt(header, body, sig.toString('base64'));
    },
  };
}

// ------------------------------------------------------------------------------------------ checks

function errText(e) {
  if (!e) return String(e);
  let s = `${e.name || 'Error'}: ${e.message}`;
  if (e.httpStatus !== undefined) s += ` (http ${e.httpStatus}, code ${e.errorCode})`;
  if (e.identities) s += ` identities=${JSON.stringify(e.identities)}`;
  return s.replace(/\s*\n\s*/g, ' ');
}

class Checks {
  constructor(out = process.stdout) {
    this.out = out;
    this.passed = 0;
    this.failed = 0;
  }

  // Runs fn; a throw is a failure. Returns fn's value (undefined on failure).
  async check(name, fn) {
    try {
      const v = await fn();
      this.passed++;
      this.out.write(`ok ${name}\n`);
      return v;
    } catch (e) {
      this.failed++;
      this.out.write(`FAIL ${name}: ${e && e.__plain ? e.message : errText(e)}\n`);
      return undefined;
    }
  }

  note(text) {
    this.out.write(`# ${text}\n`);
  }

  summary() {
    this.out.write(`${this.passed} passed, ${this.failed} failed\n`);
    return this.failed > 0 ? 1 : 0;
  }
}

function fail(message) {
  const e = new Error(message);
  e.__plain = true;
  return e;
}

function assert(cond, message) {
  if (!cond) throw fail(message);
}

function need(value, what) {
  if (value === undefined || value === null) {
    const e = fail(`skipped: ${what} unavailable (an earlier check failed)`);
    e.__skip = true; // never counts as the error an expectError/expectThrow check is waiting for
    throw e;
  }
  return value;
}

// Awaits fn() and requires it to throw an error whose name is in `names` (string or array).
async function expectError(fn, names) {
  const list = Array.isArray(names) ? names : [names];
  let result;
  try {
    result = await fn();
  } catch (e) {
    if (e && e.__skip) throw e;
    if (list.includes(e && e.name)) return e;
    throw fail(`expected ${list.join('|')}, got ${errText(e)}`);
  }
  throw fail(`expected ${list.join('|')}, but the call succeeded (${typeof result})`);
}

// Awaits fn() and requires it to throw anything.
async function expectThrow(fn, what) {
  try {
    await fn();
  } catch (e) {
    if (e && e.__skip) throw e;
    return e;
  }
  throw fail(`${what} unexpectedly succeeded`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------ raw HTTP

// -> { status, headers, text, json }
function rawRequest(method, url, { headers = {}, body } = {}) {
  return new Promise((resolve, reject) => {
    const u = new URL(url);
    const mod = u.protocol === 'https:' ? https : http;
    const data = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    const h = { ...headers };
    if (data) {
      h['Content-Type'] = h['Content-Type'] || 'application/json';
      h['Content-Length'] = data.length;
    }
    const req = mod.request(u, { method, headers: h, timeout: 10000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = text ? JSON.parse(text) : undefined;
        } catch (_) {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, json });
      });
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${method} ${url}`)));
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

// ------------------------------------------------------------------------------------------ scenario runners
// (added for e3kit_backup_groups.js; e3kit_cards.js keeps its own copies of the argument parsing and abort path)

// Requires `id` the way `from` (a package e3kit-node depends on, or e3kit-node itself) resolves it, so the
// module instance (and any wasm it initialised, or a patch applied to it) is the one e3kit really uses.
// e.g. requireAsE3kit('virgil-pythia', '@virgilsecurity/e3kit-base'),
//      requireAsE3kit('@virgilsecurity/pythia-crypto/dist/node.cjs.js').
function requireAsE3kit(id, from = '@virgilsecurity/e3kit-node') {
  const e3kitDir = path.dirname(require.resolve('@virgilsecurity/e3kit-node/package.json', { paths: [__dirname] }));
  const fromDir = from === '@virgilsecurity/e3kit-node'
    ? e3kitDir
    : path.dirname(require.resolve(`${from}/package.json`, { paths: [e3kitDir] }));
  return require(require.resolve(id, { paths: [fromDir] }));
}

// The common CLI of the scenario runners:
// --api-url URL (repeatable) --app-credentials FILE --storage DIR [--prefix STR]. Throws UsageError.
function parseScenarioArgs(argv) {
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

// Runs `main(args, checks)` (which returns the exit code, normally checks.summary()) with the common CLI:
// exit 2 on a usage error; on a crash or after `timeoutMs` one `FAIL scenario: ...` line, the summary and exit 1.
function runScenario(main, { usage, timeoutMs }) {
  const checks = new Checks();
  const abort = (message) => {
    checks.failed++;
    process.stdout.write(`FAIL scenario: ${String(message).replace(/\s*\n\s*/g, ' | ')}\n`);
    checks.summary();
    process.exit(1);
  };
  let args;
  try {
    args = parseScenarioArgs(process.argv.slice(2));
  } catch (e) {
    if (e instanceof UsageError) {
      if (e.message) process.stderr.write(`${e.message}\n`);
      process.stderr.write(`${usage}\n`);
      process.exit(2);
    }
    throw e;
  }
  setTimeout(() => abort(`timed out after ${timeoutMs / 1000} s`), timeoutMs).unref();
  Promise.resolve()
    .then(() => main(args, checks))
    .then((code) => process.exit(code), (e) => abort((e && e.stack) || e));
}

// Runs fn(item, index) over items with at most `limit` calls in flight; resolves to the results in order.
// A rejection is stored as { error } in its slot (the other items still run).
async function mapLimit(items, limit, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      try {
        results[i] = await fn(items[i], i);
      } catch (error) {
        results[i] = { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

module.exports = {
  UsageError,
  parseArgs,
  loadE3kit,
  loadCredentials,
  makeTokenFactory,
  Checks,
  fail,
  assert,
  need,
  expectError,
  expectThrow,
  errText,
  sleep,
  rawRequest,
  requireAsE3kit,
  parseScenarioArgs,
  runScenario,
  mapLimit,
};
