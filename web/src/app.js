// The demo chat page that `sealkit backend` serves at `/`: log in through the backend's
// POST /authenticate + GET /virgil-jwt (the e3kit tutorial's sample backend), register the key
// on first use (e3kit-browser keeps it in IndexedDB), then chat through SealkitChat.
import './shims.js';
import { EThree } from '@virgilsecurity/e3kit-browser';
import { SealkitChat, Verification, ChatApiError, ChatNetworkError, directChannelId } from './sealkit-chat.js';

const $ = (id) => document.getElementById(id);

const REASONS = {
  [Verification.NOT_FOR_ME]: 'not encrypted for you: sent before you joined, or after you were removed',
  [Verification.BAD_SIGNATURE]: 'bad signature: not signed by the sender’s key',
  [Verification.UNKNOWN_SENDER]: 'unknown sender: no card valid when it was sent',
  [Verification.MALFORMED]: 'damaged or unreadable message',
};

/** How often the channel list is read again, for channels others added the user to. */
const CHANNEL_POLL_MS = 3000;

const state = {
  server: null,
  chat: null,
  stream: null,
  /** The channel shown. */
  current: null,
  /** channel id → {channel, label, unread, oldest, elements: Map(seq → li)} */
  channels: new Map(),
};

function showError(e) {
  const text = e instanceof Error ? e.message : String(e);
  const el = $('error');
  el.textContent = text;
  el.hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error').textContent = '';
}

function setStatus(text) {
  $('status').textContent = text;
}

/** Runs an action of the user: its errors are shown in the page. */
function action(fn) {
  return async (event) => {
    if (event) event.preventDefault();
    try {
      clearError();
      await fn(event);
    } catch (e) {
      showError(e);
    }
  };
}

async function backendJson(path, init) {
  const response = await fetch(path, init);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(`${path}: ${body?.message ?? `HTTP ${response.status}`}`);
  }
  return body;
}

// ---------------------------------------------------------------------------------- login

async function login() {
  const identity = $('identity').value.trim();
  if (!identity) throw new Error('enter an identity');
  $('login').disabled = true;
  try {
    setStatus(`Logging in as ${identity}…`);
    const { authToken } = await backendJson('authenticate', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ identity }),
    });
    const getToken = async () => {
      const { virgilToken } = await backendJson('virgil-jwt', { headers: { Authorization: `Bearer ${authToken}` } });
      return virgilToken;
    };
    const ethree = await EThree.initialize(getToken, {
      apiUrl: state.server,
      // One key store per server, so a key made for another server is never mixed up.
      storageName: `sealkit:${state.server}`,
      foundationWasmPath: new URL('libfoundation.browser.wasm', document.baseURI).href,
      pythiaWasmPath: new URL('libpythia.browser.wasm', document.baseURI).href,
    });
    await ensureRegistered(ethree);
    localStorage.setItem('sealkit.identity', identity);
    state.chat = new SealkitChat({ ethree, serverUrl: state.server, getToken });
    startStream();
    $('login-panel').hidden = true;
    $('chat-panel').hidden = false;
    document.title = `${identity} — Sealkit chat`;
    setStatus(`Logged in as ${identity} on ${state.server}`);
    await refreshChannels();
    // Channels others add the user to (a direct message, a group) show up by themselves.
    setInterval(() => {
      refreshChannels().catch((e) => {
        if (!(e instanceof ChatNetworkError)) showError(e);
      });
    }, CHANNEL_POLL_MS);
    $('channel').focus();
  } finally {
    $('login').disabled = false;
  }
}

/** Registers the user's key on first use; refuses to silently replace a key kept elsewhere. */
async function ensureRegistered(ethree) {
  const hasKey = await ethree.hasLocalPrivateKey();
  let card = null;
  try {
    card = await ethree.findUsers(ethree.identity);
  } catch (e) {
    if (e?.name !== 'UsersNotFoundError') throw e;
  }
  if (card && hasKey) return;
  if (card && !hasKey) {
    throw new Error(
      `${ethree.identity} is registered, but its key is not in this browser. Restore it from its backup ` +
        '(e.g. `sealkit user restore`), or use another identity.',
    );
  }
  // No card: a key left in this browser was never published to this server (e.g. its data was
  // reset), so nobody can have encrypted anything for it.
  if (hasKey) await ethree.cleanup();
  await ethree.register();
  setStatus(`Registered ${ethree.identity}`);
}

// ---------------------------------------------------------------------------------- stream

