// Sealkit chat for the browser: the /chat/v1 API (REST and WebSocket) of a Sealkit server, with
// every message end-to-end encrypted through an existing @virgilsecurity/e3kit-browser EThree
// instance, exactly as the Rust SDK's `sealkit::chat` does it, so browser, Rust and terminal
// users share channels:
//
// * a message is `authEncrypt`ed (signed, then encrypted, e3kit's format) to the cards of the
//   channel's members at the moment it is sent, the sender included, and posted as base64 with
//   the membership version it was encrypted for; a 409 (70005, members changed meanwhile) makes
//   it encrypt again for the members the refusal names;
// * a received message is decrypted and its signature checked against the sender's card that
//   was current when the server stored it (`sent_at`, within CLOCK_SKEW_MS), and reports one of
//   the `Verification` values; only a verified message carries its text.
//
// This module imports nothing: pass it the EThree instance and a function that returns a
// Virgil JWT (the same one EThree was initialized with). See docs/web.md.

/** What checking a received message found (the Rust SDK's `Verification`). */
export const Verification = Object.freeze({
  /** Decrypted, and signed by the sender's card valid when it was sent. */
  VERIFIED: 'verified',
  /** Not encrypted for this user's key (joined later, was removed, or replaced the key). */
  NOT_FOR_ME: 'not-for-me',
  /** Decrypted, but not signed by the claimed sender: the text is withheld. */
  BAD_SIGNATURE: 'bad-signature',
  /** The sender has no card (none that was valid when it was sent). */
  UNKNOWN_SENDER: 'unknown-sender',
  /** Not something this client can read (bad base64, not an authEncrypt envelope, damaged). */
  MALFORMED: 'malformed',
});

/** The server's chat error codes (`sealkit_proto::chat::codes`). */
export const Codes = Object.freeze({
  CHANNEL_NOT_FOUND: 70001,
  NOT_A_MEMBER: 70002,
  NOT_AN_ADMIN: 70003,
  CHANNEL_EXISTS: 70004,
  STALE_MEMBERS: 70005,
  MESSAGE_TOO_LARGE: 70006,
  INVALID: 70007,
  MEMBERSHIP_RULE: 70008,
  TOO_MANY_SOCKETS: 70009,
  TOO_MANY_CHANNELS: 70010,
});

/** How far `sent_at` (server clock) may be from a card's creation (sender clock). */
export const CLOCK_SKEW_MS = 5000;
/** How many times `send` encrypts again when the members changed meanwhile. */
const STALE_RETRIES = 5;
/** How many times a post is repeated (same client_id) after a network error or a 5xx. */
const POST_RETRIES = 2;
/** How long a card found on the server is used without asking again. */
const CARD_TTL_MS = 60_000;
/** WebSocket keep-alive: ping this often, and give up on a socket silent this long. */
const PING_EVERY_MS = 10_000;
const DEAD_AFTER_MS = 30_000;
/** Reconnect backoff: from the first to the last delay, doubling. */
const FIRST_BACKOFF_MS = 250;
const MAX_BACKOFF_MS = 4000;
/** Refresh a token this long before its `exp`. */
const TOKEN_MARGIN_MS = 30_000;

