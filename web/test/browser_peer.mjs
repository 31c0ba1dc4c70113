// Headless Chromium pages of the demo web chat, driven one JSON command per line on stdin (the
// real-browser tests in crates/cli/tests/it/web_e2e.rs). Each answer is one stdout line
// `@@ {"id", "ok", "result" | "error"}`; anything else printed is log.
//
//   node web/test/browser_peer.mjs --backend http://127.0.0.1:3000 --server http://127.0.0.1:8080
//
// Every page is its own browser context (its own IndexedDB, so its own keys), like a user on
// another machine. Console errors and uncaught page errors of every page are collected and
// returned by the `errors` command; the tests fail on any.
import puppeteer from 'puppeteer-core';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : fallback;
}

const backend = arg('backend');
const server = arg('server');
const executablePath = arg('chromium', process.env.CHROMIUM || '/usr/bin/chromium');
if (!backend || !server) throw new Error('usage: browser_peer.mjs --backend URL --server URL');
if (!existsSync(executablePath)) throw new Error(`no Chromium at ${executablePath} (apt-get install chromium)`);

const TIMEOUT = 30_000;
const browser = await puppeteer.launch({
  executablePath,
  headless: true,
  args: ['--no-sandbox', '--disable-dev-shm-usage', '--disable-gpu', '--no-first-run'],
});

/** name → {page, context} */
const pages = new Map();
/** Console errors and page errors, from every page: {page, kind, text, url}. */
const errors = [];
/** Answers the page handled itself (404 not a member, 409 exists or stale members). */
const handled = [];

function isHandledApiAnswer(text, url) {
  return /the server responded with a status of (404|409)/.test(text) && url.startsWith(`${server}/chat/v1/`);
}

async function open(name) {
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.on('pageerror', (e) => errors.push({ page: name, kind: 'pageerror', text: String(e?.message ?? e), url: page.url() }));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const url = m.location()?.url ?? '';
    const entry = { page: name, kind: 'console', text: m.text(), url };
    (isHandledApiAnswer(entry.text, url) ? handled : errors).push(entry);
  });
  await page.setViewport({ width: 1200, height: 760 });
  await page.goto(backend, { waitUntil: 'load' });
  await page.waitForSelector('body[data-ready="true"]');
  pages.set(name, { page, context });
  return { url: page.url() };
}

function get(name) {
  const p = pages.get(name);
  if (!p) throw new Error(`no page ${name}`);
  return p.page;
}

async function errorText(page) {
  return page.$eval('#error', (e) => (e.hidden ? '' : e.textContent));
}

/** Waits for `predicate` in the page, or for #error to show; throws with the error text. */
async function until(page, predicate, arg) {
  const handle = await page.waitForFunction(
    (src, a) => {
      const err = document.getElementById('error');
      if (!err.hidden && err.textContent) return { error: err.textContent };
      // eslint-disable-next-line no-new-func
      return new Function('a', src)(a) ? { ok: true } : false;
    },
    { timeout: TIMEOUT, polling: 50 },
    predicate,
    arg,
  );
  const outcome = await handle.jsonValue();
  if (outcome.error) throw new Error(`page shows an error: ${outcome.error}`);
}

async function fill(page, selector, text) {
  await page.$eval(selector, (e) => {
    e.value = '';
  });
  await page.type(selector, text);
}

async function messages(page) {
  return page.$$eval('#messages .message', (els) =>
    els.map((e) => ({
      sender: e.dataset.sender,
      verified: e.dataset.verified,
      status: e.dataset.status,
      seq: Number(e.dataset.seq),
      text: e.querySelector('.text')?.textContent ?? null,
    })),
  );
}