function startStream() {
  const stream = state.chat.subscribe();
  state.stream = stream;
  stream.addEventListener('message', (e) => onMessage(e.detail));
  stream.addEventListener('members', (e) => {
    if (e.detail.channel === state.current) refreshMembers().catch(showError);
  });
  stream.addEventListener('removed', (e) => {
    const entry = state.channels.get(e.detail.channel);
    if (entry) entry.removed = true;
    showError(`You were removed from ${entry?.label ?? e.detail.channel}: new messages there are no longer encrypted for you.`);
    renderChannelList();
    if (state.current === e.detail.channel) setComposer(false);
  });
  stream.addEventListener('state', (e) => {
    const who = state.chat.identity;
    setStatus(e.detail.connected ? `Logged in as ${who} on ${state.server} — connected` : `Logged in as ${who} — reconnecting…`);
    document.body.dataset.connected = String(e.detail.connected);
  });
  stream.addEventListener('error', (e) => showError(e.detail.error));
}

function onMessage(received) {
  const id = received.message.channel;
  const entry = state.channels.get(id);
  if (!entry) return;
  const fresh = addMessage(entry, received);
  if (fresh && id !== state.current) {
    entry.unread += 1;
    renderChannelList();
  }
}

// ---------------------------------------------------------------------------------- channels

async function labelOf(channel) {
  if (channel.kind !== 'direct') return `#${channel.id}`;
  const me = state.chat.identity;
  const other = channel.members.find((m) => m !== me) ?? me;
  return (await directChannelId(me, other)) === channel.id ? `@${other}` : channel.id;
}

async function track(channel) {
  let entry = state.channels.get(channel.id);
  if (!entry) {
    entry = { channel, label: channel.id, unread: 0, oldest: null, more: false, elements: new Map(), list: document.createElement('ol') };
    state.channels.set(channel.id, entry);
    // Callers that find the entry while its first page loads (the channel poll and a join at
    // the same time) wait for it too.
    entry.loaded = loadFirstPage(entry).catch((e) => {
      state.channels.delete(channel.id);
      throw e;
    });
  } else {
    entry.channel = channel;
    entry.removed = false;
    // After the first page: while it loads, nothing is subscribed yet and nothing is shown,
    // and subscribing from 0 here would deliver the whole history again (a join racing the
    // channel poll did).
    await entry.loaded;
    if (!state.stream.subscriptions.has(channel.id)) {
      const last = Math.max(0, ...entry.elements.keys());
      state.stream.subscribe(channel.id, last);
    }
  }
  await entry.loaded;
  return entry;
}

/** History first (the newest page), then live messages after the last one shown. */
async function loadFirstPage(entry) {
  const { channel } = entry;
  entry.label = await labelOf(channel);
  const page = await state.chat.history(channel.id, { limit: 50 });
  for (const m of page.messages) addMessage(entry, m);
  entry.more = page.more;
  if (state.current === channel.id) $('older').hidden = !entry.more;
  const last = page.messages.length ? page.messages[page.messages.length - 1].message.seq : channel.last_seq;
  state.stream.subscribe(channel.id, last);
}

async function refreshChannels() {
  const channels = await state.chat.channels();
  for (const c of channels) await track(c);
  renderChannelList();
}

function renderChannelList() {
  const ul = $('channels');
  ul.replaceChildren();
  for (const [id, entry] of state.channels) {
    const li = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.dataset.channel = id;
    button.textContent = entry.label + (entry.removed ? ' (removed)' : '');
    if (id === state.current) button.setAttribute('aria-current', 'true');
    if (entry.unread > 0) {
      const badge = document.createElement('span');
      badge.className = 'unread';
      badge.textContent = String(entry.unread);
      badge.setAttribute('aria-label', `${entry.unread} unread`);
      button.append(badge);
    }
    button.addEventListener('click', action(() => show(id)));
    li.append(button);
    ul.append(li);
  }
}

async function show(id) {
  const entry = state.channels.get(id);
  state.current = id;
  entry.unread = 0;
  $('channel-title').textContent = entry.label;
  $('messages').replaceWith(entry.list);
  entry.list.id = 'messages';
  entry.list.setAttribute('aria-live', 'polite');
  entry.list.setAttribute('aria-label', `Messages in ${entry.label}`);
  $('older').hidden = !entry.more;
  setComposer(!entry.removed);
  renderChannelList();
  if (!entry.removed) await refreshMembers();
  entry.list.scrollTop = entry.list.scrollHeight;
  // Last: scripts wait for it to know the channel, its history and its members are shown.
  document.body.dataset.channel = id;
}

function setComposer(enabled) {
  $('message').disabled = !enabled;
  $('send').disabled = !enabled;
  if (enabled) $('message').focus();
}

async function openChannel() {
  const name = $('channel').value.trim();
  const channel = await state.chat.openChannel(name);
  await track(channel);
  $('channel').value = '';
  await show(channel.id);
}

async function openDirect() {
  const other = $('dm').value.trim();
  const channel = await state.chat.directChannel(other);
  await track(channel);
  $('dm').value = '';
  await show(channel.id);
}

async function loadOlder() {
  const entry = state.channels.get(state.current);
  if (!entry || entry.oldest === null) return;
  const page = await state.chat.history(entry.channel.id, { before: entry.oldest, limit: 50 });
  for (const m of page.messages) addMessage(entry, m);
  entry.more = page.more;
  $('older').hidden = !entry.more;
}