/** An error answer of the server (`{code, message}` with the HTTP status). */
export class ChatApiError extends Error {
  constructor(status, code, message, body) {
    super(`${message} (HTTP ${status}, code ${code})`);
    this.name = 'ChatApiError';
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

/** The server could not be reached (or answered something that is not JSON). */
export class ChatNetworkError extends Error {
  constructor(message, cause) {
    super(message);
    this.name = 'ChatNetworkError';
    this.cause = cause;
  }
}

const CHANNEL_ID = /^[A-Za-z0-9._:@-]{1,128}$/;

function checkChannelId(id) {
  if (typeof id !== 'string' || !CHANNEL_ID.test(id)) {
    throw new TypeError(`channel id ${JSON.stringify(id)} must be 1 to 128 characters of A-Z a-z 0-9 . _ : @ -`);
  }
}

function randomHex(bytes) {
  const b = crypto.getRandomValues(new Uint8Array(bytes));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

/** The `exp` of a JWT in milliseconds, or 0 when it cannot be read. */
function jwtExpiryMs(jwt) {
  try {
    const payload = jwt.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
    const exp = JSON.parse(atob(payload)).exp;
    return typeof exp === 'number' ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

/**
 * The id of the direct channel of two identities: `dm:` and the first 16 bytes, in hex, of
 * SHA-256 over both identities (sorted, each prefixed by its UTF-8 length as 4 big-endian
 * bytes). Same as `sealkit_proto::chat::direct_channel_id`.
 */
export async function directChannelId(a, b) {
  const enc = new TextEncoder();
  const [first, second] = a <= b ? [a, b] : [b, a];
  const parts = [first, second].map((s) => enc.encode(s));
  const input = new Uint8Array(parts.reduce((n, p) => n + 4 + p.length, 0));
  let at = 0;
  for (const p of parts) {
    new DataView(input.buffer).setUint32(at, p.length);
    input.set(p, at + 4);
    at += 4 + p.length;
  }
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', input));
  return 'dm:' + Array.from(digest.slice(0, 16), (x) => x.toString(16).padStart(2, '0')).join('');
}

/**
 * The keys that may have signed a message stored at `sentAtMs`: those of the sender's cards
 * (newest first through `previousCard`) current at some moment within CLOCK_SKEW_MS of it.
 */
export function signersAt(card, sentAtMs, skewMs = CLOCK_SKEW_MS) {
  const out = [];
  let replacedAt = null;
  for (let c = card; c; c = c.previousCard) {
    const created = new Date(c.createdAt).getTime();
    const started = created <= sentAtMs + skewMs;
    const notYetReplaced = replacedAt === null || replacedAt > sentAtMs - skewMs;
    if (started && notYetReplaced) out.push(c.publicKey);
    replacedAt = created;
  }
  return out;
}

/** What a failed `authDecrypt` means, as a Verification (or null for "try another key"). */
function classifyDecryptError(e) {
  const status = e && e.name === 'VirgilCryptoError' ? e.status : undefined;
  if (status === 'SIGNER_NOT_FOUND' || status === 'INVALID_SIGNATURE') return Verification.BAD_SIGNATURE;
  if (status === 'DATA_NOT_SIGNED') return Verification.MALFORMED;
  const text = String((e && e.message) || e);
  // virgil-crypto's foundation error when no recipient of the message has our key id.
  if (/recipient|key.*not.*found|not.*found.*key/i.test(text)) return Verification.NOT_FOR_ME;
  return Verification.MALFORMED;
}

/**
 * The chat client of one e3kit user. Keep one: it caches channel members and cards.
 *
 * ```js
 * const chat = new SealkitChat({ ethree, serverUrl: 'http://127.0.0.1:8080', getToken });
 * await chat.openChannel('general');            // join it, or create it as an open group
 * await chat.sendText('general', 'hello');
 * const page = await chat.history('general', { latest: true, limit: 50 });
 * const stream = chat.subscribe();
 * stream.addEventListener('message', (e) => show(e.detail)); // {message, text, status}
 * stream.subscribe('general', page.messages.at(-1)?.message.seq ?? 0);
 * ```
 */
export class SealkitChat {
  /**
   * @param {object} options
   * @param {object} options.ethree an initialized, registered EThree (e3kit-browser 3.x)
   * @param {string} options.serverUrl the Sealkit server, e.g. `http://127.0.0.1:8080`
   * @param {() => Promise<string>} options.getToken returns a fresh Virgil JWT of the user
   * @param {typeof fetch} [options.fetch] fetch to use (tests)
   * @param {typeof WebSocket} [options.WebSocket] WebSocket class to use (tests)
   */
  constructor({ ethree, serverUrl, getToken, fetch: fetchImpl, WebSocket: wsImpl }) {
    if (!ethree || typeof ethree.authEncrypt !== 'function') throw new TypeError('SealkitChat needs an EThree instance');
    if (typeof getToken !== 'function') throw new TypeError('SealkitChat needs getToken(): Promise<string>');
    this.ethree = ethree;
    this.identity = ethree.identity;
    this.serverUrl = String(serverUrl).replace(/\/+$/, '');
    this._getToken = getToken;
    this._fetch = fetchImpl || globalThis.fetch.bind(globalThis);
    this._WebSocket = wsImpl || globalThis.WebSocket;
    this._token = null;
    this._tokenExpiry = 0;
    /** channel id → Channel as last read */
    this._channels = new Map();
    /** identity → {at, card|null} */
    this._cards = new Map();
  }

  // ------------------------------------------------------------------------------- tokens

  /** A token of the user: the cached one while it has TOKEN_MARGIN_MS left, else a new one. */
  async token({ fresh = false } = {}) {
    if (fresh || !this._token || Date.now() > this._tokenExpiry - TOKEN_MARGIN_MS) {
      const jwt = await this._getToken();
      if (typeof jwt !== 'string' || jwt.split('.').length !== 3) throw new TypeError('getToken() did not return a JWT');
      this._token = jwt;
      this._tokenExpiry = jwtExpiryMs(jwt) || Date.now() + 5 * 60_000;
    }
    return this._token;
  }

  // ------------------------------------------------------------------------------- REST

  /** One API call; a 401 is retried once with a fresh token. Returns `{status, body}`. */
  async _request(method, path, body, { allow = [] } = {}) {
    for (let attempt = 0; ; attempt += 1) {
      const token = await this.token({ fresh: attempt > 0 });
      let response;
      try {
        response = await this._fetch(this.serverUrl + path, {
          method,
          headers: {
            Authorization: `Virgil ${token}`,
            ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
          },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      } catch (e) {
        throw new ChatNetworkError(`cannot reach ${this.serverUrl}: ${e.message || e}`, e);
      }
      let json = null;
      const text = await response.text().catch(() => '');
      if (text) {
        try {
          json = JSON.parse(text);
        } catch {
          throw new ChatNetworkError(`${method} ${path}: HTTP ${response.status}, not JSON`);
        }
      }
      if (response.status === 401 && attempt === 0) continue;
      if (response.ok || allow.includes(response.status)) return { status: response.status, body: json };
      throw new ChatApiError(response.status, json?.code ?? 0, json?.message ?? response.statusText, json);
    }
  }

  _remember(channel) {
    this._channels.set(channel.id, channel);
    return channel;
  }

  /** All the user's channels (every page). */
  async channels() {
    const all = [];
    let after = null;
    for (;;) {
      const q = new URLSearchParams({ limit: '500' });
      if (after !== null) q.set('after', after);
      const { body } = await this._request('GET', `/chat/v1/channels?${q}`);
      for (const c of body.channels) all.push(this._remember(c));
      if (!body.more || body.channels.length === 0) return all;
      after = body.channels[body.channels.length - 1].id;
    }
  }

  /** One channel: members, admins, member_version, last_seq (members only; else 70001). */
  async channel(id) {
    checkChannelId(id);
    try {
      const { body } = await this._request('GET', `/chat/v1/channels/${encodeURIComponent(id)}`);
      return this._remember(body);
    } catch (e) {
      this._channels.delete(id);
      throw e;
    }
  }

  /** Creates a channel; the caller is its first admin. `kind`: 'group' or 'direct'. */
  async createChannel(id, { kind = 'group', members = [], open = false } = {}) {
    checkChannelId(id);
    const { body } = await this._request('POST', '/chat/v1/channels', { id, kind, members, open });
    return this._remember(body);
  }

  /** Adds `identity` (admins; anyone for themselves in an open channel). */
  async addMember(id, identity) {
    checkChannelId(id);
    const { body } = await this._request('POST', `/chat/v1/channels/${encodeURIComponent(id)}/members`, { identity });
    return this._remember(body);
  }

  /** Removes `identity` (admins; or anyone for themselves = leave). */
  async removeMember(id, identity) {
    checkChannelId(id);
    const path = `/chat/v1/channels/${encodeURIComponent(id)}/members/${encodeURIComponent(identity)}`;
    const { body } = await this._request('DELETE', path);
    if (identity === this.identity) this._channels.delete(id);
    else if (body && body.id) this._remember(body);
    return body;
  }

  /** Joins a channel (an open one, or a direct one the user left). */
  join(id) {
    return this.addMember(id, this.identity);
  }

  /** Leaves a channel. */
  async leave(id) {
    await this.removeMember(id, this.identity);
  }

  /**
   * The channel to show for a name: the user's own, else joined (an open channel), else
   * created as an open group channel — what `sealkit chat --channel NAME` does.
   */
  async openChannel(id) {
    checkChannelId(id);
    try {
      return await this.channel(id);
    } catch (e) {
      if (!(e instanceof ChatApiError) || e.code !== Codes.CHANNEL_NOT_FOUND) throw e;
    }
    try {
      return await this.createChannel(id, { kind: 'group', members: [], open: true });
    } catch (e) {
      if (!(e instanceof ChatApiError) || e.code !== Codes.CHANNEL_EXISTS) throw e;
    }
    return this.join(id);
  }

  /** The direct channel with `other`: created, or the existing one (re-joined if left). */
  async directChannel(other) {
    const id = await directChannelId(this.identity, other);
    let channel;
    try {
      channel = await this.createChannel(id, { kind: 'direct', members: [other] });
    } catch (e) {
      if (!(e instanceof ChatApiError) || e.code !== Codes.CHANNEL_EXISTS) throw e;
      try {
        channel = await this.channel(id);
      } catch (e2) {
        if (!(e2 instanceof ChatApiError) || e2.code !== Codes.CHANNEL_NOT_FOUND) throw e2;
        channel = await this.join(id);
      }
    }
    const pair = [this.identity, other];
    if (channel.kind !== 'direct' || !channel.members.includes(this.identity) || !channel.members.every((m) => pair.includes(m))) {
      throw new Error(`channel ${id} is not the direct channel of ${this.identity} and ${other}`);
    }
    return channel;
  }

  // ------------------------------------------------------------------------------- cards

  /** The cards of `identities` (not the user's own), from the cache while fresh. */
  async _memberCards(identities) {
    const now = Date.now();
    const cards = [];
    const cardless = [];
    let missing = [];
    for (const id of identities) {
      if (id === this.identity) continue;
      const hit = this._cards.get(id);
      if (hit && now - hit.at < CARD_TTL_MS) {
        if (hit.card) cards.push(hit.card);
        else cardless.push(id);
      } else missing.push(id);
    }
    while (missing.length > 0) {
      try {
        const found = await this.ethree.findUsers(missing);
        for (const [id, card] of Object.entries(found)) {
          this._cards.set(id, { at: Date.now(), card });
          cards.push(card);
        }
        break;
      } catch (e) {
        const notFound = e && Array.isArray(e.identities) && e.name === 'UsersNotFoundError' ? e.identities : null;
        if (!notFound) throw e;
        for (const id of notFound) this._cards.set(id, { at: Date.now(), card: null });
        missing = missing.filter((m) => !notFound.includes(m));
        cardless.push(...notFound);
      }
    }
    if (cards.length === 0 && cardless.length > 0) {
      throw new Error(`not registered yet: ${cardless.join(', ')} (nobody else could read it)`);
    }
    return cards;
  }

  /** The sender's card: cached while fresh (unless `refresh`), else from the server; null if none. */
  async _senderCard(identity, refresh) {
    const hit = this._cards.get(identity);
    if (!refresh && hit && Date.now() - hit.at < CARD_TTL_MS) return hit.card;
    try {
      const card = await this.ethree.findUsers(identity);
      this._cards.set(identity, { at: Date.now(), card });
      return card;
    } catch (e) {
      if (e && (e.name === 'UsersNotFoundError' || e.name === 'UsersFoundWithMultipleCardsError')) {
        this._cards.set(identity, { at: Date.now(), card: null });
        return null;
      }
      throw e;
    }
  }

  // ------------------------------------------------------------------------------- sending

  /**
   * Encrypts `text` (a string, or bytes) for the channel's current members, the sender
   * included, and posts it. Returns the stored message (`seq`, `sent_at`, ...).
   */
  async send(channel, text) {
    checkChannelId(channel);
    const clientId = randomHex(16);
    let info = this._channels.get(channel) || (await this.channel(channel));
    for (let attempt = 0; attempt < STALE_RETRIES; attempt += 1) {
      const cards = await this._memberCards(info.members);
      const recipients = Object.fromEntries(cards.map((c) => [c.identity, c]));
      const data = typeof text === 'string' ? text : this._bytes(text);
      let ciphertext = await this.ethree.authEncrypt(data, cards.length ? recipients : undefined);
      if (typeof ciphertext !== 'string') ciphertext = ciphertext.toString('base64');
      const post = { client_id: clientId, ciphertext, member_version: info.member_version };
      let answer;
      try {
        answer = await this._post(channel, post);
      } catch (e) {
        this._channels.delete(channel);
        throw e;
      }
      if (answer.status === 409) {
        if (answer.body?.code !== Codes.STALE_MEMBERS) throw new ChatApiError(409, answer.body?.code ?? 0, answer.body?.message ?? 'conflict', answer.body);
        info = answer.body.channel ? this._remember(answer.body.channel) : await this.channel(channel);
        continue;
      }
      const message = answer.body;
      if (message.client_id !== clientId || message.sender !== this.identity) {
        throw new Error('the posted message came back with another sender or client_id');
      }
      return message;
    }
    throw new Error(`the members of ${channel} kept changing; not sent after ${STALE_RETRIES} tries`);
  }

  /** Same as `send` (kept for the Rust SDK's name). */
  sendText(channel, text) {
    return this.send(channel, String(text));
  }

  _bytes(data) {
    return data instanceof Uint8Array ? data : new Uint8Array(data);
  }

  async _post(channel, post) {
    const path = `/chat/v1/channels/${encodeURIComponent(channel)}/messages`;
    let delay = 200;
    for (let i = 0; ; i += 1) {
      try {
        return await this._request('POST', path, post, { allow: [409] });
      } catch (e) {
        const retriable = e instanceof ChatNetworkError || (e instanceof ChatApiError && e.status >= 500);
        if (!retriable || i >= POST_RETRIES) throw e;
      }
      await new Promise((r) => setTimeout(r, delay));
      delay *= 2;
    }
  }

  // ------------------------------------------------------------------------------- reading

  /**
   * A page of history, oldest first: `{messages: Received[], more}`. Pick the page with
   * `{latest: true}` (default), `{after: seq}` or `{before: seq}`; `limit` at most 500.
   */
  async history(channel, { after, before, limit = 100 } = {}) {
    checkChannelId(channel);
    const q = new URLSearchParams({ limit: String(limit) });
    if (after !== undefined && after !== null) q.set('after', String(after));
    else if (before !== undefined && before !== null) q.set('before', String(before));
    const { body } = await this._request('GET', `/chat/v1/channels/${encodeURIComponent(channel)}/messages?${q}`);
    const messages = [];
    for (const m of body.messages) messages.push(await this.open(m));
    return { messages, more: body.more };
  }

  /**
   * Decrypts and verifies one stored message: `{message, status, text, data}`, where `text`
   * (UTF-8) and `data` (bytes) are present only when `status` is `Verification.VERIFIED`.
   */
  async open(message) {
    const verdict = (status) => ({ message, status, text: null, data: null });
    if (typeof message.ciphertext !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(message.ciphertext) || message.ciphertext.length % 4 !== 0) {
      return verdict(Verification.MALFORMED);
    }
    let refreshed = false;
    for (;;) {
      const card = await this._senderCard(message.sender, refreshed);
      if (!card) return verdict(Verification.UNKNOWN_SENDER);
      const signers = signersAt(card, message.sent_at);
      if (signers.length === 0) {
        if (!refreshed) {
          refreshed = true;
          continue;
        }
        return verdict(Verification.UNKNOWN_SENDER);
      }
      let failure = null;
      for (const key of signers) {
        try {
          const data = await this.ethree.authDecrypt({ value: message.ciphertext, encoding: 'base64' }, key);
          const bytes = new Uint8Array(data);
          let text = null;
          try {
            text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
          } catch {
            text = null;
          }
          return { message, status: Verification.VERIFIED, text, data: bytes };
        } catch (e) {
          const why = classifyDecryptError(e);
          if (why !== Verification.BAD_SIGNATURE) return verdict(why);
          failure = why;
        }
      }
      if (failure === Verification.BAD_SIGNATURE && !refreshed) {
        // The cached card may predate a rotation: ask the server once.
        refreshed = true;
        continue;
      }
      return verdict(failure);
    }
  }

  /** A realtime stream (see ChatStream); it connects at once. */
  subscribe() {
    const stream = new ChatStream(this);
    stream.connect();
    return stream;
  }

  _membersChanged(channel, memberVersion) {
    const c = this._channels.get(channel);
    if (c && c.member_version < memberVersion) this._channels.delete(channel);
  }
}

/**
 * Realtime delivery over `/chat/v1/ws`, an EventTarget. Events (their `detail`):
 * `message` ({message, status, text, data}), `members` ({channel, member_version}),
 * `removed` ({channel}), `state` ({connected}), `error` ({error, channel?}).
 *
 * It remembers the last `seq` delivered per channel; after a lost connection it reconnects
 * with backoff and a fresh token and subscribes again after those, so nothing is missed or
 * repeated. Messages are delivered in order per channel.
 */
export class ChatStream extends EventTarget {
  constructor(chat) {
    super();
    this.chat = chat;
    /** channel → last seq delivered (or asked to start after) */
    this.subscriptions = new Map();
    this.connected = false;
    this._socket = null;
    this._closed = false;
    this._failures = 0;
    this._timer = null;
    this._pingTimer = null;
    this._lastHeard = 0;
    this._freshToken = false;
    /** Decryption is sequential so that messages are shown in order. */
    this._queue = Promise.resolve();
  }

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  /** Follows `channel`, delivering the messages with seq > `after`. */
  subscribe(channel, after = 0) {
    checkChannelId(channel);
    this.subscriptions.set(channel, after);
    this._send({ type: 'subscribe', channel, after });
  }

  /** Stops following `channel`. */
  unsubscribe(channel) {
    this.subscriptions.delete(channel);
    this._send({ type: 'unsubscribe', channel });
  }

  /** Closes the socket for good. */
  close() {
    this._closed = true;
    clearTimeout(this._timer);
    clearInterval(this._pingTimer);
    if (this._socket) this._socket.close(1000, 'bye');
    this._socket = null;
  }

  _send(frame) {
    if (this._socket && this._socket.readyState === 1) this._socket.send(JSON.stringify(frame));
  }

  async connect() {
    if (this._closed) return;
    let token;
    try {
      token = await this.chat.token({ fresh: this._freshToken });
    } catch (e) {
      this._emit('error', { error: e });
      this._retry();
      return;
    }
    this._freshToken = false;
    const url = new URL(this.chat.serverUrl + '/chat/v1/ws');
    url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
    url.searchParams.set('token', token);
    let socket;
    try {
      socket = new this.chat._WebSocket(url.toString());
    } catch (e) {
      this._emit('error', { error: e });
      this._retry();
      return;
    }
    this._socket = socket;
    let opened = false;
    socket.onopen = () => {
      opened = true;
      this._failures = 0;
      this.connected = true;
      this._lastHeard = Date.now();
      for (const [channel, after] of this.subscriptions) this._send({ type: 'subscribe', channel, after });
      clearInterval(this._pingTimer);
      this._pingTimer = setInterval(() => {
        if (Date.now() - this._lastHeard > DEAD_AFTER_MS) socket.close(4000, 'silent');
        else this._send({ type: 'ping' });
      }, PING_EVERY_MS);
      this._emit('state', { connected: true });
    };
    socket.onmessage = (event) => {
      this._lastHeard = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      this._queue = this._queue.then(() => this._handle(frame)).catch((e) => this._emit('error', { error: e }));
    };
    socket.onclose = (event) => {
      if (this._socket !== socket) return;
      this._socket = null;
      clearInterval(this._pingTimer);
      if (this.connected) {
        this.connected = false;
        this._emit('state', { connected: false });
      }
      // A refused upgrade (often an expired token) or a policy close: new token next time.
      if (!opened || event.code === 1008) this._freshToken = true;
      this._retry();
    };
    socket.onerror = () => {
      // onclose follows; the browser gives no detail here.
    };
  }

  _retry() {
    if (this._closed) return;
    const delay = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** this._failures);
    this._failures = Math.min(this._failures + 1, 10);
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this.connect(), delay * (0.75 + Math.random() / 2));
  }

  async _handle(frame) {
    switch (frame.type) {
      case 'message': {
        const m = frame.message;
        const last = this.subscriptions.get(m.channel);
        if (last === undefined || m.seq <= last) return; // unsubscribed, or already delivered
        let received;
        for (let attempt = 0; ; attempt += 1) {
          try {
            received = await this.chat.open(m);
            break;
          } catch (e) {
            // A network error while fetching the sender's card: try again, keep the order.
            if (attempt >= 5) throw e;
            await new Promise((r) => setTimeout(r, 500 * (attempt + 1)));
          }
        }
        if (!this.subscriptions.has(m.channel)) return;
        this.subscriptions.set(m.channel, m.seq);
        this._emit('message', received);
        return;
      }
      case 'members':
        this.chat._membersChanged(frame.channel, frame.member_version);
        this._emit('members', { channel: frame.channel, member_version: frame.member_version });
        return;
      case 'removed':
        this.chat._channels.delete(frame.channel);
        this.subscriptions.delete(frame.channel);
        this._emit('removed', { channel: frame.channel });
        return;
      case 'error': {
        if (frame.channel) this.subscriptions.delete(frame.channel);
        const error = new ChatApiError(0, frame.code, frame.message, frame);
        this._emit('error', { error, channel: frame.channel ?? null });
        return;
      }
      default:
        return; // subscribed, pong
    }
  }
}