const commands = {
  async open({ page }) {
    return open(page);
  },
  async login({ page, identity }) {
    const p = get(page);
    await fill(p, '#identity', identity);
    await p.click('#login');
    await until(p, "return !document.getElementById('chat-panel').hidden && document.body.dataset.connected === 'true'");
    return { status: await p.$eval('#status', (e) => e.textContent) };
  },
  async join({ page, channel }) {
    const p = get(page);
    await fill(p, '#channel', channel);
    await p.click('#join');
    await until(p, 'return document.body.dataset.channel === a', channel);
    return {};
  },
  async dm({ page, other }) {
    const p = get(page);
    await fill(p, '#dm', other);
    await p.click('#dm-open');
    await until(p, "return document.getElementById('channel-title').textContent === '@' + a", other);
    return { channel: await p.evaluate(() => document.body.dataset.channel) };
  },
  async show({ page, channel }) {
    const p = get(page);
    // The channel list is redrawn when unread counts change, so a button found by one
    // protocol call may be detached by the click: find and click it in one step in the page.
    const selector = `#channels button[data-channel="${channel}"]`;
    await until(p, 'return document.querySelector(a) !== null', selector);
    await p.evaluate((s) => document.querySelector(s).click(), selector);
    await until(p, 'return document.body.dataset.channel === a', channel);
    return {};
  },
  async send({ page, text }) {
    const p = get(page);
    await fill(p, '#message', text);
    await p.click('#send');
    await until(p, "return document.getElementById('message').value === '' && !document.getElementById('send').disabled");
    return {};
  },
  async wait_message({ page, sender, text }) {
    const p = get(page);
    await until(
      p,
      "return [...document.querySelectorAll('#messages .message')].some((m) => m.dataset.sender === a.sender && m.querySelector('.text').textContent === a.text)",
      { sender, text },
    );
    return { messages: await messages(p) };
  },
  async messages({ page }) {
    return { messages: await messages(get(page)) };
  },
  async older({ page }) {
    const p = get(page);
    const before = (await messages(p)).length;
    await p.click('#older');
    await until(p, "return document.querySelectorAll('#messages .message').length > a", before);
    return { messages: await messages(p), more: await p.$eval('#older', (e) => !e.hidden) };
  },
  async members({ page }) {
    return { members: await get(page).$$eval('#members li.member', (els) => els.map((e) => e.dataset.identity)) };
  },
  async remove_member({ page, identity }) {
    const p = get(page);
    await p.click(`#members li.member[data-identity="${identity}"] button.remove`);
    await until(p, "return !document.querySelector(`#members li.member[data-identity=\"${a}\"]`)", identity);
    return {};
  },
  async wait_error({ page, contains }) {
    const p = get(page);
    await p.waitForFunction(
      (c) => {
        const e = document.getElementById('error');
        return !e.hidden && e.textContent.includes(c);
      },
      { timeout: TIMEOUT, polling: 50 },
      contains,
    );
    return { error: await errorText(p) };
  },
  async error({ page }) {
    return { error: await errorText(get(page)) };
  },
  async wait_connected({ page, connected }) {
    const p = get(page);
    await p.waitForFunction((c) => document.body.dataset.connected === String(c), { timeout: 60_000, polling: 100 }, connected);
    return {};
  },
  async reload({ page }) {
    const p = get(page);
    await p.reload({ waitUntil: 'load' });
    await p.waitForSelector('body[data-ready="true"]');
    return {};
  },
  async screenshot({ page, path }) {
    await get(page).screenshot({ path, fullPage: false });
    return { path };
  },
  async errors() {
    return { errors, handled };
  },
  async close({ page }) {
    const p = pages.get(page);
    if (p) await p.context.close();
    pages.delete(page);
    return {};
  },
};

function answer(value) {
  process.stdout.write(`@@ ${JSON.stringify(value)}\n`);
}

const version = (await browser.version());
answer({ id: 0, ok: true, result: { ready: true, browser: version } });

const lines = createInterface({ input: process.stdin });
for await (const line of lines) {
  if (!line.trim()) continue;
  let request;
  try {
    request = JSON.parse(line);
  } catch (e) {
    answer({ id: null, ok: false, error: `bad JSON: ${e.message}` });
    continue;
  }
  if (request.cmd === 'quit') break;
  const command = commands[request.cmd];
  try {
    if (!command) throw new Error(`unknown command ${request.cmd}`);
    answer({ id: request.id, ok: true, result: await command(request) });
  } catch (e) {
    answer({ id: request.id, ok: false, error: String(e?.stack ?? e) });
  }
}
await browser.close();
process.exit(0);