// ---------------------------------------------------------------------------------- members

async function refreshMembers() {
  const id = state.current;
  const channel = await state.chat.channel(id);
  const entry = state.channels.get(id);
  entry.channel = channel;
  const me = state.chat.identity;
  const iAmAdmin = channel.admins.includes(me) && channel.kind === 'group';
  const ul = $('members');
  ul.replaceChildren();
  for (const member of channel.members) {
    const li = document.createElement('li');
    li.className = 'member';
    li.dataset.identity = member;
    const name = document.createElement('span');
    name.textContent = member + (channel.admins.includes(member) ? ' (admin)' : '') + (member === me ? ' (you)' : '');
    li.append(name);
    if (iAmAdmin && member !== me) {
      const remove = document.createElement('button');
      remove.type = 'button';
      remove.className = 'remove';
      remove.textContent = 'Remove';
      remove.setAttribute('aria-label', `Remove ${member}`);
      remove.addEventListener('click', action(async () => {
        await state.chat.removeMember(id, member);
        await refreshMembers();
      }));
      li.append(remove);
    }
    ul.append(li);
  }
  $('add-form').hidden = channel.kind !== 'group';
}

async function addMember() {
  const who = $('member').value.trim();
  await state.chat.addMember(state.current, who);
  $('member').value = '';
  await refreshMembers();
}

async function leave() {
  const id = state.current;
  if (!id) return;
  await state.chat.leave(id);
  state.stream.unsubscribe(id);
  state.channels.delete(id);
  state.current = null;
  $('channel-title').textContent = 'No channel open';
  const empty = document.createElement('ol');
  $('messages').replaceWith(empty);
  empty.id = 'messages';
  $('members').replaceChildren();
  setComposer(false);
  renderChannelList();
}

// ---------------------------------------------------------------------------------- messages

/** Adds a message to its channel's list in seq order; false if it was already there. */
function addMessage(entry, received) {
  const { message, status, text } = received;
  if (entry.elements.has(message.seq)) return false;
  const verified = status === Verification.VERIFIED;
  const li = document.createElement('li');
  li.className = 'message';
  li.dataset.sender = message.sender;
  li.dataset.verified = String(verified);
  li.dataset.status = status;
  li.dataset.seq = String(message.seq);
  const sender = document.createElement('span');
  sender.className = 'sender';
  sender.textContent = message.sender;
  const badge = document.createElement('span');
  badge.className = 'badge';
  badge.textContent = verified ? '✔' : '⚠';
  badge.title = verified ? 'decrypted, and signed by the sender’s key' : REASONS[status] ?? status;
  badge.setAttribute('aria-label', verified ? 'verified' : 'unverified');
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = verified ? (text ?? '(binary message)') : `UNVERIFIED (${REASONS[status] ?? status})`;
  const time = document.createElement('time');
  const at = new Date(message.sent_at);
  time.dateTime = at.toISOString();
  time.textContent = at.toLocaleTimeString();
  li.append(sender, badge, body, time);

  const later = [...entry.elements.keys()].filter((s) => s > message.seq).sort((a, b) => a - b)[0];
  if (later === undefined) entry.list.append(li);
  else entry.list.insertBefore(li, entry.elements.get(later));
  entry.elements.set(message.seq, li);
  if (entry.oldest === null || message.seq < entry.oldest) entry.oldest = message.seq;
  if (later === undefined && entry.list.isConnected) entry.list.scrollTop = entry.list.scrollHeight;
  return true;
}

async function send() {
  const input = $('message');
  const text = input.value;
  if (!text.trim() || !state.current) return;
  $('send').disabled = true;
  try {
    await state.chat.send(state.current, text);
    input.value = '';
  } catch (e) {
    if (e instanceof ChatApiError && e.code === 70001) throw new Error(`not sent: you are not a member of ${state.current}`);
    throw e;
  } finally {
    $('send').disabled = false;
    input.focus();
  }
}

// ---------------------------------------------------------------------------------- start

async function start() {
  $('login-form').addEventListener('submit', action(login));
  $('join-form').addEventListener('submit', action(openChannel));
  $('dm-form').addEventListener('submit', action(openDirect));
  $('send-form').addEventListener('submit', action(send));
  $('add-form').addEventListener('submit', action(addMember));
  $('leave').addEventListener('click', action(leave));
  $('older').addEventListener('click', action(loadOlder));
  const config = await backendJson('config.json');
  state.server = config.server;
  const last = localStorage.getItem('sealkit.identity');
  if (last && !$('identity').value) $('identity').value = last;
  setStatus(`Server: ${state.server}. Enter an identity to log in.`);
  document.body.dataset.ready = 'true';
}

window.addEventListener('unhandledrejection', (e) => showError(e.reason));
start().catch(showError);
